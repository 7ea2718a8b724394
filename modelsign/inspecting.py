"""Show what a bundle claims, without verifying it (for auditors)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from modelsign.bundle import CertificateMaterial, KeyMaterial
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
    elif isinstance(material, CertificateMaterial):
        signer["certificates"] = len(material.chain)
    return {
        "verified": False,
        "signature": str(path),
        "signer": signer,
        "model_name": manifest.model_name,
        "root_digest": manifest.root_digest,
        "hash_type": manifest.serialization.hash_type,
        "method": manifest.serialization.method,
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
