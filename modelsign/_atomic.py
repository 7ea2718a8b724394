"""Atomic file writes: a reader (or a crash) sees the old file or the whole new one."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from modelsign.errors import OverwriteError, UsageError


def temporary_name_prefix(path: Path) -> str:
    """Temporary files for ``path`` are named ``.NAME.<random>.tmp`` beside it."""
    return f".{path.name}."


def write_atomic(path: Path, data: bytes, *, mode: int = 0o644, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder.

    With ``overwrite=False`` the final step is ``os.link``, which fails if
    ``path`` exists, so a file is never replaced even in a race. A process
    killed while writing leaves ``path`` untouched, but may leave its
    temporary file (``.NAME.<random>.tmp``, see :func:`temporary_name_prefix`)
    behind; signing refuses to sign such a file.
    """
    directory = path.parent if str(path.parent) else Path(".")
    try:
        _write_named(directory, path, data, mode, overwrite)
    except FileExistsError as e:
        raise OverwriteError(f"{path}: already exists; modelsign never overwrites it") from e
    except OSError as e:
        raise UsageError(f"{path}: cannot write: {e.strerror}") from e
    sync_folder(directory)


def sync_folder(directory: Path) -> None:
    """Make a rename or a new file in ``directory`` durable (best effort)."""
    with contextlib.suppress(OSError):
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


@contextlib.contextmanager
def atomic_writer(path: Path, *, mode: int = 0o644) -> Iterator[BinaryIO]:
    """:func:`write_atomic` for output written piece by piece: the block
    writes to a temporary file beside ``path``, which replaces ``path`` when
    the block ends, and is removed if the block raises (``path`` is then
    left as it was)."""
    import tempfile  # noqa: PLC0415 - only when writing

    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=temporary_name_prefix(path), suffix=".tmp", dir=directory)
    except OSError as e:
        raise UsageError(f"{path}: cannot write: {e.strerror}") from e
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        raise UsageError(f"{path}: cannot write: {e.strerror}") from e
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    sync_folder(directory)


def _write_all(fd: int, data: bytes, mode: int) -> None:
    os.fchmod(fd, mode)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    os.fsync(fd)


def _write_named(directory: Path, path: Path, data: bytes, mode: int, overwrite: bool) -> None:
    import tempfile  # noqa: PLC0415 - only when writing: it costs every command ~4 ms to import

    fd, tmp = tempfile.mkstemp(prefix=temporary_name_prefix(path), suffix=".tmp", dir=directory)
    try:
        try:
            _write_all(fd, data, mode)
        finally:
            os.close(fd)
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def move_into_place(source: Path, path: Path, *, overwrite: bool = True) -> None:
    """Move the complete file ``source`` (on ``path``'s file system) to
    ``path`` in one step: a reader sees the old file or the whole new one.

    With ``overwrite=False`` the step is ``os.link``, which fails if ``path``
    exists, then ``source`` is removed.
    """
    try:
        if overwrite:
            os.replace(source, path)
        else:
            os.link(source, path)
            os.unlink(source)
    except FileExistsError as e:
        raise OverwriteError(f"{path}: already exists; modelsign never overwrites it") from e
    except OSError as e:
        raise UsageError(f"{path}: cannot write: {e.strerror}") from e
    sync_folder(path.parent if str(path.parent) else Path("."))
