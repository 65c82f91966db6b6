"""What the leaner relevance walk must leave unchanged (benchmarks/RESULTS.md, "Explanation cost against
the gradient walk, 2026-11-28").

- ``rules.signed_parts`` (``pos``, ``neg``): max(a, 0) and min(a, 0); on the CPU a non-negative array is
  its own positive part and its negative part is a broadcast 0, which ``one_number`` knows unread;
  within ``keeping_parts`` each array's parts are computed once.
- ``rules.Sum`` adds in the order of ``t1 + t2 + ...`` and never writes into a term.
- ``safe_divide`` given the zero mask is ``safe_divide`` without it.
- ``explain`` without details gives the relevance it gives with them (the walk then skips the sums
  only the details report).

Second pass ("Explanation cost, second pass, 2026-11-28"):
- ``safe_divide`` with no zero denominator (one division) is the masked form's a / (b + 0) * 1.
- ``constant`` hands out one read-only view per (shape, dtype, value), -0.0 and NaN their own.
- ``one_number`` looks at the last entry before reading the whole array, with the same answers.
- within ``keeping_parts``, ``propagate``'s merged weights W_c (and their one-sample forward pass) are
  computed once per layer and kept while the layer's weight parts are the same arrays.
- a rule's pair (x, W) of the layer's own input and weight takes x W from the forward output (output - b).
"""
import numpy
import pytest

import lrpnet
from lrpnet import backend, rules
from lrpnet.models import build

pytestmark = pytest.mark.usefixtures("on_the_host")


def test_signed_parts_of_a_non_negative_array_are_itself_and_a_broadcast_zero(rng):
    x = numpy.maximum(rng.standard_normal((4, 6)), 0)
    plus, minus = rules.signed_parts(x)
    assert plus is x
    assert minus.shape == x.shape and minus.dtype == x.dtype and not any(minus.strides)
    numpy.testing.assert_array_equal(minus, numpy.minimum(x, 0))
    assert rules.one_number(minus) == 0


@pytest.mark.parametrize("make", [lambda r: r.standard_normal((4, 6)),            # both signs
                                  lambda r: -numpy.abs(r.standard_normal((3, 5))),  # no positive entry
                                  lambda r: numpy.array([[1.0, numpy.nan, -2.0]])])   # NaN: not >= 0
def test_signed_parts_are_max_and_min_with_zero(make, rng):
    a = make(rng)
    plus, minus = rules.signed_parts(a)
    numpy.testing.assert_array_equal(plus, numpy.maximum(a, 0))
    numpy.testing.assert_array_equal(minus, numpy.minimum(a, 0))
    numpy.testing.assert_array_equal(rules.pos(a), plus)
    numpy.testing.assert_array_equal(rules.neg(a), minus)


def test_parts_are_computed_once_within_keeping_parts(rng):
    w = rng.standard_normal((5, 3))
    assert rules.pos(w) is not rules.pos(w)                 # outside: computed at every call
    with rules.keeping_parts():
        first = rules.signed_parts(w)
        assert rules.pos(w) is first[0] and rules.neg(w) is first[1]
        other = w.copy()                                    # equal values, another array: its own parts
        assert rules.pos(other) is not first[0]
    assert rules.pos(w) is not first[0]                     # forgotten when the block ends


def test_one_number_reads_an_array_unless_it_is_a_broadcast(rng):
    assert rules.one_number(numpy.full((3, 4), 2.5)) == 2.5
    assert rules.one_number(rules.constant(numpy.zeros((3, 4)), -1.0)) == -1.0
    assert rules.one_number(rng.standard_normal((3, 4))) is None
    assert rules.one_number(numpy.zeros((0, 4))) is None
    assert rules.one_number(numpy.array([[0.0, 0.0, numpy.nan]])) is None


