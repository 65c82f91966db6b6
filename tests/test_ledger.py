"""The relevance ledger: its totals are explain()'s (score, absorbed, input relevance, per_layer,
per_step), every row conserves, the leaves get their own rows, and its views agree with each other."""
import numpy
import pytest

import lrpnet
from lrpnet import ledger


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
    table = book.table(sample=2).splitlines()
    assert len(table) == 1 + len(book.entries)
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
