"""Layers that only move values around: time slicing, reshaping, concatenation, cutting.

Their backward step is also their relevance step: relevance is moved exactly like the gradient.

Work that has no recurrence runs on all time steps at once (``lrpnet.models.recurrent``): ``TimeSlices``
cuts an image into its T slices as N*T rows, SAMPLE-MAJOR (row n*T + t is step t of sample n, so that
every array on the tape still holds sample n's values in its n-th block of rows and a per-sample sum
is ``a.reshape(N, -1).sum(1)``); ``StepRows`` takes the rows of one step back out, and ``StackSteps``
joins per-step values into such rows. ``Columns`` cuts one gate out of a layer computing several.
"""
from __future__ import annotations

from .. import backend
from ..graph import Part
from .base import Layer


class Picking(Layer):
    """A layer whose output is a part of its input: its backward step sends dy back into that part and
    zero elsewhere. ``backward_part`` says so as a ``graph.Part``, which a walk adds into its sum as a
    block; ``backward`` is the whole array."""
    shape_only = True

    def backward(self, cache, dy):
        (part,), _ = self.backward_part(cache, dy)
        return (part.dense(),), {}

    def backward_part(self, cache, dy):
        raise NotImplementedError


class TimeSlice(Picking):
    """Step t of an image cut column-wise into T slices (THESIS.md section 2).

    (N, H, W) -> (N, H * W/T) flattened row-major, or (N, H, W/T, 1) with ``as_image=True`` (conv models).
    """
    kind = "timeslice"

    def __init__(self, t, T, as_image=False):
        super().__init__()
        self.t, self.T, self.as_image = int(t), int(T), bool(as_image)

    def forward(self, tape, x):
        n, h, w = x.shape
        if w % self.T:
            raise ValueError(f"image width {w} is not divisible into T={self.T} slices")
        cols = w // self.T
        part = x[:, :, self.t * cols:(self.t + 1) * cols]
        y = part[..., None] if self.as_image else part.reshape(n, h * cols)
        return y, x.shape

    def backward_part(self, x_shape, dy):
        """dy in the slice's columns, zero elsewhere (``Picking``)."""
        n, h, w = x_shape
        cols = w // self.T
        index = (slice(None), slice(None), slice(self.t * cols, (self.t + 1) * cols))
        return (Part(x_shape, index, dy.reshape(n, h, cols)),), {}


class TimeSlices(Layer):
    """All T slices of an image at once, one row per (sample, step), sample-major (module docstring).

    (N, H, W) -> (N*T, H * W/T), row n*T + t being ``TimeSlice(t, T)`` of sample n, or
    (N*T, H, W/T, 1) with ``as_image=True``.
    """
    kind = "timeslices"
    shape_only = True

    def __init__(self, T, as_image=False):
        super().__init__()
        self.T, self.as_image = int(T), bool(as_image)

    def forward(self, tape, x):
        n, h, w = x.shape
        if w % self.T:
            raise ValueError(f"image width {w} is not divisible into T={self.T} slices")
        cols = w // self.T
        parts = x.reshape(n, h, self.T, cols).transpose(0, 2, 1, 3)          # (N, T, H, cols)
        y = parts.reshape(n * self.T, h, cols, 1) if self.as_image else parts.reshape(n * self.T, h * cols)
        return y, x.shape

    def backward(self, x_shape, dy):
        n, h, w = x_shape
        dx = dy.reshape(n, self.T, h, w // self.T).transpose(0, 2, 1, 3).reshape(x_shape)
        return (dx,), {}


class Select(Picking):
    """A part of the input, picked by the index ``self.index``: its gradient (and its relevance, which
    moves the same way) goes back to that part, and the rest of the input gets zero."""
    index = ()

    def forward(self, tape, x):
        return x[self.index], x.shape

    def backward_part(self, x_shape, dy):
        """dy at the picked part, zero elsewhere (``Picking``)."""
        return (Part(x_shape, self.index, dy),), {}


class StepRows(Select):
    """The rows of step t of a sample-major (N*T, ...) value: (N*T, ...) -> (N, ...), rows t, t+T, ..."""
    kind = "steprows"

    def __init__(self, t, T):
        super().__init__()
        self.t, self.T = int(t), int(T)
        self.index = slice(self.t, None, self.T)

    def forward(self, tape, x):
        if x.shape[0] % self.T:
            raise ValueError(f"{self.name or 'steprows'}: {x.shape[0]} rows are not N*T rows for T={self.T}")
        return super().forward(tape, x)


class StackSteps(Layer):
    """T per-step values (N, ...) -> one sample-major value (N*T, ...), row n*T + t from input t."""
    kind = "stacksteps"
    shape_only = True

    def forward(self, tape, *xs):
        y = backend.xp().stack(xs, axis=1)
        return y.reshape((-1,) + y.shape[2:]), len(xs)

    def backward(self, T, dy):
        parts = dy.reshape((-1, T) + dy.shape[1:])
        return tuple(backend.xp().ascontiguousarray(parts[:, t]) for t in range(T)), {}


class Columns(Select):
    """Columns [start, stop) of the last axis: one gate's share of a layer that computes several gates
    side by side (``lrpnet.cells.gates``)."""
    kind = "columns"

    def __init__(self, start, stop):
        super().__init__()
        self.start, self.stop = int(start), int(stop)
        self.index = (Ellipsis, slice(self.start, self.stop))


class Reshape(Layer):
    """(N, ...) -> (N, *shape); ``Flatten()`` is ``Reshape((-1,))``."""
    kind = "reshape"
    shape_only = True

    def __init__(self, shape):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, tape, x):
        return x.reshape((x.shape[0],) + self.shape), x.shape

    def backward(self, x_shape, dy):
        return (dy.reshape(x_shape),), {}


