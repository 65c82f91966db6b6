"""Deterministic, stratified splits of sample indices.

Every random choice of the data layer draws from ``numpy.random.default_rng(seed_sequence(...))``
where the seed sequence is built from fixed integers and CRC-32 codes of names (never Python's
``hash()``, which changes between processes), so splits and compositions are the same on every
run and machine for a given NumPy version.
"""
from __future__ import annotations

import zlib

import numpy as np

__all__ = ["SEED", "THESIS_SEED", "seed_sequence", "stratified_split", "stratified_folds", "thesis_folds"]

SEED = 2018  # the root of every seed in lrpnet.data (the thesis's year)
THESIS_SEED = 71  # the seed of the thesis's own code (THESIS.md section 7)


def seed_sequence(*parts) -> np.random.SeedSequence:
    """A SeedSequence from SEED and ``parts`` (ints, or strings mapped through CRC-32)."""
    words = [SEED]
    for part in parts:
        words.append(zlib.crc32(part.encode()) if isinstance(part, str) else int(part))
    return np.random.SeedSequence(words)


def stratified_split(labels, fraction: float, seed: np.random.SeedSequence):
    """Split ``range(len(labels))`` into (rest, held_out), holding out ``fraction`` of each class.

    The held-out count of class c is floor(fraction * n_c), plus one for the classes with the
    largest remainders until the total is round(fraction * N) (ties: the smaller class label), so
    60,000 MNIST samples give exactly 48,000 / 12,000. Inside a class the held-out samples are a
    uniformly random subset. Both index arrays are returned sorted ascending.
    """
    labels = np.asarray(labels)
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    classes, counts = np.unique(labels, return_counts=True)
    exact = fraction * counts
    take = np.floor(exact).astype(np.int64)
    short = int(round(fraction * len(labels))) - int(take.sum())
    take[np.argsort(-(exact - take), kind="stable")[:short]] += 1
    rng = np.random.default_rng(seed)
    held = [rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, take)]
    held = np.sort(np.concatenate(held)) if held else np.empty(0, np.int64)
    rest = np.setdiff1d(np.arange(len(labels)), held, assume_unique=True)
    return rest, held


def stratified_folds(labels, n_folds: int, seed: int):
    """The test index arrays of ``n_folds`` stratified folds (sklearn StratifiedKFold, shuffled,
    ``random_state=seed``), each sorted ascending."""
    from sklearn.model_selection import StratifiedKFold  # heavy import, only for CV

    labels = np.asarray(labels)
    kfold = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return [np.sort(test) for _, test in kfold.split(np.zeros(len(labels)), labels)]


def thesis_folds(labels, n_train: int, n_folds: int = 7, seed: int = THESIS_SEED):
    """The test index arrays (into ``labels``, each sorted ascending) of the thesis code's
    cross-validation (THESIS.md section 7), for source labels ordered official train (the first
    ``n_train``) then official test.

    The code split the official train set unstratified into 80% train / 20% validation
    (``train_test_split(test_size=0.2, random_state=71)``), stacked train, validation and test (70,000
    samples for MNIST) in that order and cut the stack with ``StratifiedKFold(7, shuffle=True,
    random_state=71)``; each fold trains on the other 60,000 samples and its 10,000 test samples
    double as the validation set. The same calls, in the same order, on the same labels, give the
    same folds as the code's for the scikit-learn release that runs here: StratifiedKFold assigns
    folds differently since scikit-learn 0.22 (the thesis ran an older release), so the folds follow
    its scheme and seed but are not bit-identical to its folds.
    """
    from sklearn.model_selection import StratifiedKFold, train_test_split  # heavy import, only for CV

    labels = np.asarray(labels)
    if not 0 < n_train <= len(labels):
        raise ValueError(f"n_train must be in (0, {len(labels)}], got {n_train}")
    train, val = train_test_split(np.arange(n_train), test_size=0.2, random_state=seed)
    stacked = np.concatenate([train, val, np.arange(n_train, len(labels))])
    kfold = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return [np.sort(stacked[test]) for _, test in kfold.split(np.zeros(len(stacked)), labels[stacked])]
