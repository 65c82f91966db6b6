"""What the CuPy kernel modules share: elementwise kernels built on their first call, and the test
that decides, call by call, between a kernel and the reference.

Built lazily: importing ``kernels.cupy`` imports neither CuPy nor compiles anything, so it works on a
machine without a GPU (and beside tests/standin's CPU stand-in for CuPy). The first call constructs the
``cupy.ElementwiseKernel``; CuPy compiles it with NVRTC at its first launch for each dtype and keeps the
binary in its on-disk cache.

Rounding: every kernel is compiled with ``--fmad=false``. NumPy rounds each product and each sum on its
own; left alone, NVRTC contracts ``a * b + c`` into one fused multiply-add, rounded once (it does so in
``adam_update`` and ``lrp_divide``), which differs from the reference by far more than rounding where
the terms cancel. With contraction off, the kernels round like the reference, operation by operation
(exp and log1p, CUDA's own, agree with NumPy's to a few units in the last place). CuPy itself adds
``-ftz=true``: float32 subnormals are flushed to zero, in these kernels as in CuPy's own ufuncs (the
reference run under the cupy backend), but not in NumPy.

A kernel takes arrays of one float dtype (float32 or float64; T in its signature) and Python floats,
which CuPy casts to T, as NumPy casts a Python float meeting a float32 array. Anything else (arrays of
mixed dtypes, host arrays, integers) runs the reference instead: ``kernel_applies`` tells which.
"""
from __future__ import annotations

from lrpnet import backend

OPTIONS = ("--fmad=false",)       # round each operation on its own, as NumPy does (module docstring)
FLOATS = ("float32", "float64")

KERNELS: list["Elementwise"] = []  # every kernel defined here, for compile_check.py


class Elementwise:
    """A ``cupy.ElementwiseKernel`` constructed on first call, then reused.

    ``in_params``, ``out_params``, ``operation``, ``name`` and ``preamble`` are ElementwiseKernel's;
    ``scalars`` names the inputs that callers pass as Python floats (the others are arrays), which
    compile_check.py needs to build the kernel's source without calling it."""

    def __init__(self, in_params, out_params, operation, name, preamble="", scalars=(), no_return=False):
        self.in_params, self.out_params, self.operation = in_params, out_params, operation
        self.name, self.preamble, self.scalars, self.no_return = name, preamble, tuple(scalars), no_return
        self._kernel = None
        KERNELS.append(self)

    def kernel(self):
        """The ``cupy.ElementwiseKernel`` (constructing it needs CuPy, not a GPU)."""
        if self._kernel is None:
            import cupy
            self._kernel = cupy.ElementwiseKernel(
                self.in_params, self.out_params, self.operation, self.name,
                preamble=self.preamble, no_return=self.no_return, options=OPTIONS)
        return self._kernel

    def __call__(self, *args):
        return self.kernel()(*args)


def kernel_applies(*arrays) -> bool:
    """True when ``arrays`` are CuPy arrays of one float dtype, float32 or float64: what the kernels
    take. Otherwise the caller runs the reference, which handles (or rejects) everything else."""
    import cupy
    if getattr(cupy, "STANDIN", False):     # tests/standin runs no CUDA code: the reference runs there
        return False
    if not all(isinstance(a, cupy.ndarray) for a in arrays):
        return False
    dtypes = {a.dtype for a in arrays}
    return len(dtypes) == 1 and dtypes.pop().name in FLOATS


reference = backend.reference   # the NumPy reference of an operation, by name (lrpnet.backend)
