"""What the pointwise Numba kernels share: the test that decides, call by call, between a kernel and the
reference, and the flat view the kernels loop over.

A NumPy reference of a pointwise operation takes several passes over memory (``dy * y * (1 - y)`` is
three, each writing a temporary); its kernel here reads every input once and writes every output
once, element by element in a flat loop.

What a kernel takes: NumPy arrays of one shape and one float dtype (float32 or float64), C-contiguous,
and Python numbers (``float``, ``int``) for the scalar parameters. Anything else runs the reference:
broadcast shapes, mixed dtypes (the reference promotes them), non-contiguous views (a flat loop
needs one stride; a copy first would cost the pass the kernel saves), NumPy scalars as parameters
(a ``numpy.float64`` is not a weak Python scalar under NEP 50, so ``eps * z`` is float64 in the
reference for a float32 z). In the study's models every call is of the first kind.

Rounding, operation by operation as in the reference, so that a kernel's answer equals the reference's
bit for bit (tests/test_kernels_numba_pointwise.py):

- ``fastmath=False``: LLVM neither contracts ``a * b + c`` into a fused multiply-add nor reassociates;
- ``error_model="numpy"``: a division by zero gives inf or NaN, as in NumPy, instead of raising
  ZeroDivisionError (and costs no test per division);
- every constant is cast to the arrays' dtype (``x.dtype.type(1)``): a bare Python ``1.0`` in Numba code
  is float64 and would promote float32 arithmetic to float64;
- every scalar parameter is rounded to that dtype inside the kernel (``x.dtype.type(eps)``, round to
  nearest), as NumPy rounds a Python float meeting a float32 array;
- no transcendental function of Numba's own: the sigmoid's exp is NumPy's (kernels/numba/base.py).
"""
from __future__ import annotations

import numpy
from numba import njit

from lrpnet import backend

FLOATS = (numpy.dtype("float32"), numpy.dtype("float64"))
NUMBERS = frozenset((float, int, bool))

# These two tests run before every kernel call, where a call costs 1 to 5 microseconds: they compare
# types and dtypes by identity (NumPy's builtin dtypes are singletons; an equal dtype that is not
# the same object merely runs the reference) and stop at the first mismatch.


def kernel_applies(*arrays) -> bool:
    """True when ``arrays`` are NumPy arrays of one shape (at least 1-d) and one float dtype (float32 or
    float64), each C-contiguous: what the kernels take. Otherwise the caller runs the reference."""
    first = arrays[0]
    if type(first) is not numpy.ndarray:
        return False
    dtype, shape = first.dtype, first.shape
    if dtype not in FLOATS or not shape:       # (0-d arrays: some references return a NumPy scalar)
        return False
    for a in arrays:
        if type(a) is not numpy.ndarray or a.dtype is not dtype or a.shape != shape or not a.flags.c_contiguous:
            return False
    return True


def numbers(*values) -> bool:
    """True when every value is a Python ``float``, ``int`` or ``bool``: a weak scalar, which NumPy
    rounds to the array's dtype (NEP 50). The kernels take them as they are (Numba passes a float
    as a double) and round them to the dtype themselves (``x.dtype.type(value)``, round to nearest,
    as NumPy's cast)."""
    for v in values:
        if type(v) not in NUMBERS:
            return False
    return True


reference = backend.reference   # the NumPy reference of an operation, by name (lrpnet.backend)


@njit(cache=True, fastmath=False, error_model="numpy")
def flat(a):
    """The C-contiguous array ``a`` as a 1-d view of its elements, in memory order."""
    return a.reshape(a.size)
