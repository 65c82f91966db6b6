"""``from_torch`` on layers that ordinary PyTorch models are made of: symmetric padding on even sizes,
BatchNorm (folded), adaptive pools, a final Softmax; every import checked against torch's own forward
pass (and, where the weights are copied unchanged, its input gradient)."""
import warnings

import numpy
import pytest

import lrpnet
from lrpnet.io import from_torch
from lrpnet.io.pytorch import UnsupportedModule

torch = pytest.importorskip("torch")
nn = torch.nn
pytestmark = pytest.mark.torch


def nhwc(x):
    return x.permute(0, 2, 3, 1).numpy()


def torch_logits(net, x):
    net.eval()
    with torch.no_grad():
        return net(x).numpy()


def randomise_batchnorm(net, seed=0):
    """Running statistics and affine parameters far from the identity, so that a fold that skipped
    any of them would not match."""
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g, dtype=m.running_mean.dtype) * 2 - 1)
            m.running_var.copy_(torch.rand(n, generator=g, dtype=m.running_var.dtype) * 2 + 0.3)
            if m.affine:
                with torch.no_grad():
                    m.weight.copy_(torch.rand(n, generator=g, dtype=m.weight.dtype) + 0.5)
                    m.bias.copy_(torch.rand(n, generator=g, dtype=m.bias.dtype) - 0.5)
    return net.eval()


