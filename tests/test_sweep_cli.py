"""Bad arguments to experiments/sweep.py: exit status 2, one line on stderr, and no work done (no
output folder, no results database). Every check runs before anything is trained."""
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from lrpnet import backend
from lrpnet.sweep.cli import main, parser

ROOT = Path(__file__).resolve().parents[1]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def no_jobs_run(monkeypatch):
    """A command these tests expect to be refused must not start the grid (a thesis sweep trains for days)."""
    from lrpnet.sweep import runner

    def run_jobs(*args, **kwargs):
        raise AssertionError("a command that should have been refused started jobs")
    monkeypatch.setattr(runner, "run_jobs", run_jobs)


BAD = [
    (["--archs", "deep,nope"], "unknown architecture 'nope'"),
    (["--methods", "sa,lrp-bogus"], "unknown method 'lrp-bogus'"),
    (["--datasets", "cifar10"], "unknown dataset 'cifar10'"),
    (["--device", "tpu"], "'tpu'"),
    (["--backend", "torch"], "invalid choice: 'torch'"),
    (["--backend", "cupy"], "--backend cupy runs on the gpu, not with --device cpu"),
    (["--device", "cpu", "--backend", "cupy"], "(use --device gpu, or leave --backend out)"),
    (["--device", "gpu", "--backend", "numba"], "--backend numba runs on the cpu, not with --device gpu"),
    (["--device", "gpu", "--backend", "numpy"], "--backend numpy runs on the cpu, not with --device gpu"),
    (["--grid", "exp9"], "'exp9'"),
    (["--profile", "huge"], "'huge'"),
    (["--folds", "0,9"], "bad fold '9'"),
    (["--epochs", "0"], "--epochs must be >= 1, got 0"),
    (["--explain-size", "-5"], "--explain-size must be >= 1, got -5"),
    (["--lr", "-0.1"], "--lr must be > 0"),
    (["--lr", "fast"], "invalid float value: 'fast'"),
    (["--workers", "0"], "--workers must be >= 1"),
    (["--datasets", "mnist-7"], "T=12"),                        # 196 columns do not cut into 12 slices
    (["--cluster", "localhost:8786"], "expected a scheduler address like tcp://HOST:PORT"),
    (["--workers", "2", "--cluster", "tcp://127.0.0.1:1"], "not both"),
    (["--no-such-option"], "unrecognized arguments: --no-such-option"),
    (["--report-only"], "no results database"),
    (["--archs", ""], "no architecture given; expected one or more of: shallow, deep"),   # not the whole grid
    (["--datasets", " , "], "no dataset given; expected one or more of: mnist"),
    (["--methods", ""], "no method given; expected one or more of: sa, gb"),
    (["--train-size", "100000"], "--train-size 100000 is more than the train split has: 48,000 samples"),
    (["--val-size", "12001"], "--val-size 12001 is more than the val split has: 12,000 samples"),
    (["--test-size", "10001"], "--test-size 10001 is more than the test split has: 10,000 samples"),
    (["--profile", "smoke", "--explain-size", "201"], "--explain-size 201 is more than the 200 test samples"),
    (["--test-size", "50", "--explain-size", "51"], "--explain-size 51 is more than the 50 test samples"),
    (["--claim-timeout", "0"], "--claim-timeout must be > 0 seconds, got 0.0"),
    (["--claim-timeout", "soon"], "invalid float value: 'soon'"),
]


def _one_line(err, expected):
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sweep.py: error: ") and expected in lines[0], err


def _check_one_line_error(rc, err, expected, out):
    assert rc == 2
    _one_line(err, expected)
    assert not out.exists(), "a rejected command must not create its output folder"


