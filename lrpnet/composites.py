"""Composites: which relevance rule each kind of node uses, as plain data.

A composite is a dict from a layer kind (``Layer.kind``) to ``(rule name, parameters)``; the key
``"input"`` names the rule of input layers (a linear node whose input carries the tag "input", wholly or
in part: see ``lrpnet.explain``). Users write their own::

    {"input": ("zbox", {"low": -1, "high": 1}), "dense": ("zplus", {}), "conv2d": ("zplus", {})}

``resolve`` completes a composite with ``DEFAULTS`` (what every composite shares: relevance passes
through activations, moves like the gradient through shape layers, splits in proportion at sums and
pools, and goes signal-take-all through gates) and checks every entry.

Presets (THESIS.md section 4): ``dtd`` (z+ hidden, z^B input); the study's LRP ``lrp-alpha1.5beta0.5``
and ``lrp-alpha1beta0`` / ``lrp-alpha2beta1`` / ``lrp-alpha3beta2`` (alpha-beta hidden, z^B input);
``lrp-epsilon`` (eps = 0.01 everywhere) and ``lrp-0``; ``lrp-gamma`` (gamma = 0.25 hidden, z^B input);
``lrp-w2`` / ``lrp-flat`` (that rule everywhere) and ``lrp-w2-input`` / ``lrp-flat-input`` (that rule at
the input, z+ hidden).
"""
from __future__ import annotations

import copy
import inspect

from . import backend, rules

PIXELS = {"low": -1.0, "high": 1.0}      # pixels are scaled to [-1, 1] (THESIS.md section 1)

# rule names per kind of node, beyond the linear rules (rules.LINEAR)
POOL_RULES = ("proportional", "winner_take_all")
GATE_RULES = ("signal_take_all", "prop", "half")
LINEAR_KINDS = ("dense", "conv2d")
ALLOWED = {
    "input": tuple(rules.LINEAR), "dense": tuple(rules.LINEAR), "conv2d": tuple(rules.LINEAR),
    "maxpool2d": POOL_RULES, "avgpool2d": ("proportional",), "sumpool2d": ("proportional",),
    "add": ("proportional",), "gatemul": GATE_RULES,
}
OTHER_RULES = ("pass", "move")     # any other kind: relevance passes unchanged, or moves like the gradient

DEFAULTS = {
    # elementwise layers on a signal path pass relevance unchanged: the rule sits on the linear layer
    # before a ReLU; tanh / sigmoid as Arras et al. 2017 treat LSTM's tanh; dropout is the identity at
    # test time; 1 - z only ever sees relevance on a gate path, under LRP-prop / LRP-half
    "relu": ("pass", {}), "sigmoid": ("pass", {}), "tanh": ("pass", {}), "dropout": ("pass", {}),
    "oneminus": ("pass", {}),
    # shape layers move relevance exactly like the gradient: "columns" sends a gate's relevance (under the
    # gate rules that feed gates) back to its columns of the layer computing the cell's gates together
    "timeslice": ("move", {}), "reshape": ("move", {}), "flatten": ("move", {}), "concat": ("move", {}),
    "timeslices": ("move", {}), "steprows": ("move", {}), "stacksteps": ("move", {}), "columns": ("move", {}),
    "maxpool2d": ("proportional", {}), "avgpool2d": ("proportional", {}), "sumpool2d": ("proportional", {}),
    "add": ("proportional", {"eps": 1e-6}),
    "gatemul": ("signal_take_all", {}),
}


def _layers(hidden, first):
    return {"input": first, "dense": hidden, "conv2d": hidden}


def _alpha_beta(alpha, beta):
    return _layers(("alpha_beta", {"alpha": alpha, "beta": beta}), ("zbox", dict(PIXELS)))


PRESETS = {
    "dtd": _layers(("zplus", {}), ("zbox", dict(PIXELS))),
    "lrp-alpha1.5beta0.5": _alpha_beta(1.5, 0.5),
    "lrp-alpha1beta0": _alpha_beta(1.0, 0.0),
    "lrp-alpha2beta1": _alpha_beta(2.0, 1.0),
    "lrp-alpha3beta2": _alpha_beta(3.0, 2.0),
    "lrp-epsilon": _layers(("epsilon", {"eps": 0.01}), ("epsilon", {"eps": 0.01})),
    "lrp-0": _layers(("epsilon", {"eps": 0.0}), ("epsilon", {"eps": 0.0})),
    "lrp-gamma": _layers(("gamma", {"gamma": 0.25}), ("zbox", dict(PIXELS))),
    "lrp-w2": _layers(("w_square", {}), ("w_square", {})),
    "lrp-w2-input": _layers(("zplus", {}), ("w_square", {})),
    "lrp-flat": _layers(("flat", {}), ("flat", {})),
    "lrp-flat-input": _layers(("zplus", {}), ("flat", {})),
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
    rule, params = entry
    allowed = ALLOWED.get(kind, OTHER_RULES)
    if rule not in allowed:
        raise ValueError(f"rule {rule!r} is not available for {kind!r} nodes; expected one of {', '.join(allowed)}")
    fn = {"proportional": _POOL_OR_ADD.get(kind), "winner_take_all": None, "prop": rules.gate_prop,
          "pass": None, "move": None, "signal_take_all": None, "half": None}.get(rule, rules.LINEAR.get(rule))
    if params and fn is None:
        raise ValueError(f"rule {rule!r} for {kind!r} takes no parameters, got {sorted(params)}")
    if fn is not None:
        accepted = set(inspect.signature(fn).parameters) - {"x", "weight", "bias", "layer", "cache", "a",
                                                            "R", "xs", "gate", "signal"}
        unknown = set(params) - accepted
        if unknown:
            raise ValueError(f"rule {rule!r} for {kind!r} does not take {sorted(unknown)}; "
                             f"it takes {sorted(accepted)}")
        if rule == "alpha_beta":     # check alpha - beta = 1 now, not in the middle of a pass
            with backend.using("numpy"):      # on scalars: no device work
                rules.alpha_beta(0.0, 0.0, None, **params)
    return (rule, dict(params))


_POOL_OR_ADD = {"maxpool2d": rules.pool_proportional, "avgpool2d": rules.pool_proportional,
                "sumpool2d": rules.pool_proportional, "add": rules.add_proportional}
