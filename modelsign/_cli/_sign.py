"""``modelsign sign``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer

from modelsign._cli._app import (
    JsonOption,
    ProgressQuietOption,
    app,
    errors,
    not_a_folder,
    print_json,
)
from modelsign._cli._keys import private_key
from modelsign._cli._progress import parse_size, progress
from modelsign.errors import UsageError

if TYPE_CHECKING:
    from modelsign.manifest import HashType
    from modelsign.signing import Signer


# The signing options, shared by sign and attest.
KeyOption = Annotated[
    Path | None, typer.Option(help="Private key (PEM); with --certificate, the leaf's key.")
]
PassphraseFileOption = Annotated[
    Path | None, typer.Option(help="Passphrase of an encrypted key (or MODELSIGN_PASSPHRASE).")
]
CertificateOption = Annotated[
    Path | None, typer.Option(help="Leaf certificate (PEM) of --key: certificate method.")
]
ChainOption = Annotated[
    list[Path] | None,
    typer.Option(
        help="Intermediate certificates (PEM), leaf's issuer first (repeatable).",
        metavar="PEM",
    ),
]
SigstoreOption = Annotated[bool, typer.Option("--sigstore", help="Sign keylessly with Sigstore.")]
TokenOption = Annotated[str | None, typer.Option(help="OIDC identity token for --sigstore.")]
TokenFileOption = Annotated[Path | None, typer.Option(help="File holding the OIDC identity token.")]
OauthOption = Annotated[bool, typer.Option("--oauth", help="Get the identity token in a browser.")]
StagingOption = Annotated[bool, typer.Option("--staging", help="Use Sigstore's staging.")]
TrustConfigOption = Annotated[
    Path | None, typer.Option(help="ClientTrustConfig JSON of a private Sigstore.")
]


@app.command()
def sign(
    model: Annotated[
        Path, typer.Argument(help="A model directory or a single model file.", metavar="MODEL")
    ],
    key: KeyOption = None,
    signature: Annotated[
        Path | None,
        typer.Option(help="Bundle path (default: MODEL/model.sig, or MODEL.sig beside a file)."),
    ] = None,
    hash_type: Annotated[str, typer.Option("--hash", help="sha256, blake2b or blake3.")] = "sha256",
    ignore_path: Annotated[
        list[str] | None,
        typer.Option(help="A relative path to leave unsigned (repeatable).", metavar="PATH"),
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
    shard_size: Annotated[
        str | None,
        typer.Option(
            help="Hash files in shards of this many bytes (OMS method 'shards'), e.g. 1G, "
            "500M, 1000000: a large file is hashed on every core.",
            metavar="SIZE",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Replace a bundle by another signer (its signature is lost)."),
    ] = False,
    model_name: Annotated[
        str | None,
        typer.Option(
            help="Sign the model's name (e.g. acme/bert), for policy pins.", metavar="NAME"
        ),
    ] = None,
    model_version: Annotated[
        str | None,
        typer.Option(
            help="Sign its version (numbers and dots, e.g. 1.2.0; with --model-name), for "
            "rollback protection.",
            metavar="VERSION",
        ),
    ] = None,
    json_output: JsonOption = False,
    quiet: ProgressQuietOption = False,
) -> None:
    """Sign a model: hash every file and write an OMS v1.0 bundle.

    With --key: key method. With --key and --certificate [--certificate-chain]:
    certificate method. With --sigstore: keyless (identity token from
    --identity-token[-file], the CI environment, or --oauth). --model-name
    and --model-version sign which model and version this is.
    """
    from modelsign.signing import sign as do_sign  # noqa: PLC0415

    with errors(json_output):
        not_a_folder(signature, "signature")
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
        with progress("signing", quiet or json_output) as reporter:
            result = do_sign(
                model,
                signer,
                signature=signature,
                hash_type=cast("HashType", hash_type),  # sign() says which it knows
                ignore_paths=ignore_path or (),
                force=force,
                progress=reporter,
                shard_size=parse_size(shard_size),
                model_name=model_name,
                model_version=model_version,
            )
        if json_output:
            print_json(result.to_json())
            return
        if quiet:
            return
        count = len(result.manifest.file_fingerprints())
        typer.echo(
            f"signed {model} ({count} file{'s' if count != 1 else ''}) -> {result.signature}"
        )
        by = result.signed_by
        if by.method == "sigstore":
            typer.echo(f"signer: Sigstore identity {by.identity}")
        else:
            typer.echo(f"{by.method} method, key id: {by.key_id} ({by.algorithm})")
        typer.echo(f"root digest: sha256:{result.manifest.root_digest}")
        if result.manifest.release is not None:
            typer.echo(f"model: {result.manifest.release.describe()}")


def signer_from_options(
    key: Path | None,
    passphrase_file: Path | None,
    certificate: Path | None,
    certificate_chain: list[Path] | None,
    *,
    use_sigstore: bool,
    identity_token: str | None,
    identity_token_file: Path | None,
    oauth: bool,
    staging: bool,
    trust_config: Path | None,
) -> Signer:
    """The signer the signing options describe (``sign``, ``attest``)."""
    from modelsign.signing import (  # noqa: PLC0415
        CertificateSigner,
        KeySigner,
        SigstoreSigner,
    )

    if use_sigstore:
        if key is not None or certificate is not None:
            raise UsageError("--sigstore signs keylessly: do not give --key or --certificate")
        return SigstoreSigner(
            identity_token,
            identity_token_file,
            oauth,
            "staging" if staging else "production",
            trust_config,
        )
    if key is None:
        raise UsageError("give --key (with --certificate for the certificate method) or --sigstore")
    private = private_key(key, passphrase_file)
    if certificate is not None:
        return CertificateSigner.from_files(private, certificate, certificate_chain or ())
    return KeySigner(private)
