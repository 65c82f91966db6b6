"""Explanations: relevance of every input value for a model's score of a target class (THESIS.md section 4).

Gradient methods walk the tape with the layers' backward steps:
- ``"gradient"``: d f_c / dx;  ``"sa"`` (sensitivity analysis): (d f_c / dx)^2;
- ``"gb"`` (guided backprop): the signal through each ReLU is 1[h > 0] max(0, incoming), and the
  sigmoid gates' derivatives are set to zero (the thesis's text, THESIS.md section 7), squared;
  ``"gb-ungated"``: the same with the gates' derivatives kept (what the thesis's code computed);
  the two differ only for gated cells (R-LSTM, LSTM, GRU);
- ``"gradient_x_input"``: x * d f_c / dx (simple Taylor).

Relevance methods (every name in ``lrpnet.composites.names()``, or a composite dict) walk the tape with
``Tape.reverse``: each node's local step is the rule its composite assigns to the node's layer kind.
Nothing here knows an architecture; everything follows from layer kinds and the graph:

- a linear node (dense, conv2d) whose input Var carries the tag "input" uses the composite's
  ``"input"`` rule; one whose input was made by a ``concat`` node joining "input"-tagged and other
  values (Shallow's [x_t ; r_t], Conv+'s [x_t ; previous conv output]) uses the MIXED rule: the input
  rule on the pixel features and the layer's rule on the others, in one denominator (``rules.linear``);
- every other node uses the rule of its kind; an unknown kind is an error naming kind and node.

Starting relevance (``start``): ``"relu_logit"`` R = relu(f_c) (the thesis), ``"logit"`` R = f_c,
``"onehot"`` R = 1, placed at the target's logit. Accounting: every rule reports the relevance it
absorbs (bias and stabiliser shares, zero denominators); relevance reaching a leaf other than the input
(the zero initial states) counts as absorbed too, so that for every sample
``relevance.sum() + absorbed == score`` up to float rounding.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy

from . import backend, composites, rules

GRADIENT_METHODS = ("sa", "gb", "gb-ungated", "gradient", "gradient_x_input")
GUIDED = {"gb": ("relu", "sigmoid"), "gb-ungated": ("relu",)}     # layer kinds whose guided step is used
CHUNK = {"cpu": 250, "gpu": 1000}      # default samples per chunk of ``explain`` (its docstring)
STARTS = ("relu_logit", "logit", "onehot")
GATES = composites.GATE_RULES


@dataclass
class Explanation:
    """What ``explain(..., return_details=True)`` returns; all arrays are NumPy, one row per sample.

    relevance (N, ...): shape of x. score (N,): the starting relevance. absorbed (N,): relevance absorbed
    by biases, stabilisers, zero denominators and the initial states (0 for gradient methods).
    per_step (N, T): relevance reaching each time slice: the input relevance summed over the columns of
    each step (``model.steps``; None for a model without steps, or for gradient methods). per_layer: layer name -> (N,)
    relevance at the layer's output, summed over time steps (a batched layer, run once on every
    step's rows, has one entry holding all steps).
    target (N,), logits (N, n_classes). tape: the traced forward pass, for ``values`` (None when
    the batch was explained in chunks).
    """
    relevance: numpy.ndarray
    score: numpy.ndarray
    absorbed: numpy.ndarray
    per_step: numpy.ndarray | None
    per_layer: dict
    target: numpy.ndarray
    logits: numpy.ndarray
    method: str = ""
    tape: object = field(default=None, repr=False)
    _signals: dict = field(default_factory=dict, repr=False)

    def values(self, var):
        """Relevance at a Var of ``self.tape`` (kept when the batch went through in one piece), e.g.
        ``[e.values(node.output) for node in e.tape.nodes]``; None for a Var no relevance reached."""
        s = self._signals.get(id(var))
        return None if s is None else backend.to_numpy(s)


def methods() -> list:
    """Every method name ``explain`` accepts."""
    return list(GRADIENT_METHODS) + composites.names()


def explain(model, x, method, target="predicted", start="relu_logit", return_details=False,
            gates=None, composite=None, batch_size=None):
    """Relevance of every entry of ``x`` for ``model``'s score of ``target``; an array shaped like x.

    method: a name from ``methods()``, a composite dict, or "lrp" with ``composite=``; a preset name with
        ``composite=`` updates the preset with those entries.
    target: "predicted", an int class, or an int array (N,) (e.g. the true labels); not a bool.
    start: "relu_logit" | "logit" | "onehot" (module docstring). With "logit" and the gamma rule, a
        negative target logit can flip the sign of the whole explanation (the gamma rule's
        denominator crosses zero on the way down): ``explain`` warns when that case arises.
    gates: None (the composite's gate rule, signal-take-all by default), or one of
        ``composites.GATE_RULES``: "signal_take_all", "prop", "abs", "half" (``lrpnet.rules``).
    batch_size: explain in chunks of this many samples (each chunk goes through the tape at once);
        default ``CHUNK[device]``: 250 on the CPU (a tape's arrays grow with the chunk: 500 was
        faster still for the recurrent models and slower for ConvDeep, whose arrays then leave the
        caches; 10,000 samples peak under 0.45 GB at 250; benchmarks/RESULTS.md, "Explain's chunk"),
        1000 on a GPU (fewer, larger launches). ``details.tape`` is kept only when the whole batch
        fits in one chunk.

    No samples (x of shape (0, ...)) give an empty result of the same shapes and dtypes as any other.
    """
    import warnings
    if start not in STARTS:
        raise ValueError(f"unknown start {start!r}; expected one of {', '.join(STARTS)}")
    name, comp = _method(method, composite, gates)
    with model.running():
        x = model.check_input(x)
        n = x.shape[0]
        targets = _targets(target, n, model)
        step = CHUNK[model.device] if batch_size is None else int(batch_size)
        if step < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size}")
        if n and start == "logit" and comp is not None and any(rule == "gamma" for rule, _ in comp.values()):
            logits = model.forward(x, batch_size=step)
            f = logits.max(axis=1) if isinstance(targets, str) else logits[backend.xp().arange(n), targets]
            if bool((f < 0).any()):
                warnings.warn(f"explain: start='logit' with the gamma rule, and {int((f < 0).sum())} of {n} "
                              f"target logits are negative: the gamma rule's denominator can cross zero "
                              f"there and flip the sign of their relevance; start='relu_logit' explains "
                              f"only positive evidence", UserWarning, stacklevel=2)
        if n == 0:        # explain one zero sample, then keep none of it: every shape, dtype and name
            x, targets = backend.xp().zeros((1,) + model.input_shape, dtype=model.dtype), "predicted"
        parts = [_explain_batch(model, x[i:i + step], name, comp,
                                targets if isinstance(targets, str) else targets[i:i + step],
                                start, return_details, return_details and step >= n > 0)
                 for i in range(0, max(n, 1), step)]
    if not return_details:
        return parts[0][:0] if n == 0 else numpy.concatenate(parts)
    if n == 0:
        e = parts[0]
        return Explanation(e.relevance[:0], e.score[:0], e.absorbed[:0],
                           None if e.per_step is None else e.per_step[:0],
                           {k: v[:0] for k, v in e.per_layer.items()}, e.target[:0], e.logits[:0], name)
    return _concat(parts, name)


def _method(method, composite, gates):
    """(name, resolved composite or None) for a method argument, or a ValueError listing valid names."""
    if gates is not None and gates not in GATES:
        raise ValueError(f"unknown gate rule {gates!r}; expected one of {', '.join(GATES)}")
    extra = {} if gates is None else {"gatemul": (gates, {})}
    if isinstance(method, dict):
        return "custom", composites.resolve({**method, **extra})
    if method in GRADIENT_METHODS:
        if composite is not None:
            raise ValueError(f"method {method!r} is a gradient method and takes no composite")
        return method, None
    if method == "lrp" and composite is not None:
        return "custom", composites.resolve({**composite, **extra})
    if method in composites.PRESETS:
        return method, composites.resolve({**(composite or {}), **extra}, base=composites.PRESETS[method])
    raise ValueError(f"unknown explanation method {method!r}; expected one of {', '.join(methods())}, "
                     "a composite dict, or 'lrp' with composite=")


def _targets(target, n, model):
    if isinstance(target, (bool, numpy.bool_)):      # an int subclass: True would be taken as class 1
        raise TypeError(f"target must be 'predicted', an int class or an int array, got the bool {target!r}")
    if isinstance(target, str):
        if target != "predicted":
            raise ValueError(f"target must be 'predicted', an int class or an int array, got {target!r}")
        return target
    if isinstance(target, (int, numpy.integer)) and not isinstance(target, bool):
        if not 0 <= int(target) < model.n_classes:
            raise ValueError(f"target class {target} is outside [0, {model.n_classes})")
        return backend.xp().full(n, int(target), dtype=backend.xp().int64)
    return model.check_labels(target, n)         # on the model's device: sliced per chunk there


def _explain_batch(model, x, method, comp, target, start, details, keep):
    """One chunk's relevance (a NumPy array) or, with ``details``, its ``Explanation``. Everything
    stays on the device until the end, which copies to the host once per dtype (``backend.fetch``)."""
    xp = backend.xp()
    tape, x_var, out = model.trace(x, checked=True)
    logits = out.value
    n = logits.shape[0]
    if isinstance(target, str):
        target = xp.argmax(logits, axis=1)
    onehot = xp.zeros_like(logits)
    onehot[xp.arange(n), target] = 1
    f = (logits * onehot).sum(axis=1)
    score = {"relu_logit": xp.maximum(f, 0), "logit": f, "onehot": xp.ones_like(f)}[start]
    if comp is None:
        relevance = _gradient_method(tape, x_var, out, onehot, method)
        info = dict(absorbed=xp.zeros_like(f), per_step=None, per_layer={}, signals={})
    else:
        relevance, info = _relevance(tape, x_var, out, onehot * score[:, None], comp, keep, details)
    if not details:
        return backend.to_numpy(relevance)
    if comp is not None and getattr(model, "steps", None) is not None:     # the relevance in each step's columns
        info["per_step"] = xp.stack([relevance[..., a:b].reshape(n, -1).sum(axis=1) for a, b in model.steps], axis=1)
    layers = list(info["per_layer"])
    got = backend.fetch({"relevance": relevance, "score": score, "absorbed": info["absorbed"],
                         "per_step": info["per_step"], "target": target, "logits": logits,
                         **{("layer", k): v for k, v in info["per_layer"].items()}})
    return Explanation(got["relevance"], got["score"], got["absorbed"], got["per_step"],
                       {k: got[("layer", k)] for k in layers}, got["target"].astype(numpy.int64),
                       got["logits"], method, tape if keep else None, info["signals"])


def _gradient_method(tape, x_var, out, onehot, method):
    leaf_grads, _ = tape.backward({out: onehot}, guided=GUIDED.get(method, False), params=False, leaves=(x_var,))
    g = leaf_grads.get(x_var)
    g = backend.xp().zeros_like(x_var.value) if g is None else g
    if method in ("sa", "gb", "gb-ungated"):
        return g * g
    return g * x_var.value if method == "gradient_x_input" else g


# -- the relevance pass --------------------------------------------------------------------------------
def _relevance(tape, x_var, out, R0, comp, keep, details=True):
    """(relevance at x_var, info): the relevance walk from R0 at ``out``. ``details``: also the sums
    the ``Explanation`` reports (per layer, absorbed); without, none of them is computed (a reduction
    over every node's relevance and what it absorbs, which only ``return_details`` reads)."""
    xp = backend.xp()
    n = R0.shape[0]
    absorbed = xp.zeros(n, dtype=R0.dtype)
    per_layer, signals, found = {}, {}, {}

    def total(a):
        return a.reshape(n, -1).sum(axis=1)

    def local_step(node, R):
        nonlocal absorbed
        if keep:
            signals[id(node.output)] = R
        R_in, lost = node_rule(node, R, comp, found)
        if details:
            name = node.layer.name or node.layer.kind
            per_layer[name] = per_layer[name] + total(R) if name in per_layer else total(R)
            absorbed = absorbed + total(lost)
        return R_in

    with rules.keeping_parts():      # each weight's W+ and W- once, not at every step
        leaves = tape.reverse({out: R0}, local_step)
    relevance = leaves.get(x_var)
    relevance = xp.zeros_like(x_var.value) if relevance is None else relevance
    for v, s in leaves.items():      # relevance reaching the initial states (or other leaves)
        if v is not x_var and details:
            absorbed = absorbed + total(s)
        if keep:
            signals[id(v)] = s
    return relevance, dict(absorbed=absorbed, per_step=None, per_layer=per_layer, signals=signals)


def node_rule(node, R, comp, found=None):
    """(relevance per input of ``node``, absorbed relevance shaped like R) under composite ``comp``:
    the rule the composite names for the node's kind (``rules.Rule.apply``). ``found``: a dict
    (rule name, kind) -> rule that keeps what ``rules.lookup`` found, for a walk that asks again at
    every node (a recurrent tape has hundreds of nodes of a dozen kinds)."""
    kind = node.layer.kind
    if kind not in comp:
        raise ValueError(f"no relevance rule for layer kind {kind!r} (node of layer {node.layer.name!r}, "
                         f"step {node.step}); add it to the composite, e.g. {{{kind!r}: ('pass', {{}})}}")
    name, params = comp[kind]
    if found is None:
        return rules.lookup(name, kind).apply(node, R, params, comp)
    if (name, kind) not in found:
        found[(name, kind)] = rules.lookup(name, kind)
    return found[(name, kind)].apply(node, R, params, comp)


pixel_mask = rules.pixel_mask


def _concat(parts, name):
    if len(parts) == 1:
        return parts[0]
    cat = numpy.concatenate
    per_step = None if parts[0].per_step is None else cat([p.per_step for p in parts])
    per_layer = {k: cat([p.per_layer[k] for p in parts]) for k in parts[0].per_layer}
    return Explanation(cat([p.relevance for p in parts]), cat([p.score for p in parts]),
                       cat([p.absorbed for p in parts]), per_step, per_layer,
                       cat([p.target for p in parts]), cat([p.logits for p in parts]), name)
