"""X.509 certificate chains with identity pinning, and real Sigstore bundles
verified offline against explicit trusted roots."""

from __future__ import annotations

import datetime
import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from sigstore.errors import VerificationError as SigstoreVerificationError

import modelsign
from modelsign import keys
from modelsign._guard import Guard
from modelsign._inspecting import inspect_bundle
from modelsign.errors import (
    ConfigError,
    DigestMismatchError,
    InvalidSignatureError,
    MalformedBundleError,
    UntrustedSignerError,
    UsageError,
)
from modelsign.policy import CertificateAuthority, Policy, SigstoreIdentity
from modelsign.signing import CertificateSigner
from tests.conftest import flip_byte, require, shared
from tests.tsakit import issue

IBM = ("stefanb@us.ibm.com", "https://sigstore.verify.ibm.com/oauth2")


@pytest.fixture(autouse=True)
def _no_user_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Nothing from a user's ~/.cache/sigstore-python may take part.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


# ------------------------------------------------------------ a private CA

NOW = datetime.datetime.now(datetime.timezone.utc)


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    email: str | None = None,
    days: int = 30,
) -> x509.Certificate:
    return issue(
        subject,
        key,
        issuer,
        issuer_key,
        NOW - datetime.timedelta(days=1),
        NOW + datetime.timedelta(days=days),
        usage=None if ca else ExtendedKeyUsageOID.CODE_SIGNING,
        email=email,
    )


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    """root CA -> intermediate -> leaf (release@corp.example), ECDSA P-256."""
    root_key, inter_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    leaf_key = keys.generate("ecdsa-p256")
    assert isinstance(leaf_key.key, ec.EllipticCurvePrivateKey)
    root = _cert("Corp Root", root_key, "Corp Root", root_key, ca=True, days=3650)
    inter = _cert("Corp Signing CA", inter_key, "Corp Root", root_key, ca=True, days=3650)
    leaf = _cert(
        "release bot",
        leaf_key.key,
        "Corp Signing CA",
        inter_key,
        ca=False,
        email="release@corp.example",
    )
    folder = tmp_path / "pki"
    folder.mkdir()
    out = {
        "root": folder / "root.pem",
        "chain": folder / "intermediate.pem",
        "leaf": folder / "leaf.pem",
    }
    out["root"].write_bytes(_pem(root))
    out["chain"].write_bytes(_pem(inter))
    out["leaf"].write_bytes(_pem(leaf))
    private, _ = keys.write_keypair(leaf_key, folder / "leaf", None)
    out["key"] = private
    other_root_key = ec.generate_private_key(ec.SECP256R1())
    out["other_root"] = folder / "other-root.pem"
    out["other_root"].write_bytes(
        _pem(_cert("Other Root", other_root_key, "Other Root", other_root_key, ca=True))
    )
    return out


def _model(tmp_path: Path) -> Path:
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"\x01\x02" * 1000)
    (model / "config.json").write_text("{}")
    return model


def _sign_with_certificate(model: Path, pki: dict[str, Path]) -> None:
    modelsign.sign(model, CertificateSigner.from_files(pki["key"], pki["leaf"], [pki["chain"]]))


def test_certificate_round_trip(tmp_path: Path, pki: dict[str, Path]) -> None:
    model = _model(tmp_path)
    _sign_with_certificate(model, pki)
    trust = CertificateAuthority(pki["root"], "release@corp.example")
    result = modelsign.verify(model, [trust])
    assert result.signed_by.method == "certificate"
    assert result.signed_by.identity == "release@corp.example"
    bundle = json.loads((model / "model.sig").read_text())
    certs = bundle["verificationMaterial"]["x509CertificateChain"]["certificates"]
    assert len(certs) == 2  # leaf first, then the intermediate
    flip_byte(model / "weights.bin")
    with pytest.raises(DigestMismatchError, match="weights.bin"):
        modelsign.verify(model, [trust])


