"""Stage 4: sign a model and write its OMS v1.0 bundle atomically.

A signer says how to sign; :func:`sign` hashes the model, builds the statement
and writes the bundle::

    modelsign.sign("models/bert", KeySigner.from_file("release.key", passphrase=b"..."))
    modelsign.sign("models/bert", CertificateSigner.from_files("leaf.key", "leaf.pem"))
    modelsign.sign("models/bert", SigstoreSigner())        # ambient OIDC token (CI)
    modelsign.sign("models/bert", "release.key")           # an unencrypted key file
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, TypeAlias

from modelsign._atomic import temporary_name_prefix, write_atomic
from modelsign._enumerating import DEFAULT_IGNORES, ModelFile, ModelTree, enumerate_model
from modelsign._files import read_small
from modelsign._hashing import Progress, hash_files
from modelsign.bundle import PAYLOAD_TYPE, Bundle, CertificateMaterial, Envelope, KeyMaterial, pae
from modelsign.errors import Error, OverwriteError, UnsafeModelError, UsageError
from modelsign.keys import PrivateKey, PublicKey, load_private_key
from modelsign.manifest import HashType, Manifest, Release, Serialization, check_shard_path

__all__ = [
    "CertificateSigner",
    "KeySigner",
    "Method",
    "Progress",
    "SignedBy",
    "SignedModel",
    "Signer",
    "SigstoreSigner",
    "as_signer",
    "default_signature_path",
    "sign",
    "sign_payload",
]

#: How a bundle is signed: OMS's key, certificate and Sigstore methods.
Method: TypeAlias = Literal["key", "certificate", "sigstore"]

MAX_CERT_BYTES = 1024 * 1024
#: Signing refuses a shard size that would cut the model into more shards
#: (a bundle of a million resources is about 150 MB of JSON).
MAX_SHARDS = 1_000_000
#: The largest shard size signed (2**63 - 1: far above any file, and within
#: what every JSON reader, modelsign's strict one included, reads as an integer).
MAX_SHARD_SIZE = 2**63 - 1


def files_phrase(count: int) -> str:
    return "1 file" if count == 1 else f"{count} files"


def default_signature_path(model: Path) -> Path:
    """Where a model's bundle is by default.

    Args:
        model: a model folder or single file.

    Returns:
        ``MODEL/model.sig`` for a directory, ``MODEL.sig`` beside a single file.

    Raises:
        OSError: never for a missing path (a missing ``model`` is taken as a file).
    """
    if model.is_dir():
        return model / "model.sig"
    return model.with_name(model.name + ".sig")


def display_name(tree: ModelTree, file: ModelFile) -> str:
    """How a file is named in messages: its path as the user would type it."""
    return str(tree.root) if tree.single_file else str(tree.root / file.name)


@dataclass(frozen=True)
class SignedBy:
    """Who signed a bundle: the key, certificate or Sigstore identity, as
    signing used it or verification established it."""

    method: Method
    key_id: str | None = None
    algorithm: str | None = None
    identity: str | None = None
    issuer: str | None = None
    trust_root: str | None = None
    #: Certificate method: when the chain was validated, and on whose word
    #: (an RFC 3161 timestamp by a trusted TSA, or the verifier's clock).
    valid_at: str | None = None
    time_source: str | None = None
    #: ``valid_at`` to the microsecond (not in :meth:`to_json`): the time the
    #: signature is known to have been made by, for validity and revocation.
    signed_at: datetime.datetime | None = field(default=None, compare=False, repr=False)

    def describe(self) -> str:
        """One line of prose."""
        if self.method == "key":
            return f"key {self.key_id} ({self.algorithm})"
        if self.method == "certificate":
            when = f", valid at {self.valid_at} ({self.time_source})" if self.valid_at else ""
            return (
                f"certificate for {self.identity!r} ({self.algorithm}), CA {self.trust_root}{when}"
            )
        issuer = f" (issuer {self.issuer})" if self.issuer else ""
        root = f", root {self.trust_root}" if self.trust_root else ""
        return f"Sigstore identity {self.identity!r}{issuer}{root}"

    def to_json(self) -> dict[str, object]:
        return {k: v for k, v in vars(self).items() if v is not None and k != "signed_at"}


@dataclass(frozen=True, repr=False)
class SignedModel:
    """What :func:`sign` wrote."""

    signature: Path
    manifest: Manifest
    signed_by: SignedBy

    def __repr__(self) -> str:
        files = files_phrase(len(self.manifest.file_fingerprints()))
        return (
            f"SignedModel({str(self.signature)!r}, {self.signed_by.describe()}, "
            f"{files}, root {self.manifest.root_digest})"
        )

    def to_json(self) -> dict[str, object]:
        return {
            "signature": str(self.signature),
            "model_name": self.manifest.model_name,
            "root_digest": self.manifest.root_digest,
            "hash_type": self.manifest.serialization.hash_type,
            "serialization": self.manifest.serialization.method,
            "shard_size": self.manifest.serialization.shard_size,
            "files": len(self.manifest.file_fingerprints()),
            "signed_by": self.signed_by.to_json(),
            "release": None if self.manifest.release is None else self.manifest.release.to_json(),
        }


@dataclass(frozen=True)
class KeySigner:
    """Sign with a private key (the OMS key method: the bundle names the key
    by its id, ``publicKey.hint``)."""

    key: PrivateKey

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], passphrase: bytes | None = None) -> KeySigner:
        """Load a PEM private key, decrypting it with ``passphrase``.

        Args:
            path: the private key file.
            passphrase: its passphrase, when it is encrypted.

        Returns:
            A signer with that key.

        Raises:
            KeyLoadError: unreadable, not a key, wrong or missing passphrase.
        """
        return cls(load_private_key(path, passphrase))


@dataclass(frozen=True)
class CertificateSigner:
    """Sign with a private key and its X.509 certificate chain (the OMS
    certificate method). ``chain`` is DER, leaf first; the leaf must hold the
    key's public key."""

    key: PrivateKey
    chain: tuple[bytes, ...]

    def __post_init__(self) -> None:
        from modelsign._backends.certificate import CertificateError, load_der  # noqa: PLC0415

        if not self.chain:
            raise UsageError("a certificate signer needs a certificate chain (leaf first)")
        try:
            leaf = load_der(self.chain[0])
        except CertificateError as e:
            raise UsageError(f"the leaf certificate: {e}") from e
        if PublicKey(leaf.public_key(), "leaf certificate") != self.key.public_key():
            raise UsageError(f"the certificate is not for the signing key {self.key.source}")

    @classmethod
    def from_files(
        cls,
        key: PrivateKey | str | os.PathLike[str],
        certificate: str | os.PathLike[str],
        chain: Iterable[str | os.PathLike[str]] = (),
        *,
        passphrase: bytes | None = None,
    ) -> CertificateSigner:
        """A certificate signer from files.

        Args:
            key: the private key, loaded or as a file.
            certificate: the PEM leaf certificate (for ``key``).
            chain: PEM intermediate certificates, leaf's issuer first.
            passphrase: the key file's passphrase, when it is encrypted.

        Returns:
            The signer, its chain in DER, leaf first.

        Raises:
            KeyLoadError: the key cannot be loaded.
            UsageError: a certificate file is unreadable or not PEM, or the
                leaf is not for the key.
        """
        from modelsign._backends.certificate import der, load_pem_all  # noqa: PLC0415

        private = key if isinstance(key, PrivateKey) else load_private_key(key, passphrase)
        certs = []
        for path in (certificate, *chain):
            data = read_small(Path(path), MAX_CERT_BYTES, "certificate", UsageError)
            try:
                certs.extend(load_pem_all(data))
            except ValueError as e:
                raise UsageError(f"{path}: not PEM certificates: {e}") from e
        return cls(private, tuple(der(c) for c in certs))


