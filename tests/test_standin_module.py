"""Tests of the CPU stand-in for CuPy (tests/standin/cupy) itself: every kind of device-unsafe code
it exists to catch is caught, and legitimate CuPy-style code runs.

The stand-in is imported under its real name ("cupy") by a fixture that restores sys.modules and
sys.path afterwards, so nothing here leaks into the other tests.
"""
import contextlib
import copy
import os
import pickle
import sys

import numpy
import pytest

from conftest import STANDIN_DIR, standin_module


@contextlib.contextmanager
def standin_imported():
    """The stand-in as "cupy" (conftest.standin_module restores sys.modules and sys.path afterwards),
    its counters zeroed."""
    with standin_module() as cupy:
        assert cupy.__file__.startswith(STANDIN_DIR)
        cupy.standin.reset()
        yield cupy


@pytest.fixture
def cp():
    with standin_imported() as cupy:
        yield cupy


@pytest.fixture
def a(cp):
    return cp.asarray(numpy.arange(1, 501, dtype=numpy.float32).reshape(50, 10))


def host(shape=(50, 10), dtype=numpy.float32):
    return numpy.ones(shape, dtype=dtype)


# ----------------------------------------------------------------------------- rule 1: no mixing

BINARY = {
    "add": lambda d, h: d + h, "subtract": lambda d, h: d - h, "multiply": lambda d, h: d * h,
    "divide": lambda d, h: d / h, "power": lambda d, h: d ** h, "less": lambda d, h: d < h,
    "greater": lambda d, h: d > h, "equal": lambda d, h: d == h, "not_equal": lambda d, h: d != h,
}


@pytest.mark.parametrize("name", sorted(BINARY))
def test_operator_with_host_array_raises_naming_both_sides(cp, a, name):
    with pytest.raises(cp.StandInError) as info:
        BINARY[name](a, host())
    msg = str(info.value)
    assert f"host/device mixing in {name}" in msg
    assert "numpy.ndarray float32 (50, 10)" in msg and "cupy.ndarray float32 (50, 10)" in msg
    assert issubclass(cp.StandInError, TypeError)


@pytest.mark.parametrize("name", sorted(BINARY))
def test_reflected_operator_with_host_array_on_the_left_raises(cp, a, name):
    with pytest.raises(cp.StandInError, match="host/device mixing"):
        BINARY[name](host(), a)


def test_matmul_bitwise_and_inplace_operators_refuse_host_arrays(cp, a):
    b = cp.asarray(numpy.ones((50, 10), dtype=bool))
    cases = [lambda: a @ host((10, 3)), lambda: host((3, 50)) @ a, lambda: b & host(dtype=bool),
             lambda: b | host(dtype=bool), lambda: b ^ host(dtype=bool)]
    for f in cases:
        with pytest.raises(cp.StandInError, match="host/device mixing"):
            f()
    for op in ("__iadd__", "__isub__", "__imul__", "__itruediv__"):
        with pytest.raises(cp.StandInError, match="host/device mixing"):
            getattr(a, op)(host())
    h = host()
    with pytest.raises(cp.StandInError, match="host/device mixing"):
        h += a


def test_zero_dim_numpy_arrays_are_refused_like_cupy_does(cp, a):
    # CuPy's kernels accept Python and NumPy scalars but raise "Unsupported type" for any numpy.ndarray
    with pytest.raises(cp.StandInError):
        a * numpy.array(2.0, dtype=numpy.float32)


def test_indexing_with_host_index_or_value_raises(cp, a):
    with pytest.raises(cp.StandInError, match="indexing"):
        a[numpy.array([0, 1])]
    with pytest.raises(cp.StandInError, match="indexing"):
        a[numpy.ones(50, dtype=bool)]
    with pytest.raises(cp.StandInError, match="host/device mixing in setitem"):
        a[0] = numpy.zeros(10, dtype=numpy.float32)
    with pytest.raises(cp.StandInError):
        a[numpy.array([0]), 1] = 1.0


