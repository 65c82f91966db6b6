"""2-D convolution on NHWC images: z[n, p, q, o] = sum_{i,j,c} xpad[n, s*p + i, s*q + j, c] W[i, j, c, o] + bias[o].

x has shape (N, H, W, C_in), W has shape (kh, kw, C_in, C_out) (TensorFlow's layout), s is the stride
and xpad is x padded with zeros. Padding follows TensorFlow:
- ``"VALID"``: no padding; out = floor((in - k) / s) + 1;
- ``"SAME"``: out = ceil(in / s); pad_total = max((out - 1) * s + k - in, 0); pad_before = pad_total // 2
  and the rest (one more, when pad_total is odd) after;
- explicit ``((top, bottom), (left, right))`` rows/columns of zeros (PyTorch's integer padding, which
  ``lrpnet.io.from_torch`` converts): out = floor((in + before + after - k) / s) + 1.
The bias takes the three forms of ``Dense`` (``"plain"``, ``"negsoftplus"`` = -softplus(b) <= 0, None).

The operations are registered with ``lrpnet.backend`` so that Numba/CuPy kernels can replace them:
``conv2d_forward``, ``conv2d_input_grad`` and ``conv2d_weight_grad`` (arrays and geometry in), and the
two halves of the forward pass and the weight gradient, ``conv2d_patches`` and
``conv2d_forward_from_patches`` / ``conv2d_weight_grad_from_patches``, which let a training step build
the patch matrix once for both (``Conv2D.forward``; off by default, ``KEEP_PATCHES_BYTES`` says why).

The forward pass copies the window of the padded input that each output position reads into a patch
matrix (N*out_h*out_w, kh*kw*C_in) and does one matrix product with W reshaped to (kh*kw*C_in, C_out)
("im2col"). One product beats one product per kernel offset when C_in is small (ConvDeep's first layer
has C_in = 1: 10x faster). The weight gradient is the same patch matrix, transposed, times dz. The input
gradient is a convolution too: of dz (dilated by the stride, padded) with W flipped in both spatial axes
and its channel axes swapped ("transposed convolution", one im2col of dz and one product); where that
is slower (stride > 1, C_in < 4) it goes the other way ("col2im", ``conv2d_input_grad``).

The window helpers (``window_pads``, ``pad_hw``, ``offset_view``) are shared with ``pool.py``.
"""
from __future__ import annotations

import numpy

from .. import backend
from .base import LinearLayer, sum_over_rows
PADDINGS = ("SAME", "VALID")


# -- window geometry (shared by convolution and pooling) --------------------------------------------
def pair(v, what):
    """An int or a pair of ints as a pair (rows, columns) of positive ints."""
    p = (v, v) if isinstance(v, (int, numpy.integer)) else tuple(v)
    if len(p) != 2 or not all(isinstance(a, (int, numpy.integer)) and a >= 1 for a in p):
        raise ValueError(f"{what} must be a positive int or a pair of positive ints, got {v!r}")
    return int(p[0]), int(p[1])


def check_padding(padding):
    """``padding`` as "SAME" or "VALID" (either case), or explicit ((top, bottom), (left, right)) as a
    tuple of non-negative int pairs, or a clear error."""
    if isinstance(padding, str) and padding.upper() in PADDINGS:
        return padding.upper()
    if not isinstance(padding, str) and numpy.shape(padding) == (2, 2) and \
            all(isinstance(v, (int, numpy.integer)) and v >= 0 for pair_ in padding for v in pair_):
        return tuple(tuple(int(v) for v in pair_) for pair_ in padding)
    raise ValueError(f"unknown padding {padding!r}; expected 'SAME', 'VALID' or ((top, bottom), (left, right))")


def axis_pads(size, k, s, padding):
    """(pad_before, pad_after, out) along one axis, as TensorFlow computes them (module docstring);
    ``padding`` may be an explicit (before, after) pair."""
    if not isinstance(padding, str):
        before, after = padding
        return before, after, (size + before + after - k) // s + 1
    if padding == "VALID":
        return 0, 0, (size - k) // s + 1
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2, out


