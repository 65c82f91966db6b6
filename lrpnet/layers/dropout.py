"""Dropout in two kinds (THESIS.md section 3), inverted (kept units scaled by 1/keep), off at test time.

- naive: a fresh mask at every call, so a fresh mask at every time step;
- stationary: one mask per sequence, drawn at the first step and reused at every step (Gal &
  Ghahramani). The mask lives in ``tape.memo`` under this layer, which is new for every forward pass.

Masks are drawn where they are used: with a NumPy generator on the tape (the CPU), from 32 random bits
per unit (``random_bits``); with a device generator (``backend.random_state`` on a GPU) on the device,
from uniform draws in the model's dtype, so no mask is uploaded. The GPU's draws come from CuPy's
generator and differ from the CPU's masks for the same seed.

On the host a unit is kept where u < keep for u = bits / 2^32, that is where bits < ceil(keep 2^32):
the same masks for a seed in float32 and float64. (Until 2026-11-28 the host drew one float64 per
unit, ``rng.random``: a NumPy generator makes one 64-bit word per float64 and, in NumPy 2.4, spends
more per float32; two units per word halve the draws, which were a fifth of Deep's training step.)
"""
from __future__ import annotations

import math

import numpy

from .. import backend
from .base import Layer

# NumPy's bit generators whose raw output is one 64-bit word (MT19937's is 32 bits)
WORD64 = (numpy.random.PCG64, numpy.random.PCG64DXSM, numpy.random.Philox, numpy.random.SFC64)


def random_bits(rng, shape):
    """32 uniform random bits (uint32) per entry of ``shape`` from the NumPy generator ``rng``.

    With a 64-bit bit generator (NumPy's default, PCG64) they are the two halves of ceil(n / 2) raw
    words, in order: for an even n the bits ``rng.integers(0, 2**32, dtype=numpy.uint32)`` draws, at
    half its cost. Other bit generators go through ``rng.integers``."""
    if not isinstance(rng.bit_generator, WORD64):
        return rng.integers(0, 2**32, size=shape, dtype=numpy.uint32)
    n = math.prod(shape)
    words = rng.bit_generator.random_raw((n + 1) // 2)
    return words.view(numpy.uint32)[:n].reshape(shape)


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

    def keep_in(self, tape):
        """The keep probability of this pass: ``keep``, or nearer 1 when the tape scales the drop
        probability 1 - keep by ``tape.drop_scale`` < 1 (a dropout curriculum)."""
        if tape.drop_scale == 1.0:
            return self.keep
        return 1.0 - (1.0 - self.keep) * tape.drop_scale

    def mask(self, tape, shape, dtype, keep):
        """The mask of this pass at keep probability ``keep`` (``keep_in``): a stationary layer's from
        ``tape.memo`` after its first draw."""
        if self.stationary and id(self) in tape.memo:
            mask = tape.memo[id(self)]
            if mask.shape != shape:
                raise ValueError(f"stationary dropout mask of shape {mask.shape} reused on {shape}")
            return mask
        if tape.rng is None:
            raise ValueError("dropout in training needs a random generator on the tape (Tape(rng=...))")
        if isinstance(tape.rng, numpy.random.Generator):    # host draws, then moved
            largest_kept = numpy.uint32(math.ceil(keep * 2**32) - 1)   # bits / 2^32 < keep
            kept = backend.asarray(random_bits(tape.rng, shape) <= largest_kept)
            mask = kept.astype(dtype) / dtype.type(keep)
        else:                                               # a device generator: drawn in place
            mask = backend.op("dropout_mask")(tape.rng.random_sample(shape, dtype=dtype), keep)
        if self.stationary:
            tape.memo[id(self)] = mask
        return mask

    def forward(self, tape, x):
        keep = self.keep_in(tape) if tape.train else 1.0
        if keep == 1.0:
            return x, None
        mask = self.mask(tape, x.shape, x.dtype, keep)
        return x * mask, mask

    def backward(self, mask, dy):
        return (dy if mask is None else dy * mask,), {}
