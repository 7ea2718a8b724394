"""Stage 5: verify a model against its bundle and the caller's trust policy.

The core, :func:`check_bundle` and :func:`compare`, does no I/O: it takes a
parsed bundle, trusted keys and digests, and raises. :func:`verify` is the edge
that reads the signature, walks and hashes the files, and calls the core.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from modelsign import _json
from modelsign._digests import Fingerprint
from modelsign._enumerating import PROVENANCE_FILE, SINGLE_FILE_NAME, ModelTree, enumerate_model
from modelsign._files import read_small
from modelsign._hashing import (
    MemberDigest,
    Progress,
    hash_file,
    hash_files,
)
from modelsign._signingtime import CLOCK_SKEW, signature_time
from modelsign.bundle import (
    Bundle,
    CertificateMaterial,
    KeyMaterial,
    SigstoreMaterial,
    pae,
    pae_legacy,
)
from modelsign.errors import (
    BundleTooLargeError,
    Error,
    InvalidSignatureError,
    MalformedBundleError,
    Mismatch,
    MissingSignatureError,
    ModelMismatchError,
    UntrustedSignerError,
    UsageError,
    VerificationError,
)
from modelsign.keys import PublicKey
from modelsign.manifest import Manifest
from modelsign.policy import Anchor, CertificateAuthority, Policy, SigstoreIdentity
from modelsign.signing import SignedBy, default_signature_path, display_name, files_phrase

if TYPE_CHECKING:
    from modelsign._threshold import TrustReport
    from modelsign.manifest import Release
    from modelsign.provenance import Provenance

__all__ = ["VerifiedModel", "check_bundle", "check_signature", "read_bundle", "verify"]


@dataclass(frozen=True, repr=False)
class VerifiedModel:
    """What a successful verification established."""

    model: Path
    signature: Path
    signed_by: SignedBy
    manifest: Manifest
    #: Which bundles (the primary and its co-signatures) counted, for whom,
    #: which did not and why, and the threshold rules that applied.
    signatures: TrustReport | None = field(default=None, compare=False)
    #: The model's signed provenance, when the policy requires it (checked).
    provenance: Provenance | None = None

    @property
    def release(self) -> Release | None:
        """The signed model name and version, when the signer recorded them."""
        return self.manifest.release

    @property
    def model_name(self) -> str:
        """The statement's subject name (informational: OMS verifiers do not rely on it)."""
        return self.manifest.model_name

    @property
    def root_digest(self) -> str:
        """SHA-256 over the files' digests in order: what the bundle signs."""
        return self.manifest.root_digest

    @property
    def files(self) -> tuple[str, ...]:
        """The signed file names, sorted."""
        return tuple(sorted(self.manifest.file_fingerprints()))

    def __repr__(self) -> str:
        return (
            f"VerifiedModel({str(self.model)!r}, {self.signed_by.describe()}, "
            f"{files_phrase(len(self.files))}, root {self.root_digest})"
        )

    def to_json(self) -> dict[str, object]:
        ser = self.manifest.serialization
        return {
            "verified": True,
            "model": str(self.model),
            "signature": str(self.signature),
            "model_name": self.model_name,
            "root_digest": self.root_digest,
            "hash_type": ser.hash_type,
            "serialization": ser.method,
            "shard_size": ser.shard_size,
            "signed_by": self.signed_by.to_json(),
            "files": list(self.files),
            "release": None if self.release is None else self.release.to_json(),
            "signatures": None if self.signatures is None else self.signatures.to_json(),
            **({} if self.provenance is None else {"provenance": self.provenance.to_json()}),
        }


