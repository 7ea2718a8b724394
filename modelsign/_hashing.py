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
import io
import os
import stat
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol, TypeVar

from modelsign import _archive as archive
from modelsign._enumerating import ModelFile
from modelsign.errors import ConfigError, UnsafeArchiveError, UnsafeModelError

__all__ = [
    "DIGEST_HEX_LENGTH",
    "HASH_TYPES",
    "NO_SHARDS",
    "FileDigest",
    "MemberDigest",
    "Progress",
    "ShardDigest",
    "check_archive",
    "check_member_sizes",
    "differing_shards",
    "fingerprint_difference",
    "fingerprint_size",
    "hash_file",
    "hash_files",
    "new_hasher",
    "new_scheme_hasher",
    "parse_shard_fingerprint",
    "scheme",
    "shard_fingerprint",
    "shard_ranges",
]

HASH_TYPES: tuple[str, ...] = ("sha256", "blake2b", "blake3")
DIGEST_HEX_LENGTH: dict[str, int] = {"sha256": 64, "blake2b": 128, "blake3": 64}
#: Read size: about what a core's L2 cache holds, so SHA-256 reads the bytes
#: the kernel just copied from cache (measured 2-4 % faster than 4 MiB on (a)).
CHUNK_SIZE = 1024 * 1024
#: Files smaller than this are hashed one after another on one thread.
SMALL_FILE = 256 * 1024
#: Compressed archive members inflating past this are refused (zip bombs).
MAX_MEMBER_BYTES = 64 * 1024**3

#: The file fingerprint of an empty file in shard mode (it has no shard).
NO_SHARDS = "empty"


class Progress(Protocol):
    """Told how hashing advances; called from several threads at once."""

    def start(self, files: int, nbytes: int) -> None:
        """Before anything is read: how many files and bytes will be hashed."""

    def advance(self, nbytes: int) -> None:
        """``nbytes`` more bytes were hashed."""

    def file_done(self) -> None:
        """One more file is completely hashed."""


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


def scheme(hash_type: str, shard_size: int | None = None) -> str:
    """A name for "how a file is hashed": ``sha256``, or ``sha256/shards/N``."""
    return hash_type if shard_size is None else f"{hash_type}/shards/{shard_size}"


def _parse_scheme(name: str) -> tuple[str, int | None]:
    hash_type, _, rest = name.partition("/shards/")
    return hash_type, (int(rest) if rest else None)


def shard_ranges(size: int, shard_size: int) -> list[tuple[int, int]]:
    """The OMS shards of a file of ``size`` bytes: ``[0, s), [s, 2s), ...``,
    the last one shorter; none for an empty file."""
    return [(start, min(start + shard_size, size)) for start in range(0, size, shard_size)]


@dataclass(frozen=True)
class ShardDigest:
    """The digest of the bytes ``[start, end)`` of a file."""

    start: int
    end: int
    digest: str


def shard_fingerprint(shards: Sequence[ShardDigest]) -> str:
    """One string for all the shards of a file, compared as a whole (a file
    with no shard, i.e. an empty one, is :data:`NO_SHARDS`)."""
    return ";".join(f"{s.start}:{s.end}:{s.digest}" for s in shards) or NO_SHARDS


def parse_shard_fingerprint(fingerprint: str) -> list[ShardDigest]:
    """The shards of a :func:`shard_fingerprint` (none for :data:`NO_SHARDS`)."""
    if fingerprint == NO_SHARDS:
        return []
    shards = []
    for part in fingerprint.split(";"):
        start, end, digest = part.split(":")
        shards.append(ShardDigest(int(start), int(end), digest))
    return shards


def fingerprint_size(fingerprint: str) -> int:
    """The file size a shard fingerprint stands for."""
    shards = parse_shard_fingerprint(fingerprint)
    return shards[-1].end if shards else 0


def differing_shards(
    want: Sequence[ShardDigest], got: Sequence[ShardDigest]
) -> list[tuple[ShardDigest, ShardDigest]] | None:
    """The (signed, actual) shards whose digests differ, in order; ``None``
    when the two lists cut files of different sizes (different ranges)."""
    if [(w.start, w.end) for w in want] != [(g.start, g.end) for g in got]:
        return None
    return [(w, g) for w, g in zip(want, got, strict=True) if w.digest != g.digest]


