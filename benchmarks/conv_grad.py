"""Convolution input gradient and patch reuse, before and after, side by side in one process.

    python benchmarks/conv_grad.py --threads 1 --before 2084f86 --explain   # from the repository root
    python benchmarks/conv_grad.py --threads 1 --before 2084f86 --ops-only  # the operation tables only

"Before" is ``lrpnet/layers/conv.py`` and ``kernels/numba/conv.py`` of the commit ``--before``, read
with ``git show`` into a temporary directory (registration decorators removed, so importing them
registers nothing) and swapped in around each timed call: the three conv operations of the registry
(the NumPy reference and, under Numba, the old kernels) and ``Conv2D``'s forward, input_grad and
param_grads. "After" is the working tree.

Tables: (0) the Numba conv kernels of ``--before`` against the NumPy reference now, at batch 1, 4,
50 and 256; (1) conv2d_input_grad, and the weight gradient of a training step (before: im2col again;
after: from the forward pass's patches), on the study's conv geometries, before and after alternating
call by call, best of N; (2) a training step (``model.loss_and_grads(x, y, train=True)`` + Adam) of
convdeep and conv+deep (input 28x84, T=12) at batch 50 and 256 under NumPy and Numba: before, after
(as shipped: ``conv.KEEP_PATCHES_BYTES`` = 0, no patches kept), and after with that budget set to
256 MiB and to keep every patch; with ``--explain``, explaining 200 samples (dtd, gradient_x_input), before and after. Model
cells alternate in rounds, each variant running three calls in a row of which the first is untimed,
so that what one variant leaves in the allocator does not land on another's clock; each cell is the
best wall-clock time / the best CPU time of the process (CPU time leaves out what other processes
take from a shared machine). Before timing, one step's loss and gradients and each explanation are
compared between before and after.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import subprocess
import sys
import tempfile
import time

from threads import limit_threads  # benchmarks/threads.py, beside this script

ROOT = os.getcwd()


def load_before(commit, tmp):
    """The commit's conv reference and Numba conv kernels as modules conv_before, numba_conv_before."""
    fixes = {"lrpnet/layers/conv.py": ("conv_before", [("from .. import backend", "from lrpnet import backend"),
                                                       ("from .base import", "from lrpnet.layers.base import")]),
             "kernels/numba/conv.py": ("numba_conv_before", [])}
    mods = []
    for path, (name, subs) in fixes.items():
        src = subprocess.run(["git", "show", f"{commit}:{path}"], cwd=ROOT, check=True, capture_output=True,
                             text=True).stdout
        lines = [ln for ln in src.splitlines() if not ln.startswith("@backend.register(")]
        src = "\n".join(lines) + "\n"
        for a, b in subs:
            src = src.replace(a, b)
        with open(os.path.join(tmp, name + ".py"), "w") as f:
            f.write(src)
    sys.path.insert(0, tmp)
    for name in ("conv_before", "numba_conv_before"):
        mods.append(importlib.import_module(name))
    return mods


