"""The dropout curriculum (Morerio et al. 2017): no dropout at the start of training, the drop
probability rising to the architecture's over the first third; how a tape scales it, how ``fit``
follows it, and how a sweep job names it."""
import math

import numpy as np
import pytest

from lrpnet import backend
from lrpnet.graph import Tape
from lrpnet.layers import Dropout
from lrpnet.models import build
from lrpnet.sweep import config as cfg
from lrpnet.training import ArrayDataset, dropout_scale, fit


def test_dropout_scale_constant_and_curriculum():
    assert [dropout_scale("constant", p) for p in (0.0, 0.5, 0.99)] == [1.0, 1.0, 1.0]
    assert dropout_scale("curriculum", 0.0) == 0.0
    assert dropout_scale("curriculum", 0.3) == pytest.approx(1 - math.exp(-3))     # 95% of the rate
    values = [dropout_scale("curriculum", p) for p in np.linspace(0, 0.999, 50)]
    assert all(a < b for a, b in zip(values, values[1:])) and 0.9999 < values[-1] < 1


def test_tape_scales_the_drop_probability():
    """keep 0.8 at drop scale 0.5 drops 10% of the units and scales the kept ones by 1 / 0.9; at
    scale 0 nothing is drawn and x passes as it is; at test time the scale changes nothing."""
    layer = Dropout(0.8)
    x = backend.asarray(np.ones((400, 500)))
    half = Tape(train=True, rng=np.random.default_rng(0), drop_scale=0.5)
    assert layer.keep_in(half) == pytest.approx(0.9)
    y, mask = layer.forward(half, x)
    y = backend.to_numpy(y)
    assert abs((y == 0).mean() - 0.1) < 0.005
    np.testing.assert_allclose(y[y != 0], 1 / 0.9, rtol=1e-6)
    none = Tape(train=True, rng=None, drop_scale=0.0)          # no generator needed: nothing is drawn
    y, mask = layer.forward(none, x)
    assert mask is None and y is x
    test = Tape(train=False, drop_scale=0.5)
    assert layer.forward(test, x)[1] is None


def toy_set(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return ArrayDataset(rng.uniform(-1, 1, (n, 6, 8)).astype(np.float32), rng.integers(0, 3, n))


def deep(dropout):
    return build("deep", input_shape=(6, 8), T=4, n_classes=3, seed=1, front=6, mid=5, state=6, top=4,
                 dropout=dropout)


def trained(model, **kwargs):
    fit(model, toy_set(), epochs=2, batch_size=10, lr=1e-2, seed=3, progress=False, **kwargs)
    return {k: backend.to_numpy(v) for k, v in model.params.items()}


def test_curriculum_starts_without_dropout():
    """The first batch of a curriculum trains as the same model without dropout does (scale 0);
    later batches drop: two epochs end elsewhere than without dropout, and elsewhere than the
    constant schedule."""
    one = deep("thesis")
    fit(one, toy_set(), epochs=1, batch_size=10, lr=1e-2, seed=3, progress=False, max_batches=1,
        dropout_schedule="curriculum")
    plain = deep("none")
    fit(plain, toy_set(), epochs=1, batch_size=10, lr=1e-2, seed=3, progress=False, max_batches=1)
    for k, v in plain.params.items():
        np.testing.assert_array_equal(backend.to_numpy(one.params[k]), backend.to_numpy(v))
    curriculum = trained(deep("thesis"), dropout_schedule="curriculum")
    constant = trained(deep("thesis"))
    without = trained(deep("none"))
    for other in (constant, without):
        assert any(not np.array_equal(curriculum[k], other[k]) for k in curriculum)
    with pytest.raises(ValueError, match="dropout_schedule 'linear'"):
        fit(deep("thesis"), toy_set(), epochs=1, progress=False, dropout_schedule="linear")


def test_job_configs_name_the_dropout_schedule():
    """At its default the schedule stays out of a job (earlier jobs keep their hashes); the
    curriculum is in the job and decides the trained model."""
    fast = cfg.PROFILES["fast"]
    assert fast.dropout_schedule == "curriculum" and cfg.PROFILES["thesis"].dropout_schedule == "constant"
    plain = cfg.job_configs(fast.override(dropout_schedule="constant"), ["deep"], ["mnist-maj"], ["sa"], [12])[0]
    assert "dropout_schedule" not in plain
    curriculum = cfg.job_configs(fast, ["deep"], ["mnist-maj"], ["sa"], [12])[0]
    assert curriculum["dropout_schedule"] == "curriculum"
    assert cfg.model_hash(curriculum) != cfg.model_hash(plain)


def test_fast_profile_trains_the_slow_learners_longer():
    """The fast profile's epochs per architecture (experiments/README.md measures why)."""
    fast = cfg.PROFILES["fast"]
    jobs = {c["arch"]: c["epochs"] for c in cfg.job_configs(fast, cfg.MAIN_ARCHS, ["mnist-maj"], ["sa"], [12])}
    assert jobs == {**{a: 12 for a in cfg.MAIN_ARCHS}, **dict(cfg.FAST_ARCH_EPOCHS)}
    assert jobs["deep_sd"] == 60 and jobs["convdeep"] == 12
    assert {c["epochs"] for c in cfg.job_configs(fast.override(epochs=5), cfg.MAIN_ARCHS, ["mnist-maj"],
                                                 ["sa"], [12])} == {5}
