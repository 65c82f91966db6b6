"""Training steps with and without the column cuts of ``Tape._column_cuts``, side by side in one process.

    python benchmarks/column_cuts.py --threads 1
    python benchmarks/column_cuts.py --threads 1 --archs conv+deep --batches 50

In training, a concatenation whose inputs are partly wanted by nothing (the pixels x_t in the LSTM's,
GRU's and Shallow's [x_t ; h_{t-1}], the pixel channel in conv+deep's [x_t ; a1_{t-1}]) gets the
gradient of its wanted columns only. "Without" replaces ``Tape._column_cuts`` by one that cuts nothing,
so every column is computed, as before the cuts. The two alternate in ``--rounds`` rounds of
``--calls`` timed calls (after one untimed); a cell is the best call. Random inputs in [-1, 1], 28x84,
T=12, 10 classes, float32, Adam, dropout on; freed memory kept (``lrpnet.memory``).
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
    p.add_argument("--archs", default="lstm,gru,shallow,conv+deep")
    p.add_argument("--batches", default="50,256")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--calls", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    limit_threads(args.threads)
    import numpy
    from lrpnet import backend, graph
    from lrpnet.memory import keep_freed_memory
    from lrpnet.models import build
    from lrpnet.training import Adam
    keep_freed_memory()
    cut = graph.Tape._column_cuts

    def whole(self, wanted, seeds):
        return {}

    header("Training steps with and without the column cuts", args.threads, f"numpy {numpy.__version__}")
    print("| model | batch | every column (ms) | cut (ms) | every column / cut |")
    print("|---|---:|---:|---:|---:|")
    rng = numpy.random.default_rng(0)
    for arch in args.archs.split(","):
        for batch in [int(b) for b in args.batches.split(",")]:
            model = build(arch, input_shape=(28, 84), T=12, n_classes=10, seed=0)
            x = rng.uniform(-1, 1, (batch, 28, 84)).astype("float32")
            y = rng.integers(0, 10, batch)
            opt, drop = Adam(model.params, lr=2e-4), backend.random_state([0, 0, 1])

            def step():
                _, grads = model.loss_and_grads(x, y, train=True, rng=drop)
                opt.step(grads)
            best = best_alternating(step, {"whole": lambda: setattr(graph.Tape, "_column_cuts", whole),
                                           "cut": lambda: setattr(graph.Tape, "_column_cuts", cut)},
                                    args.rounds, args.calls)
            graph.Tape._column_cuts = cut
            print(f"| {arch} | {batch} | {1e3 * best['whole']:.1f} | {1e3 * best['cut']:.1f} | "
                  f"{best['whole'] / best['cut']:.2f} |")
    footer()


if __name__ == "__main__":
    main()
