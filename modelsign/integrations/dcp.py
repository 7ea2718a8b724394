"""Distributed checkpoints (``torch.distributed.checkpoint``), signed as they are written.

:class:`SigningFileSystemWriter` is a ``FileSystemWriter`` that signs the
checkpoint folder once every rank has written its files::

    import torch.distributed.checkpoint as dcp
    from modelsign.integrations.dcp import SigningFileSystemWriter

    writer = SigningFileSystemWriter("ckpt/step-100", signer="release.key")
    dcp.save(state_dict, storage_writer=writer)            # ckpt/step-100/model.sig
    dcp.async_save(state_dict, storage_writer=writer).result()  # signed when done

How it works, rank by rank:

* every rank hashes each file it writes **as it writes it**: each buffer torch
  hands the file is hashed before the write returns (the whole file, and each
  buffer on its own, which is an archive member's data), so no rank reads
  another rank's files and nobody reads the data back. The archive structure of
  a ``.distcp`` file (torch archives end to end) is then checked from the file's
  headers, as ``modelsign sign`` checks it;
* the digests travel to the coordinator inside the write results that
  ``torch.distributed.checkpoint`` gathers anyway (plain tuples of strings and
  numbers, taken out before ``.metadata`` is written: they are never in it);
* the coordinator removes any old ``model.sig`` before any rank writes, and,
  after ``.metadata`` is in place, checks that the folder holds exactly the
  files the ranks wrote (no stale file of an earlier save, no file of another
  size) and signs one OMS bundle for the whole folder with the same manifest
  as ``modelsign sign FOLDER`` would build, written atomically.

A rank that fails or dies during the save makes the coordinator skip
``finish``: the folder is then left without a bundle, so it does not verify and
the loader hook refuses it. Between the first write and the bundle, the folder
has no bundle either. With ``async_save`` (its default thread executor), the
signature is written when the returned future completes.

Limits: ``use_collectives=False`` (one metadata file per rank, no coordinator)
and the experimental ``_extensions`` and ``serialization_format`` options are
refused; the writer cannot be sent to another process (``async_save`` with
``AsyncCheckpointerType.PROCESS``), since it holds the signer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import mmap
import os
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from torch.distributed.checkpoint.filesystem import (
    FileSystem,
    FileSystemWriter,
    SerializationFormat,
)
from torch.distributed.checkpoint.metadata import Metadata
from torch.distributed.checkpoint.planner import SavePlan, SavePlanner
from torch.distributed.checkpoint.storage import WriteResult
from torch.futures import Future

from modelsign import _archive
from modelsign._digests import Fingerprint, Hasher, new_hasher
from modelsign._enumerating import DEFAULT_IGNORES, enumerate_model
from modelsign._hashing import CHUNK_SIZE, FileDigest, MemberDigest
from modelsign.errors import UnsafeModelError, UsageError
from modelsign.keys import PrivateKey
from modelsign.manifest import HashType, Manifest, Serialization
from modelsign.signing import SignedModel, Signer, as_signer, default_signature_path, sign_manifest

__all__ = ["SigningFileSystemWriter"]

#: Marks the digests a rank adds to its write results (format version 1).
_MARK = "modelsign.dcp.digests/1"


class SigningFileSystemWriter(FileSystemWriter):
    """A ``FileSystemWriter`` whose checkpoint folder gets a ``model.sig``
    signed by the coordinator from the digests every rank took of the files
    it wrote (see the module's note).

    Args:
        path: the checkpoint folder (as ``FileSystemWriter`` takes it).
        signer: as :func:`modelsign.sign` takes it; only the coordinator
            uses it (it is resolved, and a key file loaded, before any rank
            writes).
        hash_type: as :func:`modelsign.sign` takes it.
        kwargs: passed to ``FileSystemWriter`` (``thread_count``,
            ``sync_files``, ``overwrite``, ...).

    Raises:
        UsageError: ``_extensions`` or a ``serialization_format`` other than
            ``TORCH_SAVE``; an unknown ``hash_type``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        signer: Signer | PrivateKey | str | os.PathLike[str],
        *,
        hash_type: HashType = "sha256",
        **kwargs: Any,
    ) -> None:
        if kwargs.get("_extensions"):
            raise UsageError(
                "{param}...: a stream extension changes the bytes torch.load reads; the "
                "signed checkpoint must hold torch archives as they are",
                parameter="_extensions",
            )
        if kwargs.get("serialization_format", SerializationFormat.TORCH_SAVE) is not (
            SerializationFormat.TORCH_SAVE
        ):
            raise UsageError(
                "{param}...: only SerializationFormat.TORCH_SAVE (the default) is signed",
                parameter="serialization_format",
            )
        factory = new_hasher(hash_type)
        super().__init__(path, **kwargs)
        self._signer = signer
        self._hash_type: HashType = hash_type
        self._hashing = _HashingFileSystem(factory)
        self.fs = self._hashing
        self._resolved: Signer | None = None
        #: On the coordinator, what the last save signed.
        self.signed: SignedModel | None = None

    def __reduce__(self) -> Any:
        raise UsageError(
            "a SigningFileSystemWriter signs in the process that saves: it cannot be sent to "
            "another one (use async_save's default thread executor)"
        )

    @property
    def signature(self) -> Path:
        """Where the bundle goes: ``model.sig`` in the checkpoint folder."""
        return default_signature_path(Path(self.path))

    def set_up_storage_writer(self, is_coordinator: bool, *args: Any, **kwargs: Any) -> None:
        """Before any rank writes: resolve the signer and remove an old
        bundle (coordinator)."""
        super().set_up_storage_writer(is_coordinator, *args, **kwargs)
        if not self.use_collectives:
            raise UsageError(
                "{param}False: no coordinator gathers every rank's digests, so no bundle can "
                "vouch for the whole checkpoint",
                parameter="use_collectives",
            )
        self.signed = None
        if is_coordinator:
            self._resolved = as_signer(self._signer)
            self.signature.unlink(missing_ok=True)

    def write_data(self, plan: SavePlan, planner: SavePlanner) -> Future[list[WriteResult]]:
        """Write this rank's files, hashing them as they are written; the
        digests go back with the write results."""
        self._hashing.start(Path(self.path))
        results = super().write_data(plan, planner).wait()
        digests = self._hashing.take()
        done: Future[list[WriteResult]] = Future()
        done.set_result([*results, _pack(digests)])  # type: ignore[list-item]
        return done

    def finish(self, metadata: Metadata, results: list[list[WriteResult]]) -> None:
        """Coordinator: write ``.metadata``, then sign the folder."""
        files: dict[str, FileDigest] = {}
        plain: list[list[WriteResult]] = []
        for rank, rank_results in enumerate(results):
            plain.append([r for r in rank_results if isinstance(r, WriteResult)])
            packed: list[Any] = [r for r in rank_results if _is_pack(r)]
            if len(packed) != 1:
                raise UsageError(
                    f"rank {rank} sent no file digests: every rank must save with a "
                    "SigningFileSystemWriter"
                )
            for digest in _unpack(packed[0]):
                if digest.name in files:
                    raise UnsafeModelError(f"{digest.name}: written by two ranks")
                files[digest.name] = digest
        self._hashing.start(Path(self.path))
        super().finish(metadata, plain)
        (written,) = self._hashing.take()  # .metadata.tmp, renamed to .metadata
        name = Path(self._get_metadata_path()).name
        files[name] = dataclasses.replace(written, name=name)
        self.signed = self._sign(files)

    def _sign(self, files: dict[str, FileDigest]) -> SignedModel:
        root = Path(self.path)
        tree = enumerate_model(root, ignore_paths=DEFAULT_IGNORES, signature=self.signature)
        on_disk = {f.name: f.size for f in tree.files}
        problems = [f"{n} was not written by this save" for n in sorted(set(on_disk) - set(files))]
        problems += [f"{n} is missing" for n in sorted(set(files) - set(on_disk))]
        problems += [
            f"{n} has {on_disk[n]} bytes, {d.size} were written"
            for n, d in sorted(files.items())
            if n in on_disk and on_disk[n] != d.size
        ]
        if problems:
            raise UnsafeModelError(
                f"{root}: not signed: {'; '.join(problems)} (save each signed checkpoint into "
                "a new or empty folder)"
            )
        serialization = Serialization(
            hash_type=self._hash_type, ignore_paths=tuple(sorted(tree.ignore_paths))
        )
        manifest = Manifest.from_digests(tree.name, files, serialization)
        assert self._resolved is not None
        return sign_manifest(manifest, self._resolved, self.signature, force=True)


