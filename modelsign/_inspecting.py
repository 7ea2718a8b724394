"""Show what a bundle claims, without verifying it (for auditors)."""

from __future__ import annotations

import datetime
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from modelsign.bundle import Bundle, CertificateMaterial, KeyMaterial, SigstoreMaterial
from modelsign.errors import MalformedBundleError
from modelsign.manifest import Manifest
from modelsign.signing import Method, default_signature_path
from modelsign.verifying import read_bundle

__all__ = ["BundleClaims", "ClaimedSigner", "claimed_signer", "inspect_bundle"]


@dataclass(frozen=True)
class ClaimedSigner:
    """Who a bundle says signed it. Unverified: a claim, not a finding."""

    method: Method
    #: Key method: the key id, from the hint or from the embedded key.
    key_id: str | None = None
    key_id_source: Literal["hint", "rawBytes"] | None = None
    #: Certificate and Sigstore methods: the leaf's identity (SAN or subject).
    identity: str | None = None
    identities: tuple[str, ...] = ()
    #: Sigstore: the OIDC issuer, the log index and integrated time (ISO 8601).
    issuer: str | None = None
    log_index: int | None = None
    integrated_time: str | None = None
    #: Certificate method: the chain's subjects, leaf first, and the times
    #: the RFC 3161 timestamps claim.
    chain: tuple[str, ...] = ()
    timestamps: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {}
        for key, value in vars(self).items():
            if value is None or value == ():
                continue
            out[key] = list(value) if isinstance(value, tuple) else value
        return out


@dataclass(frozen=True)
class BundleClaims:
    """What a bundle claims: its signer and its manifest, unverified."""

    signature: Path
    signer: ClaimedSigner
    manifest: Manifest

    def to_json(self) -> dict[str, object]:
        ser = self.manifest.serialization
        return {
            "verified": False,
            "signature": str(self.signature),
            "signer": self.signer.to_json(),
            "model_name": self.manifest.model_name,
            "release": None if self.manifest.release is None else self.manifest.release.to_json(),
            "root_digest": self.manifest.root_digest,
            "hash_type": ser.hash_type,
            "method": ser.method,
            "shard_size": ser.shard_size,
            "empty_files": [n for r in self.manifest.resources for n in r.empty_files],
            "allow_symlinks": ser.allow_symlinks,
            "ignore_paths": list(ser.ignore_paths),
            "files": [
                {
                    "name": r.name,
                    "size": r.size,
                    "digest": r.digest,
                    "archive": r.archive,
                    "members": [
                        {
                            "name": m.name,
                            "size": m.size,
                            "digest": m.digest,
                            "compression": m.compression,
                        }
                        for m in r.members
                    ],
                }
                for r in self.manifest.resources
            ],
        }


def inspect_bundle(signature: str | os.PathLike[str]) -> BundleClaims:
    """What the bundle at ``signature`` claims.

    Nothing here is verified: the signature is not checked and no file is
    hashed. Use :func:`modelsign.verify` to decide whether to trust a model.

    Args:
        signature: a bundle file, or a model folder (its ``model.sig``).

    Returns:
        The claimed signer and the manifest.

    Raises:
        MalformedBundleError: not a bundle modelsign can read (also
            ``MissingSignatureError`` when there is no file).
    """
    path = Path(signature)
    if path.is_dir():  # a model folder: its bundle
        path = default_signature_path(path)
    bundle = read_bundle(path)
    manifest = Manifest.from_payload(bundle.envelope.payload)
    return BundleClaims(path, claimed_signer(bundle, str(path)), manifest)


def claimed_signer(bundle: Bundle, source: str) -> ClaimedSigner:
    """Who ``bundle`` says signed it, whatever its statement (unverified).

    Raises:
        MalformedBundleError: an unreadable certificate (names ``source``).
    """
    material = bundle.material
    if isinstance(material, KeyMaterial):
        return ClaimedSigner(
            "key",
            key_id=material.hint
            if material.hint is not None
            else hashlib.sha256(material.raw_bytes or b"").hexdigest(),
            key_id_source="hint" if material.hint is not None else "rawBytes",
        )
    try:
        return _certificate_signer(bundle)
    except Exception as e:  # a malformed certificate must not crash an audit
        raise MalformedBundleError(f"{source}: certificate: {e}") from e


def _certificate_signer(bundle: Bundle) -> ClaimedSigner:
    from modelsign._backends import certificate as x509  # noqa: PLC0415

    material = bundle.material
    if isinstance(material, CertificateMaterial):
        chain = [x509.load_der(c) for c in material.chain]
        who = x509.identity_of(chain[0])
        timestamps: tuple[str, ...] = ()
        if material.timestamps:  # claimed times; verify --tsa decides whether to trust them
            from modelsign._backends.timestamp import claimed_time  # noqa: PLC0415

            timestamps = tuple(claimed_time(t) for t in material.timestamps)
        return ClaimedSigner(
            "certificate",
            identity=who.primary,
            identities=tuple(who.names),
            chain=tuple(c.subject.rfc4514_string() for c in chain),
            timestamps=timestamps,
        )
    assert isinstance(material, SigstoreMaterial)
    who = x509.identity_of(x509.load_der(material.certificate))
    log_index, integrated = material.log_entry()
    return ClaimedSigner(
        "sigstore",
        identity=who.primary,
        issuer=who.issuer,
        log_index=log_index,
        integrated_time=None
        if integrated is None
        else datetime.datetime.fromtimestamp(integrated, datetime.timezone.utc).isoformat(),
    )
