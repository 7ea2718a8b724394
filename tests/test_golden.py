"""Golden bundles: signatures written by an earlier modelsign keep verifying.

``manifests/golden/`` holds a small model, two bundles over it and the public
keys that verify them (their private keys were thrown away). A change that
breaks these breaks every bundle users already have.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import modelsign
from modelsign.bundle import Bundle
from modelsign.errors import DigestMismatchError, UntrustedSignerError

GOLDEN = Path(__file__).resolve().parents[1] / "manifests" / "golden"
ALGORITHMS = ["ed25519", "ecdsa-p256"]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_golden_bundle_verifies(algorithm: str) -> None:
    result = modelsign.verify(
        GOLDEN / "model",
        [GOLDEN / f"{algorithm}.pub"],
        signature=GOLDEN / f"{algorithm}.sig",
    )
    assert result.signed_by.algorithm == algorithm
    assert result.files == ("config.json", "tokenizer/vocab.txt", "weights.pt")
    weights = next(r for r in result.manifest.resources if r.name == "weights.pt")
    assert weights.archive == "zip"
    assert any(m.name.endswith("data.pkl") for m in weights.members)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_golden_bundle_bytes_round_trip(algorithm: str) -> None:
    data = (GOLDEN / f"{algorithm}.sig").read_bytes()
    assert Bundle.from_bytes(data).to_bytes() == data


def test_golden_bundles_are_not_interchangeable() -> None:
    with pytest.raises(UntrustedSignerError):
        modelsign.verify(
            GOLDEN / "model", [GOLDEN / "ed25519.pub"], signature=GOLDEN / "ecdsa-p256.sig"
        )


def test_golden_model_tampered(tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(GOLDEN / "model", model)
    (model / "config.json").write_text('{"in": 3, "out": 3}\n')
    with pytest.raises(DigestMismatchError, match="config.json: digest mismatch"):
        modelsign.verify(model, [GOLDEN / "ed25519.pub"], signature=GOLDEN / "ed25519.sig")