def fingerprint_difference(expected: str, actual: str) -> tuple[str, str, str]:
    """``(where, expected, actual)`` for a message: for shard fingerprints the
    first differing shard (``" at 0:1048576, and 2 more shards"``) and its two
    digests, not two fingerprints of thousands of shards; for digests, as is."""
    if ":" not in expected + actual:
        return "", expected, actual
    diff = differing_shards(parse_shard_fingerprint(expected), parse_shard_fingerprint(actual))
    if diff is None:
        return " (size)", f"{fingerprint_size(expected)} bytes", f"{fingerprint_size(actual)} bytes"
    w, g = diff[0]
    more = f", and {len(diff) - 1} more shard(s)" if len(diff) > 1 else ""
    return f" at shard {w.start}:{w.end}{more}", w.digest, g.digest


class _ShardedHasher:
    """Hashes a stream as consecutive shards; ``hexdigest`` is the file fingerprint."""

    def __init__(self, factory: Callable[[], Hasher], shard_size: int) -> None:
        self._factory = factory
        self._size = shard_size
        self._done: list[ShardDigest] = []
        self._current: Hasher | None = None
        self._offset = 0
        self._start = 0

    def update(self, data: bytes | memoryview, /) -> None:
        view = memoryview(data).cast("B")
        while view:
            if self._current is None:
                self._current, self._start = self._factory(), self._offset
            room = self._start + self._size - self._offset
            part, view = view[:room], view[room:]
            self._current.update(part)
            self._offset += len(part)
            if self._offset - self._start == self._size:
                self._finish()

    def _finish(self) -> None:
        assert self._current is not None
        self._done.append(ShardDigest(self._start, self._offset, self._current.hexdigest()))
        self._current = None

    def hexdigest(self) -> str:
        if self._current is not None:
            self._finish()
        return shard_fingerprint(self._done)


def new_scheme_hasher(name: str) -> Callable[[], Hasher]:
    """A factory of streaming hashers for a :func:`scheme`: their
    ``hexdigest`` is the file's digest, or its shard fingerprint."""
    hash_type, shard_size = _parse_scheme(name)
    factory = new_hasher(hash_type)
    if shard_size is None:
        return factory
    return lambda: _ShardedHasher(factory, shard_size)


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
    #: In shard mode, the digests of the file's shards (``()`` for an empty file).
    shards: tuple[ShardDigest, ...] | None = None

    @property
    def fingerprint(self) -> str:
        """What is compared with the manifest: the digest, or the shard fingerprint."""
        return self.digest if self.shards is None else shard_fingerprint(self.shards)


def check_member_sizes(layout: archive.Layout, display: str) -> None:
    """Refuse an archive member that declares more than :data:`MAX_MEMBER_BYTES`
    (a zip bomb), whether or not anything inflates it here."""
    for m in layout.members:
        if m.size > MAX_MEMBER_BYTES:
            raise UnsafeArchiveError(
                f"{display}: member {m.name!r} declares {m.size} bytes, more than the limit "
                f"of {MAX_MEMBER_BYTES} bytes"
            )


def check_archive(
    f: BinaryIO, size: int, display: str, factory: Callable[[], Hasher]
) -> tuple[archive.Layout | None, dict[int, str]]:
    """The checks every reader of a model file makes (signing, verifying, the
    loader hook): a zip or tar archive must be structurally unambiguous, no
    member may declare more than :data:`MAX_MEMBER_BYTES`, and each compressed
    member is inflated (bounded, and checked against its declared size and
    CRC), so that a zip bomb or a member lying about its size is refused, not
    left to the loader. Returns the layout (``None`` for a file that is no
    archive) and the compressed members' digests by ``id(member)``."""
    layout = archive.inspect(f, size, display)
    if layout is None:
        return None, {}
    check_member_sizes(layout, display)
    inflated = {
        id(m): archive.member_digest(f, layout, m, factory, display, MAX_MEMBER_BYTES)
        for m in layout.members
        if m.data_range is None
    }
    return layout, inflated


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
            check_archive(f, size, display, factory) if inspect_archive else (None, {})
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
        digest = whole.hexdigest()
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
            layout, _ = check_archive(f, st.st_size, display, factory)
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
            "",
            kinds.get(f.name),
            shards=tuple(sorted(shards[f.name], key=lambda d: d.start)),
        )
        for f in files
    }
