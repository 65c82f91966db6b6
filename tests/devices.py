"""Moving test data between the host and the backend under test.

The suite runs under any backend (``LRPNET_BACKEND``): library calls return arrays of the backend in
force, possibly on a GPU, while references are computed on the host with NumPy. ``host(a)`` brings a
result back (arrays, and the arrays inside tuples, lists and dicts); ``dev(a)`` sends host data to the
backend in force. Both are no-ops on the CPU backends.
"""
import numpy

from lrpnet import backend


def host(a):
    """``a`` with every array in it as a NumPy array on the host."""
    if isinstance(a, dict):
        return {k: host(v) for k, v in a.items()}
    if isinstance(a, (tuple, list)):
        return type(a)(host(v) for v in a)
    if a is None or isinstance(a, (int, float, str, numpy.generic, numpy.ndarray)):
        return a
    return backend.to_numpy(a)


def dev(a, dtype=None):
    """Host data as an array of the backend in force (arrays inside tuples and lists too)."""
    if isinstance(a, (tuple, list)):
        return type(a)(dev(v, dtype) for v in a)
    return backend.asarray(a, dtype=dtype)
