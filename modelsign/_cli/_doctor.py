"""``modelsign doctor``: the loading environment's health, as findings."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelsign._cli._app import EXIT_REJECTED, app, errors, print_json, shown

if TYPE_CHECKING:
    from modelsign._doctor import Finding, Report


@app.command()
def doctor(
    policy: Annotated[
        Path | None,
        typer.Option(help="The policy to check (default: the one MODELSIGN_POLICY names)."),
    ] = None,
    models: Annotated[
        list[Path] | None,
        typer.Option(
            help="A folder models are loaded from, which the policy's scope must cover "
            "(repeatable).",
            metavar="DIR",
        ),
    ] = None,
    keys: Annotated[
        list[Path] | None,
        typer.Option(
            "--keys",
            "--key",
            help="A private key file, or a folder of keys, whose permissions to check "
            "(repeatable).",
            metavar="PATH",
        ),
    ] = None,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict", help="Production: warn mode and enforcement off are high severity."
        ),
    ] = False,
    pip_audit: Annotated[
        bool,
        typer.Option(
            "--pip-audit", help="Also run pip-audit (installed separately; uses the network)."
        ),
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print nothing unless a finding is high.")
    ] = False,
) -> None:
    """Check the environment models are loaded in: loader libraries against
    known flaws, torch's weights_only settings, enforcement, keys and policy.

    Exits 1 when a finding is high severity, 0 otherwise (2: bad input). Run
    it with the Python and environment variables that load the models (for
    example under `modelsign run --policy P -- modelsign doctor`).
    """
    from modelsign._cli._enforce import status_document  # noqa: PLC0415
    from modelsign._doctor import Options, diagnose  # noqa: PLC0415

    with errors(json_output):
        options = Options(policy, tuple(models or ()), tuple(keys or ()), strict, pip_audit)
        report = diagnose(options)
        if json_output:
            print_json({**report.to_json(), "enforcement": status_document()})
        elif quiet:
            for finding in report.findings:
                if finding.severity == "high":
                    typer.echo(f"HIGH: {shown(finding.title)}", err=True)
        else:
            _print(report, status_document())
    if not report.healthy:
        raise typer.Exit(EXIT_REJECTED)


def _print_finding(finding: Finding) -> None:
    typer.echo(f"{finding.severity.upper():<7}{shown(finding.title)}")
    typer.echo(f"       means: {shown(finding.meaning)}")
    typer.echo(f"       fix:   {shown(finding.fix)}")
    if finding.advisory is not None and "source" in finding.advisory:
        typer.echo(f"       see:   {finding.advisory['source']}")
        if finding.advisory.get("note"):
            typer.echo(f"       note:  {finding.advisory['note']}")


def _print(report: Report, status: dict[str, object]) -> None:
    counts = report.counts()
    summary = ", ".join(f"{n} {s}" for s, n in counts.items())
    verdict = "OK" if report.healthy else "HIGH-SEVERITY FINDINGS"
    strict = " (strict)" if report.strict else ""
    typer.echo(f"modelsign doctor{strict}: {verdict}: {summary}")
    for finding in report.findings:
        typer.echo("")
        _print_finding(finding)
    typer.echo("")
    installed = ", ".join(f"{p.name} {p.version}" for p in report.packages) or "none"
    typer.echo(f"loader libraries: {shown(installed)}")
    settings = report.settings.to_json()
    default = settings["torch_default_weights_only"]
    if default is not None:
        typer.echo(f"torch.load default: weights_only={default}")
    for name in ("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"):
        value = settings[name]
        typer.echo(f"{name}: {'not set' if value is None else shown(value)}")
    policy = status["policy"]
    if status["active"] and isinstance(policy, dict):
        typer.echo(f"enforcement: ACTIVE (policy {policy['source']}, mode {policy['mode']})")
    else:
        typer.echo("enforcement: off in this environment")
    if report.policy is not None:
        typer.echo(f"policy checked: {shown(report.policy)}")
    loaders = status["loaders"]
    if isinstance(loaders, list):
        families = sorted({str(m).split(".")[0].lstrip("_") for m in loaders})
        typer.echo(f"loaders enforcement covers: {', '.join(families)}")
    table = report.table
    typer.echo(f"advisory table: {len(table.advisories)} advisories, reviewed {table.reviewed}")
    if report.checked.private_keys:
        typer.echo(f"private keys checked: {shown(', '.join(report.checked.private_keys))}")
