"""Structural inspection of zip and tar model archives.

A PyTorch ``.pt`` file is a zip archive, an ``.npz`` file is a (possibly
deflated) zip archive, and some models ship as ``.tar`` files. Different readers
resolve ambiguous archives differently: torch looks names up case-insensitively
and takes the *first* of duplicate names, Python's :mod:`zipfile` takes the
*last*, streaming readers trust local headers while random-access readers trust
the central directory, and a file that is both a pickle and a zip is a pickle
to ``torch.load`` but a zip to :mod:`zipfile`. A signature over such a file
would vouch for content that a reviewer and a loader may see differently, so
modelsign refuses every structural ambiguity it can detect and lists the members
of the rest (name, size, digest) in its manifest.

The zip structures are parsed here with :mod:`struct` rather than
:mod:`zipfile`, because :mod:`zipfile` silently tolerates most of what must be
refused (prepended bytes, duplicates, local headers that disagree with the
central directory). Compressed members are inflated here too, so that a member
that inflates past its declared size is refused instead of silently truncated.
Tar headers are parsed by :mod:`tarfile`, with the checks it does not make
added around it.

Only headers and directories are read by :func:`inspect`; member data is read in
bounded chunks by :func:`member_digest`, so multi-GB files are fine.
"""

from __future__ import annotations

import bz2
import itertools
import lzma
import stat
import struct
import tarfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Literal, Protocol, TypeVar

from modelsign._paths import collision_key, name_problem
from modelsign.errors import UnsafeArchiveError

__all__ = ["Hasher", "Layout", "Member", "inspect", "member_digest"]


@dataclass(frozen=True)
class Member:
    """One file in an archive, as listed in the manifest."""

    name: str
    """The name as stored (zip: UTF-8 if flag bit 11 is set, else cp437; tar: UTF-8 or PAX)."""
    size: int
    """Uncompressed size in bytes."""
    data_range: tuple[int, int] | None
    """``(start, end)`` offsets of the member's bytes in the archive file when they are stored
    uncompressed and contiguously; ``None`` when the member is compressed."""
    compression: str
    """``"stored"``, ``"deflate"``, ``"bzip2"`` or ``"lzma"``."""


@dataclass(frozen=True)
class Layout:
    """The kind of an archive and its members in central directory / tar order."""

    kind: Literal["zip", "tar"]
    members: tuple[Member, ...]


class Hasher(Protocol):
    """What :func:`member_digest` needs of a hash object: ``hashlib._Hash`` and blake3 fit."""

    def update(self, data: bytes, /) -> object: ...
    def hexdigest(self) -> str: ...


# Limits. Real models have a few thousand members at most.
MAX_ENTRIES = 1_000_000
# Bounds memory spent on the central directory of a hostile zip: the entry limit
# times a generous 512 bytes per entry.
MAX_CENTRAL_DIRECTORY_SIZE = 512 * 1024 * 1024
# Bounds memory spent on one tar extension header (PAX records, GNU long name):
# tarfile reads each of those into memory in one piece.
MAX_TAR_EXTENSION_HEADER = 1024 * 1024
# Read and inflate in pieces of this size, so memory stays bounded.
_CHUNK = 1024 * 1024

# --------------------------------------------------------------------------
# Zip format constants (APPNOTE.TXT).

_LOCAL_SIG = b"PK\x03\x04"
_CENTRAL_SIG = b"PK\x01\x02"
_EOCD_SIG = b"PK\x05\x06"
_EOCD64_SIG = b"PK\x06\x06"
_LOCATOR_SIG = b"PK\x06\x07"
_DESCRIPTOR_SIG = b"PK\x07\x08"

_LOCAL = struct.Struct("<4s5H3L2H")  # 30 bytes
_CENTRAL = struct.Struct("<4s6H3L5H2L")  # 46 bytes
_EOCD = struct.Struct("<4s4H2LH")  # 22 bytes
_EOCD64 = struct.Struct("<4sQ2H2L4Q")  # 56 bytes
_LOCATOR = struct.Struct("<4sLQL")  # 20 bytes

# The end record is the last structure of a zip file and may be followed by a
# comment of at most 65,535 bytes, so it starts in the last 65,535 + 22 bytes.
_EOCD_SEARCH = 0xFFFF + _EOCD.size

_U16_SENTINEL = 0xFFFF
_U32_SENTINEL = 0xFFFFFFFF
_ZIP64_EXTRA_ID = 0x0001

_FLAG_ENCRYPTED = 1 << 0
_FLAG_DESCRIPTOR = 1 << 3
_FLAG_STRONG_ENCRYPTION = 1 << 6
_FLAG_UTF8 = 1 << 11
_FLAG_MASKED_HEADERS = 1 << 13
_ENCRYPTION_FLAGS = _FLAG_ENCRYPTED | _FLAG_STRONG_ENCRYPTION | _FLAG_MASKED_HEADERS

_METHODS = {0: "stored", 8: "deflate", 12: "bzip2", 14: "lzma"}
_UNIX_HOST = 3


