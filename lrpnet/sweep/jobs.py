"""One job of a sweep: train a model, save it, measure its accuracy, explain its test samples with
every method and score every explanation (THESIS sections 5 and 6).

``run_job`` runs in whatever process the runner chose (the driver, a pool worker, a Dask worker)
and returns a plain dict of numbers and short lists; it never touches the results store. The files
it writes (the checkpoint, the heatmap grid) appear atomically (``lrpnet.io.save`` and
``lrpnet.plot`` write a temporary file in the same folder, then rename it).
"""
from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import numpy as np

from .config import OFFICIAL, job_hash, model_hash

__all__ = ["run_job", "job_backend", "load_split", "score_method", "DEVICE_BACKENDS", "EXPLAIN_BATCH"]

# The backend of each device when ``--backend`` is not given. cpu stays on the NumPy reference: the
# CPU-speed issue asks Numba to earn the default with 1.3x on whole models, and it does not yet. Its
# kernels are only those that beat their reference (pooling and the pointwise operations won), and it
# was as fast as NumPy or faster in every whole-model task measured, one thread, interleaved, float32
# (python -m kernels.numba.benchmark_pointwise --models, two runs on 2026-11-28, benchmarks/RESULTS.md);
# NumPy ms / Numba ms, the range over the two runs:
#                 train step b50    b256     explain 200 dtd   lrp-alpha1.5beta0.5
#     deep          1.03-1.05    1.00-1.01     1.01-1.09          1.01-1.05
#     rlstm         1.08-1.14    1.09-1.20     1.04-1.09          1.08-1.26
#     lstm          1.16-1.18    1.22-1.23     1.14-1.20          1.16-1.18
#     convdeep      1.10-1.13    1.14-1.18     1.07               1.09-1.17
# The matrix products dominate, and they are BLAS's under either backend. ``--backend numba`` takes
# the gain (the same functions: its kernels are tested against the references; its kernels compile
# once per machine, about 3 s, then load from the disk cache in about 0.3 s).
DEVICE_BACKENDS = {"cpu": "numpy", "gpu": "cupy"}
EXPLAIN_BATCH = 100          # samples per explain call: bounds the memory of the relevance pass
PREDICT_BATCH = 500
FLIP_PATCH = 7               # THESIS section 5: pixel flipping removes 7x7 patches
AOPC_PATCH = 4               # ... and AOPC 4x4 patches


def _subset(ds, n, seed, stream):
    """The whole split, or ``n`` of its samples drawn without replacement (sorted, seeded)."""
    if n is None or n >= len(ds):
        return ds
    rng = np.random.default_rng([int(seed), stream])
    return ds.subset(np.sort(rng.choice(len(ds), size=int(n), replace=False)))


def load_split(config: dict, data_dir=None):
    """(train, val, test) datasets of the job's task and fold, cut to the configured sizes."""
    from .. import data

    fold = None if config["fold"] == OFFICIAL else int(config["fold"])
    splits = [data.load_task(config["dataset"], split, data_dir, fold=fold, download=False,
                             cv=config.get("cv", "lrpnet"))
              for split in ("train", "val", "test")]
    sizes = (config["train_size"], config["val_size"], config["test_size"])
    return tuple(_subset(ds, n, config["seed"], stream) for stream, (ds, n) in enumerate(zip(splits, sizes)))


def _explain_all(model, images, labels, method):
    """Relevance of the true class (THESIS section 4) for every sample, in batches: (N, H, W)."""
    from ..explain import explain
    return np.asarray(explain(model, images, method, target=labels, batch_size=EXPLAIN_BATCH),
                      dtype=np.float32)


