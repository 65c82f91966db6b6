"""``graph.Part``: a layer that picks part of its input (a time slice, a step's rows, a gate's columns)
sends back its signal as a block, which the walk adds into one array. What it must leave unchanged:
every gradient and every relevance, to the last bit (adding a block is adding the zeros around it)."""
import numpy
import pytest

import lrpnet
from lrpnet import graph
from lrpnet.graph import Part, Tape
from lrpnet.layers import structure
from lrpnet.models import build

pytestmark = pytest.mark.usefixtures("on_the_host")


def whole_arrays(monkeypatch):
    """Make every picking layer send its part filled in with zeros, as before parts existed."""
    for cls in (structure.TimeSlice, structure.Select):
        part_of = cls.backward_part
        monkeypatch.setattr(cls, "backward_part",
                            lambda self, cache, dy, part_of=part_of: ((part_of(self, cache, dy)[0][0].dense(),), {}))


def test_a_part_fills_in_and_adds_as_a_block(rng):
    values = rng.standard_normal((4, 2))
    p = Part((4, 5), (slice(None), slice(1, 3)), values)
    want = numpy.zeros((4, 5))
    want[:, 1:3] = values
    numpy.testing.assert_array_equal(p.dense(), want)
    acc = rng.standard_normal((4, 5))
    before = acc.copy()
    p.add_to(acc)
    numpy.testing.assert_array_equal(acc, before + want)
    q = Part((4, 5), (slice(None), slice(2, 5)), rng.standard_normal((4, 3)))
    a = rng.standard_normal((4, 5))
    for x, y in ((p, q), (p, a), (a, q), (a, a)):
        numpy.testing.assert_array_equal(graph.Sum(x).array(), graph.dense(x))
        total = graph.Sum(x)
        total.add(y)
        numpy.testing.assert_array_equal(total.array(), graph.dense(x) + graph.dense(y))
        total.add(p)                                        # into the walk's own array, as a block
        numpy.testing.assert_array_equal(total.array(), graph.dense(x) + graph.dense(y) + p.dense())
    assert graph.dense(a) is a


@pytest.mark.parametrize("layer", [structure.TimeSlice(1, 3), structure.TimeSlice(2, 3, as_image=True),
                                   structure.StepRows(1, 3), structure.Columns(2, 5)])
def test_each_picking_layer_sends_its_backward_as_a_part(layer, rng):
    x = rng.standard_normal((6, 4, 6) if layer.kind == "timeslice" else (6, 7))
    y, cache = layer.forward(Tape(), x)
    dy = rng.standard_normal(y.shape)
    (part,), _ = layer.backward_part(cache, dy)
    (whole,), _ = layer.backward(cache, dy)
    assert isinstance(part, Part) and whole.shape == x.shape
    numpy.testing.assert_array_equal(part.dense(), whole)
    # the adjoint of the forward pick: <pick(x), dy> = <x, backward(dy)>
    assert float((y * dy).sum()) == pytest.approx(float((x * whole).sum()), rel=1e-12)


@pytest.mark.parametrize("arch", ["deep", "rlstm", "lstm", "convdeep"])
@pytest.mark.parametrize("method", ["gradient_x_input", "dtd", "lrp-alpha1.5beta0.5"])
def test_explanations_are_those_of_whole_arrays(arch, method, monkeypatch):
    model = build(arch, input_shape=(8, 12), T=3, n_classes=4, seed=0, dtype="float64")
    x = numpy.random.default_rng(0).uniform(-1, 1, (5, 8, 12))
    got = lrpnet.explain(model, x, method, return_details=True)
    whole_arrays(monkeypatch)
    want = lrpnet.explain(model, x, method, return_details=True)
    numpy.testing.assert_array_equal(got.relevance, want.relevance)
    numpy.testing.assert_array_equal(got.absorbed, want.absorbed)
    assert got.per_layer.keys() == want.per_layer.keys()


@pytest.mark.parametrize("arch", ["deep", "rlstm", "lstm"])
def test_training_gradients_are_those_of_whole_arrays(arch, monkeypatch):
    model = build(arch, input_shape=(8, 12), T=3, n_classes=4, seed=0, dtype="float64")
    rng = numpy.random.default_rng(0)
    x, y = rng.uniform(-1, 1, (5, 8, 12)), rng.integers(0, 4, 5)
    _, got = model.loss_and_grads(x, y, train=True, rng=numpy.random.default_rng(1))
    whole_arrays(monkeypatch)
    _, want = model.loss_and_grads(x, y, train=True, rng=numpy.random.default_rng(1))
    for k in got:
        numpy.testing.assert_array_equal(got[k], want[k], err_msg=k)


def test_the_relu_front_models_batch_their_steps_by_default_and_the_conv_models_do_not():
    batched = {name: build(name, input_shape=(8, 12), T=3, n_classes=4).batch_steps
               for name in ("shallow", "deep", "deep_sd", "deep_v2", "rlstm", "rlstm_sd", "convdeep",
                            "convrlstm_sd", "conv+deep", "conv+rlstm_sd", "lstm", "gru")}
    assert [k for k, v in batched.items() if v] == ["deep", "deep_sd", "deep_v2", "rlstm", "rlstm_sd"]
