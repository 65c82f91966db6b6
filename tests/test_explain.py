"""explain(): gradient methods and relevance passes through every layer and cell (float64).

The relevance pass knows no architecture: these tests run it on every model of ``models.names()`` and
check the accounting identity (input relevance + absorbed = starting relevance), conservation without
biases, and the known equalities (LRP-0 = gradient x input on ReLU nets; guided backprop = gradient
when no negative signal reaches a ReLU).

Models run under the backend in force (explain returns host arrays); ``test_backends_agree`` compares
each backend with a host model under NumPy.
"""
import numpy
import pytest

import lrpnet
from lrpnet import backend, composites, models
from lrpnet.explain import Explanation, methods, pixel_mask
from lrpnet.layers import Layer
from lrpnet.models import Sequential

from devices import dev

SMALL = {
    "shallow": dict(hidden=12, state=10),
    "deep": dict(front=16, mid=12, state=10, top=8),
    "deep_sd": dict(front=16, mid=12, state=10, top=8),
    "deep_v2": dict(front1=12, front2=16, mid=12, state=10, top=8),
    "convdeep": dict(conv1=3, conv2=4, front=12, mid=10, state=8, top=8),
    "conv+deep": dict(conv1=3, conv2=4, front=12, mid=10, state=8, top=8),
    "rlstm": dict(front=16, units=8),
    "rlstm_sd": dict(front=16, units=8),
    "convrlstm_sd": dict(conv1=3, conv2=4, front=12, units=8),
    "conv+rlstm_sd": dict(conv1=3, conv2=4, front=12, units=8),
    "lstm": dict(hidden=8),
    "gru": dict(hidden=8),
    "rgru": dict(hidden=8),
}
RELU_ONLY = ("shallow", "deep", "deep_sd", "deep_v2", "convdeep", "conv+deep", "rlstm", "rlstm_sd",
             "convrlstm_sd", "conv+rlstm_sd")
GATED = ("rlstm", "lstm", "gru", "rgru", "conv+rlstm_sd")
LRP = composites.names()
N = 4


def build(name, seed=1):
    return models.build(name, input_shape=(28, 12), T=3, n_classes=5, seed=seed, dtype="float64",
                        **SMALL.get(name, {}))


def images(n=N, seed=0):
    return numpy.random.default_rng(seed).uniform(-1, 1, (n, 28, 12))


def zero_biases(model):
    """Every bias to zero: plain biases are set to 0; -softplus(b) cannot reach 0, so those layers
    lose their bias (bias mode None); the two-bias gates have both vectors set to 0."""
    for layer in model.layers.values():
        mode = getattr(layer, "bias_mode", "no bias")
        if mode == "plain":
            layer.params["b"][:] = 0
        elif mode == "negsoftplus":
            layer.bias_mode = None
        elif mode == "two":
            layer.params["b_ih"][:] = 0
            layer.params["b_hh"][:] = 0
    return model


def feedforward(conv=False, seed=0):
    if conv:
        specs = [("conv2d", dict(in_channels=1, out_channels=3, kernel_size=3, bias="negsoftplus")), ("relu", {}),
                 ("sumpool2d", dict(size=2)), ("conv2d", dict(in_channels=3, out_channels=4, kernel_size=3)),
                 ("relu", {}), ("maxpool2d", dict(size=2, padding="SAME")), ("flatten", {}),
                 ("dense", dict(n_in=2 * 2 * 4, n_out=6, bias="negsoftplus")), ("relu", {}),
                 ("dense", dict(n_in=6, n_out=5))]
        return Sequential(specs, input_shape=(8, 8, 1), seed=seed, dtype="float64")
    specs = [("dense", dict(n_in=20, n_out=16, bias="negsoftplus")), ("relu", {}), ("dropout", {}),
             ("dense", dict(n_in=16, n_out=12)), ("relu", {}), ("dense", dict(n_in=12, n_out=5))]
    model = Sequential(specs, input_shape=(20,), seed=seed, dtype="float64")
    model.layers["3_dense"].params["b"][:] = dev(numpy.random.default_rng(seed).normal(0, 0.2, 12))
    return model


