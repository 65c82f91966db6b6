"""The sweep: job hashing, the results store, reports from a hand-filled store, and (with the real
data) end-to-end runs of ``experiments/sweep.py`` in-process pools, after a SIGKILL, and on Dask."""
import csv
import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lrpnet.sweep import config as cfg
from lrpnet.sweep.report import write_report
from lrpnet.sweep.store import Store

from conftest import real_data_dir

ROOT = Path(__file__).resolve().parents[1]
SWEEP = ROOT / "experiments" / "sweep.py"
PNG = b"\x89PNG\r\n\x1a\n"


# -- configuration and hashing -------------------------------------------------------------------------
def test_hash_is_canonical_and_ignores_only_the_profile_label():
    a = cfg.job_configs(cfg.PROFILES["smoke"], ["deep"], ["mnist-maj"], ["sa"], [12])[0]
    shuffled = dict(reversed(list(a.items())))
    assert cfg.job_hash(shuffled) == cfg.job_hash(a)
    assert len(cfg.job_hash(a)) == 64
    assert cfg.job_hash({**a, "profile": "renamed"}) == cfg.job_hash(a)
    for change in ({"lr": a["lr"] * 2}, {"seed": 1}, {"fold": 0}, {"methods": ["sa", "gb"]},
                   {"arch": "rlstm"}, {"T": 4}, {"explain_size": 7}):
        assert cfg.job_hash({**a, **change}) != cfg.job_hash(a), change


def test_model_hash_ignores_how_a_model_is_explained():
    a = cfg.job_configs(cfg.PROFILES["smoke"], ["deep"], ["mnist-maj"], ["sa"], [12])[0]
    for change in ({"methods": ["sa", "dtd"]}, {"explain_size": 5}, {"aopc_steps": 9}, {"profile": "x"}):
        b = {**a, **change}
        assert cfg.model_hash(b) == cfg.model_hash(a) and (cfg.job_hash(b) != cfg.job_hash(a)
                                                           or change == {"profile": "x"})
    for change in ({"lr": 0.5}, {"epochs": 2}, {"train_size": 10}, {"seed": 3}, {"fold": 1}):
        assert cfg.model_hash({**a, **change}) != cfg.model_hash(a), change


def test_grids_cover_the_study():
    main = cfg.job_configs(cfg.PROFILES["thesis"], cfg.MAIN_ARCHS, cfg.MAIN_DATASETS, cfg.MAIN_METHODS, [12])
    assert len(main) == 10 * 2 * 7
    assert len({cfg.job_hash(c) for c in main}) == len(main)
    assert {c["fold"] for c in main} == set(range(7))
    g = cfg.GRIDS["exp1"]
    exp1 = cfg.job_configs(cfg.PROFILES["fast"], g["archs"], g["datasets"], ["dtd"], g["steps"])
    assert sorted({(c["arch"], c["dataset"], c["T"]) for c in exp1}) == sorted(
        (a, d, T) for a in ("shallow", "deep") for d in ("mnist", "fashion-mnist") for T in (1, 4, 7))
    assert {c["fold"] for c in exp1} == {cfg.OFFICIAL}


def test_profile_override_keeps_unset_values():
    p = cfg.PROFILES["thesis"].override(epochs=2, lr=None)
    assert (p.epochs, p.lr, p.batch_size) == (2, 2e-4, 50)
    assert cfg.PROFILES["thesis"].epochs == 100


def test_default_grid_names_exist():
    from lrpnet import data, models
    from lrpnet.explain import methods
    assert set(cfg.MAIN_ARCHS) <= set(models.names())
    assert set(cfg.MAIN_METHODS) <= set(methods())
    assert set(cfg.MAIN_DATASETS) | set(cfg.EXP1_DATASETS) <= set(data.task_names())


def test_profile_trains_some_architectures_longer():
    p = cfg.Profile("p", epochs=12, lr=1e-3, batch_size=50, folds=(cfg.OFFICIAL,), arch_epochs=(("rlstm", 30),))
    by_arch = {c["arch"]: c for c in cfg.job_configs(p, ["deep", "rlstm"], ["mnist-maj"], ["sa"], [12])}
    assert by_arch["deep"]["epochs"] == 12 and by_arch["rlstm"]["epochs"] == 30
    assert "arch_epochs" not in by_arch["rlstm"]                    # the epochs themselves are the identity
    same = cfg.Profile("p", epochs=12, lr=1e-3, batch_size=50, folds=(cfg.OFFICIAL,))
    assert cfg.job_hash(cfg.job_configs(same, ["deep"], ["mnist-maj"], ["sa"], [12])[0]) == cfg.job_hash(by_arch["deep"])
    short = p.override(epochs=3)                                     # --epochs: every architecture
    assert {c["epochs"] for c in cfg.job_configs(short, ["deep", "rlstm"], ["mnist-maj"], ["sa"], [12])} == {3}


