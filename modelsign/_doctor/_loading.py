"""Loader settings: torch's ``weights_only`` switches and default, and
whether modelsign enforcement is on in this environment, under which policy
and mode."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelsign._doctor._findings import Finding
from modelsign._doctor._versions import Installed, parse_version, torch_defaults_to_weights_only
from modelsign._environment import Enforcement
from modelsign.errors import Error, NoTrustAnchorError
from modelsign.policy import ENV_VAR, Policy

FORCE = "TORCH_FORCE_WEIGHTS_ONLY_LOAD"
FORCE_NO = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"
#: The values torch.load reads as "set" (torch/serialization.py), case-insensitively.
_TORCH_TRUE = ("1", "y", "yes", "true")


@dataclass(frozen=True)
class LoaderSettings:
    """torch's switches as this environment sets them, and its default."""

    force_weights_only: str | None
    force_no_weights_only: str | None
    torch: Installed | None

    @classmethod
    def of(cls, environ: Mapping[str, str], torch: Installed | None) -> LoaderSettings:
        return cls(environ.get(FORCE), environ.get(FORCE_NO), torch)

    @staticmethod
    def on(value: str | None) -> bool:
        return value is not None and value.lower() in _TORCH_TRUE

    @property
    def default_weights_only(self) -> bool | None:
        """torch.load's weights_only when the caller does not pass it (by
        torch's version; None without torch or with a version we cannot read)."""
        version = None if self.torch is None else parse_version(self.torch.version)
        return None if version is None else torch_defaults_to_weights_only(version)

    def to_json(self) -> dict[str, Any]:
        return {
            FORCE: self.force_weights_only,
            FORCE_NO: self.force_no_weights_only,
            "torch": None if self.torch is None else self.torch.version,
            "torch_default_weights_only": self.default_weights_only,
        }


def settings_findings(settings: LoaderSettings) -> list[Finding]:
    findings: list[Finding] = []
    force, force_no = (
        settings.on(settings.force_weights_only),
        settings.on(settings.force_no_weights_only),
    )
    if force and force_no:
        findings.append(
            Finding(
                "torch-force-both",
                "medium",
                f"both {FORCE} and {FORCE_NO} are set",
                "torch refuses the combination: every torch.load in this environment raises "
                "RuntimeError",
                f"Unset {FORCE_NO}: keep {FORCE}=1.",
                f"{FORCE}, {FORCE_NO}",
            )
        )
    elif force_no:
        findings.append(
            Finding(
                "torch-force-no-weights-only",
                "high",
                f"{FORCE_NO}={settings.force_no_weights_only} turns torch's safe default off",
                "every torch.load that does not pass weights_only itself unpickles with the full "
                "pickle module: a crafted checkpoint runs code as it loads",
                f"Unset {FORCE_NO}; load old checkpoints that need full unpickling with an "
                "explicit weights_only=False, after they verify.",
                FORCE_NO,
            )
        )
    for name, value in (
        (FORCE, settings.force_weights_only),
        (FORCE_NO, settings.force_no_weights_only),
    ):
        if (
            value is not None
            and not settings.on(value)
            and value.lower() not in ("", "0", "n", "no", "false")
        ):
            findings.append(
                Finding(
                    "torch-switch-ignored",
                    "low",
                    f"{name}={value!r} is not a value torch reads as set",
                    f"torch takes only {', '.join(_TORCH_TRUE)} (any case) as set: this "
                    "setting has no effect",
                    f"Write {name}=1 to set it, or unset it.",
                    name,
                )
            )
    if settings.default_weights_only is False and settings.torch is not None:
        findings.append(
            Finding(
                "torch-default-unpickles",
                "medium",
                f"torch {settings.torch.version} loads with weights_only=False by default",
                "before torch 2.6, torch.load without weights_only=True unpickles anything in "
                "the file: a crafted checkpoint runs code",
                f"Upgrade torch to 2.6 or later, or set {FORCE}=1 (torch then loads tensors "
                "and plain data only).",
                f"torch=={settings.torch.version}",
            )
        )
    return findings


def policy_error_finding(source: str, error: Error) -> Finding:
    """A policy that cannot be used: no trust anchor, or it does not load."""
    if isinstance(error, NoTrustAnchorError):
        return Finding(
            "policy-no-anchor",
            "high",
            f"the policy {source} names no trust anchor",
            "a policy without a trusted key, Sigstore identity or CA is refused (trust is never "
            "implicit): every Python process it is enforced in stops with exit code 2",
            "Add a [trust] keys entry (a public key file), a [[trust.sigstore]] identity or a "
            "[[trust.certificate]] CA.",
            source,
        )
    return Finding(
        "policy-unloadable",
        "high",
        f"the policy {source} cannot be loaded",
        f"{error.diagnostics()}; every Python process it is enforced in stops with exit code 2",
        "Fix the policy (modelsign status shows it as it loads), or point "
        f"{ENV_VAR} at one that loads.",
        source,
    )


def enforcement_findings(state: Enforcement, *, strict: bool) -> list[Finding]:
    findings: list[Finding] = []
    if state.error is not None:
        findings.append(policy_error_finding(f"{ENV_VAR}={state.variable}", state.error))
    if not state.autoload_installed:
        findings.append(
            Finding(
                "autoload-missing",
                "high" if state.variable is not None else "medium",
                f"the autoload hook is not installed ({state.autoload})",
                f"{ENV_VAR} has no effect on the Python processes of this environment "
                "(and `modelsign run` refuses to start a program in it)"
                + (": enforcement is NOT active although it is set" if state.variable else ""),
                "Reinstall modelsign in this environment (pip install modelsign).",
                str(state.autoload),
            )
        )
    if state.variable is None:
        findings.append(
            Finding(
                "enforcement-off",
                "high" if strict else "medium",
                f"enforcement is off ({ENV_VAR} is not set)",
                "torch.load, pickle, numpy.load, joblib.load, safetensors and from_pretrained "
                "load files whether or not they are signed",
                f"Start programs with `modelsign run --policy POLICY -- ...`, or set "
                f"{ENV_VAR}=/path/to/policy.toml for this environment.",
                ENV_VAR,
            )
        )
    return findings


def mode_findings(policy: Policy, *, strict: bool) -> list[Finding]:
    if policy.mode != "warn":
        return []
    return [
        Finding(
            "warn-mode",
            "high" if strict else "medium",
            f"the policy {policy.source} is in warn mode",
            "a file that does not verify is logged and loaded anyway: warn mode is for "
            "rolling enforcement out, not for production",
            'Set mode = "enforce" in [enforce] once the logs show no refusals.',
            policy.source,
        )
    ]
