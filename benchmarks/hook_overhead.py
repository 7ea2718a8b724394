"""Measure what the loader hook adds to ``torch.load``: wall time and memory.

Builds, for each of ``--sizes`` (default 1 GiB and 100 MiB), a state_dict of
float32 tensors, ``torch.save``s it as ``model.pt`` in a model directory and
signs that directory (``model.sig``, Ed25519). Then, for each size and each
load mode (``torch.load(path)`` and ``torch.load(path, mmap=True)``), it runs
``--repeat`` fresh Python processes of each variant, interleaved:

* **plain**: ``MODELSIGN_POLICY`` unset, so modelsign is not even imported;
* **hooked**: ``MODELSIGN_POLICY`` names a policy trusting the signing key, so
  the interpreter enforces from start-up and ``torch.load`` verifies first.

Each child times only the ``torch.load`` call (after ``import torch``), touches
one element of every tensor, and reports ``ru_maxrss``. The parent times the
whole process (start-up and imports included) and samples the child's private
memory: anonymous RSS plus the bytes of any memfd the child holds open or
mapped. ``ru_maxrss`` does not count a memfd's pages until they are mapped and
touched, so it alone would hide the copy the hook makes of a large file.

The page cache is warmed first (every file read once), and one untimed round of
every case runs first, so every figure is warm-cache. Medians are reported.

Run from the repository root::

    .venv/bin/python benchmarks/hook_overhead.py            # 1 GiB and 100 MiB, 5 repeats
    .venv/bin/python benchmarks/hook_overhead.py --quick    # 64 MiB, 2 repeats
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import _common
from _common import GIB, MIB, human, load_average, machine, warm_cache

#: The goals: hooked / plain, per size and mode.
GOAL_TIME = 1.6
GOAL_RSS = 1.1

MODES = ("path", "mmap")
VARIANTS = ("plain", "hooked")
SAMPLE_INTERVAL = 0.01  # seconds between two samples of a child's memory

# Writes a state_dict of N float32 tensors totalling about SIZE bytes to PATH.
BUILD = r"""
import sys, torch
path, size, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
numel = size // 4
generator = torch.Generator().manual_seed(0)
state = {}
for i in range(count):
    n = numel // count + (numel % count if i == count - 1 else 0)
    state[f"layer{i:02d}.weight"] = torch.rand(n, generator=generator, dtype=torch.float32)
torch.save(state, path)
"""

# One measured load. Prints one JSON line.
CHILD = r"""
import json, resource, sys, time
import torch
path, mmap = sys.argv[1], sys.argv[2] == "mmap"
hooks = sys.modules.get("modelsign.hooks")
code = getattr(torch.load, "__code__", None)
hooked = bool(hooks is not None and hooks.installed() and code is not None
              and "modelsign" in code.co_filename)
start = time.perf_counter()
state = torch.load(path, mmap=mmap)
load_s = time.perf_counter() - start
touched = sum(float(t.reshape(-1)[0]) for t in state.values())
rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"load_s": load_s, "rss_kib": rss_kib, "tensors": len(state),
                  "touched": touched, "hooked": hooked}), flush=True)
