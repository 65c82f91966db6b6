"""Training (THESIS.md section 6): Adam on the study's loss, in mini-batches, with dropout on.

    from lrpnet.training import fit, accuracy
    history = fit(model, train, val, epochs=100, batch_size=50, lr=2e-4, seed=0)

The loss (softmax cross-entropy with one extra constant-zero logit) is ``lrpnet.losses``; its gradient
is the reverse walk of the forward pass's tape (``backprop``, which ``Model.loss_and_grads`` runs too).
This file holds that pass, the optimiser and the loop.

Datasets are anything with ``len(ds)``, ``ds.labels`` (N,) ints, ``ds.images(idx)`` (float32
(n, 28, W) in [-1, 1]) and ``ds.batches(batch_size, shuffle=True, seed=seed, epoch=epoch)``
yielding ``(images, labels)``: ``lrpnet.data.Dataset``, or ``ArrayDataset`` for arrays of your own.

Reproducibility: the order of epoch e is drawn from ``(seed, e)`` (by the dataset), and epoch e's
dropout masks from ``default_rng([seed, e, 1])``. Epoch e therefore depends only on the weights and
the Adam state at its start, so training resumed at an epoch boundary (``Adam.state_dict`` /
``load_state_dict`` plus ``start_epoch``) reproduces uninterrupted training exactly.

On a GPU (a model moved with ``model.to("cupy")``) the loop keeps everything on the device: the
datasets are copied there once (``lrpnet.data.on_device``), batches are gathered and dropout masks
drawn there (CuPy's generator, seeded from the same words: the batch order is the CPU's, the masks
are not), and the loss, the running accuracy and the divergence check stay on the device, read every
``check_every`` batches. A batch whose loss is not finite is skipped on the device (the Adam update
is masked), so ``TrainingDiverged`` still leaves the weights as they were before that batch.
"""
from __future__ import annotations

import math
import time

import numpy

from . import backend
from .data.dataset import batch_rows
from .data.device import on_device
from .losses import softmax_xent_zero_logit

__all__ = ["Adam", "ArrayDataset", "backprop", "fit", "accuracy", "TrainingDiverged", "dropout_scale",
           "learning_rate", "LR_SCHEDULES", "DROPOUT_SCHEDULES"]

DROPOUT_STREAM = 1   # third word of the dropout seed: keeps dropout draws apart from the shuffling


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or infinite; the message names the epoch and the batch."""


@backend.register("adam_update")
def adam_update(p, g, m, v, beta1, beta2, step, eps):
    """One Adam update of p, m and v in place (``Adam.step`` docstring); ``step`` and ``eps`` carry
    the bias corrections."""
    xp = backend.xp()
    m *= beta1
    m += (1.0 - beta1) * g
    v *= beta2
    v += (1.0 - beta2) * (g * g)
    p -= (step * m / (xp.sqrt(v) + eps)).astype(p.dtype, copy=False)


@backend.register("adam_update_masked")
def adam_update_masked(p, g, m, v, beta1, beta2, step, eps, ok):
    """``adam_update`` where the 0-d boolean array ``ok`` is true; p, m and v unchanged elsewhere
    (skips a diverged batch on the device without reading ``ok`` on the host)."""
    xp = backend.xp()
    m_new = beta1 * m + (1.0 - beta1) * g
    v_new = beta2 * v + (1.0 - beta2) * (g * g)
    p_new = p - (step * m_new / (xp.sqrt(v_new) + eps)).astype(p.dtype, copy=False)
    for old, new in ((m, m_new), (v, v_new), (p, p_new)):
        old[...] = xp.where(ok, new, old)


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
        # the moments live where each parameter lives, whichever backend is in force
        self.m = {k: backend.module_of(p).zeros_like(p) for k, p in self.params.items()}
        self.v = {k: backend.module_of(p).zeros_like(p) for k, p in self.params.items()}

    def step(self, grads: dict, ok=None) -> None:
        """One update of every parameter from ``grads`` (name -> array shaped like the parameter).
        ``ok``: a 0-d boolean array; where it is false nothing changes (the step count still moves)."""
        missing = sorted(set(self.params) - set(grads))
        unknown = sorted(set(grads) - set(self.params))
        if missing or unknown:
            raise KeyError(f"Adam.step: gradients do not match the parameters "
                           f"(missing: {missing or 'none'}; unknown: {unknown or 'none'})")
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
            if ok is None:
                backend.op("adam_update")(p, g, self.m[k], self.v[k], b1, b2, step, eps)
            else:
                backend.op("adam_update_masked")(p, g, self.m[k], self.v[k], b1, b2, step, eps, ok)

    def state_dict(self) -> dict:
        """The optimiser's state as host (NumPy) arrays and numbers: enough to resume training."""
        return {"t": self.t, "lr": self.lr, "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps,
                **{which: {k: a.copy() for k, a in backend.fetch(getattr(self, which)).items()}
                   for which in ("m", "v")}}

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
                mine[k][...] = backend.module_of(mine[k]).asarray(a, dtype=mine[k].dtype)