def ff_input(model, n=16, seed=0):
    return numpy.random.default_rng(seed).uniform(-1, 1, (n,) + model.input_shape)


def identity_error(e):
    total = e.relevance.reshape(len(e.score), -1).sum(1) + e.absorbed
    return numpy.abs(total - e.score).max() / max(numpy.abs(e.score).max(), 1e-300)


# -- every architecture ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(SMALL))
def test_accounting_identity_every_preset(name):
    """sum(input relevance) + absorbed == score, to 1e-10 relative, for dtd and every LRP preset."""
    assert name in models.names()
    model, x = build(name), images()
    for method in LRP:
        e = lrpnet.explain(model, x, method, start="logit", return_details=True)
        assert numpy.abs(e.score).max() > 0, (name, method)
        assert identity_error(e) < 1e-10, (name, method, identity_error(e))
        assert numpy.isfinite(e.relevance).all()


def test_every_architecture_is_covered():
    assert set(models.names()) <= set(SMALL), set(models.names()) - set(SMALL)


@pytest.mark.parametrize("name", GATED)
@pytest.mark.parametrize("gates", ["prop", "half"])
def test_gate_variants_keep_the_identity_and_feed_the_gates(name, gates):
    model, x = build(name), images()
    e = lrpnet.explain(model, x, "dtd", start="logit", gates=gates, return_details=True)
    assert identity_error(e) < 1e-10
    plain = lrpnet.explain(model, x, "dtd", start="logit", return_details=True)
    # the gates are one layer "cell.gates" (columns i, f, o or r, z), cut into one "cell.gate_<g>" per gate
    gate_layers = [k for k, layer in model.layers.items() if ".gate_" in k and layer.kind == "columns"]
    assert len(gate_layers) == (2 if name in ("gru", "rgru") else 3)
    assert all(numpy.abs(e.per_layer[k]).sum() > 0 for k in gate_layers + ["cell.gates", "cell.gates_sigmoid"])
    assert not any(k in plain.per_layer for k in gate_layers + ["cell.gates"])   # signal-take-all: never reached
    assert not numpy.allclose(e.relevance, plain.relevance)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_conservation_without_biases(name):
    """All biases zero: DTD's input relevance sums to the score up to the stabiliser of the sums."""
    model, x = zero_biases(build(name)), images()
    # alpha-beta is not conservative where a unit has no negative input; in the R-GRU the sum
    # n = relu(cand_x + r * cand_h) splits relevance by signed terms, so negative relevance reaches
    # cand_h units whose z+ denominator is 0 (all their ReLU inputs off), where DTD must absorb it
    for method in ("lrp-0",) if name == "rgru" else ("dtd", "lrp-0"):
        e = lrpnet.explain(model, x, method, start="logit", return_details=True)
        total = e.relevance.reshape(N, -1).sum(1)
        numpy.testing.assert_allclose(total, e.score, rtol=1e-4, atol=1e-12, err_msg=f"{name} {method}")


