"""Shared fixtures: real keys, real models, the read-only shared test data."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from modelsign import keys

SHARED = Path(__file__).resolve().parents[2] / "shared" / "testdata"


def shared(*parts: str) -> Path:
    """A path under ../shared/testdata, or skip when that folder is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (a fresh clone has no ../shared/testdata)")
    return path


@pytest.fixture(autouse=True)
def _policy_environment_left_as_found() -> Iterator[None]:
    """Enforcement sets MODELSIGN_POLICY for child processes; a test must
    leave it as it found it, or later tests' children would enforce."""
    before = os.environ.get("MODELSIGN_POLICY")
    yield
    assert os.environ.get("MODELSIGN_POLICY") == before, "MODELSIGN_POLICY leaked out of a test"


@pytest.fixture(scope="session")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keys")


@pytest.fixture(scope="session", params=["ed25519", "ecdsa-p256"])
def keypair(request: pytest.FixtureRequest, key_dir: Path) -> tuple[Path, Path]:
    """(private key path, public key path), unencrypted, per algorithm."""
    prefix = key_dir / str(request.param)
    if not prefix.with_suffix(".key").exists():
        keys.write_keypair(keys.generate(str(request.param)), prefix, None)
    return Path(f"{prefix}.key"), Path(f"{prefix}.pub")


@pytest.fixture(scope="session")
def other_keypair(key_dir: Path) -> tuple[Path, Path]:
    prefix = key_dir / "other"
    keys.write_keypair(keys.generate("ed25519"), prefix, None)
    return Path(f"{prefix}.key"), Path(f"{prefix}.pub")


def write_torch_model(path: Path, seed: int = 0) -> None:
    import torch

    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    torch.save(net.state_dict(), path)


@pytest.fixture
def make_model(tmp_path: Path) -> Callable[..., Path]:
    """A model directory: model.pt (a real torch state_dict), config.json and a
    nested tokenizer file."""

    def make(name: str = "model") -> Path:
        root = tmp_path / name
        (root / "tokenizer").mkdir(parents=True)
        write_torch_model(root / "model.pt")
        (root / "config.json").write_text(json.dumps({"layers": [8, 4, 2]}))
        (root / "tokenizer" / "vocab.txt").write_text("a\nb\nc\n")
        return root

    return make


def flip_byte(path: Path, offset: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    pos = len(data) // 2 if offset is None else offset
    data[pos] ^= 0x01
    path.write_bytes(bytes(data))
