"""The R-LSTM cell, the thesis's proposal (THESIS.md section 3).

    i_t, f_t, o_t = sigmoid(W_g [x_t ; h_{t-1}] + b_g)             (gate biases start at 0)
    c~_t          = relu(W_c [x_t ; h_{t-1}] - softplus(b_c))      (a ReLU unit instead of tanh)
    c_t           = f_t * c_{t-1} + i_t * c~_t
    h_t           = o_t * c_t                                        (no tanh: c_t >= 0 already)

So the cell is a ReLU network modulated by gates. Every product is a ``GateMul`` with the gate first,
which is what signal-take-all and its variants key on.

The three gates are one matrix product (``lrpnet.cells.gates``): layer ``prefix.gates`` (W of shape
(n_in + units, 3 units), columns i, f, o), ``prefix.gates_sigmoid`` and ``prefix.gate_i`` / ``_f`` /
``_o`` cutting out each gate; the candidate is its own ReLU unit ``prefix.cand``, ``prefix.cand_relu``.

Dropout (keep probability ``keep``) goes where ``drop`` says: "gates" (on i, f and o after the
sigmoid), "candidate" (on c~) and "h" (on h_t; the dropped h_t is both the next step's state and the
cell's output). The naive R-LSTM drops at all three with fresh masks; R-LSTM-SD only on h_t with one
stationary mask.
"""
from __future__ import annotations

from .. import backend
from ..layers import Add, Concat, Dense, Dropout, GateMul, ReLU
from .gates import GateBlock
from .relu_blocks import zero_state

DROP_PLACES = ("gates", "candidate", "h")


class RLSTMCell:
    def __init__(self, model, prefix, n_in, units=72, rng=None, dtype="float32", keep=None,
                 stationary=False, drop=()):
        bad = [p for p in drop if p not in DROP_PLACES]
        if bad:
            raise ValueError(f"unknown R-LSTM dropout places {bad}; expected some of {DROP_PLACES}")
        self.units, self.dtype = int(units), backend.resolve_dtype(dtype)
        n = n_in + self.units

        def dropout(place, name):
            if keep is None or place not in drop:
                return None
            return model.add(f"{prefix}.{name}_drop", Dropout(keep, stationary=stationary))

        self.concat = model.add(f"{prefix}.concat", Concat())
        # drawn in the order of the one-layer-per-gate layout: i, f, o, then the candidate
        parts = [Dense(n, units, bias="plain", rng=rng, dtype=dtype) for _ in "ifo"]
        self.gates = GateBlock(model, prefix, "ifo", parts)
        self.gate_drop = [dropout("gates", f"gate_{g}") for g in "ifo"]
        self.cand = model.add(f"{prefix}.cand", Dense(n, units, bias="negsoftplus", rng=rng, dtype=dtype))
        self.cand_relu = model.add(f"{prefix}.cand_relu", ReLU())
        self.cand_drop = dropout("candidate", "cand")
        self.mul_f = model.add(f"{prefix}.mul_f", GateMul())
        self.mul_i = model.add(f"{prefix}.mul_i", GateMul())
        self.add_c = model.add(f"{prefix}.add_c", Add())
        self.mul_o = model.add(f"{prefix}.mul_o", GateMul())
        self.h_drop = dropout("h", "h")

    def initial_state(self, tape, n):
        """(h_0, c_0) = (0, 0)."""
        return zero_state(tape, n, self.units, self.dtype), zero_state(tape, n, self.units, self.dtype)

    def step(self, tape, x, state):
        h, c = state
        z = self.concat(tape, x, h)
        i, f, o = (a if drop is None else drop(tape, a) for a, drop in zip(self.gates(tape, z), self.gate_drop))
        cand = self.cand_relu(tape, self.cand(tape, z))
        if self.cand_drop is not None:
            cand = self.cand_drop(tape, cand)
        c = self.add_c(tape, self.mul_f(tape, f, c), self.mul_i(tape, i, cand))
        h = self.mul_o(tape, o, c)
        if self.h_drop is not None:
            h = self.h_drop(tape, h)
        return h, (h, c)
