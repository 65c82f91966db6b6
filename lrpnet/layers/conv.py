"""2-D convolution on NHWC images: z[n, p, q, o] = sum_{i,j,c} xpad[n, s*p + i, s*q + j, c] W[i, j, c, o] + bias[o].

x has shape (N, H, W, C_in), W has shape (kh, kw, C_in, C_out) (TensorFlow's layout), s is the stride
and xpad is x padded with zeros. Padding follows TensorFlow:
- ``"VALID"``: no padding; out = floor((in - k) / s) + 1;
- ``"SAME"``: out = ceil(in / s); pad_total = max((out - 1) * s + k - in, 0); pad_before = pad_total // 2
  and the rest (one more, when pad_total is odd) after.
The bias takes the three forms of ``Dense`` (``"plain"``, ``"negsoftplus"`` = -softplus(b) <= 0, None).

The three operations (``conv2d_forward``, ``conv2d_input_grad``, ``conv2d_weight_grad``) are registered
with ``lrpnet.backend`` so that Numba/CuPy kernels can replace them. The reference copies the window of
the padded input that each output position reads into a patch matrix (N*out_h*out_w, kh*kw*C_in) and
does one matrix product with W reshaped to (kh*kw*C_in, C_out) ("im2col"). One product beats one
product per kernel offset when C_in is small (ConvDeep's first layer has C_in = 1: 10x faster). The
input gradient goes the other way ("col2im"): a loop over the kh*kw offsets adds each offset's share
into the strided view of the padded input that the offset meets.

The window helpers (``window_pads``, ``pad_hw``, ``offset_view``) are shared with ``pool.py``.
"""
from __future__ import annotations

import numpy

from .. import backend
from .base import LinearLayer
PADDINGS = ("SAME", "VALID")


# -- window geometry (shared by convolution and pooling) --------------------------------------------
def pair(v, what):
    """An int or a pair of ints as a pair (rows, columns) of positive ints."""
    p = (v, v) if isinstance(v, (int, numpy.integer)) else tuple(v)
    if len(p) != 2 or not all(isinstance(a, (int, numpy.integer)) and a >= 1 for a in p):
        raise ValueError(f"{what} must be a positive int or a pair of positive ints, got {v!r}")
    return int(p[0]), int(p[1])


def check_padding(padding):
    """``padding`` as "SAME" or "VALID" (either case), or a clear error."""
    p = padding.upper() if isinstance(padding, str) else padding
    if p not in PADDINGS:
        raise ValueError(f"unknown padding {padding!r}; expected 'SAME' or 'VALID'")
    return p


def axis_pads(size, k, s, padding):
    """(pad_before, pad_after, out) along one axis, as TensorFlow computes them (module docstring)."""
    if padding == "VALID":
        return 0, 0, (size - k) // s + 1
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2, out


def window_pads(x_shape, kernel, stride, padding):
    """((top, bottom, left, right), (out_h, out_w)) for windows ``kernel`` moving by ``stride`` over
    the H and W axes of an NHWC shape."""
    top, bottom, oh = axis_pads(x_shape[1], kernel[0], stride[0], padding)
    left, right, ow = axis_pads(x_shape[2], kernel[1], stride[1], padding)
    return (top, bottom, left, right), (oh, ow)


def pad_hw(x, pads, value=0.0):
    """x (N, H, W, C) with ``pads`` = (top, bottom, left, right) rows/columns of ``value`` around H, W."""
    top, bottom, left, right = pads
    if not any(pads):
        return x
    xp = backend.xp()
    n, h, w, c = x.shape
    out = xp.full((n, h + top + bottom, w + left + right, c), value, dtype=x.dtype)
    out[:, top:top + h, left:left + w, :] = x
    return out


def crop_hw(xpad, pads, x_shape):
    """The inverse of ``pad_hw``: the (H, W) part of a padded array."""
    top, _, left, _ = pads
    return backend.xp().ascontiguousarray(xpad[:, top:top + x_shape[1], left:left + x_shape[2], :])


def offset_view(xpad, i, j, out_hw, stride):
    """xpad[:, s_h*p + i, s_w*q + j, :] for every output position (p, q): what kernel offset (i, j)
    meets. A strided view, so writing into it (``+=``) writes into ``xpad``."""
    (oh, ow), (sh, sw) = out_hw, stride
    return xpad[:, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw, :]


def _patches(x, kernel, stride, pads, out_hw):
    """The im2col array: patches[n, p, q, i*kw + j, c] = xpad[n, s_h*p + i, s_w*q + j, c], shape
    (N, out_h, out_w, kh*kw, C), patch entries ordered like W's (i, j, c)."""
    xp = backend.xp()
    (kh, kw), (sh, sw), (oh, ow) = kernel, stride, out_hw
    xpad = pad_hw(x, pads)
    # every kh x kw window (a read-only view, shape (N, H', W', C, kh, kw)), then every stride-th one
    windows = xp.lib.stride_tricks.sliding_window_view(xpad, (kh, kw), axis=(1, 2))
    windows = windows[:, 0:sh * (oh - 1) + 1:sh, 0:sw * (ow - 1) + 1:sw]
    # the one copy: to (N, out_h, out_w, kh, kw, C), so that a patch is contiguous
    return windows.transpose(0, 1, 2, 4, 5, 3).reshape(x.shape[0], oh, ow, kh * kw, x.shape[3])


