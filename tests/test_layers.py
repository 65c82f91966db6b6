"""Every layer of lrpnet.layers: float64 gradient checks, literal reference forms, PyTorch oracles,
dropout masks, clear errors, and the conv/pool operations under every backend.

The layers run under the backend in force (``LRPNET_BACKEND``) on device copies of the inputs
(``dev``), and their results come back (``host``) to meet references computed on the host with NumPy.
Gradient checks check the NumPy reference of a layer (a host twin, under numpy); the backend in force
must then give the twin's forward and backward."""
import copy

import numpy
import pytest

from lrpnet import backend
from lrpnet.gradcheck import check_layer
from lrpnet.graph import Tape
from lrpnet.layers import (Add, AvgPool2D, Concat, Conv2D, Dense, Dropout, Flatten, GateMul, MaxPool2D,
                           Reshape, ReLU, Sigmoid, SumPool2D, Tanh, TimeSlice)

from lrpnet.layers.dropout import random_bits
from lrpnet.layers.pool import _repeat_over_windows, _spread, _windows_tile

from devices import dev, host

TOL = 1e-6
SAME_AS_HOST = dict(rtol=1e-10, atol=1e-12)      # float64 on another backend: only the order of sums


def host_twin(layer):
    """A copy of ``layer`` whose parameters are NumPy copies of its own."""
    twin = copy.copy(layer)
    twin.params = {k: host(v).copy() for k, v in layer.params.items()}
    return twin


def assert_gradcheck(layer, *inputs, tol=TOL, train=False):
    """Central differences check the layer's NumPy reference (host arrays, float64); then the backend in
    force gives the reference's forward and backward."""
    twin = host_twin(layer)
    with backend.using("numpy"):
        errors = check_layer(twin, *inputs, train=train)
    assert errors, "the check compared nothing"
    assert max(errors.values()) < tol, errors
    assert_same_as_host(layer, twin, inputs, train=train)


def assert_same_as_host(layer, twin, inputs, train=False):
    """``layer`` under the backend in force, on device copies of ``inputs``, gives what its host twin
    gives under NumPy: output, input gradients and parameter gradients (same dropout masks: both draw
    them from the same host generator)."""
    with backend.using("numpy"):
        y, cache = run(twin, *inputs, train=train, rng=numpy.random.default_rng(0))
        dy = numpy.random.default_rng(1).standard_normal(y.shape)
        want = (y,) + twin.backward(cache, dy)
    y, cache = run(layer, *dev(inputs), train=train, rng=numpy.random.default_rng(0))
    (y_got, dxs_got, dp_got), (y_want, dxs_want, dp_want) = host((y,) + layer.backward(cache, dev(dy))), want
    assert len(dxs_got) == len(dxs_want) and dp_got.keys() == dp_want.keys()
    numpy.testing.assert_allclose(y_got, y_want, **SAME_AS_HOST, err_msg="output")
    for i, (g, w) in enumerate(zip(dxs_got, dxs_want)):
        numpy.testing.assert_allclose(g, w, **SAME_AS_HOST, err_msg=f"input{i}")
    for k in dp_want:
        numpy.testing.assert_allclose(dp_got[k], dp_want[k], **SAME_AS_HOST, err_msg=f"param:{k}")


def away_from_zero(rng, shape, gap=0.1):
    """Random values with |x| >= gap, so ReLU kinks are never within a finite-difference step."""
    x = rng.standard_normal(shape)
    return numpy.where(x >= 0, x + gap, x - gap)


def distinct(rng, shape):
    """Values in random order, spaced 0.05 apart: no ties anywhere (max pool has a unique maximum)."""
    n = int(numpy.prod(shape))
    return (rng.permutation(n) * 0.05 - n * 0.025).reshape(shape)


# ---------------------------------------------------------------------------------------------------
# Literal reference forms (loops straight from the definitions), used to pin down the fast forms.
# ---------------------------------------------------------------------------------------------------
def tf_same(size, k, s):
    """TensorFlow SAME padding, written out independently of lrpnet: (before, after)."""
    out = (size + s - 1) // s
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def literal_conv(x, w, b, stride, padding):
    kh, kw, _, c_out = w.shape
    n, h, wd, _ = x.shape
    (t, bt), (l, r) = ((tf_same(h, kh, stride), tf_same(wd, kw, stride)) if padding == "SAME"
                       else ((0, 0), (0, 0)))
    xp = numpy.pad(x, ((0, 0), (t, bt), (l, r), (0, 0)))
    oh, ow = (xp.shape[1] - kh) // stride + 1, (xp.shape[2] - kw) // stride + 1
    z = numpy.zeros((n, oh, ow, c_out))
    for p in range(oh):
        for q in range(ow):
            patch = xp[:, p * stride:p * stride + kh, q * stride:q * stride + kw, :]
            z[:, p, q, :] = numpy.einsum("nijc,ijco->no", patch, w)
    return z if b is None else z + b


def literal_pool(x, k, stride, padding, how):
    n, h, wd, c = x.shape
    (t, bt), (l, r) = ((tf_same(h, k, stride), tf_same(wd, k, stride)) if padding == "SAME"
                       else ((0, 0), (0, 0)))
    real = numpy.pad(numpy.ones((h, wd)), ((t, bt), (l, r)))
    xp = numpy.pad(x, ((0, 0), (t, bt), (l, r), (0, 0)))
    oh, ow = (h + t + bt - k) // stride + 1, (wd + l + r - k) // stride + 1
    y = numpy.zeros((n, oh, ow, c))
    for p in range(oh):
        for q in range(ow):
            rows, cols = slice(p * stride, p * stride + k), slice(q * stride, q * stride + k)
            window, mask = xp[:, rows, cols, :], real[rows, cols] > 0
            if how == "max":
                y[:, p, q, :] = window[:, mask, :].max(axis=1)
            elif how == "sum":
                y[:, p, q, :] = window.sum(axis=(1, 2))
            else:
                y[:, p, q, :] = window[:, mask, :].mean(axis=1)
    return y


def run(layer, *xs, train=False, rng=None):
    return layer.forward(Tape(train=train, rng=rng), *xs)


# ---------------------------------------------------------------------------------------------------
# Gradient checks, every layer, float64
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bias", ["plain", "negsoftplus", None])
def test_dense_gradcheck(bias, rng):
    layer = Dense(5, 4, bias=bias, rng=rng, dtype="float64")
    if bias is not None:
        layer.params["b"][:] = dev(rng.standard_normal(4))   # not all equal, so a wrong bias grad shows
    assert_gradcheck(layer, rng.standard_normal((3, 5)))


def test_relu_gradcheck_and_guided(rng):
    x = away_from_zero(rng, (4, 6))
    assert_gradcheck(ReLU(), x)
    y, cache = run(ReLU(), dev(x))
    dy = away_from_zero(rng, (4, 6))
    (guided,), _ = host(ReLU().guided_backward(cache, dev(dy)))
    numpy.testing.assert_array_equal(guided, numpy.where((x > 0) & (dy > 0), dy, 0.0))
    plain = host(ReLU().backward(cache, dev(dy))[0][0])
    assert (guided >= 0).all() and (guided > 0).any() and (guided != plain).any()


