"""A relevance ledger: where the relevance of one explanation goes, node by node (THESIS.md section 4).

``record(model, x, method, ...)`` traces the model and walks its tape backwards as ``lrpnet.explain``
does (the same composite, the rule ``lrpnet.explain.node_rule`` applies at every node: ``rule_step``),
writing down for every node of the walk, in the order of the walk:

    layer, kind, step   the node (step None: the head, or a block run on all steps at once)
    rule, params        the rule applied; a linear node gets the input rule, its layer's rule, or
                        "mixed" (pixels and states in one input: params {"input": ..., kind: ...,
                        "join": how they share a denominator, the composite's "mixed" entry})
    arrived             the relevance at the node's output
    to                  the relevance passed to each input, keyed by the layer that made the input
                        ("input" for the model's input, "state@<layer>" for an initial state)
    absorbed            what the rule kept, = bias + stabiliser + zero + state, by cause (``causes``):
      bias                s b', the bias's share of a linear rule's denominator z + eps sign(z)
      stabiliser          s eps sign(z), the stabiliser's share (every rule that divides)
      zero                c R where z + eps sign(z) = 0: relevance with nothing to go to
      state               what reaches an initial state (its own leaf row, below)
    residual            arrived - passed - absorbed: zero up to float rounding, for every rule

with s = c R / (z + eps sign(z)) the rule's stabilised division (``lrpnet.rules``, module docstring).
A linear node's causes come from ``rules.propagate`` (``parts=``); a proportional rule (pooling, the
sum, LRP-prop and LRP-abs) divides by a total of its inputs (its ``Rule.denominator``) and has no bias, so its
causes are the stabiliser's and the zero denominators' (``rules.divide_parts``); the other rules absorb
nothing. Then one row per leaf: "input" (the relevance that reaches x: the explanation) and each
initial state (zero states: what reaches them counts as absorbed, as in ``explain``). So, per sample,
first row's arrived = score = input relevance + sum of all absorbed.

Every number is a total over the node's units; the ledger keeps it per sample (arrays of shape (N,)),
and ``records``, ``table``, ``by_layer`` and ``by_step`` show one sample (``sample=k``) or the sum
over the batch (``sample=None``, the default). ``keep=True`` also keeps the tape, each node and its
arrays (relevance in, out and absorbed, and ``parts``: absorbed by cause) for a closer look
(``experiments/walkthrough.py``).

It is its own walk: ``explain`` does no extra work for it::

    book = ledger.record(model, x, "dtd")
    print(book.table(sample=0))
    pandas.DataFrame(book.records(sample=0))
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy

from . import backend, composites, rules
from .explain import STARTS, _method, _targets, node_rule
from .graph import dense
from .literal import host

CAUSES = ("bias", "stabiliser", "zero", "state")  # why relevance is absorbed (module docstring)


@dataclass
class Entry:
    """One row of the ledger; totals are per sample, shape (N,)."""
    layer: str
    kind: str
    step: int | None
    rule: str
    params: dict
    arrived: numpy.ndarray
    to: dict
    absorbed: numpy.ndarray
    causes: dict                                          # cause (CAUSES) -> (N,); they add up to absorbed
    node: object = field(default=None, repr=False)       # with keep=True
    arrays: tuple = field(default=None, repr=False)      # with keep=True: (R, R per input, absorbed)
    parts: dict = field(default=None, repr=False)        # with keep=True: absorbed by cause, arrays shaped like R

    @property
    def passed(self):
        return sum(self.to.values(), numpy.zeros_like(self.arrived))

    @property
    def residual(self):
        return self.arrived - self.passed - self.absorbed


@dataclass
class Ledger:
    """Every node of one relevance pass (``record``); ``relevance`` is the input relevance, shaped like x."""
    entries: list
    score: numpy.ndarray
    target: numpy.ndarray
    relevance: numpy.ndarray
    method: str
    composite: dict = field(repr=False)
    tape: object = field(default=None, repr=False)        # with keep=True: the traced forward pass

    def absorbed(self):
        """Relevance absorbed per sample, (N,): by the rules and by the initial states."""
        return sum((e.absorbed for e in self.entries), numpy.zeros_like(self.score))

    def absorbed_by_cause(self) -> dict:
        """``absorbed()`` by cause (``CAUSES``): cause -> (N,)."""
        return {c: sum((e.causes[c] for e in self.entries), numpy.zeros_like(self.score)) for c in CAUSES}

    def records(self, sample=None) -> list:
        """One dict per row (for ``pandas.DataFrame``): the row's fields, with ``passed`` and ``residual``,
        and absorbed by cause as columns of their own (``CAUSES``); numbers for one sample, or summed over
        the batch when ``sample`` is None."""
        pick = _picker(sample)
        return [dict(order=k, layer=e.layer, kind=e.kind, step=e.step, rule=e.rule, params=e.params,
                     arrived=pick(e.arrived), passed=pick(e.passed), absorbed=pick(e.absorbed),
                     **{c: pick(e.causes[c]) for c in CAUSES},
                     residual=pick(e.residual), to={name: pick(v) for name, v in e.to.items()})
                for k, e in enumerate(self.entries)]

    def by_layer(self, sample=None) -> list:
        """Per layer, in the order of the walk: nodes, arrived (as ``Explanation.per_layer``), passed,
        absorbed and its causes, residual, summed over the layer's nodes (its time steps)."""
        return _group(self.records(sample), "layer")

    def by_step(self, sample=None) -> list:
        """Per time step (steps in order, then None: the head, batched blocks and the leaves): nodes,
        arrived, passed, absorbed and its causes, residual and ``to_input``, the relevance passed to the
        model's input at that step (``Explanation.per_step`` when every step reads its own slice)."""
        rows = _group(self.records(sample), "step")
        return sorted(rows, key=lambda r: (r["step"] is None, r["step"] or 0))

    def table(self, sample=None) -> str:
        """The ledger as a text table, one row per node of the walk."""
        rows = [("#", "layer", "kind", "t", "rule", "arrived", "passed", "absorbed", *CAUSES, "residual", "to")]
        for r in self.records(sample):
            rows.append((str(r["order"]), r["layer"], r["kind"], _step(r["step"]), describe(r["rule"], r["params"]),
                         f"{r['arrived']:+.6g}", f"{r['passed']:+.6g}", f"{r['absorbed']:+.3g}",
                         *(f"{r[c]:+.3g}" for c in CAUSES),
                         f"{r['residual']:+.1e}", ", ".join(f"{k} {v:+.4g}" for k, v in r["to"].items())))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        right = (0, 3) + tuple(range(5, 9 + len(CAUSES)))       # numbers align right
        return "\n".join("  ".join(c.rjust(w) if i in right else c.ljust(w)
                                   for i, (c, w) in enumerate(zip(row, widths))).rstrip() for row in rows)

    def __str__(self):
        return self.table()


