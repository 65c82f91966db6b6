"""Dense (fully connected) layer: z = x W + bias.

The bias takes one of three forms:
- ``"plain"``: bias = b, as in an ordinary linear layer;
- ``"negsoftplus"``: bias = -softplus(b) <= 0, the study's ReLU unit ``relu(W x - softplus(b))``
  (deep Taylor decomposition assumes non-positive biases; softplus(b) starts at 0.01);
- ``None``: no bias.
W has shape (in, out). The ReLU itself is a separate layer (``ReLU``).
"""
from __future__ import annotations

from .. import backend
from .base import Layer, inverse_softplus, sigmoid, softplus, truncated_normal

BIAS_MODES = ("plain", "negsoftplus", None)


class Dense(Layer):
    kind = "dense"

    def __init__(self, n_in, n_out, bias="plain", rng=None, dtype="float32", bias_init=None):
        super().__init__()
        if bias not in BIAS_MODES:
            raise ValueError(f"unknown bias mode {bias!r}; expected one of {BIAS_MODES}")
        dtype = backend.resolve_dtype(dtype)
        self.n_in, self.n_out, self.bias_mode = int(n_in), int(n_out), bias
        self.params["W"] = truncated_normal(rng, (self.n_in, self.n_out), 1.0 / self.n_in ** 0.5, dtype)
        if bias is not None:
            if bias_init is None:
                bias_init = inverse_softplus(0.01) if bias == "negsoftplus" else 0.0
            self.params["b"] = backend.xp().full((self.n_out,), bias_init, dtype=dtype)

    # -- the effective parameters and the two functions the LRP rules use --------------------------
    @property
    def weight(self):
        return self.params["W"]

    @property
    def bias(self):
        if self.bias_mode is None:
            return None
        b = self.params["b"]
        return -softplus(b) if self.bias_mode == "negsoftplus" else b

    @staticmethod
    def linear(x, weight, bias=None):
        z = x @ weight
        return z if bias is None else z + bias

    @staticmethod
    def linear_input_grad(weight, dz, x_shape=None):
        return dz @ weight.T

    # -- forward and backward ----------------------------------------------------------------------
    def forward(self, tape, x):
        if x.ndim != 2 or x.shape[1] != self.n_in:
            raise ValueError(f"{self.name or 'dense'}: expected input of shape (N, {self.n_in}), "
                             f"got {tuple(x.shape)}")
        return self.linear(x, self.weight, self.bias), x

    def backward(self, x, dz):
        grads = {"W": x.T @ dz}
        if self.bias_mode == "plain":
            grads["b"] = dz.sum(axis=0)
        elif self.bias_mode == "negsoftplus":
            # d(-softplus(b))/db = -sigmoid(b)
            grads["b"] = -dz.sum(axis=0) * sigmoid(self.params["b"])
        return (self.linear_input_grad(self.weight, dz),), grads
