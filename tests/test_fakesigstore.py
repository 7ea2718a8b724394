"""The fake Sigstore of tests/fakesigstore.py, driven by the real sigstore-python.

Nothing of sigstore is mocked: its SigningContext signs against the fake Fulcio and
Rekor, and its Verifier checks the bundles against the fake trusted root. Sockets may
only reach 127.0.0.1, and HOME / XDG dirs point at empty temporary folders, so neither
the network nor a TUF cache in ~/.cache can help.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import sigstore
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from sigstore._internal.fulcio.client import FulcioClientError
from sigstore.dsse import Statement
from sigstore.errors import CertValidationError, VerificationError
from sigstore.models import Bundle, TrustedRoot
from sigstore.oidc import IdentityToken
from sigstore.sign import SigningContext
from sigstore.verify import Verifier
from sigstore.verify.policy import Identity, OIDCIssuer, OIDCIssuerV2

from tests.fakesigstore import FakeSigstore, fake_sigstore

ALICE = "alice@example.com"
PRODUCTION_ROOT = (
    Path(sigstore.__file__).parent
    / "_store"
    / "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev"
    / "trusted_root.json"
)


def statement(name: str = "model.safetensors") -> bytes:
    """A small in-toto v1 statement, as opaque bytes."""
    return json.dumps(
        {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": name, "digest": {"sha256": "ab" * 32}}],
            "predicateType": "https://modelsign.example/manifest/v1",
            "predicate": {"files": {name: "sha256:" + "cd" * 32}},
        },
        separators=(",", ":"),
    ).encode()


@contextlib.contextmanager
def offline(mp: pytest.MonkeyPatch, home: Path) -> Iterator[None]:
    """Empty HOME and XDG dirs, no proxies, and sockets that reach 127.0.0.1 only."""
    for var in ("HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME"):
        (home / var).mkdir(parents=True, exist_ok=True)
        mp.setenv(var, str(home / var))
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        mp.delenv(var, raising=False)
    mp.setenv("NO_PROXY", "127.0.0.1")

    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in ("127.0.0.1", b"127.0.0.1"):
            raise OSError(f"test is offline: refusing to resolve {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(self: socket.socket, address: Any) -> None:
        if not (isinstance(address, tuple) and address[0] == "127.0.0.1"):
            raise OSError(f"test is offline: refusing to connect to {address!r}")
        real_connect(self, address)

    mp.setattr(socket, "getaddrinfo", getaddrinfo)
    mp.setattr(socket.socket, "connect", connect)
    yield


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    with offline(monkeypatch, tmp_path / "home"):
        yield


def sign(fake: FakeSigstore, payloads: list[bytes], token: str | None = None) -> list[Bundle]:
    """Sign each payload as DSSE with one signer (one certificate), the sigstore way."""
    context = SigningContext.from_trust_config(fake.trust_config())
    with context.signer(IdentityToken(token or fake.token(ALICE))) as signer:
        return [signer.sign_dsse(Statement(payload)) for payload in payloads]


@dataclass
class Signed:
    fake: FakeSigstore
    payloads: list[bytes]
    bundles: list[Bundle]
    log_size: int


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Signed:
    """Two statements signed by alice; the servers are stopped before any test runs."""
    tmp = tmp_path_factory.mktemp("fakesigstore")
    payloads = [statement("a.safetensors"), statement("b.safetensors")]
    with pytest.MonkeyPatch.context() as mp, offline(mp, tmp / "home"):
        with fake_sigstore(tmp / "trust") as fake:
            bundles = sign(fake, payloads)
            log_size = fake.log_size
    return Signed(fake, payloads, bundles, log_size)


def verifier(root: Path) -> Verifier:
    return Verifier(trusted_root=TrustedRoot.from_file(str(root)))


def test_sign_dsse_verifies_with_servers_stopped(signed: Signed) -> None:
    fake = signed.fake
    for payload, bundle in zip(signed.payloads, signed.bundles, strict=True):
        payload_type, verified = verifier(fake.trusted_root_path).verify_dsse(
            bundle, Identity(identity=ALICE, issuer=fake.issuer)
        )
        assert payload_type == "application/vnd.in-toto+json"
        assert verified == payload


def test_servers_are_stopped(signed: Signed) -> None:
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{signed.fake.fulcio_url}/api/v2/trustBundle", timeout=2)


@pytest.mark.parametrize(
    ("identity", "issuer"),
    [
        pytest.param("mallory@example.com", None, id="other-identity"),
        pytest.param(ALICE, "https://accounts.google.com", id="other-issuer"),
    ],
)
def test_wrong_identity_or_issuer_fails(signed: Signed, identity: str, issuer: str | None) -> None:
    policy = Identity(identity=identity, issuer=issuer or signed.fake.issuer)
    with pytest.raises(VerificationError, match="do(es)? not match"):
        verifier(signed.fake.trusted_root_path).verify_dsse(signed.bundles[0], policy)


def test_production_root_rejects_fake_bundle(signed: Signed) -> None:
    assert PRODUCTION_ROOT.is_file()
    policy = Identity(identity=ALICE, issuer=signed.fake.issuer)
    with pytest.raises(CertValidationError, match="certificate chain"):
        verifier(PRODUCTION_ROOT).verify_dsse(signed.bundles[0], policy)


def test_bundle_json_round_trip_verifies(signed: Signed) -> None:
    text = signed.bundles[0].to_json()
    again = Bundle.from_json(text)
    _, payload = verifier(signed.fake.trusted_root_path).verify_dsse(
        again, Identity(identity=ALICE, issuer=signed.fake.issuer)
    )
    assert payload == signed.payloads[0]

    doc = json.loads(text)
    assert doc["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    (entry,) = doc["verificationMaterial"]["tlogEntries"]
    assert entry["kindVersion"] == {"kind": "dsse", "version": "0.0.1"}
    assert entry["inclusionPromise"]["signedEntryTimestamp"]
    assert entry["inclusionProof"]["hashes"]  # seed leaves make the proof non-trivial


def test_log_entries_are_distinct_and_proven(signed: Signed) -> None:
    indexes = [
        json.loads(b.to_json())["verificationMaterial"]["tlogEntries"][0] for b in signed.bundles
    ]
    assert [int(e["logIndex"]) for e in indexes] == [signed.log_size - 2, signed.log_size - 1]
    assert [int(e["inclusionProof"]["treeSize"]) for e in indexes] == [
        signed.log_size - 1,
        signed.log_size,
    ]


def test_tampered_payload_fails(signed: Signed) -> None:
    doc = json.loads(signed.bundles[0].to_json())
    doc["dsseEnvelope"]["payload"] = json.loads(signed.bundles[1].to_json())["dsseEnvelope"][
        "payload"
    ]
    with pytest.raises(VerificationError):
        verifier(signed.fake.trusted_root_path).verify_dsse(
            Bundle.from_json(json.dumps(doc)), Identity(identity=ALICE, issuer=signed.fake.issuer)
        )


def test_certificate_follows_the_fulcio_profile(signed: Signed) -> None:
    cert = signed.bundles[0].signing_certificate
    fake = signed.fake
    cert.verify_directly_issued_by(fake.ca_certificate)
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(minutes=10)

    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical
    assert san.value.get_values_for_type(x509.RFC822Name) == [ALICE]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CODE_SIGNING]
    OIDCIssuer(fake.issuer).verify(cert)  # 1.3.6.1.4.1.57264.1.1, raw string
    OIDCIssuerV2(fake.issuer).verify(cert)  # 1.3.6.1.4.1.57264.1.8, DER UTF8String

    (sct,) = cert.extensions.get_extension_for_class(
        x509.PrecertificateSignedCertificateTimestamps
    ).value
    root = json.loads(fake.trusted_root_path.read_text())
    ct_key_id = root["ctlogs"][0]["logId"]["keyId"]
    assert sct.entry_type == x509.certificate_transparency.LogEntryType.PRE_CERTIFICATE
    assert sct.log_id == base64.b64decode(ct_key_id)


def test_uri_identity_with_another_issuer(tmp_path: Path) -> None:
    workflow = "https://github.com/acme/model/.github/workflows/sign.yml@refs/heads/main"
    issuer = "https://token.actions.githubusercontent.com"
    with fake_sigstore(tmp_path) as fake:
        (bundle,) = sign(fake, [statement()], fake.token(workflow, issuer))
    cert = bundle.signing_certificate
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [workflow]
    verifier(fake.trusted_root_path).verify_dsse(bundle, Identity(identity=workflow, issuer=issuer))
    with pytest.raises(VerificationError):
        verifier(fake.trusted_root_path).verify_dsse(
            bundle, Identity(identity=workflow, issuer=fake.issuer)
        )


def test_fulcio_rejects_a_token_it_did_not_mint(tmp_path: Path) -> None:
    with fake_sigstore(tmp_path / "one") as one, fake_sigstore(tmp_path / "two") as two:
        with pytest.raises(FulcioClientError):
            sign(one, [statement()], two.token(ALICE))
        assert one.log_size == 3  # only the seed leaves: nothing was logged


def test_sign_artifact_hashedrekord_verifies(tmp_path: Path) -> None:
    with fake_sigstore(tmp_path) as fake:
        context = SigningContext.from_trust_config(fake.trust_config())
        with context.signer(IdentityToken(fake.token())) as signer:
            bundle = signer.sign_artifact(b"model bytes")
    policy = Identity(identity=ALICE, issuer=fake.issuer)
    verifier(fake.trusted_root_path).verify_artifact(b"model bytes", bundle, policy)
    with pytest.raises(VerificationError):
        verifier(fake.trusted_root_path).verify_artifact(b"other bytes", bundle, policy)
