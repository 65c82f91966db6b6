"""Elementwise nonlinearities: ReLU, Sigmoid, Tanh.

For relevance, a ReLU passes relevance through unchanged (the rules sit on the linear layer before
it); guided backprop changes only the ReLU's backward step: 1[h > 0] * max(0, incoming).

The pointwise steps are registered operations, so a GPU kernel can do each in one launch.
"""
from __future__ import annotations

from .. import backend
from .base import Layer, sigmoid


@backend.register("relu_backward")
def relu_backward(y, dy):
    """dy * 1[y > 0], from the ReLU's output y."""
    return dy * (y > 0)


@backend.register("relu_guided_backward")
def relu_guided_backward(y, dy):
    """Guided backprop's step: dy * 1[y > 0] * 1[dy > 0]."""
    return dy * ((y > 0) & (dy > 0))


@backend.register("sigmoid_backward")
def sigmoid_backward(y, dy):
    """dy * y (1 - y), from the sigmoid's output y."""
    return dy * y * (1 - y)


@backend.register("tanh_backward")
def tanh_backward(y, dy):
    """dy * (1 - y^2), from the tanh's output y."""
    return dy * (1 - y * y)


class ReLU(Layer):
    kind = "relu"

    def forward(self, tape, x):
        y = backend.xp().maximum(x, 0)
        return y, y

    def backward(self, y, dy):
        return (backend.op("relu_backward")(y, dy),), {}

    def guided_backward(self, y, dy):
        return (backend.op("relu_guided_backward")(y, dy),), {}


class Sigmoid(Layer):
    kind = "sigmoid"

    def forward(self, tape, x):
        y = sigmoid(x)
        return y, y

    def backward(self, y, dy):
        return (backend.op("sigmoid_backward")(y, dy),), {}

    def guided_backward(self, y, dy):
        """Guided backprop as the thesis's text defines it for gated cells: a gate's derivative is set
        to zero, so no signal flows through the gates (THESIS.md section 7)."""
        return (backend.xp().zeros_like(dy),), {}


class Tanh(Layer):
    kind = "tanh"

    def forward(self, tape, x):
        y = backend.xp().tanh(x)
        return y, y

    def backward(self, y, dy):
        return (backend.op("tanh_backward")(y, dy),), {}
