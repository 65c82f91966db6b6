"""The Numba kernels (kernels/numba) compute the NumPy reference operations: equal results on a grid of
geometries and both dtypes, max-pool ties and -inf padding decided the same way, and a small ConvDeep
whose loss, gradients and DTD relevance do not depend on the backend. The convolutions have no Numba
kernel (the reference's BLAS product is faster, kernels/numba/conv.py): the numba backend runs their
reference, which the last section checks.

These are host tests whatever ``LRPNET_BACKEND`` says: every test runs under the NumPy reference, on
host arrays, and calls the Numba kernels directly or under ``backend.using("numba")``."""
import os
import subprocess
import sys

import numpy
import pytest

pytest.importorskip("numba")

from lrpnet import backend                            # noqa: E402
from lrpnet.layers.conv import window_pads            # noqa: E402

from conftest import reference_and_kernel  # noqa: E402

RTOL = {"float32": 1e-5, "float64": 1e-12}
CONV_OPS = ("conv2d_forward", "conv2d_input_grad", "conv2d_weight_grad", "conv2d_patches",
            "conv2d_forward_from_patches", "conv2d_weight_grad_from_patches")
POOL_OPS = ("sumpool2d_forward", "sumpool2d_backward", "avgpool2d_forward", "avgpool2d_backward",
            "maxpool2d_forward", "maxpool2d_backward")

POOL_CASES = [((2, 7, 5, 1), (2, 2)), ((2, 7, 6, 3), (3, 3)), ((1, 5, 9, 2), (3, 2)), ((2, 4, 5, 3), (1, 1))]
STRIDES = [(1, 1), (2, 2), (2, 1)]
PADDINGS = ["SAME", "VALID"]


pytestmark = pytest.mark.usefixtures("on_the_host")     # conftest: the references under NumPy


def both(name):
    """(reference, kernel) of operation ``name``."""
    return reference_and_kernel(name, "numba")


def assert_close(got, want, dtype, what):
    """Equal to rounding: rtol of the dtype, relative to the largest entry where terms cancel."""
    assert got.dtype == want.dtype and got.shape == want.shape, (what, got.dtype, want.dtype, got.shape, want.shape)
    rtol = RTOL[dtype]
    scale = float(numpy.max(numpy.abs(want))) if want.size else 0.0
    numpy.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale, err_msg=what)


def geometries(cases):
    """Every (case, stride, padding) whose VALID windows fit in the image."""
    for shape, size in cases:
        for stride in STRIDES:
            for padding in PADDINGS:
                if padding == "VALID" and (shape[1] < size[0] or shape[2] < size[1]):
                    continue
                pads, out_hw = window_pads(shape, size, stride, padding)
                yield (shape, size), stride, padding, pads, out_hw


def test_every_pool_op_has_a_numba_kernel():
    import kernels.numba  # noqa: F401  (registers every kernel)
    # equal, not a subset: a pool kernel added without the comparisons below fails here (the other
    # kernels are compared in tests/test_kernels_numba_pointwise.py)
    pool_kernels = {n for n in backend.operations() if "pool2d" in n and "numba" in backend.implementations(n)}
    assert pool_kernels == set(POOL_OPS), sorted(pool_kernels ^ set(POOL_OPS))
    for name in POOL_OPS:
        ref, kernel = both(name)
        assert kernel is not ref and kernel.__module__.startswith("kernels.numba")
        with backend.using("numba"):
            assert backend.op(name) is kernel
        with backend.using("numpy"):
            assert backend.op(name) is ref         # the reference under numpy


def test_importing_lrpnet_does_not_import_numba():
    code = ("import sys, lrpnet, lrpnet.layers, lrpnet.models, lrpnet.explain; "
            "from lrpnet import backend; backend.op('conv2d_forward'); "
            "assert 'numba' not in sys.modules, 'numba imported'; "
            "backend.use('numba'); assert 'numba' in sys.modules")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root,
                   env={**os.environ, "PYTHONPATH": root, "LRPNET_BACKEND": "numpy"})