#: A Sigstore instance whose public-good services sign.
Instance: TypeAlias = Literal["production", "staging"]


@dataclass(frozen=True)
class SigstoreSigner:
    """Sign keylessly with Sigstore: an OIDC identity token (given, read from
    ``identity_token_file``, detected in CI, or, with ``oauth``, from a
    browser) buys a short-lived Fulcio certificate; the signature is logged
    in Rekor. ``instance`` picks the public instance, ``trust_config`` a
    private one (a ``ClientTrustConfig`` JSON file)."""

    identity_token: str | None = None
    identity_token_file: Path | None = None
    oauth: bool = False
    instance: Instance = "production"
    trust_config: Path | None = None

    def __post_init__(self) -> None:
        if self.instance not in ("production", "staging"):
            raise UsageError(f"Sigstore instance {self.instance!r}: use production or staging")


#: What :func:`sign` takes: a signer, or a private key (loaded, or an
#: unencrypted key file) as a shorthand for a :class:`KeySigner`.
Signer: TypeAlias = KeySigner | CertificateSigner | SigstoreSigner


def build_manifest(
    tree: ModelTree,
    hash_type: HashType,
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
                f"{{param}}{shard_size} cuts {tree.root} into {shards} shards, more than "
                f"{MAX_SHARDS}: choose a larger shard size",
                parameter="shard_size",
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
    signer: Signer | PrivateKey | str | os.PathLike[str],
    *,
    signature: str | os.PathLike[str] | None = None,
    hash_type: HashType = "sha256",
    shard_size: int | None = None,
    ignore_paths: Iterable[str] = (),
    force: bool = False,
    progress: Progress | None = None,
    workers: int | None = None,
    model_name: str | None = None,
    model_version: str | None = None,
) -> SignedModel:
    """Sign the directory or single file ``model``.

    Args:
        model: a model folder, or a single file.
        signer: a :class:`KeySigner`, :class:`CertificateSigner` or
            :class:`SigstoreSigner`; a :class:`~modelsign.keys.PrivateKey`
            or the path of an unencrypted key file stands for a key signer.
        signature: where to write the bundle (default
            :func:`default_signature_path`), through a temporary file and
            ``os.replace``.
        hash_type: ``sha256``, ``blake2b`` or ``blake3`` (``modelsign[blake3]``).
        shard_size: hash files as OMS shards of this many bytes (method
            ``shards``: each shard on its own thread).
        ignore_paths: paths relative to a model folder to leave out (exact; a
            folder leaves out its subtree); recorded in the bundle with the
            default exclusions.
        force: replace a bundle by another signer (or one that cannot be
            read); without it that is refused, naming whose signature it holds.
        progress: told about files and bytes as they are hashed.
        workers: hashing threads (default: one per core).
        model_name: which model this is (``acme/bert``), signed in the
            statement (subject ``annotations.release``), so that a policy can
            pin it to a path (a signed bundle of another model is refused).
        model_version: its version (dot-separated numbers: ``1.2.0``), signed
            with the name, for a policy's rollback state; needs ``model_name``.

    Returns:
        What was written: the bundle's path, the signed manifest, the signer.

    Raises:
        UsageError: bad arguments (``parameter`` names which), an unreadable
            key, an identity token that cannot be had; ``OverwriteError`` for a
            bundle by another signer, without ``force``.
        UnsafeModelError: a symlink, special file, bad name or empty model.
        UnsafeArchiveError: an ambiguous archive modelsign will not vouch for.
    """
    model_path = Path(model)
    signer = as_signer(signer)
    release = _release(model_name, model_version)
    if shard_size is not None and (
        type(shard_size) is not int or not 0 < shard_size <= MAX_SHARD_SIZE
    ):
        raise UsageError(
            f"{{param}}{shard_size!r}: the shard size must be a number of bytes from 1 to "
            f"{MAX_SHARD_SIZE}",
            parameter="shard_size",
        )
    # Everything that can fail on the caller's input fails before hashing.
    keyless = keyless_session(signer) if isinstance(signer, SigstoreSigner) else None
    sig_path = Path(signature) if signature is not None else default_signature_path(model_path)
    if not force and os.path.lexists(sig_path):
        refuse_replacing(sig_path, describe_signer(signer, keyless))
    user_ignores = tuple(ignore_paths)
    if model_path.is_dir():
        ignores = tuple(dict.fromkeys((*user_ignores, *DEFAULT_IGNORES)))
    elif user_ignores:
        raise UsageError(
            f"{model_path}: {{param}} applies to a model folder only", parameter="ignore_paths"
        )
    else:
        ignores = ()
    tree = enumerate_model(model_path, ignore_paths=ignores, signature=sig_path)
    _refuse_stale_temporaries(tree, sig_path)
    manifest = build_manifest(
        tree, hash_type, progress=progress, workers=workers, shard_size=shard_size
    )
    if release is not None:
        manifest = replace(manifest, release=release)
    data, signed_by = sign_payload(manifest.to_payload(), signer, keyless)
    write_atomic(sig_path, data)
    return SignedModel(sig_path, manifest, signed_by)


