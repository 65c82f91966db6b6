"""CuPy (GPU) kernels. Importing this package registers them with lrpnet.backend under "cupy".

Operations without a kernel here run the reference, written against ``backend.xp()`` (cupy).
"""
