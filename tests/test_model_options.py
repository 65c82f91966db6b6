"""The architectures' options for what the thesis's code computed (THESIS.md section 7): dropout in the
plain models (the default), zero untrained ReLU biases, TF's average pool x 2; their place in the
configuration, old checkpoints, and Experiment 1's parameter counts.

Models run under the backend in force; gradient checks on the host (float64, under numpy)."""
import numpy
import pytest

import lrpnet
from lrpnet import backend, io
from lrpnet.gradcheck import check_model, liven
from lrpnet.layers import AvgPool2D, SumPool2D
from lrpnet.models import build, options, upgrade_config
from lrpnet.models.recurrent import ZERO_BIAS
from lrpnet.training import Adam

from devices import host

from tiny import SMALL, data, small

RECURRENT_ONLY = ("lstm", "gru", "rgru")      # no options
PLAIN = ("shallow", "deep", "deep_v2", "convdeep", "conv+deep")      # no dropout before the option
CONV = ("convdeep", "conv+deep", "convrlstm_sd", "conv+rlstm_sd")


def negsoftplus_layers(model):
    return {k: layer for k, layer in model.layers.items() if getattr(layer, "bias_mode", None) == "negsoftplus"}


# -- Experiment 1 and section 3's counts ---------------------------------------------------------------
@pytest.mark.parametrize("name, T_seq, count", [("shallow", 4, 184_330), ("shallow", 7, 162_826),
                                                ("deep", 4, 153_578), ("deep", 7, 132_074)])
def test_experiment1_parameter_counts(name, T_seq, count):
    """THESIS.md section 7: Experiment 1's models on 28x28 sequential MNIST, with every option."""
    for opts in ({}, {"dropout": "none"}, {"relu_bias": "zero"}):
        assert build(name, input_shape=(28, 28), T=T_seq, **opts).num_params() == count


@pytest.mark.parametrize("name", sorted(set(SMALL) - set(RECURRENT_ONLY)))
def test_options_do_not_change_the_parameters(name):
    """Every option keeps the parameter names, shapes and (same seed) initial weights: only how the
    layers compute, and b = ``ZERO_BIAS`` for the ReLU biases with ``relu_bias="zero"``."""
    base = host(small(name).params)
    variants = [{"relu_bias": "zero"}] + ([{"dropout": "none"}] if "dropout" in options(name) else []) \
        + ([{"pool": "avg_x2"}] if name in CONV else [])
    for opts in variants:
        model = small(name, **opts)
        got = host(model.params)
        assert {k: v.shape for k, v in got.items()} == {k: v.shape for k, v in base.items()}, opts
        for k, v in got.items():
            if k.endswith(".b") and opts.get("relu_bias") == "zero" and (
                    model.layers[k[:-2]].bias_mode == "negsoftplus"):
                assert numpy.all(v == ZERO_BIAS) and numpy.all(host(model.layers[k[:-2]].bias) == 0), k
            else:
                assert numpy.array_equal(v, base[k]), (opts, k)


# -- configuration ---------------------------------------------------------------------------------
def test_options_are_in_the_configuration_and_rebuild():
    assert options("deep") == {"dropout": "thesis", "relu_bias": "softplus"}
    assert options("convrlstm_sd") == {"relu_bias": "softplus", "pool": "sum"}
    assert options("lstm") == {} and options("rgru") == {}
    model = small("convdeep", dropout="none", relu_bias="zero", pool="avg_x2")
    assert {k: model.config[k] for k in ("dropout", "relu_bias", "pool")} == \
        {"dropout": "none", "relu_bias": "zero", "pool": "avg_x2"}
    again = build(model.arch, **model.config)
    assert again.config == model.config
    assert not [k for k, layer in again.layers.items() if layer.kind == "dropout"]
    assert isinstance(again.layers["conv.pool1"], AvgPool2D) and again.layers["conv.pool2"].scale == 2.0
    assert isinstance(small("convdeep").layers["conv.pool1"], SumPool2D)


