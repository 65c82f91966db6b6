"""The command line of ``experiments/sweep.py``: parse, validate everything, then run and report.

Every argument is checked before any work starts (no results database is created, no model is
trained): a bad one ends the program with status 2 and one line on stderr. Exit status 0 means
every job of the grid has a row; 1 that some job failed (the others were still run and recorded);
130 that it was interrupted (Ctrl-C or SIGTERM: the jobs in flight end, no new one starts).
"""
from __future__ import annotations

import argparse
import contextlib
import signal
import sqlite3
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from . import config as cfg

__all__ = ["main", "parser", "UsageError"]

DB_NAME = "results.sqlite"
# the samples of each split, the same for the official split and for each of the 7 folds
# (``data.load_task``, of 70,000 images; a test checks them against the files)
SPLIT_SIZES = {"train": 48_000, "val": 12_000, "test": 10_000}


class UsageError(Exception):
    """A bad argument: reported as one line on stderr, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):        # argparse prints the usage too; one line is easier to read
        raise UsageError(message)


def _csv(text):
    """"a, b,a" -> ["a", "b"]: comma-separated names, without blanks and repeats."""
    return list(dict.fromkeys(item.strip() for item in text.split(",") if item.strip()))


def _names_epilog() -> str:
    """The names --archs, --datasets and --methods accept, for --help."""
    from .. import data, models
    lists = (("architectures", models.names()), ("tasks", data.task_names()), ("methods", _known_methods()))
    return "\n".join(textwrap.fill(", ".join(names), width=100, initial_indent=f"  {kind + ':':15s}",
                                    subsequent_indent=" " * 17, break_on_hyphens=False)
                     for kind, names in lists)


def parser() -> argparse.ArgumentParser:
    from .store import CLAIM_TIMEOUT_S
    p = _Parser(
        prog="sweep.py",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train, explain and score the study's grid of architectures x tasks x folds.\n\n"
                    "Each job trains one model, saves it under OUT/checkpoints/<hash>.npz, measures its\n"
                    "test accuracy, explains the test samples with every method and scores every metric;\n"
                    "its result becomes one row of OUT/results.sqlite. Rerunning the same command skips\n"
                    "finished jobs; a killed run loses only the jobs in flight. At the end (and with\n"
                    "--report-only) OUT/report.md, OUT/report.csv and OUT/figures/ are regenerated from\n"
                    "the database.",
        epilog="Profiles (every setting can be overridden):\n" + "\n".join(
            f"  {p.name:7s} epochs {p.epochs}, lr {p.lr:g}, batch {p.batch_size}, folds "
            f"{','.join(map(str, p.folds))}, train/val/test {p.train_size or 'all'}/{p.val_size or 'all'}/"
            f"{p.test_size or 'all'}, explained {p.explain_size or 'all'}" for p in cfg.PROFILES.values())
        + "\n\nNames (--archs, --datasets, --methods):\n" + _names_epilog()
        + "\n\nData: the MNIST / FashionMNIST files under --data-dir, else $LRPNET_DATA, else the user cache\n"
          "(~/.cache/lrpnet), in mnist/ and fashion-mnist/; the sweep downloads nothing (see README, Data)."
        + "\n\nExamples:\n  python experiments/sweep.py --profile fast\n"
          "  python experiments/sweep.py --profile smoke --archs deep,rlstm --datasets mnist-maj\n"
          "  python experiments/sweep.py --grid exp1 --cluster tcp://10.0.0.5:8786 --out runs/exp1\n",
    )
    g = p.add_argument_group("what to run")
    g.add_argument("--grid", choices=sorted(cfg.GRIDS), default="main",
                   help="main: the ten architectures on mnist-maj and fashion-mnist-maj, T=12 (default); "
                        "exp1: shallow and deep on sequential mnist and fashion-mnist at T in {1, 4, 7}, "
                        "with relevance per time step")
    g.add_argument("--archs", type=_csv, metavar="A,B,...",
                   help="architectures, comma-separated, or 'all' for every registered one "
                        "(default: the grid's)")
    g.add_argument("--datasets", type=_csv, metavar="D,...", help="tasks (default: the grid's)")
    g.add_argument("--methods", type=_csv, metavar="M,...", default=list(cfg.MAIN_METHODS),
                   help=f"explanation methods (default: {','.join(cfg.MAIN_METHODS)})")
    g.add_argument("--folds", metavar="K,...",
                   help="cross-validation folds 0-6, comma-separated, 'all' for the seven folds, or "
                        "'official' for the official 48k/12k/10k split (default: the profile's)")
    g.add_argument("--profile", choices=list(cfg.PROFILES), default="thesis",
                   help="settings: thesis (the study's, default), fast (a quick look), smoke (a tiny test)")
    o = p.add_argument_group("overrides of the profile's settings")
    o.add_argument("--epochs", type=int, help="training epochs")
    o.add_argument("--lr", type=float, help="Adam learning rate")
    o.add_argument("--lr-schedule", choices=["constant", "cosine"],
                   help="learning rate over training: constant (the study's) or cosine decay to 0")
    o.add_argument("--dropout-schedule", choices=["constant", "curriculum"],
                   help="dropout over training: constant (the study's) or curriculum (none at first, "
                        "rising to the architecture's over the first third; Morerio et al. 2017)")
    o.add_argument("--batch-size", type=int, help="training batch size")
    o.add_argument("--train-size", type=int,
                   help=f"training samples (a seeded random subset; at most {SPLIT_SIZES['train']:,})")
    o.add_argument("--val-size", type=int, help=f"validation samples (at most {SPLIT_SIZES['val']:,})")
    o.add_argument("--test-size", type=int, help=f"test samples (accuracy; at most {SPLIT_SIZES['test']:,})")
    o.add_argument("--explain-size", type=int,
                   help="how many test samples are explained and scored (default: all of the test subset)")
    o.add_argument("--aopc-steps", type=int, help="patches AOPC removes")
    o.add_argument("--seed", type=int, help="seed of the weights, the batch order, dropout and the subsets")
    r = p.add_argument_group("where and how")
    r.add_argument("--device", choices=["cpu", "gpu"], default="cpu",
                   help="cpu (default) or gpu (a CUDA GPU, through CuPy)")
    r.add_argument("--backend", choices=["numpy", "numba", "cupy"],
                   help="what computes: numpy (the reference) or numba (its kernels, the reference "
                        "elsewhere) on the cpu, cupy on the gpu (default: the device's, "
                        + ", ".join(f"{d} {b}" for d, b in _device_backends().items())
                        + "); every backend computes the same functions, and the job's identity "
                          "(its hash) does not include it")
    r.add_argument("--out", default="results/sweep", metavar="DIR",
                   help="output folder: results.sqlite, checkpoints/, figures/, report.md, report.csv "
                        "(default: results/sweep)")
    r.add_argument("--data-dir", metavar="DIR",
                   help="MNIST/FashionMNIST folder (default: $LRPNET_DATA or the user cache)")
    r.add_argument("--workers", type=int, metavar="N",
                   help="run jobs in N local processes (1: in this process, with progress bars); "
                        "default: in-process on the GPU, one process per core on the CPU (at most one per job)")
    r.add_argument("--cluster", metavar="tcp://HOST:PORT",
                   help="submit the jobs to this running Dask scheduler instead (pip install 'lrpnet[dist]'); "
                        "OUT and the data must be reachable under the same paths on the workers")
    r.add_argument("--claim-timeout", type=float, default=CLAIM_TIMEOUT_S, metavar="S",
                   help="several sweeps on one --out split the jobs: each claims a job before it runs it "
                        "and renews its claims while it runs; a claim not renewed for S seconds (its sweep "
                        f"was killed) is taken over (default {CLAIM_TIMEOUT_S:g}; the clocks of machines that "
                        "share --out must agree to well within it)")
    r.add_argument("--force", action="store_true", help="redo jobs that already have results")
    r.add_argument("--report-only", action="store_true",
                   help="only regenerate the report and figures from OUT/results.sqlite")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


# -- validation: every check runs before any work ----------------------------------------------------

def _check_names(kind, given, valid):
    bad = [x for x in given if x not in valid]
    if bad:
        raise UsageError(f"unknown {kind} {bad[0]!r}; expected one of: {', '.join(valid)}")
    if not given:
        raise UsageError(f"no {kind} given; expected one or more of: {', '.join(valid)}")


def _known_methods():
    from ..explain import methods     # (``lrpnet.explain`` itself is the function)
    return methods()


def _folds(text, profile):
    if text is None:
        return profile.folds
    if text == cfg.OFFICIAL:
        return (cfg.OFFICIAL,)
    if text == "all":
        return tuple(range(7))
    folds = []
    for item in _csv(text):
        if not item.isdigit() or not 0 <= int(item) < 7:
            raise UsageError(f"bad fold {item!r}; expected numbers 0-6, 'all' or 'official'")
        folds.append(int(item))
    if not folds:
        raise UsageError("no fold given")
    return tuple(dict.fromkeys(folds))


def _profile(args):
    for name in ("epochs", "batch_size", "train_size", "val_size", "test_size", "explain_size", "aopc_steps"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.lr is not None and not args.lr > 0:
        raise UsageError(f"--lr must be > 0, got {args.lr}")
    for split, available in SPLIT_SIZES.items():
        value = getattr(args, f"{split}_size")
        if value is not None and value > available:
            raise UsageError(f"--{split}-size {value} is more than the {split} split has: {available:,} samples "
                             f"(the same in every fold)")
    profile = cfg.PROFILES[args.profile].override(
        epochs=args.epochs, lr=args.lr, lr_schedule=args.lr_schedule, dropout_schedule=args.dropout_schedule,
        batch_size=args.batch_size,
        train_size=args.train_size,
        val_size=args.val_size, test_size=args.test_size, explain_size=args.explain_size,
        aopc_steps=args.aopc_steps, seed=args.seed)
    test_size = profile.test_size or SPLIT_SIZES["test"]
    if profile.explain_size is not None and profile.explain_size > test_size:
        raise UsageError(f"--explain-size {profile.explain_size} is more than the {test_size} test samples "
                         f"(--test-size, or the {profile.name} profile's)")
    return profile.override(folds=_folds(args.folds, profile))


def _check_out(out: Path):
    """--out must be a folder (or a path to one) this process can write in: checked without
    creating anything, and an existing results database must open."""
    existing = out.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"--out {out}: {existing} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):     # (os.access says yes to root where it cannot write)
            pass
    except OSError as err:
        raise UsageError(f"--out {out}: cannot write in {existing} ({err.strerror or err})") from None
    db = out / DB_NAME
    if db.exists():
        try:
            with contextlib.closing(sqlite3.connect(db)) as con:
                con.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        except sqlite3.Error as err:
            raise UsageError(f"--out {out}: {db} is not a results database ({err})") from None


def _check_data(datasets, data_dir):
    from .. import data
    from ..data import sources
    for name in dict.fromkeys(data.TASKS[d].dataset for d in datasets):
        try:
            sources.ensure_files(name, data_dir, download_missing=False)
        except (OSError, ValueError) as err:
            # no download here: a sweep should not start fetching files in the middle of a cluster job
            raise UsageError(f"data not available: {' '.join(str(err).split())} (to download into the default "
                             f"cache: python -m lrpnet.data.show {name} --out /tmp/x.png)") from None


def _check_steps(datasets, steps):
    from .. import data
    for d in datasets:
        width = 28 * data.TASKS[d].n_blocks
        for T in steps:
            if width % T:
                raise UsageError(f"task {d!r} (width {width}) cannot be cut into T={T} steps of equal width; "
                                 f"use a task whose width T divides (the main grid uses T=12 on 28x84 tasks)")


def _device_backends():
    from .jobs import DEVICE_BACKENDS
    return DEVICE_BACKENDS


def _backend(device, chosen):
    """The backend of the run: ``--backend``, or the device's default; it must live on ``--device``."""
    from .jobs import job_backend
    try:
        return job_backend(device, chosen)
    except ValueError:
        from .. import backend
        where = backend.DEVICES[chosen]
        raise UsageError(f"--backend {chosen} runs on the {where}, not with --device {device} "
                         f"(use --device {where}, or leave --backend out)") from None


