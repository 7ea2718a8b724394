"""The ``modelsign`` application: what every command shares. The CLI is the
only code that prints or exits.

Exit codes: 0 success; 1 the model (or its signature) is rejected;
2 usage or configuration error; 3 internal error (a bug: please report it).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from typing import Annotated, Any, NoReturn

import typer

from modelsign import __version__
from modelsign.errors import Error, UsageError

app = typer.Typer(
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: formatting it with rich doubles start-up time
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Sign ML models (OpenSSF Model Signing v1.0 bundles) and verify them before loading.",
)

EXIT_OK, EXIT_REJECTED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3

#: ``--json`` of a command that prints a result.
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
#: ``-q`` of a command that prints nothing else.
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing on success.")]
#: ``-q`` of a command with a progress display.
ProgressQuietOption = Annotated[
    bool, typer.Option("--quiet", "-q", help="No progress, and nothing printed on success.")
]

#: The flags that stand for a Python API parameter (see UsageError.parameter).
FLAGS = {
    "signer": "--key, --certificate or --sigstore: ",
    "trust": "--key, --ca/--identity, --identity/--issuer or --policy: ",
    "shard_size": "--shard-size ",
    "ignore_paths": "--ignore-path",
    "passphrase": "--passphrase-file or MODELSIGN_PASSPHRASE (or type it on a terminal)",
    "force": "--force",
    "identity_token": "--identity-token, --identity-token-file or --oauth",
    "model_name": "--model-name ",
    "model_version": "--model-version ",
    "params": "--param ",
    "datasets": "--dataset ",
    "base_model": "--base-model ",
    "code": "--code ",
    "started": "--started ",
    "finished": "--finished ",
    "destination": "--to ",
    "weaker": "--weaker-sandbox ",
    "timeout": "--timeout ",
    "memory_limit": "--memory-limit ",
    "cpu_limit": "--cpu-limit ",
    "output_limit": "--max-output-size ",
    "writable": "--writable ",
}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"modelsign {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Sign ML models (OpenSSF Model Signing v1.0 bundles) and verify them before loading."""


def fail(message: str, code: int) -> NoReturn:
    typer.echo(f"modelsign: {message}", err=True)
    raise typer.Exit(code)


def message_of(error: Error) -> str:
    """The error's diagnostics, in the command line's terms."""
    if isinstance(error, UsageError) and error.parameter in FLAGS:
        return error.render(FLAGS[error.parameter])
    return error.diagnostics()


def error_json(error: Error) -> dict[str, Any]:
    return {**error.to_json(), "message": message_of(error)}


@contextlib.contextmanager
def errors(json_output: bool = False) -> Iterator[None]:
    """Turn modelsign errors into a message and an exit code, never a traceback."""
    try:
        yield
    except typer.Exit:
        raise
    except Error as e:
        if json_output:
            print_json({"verified": False, "error": error_json(e)})
        label = "rejected" if e.exit_code == EXIT_REJECTED else "error"
        fail(f"{label}: {message_of(e)}", e.exit_code)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except Exception as e:  # the CLI must not show a traceback
        if os.environ.get("MODELSIGN_DEBUG"):
            raise
        fail(
            f"internal error: {type(e).__name__}: {e} (set MODELSIGN_DEBUG=1 for a traceback)",
            EXIT_INTERNAL,
        )


def print_json(document: object) -> None:
    typer.echo(json.dumps(document, indent=2))


def shown(value: object) -> str:
    """A claim from an unverified bundle, safe for a terminal: anything with a
    control character (an escape sequence, a newline) is shown quoted."""
    text = str(value)
    return text if text.isprintable() else ascii(text)


def not_a_folder(path: os.PathLike[str] | None, what: str) -> None:
    """A path option that names a file: a folder there is a usage mistake."""
    if path is not None and os.path.isdir(path):
        raise UsageError(f"{os.fspath(path)}: is a folder, not a {what} file")


def main() -> None:
    """Console entry point."""
    import signal  # noqa: PLC0415

    if hasattr(signal, "SIGPIPE"):  # `modelsign inspect ... | head` ends quietly
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    app()


def stdin_is_a_terminal() -> bool:
    return sys.stdin.isatty()