# ---------------------------------------------------------------------- hashing


class _HashingFileSystem(FileSystem):
    """The file system of one writer: files opened for writing are hashed as
    they are written; :meth:`take` returns their digests."""

    def __init__(self, factory: Callable[[], Hasher]) -> None:
        super().__init__()
        self._factory = factory
        self._lock = threading.Lock()
        self._root = Path()
        self._digests: list[FileDigest] = []

    def start(self, root: Path) -> None:
        with self._lock:
            self._root = root
            self._digests = []

    def take(self) -> list[FileDigest]:
        with self._lock:
            digests, self._digests = self._digests, []
        return digests

    @contextmanager
    def create_stream(self, path: str | os.PathLike[str], mode: str) -> Iterator[Any]:
        if "w" not in mode:
            with super().create_stream(path, mode) as stream:
                yield stream
            return
        name = Path(os.path.relpath(path, self._root)).as_posix()
        with _HashingStream(Path(path), self._factory) as stream:
            yield stream
            digest = stream.digest(name)
        with self._lock:
            self._digests.append(digest)


class _HashingStream:
    """A new file, hashed as it is written.

    The writer's buffers are the caller's again once ``write`` returns, and
    copying them would cost about as much as hashing them; but the bytes are
    in the page cache once written. So two threads follow the writes, each
    range as soon as it is written, reading it back through this stream's own
    descriptor (a memory map of the page cache: no copy): one hashes the
    whole file, the other each write on its own (torch writes an archive
    member's data in one write). The file is created anew (an old one is
    removed first, and ``O_EXCL``), so no other process holds it open for
    writing. The hashing runs while torch writes the next items and while the
    file is synced; the digest waits for it. Writes only append.
    """

    _DONE = (-1, -1)

    def __init__(self, path: Path, factory: Callable[[], Hasher]) -> None:
        self._path = path
        self._factory = factory
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        self._fd = os.open(path, flags, 0o666)
        self._offset = 0
        self._closed = False
        self._whole = factory()
        self._writes: dict[tuple[int, int], str] = {}
        self._failures: list[BaseException] = []
        self._queues: list[queue.SimpleQueue[tuple[int, int]]] = []
        self._followers = []
        for target in (self._follow_whole, self._follow_writes):
            pending: queue.SimpleQueue[tuple[int, int]] = queue.SimpleQueue()
            thread = threading.Thread(
                target=self._follow, args=(pending, target), name="modelsign-dcp-hash", daemon=True
            )
            self._queues.append(pending)
            self._followers.append(thread)
            thread.start()

    # --- what torch calls (a write-only, append-only file object)

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        start = self._offset
        while view:
            written = os.write(self._fd, view)
            self._offset += written
            view = view[written:]
        if self._offset > start:
            for pending in self._queues:
                pending.put((start, self._offset))
        return self._offset - start

    def tell(self) -> int:
        return self._offset

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def flush(self) -> None:
        pass  # unbuffered

    def fileno(self) -> int:
        return self._fd

    def close(self) -> None:
        self._closed = True  # the descriptor stays open until the hashing is done

    @property
    def closed(self) -> bool:
        return self._closed

    # --- the followers

    def _follow(
        self,
        pending: queue.SimpleQueue[tuple[int, int]],
        hash_span: Callable[[tuple[int, int], bytearray], None],
    ) -> None:
        buf = bytearray(CHUNK_SIZE)
        try:
            while (span := pending.get()) != self._DONE:
                hash_span(span, buf)
        except BaseException as e:  # noqa: BLE001 - raised by digest()
            self._failures.append(e)

    def _follow_whole(self, span: tuple[int, int], buf: bytearray) -> None:
        for chunk in _chunks(self._fd, span, buf):
            self._whole.update(chunk)

    def _follow_writes(self, span: tuple[int, int], buf: bytearray) -> None:
        part = self._factory()
        for chunk in _chunks(self._fd, span, buf):
            part.update(chunk)
        self._writes[span] = part.hexdigest()

    def __enter__(self) -> _HashingStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop()
        os.close(self._fd)

    def _stop(self) -> None:
        for pending, thread in zip(self._queues, self._followers, strict=True):
            if thread.is_alive():
                pending.put(self._DONE)
        for thread in self._followers:
            thread.join()

    def digest(self, name: str) -> FileDigest:
        """The file's digest, as :func:`modelsign.sign` records it: the whole
        file as written; its archive structure checked from the file's
        headers; each member's digest from the write that held its data
        (a member written otherwise is read again)."""
        self._stop()
        if self._failures:
            raise self._failures[0]
        size = os.fstat(self._fd).st_size
        if size != self._offset:
            raise UnsafeModelError(
                f"{self._path}: changed while it was written: {self._offset} bytes written, "
                f"the file has {size}"
            )
        whole = Fingerprint(digest=self._whole.hexdigest())
        with open(self._fd, "rb", closefd=False) as f:
            layout, inflated = _archive.check(f, size, str(self._path), self._factory)
            if layout is None:
                return FileDigest(name, size, whole)
            members = []
            for m in layout.members:
                if m.data_range is None:
                    digest = inflated[id(m)]
                else:
                    digest = self._writes.get(m.data_range) or _hash_range(
                        self._fd, m.data_range, self._factory
                    )
                members.append(MemberDigest(m.name, m.size, digest, m.compression))
        return FileDigest(name, size, whole, layout.kind, tuple(members))