def test_unknown_option_values():
    with pytest.raises(ValueError, match="unknown dropout 'naive'"):
        small("deep", dropout="naive")
    with pytest.raises(ValueError, match="unknown relu_bias 'none'"):
        small("rlstm", relu_bias="none")
    with pytest.raises(ValueError, match="unknown pool 'max'"):
        small("convdeep", pool="max")
    with pytest.raises(TypeError, match="pool"):
        small("deep", pool="sum")                  # not a conv model
    with pytest.raises(TypeError, match="dropout"):
        small("rlstm", dropout="none")             # keeps its section-3 dropout


# -- dropout ---------------------------------------------------------------------------------------
def inputs_of(tape, lname):
    """The layer names of the nodes feeding every application of layer ``lname``."""
    return {tuple(v.node.layer.name if v.node is not None else None for v in n.inputs)
            for n in tape.nodes if n.layer.name == lname}


@pytest.mark.parametrize("name", ["deep", "deep_sd", "deep_v2", "convdeep"])
def test_deep_dropout_paths(name):
    """THESIS.md section 7: the recurrence reads mid through its mask (``cell.mid_drop``), the read-out
    reads the undropped mid of step T through a fresh mask (``readout_drop``); [front ; r] is dropped
    before mid, and DeepV2's second input layer reads the first's dropped output."""
    model = small(name)
    tape, _, _ = model.trace(data()[0], train=True, rng=numpy.random.default_rng(0))
    assert inputs_of(tape, "cell.state") == {("cell.mid_drop",)}
    assert inputs_of(tape, "cell.mid_drop") == {("cell.mid_relu",)}
    assert inputs_of(tape, "readout_drop") == {("cell.mid_relu",)}
    assert inputs_of(tape, "top") == {("readout_drop",)}
    assert inputs_of(tape, "cell.mid") == {("cell.concat_drop",)}
    last_front = "cell.front1_drop" if name == "deep_v2" else "cell.front0_drop"
    assert {names[0] for names in inputs_of(tape, "cell.concat")} == {last_front}
    if name == "deep_v2":
        assert inputs_of(tape, "cell.front1") == {("cell.front0_drop",)}
    # the read-out's mask is fresh, also in Deep-SD: not mid -> r's (stationary there) mask of step T
    (readout,) = [n.cache for n in tape.nodes if n.layer.name == "readout_drop"]
    mid_masks = [n.cache for n in tape.nodes if n.layer.name == "cell.mid_drop"]
    assert not numpy.array_equal(host(readout), host(mid_masks[-1]))


def test_shallow_dropout_path():
    """Shallow drops only on hidden -> r; its read-out reads the undropped hidden layer."""
    model = small("shallow")
    tape, _, _ = model.trace(data()[0], train=True, rng=numpy.random.default_rng(0))
    assert inputs_of(tape, "cell.state") == {("cell.hidden_drop",)}
    assert inputs_of(tape, "out") == {("cell.hidden_relu",)}


@pytest.mark.parametrize("name", PLAIN + ("deep_sd",))
def test_dropout_changes_training_only(name):
    """With the same weights, dropout on and off give the same logits and the same relevance (dropout
    is the identity at test time and in explanations), and different training losses."""
    on, off = small(name), small(name, dropout="none")
    liven(on, numpy.random.default_rng(1))            # no dead read-out: the losses can differ
    for k, p in off.params.items():
        p[...] = on.params[k]
    x, y = data(4)
    numpy.testing.assert_array_equal(on.predict(x), off.predict(x))
    for method in ("dtd", "sa"):
        numpy.testing.assert_array_equal(lrpnet.explain(on, x, method), lrpnet.explain(off, x, method))
    rng = numpy.random.default_rng
    assert on.loss_and_grads(x, y, train=True, rng=rng(3))[0] != off.loss_and_grads(x, y, train=True, rng=rng(3))[0]
    assert off.loss_and_grads(x, y, train=True, rng=rng(3))[0] == off.loss_and_grads(x, y)[0]


