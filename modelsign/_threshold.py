"""Which signers vouch for a statement: the primary bundle and its
co-signatures, each checked against the policy's anchors, their validity
windows and revocation, counted once per signer, against the policy's k-of-n
rules; then the model-name pins.

A Sigstore bundle holds one signature, so several signers mean several
bundles: ``MODEL/model.sig`` (the primary, which ``model_signing`` verifies)
and ``MODEL/model.sig.d/*.sig`` (``F.sig`` and ``F.sig.d/`` for a single
file), each over the **same statement bytes** as the primary. Nothing here
reads model files: :func:`trusted_statement` is what :func:`modelsign.verify`
and the loader hook both call before any digest is compared.

Counting: a bundle counts for the anchor that verifies it (the first, in the
policy's order), and a signer (:func:`~modelsign._policyrules.principal`: a
key id, or an identity string) counts once, however many bundles, hints,
anchors or names it appears under.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelsign._policyrules import AnchorTerms, Threshold, principal
from modelsign._signingtime import CLOCK_SKEW, signature_time
from modelsign.bundle import Bundle, KeyMaterial
from modelsign.errors import (
    Error,
    MalformedBundleError,
    ModelSubstitutionError,
    SignerExpiredError,
    SignerNotYetValidError,
    SignerRevokedError,
    ThresholdNotMetError,
    UntrustedSignerError,
    VerificationError,
)
from modelsign.manifest import Manifest
from modelsign.policy import Anchor, Policy
from modelsign.signing import SignedBy
from modelsign.verifying import check_signature, read_bundle

__all__ = [
    "MAX_COSIGNATURES",
    "Counted",
    "NotCounted",
    "RuleResult",
    "TrustReport",
    "TrustedStatement",
    "cosignature_dir",
    "trusted_statement",
]

_NO_TSA = "no TSA named for this key"

#: Co-signature bundles read from one ``.sig.d`` folder (the rest are reported).
MAX_COSIGNATURES = 64


def cosignature_dir(signature: Path) -> Path:
    """``model.sig.d`` beside ``model.sig``; ``F.sig.d`` beside ``F.sig``."""
    return signature.with_name(signature.name + ".d")


def _stamp(at: datetime.datetime) -> str:
    return f"{at:%Y-%m-%dT%H:%M:%SZ}"


@dataclass(frozen=True)
class Counted:
    """A bundle whose signer counted."""

    bundle: str
    signer: str  # the anchor's name, or what it is
    signed_by: SignedBy
    signed_at: datetime.datetime
    time_source: str

    def to_json(self) -> dict[str, Any]:
        return {
            "bundle": self.bundle,
            "signer": self.signer,
            "signed_by": self.signed_by.to_json(),
            "signed_at": _stamp(self.signed_at),
            "time_source": self.time_source,
        }


@dataclass(frozen=True)
class NotCounted:
    """A bundle (or folder entry) that did not count, and why."""

    bundle: str
    error: str  # the error class that says why
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"bundle": self.bundle, "error": self.error, "reason": self.reason}


@dataclass(frozen=True)
class RuleResult:
    """How a threshold rule fared."""

    rule: str
    require: int
    counted: tuple[str, ...]

    @property
    def met(self) -> bool:
        return len(self.counted) >= self.require

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "require": self.require,
            "counted": list(self.counted),
            "met": self.met,
        }


@dataclass(frozen=True)
class TrustReport:
    """Which signers counted, which bundles did not and why, and the rules."""

    counted: tuple[Counted, ...]
    not_counted: tuple[NotCounted, ...]
    rules: tuple[RuleResult, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "counted": [c.to_json() for c in self.counted],
            "not_counted": [n.to_json() for n in self.not_counted],
            "rules": [r.to_json() for r in self.rules],
        }

    def lines(self) -> list[str]:
        """The report as lines of prose."""
        out = [
            f"counted: {c.signer} ({c.signed_by.describe()}), {c.bundle}, signed by "
            f"{_stamp(c.signed_at)} ({c.time_source})"
            for c in self.counted
        ]
        out += [f"not counted: {n.bundle}: {n.reason}" for n in self.not_counted]
        out += [
            f"rule {r.rule}: {len(r.counted)} counted"
            + (f" ({', '.join(r.counted)})" if r.counted else "")
            + ("" if r.met else f", {r.require} required")
            for r in self.rules
        ]
        return out


@dataclass(frozen=True)
class TrustedStatement:
    """A statement enough trusted signers vouch for (not yet compared with
    any file)."""

    signature: Path
    manifest: Manifest
    signed_by: SignedBy  # the first signer that counted
    report: TrustReport


@dataclass(frozen=True)
class _Accepted:
    anchor: Anchor
    label: str
    signed_by: SignedBy
    at: datetime.datetime
    time_source: str


def trusted_statement(
    signature: Path,
    policy: Policy,
    *,
    paths: Sequence[str],
    now: datetime.datetime | None = None,
    max_bundle_bytes: int | None = None,
) -> TrustedStatement:
    """Check the bundle at ``signature`` and its co-signatures against ``policy``.

    ``paths`` (absolute) say where the model is (and, for a load, the file),
    to pick the threshold rules and pins that apply. ``now`` is the
    verification time (default: the clock).

    Raises:
        VerificationError: when no signer counts, the primary's own error
            (as without co-signatures: ``UntrustedSignerError``,
            ``InvalidSignatureError``, ``SignerExpiredError``,
            ``SignerNotYetValidError``, ``SignerRevokedError``, ...), naming
            the co-signatures that did not count either;
            ``ThresholdNotMetError`` when some count but a rule wants more;
            ``ModelSubstitutionError`` when a pin names another model.
    """
    when = now or datetime.datetime.now(datetime.timezone.utc)
    primary = read_bundle(signature, max_bytes=max_bundle_bytes)
    bundles, skipped = _cosignatures(signature, max_bundle_bytes)
    counted: list[Counted] = []
    not_counted: list[NotCounted] = list(skipped)
    principals: dict[str, Counted] = {}
    primary_error: VerificationError | None = None
    for path, bundle in [(signature, primary), *bundles]:
        source = str(path)
        if bundle is not primary and bundle.envelope.payload != primary.envelope.payload:
            not_counted.append(_other_statement(source, bundle, primary, signature))
            continue
        try:
            accepted = _accept(bundle, policy, source, when)
        except VerificationError as e:
            if bundle is primary:
                primary_error = e
            reason = str(e).removeprefix(f"{source}: ")
            not_counted.append(NotCounted(source, type(e).__name__, reason))
            continue
        who = principal(accepted.anchor)
        if who in principals:
            first = principals[who]
            not_counted.append(
                NotCounted(
                    source,
                    "DuplicateSigner",
                    f"signer {accepted.label!r} is already counted ({first.bundle}): a signer "
                    "counts once",
                )
            )
            continue
        entry = Counted(
            source, accepted.label, accepted.signed_by, accepted.at, accepted.time_source
        )
        principals[who] = entry
        counted.append(entry)
    rules = [r for r in policy.thresholds if r.applies(paths)]
    results = tuple(_rule_result(r, policy, principals) for r in rules)
    report = TrustReport(tuple(counted), tuple(not_counted), results)
    if not counted:
        # Nothing vouches for the statement: the primary's own error says
        # why (as before co-signatures existed), the others' are added.
        raise _with_cosignatures(primary_error, signature, report)
    failed = [r for r in results if not r.met]
    if failed:
        raise ThresholdNotMetError(
            _threshold_message(signature, failed, report), report=report.to_json()
        )
    try:
        manifest = Manifest.from_payload(primary.envelope.payload)
    except MalformedBundleError as e:
        raise MalformedBundleError(f"{signature}: {e}") from e
    _check_pins(signature, manifest, policy, paths)
    return TrustedStatement(signature, manifest, counted[0].signed_by, report)


def _cosignatures(
    signature: Path, max_bytes: int | None
) -> tuple[list[tuple[Path, Bundle]], list[NotCounted]]:
    """The co-signature bundles beside ``signature`` (sorted by name), and
    the entries that are not readable bundles."""
    folder = cosignature_dir(signature)
    try:
        names = sorted(os.listdir(folder))
    except FileNotFoundError:
        return [], []
    except NotADirectoryError:
        return [], [NotCounted(str(folder), "MalformedBundleError", "not a folder")]
    except OSError as e:
        return [], [NotCounted(str(folder), "MalformedBundleError", f"cannot list: {e.strerror}")]
    if os.path.islink(folder):
        return [], [NotCounted(str(folder), "MalformedBundleError", "a symbolic link: not read")]
    found: list[tuple[Path, Bundle]] = []
    skipped: list[NotCounted] = []
    for name in names:
        path = folder / name
        if not name.endswith(".sig") or name.startswith("."):
            skipped.append(NotCounted(str(path), "MalformedBundleError", "not a *.sig bundle"))
            continue
        if len(found) == MAX_COSIGNATURES:
            skipped.append(
                NotCounted(str(path), "MalformedBundleError", f"over {MAX_COSIGNATURES}: not read")
            )
            continue
        if os.path.islink(path):
            skipped.append(NotCounted(str(path), "MalformedBundleError", "a symbolic link"))
            continue
        try:
            found.append((path, read_bundle(path, max_bytes=max_bytes)))
        except VerificationError as e:
            skipped.append(NotCounted(str(path), type(e).__name__, str(e)))
    return found, skipped


def _root_of(bundle: Bundle) -> str:
    """The statement's claimed root digest, for a message (unverified)."""
    try:
        digest = json.loads(bundle.envelope.payload)["subject"][0]["digest"]["sha256"]
    except (ValueError, KeyError, IndexError, TypeError):
        return "unreadable"
    return str(digest)[:64]


