"""``cupy.ndarray`` of the stand-in: a NumPy array behind a wall.

The wrapper holds a numpy.ndarray in ``_a`` and is deliberately *not* a numpy.ndarray, so that
everything that would silently work on the host but fail (or crawl) on a GPU fails here:

- mixing a numpy.ndarray into a device operation (operators, indexing, module functions) raises
  StandInError naming both sides (CuPy itself raises "Unsupported type" for most of these);
- NumPy functions refuse device arrays (``__array__``, ``__array_ufunc__``, ``__array_function__``),
  so ``numpy.asarray(dev)`` or ``numpy.exp(dev)`` fail instead of quietly computing on the host;
- every device-to-host read (``.get()``, ``float()``, ``bool()``, ``int()``, ``.item()``, ...) is
  counted as a sync, and boolean-mask indexing too (CuPy reads the result size back to the host);
- results that are float64 raise while ``standin.forbid_float64()`` is active.

Results follow CuPy, not NumPy, where they differ: reductions and scalar indexing return 0-d
device arrays, never Python or NumPy scalars. Views keep NumPy semantics (writes go through).
"""
from __future__ import annotations

import numpy

from . import standin as _st
from .standin import StandInError

_np_ndarray = numpy.ndarray
_np_generic = numpy.generic
_PY_SCALARS = (bool, int, float, complex)
_new = object.__new__

GET_HINT = "move one side explicitly (cupy.asarray / .get())"


# ----------------------------------------------------------------------------- wrapping

def _wrap(a, op="", args=(), kwargs=None):
    """numpy result -> device array (0-d for NumPy scalars, as CuPy returns); other values unchanged."""
    if type(a) is not _np_ndarray:
        if isinstance(a, _np_generic):
            a = numpy.asarray(a)
        elif isinstance(a, _np_ndarray):
            a = a.view(_np_ndarray)
        elif type(a) is tuple or type(a) is list:
            return type(a)(_wrap(x, op, args, kwargs) for x in a)
        else:
            return a
    if _st.FORBID_FLOAT64 and a.dtype.char == "d":
        raise _st.float64_error(op, args, kwargs)
    r = _new(ndarray)
    r._a = a
    r._owner = None
    return r


def _first_device(args):
    for x in args:
        if isinstance(x, ndarray):
            return x
        if isinstance(x, (list, tuple)):
            d = _first_device(x)
            if d is not None:
                return d
        if isinstance(x, dict):
            d = _first_device(list(x.values()))
            if d is not None:
                return d
    return None


def host_error(op: str, host, args=()) -> StandInError:
    """The error for a numpy.ndarray met where a device array is needed."""
    dev = _first_device(args)
    h = f"numpy.ndarray {host.dtype} {host.shape}"
    if dev is None:
        return StandInError(f"host array passed to cupy.{op}: {h} (no device array involved); "
                            f"move it to the device explicitly (cupy.asarray)")
    return StandInError(f"host/device mixing in {op}: {h} with cupy.ndarray {dev.dtype} {dev.shape}; "
                        f"{GET_HINT}")


def _unwrap(x, op, args):
    """Device arrays -> their numpy array, recursively through lists and tuples; numpy arrays raise."""
    t = type(x)
    if t is ndarray:
        return x._a
    if t is int or t is float or t is bool or x is None:
        return x
    if t is tuple or t is list:
        return t(_unwrap(i, op, args) for i in x)
    if isinstance(x, _np_ndarray):
        raise host_error(op, x, args)
    if isinstance(x, ndarray):
        return x._a
    return x


def unwrap_args(args, kwargs, op):
    a = tuple(_unwrap(x, op, (args, kwargs)) for x in args)
    k = {key: _unwrap(v, op, (args, kwargs)) for key, v in kwargs.items()} if kwargs else kwargs
    return a, k


def _operand(x, op, self):
    """One operand of an elementwise operation: a device array or a scalar, as CuPy accepts."""
    t = type(x)
    if t is ndarray:
        return x._a
    if t in _PY_SCALARS or isinstance(x, _np_generic):
        return x
    if isinstance(x, _np_ndarray):
        raise host_error(op, x, (self,))
    if isinstance(x, ndarray):
        return x._a
    raise TypeError(f"Unsupported type {type(x)} in {op} with a device array")


