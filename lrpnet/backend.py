"""Where arrays live and which implementation of each operation runs.

lrpnet's model code never imports numpy or cupy for its math. It asks this module:

    xp = backend.xp()              # the array module of the active backend (numpy or cupy)
    conv = backend.op("conv2d_forward")   # the active backend's implementation of an operation

Three backends exist:

- ``"numpy"``: the reference. Every operation has a NumPy implementation, and that implementation
  is the specification of the operation.
- ``"numba"``: NumPy arrays, with Numba-compiled kernels from ``kernels/numba`` for the operations
  that have one; every other operation falls back to the NumPy reference.
- ``"cupy"``: CuPy arrays on a CUDA GPU, with kernels from ``kernels/cupy`` where they exist and the
  reference written against ``xp`` (which is then cupy) everywhere else.

Operations are registered by name (``@register("relu_forward")``) and a kernel is registered under
the same name for its backend, so a reader can put the reference and the kernel side by side.
"""
from __future__ import annotations

import contextlib
import importlib
import threading

import numpy

BACKENDS = ("numpy", "numba", "cupy")
DTYPES = ("float32", "float64")

_state = threading.local()
_registry: dict[str, dict[str, object]] = {}   # op name -> {backend name -> implementation}
_kernels_loaded: set[str] = set()


def _current() -> str:
    return getattr(_state, "name", "numpy")


def name() -> str:
    """The name of the active backend."""
    return _current()


def available() -> list[str]:
    """The backends that can run here: numpy always, numba if it imports, cupy if a GPU answers."""
    found = ["numpy"]
    if importlib.util.find_spec("numba") is not None:
        found.append("numba")
    if gpu_available():
        found.append("cupy")
    return found


def gpu_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    if importlib.util.find_spec("cupy") is None:
        return False
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # no driver, no device: CuPy raises several kinds of errors
        return False


def use(backend: str) -> None:
    """Make ``backend`` ("numpy", "numba" or "cupy") the active backend of this thread."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    if backend == "numba" and importlib.util.find_spec("numba") is None:
        raise RuntimeError("backend 'numba' needs the numba package: pip install numba")
    if backend == "cupy" and not gpu_available():
        raise RuntimeError("backend 'cupy' needs CuPy and a CUDA GPU; none was found "
                           "(pip install 'lrpnet[gpu]' on a machine with a GPU)")
    _load_kernels(backend)
    _state.name = backend


@contextlib.contextmanager
def using(backend: str):
    """Context manager: ``with backend.using("numba"): ...`` and the previous backend comes back."""
    previous = _current()
    use(backend)
    try:
        yield
    finally:
        _state.name = previous


def xp():
    """The array module of the active backend: numpy, or cupy for the "cupy" backend."""
    if _current() == "cupy":
        import cupy
        return cupy
    return numpy


def register(op_name: str, backend: str = "numpy"):
    """Decorator: register ``fn`` as ``backend``'s implementation of the operation ``op_name``."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")

    def decorate(fn):
        _registry.setdefault(op_name, {})[backend] = fn
        return fn
    return decorate


def op(op_name: str):
    """The active backend's implementation of ``op_name``, else the NumPy reference."""
    impls = _registry.get(op_name)
    if impls is None:
        raise KeyError(f"no operation named {op_name!r} is registered; known: {', '.join(sorted(_registry))}")
    return impls.get(_current(), impls["numpy"])


def implementations(op_name: str) -> dict[str, object]:
    """All registered implementations of ``op_name``, by backend (for tests and benchmarks)."""
    for backend in BACKENDS:
        if backend != "numpy" and importlib.util.find_spec(backend) is not None:
            with contextlib.suppress(Exception):
                _load_kernels(backend)
    return dict(_registry.get(op_name, {}))


def operations() -> list[str]:
    """Names of every registered operation."""
    return sorted(_registry)


def _load_kernels(backend: str) -> None:
    """Import ``kernels.<backend>`` once, which registers its kernels."""
    if backend == "numpy" or backend in _kernels_loaded:
        return
    importlib.import_module(f"kernels.{backend}")
    _kernels_loaded.add(backend)


def resolve_dtype(dtype) -> numpy.dtype:
    """Check and normalise a dtype argument: float32 (the default) or float64 (gradient checks)."""
    if dtype is None:
        return numpy.dtype("float32")
    dt = numpy.dtype(dtype)
    if dt.name not in DTYPES:
        raise ValueError(f"dtype {dt.name!r} is not supported; expected float32 or float64")
    return dt


def asarray(a, dtype=None):
    """``a`` as an array of the active backend (copying between host and device when needed)."""
    return xp().asarray(a, dtype=dtype)


def to_numpy(a) -> numpy.ndarray:
    """``a`` as a NumPy array on the host, whichever backend made it."""
    if isinstance(a, numpy.ndarray):
        return a
    get = getattr(a, "get", None)
    return get() if callable(get) else numpy.asarray(a)
