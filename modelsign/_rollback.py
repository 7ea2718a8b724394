"""The rollback state file: per model name, the highest version that verified
and its root digest.

An older version is refused (:class:`~modelsign.errors.RollbackError`), the
same version with another root digest too
(:class:`~modelsign.errors.EquivocationError`). The state changes only after
a verification succeeded, under an exclusive ``flock`` of ``STATE.lock``
(beside the state file, which is replaced atomically and so cannot carry the
lock itself), so concurrent verifications in several processes see and
update it one at a time. A missing or corrupt file is an error
(:class:`~modelsign.errors.StateFileError`), never a silent reset: it is
written on purpose by :func:`reset` and :func:`pin`.

The file (strict JSON; unknown keys refused)::

    {"format": "modelsign-state/1",
     "models": {"acme/bert": {"version": "1.2.0", "root_digest": "<64 hex>"}}}
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelsign import _json
from modelsign._atomic import write_atomic
from modelsign._files import read_small
from modelsign._release import Release, parse_version
from modelsign.errors import (
    EquivocationError,
    MalformedBundleError,
    RollbackError,
    StateFileError,
    UnversionedModelError,
    UsageError,
)

__all__ = [
    "FORMAT",
    "LOCK_TIMEOUT",
    "Entry",
    "check",
    "entries_json",
    "lock_path",
    "pin",
    "read",
    "record",
    "reset",
]

FORMAT = "modelsign-state/1"
#: Seconds to wait for another process's lock before giving up (an error).
LOCK_TIMEOUT = 60.0
_MAX_STATE_BYTES = 16 * 1024 * 1024
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class Entry:
    """The highest version of a model that verified, and its root digest."""

    version: str
    root_digest: str

    def to_json(self) -> dict[str, str]:
        return {"version": self.version, "root_digest": self.root_digest}


def lock_path(state: Path) -> Path:
    return state.with_name(state.name + ".lock")


@contextlib.contextmanager
def _locked(state: Path, exclusive: bool) -> Iterator[None]:
    try:
        import fcntl  # noqa: PLC0415 - POSIX only
    except ImportError as e:  # pragma: no cover - not on this platform
        raise StateFileError(f"{state}: a rollback state needs POSIX file locks (fcntl)") from e
    try:
        fd = os.open(lock_path(state), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as e:
        raise StateFileError(f"{lock_path(state)}: cannot open the state lock: {e.strerror}") from e
    try:
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        deadline = time.monotonic() + LOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise StateFileError(
                        f"{state}: another process has held its lock ({lock_path(state)}) for "
                        f"over {LOCK_TIMEOUT:.0f} s"
                    ) from None
                time.sleep(0.01)
        yield
    finally:
        os.close(fd)  # releases the lock


def read(state: Path) -> dict[str, Entry]:
    """The state file's entries, by model name.

    Raises:
        StateFileError: missing, unreadable, not the format above.
    """
    data = read_small(
        state, _MAX_STATE_BYTES, "rollback state", StateFileError, missing=StateFileError
    )
    try:
        doc = _json.loads(data, str(state), max_bytes=_MAX_STATE_BYTES)
    except MalformedBundleError as e:
        raise StateFileError(f"{state}: the rollback state is corrupt: {e}") from e
    if not isinstance(doc, dict) or set(doc) != {"format", "models"} or doc["format"] != FORMAT:
        raise StateFileError(
            f"{state}: the rollback state is corrupt: expected an object with format "
            f"{FORMAT!r} and models, found {_shape(doc)}"
        )
    models = doc["models"]
    if not isinstance(models, dict):
        raise StateFileError(f"{state}: the rollback state is corrupt: models is not an object")
    return {name: _entry(state, name, value) for name, value in models.items()}


def _shape(doc: object) -> str:
    if isinstance(doc, dict):
        return f"keys {sorted(doc)} (format {doc.get('format')!r})"
    return type(doc).__name__


def _entry(state: Path, name: str, value: object) -> Entry:
    ok = isinstance(value, dict) and set(value) == {"version", "root_digest"}
    if ok:
        assert isinstance(value, dict)
        version, digest = value["version"], value["root_digest"]
        ok = (
            isinstance(version, str)
            and isinstance(digest, str)
            and len(digest) == 64
            and set(digest) <= _HEX
        )
        if ok:
            try:
                Release(name, version)
            except UsageError:
                ok = False
    if not ok:
        raise StateFileError(
            f"{state}: the rollback state is corrupt: the entry for {name!r} is not a valid "
            f"version and root digest: {value!r}"
        )
    return Entry(value["version"], value["root_digest"])  # type: ignore[index]


def _write(state: Path, entries: Mapping[str, Entry]) -> None:
    doc = {"format": FORMAT, "models": {n: entries[n].to_json() for n in sorted(entries)}}
    text = json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    try:
        write_atomic(state, text.encode("utf-8"))
    except UsageError as e:
        raise StateFileError(f"{state}: cannot write the rollback state: {e}") from e


def _judge(
    state: Path, entries: Mapping[str, Entry], release: Release | None, root: str, source: str
) -> bool:
    """Raise if ``release`` at ``root`` rolls back or equivocates; return
    whether it is newer than what the state holds (so must be recorded)."""
    if release is None or release.version is None:
        recorded = "nothing" if release is None else f"model {release.name!r} without a version"
        raise UnversionedModelError(
            f"{source}: the policy keeps rollback state in {state}, which needs a signed model "
            f"name and version (expected both, actual {recorded})"
        )
    entry = entries.get(release.name)
    if entry is None:
        return True
    new, old = parse_version(release.version), parse_version(entry.version)
    if new < old:
        raise RollbackError(
            f"{source}: model {release.name!r} version {release.version} is older than version "
            f"{entry.version} (root digest {entry.root_digest}), which verified before "
            f"(state {state}): expected version {entry.version} or newer, actual {release.version}"
        )
    if new == old and root != entry.root_digest:
        raise EquivocationError(
            f"{source}: model {release.name!r} version {release.version} has root digest {root}, "
            f"but the same version verified before with root digest {entry.root_digest} "
            f"(state {state}): expected {entry.root_digest}, actual {root}"
        )
    return new > old


def check(state: Path, release: Release | None, root: str, source: str) -> None:
    """Refuse a rollback or equivocation now (before the files are hashed);
    nothing is written."""
    with _locked(state, exclusive=False):
        _judge(state, read(state), release, root, source)


def record(state: Path, release: Release | None, root: str, source: str) -> None:
    """After a successful verification: check again under the exclusive lock
    (another process may have recorded a newer version meanwhile), and
    record a newer version."""
    with _locked(state, exclusive=True):
        entries = read(state)
        if _judge(state, entries, release, root, source):
            assert release is not None
            assert release.version is not None
            _write(state, {**entries, release.name: Entry(release.version, root)})


def reset(state: Path, names: Iterable[str] = ()) -> list[str]:
    """Forget ``names`` (every model when empty, creating the file when it is
    missing or corrupt); return the names forgotten."""
    wanted = list(names)
    with _locked(state, exclusive=True):
        if not wanted:
            try:
                forgotten = sorted(read(state))
            except StateFileError:
                forgotten = []
            _write(state, {})
            return forgotten
        entries = read(state)
        missing = [n for n in wanted if n not in entries]
        if missing:
            raise UsageError(
                f"{state}: no model named {', '.join(map(repr, missing))} in the rollback state "
                f"(it holds {', '.join(map(repr, sorted(entries))) or 'none'})"
            )
        _write(state, {n: e for n, e in entries.items() if n not in wanted})
        return wanted


def pin(state: Path, release: Release | None, root: str, source: str) -> Entry | None:
    """Record ``release`` at ``root`` as the model's state, even if older or
    another digest of the same version (an explicit decision); return the
    entry it replaces. A missing state file is created."""
    if release is None or release.version is None:
        _judge(state, {}, release, root, source)  # raises UnversionedModelError
    assert release is not None
    assert release.version is not None
    with _locked(state, exclusive=True):
        try:
            entries = read(state)
        except StateFileError:
            if os.path.lexists(state):
                raise  # corrupt: reset it on purpose first
            entries = {}
        previous = entries.get(release.name)
        _write(state, {**entries, release.name: Entry(release.version, root)})
        return previous


def entries_json(entries: Mapping[str, Entry]) -> dict[str, Any]:
    return {name: entries[name].to_json() for name in sorted(entries)}
