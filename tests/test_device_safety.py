"""Device safety without a GPU: the GPU code paths run on the CPU stand-in for CuPy (tests/standin),
whose arrays refuse host/device mixing and NumPy functions, count every copy to the host, and here
refuse float64 results in float32 models.

- every architecture trains and every explanation method runs on the stand-in, and gives NumPy's
  numbers (the stand-in computes with NumPy, so only the order of a few sums may differ);
- the training loop reads the device a fixed number of times per epoch, however many batches, and
  uploads nothing per batch; an explanation copies to the host a fixed number of times;
- a model carries its backend (``model.to``); host and device arrays that meet get a DeviceMismatch
  naming both; ``LRPNET_BACKEND`` sets a process's default; ``run_job`` restores the caller's backend.
"""
import os
import subprocess
import sys
import threading

import numpy
import pytest

import lrpnet
from lrpnet import backend, training
from lrpnet.explain import GRADIENT_METHODS
from lrpnet.composites import names as composite_names
from lrpnet.models import build, names

from test_architectures import SHAPE, SMALL, C, T

METHODS = list(GRADIENT_METHODS) + composite_names()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def small(name, dtype="float32", seed=0, **kw):
    return build(name, input_shape=SHAPE, T=T, n_classes=C, seed=seed, dtype=dtype, **{**SMALL[name], **kw})


def data(n=8, seed=5):
    rng = numpy.random.default_rng(seed)
    return rng.uniform(-1, 1, (n,) + SHAPE).astype(numpy.float32), rng.integers(0, C, n)


def host_twin(model):
    """The same model on the host (a copy, built under numpy with the device model's weights)."""
    with backend.using("numpy"):
        twin = build(model.arch, **model.config)
    for name, p in model.params.items():
        twin.params[name][...] = backend.to_numpy(p)
    return twin


# -- every architecture, every method ----------------------------------------------------------------
@pytest.mark.parametrize("arch", names())
def test_every_architecture_trains_and_explains_on_the_standin(arch, standin):
    x, y = data()
    model = small(arch)
    assert model.device == "gpu" and model.backend == "cupy"
    assert all(type(p).__module__.startswith("cupy") for p in model.params.values())
    twin = host_twin(model)
    with standin.standin.forbid_float64():
        loss, grads = model.loss_and_grads(x, y)
        for method in METHODS:
            R = lrpnet.explain(model, x, method, target=y)
            assert isinstance(R, numpy.ndarray) and R.shape == x.shape and R.dtype == numpy.float32
            with backend.using("numpy"):
                R_host = lrpnet.explain(twin, x, method, target=y)
            numpy.testing.assert_allclose(R, R_host, rtol=1e-4, atol=1e-6, err_msg=method)
        details = lrpnet.explain(model, x, "dtd", target=y, return_details=True)
        history = training.fit(model, training.ArrayDataset(x, y), epochs=1, batch_size=4, progress=False)
    with backend.using("numpy"):
        loss_host, grads_host = twin.loss_and_grads(x, y)
    assert loss == pytest.approx(loss_host, rel=1e-5)
    for name, g in grads.items():
        numpy.testing.assert_allclose(backend.to_numpy(g), grads_host[name], rtol=1e-4, atol=1e-6, err_msg=name)
    numpy.testing.assert_allclose(details.relevance.reshape(len(x), -1).sum(1) + details.absorbed,
                                  details.score, rtol=1e-4, atol=1e-5)
    assert numpy.isfinite(history[0]["loss"]) and 0 <= history[0]["train_acc"] <= 1


def test_the_standin_catches_what_a_gpu_refuses(standin):
    """The checks above can fail: the stand-in rejects each kind of device-unsafe code."""
    dev = backend.asarray(numpy.ones((2, 3), numpy.float32))
    with pytest.raises(TypeError, match="mixing"):
        dev + numpy.ones((2, 3), numpy.float32)
    with pytest.raises(TypeError):
        numpy.exp(dev)
    with pytest.raises(TypeError, match="float64"), standin.standin.forbid_float64():
        dev * numpy.float64(2)
    with pytest.raises(TypeError, match="sync"), standin.standin.forbid_syncs():
        bool(dev.any())


