"""Enforcement in every Python process this one starts.

A child Python started with ``subprocess``, or by ``multiprocessing`` with the
spawn or forkserver method, is a new interpreter: the hooks of its parent are
not in it. What it does inherit is the environment, and the
``modelsign-autoload.pth`` file of the environment turns enforcement on at
start-up when ``MODELSIGN_POLICY`` names a policy (and stops the child with
exit code 2 when that policy cannot be read: fail closed). So :func:`export`
points ``MODELSIGN_POLICY`` at the policy in force: the file it was read from,
or, for a policy built in memory, a private copy written for the purpose. It
also stops the long-lived processes that were started before and would start
or serve children without it: a multiprocessing forkserver, and joblib's
reusable loky workers (joblib.Parallel keeps them between calls). The next
child starts from the new environment. :func:`restore` puts it back.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

from modelsign._atomic import write_atomic
from modelsign.errors import ConfigError
from modelsign.policy import ENV_VAR, Policy

__all__ = ["export", "restore"]

_MISSING = object()
#: MODELSIGN_POLICY as it was before export(), or _MISSING before any export.
_saved: object = _MISSING
#: The value export() gave it.
_exported: str | None = None
#: The folder of the policy copy written for children, if any.
_written: Path | None = None


def export(policy: Policy) -> None:
    """Make child Python processes started from now on enforce ``policy``."""
    global _saved, _exported  # noqa: PLW0603 - process-wide, like the environment itself
    path = policy.path if policy.path is not None else _write(policy)
    if _saved is _MISSING:
        _saved = os.environ.get(ENV_VAR)
    _exported = os.environ[ENV_VAR] = str(path)
    _restart_forkserver()
    _stop_loky_workers()


def restore() -> None:
    """Give ``MODELSIGN_POLICY`` back the value it had before :func:`export`,
    unless someone else has set it since."""
    global _saved, _exported
    if _saved is _MISSING:
        return
    if os.environ.get(ENV_VAR) == _exported:
        if _saved is None:
            os.environ.pop(ENV_VAR, None)
        else:
            os.environ[ENV_VAR] = str(_saved)
    _saved, _exported = _MISSING, None
    _remove_written()


def _write(policy: Policy) -> Path:
    """A private policy file (and key files) equal to ``policy``."""
    global _written  # noqa: PLW0603
    _remove_written()
    folder = Path(tempfile.mkdtemp(prefix="modelsign-policy-"))  # mode 0700
    _written = folder
    key_files = []
    for i, key in enumerate(policy.keys):
        key_file = folder / f"key-{i}-{key.key_id[:16]}.pub"
        write_atomic(key_file, key.pem, mode=0o600)
        key_files.append(key_file)
    target = folder / "policy.toml"
    write_atomic(target, policy.to_toml(key_files).encode("utf-8"), mode=0o600)
    return target


def _remove_written() -> None:
    global _written  # noqa: PLW0603
    if _written is not None:
        shutil.rmtree(_written, ignore_errors=True)
        _written = None


atexit.register(_remove_written)


def _restart_forkserver() -> None:
    """Stop a forkserver started before enforcement (or under another policy):
    its children would be forked from a process without it. The next child
    that needs one starts a new server, with the environment set above."""
    forkserver = sys.modules.get("multiprocessing.forkserver")
    server = getattr(forkserver, "_forkserver", None)
    if server is None or getattr(server, "_forkserver_pid", None) is None:
        return
    stop = getattr(server, "_stop", None)
    if stop is None:
        raise ConfigError(
            "a multiprocessing forkserver is running without enforcement, and this "
            "Python offers no way to stop it: turn enforcement on before starting it"
        )
    with contextlib.suppress(ChildProcessError):
        stop()


def _stop_loky_workers() -> None:
    """Shut down joblib's reusable loky executor, whose workers were started
    before enforcement (or under another policy): joblib starts new ones, in
    the environment set above, on its next call."""
    module = sys.modules.get("joblib.externals.loky.reusable_executor")
    executor = getattr(module, "_executor", None)
    if executor is not None:
        executor.shutdown(wait=True)
