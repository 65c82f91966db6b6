"""The named architectures: gradients (float64 central differences), parameter counts, dropout
placement and kind, seeding, configuration round trip, errors, and LSTM/GRU against PyTorch.

Models run under the backend in force; references (central differences, PyTorch) on the host."""
import numpy
import pytest

from lrpnet import backend
from lrpnet.models import build, names
from lrpnet.gradcheck import liven

from devices import dev, host

from tiny import C, SHAPE, SMALL, T, data, small

PARAMS_T12 = {"shallow": 184_330, "deep": 153_578, "deep_sd": 153_578, "deep_v2": 161_386,
              "convdeep": 151_802, "rlstm": 145_914, "rlstm_sd": 145_914, "convrlstm_sd": 152_410,
              "conv+deep": 175_418, "conv+rlstm_sd": 176_026,
              # torch.nn.LSTM / nn.GRU (196 -> 128, two bias vectors) + nn.Linear(128, 10)
              "lstm": 4 * (196 * 128 + 128 * 128 + 2 * 128) + 1290,
              "gru": 3 * (196 * 128 + 128 * 128 + 2 * 128) + 1290,
              "rgru": 2 * (324 * 128 + 128) + (196 * 128 + 128) + 128 * 128 + 1290}
DEEP_DROPS = ("cell.front0_drop", "cell.concat_drop", "cell.mid_drop")
DROPOUT = {   # architecture -> {dropout layer: stationary}; THESIS.md section 7 for the plain models
    "shallow": {"cell.hidden_drop": False},
    "deep": {**dict.fromkeys(DEEP_DROPS, False), "readout_drop": False},
    "deep_sd": {**dict.fromkeys(DEEP_DROPS, True), "readout_drop": False},     # a fresh read-out mask
    "deep_v2": {**dict.fromkeys(DEEP_DROPS + ("cell.front1_drop",), False), "readout_drop": False},
    "convdeep": {**dict.fromkeys(DEEP_DROPS, False), "readout_drop": False},
    "conv+deep": {**dict.fromkeys(DEEP_DROPS, False), "readout_drop": False},
    "rlstm": dict.fromkeys(("front_drop", "cell.gate_i_drop", "cell.gate_f_drop", "cell.gate_o_drop",
                            "cell.cand_drop", "cell.h_drop"), False),
    "rlstm_sd": dict.fromkeys(("front_drop", "cell.h_drop"), True),
    "convrlstm_sd": dict.fromkeys(("front_drop", "cell.h_drop"), True),
    "conv+rlstm_sd": dict.fromkeys(("front_drop", "cell.h_drop"), True),
}
HEAD_DROPS = ("readout_drop",)     # drawn once per pass, at step T


def checkable(name, **kw):
    """A float64 host model (the reference, built under numpy), inputs and labels for a gradient
    check. Labels are each sample's least likely class, so that the loss is not saturated and
    gradients stay well above the noise of central differences (h = 1e-5 in float64: about 1e-11
    absolute). Model seed 2 and liven seed 1 give tiny models without dead paths and without a ReLU
    within h of its kink (checked for every name)."""
    with backend.using("numpy"):
        model = small(name, seed=2, **kw)
        liven(model, numpy.random.default_rng(1))
        x, _ = data(2)
        return model, x, model.forward(x).argmin(axis=1)


def on_backend(host_model):
    """A copy of the host model ``host_model`` made under the backend in force (on its device)."""
    model = build(host_model.arch, **host_model.config)
    for k, p in model.params.items():
        p[...] = dev(host_model.params[k])
    return model


def assert_grads_equal(got, want):
    """Gradients of the backend in force equal the host's to float64 rounding (sums may be ordered
    differently): relative to each parameter's largest entry."""
    assert set(got) == set(want)
    for k, g in want.items():
        numpy.testing.assert_allclose(host(got[k]), g, rtol=1e-10, atol=1e-12 * float(numpy.abs(g).max()),
                                      err_msg=k)


def test_every_name_is_covered():
    assert sorted(names()) == sorted(SMALL)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_gradients(name):
    """The host's tape gradient matches central differences; the backend's equals the host's."""
    from lrpnet.gradcheck import check_model
    reference, x, y = checkable(name)
    with backend.using("numpy"):
        errors = check_model(reference, x, y, max_entries=8, h=1e-5)
        _, want = reference.loss_and_grads(x, y)
    assert set(errors) == set(reference.params) | {"input"}
    assert max(errors.values()) < 1e-5, errors
    _, grads = on_backend(reference).loss_and_grads(x, y)
    assert_grads_equal(grads, want)
    assert not [k for k, g in want.items() if not numpy.any(g)], "a parameter is disconnected"