def inspect(f: BinaryIO, size: int, display_name: str) -> Layout | None:
    """Detect by content whether ``f`` is a zip or tar archive and return its layout.

    Returns ``None`` when the file is neither (a plain pickle, a safetensors file,
    text, an empty file). Raises :class:`UnsafeArchiveError` when it is an archive
    that readers could interpret differently, or one that claims to be an archive
    (zip signature at offset 0, ``ustar`` magic) but cannot be parsed.
    """
    try:
        return _inspect(f, size, display_name)
    except UnsafeArchiveError:
        raise
    except (
        struct.error,
        zlib.error,
        EOFError,
        UnicodeDecodeError,
        OSError,
        ValueError,
        OverflowError,
        tarfile.TarError,
    ) as e:
        raise UnsafeArchiveError(
            f"{display_name}: cannot parse the archive structure: {type(e).__name__}: {e}"
        ) from e


def member_digest(
    f: BinaryIO,
    layout: Layout,
    member: Member,
    algorithm: Callable[[], Hasher],
    display_name: str,
    max_bytes: int,
) -> str:
    """Hex digest of ``member``'s uncompressed content, read and inflated in chunks.

    Raises :class:`UnsafeArchiveError` when the member is larger than ``max_bytes``
    (for every compression, so the caller's bound holds however the member is
    stored), inflates to more or less than its declared size, fails to inflate,
    or fails its CRC-32 check (zip).
    """
    if member.size > max_bytes:
        raise UnsafeArchiveError(
            f"{display_name}: member {member.name!r} declares {member.size} bytes, "
            f"more than the limit of {max_bytes} bytes"
        )
    try:
        if layout.kind == "tar":
            return _tar_member_digest(f, member, algorithm, display_name)
        return _zip_member_digest(f, member, algorithm, display_name)
    except UnsafeArchiveError:
        raise
    except (
        struct.error,
        zlib.error,
        lzma.LZMAError,
        EOFError,
        UnicodeDecodeError,
        OSError,
        ValueError,
        OverflowError,
    ) as e:
        raise UnsafeArchiveError(
            f"{display_name}: cannot read member {member.name!r}: {type(e).__name__}: {e}"
        ) from e


def _inspect(f: BinaryIO, size: int, display_name: str) -> Layout | None:
    head = _read_at(f, 0, min(size, tarfile.BLOCKSIZE), size, display_name, "the file header")
    # torch.load and numpy.load decide "zip" by these signatures at offset 0, so
    # such a file must be a valid zip: one without an end record is refused, not
    # passed on as "not an archive".
    if head.startswith((_LOCAL_SIG, _EOCD_SIG)):
        found = _find_end_record(f, size, display_name)
        if found is None:
            raise UnsafeArchiveError(
                f"{display_name}: starts with a zip signature {head[:4]!r} but has no end of "
                f"central directory record in its last {_EOCD_SEARCH} bytes: a truncated or "
                "damaged zip archive"
            )
        return _inspect_zip(f, size, display_name, found)[0]
    if head[257:262] == b"ustar":
        return _inspect_tar(f, size, display_name)
    # Python's zipfile also accepts a zip that is preceded by other bytes (it finds
    # the end record and shifts every offset), so a pickle followed by a zip is a
    # zip to zipfile and a pickle to torch. Such a file is parsed as a zip, which
    # then refuses it. A stray end record signature in non-zip data (a tensor
    # that happens to contain b"PK\x05\x06") is told apart by checking whether the
    # record would lead zipfile to a central directory.
    found = _find_end_record(f, size, display_name)
    if found is None or not _zipfile_would_open(f, size, display_name, found):
        return None
    return _inspect_zip(f, size, display_name, found)[0]


# --------------------------------------------------------------------------
# Zip: the end records.


@dataclass(frozen=True)
class _EndRecord:
    position: int
    disk: int
    cd_disk: int
    entries_on_disk: int
    entries_total: int
    cd_size: int
    cd_offset: int
    comment_length: int


@dataclass(frozen=True)
class _Directory:
    """Where the central directory is, per the (zip64) end records."""

    entries_on_disk: int
    entries_total: int
    cd_size: int
    cd_offset: int
    cd_end: int
    """Offset where the central directory must end: the zip64 end record, or the end record."""


def _find_end_record(f: BinaryIO, size: int, display_name: str) -> _EndRecord | None:
    """The last end of central directory record in the file's tail, if any.

    zipfile and miniz (torch's reader) both take the last signature they find
    scanning backwards, so the same one is used here.
    """
    tail_start = max(0, size - _EOCD_SEARCH)
    tail = _read_at(f, tail_start, size - tail_start, size, display_name, "the zip end record")
    # Only signatures followed by a complete 22-byte record can be end records.
    index = tail.rfind(_EOCD_SIG, 0, max(0, len(tail) - _EOCD.size + len(_EOCD_SIG)))
    if index < 0:
        return None
    _, disk, cd_disk, on_disk, total, cd_size, cd_offset, comment_length = _EOCD.unpack_from(
        tail, index
    )
    return _EndRecord(
        tail_start + index, disk, cd_disk, on_disk, total, cd_size, cd_offset, comment_length
    )


