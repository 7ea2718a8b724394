"""``modelsign attest``: write a signed model's signed provenance."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelsign._cli._app import (
    JsonOption,
    ProgressQuietOption,
    app,
    errors,
    not_a_folder,
    print_json,
    shown,
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
from modelsign.errors import UsageError

if TYPE_CHECKING:
    from modelsign.provenance import Provenance

#: What an --inputs JSON file may hold (anything else is refused).
INPUT_KEYS = frozenset(
    {
        "datasets",
        "base_model",
        "parameters",
        "entry_point",
        "builder_id",
        "started",
        "finished",
        "code",
    }
)
MAX_INPUTS_BYTES = 1024 * 1024


@app.command()
def attest(
    model: Annotated[
        Path, typer.Argument(help="A signed model directory or file.", metavar="MODEL")
    ],
    key: KeyOption = None,
    dataset: Annotated[
        list[str] | None,
        typer.Option(
            help="A dataset: a local file or folder (hashed), or URI@sha256:HEX (repeatable).",
            metavar="SPEC",
        ),
    ] = None,
    base_model: Annotated[
        str | None,
        typer.Option(help="The base model: a local model, or URI@sha256:HEX.", metavar="SPEC"),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            help="A hyperparameter K=V; V is read as JSON if it is, else as text (repeatable).",
            metavar="K=V",
        ),
    ] = None,
    entry_point: Annotated[
        str | None, typer.Option(help="What was run (train.py, a module, a command).")
    ] = None,
    builder_id: Annotated[
        str | None, typer.Option(help="Who built it (default: from CI variables, else this host).")
    ] = None,
    started: Annotated[
        str | None, typer.Option(help="When training started (RFC 3339).", metavar="TIME")
    ] = None,
    finished: Annotated[
        str | None,
        typer.Option(help="When training finished (RFC 3339; default: now).", metavar="TIME"),
    ] = None,
    code: Annotated[
        Path | None,
        typer.Option(help="A folder in the training code's git checkout (default: here)."),
    ] = None,
    inputs: Annotated[
        Path | None,
        typer.Option(
            help="A JSON file of the same: datasets, base_model, parameters, entry_point, "
            "builder_id, started, finished, code (options add to it or override it).",
            metavar="FILE.json",
        ),
    ] = None,
    policy: Annotated[
        Path | None,
        typer.Option(help="Verify the model's and the base model's bundles under this policy."),
    ] = None,
    signature: Annotated[
        Path | None, typer.Option(help="The model's bundle (default: model.sig / MODEL.sig).")
    ] = None,
    provenance: Annotated[
        Path | None,
        typer.Option(help="Where to write (default: model.provenance.sig / MODEL.provenance.sig)."),
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
        bool, typer.Option("--force", help="Replace a provenance bundle by another signer.")
    ] = False,
    json_output: JsonOption = False,
    quiet: ProgressQuietOption = False,
) -> None:
    """Write a signed model's signed SLSA provenance (MODEL/model.provenance.sig).

    Records the training code (git), datasets and base model with their
    digests, builder, times, entry point, hyperparameters and framework
    versions; signs with the same methods as sign.
    """
    from modelsign._slsa import parse_time  # noqa: PLC0415
    from modelsign.policy import Policy  # noqa: PLC0415
    from modelsign.provenance import attest as do_attest  # noqa: PLC0415

    with errors(json_output):
        not_a_folder(signature, "signature")
        not_a_folder(provenance, "provenance")
        given = _read_inputs(inputs) if inputs is not None else {}
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
        parameters = {**given.get("parameters", {}), **_params(param or [])}
        base = base_model if base_model is not None else given.get("base_model")
        code_dir = code if code is not None else given.get("code")
        with progress("attesting", quiet or json_output) as reporter:
            result = do_attest(
                model,
                signer,
                datasets=[*given.get("datasets", []), *(dataset or [])],
                base_model=base,
                params=parameters,
                entry_point=entry_point or given.get("entry_point"),
                builder_id=builder_id or given.get("builder_id"),
                started=parse_time(started or given.get("started"), "--started", UsageError),
                finished=parse_time(finished or given.get("finished"), "--finished", UsageError),
                code=code_dir,
                trust=Policy.load(policy) if policy is not None else None,
                signature=signature,
                provenance=provenance,
                force=force,
                progress=reporter,
            )
        if json_output:
            print_json(result.to_json())
        elif not quiet:
            typer.echo(f"attested {model} -> {result.path}")
            for line in describe(result):
                typer.echo(line)


def describe(prov: Provenance) -> list[str]:
    """The provenance in lines of text (values from a bundle shown safely)."""
    lines = [
        f"subject: {shown(prov.subject_name)} sha256:{prov.subject_digest}",
        f"builder: {shown(prov.builder_id)}",
    ]
    if prov.code is not None:
        lines.append(f"code: {shown(prov.code.describe())}")
    lines += [f"dataset: {shown(d.describe())}" for d in prov.datasets]
    if prov.base_model is not None:
        lines.append(f"base model: {shown(prov.base_model.describe())}")
    if prov.signed_by is not None:
        lines.append(f"provenance signed by: {prov.signed_by.describe()}")
    return lines


def _params(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise UsageError(f"--param {item!r}: give NAME=VALUE")
        try:
            out[name] = json.loads(text)
        except ValueError:
            out[name] = text
    return out


def _read_inputs(path: Path) -> dict[str, Any]:
    """The --inputs file: strict JSON, known keys only, values of the right kind."""
    from modelsign import _json  # noqa: PLC0415
    from modelsign._files import read_small  # noqa: PLC0415
    from modelsign.errors import ConfigError, MalformedBundleError  # noqa: PLC0415

    data = read_small(path, MAX_INPUTS_BYTES, "inputs", ConfigError)
    try:
        doc = _json.loads(data, str(path))
    except MalformedBundleError as e:
        raise ConfigError(f"--inputs {e}") from e
    if not isinstance(doc, dict):
        raise ConfigError(f"--inputs {path}: must be a JSON object")
    unknown = sorted(set(doc) - INPUT_KEYS)
    if unknown:
        raise ConfigError(f"--inputs {path}: unknown key(s) {', '.join(map(repr, unknown))}")
    datasets = doc.get("datasets", [])
    if not isinstance(datasets, list) or not all(isinstance(d, str) for d in datasets):
        raise ConfigError(f"--inputs {path}: datasets must be a list of strings")
    if not isinstance(doc.get("parameters", {}), dict):
        raise ConfigError(f"--inputs {path}: parameters must be an object")
    for text_key in ("base_model", "entry_point", "builder_id", "started", "finished", "code"):
        if text_key in doc and not isinstance(doc[text_key], str):
            raise ConfigError(f"--inputs {path}: {text_key} must be a string")
    # Local paths are relative to the file, as a policy's are.
    if "code" in doc:
        doc["code"] = str(path.parent / doc["code"])
    doc["datasets"] = [_relative(d, path.parent) for d in datasets]
    if "base_model" in doc:
        doc["base_model"] = _relative(doc["base_model"], path.parent)
    return doc


def _relative(spec: str, base: Path) -> str:
    """A local path relative to ``base``; a pinned URI (``URI@sha256:HEX``) as it is."""
    return spec if "@sha256:" in spec else str(base / spec)
