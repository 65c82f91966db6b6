"""The CuPy kernels (kernels/cupy) compute the NumPy reference operations: for every pointwise operation,
the kernel on a device copy equals the reference on the host array, in float32 and float64, on data
with exact zeros, ties and signs at 0, and keeps the dtype. Tests marked gpu need a CUDA GPU; the
registration tests run everywhere (importing kernels.cupy needs neither CuPy nor a GPU)."""
import os
import subprocess
import sys

import numpy
import pytest

from lrpnet import backend

import kernels.cupy  # noqa: F401  (registers the kernels; imports no CuPy)
from conftest import reference_and_kernel

RTOL = {"float32": 1e-6, "float64": 1e-12}
DTYPES = ["float32", "float64"]
KERNEL_OPS = ("sigmoid_forward", "sigmoid_backward", "tanh_backward", "relu_backward", "relu_guided_backward",
              "negsoftplus", "negsoftplus_grad", "gatemul_backward", "dropout_mask", "sign", "lrp_divide",
              "adam_update", "adam_update_masked")
SHAPE = (7, 33)


# -- registration (no GPU needed) -------------------------------------------------------------------
def test_every_cupy_kernel_has_a_numpy_reference_of_the_same_name():
    with_kernel = [name for name in backend.operations() if "cupy" in backend.implementations(name)]
    # equal, not a subset: a cupy kernel added without its comparison test below fails here
    assert set(KERNEL_OPS) == set(with_kernel), sorted(set(KERNEL_OPS) ^ set(with_kernel))
    for name in with_kernel:
        impls = backend.implementations(name)
        assert "numpy" in impls, f"the cupy kernel {name!r} has no NumPy reference of that name"
        assert impls["cupy"] is not impls["numpy"]
        assert impls["cupy"].__module__.startswith("kernels.cupy."), (name, impls["cupy"].__module__)


def test_importing_kernels_cupy_imports_no_cupy_and_compiles_nothing():
    code = ("import sys, kernels.cupy; from lrpnet import backend; "
            "assert 'cupy' not in sys.modules, 'cupy imported'; "
            "from kernels.cupy.elementwise import KERNELS; "
            "assert KERNELS and all(k._kernel is None for k in KERNELS)")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root, env={**os.environ, "PYTHONPATH": root})


# -- the kernels against the references (GPU) ---------------------------------------------------------
def both(name):
    """(reference, kernel) of operation ``name``."""
    return reference_and_kernel(name, "cupy")


def on_device(*arrays):
    import cupy
    return [cupy.asarray(a) for a in arrays]


def assert_same(got, want, what):
    """got (a CuPy array) equals want (a NumPy array) to the dtype's relative tolerance, NaN where NaN,
    with want's dtype and shape."""
    import cupy
    assert isinstance(got, cupy.ndarray), (what, type(got))
    assert got.dtype == want.dtype and got.shape == want.shape, (what, got.dtype, want.dtype, got.shape, want.shape)
    numpy.testing.assert_allclose(cupy.asnumpy(got), want, rtol=RTOL[want.dtype.name], atol=0, err_msg=what)


def values(rng, dtype, scale=3.0, shape=SHAPE):
    """Normal values with exact zeros (both signs), ones and ties, and a few large magnitudes. No
    float32 subnormals: CuPy's kernels flush them to zero (-ftz=true), NumPy does not."""
    a = rng.standard_normal(shape) * scale
    flat = a.reshape(-1)
    flat[::11] = 0.0
    flat[5::11] = -0.0
    flat[3::13] = 1.0
    flat[4::17] = -1.0
    flat[7::19] = flat[6::19]                      # exact ties
    large = [30.0, -30.0, 80.0, -80.0]               # exp(-80) is still a normal float32
    flat[:len(large)] = large[:flat.size]
    return a.astype(dtype)


def outputs(y):
    return y if isinstance(y, tuple) else (y,)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["sigmoid_forward", "negsoftplus", "sign"])
def test_one_input_kernels_equal_reference(name, dtype, rng):
    ref, kernel = both(name)
    x = values(rng, dtype)
    for want, got in zip(outputs(ref(x)), outputs(kernel(*on_device(x)))):
        assert_same(got, want, f"{name} {dtype}")


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["sigmoid_backward", "tanh_backward", "relu_backward", "relu_guided_backward",
                                  "negsoftplus_grad", "gatemul_backward"])
