"""Distributed checkpoints in real processes: gloo over 127.0.0.1, one Python per rank.

:func:`run` starts ``world`` processes (``python -m tests.dcpkit SPEC``); each
runs the same steps in order and records what each step did in
``WORKDIR/rank-N.json`` (so the steps a rank finished before it died are
known). A step is a dict:

* ``{"step": "save", "path": P, "key": KEY or None, "async": bool, "crash_rank": R}``:
  ``dcp.save`` (or ``async_save``) of :func:`state` with modelsign's signing
  writer (``key``) or torch's ``FileSystemWriter`` (``key`` None); rank
  ``crash_rank`` dies (``os._exit``) after writing its first item;
  ``"stop_on_error": true`` ends the rank's steps when it fails;
* ``{"step": "load", "path": P, "policy": POLICY or None}``: ``dcp.load`` into
  zeros, under enforcement when a policy is given; records whether every
  value came back;
* ``{"step": "flip", "file": F}``: rank 0 flips a byte in the middle of ``F``
  (between two barriers).

A step's record is ``{"ok": true, ...}`` or ``{"ok": false, "error": {"type",
"message", "failures": {rank: [type, message]}}}``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import traceback
from datetime import timedelta
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parents[1]
#: Seconds a collective may wait for a rank: a dead rank fails the others in this time.
COLLECTIVE_TIMEOUT = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(
    world: int, steps: list[dict[str, Any]], workdir: Path, timeout: float = 300
) -> list[list[dict[str, Any]]]:
    """Run ``steps`` on ``world`` ranks; each rank's step records, by rank."""
    workdir.mkdir(parents=True, exist_ok=True)
    spec = workdir / "spec.json"
    spec.write_text(json.dumps({"steps": steps, "workdir": str(workdir)}))
    port = free_port()
    procs = []
    for rank in range(world):
        env = {
            **os.environ,
            "RANK": str(rank),
            "WORLD_SIZE": str(world),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
        env.pop("MODELSIGN_POLICY", None)
        log = open(workdir / f"rank-{rank}.log", "wb")  # noqa: SIM115 - closed below
        procs.append(
            (
                subprocess.Popen(
                    [sys.executable, "-m", "tests.dcpkit", str(spec)],
                    cwd=REPOSITORY,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                ),
                log,
            )
        )
    try:
        for proc, _ in procs:
            proc.wait(timeout=timeout)
    finally:
        for proc, log in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()
    results = []
    for rank in range(world):
        path = workdir / f"rank-{rank}.json"
        results.append(json.loads(path.read_text()) if path.exists() else [])
    return results


def logs(workdir: Path) -> str:
    """What the ranks printed, for a failure message."""
    return "\n".join(
        f"--- rank log {p.name}\n{p.read_text(errors='replace')[-4000:]}"
        for p in sorted(workdir.glob("rank-*.log"))
    )


# ------------------------------------------------------------------ in a rank


def state(rank: int, world: int) -> dict[str, Any]:
    """Three tensors of the rank's own, one that every rank holds (written
    once), and an object that is not a tensor (written as pickled bytes)."""
    import torch

    own = {
        f"rank{rank}.w{i}": torch.arange(10 + i, dtype=torch.float32) + 100 * rank + i
        for i in range(3)
    }
    return {**own, "shared": torch.linspace(0, 1, 1000), "meta": {"epoch": 3, "world": world}}


def _zeros(rank: int, world: int) -> dict[str, Any]:
    import torch

    return {
        k: torch.zeros_like(v) if isinstance(v, torch.Tensor) else dict.fromkeys(v, 0)
        for k, v in state(rank, world).items()
    }


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    import torch

    if a.keys() != b.keys():
        return False
    return all(
        torch.equal(a[k], b[k]) if isinstance(a[k], torch.Tensor) else a[k] == b[k] for k in a
    )


def _error(e: BaseException) -> dict[str, Any]:
    failures = {}
    for rank, failure in (getattr(e, "failures", None) or {}).items():
        exc = failure[0] if isinstance(failure, tuple) else failure
        failures[str(rank)] = [type(exc).__name__, str(exc)]
    return {"type": type(e).__name__, "message": str(e), "failures": failures}


def _crashing_planner(rank: int, crash_rank: int | None) -> Any:
    from torch.distributed.checkpoint import DefaultSavePlanner

    class Crashing(DefaultSavePlanner):
        """Dies after resolving its first item: its file is half written."""

        resolved = 0

        def resolve_data(self, write_item: Any) -> Any:
            if rank == crash_rank:
                self.resolved += 1
                if self.resolved == 2:
                    os._exit(17)
            return super().resolve_data(write_item)

    return Crashing()


def _save(step: dict[str, Any], rank: int, world: int) -> dict[str, Any]:
    import torch.distributed.checkpoint as dcp

    from modelsign.integrations.dcp import SigningFileSystemWriter

    path = step["path"]
    writer = (
        SigningFileSystemWriter(path, step["key"])
        if step.get("key")
        else dcp.FileSystemWriter(path)
    )
    planner = _crashing_planner(rank, step.get("crash_rank"))
    sd = state(rank, world)
    if step.get("async"):
        future = dcp.async_save(sd, storage_writer=writer, planner=planner)
        future.result()
        # Every rank's future completes after the coordinator's finish().
        return {"ok": True, "signed_when_done": os.path.isfile(os.path.join(path, "model.sig"))}
    dcp.save(sd, storage_writer=writer, planner=planner)
    return {"ok": True}


def _load(step: dict[str, Any], rank: int, world: int) -> dict[str, Any]:
    import torch.distributed.checkpoint as dcp

    import modelsign.hooks

    target = _zeros(rank, world)
    if step.get("policy"):
        modelsign.hooks.install(step["policy"])
    try:
        dcp.load(target, checkpoint_id=step["path"])
    finally:
        if step.get("policy"):
            modelsign.hooks.uninstall()
    return {"ok": True, "equal": _same(target, state(rank, world))}


def _flip(step: dict[str, Any], rank: int) -> dict[str, Any]:
    import torch.distributed as dist

    dist.barrier()
    if rank == 0:
        path = Path(step["file"])
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
    dist.barrier()
    return {"ok": True}


def main(spec_path: str) -> None:
    import torch.distributed as dist

    spec = json.loads(Path(spec_path).read_text())
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    out = Path(spec["workdir"]) / f"rank-{rank}.json"
    records: list[dict[str, Any]] = []
    dist.init_process_group(
        "gloo", rank=rank, world_size=world, timeout=timedelta(seconds=COLLECTIVE_TIMEOUT)
    )
    try:
        for step in spec["steps"]:
            try:
                if step["step"] == "save":
                    record = _save(step, rank, world)
                elif step["step"] == "load":
                    record = _load(step, rank, world)
                else:
                    record = _flip(step, rank)
            except BaseException as e:
                traceback.print_exc()
                record = {"ok": False, "error": _error(e)}
            records.append(record)
            out.write_text(json.dumps(records))
            if not record["ok"] and step.get("stop_on_error", False):
                break
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
