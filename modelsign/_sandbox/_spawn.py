"""The parent's side: start the sandboxed child, feed it descriptors, read
its report within bounds, and kill it at the wall-clock timeout."""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from modelsign._sandbox._protocol import MAX_REPORT, ChildConfig

#: How much of the child's own output (stdout and stderr) is kept.
MAX_OUTPUT_TAIL = 16 * 1024
#: Environment variables passed through to the child (all others are not).
PASSED_THROUGH = ("LD_LIBRARY_PATH", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


@dataclass(frozen=True)
class Outcome:
    """How the child ended, and what it reported."""

    report: bytes
    #: The exit status (negative: the signal that ended it), None if unknown.
    returncode: int | None
    timed_out: bool
    report_overflow: bool
    #: The end of what the child printed (for diagnostics only).
    output_tail: str


def child_environment(folder: str) -> dict[str, str]:
    """A small environment of modelsign's choosing: nothing of the caller's
    (no MODELSIGN_POLICY, no TORCH_FORCE_* override of weights_only) but
    library settings that keep native code working, one thread per pool, and
    a home and temporary folder in the output folder."""
    env = {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": folder,
        "TMPDIR": folder,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
    }
    for name in PASSED_THROUGH:
        if name in os.environ:
            env[name] = os.environ[name]
    return env


def run_child(config: ChildConfig, report_read: int, timeout: float) -> Outcome:
    """Run the child with ``config`` (whose ``report_fd`` is the writing end
    of a pipe whose reading end is ``report_read``) until it ends, the report
    is over :data:`MAX_REPORT` bytes, or ``timeout`` seconds pass. The child's
    process group is killed in every case before this returns."""
    inherited = (config.report_fd, *(fd for _name, fd in config.inputs))
    command = [
        sys.executable,
        "-I",
        "-B",
        "-m",
        "modelsign._sandbox._child",
        config.to_argument(),
    ]
    deadline = time.monotonic() + timeout
    process = subprocess.Popen(  # noqa: S603 - this interpreter, modelsign's own module
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        pass_fds=inherited,
        env=child_environment(config.output_dir),
        cwd=config.output_dir,
        start_new_session=True,
    )
    os.close(config.report_fd)
    assert process.stdout is not None
    report, tail = bytearray(), bytearray()
    overflow = timed_out = False
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(report_read, selectors.EVENT_READ, "report")
            selector.register(process.stdout.fileno(), selectors.EVENT_READ, "output")
            while selector.get_map():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    timed_out = True
                    break
                for key, _mask in selector.select(remaining):
                    chunk = os.read(key.fd, 65536)
                    if not chunk:
                        selector.unregister(key.fd)
                    elif key.data == "report":
                        report += chunk
                        if len(report) > MAX_REPORT:
                            overflow = True
                            selector.unregister(key.fd)
                    else:
                        tail = (tail + chunk)[-MAX_OUTPUT_TAIL:]
                if overflow:
                    break
        if not timed_out and not overflow:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                timed_out = True
    finally:
        _kill_group(process)
        os.close(report_read)
        process.stdout.close()
    return Outcome(
        report=bytes(report),
        returncode=process.returncode,
        timed_out=timed_out,
        report_overflow=overflow,
        output_tail=tail.decode("utf-8", "replace"),
    )


def _kill_group(process: subprocess.Popen[Any]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
