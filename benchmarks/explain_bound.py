"""What the arithmetic alone imposes on each explanation method: its matrix products and convolutions,
timed alone at the real shapes, against the whole explanation and against the gradient walk.

    python benchmarks/explain_bound.py --threads 1
    python benchmarks/explain_bound.py --threads 1 --archs rlstm,convdeep --n 200 --chunk 100

An explanation traces the forward pass, then walks the tape back. The products each method must do
(``layer.linear``, ``layer.linear_input_grad``: a dense layer's x @ W and dz @ W^T, a convolution's
forward pass and input gradient, im2col or col2im included) are counted from the tape of one chunk:

- every method: the forward pass, one product per linear node (the trace);
- ``gradient_x_input``: one input-gradient product per linear node whose input leads to the pixels;
- a relevance method: at each linear node that relevance reaches (under signal-take-all no gate
  does), the groups of its rule as ``lrpnet.rules.linear`` builds them (the MIXED rule where a layer
  sees pixels and states). Each pair (x', W') whose x' is not one number everywhere costs one product
  linear(x', W') and one linear_input_grad(W', s), except that the layer's own pair (x, W) takes x W
  from the forward pass (``rules._pair_forward``) and costs only its input gradient; the pairs whose
  x' is one number c everywhere (``rules.one_number``: z^B's bounds) cost, together, one
  input-gradient product with W_c = sum_i c_i W'_i (``rules.merged``; its one-sample forward pass is
  computed once per layer in a walk and not counted); a pair with x' = 0 (x- of ReLU activations)
  costs nothing. So z+ on ReLU activations is x @ W+ and s @ W+^T, alpha-beta twice that, z^B at the
  pixels s @ W^T and s @ W_c^T, on top of the forward pass.

Each distinct product (layer, shapes) is timed alone, best of ``--repeats`` after one untimed call, on
the chunk's own arrays for the forward products and random ones of the output's shape for the
backward products (dense products cost the same on any values). ``ms in products, alone`` is the
sum of every counted product times ``--n / --chunk`` chunks; ``ms in products, in the walk`` is the
time the same calls took inside ``lrpnet.explain`` (the four product methods of ``Dense`` and
``Conv2D`` wrapped with a clock; best of ``--repeats`` calls): the same products on arrays that come
cold from the walk, which costs more than the hot loop of the timing alone (the convolutions most);
``ms total`` is ``lrpnet.explain(model, x, method, target=y, batch_size=chunk)`` on ``--n`` samples,
best of ``--repeats`` calls, without the clocks. Ratios to the gradient walk: of the products alone,
of the products in the walk, and measured. The last column is the ratio that remains if the relevance
walk cost the gradient walk's time plus its extra products timed alone, nothing else (its overhead
besides products equal to the gradient walk's): the bound a leaner walk could reach.

Inputs are random (uniform in [-1, 1]), input 28x84, T=12, 10 classes, float32. A possible saving
beyond this bound: the MIXED rule's masked pairs could multiply only their unmasked rows.
(The tables in benchmarks/RESULTS.md made before commit 12c34ff counted z^B's x @ W, which the walk
then still computed.)
"""
from __future__ import annotations

import argparse
import datetime
import os
import sys
import time

from backends import best_of        # benchmarks/backends.py, beside this script
from threads import limit_threads  # benchmarks/threads.py, beside this script

METHODS = ("gradient_x_input", "dtd", "lrp-alpha1.5beta0.5")


def best_ms(fn, repeats):
    """Milliseconds of the fastest of ``repeats`` calls, after a warm-up (``backends.best_of``)."""
    return best_of(fn, repeats) * 1e3


