"""How much of a step the Numba backend can speed up: the share of time in operations that have a kernel.

    python benchmarks/kernel_share.py --threads 1
    python benchmarks/kernel_share.py --threads 1 --archs lstm --tasks train50

Under the NumPy backend, every registered operation that has a Numba kernel (``backend._registry``)
is wrapped with a clock (an operation called inside another, as ``sign`` inside ``lrp_divide``, counts
once, in the outer one); a training step (``model.loss_and_grads`` + Adam, dropout on) at batch 50 and
256, and explaining 200 samples with dtd in one chunk, each run ``--calls`` times after a warm-up.
The share s of the time spent in those operations bounds what any kernel for them can give the whole
(Amdahl): at most 1 / (1 - s) with infinitely fast kernels. The rest (matrix products in BLAS, the
im2col copies, NumPy's other passes, Python) runs the same code under both backends.
Input 28x84, T=12, 10 classes, float32, random inputs.
"""
from __future__ import annotations

import argparse
import collections
import datetime
import os
import sys
import time

from threads import limit_threads  # benchmarks/threads.py, beside this script

TASKS = ("train50", "train256", "explain200")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--archs", default="deep,rlstm,lstm,convdeep")
    p.add_argument("--tasks", default=",".join(TASKS))
    p.add_argument("--calls", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    limit_threads(args.threads)

    import numpy
    import lrpnet
    from lrpnet import backend
    from lrpnet.models import build
    from lrpnet.training import Adam

    backend.implementations("sigmoid_forward")              # loads the Numba kernels into the registry
    spent = collections.Counter()
    depth = [0]

    def clocked(name, fn):
        def run(*a, **k):
            if depth[0]:
                return fn(*a, **k)
            depth[0] += 1
            start = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent[name] += time.perf_counter() - start
                depth[0] -= 1
        return run

    with_kernel = sorted(n for n, impls in backend._registry.items() if "numba" in impls)
    for name in with_kernel:
        backend._registry[name]["numpy"] = clocked(name, backend._registry[name]["numpy"])

    print(f"# Share of time in operations with a Numba kernel (NumPy backend), "
          f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(f"- threads {args.threads}, numpy {numpy.__version__}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}; operations with a kernel: {', '.join(with_kernel)}")
    print("- command: python benchmarks/kernel_share.py " + " ".join(sys.argv[1:]))
    print()
    print("| model | task | ms per call | in kernel operations, ms | share | bound 1 / (1 - share) | largest |")
    print("|---|---|---:|---:|---:|---:|---|")
    rng = numpy.random.default_rng(0)
    with backend.using("numpy"):
        for arch in args.archs.split(","):
            model = build(arch, input_shape=(28, 84), T=12, n_classes=10, seed=0, dtype="float32")
            for task in args.tasks.split(","):
                n = 200 if task == "explain200" else int(task[len("train"):])
                x = rng.uniform(-1, 1, (n, 28, 84)).astype("float32")
                y = rng.integers(0, 10, n)
                if task == "explain200":
                    def call():
                        lrpnet.explain(model, x, "dtd", target=y, batch_size=n)
                else:
                    opt, draws = Adam(model.params, lr=2e-4), numpy.random.default_rng(1)

                    def call():
                        loss, grads = model.loss_and_grads(x, y, train=True, rng=draws)
                        opt.step(grads)
                call()
                spent.clear()
                start = time.perf_counter()
                for _ in range(args.calls):
                    call()
                total = (time.perf_counter() - start) / args.calls
                inside = sum(spent.values()) / args.calls
                top = ", ".join(f"{k} {v / args.calls * 1e3:.1f}" for k, v in spent.most_common(3))
                share = inside / total
                print(f"| {arch} | {task} | {total * 1e3:.1f} | {inside * 1e3:.1f} | {share:.2f} | "
                      f"{1 / (1 - share):.2f} | {top} |", flush=True)
    print()
    print(f"- load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
