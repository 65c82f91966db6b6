"""Numba kernels for the sigmoid and the bias gradient of ``lrpnet/layers/base.py``, under the same
names.

The references:

    sigmoid_forward(x)     = 1 / (1 + exp(-x))   (exp(-x) = inf gives 0; NaN stays NaN)
    negsoftplus_grad(b, g) = -g * sigmoid(b)                       (d(-softplus(b))/db = -sigmoid(b))

The exponentials are NumPy's (``_exp_minus``: its SIMD exp is several times faster than the scalar
exp a Numba loop calls, without SVML: a loop calling exp itself was no faster than the reference at
(50, 128) float32), and one Numba loop does the rest (the sum and the division, for negsoftplus_grad
the product): both equal the reference bit for bit.

No kernel for ``negsoftplus(b) = -logaddexp(0, b)``: NumPy's logaddexp is already one pass calling the
C library's scalar exp and log1p, so a Numba loop (``kernels/numba/benchmark_pointwise.py`` keeps it as
a candidate) saves only the negation's pass: 1.07x to 1.14x the reference's speed in float32 and
0.91x to 1.00x in float64 on the study's bias vectors (24 to 256 entries, 1.5 to 4.9 us a call; two
runs, benchmarks/RESULTS.md, 2026-11-28), a fraction of a microsecond either way: not registered.
"""
from __future__ import annotations

import numpy
from numba import njit

from lrpnet import backend

from .elementwise import flat, kernel_applies, reference

def _exp_minus(x):
    """e = exp(-x), a new array, by NumPy's own ufuncs (its SIMD exp), as the reference computes it."""
    e = numpy.negative(x)
    with numpy.errstate(over="ignore"):
        numpy.exp(e, out=e)
    return e


@njit(cache=True, fastmath=False, error_model="numpy")
def _sigmoid_from_exp(e):
    """e[i] <- 1 / (1 + e[i]) (NaN stays NaN, inf gives 0)."""
    one = e.dtype.type(1)
    ef = flat(e)
    for i in range(ef.size):
        ef[i] = one / (ef[i] + one)
    return e


@njit(cache=True, fastmath=False, error_model="numpy")
def _negsoftplus_grad_from_exp(g, e):
    """e[i] <- -g[i] * sigmoid(b[i]), from e = exp(-b)."""
    one = e.dtype.type(1)
    gf, ef = flat(g), flat(e)
    for i in range(ef.size):
        ef[i] = -gf[i] * (one / (ef[i] + one))
    return e


@backend.register("sigmoid_forward", "numba")
def sigmoid_forward(x):
    """1 / (1 + exp(-x)) (reference ``sigmoid_forward``)."""
    if not kernel_applies(x):
        return reference("sigmoid_forward")(x)
    return _sigmoid_from_exp(_exp_minus(x))


@backend.register("negsoftplus_grad", "numba")
def negsoftplus_grad(b, g):
    """-g * sigmoid(b): the gradient of b given the gradient g of -softplus(b) (reference
    ``negsoftplus_grad``)."""
    if not kernel_applies(b, g):
        return reference("negsoftplus_grad")(b, g)
    return _negsoftplus_grad_from_exp(g, _exp_minus(b))
