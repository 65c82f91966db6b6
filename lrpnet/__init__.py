"""lrpnet: explaining recurrent neural networks with relevance propagation, from scratch.

Reproduces "Designing Recurrent Neural Networks for Explainability" (Chormai, 2018) on NumPy, with
Numba kernels on the CPU and CuPy kernels on the GPU.
"""
from . import backend

__version__ = "0.1.0"

__all__ = ["backend", "__version__"]
