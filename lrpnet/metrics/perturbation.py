"""Perturbation metrics: remove the most relevant patches first and watch the model's output.

Patches form a non-overlapping grid of ``patch`` x ``patch`` pixels; patch id = row * (W / patch)
+ column. A patch's relevance is the sum of R over its pixels (signed), patches are removed most
relevant first (equal sums: lower id first), and "removing" sets the pixels to ``fill`` = -1,
the background value of the [-1, 1] pixel scale.
"""
from __future__ import annotations

import numpy as np

from .checks import relevance_maps

__all__ = ["patch_order", "pixel_flipping", "aopc"]


def _grid(shape, patch: int, what: str):
    height, width = shape
    if patch < 1 or height % patch or width % patch:
        raise ValueError(f"{what}: image of {height}x{width} cannot be cut into {patch}x{patch} patches")
    return height // patch, width // patch


def patch_order(R, patch: int) -> np.ndarray:
    """(N, P) patch ids sorted by summed relevance, highest first (stable: ties by id)."""
    R = relevance_maps(R)
    n = len(R)
    rows, cols = _grid(R.shape[1:], patch, f"R of shape {R.shape}")
    scores = R.reshape(n, rows, patch, cols, patch).sum(axis=(2, 4), dtype=np.float64).reshape(n, -1)
    return np.argsort(-scores, axis=1, kind="stable")


def _patch_ids(shape, patch: int) -> np.ndarray:
    """(H, W) id of the patch each pixel belongs to."""
    height, width = shape
    i, j = np.indices((height, width))
    return (i // patch) * (width // patch) + j // patch


def _inputs(x, R):
    x = np.asarray(x)
    R = relevance_maps(R)
    if x.shape != R.shape:
        raise ValueError(f"x {x.shape} and R {R.shape} must have the same shape (N, H, W)")
    return np.array(x, dtype=np.float32), R


def _logits(predict, x, batch_size):
    """predict(x) in chunks of batch_size (None: one call), checked to be (len(x), C)."""
    step = batch_size or max(len(x), 1)
    out = np.concatenate([np.asarray(predict(x[i:i + step])) for i in range(0, len(x), step)])
    if out.ndim != 2 or len(out) != len(x):
        raise ValueError(f"predict must return logits of shape (N, C) = ({len(x)}, C), got {out.shape}")
    return out


def pixel_flipping(predict, x, R, patch: int = 7, max_flips: int = 16, fill: float = -1.0,
                   batch_size: int | None = None) -> np.ndarray:
    """(N,) number of patches removed, most relevant first, until the predicted class changes.

    predict: callable, images (n, H, W) float32 -> logits (n, C) NumPy array.
    x, R:    (N, H, W) inputs and their relevance maps.
    Step k (k = 1..max_flips) sets the k most relevant patches to ``fill`` and compares
    argmax(predict) with the class predicted for the intact x. The result is the first k where
    it differs; a sample that keeps its class through all ``max_flips`` steps gets max_flips + 1.
    Lower is better: a good explanation points at the evidence the model needs.
    """
    x, R = _inputs(x, R)
    n = len(x)
    order = patch_order(R, patch)
    if not 1 <= max_flips <= order.shape[1]:
        raise ValueError(f"max_flips must be in 1..{order.shape[1]} (the number of patches), got {max_flips}")
    ids = _patch_ids(x.shape[1:], patch)
    before = _logits(predict, x, batch_size).argmax(axis=1)
    flips = np.full(n, max_flips + 1, dtype=np.int64)
    active = np.arange(n)  # samples whose class has not changed yet
    for k in range(1, max_flips + 1):
        hit = ids[None] == order[active, k - 1][:, None, None]
        x[active] = np.where(hit, np.float32(fill), x[active])
        changed = _logits(predict, x[active], batch_size).argmax(axis=1) != before[active]
        flips[active[changed]] = k
        active = active[~changed]
        if not active.size:
            break
    return flips


def aopc(predict, x, R, patch: int = 4, steps: int = 100, fill: float = -1.0, target=None,
         batch_size: int | None = None, return_curve: bool = False):
    """(N,) area over the perturbation curve (Samek et al. 2017, Eq. 12), per sample:

        AOPC = 1/(L+1) * sum_{k=0..L} (f(x_0) - f(x_k))

    where x_k is x with its k most relevant ``patch`` x ``patch`` patches set to ``fill``, f is the
    logit of the class ``target`` (default: the class predicted for the intact x_0) and
    L = min(steps, number of patches). The k = 0 term is 0 but counts in the mean, as in the
    paper. Higher is better: the logit drops faster when the most relevant patches go first.
    With ``return_curve`` also returns the (N, L+1) curve f(x_k).
    """
    x, R = _inputs(x, R)
    n = len(x)
    order = patch_order(R, patch)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    L = min(steps, order.shape[1])
    ids = _patch_ids(x.shape[1:], patch)
    logits = _logits(predict, x, batch_size)
    if target is None:
        target = logits.argmax(axis=1)
    target = np.asarray(target, dtype=np.int64)
    if target.shape != (n,):
        raise ValueError(f"target must have shape ({n},), got {target.shape}")
    rows = np.arange(n)
    curve = np.empty((n, L + 1))
    curve[:, 0] = logits[rows, target]
    for k in range(1, L + 1):
        x[ids[None] == order[:, k - 1][:, None, None]] = fill
        curve[:, k] = _logits(predict, x, batch_size)[rows, target]
    area = (curve[:, :1] - curve).mean(axis=1)
    return (area, curve) if return_curve else area
