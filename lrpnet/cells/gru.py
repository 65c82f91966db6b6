"""The GRU cell with PyTorch's equations (``torch.nn.GRU``), and the R-GRU (ReLU candidate).

GRU (``relu_candidate=False``):

    r_t = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
    z_t = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
    n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}

The gates r and z are one matrix product (``lrpnet.cells.gates``): one ``TwoBiasDense`` over
[x_t ; h_{t-1}], layer ``prefix.gates`` (W = [W_i*^T ; W_h*^T] of shape (n_in + H, 2H), columns r, z;
biases b_ih, b_hh), then ``prefix.gates_sigmoid`` and ``prefix.gate_r`` / ``prefix.gate_z`` cutting out
each gate. The candidate has two Dense layers, ``cand_x`` (W_in^T, b_in) and ``cand_h`` (W_hn^T, b_hn),
because r multiplies only the h part. Torch packs rows in the order r, z, n; ``params_from_torch`` /
``params_to_torch`` convert exactly. Weights are drawn in the order r, z, cand_x, cand_h.

R-GRU (``relu_candidate=True``), our choice of a GRU that deep Taylor decomposition can explain, in the
spirit of the R-LSTM:

    r_t, z_t = sigmoid(W_g [x_t ; h_{t-1}] + b_g)                 (one plain bias per gate, start 0;
                                                                     one Dense ``prefix.gates``, columns r, z)
    n_t = relu(W_in x_t + r_t * (W_hn h_{t-1}) - softplus(b_n))    (``cand_x`` has the bias
                                                                     -softplus(b_n) <= 0; ``cand_h`` none)
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}                          (h_t >= 0, a gated mix of ReLU units)

Every product is a ``GateMul`` with the gate first; 1 - z is a ``OneMinus`` layer on the gate path.
"""
from __future__ import annotations

import numpy

from .. import backend
from ..layers import Add, Concat, Dense, GateMul, ReLU, Tanh
from ..layers.one_minus import OneMinus
from ..layers.two_bias_dense import TwoBiasDense
from .gates import GateBlock
from .lstm import _pack, _unpack, unpack_torch
from .relu_blocks import zero_state

TORCH_GATE_ORDER = ("r", "z", "n")


class GRUCell:
    def __init__(self, model, prefix, n_in, hidden=128, rng=None, dtype="float32", relu_candidate=False):
        self.hidden, self.dtype = int(hidden), backend.resolve_dtype(dtype)
        self.relu_candidate = bool(relu_candidate)
        H, n = self.hidden, n_in + self.hidden
        self.concat = model.add(f"{prefix}.concat", Concat())

        def gate():
            if relu_candidate:
                return Dense(n, H, bias="plain", rng=rng, dtype=dtype)
            return TwoBiasDense(n, H, rng=rng, dtype=dtype)

        self.gates = GateBlock(model, prefix, "rz", [gate(), gate()])          # drawn r, then z
        self.cand_x = model.add(f"{prefix}.cand_x", Dense(n_in, H, bias="negsoftplus" if relu_candidate else "plain",
                                                          rng=rng, dtype=dtype))
        self.cand_h = model.add(f"{prefix}.cand_h", Dense(H, H, bias=None if relu_candidate else "plain",
                                                          rng=rng, dtype=dtype))
        self.mul_r = model.add(f"{prefix}.mul_r", GateMul())
        self.add_n = model.add(f"{prefix}.add_n", Add())
        self.cand_act = model.add(f"{prefix}.cand_relu" if relu_candidate else f"{prefix}.cand_tanh",
                                  ReLU() if relu_candidate else Tanh())
        self.one_minus_z = model.add(f"{prefix}.one_minus_z", OneMinus())
        self.mul_n = model.add(f"{prefix}.mul_n", GateMul())
        self.mul_z = model.add(f"{prefix}.mul_z", GateMul())
        self.add_h = model.add(f"{prefix}.add_h", Add())

    def initial_state(self, tape, n):
        """h_0 = 0."""
        return zero_state(tape, n, self.hidden, self.dtype)

    def step(self, tape, x, h):
        xh = self.concat(tape, x, h)
        r, z = self.gates(tape, xh)
        pre = self.add_n(tape, self.cand_x(tape, x), self.mul_r(tape, r, self.cand_h(tape, h)))
        n = self.cand_act(tape, pre)
        h = self.add_h(tape, self.mul_n(tape, self.one_minus_z(tape, z), n), self.mul_z(tape, z, h))
        return h, h


def params_from_torch(state_dict, prefix="cell"):
    """torch.nn.GRU's state dict (arrays; keys ``weight_ih_l0`` ...) -> this (tanh) GRU cell's parameters.

    With torch rows r = [0, H), z = [H, 2H), n = [2H, 3H) and W(rows) = [weight_ih_l0[rows].T ;
    weight_hh_l0[rows].T]: ``prefix.gates.W`` = [W(r) W(z)] (columns side by side), ``.b_ih`` =
    bias_ih_l0[r, z rows], ``.b_hh`` = bias_hh_l0[r, z rows]; ``prefix.cand_x.W`` = weight_ih_l0[n].T,
    ``.b`` = bias_ih_l0[n]; ``prefix.cand_h.W`` = weight_hh_l0[n].T, ``.b`` = bias_hh_l0[n].
    """
    w_ih, w_hh, b_ih, b_hh = unpack_torch(state_dict, 3)
    out = _unpack(w_ih, w_hh, b_ih, b_hh, prefix, TORCH_GATE_ORDER, {"gates": ("r", "z")})
    n = slice(2 * w_hh.shape[1], 3 * w_hh.shape[1])
    out[f"{prefix}.cand_x.W"] = w_ih[n].T.copy()
    out[f"{prefix}.cand_x.b"] = b_ih[n].copy()
    out[f"{prefix}.cand_h.W"] = w_hh[n].T.copy()
    out[f"{prefix}.cand_h.b"] = b_hh[n].copy()
    return out


def params_to_torch(params, prefix="cell"):
    """The reverse of ``params_from_torch``: the tanh GRU cell's parameters -> torch.nn.GRU's state dict."""
    out = _pack(params, prefix, ("r", "z"), {"gates": ("r", "z")})
    p = {k: backend.to_numpy(params[f"{prefix}.{k}"]) for k in ("cand_x.W", "cand_x.b", "cand_h.W", "cand_h.b")}
    return {"weight_ih_l0": numpy.concatenate([out["weight_ih_l0"], p["cand_x.W"].T]),
            "weight_hh_l0": numpy.concatenate([out["weight_hh_l0"], p["cand_h.W"].T]),
            "bias_ih_l0": numpy.concatenate([out["bias_ih_l0"], p["cand_x.b"]]),
            "bias_hh_l0": numpy.concatenate([out["bias_hh_l0"], p["cand_h.b"]])}