"""


def parse_size(text: str) -> int:
    return _common.parse_size(text, MIB)


def parse_sizes(text: str) -> list[int]:
    return [parse_size(part) for part in text.split(",") if part.strip()]


# --- the child's memory, seen from the parent -----------------------------------------


def _rss_anon(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    return 0


def _memfds(pid: int) -> dict[int, int]:
    """inode -> bytes of every memfd the process holds open or has mapped."""
    found: dict[int, int] = {}
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        fds = []
    for fd in fds:
        link = f"/proc/{pid}/fd/{fd}"
        try:
            if not os.readlink(link).startswith("/memfd:"):
                continue
            st = os.stat(link)
        except OSError:  # closed in the meantime
            continue
        found[st.st_ino] = max(found.get(st.st_ino, 0), st.st_blocks * 512)
    mapped: dict[int, int] = {}
    try:
        with open(f"/proc/{pid}/maps") as f:
            for line in f:
                if "/memfd:" not in line:
                    continue
                fields = line.split()
                start, end = (int(x, 16) for x in fields[0].split("-"))
                inode = int(fields[4])
                mapped[inode] = mapped.get(inode, 0) + end - start
    except OSError:
        pass
    for inode, size in mapped.items():
        found[inode] = max(found.get(inode, 0), size)
    return found


def private_bytes(pid: int) -> int | None:
    """Anonymous RSS plus memfd bytes: memory only this process holds, which the
    kernel cannot drop as clean page cache. None once the process is gone."""
    try:
        anon = _rss_anon(pid)
    except (OSError, ValueError):
        return None
    return anon + sum(_memfds(pid).values())


# --- runs ---------------------------------------------------------------------------------


@dataclass
class Run:
    load_s: float
    process_s: float
    rss_kib: int
    private_peak: int


@dataclass
class Cell:
    """The runs of one (size, mode, variant)."""

    runs: list[Run] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def median(self, attr: str) -> float | None:
        values = [getattr(r, attr) for r in self.runs]
        return statistics.median(values) if values else None

    def spread(self, attr: str) -> tuple[float, float] | None:
        values = [getattr(r, attr) for r in self.runs]
        return (min(values), max(values)) if values else None


def child_env(policy: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MODELSIGN_POLICY"}
    if policy is not None:
        env["MODELSIGN_POLICY"] = str(policy)
    return env


def run_child(path: Path, mode: str, policy: Path | None) -> Run:
    """One fresh process loading ``path``; raises RuntimeError on failure."""
    # Files, not pipes: a child writing much to stderr cannot block while we poll.
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path), mode],
            env=child_env(policy),
            stdout=out,
            stderr=err,
        )
        peak = 0
        while True:
            sample = private_bytes(proc.pid)
            if sample is not None:
                peak = max(peak, sample)
            try:
                proc.wait(timeout=SAMPLE_INTERVAL)
                break
            except subprocess.TimeoutExpired:
                continue
        process_s = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    variant = "hooked" if policy is not None else "plain"
    if proc.returncode != 0:
        raise RuntimeError(
            f"{variant} {mode} load of {path} exited with {proc.returncode}:\n{stderr}"
        )
    result = json.loads(stdout.strip().splitlines()[-1])
    if result["hooked"] != (policy is not None):
        raise RuntimeError(f"{variant} child: torch.load hooked = {result['hooked']}")
    return Run(result["load_s"], process_s, result["rss_kib"], peak)


def build_model(root: Path, size: int, tensors: int, key: Path) -> Path:
    import modelsign

    model_dir = root / f"model-{size}"
    model_dir.mkdir()
    path = model_dir / "model.pt"
    subprocess.run(
        [sys.executable, "-c", BUILD, str(path), str(size), str(tensors)],
        env=child_env(None),
        check=True,
    )
    modelsign.sign(model_dir, key)
    return path


# --- report -------------------------------------------------------------------------------


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{suffix}"


def verdict(r: float | None, goal: float) -> str:
    if r is None:
        return "n/a"
    return "met" if r <= goal else "MISSED"


def report(sizes: list[int], cells: dict[tuple[int, str, str], Cell]) -> list[str]:
    """Print both tables; return the goals missed."""
    missed = []
    header = (
        f"{'size':>10} {'mode':<5} {'plain s':>8} {'hooked s':>9} {'ratio':>7} "
        f"{'goal':<14} {'plain min-max':>14} {'hooked min-max':>15} "
        f"{'proc plain s':>12} {'proc hooked s':>13}"
    )
    print()
    print("Wall time of torch.load alone (median; min-max over the runs), and of the whole process")
    print(header)
    print("-" * len(header))
    for size in sizes:
        for mode in MODES:
            plain, hooked = cells[size, mode, "plain"], cells[size, mode, "hooked"]
            r = ratio(hooked.median("load_s"), plain.median("load_s"))
            v = verdict(r, GOAL_TIME)
            if v == "MISSED":
                missed.append(f"time {human(size)} {mode}: {r:.2f}x > {GOAL_TIME}x")
            ps, hs = plain.spread("load_s"), hooked.spread("load_s")
            print(
                f"{human(size):>10} {mode:<5} {fmt(plain.median('load_s'), '8.3f')} "
                f"{fmt(hooked.median('load_s'), '9.3f')} {fmt(r, '6.2f', 'x'):>7} "
                f"{f'<={GOAL_TIME}x {v}':<14} "
                f"{'n/a' if ps is None else f'{ps[0]:.3f}-{ps[1]:.3f}':>14} "
                f"{'n/a' if hs is None else f'{hs[0]:.3f}-{hs[1]:.3f}':>15} "
                f"{fmt(plain.median('process_s'), '12.2f')} "
                f"{fmt(hooked.median('process_s'), '13.2f')}"
            )
    header = (
        f"{'size':>10} {'mode':<5} {'RSS plain':>10} {'RSS hooked':>11} {'ratio':>7} "
        f"{'goal':<14} {'priv plain':>11} {'priv hooked':>12} {'ratio':>7}"
    )
    print()
    print("Memory, MiB (median): peak RSS (ru_maxrss), and peak private memory (anon RSS + memfd)")
    print(header)
    print("-" * len(header))
    for size in sizes:
        for mode in MODES:
            plain, hooked = cells[size, mode, "plain"], cells[size, mode, "hooked"]
            rss_p, rss_h = plain.median("rss_kib"), hooked.median("rss_kib")
            priv_p, priv_h = plain.median("private_peak"), hooked.median("private_peak")
            r = ratio(rss_h, rss_p)
            v = verdict(r, GOAL_RSS)
            if v == "MISSED":
                missed.append(f"RSS {human(size)} {mode}: {r:.3f}x > {GOAL_RSS}x")
            print(
                f"{human(size):>10} {mode:<5} "
                f"{fmt(None if rss_p is None else rss_p / 1024, '10.0f')} "
                f"{fmt(None if rss_h is None else rss_h / 1024, '11.0f')} "
                f"{fmt(r, '6.3f', 'x'):>7} {f'<={GOAL_RSS}x {v}':<14} "
                f"{fmt(None if priv_p is None else priv_p / MIB, '11.0f')} "
                f"{fmt(None if priv_h is None else priv_h / MIB, '12.0f')} "
                f"{fmt(ratio(priv_h, priv_p), '6.3f', 'x'):>7}"
            )
    return missed


def source_state() -> str:
    """The commit of the checkout this script is in, and whether it has changes."""
    repo = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"{head}{' + uncommitted changes' if dirty else ''}"


# --- main -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        default=None,
        help="model sizes, comma-separated: 1G,100M (binary units) "
        "[default: 1G,100M, or 64M with --quick]",
    )
    parser.add_argument(
        "--size", type=parse_size, default=None, help="one model size; same as --sizes SIZE"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="fresh processes per variant and case [default: 5, 2 with --quick]",
    )
    parser.add_argument("--tensors", type=int, default=16, help="tensors per state_dict [16]")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 64 MiB, 2 repeats")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where to create the (removed afterwards) temporary directory [default: $TMPDIR]",
    )
    args = parser.parse_args(argv)
    if args.size is not None and args.sizes is not None:
        parser.error("give --size or --sizes, not both")
    sizes = (
        [args.size]
        if args.size is not None
        else args.sizes or ([64 * MIB] if args.quick else [GIB, 100 * MIB])
    )
    repeat = args.repeat if args.repeat is not None else (2 if args.quick else 5)
    if repeat < 1 or args.tensors < 1:
        parser.error("--repeat and --tensors must be at least 1")
    if not sys.platform.startswith("linux"):
        parser.error("this benchmark reads /proc and ru_maxrss in KiB: Linux only")

    import modelsign.keys

    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="modelsign-hook-bench-", dir=args.workdir))
    try:
        print(f"machine:  {machine()}")
        print(f"versions: {_common.versions('modelsign', 'torch')}")
        print(f"source:   {source_state()}")
        print(f"workdir:  {root}")
        print(f"load average at start: {load_average()}")
        _, pub = modelsign.keys.write_keypair(
            modelsign.keys.generate("ed25519"), root / "bench", None
        )
        policy = root / "policy.toml"
        policy.write_text(f"[trust]\nkeys = [{json.dumps(str(pub))}]\n")

        models: list[tuple[int, Path]] = []
        for size in sizes:
            print(f"building and signing a {human(size)} model ({args.tensors} tensors) ...")
            start = time.perf_counter()
            models.append((size, build_model(root, size, args.tensors, root / "bench.key")))
            print(f"  {human(models[-1][1].stat().st_size)} in {time.perf_counter() - start:.1f} s")
        print("warming the page cache ...", flush=True)
        warm_cache([p for _, p in models])

        cells = {
            (size, mode, variant): Cell()
            for size in sizes
            for mode in MODES
            for variant in VARIANTS
        }
        for r in range(-1, repeat):  # round -1 warms up: it is not counted
            label = "warm-up" if r < 0 else f"run {r + 1}/{repeat}"
            for size, path in models:
                for mode in MODES:
                    line = [f"{label:<9} {human(size):>10} {mode:<5}"]
                    for variant in VARIANTS:
                        cell = cells[size, mode, variant]
                        try:
                            run = run_child(path, mode, policy if variant == "hooked" else None)
                        except (RuntimeError, ValueError, KeyError) as e:
                            cell.errors.append(str(e))
                            line.append(f"{variant} ERROR")
                            continue
                        if r >= 0:
                            cell.runs.append(run)
                        line.append(
                            f"{variant} {run.load_s:.3f} s {run.rss_kib / 1024:.0f} MiB RSS "
                            f"{run.private_peak / MIB:.0f} MiB priv"
                        )
                    print("  ".join(line), flush=True)

        print()
        print(
            f"Warm-cache figures, median of {repeat} fresh process{'es' if repeat != 1 else ''} "
            f"per cell; {args.tensors} float32 tensors; Ed25519 bundle, SHA-256."
        )
        print(
            f"Goals: hooked/plain torch.load wall time <= {GOAL_TIME}x; "
            f"peak RSS (ru_maxrss) <= {GOAL_RSS}x."
        )
        print(f"load average at end: {load_average()} (other work on the machine skews figures)")
        missed = report(sizes, cells)
        print()
        if missed:
            print("Goals missed: " + "; ".join(missed))
        else:
            print("All goals met.")
        errors = [e for cell in cells.values() for e in cell.errors]
        if errors:
            print()
            print("ERRORS")
            for e in errors:
                print(e)
            return 1
        return 0
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