def _zipfile_would_open(f: BinaryIO, size: int, display_name: str, end: _EndRecord) -> bool:
    """Whether Python's zipfile would accept this end record, whatever precedes the zip."""
    if end.position >= _LOCATOR.size:
        locator = _read_at(
            f, end.position - _LOCATOR.size, 4, size, display_name, "the zip64 locator"
        )
        if locator == _LOCATOR_SIG:
            return True
    if end.cd_size == 0:
        return True
    cd_start = end.position - end.cd_size
    if cd_start < 0:
        return False
    return _read_at(f, cd_start, 4, size, display_name, "the central directory") == _CENTRAL_SIG


def _read_directory(f: BinaryIO, size: int, name: str, end: _EndRecord) -> _Directory:
    """Validate the end record (and zip64 end record) and say where the directory is."""
    declared_end = end.position + _EOCD.size + end.comment_length
    if declared_end > size:
        raise UnsafeArchiveError(
            f"{name}: truncated zip: the end record at offset {end.position} declares a "
            f"{end.comment_length}-byte comment ending at offset {declared_end}, "
            f"but the file has only {size} bytes"
        )
    if declared_end < size:
        # Nothing may follow the archive: other readers could look there for
        # another end record, and it is a place to hide a second file format.
        raise UnsafeArchiveError(
            f"{name}: {size - declared_end} bytes of trailing data after the zip end record "
            f"and comment (archive ends at offset {declared_end}, file size {size})"
        )

    locator_pos = end.position - _LOCATOR.size
    is_zip64 = (
        locator_pos >= 0
        and _read_at(f, locator_pos, 4, size, name, "the zip64 locator") == _LOCATOR_SIG
    )
    if not is_zip64:
        if (end.disk, end.cd_disk) != (0, 0):
            raise UnsafeArchiveError(
                f"{name}: multi-disk zip archives are not supported: the end record says "
                f"disk {end.disk}, central directory on disk {end.cd_disk}, expected 0 and 0"
            )
        return _Directory(
            end.entries_on_disk, end.entries_total, end.cd_size, end.cd_offset, end.position
        )

    raw_locator = _read_at(f, locator_pos, _LOCATOR.size, size, name, "the zip64 locator")
    _, locator_disk, record_pos, total_disks = _LOCATOR.unpack(raw_locator)
    if locator_disk != 0 or total_disks > 1:
        raise UnsafeArchiveError(
            f"{name}: multi-disk zip archives are not supported: the zip64 locator says "
            f"disk {locator_disk} of {total_disks}, expected disk 0 of 1"
        )
    # zipfile ignores the locator's pointer and reads the 56-byte zip64 end record
    # right before the locator; miniz follows the pointer. Both must agree.
    expected_pos = locator_pos - _EOCD64.size
    if record_pos != expected_pos:
        raise UnsafeArchiveError(
            f"{name}: the zip64 locator points at offset {record_pos} for the zip64 end "
            f"record, expected {expected_pos} (immediately before the locator)"
        )
    raw = _read_at(f, record_pos, _EOCD64.size, size, name, "the zip64 end record")
    sig, record_size, _, _, disk, cd_disk, on_disk, total, cd_size, cd_offset = _EOCD64.unpack(raw)
    if sig != _EOCD64_SIG:
        raise UnsafeArchiveError(
            f"{name}: no zip64 end record at offset {record_pos}: found signature {sig!r}, "
            f"expected {_EOCD64_SIG!r}"
        )
    if record_size != _EOCD64.size - 12:
        raise UnsafeArchiveError(
            f"{name}: the zip64 end record declares size {record_size}, expected "
            f"{_EOCD64.size - 12} (an extensible data sector moves it where zipfile does not look)"
        )
    if (disk, cd_disk) != (0, 0):
        raise UnsafeArchiveError(
            f"{name}: multi-disk zip archives are not supported: the zip64 end record says "
            f"disk {disk}, central directory on disk {cd_disk}, expected 0 and 0"
        )
    # The classic record must either repeat the zip64 values or hold the "see
    # zip64" sentinel; anything else is a second answer some reader may use.
    for what, classic, wide, sentinel in (
        ("disk number", end.disk, 0, _U16_SENTINEL),
        ("central directory disk", end.cd_disk, 0, _U16_SENTINEL),
        ("entries on this disk", end.entries_on_disk, on_disk, _U16_SENTINEL),
        ("total entries", end.entries_total, total, _U16_SENTINEL),
        ("central directory size", end.cd_size, cd_size, _U32_SENTINEL),
        ("central directory offset", end.cd_offset, cd_offset, _U32_SENTINEL),
    ):
        if classic not in (wide, sentinel):
            raise UnsafeArchiveError(
                f"{name}: the end record's {what} is {classic} but the zip64 end record "
                f"says {wide} (expected equal, or the sentinel {sentinel:#x})"
            )
    return _Directory(on_disk, total, cd_size, cd_offset, record_pos)


# --------------------------------------------------------------------------
# Zip: the central directory and local headers.


