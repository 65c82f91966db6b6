import json
import os
import re
import zipfile

import numpy
import pytest

import lrpnet
from lrpnet import backend
from lrpnet.io import CheckpointError, FORMAT_VERSION, load, save
from lrpnet.io.checkpoint import META_KEY, read_meta
from lrpnet.models import Sequential
from lrpnet.training import Adam

from devices import dev, host


def mlp(seed=3, dtype="float32"):
    return Sequential([("dense", {"n_in": 6, "n_out": 5, "bias": "negsoftplus"}), ("relu", {}),
                       ("dense", {"n_in": 5, "n_out": 4})], input_shape=(6,), seed=seed, dtype=dtype)


def cnn(seed=4, dtype="float32"):
    return Sequential([("conv2d", {"in_channels": 1, "out_channels": 3, "kernel_size": [3, 3],
                                   "padding": "SAME", "bias": "negsoftplus"}), ("relu", {}),
                       ("sumpool2d", {"size": 2, "stride": 2, "padding": "SAME"}), ("flatten", {}),
                       ("dense", {"n_in": 3 * 3 * 2, "n_out": 3})], input_shape=(5, 4, 1), seed=seed, dtype=dtype)


def x_for(model, n=7, seed=0):
    return numpy.random.default_rng(seed).uniform(-1, 1, (n,) + model.input_shape)


def rewrite(path, drop=(), add=None, meta=None):
    """Rewrite a checkpoint's arrays (for building broken files)."""
    with numpy.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files if k not in drop}
    if meta is not None:
        m = json.loads(str(arrays[META_KEY]))
        m.update(meta)
        arrays[META_KEY] = numpy.array(json.dumps(m))
    arrays.update(add or {})
    numpy.savez(path, **arrays)


@pytest.mark.parametrize("make,dtype", [(mlp, "float32"), (mlp, "float64"), (cnn, "float32")])
def test_round_trip_is_bit_exact(tmp_path, make, dtype):
    model = make(dtype=dtype)
    for p in model.params.values():          # not the initial values: a load that re-inits would fail
        p += dev(numpy.random.default_rng(1).standard_normal(p.shape).astype(p.dtype))
    path = tmp_path / "m.npz"
    save(model, path, extra={"history": [{"epoch": 0, "loss": 0.5}]})
    loaded, meta = load(path, with_meta=True)
    assert type(loaded) is type(model) and loaded.dtype == model.dtype
    assert loaded.config == json.loads(json.dumps(model.config))
    assert set(loaded.params) == set(model.params)
    # loaded under the backend in force: a GPU model under "cupy", its arrays on the device
    assert loaded.backend == backend.name() and loaded.device == model.device
    for k, p in model.params.items():
        assert loaded.params[k].dtype == p.dtype and backend.device_of(loaded.params[k]) == model.device
        numpy.testing.assert_array_equal(host(loaded.params[k]), host(p))
    x = x_for(model)
    numpy.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    with backend.using("numpy"):                  # the same file gives a host model too
        on_host = load(path)
    assert on_host.device == "cpu" and all(type(p) is numpy.ndarray for p in on_host.params.values())
    for k, p in model.params.items():
        numpy.testing.assert_array_equal(on_host.params[k], host(p))
    assert meta["extra"] == {"history": [{"epoch": 0, "loss": 0.5}]} and meta["optimizer_state"] is None
    assert lrpnet.load(path).num_params() == model.num_params()


def test_file_is_plain_npz_with_json_metadata(tmp_path):
    model = mlp()
    save(model, tmp_path / "m.npz")
    with numpy.load(tmp_path / "m.npz", allow_pickle=False) as z:
        raw = z[META_KEY]
        assert raw.dtype.kind == "U" and raw.shape == ()
        meta = json.loads(str(raw))
        assert type(z["0_dense.W"]) is numpy.ndarray          # a device model writes host arrays
        numpy.testing.assert_array_equal(z["0_dense.W"], host(model.params["0_dense.W"]))
    assert meta["format"] == "lrpnet-checkpoint" and meta["format_version"] == FORMAT_VERSION
    assert meta["arch"] == "sequential" and meta["dtype"] == "float32"
    assert meta["lrpnet_version"] == lrpnet.__version__
    assert read_meta(tmp_path / "m.npz")["config"]["input_shape"] == [6]


