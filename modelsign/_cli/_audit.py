"""``modelsign audit``: every model of a store, under one policy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelsign._cli._app import EXIT_REJECTED, app, errors, not_a_folder, shown
from modelsign.errors import UsageError

if TYPE_CHECKING:
    from modelsign._audit import AuditRecord, AuditReport

#: Widest a column of the text table gets (longer values are cut with "…").
WIDTHS = {"model": 44, "version": 14, "signers": 48, "threshold": 16, "provenance": 60}


@app.command()
def audit(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Folders of models (a store, a Hugging Face cache), model folders or files.",
            metavar="PATH...",
        ),
    ],
    policy: Annotated[
        Path | None, typer.Option(help="The TOML trust policy to audit under.")
    ] = None,
    key: Annotated[
        list[Path] | None, typer.Option(help="A trusted public key (repeatable).", metavar="PUB")
    ] = None,
    html: Annotated[
        Path | None,
        typer.Option(
            "--html", help="Also write a self-contained HTML report here.", metavar="REPORT.html"
        ),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet", "-q", help="No progress and no table: only failures, on standard error."
        ),
    ] = False,
) -> None:
    """Verify every model found under PATH... and report each one.

    Finds model folders (model.sig), single files with FILE.sig beside them,
    Hugging Face cache snapshots, and model files no bundle covers
    (unsigned); verifies each under the policy (as `verify` does); prints a
    table: model, version, root digest, signers, threshold, provenance,
    verdict, and the exact reason of every failure. Every model is audited
    even when others fail. Exit 0: every model verified. 1: one or more
    rejected, unsigned or not readable. 2: usage error (a PATH that does not
    exist, no model found, a bad policy).
    """
    from modelsign._audit import Spool, find_models  # noqa: PLC0415
    from modelsign._audit import audit as run_audit  # noqa: PLC0415
    from modelsign._cli._progress import CountReporter  # noqa: PLC0415
    from modelsign._cli._verify import trust_from_options  # noqa: PLC0415

    with errors(json_output):
        trust = trust_from_options(key, policy, None, None, False, None, None, None)
        for path in paths:
            if not path.exists():
                raise UsageError(f"{path}: no such file or folder")
        not_a_folder(html, "report")
        candidates = list(find_models(paths))
        if not candidates:
            raise UsageError(f"no model found under {', '.join(map(str, paths))}")
    reporter = CountReporter("auditing", len(candidates), quiet or json_output)
    with Spool() as spool:
        try:
            with errors(json_output):  # Ctrl-C: "interrupted", exit 130; a bug: exit 3
                report = run_audit(
                    candidates,
                    trust,
                    spool,
                    paths=paths,
                    progress=lambda c: reporter.item(shown(c.path)),
                )
        finally:
            reporter.close()
        if json_output:
            _print_json(report)
        elif quiet:  # as every command: refusals (only) on standard error
            for line in reasons(report):
                typer.echo(line, err=True)
        else:
            for line in [*table(report), *reasons(report), *summary(report)]:
                typer.echo(line)
        if html is not None:
            from modelsign._audit._html import write_report  # noqa: PLC0415

            with errors(json_output):
                write_report(report, html)
    if not report.passed:
        raise typer.Exit(EXIT_REJECTED)


def _print_json(report: AuditReport) -> None:
    """The report as one JSON document, written model by model (the file
    lists are read back from the spool, not held in memory)."""
    summary: dict[str, int] = {"total": len(report.records)}
    summary.update(report.counts())
    head: dict[str, object] = {
        "passed": report.passed,
        "policy": report.policy,
        "paths": list(report.paths),
        "started": report.started,
        "finished": report.finished,
        "summary": summary,
    }
    typer.echo(json.dumps(head, indent=2)[:-2] + ',\n  "models": [')
    for i, (record, files) in enumerate(zip(report.records, report.spool.read(), strict=True)):
        comma = "," if i + 1 < len(report.records) else ""
        typer.echo("    " + json.dumps(record.to_json(files)) + comma)
    typer.echo("  ]\n}")


def _cut(text: str, width: int, tail: bool = False) -> str:
    """``text`` in ``width`` characters: its start, or (``tail``, for
    paths) its end."""
    if len(text) <= width:
        return text
    return "…" + text[1 - width :] if tail else text[: width - 1] + "…"


def _cells(r: AuditRecord) -> dict[str, str]:
    signers = "; ".join(
        f"{s.method} {s.who[:12] if s.method == 'key' else s.who}"
        + (f" {s.when[:10]}" if s.when else "")
        + (" (not counted)" if s.counted is False else "")
        for s in r.signers
    )
    digest = "-" if r.root_digest is None else r.root_digest[:12] + ("*" if r.claims_only else "")
    return {
        "verdict": r.verdict,
        "model": shown(r.path),
        "version": shown(r.version or "-"),
        "root digest": digest,
        "signers": shown(signers or "-"),
        "threshold": "-" if r.threshold is None else r.threshold.describe(),
        "provenance": "-" if r.provenance is None else shown(r.provenance.describe()),
    }


def table(report: AuditReport) -> list[str]:
    """A row per model. Every value from a bundle or a file name is ``shown``."""
    rows = [_cells(r) for r in report.records]
    columns = list(rows[0]) if rows else []
    widths = {
        c: min(WIDTHS.get(c, 64), max(len(c), *(len(row[c]) for row in rows))) for c in columns
    }
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip()]
    lines += [
        "  ".join(_cut(row[c], widths[c], c == "model").ljust(widths[c]) for c in columns).rstrip()
        for row in rows
    ]
    if any(r.claims_only for r in report.records):
        lines.append("* claimed by the bundle, not verified (the model was not verified)")
    return lines


def reasons(report: AuditReport) -> list[str]:
    """Each model that did not verify, its error class, reason and what to do."""
    failed = [r for r in report.records if not r.passed]
    lines = ["", "reasons:"] if failed else []
    for r in failed:
        lines.append(f"  {r.verdict}  {shown(r.path)}  ({r.error_type})")
        lines += [f"    {shown(line)}" for line in (r.reason or "").splitlines()]
        if r.hint:
            lines.append(f"    what to do: {r.hint}")
    return lines


def summary(report: AuditReport) -> list[str]:
    counts = ", ".join(f"{n} {verdict}" for verdict, n in report.counts().items() if n)
    return ["", f"{len(report.records)} model(s): {counts}"]
