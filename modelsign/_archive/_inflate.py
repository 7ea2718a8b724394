"""Inflating compressed members in bounded pieces."""

from __future__ import annotations

import lzma
import struct
import zlib
from collections.abc import Iterator
from typing import Protocol

from modelsign._archive._types import (
    CHUNK,
    Member,
)
from modelsign.errors import UnsafeArchiveError


class _Decompressor(Protocol):
    """The incremental interface shared by bz2.BZ2Decompressor and lzma.LZMADecompressor."""

    @property
    def eof(self) -> bool: ...
    @property
    def needs_input(self) -> bool: ...
    @property
    def unused_data(self) -> bytes: ...
    def decompress(self, data: bytes, max_length: int = -1) -> bytes: ...


def inflate_deflate(chunks: Iterator[bytes], name: str, member: str) -> Iterator[bytes]:
    """Raw deflate, at most one chunk of output per step (zlib's max_length)."""
    d = zlib.decompressobj(-zlib.MAX_WBITS)
    pending = b""
    exhausted = False
    while not d.eof:
        if not pending and not exhausted:
            pending = next(chunks, b"")
            exhausted = not pending
        out = d.decompress(pending, CHUNK)
        pending = d.unconsumed_tail
        if out:
            yield out
        elif exhausted and not pending:
            raise UnsafeArchiveError(
                f"{name}: member {member!r}: the deflate stream ends before its end marker"
            )
    _refuse_trailing(d.unused_data + pending, chunks, name, member)


def inflate_buffered(
    d: _Decompressor, chunks: Iterator[bytes], name: str, member: str, needs_eof: bool
) -> Iterator[bytes]:
    while not d.eof:
        if d.needs_input:
            data = next(chunks, b"")
            if not data:
                if needs_eof:
                    raise UnsafeArchiveError(
                        f"{name}: member {member!r}: the compressed stream ends before its "
                        "end marker"
                    )
                return
        else:
            data = b""
        yield d.decompress(data, CHUNK)
    _refuse_trailing(d.unused_data, chunks, name, member)


def _refuse_trailing(unused: bytes, chunks: Iterator[bytes], name: str, member: str) -> None:
    # Bytes after the end of the compressed stream but inside the member are
    # ignored by some readers and could be read by others.
    extra = len(unused) + sum(len(chunk) for chunk in chunks)
    if extra:
        raise UnsafeArchiveError(
            f"{name}: member {member!r}: {extra} bytes of compressed data follow the end of "
            "the compressed stream, expected none"
        )


def inflate_lzma(chunks: Iterator[bytes], name: str, member: Member) -> Iterator[bytes]:
    """Zip's LZMA (method 14): a 4-byte header, 5 bytes of LZMA1 properties, raw LZMA1."""
    head = b""
    while len(head) < 9:
        more = next(chunks, b"")
        if not more:
            raise UnsafeArchiveError(f"{name}: member {member.name!r}: truncated LZMA header")
        head += more
    _, _, props_size = struct.unpack_from("<BBH", head)
    if props_size != 5:
        raise UnsafeArchiveError(
            f"{name}: member {member.name!r}: LZMA properties are {props_size} bytes, expected 5"
        )
    props, dict_size = struct.unpack_from("<BL", head, 4)
    if props >= 9 * 5 * 5:
        raise UnsafeArchiveError(
            f"{name}: member {member.name!r}: invalid LZMA properties byte {props:#04x}"
        )
    lc, lp, pb = props % 9, props // 9 % 5, props // 45
    # A dictionary larger than the member can never be used (output past the
    # declared size is refused), and liblzma allocates it up front: cap it so a
    # header claiming 4 GiB costs nothing.
    dict_size = max(4096, min(dict_size, member.size))
    d = lzma.LZMADecompressor(
        format=lzma.FORMAT_RAW,
        filters=[{"id": lzma.FILTER_LZMA1, "dict_size": dict_size, "lc": lc, "lp": lp, "pb": pb}],
    )

    def rest() -> Iterator[bytes]:
        if len(head) > 9:
            yield head[9:]
        yield from chunks

    # The end-of-stream marker is optional (flag bit 1), so the stream may just
    # stop; the caller holds the output to the declared size and CRC either way.
    yield from inflate_buffered(d, rest(), name, member.name, needs_eof=False)