# -- pooling ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", ["sumpool2d", "avgpool2d"])
def test_sum_and_avg_pool_kernels_equal_reference(kind, dtype, rng):
    fwd, bwd = both(kind + "_forward"), both(kind + "_backward")
    for (shape, size), stride, padding, pads, out_hw in geometries(POOL_CASES):
        what = f"{kind} {dtype} x{shape} size{size} s{stride} {padding}"
        x = rng.standard_normal(shape).astype(dtype)
        dy = rng.standard_normal((shape[0],) + out_hw + (shape[3],)).astype(dtype)
        assert_close(fwd[1](x, size, stride, pads), fwd[0](x, size, stride, pads), dtype, "forward " + what)
        assert_close(bwd[1](dy, shape, size, stride, pads), bwd[0](dy, shape, size, stride, pads), dtype,
                     "backward " + what)


def assert_maxpool_equal(x, dy, size, stride, pads, what):
    """Same maxima, same winners (arg, exactly) and the same routed gradient as the reference."""
    fwd, bwd = both("maxpool2d_forward"), both("maxpool2d_backward")
    (y_ref, arg_ref), (y, arg) = fwd[0](x, size, stride, pads), fwd[1](x, size, stride, pads)
    numpy.testing.assert_array_equal(y, y_ref, err_msg="maxima " + what)
    assert y.dtype == y_ref.dtype and arg.dtype == arg_ref.dtype, what
    numpy.testing.assert_array_equal(arg, arg_ref, err_msg="winning offsets " + what)
    numpy.testing.assert_array_equal(bwd[1](arg, dy, x.shape, size, stride, pads),
                                     bwd[0](arg_ref, dy, x.shape, size, stride, pads), err_msg="backward " + what)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_maxpool_kernels_equal_reference_with_ties(dtype, rng):
    for (shape, size), stride, padding, pads, out_hw in geometries(POOL_CASES):
        what = f"{dtype} x{shape} size{size} s{stride} {padding}"
        x = rng.integers(0, 3, shape).astype(dtype)           # three values: ties in most windows
        dy = rng.standard_normal((shape[0],) + out_hw + (shape[3],)).astype(dtype)
        assert_maxpool_equal(x, dy, size, stride, pads, what)


def test_maxpool_tie_goes_to_first_offset_in_row_major_order():
    # one 3x3 window (VALID): the maximum 5 at (0, 2) and (1, 0); the first in row-major order is k = 2
    x = numpy.array([[1, 0, 5], [5, 2, 0], [0, 5, 1]], dtype="float32").reshape(1, 3, 3, 1)
    y, arg = both("maxpool2d_forward")[1](x, (3, 3), (1, 1), (0, 0, 0, 0))
    assert float(y[0, 0, 0, 0]) == 5 and int(arg[0, 0, 0, 0]) == 2


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_maxpool_same_padding_is_minus_infinity(dtype, rng):
    for (shape, size), stride, padding, pads, out_hw in geometries(POOL_CASES):
        if padding != "SAME" or not any(pads):
            continue
        what = f"{dtype} x{shape} size{size} s{stride}"
        x = (-5.0 - rng.random(shape)).astype(dtype)            # all negative: a zero pad would win
        dy = rng.standard_normal((shape[0],) + out_hw + (shape[3],)).astype(dtype)
        assert_maxpool_equal(x, dy, size, stride, pads, what)
        assert float(both("maxpool2d_forward")[1](x, size, stride, pads)[0].max()) < -5, what
        # -inf inputs: a window of only -inf (and padding) keeps offset 0, as the reference's strict >
        x[:, ::2, ::3, :] = -numpy.inf
        x[:, :2, :2, :] = -numpy.inf
        assert_maxpool_equal(x, dy, size, stride, pads, what + " with -inf inputs")


def test_maxpool_wide_windows_use_int32_offsets(rng):
    x = rng.standard_normal((1, 17, 17, 2))
    assert_maxpool_equal(x, rng.standard_normal((1, 1, 2, 2)), (17, 16), (1, 1), (0, 0, 0, 0), "17x16 window")
    assert both("maxpool2d_forward")[1](x, (17, 16), (1, 1), (0, 0, 0, 0))[1].dtype == numpy.int32


