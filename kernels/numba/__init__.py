"""Numba (CPU) kernels. Importing this package registers them with lrpnet.backend under "numba".

Operations without a kernel here run the NumPy reference. One module per module of ``lrpnet``:

- ``conv``: none: its kernels lost to the reference's BLAS products at every batch of 4 or more
  (0.27x to 0.76x); ``kernels/numba/conv.py``'s docstring keeps the numbers (``lrpnet/layers/conv.py``)
- ``pool``: sumpool2d_*, avgpool2d_*, maxpool2d_* forward and backward (``lrpnet/layers/pool.py``)
- ``activations``: sigmoid_backward, tanh_backward, relu_backward, relu_guided_backward
  (``lrpnet/layers/activations.py``)
- ``base``: sigmoid_forward, negsoftplus_grad (``lrpnet/layers/base.py``)
- ``dropout``: dropout_mask (``lrpnet/layers/dropout.py``)
- ``rules``: sign, lrp_divide (``lrpnet/rules.py``)
- ``training``: adam_update, adam_update_masked (``lrpnet/training.py``)

``elementwise`` holds what the pointwise kernels share (which arrays they take; the flat view).

A kernel is registered only where it beats its reference at every size the study's models call it
with, one thread (``python -m kernels.numba.benchmark_pointwise``; benchmarks/RESULTS.md). Two
pointwise operations have none, because a Numba loop did not (the benchmark keeps both as candidates):
``negsoftplus`` (base.py says why) and ``gatemul_backward`` (``(dy * signal, dy * gate)``, structure.py):
a kernel with one vectorised loop per product lost at R-LSTM's per-step size, (50, 72) float32, 0.72x to
0.87x in five runs, went either way at (50, 128) and (50, 256) (0.61x to 1.31x) and won only at
(256, 72) (1.09x to 1.50x): two NumPy products of a few thousand entries cost little more than a kernel
call and the check of its three arguments.

``benchmark_pointwise`` measures the pointwise kernels (``--ops``) and the models under both backends
(``--models``); it registers nothing.

The references are imported first, so that a kernel is always registered beside its reference.
"""
import lrpnet.layers.activations  # noqa: F401  (registers the references)
import lrpnet.layers.base  # noqa: F401
import lrpnet.layers.conv  # noqa: F401
import lrpnet.layers.dropout  # noqa: F401
import lrpnet.layers.pool  # noqa: F401
import lrpnet.rules  # noqa: F401
import lrpnet.training  # noqa: F401

from . import activations, base, conv, dropout, pool, rules, training  # noqa: F401  (registers the kernels)
