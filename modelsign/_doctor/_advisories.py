"""The advisory table shipped with modelsign (``advisories.toml``): known
flaws of the libraries that load models, checked against what is installed.

The table is package data, read at run time without any network access; it
is validated as it is read, so a malformed entry is a bug that fails loudly
rather than a check that silently passes.
"""

from __future__ import annotations

import datetime
import importlib.resources
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import Version

from modelsign._doctor._findings import SEVERITIES, Finding, Severity
from modelsign._doctor._versions import Installed, in_range, parse_range, parse_version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

TABLE_FILE = "advisories.toml"

#: CVE-2025-32434, GHSA-53q9-r3pm-6pq6 (GitHub's alphabet), PYSEC-2026-139.
ADVISORY_ID = re.compile(
    r"^(?:CVE-\d{4}-\d{4,}|GHSA(?:-[23456789cfghjmpqrvwx]{4}){3}|PYSEC-\d{4}-\d+)$"
)
_REQUIRED = frozenset({"id", "package", "affected", "severity", "summary", "source"})
_OPTIONAL = frozenset({"aliases", "fixed", "mitigation", "note"})


@dataclass(frozen=True)
class Advisory:
    """One known flaw: releases of ``package`` in ``affected`` have it;
    ``fixed`` is the first release without it (None: no fix is known)."""

    id: str
    package: str
    affected: str
    fixed: str | None
    severity: Severity
    summary: str
    source: str
    aliases: tuple[str, ...] = ()
    mitigation: str | None = None
    note: str | None = None

    @property
    def ids(self) -> frozenset[str]:
        """The id and every alias."""
        return frozenset((self.id, *self.aliases))

    def affects(self, version: Version) -> bool:
        return in_range(version, parse_range(self.affected))

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "aliases": list(self.aliases),
            "package": self.package,
            "affected": self.affected,
            "fixed": self.fixed,
            "severity": self.severity,
            "summary": self.summary,
            "source": self.source,
            "mitigation": self.mitigation,
            "note": self.note,
        }


@dataclass(frozen=True)
class Table:
    """The advisories, and the day they were last reviewed against their sources."""

    reviewed: str
    advisories: tuple[Advisory, ...]

    @property
    def packages(self) -> tuple[str, ...]:
        return tuple(sorted({a.package for a in self.advisories}))


def _text(entry: Mapping[str, Any], key: str, where: str) -> str:
    value = entry[key]
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}: {key} must be a non-empty string")
    return value


def _advisory(entry: Mapping[str, Any], where: str) -> Advisory:
    keys = set(entry)
    if not keys >= _REQUIRED or not keys <= _REQUIRED | _OPTIONAL:
        missing, unknown = sorted(_REQUIRED - keys), sorted(keys - _REQUIRED - _OPTIONAL)
        raise ValueError(f"{where}: missing keys {missing}, unknown keys {unknown}")
    ident = _text(entry, "id", where)
    where = f"{where} ({ident})"
    aliases = entry.get("aliases", [])
    if not isinstance(aliases, list):
        raise ValueError(f"{where}: aliases must be a list")
    for name in (ident, *aliases):
        if not isinstance(name, str) or not ADVISORY_ID.match(name):
            raise ValueError(f"{where}: {name!r} is not a CVE, GHSA or PYSEC id")
    package = _text(entry, "package", where)
    if package != canonicalize_name(package):
        raise ValueError(f"{where}: package {package!r} is not a normalized name")
    affected = _text(entry, "affected", where)
    try:
        versions = parse_range(affected)  # "every release" is written ">=0", never ""
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from e
    fixed = entry.get("fixed")
    mitigation = entry.get("mitigation")
    if fixed is not None:
        version = parse_version(fixed) if isinstance(fixed, str) else None
        if version is None:
            raise ValueError(f"{where}: fixed {fixed!r} is not a PEP 440 version")
        if in_range(version, versions):
            raise ValueError(f"{where}: the fixed release {fixed} is in the affected range")
    elif mitigation is None:
        raise ValueError(f"{where}: an unfixed advisory needs a mitigation")
    severity = entry["severity"]
    if severity not in SEVERITIES:
        raise ValueError(f"{where}: severity {severity!r} is not one of {SEVERITIES}")
    source = _text(entry, "source", where)
    if not source.startswith("https://"):
        raise ValueError(f"{where}: source {source!r} is not an https URL")
    for key in ("mitigation", "note"):
        if key in entry:
            _text(entry, key, where)
    return Advisory(
        id=ident,
        package=package,
        affected=affected,
        fixed=fixed,
        severity=severity,
        summary=_text(entry, "summary", where),
        source=source,
        aliases=tuple(aliases),
        mitigation=mitigation,
        note=entry.get("note"),
    )


def parse_table(data: bytes, where: str = TABLE_FILE) -> Table:
    """The advisory table in ``data``; ValueError naming the entry and the
    problem when it is not well-formed."""
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{where}: not valid TOML: {e}") from e
    if set(doc) != {"reviewed", "advisory"}:
        raise ValueError(f"{where}: the table has keys {sorted(doc)}, not reviewed and advisory")
    reviewed = doc["reviewed"]
    try:
        datetime.date.fromisoformat(reviewed)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: reviewed {reviewed!r} is not a YYYY-MM-DD date") from e
    entries = doc["advisory"]
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{where}: no [[advisory]] entries")
    advisories = tuple(_advisory(e, f"{where} entry {i + 1}") for i, e in enumerate(entries))
    seen: set[tuple[str, str]] = set()
    for a in advisories:
        if (a.id, a.package) in seen:
            raise ValueError(f"{where}: {a.id} is listed twice for {a.package}")
        seen.add((a.id, a.package))
    return Table(reviewed, advisories)


@cache
def shipped_table() -> Table:
    """The table installed with modelsign."""
    data = importlib.resources.files("modelsign._doctor").joinpath(TABLE_FILE).read_bytes()
    return parse_table(data)


def advisory_findings(table: Table, packages: Iterable[Installed]) -> list[Finding]:
    """A finding for each advisory that applies to an installed version."""
    findings: list[Finding] = []
    for package in packages:
        entries = [a for a in table.advisories if a.package == package.name]
        if not entries:
            continue
        version = parse_version(package.version)
        subject = f"{package.name}=={package.version}"
        if version is None:
            findings.append(
                Finding(
                    "unparsable-version",
                    "medium",
                    f"{package.name} {package.version!r} is not a PEP 440 version",
                    "doctor cannot tell which of the known flaws of "
                    f"{package.name} this build has (installed at {package.location})",
                    f"Install a released {package.name} from the package index.",
                    subject,
                )
            )
            continue
        for a in entries:
            if not a.affects(version):
                continue
            if a.fixed is None:
                meaning = f"{a.summary} No release fixes it (table reviewed {table.reviewed})."
                fix = a.mitigation or ""
            else:
                meaning = a.summary
                fix = (
                    f"Upgrade {a.package} to {a.fixed} or later: "
                    f"pip install '{a.package}>={a.fixed}'."
                )
                if a.mitigation:
                    fix = f"{fix} Meanwhile: {a.mitigation}"
            status = "unfixed" if a.fixed is None else f"fixed in {a.fixed}"
            findings.append(
                Finding(
                    "advisory",
                    a.severity,
                    f"{a.package} {package.version} has {a.id} ({status})",
                    meaning,
                    fix,
                    subject,
                    a.to_json(),
                )
            )
    return findings