def check_bundle(
    bundle: Bundle,
    policy: Policy,
    *,
    source: str = "bundle",
    now: datetime.datetime | None = None,
) -> tuple[Manifest, SignedBy]:
    """Verify the bundle's signature against the policy; return the statement.

    The trust material (keys, CAs, Sigstore identities and roots) comes only
    from ``policy``; the bundle only says which of it to use. ``now`` is the
    time at which certificates must be valid (default: the current time),
    except for a certificate-method bundle with RFC 3161 timestamps checked
    against a TSA its policy entry trusts (see :func:`_check_certificate`).
    The model's files are not read: see :func:`verify` for that.

    Args:
        bundle: a parsed bundle (:func:`read_bundle`).
        policy: the trust anchors.
        source: how to name the bundle in messages.
        now: the time certificates must be valid at (default: now).

    Returns:
        The signed manifest, and who signed it.

    Raises:
        UntrustedSignerError: no anchor of the policy vouches for the signer.
        InvalidSignatureError: the signature does not verify.
        MalformedBundleError: the signed statement is not an OMS v1.0 one.
    """
    payload, signer = check_signature(bundle, policy, source=source, now=now)
    try:
        manifest = Manifest.from_payload(payload)
    except MalformedBundleError as e:
        raise MalformedBundleError(f"{source}: {e}") from e
    return manifest, signer


def check_signature(
    bundle: Bundle,
    policy: Policy,
    *,
    source: str = "bundle",
    now: datetime.datetime | None = None,
) -> tuple[bytes, SignedBy]:
    """Verify the bundle's DSSE signature against the policy, whatever
    statement it signs (a model's manifest, its provenance); the statement is
    not parsed. Trust and ``now`` as in :func:`check_bundle`.

    Args:
        bundle: a parsed bundle (:func:`read_bundle`).
        policy: the trust anchors.
        source: how to name the bundle in messages.
        now: the time certificates must be valid at (default: now).

    Returns:
        The signed payload (the statement's bytes), and who signed it.

    Raises:
        UntrustedSignerError: no anchor of the policy vouches for the signer.
        InvalidSignatureError: the signature does not verify.
        MalformedBundleError: Sigstore verified another payload.
    """
    material = bundle.material
    if isinstance(material, KeyMaterial):
        signer = _check_key(bundle, material, policy.keys, source)
    elif isinstance(material, CertificateMaterial):
        when = now or datetime.datetime.now(datetime.timezone.utc)
        signer = _check_certificate(bundle, material, policy.certificates, source, when)
    else:
        payload, signer = _check_sigstore(bundle, material, policy.sigstore, source)
        if payload != bundle.envelope.payload:
            raise MalformedBundleError(f"{source}: Sigstore verified another payload")
    return bundle.envelope.payload, signer


def _check_key(
    bundle: Bundle, material: KeyMaterial, trusted: Sequence[PublicKey], source: str
) -> SignedBy:
    ids = ", ".join(k.key_id for k in trusted) or "none"
    if material.hint is not None:
        claimed = material.hint
        candidates = [k for k in trusted if k.key_id == material.hint]
    else:
        assert material.raw_bytes is not None
        try:
            embedded = PublicKey.from_pem(material.raw_bytes, f"{source}: publicKey.rawBytes")
        except Exception as e:  # any failure means "not a key we know"
            raise MalformedBundleError(f"{source}: publicKey.rawBytes is not a PEM key") from e
        claimed = embedded.key_id
        candidates = [k for k in trusted if k == embedded]
    if not candidates:
        raise UntrustedSignerError(
            f"{source}: signed by key {claimed!r}, which is not trusted (trusted key ids: {ids})"
        )
    key = candidates[0]
    envelope = bundle.envelope
    ok = key.verify(envelope.signature, pae(envelope.payload_type, envelope.payload))
    if not ok and material.hint is None and key.algorithm.startswith("ecdsa"):
        # model_signing before 1.0 signed a malformed PAE; only its bundles
        # (embedded key, no hint) and only ECDSA keys are checked this way.
        ok = key.verify(envelope.signature, pae_legacy(envelope.payload))
    if not ok:
        raise InvalidSignatureError(f"{source}: invalid signature for key {key.key_id}")
    return SignedBy("key", key_id=key.key_id, algorithm=key.algorithm)


