"""A feed-forward model from a list of layer specs: ``[("dense", {"n_in": 784, "n_out": 10}), ("relu", {})]``.

Specs (not layer objects) make the model rebuildable from its JSON configuration, so checkpoints and
``lrpnet.io.from_torch`` models save and load like the named architectures.
"""
from __future__ import annotations

import inspect

import numpy

from .base import Model


def layer_kinds() -> dict:
    """kind name -> layer class, for every layer a spec may name."""
    from .. import layers
    return {cls.kind: cls for cls in vars(layers).values()
            if isinstance(cls, type) and issubclass(cls, layers.Layer) and cls.kind != "layer"}


class Sequential(Model):
    arch = "sequential"

    def __init__(self, layers, input_shape, n_classes=None, seed=0, dtype="float32"):
        specs = [(str(kind), dict(kwargs)) for kind, kwargs in layers]
        super().__init__({"layers": [list(s) for s in specs], "input_shape": list(input_shape),
                          "n_classes": n_classes, "seed": seed},
                         input_shape, n_classes or 0, dtype)
        kinds = layer_kinds()
        rng = numpy.random.default_rng(seed)
        for i, (kind, kwargs) in enumerate(specs):
            if kind not in kinds:
                raise ValueError(f"unknown layer kind {kind!r} in layer {i}; expected one of {', '.join(sorted(kinds))}")
            cls = kinds[kind]
            accepted = inspect.signature(cls.__init__).parameters
            extra = {k: v for k, v in (("rng", rng), ("dtype", self.dtype)) if k in accepted}
            self.add(f"{i}_{kind}", cls(**kwargs, **extra))
        if n_classes is None:    # the output width, found by running a zero input through
            self.n_classes = int(self.forward(numpy.zeros((1,) + self.input_shape)).shape[-1])
            self.config["n_classes"] = self.n_classes

    def graph(self, tape, x):
        for layer in self.layers.values():
            x = layer(tape, x)
        return x
