"""Load-time verification: read a file once, check it, hand over exactly those bytes.

A hooked loader asks the :class:`Guard` for a :class:`LoadSource` instead of
opening the file itself. The guard

1. finds the bundle that vouches for the file: ``FILE.sig`` beside it, else the
   nearest ``model.sig`` in a folder above it whose manifest lists it (and the
   policy's explicit bundles, whose digests are trusted for any bytes);
2. checks that bundle's signature against the policy's trusted keys;
3. reads the file once, into memory (small files) or into a sealed memfd
   (large files and memory-mapped loads on Linux), and hashes what it read;
4. compares the digest with the signed one, and checks archive structure;
5. gives the loader an ``io.BytesIO`` of those bytes or ``/proc/self/fd/N`` of
   the sealed memfd, which cannot change after the check.

Every refusal is a :class:`~modelsign.errors.LoadRefusedError` subclass naming
the file, the reason, the expected and actual digests, and the policy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import os
import stat
import sys
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from modelsign import _archive, _rollback
from modelsign._digests import Fingerprint, HashScheme
from modelsign._enumerating import SINGLE_FILE_NAME, hf_blobs_dir, symlink_target
from modelsign._hashing import CHUNK_SIZE
from modelsign._refusals import load_refusal_class
from modelsign._threshold import trusted_statement
from modelsign.errors import (
    FileDigestMismatchError,
    LoadRefusedError,
    MissingSignatureError,
    ModelMismatchError,
    ThresholdNotMetError,
    UnsafeArchiveError,
    UnsafeLoadError,
    UnsafeModelError,
    UnsignedFileError,
    VerificationError,
)
from modelsign.manifest import Manifest
from modelsign.policy import Policy, ProvenanceRules
from modelsign.verifying import VerifiedModel, verify

__all__ = ["MEMFD_THRESHOLD", "Guard", "LoadSource"]

#: Files at least this large go through a sealed memfd rather than memory.
MEMFD_THRESHOLD = 32 * 1024 * 1024
_MAX_ANCESTORS = 64
_HAS_MEMFD = sys.platform == "linux" and hasattr(os, "memfd_create")
_PIPE_CHUNK = 2 * 1024 * 1024


class LoadSource:
    """The verified bytes, as the loader will receive them.

    Exactly one of ``data`` (bytes in memory) and ``fd`` (a sealed memfd) is
    set. Use it as a context manager: the memfd is closed on exit (mappings a
    loader made of it stay valid).
    """

    def __init__(self, *, data: bytes | None = None, fd: int | None = None, size: int = 0) -> None:
        self.data = data
        self.fd = fd
        self.size = size if data is None else len(data)
        #: The file these bytes were read from, when they come from one.
        self.origin: str | None = None
        #: For a compressed file opened through a decompressing reader
        #: (``gzip.open``): the reader to put over the verified bytes.
        self.wrap: Callable[[BinaryIO], BinaryIO] | None = None

    @property
    def path(self) -> str:
        """A path naming the sealed memfd; only when :attr:`fd` is set."""
        if self.fd is None:
            raise ValueError("this source is in memory; use fileobj()")
        return f"/proc/self/fd/{self.fd}"

    def fileobj(self) -> BinaryIO:
        """A fresh binary file object over the verified bytes (decompressed
        through :attr:`wrap` when set)."""
        if self.data is not None:
            raw: BinaryIO = io.BytesIO(self.data)
        else:
            assert self.fd is not None
            # A new open file description, at offset 0: a dup() would share (and
            # inherit) the offset another reader of the memfd left behind.
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            raw = open(fd, "rb", closefd=True)  # noqa: SIM115 - the caller closes it
        return raw if self.wrap is None else self.wrap(raw)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> LoadSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class _Vouch:
    """A bundle whose signature verified, and the file's name in it."""

    signature: Path
    manifest: Manifest
    name: str | None  # None for an explicit bundle: matched by digest only

    @property
    def scheme(self) -> HashScheme:
        """How the bundle's files were hashed."""
        return self.manifest.serialization.scheme

    def could_match(self, size: int) -> bool:
        """Whether a file of ``size`` bytes could be this bundle's (its file's,
        for a bundle found by path): shard bundles say their files' sizes, so
        a file of another size is refused without hashing it in shards."""
        if self.manifest.serialization.shard_size is None:
            return True
        signed = self.manifest.file_fingerprints()
        if self.name is None:
            return any(f.size == size for f in signed.values())
        expected = self.expected()
        return expected is not None and expected.size == size

    def vouches_for(self, digests: dict[HashScheme, Fingerprint]) -> bool:
        """Whether the file whose fingerprints (by scheme) are ``digests`` is
        one of this bundle's files (an explicit bundle matches by digest)."""
        return digests[self.scheme] in self.manifest.file_fingerprints().values()

    def expected(self) -> Fingerprint | None:
        if self.name is None:
            return None
        digests = self.manifest.file_fingerprints()
        if self.name in digests:
            return digests[self.name]
        # A single-file bundle names its file '.' (model_signing): it vouches
        # for that one file only, the one it was signed as.
        if list(digests) == [SINGLE_FILE_NAME] and self.name == self.manifest.model_name:
            return digests[SINGLE_FILE_NAME]
        return None