# -- the store -------------------------------------------------------------------------------------
def _result(arch="deep", dataset="mnist-maj", fold=0, T=12, methods=("sa", "dtd"), acc=0.9, cos=None,
            profile="thesis"):
    config = {**cfg.job_configs(cfg.PROFILES[profile], [arch], [dataset], list(methods), [T])[0], "fold": fold}
    cos = cos or {m: 0.5 for m in methods}
    metrics = {m: {"cosine": cos[m], "in_mask": 0.6, "pixel_flipping": 3.0, "aopc": 0.1, "entropy": 0.8,
                   "per_step": list(np.full(T, 1.0 / T))} for m in methods}
    return {"hash": cfg.job_hash(config), "config": config, "accuracy": acc, "wall_s": 1.5,
            "metrics": metrics, "history": [{"epoch": 0, "loss": 0.3}], "checkpoint": None,
            "heatmaps": None, "info": {"device": "cpu"}}


def test_store_writes_one_row_per_hash_and_persists(tmp_path):
    path = tmp_path / "r.sqlite"
    r = _result()
    with Store(path) as s:
        assert s.finished() == set() and len(s) == 0
        s.put(r)
        s.put({**r, "accuracy": 0.95})          # --force: the new result replaces the old row
        assert s.finished() == {r["hash"]} and len(s) == 1
    with Store(path) as s:                        # reopened: the row is there, JSON decoded
        (row,) = s.rows()
    assert row["accuracy"] == 0.95 and row["metrics"]["dtd"]["cosine"] == 0.5
    assert row["config"] == r["config"] and row["fold"] == "0" and row["steps"] == 12


def test_store_put_is_all_or_nothing(tmp_path):
    with Store(tmp_path / "r.sqlite") as s:
        bad = {**_result(), "checkpoint": object()}     # sqlite cannot bind it: fails inside the transaction
        with pytest.raises(sqlite3.Error):
            s.put(bad)
        assert len(s) == 0                             # rolled back, and the connection is usable
        s.put(_result(fold=1))
        assert len(s) == 1
    # a second connection sees only committed rows
    assert sqlite3.connect(tmp_path / "r.sqlite").execute("SELECT COUNT(*) FROM jobs").fetchone() == (1,)


# -- the runner: a failing job is reported and the others go on ----------------------------------------
@pytest.mark.parametrize("workers", [1, 2])
def test_failed_jobs_are_reported_and_the_sweep_goes_on(tmp_path, workers):
    from lrpnet.sweep.runner import run_jobs
    (tmp_path / "nodata").mkdir()
    configs = cfg.job_configs(cfg.PROFILES["smoke"], ["deep", "rlstm"], ["mnist-maj"], ["sa"], [12])
    results, errors = [], []
    run_jobs(configs, tmp_path / "out", data_dir=tmp_path / "nodata", workers=workers,
             on_result=results.append, on_error=lambda c, text: errors.append((c["arch"], text)))
    assert results == []
    assert sorted(a for a, _ in errors) == ["deep", "rlstm"]
    assert all("mnist files missing" in text for _, text in errors), errors[0][1]


def test_limit_threads_limits_the_blas_already_loaded_and_what_loads_later():
    """The sweep's workers import NumPy (and its BLAS) before their initializer runs: the limit must
    reach a library already loaded (threadpoolctl), and the environment the ones loaded later."""
    code = ("import numpy, os\n"
            "from threadpoolctl import threadpool_info\n"
            "from lrpnet.threads import THREAD_ENV, limit_threads\n"
            "limit_threads(1)\n"
            "print(sorted({i['num_threads'] for i in threadpool_info()}), {os.environ[v] for v in THREAD_ENV})\n")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**env, "PYTHONPATH": _pythonpath()})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[1]", "{'1'}"], done.stdout
    from lrpnet.threads import limit_threads
    with pytest.raises(ValueError, match="thread count must be >= 1, got 0"):
        limit_threads(0)


