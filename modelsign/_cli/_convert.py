"""``modelsign convert``: an untrusted pickle checkpoint to safetensors, in a
sandbox; signed when asked."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelsign._cli._app import JsonOption, QuietOption, app, errors, print_json, shown
from modelsign._cli._enforce import WeakerSandboxOption
from modelsign._cli._progress import parse_size
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
from modelsign.errors import UsageError

if TYPE_CHECKING:
    from modelsign._convert import ConvertedModel
    from modelsign.signing import SignedModel


@app.command()
def convert(
    source: Annotated[
        Path,
        typer.Argument(
            help="An untrusted checkpoint (.pt, .pth, .bin, .ckpt), or a Hugging Face folder "
            "with pytorch_model.bin or pytorch_model.bin.index.json.",
            metavar="SOURCE",
        ),
    ],
    to: Annotated[
        Path,
        typer.Option("--to", help="The safetensors file to write.", metavar="OUT.safetensors"),
    ],
    allow_pickle: Annotated[
        bool,
        typer.Option(
            "--allow-pickle",
            help="Unpickle in full (the checkpoint's code runs, inside the sandbox) instead of "
            "with torch's weights-only unpickler: for old checkpoints with custom classes.",
        ),
    ] = False,
    drop_non_tensors: Annotated[
        bool,
        typer.Option(
            "--drop-non-tensors",
            help="Write the tensors and drop other values (optimizer state, numbers, custom "
            "objects) instead of refusing the checkpoint.",
        ),
    ] = False,
    timeout: Annotated[
        float, typer.Option(help="Seconds before the sandboxed loader is killed.")
    ] = 600.0,
    memory_limit: Annotated[
        str | None,
        typer.Option(
            help="Address space of the sandboxed loader (default: 4G + 3 x the checkpoint).",
            metavar="SIZE",
        ),
    ] = None,
    cpu_limit: Annotated[
        int | None,
        typer.Option(help="CPU seconds of the sandboxed loader (default: 600).", metavar="SECONDS"),
    ] = None,
    max_output_size: Annotated[
        str | None,
        typer.Option(
            help="Largest file the sandboxed loader may write (default: 1G + 2 x the checkpoint).",
            metavar="SIZE",
        ),
    ] = None,
    weaker_sandbox: WeakerSandboxOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace OUT.safetensors (and its signature).")
    ] = False,
    sign_output: Annotated[
        bool,
        typer.Option(
            "--sign", help="Sign the output (OUT.safetensors.sig), with the options of sign."
        ),
    ] = False,
    key: KeyOption = None,
    passphrase_file: PassphraseFileOption = None,
    certificate: CertificateOption = None,
    certificate_chain: ChainOption = None,
    use_sigstore: SigstoreOption = False,
    identity_token: TokenOption = None,
    identity_token_file: TokenFileOption = None,
    oauth: OauthOption = False,
    staging: StagingOption = False,
    trust_config: TrustConfigOption = None,
    json_output: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Convert an untrusted pickle checkpoint to safetensors, in a sandbox.

    The checkpoint is loaded by a child process with no network, no file
    but its input and one temporary folder, no new program or process, and
    resource limits; this process never unpickles it, and checks every tensor
    it wrote before moving the file into place. With --sign, the result is
    signed like `modelsign sign OUT.safetensors`.
    """
    from modelsign._convert import convert as do_convert  # noqa: PLC0415
    from modelsign.signing import sign as do_sign  # noqa: PLC0415

    with errors(json_output):
        signer_given = key is not None or certificate is not None or use_sigstore
        if signer_given and not sign_output:
            raise UsageError("signer options (--key, --certificate, --sigstore) need --sign")
        signer = None
        if sign_output:  # before the conversion: a bad key fails at once
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
        result = do_convert(
            source,
            to,
            allow_pickle=allow_pickle,
            drop_non_tensors=drop_non_tensors,
            memory_limit=parse_size(memory_limit, "--memory-limit"),
            cpu_limit=cpu_limit,
            output_limit=parse_size(max_output_size, "--max-output-size"),
            timeout=timeout,
            weaker=weaker_sandbox or (),
            overwrite=force,
        )
        signed = None if signer is None else do_sign(to, signer, force=force)
        if json_output:
            print_json(
                {
                    **result.to_json(),
                    "signature": None if signed is None else str(signed.signature),
                    "signed_by": None if signed is None else signed.signed_by.to_json(),
                }
            )
        elif not quiet:
            _print(result, signed)


def _print(result: ConvertedModel, signed: SignedModel | None) -> None:
    count = len(result.tensors)
    typer.echo(
        f"converted {result.source} -> {result.output} ({count} tensor"
        f"{'s' if count != 1 else ''}, {result.size} bytes), loaded with "
        f"{'weights_only=True' if result.weights_only else 'full unpickling (--allow-pickle)'}"
    )
    layers = [
        layer.name if layer.applied else f"{layer.name} NOT APPLIED ({layer.detail})"
        for layer in result.layers
    ]
    typer.echo(f"sandbox: {', '.join(layers)}")
    if result.dropped_count:
        listed = "; ".join(shown(d) for d in result.dropped[:20])
        more = result.dropped_count - min(result.dropped_count, 20)
        typer.echo(
            f"dropped {result.dropped_count} value(s) that are not tensors: {listed}"
            + (f"; and {more} more" if more else "")
        )
    if signed is not None:
        typer.echo(f"signed {result.output} -> {signed.signature} ({signed.signed_by.describe()})")
