"""Layers: each file holds one layer's forward pass and gradient; relevance rules live in lrpnet.rules."""
from .activations import ReLU, Sigmoid, Tanh
from .base import Layer
from .dense import Dense
from .dropout import Dropout
from .structure import Add, Concat, Flatten, GateMul, Reshape, TimeSlice

__all__ = ["Layer", "Dense", "ReLU", "Sigmoid", "Tanh", "Dropout", "Add", "Concat", "Flatten",
           "GateMul", "Reshape", "TimeSlice"]
