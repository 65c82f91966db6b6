"""Freed memory kept in the process (``lrpnet.memory``) against glibc's defaults, side by side.

    python benchmarks/keep_memory.py --threads 1
    python benchmarks/keep_memory.py --threads 1 --archs convdeep --batches 256 --torch

The setting is for a whole process, and what glibc does with its defaults depends on what the process
did before (it raises its threshold for mapping blocks alone after freeing large ones), so every cell
runs in a fresh child process that does only that cell: once with ``LRPNET_KEEP_MEMORY=0`` (glibc hands
freed memory back) and once without (kept), alternating ``--rounds`` times; a cell is the best of the
rounds. A child times ``--calls`` calls after one untimed: a training step (Adam, dropout on) of an
``--archs`` model at a ``--batches`` size; with ``--torch``, the PyTorch twin's training step
(``benchmarks/torch_models.py``) under the same malloc; an explanation of ``--n`` samples with
``--method``. Reported: ms per call (best, and the median of the best round) and the page faults the
process took per call (``ru_minflt``). Random inputs in [-1, 1], 28x84, T=12, 10 classes, float32.
A sweep's worker, which trains one model after another at batch 50, is nearer a fresh process than
``benchmarks/backends.py``, where every model runs in one process.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

from side_by_side import footer, header  # benchmarks/side_by_side.py, beside this script

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, os.pardir)
SHAPE, T, CLASSES, LR = (28, 84), 12, 10, 2e-4


def timed(fn, calls):
    """(best ms, median ms, page faults per call) of ``calls`` calls of fn after one untimed."""
    fn()
    times = []
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    times.sort()
    return 1e3 * times[0], 1e3 * times[len(times) // 2], faults / calls


def child(args):
    """One cell (``args.task`` of ``args.archs[0]`` at ``args.batches[0]``) as JSON on stdout:
    [best, median, faults]."""
    sys.path.insert(0, ROOT)
    sys.path.insert(0, HERE)
    from threads import limit_threads
    limit_threads(args.threads)
    import numpy
    import lrpnet
    from lrpnet import backend
    from lrpnet.memory import keep_freed_memory
    from lrpnet.models import build
    from lrpnet.training import Adam
    keep_freed_memory()
    arch, batch = args.archs[0], args.batches[0]
    rng = numpy.random.default_rng(0)
    x = rng.uniform(-1, 1, (batch,) + SHAPE).astype("float32")
    y = rng.integers(0, CLASSES, batch)
    model = build(arch, input_shape=SHAPE, T=T, n_classes=CLASSES, seed=0)
    if args.task == "train":
        opt, drop = Adam(model.params, lr=LR), backend.random_state([0, 0, 1])

        def call():
            _, grads = model.loss_and_grads(x, y, train=True, rng=drop)
            opt.step(grads)
    elif args.task == "torch":
        import torch
        from torch_models import training_step
        torch.set_num_threads(args.threads)
        call = training_step(model, x, y, LR)
    else:
        def call():
            lrpnet.explain(model, x, args.method, target=y)
    print(json.dumps(timed(call, args.calls)))


def cells_of(args):
    """(arch, task name, child arguments) of every cell, in table order."""
    for arch in args.archs:
        for batch in args.batches:
            yield arch, f"train step, batch {batch}", ["--archs", arch, "--batches", str(batch), "--task", "train"]
            if args.torch:
                yield arch, f"PyTorch train step, batch {batch}", ["--archs", arch, "--batches", str(batch),
                                                                   "--task", "torch"]
        if args.n:
            yield arch, f"explain {args.n}, {args.method}", ["--archs", arch, "--batches", str(args.n),
                                                             "--task", "explain", "--method", args.method]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archs", default="deep,rlstm,lstm,convdeep")
    p.add_argument("--batches", default="50,256")
    p.add_argument("--n", type=int, default=1000, help="samples to explain (0: no explanation row)")
    p.add_argument("--method", default="dtd")
    p.add_argument("--torch", action="store_true", help="also the PyTorch twin's training step")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--calls", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--task", default="train", help=argparse.SUPPRESS)
    args = p.parse_args()
    args.archs = args.archs.split(",")
    args.batches = [int(b) for b in args.batches.split(",")]
    if args.child:
        return child(args)

    cells = {}                  # (arch, task, setting) -> best (best, median, faults) over the rounds
    common = [sys.executable, os.path.abspath(__file__), "--child", "--threads", str(args.threads),
              "--calls", str(args.calls)]
    header("Freed memory kept (lrpnet.memory) against glibc's defaults", args.threads)
    for _ in range(args.rounds):
        for arch, task, cell in cells_of(args):
            for setting, value in (("handed back", "0"), ("kept", "1")):
                env = dict(os.environ, LRPNET_KEEP_MEMORY=value)
                out = subprocess.run(common + cell, env=env, check=True, capture_output=True, text=True).stdout
                best, median, faults = json.loads(out.strip().splitlines()[-1])
                key = (arch, task, setting)
                if key not in cells or best < cells[key][0]:
                    cells[key] = (best, median, faults)
    print("| model | task | handed back: ms (median), faults per call | kept: ms (median), faults per call "
          "| handed back / kept |")
    print("|---|---|---:|---:|---:|")
    for arch, task in dict.fromkeys((a, t) for a, t, _ in cells):
        back, kept = cells[(arch, task, "handed back")], cells[(arch, task, "kept")]
        print(f"| {arch} | {task} | {back[0]:.1f} ({back[1]:.1f}), {back[2]:,.0f} | {kept[0]:.1f} ({kept[1]:.1f}), "
              f"{kept[2]:,.0f} | {back[0] / kept[0]:.2f} |")
    footer()


if __name__ == "__main__":
    main()
