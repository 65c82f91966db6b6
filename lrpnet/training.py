"""Training (THESIS.md section 6): Adam on the study's loss, in mini-batches, with dropout on.

    from lrpnet.training import fit, accuracy
    history = fit(model, train, val, epochs=100, batch_size=50, lr=2e-4, seed=0)

The loss (softmax cross-entropy with one extra constant-zero logit) is ``lrpnet.losses``; its gradient
is the reverse walk of the forward pass's tape (``Model.loss_and_grads``). This file holds only the
optimiser and the loop.

Datasets are anything with ``len(ds)``, ``ds.labels`` (N,) ints, ``ds.images(idx)`` (float32
(n, 28, W) in [-1, 1]) and ``ds.batches(batch_size, shuffle=True, seed=seed, epoch=epoch)``
yielding ``(images, labels)``: ``lrpnet.data.Dataset``, or ``ArrayDataset`` for arrays of your own.

Reproducibility: the order of epoch e is drawn from ``(seed, e)`` (by the dataset), and epoch e's
dropout masks from ``default_rng([seed, e, 1])``. Epoch e therefore depends only on the weights and
the Adam state at its start, so training resumed at an epoch boundary (``Adam.state_dict`` /
``load_state_dict`` plus ``start_epoch``) reproduces uninterrupted training exactly.
"""
from __future__ import annotations

import math
import time

import numpy

from . import backend
from .losses import softmax_xent_zero_logit

__all__ = ["Adam", "ArrayDataset", "fit", "accuracy", "TrainingDiverged"]

