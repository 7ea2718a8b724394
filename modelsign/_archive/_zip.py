"""Zip archives: local headers, extents and member data, checked against the directory."""

from __future__ import annotations

import bz2
import itertools
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import BinaryIO

from modelsign._archive._inflate import inflate_buffered, inflate_deflate, inflate_lzma
from modelsign._archive._io import read_at, read_exact, read_range
from modelsign._archive._names import check_member_name, check_unique_names
from modelsign._archive._types import (
    MAX_CENTRAL_DIRECTORY_SIZE,
    MAX_ENTRIES,
    Hasher,
    Layout,
    Member,
)
from modelsign._archive._zipdir import (
    DESCRIPTOR_SIG,
    ENCRYPTION_FLAGS,
    FLAG_DESCRIPTOR,
    FLAG_UTF8,
    LOCAL,
    LOCAL_SIG,
    METHODS,
    EndRecord,
    ZipEntry,
    check_zip_features,
    find_end_record,
    read_central_directory,
    read_directory,
    zip64_values,
)
from modelsign.errors import UnsafeArchiveError


@dataclass(frozen=True)
class _ZipData:
    """What :func:`member_digest` needs to read a zip member without re-parsing the archive."""

    data_start: int
    compressed_size: int
    method: int
    crc: int


# The public Member has exactly four fields, but inflating a member needs its
# offset, compressed size and CRC. inspect() attaches them to the Member objects
# it returns under this attribute (outside the dataclass fields, so equality,
# hashing and repr are unaffected); a Member built elsewhere lacks it and
# member_digest then re-parses the archive to find the entry.
_ZIP_DATA_ATTR = "_modelsign_zip_data"


def inspect_zip(
    f: BinaryIO, size: int, name: str, end: EndRecord
) -> tuple[Layout, dict[str, ZipEntry]]:
    directory = read_directory(f, size, name, end)
    if directory.entries_total > MAX_ENTRIES:
        raise UnsafeArchiveError(
            f"{name}: the zip end record declares {directory.entries_total} entries, "
            f"more than the limit of {MAX_ENTRIES}"
        )
    if directory.cd_size > MAX_CENTRAL_DIRECTORY_SIZE:
        raise UnsafeArchiveError(
            f"{name}: the central directory is {directory.cd_size} bytes, "
            f"more than the limit of {MAX_CENTRAL_DIRECTORY_SIZE}"
        )
    # The directory ends where the (zip64) end record starts. Where it starts is
    # computed from its size, as zipfile does, so the entries can be read (and
    # named in messages) even when the declared offset is off.
    cd_start = directory.cd_end - directory.cd_size
    if cd_start < 0:
        raise UnsafeArchiveError(
            f"{name}: the central directory is declared {directory.cd_size} bytes long, "
            f"but the end record is at offset {directory.cd_end}"
        )
    entries = read_central_directory(f, name, cd_start, directory.cd_end)

    if directory.cd_offset != cd_start:
        shift = cd_start - directory.cd_offset
        listed = ", ".join(repr(e.name) for e in entries[:5]) or "no members"
        more = f" and {len(entries) - 5} more" if len(entries) > 5 else ""
        if shift > 0:
            why = (
                f"{shift} bytes precede the zip data (a polyglot such as pickle + zip, "
                "which zipfile opens and torch.load reads as a pickle)"
            )
        else:
            why = "the offset points past the directory's actual position"
        raise UnsafeArchiveError(
            f"{name}: the end record puts the central directory of {listed}{more} at "
            f"offset {directory.cd_offset}, but it is at offset {cd_start}: {why}"
        )
    if (directory.entries_on_disk, directory.entries_total) != (len(entries), len(entries)):
        raise UnsafeArchiveError(
            f"{name}: the end record declares {directory.entries_total} entries "
            f"({directory.entries_on_disk} on this disk), but the central directory holds "
            f"{len(entries)}"
        )

    _check_zip_names(name, entries)
    _read_local_headers(f, size, name, entries)
    _check_zip_extents(f, name, entries, cd_start)
    for entry in entries:
        _check_local_matches_central(name, entry)

    members: list[Member] = []
    by_name: dict[str, ZipEntry] = {}
    for entry in entries:
        if entry.is_dir:
            continue
        stored = entry.method == 0
        member = Member(
            name=entry.name,
            size=entry.size,
            data_range=(entry.data_start, entry.data_end) if stored else None,
            compression=METHODS[entry.method],
        )
        data = _ZipData(entry.data_start, entry.compressed_size, entry.method, entry.crc)
        object.__setattr__(member, _ZIP_DATA_ATTR, data)
        members.append(member)
        by_name[entry.name] = entry
    return Layout(kind="zip", members=tuple(members)), by_name