def _check_certificate(
    bundle: Bundle,
    material: CertificateMaterial,
    trusted: Sequence[CertificateAuthority],
    source: str,
    now: datetime.datetime,
) -> SignedBy:
    """The leaf must name a trusted entry's identity and chain to its CA at
    the time the entry establishes:

    * no ``tsa`` in the entry: ``now``; timestamps in the bundle are ignored;
    * ``tsa`` and no timestamp in the bundle: ``now``;
    * ``tsa`` and timestamps: every timestamp must verify (imprint over the
      DSSE signature bytes, signer chaining to the TSA roots at its genTime
      with the timeStamping usage, CMS signature), or the entry refuses the
      bundle with that error; the chain is then validated at the earliest
      genTime (the signature is known to have existed by then).

    The DSSE signature is verified with the leaf's key in every case.
    """
    from modelsign._backends import certificate as x509  # noqa: PLC0415

    try:
        chain = [x509.load_der(c) for c in material.chain]
        leaf, intermediates = chain[0], chain[1:]
        who = x509.identity_of(leaf)
    except x509.CertificateError as e:
        raise MalformedBundleError(f"{source}: certificate chain: {e}") from e
    if not trusted:
        raise UntrustedSignerError(
            f"{source}: signed with a certificate for {who.primary!r}, but no CA is trusted"
        )
    reasons = []
    failure: VerificationError | None = None
    for t in trusted:
        if t.identity not in who.names:
            reasons.append(f"CA {t.ca}: leaf names {list(who.names)}, not {t.identity!r}")
            continue
        try:
            at, time_source = _certificate_time(bundle, material, t, source, now)
        except VerificationError as e:  # a timestamp failed: reported if no entry accepts
            failure = failure or e
            continue
        try:
            x509.verify_chain(leaf, intermediates, t.roots, at)
        except x509.ChainError as e:
            reasons.append(
                f"CA {t.ca}: the chain does not verify at {at:%Y-%m-%dT%H:%M:%SZ} "
                f"({time_source}): {e}"
            )
            continue
        try:
            key = PublicKey(leaf.public_key(), f"{source}: leaf certificate")
            algorithm = key.algorithm
        except Exception as e:  # KeyLoadError, UnsupportedAlgorithm, ...
            raise UntrustedSignerError(f"{source}: unsupported leaf key: {e}") from e
        envelope = bundle.envelope
        if not key.verify(envelope.signature, pae(envelope.payload_type, envelope.payload)):
            raise InvalidSignatureError(
                f"{source}: invalid signature for the certificate of {t.identity!r}"
            )
        return SignedBy(
            "certificate",
            algorithm=algorithm,
            identity=t.identity,
            trust_root=str(t.ca),
            valid_at=f"{at:%Y-%m-%dT%H:%M:%SZ}",
            time_source=time_source,
            signed_at=at,
        )
    if failure is not None:
        raise failure
    raise UntrustedSignerError(f"{source}: no trusted CA vouches for it: " + "; ".join(reasons))


def _certificate_time(
    bundle: Bundle,
    material: CertificateMaterial,
    trust: CertificateAuthority,
    source: str,
    now: datetime.datetime,
) -> tuple[datetime.datetime, str]:
    """When the leaf must be valid for ``trust``, and why (see _check_certificate)."""
    at, why = signature_time(
        bundle, material.timestamps, trust.tsa, trust.tsa_roots, trust.tsa_others, source, now
    )
    if at > now + CLOCK_SKEW:  # only a timestamp can be: "now" is not ahead of itself
        raise UntrustedSignerError(
            f"{source}: the timestamp by TSA {trust.tsa} says {at:%Y-%m-%dT%H:%M:%SZ}, "
            f"later than now ({now:%Y-%m-%dT%H:%M:%SZ}): a timestamp from the future "
            "is not evidence of when the signature existed"
        )
    return at, why


