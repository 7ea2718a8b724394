"""X.509 certificate chains: verification against locally configured CAs, with
the leaf's identity pinned (the reference tool accepts any signer whose chain
verifies; modelsign does not)."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: Fulcio's OIDC issuer extensions (the legacy raw string and the DER UTF8String).
OIDC_ISSUER_V1 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
OIDC_ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")


class ChainError(Exception):
    """The chain does not verify to the given roots (message says why)."""


class CertificateError(Exception):
    """A certificate cannot be parsed or its extensions cannot be read."""


def load_der(data: bytes) -> x509.Certificate:
    """Parse a DER certificate; any failure is a :class:`CertificateError`."""
    try:
        return x509.load_der_x509_certificate(data)
    except Exception as e:  # ValueError, InvalidVersion and whatever else a parser raises
        raise CertificateError(f"not a valid DER certificate: {e}") from e


def load_pem_all(data: bytes) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(data)


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _code_signing(_policy: object, _cert: object, eku: x509.ExtendedKeyUsage | None) -> None:
    if eku is not None and ExtendedKeyUsageOID.CODE_SIGNING not in eku:
        raise ValueError("the leaf's extended key usage does not include codeSigning")


def _digital_signature(_policy: object, _cert: object, ku: x509.KeyUsage | None) -> None:
    if ku is not None and not ku.digital_signature:
        raise ValueError("the leaf's key usage does not include digitalSignature")


def _time_stamping(_policy: object, _cert: object, eku: x509.ExtendedKeyUsage | None) -> None:
    if eku is None or ExtendedKeyUsageOID.TIME_STAMPING not in eku:
        raise ValueError("the TSA certificate's extended key usage does not include timeStamping")


def verify_chain(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    at: datetime.datetime,
    *,
    time_stamping: bool = False,
) -> None:
    """Verify ``leaf`` up to one of ``roots`` at time ``at`` (RFC 5280 path
    validation by cryptography). The leaf must be usable for code signing or,
    with ``time_stamping``, be a TSA's: RFC 3161 section 2.3 wants a critical
    extended key usage extension with id-kp-timeStamping."""
    ee = verification.ExtensionPolicy.permit_all().may_be_present(
        x509.KeyUsage, verification.Criticality.AGNOSTIC, _digital_signature
    )
    if time_stamping:
        ee = ee.require_present(
            x509.ExtendedKeyUsage, verification.Criticality.CRITICAL, _time_stamping
        )
    else:
        ee = ee.may_be_present(
            x509.ExtendedKeyUsage, verification.Criticality.AGNOSTIC, _code_signing
        )
    verifier = (
        verification.PolicyBuilder()
        .store(verification.Store(list(roots)))
        .time(at)
        .extension_policies(
            ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(), ee_policy=ee
        )
        .build_client_verifier()
    )
    try:
        verifier.verify(leaf, list(intermediates))
    except verification.VerificationError as e:
        raise ChainError(str(e)) from e


@dataclass(frozen=True)
class Identity:
    """Who a certificate names: SAN values and subject, and an OIDC issuer."""

    names: tuple[str, ...]
    issuer: str | None

    @property
    def primary(self) -> str:
        return self.names[0] if self.names else "<no identity>"


def identity_of(cert: x509.Certificate) -> Identity:
    """Who ``cert`` names; extensions are parsed lazily by cryptography, so a
    malformed or duplicated one surfaces here as a :class:`CertificateError`."""
    try:
        return _identity_of(cert)
    except Exception as e:  # ValueError, DuplicateExtension, ...
        raise CertificateError(f"cannot read the certificate's identity: {e}") from e


def _identity_of(cert: x509.Certificate) -> Identity:
    names: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        for kind in (x509.RFC822Name, x509.UniformResourceIdentifier, x509.DNSName):
            names.extend(str(v) for v in san.get_values_for_type(kind))
    except x509.ExtensionNotFound:
        pass
    names.append(cert.subject.rfc4514_string())
    names.extend(str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME))
    return Identity(tuple(dict.fromkeys(n for n in names if n)), _oidc_issuer(cert))


def _oidc_issuer(cert: x509.Certificate) -> str | None:
    for oid in (OIDC_ISSUER_V2, OIDC_ISSUER_V1):
        try:
            raw = cert.extensions.get_extension_for_oid(oid).value
        except x509.ExtensionNotFound:
            continue
        value = getattr(raw, "value", b"")
        if oid == OIDC_ISSUER_V2 and len(value) > 2 and value[0] == 0x0C:
            value = value[2:]  # DER UTF8String with a one-byte length
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return None
    return None
