"""cupy.cuda of the stand-in: one always-present device, streams and events that keep time.

Synchronising moves no data, so it is not a sync in standin.stats()["syncs"]; it is counted
separately as "stream_syncs" (benchmarks synchronise before reading a timer, models should not).
"""
from __future__ import annotations

import time

from .. import standin as _st
from . import runtime  # noqa: F401
from .runtime import CUDARuntimeError  # noqa: F401


def is_available():
    return True


class Device:
    """cupy.cuda.Device(0); any other id raises CUDARuntimeError, as on a one-GPU machine."""

    def __init__(self, device=None):
        self.id = 0 if device is None else int(device)
        runtime._check(self.id)
        self.compute_capability = "90"

    def synchronize(self):
        _st.record_stream_sync()

    def use(self):
        pass

    @property
    def mem_info(self):
        return runtime.memGetInfo()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __eq__(self, other):
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self):
        return hash(self.id)

    def __repr__(self):
        return f"<CUDA Device {self.id} (CPU stand-in)>"


class Stream:
    """cupy.cuda.Stream; ``Stream.null`` is the default stream. Work is done eagerly, so syncing is free."""

    null: "Stream"

    def __init__(self, null=False, non_blocking=False, ptr=0):
        self.ptr = 0 if null else id(self)

    def synchronize(self):
        _st.record_stream_sync()

    def use(self):
        global _current_stream
        _current_stream = self
        return self

    def __enter__(self):
        self._previous = get_current_stream()
        return self.use()

    def __exit__(self, *exc):
        self._previous.use()
        return False

    def record(self, event=None):
        event = event or Event()
        event.record(self)
        return event

    def wait_event(self, event):
        pass


Stream.null = Stream(null=True)
_current_stream = Stream.null


def get_current_stream(device_id=None):
    return _current_stream


class Event:
    """cupy.cuda.Event: record() notes the host clock, which is when the (eager) work is done."""

    def __init__(self, block=False, disable_timing=False, interprocess=False):
        self.time = None

    def record(self, stream=None):
        self.time = time.perf_counter()

    def synchronize(self):
        _st.record_stream_sync()

    @property
    def done(self):
        return True

    def query(self):
        return True


def get_elapsed_time(start_event, end_event):
    """Milliseconds between two recorded events."""
    if start_event.time is None or end_event.time is None:
        raise CUDARuntimeError(600, "cudaErrorInvalidResourceHandle: event not recorded (CPU stand-in)")
    return (end_event.time - start_event.time) * 1000.0