def _check_sigstore(
    bundle: Bundle, material: SigstoreMaterial, trusted: Sequence[SigstoreIdentity], source: str
) -> tuple[bytes, SignedBy]:
    from modelsign._backends import certificate as x509  # noqa: PLC0415

    try:
        leaf = x509.load_der(material.certificate)
        who = x509.identity_of(leaf)
    except x509.CertificateError as e:
        raise MalformedBundleError(f"{source}: the Fulcio certificate: {e}") from e
    claimed = f"{who.primary!r} (issuer {who.issuer})"
    matching = [t for t in trusted if t.identity in who.names and t.issuer == who.issuer]
    if not matching:
        wanted = "; ".join(t.describe() for t in trusted) or "none"
        raise UntrustedSignerError(
            f"{source}: signed by Sigstore identity {claimed}, which is not trusted "
            f"(trusted: {wanted})"
        )
    from modelsign._backends import sigstore  # noqa: PLC0415 - only for Sigstore bundles

    failure: VerificationError | None = None
    for t in matching:
        root = sigstore.root_path(t.instance, t.trust_root)
        try:
            payload, at, time_source = sigstore.verify_dsse(
                bundle.raw, bundle.envelope, leaf.public_key(), t.identity, t.issuer, root, source
            )
        except (UntrustedSignerError, InvalidSignatureError) as e:
            failure = failure or e
            continue
        return payload, SignedBy(
            "sigstore",
            identity=t.identity,
            issuer=t.issuer,
            trust_root=str(root),
            valid_at=f"{at:%Y-%m-%dT%H:%M:%SZ}",
            time_source=time_source,
            signed_at=at,
        )
    assert failure is not None
    raise failure


def compare(
    manifest: Manifest,
    actual: Mapping[str, Fingerprint],
    on_disk: Iterable[str],
    model: str,
    sizes: Mapping[str, int] | None = None,
) -> None:
    """Raise :class:`ModelMismatchError` (or its precise subclass) listing every
    difference between ``manifest`` and the files on disk.

    ``actual`` maps the names that were hashed to their fingerprints;
    ``on_disk`` is every file found, hashed or not; ``sizes`` (shard mode)
    the sizes of files on disk, so that a file whose size differs from the
    signed one is reported as such, hashed or not.
    """
    problems: list[Mismatch] = []
    signed = manifest.file_fingerprints()
    sharded = manifest.serialization.shard_size is not None
    for name, expected in signed.items():
        if actual.get(name) == expected:
            continue
        if sharded:
            problems.extend(_shard_mismatches(name, expected, actual.get(name), sizes or {}))
        elif name not in actual:
            problems.append(Mismatch("missing", name, expected=expected.digest))
        else:
            problems.append(
                Mismatch("digest", name, expected=expected.digest, actual=actual[name].digest)
            )
    problems.extend(Mismatch("extra", name) for name in on_disk if name not in signed)
    if problems:
        problems.sort(key=lambda m: m.name)
        raise ModelMismatchError.for_mismatches(model, tuple(problems))


#: Differing shards listed one by one for a file; the rest are counted.
MAX_SHARD_MISMATCHES = 10


def _shard_mismatches(
    name: str, expected: Fingerprint, actual: Fingerprint | None, sizes: Mapping[str, int]
) -> list[Mismatch]:
    """One file's differences in shard mode: missing, another size, or the
    shards (``path:start:end``) whose digests differ."""
    size = expected.size
    assert expected.shards is not None
    assert size is not None
    if actual is None and name not in sizes:
        return [Mismatch("missing", name, expected_size=size)]
    now = sizes.get(name, (actual.size if actual is not None else None) or 0)
    if now != size:
        return [Mismatch("size", name, expected_size=size, actual_size=now)]
    assert actual is not None
    differ = expected.differing_shards(actual)
    assert differ is not None  # same size, so the same ranges
    listed = [
        Mismatch("digest", name, expected=w.digest, actual=g.digest, shard=(w.start, w.end))
        for w, g in differ[:MAX_SHARD_MISMATCHES]
    ]
    if len(differ) > MAX_SHARD_MISMATCHES:  # a rewritten file: say how much, not every shard
        listed.append(Mismatch("shards", name, shards=len(expected.shards), differing=len(differ)))
    return listed


