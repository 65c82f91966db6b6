"""One minus a gate: y = 1 - z (the GRU's update h' = (1 - z) * n + z * h).

Gradient: dy/dz = -1.

Relevance: this layer sits on a gate path only (its output is always input 0, the gate, of a
``GateMul``). Under signal-take-all (THESIS.md section 4) gates receive no relevance, so no relevance
ever reaches it. A rule that does send relevance into gates (LRP-all, Arras et al. 2019) should pass
it through unchanged, R_z = R_y, like an identity: 1 - z is an affine reparametrisation of the gate,
and the proportional rule z * (dy/dz) * R / y = -z R / (1 - z) would flip the sign of relevance.
"""
from __future__ import annotations

from .base import Layer


class OneMinus(Layer):
    kind = "oneminus"

    def forward(self, tape, z):
        return 1 - z, None

    def backward(self, cache, dy):
        return (-dy,), {}
