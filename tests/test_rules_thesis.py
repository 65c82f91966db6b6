"""The rule book, the rules added for THESIS.md section 7 and Arras et al. 2019, and guided backprop's
two variants.

Each new rule or variant against the slow literal form of its equation (``lrpnet.literal``: dense layer,
float64, written with z_jk = x_j w_jk as the LRP toolbox writes it), and the accounting identity on whole models:
input relevance + absorbed == score, sample by sample.
"""
import numpy
import pytest

import lrpnet
from lrpnet import backend, composites, literal, models, rules
from lrpnet.layers import Dense

from devices import dev, host


def dense(rng, n_in=7, n_out=5, n=6, positive=True):
    layer = Dense(n_in, n_out, rng=rng, dtype="float64")
    layer.params["W"] = dev(rng.normal(0, 1, (n_in, n_out)))
    layer.params["b"] = dev(rng.normal(0, 0.3, n_out))
    x = rng.uniform(0, 1, (n, n_in)) if positive else rng.normal(0, 1, (n, n_in))
    R = rng.normal(0, 1, (n, n_out))
    return layer, x, R


def plain(layer):
    return host(layer.params["W"]), host(layer.params["b"])


# -- the rule book ----------------------------------------------------------------------------------------
def test_every_composite_rule_is_one_registered_rule():
    for kind in ("input", "dense", "conv2d", "maxpool2d", "add", "gatemul", "mixed", "relu", "concat"):
        for name in rules.names_for(kind):
            r = rules.lookup(name, kind)
            assert r.name == name and (kind in r.kinds or r.kinds == ("*",))
    assert set(composites.GATE_RULES) == {"signal_take_all", "prop", "abs", "half"}
    assert rules.lookup("alpha_beta", "dense").params == {"alpha": 1.5, "beta": 0.5, "eps": 0.0,
                                                          "with_bias": True, "stabiliser": "signed"}
    with pytest.raises(ValueError, match="rule 'abs' is not available for 'dense' nodes; expected one of epsilon"):
        rules.lookup("abs", "dense")
    with pytest.raises(ValueError, match=r"'gatemul'.*rule 'abs' does not take \['gamma'\]; it takes \['eps'\]"):
        composites.resolve({"input": ("zbox", {}), "gatemul": ("abs", {"gamma": 1})})
    with pytest.raises(ValueError, match="stabiliser must be 'signed' or 'added'"):
        composites.resolve({"input": ("zbox", {}), "dense": ("alpha_beta", {"stabiliser": "plus"})})


def test_a_new_rule_is_one_registration():
    """A rule written and registered in one place is usable by name in a composite, with no other change."""
    @rules.rule("test_gate_only", kinds=("gatemul",), step=rules._gate_step)
    def gate_only(gate, signal, R):
        return (R, None), backend.xp().zeros_like(R)
    try:
        model = models.build("rlstm", input_shape=(28, 12), T=3, n_classes=5, seed=1, dtype="float64")
        x = numpy.random.default_rng(0).uniform(-1, 1, (4, 28, 12))
        e = lrpnet.explain(model, x, "dtd", gates="signal_take_all", return_details=True)
        f = lrpnet.explain(model, x, "dtd", composite={"gatemul": ("test_gate_only", {})}, return_details=True)
        assert not numpy.allclose(e.relevance, f.relevance)
        numpy.testing.assert_allclose(f.relevance.reshape(4, -1).sum(1) + f.absorbed, f.score, rtol=1e-9, atol=1e-12)
    finally:
        del rules.RULES[("test_gate_only", "gatemul")]


