"""A training step of the code at an older commit against the working tree, each in fresh processes.

    python benchmarks/commit_step.py --before 2084f86 --archs conv+deep,conv+rlstm_sd --batches 50
    python benchmarks/commit_step.py --before 2084f86 --archs conv+deep --batches 256 --calls 2

``benchmarks/before_after.py`` swaps single definitions in one process; this compares whole trees, for
the changes no swap can hold (the malloc settings of ``lrpnet.memory``, several files at once). The
older tree is checked out with ``git worktree`` into a temporary folder (removed at the end); each cell
runs in a fresh process of each tree, alternating ``--rounds`` times, and is the best of its ``--calls``
timed calls after one untimed. A process builds the model (seed 0, 28x84, T=12, 10 classes, float32)
and times ``model.loss_and_grads(x, y, train=True, rng=...)`` + Adam on random inputs in [-1, 1], with
whatever the tree's own code does about memory.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

from side_by_side import footer, header  # benchmarks/side_by_side.py, beside this script

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

CHILD = """
import os, sys, time
from threadpoolctl import threadpool_limits
threadpool_limits(limits={threads})
import numpy
from lrpnet import backend
from lrpnet.models import build
from lrpnet.training import Adam
model = build({arch!r}, input_shape=(28, 84), T=12, n_classes=10, seed=0)
rng = numpy.random.default_rng(0)
x = rng.uniform(-1, 1, ({batch}, 28, 84)).astype("float32")
y = rng.integers(0, 10, {batch})
opt, drop = Adam(model.params, lr=2e-4), backend.random_state([0, 0, 1])
def step():
    _, grads = model.loss_and_grads(x, y, train=True, rng=drop)
    opt.step(grads)
step()
best = float("inf")
for _ in range({calls}):
    start = time.perf_counter()
    step()
    best = min(best, time.perf_counter() - start)
print(best * 1e3)
"""


def run_in(tree, arch, batch, calls, threads):
    env = dict(os.environ, PYTHONPATH=tree, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    code = CHILD.format(arch=arch, batch=batch, calls=calls, threads=threads)
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tree, check=True, capture_output=True,
                         text=True).stdout
    return float(out.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", required=True, help="the older commit")
    p.add_argument("--archs", default="conv+deep")
    p.add_argument("--batches", default="50")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--calls", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", args.before], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout.strip()
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True, capture_output=True,
                          text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.strip()
    header(f"A training step at {commit} against the working tree ({head}{', with changes' if dirty else ''})", args.threads)
    print(f"| model | batch | {commit} (ms) | working tree (ms) | {commit} / working tree |")
    print("|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as folder:
        old = os.path.join(folder, "tree")
        subprocess.run(["git", "worktree", "add", "--detach", old, args.before], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            for arch in args.archs.split(","):
                for batch in [int(b) for b in args.batches.split(",")]:
                    best = {"old": float("inf"), "new": float("inf")}
                    for _ in range(args.rounds):
                        best["old"] = min(best["old"], run_in(old, arch, batch, args.calls, args.threads))
                        best["new"] = min(best["new"], run_in(ROOT, arch, batch, args.calls, args.threads))
                    print(f"| {arch} | {batch} | {best['old']:.1f} | {best['new']:.1f} | "
                          f"{best['old'] / best['new']:.2f} |", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", old], cwd=ROOT, capture_output=True)
    footer()


if __name__ == "__main__":
    main()
