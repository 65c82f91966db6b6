"""Every LRP rule against a slow literal form of its equation, for dense and conv layers (float64).

The literal forms (``lrpnet.literal``) write the local contributions out, z_jk = x_j w_jk, with numpy
broadcasting over (sample, input j, output k), as the LRP toolbox's reference implementation does; a
convolution is written as its explicit dense matrix, built by a loop over output positions and kernel offsets.

The rules run under the backend in force (``LRPNET_BACKEND``) on device copies of the inputs; the
literal forms run on the host, with NumPy, on the layers' parameters copied back.
"""
import numpy
import pytest

from lrpnet import composites, literal, rules
from lrpnet.layers import AvgPool2D, Conv2D, Dense, MaxPool2D, SumPool2D
from lrpnet.graph import Tape

from devices import dev, host

BATCHES = (1, 16, 64)


RULES = [("epsilon", {"eps": 0.0}), ("epsilon", {"eps": 0.3}), ("zplus", {}), ("alpha_beta", {"alpha": 1.5, "beta": 0.5}),
         ("alpha_beta", {"alpha": 3.0, "beta": 2.0}), ("alpha_beta", {"alpha": 1.0, "beta": 0.0}),
         ("zbox", {"low": -1.0, "high": 1.0}), ("w_square", {}), ("flat", {}), ("gamma", {"gamma": 0.25, "eps": 0.0})]
CONVS = [dict(in_channels=2, out_channels=3, kernel_size=3, stride=1, padding="SAME"),
         dict(in_channels=2, out_channels=2, kernel_size=(3, 2), stride=2, padding="VALID")]
CONV_HW = (5, 6)


def make_dense(rng, bias="plain"):
    layer = Dense(7, 5, bias=bias, rng=rng, dtype="float64")
    if bias == "plain":
        layer.params["b"][:] = dev(rng.normal(0, 0.3, 5))
    return layer


def make_conv(rng, spec, bias="plain"):
    layer = Conv2D(**spec, bias=bias, rng=rng, dtype="float64")
    if bias == "plain":
        layer.params["b"][:] = dev(rng.normal(0, 0.3, spec["out_channels"]))
    return layer


def dense_case(rng, n, layer):
    x = rng.uniform(-1, 1, (n, layer.n_in))
    R = rng.uniform(-0.5, 1.0, (n, layer.n_out))
    return x, R, lambda a: a


def conv_case(rng, n, layer):
    x = rng.uniform(-1, 1, (n, *CONV_HW, layer.in_channels))
    _, (oh, ow) = literal.conv_matrix(host(layer.weight), CONV_HW, layer.stride, layer.padding)
    R = rng.uniform(-0.5, 1.0, (n, oh, ow, layer.out_channels))
    return x, R, lambda a: a.reshape(n, -1)


def layers_and_cases(rng, bias="plain"):
    yield "dense", make_dense(rng, bias), dense_case
    for spec in CONVS:
        yield f"conv{spec['stride']}", make_conv(rng, spec, bias), conv_case


# -- fast form == literal form ---------------------------------------------------------------------------
@pytest.mark.parametrize("n", BATCHES)
@pytest.mark.parametrize("rule,params", RULES, ids=[f"{r}{p}" for r, p in RULES])
def test_rule_equals_literal_form(rule, params, n):
    rng = numpy.random.default_rng(n)
    for label, layer, case in layers_and_cases(rng):
        x, R, flat = case(rng, n, layer)
        R_in, absorbed = host(rules.linear(layer, dev(x), dev(R), rule, params))
        want_in, want_abs = literal.linear(layer, x, R, rule, params)
        numpy.testing.assert_allclose(R_in, want_in, rtol=1e-9, atol=1e-11, err_msg=label)
        numpy.testing.assert_allclose(absorbed, want_abs, rtol=1e-9, atol=1e-11, err_msg=label)
        # the accounting identity per sample: input relevance + absorbed = starting relevance
        numpy.testing.assert_allclose(flat(R_in).sum(1) + flat(absorbed).sum(1), flat(R).sum(1),
                                      rtol=1e-10, atol=1e-12, err_msg=label)


