"""Inputs that must not fool lrpnet: no samples, raw pixels, values far outside [-1, 1], a bool target,
a batch in PyTorch's layout, and the sign flip of the gamma rule on a negative logit."""
import warnings

import numpy
import pytest

import lrpnet
from lrpnet import models
from lrpnet.data import scale_pixels
from lrpnet.explain import methods
from lrpnet.models import Sequential


def rlstm():
    return models.build("rlstm", input_shape=(6, 8), T=2, n_classes=3, seed=0, dtype="float64", front=5, units=4)


def cnn():
    return Sequential([("conv2d", {"in_channels": 2, "out_channels": 3, "kernel_size": 3, "padding": "SAME"}),
                       ("relu", {}), ("maxpool2d", {"size": 2, "stride": 2}), ("flatten", {}),
                       ("dense", {"n_in": 3 * 2 * 2, "n_out": 3})], input_shape=(4, 4, 2), seed=1, dtype="float64")


class no_warnings(warnings.catch_warnings):
    """A block in which any warning is an error (the cases that must pass silently)."""

    def __enter__(self):
        super().__enter__()
        warnings.simplefilter("error")


@pytest.mark.parametrize("make", [rlstm, cnn])
@pytest.mark.parametrize("method", methods())
def test_no_samples_give_an_empty_result_of_the_right_shape(make, method):
    model = make()
    x = numpy.zeros((0,) + model.input_shape)
    r = lrpnet.explain(model, x, method)
    assert type(r) is numpy.ndarray and r.shape == x.shape and r.dtype == model.dtype
    full = lrpnet.explain(model, numpy.full((2,) + model.input_shape, 0.5), method, return_details=True)
    e = lrpnet.explain(model, x, method, target=numpy.zeros(0, numpy.int64), return_details=True)
    assert e.relevance.shape == x.shape and e.tape is None and e.method == full.method
    for got, want in [(e.score, full.score), (e.absorbed, full.absorbed), (e.target, full.target),
                      (e.logits, full.logits), (e.per_step, full.per_step)]:
        if want is None:
            assert got is None
        else:
            assert got.shape == (0,) + want.shape[1:] and got.dtype == want.dtype
    assert sorted(e.per_layer) == sorted(full.per_layer)
    assert all(v.shape == (0,) for v in e.per_layer.values())


def test_integer_input_is_refused_naming_the_dtype():
    model = rlstm()
    pixels = numpy.random.default_rng(0).integers(0, 256, (2, 6, 8))
    for dtype in ("uint8", "int64"):
        with pytest.raises(TypeError, match=f"integer dtype {dtype}.*scale_pixels"):
            lrpnet.explain(model, pixels.astype(dtype), "dtd")
    with pytest.raises(TypeError, match="integer dtype uint8"):
        model.predict(pixels.astype("uint8"))


def test_values_far_outside_the_pixel_range_warn_naming_it():
    model = rlstm()
    raw = numpy.random.default_rng(0).integers(0, 256, (2, 6, 8)).astype(numpy.float32)
    with pytest.warns(UserWarning, match=r"span \[\d+, 2\d\d\], far outside the expected range \[-1, 1\]"):
        lrpnet.explain(model, raw, "dtd")
    with pytest.warns(UserWarning, match=r"far outside the expected range \[-1, 1\]"):
        model.predict(numpy.full((1, 6, 8), -20.0))
    with no_warnings():
        lrpnet.explain(model, scale_pixels(raw.astype(numpy.uint8)), "dtd")     # in range
        model.predict(numpy.full((1, 6, 8), 6.0))                   # standardised features: no alarm
        model.input_range = None                                    # a model that reads other values
        model.predict(raw)


def test_nan_input_is_still_an_error():
    x = numpy.zeros((2, 6, 8))
    x[1, 2, 3] = numpy.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        rlstm().predict(x)
    x[1, 2, 3] = -numpy.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        lrpnet.explain(rlstm(), x, "dtd")


def test_a_bool_target_is_refused():
    model, x = rlstm(), numpy.zeros((2, 6, 8))
    for target in (True, numpy.bool_(False)):
        with pytest.raises(TypeError, match="target must be .* got the bool"):
            lrpnet.explain(model, x, "dtd", target=target)
    with pytest.raises(ValueError, match="labels must be integers"):
        lrpnet.explain(model, x, "dtd", target=numpy.array([True, False]))


