"""Zip archives: the end records and the central directory (APPNOTE.TXT)."""

from __future__ import annotations

import stat
import struct
from dataclasses import dataclass
from typing import BinaryIO

from modelsign._archive._io import Window, read_at
from modelsign._archive._types import MAX_ENTRIES
from modelsign.errors import UnsafeArchiveError

# --------------------------------------------------------------------------
# --------------------------------------------------------------------------
# Zip format constants (APPNOTE.TXT).

LOCAL_SIG = b"PK\x03\x04"
_CENTRAL_SIG = b"PK\x01\x02"
EOCD_SIG = b"PK\x05\x06"
_EOCD64_SIG = b"PK\x06\x06"
_LOCATOR_SIG = b"PK\x06\x07"
DESCRIPTOR_SIG = b"PK\x07\x08"

LOCAL = struct.Struct("<4s5H3L2H")  # 30 bytes
_CENTRAL = struct.Struct("<4s6H3L5H2L")  # 46 bytes
_EOCD = struct.Struct("<4s4H2LH")  # 22 bytes
_EOCD64 = struct.Struct("<4sQ2H2L4Q")  # 56 bytes
_LOCATOR = struct.Struct("<4sLQL")  # 20 bytes

# The end record is the last structure of a zip file and may be followed by a
# comment of at most 65,535 bytes, so it starts in the last 65,535 + 22 bytes.
EOCD_SEARCH = 0xFFFF + _EOCD.size

_U16_SENTINEL = 0xFFFF
_U32_SENTINEL = 0xFFFFFFFF
_ZIP64_EXTRA_ID = 0x0001

_FLAG_ENCRYPTED = 1 << 0
FLAG_DESCRIPTOR = 1 << 3
_FLAG_STRONG_ENCRYPTION = 1 << 6
FLAG_UTF8 = 1 << 11
_FLAG_MASKED_HEADERS = 1 << 13
ENCRYPTION_FLAGS = _FLAG_ENCRYPTED | _FLAG_STRONG_ENCRYPTION | _FLAG_MASKED_HEADERS

METHODS = {0: "stored", 8: "deflate", 12: "bzip2", 14: "lzma"}
_UNIX_HOST = 3


# --------------------------------------------------------------------------
# Zip: the end records.


@dataclass(frozen=True)
class EndRecord:
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


def find_end_record(f: BinaryIO, size: int, display_name: str) -> EndRecord | None:
    """The last end of central directory record in the file's tail, if any.

    zipfile and miniz (torch's reader) both take the last signature they find
    scanning backwards, so the same one is used here.
    """
    tail_start = max(0, size - EOCD_SEARCH)
    tail = read_at(f, tail_start, size - tail_start, size, display_name, "the zip end record")
    # Only signatures followed by a complete 22-byte record can be end records.
    index = tail.rfind(EOCD_SIG, 0, max(0, len(tail) - _EOCD.size + len(EOCD_SIG)))
    if index < 0:
        return None
    _, disk, cd_disk, on_disk, total, cd_size, cd_offset, comment_length = _EOCD.unpack_from(
        tail, index
    )
    return EndRecord(
        tail_start + index, disk, cd_disk, on_disk, total, cd_size, cd_offset, comment_length
    )


def end_record_at(f: BinaryIO, position: int, size: int, display_name: str) -> EndRecord | None:
    """The end record that starts at ``position``, when its signature is there
    (an archive without a comment ends with it: torch writes none)."""
    if position < 0 or position + _EOCD.size > size:
        return None
    raw = read_at(f, position, _EOCD.size, size, display_name, "the zip end record")
    if raw[:4] != EOCD_SIG:
        return None
    _, disk, cd_disk, on_disk, total, cd_size, cd_offset, comment_length = _EOCD.unpack(raw)
    return EndRecord(position, disk, cd_disk, on_disk, total, cd_size, cd_offset, comment_length)


def archive_start(f: BinaryIO, size: int, display_name: str, end: EndRecord) -> int:
    """Where the zip archive whose end record is ``end`` starts, by its own
    offsets (which count from its first byte): the zip64 locator says how far
    into the archive its zip64 end record is, which lies right before the
    locator; without zip64, the end record says where the directory is and
    how long it is, and it lies right before the end record. Only a
    candidate: :func:`read_directory` and the member checks of the archive
    from there prove it."""
    locator_pos = end.position - _LOCATOR.size
    if (
        locator_pos >= 0
        and read_at(f, locator_pos, 4, size, display_name, "the zip64 locator") == _LOCATOR_SIG
    ):
        raw = read_at(f, locator_pos, _LOCATOR.size, size, display_name, "the zip64 locator")
        _, _, record_pos, _ = _LOCATOR.unpack(raw)
        return int(locator_pos - _EOCD64.size - record_pos)
    return end.position - end.cd_size - end.cd_offset


def zipfile_would_open(f: BinaryIO, size: int, display_name: str, end: EndRecord) -> bool:
    """Whether Python's zipfile would accept this end record, whatever precedes the zip."""
    if end.position >= _LOCATOR.size:
        locator = read_at(
            f, end.position - _LOCATOR.size, 4, size, display_name, "the zip64 locator"
        )
        if locator == _LOCATOR_SIG:
            return True
    if end.cd_size == 0:
        return True
    cd_start = end.position - end.cd_size
    if cd_start < 0:
        return False
    return read_at(f, cd_start, 4, size, display_name, "the central directory") == _CENTRAL_SIG


def read_directory(f: BinaryIO, size: int, name: str, end: EndRecord) -> _Directory:
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
        and read_at(f, locator_pos, 4, size, name, "the zip64 locator") == _LOCATOR_SIG
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

    raw_locator = read_at(f, locator_pos, _LOCATOR.size, size, name, "the zip64 locator")
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
    raw = read_at(f, record_pos, _EOCD64.size, size, name, "the zip64 end record")
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
class ZipEntry:
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


def read_central_directory(f: BinaryIO, name: str, start: int, end: int) -> list[ZipEntry]:
    entries: list[ZipEntry] = []
    window = Window(f, start, end, name)
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

        if flags & ENCRYPTION_FLAGS:
            raise UnsafeArchiveError(
                f"{name}: member {member!r} is encrypted (general purpose flags {flags:#06x}); "
                "encrypted members cannot be verified"
            )
        check_zip_features(name, member, version_needed, flags, "central directory")
        if method not in METHODS:
            raise UnsafeArchiveError(
                f"{name}: member {member!r} uses compression method {method}, expected one of "
                f"{sorted(METHODS)} ({', '.join(METHODS.values())})"
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

        values = zip64_values(
            name, member, extra, [file_size, compressed_size, header_offset], "central directory"
        )
        file_size, compressed_size, header_offset = values
        entries.append(
            ZipEntry(
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
    encoding = "utf-8" if flags & FLAG_UTF8 else "cp437"
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


def zip64_values(name: str, member: str, extra: bytes, fields: list[int], where: str) -> list[int]:
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


#: The newest "version needed to extract" every reader takes (zipfile refuses
#: above 6.3; torch's miniz ignores the field): readers would disagree above it.
_MAX_VERSION_NEEDED = 63
#: "Compressed patched data": zipfile and miniz refuse such a member.
_FLAG_PATCHED = 1 << 5


def check_zip_features(name: str, member: str, version: int, flags: int, where: str) -> None:
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
