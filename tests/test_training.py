"""Adam, the training loop, reproducibility and resuming, under the backend in force (hand-computed and
PyTorch references on the host). On a GPU the loop draws dropout masks with CuPy's generator, so
runs are compared with runs under the same backend, never with the CPU's masks."""
import numpy
import pytest

from lrpnet.data.device import DeviceDataset, on_device
from lrpnet.models import Sequential
from lrpnet.training import Adam, ArrayDataset, TrainingDiverged, accuracy, fit, learning_rate

from devices import dev, host


def mlp(seed=0, dtype="float64", n_in=8, n_classes=3, keep=0.8):
    return Sequential([("dense", {"n_in": n_in, "n_out": 16, "bias": "negsoftplus"}), ("relu", {}),
                       ("dropout", {"keep": keep}),
                       ("dense", {"n_in": 16, "n_out": n_classes})],
                      input_shape=(n_in,), n_classes=n_classes, seed=seed, dtype=dtype)


def blobs(n=120, n_in=8, n_classes=3, seed=0):
    """Three well-separated clusters: a problem any MLP separates in a few epochs."""
    rng = numpy.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n)
    centres = rng.standard_normal((n_classes, n_in)) * 2
    x = centres[labels] + 0.3 * rng.standard_normal((n, n_in))
    return ArrayDataset(x.astype(numpy.float32), labels)


def params_copy(model):
    """The model's parameters, copied to the host."""
    return {k: host(v).copy() for k, v in model.params.items()}


def test_adam_matches_a_hand_computed_step():
    p = dev(numpy.array([1.0, -2.0, 0.5]))
    g1 = numpy.array([0.1, -0.3, 2.0])
    g2 = numpy.array([-0.2, 0.1, 1.0])
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    opt = Adam({"p": p}, lr=lr, beta1=b1, beta2=b2, eps=eps)
    opt.step({"p": dev(g1)})
    # step 1: m = 0.1 g, v = 0.001 g^2; mhat = g, vhat = g^2; so p -= lr * g / (|g| + eps)
    want1 = numpy.array([1.0, -2.0, 0.5]) - lr * g1 / (numpy.abs(g1) + eps)
    numpy.testing.assert_allclose(host(p), want1, rtol=0, atol=1e-15)
    opt.step({"p": dev(g2)})
    m = 0.9 * (0.1 * g1) + 0.1 * g2
    v = 0.999 * (0.001 * g1 ** 2) + 0.001 * g2 ** 2
    want2 = want1 - lr * (m / (1 - 0.9 ** 2)) / (numpy.sqrt(v / (1 - 0.999 ** 2)) + eps)
    numpy.testing.assert_allclose(host(p), want2, rtol=1e-13, atol=1e-15)
    assert opt.t == 2


def test_adam_updates_the_model_in_place_and_checks_names():
    model = mlp()
    before = params_copy(model)
    opt = Adam(model.params, lr=1e-2)
    _, grads = model.loss_and_grads(numpy.ones((4, 8)), numpy.array([0, 1, 2, 0]))
    opt.step(grads)
    assert all(not numpy.array_equal(before[k], v) for k, v in host(model.params).items())
    with pytest.raises(KeyError, match="missing"):
        opt.step({k: g for k, g in list(grads.items())[1:]})


@pytest.mark.torch
def test_adam_agrees_with_torch():
    torch = pytest.importorskip("torch")
    rng = numpy.random.default_rng(0)
    p0 = rng.standard_normal(5)
    grads = rng.standard_normal((4, 5))
    p = dev(p0.copy())
    opt = Adam({"p": p}, lr=0.05)
    tp = torch.tensor(p0, requires_grad=True)
    topt = torch.optim.Adam([tp], lr=0.05, betas=(0.9, 0.999), eps=1e-8)
    for g in grads:
        opt.step({"p": dev(g)})
        tp.grad = torch.tensor(g)
        topt.step()
    numpy.testing.assert_allclose(host(p), tp.detach().numpy(), rtol=1e-12)


