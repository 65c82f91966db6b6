"""The idx file format of MNIST and FashionMNIST, read from gzip with its checksum verified.

An idx file is a 4-byte magic number ``0x00 0x00 <type> <ndim>``, then ``ndim`` big-endian uint32
dimension sizes, then the values in C order (http://yann.lecun.com/exdb/mnist/). The images are
type 0x08 (uint8) with ndim 3 (magic 0x00000803), the labels uint8 with ndim 1 (0x00000801).

``read_idx`` streams the uncompressed bytes into the output array while hashing them, so a
60,000 x 28 x 28 file never exists twice in memory, and it refuses a file whose sha256 (of the
uncompressed content) differs from the expected one, whose gzip stream is corrupt or truncated,
or whose magic number or length is wrong: a bad file is never used silently.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import zlib
from pathlib import Path

import numpy as np

__all__ = ["DataError", "idx_shape", "read_idx", "write_idx", "sha256_uncompressed", "IDX_DTYPES"]

# type byte of the magic number -> dtype (big-endian for the multi-byte types)
IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_CHUNK = 1 << 20
# what gzip raises for a damaged stream: bad header or CRC, cut-off stream, bad deflate data
_GZIP_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error)


class DataError(RuntimeError):
    """A data file is unusable: corrupt, truncated, wrong checksum or wrong format."""


def _read_exact(stream, n: int, path: Path, what: str) -> bytes:
    buf = stream.read(n)
    if len(buf) != n:
        raise DataError(f"{path}: truncated idx file: expected {n} bytes of {what}, got {len(buf)}")
    return buf


def _read_header(stream, path: Path, magic: int | None):
    """(dtype, dims, raw header bytes) of an idx stream; DataError for a bad magic number."""
    head = _read_exact(stream, 4, path, "magic number")
    found = int.from_bytes(head, "big")
    if head[0] != 0 or head[1] != 0 or head[2] not in IDX_DTYPES or (
        magic is not None and found != magic
    ):
        want = f"0x{magic:08x}" if magic is not None else "0x0000TTNN with a known type TT"
        raise DataError(f"{path}: bad idx magic number 0x{found:08x}, expected {want}")
    dims_raw = _read_exact(stream, 4 * head[3], path, "dimension sizes")
    dims = tuple(int(d) for d in np.frombuffer(dims_raw, dtype=">u4"))
    return IDX_DTYPES[head[2]], dims, head + dims_raw


def idx_shape(path, magic: int | None = None) -> tuple:
    """The dimension sizes in the header of a gzip-compressed idx file (reads only the header)."""
    path = Path(path)
    try:
        with gzip.open(path, "rb") as stream:
            return _read_header(stream, path, magic)[1]
    except _GZIP_ERRORS as err:
        raise DataError(f"{path}: corrupt or truncated gzip file ({err})") from err


def read_idx(path, sha256: str | None = None, magic: int | None = None, out=None) -> np.ndarray:
    """Read a gzip-compressed idx file into a read-only array (native byte order).

    path:   the ``.gz`` file.
    sha256: expected hex sha256 of the *uncompressed* content, or None to skip the check.
    magic:  expected magic number (e.g. 0x00000803 for images), or None to accept any valid one.
    out:    optional C-contiguous array of the header's shape and dtype to read into (lets a
            caller fill part of a larger array without a second copy); the function returns it.

    Raises DataError naming the file for a corrupt/truncated gzip stream, a bad magic number, a
    length that disagrees with the header, or a checksum mismatch.
    """
    path = Path(path)
    hasher = hashlib.sha256()
    try:
        with gzip.open(path, "rb") as stream:
            dtype, dims, header = _read_header(stream, path, magic)
            hasher.update(header)
            if out is None:
                out = np.empty(dims, dtype=dtype)
            elif out.shape != dims or out.dtype != dtype or not out.flags.c_contiguous:
                raise ValueError(f"{path}: out {out.shape} {out.dtype} does not fit the file's "
                                 f"{dims} {dtype} (or is not C-contiguous)")
            view = memoryview(out.reshape(-1).view(np.uint8))
            pos = 0
            while pos < len(view):
                n = stream.readinto(view[pos : pos + _CHUNK])
                if not n:
                    raise DataError(
                        f"{path}: truncated idx file: header {dims} needs {len(view)} bytes of "
                        f"data, the file has {pos}"
                    )
                hasher.update(view[pos : pos + n])
                pos += n
            if stream.read(1):
                raise DataError(f"{path}: idx file is longer than its header {dims} says")
    except _GZIP_ERRORS as err:
        raise DataError(
            f"{path}: corrupt or truncated gzip file ({err}); delete it and fetch it again"
        ) from err
    if sha256 is not None and hasher.hexdigest() != sha256.lower():
        raise DataError(
            f"{path}: sha256 of the uncompressed content is {hasher.hexdigest()}, expected "
            f"{sha256.lower()}; the file is corrupt or not the official one: delete it and fetch it again"
        )
    out = out.astype(dtype.newbyteorder("="), copy=False)
    out.flags.writeable = False  # the arrays are cached and shared: nobody may change them
    return out


def sha256_uncompressed(path) -> str:
    """sha256 hex digest of the uncompressed content of a gzip file (DataError if corrupt)."""
    path = Path(path)
    hasher = hashlib.sha256()
    try:
        with gzip.open(path, "rb") as stream:
            while chunk := stream.read(_CHUNK):
                hasher.update(chunk)
    except _GZIP_ERRORS as err:
        raise DataError(f"{path}: corrupt or truncated gzip file ({err})") from err
    return hasher.hexdigest()


def write_idx(path, array) -> str:
    """Write ``array`` as a gzip-compressed idx file, atomically; return the uncompressed sha256.

    The inverse of read_idx, used to build small test fixtures.
    """
    array = np.ascontiguousarray(array)
    code = next((c for c, dt in IDX_DTYPES.items()
                 if (dt.kind, dt.itemsize) == (array.dtype.kind, array.dtype.itemsize)), None)
    if code is None:
        raise ValueError(f"write_idx: dtype {array.dtype} has no idx type code; use one of "
                         f"{[str(d) for d in IDX_DTYPES.values()]}")
    big = array.astype(IDX_DTYPES[code], copy=False)
    raw = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes() + big.tobytes()
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as raw_file, gzip.GzipFile(fileobj=raw_file, mode="wb", mtime=0) as gz:
            gz.write(raw)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return hashlib.sha256(raw).hexdigest()
