"""modelsign.integrations.lightning with real Lightning training: a tiny model
for a few epochs on the CPU, real keys, real files, AsyncCheckpointIO's real
background thread."""

from __future__ import annotations

import os
import pickle
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import flip_byte, require
from tests.integrationkit import FILE_SIZE_LIMIT, run_readme_example, run_until_killed

torch = require("torch", "Lightning trains a torch model")
pl = require("lightning.pytorch", "the integration under test")

from lightning.pytorch.callbacks import ModelCheckpoint  # noqa: E402
from lightning.pytorch.plugins.io import AsyncCheckpointIO  # noqa: E402

import modelsign  # noqa: E402
from modelsign import hooks  # noqa: E402
from modelsign.errors import FileDigestMismatchError, UsageError  # noqa: E402
from modelsign.integrations.lightning import SigningCheckpointIO  # noqa: E402
from modelsign.policy import Policy  # noqa: E402

EPOCHS = 4
#: What rotation leaves of four epochs scored 0, 1, 2, 3 (save_top_k=2, and last.ckpt).
KEPT = ["epoch=2-step=6.ckpt", "epoch=3-step=8.ckpt", "last.ckpt"]


class Tiny(pl.LightningModule):
    """A linear layer; its score is the epoch, so each epoch is the new best."""

    def __init__(self, unpicklable_from_epoch: int | None = None) -> None:
        super().__init__()
        self.net = torch.nn.Linear(64, 64)  # 16 KiB of weights
        self.unpicklable_from_epoch = unpicklable_from_epoch

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        x, y = batch
        self.log("score", float(self.current_epoch), on_step=False, on_epoch=True)
        return torch.nn.functional.mse_loss(self.net(x), y)

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        limit = self.unpicklable_from_epoch
        if limit is not None and self.current_epoch >= limit:
            checkpoint["broken"] = Unpicklable()


class Unpicklable:
    def __reduce__(self) -> Any:
        raise RuntimeError("cannot pickle this")


class Recording(SigningCheckpointIO):
    """The plugin, recording where each save ran and what it left on disk."""

    def __init__(self, *args: Any, public: Path | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.public = public
        self.saves: list[tuple[str, str, bool]] = []
        self.removed: list[str] = []

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, **kwargs: Any) -> None:
        super().save_checkpoint(checkpoint, path, **kwargs)
        verified = self.public is not None and bool(modelsign.verify(path, [self.public]))
        self.saves.append((Path(path).name, threading.current_thread().name, verified))

    def remove_checkpoint(self, path: Any) -> None:
        super().remove_checkpoint(path)
        assert not os.path.lexists(path)
        assert not os.path.lexists(f"{path}.sig")
        self.removed.append(Path(path).name)


def loader() -> Any:
    g = torch.Generator().manual_seed(0)
    data = torch.utils.data.TensorDataset(
        torch.randn(16, 64, generator=g), torch.randn(16, 64, generator=g)
    )
    return torch.utils.data.DataLoader(data, batch_size=8)


def trainer(root: Path, plugin: Any, *callbacks: Any, epochs: int = EPOCHS) -> Any:
    checkpoint = ModelCheckpoint(
        dirpath=root / "ckpt", monitor="score", mode="max", save_top_k=2, save_last=True
    )
    return pl.Trainer(
        default_root_dir=root,
        max_epochs=epochs,
        callbacks=[checkpoint, *callbacks],
        plugins=[plugin] if plugin is not None else None,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )


def fit(root: Path, plugin: Any, *callbacks: Any, model: Any = None, **kwargs: Any) -> Path:
    torch.manual_seed(0)
    trainer(root, plugin, *callbacks).fit(model or Tiny(), loader(), **kwargs)
    return root / "ckpt"