def _index(idx, self):
    """An index for __getitem__/__setitem__: device int/bool arrays unwrap, numpy arrays raise."""
    t = type(idx)
    if t is ndarray:
        return idx._a
    if t is tuple:
        return tuple(_index(i, self) for i in idx)
    if isinstance(idx, _np_ndarray):
        raise host_error("indexing", idx, (self,))
    return idx


def _has_mask(idx) -> bool:
    if type(idx) is ndarray:
        return idx._a.dtype.char == "?" and idx._a.ndim > 0
    return type(idx) is tuple and any(type(i) is ndarray and i._a.dtype.char == "?" and i._a.ndim > 0
                                      for i in idx)


# ----------------------------------------------------------------------------- operators

_REFLECTABLE = set()


def _binary(ufunc, reflected=False):
    name = ufunc.__name__
    _REFLECTABLE.add(ufunc)
    if reflected:
        def op(self, other):
            o = _operand(other, name, self)
            return _wrap(ufunc(o, self._a), name, (other, self))
    else:
        def op(self, other):
            o = _operand(other, name, self)
            return _wrap(ufunc(self._a, o), name, (self, other))
    op.__name__ = name
    return op


def _inplace(ufunc):
    name = ufunc.__name__

    def op(self, other):
        ufunc(self._a, _operand(other, name, self), out=self._a)
        return self
    op.__name__ = "i" + name
    return op


def _unary(ufunc):
    name = ufunc.__name__

    def op(self):
        return _wrap(ufunc(self._a), name, (self,))
    op.__name__ = name
    return op


def _comparison(ufunc):
    name = ufunc.__name__

    def op(self, other):
        t = type(other)
        if not (t is ndarray or t in _PY_SCALARS or isinstance(other, (_np_generic, _np_ndarray, ndarray))):
            return NotImplemented   # e.g. a == None: Python's identity fallback, as NumPy would
        return _wrap(ufunc(self._a, _operand(other, name, self)), name, (self, other))
    op.__name__ = name
    return op


def _method(name, owner_view=True):
    """A method delegating to numpy.ndarray's, with device arguments unwrapped and results wrapped."""
    fn = getattr(_np_ndarray, name)

    def method(self, *args, **kwargs):
        if args or kwargs:
            args, kwargs = unwrap_args(args, kwargs, name)
        r = fn(self._a, *args, **kwargs)
        if r is self._a:
            return self
        out = _wrap(r, name, (self,) + args, kwargs)
        if owner_view and type(out) is ndarray:
            _link_view(out, self)
        return out
    method.__name__ = name
    method.__doc__ = f"numpy.ndarray.{name} on the device array (results stay on the device)."
    return method


def _link_view(view, parent):
    """Remember the device array a view was taken from, so ``view.base`` is that very object."""
    b = view._a.base
    if b is not None:
        pa = parent._a
        if b is pa:
            view._owner = parent
        elif b is pa.base and parent._owner is not None:
            view._owner = parent._owner


def _sync_method(name, what):
    fn = getattr(_np_ndarray, name)

    def method(self, *args, **kwargs):
        _st.record_sync(what)
        return fn(self._a, *args, **kwargs)
    method.__name__ = name
    return method


