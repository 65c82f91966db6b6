"""The GRU cell with PyTorch's equations (``torch.nn.GRU``), and the R-GRU (ReLU candidate).

GRU (``relu_candidate=False``):

    r_t = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
    z_t = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
    n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}

r and z are ``TwoBiasDense`` layers over [x_t ; h_{t-1}] (W = [W_i*^T ; W_h*^T], biases b_ih, b_hh);
the candidate has two Dense layers, ``cand_x`` (W_in^T, b_in) and ``cand_h`` (W_hn^T, b_hn), because
r multiplies only the h part. Torch packs rows in the order r, z, n; ``params_from_torch`` /
``params_to_torch`` convert exactly.

R-GRU (``relu_candidate=True``), our choice of a GRU that deep Taylor decomposition can explain, in the
spirit of the R-LSTM:

    r_t, z_t = sigmoid(W_g [x_t ; h_{t-1}] + b_g)                 (one plain bias per gate, start 0)
    n_t = relu(W_in x_t + r_t * (W_hn h_{t-1}) - softplus(b_n))    (``cand_x`` has the bias
                                                                     -softplus(b_n) <= 0; ``cand_h`` none)
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}                          (h_t >= 0, a gated mix of ReLU units)

Every product is a ``GateMul`` with the gate first; 1 - z is a ``OneMinus`` layer on the gate path.
"""
from __future__ import annotations

import numpy

from .. import backend
from ..layers import Add, Concat, Dense, GateMul, ReLU, Sigmoid, Tanh
from ..layers.one_minus import OneMinus
from ..layers.two_bias_dense import TwoBiasDense
from .lstm import unpack_torch
from .relu_blocks import zero_state

TORCH_GATE_ORDER = ("r", "z", "n")


class GRUCell:
    def __init__(self, model, prefix, n_in, hidden=128, rng=None, dtype="float32", relu_candidate=False):
        self.hidden, self.dtype = int(hidden), backend.resolve_dtype(dtype)
        self.relu_candidate = bool(relu_candidate)
        H, n = self.hidden, n_in + self.hidden
        self.concat = model.add(f"{prefix}.concat", Concat())

        def gate(name):
            if relu_candidate:
                return model.add(f"{prefix}.{name}", Dense(n, H, bias="plain", rng=rng, dtype=dtype))
            return model.add(f"{prefix}.{name}", TwoBiasDense(n, H, rng=rng, dtype=dtype))

        self.gate_r, self.gate_r_act = gate("gate_r"), model.add(f"{prefix}.gate_r_sigmoid", Sigmoid())
        self.gate_z, self.gate_z_act = gate("gate_z"), model.add(f"{prefix}.gate_z_sigmoid", Sigmoid())
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
        r = self.gate_r_act(tape, self.gate_r(tape, xh))
        z = self.gate_z_act(tape, self.gate_z(tape, xh))
        pre = self.add_n(tape, self.cand_x(tape, x), self.mul_r(tape, r, self.cand_h(tape, h)))
        n = self.cand_act(tape, pre)
        h = self.add_h(tape, self.mul_n(tape, self.one_minus_z(tape, z), n), self.mul_z(tape, z, h))
        return h, h


def params_from_torch(state_dict, prefix="cell"):
    """torch.nn.GRU's state dict (arrays; keys ``weight_ih_l0`` ...) -> this (tanh) GRU cell's parameters.

    With torch rows r = [0, H), z = [H, 2H), n = [2H, 3H):
    ``prefix.gate_r.W`` = [weight_ih_l0[r].T ; weight_hh_l0[r].T], ``.b_ih`` = bias_ih_l0[r],
    ``.b_hh`` = bias_hh_l0[r] (likewise ``gate_z``); ``prefix.cand_x.W`` = weight_ih_l0[n].T,
    ``.b`` = bias_ih_l0[n]; ``prefix.cand_h.W`` = weight_hh_l0[n].T, ``.b`` = bias_hh_l0[n].
    """
    w_ih, w_hh, b_ih, b_hh = unpack_torch(state_dict, 3)
    H = w_hh.shape[1]
    r, z, n = (slice(k * H, (k + 1) * H) for k in range(3))
    out = {}
    for name, rows in (("gate_r", r), ("gate_z", z)):
        out[f"{prefix}.{name}.W"] = numpy.concatenate([w_ih[rows].T, w_hh[rows].T], axis=0)
        out[f"{prefix}.{name}.b_ih"] = b_ih[rows].copy()
        out[f"{prefix}.{name}.b_hh"] = b_hh[rows].copy()
    out[f"{prefix}.cand_x.W"] = w_ih[n].T.copy()
    out[f"{prefix}.cand_x.b"] = b_ih[n].copy()
    out[f"{prefix}.cand_h.W"] = w_hh[n].T.copy()
    out[f"{prefix}.cand_h.b"] = b_hh[n].copy()
    return out


def params_to_torch(params, prefix="cell"):
    """The reverse of ``params_from_torch``: the tanh GRU cell's parameters -> torch.nn.GRU's state dict."""
    p = {k: backend.to_numpy(v) for k, v in params.items() if k.startswith(prefix + ".")}
    H = p[f"{prefix}.cand_h.W"].shape[0]
    n_in = p[f"{prefix}.gate_r.W"].shape[0] - H
    gates = [p[f"{prefix}.gate_r.W"], p[f"{prefix}.gate_z.W"]]
    return {"weight_ih_l0": numpy.concatenate([w[:n_in].T for w in gates] + [p[f"{prefix}.cand_x.W"].T]),
            "weight_hh_l0": numpy.concatenate([w[n_in:].T for w in gates] + [p[f"{prefix}.cand_h.W"].T]),
            "bias_ih_l0": numpy.concatenate([p[f"{prefix}.gate_r.b_ih"], p[f"{prefix}.gate_z.b_ih"],
                                             p[f"{prefix}.cand_x.b"]]),
            "bias_hh_l0": numpy.concatenate([p[f"{prefix}.gate_r.b_hh"], p[f"{prefix}.gate_z.b_hh"],
                                             p[f"{prefix}.cand_h.b"]])}