def read_bundle(path: Path, *, max_bytes: int | None = None) -> Bundle:
    """Read and parse a signature file, refusing anything but a regular file
    within the size limit (checked before reading).

    Args:
        path: the bundle file.
        max_bytes: the size limit (default 64 MiB).

    Returns:
        The parsed bundle; its signature is not checked (:func:`check_bundle`).

    Raises:
        MissingSignatureError: no such file.
        BundleTooLargeError: larger than ``max_bytes``.
        MalformedBundleError: not a regular file, or not a well-formed bundle.
    """
    limit = _json.DEFAULT_MAX_BYTES if max_bytes is None else max_bytes
    data = read_small(
        path,
        limit,
        "signature",
        MalformedBundleError,
        missing=MissingSignatureError,
        too_large=BundleTooLargeError,
    )
    return Bundle.from_bytes(data, source=str(path), max_bytes=limit)


def verify(
    model: str | os.PathLike[str],
    trust: Policy | Anchor | Iterable[Anchor | str | os.PathLike[str]],
    *,
    signature: str | os.PathLike[str] | None = None,
    ignore_paths: Iterable[str] = (),
    hf_cache: bool = False,
    missing_ok: bool = False,
    now: datetime.datetime | None = None,
    progress: Progress | None = None,
    workers: int | None = None,
    max_bundle_bytes: int | None = None,
) -> VerifiedModel:
    """Verify ``model`` (a folder or a single file) against its signature.

    Args:
        model: the model folder or file.
        trust: a :class:`~modelsign.policy.Policy`, or anchors: public keys
            (:class:`~modelsign.keys.PublicKey`, or key file paths),
            :class:`~modelsign.policy.SigstoreIdentity` and
            :class:`~modelsign.policy.CertificateAuthority`. Never the bundle:
            it only says which anchor to use.
        signature: the bundle (default ``MODEL/model.sig`` or ``MODEL.sig``).
        ignore_paths: extra files to excuse at these paths (a signed file is
            never skipped).
        hf_cache: follow a Hugging Face cache snapshot's links into its own
            ``blobs/`` folder.
        missing_ok: tolerate signed files that are absent (a cache snapshot
            holds only the files downloaded); files present must still match
            and no extra file is allowed.
        now: when certificates must be valid (default: the current time),
            unless a TSA the trust names timestamped a certificate bundle.
        progress: told about files and bytes as they are hashed.
        workers: hashing threads (default: one per core).
        max_bundle_bytes: refuse a larger bundle before parsing it.

    Returns:
        Who signed, and the verified manifest.

    Raises:
        VerificationError: the model must not be trusted; the subclass says
            why (``DigestMismatchError`` and its siblings list every
            difference; ``InvalidSignatureError``, ``UntrustedSignerError``,
            ``MalformedBundleError``, ``MissingSignatureError``, ...); with a
            policy whose ``[provenance]`` requires it, a ``ProvenanceError``
            (see :func:`modelsign.provenance.verify_provenance`).
        UsageError: bad arguments: a model path that does not exist,
            ``ConfigError`` for ``trust``.
    """
    policy = Policy.of(trust)
    model_path = Path(model)
    if not os.path.lexists(model_path):
        # A typo, not a rejected model: nothing was judged.
        raise UsageError(f"{model_path}: no such file or folder")
    sig_path = Path(signature) if signature is not None else default_signature_path(model_path)
    from modelsign import _rollback, _threshold  # noqa: PLC0415 - they import this module

    trusted = _threshold.trusted_statement(
        sig_path,
        policy,
        paths=[os.path.abspath(model_path)],
        now=now,
        max_bundle_bytes=max_bundle_bytes,
    )
    manifest, signer = trusted.manifest, trusted.signed_by
    if policy.state is not None:  # refuse a rollback before hashing anything
        _rollback.check(policy.state, manifest.release, manifest.root_digest, str(sig_path))
    verified = VerifiedModel(model_path, sig_path, signer, manifest, trusted.report)
    ser = manifest.serialization
    tree = enumerate_model(
        model_path,
        # The provenance file is never part of the model, even for a bundle
        # signed before it was a default exclusion (docs/adr/0004-provenance.md).
        ignore_paths=(*ser.ignore_paths, *ignore_paths, PROVENANCE_FILE),
        signature=sig_path,
        allow_symlinks=ser.allow_symlinks,
        hf_cache=hf_cache,
    )
    names = _disk_names(tree, manifest)
    signed = manifest.file_fingerprints()
    to_hash = [f for f in tree.files if names[f.name] in signed]
    sizes = None
    if ser.shard_size is not None:
        # A file of another size than the signed one differs: it is reported
        # without being read (and a bundle's tiny shard_size cannot make a
        # large unsigned size cost millions of hashing tasks).
        sizes = {names[f.name]: f.size for f in to_hash}
        to_hash = [f for f in to_hash if f.size == signed[names[f.name]].size]
    digests = hash_files(
        to_hash,
        ser.hash_type,
        display=lambda f: display_name(tree, f),
        workers=workers,
        progress=progress,
        shard_size=ser.shard_size,
    )
    actual = {names[n]: d.fingerprint for n, d in digests.items()}
    try:
        compare(manifest, actual, [names[f.name] for f in tree.files], str(model_path), sizes)
    except ModelMismatchError as e:
        problems = tuple(m for m in e.mismatches if not (missing_ok and m.kind == "missing"))
        if problems:
            error = e if len(problems) == len(e.mismatches) else e.for_mismatches(e.model, problems)
            if ser.shard_size is not None:  # the differing shards already say where
                raise error from None
            raise _with_member_diagnostics(error, manifest, tree, names) from None
        # only signed files that are absent, and missing_ok
    verified = _with_provenance(verified, policy, now)
    if policy.state is not None:  # only now that the model verified
        _rollback.record(policy.state, manifest.release, manifest.root_digest, str(sig_path))
    return verified