@pytest.mark.parametrize("layer_cls", [Sigmoid, Tanh])
def test_squashing_gradcheck(layer_cls, rng):
    assert_gradcheck(layer_cls(), rng.standard_normal((3, 5)))   # |x| < ~3: derivatives not tiny


@pytest.mark.parametrize("as_image", [False, True])
def test_timeslice_gradcheck(as_image, rng):
    layer = TimeSlice(1, 3, as_image=as_image)
    x = rng.standard_normal((2, 4, 6))
    y = host(run(layer, dev(x))[0])
    expected = x[:, :, 2:4]
    numpy.testing.assert_array_equal(y, expected[..., None] if as_image else expected.reshape(2, 8))
    assert_gradcheck(layer, x)


def test_reshape_and_flatten_gradcheck(rng):
    x = rng.standard_normal((2, 3, 4, 2))
    assert run(Reshape((6, 4)), dev(x))[0].shape == (2, 6, 4)
    assert_gradcheck(Reshape((6, 4)), x)
    assert run(Flatten(), dev(x))[0].shape == (2, 24)
    assert_gradcheck(Flatten(), x)


@pytest.mark.parametrize("shapes,axis", [([(3, 2), (3, 4)], -1),
                                         ([(2, 3, 4, 1), (2, 3, 4, 5)], -1),
                                         ([(2, 3, 4, 2), (2, 3, 4, 3)], 3)])
def test_concat_gradcheck(shapes, axis, rng):
    assert_gradcheck(Concat(axis=axis), *[rng.standard_normal(s) for s in shapes])


def test_add_three_inputs_gradcheck(rng):
    xs = [rng.standard_normal((3, 4)) for _ in range(3)]
    numpy.testing.assert_allclose(host(run(Add(), *dev(xs))[0]), xs[0] + xs[1] + xs[2])
    assert_gradcheck(Add(), *xs)


def test_gatemul_gradcheck(rng):
    assert_gradcheck(GateMul(), rng.random((3, 4)), rng.standard_normal((3, 4)))


@pytest.mark.parametrize("stationary", [False, True])
def test_dropout_gradcheck_in_training(stationary, rng):
    assert_gradcheck(Dropout(0.8, stationary=stationary), rng.standard_normal((4, 10)), train=True)


@pytest.mark.parametrize("padding,stride,x_shape,kernel", [
    ("SAME", 1, (2, 5, 4, 3), (3, 3)),
    ("SAME", 2, (2, 7, 5, 2), (4, 3)),      # odd sizes, even kernel: asymmetric padding
    ("VALID", 1, (2, 5, 6, 2), (3, 2)),
    ("VALID", 2, (2, 7, 6, 3), (3, 3)),
])
@pytest.mark.parametrize("bias", ["plain", "negsoftplus", None])
def test_conv2d_gradcheck(padding, stride, x_shape, kernel, bias, rng):
    layer = Conv2D(x_shape[3], 3, kernel, stride=stride, padding=padding, bias=bias, rng=rng, dtype="float64")
    if bias is not None:
        layer.params["b"][:] = dev(rng.standard_normal(3))
    assert_gradcheck(layer, rng.standard_normal(x_shape))


@pytest.mark.parametrize("padding,size,stride,x_shape", [
    ("VALID", 2, None, (2, 4, 6, 2)),
    ("SAME", 2, 2, (2, 5, 7, 2)),        # SAME with padding after
    ("SAME", 3, 2, (1, 6, 5, 2)),        # overlapping windows, padding both sides
    ("VALID", 3, 1, (1, 5, 4, 1)),       # overlapping windows
])
@pytest.mark.parametrize("layer_cls", [MaxPool2D, AvgPool2D, SumPool2D])
def test_pool_gradcheck(layer_cls, padding, size, stride, x_shape, rng):
    assert_gradcheck(layer_cls(size, stride, padding), distinct(rng, x_shape))


# ---------------------------------------------------------------------------------------------------
# Forward values against the literal forms; pool details
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("padding,stride,x_shape,kernel", [
    ("SAME", 1, (2, 5, 4, 3), 3), ("SAME", 2, (2, 7, 5, 2), 4), ("VALID", 2, (1, 7, 6, 3), 3),
    ("SAME", 1, (2, 28, 7, 1), 5)])
