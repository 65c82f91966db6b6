"""Accelerated kernels, mirroring lrpnet's operations one to one and by name.

``kernels/numba`` (CPU) and ``kernels/cupy`` (GPU) register implementations under the names of the
NumPy reference operations (``lrpnet.backend.register(name, backend)``). Importing a subpackage
registers its kernels; ``lrpnet.backend.use(name)`` does that.
"""
