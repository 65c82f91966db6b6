"""CuPy kernels for the sigmoid and the bias parametrisation of ``lrpnet/layers/base.py``, under the
same names.

The references:

    sigmoid_forward(x)     = 1 / (1 + exp(-x))   (exp(-x) = inf gives 0)
    negsoftplus(b)         = -softplus(b) = -logaddexp(0, b)       (a ReLU unit's bias, <= 0)
    negsoftplus_grad(b, g) = -g * sigmoid(b)                       (d(-softplus(b))/db = -sigmoid(b))

each in one launch here. ``STABLE_SIGMOID`` is ``sigmoid_forward`` as a device function, shared by
``negsoftplus_grad`` here and by nothing else.
"""
from __future__ import annotations

from lrpnet import backend

from .elementwise import Elementwise, kernel_applies, reference

STABLE_SIGMOID = """
// sigmoid(x) = 1 / (1 + exp(-x)), as the reference ``sigmoid_forward``: where exp(-x) overflows to
// inf, 1 / (1 + inf) = 0 is the right limit (NaN stays NaN).
template <typename F>
__device__ F stable_sigmoid(F x) {
    return F(1) / (exp(-x) + F(1));
}
"""

_sigmoid_forward = Elementwise(
    "T x", "T y", "y = stable_sigmoid(x)", "lrpnet_sigmoid_forward", preamble=STABLE_SIGMOID)

# -logaddexp(0, b) with NumPy's two branches: b + log1p(exp(-b)) for b > 0, else log1p(exp(b))
# (at b = 0 both give log 2). exp only ever sees a number <= 0, so nothing overflows; +-inf and NaN
# come out as in NumPy (-inf, -0, NaN).
_negsoftplus = Elementwise(
    "T b", "T y",
    "y = b > T(0) ? -(b + log1p(exp(-b))) : -log1p(exp(b))",
    "lrpnet_negsoftplus")

_negsoftplus_grad = Elementwise(
    "T b, T g", "T db",
    "db = -g * stable_sigmoid(b)",                  # reference: -g * sigmoid(b)
    "lrpnet_negsoftplus_grad", preamble=STABLE_SIGMOID)


@backend.register("sigmoid_forward", "cupy")
def sigmoid_forward(x):
    """1 / (1 + exp(-x)) (reference ``sigmoid_forward``)."""
    if not kernel_applies(x):
        return reference("sigmoid_forward")(x)
    return _sigmoid_forward(x)


@backend.register("negsoftplus", "cupy")
def negsoftplus(b):
    """-softplus(b) = -log(1 + exp(b)), without overflow (reference ``negsoftplus``)."""
    if not kernel_applies(b):
        return reference("negsoftplus")(b)
    return _negsoftplus(b)


@backend.register("negsoftplus_grad", "cupy")
def negsoftplus_grad(b, g):
    """-g * sigmoid(b): the gradient of b given the gradient g of -softplus(b) (reference
    ``negsoftplus_grad``)."""
    if not kernel_applies(b, g):
        return reference("negsoftplus_grad")(b, g)
    return _negsoftplus_grad(b, g)