@pytest.mark.parametrize("n", BATCHES)
@pytest.mark.parametrize("state_rule,state_params", [("zplus", {}), ("alpha_beta", {"alpha": 1.5, "beta": 0.5})])
def test_mixed_rule_equals_literal_form(state_rule, state_params, n):
    """Shallow's first layer / Conv+'s lateral convs: z^B on pixels and z+ (alpha-beta) on states, one denominator."""
    rng = numpy.random.default_rng(100 + n)
    box = {"low": -1.0, "high": 1.0}
    for label, layer, case in layers_and_cases(rng, bias="negsoftplus"):
        x, R, flat = case(rng, n, layer)
        feature_mask = numpy.zeros(x.shape[-1])
        feature_mask[:1] = 1.0                                  # first feature / channel = pixels
        x = numpy.where(feature_mask > 0, x, numpy.abs(x))      # states are non-negative (ReLU outputs)
        R_in, absorbed = host(rules.linear(layer, dev(x), dev(R), state_rule, state_params, dev(feature_mask),
                                           "zbox", box))
        want_in, want_abs = literal.linear(layer, x, R, state_rule, state_params, feature_mask, "zbox", box)
        numpy.testing.assert_allclose(R_in, want_in, rtol=1e-9, atol=1e-11, err_msg=label)
        numpy.testing.assert_allclose(absorbed, want_abs, rtol=1e-9, atol=1e-11, err_msg=label)
        # and it really differs from plain z^B and plain z+ on the same layer
        assert not numpy.allclose(R_in, host(rules.linear(layer, dev(x), dev(R), "zbox", box)[0]))
        assert not numpy.allclose(R_in, host(rules.linear(layer, dev(x), dev(R), state_rule, state_params)[0]))


@pytest.mark.parametrize("rule,params", RULES, ids=[f"{r}{p}" for r, p in RULES])
def test_conservation_without_bias(rule, params):
    """Without a bias and with eps -> 0 every rule conserves: sum of R_in = sum of R, to 1e-10."""
    rng = numpy.random.default_rng(7)
    params = {**params, "eps": 0.0} if rule in ("epsilon", "gamma") else params
    for label, layer, case in layers_and_cases(rng, bias=None):
        x, R, flat = case(rng, 16, layer)
        R_in, absorbed = host(rules.linear(layer, dev(x), dev(R), rule, params))
        # a unit with no positive contribution at all (z+ = 0: a border conv window) keeps its relevance
        # as absorbed; everything else is conserved exactly
        # (alpha-beta: one of its two groups, absorbing alpha R or -beta R)
        shares = [1.0] + ([params["alpha"], -params["beta"]] if rule == "alpha_beta" else [])
        dead = (absorbed != 0) & numpy.any([numpy.isclose(absorbed, c * R, rtol=1e-12, atol=0) for c in shares], axis=0)
        assert dead.mean() < 0.05, label
        numpy.testing.assert_allclose(flat(R_in).sum(1), flat(R - numpy.where(dead, absorbed, 0)).sum(1),
                                      rtol=1e-10, atol=1e-12, err_msg=label)
        assert numpy.abs(numpy.where(dead, 0, absorbed)).max() < 1e-10


def test_bias_absorbs_relevance():
    """With a bias the rules that keep it absorb a nonzero share (so the accounting test can fail)."""
    rng = numpy.random.default_rng(3)
    layer = make_dense(rng)
    x, R, _ = dense_case(rng, 8, layer)
    for rule in ("epsilon", "zplus", "gamma"):
        _, absorbed = host(rules.linear(layer, dev(x), dev(R), rule, {}))
        assert numpy.abs(absorbed).sum() > 1e-3, rule
    _, absorbed = host(rules.linear(layer, dev(x), dev(R), "zbox", {}))
    assert numpy.abs(absorbed).max() == 0.0        # z^B ignores the bias (module docstring of rules)


def test_zero_denominator_is_absorbed_not_nan():
    """Dead inputs (x = 0) give z = 0: LRP-0 and z+ absorb the relevance instead of dividing by zero."""
    layer = Dense(4, 3, bias=None, rng=numpy.random.default_rng(0), dtype="float64")
    x = numpy.zeros((2, 4))
    R = numpy.ones((2, 3))
    for rule, params in (("epsilon", {"eps": 0.0}), ("zplus", {}), ("alpha_beta", {})):
        R_in, absorbed = host(rules.linear(layer, dev(x), dev(R), rule, params))
        assert numpy.all(R_in == 0) and numpy.allclose(absorbed, R), rule


def test_alpha_beta_needs_alpha_minus_beta_one():
    with pytest.raises(ValueError, match="alpha - beta = 1"):
        rules.alpha_beta(dev(numpy.ones((1, 2))), dev(numpy.ones((2, 2))), None, alpha=2.0, beta=0.5)
    with pytest.raises(ValueError, match="alpha - beta = 1"):
        composites.resolve({"input": ("zbox", {}), "dense": ("alpha_beta", {"alpha": 2, "beta": 2})})


def test_unknown_rule_and_bad_params_are_named():
    with pytest.raises(ValueError, match="unknown linear rule 'zminus'"):
        rules.linear(make_dense(numpy.random.default_rng(0)), dev(numpy.ones((1, 7))), dev(numpy.ones((1, 5))),
                     "zminus")
    with pytest.raises(ValueError, match="does not take"):
        composites.resolve({"input": ("zbox", {"lo": -1})})
    with pytest.raises(ValueError, match="not available for 'gatemul'"):
        composites.resolve({"input": ("zbox", {}), "gatemul": ("zplus", {})})