def _check_device(device, need, client):
    from .. import backend
    if client is not None:
        found = client.run(lambda: need in backend.available())
        missing = [w for w, ok in found.items() if not ok]
        if missing:
            raise UsageError(f"--device {device} needs backend {need!r}, missing on cluster workers: "
                             f"{', '.join(missing)}")
    elif device == "gpu" and not backend.gpu_available():
        raise UsageError(f"--device gpu: no usable CUDA GPU here: {backend.gpu_status()[1]} "
                         "(or use --device cpu)")
    elif need not in backend.available():
        raise UsageError(f"--backend {need} needs the {need} package here: pip install {need}")


def _connect(address):
    from .runner import CONNECT_TIMEOUT_S, connect
    if not address.startswith(("tcp://", "tls://", "inproc://", "ucx://")):
        raise UsageError(f"--cluster {address!r}: expected a scheduler address like tcp://HOST:PORT")
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise UsageError("--cluster needs Dask distributed: pip install 'lrpnet[dist]'") from None
    try:
        client = connect(address)
    except (OSError, TimeoutError, ValueError) as err:
        raise UsageError(f"--cluster {address}: no Dask scheduler answered within "
                         f"{CONNECT_TIMEOUT_S} s ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from None
    try:
        client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError):
        client.close()
        raise UsageError(f"--cluster {address}: the scheduler has no workers") from None
    return client