def backprop(model, x, y, train=True, rng=None, checked=False, drop_scale=1.0):
    """One batch of the study's loss, forward and back: ``(loss, logits, grads)``. The loss (0-d) and
    the logits are arrays of the model's device (``fit`` on a GPU reads them only every
    ``check_every`` batches); ``grads()`` walks the tape back to the parameters' gradients, keyed like
    ``model.params``: a function, so that ``fit`` stops at a loss that is not finite before that walk.
    ``checked=True`` trusts x and y (a dataset checked once: ``lrpnet.data.on_device``).
    ``drop_scale`` scales every dropout layer's drop probability (``dropout_scale``)."""
    tape, _, out = model.trace(x, train=train, rng=rng, checked=checked, drop_scale=drop_scale)
    y = y if checked else model.check_labels(y, out.value.shape[0])
    loss, dlogits = softmax_xent_zero_logit(out.value, y)
    return loss, out.value, lambda: model.param_grads(tape, out, dlogits)


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

    def batches(self, batch_size, shuffle=True, seed=0, epoch=0, drop_last=False):
        """Yield ``(images, labels)`` in batches, in ``lrpnet.data.Dataset``'s order (``batch_rows``)."""
        for rows in batch_rows(len(self), batch_size, shuffle, seed, epoch, drop_last):
            yield self._images[rows], self.labels[rows]


def accuracy(model, ds, batch_size=500) -> float:
    """Share of ``ds`` that ``model`` classifies correctly (argmax of the logits), in batches. On a GPU
    the dataset is copied to the device once and the count stays there until the end."""
    if len(ds) == 0:
        raise ValueError("accuracy: the dataset is empty")
    with model.running():
        if model.device == "cpu":
            correct = 0
            for images, labels in ds.batches(batch_size, shuffle=False):
                pred = model.predict(images, batch_size=batch_size).argmax(axis=1)
                correct += int((pred == numpy.asarray(labels)).sum())
            return correct / len(ds)
        correct = 0
        for images, labels in on_device(ds, model.dtype, model.n_classes).batches(batch_size, shuffle=False):
            logits = model.trace(images, record=False, checked=True)[2].value
            correct = correct + (logits.argmax(axis=1) == labels).sum()
        return int(correct) / len(ds)


LR_SCHEDULES = ("constant", "cosine")
DROPOUT_SCHEDULES = ("constant", "curriculum")
CURRICULUM_GAMMA = 10.0


def dropout_scale(schedule, progress):
    """What a dropout layer's drop probability 1 - keep is multiplied by at ``progress`` in [0, 1) of
    training: 1 throughout ("constant": every batch drops as the model was built to), or
    ``1 - exp(-gamma progress)`` with gamma = 10 ("curriculum": Morerio et al. 2017, "Curriculum
    Dropout", ICCV, whose keep probability theta(t) = (1 - theta) exp(-gamma t) + theta falls from 1
    to the layer's keep with gamma = 10 / (number of batches)). The curriculum starts without dropout
    and reaches 95% of it at progress 0.3; the last 70% of training drops (almost) as built."""
    if schedule == "constant":
        return 1.0
    return 1.0 - math.exp(-CURRICULUM_GAMMA * progress)


