"""modelsign's hashing engine against the hashlib limit, in one process.

The issue's bar: "sha256 of many files must reach at least 90 % of what hashlib
reaches on the same bytes with one thread per core". This measures exactly the
engine, ``modelsign._hashing.hash_files`` (archive checks included, as when
verifying; the file list made beforehand, as for hashlib, and also with it),
against ``_common.sha256_files`` (one thread per core, ``readinto``
a reused 16 MiB buffer), one after the other, on the models of ``compare.py``:
(a) ``--size`` bytes in 4 files, (b) one file, (c) the 2,000-file tokenizer
tree. It also times sha256 shards (``--shard-size``, default 64 MiB) and blake3
on (b), where they spread one file over the cores. Warm cache; median of
``--repeat`` runs.

Every digest the engine returns is compared with hashlib's (blake3: the blake3
package's) over the same bytes, outside the timing. A run that raises, or whose
digests differ, has no figure: its row says ERROR or DIGESTS DIFFER, its goal is
FAILED (never met), the differences are listed at the end and the exit status
is 1. The goal, "sha256 files" at >= 0.90 of hashlib on (a) and (c), is met or
MISSED otherwise.

    .venv/bin/python benchmarks/hash_engine.py            # 1 GiB, 5 repeats
    .venv/bin/python benchmarks/hash_engine.py --quick    # 64 MiB, 2 repeats
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import traceback
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

import _common
from _common import GIB, MIB, load_average, machine, model_files, sha256_files, warm_cache
from compare import build_dir, build_single, build_tree

from modelsign._enumerating import ModelFile, enumerate_model
from modelsign._hashing import FileDigest, hash_files

#: "of hashlib" (hashlib's time / the engine's) that "sha256 files" must reach.
GOAL = 0.90
#: The models the goal is about: many files.
GOAL_MODELS = ("(a)", "(c)")

Digests = dict[str, str]
T = TypeVar("T")


class RunFailed(Exception):
    """A benchmarked run raised, or returned digests other than the reference's."""


def timed(fn: Callable[[], T], repeat: int) -> tuple[float, T]:
    """The median time of ``repeat`` calls, and what the last one returned."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def flat(result: dict[str, FileDigest]) -> Digests:
    """name -> digest, a shard's name being ``name:start:end``."""
    out: Digests = {}
    for name, d in result.items():
        shards, digest = d.fingerprint.shards, d.fingerprint.digest
        if shards is None:
            assert digest is not None
            out[name] = digest
        else:
            out.update({f"{name}:{s.start}:{s.end}": s.digest for s in shards})
    return out


def engine(files: tuple[ModelFile, ...], hash_type: str, shard_size: int | None) -> Digests:
    """The engine alone: the file list is made outside the timing, as for hashlib."""
    return flat(hash_files(files, hash_type, display=lambda f: f.name, shard_size=shard_size))


def walk_and_hash(model: Path) -> Digests:
    tree = enumerate_model(model)
    return flat(hash_files(tree.files, "sha256", display=lambda f: f.name))


def reference(
    files: tuple[ModelFile, ...],
    hashlib_digests: dict[Path, str],
    hash_type: str,
    shard_size: int | None,
) -> Digests:
    """What the engine must return, computed without it: hashlib's sha256
    (the limit run's own digests, or per shard range), the blake3 package's."""
    if hash_type == "blake3":
        import blake3

        out = {}
        for f in files:
            h = blake3.blake3(max_threads=blake3.blake3.AUTO)
            h.update_mmap(f.path)
            out[f.name] = h.hexdigest()
        return out
    if shard_size is None:
        return {f.name: hashlib_digests[f.path] for f in files}
    return {
        f"{f.name}:{start}:{end}": digest
        for f in files
        for (start, end), digest in _common.sha256_ranges(f.path, shard_size).items()
    }


def measure(fn: Callable[[], Digests], expected: Callable[[], Digests], repeat: int) -> float:
    """The median time of ``fn``; :class:`RunFailed` if it raises or its
    digests are not ``expected()``'s."""
    try:
        seconds, digests = timed(fn, repeat)
    except Exception as e:
        raise RunFailed(f"ERROR\n{traceback.format_exc()}") from e
    differences = _common.digest_differences(digests, expected())
    if differences:
        shown = "\n".join(differences[:20])
        more = f"\n(and {len(differences) - 20} more)" if len(differences) > 20 else ""
        raise RunFailed(f"DIGESTS DIFFER\n{shown}{more}")
    return seconds


