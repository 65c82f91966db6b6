"""The backends side by side: kernels against their NumPy reference, the study's models under each backend.

    python benchmarks/backends.py --threads 1                        # both tables
    python benchmarks/backends.py --quick --out backends.md          # a few minutes on 2 cores
    python benchmarks/backends.py --ops --repeats 50                 # the operation table only
    python benchmarks/backends.py --models --archs convdeep --columns numpy,cupy,torch-cuda

Operation table (``--ops``): every registered operation that has a Numba kernel, on one input of the
study's size (a batch of 50 28x7 slices: conv 5x5x24 SAME on (50, 28, 7, 1), sum pool 2x2/2 SAME on
(50, 28, 7, 24), conv 3x3x32 SAME on (50, 14, 4, 24), sum pool on (50, 14, 4, 32); average and max
pool at the first pool's size), NumPy reference against Numba kernel, and, when a GPU answers, on
CuPy (its kernel, or the reference on CuPy arrays).

Model table (``--models``): deep, rlstm, lstm and convdeep (input 28x84, T=12, 10 classes) under NumPy,
Numba, CuPy and PyTorch (``--columns``):

- a training step: forward, loss, gradient and Adam update (``model.loss_and_grads(x, y, train=True)``
  + ``lrpnet.training.Adam.step``; dropout on, as in ``fit``) on a batch of 50 and of 256;
- explaining ``--explain-n`` samples (1,000; 200 with ``--quick``) with ``lrpnet.explain(..., target=y,
  batch_size=B)``, B = ``--explain-batch-cpu`` on the host and ``--explain-batch-gpu`` on a GPU; the
  relevance comes back to the host, as ``explain`` returns it;
- columns: NumPy (the reference), Numba (its kernels, the reference elsewhere), CuPy (the model moved
  with ``model.to("cupy")``, its inputs already on the device), and PyTorch on the CPU and on CUDA
  running the same graph with the same weights (``benchmarks/torch_models.py``; its logits are checked
  against lrpnet's before timing). PyTorch has no LRP: its columns hold only the ``gradient_x_input``
  row (autograd's gradient of the target logit times the input), the yardstick for lrpnet's walk.

Inputs are random (images uniform in [-1, 1], labels uniform): every operation here is dense and
costs the same on real data. Every time is the best of ``--repeats`` (operations) or
``--model-repeats`` (models) calls after one untimed warm-up call (where Numba compiles and CuPy builds
its kernels); GPU timings synchronize (``backend.synchronize()``, ``torch.cuda.synchronize()``) before
the clock is read. Ratios are side by side in one run: operations numpy / numba, models NumPy's time
/ the column's (above 1: faster than NumPy). A column that cannot run here is left empty and the
reason printed once. The output is Markdown; ``--out FILE`` writes it to FILE too, rewritten after
every row, so a run cut short still leaves the rows it finished.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import subprocess
import sys
import time

from threads import THREAD_ENV, limit_threads  # benchmarks/threads.py, beside this script

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
# numpy, numba, torch and lrpnet are imported in main(), after --threads has set the thread counts

BATCH, SHAPE, T, CLASSES = 50, (28, 84), 12, 10     # the study: 28x84 images in 12 slices of 28x7
ARCHS = ("deep", "rlstm", "lstm", "convdeep")
COLUMNS = ("numpy", "numba", "cupy", "torch-cpu", "torch-cuda")
TITLES = {"numpy": "NumPy", "numba": "Numba", "cupy": "CuPy", "torch-cpu": "PyTorch CPU",
          "torch-cuda": "PyTorch CUDA"}
TRAIN_BATCHES = (50, 256)
METHODS = ("dtd", "lrp-alpha1.5beta0.5", "gradient_x_input")
YARDSTICK = "gradient_x_input"       # the one explanation PyTorch computes too
LR = 2e-4                            # the study's Adam rate (Adam's default here)


class Report:
    """Markdown lines, printed as they come and (with ``path``) rewritten to a file after each."""

    def __init__(self, path=None):
        self.path, self.lines = path, []

    def __call__(self, line=""):
        print(line, flush=True)
        self.lines.append(line)
        if self.path:
            tmp = self.path + ".part"
            with open(tmp, "w", encoding="utf-8") as f:
                f.write("\n".join(self.lines) + "\n")
            os.replace(tmp, self.path)


def short(e, n=300):
    """An exception in one table cell's worth of words (no pipes or newlines to break the table)."""
    return f"{type(e).__name__}: {e}".replace("|", "/").replace("\n", " ")[:n]


