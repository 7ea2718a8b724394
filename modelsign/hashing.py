"""Stage 2: hash the files of a model.

Files are hashed on a thread pool (hashlib releases the GIL on large updates),
each worker reading into one reused buffer with ``readinto``. A file is read
once: when it is a zip or tar archive whose members are stored uncompressed,
the members' digests are computed from the same chunks as the whole-file
digest. The whole-file digest is the one that is signed and checked; member
digests are diagnostics.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from modelsign import archive
from modelsign.enumerating import ModelFile
from modelsign.errors import ConfigError, UnsafeArchiveError, UnsafeModelError

__all__ = [
    "DIGEST_HEX_LENGTH",
    "HASH_TYPES",
    "FileDigest",
    "MemberDigest",
    "Progress",
    "check_member_sizes",
    "hash_file",
    "hash_files",
    "new_hasher",
]

HASH_TYPES: tuple[str, ...] = ("sha256", "blake2b", "blake3")
DIGEST_HEX_LENGTH: dict[str, int] = {"sha256": 64, "blake2b": 128, "blake3": 64}
CHUNK_SIZE = 4 * 1024 * 1024
#: Compressed archive members inflating past this are refused (zip bombs).
MAX_MEMBER_BYTES = 64 * 1024**3

#: Called with a number of bytes just hashed; must be thread-safe.
Progress = Callable[[int], None]


class Hasher(Protocol):
    def update(self, data: bytes | memoryview, /) -> Any: ...
    def hexdigest(self) -> str: ...


def new_hasher(hash_type: str) -> Callable[[], Hasher]:
    """A factory of fresh hashers of ``hash_type``."""
    if hash_type == "sha256":
        return hashlib.sha256
    if hash_type == "blake2b":
        return hashlib.blake2b
    if hash_type == "blake3":
        try:
            import blake3  # noqa: PLC0415 - optional dependency
        except ImportError as e:
            raise ConfigError(
                "hash type blake3 needs the blake3 package: pip install 'modelsign[blake3]'"
            ) from e

        def factory() -> Hasher:
            h: Hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
            return h

        return factory
    raise ConfigError(f"unknown hash type {hash_type!r}; choose one of {', '.join(HASH_TYPES)}")


@dataclass(frozen=True)
class MemberDigest:
    """The digest of one archive member's uncompressed content."""

    name: str
    size: int
    digest: str
    compression: str


@dataclass(frozen=True)
class FileDigest:
    """The digest of one file, with its archive members when it is one."""

    name: str
    size: int
    digest: str
    archive: str | None = None
    members: tuple[MemberDigest, ...] = ()


def check_member_sizes(layout: archive.Layout, display: str) -> None:
    """Refuse an archive member that declares more than :data:`MAX_MEMBER_BYTES`
    (a zip bomb), whether or not anything inflates it here."""
    for m in layout.members:
        if m.size > MAX_MEMBER_BYTES:
            raise UnsafeArchiveError(
                f"{display}: member {m.name!r} declares {m.size} bytes, more than the limit "
                f"of {MAX_MEMBER_BYTES} bytes"
            )


def _open_regular(path: Path, display: str) -> tuple[int, os.stat_result]:
    # O_NOFOLLOW: a symlink swapped in after enumeration is not followed.
    # O_NONBLOCK: a FIFO swapped in does not block the open.
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        raise UnsafeModelError(f"{display}: cannot open: {e.strerror}") from e
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise UnsafeModelError(f"{display}: not a regular file")
    return fd, st


def hash_file(
    file: ModelFile,
    hash_type: str,
    *,
    display: str,
    members: bool = False,
    inspect_archive: bool = True,
    buffer: bytearray | None = None,
    progress: Progress | None = None,
) -> FileDigest:
    """Hash one file.

    With ``inspect_archive``, a zip or tar file is checked for structural
    ambiguity (:class:`~modelsign.errors.UnsafeArchiveError`); with
    ``members`` its members' digests are computed too.
    """
    factory = new_hasher(hash_type)
    buf = buffer if buffer is not None else bytearray(CHUNK_SIZE)
    view = memoryview(buf)
    fd, st = _open_regular(file.path, display)
    with os.fdopen(fd, "rb", buffering=0) as f:
        layout = archive.inspect(f, st.st_size, display) if inspect_archive else None
        if layout is not None:
            check_member_sizes(layout, display)
        taps: list[tuple[int, int, archive.Member, Hasher]] = []
        if layout is not None and members:
            taps = [
                (m.data_range[0], m.data_range[1], m, factory())
                for m in layout.members
                if m.data_range is not None
            ]
        f.seek(0)
        whole = factory()
        offset = 0
        while True:
            n = f.readinto(buf)
            if not n:
                break
            chunk = view[:n]
            whole.update(chunk)
            end = offset + n
            for start, stop, _, h in taps:
                if start < end and stop > offset:
                    h.update(chunk[max(start, offset) - offset : min(stop, end) - offset])
            offset = end
            if progress is not None:
                progress(n)
        digest = whole.hexdigest()
        if layout is None:
            return FileDigest(file.name, offset, digest)
        # Compressed members are inflated (bounded, and checked against their
        # declared size and CRC) even when only verifying: a zip bomb or a
        # member lying about its size is refused, not left to the loader.
        inflated = {
            id(m): archive.member_digest(f, layout, m, factory, display, MAX_MEMBER_BYTES)
            for m in layout.members
            if m.data_range is None
        }
        member_digests: tuple[MemberDigest, ...] = ()
        if members:
            tapped = {id(m): h.hexdigest() for _, _, m, h in taps}
            member_digests = tuple(
                MemberDigest(m.name, m.size, tapped.get(id(m)) or inflated[id(m)], m.compression)
                for m in layout.members
            )
        return FileDigest(file.name, offset, digest, layout.kind, member_digests)


def hash_files(
    files: Sequence[ModelFile],
    hash_type: str,
    *,
    display: Callable[[ModelFile], str],
    members: bool = False,
    workers: int | None = None,
    progress: Progress | None = None,
) -> dict[str, FileDigest]:
    """Hash ``files`` in parallel; the result maps resource name to digest."""
    new_hasher(hash_type)  # fail early on an unavailable hash type
    if workers is None:
        workers = min(32, (os.cpu_count() or 1) + 2)
    if hash_type == "blake3":
        workers = 1  # blake3 spreads one file over every core itself
    workers = max(1, min(workers, len(files)))
    local = threading.local()

    def one(file: ModelFile) -> FileDigest:
        buf = getattr(local, "buffer", None)
        if buf is None:
            buf = local.buffer = bytearray(CHUNK_SIZE)
        return hash_file(
            file, hash_type, display=display(file), members=members, buffer=buf, progress=progress
        )

    if workers == 1:
        results = [one(f) for f in files]
    else:
        # Largest first, so that one big file does not start last.
        order = sorted(files, key=lambda f: f.size, reverse=True)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="modelsign-hash") as pool:
            results = list(pool.map(one, order))
    return {r.name: r for r in results}