def test_conv2d_forward_matches_literal_loop(padding, stride, x_shape, kernel, rng):
    layer = Conv2D(x_shape[3], 4, kernel, stride=stride, padding=padding, rng=rng, dtype="float64")
    layer.params["b"][:] = dev(rng.standard_normal(4))
    x = rng.standard_normal(x_shape)
    numpy.testing.assert_allclose(host(run(layer, dev(x))[0]),
                                  literal_conv(x, host(layer.weight), host(layer.bias), stride, padding),
                                  rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("how,cls", [("max", MaxPool2D), ("avg", AvgPool2D), ("sum", SumPool2D)])
@pytest.mark.parametrize("padding,size,stride,x_shape", [
    ("SAME", 2, 2, (2, 28, 7, 3)), ("SAME", 3, 2, (1, 6, 5, 2)), ("VALID", 3, 1, (1, 5, 4, 1)),
    ("SAME", 3, 1, (1, 4, 4, 1))])
def test_pool_forward_matches_literal_loop(how, cls, padding, size, stride, x_shape, rng):
    x = distinct(rng, x_shape)
    numpy.testing.assert_allclose(host(run(cls(size, stride, padding), dev(x))[0]),
                                  literal_pool(x, size, stride, padding, how), rtol=1e-12, atol=1e-12)


def test_convdeep_shapes():
    x = dev(numpy.zeros((3, 28, 7, 1), dtype="float32"))
    c1 = Conv2D(1, 24, 5, padding="SAME", bias="negsoftplus", rng=numpy.random.default_rng(0))
    c2 = Conv2D(24, 32, 3, padding="SAME", bias="negsoftplus", rng=numpy.random.default_rng(1))
    pool = SumPool2D(2, 2, "SAME")
    h = run(pool, run(c1, x)[0])[0]
    assert h.shape == (3, 14, 4, 24) and h.dtype == numpy.float32
    h = run(pool, run(c2, h)[0])[0]
    assert h.shape == (3, 7, 2, 32) and h.dtype == numpy.float32
    # the bias is -softplus(b) = -0.01 at init, the weight std is 1/sqrt(fan_in)
    numpy.testing.assert_allclose(host(c1.bias), -0.01, rtol=1e-5)
    assert abs(float(c2.weight.std()) - 0.88 / 216 ** 0.5) < 0.1 / 216 ** 0.5   # truncated at 2 std


def test_maxpool_ties_go_to_first_and_padding_never_wins():
    x = numpy.zeros((1, 2, 2, 1))
    y, cache = run(MaxPool2D(2), dev(x))
    (dx,), _ = host(MaxPool2D(2).backward(cache, dev(numpy.ones((1, 1, 1, 1)))))
    numpy.testing.assert_array_equal(dx[0, :, :, 0], [[1, 0], [0, 0]])     # first in row-major order
    x = -numpy.arange(1.0, 10.0).reshape(1, 3, 3, 1)                        # all negative, pads sit after
    y = host(run(MaxPool2D(2, 2, "SAME"), dev(x))[0])
    numpy.testing.assert_array_equal(y[0, :, :, 0], [[-1, -3], [-7, -9]])


def test_maxpool_winners_mask_counts_overlaps():
    x = numpy.array([[1., 5, 2, 0], [3, 4, 1, 2], [0, 1, 6, 3]]).reshape(1, 3, 4, 1)
    layer = MaxPool2D(2, 1, "VALID")       # 2x3 overlapping windows
    y, cache = run(layer, dev(x))
    mask = host(layer.winners(cache))
    # 5 wins two windows, 6 wins two; the window [[2, 0], [1, 2]] ties and the first 2 wins
    numpy.testing.assert_array_equal(mask[0, :, :, 0], [[0, 2, 1, 0], [0, 1, 0, 0], [0, 0, 2, 0]])
    assert mask.shape == x.shape and mask.dtype == x.dtype
    # backward of any dy, not only a gradient: the proportional rule R_in = x * backward(R / a)
    relevance = numpy.arange(1.0, 7.0).reshape(y.shape)
    (dx,), _ = host(layer.backward(cache, dev(relevance) / y))
    numpy.testing.assert_allclose((x * dx).sum(), relevance.sum())


@pytest.mark.parametrize("size, padding, x_shape", [
    (2, "SAME", (3, 28, 7, 4)), (2, "SAME", (2, 14, 4, 3)), (2, "VALID", (2, 6, 4, 2)), (3, "SAME", (2, 7, 8, 2)),
    (3, "SAME", (1, 5, 5, 1)), ((2, 3), "SAME", (2, 5, 7, 2))])
def test_sum_and_avg_backward_where_windows_tile_is_the_offset_by_offset_sum(size, padding, x_shape, rng):
    """Windows side by side (stride = size) covering the padded input: each position's dy is its one
    window's (``_repeat_over_windows``), exactly what adding offset by offset into zeros gives."""
    layer = SumPool2D(size, padding=padding)
    pads = layer.pads(x_shape)
    assert _windows_tile(x_shape, layer.size, layer.stride, pads)
    with backend.using("numpy"):
        for cls in (SumPool2D, AvgPool2D):
            layer = cls(size, padding=padding)
            x = rng.standard_normal(x_shape)
            _, cache = run(layer, x)
            dy = rng.standard_normal(layer.forward(Tape(), x)[0].shape)
            (dx,), _ = layer.backward(cache, dy)
            if cls is AvgPool2D:
                from lrpnet.layers.pool import window_counts
                dy = dy / window_counts(x_shape, layer.size, layer.stride, pads, dy.dtype)
            want = _spread(lambda k: dy, x_shape, layer.size, layer.stride, pads, dy.dtype)
            numpy.testing.assert_array_equal(dx, want)
            assert dx.shape == x_shape and dx.flags.c_contiguous
            numpy.testing.assert_array_equal(_repeat_over_windows(dy[:1, :, :, :1], x_shape, layer.size, pads),
                                             _spread(lambda k: dy[:1, :, :, :1], x_shape, layer.size,
                                                     layer.stride, pads, dy.dtype))    # dy broadcast


def test_windows_tile_only_side_by_side_windows_that_cover_the_input():
    assert not _windows_tile((1, 7, 5, 1), (2, 2), (2, 2), (0, 0, 0, 0))     # VALID drops a row and a column
    assert not _windows_tile((1, 8, 8, 1), (3, 3), (2, 2), (1, 0, 1, 0))     # overlapping windows
    assert not _windows_tile((1, 8, 8, 1), (2, 2), (1, 1), (0, 1, 0, 1))
    assert _windows_tile((1, 8, 6, 1), (2, 2), (2, 2), (0, 0, 0, 0))


@pytest.mark.parametrize("cls", [SumPool2D, AvgPool2D, MaxPool2D])
def test_pool_proportional_rule_conserves(cls, rng):
    x = distinct(rng, (2, 5, 7, 3)) + 10.0      # positive activations, as after a ReLU
    layer = cls(2, 2, "SAME")
    a, cache = run(layer, dev(x))
    relevance = rng.random(a.shape)
    (back,), _ = host(layer.backward(cache, dev(relevance) / a))
    numpy.testing.assert_allclose((x * back).sum(axis=(1, 2, 3)), relevance.sum(axis=(1, 2, 3)), rtol=1e-12)


@pytest.mark.parametrize("padding,size,stride,x_shape", [
    ("SAME", 2, 2, (2, 5, 7, 2)), ("SAME", 3, 2, (1, 6, 5, 2)), ("VALID", 2, None, (2, 4, 6, 2))])
def test_thesis_code_pool_gradcheck(padding, size, stride, x_shape, rng):
    """The thesis code's pool, TF's average times 2 (``AvgPool2D(scale=2)``): central differences."""
    assert_gradcheck(AvgPool2D(size, stride, padding, scale=2), distinct(rng, x_shape))


@pytest.mark.parametrize("padding,size,stride,x_shape", [
    ("SAME", 2, 2, (2, 5, 7, 2)), ("SAME", 2, 2, (1, 28, 7, 3)), ("SAME", 2, 2, (1, 14, 4, 3)),
    ("VALID", 2, 2, (2, 4, 6, 2))])
def test_thesis_code_pool_values(padding, size, stride, x_shape, rng):
    """... and its values: the literal average times 2 (sum / 2 in a full 2x2 window, sum / count * 2
    at a SAME edge)."""
    x = distinct(rng, x_shape)
    numpy.testing.assert_allclose(host(run(AvgPool2D(size, stride, padding, scale=2), dev(x))[0]),
                                  2 * literal_pool(x, size, stride, padding, "avg"), rtol=1e-12, atol=1e-12)


def test_thesis_code_pool_weighs_edge_cells_twice():
    """3x3 of ones, 2x2 SAME windows (the pad after): a full window gives 4/2, the edge windows of two
    real cells 2, the corner window of one 2: every edge cell counts twice what an inner one does."""
    y = host(run(AvgPool2D(2, 2, "SAME", scale=2), dev(numpy.ones((1, 3, 3, 1))))[0])
    numpy.testing.assert_array_equal(y[0, :, :, 0], [[2, 2], [2, 2]])
    x = numpy.arange(1.0, 10.0).reshape(1, 3, 3, 1)
    y = host(run(AvgPool2D(2, 2, "SAME", scale=2), dev(x))[0])
    numpy.testing.assert_array_equal(y[0, :, :, 0], [[(1 + 2 + 4 + 5) / 2, 3 + 6], [7 + 8, 2 * 9]])
    with pytest.raises(ValueError, match="scale must be > 0"):
        AvgPool2D(2, scale=0)


def test_thesis_code_pool_proportional_rule_conserves(rng):
    """The proportional rule on the scaled average conserves, and equals the literal form (the scale
    cancels in x * (da/dx)^T (R / a)) and the plain average's relevance."""
    from lrpnet import literal
    x = distinct(rng, (2, 5, 7, 3)) + 10.0
    relevance = rng.random((2, 3, 4, 3))
    got = []
    for scale in (2.0, 1.0):
        layer = AvgPool2D(2, 2, "SAME", scale=scale)
        a, cache = run(layer, dev(x))
        (back,), _ = host(layer.backward(cache, dev(relevance) / a))
        got.append(x * back)
    numpy.testing.assert_allclose(got[0].sum(axis=(1, 2, 3)), relevance.sum(axis=(1, 2, 3)), rtol=1e-12)
    numpy.testing.assert_allclose(got[0], got[1], rtol=1e-12)
    want, _ = literal.pool_proportional("avgpool2d", x, relevance, (2, 2), (2, 2), "SAME")
    numpy.testing.assert_allclose(got[0], want, rtol=1e-10)


def test_pool_caches_are_small(rng):
    x = dev(rng.standard_normal((4, 28, 7, 8)))
    for layer in (SumPool2D(2, 2, "SAME"), AvgPool2D(2, 2, "SAME")):
        assert run(layer, x)[1] == x.shape
    y, (arg, shape, dtype) = run(MaxPool2D(2, 2, "SAME"), x)
    assert arg.dtype == numpy.uint8 and arg.shape == y.shape and shape == x.shape


def test_conv2d_linear_interface_with_modified_weights(rng):
    x = rng.standard_normal((3, 5, 4, 2))
    layer = Conv2D(2, 3, 3, stride=2, padding="SAME", rng=rng, dtype="float64")
    wplus = layer.weight.clip(min=0)
    z = host(layer.linear(dev(x), wplus))
    numpy.testing.assert_allclose(z, literal_conv(x, host(wplus), None, 2, "SAME"), atol=1e-12)
    dz = rng.standard_normal(z.shape)
    # <dz, linear(x)> = <linear_input_grad(dz), x> for a linear map without bias
    dx = host(layer.linear_input_grad(wplus, dev(dz), x.shape))
    numpy.testing.assert_allclose((dz * z).sum(), (dx * x).sum())


# ---------------------------------------------------------------------------------------------------
# Dropout masks
# ---------------------------------------------------------------------------------------------------
def test_dropout_stationary_mask_fixed_within_a_tape_fresh_in_a_new_one():
    layer, x = Dropout(0.5, stationary=True), dev(numpy.ones((4, 50)))
    gen = backend.random_state([0])             # the backend's own generator: masks drawn on the device
    tape = Tape(train=True, rng=gen)
    first, second = host(layer.forward(tape, x)[0]), host(layer.forward(tape, x)[0])
    numpy.testing.assert_array_equal(first, second)
    assert set(numpy.unique(first)) == {0.0, 2.0}                       # inverted: kept units scaled by 1/keep
    third = host(layer.forward(Tape(train=True, rng=gen), x)[0])
    assert (third != first).any()


def test_dropout_naive_mask_fresh_at_every_call_and_off_at_test_time():
    layer, x = Dropout(0.5), dev(numpy.ones((4, 50)))
    tape = Tape(train=True, rng=backend.random_state([0]))
    assert (host(layer.forward(tape, x)[0]) != host(layer.forward(tape, x)[0])).any()
    numpy.testing.assert_array_equal(host(layer.forward(Tape(train=False), x)[0]), numpy.ones((4, 50)))


def test_random_bits_are_the_bits_rng_integers_draws_at_half_the_words():
    for n in (8, 50 * 256):                                         # even counts: the same stream
        want = numpy.random.default_rng(3).integers(0, 2**32, size=n, dtype=numpy.uint32)
        numpy.testing.assert_array_equal(random_bits(numpy.random.default_rng(3), (n,)), want)
    gen = numpy.random.default_rng(3)
    first, second = random_bits(gen, (3, 5)), random_bits(gen, (3, 5))       # odd: 8 words each
    assert first.shape == (3, 5) and first.dtype == numpy.uint32 and (first != second).any()
    mt = numpy.random.Generator(numpy.random.MT19937(3))                # 32-bit raw words: through integers
    numpy.testing.assert_array_equal(random_bits(mt, (4, 5)), numpy.random.Generator(numpy.random.MT19937(3))
                                     .integers(0, 2**32, size=(4, 5), dtype=numpy.uint32))


@pytest.mark.parametrize("keep", [0.8, 0.5, 0.3])
def test_dropout_host_mask_keeps_where_bits_below_keep_times_2_to_32(keep):
    """Drawn from a NumPy generator (on any backend): a unit is kept where its 32 random bits are below
    ceil(keep 2^32), and scaled by 1/keep in the model's dtype; the same seed gives the same mask, in
    float32 and float64 alike."""
    shape = (6, 50)
    bits = numpy.random.default_rng(9).integers(0, 2**32, size=shape, dtype=numpy.uint32)
    kept = bits.astype(numpy.float64) / 2**32 < keep
    masks = {}
    for dtype in ("float32", "float64"):
        dt = numpy.dtype(dtype)
        for _ in range(2):                                             # the seed decides the mask
            tape = Tape(train=True, rng=numpy.random.default_rng(9))
            mask = host(Dropout(keep).forward(tape, dev(numpy.ones(shape, dtype=dtype)))[0])
            assert mask.dtype == dt
            numpy.testing.assert_array_equal(mask, numpy.where(kept, dt.type(1) / dt.type(keep), 0))
            masks.setdefault(dtype, mask)
            numpy.testing.assert_array_equal(mask, masks[dtype])
    numpy.testing.assert_array_equal(masks["float32"] != 0, masks["float64"] != 0)
    assert 0 < kept.mean() < 1


# ---------------------------------------------------------------------------------------------------
# Clear errors
# ---------------------------------------------------------------------------------------------------
def test_conv2d_rejects_wrong_channels_and_ndim(rng):
    layer = Conv2D(3, 4, 3, rng=rng)
    with pytest.raises(ValueError, match=r"\(2, 5, 5, 2\)"):
        run(layer, dev(numpy.zeros((2, 5, 5, 2), dtype="float32")))
    with pytest.raises(ValueError, match=r"\(2, 5, 5\)"):
        run(layer, dev(numpy.zeros((2, 5, 5), dtype="float32")))
    with pytest.raises(ValueError, match="smaller"):
        run(Conv2D(3, 4, 5, padding="VALID", rng=rng), dev(numpy.zeros((1, 4, 8, 3), dtype="float32")))


def test_unknown_padding_and_bias_mode(rng):
    with pytest.raises(ValueError, match="'FULL'"):
        Conv2D(1, 2, 3, padding="FULL", rng=rng)
    with pytest.raises(ValueError, match="'full'"):
        MaxPool2D(2, padding="full")
    with pytest.raises(ValueError, match="'relu'"):
        Conv2D(1, 2, 3, bias="relu", rng=rng)
    with pytest.raises(ValueError, match="'relu'"):
        Dense(1, 2, bias="relu", rng=rng)
    with pytest.raises(ValueError, match="kernel_size"):
        Conv2D(1, 2, 0, rng=rng)
    with pytest.raises(ValueError, match=r"\(2, 4, 4\)"):
        run(SumPool2D(2), dev(numpy.zeros((2, 4, 4))))


# ---------------------------------------------------------------------------------------------------
# The registered operations under every backend agree with the NumPy reference
# ---------------------------------------------------------------------------------------------------
def test_conv_and_pool_ops_agree_with_reference(each_backend):
    rng = numpy.random.default_rng(7)
    x = rng.standard_normal((3, 9, 7, 2)).astype("float32")
    w = rng.standard_normal((3, 4, 2, 5)).astype("float32")
    b = rng.standard_normal(5).astype("float32")
    stride, pads = (2, 1), (1, 1, 1, 2)
    calls = {
        "conv2d_forward": (x, w, b, stride, pads),
        "conv2d_input_grad": (w, rng.standard_normal((3, 5, 7, 5)).astype("float32"), x.shape, stride, pads),
        "conv2d_weight_grad": (x, rng.standard_normal((3, 5, 7, 5)).astype("float32"), w.shape, stride, pads),
        "sumpool2d_forward": (x, (2, 2), (2, 2), (0, 1, 0, 1)),
        "avgpool2d_forward": (x, (2, 2), (2, 2), (0, 1, 0, 1)),
        "maxpool2d_forward": (x, (3, 3), (2, 2), (1, 1, 1, 1)),
        "sumpool2d_backward": (rng.standard_normal((3, 5, 4, 2)).astype("float32"), x.shape, (2, 2), (2, 2), (0, 1, 0, 1)),
        "avgpool2d_backward": (rng.standard_normal((3, 5, 4, 2)).astype("float32"), x.shape, (2, 2), (2, 2), (0, 1, 0, 1)),
    }
    for name, args in calls.items():
        with backend.using("numpy"):
            reference = backend.op(name)(*args)
        got = host(backend.op(name)(*[dev(a) if isinstance(a, numpy.ndarray) else a for a in args]))
        for r, g in zip(reference if isinstance(reference, tuple) else (reference,),
                        got if isinstance(got, tuple) else (got,)):
            assert isinstance(r, numpy.ndarray) and g.dtype == r.dtype, name
            numpy.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-5, err_msg=name)


