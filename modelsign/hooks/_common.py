"""What every loader hook shares: the active guard, nesting, warn mode."""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
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


def active() -> Guard | None:
    """The guard that must check this call, or None to pass it through."""
    if _inside.get():
        return None
    return _guard


@contextlib.contextmanager
def nested() -> Iterator[None]:
    token = _inside.set(True)
    try:
        yield
    finally:
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
