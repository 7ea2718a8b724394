"""Who signed a model, as an audit reports it: the primary bundle and its
co-signatures (``model.sig.d/``, ``F.sig.d/``), which of them counted under
the policy and which did not (and why), and the threshold rules' status.

Verification (:func:`modelsign.verify`) decides; this module only turns its
trust report (``VerifiedModel.signatures``, or the ``report`` a
``ThresholdNotMetError`` carries) into rows. For a model that did not verify
otherwise, the rows are what the bundles claim.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from modelsign._audit._records import SignerRow, ThresholdStatus
from modelsign._inspecting import BundleClaims, inspect_bundle
from modelsign._threshold import MAX_COSIGNATURES, cosignature_dir
from modelsign.errors import Error
from modelsign.signing import SignedBy

__all__ = ["claimed_signers", "from_report"]


def _name(bundle: str, signature: Path) -> str:
    """A bundle's path relative to the model's bundle folder (``model.sig.d/x.sig``)."""
    try:
        return Path(os.path.relpath(bundle, signature.parent)).as_posix()
    except ValueError:
        return bundle


def _claimed(path: Path, signature: Path) -> SignerRow:
    try:
        return SignerRow.from_claims(inspect_bundle(path).signer, _name(str(path), signature))
    except (Error, OSError):
        return SignerRow("unknown", "?", bundle=_name(str(path), signature))


def claimed_signers(claims: BundleClaims | None, signature: Path) -> tuple[SignerRow, ...]:
    """The primary's claimed signer and each co-signature's, unverified."""
    rows = [] if claims is None else [SignerRow.from_claims(claims.signer, signature.name)]
    folder = cosignature_dir(signature)
    try:
        extra = sorted(p for p in folder.iterdir() if p.name.endswith(".sig"))
    except OSError:
        extra = []
    rows += [_claimed(p, signature) for p in extra[:MAX_COSIGNATURES]]
    return tuple(rows)


def _counted(item: Mapping[str, Any], signature: Path) -> SignerRow:
    signed_by = SignedBy(**item["signed_by"])
    trusted_time = not str(item.get("time_source", "")).startswith("verification time")
    row = SignerRow.from_signed_by(signed_by, None, _name(item["bundle"], signature))
    return replace(
        row,
        when=item.get("signed_at") if trusted_time else None,
        when_verified=trusted_time,
        counted=True,
        note=f"as {item['signer']}",
    )


def _not_counted(item: Mapping[str, Any], signature: Path) -> SignerRow:
    row = _claimed(Path(item["bundle"]), signature)
    return replace(row, counted=False, note=f"{item['error']}: {item['reason']}")


def _threshold(rules: Sequence[Mapping[str, Any]]) -> ThresholdStatus | None:
    if not rules:
        return None
    failing = [r for r in rules if not r["met"]]
    first = (failing or rules)[0]
    text = "; ".join(f"{r['rule']}: {len(r['counted'])} of {r['require']}" for r in rules)
    return ThresholdStatus(int(first["require"]), len(first["counted"]), not failing, text)


def from_report(
    report: Mapping[str, Any], signature: Path
) -> tuple[tuple[SignerRow, ...], ThresholdStatus | None]:
    """Rows for every bundle a trust report names, and the threshold status.

    Args:
        report: ``TrustReport.to_json()`` (or a ``ThresholdNotMetError``'s ``report``).
        signature: the model's primary bundle (bundle names are relative to its folder).

    Returns:
        The signer rows (counted first) and the threshold status (``None``
        when no rule applies).

    Raises:
        KeyError: a report of another shape (a bug).
    """
    rows = [_counted(c, signature) for c in report.get("counted", ())]
    rows += [_not_counted(n, signature) for n in report.get("not_counted", ())]
    return tuple(rows), _threshold(report.get("rules", ()))
