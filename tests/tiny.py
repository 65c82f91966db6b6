"""Tiny versions of every architecture, shared by the tests: 6x8 images in T = 4 steps, 3 classes."""
import numpy

from lrpnet import models

from devices import dev

SHAPE, T, C = (6, 8), 4, 3        # tiny images: 4 steps of 6x2
SMALL = {
    "shallow": dict(hidden=5, state=4),
    "deep": dict(front=6, mid=6, state=6, top=6),
    "deep_sd": dict(front=6, mid=6, state=6, top=6),
    "deep_v2": dict(front1=5, front2=6, mid=6, state=6, top=6),
    "convdeep": dict(conv1=4, conv2=5, front=6, mid=6, state=6, top=6),
    "conv+deep": dict(conv1=4, conv2=5, front=6, mid=6, state=6, top=6),
    "rlstm": dict(front=6, units=4),
    "rlstm_sd": dict(front=6, units=4),
    "convrlstm_sd": dict(conv1=4, conv2=5, front=6, units=4),
    "conv+rlstm_sd": dict(conv1=4, conv2=5, front=6, units=4),
    "lstm": dict(hidden=4),
    "gru": dict(hidden=4),
    "rgru": dict(hidden=4),
}


def small(name, dtype="float64", seed=0, **kw):
    """Architecture ``name`` at the tiny sizes of ``SMALL``."""
    return models.build(name, input_shape=SHAPE, T=T, n_classes=C, seed=seed, dtype=dtype, **{**SMALL[name], **kw})


def with_biases(model, seed=0):
    """``model`` with its biases drawn away from 0 (about -1 before a -softplus, 0 elsewhere), so that
    they absorb some relevance."""
    rng = numpy.random.default_rng(seed)
    for layer in model.layers.values():
        for k, p in layer.params.items():
            if k.startswith("b"):
                mean = -1.0 if getattr(layer, "bias_mode", None) == "negsoftplus" else 0.0
                p[...] = dev(rng.normal(mean, 0.3, p.shape))
    return model


def data(n=3, seed=5):
    """(images, labels) for a tiny model."""
    rng = numpy.random.default_rng(seed)
    return rng.uniform(-1, 1, (n,) + SHAPE), rng.integers(0, C, n)


def images(n=4, seed=1):
    return numpy.random.default_rng(seed).uniform(-1, 1, (n,) + SHAPE)
