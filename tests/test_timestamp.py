"""Certificate-method leaves validated at the time of a trusted RFC 3161
timestamp: real tokens from a test-local TSA (tests/tsakit.py), real chains,
real signatures, no mocks."""

from __future__ import annotations

import base64
import datetime
import glob
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

import modelsign
from modelsign import keys
from modelsign._backends import timestamp
from modelsign._guard import Guard
from modelsign._inspecting import inspect_bundle
from modelsign.bundle import Bundle, CertificateMaterial
from modelsign.errors import (
    ConfigError,
    InvalidSignatureError,
    MalformedBundleError,
    UntrustedSignerError,
    VerificationError,
)
from modelsign.policy import CertificateAuthority, Policy
from modelsign.signing import CertificateSigner
from tests.conftest import shared
from tests.tsakit import TSA, dsse_signature, issue, make_tsa, set_timestamps

NOW = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
DAY = datetime.timedelta(days=1)
ID = "release@corp.example"
CLI = [sys.executable, "-m", "modelsign"]


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def tsa() -> TSA:
    return make_tsa()


@pytest.fixture
def pki(tmp_path: Path, tsa: TSA) -> dict[str, Path]:
    """Corp Root -> Corp Signing CA -> two leaves for ID: one valid from 60 to
    30 days ago (expired), one valid now. And the TSA's root, on its own."""
    root_key, inter_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    root = issue("Corp Root", root_key, "Corp Root", root_key, NOW - 3650 * DAY, NOW + 3650 * DAY)
    inter = issue(
        "Corp Signing CA", inter_key, "Corp Root", root_key, NOW - 3650 * DAY, NOW + 3650 * DAY
    )
    folder = tmp_path / "pki"
    folder.mkdir()
    out = {"root": folder / "root.pem", "chain": folder / "intermediate.pem"}
    out["root"].write_bytes(_pem(root))
    out["chain"].write_bytes(_pem(inter))
    for name, start, end in (("expired", -60, -30), ("current", -1, 30)):
        leaf_key = keys.generate("ecdsa-p256")
        assert isinstance(leaf_key.key, ec.EllipticCurvePrivateKey)
        leaf = issue(
            "release bot",
            leaf_key.key,
            "Corp Signing CA",
            inter_key,
            NOW + start * DAY,
            NOW + end * DAY,
            usage=ExtendedKeyUsageOID.CODE_SIGNING,
            email=ID,
        )
        out[f"{name}_leaf"] = folder / f"{name}.pem"
        out[f"{name}_leaf"].write_bytes(_pem(leaf))
        out[f"{name}_key"], _ = keys.write_keypair(leaf_key, folder / name, None)
    out["tsa"] = tsa.write_root(folder / "tsa.pem")
    return out


def _signed_model(tmp_path: Path, pki: dict[str, Path], leaf: str = "expired") -> Path:
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"\x01\x02" * 1000)
    (model / "config.json").write_text("{}")
    modelsign.sign(
        model,
        CertificateSigner.from_files(pki[f"{leaf}_key"], pki[f"{leaf}_leaf"], [pki["chain"]]),
    )
    return model


def _stamp(model: Path, tsa: TSA, *gen_times: datetime.datetime, **kwargs: object) -> None:
    sig = model / "model.sig"
    message = dsse_signature(sig)
    set_timestamps(
        sig, [tsa.token(message, t, serial=i, **kwargs) for i, t in enumerate(gen_times)]
    )  # type: ignore[arg-type]


def _trust(pki: dict[str, Path], tsa: Path | None = None) -> list[CertificateAuthority]:
    return [CertificateAuthority(pki["root"], ID, tsa=tsa if tsa is not None else pki["tsa"])]


def _no_tsa(pki: dict[str, Path]) -> list[CertificateAuthority]:
    return [CertificateAuthority(pki["root"], ID)]


# ------------------------------------------------ the leaf, at the trusted time


def test_expired_leaf_verifies_at_the_trusted_timestamp(
    tmp_path: Path, pki: dict[str, Path], tsa: TSA
) -> None:
    model = _signed_model(tmp_path, pki)
    _stamp(model, tsa, NOW - 45 * DAY)
    result = modelsign.verify(model, _trust(pki))
    assert result.signed_by.identity == ID
    assert result.signed_by.valid_at == f"{NOW - 45 * DAY:%Y-%m-%dT%H:%M:%SZ}"
    assert result.signed_by.time_source == f"earliest of 1 timestamp(s) by TSA {pki['tsa']}"
    assert "valid at" in result.signed_by.describe()


