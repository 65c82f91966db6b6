"""A training pass sends no gradient to the columns of a concatenation that only unwanted inputs fill
(``Tape._column_cuts``): the LSTM's gates read [x_t ; h_{t-1}], and in training only h_{t-1}'s
columns of dz W^T are computed. What it must leave unchanged, and where it must not cut."""
import numpy
import pytest

from lrpnet import graph
from lrpnet.graph import Tape
from lrpnet.layers import Concat, Dense, ReLU
from lrpnet.models import build

pytestmark = pytest.mark.usefixtures("on_the_host")


def every_column(monkeypatch):
    monkeypatch.setattr(graph.Tape, "_column_cuts", lambda self, wanted, seeds: {})


@pytest.mark.parametrize("arch", ["lstm", "gru", "shallow", "rlstm", "conv+deep"])
def test_training_gradients_are_those_of_computing_every_column(arch, monkeypatch):
    model = build(arch, input_shape=(8, 12), T=3, n_classes=4, seed=0, dtype="float64")
    rng = numpy.random.default_rng(0)
    x, y = rng.uniform(-1, 1, (5, 8, 12)), rng.integers(0, 4, 5)
    loss, grads = model.loss_and_grads(x, y)
    every_column(monkeypatch)
    loss_all, grads_all = model.loss_and_grads(x, y)
    assert loss == loss_all and grads.keys() == grads_all.keys()
    for k in grads:
        numpy.testing.assert_allclose(grads[k], grads_all[k], rtol=1e-12, atol=1e-15, err_msg=k)


def record_lstm_pass(leaves):
    """The cuts that a training pass (``leaves=()``) or an input-gradient pass of a small LSTM makes."""
    model = build("lstm", input_shape=(8, 12), T=3, n_classes=4, seed=0, dtype="float64", hidden=5)
    tape = Tape()
    x = tape.input(numpy.random.default_rng(0).uniform(-1, 1, (2, 8, 12)))
    out = model.graph(tape, x)
    wanted = tape._wanted(True, () if leaves == "none" else None)
    return tape, tape._column_cuts(wanted, {out: None})


def test_the_lstm_in_training_cuts_the_pixels_columns_after_the_first_step():
    tape, cuts = record_lstm_pass("none")
    concats = [n for n in tape.nodes if n.layer.kind == "concat"]
    assert len(concats) == 3
    # step 0 reads the zero initial state, wanted by nothing: its gradient is not computed at all
    assert id(concats[0].output) not in cuts
    # [x_t (4 * 8 = 32 pixels) ; h_{t-1} (5)]: only h's columns
    assert [cuts[id(n.output)] for n in concats[1:]] == [(32, 37), (32, 37)]


def test_an_input_gradient_pass_cuts_nothing():
    _, cuts = record_lstm_pass("all")
    assert cuts == {}


def two_inputs(rng, reader):
    """[a ; b] -> ``reader``, a a leaf nobody wants and b made by a dense layer (wanted for its W)."""
    cat, dense = Concat(), Dense(3, 2, rng=rng, dtype="float64")
    dense.name, cat.name = "front", "cat"
    tape = Tape()
    a = tape.input(rng.standard_normal((4, 5)))
    b = dense(tape, tape.input(rng.standard_normal((4, 3))))
    out = reader(tape, cat(tape, a, b))
    return tape, out


def test_a_concatenation_read_by_a_layer_that_cannot_cut_is_computed_whole(rng):
    tape, out = two_inputs(rng, lambda tape, z: ReLU()(tape, z))
    assert tape._column_cuts(tape._wanted(True, ()), {out: None}) == {}


def test_a_concatenation_that_is_a_seed_is_computed_whole(rng, monkeypatch):
    reader = Dense(7, 1, rng=rng, dtype="float64")
    reader.name = "reader"
    tape, out = two_inputs(rng, reader)
    z = out.node.inputs[0]
    wanted = tape._wanted(True, ())
    assert tape._column_cuts(wanted, {out: None}) == {id(z): (5, 7)}
    assert tape._column_cuts(wanted, {out: None, z: None}) == {}
    # the cut pass gives the parameter gradients of the whole one
    dy = rng.standard_normal((4, 1))
    _, cut = tape.backward({out: dy}, leaves=())
    every_column(monkeypatch)
    _, whole = tape.backward({out: dy}, leaves=())
    assert cut.keys() == whole.keys() == {"front.W", "front.b", "reader.W", "reader.b"}
    for k in cut:
        numpy.testing.assert_allclose(cut[k], whole[k], rtol=1e-14, atol=1e-15, err_msg=k)


def test_backward_columns_splits_a_block_of_the_output(rng):
    cat = Concat()
    dy = rng.standard_normal((3, 9))
    parts, _ = cat.backward([2, 4, 3], dy)
    assert [p.shape[1] for p in parts] == [2, 4, 3]
    numpy.testing.assert_array_equal(numpy.concatenate(parts, axis=1), dy)
    # the block of columns 2..8 (the last two inputs): the first input gets None
    cut, _ = cat.backward_columns([2, 4, 3], dy[:, 2:], 2)
    assert cut[0] is None
    numpy.testing.assert_array_equal(cut[1], dy[:, 2:6])
    numpy.testing.assert_array_equal(cut[2], dy[:, 6:])
    # the block of columns 0..5 (the first two): the last gets None
    cut, _ = cat.backward_columns([2, 4, 3], dy[:, :6], 0)
    assert cut[2] is None and cut[0].shape == (3, 2) and cut[1].shape == (3, 4)


def test_a_dense_layer_sends_back_the_columns_asked_for(rng):
    layer = Dense(7, 3, bias="negsoftplus", rng=rng, dtype="float64")
    x, dz = rng.standard_normal((4, 7)), rng.standard_normal((4, 3))
    numpy.testing.assert_allclose(layer.input_grad_columns(x, dz, 2, 6), layer.input_grad(x, dz)[:, 2:6],
                                  rtol=1e-14, atol=1e-15)
