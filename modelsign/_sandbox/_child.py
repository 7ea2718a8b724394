"""The sandboxed child: ``python -I -B -m modelsign._sandbox._child CONFIG``.

It first restricts itself (every layer, while it is the only thread and
before it has read a byte of the checkpoint), says so on the report pipe,
and only then imports torch, loads the inherited input descriptors, and
writes the tensors it found as one safetensors file in its output folder.
From the first ``torch.load`` on, everything this process does may be the
checkpoint's code: the parent checks what it reports instead of believing it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import sys
from typing import Any

from modelsign._sandbox import _landlock, _process, _seccomp
from modelsign._sandbox._layers import LayerReport, Unavailable, apply_layer, preload_bindings
from modelsign._sandbox._protocol import MAX_LISTED, MAX_MESSAGE, ChildConfig, encode
from modelsign._sandbox._safetensors import DTYPE_SIZES, header

#: torch dtype name -> safetensors dtype.
TORCH_DTYPES = {
    "bool": "BOOL",
    "uint8": "U8",
    "int8": "I8",
    "int16": "I16",
    "uint16": "U16",
    "int32": "I32",
    "uint32": "U32",
    "int64": "I64",
    "uint64": "U64",
    "float16": "F16",
    "bfloat16": "BF16",
    "float32": "F32",
    "float64": "F64",
    "float8_e5m2": "F8_E5M2",
    "float8_e4m3fn": "F8_E4M3",
}
MAX_DEPTH = 200
_WRITE_CHUNK = 8 * 1024 * 1024


class Refusal(Exception):
    """A failure the child classifies for the parent (``kind``)."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(message)


# --------------------------------------------------------------------------
# Restricting itself.


def _is_within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def runtime_grants(home: str | None) -> list[_landlock.Grant]:
    """What the interpreter and torch need to read: this Python's prefixes
    and import path, the system's libraries, a few files of /etc, /proc,
    /sys and /dev. Never ``/``, nor a folder that holds the home folder."""
    candidates = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    candidates |= {p for p in sys.path if p}
    candidates |= {"/usr", "/lib", "/lib32", "/lib64", "/libx32", "/sys/devices/system/cpu"}
    files = ["/etc/ld.so.cache", "/etc/localtime", "/proc/cpuinfo", "/dev/urandom"]
    home_real = os.path.realpath(home) if home else None
    grants = []
    for path in sorted(candidates):
        real = os.path.realpath(path)
        if real == "/" or (home_real is not None and _is_within(home_real, real)):
            continue  # it would open everything, or the user's home
        grants.append(_landlock.Grant(path, "read"))
    grants += [_landlock.Grant(f, "read") for f in files]
    grants.append(_landlock.Grant("/dev/null", "device"))
    return grants


def restrict_self(config: ChildConfig) -> list[LayerReport]:
    """Apply every layer, in the order that lets each one be set up.

    Raises:
        Unavailable: a layer the user did not accept to lose is missing.
    """
    reports = [_process.set_limits(config.limits)]
    _process.die_with_parent()
    missing = preload_bindings()
    grants = [*runtime_grants(config.home), _landlock.Grant(config.output_dir, "output")]
    weaker = config.weaker
    apply_layer(
        "netns", lambda: _process.new_network_namespace(map_ids=False), weaker, reports, missing
    )
    reports.append(_process.no_new_privs())
    apply_layer(
        "landlock",
        lambda: _landlock.restrict(
            grants, deny_tcp=True, scopes=("ABSTRACT_UNIX_SOCKET", "SIGNAL")
        ),
        weaker,
        reports,
        missing,
    )
    apply_layer("seccomp", lambda: _seccomp.load("convert"), weaker, reports, missing)
    return reports


# --------------------------------------------------------------------------
# Loading and writing (the checkpoint's code may run from here on).


def _weights_only_reason(error: BaseException) -> str | None:
    text = str(error)
    if "Weights only load failed" not in text:
        return None
    marker = "WeightsUnpickler error:"
    if marker in text:
        text = text.split(marker, 1)[1]
    text = text.split(" Please use ", 1)[0].split("\n\n", 1)[0]
    return " ".join(text.split())


def load_inputs(config: ChildConfig) -> list[tuple[str, Any]]:
    import pickle  # noqa: PLC0415

    import torch  # noqa: PLC0415

    torch.set_num_threads(1)
    loaded = []
    for name, fd in config.inputs:
        with os.fdopen(fd, "rb", closefd=False) as f:
            try:
                obj = torch.load(f, map_location="cpu", weights_only=config.weights_only)
            except pickle.UnpicklingError as e:
                reason = _weights_only_reason(e) if config.weights_only else None
                if reason is None:
                    raise
                raise Refusal("weights_only", f"{name}: {reason}") from None
        loaded.append((name, obj))
    return loaded


