"""What the CPU-speed changes must leave unchanged (benchmarks/RESULTS.md, "CPU speed, second pass").

- The convolution's forward pass and weight gradient build their patches a few images at a time
  (``conv.PATCH_CHUNK_BYTES``): every chunking gives the whole batch's answer, and the literal sum's.
- A dense layer used at several nodes (a recurrent cell's T steps) gets its parameter gradient in one
  product over all its uses (``Dense.param_grads_of_uses``): the sum of each use's gradient.
- ``rules.propagate`` merges the pairs whose x' is one number (z^B's bounds, w^2's and flat's ones)
  on the CPU: the same relevance as every pair on its own, which is what a GPU computes.

And of the third pass ("CPU speed, third pass"):

- ``rules.sign``, ``safe_divide`` and ``lrp_divide`` multiply by 0/1 masks instead of selecting with
  ``where``: the values of the select forms (sign(0) = +1, s = 0 where the denominator is 0), only
  the sign of a zero may differ.
"""
import numpy
import pytest

from lrpnet import backend, rules
from lrpnet.graph import Tape
from lrpnet.layers import Conv2D, Dense
from lrpnet.layers import conv as conv_ops

pytestmark = pytest.mark.usefixtures("on_the_host")


def literal_conv(x, w, pads):
    """z[n, p, q, o] = sum_{i,j,c} xpad[n, p + i, q + j, c] w[i, j, c, o], stride 1."""
    top, bottom, left, right = pads
    xpad = numpy.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    kh, kw = w.shape[:2]
    oh, ow = xpad.shape[1] - kh + 1, xpad.shape[2] - kw + 1
    return sum(numpy.einsum("nhwc,co->nhwo", xpad[:, i:i + oh, j:j + ow], w[i, j]) for i in range(kh) for j in range(kw))


@pytest.mark.parametrize("images_per_chunk", [1, 2, 3, 7])
def test_conv_forward_and_weight_grad_in_chunks_of_images(images_per_chunk, rng, monkeypatch):
    x = rng.standard_normal((7, 6, 5, 3))
    w, b = rng.standard_normal((3, 2, 3, 4)), rng.standard_normal(4)
    pads, out_hw = conv_ops.window_pads(x.shape, (3, 2), (1, 1), "SAME")
    dz = rng.standard_normal((7,) + out_hw + (4,))
    z_want = literal_conv(x, w, pads) + b
    # dL/dW[i, j, c, o] = sum over n, p, q of xpad[n, p + i, q + j, c] dz[n, p, q, o]
    xpad = numpy.pad(x, ((0, 0), pads[:2], pads[2:], (0, 0)))
    dw_want = numpy.stack([numpy.stack([numpy.einsum("nhwc,nhwo->co", xpad[:, i:i + out_hw[0], j:j + out_hw[1]], dz)
                                        for j in range(2)]) for i in range(3)])
    per_image = out_hw[0] * out_hw[1] * 3 * 2 * 3 * 8        # bytes of one image's patches
    monkeypatch.setattr(conv_ops, "PATCH_CHUNK_BYTES", {"cpu": images_per_chunk * per_image, "gpu": 1})
    assert conv_ops.images_per_chunk(x.shape, (3, 2), (1, 1), pads, 8) == images_per_chunk
    z = conv_ops.conv2d_forward(x, w, b, (1, 1), pads)
    dw = conv_ops.conv2d_weight_grad(x, dz, w.shape, (1, 1), pads)
    numpy.testing.assert_allclose(z, z_want, rtol=1e-12, atol=1e-12)
    numpy.testing.assert_allclose(dw, dw_want, rtol=1e-12, atol=1e-12)