def best_of(fn, repeats):
    """Seconds of the fastest of ``repeats`` calls of ``fn()``, after one untimed warm-up call."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


# -- the machine ---------------------------------------------------------------------------------
def cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def nvidia_smi():
    """'name, driver' of GPU 0 from nvidia-smi, or None."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
    except (OSError, subprocess.SubprocessError):
        return None


def cuda_version(v):
    return f"{v // 1000}.{v % 1000 // 10}"


def malloc_setting():
    """What ``lrpnet.memory.keep_freed_memory`` did for this process, in words."""
    from lrpnet.memory import KEEP_ENV, keep_freed_memory
    if keep_freed_memory():
        return "freed memory kept in the process for every column (lrpnet.memory)"
    return f"the C library's defaults ({KEEP_ENV}={os.environ.get(KEEP_ENV, 'unset')}, or not glibc)"


def header(report, args, columns, reasons):
    """The lines that say what ran where: date, machine, threads, versions, GPU, command."""
    import numpy
    from lrpnet import backend
    versions = [f"python {platform.python_version()}", f"numpy {numpy.__version__}"]
    for mod in ("numba", "cupy", "torch"):
        try:
            versions.append(f"{mod} {__import__(mod).__version__}")
        except Exception as e:       # not installed, or a broken install: say which
            versions.append(f"{mod} absent ({type(e).__name__})")
    threads = [f"{v}={os.environ.get(v, 'unset')}" for v in THREAD_ENV]
    if "numba" in columns:
        import numba
        threads.append(f"numba uses {numba.get_num_threads()}")
    if "torch-cpu" in columns or "torch-cuda" in columns:
        import torch
        threads.append(f"torch uses {torch.get_num_threads()}")
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    report(f"# lrpnet backends benchmark, {args.dtype}")
    report()
    report(f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}")
    report(f"- machine: {platform.node()}, {platform.machine()}, {cpu_model()}, {os.cpu_count()} CPUs "
           f"({usable} usable), load average {os.getloadavg()[0]:.1f} at the start")
    report(f"- threads: {', '.join(threads)}")
    report(f"- malloc: {malloc_setting()}")
    report(f"- versions: {', '.join(versions)}")
    gpu = []
    ok, why = backend.gpu_status()
    if ok:
        import cupy
        props = cupy.cuda.runtime.getDeviceProperties(0)
        name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        gpu.append(f"{name} (CuPy {cupy.__version__}, CUDA runtime "
                   f"{cuda_version(cupy.cuda.runtime.runtimeGetVersion())}, driver supports CUDA "
                   f"{cuda_version(cupy.cuda.runtime.driverGetVersion())})")
    else:
        gpu.append(f"CuPy: {why}")
    if "torch-cuda" in columns:
        import torch
        gpu.append(f"torch: {torch.cuda.get_device_name(0)}, CUDA {torch.version.cuda}")
    smi = nvidia_smi()
    if smi:
        gpu.append(f"nvidia-smi: {smi}")
    report(f"- GPU: {'; '.join(gpu)}")
    if ok or "torch-cuda" in columns:
        report(f"- GPU arithmetic: float32, TF32 off in torch (cuBLAS and cuDNN); "
               f"CUPY_TF32={os.environ.get('CUPY_TF32', 'unset')}")
    report(f"- command: python {' '.join(shlex.quote(a) for a in [sys.argv[0]] + sys.argv[1:])}")
    for col, reason in reasons.items():
        report(f"- column {TITLES[col]} left empty: {reason}")