def _release(name: str | None, version: str | None) -> Release | None:
    if name is None:
        if version is not None:
            raise UsageError(
                "{param}a version needs a model name (rollback state is kept per name)",
                parameter="model_name",
            )
        return None
    return Release(name, version)


def sign_payload(
    payload: bytes, signer: Signer, keyless: tuple[Any, Any] | None = None
) -> tuple[bytes, SignedBy]:
    """Sign an in-toto statement's bytes: the Sigstore bundle that holds them
    in a DSSE envelope (payload type ``application/vnd.in-toto+json``), for
    every method. ``keyless`` is :func:`keyless_session` of a Sigstore
    signer (taken before any hashing, so that a missing token fails first).

    Args:
        payload: the statement's bytes, exactly as they are to be signed.
        signer: a :class:`KeySigner`, :class:`CertificateSigner` or
            :class:`SigstoreSigner`.
        keyless: the Sigstore token and configuration, for a Sigstore signer.

    Returns:
        The bundle's bytes, and who signed.

    Raises:
        UsageError: Sigstore signing failed.
    """
    if isinstance(signer, SigstoreSigner):
        from modelsign._backends import sigstore as backend  # noqa: PLC0415

        token, config = keyless if keyless is not None else keyless_session(signer)
        data = backend.sign_dsse(payload, token, config)
        return data, SignedBy("sigstore", identity=_token_identity(token))
    private = signer.key
    public = private.public_key()
    material: KeyMaterial | CertificateMaterial = (
        CertificateMaterial(signer.chain)
        if isinstance(signer, CertificateSigner)
        else KeyMaterial(hint=public.key_id)
    )
    bundle = Bundle(
        material,
        Envelope(payload, PAYLOAD_TYPE, private.sign(pae(PAYLOAD_TYPE, payload)), keyid=""),
    )
    method: Method = "certificate" if isinstance(signer, CertificateSigner) else "key"
    identity = None
    if isinstance(signer, CertificateSigner):
        from modelsign._backends import certificate as x509  # noqa: PLC0415

        identity = x509.identity_of(x509.load_der(signer.chain[0])).primary
    return bundle.to_bytes(), SignedBy(
        method, key_id=public.key_id, algorithm=public.algorithm, identity=identity
    )


