"""The tasks of the study (THESIS section 1), built from MNIST / FashionMNIST by name.

| task                            | blocks | label                 | mask                  |
|---------------------------------|--------|-----------------------|-----------------------|
| mnist, fashion-mnist            | 1      | the image's class     | none                  |
| mnist-maj, fashion-mnist-maj    | 3      | the majority class c  | the two blocks of c   |
| mnist-3, fashion-mnist-3        | 3      | the middle block's    | the middle block      |
| mnist-7, fashion-mnist-7        | 7      | the middle block's    | the middle block      |

Every source sample of a split yields one task sample (so the sizes are those of the splits) and
is the block that carries the label:
- MAJ: the sample (class c), one more sample of class c drawn with replacement from the same split
  (possibly the sample itself), one sample of another class (uniform over the split's samples of
  classes != c); the three are put in a random order, and the mask marks the two blocks of class c.
- 3 / 7: the sample in the middle; every other block is drawn independently, uniformly over the
  split's samples of classes != c (two side blocks may share a class with each other).
Partners always come from the same split, so no train image appears in a val or test sample.

Splits (``lrpnet.data.splits``; all seeds derive from ``SEED`` = 2018):
- official: the 60,000 official train samples split 80/20 stratified into 48,000 train and 12,000
  val (seed ``("split", dataset)``), and the 10,000 official test samples;
- cross-validation: 7 stratified folds over all 70,000 samples (StratifiedKFold, shuffle,
  random_state=SEED); fold k: test = fold k, and the other 60,000 split 80/20 stratified into
  train / val (seed ``("cv-split", dataset, n_folds, k)``);
- the thesis code's cross-validation (``cv="thesis"``, ``splits.thesis_folds``): StratifiedKFold(7,
  seed 71) over train, validation and test stacked; fold k trains on the other 60,000 samples, and
  its 10,000 test samples are also its validation set (the same composed samples).
The base splits depend on the dataset only, so all tasks of a dataset share them; the partners of
a combined task are drawn with seed ``("compose", task, split, scheme)``.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from .dataset import Dataset
from .sources import data_dir as resolve_dir
from .sources import clear_cache as clear_source_cache
from .sources import load_source
from .splits import SEED, seed_sequence, stratified_folds, stratified_split, thesis_folds

__all__ = ["TASKS", "Task", "Fold", "task_names", "load_task", "cv_folds", "compose", "clear_cache"]

SPLITS = ("train", "val", "test")
CV_SCHEMES = ("lrpnet", "thesis")    # how folds are cut (module docstring)
VAL_FRACTION = 0.2


class Task(NamedTuple):
    dataset: str   # "mnist" or "fashion-mnist"
    kind: str      # "sequential", "maj" or "middle"
    n_blocks: int


TASKS = {}
for _dataset in ("mnist", "fashion-mnist"):
    TASKS[_dataset] = Task(_dataset, "sequential", 1)
    TASKS[f"{_dataset}-maj"] = Task(_dataset, "maj", 3)
    TASKS[f"{_dataset}-3"] = Task(_dataset, "middle", 3)
    TASKS[f"{_dataset}-7"] = Task(_dataset, "middle", 7)


class Fold(NamedTuple):
    """One cross-validation fold: its train, val and test datasets."""

    train: Dataset
    val: Dataset
    test: Dataset


def task_names() -> list:
    """The names accepted by load_task."""
    return list(TASKS)


def _task(name: str) -> Task:
    try:
        return TASKS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown task {name!r}; valid names: {', '.join(TASKS)}") from None


def _draw_other_class(labels, n_draws, rng):
    """(N, n_draws) indices of samples whose class differs from ``labels[i]``, uniformly over
    those samples. Samples are sorted by class; the class-c samples occupy a contiguous run
    [start_c, start_c + n_c), so a uniform j in [0, N - n_c) maps to j, or j + n_c past the run."""
    order = np.argsort(labels, kind="stable")
    counts = np.bincount(labels, minlength=10)
    start = np.cumsum(counts) - counts
    n_c, s_c = counts[labels][:, None], start[labels][:, None]
    j = rng.integers(0, len(labels) - n_c, size=(len(labels), n_draws))
    return order[np.where(j < s_c, j, j + n_c)]


def _draw_same_class(labels, rng):
    """(N,) index of a sample of the same class as each sample, uniformly, with replacement."""
    order = np.argsort(labels, kind="stable")
    counts = np.bincount(labels, minlength=10)
    start = np.cumsum(counts) - counts
    return order[start[labels] + rng.integers(0, counts[labels])]


def compose(labels, kind: str, n_blocks: int, rng):
    """The blocks of every sample of a split, as positions into the split.

    labels: (N,) classes of the split's source samples. Returns ``(blocks, masks)``: blocks (N,
    n_blocks) int64 where row i holds sample i in its labelled position, masks (N, n_blocks)
    float32 (None for "sequential"). See the module docstring for the rules.
    """
    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    own = np.arange(n)
    if kind == "sequential":
        return own[:, None], None
    if n and np.unique(labels).size < 2:
        raise ValueError(f"task kind {kind!r} needs samples of at least two classes in a split")
    if kind == "maj":
        members = np.stack([own, _draw_same_class(labels, rng), _draw_other_class(labels, 1, rng)[:, 0]], 1)
        # a random order of the three members per sample: position b holds members[order[b]]
        order = np.argsort(rng.random((n, 3)), axis=1)
        return np.take_along_axis(members, order, axis=1), (order < 2).astype(np.float32)
    if kind == "middle":
        mid = n_blocks // 2
        blocks = _draw_other_class(labels, n_blocks, rng)
        blocks[:, mid] = own
        masks = np.zeros((n, n_blocks), np.float32)
        masks[:, mid] = 1.0
        return blocks, masks
    raise ValueError(f"unknown task kind {kind!r}; expected 'sequential', 'maj' or 'middle'")


@functools.lru_cache(maxsize=8)
def _cv_tests(dataset: str, root: str, n_folds: int, cv: str = "lrpnet"):
    """The test indices of each fold (cached: StratifiedKFold over 70,000 labels takes a while)."""
    source = load_source(dataset, root, download_missing=False)
    if cv == "thesis":
        return tuple(thesis_folds(source.labels, source.n_train, n_folds))
    return tuple(stratified_folds(source.labels, n_folds, seed=SEED))


def _split_indices(dataset, source, root, fold, n_folds, cv="lrpnet"):
    """{"train", "val", "test"} -> sorted indices into the source arrays."""
    if fold is None:
        train_val = np.arange(source.n_train)
        test = np.arange(source.n_train, len(source.labels))
        seed = seed_sequence("split", dataset)
    else:
        if n_folds < 2:
            raise ValueError(f"n_folds must be >= 2, got {n_folds}")
        if not 0 <= fold < n_folds:
            raise ValueError(f"fold {fold} outside 0..{n_folds - 1} for n_folds={n_folds}")
        tests = _cv_tests(dataset, root, n_folds, cv)
        test = tests[fold]
        train_val = np.setdiff1d(np.arange(len(source.labels)), test, assume_unique=True)
        if cv == "thesis":                   # no validation split: the test fold is also the val set
            return {"train": train_val, "val": test, "test": test}
        seed = seed_sequence("cv-split", dataset, n_folds, fold)
    rest, held = stratified_split(source.labels[train_val], VAL_FRACTION, seed)
    return {"train": train_val[rest], "val": train_val[held], "test": test}


def _build(name, split, source, indices, fold, n_folds, cv="lrpnet") -> Dataset:
    task = _task(name)
    scheme = "official" if fold is None else f"cv{n_folds}-{fold}" if cv == "lrpnet" else f"thesis-cv{n_folds}-{fold}"
    drawn_as = "test" if fold is not None and cv == "thesis" and split == "val" else split   # val = test
    rng = np.random.default_rng(seed_sequence("compose", name, drawn_as, scheme))
    blocks, masks = compose(source.labels[indices], task.kind, task.n_blocks, rng)
    return Dataset(name, split, source.images, source.labels, indices[blocks],
                   source.labels[indices], masks, fold)


def load_task(name: str, split: str = "train", data_dir=None, *, fold: int | None = None,
              n_folds: int = 7, download: bool = True, cv: str = "lrpnet") -> Dataset:
    """One split ("train", "val" or "test") of task ``name`` (see ``task_names()``).

    data_dir: the data directory (default ``LRPNET_DATA`` or the user cache, see ``data_dir()``).
    fold:     None for the official split (48,000 / 12,000 / 10,000), else a cross-validation fold
              0..n_folds-1 (train / val / test = 48,000 / 12,000 / 10,000 for n_folds=7).
    download: fetch missing files from the official mirrors (else fail with DataNotFoundError).
    cv:       how folds are cut: "lrpnet" or "thesis" (60,000 / 10,000 / the same 10,000; module docstring).
    """
    task = _task(name)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    if cv not in CV_SCHEMES:
        raise ValueError(f"unknown cross-validation scheme {cv!r}; expected one of {CV_SCHEMES}")
    source = load_source(task.dataset, data_dir, download_missing=download)
    root = str(resolve_dir(data_dir).resolve())
    indices = _split_indices(task.dataset, source, root, fold, n_folds, cv)[split]
    return _build(name, split, source, indices, fold, n_folds, cv)


def cv_folds(name: str, n_folds: int = 7, data_dir=None, *, download: bool = True, cv: str = "lrpnet") -> list:
    """The ``n_folds`` cross-validation folds of task ``name``: a list of ``Fold(train, val,
    test)``; ``cv_folds(name)[k].test`` equals ``load_task(name, "test", fold=k)``."""
    task = _task(name)
    if n_folds < 2:
        raise ValueError(f"n_folds must be >= 2, got {n_folds}")
    if cv not in CV_SCHEMES:
        raise ValueError(f"unknown cross-validation scheme {cv!r}; expected one of {CV_SCHEMES}")
    source = load_source(task.dataset, data_dir, download_missing=download)
    root = str(resolve_dir(data_dir).resolve())
    folds = []
    for k in range(n_folds):
        indices = _split_indices(task.dataset, source, root, k, n_folds, cv)
        folds.append(Fold(*(_build(name, s, source, indices[s], k, n_folds, cv) for s in SPLITS)))
    return folds


def clear_cache() -> None:
    """Forget the cached source arrays and fold assignments (e.g. after replacing the files)."""
    clear_source_cache()
    _cv_tests.cache_clear()
