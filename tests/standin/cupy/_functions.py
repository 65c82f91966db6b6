"""The module-level functions of the stand-in: NumPy's namesakes behind the host/device wall.

Three kinds:
- transfers (``asarray``, ``array``, ``asnumpy``): the only doors between host and device, counted;
- ufuncs (``exp``, ``maximum``, ...): operands must be device arrays or scalars, as in CuPy
  (a list or a numpy.ndarray operand is an error);
- everything else: arguments are unwrapped (recursively through lists and tuples, numpy arrays
  refused), the NumPy function runs, array results come back as device arrays.
Functions whose result size depends on the data (nonzero, unique, ...) are counted as syncs,
because CuPy has to read that size back to the host before it can allocate the result.
"""
from __future__ import annotations

import numpy

from . import standin as _st
from ._array import _first_device, _link_view, _operand, _unwrap, _wrap, host_error, ndarray, unwrap_args

_np_ndarray = numpy.ndarray


# ----------------------------------------------------------------------------- transfers

def _upload(a, dtype, op, copy=True, order="K", ndmin=0):
    if isinstance(a, (list, tuple)) and _first_device(a) is not None:
        data = numpy.array(_unwrap(a, op, (a,)), dtype=dtype, order=order, ndmin=ndmin)  # stays on device
    else:
        if isinstance(a, (list, tuple)) or (isinstance(a, _np_ndarray) and a.ndim >= 1):
            _st.record_upload()
        data = numpy.array(a, dtype=dtype, order=order, copy=True, ndmin=ndmin)  # a device copy, never an alias
    return _wrap(data, op, (a,), {"dtype": dtype})


def asarray(a, dtype=None, order=None, *, blocking=False):
    """A device array of ``a``: itself when already one (cast if dtype says so), else an upload."""
    if isinstance(a, ndarray):
        return a if dtype is None else a.astype(dtype, copy=False)
    return _upload(a, dtype, "asarray", order=order or "K")


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False):
    """A device array of ``obj`` (a copy unless copy=False allows otherwise); host data is uploaded."""
    if isinstance(obj, ndarray):
        r = numpy.array(obj._a, dtype=dtype, copy=copy, order=order, ndmin=ndmin)
        return obj if r is obj._a else _wrap(r, "array", (obj,), {"dtype": dtype})
    return _upload(obj, dtype, "array", order=order, ndmin=ndmin)


def ascontiguousarray(a, dtype=None):
    """Like CuPy's: only for device arrays (a host array here would be an implicit upload on CuPy: an error)."""
    if not isinstance(a, ndarray):
        if isinstance(a, _np_ndarray):
            raise host_error("ascontiguousarray", a)
        raise TypeError(f"Unsupported type {type(a)}: cupy.ascontiguousarray needs a cupy.ndarray")
    r = numpy.ascontiguousarray(a._a, dtype=dtype)
    return a if r is a._a else _wrap(r, "ascontiguousarray", (a,), {"dtype": dtype})


def asnumpy(a, stream=None, order="C", out=None, blocking=True):
    """A numpy.ndarray of ``a``: a device-to-host copy (a sync) for device arrays."""
    if isinstance(a, ndarray):
        _st.record_sync("cupy.asnumpy() of a device array", implicit=False)
        if out is not None:
            out[...] = a._a
            return out
        return numpy.array(a._a, order=order, copy=True)
    return numpy.asarray(a, order=order)


def get_array_module(*args):
    """This module if any argument is a device array, else numpy (as CuPy's)."""
    import cupy
    for a in args:
        if isinstance(a, ndarray):
            return cupy
    return numpy


# ----------------------------------------------------------------------------- ufuncs

