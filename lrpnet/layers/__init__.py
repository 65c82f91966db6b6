"""Layers: each file holds one layer's forward pass and gradient; relevance rules live in lrpnet.rules."""
from .activations import ReLU, Sigmoid, Tanh
from .base import Layer
from .conv import Conv2D
from .dense import Dense
from .dropout import Dropout
from .pool import AvgPool2D, MaxPool2D, SumPool2D
from .structure import (Add, Columns, Concat, Flatten, GateMul, Reshape, StackSteps, StepRows, TimeSlice,
                        TimeSlices)

__all__ = ["Layer", "Dense", "ReLU", "Sigmoid", "Tanh", "Dropout", "Add", "Concat", "Flatten",
           "GateMul", "Reshape", "TimeSlice", "TimeSlices", "StepRows", "StackSteps", "Columns", "Conv2D",
           "MaxPool2D", "AvgPool2D", "SumPool2D"]
