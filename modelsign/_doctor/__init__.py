"""``modelsign doctor``: checks the environment models are loaded in.

Three families of checks, each finding with a severity, what it means and
how to fix it (:class:`Finding`):

* the loader libraries installed (torch, transformers, numpy, joblib,
  Lightning...) against the advisory table shipped with modelsign
  (``advisories.toml``; versions read from distribution metadata, compared
  with ``packaging``; nothing is imported, nothing goes to the network), and
  optionally pip-audit's findings;
* loader settings: torch's ``weights_only`` switches and default, and
  whether modelsign enforcement is on here, under which policy and mode;
* keys and policy: private keys others can read, policy files others can
  change, a policy without a trust anchor, warn mode, a scope that misses
  the model folders.

The checks read the interpreter that runs them: run doctor with the Python
(and the environment variables) that loads the models.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelsign._doctor._advisories import Advisory, Table, advisory_findings, shipped_table
from modelsign._doctor._findings import SEVERITIES, Finding, Severity, ordered
from modelsign._doctor._loading import (
    LoaderSettings,
    enforcement_findings,
    mode_findings,
    policy_error_finding,
    settings_findings,
)
from modelsign._doctor._trust import (
    Checked,
    policy_file_findings,
    private_key_findings,
    scope_findings,
)
from modelsign._doctor._versions import Installed, installed
from modelsign._environment import enforcement
from modelsign.errors import ConfigError, Error
from modelsign.policy import Policy

__all__ = ["LOADERS", "Advisory", "Finding", "Options", "Report", "Severity", "Table", "diagnose"]

#: The distributions whose versions doctor reports, beyond the table's.
LOADERS = (
    "torch",
    "transformers",
    "safetensors",
    "numpy",
    "joblib",
    "lightning",
    "pytorch-lightning",
)


@dataclass(frozen=True)
class Options:
    """What to check beyond the environment itself.

    ``policy``: the policy to judge (default: ``MODELSIGN_POLICY``'s);
    ``models``: folders (or files) models are loaded from, which its scope
    must cover; ``keys``: private key files, or folders holding them;
    ``strict``: this is production (warn mode and enforcement off are high);
    ``pip_audit``: merge pip-audit's findings (it must be installed).
    """

    policy: Path | None = None
    models: tuple[Path, ...] = ()
    keys: tuple[Path, ...] = ()
    strict: bool = False
    pip_audit: bool = False


@dataclass(frozen=True)
class Report:
    """Everything doctor found, most severe first, and what it looked at."""

    findings: tuple[Finding, ...]
    packages: tuple[Installed, ...]
    settings: LoaderSettings
    table: Table
    strict: bool
    policy: str | None
    checked: Checked = field(default_factory=Checked)
    pip_audit: tuple[str, ...] | None = None

    @property
    def healthy(self) -> bool:
        """No high-severity finding (the command's exit code is 0)."""
        return not any(f.severity == "high" for f in self.findings)

    def counts(self) -> dict[str, int]:
        return {s: sum(f.severity == s for f in self.findings) for s in SEVERITIES}

    def to_json(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "strict": self.strict,
            "counts": self.counts(),
            "findings": [f.to_json() for f in self.findings],
            "packages": [p.to_json() for p in self.packages],
            "loader_settings": self.settings.to_json(),
            "policy": self.policy,
            "checked": {
                "advisory_table": {
                    "reviewed": self.table.reviewed,
                    "advisories": len(self.table.advisories),
                },
                "private_keys": list(self.checked.private_keys),
                "policy_files": list(self.checked.policy_files),
                "pip_audit": None if self.pip_audit is None else list(self.pip_audit),
            },
        }


def _existing(paths: tuple[Path, ...], flag: str) -> None:
    for path in paths:
        if not os.path.lexists(path):
            raise ConfigError(f"{flag} {path}: no such file or folder")


def diagnose(options: Options, *, environ: Mapping[str, str] | None = None) -> Report:
    """Run every check.

    Args:
        options: what to check beyond the environment (:class:`Options`).
        environ: the environment variables the loading process sees
            (default: this process's).

    Returns:
        The :class:`Report`: findings most severe first.

    Raises:
        ConfigError: a path given does not exist, or ``pip_audit`` was asked
            for and pip-audit is not installed or fails.
    """
    from modelsign._doctor import _pipaudit  # noqa: PLC0415

    env = os.environ if environ is None else environ
    _existing(options.models, "--models")
    _existing(options.keys, "--keys")
    if options.policy is not None:
        _existing((options.policy,), "--policy")
    audit = _pipaudit.command() if options.pip_audit else None

    table = shipped_table()
    names = dict.fromkeys((*LOADERS, *table.packages))
    packages = tuple(p for p in map(installed, names) if p is not None)
    by_name = {p.name: p for p in packages}
    settings = LoaderSettings.of(env, by_name.get("torch"))
    findings = advisory_findings(table, packages)
    findings += settings_findings(settings)
    state = enforcement()
    findings += enforcement_findings(state, strict=options.strict)

    policy: Policy | None = state.policy
    source = None if state.variable is None else state.variable
    if options.policy is not None:
        source = str(options.policy)
        try:
            policy = Policy.load(options.policy)
        except Error as e:
            policy = None
            findings.append(policy_error_finding(source, e))
    checked = Checked()
    if policy is not None:
        findings += mode_findings(policy, strict=options.strict)
        findings += scope_findings(policy, options.models)
    policy_file = None if source is None else Path(source)
    findings += policy_file_findings(policy, policy_file, checked)
    findings += private_key_findings(options.keys, policy, checked)

    if audit is not None:
        known = [
            i for f in findings if f.advisory for i in (f.advisory["id"], *f.advisory["aliases"])
        ]
        findings += _pipaudit.findings(_pipaudit.run(audit), known)
    return Report(
        ordered(findings),
        packages,
        settings,
        table,
        options.strict,
        None if policy is None else policy.source,
        checked,
        None if audit is None else tuple(audit),
    )