@pytest.mark.parametrize("name", ["shallow", "deep", "deep_sd", "deep_v2", "rlstm", "rlstm_sd", "conv+rlstm_sd"])
def test_gradients_in_training(name):
    """With dropout on (same masks at every evaluation), the tape's gradient still matches: the
    backend's gradient, against central differences of the host model (a NumPy generator draws the
    masks on the host for every backend)."""
    reference, x, y = checkable(name, keep=0.7)
    model = on_backend(reference)

    def loss_grads(m):
        return m.loss_and_grads(x, y, train=True, rng=numpy.random.default_rng(7))

    def reference_loss():
        with backend.using("numpy"):
            return loss_grads(reference)[0]

    loss0, grads = host(loss_grads(model))
    assert loss0 != model.loss_and_grads(x, y)[0]          # dropout changed something
    rng, h = numpy.random.default_rng(0), 1e-5
    for pname, p in reference.params.items():
        flat = p.reshape(-1)
        for i in rng.choice(flat.size, min(4, flat.size), replace=False):
            old = flat[i]
            flat[i] = old + h
            up = reference_loss()
            flat[i] = old - h
            down = reference_loss()
            flat[i] = old
            num, ana = (up - down) / (2 * h), grads[pname].reshape(-1)[i]
            assert abs(num - ana) <= 1e-5 * max(abs(num), abs(ana), 1e-4), (pname, i, num, ana)


@pytest.mark.parametrize("name", sorted(PARAMS_T12))
def test_parameter_counts(name):
    model = build(name)          # thesis defaults: (28, 84), T = 12, float32
    assert model.num_params() == PARAMS_T12[name]
    assert all(p.dtype == numpy.float32 for p in model.params.values())


@pytest.mark.parametrize("name", sorted(SMALL))
def test_dropout_places_and_kind(name):
    model = small(name, keep=0.5)
    expected = DROPOUT.get(name, {})
    drops = {k: layer for k, layer in model.layers.items() if layer.kind == "dropout"}
    assert set(drops) == set(expected)
    assert all(layer.stationary == expected[k] for k, layer in drops.items())
    if not drops:
        return
    x, _ = data(4)
    tape, _, _ = model.trace(x, train=True, rng=numpy.random.default_rng(0))
    for lname, layer in drops.items():
        masks = [host(n.cache) for n in tape.nodes if n.layer.name == lname]
        assert len(masks) == (1 if lname in HEAD_DROPS else T) and not numpy.all(masks[0] == 2.0)   # 1/keep
        same = [numpy.array_equal(masks[0], m) for m in masks[1:]]
        assert all(same) if layer.stationary else not any(same), lname
    # a new sequence (new tape) draws a new stationary mask
    tape2, _, _ = model.trace(x, train=True, rng=numpy.random.default_rng(1))
    first = next(iter(drops))
    m1 = next(n.cache for n in tape.nodes if n.layer.name == first)
    m2 = next(n.cache for n in tape2.nodes if n.layer.name == first)
    assert not numpy.array_equal(host(m1), host(m2))
    # no dropout at test time
    assert numpy.array_equal(model.predict(x), model.predict(x))


def test_steps_and_state_leaves():
    """Step tags: the work without recurrence (slicing, conv stack, front) runs once on all steps'
    rows and belongs to no step (None), like the head; what runs per step carries its step."""
    model = small("convrlstm_sd")
    tape, _, out = model.trace(data()[0])
    assert [n.layer.name for n in tape.nodes if n.step is None] == ["out"]        # step by step (the default)
    slices = [n for n in tape.nodes if n.layer.kind == "timeslice"]
    assert [n.layer.t for n in slices] == [0, 1, 2, 3] and [n.step for n in slices] == [0, 1, 2, 3]
    model.batch_steps = True
    tape, _, out = model.trace(data()[0])
    assert model.T == T and model.columns == 2 and model.steps == ((0, 2), (2, 4), (4, 6), (6, 8))
    steps = {n.step for n in tape.nodes}
    assert steps == {None, 0, 1, 2, 3}
    assert [n.layer.name for n in tape.nodes if n.step is None] == [
        "slices", "conv.conv1", "conv.conv1_relu", "conv.pool1", "conv.conv2", "conv.conv2_relu", "conv.pool2",
        "conv.flatten", "front", "front_relu", "out"]
    assert out.value.shape == (3, C)
    # the batched nodes hold N*T rows, sample-major; each step's rows node picks its own
    assert tape.nodes[0].output.value.shape == (3 * T, SHAPE[0], 2, 1)
    rows = [n for n in tape.nodes if n.layer.kind == "steprows"]
    assert [n.layer.t for n in rows] == [0, 1, 2, 3] and [n.step for n in rows] == [0, 1, 2, 3]
    # Conv+: the lateral conv stack is on the recurrence (each step slices its own columns), the front is not
    model = small("conv+rlstm_sd")
    model.batch_steps = True
    tape, _, _ = model.trace(data()[0])
    slices = [n for n in tape.nodes if n.layer.kind == "timeslice"]
    assert [n.layer.t for n in slices] == [0, 1, 2, 3] and [n.step for n in slices] == [0, 1, 2, 3]
    assert all(n.step is not None for n in tape.nodes if n.layer.name.startswith("conv."))
    assert [n.layer.name for n in tape.nodes if n.step is None] == ["stack", "front", "front_relu", "out"]