def test_optimizer_state_round_trip(tmp_path):
    model = mlp(dtype="float64")
    opt = Adam(model.params, lr=3e-3)
    _, grads = model.loss_and_grads(x_for(model), numpy.arange(7) % 4)
    opt.step(grads)
    save(model, tmp_path / "m.npz", optimizer=opt)
    loaded, meta = load(tmp_path / "m.npz", with_meta=True)
    opt2 = Adam(loaded.params)
    opt2.load_state_dict(meta["optimizer_state"])
    assert opt2.t == 1 and opt2.lr == 3e-3
    for k in opt.m:
        numpy.testing.assert_array_equal(host(opt2.m[k]), host(opt.m[k]))
        numpy.testing.assert_array_equal(host(opt2.v[k]), host(opt.v[k]))


def test_write_is_atomic_and_leaves_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    save(mlp(seed=1), path)
    before = path.read_bytes()
    with pytest.raises(TypeError, match="extra"):
        save(mlp(seed=2), path, extra={"bad": object()})     # fails before writing
    assert path.read_bytes() == before

    def write_half_then_fail(f, **arrays):     # a crash in the middle of writing
        f.write(b"PK\x03\x04 partial")
        raise OSError("disk full")

    monkeypatch.setattr(numpy, "savez", write_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        save(mlp(seed=2), path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]


def test_truncated_file(tmp_path):
    path = tmp_path / "m.npz"
    save(mlp(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load(path)


def test_not_a_zip_file(tmp_path):
    path = tmp_path / "m.npz"
    path.write_text("hello, not a checkpoint")
    with pytest.raises(CheckpointError, match="not an lrpnet checkpoint: expected an .npz"):
        load(path)
    numpy.save(tmp_path / "a.npy", numpy.zeros(3))
    with pytest.raises(CheckpointError, match="expected an .npz"):
        load(tmp_path / "a.npy")
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load(tmp_path / "absent.npz")


def test_npz_not_written_by_lrpnet(tmp_path):
    numpy.savez(tmp_path / "foreign.npz", W=numpy.zeros((2, 2)))
    with pytest.raises(CheckpointError, match="no '__lrpnet__' metadata.*W"):
        load(tmp_path / "foreign.npz")


def test_unknown_architecture(tmp_path):
    path = tmp_path / "m.npz"
    save(mlp(), path)
    rewrite(path, meta={"arch": "transformer"})
    with pytest.raises(CheckpointError, match="unknown architecture 'transformer'"):
        load(path)


def test_missing_and_extra_parameters(tmp_path):
    path = tmp_path / "m.npz"
    save(mlp(), path)
    rewrite(path, drop=["2_dense.b"])
    with pytest.raises(CheckpointError, match=r"missing parameters \['2_dense.b'\]"):
        load(path)
    save(mlp(), path)
    rewrite(path, add={"9_dense.W": numpy.zeros((2, 2), numpy.float32)})
    with pytest.raises(CheckpointError, match=r"unexpected parameters \['9_dense.W'\]"):
        load(path)


def test_shape_and_dtype_mismatch(tmp_path):
    path = tmp_path / "m.npz"
    save(mlp(), path)
    rewrite(path, add={"0_dense.W": numpy.zeros((6, 6), numpy.float32)})
    with pytest.raises(CheckpointError, match=r"'0_dense.W' has shape \(6, 6\).*expects \(6, 5\)"):
        load(path)
    save(mlp(), path)
    rewrite(path, add={"0_dense.W": numpy.zeros((6, 5), numpy.float64)})
    with pytest.raises(CheckpointError, match="float64, the model is float32"):
        load(path)


def test_newer_format_version(tmp_path):
    path = tmp_path / "m.npz"
    save(mlp(), path)
    rewrite(path, meta={"format_version": FORMAT_VERSION + 1})
    with pytest.raises(CheckpointError, match=f"format version {FORMAT_VERSION + 1}.*upgrade lrpnet"):
        load(path)


def test_object_metadata_is_refused_without_unpickling(tmp_path):
    path = tmp_path / "m.npz"
    save(mlp(), path)
    rewrite(path, add={META_KEY: numpy.array([{"format": "lrpnet-checkpoint"}], dtype=object)})
    with pytest.raises(CheckpointError, match="damaged|unicode"):
        load(path)


def test_corrupt_member(tmp_path):
    path = tmp_path / "m.npz"
    save(mlp(), path)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("0_dense.W.npy")
    # flip bytes inside the member's data (after its local header), keeping the zip directory intact
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 140
    data[start:start + 8] = b"\xff" * 8
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="damaged"):
        load(path)


def test_non_finite_weights_are_refused_naming_the_parameter(tmp_path):
    path = tmp_path / "m.npz"
    save(mlp(), path)
    W = host(mlp().params["2_dense.W"]).copy()
    W[1, 2] = numpy.nan
    W[0, 0] = numpy.inf
    rewrite(path, add={"2_dense.W": W})
    with pytest.raises(CheckpointError, match=r"parameter '2_dense.W' holds 1 NaN and 1 infinite values"):
        load(path)
    model = mlp()
    model.params["0_dense.b"][0] = numpy.nan
    with pytest.raises(ValueError, match=r"save: parameter '0_dense.b' holds 1 NaN"):
        save(model, tmp_path / "nan.npz")
    assert not (tmp_path / "nan.npz").exists()


def test_non_finite_optimizer_state_is_refused(tmp_path):
    model = mlp(dtype="float64")
    opt = Adam(model.params)
    opt.step(model.loss_and_grads(x_for(model), numpy.arange(7) % 4)[1])
    path = tmp_path / "m.npz"
    save(model, path, optimizer=opt)
    v = host(opt.v["0_dense.W"]).copy()
    v[0, 0] = numpy.nan
    rewrite(path, add={"optimizer/v/0_dense.W": v})
    with pytest.raises(CheckpointError, match=r"optimizer's v\['0_dense.W'\] holds 1 NaN"):
        load(path, with_meta=True)


@pytest.mark.parametrize("arch,field,sizes", [("rlstm", "units", {"front": 5, "units": 4}),
                                              ("gru", "input_shape", {"hidden": 4})])
def test_config_sizes_beyond_the_stored_arrays_are_refused_before_building(tmp_path, arch, field, sizes):
    """units = 1e9 would ask for its memory (a MemoryError) before the shapes could be compared."""
    from lrpnet.models import build
    path = tmp_path / "m.npz"
    save(build(arch, input_shape=(4, 6), T=3, n_classes=3, seed=2, **sizes), path)
    config = read_meta(path)["config"]
    config[field] = 10**9 if field == "units" else [4, 6 * 10**9]
    rewrite(path, meta={"config": config})
    shown = "config['units'] = 1000000000" if field == "units" else "config['input_shape'][1] = 6000000000"
    with pytest.raises(CheckpointError, match=re.escape(shown) + " is larger than all .* parameter values"):
        load(path)


def test_sequential_layer_width_beyond_the_stored_arrays_is_refused(tmp_path):
    path = tmp_path / "m.npz"
    save(mlp(), path)
    config = read_meta(path)["config"]
    config["layers"][0][1]["n_out"] = 10**9
    rewrite(path, meta={"config": config})
    with pytest.raises(CheckpointError, match=re.escape("config['layers'][0][1]['n_out'] = 1000000000")):
        load(path)


def test_a_memory_error_while_rebuilding_is_a_checkpoint_error(tmp_path, monkeypatch):
    """Sizes within the bound can still ask for more memory than there is: the error says so."""
    import lrpnet.models.sequential as sequential
    path = tmp_path / "m.npz"
    save(mlp(), path)

    def out_of_memory(*args, **kwargs):
        raise MemoryError("Unable to allocate 3.7 TiB")

    monkeypatch.setattr(sequential.Sequential, "__init__", out_of_memory)
    with pytest.raises(CheckpointError, match="cannot rebuild architecture 'sequential'.*MemoryError"):
        load(path)


# -- from_torch -------------------------------------------------------------------------------------
def torch_loss_grads(torch, net, x, y):
    """Logits and the study's loss gradients (softmax cross-entropy with a zero logit) by autograd."""
    net.zero_grad()
    logits = net(x)
    z = torch.cat([logits, torch.zeros(len(logits), 1, dtype=logits.dtype)], dim=1)
    torch.nn.functional.cross_entropy(z, torch.as_tensor(y)).backward()
    return logits.detach().numpy()


def grads_module(torch, net):
    """A copy of ``net`` whose parameters hold their gradients: converting it maps torch's gradients
    to lrpnet's layout, since every conversion is a linear rearrangement of the weights."""
    import copy
    g = copy.deepcopy(net)
    with torch.no_grad():
        for p, q in zip(net.parameters(), g.parameters()):
            q.copy_(p.grad)
    return g


def assert_same_model(torch, net, model, x_torch, x_lrp, y, grads_of=None):
    from lrpnet.io import from_torch
    want = torch_loss_grads(torch, net, x_torch, y)
    got = model.predict(x_lrp)
    assert got.dtype == numpy.float64
    numpy.testing.assert_allclose(got, want, rtol=0, atol=1e-10)
    _, grads = host(model.loss_and_grads(x_lrp, y))
    want_grads = (grads_of or (lambda: from_torch(grads_module(torch, net), input_shape=tuple(x_torch.shape[1:]))))()
    for k, g in grads.items():
        numpy.testing.assert_allclose(g, host(want_grads.params[k]), rtol=0, atol=1e-8, err_msg=k)


@pytest.mark.torch
def test_from_torch_mlp():
    torch = pytest.importorskip("torch")
    from lrpnet.io import from_torch
    torch.manual_seed(0)
    nn = torch.nn
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 9), nn.ReLU(), nn.Dropout(0.2), nn.Linear(9, 7), nn.Tanh(),
                        nn.Linear(7, 4, bias=False)).double()
    x = torch.randn(10, 3, 4, dtype=torch.float64)
    y = numpy.arange(10) % 4
    model = from_torch(net, input_shape=(3, 4))
    assert model.input_shape == (3, 4) and model.n_classes == 4 and model.dtype == numpy.float64
    net.eval()
    assert_same_model(torch, net, model, x, x.numpy(), y)
    # input_shape defaults to the first Linear's width
    assert from_torch(net[1:]).input_shape == (12,)


