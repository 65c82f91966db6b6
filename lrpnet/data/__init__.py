"""Data layer of lrpnet: MNIST / FashionMNIST files, the study's tasks, splits and folds.

    from lrpnet.data import load_task, task_names, cv_folds, data_dir
    ds = load_task("mnist-maj", split="train")   # 48,000 samples of 28x84
    for images, labels in ds.batches(50, seed=0, epoch=0): ...

See ``tasks`` for the task definitions and seeds, ``sources`` for the data directory layout,
checksums and downloads, ``idx`` for the file format, and ``python -m lrpnet.data.show`` to look
at samples.
"""
from .dataset import Dataset, scale_pixels
from .idx import DataError, read_idx, write_idx
from .sources import DataNotFoundError, data_dir, download, load_source
from .tasks import TASKS, Fold, clear_cache, cv_folds, load_task, task_names

__all__ = [
    "Dataset", "Fold", "TASKS", "DataError", "DataNotFoundError",
    "load_task", "task_names", "cv_folds", "data_dir", "load_source", "download",
    "read_idx", "write_idx", "scale_pixels", "clear_cache",
]
