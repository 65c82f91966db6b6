"""The standard (tanh) LSTM cell, with PyTorch's equations and parameters (``torch.nn.LSTM``).

    i_t = sigmoid(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)
    f_t = sigmoid(W_if x_t + b_if + W_hf h_{t-1} + b_hf)
    g_t = tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)
    o_t = sigmoid(W_io x_t + b_io + W_ho h_{t-1} + b_ho)
    c_t = f_t * c_{t-1} + i_t * g_t
    h_t = o_t * tanh(c_t)

Each affine map is a ``TwoBiasDense`` over [x_t ; h_{t-1}]: its "W" is [W_i*^T ; W_h*^T] and its "b_ih",
"b_hh" are torch's two biases, so the parameter count equals torch's. The three sigmoid gates are one
matrix product (``lrpnet.cells.gates``): layer ``prefix.gates`` with W of shape (n_in + H, 3H), columns
i, f, o, then ``prefix.gates_sigmoid`` and ``prefix.gate_i`` / ``_f`` / ``_o`` cutting out each gate.
The candidate g is its own layer ``prefix.cand`` (W (n_in + H, H)) with ``prefix.cand_tanh``.

Torch packs the four gates in ``weight_ih_l0`` (4H, n_in), ``weight_hh_l0`` (4H, H), ``bias_ih_l0``
(4H,), ``bias_hh_l0`` (4H,), rows in the order i, f, g, o. ``params_from_torch`` / ``params_to_torch``
convert between that and this cell's parameters exactly (copies, no arithmetic).
Initialisation here is the study's (truncated normal, std 1/sqrt(n_in + H); biases 0), not torch's;
weights are drawn gate by gate in torch's order i, f, g, o.
"""
from __future__ import annotations

import numpy

from .. import backend
from ..layers import Add, Concat, GateMul, Tanh
from ..layers.two_bias_dense import TwoBiasDense
from .gates import GateBlock
from .relu_blocks import zero_state

TORCH_GATE_ORDER = ("i", "f", "g", "o")
SIGMOID_GATES = ("i", "f", "o")          # the columns of ``prefix.gates``, in this order
TORCH_KEYS = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")


class LSTMCell:
    def __init__(self, model, prefix, n_in, hidden=128, rng=None, dtype="float32"):
        self.hidden, self.dtype = int(hidden), backend.resolve_dtype(dtype)
        n = n_in + self.hidden
        self.concat = model.add(f"{prefix}.concat", Concat())
        drawn = {g: TwoBiasDense(n, hidden, rng=rng, dtype=dtype) for g in TORCH_GATE_ORDER}   # in this order
        self.gates = GateBlock(model, prefix, SIGMOID_GATES, [drawn[g] for g in SIGMOID_GATES])
        self.cand = model.add(f"{prefix}.cand", drawn["g"])
        self.cand_tanh = model.add(f"{prefix}.cand_tanh", Tanh())
        self.mul_f = model.add(f"{prefix}.mul_f", GateMul())
        self.mul_i = model.add(f"{prefix}.mul_i", GateMul())
        self.add_c = model.add(f"{prefix}.add_c", Add())
        self.c_tanh = model.add(f"{prefix}.c_tanh", Tanh())
        self.mul_o = model.add(f"{prefix}.mul_o", GateMul())

    def initial_state(self, tape, n):
        """(h_0, c_0) = (0, 0)."""
        return zero_state(tape, n, self.hidden, self.dtype), zero_state(tape, n, self.hidden, self.dtype)

    def step(self, tape, x, state):
        h, c = state
        z = self.concat(tape, x, h)
        i, f, o = self.gates(tape, z)
        g = self.cand_tanh(tape, self.cand(tape, z))
        c = self.add_c(tape, self.mul_f(tape, f, c), self.mul_i(tape, i, g))
        h = self.mul_o(tape, o, self.c_tanh(tape, c))
        return h, (h, c)