def test_module_functions_refuse_host_arrays(cp, a):
    with pytest.raises(cp.StandInError, match="host/device mixing in concatenate"):
        cp.concatenate([a, host()])
    with pytest.raises(cp.StandInError, match="host/device mixing in where"):
        cp.where(a > 0, a, host())
    with pytest.raises(cp.StandInError, match="host/device mixing in maximum"):
        cp.maximum(a, host())
    with pytest.raises(cp.StandInError, match="host array passed to cupy.exp"):
        cp.exp(host())
    with pytest.raises(cp.StandInError, match="ascontiguousarray"):
        cp.ascontiguousarray(host())
    with pytest.raises(cp.StandInError):
        cp.zeros_like(host())
    with pytest.raises(TypeError, match="Unsupported type"):
        cp.maximum(a[0], [0.0] * 10)   # CuPy's ufuncs take no lists either


def test_python_and_numpy_scalars_mix_freely(cp, a):
    for s in (2, 2.0, True, numpy.float32(2), numpy.int64(2)):
        for r in (a + s, s + a, a * s, s * a, a - s, s - a, a / s, s / a, a < s, s < a, a == s):
            assert isinstance(r, cp.ndarray)
    assert (numpy.float32(2) * a).dtype == numpy.float32
    assert cp.maximum(a, numpy.float32(0)).dtype == numpy.float32
    assert cp.where(a > 1, a, 0.0).dtype == numpy.float32
    b = a.copy()
    b += 1
    b *= numpy.float32(0.5)
    b[0] = 3.0
    b[1] = a[2]
    b[a > 100] = 0.0
    assert isinstance(b, cp.ndarray)


# ----------------------------------------------------------------------------- rule 2: no NumPy on device

def test_implicit_conversion_uses_cupys_wording(cp, a):
    for f in (lambda: numpy.asarray(a), lambda: numpy.array(a), lambda: host()[0:1].__setitem__(slice(None), a[:1]),
              lambda: numpy.testing.assert_allclose(a, a)):
        with pytest.raises(TypeError, match="Implicit conversion to a NumPy array is not allowed"):
            f()


def test_numpy_functions_on_device_arrays_raise_naming_the_function(cp, a):
    with pytest.raises(cp.StandInError, match="numpy.exp called on a device array"):
        numpy.exp(a)
    with pytest.raises(cp.StandInError, match="numpy.concatenate called on a device array"):
        numpy.concatenate([a, a])
    with pytest.raises(cp.StandInError, match="numpy.sum called on a device array"):
        numpy.sum(a)
    with pytest.raises(cp.StandInError, match="numpy.add called on a device array"):
        numpy.add(a, a)
    assert not isinstance(a, numpy.ndarray)


# ----------------------------------------------------------------------------- rule 3: syncs counted

SYNCS = {
    "get": lambda a: a.get(), "asnumpy": lambda a: sys.modules["cupy"].asnumpy(a),
    "float": lambda a: float(a[0, 0]), "int": lambda a: int(a[0, 0]), "bool": lambda a: bool(a[0, 0] > 0),
    "index": lambda a: [0, 1, 2][a[0, 0].astype(numpy.int64)], "item": lambda a: a[0, 0].item(),
    "tolist": lambda a: a.tolist(), "mask": lambda a: a[a > 3], "nonzero": lambda a: a.nonzero(),
    "format": lambda a: f"{a[0, 0]:.2f}",
}


@pytest.mark.parametrize("name", sorted(SYNCS))
def test_each_device_to_host_transfer_counts_as_a_sync(cp, a, name):
    cp.standin.reset()
    SYNCS[name](a)
    stats = cp.standin.stats()
    assert stats["syncs"] == 1, stats
    assert os.path.basename(__file__) in stats["sites"][-1]


@pytest.mark.parametrize("name", sorted(SYNCS))
def test_forbid_syncs_turns_each_sync_into_an_error(cp, a, name):
    with cp.standin.forbid_syncs():
        with pytest.raises(cp.StandInError, match="host sync: .* inside forbid_syncs"):
            SYNCS[name](a)
    assert cp.standin.stats()["syncs"] == 0
    SYNCS[name](a)   # allowed again outside


def test_bool_sync_message(cp, a):
    with cp.standin.forbid_syncs(), pytest.raises(cp.StandInError) as info:
        if a[0, 0] > 0:
            pass
    assert str(info.value) == "implicit host sync: bool() of a device array inside forbid_syncs()"


