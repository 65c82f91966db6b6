"""Numba kernels for the pooling operations of ``lrpnet/layers/pool.py``, under the same names.

The reference, per channel c, over kh x kw windows moving by (s_h, s_w) on x padded by ``pads``:

    sum:  y[n, p, q, c] = sum_{i,j} xpad[n, s_h*p + i, s_w*q + j, c]           (padding = 0)
    avg:  y[n, p, q, c] = sum / (number of real, non-padded inputs in the window)
    max:  y[n, p, q, c] = max_{i,j} xpad[n, s_h*p + i, s_w*q + j, c]           (padding = -inf),
          arg[n, p, q, c] = i*kw + j of the first maximum in row-major window order (strict ``>``)

and the backward passes are the adjoints (vector-Jacobian products) of the forward ones. The kernels
never build the padded image: input row r = s_h*p + i - top is read only when 0 <= r < H. A padded
entry is 0 for the sums (skipped) and -inf for the max (it can only "win" as offset 0, when every
other entry is -inf too, exactly as in the reference).

The backward kernels gather rather than scatter: each input position sums what the windows containing
it send back, in the reference's offset order (k = 0, 1, ...), so sum and max pooling agree with the
reference bit for bit, and no position is written from two places (a parallel loop would be safe).
One exception, the sign of a zero: where windows tile the input (stride = size), the reference's sum
and average backward copy each window's dy (``pool._repeat_over_windows``), a -0 included, where the
kernel adds it to +0.
"""
from __future__ import annotations

import numpy
from numba import njit

from lrpnet import backend


