"""cupy.lib: only stride_tricks, which lrpnet uses for its sliding windows."""
from . import stride_tricks  # noqa: F401