class Guard:
    """Verifies what hooked loaders are about to deserialize, per ``policy``."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        #: Base models whose lineage verified in this process ([provenance] lineage).
        self._verified_bases: set[str] = set()

    # ------------------------------------------------------------------ bundles

    def _bundle(self, signature: Path, paths: list[str]) -> Manifest:
        """The statement of ``signature`` (and its co-signatures) that the
        policy's anchors, terms, thresholds and pins for ``paths`` accept,
        whose provenance holds when required, and whose release the rollback
        state allows; nothing is cached, so a reloaded policy (a revoked
        signer) applies to the next load."""
        manifest = trusted_statement(signature, self.policy, paths=paths).manifest
        self._provenance(signature, manifest.root_digest, str(signature.parent))
        if self.policy.state is not None:
            _rollback.check(
                self.policy.state, manifest.release, manifest.root_digest, str(signature)
            )
        return manifest

    def _provenance(self, signature: Path, root_digest: str, model: str) -> None:
        """With ``[provenance] require``, a bundle vouches for nothing unless
        the provenance beside it verifies (a base model's lineage is checked
        once per process)."""
        if not self.policy.provenance.require:
            return
        from modelsign.provenance import check_provenance  # noqa: PLC0415

        check_provenance(
            signature, root_digest, model, self.policy, verified_bases=self._verified_bases
        )

    def _explicit(
        self, path: str | None = None
    ) -> tuple[list[_Vouch], list[tuple[Path, VerificationError]]]:
        found, errors = [], []
        for sig in self.policy.bundles:
            try:
                found.append(_Vouch(sig, self._bundle(sig, [path] if path else []), None))
            except VerificationError as e:
                errors.append((sig, e))
        return found, errors

    def _accept(self, source: LoadSource, target: str, vouch: _Vouch) -> LoadSource:
        """The bytes matched ``vouch``: check the archive, and record the
        model's version in the rollback state (the load verified)."""
        self._check_archive(source, target)
        state, manifest = self.policy.state, vouch.manifest
        if state is not None:
            try:
                _rollback.record(
                    state, manifest.release, manifest.root_digest, str(vouch.signature)
                )
            except VerificationError as e:
                raise self._refuse(load_refusal_class(e), target, str(e)) from e
        return source

    def _discover(self, path: str) -> tuple[_Vouch | None, list[tuple[Path, VerificationError]]]:
        """The nearest verified bundle that lists the file at absolute ``path``."""
        errors: list[tuple[Path, VerificationError]] = []
        if not self.policy.discover:
            return None, errors
        file = Path(path)
        candidates = [(file.with_name(file.name + ".sig"), file.parent, True)]
        parent = file.parent
        for _ in range(_MAX_ANCESTORS):
            candidates.append((parent / "model.sig", parent, False))
            if parent.parent == parent:
                break
            parent = parent.parent
        for signature, root, single in candidates:
            if not os.path.isfile(signature):
                continue
            try:
                manifest = self._bundle(signature, [path] if single else [str(root), path])
            except MissingSignatureError:
                continue
            except VerificationError as e:
                errors.append((signature, e))
                continue
            name = file.name if single else Path(os.path.relpath(file, root)).as_posix()
            vouch = _Vouch(signature, manifest, name)
            if single and len(manifest.file_fingerprints()) != 1:
                continue
            if vouch.expected() is not None:
                return vouch, errors
        return None, errors

    # ------------------------------------------------------------------ reading

    def _target(self, path: str, vouch: _Vouch | None) -> tuple[str, bool]:
        """Where to open the file, and whether the last component may be a link.

        Symlinks are refused unless the bundle allows them or they follow the
        Hugging Face cache layout (a snapshot file linking into its blobs/).
        """
        allow = vouch is not None and vouch.manifest.serialization.allow_symlinks
        root = None if vouch is None else vouch.signature.parent
        if root is None or allow:
            return path, allow
        rel = Path(os.path.relpath(path, root))
        current = root
        for i, part in enumerate(rel.parts):
            current = current / part
            if os.path.islink(current):
                blob = symlink_target(current, hf_blobs_dir(root))
                if blob is None or i != len(rel.parts) - 1:
                    raise self._refuse(
                        UnsafeLoadError,
                        path,
                        f"{current} is a symbolic link, which {root / 'model.sig'} does not allow",
                    )
                return str(blob), False
        return path, False

    def _capture_fd(
        self, fd: int, size: int, hash_types: set[HashScheme], memfd: bool, what: str
    ) -> tuple[dict[HashScheme, Fingerprint], LoadSource]:
        """Copy the open regular file ``fd`` (from offset 0) into memory or a
        sealed memfd, then hash exactly the captured bytes."""
        if memfd and _HAS_MEMFD:
            out, digests = _memfd_capture(fd, hash_types)
            return digests, LoadSource(fd=out, size=os.fstat(out).st_size)
        chunks = []
        offset = 0
        while True:
            chunk = os.pread(fd, max(CHUNK_SIZE, size - offset), offset)
            if not chunk:
                break
            chunks.append(chunk)
            offset += len(chunk)
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        return _hash_bytes(data, hash_types), LoadSource(data=data)

    def _refuse(
        self,
        cls: type[LoadRefusedError],
        target: str,
        message: str,
        expected: str | None = None,
        actual: str | None = None,
    ) -> LoadRefusedError:
        return cls(
            message, target=target, policy=self.policy.describe(), expected=expected, actual=actual
        )

    # ------------------------------------------------------------------ public

    def in_scope(self, path: str) -> bool:
        return self.policy.in_scope(os.path.abspath(path))

    def open_path(
        self, path: str | os.PathLike[str], *, memfd: bool = False, what: str = "load"
    ) -> LoadSource:
        """Verify the file at ``path`` and return its captured bytes."""
        abspath = os.path.abspath(os.fspath(path))
        vouch, errors = self._discover(abspath)
        target, follow = self._target(abspath, vouch)
        flags = os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NONBLOCK", 0)
        if not follow:
            flags |= getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(target, flags)
        except OSError as e:
            if e.errno is not None and os.path.islink(target):
                raise self._refuse(UnsafeLoadError, abspath, "is a symbolic link") from e
            with contextlib.suppress(OSError):
                if not stat.S_ISREG(os.lstat(target).st_mode):  # a socket cannot be opened
                    raise self._refuse(
                        UnsafeLoadError, abspath, "not a regular file (a socket or device)"
                    ) from e
            raise  # missing or unreadable: as the loader itself would say
        try:
            source = self._check_fd(fd, abspath, vouch, errors, memfd=memfd, what=what)
        finally:
            os.close(fd)
        source.origin = abspath
        return source

    def in_scope_file(self, f: Any, fd: int) -> bool:
        """Whether a load of the open file ``f`` is guarded: when the file it
        is (``/proc/self/fd``) or the path it was opened by (its ``name``) is
        in scope, so that a link from inside the scope to a file outside it
        is guarded too."""
        if not self.policy.scope:
            return True
        paths = [p for p in (fd_path(fd), _name_path(f)) if p is not None]
        return not paths or any(self.in_scope(p) for p in paths)

    def open_file(self, f: Any, *, memfd: bool = False, what: str = "load") -> LoadSource:
        """Verify an open file object. It must be at position 0. The bytes read
        through its descriptor are what is checked and loaded; its path comes
        from ``/proc/self/fd`` on Linux. When it was opened through a link (its
        ``name`` is another path to the same file), it is judged as a load by
        that path would be: the bundle is looked up from the name, and a link
        the bundle does not allow is refused (no substitution through links)."""
        seekable = getattr(f, "seekable", None)
        if callable(seekable) and seekable():
            position = f.tell()
            if position != 0:
                raise self._refuse(
                    UnsafeLoadError, repr(f), f"the file object is at position {position}, not 0"
                )
        fd = fileno_of(f)
        if fd is None or not stat.S_ISREG(os.fstat(fd).st_mode):
            # Memory, a pipe, a socket: no file on disk to find a bundle for,
            # so its bytes are checked like memory.
            data = f.read()
            if not isinstance(data, bytes):
                raise self._refuse(UnsafeLoadError, repr(f), "the file object does not read bytes")
            return self.open_memory(data, what=f"{what} of {f!r}")
        decompress = _decompressor(f)
        real, named = fd_path(fd), _name_path(f)
        path = real or named or repr(f)
        if named is not None and real is not None and named != real:
            self._check_name(fd, named, real)
            path = named
        vouch, errors = self._discover(path)
        if path == named:
            target, follow = self._target(named, vouch)
            if not follow and target == named and os.path.islink(named):
                raise self._refuse(UnsafeLoadError, named, "is a symbolic link")
        source = self._check_fd(fd, path, vouch, errors, memfd=memfd and not decompress, what=what)
        source.origin = path
        if decompress is not None:
            # The loader reads decompressed bytes: from memory, never a path.
            if source.fd is not None:
                with source:
                    data = source.fileobj().read()
                source = LoadSource(data=data)
                source.origin = path
            source.wrap = decompress
            return source
        with contextlib.suppress(OSError, ValueError):
            f.seek(source.size)
        return source

    def _check_name(self, fd: int, named: str, real: str) -> None:
        """``named`` (a file object's name) must name the file open as ``fd``
        (at ``real``): else the name lies, or the file was renamed or replaced
        since it was opened, and neither can choose the bundle."""
        try:
            st = os.stat(named)
        except OSError:
            st = None
        opened = os.fstat(fd)
        if st is None or (st.st_dev, st.st_ino) != (opened.st_dev, opened.st_ino):
            raise self._refuse(
                UnsafeLoadError,
                real,
                f"the file object's name {named!r} does not name this file (a file object "
                "whose name lies, or a file renamed or replaced since it was opened)",
                expected=named,
                actual=real,
            )

    def open_memory(self, data: bytes, *, what: str = "in-memory bytes") -> LoadSource:
        """Verify bytes a program built itself: only the policy's explicit
        bundles can vouch for them, by digest."""
        explicit, errors = self._explicit()
        # A shard bundle lists its files' sizes: bytes of another size are
        # not hashed in its (possibly tiny) shards.
        explicit = [v for v in explicit if v.could_match(len(data))]
        types = {v.scheme for v in explicit} or {HashScheme("sha256")}
        digests = _hash_bytes(data, types)
        matched = next((v for v in explicit if v.vouches_for(digests)), None)
        if matched is not None:
            return self._accept(LoadSource(data=data), what, matched)
        raise self._unsigned(what, digests, errors)

    def verify_directory(
        self, path: str | os.PathLike[str], *, display: str | None = None, missing_ok: bool = False
    ) -> VerifiedModel:
        """Verify a whole model folder (``from_pretrained``): every file, no
        extra, no missing; Hugging Face cache snapshots are understood. A
        folder without its own ``model.sig`` is part of the nearest folder
        above it that has one (a subfolder of a model signed as a whole),
        which is verified whole. ``display`` names it in a refusal (a private
        copy of a folder is verified under the folder's name). ``missing_ok``:
        a cache snapshot, which holds only the files downloaded so far."""
        root = Path(path)
        for candidate in [root, *root.absolute().parents][:_MAX_ANCESTORS]:
            if (candidate / "model.sig").is_file():
                root = candidate
                break
        try:
            # Provenance, then the rollback state, once the folder verified.
            plain = dataclasses.replace(self.policy, provenance=ProvenanceRules(), state=None)
            verified = verify(root, plain, hf_cache=True, missing_ok=missing_ok)
            self._provenance(verified.signature, verified.root_digest, str(root))
            if self.policy.state is not None:
                release, digest = verified.release, verified.root_digest
                _rollback.record(self.policy.state, release, digest, str(verified.signature))
            return verified
        except VerificationError as e:
            refusal = self._refuse(
                _refusal_class(e),
                display or os.fspath(path),
                f"the model directory does not verify: {e}",
            )
            _copy_report(e, refusal)
            raise refusal from e

    # ------------------------------------------------------------------ core

    def _check_fd(
        self,
        fd: int,
        path: str,
        vouch: _Vouch | None,
        errors: list[tuple[Path, VerificationError]],
        *,
        memfd: bool,
        what: str,
    ) -> LoadSource:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise self._refuse(UnsafeLoadError, path, "not a regular file")
        explicit, explicit_errors = self._explicit(path)
        errors = errors + explicit_errors
        explicit = [v for v in explicit if v.could_match(st.st_size)]
        if vouch is None and not explicit:
            # Nothing could vouch for any bytes: refuse without reading them
            # (a multi-GB unsigned file costs nothing to refuse).
            raise self._unsigned(path, {}, errors)
        size_ok = vouch is not None and vouch.could_match(st.st_size)
        if vouch is not None and not size_ok and not explicit:
            raise self._size_mismatch(path, vouch, st.st_size)
        types = {v.scheme for v in explicit}
        if vouch is not None and size_ok:
            types.add(vouch.scheme)
        digests, source = self._capture_fd(
            fd, st.st_size, types, memfd or st.st_size >= MEMFD_THRESHOLD, what
        )
        try:
            if vouch is not None:
                expected = vouch.expected() if size_ok else None
                actual = digests.get(vouch.scheme)
                if expected is not None and actual == expected:
                    return self._accept(source, path, vouch)
                if not any(v.vouches_for(digests) for v in explicit):
                    if expected is None or actual is None:
                        raise self._size_mismatch(path, vouch, st.st_size)
                    where, want, got = expected.difference(actual)
                    kind = vouch.scheme.hash_type
                    raise self._refuse(
                        FileDigestMismatchError,
                        path,
                        f"digest mismatch against {vouch.signature} (entry {vouch.name!r}{where}): "
                        f"expected {kind}:{want}, actual {kind}:{got}",
                        want,
                        got,
                    )
            matched = next((v for v in explicit if v.vouches_for(digests)), None)
            if matched is not None:
                return self._accept(source, path, matched)
            raise self._unsigned(path, digests, errors)
        except BaseException:
            source.close()
            raise

    def _size_mismatch(self, path: str, vouch: _Vouch, size: int) -> LoadRefusedError:
        expected = vouch.expected()
        want = f"{expected.size} bytes" if expected is not None else "?"
        return self._refuse(
            FileDigestMismatchError,
            path,
            f"size mismatch against {vouch.signature} (entry {vouch.name!r}): "
            f"expected {want}, actual {size} bytes",
            want,
            f"{size} bytes",
        )

    def _unsigned(
        self,
        target: str,
        digests: dict[HashScheme, Fingerprint],
        errors: list[tuple[Path, VerificationError]],
    ) -> LoadRefusedError:
        # A digest for the message, not the digests of 1,000 shards.
        plain = sorted((s.sort_key(), f.digest) for s, f in digests.items() if f.digest)
        sha256 = digests.get(HashScheme("sha256"))
        actual = sha256.digest if sha256 is not None else next((d for _, d in plain), None)
        if errors:
            sig, err = errors[0]
            refusal = self._refuse(
                load_refusal_class(err),
                target,
                f"the bundle {sig} cannot vouch for it: {err}",
                actual=actual,
            )
            _copy_report(err, refusal)
            refusal.__cause__ = err
            return refusal
        if sha256 is not None:
            detail = f"actual sha256:{sha256}"
        elif digests:
            first = min(digests, key=HashScheme.sort_key)
            detail = f"its {first} fingerprint matches no entry"
        else:
            detail = (
                "not read: no FILE.sig, model.sig above it or explicit bundle could vouch for it"
            )
        return self._refuse(
            UnsignedFileError,
            target,
            f"no bundle signed by a trusted key lists it ({detail})",
            actual=actual,
        )

    def _check_archive(self, source: LoadSource, target: str) -> None:
        """Refuse an ambiguous archive, and one whose compressed members would
        inflate past their declared size or the limit (the loader inflates
        them next): each is inflated here once, in bounded chunks."""
        with source.fileobj() as f:
            try:
                _archive.check(f, source.size, target, hashlib.sha256)
            except UnsafeArchiveError as e:
                raise self._refuse(UnsafeLoadError, target, str(e)) from e


