"""Recurrent cells: small classes that register their layers in a model and record one time step.

Every cell offers ``initial_state(tape, n)`` (zero leaves tagged "state") and
``step(tape, x_t, state) -> (output, new_state)``. Cells hold no backward code: the gradient and every
relevance pass are walks of the tape (``lrpnet.graph``).
"""
from .conv_stack import ConvStack
from .gru import GRUCell
from .lstm import LSTMCell
from .gates import GateBlock
from .relu_blocks import DeepCell, ReLUFront, ReLUUnit, ShallowCell, deep_blocks
from .rlstm import RLSTMCell

__all__ = ["ReLUUnit", "ReLUFront", "ShallowCell", "DeepCell", "deep_blocks", "RLSTMCell", "LSTMCell", "GRUCell",
           "ConvStack", "GateBlock"]