# -- syncs and uploads in the hot loops ---------------------------------------------------------------
@pytest.mark.parametrize("arch", ["deep_sd", "rlstm"])
def test_training_reads_the_device_a_fixed_number_of_times_per_epoch(arch, standin):
    counts = {}
    for n_batches in (3, 6):
        x, y = data(4 * n_batches)
        model = small(arch)
        train = training.ArrayDataset(x, y)
        training.fit(model, train, epochs=1, batch_size=4, progress=False)     # copies the data once
        standin.standin.reset()
        training.fit(model, train, epochs=2, start_epoch=1, batch_size=4, progress=False)
        stats = standin.standin.stats()
        counts[n_batches] = (stats["syncs"], stats["uploads"])
    assert counts[3] == counts[6], counts
    syncs, uploads = counts[3]
    assert syncs <= 2 and uploads <= 1, counts      # one read of the sums; the epoch's order


def test_explain_copies_to_the_host_a_fixed_number_of_times(standin):
    x, y = data()
    counts = []
    for steps in (2, 4):
        model = build("rlstm", input_shape=SHAPE, T=steps, n_classes=C, seed=0, **SMALL["rlstm"])
        standin.standin.reset()
        lrpnet.explain(model, x, "lrp-alpha1.5beta0.5", target=y, return_details=True)
        counts.append(standin.standin.stats()["syncs"])
    # the input's finiteness check, then one copy per dtype (float32 values, int64 targets)
    assert counts[0] == counts[1] <= 3, counts


def test_a_diverging_batch_on_the_device_leaves_the_weights_as_before_it(standin, monkeypatch):
    x, y = data(16)
    model = small("deep", dropout="none")     # no dropout: the GPU draws other masks than the host
    twin = host_twin(model)
    real = training.softmax_xent_zero_logit
    calls = []

    def loss_nan_at_batch_2(logits, labels):
        loss, d = real(logits, labels)
        calls.append(1)
        return (loss * float("nan") if len(calls) == 3 else loss), d

    monkeypatch.setattr(training, "softmax_xent_zero_logit", loss_nan_at_batch_2)
    with pytest.raises(training.TrainingDiverged, match="batch 2"):
        training.fit(model, training.ArrayDataset(x, y), epochs=1, batch_size=4, progress=False)
    calls.clear()
    with backend.using("numpy"), pytest.raises(training.TrainingDiverged, match="batch 2"):
        training.fit(twin, training.ArrayDataset(x, y), epochs=1, batch_size=4, progress=False)
    for name, p in model.params.items():
        numpy.testing.assert_allclose(backend.to_numpy(p), twin.params[name], rtol=1e-5, atol=1e-7, err_msg=name)


# -- a model carries its backend; mixing is a clear error ---------------------------------------------
def test_model_to_moves_the_parameters_and_back(standin):
    with backend.using("numpy"):
        model = small("rlstm")
        before = {k: v.copy() for k, v in model.params.items()}
    x, y = data()
    with backend.using("numpy"):
        R_host = lrpnet.explain(model, x, "dtd", target=y)
    assert model.to("cupy") is model and model.device == "gpu"
    assert all(backend.device_of(p) == "gpu" for p in model.params.values())
    numpy.testing.assert_allclose(lrpnet.explain(model, x, "dtd", target=y), R_host, rtol=1e-5, atol=1e-7)
    with backend.using("numpy"):       # the entry points follow the model's arrays
        numpy.testing.assert_allclose(lrpnet.explain(model, x, "dtd", target=y), R_host, rtol=1e-5, atol=1e-7)
    model.to("numpy")
    for k, v in model.params.items():
        assert isinstance(v, numpy.ndarray)
        numpy.testing.assert_array_equal(v, before[k])


def test_host_and_device_arrays_that_meet_are_a_device_mismatch(standin):
    x, y = data()
    with backend.using("numpy"):
        host_model = small("deep")
    gpu_model = small("deep")
    with pytest.raises(backend.DeviceMismatch, match="cupy.ndarray on the gpu.*model lives on the cpu"):
        lrpnet.explain(host_model, backend.asarray(x), "dtd")
    gpu_model.layers["out"].params["W"] = backend.to_numpy(gpu_model.layers["out"].params["W"])
    with pytest.raises(backend.DeviceMismatch, match="parameter 'out.W' is a numpy.ndarray on the cpu"):
        gpu_model.forward(x)
    on_gpu = small("deep")
    with pytest.raises(backend.DeviceMismatch, match="backend in force is 'numpy'"), backend.using("numpy"):
        on_gpu.trace(x)                 # a tape is walked later: trace checks instead of switching
    tape_model = small("deep")
    tape, x_var, _ = tape_model.trace(x)
    with pytest.raises(backend.DeviceMismatch, match="input 0 is a numpy.ndarray on the cpu"):
        tape.apply(tape_model.layers["out"], tape.input(numpy.ones((8, 6), numpy.float32)))