def test_without_a_tsa_the_timestamp_is_ignored_and_the_leaf_is_expired(
    tmp_path: Path, pki: dict[str, Path], tsa: TSA
) -> None:
    model = _signed_model(tmp_path, pki)
    _stamp(model, tsa, NOW - 45 * DAY)
    sig = model / "model.sig"
    with pytest.raises(UntrustedSignerError) as e:
        modelsign.verify(model, _no_tsa(pki))
    message = str(e.value)
    assert message.startswith(f"{sig}: no trusted CA vouches for it")
    assert "1 timestamp(s) ignored: no TSA trusted" in message
    assert "does not verify at" in message


def test_timestamp_from_the_future_is_refused(
    tmp_path: Path, pki: dict[str, Path], tsa: TSA
) -> None:
    """A genTime a day ahead of the verifier's clock says nothing about when
    the signature existed (the leaf valid now is used, so only the time is wrong)."""
    model = _signed_model(tmp_path, pki, leaf="current")
    _stamp(model, tsa, NOW + DAY)
    with pytest.raises(UntrustedSignerError) as e:
        modelsign.verify(model, _trust(pki))
    message = str(e.value)
    assert message.startswith(f"{model / 'model.sig'}: the timestamp by TSA {pki['tsa']} says ")
    assert f"{NOW + DAY:%Y-%m-%dT%H:%M:%SZ}, later than now" in message


def test_expired_leaf_with_tsa_but_no_timestamp_is_refused(
    tmp_path: Path, pki: dict[str, Path]
) -> None:
    model = _signed_model(tmp_path, pki)
    with pytest.raises(UntrustedSignerError, match="the bundle has no timestamp"):
        modelsign.verify(model, _trust(pki))


def test_current_leaf_without_timestamp_still_verifies(
    tmp_path: Path, pki: dict[str, Path]
) -> None:
    model = _signed_model(tmp_path, pki, leaf="current")
    for trust in (_trust(pki), _no_tsa(pki)):
        signer = modelsign.verify(model, trust).signed_by
        assert signer.valid_at is not None
        assert signer.time_source is not None
        assert signer.time_source.startswith("verification time")


@pytest.mark.parametrize("days_ago", [10, 90], ids=["after-expiry", "before-issue"])
def test_gen_time_outside_the_leaf_validity_is_refused(
    tmp_path: Path, pki: dict[str, Path], tsa: TSA, days_ago: int
) -> None:
    model = _signed_model(tmp_path, pki)  # the leaf is valid from 60 to 30 days ago
    _stamp(model, tsa, NOW - days_ago * DAY)
    at = f"{NOW - days_ago * DAY:%Y-%m-%dT%H:%M:%SZ}"
    with pytest.raises(UntrustedSignerError, match=f"does not verify at {at} \\(earliest of 1"):
        modelsign.verify(model, _trust(pki))


def test_several_timestamps_all_verify_and_the_earliest_counts(
    tmp_path: Path, pki: dict[str, Path], tsa: TSA
) -> None:
    model = _signed_model(tmp_path, pki)
    _stamp(model, tsa, NOW - 10 * DAY, NOW - 45 * DAY)  # the later one alone would be refused
    signer = modelsign.verify(model, _trust(pki)).signed_by
    assert signer.valid_at == f"{NOW - 45 * DAY:%Y-%m-%dT%H:%M:%SZ}"
    sig = model / "model.sig"
    good = tsa.token(dsse_signature(sig), NOW - 45 * DAY)
    set_timestamps(sig, [good, make_tsa("Other").token(dsse_signature(sig), NOW - 44 * DAY)])
    with pytest.raises(UntrustedSignerError, match="timestamp 2 of 2"):
        modelsign.verify(model, _trust(pki))


# ------------------------------------------------ timestamps that must not count


@pytest.mark.parametrize("over", ["other bytes", "the DSSE payload"])
def test_timestamp_over_other_bytes_is_refused(
    tmp_path: Path, pki: dict[str, Path], tsa: TSA, over: str
) -> None:
    model = _signed_model(tmp_path, pki)
    sig = model / "model.sig"
    payload = Bundle.from_bytes(sig.read_bytes()).envelope.payload
    message = payload if over == "the DSSE payload" else b"some other signature"
    set_timestamps(sig, [tsa.token(message, NOW - 45 * DAY)])
    with pytest.raises(InvalidSignatureError) as e:
        modelsign.verify(model, _trust(pki))
    assert str(e.value).startswith(
        f"{sig}: timestamp 1 of 1: it timestamps other bytes than the bundle's DSSE signature"
    )


