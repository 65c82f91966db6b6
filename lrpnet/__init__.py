"""lrpnet: explaining recurrent neural networks with relevance propagation, from scratch.

Reproduces "Designing Recurrent Neural Networks for Explainability" (Chormai, 2018) on NumPy, with
Numba kernels on the CPU and CuPy kernels on the GPU.
"""
from . import backend

__version__ = "0.1.0"

__all__ = ["backend", "__version__"]


def save(model, path):
    """Write ``model`` to ``path`` as .npz (weights, architecture and configuration), atomically."""
    from .io import save as _save
    return _save(model, path)


def load(path):
    """Read a model written by ``save``; a truncated or foreign file gets a clear error."""
    from .io import load as _load
    return _load(path)


def explain(model, x, method, **options):
    """Relevance of every input pixel for ``model``'s score of a target class; see lrpnet.explain."""
    from .explain import explain as _explain
    return _explain(model, x, method, **options)


__all__ += ["save", "load", "explain"]