def test_lrpnet_backend_sets_the_default_of_a_process_and_its_threads():
    code = ("import threading; from lrpnet import backend; seen = []; "
            "t = threading.Thread(target=lambda: seen.append(backend.name())); t.start(); t.join(); "
            "print(backend.name(), seen[0])")
    env = {**os.environ, "PYTHONPATH": ROOT, "LRPNET_BACKEND": "numba"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.split() == ["numba", "numba"], out.stderr
    env["LRPNET_BACKEND"] = "tensorflow"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT)
    assert out.returncode != 0 and "LRPNET_BACKEND='tensorflow' is not a backend" in out.stderr


def test_run_job_leaves_the_callers_backend_as_it_found_it(monkeypatch):
    from lrpnet.sweep import jobs
    seen = []
    monkeypatch.setattr(jobs, "_run_job", lambda *args: seen.append(backend.name()))
    with backend.using("numba"):
        jobs.run_job({}, "unused", device="cpu", backend="numpy")
        assert backend.name() == "numba"
    assert seen == ["numpy"]


def test_gpu_status_says_why_there_is_no_gpu(standin, monkeypatch):
    assert backend.gpu_status() == (True, "CuPy 14.0.0+standin sees 1 CUDA device(s) (the CPU stand-in for CuPy)")
    runtime = standin.cuda.runtime

    def refuse():
        raise runtime.CUDARuntimeError("cudaErrorInsufficientDriver: CUDA driver version is insufficient")

    monkeypatch.setattr(runtime, "getDeviceCount", refuse)
    monkeypatch.setattr(runtime, "driverGetVersion", lambda: 12040)
    monkeypatch.setattr(runtime, "runtimeGetVersion", lambda: 13000)
    ok, reason = backend.gpu_status()
    assert not ok and "driver supports CUDA 12.4, older than the CUDA 13.0 runtime" in reason
    assert "cupy-cuda12x" in reason
    monkeypatch.setattr(runtime, "driverGetVersion", lambda: 0)
    assert "no CUDA driver is installed" in backend.gpu_status()[1]
    with pytest.raises(RuntimeError, match="backend 'cupy' needs CuPy and a CUDA GPU: no CUDA driver"):
        backend.use("cupy")


def test_a_new_thread_starts_on_the_process_default():
    seen = []
    with backend.using("numba"):
        t = threading.Thread(target=lambda: seen.append(backend.name()))
        t.start()
        t.join()
    assert seen == [backend.default()]


# -- a sweep job on the "gpu" ---------------------------------------------------------------------------
@pytest.mark.realdata
@pytest.mark.skipif(not (os.environ.get("LRPNET_DATA") and os.path.isdir(os.path.join(
    os.environ.get("LRPNET_DATA", ""), "mnist"))), reason="LRPNET_DATA is unset or lacks mnist/")
@pytest.mark.parametrize("arch", ["rlstm", "convdeep"])
def test_a_sweep_job_runs_on_the_gpu_path(arch, standin, tmp_path):
    """``run_job(device="gpu")`` (what ``sweep.py --device gpu`` runs) on the stand-in: the model is
    trained and explained on the device, its checkpoint holds host arrays, the scores are numbers."""
    from lrpnet.sweep import config as cfg
    from lrpnet.sweep.jobs import run_job
    job = cfg.job_configs(cfg.PROFILES["smoke"], [arch], ["mnist-maj"], ["sa", "gb", "dtd"], [12])[0]
    job.update(train_size=100, val_size=50, test_size=20, explain_size=20)
    with backend.using("numpy"):
        result = run_job(job, tmp_path, device="gpu", progress=False)
        assert backend.name() == "numpy"
    assert result["info"]["backend"] == "cupy" and result["info"]["device"] == "gpu"
    for method in ("sa", "gb", "dtd"):
        assert 0.0 <= result["metrics"][method]["cosine"] <= 1.0
    model = lrpnet.load(tmp_path / result["checkpoint"])
    assert model.device == "gpu" and model.num_params() == result["info"]["n_params"]
