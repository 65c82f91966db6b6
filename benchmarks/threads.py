"""Thread counts for a benchmark, set before numpy, BLAS or Numba are imported (they read the
environment once, at import). Imports nothing heavy itself."""
import os

THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def limit_threads(n):
    """Give BLAS and Numba ``n`` threads each (no change when n is None)."""
    if n is not None:
        for var in THREAD_ENV:
            os.environ[var] = str(n)