def relocated(member: Member, offset: int, name: str) -> Member:
    """``member`` of an archive that starts ``offset`` bytes into a larger
    file, named ``name``: its data range (and what :func:`zip_member_digest`
    reads) in that file's offsets."""
    data = getattr(member, _ZIP_DATA_ATTR)
    assert isinstance(data, _ZipData)
    start_end = member.data_range
    moved = Member(
        name=name,
        size=member.size,
        data_range=None if start_end is None else (start_end[0] + offset, start_end[1] + offset),
        compression=member.compression,
    )
    object.__setattr__(moved, _ZIP_DATA_ATTR, replace(data, data_start=data.data_start + offset))
    return moved


def _check_zip_names(name: str, entries: list[ZipEntry]) -> None:
    for entry in entries:
        check_member_name(name, entry.name)
        if entry.is_dir and entry.size != 0:
            raise UnsafeArchiveError(
                f"{name}: directory entry {entry.name!r} has {entry.size} bytes of content, "
                "expected 0"
            )
    check_unique_names(name, [(e.name.removesuffix("/"), e.is_dir) for e in entries])


def _read_local_headers(f: BinaryIO, size: int, name: str, entries: list[ZipEntry]) -> None:
    for entry in entries:
        if entry.header_offset + LOCAL.size > size:
            raise UnsafeArchiveError(
                f"{name}: member {entry.name!r} has its local header at offset "
                f"{entry.header_offset}, outside the file ({size} bytes)"
            )
        # One read usually covers the fixed part, the name and torch's padding.
        ahead = min(LOCAL.size + 512, size - entry.header_offset)
        raw = read_at(f, entry.header_offset, ahead, size, name, "a local header")
        (sig, version_needed, flags, method, _, _, crc, csize, usize, name_len, extra_len) = (
            LOCAL.unpack_from(raw)
        )
        if sig != LOCAL_SIG:
            raise UnsafeArchiveError(
                f"{name}: member {entry.name!r}: no local header at offset "
                f"{entry.header_offset}: found signature {sig!r}, expected {LOCAL_SIG!r}"
            )
        variable = raw[LOCAL.size : LOCAL.size + name_len + extra_len]
        if len(variable) < name_len + extra_len:
            variable += read_exact(f, name_len + extra_len - len(variable), name, "a local header")
        entry.local_name = variable[:name_len]
        if sig == LOCAL_SIG:
            check_zip_features(name, entry.name, version_needed, flags, "local header")
        entry.local_flags = flags
        entry.local_method = method
        entry.local_crc = crc
        entry.data_start = entry.header_offset + LOCAL.size + name_len + extra_len
        # A data descriptor lets the local sizes be zero, so a zip64 block is only
        # required when they hold the sentinel.
        entry.local_size, entry.local_compressed_size = zip64_values(
            name, entry.name, variable[name_len:], [usize, csize], "local header"
        )
        if entry.data_end > size:
            raise UnsafeArchiveError(
                f"{name}: truncated zip: the data of member {entry.name!r} ends at offset "
                f"{entry.data_end}, past the end of the file ({size} bytes)"
            )


