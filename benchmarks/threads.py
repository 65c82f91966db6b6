"""Thread counts for a benchmark: ``limit_threads(n)`` gives BLAS, OpenMP and Numba ``n`` threads each
(no change when n is None). The definition is ``lrpnet.threads``, shared with the sweep's workers; this
file makes it importable from the scripts beside it, which run before lrpnet is on the path."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

from lrpnet.threads import THREAD_ENV, limit_threads  # noqa: E402,F401