# -- the new linear variants against their literal forms ---------------------------------------------------
@pytest.mark.parametrize("alpha,beta", [(1.0, 0.0), (1.5, 0.5), (2.0, 1.0)])
def test_thesis_alpha_beta_equals_literal_form(alpha, beta):
    rng = numpy.random.default_rng(3)
    layer, x, R = dense(rng)
    W, _ = plain(layer)
    p = {"alpha": alpha, "beta": beta, "eps": 1e-9, "with_bias": False, "stabiliser": "added"}
    R_in, absorbed = host(rules.linear(layer, dev(x), dev(R), "alpha_beta", p))
    slow, _ = literal.dense(x, W, None, R, "alpha_beta", p)        # x >= 0: R_j = x_j (alpha (W+ s+)_j - beta (W- s-)_j)
    numpy.testing.assert_allclose(R_in, slow, rtol=1e-10, atol=1e-12)
    numpy.testing.assert_allclose(R_in.sum() + absorbed.sum(), R.sum(), rtol=1e-9)      # accounting
    # the bias changes the principled rule's result, and not the thesis's
    principled, _ = host(rules.linear(layer, dev(x), dev(R), "alpha_beta", {"alpha": alpha, "beta": beta}))
    assert not numpy.allclose(principled, R_in)


def test_added_stabiliser_differs_from_signed_only_in_the_negative_group():
    rng = numpy.random.default_rng(4)
    layer, x, R = dense(rng)
    layer.params["b"] = dev(numpy.zeros(5))
    big = {"alpha": 1.5, "beta": 0.5, "eps": 0.5}      # a large eps makes the difference visible
    signed, _ = host(rules.linear(layer, dev(x), dev(R), "alpha_beta", big))
    added, _ = host(rules.linear(layer, dev(x), dev(R), "alpha_beta", {**big, "stabiliser": "added"}))
    W, _ = plain(layer)
    slow, _ = literal.dense(x, W, None, R, "alpha_beta", {**big, "with_bias": False, "stabiliser": "added"})
    numpy.testing.assert_allclose(added, slow, rtol=1e-10)
    assert not numpy.allclose(signed, added)
    one, _ = host(rules.linear(layer, dev(x), dev(R), "alpha_beta", {"alpha": 1.0, "beta": 0.0, "eps": 0.5}))
    one_added, _ = host(rules.linear(layer, dev(x), dev(R), "alpha_beta",
                                     {"alpha": 1.0, "beta": 0.0, "eps": 0.5, "stabiliser": "added"}))
    numpy.testing.assert_array_equal(one, one_added)        # z+ >= 0: the same


@pytest.mark.parametrize("alpha,beta", [(1.0, 0.0), (1.5, 0.5)])
def test_shared_mixed_first_layer_equals_literal_form(alpha, beta):
    rng = numpy.random.default_rng(5)
    layer, x, R = dense(rng, n_in=8)
    mask = numpy.array([1, 1, 1, 1, 0, 0, 0, 0], dtype=float)        # 4 pixels, then 4 state units
    x[:, :4] = rng.uniform(-1, 1, (len(x), 4))
    W, _ = plain(layer)
    p = {"alpha": alpha, "beta": beta, "eps": 1e-9, "with_bias": False, "stabiliser": "added"}
    R_in, absorbed = host(rules.linear(layer, dev(x), dev(R), "alpha_beta", p, dev(mask), "zbox",
                                       {"low": -1.0, "high": 1.0}, shared=True))
    slow, _ = literal.dense(x, W, None, R, "alpha_beta", p, mask, "zbox", {"low": -1.0, "high": 1.0}, shared=True)
    numpy.testing.assert_allclose(R_in, slow, rtol=1e-9, atol=1e-12)
    numpy.testing.assert_allclose(R_in.sum() + absorbed.sum(), R.sum(), rtol=1e-9)
    if beta:      # the beta part gives the state positive relevance where R > 0 (section 7)
        joined, _ = host(rules.linear(layer, dev(x), dev(R), "alpha_beta", p, dev(mask), "zbox",
                                      {"low": -1.0, "high": 1.0}))
        assert not numpy.allclose(joined, R_in)


