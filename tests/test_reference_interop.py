"""Interoperability with the reference implementation, model_signing.

modelsign's ECDSA P-256 bundles must verify with model_signing's Python API and
its CLI, and tampering must make both reject them; model_signing's bundles must
verify with modelsign, and tampering must raise a precise DigestMismatchError.
Everything is real: keys, torch checkpoints, files and subprocesses.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import struct
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import require

# Not installed: the module skips (outside strict mode). Installed but broken
# (model_signing 1.1.1 without pyopenssl, say): it fails with the real error.
require("model_signing", "the interoperability tests run the reference implementation")
torch = require("torch", "torch writes the real checkpoints")

import model_signing.signing  # noqa: E402
import model_signing.verifying  # noqa: E402

import modelsign  # noqa: E402
from modelsign.errors import DigestMismatchError  # noqa: E402
from modelsign.keys import PrivateKey, generate, write_keypair  # noqa: E402

CLI_TIMEOUT = 120


@dataclass(frozen=True)
class KeyPair:
    key: PrivateKey
    private: Path
    public: Path


@dataclass(frozen=True)
class SignedModel:
    """A model signed by modelsign: where it is, its bundle, its weights file."""

    model: Path
    signature: Path
    weights: Path


def _save_linear(path: Path, seed: int = 0) -> None:
    torch.manual_seed(seed)
    torch.save(torch.nn.Linear(4, 2).state_dict(), path)


def _make_model_dir(root: Path) -> Path:
    root.mkdir()
    _save_linear(root / "model.pt")
    (root / "config.json").write_text(
        json.dumps({"architecture": "Linear", "in_features": 4, "out_features": 2}),
        encoding="utf-8",
    )
    (root / "tokenizer").mkdir()
    (root / "tokenizer" / "vocab.txt").write_text("[PAD]\n[UNK]\nhello\nworld\n", encoding="utf-8")
    return root


def _flip_weight_byte(path: Path) -> None:
    """Flip one bit of the first tensor's data inside a torch zip checkpoint:
    a changed weight, with the archive's structure left intact."""
    with zipfile.ZipFile(path) as zf:
        info = next(i for i in zf.infolist() if i.filename.endswith("/data/0"))
    data = bytearray(path.read_bytes())
    header = info.header_offset
    assert data[header : header + 4] == b"PK\x03\x04"
    name_len, extra_len = struct.unpack_from("<HH", data, header + 26)
    start = header + 30 + name_len + extra_len
    data[start] ^= 0x01
    path.write_bytes(bytes(data))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _copy_signed(signed: SignedModel, dest: Path) -> SignedModel:
    """Copy a signed model together with its signature file."""
    if signed.model.is_dir():
        shutil.copytree(signed.model, dest)
        return SignedModel(
            dest,
            dest / signed.signature.relative_to(signed.model),
            dest / signed.weights.relative_to(signed.model),
        )
    dest.mkdir()
    model = Path(shutil.copy2(signed.model, dest / signed.model.name))
    signature = Path(shutil.copy2(signed.signature, dest / signed.signature.name))
    return SignedModel(model, signature, model)


def _reference_verify_api(signed: SignedModel, public: Path) -> None:
    model_signing.verifying.Config().use_elliptic_key_verifier(public_key=public).verify(
        signed.model, signed.signature
    )


def _reference_verify_cli(signed: SignedModel, public: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "model_signing",
            "verify",
            "key",
            str(signed.model),
            "--signature",
            str(signed.signature),
            "--public_key",
            str(public),
        ],
        capture_output=True,
        text=True,
        cwd=signed.model.parent,
        timeout=CLI_TIMEOUT,
        check=False,
    )


def _statement(signature: Path) -> dict[str, object]:
    bundle = json.loads(signature.read_bytes())
    statement: dict[str, object] = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    return statement


@pytest.fixture
def keypair(tmp_path: Path) -> KeyPair:
    key = generate("ecdsa-p256")
    private, public = write_keypair(key, str(tmp_path / "k"), None)
    return KeyPair(key, private, public)


@pytest.fixture(params=["directory", "single-file"])
def signed(request: pytest.FixtureRequest, tmp_path: Path, keypair: KeyPair) -> SignedModel:
    """A model signed by modelsign with an ECDSA P-256 key, in both shapes."""
    if request.param == "directory":
        model = _make_model_dir(tmp_path / "model")
        weights = model / "model.pt"
    else:
        (tmp_path / "single").mkdir()
        model = weights = tmp_path / "single" / "linear.pt"
        _save_linear(model)
    result = modelsign.sign(model, keypair.private)
    expected_sig = model / "model.sig" if model.is_dir() else model.with_name("linear.pt.sig")
    assert result.signature == expected_sig
    assert expected_sig.is_file()
    return SignedModel(model, result.signature, weights)


# --------------------------------------------------------------------------
# model_signing verifies what modelsign signs.