def describe_signer(signer: Signer, keyless: tuple[Any, Any] | None) -> str:
    """Who ``signer`` is, as a bundle's claims say it: a key id or an identity."""
    if isinstance(signer, KeySigner):
        return f"key {signer.key.public_key().key_id}"
    if isinstance(signer, CertificateSigner):
        from modelsign._backends import certificate as x509  # noqa: PLC0415

        return f"certificate for {x509.identity_of(x509.load_der(signer.chain[0])).primary!r}"
    assert keyless is not None
    return f"Sigstore identity {_token_identity(keyless[0])!r}"


def refuse_replacing(signature: Path, ours: str) -> None:
    """Replacing a bundle by another signer loses their signature: refuse
    unless asked (``force``), saying whose it is. Re-signing by the same
    signer replaces it. Only the bundle's signer is read (its statement may
    be a model's manifest or its provenance)."""
    from modelsign._inspecting import claimed_signer  # noqa: PLC0415
    from modelsign.verifying import read_bundle  # noqa: PLC0415

    try:
        claimed = claimed_signer(read_bundle(signature), str(signature))
    except Error as e:
        theirs = f"a bundle that cannot be read ({e})"
    else:
        if claimed.method == "key":
            theirs = f"key {claimed.key_id}"
        elif claimed.method == "certificate":
            theirs = f"certificate for {claimed.identity!r}"
        else:
            theirs = f"Sigstore identity {claimed.identity!r}"
    if theirs != ours:
        raise OverwriteError(
            f"{signature}: already holds a signature by {theirs}; signing as {ours} would "
            "replace it: to replace it, sign with force=True (on the command line, --force), "
            "or write the new bundle elsewhere (signature=, --signature)",
            parameter="force",
        )


def as_signer(signer: object) -> Signer:
    """A signer from what :func:`sign` accepts as one (see its ``signer``)."""
    if isinstance(signer, (KeySigner, CertificateSigner, SigstoreSigner)):
        return signer
    if isinstance(signer, PrivateKey):
        return KeySigner(signer)
    if isinstance(signer, (str, os.PathLike)):
        return KeySigner.from_file(signer)
    raise UsageError(
        "{param} takes a KeySigner, CertificateSigner or SigstoreSigner, a PrivateKey or a key "
        f"file's path, not a {type(signer).__name__}",
        parameter="signer",
    )


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


def keyless_session(options: SigstoreSigner) -> tuple[Any, Any]:
    """The Sigstore identity token and signing configuration of ``options``."""
    from modelsign._backends import sigstore as backend  # noqa: PLC0415

    config = backend.trust_config(options.trust_config, options.instance == "staging")
    token = backend.identity_token(
        options.identity_token, options.identity_token_file, options.oauth, config
    )
    return token, config


def _token_identity(token: Any) -> str | None:
    identity = getattr(token, "identity", None)
    return identity if isinstance(identity, str) else None