def test_timestamp_by_an_untrusted_tsa_is_refused(
    tmp_path: Path, pki: dict[str, Path], tsa: TSA
) -> None:
    model = _signed_model(tmp_path, pki)
    _stamp(model, make_tsa("Mallory TSA"), NOW - 45 * DAY)
    with pytest.raises(UntrustedSignerError) as e:
        modelsign.verify(model, _trust(pki))
    message = str(e.value)
    assert message.startswith(f"{model / 'model.sig'}: timestamp 1 of 1: TSA")
    assert f"does not chain to the TSA roots in {pki['tsa']}" in message


def test_tsa_certificate_expired_at_gen_time_is_refused(
    tmp_path: Path, pki: dict[str, Path]
) -> None:
    young = make_tsa("Young TSA", not_before=NOW - 20 * DAY)
    model = _signed_model(tmp_path, pki)
    _stamp(model, young, NOW - 45 * DAY)  # before the TSA's certificates were valid
    trust = _trust(pki, young.write_root(tmp_path / "young.pem"))
    with pytest.raises(UntrustedSignerError, match="at its genTime"):
        modelsign.verify(model, trust)


def test_tsa_certificate_without_time_stamping_usage_is_refused(
    tmp_path: Path, pki: dict[str, Path]
) -> None:
    signer = make_tsa("Code TSA", usage=ExtendedKeyUsageOID.CODE_SIGNING)
    model = _signed_model(tmp_path, pki)
    _stamp(model, signer, NOW - 45 * DAY)
    trust = _trust(pki, signer.write_root(tmp_path / "code.pem"))
    with pytest.raises(UntrustedSignerError, match="does not chain"):
        modelsign.verify(model, trust)


def _gen_time_offset(token: bytes, when: datetime.datetime) -> int:
    return token.index(f"{when:%Y%m%d%H%M%S}Z".encode()) + 13  # a digit of the seconds


@pytest.mark.parametrize("where", ["genTime", "signature"])
def test_token_altered_by_one_byte_is_refused(
    tmp_path: Path, pki: dict[str, Path], tsa: TSA, where: str
) -> None:
    model = _signed_model(tmp_path, pki)
    sig = model / "model.sig"
    when = NOW - 45 * DAY
    token = bytearray(tsa.token(dsse_signature(sig), when))
    offset = _gen_time_offset(bytes(token), when) if where == "genTime" else len(token) - 1
    token[offset] ^= 0x01
    set_timestamps(sig, [bytes(token)])
    with pytest.raises(InvalidSignatureError, match="the TSA's signature does not verify"):
        modelsign.verify(model, _trust(pki))
    trust = ["--ca", str(pki["root"]), "--identity", ID, "--tsa", str(pki["tsa"])]
    cli = subprocess.run([*CLI, "verify", str(model), *trust, "-q"], capture_output=True, text=True)
    assert cli.returncode == 1
    assert "Traceback" not in cli.stderr
    assert str(sig) in cli.stderr
    assert "timestamp 1 of 1" in cli.stderr


def test_every_one_byte_change_is_refused_or_changes_nothing_signed(tsa: TSA) -> None:
    """Unsigned CMS fields (a version number, a tag the parser tolerates) may
    change; what the TSA signed (genTime, imprint) may not. Never a foreign error."""
    message, when = b"the DSSE signature", NOW - 45 * DAY
    good = tsa.token(message, when)
    roots, others = (tsa.root,), ()
    assert timestamp.trusted_time([good], message, roots, others, source="s", tsa="t") == when
    for i in range(len(good)):
        bad = bytearray(good)
        bad[i] ^= 0x01
        try:
            got = timestamp.trusted_time([bytes(bad)], message, roots, others, source="s", tsa="t")
        except VerificationError:
            continue
        assert got == when, f"byte {i} changed the trusted time to {got}"


def test_unreadable_or_refused_responses_are_malformed(
    tmp_path: Path, pki: dict[str, Path]
) -> None:
    model = _signed_model(tmp_path, pki)
    sig = model / "model.sig"
    for token, reason in (
        (b"\x30\x03\x02\x01\x01", "not a DER TimeStampResp"),
        (bytes.fromhex("30053003020102"), "the TSA did not grant it"),
        (bytes.fromhex("30053003020100"), "not a valid timestamp token"),
    ):
        set_timestamps(sig, [token])
        expected = f"^{re.escape(str(sig))}: timestamp 1 of 1: {reason}"
        with pytest.raises(MalformedBundleError, match=expected):
            modelsign.verify(model, _trust(pki))
        # Without a TSA the timestamps are ignored: the current question is the leaf.
        with pytest.raises(UntrustedSignerError, match="ignored: no TSA trusted"):
            modelsign.verify(model, _no_tsa(pki))


