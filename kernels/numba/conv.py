"""Numba kernels for the 2-D convolution of ``lrpnet/layers/conv.py``, under the same operation names.

The reference (``lrpnet.layers.conv``) computes, on NHWC images with W of shape (kh, kw, C_in, C_out),

    z[n, p, q, o] = sum_{i,j,c} xpad[n, s_h*p + i, s_w*q + j, c] W[i, j, c, o] + bias[o]

by copying every patch into one im2col matrix and doing one matrix product. These kernels run the
sums as direct loops instead, ordered so that the innermost loop runs over a contiguous axis (C_out
for the forward pass and the weight gradient, the patch for the input gradient) and vectorises without
fastmath. The padded image is never built: input row r = s_h*p + i - top is read only when 0 <= r < H
(same for columns), which is the same as reading a zero from xpad.

Each operation is a Python wrapper (the registered function: argument normalisation, output
allocation) around a jitted loop nest ``_<name>_loops``. The loops run in the arrays' own precision
(float32 in, float32 out), like the reference's matrix products; only the summation order differs, so
results agree with the reference to rounding (tests/test_kernels.py).

The loops are serial (no ``parallel=True``): the study trains one single-threaded worker per core,
and parallel compilation triples the first-call JIT time (about 30 s instead of 10 s for all kernels).
"""
from __future__ import annotations

import numpy
from numba import njit

from lrpnet import backend


def _check_dz(what, dz, n, x_hw, kernel_shape, stride, pads):
    """The loops index dz by output position: it must have the convolution output's shape."""
    kh, kw, _, c_out = kernel_shape
    top, bottom, left, right = pads
    expected = (int(n), (x_hw[0] + top + bottom - kh) // stride[0] + 1, (x_hw[1] + left + right - kw) // stride[1] + 1,
                int(c_out))
    if tuple(dz.shape) != expected:
        raise ValueError(f"{what}: dz must have the convolution output's shape {expected}, got {tuple(dz.shape)}")


# -- forward -----------------------------------------------------------------------------------------
@njit(cache=True, fastmath=False)
def _conv2d_forward_loops(x, w2, bias, kh, kw, sh, sw, top, left, z):
    """z[n, p, q, o] = sum_{i,j,c} x[n, sh*p + i - top, sw*q + j - left, c] W[i, j, c, o] + bias[o]
    (the module equation), skipping the terms that fall in the zero padding. ``w2`` is W as
    (kh*kw*C_in, C_out), row (i*kw + j)*C_in + c; ``z`` arrives filled with zeros."""
    n_img, h, w, c_in = x.shape
    _, out_h, out_w, c_out = z.shape
    for n in range(n_img):
        for p in range(out_h):
            for q in range(out_w):
                zrow = z[n, p, q]
                for i in range(kh):
                    r = sh * p + i - top
                    if r < 0 or r >= h:
                        continue            # a padded row: contributes zero
                    for j in range(kw):
                        s = sw * q + j - left
                        if s < 0 or s >= w:
                            continue
                        m = (i * kw + j) * c_in
                        for c in range(c_in):
                            xv = x[n, r, s, c]
                            wrow = w2[m + c]
                            for o in range(c_out):     # contiguous in W and z: vectorises
                                zrow[o] += xv * wrow[o]
                for o in range(c_out):
                    zrow[o] += bias[o]          # after the sum, as the reference adds it


@backend.register("conv2d_forward", "numba")
def conv2d_forward(x, weight, bias, stride, pads):
    """z = conv(x, W) + bias; x (N, H, W, C_in), weight (kh, kw, C_in, C_out), bias (C_out,) or None;
    ``pads`` = (top, bottom, left, right). Same function as the reference ``conv2d_forward``."""
    kh, kw, c_in, c_out = weight.shape
    n, h, w, _ = x.shape
    top, bottom, left, right = (int(v) for v in pads)
    sh, sw = int(stride[0]), int(stride[1])
    dtype = numpy.result_type(x, weight) if bias is None else numpy.result_type(x, weight, bias)
    out_h, out_w = (h + top + bottom - kh) // sh + 1, (w + left + right - kw) // sw + 1
    x = numpy.ascontiguousarray(x, dtype=dtype)
    w2 = numpy.ascontiguousarray(weight, dtype=dtype).reshape(kh * kw * c_in, c_out)
    b = numpy.zeros(c_out, dtype=dtype) if bias is None else numpy.ascontiguousarray(bias, dtype=dtype)
    z = numpy.zeros((n, out_h, out_w, c_out), dtype=dtype)
    _conv2d_forward_loops(x, w2, b, kh, kw, sh, sw, top, left, z)
    return z