@pytest.mark.parametrize("argv, expected", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_argument_exits_2_with_one_line_and_does_no_work(argv, expected, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main([*argv, "--out", str(out)])
    captured = capsys.readouterr()
    _check_one_line_error(rc, captured.err, expected, out)
    assert captured.out == ""


@pytest.mark.parametrize("where", ["file", "under a file"])
def test_out_that_is_a_file_is_refused_and_left_alone(where, tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("not a folder")
    out = target if where == "file" else target / "sub"
    rc = main(["--out", str(out)])
    assert rc == 2
    _one_line(capsys.readouterr().err, f"--out {out}: {target} is a file, not a folder")
    assert target.read_text() == "not a folder"


@pytest.mark.parametrize("content", ["garbage", "a folder"])
def test_out_whose_database_is_not_one_is_refused_and_left_alone(content, tmp_path, capsys):
    db = tmp_path / "out" / "results.sqlite"
    if content == "a folder":
        db.mkdir(parents=True)
    else:
        db.parent.mkdir()
        db.write_text("garbage")
    rc = main(["--out", str(tmp_path / "out")])
    assert rc == 2
    _one_line(capsys.readouterr().err, f"{db} is not a results database")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["results.sqlite"]
    assert content == "a folder" or db.read_text() == "garbage"


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="no /proc here")
def test_out_where_nothing_can_be_written_is_refused(capsys):
    rc = main(["--out", "/proc/lrpnet-test/out"])        # /proc takes no new files, not even from root
    assert rc == 2
    _one_line(capsys.readouterr().err, "--out /proc/lrpnet-test/out: cannot write in /proc")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in read-only folders")
def test_out_in_a_read_only_folder_is_refused(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    try:
        rc = main(["--out", str(locked / "out")])
    finally:
        locked.chmod(0o755)
    assert rc == 2
    _one_line(capsys.readouterr().err, f"cannot write in {locked}")


def test_a_store_that_cannot_be_opened_is_a_usage_error(tmp_path, monkeypatch, capsys):
    """What ``_check_out`` cannot foresee (a locked or full disk) still ends in one line and status 2."""
    import sqlite3
    from lrpnet.sweep import cli, store

    def refuse(path):
        raise sqlite3.OperationalError("database is locked")
    monkeypatch.setattr(cli, "_check_data", lambda *args: None)
    monkeypatch.setattr(store, "Store", refuse)
    rc = main(["--archs", "deep", "--datasets", "mnist-maj", "--out", str(tmp_path / "out")])
    assert rc == 2
    _one_line(capsys.readouterr().err, "cannot open the results database")


def test_unreachable_cluster_is_refused_quickly(tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["--cluster", f"tcp://127.0.0.1:{_free_port()}", "--out", str(out)])
    _check_one_line_error(rc, capsys.readouterr().err, "no Dask scheduler answered", out)


def test_missing_data_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    (tmp_path / "empty").mkdir()
    rc = main(["--data-dir", str(tmp_path / "empty"), "--out", str(out)])
    _check_one_line_error(rc, capsys.readouterr().err, "data not available", out)


@pytest.mark.skipif(backend.gpu_available(), reason="this machine has a GPU")
def test_gpu_device_without_gpu_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["--device", "gpu", "--out", str(out)])
    _check_one_line_error(rc, capsys.readouterr().err, "no usable CUDA GPU here: ", out)


def test_real_process_exit_status(tmp_path):
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, str(ROOT / "experiments" / "sweep.py"), "--archs", "nope",
                           "--out", str(out)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    _check_one_line_error(done.returncode, done.stderr, "unknown architecture 'nope'", out)
    assert done.stdout == ""


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    options = [s for a in parser()._actions for s in a.option_strings if s.startswith("--")]
    assert len(options) > 20
    for opt in options:
        assert opt in text, opt
    for profile in ("thesis", "fast", "smoke"):
        assert profile in text
    from lrpnet import data, models
    from lrpnet.explain import methods
    names = set(text.replace(",", " ").split())
    for name in models.names() + data.task_names() + methods():     # every name the options accept
        assert name in names, name
    assert "LRPNET_DATA" in text


@pytest.mark.realdata
@pytest.mark.skipif(not (os.environ.get("LRPNET_DATA") and os.path.isdir(os.path.join(
    os.environ.get("LRPNET_DATA", ""), "mnist"))), reason="LRPNET_DATA is unset or lacks mnist/")
@pytest.mark.parametrize("fold", [None, 3])
def test_the_split_sizes_the_cli_checks_are_those_of_the_data(fold):
    from lrpnet.data import load_task
    from lrpnet.sweep.cli import SPLIT_SIZES
    for split, n in SPLIT_SIZES.items():
        assert len(load_task("mnist-maj", split, fold=fold, download=False)) == n, (split, fold)


# -- --backend: which backend computes, passed to every job ------------------------------------------------
def _run_recorded(argv, tmp_path, monkeypatch):
    """``main(argv)`` with the data check, the jobs and the report replaced: (exit status, the keyword
    arguments ``run_jobs`` got, its configurations, the device check's (device, backend))."""
    from lrpnet.sweep import cli, runner
    seen = {}
    monkeypatch.setattr(cli, "_check_data", lambda *args: None)
    monkeypatch.setattr(cli, "_check_device", lambda device, need, client: seen.update(checked=(device, need)))
    monkeypatch.setattr(cli, "_report", lambda out: None)

    def run_jobs(configs, out_dir, **kwargs):
        seen.update(configs=list(configs), kwargs=kwargs)
    monkeypatch.setattr(runner, "run_jobs", run_jobs)
    rc = main([*argv, "--out", str(tmp_path / "out"), "--archs", "deep", "--datasets", "mnist-maj",
               "--folds", "0", "--no-progress"])
    return rc, seen


@pytest.mark.parametrize("argv, expected", [
    ([], "cpu default"), (["--backend", "numpy"], "numpy"), (["--backend", "numba"], "numba"),
    (["--device", "cpu", "--backend", "numba"], "numba"), (["--device", "gpu"], "cupy"),
    (["--device", "gpu", "--backend", "cupy"], "cupy")], ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_backend_flag_reaches_every_job(argv, expected, tmp_path, monkeypatch, capsys):
    from lrpnet.sweep.jobs import DEVICE_BACKENDS
    expected = DEVICE_BACKENDS["cpu"] if expected == "cpu default" else expected
    device = "gpu" if "gpu" in argv else "cpu"
    rc, seen = _run_recorded(argv, tmp_path, monkeypatch)
    assert rc == 0, capsys.readouterr().err
    assert seen["kwargs"]["backend"] == expected and seen["kwargs"]["device"] == device
    assert seen["checked"] == (device, expected)            # the device check asks for that backend
    assert f"on {device} ({expected} backend)" in capsys.readouterr().out


def test_the_backend_is_not_part_of_a_jobs_identity(tmp_path, monkeypatch):
    """Choosing a backend changes neither the jobs nor their hashes (the results store's keys and the
    checkpoints' names): a sweep run under numba finds the jobs a numpy run finished, and back."""
    from lrpnet.sweep.config import job_hash, model_hash
    runs = {}
    for chosen in ("numpy", "numba"):
        rc, seen = _run_recorded(["--backend", chosen], tmp_path / chosen, monkeypatch)
        assert rc == 0
        runs[chosen] = seen["configs"]
        assert all("backend" not in c for c in seen["configs"])
    assert runs["numpy"] == runs["numba"]
    assert [job_hash(c) for c in runs["numpy"]] == [job_hash(c) for c in runs["numba"]]
    assert [model_hash(c) for c in runs["numpy"]] == [model_hash(c) for c in runs["numba"]]


def test_run_job_runs_on_the_chosen_backend_and_restores_the_callers(monkeypatch):
    from lrpnet.sweep import jobs
    seen = []
    monkeypatch.setattr(jobs, "_run_job", lambda *args: seen.append(backend.name()))
    with backend.using("numpy"):
        jobs.run_job({}, "unused", device="cpu")
        if "numba" in backend.available():
            jobs.run_job({}, "unused", device="cpu", backend="numba")
        jobs.run_job({}, "unused", device="cpu", backend="numpy")
        assert backend.name() == "numpy"
    assert seen == [jobs.DEVICE_BACKENDS["cpu"]] + (["numba"] if "numba" in backend.available() else []) + ["numpy"]
    with pytest.raises(ValueError, match="backend 'cupy' runs on the gpu, not on device 'cpu'; "
                                         "expected one of numpy, numba"):
        jobs.run_job({}, "unused", device="cpu", backend="cupy")
    with pytest.raises(ValueError, match="backend 'numba' runs on the cpu, not on device 'gpu'; expected one of cupy"):
        jobs.run_job({}, "unused", device="gpu", backend="numba")
    with pytest.raises(ValueError, match="unknown backend 'torch'"):
        jobs.run_job({}, "unused", device="cpu", backend="torch")
    assert len(seen) == 2 + ("numba" in backend.available())      # nothing ran for the refused ones


def test_numba_backend_missing_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(backend, "available", lambda: ["numpy"])
    out = tmp_path / "out"
    rc = main(["--backend", "numba", "--out", str(out)])
    _check_one_line_error(rc, capsys.readouterr().err,
                          "--backend numba needs the numba package here: pip install numba", out)


@pytest.mark.realdata
@pytest.mark.skipif(not (os.environ.get("LRPNET_DATA") and os.path.isdir(os.path.join(
    os.environ.get("LRPNET_DATA", ""), "mnist"))), reason="LRPNET_DATA is unset or lacks mnist/")
def test_a_sweep_job_records_the_backend_it_ran_on(tmp_path):
    pytest.importorskip("numba")
    from lrpnet.sweep import config as cfg
    from lrpnet.sweep.jobs import run_job
    job = cfg.job_configs(cfg.PROFILES["smoke"], ["deep"], ["mnist-maj"], ["sa", "dtd"], [12])[0]
    job.update(train_size=100, val_size=50, test_size=20, explain_size=20)
    result = run_job(job, tmp_path, device="cpu", backend="numba", progress=False)
    assert result["info"]["backend"] == "numba" and result["info"]["device"] == "cpu"
    assert result["hash"] == cfg.job_hash(job)


def test_dropout_schedule_flag_reaches_every_job(tmp_path, monkeypatch, capsys):
    rc, seen = _run_recorded(["--profile", "thesis", "--dropout-schedule", "curriculum"], tmp_path, monkeypatch)
    assert rc == 0, capsys.readouterr().err
    assert seen["configs"] and all(c["dropout_schedule"] == "curriculum" for c in seen["configs"])
    rc, seen = _run_recorded(["--profile", "fast", "--dropout-schedule", "constant"], tmp_path / "plain", monkeypatch)
    assert rc == 0 and seen["configs"] and all("dropout_schedule" not in c for c in seen["configs"])