# ------------------------------------------------ token and TSA file variants


def test_bare_token_and_token_without_certificates(
    tmp_path: Path, pki: dict[str, Path], tsa: TSA
) -> None:
    model = _signed_model(tmp_path, pki)
    _stamp(model, tsa, NOW - 45 * DAY, bare=True)
    assert modelsign.verify(model, _trust(pki)).signed_by.method == "certificate"
    _stamp(model, tsa, NOW - 45 * DAY, include_certificate=False)
    with pytest.raises(UntrustedSignerError, match=f"neither in the token nor in {pki['tsa']}"):
        modelsign.verify(model, _trust(pki))
    with_cert = tmp_path / "tsa-chain.pem"
    with_cert.write_bytes(_pem(tsa.cert) + tsa.root_pem())  # its own certificate, then the root
    assert modelsign.verify(model, _trust(pki, with_cert)).signed_by.method == "certificate"


def test_tsa_file_needs_a_self_signed_root(tmp_path: Path, pki: dict[str, Path], tsa: TSA) -> None:
    only_leaf = tmp_path / "tsa-leaf.pem"
    only_leaf.write_bytes(_pem(tsa.cert))
    with pytest.raises(ConfigError, match="no self-signed root certificate"):
        CertificateAuthority(pki["root"], ID, tsa=only_leaf)
    with pytest.raises(ConfigError, match="absent.pem: no TSA certificate file"):
        CertificateAuthority(pki["root"], ID, tsa=tmp_path / "absent.pem")


# ------------------------------------------------ CLI and policy


def test_cli_tsa_option(tmp_path: Path, pki: dict[str, Path], tsa: TSA) -> None:
    model = _signed_model(tmp_path, pki)
    _stamp(model, tsa, NOW - 45 * DAY)
    base = [*CLI, "verify", str(model), "--ca", str(pki["root"]), "--identity", ID]
    ok = subprocess.run([*base, "--tsa", str(pki["tsa"])], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert f"valid at {NOW - 45 * DAY:%Y-%m-%dT%H:%M:%SZ} (earliest of 1 timestamp(s)" in ok.stdout
    as_json = subprocess.run(
        [*base, "--tsa", str(pki["tsa"]), "--json"], capture_output=True, text=True
    )
    assert (
        json.loads(as_json.stdout)["signed_by"]["valid_at"]
        == f"{NOW - 45 * DAY:%Y-%m-%dT%H:%M:%SZ}"
    )
    expired = subprocess.run(base, capture_output=True, text=True)
    assert expired.returncode == 1
    assert "Traceback" not in expired.stderr
    assert f"{model / 'model.sig'}: no trusted CA vouches for it" in expired.stderr
    no_ca = subprocess.run(
        [*CLI, "verify", str(model), "--tsa", str(pki["tsa"])], capture_output=True, text=True
    )
    assert no_ca.returncode == 2
    assert "--tsa is for the certificate method" in no_ca.stderr


def test_policy_tsa_key_is_relative_to_the_policy(
    tmp_path: Path, pki: dict[str, Path], tsa: TSA
) -> None:
    model = _signed_model(tmp_path, pki)
    _stamp(model, tsa, NOW - 45 * DAY)
    policy = pki["root"].parent / "policy.toml"
    policy.write_text(
        f'[trust]\n[[trust.certificate]]\nca = "root.pem"\nidentity = "{ID}"\ntsa = "tsa.pem"\n'
    )
    loaded = Policy.load(policy)
    assert loaded.certificates[0].tsa == pki["tsa"]
    assert modelsign.verify(model, Policy.load(policy)).signed_by.identity == ID
    weights = model / "weights.bin"
    assert Guard(loaded).open_path(weights).data == weights.read_bytes()
    policy.write_text(policy.read_text().replace('tsa = "tsa.pem"', "tsa = 1"))
    with pytest.raises(ConfigError, match="non-empty string 'tsa'"):
        Policy.load(policy)


# ------------------------------------------------ the bundle format


def test_bundle_keeps_its_timestamps(tmp_path: Path, pki: dict[str, Path], tsa: TSA) -> None:
    model = _signed_model(tmp_path, pki)
    sig = model / "model.sig"
    _stamp(model, tsa, NOW - 45 * DAY, NOW - 44 * DAY)
    bundle = Bundle.from_bytes(sig.read_bytes())
    assert isinstance(bundle.material, CertificateMaterial)
    assert len(bundle.material.timestamps) == 2
    assert Bundle.from_bytes(bundle.to_bytes()) == bundle
    assert json.loads(bundle.to_bytes()) == json.loads(sig.read_bytes())
    claimed = inspect_bundle(sig).to_json()["signer"]["timestamps"]
    assert claimed == [f"{NOW - d * DAY:%Y-%m-%dT%H:%M:%SZ}" for d in (45, 44)]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ([], "must be an object"),
        ({"rfc3161Timestamps": [], "x": 1}, "must be an object"),
        ({"rfc3161Timestamps": {}}, "must be a list"),
        ({"rfc3161Timestamps": [{"signedTimestamp": "AA=="}] * 2}, "the same timestamp twice"),
        ({"rfc3161Timestamps": [{"signedTimestamp": "!"}]}, "not valid base64"),
        ({"rfc3161Timestamps": [{"signedTimestamp": ""}]}, "non-empty base64"),
        ({"rfc3161Timestamps": [{"signedTimestamp": "AA==", "x": 1}]}, "signedTimestamp"),
        ({"rfc3161Timestamps": ["AA=="]}, "signedTimestamp"),
        (
            {"rfc3161Timestamps": [{"signedTimestamp": f"AA{i:02d}"} for i in range(33)]},
            "at most 32",
        ),
    ],
)
def test_malformed_timestamp_data_names_the_bundle(
    tmp_path: Path, pki: dict[str, Path], data: object, reason: str
) -> None:
    model = _signed_model(tmp_path, pki)
    sig = model / "model.sig"
    doc = json.loads(sig.read_text())
    doc["verificationMaterial"]["timestampVerificationData"] = data
    sig.write_text(json.dumps(doc))
    with pytest.raises(MalformedBundleError, match=f"^{re.escape(str(sig))}: .*{reason}"):
        modelsign.verify(model, _no_tsa(pki))


