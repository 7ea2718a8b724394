"""``modelsign cosign`` and ``modelsign state``: release trust (several
signers on one model, and the rollback state a policy keeps)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelsign._cli._app import (
    JsonOption,
    ProgressQuietOption,
    QuietOption,
    app,
    errors,
    not_a_folder,
    print_json,
)
from modelsign._cli._progress import progress
from modelsign._cli._sign import (
    CertificateOption,
    ChainOption,
    KeyOption,
    OauthOption,
    PassphraseFileOption,
    SigstoreOption,
    StagingOption,
    TokenFileOption,
    TokenOption,
    TrustConfigOption,
    signer_from_options,
)
from modelsign.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from modelsign.policy import Policy


@app.command()
def cosign(
    model: Annotated[
        Path, typer.Argument(help="A signed model folder or single file.", metavar="MODEL")
    ],
    key: KeyOption = None,
    trust_key: Annotated[
        list[Path] | None,
        typer.Option(
            help="A public key that must already have signed it (repeatable).", metavar="PUB"
        ),
    ] = None,
    policy: Annotated[
        Path | None,
        typer.Option(help="A TOML trust policy whose anchors must already have signed it."),
    ] = None,
    signature: Annotated[
        Path | None,
        typer.Option(help="The primary bundle (default: MODEL/model.sig, or MODEL.sig)."),
    ] = None,
    passphrase_file: PassphraseFileOption = None,
    certificate: CertificateOption = None,
    certificate_chain: ChainOption = None,
    use_sigstore: SigstoreOption = False,
    identity_token: TokenOption = None,
    identity_token_file: TokenFileOption = None,
    oauth: OauthOption = False,
    staging: StagingOption = False,
    trust_config: TrustConfigOption = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Co-sign a folder whose primary bundle does not exclude model.sig.d "
            "(model_signing would then see the co-signatures as extra files).",
        ),
    ] = False,
    json_output: JsonOption = False,
    quiet: ProgressQuietOption = False,
) -> None:
    """Add a signature by another signer to a signed model.

    The model is verified first against its bundles and what --trust-key or
    --policy trusts (the policy's anchors; its thresholds, pins and rollback
    state are for finished releases). Then the primary bundle's statement is
    signed as it is, by --key, --key --certificate or --sigstore, into
    MODEL/model.sig.d/ (F.sig.d/ for a single file). Exit 1: the model does
    not verify. 2: usage (the signer already signed it, ...).
    """
    from modelsign._cosigning import cosign as do_cosign  # noqa: PLC0415

    with errors(json_output):
        not_a_folder(signature, "signature")
        trust = _trust(trust_key, policy)
        signer = signer_from_options(
            key,
            passphrase_file,
            certificate,
            certificate_chain,
            use_sigstore=use_sigstore,
            identity_token=identity_token,
            identity_token_file=identity_token_file,
            oauth=oauth,
            staging=staging,
            trust_config=trust_config,
        )
        with progress("verifying", quiet or json_output) as reporter:
            result = do_cosign(
                model, signer, trust, signature=signature, force=force, progress=reporter
            )
        if json_output:
            print_json(result.to_json())
        elif not quiet:
            typer.echo(f"co-signed {model} -> {result.signature}")
            typer.echo(f"signer: {result.signed_by.describe()}")
            typer.echo(f"root digest: sha256:{result.manifest.root_digest}")


def _trust(keys: list[Path] | None, policy: Path | None) -> Policy:
    from modelsign.keys import load_public_key  # noqa: PLC0415
    from modelsign.policy import Policy  # noqa: PLC0415

    anchors = [load_public_key(k) for k in keys or ()]
    if policy is not None:
        return Policy.load(policy).with_anchors(anchors)
    if anchors:
        return Policy.from_anchors(anchors, source="command line")
    raise UsageError(
        "give --trust-key PUB (repeatable) or --policy: cosign verifies who signed it first"
    )


state_app = typer.Typer(
    no_args_is_help=True,
    help="The rollback state a policy keeps ([rollback] state): show, reset or pin it.",
)
app.add_typer(state_app, name="state")

PolicyOption = Annotated[Path, typer.Option(help="The TOML policy that names the state file.")]


def _state_of(policy_path: Path) -> tuple[Policy, Path]:
    from modelsign.policy import Policy  # noqa: PLC0415

    policy = Policy.load(policy_path)
    if policy.state is None:
        raise ConfigError(f"{policy_path}: the policy keeps no rollback state ([rollback] state)")
    return policy, policy.state


def _document(state: Path, **extra: Any) -> dict[str, Any]:
    from modelsign import _rollback  # noqa: PLC0415

    return {"state": str(state), "models": _rollback.entries_json(_rollback.read(state)), **extra}


def _print_models(document: dict[str, Any]) -> None:
    typer.echo(f"state: {document['state']}")
    models = document["models"]
    if not models:
        typer.echo("no model recorded")
    for name, entry in models.items():
        typer.echo(f"{name}: version {entry['version']}, root digest {entry['root_digest']}")


@state_app.command("show")
def state_show(policy: PolicyOption, json_output: JsonOption = False) -> None:
    """Show, per model name, the highest version that verified and its root digest."""
    with errors(json_output):
        _, state = _state_of(policy)
        document = _document(state)
        if json_output:
            print_json(document)
        else:
            _print_models(document)


@state_app.command("reset")
def state_reset(
    policy: PolicyOption,
    names: Annotated[
        list[str] | None,
        typer.Argument(help="Model names to forget (default: every model).", metavar="[NAME]..."),
    ] = None,
    json_output: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Forget models (all of them by default, which also creates a missing
    or replaces a corrupt state file): their next version is accepted as new."""
    from modelsign import _rollback  # noqa: PLC0415

    with errors(json_output):
        _, state = _state_of(policy)
        forgotten = _rollback.reset(state, names or ())
        document = _document(state, forgotten=forgotten)
        if json_output:
            print_json(document)
        elif not quiet:
            typer.echo(
                f"forgot {len(forgotten)} model(s){': ' if forgotten else ''}"
                + ", ".join(forgotten)
            )
            _print_models(document)


@state_app.command("pin")
def state_pin(
    model: Annotated[Path, typer.Argument(help="A model folder or single file.", metavar="MODEL")],
    policy: PolicyOption,
    signature: Annotated[
        Path | None,
        typer.Option(help="Bundle path (default: MODEL/model.sig, or MODEL.sig beside a file)."),
    ] = None,
    json_output: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Verify MODEL under the policy (all of it but the rollback state) and
    record its version and root digest as the state for its name, even if
    older: an explicit rollback, or the answer to an equivocation."""
    from dataclasses import replace  # noqa: PLC0415

    from modelsign import _rollback  # noqa: PLC0415
    from modelsign.verifying import verify  # noqa: PLC0415

    with errors(json_output):
        not_a_folder(signature, "signature")
        loaded, state = _state_of(policy)
        with progress("verifying", quiet or json_output) as reporter:
            verified = verify(
                model, replace(loaded, state=None), signature=signature, progress=reporter
            )
        release, root = verified.release, verified.root_digest
        previous = _rollback.pin(state, release, root, str(verified.signature))
        assert release is not None
        pinned = {"name": release.name, "version": release.version, "root_digest": root}
        document = _document(
            state, pinned=pinned, previous=None if previous is None else previous.to_json()
        )
        if json_output:
            print_json(document)
        elif not quiet:
            was = f" (was {previous.version}, {previous.root_digest})" if previous else ""
            typer.echo(f"pinned {release.describe()} at root digest {root}{was}")
