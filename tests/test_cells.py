"""Cells and the small layers they need: gradient checks (float64) and the torch weight mappings.

Central differences check the NumPy reference (a host model, under numpy); the backend in force
(``LRPNET_BACKEND``) must then give the reference's loss and gradients."""
import numpy
import pytest

from lrpnet import backend
from lrpnet.cells.conv_stack import ConvStack
from lrpnet.cells.gru import GRUCell
from lrpnet.cells import gru as gru_mod
from lrpnet.cells import lstm as lstm_mod
from lrpnet.cells.lstm import LSTMCell
from lrpnet.cells.relu_blocks import ShallowCell, deep_blocks
from lrpnet.cells.rlstm import RLSTMCell
from lrpnet.gradcheck import check_model, liven
from lrpnet.graph import Tape
from lrpnet.layers import Columns, Dense, StackSteps, StepRows, TimeSlice, TimeSlices
from lrpnet.layers.one_minus import OneMinus
from lrpnet.layers.two_bias_dense import TwoBiasDense
from lrpnet.models.base import Model

from devices import dev, host
from test_layers import assert_gradcheck

H, W, T = 4, 6, 3          # tiny images: 3 steps of 4x2 = 8 values


class CellHarness(Model):
    """Runs one cell over the T slices of an (N, H, W) input and reads a linear layer from its last output."""

    def __init__(self, make_cell, n_out, as_image=False, seed=0):
        super().__init__({}, (H, W), 3, "float64")
        rng = numpy.random.default_rng(seed)
        self.slices = [self.add(f"slice{t}", TimeSlice(t, T, as_image=as_image)) for t in range(T)]
        self.cell = make_cell(self, rng)
        self.out = self.add("out", Dense(n_out, 3, rng=rng, dtype="float64"))

    def graph(self, tape, x):
        state = self.cell.initial_state(tape, x.value.shape[0])
        for t in range(T):
            tape.step = t
            out, state = self.cell.step(tape, self.slices[t](tape, x), state)
        tape.step = None
        return self.out(tape, out)


class Blocks:
    """Blocks run one after the other at every step, as one cell (Deep's front and recurrent part)."""

    def __init__(self, blocks):
        self.blocks = blocks

    def initial_state(self, tape, n):
        return [b.initial_state(tape, n) for b in self.blocks]

    def step(self, tape, x, states):
        new = []
        for block, state in zip(self.blocks, states):
            x, state = block.step(tape, x, state)
            new.append(state)
        return x, new


CELLS = {
    "shallow": (lambda m, rng: ShallowCell(m, "cell", 8, hidden=5, state=4, rng=rng, dtype="float64"), 5, False),
    "deep": (lambda m, rng: Blocks(deep_blocks(m, "cell", 8, front=(6,), mid=5, state=4, rng=rng, dtype="float64")),
             5, False),
    "deep_v2": (lambda m, rng: Blocks(deep_blocks(m, "cell", 8, front=(5, 6), mid=5, state=4, rng=rng,
                                                  dtype="float64")), 5, False),
    "rlstm": (lambda m, rng: RLSTMCell(m, "cell", 8, units=4, rng=rng, dtype="float64"), 4, False),
    "lstm": (lambda m, rng: LSTMCell(m, "cell", 8, hidden=4, rng=rng, dtype="float64"), 4, False),
    "gru": (lambda m, rng: GRUCell(m, "cell", 8, hidden=4, rng=rng, dtype="float64"), 4, False),
    "rgru": (lambda m, rng: GRUCell(m, "cell", 8, hidden=4, rng=rng, dtype="float64", relu_candidate=True), 4,
             False),
    "conv": (lambda m, rng: ConvStack(m, "conv", H, 2, conv1=4, conv2=5, rng=rng, dtype="float64"), 5,
             True),
    "conv_lateral": (lambda m, rng: ConvStack(m, "conv", H, 2, conv1=4, conv2=5, lateral=True, rng=rng,
                                              dtype="float64"), 5, True),
    # the thesis code's pooling (TF's SAME average times 2) and its dropout places (identity here)
    "conv_avg_x2": (lambda m, rng: ConvStack(m, "conv", H, 2, conv1=4, conv2=5, rng=rng, dtype="float64",
                                             pool="avg_x2"), 5, True),
    "conv_lateral_avg_x2": (lambda m, rng: ConvStack(m, "conv", H, 2, conv1=4, conv2=5, lateral=True, rng=rng,
                                                     dtype="float64", pool="avg_x2"), 5, True),
    "shallow_dropout": (lambda m, rng: ShallowCell(m, "cell", 8, hidden=5, state=4, rng=rng, dtype="float64",
                                                   keep=0.8), 5, False),
    "deep_v2_dropout": (lambda m, rng: Blocks(deep_blocks(m, "cell", 8, front=(5, 6), mid=5, state=4, rng=rng,
                                                          dtype="float64", keep=0.8, stationary=False)), 5, False),
}


