"""The pointwise Numba kernels against their NumPy references, and the whole models under both backends:

    python -m kernels.numba.benchmark_pointwise --ops              # each operation at the study's sizes
    python -m kernels.numba.benchmark_pointwise --models           # training steps and explanations
    python -m kernels.numba.benchmark_pointwise --models --archs rlstm --rounds 31

What decided which kernels are registered (``kernels/numba/__init__.py``) and the sweep's CPU backend
(``lrpnet/sweep/jobs.py``, ``DEVICE_BACKENDS``); the figures are in benchmarks/RESULTS.md.

One thread (``--threads``, default 1: NUMBA_NUM_THREADS and the BLAS threads; the script restarts
itself with them set, since BLAS reads them once, at import). Everything is side by side in one
process, interleaved, because the development machine is shared and its speed drifts:

- ``--ops``: for every operation, reference and kernel are timed in alternating rounds of many calls
  (a round lasts about 2 ms); the table gives the best round of each, in microseconds per call. The
  sizes are those the study's models call them with: R-LSTM (50, 72) per step and (256, 72) at batch
  256; Deep (50, 256) and (50, 128); the sigmoid gates of R-LSTM and LSTM computed together, (50, 216)
  and (50, 384); ConvDeep's relevance (50, 28, 7, 24) and (50, 14, 4, 32); bias
  vectors (24 to 256 entries); Adam on every parameter of ``rlstm`` and ``convdeep``. Two candidate
  kernels that lost, and so are not registered, are timed too (``_candidates``: ``negsoftplus`` and
  ``gatemul_backward``, behind the same test of their arguments as a registered kernel), so that the
  record can be re-measured on another machine.
- ``--models``: a training step (``model.loss_and_grads(train=True)`` + ``Adam.step``) at batch 50 and
  256 and ``lrpnet.explain`` of 200 samples (dtd, lrp-alpha1.5beta0.5), each under numpy and numba in
  alternating rounds (the order flips every round); the table gives the best time of each, their
  ratio, and the median of the per-round ratios.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from lrpnet.threads import THREAD_ENV

ACTIVATIONS = [(50, 72), (256, 72), (50, 256), (50, 128)]          # R-LSTM per step, batch 256; Deep
GATES = [(50, 216), (50, 384)]                  # R-LSTM's and LSTM's gates in one product (cells/gates.py)
RELEVANCE = [(50, 28, 7, 24), (50, 14, 4, 32)]                      # ConvDeep's conv outputs
BIASES = [(24,), (72,), (128,), (256,)]


# -- the candidates that lost (not registered; timed so that the record can be re-measured) -------------
def _candidates():
    import math

    import numpy
    from numba import njit

    from .elementwise import flat

    @njit(cache=True, fastmath=False, error_model="numpy")
    def negsoftplus(b):
        """-logaddexp(0, b) in one loop, branch for branch as NumPy's npy_logaddexp."""
        y = numpy.empty_like(b)
        log2 = b.dtype.type(math.log(2.0))
        bf, yf = flat(b), flat(y)
        for i in range(yf.size):
            v = bf[i]
            if v == 0:
                s = log2
            elif v < 0:
                s = math.log1p(math.exp(v))
            elif v > 0:
                s = v + math.log1p(math.exp(-v))
            else:
                s = v
            yf[i] = -s
        return y

    @njit(cache=True, fastmath=False, error_model="numpy")
    def gatemul_backward(gate, signal, dy):
        """(dy * signal, dy * gate), one vectorizable loop per product."""
        dgate, dsignal = numpy.empty_like(dy), numpy.empty_like(dy)
        gf, sf, dyf, dgf, dsf = flat(gate), flat(signal), flat(dy), flat(dgate), flat(dsignal)
        for i in range(dyf.size):
            dgf[i] = dyf[i] * sf[i]
        for i in range(dyf.size):
            dsf[i] = dyf[i] * gf[i]
        return dgate, dsignal

    from .elementwise import kernel_applies, reference

    def negsoftplus_op(b):              # as it would be registered: the same test as every kernel's
        return negsoftplus(b) if kernel_applies(b) else reference("negsoftplus")(b)

    def gatemul_backward_op(gate, signal, dy):
        if not kernel_applies(gate, signal, dy):
            return reference("gatemul_backward")(gate, signal, dy)
        return gatemul_backward(gate, signal, dy)

    return {"negsoftplus": negsoftplus_op, "gatemul_backward": gatemul_backward_op}


