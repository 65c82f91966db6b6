"""NumPy reference vs Numba kernels, side by side, at the sizes of the study's ConvDeep.

    python benchmarks/backends.py --threads 1
    python benchmarks/backends.py --repeats 50 --model-repeats 10

Times every registered operation that has a Numba kernel on one input of the study's size (a batch of
50 28x7 slices: conv 5x5x24 SAME on (50, 28, 7, 1), sum pool 2x2/2 SAME on (50, 28, 7, 24), conv
3x3x32 SAME on (50, 14, 4, 24), sum pool on (50, 14, 4, 32); average and max pool at the first pool's
size), then a whole ConvDeep ``loss_and_grads`` on a batch of 50 and ``explain(..., "dtd")`` of 50
samples, under each backend. Every timing is the best of ``--repeats`` runs (time.perf_counter) after a
warm-up call, which is where Numba compiles (or loads its cache). Ratio = numpy / numba: above 1, the
kernel is faster. Inputs are random: every operation here costs the same on any values.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time

from threads import limit_threads  # benchmarks/threads.py, beside this script

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
# numpy, numba and lrpnet are imported in main(), after --threads has set the thread counts

BATCH, SHAPE, T = 50, (28, 84), 12          # the study: 28x84 images in 12 slices of 28x7


def best_of(fn, repeats):
    """Seconds of the fastest of ``repeats`` calls of ``fn()``, after one untimed warm-up call."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


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


def time_ops(dtype, repeats):
    """Rows (op, input, numpy ms, numba ms) for every operation with a Numba kernel."""
    from lrpnet import backend
    import lrpnet.layers  # noqa: F401  (registers the reference operations)
    backend.use("numba")            # imports kernels.numba, which registers the kernels
    backend.use("numpy")
    cases = op_cases(dtype)
    rows = []
    for name in backend.operations():
        impls = backend.implementations(name)
        if "numba" not in impls:
            continue
        for label, args in cases.get(name, [("(no benchmark case)", None)]):
            if args is None:
                rows.append((name, label, None, None))
                continue
            ref, kernel = impls["numpy"], impls["numba"]
            rows.append((name, label, best_of(lambda: ref(*args), repeats) * 1e3,
                         best_of(lambda: kernel(*args), repeats) * 1e3))
    return rows


def time_model(dtype, repeats):
    """Rows for a whole ConvDeep: loss_and_grads on a batch of 50 and explain("dtd") of 50 samples."""
    import numpy
    import lrpnet
    from lrpnet import backend
    from lrpnet.models import build
    model = build("convdeep", input_shape=SHAPE, T=T, n_classes=10, seed=0, dtype=dtype)
    rng = numpy.random.default_rng(0)
    x = rng.uniform(-1, 1, (BATCH,) + SHAPE).astype(dtype)
    y = rng.integers(0, 10, BATCH)
    rows = []
    for what, fn in (("convdeep loss_and_grads", lambda: model.loss_and_grads(x, y)),
                     ("convdeep explain dtd", lambda: lrpnet.explain(model, x, "dtd"))):
        ms = {}
        for name in ("numpy", "numba"):
            with backend.using(name):
                ms[name] = best_of(fn, repeats) * 1e3
        rows.append((what, f"({BATCH}, {SHAPE[0]}, {SHAPE[1]}) T={T}", ms["numpy"], ms["numba"]))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20,
                        help="timed calls per operation; the best counts (default 20)")
    parser.add_argument("--model-repeats", type=int, default=5, help="timed calls of the whole model (default 5)")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--threads", type=int, default=None,
                        help="sets NUMBA_NUM_THREADS and the BLAS threads (OMP/OPENBLAS/MKL_NUM_THREADS); "
                             "on a busy machine 1 avoids oversubscription")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.model_repeats < 1:
        parser.error(f"--repeats and --model-repeats must be at least 1, got {args.repeats}, {args.model_repeats}")
    limit_threads(args.threads)
    import numpy
    import numba
    from lrpnet import backend
    if "numba" not in backend.available():
        sys.exit("numba is not installed here: pip install numba")

    print(f"# numpy reference vs numba kernels, {args.dtype}, best of {args.repeats} "
          f"(whole model: best of {args.model_repeats}), after a warm-up call")
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, numpy {numpy.__version__}, "
          f"numba {numba.__version__}, threads: NUMBA_NUM_THREADS={os.environ.get('NUMBA_NUM_THREADS', 'unset')} "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
          f"load average {os.getloadavg()[0]:.1f}")
    header = f"{'op':<26}{'input':<30}{'numpy ms':>10}{'numba ms':>10}{'ratio':>8}"
    print(header)
    print("-" * len(header))
    rows = time_ops(args.dtype, args.repeats)
    for row in rows:
        print_row(*row)
    for row in time_model(args.dtype, args.model_repeats):
        print_row(*row)


def print_row(op, label, numpy_ms, numba_ms):
    if numpy_ms is None:
        print(f"{op:<26}{label:<30}")
        return
    print(f"{op:<26}{label:<30}{numpy_ms:>10.3f}{numba_ms:>10.3f}{numpy_ms / numba_ms:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
