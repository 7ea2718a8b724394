"""``torch.distributed.checkpoint``: a distributed checkpoint loads from verified bytes.

``FileSystemReader`` opens each file it reads through ``FileSystem.create_stream``:
``.metadata`` (unpickled with ``pickle.load``) and the ``.distcp`` files,
from which it hands ``torch.load`` a view of one archive at a time. Under
enforcement:

* ``create_stream`` in a read mode verifies the file (its bundle, its digest,
  its archive structure: a ``.distcp`` file is torch archives end to end) and
  yields a stream of exactly the verified bytes, under the trust of a verified
  load; so each rank checks only the files it reads, with no gap between the
  check and the read, and ``.metadata`` is refused before it is unpickled;
* ``FileSystemReader._slice_file`` lets ``torch.load`` read only one of the
  archives the check found (``.metadata`` names byte ranges);
* ``torch.distributed.checkpoint.load`` verifies ``.metadata`` before it
  starts, so that a refusal there reaches the caller on every rank as the
  refusal it is (torch turns an error reading ``.metadata`` into an
  ``AssertionError``), and re-raises a refusal that a rank reported through
  torch's ``CheckpointException``;
* DCP's object collectives (plans, metadata, the failures of other ranks) may
  resolve the plain data types of :data:`COLLECTIVE_GLOBALS`, and nothing more
  than any other unverified unpickling (:mod:`modelsign.hooks._audit`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from modelsign._archive import extents
from modelsign._guard import Guard, LoadSource
from modelsign.errors import LoadRefusedError, UnsafeLoadError
from modelsign.hooks._common import (
    active,
    current_guard,
    is_path,
    refuse,
    trusted_load,
    untrusted_load,
)
from modelsign.hooks._loaders import source_for

__all__ = ["COLLECTIVES", "COLLECTIVE_GLOBALS", "collective_global", "patches"]

Patch = tuple[object, str, Any]

_WHAT = "torch.distributed.checkpoint"

#: The unpickling function of torch.distributed's object collectives
#: (module, class or None, function), as the audit layer names a channel.
COLLECTIVES = ("torch.distributed.distributed_c10d", None, "_tensor_to_object")

_DCP = "torch.distributed.checkpoint"
#: What DCP's collectives carry besides plain containers: its plans and
#: metadata (dataclasses and enums that only hold values), the failures of
#: other ranks (:func:`collective_global` adds exception classes), and the
#: checkpoint's path.
COLLECTIVE_GLOBALS = frozenset(
    {
        *(
            f"{_DCP}.metadata.{n}"
            for n in (
                "BytesStorageMetadata",
                "ChunkStorageMetadata",
                "Metadata",
                "MetadataIndex",
                "StorageMeta",
                "TensorProperties",
                "TensorStorageMetadata",
                "_MEM_FORMAT_ENCODING",
            )
        ),
        *(
            f"{_DCP}.planner.{n}"
            for n in (
                "LoadItemType",
                "LoadPlan",
                "ReadItem",
                "SavePlan",
                "TensorWriteData",
                "WriteItem",
                "WriteItemType",
            )
        ),
        f"{_DCP}.filesystem._StorageInfo",
        f"{_DCP}.filesystem._StoragePrefix",
        f"{_DCP}.storage.WriteResult",
        f"{_DCP}.api.CheckpointException",
        "traceback.FrameSummary",
        "traceback.StackSummary",
        "pathlib.Path",
        "pathlib.PosixPath",
        "pathlib.PurePosixPath",
        "modelsign.errors._base._restore",
    }
)

#: Modules whose exception classes a failure reported by another rank may be.
_EXCEPTION_MODULES = ("builtins", "modelsign.errors", "modelsign._refusals")


def collective_global(module: str, name: str) -> bool:
    """Whether DCP's object collectives may resolve ``module.name``."""
    if f"{module}.{name}" in COLLECTIVE_GLOBALS:
        return True
    if module not in _EXCEPTION_MODULES:
        return False
    # Look in the module's namespace only (no import, no attribute hook).
    value = vars(sys.modules[module]).get(name) if module in sys.modules else None
    return isinstance(value, type) and issubclass(value, BaseException)


# ---------------------------------------------------------------- reading


def _reads(mode: str) -> bool:
    return "r" in mode and not any(c in mode for c in "wax+")


class _Verified:
    """A stream of a file's verified bytes, and the archives in it."""

    def __init__(self, path: str, source: LoadSource) -> None:
        self.path = path
        self.source = source
        self._extents: list[tuple[int, int]] | None = None

    def extents(self) -> list[tuple[int, int]]:
        if self._extents is None:
            with self.source.fileobj() as f:
                self._extents = extents(f, self.source.size, self.path)
        return self._extents


#: The streams create_stream yielded over verified bytes, while they are open.
_verified: weakref.WeakKeyDictionary[Any, _Verified] = weakref.WeakKeyDictionary()


