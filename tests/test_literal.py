"""lrpnet.literal, the slow literal forms, against the fast rules: the docstring's example, the rule
variants (no bias, added stabiliser, zennit's gamma, the shared mixed rule), the gate rules, and every
node of whole relevance passes (``literal.node_rule`` against ``explain.node_rule``), float64.

``tests/test_rules.py`` checks the plain linear and pooling rules against the same literal forms."""
import re

import numpy
import pytest

from lrpnet import backend, composites, ledger, literal, rules
from lrpnet.layers import Conv2D, Dense

from devices import dev, host

from tiny import images, small, with_biases


def biased(name, seed=0):
    return with_biases(small(name, seed=seed), seed)


def test_the_docstring_example_runs():
    """The module docstring's example, run as written (it asserts fast == literal itself)."""
    block = re.search(r"compare::\n\n((?: {4}.*\n|\n)+)", literal.__doc__).group(1)
    code = "\n".join(line[4:] for line in block.splitlines())
    assert "literal.linear" in code and "rules.linear" in code
    with backend.using("numpy"):                     # the example's arrays are host arrays
        exec(code, {})


VARIANTS = [("zplus", {"with_bias": False}), ("alpha_beta", {"alpha": 2.0, "beta": 1.0, "with_bias": False}),
            ("alpha_beta", {"alpha": 1.5, "beta": 0.5, "eps": 0.3, "stabiliser": "added"}),
            ("alpha_beta", {"alpha": 1.5, "beta": 0.5, "eps": 0.3, "with_bias": False, "stabiliser": "added"}),
            ("gamma", {"gamma": 0.25, "variant": "zennit"}), ("gamma", {"gamma": 0.5, "variant": "montavon"}),
            ("epsilon", {"eps": 0.1})]


def layers(rng):
    dense = Dense(7, 5, rng=rng, dtype="float64")
    conv = Conv2D(2, 3, kernel_size=(3, 2), stride=(1, 2), padding="SAME", rng=rng, dtype="float64")
    for layer in (dense, conv):
        layer.params["b"][:] = dev(rng.normal(0, 0.5, layer.params["b"].shape))
    return [(dense, (7,), (5,)), (conv, (5, 6, 2), (5, 3, 3))]


@pytest.mark.parametrize("rule,params", VARIANTS, ids=[f"{r}{p}" for r, p in VARIANTS])
def test_rule_variants_equal_literal_forms(rule, params):
    rng = numpy.random.default_rng(0)
    for layer, x_shape, z_shape in layers(rng):
        x = rng.normal(0, 1, (4,) + x_shape)             # signed inputs: every sign case of every rule
        R = rng.normal(0, 1, (4,) + z_shape)
        fast, fast_absorbed = host(rules.linear(layer, dev(x), dev(R), rule, params))
        slow, slow_absorbed = literal.linear(layer, x, R, rule, params)
        numpy.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-11, err_msg=layer.kind)
        numpy.testing.assert_allclose(fast_absorbed, slow_absorbed, rtol=1e-9, atol=1e-11, err_msg=layer.kind)
        assert numpy.abs(slow).max() > 0.1


@pytest.mark.parametrize("shared", [False, True])
def test_mixed_rule_both_joins_equal_literal_forms(shared):
    """Pixels (z^B) and states (alpha-beta) in one input, joined at the first group or in one shared group."""
    rng = numpy.random.default_rng(1)
    box = {"low": -1.0, "high": 1.0}
    for layer, x_shape, z_shape in layers(rng):
        mask = numpy.zeros(x_shape[-1])
        mask[0] = 1.0
        x = rng.uniform(-1, 1, (4,) + x_shape)
        x = numpy.where(mask > 0, x, numpy.abs(x))
        R = rng.normal(0, 1, (4,) + z_shape)
        params = {"alpha": 1.5, "beta": 0.5}
        fast, fast_absorbed = host(rules.linear(layer, dev(x), dev(R), "alpha_beta", params, dev(mask), "zbox", box,
                                                shared))
        slow, slow_absorbed = literal.linear(layer, x, R, "alpha_beta", params, mask, "zbox", box, shared)
        numpy.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-11, err_msg=layer.kind)
        numpy.testing.assert_allclose(fast_absorbed, slow_absorbed, rtol=1e-9, atol=1e-11, err_msg=layer.kind)
        other, _ = literal.linear(layer, x, R, "alpha_beta", params, mask, "zbox", box, not shared)
        assert not numpy.allclose(slow, other)           # the two joins differ


