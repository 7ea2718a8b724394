"""A model's signed provenance as an audit or a diff reports it.

The provenance bundle beside a model's bundle (``model.provenance.sig``,
``F.provenance.sig``: :func:`modelsign.provenance.provenance_beside`) is
checked with :func:`modelsign.provenance.check_provenance` when the model
verified (its signer trusted by the policy, its subject the model's root
digest), and otherwise read as claims (:func:`~modelsign.provenance.read_provenance`).
Whether provenance is *required* is the policy's ``[provenance]`` rule,
which :func:`modelsign.verify` enforces: here a missing, untrusted or
mismatched provenance of a model the policy lets through is reported (its
status and the error), never a reason of its own to reject the model.
"""

from __future__ import annotations

import json
from pathlib import Path

from modelsign._audit._records import (
    DependencyRow,
    ProvenanceStatus,
    ProvenanceSummary,
    SignerRow,
)
from modelsign._slsa import Dependency, Provenance, rfc3339
from modelsign.errors import Error, MissingProvenanceError, ProvenanceMismatchError
from modelsign.policy import Policy
from modelsign.provenance import check_provenance, provenance_beside, read_provenance

__all__ = ["MAX_PARAMETERS_CHARS", "provenance_of", "summary"]

#: The hyperparameters are shown as JSON text, cut at this length.
MAX_PARAMETERS_CHARS = 2000


def _dependency(d: Dependency | None) -> DependencyRow | None:
    if d is None:
        return None
    if d.git_commit is not None:
        digest: str | None = f"gitCommit:{d.git_commit}"
    elif d.sha256 is not None:
        digest = f"sha256:{d.sha256}"
    else:
        digest = next((f"{k}:{v}" for k, v in d.digest.items()), None)
    return DependencyRow(d.name or d.uri or "?", digest, d.uri)


def summary(
    prov: Provenance, status: ProvenanceStatus | None = None, error: str | None = None
) -> ProvenanceSummary:
    """What an audit shows of a provenance (verified when it has ``signed_by``)."""
    code = prov.code
    signer = None
    if prov.signed_by is not None:
        signer = SignerRow.from_signed_by(prov.signed_by, prov.signer, prov.path.name)
    elif prov.signer is not None:
        signer = SignerRow.from_claims(prov.signer, prov.path.name)
    if status is None and prov.verified:
        status = "verified"
    elif status is None:
        status = "unverified"
    params = json.dumps(dict(prov.parameters), sort_keys=True) if prov.parameters else None
    if params is not None and len(params) > MAX_PARAMETERS_CHARS:
        params = params[: MAX_PARAMETERS_CHARS - 1] + "…"
    return ProvenanceSummary(
        status,
        signature=str(prov.path),
        builder=prov.builder_id,
        code=_dependency(code),
        code_dirty=None if code is None else code.dirty,
        datasets=tuple(r for r in map(_dependency, prov.datasets) if r is not None),
        base_model=_dependency(prov.base_model),
        started=None if prov.started is None else rfc3339(prov.started),
        finished=None if prov.finished is None else rfc3339(prov.finished),
        entry_point=prov.entry_point,
        frameworks=tuple(f"{name} {version}" for name, version in sorted(prov.frameworks.items())),
        parameters=params,
        signer=signer,
        error=error,
    )


def provenance_of(
    signature: Path,
    model: str,
    policy: Policy | None,
    root_digest: str | None,
) -> ProvenanceSummary:
    """The provenance beside the bundle ``signature``.

    Args:
        signature: the model's bundle.
        model: how to name the model in messages.
        policy: what is trusted (``None``: nothing, the provenance is read).
        root_digest: the model's *verified* root digest, or ``None`` when
            the model did not verify (its provenance is then only read).

    Returns:
        ``missing`` (no provenance bundle), ``verified``, ``unverified``
        (claims: the model did not verify, or the provenance's signer is not
        trusted, with the error), or ``invalid`` (unreadable, or about
        another model, with the error).

    Raises:
        KeyboardInterrupt: only that.
    """
    path = provenance_beside(signature)
    if not path.is_file() and not path.is_symlink():
        return ProvenanceSummary("missing", signature=str(path))
    if root_digest is not None and policy is not None:
        try:
            return summary(check_provenance(signature, root_digest, model, policy))
        except MissingProvenanceError:
            return ProvenanceSummary("missing", signature=str(path))
        except Error as e:
            failure: Error | None = e
    else:
        failure = None
    try:
        claims = read_provenance(path)
    except Error as e:
        return ProvenanceSummary("invalid", signature=str(path), error=f"{type(e).__name__}: {e}")
    status: ProvenanceStatus = "unverified"
    if root_digest is not None and claims.subject_digest != root_digest:
        status = "invalid"  # about another model
        failure = failure or ProvenanceMismatchError(
            f"{path}: about the model with root digest sha256:{claims.subject_digest}, not "
            f"{model} (sha256:{root_digest})"
        )
    error = None if failure is None else f"{type(failure).__name__}: {failure}"
    return summary(claims, status, error)
