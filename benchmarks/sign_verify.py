"""Benchmark modelsign against model_signing (the reference) and plain hashlib.

Builds two models in a temporary directory -- a directory of 4 files and a
single file, each ``--size`` bytes in total -- and times signing and verifying
them with ECDSA P-256 keys:

* modelsign through its Python API (in-process) and its CLI (a subprocess, so
  interpreter start-up and imports are included);
* model_signing (the OpenSSF reference implementation) the same two ways;
* the "hashlib limit": SHA-256 of the same files on a thread per core, each
  file read with ``readinto`` into a reused 16 MiB buffer. No signing tool that
  reads every byte with SHA-256 can beat it by much.

The page cache is warmed before measuring, so every figure is warm-cache: it
measures hashing and overhead, not the disk. Each measurement is run
``--repeat`` times (interleaved across tools) and the median is reported.

Run from the repository root::

    .venv/bin/python benchmarks/sign_verify.py            # 1 GiB, 3 repeats
    .venv/bin/python benchmarks/sign_verify.py --quick    # 64 MiB, 1 repeat
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import _common
from _common import GIB, MIB, human, load_average, machine, sha256_files, warm_cache

BLOCK = 64 * MIB
DIR_FILES = 4


def parse_size(text: str) -> int:
    return _common.parse_size(text, DIR_FILES)


# --- building the models -----------------------------------------------------


def write_random_file(path: Path, size: int, block: bytearray, file_index: int) -> None:
    """Write ``size`` bytes: one random block, repeated, with a per-block prefix.

    Every 64 MiB block differs from the others in its first 16 bytes, and the
    rest is random, so no hash or file system sees zeros or an obvious repeat.
    """
    view = memoryview(block)
    with open(path, "wb", buffering=0) as f:
        written = 0
        index = 0
        while written < size:
            block[:16] = file_index.to_bytes(8, "little") + index.to_bytes(8, "little")
            n = min(len(block), size - written)
            f.write(view[:n])
            written += n
            index += 1
        os.fsync(f.fileno())


def build_models(root: Path, size: int) -> tuple[Path, list[Path], Path]:
    """A directory of 4 files totalling ``size`` bytes, and one file of ``size``."""
    block = bytearray(os.urandom(min(BLOCK, size)))
    model_dir = root / "model-dir"
    model_dir.mkdir()
    base, rest = divmod(size, DIR_FILES)
    files = []
    for i in range(DIR_FILES):
        path = model_dir / f"model-{i + 1:05d}-of-{DIR_FILES:05d}.bin"
        write_random_file(path, base + (rest if i == DIR_FILES - 1 else 0), block, i)
        files.append(path)
    single = root / "model-single.bin"
    write_random_file(single, size, block, DIR_FILES)
    return model_dir, files, single


def write_keys(root: Path) -> tuple[Path, Path]:
    """An unencrypted ECDSA P-256 key pair (PKCS#8 and SPKI PEM) both tools read."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    private = root / "bench.key"
    public = root / "bench.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    private.chmod(0o600)
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


# --- the hashlib limit ---------------------------------------------------------


# sha256_files lives in _common: compare.py runs it in fresh processes too.


# --- the operations --------------------------------------------------------------


class CommandFailed(Exception):
    pass


def run_cli(argv: list[str]) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise CommandFailed(
            f"exit {proc.returncode}: {' '.join(argv)}\n"
            f"stdout: {proc.stdout.strip()}\nstderr: {proc.stderr.strip()}"
        )


def find_cli(name: str) -> str:
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"cannot find the {name} command (beside {sys.executable} or on PATH)")
    return found


@dataclass
class Op:
    """One timed operation; ``setup`` runs untimed before each repeat."""

    case: str
    action: str  # "sign", "verify" or "hash"
    tool: str  # "modelsign", "model_signing" or "hashlib"
    mode: str  # "API", "CLI" or "threads"
    run: Callable[[], object]
    setup: Callable[[], None] | None = None
    times: list[float] = field(default_factory=list)
    error: str | None = None

    def measure(self) -> None:
        if self.error is not None:
            return  # it failed once: do not repeat the failure
        if self.setup is not None:
            self.setup()
        start = time.perf_counter()
        try:
            self.run()
        except Exception as e:  # noqa: BLE001 - report every failure, keep benchmarking
            detail = str(e) if isinstance(e, CommandFailed) else traceback.format_exc()
            self.error = f"{type(e).__name__}: {detail}".strip()
            return
        self.times.append(time.perf_counter() - start)

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.times else None