# -- a whole model ------------------------------------------------------------------------------------
def test_convdeep_gradients_and_dtd_relevance_do_not_depend_on_backend(rng):
    import lrpnet
    from lrpnet.models import build
    model = build("convdeep", input_shape=(28, 12), T=3, conv1=3, conv2=4, front=8, mid=6, state=6, top=5,
                  dtype="float64")                          # a host model (the fixture: under numpy)
    x = rng.uniform(-1, 1, (4, 28, 12))
    y = rng.integers(0, model.n_classes, 4)
    loss_ref, grads_ref = model.loss_and_grads(x, y)
    rel_ref = lrpnet.explain(model, x, "dtd")
    with backend.using("numba"):
        loss, grads = model.loss_and_grads(x, y)
        rel = lrpnet.explain(model, x, "dtd")
    assert float(numpy.abs(rel_ref).sum()) > 0 and set(grads) == set(grads_ref)
    numpy.testing.assert_allclose(loss, loss_ref, rtol=1e-10)
    for name in grads_ref:
        g_ref = grads_ref[name]
        numpy.testing.assert_allclose(grads[name], g_ref, rtol=1e-10,
                                      atol=1e-10 * float(numpy.abs(g_ref).max()), err_msg=name)
    numpy.testing.assert_allclose(rel, rel_ref, rtol=1e-10, atol=1e-10 * float(numpy.abs(rel_ref).max()))


def test_backward_kernels_refuse_a_wrongly_shaped_gradient(rng):
    pads, _ = window_pads((2, 6, 6, 3), (2, 2), (2, 2), "SAME")
    with pytest.raises(ValueError, match=r"shape \(2, 3, 3, 3\)"):
        both("sumpool2d_backward")[1](numpy.ones((2, 3, 1, 3)), (2, 6, 6, 3), (2, 2), (2, 2), pads)


# ---------------------------------------------------------------------------------------------------
# Convolution: no Numba kernels; the numba backend runs the NumPy reference (kernels/numba/conv.py
# says why, with its numbers)
# ---------------------------------------------------------------------------------------------------
def test_conv_ops_run_the_reference_under_numba():
    for name in CONV_OPS:
        impls = backend.implementations(name)
        assert "numba" not in impls, f"{name} has a Numba kernel again: measure it against the reference"
        with backend.using("numba"):
            assert backend.op(name) is impls["numpy"]


@pytest.mark.parametrize("keep_patches", [0, float("inf")])
@pytest.mark.parametrize("arch", ["convdeep", "conv+deep"])
def test_conv_training_step_does_not_depend_on_backend(arch, keep_patches, rng, monkeypatch):
    """A training step (with Numba's pools, conv patches kept or not) gives the reference's loss and
    gradients; conv+deep runs conv1's input gradient too (its lateral input)."""
    from lrpnet.layers import conv
    from lrpnet.models import build
    monkeypatch.setattr(conv, "KEEP_PATCHES_BYTES", keep_patches)
    model = build(arch, input_shape=(28, 12), T=3, conv1=3, conv2=4, front=8, mid=6, state=6, top=5,
                  dtype="float64")
    x = rng.uniform(-1, 1, (4, 28, 12))
    y = rng.integers(0, model.n_classes, 4)
    loss_ref, grads_ref = model.loss_and_grads(x, y, train=True, rng=numpy.random.default_rng(0))
    with backend.using("numba"):
        loss, grads = model.loss_and_grads(x, y, train=True, rng=numpy.random.default_rng(0))
    assert set(grads) == set(grads_ref)
    numpy.testing.assert_allclose(loss, loss_ref, rtol=1e-10)
    for name, g_ref in grads_ref.items():
        numpy.testing.assert_allclose(grads[name], g_ref, rtol=1e-10,
                                      atol=1e-10 * float(numpy.abs(g_ref).max()), err_msg=name)