def usable_columns(wanted):
    """({column: True} for those that can run here, {column: reason} for the others)."""
    import importlib.util
    from lrpnet import backend
    can, reasons = [], {}
    for col in wanted:
        if col == "numpy":
            can.append(col)
        elif col == "numba":
            if "numba" in backend.available():
                can.append(col)
            else:
                reasons[col] = "numba is not installed (pip install numba)"
        elif col == "cupy":
            ok, why = backend.gpu_status()
            if ok:
                can.append(col)
            else:
                reasons[col] = why
        else:
            if importlib.util.find_spec("torch") is None:
                reasons[col] = "PyTorch is not installed"
                continue
            import torch
            if col == "torch-cuda" and not torch.cuda.is_available():
                reasons[col] = f"torch {torch.__version__} sees no CUDA device"
            else:
                can.append(col)
    return can, reasons


# -- the operation table -------------------------------------------------------------------------
def op_cases(dtype):
    """{op name: [(description, args)]}: the study-sized inputs of each operation."""
    import numpy
    from lrpnet.layers.conv import window_pads
    rng = numpy.random.default_rng(0)

    def randn(*shape):
        return rng.standard_normal(shape).astype(dtype)

    cases = {}
    for x_shape, (k, c_out) in (((BATCH, 28, 7, 1), (5, 24)), ((BATCH, 14, 4, 24), (3, 32))):
        pads, out_hw = window_pads(x_shape, (k, k), (1, 1), "SAME")
        x, w, b = randn(*x_shape), randn(k, k, x_shape[3], c_out), randn(c_out)
        dz = randn(BATCH, *out_hw, c_out)
        label = f"{x_shape} {k}x{k}x{c_out}"
        cases.setdefault("conv2d_forward", []).append((label, (x, w, b, (1, 1), pads)))
        cases.setdefault("conv2d_input_grad", []).append((label, (w, dz, x_shape, (1, 1), pads)))
        cases.setdefault("conv2d_weight_grad", []).append((label, (x, dz, w.shape, (1, 1), pads)))
    for x_shape, kinds in (((BATCH, 28, 7, 24), ("sumpool2d", "avgpool2d", "maxpool2d")),
                           ((BATCH, 14, 4, 32), ("sumpool2d",))):
        pads, out_hw = window_pads(x_shape, (2, 2), (2, 2), "SAME")
        x, dy = randn(*x_shape), randn(BATCH, *out_hw, x_shape[3])
        geometry = ((2, 2), (2, 2), pads)
        label = f"{x_shape} 2x2/2"
        for kind in kinds:
            cases.setdefault(kind + "_forward", []).append((label, (x,) + geometry))
            if kind == "maxpool2d":
                from lrpnet.layers.pool import maxpool2d_forward
                arg = maxpool2d_forward(x, *geometry)[1]
                cases.setdefault(kind + "_backward", []).append((label, (arg, dy, x_shape) + geometry))
            else:
                cases.setdefault(kind + "_backward", []).append((label, (dy, x_shape) + geometry))
    return cases


def op_table(report, dtype, repeats, gpu):
    """Rows (op, input, numpy ms, numba ms[, cupy ms], ratios) for every operation with a Numba kernel.
    With ``gpu``, a CuPy column: the operation's CuPy kernel, or (marked *) its reference on CuPy arrays."""
    import numpy
    from lrpnet import backend
    import lrpnet.layers  # noqa: F401  (registers the reference operations)
    backend.use("numba")            # imports kernels.numba, which registers the kernels
    backend.use("numpy")
    cases = op_cases(dtype)
    report()
    report(f"## Operations: NumPy reference vs Numba kernel{' and CuPy' if gpu else ''} (ms, best of {repeats})")
    report()
    if gpu:
        report("CuPy: the operation's CuPy kernel, or, marked *, its NumPy reference run on CuPy arrays "
               "(synchronized before the clock is read).")
        report()
        report("| operation | input | NumPy ms | Numba ms | CuPy ms | NumPy / Numba | NumPy / CuPy |")
        report("|---|---|---:|---:|---:|---:|---:|")
    else:
        report("| operation | input | NumPy ms | Numba ms | NumPy / Numba |")
        report("|---|---|---:|---:|---:|")
    for name in backend.operations():
        impls = backend.implementations(name)
        if "numba" not in impls:
            continue
        for label, args in cases.get(name, [("(no benchmark case)", None)]):
            if args is None:
                report(f"| {name} | {label} | | | |" + (" | |" if gpu else ""))
                continue
            ref, kernel = impls["numpy"], impls["numba"]
            a = best_of(lambda: ref(*args), repeats) * 1e3
            b = best_of(lambda: kernel(*args), repeats) * 1e3
            if not gpu:
                report(f"| {name} | {label} | {a:.3f} | {b:.3f} | {a / b:.2f} |")
                continue
            mark = "" if "cupy" in impls else "*"
            fn = impls.get("cupy", ref)
            try:
                with backend.using("cupy"):
                    dargs = tuple(backend.asarray(v) if isinstance(v, numpy.ndarray) else v for v in args)

                    def call():
                        fn(*dargs)
                        backend.synchronize()
                    c = best_of(call, repeats) * 1e3
                report(f"| {name} | {label} | {a:.3f} | {b:.3f} | {c:.3f}{mark} | {a / b:.2f} | {a / c:.2f} |")
            except Exception as e:     # a GPU error in one operation must not end the run
                report(f"| {name} | {label} | {a:.3f} | {b:.3f} | error: {short(e, 120)} | {a / b:.2f} | |")


