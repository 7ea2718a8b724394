"""What the benchmark scripts share: sizes, the page cache, the machine."""

from __future__ import annotations

import argparse
import os
import platform
import re
from pathlib import Path

MIB = 1024 * 1024
GIB = 1024 * MIB
_UNITS = {"": 1, "K": 1024, "M": MIB, "G": GIB, "T": 1024 * GIB}


def parse_size(text: str, minimum: int = 1) -> int:
    """``1073741824``, ``64M``, ``64MiB``, ``1G``, ``1.5GiB``: binary units."""
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


def machine() -> str:
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
