"""The release-trust parts of a policy: what it says about each anchor (a
name, a validity window, revocation, a TSA for a key), k-of-n thresholds,
model-name pins and the rollback state file.

:class:`~modelsign.policy.Policy` holds these values and calls
:func:`check_rules` when it is built; parsing from TOML (:func:`parse_rules`)
and writing back (:func:`rules_toml`) live here too, so that ``policy.py``
stays the one entry point of trust validation and this module its detail::

    [trust]
    keys = ["release.pub", {path = "ci.pub", name = "ci", not_after = 2027-01-01T00:00:00Z}]
    [[trust.sigstore]]
    name = "release-manager"                 # optional, as are the times below
    identity = "rm@example.com"
    issuer = "https://accounts.google.com"
    revoked = 2026-03-01T00:00:00Z           # or true: refuse every signature
    [[trust.threshold]]
    require = 2
    signers = ["ci", "release-manager"]      # default: every anchor
    scope = ["/srv/models/prod"]             # default: every model
    [[trust.pin]]
    path = "/srv/models/prod/bert"
    name = "acme/bert"
    [rollback]
    state = "/var/lib/modelsign/state.json"
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelsign._release import Release
from modelsign.errors import ConfigError, UsageError
from modelsign.keys import PublicKey

if TYPE_CHECKING:
    from modelsign.policy import Anchor, Policy

__all__ = [
    "ANCHOR_TERM_KEYS",
    "AnchorTerms",
    "Pin",
    "Threshold",
    "check_rules",
    "parse_anchor_terms",
    "parse_rules",
    "principal",
    "rules_toml",
    "within",
]

#: The keys every anchor table may add to what it already has.
ANCHOR_TERM_KEYS = frozenset({"name", "not_before", "not_after", "revoked"})
_KEY_TABLE_KEYS = frozenset({"path", "tsa"}) | ANCHOR_TERM_KEYS


def _utc(value: datetime.datetime, what: str) -> datetime.datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ConfigError(
            f"{what}: {value.isoformat()} has no time zone: write it with one, like "
            "2027-01-01T00:00:00Z (a local time means something else on every machine)"
        )
    return value.astimezone(datetime.timezone.utc)


def _stamp(value: datetime.datetime) -> str:
    return f"{value:%Y-%m-%dT%H:%M:%SZ}"


@dataclass(frozen=True)
class AnchorTerms:
    """What a policy says about one anchor beyond trusting it.

    ``name`` is how threshold rules refer to it. A signature counts for the
    anchor only if it was made in ``[not_before, not_after)`` and, when
    ``revoked`` is a time, before that time; ``revoked=True`` refuses every
    signature. The time a signature was made comes only from trusted
    evidence: a verified RFC 3161 timestamp by the TSA the policy names
    (``tsa``, for a key; a CA's own ``tsa``), or Rekor's integrated time; else
    it is the verification time.
    """

    anchor: Anchor
    name: str | None = None
    not_before: datetime.datetime | None = None
    not_after: datetime.datetime | None = None
    revoked: bool | datetime.datetime = False
    #: Keys only: the TSA roots (PEM) whose timestamps say when a key signed.
    tsa: Path | None = None
    tsa_roots: tuple[Any, ...] = ()
    tsa_others: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        where = f"trust anchor {self.label!r}"
        if self.name is not None and (not isinstance(self.name, str) or not self.name.strip()):
            raise ConfigError(f"{where}: a name must be a non-empty string")
        for attr in ("not_before", "not_after"):
            value = getattr(self, attr)
            if value is not None:
                if not isinstance(value, datetime.datetime):
                    raise ConfigError(f"{where}: {attr} must be a date-time, not {value!r}")
                object.__setattr__(self, attr, _utc(value, f"{where} {attr}"))
        if self.not_before and self.not_after and self.not_before >= self.not_after:
            raise ConfigError(
                f"{where}: not_before {_stamp(self.not_before)} is not before not_after "
                f"{_stamp(self.not_after)}: no signature could count"
            )
        if isinstance(self.revoked, datetime.datetime):
            at = _utc(self.revoked, f"{where} revoked")
            now = datetime.datetime.now(datetime.timezone.utc)
            if at > now:
                raise ConfigError(
                    f"{where}: revoked at {_stamp(at)}, which is in the future (now "
                    f"{_stamp(now)}): to stop trusting it at a later time, set not_after"
                )
            object.__setattr__(self, "revoked", at)
        elif not isinstance(self.revoked, bool):
            raise ConfigError(f"{where}: revoked must be true, false or a date-time")
        if self.tsa is not None:
            if not isinstance(self.anchor, PublicKey):
                raise ConfigError(
                    f"{where}: tsa is for keys (a CA names its TSA in its own table; Sigstore "
                    "TSAs come from the trusted root)"
                )
            if not self.tsa_roots:
                roots, others = load_tsa(self.tsa)
                object.__setattr__(self, "tsa_roots", roots)
                object.__setattr__(self, "tsa_others", others)

    @property
    def label(self) -> str:
        """The name, or what the anchor is."""
        return self.name if self.name else default_label(self.anchor)

    @property
    def restricts(self) -> bool:
        """Whether these terms can refuse a signature the anchor verified."""
        return bool(self.not_before or self.not_after or self.revoked)

    def to_json(self) -> dict[str, Any]:
        """The name, window and revocation (times as ``...Z`` strings)."""
        revoked = self.revoked
        return {
            "name": self.name,
            "not_before": _stamp(self.not_before) if self.not_before else None,
            "not_after": _stamp(self.not_after) if self.not_after else None,
            "revoked": _stamp(revoked) if isinstance(revoked, datetime.datetime) else revoked,
        }

    def describe_window(self) -> str:
        parts = []
        if self.not_before:
            parts.append(f"from {_stamp(self.not_before)}")
        if self.not_after:
            parts.append(f"until {_stamp(self.not_after)}")
        if self.revoked is True:
            parts.append("revoked")
        elif isinstance(self.revoked, datetime.datetime):
            parts.append(f"revoked at {_stamp(self.revoked)}")
        return ", ".join(parts)


def load_tsa(path: Path) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """A TSA file's (roots, others): its self-signed certificates anchor the
    chain; the others only help build one."""
    from modelsign._backends import certificate, timestamp  # noqa: PLC0415
    from modelsign._files import read_small  # noqa: PLC0415

    data = read_small(path, 1024 * 1024, "TSA certificate", ConfigError)
    try:
        certs = certificate.load_pem_all(data)
    except ValueError as e:
        raise ConfigError(f"{path}: not PEM certificates: {e}") from e
    roots, others = timestamp.split_tsa_certificates(certs)
    if not roots:
        raise ConfigError(
            f"{path}: no self-signed root certificate: give the TSA's root "
            "(its own certificate and intermediates may follow)"
        )
    return roots, others


def default_label(anchor: Anchor) -> str:
    if isinstance(anchor, PublicKey):
        return f"key {anchor.key_id[:16]}"
    return f"{anchor.identity}"


def principal(anchor: Anchor) -> str:
    """Who signs with ``anchor``, for counting: a key is its key id; a
    Sigstore or certificate identity is its identity string (whichever CA,
    issuer or root vouches for it), so one person is counted once."""
    if isinstance(anchor, PublicKey):
        return f"key {anchor.key_id}"
    return f"identity {anchor.identity}"


@dataclass(frozen=True)
class Threshold:
    """At least ``require`` distinct signers among ``signers`` (anchor names;
    empty: every anchor) must have signed the statement of every model in
    ``scope`` (absolute folders or files; empty: every model)."""

    require: int
    signers: tuple[str, ...] = ()
    scope: tuple[str, ...] = ()

    def describe(self) -> str:
        among = ", ".join(self.signers) if self.signers else "any trusted signer"
        where = f" for {', '.join(self.scope)}" if self.scope else ""
        return f"{self.require} of {among}{where}"

    def applies(self, paths: Sequence[str]) -> bool:
        return not self.scope or any(within(p, s) for p in paths for s in self.scope)

    def to_json(self) -> dict[str, Any]:
        return {"require": self.require, "signers": list(self.signers), "scope": list(self.scope)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Threshold:
        return cls(data["require"], tuple(data["signers"]), tuple(data["scope"]))


@dataclass(frozen=True)
class Pin:
    """The model at ``path`` (a model folder or file, or a folder of them)
    must be signed as ``name``: a validly signed bundle of another model is
    refused there."""

    path: str
    name: str

    def applies(self, paths: Sequence[str]) -> bool:
        return any(within(p, self.path) for p in paths)

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "name": self.name}


def within(path: str, folder: str) -> bool:
    """Whether absolute ``path`` is ``folder`` or lies under it (by name, or
    once links are resolved)."""
    prefix = folder.rstrip("/") + "/"
    real = os.path.realpath(path)
    return any(p == folder or p.startswith(prefix) for p in (path, real))


# ---------------------------------------------------------------------- checks


def check_rules(policy: Policy) -> None:
    """Refuse a policy whose release-trust rules cannot mean what they say."""
    source = policy.source
    anchors = list(policy.anchors)
    by_name: dict[str, AnchorTerms] = {}
    seen: set[Anchor] = set()
    for terms in policy.anchor_terms:
        if terms.anchor not in anchors:
            raise ConfigError(
                f"{source}: terms for {terms.label!r}, which the policy does not trust"
            )
        if terms.anchor in seen:
            raise ConfigError(
                f"{source}: {default_label(terms.anchor)} is listed twice with its own name or "
                "times: list it once"
            )
        seen.add(terms.anchor)
        if terms.name is not None:
            if terms.name in by_name:
                raise ConfigError(f"{source}: two trust anchors are named {terms.name!r}")
            by_name[terms.name] = terms
    for rule in policy.thresholds:
        where = f"{source}: [[trust.threshold]] {rule.describe()}"
        if type(rule.require) is not int or rule.require < 1:
            raise ConfigError(f"{where}: require must be a whole number of at least 1")
        unknown = [n for n in rule.signers if n not in by_name]
        if unknown:
            raise ConfigError(
                f"{where}: no trust anchor is named {', '.join(map(repr, unknown))} (named: "
                f"{', '.join(map(repr, sorted(by_name))) or 'none'})"
            )
        pool = [by_name[n].anchor for n in rule.signers] if rule.signers else anchors
        distinct = {principal(a) for a in pool}
        if len(distinct) < rule.require:
            raise ConfigError(
                f"{where}: it requires {rule.require} distinct signers but names only "
                f"{len(distinct)} (a key, or an identity, under two names is one signer)"
            )
        _check_folders(rule.scope, f"{where}: scope", must_be_folder=False)
    for pin in policy.pins:
        _check_folders((pin.path,), f"{source}: [[trust.pin]] {pin.name!r}: path", False)
        try:
            Release(pin.name)
        except UsageError as e:
            raise ConfigError(f"{source}: [[trust.pin]] {pin.path}: {e.render('')}") from e


def _check_folders(paths: Iterable[str], where: str, must_be_folder: bool) -> None:
    for path in paths:
        exists = os.path.isdir(path) if must_be_folder else os.path.exists(path)
        if not exists:
            # A rule that names nothing protects nothing: refuse the typo.
            raise ConfigError(
                f"{where} {path!r} does not exist (relative paths are relative to the "
                "policy file): the rule would apply to nothing"
            )


# ---------------------------------------------------------------------- TOML

Resolve = Callable[[str], Path]


def _datetime(table: Mapping[str, Any], key: str, where: str) -> datetime.datetime | None:
    value = table.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        raise ConfigError(
            f"{where} {key} = {value!r} is a string: write a TOML date-time without quotes, "
            "like 2027-01-01T00:00:00Z"
        )
    if not isinstance(value, datetime.datetime):  # a TOML local date or time
        raise ConfigError(
            f"{where} {key} = {value!r} is not a date-time with a time zone, like "
            "2027-01-01T00:00:00Z"
        )
    return _utc(value, f"{where} {key}")


def parse_anchor_terms(
    table: Mapping[str, Any], anchor: Anchor, where: str, resolve: Resolve
) -> AnchorTerms | None:
    """The terms an anchor's table gives (None when it gives none)."""
    if not (set(table) & (ANCHOR_TERM_KEYS | {"tsa"})):
        return None
    name = table.get("name")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise ConfigError(f"{where} name must be a non-empty string")
    revoked = table.get("revoked", False)
    if not isinstance(revoked, bool):
        revoked = _datetime(table, "revoked", where)
    tsa = table.get("tsa") if isinstance(anchor, PublicKey) else None
    if tsa is not None and (not isinstance(tsa, str) or not tsa):
        raise ConfigError(f"{where} tsa must be a file path")
    not_before, not_after = (
        _datetime(table, "not_before", where),
        _datetime(table, "not_after", where),
    )
    try:
        return AnchorTerms(
            anchor,
            name=name,
            not_before=not_before,
            not_after=not_after,
            revoked=revoked,
            tsa=resolve(tsa) if tsa else None,
        )
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from e


def parse_key_entries(
    entries: object, source: str, resolve: Resolve, load: Callable[[Path], PublicKey]
) -> tuple[list[PublicKey], list[AnchorTerms]]:
    """``[trust] keys``: each entry a key file's path, or a table with
    ``path`` and the anchor terms (``[[trust.keys]]``, or inline)."""
    if not isinstance(entries, list):
        raise ConfigError(f"{source}: [trust] keys must be a list of key files or tables")
    keys: list[PublicKey] = []
    terms: list[AnchorTerms] = []
    for entry in entries:
        if isinstance(entry, str) and entry:
            keys.append(load(resolve(entry)))
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            raise ConfigError(
                f"{source}: [trust] keys: each entry is a key file's path, or a table with a "
                f"path; got {entry!r}"
            )
        unknown = sorted(set(entry) - _KEY_TABLE_KEYS)
        if unknown:
            raise ConfigError(
                f"{source}: unknown key(s) {', '.join(map(repr, unknown))} in [[trust.keys]]"
            )
        key = load(resolve(entry["path"]))
        keys.append(key)
        where = f"{source}: [[trust.keys]] {entry['path']}"
        parsed = parse_anchor_terms(entry, key, where, resolve)
        if parsed is not None:
            terms.append(parsed)
    return keys, terms


def parse_rules(
    trust: Mapping[str, Any], rollback: object, source: str, resolve: Resolve
) -> tuple[tuple[Threshold, ...], tuple[Pin, ...], Path | None]:
    """``[[trust.threshold]]``, ``[[trust.pin]]`` and ``[rollback]``."""
    thresholds = []
    for t in _tables(trust, "threshold", {"require", "signers", "scope"}, source):
        where = f"{source}: [[trust.threshold]]"
        require = t.get("require")
        if type(require) is not int:
            raise ConfigError(f"{where} needs require = a whole number (how many signers)")
        signers = t.get("signers", [])
        if not isinstance(signers, list) or not all(isinstance(n, str) and n for n in signers):
            raise ConfigError(f"{where} signers must be a list of anchor names")
        thresholds.append(
            Threshold(require, tuple(signers), _absolute(t.get("scope", []), where, resolve))
        )
    pins = []
    for t in _tables(trust, "pin", {"path", "name"}, source):
        where = f"{source}: [[trust.pin]]"
        path, name = t.get("path"), t.get("name")
        if not isinstance(path, str) or not path or not isinstance(name, str):
            raise ConfigError(f"{where} needs a path and a model name")
        pins.append(Pin(os.path.abspath(resolve(path)), name))
    state = None
    if rollback is not None:
        if not isinstance(rollback, dict):
            raise ConfigError(f"{source}: [rollback] must be a table")
        unknown = sorted(set(rollback) - {"state"})
        if unknown:
            raise ConfigError(
                f"{source}: unknown key(s) {', '.join(map(repr, unknown))} in [rollback]"
            )
        value = rollback.get("state")
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{source}: [rollback] needs state = the state file's path")
        state = Path(os.path.abspath(resolve(value)))
    return tuple(thresholds), tuple(pins), state


def _tables(
    trust: Mapping[str, Any], key: str, allowed: set[str], source: str
) -> list[Mapping[str, Any]]:
    value = trust.get(key, [])
    where = f"[[trust.{key}]]"
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise ConfigError(f"{source}: {where} must be an array of tables")
    for table in value:
        unknown = sorted(set(table) - allowed)
        if unknown:
            raise ConfigError(
                f"{source}: unknown key(s) {', '.join(map(repr, unknown))} in {where}"
            )
    return value


def _absolute(value: object, where: str, resolve: Resolve) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where} scope must be a list of paths")
    return tuple(os.path.abspath(resolve(v)) for v in value)