BATCHED = {"shallow": [], "lstm": [], "gru": [], "rgru": [], "deep": ["cell.front0"], "deep_sd": ["cell.front0"],
           "deep_v2": ["cell.front0"], "rlstm": ["front"], "rlstm_sd": ["front"],
           "convdeep": ["conv.conv1", "conv.conv2", "cell.front0"], "convrlstm_sd": ["conv.conv1", "conv.conv2", "front"],
           "conv+deep": ["cell.front0"], "conv+rlstm_sd": ["front"]}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_batched_steps_equal_step_by_step(name):
    """Running the blocks without recurrence on all steps at once changes nothing: logits, loss and
    every gradient (with dropout, the same masks: each step still draws its own, in the same order)
    equal those of running every block step by step (``batch_steps = False``), to float64 rounding;
    and exactly the linear layers of ``BATCHED`` run batched (once per pass)."""
    model = small(name, keep=0.7)
    x, y = data(4)
    model.batch_steps = True
    tape, _, _ = model.trace(x)
    counts = {}
    for n in tape.nodes:
        if n.layer.kind in ("dense", "conv2d"):
            counts[n.layer.name] = counts.get(n.layer.name, 0) + 1
    assert sorted(k for k, c in counts.items() if c == 1 and k != "out" and k != "top") == sorted(BATCHED[name])
    for train in (False, True):
        want = None
        for batch in (False, True):
            model.batch_steps = batch
            loss, grads = host(model.loss_and_grads(x, y, train=train, rng=numpy.random.default_rng(2)))
            logits = model.predict(x)
            if want is None:
                want = loss, grads, logits
                continue
            assert loss == pytest.approx(want[0], rel=1e-12)
            numpy.testing.assert_allclose(logits, want[2], rtol=1e-12, atol=1e-15)
            assert_grads_equal(grads, want[1])


def test_slices_are_column_blocks():
    """Changing the columns of step t only changes nodes from step t on."""
    model = small("rlstm")
    x, _ = data(2)
    x2 = x.copy()
    x2[:, :, 4:6] += 0.5                                         # step 2
    a, b = (model.trace(v)[0] for v in (x, x2))
    for na, nb in zip(a.nodes, b.nodes):
        if na.step is not None and na.step < 2:
            assert numpy.array_equal(host(na.output.value), host(nb.output.value))
    assert not numpy.array_equal(host(a.nodes[-1].output.value), host(b.nodes[-1].output.value))


@pytest.mark.parametrize("name", sorted(SMALL))
def test_seeded_init_and_rebuild(name):
    a, b, c = small(name, seed=3), small(name, seed=3), small(name, seed=4)
    pa, pb, pc = host(a.params), host(b.params), host(c.params)
    assert all(numpy.array_equal(pa[k], pb[k]) for k in pa)
    assert any(not numpy.array_equal(pa[k], pc[k]) for k in pa if k.endswith(".W"))
    again = build(a.arch, **a.config)
    assert again.config == a.config and type(again) is type(a)
    assert all(numpy.array_equal(pa[k], p) for k, p in host(again.params).items())
    x, _ = data(2)
    assert numpy.array_equal(a.predict(x), again.predict(x))
    assert a.config["input_shape"] == list(SHAPE) and a.config["T"] == T and a.config["keep"] == 0.8