def test_fit_decreases_the_loss_and_learns_a_separable_problem():
    ds = blobs()
    model = mlp()
    history = fit(model, ds, val=ds, epochs=8, batch_size=10, lr=1e-2, seed=0, progress=False)
    assert [h["epoch"] for h in history] == list(range(8))
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]
    assert history[-1]["val_acc"] >= 0.95
    assert history[-1]["val_acc"] == accuracy(model, ds)
    assert set(history[0]) == {"epoch", "loss", "train_acc", "val_acc", "seconds"}


def test_fit_is_reproducible_and_seed_dependent():
    ds = blobs()
    runs = []
    for seed in (0, 0, 1):
        model = mlp(seed=0)
        fit(model, ds, epochs=2, batch_size=10, lr=1e-2, seed=seed, progress=False)
        runs.append(params_copy(model))
    assert all(numpy.array_equal(runs[0][k], runs[1][k]) for k in runs[0])
    assert not all(numpy.array_equal(runs[0][k], runs[2][k]) for k in runs[0])


def test_shuffling_differs_per_epoch_and_is_reproducible(monkeypatch):
    ds = ArrayDataset(numpy.arange(20, dtype=numpy.float32)[:, None], numpy.arange(20))
    orders = {}
    for epoch in (0, 1):
        orders[epoch] = numpy.concatenate([y for _, y in ds.batches(6, seed=3, epoch=epoch)])
        again = numpy.concatenate([y for _, y in ds.batches(6, seed=3, epoch=epoch)])
        numpy.testing.assert_array_equal(orders[epoch], again)
        assert sorted(orders[epoch]) == list(range(20))
    assert not numpy.array_equal(orders[0], orders[1])
    # the device copy a GPU run trains on (here: of the backend in force) draws the same orders
    for epoch in (0, 1):
        got = numpy.concatenate([host(y) for _, y in on_device(ds, "float32").batches(6, seed=3, epoch=epoch)])
        numpy.testing.assert_array_equal(got, orders[epoch])

    # and fit really asks for a new order every epoch, with its seed (of the host dataset on the
    # CPU, of its device copy on a GPU)
    seen = []

    def spying(batches):
        def spy(self, batch_size, shuffle=True, seed=0, epoch=0):
            seen.append((shuffle, seed, epoch))
            return batches(self, batch_size, shuffle, seed, epoch)
        return spy

    monkeypatch.setattr(ArrayDataset, "batches", spying(ArrayDataset.batches))
    monkeypatch.setattr(DeviceDataset, "batches", spying(DeviceDataset.batches))
    fit(mlp(n_in=1), ArrayDataset(ds.images(), ds.labels % 3), epochs=3, seed=7, progress=False)
    assert seen == [(True, 7, 0), (True, 7, 1), (True, 7, 2)]


def test_resume_from_adam_state_equals_uninterrupted_training():
    ds = blobs()
    straight = mlp()
    fit(straight, ds, epochs=3, batch_size=10, lr=1e-2, seed=5, progress=False)

    first = mlp()
    opt = Adam(first.params, lr=1e-2)
    fit(first, ds, epochs=1, batch_size=10, seed=5, progress=False, optimizer=opt)
    saved_params, saved_state = params_copy(first), opt.state_dict()

    resumed = mlp(seed=99)                       # different init: everything must come from the save
    for k, v in resumed.params.items():
        v[...] = dev(saved_params[k])
    opt2 = Adam(resumed.params, lr=123.0)
    opt2.load_state_dict(saved_state)
    fit(resumed, ds, epochs=3, batch_size=10, seed=5, progress=False, optimizer=opt2, start_epoch=1)
    for k, v in straight.params.items():
        numpy.testing.assert_array_equal(host(resumed.params[k]), host(v))


