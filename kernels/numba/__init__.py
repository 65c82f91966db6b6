"""Numba (CPU) kernels. Importing this package registers them with lrpnet.backend under "numba".

Operations without a kernel here run the NumPy reference.
"""
