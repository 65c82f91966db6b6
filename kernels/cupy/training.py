"""CuPy kernels for the Adam update of ``lrpnet/training.py``, under the same names.

The reference (``Adam.step`` folds the bias corrections into ``step`` and ``eps``), in place:

    m = beta1 m + (1 - beta1) g
    v = beta2 v + (1 - beta2) g g
    p = p - step m / (sqrt(v) + eps)

One launch reads p, g, m, v once and writes p, m, v (the reference takes about ten array operations
per parameter). The masked form leaves p, m and v as they are where the 0-d device array ``ok`` is
false: a diverged batch is skipped without reading ``ok`` on the host.

1 - beta1 and 1 - beta2 are computed in Python (double) and rounded to the arrays' dtype, as the
reference's ``(1.0 - beta1) * g`` does; computing them in float32 inside the kernel would give a
different number (1 - float32(0.9) is not float32(0.1)).
"""
from __future__ import annotations

from lrpnet import backend

from .elementwise import Elementwise, kernel_applies, reference

_ADAM_IN = "T g, T beta1, T one_minus_beta1, T beta2, T one_minus_beta2, T step, T eps"
_ADAM_SCALARS = ("beta1", "one_minus_beta1", "beta2", "one_minus_beta2", "step", "eps")
_ADAM_STEP = """
    m = beta1 * m + one_minus_beta1 * g;          // m *= beta1; m += (1.0 - beta1) * g
    v = beta2 * v + one_minus_beta2 * (g * g);    // v *= beta2; v += (1.0 - beta2) * (g * g)
    p = p - step * m / (sqrt(v) + eps);           // p -= step * m / (sqrt(v) + eps)
"""

_adam_update = Elementwise(
    _ADAM_IN, "T p, T m, T v", _ADAM_STEP, "lrpnet_adam_update",
    scalars=_ADAM_SCALARS, no_return=True)

# ``ok`` is raw (not broadcast: every thread reads its one element); O is bool or uint8
_adam_update_masked = Elementwise(
    _ADAM_IN + ", raw O ok", "T p, T m, T v", "if (ok[0]) {" + _ADAM_STEP + "}", "lrpnet_adam_update_masked",
    scalars=_ADAM_SCALARS, no_return=True)


def _scalars(beta1, beta2, step, eps):
    beta1, beta2 = float(beta1), float(beta2)
    return beta1, 1.0 - beta1, beta2, 1.0 - beta2, float(step), float(eps)


@backend.register("adam_update", "cupy")
def adam_update(p, g, m, v, beta1, beta2, step, eps):
    """One Adam update of p, m and v in place (reference ``adam_update``)."""
    if not kernel_applies(p, g, m, v):
        return reference("adam_update")(p, g, m, v, beta1, beta2, step, eps)
    _adam_update(g, *_scalars(beta1, beta2, step, eps), p, m, v)


@backend.register("adam_update_masked", "cupy")
def adam_update_masked(p, g, m, v, beta1, beta2, step, eps, ok):
    """``adam_update`` where the 0-d device array ``ok`` is true; p, m and v unchanged where it is
    false (reference ``adam_update_masked``)."""
    import cupy
    if not (kernel_applies(p, g, m, v) and isinstance(ok, cupy.ndarray) and ok.size == 1):
        return reference("adam_update_masked")(p, g, m, v, beta1, beta2, step, eps, ok)
    _adam_update_masked(g, *_scalars(beta1, beta2, step, eps), ok, p, m, v)
