"""Compare modelsign with model_signing in fresh processes, against the project's goals.

Three models, each signed and verified with ECDSA P-256 keys:

* (a) ``--size`` bytes (default 1 GiB) in 4 files;
* (b) one file of ``--size`` bytes;
* (c) a tokenizer-like tree of 2,000 small files (100 B to 200 KiB, about
  50 MiB in all, nested directories, a fixed seed).

Every timed run is a fresh process, timed from this process around
``subprocess.run``:

* modelsign through its CLI (``modelsign sign/verify ... --quiet``) and through
  its API (``python -c`` importing modelsign and calling ``modelsign.sign`` /
  ``modelsign.verify``);
* model_signing (the OpenSSF reference, 1.1.1) through its CLI
  (``model_signing sign key`` / ``verify key``) and its API (``python -c`` with
  ``signing.Config().use_elliptic_key_signer(...)`` and
  ``verifying.Config().use_elliptic_key_verifier(...)``);
* the "hashlib limit": ``python -c`` hashing every file with SHA-256, one thread
  per core, ``readinto`` a reused 16 MiB buffer.

It also times start-up: ``modelsign --help``, ``model_signing --help`` and the
interpreter floor, ``python -c pass``.

The page cache is warmed first and one untimed round of everything runs before
the timed ones. The timed rounds are interleaved across tools. Medians (with min
and max) are reported, with modelsign / model_signing ratios, API against API and
CLI against CLI, and each goal is marked met or MISSED:

* modelsign <= 0.6x model_signing wall time on (a) and (c), <= 0.8x on (b);
* ``modelsign --help`` <= 0.1 s.

Run from the repository root::

    .venv/bin/python benchmarks/compare.py              # 1 GiB, 5 repeats
    .venv/bin/python benchmarks/compare.py --quick      # 64 MiB, 2 repeats: a smoke run
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import _common
from _common import GIB, MIB, human, load_average, machine, model_files, warm_cache
from hook_overhead import source_state
from sign_verify import BLOCK, DIR_FILES, find_cli, write_keys, write_random_file

BENCH_DIR = Path(__file__).resolve().parent

#: The goals: modelsign / model_signing median wall time, per case; start-up in seconds.
GOALS = {"a": 0.6, "b": 0.8, "c": 0.6}
GOAL_STARTUP = 0.1

CASES = ("a", "b", "c")
ONLY_CHOICES = (*CASES, "startup")
TOOLS = ("modelsign", "model_signing")
VIAS = ("API", "CLI")

# (c): the tokenizer-like tree.
SMALL_FILES = 2000
SMALL_MIN = 100
SMALL_MAX = 200 * 1024
SEED = 20251125

# Each child prints one line "PHASES <import s> <work s>": its own view of where
# the time went. The parent's wall time also counts interpreter start-up and exit.
MODELSIGN_API = r"""
import sys, time
t0 = time.perf_counter()
action, model, key, sig = sys.argv[1:5]
import modelsign
if action == "sign":
    import modelsign.signing
else:
    import modelsign.verifying
t1 = time.perf_counter()
if action == "sign":
    modelsign.sign(model, key, signature=sig)
else:
    modelsign.verify(model, [key], signature=sig)
t2 = time.perf_counter()
print("PHASES", t1 - t0, t2 - t1)
"""

REFERENCE_API = r"""
import sys, time
t0 = time.perf_counter()
action, model, key, sig = sys.argv[1:5]
from pathlib import Path
if action == "sign":
    from model_signing import signing
else:
    from model_signing import verifying
t1 = time.perf_counter()
if action == "sign":
    signing.Config().use_elliptic_key_signer(private_key=Path(key)).sign(Path(model), Path(sig))
else:
    verifying.Config().use_elliptic_key_verifier(public_key=Path(key)).verify(
        Path(model), Path(sig)
    )