def test_certificate_identity_is_pinned(tmp_path: Path, pki: dict[str, Path]) -> None:
    model = _model(tmp_path)
    _sign_with_certificate(model, pki)
    with pytest.raises(UntrustedSignerError, match=r"release@corp\.example.*not 'mallory"):
        modelsign.verify(model, [CertificateAuthority(pki["root"], "mallory@corp.example")])


def test_certificate_needs_the_trusted_root(tmp_path: Path, pki: dict[str, Path]) -> None:
    model = _model(tmp_path)
    _sign_with_certificate(model, pki)
    with pytest.raises(UntrustedSignerError, match="chain does not verify"):
        modelsign.verify(model, [CertificateAuthority(pki["other_root"], "release@corp.example")])


def test_certificate_expired_at_verification_time(tmp_path: Path, pki: dict[str, Path]) -> None:
    model = _model(tmp_path)
    _sign_with_certificate(model, pki)
    later = NOW + datetime.timedelta(days=60)  # the leaf is valid for 30 days
    with pytest.raises(UntrustedSignerError, match="chain does not verify"):
        modelsign.verify(
            model,
            [CertificateAuthority(pki["root"], "release@corp.example")],
            now=later,
        )


def test_certificate_must_be_for_the_signing_key(
    tmp_path: Path, pki: dict[str, Path], keypair: tuple[Path, Path]
) -> None:
    model = _model(tmp_path)
    with pytest.raises(UsageError, match="not for the signing key"):
        CertificateSigner.from_files(keypair[0], pki["leaf"], [pki["chain"]])
    assert not (model / "model.sig").exists()


