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


@pytest.mark.parametrize("cls", [SumPool2D, AvgPool2D, MaxPool2D])
def test_pool_proportional_rule_conserves(cls, rng):
    x = distinct(rng, (2, 5, 7, 3)) + 10.0      # positive activations, as after a ReLU
    layer = cls(2, 2, "SAME")
    a, cache = run(layer, dev(x))
    relevance = rng.random(a.shape)
    (back,), _ = host(layer.backward(cache, dev(relevance) / a))
    numpy.testing.assert_allclose((x * back).sum(axis=(1, 2, 3)), relevance.sum(axis=(1, 2, 3)), rtol=1e-12)


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