t2 = time.perf_counter()
print("PHASES", t1 - t0, t2 - t1)
"""

HASHLIB = r"""
import sys, time
t0 = time.perf_counter()
sys.path.insert(0, sys.argv[1])
import _common
from pathlib import Path
t1 = time.perf_counter()
_common.sha256_files(_common.model_files(Path(sys.argv[2])), int(sys.argv[3]))
t2 = time.perf_counter()
print("PHASES", t1 - t0, t2 - t1)
"""


def parse_size(text: str) -> int:
    return _common.parse_size(text, DIR_FILES)


def parse_only(text: str) -> list[str]:
    parts = [p.strip().lower() for p in text.split(",") if p.strip()]
    bad = [p for p in parts if p not in ONLY_CHOICES]
    if bad or not parts:
        raise argparse.ArgumentTypeError(
            f"--only takes a comma-separated subset of {','.join(ONLY_CHOICES)}, not {text!r}"
        )
    return [c for c in ONLY_CHOICES if c in parts]


# --- the models ---------------------------------------------------------------------------


def build_dir(root: Path, size: int) -> Path:
    """(a): ``size`` bytes in 4 files, as sign_verify.py builds them."""
    block = bytearray(os.urandom(min(BLOCK, size)))
    model = root / "model-dir"
    model.mkdir()
    base, rest = divmod(size, DIR_FILES)
    for i in range(DIR_FILES):
        path = model / f"model-{i + 1:05d}-of-{DIR_FILES:05d}.bin"
        write_random_file(path, base + (rest if i == DIR_FILES - 1 else 0), block, i)
    return model


def build_single(root: Path, size: int) -> Path:
    """(b): one file of ``size`` bytes."""
    block = bytearray(os.urandom(min(BLOCK, size)))
    path = root / "model-single.bin"
    write_random_file(path, size, block, DIR_FILES)
    return path


def tokenizer_layout(count: int, seed: int = SEED) -> Iterator[tuple[str, int]]:
    """(relative path, size) of the tokenizer-like tree: ``count`` files, deterministic.

    Five top-level files (config.json, tokenizer.json, ...), then the rest spread
    round-robin over 16 ``locale-NN`` directories, each with ``vocab``, ``merges``
    and ``added_tokens`` subdirectories (48 leaf directories, depth 2). Sizes are
    log-uniform between 100 B and 200 KiB: mostly a few KiB, some near 200 KiB,
    about 26 KiB on average (about 50 MiB for 2,000 files).
    """
    rng = random.Random(seed)
    lo, hi = math.log(SMALL_MIN), math.log(SMALL_MAX)

    def size() -> int:
        return int(math.exp(rng.uniform(lo, hi)))

    top = (
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "generation_config.json",
    )
    for name in top[:count]:
        yield name, size()
    leaves = [
        (f"locale-{i:02d}/{kind}", ext)
        for i in range(16)
        for kind, ext in (("vocab", "json"), ("merges", "txt"), ("added_tokens", "vocab"))
    ]
    for n in range(max(0, count - len(top))):
        leaf, ext = leaves[n % len(leaves)]
        yield f"{leaf}/part-{n // len(leaves):04d}.{ext}", size()


def build_tree(root: Path, count: int) -> Path:
    """(c): the tokenizer-like tree; the content is seeded pseudo-random bytes."""
    model = root / "tokenizer-tree"
    rng = random.Random(SEED + 1)
    for rel, size in tokenizer_layout(count):
        path = model / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(size))
    return model


# --- the runs -------------------------------------------------------------------------------


def child_env(pycache: Path | None) -> dict[str, str]:
    """The environment of every child: no enforcement at start-up, no colours, and
    bytecode cached under ``pycache`` (None: as this process has it)."""
    env = {k: v for k, v in os.environ.items() if k != "MODELSIGN_POLICY"}
    env["NO_COLOR"] = "1"
    if pycache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


@dataclass
class Cell:
    """One measured command: every run is a fresh process."""

    case: str  # "a", "b", "c" or "startup"
    action: str  # "sign", "verify", "hash" or "start-up"
    tool: str  # "modelsign", "model_signing", "hashlib" or "python"
    via: str  # "API", "CLI", "threads", "--help" or "-c pass"
    argv: list[str]
    env: dict[str, str]
    remove_first: Path | None = None  # removed (untimed) before each run: a signature
    times: list[float] = field(default_factory=list)
    imports: list[float] = field(default_factory=list)
    works: list[float] = field(default_factory=list)
    error: str | None = None

    def run(self, *, timed: bool = True) -> None:
        if self.error is not None:
            return  # it failed once: do not repeat the failure
        if self.remove_first is not None:
            self.remove_first.unlink(missing_ok=True)
        start = time.perf_counter()
        try:
            proc = subprocess.run(
                self.argv, capture_output=True, text=True, env=self.env, check=False
            )
        except OSError as e:
            self.error = f"cannot run {self.argv[0]}: {e}"
            return
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            self.error = (
                f"exit {proc.returncode}: {' '.join(self.argv)}\n"
                f"stdout: {proc.stdout.strip()}\nstderr: {proc.stderr.strip()}"
            )
            return
        if not timed:
            return
        self.times.append(elapsed)
        for line in proc.stdout.splitlines():
            if line.startswith("PHASES "):
                imp, work = (float(x) for x in line.split()[1:3])
                self.imports.append(imp)
                self.works.append(work)

    @property
    def label(self) -> str:
        return f"({self.case}) {self.action} {self.tool} {self.via}"

    @staticmethod
    def _median(values: list[float]) -> float | None:
        return statistics.median(values) if values else None

    @property
    def median(self) -> float | None:
        return None if self.error is not None else self._median(self.times)

    @property
    def median_import(self) -> float | None:
        return None if self.error is not None else self._median(self.imports)

    @property
    def median_work(self) -> float | None:
        return None if self.error is not None else self._median(self.works)

    def as_json(self) -> dict[str, object]:
        return {
            "case": self.case,
            "action": self.action,
            "tool": self.tool,
            "via": self.via,
            "argv": self.argv,
            "times_s": self.times,
            "median_s": self.median,
            "min_s": min(self.times) if self.times else None,
            "max_s": max(self.times) if self.times else None,
            "child_import_s": self.imports,
            "child_work_s": self.works,
            "error": self.error,
        }


@dataclass
class Case:
    key: str
    title: str
    model: Path
    files: list[Path]
    size: int
    cells: list[Cell] = field(default_factory=list)

    def cell(self, action: str, tool: str, via: str) -> Cell:
        for c in self.cells:
            if (c.action, c.tool, c.via) == (action, tool, via):
                return c
        raise KeyError((action, tool, via))

    def round_cells(self, index: int) -> list[Cell]:
        """The cells of one round. Odd rounds put model_signing first in each pair."""
        tools = TOOLS if index % 2 == 0 else TOOLS[::-1]
        out = [self.cell("hash", "hashlib", "threads")]
        for action in ("sign", "verify"):
            for via in VIAS:
                out.extend(self.cell(action, tool, via) for tool in tools)
        return out


def make_cells(case: Case, env: dict[str, str], *, key: Path, pub: Path, sigs: Path) -> None:
    """Every command of one case. Signatures go to ``sigs``, outside the model."""
    py = sys.executable
    ms_cli, ref_cli = find_cli("modelsign"), find_cli("model_signing")
    m, k, p = str(case.model), str(key), str(pub)
    cores = os.cpu_count() or 1
    cells = [
        Cell(
            case.key,
            "hash",
            "hashlib",
            "threads",
            [py, "-c", HASHLIB, str(BENCH_DIR), m, str(cores)],
            env,
        )
    ]
    for tool in TOOLS:
        for via in VIAS:
            sig = sigs / f"{case.key}-{tool}-{via.lower()}.sig"
            s = str(sig)
            if (tool, via) == ("modelsign", "CLI"):
                sign = [ms_cli, "sign", m, "--key", k, "--signature", s, "--quiet"]
                verify = [ms_cli, "verify", m, "--key", p, "--signature", s, "--quiet"]
            elif (tool, via) == ("modelsign", "API"):
                sign = [py, "-c", MODELSIGN_API, "sign", m, k, s]
                verify = [py, "-c", MODELSIGN_API, "verify", m, p, s]
            elif via == "CLI":
                sign = [ref_cli, "sign", "key", m, "--private_key", k, "--signature", s]
                verify = [ref_cli, "verify", "key", m, "--public_key", p, "--signature", s]
            else:
                sign = [py, "-c", REFERENCE_API, "sign", m, k, s]
                verify = [py, "-c", REFERENCE_API, "verify", m, p, s]
            cells.append(Cell(case.key, "sign", tool, via, sign, env, remove_first=sig))
            cells.append(Cell(case.key, "verify", tool, via, verify, env))
    case.cells = cells


def startup_cells(env: dict[str, str]) -> list[Cell]:
    commands = [
        ("python", "-c pass", [sys.executable, "-c", "pass"]),
        ("modelsign", "--help", [find_cli("modelsign"), "--help"]),
        ("model_signing", "--help", [find_cli("model_signing"), "--help"]),
    ]
    return [Cell("startup", "start-up", tool, via, argv, env) for tool, via, argv in commands]


# --- the report -------------------------------------------------------------------------------


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def verdict(value: float | None, goal: float) -> str:
    if value is None:
        return "n/a"
    return "met" if value <= goal else "MISSED"


def spread(cell: Cell) -> tuple[str, str]:
    if cell.error is not None or not cell.times:
        return "-", "-"
    return f"{min(cell.times):.3f}", f"{max(cell.times):.3f}"


@dataclass
class Goal:
    name: str
    value: float | None
    limit: float
    unit: str  # "x" or " s"

    @property
    def verdict(self) -> str:
        return verdict(self.value, self.limit)

    def line(self) -> str:
        spec = ".2f" if self.unit == "x" else ".3f"
        return (
            f"  {self.name:<34} {fmt(self.value, spec, self.unit):>8}  "
            f"<= {self.limit:g}{self.unit}  {self.verdict}"
        )


def report_case(case: Case) -> list[Goal]:
    """Print one case's table; return its goals (modelsign / model_signing per action, via)."""
    limit = case.cell("hash", "hashlib", "threads").median
    goal = GOALS[case.key]
    print()
    files = f"{len(case.files)} file{'s' if len(case.files) != 1 else ''}"
    print(f"{case.title}: {files}, {human(case.size)}")
    header = (
        f"  {'action':<7} {'tool':<14} {'via':<8} {'median s':>9} {'min s':>7} {'max s':>7} "
        f"{'import s':>9} {'work s':>7} {'ms/ref':>7} {'/hashlib':>8}  goal"
    )
    print(header)
    print("  " + "-" * (len(header) - 2))
    goals = []
    for action in ("hash", "sign", "verify"):
        for c in case.cells:
            if c.action != action:
                continue
            lo, hi = spread(c)
            vs_ref = vs_limit = goal_text = ""
            if c.tool == "modelsign":
                r = ratio(c.median, case.cell(action, "model_signing", c.via).median)
                vs_ref = fmt(r, ".2f", "x")
                goal_text = f"<={goal:g}x {verdict(r, goal)}"
                goals.append(Goal(f"({case.key}) {action} {c.via} ms/ref", r, goal, "x"))
            if c.tool != "hashlib":
                vs_limit = fmt(ratio(c.median, limit), ".2f", "x")
            median = "ERROR" if c.error is not None else fmt(c.median, ".3f")
            row = (
                f"  {c.action:<7} {c.tool:<14} {c.via:<8} {median:>9} {lo:>7} {hi:>7} "
                f"{fmt(c.median_import, '.3f'):>9} {fmt(c.median_work, '.3f'):>7} "
                f"{vs_ref:>7} {vs_limit:>8}  {goal_text}"
            )
            print(row.rstrip())
    return goals


