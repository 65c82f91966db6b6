"""Peak memory and time of explaining many MAJ-sized samples, each (architecture, method) in a fresh
process, so that one measurement's peak cannot hide another's.

    python benchmarks/explain_memory.py --threads 1                       # 10,000 samples
    python benchmarks/explain_memory.py --n 1000 --archs rlstm --methods dtd,sa

A process builds the model (28x84 inputs, T=12, float32), draws N images uniform in [-1, 1] (every
operation is dense: real images cost the same), calls ``lrpnet.explain`` once with the default chunk
size, and reports the seconds, its peak resident memory (ru_maxrss) and that of the same process
before the call (Python, NumPy, lrpnet, the model and the images). The output array alone is
N x 28 x 84 float32 (94 MB for 10,000).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys

from threads import limit_threads  # benchmarks/threads.py, beside this script

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

CHILD = """
import json, resource, sys, time
import numpy
sys.path.insert(0, {root!r})
import lrpnet
from lrpnet.models import build
def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
model = build({arch!r}, input_shape=(28, 84), T=12, n_classes=10, seed=0)
x = numpy.random.default_rng(0).random(({n}, 28, 84), dtype=numpy.float32) * 2 - 1   # no float64 copy
lrpnet.explain(model, x[:10], {method!r})          # warm-up (Numba compiles here)
before = peak()
started = time.perf_counter()
R = lrpnet.explain(model, x, {method!r})
print(json.dumps(dict(seconds=time.perf_counter() - started, before=before, peak=peak(),
                      shape=list(R.shape))))
"""


def measure(arch, method, n):
    code = CHILD.format(root=ROOT, arch=arch, method=method, n=n)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=10_000, help="samples to explain (default 10,000)")
    p.add_argument("--archs", default="rlstm,convdeep")
    p.add_argument("--methods", default="sa,gb,dtd,lrp-alpha1.5beta0.5,lrp-epsilon")
    p.add_argument("--threads", type=int, default=None, help="BLAS and Numba threads of each process")
    args = p.parse_args(argv)
    if args.n < 1:
        p.error(f"--n must be at least 1, got {args.n}")
    limit_threads(args.threads)
    import numpy
    print(f"# explain {args.n:,} samples of 28x84, default chunk size, one process per row; "
          f"{platform.machine()}, {os.cpu_count()} CPUs, numpy {numpy.__version__}, "
          f"threads {os.environ.get('OMP_NUM_THREADS', 'unset')}, LRPNET_BACKEND="
          f"{os.environ.get('LRPNET_BACKEND', 'unset')}")
    print("| arch | method | seconds | peak MiB before the call | peak MiB of the call |")
    print("|---|---|---:|---:|---:|")
    for arch in args.archs.split(","):
        for method in args.methods.split(","):
            r = measure(arch, method, args.n)
            if "error" in r:
                print(f"| {arch} | {method} | error: {r['error']} | | |", flush=True)
                continue
            print(f"| {arch} | {method} | {r['seconds']:.1f} | {r['before']:.0f} | {r['peak']:.0f} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
