"""Walks with and without ``graph.Part`` signals, side by side in one process.

    python benchmarks/signal_parts.py --threads 1
    python benchmarks/signal_parts.py --threads 1 --archs deep --batch-steps

A layer that picks part of its input (a time slice of the image, a step's rows, a gate's columns)
sends back a ``Part``, which the walk adds into the sum for that input as a block; "without" makes
those layers' ``backward_part`` fill the part in, so that each sends a whole array of zeros around its
part, as before. Timed: explaining ``--n`` samples with each ``--methods`` entry (explain's default chunk) and,
with ``--batches``, training steps (Adam, dropout on). The two alternate in ``--rounds`` rounds of
``--calls`` timed calls (after one untimed); a cell is the best call. Random inputs in [-1, 1], 28x84,
T=12, 10 classes, float32; freed memory kept (``lrpnet.memory``). ``--batch-steps``: the models run
their blocks without recurrence on all steps at once (``model.batch_steps``), where a step's rows
are ``StepRows`` parts.
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
    p.add_argument("--archs", default="deep,rlstm,lstm,convdeep")
    p.add_argument("--methods", default="gradient_x_input,dtd")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--batches", default="", help="training step batch sizes, e.g. 50,256 (default: none)")
    p.add_argument("--batch-steps", action="store_true")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--calls", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    limit_threads(args.threads)
    import numpy
    import lrpnet
    from lrpnet import backend
    from lrpnet.layers import structure
    from lrpnet.memory import keep_freed_memory
    from lrpnet.models import build
    from lrpnet.training import Adam
    keep_freed_memory()
    owners = [structure.TimeSlice, structure.Select]
    methods = {cls: cls.backward_part for cls in owners}

    def whole(part_of):
        def backward_part(self, cache, dy):
            return (part_of(self, cache, dy)[0][0].dense(),), {}
        return backward_part

    def parts(on):
        for cls in owners:
            cls.backward_part = methods[cls] if on else whole(methods[cls])

    header("Walks with and without graph.Part signals", args.threads, f"numpy {numpy.__version__}")
    print("| model | task | whole arrays (ms) | parts (ms) | whole / parts |")
    print("|---|---|---:|---:|---:|")
    rng = numpy.random.default_rng(0)
    x = rng.uniform(-1, 1, (max(args.n, 256), 28, 84)).astype("float32")
    y = rng.integers(0, 10, len(x))
    for arch in args.archs.split(","):
        model = build(arch, input_shape=(28, 84), T=12, n_classes=10, seed=0)
        model.batch_steps = args.batch_steps
        tasks = []
        for method in args.methods.split(","):
            tasks.append((f"explain {args.n}, {method}",
                          lambda method=method: lrpnet.explain(model, x[:args.n], method, target=y[:args.n])))
        for batch in [int(b) for b in args.batches.split(",") if b]:
            opt, drop = Adam(model.params, lr=2e-4), backend.random_state([0, 0, 1])

            def step(batch=batch, opt=opt, drop=drop):
                _, grads = model.loss_and_grads(x[:batch], y[:batch], train=True, rng=drop)
                opt.step(grads)
            tasks.append((f"train step, batch {batch}", step))
        for name, fn in tasks:
            best = best_alternating(fn, {False: lambda: parts(False), True: lambda: parts(True)},
                                    args.rounds, args.calls)
            parts(True)
            print(f"| {arch} | {name} | {1e3 * best[False]:.1f} | {1e3 * best[True]:.1f} | "
                  f"{best[False] / best[True]:.2f} |", flush=True)
    footer()


if __name__ == "__main__":
    main()