def report_startup(cells: list[Cell]) -> list[Goal]:
    print()
    print("Start-up: fresh processes, nothing but the interpreter or --help")
    header = f"  {'command':<28} {'median s':>9} {'min s':>7} {'max s':>7} {'-python':>8}  goal"
    print(header)
    print("  " + "-" * (len(header) - 2))
    floor = cells[0].median
    goals = []
    for c in cells:
        lo, hi = spread(c)
        extra = (
            ""
            if c is cells[0]
            else fmt(None if c.median is None else c.median - (floor or 0), ".3f")
        )
        goal_text = ""
        if c.tool == "modelsign":
            goal_text = f"<={GOAL_STARTUP:g} s {verdict(c.median, GOAL_STARTUP)}"
            goals.append(Goal("modelsign --help", c.median, GOAL_STARTUP, " s"))
        name = "python -c pass" if c.tool == "python" else f"{c.tool} --help"
        median = "ERROR" if c.error is not None else fmt(c.median, ".3f")
        print(f"  {name:<28} {median:>9} {lo:>7} {hi:>7} {extra:>8}  {goal_text}".rstrip())
    return goals


# --- main ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--size",
        type=parse_size,
        default=None,
        help="bytes of models (a) and (b): 1G, 64M, ... (binary units) "
        "[default: 1G, or 64M with --quick]",
    )
    parser.add_argument(
        "--files",
        type=int,
        default=SMALL_FILES,
        help=f"files in model (c), the tokenizer-like tree [default: {SMALL_FILES}]",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="timed fresh processes per command [default: 5, 2 with --quick]",
    )
    parser.add_argument(
        "--startup-repeat",
        type=int,
        default=None,
        help="fresh processes per start-up command [default: 10, 3 with --quick]",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: 64 MiB, 2 repeats (3 for start-up)"
    )
    parser.add_argument(
        "--only",
        type=parse_only,
        default=list(ONLY_CHOICES),
        help="what to run, comma-separated: a,b,c,startup [default: all]",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where to create the temporary directory [default: $TMPDIR]",
    )
    parser.add_argument(
        "--keep-dir",
        action="store_true",
        help="keep the temporary directory (models, keys, signatures) and print its path",
    )
    parser.add_argument(
        "--inherit-bytecode-env",
        action="store_true",
        help="pass PYTHONDONTWRITEBYTECODE and PYTHONPYCACHEPREFIX to the children as they "
        "are [default: children cache bytecode under the work directory, so that no tool "
        "recompiles its source in every process]",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        metavar="FILE",
        help="also write the results as JSON to FILE ('-' for standard output, after the tables)",
    )
    args = parser.parse_args(argv)
    size = args.size if args.size is not None else (64 * MIB if args.quick else GIB)
    repeat = args.repeat if args.repeat is not None else (2 if args.quick else 5)
    startup_repeat = (
        args.startup_repeat if args.startup_repeat is not None else (3 if args.quick else 10)
    )
    if repeat < 1 or startup_repeat < 1 or args.files < 1:
        parser.error("--repeat, --startup-repeat and --files must be at least 1")
    wanted = args.only
    find_cli("modelsign")  # exits with a message if a command is missing
    find_cli("model_signing")

    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="modelsign-compare-", dir=args.workdir))
    try:
        return run(args, root, wanted, size, repeat, startup_repeat)
    finally:
        if args.keep_dir:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