#: Ranges at least this long are hashed through a memory map (no copy).
_MAP_AT_LEAST = 4 * CHUNK_SIZE


def _chunks(fd: int, span: tuple[int, int], buf: bytearray) -> Iterator[memoryview]:
    """The bytes ``[start, end)`` of the file ``fd``, in pieces."""
    start, end = span
    if end - start >= _MAP_AT_LEAST:
        offset = start - start % mmap.ALLOCATIONGRANULARITY
        with mmap.mmap(fd, end - offset, offset=offset, access=mmap.ACCESS_READ) as mapped:
            view = memoryview(mapped)
            try:
                for pos in range(start - offset, end - offset, CHUNK_SIZE):
                    piece = view[pos : min(pos + CHUNK_SIZE, end - offset)]
                    try:
                        yield piece
                    finally:
                        piece.release()  # the map closes only once no view holds it
            finally:
                view.release()
        return
    view = memoryview(buf)
    pos = start
    while pos < end:
        n = os.preadv(fd, [view[: min(len(buf), end - pos)]], pos)
        if n == 0:
            raise UnsafeModelError(f"file descriptor {fd}: ends before offset {end}")
        yield view[:n]
        pos += n


def _hash_range(fd: int, span: tuple[int, int], factory: Callable[[], Hasher]) -> str:
    h = factory()
    for chunk in _chunks(fd, span, bytearray(CHUNK_SIZE)):
        h.update(chunk)
    return h.hexdigest()


# ------------------------------------------------------------- on the wire
# Plain tuples of strings and numbers: torch.distributed's object collectives
# pickle them with no global to resolve.

_Packed = tuple[Any, ...]


def _pack(digests: Sequence[FileDigest]) -> _Packed:
    return (
        _MARK,
        tuple(
            (
                d.name,
                d.size,
                d.fingerprint.digest,
                d.archive,
                tuple((m.name, m.size, m.digest, m.compression) for m in d.members),
            )
            for d in digests
        ),
    )


def _is_pack(value: object) -> bool:
    return isinstance(value, tuple) and len(value) == 2 and value[0] == _MARK


def _unpack(packed: _Packed) -> list[FileDigest]:
    return [
        FileDigest(
            name,
            size,
            Fingerprint(digest=digest),
            archive,
            tuple(MemberDigest(*m) for m in members),
        )
        for name, size, digest, archive, members in packed[1]
    ]