OPS = ("conv2d_forward", "conv2d_input_grad", "conv2d_weight_grad")
METHODS = ("forward", "input_grad", "param_grads")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--before", default="HEAD")
    p.add_argument("--op-repeats", type=int, default=20)
    p.add_argument("--model-repeats", type=int, default=3)
    p.add_argument("--explain", action="store_true")
    p.add_argument("--ops-only", action="store_true", help="the operation tables only")
    p.add_argument("--archs", default="convdeep,conv+deep")
    p.add_argument("--backends", default="numpy,numba")
    args = p.parse_args()
    limit_threads(args.threads)
    sys.path.insert(0, ROOT)
    import numpy
    import lrpnet
    from lrpnet import backend
    from lrpnet.layers import conv as after
    from lrpnet.layers.conv import Conv2D, window_pads
    from lrpnet.models import build
    from lrpnet.training import Adam
    backend.use("numba")
    backend.use("numpy")
    tmp = tempfile.mkdtemp(prefix="conv_before_")
    old, old_nb = load_before(args.before, tmp)
    commit = subprocess.run(["git", "rev-parse", "--short", args.before], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()

    @contextlib.contextmanager
    def before(backend_name):
        saved = {op: dict(backend._registry[op]) for op in OPS}
        saved_methods = {m: Conv2D.__dict__[m] for m in METHODS}
        for op in OPS:
            backend._registry[op]["numpy"] = getattr(old, op)
            if backend_name == "numba":
                backend._registry[op]["numba"] = getattr(old_nb, op)
        for m in METHODS:
            setattr(Conv2D, m, getattr(old.Conv2D, m))
        try:
            yield
        finally:
            for op in OPS:
                backend._registry[op] = saved[op]
            for m in METHODS:
                setattr(Conv2D, m, saved_methods[m])

    def side_by_side(fn_before, fn_after, repeats):  # noqa: E306
        """(best before, best after) in ms, the two alternating call by call after one warm-up each."""
        fn_before(), fn_after()
        b = a = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            fn_before()
            b = min(b, time.perf_counter() - t)
            t = time.perf_counter()
            fn_after()
            a = min(a, time.perf_counter() - t)
        return b * 1e3, a * 1e3

    import numba
    print(f"# Convolution input gradient and patch reuse: before = {commit}, after = working tree")
    print(f"threads {args.threads} (BLAS and Numba), numpy {numpy.__version__}, numba {numba.__version__}, "
          f"load average {os.getloadavg()[0]:.1f} at the start")
    print()
    print(f"## Operations, NumPy reference (ms, best of {args.op_repeats})")
    print()
    print("| operation | input | before ms | after ms | before / after |")
    print("|---|---|---:|---:|---:|")
    rng = numpy.random.default_rng(0)
    for n in (50, 256):
        for x_shape, k, c_out, where in (((n, 28, 7, 1), 5, 24, "convdeep conv1"), ((n, 14, 4, 24), 3, 32, "convdeep conv2"),
                                         ((n, 28, 7, 25), 5, 24, "conv+deep conv1"), ((n, 14, 4, 56), 3, 32, "conv+deep conv2")):
            pads, out_hw = window_pads(x_shape, (k, k), (1, 1), "SAME")
            x = rng.standard_normal(x_shape).astype("float32")
            w = rng.standard_normal((k, k, x_shape[3], c_out)).astype("float32")
            dz = rng.standard_normal((n, *out_hw, c_out)).astype("float32")
            label = f"{x_shape} {k}x{k}x{c_out} ({where})"
            ref = old.conv2d_input_grad(w, dz, x_shape, (1, 1), pads)
            got = after.conv2d_input_grad(w, dz, x_shape, (1, 1), pads)
            assert float(numpy.abs(got - ref).max()) <= 1e-5 * float(numpy.abs(ref).max()), label
            b, a = side_by_side(lambda: old.conv2d_input_grad(w, dz, x_shape, (1, 1), pads),
                                lambda: after.conv2d_input_grad(w, dz, x_shape, (1, 1), pads), args.op_repeats)
            print(f"| conv2d_input_grad | {label} | {b:.3f} | {a:.3f} | {b / a:.2f} |", flush=True)
            patches = after.conv2d_patches(x, (k, k), (1, 1), pads)
            b, a = side_by_side(lambda: old.conv2d_weight_grad(x, dz, w.shape, (1, 1), pads),
                                lambda: after.conv2d_weight_grad_from_patches(patches, dz, w.shape), args.op_repeats)
            print(f"| weight grad in training (before: conv2d_weight_grad; after: _from_patches) | {label} | "
                  f"{b:.3f} | {a:.3f} | {b / a:.2f} |", flush=True)

    print()
    print(f"## The Numba conv kernels of {commit} against the NumPy reference now (ms, best of {args.op_repeats})")
    print()
    print("| operation | input | NumPy reference (after) ms | Numba kernel (before) ms | NumPy / Numba |")
    print("|---|---|---:|---:|---:|")
    for n in (1, 4, 50, 256):
        for x_shape, k, c_out, where in (((n, 28, 7, 1), 5, 24, "convdeep conv1"), ((n, 14, 4, 24), 3, 32, "convdeep conv2"),
                                         ((n, 28, 7, 25), 5, 24, "conv+deep conv1"), ((n, 14, 4, 56), 3, 32, "conv+deep conv2")):
            pads, out_hw = window_pads(x_shape, (k, k), (1, 1), "SAME")
            x = rng.standard_normal(x_shape).astype("float32")
            w = rng.standard_normal((k, k, x_shape[3], c_out)).astype("float32")
            b = rng.standard_normal(c_out).astype("float32")
            dz = rng.standard_normal((n, *out_hw, c_out)).astype("float32")
            label = f"{x_shape} {k}x{k}x{c_out} ({where})"
            for name, args_ in (("conv2d_forward", (x, w, b, (1, 1), pads)),
                                ("conv2d_input_grad", (w, dz, x_shape, (1, 1), pads)),
                                ("conv2d_weight_grad", (x, dz, w.shape, (1, 1), pads))):
                ref, kern = getattr(after, name), getattr(old_nb, name)
                a, b_ = side_by_side(lambda: ref(*args_), lambda: kern(*args_), args.op_repeats)
                print(f"| {name} | {label} | {a:.3f} | {b_:.3f} | {a / b_:.2f} |", flush=True)
    if args.ops_only:
        return

    print()
    print(f"## Models (ms, best of {args.model_repeats} rounds x 2 timed calls: wall clock / CPU time; "
          f"input 28x84, T=12, 10 classes, float32)")
    print()
    print("Training steps: before; after as shipped (conv.KEEP_PATCHES_BYTES = 0: no patches kept); and "
          "after with the patches kept up to 256 MiB per tape, and all kept. Explanations: before and after.")
    print()
    print("| model | task | backend | before | after | before / after (wall) | after, patches kept up to "
          "256 MiB | after, all patches kept |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    data_rng = numpy.random.default_rng(0)
    x_all = data_rng.uniform(-1, 1, (256, 28, 84)).astype("float32")
    y_all = data_rng.integers(0, 10, 256)
    notes = []
    shipped = after.KEEP_PATCHES_BYTES
    budgets = {"after": shipped, "256": 256 * 2 ** 20, "all": float("inf")}

    @contextlib.contextmanager
    def variant(v, bk):
        if v == "before":
            with before(bk):
                yield
            return
        after.KEEP_PATCHES_BYTES = budgets[v]
        try:
            yield
        finally:
            after.KEEP_PATCHES_BYTES = shipped

    def best_of(fns, repeats, block=3):
        """{name: (best wall ms, best cpu ms)}. Rounds: in each, every function runs ``block`` times in
        a row, the first call untimed (so that what one variant leaves in the allocator does not
        land on another's clock); ``repeats`` rounds, alternating the variants."""
        wall, cpu = {k: float("inf") for k in fns}, {k: float("inf") for k in fns}
        for _ in range(repeats):
            for k, fn in fns.items():
                fn()
                for _ in range(block - 1):
                    t, c = time.perf_counter(), time.process_time()
                    fn()
                    wall[k] = min(wall[k], time.perf_counter() - t)
                    cpu[k] = min(cpu[k], time.process_time() - c)
        return {k: (wall[k] * 1e3, cpu[k] * 1e3) for k in fns}

    def cell(t):
        return f"{t[0]:.0f} / {t[1]:.0f}"

    for arch in args.archs.split(","):
        for bk in args.backends.split(","):
            with backend.using(bk):
                # one step's loss and gradients, before and after, on the same weights
                model = build(arch, input_shape=(28, 84), T=12, n_classes=10, seed=0, dtype="float32")
                with before(bk):
                    l0, g0 = model.loss_and_grads(x_all[:50], y_all[:50], train=True, rng=backend.random_state([0]))
                l1, g1 = model.loss_and_grads(x_all[:50], y_all[:50], train=True, rng=backend.random_state([0]))
                worst = max(float(numpy.abs(g1[k] - g0[k]).max() / (numpy.abs(g0[k]).max() + 1e-30)) for k in g0)
                notes.append(f"{arch} {bk}: loss before {l0:.7f} after {l1:.7f}; max over parameters of "
                             f"max|g_after - g_before| / max|g_before| = {worst:.1e}")
                for batch in (50, 256):
                    x, y = x_all[:batch], y_all[:batch]
                    if bk == args.backends.split(",")[0]:
                        for v in ("256", "all"):
                            with variant(v, bk):
                                tape = model.trace(x, train=True, rng=backend.random_state([0]))[0]
                            kept = sum(nd.cache[1].nbytes for nd in tape.nodes
                                       if isinstance(nd.layer, Conv2D) and nd.cache[1] is not None)
                            notes.append(f"{arch} batch {batch}: patches kept by a training tape, budget {v}: "
                                         f"{kept / 2 ** 20:.0f} MiB")
                            del tape
                    models = {v: build(arch, input_shape=(28, 84), T=12, n_classes=10, seed=0, dtype="float32")
                              for v in ("before", "after", "256", "all")}
                    opts = {v: Adam(m.params, lr=2e-4) for v, m in models.items()}
                    rngs = {v: backend.random_state([0, 0, 1]) for v in models}

                    def step(v):
                        with variant(v, bk):
                            loss, grads = models[v].loss_and_grads(x, y, train=True, rng=rngs[v])
                            opts[v].step(grads)
                    t = best_of({v: (lambda v=v: step(v)) for v in models}, args.model_repeats)
                    print(f"| {arch} | train step, batch {batch} | {bk} | {cell(t['before'])} | {cell(t['after'])} | "
                          f"{t['before'][0] / t['after'][0]:.2f} | {cell(t['256'])} | {cell(t['all'])} |", flush=True)
                if args.explain:
                    xe, ye = x_all[:200], y_all[:200]
                    for method in ("dtd", "gradient_x_input"):
                        def expl(v, method=method):
                            with variant(v, bk):
                                return lrpnet.explain(model, xe, method, target=ye, batch_size=250)
                        r_b, r_a = expl("before"), expl("after")
                        diff = float(numpy.abs(r_a - r_b).max() / numpy.abs(r_b).max())
                        notes.append(f"{arch} {bk} explain {method}: max|R_after - R_before| / max|R_before| = {diff:.1e}")
                        t = best_of({v: (lambda v=v: expl(v)) for v in ("before", "after")}, args.model_repeats)
                        print(f"| {arch} | explain 200, {method} | {bk} | {cell(t['before'])} | {cell(t['after'])} | "
                              f"{t['before'][0] / t['after'][0]:.2f} | | |", flush=True)
    print()
    for line in notes:
        print(f"- {line}")
    print(f"- load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
