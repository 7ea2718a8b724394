"""``modelsign inspect``: what a bundle claims, unverified."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelsign._cli._app import app, errors, print_json, shown


@app.command()
def inspect(
    signature: Annotated[
        Path,
        typer.Argument(help="A bundle file (model.sig), or a model folder.", metavar="SIGNATURE"),
    ],
    json_output: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Show what a bundle claims (UNVERIFIED: use `verify` to decide trust)."""
    from modelsign._inspecting import inspect_bundle  # noqa: PLC0415

    with errors(json_output):
        claims = inspect_bundle(signature)
        if json_output:
            print_json(claims.to_json())
            return
        signer, manifest = claims.signer, claims.manifest
        ser = manifest.serialization
        typer.echo(f"bundle:      {claims.signature}  (UNVERIFIED: shows claims only)")
        typer.echo(f"method:      {signer.method}")
        for label, value in (
            ("key id", signer.key_id),
            ("identity", signer.identity),
            ("issuer", signer.issuer),
            ("log index", signer.log_index),
            ("integrated", signer.integrated_time),
            ("chain", list(signer.chain) or None),
            ("timestamps", list(signer.timestamps) or None),
        ):
            if value is not None:
                typer.echo(f"{label + ':':<12} {shown(value)}")
        typer.echo(f"model name:  {shown(manifest.model_name)}")
        if manifest.release is not None:
            typer.echo(f"release:     {shown(manifest.release.describe())} (signed name, version)")
        typer.echo(f"root digest: sha256:{manifest.root_digest}")
        shards = f" of {ser.shard_size} bytes" if ser.shard_size else ""
        typer.echo(f"hash type:   {ser.hash_type} ({ser.method}{shards})")
        if ser.ignore_paths:
            typer.echo(f"ignored:     {', '.join(map(shown, ser.ignore_paths))}")
        label = "shards:" if ser.shard_size else "files:"
        typer.echo(f"{label:<12} {len(manifest.resources)}")
        for r in manifest.resources:
            size = "?" if r.size is None else f"{r.size} bytes"
            size = "" if ser.shard_size else f"  {size}"
            typer.echo(f"  {shown(r.name)}{size}  {r.digest}")
            for m in r.members:
                typer.echo(f"    [{r.archive}] {shown(m.name)}  {m.size} bytes  {m.digest}")
        for r in manifest.resources:
            for name in r.empty_files:
                typer.echo(f"  {shown(name)}  empty (no shard; signed in annotations.empty_files)")