@dataclass
class _ZipEntry:
    """One central directory entry, plus what its local header says (filled in later)."""

    index: int
    name: str
    raw_name: bytes
    flags: int
    method: int
    crc: int
    compressed_size: int
    size: int
    header_offset: int
    data_start: int = -1
    local_name: bytes = b""
    local_flags: int = 0
    local_method: int = 0
    local_crc: int = 0
    local_compressed_size: int = 0
    local_size: int = 0

    @property
    def is_dir(self) -> bool:
        return self.name.endswith("/")

    @property
    def data_end(self) -> int:
        return self.data_start + self.compressed_size


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


def _inspect_zip(
    f: BinaryIO, size: int, name: str, end: _EndRecord
) -> tuple[Layout, dict[str, _ZipEntry]]:
    directory = _read_directory(f, size, name, end)
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
    entries = _read_central_directory(f, name, cd_start, directory.cd_end)

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
    by_name: dict[str, _ZipEntry] = {}
    for entry in entries:
        if entry.is_dir:
            continue
        stored = entry.method == 0
        member = Member(
            name=entry.name,
            size=entry.size,
            data_range=(entry.data_start, entry.data_end) if stored else None,
            compression=_METHODS[entry.method],
        )
        data = _ZipData(entry.data_start, entry.compressed_size, entry.method, entry.crc)
        object.__setattr__(member, _ZIP_DATA_ATTR, data)
        members.append(member)
        by_name[entry.name] = entry
    return Layout(kind="zip", members=tuple(members)), by_name


def _read_central_directory(f: BinaryIO, name: str, start: int, end: int) -> list[_ZipEntry]:
    entries: list[_ZipEntry] = []
    window = _Window(f, start, end, name)
    pos = start
    while pos < end:
        if len(entries) >= MAX_ENTRIES:
            raise UnsafeArchiveError(
                f"{name}: the central directory holds more than {MAX_ENTRIES} entries"
            )
        if pos + _CENTRAL.size > end:
            raise UnsafeArchiveError(
                f"{name}: central directory entry #{len(entries)} at offset {pos} runs past "
                f"the end of the central directory at offset {end}"
            )
        (
            sig,
            made_by,
            version_needed,
            flags,
            method,
            _,
            _,
            crc,
            compressed_size,
            file_size,
            name_len,
            extra_len,
            comment_len,
            disk,
            _,
            external_attr,
            header_offset,
        ) = _CENTRAL.unpack(window.take(_CENTRAL.size, "a central directory entry"))
        if sig != _CENTRAL_SIG:
            raise UnsafeArchiveError(
                f"{name}: no central directory entry #{len(entries)} at offset {pos}: "
                f"found signature {sig!r}, expected {_CENTRAL_SIG!r}"
            )
        entry_end = pos + _CENTRAL.size + name_len + extra_len + comment_len
        if entry_end > end:
            raise UnsafeArchiveError(
                f"{name}: central directory entry #{len(entries)} at offset {pos} runs past "
                f"the end of the central directory at offset {end}"
            )
        raw_name = window.take(name_len, "a member name")
        extra = window.take(extra_len, "an extra field")
        window.take(comment_len, "a member comment")
        member = _decode_zip_name(name, raw_name, flags, len(entries))

        if flags & _ENCRYPTION_FLAGS:
            raise UnsafeArchiveError(
                f"{name}: member {member!r} is encrypted (general purpose flags {flags:#06x}); "
                "encrypted members cannot be verified"
            )
        _check_zip_features(name, member, version_needed, flags, "central directory")
        if method not in _METHODS:
            raise UnsafeArchiveError(
                f"{name}: member {member!r} uses compression method {method}, expected one of "
                f"{sorted(_METHODS)} ({', '.join(_METHODS.values())})"
            )
        if disk != 0:
            raise UnsafeArchiveError(
                f"{name}: member {member!r} starts on disk {disk}, expected disk 0 "
                "(multi-disk archives are not supported)"
            )
        # Unix extractors honour the file type in the external attributes, so a
        # zip entry can be a symlink or device just like a tar member.
        if made_by >> 8 == _UNIX_HOST:
            mode = external_attr >> 16
            kind = stat.S_IFMT(mode)
            if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise UnsafeArchiveError(
                    f"{name}: member {member!r} has Unix file type {_file_type(kind)} "
                    f"(mode {mode:#o}); only regular files and directories are allowed"
                )

        values = _zip64_values(
            name, member, extra, [file_size, compressed_size, header_offset], "central directory"
        )
        file_size, compressed_size, header_offset = values
        entries.append(
            _ZipEntry(
                index=len(entries),
                name=member,
                raw_name=raw_name,
                flags=flags,
                method=method,
                crc=crc,
                compressed_size=compressed_size,
                size=file_size,
                header_offset=header_offset,
            )
        )
        pos = entry_end
    return entries


def _file_type(kind: int) -> str:
    names = {
        stat.S_IFLNK: "symlink",
        stat.S_IFCHR: "character device",
        stat.S_IFBLK: "block device",
        stat.S_IFIFO: "FIFO",
        stat.S_IFSOCK: "socket",
    }
    return names.get(kind, f"{kind:#o}")


