"""``modelsign verify``: one model or several, against what you trust."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelsign._cli._app import (
    EXIT_OK,
    EXIT_REJECTED,
    JsonOption,
    ProgressQuietOption,
    app,
    error_json,
    errors,
    fail,
    message_of,
    not_a_folder,
    print_json,
)
from modelsign._cli._progress import progress
from modelsign.errors import Error, UsageError

if TYPE_CHECKING:
    from modelsign.policy import Policy


@app.command()
def verify(
    models: Annotated[
        list[Path],
        typer.Argument(help="Model folders or single model files.", metavar="MODEL..."),
    ],
    key: Annotated[
        list[Path] | None, typer.Option(help="A trusted public key (repeatable).", metavar="PUB")
    ] = None,
    policy: Annotated[Path | None, typer.Option(help="A TOML trust policy.")] = None,
    identity: Annotated[
        str | None, typer.Option(help="Signer identity (Sigstore SAN, or certificate SAN/subject).")
    ] = None,
    issuer: Annotated[str | None, typer.Option(help="OIDC issuer of a Sigstore identity.")] = None,
    staging: Annotated[
        bool, typer.Option("--staging", help="Trust Sigstore's staging root, not production.")
    ] = False,
    trust_root: Annotated[
        Path | None, typer.Option(help="Trusted root JSON of a private Sigstore instance.")
    ] = None,
    offline: Annotated[
        bool, typer.Option("--offline", help="Accepted; verification never uses the network.")
    ] = False,
    ca: Annotated[
        Path | None, typer.Option(help="Trusted root CA (PEM) for the certificate method.")
    ] = None,
    tsa: Annotated[
        Path | None,
        typer.Option(
            help="With --ca: trusted TSA root (PEM); the leaf is checked at the bundle's "
            "RFC 3161 timestamp time instead of now."
        ),
    ] = None,
    signature: Annotated[
        Path | None,
        typer.Option(help="Bundle path (default: MODEL/model.sig, or MODEL.sig beside a file)."),
    ] = None,
    ignore_path: Annotated[
        list[str] | None,
        typer.Option(help="A relative path to leave unchecked (repeatable).", metavar="PATH"),
    ] = None,
    require_provenance: Annotated[
        bool,
        typer.Option(
            "--require-provenance",
            help="Require a signed provenance (model.provenance.sig) over the model's root digest.",
        ),
    ] = False,
    builder_id: Annotated[
        str | None,
        typer.Option(help="The builder the provenance must name (implies --require-provenance)."),
    ] = None,
    lineage: Annotated[
        bool,
        typer.Option(
            "--lineage",
            help="The provenance's base model must verify too (implies --require-provenance).",
        ),
    ] = False,
    base_model: Annotated[
        list[Path] | None,
        typer.Option(
            help="Where base models are: a model, or a folder of models (repeatable; "
            "implies --lineage).",
            metavar="PATH",
        ),
    ] = None,
    json_output: JsonOption = False,
    quiet: ProgressQuietOption = False,
) -> None:
    """Verify models against their signatures and what you trust.

    Trust: --key PUB (repeatable); --identity ID --issuer URL for Sigstore
    [--staging | --trust-root FILE]; --ca ROOT.pem --identity ID [--tsa
    TSA.pem] for X.509 chains; or --policy. A Hugging Face cache snapshot
    (models--ORG--NAME/snapshots/REV) is recognised: its links into its own
    blobs/ are followed. Several models are each verified and reported.
    --require-provenance (or the policy's [provenance] require) also checks
    the model's signed provenance; --builder-id and --lineage add to it.
    Exit 0: all verified. 1: one or more rejected (every problem is listed).
    2: usage error.
    """
    del offline  # verification never uses the network
    with errors(json_output):
        if signature is not None and len(models) > 1:
            raise UsageError("--signature names one bundle: give a single MODEL with it")
        not_a_folder(signature, "signature")
        trust = _trust(key, policy, identity, issuer, staging, trust_root, ca, tsa)
        if require_provenance or builder_id or lineage or base_model:
            rules = trust.provenance.strengthened(
                builder_id=builder_id,
                lineage=lineage or bool(base_model),
                base_models=base_model or (),
            )
            trust = dataclasses.replace(trust, provenance=rules)
    documents: list[dict[str, Any]] = []
    worst = EXIT_OK
    for model in models:
        document, code = _verify_one(
            model, trust, signature, ignore_path or [], quiet or json_output
        )
        documents.append(document)
        worst = max(worst, code)
    if json_output:
        if len(models) == 1:
            print_json(documents[0])
        else:
            print_json({"verified": worst == EXIT_OK, "models": documents})
    if worst != EXIT_OK:
        raise typer.Exit(worst)


def _verify_one(
    model: Path,
    trust: Policy,
    signature: Path | None,
    ignore: list[str],
    quiet: bool,
) -> tuple[dict[str, Any], int]:
    """Verify one model; report it (text) and return its JSON and exit code."""
    from modelsign._enumerating import hf_blobs_dir  # noqa: PLC0415
    from modelsign.verifying import verify as do_verify  # noqa: PLC0415

    try:
        with progress(f"verifying {model.name}", quiet) as reporter:
            result = do_verify(
                model,
                trust,
                signature=signature,
                ignore_paths=ignore,
                hf_cache=model.is_dir() and hf_blobs_dir(model) is not None,
                progress=reporter,
            )
    except Error as e:  # on standard error whatever the output (JSON goes to stdout)
        label = "rejected" if e.exit_code == EXIT_REJECTED else "error"
        typer.echo(f"modelsign: {label}: {message_of(e)}", err=True)
        return {"verified": False, "model": str(model), "error": error_json(e)}, e.exit_code
    except KeyboardInterrupt:
        fail("interrupted", 130)
    if not quiet:
        count = len(result.files)
        files = "1 file matches" if count == 1 else f"{count} files match"
        typer.echo(f"verified {model}: {files} the signature")
        typer.echo(f"signer: {result.signed_by.describe()}")
        typer.echo(f"root digest: sha256:{result.root_digest}")
        if result.release is not None:
            typer.echo(f"model: {result.release.describe()}")
        report = result.signatures
        if report is not None and (len(report.counted) > 1 or report.not_counted or report.rules):
            for line in report.lines():
                typer.echo(line)
        if result.provenance is not None:
            from modelsign._cli._attest import describe  # noqa: PLC0415

            typer.echo(f"provenance: verified ({result.provenance.path})")
            for line in describe(result.provenance):
                typer.echo(f"  {line}")
    return result.to_json(), EXIT_OK


def _trust(
    key: list[Path] | None,
    policy: Path | None,
    identity: str | None,
    issuer: str | None,
    staging: bool,
    trust_root: Path | None,
    ca: Path | None,
    tsa: Path | None,
) -> Policy:
    """The policy the options describe (the library validates it)."""
    from modelsign.keys import load_public_key  # noqa: PLC0415
    from modelsign.policy import (  # noqa: PLC0415
        Anchor,
        CertificateAuthority,
        Policy,
        SigstoreIdentity,
    )

    anchors: list[Anchor] = [load_public_key(k) for k in key or ()]
    if ca is not None:
        if not identity:
            raise UsageError("--ca needs --identity: modelsign pins the signer's identity")
        if issuer:
            raise UsageError("--issuer is for Sigstore identities, not with --ca")
        anchors.append(CertificateAuthority(ca, identity, tsa=tsa))
    elif tsa is not None:
        raise UsageError("--tsa is for the certificate method: give it with --ca")
    elif identity or issuer:
        if not identity or not issuer:
            raise UsageError(
                "a Sigstore identity needs both --identity and --issuer "
                "(an empty issuer would accept any issuer)"
            )
        instance = "staging" if staging else "production"
        anchors.append(SigstoreIdentity(identity, issuer, instance, trust_root))
    if policy is not None:
        return Policy.load(policy).with_anchors(anchors)
    if anchors:
        return Policy.from_anchors(anchors, source="command line")
    raise UsageError(
        "give --key, --identity/--issuer, --ca/--identity or --policy: trust is never implicit"
    )


#: The policy that trust options describe, for the commands that take some of
#: them (diff, audit).
trust_from_options = _trust