# -- operations ------------------------------------------------------------------------------------------
def op_cases(dtype):
    """{op name: [(label, args)]} at the sizes the study's models call them with."""
    import numpy
    from lrpnet import backend
    from lrpnet.models import build
    rng = numpy.random.default_rng(0)

    def randn(shape):
        return rng.standard_normal(shape).astype(dtype)

    def sig(shape):
        return (1 / (1 + numpy.exp(-randn(shape)))).astype(dtype)
    cases = {
        "sigmoid_forward": [(s, (randn(s),)) for s in ACTIVATIONS + GATES + BIASES],
        "negsoftplus_grad": [(s, (randn(s), randn(s))) for s in BIASES],
        "negsoftplus": [(s, (randn(s),)) for s in BIASES],
        "sigmoid_backward": [(s, (sig(s), randn(s))) for s in ACTIVATIONS + GATES],
        "tanh_backward": [(s, (2 * sig(s) - 1, randn(s))) for s in ACTIVATIONS],
        "relu_backward": [(s, (numpy.maximum(randn(s), 0), randn(s))) for s in ACTIVATIONS + RELEVANCE],
        "relu_guided_backward": [(s, (numpy.maximum(randn(s), 0), randn(s))) for s in ACTIVATIONS + RELEVANCE],
        "gatemul_backward": [(s, (sig(s), randn(s), randn(s))) for s in ACTIVATIONS],
        "dropout_mask": [(s, (rng.random(s, dtype=dtype), 0.8)) for s in ACTIVATIONS],
        "sign": [(s, (randn(s),)) for s in ACTIVATIONS + RELEVANCE],
        "lrp_divide": [(f"{s} eps 1e-6", (randn(s), randn(s), 1e-6, 1.0)) for s in ACTIVATIONS + RELEVANCE]
        + [(f"{s} eps 0, c 1.5", (randn(s), randn(s), 0.0, 1.5)) for s in ACTIVATIONS + RELEVANCE],
    }
    for arch in ("rlstm", "convdeep"):
        with backend.using("numpy"):
            model = build(arch, input_shape=(28, 84), T=12, n_classes=10, seed=0, dtype=dtype)
        for k, p in model.params.items():
            state = (p.copy(), randn(p.shape), randn(p.shape) * 1e-3, numpy.abs(randn(p.shape)) * 1e-6,
                     0.9, 0.999, 2e-4, 1e-8)
            cases.setdefault("adam_update", []).append((f"{arch} {k} {p.shape}", state))
            cases.setdefault("adam_update_masked", []).append((f"{arch} {k} {p.shape}", state + (numpy.array(True),)))
    return cases


def _per_call(fn, args, n):
    start = time.perf_counter()
    for _ in range(n):
        fn(*args)
    return (time.perf_counter() - start) / n


def side_by_side(ref, kernel, args, rounds):
    """(reference us, kernel us): the best of ``rounds`` alternating rounds of about 2 ms each."""
    ref(*args)
    kernel(*args)                                   # compiles (or loads from the cache)
    n = max(10, int(2e-3 / max(_per_call(ref, args, 3), 1e-7)))
    best_ref = best_kernel = float("inf")
    for _ in range(rounds):
        best_ref = min(best_ref, _per_call(ref, args, n))
        best_kernel = min(best_kernel, _per_call(kernel, args, n))
    return best_ref * 1e6, best_kernel * 1e6


def op_table(dtype, rounds, names=None):
    import numpy
    from lrpnet import backend
    candidates = _candidates()
    print(f"\n## Pointwise operations, {dtype}: NumPy reference vs Numba kernel "
          f"(us per call, best of {rounds} alternating rounds)\n")
    print("| operation | input | NumPy us | Numba us | NumPy / Numba |\n|---|---|---:|---:|---:|")
    with backend.using("numpy"), numpy.errstate(all="ignore"):
        for name, cases in op_cases(dtype).items():
            if names and name not in names:
                continue
            impls = backend.implementations(name)
            kernel = impls.get("numba") or candidates[name]
            mark = "" if "numba" in impls else " (candidate, not registered)"
            total = [0.0, 0.0]
            for label, args in cases:
                a, b = side_by_side(impls["numpy"], kernel, args, rounds)
                total[0] += a
                total[1] += b
                print(f"| {name}{mark} | {label} | {a:.2f} | {b:.2f} | {a / b:.2f} |", flush=True)
            if name.startswith("adam"):
                print(f"| {name} | all parameters of rlstm and convdeep | {total[0]:.1f} | {total[1]:.1f} | "
                      f"{total[0] / total[1]:.2f} |", flush=True)


