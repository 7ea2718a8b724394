"""Stage 2: hash the files of a model.

Files are hashed on a thread pool (hashlib releases the GIL on large updates),
each worker reading into one reused buffer with ``readinto``. A file is read
once: when it is a zip or tar archive whose members are stored uncompressed,
the members' digests are computed from the same chunks as the whole-file
digest. The whole-file digest is the one that is signed and checked; member
digests are diagnostics.
"""

from __future__ import annotations

import io
import os
import stat
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from modelsign import _archive as archive
from modelsign._digests import (
    Fingerprint,
    Hasher,
    ShardDigest,
    new_hasher,
    shard_ranges,
)
from modelsign._enumerating import ModelFile
from modelsign.errors import UnsafeModelError

__all__ = [
    "CHUNK_SIZE",
    "FileDigest",
    "MemberDigest",
    "Progress",
    "hash_file",
    "hash_files",
]

#: Read size: about what a core's L2 cache holds, so SHA-256 reads the bytes
#: the kernel just copied from cache (measured 2-4 % faster than 4 MiB on (a)).
CHUNK_SIZE = 1024 * 1024
#: Files smaller than this are hashed one after another on one thread.
SMALL_FILE = 256 * 1024


class Progress(Protocol):
    """Told how hashing advances; called from several threads at once."""

    def start(self, files: int, nbytes: int) -> None:
        """Before anything is read: how many files and bytes will be hashed."""

    def advance(self, nbytes: int) -> None:
        """``nbytes`` more bytes were hashed."""

    def file_done(self) -> None:
        """One more file is completely hashed."""


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
    #: What is compared with the manifest: the digest, or in shard mode the shards'.
    fingerprint: Fingerprint
    archive: str | None = None
    members: tuple[MemberDigest, ...] = ()


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


def _read_up_to(f: io.FileIO, limit: int) -> bytes:
    """Up to ``limit`` bytes, to the end of the file: a read may return less
    than asked (FUSE, network file systems) without being at the end."""
    parts = []
    got = 0
    while got < limit:
        part = f.read(limit - got)
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def _chunks(f: io.FileIO | io.BytesIO, buf: memoryview, data: bytes | None) -> Iterator[memoryview]:
    """The file's bytes: ``data`` when it was read whole, else ``buf``-sized reads."""
    if data is not None:
        if data:
            yield memoryview(data)
        return
    while n := f.readinto(buf):
        yield buf[:n]


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
    with os.fdopen(fd, "rb", buffering=0) as raw:
        f: io.FileIO | io.BytesIO = raw
        size = st.st_size
        data = None
        if size < SMALL_FILE:
            # One read instead of three (archive header, zip end record,
            # content): a small file's cost is its system calls. A file that
            # has grown since is read as a large one.
            data = _read_up_to(raw, SMALL_FILE)
            if len(data) < SMALL_FILE:
                f, size = io.BytesIO(data), len(data)
            else:
                data, size = None, os.fstat(fd).st_size
        layout, inflated = (
            archive.check(f, size, display, factory) if inspect_archive else (None, {})
        )
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
        for chunk in _chunks(f, view, data):
            n = len(chunk)
            whole.update(chunk)
            end = offset + n
            for start, stop, _, h in taps:
                if start < end and stop > offset:
                    h.update(chunk[max(start, offset) - offset : min(stop, end) - offset])
            offset = end
            if progress is not None:
                progress.advance(n)
        digest = Fingerprint(digest=whole.hexdigest())
        if layout is None:
            return FileDigest(file.name, offset, digest)
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
    shard_size: int | None = None,
) -> dict[str, FileDigest]:
    """Hash ``files`` in parallel; the result maps resource name to digest.

    With ``shard_size`` (OMS shard serialization), every shard of every file
    is a task of its own, so that one large file is hashed on every core; a
    file's :attr:`FileDigest.shards` then holds its shards' digests, and
    ``members`` is ignored (a differing shard already locates a change).
    """
    new_hasher(hash_type)  # fail early on an unavailable hash type
    if workers is None:
        workers = min(32, (os.cpu_count() or 1) + 2)
    if progress is not None:
        progress.start(len(files), sum(f.size for f in files))
    if shard_size is not None:
        return _hash_sharded(files, hash_type, shard_size, display, workers, progress)
    if hash_type == "blake3":
        workers = 1  # blake3 spreads one file over every core itself
    workers = max(1, min(workers, len(files)))
    local = threading.local()

    def one(file: ModelFile) -> FileDigest:
        buf = getattr(local, "buffer", None)
        if buf is None:
            buf = local.buffer = bytearray(CHUNK_SIZE)
        digest = hash_file(
            file, hash_type, display=display(file), members=members, buffer=buf, progress=progress
        )
        if progress is not None:
            progress.file_done()
        return digest

    def batch(group: Sequence[ModelFile]) -> list[FileDigest]:
        return [one(f) for f in group]

    if workers == 1:
        results = batch(files)
    else:
        # Threads pay off only where hashlib and reads release the GIL: each
        # large file is a task (largest first, so that none starts last);
        # the small ones, whose cost is Python's per-file work, are hashed in
        # one sequential task (threads contending for the GIL made them
        # about twice as slow).
        large = sorted((f for f in files if f.size >= SMALL_FILE), key=lambda f: -f.size)
        groups = [[f] for f in large]
        small = [f for f in files if f.size < SMALL_FILE]
        if small:
            groups.append(small)
        results = [d for group in _run_parallel(batch, groups, workers) for d in group]
    return {r.name: r for r in results}