def test_nan_loss_stops_with_epoch_and_batch():
    model = mlp(keep=1.0)
    model.params["3_dense.W"][0, 0] = numpy.nan
    before = params_copy(model)
    with pytest.raises(TrainingDiverged, match="epoch 0, batch 0"):
        fit(model, blobs(), epochs=1, batch_size=10, progress=False)
    for k, v in model.params.items():        # the bad batch was not applied
        numpy.testing.assert_array_equal(host(v), before[k])


def test_max_batches_callback_and_progress_bar(capsys):
    ds = blobs()
    calls = []
    history = fit(mlp(), ds, epochs=5, batch_size=10, max_batches=2, progress=True,
                  callback=lambda rec, model, opt: calls.append((rec["epoch"], opt.t)) or rec["epoch"] == 1)
    assert calls == [(0, 2), (1, 4)]          # two batches an epoch; True from the callback stops
    assert len(history) == 2 and history[0]["val_acc"] is None
    assert "epoch 1:" in capsys.readouterr().out


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="batch_size"):
        fit(mlp(), blobs(), batch_size=0, progress=False)
    with pytest.raises(ValueError, match="lr"):
        Adam({}, lr=-1)
    with pytest.raises(ValueError, match="5 images but 4 labels"):
        ArrayDataset(numpy.zeros((5, 2)), numpy.zeros(4, int))


def test_fit_runs_a_recurrent_model_on_an_lrpnet_data_dataset():
    """The real dataset class (lrpnet.data.Dataset) and a study architecture with dropout, end to end."""
    from lrpnet.data import Dataset
    from lrpnet.models import build
    rng = numpy.random.default_rng(0)
    source = rng.integers(0, 256, (12, 28, 28), dtype=numpy.uint8)
    source_labels = numpy.arange(12) % 10
    sources = rng.integers(0, 12, (30, 3))
    ds = Dataset("toy-maj", "train", source, source_labels, sources, source_labels[sources[:, 0]])
    model = build("rlstm", input_shape=(28, 84), T=12, n_classes=10, seed=0, front=8, units=4)
    before = params_copy(model)
    history = fit(model, ds, val=ds, epochs=2, batch_size=10, max_batches=2, progress=False)
    assert len(history) == 2 and 0.0 <= history[1]["val_acc"] <= 1.0
    assert all(numpy.isfinite(h["loss"]) for h in history)
    assert any(not numpy.array_equal(before[k], v) for k, v in host(model.params).items())


def test_cosine_schedule_decays_from_lr_towards_zero():
    assert learning_rate(1e-3, "constant", 0.9) == 1e-3
    assert learning_rate(1e-3, "cosine", 0.0) == pytest.approx(1e-3)
    assert learning_rate(1e-3, "cosine", 0.5) == pytest.approx(5e-4)
    assert learning_rate(1e-3, "cosine", 0.999) < 1e-8
    with pytest.raises(ValueError, match="lr_schedule 'linear'"):
        fit(mlp(), blobs(), epochs=1, progress=False, lr_schedule="linear")


def test_resumed_cosine_training_follows_the_same_curve():
    ds = blobs()
    straight = mlp()
    fit(straight, ds, epochs=3, batch_size=10, lr=1e-2, seed=5, progress=False, lr_schedule="cosine")
    resumed = mlp()
    opt = Adam(resumed.params, lr=1e-2)
    fit(resumed, ds, epochs=3, batch_size=10, lr=1e-2, seed=5, progress=False, optimizer=opt,
        lr_schedule="cosine", max_batches=None, callback=lambda record, m, o: record["epoch"] == 0)
    fit(resumed, ds, epochs=3, batch_size=10, lr=1e-2, seed=5, progress=False, optimizer=opt,
        lr_schedule="cosine", start_epoch=1)
    for k, v in straight.params.items():
        numpy.testing.assert_array_equal(host(resumed.params[k]), host(v))
    assert opt.lr < 1e-2 * 0.05                  # the rate of the last batch, near the end of the curve