def _other_statement(source: str, bundle: Bundle, primary: Bundle, signature: Path) -> NotCounted:
    ours, theirs = _root_of(primary), _root_of(bundle)
    if ours == theirs:
        detail = f"same root digest {ours}, but other statement bytes (name, version or settings)"
    else:
        detail = f"root digest {theirs}, {signature.name} signs {ours}"
    return NotCounted(
        source,
        "InvalidSignatureError",
        f"signs another statement than {signature} ({detail}): a co-signature must sign "
        "the primary's statement",
    )


def _accept(bundle: Bundle, policy: Policy, source: str, now: datetime.datetime) -> _Accepted:
    """The anchor that vouches for ``bundle``, when its signature was made,
    and that the anchor's terms allow it; raise otherwise."""
    _, signed_by = check_signature(bundle, policy, source=source, now=now)
    anchor = _anchor_of(signed_by, policy)
    terms = policy.terms_for(anchor)
    label = terms.label if terms is not None else _label(anchor)
    if isinstance(bundle.material, KeyMaterial):
        at, time_source = _key_time(bundle, bundle.material, terms, source, now)
    else:
        at = signed_by.signed_at or now
        time_source = signed_by.time_source or "verification time"
    if at > now + CLOCK_SKEW:
        raise UntrustedSignerError(
            f"{source}: the signature's trusted time ({time_source}) says {_stamp(at)}, later "
            f"than now ({_stamp(now)}): a time from the future is no evidence"
        )
    if terms is not None and terms.restricts:
        _check_terms(terms, at, time_source, source)
    return _Accepted(anchor, label, signed_by, at, time_source)