def run(
    args: argparse.Namespace,
    root: Path,
    wanted: list[str],
    size: int,
    repeat: int,
    startup_repeat: int,
) -> int:
    load_start = load_average()
    print(f"machine:  {machine()}")
    print(f"versions: {_common.versions('modelsign', 'model-signing')}")
    print(f"source:   {source_state()}")
    print(f"workdir:  {root}")
    print(f"load average at start: {load_start}")
    pycache = None if args.inherit_bytecode_env else root / "pycache"
    env = child_env(pycache)
    if pycache is not None:
        print(f"bytecode: children cache it in {pycache} (PYTHONPYCACHEPREFIX)")
    else:
        print(
            "bytecode: inherited; PYTHONDONTWRITEBYTECODE="
            f"{os.environ.get('PYTHONDONTWRITEBYTECODE', '(unset)')}, PYTHONPYCACHEPREFIX="
            f"{os.environ.get('PYTHONPYCACHEPREFIX', '(unset)')}"
        )

    cases: list[Case] = []
    if any(c in wanted for c in CASES):
        print("building models ...", flush=True)
        start = time.perf_counter()
        key, pub = write_keys(root)
        sigs = root / "signatures"  # outside every model: both tools hash the same files
        sigs.mkdir()
        if "a" in wanted:
            model = build_dir(root, size)
            cases.append(Case("a", "(a) a directory", model, [], size))
        if "b" in wanted:
            model = build_single(root, size)
            cases.append(Case("b", "(b) one file", model, [], size))
        if "c" in wanted:
            model = build_tree(root, args.files)
            cases.append(Case("c", "(c) tokenizer-like tree", model, [], 0))
        for case in cases:
            case.files = model_files(case.model)
            case.size = sum(f.stat().st_size for f in case.files)
            make_cells(case, env, key=key, pub=pub, sigs=sigs)
        print(f"built in {time.perf_counter() - start:.1f} s; warming the page cache ...")
        warm_cache([f for case in cases for f in case.files])

    startup = startup_cells(env) if "startup" in wanted else []
    print("untimed warm-up round ...", flush=True)
    for c in startup:
        c.run(timed=False)
    for case in cases:
        for c in case.round_cells(0):
            c.run(timed=False)

    for r in range(startup_repeat if startup else 0):
        for c in startup if r % 2 == 0 else startup[::-1]:
            c.run()
    for r in range(repeat if cases else 0):
        print(f"run {r + 1}/{repeat} ...", flush=True)
        for case in cases:
            for c in case.round_cells(r):
                c.run()
    load_end = load_average()

    print()
    print(
        f"Wall time of fresh processes, timed by the parent; warm page cache; median of "
        f"{repeat} run{'s' if repeat != 1 else ''} (start-up: {startup_repeat}). "
        "SHA-256, files serialization, ECDSA P-256."
    )
    print(
        f"hashlib = sha256 on {os.cpu_count()} threads (at most one per file), readinto a "
        "16 MiB buffer, in a fresh process."
    )
    print(
        "ms/ref = modelsign / model_signing (API vs API, CLI vs CLI); /hashlib = time / "
        "hashlib time."
    )
    print(
        "import s, work s = the child's own timing of its imports and of the call (API and "
        "hashlib); the rest of the wall time is interpreter start-up and exit."
    )
    print(f"load average at end: {load_end} (other work on the machine skews figures)")

    goals: list[Goal] = []
    if startup:
        goals += report_startup(startup)
    for case in cases:
        goals += report_case(case)
    if goals:
        print()
        print("Goals")
        for g in goals:
            print(g.line())
        missed = sum(g.verdict == "MISSED" for g in goals)
        print(f"  {len(goals) - missed} of {len(goals)} met")

    all_cells = startup + [c for case in cases for c in case.cells]
    if args.json is not None:
        data = {
            "machine": machine(),
            "versions": _common.versions("modelsign", "model-signing"),
            "source": source_state(),
            "load_average": {"start": load_start, "end": load_end},
            "repeat": repeat,
            "startup_repeat": startup_repeat,
            "bytecode_cache": None if pycache is None else str(pycache),
            "cases": {
                case.key: {
                    "title": case.title,
                    "files": len(case.files),
                    "bytes": case.size,
                    "cells": [c.as_json() for c in case.cells],
                }
                for case in cases
            },
            "startup": [c.as_json() for c in startup],
            "goals": [
                {"name": g.name, "value": g.value, "limit": g.limit, "verdict": g.verdict}
                for g in goals
            ],
        }
        text = json.dumps(data, indent=2)
        if str(args.json) == "-":
            print(text)
        else:
            args.json.write_text(text + "\n")
            print(f"wrote {args.json}")

    errors = [c for c in all_cells if c.error is not None]
    if errors:
        print()
        print("ERRORS")
        for c in errors:
            print(f"--- {c.label}:")
            print(c.error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
