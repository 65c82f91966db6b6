"""The study's named recurrent architectures (THESIS.md section 3), buildable with ``build(name, ...)``.

Every architecture cuts an image (N, H, W) column-wise into T slices (THESIS.md section 2; step t sees
columns [t W/T, (t+1) W/T), flattened row-major, or as an (H, W/T, 1) image for the conv models), runs a
chain of blocks (conv stack, ReLU front, recurrent cell) over the steps from zero initial states, and
reads the class scores after the last step through a head. Only the forward pass is written here; the
gradient and every relevance pass are walks of the tape.

Work without recurrence can run on all steps at once (``model.batch_steps = True``; the default of
Deep, Deep-SD, DeepV2, R-LSTM and R-LSTM-SD, not of the others: below).
A ``batched`` block (a ReLU front, a conv stack without lateral connections: ``lrpnet.cells.relu_blocks``)
reads no state, so it can run once on N*T rows, sample-major (row n*T + t is step t of sample n): the
image cut by ``TimeSlices`` (layer "slices"), or the per-step outputs of the blocks before it joined by
``StackSteps`` ("stack"). The next recurrent block reads step t's rows through ``StepRows``
("step<t>"), then the batched block's ``tail`` (its dropout, drawn step by step, so the masks and the
order of the generator's draws are those of running step by step). A chain (or, batched, a
recurrent run) that starts at the image reads step t through ``TimeSlice`` ("slice<t>"). Batched,
Deep, R-LSTM(-SD), ConvDeep and ConvR-LSTM-SD run their front (and conv stack) in one pass, DeepV2
its first front layer (its second reads the first's dropped output, so it runs step by step; without
dropout both run batched); Conv+Deep and Conv+R-LSTM-SD run their lateral conv stack step by step (every layer of it is on the
recurrence: conv1 reads a1_{t-1}, pool1 and conv2 read a1_t, conv2 reads a2_{t-1}) and only their
front layer batched; Shallow, LSTM, GRU and R-GRU have nothing outside the recurrence. Both ways give
the same values, gradients and relevance (to float rounding; ``tests/test_architectures.py``).

Which models batch by default (one thread, NumPy, the CPU; benchmarks/RESULTS.md, "Batched front
layers by default"): each step's ``StepRows`` sends back its rows as a ``graph.Part``, which the walk
adds into one N*T-row array (before, a whole array per step and T^2 N F adds for a front of width F,
which made batching lose). Batched, the ReLU-front models explain 1.06x-1.15x faster and train as
fast or faster (0.99x-1.09x); ConvDeep loses (its steps 0.94x-0.98x, its explanations 0.85x-0.89x:
the conv stack on N*T slices leaves the caches) and Conv+Deep is even (0.98x-1.02x), so the conv
models run step by step unless told otherwise.
On a GPU, where batching means T times fewer, larger launches, it is to be measured.

Every constructor takes ``(input_shape=(28, 84), T=12, n_classes=10, seed=0, dtype="float32",
keep=0.8, **sizes)`` and the options below; the default sizes are the thesis's, and ``model.config``
holds every argument so that ``build(model.arch, **model.config)`` makes the same model again (a
checkpoint stores it, and a sweep job passes its ``model`` options). ``keep`` is the dropout keep
probability in training (accepted and unused by LSTM, GRU and R-GRU, which have no dropout).

Options: the thesis as its text describes it is the default; what its code computed instead
(THESIS.md section 7) is an option, so each difference can be switched on alone.

- ``dropout`` (Shallow, Deep, Deep-SD, DeepV2, ConvDeep, Conv+Deep): "thesis" (default) drops where the
  thesis's code did (section 7), "none" not at all. Shallow: naive, on the hidden -> recurrent path
  (``cell.hidden_drop``). Deep, DeepV2, ConvDeep, Conv+Deep: naive, on each front layer's output
  (``cell.front<k>_drop``: DeepV2 after both its input layers), on [front ; r_t] (``cell.concat_drop``),
  on mid -> r (``cell.mid_drop``) and, with a fresh mask, on mid at step T before the read-out
  (``readout_drop``). Deep-SD: the same places, stationary (one mask per sequence) except the
  read-out's, which is naive as in the code. The R-LSTM models keep their dropout (section 3) and
  take no option. Dropout is the identity at test time and in explanations.
- ``relu_bias`` (every architecture with ReLU units; not LSTM, GRU, R-GRU): "softplus" (default): each
  ReLU unit computes relu(W x - softplus(b)) with softplus(b) starting at 0.01 and trained (section 3);
  "zero": what the code's b = log(e^0 - 1) = -inf gave, every effective ReLU bias exactly 0 and never
  trained. lrpnet stores b = ``ZERO_BIAS`` = -1e4 instead of -inf: softplus(-1e4) underflows to
  exactly 0 and so does its derivative sigmoid(-1e4), in float16, float32 and float64, so the bias
  is exactly 0, its gradient is exactly 0 and Adam moves b by exactly 0; a finite value, because a
  checkpoint holds finite weights. The read-out, which the code also wrote as x W - softplus(b), then
  has that bias (exactly 0, untrained) instead of a plain trained one; the parameter names and
  counts stay.
- ``pool`` (the conv models): "sum" (default, section 3) or "avg_x2", the code's TensorFlow average
  pool times 2 with SAME padding (``lrpnet.cells.conv_stack``).

Checkpoints written before these options existed have no such keys in their configuration. They
load as the model they hold (``lrpnet.models.upgrade_config``): Shallow, Deep, DeepV2, ConvDeep and
Conv+Deep had no dropout, so their old configurations load with ``dropout="none"`` (the same
predictions and explanations, as with any dropout, and continued training stays without dropout);
``relu_bias`` and ``pool`` take their defaults, which are what every model was before. Deep-SD keeps
its stationary dropout; only its read-out mask is new (before, the read-out saw the stationary mask of
mid), which changes nothing outside training.

What a model exposes for explanation: ``model.T`` (number of steps), ``model.columns`` (image columns
per step), ``model.steps`` (the column range [start, stop) of every step; relevance per step is the
input relevance summed over them) and ``model.chain`` / ``model.head`` (the blocks). Nodes recorded
during step t carry ``node.step == t``; the head's nodes, the zero initial states and, with
``batch_steps``, the batched blocks' nodes (they hold every step) carry ``None``.
"""
from __future__ import annotations

