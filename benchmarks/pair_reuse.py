"""The pair (x, W) of a linear rule from the forward output, before and after, in one process.

    python benchmarks/pair_reuse.py N CHUNK      # e.g. 200 100: explain N random inputs in chunks of CHUNK

Before: ``rules._pair_forward`` always computes the product x W; after: it takes output - b from the
node (the library's). CPU ms, best of 5 alternating calls, one thread; and the largest relative
difference of the relevance between the two."""
import pathlib
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from lrpnet.threads import limit_threads
limit_threads(1)
from lrpnet import models, rules
from lrpnet.explain import explain

new = rules._pair_forward


def old(layer, xi, wi, plain, output):
    return layer.linear(xi, wi)


n, chunk = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
x = rng.uniform(-1, 1, (n, 28, 84)).astype(np.float32)
y = rng.integers(0, 10, n)
print(f"N = {n}, chunks of {chunk}, one thread; CPU ms, best of 5 alternating")
print("| model | method | before | after | before / after | max rel. diff |")
print("|---|---|---:|---:|---:|---:|")
for arch in ("rlstm", "convdeep", "deep", "lstm"):
    model = models.build(arch, input_shape=(28, 84), T=12, n_classes=10, seed=0)
    for method in ("gradient_x_input", "dtd", "lrp-alpha1.5beta0.5"):
        best = {"before": 1e9, "after": 1e9}
        out = {}
        for r in range(5):
            for name, f in (("before", old), ("after", new)):
                rules._pair_forward = f
                t = time.process_time()
                out[name] = explain(model, x, method, target=y, batch_size=chunk)
                best[name] = min(best[name], time.process_time() - t)
        rules._pair_forward = new
        a, b = np.asarray(out["before"]), np.asarray(out["after"])
        diff = np.abs(a - b).max() / max(np.abs(a).max(), 1e-30)
        print(f"| {arch} | {method} | {best['before']*1e3:.1f} | {best['after']*1e3:.1f} | "
              f"{best['before']/best['after']:.2f} | {diff:.1e} |", flush=True)