def record(model, x, method, target="predicted", start="relu_logit", gates=None, composite=None, keep=False):
    """The ledger of ``explain(model, x, method, target=, start=, gates=, composite=)``: a relevance method
    (a preset name, a composite dict, or "lrp" with ``composite=``). ``keep=True`` keeps the tape, and
    every node and its arrays in the entries."""
    name, comp = _composite(method, composite, gates)
    if start not in STARTS:
        raise ValueError(f"unknown start {start!r}; expected one of {', '.join(STARTS)}")
    with model.running():
        xp = backend.xp()
        tape, x_var, out = model.trace(x)
        logits = out.value
        n = logits.shape[0]
        t = _targets(target, n, model)
        if isinstance(t, str):
            t = xp.argmax(logits, axis=1)
        f = logits[xp.arange(n), t]
        score = {"relu_logit": xp.maximum(f, 0), "logit": f, "onehot": xp.ones_like(f)}[start]
        R0 = xp.zeros_like(logits)
        R0[xp.arange(n), t] = score
        consumers = {}
        for node in tape.nodes:
            for v in node.inputs:
                consumers.setdefault(id(v), node.layer.name or node.layer.kind)
        entries = []

        def local_step(node, R):
            R_in, absorbed, parts = rule_step(node, R, comp)
            to = {k: total(r, n) for k, r in zip(_labels(node, consumers), R_in) if r is not None}
            causes = {c: total(parts[c], n) if c in parts else numpy.zeros(n) for c in CAUSES}
            arrays = (host(R), tuple(host(r) for r in R_in), host(absorbed)) if keep else None
            entries.append(Entry(node.layer.name or node.layer.kind, node.layer.kind, node.step, *rule_of(node, comp),
                                 total(R, n), to, total(absorbed, n), causes, node if keep else None, arrays,
                                 {c: host(a) for c, a in parts.items()} if keep else None))
            return R_in

        leaves = tape.reverse({out: R0}, local_step)
        relevance = leaves.get(x_var)
        relevance = xp.zeros_like(x_var.value) if relevance is None else relevance
        for v, R in sorted(leaves.items(), key=lambda vr: vr[0] is not x_var):     # the input first
            is_input = v is x_var
            kept = numpy.zeros(n) if is_input else total(R, n)        # an initial state absorbs what reaches it
            entries.append(Entry(_leaf(v, consumers), "leaf", None, "-", {}, total(R, n),
                                 {"explanation": total(R, n)} if is_input else {}, kept,
                                 {**{c: numpy.zeros(n) for c in CAUSES}, "state": kept}, None,
                                 (host(R), (), None) if keep else None,
                                 ({} if is_input else {"state": host(R)}) if keep else None))
        return Ledger(entries, host(score), host(t).astype(numpy.int64), host(relevance), name, comp,
                      tape if keep else None)