class Products:
    """Times each distinct product once: forward (layer, x shape, which weight) and backward."""

    def __init__(self, repeats):
        self.repeats, self.times = repeats, {}

    def forward(self, layer, x, weight, tag):
        key = ("fwd", id(layer), tuple(x.shape), tag)
        if key not in self.times:
            self.times[key] = best_ms(lambda: layer.linear(x, weight), self.repeats)
        return self.times[key]

    def backward(self, layer, x_shape, weight, z_shape, tag):
        import numpy
        key = ("bwd", id(layer), tuple(x_shape), tag)
        if key not in self.times:
            dz = numpy.random.default_rng(0).standard_normal(z_shape).astype(weight.dtype)
            self.times[key] = best_ms(lambda: layer.linear_input_grad(weight, dz, x_shape), self.repeats)
        return self.times[key]


class InWalk:
    """Times every product inside real explanations: ``layer.linear`` and ``layer.linear_input_grad`` of
    the dense and convolution classes wrapped with a clock while the block runs (``ms``: the sum)."""

    def __init__(self):
        self.ms = 0.0

    def __enter__(self):
        from lrpnet.layers import Conv2D, Dense
        self.saved = []
        for cls in (Dense, Conv2D):
            for name in ("linear", "linear_input_grad"):
                raw = cls.__dict__[name]
                self.saved.append((cls, name, raw))
                fn = raw.__func__ if isinstance(raw, staticmethod) else raw
                timed = self.clocked(fn)
                setattr(cls, name, staticmethod(timed) if isinstance(raw, staticmethod) else timed)
        return self

    def clocked(self, fn):
        def run(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.ms += (time.perf_counter() - t) * 1e3
        return run

    def __exit__(self, *exc):
        for cls, name, raw in self.saved:
            setattr(cls, name, raw)


def linear_nodes(tape):
    return [n for n in tape.nodes if n.layer.kind in ("dense", "conv2d")]


def reached_nodes(tape, out):
    """ids of the nodes whose output a backward walk from ``out`` reaches (``Tape.reverse`` skips the
    others: the state layer of the last step, whose output nothing reads)."""
    live, reached = {id(out)}, set()
    for n in reversed(tape.nodes):
        if id(n.output) in live:
            reached.add(id(n))
            live.update(id(v) for v in n.inputs)
    return reached


def rule_products(node, comp, products):
    """(ms, forward products, backward products) of the rule ``comp`` gives linear ``node``: its groups
    as ``rules.linear`` builds them, each pair classified as the module docstring says."""
    from lrpnet import rules
    layer, x = node.layer, node.inputs[0].value
    z_shape = node.output.value.shape
    rule, params, mask, pixel_rule, pixel_params, shared = rules.linear_choice(node, comp)
    weight, bias = layer.weight, layer.bias
    groups = rules.LINEAR[rule](x, weight, bias, **params)
    if mask is not None:
        groups = rules.mixed(rules.LINEAR[pixel_rule](x, weight, bias, **pixel_params), groups, mask, shared)
    ms, n_fwd, n_bwd = 0.0, 0, 0
    for g, group in enumerate(groups):
        consts = []
        for p, (xi, wi) in enumerate(group.pairs):
            c = rules.one_number(xi)
            if c is not None:
                if c != 0:
                    consts.append((c, wi))
                continue
            tag = (rule, g, p)
            if not (xi is x and wi is weight):          # the layer's own x W comes from the forward pass
                ms += products.forward(layer, xi, wi, tag)
                n_fwd += 1
            ms += products.backward(layer, x.shape, wi, z_shape, tag)
            n_bwd += 1
        if consts:
            w_const, _ = rules.merged(layer, consts, x.shape, x.dtype)
            ms += products.backward(layer, x.shape, w_const, z_shape, (rule, g, "constants"))
            n_bwd += 1
    return ms, n_fwd, n_bwd


def count(model, x, y, method, products):
    """(ms, forward products, backward products) for one chunk (x, y) explained with ``method``."""
    import lrpnet
    from lrpnet import composites
    with model.running():
        tape, x_var, out = model.trace(x, checked=True)
        nodes = linear_nodes(tape)
        ms = sum(products.forward(n.layer, n.inputs[0].value, n.layer.weight, "plain") for n in nodes)
        n_fwd, n_bwd = len(nodes), 0
        if method == "gradient_x_input":
            wanted = tape._wanted(False, (x_var,))
            reached = reached_nodes(tape, out)
            for n in nodes:
                if id(n) in reached and wanted.get(id(n.inputs[0]), False):
                    ms += products.backward(n.layer, n.inputs[0].value.shape, n.layer.weight,
                                            n.output.value.shape, "plain")
                    n_bwd += 1
            return ms, n_fwd, n_bwd
        comp = composites.get(method)
        e = lrpnet.explain(model, x, method, target=y, return_details=True, batch_size=len(x))
        for n in linear_nodes(e.tape):
            if e.values(n.output) is None:          # no relevance reached it (a gate, under signal-take-all)
                continue
            more = rule_products(n, comp, products)
            ms, n_fwd, n_bwd = ms + more[0], n_fwd + more[1], n_bwd + more[2]
    return ms, n_fwd, n_bwd


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--archs", default="deep,rlstm,lstm,convdeep")
    p.add_argument("--methods", default=",".join(METHODS), help="the first is the yardstick (default "
                                                                 "gradient_x_input)")
    p.add_argument("--n", type=int, default=1000, help="samples explained (default 1000)")
    p.add_argument("--chunk", type=int, default=250, help="explain's batch_size (default 250, as "
                                                         "benchmarks/backends.py)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    if args.n % args.chunk:
        raise SystemExit(f"--n ({args.n}) must be a multiple of --chunk ({args.chunk})")
    limit_threads(args.threads)

    import numpy
    import lrpnet
    from lrpnet.models import build

    methods = args.methods.split(",")
    print(f"- {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, threads {args.threads}, "
          f"numpy {numpy.__version__}, load average {os.getloadavg()[0]:.1f}")
    print("- command: python benchmarks/explain_bound.py " + " ".join(sys.argv[1:]))
    print(f"- {args.n} samples in chunks of {args.chunk}; products counted per chunk (forward + backward)")
    print()
    print("| model | method | products (fwd + bwd) | ms in products, alone | ms in products, in the walk "
          "| ms total | in the walk / total | ratio, products alone | ratio, products in the walk "
          "| ratio, measured | ratio, gradient walk + extra products alone |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    rng = numpy.random.default_rng(0)
    for arch in args.archs.split(","):
        model = build(arch, input_shape=(28, 84), T=12, n_classes=10, seed=0, dtype="float32")
        x = rng.uniform(-1, 1, (args.n, 28, 84)).astype("float32")
        y = rng.integers(0, 10, args.n)
        products = Products(args.repeats)
        chunks = args.n // args.chunk
        rows = []
        for method in methods:
            ms, n_fwd, n_bwd = count(model, x[:args.chunk], y[:args.chunk], method, products)
            total = best_ms(lambda: lrpnet.explain(model, x, method, target=y, batch_size=args.chunk),
                            args.repeats)
            walk = float("inf")
            for _ in range(args.repeats):
                with InWalk() as clock:
                    lrpnet.explain(model, x, method, target=y, batch_size=args.chunk)
                walk = min(walk, clock.ms)
            rows.append((method, ms * chunks, walk, total, n_fwd, n_bwd))
        _, p0, w0, t0, _, _ = rows[0]
        for method, pm, wm, tm, n_fwd, n_bwd in rows:
            print(f"| {arch} | {method} | {n_fwd} + {n_bwd} | {pm:.1f} | {wm:.1f} | {tm:.1f} | {wm / tm:.2f} | "
                  f"{pm / p0:.2f} | {wm / w0:.2f} | {tm / t0:.2f} | {(t0 + pm - p0) / t0:.2f} |", flush=True)
    print()
    print(f"- load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
