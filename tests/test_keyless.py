"""Keyless signing end to end, against the test suite's own fake Sigstore:
modelsign signs through the real sigstore-python and verifies with the real
Verifier under the fake's trusted root. No network: only 127.0.0.1."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

import modelsign
from modelsign.errors import DigestMismatchError, UntrustedSignerError, UsageError
from modelsign.inspecting import inspect_bundle
from modelsign.policy import SigstoreIdentity
from modelsign.signing import SigstoreSigner
from tests.conftest import flip_byte, require
from tests.fakesigstore import FakeSigstore, fake_sigstore

ALICE = "alice@example.com"


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSigstore]:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for proxy in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy", "ALL_PROXY"):
        monkeypatch.delenv(proxy, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    real_getaddrinfo = socket.getaddrinfo

    def loopback_only(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise OSError(f"test network is loopback only, not {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", loopback_only)
    with fake_sigstore(tmp_path / "fake") as instance:
        yield instance


@pytest.fixture
def model(tmp_path: Path) -> Path:
    root = tmp_path / "model"
    root.mkdir()
    torch.save({"w": torch.arange(6.0)}, root / "weights.pt")
    (root / "config.json").write_text('{"layers": 1}')
    return root


def _sign(model: Path, fake: FakeSigstore, identity: str = ALICE) -> Path:
    result = modelsign.sign(
        model,
        SigstoreSigner(identity_token=fake.token(identity), trust_config=fake.trust_config_path),
    )
    assert result.signed_by.method == "sigstore"
    return result.signature


def _trust(
    fake: FakeSigstore, identity: str = ALICE, issuer: str | None = None
) -> SigstoreIdentity:
    return SigstoreIdentity(identity, issuer or fake.issuer, trust_root=fake.trusted_root_path)


def test_keyless_round_trip(model: Path, fake: FakeSigstore) -> None:
    signature = _sign(model, fake)
    doc = json.loads(signature.read_text())
    material = doc["verificationMaterial"]
    assert "certificate" in material
    assert material["tlogEntries"]
    result = modelsign.verify(model, [_trust(fake)])
    assert result.signed_by.identity == ALICE
    assert result.signed_by.trust_root == str(fake.trusted_root_path)
    assert result.files == ("config.json", "weights.pt")
    # The payload is the same statement the key method signs.
    key_payload = modelsign.signing.build_manifest(
        modelsign.enumerating.enumerate_model(
            model, ignore_paths=modelsign.enumerating.DEFAULT_IGNORES, signature=signature
        ),
        "sha256",
    ).to_payload()
    from modelsign.bundle import Bundle

    assert Bundle.from_bytes(signature.read_bytes()).envelope.payload == key_payload


def test_keyless_refused_for_another_identity_or_issuer(model: Path, fake: FakeSigstore) -> None:
    _sign(model, fake)
    with pytest.raises(UntrustedSignerError, match="alice@example.com.*not trusted"):
        modelsign.verify(model, [_trust(fake, "mallory@example.com")])
    with pytest.raises(UntrustedSignerError, match="not trusted"):
        modelsign.verify(model, [_trust(fake, issuer="https://accounts.google.com")])


def test_keyless_refused_under_the_production_root(model: Path, fake: FakeSigstore) -> None:
    _sign(model, fake)
    with pytest.raises(UntrustedSignerError, match="tuf-repo-cdn.sigstore.dev"):
        modelsign.verify(model, [SigstoreIdentity(ALICE, fake.issuer, "production")])


def test_keyless_tampered_file(model: Path, fake: FakeSigstore) -> None:
    _sign(model, fake)
    (model / "config.json").write_text('{"layers": 2}')
    with pytest.raises(DigestMismatchError, match="config.json"):
        modelsign.verify(model, [_trust(fake)])


def test_keyless_through_the_loader_hook(model: Path, fake: FakeSigstore, tmp_path: Path) -> None:
    _sign(model, fake)
    policy = tmp_path / "policy.toml"
    policy.write_text(
        f'[[trust.sigstore]]\nidentity = "{ALICE}"\nissuer = "{fake.issuer}"\n'
        f'trust_root = "{fake.trusted_root_path}"\n'
    )
    with modelsign.enforce(policy):
        assert torch.equal(torch.load(model / "weights.pt")["w"], torch.arange(6.0))


def test_keyless_cli(model: Path, fake: FakeSigstore, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(fake.token())
    cli = [sys.executable, "-m", "modelsign"]
    env_note = "the fake Sigstore runs in this process; the CLI child reaches it on 127.0.0.1"
    signed = subprocess.run(
        [
            *cli,
            "sign",
            str(model),
            "--sigstore",
            "--identity-token-file",
            str(token),
            "--trust-config",
            str(fake.trust_config_path),
            "-q",
        ],
        capture_output=True,
        text=True,
    )
    assert signed.returncode == 0, (env_note, signed.stderr)
    assert f"Sigstore identity {ALICE}" in signed.stdout
    ok = subprocess.run(
        [
            *cli,
            "verify",
            str(model),
            "--identity",
            ALICE,
            "--issuer",
            fake.issuer,
            "--trust-root",
            str(fake.trusted_root_path),
            "--offline",
        ],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    assert f"Sigstore identity '{ALICE}'" in ok.stdout
    bad = subprocess.run(
        [
            *cli,
            "verify",
            str(model),
            "--identity",
            "mallory@example.com",
            "--issuer",
            fake.issuer,
            "--trust-root",
            str(fake.trusted_root_path),
        ],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1
    info = json.loads(
        subprocess.run(
            [*cli, "inspect", str(model / "model.sig"), "--json"], capture_output=True, text=True
        ).stdout
    )
    assert info["signer"]["identity"] == ALICE
    assert info["signer"]["issuer"] == fake.issuer
    assert isinstance(info["signer"]["log_index"], int)
    assert info["signer"]["integrated_time"]


def test_keyless_needs_an_identity_token(
    model: Path, fake: FakeSigstore, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN", "GITHUB_ACTIONS"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(UsageError, match="no identity token"):
        modelsign.sign(model, SigstoreSigner(trust_config=fake.trust_config_path))
    assert not (model / "model.sig").exists()


def test_model_signing_verifies_a_modelsign_keyless_bundle(
    model: Path, fake: FakeSigstore, tmp_path: Path
) -> None:
    model_signing = require("model_signing", "the reference implementation verifies here")
    _sign(model, fake)
    verifier = model_signing.verifying.Config().use_sigstore_verifier(
        identity=ALICE, oidc_issuer=fake.issuer, trust_config=fake.trust_config_path
    )
    verifier.verify(model, model / "model.sig")
    copy = tmp_path / "copy"
    shutil.copytree(model, copy)
    flip_byte(copy / "config.json", 0)
    with pytest.raises(ValueError):
        verifier.verify(copy, copy / "model.sig")
    info = inspect_bundle(model / "model.sig")
    assert info["signer"]["method"] == "sigstore"
