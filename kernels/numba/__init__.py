"""Numba (CPU) kernels. Importing this package registers them with lrpnet.backend under "numba".

Operations without a kernel here run the NumPy reference. One module per module of ``lrpnet/layers``:

- ``conv``: conv2d_forward, conv2d_input_grad, conv2d_weight_grad (``lrpnet/layers/conv.py``)
- ``pool``: sumpool2d_*, avgpool2d_*, maxpool2d_* forward and backward (``lrpnet/layers/pool.py``)

The references are imported first, so that a kernel is always registered beside its reference.
"""
import lrpnet.layers.conv  # noqa: F401  (registers the references)
import lrpnet.layers.pool  # noqa: F401

from . import conv, pool  # noqa: F401  (importing registers the kernels)