@pytest.mark.parametrize("name", composites.GATE_RULES)
def test_gate_rules_equal_literal_forms(name):
    rng = numpy.random.default_rng(2)
    gate, signal, R = rng.uniform(0, 1, (5, 6)), rng.normal(0, 1, (5, 6)), rng.normal(0, 1, (5, 6))
    signal[0, :3] = -gate[0, :3]                          # g + s = 0: prop's denominator is only eps
    gate[1, :2] = signal[1, :2] = 0                       # |g| + |s| = 0
    fast_rule = rules.lookup(name, "gatemul").equation
    (fg, fs), fast_absorbed = fast_rule(dev(gate), dev(signal), dev(R))
    (sg, ss), slow_absorbed = literal.GATES[name](gate, signal, R)
    fg = numpy.zeros_like(R) if fg is None else host(fg)
    numpy.testing.assert_allclose(fg, sg, rtol=1e-12, atol=1e-15)
    numpy.testing.assert_allclose(host(fs), ss, rtol=1e-12, atol=1e-15)
    numpy.testing.assert_allclose(host(fast_absorbed), slow_absorbed, rtol=1e-12, atol=1e-15)
    numpy.testing.assert_allclose(sg + ss + slow_absorbed, R, rtol=1e-9, atol=1e-12)     # conservation


def test_gate_abs_is_arras_equation():
    """LRP-abs as Arras et al. 2019 write it: R_g = |g| / (|g| + |s|) R (eps = 0), bounded by |R|."""
    g, s, R = numpy.array([[0.2, 0.9]]), numpy.array([[-0.6, 0.3]]), numpy.array([[1.0, -2.0]])
    (Rg, Rs), absorbed = literal.gate_abs(g, s, R, eps=0.0)
    numpy.testing.assert_allclose(Rg, [[0.25, -1.5]])
    numpy.testing.assert_allclose(Rs, [[0.75, -0.5]])
    assert numpy.all(absorbed == 0)


WALKS = [("shallow", "dtd", None), ("shallow", "thesis-lrp-alpha1.5beta0.5", None),
         ("rlstm", "lrp-alpha1.5beta0.5", None),
         ("lstm", "lrp-epsilon", "prop"), ("lstm", "dtd", "abs"), ("gru", "lrp-gamma", "half"),
         ("rgru", "lrp-alpha1.5beta0.5", "prop"), ("conv+deep", "lrp-alpha1.5beta0.5", None),
         ("convrlstm_sd", "lrp-flat", None), ("lstm", "lrp-w2", "half")]


@pytest.mark.parametrize("name,method,gates", WALKS, ids=[f"{a}-{m}-{g}" for a, m, g in WALKS])
def test_every_node_of_a_walk_equals_its_literal_form(name, method, gates):
    """At every node of a relevance pass, the literal form of the rule gives what ``explain`` computed."""
    book = ledger.record(biased(name), images(3), method, start="logit", gates=gates, keep=True)
    kinds = set()
    for e in book.entries:
        if e.node is None:
            continue
        R, fast_in, fast_absorbed = e.arrays
        slow_in, slow_absorbed = literal.node_rule(e.node, R, book.composite)
        scale = numpy.abs(R).max() + 1e-300
        for f, s in zip(fast_in, slow_in):
            f = numpy.zeros_like(s) if f is None else f
            s = numpy.zeros_like(f) if s is None else s
            numpy.testing.assert_allclose(f, s, rtol=1e-8, atol=1e-10 * scale, err_msg=f"{e.layer} step {e.step}")
        numpy.testing.assert_allclose(fast_absorbed, slow_absorbed, rtol=1e-8, atol=1e-10 * scale, err_msg=e.layer)
        kinds.add(e.kind)
    assert "dense" in kinds
    if name not in ("shallow", "conv+deep"):                      # the gated cells
        assert {"add", "gatemul"} <= kinds
    if name.startswith("conv"):
        assert {"conv2d", "sumpool2d"} <= kinds
