"""``modelsign run --sandbox``: restrict this process, then exec the program.

The layers are those of the converter, set for a server rather than a
loader: it may read and execute every file, start processes and open
sockets, but write only beneath the folders the user names
(``--writable``), a few devices (terminals, ``/dev/null``, GPUs) and
``/dev/shm``; never change a file's mode, owner or extended attributes;
and, with ``--no-network``, reach no address (a new network namespace,
Landlock's TCP rules, and no abstract Unix socket outside).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from modelsign._sandbox import _landlock, _process, _seccomp
from modelsign._sandbox._layers import (
    LayerReport,
    Unavailable,
    apply_layer,
    check_layer_names,
    preload_bindings,
)
from modelsign.errors import SandboxUnavailableError, UsageError

#: Devices a program may open for writing (with ioctl): terminals, the null
#: devices, GPUs.
DEVICES = (
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
    "/dev/ptmx",
    "/dev/pts",
    "/dev/dri",
    "/dev/kfd",
)


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def check_writable(writable: Sequence[Path], protected: Iterable[Path]) -> list[str]:
    """The writable folders, resolved; none may hold a protected path (the
    policy, its bundles and keys, the folders it guards) or lie inside one.

    Raises:
        UsageError: a folder that does not exist, or one that overlaps.
    """
    folders = []
    for folder in writable:
        if not folder.is_dir():
            raise UsageError(f"{{param}}{folder}: is not a folder", parameter="writable")
        folders.append(os.path.realpath(folder))
    for path in protected:
        real = os.path.realpath(path)
        for resolved in folders:
            if _within(real, resolved) or _within(resolved, real):
                raise UsageError(
                    f"{{param}}{resolved} overlaps {path}, which must stay read-only under the "
                    "sandbox (the policy, its bundles and keys, and the folders it guards)",
                    parameter="writable",
                )
    return folders


def restrict_for_run(
    *,
    writable: Sequence[Path],
    protected: Iterable[Path],
    no_network: bool,
    weaker: Iterable[str],
) -> list[LayerReport]:
    """Restrict this process (it must have one thread) and every program it
    runs from now on.

    Args:
        writable: folders the program may write beneath.
        protected: paths that must stay read-only (see :func:`check_writable`).
        no_network: deny every network access.
        weaker: layers the user accepts to run without where they are missing.

    Returns:
        What each layer does.

    Raises:
        UsageError: bad folders or layer names.
        SandboxUnavailableError: a layer not accepted as weaker is missing.
    """
    accepted = tuple(weaker)
    check_layer_names(accepted)
    folders = check_writable(writable, protected)
    grants = [_landlock.Grant("/", "read-execute")]
    grants += [_landlock.Grant(d, "device") for d in DEVICES]
    grants += [_landlock.Grant(d, "device") for d in sorted(glob.glob("/dev/nvidia*"))]
    shared_memory = "/dev/shm"  # noqa: S108 - POSIX shared memory (torch's DataLoader)
    grants += [_landlock.Grant(f, "writable") for f in [shared_memory, *folders]]
    scopes = ("SIGNAL", "ABSTRACT_UNIX_SOCKET") if no_network else ("SIGNAL",)
    reports: list[LayerReport] = []
    try:
        missing = preload_bindings()
        if no_network:
            apply_layer(
                "netns",
                lambda: _process.new_network_namespace(map_ids=True),
                accepted,
                reports,
                missing,
            )
        reports.append(_process.no_new_privs())
        apply_layer(
            "landlock",
            lambda: _landlock.restrict(grants, deny_tcp=no_network, scopes=scopes),
            accepted,
            reports,
            missing,
        )
        apply_layer("seccomp", lambda: _seccomp.load("run"), accepted, reports, missing)
    except Unavailable as e:
        raise SandboxUnavailableError(
            f"the {e.layer} sandbox layer is unavailable: {e.reason}; the program was not started",
            layer=e.layer,
        ) from e
    return reports