@pytest.mark.torch
def test_from_torch_cnn():
    torch = pytest.importorskip("torch")
    from lrpnet.io import from_torch
    torch.manual_seed(1)
    nn = torch.nn
    net = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(),                    # SAME, stride 1
        nn.MaxPool2d(2),                                             # 10x8 -> 5x4
        nn.Conv2d(4, 5, (3, 1), padding=0), nn.ReLU(),               # VALID -> 3x4
        nn.AvgPool2d((1, 2), stride=1),                              # -> 3x3
        nn.Conv2d(5, 3, 3, stride=2, padding=1, bias=False),         # SAME-equivalent with stride 2 on 3x3
        nn.ReLU(), nn.Flatten(), nn.Linear(3 * 2 * 2, 6), nn.ReLU(), nn.Linear(6, 3)).double()
    x = torch.randn(8, 2, 10, 8, dtype=torch.float64)
    y = numpy.arange(8) % 3
    model = from_torch(net, input_shape=(2, 10, 8))
    assert model.input_shape == (10, 8, 2)
    assert [layer.kind for layer in model.layers.values()][:4] == ["conv2d", "relu", "maxpool2d", "conv2d"]
    assert_same_model(torch, net, model, x, x.permute(0, 2, 3, 1).numpy(), y)


@pytest.mark.torch
def test_from_torch_flatten_permutation_matters():
    """Without reordering the Linear after a conv's Flatten, outputs would differ: this checks that
    the test above can fail (a channel-first flattening must not match by accident)."""
    torch = pytest.importorskip("torch")
    from lrpnet.io import from_torch
    torch.manual_seed(2)
    nn = torch.nn
    net = nn.Sequential(nn.Conv2d(1, 2, 1), nn.Flatten(), nn.Linear(2 * 2 * 2, 3)).double()
    model = from_torch(net, input_shape=(1, 2, 2))
    x = torch.randn(4, 1, 2, 2, dtype=torch.float64)
    numpy.testing.assert_allclose(model.predict(x.permute(0, 2, 3, 1).numpy()), net(x).detach().numpy(), atol=1e-12)
    W = net[2].weight.detach().numpy().T
    assert not numpy.allclose(host(model.params["2_dense.W"]), W)