def test_sum_adds_in_order_and_never_writes_into_a_term(rng):
    terms = [rng.standard_normal((3, 4)).astype("float32") for _ in range(4)]
    copies = [t.copy() for t in terms]
    total = rules.Sum()
    for t in terms:
        total.add(t)
    total.add(None)
    want = terms[0] + terms[1] + terms[2] + terms[3]
    numpy.testing.assert_array_equal(total.value, want)
    for t, c in zip(terms, copies):
        numpy.testing.assert_array_equal(t, c)
    one = rules.Sum()
    one.add(terms[0])
    assert one.value is terms[0]                            # one term: held as given, not copied
    small = rules.Sum()                                     # a first term that broadcasts: a new array
    small.add(terms[0][:1])
    small.add(terms[1])
    small.add(terms[2][:1])
    numpy.testing.assert_array_equal(small.value, terms[0][:1] + terms[1] + terms[2][:1])
    numpy.testing.assert_array_equal(terms[0], copies[0])


def test_safe_divide_given_the_zero_mask_is_safe_divide_without_it(rng):
    b = rng.standard_normal((6, 5))
    b[::2, 1] = 0.0
    a = rng.standard_normal((6, 5))
    numpy.testing.assert_array_equal(rules.safe_divide(a, b, b == 0), rules.safe_divide(a, b))
    # a denominator of one row for all: the quotient takes a's shape
    numpy.testing.assert_array_equal(rules.safe_divide(a, b[:1], b[:1] == 0), rules.safe_divide(a, b[:1]))