def signed_pairs(folder: Path, public: Path) -> list[str]:
    """The checkpoints in ``folder``, each beside its bundle and verifying;
    no bundle without its checkpoint; nothing else, hidden or not."""
    names = sorted(os.listdir(folder))
    checkpoints = [n for n in names if n.endswith(".ckpt")]
    assert names == sorted([*checkpoints, *(f"{n}.sig" for n in checkpoints)])
    for name in checkpoints:
        assert modelsign.verify(folder / name, [public]).files == (".",)
    return checkpoints


class Pace(pl.Callback):
    """Training no faster than checkpointing: each epoch starts once the
    previous epoch's two saves are written (as when an epoch takes longer
    than a save, which AsyncCheckpointIO assumes)."""

    def __init__(self, plugin: Recording) -> None:
        self.plugin = plugin

    def on_train_epoch_start(self, trainer: Any, module: Any) -> None:
        deadline = time.monotonic() + 60
        while len(self.plugin.saves) < 2 * trainer.current_epoch and time.monotonic() < deadline:
            time.sleep(0.005)


@pytest.mark.parametrize("background", [False, True], ids=["sync", "async"])
def test_every_checkpoint_is_signed_and_rotation_removes_its_bundle(
    tmp_path: Path, keypair: tuple[Path, Path], background: bool
) -> None:
    key, public = keypair
    plugin = Recording(key, public=public)
    folder = fit(tmp_path, AsyncCheckpointIO(plugin) if background else plugin, Pace(plugin))
    assert signed_pairs(folder, public) == KEPT
    # Each epoch wrote its top-k checkpoint and last.ckpt, signed when the
    # write returned, in AsyncCheckpointIO's thread when wrapped by it.
    assert [name for name, _, _ in plugin.saves] == [
        name
        for epoch in range(EPOCHS)
        for name in (f"epoch={epoch}-step={2 * (epoch + 1)}.ckpt", "last.ckpt")
    ]
    assert all(verified for _, _, verified in plugin.saves)
    threads = {thread for _, thread, _ in plugin.saves}
    assert (threads != {"MainThread"}) if background else (threads == {"MainThread"})
    assert plugin.removed == ["epoch=0-step=2.ckpt", "epoch=1-step=4.ckpt"]


