"""Elementwise nonlinearities: ReLU, Sigmoid, Tanh.

For relevance, a ReLU passes relevance through unchanged (the rules sit on the linear layer before
it); guided backprop changes only the ReLU's backward step: 1[h > 0] * max(0, incoming).
"""
from __future__ import annotations

from .. import backend
from .base import Layer, sigmoid


class ReLU(Layer):
    kind = "relu"

    def forward(self, tape, x):
        y = backend.xp().maximum(x, 0)
        return y, y

    def backward(self, y, dy):
        return (dy * (y > 0),), {}

    def guided_backward(self, y, dy):
        return (dy * ((y > 0) & (dy > 0)),), {}


class Sigmoid(Layer):
    kind = "sigmoid"

    def forward(self, tape, x):
        y = sigmoid(x)
        return y, y

    def backward(self, y, dy):
        return (dy * y * (1 - y),), {}


class Tanh(Layer):
    kind = "tanh"

    def forward(self, tape, x):
        y = backend.xp().tanh(x)
        return y, y

    def backward(self, y, dy):
        return (dy * (1 - y * y),), {}