import numpy

from ..cells.conv_stack import POOLS, ConvStack
from ..cells.gru import GRUCell
from ..cells.lstm import LSTMCell
from ..cells.relu_blocks import ReLUFront, ReLUUnit, ShallowCell, deep_blocks
from ..cells.rlstm import RLSTMCell
from ..layers import Dense, Dropout, StackSteps, StepRows, TimeSlice, TimeSlices
from . import architecture
from .base import Model

# the options of the architectures (module docstring): name -> allowed values, the default first
OPTIONS = {"dropout": ("thesis", "none"), "relu_bias": ("softplus", "zero"), "pool": POOLS}
ZERO_BIAS = -1e4     # relu_bias="zero": softplus(b) and sigmoid(b) are exactly 0 (module docstring)


class RecurrentModel(Model):
    """Slices the image into T steps, runs ``self.chain`` over them and ``self.head`` on the last output."""
    as_image = False          # conv models see each slice as an (H, W/T, 1) image
    batch_steps = False       # True: blocks without recurrence run on all steps at once (module docstring;
                              # the ReLU-front models set it)
    relu_bias = "softplus"    # set by _setup for the architectures that take the option
    dropout_keep = None       # keep probability of the ``dropout`` option's layers, None without
    legacy_config: dict = {}  # what a configuration saved before an option existed meant (module docstring)

    def _setup(self, args: dict):
        """Check the shared constructor arguments; returns the init rng."""
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
        for option, allowed in OPTIONS.items():
            if option in config and config[option] not in allowed:
                raise ValueError(f"{self.arch}: unknown {option} {config[option]!r}; expected one of "
                                 f"{', '.join(map(repr, allowed))}")
        config["input_shape"] = list(shape)
        Model.__init__(self, config, shape, config["n_classes"], config["dtype"])
        self.T, self.height, self.columns = int(T), height, width // int(T)
        self.steps = tuple((t * self.columns, (t + 1) * self.columns) for t in range(self.T))
        self.n_in = height * self.columns          # values per step, flattened
        self.keep = float(config["keep"])
        self.relu_bias = config.get("relu_bias", "softplus")
        self.dropout_keep = self.keep if config.get("dropout") == "thesis" else None
        self.chain, self.head = [], []
        return numpy.random.default_rng(config["seed"])

    def _connect(self, chain, head):
        """Set the blocks and register the layers that carry values between them (module docstring)."""
        self.chain, self.head = list(chain), list(head)
        segments = self.segments(batched=True)
        if segments[-1][0]:
            raise ValueError(f"{self.arch}: the chain must end with a recurrent block")
        if self.relu_bias == "zero":
            self._zero_relu_biases()
        T = self.T
        self.slices = [self.add(f"slice{t}", TimeSlice(t, T, as_image=self.as_image)) for t in range(T)]
        if segments[0][0]:
            self.all_slices = self.add("slices", TimeSlices(T, as_image=self.as_image))
        if any(batched for batched, _ in segments[1:]):
            self.stack = self.add("stack", StackSteps())
        if any(batched for batched, _ in segments):
            self.step_rows = [self.add(f"step{t}", StepRows(t, T)) for t in range(T)]

    def _zero_relu_biases(self):
        """``relu_bias="zero"`` (module docstring): b = ``ZERO_BIAS`` in every layer whose bias is
        -softplus(b), so that bias is exactly 0 and its gradient too."""
        for layer in self.layers.values():
            if getattr(layer, "bias_mode", None) == "negsoftplus":
                layer.params["b"][...] = ZERO_BIAS

    def segments(self, batched=None):
        """The chain cut into runs of blocks, [(batched, [blocks])]; a batched run runs on all steps at
        once. Without batching (``batched=False``; default ``self.batch_steps``) the whole chain is one
        recurrent run, every block going step by step (a batched block by its ``step``).

        A batched run's rows pass through only its last block's ``tail``, step by step, so a run ends
        at a block with dropout; the batched block after it runs step by step, in the recurrent run
        that follows (its rows would need the masks of every step before the first of its own, and
        the generator must draw them in the order of running step by step: DeepV2's second front layer)."""
        if not (self.batch_steps if batched is None else batched):
            return [(False, list(self.chain))]
        segments = []
        for block in self.chain:
            after_drop = bool(segments) and segments[-1][0] and getattr(segments[-1][1][-1], "drop", None) is not None
            alone = getattr(block, "batched", False) and not after_drop
            if segments and segments[-1][0] == alone:
                segments[-1][1].append(block)
            else:
                segments.append((alone, [block]))
        return segments

    def graph(self, tape, x):
        n = x.value.shape[0]
        T = self.T
        tape.step = None
        rows, tail, outs = None, None, None     # N*T rows of a batched segment, or T per-step Vars
        for batched, blocks in self.segments():
            if batched:
                rows = self.all_slices(tape, x) if outs is None else self.stack(tape, *outs)
                for block in blocks:
                    rows = block.rows(tape, rows)
                tail, outs = blocks[-1].tail, None
                continue
            states = [block.initial_state(tape, n) for block in blocks]
            new = []
            for t in range(T):
                tape.step = t
                if rows is not None:
                    out = tail(tape, self.step_rows[t](tape, rows))
                elif outs is not None:
                    out = outs[t]
                else:
                    out = self.slices[t](tape, x)
                for k, block in enumerate(blocks):
                    out, states[k] = block.step(tape, out, states[k])
                new.append(out)
            tape.step = None
            rows, outs = None, new
        out = outs[-1]
        for layer in self.head:
            out = layer(tape, out)
        return out

    def _linear_out(self, rng, n_in):
        """The read-out: a linear layer to the class scores, with a plain bias (with ``relu_bias="zero"``
        the code's -softplus(b), exactly 0 and untrained: module docstring)."""
        bias = "negsoftplus" if self.relu_bias == "zero" else "plain"
        return self.add("out", Dense(n_in, self.n_classes, bias=bias, rng=rng, dtype=self.dtype))

    def _deep_head(self, rng, mid, top):
        """Deep's read-out at step T: [naive dropout on mid ->] ``top`` ReLU -> linear n_classes."""
        drop = [] if self.dropout_keep is None else [self.add("readout_drop", Dropout(self.dropout_keep))]
        return drop + [ReLUUnit(self, "top", mid, top, rng, self.dtype), self._linear_out(rng, top)]