def _label(anchor: Anchor) -> str:
    from modelsign._policyrules import default_label  # noqa: PLC0415

    return default_label(anchor)


def _anchor_of(signed_by: SignedBy, policy: Policy) -> Anchor:
    """The anchor check_signature verified with (it reports who, not which)."""
    if signed_by.method == "key":
        return next(k for k in policy.keys if k.key_id == signed_by.key_id)
    if signed_by.method == "certificate":
        return next(
            c
            for c in policy.certificates
            if c.identity == signed_by.identity and str(c.ca) == signed_by.trust_root
        )
    from modelsign._backends.sigstore import root_path  # noqa: PLC0415

    return next(
        s
        for s in policy.sigstore
        if s.identity == signed_by.identity
        and s.issuer == signed_by.issuer
        and str(root_path(s.instance, s.trust_root)) == signed_by.trust_root
    )


def _key_time(
    bundle: Bundle,
    material: KeyMaterial,
    terms: AnchorTerms | None,
    source: str,
    now: datetime.datetime,
) -> tuple[datetime.datetime, str]:
    """A key signature's time: the earliest of its RFC 3161 timestamps, all
    verified against the TSA the policy names for the key; else now."""
    if terms is None:
        return signature_time(bundle, material.timestamps, None, (), (), source, now, _NO_TSA)
    return signature_time(
        bundle,
        material.timestamps,
        terms.tsa,
        terms.tsa_roots,
        terms.tsa_others,
        source,
        now,
        _NO_TSA,
    )


