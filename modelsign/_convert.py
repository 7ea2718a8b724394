"""Convert an untrusted pickle checkpoint into safetensors, in a sandbox.

The checkpoint is opened here (never read) and handed as a descriptor to a
child process that restricts itself (:mod:`modelsign._sandbox`) before it
loads anything: with torch's weights-only unpickler by default, in full with
``allow_pickle``. The child writes tensors only, as a safetensors file in a
temporary folder beside the destination, and reports each tensor's name,
dtype, shape and SHA-256. This process never unpickles: it parses the
safetensors header itself, checks it and every tensor's bytes against the
report, and only then moves the file into place atomically.

Supported inputs: a file ``torch.load`` reads (``.pt``, ``.pth``, ``.bin``,
``.ckpt``, zip or legacy format), or a Hugging Face folder with
``pytorch_model.bin`` or a sharded ``pytorch_model.bin.index.json``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import stat
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelsign._atomic import move_into_place, temporary_name_prefix
from modelsign._sandbox import (
    ChildConfig,
    LayerReport,
    Limits,
    TensorRecord,
    check_file,
    check_layer_names,
    decode_report,
    run_child,
)
from modelsign.errors import (
    ConvertedOutputError,
    ConvertError,
    NonTensorContentError,
    OverwriteError,
    SandboxedLoadError,
    SandboxLimitError,
    SandboxTimeoutError,
    SandboxUnavailableError,
    UnsafeModelError,
    UsageError,
    WeightsOnlyRefusedError,
)

GiB = 1024**3
DEFAULT_TIMEOUT = 600.0
DEFAULT_CPU_SECONDS = 600
INDEX = "pytorch_model.bin.index.json"
SINGLE = "pytorch_model.bin"
MAX_INDEX = 16 * 1024 * 1024
OUTPUT_NAME = "converted.safetensors"
#: How many non-tensor values a message lists (the error's ``found`` has all
#: that the child listed).
SHOWN_IN_MESSAGE = 20


def default_limits(input_size: int) -> Limits:
    """Limits that fit a checkpoint of ``input_size`` bytes: address space
    for the interpreter and torch (about 1 GiB), the loaded tensors and a
    copy of the largest; an output at most twice the input (tensors that
    share storage are written once each) plus 1 GiB."""
    return Limits(
        memory=4 * GiB + 3 * input_size,
        cpu_seconds=DEFAULT_CPU_SECONDS,
        file_size=GiB + 2 * input_size,
    )


@dataclass(frozen=True)
class ConvertedModel:
    """What :func:`convert` wrote, and in which sandbox it was loaded."""

    source: Path
    output: Path
    weights_only: bool
    tensors: tuple[TensorRecord, ...]
    #: Values that were not tensors, dropped (``path (type)``).
    dropped: tuple[str, ...]
    dropped_count: int
    size: int
    layers: tuple[LayerReport, ...]
    limits: Limits
    timeout: float

    def to_json(self) -> dict[str, object]:
        """The result for machine-read output (``convert --json``)."""
        return {
            "converted": True,
            "source": str(self.source),
            "output": str(self.output),
            "weights_only": self.weights_only,
            "size": self.size,
            "tensors": [t.to_json() for t in self.tensors],
            "dropped": list(self.dropped),
            "dropped_count": self.dropped_count,
            "sandbox": {
                "layers": [layer.to_json() for layer in self.layers],
                "limits": self.limits.to_json(),
                "timeout": self.timeout,
            },
        }


def convert(
    source: str | os.PathLike[str],
    destination: str | os.PathLike[str],
    *,
    allow_pickle: bool = False,
    drop_non_tensors: bool = False,
    memory_limit: int | None = None,
    cpu_limit: int | None = None,
    output_limit: int | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    weaker: Iterable[str] = (),
    overwrite: bool = False,
) -> ConvertedModel:
    """Load ``source`` in a sandboxed process and write its tensors to
    ``destination`` (a ``.safetensors`` file).

    Args:
        source: a checkpoint file, or a Hugging Face folder with
            ``pytorch_model.bin`` or ``pytorch_model.bin.index.json``.
        destination: the safetensors file to write.
        allow_pickle: unpickle in full (running the checkpoint's code inside
            the sandbox) instead of with torch's weights-only unpickler.
        drop_non_tensors: write the tensors and drop every other value,
            instead of refusing a checkpoint that holds any.
        memory_limit: the child's address space in bytes, ``cpu_limit`` its
            CPU seconds, ``output_limit`` the largest file it may write
            (each by default from :func:`default_limits`).
        timeout: wall-clock seconds before the child is killed.
        weaker: sandbox layers (``netns``, ``landlock``, ``seccomp``) the
            caller accepts to run without where the system lacks them.
        overwrite: replace an existing ``destination``.

    Returns:
        What was written and how it was loaded.

    Raises:
        UsageError: a bad argument (``destination``, ``weaker``, ``timeout``,
            a limit),
            a source that cannot be opened, an output that exists
            (``OverwriteError``), a missing sandbox layer
            (``SandboxUnavailableError``).
        ConvertError: the checkpoint was refused (``NonTensorContentError``,
            ``SandboxedLoadError`` and its subclasses,
            ``ConvertedOutputError``); nothing was written.
    """
    src, dest = Path(source), Path(destination)
    accepted = tuple(weaker)
    given = {"memory_limit": memory_limit, "cpu_limit": cpu_limit, "output_limit": output_limit}
    _check_arguments(dest, accepted, timeout, overwrite, given)
    inputs, index_names = _open_inputs(src)
    try:
        size = sum(os.fstat(fd).st_size for _name, fd in inputs)
        defaults = default_limits(size)
        limits = Limits(
            memory=memory_limit or defaults.memory,
            cpu_seconds=cpu_limit or defaults.cpu_seconds,
            file_size=output_limit or defaults.file_size,
        )
        folder = Path(
            tempfile.mkdtemp(
                prefix=temporary_name_prefix(dest), suffix=".tmp", dir=dest.parent.absolute()
            )
        )
        try:
            layers, records, dropped, dropped_count = _run(
                src, inputs, folder, allow_pickle, drop_non_tensors, limits, timeout, accepted
            )
            if index_names is not None:
                _check_index(src, index_names, records)
            written = _move_checked(folder / OUTPUT_NAME, dest, records, limits, overwrite)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    finally:
        for _name, fd in inputs:
            os.close(fd)
    return ConvertedModel(
        source=src,
        output=dest,
        weights_only=not allow_pickle,
        tensors=tuple(records),
        dropped=dropped,
        dropped_count=dropped_count,
        size=written,
        layers=layers,
        limits=limits,
        timeout=timeout,
    )


def _check_arguments(
    dest: Path,
    weaker: Sequence[str],
    timeout: float,
    overwrite: bool,
    limits: dict[str, int | None],
) -> None:
    if dest.suffix != ".safetensors":
        raise UsageError(
            f"{{param}}{dest}: the output must be a .safetensors file", parameter="destination"
        )
    if not dest.parent.is_dir():
        raise UsageError(f"{{param}}{dest}: no folder {dest.parent}", parameter="destination")
    if dest.is_dir():
        raise UsageError(f"{{param}}{dest}: is a folder", parameter="destination")
    if dest.exists() and not overwrite:
        raise OverwriteError(f"{dest}: already exists; modelsign never overwrites it")
    check_layer_names(weaker)
    if not timeout > 0:
        raise UsageError(f"{{param}}{timeout}: must be a positive number", parameter="timeout")
    for name, value in limits.items():
        if value is not None and (type(value) is not int or value <= 0):
            raise UsageError(f"{{param}}{value}: must be a positive integer", parameter=name)


# --------------------------------------------------------------------------
# Inputs: opened here, read only by the child.


def _open_regular(path: Path, *, follow: bool) -> int:
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError as e:
        raise UsageError(f"{path}: no such file") from e
    except OSError as e:
        if not follow and os.path.islink(path):
            raise UnsafeModelError(f"{path}: is a symlink; modelsign does not follow it") from e
        raise UsageError(f"{path}: cannot open: {e.strerror}") from e
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafeModelError(f"{path}: is not a regular file")
    return fd


def _open_inputs(source: Path) -> tuple[list[tuple[str, int]], set[str] | None]:
    """(name, descriptor) of each file to load, and the tensor names a shard
    index lists (None without an index)."""
    if not source.is_dir():
        return [(source.name, _open_regular(source, follow=True))], None
    if os.path.lexists(source / INDEX):
        weight_map = _read_index(source / INDEX)
        names = sorted(set(weight_map.values()))
        index_names: set[str] | None = set(weight_map)
    elif os.path.lexists(source / SINGLE):
        names, index_names = [SINGLE], None
    else:
        raise UsageError(
            f"{source}: a folder to convert must hold {SINGLE} or {INDEX} "
            "(give a checkpoint file's path otherwise)"
        )
    inputs: list[tuple[str, int]] = []
    try:
        for name in names:
            inputs.append((name, _open_regular(source / name, follow=False)))
    except BaseException:
        for _name, fd in inputs:
            os.close(fd)
        raise
    return inputs, index_names


def _read_index(path: Path) -> dict[str, str]:
    from modelsign import _json  # noqa: PLC0415
    from modelsign._files import read_small  # noqa: PLC0415
    from modelsign.errors import MalformedBundleError  # noqa: PLC0415

    data = read_small(path, MAX_INDEX, "shard index", ConvertError)
    try:
        doc = _json.loads(data, str(path), max_bytes=MAX_INDEX)
    except MalformedBundleError as e:
        raise ConvertError(str(e)) from e
    weight_map = doc.get("weight_map") if isinstance(doc, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise ConvertError(f"{path}: expected a non-empty 'weight_map' object, actual {doc!r:.200}")
    for tensor, shard in weight_map.items():
        if not isinstance(shard, str) or "/" in shard or shard in ("", ".", "..") or "\0" in shard:
            raise UnsafeModelError(
                f"{path}: tensor {tensor!r}: shard {shard!r:.200} is not a file name in the folder"
            )
    return weight_map


def _check_index(source: Path, listed: set[str], records: Sequence[TensorRecord]) -> None:
    found = {r.name for r in records}
    if found != listed:
        missing, extra = sorted(listed - found)[:20], sorted(found - listed)[:20]
        raise ConvertError(
            f"{source / INDEX}: the shards do not hold what the index lists: listed but not "
            f"found {missing}, found but not listed {extra}"
        )


# --------------------------------------------------------------------------
# The child's run, and what its report means.


def _run(
    source: Path,
    inputs: list[tuple[str, int]],
    folder: Path,
    allow_pickle: bool,
    drop_non_tensors: bool,
    limits: Limits,
    timeout: float,
    weaker: tuple[str, ...],
) -> tuple[tuple[LayerReport, ...], list[TensorRecord], tuple[str, ...], int]:
    read_end, write_end = os.pipe()
    config = ChildConfig(
        inputs=tuple(inputs),
        output_dir=str(folder),
        output_name=OUTPUT_NAME,
        report_fd=write_end,
        weights_only=not allow_pickle,
        drop_non_tensors=drop_non_tensors,
        limits=limits,
        weaker=weaker,
        home=os.environ.get("HOME") or os.path.expanduser("~"),
    )
    outcome = run_child(config, read_end, timeout)
    try:
        events = decode_report(outcome.report)
    except ValueError as e:
        raise SandboxedLoadError(
            f"{source}: the sandboxed loader sent a malformed report: {_quoted(str(e))}"
        ) from e
    first = events[0] if events else None
    if first is None:
        raise _no_report(source, outcome, timeout, limits, "before it set up its sandbox")
    if first["event"] == "unavailable":
        layer = str(first.get("layer"))
        raise SandboxUnavailableError(
            f"the {layer} sandbox layer is unavailable: {first.get('reason')}; nothing was loaded",
            layer=layer,
        )
    try:
        if first["event"] != "sandboxed" or not isinstance(first.get("layers"), list):
            raise ValueError(f"first event {first['event']!r:.50}")
        layers = tuple(LayerReport.from_json(layer) for layer in first["layers"])
    except ValueError as e:
        raise SandboxedLoadError(
            f"{source}: the sandboxed loader did not report its sandbox: {_quoted(str(e))}"
        ) from e
    if outcome.timed_out:
        raise SandboxTimeoutError(
            f"{source}: the sandboxed loader was still running after the timeout of {timeout} s "
            "and was killed"
        )
    if outcome.report_overflow:
        raise SandboxLimitError(f"{source}: the sandboxed loader's report is over the limit")
    if len(events) < 2:
        raise _no_report(source, outcome, timeout, limits, "without a result")
    return (layers, *_result(source, events[-1], limits))


def _result(
    source: Path, last: dict[str, Any], limits: Limits
) -> tuple[list[TensorRecord], tuple[str, ...], int]:
    event = last["event"]
    if event == "error":
        raise _load_error(source, last, limits)
    if event not in ("done", "non_tensors"):
        raise SandboxedLoadError(f"{source}: unknown result {_quoted(str(event))}")
    try:
        listed = tuple(
            _found(item) for item in last.get("found" if event != "done" else "dropped", [])
        )
        count = int(last.get("count", len(listed)))
        if event == "non_tensors":
            shown = "; ".join(listed[:SHOWN_IN_MESSAGE])
            more = count - min(count, SHOWN_IN_MESSAGE)
            raise NonTensorContentError(
                f"{source}: holds {count} value(s) that are not tensors (expected tensors in "
                f"plain containers only): {shown}" + (f"; and {more} more" if more else ""),
                found=listed,
            )
        records = [TensorRecord.from_json(t) for t in last.get("tensors", [])]
    except (ValueError, TypeError, AttributeError) as e:
        raise SandboxedLoadError(
            f"{source}: the sandboxed loader sent a malformed result: {_quoted(str(e))}"
        ) from e
    if not records:
        raise SandboxedLoadError(f"{source}: the sandboxed loader reported no tensor")
    return records, listed, count


def _found(item: object) -> str:
    if not isinstance(item, dict) or not {"path", "type"} <= set(item):
        raise ValueError(f"not a found value: {item!r:.200}")
    return f"{_quoted(str(item['path']))} ({_quoted(str(item['type']))})"


def _load_error(source: Path, event: dict[str, Any], limits: Limits) -> Exception:
    kind = event.get("kind")
    text = f"{_quoted(str(event.get('type')))}: {_quoted(str(event.get('message')))}"
    if kind == "weights_only":
        return WeightsOnlyRefusedError(
            f"{source}: torch's weights-only unpickler refused it (expected tensors and plain "
            f"containers only, actual: {_quoted(str(event.get('message')))})"
        )
    if kind == "memory":
        return SandboxLimitError(
            f"{source}: out of memory inside the sandbox (limit: {limits.memory} bytes of "
            f"address space): {text}"
        )
    if kind == "file_size":
        return SandboxLimitError(
            f"{source}: the output is over the limit of {limits.file_size} bytes: {text}"
        )
    if kind == "empty":
        return ConvertError(f"{source}: holds no tensor")
    denied = " (the sandbox denied it)" if event.get("type") == "PermissionError" else ""
    return SandboxedLoadError(f"{source}: loading failed inside the sandbox: {text}{denied}")


def _no_report(source: Path, outcome: Any, timeout: float, limits: Limits, when: str) -> Exception:
    if outcome.timed_out:
        return SandboxTimeoutError(
            f"{source}: the sandboxed loader was still running after the timeout of {timeout} s "
            "and was killed"
        )
    code = outcome.returncode
    if code is not None and code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        if -code == signal.SIGXCPU:
            return SandboxLimitError(
                f"{source}: the sandboxed loader used its CPU time limit of "
                f"{limits.cpu_seconds} s and was killed ({name})"
            )
        status = f"was killed by {name}"
    else:
        status = f"exited with status {code}"
    tail = outcome.output_tail.strip().splitlines()[-3:]
    said = f"; it printed: {_quoted(' | '.join(tail))}" if tail else ""
    return SandboxedLoadError(f"{source}: the sandboxed loader {status} {when}{said}")


def _quoted(text: str) -> str:
    """Text from the sandboxed process, safe for a terminal."""
    return text if text.isprintable() else ascii(text)


# --------------------------------------------------------------------------
# The output: checked here, then moved into place.


def _move_checked(
    written: Path, dest: Path, records: Sequence[TensorRecord], limits: Limits, overwrite: bool
) -> int:
    try:
        fd = os.open(written, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as e:
        raise ConvertedOutputError(
            f"{written}: the sandboxed loader's output cannot be opened: {e.strerror}"
        ) from e
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            raise ConvertedOutputError(
                f"{written}: expected a regular file with one link, actual mode "
                f"{stat.filemode(st.st_mode)} with {st.st_nlink} links"
            )
        if st.st_size > limits.file_size:
            raise ConvertedOutputError(
                f"{written}: {st.st_size} bytes, over the limit of {limits.file_size}"
            )
        size = check_file(fd, str(written), records)
        os.fchmod(fd, 0o644)
        os.fsync(fd)
        move_into_place(written, dest, overwrite=overwrite)
        moved = os.stat(dest, follow_symlinks=False)
        if (moved.st_dev, moved.st_ino) != (st.st_dev, st.st_ino):
            with contextlib.suppress(OSError):
                os.unlink(dest)
            raise ConvertedOutputError(f"{dest}: changed while it was moved into place")
    finally:
        os.close(fd)
    return size
