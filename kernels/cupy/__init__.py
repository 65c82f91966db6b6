"""CuPy (GPU) kernels. Importing this package registers them with lrpnet.backend under "cupy".

Operations without a kernel here run the reference, written against ``backend.xp()`` (cupy). Each
kernel here fuses a reference's chain of pointwise array operations into one launch. One module per
module of lrpnet:

- ``activations``: sigmoid_forward, sigmoid_backward, tanh_backward, relu_backward,
  relu_guided_backward (``lrpnet/layers/activations.py``)
- ``base``: negsoftplus, negsoftplus_grad (``lrpnet/layers/base.py``)
- ``structure``: gatemul_backward (``lrpnet/layers/structure.py``)
- ``dropout``: dropout_mask (``lrpnet/layers/dropout.py``)
- ``rules``: sign, lrp_divide (``lrpnet/rules.py``)
- ``training``: adam_update, adam_update_masked (``lrpnet/training.py``)

``elementwise`` holds what they share (kernels built on first call; when a call runs the reference
instead); ``compile_check.py`` compiles every kernel with NVRTC on a machine without a GPU.

The references are imported first, so that a kernel is always registered beside its reference.
Importing this package imports neither CuPy nor compiles anything: that happens at a kernel's first call.
"""
import lrpnet.layers.activations  # noqa: F401  (registers the references)
import lrpnet.layers.base  # noqa: F401
import lrpnet.layers.dropout  # noqa: F401
import lrpnet.layers.structure  # noqa: F401
import lrpnet.rules  # noqa: F401
import lrpnet.training  # noqa: F401

from . import activations, base, dropout, rules, structure, training  # noqa: F401  (registers the kernels)
