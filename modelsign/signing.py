"""Stage 4: sign a model and write its OMS v1.0 bundle atomically."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelsign._atomic import temporary_name_prefix, write_atomic
from modelsign._files import read_small
from modelsign.bundle import PAYLOAD_TYPE, Bundle, CertificateMaterial, Envelope, KeyMaterial, pae
from modelsign.enumerating import DEFAULT_IGNORES, ModelFile, ModelTree, enumerate_model
from modelsign.errors import UnsafeModelError, UsageError
from modelsign.hashing import Progress, hash_files
from modelsign.keys import PrivateKey, PublicKey, load_private_key
from modelsign.manifest import Manifest, Serialization, check_shard_path

__all__ = [
    "SignedModel",
    "SigstoreSigning",
    "default_signature_path",
    "display_name",
    "sign",
]

MAX_CERT_BYTES = 1024 * 1024
#: Signing refuses a shard size that would cut the model into more shards
#: (a bundle of a million resources is about 150 MB of JSON).
MAX_SHARDS = 1_000_000
#: The largest shard size signed (2**63 - 1: far above any file, and within
#: what every JSON reader, modelsign's strict one included, reads as an integer).
MAX_SHARD_SIZE = 2**63 - 1


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
    method: str = "key"
    key_id: str | None = None
    algorithm: str | None = None
    identity: str | None = None


@dataclass(frozen=True)
class SigstoreSigning:
    """How to sign keylessly: where the OIDC identity token comes from (given,
    a file, the CI environment, or ``oauth`` in a browser) and which instance
    (production, ``staging``, or a private one's ``trust_config`` file)."""

    identity_token: str | None = None
    identity_token_file: Path | None = None
    oauth: bool = False
    staging: bool = False
    trust_config: Path | None = None


def build_manifest(
    tree: ModelTree,
    hash_type: str,
    *,
    progress: Progress | None = None,
    workers: int | None = None,
    shard_size: int | None = None,
) -> Manifest:
    """Hash every file of ``tree`` into a manifest: whole files with their
    archive members, or with ``shard_size`` OMS shards of that many bytes."""
    ignores = tuple(sorted(tree.ignore_paths))
    if shard_size is None:
        serialization = Serialization(hash_type=hash_type, ignore_paths=ignores)
    else:
        serialization = Serialization.sharded(shard_size, hash_type=hash_type, ignore_paths=ignores)
        for f in tree.files:  # the colon rule, before any byte is read
            check_shard_path(f.name)
        shards = sum(max(1, -(-f.size // shard_size)) for f in tree.files)
        if shards > MAX_SHARDS:
            raise UsageError(
                f"--shard-size {shard_size} cuts {tree.root} into {shards} shards, more than "
                f"{MAX_SHARDS}: choose a larger shard size"
            )
    digests = hash_files(
        tree.files,
        hash_type,
        display=lambda f: display_name(tree, f),
        members=True,
        workers=workers,
        progress=progress,
        shard_size=shard_size,
    )
    return Manifest.from_digests(tree.name, digests, serialization)


def sign(
    model: str | os.PathLike[str],
    key: PrivateKey | str | os.PathLike[str] | None = None,
    *,
    signature: str | os.PathLike[str] | None = None,
    hash_type: str = "sha256",
    ignore_paths: Iterable[str] = (),
    passphrase: bytes | None = None,
    progress: Progress | None = None,
    workers: int | None = None,
    certificate: str | os.PathLike[str] | None = None,
    certificate_chain: Iterable[str | os.PathLike[str]] = (),
    sigstore: SigstoreSigning | None = None,
    shard_size: int | None = None,
) -> SignedModel:
    """Sign the directory or single file ``model``.

    One method: ``key`` alone (key method); ``key`` with its leaf
    ``certificate`` and the ``certificate_chain`` files (certificate method);
    or ``sigstore`` (keyless). The statement is the same for all three. With
    ``shard_size``, files are hashed as OMS shards of that many bytes (method
    ``shards``; each file's shards are hashed in parallel). The
    OMS v1.0 bundle goes to ``signature`` (default
    :func:`default_signature_path`) through a temporary file and
    ``os.replace``. Raises :class:`~modelsign.errors.UnsafeArchiveError` or
    :class:`~modelsign.errors.UnsafeModelError` for content modelsign refuses
    to vouch for, and :class:`~modelsign.errors.UsageError` for bad arguments.
    """
    model_path = Path(model)
    method = _method(key, certificate, sigstore)
    if shard_size is not None and (
        type(shard_size) is not int or not 0 < shard_size <= MAX_SHARD_SIZE
    ):
        raise UsageError(
            f"the shard size must be a number of bytes from 1 to {MAX_SHARD_SIZE}, "
            f"not {shard_size!r}"
        )
    # Everything that can fail on the caller's input fails before hashing.
    private = None
    if key is not None:
        private = key if isinstance(key, PrivateKey) else load_private_key(key, passphrase)
    chain = _certificate_chain(private, certificate, certificate_chain) if certificate else ()
    keyless = _keyless(sigstore) if sigstore is not None else None
    sig_path = Path(signature) if signature is not None else default_signature_path(model_path)
    user_ignores = tuple(ignore_paths)
    if model_path.is_dir():
        ignores = tuple(dict.fromkeys((*user_ignores, *DEFAULT_IGNORES)))
    elif user_ignores:
        raise UsageError(f"{model_path}: --ignore-path applies to a directory model only")
    else:
        ignores = ()
    tree = enumerate_model(model_path, ignore_paths=ignores, signature=sig_path)
    _refuse_stale_temporaries(tree, sig_path)
    manifest = build_manifest(
        tree, hash_type, progress=progress, workers=workers, shard_size=shard_size
    )
    payload = manifest.to_payload()
    if keyless is not None:
        from modelsign._backends import sigstore as backend  # noqa: PLC0415

        token, config = keyless
        write_atomic(sig_path, backend.sign_dsse(payload, token, config))
        return SignedModel(sig_path, manifest, "sigstore", identity=_token_identity(token))
    assert private is not None
    public = private.public_key()
    material: KeyMaterial | CertificateMaterial = (
        CertificateMaterial(chain) if chain else KeyMaterial(hint=public.key_id)
    )
    bundle = Bundle(
        material,
        Envelope(payload, PAYLOAD_TYPE, private.sign(pae(PAYLOAD_TYPE, payload)), keyid=""),
    )
    write_atomic(sig_path, bundle.to_bytes())
    return SignedModel(sig_path, manifest, method, public.key_id, public.algorithm)


def _refuse_stale_temporaries(tree: ModelTree, signature: Path) -> None:
    """A signing killed at the wrong moment may leave ``.model.sig.*.tmp``
    beside the bundle. Inside the model it would be signed as a model file:
    refuse, and say what it is, rather than sign it or silently skip it."""
    prefix = temporary_name_prefix(signature)
    for f in tree.files:
        name = f.name.rpartition("/")[2]  # cheap string tests first: models have many files
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        if f.path.parent == signature.parent and f.path.name == name:
            raise UnsafeModelError(
                f"{f.path}: a temporary file left by an interrupted signing; "
                "remove it and sign again"
            )


def _method(key: object, certificate: object, sigstore: object) -> str:
    if sigstore is not None:
        if key is not None or certificate is not None:
            raise UsageError("--sigstore signs keylessly: do not give --key or --certificate")
        return "sigstore"
    if key is None:
        raise UsageError("give --key (with --certificate for the certificate method) or --sigstore")
    return "certificate" if certificate is not None else "key"


def _certificate_chain(
    private: PrivateKey | None,
    certificate: str | os.PathLike[str],
    chain: Iterable[str | os.PathLike[str]],
) -> tuple[bytes, ...]:
    """DER certificates, leaf first; the leaf must hold ``private``'s public key."""
    from modelsign._backends.certificate import der, load_pem_all  # noqa: PLC0415

    certs = []
    for path in (certificate, *chain):
        data = read_small(Path(path), MAX_CERT_BYTES, "certificate", UsageError)
        try:
            certs.extend(load_pem_all(data))
        except ValueError as e:
            raise UsageError(f"{path}: not PEM certificates: {e}") from e
    assert private is not None
    leaf_key = PublicKey(certs[0].public_key(), str(certificate))
    if leaf_key != private.public_key():
        raise UsageError(
            f"{certificate}: the certificate is not for the signing key {private.source}"
        )
    return tuple(der(c) for c in certs)


def _keyless(options: SigstoreSigning) -> tuple[Any, Any]:
    from modelsign._backends import sigstore as backend  # noqa: PLC0415

    config = backend.trust_config(options.trust_config, options.staging)
    token = backend.identity_token(
        options.identity_token, options.identity_token_file, options.oauth, config
    )
    return token, config


def _token_identity(token: Any) -> str | None:
    identity = getattr(token, "identity", None)
    return identity if isinstance(identity, str) else None
