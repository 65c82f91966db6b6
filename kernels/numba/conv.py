"""No Numba kernels for the 2-D convolution: under the "numba" backend, the convolution operations of
``lrpnet/layers/conv.py`` (``conv2d_forward``, ``conv2d_input_grad``, ``conv2d_weight_grad``,
``conv2d_patches``, ``conv2d_forward_from_patches``, ``conv2d_weight_grad_from_patches``) run the NumPy
reference, because every one of them is a matrix product that BLAS does faster.

This module held direct-loop kernels for the first three (the padded image never built, the innermost
loop over a contiguous axis, serial, no fastmath). Measured against the reference with one thread
(benchmarks/RESULTS.md, "Convolution input gradient and patch reuse", 2026-11-28), they lost at every
batch lrpnet runs, the reference's im2col + BLAS product being 1.3x to 3.7x faster:

    NumPy ms / Numba ms, float32, SAME, stride 1     forward    input grad   weight grad
    (50, 28, 7, 1) 5x5x24     (ConvDeep conv1)        0.48       0.45         0.41
    (50, 14, 4, 24) 3x3x32    (ConvDeep conv2)        0.33       0.48         0.52
    (50, 28, 7, 25) 5x5x24    (conv+deep conv1)       0.46       0.47         0.47
    (50, 14, 4, 56) 3x3x32    (conv+deep conv2)       0.37       0.27         0.45
    batch 256, the same four                          0.44-0.59  0.36-0.76    0.46-0.58
    batch 4, the same four                            0.29-0.58  0.36-0.84    0.29-0.53

(below 1: the kernel is slower). They won only on a single image of ConvDeep's conv1 (forward 1.07x,
input gradient 1.85x: 2 and 35 microseconds), where NumPy's per-call overhead dominates; no training
step or explanation of lrpnet runs such batches, and an operation is registered for every size or
none. So they were removed; the last commit that has them is 2084f86
(``git show 2084f86:kernels/numba/conv.py``). This module stays so that ``kernels.numba`` imports as
before; it registers nothing.
"""
