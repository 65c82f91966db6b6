"""Composites: which relevance rule each kind of node uses, as plain data.

A composite is a dict from a layer kind (``Layer.kind``) to ``(rule name, parameters)``; the key
``"input"`` names the rule of input layers (a linear node whose input carries the tag "input", wholly or
in part: see ``lrpnet.explain``), and the key ``"mixed"`` how a layer seeing pixels and states together
joins the input rule and its own (``"first_group"`` or the thesis's ``"shared"``: ``rules.mixed``).
Every rule is one ``rules.Rule``, registered where its equation is written; the kinds it applies to and
the parameters it takes come from there. Users write their own composites::

    {"input": ("zbox", {"low": -1, "high": 1}), "dense": ("zplus", {}), "conv2d": ("zplus", {})}

``resolve`` completes a composite with ``DEFAULTS`` (what every composite shares: relevance passes
through activations, moves like the gradient through shape layers, splits in proportion at sums and
pools, and goes signal-take-all through gates) and checks every entry.

Presets (THESIS.md section 4): ``dtd`` (z+ hidden, z^B input); the study's LRP ``lrp-alpha1.5beta0.5``
and ``lrp-alpha1beta0`` / ``lrp-alpha2beta1`` / ``lrp-alpha3beta2`` (alpha-beta hidden, z^B input);
``lrp-epsilon`` (eps = 0.01 everywhere, the cell accumulator included) and ``lrp-0``; ``lrp-gamma`` (gamma = 0.25 hidden, z^B input);
``lrp-w2`` / ``lrp-flat`` (that rule everywhere) and ``lrp-w2-input`` / ``lrp-flat-input`` (that rule at
the input, z+ hidden). Section 7, what the thesis's code computed: ``thesis-dtd`` and
``thesis-lrp-alpha1.5beta0.5`` (no bias in any denominator, 1e-9 added to each, Shallow's shared first
layer, the accumulator at 1e-10); ``dtd`` and ``lrp-alpha1.5beta0.5`` stay the principled versions.
"""
from __future__ import annotations

import copy

from . import rules

PIXELS = {"low": -1.0, "high": 1.0}      # pixels are scaled to [-1, 1] (THESIS.md section 1)

LINEAR_KINDS = rules.LINEAR_KINDS
GATE_RULES = tuple(rules.names_for("gatemul"))
POOL_RULES = tuple(rules.names_for("maxpool2d"))

DEFAULTS = {
    # elementwise layers on a signal path pass relevance unchanged: the rule sits on the linear layer
    # before a ReLU; tanh / sigmoid as Arras et al. 2017 treat LSTM's tanh; dropout is the identity at
    # test time; 1 - z only ever sees relevance on a gate path, under LRP-prop / LRP-abs / LRP-half
    "relu": ("pass", {}), "sigmoid": ("pass", {}), "tanh": ("pass", {}), "dropout": ("pass", {}),
    "oneminus": ("pass", {}),
    # shape layers move relevance exactly like the gradient: "columns" sends a gate's relevance (under the
    # gate rules that feed gates) back to its columns of the layer computing the cell's gates together
    "timeslice": ("move", {}), "reshape": ("move", {}), "flatten": ("move", {}), "concat": ("move", {}),
    "timeslices": ("move", {}), "steprows": ("move", {}), "stacksteps": ("move", {}), "columns": ("move", {}),
    "maxpool2d": ("proportional", {}), "avgpool2d": ("proportional", {}), "sumpool2d": ("proportional", {}),
    "add": ("proportional", {"eps": 1e-6}),
    "gatemul": ("signal_take_all", {}),
    "mixed": ("first_group", {}),
}


def _layers(hidden, first, **more):
    return {"input": first, "dense": hidden, "conv2d": hidden, **more}


def _alpha_beta(alpha, beta):
    return _layers(("alpha_beta", {"alpha": alpha, "beta": beta}), ("zbox", dict(PIXELS)))


def _thesis(alpha, beta):
    """What the thesis's code computed (THESIS.md section 7): alpha-beta (DTD: alpha 1, beta 0) with no
    bias in any denominator and 1e-9 added to each; z^B at the input; one shared denominator where a
    layer sees pixels and states together (Shallow's first layer); the accumulator's split at 1e-10."""
    hidden = ("alpha_beta", {"alpha": alpha, "beta": beta, "eps": 1e-9, "with_bias": False,
                             "stabiliser": "added"})
    return _layers(hidden, ("zbox", dict(PIXELS)), mixed=("shared", {}), add=("proportional", {"eps": 1e-10}))


PRESETS = {
    "dtd": _layers(("zplus", {}), ("zbox", dict(PIXELS))),
    "lrp-alpha1.5beta0.5": _alpha_beta(1.5, 0.5),
    "lrp-alpha1beta0": _alpha_beta(1.0, 0.0),
    "lrp-alpha2beta1": _alpha_beta(2.0, 1.0),
    "lrp-alpha3beta2": _alpha_beta(3.0, 2.0),
    # epsilon at the cell accumulator too, as Arras et al.'s LSTM code
    "lrp-epsilon": _layers(("epsilon", {"eps": 0.01}), ("epsilon", {"eps": 0.01}),
                           add=("proportional", {"eps": 0.01})),
    "lrp-0": _layers(("epsilon", {"eps": 0.0}), ("epsilon", {"eps": 0.0})),
    "lrp-gamma": _layers(("gamma", {"gamma": 0.25}), ("zbox", dict(PIXELS))),
    "lrp-w2": _layers(("w_square", {}), ("w_square", {})),
    "lrp-w2-input": _layers(("zplus", {}), ("w_square", {})),
    "lrp-flat": _layers(("flat", {}), ("flat", {})),
    "lrp-flat-input": _layers(("zplus", {}), ("flat", {})),
    "thesis-dtd": _thesis(1.0, 0.0),
    "thesis-lrp-alpha1.5beta0.5": _thesis(1.5, 0.5),
}


def names() -> list:
    """The preset names ``get`` and ``lrpnet.explain`` accept."""
    return list(PRESETS)


def get(name: str) -> dict:
    """A copy of the preset ``name``, completed with the defaults."""
    if name not in PRESETS:
        raise ValueError(f"unknown composite {name!r}; expected one of {', '.join(PRESETS)}")
    return resolve(PRESETS[name])


def resolve(composite: dict, base: dict | None = None) -> dict:
    """``DEFAULTS``, then ``base``, then ``composite``, checked: every entry is (rule name, params) with
    a rule that exists for that kind and parameters that rule accepts."""
    if not isinstance(composite, dict):
        raise TypeError(f"a composite is a dict kind -> (rule, params), got {type(composite).__name__}")
    full = copy.deepcopy(DEFAULTS)
    full.update(copy.deepcopy(base or {}))
    full.update(copy.deepcopy(composite))
    for kind, entry in full.items():
        full[kind] = check_entry(kind, entry)
    if "input" not in full:
        raise ValueError("a composite needs an 'input' entry (the rule of input layers)")
    return full


def check_entry(kind, entry):
    """``entry`` as (rule, params), or a ValueError naming the kind, the rule and what is allowed."""
    if isinstance(entry, str):
        entry = (entry, {})
    if not (isinstance(entry, (tuple, list)) and len(entry) == 2 and isinstance(entry[1], dict)):
        raise ValueError(f"composite entry for {kind!r} must be (rule name, params dict), got {entry!r}")
    name, params = entry
    try:
        rules.lookup(name, kind).check(params)
    except ValueError as e:
        raise ValueError(f"composite entry for {kind!r}: {e}") from None
    return (name, dict(params))
