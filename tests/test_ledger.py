"""The relevance ledger: its totals are explain()'s (score, absorbed, input relevance, per_layer,
per_step), every row conserves, the leaves get their own rows, its views agree with each other, and
what a node absorbs is split by cause (bias, stabiliser, zero denominator, initial state), each cause
checked against its equation."""
import numpy
import pytest

import lrpnet
from lrpnet import ledger, rules
from lrpnet.layers import Dense


from devices import dev, host
from tiny import T, images, small, with_biases


def biased(name, seed=0):
    return with_biases(small(name, seed=seed), seed)


CASES = [("rlstm", "dtd", None, "relu_logit"), ("rlstm", "lrp-alpha1.5beta0.5", None, "logit"),
         ("lstm", "lrp-epsilon", "prop", "logit"), ("lstm", "lrp-flat", "half", "logit"),
         ("shallow", "lrp-alpha1.5beta0.5", None, "logit"), ("convdeep", "dtd", None, "logit")]


@pytest.mark.parametrize("name,method,gates,start", CASES, ids=[f"{a}-{m}-{g}" for a, m, g, _ in CASES])
def test_totals_equal_explain(name, method, gates, start):
    model, x = biased(name), images()
    e = lrpnet.explain(model, x, method, start=start, gates=gates, return_details=True)
    book = ledger.record(model, x, method, start=start, gates=gates)
    numpy.testing.assert_allclose(book.score, e.score, rtol=1e-12)
    numpy.testing.assert_array_equal(book.target, e.target)
    numpy.testing.assert_allclose(book.relevance, e.relevance, rtol=1e-12, atol=1e-15)
    numpy.testing.assert_allclose(book.absorbed(), e.absorbed, rtol=1e-9, atol=1e-14)
    assert numpy.abs(e.absorbed).max() > 1e-6                          # the biases do absorb
    first, (leaf,) = book.entries[0], [r for r in book.entries if r.layer == "input"]
    numpy.testing.assert_allclose(first.arrived, e.score, rtol=1e-12)   # the walk starts at the score
    numpy.testing.assert_allclose(leaf.arrived, e.relevance.reshape(len(x), -1).sum(1), rtol=1e-10, atol=1e-14)
    # every row conserves: arrived = passed + absorbed, to float rounding of the row's own numbers
    # (LRP-prop's shares can be huge and of opposite signs: Arras et al. 2019)
    for row in book.entries:
        size = numpy.abs(row.arrived) + numpy.abs(row.absorbed) + sum(numpy.abs(v) for v in row.to.values())
        assert numpy.all(numpy.abs(row.residual) <= 1e-12 * (size + numpy.abs(e.score).max())), (row.layer, row.step)
        # and what it absorbed is bias + stabiliser + zero + state, each computed from its own terms
        assert tuple(row.causes) == ledger.CAUSES
        parts = sum(row.causes.values())
        assert numpy.all(numpy.abs(parts - row.absorbed) <= 1e-12 * (size + numpy.abs(e.score).max())), row.layer
    by_cause = book.absorbed_by_cause()
    numpy.testing.assert_allclose(sum(by_cause.values()), e.absorbed, rtol=1e-9, atol=1e-14)
    # per layer: the relevance arriving at each layer's nodes is explain's per_layer
    layers = {r["layer"]: r for r in book.by_layer(sample=1)}
    for k, v in e.per_layer.items():
        assert layers[k]["arrived"] == pytest.approx(v[1], rel=1e-10, abs=1e-14), k
    assert set(e.per_layer) == {r.layer for r in book.entries if r.kind != "leaf"}


def test_per_step_input_relevance_equals_explain_per_step():
    """Step by step (not batched), each step's slice passes its relevance to the input: by_step's to_input."""
    model, x = biased("rlstm"), images()
    e = lrpnet.explain(model, x, "lrp-alpha1.5beta0.5", return_details=True)
    book = ledger.record(model, x, "lrp-alpha1.5beta0.5")
    for s in range(len(x)):
        steps = [r for r in book.by_step(sample=s) if r["step"] is not None]
        assert [r["step"] for r in steps] == list(range(T))
        numpy.testing.assert_allclose([r["to_input"] for r in steps], e.per_step[s], rtol=1e-10, atol=1e-14)


