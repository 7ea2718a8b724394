"""Process-level layers: resource limits, no_new_privs, a parent-death signal,
and a new network namespace (inside a new user namespace, so that no
privilege is needed).

Everything here calls documented system calls through libc (``prctl(2)``,
``unshare(2)``) with :mod:`ctypes`: ``os.unshare`` exists only from Python
3.12, and no maintained binding covers ``prctl`` for the two options used.
"""

from __future__ import annotations

import ctypes
import errno
import os
import resource
import signal
from dataclasses import dataclass

from modelsign._sandbox._layers import LayerReport, Unavailable

PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000


@dataclass(frozen=True)
class Limits:
    """Resource limits of a sandboxed process (bytes and seconds)."""

    #: Address space (``RLIMIT_AS``): what the process can allocate.
    memory: int
    #: CPU time (``RLIMIT_CPU``); the wall-clock timeout is the parent's.
    cpu_seconds: int
    #: The largest file it can write (``RLIMIT_FSIZE``).
    file_size: int
    #: Open file descriptors (``RLIMIT_NOFILE``).
    open_files: int = 256

    def to_json(self) -> dict[str, int]:
        """The limits for machine-read output and for the child's configuration."""
        return {
            "memory": self.memory,
            "cpu_seconds": self.cpu_seconds,
            "file_size": self.file_size,
            "open_files": self.open_files,
        }


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _prctl(option: int, value: int) -> None:
    if _libc().prctl(option, ctypes.c_ulong(value), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def set_limits(limits: Limits) -> LayerReport:
    """Lower the soft and hard limits (a lowered hard limit cannot be raised
    again without privilege) and disable core dumps."""
    for which, value, grace in (
        (resource.RLIMIT_AS, limits.memory, 0),
        # SIGXCPU at the limit (which says why the process ended), SIGKILL
        # a few seconds later if it ignores that.
        (resource.RLIMIT_CPU, limits.cpu_seconds, 5),
        (resource.RLIMIT_FSIZE, limits.file_size, 0),
        (resource.RLIMIT_NOFILE, limits.open_files, 0),
        (resource.RLIMIT_CORE, 0, 0),
    ):
        _soft, hard = resource.getrlimit(which)
        soft, new_hard = value, value + grace
        if hard != resource.RLIM_INFINITY:
            soft, new_hard = min(soft, hard), min(new_hard, hard)
        resource.setrlimit(which, (soft, new_hard))
    # A write past RLIMIT_FSIZE then fails with EFBIG instead of killing the
    # process with SIGXFSZ, so that the error can say which limit it hit.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    return LayerReport(
        "rlimits",
        True,
        f"address space {limits.memory} bytes, CPU {limits.cpu_seconds} s, files up to "
        f"{limits.file_size} bytes, {limits.open_files} open files, no core dumps",
    )


def die_with_parent() -> None:
    """Get SIGKILL when the parent dies, so that nothing outlives it."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def no_new_privs() -> LayerReport:
    """``prctl(PR_SET_NO_NEW_PRIVS)``: execve can never grant privileges
    (set-user-ID bits, file capabilities) to this process or its children."""
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    if _libc().prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1:
        raise OSError(errno.EPERM, "no_new_privs did not stick")
    return LayerReport("no_new_privs", True, "execve cannot gain privileges")


def thread_count() -> int:
    """Threads of this process (Landlock and unshare act on one thread only)."""
    with open("/proc/self/status", encoding="ascii", errors="replace") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    raise OSError(errno.ENOENT, "no Threads line in /proc/self/status")


def require_single_thread(layer: str) -> None:
    """Layers that apply to the calling thread only must be set while it is
    the only one: another thread would stay unrestricted.

    Raises:
        Unavailable: another thread exists (an internal mistake, fail closed).
    """
    count = thread_count()
    if count != 1:
        raise Unavailable(layer, f"the process has {count} threads; it must have one")


def new_network_namespace(*, map_ids: bool) -> LayerReport:
    """Move into a new user namespace and a new network namespace, which has
    no interface but a loopback that is down: no address outside is reachable
    and no abstract Unix socket outside is visible.

    With ``map_ids`` the process keeps its user and group ids inside (for a
    program that expects them, ``modelsign run``); without, it runs as the
    overflow id there and holds no capability over any file outside.

    Raises:
        Unavailable: the kernel refuses (user namespaces disabled or
            restricted, e.g. ``kernel.unprivileged_userns_clone=0`` or an
            AppArmor rule).
    """
    require_single_thread("netns")
    uid, gid = os.geteuid(), os.getegid()
    if _libc().unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise Unavailable(
            "netns",
            f"unshare(CLONE_NEWUSER | CLONE_NEWNET) failed: {os.strerror(err)} "
            "(unprivileged user namespaces are disabled or restricted on this system)",
        )
    if map_ids:
        for name, text in (
            ("setgroups", "deny"),
            ("uid_map", f"{uid} {uid} 1"),
            ("gid_map", f"{gid} {gid} 1"),
        ):
            with open(f"/proc/self/{name}", "w", encoding="ascii") as f:
                f.write(text)
    import socket  # noqa: PLC0415 - only here

    names = sorted(name for _index, name in socket.if_nameindex())
    if names != ["lo"]:  # fail closed: this is not an empty namespace
        raise Unavailable("netns", f"the new network namespace has interfaces {names}")
    ids = "ids kept" if map_ids else "unmapped ids"
    return LayerReport(
        "netns",
        True,
        f"new user and network namespaces ({ids}): no interface but a loopback that is down",
    )
