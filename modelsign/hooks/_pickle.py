"""pickle and _pickle: load, Unpickler (files from disk), loads (opt-in, by digest)."""

from __future__ import annotations

import contextlib
import io
import os
import stat
from collections.abc import Callable
from typing import Any

from modelsign.errors import UnsafeLoadError
from modelsign.guard import Guard, _fd_path, _fileno
from modelsign.hooks._common import active, checked, nested

Patch = tuple[object, str, Any]


def _verified_stream(guard: Guard, file: Any, what: str) -> Any:
    """The stream to unpickle from.

    A file from disk is read once and replaced by its verified bytes. A pipe or
    a socket is IPC (multiprocessing's spawn start-up unpickles from a pipe),
    not a model, and passes; reading it to the end to check it would block. An
    in-memory stream is checked by digest only when the policy opts in
    (``pickle_loads``), like ``pickle.loads``.
    """
    fd = _fileno(file)
    if fd is not None and not stat.S_ISREG(os.fstat(fd).st_mode):
        where = _fd_path(fd)
        if where is not None:  # a named FIFO or a device: a path on disk, not IPC
            raise UnsafeLoadError(
                "not a regular file: a FIFO or device cannot be verified before it is read",
                target=where,
                policy=guard.policy.describe(),
            )
        return file
    if fd is None:
        if not guard.policy.pickle_loads:
            return file
        data = file.read()
        checked(guard, lambda: guard.open_memory(data, what=what))
        return io.BytesIO(data)
    path = _fd_path(fd)
    if path and not guard.in_scope(path):
        return file
    source = checked(guard, lambda: guard.open_file(file, what=what))
    if source is None:  # warn mode: unpickle the stream as it was
        file.seek(0)
        return file
    with source:
        return source.fileobj()


def _hand_back(stream: Any, file: Any) -> None:
    """After unpickling from our verified copy: leave the caller's file where
    the pickle ended, as pickle.load would, and close the copy."""
    if stream is file:
        return
    with contextlib.suppress(OSError, ValueError, AttributeError):
        file.seek(stream.tell())
    stream.close()


def wrap_load(orig: Callable[..., Any], what: str) -> Callable[..., Any]:
    def load(file: Any, *args: Any, **kwargs: Any) -> Any:
        guard = active(file)
        if guard is None:
            return orig(file, *args, **kwargs)
        stream = _verified_stream(guard, file, what)
        try:
            with nested():
                return orig(stream, *args, **kwargs)
        finally:
            _hand_back(stream, file)

    load.__wrapped__ = orig  # type: ignore[attr-defined]
    load.__name__ = getattr(orig, "__name__", "load")
    load.__doc__ = getattr(orig, "__doc__", None)
    return load


def wrap_loads(orig: Callable[..., Any], what: str) -> Callable[..., Any]:
    def loads(data: Any, /, *args: Any, **kwargs: Any) -> Any:
        guard = active(data)
        if guard is not None and guard.policy.pickle_loads:
            raw = bytes(data)
            if checked(guard, lambda: guard.open_memory(raw, what=what)) is not None:
                data = raw
        # Unguarded or verified: torch's own tensor unpickling nested in it
        # (torch.load of a BytesIO) passes.
        with nested():
            return orig(data, *args, **kwargs)

    loads.__wrapped__ = orig  # type: ignore[attr-defined]
    loads.__name__ = getattr(orig, "__name__", "loads")
    loads.__doc__ = getattr(orig, "__doc__", None)
    return loads


def wrap_unpickler(orig: type, what: str) -> type:
    class Unpickler(orig):  # type: ignore[misc]
        def __init__(self, file: Any, *args: Any, **kwargs: Any) -> None:
            guard = active(file)
            self._modelsign_file = file
            if guard is not None:
                file = _verified_stream(guard, file, what)
            self._modelsign_stream = file
            super().__init__(file, *args, **kwargs)

        def load(self) -> Any:
            try:
                with nested():
                    return super().load()
            finally:
                _hand_back(self._modelsign_stream, self._modelsign_file)

    Unpickler.__name__ = orig.__name__
    Unpickler.__qualname__ = orig.__qualname__
    Unpickler.__module__ = orig.__module__
    Unpickler.__doc__ = orig.__doc__
    Unpickler.__wrapped__ = orig
    return Unpickler


def patches(module: Any) -> list[Patch]:
    """(object, attribute, replacement) for pickle or _pickle."""
    name = module.__name__
    out: list[Patch] = []
    for attr, wrapper in (
        ("load", wrap_load),
        ("_load", wrap_load),
        ("loads", wrap_loads),
        ("_loads", wrap_loads),
        ("Unpickler", wrap_unpickler),
        ("_Unpickler", wrap_unpickler),
    ):
        orig = getattr(module, attr, None)
        if orig is not None:
            out.append((module, attr, wrapper(orig, f"{name}.{attr}")))
    return out
