"""Judge every model found, under one policy, whatever happens to the others.

Each model is verified with :func:`modelsign.verify` (the same checks as
``modelsign verify`` and the loader hook); a refusal becomes the model's
verdict and reason, never the end of the audit. What the bundle claims is
read beside it, so that a rejected model still shows who claims to have
signed it and what. Once every model is judged, lineage: a model whose
verified provenance names a base model that this audit rejected is rejected
too (:func:`resolve_lineage`).
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from modelsign._audit._provenance import provenance_of, summary
from modelsign._audit._records import (
    VERDICTS,
    AuditRecord,
    FileRow,
    ProvenanceSummary,
    SignerRow,
    Spool,
    Verdict,
    file_rows,
)
from modelsign._audit._signatures import claimed_signers, from_report
from modelsign._audit._walk import Candidate
from modelsign._inspecting import BundleClaims, inspect_bundle
from modelsign.errors import (
    Error,
    MissingSignatureError,
    ProvenanceError,
    ThresholdNotMetError,
    UsageError,
    VerificationError,
)
from modelsign.policy import Policy
from modelsign.signing import default_signature_path
from modelsign.verifying import verify

__all__ = ["AuditReport", "audit", "audit_one", "resolve_lineage"]

#: Unsigned model files named in a reason (the detail lists them all).
NAMES_IN_REASON = 5


@dataclass
class AuditReport:
    """Every model's record (in audit order) and their file lists."""

    records: list[AuditRecord]
    spool: Spool
    policy: str
    paths: tuple[str, ...]
    started: str
    finished: str

    def counts(self) -> dict[str, int]:
        """How many models got each verdict (every verdict, zero or not)."""
        counts: dict[str, int] = dict.fromkeys(VERDICTS, 0)
        for r in self.records:
            counts[r.verdict] += 1
        return counts

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.records)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def audit(
    candidates: Iterable[Candidate],
    policy: Policy,
    spool: Spool,
    *,
    paths: Sequence[str | os.PathLike[str]] = (),
    now: datetime.datetime | None = None,
    progress: Callable[[Candidate], None] | None = None,
) -> AuditReport:
    """Audit each candidate; its files go to ``spool``, its record to the report.

    Args:
        candidates: the models (:func:`~modelsign._audit.find_models`).
        policy: what is trusted.
        spool: where each model's file list is written, in order.
        paths: the paths the audit was given (for the report).
        now: when certificates must be valid (default: now).
        progress: called with each candidate before it is audited.

    Returns:
        The report: one record per candidate, lineage resolved.

    Raises:
        KeyboardInterrupt: only that; every model's failure is its record.
    """
    started = _now()
    records = []
    for index, candidate in enumerate(candidates):
        if progress is not None:
            progress(candidate)
        record, files = audit_one(candidate, policy, index=index, now=now)
        spool.add(files)
        records.append(record)
    return AuditReport(
        resolve_lineage(records),
        spool,
        policy.describe(),
        tuple(map(str, paths)),
        started,
        _now(),
    )


def audit_one(
    candidate: Candidate,
    policy: Policy,
    *,
    index: int = 0,
    now: datetime.datetime | None = None,
) -> tuple[AuditRecord, list[FileRow]]:
    """Verify one model and describe it; a refusal is its verdict.

    Args:
        candidate: the model.
        policy: what is trusted.
        index: its position in the audit.
        now: when certificates must be valid (default: now).

    Returns:
        The record and the model's files (signed ones, or the unsigned ones).

    Raises:
        KeyboardInterrupt: only that.
    """
    c = candidate
    base = AuditRecord(
        str(c.path), c.kind, "error", model_name=c.repository, version=c.revision, index=index
    )
    if c.problem is not None:
        return replace(base, error_type="UsageError", reason=c.problem), []
    if c.kind == "unsigned":
        return _unsigned(base, c)
    signature = c.signature or default_signature_path(c.path)
    if not os.path.lexists(c.path):  # a bundle whose model is gone
        missing = UsageError(f"{signature}: the model it signs, {c.path}, is missing")
        return _refused(base, missing, _claims(signature))
    try:
        verified = verify(
            c.path, policy, signature=signature, hf_cache=c.kind == "hf-snapshot", now=now
        )
    except Error as e:
        record, files = _refused(base, e, _claims(signature))
        if record.claims_only:  # a bundle was read: so may its provenance be
            record = replace(record, provenance=_claimed_provenance(signature, c, policy, e))
        return record, files
    except OSError as e:  # a file that cannot be read: not judged
        return replace(base, error_type="OSError", reason=f"{c.path}: cannot read: {e}"), []
    except Exception as e:  # a bug must not end the audit of the other models
        if os.environ.get("MODELSIGN_DEBUG"):
            raise
        reason = (
            f"{c.path}: internal error: {type(e).__name__}: {e} (a bug: please report it; "
            "MODELSIGN_DEBUG=1 raises it)"
        )
        return replace(base, error_type="InternalError", reason=reason), []
    files = file_rows(verified.manifest)
    threshold = None
    if verified.signatures is not None:  # every bundle that counted, or did not, and why
        signers, threshold = from_report(verified.signatures.to_json(), signature)
    else:  # when it was signed: a key bundle does not say; the others claim a time
        claims = None if verified.signed_by.method == "key" else _claims(signature)
        claimed = None if claims is None else claims.signer
        signers = (SignerRow.from_signed_by(verified.signed_by, claimed, signature.name),)
    release = verified.release
    if verified.provenance is not None:  # the policy required it: verify checked it
        provenance = summary(verified.provenance)
    else:
        provenance = provenance_of(signature, str(c.path), policy, verified.root_digest)
    warnings: tuple[str, ...] = ()
    if provenance.status in ("unverified", "invalid"):
        warnings = (f"the provenance is {provenance.status}: {provenance.error}",)
    record = replace(
        base,
        verdict="verified",
        signature=str(signature),
        model_name=verified.model_name if release is None else release.name,
        version=base.version if release is None or release.version is None else release.version,
        root_digest=verified.root_digest,
        hash_type=verified.manifest.serialization.hash_type,
        files=len(files),
        size=_total(files),
        signers=signers,
        threshold=threshold,
        provenance=provenance,
        warnings=warnings,
    )
    return record, files


