"""Numba kernels for the stabilised division of ``lrpnet/rules.py``, under the same names.

Every LRP rule divides the relevance R arriving at a layer's output by that output's (modified)
pre-activation z. The references (module docstring of lrpnet/rules.py, Bach et al. 2015 Eq. 58):

    sign(z)                   = +1 where z >= 0, -1 elsewhere     (sign(0) = +1, so eps sign(z) never
                                                                    cancels z; NaN gives -1)
    lrp_divide(R, z, eps, c)  = (s, absorbed), with d = z + eps sign(z)   (d = z when eps = 0)
        s        = c R / (d + [d == 0]) * [d != 0]      (c R / d, and 0 where d == 0)
        absorbed = s eps sign(z) + c R [d == 0]         ([.] = 1 where true, else 0)

``absorbed`` is what the stabiliser keeps, plus the whole of c R where there is nothing to pass it to.
One loop writes both s and absorbed (the reference takes about eight array operations).

Line for line the reference: eps and c are rounded to the arrays' dtype (as NumPy rounds a Python
float meeting a float32 array); c R is computed only when c != 1 and d = z + eps sign(z) only when
eps is not 0 (the reference's ``if coef != 1`` and ``if eps``). Without a stabiliser, d = z and
only the zero denominators absorb. The sum ``s eps sign(z) + lost`` is computed even where it is
``+0``-plus-``-0``, so the sign of a zero comes out as in the reference. The reference multiplies by
its 0/1 masks instead of selecting (a select costs NumPy 2-4 ns an element): where d == 0, s is
c R * 0 (a zero of c R's sign, NaN for an infinite c R), and elsewhere lost is c R * 0. The loop
multiplies the same way.

R and z must have one shape and dtype (``elementwise.kernel_applies``), eps and c be Python numbers;
other calls (broadcast shapes, NumPy scalars) run the reference.
"""
from __future__ import annotations

import numpy
from numba import njit

from lrpnet import backend

from .elementwise import flat, kernel_applies, numbers, reference


@njit(cache=True, fastmath=False, error_model="numpy")
def _sign_loop(z):
    s = numpy.empty_like(z)
    one = z.dtype.type(1)
    zf, sf = flat(z), flat(s)
    for i in range(sf.size):
        sf[i] = one if zf[i] >= 0 else -one
    return s


@njit(cache=True, fastmath=False, error_model="numpy")
def _lrp_divide_loop(R, z, eps_, coef_):
    s, absorbed = numpy.empty_like(R), numpy.empty_like(R)
    one, zero = R.dtype.type(1), R.dtype.type(0)
    eps, coef = R.dtype.type(eps_), R.dtype.type(coef_)
    stabilised, scaled = eps_ != 0, coef_ != 1          # the reference's ``if eps`` and ``coef != 1``
    Rf, zf, sf, af = flat(R), flat(z), flat(s), flat(absorbed)
    for i in range(sf.size):
        cR = coef * Rf[i] if scaled else Rf[i]
        stab = eps * (one if zf[i] >= 0 else -one)          # eps sign(z)
        d = zf[i] + stab if stabilised else zf[i]           # the stabilised denominator
        at_zero = one if d == 0 else zero                   # [d == 0]
        si = cR / (d + at_zero) * (one - at_zero)           # safe_divide(cR, d)
        lost = cR * at_zero                                 # c R [d == 0]
        sf[i] = si
        af[i] = si * stab + lost if stabilised else lost
    return s, absorbed


@backend.register("sign", "numba")
def sign(z):
    """+1 where z >= 0, -1 elsewhere, in z's dtype (reference ``sign``)."""
    if not kernel_applies(z):
        return reference("sign")(z)
    return _sign_loop(z)


@backend.register("lrp_divide", "numba")
def lrp_divide(R, z, eps, coef):
    """(s, absorbed) = (c R / (z + eps sign(z)), what the stabiliser and zero denominators keep)
    (reference ``lrp_divide``)."""
    if not (kernel_applies(R, z) and numbers(eps, coef)):
        return reference("lrp_divide")(R, z, eps, coef)
    return _lrp_divide_loop(R, z, float(eps), float(coef))
