"""A distributed checkpoint save, plain ``FileSystemWriter`` vs ``SigningFileSystemWriter``.

Two ranks (``--world``) on this machine, gloo over 127.0.0.1, each holding
``--size / world`` bytes of float32 tensors in 8 tensors of its own (so each
rank writes one ``.distcp`` file of 8 torch archives). Each round saves the
same state dict twice, into fresh folders: once with torch's
``FileSystemWriter`` and once with modelsign's signing writer (Ed25519), in
alternating order, both with the writer defaults (``sync_files=True``: each
file is fsynced, as a training job's checkpoints are). The wall time of a save
is rank 0's, between two barriers, so it covers every rank and, for the signing
writer, the bundle. Every signed checkpoint is then verified with
``modelsign.verify``: a run whose checkpoint does not verify has no figure.

It prints the median wall time of each writer, the ratio signing / plain (the
goal: at most 1.15), and the CPU seconds each rank spent per save (hashing
costs CPU; fsync costs waiting).

Run from the repository root::

    .venv/bin/python benchmarks/dcp_save.py                 # 1 GiB, 2 ranks, 5 rounds
    .venv/bin/python benchmarks/dcp_save.py --quick         # 64 MiB, 2 rounds
    .venv/bin/python benchmarks/dcp_save.py --variant signing --repeat 1   # one writer only
    .venv/bin/python benchmarks/dcp_save.py --hash blake3   # the signing writer hashes with BLAKE3

``--variant`` runs one writer only, for an outside timer that compares two
whole runs (start-up included).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import _common
from _common import GIB, MIB, human, load_average, machine

GOAL = 1.15
TENSORS_PER_RANK = 8


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rank_main(rank: int, world: int, port: int, args: argparse.Namespace, out: str) -> None:
    import torch
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp

    from modelsign.integrations.dcp import SigningFileSystemWriter

    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    numel = args.size // world // 4 // TENSORS_PER_RANK
    generator = torch.Generator().manual_seed(rank)
    state = {
        f"rank{rank}.t{i}": torch.randn(numel, generator=generator) for i in range(TENSORS_PER_RANK)
    }
    root = Path(args.folder)
    variants = ["plain", "signing"] if args.variant == "both" else [args.variant]
    times: dict[str, list[float]] = {v: [] for v in variants}
    cpu: dict[str, list[float]] = {v: [] for v in variants}
    signed: list[Path] = []

    def save(variant: str, folder: Path) -> tuple[float, float]:
        writer = (
            SigningFileSystemWriter(folder, args.key, hash_type=args.hash)
            if variant == "signing"
            else dcp.FileSystemWriter(folder)
        )
        dist.barrier()
        start, start_cpu = time.perf_counter(), time.process_time()
        dcp.save(state, storage_writer=writer)
        used = time.process_time() - start_cpu
        dist.barrier()
        return time.perf_counter() - start, used

    rounds = args.repeat + (1 if args.variant == "both" else 0)  # one untimed warm-up
    for n in range(rounds):
        order = variants if n % 2 == 0 else variants[::-1]
        for variant in order:
            folder = root / f"{variant}-{n}"
            wall, used = save(variant, folder)
            if n > 0 or args.variant != "both":
                times[variant].append(wall)
                cpu[variant].append(used)
            dist.barrier()
            if rank == 0:
                if variant == "signing":
                    signed.append(folder)
                else:
                    shutil.rmtree(folder)
    if rank == 0:
        import modelsign

        failures = []
        for folder in signed:
            try:
                modelsign.verify(folder, [Path(args.key).with_suffix(".pub")])
            except modelsign.Error as e:
                failures.append(f"{folder}: {e}")
            shutil.rmtree(folder)
        Path(out).write_text(repr({"times": times, "cpu": cpu, "failures": failures}))
    dist.barrier()
    dist.destroy_process_group()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=_common.parse_size, default=GIB)
    parser.add_argument("--world", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="64 MiB, 2 rounds")
    parser.add_argument("--variant", choices=("both", "plain", "signing"), default="both")
    parser.add_argument("--hash", choices=("sha256", "blake2b", "blake3"), default="sha256")
    parser.add_argument(
        "--dir", type=Path, default=None, help="where to write (default: a temp dir)"
    )
    args = parser.parse_args()
    if args.quick:
        args.size, args.repeat = 64 * MIB, 2

    import torch.multiprocessing as mp

    from modelsign.keys import generate, write_keypair

    with tempfile.TemporaryDirectory(prefix="dcp-bench-", dir=args.dir) as tmp:
        args.folder = str(Path(tmp) / "checkpoints")
        args.key = str(Path(tmp) / "bench.key")
        write_keypair(generate("ed25519"), Path(tmp) / "bench", None)
        out = str(Path(tmp) / "result")
        print(f"machine: {machine()}; load average {load_average()}")
        print(
            f"DCP save of {human(args.size)} in {args.world} ranks (gloo, {TENSORS_PER_RANK} "
            f"tensors per rank), {args.repeat} round(s), writer defaults (sync_files=True), "
            f"signing with {args.hash}"
        )
        mp.spawn(_rank_main, args=(args.world, _free_port(), args, out), nprocs=args.world)
        result = eval(Path(out).read_text())
    times, cpu, failures = result["times"], result["cpu"], result["failures"]
    print(f"{'writer':<10} {'median s':>9} {'min s':>7} {'max s':>7} {'cpu s (rank 0)':>15}")
    for variant, values in times.items():
        print(
            f"{variant:<10} {statistics.median(values):9.3f} {min(values):7.3f} "
            f"{max(values):7.3f} {statistics.median(cpu[variant]):15.3f}"
        )
    print(f"load average at the end: {load_average()}")
    if args.variant != "both":
        return 1 if failures else 0
    for failure in failures:
        print(f"FAILED: {failure}")
    ratio = (
        None
        if failures
        else statistics.median(times["signing"]) / statistics.median(times["plain"])
    )
    shown = "none (the run failed)" if ratio is None else f"{ratio:.3f}x"
    verdict = _common.verdict(ratio, GOAL)
    print(f"signing / plain: {shown} (goal <= {GOAL}x): {verdict}")
    print(f"goals: {_common.goals_line([verdict])}")
    return 0 if verdict == _common.MET else 1


if __name__ == "__main__":
    sys.exit(main())