@pytest.mark.parametrize("positive", [True, False])
def test_gamma_variants_equal_literal_forms(positive):
    rng = numpy.random.default_rng(6)
    layer, x, R = dense(rng, positive=positive)
    W, b = plain(layer)
    zennit, absorbed = host(rules.linear(layer, dev(x), dev(R), "gamma", {"gamma": 0.25, "variant": "zennit"}))
    slow, _ = literal.dense(x, W, b, R, "gamma", {"gamma": 0.25, "eps": 1e-9, "variant": "zennit"})
    numpy.testing.assert_allclose(zennit, slow, rtol=1e-9, atol=1e-12)
    numpy.testing.assert_allclose(zennit.sum() + absorbed.sum(), R.sum(), rtol=1e-9)
    montavon, _ = host(rules.linear(layer, dev(x), dev(R), "gamma", {"gamma": 0.25}))
    z = x @ W + b
    pos = z >= 0
    if positive:     # x >= 0: the variants agree on the outputs with z >= 0
        only_pos = numpy.where(pos, R, 0)
        a, _ = host(rules.linear(layer, dev(x), dev(only_pos), "gamma", {"gamma": 0.25, "variant": "zennit"}))
        m, _ = host(rules.linear(layer, dev(x), dev(only_pos), "gamma", {"gamma": 0.25}))
        numpy.testing.assert_allclose(a, m, rtol=1e-10, atol=1e-12)
    assert (~pos).any() and not numpy.allclose(zennit, montavon)


# -- gate rules ------------------------------------------------------------------------------------------
def test_lrp_abs_equals_its_equation_and_is_bounded():
    rng = numpy.random.default_rng(7)
    g = rng.uniform(0, 1, (5, 4))
    s = rng.normal(0, 1, (5, 4))
    s[0, 0] = -g[0, 0] + 1e-12          # g + s ~ 0: LRP-prop explodes here, LRP-abs does not
    R = rng.normal(0, 1, (5, 4))
    (Rg, Rs), absorbed = host(rules.gate_abs(dev(g), dev(s), dev(R), eps=1e-6))
    d = numpy.abs(g) + numpy.abs(s) + 1e-6
    numpy.testing.assert_allclose(Rg, numpy.abs(g) / d * R, rtol=1e-12)
    numpy.testing.assert_allclose(Rs, numpy.abs(s) / d * R, rtol=1e-12)
    numpy.testing.assert_allclose(Rg + Rs + absorbed, R, rtol=1e-10)
    assert (numpy.abs(Rg) <= numpy.abs(R)).all() and (numpy.abs(Rs) <= numpy.abs(R)).all()
    (Pg, Ps), _ = host(rules.gate_prop(dev(g), dev(s), dev(R)))
    assert abs(Pg[0, 0]) > 1e3 * abs(R[0, 0])         # prop's documented blow-up, by its definition


@pytest.mark.parametrize("arch", ["lstm", "rlstm", "gru"])
@pytest.mark.parametrize("method", ["thesis-dtd", "thesis-lrp-alpha1.5beta0.5", "lrp-epsilon", "dtd"])
def test_accounting_identity_with_every_gate_rule(arch, method):
    model = models.build(arch, input_shape=(28, 12), T=3, n_classes=5, seed=2, dtype="float64")
    x = numpy.random.default_rng(1).uniform(-1, 1, (6, 28, 12))
    for gates in composites.GATE_RULES:
        e = lrpnet.explain(model, x, method, gates=gates, return_details=True)
        total = e.relevance.reshape(len(x), -1).sum(axis=1) + e.absorbed
        numpy.testing.assert_allclose(total, e.score, rtol=1e-8, atol=1e-10, err_msg=f"{arch} {method} {gates}")