def _validate(args):
    """Everything the run needs, checked; returns (store, profile, archs, datasets, steps, client)
    and sets ``args.backend`` to the backend of the run. The results store is opened last, when
    every other check has passed."""
    from .. import data, models

    grid = cfg.GRIDS[args.grid]
    profile = _profile(args)
    valid_archs = models.names()
    # (an empty list is an error, not the grid's default: --archs "" must not start the whole grid)
    archs = list(grid["archs"]) if args.archs is None else valid_archs if args.archs == ["all"] else args.archs
    _check_names("architecture", archs, valid_archs)
    datasets = list(grid["datasets"]) if args.datasets is None else args.datasets
    _check_names("dataset", datasets, data.task_names())
    _check_names("method", args.methods, _known_methods())
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {args.workers}")
    if not args.claim_timeout > 0:
        raise UsageError(f"--claim-timeout must be > 0 seconds, got {args.claim_timeout}")
    _check_out(Path(args.out))
    if args.cluster is not None and args.workers is not None:
        raise UsageError("give either --workers (local processes) or --cluster (Dask), not both")
    _check_steps(datasets, grid["steps"])
    args.backend = _backend(args.device, args.backend)
    if args.cluster is None:
        _check_device(args.device, args.backend, None)
    client = _connect(args.cluster) if args.cluster else None
    try:
        if client is not None:
            _check_device(args.device, args.backend, client)
        _check_data(datasets, args.data_dir)
        store = _open_store(Path(args.out))
    except UsageError:
        if client is not None:
            client.close()
        raise
    return store, profile, archs, datasets, grid["steps"], client