def test_device_work_is_not_a_sync_and_uploads_are_counted(cp, a):
    cp.standin.reset()
    with cp.standin.forbid_syncs():
        b = cp.tanh(a @ cp.ones((10, 4), dtype=cp.float32)).sum(axis=1)
        assert b.shape == (50,) and repr(b).startswith("cupy.ndarray")
        total = a.sum()
        assert isinstance(total, cp.ndarray) and total.ndim == 0   # reductions stay on the device
        assert isinstance(a[0, 0], cp.ndarray) and a[0, 0].ndim == 0
        assert [r.shape for r in a[:2]] == [(10,), (10,)]
        assert len(a) == 50
        cp.cuda.Stream.null.synchronize()
        cp.cuda.Device(0).synchronize()
        cp.asarray(host())
        cp.asarray([1.0, 2.0], dtype=cp.float32)
        cp.asarray(3.0)
    s = cp.standin.stats()
    assert (s["syncs"], s["uploads"], s["stream_syncs"]) == (0, 2, 2)


def test_sites_keep_the_last_twenty(cp, a):
    for _ in range(30):
        float(a[0, 0])
    s = cp.standin.stats()
    assert s["syncs"] == 30 and len(s["sites"]) == 20
    assert s["sync_kinds"] == {"float() of a device array": 30}


# ----------------------------------------------------------------------------- rule 4: float64 guard

def test_forbid_float64_catches_promotions_and_defaults(cp, a):
    cases = {
        "multiply": lambda: a * numpy.float64(2.0),
        "where": lambda: cp.where(a > 0, a, numpy.float64(0.0)),
        "astype": lambda: a.astype(cp.float64),
        "zeros": lambda: cp.zeros((3, 4)),
        "ones_like": lambda: cp.ones_like(a, dtype=numpy.float64),
        "asarray": lambda: cp.asarray(host(dtype=numpy.float64)),
        "random_sample": lambda: cp.random.RandomState(0).random_sample((3,)),
        "mean": lambda: cp.asarray(numpy.arange(3)).mean(),
    }
    with cp.standin.forbid_float64():
        for name, f in cases.items():
            with pytest.raises(cp.StandInError, match=f"float64 result of {name}\\(.*inside forbid_float64"):
                f()
        assert (a * numpy.float32(2)).dtype == numpy.float32
        assert cp.zeros(3, dtype=cp.float32).dtype == numpy.float32
        assert cp.random.default_rng(0).random((2,), dtype=cp.float32).dtype == numpy.float32
    assert (a * numpy.float64(2.0)).dtype == numpy.float64   # allowed outside
    assert cp.zeros(3).dtype == numpy.float64


def test_forbid_float64_message_names_the_inputs(cp, a):
    with cp.standin.forbid_float64(), pytest.raises(cp.StandInError) as info:
        cp.where(a > 0, a, numpy.float64(0.0))
    assert "where(bool, float32, float64 scalar)" in str(info.value)


def test_module_flag_works_like_the_context_manager(cp, a):
    cp.standin.FORBID_FLOAT64 = True
    try:
        with pytest.raises(cp.StandInError):
            cp.zeros(3)
    finally:
        cp.standin.FORBID_FLOAT64 = False
    cp.zeros(3)


# ----------------------------------------------------------------------------- rule 5: the surface works

def test_everything_lrpnet_calls_on_xp_exists(cp):
    names = """zeros ones full empty zeros_like ones_like full_like empty_like asarray array ascontiguousarray
    arange concatenate stack where maximum minimum exp log log1p expm1 logaddexp abs sqrt tanh sign isfinite
    isnan broadcast_to argmax sum prod any all clip take take_along_axis cumsum matmul dot einsum sort
    argsort unique count_nonzero get_array_module asnumpy isinf round mean logical_and""".split()
    for n in names:
        assert callable(getattr(cp, n)), n
    for n in "float16 float32 float64 int8 int16 int32 int64 uint8 bool_ dtype integer floating".split():
        assert getattr(cp, n) is getattr(numpy, n)
    assert (cp.newaxis, cp.inf, cp.pi, cp.e) == (None, numpy.inf, numpy.pi, numpy.e) and cp.isnan(cp.nan)
    assert callable(cp.lib.stride_tricks.sliding_window_view) and callable(cp.lib.stride_tricks.as_strided)