def score_method(predict, images, R, masks, T: int, flip_steps: int, aopc_steps: int) -> dict:
    """Every metric of THESIS section 5 for one method's relevance maps ``R`` of ``images``, as
    means over the samples (per-step shares as a list of T means). Mask metrics only with masks."""
    from .. import metrics

    scores = {}
    if masks is not None:
        pixels = metrics.block_mask_to_pixels(masks, R.shape[1:])
        scores["cosine"] = metrics.cosine_similarity(R, masks).mean()
        # (relevance mass accuracy equals in_mask for block masks, so it is not scored twice)
        scores["in_mask"] = metrics.relevance_in_mask(R, masks).mean()
        scores["rank_accuracy"] = metrics.relevance_rank_accuracy(R, pixels).mean()
    n_patches = (R.shape[1] // FLIP_PATCH) * (R.shape[2] // FLIP_PATCH)
    scores["pixel_flipping"] = metrics.pixel_flipping(
        predict, images, R, patch=FLIP_PATCH, max_flips=min(flip_steps, n_patches),
        batch_size=PREDICT_BATCH).mean()
    scores["aopc"] = metrics.aopc(predict, images, R, patch=AOPC_PATCH, steps=aopc_steps,
                                  batch_size=PREDICT_BATCH).mean()
    scores["entropy"] = metrics.heatmap_entropy(R, normalize=True).mean()
    scores = {k: float(v) for k, v in scores.items()}
    # share of the (positive) relevance that falls on each time step's slice of columns
    scores["per_step"] = [float(v) for v in
                          metrics.relevance_per_step(R, T, normalize=True, clip_negative=True).mean(axis=0)]
    return scores


def _train_or_reuse(config, train, val, ckpt: Path, force: bool, progress: bool, tag: str = ""):
    """(model, history, reused): a model trained on ``train``, or the one in the checkpoint that an
    interrupted run of this job, or a job with the same training settings, left behind (the history
    travels in the checkpoint's ``extra``). Without progress bars (jobs in worker processes), each
    epoch prints one line starting with ``tag``, so a long job still shows that it moves."""
    from .. import io, models, training

    if not force and ckpt.is_file():
        try:
            model, meta = io.load(ckpt, with_meta=True)
            return model, meta["extra"]["history"], True
        except (io.CheckpointError, KeyError, TypeError):
            pass                                   # not usable: train again and overwrite it
    model = models.build(config["arch"], input_shape=train.shape, T=config["T"],
                         n_classes=train.n_classes, seed=config["seed"], **config.get("model", {}))
    history = training.fit(model, train, val, epochs=config["epochs"], batch_size=config["batch_size"],
                           lr=config["lr"], lr_schedule=config.get("lr_schedule", "constant"),
                           batch_order=config.get("batch_order", "shuffled"),
                           dropout_schedule=config.get("dropout_schedule", "constant"),
                           seed=config["seed"], progress=progress,
                           callback=None if progress else lambda record, *_: _print_epoch(tag, record, config))
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    io.save(model, ckpt, extra={"job": config, "history": history})    # atomic: temp file + rename
    return model, history, False


def _print_epoch(tag, record, config):
    val = "" if record["val_acc"] is None else f", val_acc {record['val_acc']:.4f}"
    print(f"{tag} epoch {record['epoch'] + 1}/{config['epochs']}: loss {record['loss']:.4f}{val} "
          f"({record['seconds']:.0f} s)", flush=True)


def job_backend(device: str, backend_name: str | None = None) -> str:
    """The backend a job runs on: ``backend_name``, or the device's default (``DEVICE_BACKENDS``);
    a ValueError naming both when the backend keeps its arrays on the other device."""
    from .. import backend

    if device not in DEVICE_BACKENDS:
        raise ValueError(f"unknown device {device!r}; expected one of {', '.join(DEVICE_BACKENDS)}")
    if backend_name is None:
        return DEVICE_BACKENDS[device]
    if backend_name not in backend.BACKENDS:
        raise ValueError(f"unknown backend {backend_name!r}; expected one of {', '.join(backend.BACKENDS)}")
    if backend.DEVICES[backend_name] != device:
        fits = [b for b in backend.BACKENDS if backend.DEVICES[b] == device]
        raise ValueError(f"backend {backend_name!r} runs on the {backend.DEVICES[backend_name]}, not on "
                         f"device {device!r}; expected one of {', '.join(fits)}")
    return backend_name


def run_job(config: dict, out_dir, device: str = "cpu", data_dir=None, progress: bool = True,
            force: bool = False, backend: str | None = None) -> dict:
    """Run one job and return its result: ``{"hash", "config", "accuracy", "wall_s", "metrics"
    (method -> metric -> mean), "history", "checkpoint", "heatmaps" (paths relative to
    ``out_dir``), "info"}``; ``info["backend"]`` is the backend it ran on.

    config:   a dict from ``config.job_configs``.
    out_dir:  the sweep's output folder (checkpoints/ and figures/heatmaps/ are written there).
    device:   "cpu" or "gpu" (a CUDA GPU).
    force:    retrain even if a checkpoint of this model exists (``config.model_hash`` names it).
    backend:  "numpy" or "numba" on the cpu, "cupy" on the gpu; default ``DEVICE_BACKENDS[device]``.
              Like the device, not part of the job's identity (``config.job_hash``): every backend
              computes the same functions (the kernels are tested against the NumPy reference).
    """
    from .. import backend as backends

    with backends.using(job_backend(device, backend)):   # the caller's backend comes back afterwards
        return _run_job(config, out_dir, device, data_dir, progress, force)


def _run_job(config, out_dir, device, data_dir, progress, force):
    from .. import backend, training

    started = time.perf_counter()
    out_dir = Path(out_dir)
    h = job_hash(config)
    label = f"{config['arch']} on {config['dataset']} T={config['T']} fold={config['fold']}"
    print(f"[job {h[:10]}] started: {label}", flush=True)

    train, val, test = load_split(config, data_dir)
    ckpt = out_dir / "checkpoints" / f"{model_hash(config)}.npz"
    model, history, reused = _train_or_reuse(config, train, val, ckpt, force, progress, tag=f"[job {h[:10]}]")
    acc = training.accuracy(model, test)

    n_explain = len(test) if config["explain_size"] is None else min(config["explain_size"], len(test))
    images, labels = test.images(np.arange(n_explain)), test.labels[:n_explain]
    masks = None if test.masks is None else test.masks[:n_explain]

    def predict(x):
        return model.predict(x, batch_size=PREDICT_BATCH)

    explain_started = time.perf_counter()
    scores, shown = {}, {}
    n_show = min(config["heatmap_samples"], n_explain)
    for method in config["methods"]:
        R = _explain_all(model, images, labels, method)
        scores[method] = score_method(predict, images, R, masks, config["T"],
                                      config["flip_steps"], config["aopc_steps"])
        shown[method] = R[:n_show]
    explain_seconds = time.perf_counter() - explain_started

    heatmaps = None
    if n_show:                       # methods x the first test samples, written atomically by plot
        from .. import plot
        heatmaps = Path("figures") / "heatmaps" / (
            f"{config['arch']}_{config['dataset']}_T{config['T']}_fold-{config['fold']}_{h[:10]}.png")
        plot.heatmap_grid(images[:n_show], shown, path=out_dir / heatmaps,
                          titles=[f"class {int(y)}" for y in labels[:n_show]], dpi=80)

    wall = time.perf_counter() - started
    print(f"[job {h[:10]}] finished: {label}: accuracy {acc:.4f} ({wall:.1f} s)", flush=True)
    return {
        "hash": h, "config": config, "accuracy": float(acc), "wall_s": float(wall),
        "metrics": scores, "history": history,
        "checkpoint": str(ckpt.relative_to(out_dir)), "heatmaps": None if heatmaps is None else str(heatmaps),
        "info": {"device": device, "backend": backend.name(), "host": platform.node(), "pid": os.getpid(),
                 "n_train": len(train), "n_val": len(val), "n_test": len(test), "n_explained": int(n_explain),
                 "train_seconds": float(sum(r["seconds"] for r in history)), "reused_checkpoint": reused,
                 "explain_seconds": float(explain_seconds), "n_params": int(model.num_params())},
    }