def test_a_batch_in_torch_layout_names_the_permutation():
    model = cnn()
    hint = r"\(N, 4, 4, 2\), got \(3, 2, 4, 4\).*\(N, C, H, W\).*transpose\(0, 2, 3, 1\)"
    with pytest.raises(ValueError, match=hint):
        model.predict(numpy.zeros((3, 2, 4, 4)))
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 4, 4, 2\), got \(3, 4, 4\)$"):
        model.predict(numpy.zeros((3, 4, 4)))


def mlp_with_logit_signs():
    """A ReLU MLP whose logit 0 is negative and logit 1 positive for every input in [-1, 1]."""
    model = Sequential([("dense", {"n_in": 4, "n_out": 5}), ("relu", {}), ("dense", {"n_in": 5, "n_out": 2})],
                       input_shape=(4,), seed=2, dtype="float64")
    model.params["2_dense.b"][:] = [-50.0, 50.0]
    return model


def test_gamma_rule_with_start_logit_warns_on_a_negative_logit():
    model = mlp_with_logit_signs()
    x = numpy.random.default_rng(0).uniform(-1, 1, (3, 4))
    assert (model.predict(x)[:, 0] < 0).all() and (model.predict(x)[:, 1] > 0).all()
    with pytest.warns(UserWarning, match="gamma rule, and 3 of 3 target logits are negative.*flip the sign"):
        lrpnet.explain(model, x, "lrp-gamma", start="logit", target=0)
    with pytest.warns(UserWarning, match="1 of 3 target logits"):
        lrpnet.explain(model, x, {"input": ("zbox", {"low": -1, "high": 1}), "dense": ("gamma", {"gamma": 0.5})},
                       start="logit", target=numpy.array([1, 0, 1]))
    with no_warnings():
        lrpnet.explain(model, x, "lrp-gamma", start="logit", target=1)        # positive logits
        lrpnet.explain(model, x, "lrp-gamma", start="relu_logit", target=0)   # relu(f) >= 0
        lrpnet.explain(model, x, "lrp-epsilon", start="logit", target=0)      # not the gamma rule


# -- one implementation each: the training step, the batch order ----------------------------------------
def test_fit_takes_the_step_that_loss_and_grads_computes():
    """``fit``'s batch step and ``Model.loss_and_grads`` are one pass (``training.backprop``): one
    epoch of one batch equals one Adam step on ``loss_and_grads`` with fit's order and dropout draws."""
    from lrpnet import backend, training
    from lrpnet.data.dataset import batch_rows
    x = numpy.random.default_rng(1).uniform(-1, 1, (6, 6, 8))
    y = numpy.arange(6) % 3
    fitted, stepped = rlstm(), rlstm()
    training.fit(fitted, training.ArrayDataset(x, y), epochs=1, batch_size=6, lr=1e-2, seed=5, progress=False)
    rows = next(batch_rows(6, 6, shuffle=True, seed=5, epoch=0))
    dropout = backend.random_state([5, 0, training.DROPOUT_STREAM])
    training.Adam(stepped.params, lr=1e-2).step(stepped.loss_and_grads(x[rows], y[rows], train=True, rng=dropout)[1])
    for k, p in fitted.params.items():
        numpy.testing.assert_array_equal(backend.to_numpy(p), backend.to_numpy(stepped.params[k]), err_msg=k)
    assert not numpy.array_equal(backend.to_numpy(fitted.params["out.W"]), backend.to_numpy(rlstm().params["out.W"]))


@pytest.mark.parametrize("shuffle,drop_last", [(True, False), (True, True), (False, False)])
def test_array_dataset_and_dataset_batch_in_the_same_order(shuffle, drop_last):
    from lrpnet.data import Dataset
    from lrpnet.training import ArrayDataset
    rng = numpy.random.default_rng(0)
    ds = Dataset("toy", "train", rng.integers(0, 256, (5, 28, 28), dtype=numpy.uint8), numpy.arange(5),
                 rng.integers(0, 5, (11, 2)), numpy.arange(11) % 10)
    arrays = ArrayDataset(ds.images(), ds.labels)
    kwargs = dict(shuffle=shuffle, seed=3, epoch=2, drop_last=drop_last)
    got = list(arrays.batches(4, **kwargs))
    want = list(ds.batches(4, **kwargs))
    assert [len(b[1]) for b in got] == ([4, 4] if drop_last else [4, 4, 3])
    for (xa, ya), (xd, yd) in zip(got, want):
        numpy.testing.assert_array_equal(xa, xd)
        numpy.testing.assert_array_equal(ya, yd)
    seen = numpy.concatenate([b[1] for b in got])
    assert numpy.array_equal(seen, ds.labels[:len(seen)]) != shuffle       # shuffled unless asked not to
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        next(arrays.batches(0))
