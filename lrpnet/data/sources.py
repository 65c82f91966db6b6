"""Where the MNIST / FashionMNIST files live, how they are verified, and how they are fetched.

Layout of the data directory (``LRPNET_DATA``, else ``$XDG_CACHE_HOME/lrpnet``, else
``~/.cache/lrpnet``)::

    <dir>/mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz
    <dir>/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz

Every file is checked against the sha256 of its *uncompressed* content (``SHA256`` below, as the
publishers release them), so a recompressed copy from any mirror is accepted and a damaged one is
refused. Missing files are downloaded (``download``: mirrors in order, one retry each, a progress
bar, checksum check, then an atomic ``os.replace`` of a temporary file in the same directory).

``load_source`` returns the 70,000 images of a dataset (official train first, then official test)
as one read-only uint8 array, cached per process.
"""
from __future__ import annotations

import functools
import http.client
import os
import socket
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

from .idx import DataError, idx_shape, read_idx, sha256_uncompressed

__all__ = [
    "DATASETS", "FILES", "SHA256", "MIRRORS", "DataNotFoundError", "Source",
    "data_dir", "dataset_dir", "download", "ensure_files", "load_source", "clear_cache",
]

DATASETS = ("mnist", "fashion-mnist")

# role -> file name, identical for both datasets
FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
_MAGIC = {"images": 0x00000803, "labels": 0x00000801}

# sha256 of the uncompressed idx files (the .gz name without ".gz"), from the publishers
SHA256 = {
    "mnist": {
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}

# official mirrors, tried in order
MIRRORS = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
}

TIMEOUT_S = 5.0  # per connection attempt: offline, a load fails within seconds, not minutes


class DataNotFoundError(DataError, FileNotFoundError):
    """The data files are not there and could not be fetched."""


class Source(NamedTuple):
    """All 70,000 samples of a dataset: official train (first ``n_train``), then official test."""

    images: np.ndarray  # (70000, 28, 28) uint8, read-only
    labels: np.ndarray  # (70000,) int64, read-only
    n_train: int        # 60000: samples [0, n_train) are the official train set


def data_dir(path=None) -> Path:
    """The data directory: ``path`` if given, else ``$LRPNET_DATA``, else the user cache dir
    (``$XDG_CACHE_HOME/lrpnet`` or ``~/.cache/lrpnet``)."""
    if path is not None:
        return Path(path).expanduser()
    env = os.environ.get("LRPNET_DATA")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "lrpnet"


def _explicit_dir(path) -> bool:
    return path is not None or bool(os.environ.get("LRPNET_DATA"))


