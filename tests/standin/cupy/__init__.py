"""A strict CPU stand-in for CuPy, for CI machines without a GPU.

Put ``tests/standin`` first on sys.path (or install this package as ``sys.modules["cupy"]``) and
``lrpnet.backend.use("cupy")`` runs the CuPy code paths on NumPy, with the rules of a real GPU made
louder than CuPy makes them (see _array.py): host/device mixing raises, NumPy functions refuse
device arrays, device-to-host transfers are counted (and can be forbidden), and float64 results
can be forbidden. Code that passes here should run on a GPU without a sync or a host copy it did
not ask for. The controls live in ``cupy.standin`` (stats, reset, forbid_syncs, forbid_float64).

Anything NumPy has and this module does not name is wrapped on first use by ``__getattr__``.

The whole test suite under the stand-in: ``PYTHONPATH=tests/standin python -m pytest tests``.
"""
from __future__ import annotations

import numpy

from . import standin  # noqa: F401  (cupy.standin: the stand-in's controls)
from ._array import ndarray  # noqa: F401
from ._functions import (NAMES as _NAMES, array, asarray, ascontiguousarray, asnumpy, count_nonzero,  # noqa: F401
                         get_array_module, ufunc, wrap_numpy as _wrap_numpy)
from ._kernels import ElementwiseKernel, RawKernel, RawModule, ReductionKernel, fuse, memoize  # noqa: F401
from .standin import StandInError  # noqa: F401
from . import cuda, lib, random  # noqa: F401, E402  (submodules, as in CuPy)

__version__ = "14.0.0+standin"
STANDIN = True

# dtypes and constants are NumPy's own objects, as in CuPy
dtype = numpy.dtype
float16, float32, float64 = numpy.float16, numpy.float32, numpy.float64
int8, int16, int32, int64 = numpy.int8, numpy.int16, numpy.int32, numpy.int64
uint8, uint16, uint32, uint64 = numpy.uint8, numpy.uint16, numpy.uint32, numpy.uint64
bool_, intp, complex64, complex128 = numpy.bool_, numpy.intp, numpy.complex64, numpy.complex128
integer, floating, number, generic = numpy.integer, numpy.floating, numpy.number, numpy.generic
finfo, iinfo = numpy.finfo, numpy.iinfo
newaxis, inf, nan, pi, e = numpy.newaxis, numpy.inf, numpy.nan, numpy.pi, numpy.e

for _name in _NAMES:
    globals()[_name] = _wrap_numpy(_name, getattr(numpy, _name))
del _name


class _MemoryPool:
    """cupy.get_default_memory_pool(): nothing is pooled on the host, so all counts are zero."""

    def used_bytes(self):
        return 0

    def total_bytes(self):
        return 0

    def free_bytes(self):
        return 0

    def free_all_blocks(self, stream=None):
        pass

    def set_limit(self, size=None, fraction=None):
        pass

    def get_limit(self):
        return 0

    def n_free_blocks(self):
        return 0


_pool, _pinned_pool = _MemoryPool(), _MemoryPool()


def get_default_memory_pool():
    return _pool


def get_default_pinned_memory_pool():
    return _pinned_pool


class _WrappedModule:
    """cupy.linalg / cupy.fft: NumPy's submodule with every function wrapped like the top level."""

    def __init__(self, name, module):
        self.__name__, self._module = f"cupy.{name}", module

    def __getattr__(self, attr):
        obj = _wrap_numpy(f"{self.__name__[5:]}.{attr}", getattr(self._module, attr))
        setattr(self, attr, obj)
        return obj


def __getattr__(name):
    """Any other NumPy name: functions wrapped generically (and cached), types and constants as is."""
    if name in ("linalg", "fft"):
        obj = _WrappedModule(name, getattr(numpy, name))
    elif name.startswith("__") or not hasattr(numpy, name):
        raise AttributeError(f"module 'cupy' (CPU stand-in) has no attribute {name!r}")
    else:
        obj = getattr(numpy, name)
        if isinstance(obj, type(numpy)):
            raise AttributeError(f"module 'cupy' (CPU stand-in) has no submodule {name!r}")
        obj = _wrap_numpy(name, obj)
    globals()[name] = obj
    return obj
