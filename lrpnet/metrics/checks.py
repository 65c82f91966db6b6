"""Shape and value checks shared by the metrics, and a division that maps x/0 to 0."""
from __future__ import annotations

import numpy as np


def relevance_maps(R, name: str = "R") -> np.ndarray:
    """R as a finite float array of shape (N, H, W); ValueError naming the bad shape or values."""
    R = np.asarray(R)
    if R.ndim != 3:
        raise ValueError(f"{name} must have shape (N, H, W), got {R.shape}")
    if not np.issubdtype(R.dtype, np.number) or np.issubdtype(R.dtype, np.complexfloating):
        raise TypeError(f"{name} must be a real-valued array, got dtype {R.dtype}")
    if not np.isfinite(R).all():
        raise ValueError(f"{name} contains NaN or inf ({np.count_nonzero(~np.isfinite(R))} values)")
    return R


def block_width(width: int, n_blocks: int, what: str) -> int:
    """Columns per block; ValueError unless ``n_blocks`` divides ``width``."""
    if n_blocks < 1 or width % n_blocks:
        raise ValueError(f"{what}: width {width} cannot be cut into {n_blocks} equal blocks")
    return width // n_blocks


def block_masks(masks, R: np.ndarray) -> np.ndarray:
    """masks as float64 (N, n_blocks) matching R's N and dividing R's width."""
    masks = np.asarray(masks, dtype=np.float64)
    if masks.ndim != 2 or masks.shape[0] != R.shape[0]:
        raise ValueError(f"masks must have shape (N, n_blocks) with N = {R.shape[0]} "
                         f"(R has shape {R.shape}), got {masks.shape}")
    block_width(R.shape[2], masks.shape[1], f"R of shape {R.shape} with masks {masks.shape}")
    return masks


def pixel_masks(pixel_mask, R: np.ndarray) -> np.ndarray:
    """A (N, H, W) boolean mask of R's shape."""
    pixel_mask = np.asarray(pixel_mask)
    if pixel_mask.shape != R.shape:
        raise ValueError(f"pixel_mask must have R's shape {R.shape}, got {pixel_mask.shape}")
    return pixel_mask.astype(bool)


def safe_ratio(num, den) -> np.ndarray:
    """num / den elementwise, 0 where den == 0 (no warning)."""
    num, den = np.broadcast_arrays(np.asarray(num, np.float64), np.asarray(den, np.float64))
    return np.divide(num, den, out=np.zeros(num.shape), where=den != 0)
