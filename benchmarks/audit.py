"""Benchmark ``modelsign audit`` over a store of many small signed models.

Builds ``--models`` small model folders (a config and a 4 KiB weights file
each, signed with one Ed25519 key; every 20th one tampered, so the refusal
path is timed too), then measures, each ``--repeat`` times (the median; the
runs are interleaved across the four cases):

* **verify loop** (the baseline): ``modelsign.verify`` of each model in
  turn, in-process: what any audit has to do at least;
* **audit API**: ``find_models`` + ``audit`` in-process (walk, claims,
  verification, records, file lists spooled);
* **audit CLI**: ``modelsign audit STORE --key PUB --json`` and the same
  with ``--html REPORT.html`` (subprocesses: start-up included);

and the peak memory (max RSS) of the CLI with ``--html`` over the whole store
and over a tenth of it (100 models at least): the difference over the extra
models is what each model costs in memory (the audit keeps a small record per
model and spools file lists to a temporary file).

Run from the repository root::

    .venv/bin/python benchmarks/audit.py                 # 1000 models, 3 repeats
    .venv/bin/python benchmarks/audit.py --quick         # 200 models, 1 repeat
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from _common import goals_line, load_average, machine, verdict

#: Goals: the audit's own cost over verifying each model, the CLI's time per
#: model (start-up amortised), and memory per model.
GOAL_OVERHEAD = 1.5
GOAL_CLI_MS = 5.0
GOAL_KIB_PER_MODEL = 8.0
TAMPER_EVERY = 20


def build_store(root: Path, count: int) -> tuple[Path, Path, int]:
    import modelsign
    from modelsign import keys

    key = keys.generate("ed25519")
    keys.write_keypair(key, root / "k", None)
    store = root / "store"
    tampered = 0
    for i in range(count):
        model = store / f"group-{i // 100:03d}" / f"model-{i:05d}"
        model.mkdir(parents=True)
        (model / "config.json").write_text(json.dumps({"index": i}))
        (model / "weights.bin").write_bytes(i.to_bytes(4, "little") * 1024)
        modelsign.sign(model, key)
        if i % TAMPER_EVERY == TAMPER_EVERY - 1:
            (model / "config.json").write_text(json.dumps({"index": -i}))
            tampered += 1
    return store, root / "k.pub", tampered


def timed(
    cases: dict[str, Callable[[], object]], repeat: int
) -> tuple[dict[str, float | None], list[str]]:
    """The median time of each case; the runs are interleaved across cases
    (A B C A B C ...), so that the machine's drift affects every case alike.
    A case that raises has no figure."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    errors: dict[str, str] = {}
    for _ in range(repeat):
        for name, fn in cases.items():
            if name in errors:
                continue
            t0 = time.perf_counter()
            try:
                fn()
            except Exception:  # noqa: BLE001 - reported, and the goal is FAILED
                errors[name] = traceback.format_exc()
                continue
            times[name].append(time.perf_counter() - t0)
    medians = {
        name: None if name in errors else statistics.median(runs) for name, runs in times.items()
    }
    return medians, [f"{name}:\n{error}" for name, error in errors.items()]


def verify_loop(store: Path, pub: Path, expected_failures: int) -> Callable[[], object]:
    import modelsign
    from modelsign.errors import VerificationError

    policy = modelsign.Policy.of([pub])
    models = sorted(p.parent for p in store.rglob("model.sig"))

    def run() -> None:
        failed = 0
        for model in models:
            try:
                modelsign.verify(model, policy)
            except VerificationError:
                failed += 1
        if failed != expected_failures:
            raise AssertionError(f"{failed} models failed, expected {expected_failures}")

    return run


def audit_api(store: Path, pub: Path, expected_failures: int) -> Callable[[], object]:
    import modelsign
    from modelsign._audit import Spool, audit, find_models

    policy = modelsign.Policy.of([pub])

    def run() -> None:
        with Spool() as spool:
            report = audit(find_models([store]), policy, spool)
            for _ in spool.read():  # the file lists are read back once, as a report does
                pass
        failed = len(report.records) - report.counts()["verified"]
        if failed != expected_failures:
            raise AssertionError(f"{failed} models failed, expected {expected_failures}")

    return run