@pytest.mark.torch
def test_from_torch_refuses_what_it_cannot_convert():
    torch = pytest.importorskip("torch")
    from lrpnet.io import from_torch
    from lrpnet.io.pytorch import UnsupportedModule
    nn = torch.nn
    with pytest.raises(UnsupportedModule, match="LeakyReLU.*not supported"):
        from_torch(nn.Sequential(nn.Linear(3, 3), nn.LeakyReLU(), nn.Linear(3, 2)))
    with pytest.raises(UnsupportedModule, match=r"padding \(2, 2\) is as wide as the kernel"):
        from_torch(nn.Sequential(nn.Conv2d(1, 2, 2, padding=2), nn.Flatten()), input_shape=(1, 4, 4))
    with pytest.raises(UnsupportedModule, match="ceil_mode"):
        from_torch(nn.Sequential(nn.MaxPool2d(2, ceil_mode=True), nn.Flatten()), input_shape=(1, 5, 5))
    with pytest.raises(UnsupportedModule, match="count_include_pad"):
        from_torch(nn.Sequential(nn.AvgPool2d(3, 1, padding=1), nn.Flatten()), input_shape=(1, 4, 4))
    with pytest.raises(UnsupportedModule, match="dilation"):
        from_torch(nn.Sequential(nn.Conv2d(1, 2, 3, dilation=2), nn.Flatten()), input_shape=(1, 8, 8))
    with pytest.raises(UnsupportedModule, match="missing nn.Flatten"):
        from_torch(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Linear(4, 2)), input_shape=(1, 4, 4))
    with pytest.raises(ValueError, match="input_shape is required"):
        from_torch(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten()))
    with pytest.raises(UnsupportedModule, match="int64|float16"):
        from_torch(nn.Linear(3, 2).half())