@pytest.mark.parametrize("arch", ["shallow", "deep", "rlstm", "conv+deep", "convdeep"])
def test_thesis_presets_account_for_the_score(arch):
    model = models.build(arch, input_shape=(28, 12), T=3, n_classes=5, seed=3, dtype="float64")
    x = numpy.random.default_rng(2).uniform(-1, 1, (5, 28, 12))
    for method in ("thesis-dtd", "thesis-lrp-alpha1.5beta0.5"):
        e = lrpnet.explain(model, x, method, return_details=True)
        total = e.relevance.reshape(len(x), -1).sum(axis=1) + e.absorbed
        numpy.testing.assert_allclose(total, e.score, rtol=1e-8, atol=1e-10, err_msg=f"{arch} {method}")
        # the ReLU units' biases are <= 0, so z+ has none in its denominator: DTD and the thesis's DTD
        # differ only by the stabilisers (1e-9; the accumulator's 1e-10 for 1e-6, relative to c_t ~ 0.02
        # at initialisation); a positive read-out bias enters only the principled one
        principled = lrpnet.explain(model, x, method.removeprefix("thesis-"))
        if method == "thesis-dtd":
            numpy.testing.assert_allclose(principled, e.relevance, rtol=1e-4)
    model.params["out.b"][...] += 0.5          # in place: the arrays are the layers' own
    for method in ("thesis-dtd", "thesis-lrp-alpha1.5beta0.5"):
        thesis = lrpnet.explain(model, x, method, target=0, start="onehot")
        principled = lrpnet.explain(model, x, method.removeprefix("thesis-"), target=0, start="onehot")
        assert not numpy.allclose(principled, thesis, rtol=1e-3), method


def test_lrp_epsilon_uses_its_epsilon_at_the_accumulator():
    comp = composites.get("lrp-epsilon")
    assert comp["add"] == ("proportional", {"eps": 0.01})
    assert composites.get("dtd")["add"] == ("proportional", {"eps": 1e-6})
    assert composites.get("thesis-dtd")["add"] == ("proportional", {"eps": 1e-10})


# -- guided backprop's two variants -------------------------------------------------------------------------
def test_gb_variants_differ_only_for_gated_cells():
    x = numpy.random.default_rng(3).uniform(-1, 1, (4, 28, 12))
    for arch in ("deep", "shallow"):
        model = models.build(arch, input_shape=(28, 12), T=3, n_classes=5, seed=4, dtype="float64")
        numpy.testing.assert_array_equal(lrpnet.explain(model, x, "gb"), lrpnet.explain(model, x, "gb-ungated"))
    for arch in ("rlstm", "lstm"):
        model = models.build(arch, input_shape=(28, 12), T=3, n_classes=5, seed=4, dtype="float64")
        assert not numpy.allclose(lrpnet.explain(model, x, "gb"), lrpnet.explain(model, x, "gb-ungated"))


@pytest.mark.torch
@pytest.mark.parametrize("method", ["gb", "gb-ungated"])
def test_gb_variants_against_torch(method, monkeypatch):
    """Guided backprop in PyTorch on the R-LSTM's twin (benchmarks/torch_models.py): ReLUs pass
    1[out > 0] max(0, incoming); for "gb" the sigmoid gates are constants (their derivatives zero)."""
    torch = pytest.importorskip("torch")
    import sys, pathlib
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
    from benchmarks import torch_models

    class GuidedReLU(torch.autograd.Function):
        @staticmethod
        def forward(ctx, z):
            y = z.clamp(min=0)
            ctx.save_for_backward(y)
            return y

        @staticmethod
        def backward(ctx, dy):
            (y,) = ctx.saved_tensors
            return dy * (y > 0) * (dy > 0)

    monkeypatch.setattr(torch_models.F, "relu", GuidedReLU.apply)
    if method == "gb":
        sigmoid = torch.sigmoid
        monkeypatch.setattr(torch_models.torch, "sigmoid", lambda z: sigmoid(z).detach())
    model = models.build("rlstm", input_shape=(28, 12), T=3, n_classes=5, seed=5, dtype="float64")
    x = numpy.random.default_rng(4).uniform(-1, 1, (4, 28, 12))
    twin = torch_models.for_gradients(torch_models.torch_twin(model))
    xt = torch.tensor(x, requires_grad=True)
    logits = twin(xt)
    target = logits.argmax(dim=1)
    logits.gather(1, target[:, None]).sum().backward()
    expected = (xt.grad ** 2).numpy()
    numpy.testing.assert_allclose(lrpnet.explain(model, x, method), expected, rtol=1e-9, atol=1e-14)
