"""A walk through relevance propagation, node by node, in a tiny R-LSTM and a tiny LSTM.

    python experiments/walkthrough.py                       # about 1,500 lines: pipe it into less
    python experiments/walkthrough.py --model R-LSTM        # one model
    python experiments/walkthrough.py --model LSTM --gates prop

The models are tiny so that every number fits on a line: 3x3 images read in T=3 steps of one column
(3 pixels each), an R-LSTM (R-LSTM-SD: its dropout is the identity when explaining) with 3 front
units and 2 cell units, an LSTM with 2 units, 2 classes; weights drawn from a seeded generator and
rounded to one decimal. One image is explained:

1. the R-LSTM with DTD ("dtd": z^B at the input, z+ above) and LRP-alpha1.5beta0.5, gates
   signal-take-all (THESIS.md section 4);
2. the LSTM with LRP-epsilon (as Arras et al. explain LSTMs) under each gate rule of
   ``lrpnet.composites.GATE_RULES``: signal-take-all, prop, abs, half.

Relevance starts at the explained logit (R = relu(f_c)) and walks the tape from the output back to
the input (``lrpnet.ledger.record``, the same walk as ``lrpnet.explain``). At each node it prints the
rule (and, the first time, the docstring of its literal form: its equation), the values going in, the
relevance arriving (R), the relevance each input gets from the library's
fast rule (``lrpnet.rules``, as ``explain`` applies it) and from the literal form of the rule's
equation (``lrpnet.literal``) side by side, what the node absorbed by cause (bias, stabiliser, zero
denominator; an initial state's row: state; ``lrpnet.ledger``), and the node's totals:
arrived = passed + absorbed, with the residual. Nodes that only pass relevance on (activations,
dropout) or move it like the gradient (slices, concatenations) print their totals only. Each walk ends
with the totals per time step and the accounting identity: input relevance + absorbed = score, and
absorbed = bias + stabiliser + zero + state.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lrpnet import composites, ledger, literal, models  # noqa: E402

SEEDS = {"R-LSTM": 0, "LSTM": 36}      # seeds whose untrained models have live units and a positive score
GATES = composites.GATE_RULES
CASES = [("R-LSTM", "dtd", None), ("R-LSTM", "lrp-alpha1.5beta0.5", None)] + \
        [("LSTM", "lrp-epsilon", g) for g in GATES]


def tiny(name):
    """The tiny R-LSTM ("R-LSTM") or LSTM ("LSTM"), float64, weights N(0, 1) and biases N(0, 0.3) rounded
    to one decimal."""
    if name == "R-LSTM":
        model = models.build("rlstm_sd", input_shape=(3, 3), T=3, n_classes=2, dtype="float64", front=3, units=2)
    else:
        model = models.build("lstm", input_shape=(3, 3), T=3, n_classes=2, dtype="float64", hidden=2)
    model.batch_steps = False      # every node at its step, the front layer too, as the thesis draws it
    rng = numpy.random.default_rng(SEEDS[name])
    for layer in model.layers.values():
        for k, p in layer.params.items():
            if not k.startswith("b"):
                p[...] = rng.normal(0, 1, p.shape).round(1)
            elif getattr(layer, "bias_mode", None) == "negsoftplus":
                p[...] = rng.normal(-3, 1, p.shape).round(1)     # -softplus(b) about -0.05: few dead units
            else:
                p[...] = rng.normal(0, 0.3, p.shape).round(1)
    return model


def image(name):
    """One 3x3 image in [-1, 1], one decimal."""
    return numpy.random.default_rng(SEEDS[name]).uniform(-1, 1, (1, 3, 3)).round(1)


def fmt(a):
    return numpy.array2string(numpy.asarray(a).reshape(-1), precision=4, floatmode="fixed", sign="+",
                              max_line_width=200)


def made_by(v):
    """What a value is: the layer that made it, at its step, or the leaf's tag ("input", "state")."""
    if v.node is None:
        return v.tag
    return v.node.layer.name + ("" if v.node.step is None else f"[t={v.node.step}]")