def _check_zip_extents(f: BinaryIO, name: str, entries: list[ZipEntry], cd_start: int) -> None:
    """Members must tile the file from offset 0 to the central directory.

    Bytes before the first member make a polyglot (pickle + zip); overlapping
    members make "zip bombs" and let two names share bytes; bytes between members
    can hold local headers that only streaming readers see.
    """
    ordered = sorted(entries, key=lambda e: (e.header_offset, e.index))
    if ordered and ordered[0].header_offset != 0:
        first = ordered[0]
        raise UnsafeArchiveError(
            f"{name}: {first.header_offset} bytes before the first local header (member "
            f"{first.name!r} at offset {first.header_offset}, expected 0): a polyglot such "
            "as pickle + zip, read differently by torch.load and zipfile"
        )
    for current, following in itertools.pairwise(ordered):
        if following.header_offset < current.data_end:
            raise UnsafeArchiveError(
                f"{name}: members {current.name!r} and {following.name!r} overlap: "
                f"{current.name!r} spans offsets [{current.header_offset}, {current.data_end}) "
                f"and {following.name!r} starts at offset {following.header_offset}"
            )
    if ordered and ordered[-1].data_end > cd_start:
        last = ordered[-1]
        raise UnsafeArchiveError(
            f"{name}: the data of member {last.name!r} ends at offset {last.data_end}, "
            f"inside the central directory that starts at offset {cd_start}"
        )
    for i, current in enumerate(ordered):
        next_start = ordered[i + 1].header_offset if i + 1 < len(ordered) else cd_start
        gap = next_start - current.data_end
        if current.flags & FLAG_DESCRIPTOR:
            _check_descriptor(f, name, current, gap)
        elif gap:
            raise UnsafeArchiveError(
                f"{name}: {gap} unaccounted bytes after member {current.name!r} "
                f"(offsets [{current.data_end}, {next_start})), expected none"
            )


def _check_descriptor(f: BinaryIO, name: str, entry: ZipEntry, gap: int) -> None:
    """The bytes after a bit-3 member must be exactly a data descriptor matching the directory.

    Streaming readers take CRC and sizes from it; its four layouts (with or
    without signature, 32- or 64-bit sizes) have distinct lengths.
    """
    layouts = {12: ("", "<3L"), 16: ("sig", "<3L"), 20: ("", "<LQQ"), 24: ("sig", "<LQQ")}
    if gap not in layouts:
        raise UnsafeArchiveError(
            f"{name}: member {entry.name!r} announces a data descriptor (flag bit 3), but "
            f"{gap} bytes follow its data, expected 12, 16, 20 or 24"
        )
    f.seek(entry.data_end)
    raw = read_exact(f, gap, name, "a data descriptor")
    signed, layout = layouts[gap]
    if signed:
        if raw[:4] != DESCRIPTOR_SIG:
            raise UnsafeArchiveError(
                f"{name}: member {entry.name!r}: bad data descriptor signature {raw[:4]!r}"
            )
        raw = raw[4:]
    found = struct.unpack(layout, raw)
    expected = (entry.crc, entry.compressed_size, entry.size)
    if found != expected:
        raise UnsafeArchiveError(
            f"{name}: member {entry.name!r}: data descriptor says (CRC, compressed size, size) "
            f"= {found}, the central directory says {expected}"
        )


