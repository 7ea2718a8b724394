"""RFC 3161 trusted timestamps over a DSSE signature (what Sigstore timestamps).

:func:`trusted_time` verifies every token of a bundle against a locally
configured Time-Stamping Authority and returns the earliest ``genTime``; the
certificate method then validates its leaf at that time instead of now. The
checks, in order, each with its own error (every message names ``source``):

1. the token decodes: a DER ``TimeStampResp`` with status granted, or a bare
   ``TimeStampToken`` (which is what a granted response carries) —
   :class:`MalformedBundleError`;
2. its message imprint (SHA-256/384/512) is over exactly the DSSE signature
   bytes — :class:`InvalidSignatureError`;
3. its one signer certificate (embedded in the token, or given in the TSA
   file) chains to a configured TSA root at ``genTime`` with a critical
   timeStamping extended key usage (RFC 5280 path validation by
   cryptography) — :class:`UntrustedSignerError`;
4. rfc3161-client then verifies the whole token: the CMS signature over the
   TSTInfo, the chain again (OpenSSL, at ``genTime``), the key usage —
   :class:`InvalidSignatureError`.

No I/O and no clock: the TSA certificates come from the policy. Imported
only for certificate bundles with timestamps and a configured TSA.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import rfc3161_client
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm

from modelsign._backends import certificate
from modelsign.errors import (
    InvalidSignatureError,
    MalformedBundleError,
    UntrustedSignerError,
)

__all__ = ["claimed_time", "split_tsa_certificates", "trusted_time"]

_HASHES = {
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
}
_GRANTED = bytes.fromhex("3003020100")  # PKIStatusInfo { status granted }


def split_tsa_certificates(
    certs: Sequence[x509.Certificate],
) -> tuple[tuple[x509.Certificate, ...], tuple[x509.Certificate, ...]]:
    """(roots, others): the self-signed certificates are the trust anchors;
    the others (intermediates, the TSA's own certificate) only help build a
    chain to them, and never anchor one."""
    roots: list[x509.Certificate] = []
    others: list[x509.Certificate] = []
    for cert in certs:
        (roots if _self_signed(cert) else others).append(cert)
    return tuple(roots), tuple(others)


def _self_signed(cert: x509.Certificate) -> bool:
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError):
        return False
    return True


def trusted_time(
    tokens: Sequence[bytes],
    signature: bytes,
    roots: Sequence[x509.Certificate],
    others: Sequence[x509.Certificate],
    *,
    source: str,
    tsa: str,
) -> datetime.datetime:
    """The earliest ``genTime`` of ``tokens``, every one of which must verify
    as a timestamp of ``signature`` by a TSA chaining to ``roots``.

    ``tsa`` names the TSA file in messages. Raises a
    :class:`~modelsign.errors.VerificationError` subclass otherwise.
    """
    if not tokens:
        raise ValueError("no timestamp to verify")
    times = [
        _verify_one(
            der, signature, roots, others, f"{source}: timestamp {i + 1} of {len(tokens)}", tsa
        )
        for i, der in enumerate(tokens)
    ]
    return min(times)


@dataclass(frozen=True)
class _Token:
    """What a decoded token says, read once: rfc3161-client and cryptography
    parse lazily, so every read that can fail on hostile DER happens here."""

    gen_time: datetime.datetime
    algorithm: str  # the imprint's hash OID, dotted
    imprint: bytes
    signer_issuer: x509.Name
    signer_serial: int
    signer_count: int
    embedded: tuple[x509.Certificate, ...]
    signer: x509.Certificate | None
    signer_subject: str


def _read(
    response: rfc3161_client.TimeStampResponse, others: Sequence[x509.Certificate], where: str
) -> _Token:
    try:
        info = response.tst_info
        signer_infos = list(response.signed_data.signer_infos)
        if len(signer_infos) != 1:
            raise ValueError(f"{len(signer_infos)} signers, expected 1")
        sid = signer_infos[0]
        embedded = tuple(certificate.load_der(c) for c in response.signed_data.certificates)
        signer = next(
            (
                c
                for c in (*embedded, *others)
                if c.issuer == sid.issuer and c.serial_number == sid.serial_number
            ),
            None,
        )
        return _Token(
            gen_time=info.gen_time,
            algorithm=info.message_imprint.hash_algorithm.dotted_string,
            imprint=info.message_imprint.message,
            signer_issuer=sid.issuer,
            signer_serial=sid.serial_number,
            signer_count=len(signer_infos),
            embedded=embedded,
            signer=signer,
            signer_subject=signer.subject.rfc4514_string() if signer else "",
        )
    except Exception as e:  # ValueError, CertificateError, DuplicateExtension, ...
        raise MalformedBundleError(f"{where}: not a valid timestamp token: {e}") from e


def _verify_one(
    der: bytes,
    signature: bytes,
    roots: Sequence[x509.Certificate],
    others: Sequence[x509.Certificate],
    where: str,
    tsa: str,
) -> datetime.datetime:
    response = _decode(der, where)
    token = _read(response, others, where)
    algorithm = _HASHES.get(token.algorithm)
    if algorithm is None:
        raise MalformedBundleError(
            f"{where}: message imprint hash {token.algorithm} is not SHA-256, SHA-384 or SHA-512"
        )
    digest = hashlib.new(algorithm, signature).digest()
    if token.imprint != digest:
        raise InvalidSignatureError(
            f"{where}: it timestamps other bytes than the bundle's DSSE signature "
            f"(imprint {algorithm}:{token.imprint.hex()}, expected {algorithm}:{digest.hex()})"
        )
    at = f"{token.gen_time:%Y-%m-%dT%H:%M:%SZ}"
    signer = token.signer
    if signer is None:
        raise UntrustedSignerError(
            f"{where}: its signer (issuer {token.signer_issuer.rfc4514_string()}, serial "
            f"{token.signer_serial:x}) is neither in the token nor in {tsa}"
        )
    try:
        intermediates = [c for c in (*token.embedded, *others) if c != signer]
        certificate.verify_chain(signer, intermediates, roots, token.gen_time, time_stamping=True)
    except certificate.ChainError as e:
        raise UntrustedSignerError(
            f"{where}: TSA {token.signer_subject!r} does not chain to the TSA roots in {tsa} "
            f"at its genTime {at}: {e}"
        ) from e
    builder = rfc3161_client.VerifierBuilder()
    for root in dict.fromkeys(roots):
        builder = builder.add_root_certificate(root)
    for cert in dict.fromkeys(c for c in others if c not in roots):
        builder = builder.add_intermediate_certificate(cert)
    if not token.embedded:
        builder = builder.tsa_certificate(signer)
    try:
        builder.build().verify(response, digest)
    except Exception as e:  # rfc3161_client.VerificationError, ValueError from its parsers
        raise InvalidSignatureError(
            f"{where}: the TSA's signature does not verify (genTime {at}): {e}"
        ) from e
    return token.gen_time


def claimed_time(der: bytes) -> str:
    """What a token claims, UNVERIFIED (for ``inspect``): its genTime, or why
    it cannot be read."""
    try:
        response = _decode(der, "timestamp")
        return f"{response.tst_info.gen_time:%Y-%m-%dT%H:%M:%SZ}"
    except (MalformedBundleError, ValueError) as e:
        return f"unreadable ({e})"


def _decode(der: bytes, where: str) -> rfc3161_client.TimeStampResponse:
    try:
        response = rfc3161_client.decode_timestamp_response(_as_response(der))
    except ValueError as e:
        raise MalformedBundleError(
            f"{where}: not a DER TimeStampResp or TimeStampToken: {e}"
        ) from e
    if response.status != 0:
        raise MalformedBundleError(
            f"{where}: the TSA did not grant it (PKIStatus {response.status}, expected 0)"
        )
    return response


def _as_response(der: bytes) -> bytes:
    """A bare TimeStampToken (a CMS ContentInfo: a SEQUENCE that starts with
    an OID) wrapped in a granted TimeStampResp; anything else unchanged."""
    if len(der) < 2 or der[0] != 0x30:
        return der
    start = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
    if start >= len(der) or der[start] != 0x06:
        return der
    body = _GRANTED + der
    size = len(body)
    if size < 0x80:
        return b"\x30" + bytes([size]) + body
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return b"\x30" + bytes([0x80 | len(length)]) + length + body
