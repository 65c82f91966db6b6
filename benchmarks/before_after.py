"""Code of a commit against the working tree, side by side in one process: training steps and explanations.

    python benchmarks/before_after.py --threads 1 --swap lrpnet/rules.py:propagate --explain
    python benchmarks/before_after.py --threads 1 --swap lrpnet/graph.py:Tape --train --archs deep,lstm
    python benchmarks/before_after.py --threads 1 --swap lrpnet/layers/base.py:sigmoid_forward \
        --swap lrpnet/layers/dense.py:Dense.param_grads --train --explain

"Before" is the working tree with each ``--swap FILE:NAME`` replaced by that name's definition in the
commit ``--before`` (default HEAD), read with ``git show``: a function, a class, or a method
(``Class.method``), compiled in a copy of the live module's namespace (so it sees today's imports) and
put wherever the live one is found: module attributes, classes, the backend's registry of operations.
"After" is the working tree as it is. Everything else (models, other layers) is today's in both.

Rows: a training step (``model.loss_and_grads(x, y, train=True)`` + Adam, dropout on as in fit) at
each ``--batches`` size, and explaining ``--n`` samples with each ``--methods`` entry (chunks of
``--chunk``; default: explain's own). Before and after alternate in ``--rounds`` rounds; in each round a
variant runs ``--calls`` calls in a row, the first untimed, so that what one leaves in the allocator
does not land on the other's clock. A cell is the best call: wall-clock ms / CPU ms of the process (the
CPU time leaves out what other processes take from a shared machine). Before timing, the loss,
gradients and relevance of before and after are compared (their largest difference over the largest
value). Inputs are random (uniform in [-1, 1]), input 28x84, T=12, 10 classes, float32.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import datetime
import importlib
import os
import subprocess
import sys
import textwrap
import time

from threads import limit_threads  # benchmarks/threads.py, beside this script

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
sys.path.insert(0, ROOT)


def definition_at(commit, path, qualname, namespaces):
    """The object ``qualname`` (function, class or ``Class.method``) of ``path`` as it was at ``commit``,
    compiled in a copy of the live module's namespace, shared by every swap from that file (so an old
    class sees the old definitions swapped beside it); ``@backend.register`` lines are dropped so
    that compiling it registers nothing."""
    src = subprocess.run(["git", "show", f"{commit}:{path}"], cwd=ROOT, check=True, capture_output=True,
                         text=True).stdout
    body = ast.parse(src).body
    node = None
    for part in qualname.split("."):
        node = next((n for n in body if getattr(n, "name", None) == part), None)
        if node is None:
            raise SystemExit(f"{path} at {commit} has no {qualname!r}")
        body = getattr(node, "body", [])
    lines = src.splitlines()
    first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    code = textwrap.dedent("\n".join(ln for ln in lines[first - 1:node.end_lineno]
                                     if not ln.strip().startswith("@backend.register(")))
    module = importlib.import_module(path[:-3].replace("/", "."))
    namespace = namespaces.setdefault(path, dict(vars(module)))
    exec(compile(code, f"{commit}:{path}", "exec"), namespace)
    return module, namespace[node.name]


def live_object(module, qualname):
    owner, obj = None, module
    for part in qualname.split("."):
        owner, obj = obj, getattr(obj, part)
    return owner, obj


def places(obj):
    """Every (container, key) that holds ``obj``: module attributes, class attributes, registry entries."""
    from lrpnet import backend
    found = []
    for mod in list(sys.modules.values()):
        for k, v in list(vars(mod).items() if mod is not None else []):
            if v is obj:
                found.append((mod, k, "attr"))
            elif isinstance(v, type) and v.__dict__.get(getattr(obj, "__name__", None)) is obj:
                found.append((v, obj.__name__, "attr"))
    for impls in backend._registry.values():
        for k, v in impls.items():
            if v is obj:
                found.append((impls, k, "item"))
    return found


class Swaps:
    """The ``--swap`` definitions of a commit, put in place inside ``with swaps.before():``."""

    def __init__(self, commit, specs):
        self.entries, namespaces = [], {}
        for spec in specs:
            path, qualname = spec.split(":")
            module, old = definition_at(commit, path, qualname, namespaces)
            _, new = live_object(module, qualname)
            self.entries.append((spec, new, old, sorted({(id(c), k, how): (c, k, how) for c, k, how in
                                                          places(new)}.values(), key=str)))

    def describe(self):
        return [f"{spec}: found in {len(where)} places" for spec, _, _, where in self.entries]

    @contextlib.contextmanager
    def before(self):
        for _, new, old, where in self.entries:
            for c, k, how in where:
                setattr(c, k, old) if how == "attr" else c.__setitem__(k, old)
        try:
            yield
        finally:
            for _, new, old, where in self.entries:
                for c, k, how in where:
                    setattr(c, k, new) if how == "attr" else c.__setitem__(k, new)


def timed(fn, calls):
    """(best wall ms, best CPU ms) of calls 2..``calls`` of ``fn``."""
    fn()
    wall = cpu = float("inf")
    for _ in range(calls - 1):
        w, c = time.perf_counter(), time.process_time()
        fn()
        wall, cpu = min(wall, time.perf_counter() - w), min(cpu, time.process_time() - c)
    return wall * 1e3, cpu * 1e3


def max_rel(a, b):
    import numpy
    a, b = numpy.asarray(a, dtype=float), numpy.asarray(b, dtype=float)
    return float(numpy.abs(a - b).max() / max(numpy.abs(a).max(), 1e-30))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--swap", action="append", default=[], metavar="FILE:NAME", help="what 'before' replaces")
    p.add_argument("--before", default="HEAD")
    p.add_argument("--train", action="store_true")
    p.add_argument("--explain", action="store_true")
    p.add_argument("--archs", default="deep,rlstm,lstm,convdeep")
    p.add_argument("--batches", default="50,256")
    p.add_argument("--methods", default="gradient_x_input,dtd,lrp-alpha1.5beta0.5")
    p.add_argument("--n", type=int, default=200, help="samples explained")
    p.add_argument("--chunk", type=int, default=None, help="explain's batch_size (default: its own)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--calls", type=int, default=3)
    p.add_argument("--backend", default="numpy")
    p.add_argument("--batch-steps", action="store_true", help="model.batch_steps = True (blocks without "
                                                                "recurrence on all steps at once)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    limit_threads(args.threads)
    from lrpnet.memory import keep_freed_memory
    kept = keep_freed_memory()         # as every model pass would on its first call: from the start

    import numpy
    import lrpnet
    from lrpnet import backend
    from lrpnet.models import build
    from lrpnet.training import Adam

    swaps = Swaps(args.before, args.swap)
    commit = subprocess.run(["git", "rev-parse", "--short", args.before], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    load = os.getloadavg()[0]
    print(f"# before = {commit} with {', '.join(args.swap) or 'nothing'} swapped in; after = working tree")
    print(f"- {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, backend {args.backend}, "
          f"threads {args.threads}, numpy {numpy.__version__}, {os.cpu_count()} CPUs, load average {load:.1f}, "
          f"freed memory {'kept' if kept else 'handed back'} (lrpnet.memory)")
    print("- command: python benchmarks/before_after.py " + " ".join(sys.argv[1:]))
    for line in swaps.describe():
        print(f"- {line}")
    print()
    print("| model | task | before ms (wall / CPU) | after ms (wall / CPU) | before / after (CPU) |")
    print("|---|---|---:|---:|---:|")
    notes = []
    rng = numpy.random.default_rng(0)
    for arch in args.archs.split(","):
        model = build(arch, input_shape=(28, 84), T=12, n_classes=10, seed=0, dtype="float32")
        if args.batch_steps:
            model.batch_steps = True
        cases = []
        if args.train:
            for b in map(int, args.batches.split(",")):
                x = rng.uniform(-1, 1, (b, 28, 84)).astype("float32")
                y = rng.integers(0, 10, b)

                def step(x=x, y=y, opt=Adam(model.params, lr=2e-4), draws=numpy.random.default_rng(1)):
                    loss, grads = model.loss_and_grads(x, y, train=True, rng=draws)
                    opt.step(grads)

                def check(x=x, y=y):     # the same masks before and after, parameters untouched
                    loss, grads = model.loss_and_grads(x, y, train=True, rng=numpy.random.default_rng(2))
                    return [loss] + [grads[k] for k in sorted(grads)]
                cases.append((f"train step, batch {b}", step, check))
        if args.explain:
            x = rng.uniform(-1, 1, (args.n, 28, 84)).astype("float32")
            y = rng.integers(0, 10, args.n)
            for method in args.methods.split(","):
                def run(x=x, y=y, method=method):
                    return [lrpnet.explain(model, x, method, target=y, batch_size=args.chunk)]
                cases.append((f"explain {args.n}, {method}", run, run))
        with backend.using(args.backend):
            for task, fn, check in cases:
                with swaps.before():
                    want = check()
                got = check()
                worst = max(max_rel(a, b) for a, b in zip(want, got))
                notes.append(f"{arch} {task}: max |after - before| / max |before| = {worst:.1e}")
                best = {"before": (float("inf"),) * 2, "after": (float("inf"),) * 2}
                for _ in range(args.rounds):
                    for variant in ("before", "after"):
                        with (swaps.before() if variant == "before" else contextlib.nullcontext()):
                            t = timed(fn, args.calls)
                        best[variant] = tuple(min(a, b) for a, b in zip(best[variant], t))
                (bw, bc), (aw, ac) = best["before"], best["after"]
                print(f"| {arch} | {task} | {bw:.1f} / {bc:.1f} | {aw:.1f} / {ac:.1f} | {bc / ac:.2f} |", flush=True)
    print()
    for n in notes:
        print(f"- {n}")
    print(f"- load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
