"""How long one training epoch takes: R-LSTM (or any architecture) on MNIST-MAJ-shaped random data.

    python benchmarks/train_epoch.py                       # rlstm, numpy backend, 100 batches
    python benchmarks/train_epoch.py --arch deep rlstm --backend numpy numba --batches 50

Runs ``lrpnet.training.fit`` for a given number of batches of 50 random 28x84 images (float32, dropout
on, Adam) and extrapolates to one epoch of MNIST-MAJ (48,000 samples = 960 batches) and to the study's
100 epochs. The first batch is run once before timing (warm-up: Numba compiles, caches fill).
Random pixels in [-1, 1] cost the same as real ones: every operation here is dense.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time

from threads import limit_threads  # benchmarks/threads.py, beside this script

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
# numpy and lrpnet are imported in main(), after --threads has set the BLAS thread count

EPOCH_SAMPLES = 48_000       # MNIST-MAJ training split
SHAPE, T = (28, 84), 12


def time_training(arch, backend_name, batches, batch_size, dtype="float32", seed=0):
    """Seconds per batch of ``fit`` for ``arch`` on ``backend_name`` (after one warm-up batch)."""
    import numpy
    from lrpnet import backend
    from lrpnet.models import build
    from lrpnet.training import ArrayDataset, fit
    with backend.using(backend_name):
        model = build(arch, input_shape=SHAPE, T=T, n_classes=10, seed=seed, dtype=dtype)
        rng = numpy.random.default_rng(seed)
        n = batches * batch_size
        data = ArrayDataset(rng.uniform(-1, 1, (n,) + SHAPE).astype(numpy.float32), rng.integers(0, 10, n))
        fit(model, data, epochs=1, batch_size=batch_size, max_batches=1, progress=False, seed=seed)   # warm-up
        start = time.perf_counter()
        fit(model, data, epochs=1, batch_size=batch_size, max_batches=batches, progress=False, seed=seed)
        return (time.perf_counter() - start) / batches, model.num_params()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", nargs="+", default=["rlstm"], help="architectures (default: rlstm)")
    parser.add_argument("--backend", nargs="+", default=["numpy"], help="backends (default: numpy)")
    parser.add_argument("--batches", type=int, default=100, help="batches to time (default: 100)")
    parser.add_argument("--batch-size", type=int, default=50, help="batch size (default: 50, the study's)")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--threads", type=int, default=None,
                        help="BLAS threads (sets OMP/OPENBLAS/MKL_NUM_THREADS; on a busy machine 1 avoids "
                             "oversubscription, which can make numpy ten times slower)")
    args = parser.parse_args(argv)
    limit_threads(args.threads)
    import numpy
    from lrpnet import backend

    per_epoch = EPOCH_SAMPLES / args.batch_size
    print(f"# training time, {args.batches} batches of {args.batch_size} x {SHAPE[0]}x{SHAPE[1]}, T={T}, "
          f"{args.dtype}; epoch = {EPOCH_SAMPLES:,} samples ({per_epoch:g} batches)")
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, numpy {numpy.__version__}, "
          f"BLAS threads: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
          f"load average {os.getloadavg()[0]:.1f}")
    header = f"{'arch':<14}{'backend':<9}{'params':>9}{'ms/batch':>11}{'samples/s':>11}{'s/epoch':>10}{'h/100 ep':>10}"
    print(header)
    print("-" * len(header))
    for arch in args.arch:
        for name in args.backend:
            if name not in backend.available():
                print(f"{arch:<14}{name:<9}  (backend not available here)")
                continue
            sec, n_params = time_training(arch, name, args.batches, args.batch_size, args.dtype)
            epoch = sec * per_epoch
            print(f"{arch:<14}{name:<9}{n_params:>9,}{sec * 1e3:>11.1f}{args.batch_size / sec:>11.0f}"
                  f"{epoch:>10.0f}{epoch * 100 / 3600:>10.2f}", flush=True)


if __name__ == "__main__":
    main()