class ufunc:
    """A NumPy ufunc taking device arrays and scalars only (lists and numpy arrays are refused)."""

    __slots__ = ("_uf", "__name__", "nin", "nout")

    def __init__(self, uf):
        self._uf, self.__name__, self.nin, self.nout = uf, uf.__name__, uf.nin, uf.nout

    def __call__(self, *args, **kwargs):
        name = self.__name__
        ops = [_operand(x, name, args) for x in args]
        if kwargs:
            kwargs_in = kwargs
            kwargs = {k: _unwrap(v, name, (args, kwargs)) for k, v in kwargs.items()}
            out = kwargs_in.get("out")
            r = self._uf(*ops, **kwargs)
            if out is not None:
                if type(out) is ndarray and r is out._a:
                    return out
                if type(out) is tuple and type(r) is tuple:
                    return tuple(o if type(o) is ndarray and x is o._a else _wrap(x, name, args)
                                 for o, x in zip(out, r))
            return _wrap(r, name, args, kwargs_in)
        return _wrap(self._uf(*ops), name, args)

    def __getattr__(self, method):   # reduce, accumulate, outer, at, reduceat
        return _function(f"{self.__name__}.{method}", getattr(self._uf, method))

    def __repr__(self):
        return f"<ufunc '{self.__name__}' (cupy stand-in)>"


# ----------------------------------------------------------------------------- everything else

def _function(name, fn, sync=None):
    """``fn`` with device arguments unwrapped, numpy arrays refused, and array results wrapped."""
    def f(*args, **kwargs):
        a, k = unwrap_args(args, kwargs, name)
        if sync is not None and (name != "where" or len(args) == 1):
            _st.record_sync(sync)
        r = fn(*a, **k)
        if kwargs:
            out = kwargs.get("out")
            if type(out) is ndarray and r is out._a:
                return out
        first = args[0] if args else None
        if type(first) is ndarray:
            if r is first._a:
                return first
            res = _wrap(r, name, args, kwargs)
            if type(res) is ndarray:
                _link_view(res, first)
            return res
        return _wrap(r, name, args, kwargs)
    f.__name__ = name.rsplit(".", 1)[-1]
    f.__qualname__ = name
    f.__doc__ = f"numpy.{name} on device arrays (the CPU stand-in of cupy.{name})."
    return f


def wrap_numpy(name, obj):
    """The stand-in's version of the NumPy attribute ``obj`` (a function or ufunc), or obj itself."""
    if isinstance(obj, numpy.ufunc):
        return ufunc(obj)
    if callable(obj) and not isinstance(obj, type):
        return _function(name, obj, sync=_SYNCING.get(name))
    return obj


_SYNCING = {n: f"{n}() (CuPy reads the result size back)"
            for n in ("nonzero", "argwhere", "flatnonzero", "unique", "compress", "extract", "where")}


def count_nonzero(a, axis=None, *, keepdims=False):
    """As CuPy's: a 0-d device array, not a Python int, when counting over everything."""
    r = numpy.count_nonzero(_unwrap(a, "count_nonzero", (a,)), axis=axis, keepdims=keepdims)
    return _wrap(numpy.asarray(r, dtype=numpy.intp) if isinstance(r, int) else r, "count_nonzero", (a,))


# The functions lrpnet calls (and the usual companions), made eagerly so that errors point here.
NAMES = """zeros ones full empty zeros_like ones_like full_like empty_like arange linspace eye identity
concatenate stack vstack hstack split array_split where maximum minimum exp log log1p expm1 logaddexp
abs absolute sqrt square tanh sign negative isfinite isnan isinf broadcast_to broadcast_arrays
expand_dims squeeze reshape transpose moveaxis swapaxes ravel argmax argmin sum mean var std prod
any all max min amax amin clip take take_along_axis put_along_axis cumsum matmul dot tensordot einsum
outer sort argsort unique nonzero argwhere flatnonzero pad tile repeat flip roll allclose isclose
array_equal logical_and logical_or logical_not floor ceil round power multiply add subtract divide
true_divide floor_divide equal not_equal less less_equal greater greater_equal result_type
searchsorted diff sin cos exp2 log2 log10 reciprocal fmax fmin copyto""".split()