def test_empty_timestamp_data_is_no_timestamp(tmp_path: Path, pki: dict[str, Path]) -> None:
    model = _signed_model(tmp_path, pki, leaf="current")
    sig = model / "model.sig"
    for data in ({}, {"rfc3161Timestamps": []}):
        doc = json.loads(sig.read_text())
        doc["verificationMaterial"]["timestampVerificationData"] = data
        sig.write_text(json.dumps(doc))
        signer = modelsign.verify(model, _trust(pki)).signed_by
        assert signer.time_source == "verification time; the bundle has no timestamp"


# ------------------------------------------------ a real TSA


def test_a_real_sigstore_tsa_token_verifies() -> None:
    """Sigstore's production TSA timestamped the DSSE signature of this
    model_signing v1.1.0 bundle; its chain comes from the trusted root in the
    installed sigstore wheel."""
    bundle = json.loads(
        (shared("sigstore", "prod-dsse-model-signing-v1.1.0") / "model.sig").read_text()
    )
    import sigstore

    pattern = "_store/https%3A%2F%2Ftuf-repo-cdn.sigstore.dev/trusted_root.json"
    root_json = json.loads(
        Path(glob.glob(f"{Path(sigstore.__file__).parent}/{pattern}")[0]).read_text()
    )
    chain = [
        x509.load_der_x509_certificate(base64.b64decode(c["rawBytes"]))
        for c in root_json["timestampAuthorities"][0]["certChain"]["certificates"]
    ]
    roots, others = timestamp.split_tsa_certificates(chain)
    assert [r.subject.rfc4514_string() for r in roots] == [
        "CN=sigstore-tsa-selfsigned,O=sigstore.dev"
    ]
    token = base64.b64decode(
        bundle["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"][0][
            "signedTimestamp"
        ]
    )
    signature = base64.b64decode(bundle["dsseEnvelope"]["signatures"][0]["sig"])
    at = timestamp.trusted_time([token], signature, roots, others, source="model.sig", tsa="t")
    assert at == datetime.datetime(2025, 10, 10, 2, 12, 20, tzinfo=datetime.timezone.utc)
    with pytest.raises(UntrustedSignerError, match="does not chain"):
        timestamp.trusted_time([token], signature, (make_tsa().root,), (), source="s", tsa="t")
