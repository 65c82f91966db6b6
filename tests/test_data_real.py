"""lrpnet.data on the real MNIST / FashionMNIST files (run with: LRPNET_DATA=... pytest -m realdata).

Skipped when the files are not in the data directory (``LRPNET_DATA`` or the user cache).
"""
import hashlib

import numpy as np
import pytest

from lrpnet.data import clear_cache, cv_folds, data_dir, load_source, load_task
from lrpnet.data import sources

DATASETS = ("mnist", "fashion-mnist")


def _have_files():
    return all((data_dir() / d / f).is_file() for d in DATASETS for f in sources.FILES.values())


pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(not _have_files(), reason="MNIST/FashionMNIST files not under LRPNET_DATA"),
]

SIZES = {"train": 48000, "val": 12000, "test": 10000}

# sha256 (first 16 hex digits) of the little-endian int64 ``sources`` arrays: splits and
# compositions must be identical on every machine (a change here means results are not comparable)
FINGERPRINTS = {
    ("mnist-maj", "train"): "c2f6f1b33e31a986",
    ("mnist-maj", "val"): "bcfbaac231ef8ca5",
    ("mnist-maj", "test"): "bccc06050cf0fea8",
    ("fashion-mnist-maj", "train"): "41df88983834f175",
    ("fashion-mnist-maj", "val"): "71e18e7aa87fb4b0",
    ("fashion-mnist-maj", "test"): "7b198def0c33f927",
    ("mnist-7", "test"): "1daaf4c86423263c",
}


def fingerprint(ds):
    return hashlib.sha256(ds.sources.astype("<i8").tobytes()).hexdigest()[:16]


@pytest.mark.parametrize("dataset", DATASETS)
def test_sources(dataset):
    source = load_source(dataset)
    assert source.images.shape == (70000, 28, 28) and source.images.dtype == np.uint8
    assert source.n_train == 60000
    counts = np.bincount(source.labels, minlength=10)
    assert counts.sum() == 70000 and counts.min() >= 6000  # every class well represented
    if dataset == "fashion-mnist":
        assert (counts == 7000).all()


@pytest.mark.parametrize("dataset", DATASETS)
def test_official_split_sizes_and_balance(dataset):
    source = load_source(dataset)
    train, val, test = (load_task(dataset, s) for s in SIZES)
    assert (len(train), len(val), len(test)) == tuple(SIZES.values())
    assert train.shape == (28, 28) and train.pixels.shape == (48000, 28, 28)
    official = np.bincount(source.labels[:60000], minlength=10)
    val_counts = np.bincount(val.labels, minlength=10)
    np.testing.assert_array_equal(np.bincount(train.labels, minlength=10) + val_counts, official)
    assert np.abs(val_counts - 0.2 * official).max() <= 1  # stratified
    np.testing.assert_array_equal(test.sources[:, 0], np.arange(60000, 70000))
    assert not set(train.sources[:, 0]) & set(val.sources[:, 0])


@pytest.mark.parametrize("name", ["mnist-maj", "fashion-mnist-maj", "mnist-3", "fashion-mnist-3",
                                  "mnist-7", "fashion-mnist-7"])
def test_combined_tasks(name):
    dataset = name.rsplit("-", 1)[0]
    for split, n in SIZES.items():
        ds = load_task(name, split)
        seq = load_task(dataset, split)
        assert len(ds) == n and ds.shape == (28, 28 * ds.n_blocks)
        # the label follows the anchor sample, so the class balance is that of the split
        np.testing.assert_array_equal(ds.labels, seq.labels)
        blocks = ds.block_labels  # classes read from the source labels, not from the task
        np.testing.assert_array_equal(ds.masks == 1, blocks == ds.labels[:, None])
        if name.endswith("-maj"):
            assert (ds.masks.sum(axis=1) == 2).all()
            patterns, counts = np.unique(ds.masks, axis=0, return_counts=True)
            assert len(patterns) == 3 and counts.min() > 0.3 * n  # positions shuffled uniformly
        else:
            assert (ds.masks[:, ds.n_blocks // 2] == 1).all() and (ds.masks.sum(axis=1) == 1).all()
        assert set(np.unique(ds.sources)) <= set(seq.sources[:, 0])  # partners from the same split


def test_determinism_and_fingerprints():
    first = {key: fingerprint(load_task(*key)) for key in FINGERPRINTS}
    clear_cache()
    second = {key: fingerprint(load_task(*key)) for key in FINGERPRINTS}
    assert first == second == FINGERPRINTS


def test_cv_folds():
    folds = cv_folds("mnist-maj", n_folds=7)
    source = load_source("mnist")
    total = np.bincount(source.labels, minlength=10)
    anchors = []
    for k, fold in enumerate(folds):
        assert (len(fold.train), len(fold.val), len(fold.test)) == (48000, 12000, 10000)
        seq_test = load_task("mnist", "test", fold=k).sources[:, 0]
        anchors.append(seq_test)
        assert np.abs(np.bincount(source.labels[seq_test], minlength=10) - total / 7).max() <= 1
        ids = [set(np.unique(getattr(fold, s).sources)) for s in ("train", "val", "test")]
        assert not ids[0] & ids[1] and not ids[0] & ids[2] and not ids[1] & ids[2]
        np.testing.assert_array_equal(fold.test.masks == 1, fold.test.block_labels == fold.test.labels[:, None])
    np.testing.assert_array_equal(np.sort(np.concatenate(anchors)), np.arange(70000))