# -- the model table -----------------------------------------------------------------------------
def make_model(arch, column, dtype):
    """A fresh model (seed 0) living where ``column`` runs (built on the host, moved for "cupy")."""
    from lrpnet import backend
    from lrpnet.models import build
    with backend.using("numpy"):
        model = build(arch, input_shape=SHAPE, T=T, n_classes=CLASSES, seed=0, dtype=dtype)
    return model.to("cupy") if column == "cupy" else model


class Data:
    """The random inputs, made once on the host and copied once to each device that needs them."""

    def __init__(self, n_explain, dtype):
        import numpy
        rng = numpy.random.default_rng(0)
        n_train = max(TRAIN_BATCHES)
        self.host = {"train": (rng.uniform(-1, 1, (n_train,) + SHAPE).astype(dtype),
                               rng.integers(0, CLASSES, n_train)),
                     "explain": (rng.uniform(-1, 1, (n_explain,) + SHAPE).astype(dtype),
                                 rng.integers(0, CLASSES, n_explain))}
        self.copies = {}

    def on(self, column, which):
        """(x, y) of ``which`` ("train" or "explain") as ``column`` takes them."""
        key = (column, which)
        if key not in self.copies:
            x, y = self.host[which]
            if column == "cupy":
                from lrpnet import backend
                with backend.using("cupy"):
                    self.copies[key] = (backend.asarray(x), backend.asarray(y))
            elif column.startswith("torch"):
                import torch
                device = "cuda" if column == "torch-cuda" else "cpu"
                self.copies[key] = (torch.as_tensor(x, device=device), torch.as_tensor(y, device=device))
            else:
                self.copies[key] = (x, y)
        return self.copies[key]


def lrpnet_train(arch, column, data, batch, dtype, repeats):
    from lrpnet import backend
    from lrpnet.training import Adam
    model = make_model(arch, column, dtype)
    x, y = data.on(column, "train")
    x, y = x[:batch], y[:batch]
    with backend.using(column):
        opt = Adam(model.params, lr=LR)
        rng = backend.random_state([0, 0, 1])      # dropout masks drawn where the model lives

        def step():
            loss, grads = model.loss_and_grads(x, y, train=True, rng=rng)
            opt.step(grads)
            backend.synchronize()
        return best_of(step, repeats)


def lrpnet_explain(arch, column, data, method, batch_size, dtype, repeats):
    import lrpnet
    from lrpnet import backend
    model = make_model(arch, column, dtype)
    x, y = data.on(column, "explain")            # on the device for "cupy", as the labels
    with backend.using(column):
        def run():
            lrpnet.explain(model, x, method, target=y, batch_size=batch_size)
            backend.synchronize()
        return best_of(run, repeats)


def torch_sync(column):
    import torch
    if column == "torch-cuda":
        torch.cuda.synchronize()


def torch_train(arch, column, data, batch, dtype, repeats):
    import torch
    from torch_models import study_loss, torch_twin
    net = torch_twin(make_model(arch, "numpy", dtype), "cuda" if column == "torch-cuda" else "cpu")
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    x, y = data.on(column, "train")
    x, y = x[:batch], y[:batch]

    def step():
        opt.zero_grad(set_to_none=True)
        study_loss(net(x), y).backward()
        opt.step()
        torch_sync(column)
    return best_of(step, repeats)


