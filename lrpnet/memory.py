"""Keep the memory NumPy frees in the process, so that the next step reuses it instead of faulting it in.

A training step or an explanation chunk allocates and frees the same large arrays again and again
(activations, im2col patches, gradients: megabytes each). With its default settings, glibc's malloc
hands such memory back to the system when it is freed (``mmap``'ed blocks are unmapped; the top of the
heap is trimmed once more than a moving threshold lies free there), and every page of the next
allocation is then faulted in and zeroed again. Measured on this project's CPU machine (one thread,
fresh processes; ``benchmarks/RESULTS.md``, "Freed memory kept in the process"): 107,000 page faults in
one ConvDeep training step at batch 256 and that step 1.44x slower than with the memory kept; Deep,
R-LSTM and LSTM steps 1.47x-1.59x slower at batch 50 and at 256.

``keep_freed_memory()`` sets two of glibc's ``mallopt`` parameters for the whole process:
``M_MMAP_THRESHOLD`` = 32 MiB (glibc's largest documented value on 64-bit systems; only blocks larger
than that are mapped on their own, and fixing it stops glibc's adjusting it) and ``M_TRIM_THRESHOLD``
= 1 GiB (the top of the heap goes back to the system only when more than that lies free there). The
process then keeps, after a step, the memory its largest step used: its resident size stays at its peak
instead of falling between steps. Peaks themselves do not change.

Every pass of a model calls it (``Model.running``: training, explanation, prediction); the first call
does the work. The benchmarks call it before anything runs, so that PyTorch, in the same process, runs
under the same settings. ``LRPNET_KEEP_MEMORY=0`` in the environment leaves malloc as it is. Elsewhere
than glibc (macOS, Windows, musl) it does nothing and says so (returns False).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

__all__ = ["KEEP_ENV", "keep_freed_memory"]

KEEP_ENV = "LRPNET_KEEP_MEMORY"
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3          # glibc's <malloc.h>
MMAP_THRESHOLD = 32 * 2 ** 20
TRIM_THRESHOLD = 2 ** 30

_state = {"applied": None}


def keep_freed_memory() -> bool:
    """Make glibc keep freed memory in this process (module docstring), once; True if it is in force.
    False where ``LRPNET_KEEP_MEMORY=0`` is set or malloc is not glibc's."""
    if _state["applied"] is not None:
        return _state["applied"]
    applied = False
    if os.environ.get(KEEP_ENV, "1").strip() != "0" and platform.system() == "Linux" \
            and platform.libc_ver()[0] == "glibc":
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        applied = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and \
            bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    _state["applied"] = applied
    return applied