def test_certificate_policy_and_cli(tmp_path: Path, pki: dict[str, Path]) -> None:
    model = _model(tmp_path)
    cli = [sys.executable, "-m", "modelsign"]
    signed = subprocess.run(
        [
            *cli,
            "sign",
            str(model),
            "--key",
            str(pki["key"]),
            "--certificate",
            str(pki["leaf"]),
            "--certificate-chain",
            str(pki["chain"]),
            "-q",
        ],
        capture_output=True,
        text=True,
    )
    assert signed.returncode == 0, signed.stderr
    ok = subprocess.run(
        [
            *cli,
            "verify",
            str(model),
            "--ca",
            str(pki["root"]),
            "--identity",
            "release@corp.example",
        ],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    assert "certificate for 'release@corp.example'" in ok.stdout
    unpinned = subprocess.run(
        [*cli, "verify", str(model), "--ca", str(pki["root"])], capture_output=True, text=True
    )
    assert unpinned.returncode == 2
    assert "--ca needs --identity" in unpinned.stderr
    policy = tmp_path / "policy.toml"
    policy.write_text(
        f'[trust]\n[[trust.certificate]]\nca = "{pki["root"]}"\nidentity = "release@corp.example"\n'
    )
    assert modelsign.verify(model, Policy.load(policy)).signed_by.identity == "release@corp.example"
    assert (
        Guard(Policy.load(policy)).open_path(model / "weights.bin").data
        == (model / "weights.bin").read_bytes()
    )


@pytest.mark.parametrize("folder", ["v1.0.1-certificate", "v1.1.0-certificate"])
def test_reference_certificate_bundles(tmp_path: Path, folder: str) -> None:
    base = shared("oms-compat", folder)
    ca = shared("oms-compat", "keys", "ca-cert.pem")
    trust = CertificateAuthority(ca, "CN=intermediate-ca")
    result = modelsign.verify(base, [trust], ignore_paths=["ignore-me"])
    assert result.signed_by.algorithm == "ecdsa-p384"
    with pytest.raises(UntrustedSignerError, match="not 'someone-else'"):
        modelsign.verify(
            base, [CertificateAuthority(ca, "someone-else")], ignore_paths=["ignore-me"]
        )
    copy = tmp_path / folder
    shutil.copytree(base, copy)
    flip_byte(copy / "signme-2", 0)
    with pytest.raises(DigestMismatchError, match="signme-2"):
        modelsign.verify(copy, [trust], ignore_paths=["ignore-me"])


def test_model_signing_verifies_a_modelsign_certificate_bundle(
    tmp_path: Path, pki: dict[str, Path]
) -> None:
    model_signing = require("model_signing", "the reference implementation verifies here")
    model = _model(tmp_path)
    _sign_with_certificate(model, pki)
    verifier = model_signing.verifying.Config().use_certificate_verifier(
        certificate_chain=[pki["root"]]
    )
    verifier.verify(model, model / "model.sig")
    flip_byte(model / "config.json", 0)
    with pytest.raises(ValueError):
        verifier.verify(model, model / "model.sig")


# ------------------------------------------ the leaf's usages (certificate.py)
# verify_chain checks a leaf with cryptography's permit-all end-entity policy
# plus two checks of modelsign's own: a key usage, when present, must include
# digitalSignature (_digital_signature), and an extended key usage, when
# present, codeSigning (_code_signing). A leaf flagged as a CA (the reference
# tool's test PKI signs with its intermediate CA) and a leaf without either
# extension are accepted on purpose. Each test below fails if its rule goes.

LEAF_IDENTITY = "leaf@corp.example"


def _usage(*, digital_signature: bool = True, cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=not digital_signature,  # an ECDSA key's other use
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _sign_with_leaf(
    tmp_path: Path,
    *,
    key_usage: x509.KeyUsage | None = None,
    eku: list[x509.ObjectIdentifier] | None = None,
    ca: bool | None = None,
) -> tuple[Path, CertificateAuthority]:
    """A model signed with a leaf issued straight by a fresh root, carrying
    exactly the given key usage, extended key usage and basic constraints
    (None: the extension is absent); and the trust entry for it."""
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = _cert("Leaf Test Root", root_key, "Leaf Test Root", root_key, ca=True, days=3650)
    leaf_key = keys.generate("ecdsa-p256")
    assert isinstance(leaf_key.key, ec.EllipticCurvePrivateKey)
    public = leaf_key.key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "leaf")]))
        .issuer_name(root.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=1))
        .not_valid_after(NOW + datetime.timedelta(days=30))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()),
            critical=False,
        )
        .add_extension(
            x509.SubjectAlternativeName([x509.RFC822Name(LEAF_IDENTITY)]), critical=False
        )
    )
    if key_usage is not None:
        builder = builder.add_extension(key_usage, critical=True)
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    if ca is not None:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=ca, path_length=None), critical=True
        )
    leaf = builder.sign(root_key, hashes.SHA256())
    folder = tmp_path / "leaf-pki"
    folder.mkdir()
    (folder / "root.pem").write_bytes(_pem(root))
    (folder / "leaf.pem").write_bytes(_pem(leaf))
    private, _ = keys.write_keypair(leaf_key, folder / "leaf", None)
    model = _model(tmp_path)
    modelsign.sign(model, CertificateSigner.from_files(private, folder / "leaf.pem"))
    return model, CertificateAuthority(folder / "root.pem", LEAF_IDENTITY)


def _refused(model: Path, trust: CertificateAuthority, reason: str) -> None:
    with pytest.raises(UntrustedSignerError, match=f"chain does not verify.*{reason}") as caught:
        modelsign.verify(model, [trust])
    assert type(caught.value) is UntrustedSignerError


def test_leaf_whose_extended_key_usage_lacks_code_signing_is_refused(tmp_path: Path) -> None:
    model, trust = _sign_with_leaf(
        tmp_path,
        key_usage=_usage(),
        eku=[ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.EMAIL_PROTECTION],
    )
    _refused(model, trust, "the leaf's extended key usage does not include codeSigning")


def test_leaf_whose_key_usage_lacks_digital_signature_is_refused(tmp_path: Path) -> None:
    model, trust = _sign_with_leaf(
        tmp_path,
        key_usage=_usage(digital_signature=False),
        eku=[ExtendedKeyUsageOID.CODE_SIGNING],
    )
    _refused(model, trust, "the leaf's key usage does not include digitalSignature")


