"""Dense (fully connected) layer: z = x W + bias.

W has shape (in, out); the bias is "plain", "negsoftplus" (-softplus(b) <= 0, the study's ReLU unit
``relu(W x - softplus(b))``) or None, as ``LinearLayer`` explains. The ReLU itself is a separate
layer (``ReLU``).
"""
from __future__ import annotations

from .. import backend
from .base import LinearLayer, sum_over_rows


class Dense(LinearLayer):
    kind = "dense"

    def __init__(self, n_in, n_out, bias="plain", rng=None, dtype="float32", bias_init=None):
        super().__init__()
        dtype = backend.resolve_dtype(dtype)
        self.n_in, self.n_out = int(n_in), int(n_out)
        self.init_params((self.n_in, self.n_out), self.n_in, self.n_out, bias, rng, dtype, bias_init)

    # -- the two functions the LRP rules use (weight and bias come from LinearLayer) -----------------
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

    def input_grad(self, x, dz):
        return self.linear_input_grad(self.weight, dz)

    def input_grad_columns(self, x, dz, start, stop):
        """Columns [start, stop) of ``input_grad``: dz W[start:stop]^T, for an input whose other
        columns need no gradient (``Tape._column_cuts``)."""
        return self.linear_input_grad(self.weight[start:stop], dz)

    def param_grads(self, x, dz):
        return {"W": x.T @ dz, **self.bias_grad(sum_over_rows(dz))}

    def param_grads_of_uses(self, xs, dzs):
        """The sum over uses (time steps; a dense layer's cache is its input x) as one product,
        sum_t x_t^T dz_t = [x_1; ...; x_T]^T [dz_1; ...; dz_T], the inputs and gradients of every use
        stacked as rows: T products of N rows cost up to 1.6x one of T*N rows at the study's sizes
        (one thread; benchmarks/RESULTS.md)."""
        if len(xs) == 1:
            return self.param_grads(xs[0], dzs[0])
        xp = backend.xp()
        return self.param_grads(xp.concatenate(xs), xp.concatenate(dzs))
