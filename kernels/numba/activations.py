"""Numba kernels for the backward passes of ``lrpnet/layers/activations.py``, under the same names.

The references, y being the layer's output and dy the gradient arriving at it:

    sigmoid_backward(y, dy)     = dy * y * (1 - y)
    tanh_backward(y, dy)        = dy * (1 - y * y)
    relu_backward(y, dy)        = dy * (y > 0)
    relu_guided_backward(y, dy) = dy * ((y > 0) & (dy > 0))   (guided backprop)

A boolean factor is a 1 or a 0 of dy's dtype, multiplied, not used to select dy or 0: NumPy multiplies
dy by 1.0 or 0.0, so NaN and inf in dy give NaN, and a negative dy times 0 gives -0. The products are
evaluated left to right, as in the references (``(dy * y) * (1 - y)``). The sigmoid's forward pass,
``sigmoid_forward``, is registered in layers/base.py and so is in ``base.py`` here.

Arrays the kernels do not take (``elementwise.kernel_applies``) run the reference.
"""
from __future__ import annotations

import numpy
from numba import njit

from lrpnet import backend

from .elementwise import flat, kernel_applies, reference


@njit(cache=True, fastmath=False, error_model="numpy")
def _sigmoid_backward_loop(y, dy):
    dx = numpy.empty_like(dy)
    one = dy.dtype.type(1)
    yf, dyf, dxf = flat(y), flat(dy), flat(dx)
    for i in range(dxf.size):
        dxf[i] = dyf[i] * yf[i] * (one - yf[i])
    return dx


@njit(cache=True, fastmath=False, error_model="numpy")
def _tanh_backward_loop(y, dy):
    dx = numpy.empty_like(dy)
    one = dy.dtype.type(1)
    yf, dyf, dxf = flat(y), flat(dy), flat(dx)
    for i in range(dxf.size):
        dxf[i] = dyf[i] * (one - yf[i] * yf[i])
    return dx


@njit(cache=True, fastmath=False, error_model="numpy")
def _relu_backward_loop(y, dy):
    dx = numpy.empty_like(dy)
    one, zero = dy.dtype.type(1), dy.dtype.type(0)
    yf, dyf, dxf = flat(y), flat(dy), flat(dx)
    for i in range(dxf.size):
        dxf[i] = dyf[i] * (one if yf[i] > zero else zero)
    return dx


@njit(cache=True, fastmath=False, error_model="numpy")
def _relu_guided_backward_loop(y, dy):
    dx = numpy.empty_like(dy)
    one, zero = dy.dtype.type(1), dy.dtype.type(0)
    yf, dyf, dxf = flat(y), flat(dy), flat(dx)
    for i in range(dxf.size):
        dxf[i] = dyf[i] * (one if (yf[i] > zero and dyf[i] > zero) else zero)
    return dx


@backend.register("sigmoid_backward", "numba")
def sigmoid_backward(y, dy):
    """dy * y * (1 - y) (reference ``sigmoid_backward``)."""
    if not kernel_applies(y, dy):
        return reference("sigmoid_backward")(y, dy)
    return _sigmoid_backward_loop(y, dy)


@backend.register("tanh_backward", "numba")
def tanh_backward(y, dy):
    """dy * (1 - y * y) (reference ``tanh_backward``)."""
    if not kernel_applies(y, dy):
        return reference("tanh_backward")(y, dy)
    return _tanh_backward_loop(y, dy)


@backend.register("relu_backward", "numba")
def relu_backward(y, dy):
    """dy * (y > 0), y the ReLU's output (reference ``relu_backward``)."""
    if not kernel_applies(y, dy):
        return reference("relu_backward")(y, dy)
    return _relu_backward_loop(y, dy)


@backend.register("relu_guided_backward", "numba")
def relu_guided_backward(y, dy):
    """dy * ((y > 0) & (dy > 0)) (reference ``relu_guided_backward``)."""
    if not kernel_applies(y, dy):
        return reference("relu_guided_backward")(y, dy)
    return _relu_guided_backward_loop(y, dy)
