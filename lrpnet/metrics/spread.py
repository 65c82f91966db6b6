"""How relevance is spread: over pixels (entropy) and over the time steps of a sequence model."""
from __future__ import annotations

import numpy as np

from .checks import block_width, relevance_maps, safe_ratio

__all__ = ["heatmap_entropy", "relevance_per_step"]


def heatmap_entropy(R, mode: str = "abs", normalize: bool = False) -> np.ndarray:
    """(N,) Shannon entropy H = -sum_i p_i ln p_i (nats) of p = a / sum(a), with a = |R| for
    ``mode="abs"`` or a = max(0, R) for ``mode="positive"`` (0 ln 0 = 0). ``normalize`` divides
    by ln(H*W), the entropy of a uniform map, giving values in [0, 1]. A map with no mass (all
    zero, or all negative with mode="positive") has entropy 0 by convention."""
    R = relevance_maps(R)
    if mode == "abs":
        a = np.abs(R)
    elif mode == "positive":
        a = np.maximum(R, 0)
    else:
        raise ValueError(f"mode must be 'abs' or 'positive', got {mode!r}")
    a = a.reshape(len(R), -1).astype(np.float64)
    p = safe_ratio(a, a.sum(axis=1, keepdims=True))
    plogp = p * np.log(p, out=np.zeros_like(p), where=p > 0)
    entropy = -plogp.sum(axis=1)
    return entropy / np.log(a.shape[1]) if normalize and a.shape[1] > 1 else entropy


def relevance_per_step(R, T: int, normalize: bool = False, clip_negative: bool = False) -> np.ndarray:
    """(N, T) relevance summed over each time step's input: step t sees columns
    [t*W/T, (t+1)*W/T) (THESIS section 2), so r_t = sum over those columns and all rows.
    ``clip_negative`` sums max(0, R) instead; ``normalize`` divides each row by its total over
    the steps (shares summing to 1; a row of total 0 stays 0)."""
    R = relevance_maps(R)
    n, height, width = R.shape
    cols = block_width(width, T, f"R of shape {R.shape} cut into T={T} steps")
    if clip_negative:
        R = np.maximum(R, 0)
    per_step = R.reshape(n, height, T, cols).sum(axis=(1, 3), dtype=np.float64)
    return safe_ratio(per_step, per_step.sum(axis=1, keepdims=True)) if normalize else per_step
