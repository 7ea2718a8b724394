"""``modelsign run`` and ``modelsign status``: enforcement in an environment."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from modelsign._cli._app import app, errors, message_of, print_json
from modelsign.errors import UsageError

# Shared with `convert`.
WeakerSandboxOption = Annotated[
    list[str] | None,
    typer.Option(
        help="Run even where this system lacks LAYER (netns, landlock or seccomp): a weaker "
        "sandbox (repeatable).",
        metavar="LAYER",
    ),
]


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def run(
    ctx: typer.Context,
    policy: Annotated[Path, typer.Option(help="The TOML trust policy to enforce.")],
    sandbox: Annotated[
        bool,
        typer.Option(
            "--sandbox",
            help="Restrict the program: every file read-only but under --writable, no chmod or "
            "chown, no ptrace, mount or kernel keyring (Landlock, seccomp, no_new_privs).",
        ),
    ] = False,
    writable: Annotated[
        list[Path] | None,
        typer.Option(
            help="With --sandbox: a folder the program may write (repeatable).", metavar="DIR"
        ),
    ] = None,
    no_network: Annotated[
        bool, typer.Option("--no-network", help="With --sandbox: no network at all.")
    ] = False,
    weaker_sandbox: WeakerSandboxOption = None,
) -> None:
    """Run a program with enforcement active from its first line.

    modelsign run --policy P -- python serve.py args...

    Sets MODELSIGN_POLICY for the program; the modelsign-autoload.pth hook of
    this environment then installs the loader hooks before the program's first
    import. A program that is a Python without modelsign is refused, so that
    enforcement is never silently off. Exits with the program's exit code.

    With --sandbox the program cannot change the policy, the models or any
    file outside the --writable folders (docs/adr/0006-sandbox.md).
    """
    from modelsign.policy import Policy  # noqa: PLC0415

    with errors():
        command = list(ctx.args)
        if command[:1] == ["--"]:
            command = command[1:]
        if not command:
            raise UsageError("give the program to run after --, e.g. -- python serve.py")
        loaded = Policy.load(policy)  # refuse a bad policy here, with a clear message
        env = {**os.environ, "MODELSIGN_POLICY": str(policy.resolve())}
        _check_enforcement(command, env)
        if sandbox:
            from modelsign._sandbox import restrict_for_run  # noqa: PLC0415

            restrict_for_run(
                writable=writable or [],
                protected=[policy, *protected_paths(loaded)],
                no_network=no_network,
                weaker=weaker_sandbox or (),
            )
        elif writable or no_network or weaker_sandbox:
            raise UsageError("--writable, --no-network and --weaker-sandbox need --sandbox")
        try:
            os.execvpe(command[0], command, env)  # noqa: S606 - the user's own program
        except OSError as e:
            raise UsageError(f"cannot run {command[0]!r}: {e.strerror}") from e


def protected_paths(policy: Any) -> list[Path]:
    """What a sandboxed program must not be able to change: the files the
    policy trusts (bundles, keys, CAs) and the folders it guards."""
    paths = [*policy.bundles, *(Path(folder) for folder in policy.scope)]
    paths += [Path(k.source) for k in policy.keys if os.path.exists(k.source)]
    paths += [Path(c.ca) for c in policy.certificates]
    return paths


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
    """Say whether enforcement is active in this environment: under which
    policy, trusting whom, where, and what it covers; a policy that cannot be
    loaded is reported as a finding."""
    from modelsign._policyprovenance import ProvenanceRules  # noqa: PLC0415
    from modelsign._policyrules import Threshold  # noqa: PLC0415

    with errors(json_output):
        state = status_document()
        if json_output:
            print_json(state)
            return
        if state["active"]:
            policy = state["policy"]
            typer.echo(f"enforcement: ACTIVE (policy {policy['source']}, mode {policy['mode']})")
        else:
            typer.echo("enforcement: off (set MODELSIGN_POLICY or use `modelsign run`)")
        typer.echo(f"MODELSIGN_POLICY: {state['MODELSIGN_POLICY'] or 'not set'}")
        typer.echo(f"autoload hook: {state['autoload_pth'] or 'not installed'}")
        policy = state["policy"]
        if policy is not None:
            typer.echo("trusted:")
            for anchor in policy["anchors"]:
                typer.echo(f"  {_anchor_line(anchor)}{_terms_text(anchor)}")
            for rule in policy["thresholds"]:
                typer.echo(f"threshold: {Threshold.from_json(rule).describe()}")
            for pin in policy["pins"]:
                typer.echo(f"pin: {pin['path']} must be signed as {pin['name']}")
            if policy["rollback_state"] is not None:
                typer.echo(f"rollback state: {policy['rollback_state']}")
            rules = ProvenanceRules.from_json(policy["provenance"])
            typer.echo(f"provenance: {rules.describe()}")
            scope = ", ".join(policy["scope"]) or "every file"
            typer.echo(f"scope: {scope}")
            typer.echo(
                f"discovery: {'on' if policy['discover'] else 'off'} "
                "(FILE.sig beside a file, the nearest model.sig above it)"
            )
            extra = ", ".join(policy["allowed_globals"]) or "none"
            typer.echo(
                f"unverified unpickling: {policy['unverified_pickles']} "
                f"(globals beyond the allowlist: {extra})"
            )
        typer.echo(f"patched when imported: {', '.join(state['loaders'])}")
        typer.echo(f"loaders importable here: {', '.join(state['importable']) or 'none'}")
        for finding in state["findings"]:
            typer.echo(f"FINDING: {finding}")


def _terms_text(anchor: dict[str, Any]) -> str:
    """``"name": from ..., until ..., REVOKED`` (nothing without terms)."""
    parts = []
    if anchor["not_before"]:
        parts.append(f"from {anchor['not_before']}")
    if anchor["not_after"]:
        parts.append(f"until {anchor['not_after']}")
    if anchor["revoked"] is True:
        parts.append("REVOKED")
    elif anchor["revoked"]:
        parts.append(f"REVOKED at {anchor['revoked']}")
    name = f' "{anchor["name"]}"' if anchor["name"] else ""
    return f"{name}: {', '.join(parts)}" if parts else name


def _anchor_line(anchor: dict[str, Any]) -> str:
    if anchor["kind"] == "key":
        return f"key {anchor['key_id']} ({anchor['algorithm']}, {anchor['source']})"
    if anchor["kind"] == "sigstore":
        return f"Sigstore identity {anchor['identity']} (issuer {anchor['issuer']})"
    return f"certificates for {anchor['identity']} from CA {anchor['ca']}"


def status_document() -> dict[str, Any]:
    """Enforcement as this environment sets it up for the Python processes
    started in it (the modelsign command itself does not enforce): what
    ``status --json`` prints, and ``doctor --json`` shows under ``enforcement``."""
    import importlib.util  # noqa: PLC0415

    from modelsign._environment import enforcement, policy_json  # noqa: PLC0415
    from modelsign.hooks import watched_modules  # noqa: PLC0415
    from modelsign.policy import ENV_VAR  # noqa: PLC0415

    state = enforcement()
    findings: list[str] = []
    if state.error is not None:
        findings.append(
            f"{ENV_VAR}={state.variable!r} cannot be loaded: {message_of(state.error)}; every "
            "Python process started in this environment stops with exit code 2 until it is fixed"
        )
    if state.variable is not None and not state.autoload_installed:
        findings.append(
            f"{ENV_VAR} is set but the autoload hook is not installed ({state.autoload}): "
            "enforcement is not active; reinstall modelsign in this environment"
        )
    loaders = ("torch", "numpy", "joblib", "safetensors", "transformers")
    return {
        "active": state.active,
        "MODELSIGN_POLICY": state.variable,
        "autoload_pth": str(state.autoload) if state.autoload_installed else None,
        "policy": None if state.policy is None else policy_json(state.policy),
        "findings": findings,
        "loaders": watched_modules(),
        "importable": [m for m in loaders if importlib.util.find_spec(m) is not None],
    }