# ---------------------------------------------------------------------- helpers


def _refusal_class(error: VerificationError) -> type[LoadRefusedError]:
    """The load-refusal class for a directory verification failure."""
    if isinstance(error, ModelMismatchError):
        kinds = {m.kind for m in error.mismatches}
        return UnsignedFileError if kinds == {"extra"} else FileDigestMismatchError
    if isinstance(error, (UnsafeArchiveError, UnsafeModelError)):
        return UnsafeLoadError
    return load_refusal_class(error)


def _copy_report(error: VerificationError, refusal: LoadRefusedError) -> None:
    """A threshold refusal carries the report of which signatures counted."""
    if isinstance(error, ThresholdNotMetError) and isinstance(refusal, ThresholdNotMetError):
        refusal.report = error.report


def fileno_of(f: Any) -> int | None:
    try:
        fd = f.fileno()
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        return None
    return fd if isinstance(fd, int) else None


def _decompressor(f: Any) -> Callable[[BinaryIO], BinaryIO] | None:
    """For a file object that decompresses a file on disk (``gzip.open``,
    ``bz2.open``, ``lzma.open``): the same reader, to put over the verified
    compressed bytes. Its ``fileno()`` is the compressed file's."""
    for module, name in (("gzip", "GzipFile"), ("bz2", "BZ2File"), ("lzma", "LZMAFile")):
        kind = getattr(sys.modules.get(module), name, None)
        if isinstance(kind, type) and isinstance(f, kind):
            if module == "gzip":
                return lambda raw, kind=kind: kind(fileobj=raw, mode="rb")  # type: ignore[misc]
            return lambda raw, kind=kind: kind(raw, mode="rb")  # type: ignore[misc]
    return None


