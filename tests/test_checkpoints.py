"""Signing where checkpoints are written: modelsign.checkpoints."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch

import modelsign
from modelsign import checkpoints, hooks
from modelsign.errors import FileDigestMismatchError, UnsignedFileError
from modelsign.policy import Policy
from tests.conftest import flip_byte

STATE = {"w": torch.arange(6.0), "b": torch.ones(2)}


def test_save_writes_a_signed_checkpoint_that_the_hook_loads(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    path = tmp_path / "ckpt" / "model.pt"
    result = checkpoints.save(STATE, path, keypair[0])
    assert result.signature == path.with_name("model.pt.sig")
    assert sorted(os.listdir(path.parent)) == ["model.pt", "model.pt.sig"]  # no leftovers
    assert modelsign.verify(path, [keypair[1]]).files == (".",)
    with hooks.enforce(Policy.of([keypair[1]])):
        loaded = torch.load(path)
        assert torch.equal(loaded["w"], STATE["w"])
        flip_byte(path, path.stat().st_size // 2)
        with pytest.raises(FileDigestMismatchError, match="model.pt"):
            torch.load(path)


def test_the_bundle_takes_its_place_before_the_file(
    tmp_path: Path, keypair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """At no moment is model.pt there without a bundle for its bytes: the
    bundle is renamed into place first."""
    path = tmp_path / "model.pt"
    checkpoints.save({"old": torch.zeros(1)}, path, keypair[0])
    seen: list[tuple[str, bool]] = []
    real_replace = os.replace

    def watching(src: Any, dst: Any) -> None:
        real_replace(src, dst)
        # After each step into place: the final file verifies, or is refused.
        step = {path: "file", path.with_name("model.pt.sig"): "bundle"}.get(Path(dst))
        if step is None:  # a write inside the staging folder
            return
        try:
            modelsign.verify(path, [keypair[1]])
            seen.append((step, True))
        except modelsign.VerificationError:
            seen.append((step, False))  # the old file, the new bundle: refused

    monkeypatch.setattr(os, "replace", watching)
    checkpoints.save({"new": torch.ones(1)}, path, keypair[0])
    assert seen == [("bundle", False), ("file", True)]


def test_a_failed_save_leaves_nothing_new(tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    class Unpicklable:
        def __reduce__(self) -> Any:
            raise RuntimeError("cannot pickle this")

    with pytest.raises(RuntimeError, match="cannot pickle"):
        checkpoints.save({"x": Unpicklable()}, tmp_path / "model.pt", keypair[0])
    assert os.listdir(tmp_path) == []


def test_signed_folder_appears_whole_and_signed(tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    final = tmp_path / "export" / "bert"
    with checkpoints.signed_folder(final, keypair[0]) as folder:
        assert not final.exists()
        (folder / "config.json").write_text("{}")
        torch.save(STATE, folder / "weights.pt")
        assert not final.exists()
    assert sorted(os.listdir(final)) == ["config.json", "model.sig", "weights.pt"]
    assert os.listdir(final.parent) == ["bert"]
    assert modelsign.verify(final, [keypair[1]]).files == ("config.json", "weights.pt")
    with checkpoints.signed_folder(final, keypair[0]) as folder:  # replaces it
        (folder / "config.json").write_text('{"v": 2}')
    assert modelsign.verify(final, [keypair[1]]).files == ("config.json",)
    with pytest.raises(ValueError, match="boom"):
        _write_then_fail(final, keypair[0])
    assert modelsign.verify(final, [keypair[1]]).files == ("config.json",)  # untouched
    assert os.listdir(final.parent) == ["bert"]


def _write_then_fail(final: Path, key: Path) -> None:
    with checkpoints.signed_folder(final, key) as folder:
        (folder / "partial").write_text("x")
        raise ValueError("boom")


def test_an_unsigned_checkpoint_is_still_refused_by_the_hook(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    torch.save(STATE, tmp_path / "plain.pt")
    with hooks.enforce(Policy.of([keypair[1]])), pytest.raises(UnsignedFileError):
        torch.load(tmp_path / "plain.pt")