def audit_cli(args: list[str], expected_failures: int) -> Callable[[], object]:
    def run() -> None:
        result = subprocess.run(
            [sys.executable, "-m", "modelsign", "audit", *args],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != (1 if expected_failures else 0):
            raise AssertionError(f"exit {result.returncode}: {result.stderr[-2000:]}")
        if "--json" in args:
            summary = json.loads(result.stdout)["summary"]
            failed = summary["total"] - summary["verified"]
            if failed != expected_failures:
                raise AssertionError(f"{failed} models failed, expected {expected_failures}")

    return run


def peak_rss_kib(args: list[str]) -> int:
    """Max RSS (KiB) of one CLI run, in a fresh child (its own rusage)."""
    code = (
        "import resource, subprocess, sys\n"
        "subprocess.run([sys.executable, '-m', 'modelsign', 'audit', *sys.argv[1:]],"
        " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True
    )
    return int(result.stdout.strip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=1000, help="models in the store")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--quick", action="store_true", help="200 models, 1 repeat")
    args = parser.parse_args(argv)
    count, repeat = (200, 1) if args.quick else (args.models, args.repeat)
    if count < 20:
        parser.error("--models: at least 20")
    print(f"machine: {machine()}")
    print(f"load average at start: {load_average()}")
    errors: list[str] = []
    with tempfile.TemporaryDirectory(prefix="modelsign-bench-audit-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        store, pub, tampered = build_store(root, count)
        built = time.perf_counter() - t0
        print(f"store: {count} models ({tampered} tampered), built in {built:.1f} s")
        report = root / "report.html"
        cases = {
            "verify loop (baseline)": verify_loop(store, pub, tampered),
            "audit API": audit_api(store, pub, tampered),
            "audit CLI --json": audit_cli([str(store), "--key", str(pub), "--json"], tampered),
            "audit CLI --html": audit_cli(
                [str(store), "--key", str(pub), "--html", str(report), "-q"], tampered
            ),
        }
        results, failures = timed(cases, repeat)
        errors += failures
        print(f"\n{'':24} {'total s':>9} {'ms/model':>9} {'/baseline':>9}")
        base = results["verify loop (baseline)"]
        for name, seconds in results.items():
            if seconds is None:
                print(f"{name:24} {'ERROR':>9}")
                continue
            ratio = f"{seconds / base:.2f}" if base else "-"
            print(f"{name:24} {seconds:9.2f} {1000 * seconds / count:9.2f} {ratio:>9}")
        size = report.stat().st_size if report.exists() else 0
        print(f"HTML report: {size / 1024:.0f} KiB ({size / count:.0f} bytes per model)")
        groups = sorted(store.iterdir())  # 100 models each
        small = groups[: max(1, len(groups) // 10)]
        try:
            rss_all = peak_rss_kib([str(store), "--key", str(pub), "--html", str(report), "-q"])
            rss_small = peak_rss_kib(
                [*map(str, small), "--key", str(pub), "--html", str(report), "-q"]
            )
        except Exception:  # noqa: BLE001
            errors.append(f"max RSS:\n{traceback.format_exc()}")
            per_model = None
        else:
            fewer = sum(1 for g in small for _ in g.iterdir())
            per_model = (rss_all - rss_small) / max(1, count - fewer)
            print(
                f"max RSS of the CLI: {rss_all / 1024:.1f} MiB ({count} models), "
                f"{rss_small / 1024:.1f} MiB ({fewer} models): {per_model:.2f} KiB per model"
            )
    overhead = None if not base or results["audit API"] is None else results["audit API"] / base
    cli = results["audit CLI --html"]
    cli_ms = None if cli is None else 1000 * cli / count
    goals = [
        (f"audit API within {GOAL_OVERHEAD}x the verify loop", overhead, GOAL_OVERHEAD),
        (f"audit CLI --html under {GOAL_CLI_MS} ms per model", cli_ms, GOAL_CLI_MS),
        (f"memory under {GOAL_KIB_PER_MODEL} KiB per model", per_model, GOAL_KIB_PER_MODEL),
    ]
    print()
    verdicts = []
    for label, value, goal in goals:
        v = verdict(value, goal)
        verdicts.append(v)
        figure = "no figure" if value is None else f"{value:.2f}"
        print(f"goal: {label}: {figure} -> {v}")
    print(goals_line(verdicts))
    print(f"load average at end: {load_average()}")
    for error in errors:
        print(f"\nERROR {error}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