def unlink(path: Path) -> Callable[[], None]:
    return lambda: path.unlink(missing_ok=True)


def modelsign_api_sign(model: Path, key: Path, sig: Path) -> Callable[[], object]:
    def run() -> object:
        import modelsign

        return modelsign.sign(model, key, signature=sig)

    return run


def modelsign_api_verify(model: Path, pub: Path, sig: Path) -> Callable[[], object]:
    def run() -> object:
        import modelsign

        return modelsign.verify(model, [pub], signature=sig)

    return run


def reference_api_sign(model: Path, key: Path, sig: Path) -> Callable[[], object]:
    def run() -> object:
        from model_signing import signing

        return signing.Config().use_elliptic_key_signer(private_key=key).sign(model, sig)

    return run


def reference_api_verify(model: Path, pub: Path, sig: Path) -> Callable[[], object]:
    def run() -> object:
        from model_signing import verifying

        return verifying.Config().use_elliptic_key_verifier(public_key=pub).verify(model, sig)

    return run


def operations(
    case: str, model: Path, files: list[Path], *, key: Path, pub: Path, sigs: Path
) -> list[Op]:
    """Every measurement of one model, signatures kept outside the model."""
    ms_cli, ref_cli = find_cli("modelsign"), find_cli("model_signing")
    sig = {
        (tool, mode): sigs / f"{case}-{tool}-{mode.lower()}.sig"
        for tool in ("modelsign", "model_signing")
        for mode in ("API", "CLI")
    }
    m, k, p = str(model), str(key), str(pub)
    ms_api_sig, ms_cli_sig = sig["modelsign", "API"], sig["modelsign", "CLI"]
    ref_api_sig, ref_cli_sig = sig["model_signing", "API"], sig["model_signing", "CLI"]
    ms_sign = [ms_cli, "sign", m, "--key", k, "--quiet", "--signature", str(ms_cli_sig)]
    ms_verify = [ms_cli, "verify", m, "--key", p, "--quiet", "--signature", str(ms_cli_sig)]
    ref_sign = [ref_cli, "sign", "key", m, "--private_key", k, "--signature", str(ref_cli_sig)]
    ref_verify = [ref_cli, "verify", "key", m, "--public_key", p, "--signature", str(ref_cli_sig)]
    cores = os.cpu_count() or 1
    return [
        Op(case, "hash", "hashlib", "threads", lambda: sha256_files(files, cores)),
        Op(
            case,
            "sign",
            "modelsign",
            "API",
            modelsign_api_sign(model, key, ms_api_sig),
            unlink(ms_api_sig),
        ),
        Op(
            case,
            "sign",
            "model_signing",
            "API",
            reference_api_sign(model, key, ref_api_sig),
            unlink(ref_api_sig),
        ),
        Op(case, "sign", "modelsign", "CLI", lambda: run_cli(ms_sign), unlink(ms_cli_sig)),
        Op(case, "sign", "model_signing", "CLI", lambda: run_cli(ref_sign), unlink(ref_cli_sig)),
        Op(case, "verify", "modelsign", "API", modelsign_api_verify(model, pub, ms_api_sig)),
        Op(case, "verify", "model_signing", "API", reference_api_verify(model, pub, ref_api_sig)),
        Op(case, "verify", "modelsign", "CLI", lambda: run_cli(ms_verify)),
        Op(case, "verify", "model_signing", "CLI", lambda: run_cli(ref_verify)),
    ]


# --- the report ----------------------------------------------------------------------


def fmt_ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a is not None and b else "-"


def fmt_seconds(op: Op) -> str:
    if op.error is not None:
        return "ERROR"
    med = op.median
    return f"{med:.3f}" if med is not None else "-"