# ---------------------------------------------------------------------------------------------------
# PyTorch as an independent oracle, float64
# ---------------------------------------------------------------------------------------------------
TORCH_TOL = dict(rtol=1e-8, atol=1e-8)


def nchw(a):
    return numpy.ascontiguousarray(a.transpose(0, 3, 1, 2))


def nhwc(t):
    return t.detach().numpy().transpose(0, 2, 3, 1)


@pytest.mark.torch
@pytest.mark.parametrize("bias", ["plain", "negsoftplus", None])
def test_dense_matches_torch(bias, rng):
    torch = pytest.importorskip("torch")
    layer = Dense(5, 4, bias=bias, rng=rng, dtype="float64")
    if bias is not None:
        layer.params["b"][:] = dev(rng.standard_normal(4))
    x = rng.standard_normal((3, 5))
    dy = rng.standard_normal((3, 4))
    lin = torch.nn.Linear(5, 4, bias=bias is not None, dtype=torch.float64)
    b_raw = torch.tensor(host(layer.params["b"]), requires_grad=True) if bias is not None else None
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(host(layer.weight).T))      # torch stores (out, in)
    xt = torch.tensor(x, requires_grad=True)
    yt = xt @ lin.weight.T
    if bias == "plain":
        yt = yt + b_raw
    elif bias == "negsoftplus":
        yt = yt - torch.nn.functional.softplus(b_raw)
    (yt * torch.tensor(dy)).sum().backward()
    y, cache = run(layer, dev(x))
    (dx,), grads = host(layer.backward(cache, dev(dy)))
    numpy.testing.assert_allclose(host(y), yt.detach().numpy(), **TORCH_TOL)
    numpy.testing.assert_allclose(dx, xt.grad.numpy(), **TORCH_TOL)
    numpy.testing.assert_allclose(grads["W"], lin.weight.grad.numpy().T, **TORCH_TOL)
    if bias is not None:
        numpy.testing.assert_allclose(grads["b"], b_raw.grad.numpy(), **TORCH_TOL)


