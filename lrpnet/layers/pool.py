"""2-D pooling on NHWC images, per channel: max, average and sum over kh x kw windows.

    max:  y[n, p, q, c] = max_{i,j} xpad[n, s_h*p + i, s_w*q + j, c]
    sum:  y[n, p, q, c] = sum_{i,j} xpad[n, s_h*p + i, s_w*q + j, c]          (the study's ConvDeep)
    avg:  y[n, p, q, c] = scale * sum / (number of real, non-padded inputs in the window)

Padding follows TensorFlow (see ``conv.py``): "VALID" or "SAME" (out = ceil(in / stride), the odd pad
after). With SAME, max pool pads with -inf so padding never wins, sum pool pads with 0, and average
pool divides by the count of real inputs, as ``tf.nn.avg_pool`` does.

The average's ``scale`` (1 by default) is there for the thesis's code (THESIS.md section 7), whose
"sum pool" was ``tf.nn.avg_pool(x, 2x2, SAME) * 2``: sum / 2 in a full 2x2 window, but at the odd edge
of a SAME pooling the average counts only the real cells, so a window of two real cells gives their
sum and a corner window of one gives 2x. ``AvgPool2D(2, 2, "SAME", scale=2)`` computes exactly that
(``lrpnet.cells.conv_stack``, ``pool="avg_x2"``). The scale multiplies the registered average (and
its vector-Jacobian product), so the kernels need nothing new. The proportional rule does not see the
scale (it cancels in x * (da/dx)^T (R / a)).

``backward(cache, dy)`` is the vector-Jacobian product, and works for any dy of the output's shape,
not only gradients: the pooling rule of LRP (THESIS.md section 4) is R_in = x * backward(R / a).
- max routes dy to the window's maximum. Ties go to the first maximum in row-major window order
  (lowest row, then lowest column), as the strict ``>`` in ``maxpool2d_forward`` decides;
  ``MaxPool2D.winners(cache)`` is the 0/1 mask of those maxima (winner-take-all), a count where
  overlapping windows share a winner.
- average spreads dy / count over the window's real inputs; sum spreads dy unchanged.
Caches are small: the input shape, plus for max pool the winning offset per output (uint8).

The forward and backward operations are registered with ``lrpnet.backend`` (``maxpool2d_forward``,
``maxpool2d_backward``, ``avgpool2d_*``, ``sumpool2d_*``) so kernels can replace them by name.
"""
from __future__ import annotations

from .. import backend
from .base import Layer
from .conv import check_padding, crop_hw, offset_view, pad_hw, pair, window_pads


