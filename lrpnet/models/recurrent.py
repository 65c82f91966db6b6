"""The study's named recurrent architectures (THESIS.md section 3), buildable with ``build(name, ...)``.

Every architecture cuts an image (N, H, W) column-wise into T slices (THESIS.md section 2; step t sees
columns [t W/T, (t+1) W/T), flattened row-major, or as an (H, W/T, 1) image for the conv models), runs a
chain of blocks (conv stack, ReLU front, recurrent cell) over the steps from zero initial states, and
reads the class scores after the last step through a head. Only the forward pass is written here; the
gradient and every relevance pass are walks of the tape.

Every constructor takes ``(input_shape=(28, 84), T=12, n_classes=10, seed=0, dtype="float32",
keep=0.8, **sizes)``; the default sizes are the thesis's, and ``model.config`` holds every argument so
that ``build(model.arch, **model.config)`` makes the same model again. ``keep`` is the dropout keep
probability in training (used by the -SD models and the naive R-LSTM; accepted and unused elsewhere).

What a model exposes for explanation: ``model.T`` (number of steps), ``model.columns`` (image columns
per step), ``model.steps`` (the column range [start, stop) of every step) and ``model.chain`` /
``model.head`` (the blocks). Nodes recorded during step t carry ``node.step == t``; the head's nodes and
the zero initial states carry ``None``.
"""
from __future__ import annotations

import numpy

from ..cells.conv_stack import ConvStack
from ..cells.gru import GRUCell
from ..cells.lstm import LSTMCell
from ..cells.relu_blocks import DeepCell, ReLUUnit, ShallowCell
from ..cells.rlstm import RLSTMCell
from ..layers import Dense, TimeSlice
from . import architecture
from .base import Model


class Stateless:
    """Adapts a stateless callable block (a ReLU unit) to the cell interface."""

    def __init__(self, block):
        self.block = block

    def initial_state(self, tape, n):
        return None

    def step(self, tape, x, state):
        return self.block(tape, x), None


class RecurrentModel(Model):
    """Slices the image into T steps, runs ``self.chain`` over them and ``self.head`` on the last output."""
    as_image = False          # conv models see each slice as an (H, W/T, 1) image

    def _setup(self, args: dict):
        """Check the shared constructor arguments, register the slicing layers; returns the init rng."""
        config = {k: v for k, v in args.items() if k not in ("self", "__class__")}
        input_shape, T = config["input_shape"], config["T"]
        try:
            shape = tuple(int(s) for s in input_shape)
        except (TypeError, ValueError):
            raise ValueError(f"{self.arch}: input_shape must be (height, width), got {input_shape!r}") from None
        if len(shape) != 2 or min(shape) < 1:
            raise ValueError(f"{self.arch}: input_shape must be two positive ints (height, width), got {input_shape!r}")
        if isinstance(T, bool) or not isinstance(T, (int, numpy.integer)) or T < 1:
            raise ValueError(f"{self.arch}: T must be a positive int, got {T!r}")
        height, width = shape
        if width % T:
            divisors = [d for d in range(1, width + 1) if width % d == 0]
            raise ValueError(f"{self.arch}: image width {width} is not divisible by T={T}; "
                             f"T must divide the width (one of {divisors})")
        if not isinstance(config["n_classes"], (int, numpy.integer)) or config["n_classes"] < 1:
            raise ValueError(f"{self.arch}: n_classes must be a positive int, got {config['n_classes']!r}")
        if not 0.0 < float(config["keep"]) <= 1.0:
            raise ValueError(f"{self.arch}: dropout keep probability must be in (0, 1], got {config['keep']!r}")
        config["input_shape"] = list(shape)
        Model.__init__(self, config, shape, config["n_classes"], config["dtype"])
        self.T, self.height, self.columns = int(T), height, width // int(T)
        self.steps = tuple((t * self.columns, (t + 1) * self.columns) for t in range(self.T))
        self.n_in = height * self.columns          # values per step, flattened
        self.keep = float(config["keep"])
        self.slices = [self.add(f"slice{t}", TimeSlice(t, self.T, as_image=self.as_image)) for t in range(self.T)]
        self.chain, self.head = [], []
        return numpy.random.default_rng(config["seed"])

    def graph(self, tape, x):
        n = x.value.shape[0]
        tape.step = None
        states = [block.initial_state(tape, n) for block in self.chain]
        out = None
        for t in range(self.T):
            tape.step = t
            out = self.slices[t](tape, x)
            for k, block in enumerate(self.chain):
                out, states[k] = block.step(tape, out, states[k])
        tape.step = None
        for layer in self.head:
            out = layer(tape, out)
        return out

    def _linear_out(self, rng, n_in):
        """The read-out: a plain linear layer to the class scores."""
        return self.add("out", Dense(n_in, self.n_classes, bias="plain", rng=rng, dtype=self.dtype))

    def _deep_head(self, rng, mid, top):
        """Deep's read-out at step T: mid -> ``top`` ReLU -> linear n_classes."""
        return [ReLUUnit(self, "top", mid, top, rng, self.dtype), self._linear_out(rng, top)]


