"""What every loader hook shares: the active guard, nesting, warn mode."""

from __future__ import annotations

import contextlib
import contextvars
import io
import logging
import os
import stat
import sys
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import Any, TypeVar

from modelsign._guard import Guard, LoadSource
from modelsign.errors import LoadRefusedError

log = logging.getLogger("modelsign")

T = TypeVar("T")


#: The guard in force, or None when enforcement is off.
_guard: Guard | None = None

#: True inside a load (verified or not): loads nested in it (torch unpickling
#: its tensors through BytesIO) pass the entry-point layer when in memory.
_inside: contextvars.ContextVar[bool] = contextvars.ContextVar("modelsign_inside", default=False)

#: True while verified bytes are deserialized: the audit layer
#: (:mod:`modelsign.hooks._audit`) lets that unpickling resolve any global. A
#: new thread starts with it False, so only the verifying thread is trusted.
verified: contextvars.ContextVar[bool] = contextvars.ContextVar("modelsign_verified", default=False)

#: What an unverified load in progress is, for the audit layer's messages.
unverified_what: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "modelsign_unverified_what", default=None
)

_HERE = os.path.dirname(os.path.abspath(__file__))
#: The files of modelsign's entry-point wrappers: the audit layer skips their
#: frames when it looks for who asked for an unpickling.
WRAPPER_FILES = frozenset(os.path.join(_HERE, n) for n in ("_pickle.py", "_loaders.py"))


def set_guard(guard: Guard | None) -> None:
    global _guard  # noqa: PLW0603 - one process-wide setting, by design
    _guard = guard


def current_guard() -> Guard | None:
    return _guard


def active(source: object = None, *, code: bool = False) -> Guard | None:
    """The guard that must check a load of ``source``, or None to pass it through.

    Inside another load, a source in memory (torch unpickling its own tensors
    from a ``BytesIO``) or the sealed memfd of a verified load in progress
    passes: its bytes come from the outer load, whose trust holds. A path or
    a file on disk is checked wherever the load comes from, so an object that
    loads another file while it is unpickled cannot skip the guard. For a
    loader of a format that carries code (TorchScript, exported programs,
    packages), only a *verified* outer load lets a nested source pass: bytes
    an unverified unpickling produced never reach such a loader unchecked.
    """
    if (
        _inside.get()
        and (_in_memory(source) or _is_verified_memfd(source))
        and (not code or verified.get())
    ):
        return None
    return _guard


#: The sealed memfd paths of the verified loads in progress, and the file each
#: holds: a loader that reopens the path it was given (safetensors' load_file
#: -> safe_open) passes.
_verified_paths: contextvars.ContextVar[Mapping[str, str | None]] = contextvars.ContextVar(
    "modelsign_verified_paths", default=MappingProxyType({})
)
#: (device, inode) of those memfds: a loader that opens the path and hands
#: the file object on (numpy.load -> read_array) passes too.
_verified_files: contextvars.ContextVar[frozenset[tuple[int, int]]] = contextvars.ContextVar(
    "modelsign_verified_files", default=frozenset()
)


def _is_verified_memfd(source: object) -> bool:
    if is_path(source):
        return os.fsdecode(source) in _verified_paths.get()  # type: ignore[arg-type]
    verified_files = _verified_files.get()
    if not verified_files:
        return False
    try:
        st = os.fstat(source.fileno())  # type: ignore[attr-defined]
    except (OSError, ValueError, AttributeError, TypeError, io.UnsupportedOperation):
        return False
    return (st.st_dev, st.st_ino) in verified_files


def verified_origin(source: object) -> str | None:
    """The file whose verified bytes the memfd path ``source`` holds, when it
    is one of the verified loads in progress."""
    if not is_path(source):
        return None
    return _verified_paths.get().get(os.fsdecode(source))  # type: ignore[arg-type]


def _in_memory(source: object) -> bool:
    if is_path(source):
        return False
    fileno = getattr(source, "fileno", None)
    if fileno is None:
        return True
    try:
        fd = fileno()
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        return True
    return not stat.S_ISREG(os.fstat(fd).st_mode)


@contextlib.contextmanager
def trusted_load(source: LoadSource | None = None) -> Iterator[None]:
    """Deserializing verified bytes: the audit layer allows every global, and
    nested loads in memory (and reopening ``source``'s sealed memfd) pass the
    entry-point layer; paths and files on disk are still checked."""
    inside, trusted = _inside.set(True), verified.set(True)
    paths, files = _verified_paths.get(), _verified_files.get()
    if source is not None and source.fd is not None:
        paths = MappingProxyType({**paths, source.path: source.origin})
        st = os.fstat(source.fd)
        files = files | {(st.st_dev, st.st_ino)}
    path_token, files_token = _verified_paths.set(paths), _verified_files.set(files)
    try:
        yield
    finally:
        _verified_files.reset(files_token)
        _verified_paths.reset(path_token)
        verified.reset(trusted)
        _inside.reset(inside)


