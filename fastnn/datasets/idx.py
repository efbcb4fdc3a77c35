"""Reading IDX files, the simple binary array format the MNIST files come in.

An IDX file is a big-endian header followed by raw data: two zero bytes, a data-type byte, a byte
holding the number of dimensions, one unsigned 32-bit size per dimension, then the values.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

GZIP_MAGIC = b"\x1f\x8b"
_TRAILING_LIMIT = 1 << 16  # trailing bytes counted exactly up to this many
_CHUNK = 1 << 22
UBYTE = 0x08
# Named only so an unsupported file gets a helpful message; unsigned bytes are all MNIST needs.
_TYPE_NAMES = {
    0x08: "unsigned byte",
    0x09: "signed byte",
    0x0B: "short",
    0x0C: "int",
    0x0D: "float",
    0x0E: "double",
}


def idx_magic(ndim: int, type_code: int = UBYTE) -> int:
    """The magic number of an IDX file of ``ndim`` dimensions (2051 for MNIST images)."""
    return (type_code << 8) | ndim


def read_idx(path: str | os.PathLike[str], *, ndim: int | None = None) -> np.ndarray:
    """Read an IDX file of unsigned bytes, plain or gzip-compressed, into a uint8 array.

    Compression is recognised by a ``.gz`` suffix or by the gzip magic bytes. With ``ndim`` the
    file must also have that many dimensions (3 for MNIST images, 1 for labels). Any structural
    problem raises a ValueError that names the file.
    """
    file = Path(path)
    return parse_idx(_read_bytes(file), name=str(file), ndim=ndim)


def parse_idx(
    data: bytes | bytearray, *, name: str = "<bytes>", ndim: int | None = None
) -> np.ndarray:
    """Parse the bytes of an uncompressed IDX file; ``name`` is used in error messages."""
    if not data:
        raise ValueError(f"{name}: the file is empty; expected an IDX file")
    if len(data) < 4:
        raise ValueError(
            f"{name}: truncated IDX header: the file holds {len(data)} bytes, "
            "the magic number alone needs 4"
        )
    magic = int.from_bytes(data[:4], "big")
    if data[0] or data[1]:
        raise ValueError(
            f"{name}: not an IDX file: its magic number 0x{magic:08x} should start with two zero "
            "bytes"
        )
    type_code, dims_count = data[2], data[3]
    if type_code != UBYTE:
        kind = _TYPE_NAMES.get(type_code, "unknown")
        raise ValueError(
            f"{name}: unsupported IDX data type 0x{type_code:02x} ({kind}) in magic number "
            f"{magic}; only 0x08 (unsigned byte) is supported"
        )
    if dims_count == 0:
        raise ValueError(f"{name}: the IDX header declares 0 dimensions (magic number {magic})")
    if ndim is not None and dims_count != ndim:
        raise ValueError(
            f"{name}: expected magic number {idx_magic(ndim)} (unsigned bytes, {ndim} "
            f"dimension{'s' if ndim != 1 else ''}), found {magic} ({dims_count} "
            f"dimension{'s' if dims_count != 1 else ''}); is this the right file?"
        )
    header = 4 + 4 * dims_count
    if len(data) < header:
        raise ValueError(
            f"{name}: truncated IDX header: {dims_count} dimensions need {header} header bytes, "
            f"the file holds {len(data)}"
        )
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims_count))
    expected = math.prod(shape)
    found = len(data) - header
    if found < expected:
        raise ValueError(
            f"{name}: truncated IDX data: shape {shape} needs {expected} bytes after the header, "
            f"the file holds {found}"
        )
    if found > expected:
        raise ValueError(
            f"{name}: {found - expected} unexpected trailing bytes after the {expected} data bytes "
            f"of shape {shape}"
        )
    return np.frombuffer(data, dtype=np.uint8, count=expected, offset=header).reshape(shape)


def _read_bytes(file: Path) -> bytearray:
    """The file's content, decompressed when it is gzip; a bytearray so the array is writable."""
    with open(file, "rb") as stream:
        compressed = file.name.endswith(".gz") or stream.read(2) == GZIP_MAGIC
        stream.seek(0)
        if not compressed:
            return bytearray(stream.read())
        try:
            with gzip.GzipFile(fileobj=stream, mode="rb") as unzipped:
                return _read_declared(unzipped, file)
        except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
            raise ValueError(
                f"{file}: corrupted or truncated gzip data ({type(exc).__name__}: {exc})"
            ) from exc


def _read_declared(unzipped: gzip.GzipFile, file: Path) -> bytearray:
    """Decompress no more than the IDX header declares (plus a little to report trailing
    bytes): a few kilobytes of crafted gzip could otherwise expand to gigabytes."""
    data = bytearray(unzipped.read(4))
    if len(data) == 4:
        data += unzipped.read(4 * data[3])
    header = 4 + 4 * data[3] if len(data) >= 4 else 0
    if not header or len(data) < header:
        return data  # parse_idx explains what is missing
    declared = math.prod(int.from_bytes(data[i : i + 4], "big") for i in range(4, header, 4))
    wanted = header + declared + _TRAILING_LIMIT
    while len(data) < wanted:  # in chunks: a header may declare far more than there is
        chunk = unzipped.read(min(_CHUNK, wanted - len(data)))
        if not chunk:
            return data
        data += chunk
    if unzipped.read(1):
        raise ValueError(
            f"{file}: the gzip data goes on past the {declared} bytes its IDX header declares "
            f"(by more than {_TRAILING_LIMIT} bytes)"
        )
    return data
