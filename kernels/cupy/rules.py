"""CuPy kernels for the stabilised division of ``lrpnet/rules.py``, under the same names.

Every LRP rule divides the relevance R arriving at a layer's output by that output's (modified)
pre-activation z. The references (module docstring of lrpnet/rules.py, Bach et al. 2015 Eq. 58):

    sign(z)                   = +1 where z >= 0, -1 elsewhere     (sign(0) = +1, so eps sign(z) never
                                                                    cancels z; NaN gives -1)
    lrp_divide(R, z, eps, c)  = (s, absorbed), with d = z + eps sign(z)   (d = z when eps = 0)
        s        = c R / (d + [d == 0]) * [d != 0]      (c R / d, and 0 where d == 0)
        absorbed = s eps sign(z) + c R [d == 0]         ([.] = 1 where true, else 0)

``absorbed`` is what the stabiliser keeps, plus the whole of c R where there is nothing to pass it to.
One launch writes both s and absorbed (the reference takes about ten array operations).

R and z broadcast against each other as in NumPy (ElementwiseKernel broadcasts its inputs), so the
kernel takes every pair of shapes the reference takes; arrays of two different dtypes run the
reference.
"""
from __future__ import annotations

from lrpnet import backend

from .elementwise import Elementwise, kernel_applies, reference

_sign = Elementwise("T z", "T s", "s = z >= T(0) ? T(1) : T(-1)", "lrpnet_sign")

# Line for line the reference: eps and coef arrive rounded to T (as NumPy rounds a Python float
# meeting a float32 array), and ``stabilised`` is the reference's ``if eps:``. Without a stabiliser,
# d = z and only the zero denominators absorb (an inf or NaN s must not make 0 * s = NaN there).
# The reference multiplies by its 0/1 masks (no select), and so does the kernel: where d == 0, s is
# c R * 0 (NaN for an infinite c R), elsewhere the lost c R * 0.
_lrp_divide = Elementwise(
    "T R, T z, T eps, bool stabilised, T coef", "T s, T absorbed",
    """
    const T cR = coef * R;
    const T stab = eps * (z >= T(0) ? T(1) : T(-1));         // eps sign(z)
    const T d = stabilised ? z + stab : z;                    // the stabilised denominator
    const T at_zero = d == T(0) ? T(1) : T(0);                // [d == 0]
    s = cR / (d + at_zero) * (T(1) - at_zero);                // safe_divide(cR, d)
    const T lost = cR * at_zero;                              // c R [d == 0]
    absorbed = stabilised ? s * stab + lost : lost;
    """,
    "lrpnet_lrp_divide", scalars=("eps", "stabilised", "coef"))


@backend.register("sign", "cupy")
def sign(z):
    """+1 where z >= 0, -1 elsewhere, in z's dtype (reference ``sign``)."""
    if not kernel_applies(z):
        return reference("sign")(z)
    return _sign(z)


@backend.register("lrp_divide", "cupy")
def lrp_divide(R, z, eps, coef):
    """(s, absorbed) = (c R / (z + eps sign(z)), what the stabiliser and zero denominators keep)
    (reference ``lrp_divide``)."""
    if not kernel_applies(R, z):
        return reference("lrp_divide")(R, z, eps, coef)
    return _lrp_divide(R, z, float(eps), bool(eps), float(coef))
