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

The default backend of a process is ``$LRPNET_BACKEND`` (numpy when unset), so a whole program or
test suite runs under any backend; ``use`` and ``using`` change it for the current thread.

Where arrays live: "numpy" and "numba" keep arrays on the host ("cpu"), "cupy" on the GPU ("gpu").
The backend in force and the arrays it is given must agree: a model carries its backend
(``model.to("cupy")``), and code that meets an array of the other device raises ``DeviceMismatch``,
naming both, instead of a TypeError deep inside an operation.
"""
from __future__ import annotations

import contextlib
import importlib
import os
import threading

import numpy

BACKENDS = ("numpy", "numba", "cupy")
DEVICES = {"numpy": "cpu", "numba": "cpu", "cupy": "gpu"}     # where each backend keeps its arrays
DTYPES = ("float32", "float64")
ENV_VAR = "LRPNET_BACKEND"


class DeviceMismatch(TypeError):
    """Host and device arrays met, or a model and the backend in force live on different devices."""

_state = threading.local()
_registry: dict[str, dict[str, object]] = {}   # op name -> {backend name -> implementation}
_kernels_loaded: set[str] = set()


_process_default: str | None = None


def default() -> str:
    """The process's default backend: ``$LRPNET_BACKEND``, or "numpy" when it is unset or empty.
    Checked (and its kernels loaded) on first use; a bad value is an error naming the variable."""
    global _process_default
    if _process_default is None:
        wanted = os.environ.get(ENV_VAR, "").strip() or "numpy"
        if wanted not in BACKENDS:
            raise ValueError(f"{ENV_VAR}={wanted!r} is not a backend; expected one of {', '.join(BACKENDS)}")
        _check_usable(wanted, f" ({ENV_VAR}={wanted})")
        _load_kernels(wanted)
        _process_default = wanted
    return _process_default


def _current() -> str:
    name_ = getattr(_state, "name", None)
    return default() if name_ is None else name_


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
    """True when CuPy imports and sees at least one CUDA device (``gpu_status`` says why not)."""
    return gpu_status()[0]


def gpu_status() -> tuple[bool, str]:
    """(usable, reason): whether the "cupy" backend can run here, and in words why or why not: CuPy
    not installed or failing to import, a CUDA driver older than the runtime CuPy was built for (the
    wheel must match: cupy-cuda12x for CUDA 12 drivers, cupy-cuda13x for CUDA 13), no device."""
    if importlib.util.find_spec("cupy") is None:
        return False, "CuPy is not installed (pip install 'lrpnet[gpu]')"
    try:
        import cupy
    except Exception as e:  # a broken install raises ImportError, OSError (a missing libcuda) ...
        return False, f"CuPy failed to import: {type(e).__name__}: {e}"
    runtime = cupy.cuda.runtime
    try:
        count = runtime.getDeviceCount()
    except Exception as e:  # CUDARuntimeError: no driver, a driver too old for the runtime, no device
        return False, _no_device_reason(runtime, e)
    if count < 1:
        return False, "CuPy sees no CUDA device"
    standin = " (the CPU stand-in for CuPy)" if getattr(cupy, "STANDIN", False) else ""
    return True, f"CuPy {cupy.__version__} sees {count} CUDA device(s){standin}"


def _no_device_reason(runtime, error) -> str:
    """Why getDeviceCount failed, in words: compares the driver's CUDA version with CuPy's runtime."""
    def version(get):
        try:
            v = int(get())
            return f"{v // 1000}.{v % 1000 // 10}", v
        except Exception:
            return None, None
    driver, driver_v = version(runtime.driverGetVersion)
    built, built_v = version(runtime.runtimeGetVersion)
    if driver_v == 0:
        return f"no CUDA driver is installed ({type(error).__name__}: {error})"
    if driver_v is not None and built_v is not None and driver_v < built_v:
        return (f"the CUDA driver supports CUDA {driver}, older than the CUDA {built} runtime CuPy was "
                f"built for: update the driver, or install the CuPy wheel of the driver's CUDA "
                f"(cupy-cuda12x for CUDA 12) ({type(error).__name__}: {error})")
    return f"no usable CUDA device ({type(error).__name__}: {error}; driver CUDA {driver or 'unknown'})"


def _check_usable(backend: str, where: str = "") -> None:
    if backend == "numba" and importlib.util.find_spec("numba") is None:
        raise RuntimeError(f"backend 'numba'{where} needs the numba package: pip install numba")
    if backend == "cupy":
        ok, reason = gpu_status()
        if not ok:
            raise RuntimeError(f"backend 'cupy'{where} needs CuPy and a CUDA GPU: {reason}")


def use(backend: str) -> None:
    """Make ``backend`` ("numpy", "numba" or "cupy") the active backend of this thread."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    _check_usable(backend)
    _load_kernels(backend)
    _state.name = backend