def torch_grad_x_input(arch, column, data, batch_size, dtype, repeats):
    import torch
    from torch_models import for_gradients, torch_twin
    net = for_gradients(torch_twin(make_model(arch, "numpy", dtype), "cuda" if column == "torch-cuda" else "cpu"))
    x, y = data.on(column, "explain")

    def run():
        out = []
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size].detach().requires_grad_(True)
            score = net(xb).gather(1, y[i:i + batch_size, None]).sum()
            grad, = torch.autograd.grad(score, xb)
            out.append((grad * xb).detach().cpu())   # to the host, as lrpnet.explain returns relevance
        torch.cat(out).numpy()
        torch_sync(column)
    return best_of(run, repeats)


def twin_check(arch, dtype, data, columns):
    """Max relative difference of the torch twin's logits from lrpnet's (NumPy) on 50 samples."""
    from torch_models import max_relative_error, torch_twin
    model = make_model(arch, "numpy", dtype)
    x = data.host["explain"][0][:BATCH]
    return {col: max_relative_error(model, torch_twin(model, "cuda" if col == "torch-cuda" else "cpu"), x)
            for col in columns if col.startswith("torch")}


def model_table(report, args, columns, reasons):
    shown = [c for c in args.columns if c in columns or c in reasons]
    data = Data(args.explain_n, args.dtype)
    batch_of = {c: args.explain_batch_gpu if c in ("cupy", "torch-cuda") else args.explain_batch_cpu for c in shown}
    report()
    report(f"## Models: training step and explanation (ms, best of {args.model_repeats}; "
           f"in brackets NumPy's time / the column's)")
    report()
    report(f"Explanations: {args.explain_n} samples, in batches of {args.explain_batch_cpu} on the CPU "
           f"and {args.explain_batch_gpu} on a GPU; training steps: Adam (lr {LR}), dropout on as in fit.")
    report()
    report("| model | task | " + " | ".join(TITLES[c] for c in shown) + " |")
    report("|---|---|" + "---:|" * len(shown))
    errors, checks = [], {}
    tasks = [(f"train step, batch {b}", "train", b) for b in TRAIN_BATCHES] + \
            [(f"explain {args.explain_n}, {m}" + (" (yardstick)" if m == YARDSTICK else ""), "explain", m)
             for m in args.methods]
    for arch in args.archs:
        if any(c.startswith("torch") for c in columns):
            try:
                checks[arch] = twin_check(arch, args.dtype, data, columns)
            except Exception as e:
                errors.append(f"{arch}, torch twin check: {short(e)}")
        for label, kind, what in tasks:
            ms = {}
            for col in shown:
                if col not in columns:
                    continue
                if col.startswith("torch") and kind == "explain" and what != YARDSTICK:
                    continue               # PyTorch has no LRP
                try:
                    if col.startswith("torch"):
                        sec = (torch_train(arch, col, data, what, args.dtype, args.model_repeats) if kind == "train"
                               else torch_grad_x_input(arch, col, data, batch_of[col], args.dtype, args.model_repeats))
                    else:
                        sec = (lrpnet_train(arch, col, data, what, args.dtype, args.model_repeats) if kind == "train"
                               else lrpnet_explain(arch, col, data, what, batch_of[col], args.dtype, args.model_repeats))
                    ms[col] = sec * 1e3
                except Exception as e:     # one failing cell (a GPU error, work in progress) must not end the run
                    ms[col] = None
                    errors.append(f"{arch}, {label}, {TITLES[col]}: {short(e)}")
            base = ms.get("numpy")
            cells = []
            for col in shown:
                if col not in ms:
                    cells.append("")
                elif ms[col] is None:
                    cells.append("error")
                else:
                    ratio = f" ({base / ms[col]:.2f}x)" if base else ""
                    cells.append(f"{ms[col]:.1f}{ratio}")
            report(f"| {arch} | {label} | " + " | ".join(cells) + " |")
    report()
    if checks:
        report("Same graph: max |torch logits - lrpnet logits| / max |lrpnet logits| on 50 samples, "
               "the weights copied: " + "; ".join(
                   f"{arch} " + ", ".join(f"{TITLES[c]} {v:.1e}" for c, v in got.items()) for arch, got in checks.items()))
        report()
    report("PyTorch has no LRP: its columns are empty in the LRP rows; its gradient_x_input row is "
           "autograd's gradient of the target logit times the input (lrpnet's walk of the same quantity "
           "in its own columns).")
    for line in errors:
        report(f"- error: {line}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:]))
    parser.add_argument("--ops", action="store_true", help="the operation table (default: both tables)")
    parser.add_argument("--models", action="store_true", help="the model table (default: both tables)")
    parser.add_argument("--quick", action="store_true",
                        help="fewer repeats (5 per operation, 2 per model cell) and 200 explained samples: "
                             "a few minutes on 2 cores")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed calls per operation; the best counts (default 20, --quick 5)")
    parser.add_argument("--model-repeats", type=int, default=None,
                        help="timed calls per model cell; the best counts (default 5, --quick 2)")
    parser.add_argument("--archs", default=",".join(ARCHS), help=f"models, comma-separated (default {','.join(ARCHS)})")
    parser.add_argument("--columns", default=",".join(COLUMNS),
                        help=f"backends, comma-separated (default all: {','.join(COLUMNS)}); the "
                             f"unavailable ones are left empty")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help=f"explanation methods (default {','.join(METHODS)})")
    parser.add_argument("--explain-n", type=int, default=None, help="samples explained (default 1000, --quick 200)")
    parser.add_argument("--explain-batch-cpu", type=int, default=250,
                        help="explain's batch_size on the host (default 250)")
    parser.add_argument("--explain-batch-gpu", type=int, default=1000,
                        help="explain's batch_size on a GPU (default 1000)")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--threads", type=int, default=None,
                        help="sets NUMBA_NUM_THREADS, the BLAS threads (OMP/OPENBLAS/MKL_NUM_THREADS) and "
                             "torch's; on a busy machine 1 avoids oversubscription")
    parser.add_argument("--out", metavar="FILE", help="also write the Markdown to FILE")
    args = parser.parse_args(argv)
    args.repeats = args.repeats or (5 if args.quick else 20)
    args.model_repeats = args.model_repeats or (2 if args.quick else 5)
    args.explain_n = args.explain_n or (200 if args.quick else 1000)
    for flag in ("repeats", "model_repeats", "explain_n", "explain_batch_cpu", "explain_batch_gpu"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be at least 1, got {getattr(args, flag)}")
    args.archs = [a for a in args.archs.split(",") if a]
    args.columns = [c for c in args.columns.split(",") if c]
    args.methods = [m for m in args.methods.split(",") if m]
    for what, got, known in (("--archs", args.archs, ARCHS), ("--columns", args.columns, COLUMNS)):
        bad = [g for g in got if g not in known]
        if bad:
            parser.error(f"{what}: unknown {', '.join(bad)}; expected some of {', '.join(known)}")
    if not (args.ops or args.models):
        args.ops = args.models = True

    limit_threads(args.threads)
    from lrpnet.memory import keep_freed_memory
    keep_freed_memory()         # before any column runs, so that PyTorch's run under the same malloc
    if args.threads is not None and any(c.startswith("torch") for c in args.columns):
        try:
            import torch
            torch.set_num_threads(args.threads)
        except ImportError:
            pass
    from lrpnet.explain import methods
    bad = [m for m in args.methods if m not in methods()]
    if bad:
        parser.error(f"--methods: unknown {', '.join(bad)}; expected some of {', '.join(methods())}")
    columns, reasons = usable_columns(args.columns)
    if "torch-cuda" in columns:
        import torch
        # float32 arithmetic on both sides: torch's cuDNN convolutions would use TF32 by default,
        # CuPy uses it only with CUPY_TF32=1
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    report = Report(args.out)
    header(report, args, columns, reasons)
    if args.ops:
        if "numba" in columns:
            op_table(report, args.dtype, args.repeats, gpu="cupy" in columns)
        else:
            report()
            report(f"(operation table skipped: {reasons.get('numba', 'numba not in --columns')})")
    if args.models:
        model_table(report, args, columns, reasons)
    report()
    report(f"Load average at the end: {os.getloadavg()[0]:.1f} (on a loaded machine the times spread; "
           f"compare columns of one run).")


if __name__ == "__main__":
    main()
