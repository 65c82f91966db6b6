"""The pointwise Numba kernels (kernels/numba: activations, base, dropout, rules, training) compute their
NumPy references bit for bit: every operation in them is one IEEE-rounded +, -, *, / or sqrt, done in
the reference's order and precision, and the only transcendental (the sigmoid's exp) is NumPy's own.
So the tests ask for equal arrays (NaN where the reference has NaN, the sign of every zero as the
reference's), not for closeness, on data made to find the edges: exact zeros and -0, ties, values at
the branch points (sign at 0, u == keep), huge and tiny magnitudes, inf and NaN, in float32 and float64.

Arrays a kernel does not take (non-contiguous views, broadcast shapes, mixed dtypes, NumPy scalars as
parameters) run the reference: the tests check that these calls still give the reference's answer.

These are host tests whatever ``LRPNET_BACKEND`` says: the references run under ``backend.using("numpy")``
on host arrays, and the kernels are called directly or under ``backend.using("numba")``."""
import math

import numpy
import pytest

pytest.importorskip("numba")

from lrpnet import backend                            # noqa: E402

from conftest import reference_and_kernel  # noqa: E402

KERNELS = {                                           # kernel module -> operations with a kernel there
    "activations": ("sigmoid_backward", "tanh_backward", "relu_backward", "relu_guided_backward"),
    "base": ("sigmoid_forward", "negsoftplus_grad"),
    "dropout": ("dropout_mask",),
    "rules": ("sign", "lrp_divide"),
    "training": ("adam_update", "adam_update_masked"),
}
POINTWISE = tuple(name for names in KERNELS.values() for name in names)
DTYPES = ("float32", "float64")


pytestmark = pytest.mark.usefixtures("on_the_host")     # conftest: the references under NumPy


def both(name):
    """(reference, kernel) of operation ``name``."""
    return reference_and_kernel(name, "numba")


def call(fn, *args):
    """``fn(*args)`` without NumPy's warnings (inf * 0 and NaN inputs are wanted here)."""
    with numpy.errstate(all="ignore"):
        return fn(*args)


def assert_same(got, want, what=""):
    """Equal dtype, shape and values: NaN where ``want`` has NaN, and every zero of the same sign."""
    assert isinstance(got, numpy.ndarray), (what, type(got))
    assert got.dtype == want.dtype and got.shape == want.shape, (what, got.dtype, want.dtype, got.shape, want.shape)
    numpy.testing.assert_array_equal(got, want, err_msg=what)
    numpy.testing.assert_array_equal(numpy.signbit(got[want == 0]), numpy.signbit(want[want == 0]),
                                     err_msg=f"{what}: signs of zeros")


