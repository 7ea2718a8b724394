"""Reading an archive's bytes: exact reads, windows and ranges, bounded."""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from modelsign._archive._types import (
    CHUNK,
    MAX_TAR_EXTENSION_HEADER,
)
from modelsign.errors import UnsafeArchiveError

# --------------------------------------------------------------------------
# Reading helpers.


def read_exact(f: BinaryIO, length: int, name: str, what: str) -> bytes:
    # An unbuffered file may return fewer bytes than asked before its end.
    start = f.tell()
    data = f.read(length)
    while len(data) < length:
        more = f.read(length - len(data))
        if not more:
            raise UnsafeArchiveError(
                f"{name}: truncated archive: reading {what} at offset {start} "
                f"returned {len(data)} bytes, expected {length}"
            )
        data += more
    return data


class Window:
    """Sequential reads of [start, end) in large pieces.

    The central directory is parsed field by field; callers may hand in an
    unbuffered file, where each small read would be a system call.
    """

    def __init__(self, f: BinaryIO, start: int, end: int, name: str) -> None:
        self._f = f
        self._name = name
        self._next = start  # file offset of the first byte not yet in the buffer
        self._end = end
        self._buffer = b""
        self._pos = 0

    def take(self, length: int, what: str) -> bytes:
        while len(self._buffer) - self._pos < length:
            if self._next >= self._end:
                raise UnsafeArchiveError(
                    f"{self._name}: {what} runs past the end of the central directory "
                    f"at offset {self._end}"
                )
            self._f.seek(self._next)
            piece = read_exact(self._f, min(CHUNK, self._end - self._next), self._name, what)
            self._next += len(piece)
            self._buffer = self._buffer[self._pos :] + piece
            self._pos = 0
        data = self._buffer[self._pos : self._pos + length]
        self._pos += length
        return data


def read_at(f: BinaryIO, offset: int, length: int, size: int, name: str, what: str) -> bytes:
    if offset < 0 or offset + length > size:
        raise UnsafeArchiveError(
            f"{name}: {what} at offset {offset} ({length} bytes) lies outside the file "
            f"({size} bytes)"
        )
    f.seek(offset)
    return read_exact(f, length, name, what)


def read_range(f: BinaryIO, start: int, length: int, name: str, member: str) -> Iterator[bytes]:
    """The bytes [start, start + length) in chunks; refuses a file that ends early."""
    f.seek(start)
    remaining = length
    while remaining > 0:
        chunk = f.read(min(CHUNK, remaining))
        if not chunk:
            raise UnsafeArchiveError(
                f"{name}: truncated archive: the data of member {member!r} ends "
                f"{remaining} bytes early"
            )
        remaining -= len(chunk)
        yield chunk


# --------------------------------------------------------------------------
# Tar.


class BoundedReader:
    """A read-only view of the file for tarfile that refuses oversized single reads.

    tarfile reads a PAX header or GNU long name in one piece, whatever size its
    header claims; this bounds the memory a hostile header can make it use.
    """

    def __init__(self, f: BinaryIO, display_name: str) -> None:
        self._f = f
        self._display_name = display_name

    def read(self, size: int = -1, /) -> bytes:
        if size < 0 or size > MAX_TAR_EXTENSION_HEADER:
            raise UnsafeArchiveError(
                f"{self._display_name}: a tar extension header declares {size} bytes, more "
                f"than the limit of {MAX_TAR_EXTENSION_HEADER}"
            )
        return self._f.read(size)

    def write(self, b: bytes, /) -> int:
        raise OSError("read-only")

    def tell(self) -> int:
        return self._f.tell()

    def seek(self, pos: int, whence: int = 0, /) -> int:
        return self._f.seek(pos, whence)

    def close(self) -> None:
        pass
