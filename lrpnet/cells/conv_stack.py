"""ConvDeep's convolution stack, with the lateral connections of the Conv+ models (THESIS.md section 3).

Per step, on the slice x_t seen as an image (N, H, W/T, 1):

    a1_t = relu(conv5x5(x_t) - softplus(b1))                   (``conv1`` channels, SAME)
    p1_t = sumpool2x2/2(a1_t)                                   (SAME)
    a2_t = relu(conv3x3(p1_t) - softplus(b2))                  (``conv2`` channels, SAME)
    p2_t = sumpool2x2/2(a2_t)                                   (SAME)
    out  = flatten(p2_t)                                        (28x7 slices: 7*2*32 = 448 values)

``pool`` chooses the pooling: "sum" (THESIS.md section 3, the default) or "avg_x2", what the thesis's
code computed (section 7): TensorFlow's average pool times 2, SAME, which is sum / 2 in a full 2x2
window and, at the odd edge where the average counts only the real cells, sum / count * 2
(``AvgPool2D(2, 2, "SAME", scale=2)``, ``lrpnet.layers.pool``). Both have no parameters.

With ``lateral=True`` (Conv+Deep, Conv+R-LSTM-SD) each conv also sees its own output of the previous
step, stacked on the channel axis: conv1 sees [x_t ; a1_{t-1}] (1 + conv1 channels) and conv2 sees
[p1_t ; a2_{t-1}] (conv1 + conv2 channels); a1_0 = a2_0 = 0. The state is then (a1_{t-1}, a2_{t-1})
(post-ReLU, pre-pool); without lateral connections the stack has no state (None).

Without lateral connections the stack has no recurrence: it is ``batched`` (``lrpnet.cells.relu_blocks``),
and a model with ``batch_steps`` runs it once on the slices of all T steps, N*T images. With them,
conv1 of step t needs a1_{t-1}, conv2 needs a2_{t-1}, and every layer of the stack sits on that
recurrence (pool1 and conv2 read a1_t): nothing in it can run for all steps at once, so it runs step
by step. What follows it
(the front ReLU layer of Conv+Deep and Conv+R-LSTM-SD) reads only the stack's output of its own step
and can run batched again.
"""
from __future__ import annotations

from .. import backend
from ..layers import Concat, Flatten, ReLU
from ..layers.conv import Conv2D
from ..layers.pool import AvgPool2D, SumPool2D

POOLS = ("sum", "avg_x2")


def pooling(pool):
    """A 2x2 stride-2 SAME pooling layer of kind ``pool`` (module docstring)."""
    if pool == "sum":
        return SumPool2D(2, 2, padding="SAME")
    if pool == "avg_x2":
        return AvgPool2D(2, 2, padding="SAME", scale=2.0)
    raise ValueError(f"unknown pool {pool!r}; expected one of {', '.join(POOLS)}")


def _halve(n):
    """Output size of a 2x2 stride-2 SAME pooling along one axis: ceil(n / 2)."""
    return -(-n // 2)


class ConvStack:
    def __init__(self, model, prefix, height, width, conv1=24, conv2=32, lateral=False, rng=None,
                 dtype="float32", pool="sum"):
        self.lateral, self.dtype = bool(lateral), backend.resolve_dtype(dtype)
        self.c1, self.c2 = int(conv1), int(conv2)
        self.hw1 = (int(height), int(width))
        self.hw2 = (_halve(height), _halve(width))
        self.n_out = _halve(self.hw2[0]) * _halve(self.hw2[1]) * self.c2
        extra1, extra2 = (self.c1, self.c2) if lateral else (0, 0)
        if lateral:
            self.concat1 = model.add(f"{prefix}.lateral1", Concat(axis=-1))
            self.concat2 = model.add(f"{prefix}.lateral2", Concat(axis=-1))
        self.conv1 = model.add(f"{prefix}.conv1", Conv2D(1 + extra1, self.c1, 5, padding="SAME",
                                                         bias="negsoftplus", rng=rng, dtype=dtype))
        self.relu1 = model.add(f"{prefix}.conv1_relu", ReLU())
        self.pool1 = model.add(f"{prefix}.pool1", pooling(pool))
        self.conv2 = model.add(f"{prefix}.conv2", Conv2D(self.c1 + extra2, self.c2, 3, padding="SAME",
                                                         bias="negsoftplus", rng=rng, dtype=dtype))
        self.relu2 = model.add(f"{prefix}.conv2_relu", ReLU())
        self.pool2 = model.add(f"{prefix}.pool2", pooling(pool))
        self.flatten = model.add(f"{prefix}.flatten", Flatten())

    @property
    def batched(self):
        return not self.lateral

    def rows(self, tape, x):
        """The stack without lateral connections on any number of images (N*T slices at once)."""
        return self.step(tape, x, None)[0]

    def tail(self, tape, x):
        return x

    def initial_state(self, tape, n):
        """(a1_0, a2_0) = zero images for the lateral connections, or None without them."""
        if not self.lateral:
            return None
        xp = backend.xp()
        return (tape.input(xp.zeros((n, *self.hw1, self.c1), dtype=self.dtype), tag="state"),
                tape.input(xp.zeros((n, *self.hw2, self.c2), dtype=self.dtype), tag="state"))

    def step(self, tape, x, state):
        if self.lateral:
            x = self.concat1(tape, x, state[0])
        a1 = self.relu1(tape, self.conv1(tape, x))
        p1 = self.pool1(tape, a1)
        if self.lateral:
            p1 = self.concat2(tape, p1, state[1])
        a2 = self.relu2(tape, self.conv2(tape, p1))
        out = self.flatten(tape, self.pool2(tape, a2))
        return out, ((a1, a2) if self.lateral else None)
