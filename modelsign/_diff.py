"""What changed between two releases of a model: ``modelsign diff``.

Each side is a bundle, a model folder (its ``model.sig``) or a single model
file (its ``FILE.sig``). The diff compares what the two bundles **claim**:
files added, removed and changed (with both digests), the archive members
of each changed file (the bundles carry per-member digests as annotations),
the hash settings, the model name and the signer. No file is read but the
bundles: a diff says what the signers said changed, not whether the files
on disk still match (that is ``verify``).

With a trust policy, each side is verified first (:func:`open_release`): a
model path as ``verify`` does (signature, then every file), a bare bundle by
its signature only. Without one, the claims are compared unverified and are
labelled so.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from modelsign._audit._provenance import provenance_of
from modelsign._audit._records import (
    DependencyRow,
    FileRow,
    ProvenanceSummary,
    SignerRow,
    file_rows,
)
from modelsign._audit._signatures import claimed_signers
from modelsign._enumerating import SINGLE_FILE_NAME, hf_blobs_dir
from modelsign._inspecting import inspect_bundle
from modelsign.errors import UsageError
from modelsign.manifest import Manifest, Resource
from modelsign.policy import Policy
from modelsign.provenance import check_provenance
from modelsign.signing import default_signature_path
from modelsign.verifying import check_bundle, read_bundle, verify

T = TypeVar("T")

__all__ = [
    "Change",
    "FileChange",
    "MemberChange",
    "Release",
    "ReleaseDiff",
    "diff_releases",
    "open_release",
]


@dataclass(frozen=True)
class Release:
    """One side of a diff: its bundle, what it signs and who signed it."""

    given: str
    signature: Path
    #: The model the bundle was found for (``None``: a bundle was given).
    model: Path | None
    manifest: Manifest
    signer: SignerRow
    #: The signature (and, for a model path, every file) verified under the policy.
    verified: bool
    #: Its signed provenance (status ``missing`` when there is none).
    provenance: ProvenanceSummary
    #: What the co-signature bundles (``SIGNATURE.d/``) claim, unverified.
    cosigners: tuple[SignerRow, ...] = ()

    def to_json(self) -> dict[str, Any]:
        ser = self.manifest.serialization
        return {
            "path": self.given,
            "signature": str(self.signature),
            "model": None if self.model is None else str(self.model),
            "verified": self.verified,
            "model_name": self.manifest.model_name,
            "root_digest": self.manifest.root_digest,
            "hash_type": ser.hash_type,
            "serialization": ser.method,
            "shard_size": ser.shard_size,
            "file_count": len(self.manifest.file_fingerprints()),
            "signer": self.signer.to_json(),
            "provenance": self.provenance.to_json(),
            "release": None if self.manifest.release is None else self.manifest.release.to_json(),
            "cosigners": [c.to_json() for c in self.cosigners],
        }


def _locate(path: Path) -> tuple[Path, Path | None]:
    """``(bundle, model)`` for a path as given: a folder is a model (its
    ``model.sig``); a file with ``FILE.sig`` beside it is a single-file model;
    any other file is a bundle."""
    if not os.path.lexists(path):
        raise UsageError(f"{path}: no such file or folder")
    if path.is_dir():
        return default_signature_path(path), path
    beside = default_signature_path(path)
    if beside.is_file():
        return beside, path
    return path, None


def open_release(
    path: str | os.PathLike[str],
    trust: Policy | None = None,
    *,
    now: datetime.datetime | None = None,
) -> Release:
    """Read one side of a diff, verifying it when ``trust`` is given.

    Args:
        path: a bundle, a model folder or a signed single model file.
        trust: verify under this policy first (default: compare claims).
        now: when certificates must be valid (default: now).

    Returns:
        The release.

    Raises:
        UsageError: ``path`` does not exist.
        MalformedBundleError: the bundle is missing or cannot be read
            (``MissingSignatureError``, ``BundleTooLargeError``).
        VerificationError: with ``trust``, the side does not verify.
    """
    given = Path(path)
    signature, model = _locate(given)
    claims = inspect_bundle(signature)
    name = str(model or signature)
    if trust is None:
        signer = SignerRow.from_claims(claims.signer, signature.name)
        # Claims only; a provenance about another root digest is still told apart.
        provenance = provenance_of(signature, name, None, claims.manifest.root_digest)
        cosigners = claimed_signers(None, signature)
        return Release(
            str(given), signature, model, claims.manifest, signer, False, provenance, cosigners
        )
    if model is not None:
        hf = model.is_dir() and hf_blobs_dir(model) is not None
        result = verify(model, trust, signature=signature, hf_cache=hf, now=now)
        manifest, signed_by = result.manifest, result.signed_by
    else:  # the bundle is read again: what is checked is what is compared
        bundle = read_bundle(signature)
        manifest, signed_by = check_bundle(bundle, trust, source=str(signature), now=now)
        if trust.provenance.require:  # as verify does for a model path
            check_provenance(signature, manifest.root_digest, name, trust, now=now)
    signer = SignerRow.from_signed_by(signed_by, claims.signer, signature.name)
    provenance = provenance_of(signature, name, trust, manifest.root_digest)
    cosigners = claimed_signers(None, signature)
    return Release(str(given), signature, model, manifest, signer, True, provenance, cosigners)


@dataclass(frozen=True)
class Change:
    """A property of the release that differs (``model_name``, ``hash_type``,
    ``signer``, ...), with its two values as text."""

    field: str
    old: str
    new: str

    def to_json(self) -> dict[str, Any]:
        return {"field": self.field, "old": self.old, "new": self.new}


@dataclass(frozen=True)
class MemberChange:
    """An archive member added, removed or changed inside a changed file."""

    kind: str  # "added", "removed", "changed"
    name: str
    old: str | None = None
    new: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "old": self.old, "new": self.new}


@dataclass(frozen=True)
class FileChange:
    """A file in both releases, with other contents."""

    name: str
    old: FileRow
    new: FileRow
    members: tuple[MemberChange, ...] = ()
    #: Shard mode, same size: how many shards differ.
    differing_shards: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "old": _state(self.old),
            "new": _state(self.new),
            "differing_shards": self.differing_shards,
            "members": [m.to_json() for m in self.members],
        }


def _state(row: FileRow) -> dict[str, Any]:
    return {"digest": row.digest, "size": row.size, "shards": row.shards}


@dataclass(frozen=True)
class ReleaseDiff:
    """Everything that differs between two releases."""

    old: Release
    new: Release
    changes: tuple[Change, ...]
    added: tuple[FileRow, ...]
    removed: tuple[FileRow, ...]
    changed: tuple[FileChange, ...]
    #: Files in both, hashed differently (another hash type or shard size):
    #: their digests cannot be compared.
    uncomparable: tuple[str, ...]
    unchanged: int

    @property
    def identical(self) -> bool:
        return not (self.changes or self.added or self.removed or self.changed or self.uncomparable)

    @property
    def verified(self) -> bool:
        return self.old.verified and self.new.verified

    def to_json(self) -> dict[str, Any]:
        return {
            "identical": self.identical,
            "verified": self.verified,
            "old": self.old.to_json(),
            "new": self.new.to_json(),
            "changes": [c.to_json() for c in self.changes],
            "files": {
                "added": [_entry(r) for r in self.added],
                "removed": [_entry(r) for r in self.removed],
                "changed": [c.to_json() for c in self.changed],
                "uncomparable": list(self.uncomparable),
                "unchanged": self.unchanged,
            },
        }


def _entry(row: FileRow) -> dict[str, Any]:
    return {"name": row.name, **_state(row)}


def _as_dot(values: Mapping[str, T], manifest: Manifest, single: bool) -> Mapping[str, T]:
    """``values`` by file name, a single-file model's one file named ``.``
    (``model_signing`` writes ``.``; a bundle may also use the file's name)."""
    if single and len(values) == 1:
        ((name, value),) = values.items()
        if name == manifest.model_name:
            return {SINGLE_FILE_NAME: value}
    return values


def _member_changes(old: Resource | None, new: Resource | None) -> tuple[MemberChange, ...]:
    before = {m.name: m.digest for m in old.members} if old else {}
    after = {m.name: m.digest for m in new.members} if new else {}
    out = []
    for name in sorted(before.keys() | after.keys()):
        a, b = before.get(name), after.get(name)
        if a is None:
            out.append(MemberChange("added", name, new=b))
        elif b is None:
            out.append(MemberChange("removed", name, old=a))
        elif a != b:
            out.append(MemberChange("changed", name, a, b))
    return tuple(out)


def _release(manifest: Manifest, field: str) -> str:
    """The signed model name or version (``none`` when not recorded)."""
    return str(getattr(manifest.release, field, None) or "none")


def _settings(old: Manifest, new: Manifest) -> list[Change]:
    a, b = old.serialization, new.serialization
    pairs: list[tuple[str, object, object]] = [
        ("model_name", old.model_name, new.model_name),
        ("release.name", _release(old, "name"), _release(new, "name")),
        ("release.version", _release(old, "version"), _release(new, "version")),
        ("hash_type", a.hash_type, b.hash_type),
        ("serialization", a.method, b.method),
        ("shard_size", a.shard_size, b.shard_size),
        ("allow_symlinks", a.allow_symlinks, b.allow_symlinks),
        ("ignore_paths", ", ".join(a.ignore_paths), ", ".join(b.ignore_paths)),
    ]
    return [Change(name, str(x), str(y)) for name, x, y in pairs if x != y]


def diff_releases(old: Release, new: Release) -> ReleaseDiff:
    """Compare two releases' manifests and signers.

    Args:
        old: the earlier release (:func:`open_release`).
        new: the later one.

    Returns:
        The differences; :attr:`ReleaseDiff.identical` when there are none.

    Raises:
        MalformedBundleError: never for releases :func:`open_release` read.
    """
    a, b = old.manifest, new.manifest
    single = SINGLE_FILE_NAME in a.file_fingerprints() or SINGLE_FILE_NAME in b.file_fingerprints()
    rows_a = _as_dot({r.name: r for r in file_rows(a)}, a, single)
    rows_b = _as_dot({r.name: r for r in file_rows(b)}, b, single)
    prints_a = _as_dot(a.file_fingerprints(), a, single)
    prints_b = _as_dot(b.file_fingerprints(), b, single)
    members_a = _as_dot({r.name: r for r in a.resources if r.members}, a, single)
    members_b = _as_dot({r.name: r for r in b.resources if r.members}, b, single)
    comparable = a.serialization.scheme == b.serialization.scheme
    changed, uncomparable, unchanged = [], [], 0
    for name in sorted(rows_a.keys() & rows_b.keys()):
        if not comparable:
            uncomparable.append(name)
        elif prints_a[name] == prints_b[name]:
            unchanged += 1
        else:
            shards = prints_a[name].differing_shards(prints_b[name])
            changed.append(
                FileChange(
                    name,
                    rows_a[name],
                    rows_b[name],
                    _member_changes(members_a.get(name), members_b.get(name)),
                    None if shards is None else len(shards),
                )
            )
    changes = _settings(a, b)
    if old.signer.principal != new.signer.principal:
        changes.append(Change("signer", old.signer.describe(), new.signer.describe()))
    cosigners = [sorted({c.describe() for c in side.cosigners}) for side in (old, new)]
    if cosigners[0] != cosigners[1]:
        changes.append(Change("cosigners", *(", ".join(c) or "none" for c in cosigners)))
    if a.root_digest != b.root_digest:
        changes.append(Change("root_digest", a.root_digest, b.root_digest))
    changes += _provenance_changes(old.provenance, new.provenance)
    return ReleaseDiff(
        old,
        new,
        tuple(changes),
        tuple(rows_b[n] for n in sorted(rows_b.keys() - rows_a.keys())),
        tuple(rows_a[n] for n in sorted(rows_a.keys() - rows_b.keys())),
        tuple(changed),
        tuple(uncomparable),
        unchanged,
    )


def _dependency(d: DependencyRow | None) -> str:
    return "none" if d is None else " ".join(x for x in (d.name, d.digest) if x)


def _facts(p: ProvenanceSummary) -> dict[str, str]:
    """What two provenances are compared on, as text."""
    code = _dependency(p.code) + (" (dirty)" if p.code_dirty else "")
    return {
        "provenance.status": p.status,
        "provenance.builder": p.builder or "none",
        "provenance.code": code,
        "provenance.entry_point": p.entry_point or "none",
        "provenance.base_model": _dependency(p.base_model),
        "provenance.datasets": ", ".join(map(_dependency, p.datasets)) or "none",
        "provenance.frameworks": ", ".join(p.frameworks) or "none",
        "provenance.parameters": p.parameters or "none",
    }


def _provenance_changes(old: ProvenanceSummary, new: ProvenanceSummary) -> list[Change]:
    if old.status == "missing" and new.status == "missing":
        return []
    if "missing" in (old.status, new.status):
        return [Change("provenance", old.status, new.status)]
    a, b = _facts(old), _facts(new)
    return [Change(field, a[field], b[field]) for field in a if a[field] != b[field]]
