"""Show what a bundle claims, without verifying it (for auditors)."""

from __future__ import annotations

import datetime
import hashlib
import os
from pathlib import Path
from typing import Any

from modelsign.bundle import Bundle, CertificateMaterial, KeyMaterial, SigstoreMaterial
from modelsign.errors import MalformedBundleError
from modelsign.manifest import Manifest
from modelsign.verifying import read_bundle

__all__ = ["inspect_bundle"]


def inspect_bundle(signature: str | os.PathLike[str]) -> dict[str, Any]:
    """A JSON-ready description of the bundle at ``signature``.

    Nothing here is verified: the signature is not checked and no file is
    hashed. Use :func:`modelsign.verify` to decide whether to trust a model.
    """
    path = Path(signature)
    bundle = read_bundle(path)
    manifest = Manifest.from_payload(bundle.envelope.payload)
    material = bundle.material
    signer: dict[str, Any] = {"method": bundle.method}
    if isinstance(material, KeyMaterial):
        signer["key_id"] = (
            material.hint
            if material.hint is not None
            else hashlib.sha256(material.raw_bytes or b"").hexdigest()
        )
        signer["key_id_source"] = "hint" if material.hint is not None else "rawBytes"
    else:
        try:
            signer.update(_certificate_signer(bundle, path))
        except Exception as e:  # a malformed certificate must not crash an audit
            raise MalformedBundleError(f"{path}: certificate: {e}") from e
    return {
        "verified": False,
        "signature": str(path),
        "signer": signer,
        "model_name": manifest.model_name,
        "root_digest": manifest.root_digest,
        "hash_type": manifest.serialization.hash_type,
        "method": manifest.serialization.method,
        "shard_size": manifest.serialization.shard_size,
        "empty_files": [n for r in manifest.resources for n in r.empty_files],
        "allow_symlinks": manifest.serialization.allow_symlinks,
        "ignore_paths": list(manifest.serialization.ignore_paths),
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
            for r in manifest.resources
        ],
    }


def _certificate_signer(bundle: Bundle, path: Path) -> dict[str, Any]:
    from modelsign._backends import certificate as x509  # noqa: PLC0415

    material = bundle.material
    if isinstance(material, CertificateMaterial):
        chain = [x509.load_der(c) for c in material.chain]
        who = x509.identity_of(chain[0])
        out: dict[str, Any] = {
            "identity": who.primary,
            "identities": list(who.names),
            "chain": [c.subject.rfc4514_string() for c in chain],
        }
        if material.timestamps:  # claimed times; verify --tsa decides whether to trust them
            from modelsign._backends.timestamp import claimed_time  # noqa: PLC0415

            out["timestamps"] = [claimed_time(t) for t in material.timestamps]
        return out
    assert isinstance(material, SigstoreMaterial)
    who = x509.identity_of(x509.load_der(material.certificate))
    log_index, integrated = material.log_entry()
    return {
        "identity": who.primary,
        "issuer": who.issuer,
        "log_index": log_index,
        "integrated_time": datetime.datetime.fromtimestamp(
            integrated, datetime.timezone.utc
        ).isoformat()
        if isinstance(integrated, int)
        else None,
    }
