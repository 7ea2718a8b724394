"""What doctor reports: findings, each with a severity, what it means and how
to fix it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

#: "high": a model load can run code or enforcement is not what it seems
#: (doctor exits 1); "medium": a weakness to fix; "low": worth knowing.
Severity: TypeAlias = Literal["high", "medium", "low"]
SEVERITIES: tuple[Severity, ...] = ("high", "medium", "low")


@dataclass(frozen=True)
class Finding:
    """One thing doctor found.

    ``code`` says which check found it (stable, for scripts: ``advisory``,
    ``torch-force-no-weights-only``, ``private-key-exposed``, ...);
    ``subject`` what it is about (a package and version, a file, a variable);
    ``advisory`` the advisory's entry when a known flaw was found.
    """

    code: str
    severity: Severity
    title: str
    meaning: str
    fix: str
    subject: str | None = None
    advisory: dict[str, Any] | None = None
    origin: Literal["modelsign", "pip-audit"] = "modelsign"

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "title": self.title,
            "meaning": self.meaning,
            "fix": self.fix,
            "subject": self.subject,
            "advisory": self.advisory,
            "origin": self.origin,
        }


def ordered(findings: list[Finding]) -> tuple[Finding, ...]:
    """Most severe first; otherwise in the order the checks found them."""
    return tuple(sorted(findings, key=lambda f: SEVERITIES.index(f.severity)))
