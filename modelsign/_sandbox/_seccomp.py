"""The seccomp layer: system calls a sandboxed process may not make.

Built on the ``pyseccomp`` binding (the ``sandbox`` extra) over the system's
libseccomp, which compiles the rules for this architecture and kills a
process that makes system calls through another architecture's ABI (x32,
i386 on x86-64).

Two profiles. Both deny (``EPERM``) what reaches into the kernel or other
processes: mounts and namespaces, ptrace and cross-process memory access,
BPF, perf, userfaultfd, kernel keyrings, module and kexec loading, file
handles (``open_by_handle_at`` escapes a mount), metadata changes that
Landlock does not control (``chmod``, ``chown``, extended attributes), and
typing into a terminal (``TIOCSTI``). ``clone3``, whose flags a filter cannot
read, and every system call newer than this list (numbers from 448, but for a
reviewed few) answer ``ENOSYS``, as on an older kernel: the C library then
creates threads with ``clone``, and a system call added to Linux later cannot
walk past a list written before it.

* ``convert``: also no new process (``fork``, ``vfork``, ``clone`` without
  ``CLONE_THREAD``) and no program
  (``execve``), no socket at all, no ``io_uring`` (its operations are not
  system calls), and signals only to itself.
* ``run``: a server may start processes and open sockets; the rest holds.
"""

from __future__ import annotations

import errno
import os
from typing import Any

from modelsign._sandbox._layers import LayerReport, Unavailable

CLONE_THREAD = 0x00010000

_KERNEL = (
    # mounts and namespaces
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "unshare",
    "setns",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    # other processes' memory, tracing, kernel programs
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    # keyrings, modules, the machine itself
    "keyctl",
    "add_key",
    "request_key",
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "reboot",
    "swapon",
    "swapoff",
    "syslog",
    "acct",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "sethostname",
    "setdomainname",
    "quotactl",
    "personality",
    "iopl",
    "ioperm",
    # a file handle names a file without a path: past Landlock and mounts
    "name_to_handle_at",
    "open_by_handle_at",
    # metadata Landlock does not control
    "chmod",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "chown",
    "fchown",
    "lchown",
    "fchownat",
    "setxattr",
    "lsetxattr",
    "fsetxattr",
    "removexattr",
    "lremovexattr",
    "fremovexattr",
    "mknod",
    "mknodat",
)
_CONVERT_ONLY = (
    "execve",
    "execveat",
    "fork",
    "vfork",
    "socket",
    "pidfd_open",
    "pidfd_send_signal",
    "pidfd_getfd",
    "tkill",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
)
PROFILES = ("convert", "run")

#: Numbers of the system calls above that were added in Linux 5.1 or later
#: (one table for every architecture since 5.1), for a libseccomp too old to
#: know their names.
_NEW_NUMBERS = {
    "pidfd_send_signal": 424,
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
    "open_tree": 428,
    "move_mount": 429,
    "fsopen": 430,
    "fsconfig": 431,
    "fsmount": 432,
    "fspick": 433,
    "pidfd_open": 434,
    "pidfd_getfd": 438,
    "mount_setattr": 442,
    "fchmodat2": 452,
}
#: A deny list cannot name what did not exist when it was written: every
#: system call numbered from here on answers ENOSYS (as on an older kernel,
#: which the C library handles), but for the reviewed ones below.
_FIRST_UNREVIEWED = 448
_LAST_NUMBER = 511  # x86-64 numbers its x32 system calls from 512
_REVIEWED = {
    449: "futex_waitv",
    451: "cachestat",
    453: "map_shadow_stack",
    454: "futex_wake",
    455: "futex_wait",
    456: "futex_requeue",
    462: "mseal",
}
_ARCHITECTURES = ("x86_64", "aarch64")
TIOCSTI, TIOCLINUX = 0x5412, 0x541C


def binding() -> Any:
    """The ``pyseccomp`` module, imported while files and programs can still
    be opened (it looks libseccomp up with ``ldconfig``).

    Raises:
        Unavailable: the binding or libseccomp is missing.
    """
    try:
        import pyseccomp  # noqa: PLC0415 - an optional dependency
    except ImportError as e:
        raise Unavailable(
            "seccomp", f"the pyseccomp package is missing ({e}); pip install 'modelsign[sandbox]'"
        ) from e
    except (OSError, RuntimeError) as e:  # "Unable to find libseccomp"
        raise Unavailable(
            "seccomp", f"libseccomp cannot be loaded ({e}); install libseccomp2"
        ) from e
    return pyseccomp


def load(profile: str) -> LayerReport:
    """Load the filter of ``profile`` on this process (every thread made later
    inherits it; ``pyseccomp`` sets no_new_privs first, as the kernel requires).

    Raises:
        Unavailable: no binding or libseccomp, or a kernel without seccomp filters.
    """
    import platform  # noqa: PLC0415

    machine = platform.machine()
    if machine not in _ARCHITECTURES:
        raise Unavailable("seccomp", f"the filter is written for {_ARCHITECTURES}, not {machine}")
    sc = binding()
    deny, absent = sc.ERRNO(errno.EPERM), sc.ERRNO(errno.ENOSYS)
    denied = list(_KERNEL)
    try:
        rules = sc.SyscallFilter(sc.ALLOW)
        if profile == "convert":
            denied += _CONVERT_ONLY
            rules.add_rule(deny, "clone", sc.Arg(0, sc.MASKED_EQ, CLONE_THREAD, 0))
            me = os.getpid()
            for call in ("kill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo"):
                rules.add_rule(deny, call, sc.Arg(0, sc.NE, me))
        for request in (TIOCSTI, TIOCLINUX):  # typing into a terminal
            # The kernel reads the request as 32 bits: compare those only,
            # or a request with high bits set would pass.
            rules.add_rule(deny, "ioctl", sc.Arg(1, sc.MASKED_EQ, 0xFFFFFFFF, request))
        for call in denied:
            number = sc.resolve_syscall(sc.Arch.NATIVE, call)
            if number < 0:
                number = _NEW_NUMBERS.get(call, -1)
            if number >= 0:  # else: not a system call on this architecture
                rules.add_rule(deny, number)
        # clone3 passes its flags in memory, which a filter cannot read:
        # "not implemented" makes the C library create threads with clone.
        unreviewed = [435, *range(_FIRST_UNREVIEWED, _LAST_NUMBER + 1)]
        for number in unreviewed:
            if number not in _REVIEWED:
                rules.add_rule(absent, number)
        rules.load()
    except OSError as e:
        raise Unavailable("seccomp", f"the filter cannot be loaded: {e}") from e
    what = (
        "no new process or program, no socket, no io_uring, signals to itself only, "
        if profile == "convert"
        else ""
    )
    return LayerReport(
        "seccomp",
        True,
        f"profile {profile}: {what}no mount, namespace, ptrace, BPF, perf, keyring, module, "
        "file handle, chmod, chown or xattr change",
    )
