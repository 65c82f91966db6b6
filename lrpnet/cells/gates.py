"""A cell's sigmoid gates in one matrix product: one linear layer, one sigmoid, one ``Columns`` per gate.

The gates of a cell all read the same input (the concatenation [x_t ; h_{t-1}]), so instead of one
linear layer per gate the cell has one whose columns are the gates' side by side (W = [W_1 W_2 ...],
b = [b_1 b_2 ...]), one sigmoid, and a shape-only ``Columns`` layer cutting out each gate:

    layers: ``prefix.gates`` (the linear layer), ``prefix.gates_sigmoid``, ``prefix.gate_<g>`` (one per gate)

The forward values and the gradient are those of separate gates. So is every relevance: a linear
rule treats each output column on its own (its denominator z_k is per column), and R_in = x * (W s)
sums over the columns, so one rule over the joined columns gives the sum of the per-gate rules'
relevances (equal up to float rounding). Under signal-take-all, the default gate rule, no relevance
reaches a gate, and the relevance pass skips the whole block; the gate rules that feed gates (prop,
half) send each gate's relevance back through its ``Columns`` into the joined layer.

The candidate (c~, g, n) stays a layer of its own: it always receives relevance, and a layer holding
it with the gates would make every explanation run its rule over all the gates' columns too.

Weights are drawn gate by gate, as separate layers draw them (``join_columns``), so a seed gives the
same model as in the layout with one layer per gate. Checkpoints written in that layout
(``prefix.gate_i.W`` ...) load through ``joined_from``, the old layers' names (``lrpnet.io.load``).
"""
from __future__ import annotations

import copy

from .. import backend
from ..layers import Columns, Sigmoid


def join_columns(parts):
    """One linear layer computing the outputs of ``parts`` side by side: the same class, input size
    and bias mode, each parameter the parts' parameters concatenated along the output (last) axis."""
    joined = copy.copy(parts[0])
    xp = backend.xp()
    joined.params = {k: xp.concatenate([p.params[k] for p in parts], axis=-1) for k in parts[0].params}
    joined.n_out = sum(p.n_out for p in parts)
    joined.name = None
    return joined


class GateBlock:
    """The sigmoid gates ``names`` (e.g. "ifo") of a cell, from their separately drawn linear layers
    ``parts`` (one per gate, in the order of ``names``); calling it on z gives one gate value per name."""

    def __init__(self, model, prefix, names, parts):
        self.names = tuple(names)
        self.dense = model.add(f"{prefix}.gates", join_columns(parts))
        self.dense.joined_from = tuple(f"{prefix}.gate_{g}" for g in self.names)
        self.act = model.add(f"{prefix}.gates_sigmoid", Sigmoid())
        bounds = [0]
        for p in parts:
            bounds.append(bounds[-1] + p.n_out)
        self.cut = [model.add(f"{prefix}.gate_{g}", Columns(a, b))
                    for g, a, b in zip(self.names, bounds[:-1], bounds[1:])]

    def __call__(self, tape, z):
        a = self.act(tape, self.dense(tape, z))
        return [cut(tape, a) for cut in self.cut]
