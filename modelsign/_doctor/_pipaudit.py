"""Optional: pip-audit's findings for this environment, merged into doctor's.

pip-audit is not a dependency of modelsign: ``doctor --pip-audit`` runs it as
a separate program when it is installed (``pip-audit`` on PATH, or the
``pip_audit`` module here), asks for JSON, and restricts it to the
distributions on this interpreter's ``sys.path``, the ones doctor checks.
Unlike the rest of doctor, pip-audit asks a vulnerability service over the
network. It gives no severity: its findings are rated medium.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from typing import Any

from modelsign._doctor._findings import Finding
from modelsign.errors import ConfigError

#: A long wall-clock bound: pip-audit queries a service for every distribution.
TIMEOUT = 900


def command() -> list[str]:
    """How to run pip-audit here; ConfigError when it is not installed."""
    program = shutil.which("pip-audit")
    if program is not None:
        base = [program]
    elif importlib.util.find_spec("pip_audit") is not None:
        base = [sys.executable, "-m", "pip_audit"]
    else:
        raise ConfigError(
            "--pip-audit: pip-audit is not installed (pip install pip-audit), or leave "
            "--pip-audit out: doctor's own advisory table needs no network"
        )
    paths = [p for p in dict.fromkeys(sys.path) if p and os.path.isdir(p)]
    return [
        *base,
        "--format",
        "json",
        "--progress-spinner",
        "off",
        *(arg for p in paths for arg in ("--path", p)),
    ]


def run(argv: list[str]) -> dict[str, Any]:
    """pip-audit's JSON report (it exits 1 when it finds something: not an error)."""
    try:
        result = subprocess.run(  # noqa: S603 - the program found above, our own arguments
            argv, capture_output=True, text=True, timeout=TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ConfigError(f"--pip-audit: cannot run {argv[0]}: {e}") from e
    try:
        doc = json.loads(result.stdout)
    except json.JSONDecodeError:
        doc = None
    if not isinstance(doc, dict) or not isinstance(doc.get("dependencies"), list):
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConfigError(
            f"--pip-audit: {argv[0]} exited with {result.returncode} without a JSON report: {last}"
        )
    return doc


def _strings(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def findings(doc: dict[str, Any], known: Iterable[str]) -> list[Finding]:
    """A finding for each vulnerability pip-audit reports that doctor's own
    table has not reported already (same id or alias)."""
    seen = set(known)
    out: list[Finding] = []
    for dep in doc["dependencies"]:
        if not isinstance(dep, dict) or not isinstance(dep.get("vulns"), list):
            continue  # skipped by pip-audit (skip_reason), or not a dependency entry
        name, version = str(dep.get("name", "?")), str(dep.get("version", "?"))
        for vuln in dep["vulns"]:
            if not isinstance(vuln, dict) or not isinstance(vuln.get("id"), str):
                continue
            ident, aliases = vuln["id"], _strings(vuln.get("aliases"))
            if seen & {ident, *aliases}:
                continue
            seen |= {ident, *aliases}
            fixes = _strings(vuln.get("fix_versions"))
            description = str(vuln.get("description") or "").strip()
            if len(description) > 600:
                description = description[:600].rstrip() + "..."
            out.append(
                Finding(
                    "pip-audit",
                    "medium",
                    f"{name} {version} has {ident} (reported by pip-audit)",
                    description or f"pip-audit reports {ident}; read the advisory.",
                    f"Upgrade {name} to {' or '.join(fixes)} or later."
                    if fixes
                    else "No fixed release is listed: read the advisory for a workaround.",
                    f"{name}=={version}",
                    {
                        "id": ident,
                        "aliases": aliases,
                        "package": name,
                        "fix_versions": fixes,
                        "description": description or None,
                    },
                    origin="pip-audit",
                )
            )
    return out