def test_functions_compute_like_numpy(cp, rng):
    x = rng.standard_normal((4, 6)).astype(numpy.float32)
    d = cp.asarray(x)
    checks = [
        (cp.exp(d), numpy.exp(x)), (cp.logaddexp(d, 0.0), numpy.logaddexp(x, 0.0)),
        (cp.concatenate([d, d], axis=1), numpy.concatenate([x, x], axis=1)), (cp.stack([d, d]), numpy.stack([x, x])),
        (cp.where(d > 0, d, 0), numpy.where(x > 0, x, 0)), (cp.argmax(d, axis=1), numpy.argmax(x, axis=1)),
        (cp.einsum("ij,kj->ik", d, d), numpy.einsum("ij,kj->ik", x, x)), (d @ d.T, x @ x.T),
        (cp.take_along_axis(d, cp.argsort(d, axis=1), axis=1), numpy.sort(x, axis=1)),
        (cp.broadcast_to(d[:, :1], (4, 6)), numpy.broadcast_to(x[:, :1], (4, 6))),
        (cp.clip(d, -0.5, 0.5), numpy.clip(x, -0.5, 0.5)), (d.sum(axis=0), x.sum(axis=0)),
        (d.max(), x.max()), (d.T.reshape(-1), x.T.reshape(-1)), (cp.count_nonzero(d > 0), numpy.count_nonzero(x > 0)),
        (cp.lib.stride_tricks.sliding_window_view(d, 3, axis=1),
         numpy.lib.stride_tricks.sliding_window_view(x, 3, axis=1)),
        (cp.linalg.norm(d), numpy.linalg.norm(x)), (cp.add.reduce(d, axis=0), numpy.add.reduce(x, axis=0)),
    ]
    for got, want in checks:
        assert isinstance(got, cp.ndarray)
        g = got.get()
        assert g.dtype == want.dtype and g.shape == numpy.shape(want)
        numpy.testing.assert_allclose(g, want, rtol=1e-6)
    assert cp.get_array_module(d) is cp and cp.get_array_module(x) is numpy
    assert isinstance(cp.asnumpy(d), numpy.ndarray) and cp.asnumpy(x) is x


def test_array_attributes_and_methods(cp):
    d = cp.arange(24, dtype=cp.float32).reshape(2, 3, 4)
    assert (d.shape, d.dtype, d.ndim, d.size, d.nbytes, d.strides) == ((2, 3, 4), numpy.float32, 3, 24, 96, (48, 16, 4))
    assert d.flags.c_contiguous and d.flags["C_CONTIGUOUS"] and not d.T.flags.c_contiguous
    assert d.astype(cp.float32, copy=False) is d and d.astype(cp.float32) is not d
    assert d.transpose(2, 0, 1).shape == (4, 2, 3) and d.swapaxes(0, 2).shape == (4, 3, 2)
    assert d.ravel().shape == (24,) and d.flatten().shape == (24,) and d[None, ..., 0].shape == (1, 2, 3)
    assert d.squeeze().shape == (2, 3, 4) and d.repeat(2, axis=0).shape == (4, 3, 4)
    assert d.take(cp.asarray(numpy.array([0, 2])), axis=1).shape == (2, 2, 4)
    assert [x.shape for x in (d > 5).nonzero()] == [(18,)] * 3
    assert int(d.argmax()) == 23 and int(d.argmin()) == 0 and float(d.prod(axis=0)[0, 1]) == 13.0
    assert bool(d.any()) and not bool(d.all()) and float(d.mean()) == 11.5
    assert d.cumsum(axis=2).shape == d.shape and d.clip(0, 1).max().item() == 1.0
    e = cp.empty((3,), dtype=cp.int32)
    e.fill(7)
    assert e.tolist() == [7, 7, 7]
    idx = cp.asarray(numpy.array([1, 0]))
    assert d[idx].shape == (2, 3, 4) and d[0, idx, 1:3].shape == (2, 2)
    c = cp.ndarray((2, 2), dtype=cp.float32)
    assert isinstance(c, cp.ndarray) and c.shape == (2, 2)
    with pytest.raises(TypeError, match="iteration over a 0-d array"):
        iter(d.sum())