@pytest.mark.torch
@pytest.mark.parametrize("padding,stride,x_shape,kernel,torch_pad", [
    ("SAME", 1, (2, 6, 5, 3), (3, 3), (1, 1, 1, 1)),       # torch F.pad order: left, right, top, bottom
    ("SAME", 1, (2, 6, 5, 2), (4, 2), (0, 1, 1, 2)),       # even kernels: the extra pad goes after
    ("SAME", 2, (2, 7, 6, 2), (3, 3), (0, 1, 1, 1)),       # stride 2, odd height
    ("VALID", 1, (2, 6, 5, 3), (3, 2), (0, 0, 0, 0)),
    ("VALID", 2, (2, 7, 6, 2), (3, 3), (0, 0, 0, 0)),
    ("SAME", 1, (2, 28, 7, 1), (5, 5), (2, 2, 2, 2)),
])
@pytest.mark.parametrize("bias", ["plain", "negsoftplus"])
def test_conv2d_matches_torch(padding, stride, x_shape, kernel, torch_pad, bias, rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    c_in, c_out = x_shape[3], 4
    layer = Conv2D(c_in, c_out, kernel, stride=stride, padding=padding, bias=bias, rng=rng, dtype="float64")
    layer.params["b"][:] = dev(rng.standard_normal(c_out))
    x = rng.standard_normal(x_shape)
    conv = torch.nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=0, bias=False, dtype=torch.float64)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(host(layer.weight).transpose(3, 2, 0, 1)))   # (kh,kw,in,out) -> (out,in,kh,kw)
    b_raw = torch.tensor(host(layer.params["b"]), requires_grad=True)
    b_eff = b_raw if bias == "plain" else -F.softplus(b_raw)
    xt = torch.tensor(nchw(x), requires_grad=True)
    yt = conv(F.pad(xt, torch_pad)) + b_eff[None, :, None, None]
    y, cache = run(layer, dev(x))
    assert y.shape == nhwc(yt).shape
    dy = rng.standard_normal(y.shape)
    (yt * torch.tensor(nchw(dy))).sum().backward()
    (dx,), grads = host(layer.backward(cache, dev(dy)))
    numpy.testing.assert_allclose(host(y), nhwc(yt), **TORCH_TOL)
    numpy.testing.assert_allclose(dx, nhwc(xt.grad), **TORCH_TOL)
    numpy.testing.assert_allclose(grads["W"], conv.weight.grad.numpy().transpose(2, 3, 1, 0), **TORCH_TOL)
    numpy.testing.assert_allclose(grads["b"], b_raw.grad.numpy(), **TORCH_TOL)