def _decode_zip_name(name: str, raw: bytes, flags: int, index: int) -> str:
    encoding = "utf-8" if flags & _FLAG_UTF8 else "cp437"
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as e:
        raise UnsafeArchiveError(
            f"{name}: the name of member #{index} ({raw!r}) is flagged as UTF-8 but is not "
            "valid UTF-8"
        ) from e


def _parse_extra(name: str, member: str, extra: bytes, where: str) -> dict[int, bytes]:
    """Split an extra field into its blocks, refusing repeated or overrunning blocks."""
    blocks: dict[int, bytes] = {}
    pos = 0
    # zipfile also ignores 1-3 trailing bytes too short to hold a block header.
    while pos + 4 <= len(extra):
        block_id, length = struct.unpack_from("<HH", extra, pos)
        if pos + 4 + length > len(extra):
            raise UnsafeArchiveError(
                f"{name}: member {member!r} has a corrupt {where} extra field: block "
                f"{block_id:#06x} declares {length} bytes, only {len(extra) - pos - 4} remain"
            )
        if block_id in blocks:
            # Readers differ on whether the first or the last block counts.
            raise UnsafeArchiveError(
                f"{name}: member {member!r} has two {where} extra blocks of type {block_id:#06x}"
            )
        blocks[block_id] = extra[pos + 4 : pos + 4 + length]
        pos += 4 + length
    return blocks


def _zip64_values(name: str, member: str, extra: bytes, fields: list[int], where: str) -> list[int]:
    """Replace each 0xFFFFFFFF field by the next value of the zip64 extra block.

    ``fields`` are in the order of the zip64 block: uncompressed size, compressed
    size[, local header offset]. Only sentinel fields have a value in the block
    (APPNOTE 4.5.3), which is also how zipfile and miniz read it.
    """
    blocks = _parse_extra(name, member, extra, where)
    needed = [i for i, value in enumerate(fields) if value == _U32_SENTINEL]
    if not needed:
        return fields
    block = blocks.get(_ZIP64_EXTRA_ID)
    if block is None or len(block) < 8 * len(needed):
        found = "none" if block is None else f"{len(block)} bytes"
        raise UnsafeArchiveError(
            f"{name}: member {member!r} has {len(needed)} {where} field(s) set to 0xFFFFFFFF "
            f"but its zip64 extra block holds {found}, expected {8 * len(needed)} bytes"
        )
    result = list(fields)
    for slot, i in enumerate(needed):
        (result[i],) = struct.unpack_from("<Q", block, 8 * slot)
    return result


def _check_member_name(display_name: str, member: str) -> None:
    """Refuse names that differ between readers or escape the extraction
    directory (a directory entry's trailing ``/`` aside)."""
    problem = name_problem(member[:-1] if member.endswith("/") else member)
    if problem is not None:
        raise UnsafeArchiveError(f"{display_name}: member name {member!r} {problem}")


def _check_unique_names(display_name: str, names: list[tuple[str, bool]]) -> None:
    """Refuse duplicates, case/Unicode collisions and files used as directories.

    ``names`` are (name without trailing slash, is_directory) in archive order.
    """
    exact: set[str] = set()
    folded: dict[str, str] = {}
    files: dict[str, str] = {}
    for member, is_dir in names:
        if member in exact:
            raise UnsafeArchiveError(
                f"{display_name}: duplicate member name {member!r} (readers disagree on "
                "which copy counts: torch takes the first, zipfile the last)"
            )
        exact.add(member)
        key = collision_key(member)
        if key in folded:
            raise UnsafeArchiveError(
                f"{display_name}: member names {folded[key]!r} and {member!r} collide "
                "case-insensitively (torch looks names up case-insensitively)"
            )
        folded[key] = member
        if not is_dir:
            files[key] = member
    for member, _ in names:
        parts = collision_key(member).split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent in files:
                raise UnsafeArchiveError(
                    f"{display_name}: member {files[parent]!r} is a file but member "
                    f"{member!r} uses it as a directory"
                )


def _check_zip_names(name: str, entries: list[_ZipEntry]) -> None:
    for entry in entries:
        _check_member_name(name, entry.name)
        if entry.is_dir and entry.size != 0:
            raise UnsafeArchiveError(
                f"{name}: directory entry {entry.name!r} has {entry.size} bytes of content, "
                "expected 0"
            )
    _check_unique_names(name, [(e.name.removesuffix("/"), e.is_dir) for e in entries])