_T = TypeVar("_T")
_R = TypeVar("_R")


def _run_parallel(fn: Callable[[_T], _R], items: Sequence[_T], workers: int) -> list[_R]:
    """``[fn(x) for x in items]`` on up to ``workers`` threads, in order. The
    first exception is raised once every thread has stopped; after it, no
    new item is started. (concurrent.futures would do, but importing it costs
    every command ~8 ms.)"""
    results: list[_R | None] = [None] * len(items)
    errors: list[BaseException] = []
    lock = threading.Lock()
    position = iter(range(len(items)))

    def work() -> None:
        try:
            while True:
                with lock:
                    i = None if errors else next(position, None)
                if i is None:
                    return
                results[i] = fn(items[i])
        except BaseException as e:  # noqa: BLE001 - re-raised in the calling thread
            errors.append(e)  # list.append is atomic; the others stop at their next item

    threads = [
        threading.Thread(target=work, name=f"modelsign-hash-{n}", daemon=True)
        for n in range(max(1, min(workers, len(items))) - 1)
    ]
    for t in threads:
        t.start()
    work()  # the calling thread is one of the workers
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results  # type: ignore[return-value]  # every slot was filled


@dataclass(frozen=True)
class _Range:
    file: ModelFile
    start: int
    end: int


def _hash_range(
    task: _Range,
    factory: Callable[[], Hasher],
    display: str,
    buf: bytearray,
    progress: Progress | None,
) -> tuple[ShardDigest, tuple[int, ...], str | None]:
    """Hash one shard. The task of a file's first shard also checks the
    file's archive structure and inflates its compressed members (bounded),
    as :func:`hash_file` does. Each shard opens the file itself; the file's
    identity (device, inode, size, modification and change times) must be
    the same when each shard starts and ends, so a file replaced between two
    shards (even by one that reuses the inode number) or written meanwhile is
    refused."""
    fd, st = _open_regular(task.file.path, display)
    with os.fdopen(fd, "rb", buffering=0) as f:
        if st.st_size != task.file.size:
            raise UnsafeModelError(
                f"{display}: changed while being hashed: {task.file.size} bytes when listed, "
                f"{st.st_size} bytes now"
            )
        kind = None
        if task.start == 0:
            layout, _ = archive.check(f, st.st_size, display, factory)
            kind = layout.kind if layout is not None else None
        h = factory()
        view = memoryview(buf)
        offset = task.start
        while offset < task.end:
            n = os.preadv(fd, [view[: min(len(buf), task.end - offset)]], offset)
            if n == 0:
                raise UnsafeModelError(
                    f"{display}: changed while being hashed: ends at byte {offset}, "
                    f"expected {task.end}"
                )
            h.update(view[:n])
            offset += n
            if progress is not None:
                progress.advance(n)
        ident = _identity(st)
        if _identity(os.fstat(fd)) != ident:
            raise UnsafeModelError(f"{display}: changed while being hashed")
        return ShardDigest(task.start, task.end, h.hexdigest()), ident, kind


def _identity(st: os.stat_result) -> tuple[int, ...]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _hash_sharded(
    files: Sequence[ModelFile],
    hash_type: str,
    shard_size: int,
    display: Callable[[ModelFile], str],
    workers: int,
    progress: Progress | None,
) -> dict[str, FileDigest]:
    factory = new_hasher(hash_type)
    # An empty file has no shard; a task over no bytes still checks it is a
    # regular file that is still empty.
    tasks = [
        _Range(f, start, end) for f in files for start, end in shard_ranges(f.size, shard_size)
    ] + [_Range(f, 0, 0) for f in files if f.size == 0]
    # Largest first, so that one big shard does not start last.
    tasks.sort(key=lambda t: t.end - t.start, reverse=True)
    local = threading.local()
    remaining = {f.name: 0 for f in files}
    for t in tasks:
        remaining[t.file.name] += 1
    lock = threading.Lock()

    def one(task: _Range) -> tuple[ShardDigest, tuple[int, ...], str | None]:
        buf = getattr(local, "buffer", None)
        if buf is None:
            buf = local.buffer = bytearray(CHUNK_SIZE)
        result = _hash_range(task, factory, display(task.file), buf, progress)
        if progress is not None:
            with lock:
                remaining[task.file.name] -= 1
                done = remaining[task.file.name] == 0
            if done:
                progress.file_done()
        return result

    workers = max(1, min(workers, len(tasks)))
    results = _run_parallel(one, tasks, workers)
    shards: dict[str, list[ShardDigest]] = {f.name: [] for f in files}
    identity: dict[str, tuple[int, ...]] = {}
    kinds: dict[str, str | None] = {}
    for task, (digest, ident, kind) in zip(tasks, results, strict=True):
        name = task.file.name
        if identity.setdefault(name, ident) != ident:
            raise UnsafeModelError(f"{display(task.file)}: replaced while being hashed")
        if task.start == 0:
            kinds[name] = kind
        if task.end > task.start:
            shards[name].append(digest)
    return {
        f.name: FileDigest(
            f.name,
            f.size,
            Fingerprint.of_shards(shards[f.name]),
            kinds.get(f.name),
        )
        for f in files
    }