def test_initial_states_get_their_own_rows():
    """w^2 ignores x, so relevance reaches the zero initial states: rows of their own, counted as absorbed."""
    model, x = biased("lstm"), images()
    book = ledger.record(model, x, "lrp-w2", start="logit")
    states = [r for r in book.entries if r.kind == "leaf" and r.layer != "input"]
    assert sorted(r.layer for r in states) == ["state@cell.concat", "state@cell.mul_f"]
    assert max(numpy.abs(r.arrived).max() for r in states) > 1e-3
    for r in states:
        numpy.testing.assert_array_equal(r.absorbed, r.arrived)
        numpy.testing.assert_array_equal(r.causes["state"], r.arrived)
    assert all(numpy.all(r.causes["state"] == 0) for r in book.entries if r not in states)
    e = lrpnet.explain(model, x, "lrp-w2", start="logit", return_details=True)
    numpy.testing.assert_allclose(book.absorbed(), e.absorbed, rtol=1e-9, atol=1e-14)


def test_views_agree_and_name_the_rules():
    model, x = biased("shallow"), images()
    book = ledger.record(model, x, "lrp-alpha1.5beta0.5", start="logit")
    one, batch = book.records(sample=2), book.records()
    assert len(one) == len(batch) == len(book.entries)
    assert set(one[0]) >= {"order", "layer", "kind", "step", "rule", "params", "arrived", "passed", "absorbed",
                           "residual", "to"}
    numpy.testing.assert_allclose([r["absorbed"] for r in batch],
                                  [sum(book.records(sample=s)[k]["absorbed"] for s in range(len(x)))
                                   for k in range(len(batch))], rtol=1e-10, atol=1e-15)
    rules = {(r["layer"], r["rule"]) for r in one}
    assert {("cell.hidden", "mixed"), ("cell.state", "alpha_beta"), ("out", "alpha_beta")} <= rules
    mixed = next(r for r in one if r["rule"] == "mixed")
    assert mixed["params"]["input"][0] == "zbox" and mixed["params"]["dense"][0] == "alpha_beta"
    for summary in (book.by_layer(2), book.by_step(2)):
        assert sum(r["absorbed"] for r in summary) == pytest.approx(book.absorbed()[2], rel=1e-10, abs=1e-15)
        assert sum(r["nodes"] for r in summary) == len(book.entries)
        for cause, v in book.absorbed_by_cause().items():
            assert sum(r[cause] for r in summary) == pytest.approx(v[2], rel=1e-10, abs=1e-15), cause
    assert book.absorbed_by_cause()["bias"][2] != 0 and book.absorbed_by_cause()["zero"][2] != 0
    for r in one:
        assert sum(r[c] for c in ledger.CAUSES) == pytest.approx(r["absorbed"], rel=1e-10, abs=1e-15)
    table = book.table(sample=2).splitlines()
    assert len(table) == 1 + len(book.entries)
    assert table[0].split()[7:12] == ["absorbed", "bias", "stabiliser", "zero", "state"]
    assert any("mixed(first_group): zbox(low=-1, high=1) + alpha_beta(alpha=1.5, beta=0.5)" in t for t in table)
    assert f"{one[0]['arrived']:+.6g}" in table[1]


def test_bad_methods_are_named():
    model, x = biased("rlstm"), images(1)
    with pytest.raises(ValueError, match="relevance methods.*'sa'"):
        ledger.record(model, x, "sa")
    with pytest.raises(ValueError, match="unknown gate rule 'all'"):
        ledger.record(model, x, "dtd", gates="all")
    with pytest.raises(ValueError, match="unknown start"):
        ledger.record(model, x, "dtd", start="softmax")


