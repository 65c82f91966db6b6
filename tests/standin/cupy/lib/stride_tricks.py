"""cupy.lib.stride_tricks: views of device arrays (no copies), as NumPy's.

NumPy's sliding_window_view is read-only unless writeable=True; CuPy's is always writeable. The
stand-in keeps NumPy's read-only default, so code that writes through overlapping windows (which
races on a GPU) fails here.
"""
from __future__ import annotations

import numpy.lib.stride_tricks as _st

from .._functions import _function

sliding_window_view = _function("lib.stride_tricks.sliding_window_view", _st.sliding_window_view)
as_strided = _function("lib.stride_tricks.as_strided", _st.as_strided)