def test_reference_api_accepts_modelsign_bundle(signed: SignedModel, keypair: KeyPair) -> None:
    _reference_verify_api(signed, keypair.public)


def test_reference_cli_accepts_modelsign_bundle(signed: SignedModel, keypair: KeyPair) -> None:
    proc = _reference_verify_cli(signed, keypair.public)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "Verification succeeded" in proc.stdout


def test_reference_api_rejects_wrong_key(signed: SignedModel, tmp_path: Path) -> None:
    _, other = write_keypair(generate("ecdsa-p256"), str(tmp_path / "other"), None)
    with pytest.raises(ValueError, match="Key mismatch"):
        _reference_verify_api(signed, other)


def test_reference_api_rejects_tampered_weights(
    signed: SignedModel, keypair: KeyPair, tmp_path: Path
) -> None:
    copy = _copy_signed(signed, tmp_path / "tampered")
    _reference_verify_api(copy, keypair.public)  # the untouched copy verifies
    _flip_weight_byte(copy.weights)
    name = "." if signed.model.is_file() else "model.pt"
    with pytest.raises(ValueError, match=rf"Hash mismatch for '{name}'"):
        _reference_verify_api(copy, keypair.public)


def test_reference_cli_rejects_tampered_weights(
    signed: SignedModel, keypair: KeyPair, tmp_path: Path
) -> None:
    copy = _copy_signed(signed, tmp_path / "tampered")
    _flip_weight_byte(copy.weights)
    proc = _reference_verify_cli(copy, keypair.public)
    assert proc.returncode != 0, f"tampered model accepted:\n{proc.stdout}"
    assert "Hash mismatch" in proc.stderr, proc.stderr
    assert "Verification succeeded" not in proc.stdout


def test_reference_rejects_extra_file(tmp_path: Path, keypair: KeyPair) -> None:
    model = _make_model_dir(tmp_path / "model")
    signature = modelsign.sign(model, keypair.private).signature
    signed = SignedModel(model, signature, model / "model.pt")
    (model / "tokenizer" / "merges.txt").write_text("h e\n", encoding="utf-8")

    with pytest.raises(ValueError, match=r"Extra files found.*tokenizer/merges\.txt"):
        _reference_verify_api(signed, keypair.public)
    proc = _reference_verify_cli(signed, keypair.public)
    assert proc.returncode != 0, f"model with an extra file accepted:\n{proc.stdout}"
    assert "tokenizer/merges.txt" in proc.stderr, proc.stderr


# --------------------------------------------------------------------------
# modelsign verifies what model_signing signs.


@pytest.fixture
def reference_signed(tmp_path: Path, keypair: KeyPair) -> SignedModel:
    """A model directory signed by model_signing, the bundle at MODEL/model.sig."""
    model = _make_model_dir(tmp_path / "model")
    signature = model / "model.sig"
    model_signing.signing.Config().use_elliptic_key_signer(private_key=keypair.private).sign(
        model, signature
    )
    assert signature.is_file()
    return SignedModel(model, signature, model / "model.pt")


def test_modelsign_verifies_reference_bundle(
    reference_signed: SignedModel, keypair: KeyPair
) -> None:
    result = modelsign.verify(
        reference_signed.model, [keypair.public], signature=reference_signed.signature
    )
    public = keypair.key.public_key()
    assert result.signed_by.method == "key"
    assert result.signed_by.key_id == public.key_id
    assert result.signed_by.algorithm == public.algorithm
    assert result.manifest.serialization.hash_type == "sha256"
    assert result.files == ("config.json", "model.pt", "tokenizer/vocab.txt")
    subject = _statement(reference_signed.signature)["subject"]
    assert isinstance(subject, list)
    assert result.root_digest == subject[0]["digest"]["sha256"]


def test_modelsign_verifies_reference_bundle_at_default_path(
    reference_signed: SignedModel, keypair: KeyPair
) -> None:
    result = modelsign.verify(reference_signed.model, [keypair.public])
    assert result.signature == reference_signed.signature


def test_modelsign_rejects_tampered_reference_model(
    reference_signed: SignedModel, keypair: KeyPair, tmp_path: Path
) -> None:
    copy = _copy_signed(reference_signed, tmp_path / "tampered")
    expected = _sha256(copy.weights)
    _flip_weight_byte(copy.weights)
    actual = _sha256(copy.weights)
    assert expected != actual

    with pytest.raises(DigestMismatchError) as excinfo:
        modelsign.verify(copy.model, [keypair.public], signature=copy.signature)
    message = str(excinfo.value)
    assert "model.pt" in message
    assert expected in message
    assert actual in message
    (mismatch,) = excinfo.value.mismatches
    assert (mismatch.kind, mismatch.name, mismatch.expected, mismatch.actual) == (
        "digest",
        "model.pt",
        expected,
        actual,
    )
