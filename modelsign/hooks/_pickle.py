"""pickle and _pickle: load, Unpickler (files from disk), loads (opt-in, by digest)."""

from __future__ import annotations

import contextlib
import io
import os
import stat
from collections.abc import Callable
from typing import Any

from modelsign._guard import Guard, fd_path, fileno_of
from modelsign.errors import UnsafeLoadError
from modelsign.hooks._common import (
    active,
    checked,
    continuation,
    hand_back,
    trusted_load,
    untrusted_load,
)

Patch = tuple[object, str, Any]


def _verified_stream(guard: Guard, file: Any, what: str) -> tuple[Any, bool]:
    """The stream to unpickle from, and whether its bytes are verified.

    A file from disk is read once and replaced by its verified bytes. A pipe, a
    socket or a stream with no file descriptor has no bundle to find: it is
    unpickled as it is, unverified, so the audit layer lets it resolve only
    safe globals (multiprocessing's own channels are marked there). With the
    policy's ``pickle_loads``, a stream with no descriptor is read and checked
    against the explicit bundles instead, like ``pickle.loads``.
    """
    fd = fileno_of(file)
    if fd is not None and not stat.S_ISREG(os.fstat(fd).st_mode):
        where = fd_path(fd)
        if where is not None:  # a named FIFO or a device: a path on disk, not IPC
            raise UnsafeLoadError(
                "not a regular file: a FIFO or device cannot be verified before it is read",
                target=where,
                policy=guard.policy.describe(),
            )
        return file, False
    if fd is None:
        if not guard.policy.pickle_loads:
            return file, False
        data = file.read()
        if checked(guard, lambda: guard.open_memory(data, what=what)) is None:
            return io.BytesIO(data), False  # warn mode
        return io.BytesIO(data), True
    if not guard.in_scope_file(file, fd):
        return file, False
    kept = continuation(guard, file)
    if kept is not None:
        return kept, True
    source = checked(guard, lambda: guard.open_file(file, what=what))
    if source is None:  # warn mode: unpickle the stream as it was
        file.seek(0)
        return file, False
    with source:
        return source.fileobj(), True


def _loading(trusted: bool, what: str) -> contextlib.AbstractContextManager[None]:
    return trusted_load() if trusted else untrusted_load(what)


def wrap_load(orig: Callable[..., Any], what: str) -> Callable[..., Any]:
    def load(file: Any, *args: Any, **kwargs: Any) -> Any:
        guard = active(file)
        if guard is None:  # off, or nested in another load: its trust holds
            return orig(file, *args, **kwargs)
        stream, trusted = _verified_stream(guard, file, what)
        try:
            with _loading(trusted, f"{what} of {file!r}"):
                return orig(stream, *args, **kwargs)
        finally:
            hand_back(stream, file, keep=guard if trusted else None)

    load.__wrapped__ = orig  # type: ignore[attr-defined]
    load.__name__ = getattr(orig, "__name__", "load")
    load.__doc__ = getattr(orig, "__doc__", None)
    return load


def wrap_loads(orig: Callable[..., Any], what: str) -> Callable[..., Any]:
    def loads(data: Any, /, *args: Any, **kwargs: Any) -> Any:
        guard = active(data)
        if guard is None:  # off, or nested in another load: its trust holds
            return orig(data, *args, **kwargs)
        trusted = False
        if guard.policy.pickle_loads:
            raw = bytes(data)
            trusted = checked(guard, lambda: guard.open_memory(raw, what=what)) is not None
            data = raw
        with _loading(trusted, f"{what} of {len(data)} bytes"):
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
            #: None: enforcement was off or this is nested in another load,
            #: whose trust holds; else whether the stream is verified.
            self._modelsign_trusted: bool | None = None
            if guard is not None:
                file, self._modelsign_trusted = _verified_stream(guard, file, what)
            self._modelsign_stream = file
            super().__init__(file, *args, **kwargs)

        def load(self) -> Any:
            try:
                if self._modelsign_trusted is None:
                    return super().load()
                with _loading(self._modelsign_trusted, f"{what} of {self._modelsign_file!r}"):
                    return super().load()
            finally:
                hand_back(self._modelsign_stream, self._modelsign_file, keep=None, close=False)

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