@contextlib.contextmanager
def using(backend: str):
    """Context manager: ``with backend.using("numba"): ...`` and the previous backend comes back."""
    previous = getattr(_state, "name", None)
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


def device(backend: str | None = None) -> str:
    """Where ``backend`` (default: the active one) keeps its arrays: "cpu" or "gpu"."""
    return DEVICES[_current() if backend is None else backend]


def device_of(a) -> str | None:
    """Where the array ``a`` lives: "cpu" (a NumPy array), "gpu" (a CuPy array), None otherwise."""
    if isinstance(a, numpy.ndarray):
        return "cpu"
    return "gpu" if type(a).__module__.split(".")[0] == "cupy" else None


def module_of(a):
    """The array module that made ``a``: numpy for host arrays, cupy for device arrays."""
    if device_of(a) == "gpu":
        import cupy
        return cupy
    return numpy


def describe(a) -> str:
    """``a`` in a few words for an error message: its type, device, dtype and shape."""
    where = device_of(a)
    kind = f"{type(a).__module__.split('.')[0]}.{type(a).__name__}"
    return f"{kind} on the {where or 'unknown device'} ({getattr(a, 'dtype', '?')}, shape {tuple(getattr(a, 'shape', ()))})"


def synchronize() -> None:
    """Wait for the device to finish queued work (for timing); nothing to do on the host."""
    if _current() == "cupy":
        import cupy
        cupy.cuda.get_current_stream().synchronize()


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


def reference(op_name: str):
    """The NumPy reference of ``op_name``: what a kernel runs for arguments it does not take."""
    return _registry[op_name]["numpy"]


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
    """Import ``kernels.<backend>`` once, which registers its kernels. Not under the CPU stand-in for
    CuPy (tests/standin), which runs the references on its strict arrays and cannot run CUDA code."""
    if backend == "numpy" or backend in _kernels_loaded:
        return
    if backend == "cupy":
        import cupy
        if getattr(cupy, "STANDIN", False):
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


def fetch(arrays: dict) -> dict:
    """``{name: array}`` copied to the host as NumPy arrays with one transfer per dtype: device arrays
    of one dtype are flattened into one buffer, copied, and cut apart again (a copy per array would
    wait for the device once per array)."""
    out, by_dtype = {}, {}
    for k, a in arrays.items():
        if a is None or isinstance(a, numpy.ndarray):
            out[k] = a
        else:
            by_dtype.setdefault(a.dtype, []).append(k)
    for keys in by_dtype.values():
        flat = to_numpy(module_of(arrays[keys[0]]).concatenate([arrays[k].reshape(-1) for k in keys]))
        start = 0
        for k in keys:
            a = arrays[k]
            out[k] = flat[start:start + a.size].reshape(a.shape)
            start += a.size
    return out


def random_state(seed_words):
    """A random generator for the active backend, seeded by a list of ints (``[seed, epoch, stream]``).

    On the host: ``numpy.random.default_rng(seed_words)``. On the GPU: a CuPy generator seeded from the
    same words (one 64-bit word drawn by NumPy's SeedSequence), so draws such as dropout masks happen
    on the device with no upload; its streams differ from NumPy's, so GPU masks differ from the CPU's.
    """
    if device() == "cpu":
        return numpy.random.default_rng(seed_words)
    import cupy
    seed = int(numpy.random.SeedSequence(seed_words).generate_state(1, dtype=numpy.uint64)[0])
    return cupy.random.RandomState(seed)
