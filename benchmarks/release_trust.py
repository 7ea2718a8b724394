"""Measure what release trust adds to a verification and to a hooked load.

One small model (a torch ``weights.pt`` of ``--size`` bytes, a config and a
tokenizer file) is verified and loaded, in this process, under two policies:

* **plain**: one trusted key; the model has its ``model.sig`` only;
* **release**: three named keys with validity windows, a 2-of-3 threshold, a
  model-name pin and a rollback state file; the model carries ``model.sig``
  and two co-signatures in ``model.sig.d/`` (so three bundles are read and
  checked, and the state file is locked, read and, unchanged, not rewritten).

For each of ``modelsign.verify(model, policy)`` and ``torch.load`` of the
weights under ``modelsign.enforce(policy)`` (entered once per block of
calls), the two variants run ``--repeat`` times, in interleaved blocks
(plain, release, plain, ...) after an untimed warm-up round; medians are
reported, and the goal is on the time release
trust adds per call (release minus plain), which does not grow with the
model: a few signature checks and a small file under a lock.

Run from the repository root::

    .venv/bin/python benchmarks/release_trust.py            # 1 MiB, 200 repeats
    .venv/bin/python benchmarks/release_trust.py --quick    # 20 repeats
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import _common
from _common import MIB, human, load_average, machine

#: The goal: milliseconds release trust may add to one verification or load.
GOAL_ADDED_MS = 3.0
#: Interleaved blocks of calls per variant.
BLOCKS = 10


def _time(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def _setup(root: Path, size: int) -> tuple[Path, object, object]:
    import torch

    import modelsign
    from modelsign import _rollback
    from modelsign.keys import generate, write_keypair

    keys = {}
    for name in ("ci", "release", "security"):
        keys[name] = write_keypair(generate("ed25519"), root / name, None)
    model = root / "models" / "bert"
    (model / "tokenizer").mkdir(parents=True)
    torch.save({"w": torch.zeros(size // 4)}, model / "weights.pt")
    (model / "config.json").write_text('{"layers": 2}')
    (model / "tokenizer" / "vocab.txt").write_text("a\nb\n")
    modelsign.sign(model, keys["ci"][0], model_name="acme/bert", model_version="1.0")
    (root / "plain.toml").write_text(f'[trust]\nkeys = ["{keys["ci"][1]}"]\n')
    plain = modelsign.Policy.load(root / "plain.toml")
    tables = "".join(
        f'[[trust.keys]]\npath = "{pub}"\nname = "{name}"\n'
        "not_before = 2020-01-01T00:00:00Z\nnot_after = 2099-01-01T00:00:00Z\n"
        for name, (_, pub) in keys.items()
    )
    (root / "release.toml").write_text(
        tables
        + '[[trust.threshold]]\nrequire = 2\nsigners = ["ci", "release", "security"]\n'
        + '[[trust.pin]]\npath = "models/bert"\nname = "acme/bert"\n'
        + '[rollback]\nstate = "state.json"\n'
    )
    release = modelsign.Policy.load(root / "release.toml")
    _rollback.reset(root / "state.json")
    for name in ("release", "security"):
        modelsign.cosign(model, keys[name][0], [keys["ci"][1]])
    return model, plain, release


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=_common.parse_size, default=MIB)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="20 repeats")
    args = parser.parse_args()
    repeat = 20 if args.quick else args.repeat
    warnings.simplefilter("ignore")

    import torch

    import modelsign

    print(f"machine: {machine()}; load average {load_average()}")
    print(f"model: weights.pt of {human(args.size)} + 2 small files; {repeat} calls per variant")
    verdicts = []
    with tempfile.TemporaryDirectory(prefix="modelsign-bench-") as tmp:
        try:
            model, plain, release = _setup(Path(tmp), args.size)
        except Exception as e:  # noqa: BLE001 - the run failed: no figure, never a goal met
            print(f"setup failed: {type(e).__name__}: {e}")
            print(f"goals: {_common.goals_line([_common.verdict(None, GOAL_ADDED_MS)] * 2)}")
            return 1
        weights = model / "weights.pt"

        def verify(policy: object) -> Callable[[], object]:
            return lambda: modelsign.verify(model, policy)  # type: ignore[arg-type]

        def load() -> object:
            return torch.load(weights, weights_only=True)

        policies = {"plain": plain, "release": release}
        for what in ("verify", "hooked torch.load"):
            times: dict[str, list[float]] = {"plain": [], "release": []}
            # Interleaved blocks (plain, release, plain, ...): a load runs under
            # an enforce() block entered once per block, not once per call.
            for block in range(-1, BLOCKS):
                for variant, policy in policies.items():
                    count = max(1, repeat // BLOCKS)
                    if what == "verify":
                        got = [_time(verify(policy)) for _ in range(count)]
                    else:
                        with modelsign.enforce(policy):  # type: ignore[arg-type]
                            got = [_time(load) for _ in range(count)]
                    if block >= 0:  # the first round warms up
                        times[variant] += got
            medians = {v: statistics.median(t) * 1000 for v, t in times.items()}
            added = medians["release"] - medians["plain"]
            mark = _common.verdict(added, GOAL_ADDED_MS)
            verdicts.append(mark)
            print(
                f"{what}: plain {medians['plain']:.2f} ms, release {medians['release']:.2f} ms "
                f"(median of {len(times['plain'])}); added {added:.2f} ms, ratio "
                f"{medians['release'] / medians['plain']:.2f} "
                f"(goal: added <= {GOAL_ADDED_MS} ms: {mark})"
            )
    print(f"goals: {_common.goals_line(verdicts)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
