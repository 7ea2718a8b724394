"""What an archive is made of, and the limits on reading one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from modelsign._digests import Hasher


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


__all__ = [
    "CHUNK",
    "MAX_CENTRAL_DIRECTORY_SIZE",
    "MAX_ENTRIES",
    "MAX_MEMBER_BYTES",
    "MAX_TAR_EXTENSION_HEADER",
    "Hasher",
    "Layout",
    "Member",
]

# Limits. Real models have a few thousand members at most.
MAX_ENTRIES = 1_000_000
# Bounds memory spent on the central directory of a hostile zip: the entry limit
# times a generous 512 bytes per entry.
MAX_CENTRAL_DIRECTORY_SIZE = 512 * 1024 * 1024
# Bounds memory spent on one tar extension header (PAX records, GNU long name):
# tarfile reads each of those into memory in one piece.
MAX_TAR_EXTENSION_HEADER = 1024 * 1024
# Read and inflate in pieces of this size, so memory stays bounded.
CHUNK = 1024 * 1024
# Compressed archive members inflating past this are refused (zip bombs).
MAX_MEMBER_BYTES = 64 * 1024**3
