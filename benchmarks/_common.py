"""What the benchmark scripts share: sizes, the page cache, the machine, the
hashlib limit, and how goals are judged (a failed run is never a goal met).

compare.py imports this module in every fresh "hashlib limit" process, so its
top-level imports are kept cheap (argparse, re and platform are imported where
they are used).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path

MIB = 1024 * 1024
GIB = 1024 * MIB
HASH_BUFFER = 16 * MIB
_UNITS = {"": 1, "K": 1024, "M": MIB, "G": GIB, "T": 1024 * GIB}


def parse_size(text: str, minimum: int = 1) -> int:
    """``1073741824``, ``64M``, ``64MiB``, ``1G``, ``1.5GiB``: binary units."""
    import argparse
    import re

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*", text.upper())
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 1G, 64M or a byte count)")
    size = int(float(m.group(1)) * _UNITS[m.group(2)])
    if size < minimum:
        raise argparse.ArgumentTypeError(f"size {text!r} is too small (at least {minimum} bytes)")
    return size


def human(n: float) -> str:
    for unit, scale in (("GiB", GIB), ("MiB", MIB), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f} B"


def warm_cache(paths: list[Path], buffer_size: int = 16 * MIB) -> None:
    """Read every file once, so that timings measure hashing, not the disk."""
    buf = bytearray(buffer_size)
    for path in paths:
        with open(path, "rb", buffering=0) as f:
            while f.readinto(buf):
                pass


def model_files(model: Path) -> list[Path]:
    """The regular files of a model: ``model`` itself, or every file below it, sorted."""
    if not model.is_dir():
        return [model]
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(model):
        dirnames.sort()
        found.extend(Path(dirpath, name) for name in sorted(filenames))
    return found


def sha256_files(
    files: Iterable[Path], workers: int, buffer_size: int = HASH_BUFFER
) -> dict[Path, str]:
    """SHA-256 of each file, ``workers`` files at a time: the "hashlib limit".

    Each thread reads with ``readinto`` into its own reused ``buffer_size``
    buffer. Plain threads, not a ThreadPoolExecutor: ``concurrent.futures``
    imports ``logging``, which costs a fresh process about 10 ms.
    """
    files = list(files)
    results: dict[Path, str] = {}
    errors: list[Exception] = []
    pending = iter(files)
    lock = threading.Lock()

    def work() -> None:
        buf = bytearray(buffer_size)
        view = memoryview(buf)
        while not errors:
            with lock:
                path = next(pending, None)
            if path is None:
                return
            try:
                h = hashlib.sha256()
                with open(path, "rb", buffering=0) as f:
                    while n := f.readinto(buf):
                        h.update(view[:n])
            except Exception as e:  # noqa: BLE001 - re-raised by the caller below
                errors.append(e)
                return
            results[path] = h.hexdigest()

    workers = max(1, min(workers, len(files)))
    if workers == 1:
        work()
    else:
        threads = [threading.Thread(target=work) for _ in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    if errors:
        raise errors[0]
    return {p: results[p] for p in files}


def machine() -> str:
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} logical CPUs, {cpu}, Python {platform.python_version()}"


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def versions(*dists: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for dist in dists:
        try:
            out.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            out.append(f"{dist} (not installed)")
    return ", ".join(out)


# --- goals and failures ---------------------------------------------------------------------

#: The verdicts of a goal. FAILED: there is no figure to judge, because the run
#: failed (an error, wrong digests): it counts as not met, never as met.
MET, MISSED, FAILED = "met", "MISSED", "FAILED"


def verdict(value: float | None, goal: float, *, at_least: bool = False) -> str:
    """``value`` against ``goal`` (at most ``goal``, or with ``at_least`` at
    least); ``None``, a run that failed, is FAILED."""
    if value is None:
        return FAILED
    return MET if (value >= goal if at_least else value <= goal) else MISSED


def goals_line(verdicts: Iterable[str]) -> str:
    """``"3 of 5 met; 1 MISSED; 1 FAILED (the run failed: no figure)"``: only met is met."""
    verdicts = list(verdicts)
    line = f"{verdicts.count(MET)} of {len(verdicts)} met"
    if verdicts.count(MISSED):
        line += f"; {verdicts.count(MISSED)} MISSED"
    if verdicts.count(FAILED):
        line += f"; {verdicts.count(FAILED)} FAILED (the run failed: no figure)"
    return line


def digest_differences(got: Mapping[str, str], expected: Mapping[str, str]) -> list[str]:
    """One line per name whose digest differs from the reference, or is only
    on one side; empty when every digest is the reference's."""
    lines = []
    for name in sorted(set(got) | set(expected)):
        mine, theirs = got.get(name), expected.get(name)
        if mine != theirs:
            lines.append(f"{name}: engine {mine or '(none)'}, reference {theirs or '(none)'}")
    return lines


def sha256_ranges(
    path: Path, size: int, buffer_size: int = HASH_BUFFER
) -> dict[tuple[int, int], str]:
    """SHA-256 of each ``size``-byte range of ``path`` with hashlib: (start, end) -> hex."""
    out: dict[tuple[int, int], str] = {}
    buf = bytearray(min(buffer_size, size))
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        start = 0
        while True:
            h = hashlib.sha256()
            left = size
            while left and (n := f.readinto(view[: min(left, len(buf))])):
                h.update(view[:n])
                left -= n
            end = start + size - left
            if end == start:
                return out
            out[start, end] = h.hexdigest()
            start = end
