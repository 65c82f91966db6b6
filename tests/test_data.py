"""lrpnet.data on tiny synthetic idx files: format, checksums, downloads, tasks, splits, folds."""
import gzip
import urllib.error

import numpy as np
import pytest

from lrpnet.data import (DataError, DataNotFoundError, Dataset, clear_cache, cv_folds, data_dir,
                         load_source, load_task, read_idx, scale_pixels, task_names, write_idx)
from lrpnet.data import sources

N_TRAIN, N_TEST = 300, 70  # 30 / 7 per class


def fake_images(labels, offset):
    """28x28 uint8 images that carry their own index (pixels [0,0], [0,1]) and class ([1,0])."""
    n = len(labels)
    images = np.random.default_rng(offset).integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    index = np.arange(offset, offset + n)
    images[:, 0, 0], images[:, 0, 1], images[:, 1, 0] = index % 256, index // 256, labels
    return images


def write_fake_dataset(folder, n_train=N_TRAIN, n_test=N_TEST):
    """The four idx files of a fake dataset in ``folder``; returns their uncompressed sha256s."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    train_labels = rng.permutation(np.arange(n_train) % 10).astype(np.uint8)
    test_labels = rng.permutation(np.arange(n_test) % 10).astype(np.uint8)
    arrays = {
        "train-images-idx3-ubyte": fake_images(train_labels, 0),
        "train-labels-idx1-ubyte": train_labels,
        "t10k-images-idx3-ubyte": fake_images(test_labels, n_train),
        "t10k-labels-idx1-ubyte": test_labels,
    }
    return {name: write_idx(folder / f"{name}.gz", array) for name, array in arrays.items()}


@pytest.fixture
def root(tmp_path, monkeypatch):
    """A data directory with fake mnist and fashion-mnist, their checksums patched in."""
    for dataset in ("mnist", "fashion-mnist"):
        monkeypatch.setitem(sources.SHA256, dataset, write_fake_dataset(tmp_path / dataset))
    monkeypatch.setenv("LRPNET_DATA", str(tmp_path))
    yield tmp_path
    clear_cache()


# ---------------------------------------------------------------- idx format

def test_idx_round_trip(tmp_path):
    for array in (np.arange(24, dtype=np.uint8).reshape(2, 3, 4), np.array([-5, 7, 1 << 20], np.int32)):
        sha = write_idx(tmp_path / "a.gz", array)
        back = read_idx(tmp_path / "a.gz", sha256=sha)
        np.testing.assert_array_equal(back, array)
        assert back.dtype.isnative and not back.flags.writeable


def test_idx_checksum_mismatch_names_file(tmp_path):
    write_idx(tmp_path / "a.gz", np.zeros((2, 2), np.uint8))
    with pytest.raises(DataError, match=r"a\.gz.*sha256.*expected 0+"):
        read_idx(tmp_path / "a.gz", sha256="0" * 64)


def test_idx_truncated_gzip(tmp_path):
    write_idx(tmp_path / "a.gz", np.arange(5000, dtype=np.uint8).reshape(50, 100))
    raw = (tmp_path / "a.gz").read_bytes()
    (tmp_path / "cut.gz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match=r"cut\.gz: corrupt or truncated gzip"):
        read_idx(tmp_path / "cut.gz")


def test_idx_not_gzip(tmp_path):
    (tmp_path / "junk.gz").write_bytes(b"this is not gzip data at all")
    with pytest.raises(DataError, match=r"junk\.gz: corrupt or truncated gzip"):
        read_idx(tmp_path / "junk.gz")


def test_idx_bad_magic(tmp_path):
    (tmp_path / "m.gz").write_bytes(gzip.compress(b"\x12\x34\x08\x01" + b"\x00" * 8))
    with pytest.raises(DataError, match=r"m\.gz: bad idx magic number 0x12340801"):
        read_idx(tmp_path / "m.gz")
    write_idx(tmp_path / "labels.gz", np.zeros(3, np.uint8))  # valid, but labels, not images
    with pytest.raises(DataError, match=r"magic number 0x00000801, expected 0x00000803"):
        read_idx(tmp_path / "labels.gz", magic=0x00000803)


def test_idx_short_and_long_data(tmp_path):
    header = b"\x00\x00\x08\x01" + (10).to_bytes(4, "big")
    (tmp_path / "short.gz").write_bytes(gzip.compress(header + b"\x01" * 4))
    with pytest.raises(DataError, match=r"short\.gz: truncated idx file"):
        read_idx(tmp_path / "short.gz")
    (tmp_path / "long.gz").write_bytes(gzip.compress(header + b"\x01" * 11))
    with pytest.raises(DataError, match=r"long\.gz: idx file is longer"):
        read_idx(tmp_path / "long.gz")


# ---------------------------------------------------------------- files and downloads

def test_data_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("LRPNET_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert data_dir() == tmp_path / "env"
    monkeypatch.delenv("LRPNET_DATA")
    assert data_dir() == tmp_path / "xdg" / "lrpnet"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data_dir() == tmp_path / "home" / ".cache" / "lrpnet"


def test_missing_directory_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("LRPNET_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(DataNotFoundError, match=r"nowhere \(LRPNET_DATA\) does not exist.*train-images-idx3-ubyte\.gz"):
        load_task("mnist", "train")
    with pytest.raises(FileNotFoundError, match="data_dir argument"):
        load_task("mnist", "train", data_dir=tmp_path / "elsewhere")


def _offline(url, timeout=None):
    raise urllib.error.URLError("[Errno -2] Name or service not known")


def test_offline_without_files_fails_fast_naming_lrpnet_data(monkeypatch, tmp_path):
    monkeypatch.setattr("urllib.request.urlopen", _offline)
    monkeypatch.setattr(sources.time, "sleep", lambda s: None)
    monkeypatch.setenv("LRPNET_DATA", str(tmp_path))
    with pytest.raises(DataNotFoundError) as err:
        load_task("fashion-mnist-maj", "test")
    message = str(err.value)
    assert "LRPNET_DATA" in message and "download failed" in message
    for name in sources.FILES.values():
        assert name in message
    assert not any(tmp_path.rglob("*.part"))
    with pytest.raises(DataNotFoundError, match="files missing"):
        load_task("mnist", "test", download=False)


def test_download_success_from_file_url(tmp_path):
    sha = write_idx(tmp_path / "remote.gz", np.arange(10, dtype=np.uint8))
    dest = sources.download([(tmp_path / "remote.gz").as_uri()], tmp_path / "local" / "x.gz", sha,
                            progress=False)
    np.testing.assert_array_equal(read_idx(dest, sha), np.arange(10))
    assert sorted(p.name for p in dest.parent.iterdir()) == ["x.gz"]  # no temporary file left


def test_download_retries_then_succeeds(tmp_path):
    import urllib.request

    sha = write_idx(tmp_path / "remote.gz", np.arange(10, dtype=np.uint8))
    calls = []

    def flaky(url, timeout=None):
        calls.append(url)
        if len(calls) == 1:
            raise TimeoutError("timed out")
        return urllib.request.urlopen(url, timeout=timeout)

    url = (tmp_path / "remote.gz").as_uri()
    dest = sources.download([url], tmp_path / "x.gz", sha, opener=flaky, backoff_s=0, progress=False)
    assert calls == [url, url] and dest.is_file()


def test_download_next_mirror_after_failures(tmp_path):
    sha = write_idx(tmp_path / "remote.gz", np.arange(10, dtype=np.uint8))
    urls = [(tmp_path / "absent.gz").as_uri(), (tmp_path / "remote.gz").as_uri()]
    dest = sources.download(urls, tmp_path / "x.gz", sha, backoff_s=0, progress=False)
    assert dest.is_file()


def test_download_checksum_failure_leaves_nothing(tmp_path):
    write_idx(tmp_path / "remote.gz", np.arange(10, dtype=np.uint8))
    (tmp_path / "out").mkdir()
    with pytest.raises(DataError, match=r"x\.gz: no mirror delivered.*expected 0+"):
        sources.download([(tmp_path / "remote.gz").as_uri()], tmp_path / "out" / "x.gz", "0" * 64,
                         backoff_s=0, progress=False)
    assert list((tmp_path / "out").iterdir()) == []


def test_missing_files_are_downloaded_from_mirrors(monkeypatch, tmp_path):
    sums = write_fake_dataset(tmp_path / "mirror")
    monkeypatch.setitem(sources.SHA256, "mnist", sums)
    monkeypatch.setitem(sources.MIRRORS, "mnist", ((tmp_path / "mirror").as_uri() + "/",))
    (tmp_path / "data").mkdir()
    ds = load_task("mnist", "test", data_dir=tmp_path / "data")
    assert len(ds) == N_TEST
    assert sorted(p.name for p in (tmp_path / "data" / "mnist").iterdir()) == sorted(sources.FILES.values())
    clear_cache()


def test_corrupt_file_in_data_dir_is_refused(root):
    path = root / "mnist" / "train-labels-idx1-ubyte.gz"
    labels = read_idx(path).copy()
    labels[0] = (labels[0] + 1) % 10
    write_idx(path, labels)  # valid idx, wrong content
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz: sha256"):
        load_task("mnist", "train")


def test_source_is_cached_and_read_only(root):
    a, b = load_source("mnist"), load_source("mnist")
    assert a is b
    assert a.images.shape == (N_TRAIN + N_TEST, 28, 28) and a.n_train == N_TRAIN
    assert not a.images.flags.writeable and not a.labels.flags.writeable
    with pytest.raises(ValueError, match="unknown dataset 'kmnist'"):
        load_source("kmnist")


# ---------------------------------------------------------------- tasks

def test_task_names_and_unknown_names(root):
    assert task_names() == ["mnist", "mnist-maj", "mnist-3", "mnist-7",
                            "fashion-mnist", "fashion-mnist-maj", "fashion-mnist-3", "fashion-mnist-7"]
    with pytest.raises(ValueError, match=r"unknown task 'mnist-5'; valid names: mnist, mnist-maj"):
        load_task("mnist-5")
    with pytest.raises(ValueError, match=r"unknown split 'dev'"):
        load_task("mnist", "dev")


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_sequential_splits(root, name):
    train, val, test = (load_task(name, s) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (240, 60, 70)
    assert train.n_blocks == 1 and train.shape == (28, 28) and train.masks is None and train.n_classes == 10
    source = load_source(name)
    ids = {s: ds.sources[:, 0] for s, ds in (("train", train), ("val", val), ("test", test))}
    assert np.array_equal(np.sort(np.concatenate([ids["train"], ids["val"]])), np.arange(N_TRAIN))
    assert np.array_equal(ids["test"], np.arange(N_TRAIN, N_TRAIN + N_TEST))
    np.testing.assert_array_equal(np.bincount(val.labels), np.full(10, 6))  # stratified 20%
    np.testing.assert_array_equal(train.labels, source.labels[ids["train"]])
    np.testing.assert_array_equal(train.pixels, source.images[ids["train"]])


@pytest.mark.parametrize("name", ["mnist-maj", "fashion-mnist-maj"])
def test_maj_task(root, name):
    seq = {s: set(load_task(name.replace("-maj", ""), s).sources[:, 0].tolist()) for s in ("train", "val", "test")}
    for split, n in (("train", 240), ("val", 60), ("test", 70)):
        ds = load_task(name, split)
        assert len(ds) == n and ds.n_blocks == 3 and ds.shape == (28, 84)
        assert ds.masks.dtype == np.float32 and ds.labels.dtype == np.int64
        blocks = ds.block_labels
        # the label is the majority class, the mask marks exactly its two blocks
        np.testing.assert_array_equal(ds.masks, (blocks == ds.labels[:, None]).astype(np.float32))
        assert (ds.masks.sum(axis=1) == 2).all()
        # the block of the other class really is from another class
        assert (blocks[ds.masks == 0] != ds.labels).all()
        # partners are drawn from the same split only
        assert set(ds.sources.ravel().tolist()) <= seq[split]
        if split == "train":  # all three mask patterns occur
            assert {tuple(m) for m in ds.masks.astype(int)} == {(1, 1, 0), (1, 0, 1), (0, 1, 1)}


def test_maj_contains_every_source_sample_once_as_anchor(root):
    """Row i of a task is built around source sample i of the split (here: the sequential order)."""
    seq = load_task("mnist", "train").sources[:, 0]
    ds = load_task("mnist-maj", "train")
    anchor_in_row = (ds.sources == seq[:, None]) & (ds.masks == 1)
    assert anchor_in_row.any(axis=1).all()


@pytest.mark.parametrize("name,n_blocks", [("mnist-3", 3), ("fashion-mnist-3", 3), ("mnist-7", 7), ("fashion-mnist-7", 7)])
def test_middle_tasks(root, name, n_blocks):
    dataset = name.rsplit("-", 1)[0]
    for split in ("train", "val", "test"):
        seq = load_task(dataset, split).sources[:, 0]
        ds = load_task(name, split)
        mid = n_blocks // 2
        assert ds.n_blocks == n_blocks and ds.shape == (28, 28 * n_blocks) and len(ds) == len(seq)
        np.testing.assert_array_equal(ds.sources[:, mid], seq)
        np.testing.assert_array_equal(ds.labels, ds.block_labels[:, mid])
        others = np.delete(ds.block_labels, mid, axis=1)
        assert (others != ds.labels[:, None]).all()  # every side block from another class
        expected_mask = np.zeros(n_blocks, np.float32)
        expected_mask[mid] = 1
        assert (ds.masks == expected_mask).all()
        assert set(ds.sources.ravel().tolist()) <= set(seq.tolist())


def test_tasks_are_deterministic_and_distinct(root):
    first = load_task("mnist-maj", "train")
    clear_cache()
    second = load_task("mnist-maj", "train")
    assert first.source_images is not second.source_images  # really re-read
    np.testing.assert_array_equal(first.sources, second.sources)
    np.testing.assert_array_equal(first.masks, second.masks)
    assert not np.array_equal(first.sources, load_task("mnist-3", "train").sources)
    assert not np.array_equal(first.sources, load_task("mnist-maj", "test").sources)


def test_pixels_images_and_scaling(root):
    ds = load_task("mnist-maj", "val")
    source = load_source("mnist")
    for b in range(3):
        np.testing.assert_array_equal(ds.pixels[:, :, 28 * b:28 * (b + 1)], source.images[ds.sources[:, b]])
    x = ds.images()
    assert x.dtype == np.float32 and x.shape == (60, 28, 84)
    np.testing.assert_allclose(x, 2 * ds.pixels.astype(np.float64) / 255 - 1, atol=1e-7)
    assert ds.images(3).shape == (28, 84)
    np.testing.assert_array_equal(ds.images([3, 5]), x[[3, 5]])
    np.testing.assert_array_equal(ds.images(slice(10, 12)), x[10:12])
    np.testing.assert_array_equal(scale_pixels(np.array([0, 255], np.uint8)), [-1.0, 1.0])
    with pytest.raises(TypeError, match="uint8"):
        scale_pixels(np.array([0.5]))


def test_batches(root):
    ds = load_task("mnist-3", "train")
    x_all = ds.images()
    seen = []
    for images, labels, index in ds.batches(64, seed=3, epoch=0, return_index=True):
        assert images.dtype == np.float32 and len(images) == len(labels) <= 64
        np.testing.assert_array_equal(images, x_all[index])
        np.testing.assert_array_equal(labels, ds.labels[index])
        seen.append(index)
    order = np.concatenate(seen)
    assert sorted(order) == list(range(len(ds))) and not np.array_equal(order, np.arange(len(ds)))
    again = np.concatenate([i for _, _, i in ds.batches(64, seed=3, epoch=0, return_index=True)])
    other = np.concatenate([i for _, _, i in ds.batches(64, seed=3, epoch=1, return_index=True)])
    assert np.array_equal(order, again) and not np.array_equal(order, other)
    plain = np.concatenate([i for _, _, i in ds.batches(100, shuffle=False, return_index=True)])
    assert np.array_equal(plain, np.arange(len(ds)))
    assert [len(b[0]) for b in ds.batches(100, drop_last=True)] == [100, 100]
    with pytest.raises(ValueError, match="batch_size"):
        next(ds.batches(0))


def test_subset(root):
    ds = load_task("mnist-7", "test")
    small = ds.subset(5)
    assert isinstance(small, Dataset) and len(small) == 5 and small.n_blocks == 7
    np.testing.assert_array_equal(small.images(), ds.images(slice(0, 5)))
    picked = ds.subset(np.array([4, 2]))
    np.testing.assert_array_equal(picked.labels, ds.labels[[4, 2]])
    np.testing.assert_array_equal(picked.masks, ds.masks[[4, 2]])
    with pytest.raises(ValueError, match="subset size 999"):
        ds.subset(999)


def test_cv_folds(root):
    folds = cv_folds("mnist-maj", n_folds=7)
    assert len(folds) == 7
    n_total = N_TRAIN + N_TEST
    anchors = [set(load_task("mnist", "test", fold=k).sources[:, 0].tolist()) for k in range(7)]
    assert sum(len(a) for a in anchors) == n_total and set().union(*anchors) == set(range(n_total))
    for k, fold in enumerate(folds):
        assert len(fold.test) in (52, 53)
        assert len(fold.train) + len(fold.val) + len(fold.test) == n_total
        assert abs(len(fold.val) - 0.2 * (n_total - len(fold.test))) <= 1
        assert fold.train.fold == k and fold.test.split == "test"
        ids = {s: set(getattr(fold, s).sources.ravel().tolist()) for s in ("train", "val", "test")}
        assert not ids["train"] & ids["val"] and not ids["train"] & ids["test"] and not ids["val"] & ids["test"]
        assert ids["test"] == anchors[k]
        np.testing.assert_array_equal(load_task("mnist-maj", "test", fold=k).sources, fold.test.sources)
    with pytest.raises(ValueError, match="fold 7 outside 0..6"):
        load_task("mnist", "test", fold=7)


def test_show_renders_png(root, tmp_path):
    from lrpnet.data import show

    out = tmp_path / "maj.png"
    assert show.main(["mnist-maj", "--n", "3", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_default_cache_dir_offline(monkeypatch, tmp_path):
    """Without LRPNET_DATA the user cache dir is created, and offline the error says what to do."""
    monkeypatch.delenv("LRPNET_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr("urllib.request.urlopen", _offline)
    monkeypatch.setattr(sources.time, "sleep", lambda s: None)
    with pytest.raises(DataNotFoundError, match=r"Set LRPNET_DATA.*xdg/lrpnet/mnist/t10k-labels-idx1-ubyte\.gz"):
        load_task("mnist-7", "val")
    assert (tmp_path / "xdg" / "lrpnet" / "mnist").is_dir()
    assert not any((tmp_path / "xdg").rglob("*.gz")) and not any((tmp_path / "xdg").rglob("*.part"))


def test_download_with_a_minimal_fake_response(tmp_path):
    """An opener may return any context manager with read(n); no Content-Length needed."""
    import io

    sha = write_idx(tmp_path / "remote.gz", np.arange(7, dtype=np.uint8))
    payload = (tmp_path / "remote.gz").read_bytes()
    dest = sources.download(["fake://x"], tmp_path / "x.gz", sha,
                            opener=lambda url, timeout: io.BytesIO(payload), progress=False)
    np.testing.assert_array_equal(read_idx(dest), np.arange(7))


def test_unresolvable_host_is_not_retried(tmp_path):
    import socket
    import urllib.error

    calls = []

    def no_dns(url, timeout=None):
        calls.append(url)
        raise urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))

    with pytest.raises(DataNotFoundError, match=r"x\.gz: download failed: a://x.*b://x"):
        sources.download(["a://x", "b://x"], tmp_path / "x.gz", None, opener=no_dns, progress=False)
    assert calls == ["a://x", "b://x"] and list(tmp_path.iterdir()) == []
