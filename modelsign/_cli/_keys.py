"""``modelsign keygen``, and how the CLI gets a signing key and its passphrase."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from modelsign._cli._app import (
    JsonOption,
    QuietOption,
    app,
    errors,
    print_json,
    stdin_is_a_terminal,
)
from modelsign.errors import UsageError

#: The key pair's name when --output names a folder.
DEFAULT_KEY_NAME = "modelsign"


@app.command()
def keygen(
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            help="Writes OUTPUT.key and OUTPUT.pub; a folder (keys/) gets modelsign.key and .pub.",
        ),
    ],
    algorithm: Annotated[
        str, typer.Option(help="ed25519, ecdsa-p256, ecdsa-p384 or ecdsa-p521.")
    ] = "ed25519",
    passphrase_file: Annotated[
        Path | None,
        typer.Option(help="Encrypt the private key with the passphrase in this file."),
    ] = None,
    no_passphrase: Annotated[
        bool, typer.Option("--no-passphrase", help="Write the private key unencrypted.")
    ] = False,
    json_output: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Generate a key pair; print its key id. Never overwrites a file.

    The passphrase comes from --passphrase-file or MODELSIGN_PASSPHRASE.
    """
    from modelsign.keys import generate, write_keypair  # noqa: PLC0415

    with errors(json_output):
        if no_passphrase and passphrase_file is not None:
            raise UsageError("--no-passphrase conflicts with --passphrase-file")
        # An explicit --no-passphrase wins over MODELSIGN_PASSPHRASE.
        passphrase = None if no_passphrase else read_passphrase(passphrase_file)
        if not passphrase and not no_passphrase:
            raise UsageError(
                "the private key needs a passphrase (--passphrase-file or MODELSIGN_PASSPHRASE); "
                "use --no-passphrase to write it unencrypted"
            )
        prefix = Path(output)
        if output.endswith(("/", os.sep)) or prefix.is_dir():  # keys/ -> keys/modelsign.key
            prefix = prefix / DEFAULT_KEY_NAME
        key = generate(algorithm)
        private_path, public_path = write_keypair(key, prefix, passphrase)
        pub = key.public_key()
        if json_output:
            print_json(
                {
                    "private_key": str(private_path),
                    "public_key": str(public_path),
                    "encrypted": bool(passphrase),
                    "algorithm": pub.algorithm,
                    "key_id": pub.key_id,
                }
            )
        elif not quiet:
            encrypted = ", encrypted" if passphrase else ""
            typer.echo(f"private key: {private_path} (mode 0600{encrypted})")
            typer.echo(f"public key:  {public_path}")
            typer.echo(f"algorithm:   {pub.algorithm}")
            typer.echo(f"key id:      {pub.key_id}")


def read_passphrase(passphrase_file: Path | None) -> bytes | None:
    if passphrase_file is not None:
        try:
            data = passphrase_file.read_bytes()
        except OSError as e:
            raise UsageError(f"{passphrase_file}: cannot read passphrase: {e.strerror}") from e
        return data.rstrip(b"\r\n") or None
    env = os.environ.get("MODELSIGN_PASSPHRASE")
    return env.encode("utf-8") if env else None


def private_key(path: Path, passphrase_file: Path | None) -> Any:
    """Load a signing key. A passphrase from ``--passphrase-file`` must fit the
    key; one from ``MODELSIGN_PASSPHRASE`` is ambient, so an unencrypted key
    loads without it. An encrypted key with no passphrase is prompted for on
    a terminal (never echoed)."""
    from modelsign.errors import PassphraseError  # noqa: PLC0415
    from modelsign.keys import load_private_key  # noqa: PLC0415

    passphrase = read_passphrase(passphrase_file)
    try:
        return load_private_key(path, passphrase)
    except PassphraseError as e:
        if not e.needed and passphrase_file is None:  # only the environment's
            return load_private_key(path, None)
        if e.needed and stdin_is_a_terminal():
            import getpass  # noqa: PLC0415

            typed = getpass.getpass(f"passphrase for {path}: ").encode("utf-8")
            return load_private_key(path, typed or None)
        raise