@pytest.mark.torch
@pytest.mark.parametrize("how", ["max", "avg", "sum"])
@pytest.mark.parametrize("padding,size,stride,x_shape,torch_pad", [
    ("VALID", 2, 2, (2, 6, 4, 3), (0, 0, 0, 0)),
    ("VALID", 3, 1, (1, 5, 4, 2), (0, 0, 0, 0)),
    ("SAME", 2, 2, (2, 28, 7, 3), (0, 1, 0, 0)),      # ConvDeep's pool: asymmetric, padding after
    ("SAME", 3, 2, (1, 6, 5, 2), (1, 1, 0, 1)),
])
def test_pools_match_torch(how, padding, size, stride, x_shape, torch_pad, rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = distinct(rng, x_shape)
    xt = torch.tensor(nchw(x), requires_grad=True)
    if how == "max":
        yt = F.max_pool2d(F.pad(xt, torch_pad, value=-float("inf")), size, stride)
        layer = MaxPool2D(size, stride, padding)
    elif how == "sum":
        yt = F.avg_pool2d(F.pad(xt, torch_pad), size, stride) * size * size
        layer = SumPool2D(size, stride, padding)
    else:
        # TF's SAME average divides by the real inputs: torch's window sum / pooled count of ones
        ones = torch.ones((1, 1) + x_shape[1:3], dtype=torch.float64)
        yt = F.avg_pool2d(F.pad(xt, torch_pad), size, stride) / F.avg_pool2d(F.pad(ones, torch_pad), size, stride)
        layer = AvgPool2D(size, stride, padding)
    y, cache = run(layer, dev(x))
    dy = rng.standard_normal(y.shape)
    (yt * torch.tensor(nchw(dy))).sum().backward()
    (dx,), _ = host(layer.backward(cache, dev(dy)))
    numpy.testing.assert_allclose(host(y), nhwc(yt), **TORCH_TOL)
    numpy.testing.assert_allclose(dx, nhwc(xt.grad), **TORCH_TOL)


@pytest.mark.torch
def test_avgpool_valid_matches_torch_module(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 6, 4, 3))
    y = host(run(AvgPool2D(2), dev(x))[0])
    numpy.testing.assert_allclose(y, nhwc(torch.nn.AvgPool2d(2)(torch.tensor(nchw(x)))), **TORCH_TOL)
    y = host(run(MaxPool2D(2), dev(x))[0])
    numpy.testing.assert_allclose(y, nhwc(torch.nn.MaxPool2d(2)(torch.tensor(nchw(x)))), **TORCH_TOL)


@pytest.mark.torch
@pytest.mark.parametrize("layer_cls,fn", [(Sigmoid, "sigmoid"), (Tanh, "tanh"), (ReLU, "relu")])
def test_activations_match_torch(layer_cls, fn, rng):
    torch = pytest.importorskip("torch")
    x = away_from_zero(rng, (4, 7)) * 5            # large |x| too: the overflow-safe sigmoid
    xt = torch.tensor(x, requires_grad=True)
    yt = getattr(torch, fn)(xt)
    dy = rng.standard_normal(x.shape)
    (yt * torch.tensor(dy)).sum().backward()
    y, cache = run(layer_cls(), dev(x))
    (dx,), _ = host(layer_cls().backward(cache, dev(dy)))
    numpy.testing.assert_allclose(host(y), yt.detach().numpy(), **TORCH_TOL)
    numpy.testing.assert_allclose(dx, xt.grad.numpy(), **TORCH_TOL)


# ---------------------------------------------------------------------------------------------------
# Convolution: the input gradient's two formulations, and the patches a training step keeps
# ---------------------------------------------------------------------------------------------------
from lrpnet.layers import conv as conv_ops     # noqa: E402  (the reference operations, by name)

CONV_GRAD_TOL = {"float32": 1e-5, "float64": 1e-12}

# (padding, stride, x_shape, kernel, C_out): SAME/VALID, strides 1, 2, 3 and mixed, odd and even sizes
# and kernels, windows that skip inputs (stride > kernel), a kernel larger than the input with SAME,
# a 1x1 image, a 1x1 kernel, ConvDeep's and conv+deep's shapes
CONV_GRAD_CASES = [
    ("SAME", (1, 1), (2, 5, 4, 3), (3, 3), 2),
    ("SAME", (2, 2), (2, 7, 5, 2), (4, 3), 3),
    ("SAME", (1, 1), (2, 6, 7, 2), (2, 2), 2),
    ("SAME", (1, 3), (2, 6, 7, 2), (2, 4), 3),
    ("SAME", (2, 1), (1, 3, 2, 4), (5, 4), 2),
    ("SAME", (1, 1), (2, 2, 3, 2), (5, 5), 3),
    ("SAME", (1, 1), (1, 1, 1, 3), (3, 3), 2),
    ("SAME", (1, 1), (2, 6, 5, 3), (1, 1), 2),
    ("VALID", (1, 1), (2, 5, 6, 2), (3, 2), 4),
    ("VALID", (2, 2), (2, 7, 6, 3), (3, 3), 2),
    ("VALID", (3, 2), (1, 8, 9, 2), (2, 1), 3),
    ("VALID", (1, 1), (2, 4, 4, 3), (4, 4), 2),
    ("SAME", (1, 1), (2, 28, 7, 1), (5, 5), 4),
    ("SAME", (2, 2), (2, 7, 5, 1), (3, 3), 2),             # one input channel (col2im's offset-major
    ("VALID", (2, 1), (1, 6, 5, 1), (3, 2), 3),            # shares), strided
    ("SAME", (1, 1), (2, 14, 4, 5), (3, 3), 6),
    ("SAME", (1, 1), (2, 28, 7, 3), (5, 5), 2),
]


def literal_conv_input_grad(w, dz, x_shape, stride, padding):
    """dL/dx from the definition: output (p, q) read xpad[s_h*p + i, s_w*q + j] through W[i, j], so it
    sends dz[:, p, q] @ W[i, j]^T back there; what lands in the padding is dropped."""
    kh, kw, c_in, _ = w.shape
    n, h, wd, _ = x_shape
    (t, bt), (l, r) = ((tf_same(h, kh, stride[0]), tf_same(wd, kw, stride[1])) if padding == "SAME"
                       else ((0, 0), (0, 0)))
    dxpad = numpy.zeros((n, h + t + bt, wd + l + r, c_in))
    for p in range(dz.shape[1]):
        for q in range(dz.shape[2]):
            for i in range(kh):
                for j in range(kw):
                    dxpad[:, stride[0] * p + i, stride[1] * q + j, :] += dz[:, p, q, :] @ w[i, j].T
    return dxpad[:, t:t + h, l:l + wd, :]


