"""A test-local RFC 3161 Time-Stamping Authority.

It mints real TimeStampResp structures (RFC 3161, with the ESS
signingCertificateV2 attribute of RFC 5816): a TSTInfo wrapped in a CMS
SignedData signed with ECDSA P-256 by a TSA certificate that carries the
critical timeStamping extended key usage and chains to the TSA's own root.
Built with asn1crypto (a test aid) and signed with cryptography, so the
verifier under test sees exactly what a real TSA would send.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["TSA", "dsse_signature", "issue", "make_tsa", "set_timestamps"]

#: An arbitrary TSA policy OID (the "test arc" of the ITU-T).
POLICY = "2.999.1"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
    *,
    usage: x509.ObjectIdentifier | None = None,
    email: str | None = None,
) -> x509.Certificate:
    """A CA certificate (``usage`` None) or an end-entity certificate for that
    extended key usage (critical for timeStamping, as RFC 3161 requires)."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=usage is None, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    if usage is None:
        ku = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
        return builder.add_extension(ku, critical=True).sign(issuer_key, hashes.SHA256())
    builder = builder.add_extension(
        x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
    ).add_extension(
        x509.ExtendedKeyUsage([usage]), critical=usage == ExtendedKeyUsageOID.TIME_STAMPING
    )
    if email:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


@dataclass(frozen=True)
class TSA:
    """A root CA and the timestamping certificate it issued, with its key."""

    root: x509.Certificate
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def root_pem(self) -> bytes:
        return self.root.public_bytes(serialization.Encoding.PEM)

    def write_root(self, path: Path) -> Path:
        path.write_bytes(self.root_pem())
        return path

    def token(
        self,
        message: bytes,
        gen_time: datetime.datetime,
        *,
        hash_name: str = "sha256",
        serial: int = 1,
        include_certificate: bool = True,
        bare: bool = False,
    ) -> bytes:
        """A DER TimeStampResp (status granted) over ``message``, dated
        ``gen_time``; with ``bare``, only the TimeStampToken it carries."""
        imprint = hashlib.new(hash_name, message).digest()
        tst_info = tsp.TSTInfo(
            {
                "version": "v1",
                "policy": POLICY,
                "message_imprint": {
                    "hash_algorithm": {"algorithm": hash_name},
                    "hashed_message": imprint,
                },
                "serial_number": serial,
                "gen_time": gen_time.astimezone(datetime.timezone.utc).replace(microsecond=0),
                "accuracy": {"seconds": 1},
                "ordering": False,
            }
        )
        content = tst_info.dump()
        cert_der = _der(self.cert)
        asn1_cert = asn1_x509.Certificate.load(cert_der)
        signed_attrs = cms.CMSAttributes(
            [
                {"type": "content_type", "values": ["tst_info"]},
                {"type": "message_digest", "values": [hashlib.sha256(content).digest()]},
                {
                    "type": "signing_certificate_v2",
                    "values": [
                        {
                            "certs": [
                                {
                                    "hash_algorithm": {"algorithm": "sha256"},
                                    "cert_hash": hashlib.sha256(cert_der).digest(),
                                }
                            ]
                        }
                    ],
                },
            ]
        )
        signature = self.key.sign(signed_attrs.dump(), ec.ECDSA(hashes.SHA256()))
        signer_info = cms.SignerInfo(
            {
                "version": "v1",
                "sid": cms.SignerIdentifier(
                    {
                        "issuer_and_serial_number": {
                            "issuer": asn1_cert.issuer,
                            "serial_number": asn1_cert.serial_number,
                        }
                    }
                ),
                "digest_algorithm": algos.DigestAlgorithm({"algorithm": "sha256"}),
                "signed_attrs": signed_attrs,
                "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"}),
                "signature": signature,
            }
        )
        signed_data = cms.SignedData(
            {
                "version": "v3",
                "digest_algorithms": [algos.DigestAlgorithm({"algorithm": "sha256"})],
                "encap_content_info": {
                    "content_type": "tst_info",
                    "content": core.ParsableOctetString(content),
                },
                "certificates": [asn1_cert] if include_certificate else None,
                "signer_infos": [signer_info],
            }
        )
        token = cms.ContentInfo({"content_type": "signed_data", "content": signed_data})
        if bare:
            return bytes(token.dump())
        response = tsp.TimeStampResp({"status": {"status": "granted"}, "time_stamp_token": token})
        return bytes(response.dump())


def dsse_signature(bundle: Path) -> bytes:
    """The DSSE signature bytes of a bundle file: what Sigstore timestamps."""
    doc = json.loads(bundle.read_text())
    return base64.b64decode(doc["dsseEnvelope"]["signatures"][0]["sig"])


def set_timestamps(bundle: Path, tokens: list[bytes]) -> None:
    """Put ``tokens`` into the bundle as Sigstore v0.3
    ``verificationMaterial.timestampVerificationData`` (outside the DSSE
    signature, so the signature still verifies)."""
    doc = json.loads(bundle.read_text())
    doc["verificationMaterial"]["timestampVerificationData"] = {
        "rfc3161Timestamps": [{"signedTimestamp": base64.b64encode(t).decode()} for t in tokens]
    }
    bundle.write_text(json.dumps(doc, indent=2) + "\n")


def make_tsa(
    name: str = "Test TSA",
    *,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
    usage: x509.ObjectIdentifier = ExtendedKeyUsageOID.TIME_STAMPING,
) -> TSA:
    """A fresh TSA; its certificates are valid from ``not_before`` (default:
    ten years ago) to ``not_after`` (default: in ten years)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    start = not_before or now - datetime.timedelta(days=3650)
    end = not_after or now + datetime.timedelta(days=3650)
    root_key = ec.generate_private_key(ec.SECP256R1())
    key = ec.generate_private_key(ec.SECP256R1())
    root = issue(f"{name} Root", root_key, f"{name} Root", root_key, start, end)
    cert = issue(f"{name} Timestamping", key, f"{name} Root", root_key, start, end, usage=usage)
    return TSA(root, cert, key)