def _check_local_matches_central(name: str, entry: ZipEntry) -> None:
    local_name = entry.local_name.decode("utf-8" if entry.local_flags & FLAG_UTF8 else "cp437")
    if entry.local_name != entry.raw_name or local_name != entry.name:
        raise UnsafeArchiveError(
            f"{name}: member {entry.name!r}: local header name is {local_name!r}, "
            f"expected {entry.name!r} as in the central directory"
        )
    if entry.local_flags & ENCRYPTION_FLAGS:
        raise UnsafeArchiveError(
            f"{name}: member {entry.name!r}: local header is encrypted "
            f"(flags {entry.local_flags:#06x})"
        )
    if entry.local_method != entry.method:
        raise UnsafeArchiveError(
            f"{name}: member {entry.name!r}: local header compression method is "
            f"{entry.local_method}, central directory says {entry.method}"
        )
    if (entry.local_flags ^ entry.flags) & FLAG_DESCRIPTOR:
        raise UnsafeArchiveError(
            f"{name}: member {entry.name!r}: the data descriptor flag (bit 3) differs between "
            f"local header ({entry.local_flags:#06x}) and central directory ({entry.flags:#06x})"
        )
    if entry.method == 0 and entry.compressed_size != entry.size:
        raise UnsafeArchiveError(
            f"{name}: member {entry.name!r} is stored uncompressed but its compressed size "
            f"{entry.compressed_size} differs from its size {entry.size}"
        )
    local = (entry.local_crc, entry.local_compressed_size, entry.local_size)
    central = (entry.crc, entry.compressed_size, entry.size)
    for what, found, expected in zip(
        ("CRC-32", "compressed size", "size"), local, central, strict=True
    ):
        # With a data descriptor the local fields may be zero (the descriptor,
        # checked separately, carries the values); otherwise they must match.
        if found != expected and not (entry.flags & FLAG_DESCRIPTOR and found == 0):
            raise UnsafeArchiveError(
                f"{name}: member {entry.name!r}: local header {what} is {found}, "
                f"central directory says {expected}"
            )


# --------------------------------------------------------------------------
# Zip: member content.


def zip_member_digest(
    f: BinaryIO, member: Member, algorithm: Callable[[], Hasher], name: str
) -> str:
    data = getattr(member, _ZIP_DATA_ATTR, None)
    if not isinstance(data, _ZipData):
        data = _find_zip_data(f, member, name)
    if METHODS.get(data.method) != member.compression:
        raise UnsafeArchiveError(
            f"{name}: member {member.name!r} says compression {member.compression!r}, the "
            f"archive says method {data.method}"
        )
    chunks = read_range(f, data.data_start, data.compressed_size, name, member.name)
    if data.method == 0:
        pieces: Iterator[bytes] = chunks
    elif data.method == 8:
        pieces = inflate_deflate(chunks, name, member.name)
    elif data.method == 12:
        pieces = inflate_buffered(bz2.BZ2Decompressor(), chunks, name, member.name, needs_eof=True)
    else:
        pieces = inflate_lzma(chunks, name, member)

    # member.size <= max_bytes was checked by the caller, so holding the output
    # to the declared size also holds it to max_bytes.
    digest = algorithm()
    crc = 0
    produced = 0
    for piece in pieces:
        produced += len(piece)
        if produced > member.size:
            raise UnsafeArchiveError(
                f"{name}: member {member.name!r} inflates to more than its declared size of "
                f"{member.size} bytes: a zip bomb or a lying header"
            )
        digest.update(piece)
        crc = zlib.crc32(piece, crc)
    if produced != member.size:
        raise UnsafeArchiveError(
            f"{name}: member {member.name!r} inflates to {produced} bytes, "
            f"expected its declared size of {member.size}"
        )
    if crc != data.crc:
        raise UnsafeArchiveError(
            f"{name}: member {member.name!r} fails its CRC-32 check: "
            f"computed {crc:08x}, expected {data.crc:08x}"
        )
    return digest.hexdigest()


def _find_zip_data(f: BinaryIO, member: Member, name: str) -> _ZipData:
    """Re-parse the archive to find a member that :func:`inspect` did not create."""
    f.seek(0, 2)
    size = f.tell()
    end = find_end_record(f, size, name)
    if end is None:
        raise UnsafeArchiveError(f"{name}: not a zip archive (no end of central directory record)")
    layout, by_name = inspect_zip(f, size, name, end)
    entry = by_name.get(member.name)
    if entry is None or member not in layout.members:
        raise UnsafeArchiveError(
            f"{name}: member {member.name!r} (size {member.size}, {member.compression}) is not "
            "in the archive"
        )
    return _ZipData(entry.data_start, entry.compressed_size, entry.method, entry.crc)