# -- ReLU networks --------------------------------------------------------------------------------
@architecture("shallow")
class Shallow(RecurrentModel):
    """[x_t ; r_t] -> ``hidden`` ReLU -> r_{t+1}: ``state`` ReLU; linear n_classes from hidden at T [184,330]."""

    def __init__(self, input_shape=(28, 84), T=12, n_classes=10, seed=0, dtype="float32", keep=0.8,
                 hidden=256, state=256):
        rng = self._setup(locals())
        self.chain = [ShallowCell(self, "cell", self.n_in, hidden, state, rng, self.dtype)]
        self.head = [self._linear_out(rng, hidden)]


@architecture("deep")
class Deep(RecurrentModel):
    """x_t -> ``front`` ReLU; [that ; r_t] -> ``mid`` ReLU -> r_{t+1}: ``state`` ReLU; at T: mid -> ``top``
    ReLU -> n_classes [153,578]. No dropout (Deep-SD is this with stationary dropout)."""
    stationary_dropout = False

    def __init__(self, input_shape=(28, 84), T=12, n_classes=10, seed=0, dtype="float32", keep=0.8,
                 front=256, mid=128, state=256, top=32):
        rng = self._setup(locals())
        keep = self.keep if self.stationary_dropout else None
        self.chain = [DeepCell(self, "cell", self.n_in, (front,), mid, state, rng, self.dtype,
                               keep=keep, stationary=True)]
        self.head = self._deep_head(rng, mid, top)


@architecture("deep_sd")
class DeepSD(Deep):
    """Deep with stationary dropout on the front layer, on [front ; r_t] and on the mid layer."""
    stationary_dropout = True


@architecture("deep_v2")
class DeepV2(RecurrentModel):
    """Deep with x_t -> ``front1`` -> ``front2`` ReLU before the concatenation [161,386]."""

    def __init__(self, input_shape=(28, 84), T=12, n_classes=10, seed=0, dtype="float32", keep=0.8,
                 front1=128, front2=256, mid=128, state=256, top=32):
        rng = self._setup(locals())
        self.chain = [DeepCell(self, "cell", self.n_in, (front1, front2), mid, state, rng, self.dtype)]
        self.head = self._deep_head(rng, mid, top)


# -- conv front ends ----------------------------------------------------------------------------
class _Conv(RecurrentModel):
    as_image = True
    lateral = False

    def _conv(self, rng, conv1, conv2):
        return ConvStack(self, "conv", self.height, self.columns, conv1, conv2, lateral=self.lateral,
                         rng=rng, dtype=self.dtype)


@architecture("convdeep")
class ConvDeep(_Conv):
    """Conv stack (5x5x``conv1``, sum pool, 3x3x``conv2``, sum pool) -> ``front`` ReLU in place of Deep's
    first layer -> Deep's recurrent part [151,802]."""

    def __init__(self, input_shape=(28, 84), T=12, n_classes=10, seed=0, dtype="float32", keep=0.8,
                 conv1=24, conv2=32, front=128, mid=128, state=256, top=32):
        rng = self._setup(locals())
        conv = self._conv(rng, conv1, conv2)
        self.chain = [conv, DeepCell(self, "cell", conv.n_out, (front,), mid, state, rng, self.dtype)]
        self.head = self._deep_head(rng, mid, top)