def report(case_title: str, ops: list[Op], size: int) -> None:
    by_key = {(o.action, o.tool, o.mode): o for o in ops}
    limit = by_key["hash", "hashlib", "threads"].median
    print()
    print(case_title)
    header = (
        f"  {'operation':<9} {'tool':<14} {'via':<7} {'median s':>9} {'min s':>8} "
        f"{'max s':>8} {'GB/s':>6} {'ms/ref':>7} {'/hashlib':>8}"
    )
    print(header)
    print("  " + "-" * (len(header) - 2))
    for o in ops:
        med = o.median
        gbs = f"{size / 1e9 / med:.2f}" if med else "-"
        lo = f"{min(o.times):.3f}" if o.times and o.error is None else "-"
        hi = f"{max(o.times):.3f}" if o.times and o.error is None else "-"
        vs_ref = vs_limit = ""
        if o.tool == "modelsign":
            other = by_key[o.action, "model_signing", o.mode]
            vs_ref = fmt_ratio(med if o.error is None else None, other.median)
        if o.tool != "hashlib":
            vs_limit = fmt_ratio(med if o.error is None else None, limit)
        row = (
            f"  {o.action:<9} {o.tool:<14} {o.mode:<7} {fmt_seconds(o):>9} {lo:>8} {hi:>8} "
            f"{gbs:>6} {vs_ref:>7} {vs_limit:>8}"
        )
        print(row.rstrip())


# --- main ------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--size",
        type=parse_size,
        default=None,
        help="bytes per model: 1G, 64M, ... (binary units) [default: 1G, or 64M with --quick]",
    )
    parser.add_argument(
        "--repeat", type=int, default=None, help="runs per measurement [default: 3, 1 with --quick]"
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: 64 MiB, 1 repeat")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where to create the (removed afterwards) temporary directory [default: $TMPDIR]",
    )
    args = parser.parse_args(argv)
    size = args.size if args.size is not None else (64 * MIB if args.quick else GIB)
    repeat = args.repeat if args.repeat is not None else (1 if args.quick else 3)
    if repeat < 1:
        parser.error("--repeat must be at least 1")

    # Import both tools up front, so the first API run does not pay for it.
    import_errors = []
    for module in ("modelsign", "model_signing.signing", "model_signing.verifying"):
        try:
            __import__(module)
        except Exception:  # noqa: BLE001 - reported, and the runs will show ERROR
            import_errors.append(f"import {module} failed:\n{traceback.format_exc()}")

    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="modelsign-bench-", dir=args.workdir))
    try:
        print(f"machine:  {machine()}")
        print(f"versions: {_common.versions('modelsign', 'model-signing')}")
        print(f"workdir:  {root}")
        print(f"load average at start: {load_average()}")
        print(f"building models of {human(size)} each ...", flush=True)
        start = time.perf_counter()
        model_dir, dir_files, single = build_models(root, size)
        key, pub = write_keys(root)
        sigs = root / "signatures"  # outside both models, so both tools hash the same files
        sigs.mkdir()
        print(f"built in {time.perf_counter() - start:.1f} s; warming the page cache ...")
        warm_cache([*dir_files, single])

        cases = [
            (f"(a) directory of {DIR_FILES} files, {human(size)}", "dir", model_dir, dir_files),
            (f"(b) single file, {human(size)}", "file", single, [single]),
        ]
        all_ops = {
            case: operations(case, model, files, key=key, pub=pub, sigs=sigs)
            for _, case, model, files in cases
        }
        for r in range(repeat):
            print(f"run {r + 1}/{repeat} ...", flush=True)
            for ops in all_ops.values():
                for op in ops:
                    op.measure()

        print()
        print(
            f"Warm-cache figures (files read once before measuring), median of {repeat} "
            f"run{'s' if repeat != 1 else ''}; SHA-256, ECDSA P-256."
        )
        print(
            f"hashlib = sha256 on {os.cpu_count()} threads (1 for a single file), "
            "readinto a 16 MiB buffer."
        )
        print(
            "GB/s = 1e9 bytes/s; ms/ref = modelsign / model_signing (same via); "
            "/hashlib = time / hashlib time."
        )
        print(f"load average at end: {load_average()} (other work on the machine skews figures)")
        for title, case, _, _ in cases:
            report(title, all_ops[case], size)

        errors = [o for ops in all_ops.values() for o in ops if o.error is not None]
        if import_errors or errors:
            print()
            print("ERRORS")
            for text in import_errors:
                print(text)
            for o in errors:
                print(f"--- {o.case} {o.action} {o.tool} {o.mode}:")
                print(o.error)
            return 1
        return 0
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
