"""Blocks without recurrence step by step against on all steps at once (``model.batch_steps``), side by
side in one process.

    python benchmarks/batch_steps.py --threads 1
    python benchmarks/batch_steps.py --threads 1 --archs convdeep --batches 50,256

For each model: a training step (Adam, dropout on) at each ``--batches`` size and an explanation of
``--n`` samples with each ``--methods`` entry (explain's default chunk), with ``batch_steps`` False and
True alternating in ``--rounds`` rounds of ``--calls`` timed calls (after one untimed); a cell is the
best call. Random inputs in [-1, 1], 28x84, T=12, 10 classes, float32; freed memory kept
(``lrpnet.memory``). The last column says which the model does by default.
"""
from __future__ import annotations

import argparse
import os
import sys

from side_by_side import best_alternating, footer, header  # benchmarks/side_by_side.py, beside this script
from threads import limit_threads  # benchmarks/threads.py, beside this script

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archs", default="deep,deep_v2,rlstm,rlstm_sd,convdeep,conv+deep")
    p.add_argument("--methods", default="gradient_x_input,dtd")
    p.add_argument("--n", type=int, default=250)
    p.add_argument("--batches", default="50")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--calls", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    limit_threads(args.threads)
    import numpy
    import lrpnet
    from lrpnet import backend
    from lrpnet.memory import keep_freed_memory
    from lrpnet.models import build
    from lrpnet.training import Adam
    keep_freed_memory()

    header("Step by step against all steps at once (model.batch_steps)", args.threads, f"numpy {numpy.__version__}")
    print("| model | task | step by step (ms) | all steps at once (ms) | step by step / at once | default |")
    print("|---|---|---:|---:|---:|---|")
    rng = numpy.random.default_rng(0)
    batches = [int(b) for b in args.batches.split(",") if b]
    x = rng.uniform(-1, 1, (max(batches + [args.n]), 28, 84)).astype("float32")
    y = rng.integers(0, 10, len(x))
    for arch in args.archs.split(","):
        model = build(arch, input_shape=(28, 84), T=12, n_classes=10, seed=0)
        default = model.batch_steps
        tasks = []
        for batch in batches:
            opt, drop = Adam(model.params, lr=2e-4), backend.random_state([0, 0, 1])

            def step(batch=batch, opt=opt, drop=drop):
                _, grads = model.loss_and_grads(x[:batch], y[:batch], train=True, rng=drop)
                opt.step(grads)
            tasks.append((f"train step, batch {batch}", step))
        for method in args.methods.split(","):
            tasks.append((f"explain {args.n}, {method}",
                          lambda method=method: lrpnet.explain(model, x[:args.n], method, target=y[:args.n])))
        for name, fn in tasks:
            best = best_alternating(fn, {False: lambda: setattr(model, "batch_steps", False),
                                         True: lambda: setattr(model, "batch_steps", True)},
                                    args.rounds, args.calls)
            model.batch_steps = default
            print(f"| {arch} | {name} | {1e3 * best[False]:.1f} | {1e3 * best[True]:.1f} | "
                  f"{best[False] / best[True]:.2f} | {'at once' if default else 'step by step'} |", flush=True)
    footer()


if __name__ == "__main__":
    main()