def dataset_dir(dataset: str, path=None) -> Path:
    """``<data_dir>/<dataset>``; ValueError for an unknown dataset name."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {list(DATASETS)}")
    return data_dir(path) / dataset


def _expected_files_text(folder: Path) -> str:
    return ", ".join(str(folder / name) for name in FILES.values())


def download(
    urls,
    dest,
    sha256: str | None,
    *,
    opener: Callable | None = None,
    retries: int = 1,
    timeout: float = TIMEOUT_S,
    backoff_s: float = 1.0,
    progress: bool = True,
) -> Path:
    """Fetch ``dest`` from the first of ``urls`` that delivers a file with the right checksum.

    Each URL is tried ``1 + retries`` times on network errors (pausing ``backoff_s``; a host name
    that does not resolve is not retried), each attempt with a ``timeout``; a file whose
    uncompressed sha256 differs from ``sha256`` is discarded and the next URL is tried. The bytes
    go to a temporary file in ``dest``'s directory, renamed over ``dest`` only once verified, so an
    interrupted download never leaves a partial ``dest``. ``opener(url, timeout=...)`` must return
    a context manager with ``read(n)`` (None: ``urllib.request.urlopen``; tests pass a fake).

    Raises DataNotFoundError if every URL failed on the network, DataError if a file arrived but
    none had the right checksum.
    """
    from tqdm import tqdm

    opener = opener or urllib.request.urlopen
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    network_errors, checksum_errors = [], []
    for url in urls:
        for attempt in range(1 + retries):
            fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
            try:
                with os.fdopen(fd, "wb") as out, opener(url, timeout=timeout) as response:
                    headers = getattr(response, "headers", None)
                    total = headers.get("Content-Length") if headers is not None else None
                    with tqdm(total=int(total) if total else None, unit="B", unit_scale=True,
                              desc=dest.name, disable=not progress, leave=False) as bar:
                        while chunk := response.read(1 << 16):
                            out.write(chunk)
                            bar.update(len(chunk))
                if sha256 is not None:
                    found = sha256_uncompressed(tmp)
                    if found != sha256.lower():
                        raise DataError(f"{url}: sha256 of the uncompressed content is {found}, "
                                        f"expected {sha256.lower()}")
                os.replace(tmp, dest)
                return dest
            except DataError as err:  # wrong content: retrying the same URL will not help
                checksum_errors.append(str(err))
                break
            except (OSError, http.client.HTTPException) as err:  # URLError, timeouts, resets
                network_errors.append(f"{url} (attempt {attempt + 1}): {err}")
                if isinstance(getattr(err, "reason", err), socket.gaierror):
                    break  # the host name does not resolve (offline): waiting will not help
                if attempt < retries:
                    time.sleep(backoff_s)
            finally:
                Path(tmp).unlink(missing_ok=True)
    if checksum_errors:
        raise DataError(f"{dest}: no mirror delivered the expected file: " + "; ".join(checksum_errors))
    raise DataNotFoundError(f"{dest}: download failed: " + "; ".join(network_errors))


def ensure_files(dataset: str, path=None, *, download_missing: bool = True, **download_kw) -> Path:
    """Make sure the four files of ``dataset`` are present (downloading missing ones); return
    the dataset's folder. The files' checksums are verified when they are read (``load_source``).

    An explicitly given data directory (``path`` or ``LRPNET_DATA``) must exist: a typo should not
    start a download into a new folder. The default cache directory is created when needed.
    """
    folder = dataset_dir(dataset, path)
    root = folder.parent
    hint = (f"Set LRPNET_DATA to a directory that holds {dataset}/ with the files "
            f"{', '.join(FILES.values())} (expected: {_expected_files_text(folder)})")
    if _explicit_dir(path) and not root.is_dir():
        origin = "data_dir argument" if path is not None else "LRPNET_DATA"
        raise DataNotFoundError(f"data directory {root} ({origin}) does not exist. {hint}, "
                                f"or create the directory to download the files into it.")
    missing = [name for name in FILES.values() if not (folder / name).is_file()]
    if not missing:
        return folder
    if not download_missing:
        raise DataNotFoundError(f"{dataset} files missing in {folder}: {', '.join(missing)}. {hint}.")
    for name in missing:
        try:
            download([m + name for m in MIRRORS[dataset]], folder / name,
                     SHA256[dataset][name[: -len(".gz")]], **download_kw)
        except DataNotFoundError as err:  # offline: stop at the first file, do not try the rest
            raise DataNotFoundError(
                f"{dataset} files missing in {folder}: {', '.join(missing)}, and the download "
                f"failed ({err}). {hint}."
            ) from err
    return folder


@functools.lru_cache(maxsize=4)
def _load_source(dataset: str, folder: str) -> Source:
    folder = Path(folder)
    sums = {role: SHA256[dataset][name[: -len(".gz")]] for role, name in FILES.items()}
    paths = {role: folder / name for role, name in FILES.items()}
    shapes = {part: idx_shape(paths[f"{part}_images"], _MAGIC["images"]) for part in ("train", "test")}
    for part, shape in shapes.items():
        if shape[1:] != (28, 28):
            raise DataError(f"{paths[part + '_images']}: images of shape {shape}, expected (N, 28, 28)")
    n_train, n_test = shapes["train"][0], shapes["test"][0]
    # read both image files straight into one array: the train images are never held twice
    images = np.empty((n_train + n_test, 28, 28), np.uint8)
    labels = []
    for part, rows in (("train", slice(0, n_train)), ("test", slice(n_train, None))):
        read_idx(paths[f"{part}_images"], sums[f"{part}_images"], _MAGIC["images"], out=images[rows])
        part_labels = read_idx(paths[f"{part}_labels"], sums[f"{part}_labels"], _MAGIC["labels"])
        if len(part_labels) != images[rows].shape[0]:
            raise DataError(f"{paths[part + '_labels']}: {len(part_labels)} labels for "
                            f"{images[rows].shape[0]} images in {paths[part + '_images']}")
        if part_labels.size and part_labels.max() > 9:
            raise DataError(f"{paths[part + '_labels']}: label {part_labels.max()} outside 0..9")
        labels.append(part_labels)
    labels = np.concatenate(labels).astype(np.int64)
    images.flags.writeable = False
    labels.flags.writeable = False
    return Source(images, labels, n_train)


def load_source(dataset: str, path=None, *, download_missing: bool = True) -> Source:
    """All samples of ``dataset`` ("mnist" or "fashion-mnist"), verified, cached per process."""
    folder = ensure_files(dataset, path, download_missing=download_missing)
    return _load_source(dataset, str(folder.resolve()))


def clear_cache() -> None:
    """Forget the arrays cached by load_source (e.g. after replacing the files)."""
    _load_source.cache_clear()
