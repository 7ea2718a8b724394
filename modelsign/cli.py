"""The ``modelsign`` command: the only code that prints or exits.

Exit codes: 0 success; 1 the model (or its signature) is rejected;
2 usage or configuration error; 3 internal error (a bug: please report it).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, cast

import typer

from modelsign.errors import Error, UsageError

if TYPE_CHECKING:
    from modelsign.manifest import HashType

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: formatting it with rich doubles start-up time
    no_args_is_help=True,
    help="Sign ML models (OpenSSF Model Signing v1.0 bundles) and verify them before loading.",
)

EXIT_OK, EXIT_REJECTED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3

#: The flags that stand for a Python API parameter (see UsageError.parameter).
_FLAGS = {
    "signer": "--key, --certificate or --sigstore: ",
    "trust": "--key, --ca/--identity, --identity/--issuer or --policy: ",
    "shard_size": "--shard-size ",
    "ignore_paths": "--ignore-path",
    "passphrase": "--passphrase-file or MODELSIGN_PASSPHRASE (or type it on a terminal)",
    "force": "--force",
    "identity_token": "--identity-token, --identity-token-file or --oauth",
}


def _fail(message: str, code: int) -> NoReturn:
    typer.echo(f"modelsign: {message}", err=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def _errors(json_output: bool = False) -> Iterator[None]:
    """Turn modelsign errors into a message and an exit code, never a traceback."""
    try:
        yield
    except typer.Exit:
        raise
    except Error as e:
        message = e.diagnostics()
        if isinstance(e, UsageError) and e.parameter in _FLAGS:
            message = e.render(_FLAGS[e.parameter])  # in the command line's terms
        if json_output:
            error = {**e.to_json(), "message": message}
            typer.echo(json.dumps({"verified": False, "error": error}, indent=2))
        label = "rejected" if e.exit_code == EXIT_REJECTED else "error"
        _fail(f"{label}: {message}", e.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except Exception as e:  # the CLI must not show a traceback
        if os.environ.get("MODELSIGN_DEBUG"):
            raise
        _fail(
            f"internal error: {type(e).__name__}: {e} (set MODELSIGN_DEBUG=1 for a traceback)",
            EXIT_INTERNAL,
        )


def _read_passphrase(passphrase_file: Path | None) -> bytes | None:
    if passphrase_file is not None:
        try:
            data = passphrase_file.read_bytes()
        except OSError as e:
            raise UsageError(f"{passphrase_file}: cannot read passphrase: {e.strerror}") from e
        return data.rstrip(b"\r\n") or None
    env = os.environ.get("MODELSIGN_PASSPHRASE")
    return env.encode("utf-8") if env else None


def _private_key(path: Path, passphrase_file: Path | None) -> Any:
    """Load a signing key. A passphrase from ``--passphrase-file`` must fit the
    key; one from ``MODELSIGN_PASSPHRASE`` is ambient, so an unencrypted key
    loads without it. An encrypted key with no passphrase is prompted for on
    a terminal (never echoed)."""
    from modelsign.errors import PassphraseError  # noqa: PLC0415
    from modelsign.keys import load_private_key  # noqa: PLC0415

    passphrase = _read_passphrase(passphrase_file)
    try:
        return load_private_key(path, passphrase)
    except PassphraseError as e:
        if not e.needed and passphrase_file is None:  # only the environment's
            return load_private_key(path, None)
        if e.needed and sys.stdin.isatty():
            import getpass  # noqa: PLC0415

            typed = getpass.getpass(f"passphrase for {path}: ").encode("utf-8")
            return load_private_key(path, typed or None)
        raise


class _Reporter:
    """Progress (files and bytes) for a run that lasts: nothing is shown, and
    rich is not even imported, until hashing has taken :attr:`delay` seconds.
    Called from the hashing threads (see :class:`modelsign.hashing.Progress`)."""

    delay = 1.0

    def __init__(
        self, label: str, console: Any = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.label = label
        self._console = console
        self._clock = clock
        self._lock = threading.Lock()
        self._t0 = clock()
        self.files = self.files_total = self.bytes = self.bytes_total = 0
        self.bar: Any = None
        self._task: Any = None
        self._closed = False

    def start(self, files: int, nbytes: int) -> None:
        with self._lock:
            self.files_total, self.bytes_total = files, nbytes

    def advance(self, nbytes: int) -> None:
        with self._lock:
            self.bytes += nbytes
            self._tick()

    def file_done(self) -> None:
        with self._lock:
            self.files += 1
            self._tick()

    def _tick(self) -> None:
        if self._closed:  # a hashing thread still finishing after an error
            return
        if self.bar is None:
            if self._clock() - self._t0 < self.delay:
                return
            self._open()
        self.bar.update(self._task, completed=self.bytes, files=self.files)

    def _open(self) -> None:
        from rich.progress import (  # noqa: PLC0415 - only for a run that lasts
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn(f"{{task.fields[files]}}/{self.files_total} files"),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            transient=True,
            console=self._console or _stderr_console(),
        )
        self._task = self.bar.add_task(self.label, total=self.bytes_total, files=self.files)
        self.bar.start()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self.bar is not None:
                self.bar.stop()


@contextlib.contextmanager
def _progress(label: str, quiet: bool) -> Iterator[_Reporter | None]:
    """Progress on a terminal for a run over a second; nothing otherwise."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    reporter = _Reporter(label)
    try:
        yield reporter
    finally:
        reporter.close()