# -- reports from a hand-filled store -----------------------------------------------------------------
def test_report_from_hand_filled_store(tmp_path):
    cos = {0: (0.9, 0.5), 1: (0.7, 0.3), 2: (0.8, 0.4)}        # fold -> (cosine of sa, of dtd)
    with Store(tmp_path / "results.sqlite") as s:
        for fold, (c_sa, c_dtd) in cos.items():
            s.put(_result("deep", fold=fold, acc=0.97 + 0.01 * fold, cos={"sa": c_sa, "dtd": c_dtd}))
            s.put(_result("rlstm", fold=fold, acc=0.98, cos={"sa": 0.2, "dtd": 0.9}))
        for T in (1, 4):                                         # an exp1-like sequential task
            r = _result("shallow", dataset="mnist", fold=cfg.OFFICIAL, T=T, profile="fast")
            for m in r["metrics"].values():
                del m["cosine"], m["in_mask"]
            s.put(r)
        paths = write_report(s, tmp_path)

    from lrpnet.metrics import mean_ci
    rows = list(csv.DictReader(open(paths["csv"])))
    assert len(rows) == 2 * 2 + 2 * 2                        # (deep, rlstm) x 2 methods + shallow x 2 T x 2
    deep_sa = next(r for r in rows if r["arch"] == "deep" and r["method"] == "sa")
    mean, half = mean_ci([0.9, 0.7, 0.8])
    assert float(deep_sa["cosine_mean"]) == pytest.approx(mean, rel=1e-5)
    assert float(deep_sa["cosine_ci"]) == pytest.approx(half, rel=1e-5)
    assert float(deep_sa["accuracy_mean"]) == pytest.approx(0.98, rel=1e-5)
    assert deep_sa["n_folds"] == "3"
    seq = next(r for r in rows if r["arch"] == "shallow")
    assert seq["cosine_mean"] == "" and seq["accuracy_ci"] == ""    # no mask; a single fold has no interval
    md = paths["markdown"].read_text()
    assert "## mnist-maj, T = 12" in md and "| rlstm | dtd | 0.900 ± 0.000 |" in md
    assert "## mnist, T = 4 (profile fast" in md
    names = sorted(p.name for p in paths["figures"])
    assert names == ["cosine.png", "per_step_fast_mnist.png", "per_step_thesis_mnist-maj.png"]
    for p in paths["figures"]:
        assert p.read_bytes()[:8] == PNG
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, p       # readable like every other output
    assert not _leftovers(tmp_path)


def test_report_sets_principled_and_thesis_rules_side_by_side(tmp_path):
    with Store(tmp_path / "results.sqlite") as s:
        s.put(_result("deep", fold=0, methods=("sa", "dtd", "thesis-dtd"),
                      cos={"dtd": 0.5, "thesis-dtd": 0.75, "sa": 0.2}))
        s.put(_result("rlstm", fold=0, methods=("dtd",), cos={"dtd": 0.9}))   # no thesis twin: no row
        md = write_report(s, tmp_path)["markdown"].read_text()
    assert "| architecture | method | cosine | thesis's cosine | difference |" in md
    assert "| deep | dtd | 0.500 | 0.750 | +0.250 | 0.600 | 0.600 |" in md
    # rlstm's dtd appears once, in the metrics table: no side-by-side row without its thesis twin
    assert sum(line.startswith("| rlstm | dtd | ") for line in md.splitlines()) == 1


# -- end to end, with the real data -------------------------------------------------------------------
SMALL = ["--profile", "smoke", "--datasets", "mnist-maj", "--methods", "sa,dtd", "--train-size", "200",
         "--val-size", "50", "--test-size", "100", "--explain-size", "20", "--aopc-steps", "3", "--no-progress"]


def _pythonpath():
    return os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))


def _env():
    return {**os.environ, "LRPNET_DATA": real_data_dir() or "", "PYTHONPATH": _pythonpath()}


def _sweep(out, *extra, timeout=120):
    return subprocess.run([sys.executable, str(SWEEP), *SMALL, "--out", str(out), *extra],
                          capture_output=True, text=True, env=_env(), timeout=timeout)


def _rows(out):
    db = sqlite3.connect(out / "results.sqlite")
    try:
        return db.execute("SELECT hash, arch, accuracy, metrics FROM jobs").fetchall()
    finally:
        db.close()