def params_from_torch(state_dict, prefix="cell"):
    """torch.nn.LSTM's state dict (arrays; keys ``weight_ih_l0`` ...) -> this cell's parameters.

    With torch rows i = [0, H), f = [H, 2H), g = [2H, 3H), o = [3H, 4H) and, for rows r,
    W(r) = [weight_ih_l0[r].T ; weight_hh_l0[r].T] (shape (n_in + H, H)):
    ``prefix.gates.W`` = [W(i) W(f) W(o)] (columns side by side), ``.b_ih`` = bias_ih_l0[i, f, o rows],
    ``.b_hh`` = bias_hh_l0[i, f, o rows]; ``prefix.cand.W`` = W(g), ``.b_ih`` = bias_ih_l0[g],
    ``.b_hh`` = bias_hh_l0[g].
    """
    w_ih, w_hh, b_ih, b_hh = unpack_torch(state_dict, 4)
    return _unpack(w_ih, w_hh, b_ih, b_hh, prefix, TORCH_GATE_ORDER, {"gates": SIGMOID_GATES, "cand": ("g",)})


def params_to_torch(params, prefix="cell"):
    """The reverse of ``params_from_torch``: this cell's parameters -> torch.nn.LSTM's state dict."""
    return _pack(params, prefix, TORCH_GATE_ORDER, {"gates": SIGMOID_GATES, "cand": ("g",)})


def unpack_torch(state_dict, n_gates):
    """The four packed tensors of a one-layer torch LSTM (n_gates=4) or GRU (3), as numpy arrays, checked."""
    missing = [k for k in TORCH_KEYS if k not in state_dict]
    if missing:
        raise KeyError(f"torch state dict lacks {missing}; expected keys {TORCH_KEYS} "
                       f"(a one-layer, unidirectional module with biases)")
    w_ih, w_hh, b_ih, b_hh = (numpy.asarray(backend.to_numpy(state_dict[k])) for k in TORCH_KEYS)
    H = w_hh.shape[1]
    if w_hh.shape != (n_gates * H, H) or w_ih.shape[0] != n_gates * H or b_ih.shape != (n_gates * H,) \
            or b_hh.shape != (n_gates * H,):
        raise ValueError(f"torch shapes {w_ih.shape}, {w_hh.shape}, {b_ih.shape}, {b_hh.shape} do not "
                         f"fit {n_gates} gates of a hidden size H (expected ({n_gates}H, in), ({n_gates}H, H), "
                         f"({n_gates}H,), ({n_gates}H,))")
    return w_ih, w_hh, b_ih, b_hh


def _unpack(w_ih, w_hh, b_ih, b_hh, prefix, order, layers):
    """torch's packed tensors (row blocks in ``order``) -> {prefix.layer.W/b_ih/b_hh}, ``layers`` mapping
    each TwoBiasDense layer to the gates whose columns it holds, side by side."""
    H = w_hh.shape[1]
    rows = {g: slice(k * H, (k + 1) * H) for k, g in enumerate(order)}
    out = {}
    for name, gates in layers.items():
        out[f"{prefix}.{name}.W"] = numpy.concatenate(
            [numpy.concatenate([w_ih[rows[g]].T, w_hh[rows[g]].T], axis=0) for g in gates], axis=1)
        out[f"{prefix}.{name}.b_ih"] = numpy.concatenate([b_ih[rows[g]] for g in gates])
        out[f"{prefix}.{name}.b_hh"] = numpy.concatenate([b_hh[rows[g]] for g in gates])
    return out


def _pack(params, prefix, order, layers):
    """The reverse of ``_unpack``: TwoBiasDense parameters back into torch's packed tensors."""
    p = {k: backend.to_numpy(v) for k, v in params.items() if k.startswith(prefix + ".")}
    blocks = {}                  # gate -> (W block (n_in + H, H), b_ih block, b_hh block)
    for name, gates in layers.items():
        W, b_ih, b_hh = (p[f"{prefix}.{name}.{k}"] for k in ("W", "b_ih", "b_hh"))
        H = W.shape[1] // len(gates)
        for k, g in enumerate(gates):
            cols = slice(k * H, (k + 1) * H)
            blocks[g] = (W[:, cols], b_ih[cols], b_hh[cols])
    H = blocks[order[0]][0].shape[1]
    n_in = blocks[order[0]][0].shape[0] - H
    return {"weight_ih_l0": numpy.concatenate([blocks[g][0][:n_in].T for g in order], axis=0),
            "weight_hh_l0": numpy.concatenate([blocks[g][0][n_in:].T for g in order], axis=0),
            "bias_ih_l0": numpy.concatenate([blocks[g][1] for g in order]),
            "bias_hh_l0": numpy.concatenate([blocks[g][2] for g in order])}
