"""What the CPU-speed changes must leave unchanged (benchmarks/RESULTS.md, "CPU speed, second pass").

- The convolution's forward pass and weight gradient build their patches a few images at a time
  (``conv.PATCH_CHUNK_BYTES``): every chunking gives the whole batch's answer, and the literal sum's.
- A dense layer used at several nodes (a recurrent cell's T steps) gets its parameter gradient in one
  product over all its uses (``Dense.param_grads_of_uses``): the sum of each use's gradient.
- ``rules.propagate`` merges the pairs whose x' is one number (z^B's bounds, w^2's and flat's ones)
  on the CPU: the same relevance as every pair on its own, which is what a GPU computes.
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