def _stderr_console() -> Any:
    from rich.console import Console  # noqa: PLC0415

    return Console(stderr=True)


_SIZE = re.compile(r"([0-9]{1,30})(?:([KMGT])(?:i?B)?|B)?", re.IGNORECASE)


def _not_a_folder(path: Path | None, what: str) -> None:
    """A path option that names a file: a folder there is a usage mistake."""
    if path is not None and path.is_dir():
        raise UsageError(f"{path}: is a folder, not a {what} file")


def _parse_size(text: str | None) -> int | None:
    """Bytes from ``1000000``, ``500M``/``500MiB`` or ``1G``/``1GiB`` (powers of 1024)."""
    if text is None:
        return None
    m = _SIZE.fullmatch(text.strip())
    if m is None or int(m[1]) == 0:
        raise UsageError(f"--shard-size {text!r}: give a positive size, such as 1000000 or 1G")
    unit: int = 1024 ** "_KMGT".index((m[2] or "_").upper())
    return int(m[1]) * unit


@app.command()
def keygen(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Writes OUTPUT.key and OUTPUT.pub.")
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
) -> None:
    """Generate a key pair; print its key id. Never overwrites a file.

    The passphrase comes from --passphrase-file or MODELSIGN_PASSPHRASE.
    """
    from modelsign.keys import generate, write_keypair  # noqa: PLC0415

    with _errors():
        if no_passphrase and passphrase_file is not None:
            raise UsageError("--no-passphrase conflicts with --passphrase-file")
        # An explicit --no-passphrase wins over MODELSIGN_PASSPHRASE.
        passphrase = None if no_passphrase else _read_passphrase(passphrase_file)
        if not passphrase and not no_passphrase:
            raise UsageError(
                "the private key needs a passphrase (--passphrase-file or MODELSIGN_PASSPHRASE); "
                "use --no-passphrase to write it unencrypted"
            )
        key = generate(algorithm)
        private_path, public_path = write_keypair(key, output, passphrase)
        pub = key.public_key()
        typer.echo(f"private key: {private_path} (mode 0600{', encrypted' if passphrase else ''})")
        typer.echo(f"public key:  {public_path}")
        typer.echo(f"algorithm:   {pub.algorithm}")
        typer.echo(f"key id:      {pub.key_id}")