# -- ReLU networks --------------------------------------------------------------------------------
@architecture("shallow")
class Shallow(RecurrentModel):
    """[x_t ; r_t] -> ``hidden`` ReLU -> r_{t+1}: ``state`` ReLU; linear n_classes from hidden at T [184,330].
    Naive dropout on the hidden -> recurrent path (``dropout="thesis"``)."""
    legacy_config = {"dropout": "none"}

    def __init__(self, input_shape=(28, 84), T=12, n_classes=10, seed=0, dtype="float32", keep=0.8,
                 hidden=256, state=256, dropout="thesis", relu_bias="softplus"):
        rng = self._setup(locals())
        chain = [ShallowCell(self, "cell", self.n_in, hidden, state, rng, self.dtype, keep=self.dropout_keep)]
        self._connect(chain, [self._linear_out(rng, hidden)])


@architecture("deep")
class Deep(RecurrentModel):
    """x_t -> ``front`` ReLU; [that ; r_t] -> ``mid`` ReLU -> r_{t+1}: ``state`` ReLU; at T: mid -> ``top``
    ReLU -> n_classes [153,578]. Naive dropout on front, on [front ; r_t], on mid -> r and on mid at
    step T before the read-out (``dropout="thesis"``; Deep-SD: stationary)."""
    stationary_dropout = False
    batch_steps = True        # the front layer on all steps at once (module docstring)
    legacy_config = {"dropout": "none"}

    def __init__(self, input_shape=(28, 84), T=12, n_classes=10, seed=0, dtype="float32", keep=0.8,
                 front=256, mid=128, state=256, top=32, dropout="thesis", relu_bias="softplus"):
        rng = self._setup(locals())
        chain = deep_blocks(self, "cell", self.n_in, (front,), mid, state, rng, self.dtype,
                            keep=self.dropout_keep, stationary=self.stationary_dropout)
        self._connect(chain, self._deep_head(rng, mid, top))