def test_two_and_three_input_kernels_equal_reference(name, dtype, rng):
    ref, kernel = both(name)
    if name in ("sigmoid_backward", "tanh_backward"):     # y in the activation's range, ends included
        lo = 0.0 if name == "sigmoid_backward" else -1.0
        y = rng.uniform(lo, 1.0, SHAPE).astype(dtype)
        flat = y.reshape(-1)
        flat[::9] = lo
        flat[1::9] = 1.0
        flat[2::9] = numpy.nextafter(numpy.dtype(dtype).type(1), 0)
        # |y| within 1e-3 of 1: 1 - y*y cancels, and a fused multiply-add (rounding y*y away) would
        # be off by up to 1e-4 relative in float32
        near = 1 - rng.uniform(0, 1e-3, flat[3::9].shape)
        flat[3::9] = near if name == "sigmoid_backward" else near * rng.choice([-1, 1], near.shape)
        args = [y, values(rng, dtype)]
    elif name.startswith("relu"):                        # y = relu(x): zeros where x <= 0
        args = [numpy.maximum(values(rng, dtype), 0), values(rng, dtype)]
    elif name == "gatemul_backward":
        args = [values(rng, dtype), values(rng, dtype), values(rng, dtype)]
    else:
        args = [values(rng, dtype), values(rng, dtype)]
    for want, got in zip(outputs(ref(*args)), outputs(kernel(*on_device(*args)))):
        assert_same(got, want, f"{name} {dtype}")


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("keep", [0.5, 0.8, 0.9, 1.0])
def test_dropout_mask_kernel_equals_reference(keep, dtype, rng):
    ref, kernel = both("dropout_mask")
    u = rng.random(SHAPE).astype(dtype)
    u.reshape(-1)[::7] = numpy.dtype(dtype).type(keep)   # u == keep: dropped (u < keep is false)
    u.reshape(-1)[1::7] = 0.0
    assert_same(kernel(*on_device(u), keep), ref(u, keep), f"dropout_mask keep={keep} {dtype}")


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("eps", [0.0, 1e-2, 0.25])
@pytest.mark.parametrize("coef", [1.0, 1.5, -0.5])
def test_lrp_divide_kernel_equals_reference(coef, eps, dtype, rng):
    ref, kernel = both("lrp_divide")
    R, z = values(rng, dtype), values(rng, dtype)
    z.reshape(-1)[2::5] = 0.0                            # zero denominators when eps = 0
    z.reshape(-1)[3::23] = -numpy.dtype(dtype).type(eps)  # z = -eps: d = -2 eps, not 0
    s_want, absorbed_want = ref(R, z, eps, coef)
    s, absorbed = kernel(*on_device(R, z), eps, coef)
    what = f"lrp_divide eps={eps} coef={coef} {dtype}"
    assert_same(s, s_want, what + " s")
    assert_same(absorbed, absorbed_want, what + " absorbed")


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_lrp_divide_kernel_broadcasts_as_reference(dtype, rng):
    ref, kernel = both("lrp_divide")
    R, z = values(rng, dtype, shape=(5, 1, 4)), values(rng, dtype, shape=(3, 1))
    for want, got in zip(ref(R, z, 1e-2, 1.0), kernel(*on_device(R, z), 1e-2, 1.0)):
        assert_same(got, want, f"lrp_divide broadcast {dtype}")


ADAM = dict(beta1=0.9, beta2=0.999, step=2e-4 * (1 - 0.999 ** 3) ** 0.5 / (1 - 0.9 ** 3),
            eps=1e-8 * (1 - 0.999 ** 3) ** 0.5)


def adam_state(rng, dtype):
    p, g, m = values(rng, dtype), values(rng, dtype), values(rng, dtype, scale=0.1)
    v = numpy.abs(values(rng, dtype, scale=0.01))
    return p, g, m, v


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_update_kernel_equals_reference(dtype, rng):
    ref, kernel = both("adam_update")
    host = adam_state(rng, dtype)
    device = on_device(*host)
    for _ in range(3):                                    # state carried over steps, both in place
        assert ref(*host, **ADAM) is None
        assert kernel(*device, **ADAM) is None
    for name, got, want in zip("pgmv", device, host):
        assert_same(got, want, f"adam_update {name} {dtype}")


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ok_dtype", ["bool", "uint8"])
def test_adam_update_masked_kernel_equals_reference(ok_dtype, dtype, rng):
    import cupy
    ref, kernel = both("adam_update_masked")
    host = adam_state(rng, dtype)
    before = [a.copy() for a in host]
    device = on_device(*host)
    for ok in (True, False, True):
        host_ok = numpy.array(ok, dtype=ok_dtype)
        assert ref(*host, **ADAM, ok=host_ok) is None
        assert kernel(*device, **ADAM, ok=cupy.asarray(host_ok)) is None
        if not ok:                                        # a skipped step leaves everything as it was
            for name, got, want in zip("pgmv", device, host):
                assert_same(got, want, f"adam_update_masked ok=False {name} {dtype}")
    for name, got, want, first in zip("pgmv", device, host, before):
        assert_same(got, want, f"adam_update_masked {name} {dtype}")
        if name != "g":
            assert not numpy.array_equal(want, first), f"{name} never changed"


@pytest.mark.gpu
def test_kernels_fall_back_to_the_reference_on_mixed_dtypes(rng):
    import cupy
    ref, kernel = both("gatemul_backward")
    args = [values(rng, "float32"), values(rng, "float64"), values(rng, "float32")]
    (dgate_want, dsignal_want), (dgate, dsignal) = ref(*args), kernel(*on_device(*args))
    assert dgate.dtype == dgate_want.dtype == numpy.float64       # dy * signal: promoted, as in NumPy
    assert dsignal.dtype == dsignal_want.dtype == numpy.float32
    for got, want in ((dgate, dgate_want), (dsignal, dsignal_want)):
        assert isinstance(got, cupy.ndarray)
        numpy.testing.assert_allclose(cupy.asnumpy(got), want, rtol=1e-12)