def _read_local_headers(f: BinaryIO, size: int, name: str, entries: list[_ZipEntry]) -> None:
    for entry in entries:
        if entry.header_offset + _LOCAL.size > size:
            raise UnsafeArchiveError(
                f"{name}: member {entry.name!r} has its local header at offset "
                f"{entry.header_offset}, outside the file ({size} bytes)"
            )
        # One read usually covers the fixed part, the name and torch's padding.
        ahead = min(_LOCAL.size + 512, size - entry.header_offset)
        raw = _read_at(f, entry.header_offset, ahead, size, name, "a local header")
        (sig, version_needed, flags, method, _, _, crc, csize, usize, name_len, extra_len) = (
            _LOCAL.unpack_from(raw)
        )
        if sig != _LOCAL_SIG:
            raise UnsafeArchiveError(
                f"{name}: member {entry.name!r}: no local header at offset "
                f"{entry.header_offset}: found signature {sig!r}, expected {_LOCAL_SIG!r}"
            )
        variable = raw[_LOCAL.size : _LOCAL.size + name_len + extra_len]
        if len(variable) < name_len + extra_len:
            variable += _read_exact(f, name_len + extra_len - len(variable), name, "a local header")
        entry.local_name = variable[:name_len]
        if sig == _LOCAL_SIG:
            _check_zip_features(name, entry.name, version_needed, flags, "local header")
        entry.local_flags = flags
        entry.local_method = method
        entry.local_crc = crc
        entry.data_start = entry.header_offset + _LOCAL.size + name_len + extra_len
        # A data descriptor lets the local sizes be zero, so a zip64 block is only
        # required when they hold the sentinel.
        entry.local_size, entry.local_compressed_size = _zip64_values(
            name, entry.name, variable[name_len:], [usize, csize], "local header"
        )
        if entry.data_end > size:
            raise UnsafeArchiveError(
                f"{name}: truncated zip: the data of member {entry.name!r} ends at offset "
                f"{entry.data_end}, past the end of the file ({size} bytes)"
            )


def _check_zip_extents(f: BinaryIO, name: str, entries: list[_ZipEntry], cd_start: int) -> None:
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
        if current.flags & _FLAG_DESCRIPTOR:
            _check_descriptor(f, name, current, gap)
        elif gap:
            raise UnsafeArchiveError(
                f"{name}: {gap} unaccounted bytes after member {current.name!r} "
                f"(offsets [{current.data_end}, {next_start})), expected none"
            )


def _check_descriptor(f: BinaryIO, name: str, entry: _ZipEntry, gap: int) -> None:
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
    raw = _read_exact(f, gap, name, "a data descriptor")
    signed, layout = layouts[gap]
    if signed:
        if raw[:4] != _DESCRIPTOR_SIG:
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


#: The newest "version needed to extract" every reader takes (zipfile refuses
#: above 6.3; torch's miniz ignores the field): readers would disagree above it.
_MAX_VERSION_NEEDED = 63
#: "Compressed patched data": zipfile and miniz refuse such a member.
_FLAG_PATCHED = 1 << 5


def _check_zip_features(name: str, member: str, version: int, flags: int, where: str) -> None:
    """Refuse what some zip readers read and others refuse: a member needing
    a newer version of the format, or one of patched data (flag bit 5)."""
    if version & 0xFF > _MAX_VERSION_NEEDED:
        raise UnsafeArchiveError(
            f"{name}: member {member!r} needs zip version {(version & 0xFF) / 10:.1f} to "
            f"extract ({where}), newer than 6.3: readers disagree on it"
        )
    if flags & _FLAG_PATCHED:
        raise UnsafeArchiveError(
            f"{name}: member {member!r} is flagged as compressed patched data (flag bit 5, "
            f"{where}), which zip readers refuse or misread"
        )


def _check_local_matches_central(name: str, entry: _ZipEntry) -> None:
    local_name = entry.local_name.decode("utf-8" if entry.local_flags & _FLAG_UTF8 else "cp437")
    if entry.local_name != entry.raw_name or local_name != entry.name:
        raise UnsafeArchiveError(
            f"{name}: member {entry.name!r}: local header name is {local_name!r}, "
            f"expected {entry.name!r} as in the central directory"
        )
    if entry.local_flags & _ENCRYPTION_FLAGS:
        raise UnsafeArchiveError(
            f"{name}: member {entry.name!r}: local header is encrypted "
            f"(flags {entry.local_flags:#06x})"
        )
    if entry.local_method != entry.method:
        raise UnsafeArchiveError(
            f"{name}: member {entry.name!r}: local header compression method is "
            f"{entry.local_method}, central directory says {entry.method}"
        )
    if (entry.local_flags ^ entry.flags) & _FLAG_DESCRIPTOR:
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
        if found != expected and not (entry.flags & _FLAG_DESCRIPTOR and found == 0):
            raise UnsafeArchiveError(
                f"{name}: member {entry.name!r}: local header {what} is {found}, "
                f"central directory says {expected}"
            )


# --------------------------------------------------------------------------
# Zip: member content.


