"""Dense layer with two bias vectors, as PyTorch's LSTM and GRU gates have: z = x W + b_ih + b_hh.

A torch gate computes ``W_ih x + b_ih + W_hh h + b_hh``. Written as one affine map of the
concatenation [x ; h], that is ``[x ; h] W + (b_ih + b_hh)`` with W = [W_ih^T ; W_hh^T] of shape
(n_x + n_h, out). Keeping both bias vectors as parameters makes the parameter count and the weights
equal to torch's (so ``lrpnet.io.from_torch`` copies them one to one); keeping W as one matrix over
[x ; h] makes the gate one linear layer, so every LRP rule written against ``weight`` / ``bias`` /
``linear`` / ``linear_input_grad`` applies to it unchanged.

``kind`` is "dense": for relevance this layer IS a dense layer whose effective bias is
``b_ih + b_hh`` (the ``bias`` property). Only its parameter bookkeeping differs.
"""
from __future__ import annotations

from .. import backend
from .base import sum_over_rows
from .dense import Dense


class TwoBiasDense(Dense):
    """z = x W + b_ih + b_hh; parameters "W" (in, out), "b_ih" (out,), "b_hh" (out,), biases start at 0."""
    kind = "dense"

    def __init__(self, n_in, n_out, rng=None, dtype="float32"):
        super().__init__(n_in, n_out, bias=None, rng=rng, dtype=dtype)
        self.bias_mode = "two"
        dtype = backend.resolve_dtype(dtype)
        xp = backend.xp()
        self.params["b_ih"] = xp.zeros((self.n_out,), dtype=dtype)
        self.params["b_hh"] = xp.zeros((self.n_out,), dtype=dtype)

    @property
    def bias(self):
        return self.params["b_ih"] + self.params["b_hh"]

    def param_grads(self, x, dz):
        db = sum_over_rows(dz)
        # z depends on b_ih and b_hh through their sum: both get the same gradient
        return {"W": x.T @ dz, "b_ih": db, "b_hh": db.copy()}
