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

import lzma
import struct
import tarfile
import zlib
from collections.abc import Callable
from typing import BinaryIO

from modelsign._archive._concat import archive_extents, inspect_concatenated, is_concatenation
from modelsign._archive._io import read_at
from modelsign._archive._tar import inspect_tar, tar_member_digest
from modelsign._archive._types import MAX_MEMBER_BYTES, Hasher, Layout, Member
from modelsign._archive._zip import inspect_zip, zip_member_digest
from modelsign._archive._zipdir import (
    EOCD_SEARCH,
    EOCD_SIG,
    LOCAL_SIG,
    find_end_record,
    zipfile_would_open,
)
from modelsign.errors import UnsafeArchiveError

__all__ = [
    "MAX_MEMBER_BYTES",
    "Hasher",
    "Layout",
    "Member",
    "check",
    "extents",
    "inspect",
    "member_digest",
]


def inspect(f: BinaryIO, size: int, display_name: str) -> Layout | None:
    """Detect by content whether ``f`` is a zip or tar archive and return its layout.

    Returns ``None`` when the file is neither (a plain pickle, a safetensors file,
    text, an empty file). Raises :class:`UnsafeArchiveError` when it is an archive
    that readers could interpret differently, or one that claims to be an archive
    (zip signature at offset 0, ``ustar`` magic) but cannot be parsed.

    A distributed checkpoint's data file (``display_name`` ends in ``.distcp``)
    that starts like a zip is torch archives end to end: each is checked as a
    ``.pt`` file, and its members are named ``@OFFSET/NAME`` (see
    :mod:`modelsign._archive._concat`).
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


def extents(f: BinaryIO, size: int, display_name: str) -> list[tuple[int, int]]:
    """The ``[start, end)`` offsets of the archives a loader may read from the
    file on its own: each archive of a ``.distcp`` file, the whole of another
    zip file, none for anything else. Only for a file :func:`inspect` accepted."""
    layout = inspect(f, size, display_name)
    if layout is None or layout.kind != "zip":
        return []
    if not is_concatenation(display_name):
        return [(0, size)]
    try:
        return archive_extents(f, size, display_name)
    except (struct.error, OSError, ValueError) as e:
        raise UnsafeArchiveError(f"{display_name}: cannot parse the archives: {e}") from e


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
            return tar_member_digest(f, member, algorithm, display_name)
        return zip_member_digest(f, member, algorithm, display_name)
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


def check(
    f: BinaryIO, size: int, display_name: str, algorithm: Callable[[], Hasher]
) -> tuple[Layout | None, dict[int, str]]:
    """The checks every reader of a model file makes (signing, verifying, the
    loader hook): a zip or tar archive must be structurally unambiguous, no
    member may declare more than :data:`MAX_MEMBER_BYTES`, and each compressed
    member is inflated (bounded, and checked against its declared size and
    CRC), so that a zip bomb or a member lying about its size is refused, not
    left to the loader.

    Returns:
        The layout (``None`` for a file that is no archive) and the compressed
        members' digests by ``id(member)``.

    Raises:
        UnsafeArchiveError: what :func:`inspect` and :func:`member_digest` refuse.
    """
    layout = inspect(f, size, display_name)
    if layout is None:
        return None, {}
    limit = MAX_MEMBER_BYTES
    for m in layout.members:
        if m.size > limit:
            raise UnsafeArchiveError(
                f"{display_name}: member {m.name!r} declares {m.size} bytes, more than the "
                f"limit of {limit} bytes"
            )
    inflated = {
        id(m): member_digest(f, layout, m, algorithm, display_name, limit)
        for m in layout.members
        if m.data_range is None
    }
    return layout, inflated


def _inspect(f: BinaryIO, size: int, display_name: str) -> Layout | None:
    head = read_at(f, 0, min(size, tarfile.BLOCKSIZE), size, display_name, "the file header")
    if head.startswith(LOCAL_SIG) and is_concatenation(display_name):
        return inspect_concatenated(f, size, display_name)
    # torch.load and numpy.load decide "zip" by these signatures at offset 0, so
    # such a file must be a valid zip: one without an end record is refused, not
    # passed on as "not an archive".
    if head.startswith((LOCAL_SIG, EOCD_SIG)):
        found = find_end_record(f, size, display_name)
        if found is None:
            raise UnsafeArchiveError(
                f"{display_name}: starts with a zip signature {head[:4]!r} but has no end of "
                f"central directory record in its last {EOCD_SEARCH} bytes: a truncated or "
                "damaged zip archive"
            )
        return inspect_zip(f, size, display_name, found)[0]
    if head[257:262] == b"ustar":
        return inspect_tar(f, size, display_name)
    # Python's zipfile also accepts a zip that is preceded by other bytes (it finds
    # the end record and shifts every offset), so a pickle followed by a zip is a
    # zip to zipfile and a pickle to torch. Such a file is parsed as a zip, which
    # then refuses it. A stray end record signature in non-zip data (a tensor
    # that happens to contain b"PK\x05\x06") is told apart by checking whether the
    # record would lead zipfile to a central directory.
    found = find_end_record(f, size, display_name)
    if found is None or not zipfile_would_open(f, size, display_name, found):
        return None
    if is_concatenation(display_name):  # refused, saying where the stray bytes are
        return inspect_concatenated(f, size, display_name)
    return inspect_zip(f, size, display_name, found)[0]