def equations(entry, explained):
    """The docstrings of the literal forms of the entry's rule, the first time the rule is met."""
    if entry.kind == "leaf" or entry.rule in ("pass", "move"):
        return []
    if entry.kind in ("dense", "conv2d"):
        names = [p[0] for k, p in entry.params.items() if k != "join"] if entry.rule == "mixed" else [entry.rule]
        functions = [literal.LINEAR[n] for n in names] + ([literal.mixed] if entry.rule == "mixed" else [])
    else:
        functions = [{"add": literal.add_proportional, "gatemul": literal.GATES.get(entry.rule)}.get(entry.kind)
                     or literal.pool_proportional]
    new = [f for f in functions if f not in explained]
    explained.update(new)
    return [line.strip() for f in new for line in f.__doc__.strip().splitlines()]


def walk(name, method, gates=None, out=print):
    """Print one explanation of ``image()`` by the tiny model ``name``, node by node; returns the ledger."""
    model, x = tiny(name), image(name)
    book = ledger.record(model, x, method, gates=gates, keep=True)
    out(f"=== {name}, {method}, gates {book.composite['gatemul'][0]} ===")
    out(f"image (rows; step t reads column t):\n{x[0]}")
    out(f"explained class {book.target[0]}, score R = relu(logit) = {book.score[0]:+.6f}\n")
    explained = set()
    for k, e in enumerate(book.entries):
        t = "-" if e.step is None else e.step
        out(f"[{k:2d}] {e.layer} ({e.kind}, t={t})  {ledger.describe(e.rule, e.params)}")
        for line in equations(e, explained):
            out(f"     | {line}")
        if e.node is not None and e.rule not in ("pass", "move"):
            R, fast, absorbed = e.arrays
            slow, slow_absorbed = literal.node_rule(e.node, R, book.composite)
            out(f"     R arriving          {fmt(R)}")
            for v, f, s in zip(e.node.inputs, fast, slow):
                f = numpy.zeros_like(s) if f is None else f
                out(f"     {made_by(v):<20}value      {fmt(v.value)}")
                out(f"     {'':<20}R fast     {fmt(f)}")
                out(f"     {'':<20}R literal  {fmt(s)}   max |fast - literal| = {numpy.abs(f - s).max():.1e}")
            out(f"     absorbed            {fmt(absorbed)}   max |fast - literal| = "
                f"{numpy.abs(absorbed - slow_absorbed).max():.1e}")
        elif len(e.to) > 1:
            out("     to: " + ", ".join(f"{label} {v[0]:+.8f}" for label, v in e.to.items()))
        if any(v[0] != 0 for v in e.causes.values()):
            out("     absorbed by cause: " + "  ".join(f"{c} {v[0]:+.8f}" for c, v in e.causes.items()))
        out(f"     totals: arrived {e.arrived[0]:+.8f}  passed {e.passed[0]:+.8f}  absorbed {e.absorbed[0]:+.8f}"
            f"  residual {e.residual[0]:+.1e}")
    out("\nper time step (t = -: the read-out and the leaves):")
    for r in book.by_step(sample=0):
        out(f"  t={'-' if r['step'] is None else r['step']}: {r['nodes']:2d} nodes, absorbed {r['absorbed']:+.8f}, "
            f"to the input {r['to_input']:+.8f}, residual {r['residual']:+.1e}")
    relevance, absorbed, score = book.relevance[0].sum(), book.absorbed()[0], book.score[0]
    out(f"identity: input relevance {relevance:+.8f} + absorbed {absorbed:+.8f} = {relevance + absorbed:+.8f}"
        f"  score {score:+.8f}  difference {relevance + absorbed - score:+.1e}")
    causes = book.absorbed_by_cause()
    out("absorbed by cause: " + " + ".join(f"{c} {v[0]:+.8f}" for c, v in causes.items()) +
        f" = {sum(v[0] for v in causes.values()):+.8f}\n")
    return book


def main(argv=None, out=print):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("R-LSTM", "LSTM"), help="walk this model only")
    parser.add_argument("--gates", choices=GATES, help="the LSTM under this gate rule only")
    args = parser.parse_args(argv)
    for name, method, gates in CASES:
        if args.model in (None, name) and args.gates in (None, gates or "signal_take_all"):
            walk(name, method, gates, out)


if __name__ == "__main__":
    main()