# -- whole models ---------------------------------------------------------------------------------------
def model_table(archs, rounds, dtype, explain_batch):
    import numpy
    import lrpnet
    from lrpnet import backend
    from lrpnet.models import build
    from lrpnet.training import Adam
    rng = numpy.random.default_rng(0)
    x_train, y_train = rng.uniform(-1, 1, (256, 28, 84)).astype(dtype), rng.integers(0, 10, 256)
    x_expl, y_expl = rng.uniform(-1, 1, (200, 28, 84)).astype(dtype), rng.integers(0, 10, 200)
    columns = ("numpy", "numba")

    def build_host(arch):
        with backend.using("numpy"):
            return build(arch, input_shape=(28, 84), T=12, n_classes=10, seed=0, dtype=dtype)

    def training_step(arch, batch):
        def make(column):
            model = build_host(arch)
            opt, masks = Adam(model.params, lr=2e-4), backend.random_state([0, 0, 1])

            def step():
                _, grads = model.loss_and_grads(x_train[:batch], y_train[:batch], train=True, rng=masks)
                opt.step(grads)
            return step
        return make

    def explanation(arch, method):
        def make(column):
            model = build_host(arch)
            return lambda: lrpnet.explain(model, x_expl, method, target=y_expl, batch_size=explain_batch)
        return make

    def measure(make, n_rounds):
        calls = {}
        for column in columns:
            with backend.using(column):
                calls[column] = make(column)
                calls[column]()                     # warm-up: compiles, fills the caches
        times = {column: [] for column in columns}
        for r in range(n_rounds):
            for column in (columns if r % 2 == 0 else columns[::-1]):
                with backend.using(column):
                    start = time.perf_counter()
                    calls[column]()
                    times[column].append(time.perf_counter() - start)
        ratios = [a / b for a, b in zip(times["numpy"], times["numba"])]
        return min(times["numpy"]) * 1e3, min(times["numba"]) * 1e3, statistics.median(ratios)

    print(f"\n## Models, {dtype}: NumPy vs Numba backend (ms; best of the alternating rounds; "
          f"explanations of 200 samples in batches of {explain_batch})\n")
    print("| model | task | rounds | NumPy ms | Numba ms | NumPy / Numba | median of the rounds' ratios |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for arch in archs:
        n_rounds = rounds or (7 if arch.startswith("conv") else 21)
        tasks = [(f"train step, batch {b}", training_step(arch, b)) for b in (50, 256)]
        tasks += [(f"explain 200, {m}", explanation(arch, m)) for m in ("dtd", "lrp-alpha1.5beta0.5")]
        for label, make in tasks:
            a, b, median = measure(make, n_rounds)
            print(f"| {arch} | {label} | {n_rounds} | {a:.1f} | {b:.1f} | {a / b:.2f} | {median:.2f} |", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", action="store_true", help="the operation table (default: both tables)")
    parser.add_argument("--models", action="store_true", help="the model table (default: both tables)")
    parser.add_argument("--names", help="operations of the table, comma-separated (default: all)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--archs", default="deep,rlstm,lstm,convdeep", help="models, comma-separated")
    parser.add_argument("--rounds", type=int, default=None,
                        help="alternating rounds (default: 7 per operation; 21 per model task, 7 for conv models)")
    parser.add_argument("--explain-batch", type=int, default=250, help="explain's batch_size (default 250)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS and Numba threads (default 1)")
    args = parser.parse_args(argv)
    wanted = str(args.threads)
    if any(os.environ.get(v) != wanted for v in THREAD_ENV):       # BLAS reads them at import: restart
        env = {**os.environ, **{v: wanted for v in THREAD_ENV}}
        os.execve(sys.executable, [sys.executable, "-m", "kernels.numba.benchmark_pointwise", *sys.argv[1:]], env)
    if not (args.ops or args.models):
        args.ops = args.models = True
    import numba
    import numpy
    print(f"# Pointwise Numba kernels, {time.strftime('%Y-%m-%d %H:%M %Z')}\n")
    print(f"- threads: {', '.join(f'{v}={os.environ[v]}' for v in THREAD_ENV)}; numba uses {numba.get_num_threads()}")
    print(f"- versions: python {sys.version.split()[0]}, numpy {numpy.__version__}, numba {numba.__version__}")
    print(f"- {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start")
    print(f"- command: python -m kernels.numba.benchmark_pointwise {' '.join(sys.argv[1:])}")
    if args.ops:
        op_table(args.dtype, args.rounds or 7, args.names and args.names.split(","))
    if args.models:
        model_table([a for a in args.archs.split(",") if a], args.rounds, args.dtype, args.explain_batch)
    print(f"\nLoad average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