@pytest.mark.parametrize("name", sorted(CELLS))
def test_cell_gradients(name):
    make, n_out, as_image = CELLS[name]
    with backend.using("numpy"):
        model = CellHarness(make, n_out, as_image)
        rng = numpy.random.default_rng(3)
        liven(model, rng)
        x, y = rng.uniform(-1, 1, (3, H, W)), numpy.array([0, 2, 1])
        errors = check_model(model, x, y, max_entries=25, h=1e-5)
        loss_ref, grads_ref = model.loss_and_grads(x, y)
    assert max(errors.values()) < 1e-5, errors
    # the backend in force gives the checked loss and gradients (float64: only the order of sums differs)
    loss, grads = model.to(backend.name()).loss_and_grads(x, y)
    grads = host(grads)
    assert loss == pytest.approx(loss_ref, rel=1e-12)
    assert grads.keys() == grads_ref.keys()
    for k, g in grads_ref.items():
        numpy.testing.assert_allclose(grads[k], g, rtol=1e-9, atol=1e-12, err_msg=k)
    # every parameter got a non-zero gradient: no part of the cell is disconnected
    dead = [k for k, g in grads.items() if not numpy.any(g)]
    assert not dead, dead


def test_one_minus_gradient_and_value():
    x = numpy.random.default_rng(0).uniform(0, 1, (3, 4))
    assert_gradcheck(OneMinus(), x, tol=1e-7)
    assert numpy.allclose(host(OneMinus().forward(Tape(), dev(x))[0]), 1 - x)


def test_two_bias_dense():
    rng = numpy.random.default_rng(0)
    layer = TwoBiasDense(5, 3, rng=rng, dtype="float64")
    layer.params["b_ih"][...] = dev(rng.normal(size=3))
    layer.params["b_hh"][...] = dev(rng.normal(size=3))
    x = rng.normal(size=(4, 5))
    assert_gradcheck(layer, x, tol=1e-7)
    y = host(layer.forward(Tape(), dev(x))[0])
    p = host(layer.params)
    assert numpy.allclose(y, x @ p["W"] + p["b_ih"] + p["b_hh"])
    assert numpy.allclose(host(layer.bias), p["b_ih"] + p["b_hh"])
    assert layer.kind == "dense"


def test_rlstm_cell_equations():
    """One step of the R-LSTM cell against the equations written out with numpy."""
    model = CellHarness(CELLS["rlstm"][0], 4)
    rng = numpy.random.default_rng(1)
    liven(model, rng)
    cell, p = model.cell, host(model.params)
    x = rng.normal(size=(2, 8))
    h0, c0 = rng.uniform(0, 1, (2, 4)), rng.uniform(0, 1, (2, 4))
    tape = Tape()
    h, (h2, c) = cell.step(tape, tape.input(dev(x)), (tape.input(dev(h0), "state"), tape.input(dev(c0), "state")))
    z = numpy.concatenate([x, h0], axis=1)
    sig = lambda a: 1 / (1 + numpy.exp(-a))
    gates = sig(z @ p["cell.gates.W"] + p["cell.gates.b"])          # columns i, f, o
    i, f, o = gates[:, :4], gates[:, 4:8], gates[:, 8:]
    cand = numpy.maximum(z @ p["cell.cand.W"] - numpy.log1p(numpy.exp(p["cell.cand.b"])), 0)
    c_ref = f * c0 + i * cand
    assert numpy.allclose(host(c.value), c_ref) and numpy.allclose(host(h.value), o * c_ref)
    assert h is h2


def test_gates_are_input_zero_of_gatemul():
    """Signal-take-all needs the gate as input 0 of every GateMul: check it on a recorded step. A gate
    is one sigmoid's columns (the gates' joined layer, cut per gate), or 1 - such a gate."""
    for name in ("rlstm", "lstm", "gru", "rgru"):
        model = CellHarness(CELLS[name][0], CELLS[name][1])
        tape, _, _ = model.trace(numpy.zeros((1, H, W)))
        muls = [n for n in tape.nodes if n.layer.kind == "gatemul"]
        assert muls
        for node in muls:
            gate = node.inputs[0].node
            if gate.layer.kind == "oneminus":
                gate = gate.inputs[0].node
            assert gate.layer.kind == "columns", (name, node.layer.name)
            assert gate.inputs[0].node.layer.kind == "sigmoid", (name, node.layer.name)


