"""modelsign.integrations.transformers with a real Trainer: a tiny GPT-2 built
here (no download), a few steps on the CPU, real keys, real files."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import flip_byte, require
from tests.integrationkit import (
    FILE_SIZE_LIMIT,
    limit_file_size,
    run_readme_example,
    run_until_killed,
)

torch = require("torch", "the Trainer trains a torch model")
transformers = require("transformers", "the integration under test")

import modelsign  # noqa: E402
from modelsign import hooks  # noqa: E402
from modelsign.errors import (  # noqa: E402
    FileDigestMismatchError,
    LoadRefusedError,
    UsageError,
)
from modelsign.integrations.transformers import SigningCallback, SigningTrainer  # noqa: E402
from modelsign.policy import Policy  # noqa: E402

Trainer = transformers.Trainer
TrainerCallback = transformers.TrainerCallback

#: Six steps, a checkpoint every two, at most two kept: checkpoint-2 is rotated out.
STEPS = {"max_steps": 6, "save_steps": 2, "save_total_limit": 2}
KEPT = ["checkpoint-4", "checkpoint-6"]


def tiny_model() -> Any:
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=64,
        n_positions=16,
        n_embd=16,
        n_layer=1,
        n_head=2,
        bos_token_id=0,
        eos_token_id=0,
    )
    return transformers.GPT2LMHeadModel(config)


def tiny_data() -> list[dict[str, Any]]:
    g = torch.Generator().manual_seed(0)
    return [
        {"input_ids": ids, "labels": ids}
        for ids in torch.randint(0, 64, (16, 8), generator=g).unbind()
    ]


def make_trainer(
    cls: type[Any], out: Path, *, callbacks: list[Any] | None = None, **kwargs: Any
) -> Any:
    options = {**STEPS, **kwargs.pop("args", {})}
    args = transformers.TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=4,
        logging_steps=100,
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        **options,
    )
    return cls(
        model=tiny_model(), args=args, train_dataset=tiny_data(), callbacks=callbacks, **kwargs
    )


def verifies(folder: Path, public: Path) -> bool:
    try:
        modelsign.verify(folder, [public])
    except modelsign.VerificationError:
        return False
    return True


class Watch(TrainerCallback):
    """Records, at each on_save, what a loader would make of the checkpoint."""

    def __init__(self, public: Path) -> None:
        self.public = public
        self.seen: list[tuple[str, bool, list[str]]] = []

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        out = Path(args.output_dir)
        folder = out / f"checkpoint-{state.global_step}"
        self.seen.append((folder.name, verifies(folder, self.public), sorted(os.listdir(out))))


def only_signed_checkpoints(out: Path, public: Path) -> None:
    """What rotation left: the kept checkpoints, each verifying; no bundle
    anywhere else (no orphan)."""
    assert sorted(p.name for p in out.glob("checkpoint-*")) == KEPT
    for name in KEPT:
        assert modelsign.verify(out / name, [public]).signed_by.method == "key"
    bundles = sorted(str(p.relative_to(out)) for p in out.rglob("*.sig"))
    assert bundles == [f"{name}/model.sig" for name in KEPT]


def test_signing_trainer_signs_each_checkpoint_before_the_callbacks_and_the_final_model(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    key, public = keypair
    out = tmp_path / "run"
    watch = Watch(public)
    trainer = make_trainer(SigningTrainer, out, callbacks=[watch], signer=key)
    trainer.train()
    # Each checkpoint verified when the first callback saw it; checkpoint-2
    # was rotated out before on_save of step 6, and its bundle with it.
    assert watch.seen == [
        ("checkpoint-2", True, ["checkpoint-2"]),
        ("checkpoint-4", True, ["checkpoint-2", "checkpoint-4"]),
        ("checkpoint-6", True, KEPT),
    ]
    only_signed_checkpoints(out, public)

    trainer.save_model(str(tmp_path / "final"))
    assert modelsign.verify(tmp_path / "final", [public]).files == (
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "training_args.bin",
    )
    trainer.save_model()  # into output_dir, beside the checkpoints: signed without them
    assert (
        modelsign.verify(out, [public]).files
        == modelsign.verify(tmp_path / "final", [public]).files
    )
    with hooks.enforce(Policy.of([public])):
        transformers.GPT2LMHeadModel.from_pretrained(out)  # the root folder, verified whole
        transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "final")


def test_a_checkpoint_tampered_between_save_and_load_is_refused(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    key, public = keypair
    out = tmp_path / "run"
    make_trainer(SigningTrainer, out, signer=key).train()
    flip_byte(out / "checkpoint-4" / "model.safetensors")
    with hooks.enforce(Policy.of([public])):
        with pytest.raises(FileDigestMismatchError, match=r"model\.safetensors"):
            transformers.GPT2LMHeadModel.from_pretrained(out / "checkpoint-4")
        with pytest.raises(FileDigestMismatchError, match=r"model\.safetensors"):
            make_trainer(SigningTrainer, out, signer=key).train(
                resume_from_checkpoint=str(out / "checkpoint-4")
            )
        # The intact checkpoint resumes under enforcement: weights, optimizer,
        # scheduler and RNG state all load.
        resumed = make_trainer(SigningTrainer, out, signer=key)
        resumed.train(resume_from_checkpoint=str(out / "checkpoint-6"))
        assert resumed.state.global_step >= 6


class TryToLoad(TrainerCallback):
    """A callback before SigningCallback: loads the new checkpoint under enforcement."""

    def __init__(self, public: Path) -> None:
        self.public = public
        self.refusals: list[str] = []

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        with hooks.enforce(Policy.of([self.public])):
            try:
                transformers.GPT2LMHeadModel.from_pretrained(folder)
            except LoadRefusedError as e:
                self.refusals.append(str(e))


def test_signing_callback_signs_each_checkpoint_and_until_then_it_is_refused(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    """An unchanged Trainer with SigningCallback: before it runs, a checkpoint
    has no bundle and enforcement refuses it (fails closed); after, it
    verifies; rotation leaves no orphan bundle."""
    key, public = keypair
    out = tmp_path / "run"
    before, after = TryToLoad(public), Watch(public)
    trainer = make_trainer(Trainer, out, callbacks=[before, SigningCallback(key), after])
    trainer.train()
    assert len(before.refusals) == 3
    assert all("model.sig: no signature file" in refusal for refusal in before.refusals)
    assert [(name, ok) for name, ok, _ in after.seen] == [
        ("checkpoint-2", True),
        ("checkpoint-4", True),
        ("checkpoint-6", True),
    ]
    only_signed_checkpoints(out, public)


def test_signing_callback_refuses_to_guess_where_a_checkpoint_is(
    tmp_path: Path, other_keypair: tuple[Path, Path]
) -> None:
    trainer = make_trainer(Trainer, tmp_path / "run")
    trainer.state.global_step = 7  # no checkpoint-7: as in a hyperparameter-search trial
    with pytest.raises(
        UsageError, match=r"checkpoint-7: no such checkpoint folder.*SigningTrainer"
    ):
        SigningCallback(other_keypair[0]).on_save(trainer.args, trainer.state, trainer.control)


class LocalHub(Trainer):
    """Transformers' pushes, stopped at the upload (no Hub here): records
    what is on disk when the Trainer would upload."""

    def __init__(self, *args: Any, public: Path, **kwargs: Any) -> None:
        self.public = public
        self.pushes: list[tuple[str, bool, list[str]]] = []
        self.stop_before_upload = False
        super().__init__(*args, **kwargs)

    def init_hf_repo(self, token: str | None = None, private: bool | None = None) -> None:
        self.hub_model_id = "local/tiny"  # and no repository created

    def _push_from_checkpoint(self, checkpoint_folder: str) -> None:
        # The checkpoint push: what the Trainer uploads is on disk now.
        folder = Path(checkpoint_folder)
        self.pushes.append(
            (folder.name, verifies(folder, self.public), sorted(os.listdir(folder.parent)))
        )

    def _finish_current_push(self) -> None:
        # push_to_hub's last step before it uploads output_dir.
        super()._finish_current_push()
        if self.stop_before_upload:
            raise UploadStopped(sorted(os.listdir(self.args.output_dir)))


class UploadStopped(Exception):
    pass


#: Push each checkpoint (to LocalHub), as last-checkpoint/.
PUSH = {"push_to_hub": True, "hub_strategy": "checkpoint"}


class SigningLocalHub(SigningTrainer, LocalHub):
    """SigningTrainer as a mixin over another Trainer subclass."""


def test_signing_trainer_signs_before_the_push(tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    key, public = keypair
    out = tmp_path / "run"
    trainer = make_trainer(SigningLocalHub, out, args=PUSH, signer=key, public=public)
    trainer.train()
    # Each checkpoint verified when the push began, before the rotation
    # (checkpoint-2 still there at step 6).
    assert trainer.pushes == [
        ("checkpoint-2", True, ["checkpoint-2"]),
        ("checkpoint-4", True, ["checkpoint-2", "checkpoint-4"]),
        ("checkpoint-6", True, ["checkpoint-2", "checkpoint-4", "checkpoint-6"]),
    ]
    only_signed_checkpoints(out, public)

    # push_to_hub: output_dir is saved, its model card written, then it is
    # signed (checkpoints left out), then uploaded.
    trainer.stop_before_upload = True
    with pytest.raises(UploadStopped) as stopped:
        trainer.push_to_hub()
    assert "README.md" in stopped.value.args[0]
    assert "README.md" in modelsign.verify(out, [public]).files
    assert not any(f.startswith("checkpoint-") for f in modelsign.verify(out, [public]).files)


def test_an_unchanged_trainer_pushes_before_the_callback_signs(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    """Why SigningTrainer exists: with SigningCallback the Trainer pushes the
    checkpoint before any callback runs, unsigned."""
    key, public = keypair
    out = tmp_path / "run"
    trainer = make_trainer(
        LocalHub, out, args=PUSH, callbacks=[SigningCallback(key)], public=public
    )
    trainer.train()
    assert [(name, ok) for name, ok, _ in trainer.pushes] == [
        ("checkpoint-2", False),
        ("checkpoint-4", False),
        ("checkpoint-6", False),
    ]
    only_signed_checkpoints(out, public)  # signed, after the push


def test_the_private_trainer_methods_signing_trainer_overrides_are_there() -> None:
    """SigningTrainer relies on these private methods of transformers'
    Trainer (their order is shown by the tests above): this fails when one
    changes its name or parameters."""
    expected = {
        "_save_checkpoint": ["self", "model", "trial"],
        "_push_from_checkpoint": ["self", "checkpoint_folder"],
        "_get_output_dir": ["self", "trial"],
        "save_model": ["self", "output_dir", "_internal_call"],
    }
    for name, parameters in expected.items():
        assert list(inspect.signature(getattr(Trainer, name)).parameters) == parameters, name
    assert transformers.trainer_utils.PREFIX_CHECKPOINT_DIR == "checkpoint"


class FileSizeLimit(TrainerCallback):
    """From the first on_save on (checkpoint-2 is signed by then), the next
    save fails, or with ``kill`` crashes, in the middle of the weights."""

    def __init__(self, kill: bool = False) -> None:
        self.kill = kill
        self.lift: Callable[[], None] = lambda: None

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.lift = limit_file_size(kill=self.kill)


def only_the_first_checkpoint_is_vouched_for(out: Path, public: Path) -> None:
    assert modelsign.verify(out / "checkpoint-2", [public])
    partial = out / "checkpoint-4"
    assert "config.json" in os.listdir(partial)  # the save began
    weights = partial / "model.safetensors"  # safetensors writes it aside, then renames it
    assert not weights.exists() or weights.stat().st_size == FILE_SIZE_LIMIT
    assert not (partial / "model.sig").exists()
    with hooks.enforce(Policy.of([public])), pytest.raises(LoadRefusedError, match="no signature"):
        transformers.GPT2LMHeadModel.from_pretrained(partial)


def test_a_save_that_fails_midway_leaves_no_bundle(
    tmp_path: Path, other_keypair: tuple[Path, Path]
) -> None:
    key, public = other_keypair
    out = tmp_path / "run"
    limit = FileSizeLimit()
    trainer = make_trainer(SigningTrainer, out, callbacks=[limit], signer=key)
    try:
        with pytest.raises(Exception, match="File too large"):
            trainer.train()
    finally:
        limit.lift()
    only_the_first_checkpoint_is_vouched_for(out, public)


CRASH = """
import sys
from pathlib import Path
from tests.test_integration_transformers import FileSizeLimit, SigningTrainer, make_trainer

out, key = Path(sys.argv[1]), sys.argv[2]
make_trainer(SigningTrainer, out, callbacks=[FileSizeLimit(kill=True)], signer=key).train()
"""


def test_a_process_killed_during_the_save_leaves_no_bundle(
    tmp_path: Path, other_keypair: tuple[Path, Path]
) -> None:
    key, public = other_keypair
    run_until_killed(CRASH, tmp_path / "run", key)
    only_the_first_checkpoint_is_vouched_for(tmp_path / "run", public)


def test_import_modelsign_imports_no_framework() -> None:
    code = (
        "import sys, modelsign, modelsign.integrations\n"
        "print(sorted({'torch', 'transformers', 'lightning', 'accelerate'} & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_the_readme_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    run_readme_example("Signing Hugging Face Trainer checkpoints")
    assert modelsign.verify("run/final", ["keys/release.pub"])
    assert modelsign.verify("run/checkpoint-6", ["keys/release.pub"])