# -- zero, untrained ReLU biases ---------------------------------------------------------------------
@pytest.mark.parametrize("name", ["shallow", "deep", "rlstm", "convdeep"])
def test_zero_relu_bias_gradients(name):
    """``relu_bias="zero"``: central differences still match the tape (float64) with the weights
    livened and every ReLU bias (and the read-out's) at b = ``ZERO_BIAS``, whose gradient is exactly 0."""
    with backend.using("numpy"):
        model = small(name, seed=2, relu_bias="zero")
        liven(model, numpy.random.default_rng(1))
        model._zero_relu_biases()                    # liven moved the biases: back to ZERO_BIAS
        x, _ = data(2)
        y = model.forward(x).argmin(axis=1)
        errors = check_model(model, x, y, max_entries=8, h=1e-5)
        _, grads = model.loss_and_grads(x, y)
    assert max(errors.values()) < 1e-5, errors
    frozen = {f"{k}.b" for k in negsoftplus_layers(model)}
    assert "out.b" in frozen
    assert all(not numpy.any(grads[k]) for k in frozen)
    assert all(numpy.any(g) for k, g in grads.items() if k not in frozen), "a weight is disconnected"


@pytest.mark.parametrize("name", ["deep", "convrlstm_sd"])
def test_zero_relu_bias_is_exactly_zero_and_stays(name):
    """Every effective ReLU bias (and the read-out's) is exactly 0 and no Adam step changes it, while
    the weights train; with the default the biases start at -softplus(b) = -0.01 and move."""
    x, y = data(6)
    for relu_bias in ("zero", "softplus"):
        model = small(name, relu_bias=relu_bias, dtype="float32")
        before = {k: v.copy() for k, v in host(model.params).items()}
        opt = Adam(model.params, lr=1e-2)
        for step in range(3):
            opt.step(model.loss_and_grads(x, y, train=True, rng=numpy.random.default_rng(step))[1])
        after = host(model.params)
        biases = {k: host(layer.bias) for k, layer in negsoftplus_layers(model).items()}
        assert any(not numpy.array_equal(after[k], before[k]) for k in after if k.endswith(".W"))
        if relu_bias == "zero":
            assert "out" in biases and all(numpy.all(b == 0) for b in biases.values())
            assert all(numpy.all(after[f"{k}.b"] == ZERO_BIAS) for k in biases)
        else:
            assert "out" not in biases and model.layers["out"].bias_mode == "plain"
            numpy.testing.assert_allclose(-numpy.log1p(numpy.exp(before["cell.mid.b" if name == "deep" else
                                                                       "front.b"])), -0.01, rtol=1e-5)
            assert all(not numpy.array_equal(after[f"{k}.b"], before[f"{k}.b"]) for k in biases)


def test_zero_relu_bias_round_trips_a_checkpoint(tmp_path):
    """The stand-in for the code's -inf is finite, so a checkpoint (finite weights only) holds it."""
    model = small("convdeep", relu_bias="zero", pool="avg_x2", dtype="float32")
    io.save(model, tmp_path / "m.npz")
    again = io.load(tmp_path / "m.npz")
    assert again.config["relu_bias"] == "zero" and again.config["pool"] == "avg_x2"
    assert all(numpy.all(host(layer.bias) == 0) for layer in negsoftplus_layers(again).values())
    numpy.testing.assert_array_equal(again.predict(data()[0]), model.predict(data()[0]))


@pytest.mark.parametrize("name", ["deep", "convdeep", "rlstm"])
def test_zero_relu_bias_explanations_conserve(name):
    """Without biases nothing is absorbed but the stabilisers' share: DTD's input relevance sums to
    the score, and the accounting identity holds for every preset."""
    model = build(name, input_shape=(28, 12), T=3, n_classes=5, seed=1, dtype="float64", relu_bias="zero",
                  **{"deep": dict(front=16, mid=12, state=10, top=8), "rlstm": dict(front=16, units=8),
                     "convdeep": dict(conv1=3, conv2=4, front=12, mid=10, state=8, top=8)}[name])
    x = numpy.random.default_rng(0).uniform(-1, 1, (4, 28, 12))
    e = lrpnet.explain(model, x, "dtd", start="logit", return_details=True)
    assert numpy.abs(e.score).max() > 0
    numpy.testing.assert_allclose(e.relevance.reshape(4, -1).sum(1), e.score, rtol=1e-4, atol=1e-12)