def create_stream(orig: Callable[..., Any]) -> Callable[..., Any]:
    """``FileSystem.create_stream``: a file opened for reading is verified
    and read from its verified bytes (see the module's note)."""

    @contextlib.contextmanager
    def wrapper(self: Any, path: Any, mode: str) -> Iterator[Any]:
        guard = active(path) if _reads(mode) and is_path(path) else None
        if guard is None:
            with orig(self, path, mode) as stream:
                yield stream
            return
        source = source_for(guard, path, memfd=False, what=_WHAT)
        if source is None:  # out of scope, or refused in warn mode
            with (
                untrusted_load(f"{_WHAT} read of {os.fsdecode(path)}"),
                orig(self, path, mode) as stream,
            ):
                yield stream
            return
        with source, trusted_load(source), source.fileobj() as stream:
            _verified[stream] = _Verified(source.origin or os.fsdecode(path), source)
            yield stream

    functools.update_wrapper(wrapper, orig)
    return wrapper


def slice_file(orig: Callable[..., Any]) -> Callable[..., Any]:
    """``FileSystemReader._slice_file``: a range of a verified file must be
    exactly one of its archives, as the check found them."""

    @functools.wraps(orig)
    def wrapper(self: Any, file: Any, sinfo: Any) -> Any:
        try:
            verified = _verified.get(file)
        except TypeError:  # a stream without weak references: not one of ours
            verified = None
        guard = None if verified is None else active(verified.path)
        if verified is not None and guard is not None:
            span = (int(sinfo.offset), int(sinfo.offset) + int(sinfo.length))
            found = verified.extents()
            if span not in found:
                _refuse_range(guard, verified.path, span, found)
        return orig(self, file, sinfo)

    return wrapper


def _refuse_range(
    guard: Guard, path: str, span: tuple[int, int], found: list[tuple[int, int]]
) -> None:
    listed = ", ".join(f"[{a}, {b})" for a, b in found[:5]) or "none"
    more = f" and {len(found) - 5} more" if len(found) > 5 else ""
    refuse(
        guard,
        UnsafeLoadError(
            f"{_WHAT} would hand torch.load the bytes [{span[0]}, {span[1]}), which are not one "
            f"of the archives the check found in it ({listed}{more})",
            target=path,
            policy=guard.policy.describe(),
            expected=f"one of {len(found)} archive ranges",
            actual=f"[{span[0]}, {span[1]})",
        ),
    )


# ------------------------------------------------------------------ load()


def load(orig: Callable[..., Any]) -> Callable[..., Any]:
    """``torch.distributed.checkpoint.load``: ``.metadata`` is verified
    before anything else, and a refusal that a rank reported comes out as
    itself on every rank (its ``__cause__`` is torch's ``CheckpointException``)."""

    @functools.wraps(orig)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        metadata = _metadata_path(args, kwargs)
        guard = current_guard() if metadata is None else active(metadata)
        if guard is None:
            return orig(*args, **kwargs)
        if metadata is not None and os.path.isfile(metadata):
            source = source_for(guard, metadata, memfd=False, what=f"{_WHAT}.load")
            if source is not None:
                source.close()
        try:
            return orig(*args, **kwargs)
        except BaseException as e:
            refusal = _refusal_in(e)
            if refusal is None:
                raise
            raise refusal from e

    return wrapper


def _metadata_path(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    """The ``.metadata`` a file-system load will read, if it is one."""
    module = sys.modules.get(f"{_DCP}.filesystem")
    reader_class = getattr(module, "FileSystemReader", None)
    file_system = getattr(module, "FileSystem", None)
    if reader_class is None or file_system is None:
        return None
    reader = kwargs.get("storage_reader", args[1] if len(args) > 1 else None)
    checkpoint_id = kwargs.get("checkpoint_id")
    if reader is not None and not (
        isinstance(reader, reader_class) and type(getattr(reader, "fs", None)) is file_system
    ):
        return None
    folder = checkpoint_id if checkpoint_id is not None else getattr(reader, "path", None)
    if folder is None or not is_path(folder) or "://" in os.fsdecode(folder):
        return None
    return os.path.join(os.fsdecode(folder), ".metadata")


def _refusal_in(error: BaseException) -> LoadRefusedError | None:
    """The first refusal among the failures of torch's ``CheckpointException``."""
    failures = getattr(error, "failures", None)
    if not isinstance(failures, dict):
        return None
    for rank in sorted(failures):
        failure = failures[rank]
        exc = failure[0] if isinstance(failure, tuple) and failure else failure
        if isinstance(exc, LoadRefusedError):
            return exc
    return None


# ---------------------------------------------------------------- patches


def filesystem_patches(module: Any) -> list[Patch]:
    out: list[Patch] = []
    file_system = getattr(module, "FileSystem", None)
    if isinstance(file_system, type) and "create_stream" in vars(file_system):
        out.append(
            (file_system, "create_stream", create_stream(vars(file_system)["create_stream"]))
        )
    reader = getattr(module, "FileSystemReader", None)
    if isinstance(reader, type) and "_slice_file" in vars(reader):
        out.append((reader, "_slice_file", slice_file(vars(reader)["_slice_file"])))
    return out


def load_patches(module: Any) -> list[Patch]:
    return [(module, "load", load(module.load))] if callable(getattr(module, "load", None)) else []


def patches(module: Any) -> list[Patch]:
    """For ``torch.distributed.checkpoint`` and the modules it is made of."""
    if module.__name__ == f"{_DCP}.filesystem":
        return filesystem_patches(module)
    return load_patches(module)
