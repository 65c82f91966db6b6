"""A task's samples, stored compactly: the source images plus which source image sits in each block.

A sample of a combined task (MAJ / 3 / 7) is ``n_blocks`` 28x28 source images side by side; the
dataset keeps the shared uint8 source array and an (N, n_blocks) index array, and assembles pixels
only for the rows asked for (a batch), so no float copy of the whole set ever exists.
"""
from __future__ import annotations

import functools

import numpy as np

__all__ = ["Dataset", "scale_pixels", "epoch_order", "batch_rows"]

# uint8 -> float32 in [-1, 1], 2*x/255 - 1 (THESIS section 1): background 0 -> -1, ink 255 -> 1
_SCALE = (2.0 * np.arange(256) / 255.0 - 1.0).astype(np.float32)


def scale_pixels(pixels) -> np.ndarray:
    """uint8 pixels -> float32 ``2*x/255 - 1`` in [-1, 1] (exactly -1 and 1 at 0 and 255)."""
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8:
        raise TypeError(f"scale_pixels expects uint8 pixels, got {pixels.dtype}")
    return _SCALE[pixels]


def epoch_order(n, shuffle=True, seed=0, epoch=0) -> np.ndarray:
    """The order of the ``n`` rows in one epoch: with ``shuffle`` a permutation drawn from
    ``default_rng([seed, epoch])`` (a new order each epoch, the same for the same (seed, epoch)),
    else ``0..n-1``."""
    return np.random.default_rng([int(seed), int(epoch)]).permutation(n) if shuffle else np.arange(n)


def batch_rows(n, batch_size, shuffle=True, seed=0, epoch=0, drop_last=False):
    """Yield the row indices of each batch of one epoch over ``n`` samples (``Dataset.batches`` and
    ``lrpnet.training.ArrayDataset.batches``), in ``epoch_order``. ``drop_last`` skips a final batch
    shorter than ``batch_size``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = epoch_order(n, shuffle, seed, epoch)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        yield order[start:start + batch_size]


class Dataset:
    """One split of one task.

    Attributes:
        name, split:    the task name (e.g. "mnist-maj") and "train" / "val" / "test".
        fold:           None for the official split, else the cross-validation fold number.
        labels:         (N,) int64 class of each sample.
        masks:          (N, n_blocks) float32 0/1 ground-truth blocks, None for sequential tasks.
        sources:        (N, n_blocks) int64 index into ``source_images`` of each block's image.
        source_images:  (M, 28, 28) uint8 shared, read-only source images.
        source_labels:  (M,) int64 their classes.
    Derived: n_blocks, shape (28, 28 * n_blocks), n_classes (10), block_labels, pixels.
    """

    n_classes = 10
    block_size = 28

    def __init__(self, name, split, source_images, source_labels, sources, labels, masks=None,
                 fold=None):
        sources = np.asarray(sources, dtype=np.int64)
        labels = np.asarray(labels, dtype=np.int64)
        if sources.ndim != 2 or labels.shape != sources.shape[:1]:
            raise ValueError(f"sources {sources.shape} must be (N, n_blocks) and labels {labels.shape} (N,)")
        if masks is not None:
            masks = np.asarray(masks, dtype=np.float32)
            if masks.shape != sources.shape:
                raise ValueError(f"masks {masks.shape} must match sources {sources.shape}")
        self.name, self.split, self.fold = name, split, fold
        self.source_images, self.source_labels = source_images, source_labels
        self.sources, self.labels, self.masks = sources, labels, masks

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        fold = "" if self.fold is None else f", fold={self.fold}"
        return f"Dataset({self.name!r}, split={self.split!r}{fold}, n={len(self)}, shape={self.shape})"

    @property
    def n_blocks(self) -> int:
        return self.sources.shape[1]

    @property
    def shape(self) -> tuple:
        """(height, width) of one sample: (28, 28 * n_blocks)."""
        return (self.block_size, self.block_size * self.n_blocks)

    @property
    def block_labels(self) -> np.ndarray:
        """(N, n_blocks) int64 class of the source image in each block."""
        return self.source_labels[self.sources]

    def _rows(self, idx):
        rows = np.arange(len(self))[slice(None) if idx is None else idx]
        return rows

    def _assemble(self, rows) -> np.ndarray:
        """uint8 (len(rows), 28, 28 * n_blocks): the rows' blocks placed side by side."""
        n, size = len(rows), self.block_size
        # fill block by block: a (n, n_blocks, 28, 28) gather plus transpose would need 2x memory
        out = np.empty((n, size, self.n_blocks, size), np.uint8)
        for b in range(self.n_blocks):
            out[:, :, b, :] = self.source_images[self.sources[rows, b]]
        return out.reshape(n, size, self.n_blocks * size)

    @functools.cached_property
    def pixels(self) -> np.ndarray:
        """(N, 28, W) uint8 of the whole split, assembled once on first access (read-only).

        Training and evaluation should use ``batches`` / ``images(idx)``, which assemble only the
        rows they need."""
        pixels = self._assemble(np.arange(len(self)))
        pixels.flags.writeable = False
        return pixels

    def images(self, idx=None) -> np.ndarray:
        """float32 ``2*x/255 - 1`` images for ``idx`` (None: all, an int, a slice, an index or
        boolean array): (n, 28, W), or (28, W) for an int."""
        rows = self._rows(idx)
        if rows.ndim == 0:
            return scale_pixels(self._assemble(rows[None]))[0]
        return scale_pixels(self._assemble(rows))

    def batches(self, batch_size: int, shuffle: bool = True, seed: int = 0, epoch: int = 0,
                drop_last: bool = False, return_index: bool = False):
        """Yield ``(images, labels)`` (or ``(images, labels, index)``) in batches, in the order
        ``batch_rows`` gives (a seeded permutation per epoch with ``shuffle``)."""
        for rows in batch_rows(len(self), batch_size, shuffle, seed, epoch, drop_last):
            images = scale_pixels(self._assemble(rows))
            yield (images, self.labels[rows], rows) if return_index else (images, self.labels[rows])

    def subset(self, n_or_indices) -> "Dataset":
        """A smaller dataset of the same task: the first ``n`` samples for an int, else the given
        indices (array, list, slice or boolean mask). Shares the source images."""
        if isinstance(n_or_indices, (int, np.integer)):
            if not 0 <= n_or_indices <= len(self):
                raise ValueError(f"subset size {n_or_indices} outside 0..{len(self)}")
            rows = np.arange(int(n_or_indices))
        else:
            rows = np.atleast_1d(self._rows(n_or_indices))
        return Dataset(self.name, self.split, self.source_images, self.source_labels,
                       self.sources[rows], self.labels[rows],
                       None if self.masks is None else self.masks[rows], self.fold)