def test_leaf_with_code_signing_among_other_usages_is_accepted(tmp_path: Path) -> None:
    model, trust = _sign_with_leaf(
        tmp_path,
        key_usage=_usage(),
        eku=[ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CODE_SIGNING],
        ca=False,
    )
    assert modelsign.verify(model, [trust]).signed_by.identity == LEAF_IDENTITY


def test_leaf_flagged_as_a_ca_is_accepted(tmp_path: Path) -> None:
    model, trust = _sign_with_leaf(
        tmp_path,
        key_usage=_usage(cert_sign=True),
        eku=[ExtendedKeyUsageOID.CODE_SIGNING],
        ca=True,
    )
    assert modelsign.verify(model, [trust]).signed_by.identity == LEAF_IDENTITY


def test_leaf_without_extended_key_usage_is_accepted(tmp_path: Path) -> None:
    model, trust = _sign_with_leaf(tmp_path, key_usage=_usage(), ca=False)
    assert modelsign.verify(model, [trust]).signed_by.identity == LEAF_IDENTITY


def test_leaf_without_key_usage_is_accepted(tmp_path: Path) -> None:
    model, trust = _sign_with_leaf(tmp_path, eku=[ExtendedKeyUsageOID.CODE_SIGNING])
    assert modelsign.verify(model, [trust]).signed_by.identity == LEAF_IDENTITY


# -------------------------------------------------- real Sigstore bundles

SIGSTORE_VECTORS = [
    ("oms-compat", "v1.1.0-sigstore"),
    ("sigstore", "prod-dsse-model-signing-v1.1.0"),
    ("sigstore", "prod-dsse-model-signing-v1.0.1"),
]


def _ibm(instance: str = "production", identity: str = IBM[0], issuer: str = IBM[1]) -> Any:
    return [SigstoreIdentity(identity, issuer, instance)]


@pytest.mark.parametrize("vector", SIGSTORE_VECTORS, ids=[v[1] for v in SIGSTORE_VECTORS])
def test_real_sigstore_bundles_verify_offline(tmp_path: Path, vector: tuple[str, str]) -> None:
    base = shared(*vector)
    result = modelsign.verify(base, _ibm(), ignore_paths=["ignore-me"])
    assert result.signed_by.method == "sigstore"
    assert result.signed_by.identity == IBM[0]
    assert result.signed_by.trust_root is not None
    assert "tuf-repo-cdn.sigstore.dev" in result.signed_by.trust_root  # which root was used
    with pytest.raises(UntrustedSignerError, match="not trusted"):
        modelsign.verify(base, _ibm(identity="mallory@example.com"), ignore_paths=["ignore-me"])
    with pytest.raises(UntrustedSignerError, match="not trusted"):
        modelsign.verify(
            base, _ibm(issuer="https://accounts.google.com"), ignore_paths=["ignore-me"]
        )
    with pytest.raises(UntrustedSignerError, match="sigstage"):
        modelsign.verify(base, _ibm("staging"), ignore_paths=["ignore-me"])
    copy = tmp_path / "copy"
    shutil.copytree(base, copy)
    flip_byte(copy / "signme-1", 0)
    with pytest.raises(DigestMismatchError, match="signme-1"):
        modelsign.verify(copy, _ibm(), ignore_paths=["ignore-me"])


def test_broken_sigstore_vector_is_an_invalid_signature() -> None:
    base = shared("sigstore", "broken-dsse-model-signing-tampered-payload")
    with pytest.raises(InvalidSignatureError, match="invalid signature"):
        modelsign.verify(base, _ibm(), ignore_paths=["ignore-me"])


def test_sigstore_bundle_is_not_trusted_by_a_key(keypair: tuple[Path, Path]) -> None:
    base = shared("oms-compat", "v1.1.0-sigstore")
    with pytest.raises(UntrustedSignerError, match="stefanb@us.ibm.com"):
        modelsign.verify(base, [keypair[1]], ignore_paths=["ignore-me"])


