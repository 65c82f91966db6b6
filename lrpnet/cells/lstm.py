"""The standard (tanh) LSTM cell, with PyTorch's equations and parameters (``torch.nn.LSTM``).

    i_t = sigmoid(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)
    f_t = sigmoid(W_if x_t + b_if + W_hf h_{t-1} + b_hf)
    g_t = tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)
    o_t = sigmoid(W_io x_t + b_io + W_ho h_{t-1} + b_ho)
    c_t = f_t * c_{t-1} + i_t * g_t
    h_t = o_t * tanh(c_t)

Each gate is one ``TwoBiasDense`` over [x_t ; h_{t-1}]: its "W" (n_in + H, H) is [W_i*^T ; W_h*^T] and
its "b_ih", "b_hh" are torch's two biases, so the parameter count equals torch's. Layers (under
``prefix``): ``gate_i``, ``gate_f``, ``cand`` (g), ``gate_o`` and their ``_sigmoid`` / ``_tanh``.

Torch packs the four gates in ``weight_ih_l0`` (4H, n_in), ``weight_hh_l0`` (4H, H), ``bias_ih_l0``
(4H,), ``bias_hh_l0`` (4H,), rows in the order i, f, g, o. ``params_from_torch`` / ``params_to_torch``
convert between that and this cell's parameters exactly (copies, no arithmetic).
Initialisation here is the study's (truncated normal, std 1/sqrt(n_in + H); biases 0), not torch's.
"""
from __future__ import annotations

import numpy

from .. import backend
from ..layers import Add, Concat, GateMul, Sigmoid, Tanh
from ..layers.two_bias_dense import TwoBiasDense
from .relu_blocks import zero_state

TORCH_GATE_ORDER = ("i", "f", "g", "o")
LAYER_OF_GATE = {"i": "gate_i", "f": "gate_f", "g": "cand", "o": "gate_o"}
TORCH_KEYS = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")


class LSTMCell:
    def __init__(self, model, prefix, n_in, hidden=128, rng=None, dtype="float32"):
        self.hidden, self.dtype = int(hidden), backend.resolve_dtype(dtype)
        n = n_in + self.hidden
        self.concat = model.add(f"{prefix}.concat", Concat())
        self.dense = {g: model.add(f"{prefix}.{LAYER_OF_GATE[g]}", TwoBiasDense(n, hidden, rng=rng, dtype=dtype))
                      for g in TORCH_GATE_ORDER}
        self.act = {g: model.add(f"{prefix}.{LAYER_OF_GATE[g]}_{'tanh' if g == 'g' else 'sigmoid'}",
                                 Tanh() if g == "g" else Sigmoid()) for g in TORCH_GATE_ORDER}
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
        i, f, g, o = (self.act[k](tape, self.dense[k](tape, z)) for k in TORCH_GATE_ORDER)
        c = self.add_c(tape, self.mul_f(tape, f, c), self.mul_i(tape, i, g))
        h = self.mul_o(tape, o, self.c_tanh(tape, c))
        return h, (h, c)


def params_from_torch(state_dict, prefix="cell"):
    """torch.nn.LSTM's state dict (arrays; keys ``weight_ih_l0`` ...) -> this cell's parameters.

    For gate k at torch rows [kH, (k+1)H) (k = 0..3 for i, f, g, o):
    ``prefix.<layer>.W`` = [weight_ih_l0[rows].T ; weight_hh_l0[rows].T], ``.b_ih`` = bias_ih_l0[rows],
    ``.b_hh`` = bias_hh_l0[rows], with <layer> = gate_i, gate_f, cand, gate_o.
    """
    w_ih, w_hh, b_ih, b_hh = unpack_torch(state_dict, 4)
    H = w_hh.shape[1]
    out = {}
    for k, g in enumerate(TORCH_GATE_ORDER):
        rows = slice(k * H, (k + 1) * H)
        name = f"{prefix}.{LAYER_OF_GATE[g]}"
        out[f"{name}.W"] = numpy.concatenate([w_ih[rows].T, w_hh[rows].T], axis=0)
        out[f"{name}.b_ih"] = b_ih[rows].copy()
        out[f"{name}.b_hh"] = b_hh[rows].copy()
    return out


def params_to_torch(params, prefix="cell"):
    """The reverse of ``params_from_torch``: this cell's parameters -> torch.nn.LSTM's state dict."""
    return _pack(params, prefix, [LAYER_OF_GATE[g] for g in TORCH_GATE_ORDER])


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


def _pack(params, prefix, layers):
    """Stack per-gate TwoBiasDense parameters back into torch's packed tensors (rows in ``layers`` order)."""
    w = [backend.to_numpy(params[f"{prefix}.{name}.W"]) for name in layers]
    H = w[0].shape[1]
    n_in = w[0].shape[0] - H
    return {"weight_ih_l0": numpy.concatenate([wk[:n_in].T for wk in w], axis=0),
            "weight_hh_l0": numpy.concatenate([wk[n_in:].T for wk in w], axis=0),
            "bias_ih_l0": numpy.concatenate([backend.to_numpy(params[f"{prefix}.{n}.b_ih"]) for n in layers]),
            "bias_hh_l0": numpy.concatenate([backend.to_numpy(params[f"{prefix}.{n}.b_hh"]) for n in layers])}
