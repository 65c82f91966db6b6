"""Central-difference gradient checks (float64), for layers and whole models.

A check compares a hand-written backward step with (f(p + h) - f(p - h)) / 2h for every entry (or a
random sample of entries) of every input and parameter, where f is a random projection of the output.
"""
from __future__ import annotations

import numpy

from . import backend
from .graph import Tape


def _numeric(f, arr, entries, h):
    """Central differences of the scalar f() with respect to the given flat entries of arr (in place)."""
    flat = arr.reshape(-1)
    out = numpy.empty(len(entries))
    for n, i in enumerate(entries):
        old = float(flat[i])
        flat[i] = old + h
        up = f()
        flat[i] = old - h
        down = f()
        flat[i] = old
        out[n] = (up - down) / (2 * h)
    return out


def _entries(size, max_entries, rng):
    if max_entries is None or size <= max_entries:
        return numpy.arange(size)
    return rng.choice(size, max_entries, replace=False)


def check_layer(layer, *inputs, h=1e-6, max_entries=60, seed=0, train=False, guided=False):
    """Largest relative error between ``layer.backward`` and central differences, over inputs and params.

    Returns a dict ``{"input0": err, ..., "param:W": err, ...}``; inputs must be float64 arrays.
    """
    rng = numpy.random.default_rng(seed)
    inputs = [backend.asarray(x, dtype="float64").copy() for x in inputs]
    tape = Tape(train=train, rng=numpy.random.default_rng(seed))
    y, cache = layer.forward(tape, *inputs)
    proj = backend.asarray(rng.standard_normal(y.shape))
    dxs, dparams = (layer.guided_backward if guided else layer.backward)(cache, proj)

    def f():
        t = Tape(train=train, rng=numpy.random.default_rng(seed))   # same dropout masks every time
        return float((layer.forward(t, *inputs)[0] * proj).sum())

    errors = {}
    targets = [(f"input{i}", x, dx) for i, (x, dx) in enumerate(zip(inputs, dxs))]
    targets += [(f"param:{k}", layer.params[k], dparams.get(k)) for k in layer.params]
    for label, arr, analytic in targets:
        errors[label] = _compare(f, arr, analytic, h, max_entries, rng)
    return errors


def check_model(model, x, y, h=1e-6, max_entries=40, seed=0):
    """Largest relative error of ``model.loss_and_grads`` per parameter (and of the input gradient)."""
    rng = numpy.random.default_rng(seed)
    x = backend.asarray(x, dtype="float64").copy()
    _, grads = model.loss_and_grads(x, y)

    def f():
        return model.loss_and_grads(x, y)[0]

    errors = {name: _compare(f, p, grads[name], h, max_entries, rng) for name, p in model.params.items()}
    tape, x_var, out = model.trace(x)
    from .losses import softmax_xent_zero_logit
    _, dlogits = softmax_xent_zero_logit(out.value, backend.asarray(y))
    leaf_grads, _ = tape.backward({out: dlogits})
    errors["input"] = _compare(f, x, leaf_grads[x_var], h, max_entries, rng)
    return errors


def _compare(f, arr, analytic, h, max_entries, rng):
    if analytic is None:
        analytic = numpy.zeros(arr.shape)
    analytic = backend.to_numpy(analytic).reshape(-1)
    entries = _entries(arr.size, max_entries, rng)
    numeric = _numeric(f, arr, entries, h)
    a = analytic[entries]
    scale = numpy.maximum(numpy.maximum(numpy.abs(a), numpy.abs(numeric)), 1e-6)
    return float(numpy.max(numpy.abs(a - numeric) / scale)) if len(entries) else 0.0


def liven(model, rng):
    """Move a model's parameters away from their initial values so that a check sees every path:
    random biases (ReLU units keep softplus(b) small, so few are dead) and weights doubled (so that
    gradients stay well above the finite-difference noise floor). Changes the arrays in place; the
    host draws are copied to where the parameters live."""
    with model.running():
        for layer in model.layers.values():
            for k, p in layer.params.items():
                if k.startswith("b"):
                    mean = -3.0 if getattr(layer, "bias_mode", None) == "negsoftplus" else 0.0
                    p[...] = backend.asarray(rng.normal(mean, 0.3, p.shape), dtype=p.dtype)
                else:
                    p *= 2.0