def flatten(
    obj: Any, path: str, tensors: dict[str, Any], found: list[tuple[str, str]], depth: int = 0
) -> None:
    """Every tensor under ``obj`` into ``tensors`` by its dotted path; every
    other value into ``found`` as ``(path, type)``."""
    import torch  # noqa: PLC0415

    shown = path or "<the checkpoint itself>"
    if depth > MAX_DEPTH:
        found.append((shown, f"nesting deeper than {MAX_DEPTH} levels"))
        return
    if isinstance(obj, torch.Tensor):
        _tensor(obj, path or "tensor", tensors, found)
    elif isinstance(obj, dict):
        for key, value in list(obj.items()):
            if isinstance(key, str) or (isinstance(key, int) and not isinstance(key, bool)):
                child = f"{path}.{key}" if path else str(key)
                flatten(value, child, tensors, found, depth + 1)
            else:
                found.append((f"{shown}[{type(key).__name__} key]", type(value).__name__))
    elif isinstance(obj, (list, tuple)):
        for index, value in enumerate(obj):
            flatten(value, f"{path}.{index}" if path else str(index), tensors, found, depth + 1)
    elif isinstance(obj, torch.nn.Module):
        flatten(obj.state_dict(), path, tensors, found, depth + 1)
    else:
        kind = type(obj)
        found.append((shown, f"{kind.__module__}.{kind.__qualname__}"))


def _tensor(t: Any, name: str, tensors: dict[str, Any], found: list[tuple[str, str]]) -> None:
    import torch  # noqa: PLC0415

    dtype = str(t.dtype).removeprefix("torch.")
    if t.layout != torch.strided or t.is_quantized or t.is_meta:
        found.append((name, f"torch.Tensor with layout {t.layout} (not a dense tensor)"))
    elif dtype not in TORCH_DTYPES:
        found.append((name, f"torch.Tensor of dtype {dtype} (no safetensors dtype)"))
    elif name == "__metadata__":
        found.append((name, "a tensor named like the safetensors header's metadata"))
    elif name in tensors:
        raise Refusal("names", f"two tensors are named {name!r}")
    else:
        tensors[name] = t.detach()


def _raw(t: Any) -> tuple[Any, memoryview]:
    """The tensor (kept alive) and a view of its bytes, without a copy."""
    import ctypes  # noqa: PLC0415

    t = t.contiguous()
    size = t.numel() * t.element_size()
    if size == 0:
        return t, memoryview(b"")
    return t, memoryview((ctypes.c_char * size).from_address(t.data_ptr())).cast("B")


def write_safetensors(path: str, tensors: dict[str, Any]) -> list[dict[str, Any]]:
    """Write ``tensors`` (sorted by name) and return each one's record."""
    if sys.byteorder != "little":
        raise Refusal("output", "safetensors is little-endian; this machine is not")
    entries, offset = [], 0
    for name in sorted(tensors):
        t = tensors[name]
        dtype = TORCH_DTYPES[str(t.dtype).removeprefix("torch.")]
        size = t.numel() * DTYPE_SIZES[dtype]
        entries.append((name, dtype, tuple(t.shape), offset, offset + size))
        offset += size
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    records = []
    try:
        _write_all(fd, memoryview(header(entries)))
        for name, dtype, shape, _begin, _end in entries:
            t, raw = _raw(tensors[name])
            digest = hashlib.sha256(raw).hexdigest()
            _write_all(fd, raw)
            del t, raw
            records.append({"name": name, "dtype": dtype, "shape": list(shape), "sha256": digest})
        os.fsync(fd)
    finally:
        os.close(fd)
    return records


def _write_all(fd: int, view: memoryview) -> None:
    while view:
        view = view[os.write(fd, view[:_WRITE_CHUNK]) :]


def _listed(items: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"path": p[:MAX_MESSAGE], "type": t[:200]} for p, t in items[:MAX_LISTED]]


def convert(config: ChildConfig) -> dict[str, Any]:
    """Load, sort tensors from the rest, write; the report's last event."""
    tensors: dict[str, Any] = {}
    found: list[tuple[str, str]] = []
    for _name, obj in load_inputs(config):
        flatten(obj, "", tensors, found)
    if found and not config.drop_non_tensors:
        return {"event": "non_tensors", "found": _listed(found), "count": len(found)}
    if not tensors:
        raise Refusal("empty", "the checkpoint holds no tensor")
    records = write_safetensors(os.path.join(config.output_dir, config.output_name), tensors)
    return {"event": "done", "tensors": records, "dropped": _listed(found), "count": len(found)}


def error_event(error: BaseException) -> dict[str, Any]:
    """The report line for a failure, classified for the parent."""
    kind = "load"
    if isinstance(error, Refusal):
        kind = error.kind
    elif isinstance(error, MemoryError):
        kind = "memory"
    elif isinstance(error, OSError) and error.errno == errno.EFBIG:
        kind = "file_size"
    try:
        name = f"{type(error).__module__}.{type(error).__qualname__}".removeprefix("builtins.")
        message = str(error)
    except Exception:  # noqa: BLE001 - the checkpoint's own exception may not even print
        name, message = "exception", "(its message cannot be shown)"
    return {"event": "error", "kind": kind, "type": name[:200], "message": message[:MAX_MESSAGE]}


def main(argv: list[str]) -> int:
    config = ChildConfig.from_argument(argv[1])
    report = config.report_fd

    def send(event: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):
            os.write(report, encode(event))

    try:
        layers = restrict_self(config)
    except Unavailable as e:
        send({"event": "unavailable", "layer": e.layer, "reason": e.reason})
        return 3
    except Exception as e:  # noqa: BLE001 - a layer that must work did not: fail closed
        send({"event": "unavailable", "layer": "setup", "reason": f"{type(e).__name__}: {e}"})
        return 3
    send({"event": "sandboxed", "layers": [r.to_json() for r in layers]})
    try:
        event = convert(config)
    except BaseException as e:  # noqa: BLE001 - SystemExit and all: the checkpoint's code
        event = error_event(e)
    send(event)
    return 0 if event["event"] == "done" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