def _zip_member_digest(
    f: BinaryIO, member: Member, algorithm: Callable[[], Hasher], name: str
) -> str:
    data = getattr(member, _ZIP_DATA_ATTR, None)
    if not isinstance(data, _ZipData):
        data = _find_zip_data(f, member, name)
    if _METHODS.get(data.method) != member.compression:
        raise UnsafeArchiveError(
            f"{name}: member {member.name!r} says compression {member.compression!r}, the "
            f"archive says method {data.method}"
        )
    chunks = _read_range(f, data.data_start, data.compressed_size, name, member.name)
    if data.method == 0:
        pieces: Iterator[bytes] = chunks
    elif data.method == 8:
        pieces = _inflate_deflate(chunks, name, member.name)
    elif data.method == 12:
        pieces = _inflate_buffered(bz2.BZ2Decompressor(), chunks, name, member.name, needs_eof=True)
    else:
        pieces = _inflate_lzma(chunks, name, member)

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
    end = _find_end_record(f, size, name)
    if end is None:
        raise UnsafeArchiveError(f"{name}: not a zip archive (no end of central directory record)")
    layout, by_name = _inspect_zip(f, size, name, end)
    entry = by_name.get(member.name)
    if entry is None or member not in layout.members:
        raise UnsafeArchiveError(
            f"{name}: member {member.name!r} (size {member.size}, {member.compression}) is not "
            "in the archive"
        )
    return _ZipData(entry.data_start, entry.compressed_size, entry.method, entry.crc)


class _Decompressor(Protocol):
    """The incremental interface shared by bz2.BZ2Decompressor and lzma.LZMADecompressor."""

    @property
    def eof(self) -> bool: ...
    @property
    def needs_input(self) -> bool: ...
    @property
    def unused_data(self) -> bytes: ...
    def decompress(self, data: bytes, max_length: int = -1) -> bytes: ...


def _inflate_deflate(chunks: Iterator[bytes], name: str, member: str) -> Iterator[bytes]:
    """Raw deflate, at most one chunk of output per step (zlib's max_length)."""
    d = zlib.decompressobj(-zlib.MAX_WBITS)
    pending = b""
    exhausted = False
    while not d.eof:
        if not pending and not exhausted:
            pending = next(chunks, b"")
            exhausted = not pending
        out = d.decompress(pending, _CHUNK)
        pending = d.unconsumed_tail
        if out:
            yield out
        elif exhausted and not pending:
            raise UnsafeArchiveError(
                f"{name}: member {member!r}: the deflate stream ends before its end marker"
            )
    _refuse_trailing(d.unused_data + pending, chunks, name, member)