def window_pads(x_shape, kernel, stride, padding):
    """((top, bottom, left, right), (out_h, out_w)) for windows ``kernel`` moving by ``stride`` over
    the H and W axes of an NHWC shape."""
    rows, cols = (padding, padding) if isinstance(padding, str) else padding
    top, bottom, oh = axis_pads(x_shape[1], kernel[0], stride[0], rows)
    left, right, ow = axis_pads(x_shape[2], kernel[1], stride[1], cols)
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


def output_hw(x_shape, kernel, stride, pads):
    """(out_h, out_w): how many windows ``kernel`` moving by ``stride`` fit in the padded H and W."""
    top, bottom, left, right = pads
    return ((x_shape[1] + top + bottom - kernel[0]) // stride[0] + 1,
            (x_shape[2] + left + right - kernel[1]) // stride[1] + 1)


def check_dz(what, dz, expected):
    """The backward operations index dz by output position: it must have the output's shape."""
    if tuple(dz.shape) != tuple(expected):
        raise ValueError(f"{what}: dz must have the convolution output's shape {tuple(expected)}, "
                         f"got {tuple(dz.shape)}")


# -- the registered operations (the reference; kernels replace these by name) -----------------------
@backend.register("conv2d_patches")
def conv2d_patches(x, kernel, stride, pads):
    """The im2col array of x: patches[n, p, q, (i*kw + j)*C + c] = xpad[n, s_h*p + i, s_w*q + j, c],
    shape (N, out_h, out_w, kh*kw*C): row (n, p, q) is the window that output (n, p, q) reads, its
    entries ordered like the rows (i, j, c) of W reshaped to (kh*kw*C, C_out)."""
    xp = backend.xp()
    (kh, kw), (sh, sw) = kernel, stride
    n, _, _, c = x.shape
    oh, ow = output_hw(x.shape, kernel, stride, pads)
    xpad = pad_hw(x, pads)
    # every kh x kw window (a read-only view, shape (N, H', W', C, kh, kw)), then every stride-th one
    windows = xp.lib.stride_tricks.sliding_window_view(xpad, (kh, kw), axis=(1, 2))
    windows = windows[:, 0:sh * (oh - 1) + 1:sh, 0:sw * (ow - 1) + 1:sw]
    # the one copy: to (N, out_h, out_w, kh, kw, C), so that a patch is contiguous
    return windows.transpose(0, 1, 2, 4, 5, 3).reshape(n, oh, ow, kh * kw * c)


@backend.register("conv2d_forward_from_patches")
def conv2d_forward_from_patches(patches, weight, bias):
    """z = patches @ W + bias, shape (N, out_h, out_w, C_out), for ``patches`` from ``conv2d_patches``."""
    n, oh, ow, k = patches.shape
    c_out = weight.shape[3]
    z = (patches.reshape(n * oh * ow, k) @ weight.reshape(k, c_out)).reshape(n, oh, ow, c_out)
    return z if bias is None else z + bias


@backend.register("conv2d_forward")
def conv2d_forward(x, weight, bias, stride, pads):
    """z = conv(x, W) + bias; x (N, H, W, C_in), weight (kh, kw, C_in, C_out), bias (C_out,) or None;
    ``pads`` = (top, bottom, left, right). The patches of a few images at a time (``images_per_chunk``)."""
    kernel = weight.shape[:2]
    step = images_per_chunk(x.shape, kernel, stride, pads, x.dtype.itemsize)
    if step >= x.shape[0]:
        return conv2d_forward_from_patches(conv2d_patches(x, kernel, stride, pads), weight, bias)
    z = backend.xp().empty((x.shape[0], *output_hw(x.shape, kernel, stride, pads), weight.shape[3]), dtype=x.dtype)
    for i in range(0, x.shape[0], step):
        z[i:i + step] = conv2d_forward_from_patches(conv2d_patches(x[i:i + step], kernel, stride, pads), weight, bias)
    return z


@backend.register("conv2d_weight_grad_from_patches")
def conv2d_weight_grad_from_patches(patches, dz, kernel_shape):
    """dL/dW = patches^T @ dz, shape ``kernel_shape`` = (kh, kw, C_in, C_out), for the ``patches`` of
    the forward pass (``conv2d_patches``)."""
    n, oh, ow, k = patches.shape
    check_dz("conv2d_weight_grad", dz, (n, oh, ow, kernel_shape[3]))
    return (patches.reshape(n * oh * ow, k).T @ dz.reshape(n * oh * ow, kernel_shape[3])).reshape(kernel_shape)


@backend.register("conv2d_weight_grad")
def conv2d_weight_grad(x, dz, kernel_shape, stride, pads):
    """dL/dW = patches^T @ dz, shape ``kernel_shape`` = (kh, kw, C_in, C_out), summed over chunks of a
    few images (``images_per_chunk``)."""
    step = images_per_chunk(x.shape, kernel_shape[:2], stride, pads, x.dtype.itemsize)
    dw = None
    for i in range(0, x.shape[0], step):
        patches = conv2d_patches(x[i:i + step], kernel_shape[:2], stride, pads)
        part = conv2d_weight_grad_from_patches(patches, dz[i:i + step], kernel_shape)
        dw = part if dw is None else dw + part
    return dw


@backend.register("conv2d_input_grad")
def conv2d_input_grad(weight, dz, x_shape, stride, pads):
    """dL/dx given dL/dz, shape ``x_shape``: the transpose of the forward sum,

        dx[n, r, s, c] = sum of dz[n, p, q, o] W[i, j, c, o] over s_h*p + i - top = r, s_w*q + j - left = s.

    Two formulations of this sum, and the faster one runs (one BLAS thread, ConvDeep's and conv+deep's
    sizes; benchmarks/RESULTS.md, "Convolution input gradient and patch reuse"):
    - ``input_grad_transposed`` (an im2col of dz and a product) at stride 1 with C_in >= 4: 1.5x to 2.9x
      faster than col2im on ConvDeep's conv2 and on both convolutions of conv+deep, where col2im's
      adds cost more than its product (NumPy adds C_in contiguous numbers at a time);
    - ``input_grad_col2im`` (one product, then a loop over the kh*kw offsets) otherwise. At stride > 1
      the transposed form multiplies the stride-dilated dz, s_h*s_w times larger and mostly zeros
      (up to 9x slower). With C_in < 4 (ConvDeep's conv1 has 1) its im2col of dz is C_out / C_in times
      larger than col2im's patch gradients (2x to 6x slower at C_in = 1, where NumPy adds a whole
      output row at a time; about even at 2 and 3).
    The transposed form needs pads smaller than the kernel, as SAME and VALID padding always are.
    """
    kh, kw, c_in, c_out = weight.shape
    top, bottom, left, right = pads
    check_dz("conv2d_input_grad", dz, (x_shape[0], *output_hw(x_shape, (kh, kw), stride, pads), c_out))
    if tuple(stride) == (1, 1) and c_in >= 4 and max(top, bottom) < kh and max(left, right) < kw:
        return input_grad_transposed(weight, dz, x_shape, stride, pads)
    return input_grad_col2im(weight, dz, x_shape, stride, pads)


# The forward pass, the weight gradient and the transposed input gradient build their im2col patches
# for a few images at a time, about this many bytes of patches per product. On the CPU 4 MiB chunks
# stay in the caches and are the same few buffers on every call: the whole batch at once (24 MB for
# one step of conv+deep at batch 50, 120 MB at 256) was 1.6x slower for the input gradient and 1.8x
# slower for the forward pass and the weight gradient at batch 256 (1.3x to 1.8x for ConvDeep's convs
# on all 12 steps of 256 images at once; about even where the batch fits in one or two chunks), and
# at batch 50 one large buffer of a new size per call made glibc hand memory back to the system and
# fault it in again, which ate a whole gain in a training step (benchmarks/RESULTS.md). On a GPU,
# where each chunk costs two kernel launches, far larger chunks (not measured yet).
PATCH_CHUNK_BYTES = {"cpu": 4 * 2 ** 20, "gpu": 512 * 2 ** 20}


def images_per_chunk(x_shape, kernel, stride, pads, itemsize):
    """How many images' patches (``conv2d_patches`` of an x of shape ``x_shape``, ``itemsize`` bytes an
    entry) make about ``PATCH_CHUNK_BYTES``, at least one."""
    oh, ow = output_hw(x_shape, kernel, stride, pads)
    patch_bytes = oh * ow * kernel[0] * kernel[1] * x_shape[3] * itemsize
    return max(1, PATCH_CHUNK_BYTES[backend.device()] // patch_bytes)


def input_grad_transposed(weight, dz, x_shape, stride, pads):
    """``conv2d_input_grad`` as a stride-1 convolution (a "transposed convolution"). Writing
    i' = kh-1-i, j' = kw-1-j in its sum:

        dx[n, r, s, c] = sum_{i',j',o} dzd[n, r + i', s + j', o] W[kh-1-i', kw-1-j', c, o],

    where dzd holds dz[n, p, q, o] at (kh-1-top + s_h*p, kw-1-left + s_w*q) and zeros elsewhere (dz
    dilated by the stride and padded). That is ``conv2d_forward`` of dzd with W flipped in both spatial
    axes and its channel axes swapped: an im2col of dzd and a product, a chunk of images at a time
    (``PATCH_CHUNK_BYTES``). Needs every pad < the kernel."""
    xp = backend.xp()
    kh, kw, c_in, c_out = weight.shape
    n, oh, ow, _ = dz.shape
    (sh, sw), (top, _, left, _) = stride, pads
    h, w = x_shape[1], x_shape[2]
    dzd = xp.zeros((n, h + kh - 1, w + kw - 1, c_out), dtype=dz.dtype)
    r0, s0 = kh - 1 - top, kw - 1 - left
    dzd[:, r0:r0 + sh * (oh - 1) + 1:sh, s0:s0 + sw * (ow - 1) + 1:sw, :] = dz
    flipped = weight[::-1, ::-1].transpose(0, 1, 3, 2)          # (kh, kw, C_out, C_in)
    dx = xp.empty((n, h, w, c_in), dtype=dz.dtype)
    step = images_per_chunk(dzd.shape, (kh, kw), (1, 1), (0, 0, 0, 0), dz.dtype.itemsize)
    for i in range(0, n, step):
        patches = conv2d_patches(dzd[i:i + step], (kh, kw), (1, 1), (0, 0, 0, 0))   # (chunk, H, W, kh*kw*C_out)
        dx[i:i + step] = conv2d_forward_from_patches(patches, flipped, None)
    return dx


def input_grad_col2im(weight, dz, x_shape, stride, pads):
    """``conv2d_input_grad`` the other way round (col2im): each output position sends dz @ W^T back
    to the patch it read, and a loop over the kh*kw offsets adds each offset's share into the strided
    view of the padded input that the offset meets."""
    xp = backend.xp()
    kh, kw, c_in, c_out = weight.shape
    n, oh, ow, _ = dz.shape
    if c_in == 1:
        # each offset's share as one contiguous (N, out_h, out_w) block, W dz^T, so that the adds below
        # read it in order; (dz W^T)'s rows would hand it over with a stride of kh*kw: 1.3x slower at
        # 100 images of ConvDeep's conv1, 1.9x at 250 (benchmarks/RESULTS.md, "col2im offset-major")
        share = (weight.reshape(kh * kw, c_out) @ dz.reshape(-1, c_out).T).reshape(kh * kw, n, oh, ow, 1)
    else:
        share = (dz.reshape(-1, c_out) @ weight.reshape(kh * kw * c_in, c_out).T).reshape(n, oh, ow, kh * kw, c_in)
        share = share.transpose(3, 0, 1, 2, 4)
    top, bottom, left, right = pads
    dxpad = xp.zeros((n, x_shape[1] + top + bottom, x_shape[2] + left + right, c_in), dtype=dz.dtype)
    for k in range(kh * kw):
        # overlapping windows (stride < k) add up: one position's gradient collects every patch using it
        view = offset_view(dxpad, k // kw, k % kw, (oh, ow), stride)
        view += share[k]
    return crop_hw(dxpad, pads, x_shape)


# -- the layer ---------------------------------------------------------------------------------------
# How many bytes of im2col patches one training tape may keep, so that ``param_grads`` multiplies the
# forward pass's patches by dz instead of building them again (``Conv2D.forward``). 0: none, because
# on the CPU it did not pay where the study trains. Keeping them saves one im2col copy per convolution
# (the weight gradient alone 1.25x to 2.5x faster), but patches are kh*kw times their input's size: a
# training tape grows by 39 MiB (ConvDeep, batch 50) to 1.7 GiB (conv+deep, batch 256), and fresh
# memory costs about what the copy saves. Keeping them all made a training step 3-4% faster for
# ConvDeep at batch 50 and 13-25% faster for conv+deep at batch 256, but 4-16% slower for ConvDeep at
# batch 256 and 9-25% slower for conv+deep at batch 50 (three runs, one thread, a 2-core VM;
# benchmarks/RESULTS.md, "Convolution input gradient and patch reuse"). A positive budget keeps
# patches until the tape holds that many bytes of them (worth measuring on a GPU, where CuPy's pool
# makes memory cheap).
KEEP_PATCHES_BYTES = 0
KEPT_PATCHES = "conv2d: patch bytes kept"      # the tape.memo entry that counts them


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
        """z = conv(x, W) + bias; the cache is (x, patches). ``patches`` is the im2col array of the
        forward product when a training tape keeps it (``KEEP_PATCHES_BYTES``; by default none), else
        None: explanations and evaluation keep only x."""
        self.check_input(x.shape)
        kept = tape.memo.get(KEPT_PATCHES, 0)
        if not tape.train or kept >= KEEP_PATCHES_BYTES:
            return self.linear(x, self.weight, self.bias), (x, None)
        patches = backend.op("conv2d_patches")(x, self.kernel_size, self.stride, self.pads(x.shape)[0])
        z = backend.op("conv2d_forward_from_patches")(patches, self.weight, self.bias)
        if kept + patches.nbytes > KEEP_PATCHES_BYTES:
            return z, (x, None)
        tape.memo[KEPT_PATCHES] = kept + patches.nbytes
        return z, (x, patches)

    def input_grad(self, cache, dz):
        x, _ = cache
        return self.linear_input_grad(self.weight, dz, x.shape)

    def input_grad_columns(self, cache, dz, start, stop):
        """Input channels [start, stop) of ``input_grad`` (the last axis of NHWC), for an input whose
        other channels need no gradient (``Tape._column_cuts``): conv+deep's conv1 in training reads
        [pixel ; a1_{t-1}] and sends a gradient to a1_{t-1}'s 24 channels only. W's input channels
        cut alike; the padding depends on H and W only."""
        x, _ = cache
        return self.linear_input_grad(self.weight[:, :, start:stop], dz, x.shape[:3] + (stop - start,))

    def param_grads(self, cache, dz):
        x, patches = cache
        if patches is None:
            pads = self.pads(x.shape)[0]
            dw = backend.op("conv2d_weight_grad")(x, dz, self.weight.shape, self.stride, pads)
        else:
            dw = backend.op("conv2d_weight_grad_from_patches")(patches, dz, self.weight.shape)
        return {"W": dw, **self.bias_grad(sum_over_rows(dz))}
