"""The stand-in's own controls: its error type, its counters, and its two guards.

Everything here is about *checking* code rather than computing: how many device-to-host transfers
(syncs on a real GPU) and host-to-device uploads happened and where, and the two context managers
that turn a sync or a float64 result into an immediate error at the line that caused it.

    from cupy import standin
    standin.reset()
    with standin.forbid_syncs(), standin.forbid_float64():
        model.loss_and_grads(x, y)
    print(standin.stats())      # {"syncs": 0, "uploads": 2, "stream_syncs": 0, "sites": [...], ...}

The guards are process-wide flags (``FORBID_SYNCS``, ``FORBID_FLOAT64``), also settable directly or
from the environment (``CUPY_STANDIN_FORBID_FLOAT64=1``, ``CUPY_STANDIN_FORBID_SYNCS=1``) for a CI run.
"""
from __future__ import annotations

import collections
import contextlib
import os
import sys

import numpy

FORBID_SYNCS = os.environ.get("CUPY_STANDIN_FORBID_SYNCS", "") not in ("", "0")
FORBID_FLOAT64 = os.environ.get("CUPY_STANDIN_FORBID_FLOAT64", "") not in ("", "0")
MAX_SITES = 20

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_counts = {"syncs": 0, "uploads": 0, "stream_syncs": 0}
_kinds: collections.Counter = collections.Counter()
_sites: collections.deque = collections.deque(maxlen=MAX_SITES)


class StandInError(TypeError):
    """Code did something that works on NumPy (or even on CuPy) but is wrong or slow on a GPU."""


def stats() -> dict:
    """Counters since the last reset(): syncs (device->host), uploads (host->device), stream_syncs
    (synchronize() calls, which move no data), sync_kinds (syncs by operation) and sites (the last
    MAX_SITES sync sites, "file:line in function: operation", oldest first)."""
    return dict(_counts, sync_kinds=dict(_kinds), sites=list(_sites))


def reset() -> None:
    """Zero the counters and forget the recorded sites."""
    for k in _counts:
        _counts[k] = 0
    _kinds.clear()
    _sites.clear()


@contextlib.contextmanager
def forbid_syncs():
    """Inside, any device-to-host transfer raises StandInError at the line that asked for it."""
    global FORBID_SYNCS
    previous, FORBID_SYNCS = FORBID_SYNCS, True
    try:
        yield
    finally:
        FORBID_SYNCS = previous


@contextlib.contextmanager
def forbid_float64():
    """Inside, any stand-in operation whose result is a float64 array raises StandInError: a float32
    model that silently promotes (a float64 NumPy scalar, a default-dtype zeros()) runs at a
    fraction of the speed on a GPU and doubles its memory."""
    global FORBID_FLOAT64
    previous, FORBID_FLOAT64 = FORBID_FLOAT64, True
    try:
        yield
    finally:
        FORBID_FLOAT64 = previous


# ----------------------------------------------------------------------------- used by the arrays

def _caller_site() -> str:
    """file:line of the nearest frame outside this package (only computed on syncs)."""
    f = sys._getframe(2)
    while f is not None and f.f_code.co_filename.startswith(_PACKAGE_DIR):
        f = f.f_back
    if f is None:
        return "<unknown>"
    return f"{f.f_code.co_filename}:{f.f_lineno} in {f.f_code.co_name}"


def record_sync(what: str, implicit: bool = True) -> None:
    """Count one device-to-host transfer (or a read-back of a data-dependent size)."""
    if FORBID_SYNCS:
        raise StandInError(f"{'implicit ' if implicit else ''}host sync: {what} inside forbid_syncs()")
    _counts["syncs"] += 1
    _kinds[what] += 1
    _sites.append(f"{_caller_site()}: {what}")


def record_upload() -> None:
    _counts["uploads"] += 1


def record_stream_sync() -> None:
    _counts["stream_syncs"] += 1


def describe(x) -> str:
    """A short description of an operand for error messages: its dtype, or its Python type."""
    if isinstance(x, numpy.generic):
        return f"{x.dtype.name} scalar"
    dtype = getattr(x, "dtype", None)
    if dtype is not None and hasattr(x, "shape"):
        return dtype.name
    if isinstance(x, (bool, int, float, complex)):
        return f"python {type(x).__name__}"
    if isinstance(x, (list, tuple)):
        if any(hasattr(i, "dtype") for i in x):
            return "[" + ", ".join(describe(i) for i in x) + "]"
        return repr(x) if len(repr(x)) <= 24 else type(x).__name__
    if isinstance(x, (str, type(None), numpy.dtype, type)):
        return repr(x)
    return type(x).__name__


def float64_error(op: str, args=(), kwargs=None) -> StandInError:
    inputs = [describe(a) for a in args]
    if kwargs and kwargs.get("dtype") is not None:
        inputs.append(f"dtype={numpy.dtype(kwargs['dtype']).name}")
    return StandInError(f"float64 result of {op}({', '.join(inputs)}) inside forbid_float64(): "
                        f"a float32 model promoted to float64 (a float64 operand or NumPy scalar, "
                        f"or a creation function without dtype=)")