def test_views_write_through_like_numpy(cp):
    d = cp.zeros((4, 5), dtype=cp.float32)
    v = d[1:3]
    v[...] = 1.0
    d.T[0, 0] = 2.0
    r = d.reshape(-1)
    r[-1] = 3.0
    assert v.base is d and d.T.base is d and r.base is d and d.base is None
    assert d.sum().item() == 10.0 + 2.0 + 3.0
    x = numpy.zeros(4, dtype=numpy.float32)
    up = cp.asarray(x)
    x[0] = 1.0
    assert up[0].item() == 0.0   # an upload copies: the host array is not aliased
    w = cp.lib.stride_tricks.sliding_window_view(d, 2, axis=1)
    with pytest.raises(ValueError):
        w[0, 0, 0] = 1.0         # read-only, as NumPy's (writes through overlapping windows race on a GPU)


def test_copy_pickle_and_repr(cp, a):
    cp.standin.reset()
    assert copy.deepcopy(a).get().tolist() == a.get().tolist()
    assert copy.copy(a) is not a
    b = pickle.loads(pickle.dumps(a))
    assert isinstance(b, cp.ndarray) and (b == a).all().item()
    assert "device" in repr(a) and "1.0" not in repr(a)
    s = cp.standin.stats()
    assert s["syncs"] == 4 and s["uploads"] == 1   # get x2, pickle, item; the unpickle uploads


# ----------------------------------------------------------------------------- random, cuda, kernels

def test_random(cp):
    rs = cp.random.RandomState(0)
    assert rs.random_sample((2, 3)).dtype == numpy.float64
    assert rs.random_sample((2, 3), dtype=cp.float32).dtype == numpy.float32
    assert rs.rand(2, 3).shape == (2, 3) and rs.standard_normal((4,), dtype=cp.float32).dtype == numpy.float32
    assert rs.uniform(-1, 1, (5,)).shape == (5,) and rs.randint(0, 3, (5,)).dtype.kind == "i"
    assert sorted(rs.permutation(5).tolist()) == [0, 1, 2, 3, 4]
    x = cp.arange(10)
    rs.shuffle(x)
    assert sorted(x.tolist()) == list(range(10))
    r1 = cp.random.RandomState(7).rand(3).get()
    assert numpy.array_equal(r1, cp.random.RandomState(7).rand(3).get())
    g = cp.random.default_rng(0)
    assert isinstance(g.random((3,), dtype=cp.float32), cp.ndarray)
    assert g.standard_normal((2,), dtype=cp.float32).dtype == numpy.float32
    assert g.integers(0, 4, size=(6,)).shape == (6,) and g.permutation(4).shape == (4,)


def test_cuda(cp):
    rt = cp.cuda.runtime
    assert rt.getDeviceCount() == 1 and rt.runtimeGetVersion() == 13000 and rt.driverGetVersion() == 13000
    assert rt.getDeviceProperties(0)["name"] == b"CPU stand-in"
    assert issubclass(rt.CUDARuntimeError, Exception)
    with pytest.raises(rt.CUDARuntimeError):
        cp.cuda.Device(1)
    dev = cp.cuda.Device(0)
    assert dev.id == 0 and dev.compute_capability == "90"
    cp.standin.reset()
    start, end = cp.cuda.Event(), cp.cuda.Event()
    start.record()
    end.record()
    end.synchronize()
    cp.cuda.get_current_stream().synchronize()
    assert cp.cuda.get_elapsed_time(start, end) >= 0.0
    assert cp.standin.stats()["stream_syncs"] == 2 and cp.standin.stats()["syncs"] == 0


def test_kernels_construct_but_cannot_run(cp, a):
    k = cp.ElementwiseKernel("T x", "T y", "y = x", "copy")
    r = cp.RawKernel("extern \"C\" __global__ void f() {}", "f")

    @cp.fuse()
    def f(x):
        return x + 1

    for name, call in (("copy", lambda: k(a)), ("f", lambda: r((1,), (1,), ())), ("f", lambda: f(a))):
        with pytest.raises(cp.StandInError, match=f"the CPU stand-in cannot run CUDA kernels: .* '{name}'"):
            call()


def test_markers(cp):
    assert cp.__version__ == "14.0.0+standin" and cp.STANDIN is True


def test_fixture_does_not_leak():
    before, path = sys.modules.get("cupy"), list(sys.path)
    with standin_imported() as cupy:
        assert sys.modules["cupy"] is cupy and cupy is not before
    assert sys.modules.get("cupy") is before and sys.path == path