@architecture("deep_sd")
class DeepSD(Deep):
    """Deep with stationary dropout on the front layer, on [front ; r_t] and on mid -> r, and a fresh
    (naive) mask on mid at step T before the read-out, as the thesis's code drew it (section 7)."""
    stationary_dropout = True
    legacy_config = {}        # it had its stationary dropout before the option existed


@architecture("deep_v2")
class DeepV2(RecurrentModel):
    """Deep with x_t -> ``front1`` -> ``front2`` ReLU before the concatenation [161,386]; naive dropout as
    Deep's and also after the second input layer (``dropout="thesis"``)."""
    batch_steps = True        # its first front layer on all steps at once (module docstring)
    legacy_config = {"dropout": "none"}

    def __init__(self, input_shape=(28, 84), T=12, n_classes=10, seed=0, dtype="float32", keep=0.8,
                 front1=128, front2=256, mid=128, state=256, top=32, dropout="thesis", relu_bias="softplus"):
        rng = self._setup(locals())
        chain = deep_blocks(self, "cell", self.n_in, (front1, front2), mid, state, rng, self.dtype,
                            keep=self.dropout_keep, stationary=False)
        self._connect(chain, self._deep_head(rng, mid, top))


# -- conv front ends ----------------------------------------------------------------------------
class _Conv(RecurrentModel):
    as_image = True
    lateral = False

    def _conv(self, rng, conv1, conv2, pool):
        return ConvStack(self, "conv", self.height, self.columns, conv1, conv2, lateral=self.lateral,
                         rng=rng, dtype=self.dtype, pool=pool)


