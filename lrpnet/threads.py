"""How many threads BLAS and OpenMP may use in this process: one definition, for the sweep's worker
processes and for the benchmarks.

``threadpoolctl`` limits the libraries already loaded (NumPy's BLAS is loaded with NumPy, before
anyone can set a variable for it); the environment variables reach the libraries loaded later (Numba
reads ``NUMBA_NUM_THREADS`` when it is imported) and the processes started from this one.
"""
from __future__ import annotations

import os

__all__ = ["THREAD_ENV", "limit_threads"]

THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def limit_threads(n: int | None) -> None:
    """Give BLAS, OpenMP and Numba ``n`` threads each in this process from now on (None: no change)."""
    if n is None:
        return
    if int(n) < 1:
        raise ValueError(f"thread count must be >= 1, got {n}")
    from threadpoolctl import threadpool_limits

    for var in THREAD_ENV:
        os.environ[var] = str(int(n))
    threadpool_limits(limits=int(n))          # called, not entered: the limit stays
