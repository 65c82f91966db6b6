"""The study's training loss (THESIS.md section 6).

Softmax cross-entropy over the C class logits with one extra logit fixed at 0 appended: the true
class must beat a constant zero, which pushes its logit positive (so relu(logit), where LRP starts,
is the logit itself for well-classified samples).
"""
from __future__ import annotations

from . import backend


def softmax_xent_zero_logit(logits, labels):
    """Mean loss over the batch (a 0-d array: on a GPU it stays there, reading it is the caller's
    choice) and its gradient with respect to ``logits`` (N, C)."""
    xp = backend.xp()
    n = logits.shape[0]
    z = xp.concatenate([logits, xp.zeros((n, 1), dtype=logits.dtype)], axis=1)
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - xp.log(xp.exp(z).sum(axis=1, keepdims=True))
    rows = xp.arange(n)
    loss = -log_p[rows, labels].mean()
    dz = xp.exp(log_p)
    dz[rows, labels] -= 1
    return loss, (dz[:, :-1] / n).astype(logits.dtype, copy=False)
