"""Explanations in chunks of different sizes (``explain(..., batch_size=)``), side by side in one process.

    python benchmarks/explain_chunk.py --threads 1
    python benchmarks/explain_chunk.py --threads 1 --archs convdeep --chunks 50,100,250,500

Each model explains ``--n`` random samples (uniform in [-1, 1], 28x84, T=12, 10 classes, float32) with
each ``--methods`` entry, the chunk sizes taking turns in ``--rounds`` rounds of ``--calls`` timed calls
(after one untimed: ``side_by_side.best_alternating``); a cell is the best call, and the last column is
the fastest chunk's time against the default chunk's (``lrpnet.explain.CHUNK``). Freed memory kept
(``lrpnet.memory``). Peak memory of explain's default chunk: ``benchmarks/explain_memory.py``.
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
    p.add_argument("--methods", default="gradient_x_input,dtd,lrp-alpha1.5beta0.5")
    p.add_argument("--chunks", default="50,100,250,500")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--calls", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    limit_threads(args.threads)
    import numpy
    import lrpnet
    from lrpnet.explain import CHUNK
    from lrpnet.memory import keep_freed_memory
    from lrpnet.models import build
    keep_freed_memory()
    chunks = [int(c) for c in args.chunks.split(",")]
    default = CHUNK["cpu"]

    header("Explanations in chunks of different sizes", args.threads, f"numpy {numpy.__version__}", f"explain's default chunk {default}")
    print("| model | method | " + " | ".join(f"chunk {c} (ms)" for c in chunks) + " | default / fastest |")
    print("|---|---|" + "---:|" * (len(chunks) + 1))
    x = numpy.random.default_rng(0).uniform(-1, 1, (args.n, 28, 84)).astype("float32")
    chosen = {}

    def put(c):
        chosen["chunk"] = c
    for arch in args.archs.split(","):
        model = build(arch, input_shape=(28, 84), T=12, n_classes=10, seed=0)
        for method in args.methods.split(","):
            def run(method=method):
                lrpnet.explain(model, x, method, batch_size=chosen["chunk"])
            best = best_alternating(run, {c: (lambda c=c: put(c)) for c in chunks}, args.rounds, args.calls)
            cells = " | ".join(f"{1e3 * best[c]:.1f}" for c in chunks)
            ratio = f"{best[default] / min(best.values()):.2f}" if default in best else "-"
            print(f"| {arch} | {method} | {cells} | {ratio} |", flush=True)
    footer()


if __name__ == "__main__":
    main()
