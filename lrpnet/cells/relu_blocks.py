"""The study's ReLU blocks: the ReLU unit and the Shallow / Deep / DeepV2 recurrent cells (THESIS.md section 3).

Every ReLU unit computes ``relu(W x - softplus(b))`` (a ``Dense`` with ``bias="negsoftplus"`` followed
by a ``ReLU``), so its effective bias is <= 0, as deep Taylor decomposition assumes.

A cell registers its layers in the model under dotted names (``prefix.role``) and offers
``initial_state(tape, n)`` and ``step(tape, x_t, state) -> (output, new_state)``. It writes no backward
code: gradient and relevance are walks of the tape the step records on.

A block without recurrence (``ReLUFront``, a conv stack without lateral connections) is also
``batched``: ``rows(tape, x)`` runs it on any number of rows at once (a model gives it all T steps'
rows, ``lrpnet.models.recurrent``), and ``tail(tape, x_t)`` is what must still run step by step, its
dropout (so that a naive mask is drawn per step and a stationary one reused, in the order of the
generator's draws that running it step by step gives). Its ``step`` is ``tail(rows(x_t))``. A
batched block after one whose tail drops out runs step by step (``RecurrentModel.segments``).
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


class ReLUFront:
    """ReLU units in a row, without recurrence: R-LSTM's front layer ("front"), each of Deep's and
    DeepV2's front layers (``prefix.front0``, ``prefix.front1``: one block per layer, ``deep_blocks``,
    since DeepV2 drops after both). ``sizes``: the units' widths; ``names``: their layer names.
    Dropout (keep probability ``keep``) only on the last unit's output.

    Batched (module docstring): ``rows`` is every unit's dense layer and ReLU, ``tail`` the dropout.
    """
    batched = True

    def __init__(self, model, names, n_in, sizes, rng, dtype, keep=None, stationary=False):
        self.units, n = [], n_in
        for k, (name, size) in enumerate(zip(names, sizes)):
            last = k == len(sizes) - 1
            self.units.append(ReLUUnit(model, name, n, size, rng, dtype, keep=keep if last else None,
                                       stationary=stationary))
            n = size
        self.n_out, self.drop = n, self.units[-1].drop

    def initial_state(self, tape, n):
        return None

    def rows(self, tape, x):
        for unit in self.units:
            x = unit.relu(tape, unit.dense(tape, x))
        return x

    def tail(self, tape, x):
        return x if self.drop is None else self.drop(tape, x)

    def step(self, tape, x, state):
        return self.tail(tape, self.rows(tape, x)), None


class ShallowCell:
    """Shallow (THESIS.md section 3): hidden_t = relu(W [x_t ; r_t] - softplus(b)) (``hidden`` units),
    r_{t+1} = relu(W' hidden_t - softplus(b')) (``state`` units). Output: hidden_t.

    With ``keep``, naive dropout on the hidden -> recurrent path only (layer ``prefix.hidden_drop``,
    THESIS.md section 7): r_{t+1} reads the dropped hidden_t, the read-out the undropped one.
    """

    def __init__(self, model, prefix, n_in, hidden=256, state=256, rng=None, dtype="float32", keep=None):
        self.state_size, self.dtype = int(state), backend.resolve_dtype(dtype)
        self.concat = model.add(f"{prefix}.concat", Concat())
        self.hidden = ReLUUnit(model, f"{prefix}.hidden", n_in + self.state_size, hidden, rng, dtype)
        self.hidden_drop = None if keep is None else model.add(f"{prefix}.hidden_drop", Dropout(keep))
        self.recur = ReLUUnit(model, f"{prefix}.state", hidden, self.state_size, rng, dtype)

    def initial_state(self, tape, n):
        return zero_state(tape, n, self.state_size, self.dtype)

    def step(self, tape, x, r):
        h = self.hidden(tape, self.concat(tape, x, r))
        to_state = h if self.hidden_drop is None else self.hidden_drop(tape, h)
        return h, self.recur(tape, to_state)


class DeepCell:
    """Deep / DeepV2 / ConvDeep's recurrent part (THESIS.md section 3), after their front layers
    (``ReLUFront`` blocks: 256 for Deep, 128 then 256 for DeepV2, 128 on ConvDeep's 448 conv
    features), whose output a_t it reads: m_t = relu(W [a_t ; r_t] - softplus(b)) (``mid`` units);
    r_{t+1} = relu(W' m_t - softplus(b')) (``state`` units). Output: m_t.

    With ``keep``, dropout sits where the thesis's code put it (THESIS.md section 7): on [a_t ; r_t]
    (``prefix.concat_drop``) and on the path m_t -> r_{t+1} (``prefix.mid_drop``). The output is the
    undropped m_t: the read-out at step T draws its own mask (the model's ``readout_drop``).
    ``stationary=True`` (Deep-SD) reuses one mask per sequence, ``False`` draws a fresh one per step.
    """

    def __init__(self, model, prefix, n_in, mid=128, state=256, rng=None, dtype="float32",
                 keep=None, stationary=True):
        self.state_size, self.dtype = int(state), backend.resolve_dtype(dtype)

        def dropout(name):
            return None if keep is None else model.add(f"{prefix}.{name}", Dropout(keep, stationary=stationary))

        self.concat = model.add(f"{prefix}.concat", Concat())
        self.concat_drop = dropout("concat_drop")
        self.mid = ReLUUnit(model, f"{prefix}.mid", n_in + self.state_size, mid, rng, dtype)
        self.mid_drop = dropout("mid_drop")
        self.recur = ReLUUnit(model, f"{prefix}.state", mid, self.state_size, rng, dtype)

    def initial_state(self, tape, n):
        return zero_state(tape, n, self.state_size, self.dtype)

    def step(self, tape, a, r):
        z = self.concat(tape, a, r)
        if self.concat_drop is not None:
            z = self.concat_drop(tape, z)
        m = self.mid(tape, z)
        to_state = m if self.mid_drop is None else self.mid_drop(tape, m)
        return m, self.recur(tape, to_state)


def deep_blocks(model, prefix, n_in, front=(256,), mid=128, state=256, rng=None, dtype="float32",
                keep=None, stationary=True):
    """Deep's blocks: one ``ReLUFront`` per front layer (``prefix.front<k>``, each with dropout on its
    output when ``keep`` is given: Deep's and ConvDeep's one front layer, and DeepV2's two, THESIS.md
    section 7), then its recurrent part, drawn in that order."""
    blocks, n = [], n_in
    for k, size in enumerate(front):
        blocks.append(ReLUFront(model, [f"{prefix}.front{k}"], n, (size,), rng, dtype, keep=keep,
                                stationary=stationary))
        n = blocks[-1].n_out
    return blocks + [DeepCell(model, prefix, n, mid, state, rng, dtype, keep=keep, stationary=stationary)]
