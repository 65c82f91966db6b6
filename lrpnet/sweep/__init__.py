"""The study's sweep: architectures x tasks x folds, trained, explained and scored, resumable.

- ``config``: profiles, grids, job configurations and their hash;
- ``store``:  the SQLite results store (one row per finished job, written by the drivers only) and
  the claims by which several sweeps on one output folder split the jobs;
- ``jobs``:   one job (train, checkpoint, accuracy, explain, metrics) -> a plain dict;
- ``runner``: where jobs run (in-process, a local process pool, a Dask cluster: one executor);
- ``report``: tables and figures from the store;
- ``cli``:    the command line of ``experiments/sweep.py``.
"""
from .config import PROFILES, GRIDS, Profile, job_configs, job_hash
from .store import Store

__all__ = ["PROFILES", "GRIDS", "Profile", "job_configs", "job_hash", "Store"]