def test_async_saves_behind_training_still_keep_each_file_with_its_bundle(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    """Training far faster than saving: saves queue up in AsyncCheckpointIO's
    thread while ModelCheckpoint removes older checkpoints from the main one,
    sometimes before their save has run (Lightning issue #14035, with any
    CheckpointIO: such a checkpoint is written after its removal and stays).
    Whatever the interleaving, no file is there without its bundle, and no
    bundle without its file."""
    key, public = keypair
    epochs = 8
    torch.manual_seed(0)
    trainer(tmp_path, AsyncCheckpointIO(SigningCheckpointIO(key)), epochs=epochs).fit(
        Tiny(), loader()
    )
    kept = signed_pairs(tmp_path / "ckpt", public)
    written = {f"epoch={e}-step={2 * (e + 1)}.ckpt" for e in range(epochs)} | {"last.ckpt"}
    assert {"epoch=6-step=14.ckpt", "epoch=7-step=16.ckpt", "last.ckpt"} <= set(kept) <= written


def test_a_checkpoint_tampered_between_save_and_load_is_refused(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    key, public = keypair
    folder = fit(tmp_path, AsyncCheckpointIO(SigningCheckpointIO(key)))
    tampered, intact = folder / "epoch=3-step=8.ckpt", folder / "last.ckpt"
    flip_byte(tampered)
    with hooks.enforce(Policy.of([public])):
        assert isinstance(Tiny.load_from_checkpoint(intact), Tiny)
        with pytest.raises(FileDigestMismatchError, match=r"epoch=3-step=8\.ckpt"):
            Tiny.load_from_checkpoint(tampered)
        with pytest.raises(FileDigestMismatchError, match=r"epoch=3-step=8\.ckpt"):
            fit(tmp_path / "resumed", SigningCheckpointIO(key), ckpt_path=tampered)
        # Resuming from the intact one loads it (and trains one more epoch, signed).
        resumed = tmp_path / "resumed"
        trainer(resumed, SigningCheckpointIO(key), epochs=EPOCHS + 1).fit(
            Tiny(), loader(), ckpt_path=intact
        )
    assert signed_pairs(resumed / "ckpt", public) == ["epoch=4-step=10.ckpt", "last.ckpt"]


@pytest.mark.parametrize("background", [False, True], ids=["sync", "async"])
def test_a_save_that_fails_leaves_nothing_under_the_final_names(
    tmp_path: Path, keypair: tuple[Path, Path], background: bool
) -> None:
    key, public = keypair
    plugin = SigningCheckpointIO(key)
    with pytest.raises(RuntimeError, match="cannot pickle this"):
        fit(
            tmp_path,
            AsyncCheckpointIO(plugin) if background else plugin,
            model=Tiny(unpicklable_from_epoch=1),
        )
    kept = signed_pairs(tmp_path / "ckpt", public)  # and nothing hidden left behind
    # Nothing from epoch 1 on. With AsyncCheckpointIO the error surfaces a save
    # or more later, and ModelCheckpoint, believing the epoch-1 save done, may
    # have removed epoch 0 by then.
    assert "last.ckpt" in kept
    assert set(kept) <= {"epoch=0-step=2.ckpt", "last.ckpt"}
    assert background or kept == ["epoch=0-step=2.ckpt", "last.ckpt"]
    assert torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=False)["epoch"] == 0


CRASH = """
import sys
from pathlib import Path
import lightning.pytorch as pl
from tests.integrationkit import limit_file_size
from tests.test_integration_lightning import SigningCheckpointIO, fit

class LimitFileSize(pl.Callback):
    # Epoch 0 is saved whole; epoch 1's checkpoint is cut short by a kill.
    def on_train_epoch_start(self, trainer, module):
        if trainer.current_epoch == 1:
            limit_file_size(kill=True)

fit(Path(sys.argv[1]), SigningCheckpointIO(sys.argv[2]), LimitFileSize())
"""


def test_a_process_killed_during_the_save_leaves_no_bundle_for_it(
    tmp_path: Path, other_keypair: tuple[Path, Path]
) -> None:
    key, public = other_keypair
    run_until_killed(CRASH, tmp_path, key)
    folder = tmp_path / "ckpt"
    # What the kill left: the hidden staging folder of the epoch-1 checkpoint,
    # holding a partial file and no bundle.
    staging = [p for p in folder.iterdir() if p.name.startswith(".")]
    assert [p.name.startswith(".epoch=1-step=4.ckpt.") for p in staging] == [True]
    assert [p.name for p in staging[0].iterdir()] == ["epoch=1-step=4.ckpt"]
    assert (staging[0] / "epoch=1-step=4.ckpt").stat().st_size == FILE_SIZE_LIMIT
    for p in staging:
        os.rename(p, tmp_path / p.name)  # out of the way: the rest is as before the crash
    assert signed_pairs(folder, public) == ["epoch=0-step=2.ckpt", "last.ckpt"]


def test_remote_paths_are_refused(other_keypair: tuple[Path, Path]) -> None:
    plugin = SigningCheckpointIO(other_keypair[0])
    with pytest.raises(UsageError, match="local files only"):
        plugin.save_checkpoint({}, "s3://bucket/model.ckpt")
    with pytest.raises(UsageError, match="local files only"):
        plugin.remove_checkpoint("s3://bucket/model.ckpt")
    with pytest.raises(TypeError, match="storage_options"):
        plugin.save_checkpoint({}, "model.ckpt", storage_options={"x": 1})


def test_the_plugin_says_why_it_does_not_pickle(other_keypair: tuple[Path, Path]) -> None:
    with pytest.raises(TypeError, match="ddp_spawn"):
        pickle.dumps(SigningCheckpointIO(other_keypair[0]))


def test_the_readme_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    run_readme_example("Signing Lightning checkpoints")
    assert signed_pairs(Path("ckpt"), Path("keys/release.pub"))