def _claimed_provenance(
    signature: Path, c: Candidate, policy: Policy, error: Error
) -> ProvenanceSummary:
    """The provenance of a model that did not verify: its claims; when the
    provenance itself is why (the policy requires it), ``invalid`` with that
    reason."""
    provenance = provenance_of(signature, str(c.path), policy, None)
    if isinstance(error, ProvenanceError) and provenance.status != "missing":
        return replace(provenance, status="invalid", error=f"{type(error).__name__}: {error}")
    return provenance


def _total(files: Sequence[FileRow]) -> int | None:
    sizes = [f.size for f in files]
    return None if any(s is None for s in sizes) else sum(s or 0 for s in sizes)


def _claims(signature: Path) -> BundleClaims | None:
    """What the bundle claims (to show beside a refusal, and the signing
    time); ``None`` when it cannot be read (verification says why)."""
    try:
        return inspect_bundle(signature)
    except Error:
        return None
    except OSError:
        return None


def _verdict(error: Error) -> Verdict:
    if isinstance(error, MissingSignatureError):
        return "unsigned"
    return "rejected" if isinstance(error, VerificationError) else "error"


def _refused(
    base: AuditRecord, error: Error, claims: BundleClaims | None
) -> tuple[AuditRecord, list[FileRow]]:
    record = replace(
        base,
        verdict=_verdict(error),
        error_type=type(error).__name__,
        reason=str(error),
        hint=error.hint,
    )
    if claims is None:
        return record, []
    files = file_rows(claims.manifest)
    report = error.report if isinstance(error, ThresholdNotMetError) else None
    if report is not None:  # who counted and who did not, verified
        signers, threshold = from_report(report, claims.signature)
    else:
        signers, threshold = claimed_signers(claims, claims.signature), None
    release = claims.manifest.release
    return replace(
        record,
        signature=str(claims.signature),
        model_name=claims.manifest.model_name if release is None else release.name,
        version=record.version if release is None or release.version is None else release.version,
        root_digest=claims.manifest.root_digest,
        hash_type=claims.manifest.serialization.hash_type,
        claims_only=True,
        files=len(files),
        size=_total(files),
        signers=signers,
        threshold=threshold,
    ), files


def _unsigned(base: AuditRecord, c: Candidate) -> tuple[AuditRecord, list[FileRow]]:
    files = []
    for name in c.unsigned:
        try:
            size: int | None = os.lstat(c.path / name).st_size
        except OSError:
            size = None
        files.append(FileRow(name, size))
    shown = ", ".join(c.unsigned[:NAMES_IN_REASON])
    more = len(c.unsigned) - NAMES_IN_REASON
    shown += f" and {more} more" if more > 0 else ""
    count = len(c.unsigned)
    reason = (
        f"{c.path}: no bundle covers {count} model file{'s' if count != 1 else ''} "
        f"here ({shown}): no model.sig in the folder, no FILE.sig beside them"
    )
    record = replace(
        base,
        verdict="unsigned",
        error_type=MissingSignatureError.__name__,
        reason=reason,
        hint=MissingSignatureError.hint,
        files=len(files),
        size=_total(files),
    )
    return record, files


def _base_digest(record: AuditRecord) -> str | None:
    """The root digest (hex) of the base model that a model's verified
    provenance names."""
    prov = record.provenance
    if prov is None or prov.status != "verified" or prov.base_model is None:
        return None
    algorithm, _, value = (prov.base_model.digest or "").partition(":")
    return value if algorithm == "sha256" and value else None


def resolve_lineage(records: list[AuditRecord]) -> list[AuditRecord]:
    """Reject the models built on a base model this audit did not verify.

    A base model is known by its root digest. It passes if any model with
    that digest verified here; it fails if models with that digest were
    found and none verified (a tampered copy claims the digest it was
    signed with). A base model not in the audit is not judged here (``verify
    --lineage`` and the policy's lineage rule find it). A fine-tune of a
    rejected fine-tune is rejected in turn.

    Args:
        records: every record of the audit, in order (changed in place).

    Returns:
        ``records``.

    Raises:
        KeyError: never.
    """
    for _ in range(len(records)):  # each round settles one more generation
        found: dict[str, AuditRecord] = {}
        for r in records:
            if r.root_digest is not None:
                first = found.setdefault(r.root_digest, r)
                if r.passed and not first.passed:
                    found[r.root_digest] = r
        changed = False
        for i, r in enumerate(records):
            digest = _base_digest(r)
            base = None if digest is None else found.get(digest)
            if not r.passed or base is None or base.passed:
                continue
            first_line = (base.reason or "").splitlines()[0].rstrip(":") if base.reason else ""
            records[i] = r.with_verdict(
                "rejected",
                "LineageError",
                f"{r.path}: its base model {base.path} (sha256:{digest}) was {base.verdict} "
                f"in this audit ({base.error_type}: {first_line})",
                "fix or replace the base model first: a model built on a model that does not "
                "verify is not trusted either",
            )
            changed = True
        if not changed:
            break
    return records