def test_relevance_flow_figure(tmp_path):
    """The figure's bars are the explanation's per_step and the ledger's per-layer totals; a PNG is written."""
    from lrpnet.plot import relevance_flow
    model, x = biased("rlstm"), images(2)
    e = lrpnet.explain(model, x, "dtd", start="logit", return_details=True)
    book = ledger.record(model, x, "dtd", start="logit")
    path = tmp_path / "flow.png"
    fig = relevance_flow(e, sample=1, image=x[1], ledger=book, path=path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ax_map, ax_step, ax_layer = fig.axes[:3]
    numpy.testing.assert_allclose([p.get_height() for p in ax_step.patches], e.per_step[1], rtol=1e-12)
    layers = book.by_layer(sample=1)
    widths = [p.get_width() for p in ax_layer.patches]
    numpy.testing.assert_allclose(widths, [r["arrived"] for r in layers] + [r["absorbed"] for r in layers], rtol=1e-12)
    assert [t.get_text() for t in ax_layer.get_yticklabels()] == [r["layer"] for r in layers]
    # from the explanation alone: arrived per layer is per_layer
    fig = relevance_flow(e, sample=0)
    numpy.testing.assert_allclose([p.get_width() for p in fig.axes[2].patches], [v[0] for v in e.per_layer.values()],
                                  rtol=1e-12)
    with pytest.raises(ValueError, match="gradient method"):
        relevance_flow(lrpnet.explain(model, x, "sa", return_details=True))


# -- absorbed by cause, rule by rule ------------------------------------------------------------------------
def dense(bias, seed=0):
    layer = Dense(6, 4, bias="plain", rng=numpy.random.default_rng(seed), dtype="float64")
    layer.params["b"][:] = dev(numpy.asarray(bias, dtype="float64"))
    return layer


def parts_of(layer, x, R, rule, params):
    """(R_in, absorbed, parts) of ``rules.linear`` asked for its parts, on the host; and the parts are
    asked for without changing anything: the same R_in and absorbed, bit for bit."""
    parts = {}
    R_in, absorbed = host(rules.linear(layer, dev(x), dev(R), rule, params, parts=parts))
    plain_in, plain_absorbed = host(rules.linear(layer, dev(x), dev(R), rule, params))
    numpy.testing.assert_array_equal(R_in, plain_in)
    numpy.testing.assert_array_equal(absorbed, plain_absorbed)
    return R_in, absorbed, host(parts)


LINEAR_CASES = [("epsilon", {"eps": 0.1}), ("zplus", {}), ("alpha_beta", {"alpha": 1.5, "beta": 0.5}),
                ("alpha_beta", {"eps": 0.1, "stabiliser": "added"}), ("gamma", {"gamma": 0.25, "variant": "zennit"}),
                ("zbox", {"eps": 0.1}), ("w_square", {}), ("flat", {})]


@pytest.mark.parametrize("rule,params", LINEAR_CASES, ids=[f"{r}-{p}" for r, p in LINEAR_CASES])
def test_linear_parts_add_up_to_absorbed(rule, params):
    rng = numpy.random.default_rng(1)
    layer = dense(rng.normal(0, 0.3, 4))
    x, R = rng.uniform(-1, 1, (5, 6)), rng.uniform(-0.5, 1, (5, 4))
    x[:, :2] = 0                                                   # some dead inputs: zeros in z+'s groups
    _, absorbed, parts = parts_of(layer, x, R, rule, params)
    assert sorted(parts) == ["bias", "stabiliser", "zero"]
    numpy.testing.assert_allclose(parts["bias"] + parts["stabiliser"] + parts["zero"], absorbed, rtol=1e-12, atol=1e-15)
    if rule in ("zbox", "w_square", "flat"):                      # they ignore the bias
        assert numpy.all(parts["bias"] == 0)
    if not {**rules.lookup(rule, "dense").params, **params}["eps"]:
        assert numpy.all(parts["stabiliser"] == 0)
    if rule in ("zplus", "alpha_beta") and not params.get("eps"):      # no stabiliser: dead outputs are "zero"
        assert numpy.abs(parts["zero"]).max() > 0


def test_stabiliser_and_bias_shares_are_their_equations():
    """LRP-epsilon on z = x W + b: the stabiliser's share is s eps sign(z), the bias's s b, with
    s = R / (z + eps sign(z)), all written out here."""
    rng = numpy.random.default_rng(2)
    b = rng.normal(0, 0.3, 4)
    layer, eps = dense(b), 0.1
    x, R = rng.uniform(-1, 1, (5, 6)), rng.uniform(-0.5, 1, (5, 4))
    _, absorbed, parts = parts_of(layer, x, R, "epsilon", {"eps": eps})
    z = x @ host(layer.weight) + b
    sign = numpy.where(z >= 0, 1.0, -1.0)
    s = R / (z + eps * sign)
    numpy.testing.assert_allclose(parts["stabiliser"], s * eps * sign, rtol=1e-12)
    numpy.testing.assert_allclose(parts["bias"], s * b, rtol=1e-12)
    assert numpy.all(parts["zero"] == 0) and numpy.abs(parts["stabiliser"]).max() > 1e-3


def test_no_bias_and_no_eps_absorb_nothing():
    rng = numpy.random.default_rng(3)
    layer = dense(numpy.zeros(4))
    x, R = rng.uniform(-1, 1, (5, 6)), rng.uniform(-0.5, 1, (5, 4))
    R_in, absorbed, parts = parts_of(layer, x, R, "epsilon", {"eps": 0.0})
    assert numpy.all(absorbed == 0) and all(numpy.all(p == 0) for p in parts.values())
    numpy.testing.assert_allclose(R_in.sum(1), R.sum(1), rtol=1e-12)


def test_bias_only_puts_everything_in_bias():
    """x = 0: z = b, and the bias takes all of R (s b = R / b b)."""
    rng = numpy.random.default_rng(4)
    layer = dense([0.5, -0.3, 0.2, 1.1])
    R = rng.uniform(-0.5, 1, (5, 4))
    R_in, absorbed, parts = parts_of(layer, numpy.zeros((5, 6)), R, "epsilon", {"eps": 0.0})
    assert numpy.all(R_in == 0)
    numpy.testing.assert_allclose(parts["bias"], R, rtol=1e-12)
    numpy.testing.assert_allclose(absorbed, R, rtol=1e-12)
    assert numpy.all(parts["stabiliser"] == 0) and numpy.all(parts["zero"] == 0)


def test_dead_relu_inputs_under_zplus_put_R_in_zero():
    """A ReLU layer's inputs all 0: z+ = b+, which is 0 for b <= 0 (nothing to pass R to: "zero") and
    b for b > 0 (the bias takes R)."""
    rng = numpy.random.default_rng(5)
    layer = dense([-0.5, 0.0, 0.4, -1.0])
    R = rng.uniform(-0.5, 1, (5, 4))
    R_in, absorbed, parts = parts_of(layer, numpy.zeros((5, 6)), R, "zplus", {})
    dead = numpy.array([True, True, False, True])
    assert numpy.all(R_in == 0)
    numpy.testing.assert_array_equal(parts["zero"], numpy.where(dead, R, 0))
    numpy.testing.assert_allclose(parts["bias"], numpy.where(dead, 0, R), rtol=1e-12)
    assert numpy.all(parts["stabiliser"] == 0)
    numpy.testing.assert_allclose(absorbed, R, rtol=1e-12)


def test_gate_and_sum_shares_are_their_equations():
    """LRP-prop at y = g * s and the proportional sum y = sum_i x_i absorb only the stabiliser's share,
    s eps sign(total) with s = R / (total + eps sign(total)), written out from the node's inputs."""
    model, x = biased("lstm"), images(2)
    book = ledger.record(model, x, "lrp-epsilon", gates="prop", keep=True)
    seen = set()
    for e in book.entries:
        if e.kind not in ("gatemul", "add"):
            continue
        (R, _, absorbed), parts = e.arrays, e.parts
        xs = [host(v.value) for v in e.node.inputs]
        total, eps = sum(xs), e.params.get("eps", 1e-6)              # the composite's, or the rules' default
        sign = numpy.where(total >= 0, 1.0, -1.0)
        numpy.testing.assert_allclose(parts["stabiliser"], R / (total + eps * sign) * eps * sign,
                                      rtol=1e-9, atol=1e-300)
        assert numpy.all(parts["zero"] == 0) and "bias" not in parts
        numpy.testing.assert_allclose(parts["stabiliser"], absorbed, rtol=1e-12, atol=1e-300)
        seen.add(e.kind)
    assert seen == {"gatemul", "add"}
    assert {e.kind: e.params.get("eps") for e in book.entries if e.kind in seen} == {"gatemul": None, "add": 0.01}
    assert all(numpy.all(r.causes["bias"] == 0) for r in book.entries if r.kind in ("gatemul", "add"))