def _string(value: object) -> str:
    return json.dumps(str(value), ensure_ascii=False)  # a TOML basic string


def terms_toml(terms: AnchorTerms | None) -> list[str]:
    """``key = value`` items for an anchor's terms (TOML)."""
    if terms is None:
        return []
    items = []
    if terms.name is not None:
        items.append(f"name = {_string(terms.name)}")
    for attr in ("not_before", "not_after"):
        value = getattr(terms, attr)
        if value is not None:
            items.append(f"{attr} = {value.isoformat()}")
    if isinstance(terms.revoked, datetime.datetime):
        items.append(f"revoked = {terms.revoked.isoformat()}")
    elif terms.revoked:
        items.append("revoked = true")
    if terms.tsa is not None:
        items.append(f"tsa = {_string(terms.tsa.absolute())}")
    return items


def rules_toml(policy: Policy) -> list[str]:
    """The thresholds, pins and rollback state as TOML lines (absolute paths)."""
    lines = []
    for rule in policy.thresholds:
        lines += [
            "[[trust.threshold]]",
            f"require = {rule.require}",
            f"signers = [{', '.join(_string(n) for n in rule.signers)}]",
            f"scope = [{', '.join(_string(s) for s in rule.scope)}]",
        ]
    for pin in policy.pins:
        lines += ["[[trust.pin]]", f"path = {_string(pin.path)}", f"name = {_string(pin.name)}"]
    if policy.state is not None:
        lines += ["[rollback]", f"state = {_string(policy.state)}"]
    return lines