def _geometry(x_shape, size, stride, pads):
    """Plain ints: (kh, kw), (sh, sw), (top, left), (out_h, out_w), as the reference's ``_out_hw``."""
    kh, kw = int(size[0]), int(size[1])
    sh, sw = int(stride[0]), int(stride[1])
    top, bottom, left, right = (int(v) for v in pads)
    out_hw = ((int(x_shape[1]) + top + bottom - kh) // sh + 1, (int(x_shape[2]) + left + right - kw) // sw + 1)
    return (kh, kw), (sh, sw), (top, left), out_hw


def _check_output_shape(what, array, x_shape, out_hw):
    """The loops index ``array`` by output position: it must have the output's shape (no broadcasting)."""
    expected = (int(x_shape[0]),) + tuple(out_hw) + (int(x_shape[3]),)
    if tuple(array.shape) != expected:
        raise ValueError(f"{what} must have the pooled output's shape {expected}, got {tuple(array.shape)}")


@njit(cache=True, fastmath=False)
def _window_index(r, top, i, s, out):
    """The output index p of the window whose offset i meets input row r (r = s*p + i - top), or -1."""
    rp = r + top - i
    if rp < 0 or rp % s != 0 or rp // s >= out:
        return -1
    return rp // s


# -- sum ---------------------------------------------------------------------------------------------
@njit(cache=True, fastmath=False)
def _sumpool2d_forward_loops(x, kh, kw, sh, sw, top, left, y):
    """y[n, p, q, c] = sum_{i,j} x[n, sh*p + i - top, sw*q + j - left, c] over the real entries,
    added in row-major offset order; ``y`` arrives filled with zeros."""
    n_img, h, w, channels = x.shape
    _, out_h, out_w, _ = y.shape
    for n in range(n_img):
        for p in range(out_h):
            for q in range(out_w):
                for i in range(kh):
                    r = sh * p + i - top
                    if r < 0 or r >= h:
                        continue            # padded row: adds zero
                    for j in range(kw):
                        s = sw * q + j - left
                        if s < 0 or s >= w:
                            continue
                        for c in range(channels):
                            y[n, p, q, c] += x[n, r, s, c]


@backend.register("sumpool2d_forward", "numba")
def sumpool2d_forward(x, size, stride, pads):
    """y = sum of each window of x padded with zeros (reference ``sumpool2d_forward``)."""
    (kh, kw), (sh, sw), (top, left), (oh, ow) = _geometry(x.shape, size, stride, pads)
    x = numpy.ascontiguousarray(x)
    y = numpy.zeros((x.shape[0], oh, ow, x.shape[3]), dtype=x.dtype)
    _sumpool2d_forward_loops(x, kh, kw, sh, sw, top, left, y)
    return y


@njit(cache=True, fastmath=False)
def _spread_loops(dy, kh, kw, sh, sw, top, left, dx):
    """dx[n, r, s, c] = sum of dy[n, p, q, c] over the windows (p, q) that contain (r, s), in offset
    order (the adjoint of ``_sumpool2d_forward_loops``); ``dx`` arrives filled with zeros."""
    n_img, h, w, channels = dx.shape
    _, out_h, out_w, _ = dy.shape
    for n in range(n_img):
        for r in range(h):
            for s in range(w):
                for i in range(kh):
                    p = _window_index(r, top, i, sh, out_h)
                    if p < 0:
                        continue
                    for j in range(kw):
                        q = _window_index(s, left, j, sw, out_w)
                        if q < 0:
                            continue
                        for c in range(channels):
                            dx[n, r, s, c] += dy[n, p, q, c]


@backend.register("sumpool2d_backward", "numba")
def sumpool2d_backward(dy, x_shape, size, stride, pads):
    """dx[position] = sum of dy over the windows that contain the position (reference
    ``sumpool2d_backward``)."""
    (kh, kw), (sh, sw), (top, left), out_hw = _geometry(x_shape, size, stride, pads)
    _check_output_shape("sumpool2d_backward: dy", dy, x_shape, out_hw)
    dy = numpy.ascontiguousarray(dy)
    dx = numpy.zeros(tuple(int(v) for v in x_shape), dtype=dy.dtype)
    _spread_loops(dy, kh, kw, sh, sw, top, left, dx)
    return dx


# -- average -----------------------------------------------------------------------------------------
def _window_counts(x_shape, size, stride, pads, dtype):
    """Number of real (non-padded) inputs per window, shape (out_h, out_w), in ``dtype``: the count
    of real rows times the count of real columns (the reference sum-pools an image of ones)."""
    (kh, kw), (sh, sw), (top, left), (oh, ow) = _geometry(x_shape, size, stride, pads)

    def real(n_out, k, s, before, size_in):
        start = numpy.arange(n_out) * s - before
        return numpy.minimum(start + k, size_in) - numpy.maximum(start, 0)
    rows = real(oh, kh, sh, top, int(x_shape[1]))
    cols = real(ow, kw, sw, left, int(x_shape[2]))
    return numpy.ascontiguousarray(numpy.outer(rows, cols).astype(dtype))


@njit(cache=True, fastmath=False)
def _divide_by_counts(y, counts):
    """y[n, p, q, c] /= counts[p, q], in y's precision."""
    n_img, out_h, out_w, channels = y.shape
    for n in range(n_img):
        for p in range(out_h):
            for q in range(out_w):
                for c in range(channels):
                    y[n, p, q, c] /= counts[p, q]


@backend.register("avgpool2d_forward", "numba")
def avgpool2d_forward(x, size, stride, pads):
    """y = window sum / number of real inputs in the window (reference ``avgpool2d_forward``)."""
    y = sumpool2d_forward(x, size, stride, pads)
    _divide_by_counts(y, _window_counts(x.shape, size, stride, pads, y.dtype))
    return y


@backend.register("avgpool2d_backward", "numba")
def avgpool2d_backward(dy, x_shape, size, stride, pads):
    """dx[position] = sum of dy / count over the windows that contain the position (reference
    ``avgpool2d_backward``)."""
    _check_output_shape("avgpool2d_backward: dy", dy, x_shape, _geometry(x_shape, size, stride, pads)[3])
    scaled = numpy.array(dy, order="C", copy=True)      # a copy: dy itself stays untouched
    _divide_by_counts(scaled, _window_counts(x_shape, size, stride, pads, scaled.dtype))
    return sumpool2d_backward(scaled, x_shape, size, stride, pads)


# -- max ---------------------------------------------------------------------------------------------
@njit(cache=True, fastmath=False)
def _maxpool2d_forward_loops(x, kh, kw, sh, sw, top, left, y, arg):
    """y = the window maxima, arg = offset k = i*kw + j of the first maximum. Offset 0 sets the
    starting value (-inf where it is padding); each later offset replaces it only when strictly
    greater, so ties keep the earliest offset and padding (-inf) never wins after offset 0."""
    n_img, h, w, channels = x.shape
    _, out_h, out_w, _ = y.shape
    neg_inf = -numpy.inf
    for n in range(n_img):
        for p in range(out_h):
            for q in range(out_w):
                for i in range(kh):
                    r = sh * p + i - top
                    for j in range(kw):
                        s = sw * q + j - left
                        k = i * kw + j
                        inside = r >= 0 and r < h and s >= 0 and s < w
                        if k == 0:
                            for c in range(channels):
                                y[n, p, q, c] = x[n, r, s, c] if inside else neg_inf
                                arg[n, p, q, c] = 0
                        elif inside:
                            for c in range(channels):
                                v = x[n, r, s, c]
                                if v > y[n, p, q, c]:
                                    y[n, p, q, c] = v
                                    arg[n, p, q, c] = k


@backend.register("maxpool2d_forward", "numba")
def maxpool2d_forward(x, size, stride, pads):
    """(y, arg): window maxima and the offset k = i*kw + j of each (first one on ties); reference
    ``maxpool2d_forward``, arg as uint8 (int32 for windows of more than 256 entries)."""
    (kh, kw), (sh, sw), (top, left), (oh, ow) = _geometry(x.shape, size, stride, pads)
    x = numpy.ascontiguousarray(x)
    shape = (x.shape[0], oh, ow, x.shape[3])
    y = numpy.empty(shape, dtype=x.dtype)
    arg = numpy.empty(shape, dtype=numpy.uint8 if kh * kw <= 256 else numpy.int32)
    _maxpool2d_forward_loops(x, kh, kw, sh, sw, top, left, y, arg)
    return y, arg


@njit(cache=True, fastmath=False)
def _maxpool2d_backward_loops(arg, dy, kh, kw, sh, sw, top, left, dx):
    """dx[n, r, s, c] = sum of dy[n, p, q, c] over the windows (p, q) whose maximum is at (r, s),
    i.e. whose arg is the offset (i, j) at which the window meets (r, s); ``dx`` arrives zeroed."""
    n_img, h, w, channels = dx.shape
    _, out_h, out_w, _ = dy.shape
    for n in range(n_img):
        for r in range(h):
            for s in range(w):
                for i in range(kh):
                    p = _window_index(r, top, i, sh, out_h)
                    if p < 0:
                        continue
                    for j in range(kw):
                        q = _window_index(s, left, j, sw, out_w)
                        if q < 0:
                            continue
                        k = i * kw + j
                        for c in range(channels):
                            if arg[n, p, q, c] == k:
                                dx[n, r, s, c] += dy[n, p, q, c]


@backend.register("maxpool2d_backward", "numba")
def maxpool2d_backward(arg, dy, x_shape, size, stride, pads):
    """dx[position] = sum of dy over the windows whose maximum is at the position (reference
    ``maxpool2d_backward``)."""
    (kh, kw), (sh, sw), (top, left), out_hw = _geometry(x_shape, size, stride, pads)
    _check_output_shape("maxpool2d_backward: dy", dy, x_shape, out_hw)
    _check_output_shape("maxpool2d_backward: arg", arg, x_shape, out_hw)
    arg = numpy.ascontiguousarray(arg)
    dy = numpy.ascontiguousarray(dy)
    dx = numpy.zeros(tuple(int(v) for v in x_shape), dtype=dy.dtype)
    _maxpool2d_backward_loops(arg, dy, kh, kw, sh, sw, top, left, dx)
    return dx
