"""Load time and peak memory of a task's three splits, in a fresh process.

    LRPNET_DATA=../shared/data python benchmarks/load_task.py mnist-maj

Prints the seconds to load train, val and test, to draw one epoch of batches of 50 from train, and
the process's peak resident memory (ru_maxrss) after each stage, beside that of Python + NumPy alone.
"""
import argparse
import resource
import sys
import time

import numpy  # noqa: F401  (imported first so its memory is part of the baseline)


def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # KiB on Linux


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("task", nargs="?", default="mnist-maj")
    args = p.parse_args(argv)
    baseline = peak_mib()
    from lrpnet.data import load_task
    started = time.perf_counter()
    splits = {s: load_task(args.task, s) for s in ("train", "val", "test")}
    loaded = time.perf_counter() - started
    after_load = peak_mib()
    started = time.perf_counter()
    for _ in splits["train"].batches(50, shuffle=True, seed=0, epoch=0):
        pass
    epoch = time.perf_counter() - started
    print(f"{args.task}: " + ", ".join(f"{s} {len(d):,}" for s, d in splits.items()))
    print(f"load train + val + test: {loaded:.2f} s; peak memory {after_load:.0f} MiB "
          f"(Python + NumPy alone: {baseline:.0f} MiB)")
    print(f"one epoch of batches of 50 from train: {epoch:.2f} s; peak memory {peak_mib():.0f} MiB")


if __name__ == "__main__":
    sys.exit(main())
