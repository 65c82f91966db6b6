"""Numba kernels for the Adam update of ``lrpnet/training.py``, under the same names.

The reference (``Adam.step`` folds the bias corrections into ``step`` and ``eps``), in place:

    m = beta1 m + (1 - beta1) g
    v = beta2 v + (1 - beta2) g g
    p = p - step m / (sqrt(v) + eps)

One loop reads p, g, m, v once and writes p, m, v (the reference takes about eight array operations
per parameter, each a pass over memory). The masked form changes nothing where the 0-d array ``ok``
is false: on the host, reading it costs nothing, so the kernel runs or does not.

1 - beta1 and 1 - beta2 are computed in double and rounded to the arrays' dtype, as the reference's
``(1.0 - beta1) * g`` does; computing them in float32 would give a different number
(1 - float32(0.9) is not float32(0.1)). Every other scalar is rounded to the dtype as NumPy rounds a
Python float meeting the array, and sqrt is correctly rounded on both sides: the update equals the
reference's bit for bit.

p, g, m and v must have one shape and dtype and be C-contiguous (``elementwise.kernel_applies``: a
non-contiguous p could not be updated through a flat view), the scalars Python numbers; other calls
run the reference.
"""
from __future__ import annotations

import numpy
from numba import njit

from lrpnet import backend

from .elementwise import flat, kernel_applies, numbers, reference


@njit(cache=True, fastmath=False, error_model="numpy")
def _adam_loop(p, g, m, v, beta1_, beta2_, step_, eps_):
    t = p.dtype.type                          # the Python numbers (doubles here) rounded to p's dtype
    beta1, one_minus_beta1 = t(beta1_), t(1.0 - beta1_)
    beta2, one_minus_beta2 = t(beta2_), t(1.0 - beta2_)
    step, eps = t(step_), t(eps_)
    pf, gf, mf, vf = flat(p), flat(g), flat(m), flat(v)
    for i in range(pf.size):
        gi = gf[i]
        mi = mf[i] * beta1 + one_minus_beta1 * gi             # m *= beta1; m += (1.0 - beta1) * g
        vi = vf[i] * beta2 + one_minus_beta2 * (gi * gi)      # v *= beta2; v += (1.0 - beta2) * (g * g)
        mf[i] = mi
        vf[i] = vi
        pf[i] = pf[i] - step * mi / (numpy.sqrt(vi) + eps)   # p -= step * m / (sqrt(v) + eps)


@backend.register("adam_update", "numba")
def adam_update(p, g, m, v, beta1, beta2, step, eps):
    """One Adam update of p, m and v in place (reference ``adam_update``)."""
    if not (kernel_applies(p, g, m, v) and numbers(beta1, beta2, step, eps)):
        return reference("adam_update")(p, g, m, v, beta1, beta2, step, eps)
    _adam_loop(p, g, m, v, float(beta1), float(beta2), float(step), float(eps))


@backend.register("adam_update_masked", "numba")
def adam_update_masked(p, g, m, v, beta1, beta2, step, eps, ok):
    """``adam_update`` where the 0-d array ``ok`` is true; p, m and v unchanged where it is false
    (reference ``adam_update_masked``)."""
    if not (kernel_applies(p, g, m, v) and numbers(beta1, beta2, step, eps)
            and type(ok) is numpy.ndarray and ok.ndim == 0):
        return reference("adam_update_masked")(p, g, m, v, beta1, beta2, step, eps, ok)
    if ok:
        _adam_loop(p, g, m, v, float(beta1), float(beta2), float(step), float(eps))
