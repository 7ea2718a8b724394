"""Keyless signing end to end, against the test suite's own fake Sigstore:
modelsign signs through the real sigstore-python and verifies with the real
Verifier under the fake's trusted root. No network: only 127.0.0.1."""

from __future__ import annotations

import base64
import copy
import json
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from cryptography.exceptions import InvalidSignature
from sigstore.errors import Error as SigstoreError
from sigstore.errors import VerificationError as SigstoreVerificationError

import modelsign
from modelsign._backends.certificate import CertificateError
from modelsign._inspecting import inspect_bundle
from modelsign.errors import (
    DigestMismatchError,
    InvalidSignatureError,
    MalformedBundleError,
    UntrustedSignerError,
    UsageError,
)
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
        modelsign._enumerating.enumerate_model(
            model, ignore_paths=modelsign._enumerating.DEFAULT_IGNORES, signature=signature
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
    assert info.signer.method == "sigstore"


# --------------------------------------------------------------------------
# A keyless bundle tampered with, verified through modelsign: each named
# change is refused with one exact class. The DSSE signature is checked by
# modelsign with the Fulcio leaf's key (InvalidSignatureError, from
# cryptography's InvalidSignature); the certificate chain, the log entry and
# the times by sigstore-python (UntrustedSignerError, from its
# VerificationError family); material that cannot be read is a
# MalformedBundleError.

Doc = dict[str, Any]


@dataclass(frozen=True)
class Keyless:
    """A model signed keylessly, the bundle's JSON, and a second bundle that
    the same identity signed over another model (material to transplant)."""

    model: Path
    doc: Doc
    other: Doc


@pytest.fixture
def keyless(model: Path, fake: FakeSigstore, tmp_path: Path) -> Keyless:
    other_model = tmp_path / "other-model"
    other_model.mkdir()
    (other_model / "weights.pt").write_bytes(b"other weights")
    doc = json.loads(_sign(model, fake).read_text())
    other = json.loads(_sign(other_model, fake).read_text())
    return Keyless(model, doc, other)


def _entry(doc: Doc) -> Doc:
    entries: list[Doc] = doc["verificationMaterial"]["tlogEntries"]
    return entries[0]


def _flip(b64: str, index: int | None = None) -> str:
    """``b64`` with one bit of its decoded bytes flipped (the middle byte by default)."""
    raw = bytearray(base64.b64decode(b64, validate=True))
    raw[len(raw) // 2 if index is None else index] ^= 0x01
    return base64.b64encode(bytes(raw)).decode("ascii")


def _flip_set(doc: Doc, other: Doc) -> None:
    promise = _entry(doc)["inclusionPromise"]
    promise["signedEntryTimestamp"] = _flip(promise["signedEntryTimestamp"])


def _flip_proof_hash(doc: Doc, other: Doc) -> None:
    hashes = _entry(doc)["inclusionProof"]["hashes"]
    assert hashes, "the fake log seeds entries so that a proof has hashes"
    hashes[0] = _flip(hashes[0])


def _flip_root_hash(doc: Doc, other: Doc) -> None:
    proof = _entry(doc)["inclusionProof"]
    proof["rootHash"] = _flip(proof["rootHash"])


def _grow_checkpoint(doc: Doc, other: Doc) -> None:
    checkpoint = _entry(doc)["inclusionProof"]["checkpoint"]
    origin, size, rest = checkpoint["envelope"].split("\n", 2)
    checkpoint["envelope"] = f"{origin}\n{int(size) + 1}\n{rest}"


def _edit_body(doc: Doc, other: Doc) -> None:
    """The log entry body, re-encoded as canonical JSON with another payload hash."""
    entry = _entry(doc)
    body = json.loads(base64.b64decode(entry["canonicalizedBody"]))
    body["spec"]["payloadHash"]["value"] = "0" * 64
    text = json.dumps(body, separators=(",", ":"), sort_keys=True)
    entry["canonicalizedBody"] = base64.b64encode(text.encode()).decode()


def _body_of_other(doc: Doc, other: Doc) -> None:
    """The whole log entry of another, genuine signature by the same identity."""
    doc["verificationMaterial"]["tlogEntries"] = [_entry(other)]


def _later_time(doc: Doc, other: Doc) -> None:
    _entry(doc)["integratedTime"] = str(int(_entry(doc)["integratedTime"]) + 1)


def _earlier_time(doc: Doc, other: Doc) -> None:
    _entry(doc)["integratedTime"] = str(int(_entry(doc)["integratedTime"]) - 3600)


def _at(doc: Doc, path: str) -> tuple[Any, Any]:
    """The container and key of a dotted ``path`` (``tlog`` = the log entry,
    a number = a list index)."""
    parts: list[str] = []
    for part in path.split("."):
        parts += ["tlogEntries", "0"] if part == "tlog" else [part]
    *parents, last = parts
    node: Any = doc
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    return node, int(last) if last.isdigit() else last


def _set(path: str, value: object) -> Callable[[Doc, Doc], None]:
    def mutate(doc: Doc, other: Doc) -> None:
        node, key = _at(doc, path)
        node[key] = value

    return mutate


def _delete(path: str) -> Callable[[Doc, Doc], None]:
    def mutate(doc: Doc, other: Doc) -> None:
        node, key = _at(doc, path)
        del node[key]

    return mutate


def _junk_in(path: str) -> Callable[[Doc, Doc], None]:
    """Characters that are not base64 put before a base64 field's value."""

    def mutate(doc: Doc, other: Doc) -> None:
        node, key = _at(doc, path)
        node[key] = "!" + node[key]

    return mutate


def _flip_dsse_signature(doc: Doc, other: Doc) -> None:
    signature = doc["dsseEnvelope"]["signatures"][0]
    signature["sig"] = _flip(signature["sig"])


def _signature_of_other(doc: Doc, other: Doc) -> None:
    doc["dsseEnvelope"]["signatures"] = other["dsseEnvelope"]["signatures"]


def _payload_of_other(doc: Doc, other: Doc) -> None:
    doc["dsseEnvelope"]["payload"] = other["dsseEnvelope"]["payload"]


def _certificate_of_other(doc: Doc, other: Doc) -> None:
    doc["verificationMaterial"]["certificate"] = other["verificationMaterial"]["certificate"]


def _envelope_and_certificate_of_other(doc: Doc, other: Doc) -> None:
    """Another genuine signature (certificate, envelope), with this log entry."""
    _certificate_of_other(doc, other)
    doc["dsseEnvelope"] = other["dsseEnvelope"]


def _flip_certificate_signature(doc: Doc, other: Doc) -> None:
    certificate = doc["verificationMaterial"]["certificate"]
    certificate["rawBytes"] = _flip(certificate["rawBytes"], -5)  # in the CA's signature


def _second_entry(doc: Doc, other: Doc) -> None:
    doc["verificationMaterial"]["tlogEntries"].append(_entry(other))


def _junk_timestamp(doc: Doc, other: Doc) -> None:
    material = doc["verificationMaterial"]
    junk = base64.b64encode(b"not a timestamp").decode()
    material["timestampVerificationData"] = {"rfc3161Timestamps": [{"signedTimestamp": junk}]}


def case(
    name: str,
    mutate: Callable[[Doc, Doc], None],
    expected: type[Exception],
    cause: type[BaseException] | None,
) -> Any:
    """One tampering: its name, the mutation, the exact class modelsign must
    raise and the class of that error's ``__cause__`` (None: not checked)."""
    return pytest.param(mutate, expected, cause, id=name)


KEYLESS_TAMPERING = [
    # The signed entry timestamp (SET) binds body, integratedTime, logIndex and logID.
    case("SET with one bit flipped", _flip_set, UntrustedSignerError, SigstoreVerificationError),
    case(
        "integratedTime one second later",
        _later_time,
        UntrustedSignerError,
        SigstoreVerificationError,
    ),
    case(
        "integratedTime an hour earlier, before the certificate",
        _earlier_time,
        UntrustedSignerError,
        SigstoreVerificationError,
    ),
    case(
        "integratedTime not a number",
        _set("verificationMaterial.tlog.integratedTime", "soon"),
        MalformedBundleError,
        SigstoreError,
    ),
    case(
        "logIndex of another entry",
        _set("verificationMaterial.tlog.logIndex", "1"),
        UntrustedSignerError,
        SigstoreVerificationError,
    ),
    case(
        "logId of an unknown log",
        _set("verificationMaterial.tlog.logId", {"keyId": base64.b64encode(bytes(32)).decode()}),
        UntrustedSignerError,
        SigstoreVerificationError,
    ),
    case(
        "no SET (inclusion promise)",
        _delete("verificationMaterial.tlog.inclusionPromise"),
        MalformedBundleError,
        SigstoreError,
    ),
    # The inclusion proof and its signed checkpoint.
    case(
        "inclusion proof hash with one bit flipped",
        _flip_proof_hash,
        UntrustedSignerError,
        SigstoreVerificationError,
    ),
    case(
        "inclusion proof root hash with one bit flipped",
        _flip_root_hash,
        UntrustedSignerError,
        SigstoreVerificationError,
    ),
    case(
        "checkpoint claims a larger tree",
        _grow_checkpoint,
        UntrustedSignerError,
        SigstoreVerificationError,
    ),
    case(
        "no inclusion proof",
        _delete("verificationMaterial.tlog.inclusionProof"),
        MalformedBundleError,
        SigstoreError,
    ),
    # The log entry body (canonicalizedBody) and the entry as a whole.
    case(
        "log entry body with another payload hash",
        _edit_body,
        UntrustedSignerError,
        SigstoreVerificationError,
    ),
    case(
        "log entry of another signature by the same identity",
        _body_of_other,
        UntrustedSignerError,
        SigstoreVerificationError,
    ),
    case(
        "log entry kind changed to hashedrekord",
        _set("verificationMaterial.tlog.kindVersion", {"kind": "hashedrekord", "version": "0.0.1"}),
        UntrustedSignerError,
        SigstoreVerificationError,
    ),
    case("two log entries", _second_entry, MalformedBundleError, SigstoreError),
    case(
        "no log entry",
        _set("verificationMaterial.tlogEntries", []),
        MalformedBundleError,
        None,
    ),
    # The DSSE envelope: modelsign checks the signature with the leaf's key first.
    case(
        "DSSE signature with one bit flipped",
        _flip_dsse_signature,
        InvalidSignatureError,
        InvalidSignature,
    ),
    case(
        "DSSE signature of another payload by another Fulcio key",
        _signature_of_other,
        InvalidSignatureError,
        InvalidSignature,
    ),
    case(
        "DSSE payload of another statement, signature kept",
        _payload_of_other,
        InvalidSignatureError,
        InvalidSignature,
    ),
    case(
        "DSSE signature not base64",
        _set("dsseEnvelope.signatures", [{"sig": "!!"}]),
        MalformedBundleError,
        None,
    ),
    # The Fulcio certificate.
    case(
        "certificate of another signing (another key)",
        _certificate_of_other,
        InvalidSignatureError,
        InvalidSignature,
    ),
    case(
        "certificate and envelope of another signing, this log entry",
        _envelope_and_certificate_of_other,
        UntrustedSignerError,
        SigstoreVerificationError,
    ),
    case(
        "certificate with one bit of the CA's signature flipped",
        _flip_certificate_signature,
        UntrustedSignerError,
        SigstoreVerificationError,
    ),
    case(
        "certificate that is not DER",
        _set("verificationMaterial.certificate", {"rawBytes": base64.b64encode(b"junk").decode()}),
        MalformedBundleError,
        CertificateError,
    ),
    # Lenient base64 in the log entry, and an unreadable timestamp: modelsign
    # checks them itself before sigstore-python reads them.
    case(
        "non-base64 characters in the SET",
        _junk_in("verificationMaterial.tlog.inclusionPromise.signedEntryTimestamp"),
        MalformedBundleError,
        None,
    ),
    case(
        "non-base64 characters in the log entry body",
        _junk_in("verificationMaterial.tlog.canonicalizedBody"),
        MalformedBundleError,
        None,
    ),
    case(
        "non-base64 characters in an inclusion proof hash",
        _junk_in("verificationMaterial.tlog.inclusionProof.hashes.0"),
        MalformedBundleError,
        None,
    ),
    case(
        "log entry body that is not base64 at all",
        _set("verificationMaterial.tlog.canonicalizedBody", "%%%"),
        MalformedBundleError,
        None,
    ),
    case(
        "RFC 3161 timestamp that is not a timestamp",
        _junk_timestamp,
        MalformedBundleError,
        None,
    ),
]


@pytest.mark.parametrize(("mutate", "expected", "cause"), KEYLESS_TAMPERING)
def test_tampered_keyless_bundle_is_refused_with_its_class(
    keyless: Keyless,
    fake: FakeSigstore,
    mutate: Callable[[Doc, Doc], None],
    expected: type[Exception],
    cause: type[BaseException] | None,
) -> None:
    signature = keyless.model / "model.sig"
    doc = copy.deepcopy(keyless.doc)
    mutate(doc, copy.deepcopy(keyless.other))
    assert doc != keyless.doc
    signature.write_text(json.dumps(doc, indent=1))
    with pytest.raises(expected) as caught:
        modelsign.verify(keyless.model, [_trust(fake)])
    assert type(caught.value) is expected, caught.value
    assert str(signature) in str(caught.value)
    if cause is not None:
        assert isinstance(caught.value.__cause__, cause), repr(caught.value.__cause__)
    signature.write_text(json.dumps(keyless.doc))
    assert modelsign.verify(keyless.model, [_trust(fake)]).signed_by.identity == ALICE


def test_keyless_bundle_of_another_sigstore_instance_is_untrusted(
    model: Path, fake: FakeSigstore, tmp_path: Path
) -> None:
    """The same identity and issuer, certified and logged by an instance the
    policy does not trust (an attacker's own Fulcio and Rekor)."""
    with fake_sigstore(tmp_path / "rogue", issuer=fake.issuer) as rogue:
        _sign(model, rogue)
    assert modelsign.verify(model, [_trust(rogue)]).signed_by.identity == ALICE
    with pytest.raises(UntrustedSignerError) as caught:
        modelsign.verify(model, [_trust(fake)])
    assert type(caught.value) is UntrustedSignerError
    assert isinstance(caught.value.__cause__, SigstoreVerificationError)