def conv_grad_case(case, dtype, rng):
    """(w, dz, x_shape, stride, pads, literal dx) for one CONV_GRAD_CASES entry, host arrays of dtype."""
    padding, stride, x_shape, kernel, c_out = case
    pads, out_hw = conv_ops.window_pads(x_shape, kernel, stride, padding)
    w = rng.standard_normal(kernel + (x_shape[3], c_out)).astype(dtype)
    dz = rng.standard_normal((x_shape[0],) + out_hw + (c_out,)).astype(dtype)
    return w, dz, x_shape, stride, pads, literal_conv_input_grad(w.astype("float64"), dz.astype("float64"),
                                                                  x_shape, stride, padding)


def assert_equal_to_rounding(got, want, dtype, what):
    tol = CONV_GRAD_TOL[dtype]
    assert got.dtype == numpy.dtype(dtype) and got.shape == want.shape, (what, got.dtype, got.shape, want.shape)
    numpy.testing.assert_allclose(got, want, rtol=tol, atol=tol * float(numpy.abs(want).max()), err_msg=what)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", CONV_GRAD_CASES, ids=lambda c: f"{c[0]}-s{c[1]}-x{c[2]}-k{c[3]}x{c[4]}")
def test_conv2d_input_grad_equals_the_literal_sum(case, dtype, rng):
    """The registered operation (either formulation, as it picks) and each formulation on its own."""
    w, dz, x_shape, stride, pads, want = conv_grad_case(case, dtype, rng)
    got = host(backend.op("conv2d_input_grad")(dev(w), dev(dz), x_shape, stride, pads))
    assert_equal_to_rounding(got, want, dtype, "conv2d_input_grad")
    for form in (conv_ops.input_grad_transposed, conv_ops.input_grad_col2im):
        assert_equal_to_rounding(host(form(dev(w), dev(dz), x_shape, stride, pads)), want, dtype, form.__name__)


@pytest.mark.parametrize("images_per_chunk", [1, 2, 3, 5])
def test_conv2d_input_grad_transposed_in_chunks_of_images(images_per_chunk, rng, monkeypatch):
    """The transposed form's im2col runs a chunk of images at a time: one, several with a shorter last
    chunk, the whole batch."""
    case = ("SAME", (1, 1), (5, 6, 4, 3), (3, 2), 2)
    w, dz, x_shape, stride, pads, want = conv_grad_case(case, "float64", rng)
    per_image = 6 * 4 * (3 * 2) * 2 * 8                     # bytes of one image's patches of dz
    monkeypatch.setattr(conv_ops, "PATCH_CHUNK_BYTES", {"cpu": images_per_chunk * per_image,
                                                        "gpu": images_per_chunk * per_image})
    got = host(conv_ops.input_grad_transposed(dev(w), dev(dz), x_shape, stride, pads))
    assert_equal_to_rounding(got, want, "float64", f"{images_per_chunk} images per chunk")


def test_conv2d_input_grad_picks_transposed_at_stride_1_with_four_input_channels_or_more(rng, monkeypatch):
    picked = []
    for name in ("input_grad_transposed", "input_grad_col2im"):
        real = getattr(conv_ops, name)
        monkeypatch.setattr(conv_ops, name, lambda *a, real=real, name=name: picked.append(name) or real(*a))
    for case, want in [(("SAME", (1, 1), (2, 14, 4, 5), (3, 3), 6), "input_grad_transposed"),
                       (("SAME", (1, 1), (2, 28, 7, 4), (5, 5), 3), "input_grad_transposed"),
                       (("SAME", (1, 1), (2, 28, 7, 1), (5, 5), 4), "input_grad_col2im"),       # C_in < 4
                       (("VALID", (1, 1), (2, 5, 6, 3), (3, 2), 4), "input_grad_col2im"),
                       (("SAME", (2, 1), (1, 3, 2, 4), (5, 4), 2), "input_grad_col2im")]:      # stride > 1
        w, dz, x_shape, stride, pads, _ = conv_grad_case(case, "float64", rng)
        picked.clear()
        conv_ops.conv2d_input_grad(dev(w), dev(dz), x_shape, stride, pads)
        assert picked == [want], (case, picked)


def test_conv2d_backward_ops_refuse_a_wrongly_shaped_gradient():
    w, x = dev(numpy.ones((3, 3, 3, 4))), dev(numpy.ones((2, 6, 6, 3)))
    for bad in (numpy.ones((2, 6, 6, 1)), numpy.ones((2, 6, 5, 4))):
        with pytest.raises(ValueError, match=r"dz must have the convolution output's shape \(2, 6, 6, 4\)"):
            backend.op("conv2d_input_grad")(w, dev(bad), (2, 6, 6, 3), (1, 1), (1, 1, 1, 1))
        with pytest.raises(ValueError, match=r"dz must have the convolution output's shape \(2, 6, 6, 4\)"):
            backend.op("conv2d_weight_grad")(x, dev(bad), (3, 3, 3, 4), (1, 1), (1, 1, 1, 1))


@pytest.mark.parametrize("padding,stride,x_shape,kernel", [
    ("SAME", 1, (2, 5, 4, 3), (3, 3)), ("SAME", 2, (2, 7, 5, 2), (4, 3)), ("VALID", 2, (2, 7, 6, 3), (3, 3)),
    ("SAME", 1, (2, 28, 7, 1), (5, 5))])
@pytest.mark.parametrize("bias", ["plain", "negsoftplus", None])
def test_conv2d_training_keeps_patches_and_its_gradients_equal_the_recomputed_ones(padding, stride, x_shape,
                                                                                    kernel, bias, rng, monkeypatch):
    layer = Conv2D(x_shape[3], 3, kernel, stride=stride, padding=padding, bias=bias, rng=rng, dtype="float64")
    if bias is not None:
        layer.params["b"][:] = dev(rng.standard_normal(3))
    x = dev(rng.standard_normal(x_shape))
    _, (x_kept, patches) = run(layer, x, train=True)
    assert conv_ops.KEEP_PATCHES_BYTES == 0 and x_kept is x and patches is None          # off by default
    monkeypatch.setattr(conv_ops, "KEEP_PATCHES_BYTES", float("inf"))
    z_eval, (x_eval, none) = run(layer, x)
    z_train, (x_train, patches) = run(layer, x, train=True)
    assert none is None and x_eval is x and x_train is x
    pads = layer.pads(x_shape)[0]
    kh, kw = layer.kernel_size
    assert patches.shape == z_train.shape[:3] + (kh * kw * x_shape[3],)
    numpy.testing.assert_array_equal(host(patches), host(conv_ops.conv2d_patches(x, (kh, kw), layer.stride, pads)))
    numpy.testing.assert_allclose(host(z_train), host(z_eval), rtol=1e-14, atol=1e-14)
    dz = dev(rng.standard_normal(z_eval.shape))
    (dx_train,), g_train = host(layer.backward((x, patches), dz))
    (dx_eval,), g_eval = host(layer.backward((x, None), dz))
    assert g_train.keys() == g_eval.keys() == set(layer.params)
    numpy.testing.assert_allclose(dx_train, dx_eval, rtol=1e-14, atol=1e-14)
    for k in g_eval:
        numpy.testing.assert_allclose(g_train[k], g_eval[k], rtol=1e-12, atol=1e-12, err_msg=k)