def test_verification_with_an_explicit_root_never_opens_a_socket(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = shared("oms-compat", "v1.1.0-sigstore")

    def no_network(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("verification tried to open a socket")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    result = modelsign.verify(base, _ibm(), ignore_paths=["ignore-me"])
    assert result.signed_by.identity == IBM[0]


def test_empty_issuer_or_identity_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="both an identity and an issuer"):
        SigstoreIdentity(IBM[0], "")
    policy = tmp_path / "p.toml"
    policy.write_text(f'[[trust.sigstore]]\nidentity = "{IBM[0]}"\nissuer = ""\n')
    with pytest.raises(ConfigError, match="non-empty string 'issuer'"):
        Policy.load(policy)
    result = subprocess.run(
        [sys.executable, "-m", "modelsign", "verify", str(tmp_path), "--identity", IBM[0]],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "--issuer" in result.stderr


def test_sigstore_policy_table_and_hook(tmp_path: Path) -> None:
    base = shared("oms-compat", "v1.1.0-sigstore")
    policy = tmp_path / "p.toml"
    policy.write_text(
        f'[[trust.sigstore]]\nidentity = "{IBM[0]}"\nissuer = "{IBM[1]}"\ninstance = "production"\n'
    )
    assert (
        modelsign.verify(base, Policy.load(policy), ignore_paths=["ignore-me"]).signed_by.issuer
        == IBM[1]
    )
    guard = Guard(Policy.load(policy))
    assert guard.open_path(base / "signme-1").data == (base / "signme-1").read_bytes()
    staging = tmp_path / "s.toml"
    staging.write_text(
        f'[[trust.sigstore]]\nidentity = "{IBM[0]}"\nissuer = "{IBM[1]}"\ninstance = "staging"\n'
    )
    from modelsign.errors import UntrustedBundleError

    with pytest.raises(UntrustedBundleError, match="sigstage"):
        Guard(Policy.load(staging)).open_path(base / "signme-1")


def test_inspect_shows_the_sigstore_identity_and_log_entry() -> None:
    claims = inspect_bundle(shared("oms-compat", "v1.1.0-sigstore", "model.sig"))
    info = claims.to_json()
    assert info["verified"] is False
    assert claims.signer.log_index == 598151086
    signer = info["signer"]
    assert signer["method"] == "sigstore"
    assert signer["identity"] == IBM[0]
    assert signer["issuer"] == IBM[1]
    assert signer["log_index"] == 598151086
    assert signer["integrated_time"] == "2025-10-10T02:12:20+00:00"


def test_broken_message_signature_vector_is_not_an_oms_bundle() -> None:
    base = shared("sigstore", "broken-msgsig-tampered-artifact")
    with pytest.raises(MalformedBundleError, match="no dsseEnvelope"):
        modelsign.verify(base / "a.txt", _ibm(), signature=base / "a.txt.sigstore.json")


# ------------------------------------ what modelsign makes of every real vector

BEACON = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main",
    "https://token.actions.githubusercontent.com",
)
WHEEL = (
    "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2",
    "https://token.actions.githubusercontent.com",
)
JKU = ("jku@goto.fi", "https://github.com/login/oauth")
FAKESTORE = ("alice@example.com", "https://oidc.fakestore.invalid")
FAKESTORE_ROOT = "fakestore-selfmade/trusted_root.json"

#: (vector folder, model, signature (None: model.sig), (identity, issuer),
#:  root: "production", "staging" or a trusted root file under the vectors,
#:  the exact class modelsign raises, the class of its __cause__, in its message)
REAL_VECTORS = [
    # Genuine OMS bundles under a root that did not certify them: sigstore refuses.
    ("prod-dsse-model-signing-v1.1.0", None, None, IBM, "staging",
     UntrustedSignerError, SigstoreVerificationError, "sigstage"),
    ("prod-dsse-model-signing-v1.0.1", None, None, IBM, "staging",
     UntrustedSignerError, SigstoreVerificationError, "sigstage"),
    ("prod-dsse-model-signing-v1.1.0", None, None, IBM, FAKESTORE_ROOT,
     UntrustedSignerError, SigstoreVerificationError, "fakestore-selfmade"),
    # The payload changed after signing: modelsign's own DSSE check, under any root.
    ("broken-dsse-model-signing-tampered-payload", None, None, IBM, "production",
     InvalidSignatureError, InvalidSignature, "invalid signature"),
    ("broken-dsse-model-signing-tampered-payload", None, None, IBM, "staging",
     InvalidSignatureError, InvalidSignature, "invalid signature"),
    # DSSE in-toto bundles that are not OMS: signature and log verify under their
    # own root, then the statement is refused; under another root, the signer is.
    ("prod-dsse-conformance-intoto", "a.txt", "a.txt.intoto.sigstore.json", BEACON,
     "production", MalformedBundleError, MalformedBundleError, "predicateType"),
    ("prod-dsse-conformance-intoto", "a.txt", "a.txt.intoto.sigstore.json", BEACON,
     "staging", UntrustedSignerError, SigstoreVerificationError, "sigstage"),
    ("staging-dsse-rekor2", "a.txt", "a.txt.intoto.sigstore.json", BEACON,
     "staging", MalformedBundleError, MalformedBundleError, "predicateType"),
    ("staging-dsse-rekor2", "a.txt", "a.txt.intoto.sigstore.json", BEACON,
     "production", UntrustedSignerError, SigstoreVerificationError, "sigstore.dev"),
    ("fakestore-selfmade", "manifest.json", "manifest.json.intoto.sigstore.json", FAKESTORE,
     FAKESTORE_ROOT, MalformedBundleError, MalformedBundleError, "predicateType"),
    ("fakestore-selfmade", "manifest.json", "manifest.json.intoto.sigstore.json", FAKESTORE,
     "production", UntrustedSignerError, SigstoreVerificationError, "sigstore.dev"),
    # Message signatures (no DSSE envelope) are not OMS bundles, whatever the root.
    ("prod-msgsig-conformance-v0.3", "a.txt", "a.txt.sigstore.json", BEACON, "production",
     MalformedBundleError, MalformedBundleError, "no dsseEnvelope"),
    ("prod-msgsig-github-wheel", "bundle_v3_github.whl", "bundle_v3_github.whl.sigstore",
     WHEEL, "production", MalformedBundleError, MalformedBundleError, "not a Sigstore bundle v0.3"),
    ("staging-msgsig-rekor2", "staging-rekor-v2.txt", "staging-rekor-v2.txt.sigstore.json",
     JKU, "staging", MalformedBundleError, MalformedBundleError, "no dsseEnvelope"),
    ("fakestore-selfmade", "manifest.json", "manifest.json.sigstore.json", FAKESTORE,
     FAKESTORE_ROOT, MalformedBundleError, MalformedBundleError, "no dsseEnvelope"),
    ("broken-msgsig-tampered-artifact", "a.txt", "a.txt.sigstore.json", BEACON, "production",
     MalformedBundleError, MalformedBundleError, "no dsseEnvelope"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("folder", "model", "signature", "who", "root", "expected", "cause", "message"),
    REAL_VECTORS,
    ids=[f"{v[0]}/{v[2] or 'model.sig'} under {Path(v[4]).parts[0]}" for v in REAL_VECTORS],
)
def test_real_sigstore_vector_is_classified(
    folder: str,
    model: str | None,
    signature: str | None,
    who: tuple[str, str],
    root: str,
    expected: type[Exception],
    cause: type[BaseException],
    message: str,
) -> None:
    base = shared("sigstore", folder)
    if root in ("production", "staging"):
        trust = SigstoreIdentity(*who, root)
    else:
        trust = SigstoreIdentity(*who, trust_root=shared("sigstore", root))
    with pytest.raises(expected, match=message) as caught:
        modelsign.verify(
            base / model if model else base,
            [trust],
            signature=base / signature if signature else None,
            ignore_paths=() if model else ["ignore-me"],
        )
    assert type(caught.value) is expected, caught.value
    assert isinstance(caught.value.__cause__, cause), repr(caught.value.__cause__)
