"""What an audit reports about one model, and where its file lists wait.

An :class:`AuditRecord` is small (a few hundred bytes plus its signers): an
audit keeps one per model, for the summary, the table and lineage. The
files of each model (possibly thousands of names) are written to a
:class:`Spool`, a temporary file read back in order by the JSON and HTML
writers, so that memory does not grow with the size of the models.

Every string here may come from a bundle or a file name an attacker chose:
the writers escape it (``shown`` on a terminal, ``html.escape`` in HTML).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import IO, Any, Literal, TypeAlias

from modelsign._inspecting import ClaimedSigner
from modelsign.manifest import Manifest
from modelsign.signing import SignedBy

__all__ = [
    "KINDS",
    "VERDICTS",
    "AuditRecord",
    "DependencyRow",
    "FileRow",
    "Kind",
    "ProvenanceStatus",
    "ProvenanceSummary",
    "SignerRow",
    "Spool",
    "ThresholdStatus",
    "Verdict",
    "file_rows",
]

#: The outcome for one model: ``verified`` under the policy; ``rejected``
#: (a verification error: tampered, untrusted signer, threshold not met,
#: provenance refused, base model rejected, ...); ``unsigned`` (no bundle);
#: ``error`` (it could not be judged: unreadable, a link not followed, ...).
Verdict: TypeAlias = Literal["verified", "rejected", "unsigned", "error"]
VERDICTS: tuple[Verdict, ...] = ("verified", "rejected", "unsigned", "error")

#: What was found: a folder with ``model.sig``, a file with ``FILE.sig``, a
#: Hugging Face cache snapshot, a folder of model files no bundle covers, or
#: a symbolic link the walk does not follow.
Kind: TypeAlias = Literal["folder", "file", "hf-snapshot", "unsigned", "link"]
KINDS: tuple[Kind, ...] = ("folder", "file", "hf-snapshot", "unsigned", "link")


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


@dataclass(frozen=True)
class SignerRow:
    """One signer of a model: who, by which method, when; whether the
    signature verified under the policy (else it is what the bundle claims)
    and, under a threshold, whether it counted."""

    method: str
    #: The key id, or the certificate / Sigstore identity.
    who: str
    issuer: str | None = None
    #: When it was signed (ISO 8601): the transparency log's integrated time
    #: or the earliest RFC 3161 timestamp; ``None`` for the key method.
    when: str | None = None
    #: Whether ``when`` was verified (a trusted TSA or log), not only claimed.
    when_verified: bool = False
    verified: bool = False
    #: The bundle, relative to the model (``model.sig``, ``model.sig.d/x.sig``).
    bundle: str | None = None
    #: Under a threshold: counted towards it, or not (``note`` says why).
    counted: bool | None = None
    note: str | None = None

    @classmethod
    def from_claims(cls, claimed: ClaimedSigner, bundle: str | None = None) -> SignerRow:
        """What a bundle claims (unverified)."""
        when = claimed.integrated_time or (min(claimed.timestamps) if claimed.timestamps else None)
        return cls(
            claimed.method,
            claimed.key_id or claimed.identity or "?",
            claimed.issuer,
            when,
            bundle=bundle,
        )

    @classmethod
    def from_signed_by(
        cls, signed_by: SignedBy, claimed: ClaimedSigner | None = None, bundle: str | None = None
    ) -> SignerRow:
        """A signer verification established; the time is the bundle's claim
        unless a trusted TSA vouched for it."""
        when = None if claimed is None else cls.from_claims(claimed).when
        when_verified = False
        if signed_by.valid_at and "timestamp" in (signed_by.time_source or "").split(";")[0]:
            when, when_verified = signed_by.valid_at, True
        return cls(
            signed_by.method,
            signed_by.key_id or signed_by.identity or "?",
            signed_by.issuer,
            when,
            when_verified,
            verified=True,
            bundle=bundle,
        )

    @property
    def principal(self) -> tuple[str, str, str | None]:
        """What tells two signers apart (not when they signed)."""
        return self.method, self.who, self.issuer

    def describe(self) -> str:
        """One line: ``key 1a2b…``, ``sigstore alice@example.com (issuer …)``."""
        issuer = f" (issuer {self.issuer})" if self.issuer else ""
        return f"{self.method} {self.who}{issuer}"

    def to_json(self) -> dict[str, Any]:
        return _drop_none(vars(self).copy())


@dataclass(frozen=True)
class ThresholdStatus:
    """Whether the policy's k-of-n signer rule was met for a model."""

    required: int
    counted: int
    met: bool
    #: The rule, in the policy's words.
    rule: str | None = None

    def describe(self) -> str:
        return f"{self.counted} of {self.required} {'met' if self.met else 'NOT met'}"

    def to_json(self) -> dict[str, Any]:
        return _drop_none(vars(self).copy())


@dataclass(frozen=True)
class DependencyRow:
    """Something a model was built from: a dataset, the base model, the code."""

    name: str
    #: ``algorithm:hex`` (a model's OMS root digest is ``sha256:…``).
    digest: str | None = None
    uri: str | None = None

    def to_json(self) -> dict[str, Any]:
        return _drop_none(vars(self).copy())


#: Provenance status: ``verified`` (a trusted signer, over this model's root
#: digest), ``unverified`` (present, not checked or not trusted), ``missing``,
#: ``invalid`` (present and refused: ``error`` says why).
ProvenanceStatus: TypeAlias = Literal["verified", "unverified", "missing", "invalid"]