@architecture("conv+deep")
class ConvPlusDeep(ConvDeep):
    """ConvDeep with lateral connections: each conv also sees its own output of step t-1 [175,418]."""
    lateral = True


# -- R-LSTM ---------------------------------------------------------------------------------------
@architecture("rlstm")
class RLSTM(RecurrentModel):
    """x_t -> ``front`` ReLU -> R-LSTM cell with ``units`` units -> linear n_classes from h_T [145,914].
    Naive dropout (fresh masks each step) on the front layer, on every gate, on c~ and on h_t."""
    stationary = False
    drop = ("gates", "candidate", "h")

    def __init__(self, input_shape=(28, 84), T=12, n_classes=10, seed=0, dtype="float32", keep=0.8,
                 front=256, units=72):
        rng = self._setup(locals())
        self.chain = [Stateless(ReLUUnit(self, "front", self.n_in, front, rng, self.dtype,
                                         keep=self.keep, stationary=self.stationary)),
                      RLSTMCell(self, "cell", front, units, rng, self.dtype, keep=self.keep,
                                stationary=self.stationary, drop=self.drop)]
        self.head = [self._linear_out(rng, units)]


@architecture("rlstm_sd")
class RLSTMSD(RLSTM):
    """R-LSTM with stationary dropout on the front layer and on h_t only."""
    stationary = True
    drop = ("h",)


@architecture("convrlstm_sd")
class ConvRLSTMSD(_Conv):
    """ConvDeep's conv stack -> ``front`` ReLU -> ``units`` R-LSTM units -> linear n_classes, stationary
    dropout on the front layer and h_t [152,410]."""

    def __init__(self, input_shape=(28, 84), T=12, n_classes=10, seed=0, dtype="float32", keep=0.8,
                 conv1=24, conv2=32, front=128, units=96):
        rng = self._setup(locals())
        conv = self._conv(rng, conv1, conv2)
        self.chain = [conv,
                      Stateless(ReLUUnit(self, "front", conv.n_out, front, rng, self.dtype,
                                         keep=self.keep, stationary=True)),
                      RLSTMCell(self, "cell", front, units, rng, self.dtype, keep=self.keep,
                                stationary=True, drop=("h",))]
        self.head = [self._linear_out(rng, units)]


@architecture("conv+rlstm_sd")
class ConvPlusRLSTMSD(ConvRLSTMSD):
    """ConvR-LSTM-SD with the lateral conv connections of Conv+Deep [176,026]."""
    lateral = True


# -- standard gated cells (PyTorch equations) ---------------------------------------------------
@architecture("lstm")
class LSTM(RecurrentModel):
    """x_t -> tanh LSTM (``hidden`` units, torch.nn.LSTM's equations and parameters) -> linear n_classes
    from h_T. Parameters map to torch with ``lrpnet.cells.lstm.params_from_torch`` (prefix "cell");
    the read-out "out.W" is nn.Linear's weight transposed, "out.b" its bias."""

    def __init__(self, input_shape=(28, 84), T=12, n_classes=10, seed=0, dtype="float32", keep=0.8,
                 hidden=128):
        rng = self._setup(locals())
        self.chain = [LSTMCell(self, "cell", self.n_in, hidden, rng, self.dtype)]
        self.head = [self._linear_out(rng, hidden)]


@architecture("gru")
class GRU(RecurrentModel):
    """x_t -> GRU (``hidden`` units, torch.nn.GRU's equations and parameters) -> linear n_classes from
    h_T. Parameters map to torch with ``lrpnet.cells.gru.params_from_torch`` (prefix "cell")."""
    relu_candidate = False

    def __init__(self, input_shape=(28, 84), T=12, n_classes=10, seed=0, dtype="float32", keep=0.8,
                 hidden=128):
        rng = self._setup(locals())
        self.chain = [GRUCell(self, "cell", self.n_in, hidden, rng, self.dtype,
                              relu_candidate=self.relu_candidate)]
        self.head = [self._linear_out(rng, hidden)]


@architecture("rgru")
class RGRU(GRU):
    """GRU with a ReLU candidate n_t = relu(W_in x_t + r_t * (W_hn h_{t-1}) - softplus(b_n)) and
    single-bias gates (see ``lrpnet.cells.gru``)."""
    relu_candidate = True