def bench_model(
    label: str, model: Path, repeat: int, shard: int, goals: list[tuple[str, float | None]]
) -> list[str]:
    """Print one model's rows; add its goals to ``goals``; return its failures."""
    cores = os.cpu_count() or 1
    paths = model_files(model) if model.is_dir() else [model]
    nbytes = sum(p.stat().st_size for p in paths)
    warm_cache(paths)
    limit, hashlib_digests = timed(lambda: sha256_files(paths, cores), repeat)
    print(
        f"{label:<18} {'hashlib limit':<24} {limit:7.3f} {nbytes / limit / 1e9:6.2f} {'1.00':>10}"
    )
    files = enumerate_model(model).files
    runs: list[tuple[str, str, int | None, Callable[[], Digests]]] = [
        ("sha256 files", "sha256", None, lambda: engine(files, "sha256", None)),
        ("sha256 files + listing", "sha256", None, lambda: walk_and_hash(model)),
    ]
    if label.startswith("(b)"):
        runs.append(
            (
                f"sha256 shards {shard // MIB} MiB",
                "sha256",
                shard,
                lambda: engine(files, "sha256", shard),
            )
        )
        runs.append(("blake3 files", "blake3", None, lambda: engine(files, "blake3", None)))
    failures = []
    for name, hash_type, shard_size, fn in runs:
        try:
            t: float | None = measure(
                fn, partial(reference, files, hashlib_digests, hash_type, shard_size), repeat
            )
        except RunFailed as e:
            t = None
            what, _, detail = str(e).partition("\n")
            failures.append(f"--- {label} {name}: {what}\n{detail}")
            cells = f"{what:>26}"
        else:
            assert t is not None
            cells = f"{t:7.3f} {nbytes / t / 1e9:6.2f} {limit / t:10.2f}"
        goal_text = ""
        if name == "sha256 files" and label.startswith(GOAL_MODELS):
            ratio = None if t is None else limit / t
            goals.append((f"{label} {name}", ratio))
            goal_text = f">={GOAL:.2f} {_common.verdict(ratio, GOAL, at_least=True)}"
        print(f"{'':<18} {name:<24} {cells}  {goal_text}".rstrip())
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="1G", help="bytes of (a) and (b) (default 1G)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--shard-size", default="64M", help="shard size for (b) shards")
    parser.add_argument("--quick", action="store_true", help="64 MiB, 2 repeats")
    args = parser.parse_args()
    size = 64 * MIB if args.quick else _common.parse_size(args.size, 4)
    repeat = 2 if args.quick else args.repeat
    shard = _common.parse_size(args.shard_size)
    print(machine())
    cores = os.cpu_count() or 1
    print(f"load average {load_average()}; {cores} cores; median of {repeat}; warm cache")
    failures: list[str] = []
    goals: list[tuple[str, float | None]] = []
    with tempfile.TemporaryDirectory(prefix="modelsign-engine-") as tmp:
        root = Path(tmp)
        models = {
            "(a) 4 files": build_dir(root, size),
            "(b) 1 file": build_single(root, size),
            "(c) 2,000 files": build_tree(root, 2000),
        }
        print(f"{'model':<18} {'engine':<24} {'s':>7} {'GB/s':>6} {'of hashlib':>10}  goal")
        for label, model in models.items():
            failures += bench_model(label, model, repeat, shard, goals)
    print("'of hashlib' is hashlib's time / the engine's: 1.00 = as fast, above 1 = faster.")
    print(f"(sizes: {size / GIB:.2f} GiB for (a) and (b))")
    print()
    print(f"Goal: sha256 files at >= {GOAL:.2f} of hashlib on (a) and (c)")
    verdicts = []
    for name, ratio in goals:
        verdicts.append(_common.verdict(ratio, GOAL, at_least=True))
        value = "-" if ratio is None else f"{ratio:.2f}"
        print(f"  {name:<34} {value:>6}  {verdicts[-1]}")
    print(f"  {_common.goals_line(verdicts)}")
    if failures:
        print()
        print("FAILED RUNS (no figure; every digest is checked against hashlib's)")
        for failure in failures:
            print(failure)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
