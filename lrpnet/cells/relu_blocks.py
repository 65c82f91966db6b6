"""The study's ReLU blocks: the ReLU unit and the Shallow / Deep / DeepV2 recurrent cells (THESIS.md section 3).

Every ReLU unit computes ``relu(W x - softplus(b))`` (a ``Dense`` with ``bias="negsoftplus"`` followed
by a ``ReLU``), so its effective bias is <= 0, as deep Taylor decomposition assumes.

A cell registers its layers in the model under dotted names (``prefix.role``) and offers
``initial_state(tape, n)`` and ``step(tape, x_t, state) -> (output, new_state)``. It writes no backward
code: gradient and relevance are walks of the tape the step records on.
"""
from __future__ import annotations

from .. import backend
from ..layers import Concat, Dense, Dropout, ReLU


def zero_state(tape, n, size, dtype):
    """A zero leaf of shape (n, size) tagged "state" (THESIS.md section 2: initial states are zero)."""
    return tape.input(backend.xp().zeros((n, size), dtype=dtype), tag="state")


class ReLUUnit:
    """a = relu(x W - softplus(b)), optionally followed by dropout (keep probability ``keep``).

    Layers: ``name`` (Dense), ``name_relu`` and, with dropout, ``name_drop``.
    """

    def __init__(self, model, name, n_in, n_out, rng, dtype, keep=None, stationary=False):
        self.n_out = int(n_out)
        self.dense = model.add(name, Dense(n_in, n_out, bias="negsoftplus", rng=rng, dtype=dtype))
        self.relu = model.add(f"{name}_relu", ReLU())
        self.drop = None if keep is None else model.add(f"{name}_drop", Dropout(keep, stationary=stationary))

    def __call__(self, tape, x):
        a = self.relu(tape, self.dense(tape, x))
        return a if self.drop is None else self.drop(tape, a)


class ShallowCell:
    """Shallow (THESIS.md section 3): hidden_t = relu(W [x_t ; r_t] - softplus(b)) (``hidden`` units),
    r_{t+1} = relu(W' hidden_t - softplus(b')) (``state`` units). Output: hidden_t."""

    def __init__(self, model, prefix, n_in, hidden=256, state=256, rng=None, dtype="float32"):
        self.state_size, self.dtype = int(state), backend.resolve_dtype(dtype)
        self.concat = model.add(f"{prefix}.concat", Concat())
        self.hidden = ReLUUnit(model, f"{prefix}.hidden", n_in + self.state_size, hidden, rng, dtype)
        self.recur = ReLUUnit(model, f"{prefix}.state", hidden, self.state_size, rng, dtype)

    def initial_state(self, tape, n):
        return zero_state(tape, n, self.state_size, self.dtype)

    def step(self, tape, x, r):
        h = self.hidden(tape, self.concat(tape, x, r))
        return h, self.recur(tape, h)


class DeepCell:
    """Deep / DeepV2 / ConvDeep's recurrent part (THESIS.md section 3).

    a_t = the ReLU front on x_t (sizes ``front``: (256,) for Deep, (128, 256) for DeepV2, (128,) on
    ConvDeep's 448 conv features); m_t = relu(W [a_t ; r_t] - softplus(b)) (``mid`` units);
    r_{t+1} = relu(W' m_t - softplus(b')) (``state`` units). Output: m_t.

    With ``keep`` (Deep-SD), dropout sits on the last front layer, on [a_t ; r_t] and on m_t; the dropped
    m_t feeds both r_{t+1} and the read-out. ``stationary=True`` reuses one mask per sequence.
    """

    def __init__(self, model, prefix, n_in, front=(256,), mid=128, state=256, rng=None, dtype="float32",
                 keep=None, stationary=True):
        self.state_size, self.dtype = int(state), backend.resolve_dtype(dtype)
        self.front, n = [], n_in
        for k, size in enumerate(front):
            last = k == len(front) - 1
            self.front.append(ReLUUnit(model, f"{prefix}.front{k}", n, size, rng, dtype,
                                       keep=keep if last else None, stationary=stationary))
            n = size
        self.concat = model.add(f"{prefix}.concat", Concat())
        self.concat_drop = None if keep is None else model.add(f"{prefix}.concat_drop",
                                                              Dropout(keep, stationary=stationary))
        self.mid = ReLUUnit(model, f"{prefix}.mid", n + self.state_size, mid, rng, dtype,
                            keep=keep, stationary=stationary)
        self.recur = ReLUUnit(model, f"{prefix}.state", mid, self.state_size, rng, dtype)

    def initial_state(self, tape, n):
        return zero_state(tape, n, self.state_size, self.dtype)

    def step(self, tape, x, r):
        a = x
        for unit in self.front:
            a = unit(tape, a)
        z = self.concat(tape, a, r)
        if self.concat_drop is not None:
            z = self.concat_drop(tape, z)
        m = self.mid(tape, z)
        return m, self.recur(tape, m)
