"""CuPy kernels for the backward passes of ``lrpnet/layers/activations.py``, under the same names.

The references, y being the layer's output and dy the gradient arriving at it:

    sigmoid_backward(y, dy)     = dy * y * (1 - y)
    tanh_backward(y, dy)        = dy * (1 - y * y)
    relu_backward(y, dy)        = dy * (y > 0)
    relu_guided_backward(y, dy) = dy * ((y > 0) & (dy > 0))   (guided backprop)

A boolean factor is written ``(cond ? 1 : 0)`` and multiplied, not used to select dy or 0: NumPy
multiplies dy by 1.0 or 0.0, so NaN and inf in dy give NaN, and a negative dy times 0 gives -0.
The products are evaluated left to right, as in the references (``(dy * y) * (1 - y)``). The
sigmoid's forward pass, ``sigmoid_forward``, is registered in layers/base.py and so is in ``base.py`` here.
"""
from __future__ import annotations

from lrpnet import backend

from .elementwise import Elementwise, kernel_applies, reference

_sigmoid_backward = Elementwise(
    "T y, T dy", "T dx", "dx = dy * y * (T(1) - y)", "lrpnet_sigmoid_backward")

_tanh_backward = Elementwise(
    "T y, T dy", "T dx", "dx = dy * (T(1) - y * y)", "lrpnet_tanh_backward")

_relu_backward = Elementwise(
    "T y, T dy", "T dx", "dx = dy * (y > T(0) ? T(1) : T(0))", "lrpnet_relu_backward")

_relu_guided_backward = Elementwise(
    "T y, T dy", "T dx", "dx = dy * ((y > T(0) && dy > T(0)) ? T(1) : T(0))", "lrpnet_relu_guided_backward")


@backend.register("sigmoid_backward", "cupy")
def sigmoid_backward(y, dy):
    """dy * y * (1 - y) (reference ``sigmoid_backward``)."""
    if not kernel_applies(y, dy):
        return reference("sigmoid_backward")(y, dy)
    return _sigmoid_backward(y, dy)


@backend.register("tanh_backward", "cupy")
def tanh_backward(y, dy):
    """dy * (1 - y * y) (reference ``tanh_backward``)."""
    if not kernel_applies(y, dy):
        return reference("tanh_backward")(y, dy)
    return _tanh_backward(y, dy)


@backend.register("relu_backward", "cupy")
def relu_backward(y, dy):
    """dy * (y > 0), y the ReLU's output (reference ``relu_backward``)."""
    if not kernel_applies(y, dy):
        return reference("relu_backward")(y, dy)
    return _relu_backward(y, dy)


@backend.register("relu_guided_backward", "cupy")
def relu_guided_backward(y, dy):
    """dy * ((y > 0) & (dy > 0)) (reference ``relu_guided_backward``)."""
    if not kernel_applies(y, dy):
        return reference("relu_guided_backward")(y, dy)
    return _relu_guided_backward(y, dy)
