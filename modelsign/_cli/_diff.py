"""``modelsign diff``: what changed between two releases of a model."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelsign._cli._app import (
    EXIT_REJECTED,
    EXIT_USAGE,
    app,
    error_json,
    errors,
    message_of,
    print_json,
    shown,
)
from modelsign.errors import Error, MalformedBundleError, UsageError

if TYPE_CHECKING:
    from modelsign._audit import FileRow
    from modelsign._diff import FileChange, ReleaseDiff

#: Archive members listed per changed file in the text output (JSON lists all).
MEMBERS_SHOWN = 20


@app.command()
def diff(
    old: Annotated[
        Path,
        typer.Argument(
            help="The earlier release: a bundle, model folder or signed file.", metavar="OLD"
        ),
    ],
    new: Annotated[Path, typer.Argument(help="The later release, likewise.", metavar="NEW")],
    policy: Annotated[
        Path | None, typer.Option(help="Verify both releases under this policy first.")
    ] = None,
    key: Annotated[
        list[Path] | None,
        typer.Option(help="Verify both with this trusted public key (repeatable).", metavar="PUB"),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the diff as JSON.")] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print nothing: the exit code says it.")
    ] = False,
) -> None:
    """Compare two releases: files added, removed and changed (both digests),
    archive members changed, hash settings, model name and signer.

    Each side is a bundle, a model folder (its model.sig) or a single model
    file with FILE.sig beside it. Without --policy/--key the bundles' claims
    are compared UNVERIFIED; with them each side is verified first (a model
    path: signature and every file; a bundle: its signature). Exit 0:
    identical. 1: different, or a side does not verify. 2: a side cannot be
    read (no such path, no bundle, a malformed bundle) or a usage error.
    """
    from modelsign._cli._verify import trust_from_options  # noqa: PLC0415
    from modelsign._diff import diff_releases, open_release  # noqa: PLC0415

    with errors(json_output):
        trust = None
        if policy is not None or key:
            trust = trust_from_options(key, policy, None, None, False, None, None, None)
    try:
        result = diff_releases(open_release(old, trust), open_release(new, trust))
    except Error as e:
        # Nothing to compare: an unreadable side is bad input whether or not
        # it was to be verified; a side that does not verify is rejected.
        code = EXIT_USAGE if isinstance(e, (UsageError, MalformedBundleError)) else EXIT_REJECTED
        if json_output:
            print_json({"verified": False, "error": error_json(e)})
        label = "rejected" if code == EXIT_REJECTED else "error"
        typer.echo(f"modelsign: {label}: {message_of(e)}", err=True)
        raise typer.Exit(code) from None
    if json_output:
        print_json(result.to_json())
    elif not quiet:
        for line in render(result):
            typer.echo(line)
    if not result.identical:
        raise typer.Exit(EXIT_REJECTED)


def _size(row: FileRow) -> str:
    if row.shards is not None:
        return f"{row.shards} shard(s), {row.size} bytes"
    return "" if row.size is None else f"{row.size} bytes"


def _value(row: FileRow) -> str:
    size = _size(row)
    digest = row.digest or ""
    return f"{digest}  ({size})" if digest and size else digest or size


def render(result: ReleaseDiff) -> list[str]:
    """The diff as lines of text; every name from a bundle through ``shown``."""
    status = (
        "verified"
        if result.verified
        else "claims, UNVERIFIED: give --policy or --key to verify them"
    )
    lines = [
        f"old: {shown(result.old.signature)}  ({status})",
        f"new: {shown(result.new.signature)}",
    ]
    if result.identical:
        lines.append(
            f"identical: {len(result.old.manifest.file_fingerprints())} file(s), the same "
            "digests, settings and signer"
        )
        return lines
    for change in result.changes:
        lines.append(f"{change.field + ':':<15} {shown(change.old)} -> {shown(change.new)}")
    counts = [
        f"{len(result.added)} added",
        f"{len(result.removed)} removed",
        f"{len(result.changed)} changed",
        f"{result.unchanged} unchanged",
    ]
    if result.uncomparable:
        counts.append(f"{len(result.uncomparable)} hashed differently (not comparable)")
    lines.append(f"{'files:':<15} {', '.join(counts)}")
    lines += [f"  + {shown(r.name)}  {_value(r)}" for r in result.added]
    lines += [f"  - {shown(r.name)}  {_value(r)}" for r in result.removed]
    for file in result.changed:
        lines += _changed_lines(file)
    lines += [f"  ? {shown(name)}" for name in result.uncomparable]
    return lines


def _changed_lines(change: FileChange) -> list[str]:
    lines = [
        f"  ~ {shown(change.name)}",
        f"      old {_value(change.old)}",
        f"      new {_value(change.new)}",
    ]
    if change.differing_shards is not None:
        lines.append(f"      {change.differing_shards} shard(s) differ")
    for m in change.members[:MEMBERS_SHOWN]:
        values = {"added": m.new, "removed": m.old, "changed": f"{m.old} -> {m.new}"}[m.kind]
        lines.append(f"      member {shown(m.name)}: {m.kind}  {values}")
    if len(change.members) > MEMBERS_SHOWN:
        lines.append(f"      ... and {len(change.members) - MEMBERS_SHOWN} more member(s) (--json)")
    return lines