def edgy(rng, shape, dtype, low=None, high=None):
    """Random values spanning many magnitudes, with exact zeros, -0, ties, huge and tiny values, inf and
    NaN planted at random places; clipped to [low, high] when given (finite specials only then)."""
    dt = numpy.dtype(dtype)
    a = rng.standard_normal(shape) * 10.0 ** rng.integers(-3, 4, shape)
    flat = a.reshape(-1)
    if not flat.size:
        return a.astype(dt)
    tiny = numpy.finfo(dt).tiny
    specials = [0.0, -0.0, 1.0, -1.0, 0.5, 1e-30, -1e-30, tiny / 4, -tiny / 4, 1e30, -1e30, 88.0, -88.0,
                800.0, -800.0, numpy.inf, -numpy.inf, numpy.nan]
    where = rng.choice(flat.size, size=min(flat.size, 3 * len(specials)), replace=False)
    flat[where] = numpy.resize(specials, where.size)
    ties = rng.choice(flat.size, size=max(2, flat.size // 10), replace=False)
    flat[ties] = flat[ties[0]]                                     # a tenth of the entries equal
    flat[rng.choice(flat.size, size=max(1, flat.size // 10), replace=False)] = 0.0
    if low is not None:
        flat[~numpy.isfinite(flat)] = 0.0
        numpy.clip(flat, low, high, out=flat)
    return a.astype(dt)


SHAPES = [(7,), (50, 72), (3, 5, 4, 6), (0, 4)]


# -- registration -----------------------------------------------------------------------------------
def test_every_numba_kernel_has_a_numpy_reference_of_the_same_name():
    import kernels.numba  # noqa: F401  (registers every reference it mirrors, then every kernel)
    with_kernel = [n for n in backend.operations() if "numba" in backend.implementations(n)]
    # equal, not a subset: a pointwise kernel added without the comparisons below fails here (the pool
    # kernels are compared in tests/test_kernels.py)
    assert set(with_kernel) - {n for n in with_kernel if "pool2d" in n} == set(POINTWISE)
    for name in with_kernel:
        impls = backend.implementations(name)
        assert "numpy" in impls, f"numba kernel {name!r} has no NumPy reference"
        ref, kernel = impls["numpy"], impls["numba"]
        assert kernel is not ref and kernel.__name__ == name, (name, kernel.__name__)
        # kernels/numba/<m>.py mirrors lrpnet/.../<m>.py
        assert kernel.__module__ == "kernels.numba." + ref.__module__.rsplit(".", 1)[1], (name, kernel.__module__)


@pytest.mark.parametrize("module, names", KERNELS.items())
def test_pointwise_kernels_are_what_the_numba_backend_runs(module, names):
    for name in names:
        ref, kernel = both(name)
        assert kernel.__module__ == f"kernels.numba.{module}"
        with backend.using("numba"):
            assert backend.op(name) is kernel
        assert backend.op(name) is ref                              # under numpy, the reference


# -- activations ------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name, y_range", [("sigmoid_backward", (0.0, 1.0)), ("tanh_backward", (-1.0, 1.0)),
                                           ("relu_backward", (0.0, None)), ("relu_guided_backward", (0.0, None))])
def test_activation_backward_kernels_equal_reference(name, y_range, shape, dtype, rng):
    ref, kernel = both(name)
    low, high = y_range
    y = edgy(rng, shape, dtype, low, numpy.inf if high is None else high)
    for dy in (edgy(rng, shape, dtype), edgy(rng, shape, dtype, -1e3, 1e3)):
        assert_same(call(kernel, y, dy), call(ref, y, dy), name)
    y_any = edgy(rng, shape, dtype)                                   # outputs outside the range, NaN
    assert_same(call(kernel, y_any, dy), call(ref, y_any, dy), name)


def test_relu_backward_multiplies_by_zero_rather_than_selecting():
    """dy * 0 is -0 for a negative dy and NaN for an infinite one, as in the reference."""
    ref, kernel = both("relu_backward")
    y = numpy.array([0.0, 0.0, 0.0, 1.0, numpy.nan], dtype="float32")
    dy = numpy.array([-2.0, numpy.inf, numpy.nan, -3.0, 1.0], dtype="float32")
    got = call(kernel, y, dy)
    assert_same(got, call(ref, y, dy))
    assert numpy.signbit(got[0]) and numpy.isnan(got[1]) and numpy.isnan(got[2]) and got[3] == -3.0 and got[4] == 0


# -- sigmoid and the bias gradient ------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES + [(256,)])
def test_sigmoid_forward_kernel_equals_reference(shape, dtype, rng):
    ref, kernel = both("sigmoid_forward")
    x = edgy(rng, shape, dtype)
    got = call(kernel, x)
    assert_same(got, call(ref, x))
    assert got.dtype == numpy.dtype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(7,), (24,), (256,), (0,)])
def test_negsoftplus_grad_kernel_equals_reference(shape, dtype, rng):
    ref, kernel = both("negsoftplus_grad")
    b, g = edgy(rng, shape, dtype), edgy(rng, shape, dtype)
    assert_same(call(kernel, b, g), call(ref, b, g))


# -- dropout ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("keep", [0.8, 0.7, 0.5, 0.1, 1.0, 1])
def test_dropout_mask_kernel_equals_reference(keep, dtype, rng):
    ref, kernel = both("dropout_mask")
    dt = numpy.dtype(dtype)
    u = rng.random((50, 72)).astype(dt)
    k = dt.type(keep)                                  # u equal to keep as rounded, and its neighbours
    u.reshape(-1)[:6] = [k, numpy.nextafter(k, dt.type(0)), numpy.nextafter(k, dt.type(2)), 0, 0, 0]
    got = call(kernel, u, keep)
    assert_same(got, call(ref, u, keep))
    assert got.reshape(-1)[0] == 0 and got.reshape(-1)[1] == dt.type(1) / k       # u == keep is dropped


# -- sign and the stabilised division ----------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_sign_kernel_equals_reference(shape, dtype, rng):
    ref, kernel = both("sign")
    z = edgy(rng, shape, dtype)
    assert_same(call(kernel, z), call(ref, z))
    z = numpy.array([0.0, -0.0, numpy.nan, -numpy.inf, 1e-45], dtype=dtype)
    assert_same(call(kernel, z), numpy.array([1, 1, -1, -1, 1], dtype=dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("eps, coef", [(0.0, 1.0), (1e-6, 1.0), (0.25, 1.5), (0.0, -0.5), (1e-9, -0.5),
                                       (0, 1), (1e-30, 2)])
def test_lrp_divide_kernel_equals_reference(eps, coef, shape, dtype, rng):
    ref, kernel = both("lrp_divide")
    R, z = edgy(rng, shape, dtype), edgy(rng, shape, dtype)
    if z.size:
        z.reshape(-1)[: z.size // 3] = 0.0               # many zero denominators (eps = 0), some -0
        z.reshape(-1)[: z.size // 9] = -0.0
    got, want = call(kernel, R, z, eps, coef), call(ref, R, z, eps, coef)
    assert isinstance(got, tuple) and len(got) == 2
    assert_same(got[0], want[0], "s")
    assert_same(got[1], want[1], "absorbed")


def test_lrp_divide_absorbs_all_of_cR_at_a_zero_denominator():
    ref, kernel = both("lrp_divide")
    R = numpy.array([2.0, -3.0, -0.0, 4.0], dtype="float32")
    z = numpy.array([0.0, -0.0, 0.0, 2.0], dtype="float32")
    s, absorbed = call(kernel, R, z, 0.0, 1.5)
    assert_same(s, numpy.array([0, -0.0, -0.0, 3], dtype="float32"))    # c R * 0: zeros of c R's sign
    assert_same(absorbed, numpy.array([3, -4.5, -0.0, 0], dtype="float32"))
    for got, want in zip((s, absorbed), call(ref, R, z, 0.0, 1.5)):
        assert_same(got, want)


# -- Adam ------------------------------------------------------------------------------------------
def adam_state(rng, shape, dtype):
    """p, g, m, v as an optimiser meets them: m of either sign, v >= 0, gradients with zeros and ties."""
    p = edgy(rng, shape, dtype, -10.0, 10.0)
    g = edgy(rng, shape, dtype, -1e4, 1e4)
    m = edgy(rng, shape, dtype, -1.0, 1.0)
    v = numpy.abs(edgy(rng, shape, dtype, -1.0, 1.0))
    return p, g, m, v


def adam_scalars(t, lr=2e-4, beta1=0.9, beta2=0.999, eps=1e-8):
    """(beta1, beta2, step, eps) as ``Adam.step`` passes them at step t (bias corrections folded in)."""
    c2 = math.sqrt(1.0 - beta2 ** t)
    return beta1, beta2, lr * c2 / (1.0 - beta1 ** t), eps * c2


ADAM_SCALARS = [adam_scalars(1), adam_scalars(1000), (0.5, 0.75, 1.0, 1e-3)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(7,), (328, 72), (5, 5, 1, 24), (0,)])
@pytest.mark.parametrize("scalars", ADAM_SCALARS)
def test_adam_update_kernel_equals_reference_in_place(scalars, shape, dtype, rng):
    ref, kernel = both("adam_update")
    state = adam_state(rng, shape, dtype)
    mine, theirs = [a.copy() for a in state], [a.copy() for a in state]
    for _ in range(3):                                        # three steps, each from the last
        assert call(kernel, *mine, *scalars) is None
        call(ref, *theirs, *scalars)
    for what, got, want in zip("pgmv", mine, theirs):
        assert_same(got, want, what)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ok", [True, False])
def test_adam_update_masked_kernel_equals_reference(ok, dtype, rng):
    ref, kernel = both("adam_update_masked")
    state = adam_state(rng, (50, 72), dtype)
    state[0].reshape(-1)[:3] = numpy.nan                      # an earlier NaN stays where ok is false
    mine, theirs = [a.copy() for a in state], [a.copy() for a in state]
    call(kernel, *mine, *ADAM_SCALARS[0], numpy.array(ok))
    call(ref, *theirs, *ADAM_SCALARS[0], numpy.array(ok))
    for what, got, want, before in zip("pgmv", mine, theirs, state):
        assert_same(got, want, what)
        if not ok:
            assert_same(got, before, what)


# -- which calls a kernel takes ----------------------------------------------------------------------------
def ordinary_calls(rng, dtype):
    """One call of each kernel as the study's models make it: C-contiguous arrays of one shape and
    dtype, Python numbers."""
    a, b, c, d = (rng.standard_normal((50, 72)).astype(dtype) for _ in range(4))
    u = rng.random((50, 72)).astype(dtype)
    calls = [(name, (a, b)) for name in KERNELS["activations"]]
    calls += [("sigmoid_forward", (a,)), ("negsoftplus_grad", (a[0], b[0])), ("dropout_mask", (u, 0.8)),
              ("sign", (a,)), ("lrp_divide", (a, b, 1e-6, 1.0)), ("lrp_divide", (a, b, 0.0, -0.5)),
              ("adam_update", (a, b, c, numpy.abs(d)) + ADAM_SCALARS[0]),
              ("adam_update_masked", (a, b, c, numpy.abs(d)) + ADAM_SCALARS[0] + (numpy.array(True),))]
    return calls


@pytest.mark.parametrize("dtype", DTYPES)
def test_ordinary_calls_run_the_kernel_not_the_reference(dtype, rng, monkeypatch):
    import importlib

    def refuse(name):
        raise AssertionError(f"{name}: the kernel handed an ordinary call to the reference")
    for module in KERNELS:
        monkeypatch.setattr(importlib.import_module(f"kernels.numba.{module}"), "reference", refuse)
    for name, args in ordinary_calls(rng, dtype):
        both(name)[1](*args)


# -- calls a kernel does not take run the reference ----------------------------------------------------
def unusual_calls(rng):
    """(name, args) calls that the kernels hand to the reference: non-contiguous views, broadcast
    shapes, mixed dtypes, NumPy scalars as parameters, 0-d arrays."""
    a32 = rng.standard_normal((6, 8)).astype("float32")
    b32 = rng.standard_normal((6, 8)).astype("float32")
    a64 = rng.standard_normal((6, 8))
    col = rng.standard_normal((8, 6)).astype("float32").T              # a transposed view
    strided = rng.standard_normal((6, 16)).astype("float32")[:, ::2]   # every other column
    u = rng.random((6, 8)).astype("float32")
    zero_d = numpy.array(0.5, dtype="float32")
    calls = []
    for name in ("sigmoid_backward", "tanh_backward", "relu_backward", "relu_guided_backward"):
        calls += [(name, (col, b32)), (name, (a32, strided)), (name, (a32, a64)), (name, (a32[0], b32)),
                  (name, (zero_d, zero_d))]
    calls += [("sigmoid_forward", (col,)), ("sigmoid_forward", (strided,)), ("sigmoid_forward", (zero_d,)),
              ("negsoftplus_grad", (a32[0], strided[0])), ("negsoftplus_grad", (a32[0], a64[0])),
              ("dropout_mask", (u.T, 0.8)), ("dropout_mask", (u, numpy.float64(0.7))),
              ("sign", (col,)), ("sign", (strided,)),
              ("lrp_divide", (a32, col, 1e-6, 1.0)), ("lrp_divide", (a32, b32[:1], 0.0, 1.0)),
              ("lrp_divide", (a32, a64, 1e-6, 1.0)), ("lrp_divide", (a32, b32, numpy.float64(1e-6), 1.0)),
              ("lrp_divide", (a32, b32, 1e-6, numpy.float32(1.5)))]
    return calls


def test_calls_the_kernels_do_not_take_give_the_references_answer(rng):
    for name, args in unusual_calls(rng):
        ref, kernel = both(name)
        got, want = call(kernel, *args), call(ref, *args)
        if isinstance(want, tuple):
            for g, w in zip(got, want):
                assert_same(g, w, name)
        else:
            assert_same(numpy.asarray(got), numpy.asarray(want), name)
            assert type(got) is type(want), (name, type(got), type(want))


def test_adam_on_a_non_contiguous_parameter_updates_it_through_the_view(rng):
    """A parameter that is a view (a transposed array) must change where it lives: the reference runs."""
    ref, kernel = both("adam_update")
    for contiguous_g in (True, False):
        base = rng.standard_normal((8, 6)).astype("float32")
        p = base.T                                             # not C-contiguous
        g = numpy.ascontiguousarray(rng.standard_normal((6, 8)).astype("float32"))
        g = g if contiguous_g else numpy.asfortranarray(g)
        m, v = numpy.zeros_like(g), numpy.zeros_like(g)
        p_ref, m_ref, v_ref = p.copy(), m.copy(), v.copy()
        call(kernel, p, g, m, v, *ADAM_SCALARS[2])
        call(ref, p_ref, g, m_ref, v_ref, *ADAM_SCALARS[2])
        assert_same(base.T, p_ref)
        assert_same(m, m_ref)
        assert_same(v, v_ref)


# -- whole models ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("arch, sizes", [("rlstm", dict(front=10, units=6)), ("lstm", dict(hidden=7)),
                                         ("deep", dict(front=10, mid=8, state=6, top=5))])
def test_training_step_and_relevance_do_not_depend_on_the_backend(arch, sizes, rng):
    """A training step (loss, gradients with dropout on, Adam) and DTD, alpha-beta and guided-backprop
    relevance of a small model: the same under numba as under numpy (the kernels are exact; the
    tolerance only allows for work arranged differently around them)."""
    import lrpnet
    from lrpnet.models import build
    from lrpnet.training import Adam
    x = rng.uniform(-1, 1, (5, 28, 12))
    y = rng.integers(0, 10, 5)
    results = {}
    for name in ("numpy", "numba"):
        with backend.using("numpy"):
            model = build(arch, input_shape=(28, 12), T=3, n_classes=10, seed=0, dtype="float64", **sizes)
        with backend.using(name):
            loss, grads = model.loss_and_grads(x, y, train=True, rng=numpy.random.default_rng([0, 0, 1]))
            opt = Adam(model.params, lr=1e-2)
            opt.step(grads)
            opt.step(grads)
            relevance = {m: lrpnet.explain(model, x, m, target=y) for m in ("dtd", "lrp-alpha1.5beta0.5", "gb")}
        results[name] = (loss, grads, {k: p.copy() for k, p in model.params.items()}, relevance)
    (loss_ref, grads_ref, params_ref, rel_ref), (loss, grads, params, rel) = results["numpy"], results["numba"]
    numpy.testing.assert_allclose(loss, loss_ref, rtol=1e-12)
    for which, got, want in (("gradient", grads, grads_ref), ("parameter", params, params_ref),
                             ("relevance", rel, rel_ref)):
        assert set(got) == set(want)
        for k in want:
            scale = float(numpy.abs(want[k]).max())
            assert scale > 0, (which, k)
            numpy.testing.assert_allclose(got[k], want[k], rtol=1e-10, atol=1e-12 * scale, err_msg=f"{which} {k}")
