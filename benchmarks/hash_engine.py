"""modelsign's hashing engine against the hashlib limit, in one process.

The issue's bar: "sha256 of many files must reach at least 90 % of what hashlib
reaches on the same bytes with one thread per core". This measures exactly the
engine, ``modelsign.hashing.hash_files`` (archive checks included, as when
verifying; the file list made beforehand, as for hashlib, and also with it),
against ``_common.sha256_files`` (one thread per core, ``readinto``
a reused 16 MiB buffer), one after the other, on the models of ``compare.py``:
(a) ``--size`` bytes in 4 files, (b) one file, (c) the 2,000-file tokenizer
tree. It also times sha256 shards (``--shard-size``, default 64 MiB) and blake3
on (b), where they spread one file over the cores. Warm cache; median of
``--repeat`` runs.

    .venv/bin/python benchmarks/hash_engine.py            # 1 GiB, 5 repeats
    .venv/bin/python benchmarks/hash_engine.py --quick    # 64 MiB, 2 repeats
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import _common
from _common import GIB, MIB, load_average, machine, model_files, sha256_files, warm_cache
from compare import build_dir, build_single, build_tree

from modelsign.enumerating import ModelFile, enumerate_model
from modelsign.hashing import hash_files


def median_time(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def engine(model: Path, hash_type: str = "sha256", shard_size: int | None = None) -> None:
    """The engine alone: the file list is made outside the timing, as for hashlib."""
    hash_files(FILES[model], hash_type, display=lambda f: f.name, shard_size=shard_size)


def walk_and_hash(model: Path) -> None:
    tree = enumerate_model(model)
    hash_files(tree.files, "sha256", display=lambda f: f.name)


FILES: dict[Path, tuple[ModelFile, ...]] = {}


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
    cores = os.cpu_count() or 1
    print(machine())
    print(f"load average {load_average()}; {cores} cores; median of {repeat}; warm cache")
    with tempfile.TemporaryDirectory(prefix="modelsign-engine-") as tmp:
        root = Path(tmp)
        models = {
            "(a) 4 files": build_dir(root, size),
            "(b) 1 file": build_single(root, size),
            "(c) 2,000 files": build_tree(root, 2000),
        }
        print(f"{'model':<18} {'engine':<24} {'s':>7} {'GB/s':>6} {'of hashlib':>10}")
        for label, model in models.items():
            files = model_files(model) if model.is_dir() else [model]
            nbytes = sum(f.stat().st_size for f in files)
            warm_cache(files)
            limit = median_time(lambda files=files: sha256_files(files, cores), repeat)
            FILES[model] = enumerate_model(model).files
            runs: list[tuple[str, Callable[[], object]]] = [
                ("sha256 files", lambda m=model: engine(m)),
                ("sha256 files + listing", lambda m=model: walk_and_hash(m)),
            ]
            if label.startswith("(b)"):
                runs.append(
                    (
                        f"sha256 shards {shard // MIB} MiB",
                        lambda m=model: engine(m, shard_size=shard),
                    )
                )
                runs.append(("blake3 files", lambda m=model: engine(m, "blake3")))
            rate = nbytes / limit / 1e9
            print(f"{label:<18} {'hashlib limit':<24} {limit:7.3f} {rate:6.2f} {'1.00':>10}")
            for name, fn in runs:
                t = median_time(fn, repeat)
                print(f"{'':<18} {name:<24} {t:7.3f} {nbytes / t / 1e9:6.2f} {limit / t:10.2f}")
    print("'of hashlib' is hashlib's time / the engine's: 1.00 = as fast, above 1 = faster.")
    print(f"(sizes: {size / GIB:.2f} GiB for (a) and (b))")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
