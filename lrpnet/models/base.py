"""What every model is: named layers holding parameters, and a forward pass on a tape.

A model subclass writes only ``graph(tape, x)``, its forward pass, applying its layers to values on the
tape. Its gradient (``loss_and_grads``) and its relevance pass (``lrpnet.explain``) are walks of that
tape (``lrpnet.graph``), so an architecture carries no backward code of its own.

A model carries its backend: ``model.backend`` is the backend its arrays were made under (the active
one when it was built), ``model.to("cupy")`` moves its parameters to the GPU and ``model.to("numpy")``
back. The entry points (``forward``, ``predict``, ``loss_and_grads``, ``lrpnet.explain``, ``fit``,
``accuracy``) run under ``running()``: the backend in force if it keeps arrays where the model's are
("numpy" and "numba" share the host, so a host model runs under either), else the model's own backend.
``trace`` returns a tape that later walks read, so it only checks, and says how to fix a mismatch.
"""
from __future__ import annotations

import contextlib
import math
import warnings

import numpy

from .. import backend
from ..graph import Tape
from ..memory import keep_freed_memory


class Model:
    arch = "model"
    # What the study's models read: pixels scaled by 2*x/255 - 1 into [-1, 1] (THESIS.md section 1),
    # the bounds of DTD's z^B rule. ``check_input`` warns about values more than ``input_slack``
    # outside this range, beyond [-10, 10]: raw 0..255 pixels, not standardised features (which
    # reach 4 or 5 in a large batch). None turns the warning off (``model.input_range = None``).
    input_range = (-1.0, 1.0)
    input_slack = 9.0

    def __init__(self, config: dict, input_shape, n_classes: int, dtype="float32"):
        self.config = dict(config)          # everything ``build`` needs to make this model again
        self.input_shape = tuple(int(s) for s in input_shape)
        self.n_classes = int(n_classes)
        self.dtype = backend.resolve_dtype(dtype)
        self.backend = backend.name()       # the backend the parameters are made under (see ``to``)
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

    @property
    def device(self) -> str:
        """Where the parameters live: "cpu" or "gpu"."""
        return backend.device(self.backend)

    def to(self, backend_name: str):
        """Move the parameters to where ``backend_name`` keeps arrays and make it the model's backend
        (``model.to("cupy")``, ``model.to("numpy")``; "numba" shares the host with "numpy"). In place;
        returns the model. An optimizer made before the move must be made again (or its state loaded)."""
        with backend.using(backend_name):
            for layer in self.layers.values():
                for k, v in layer.params.items():
                    if backend.device_of(v) != backend.device():
                        v = backend.asarray(backend.to_numpy(v))
                    layer.params[k] = v
        self.backend = backend_name
        return self

    @contextlib.contextmanager
    def running(self):
        """Context: the backend in force if it keeps arrays on the model's device, else the model's.
        Every pass of a model runs in it, so it also makes the process keep freed memory
        (``lrpnet.memory``; once per process)."""
        keep_freed_memory()
        if backend.device() == self.device:
            yield
        else:
            with backend.using(self.backend):
                yield

    def check_device(self) -> None:
        """Raise ``DeviceMismatch`` unless the backend in force keeps arrays where the parameters are."""
        active = backend.name()
        if backend.device(active) != self.device:
            raise backend.DeviceMismatch(
                f"{self.arch}: the model lives on the {self.device} (backend {self.backend!r}) but the "
                f"backend in force is {active!r} (on the {backend.device(active)}): call "
                f"model.to({active!r}), or run it under backend.using({self.backend!r})")
        for name, p in self.params.items():
            if backend.device_of(p) != self.device:
                raise backend.DeviceMismatch(f"{self.arch}: parameter {name!r} is a {backend.describe(p)}, "
                                             f"the model's other arrays live on the {self.device}: "
                                             f"call model.to({self.backend!r})")

    def num_params(self) -> int:
        return int(sum(int(numpy.prod(p.shape)) for p in self.params.values()))

    def graph(self, tape: Tape, x):
        """The forward pass: apply layers to the Var ``x`` on ``tape`` and return the logits Var."""
        raise NotImplementedError

    # -- running -----------------------------------------------------------------------------------
    def check_input(self, x):
        """``x`` as an array of the active backend in the model's dtype, or a clear error. A host
        array is copied to the device for a GPU model; a device array given to a host model is an
        error (copy it with ``backend.to_numpy`` first). Integer input (raw pixels) is an error, and
        values far outside ``input_range`` a warning (``check_values``)."""
        if not hasattr(x, "shape") or not hasattr(x, "dtype"):
            x = numpy.asarray(x)
        if backend.device_of(x) == "gpu" and self.device != "gpu":
            raise backend.DeviceMismatch(f"{self.arch}: the input is a {backend.describe(x)} but the model "
                                         f"lives on the {self.device}: pass backend.to_numpy(x), or "
                                         f"move the model with model.to('cupy')")
        if x.dtype.kind in "iu":
            raise TypeError(f"{self.arch}: input has integer dtype {x.dtype}; models read floating-point "
                            f"values in [-1, 1]: scale uint8 pixels with lrpnet.data.scale_pixels "
                            f"(2*x/255 - 1), or convert with x.astype('float32')")
        if x.dtype.kind != "f":
            raise TypeError(f"{self.arch}: input must be a floating-point array, got dtype {x.dtype}")
        if x.ndim != len(self.input_shape) + 1 or tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"{self.arch}: expected input of shape (N, {', '.join(map(str, self.input_shape))}), "
                             f"got {tuple(x.shape)}{self._layout_hint(x.shape)}")
        x = backend.asarray(x, dtype=self.dtype)
        self.check_values(x)
        return x

    def check_values(self, x):
        """NaN or infinite values are an error; values more than ``input_slack`` outside
        ``input_range`` a warning that names the range. One read of (min, max) from the device."""
        if x.size == 0:
            return
        xp = backend.xp()
        low, high = (float(v) for v in backend.to_numpy(xp.stack([x.min(), x.max()])))   # NaN propagates
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ValueError(f"{self.arch}: input contains NaN or infinite values")
        if self.input_range is None:
            return
        a, b = self.input_range
        if low < a - self.input_slack or high > b + self.input_slack:
            warnings.warn(f"{self.arch}: input values span [{low:g}, {high:g}], far outside the expected "
                          f"range [{a:g}, {b:g}]: scale raw 0..255 pixels by 2*x/255 - 1 "
                          f"(lrpnet.data.scale_pixels); for a model that reads other values, set "
                          f"model.input_range = None", UserWarning, stacklevel=4)

    def _layout_hint(self, shape):
        """A hint when ``shape`` is the expected channels-last shape in PyTorch's (N, C, H, W) order."""
        h_w_c = self.input_shape
        if len(h_w_c) == 3 and len(shape) == 4 and tuple(shape[1:]) == (h_w_c[2], h_w_c[0], h_w_c[1]):
            return ("; lrpnet images are channels-last (N, H, W, C) and this looks like PyTorch's "
                    "(N, C, H, W): pass x.permute(0, 2, 3, 1) (NumPy: x.transpose(0, 2, 3, 1))")
        return ""

    def check_labels(self, y, n):
        """``y`` as int64 labels of the active backend, checked on the host when given there (a
        device array costs one copy to the host for the range check)."""
        if not hasattr(y, "shape") or not hasattr(y, "dtype"):
            y = numpy.asarray(y)
        if y.shape != (n,) or y.dtype.kind not in "iu" or y.dtype == numpy.bool_:
            raise ValueError(f"{self.arch}: labels must be integers of shape ({n},), got {y.dtype} {tuple(y.shape)}")
        if n:
            low, high = (int(v) for v in backend.to_numpy(backend.xp().stack([y.min(), y.max()]))) \
                if backend.device_of(y) == "gpu" else (int(y.min()), int(y.max()))
            if low < 0 or high >= self.n_classes:
                raise ValueError(f"{self.arch}: labels must lie in [0, {self.n_classes}), got range "
                                 f"[{low}, {high}]")
        return backend.asarray(y).astype(backend.xp().int64, copy=False)

    def trace(self, x, train=False, rng=None, record=True, checked=False, drop_scale=1.0):
        """Run the forward pass on a new tape. Returns ``(tape, input_var, logits_var)``.

        ``checked=True`` skips the input checks (shape, dtype, finiteness: the last one copies a flag
        from the device) for callers that checked their data once, like ``fit`` on a dataset.
        ``drop_scale``: the tape's scale of every drop probability in training (``Tape``)."""
        self.check_device()
        x = x if checked else self.check_input(x)
        tape = Tape(train=train, rng=rng, record=record, array_type=type(x), drop_scale=drop_scale)
        x_var = tape.input(x, tag="input")
        return tape, x_var, self.graph(tape, x_var)

    def forward(self, x, batch_size=None):
        """Logits (N, n_classes) as an array of the model's device. Nothing is recorded."""
        with self.running():
            x = self.check_input(x)
            if batch_size is None or len(x) <= batch_size:
                return self.trace(x, record=False, checked=True)[2].value
            xp = backend.xp()
            return xp.concatenate([self.trace(x[i:i + batch_size], record=False, checked=True)[2].value
                                   for i in range(0, len(x), batch_size)])

    def predict(self, x, batch_size=500) -> numpy.ndarray:
        """Logits as a NumPy array, in batches (what metrics and reports call)."""
        return backend.to_numpy(self.forward(x, batch_size=batch_size))

    def loss_and_grads(self, x, y, train=False, rng=None):
        """The study's loss (softmax cross-entropy with an extra zero logit) and its gradient with
        respect to every parameter: ``(loss, grads)`` with ``grads`` keyed like ``params``. The pass
        is ``lrpnet.training.backprop``, the one ``fit`` runs on every batch."""
        from ..training import backprop
        with self.running():
            loss, _, grads = backprop(self, x, y, train=train, rng=rng)
            return float(loss), grads()

    def param_grads(self, tape, out, dlogits) -> dict:
        """The gradient of ``sum(dlogits * logits)`` with respect to every parameter (zero for a
        parameter no path reached), keyed like ``params``."""
        _, grads = tape.backward({out: dlogits}, leaves=())
        xp = backend.xp()
        for name, p in self.params.items():
            if name not in grads:
                grads[name] = xp.zeros_like(p)
        return grads

    def __repr__(self):
        return f"<{type(self).__name__} {self.arch!r}: {self.num_params():,} parameters>"