# -- pooling --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", BATCHES)
@pytest.mark.parametrize("cls", [SumPool2D, AvgPool2D, MaxPool2D])
@pytest.mark.parametrize("padding,size,stride", [("SAME", 2, 2), ("VALID", 3, 2), ("SAME", 3, 1)])
def test_pool_rules_equal_literal_form(cls, padding, size, stride, n):
    rng = numpy.random.default_rng(n)
    layer = cls(size, stride, padding=padding)
    x = rng.uniform(0.05, 1.0, (n, 5, 7, 2))      # positive, as pools see ReLU outputs
    a, cache = layer.forward(Tape(), dev(x))
    R = rng.uniform(-0.5, 1.0, a.shape)
    R_in, absorbed = host(rules.pool_proportional(layer, cache, dev(x), a, dev(R)))
    numpy.testing.assert_allclose(R_in, literal.pool(layer, x, R)[0], rtol=1e-10, atol=1e-12)
    numpy.testing.assert_allclose(R_in.sum(), R.sum(), rtol=1e-10)         # conservation
    assert numpy.all(absorbed == 0)
    if cls is MaxPool2D:
        R_wta, absorbed = host(rules.pool_winner_take_all(layer, cache, dev(R)))
        numpy.testing.assert_allclose(R_wta, literal.pool(layer, x, R, "winner_take_all")[0], rtol=1e-12, atol=1e-12)
        numpy.testing.assert_allclose(R_wta.sum(), R.sum(), rtol=1e-10)
        assert numpy.all(R_wta[host(layer.winners(cache)) == 0] == 0)            # only winners get relevance


def test_pool_zero_window_is_absorbed():
    layer = SumPool2D(2, 2)
    x = dev(numpy.zeros((1, 2, 2, 1)))
    a, cache = layer.forward(Tape(), x)
    R = dev(numpy.ones(a.shape))
    R_in, absorbed = host(rules.pool_proportional(layer, cache, x, a, R))
    assert numpy.all(R_in == 0) and numpy.all(absorbed == 1)
    with pytest.raises(ValueError, match="max pooling only"):
        rules.pool_winner_take_all(layer, cache, R)


# -- sums and gates ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", BATCHES)
def test_add_and_gate_rules(n):
    rng = numpy.random.default_rng(n)
    a, b, R = rng.normal(size=(3, n, 6))
    eps = 1e-3
    (Ra, Rb), absorbed = host(rules.add_proportional([dev(a), dev(b)], dev(R), eps=eps))
    (want_a, want_b), want_abs = literal.add_proportional([a, b], R, eps=eps)
    numpy.testing.assert_allclose(Ra, want_a, rtol=1e-12)
    numpy.testing.assert_allclose(Rb, want_b, rtol=1e-12)
    numpy.testing.assert_allclose(absorbed, want_abs, rtol=1e-10, atol=1e-15)
    numpy.testing.assert_allclose(Ra + Rb + absorbed, R, rtol=1e-10, atol=1e-12)
    gate = rng.uniform(0, 1, (n, 6))
    R_dev = dev(R)
    (Rg, Rs), absorbed = rules.gate_signal_take_all(dev(gate), dev(b), R_dev)
    assert Rg is None and Rs is R_dev and numpy.all(host(absorbed) == 0)
    (Rg, Rs), absorbed = host(rules.gate_half(dev(gate), dev(b), R_dev))
    numpy.testing.assert_allclose(Rg, R / 2)
    numpy.testing.assert_allclose(Rs, R / 2)
    s = numpy.abs(b)
    (Rg, Rs), absorbed = host(rules.gate_prop(dev(gate), dev(s), R_dev, eps=0.0))
    (want_g, want_s), _ = literal.gate_prop(gate, s, R, eps=0.0)
    numpy.testing.assert_allclose(Rg, want_g, rtol=1e-12)
    numpy.testing.assert_allclose(Rs, want_s, rtol=1e-12)
    numpy.testing.assert_allclose(Rg + Rs, R, rtol=1e-10, atol=1e-12)


def test_composite_presets():
    assert {"dtd", "lrp-alpha1.5beta0.5", "lrp-alpha1beta0", "lrp-alpha2beta1", "lrp-alpha3beta2",
            "lrp-epsilon", "lrp-0", "lrp-gamma", "lrp-w2", "lrp-flat"} <= set(composites.names())
    dtd = composites.get("dtd")
    assert dtd["input"] == ("zbox", {"low": -1.0, "high": 1.0}) and dtd["dense"] == ("zplus", {})
    assert dtd["gatemul"] == ("signal_take_all", {}) and dtd["sumpool2d"] == ("proportional", {})
    with pytest.raises(ValueError, match="unknown composite 'dtdd'"):
        composites.get("dtdd")
