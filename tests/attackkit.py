"""Payloads for the loader-hook attack tests (tests/test_hooks_attacks.py).

A payload is a pickle whose only effect, when it is unpickled, is to create a
marker file: the tests then know for certain whether attacker code ran. It
reaches that effect through ``builtins.eval`` (or ``builtins.exec``), the global a
real attack would use to run anything at all.

This module imports only the standard library at the top, so that a child
process started with spawn or forkserver, which imports it to find its target
function, starts quickly.
"""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: What a child process reports on its queue / in its exit code.
REFUSED = "refused"
LOADED = "loaded"
OTHER = "other"

EXIT_REFUSED = 0
EXIT_LOADED = 10
EXIT_OTHER = 11


def touch_code(marker: str | os.PathLike[str]) -> str:
    """Python source that creates ``marker``: an expression (for eval), which
    imports only builtins (a torch.package module imports only from its
    archive, and eval run by an unpickler sees its caller's globals, where
    ``open`` may be another function: shelve's)."""
    return f"__import__('builtins').open({os.fspath(marker)!r}, 'w').close()"


class Payload:
    """Unpickling this runs ``eval(touch_code(marker))``: the global is
    ``builtins.eval``."""

    def __init__(self, marker: str | os.PathLike[str]) -> None:
        self.marker = os.fspath(marker)

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[str]]:
        return (eval, (touch_code(self.marker),))


class ExecPayload(Payload):
    """The same with ``builtins.exec``."""

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[str]]:
        return (exec, (touch_code(self.marker),))


def payload_bytes(marker: str | os.PathLike[str], protocol: int = pickle.DEFAULT_PROTOCOL) -> bytes:
    """A pickle that creates ``marker`` when it is unpickled."""
    return pickle.dumps(Payload(marker), protocol=protocol)


def write_payload(path: Path, marker: str | os.PathLike[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload_bytes(marker))
    return path


def torch_payload_bytes(marker: str | os.PathLike[str], prefix: str = "archive") -> bytes:
    """A torch.save-style zip archive whose data.pkl is the payload: what
    ``torch.load(..., weights_only=False)`` unpickles."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{prefix}/data.pkl", payload_bytes(marker, protocol=2))
        zf.writestr(f"{prefix}/byteorder", "little")
        zf.writestr(f"{prefix}/version", "3\n")
    return out.getvalue()


def write_torch_payload(path: Path, marker: str | os.PathLike[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(torch_payload_bytes(marker, prefix=path.stem))
    return path


class NestedTorchPayload(Payload):
    """What ``pickle.dumps(tensor)`` writes for a tensor's storage,
    ``torch.storage._load_from_bytes(b)``, which runs
    ``torch.load(io.BytesIO(b), weights_only=False)`` on bytes from the same
    pickle: here a torch archive whose data.pkl is the payload. Its global
    is one that plain tensor pickles need."""

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[bytes]]:  # type: ignore[override]
        import torch.storage

        return (torch.storage._load_from_bytes, (torch_payload_bytes(self.marker),))


class MethodCallerPayload(Payload):
    """No eval or exec: ``operator.methodcaller("touch")(PosixPath(marker))``,
    two globals that look like data."""

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any]]:  # type: ignore[override]
        import operator

        return (operator.methodcaller("touch"), (Path(self.marker),))


class NestedPicklePayload(Payload):
    """``pickle.loads`` of an inner payload: the outer global is pickle's own."""

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[bytes]]:  # type: ignore[override]
        return (pickle.loads, (payload_bytes(self.marker),))


def source_touching(marker: str | os.PathLike[str]) -> str:
    """A Python module whose import creates ``marker``."""
    return f"{touch_code(marker)}\n"


# ------------------------------------------------------------- child processes
# Targets of multiprocessing children: module-level, so spawn and forkserver
# children can import them; they report through their exit code.


def child_pickle_load(path: str) -> None:
    """Child: ``pickle.load`` a file; exit with EXIT_REFUSED when the hook
    refused it, EXIT_LOADED when it loaded."""
    sys.exit(_classify(lambda: _pickle_load_path(path)))


def _pickle_load_path(path: str) -> object:
    with open(path, "rb") as f:
        return pickle.load(f)


def _classify(load: Callable[[], object]) -> int:
    try:
        load()
    except Exception as e:
        from modelsign.errors import LoadRefusedError

        if isinstance(e, LoadRefusedError):
            return EXIT_REFUSED
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_OTHER
    return EXIT_LOADED


CHILD_LOAD_SCRIPT = """\
import pickle, sys
try:
    with open(sys.argv[1], "rb") as f:
        pickle.load(f)
except Exception as e:
    from modelsign.errors import LoadRefusedError
    if isinstance(e, LoadRefusedError):
        print("REFUSED:", e)
        sys.exit(0)
    print(type(e).__name__, e)
    sys.exit(11)
print("LOADED")
sys.exit(10)
"""


def run_child_script(
    script: str, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


# ------------------------------------------------------------- controls


def square(x: int) -> int:
    return x * x


def tensor_sum(t: Any) -> Any:
    return t.sum()


class Unseekable(io.RawIOBase):
    """A byte stream without a file descriptor (like an HTTP body or an
    fsspec stream): ``fileno()`` raises, ``seek`` is unsupported."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        chunk = self._data.read(len(b))
        b[: len(chunk)] = chunk
        return len(chunk)


class Squares:
    """A map-style dataset for DataLoader workers: (i, i*i)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[int, int]:
        return i, i * i


def double_tensors(inbox: Any, outbox: Any, done: Any) -> None:
    """Child: receive a dict of tensors, send back each doubled."""
    tensors = inbox.get(timeout=60)
    outbox.put({k: v * 2 for k, v in tensors.items()})
    done.wait(60)  # keep shared storage alive until the parent has it