# -- gradient with respect to the input ----------------------------------------------------------------
@njit(cache=True, fastmath=False)
def _conv2d_input_grad_loops(w2t, dz, kh, kw, sh, sw, top, left, dx):
    """The transpose of the forward sum (the reference's col2im): each output position (n, p, q) forms
    dpatch = W2 @ dz[n, p, q, :] (the gradient of its patch) and adds dpatch[(i*kw + j)*C + c] into
    dx[n, s_h*p + i - top, s_w*q + j - left, c], dropping what falls in the padding. ``w2t`` is W2
    transposed, (C_out, kh*kw*C_in), so that the innermost loop is contiguous; ``dx`` arrives zeroed."""
    n_img, h, w, c_in = dx.shape
    _, out_h, out_w, c_out = dz.shape
    dpatch = numpy.empty(w2t.shape[1], dtype=dx.dtype)
    for n in range(n_img):
        for p in range(out_h):
            for q in range(out_w):
                dpatch[:] = 0
                for o in range(c_out):
                    g = dz[n, p, q, o]
                    for m in range(w2t.shape[1]):      # contiguous: vectorises
                        dpatch[m] += g * w2t[o, m]
                m = 0
                for i in range(kh):
                    r = sh * p + i - top
                    for j in range(kw):
                        s = sw * q + j - left
                        if r >= 0 and r < h and s >= 0 and s < w:
                            for c in range(c_in):
                                dx[n, r, s, c] += dpatch[m + c]
                        m += c_in


@backend.register("conv2d_input_grad", "numba")
def conv2d_input_grad(weight, dz, x_shape, stride, pads):
    """dL/dx given dL/dz, shape ``x_shape``; same function as the reference ``conv2d_input_grad``."""
    dtype = dz.dtype
    pads, stride = tuple(int(v) for v in pads), (int(stride[0]), int(stride[1]))
    _check_dz("conv2d_input_grad", dz, x_shape[0], (int(x_shape[1]), int(x_shape[2])), weight.shape, stride, pads)
    kh, kw, c_in, c_out = weight.shape
    w2t = numpy.ascontiguousarray(numpy.asarray(weight, dtype=dtype).reshape(kh * kw * c_in, c_out).T)
    dz = numpy.ascontiguousarray(dz)
    dx = numpy.zeros(tuple(int(v) for v in x_shape), dtype=dtype)
    _conv2d_input_grad_loops(w2t, dz, kh, kw, stride[0], stride[1], pads[0], pads[2], dx)
    return dx


# -- gradient with respect to the weights --------------------------------------------------------------
@njit(cache=True, fastmath=False)
def _conv2d_weight_grad_loops(x, dz, kh, kw, sh, sw, top, left, dw2):
    """dW[i, j, c, o] = sum_{n,p,q} x[n, sh*p + i - top, sw*q + j - left, c] dz[n, p, q, o] (the
    reference's patches^T @ dz), skipping padded terms. ``dw2`` is dW as (kh*kw*C_in, C_out), zeroed."""
    n_img, h, w, c_in = x.shape
    _, out_h, out_w, c_out = dz.shape
    for n in range(n_img):
        for p in range(out_h):
            for q in range(out_w):
                dzrow = dz[n, p, q]
                for i in range(kh):
                    r = sh * p + i - top
                    if r < 0 or r >= h:
                        continue
                    for j in range(kw):
                        s = sw * q + j - left
                        if s < 0 or s >= w:
                            continue
                        m = (i * kw + j) * c_in
                        for c in range(c_in):
                            xv = x[n, r, s, c]
                            dwrow = dw2[m + c]
                            for o in range(c_out):     # contiguous: vectorises
                                dwrow[o] += xv * dzrow[o]


@backend.register("conv2d_weight_grad", "numba")
def conv2d_weight_grad(x, dz, kernel_shape, stride, pads):
    """dL/dW, shape ``kernel_shape`` = (kh, kw, C_in, C_out); same function as the reference
    ``conv2d_weight_grad``."""
    dtype = numpy.result_type(x, dz)
    pads, stride = tuple(int(v) for v in pads), (int(stride[0]), int(stride[1]))
    _check_dz("conv2d_weight_grad", dz, x.shape[0], x.shape[1:3], kernel_shape, stride, pads)
    kh, kw, c_in, c_out = (int(v) for v in kernel_shape)
    x = numpy.ascontiguousarray(x, dtype=dtype)
    dz = numpy.ascontiguousarray(dz, dtype=dtype)
    dw2 = numpy.zeros((kh * kw * c_in, c_out), dtype=dtype)
    _conv2d_weight_grad_loops(x, dz, kh, kw, stride[0], stride[1], pads[0], pads[2], dw2)
    return dw2.reshape(kh, kw, c_in, c_out)