@pytest.mark.parametrize("name", RELU_ONLY)
def test_dtd_is_nonnegative_and_equals_alpha1beta0(name):
    model, x = build(name), images()
    dtd = lrpnet.explain(model, x, "dtd")
    assert dtd.min() >= -1e-12 and dtd.max() > 0
    numpy.testing.assert_allclose(dtd, lrpnet.explain(model, x, "lrp-alpha1beta0"), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", ["rlstm", "conv+deep", "convdeep", "lstm"])
def test_per_step_and_per_layer(name):
    model, x = build(name), images()
    model.batch_steps = True
    e = lrpnet.explain(model, x, "lrp-alpha1.5beta0.5", return_details=True)
    assert e.per_step.shape == (N, model.T)
    numpy.testing.assert_allclose(e.per_step.sum(1), e.relevance.reshape(N, -1).sum(1), rtol=1e-10, atol=1e-14)
    # the relevance in each step's columns is what reached that step's slice
    cols = numpy.stack([e.relevance[:, :, a:b].sum((1, 2)) for a, b in model.steps], axis=1)
    numpy.testing.assert_allclose(e.per_step, cols, rtol=1e-10, atol=1e-14)
    numpy.testing.assert_allclose(e.per_layer["out"], e.score, rtol=1e-12)
    # values(): relevance at any Var of the tape; the slices' outputs hold per_step: one slice per step,
    # or (front and conv stack run on all steps at once) one value of N*T rows, sample-major
    slices = sorted((nd for nd in e.tape.nodes if nd.layer.kind == "timeslice"), key=lambda nd: nd.layer.t)
    if slices:
        at_slices = numpy.stack([e.values(nd.output).reshape(N, -1).sum(1) for nd in slices], 1)
    else:
        (cut,) = [nd for nd in e.tape.nodes if nd.layer.kind == "timeslices"]
        at_slices = e.values(cut.output).reshape(N, model.T, -1).sum(2)
    numpy.testing.assert_allclose(at_slices, e.per_step, rtol=1e-10, atol=1e-14)
    assert isinstance(e, Explanation) and e.logits.shape == (N, 5)
    # the same per_step, per_layer, absorbed and relevance when every block runs step by step
    model.batch_steps = False
    s = lrpnet.explain(model, x, "lrp-alpha1.5beta0.5", return_details=True)
    for got, want in ((e.relevance, s.relevance), (e.per_step, s.per_step), (e.absorbed, s.absorbed)):
        numpy.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-14)
    for k in set(s.per_layer) - {f"slice{t}" for t in range(model.T)}:
        numpy.testing.assert_allclose(e.per_layer[k], s.per_layer[k], rtol=1e-10, atol=1e-14, err_msg=k)


def test_mixed_rule_is_detected_from_the_graph():
    """Shallow's first layer and Conv+'s lateral convs see pixels and states together: mixed rule."""
    tape, _, _ = build("shallow").trace(images(2))
    hidden = [nd for nd in tape.nodes if nd.layer.name == "cell.hidden"]
    masks = [pixel_mask(nd) for nd in hidden]
    assert len(masks) == 3 and all(m.shape == (1, 28 * 4 + 10) for m in masks)
    assert all(m[0, :112].all() and not m[0, 112:].any() for m in masks)
    assert all(pixel_mask(nd) is None for nd in tape.nodes if nd.layer.name == "cell.state")
    tape, _, _ = build("conv+deep").trace(images(2))
    conv1 = [pixel_mask(nd) for nd in tape.nodes if nd.layer.name == "conv.conv1"]
    assert all(m.shape == (1, 1, 1, 4) and m[..., 0] == 1 and not m[..., 1:].any() for m in conv1)
    assert all(pixel_mask(nd) is None for nd in tape.nodes if nd.layer.name == "conv.conv2")
    tape, _, _ = build("deep").trace(images(2))
    assert all(pixel_mask(nd) == "all" for nd in tape.nodes if nd.layer.name == "cell.front0")
    assert all(pixel_mask(nd) is None for nd in tape.nodes if nd.layer.name == "cell.mid")


# -- feed-forward equalities ----------------------------------------------------------------------------
@pytest.mark.parametrize("conv", [False, True])
def test_lrp0_equals_gradient_x_input(conv):
    model = feedforward(conv)
    x = ff_input(model)
    lrp0 = lrpnet.explain(model, x, "lrp-0", start="logit")
    gxi = lrpnet.explain(model, x, "gradient_x_input")
    assert numpy.abs(gxi).max() > 0
    numpy.testing.assert_allclose(lrp0, gxi, rtol=1e-9, atol=1e-12)
    assert not numpy.allclose(lrpnet.explain(model, x, "lrp-epsilon", start="logit"), gxi, rtol=1e-6)


def test_gradient_methods():
    model = feedforward()
    x = ff_input(model)
    g = lrpnet.explain(model, x, "gradient", target=2)
    numpy.testing.assert_allclose(lrpnet.explain(model, x, "sa", target=2), g * g)
    numpy.testing.assert_allclose(lrpnet.explain(model, x, "gradient_x_input", target=2), g * x)
    # the gradient of logit 2 by central differences
    h, i = 1e-6, (3, 7)
    up, down = x.copy(), x.copy()
    up[i] += h
    down[i] -= h
    numeric = (model.predict(up)[3, 2] - model.predict(down)[3, 2]) / (2 * h)
    assert abs(numeric - g[i]) < 1e-6


