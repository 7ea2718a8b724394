"""Distributed checkpoint files (``.distcp``): torch archives end to end.

``torch.distributed.checkpoint``'s ``FileSystemWriter`` writes the items of a
rank into one file, one after another (``filesystem.py``, ``_write_item``):
each tensor as ``torch.save(tensor, stream)``, each other object as the bytes
of ``torch.save(obj, BytesIO())``, with no byte between them and none around
them. Each archive counts its offsets from its own first byte (torch's zip
writer knows only the bytes it wrote), and the reader hands ``torch.load``
exactly one archive's range, as ``.metadata`` records it.

A file named ``*.distcp`` that starts with a zip local header is read here as
such a sequence, from its end: the remaining bytes must end with an archive's
end record (torch writes no comment), whose directory says where that archive
starts; that start is where the archive before it must end. Nothing is trusted
on that word alone: every archive found is then checked as strictly as a
``.pt`` file of its own (its members tile it from its first byte, local
headers agree with the directory, nothing follows its end record) and must be
a torch archive (every member in one top-level folder, which holds
``data.pkl``). A byte that belongs to no archive, before, between or after
them, is refused, naming the file and the offsets.
"""

from __future__ import annotations

import dataclasses
import os
from typing import BinaryIO, cast

from modelsign._archive._types import MAX_ENTRIES, Layout, Member
from modelsign._archive._zip import inspect_zip, relocated
from modelsign._archive._zipdir import (
    EndRecord,
    archive_start,
    end_record_at,
    find_end_record,
    read_directory,
)
from modelsign.errors import UnsafeArchiveError

__all__ = ["SUFFIX", "archive_extents", "inspect_concatenated", "is_concatenation"]

#: What ``FileSystemWriter`` names its data files (``DEFAULT_SUFFIX``).
SUFFIX = ".distcp"

_END_RECORD_SIZE = 22


def is_concatenation(display_name: str) -> bool:
    """Whether the file named ``display_name`` (its path, as every caller
    names it) is read as torch archives end to end."""
    return display_name.endswith(SUFFIX)


class _Slice:
    """The bytes ``[start, end)`` of ``f`` as a file of their own."""

    def __init__(self, f: BinaryIO, start: int, end: int) -> None:
        self._f = f
        self._start = start
        self._size = end - start
        self._pos = 0

    def seek(self, pos: int, whence: int = os.SEEK_SET, /) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._size}[whence]
        self._pos = base + pos
        return self._pos

    def tell(self) -> int:
        return self._pos

    def read(self, n: int = -1, /) -> bytes:
        left = max(0, self._size - self._pos)
        n = left if n < 0 else min(n, left)
        self._f.seek(self._start + self._pos)
        data = self._f.read(n)
        self._pos += len(data)
        return data


def _view(f: BinaryIO, start: int, end: int) -> BinaryIO:
    return cast(BinaryIO, _Slice(f, start, end))


def archive_extents(f: BinaryIO, size: int, name: str) -> list[tuple[int, int]]:
    """The ``[start, end)`` offsets of the archives of a ``.distcp`` file, in
    file order; refuses a byte that belongs to none."""
    extents: list[tuple[int, int]] = []
    end = size
    while end > 0:
        if len(extents) >= MAX_ENTRIES:
            raise UnsafeArchiveError(f"{name}: more than {MAX_ENTRIES} archives")
        window = _view(f, 0, end)
        record = end_record_at(window, end - _END_RECORD_SIZE, end, name)
        if record is None:
            record = _commented_record(window, end, size, name)
        start = archive_start(window, end, name, record)
        if not 0 <= start < end:
            raise UnsafeArchiveError(
                f"{name}: by the end records of the archive that ends at offset {end}, it "
                f"would start at offset {start}, outside the file"
            )
        # The end records, read from that start: what torch.load will read.
        where = f"{name} (the archive at offsets [{start}, {end}))"
        read_directory(_view(f, start, end), end - start, where, _moved(record, start))
        extents.append((start, end))
        end = start
    extents.reverse()
    return extents


def _moved(record: EndRecord, start: int) -> EndRecord:
    return dataclasses.replace(record, position=record.position - start)


def _commented_record(window: BinaryIO, end: int, size: int, name: str) -> EndRecord:
    """The end record of an archive with a comment, which must end at
    ``end``; else the bytes there belong to no archive."""
    record = find_end_record(window, end, name)
    declared = (
        None if record is None else record.position + _END_RECORD_SIZE + record.comment_length
    )
    if record is not None and declared == end:
        return record
    if end == size:
        if declared is not None and declared < end:
            raise UnsafeArchiveError(
                f"{name}: {end - declared} bytes after the last archive (offsets "
                f"[{declared}, {end})) belong to no archive, expected none"
            )
        raise UnsafeArchiveError(
            f"{name}: does not end with a zip end record: not torch archives end to end, "
            "as torch.distributed.checkpoint writes them"
        )
    if declared is not None and declared < end:
        raise UnsafeArchiveError(
            f"{name}: {end - declared} bytes between the archive ending at offset {declared} "
            f"and the archive at offset {end} (offsets [{declared}, {end})) belong to no "
            "archive, expected none"
        )
    raise UnsafeArchiveError(
        f"{name}: the {end} bytes before the archive at offset {end} (offsets [0, {end})) "
        "hold no complete archive: stray bytes before or between archives"
    )


def inspect_concatenated(f: BinaryIO, size: int, name: str) -> Layout:
    """Every archive of a ``.distcp`` file, each checked as a ``.pt`` file of
    its own; members are named ``@OFFSET/NAME`` (the offset of their archive)."""
    members: list[Member] = []
    for start, end in archive_extents(f, size, name):
        where = f"{name} (the archive at offsets [{start}, {end}))"
        view = _view(f, start, end)
        # The last end record signature of its tail, as zipfile and torch find it.
        record = find_end_record(view, end - start, where)
        if record is None:
            raise UnsafeArchiveError(f"{where}: no zip end record")
        layout, _ = inspect_zip(view, end - start, where, record)
        _check_torch_archive(layout, where)
        members.extend(relocated(m, start, f"@{start}/{m.name}") for m in layout.members)
        if len(members) > MAX_ENTRIES:
            raise UnsafeArchiveError(f"{name}: more than {MAX_ENTRIES} archive members")
    return Layout(kind="zip", members=tuple(members))


def _check_torch_archive(layout: Layout, where: str) -> None:
    """torch.save writes every record under one folder, ``data.pkl`` among them."""
    names = [m.name for m in layout.members]
    top = names[0].partition("/")[0] if names else ""
    stray = [n for n in names if not n.startswith(f"{top}/")]
    if not names or stray or f"{top}/data.pkl" not in names:
        found = ", ".join(repr(n) for n in names[:5]) or "no member"
        raise UnsafeArchiveError(
            f"{where}: not a torch archive: expected every member in one folder holding "
            f"data.pkl, as torch.save writes it; found {found}"
        )
