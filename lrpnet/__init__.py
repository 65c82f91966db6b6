"""lrpnet: explaining recurrent neural networks with relevance propagation, from scratch.

Reproduces "Designing Recurrent Neural Networks for Explainability" (Chormai, 2018) on NumPy, with
Numba kernels on the CPU and CuPy kernels on the GPU.
"""
from . import backend

__version__ = "0.1.0"

__all__ = ["backend", "__version__"]


def save(model, path, extra=None, optimizer=None):
    """Write ``model`` to ``path`` as .npz (weights, architecture and configuration), atomically."""
    from .io import save as _save
    return _save(model, path, extra=extra, optimizer=optimizer)


def load(path, with_meta=False):
    """Read a model written by ``save``; a truncated or foreign file gets a clear error."""
    from .io import load as _load
    return _load(path, with_meta=with_meta)


# Imported eagerly: importing the submodule ``lrpnet.explain`` lazily would rebind the attribute
# ``lrpnet.explain`` from this function to the module on the first call.
from .explain import explain  # noqa: E402  (relevance of every input for a target class's score)


__all__ += ["save", "load", "explain"]