def test_stride_2_padding_1_on_even_input_matches_torch():
    """PyTorch pads symmetrically (1 before, 1 after), TensorFlow's SAME would pad 0 before and 1
    after on an even input: the conversion keeps torch's padding, for the conv and the max pool."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 4, 3, stride=2, padding=1), nn.ReLU(),
                        nn.MaxPool2d(3, stride=2, padding=1),
                        nn.Conv2d(4, 5, 2, padding=1), nn.ReLU(),       # even kernel, padding 1: 3x2 -> 4x3
                        nn.Flatten(), nn.Linear(5 * 4 * 3, 3)).double()
    x = torch.randn(6, 2, 12, 8, dtype=torch.float64)
    model = from_torch(net, input_shape=(2, 12, 8))
    numpy.testing.assert_allclose(model.predict(nhwc(x)), torch_logits(net, x), rtol=0, atol=1e-12)
    # the input gradient too (the padded conv's and pool's backward steps), against autograd
    xg = x.clone().requires_grad_(True)
    net(xg)[:, 1].sum().backward()
    grad = lrpnet.explain(model, nhwc(x), "gradient", target=1)
    numpy.testing.assert_allclose(grad, nhwc(xg.grad), rtol=0, atol=1e-12)


def test_ordinary_cnn_with_batchnorm_adaptive_pool_and_softmax_matches_torch():
    """A ResNet-like stem as people write it: stride-2 conv without bias + BatchNorm2d, max pool with
    padding 1, global average pool, a Linear + BatchNorm1d, a final Softmax (dropped with a warning)."""
    torch.manual_seed(1)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        nn.MaxPool2d(3, stride=2, padding=1),
        nn.Conv2d(8, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(6, 5, bias=False), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 4),
        nn.Softmax(dim=1)).double()
    randomise_batchnorm(net)
    x = torch.randn(7, 3, 16, 16, dtype=torch.float64)
    with pytest.warns(UserWarning, match="final Softmax is dropped.*logits"):
        model = from_torch(net, input_shape=(3, 16, 16))
    assert [layer.kind for layer in model.layers.values()].count("conv2d") == 2     # BatchNorm folded
    numpy.testing.assert_allclose(model.predict(nhwc(x)), torch_logits(net[:-1], x), rtol=0, atol=1e-10)
    # the folded model explains, and LRP-0 conserves relevance through the padded layers
    e = lrpnet.explain(model, nhwc(x), "lrp-0", start="logit", return_details=True)
    numpy.testing.assert_allclose(e.relevance.reshape(7, -1).sum(1) + e.absorbed, e.score, rtol=1e-9, atol=1e-9)


def test_batchnorm_fold_float32_and_without_affine():
    torch.manual_seed(2)
    net = randomise_batchnorm(nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5, affine=False), nn.Tanh(),
                                            nn.Linear(5, 3)), seed=3)
    x = torch.randn(9, 6)
    model = from_torch(net)
    assert model.dtype == numpy.float32
    numpy.testing.assert_allclose(model.predict(x.numpy()), torch_logits(net, x), rtol=1e-5, atol=1e-5)


def test_batchnorm_in_training_mode_is_folded_with_running_stats_and_warns():
    net = randomise_batchnorm(nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3)).double())
    net.train()       # from_torch folds the running statistics all the same, and says so
    with pytest.warns(UserWarning, match="training mode.*running statistics"):
        model = from_torch(net)
    x = torch.randn(5, 4, dtype=torch.float64)
    numpy.testing.assert_allclose(model.predict(x.numpy()), torch_logits(net, x), rtol=0, atol=1e-12)


def test_adaptive_pools_whose_output_divides_the_input_match_torch():
    torch.manual_seed(4)
    net = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.AdaptiveMaxPool2d((3, None)),
                        nn.AdaptiveAvgPool2d((1, 2)), nn.Flatten(), nn.Linear(3 * 1 * 2, 2)).double()
    x = torch.randn(4, 1, 6, 8, dtype=torch.float64)
    model = from_torch(net, input_shape=(1, 6, 8))
    pools = [(layer.kind, layer.size) for layer in model.layers.values() if layer.kind.endswith("pool2d")]
    assert pools == [("maxpool2d", (2, 1)), ("avgpool2d", (3, 4))]
    numpy.testing.assert_allclose(model.predict(nhwc(x)), torch_logits(net, x), rtol=0, atol=1e-12)


def test_what_still_cannot_convert_says_why():
    with pytest.raises(UnsupportedModule, match=r"output size \(4, 4\) does not divide the input size \(6, 6\)"):
        from_torch(nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten()), input_shape=(1, 6, 6))
    with pytest.raises(UnsupportedModule, match="BatchNorm2d converts only right after a Conv2d.*follows relu"):
        from_torch(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.BatchNorm2d(2), nn.Flatten()),
                   input_shape=(1, 4, 4))
    with pytest.raises(UnsupportedModule, match="BatchNorm1d converts only right after a Linear.*the input"):
        from_torch(nn.Sequential(nn.BatchNorm1d(3), nn.Linear(3, 2)), input_shape=(3,))
    with pytest.raises(UnsupportedModule, match="no running statistics"):
        from_torch(nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3, track_running_stats=False)))
    with pytest.raises(UnsupportedModule, match="Softmax is accepted only as the last module"):
        from_torch(nn.Sequential(nn.Linear(3, 3), nn.Softmax(dim=1), nn.Linear(3, 2)))
    with pytest.raises(UnsupportedModule, match="LeakyReLU is not supported: lrpnet has no LeakyReLU layer"):
        from_torch(nn.Sequential(nn.Linear(3, 3), nn.LeakyReLU(0.1), nn.Linear(3, 2)))


def test_final_softmax_after_a_recurrent_head_is_dropped():
    torch.manual_seed(5)
    lstm, head = nn.LSTM(4, 3, batch_first=True).double(), nn.Linear(3, 2).double()
    with pytest.warns(UserWarning, match="LogSoftmax is dropped"):
        model = from_torch(lstm, head, nn.LogSoftmax(dim=-1), input_shape=(2, 4), T=2)
    assert model.arch == "lstm"


def test_a_batch_in_torch_layout_is_refused_with_the_permutation_to_use():
    model = from_torch(nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten(), nn.Linear(2 * 3 * 4, 2)),
                       input_shape=(3, 5, 6))
    assert model.input_shape == (5, 6, 3)
    x = torch.randn(2, 3, 5, 6)
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 5, 6, 3\).*\(N, C, H, W\).*"
                                         r"permute\(0, 2, 3, 1\)"):
        model.predict(x.numpy())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert model.predict(nhwc(x)).shape == (2, 2)


def test_explicit_padding_gives_the_same_on_every_backend(each_backend):
    """Torch's padding is explicit ((top, bottom), (left, right)) padding in lrpnet: the kernels of
    the other backends (Numba's pools, CuPy's) read it like the NumPy reference."""
    from lrpnet import backend
    torch.manual_seed(6)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2, padding=1),
                        nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
                        nn.AvgPool2d(3, 1, padding=1, count_include_pad=False),
                        nn.Flatten(), nn.Linear(4 * 2 * 2, 3)).double()
    x = nhwc(torch.rand(3, 1, 8, 6, dtype=torch.float64) * 2 - 1)
    with backend.using("numpy"):
        model = from_torch(net, input_shape=(1, 8, 6))
        want = [model.predict(x)] + [lrpnet.explain(model, x, m) for m in ("gradient", "dtd", "lrp-epsilon")]
    model.to(each_backend)
    got = [model.predict(x)] + [lrpnet.explain(model, x, m) for m in ("gradient", "dtd", "lrp-epsilon")]
    for g, w in zip(got, want):
        numpy.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)