@contextlib.contextmanager
def untrusted_load(what: str) -> Iterator[None]:
    """Deserializing bytes no bundle vouches for (an in-memory pickle, a pipe,
    a stream with no file): the audit layer allows only safe globals."""
    inside, trusted, named = _inside.set(True), verified.set(False), unverified_what.set(what)
    try:
        yield
    finally:
        unverified_what.reset(named)
        verified.reset(trusted)
        _inside.reset(inside)


#: File objects that a verified load left before their end (several pickles
#: or arrays in one file): file object -> (guard, our verified stream, where
#: it stopped). A next load from that position goes on in the verified bytes.
_kept: weakref.WeakKeyDictionary[Any, tuple[Guard, Any, int]] = weakref.WeakKeyDictionary()


def continuation(guard: Guard, file: Any) -> Any | None:
    """Our verified stream, when ``file`` is where a verified load left it."""
    try:
        kept = _kept.get(file)
        position = file.tell()
    except (TypeError, OSError, ValueError, AttributeError):
        return None
    if kept is None:
        return None
    owner, stream, end = kept
    if owner is not guard or position != end:
        del _kept[file]
        stream.close()
        return None
    return stream


class _Exhausted(io.BytesIO):
    """What a verified file offers once a load has read it to its end: no
    bytes (so the loader raises EOFError, as at the end of the file itself)."""


def hand_back(stream: Any, file: Any, *, keep: Guard | None, close: bool = True) -> None:
    """After loading from our copy: leave the caller's file where the load
    ended, as the loader would. Keep a verified copy for the next load under
    the guard ``keep`` when bytes remain; else close it (an Unpickler keeps
    its stream for its own next load: ``close=False``). Positioning the
    caller's file is best effort: a decompressing reader re-reads the file
    on disk, which may have changed since."""
    if stream is file or isinstance(stream, _Exhausted):
        return
    with contextlib.suppress(Exception):
        end = stream.tell()
        if keep is not None:
            more = stream.read(1)
            stream.seek(end)
            with contextlib.suppress(TypeError):  # a file object without weak references
                # The rest of the verified bytes for the next load; at the end,
                # only the fact that there is nothing more (not the bytes).
                _kept[file] = (keep, stream if more else _Exhausted(), end)
                close = close and not more
        file.seek(end)
    if close:
        stream.close()


_LAZY_MARK = "_modelsign_verified_load"


def note_lazy(result: T, *, verified: bool) -> T:
    """Mark ``result`` when it reads more of the load's bytes later (numpy's
    NpzFile reads its members on access): its later reads run under the
    trust of this load (see :func:`lazy_load`)."""
    npyio = sys.modules.get("numpy.lib._npyio_impl")
    npz = getattr(npyio, "NpzFile", None)
    if isinstance(npz, type) and isinstance(result, npz):
        setattr(result, _LAZY_MARK, verified)
    return result


def lazy_load(owner: object, what: str) -> contextlib.AbstractContextManager[None]:
    """The context of a later read by ``owner``: the trust of the hooked load
    that returned it, or none when no hooked load did."""
    state = vars(owner).get(_LAZY_MARK) if hasattr(owner, "__dict__") else None
    if state is None:
        return contextlib.nullcontext()
    return trusted_load() if state else untrusted_load(what)


def is_path(f: object) -> bool:
    return isinstance(f, (str, bytes, os.PathLike))


def checked(guard: Guard, verify: Callable[[], LoadSource]) -> LoadSource | None:
    """Run ``verify``; in warn mode, log a refusal and return None (the caller
    then loads as if unhooked). In enforce mode a refusal propagates."""
    try:
        return verify()
    except LoadRefusedError as e:
        refuse(guard, e)
        return None


_warned: weakref.WeakKeyDictionary[Guard, set[str]] = weakref.WeakKeyDictionary()
_warned_lock = threading.Lock()


def refuse(guard: Guard, error: LoadRefusedError) -> None:
    """Raise ``error``; in warn mode, log it instead, once per file (a load
    that passes through nested loaders warns once), with structured fields a
    log pipeline can read from the record's ``modelsign`` attribute: file,
    reason (the refusal class), expected, actual, policy, message."""
    if guard.policy.mode != "warn":
        raise error
    with _warned_lock:
        seen = _warned.setdefault(guard, set())
        if error.target in seen:
            return
        seen.add(error.target)
    fields = {
        "file": error.target,
        "reason": type(error).__name__,
        "expected": error.expected,
        "actual": error.actual,
        "policy": error.policy,
        "message": str(error),
    }
    log.warning("modelsign (warn mode, loading anyway): %s", error, extra={"modelsign": fields})