@dataclass(frozen=True)
class ProvenanceSummary:
    """What a model's signed provenance says it was built from."""

    status: ProvenanceStatus
    signature: str | None = None
    builder: str | None = None
    code: DependencyRow | None = None
    code_dirty: bool | None = None
    datasets: tuple[DependencyRow, ...] = ()
    base_model: DependencyRow | None = None
    started: str | None = None
    finished: str | None = None
    entry_point: str | None = None
    #: ``torch 2.13.0``, ...: the framework versions recorded.
    frameworks: tuple[str, ...] = ()
    #: The hyperparameters, as JSON text (cut when long).
    parameters: str | None = None
    signer: SignerRow | None = None
    #: Why it is not verified (``unverified``, ``invalid``).
    error: str | None = None

    def describe(self) -> str:
        if self.status in ("missing", "invalid"):
            return self.status
        parts = []
        if self.base_model is not None:
            parts.append(f"base {self.base_model.name}")
        if self.datasets:
            parts.append(f"{len(self.datasets)} dataset(s)")
        if self.code is not None:
            commit = (self.code.digest or "").rpartition(":")[2][:12] or "?"
            parts.append(f"commit {commit}{' (dirty)' if self.code_dirty else ''}")
        parts.append(f"by {self.builder or '?'}")
        return ("" if self.status == "verified" else "UNVERIFIED ") + ", ".join(parts)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "status": self.status,
            "signature": self.signature,
            "builder": self.builder,
            "code": None if self.code is None else self.code.to_json(),
            "code_dirty": self.code_dirty,
            "datasets": [d.to_json() for d in self.datasets],
            "base_model": None if self.base_model is None else self.base_model.to_json(),
            "started": self.started,
            "finished": self.finished,
            "entry_point": self.entry_point,
            "frameworks": list(self.frameworks),
            "parameters": self.parameters,
            "signer": None if self.signer is None else self.signer.to_json(),
            "error": self.error,
        }
        return _drop_none(out)


@dataclass(frozen=True)
class FileRow:
    """One file of a model, as its manifest (or, unsigned, the disk) has it."""

    name: str
    size: int | None = None
    #: The digest (``algorithm:hex``), or in shard mode ``None`` (see ``shards``).
    digest: str | None = None
    shards: int | None = None
    archive: str | None = None
    members: int = 0

    def to_json(self) -> dict[str, Any]:
        return _drop_none(vars(self).copy())

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> FileRow:
        return cls(**obj)


def file_rows(manifest: Manifest) -> list[FileRow]:
    """One row per signed file (a shard bundle's shards grouped by file)."""
    ser = manifest.serialization
    if ser.shard_size is None:
        return [
            FileRow(r.name, r.size, f"{ser.hash_type}:{r.digest}", None, r.archive, len(r.members))
            for r in manifest.resources
        ]
    return [
        FileRow(name, fp.size, None, len(fp.shards or ()))
        for name, fp in sorted(manifest.file_fingerprints().items())
    ]


@dataclass(frozen=True)
class AuditRecord:
    """One model of an audit: what was found, who signed it, what it was
    built from, and the verdict with its exact reason."""

    path: str
    kind: Kind
    verdict: Verdict
    signature: str | None = None
    #: The statement's subject name (or a Hugging Face repository's name).
    model_name: str | None = None
    #: The release version the signer recorded, or a cache snapshot's revision.
    version: str | None = None
    root_digest: str | None = None
    hash_type: str | None = None
    #: True when the root digest and signers are a bundle's claims, not
    #: verified (the model was rejected, or could not be checked).
    claims_only: bool = False
    files: int | None = None
    size: int | None = None
    signers: tuple[SignerRow, ...] = ()
    threshold: ThresholdStatus | None = None
    provenance: ProvenanceSummary | None = None
    #: The error class (``DigestMismatchError``, ...), its full message and
    #: what to do next.
    error_type: str | None = None
    reason: str | None = None
    hint: str | None = None
    warnings: tuple[str, ...] = ()
    #: Position in the audit (its detail in the spool; its anchor in HTML).
    index: int = 0

    @property
    def passed(self) -> bool:
        return self.verdict == "verified"

    def with_verdict(
        self, verdict: Verdict, error_type: str, reason: str, hint: str | None = None
    ) -> AuditRecord:
        return replace(self, verdict=verdict, error_type=error_type, reason=reason, hint=hint)

    def to_json(self, files: Sequence[FileRow] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "path": self.path,
            "kind": self.kind,
            "verdict": self.verdict,
            "signature": self.signature,
            "model_name": self.model_name,
            "version": self.version,
            "root_digest": self.root_digest,
            "hash_type": self.hash_type,
            "claims_only": self.claims_only,
            "file_count": self.files,
            "size": self.size,
            "signers": [s.to_json() for s in self.signers],
            "threshold": None if self.threshold is None else self.threshold.to_json(),
            "provenance": None if self.provenance is None else self.provenance.to_json(),
            "error": None
            if self.error_type is None
            else _drop_none({"type": self.error_type, "message": self.reason, "hint": self.hint}),
            "warnings": list(self.warnings),
        }
        if files is not None:
            out["files"] = [f.to_json() for f in files]
        return out


class Spool:
    """File lists, one line of JSON per model, in audit order, in a
    temporary file (deleted when closed)."""

    def __init__(self) -> None:
        self._file: IO[str] = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
        self.count = 0

    def add(self, rows: Sequence[FileRow]) -> None:
        self._file.write(json.dumps([r.to_json() for r in rows]) + "\n")
        self.count += 1

    def read(self) -> Iterator[list[FileRow]]:
        """Every model's files, in the order they were added."""
        self._file.flush()
        self._file.seek(0)
        for line in self._file:
            yield [FileRow.from_json(r) for r in json.loads(line)]
        self._file.seek(0, 2)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
