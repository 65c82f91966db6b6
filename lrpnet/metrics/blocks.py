"""Block-level agreement of a relevance map with the ground-truth blocks (THESIS section 5).

A sample of width W = 28 * n_blocks holds n_blocks 28x28 blocks side by side; the mask says which
blocks carry the label (e.g. (1, 0, 1) for MAJ). For LRP, negative relevance is set to zero
before summing (``clip_negative=True``).
"""
from __future__ import annotations

import numpy as np

from .checks import block_masks, block_width, relevance_maps, safe_ratio

__all__ = ["block_relevance", "cosine_similarity", "relevance_in_mask"]


def block_relevance(R, n_blocks: int, clip_negative: bool = True) -> np.ndarray:
    """(N, n_blocks) relevance summed over each block: v_b = sum_{i, j in block b} R_ij
    (R_ij replaced by max(0, R_ij) when ``clip_negative``). R: (N, H, W), W divisible by n_blocks."""
    R = relevance_maps(R)
    n, height, width = R.shape
    bw = block_width(width, n_blocks, f"R of shape {R.shape}")
    if clip_negative:
        R = np.maximum(R, 0)
    return R.reshape(n, height, n_blocks, bw).sum(axis=(1, 3), dtype=np.float64)


def cosine_similarity(R, masks, clip_negative: bool = True) -> np.ndarray:
    """(N,) cos(m, v) = <m, v> / (|m| |v|) between each mask m (N, n_blocks) and the block
    relevance v = block_relevance(R, n_blocks, clip_negative); 0 where v (or m) is the zero vector."""
    R = relevance_maps(R)
    masks = block_masks(masks, R)
    v = block_relevance(R, masks.shape[1], clip_negative)
    top = np.abs(v).max(axis=1, keepdims=True)     # cos is scale-free: divide by the largest entry
    v = v / np.where(top > 0, top, 1)              # first, so that |v| neither underflows nor overflows
    norms = np.linalg.norm(v, axis=1) * np.linalg.norm(masks, axis=1)
    return safe_ratio((v * masks).sum(axis=1), norms)


def relevance_in_mask(R, masks, clip_negative: bool = True) -> np.ndarray:
    """(N,) share of the relevance inside the mask blocks: sum_b m_b v_b / sum_b v_b with v the
    block relevance (positive part when ``clip_negative``); 0 where the total is 0. Without
    clipping, a total near zero or negative makes the share meaningless: keep clipping for LRP."""
    R = relevance_maps(R)
    masks = block_masks(masks, R)
    v = block_relevance(R, masks.shape[1], clip_negative)
    return safe_ratio((v * masks).sum(axis=1), v.sum(axis=1))