def _open_store(out):
    from .store import Store
    try:
        return Store(out / DB_NAME)
    except (OSError, sqlite3.Error) as err:      # what ``_check_out`` cannot foresee (a full disk, a lock)
        raise UsageError(f"--out {out}: cannot open the results database {out / DB_NAME}: {err}") from None


# -- running ---------------------------------------------------------------------------------------

def _report(out):
    from .report import write_report
    from .store import Store
    with Store(out / DB_NAME) as store:
        paths = write_report(store, out)
        n = len(store)
    print(f"report of {n} jobs: {paths['markdown']}\n  table:   {paths['csv']}")
    for fig in paths["figures"]:
        print(f"  figure:  {fig}")
    heatmaps = out / "figures" / "heatmaps"
    if heatmaps.is_dir():
        print(f"  heatmaps: {heatmaps}/ ({len(list(heatmaps.glob('*.png')))} grids)")


def _label(config) -> str:
    return f"{config['arch']} on {config['dataset']} T={config['T']} fold={config['fold']}"


def _sweep(args, out, store, profile, archs, datasets, steps, client) -> int:
    from .config import job_configs, job_hash
    from .runner import POLL_S, default_workers, run_jobs
    from .store import DONE, HEARTBEAT_S, WAIT, heartbeat, this_owner

    configs = job_configs(profile, archs, datasets, args.methods, steps)
    done = set() if args.force else store.finished()
    todo = [c for c in configs if job_hash(c) not in done]
    workers = 1 if client is not None else (args.workers or default_workers(args.device, len(todo)))
    workers = max(1, min(workers, len(todo) or 1))
    where = (f"Dask cluster {args.cluster}" if client is not None else
             "this process" if workers == 1 else f"{workers} local processes")
    print(f"sweep: {len(configs)} jobs ({len(configs) - len(todo)} already finished, {len(todo)} to run) "
          f"on {args.device} ({args.backend} backend) in {where}; results: {store.path}", flush=True)
    owner = this_owner()
    redo_before = time.time() if args.force else None      # --force: rows older than this run are redone
    failures, elsewhere, waited, started = [], [], set(), time.perf_counter()
    finished = [len(configs) - len(todo)]

    def claim(config):
        answer = store.claim(job_hash(config), owner, args.claim_timeout, finished_since=redo_before)
        if answer == DONE:
            elsewhere.append(config)
            finished[0] += 1
            print(f"done {finished[0]}/{len(configs)}: {_label(config)}, by another sweep", flush=True)
        elif answer == WAIT and job_hash(config) not in waited:
            waited.add(job_hash(config))
            print(f"waiting: another sweep runs {_label(config)}; this one takes it over if that sweep "
                  f"stops renewing its claim for {args.claim_timeout:g} s", flush=True)
        return answer

    def on_result(result):
        store.put(result)
        finished[0] += 1
        print(f"done {finished[0]}/{len(configs)}: {_label(result['config'])}: accuracy {result['accuracy']:.4f} "
              f"({result['wall_s']:.1f} s)", flush=True)

    def on_error(config, description):
        store.release(owner, job_hash(config))          # another sweep, or a rerun, may try it again
        failures.append(config)
        print(f"FAILED: {_label(config)}:\n{description}", file=sys.stderr, flush=True)

    beat_s = min(HEARTBEAT_S, args.claim_timeout / 4)
    try:
        with heartbeat(store.path, owner, every_s=beat_s):
            run_jobs(todo, out, device=args.device, backend=args.backend, data_dir=args.data_dir,
                     workers=workers, client=client, force=args.force, progress=not args.no_progress,
                     claim=claim, poll_s=min(POLL_S, args.claim_timeout / 2),
                     on_result=on_result, on_error=on_error)
    finally:
        store.release(owner)
        store.close()
        if client is not None:
            client.close()
    print(f"sweep: ran {len(todo) - len(failures) - len(elsewhere)} jobs in {time.perf_counter() - started:.1f} s"
          + (f" ({len(elsewhere)} more were run by other sweeps)" if elsewhere else "")
          + f"; checkpoints: {out / 'checkpoints'}/", flush=True)
    _report(out)
    if failures:
        print(f"sweep: {len(failures)} job(s) failed; rerun the same command to retry them", file=sys.stderr)
        return 1
    return 0


def _interrupt(signum, frame):
    """SIGTERM (kill, a batch system) stops the sweep as Ctrl-C does."""
    raise KeyboardInterrupt


def main(argv=None) -> int:
    try:
        args = parser().parse_args(argv)
        out = Path(args.out)
        if args.report_only:
            if not (out / DB_NAME).is_file():
                raise UsageError(f"--report-only: no results database at {out / DB_NAME}")
            _report(out)
            return 0
        setup = _validate(args)
    except UsageError as err:
        print(f"sweep.py: error: {err}", file=sys.stderr)
        return 2
    on_sigterm = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _sweep(args, out, *setup)
    except KeyboardInterrupt:
        print("sweep: interrupted; no new job started, finished jobs are saved, rerun the same command "
              "to go on", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, on_sigterm)
