"""The small interface every layer implements.

A layer is a function of one or more arrays with (optionally) parameters. It holds its parameters in
``self.params`` (local name -> array; the model collects them under ``self.name + "." + local``) and
implements two methods:

    forward(tape, *xs) -> (y, cache)          # the tape gives train/rng/memo/step context
    backward(cache, dy) -> (dxs, dparams)     # dxs: one input gradient per input (a tuple);
                                              # dparams: local name -> gradient of each parameter

``guided_backward`` is the backward step of guided backprop; it equals ``backward`` except at ReLUs.

Linear layers (dense, conv) additionally expose the two functions the LRP rules are written against
(see ``lrpnet.rules``): ``linear(x, weight, bias)``, the affine map with any (modified) parameters, and
``linear_input_grad(weight, dz, x_shape)``, its vector-Jacobian product with respect to the input.
``weight`` and ``bias`` are the effective parameters (for a ReLU unit the bias is -softplus(b)).
Their ``backward`` is two parts, ``input_grad(cache, dy)`` and ``param_grads(cache, dy)``, so that a
backward pass computes only what it needs (``Tape.backward``): parameter gradients in training,
input gradients in explanations.
"""
from __future__ import annotations

import numpy

from .. import backend


class Layer:
    kind = "layer"        # what composites key rules on: "dense", "conv2d", "relu", "maxpool2d", ...
    shape_only = False    # True for layers that only move values around (slice, reshape)

    def __init__(self):
        self.params: dict = {}
        self.name: str | None = None

    def __call__(self, tape, *inputs):
        return tape.apply(self, *inputs)

    def forward(self, tape, *xs):
        raise NotImplementedError

    def backward(self, cache, dy):
        raise NotImplementedError

    def guided_backward(self, cache, dy):
        return self.backward(cache, dy)

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r})"


def truncated_normal(rng, shape, std, dtype):
    """Weights from N(0, std^2) truncated at two standard deviations (the study's initialiser)."""
    w = rng.standard_normal(shape)
    bad = numpy.abs(w) > 2.0
    while bad.any():
        w[bad] = rng.standard_normal(int(bad.sum()))
        bad = numpy.abs(w) > 2.0
    return backend.asarray(w * std, dtype=dtype)


def softplus(b):
    """log(1 + exp(b)), computed without overflow."""
    xp = backend.xp()
    return xp.logaddexp(b.dtype.type(0), b)


@backend.register("negsoftplus")
def negsoftplus(b):
    """-softplus(b) = -log(1 + exp(b)) <= 0: the effective bias of the study's ReLU units."""
    return -softplus(b)


@backend.register("negsoftplus_grad")
def negsoftplus_grad(b, g):
    """The gradient of the parameter b given the gradient g of -softplus(b): -g sigmoid(b)."""
    return -g * sigmoid(b)


def sigmoid(x):
    """1 / (1 + exp(-x)), computed without overflow for large |x| (the registered "sigmoid_forward")."""
    return backend.op("sigmoid_forward")(x)


@backend.register("sigmoid_forward")
def sigmoid_forward(x):
    """1 / (1 + exp(-x)). Where exp(-x) overflows (x < -88 in float32, -709 in float64) it is inf and
    1 / (1 + inf) = 0, the right limit, so the overflow warning is silenced; NaN stays NaN.

    Written without a select: the former form, 1 / (1 + e) for x >= 0 and e / (1 + e) below with
    e = exp(-|x|), joined by ``where``, was 5x to 7x slower on the CPU, most of it in the ``where``
    (about 4 ns an element on a mask of mixed signs: 77 us at (50, 384) float32, where this whole
    function takes 20 us; benchmarks/RESULTS.md)."""
    xp = backend.xp()
    with numpy.errstate(over="ignore"):
        e = xp.exp(-x)
    return 1 / (e + 1)


def inverse_softplus(y: float) -> float:
    """The b with softplus(b) = y, for initialising ReLU biases (softplus(b) starts at 0.01)."""
    return float(numpy.log(numpy.expm1(y)))


BIAS_MODES = ("plain", "negsoftplus", None)


def sum_over_rows(a):
    """The sum of ``a`` over every axis but the last (a bias's gradient from dz), as one product
    ones @ a of a seen as rows. NumPy's ``a.sum(axis=0)`` adds such rows one after another: 5.8x
    slower on ConvDeep's conv1 dz at batch 256, (50176, 24) float32, 9x on its conv2's, and further
    from the float64 sum (one thread; benchmarks/RESULTS.md, "Bias gradients as a product")."""
    rows = a.reshape(-1, a.shape[-1])
    return backend.xp().ones(rows.shape[0], dtype=a.dtype) @ rows


class LinearLayer(Layer):
    """What dense and convolution layers share: a weight "W" and a bias in one of three forms.

    - ``"plain"``: bias = b, as in an ordinary linear layer (starts at 0);
    - ``"negsoftplus"``: bias = -softplus(b) <= 0, the study's ReLU unit ``relu(W x - softplus(b))``
      (deep Taylor decomposition assumes non-positive biases; softplus(b) starts at 0.01);
    - ``None``: no bias.

    ``weight`` and ``bias`` are the effective parameters the LRP rules see; subclasses add
    ``linear(x, weight, bias)`` and ``linear_input_grad(weight, dz, x_shape)``.
    """

    def init_params(self, w_shape, fan_in, n_out, bias, rng, dtype, bias_init=None):
        if bias not in BIAS_MODES:
            raise ValueError(f"unknown bias mode {bias!r}; expected one of {BIAS_MODES}")
        if rng is None:
            rng = numpy.random.default_rng()
        self.bias_mode = bias
        self.params["W"] = truncated_normal(rng, w_shape, 1.0 / fan_in ** 0.5, dtype)
        if bias is not None:
            if bias_init is None:
                bias_init = inverse_softplus(0.01) if bias == "negsoftplus" else 0.0
            self.params["b"] = backend.xp().full((n_out,), bias_init, dtype=dtype)

    @property
    def weight(self):
        return self.params["W"]

    @property
    def bias(self):
        if self.bias_mode is None:
            return None
        b = self.params["b"]
        return backend.op("negsoftplus")(b) if self.bias_mode == "negsoftplus" else b

    # -- the gradient in two parts, so a backward pass computes only what it is asked for ------------
    def backward(self, cache, dz):
        return (self.input_grad(cache, dz),), self.param_grads(cache, dz)

    def input_grad(self, cache, dz):
        """dL/dx given dL/dz (``cache`` is what ``forward`` kept)."""
        raise NotImplementedError

    def param_grads(self, cache, dz):
        """{local name: dL/dparam} given dL/dz."""
        raise NotImplementedError

    def bias_grad(self, dz_sum):
        """The gradient of the bias parameter from dz summed over every axis but the last."""
        if self.bias_mode == "plain":
            return {"b": dz_sum}
        if self.bias_mode == "negsoftplus":
            return {"b": backend.op("negsoftplus_grad")(self.params["b"], dz_sum)}   # -sigmoid(b) dz
        return {}
