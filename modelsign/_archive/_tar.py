"""Tar archives: tarfile parses the headers, with the checks it does not make."""

from __future__ import annotations

import tarfile
from collections.abc import Callable
from typing import BinaryIO, TypeVar

from modelsign._archive._io import BoundedReader, read_at, read_exact, read_range
from modelsign._archive._names import check_member_name, check_unique_names
from modelsign._archive._types import (
    CHUNK,
    MAX_ENTRIES,
    Hasher,
    Layout,
    Member,
)
from modelsign.errors import UnsafeArchiveError

_TAR_TYPES = {
    tarfile.SYMTYPE: "a symbolic link",
    tarfile.LNKTYPE: "a hard link",
    tarfile.CHRTYPE: "a character device",
    tarfile.BLKTYPE: "a block device",
    tarfile.FIFOTYPE: "a FIFO",
    tarfile.CONTTYPE: "a contiguous file (type '7')",
    tarfile.GNUTYPE_SPARSE: "a sparse file",
}


def inspect_tar(f: BinaryIO, size: int, display_name: str) -> Layout:
    f.seek(0)
    names: list[tuple[str, bool]] = []
    members: list[Member] = []
    last = "the start of the archive"
    archive = _tar_call(
        lambda: tarfile.TarFile(
            fileobj=BoundedReader(f, display_name), mode="r", encoding="utf-8", errors="strict"
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
    check_unique_names(display_name, names)
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
    raw = read_at(f, header_pos, tarfile.BLOCKSIZE, size, display_name, "a tar header")
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
    check_member_name(display_name, member)
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
        chunk = read_exact(f, min(CHUNK, size - pos), display_name, "the end of the tar")
        if chunk.count(0) != len(chunk):
            offset = pos + next(i for i, byte in enumerate(chunk) if byte)
            raise UnsafeArchiveError(
                f"{display_name}: after {last}, non-zero bytes at offset {offset} where only "
                "zero blocks may follow: an unparseable header or hidden data"
            )
        pos += len(chunk)


def tar_member_digest(
    f: BinaryIO, member: Member, algorithm: Callable[[], Hasher], name: str
) -> str:
    if member.data_range is None or member.data_range[1] - member.data_range[0] != member.size:
        raise UnsafeArchiveError(
            f"{name}: tar member {member.name!r} has data range {member.data_range}, "
            f"expected {member.size} bytes"
        )
    digest = algorithm()
    for chunk in read_range(f, member.data_range[0], member.size, name, member.name):
        digest.update(chunk)
    return digest.hexdigest()
