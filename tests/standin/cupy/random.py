"""cupy.random on the stand-in: NumPy Generators whose results are device arrays.

The streams are NumPy's (seeded from the same seed), not CuPy's, so values differ from a real GPU;
the shapes, dtypes and the API are CuPy's. Defaults follow CuPy: float64 unless dtype= says
otherwise, which forbid_float64() reports like any other float64 result.
"""
from __future__ import annotations

import numpy

from ._array import _unwrap, _wrap, ndarray


def _size(args):
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        return tuple(args[0])
    return args if args else None


class _Base:
    def __init__(self, seed=None):
        self._g = numpy.random.default_rng(seed)

    def _out(self, r, op, dtype=None):
        return _wrap(r, op, (), {"dtype": dtype} if dtype is not None else None)

    def _args(self, op, *args):
        return [_unwrap(a, op, args) for a in args]

    def standard_normal(self, size=None, dtype=numpy.float64):
        return self._out(self._g.standard_normal(size, dtype=dtype), "standard_normal", dtype)

    def normal(self, loc=0.0, scale=1.0, size=None, dtype=numpy.float64):
        loc, scale = self._args("normal", loc, scale)
        return self._out(self._g.normal(loc, scale, size).astype(dtype, copy=False), "normal", dtype)

    def uniform(self, low=0.0, high=1.0, size=None, dtype=numpy.float64):
        low, high = self._args("uniform", low, high)
        return self._out(self._g.uniform(low, high, size).astype(dtype, copy=False), "uniform", dtype)

    def permutation(self, x):
        return self._out(self._g.permutation(_unwrap(x, "permutation", (x,))), "permutation")

    def shuffle(self, x):
        if not isinstance(x, ndarray):
            raise TypeError(f"shuffle needs a cupy.ndarray, not {type(x)}")
        self._g.shuffle(x._a)

    def choice(self, a, size=None, replace=True, p=None):
        a, p = self._args("choice", a, p)
        return self._out(self._g.choice(a, size, replace, p), "choice")


class RandomState(_Base):
    """cupy.random.RandomState(seed)."""

    def seed(self, seed=None):
        self._g = numpy.random.default_rng(seed)

    def random_sample(self, size=None, dtype=numpy.float64):
        return self._out(self._g.random(size, dtype=dtype), "random_sample", dtype)

    random = random_sample

    def rand(self, *size, dtype=numpy.float64):
        return self.random_sample(_size(size), dtype)

    def randn(self, *size, dtype=numpy.float64):
        return self.standard_normal(_size(size), dtype)

    def randint(self, low, high=None, size=None, dtype=int):
        return self._out(self._g.integers(low, high, size, dtype=dtype), "randint")


class Generator(_Base):
    """What cupy.random.default_rng(seed) returns."""

    def random(self, size=None, dtype=numpy.float64, out=None):
        r = self._out(self._g.random(size, dtype=dtype), "random", dtype)
        if out is not None:
            out[...] = r
            return out
        return r

    def integers(self, low, high=None, size=None, dtype=numpy.int64, endpoint=False):
        return self._out(self._g.integers(low, high, size, dtype=dtype, endpoint=endpoint), "integers")


def default_rng(seed=None):
    return Generator(seed)


_global = RandomState()


def get_random_state():
    return _global


def seed(seed=None):
    _global.seed(seed)


def reset_states():
    _global.seed(None)


def _delegate(name):
    def f(*args, **kwargs):
        return getattr(_global, name)(*args, **kwargs)
    f.__name__ = name
    return f


for _name in ("rand", "randn", "random_sample", "standard_normal", "normal", "uniform", "randint",
              "permutation", "shuffle", "choice"):
    globals()[_name] = _delegate(_name)
random = _delegate("random_sample")
del _name
