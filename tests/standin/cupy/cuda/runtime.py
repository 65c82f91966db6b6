"""cupy.cuda.runtime of the stand-in: one device, CUDA 13, named "CPU stand-in"."""
from __future__ import annotations

from .. import standin as _st


class CUDARuntimeError(RuntimeError):
    def __init__(self, status=1, message="cudaErrorInvalidDevice: invalid device ordinal (CPU stand-in)"):
        self.status = status
        super().__init__(message)


_current = 0


def getDeviceCount():
    return 1


def runtimeGetVersion():
    return 13000


def driverGetVersion():
    return 13000


def _check(device):
    if device != 0:
        raise CUDARuntimeError()


def getDevice():
    return _current


def setDevice(device):
    _check(device)


def getDeviceProperties(device):
    _check(device)
    return {"name": b"CPU stand-in", "totalGlobalMem": 80 * 2**30, "major": 9, "minor": 0,
            "multiProcessorCount": 132, "warpSize": 32, "maxThreadsPerBlock": 1024}


def memGetInfo():
    return 80 * 2**30, 80 * 2**30


def deviceSynchronize():
    _st.record_stream_sync()
