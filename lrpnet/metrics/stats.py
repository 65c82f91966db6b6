"""Means with Student-t confidence intervals, per test set and over cross-validation folds."""
from __future__ import annotations

import numpy as np

__all__ = ["mean_ci", "fold_mean_ci"]


def mean_ci(values, axis: int = 0, level: float = 0.95):
    """(mean, half_width) of ``values`` along ``axis``: the interval is mean ± half_width with

        half_width = t_{(1+level)/2, n-1} * s / sqrt(n),   s = sample std (ddof=1).

    With a single value the half width is NaN (the spread is unknown; no warning is raised).
    Scalars for 1-D input, arrays for higher dimensions."""
    from scipy.stats import t

    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 0:
        raise ValueError("mean_ci needs an array of values, got a scalar")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    n = values.shape[axis]
    if n == 0:
        raise ValueError(f"mean_ci needs at least one value along axis {axis}, got shape {values.shape}")
    mean = values.mean(axis=axis)
    if n == 1:
        return mean, np.full_like(mean, np.nan)[()]
    half = t.ppf((1.0 + level) / 2.0, n - 1) * values.std(axis=axis, ddof=1) / np.sqrt(n)
    return mean, half


def fold_mean_ci(fold_values, level: float = 0.95):
    """(mean, half_width) over cross-validation folds: the mean of the fold means, with a
    Student-t interval over the n_folds fold means (each fold weighs the same).

    fold_values: a sequence with one entry per fold, each a scalar (the fold's mean score) or an
    array of that fold's per-sample scores."""
    means = np.array([np.mean(np.asarray(v, dtype=np.float64)) for v in fold_values])
    if means.size == 0:
        raise ValueError("fold_mean_ci needs at least one fold")
    return mean_ci(means, level=level)