def _with_provenance(
    verified: VerifiedModel, policy: Policy, now: datetime.datetime | None
) -> VerifiedModel:
    """A policy that requires provenance ([provenance] require) has it
    checked for every model it verifies."""
    if not policy.provenance.require:
        return verified
    from modelsign.provenance import check_model_provenance  # noqa: PLC0415 - a cycle

    return replace(verified, provenance=check_model_provenance(verified, policy, now=now))


def _with_member_diagnostics(
    error: ModelMismatchError, manifest: Manifest, tree: ModelTree, names: Mapping[str, str]
) -> ModelMismatchError:
    """Name the archive members that changed in each mismatching archive.

    The whole-file digest already decided the outcome; this only re-reads the
    mismatching archives to say where they differ. It never turns a rejection
    into anything else: a failure to read the members is reported as such.
    """
    signed = {r.name: r for r in manifest.resources}
    by_manifest_name = {names[f.name]: f for f in tree.files}
    detailed = []
    for m in error.mismatches:
        resource = signed.get(m.name)
        if m.kind != "digest" or resource is None or not resource.members:
            detailed.append(m)
            continue
        file = by_manifest_name[m.name]
        try:
            now = hash_file(
                file, resource.algorithm, display=display_name(tree, file), members=True
            ).members
        except Error as e:
            detailed.append(replace(m, members=(f"members not compared: {e}",)))
            continue
        detailed.append(replace(m, members=_member_differences(resource.members, now)))
    return ModelMismatchError.for_mismatches(error.model, tuple(detailed))


def _member_differences(
    signed: Sequence[MemberDigest], now: Sequence[MemberDigest]
) -> tuple[str, ...]:
    before = {m.name: m for m in signed}
    after = {m.name: m for m in now}
    lines = []
    for name in sorted(before.keys() | after.keys()):
        old, new = before.get(name), after.get(name)
        if old is None:
            lines.append(f"member {name!r}: added")
        elif new is None:
            lines.append(f"member {name!r}: removed")
        elif old.digest != new.digest:
            lines.append(f"member {name!r}: expected {old.digest}, actual {new.digest}")
    return tuple(lines) or ("no archive member differs: the change is in the archive's structure",)


def _disk_names(tree: ModelTree, manifest: Manifest) -> dict[str, str]:
    """Map each file's name on disk to its name in the manifest. A single-file
    model is ``.`` on disk; a bundle may name it ``.`` (model_signing) or by
    its file name."""
    names = {f.name: f.name for f in tree.files}
    signed = manifest.file_fingerprints()
    if tree.single_file and len(signed) == 1:
        (only,) = signed
        if only in (SINGLE_FILE_NAME, tree.root.name):
            names[SINGLE_FILE_NAME] = only
    return names