# -- the registered operations (the reference; kernels replace these by name) -----------------------
@backend.register("conv2d_forward")
def conv2d_forward(x, weight, bias, stride, pads):
    """z = conv(x, W) + bias; x (N, H, W, C_in), weight (kh, kw, C_in, C_out), bias (C_out,) or None;
    ``pads`` = (top, bottom, left, right)."""
    kh, kw, c_in, c_out = weight.shape
    n, h, w, _ = x.shape
    top, bottom, left, right = pads
    out_hw = ((h + top + bottom - kh) // stride[0] + 1, (w + left + right - kw) // stride[1] + 1)
    patches = _patches(x, (kh, kw), stride, pads, out_hw)
    z = (patches.reshape(-1, kh * kw * c_in) @ weight.reshape(kh * kw * c_in, c_out))
    z = z.reshape(n, out_hw[0], out_hw[1], c_out)
    return z if bias is None else z + bias


@backend.register("conv2d_input_grad")
def conv2d_input_grad(weight, dz, x_shape, stride, pads):
    """dL/dx given dL/dz: each output position sends dz @ W^T back to the patch it read (col2im)."""
    xp = backend.xp()
    kh, kw, c_in, c_out = weight.shape
    n, oh, ow, _ = dz.shape
    dpatches = (dz.reshape(-1, c_out) @ weight.reshape(kh * kw * c_in, c_out).T).reshape(n, oh, ow, kh * kw, c_in)
    top, bottom, left, right = pads
    dxpad = xp.zeros((n, x_shape[1] + top + bottom, x_shape[2] + left + right, c_in), dtype=dz.dtype)
    for k in range(kh * kw):
        # overlapping windows (stride < k) add up: one position's gradient collects every patch using it
        view = offset_view(dxpad, k // kw, k % kw, (oh, ow), stride)
        view += dpatches[:, :, :, k, :]
    return crop_hw(dxpad, pads, x_shape)


@backend.register("conv2d_weight_grad")
def conv2d_weight_grad(x, dz, kernel_shape, stride, pads):
    """dL/dW = patches^T @ dz, shape ``kernel_shape`` = (kh, kw, C_in, C_out)."""
    kh, kw, c_in, c_out = kernel_shape
    patches = _patches(x, (kh, kw), stride, pads, dz.shape[1:3])
    return (patches.reshape(-1, kh * kw * c_in).T @ dz.reshape(-1, c_out)).reshape(kernel_shape)


# -- the layer ---------------------------------------------------------------------------------------
class Conv2D(LinearLayer):
    """Convolution layer on NHWC input; parameters "W" (kh, kw, C_in, C_out) and "b" (C_out,).

    W starts from a truncated normal with std 1/sqrt(kh*kw*C_in) (the fan-in); pass ``rng`` (a numpy
    Generator) for reproducible weights (without one, a fresh unseeded generator is used).
    """
    kind = "conv2d"

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding="SAME", bias="plain",
                 rng=None, dtype="float32", bias_init=None):
        super().__init__()
        dtype = backend.resolve_dtype(dtype)
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride = pair(stride, "stride")
        self.padding = check_padding(padding)
        kh, kw = self.kernel_size
        self.init_params((kh, kw, self.in_channels, self.out_channels), kh * kw * self.in_channels,
                         self.out_channels, bias, rng, dtype, bias_init)

    def pads(self, x_shape):
        """((top, bottom, left, right), (out_h, out_w)) for an input of shape ``x_shape``."""
        return window_pads(x_shape, self.kernel_size, self.stride, self.padding)

    def check_input(self, x_shape):
        if len(x_shape) != 4 or x_shape[3] != self.in_channels:
            raise ValueError(f"{self.name or 'conv2d'}: expected NHWC input of shape (N, H, W, "
                             f"{self.in_channels}), got {tuple(x_shape)}")
        if self.padding == "VALID" and (x_shape[1] < self.kernel_size[0] or x_shape[2] < self.kernel_size[1]):
            raise ValueError(f"{self.name or 'conv2d'}: input {tuple(x_shape)} is smaller than the "
                             f"{self.kernel_size} kernel with VALID padding")

    # -- the two functions the LRP rules use (weight and bias come from LinearLayer) -----------------
    def linear(self, x, weight, bias=None):
        """conv(x, weight) + bias with this layer's stride and padding and any (modified) weight/bias."""
        return backend.op("conv2d_forward")(x, weight, bias, self.stride, self.pads(x.shape)[0])

    def linear_input_grad(self, weight, dz, x_shape):
        """The vector-Jacobian product of ``linear`` with respect to x: dz -> dz * dz/dx (shape x_shape)."""
        return backend.op("conv2d_input_grad")(weight, dz, tuple(x_shape), self.stride, self.pads(x_shape)[0])

    # -- forward and backward ----------------------------------------------------------------------
    def forward(self, tape, x):
        self.check_input(x.shape)
        return self.linear(x, self.weight, self.bias), x

    def input_grad(self, x, dz):
        return self.linear_input_grad(self.weight, dz, x.shape)

    def param_grads(self, x, dz):
        pads = self.pads(x.shape)[0]
        return {"W": backend.op("conv2d_weight_grad")(x, dz, self.weight.shape, self.stride, pads),
                **self.bias_grad(dz.sum(axis=(0, 1, 2)))}
