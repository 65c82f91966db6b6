"""Dropout in two kinds (THESIS.md section 3), inverted (kept units scaled by 1/keep), off at test time.

- naive: a fresh mask at every call, so a fresh mask at every time step;
- stationary: one mask per sequence, drawn at the first step and reused at every step (Gal &
  Ghahramani). The mask lives in ``tape.memo`` under this layer, which is new for every forward pass.

Masks are drawn where they are used: with a NumPy generator on the tape (the CPU), as always; with a
device generator (``backend.random_state`` on a GPU) on the device, so no mask is uploaded. The GPU's
draws come from CuPy's generator and differ from the CPU's masks for the same seed.
"""
from __future__ import annotations

import numpy

from .. import backend
from .base import Layer


@backend.register("dropout_mask")
def dropout_mask(u, keep):
    """The inverted-dropout mask from uniform draws u in [0, 1): 1/keep where u < keep, else 0
    (u's dtype)."""
    return (u < keep).astype(u.dtype) / u.dtype.type(keep)


class Dropout(Layer):
    kind = "dropout"

    def __init__(self, keep=0.8, stationary=False):
        super().__init__()
        if not 0.0 < keep <= 1.0:
            raise ValueError(f"dropout keep probability must be in (0, 1], got {keep}")
        self.keep, self.stationary = float(keep), bool(stationary)

    def mask(self, tape, shape, dtype):
        if self.stationary and id(self) in tape.memo:
            mask = tape.memo[id(self)]
            if mask.shape != shape:
                raise ValueError(f"stationary dropout mask of shape {mask.shape} reused on {shape}")
            return mask
        if tape.rng is None:
            raise ValueError("dropout in training needs a random generator on the tape (Tape(rng=...))")
        if isinstance(tape.rng, numpy.random.Generator):    # host draws (float64, as ever), then moved
            keep = backend.asarray(tape.rng.random(shape) < self.keep)
            mask = keep.astype(dtype) / dtype.type(self.keep)
        else:                                               # a device generator: drawn in place
            mask = backend.op("dropout_mask")(tape.rng.random_sample(shape, dtype=dtype), self.keep)
        if self.stationary:
            tape.memo[id(self)] = mask
        return mask

    def forward(self, tape, x):
        if not tape.train or self.keep == 1.0:
            return x, None
        mask = self.mask(tape, x.shape, x.dtype)
        return x * mask, mask

    def backward(self, mask, dy):
        return (dy if mask is None else dy * mask,), {}