@pytest.mark.torch
def test_converted_model_saves_and_loads(tmp_path):
    torch = pytest.importorskip("torch")
    from lrpnet.io import from_torch
    nn = torch.nn
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(2 * 2 * 2, 3))
    model = from_torch(net, input_shape=(1, 4, 4))
    save(model, tmp_path / "t.npz")
    loaded = load(tmp_path / "t.npz")
    x = numpy.random.default_rng(0).standard_normal((3, 4, 4, 1)).astype(numpy.float32)
    numpy.testing.assert_array_equal(loaded.predict(x), model.predict(x))


@pytest.mark.torch
@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
@pytest.mark.parametrize("batch_first", [True, False])
def test_from_torch_recurrent(cell, batch_first):
    torch = pytest.importorskip("torch")
    from lrpnet.io import from_torch
    from lrpnet.io.pytorch import torch_sequence
    torch.manual_seed(3)
    H, W, T, hidden = 4, 6, 3, 5
    rnn = getattr(torch.nn, cell)(H * W // T, hidden, batch_first=batch_first).double()
    head = torch.nn.Linear(hidden, 3).double()
    images = torch.rand(6, H, W, dtype=torch.float64) * 2 - 1
    seq = torch_sequence(images, T)
    if not batch_first:
        seq = seq.transpose(0, 1)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn, self.head = rnn, head

        def forward(self, x):
            out = self.rnn(x)[0]
            return self.head(out[:, -1] if batch_first else out[-1])

    net = Net()
    model = from_torch(rnn, head, input_shape=(H, W), T=T)
    assert model.arch == cell.lower() and model.T == T
    y = numpy.arange(6) % 3
    grads_of = lambda: from_torch(grads_module(torch, net).rnn, grads_module(torch, net).head,   # noqa: E731
                                  input_shape=(H, W), T=T)
    assert_same_model(torch, net, model, seq, images.numpy(), y, grads_of=grads_of)


@pytest.mark.torch
def test_from_torch_recurrent_errors():
    torch = pytest.importorskip("torch")
    from lrpnet.io import from_torch
    from lrpnet.io.pytorch import UnsupportedModule
    lstm = torch.nn.LSTM(8, 4)
    with pytest.raises(ValueError, match="input_shape"):
        from_torch(lstm, torch.nn.Linear(4, 2))
    with pytest.raises(ValueError, match="reads 8 values per step"):
        from_torch(lstm, torch.nn.Linear(4, 2), input_shape=(4, 9), T=3)
    with pytest.raises(UnsupportedModule, match="one-layer"):
        from_torch(torch.nn.GRU(8, 4, num_layers=2), torch.nn.Linear(4, 2), input_shape=(4, 4), T=2)
    with pytest.raises(ValueError, match="exactly one nn.Linear"):
        from_torch(lstm, torch.nn.ReLU(), torch.nn.Linear(4, 2), input_shape=(4, 4), T=2)


@pytest.mark.parametrize("arch,sizes", [("rlstm", {"front": 5, "units": 4}), ("deep", {"front": 5, "mid": 4, "state": 3, "top": 3}),
                                        ("gru", {"hidden": 4})])
def test_named_architecture_round_trip(tmp_path, arch, sizes):
    from lrpnet.models import build
    model = build(arch, input_shape=(4, 6), T=3, n_classes=3, seed=2, dtype="float64", **sizes)
    for p in model.params.values():
        p += 0.1
    save(model, tmp_path / "r.npz")
    loaded = load(tmp_path / "r.npz")
    assert loaded.arch == arch and loaded.config == json.loads(json.dumps(model.config, default=str))
    x = numpy.random.default_rng(0).uniform(-1, 1, (5, 4, 6))
    numpy.testing.assert_array_equal(loaded.predict(x), model.predict(x))


# the parameter names of the one-layer-per-gate layout (before the gates were joined into "cell.gates")
OLD_GATE_NAMES = {
    "rlstm": [f"cell.gate_{g}.{k}" for g in "ifo" for k in ("W", "b")],
    "lstm": [f"cell.gate_{g}.{k}" for g in "ifo" for k in ("W", "b_ih", "b_hh")],
    "gru": [f"cell.gate_{g}.{k}" for g in "rz" for k in ("W", "b_ih", "b_hh")],
    "rgru": [f"cell.gate_{g}.{k}" for g in "rz" for k in ("W", "b")],
}


@pytest.mark.parametrize("arch", sorted(OLD_GATE_NAMES))
def test_checkpoint_with_old_gate_names_loads(tmp_path, arch):
    """A checkpoint of the one-layer-per-gate layout (``cell.gate_i.W`` ...: its arrays written under
    the old names, in the current format) loads into the joined layout: the same logits, bit for bit,
    and the same optimizer state."""
    from lrpnet.models import build
    sizes = {"rlstm": {"front": 5, "units": 4}}.get(arch, {"hidden": 4})
    model = build(arch, input_shape=(4, 6), T=3, n_classes=3, seed=2, dtype="float64", **sizes)
    for p in model.params.values():
        p += dev(numpy.random.default_rng(1).standard_normal(p.shape))
    opt = Adam(model.params, lr=1e-3)
    x = numpy.random.default_rng(0).uniform(-1, 1, (5, 4, 6))
    opt.step(model.loss_and_grads(x, numpy.arange(5) % 3)[1])
    path = tmp_path / "old.npz"
    save(model, path, optimizer=opt)

    gates = model.layers["cell.gates"]
    old_layers = gates.joined_from
    with numpy.load(path, allow_pickle=False) as z:            # write it again in the old layout
        arrays = {k: z[k] for k in z.files}
    for prefix in ("", "optimizer/m/", "optimizer/v/"):
        for local in gates.params:
            joined = arrays.pop(f"{prefix}cell.gates.{local}")
            for name, part in zip(old_layers, numpy.split(joined, len(old_layers), axis=-1)):
                arrays[f"{prefix}{name}.{local}"] = part
    numpy.savez(path, **arrays)
    with numpy.load(path, allow_pickle=False) as z:
        stored = {k for k in z.files if k != META_KEY and not k.startswith("optimizer/")}
    assert set(OLD_GATE_NAMES[arch]) <= stored and not any(k.startswith("cell.gates.") for k in stored)

    loaded, meta = load(path, with_meta=True)
    numpy.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    for k, p in model.params.items():
        numpy.testing.assert_array_equal(host(loaded.params[k]), host(p), err_msg=k)
    state = opt.state_dict()
    for which in ("m", "v"):
        for k, a in state[which].items():
            numpy.testing.assert_array_equal(host(meta["optimizer_state"][which][k]), host(a), err_msg=k)
    # a part missing: the error names what is missing and what is left over
    del arrays["cell.gate_f.W" if arch in ("rlstm", "lstm") else "cell.gate_z.W"]
    numpy.savez(path, **arrays)
    with pytest.raises(CheckpointError, match=r"missing parameters \['cell.gates.W'\].*unexpected.*cell.gate_"):
        load(path)