def _out_hw(x_shape, size, stride, pads):
    top, bottom, left, right = pads
    return ((x_shape[1] + top + bottom - size[0]) // stride[0] + 1,
            (x_shape[2] + left + right - size[1]) // stride[1] + 1)


def _offsets(size):
    """The window offsets (k, i, j), k = i * kw + j: row-major order inside the window."""
    return [(i * size[1] + j, i, j) for i in range(size[0]) for j in range(size[1])]


def _spread(per_offset, x_shape, size, stride, pads, dtype):
    """The adjoint of reading windows: add ``per_offset(k)`` (an output-shaped array) into every
    input position that offset k of each window reads, and drop the padding."""
    xp = backend.xp()
    top, bottom, left, right = pads
    out_hw = _out_hw(x_shape, size, stride, pads)
    dxpad = xp.zeros((x_shape[0], x_shape[1] + top + bottom, x_shape[2] + left + right, x_shape[3]), dtype=dtype)
    for k, i, j in _offsets(size):
        view = offset_view(dxpad, i, j, out_hw, stride)
        view += per_offset(k)       # overlapping windows (stride < size) add up
    return crop_hw(dxpad, pads, x_shape)


def _windows_tile(x_shape, size, stride, pads):
    """True when the windows lie side by side and cover the padded input exactly: stride = size and
    out * size = the padded size (SAME padding, or VALID on a multiple of the size). Then every input
    position lies in exactly one window."""
    top, bottom, left, right = pads
    out_h, out_w = _out_hw(x_shape, size, stride, pads)
    return (tuple(stride) == tuple(size) and out_h * size[0] == x_shape[1] + top + bottom
            and out_w * size[1] == x_shape[2] + left + right)


def _repeat_over_windows(dy, x_shape, size, pads):
    """What ``_spread`` gives for windows that tile the input (``_windows_tile``) and the same dy at
    every offset: each input position gets the dy of its one window, nothing is summed,

        dx[n, r, s, c] = dy[n, p, q, c]   with p = (r + top) // kh, q = (s + left) // kw

    one gather of the rows p * out_w + q of dy seen as (N, out_h * out_w, C): 3x-6x faster than adding
    offset by offset into zeros (benchmarks/RESULTS.md)."""
    xp = backend.xp()
    top, _, left, _ = pads
    n, c = x_shape[0], x_shape[3]
    out_h, out_w = _out_hw(x_shape, size, size, pads)
    p = (xp.arange(x_shape[1]) + top) // size[0]
    q = (xp.arange(x_shape[2]) + left) // size[1]
    window = (p[:, None] * out_w + q[None, :]).reshape(-1)         # of every input position (r, s)
    rows = xp.broadcast_to(dy, (n, out_h, out_w, c)).reshape(n, out_h * out_w, c)
    return rows.take(window, axis=1).reshape(tuple(x_shape))


def _group_sums(a, axis, k):
    """Sums of k consecutive entries of ``a`` along ``axis``, from the first; the last group holds what
    is left (fewer than k where k does not divide the length)."""
    xp = backend.xp()
    n = a.shape[axis]
    full = n // k * k

    def part(arr, s):
        index = [slice(None)] * arr.ndim
        index[axis] = s
        return arr[tuple(index)]
    shape = list(a.shape)
    shape[axis] = -(-n // k)
    y = xp.empty(shape, dtype=a.dtype)
    body = part(y, slice(0, full // k))
    if k == 1:
        body[...] = part(a, slice(0, full))
    else:
        xp.add(part(a, slice(0, full, k)), part(a, slice(1, full, k)), out=body)
        for i in range(2, k):
            body += part(a, slice(i, full, k))
    if full < n:
        xp.sum(part(a, slice(full, n)), axis=axis, keepdims=True, out=part(y, slice(full // k, None)))
    return y


# -- sum ---------------------------------------------------------------------------------------------
@backend.register("sumpool2d_forward")
def sumpool2d_forward(x, size, stride, pads):
    """y = sum of each window of x padded with zeros.

    Windows that tile the input from its top-left corner (``_windows_tile``, padding only after the
    last row and column: SAME at stride = size 2) sum rows in groups, then columns, with no padded
    copy: 2x faster on ConvDeep's first pool, (256, 28, 7, 24) float32 (benchmarks/RESULTS.md, "Sum
    pool without padding"); the same sums, added in another order."""
    if _windows_tile(x.shape, size, stride, pads) and pads[0] == pads[2] == 0:
        return _group_sums(_group_sums(x, 1, size[0]), 2, size[1])
    xpad = pad_hw(x, pads, 0.0)
    out_hw = _out_hw(x.shape, size, stride, pads)
    y = None
    for _, i, j in _offsets(size):
        v = offset_view(xpad, i, j, out_hw, stride)
        y = v.copy() if y is None else y + v
    return y


@backend.register("sumpool2d_backward")
def sumpool2d_backward(dy, x_shape, size, stride, pads):
    """dx[position] = sum of dy over the windows that contain the position."""
    if _windows_tile(x_shape, size, stride, pads):
        return _repeat_over_windows(dy, x_shape, size, pads)
    return _spread(lambda k: dy, x_shape, size, stride, pads, dy.dtype)


# -- average -----------------------------------------------------------------------------------------
def window_counts(x_shape, size, stride, pads, dtype):
    """How many real (non-padded) inputs each window holds, shape (1, out_h, out_w, 1)."""
    xp = backend.xp()
    ones = xp.ones((1, x_shape[1], x_shape[2], 1), dtype=dtype)
    return sumpool2d_forward(ones, size, stride, pads)


@backend.register("avgpool2d_forward")
def avgpool2d_forward(x, size, stride, pads):
    """y = window sum / number of real inputs in the window (TensorFlow's SAME average)."""
    return sumpool2d_forward(x, size, stride, pads) / window_counts(x.shape, size, stride, pads, x.dtype)


@backend.register("avgpool2d_backward")
def avgpool2d_backward(dy, x_shape, size, stride, pads):
    """dx[position] = sum of dy / count over the windows that contain the position."""
    scaled = dy / window_counts(x_shape, size, stride, pads, dy.dtype)
    if _windows_tile(x_shape, size, stride, pads):
        return _repeat_over_windows(scaled, x_shape, size, pads)
    return _spread(lambda k: scaled, x_shape, size, stride, pads, dy.dtype)


# -- max ---------------------------------------------------------------------------------------------
@backend.register("maxpool2d_forward")
def maxpool2d_forward(x, size, stride, pads):
    """(y, arg): the window maxima and the offset k = i*kw + j of each maximum (first one on ties)."""
    xp = backend.xp()
    xpad = pad_hw(x, pads, -float("inf"))     # -inf: padding never wins against a finite input
    out_hw = _out_hw(x.shape, size, stride, pads)
    arg = xp.zeros((x.shape[0],) + out_hw + (x.shape[3],), dtype=xp.uint8 if size[0] * size[1] <= 256 else xp.int32)
    best = None
    for k, i, j in _offsets(size):
        v = offset_view(xpad, i, j, out_hw, stride)
        if best is None:
            best = v.copy()
            continue
        wins = v > best                        # strict: on a tie the earlier offset keeps the window
        best = xp.where(wins, v, best)
        arg[wins] = k
    return best, arg


@backend.register("maxpool2d_backward")
def maxpool2d_backward(arg, dy, x_shape, size, stride, pads):
    """dx[position] = sum of dy over the windows whose maximum is at the position."""
    return _spread(lambda k: dy * (arg == k), x_shape, size, stride, pads, dy.dtype)


# -- the layers --------------------------------------------------------------------------------------
class _Pool2D(Layer):
    """Window geometry and input checks shared by the three pooling layers (no parameters)."""

    def __init__(self, size=2, stride=None, padding="VALID"):
        super().__init__()
        self.size = pair(size, "pool size")
        self.stride = pair(self.size if stride is None else stride, "pool stride")
        self.padding = check_padding(padding)

    def pads(self, x_shape):
        return window_pads(x_shape, self.size, self.stride, self.padding)[0]

    def check_input(self, x_shape):
        if len(x_shape) != 4:
            raise ValueError(f"{self.name or self.kind}: expected NHWC input of shape (N, H, W, C), "
                             f"got {tuple(x_shape)}")
        if self.padding == "VALID" and (x_shape[1] < self.size[0] or x_shape[2] < self.size[1]):
            raise ValueError(f"{self.name or self.kind}: input {tuple(x_shape)} is smaller than the "
                             f"{self.size} window with VALID padding")


class SumPool2D(_Pool2D):
    kind = "sumpool2d"

    def forward(self, tape, x):
        self.check_input(x.shape)
        return backend.op("sumpool2d_forward")(x, self.size, self.stride, self.pads(x.shape)), tuple(x.shape)

    def backward(self, x_shape, dy):
        return (backend.op("sumpool2d_backward")(dy, x_shape, self.size, self.stride, self.pads(x_shape)),), {}


class AvgPool2D(_Pool2D):
    """The window average (TensorFlow's SAME average at the edges) times ``scale`` (module docstring)."""
    kind = "avgpool2d"

    def __init__(self, size=2, stride=None, padding="VALID", scale=1.0):
        super().__init__(size, stride, padding)
        self.scale = float(scale)
        if not self.scale > 0:
            raise ValueError(f"average pool scale must be > 0, got {scale!r}")

    def forward(self, tape, x):
        self.check_input(x.shape)
        y = backend.op("avgpool2d_forward")(x, self.size, self.stride, self.pads(x.shape))
        return (y if self.scale == 1.0 else y * y.dtype.type(self.scale)), tuple(x.shape)

    def backward(self, x_shape, dy):
        if self.scale != 1.0:
            dy = dy * dy.dtype.type(self.scale)
        return (backend.op("avgpool2d_backward")(dy, x_shape, self.size, self.stride, self.pads(x_shape)),), {}


class MaxPool2D(_Pool2D):
    kind = "maxpool2d"

    def forward(self, tape, x):
        self.check_input(x.shape)
        y, arg = backend.op("maxpool2d_forward")(x, self.size, self.stride, self.pads(x.shape))
        return y, (arg, tuple(x.shape), x.dtype)

    def backward(self, cache, dy):
        arg, x_shape, _ = cache
        return (backend.op("maxpool2d_backward")(arg, dy, x_shape, self.size, self.stride, self.pads(x_shape)),), {}

    def winners(self, cache):
        """The winner-take-all mask: 1 at each window's maximum (a count where windows overlap), else 0;
        the input's shape and dtype."""
        arg, x_shape, dtype = cache
        return self.backward(cache, backend.xp().ones(arg.shape, dtype=dtype))[0][0]
