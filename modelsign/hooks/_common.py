"""What every loader hook shares: the active guard, nesting, warn mode."""

from __future__ import annotations

import contextlib
import contextvars
import io
import logging
import os
import stat
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from modelsign.errors import LoadRefusedError
from modelsign.guard import Guard, LoadSource

log = logging.getLogger("modelsign")

T = TypeVar("T")

#: The guard in force, or None when enforcement is off.
_guard: Guard | None = None

#: True inside a load that was already verified (or a pickle.loads the policy
#: does not guard): loads nested in it (torch unpickling its tensors through
#: BytesIO) pass unchecked, since their bytes come from the outer load.
_inside: contextvars.ContextVar[bool] = contextvars.ContextVar("modelsign_inside", default=False)


def set_guard(guard: Guard | None) -> None:
    global _guard  # noqa: PLW0603 - one process-wide setting, by design
    _guard = guard


def current_guard() -> Guard | None:
    return _guard


def active(source: object = None) -> Guard | None:
    """The guard that must check a load of ``source``, or None to pass it through.

    Inside a verified load (or an unguarded ``pickle.loads``) only in-memory
    sources pass: torch unpickling its own tensors from a ``BytesIO``. A path
    or a file on disk is checked wherever the load comes from, so an object
    that loads another file while it is unpickled cannot skip the guard.
    """
    if _inside.get() and (_in_memory(source) or _is_verified_memfd(source)):
        return None
    return _guard


#: The sealed memfd paths of the verified loads in progress: a loader that
#: reopens the path it was given (safetensors' load_file -> safe_open) passes.
_verified_paths: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar(
    "modelsign_verified_paths", default=frozenset()
)


def _is_verified_memfd(source: object) -> bool:
    return is_path(source) and os.fsdecode(source) in _verified_paths.get()  # type: ignore[arg-type]


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
def nested(source: LoadSource | None = None) -> Iterator[None]:
    """Loads inside this block come from an outer load: in-memory ones (and
    reopening ``source``'s sealed memfd) pass; paths and files on disk do not."""
    token = _inside.set(True)
    paths = _verified_paths.get()
    if source is not None and source.fd is not None:
        paths = paths | {source.path}
    path_token = _verified_paths.set(paths)
    try:
        yield
    finally:
        _verified_paths.reset(path_token)
        _inside.reset(token)


def is_path(f: object) -> bool:
    return isinstance(f, (str, bytes, os.PathLike))


def checked(guard: Guard, verify: Callable[[], LoadSource]) -> LoadSource | None:
    """Run ``verify``; in warn mode, log a refusal and return None (the caller
    then loads as if unhooked). In enforce mode a refusal propagates."""
    try:
        return verify()
    except LoadRefusedError as e:
        if guard.policy.mode == "warn":
            log.warning("modelsign (warn mode, loading anyway): %s", e)
            return None
        raise


def call_nested(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    with nested():
        return func(*args, **kwargs)