@pytest.mark.parametrize("name, gates", [("rlstm", "ifo"), ("lstm", "ifo"), ("gru", "rz"), ("rgru", "rz")])
def test_gates_are_one_product_drawn_gate_by_gate(name, gates):
    """The sigmoid gates are one linear layer ``cell.gates`` whose columns are the gates side by side,
    drawn gate by gate from the model's generator, as one layer per gate would draw them (so a seed
    gives the same weights as before the gates were joined); ``joined_from`` names those layers."""
    from lrpnet.layers.base import truncated_normal
    model = CellHarness(CELLS[name][0], CELLS[name][1], seed=5)
    layer = model.layers["cell.gates"]
    units = layer.n_out // len(gates)
    assert layer.joined_from == tuple(f"cell.gate_{g}" for g in gates)
    assert [model.layers[f"cell.gate_{g}"].kind for g in gates] == ["columns"] * len(gates)
    rng = numpy.random.default_rng(5)
    draws = [host(truncated_normal(rng, (layer.n_in, units), 1.0 / layer.n_in ** 0.5, numpy.float64))
             for _ in range(4)]                            # the slices take no draws; the cell's layers do
    if name == "lstm":                                      # torch's order i, f, g, o: g is the candidate
        draws = [draws[0], draws[1], draws[3]]
    numpy.testing.assert_array_equal(host(layer.params["W"]), numpy.concatenate(draws[:len(gates)], axis=1))


@pytest.mark.parametrize("mod, n_gates", [(lstm_mod, 4), (gru_mod, 3)])
def test_torch_mapping_round_trip(mod, n_gates):
    rng = numpy.random.default_rng(0)
    Hh, n_in = 4, 6
    sd = {"weight_ih_l0": rng.normal(size=(n_gates * Hh, n_in)), "weight_hh_l0": rng.normal(size=(n_gates * Hh, Hh)),
          "bias_ih_l0": rng.normal(size=n_gates * Hh), "bias_hh_l0": rng.normal(size=n_gates * Hh)}
    params = mod.params_from_torch(sd)
    back = mod.params_to_torch({k: dev(v) for k, v in params.items()})     # as a model's, on its device
    assert set(back) == set(sd)
    for k in sd:
        assert numpy.array_equal(back[k], sd[k]), k
    assert sum(v.size for v in params.values()) == sum(v.size for v in sd.values())


def test_torch_mapping_errors():
    with pytest.raises(KeyError, match="bias_hh_l0"):
        lstm_mod.params_from_torch({"weight_ih_l0": numpy.zeros((8, 3)), "weight_hh_l0": numpy.zeros((8, 2)),
                                    "bias_ih_l0": numpy.zeros(8)})
    with pytest.raises(ValueError, match="4 gates"):
        lstm_mod.params_from_torch({"weight_ih_l0": numpy.zeros((6, 3)), "weight_hh_l0": numpy.zeros((6, 2)),
                                    "bias_ih_l0": numpy.zeros(6), "bias_hh_l0": numpy.zeros(6)})


def test_rlstm_rejects_unknown_dropout_place():
    with pytest.raises(ValueError, match="forget"):
        CellHarness(lambda m, rng: RLSTMCell(m, "cell", 8, units=4, rng=rng, keep=0.8, drop=("forget",)), 4)


@pytest.mark.parametrize("make, shapes", [
    (lambda: Columns(2, 5), [(3, 7)]),
    (lambda: StepRows(1, 3), [(6, 4)]),
    (lambda: TimeSlices(3), [(2, 4, 6)]),
    (lambda: TimeSlices(3, as_image=True), [(2, 4, 6)]),
    (lambda: StackSteps(), [(2, 4), (2, 4), (2, 4)]),
], ids=["columns", "steprows", "timeslices", "timeslices-image", "stacksteps"])
def test_step_and_gate_cutting_layers(make, shapes):
    """The shape-only layers that carry values between batched and per-step blocks, and cut a gate
    out of the cell's joined gates: central differences, and the backend's forward and backward."""
    rng = numpy.random.default_rng(0)
    assert_gradcheck(make(), *(rng.normal(size=s) for s in shapes), tol=1e-7)


def test_time_slices_are_sample_major_time_slice_rows():
    """Row n*T + t of ``TimeSlices`` is ``TimeSlice(t)`` of sample n; ``StepRows(t)`` gives it back;
    ``StackSteps`` of the T slices is ``TimeSlices`` again."""
    x = dev(numpy.random.default_rng(0).normal(size=(2, H, W)))
    tape = Tape()
    xv = tape.input(x)
    for as_image in (False, True):
        rows = TimeSlices(T, as_image=as_image)(tape, xv)
        per_step = [TimeSlice(t, T, as_image=as_image)(tape, xv) for t in range(T)]
        for t in range(T):
            numpy.testing.assert_array_equal(host(StepRows(t, T)(tape, rows).value), host(per_step[t].value))
        numpy.testing.assert_array_equal(host(StackSteps()(tape, *per_step).value), host(rows.value))
        assert rows.tag == "input"                  # a shape-only layer: rules still see pixels