# -- TF's average pool x 2 ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", CONV)
def test_avg_x2_pool_gradients_and_effect(name):
    """``pool="avg_x2"``: the tape's gradient matches central differences (float64), and with the
    same weights the logits differ from the sum pool's."""
    with backend.using("numpy"):
        model = small(name, seed=2, pool="avg_x2")
        liven(model, numpy.random.default_rng(1))
        x, _ = data(2)
        y = model.forward(x).argmin(axis=1)
        errors = check_model(model, x, y, max_entries=8, h=1e-5)
        summed = small(name, seed=2)
        for k, p in summed.params.items():
            p[...] = model.params[k]
        assert not numpy.allclose(model.predict(x), summed.predict(x))
    assert max(errors.values()) < 1e-5, errors


@pytest.mark.parametrize("name", ["convdeep", "conv+rlstm_sd"])
def test_avg_x2_pool_explanations_keep_the_identity(name):
    model = build(name, input_shape=(28, 12), T=3, n_classes=5, seed=1, dtype="float64", pool="avg_x2",
                  **dict(conv1=3, conv2=4, front=12, **(dict(mid=10, state=8, top=8) if name == "convdeep"
                                                         else dict(units=8))))
    x = numpy.random.default_rng(0).uniform(-1, 1, (4, 28, 12))
    for method in ("dtd", "lrp-alpha1.5beta0.5"):
        e = lrpnet.explain(model, x, method, start="logit", return_details=True)
        total = e.relevance.reshape(4, -1).sum(1) + e.absorbed
        numpy.testing.assert_allclose(total, e.score, rtol=1e-10, atol=1e-14, err_msg=method)
        assert e.per_layer["conv.pool1"].shape == (4,) and numpy.abs(e.per_layer["conv.pool1"]).max() > 0


# -- old checkpoints ---------------------------------------------------------------------------------
def saved_before_options(model, path, keys=("dropout", "relu_bias", "pool")):
    """Write ``model`` as a checkpoint written before the options existed: no option keys."""
    for k in keys:
        model.config.pop(k, None)
    io.save(model, path)


@pytest.mark.parametrize("name", PLAIN)
def test_old_checkpoints_load_without_dropout(name, tmp_path):
    """A plain model saved before the dropout option had no dropout: it loads as that model
    (``dropout="none"``), with the same weights and predictions; a new one keeps its dropout."""
    old = small(name, dropout="none")
    x, y = data(4)
    saved_before_options(old, tmp_path / "old.npz")
    model = io.load(tmp_path / "old.npz")
    assert model.config["dropout"] == "none" and model.config["relu_bias"] == "softplus"
    assert not [k for k, layer in model.layers.items() if layer.kind == "dropout"]
    numpy.testing.assert_array_equal(model.predict(x), old.predict(x))
    rng = numpy.random.default_rng
    assert model.loss_and_grads(x, y, train=True, rng=rng(0))[0] == model.loss_and_grads(x, y)[0]
    io.save(small(name), tmp_path / "new.npz")
    assert io.load(tmp_path / "new.npz").config["dropout"] == "thesis"


def test_old_checkpoints_of_models_that_had_dropout(tmp_path):
    """Deep-SD and the R-LSTMs had their dropout already: their old configurations keep it (Deep-SD now
    draws a fresh read-out mask, which changes training only)."""
    assert upgrade_config("deep_sd", {"T": 12}) == {"T": 12}
    assert upgrade_config("deep", {"T": 12}) == {"T": 12, "dropout": "none"}
    assert upgrade_config("deep", {"dropout": "thesis"}) == {"dropout": "thesis"}
    for name in ("deep_sd", "rlstm_sd", "convrlstm_sd"):
        saved_before_options(small(name), tmp_path / f"{name}.npz")
        model = io.load(tmp_path / f"{name}.npz")
        assert [k for k, layer in model.layers.items() if layer.kind == "dropout"]
        assert model.config.get("pool", "sum") == "sum" and model.config["relu_bias"] == "softplus"