@pytest.mark.parametrize("padding,stride,x_shape,kernel", [
    ("SAME", 1, (2, 5, 4, 3), (3, 3)), ("SAME", 2, (2, 7, 5, 2), (4, 3)), ("VALID", 1, (2, 5, 6, 2), (3, 2))])
def test_conv2d_gradcheck_in_training(padding, stride, x_shape, kernel, rng, monkeypatch):
    """The parameter gradients from the kept patches, against central differences."""
    monkeypatch.setattr(conv_ops, "KEEP_PATCHES_BYTES", float("inf"))
    layer = Conv2D(x_shape[3], 3, kernel, stride=stride, padding=padding, bias="negsoftplus", rng=rng,
                   dtype="float64")
    assert_gradcheck(layer, rng.standard_normal(x_shape), train=True)


def test_conv_training_tape_keeps_patches_within_its_budget(rng, monkeypatch):
    layer = Conv2D(2, 3, 3, rng=rng, dtype="float64")
    x = dev(rng.standard_normal((2, 5, 4, 2)))
    one_call = 2 * 5 * 4 * (3 * 3 * 2) * 8                 # bytes of one call's patches
    monkeypatch.setattr(conv_ops, "KEEP_PATCHES_BYTES", 2 * one_call)
    tape = Tape(train=True)
    caches = [layer.forward(tape, x)[1] for _ in range(3)]
    assert [p is not None for _, p in caches] == [True, True, False]
    assert caches[0][1].nbytes == one_call
    assert layer.forward(Tape(train=True), x)[1][1] is not None     # the budget is per tape
    dz = dev(rng.standard_normal((2, 5, 4, 3)))
    for k, g in host(layer.param_grads(caches[0], dz)).items():     # kept or rebuilt: the same gradient
        numpy.testing.assert_allclose(g, host(layer.param_grads(caches[2], dz))[k], rtol=1e-12, err_msg=k)


def test_conv_patches_are_kept_only_in_training(rng, monkeypatch):
    import lrpnet
    from lrpnet.models import build
    model = build("convdeep", input_shape=(28, 12), T=3, conv1=3, conv2=4, front=8, mid=6, state=6, top=5,
                  dtype="float64")
    x = dev(rng.uniform(-1, 1, (4, 28, 12)))

    def conv_caches(tape):
        caches = [node.cache for node in tape.nodes if isinstance(node.layer, Conv2D)]
        assert caches, "no convolution on the tape"
        return caches
    assert all(p is None for _, p in conv_caches(model.trace(x, train=True, rng=backend.random_state([0]))[0]))
    monkeypatch.setattr(conv_ops, "KEEP_PATCHES_BYTES", float("inf"))
    assert all(p is not None for _, p in conv_caches(model.trace(x, train=True, rng=backend.random_state([0]))[0]))
    assert all(p is None for _, p in conv_caches(model.trace(x)[0]))
    for method in ("dtd", "gradient_x_input"):
        details = lrpnet.explain(model, x, method, return_details=True)
        assert all(p is None for _, p in conv_caches(details.tape)), method


def test_new_conv_ops_agree_with_reference(each_backend, rng):
    """conv2d_patches and the two *_from_patches operations, and the two input-gradient formulations,
    under each other backend against the NumPy reference."""
    x = rng.standard_normal((3, 9, 7, 2)).astype("float32")
    w = rng.standard_normal((3, 4, 2, 5)).astype("float32")
    b = rng.standard_normal(5).astype("float32")
    stride, pads = (1, 1), (1, 1, 1, 2)
    with backend.using("numpy"):
        patches = conv_ops.conv2d_patches(x, (3, 4), stride, pads)
    dz = rng.standard_normal(patches.shape[:3] + (5,)).astype("float32")
    calls = {"conv2d_patches": (x, (3, 4), stride, pads),
             "conv2d_forward_from_patches": (patches, w, b),
             "conv2d_weight_grad_from_patches": (patches, dz, w.shape)}
    for name, args in calls.items():
        with backend.using("numpy"):
            want = backend.op(name)(*args)
        got = host(backend.op(name)(*[dev(a) if isinstance(a, numpy.ndarray) else a for a in args]))
        assert got.dtype == want.dtype, name
        numpy.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=name)
    for form in (conv_ops.input_grad_transposed, conv_ops.input_grad_col2im):
        with backend.using("numpy"):
            want = form(w, dz, x.shape, stride, pads)
        got = host(form(dev(w), dev(dz), x.shape, stride, pads))
        assert got.dtype == want.dtype, form.__name__
        numpy.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=form.__name__)


def test_conv_ops_take_non_contiguous_arrays(rng):
    """Strided views (a transposed weight, a flipped image) give what their contiguous copies give."""
    x = dev(rng.standard_normal((2, 5, 6, 3)))[:, ::-1].transpose(0, 2, 1, 3)          # (2, 6, 5, 3)
    w = dev(rng.standard_normal((4, 3, 2, 3))).transpose(0, 1, 3, 2)                  # (4, 3, 3, 2)
    xc, wc = backend.xp().ascontiguousarray(x), backend.xp().ascontiguousarray(w)
    for stride in ((1, 1), (1, 2)):
        pads, out_hw = conv_ops.window_pads(x.shape, (4, 3), stride, "SAME")
        dz = dev(rng.standard_normal((2, *out_hw, 2)))[..., ::-1]
        dzc = backend.xp().ascontiguousarray(dz)
        numpy.testing.assert_allclose(host(backend.op("conv2d_forward")(x, w, None, stride, pads)),
                                      host(backend.op("conv2d_forward")(xc, wc, None, stride, pads)), rtol=1e-13)
        numpy.testing.assert_allclose(host(backend.op("conv2d_weight_grad")(x, dz, w.shape, stride, pads)),
                                      host(backend.op("conv2d_weight_grad")(xc, dzc, w.shape, stride, pads)),
                                      rtol=1e-13)
        for form in (conv_ops.input_grad_transposed, conv_ops.input_grad_col2im):
            numpy.testing.assert_allclose(host(form(w, dz, x.shape, stride, pads)),
                                          host(form(wc, dzc, x.shape, stride, pads)), rtol=1e-13,
                                          err_msg=form.__name__)