def learning_rate(lr, schedule, progress):
    """The learning rate at ``progress`` in [0, 1) of training: ``lr`` throughout ("constant"), or
    ``lr * (1 + cos(pi * progress)) / 2``, from lr down towards 0 ("cosine", Loshchilov & Hutter 2017)."""
    if schedule == "constant":
        return lr
    return lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def fit(model, train, val=None, epochs=1, batch_size=50, lr=2e-4, seed=0, progress=True,
        callback=None, max_batches=None, *, optimizer=None, start_epoch=0, lr_schedule="constant",
        check_every=None, batch_order="shuffled", dropout_schedule="constant") -> list:
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
    ``check_every``: batches between two reads of the loss and accuracy on the host (default: every
    batch on the CPU, where reading costs nothing; every 50 on a GPU, where each read waits for it).
    ``batch_order``: "shuffled" (a new order each epoch) or "fixed": every epoch visits ``train`` in
    epoch 0's order, as the thesis's code did (it reseeded its shuffle with 71 on every call, THESIS.md
    section 7).
    ``dropout_schedule``: "constant" (every batch drops as the model was built to, the study's) or
    "curriculum" (no dropout at first, rising to the built rate over the first third of training:
    ``dropout_scale``; a resumed run continues the same curve).

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
    if check_every is not None and check_every < 1:
        raise ValueError(f"fit: check_every must be >= 1 or None, got {check_every}")
    if batch_order not in BATCH_ORDERS:
        raise ValueError(f"fit: unknown batch_order {batch_order!r}; expected one of {BATCH_ORDERS}")
    if dropout_schedule not in DROPOUT_SCHEDULES:
        raise ValueError(f"fit: unknown dropout_schedule {dropout_schedule!r}; expected one of {DROPOUT_SCHEDULES}")
    with model.running():
        return _fit(model, train, val, epochs, batch_size, lr, seed, progress, callback, max_batches,
                    optimizer, start_epoch, lr_schedule, check_every, batch_order, dropout_schedule)


BATCH_ORDERS = ("shuffled", "fixed")


def _fit(model, train, val, epochs, batch_size, lr, seed, progress, callback, max_batches, optimizer,
         start_epoch, lr_schedule, check_every, batch_order="shuffled", dropout_schedule="constant"):
    opt = optimizer if optimizer is not None else Adam(model.params, lr=lr)
    base_lr = opt.lr if optimizer is not None and lr_schedule == "constant" else lr
    if set(opt.params) != set(model.params):
        raise ValueError("fit: the optimizer's parameters are not the model's")
    on_gpu = model.device == "gpu"
    if check_every is None:
        check_every = GPU_CHECK_EVERY if on_gpu else 1
    source = on_device(train, model.dtype, model.n_classes) if on_gpu else train
    n_batches = math.ceil(len(train) / batch_size)
    if max_batches is not None:
        n_batches = min(n_batches, max_batches)
    history = []
    for epoch in range(start_epoch, epochs):
        started = time.perf_counter()
        rng = backend.random_state([int(seed), epoch, DROPOUT_STREAM])
        bar = _progress_bar(progress, n_batches, f"epoch {epoch + 1}/{epochs}")
        run = _Running(on_gpu)
        order_epoch = epoch if batch_order == "shuffled" else 0
        for b, (images, labels) in enumerate(source.batches(batch_size, shuffle=True, seed=seed, epoch=order_epoch)):
            if b == n_batches:
                break
            done = (epoch * n_batches + b) / (epochs * n_batches)
            opt.lr = learning_rate(base_lr, lr_schedule, done)
            loss, logits, grads = backprop(model, images, labels, rng=rng, checked=on_gpu,
                                           drop_scale=dropout_scale(dropout_schedule, done))
            ok = run.add(b, loss, (logits.argmax(axis=1) == labels).sum(), len(labels))
            last = b == n_batches - 1
            if ok is None:         # the CPU: a loss that is not finite stops before the update
                run.check(bar, epoch, b, opt.lr)
            opt.step(grads(), ok=ok)
            if bar is not None:
                bar.update(1)
            if ok is not None and ((b + 1) % check_every == 0 or last):
                run.check(bar, epoch, b, opt.lr)
            if bar is not None and (b % 10 == 0 or last) and run.read is not None:
                bar.set_postfix(loss=f"{run.loss:.4f}", acc=f"{run.acc:.4f}", refresh=False)
        if bar is not None:
            bar.close()
        record = {"epoch": epoch, "loss": run.loss, "train_acc": run.acc,
                  "val_acc": accuracy(model, val) if val is not None else None,
                  "seconds": time.perf_counter() - started}
        history.append(record)
        if progress:
            _print_epoch(record)
        if callback is not None and callback(record, model, opt):
            break
    return history


GPU_CHECK_EVERY = 50


class _Running:
    """An epoch's running loss and accuracy, and its divergence check.

    On the CPU the loss is read after every batch, and a loss that is not finite stops training before
    its update. On a GPU the sums, the count of correct predictions and the index of the first batch
    whose loss was not finite stay on the device (``ok`` masks the updates from that batch on) until
    ``check`` reads them, in one copy."""

    def __init__(self, on_gpu):
        self.on_gpu = on_gpu
        self.loss_sum, self.correct, self.seen = 0.0, 0, 0
        self.ok = self.first_bad = None
        self.read = None            # (loss_sum, correct) as last read on the host

    def add(self, b, loss, correct, n):
        """Count one batch; returns the device flag that gates its update (None on the CPU)."""
        self.seen += n
        if not self.on_gpu:
            self.last_loss = float(loss)
            self.loss_sum += self.last_loss * n
            self.correct += int(correct)
            self.read = (self.loss_sum, self.correct)
            return None
        xp = backend.xp()
        finite = xp.isfinite(loss)
        if self.ok is None:
            self.ok, self.first_bad = finite, xp.where(finite, -1, b)
        else:
            self.first_bad = xp.where(self.ok & ~finite, b, self.first_bad)
            self.ok = self.ok & finite
        self.loss_sum = self.loss_sum + xp.where(finite, loss, 0) * n
        self.correct = self.correct + correct
        return self.ok

    def check(self, bar, epoch, b, lr):
        """Read the sums (one copy on a GPU); raise ``TrainingDiverged`` if a loss was not finite."""
        if self.on_gpu:
            got = backend.fetch({"loss": self.loss_sum, "correct": self.correct, "bad": self.first_bad})
            self.read = (float(got["loss"]), int(got["correct"]))
            bad, loss = int(got["bad"]), "not finite"
        else:
            bad, loss = (b, self.last_loss) if not math.isfinite(self.last_loss) else (-1, None)
        if bad >= 0:
            if bar is not None:
                bar.close()
            raise TrainingDiverged(f"fit: the loss became {loss} at epoch {epoch}, batch {bad} "
                                   f"(the weights are as before that batch); lower the learning "
                                   f"rate (lr={lr}) or check the data for extreme values")

    @property
    def loss(self):
        return self.read[0] / self.seen

    @property
    def acc(self):
        return self.read[1] / self.seen


def _progress_bar(progress, total, desc):
    if not progress:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, unit="batch", leave=False)


def _print_epoch(r):
    val = "" if r["val_acc"] is None else f"  val_acc {r['val_acc']:.4f}"
    print(f"epoch {r['epoch'] + 1}: loss {r['loss']:.4f}  train_acc {r['train_acc']:.4f}{val}  "
          f"({r['seconds']:.1f} s)", flush=True)
