"""A dataset's samples on the GPU: copied there once, gathered there batch by batch.

Training on a GPU must not assemble every batch on the host and upload it. ``on_device(ds, dtype)``
copies what a dataset is made of to the device once: for a task's ``Dataset`` the shared uint8 source
images, the (N, n_blocks) index of the source image in each block and the labels (55 MB for all of
MNIST); for an ``ArrayDataset`` its images in the model's dtype. ``batches`` then draws the same order
as the host dataset (``epoch_order``, one upload of the permutation per epoch) and
gathers each batch on the device: block b of row r is ``source_images[sources[r, b]]``, and pixels go
through the same 256-entry table ``2*x/255 - 1`` as on the host, so the images are bit-identical.

Data copied here has been checked once (labels in range, pixels finite): ``fit`` and ``accuracy``
trace these batches without checking them again, which would cost a copy from the device per batch.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from .dataset import _SCALE, Dataset, epoch_order

__all__ = ["DeviceDataset", "on_device"]


def on_device(ds, dtype, n_classes=None):
    """``ds`` on the active backend's device (a ``DeviceDataset``), made once per dataset and dtype
    and cached on ``ds``; checks its labels (and images, for arrays) on the host first."""
    cache = ds.__dict__.setdefault("_on_device", {})
    key = (backend.name(), np.dtype(dtype).name)
    if key not in cache:
        cache[key] = DeviceDataset(ds, dtype, n_classes)
    return cache[key]


class DeviceDataset:
    """The device copy of a dataset, with the ``len`` / ``labels`` / ``batches`` interface ``fit``
    and ``accuracy`` use (labels here are device arrays; ``host.labels`` are the host's)."""

    def __init__(self, ds, dtype, n_classes=None):
        labels = np.asarray(ds.labels)
        if labels.ndim != 1 or labels.dtype.kind not in "iu":
            raise ValueError(f"labels must be a 1-d integer array, got {labels.dtype} {labels.shape}")
        if n_classes is not None and len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
            raise ValueError(f"labels must lie in [0, {n_classes}), got range [{labels.min()}, {labels.max()}]")
        xp = backend.xp()
        self.host, self.dtype = ds, np.dtype(dtype)
        self.labels = xp.asarray(labels.astype(np.int64))
        if isinstance(ds, Dataset):
            self._sources = xp.asarray(ds.sources)
            self._source_images = xp.asarray(ds.source_images)
            self._scale = xp.asarray(_SCALE.astype(self.dtype))
            self._images = None
        else:
            images = np.asarray(ds.images(), dtype=self.dtype)
            if not np.isfinite(images).all():
                raise ValueError("the dataset's images contain NaN or infinite values")
            self._images = xp.asarray(images)

    def __len__(self):
        return int(self.labels.shape[0])

    def images(self, rows):
        """The images of ``rows`` (a device index array), in the model's dtype, on the device."""
        if self._images is not None:
            return self._images[rows]
        xp = backend.xp()
        n, n_blocks = rows.shape[0], self._sources.shape[1]
        size = self._source_images.shape[1]
        blocks = self._source_images[self._sources[rows]]          # (n, n_blocks, 28, 28) uint8
        pixels = blocks.transpose(0, 2, 1, 3).reshape(n, size, n_blocks * size)
        return xp.take(self._scale, pixels)

    def batches(self, batch_size, shuffle=True, seed=0, epoch=0):
        """``(images, labels)`` on the device, in the host dataset's order for (seed, epoch)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        n = len(self)
        order = backend.asarray(epoch_order(n, shuffle, seed, epoch))    # one upload per epoch
        for start in range(0, n, batch_size):
            rows = order[start:start + batch_size]
            yield self.images(rows), self.labels[rows]