def _inflate_buffered(
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
        yield d.decompress(data, _CHUNK)
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


def _inflate_lzma(chunks: Iterator[bytes], name: str, member: Member) -> Iterator[bytes]:
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
    yield from _inflate_buffered(d, rest(), name, member.name, needs_eof=False)


# --------------------------------------------------------------------------
# Tar.


class _BoundedReader:
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


_TAR_TYPES = {
    tarfile.SYMTYPE: "a symbolic link",
    tarfile.LNKTYPE: "a hard link",
    tarfile.CHRTYPE: "a character device",
    tarfile.BLKTYPE: "a block device",
    tarfile.FIFOTYPE: "a FIFO",
    tarfile.CONTTYPE: "a contiguous file (type '7')",
    tarfile.GNUTYPE_SPARSE: "a sparse file",
}


def _inspect_tar(f: BinaryIO, size: int, display_name: str) -> Layout:
    f.seek(0)
    names: list[tuple[str, bool]] = []
    members: list[Member] = []
    last = "the start of the archive"
    archive = _tar_call(
        lambda: tarfile.TarFile(
            fileobj=_BoundedReader(f, display_name), mode="r", encoding="utf-8", errors="strict"
        ),
        display_name,
        last,
    )
    while (info := _tar_call(archive.next, display_name, last)) is not None:
        if len(names) >= MAX_ENTRIES:
            raise UnsafeArchiveError(
                f"{display_name}: the tar archive holds more than {MAX_ENTRIES} entries"
            )
        member = _check_tar_member(f, size, display_name, info)
        last = f"member {info.name!r}"
        if member is None:
            continue
        names.append((member, info.isdir()))
        if info.isreg():
            start = info.offset_data
            members.append(Member(member, info.size, (start, start + info.size), "stored"))
    _check_tar_end(f, size, display_name, archive.offset, last)
    _check_unique_names(display_name, names)
    return Layout(kind="tar", members=tuple(members))


_T = TypeVar("_T")


def _tar_call(call: Callable[[], _T], display_name: str, last: str) -> _T:
    """Run one tarfile header-parsing step, turning any failure into UnsafeArchiveError."""
    try:
        return call()
    except UnsafeArchiveError:
        raise
    except Exception as e:
        # tarfile re-raises whatever its header parsing hits on hostile bytes
        # (ValueError, UnicodeDecodeError, struct.error, ...), so any failure of
        # this call means "cannot parse this tar".
        raise UnsafeArchiveError(
            f"{display_name}: cannot parse the tar archive after {last}: {type(e).__name__}: {e}"
        ) from e


def _check_tar_member(
    f: BinaryIO, size: int, display_name: str, info: tarfile.TarInfo
) -> str | None:
    """Check one tar entry; return its normalized name, or None for the root directory."""
    if info.type in _TAR_TYPES or info.issparse():
        what = _TAR_TYPES.get(info.type, "a sparse file")
        raise UnsafeArchiveError(
            f"{display_name}: member {info.name!r} is {what}; only regular files and "
            "directories are allowed"
        )
    if not (info.isreg() or info.isdir()):
        raise UnsafeArchiveError(
            f"{display_name}: member {info.name!r} has unknown type {info.type!r}; only regular "
            "files and directories are allowed"
        )
    overrides = sorted(key for key in info.pax_headers if key in ("path", "linkpath"))
    if overrides:
        raise UnsafeArchiveError(
            f"{display_name}: member {info.name!r} has its name overridden by PAX record(s) "
            f"{overrides}: readers without PAX support see a different name"
        )
    # Compare with the member's own 512-byte header, parsed without any extension
    # header: a GNU long name or a PAX size record makes readers disagree too.
    header_pos = info.offset_data - tarfile.BLOCKSIZE
    raw = _read_at(f, header_pos, tarfile.BLOCKSIZE, size, display_name, "a tar header")
    plain = tarfile.TarInfo.frombuf(raw, "utf-8", "strict")
    if plain.name != info.name:
        raise UnsafeArchiveError(
            f"{display_name}: member {info.name!r} has name {plain.name!r} in its own header: "
            "an extension header (GNU long name) overrides it"
        )
    if plain.size != info.size:
        raise UnsafeArchiveError(
            f"{display_name}: member {info.name!r} has size {plain.size} in its header but "
            f"{info.size} in an extension header"
        )
    if info.size < 0 or info.offset_data + info.size > size:
        raise UnsafeArchiveError(
            f"{display_name}: truncated tar: member {info.name!r} declares {info.size} bytes "
            f"at offset {info.offset_data}, past the end of the file ({size} bytes)"
        )

    if info.isdir() and info.size != 0:
        # tarfile does not skip a directory's data, other readers do.
        raise UnsafeArchiveError(
            f"{display_name}: directory {info.name!r} declares {info.size} bytes of data, "
            "expected 0"
        )

    member = info.name
    while member.startswith("./"):
        member = member[2:]
    if info.isdir() and member in ("", "."):
        return None
    if info.isreg() and member.endswith("/"):
        raise UnsafeArchiveError(
            f"{display_name}: regular file {member!r} has a directory name (trailing '/')"
        )
    _check_member_name(display_name, member)
    return member


def _check_tar_end(f: BinaryIO, size: int, display_name: str, end: int, last: str) -> None:
    """After the last member: the end-of-archive marker (two zero blocks) and only zeros.

    tarfile stops silently at the first zero block and at the first unparseable
    header after offset 0, while ``tar --ignore-zeros`` reads on; anything but
    zeros there is a truncated archive or hidden content.
    """
    if size - end < 2 * tarfile.BLOCKSIZE:
        raise UnsafeArchiveError(
            f"{display_name}: truncated tar: after {last} (offset {end}) there are "
            f"{size - end} bytes, expected the end-of-archive marker of "
            f"{2 * tarfile.BLOCKSIZE} zero bytes"
        )
    f.seek(end)
    pos = end
    while pos < size:
        chunk = _read_exact(f, min(_CHUNK, size - pos), display_name, "the end of the tar")
        if chunk.count(0) != len(chunk):
            offset = pos + next(i for i, byte in enumerate(chunk) if byte)
            raise UnsafeArchiveError(
                f"{display_name}: after {last}, non-zero bytes at offset {offset} where only "
                "zero blocks may follow: an unparseable header or hidden data"
            )
        pos += len(chunk)


def _tar_member_digest(
    f: BinaryIO, member: Member, algorithm: Callable[[], Hasher], name: str
) -> str:
    if member.data_range is None or member.data_range[1] - member.data_range[0] != member.size:
        raise UnsafeArchiveError(
            f"{name}: tar member {member.name!r} has data range {member.data_range}, "
            f"expected {member.size} bytes"
        )
    digest = algorithm()
    for chunk in _read_range(f, member.data_range[0], member.size, name, member.name):
        digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------
# Reading helpers.


def _read_exact(f: BinaryIO, length: int, name: str, what: str) -> bytes:
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


class _Window:
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
            piece = _read_exact(self._f, min(_CHUNK, self._end - self._next), self._name, what)
            self._next += len(piece)
            self._buffer = self._buffer[self._pos :] + piece
            self._pos = 0
        data = self._buffer[self._pos : self._pos + length]
        self._pos += length
        return data


def _read_at(f: BinaryIO, offset: int, length: int, size: int, name: str, what: str) -> bytes:
    if offset < 0 or offset + length > size:
        raise UnsafeArchiveError(
            f"{name}: {what} at offset {offset} ({length} bytes) lies outside the file "
            f"({size} bytes)"
        )
    f.seek(offset)
    return _read_exact(f, length, name, what)


def _read_range(f: BinaryIO, start: int, length: int, name: str, member: str) -> Iterator[bytes]:
    """The bytes [start, start + length) in chunks; refuses a file that ends early."""
    f.seek(start)
    remaining = length
    while remaining > 0:
        chunk = f.read(min(_CHUNK, remaining))
        if not chunk:
            raise UnsafeArchiveError(
                f"{name}: truncated archive: the data of member {member!r} ends "
                f"{remaining} bytes early"
            )
        remaining -= len(chunk)
        yield chunk