def _check_terms(terms: AnchorTerms, at: datetime.datetime, time_source: str, source: str) -> None:
    made = f"the signature was made by {_stamp(at)} ({time_source})"
    who = f"{source}: signed by {terms.label!r}"
    if terms.revoked is True:
        raise SignerRevokedError(
            f"{who}, which the policy revokes for every signature (revoked = true; {made})"
        )
    if isinstance(terms.revoked, datetime.datetime) and at >= terms.revoked:
        untrusted = time_source.startswith("verification time")
        raise SignerRevokedError(
            f"{who}, revoked at {_stamp(terms.revoked)}; {made}, not before the revocation"
            + (" (no trusted timestamp proves it older)" if untrusted else "")
        )
    if terms.not_before is not None and at < terms.not_before:
        raise SignerNotYetValidError(
            f"{who}, trusted from {_stamp(terms.not_before)}; {made}, before that"
        )
    if terms.not_after is not None and at >= terms.not_after:
        raise SignerExpiredError(
            f"{who}, trusted until {_stamp(terms.not_after)} (not_after); {made}, not before that"
        )


def _rule_result(rule: Threshold, policy: Policy, principals: dict[str, Counted]) -> RuleResult:
    if rule.signers:
        named = {t.name: t.anchor for t in policy.anchor_terms if t.name is not None}
        allowed = {principal(named[n]) for n in rule.signers}
    else:
        allowed = {principal(a) for a in policy.anchors}
    return RuleResult(
        rule.describe(),
        rule.require,
        tuple(c.signer for who, c in principals.items() if who in allowed),
    )


def _threshold_message(signature: Path, failed: list[RuleResult], report: TrustReport) -> str:
    rules = "; ".join(
        f"rule {r.rule}: {len(r.counted)} counted"
        + (f" ({', '.join(r.counted)})" if r.counted else "")
        + f", {r.require} required"
        for r in failed
    )
    lines = "\n".join(f"  {line}" for line in report.lines() if not line.startswith("rule "))
    return f"{signature}: not enough trusted signers: {rules}" + (f"\n{lines}" if lines else "")


def _with_cosignatures(
    error: VerificationError | None, signature: Path, report: TrustReport
) -> Error:
    """The primary's error, naming the co-signatures that did not count either."""
    others = [n for n in report.not_counted if n.bundle != str(signature)]
    if error is None:  # cannot happen: the primary is read first, and counts or fails
        reasons = "; ".join(f"{n.bundle}: {n.reason}" for n in report.not_counted)
        return UntrustedSignerError(f"{signature}: no trusted signer counted: {reasons}")
    if not others:
        return error
    listed = "; ".join(f"{n.bundle}: {n.reason}" for n in others)
    try:
        widened = type(error)(f"{error} (and no co-signature counted: {listed})")
    except TypeError:  # an error class with fields of its own: as it is
        return error
    widened.__cause__ = error
    return widened


def _check_pins(signature: Path, manifest: Manifest, policy: Policy, paths: Sequence[str]) -> None:
    for pin in policy.pins:
        if not pin.applies(paths):
            continue
        release = manifest.release
        actual = "no model name" if release is None else f"model {release.name!r}"
        if release is None or release.name != pin.name:
            raise ModelSubstitutionError(
                f"{signature}: signed for {actual}, but the policy pins {pin.path} to model "
                f"{pin.name!r} (expected {pin.name!r}, actual "
                f"{release.name if release else None!r})"
            )