def rule_step(node, R, comp):
    """(relevance per input, absorbed, absorbed by cause) of the rule ``comp`` applies at ``node``:
    ``explain.node_rule``'s result, and {cause: array shaped like R} (module docstring). A linear node
    runs the rule node_rule runs there (``rules.linear_choice``, as ``rule_of`` names it),
    asking ``rules.propagate`` for the parts; a proportional rule splits by its denominator."""
    kind = node.layer.kind
    if kind in composites.LINEAR_KINDS:
        parts = {}
        R_in, absorbed = rules.linear(node.layer, node.inputs[0].value, R, *rules.linear_choice(node, comp),
                                      parts=parts)
        return (R_in,), absorbed, parts
    R_in, absorbed = node_rule(node, R, comp)
    R_in = tuple(dense(r) for r in R_in)      # a slice's graph.Part filled in (None stays None)
    name, params = comp[kind]
    rule = rules.lookup(name, kind)
    z = None if rule.denominator is None else rule.denominator(node)
    if z is None:
        return R_in, absorbed, {}
    return R_in, absorbed, rules.divide_parts(R, z, {**rule.params, **params}["eps"])


def rule_of(node, comp):
    """(rule, params) that ``comp`` applies at ``node``: for a linear node the input rule, its layer's
    rule, or ("mixed", {"input": (rule, params), kind: (rule, params), "join": composite's "mixed"})."""
    kind = node.layer.kind
    if kind not in composites.LINEAR_KINDS:
        return comp[kind]
    rule, params, mask, pixel_rule, pixel_params, shared = rules.linear_choice(node, comp)
    if mask is None:
        return rule, params
    return "mixed", {"input": (pixel_rule, pixel_params), kind: (rule, params),
                     "join": "shared" if shared else "first_group"}


def describe(rule, params):
    """A rule and its parameters in one short string: "alpha_beta(alpha=1.5, beta=0.5)"."""
    if rule == "mixed":
        parts = [describe(*p) for k, p in params.items() if k != "join"]
        return f"mixed({params['join']}): " + " + ".join(parts)
    args = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
    return f"{rule}({args})" if args else rule


def total(a, n):
    """Per-sample sum of an array of n samples, on the host: (N, ...), or (N*T, ...) sample-major rows
    (a batched block's value, ``lrpnet.models.recurrent``), whose sample k is its k-th block of rows."""
    return host(a).reshape(n, -1).sum(axis=1)


def _composite(method, composite, gates):
    """(name, resolved composite) for a relevance method, as ``explain`` resolves it."""
    name, comp = _method(method, composite, gates)
    if comp is None:
        raise ValueError(f"the ledger follows relevance methods: a composite dict, 'lrp' with composite=, "
                         f"or one of {', '.join(composites.names())}; got {method!r}")
    return name, comp


def _labels(node, consumers):
    """A name per input of ``node``: the layer that made it, or the leaf's label; repeats get "#k"."""
    names = [v.node.layer.name or v.node.layer.kind if v.node is not None else _leaf(v, consumers)
             for v in node.inputs]
    return [f"{s}#{k}" if names.count(s) > 1 else s for k, s in enumerate(names)]


def _leaf(v, consumers):
    return "input" if v.tag == "input" else f"{v.tag or 'leaf'}@{consumers.get(id(v), '?')}"


def _picker(sample):
    if sample is None:
        return lambda a: float(a.sum())
    return lambda a: float(a[sample])


def _step(step):
    return "-" if step is None else str(step)


def _group(records, key):
    groups, sums = {}, ("arrived", "passed", "absorbed", *CAUSES, "residual")
    for r in records:
        g = groups.setdefault(r[key], {key: r[key], "nodes": 0, **dict.fromkeys(sums, 0.0), "to_input": 0.0})
        g["nodes"] += 1
        for k in sums:
            g[k] += r[k]
        if r["kind"] != "leaf":
            g["to_input"] += r["to"].get("input", 0.0)
    return list(groups.values())