class ndarray:
    """A device array of the CPU stand-in (holds a numpy.ndarray; is not one)."""

    __slots__ = ("_a", "_owner", "__weakref__")
    __array_priority__ = 100
    __hash__ = None

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        """``cupy.ndarray(shape, dtype)``: an uninitialised device array, as in CuPy."""
        a = numpy.empty(shape, dtype=dtype, order=order)
        if _st.FORBID_FLOAT64 and a.dtype.char == "d":
            raise _st.float64_error("ndarray", (shape,), {"dtype": dtype})
        self._a = a
        self._owner = None

    # -- metadata (host-side in CuPy too: no sync) ---------------------------------------------
    shape = property(lambda self: self._a.shape, lambda self, s: setattr(self._a, "shape", s))
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    nbytes = property(lambda self: self._a.nbytes)
    itemsize = property(lambda self: self._a.itemsize)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)

    @property
    def T(self):
        out = _wrap(self._a.T, "T", (self,))
        _link_view(out, self)
        return out

    @property
    def base(self):
        if self._a.base is None:
            return None
        return self._owner if self._owner is not None else _wrap(self._a.base, "base")

    @property
    def device(self):
        from .cuda import Device
        return Device(0)

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        if self._a.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(len(self._a)))

    def __repr__(self):
        return (f"cupy.ndarray(shape={self._a.shape}, dtype={self._a.dtype}) on the CPU stand-in device "
                f"(values not shown: printing is a device-to-host copy; use .get())")

    __str__ = __repr__

    def __format__(self, spec):
        if not spec:
            return repr(self)
        _st.record_sync("format() of a device array")
        return format(self._a.item() if self._a.ndim == 0 else self._a, spec)

    # -- the walls against NumPy ----------------------------------------------------------------
    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. "
                        "Please use `.get()` to construct a NumPy array explicitly.")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        for x in inputs + tuple(kwargs.get("out", ()) or ()):
            if isinstance(x, _np_ndarray) and (x.ndim > 0 or ufunc not in _REFLECTABLE):
                raise host_error(ufunc.__name__, x, inputs)
        if (method == "__call__" and not kwargs and len(inputs) == 2 and ufunc in _REFLECTABLE
                and inputs[1] is self and isinstance(inputs[0], (_np_generic, _np_ndarray))):
            # numpy.float32(2) * a: NumPy scalars hand their operators to the ufunc; CuPy accepts these
            s = inputs[0][()] if isinstance(inputs[0], _np_ndarray) else inputs[0]
            return _wrap(ufunc(s, self._a), ufunc.__name__, (s, self))
        raise StandInError(f"numpy.{ufunc.__name__} called on a device array; use the backend's array module")

    def __array_function__(self, func, types, args, kwargs):
        raise StandInError(f"numpy.{func.__name__} called on a device array; use the backend's array module")

    # -- transfers to the host (each one a sync) ------------------------------------------------
    def get(self, stream=None, order="C", out=None, blocking=True):
        """Copy to a new numpy.ndarray (or into ``out``): a device-to-host transfer."""
        _st.record_sync(".get() of a device array", implicit=False)
        if out is not None:
            out[...] = self._a
            return out
        return numpy.array(self._a, order=order, copy=True)

    def set(self, arr, stream=None):
        """Copy a host array into this device array: an upload."""
        if not isinstance(arr, _np_ndarray):
            raise TypeError(f"Only numpy.ndarray can be set to cupy.ndarray, not {type(arr)}")
        _st.record_upload()
        self._a[...] = arr

    def __bool__(self):
        _st.record_sync("bool() of a device array")
        return bool(self._a)

    def __float__(self):
        _st.record_sync("float() of a device array")
        return float(self._a)

    def __int__(self):
        _st.record_sync("int() of a device array")
        return int(self._a)

    def __index__(self):
        _st.record_sync("operator.index() of a device array")
        return self._a.__index__()

    def __complex__(self):
        _st.record_sync("complex() of a device array")
        return complex(self._a)

    item = _sync_method("item", ".item() of a device array")
    tolist = _sync_method("tolist", ".tolist() of a device array")

    def __reduce__(self):
        _st.record_sync("pickling a device array")
        return (_from_pickle, (self._a,))

    def __copy__(self):
        return _wrap(self._a.copy(), "copy", (self,))

    def __deepcopy__(self, memo):
        return _wrap(self._a.copy(), "copy", (self,))

    def __contains__(self, value):
        return bool((self == value).any())

    # -- indexing -------------------------------------------------------------------------------
    def __getitem__(self, idx):
        i = _index(idx, self)
        if _has_mask(idx):
            _st.record_sync("boolean-mask indexing (CuPy reads the result size back)")
        out = _wrap(self._a[i], "getitem", (self,))
        _link_view(out, self)
        return out

    def __setitem__(self, idx, value):
        t = type(value)
        if t is ndarray:
            v = value._a
        elif isinstance(value, _np_ndarray):
            raise host_error("setitem", value, (self,))
        elif isinstance(value, (list, tuple)):
            v = _unwrap(value, "setitem", (self,))
        else:
            v = value
        self._a[_index(idx, self)] = v

    # -- methods ---------------------------------------------------------------------------------
    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        kw = {} if casting is None else {"casting": casting}
        r = self._a.astype(dtype, order=order, copy=copy, **kw)
        return self if r is self._a else _wrap(r, "astype", (self,), {"dtype": dtype})

    def nonzero(self):
        _st.record_sync("nonzero() (CuPy reads the result size back)")
        return _wrap(self._a.nonzero(), "nonzero", (self,))

    def fill(self, value):
        self._a.fill(_operand(value, "fill", self))

    def sort(self, axis=-1, kind=None, order=None):
        self._a.sort(axis=axis, kind=kind)


    # -- operators --------------------------------------------------------------------------------
    __add__, __radd__, __iadd__ = _binary(numpy.add), _binary(numpy.add, True), _inplace(numpy.add)
    __sub__, __rsub__, __isub__ = (_binary(numpy.subtract), _binary(numpy.subtract, True),
                                   _inplace(numpy.subtract))
    __mul__, __rmul__, __imul__ = (_binary(numpy.multiply), _binary(numpy.multiply, True),
                                   _inplace(numpy.multiply))
    __truediv__, __rtruediv__, __itruediv__ = (_binary(numpy.true_divide), _binary(numpy.true_divide, True),
                                               _inplace(numpy.true_divide))
    __floordiv__, __rfloordiv__, __ifloordiv__ = (_binary(numpy.floor_divide),
                                                  _binary(numpy.floor_divide, True),
                                                  _inplace(numpy.floor_divide))
    __mod__, __rmod__, __imod__ = (_binary(numpy.remainder), _binary(numpy.remainder, True),
                                   _inplace(numpy.remainder))
    __pow__, __rpow__, __ipow__ = _binary(numpy.power), _binary(numpy.power, True), _inplace(numpy.power)
    __matmul__, __rmatmul__ = _binary(numpy.matmul), _binary(numpy.matmul, True)
    __and__, __rand__, __iand__ = (_binary(numpy.bitwise_and), _binary(numpy.bitwise_and, True),
                                   _inplace(numpy.bitwise_and))
    __or__, __ror__, __ior__ = (_binary(numpy.bitwise_or), _binary(numpy.bitwise_or, True),
                                _inplace(numpy.bitwise_or))
    __xor__, __rxor__, __ixor__ = (_binary(numpy.bitwise_xor), _binary(numpy.bitwise_xor, True),
                                   _inplace(numpy.bitwise_xor))
    __lshift__, __rshift__ = _binary(numpy.left_shift), _binary(numpy.right_shift)
    __lt__, __le__ = _comparison(numpy.less), _comparison(numpy.less_equal)
    __gt__, __ge__ = _comparison(numpy.greater), _comparison(numpy.greater_equal)
    __eq__, __ne__ = _comparison(numpy.equal), _comparison(numpy.not_equal)
    __neg__, __pos__ = _unary(numpy.negative), _unary(numpy.positive)
    __abs__, __invert__ = _unary(numpy.absolute), _unary(numpy.invert)

    def __imatmul__(self, other):
        self._a[...] = numpy.matmul(self._a, _operand(other, "matmul", self))
        return self


for _name in ("reshape", "transpose", "swapaxes", "ravel", "squeeze", "view", "diagonal"):
    setattr(ndarray, _name, _method(_name))                     # may return views of the array
for _name in ("copy", "flatten", "sum", "mean", "var", "std", "max", "min", "prod", "any", "all",
              "argmax", "argmin", "cumsum", "cumprod", "clip", "dot", "repeat", "take", "argsort",
              "round", "trace", "conj"):
    setattr(ndarray, _name, _method(_name, owner_view=False))   # always new arrays

for _u in (numpy.equal, numpy.not_equal, numpy.less, numpy.less_equal, numpy.greater,
           numpy.greater_equal):
    _REFLECTABLE.add(_u)


def _from_pickle(a):
    _st.record_upload()
    return _wrap(numpy.array(a), "unpickle")


def is_device(x) -> bool:
    return isinstance(x, ndarray)
