"""Pixel-level agreement with a ground-truth mask (Arras, Osman & Samek 2022, "CLEVR-XAI").

Relevance mass accuracy = (positive relevance inside the mask) / (positive relevance overall).
Relevance rank accuracy = the share of the K most relevant pixels that lie inside the mask, with K
the number of mask pixels.
"""
from __future__ import annotations

import numpy as np

from .checks import block_width, pixel_masks, relevance_maps, safe_ratio

__all__ = ["block_mask_to_pixels", "relevance_mass_accuracy", "relevance_rank_accuracy"]


def block_mask_to_pixels(masks, shape) -> np.ndarray:
    """(N, H, W) bool pixel mask from (N, n_blocks) block masks: every pixel of block b takes the
    value of m_b (> 0.5 counts as in). ``shape`` = (H, W), W divisible by n_blocks."""
    masks = np.asarray(masks)
    if masks.ndim != 2:
        raise ValueError(f"masks must have shape (N, n_blocks), got {masks.shape}")
    height, width = shape
    bw = block_width(width, masks.shape[1], f"shape {tuple(shape)} with masks {masks.shape}")
    columns = np.repeat(masks > 0.5, bw, axis=1)  # (N, W)
    return np.broadcast_to(columns[:, None, :], (masks.shape[0], height, width)).copy()


def relevance_mass_accuracy(R, pixel_mask) -> np.ndarray:
    """(N,) sum of max(0, R) over the mask pixels / sum of max(0, R) over all pixels; 0 where the
    map has no positive relevance."""
    R = relevance_maps(R)
    inside = pixel_masks(pixel_mask, R)
    positive = np.maximum(R, 0).astype(np.float64)
    return safe_ratio((positive * inside).sum(axis=(1, 2)), positive.sum(axis=(1, 2)))


def relevance_rank_accuracy(R, pixel_mask) -> np.ndarray:
    """(N,) |top-K pixels of R ∩ mask| / K with K = number of mask pixels of the sample; 0 where
    K = 0. Pixels are ranked by their (signed) relevance, highest first; equal values keep the
    row-major pixel order (stable sort), so ties are broken towards the top-left."""
    R = relevance_maps(R)
    inside = pixel_masks(pixel_mask, R).reshape(len(R), -1)
    order = np.argsort(-R.reshape(len(R), -1), axis=1, kind="stable")
    k = inside.sum(axis=1)
    in_top_k = np.arange(order.shape[1])[None, :] < k[:, None]
    hits = (np.take_along_axis(inside, order, axis=1) & in_top_k).sum(axis=1)
    return safe_ratio(hits, k)
