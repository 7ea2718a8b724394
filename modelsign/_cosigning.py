"""Co-signing: add a signature by another signer to an already signed model.

A Sigstore bundle holds one signature (sigstore-python refuses a DSSE
envelope with more), so each co-signer writes a bundle of its own into the
folder beside the primary bundle: ``MODEL/model.sig.d/`` (``F.sig.d/`` for a
single file). Each bundle signs the primary's statement bytes exactly, so
``model_signing`` keeps verifying ``model.sig`` and modelsign counts every
signer once (see ``docs/adr/0003-release-trust.md``).
"""

from __future__ import annotations

import datetime
import hashlib
import os
from dataclasses import replace
from pathlib import Path

from modelsign._atomic import write_atomic
from modelsign._hashing import Progress
from modelsign._threshold import cosignature_dir
from modelsign.errors import MalformedBundleError, OverwriteError, UsageError
from modelsign.keys import PrivateKey
from modelsign.manifest import Manifest
from modelsign.policy import Anchor, Policy
from modelsign.signing import (
    SignedBy,
    SignedModel,
    Signer,
    as_signer,
    default_signature_path,
    sign_payload,
)
from modelsign.verifying import read_bundle, verify

__all__ = ["cosign", "cosignature_name"]


def cosignature_name(signed_by: SignedBy) -> str:
    """The co-signature's file name, from who signed: one file per signer,
    so that signing again replaces it (``key-<id>.sig``, ``sigstore-<h>.sig``,
    ``certificate-<h>.sig`` with ``h`` a hash of the identity)."""
    if signed_by.method == "key":
        assert signed_by.key_id is not None
        return f"key-{signed_by.key_id[:16]}.sig"
    identity = (signed_by.identity or "").encode("utf-8")
    return f"{signed_by.method}-{hashlib.sha256(identity).hexdigest()[:16]}.sig"


def _who(signed_by: SignedBy) -> str:
    """A signer as counting sees it: a key id, or an identity."""
    if signed_by.method == "key":
        return f"key {signed_by.key_id}"
    return f"identity {signed_by.identity}"


def cosign(
    model: str | os.PathLike[str],
    signer: Signer | PrivateKey | str | os.PathLike[str],
    trust: Policy | Anchor | list[Anchor | str | os.PathLike[str]],
    *,
    signature: str | os.PathLike[str] | None = None,
    force: bool = False,
    now: datetime.datetime | None = None,
    progress: Progress | None = None,
    workers: int | None = None,
) -> SignedModel:
    """Add ``signer``'s signature to the signed model ``model``.

    The model is verified first, files and all, against its bundles and
    ``trust`` (its anchors, with their validity and revocation; not its
    threshold rules, pins or rollback state, which a model on its way to
    enough signatures cannot meet yet). Then the primary bundle's statement
    is signed, byte for byte, by ``signer`` (key, certificate or Sigstore),
    into ``SIGNATURE.d/`` (``MODEL/model.sig.d/``, or ``F.sig.d/``).

    Args:
        model: the signed model folder or file.
        signer: who co-signs (as for :func:`~modelsign.signing.sign`).
        trust: who must already have signed it (a policy or anchors).
        signature: the primary bundle (default ``MODEL/model.sig`` or ``F.sig``).
        force: co-sign a folder whose primary bundle does not exclude
            ``model.sig.d`` from what it signs (written before co-signatures
            existed): ``model_signing`` would then report the co-signatures
            as extra files.
        now: the verification time (default: the clock).
        progress: told about files and bytes as they are hashed.
        workers: hashing threads (default: one per core).

    Returns:
        The co-signature written: its path, the statement, who signed.

    Raises:
        VerificationError: the model does not verify under ``trust``.
        UsageError: ``signer`` already counts for this model (a second
            signature by one signer counts once), a folder model's primary
            bundle that does not exclude ``model.sig.d`` (without ``force``),
            ``SIGNATURE.d`` that is not a folder, a signer that cannot sign.
    """
    model_path = Path(model)
    coerced = as_signer(signer)
    policy = Policy.of(trust)
    sig_path = Path(signature) if signature is not None else default_signature_path(model_path)
    folder = cosignature_dir(sig_path)
    if os.path.lexists(folder) and (os.path.islink(folder) or not folder.is_dir()):
        raise UsageError(f"{folder}: is not a folder: co-signatures go into a folder there")
    verified = verify(
        model_path,
        replace(policy, thresholds=(), pins=(), state=None),
        signature=sig_path,
        now=now,
        progress=progress,
        workers=workers,
    )
    if model_path.is_dir() and not force:
        _check_excluded(model_path, sig_path, folder, verified.manifest.serialization.ignore_paths)
    payload = read_bundle(sig_path).envelope.payload
    if not _same_statement(payload, verified.manifest):
        raise UsageError(f"{sig_path}: changed while it was being verified: co-sign again")
    data, signed_by = sign_payload(payload, coerced)
    target = folder / cosignature_name(signed_by)
    for counted in verified.signatures.counted if verified.signatures else ():
        if _who(counted.signed_by) == _who(signed_by) and Path(counted.bundle) != target:
            raise OverwriteError(
                f"{model_path}: {signed_by.describe()} already signed it ({counted.bundle}): "
                "a second signature by the same signer counts once",
                parameter="signer",
            )
    folder.mkdir(mode=0o755, exist_ok=True)
    write_atomic(target, data)
    return SignedModel(target, verified.manifest, signed_by)


def _same_statement(payload: bytes, manifest: Manifest) -> bool:
    """Whether the primary's statement is still the one that verified (read
    again: it is signed as the bytes are, and another tool may serialize a
    statement its own way, so it is compared parsed)."""
    try:
        return Manifest.from_payload(payload) == manifest
    except MalformedBundleError:
        return False


def _check_excluded(model: Path, signature: Path, folder: Path, ignored: tuple[str, ...]) -> None:
    """A folder model's primary statement must leave ``model.sig.d`` out of
    what it signs, or ``model_signing`` reports the co-signatures as extra
    files (modelsign itself always leaves it out)."""
    try:
        rel = folder.resolve().relative_to(model.resolve()).as_posix()
    except ValueError:
        return  # the bundle is outside the model: so are its co-signatures
    if rel not in ignored:
        raise UsageError(
            f"{signature}: its statement does not exclude {rel!r} from the model (ignore_paths "
            f"{list(ignored)}), so model_signing would report the co-signatures as extra files: "
            "sign the model again with this modelsign (which excludes it) and co-sign that, or "
            "co-sign anyway with {param}",
            parameter="force",
        )