@app.command()
def sign(
    model: Annotated[
        Path, typer.Argument(help="A model directory or a single model file.", metavar="MODEL")
    ],
    key: Annotated[
        Path | None, typer.Option(help="Private key (PEM); with --certificate, the leaf's key.")
    ] = None,
    signature: Annotated[
        Path | None,
        typer.Option(help="Bundle path (default: MODEL/model.sig, or MODEL.sig beside a file)."),
    ] = None,
    hash_type: Annotated[str, typer.Option("--hash", help="sha256, blake2b or blake3.")] = "sha256",
    ignore_path: Annotated[
        list[str] | None,
        typer.Option(help="A relative path to leave unsigned (repeatable).", metavar="PATH"),
    ] = None,
    passphrase_file: Annotated[
        Path | None, typer.Option(help="Passphrase of an encrypted key (or MODELSIGN_PASSPHRASE).")
    ] = None,
    certificate: Annotated[
        Path | None, typer.Option(help="Leaf certificate (PEM) of --key: certificate method.")
    ] = None,
    certificate_chain: Annotated[
        list[Path] | None,
        typer.Option(
            help="Intermediate certificates (PEM), leaf's issuer first (repeatable).",
            metavar="PEM",
        ),
    ] = None,
    use_sigstore: Annotated[
        bool, typer.Option("--sigstore", help="Sign keylessly with Sigstore.")
    ] = False,
    identity_token: Annotated[
        str | None, typer.Option(help="OIDC identity token for --sigstore.")
    ] = None,
    identity_token_file: Annotated[
        Path | None, typer.Option(help="File holding the OIDC identity token.")
    ] = None,
    oauth: Annotated[
        bool, typer.Option("--oauth", help="Get the identity token in a browser.")
    ] = False,
    staging: Annotated[bool, typer.Option("--staging", help="Use Sigstore's staging.")] = False,
    trust_config: Annotated[
        Path | None, typer.Option(help="ClientTrustConfig JSON of a private Sigstore.")
    ] = None,
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
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Sign a model: hash every file and write an OMS v1.0 bundle.

    With --key: key method. With --key and --certificate [--certificate-chain]:
    certificate method. With --sigstore: keyless (identity token from
    --identity-token[-file], the CI environment, or --oauth).
    """
    from modelsign.signing import (  # noqa: PLC0415
        CertificateSigner,
        KeySigner,
        Signer,
        SigstoreSigner,
    )
    from modelsign.signing import sign as do_sign  # noqa: PLC0415

    with _errors():
        _not_a_folder(signature, "signature")
        signer: Signer
        if use_sigstore:
            if key is not None or certificate is not None:
                raise UsageError("--sigstore signs keylessly: do not give --key or --certificate")
            signer = SigstoreSigner(
                identity_token,
                identity_token_file,
                oauth,
                "staging" if staging else "production",
                trust_config,
            )
        elif key is None:
            raise UsageError(
                "give --key (with --certificate for the certificate method) or --sigstore"
            )
        else:
            private = _private_key(key, passphrase_file)
            signer = (
                CertificateSigner.from_files(private, certificate, certificate_chain or ())
                if certificate is not None
                else KeySigner(private)
            )
        with _progress("signing", quiet) as progress:
            result = do_sign(
                model,
                signer,
                signature=signature,
                hash_type=cast("HashType", hash_type),  # sign() says which it knows
                ignore_paths=ignore_path or (),
                force=force,
                progress=progress,
                shard_size=_parse_size(shard_size),
            )
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


@app.command()
def verify(
    model: Annotated[
        Path, typer.Argument(help="A model directory or a single model file.", metavar="MODEL")
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
    json_output: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Verify a model against its signature and what you trust.

    Trust: --key PUB (repeatable); --identity ID --issuer URL for Sigstore
    [--staging | --trust-root FILE]; --ca ROOT.pem --identity ID [--tsa
    TSA.pem] for X.509 chains; or --policy. Exit 0: verified. 1: rejected (every problem is
    listed). 2: usage error.
    """
    from modelsign.keys import load_public_key  # noqa: PLC0415
    from modelsign.policy import (  # noqa: PLC0415
        Anchor,
        CertificateAuthority,
        Policy,
        SigstoreIdentity,
    )
    from modelsign.verifying import verify as do_verify  # noqa: PLC0415

    with _errors(json_output):
        _not_a_folder(signature, "signature")
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
            trust = Policy.load(policy).with_anchors(anchors)
        elif anchors:
            trust = Policy.from_anchors(anchors, source="command line")
        else:
            raise UsageError(
                "give --key, --identity/--issuer, --ca/--identity or --policy: "
                "trust is never implicit"
            )
        del offline  # verification never uses the network
        with _progress("verifying", quiet or json_output) as progress:
            result = do_verify(
                model,
                trust,
                signature=signature,
                ignore_paths=ignore_path or (),
                progress=progress,
            )
        if json_output:
            typer.echo(json.dumps(result.to_json(), indent=2))
            return
        count = len(result.files)
        files = "1 file matches" if count == 1 else f"{count} files match"
        typer.echo(f"verified {model}: {files} the signature")
        typer.echo(f"signer: {result.signed_by.describe()}")
        typer.echo(f"root digest: sha256:{result.root_digest}")


@app.command()
def inspect(
    signature: Annotated[
        Path, typer.Argument(help="A bundle file (model.sig).", metavar="SIGNATURE")
    ],
    json_output: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Show what a bundle claims (UNVERIFIED: use `verify` to decide trust)."""
    from modelsign.inspecting import inspect_bundle  # noqa: PLC0415

    with _errors(json_output):
        claims = inspect_bundle(signature)
        if json_output:
            typer.echo(json.dumps(claims.to_json(), indent=2))
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
                typer.echo(f"{label + ':':<12} {_shown(value)}")
        typer.echo(f"model name:  {_shown(manifest.model_name)}")
        typer.echo(f"root digest: sha256:{manifest.root_digest}")
        shards = f" of {ser.shard_size} bytes" if ser.shard_size else ""
        typer.echo(f"hash type:   {ser.hash_type} ({ser.method}{shards})")
        if ser.ignore_paths:
            typer.echo(f"ignored:     {', '.join(map(_shown, ser.ignore_paths))}")
        label = "shards:" if ser.shard_size else "files:"
        typer.echo(f"{label:<12} {len(manifest.resources)}")
        for r in manifest.resources:
            size = "?" if r.size is None else f"{r.size} bytes"
            size = "" if ser.shard_size else f"  {size}"
            typer.echo(f"  {_shown(r.name)}{size}  {r.digest}")
            for m in r.members:
                typer.echo(f"    [{r.archive}] {_shown(m.name)}  {m.size} bytes  {m.digest}")
        for r in manifest.resources:
            for name in r.empty_files:
                typer.echo(f"  {_shown(name)}  empty (no shard; signed in annotations.empty_files)")


def _shown(value: object) -> str:
    """A claim from an unverified bundle, safe for a terminal: anything with a
    control character (an escape sequence, a newline) is shown quoted."""
    text = str(value)
    return text if text.isprintable() else ascii(text)


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def run(
    ctx: typer.Context,
    policy: Annotated[Path, typer.Option(help="The TOML trust policy to enforce.")],
) -> None:
    """Run a program with enforcement active from its first line.

    modelsign run --policy P -- python serve.py args...

    Sets MODELSIGN_POLICY for the program; the modelsign-autoload.pth hook of
    this environment then installs the loader hooks before the program's first
    import. A program that is a Python without modelsign is refused, so that
    enforcement is never silently off. Exits with the program's exit code.
    """
    from modelsign.policy import Policy  # noqa: PLC0415

    with _errors():
        command = list(ctx.args)
        if command[:1] == ["--"]:
            command = command[1:]
        if not command:
            raise UsageError("give the program to run after --, e.g. -- python serve.py")
        Policy.load(policy)  # refuse a bad policy here, with a clear message
        env = {**os.environ, "MODELSIGN_POLICY": str(policy.resolve())}
        _check_enforcement(command, env)
        try:
            os.execvpe(command[0], command, env)  # noqa: S606 - the user's own program
        except OSError as e:
            raise UsageError(f"cannot run {command[0]!r}: {e.strerror}") from e


def _check_enforcement(command: list[str], env: dict[str, str]) -> None:
    """When the program is a Python, check that enforcement will be on in it,
    under the very options it is started with (``-S`` skips the site module,
    and so modelsign-autoload.pth; ``-s`` or ``-I`` skip a user site)."""
    import shutil  # noqa: PLC0415
    import subprocess  # noqa: PLC0415

    interpreter = _python_command(command, env)
    if interpreter is None:
        return
    executable, options = interpreter
    probe = (
        "import sys\n"
        "try:\n    import modelsign.hooks as h\n"
        "except ImportError:\n    sys.exit(4)\n"
        "sys.exit(0 if h.installed() else 3)\n"
    )
    resolved = shutil.which(executable, path=env.get("PATH")) or executable
    try:
        result = subprocess.run(  # noqa: S603 - the user's own interpreter
            [resolved, *options, "-c", probe], env=env, capture_output=True, text=True, check=False
        )
    except OSError as e:
        raise UsageError(f"cannot run {executable!r}: {e.strerror}") from e
    shown = " ".join([resolved, *options])
    if result.returncode == 4:
        raise UsageError(
            f"enforcement would not be active in `{shown}`: modelsign cannot be imported there "
            "(install modelsign in that environment; options such as -S or -I can hide it)"
        )
    if result.returncode != 0:
        detail = result.stderr.strip().splitlines()[-1:] if result.returncode != 3 else []
        raise UsageError(
            f"enforcement would not be active in `{shown}`: its modelsign-autoload.pth does not "
            "run at start-up (-S skips the site module that runs it; drop that option)"
            + (f": {detail[0]}" if detail else "")
        )


def _python_command(command: list[str], env: dict[str, str]) -> tuple[str, list[str]] | None:
    """(interpreter, its options) when ``command`` starts a Python: a
    ``python...`` program, or a script whose ``#!`` line names one."""
    import shlex  # noqa: PLC0415
    import shutil  # noqa: PLC0415

    program = command[0]
    if Path(program).name == "env":  # env [-i] [-u NAME] [NAME=VALUE]... PROGRAM ARGS...
        rest = command[1:]
        while rest and (rest[0].startswith("-") or "=" in rest[0]):
            rest = rest[2:] if rest[0] in ("-u", "--unset", "-C", "--chdir") else rest[1:]
        return _python_command(rest, env) if rest else None
    if Path(program).name.startswith("python"):
        return program, _interpreter_options(command[1:])
    path = shutil.which(program, path=env.get("PATH")) or program
    try:
        with open(path, "rb") as f:
            first = f.readline(4096)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    words = shlex.split(first[2:].decode("utf-8", "replace"))
    if words[:1] and Path(words[0]).name == "env":
        words = [w for w in words[1:] if not w.startswith("-")]
    if not words or not Path(words[0]).name.startswith("python"):
        return None
    return words[0], _interpreter_options(words[1:])


def _interpreter_options(args: list[str]) -> list[str]:
    """The interpreter options at the start of ``args``: up to the program
    (a script, ``-``, ``-c CMD`` or ``-m MOD``), as CPython reads them."""
    options: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--check-hash-based-pycs":
            options += args[i : i + 2]
            i += 2
            continue
        if not arg.startswith("-") or arg in ("-", "--") or arg.startswith("--"):
            break
        flags = arg[1:]
        for j, flag in enumerate(flags):
            if flag in "cm":  # the program starts here
                if j:
                    options.append(f"-{flags[:j]}")
                return options
            if flag in "WX":  # an option with a value: the rest, or the next argument
                options.append(arg)
                if j == len(flags) - 1:
                    options += args[i + 1 : i + 2]
                    i += 1
                break
        else:
            options.append(arg)
        i += 1
    return options


@app.command()
def status(
    json_output: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Say whether enforcement is active in this environment, and what it covers."""
    import importlib.util  # noqa: PLC0415
    import sysconfig  # noqa: PLC0415

    from modelsign import hooks  # noqa: PLC0415

    with _errors():
        pth = Path(sysconfig.get_paths()["purelib"]) / "modelsign-autoload.pth"
        state = hooks.status()
        state["autoload_pth"] = str(pth) if pth.exists() else None
        state["MODELSIGN_POLICY"] = os.environ.get("MODELSIGN_POLICY")
        loaders = ("torch", "numpy", "joblib", "safetensors", "transformers")
        state["importable"] = [m for m in loaders if importlib.util.find_spec(m) is not None]
        if json_output:
            typer.echo(json.dumps(state, indent=2))
            return
        if state["active"]:
            typer.echo(f"enforcement: ACTIVE (policy {state['policy']}, mode {state['mode']})")
        else:
            typer.echo("enforcement: off (set MODELSIGN_POLICY or use `modelsign run`)")
        typer.echo(f"autoload hook: {state['autoload_pth'] or 'not installed'}")
        if state["active"]:
            typer.echo(f"patched now: {', '.join(state['covered']) or 'none'}")
            typer.echo(f"patched when imported: {', '.join(state['pending']) or 'none'}")
            audit = state["audit"]
            extra = ", ".join(audit["allowed_globals"]) or "none"
            typer.echo(
                f"unverified unpickling: {audit['unverified_pickles']} "
                f"(globals beyond the allowlist: {extra})"
            )
        typer.echo(f"loaders importable here: {', '.join(state['importable']) or 'none'}")


def main() -> None:
    """Console entry point."""
    import signal  # noqa: PLC0415

    if hasattr(signal, "SIGPIPE"):  # `modelsign inspect ... | head` ends quietly
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    app()