@pytest.mark.parametrize("arch", ["rlstm", "convdeep", "lstm"])
@pytest.mark.parametrize("method", ["dtd", "lrp-alpha1.5beta0.5", "lrp-w2", "lrp-flat"])
def test_the_walk_without_details_gives_the_relevance_of_the_walk_with_them(arch, method, rng):
    model = build(arch, input_shape=(8, 12), T=3, n_classes=4, seed=0, dtype="float64")
    x = rng.uniform(-1, 1, (5, 8, 12))
    plain = lrpnet.explain(model, x, method, target=1)
    e = lrpnet.explain(model, x, method, target=1, return_details=True)
    numpy.testing.assert_array_equal(plain, e.relevance)
    numpy.testing.assert_allclose(e.relevance.reshape(5, -1).sum(axis=1) + e.absorbed, e.score,
                                  rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("arch", ["convdeep", "lstm", "shallow"])
@pytest.mark.parametrize("method", ["dtd", "lrp-alpha1.5beta0.5", "lrp-w2", "lrp-flat", "thesis-dtd"])
def test_the_cpu_walk_gives_what_every_pair_on_its_own_gives(arch, method, rng, monkeypatch):
    """The CPU's shortcuts (parts of non-negative arrays, broadcast constants, kept W+ and W-) against
    the GPU's way on host arrays: every pair computed, no shortcut (lstm and shallow: the MIXED rule)."""
    model = build(arch, input_shape=(8, 12), T=3, n_classes=4, seed=0, dtype="float64")
    x = rng.uniform(-1, 1, (5, 8, 12))
    got = lrpnet.explain(model, x, method, target=2)
    on_host = backend.device
    monkeypatch.setattr(backend, "device", lambda name=None: "gpu" if name is None else on_host(name))
    want = lrpnet.explain(model, x, method, target=2)
    numpy.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_safe_divide_without_zero_denominators_is_the_masked_form(rng):
    for dtype in ("float32", "float64"):
        a = rng.standard_normal((6, 5)).astype(dtype)
        b = rng.standard_normal((6, 5)).astype(dtype)
        for den in (b, b[:1], -b.astype("float32")):
            zero = den == 0
            masked = (a / (den + zero) * ~zero).astype(a.dtype)
            got = rules.safe_divide(a, den)
            assert got.dtype == a.dtype
            numpy.testing.assert_array_equal(got, masked)


def test_constant_views_are_shared_read_only_and_keep_the_sign_of_zero():
    like = numpy.zeros((3, 4), dtype="float32")
    one = rules.constant(like, 1.0)
    assert rules.constant(like, 1.0) is one and not one.flags.writeable and not any(one.strides)
    assert rules.constant(like.astype("float64"), 1.0).dtype == numpy.float64
    assert rules.constant(numpy.zeros((2, 4)), 1.0).shape == (2, 4)
    assert numpy.signbit(rules.constant(like, -0.0).flat[0]) and not numpy.signbit(rules.constant(like, 0.0).flat[0])
    assert numpy.isnan(rules.constant(like, numpy.nan).flat[0])


def test_one_number_with_equal_ends_still_reads_the_middle():
    a = numpy.full((3, 4), 2.0)
    a[1, 2] = 3.0
    assert rules.one_number(a) is None
    a[1, 2] = 2.0
    assert rules.one_number(a) == 2.0
    assert rules.one_number(numpy.array([numpy.nan, 1.0, numpy.nan])) is None


def test_merged_weights_are_kept_for_the_walk_and_only_for_the_same_arrays(rng):
    from lrpnet.layers.dense import Dense
    layer = Dense(6, 4, rng=numpy.random.default_rng(0), dtype="float64")
    x = rng.uniform(-1, 1, (5, 6))
    R = rng.standard_normal((5, 4))
    calls = []
    real = rules.merged

    def counted(*args):
        calls.append(1)
        return real(*args)
    try:
        rules.merged = counted
        plain = [rules.linear(layer, x, R, "zbox", {"low": -1.0, "high": 1.0}) for _ in range(3)]
        assert len(calls) == 3                              # outside a walk: every time
        calls.clear()
        with rules.keeping_parts():
            kept = [rules.linear(layer, x + k, R, "zbox", {"low": -1.0, "high": 1.0}) for k in range(3)]
            assert len(calls) == 1                          # one W_c for the layer's steps
            other = rules.linear(layer, x, R, "zbox", {"low": -2.0, "high": 1.0})
            assert len(calls) == 2                          # other bounds: their own W_c
            squares = [rules.linear(layer, x, R, "w_square", {}) for _ in range(2)]
            assert len(calls) == 4                          # W^2 is a new array each time: not reused
    finally:
        rules.merged = real
    for got, want in zip(kept[0], plain[0]):
        numpy.testing.assert_array_equal(got, want)
    numpy.testing.assert_array_equal(squares[0][0], squares[1][0])
    for got, want in zip(other, rules.linear(layer, x, R, "zbox", {"low": -2.0, "high": 1.0})):
        numpy.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("arch", ["rlstm", "convdeep", "deep"])
@pytest.mark.parametrize("method", ["dtd", "lrp-alpha1.5beta0.5", "lrp-epsilon", "thesis-dtd"])
def test_the_pair_x_w_is_taken_from_the_forward_output(arch, method, rng, monkeypatch):
    """A rule's pair (x, W) of the layer's own input and weight (z^B's, epsilon's) reuses the node's
    forward output, output - b, instead of a product: the reuse happens, and it gives the relevance
    the recomputed x W gives, up to rounding."""
    model = build(arch, input_shape=(8, 12), T=3, n_classes=4, seed=0, dtype="float64")
    x = rng.uniform(-1, 1, (5, 8, 12))
    reused = []
    pair_forward = rules._pair_forward

    def counting(layer, xi, wi, plain, output):
        reused.append(output is not None and xi is plain[0] and wi is plain[1])
        return pair_forward(layer, xi, wi, plain, output)
    monkeypatch.setattr(rules, "_pair_forward", counting)
    got = lrpnet.explain(model, x, method, target=3)
    assert any(reused)                              # the pixels' z^B (and epsilon's every layer)
    monkeypatch.setattr(rules, "_pair_forward", lambda layer, xi, wi, plain, output: layer.linear(xi, wi))
    want = lrpnet.explain(model, x, method, target=3)
    numpy.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
