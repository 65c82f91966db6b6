"""CuPy kernel for the inverted-dropout mask of ``lrpnet/layers/dropout.py``, under the same name.

The reference, from uniform draws u in [0, 1) and the keep probability:

    dropout_mask(u, keep) = (u < keep).astype(u.dtype) / u.dtype.type(keep)

keep is rounded to u's dtype both in the comparison (NumPy compares a float32 array with a Python
float in float32) and in the division, so the kept value is 1/keep computed in u's dtype.
"""
from __future__ import annotations

from lrpnet import backend

from .elementwise import Elementwise, kernel_applies, reference

_dropout_mask = Elementwise(
    "T u, T keep", "T mask", "mask = u < keep ? T(1) / keep : T(0)", "lrpnet_dropout_mask",
    scalars=("keep",))


@backend.register("dropout_mask", "cupy")
def dropout_mask(u, keep):
    """1/keep where u < keep, else 0, in u's dtype (reference ``dropout_mask``)."""
    if not kernel_applies(u):
        return reference("dropout_mask")(u, keep)
    return _dropout_mask(u, float(keep))