class Flatten(Reshape):
    kind = "flatten"

    def __init__(self):
        super().__init__((-1,))


class Concat(Layer):
    """Concatenation along ``axis`` (the last axis by default: features, or channels in NHWC)."""
    kind = "concat"

    def __init__(self, axis=-1):
        super().__init__()
        self.axis = axis

    @property
    def joins_last_axis(self):
        """Whether this joins along axis -1 (every Concat of the cells and the conv stack does): the
        axis whose columns ``backward_columns`` can cut (``Tape._column_cuts``)."""
        return self.axis == -1

    def forward(self, tape, *xs):
        sizes = [x.shape[self.axis] for x in xs]
        return backend.xp().concatenate(xs, axis=self.axis), sizes

    def backward(self, sizes, dy):
        return self.backward_columns(sizes, dy, 0)

    def backward_columns(self, sizes, dy, start):
        """``backward`` for a dy that holds only the output's entries start, start + 1, ... along the
        axis (``Tape._column_cuts``, last axis only): each input's part of it, None for an input whose
        part lies outside it."""
        xp = backend.xp()
        index = [slice(None)] * dy.ndim
        parts, a = [], -start
        for s in sizes:
            b = a + s
            if a < 0 or b > dy.shape[self.axis]:
                parts.append(None)
            else:
                index[self.axis] = slice(a, b)
                parts.append(xp.ascontiguousarray(dy[tuple(index)]))
            a = b
        return tuple(parts), {}


class Add(Layer):
    """Sum of any number of equally shaped inputs (the cell state update c = f*c' + i*c~)."""
    kind = "add"

    def forward(self, tape, *xs):
        y = xs[0]
        for x in xs[1:]:
            y = y + x
        return y, [x for x in xs]

    def backward(self, xs, dy):
        return tuple(dy for _ in xs), {}


class GateMul(Layer):
    """gate * signal, elementwise. Input 0 is the gate, input 1 the signal: relevance rules
    (signal-take-all and its variants) need to know which is which."""
    kind = "gatemul"

    def forward(self, tape, gate, signal):
        return gate * signal, (gate, signal)

    def backward(self, cache, dy):
        return backend.op("gatemul_backward")(*cache, dy), {}


@backend.register("gatemul_backward")
def gatemul_backward(gate, signal, dy):
    """The gradients of gate * signal: (dy * signal, dy * gate)."""
    return dy * signal, dy * gate

