"""CuPy kernel for the gate of ``lrpnet/layers/structure.py`` (``GateMul``), under the same name.

y = gate * signal, so its backward pass is the reference's two products

    gatemul_backward(gate, signal, dy) = (dy * signal, dy * gate)

written by one launch that reads each of the three arrays once (two ``cupy.multiply`` calls read dy
twice).
"""
from __future__ import annotations

from lrpnet import backend

from .elementwise import Elementwise, kernel_applies, reference

_gatemul_backward = Elementwise(
    "T gate, T signal, T dy", "T dgate, T dsignal",
    "dgate = dy * signal; dsignal = dy * gate",
    "lrpnet_gatemul_backward")


@backend.register("gatemul_backward", "cupy")
def gatemul_backward(gate, signal, dy):
    """(dy * signal, dy * gate): the gradients of the gate and of the signal (reference
    ``gatemul_backward``)."""
    if not kernel_applies(gate, signal, dy):
        return reference("gatemul_backward")(gate, signal, dy)
    return _gatemul_backward(gate, signal, dy)
