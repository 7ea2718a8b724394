"""The signature file: a Sigstore bundle holding a DSSE envelope.

:class:`Bundle` is immutable, parsed strictly from untrusted bytes by
:meth:`Bundle.from_bytes` and written by :meth:`Bundle.to_bytes` in one fixed
layout, so that ``to_bytes(from_bytes(b)) == b`` for every bundle modelsign
writes. Parsing checks the shape only; :mod:`modelsign.verifying` checks the
signature, then the statement.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field, replace
from typing import Any

from modelsign import _json
from modelsign.errors import MalformedBundleError

__all__ = [
    "MEDIA_TYPE",
    "PAYLOAD_TYPE",
    "Bundle",
    "CertificateMaterial",
    "Envelope",
    "KeyMaterial",
    "SigstoreMaterial",
    "pae",
    "pae_legacy",
]

MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
_MEDIA_TYPES = frozenset({MEDIA_TYPE, "application/vnd.dev.sigstore.bundle+json;version=0.3"})
PAYLOAD_TYPE = "application/vnd.in-toto+json"


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSE pre-authentication encoding: the bytes that are actually signed.

    Args:
        payload_type: the envelope's ``payloadType``.
        body: the payload.

    Returns:
        ``DSSEv1 <len> <type> <len> <body>``.

    Raises:
        UnicodeEncodeError: never for a ``str`` payload type (UTF-8).
    """
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)


def pae_legacy(body: bytes) -> bytes:
    """The encoding model_signing before 1.0 signed by mistake (``str`` of the
    ``bytes`` payload). Accepted only for bundles in that era's layout.

    Args:
        body: the payload.

    Returns:
        The bytes those bundles' signatures are over.

    Raises:
        UnicodeEncodeError: never (the text is ASCII).
    """
    return f"DSSEV1 {len(PAYLOAD_TYPE)} {PAYLOAD_TYPE} {len(body)} {body!r}".encode()