def _name_path(f: Any) -> str | None:
    """The absolute path a file object was opened by, if its name is one."""
    name = getattr(f, "name", None)
    if not isinstance(name, (str, bytes)) or not name:
        return None
    return os.path.abspath(os.fsdecode(name))


def fd_path(fd: int) -> str | None:
    if sys.platform != "linux":
        return None
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None
    return target if target.startswith("/") else None


def _memfd_capture(
    src: int, hash_types: set[HashScheme]
) -> tuple[int, dict[HashScheme, Fingerprint]]:
    """Copy ``src`` (from offset 0) into a new memfd, hashing exactly the bytes
    written, then seal it against any change.

    Reading and writing run on this thread while a second one hashes the chunk
    just read, so the cost is about that of hashing alone. Each buffer is
    reused only after its hash update is done; the single hashing thread keeps
    the chunks in order.
    """
    import fcntl  # noqa: PLC0415 - Linux only

    out = os.memfd_create("modelsign-verified", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    schemes = sorted(hash_types, key=HashScheme.sort_key)
    hashers = [t.hasher() for t in schemes]
    buffers = [bytearray(_PIPE_CHUNK), bytearray(_PIPE_CHUNK)]
    pending: list[Future[None] | None] = [None, None]

    def update(chunk: memoryview) -> None:
        for h in hashers:
            h.update(chunk)

    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="modelsign-hash") as pool:
            offset, k = 0, 0
            while True:
                if (job := pending[k]) is not None:
                    job.result()  # buffer k is hashed: it may be refilled
                n = os.preadv(src, [buffers[k]], offset)
                if n == 0:
                    break
                chunk = memoryview(buffers[k])[:n]
                pending[k] = pool.submit(update, chunk)
                while chunk:
                    chunk = chunk[os.write(out, chunk) :]
                offset += n
                k ^= 1
            for job in pending:
                if job is not None:
                    job.result()
        fcntl.fcntl(
            out,
            fcntl.F_ADD_SEALS,
            fcntl.F_SEAL_WRITE | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_SEAL,
        )
        os.lseek(out, 0, os.SEEK_SET)
    except BaseException:
        os.close(out)
        raise
    return out, {t: h.fingerprint() for t, h in zip(schemes, hashers, strict=True)}


def _hash_bytes(data: bytes, hash_types: set[HashScheme]) -> dict[HashScheme, Fingerprint]:
    result = {}
    for t in hash_types:
        h = t.hasher()
        h.update(data)
        result[t] = h.fingerprint()
    return result