DROPOUT_STREAM = 1   # third word of the dropout seed: keeps dropout draws apart from the shuffling


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or infinite; the message names the epoch and the batch."""


class Adam:
    """Adam (Kingma & Ba 2015, Algorithm 1), updating the model's arrays in place.

        m_t = beta1 m_{t-1} + (1 - beta1) g_t
        v_t = beta2 v_{t-1} + (1 - beta2) g_t^2
        p_t = p_{t-1} - lr * (m_t / (1 - beta1^t)) / (sqrt(v_t / (1 - beta2^t)) + eps)

    (the form torch.optim.Adam uses; TensorFlow's differs only in where eps enters, eps * sqrt(1 - beta2^t)).

    ``params`` is a dict name -> array, normally ``model.params``: the arrays are the layers' own, so
    every step changes the model. ``step(grads)`` takes gradients keyed like ``params``.
    """

    def __init__(self, params: dict, lr=2e-4, beta1=0.9, beta2=0.999, eps=1e-8):
        if not lr > 0:
            raise ValueError(f"Adam: lr must be > 0, got {lr}")
        for nm, b in (("beta1", beta1), ("beta2", beta2)):
            if not 0.0 <= b < 1.0:
                raise ValueError(f"Adam: {nm} must be in [0, 1), got {b}")
        if not eps > 0:
            raise ValueError(f"Adam: eps must be > 0, got {eps}")
        self.params = dict(params)
        self.lr, self.beta1, self.beta2, self.eps = float(lr), float(beta1), float(beta2), float(eps)
        self.t = 0
        xp = backend.xp()
        self.m = {k: xp.zeros_like(p) for k, p in self.params.items()}
        self.v = {k: xp.zeros_like(p) for k, p in self.params.items()}

    def step(self, grads: dict) -> None:
        """One update of every parameter from ``grads`` (name -> array shaped like the parameter)."""
        missing = sorted(set(self.params) - set(grads))
        unknown = sorted(set(grads) - set(self.params))
        if missing or unknown:
            raise KeyError(f"Adam.step: gradients do not match the parameters "
                           f"(missing: {missing or 'none'}; unknown: {unknown or 'none'})")
        xp = backend.xp()
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        # fold the bias corrections into one step size and one eps, so the update is one pass:
        # lr * m/(1-b1^t) / (sqrt(v/(1-b2^t)) + eps) = step * m / (sqrt(v) + eps * sqrt(1-b2^t))
        c2 = math.sqrt(1.0 - b2 ** self.t)
        step = self.lr * c2 / (1.0 - b1 ** self.t)
        eps = self.eps * c2
        for k, p in self.params.items():
            g = grads[k]
            if g.shape != p.shape:
                raise ValueError(f"Adam.step: gradient of {k!r} has shape {tuple(g.shape)}, "
                                 f"the parameter {tuple(p.shape)}")
            m, v = self.m[k], self.v[k]
            m *= b1
            m += (1.0 - b1) * g
            v *= b2
            v += (1.0 - b2) * (g * g)
            p -= (step * m / (xp.sqrt(v) + eps)).astype(p.dtype, copy=False)

    def state_dict(self) -> dict:
        """The optimiser's state as host (NumPy) arrays and numbers: enough to resume training."""
        return {"t": self.t, "lr": self.lr, "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps,
                "m": {k: backend.to_numpy(a).copy() for k, a in self.m.items()},
                "v": {k: backend.to_numpy(a).copy() for k, a in self.v.items()}}

    def load_state_dict(self, state: dict) -> None:
        """Restore a ``state_dict``; its moment arrays must match this optimiser's parameters."""
        for which in ("m", "v"):
            got = state[which]
            if set(got) != set(self.params):
                raise KeyError(f"Adam.load_state_dict: {which!r} holds parameters "
                               f"{sorted(set(got) ^ set(self.params))} that do not match the model's")
            for k, a in got.items():
                if tuple(a.shape) != tuple(self.params[k].shape):
                    raise ValueError(f"Adam.load_state_dict: {which}[{k!r}] has shape {tuple(a.shape)}, "
                                     f"the parameter {tuple(self.params[k].shape)}")
        self.t = int(state["t"])
        self.lr, self.beta1 = float(state["lr"]), float(state["beta1"])
        self.beta2, self.eps = float(state["beta2"]), float(state["eps"])
        for which in ("m", "v"):
            mine = getattr(self, which)
            for k, a in state[which].items():
                mine[k][...] = backend.asarray(a, dtype=mine[k].dtype)


class ArrayDataset:
    """In-memory images and labels with the dataset interface ``fit`` and ``accuracy`` use.

    ``images``: (N, ...) array (for the study's models (N, 28, W) in [-1, 1]); ``labels``: (N,) ints.
    Shuffling follows ``lrpnet.data.Dataset``: the order of an epoch is ``default_rng([seed, epoch])``.
    """

    def __init__(self, images, labels):
        images = numpy.asarray(images)
        labels = numpy.asarray(labels)
        if labels.ndim != 1 or labels.dtype.kind not in "iu":
            raise ValueError(f"ArrayDataset: labels must be a 1-d integer array, got {labels.dtype} {labels.shape}")
        if len(images) != len(labels):
            raise ValueError(f"ArrayDataset: {len(images)} images but {len(labels)} labels")
        self._images = images
        self.labels = labels.astype(numpy.int64)

    def __len__(self):
        return len(self.labels)

    def images(self, idx=None):
        return self._images if idx is None else self._images[idx]

    def batches(self, batch_size, shuffle=True, seed=0, epoch=0):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        n = len(self)
        order = numpy.random.default_rng([int(seed), int(epoch)]).permutation(n) if shuffle else numpy.arange(n)
        for start in range(0, n, batch_size):
            rows = order[start:start + batch_size]
            yield self._images[rows], self.labels[rows]


def accuracy(model, ds, batch_size=500) -> float:
    """Share of ``ds`` that ``model`` classifies correctly (argmax of the logits), in batches."""
    if len(ds) == 0:
        raise ValueError("accuracy: the dataset is empty")
    correct = 0
    for images, labels in ds.batches(batch_size, shuffle=False):
        pred = model.predict(images, batch_size=batch_size).argmax(axis=1)
        correct += int((pred == numpy.asarray(labels)).sum())
    return correct / len(ds)


def _train_step(model, images, labels, rng):
    """Loss, gradients and predicted classes of one training batch (dropout on).

    This is ``Model.loss_and_grads`` keeping the logits as well, so the running accuracy costs no
    second forward pass."""
    tape, _, out = model.trace(images, train=True, rng=rng)
    y = model.check_labels(labels, out.value.shape[0])
    loss, dlogits = softmax_xent_zero_logit(out.value, y)
    if not math.isfinite(loss):
        return loss, None, None
    _, grads = tape.backward({out: dlogits})
    xp = backend.xp()
    for name, p in model.params.items():     # a parameter no path reached has zero gradient
        if name not in grads:
            grads[name] = xp.zeros_like(p)
    return loss, grads, backend.to_numpy(out.value.argmax(axis=1))


LR_SCHEDULES = ("constant", "cosine")


def learning_rate(lr, schedule, progress):
    """The learning rate at ``progress`` in [0, 1) of training: ``lr`` throughout ("constant"), or
    ``lr * (1 + cos(pi * progress)) / 2``, from lr down towards 0 ("cosine", Loshchilov & Hutter 2017)."""
    if schedule == "constant":
        return lr
    return lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def fit(model, train, val=None, epochs=1, batch_size=50, lr=2e-4, seed=0, progress=True,
        callback=None, max_batches=None, *, optimizer=None, start_epoch=0, lr_schedule="constant") -> list:
    """Train ``model`` in place with Adam on the study's loss; returns the history.

    Trains epochs ``start_epoch, ..., epochs - 1`` (so ``epochs`` is where training ends: to resume
    an interrupted run, pass the saved optimiser and the epoch to continue from). Each epoch visits
    ``train`` in a new seeded order in batches of ``batch_size`` (at most ``max_batches`` of them),
    with dropout on, and then measures accuracy on ``val`` (if given).

    ``optimizer``: an ``Adam`` over ``model.params`` to continue from (default: a new one with ``lr``).
    ``lr_schedule``: "constant" (the study's) or "cosine" (decays lr towards 0 over the ``epochs``,
    batch by batch; a resumed run continues the same curve).
    ``callback(record, model, optimizer)`` runs after each epoch (to save checkpoints, for instance);
    returning True stops training.

    Returns a list with one dict per epoch: ``{"epoch", "loss" (mean training loss), "train_acc"
    (running accuracy of the training batches, dropout on), "val_acc" (None without ``val``),
    "seconds"}``. Raises ``TrainingDiverged`` naming the epoch and batch if the loss is not finite.
    """
    if batch_size < 1:
        raise ValueError(f"fit: batch_size must be >= 1, got {batch_size}")
    if len(train) == 0:
        raise ValueError("fit: the training set is empty")
    if max_batches is not None and max_batches < 1:
        raise ValueError(f"fit: max_batches must be >= 1 or None, got {max_batches}")
    if not 0 <= start_epoch <= epochs:
        raise ValueError(f"fit: start_epoch must be in [0, epochs={epochs}], got {start_epoch}")
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"fit: unknown lr_schedule {lr_schedule!r}; expected one of {LR_SCHEDULES}")
    opt = optimizer if optimizer is not None else Adam(model.params, lr=lr)
    base_lr = opt.lr if optimizer is not None and lr_schedule == "constant" else lr
    if set(opt.params) != set(model.params):
        raise ValueError("fit: the optimizer's parameters are not the model's")
    n_batches = math.ceil(len(train) / batch_size)
    if max_batches is not None:
        n_batches = min(n_batches, max_batches)
    history = []
    for epoch in range(start_epoch, epochs):
        started = time.perf_counter()
        rng = numpy.random.default_rng([int(seed), epoch, DROPOUT_STREAM])
        bar = _progress_bar(progress, n_batches, f"epoch {epoch + 1}/{epochs}")
        loss_sum, correct, seen = 0.0, 0, 0
        for b, (images, labels) in enumerate(train.batches(batch_size, shuffle=True, seed=seed, epoch=epoch)):
            if b == n_batches:
                break
            opt.lr = learning_rate(base_lr, lr_schedule, (epoch * n_batches + b) / (epochs * n_batches))
            loss, grads, pred = _train_step(model, images, labels, rng)
            if grads is None:
                if bar is not None:
                    bar.close()
                raise TrainingDiverged(f"fit: the loss became {loss} at epoch {epoch}, batch {b} "
                                       f"(the weights are as before that batch); lower the learning "
                                       f"rate (lr={opt.lr}) or check the data for extreme values")
            opt.step(grads)
            n = len(labels)
            loss_sum += loss * n
            correct += int((pred == numpy.asarray(labels)).sum())
            seen += n
            if bar is not None:
                bar.update(1)
                if b % 10 == 0 or b == n_batches - 1:
                    bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}", refresh=False)
        if bar is not None:
            bar.close()
        record = {"epoch": epoch, "loss": loss_sum / seen, "train_acc": correct / seen,
                  "val_acc": accuracy(model, val) if val is not None else None,
                  "seconds": time.perf_counter() - started}
        history.append(record)
        if progress:
            _print_epoch(record)
        if callback is not None and callback(record, model, opt):
            break
    return history


def _progress_bar(progress, total, desc):
    if not progress:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, unit="batch", leave=False)


def _print_epoch(r):
    val = "" if r["val_acc"] is None else f"  val_acc {r['val_acc']:.4f}"
    print(f"epoch {r['epoch'] + 1}: loss {r['loss']:.4f}  train_acc {r['train_acc']:.4f}{val}  "
          f"({r['seconds']:.1f} s)", flush=True)