@architecture("convdeep")
class ConvDeep(_Conv):
    """Conv stack (5x5x``conv1``, sum pool, 3x3x``conv2``, sum pool) -> ``front`` ReLU in place of Deep's
    first layer -> Deep's recurrent part [151,802], with Deep's naive dropout (``dropout="thesis"``)."""
    legacy_config = {"dropout": "none"}

    def __init__(self, input_shape=(28, 84), T=12, n_classes=10, seed=0, dtype="float32", keep=0.8,
                 conv1=24, conv2=32, front=128, mid=128, state=256, top=32, dropout="thesis",
                 relu_bias="softplus", pool="sum"):
        rng = self._setup(locals())
        conv = self._conv(rng, conv1, conv2, pool)
        chain = [conv] + deep_blocks(self, "cell", conv.n_out, (front,), mid, state, rng, self.dtype,
                                     keep=self.dropout_keep, stationary=False)
        self._connect(chain, self._deep_head(rng, mid, top))


@architecture("conv+deep")
class ConvPlusDeep(ConvDeep):
    """ConvDeep with lateral connections: each conv also sees its own output of step t-1 [175,418];
    ConvDeep's dropout (the thesis's code dropped at the same places in both)."""
    lateral = True


# -- R-LSTM ---------------------------------------------------------------------------------------
@architecture("rlstm")
class RLSTM(RecurrentModel):
    """x_t -> ``front`` ReLU -> R-LSTM cell with ``units`` units -> linear n_classes from h_T [145,914].
    Naive dropout (fresh masks each step) on the front layer, on every gate, on c~ and on h_t."""
    batch_steps = True        # the front layer on all steps at once (module docstring)
    stationary = False
    drop = ("gates", "candidate", "h")

    def __init__(self, input_shape=(28, 84), T=12, n_classes=10, seed=0, dtype="float32", keep=0.8,
                 front=256, units=72, relu_bias="softplus"):
        rng = self._setup(locals())
        chain = [ReLUFront(self, ["front"], self.n_in, (front,), rng, self.dtype, keep=self.keep,
                           stationary=self.stationary),
                 RLSTMCell(self, "cell", front, units, rng, self.dtype, keep=self.keep,
                           stationary=self.stationary, drop=self.drop)]
        self._connect(chain, [self._linear_out(rng, units)])


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
                 conv1=24, conv2=32, front=128, units=96, relu_bias="softplus", pool="sum"):
        rng = self._setup(locals())
        conv = self._conv(rng, conv1, conv2, pool)
        chain = [conv,
                 ReLUFront(self, ["front"], conv.n_out, (front,), rng, self.dtype, keep=self.keep, stationary=True),
                 RLSTMCell(self, "cell", front, units, rng, self.dtype, keep=self.keep, stationary=True,
                           drop=("h",))]
        self._connect(chain, [self._linear_out(rng, units)])


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
        self._connect([LSTMCell(self, "cell", self.n_in, hidden, rng, self.dtype)], [self._linear_out(rng, hidden)])


@architecture("gru")
class GRU(RecurrentModel):
    """x_t -> GRU (``hidden`` units, torch.nn.GRU's equations and parameters) -> linear n_classes from
    h_T. Parameters map to torch with ``lrpnet.cells.gru.params_from_torch`` (prefix "cell")."""
    relu_candidate = False

    def __init__(self, input_shape=(28, 84), T=12, n_classes=10, seed=0, dtype="float32", keep=0.8,
                 hidden=128):
        rng = self._setup(locals())
        chain = [GRUCell(self, "cell", self.n_in, hidden, rng, self.dtype, relu_candidate=self.relu_candidate)]
        self._connect(chain, [self._linear_out(rng, hidden)])


@architecture("rgru")
class RGRU(GRU):
    """GRU with a ReLU candidate n_t = relu(W_in x_t + r_t * (W_hn h_{t-1}) - softplus(b_n)) and
    single-bias gates (see ``lrpnet.cells.gru``)."""
    relu_candidate = True
