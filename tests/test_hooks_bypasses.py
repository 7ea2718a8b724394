"""Regressions for bypasses found in review: each would have let unverified
bytes reach a deserializer (or verified bytes reach it wrongly)."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import pickle
import threading
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch

import modelsign
from modelsign import hooks
from modelsign.errors import (
    ConfigError,
    ForbiddenGlobalError,
    LoadRefusedError,
    UnsafeLoadError,
    UnsignedFileError,
)
from modelsign.policy import Policy


@pytest.fixture
def policy(keypair: tuple[Path, Path]) -> Policy:
    return Policy.of([keypair[1]])


class LoadsAnotherFile:
    """Unpickling this loads a file by path (as lazy sub-models do)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (functools.partial(torch.load, weights_only=False), (self.path,))


def _unsigned_pt(tmp_path: Path) -> Path:
    path = tmp_path / "elsewhere" / "unsigned.pt"
    path.parent.mkdir()
    torch.save({"w": torch.zeros(1)}, path)
    return path


def test_a_load_nested_in_pickle_loads_is_still_checked(policy: Policy, tmp_path: Path) -> None:
    blob = pickle.dumps(LoadsAnotherFile(str(_unsigned_pt(tmp_path))))
    # The audit layer refuses the payload's first global: nothing runs.
    with hooks.enforce(policy), pytest.raises(ForbiddenGlobalError, match="functools.partial"):
        pickle.loads(blob)
    # With unverified pickles allowed, the load it makes by path is still checked.
    allow = dataclasses.replace(policy, unverified_pickles="allow")
    with hooks.enforce(allow), pytest.raises(UnsignedFileError, match="unsigned.pt"):
        pickle.loads(blob)


def test_a_load_nested_in_a_verified_load_is_still_checked(
    policy: Policy, tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "outer.pkl").write_bytes(pickle.dumps(LoadsAnotherFile(str(_unsigned_pt(tmp_path)))))
    modelsign.sign(model, keypair[0])
    with hooks.enforce(policy), open(model / "outer.pkl", "rb") as f:
        with pytest.raises(UnsignedFileError, match="unsigned.pt"):
            pickle.load(f)


def test_pickle_from_a_named_fifo_is_refused(policy: Policy, tmp_path: Path) -> None:
    fifo = tmp_path / "model.pkl"
    os.mkfifo(fifo)

    def writer() -> None:
        # The reader refuses without reading: the write may find no reader.
        with contextlib.suppress(BrokenPipeError), open(fifo, "wb") as w:
            w.write(pickle.dumps({"x": 1}))

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        with hooks.enforce(policy), open(fifo, "rb") as f:
            with pytest.raises(UnsafeLoadError, match="FIFO or device"):
                pickle.load(f)
    finally:
        thread.join(timeout=10)


def test_a_large_signed_pickle_loads_from_its_first_byte(
    policy: Policy, tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    model = tmp_path / "model"
    model.mkdir()
    payload = {"blob": b"\x01" * (40 * 1024 * 1024)}  # over the memfd threshold
    (model / "big.pkl").write_bytes(pickle.dumps(payload, protocol=5))
    modelsign.sign(model, keypair[0])
    with hooks.enforce(policy), open(model / "big.pkl", "rb") as f:
        assert pickle.load(f) == payload


def test_enforce_cannot_swap_the_process_policy(
    policy: Policy, tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    warn = tmp_path / "warn.toml"
    warn.write_text(f'[trust]\nkeys = ["{keypair[1]}"]\n[enforce]\nmode = "warn"\n')
    hooks.install(policy)
    with pytest.raises(ConfigError, match="already active"), hooks.enforce(warn):
        pass
    with hooks.enforce(policy) as active:  # the same policy: allowed, and left installed
        assert active == policy
    assert hooks.installed()


def test_a_single_file_bundle_above_vouches_only_for_its_own_file(
    policy: Policy, tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    folder = tmp_path / "single"
    folder.mkdir()
    torch.save({"w": torch.ones(2)}, folder / "a.pt")
    modelsign.sign(folder / "a.pt", keypair[0], signature=folder / "model.sig")
    copy = folder / "sub" / "renamed.bin"
    copy.parent.mkdir()
    copy.write_bytes((folder / "a.pt").read_bytes())
    with hooks.enforce(policy):
        assert torch.equal(torch.load(folder / "a.pt")["w"], torch.ones(2))
        with pytest.raises(UnsignedFileError, match="renamed.bin"):
            torch.load(copy)


def test_joblib_and_numpy_file_keywords(
    policy: Policy, tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    model = tmp_path / "model"
    model.mkdir()
    joblib.dump({"a": np.arange(3)}, model / "m.joblib")
    np.save(model / "a.npy", np.arange(4))
    modelsign.sign(model, keypair[0])
    with hooks.enforce(policy):
        assert list(joblib.load(filename=model / "m.joblib")["a"]) == [0, 1, 2]
        assert list(np.load(file=model / "a.npy")) == [0, 1, 2, 3]


def test_auto_classes_verify_the_directory_first(
    policy: Policy, tmp_path: Path, keypair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from transformers import AutoConfig, BertConfig

    model = tmp_path / "bert"
    BertConfig(
        vocab_size=10, hidden_size=8, num_hidden_layers=1, num_attention_heads=2
    ).save_pretrained(model)
    modelsign.sign(model, keypair[0])
    with hooks.enforce(policy):
        assert AutoConfig.from_pretrained(model).hidden_size == 8
        changed = json.loads((model / "config.json").read_text())
        changed["hidden_size"] = 16
        (model / "config.json").write_text(json.dumps(changed))
        with pytest.raises(LoadRefusedError, match="config.json"):
            AutoConfig.from_pretrained(model)


def test_torch_global_mmap_default_is_honoured(
    policy: Policy, tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    from torch.utils.serialization import config

    model = tmp_path / "model"
    model.mkdir()
    torch.save({"w": torch.arange(4.0)}, model / "w.pt")
    modelsign.sign(model, keypair[0])
    before = config.load.mmap
    config.load.mmap = True  # torch's config proxy: set and restore, not monkeypatch
    try:
        with hooks.enforce(policy):  # no mmap= argument: torch's default says mmap
            assert torch.equal(torch.load(model / "w.pt")["w"], torch.arange(4.0))
    finally:
        config.load.mmap = before
