import contextlib
import importlib.util
import os
import sys

import numpy
import pytest

STANDIN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "standin")
if os.environ.get("LRPNET_STANDIN", "") not in ("", "0"):
    # the whole suite on the CPU stand-in for CuPy (tests/standin): with LRPNET_BACKEND=cupy, every
    # test runs the GPU code paths on strict arrays that refuse host/device mixing
    sys.path.insert(0, STANDIN_DIR)

from lrpnet import backend  # noqa: E402


@contextlib.contextmanager
def standin_module():
    """``import cupy`` gives the CPU stand-in (tests/standin) inside the block; any real CuPy (or an
    earlier stand-in) comes back afterwards."""
    saved = {k: v for k, v in sys.modules.items() if k == "cupy" or k.startswith("cupy.")}
    for k in saved:
        del sys.modules[k]
    sys.path.insert(0, STANDIN_DIR)
    try:
        import cupy
        assert getattr(cupy, "STANDIN", False), f"import cupy found {cupy.__file__}, not the stand-in"
        yield cupy
    finally:
        sys.path.remove(STANDIN_DIR)
        for k in [k for k in sys.modules if k == "cupy" or k.startswith("cupy.")]:
            del sys.modules[k]
        sys.modules.update(saved)


@pytest.fixture
def standin():
    """The CPU stand-in for CuPy as the "cupy" backend, active in the test; yields the module
    (``standin.standin.stats()``, ``forbid_syncs()``, ``forbid_float64()``)."""
    with standin_module() as cupy, backend.using("cupy"):
        cupy.standin.reset()
        yield cupy


@pytest.fixture(params=["numba", "cupy"])
def each_backend(request):
    """Runs a test once under each backend other than the NumPy reference that is available here (the
    others are skipped, saying why). The test computes its reference explicitly under NumPy
    (``with backend.using("numpy")``) and compares the backend's answer with it on the host."""
    name = request.param
    if name not in backend.available():
        pytest.skip(f"backend {name!r} is not available on this machine")
    with backend.using(name):
        yield name


@pytest.fixture
def on_the_host():
    """The NumPy references read ``backend.xp()``: run them (and the CPU kernels beside them) under
    NumPy on host arrays, whatever backend the suite runs under."""
    with backend.using("numpy"):
        yield


def reference_and_kernel(name, kernel_backend):
    """(the NumPy reference, ``kernel_backend``'s kernel) of operation ``name``; fails if that backend
    registers no kernel for it."""
    impls = backend.implementations(name)
    assert kernel_backend in impls, f"no {kernel_backend} kernel registered for {name!r}"
    return impls["numpy"], impls[kernel_backend]


@pytest.fixture
def rng():
    return numpy.random.default_rng(1234)


def pytest_collection_modifyitems(config, items):
    has_torch = importlib.util.find_spec("torch") is not None
    has_gpu = backend.gpu_available() and not getattr(sys.modules.get("cupy"), "STANDIN", False)
    for item in items:
        if "torch" in item.keywords and not has_torch:
            item.add_marker(pytest.mark.skip(reason="PyTorch is not installed (pip install 'lrpnet[torch]')"))
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(pytest.mark.skip(reason="no CUDA GPU with CuPy here"))


def real_data_dir():
    """The data directory for tests marked realdata, or None."""
    d = os.environ.get("LRPNET_DATA")
    return d if d and os.path.isdir(d) else None
