"""Stage 4: sign a model and write its OMS v1.0 bundle atomically."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from modelsign._atomic import write_atomic
from modelsign.bundle import PAYLOAD_TYPE, Bundle, Envelope, KeyMaterial, pae
from modelsign.enumerating import DEFAULT_IGNORES, ModelFile, ModelTree, enumerate_model
from modelsign.errors import UsageError
from modelsign.hashing import Progress, hash_files
from modelsign.keys import PrivateKey, load_private_key
from modelsign.manifest import Manifest, Serialization

__all__ = ["SignedModel", "default_signature_path", "display_name", "sign"]


def default_signature_path(model: Path) -> Path:
    """``MODEL/model.sig`` for a directory, ``MODEL.sig`` beside a single file."""
    if model.is_dir():
        return model / "model.sig"
    return model.with_name(model.name + ".sig")


def display_name(tree: ModelTree, file: ModelFile) -> str:
    """How a file is named in messages: its path as the user would type it."""
    return str(tree.root) if tree.single_file else str(tree.root / file.name)


@dataclass(frozen=True)
class SignedModel:
    """What :func:`sign` wrote."""

    signature: Path
    manifest: Manifest
    key_id: str
    algorithm: str


def build_manifest(
    tree: ModelTree,
    hash_type: str,
    *,
    progress: Progress | None = None,
    workers: int | None = None,
) -> Manifest:
    """Hash every file of ``tree`` (with archive members) into a manifest."""
    digests = hash_files(
        tree.files,
        hash_type,
        display=lambda f: display_name(tree, f),
        members=True,
        workers=workers,
        progress=progress,
    )
    serialization = Serialization(
        hash_type=hash_type, ignore_paths=tuple(sorted(tree.ignore_paths))
    )
    return Manifest.from_digests(tree.name, digests, serialization)


def sign(
    model: str | os.PathLike[str],
    key: PrivateKey | str | os.PathLike[str],
    *,
    signature: str | os.PathLike[str] | None = None,
    hash_type: str = "sha256",
    ignore_paths: Iterable[str] = (),
    passphrase: bytes | None = None,
    progress: Progress | None = None,
    workers: int | None = None,
) -> SignedModel:
    """Sign the directory or single file ``model`` with ``key``.

    Writes an OMS v1.0 bundle (key method) to ``signature`` (by default
    :func:`default_signature_path`) through a temporary file and
    ``os.replace``. Raises :class:`~modelsign.errors.UnsafeArchiveError` or
    :class:`~modelsign.errors.UnsafeModelError` for content modelsign refuses
    to vouch for, and :class:`~modelsign.errors.UsageError` for bad arguments.
    """
    model_path = Path(model)
    private = key if isinstance(key, PrivateKey) else load_private_key(key, passphrase)
    sig_path = Path(signature) if signature is not None else default_signature_path(model_path)
    user_ignores = tuple(ignore_paths)
    if model_path.is_dir():
        ignores = tuple(dict.fromkeys((*user_ignores, *DEFAULT_IGNORES)))
    elif user_ignores:
        raise UsageError(f"{model_path}: --ignore-path applies to a directory model only")
    else:
        ignores = ()
    tree = enumerate_model(model_path, ignore_paths=ignores, signature=sig_path)
    manifest = build_manifest(tree, hash_type, progress=progress, workers=workers)
    payload = manifest.to_payload()
    public = private.public_key()
    bundle = Bundle(
        KeyMaterial(hint=public.key_id),
        Envelope(payload, PAYLOAD_TYPE, private.sign(pae(PAYLOAD_TYPE, payload)), keyid=""),
    )
    write_atomic(sig_path, bundle.to_bytes())
    return SignedModel(sig_path, manifest, public.key_id, public.algorithm)
