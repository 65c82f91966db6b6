import importlib.util
import os

import numpy
import pytest

from lrpnet import backend


@pytest.fixture(params=["numpy", "numba", "cupy"])
def each_backend(request):
    """Runs a test once under every backend available here; the others are skipped, saying why."""
    name = request.param
    if name not in backend.available():
        pytest.skip(f"backend {name!r} is not available on this machine")
    with backend.using(name):
        yield name


@pytest.fixture
def rng():
    return numpy.random.default_rng(1234)


def pytest_collection_modifyitems(config, items):
    has_torch = importlib.util.find_spec("torch") is not None
    has_gpu = backend.gpu_available()
    for item in items:
        if "torch" in item.keywords and not has_torch:
            item.add_marker(pytest.mark.skip(reason="PyTorch is not installed (pip install 'lrpnet[torch]')"))
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(pytest.mark.skip(reason="no CUDA GPU with CuPy here"))


def real_data_dir():
    """The data directory for tests marked realdata, or None."""
    d = os.environ.get("LRPNET_DATA")
    return d if d and os.path.isdir(d) else None