def _leftovers(out):
    """Temporary files of an atomic write that did not finish (checkpoints, figures, reports)."""
    return [p for p in Path(out).rglob("*") if p.is_file() and (
        ".tmp" in p.name or p.name.startswith("tmp") or p.name.endswith(".part"))]


needs_data = pytest.mark.skipif(
    real_data_dir() is None or not (Path(real_data_dir() or "/") / "mnist").is_dir(),
    reason="LRPNET_DATA is unset or lacks mnist/")


@pytest.mark.realdata
@needs_data
def test_smoke_sweep_end_to_end_and_rerun_skips(tmp_path):
    out = tmp_path / "out"
    done = _sweep(out, "--archs", "deep,rlstm")
    assert done.returncode == 0, done.stderr[-3000:]
    rows = _rows(out)
    assert sorted(r[1] for r in rows) == ["deep", "rlstm"]
    for _, _, acc, metrics in rows:
        metrics = json.loads(metrics)
        assert 0.0 <= acc <= 1.0 and set(metrics) == {"sa", "dtd"}
        assert 0.0 <= metrics["dtd"]["cosine"] <= 1.0 and len(metrics["dtd"]["per_step"]) == 12
    assert len(list((out / "checkpoints").glob("*.npz"))) == 2
    assert len(list((out / "figures" / "heatmaps").glob("*.png"))) == 2
    for png in (out / "figures").rglob("*.png"):
        assert stat.S_IMODE(png.stat().st_mode) == 0o644, png
    for name in ("report.md", "report.csv", "figures/cosine.png"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "figures" / "cosine.png").read_bytes()[:8] == PNG
    assert "| deep | dtd |" in (out / "report.md").read_text()
    assert str(out / "report.md") in done.stdout
    assert not _leftovers(out)

    again = _sweep(out, "--archs", "deep,rlstm")            # nothing left to do
    assert again.returncode == 0, again.stderr[-3000:]
    assert "2 already finished, 0 to run" in again.stdout
    assert _rows(out) == rows

    more = _sweep(out, "--archs", "deep", "--methods", "sa,dtd,gb")   # a new job, the same trained model
    assert more.returncode == 0, more.stderr[-3000:]
    assert "1 already finished" not in more.stdout and "(0 already finished, 1 to run)" in more.stdout
    db = sqlite3.connect(out / "results.sqlite")
    infos = [json.loads(i) for (i,) in db.execute("SELECT info FROM jobs WHERE arch = 'deep'")]
    db.close()
    assert sorted(i["reused_checkpoint"] for i in infos) == [False, True]
    assert len(list((out / "checkpoints").glob("*.npz"))) == 2


@pytest.mark.realdata
@needs_data
def test_sigkill_mid_job_then_resume_loses_and_duplicates_nothing(tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-u", str(SWEEP), *SMALL, "--out", str(out), "--archs", "deep,rlstm",
           "--workers", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(),
                            start_new_session=True)
    seen = []
    try:
        for line in proc.stdout:                    # kill as soon as the second job is in flight
            seen.append(line)
            if "started: rlstm" in line:
                os.killpg(proc.pid, signal.SIGKILL)
                break
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "".join(seen)[-3000:]
    first = _rows(out)
    assert [r[1] for r in first] == ["deep"]        # the finished job is saved, the killed one is not
    assert not _leftovers(out)

    resumed = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=120)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "1 already finished, 1 to run" in resumed.stdout
    rows = _rows(out)
    assert sorted(r[1] for r in rows) == ["deep", "rlstm"]
    assert len({r[0] for r in rows}) == len(rows) == 2
    assert [r for r in rows if r[1] == "deep"] == first          # not redone
    assert len(list((out / "checkpoints").glob("*.npz"))) == 2
    assert not _leftovers(out)


@pytest.mark.realdata
@needs_data
def test_smoke_sweep_on_a_local_dask_cluster(tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(processes=True, n_workers=1, threads_per_worker=1, host="127.0.0.1",
                                  dashboard_address=None, env={"LRPNET_DATA": real_data_dir(),
                                                               "PYTHONPATH": _pythonpath()}) as cluster:
        done = _sweep(tmp_path / "out", "--archs", "deep", "--cluster", cluster.scheduler_address)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Dask cluster tcp://127.0.0.1" in done.stdout
    rows = _rows(tmp_path / "out")
    assert [r[1] for r in rows] == ["deep"]
    assert (tmp_path / "out" / "report.md").is_file()
