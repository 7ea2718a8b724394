"""The Landlock layer: which files a sandboxed process may read, write or
execute, whether it may use TCP, and whether it may reach abstract Unix
sockets or signal processes outside its sandbox.

Built on the ``landlockpy`` binding (the ``sandbox`` extra), which speaks
every Landlock ABI including network rules (ABI 4) and scopes (ABI 6).
modelsign requires ABI 3: before it, ``truncate(2)`` is not controlled, so a
sandboxed process could empty any file it may open for reading.

A rule on a path covers everything beneath it. Landlock does not control
metadata changes (``chmod``, ``chown``, extended attributes, times) nor path
walks (``stat``): the seccomp layer refuses the first, the second reveals
names and sizes, not contents.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from modelsign._sandbox._layers import LayerReport, Unavailable

MIN_ABI = 3

#: Named sets of rights (landlockpy.AccessFS attribute names).
RIGHTS: dict[str, tuple[str, ...]] = {
    "read": ("READ_FILE", "READ_DIR"),
    "read-execute": ("READ_FILE", "READ_DIR", "EXECUTE"),
    # A device a program may open for writing: a terminal, /dev/null, a GPU.
    "device": ("READ_FILE", "WRITE_FILE", "IOCTL_DEV"),
    # The converter's output folder: make regular files and write them.
    "output": ("READ_FILE", "READ_DIR", "WRITE_FILE", "TRUNCATE", "MAKE_REG", "REMOVE_FILE"),
    # A folder the user made writable (`modelsign run --writable`): anything
    # but devices, FIFOs and sockets.
    "writable": (
        "READ_FILE",
        "READ_DIR",
        "EXECUTE",
        "WRITE_FILE",
        "TRUNCATE",
        "MAKE_REG",
        "MAKE_DIR",
        "MAKE_SYM",
        "REMOVE_FILE",
        "REMOVE_DIR",
        "REFER",
    ),
}
#: Rights that Landlock accepts on a file (the others apply to folders only).
FILE_RIGHTS = ("EXECUTE", "WRITE_FILE", "READ_FILE", "TRUNCATE", "IOCTL_DEV")


@dataclass(frozen=True)
class Grant:
    """``rights`` (a key of :data:`RIGHTS`) on ``path`` and all beneath it."""

    path: str
    rights: str


def binding() -> Any:
    """The ``landlockpy`` module, imported while files can still be read.

    Raises:
        Unavailable: it is not installed.
    """
    try:
        import landlockpy  # noqa: PLC0415 - an optional dependency
    except ImportError as e:
        raise Unavailable(
            "landlock", f"the landlockpy package is missing ({e}); pip install 'modelsign[sandbox]'"
        ) from e
    return landlockpy


def abi_version() -> int:
    """The running kernel's Landlock ABI, or 0 when it has none (or when the
    binding is missing)."""
    try:
        return int(binding().abi_version())
    except Unavailable:
        return 0


def restrict(grants: Iterable[Grant], *, deny_tcp: bool, scopes: Sequence[str]) -> LayerReport:
    """Handle every filesystem right the kernel knows, grant back only
    ``grants``, deny TCP bind and connect when ``deny_tcp`` (ABI 4), scope
    ``scopes`` (``ABSTRACT_UNIX_SOCKET``, ``SIGNAL``; ABI 6), and enforce the
    ruleset on this thread and every process it starts. Paths that do not
    exist are skipped.

    Raises:
        Unavailable: no Landlock, or an ABI below :data:`MIN_ABI`.
    """
    from modelsign._sandbox._process import require_single_thread  # noqa: PLC0415

    ll = binding()
    abi = abi_version()
    if abi < MIN_ABI:
        reason = (
            "the kernel has no Landlock (it needs Linux 5.13+ with landlock in its LSM list)"
            if abi == 0
            else f"the kernel's Landlock ABI is {abi}; modelsign needs {MIN_ABI} (Linux 6.2+), "
            "which controls truncate"
        )
        raise Unavailable("landlock", reason)
    require_single_thread("landlock")
    handled_net = ll.net_for_abi(abi) if deny_tcp else ll.AccessNet.NONE
    scoped = ll.Scope.NONE
    for name in scopes:
        scoped |= getattr(ll.Scope, name)
    scoped &= ll.scope_for_abi(abi)
    granted: list[str] = []
    with ll.Ruleset(
        handled_fs=ll.fs_for_abi(abi), handled_net=handled_net, scoped=scoped, best_effort=True
    ) as ruleset:
        for grant in grants:
            if not os.path.exists(grant.path):
                continue
            names = RIGHTS[grant.rights]
            if not os.path.isdir(grant.path):
                names = tuple(n for n in names if n in FILE_RIGHTS)
            access = ll.AccessFS.NONE
            for name in names:
                access |= getattr(ll.AccessFS, name)
            ruleset.allow_path(grant.path, access)
            granted.append(f"{grant.rights} {grant.path}")
        ruleset.restrict(no_new_privs=True)
    parts = [f"ABI {abi}", f"filesystem: {'; '.join(granted) or 'nothing'}"]
    if deny_tcp:
        parts.append("TCP bind/connect denied" if handled_net else "no TCP rules (ABI < 4)")
    if scopes:
        active = [n for n in scopes if getattr(ll.Scope, n) & scoped]
        parts.append(f"scoped: {', '.join(active) or 'none (ABI < 6)'}")
    return LayerReport("landlock", True, "; ".join(parts))