def test_guided_backprop_equals_gradient_without_negative_signals():
    model = feedforward()
    x = ff_input(model)
    g = lrpnet.explain(model, x, "gradient")
    assert not numpy.allclose(lrpnet.explain(model, x, "gb"), g * g)      # random weights: they differ
    for name in ("3_dense", "5_dense"):         # weights above the first layer >= 0: no negative signal
        w = model.layers[name].params["W"]
        w[:] = abs(w)
    g = lrpnet.explain(model, x, "gradient")
    numpy.testing.assert_allclose(lrpnet.explain(model, x, "gb"), g * g, rtol=1e-12)


def test_custom_composite_and_overrides():
    model = feedforward()
    x = ff_input(model)
    dtd = lrpnet.explain(model, x, "dtd")
    mine = {"input": ("zbox", {"low": -1.0, "high": 1.0}), "dense": ("zplus", {})}
    numpy.testing.assert_allclose(lrpnet.explain(model, x, mine), dtd)
    numpy.testing.assert_allclose(lrpnet.explain(model, x, "lrp", composite=mine), dtd)
    w2 = lrpnet.explain(model, x, "dtd", composite={"input": ("w_square", {})})
    numpy.testing.assert_allclose(w2, lrpnet.explain(model, x, "lrp-w2-input"))
    assert not numpy.allclose(w2, dtd)


# -- targets, starts, batching ---------------------------------------------------------------------------
def test_targets_and_starts():
    model = build("rlstm")
    x = images(6)
    logits = model.predict(x)
    e = lrpnet.explain(model, x, "dtd", return_details=True)
    numpy.testing.assert_array_equal(e.target, logits.argmax(1))
    numpy.testing.assert_allclose(e.score, numpy.maximum(logits.max(1), 0))
    labels = numpy.array([0, 1, 2, 3, 4, 0])
    e = lrpnet.explain(model, x, "dtd", target=labels, start="logit", return_details=True)
    numpy.testing.assert_allclose(e.score, logits[numpy.arange(6), labels])
    e = lrpnet.explain(model, x, "dtd", target=3, start="onehot", return_details=True)
    numpy.testing.assert_allclose(e.score, 1.0)
    neg = lrpnet.explain(model, x, "dtd", target=labels, start="relu_logit", return_details=True)
    zero = neg.score == 0
    assert numpy.all(neg.relevance[zero] == 0) and numpy.isfinite(neg.relevance).all()
    with pytest.raises(ValueError, match="outside"):
        lrpnet.explain(model, x, "dtd", target=5)
    with pytest.raises(ValueError, match="labels"):
        lrpnet.explain(model, x, "dtd", target=numpy.zeros(3, dtype=int))
    with pytest.raises(ValueError, match="start"):
        lrpnet.explain(model, x, "dtd", start="softmax")


def test_batching_changes_nothing():
    model, x = build("conv+rlstm_sd"), images(5)
    whole = lrpnet.explain(model, x, "lrp-alpha1.5beta0.5", return_details=True)
    parts = lrpnet.explain(model, x, "lrp-alpha1.5beta0.5", return_details=True, batch_size=2)
    numpy.testing.assert_allclose(parts.relevance, whole.relevance, rtol=1e-10, atol=1e-15)
    numpy.testing.assert_allclose(parts.per_step, whole.per_step, rtol=1e-10, atol=1e-15)
    numpy.testing.assert_allclose(parts.absorbed, whole.absorbed, rtol=1e-10, atol=1e-15)


def test_unknown_method_and_kind_are_named():
    model = feedforward()
    with pytest.raises(ValueError, match="unknown explanation method 'lrp-z'.*sa, gb.*dtd"):
        lrpnet.explain(model, ff_input(model), "lrp-z")
    with pytest.raises(ValueError, match="unknown gate rule"):
        lrpnet.explain(model, ff_input(model), "dtd", gates="all")
    assert set(methods()) >= {"sa", "gb", "gradient", "gradient_x_input", "dtd"}

    class Square(Layer):
        kind = "square"

        def forward(self, tape, x):
            return x * x, x

        def backward(self, x, dy):
            return (2 * x * dy,), {}

    model = feedforward()
    model.add("sq", Square())
    with pytest.raises(ValueError, match="kind 'square'.*'sq'"):
        lrpnet.explain(model, ff_input(model), "dtd")
    # a user's composite can name it
    r = lrpnet.explain(model, ff_input(model), "dtd", composite={"square": ("pass", {})})
    assert numpy.isfinite(r).all()


