"""What every model is: named layers holding parameters, and a forward pass on a tape.

A model subclass writes only ``graph(tape, x)``, its forward pass, applying its layers to values on the
tape. Its gradient (``loss_and_grads``) and its relevance pass (``lrpnet.explain``) are walks of that
tape (``lrpnet.graph``), so an architecture carries no backward code of its own.
"""
from __future__ import annotations

import numpy

from .. import backend
from ..graph import Tape
from ..losses import softmax_xent_zero_logit


class Model:
    arch = "model"

    def __init__(self, config: dict, input_shape, n_classes: int, dtype="float32"):
        self.config = dict(config)          # everything ``build`` needs to make this model again
        self.input_shape = tuple(int(s) for s in input_shape)
        self.n_classes = int(n_classes)
        self.dtype = backend.resolve_dtype(dtype)
        self.layers: dict = {}

    # -- structure ---------------------------------------------------------------------------------
    def add(self, name: str, layer):
        """Register ``layer`` under ``name``; its parameters appear in ``params`` as ``name.local``."""
        if name in self.layers:
            raise ValueError(f"layer name {name!r} is used twice")
        layer.name = name
        self.layers[name] = layer
        return layer

    @property
    def params(self) -> dict:
        """name -> array, for every parameter. The arrays are the layers' own: update them in place."""
        return {f"{lname}.{k}": v for lname, layer in self.layers.items() for k, v in layer.params.items()}

    def num_params(self) -> int:
        return int(sum(int(numpy.prod(p.shape)) for p in self.params.values()))

    def graph(self, tape: Tape, x):
        """The forward pass: apply layers to the Var ``x`` on ``tape`` and return the logits Var."""
        raise NotImplementedError

    # -- running -----------------------------------------------------------------------------------
    def check_input(self, x):
        """``x`` as an array of the active backend in the model's dtype, or a clear error."""
        if not hasattr(x, "shape") or not hasattr(x, "dtype"):
            x = numpy.asarray(x)
        if x.dtype.kind not in "fiu":
            raise TypeError(f"{self.arch}: input must be a numeric array, got dtype {x.dtype}")
        if x.ndim != len(self.input_shape) + 1 or tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"{self.arch}: expected input of shape (N, {', '.join(map(str, self.input_shape))}), "
                             f"got {tuple(x.shape)}")
        x = backend.asarray(x, dtype=self.dtype)
        if not bool(backend.xp().isfinite(x).all()):
            raise ValueError(f"{self.arch}: input contains NaN or infinite values")
        return x

    def check_labels(self, y, n):
        xp = backend.xp()
        y = backend.asarray(y)
        if y.shape != (n,) or y.dtype.kind not in "iu":
            raise ValueError(f"{self.arch}: labels must be integers of shape ({n},), got {y.dtype} {tuple(y.shape)}")
        if n and (int(y.min()) < 0 or int(y.max()) >= self.n_classes):
            raise ValueError(f"{self.arch}: labels must lie in [0, {self.n_classes}), got range "
                             f"[{int(y.min())}, {int(y.max())}]")
        return y.astype(xp.int64)

    def trace(self, x, train=False, rng=None, record=True):
        """Run the forward pass on a new tape. Returns ``(tape, input_var, logits_var)``."""
        x = self.check_input(x)
        tape = Tape(train=train, rng=rng, record=record)
        x_var = tape.input(x, tag="input")
        return tape, x_var, self.graph(tape, x_var)

    def forward(self, x, batch_size=None):
        """Logits (N, n_classes) as an array of the active backend. Nothing is recorded."""
        x = self.check_input(x)
        if batch_size is None or len(x) <= batch_size:
            return self.trace(x, record=False)[2].value
        xp = backend.xp()
        return xp.concatenate([self.trace(x[i:i + batch_size], record=False)[2].value
                               for i in range(0, len(x), batch_size)])

    def predict(self, x, batch_size=500) -> numpy.ndarray:
        """Logits as a NumPy array, in batches (what metrics and reports call)."""
        return backend.to_numpy(self.forward(x, batch_size=batch_size))

    def loss_and_grads(self, x, y, train=False, rng=None):
        """The study's loss (softmax cross-entropy with an extra zero logit) and its gradient with
        respect to every parameter: ``(loss, grads)`` with ``grads`` keyed like ``params``."""
        tape, _, out = self.trace(x, train=train, rng=rng)
        y = self.check_labels(y, out.value.shape[0])
        loss, dlogits = softmax_xent_zero_logit(out.value, y)
        _, grads = tape.backward({out: dlogits})
        xp = backend.xp()
        for name, p in self.params.items():      # a parameter no path reached has zero gradient
            if name not in grads:
                grads[name] = xp.zeros_like(p)
        return loss, grads

    def __repr__(self):
        return f"<{type(self).__name__} {self.arch!r}: {self.num_params():,} parameters>"