def test_a_dense_layer_used_at_several_nodes_gets_the_sum_of_its_uses_gradients(rng):
    layer = Dense(4, 4, bias="negsoftplus", rng=rng, dtype="float64")
    layer.name = "d"
    tape = Tape()
    h = tape.input(rng.standard_normal((3, 4)))
    for _ in range(3):                                       # h <- layer(h), three times: one layer, three nodes
        h = layer(tape, h)
    seed = rng.standard_normal((3, 4))
    _, grads = tape.backward({h: seed}, leaves=())
    dys, dy = [], seed                                       # each node's output gradient, walked by hand
    for _ in tape.nodes:
        dys.append(dy)
        dy = dy @ layer.weight.T
    want = {}
    for node, dy in zip(reversed(tape.nodes), dys):
        for k, g in layer.param_grads(node.cache, dy).items():
            want[k] = want.get(k, 0) + g
    assert sorted(grads) == ["d.W", "d.b"]
    for k in want:
        numpy.testing.assert_allclose(grads[f"d.{k}"], want[k], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("rule,params", [("zbox", {}), ("zbox", {"low": -2.0, "high": 0.5}), ("w_square", {}),
                                         ("flat", {}), ("zplus", {}), ("alpha_beta", {})])
@pytest.mark.parametrize("make", ["dense", "conv"])
def test_propagate_merging_constant_pairs_gives_what_every_pair_alone_gives(rule, params, make, rng, monkeypatch):
    if make == "dense":
        layer, x = Dense(5, 3, bias="negsoftplus", rng=rng, dtype="float64"), rng.uniform(-1, 1, (4, 5))
    else:
        layer, x = Conv2D(2, 3, 3, bias="negsoftplus", rng=rng, dtype="float64"), rng.uniform(-1, 1, (4, 5, 4, 2))
    z = layer.linear(x, layer.weight, layer.bias)
    R = numpy.maximum(z, 0) * rng.uniform(0.5, 1, z.shape)
    merged = rules.linear(layer, x, R, rule, params)
    monkeypatch.setattr(backend, "device", lambda: "gpu")    # the GPU's way: every pair on its own
    alone = rules.linear(layer, x, R, rule, params)
    for got, want in zip(merged, alone):
        numpy.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


# -- the stabilised division without selects ----------------------------------------------------------
def literal_sign(z):
    return numpy.where(z >= 0, z.dtype.type(1), z.dtype.type(-1))


def literal_lrp_divide(R, z, eps, coef):
    """The select form: s = c R / d and 0 where d = 0; absorbed = s eps sign(z) + (c R where d = 0)."""
    cR = coef * R if coef != 1 else R
    stab = eps * literal_sign(z) if eps else 0
    d = z + stab if eps else z
    zero = d == 0
    s = numpy.where(zero, 0, cR / numpy.where(zero, 1, d)).astype(cR.dtype)
    lost = numpy.where(zero, cR, 0).astype(cR.dtype)
    return s, (s * stab + lost if eps else lost)


def denominators(rng, shape, dtype):
    """Normal values with exact zeros of both signs, tiny and huge ones, +-inf and NaN."""
    z = rng.standard_normal(shape) * 10.0 ** rng.integers(-3, 4, shape)
    flat = z.reshape(-1)
    flat[::5], flat[1::11] = 0.0, -0.0
    flat[2:14] = [1e-30, -1e-30, 1e30, -1e30, numpy.inf, -numpy.inf, numpy.nan, 1e-45, -1e-45, 1.0, -1.0, 0.5]
    return z.astype(dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("eps, coef", [(0.0, 1.0), (1e-6, 1.0), (0.25, 1.5), (0.0, -0.5), (1e-50, 1.0)])
def test_lrp_divide_without_selects_has_the_values_of_the_select_form(eps, coef, dtype, rng):
    # eps = 1e-50 is 0 in float32: ``if eps`` is true but d = z, and zero denominators remain
    z = denominators(rng, (40, 7), dtype)
    R = (rng.standard_normal(z.shape) * 10.0 ** rng.integers(-3, 4, z.shape)).astype(dtype)
    R.reshape(-1)[::7] = 0.0
    R.reshape(-1)[3::13] = -0.0
    with numpy.errstate(all="ignore"):
        numpy.testing.assert_array_equal(rules.sign(z), literal_sign(z))
        assert rules.sign(z).dtype == z.dtype
        got, want = rules.lrp_divide(R, z, eps, coef), literal_lrp_divide(R, z, eps, coef)
        numpy.testing.assert_array_equal(rules.safe_divide(R, z), literal_lrp_divide(R, z, 0.0, 1.0)[0])
    for what, g, w in zip(("s", "absorbed"), got, want):
        assert g.dtype == w.dtype == numpy.dtype(dtype), what
        numpy.testing.assert_array_equal(g, w, err_msg=what)     # equal values, NaN where NaN
    if not eps:            # no division by zero: s = 0 and all of c R absorbed where z = 0
        assert (got[0][z == 0] == 0).all()
        numpy.testing.assert_array_equal(got[1][z == 0], (coef * R)[z == 0])


def test_lrp_divide_without_selects_broadcasts_as_the_select_form(rng):
    R, z = rng.standard_normal((5, 1, 4)), rng.standard_normal((3, 1))
    z[1] = 0.0
    for eps in (0.0, 1e-2):
        for g, w in zip(rules.lrp_divide(R, z, eps, 1.0), literal_lrp_divide(R, z, eps, 1.0)):
            assert g.shape == w.shape == (5, 3, 4)
            numpy.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("shape", [(7,), (5, 3), (4, 3, 2, 6), (1, 1)])
def test_bias_gradients_as_a_product_are_the_sums_over_rows(shape, rng):
    from lrpnet.layers.base import sum_over_rows
    a = rng.standard_normal(shape)
    want = a.reshape(-1, shape[-1]).sum(axis=0)
    got = sum_over_rows(a)
    assert got.shape == (shape[-1],) and got.dtype == a.dtype
    numpy.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("size", [(1, 1), (2, 2), (3, 3), (2, 3), (1, 2)])
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_sum_pool_without_padding_gives_every_window_sum(size, padding, rng):
    """Windows tiling the input from its corner are summed in groups of rows, then columns, without a
    padded copy (``pool._group_sums``); every other case pads. Both give the literal window sums."""
    from lrpnet.layers import pool
    for h in range(1, 8):
        for w in range(1, 8):
            if padding == "VALID" and (h < size[0] or w < size[1]):
                continue
            x = rng.standard_normal((2, h, w, 3))
            pads, out_hw = conv_ops.window_pads(x.shape, size, size, padding)
            xpad = numpy.pad(x, ((0, 0), pads[:2], pads[2:], (0, 0)))
            want = sum(xpad[:, i:i + size[0] * out_hw[0]:size[0], j:j + size[1] * out_hw[1]:size[1]]
                       for i in range(size[0]) for j in range(size[1]))
            numpy.testing.assert_allclose(pool.sumpool2d_forward(x, size, size, pads), want, rtol=1e-12,
                                          atol=1e-12, err_msg=f"{(h, w)}")