# -- no NaN / inf ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["shallow", "conv+deep", "rlstm", "lstm", "gru"])
def test_background_dead_units_and_zero_scores_stay_finite(name):
    model = build(name)
    blank = -numpy.ones((3, 28, 12))
    for method in methods():
        r = lrpnet.explain(model, blank, method)
        assert numpy.isfinite(r).all(), (name, method)
    for layer in model.layers.values():           # every ReLU unit dead: -softplus(b) very negative
        if getattr(layer, "bias_mode", None) == "negsoftplus":
            layer.params["b"][:] = 50.0
    for method in ("dtd", "lrp-0", "lrp-alpha1.5beta0.5", "lrp-epsilon", "sa", "gb"):
        e = lrpnet.explain(model, images(3), method, return_details=True, start="logit")
        assert numpy.isfinite(e.relevance).all() and numpy.isfinite(e.absorbed).all(), (name, method)


def test_backends_agree(each_backend):
    """The relevance pass is written against backend.xp(): every backend gives NumPy's answer."""
    x = images(3)
    with backend.using("numpy"):                            # the reference: a host model under NumPy
        reference = build("conv+rlstm_sd")
        want = lrpnet.explain(reference, x, "lrp-alpha1.5beta0.5", return_details=True)
    model = build("conv+rlstm_sd", seed=2)                  # the same model under the backend
    for k, p in model.params.items():
        p[...] = dev(reference.params[k])
    assert reference.device == "cpu" and model.backend == each_backend
    got = lrpnet.explain(model, x, "lrp-alpha1.5beta0.5", return_details=True)
    numpy.testing.assert_allclose(got.relevance, want.relevance, rtol=1e-9, atol=1e-14)
    assert isinstance(got.relevance, numpy.ndarray)


def test_plot_heatmaps(tmp_path):
    from lrpnet.plot import heatmap, heatmap_grid, symmetric_limit
    model, x = build("rlstm"), images(2)
    rel = {m: lrpnet.explain(model, x, m) for m in ("sa", "dtd")}
    path = tmp_path / "grid.png"
    fig = heatmap_grid(x, rel, path=path, titles=["a", "b"])
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and len(list(tmp_path.iterdir())) == 1
    im = fig.axes[2].images[0]                     # row "sa", first sample: symmetric limits around 0
    assert im.get_clim() == (-symmetric_limit(rel["sa"][0]), symmetric_limit(rel["sa"][0]))
    assert im.get_cmap().name == "bwr"
    ax = heatmap(numpy.zeros((28, 12)), x[0], image_mode="beside")
    assert ax.images[0].get_clim() == (-1.0, 1.0) and len(ax.figure.axes) == 2
    with pytest.raises(ValueError, match="expected 2 titles"):
        heatmap_grid(x, rel, titles=["a"])


hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings, strategies as st  # noqa: E402

_MODELS = {}


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), name=st.sampled_from(["shallow", "rlstm", "gru", "rgru"]),
       method=st.sampled_from(LRP), scale=st.sampled_from([0.0, 1.0, 1e3]))
def test_property_identity_and_finiteness(seed, name, method, scale):
    model = _MODELS.setdefault(name, build(name))
    rng = numpy.random.default_rng(seed)
    x = numpy.clip(rng.normal(0, 1, (3, 28, 12)) * scale - (scale == 0), -1, 1)
    e = lrpnet.explain(model, x, method, start="logit", return_details=True)
    assert numpy.isfinite(e.relevance).all() and numpy.isfinite(e.absorbed).all()
    total = e.relevance.reshape(3, -1).sum(1) + e.absorbed
    numpy.testing.assert_allclose(total, e.score, rtol=1e-9, atol=1e-12)