@pytest.mark.parametrize("T_seq", [1, 4, 7, 14, 28])
def test_sequential_mnist_shapes(T_seq):
    for name in ("shallow", "deep"):
        model = build(name, input_shape=(28, 28), T=T_seq, hidden=8, state=8) if name == "shallow" else \
            build(name, input_shape=(28, 28), T=T_seq, front=8, mid=8, state=8, top=4)
        assert model.n_in == 28 * (28 // T_seq)
        assert model.forward(numpy.zeros((2, 28, 28))).shape == (2, 10)


def test_errors():
    with pytest.raises(ValueError, match="unknown architecture 'rnn'"):
        build("rnn")
    with pytest.raises(ValueError, match="width 84 is not divisible by T=5"):
        build("rlstm", T=5)
    with pytest.raises(ValueError, match="T must be a positive int"):
        build("deep", T=0)
    with pytest.raises(ValueError, match="input_shape"):
        build("deep", input_shape=(28,))
    with pytest.raises(ValueError, match="keep"):
        build("rlstm_sd", keep=1.5)
    with pytest.raises(TypeError, match="units"):
        build("deep", units=3)
    model = small("rlstm", dtype="float32")
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 6, 8\), got \(2, 6, 9\)"):
        model.forward(numpy.zeros((2, 6, 9)))
    x = numpy.zeros((2,) + SHAPE)
    x[1, 2, 3] = numpy.nan
    with pytest.raises(ValueError, match="NaN"):
        model.forward(x)


def test_float32_forward_matches_float64():
    for name in ("rlstm", "convdeep", "gru"):
        a, b = small(name, dtype="float32"), small(name, dtype="float64")
        x, _ = data()
        ya, yb = host(a.forward(x)), host(b.forward(x))
        assert ya.dtype == numpy.float32 and yb.dtype == numpy.float64
        assert numpy.allclose(ya, yb, atol=1e-5)


# -- LSTM and GRU against PyTorch ------------------------------------------------------------------
def _torch_pair(name, torch):
    torch.manual_seed(0)
    n_in, hidden = SHAPE[0] * (SHAPE[1] // T), 5
    rnn = (torch.nn.LSTM if name == "lstm" else torch.nn.GRU)(n_in, hidden, batch_first=True).double()
    lin = torch.nn.Linear(hidden, C).double()
    return rnn, lin


def _sequence(x):
    """(N, H, W) -> (N, T, H * W/T): step t = columns of slice t, flattened row-major."""
    n, h, w = x.shape
    return x.reshape(n, h, T, w // T).transpose(0, 2, 1, 3).reshape(n, T, h * (w // T))


@pytest.mark.torch
@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_against_torch(name):
    torch = pytest.importorskip("torch")
    from lrpnet.cells import gru as gru_cell, lstm as lstm_cell
    mapping = lstm_cell if name == "lstm" else gru_cell
    rnn, lin = _torch_pair(name, torch)
    model = small(name, hidden=5)
    sd = {k: v.detach().numpy() for k, v in rnn.state_dict().items()}
    new = mapping.params_from_torch(sd)
    new["out.W"], new["out.b"] = lin.weight.detach().numpy().T, lin.bias.detach().numpy()
    assert set(new) == set(model.params)
    for k, v in new.items():
        model.params[k][...] = dev(v)

    x, y = data(4)
    xt = torch.tensor(_sequence(x), requires_grad=True)
    seq, _ = rnn(xt)
    logits = lin(seq[:, -1])
    z = torch.cat([logits, torch.zeros(len(y), 1, dtype=torch.float64)], dim=1)
    loss = torch.nn.functional.cross_entropy(z, torch.tensor(y))
    loss.backward()

    assert numpy.allclose(model.predict(x), logits.detach().numpy(), rtol=0, atol=1e-10)
    ours_loss, grads = host(model.loss_and_grads(x, y))
    assert abs(ours_loss - loss.item()) < 1e-10
    torch_grads = mapping.params_from_torch({k: p.grad.numpy() for k, p in rnn.named_parameters()})
    torch_grads["out.W"], torch_grads["out.b"] = lin.weight.grad.numpy().T, lin.bias.grad.numpy()
    for k, g in torch_grads.items():
        assert numpy.allclose(grads[k], g, rtol=0, atol=1e-8), k
    # the input gradient too, through the tape
    tape, x_var, out = model.trace(x)
    from lrpnet.losses import softmax_xent_zero_logit
    leaf, _ = tape.backward({out: softmax_xent_zero_logit(out.value, dev(y))[1]})
    assert numpy.allclose(_sequence(host(leaf[x_var])), xt.grad.numpy(), rtol=0, atol=1e-8)
    # and back: our parameters give torch's state dict
    back = mapping.params_to_torch(model.params)
    assert all(numpy.array_equal(back[k], sd[k]) for k in sd)
