"""Enforcement as this environment sets it up for the Python processes started
in it: ``MODELSIGN_POLICY``, the policy it names, and the autoload hook.

What ``modelsign status`` shows and ``modelsign doctor`` judges; it reads, it
never installs anything (the ``modelsign`` command itself does not enforce).
"""

from __future__ import annotations

import os
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelsign.errors import Error
from modelsign.policy import ENV_VAR, Anchor, Policy

AUTOLOAD_PTH = "modelsign-autoload.pth"


def autoload_path() -> Path:
    """Where this environment's ``modelsign-autoload.pth`` is (or would be)."""
    return Path(sysconfig.get_paths()["purelib"]) / AUTOLOAD_PTH


@dataclass(frozen=True)
class Enforcement:
    """``MODELSIGN_POLICY`` (``variable``), the policy it names when it loads
    (else ``error``, why not), and the autoload hook that turns it on."""

    variable: str | None
    autoload: Path
    autoload_installed: bool
    policy: Policy | None
    error: Error | None

    @property
    def active(self) -> bool:
        """Whether a Python process started here enforces (the policy loads
        and the autoload hook runs at start-up)."""
        return self.policy is not None and self.autoload_installed


def enforcement() -> Enforcement:
    """Enforcement in this environment, read from ``MODELSIGN_POLICY`` and
    the autoload hook (a policy that cannot be loaded is kept as ``error``)."""
    pth = autoload_path()
    variable = os.environ.get(ENV_VAR) or None
    policy, error = None, None
    if variable is not None:
        try:
            policy = Policy.from_environment()
        except Error as e:
            error = e
    return Enforcement(variable, pth, pth.exists(), policy, error)


def policy_json(policy: Policy) -> dict[str, Any]:
    """A policy as ``status --json`` shows it: anchors, scope, mode, settings."""
    anchors: list[dict[str, Any]] = [
        {"kind": "key", "key_id": k.key_id, "algorithm": k.algorithm, "source": k.source}
        | _terms(policy, k)
        for k in policy.keys
    ]
    anchors += [
        {"kind": "sigstore", "identity": s.identity, "issuer": s.issuer, "root": s.describe()}
        | _terms(policy, s)
        for s in policy.sigstore
    ]
    anchors += [
        {"kind": "certificate", "identity": c.identity, "ca": str(c.ca)} | _terms(policy, c)
        for c in policy.certificates
    ]
    return {
        "source": policy.source,
        "mode": policy.mode,
        "anchors": anchors,
        "bundles": [str(b) for b in policy.bundles],
        "scope": list(policy.scope),
        "discover": policy.discover,
        "pickle_loads": policy.pickle_loads,
        "unverified_pickles": policy.unverified_pickles,
        "allowed_globals": sorted(policy.allowed_globals),
        "thresholds": [t.to_json() for t in policy.thresholds],
        "pins": [p.to_json() for p in policy.pins],
        "rollback_state": str(policy.state) if policy.state is not None else None,
        "provenance": policy.provenance.to_json(),
    }


def _terms(policy: Policy, anchor: Anchor) -> dict[str, Any]:
    terms = policy.terms_for(anchor)
    if terms is None:
        return {"name": None, "not_before": None, "not_after": None, "revoked": False}
    return terms.to_json()