def _b64(value: object, what: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise MalformedBundleError(f"{what} must be a non-empty base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as e:
        raise MalformedBundleError(f"{what} is not valid base64: {e}") from e


def _enc(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True)
class KeyMaterial:
    """Key method: a key id (``hint``), or the PEM key itself in older bundles.
    Neither is trusted: the verifier only uses them to pick a trusted key.
    RFC 3161 timestamps over the DSSE signature (``timestampVerificationData``)
    are kept as given, and trusted only when the policy names a TSA for the key."""

    hint: str | None = None
    raw_bytes: bytes | None = None
    timestamps: tuple[bytes, ...] = ()

    def to_json(self) -> dict[str, Any]:
        key: dict[str, Any] = {}
        if self.hint is not None:
            key["hint"] = self.hint
        if self.raw_bytes is not None:
            key["rawBytes"] = _enc(self.raw_bytes)
        out: dict[str, Any] = {"publicKey": key, "tlogEntries": []}
        if self.timestamps:
            out["timestampVerificationData"] = _timestamps_to_json(self.timestamps)
        return out


def _timestamps_to_json(tokens: tuple[bytes, ...]) -> dict[str, Any]:
    return {"rfc3161Timestamps": [{"signedTimestamp": _enc(t)} for t in tokens]}


@dataclass(frozen=True)
class CertificateMaterial:
    """Certificate method: leaf first, then the chain (DER), and the RFC 3161
    timestamps over the DSSE signature (``timestampVerificationData``), kept
    as given and trusted only when a TSA is configured."""

    chain: tuple[bytes, ...]
    timestamps: tuple[bytes, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "x509CertificateChain": {"certificates": [{"rawBytes": _enc(c)} for c in self.chain]}
        }
        if self.timestamps:
            out["timestampVerificationData"] = _timestamps_to_json(self.timestamps)
        return out


@dataclass(frozen=True)
class SigstoreMaterial:
    """Sigstore method: a Fulcio certificate and Rekor entries, kept as parsed
    JSON for sigstore-python to verify."""

    certificate: bytes
    raw: str  # the verificationMaterial object, re-serialized

    def to_json(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.raw)
        return value

    def log_entry(self) -> tuple[int | None, int | None]:
        """The first transparency log entry's index and integrated time (Unix
        seconds), as the bundle claims them (unverified); None where absent
        (Rekor v2 entries have no integrated time)."""
        entries = self.to_json().get("tlogEntries")
        first = entries[0] if isinstance(entries, list) and entries else {}

        def number(key: str) -> int | None:
            value = first.get(key) if isinstance(first, dict) else None
            text = (
                str(value) if isinstance(value, (int, str)) and not isinstance(value, bool) else ""
            )
            return int(text) if text.isdecimal() and len(text) <= 20 else None

        integrated = number("integratedTime")
        return number("logIndex"), integrated or None  # 0: no integrated time


Material = KeyMaterial | CertificateMaterial | SigstoreMaterial


@dataclass(frozen=True)
class Envelope:
    """A DSSE envelope with exactly one signature, as OMS writes it."""

    payload: bytes
    payload_type: str
    signature: bytes
    keyid: str | None = None

    def to_json(self) -> dict[str, Any]:
        sig: dict[str, Any] = {"sig": _enc(self.signature)}
        if self.keyid is not None:
            sig["keyid"] = self.keyid
        return {
            "payload": _enc(self.payload),
            "payloadType": self.payload_type,
            "signatures": [sig],
        }

    @classmethod
    def from_json(cls, obj: object) -> Envelope:
        """Parse a bundle's ``dsseEnvelope``, strictly.

        Args:
            obj: the parsed JSON value.

        Returns:
            The envelope (exactly one signature).

        Raises:
            MalformedBundleError: unknown keys, bad base64, not one signature.
        """
        if not isinstance(obj, dict):
            raise MalformedBundleError("dsseEnvelope must be an object")
        unknown = set(obj) - {"payload", "payloadType", "signatures"}
        if unknown:
            raise MalformedBundleError(f"dsseEnvelope has unknown keys {sorted(unknown)}")
        payload = _b64(obj.get("payload"), "dsseEnvelope.payload")
        payload_type = obj.get("payloadType")
        if payload_type != PAYLOAD_TYPE:
            raise MalformedBundleError(
                f"dsseEnvelope.payloadType is {payload_type!r}, expected {PAYLOAD_TYPE!r}"
            )
        sigs = obj.get("signatures")
        if not isinstance(sigs, list) or len(sigs) != 1:
            count = len(sigs) if isinstance(sigs, list) else "no"
            raise MalformedBundleError(f"dsseEnvelope must have exactly one signature, has {count}")
        sig = sigs[0]
        if not isinstance(sig, dict) or set(sig) - {"sig", "keyid"}:
            raise MalformedBundleError("a DSSE signature is an object with sig and keyid only")
        keyid = sig.get("keyid")
        if keyid is not None and not isinstance(keyid, str):
            raise MalformedBundleError("DSSE keyid must be a string or null")
        return cls(payload, PAYLOAD_TYPE, _b64(sig.get("sig"), "DSSE signature"), keyid)


#: At most this many RFC 3161 timestamps per bundle (sigstore-python's limit).
MAX_TIMESTAMPS = 32


def _timestamps_from_json(obj: object) -> tuple[bytes, ...]:
    """``timestampVerificationData`` (Sigstore bundle v0.3): an object whose
    ``rfc3161Timestamps`` lists ``{"signedTimestamp": base64 DER}`` items.
    Only the shape is checked here; the DER is decoded by the verifier."""
    if obj is None:
        return ()
    where = "verificationMaterial.timestampVerificationData"
    if not isinstance(obj, dict) or set(obj) - {"rfc3161Timestamps"}:
        raise MalformedBundleError(f"{where} must be an object with rfc3161Timestamps only")
    items = obj.get("rfc3161Timestamps", [])
    if not isinstance(items, list) or len(items) > MAX_TIMESTAMPS:
        raise MalformedBundleError(
            f"{where}.rfc3161Timestamps must be a list of at most {MAX_TIMESTAMPS} items"
        )
    tokens = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or set(item) != {"signedTimestamp"}:
            raise MalformedBundleError(f"rfc3161Timestamps[{i}] must be {{signedTimestamp}} only")
        tokens.append(_b64(item["signedTimestamp"], f"rfc3161Timestamps[{i}].signedTimestamp"))
    if len(set(tokens)) != len(tokens):
        raise MalformedBundleError(f"{where} lists the same timestamp twice")
    return tuple(tokens)


def _material_from_json(obj: object) -> Material:
    if not isinstance(obj, dict):
        raise MalformedBundleError("verificationMaterial must be an object")
    methods = [k for k in ("publicKey", "x509CertificateChain", "certificate") if k in obj]
    if len(methods) != 1:
        raise MalformedBundleError(
            "verificationMaterial must hold exactly one of publicKey, x509CertificateChain "
            f"and certificate; it holds {methods or 'none'}"
        )
    method = methods[0]
    tlog = obj.get("tlogEntries")
    if method == "publicKey":
        key = obj["publicKey"]
        if not isinstance(key, dict):
            raise MalformedBundleError("verificationMaterial.publicKey must be an object")
        hint = key.get("hint")
        if hint is not None and (not isinstance(hint, str) or not hint):
            raise MalformedBundleError("publicKey.hint must be a non-empty string")
        raw = _b64(key["rawBytes"], "publicKey.rawBytes") if "rawBytes" in key else None
        if hint is None and raw is None:
            raise MalformedBundleError("publicKey needs a hint or rawBytes")
        if tlog not in (None, []):
            raise MalformedBundleError("a key-method bundle has no transparency log entries")
        return KeyMaterial(hint, raw, _timestamps_from_json(obj.get("timestampVerificationData")))
    if method == "x509CertificateChain":
        chain = obj["x509CertificateChain"]
        certs = chain.get("certificates") if isinstance(chain, dict) else None
        if not isinstance(certs, list) or not certs:
            raise MalformedBundleError("x509CertificateChain.certificates must be a non-empty list")
        return CertificateMaterial(
            tuple(
                _b64(c.get("rawBytes") if isinstance(c, dict) else None, "certificate rawBytes")
                for c in certs
            ),
            _timestamps_from_json(obj.get("timestampVerificationData")),
        )
    cert = obj["certificate"]
    if not isinstance(tlog, list) or not tlog:
        raise MalformedBundleError("a Sigstore bundle needs at least one tlogEntries item")
    der = _b64(cert.get("rawBytes") if isinstance(cert, dict) else None, "certificate rawBytes")
    for i, entry in enumerate(tlog):
        _check_log_entry(entry, f"tlogEntries[{i}]")
    for i, token in enumerate(_timestamps_from_json(obj.get("timestampVerificationData"))):
        _check_timestamp(token, f"rfc3161Timestamps[{i}]")
    return SigstoreMaterial(der, json.dumps(obj, sort_keys=True))


def _check_log_entry(entry: object, where: str) -> None:
    """The base64 fields of a transparency log entry decode strictly: sigstore
    reads them leniently (dropping characters), so a bundle would have more
    than one byte form. What they mean, sigstore-python verifies."""
    if not isinstance(entry, dict):
        raise MalformedBundleError(f"{where} must be an object")
    fields: list[tuple[object, str]] = [
        (entry.get("canonicalizedBody"), f"{where}.canonicalizedBody"),
        ((entry.get("logId") or {}).get("keyId"), f"{where}.logId.keyId"),
    ]
    promise = entry.get("inclusionPromise")
    if isinstance(promise, dict) and "signedEntryTimestamp" in promise:
        fields.append((promise["signedEntryTimestamp"], f"{where}.inclusionPromise"))
    proof = entry.get("inclusionProof")
    if isinstance(proof, dict):
        fields.append((proof.get("rootHash"), f"{where}.inclusionProof.rootHash"))
        hashes = proof.get("hashes", [])
        if not isinstance(hashes, list):
            raise MalformedBundleError(f"{where}.inclusionProof.hashes must be a list")
        fields += [(h, f"{where}.inclusionProof.hashes[{j}]") for j, h in enumerate(hashes)]
    for value, name in fields:
        if value is not None:
            _b64(value, name)


def _check_timestamp(token: bytes, where: str) -> None:
    """An RFC 3161 timestamp must at least parse (its signature and chain are
    sigstore-python's to check): unreadable DER is a malformed bundle."""
    from rfc3161_client import decode_timestamp_response  # noqa: PLC0415

    try:
        decode_timestamp_response(token)
    except Exception as e:  # the parser's own errors: ValueError, ...
        raise MalformedBundleError(f"{where}: not an RFC 3161 timestamp: {e}") from e


@dataclass(frozen=True)
class Bundle:
    """An OMS v1.0 signature file."""

    material: Material
    envelope: Envelope
    media_type: str = MEDIA_TYPE
    #: The bytes it was parsed from (Sigstore bundles are verified from them).
    raw: bytes = field(default=b"", compare=False, repr=False)

    @property
    def method(self) -> str:
        if isinstance(self.material, KeyMaterial):
            return "key"
        if isinstance(self.material, CertificateMaterial):
            return "certificate"
        return "sigstore"

    def to_json(self) -> dict[str, Any]:
        return {
            "mediaType": self.media_type,
            "verificationMaterial": self.material.to_json(),
            "dsseEnvelope": self.envelope.to_json(),
        }

    def to_bytes(self) -> bytes:
        if isinstance(self.material, SigstoreMaterial) and self.raw:
            return self.raw  # written by sigstore-python: kept byte for byte
        return (json.dumps(self.to_json(), indent=2) + "\n").encode("utf-8")

    @classmethod
    def from_bytes(
        cls, data: bytes, *, source: str = "bundle", max_bytes: int | None = None
    ) -> Bundle:
        """Parse untrusted bytes.

        Args:
            data: the bundle file's bytes.
            source: how to name it in messages.
            max_bytes: the size limit (default 64 MiB).

        Returns:
            The bundle; nothing is verified yet.

        Raises:
            MalformedBundleError: not strict JSON or not a Sigstore bundle
                v0.3 with a DSSE envelope (the message names ``source``).
            BundleTooLargeError: more than ``max_bytes``.
        """
        limit = _json.DEFAULT_MAX_BYTES if max_bytes is None else max_bytes
        obj = _json.loads(data, source, max_bytes=limit)
        try:
            return replace(cls.from_json(obj), raw=data)
        except MalformedBundleError as e:
            raise MalformedBundleError(f"{source}: {e}") from e

    @classmethod
    def from_json(cls, obj: object) -> Bundle:
        """Parse a bundle from its JSON value, strictly.

        Args:
            obj: the parsed JSON value.

        Returns:
            The bundle; nothing is verified yet.

        Raises:
            MalformedBundleError: anything a Sigstore bundle v0.3 does not allow.
        """
        if not isinstance(obj, dict):
            raise MalformedBundleError("a bundle must be a JSON object")
        media_type = obj.get("mediaType")
        if not isinstance(media_type, str) or media_type not in _MEDIA_TYPES:
            raise MalformedBundleError(f"mediaType {media_type!r} is not a Sigstore bundle v0.3")
        assert isinstance(media_type, str)
        for key in ("verificationMaterial", "dsseEnvelope"):
            if key not in obj:
                raise MalformedBundleError(f"the bundle has no {key}")
        unknown = set(obj) - {"mediaType", "verificationMaterial", "dsseEnvelope"}
        if unknown:
            raise MalformedBundleError(f"the bundle has unknown keys {sorted(unknown)}")
        return cls(
            _material_from_json(obj["verificationMaterial"]),
            Envelope.from_json(obj["dsseEnvelope"]),
            media_type,
        )
