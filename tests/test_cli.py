"""The command line, run as a user runs it: a subprocess, exit codes, output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from modelsign import keys
from modelsign.bundle import Bundle
from tests.conftest import flip_byte, shared

MakeModel = Callable[..., Path]


def cli(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelsign", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )


def test_help_lists_commands() -> None:
    result = cli("--help")
    assert result.returncode == 0
    for command in ("keygen", "sign", "verify", "inspect"):
        assert command in result.stdout


def test_keygen_sign_verify_tamper(tmp_path: Path, make_model: MakeModel) -> None:
    model = make_model()
    pw = tmp_path / "pw"
    pw.write_text("correct horse\n")
    result = cli("keygen", "--output", tmp_path / "k", "--passphrase-file", pw)
    assert result.returncode == 0, result.stderr
    key_id = keys.load_public_key(tmp_path / "k.pub").key_id
    assert key_id in result.stdout
    assert oct((tmp_path / "k.key").stat().st_mode & 0o777) == "0o600"

    result = cli("sign", model, "--key", tmp_path / "k.key", "--passphrase-file", pw, "--quiet")
    assert result.returncode == 0, result.stderr
    assert (model / "model.sig").exists()

    result = cli("verify", model, "--key", tmp_path / "k.pub")
    assert result.returncode == 0, result.stderr
    assert "verified" in result.stdout
    assert key_id in result.stdout

    flip_byte(model / "model.pt")
    result = cli("verify", model, "--key", tmp_path / "k.pub")
    assert result.returncode == 1
    assert "model.pt: digest mismatch: expected" in result.stderr
    assert "Traceback" not in result.stderr


def test_keygen_needs_a_passphrase_choice(tmp_path: Path) -> None:
    env = {"MODELSIGN_PASSPHRASE": ""}
    result = cli("keygen", "--output", tmp_path / "k", env=env)
    assert result.returncode == 2
    assert "--no-passphrase" in result.stderr
    assert not (tmp_path / "k.key").exists()


def test_keygen_passphrase_from_environment(tmp_path: Path) -> None:
    result = cli(
        "keygen",
        "--output",
        tmp_path / "k",
        "--algorithm",
        "ecdsa-p256",
        env={"MODELSIGN_PASSPHRASE": "s3cret"},
    )
    assert result.returncode == 0, result.stderr
    assert (
        keys.load_private_key(tmp_path / "k.key", b"s3cret").public_key().algorithm == "ecdsa-p256"
    )


def test_keygen_never_overwrites(tmp_path: Path) -> None:
    (tmp_path / "k.pub").write_text("precious")
    result = cli("keygen", "--output", tmp_path / "k", "--no-passphrase")
    assert result.returncode == 2
    assert "already exists" in result.stderr
    assert (tmp_path / "k.pub").read_text() == "precious"
    assert not (tmp_path / "k.key").exists()


def test_verify_json(tmp_path: Path, make_model: MakeModel, keypair: tuple[Path, Path]) -> None:
    model = make_model()
    assert cli("sign", model, "--key", keypair[0], "-q").returncode == 0
    result = cli("verify", model, "--key", keypair[1], "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["verified"] is True
    assert doc["files"] == ["config.json", "model.pt", "tokenizer/vocab.txt"]

    (model / "config.json").write_text("{}")
    (model / "extra").write_text("x")
    result = cli("verify", model, "--key", keypair[1], "--json")
    assert result.returncode == 1
    doc = json.loads(result.stdout)
    assert doc["verified"] is False
    assert doc["error"]["type"] == "ModelMismatchError"
    kinds = {(m["kind"], m["name"]) for m in doc["error"]["mismatches"]}
    assert kinds == {("digest", "config.json"), ("extra", "extra")}
    digest = next(m for m in doc["error"]["mismatches"] if m["kind"] == "digest")
    assert len(digest["expected"]) == 64
    assert len(digest["actual"]) == 64
    assert digest["expected"] != digest["actual"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("verify", "MODEL"), 2, "--key"),
        (("verify", "MODEL", "--key", "/nonexistent.pub"), 2, "no key file"),
        (("verify", "MODEL", "--policy", "/nonexistent.toml"), 2, "no policy file"),
        (("verify", "MODEL", "--bogus-flag"), 2, "No such option"),
        (("sign", "MODEL", "--key", "PUB"), 2, "not encrypted|cannot load private key"),
        (("sign", "MODEL", "--key", "KEY", "--hash", "md5"), 2, "unknown hash type"),
        (
            ("keygen", "--output", "OUT", "--algorithm", "rsa", "--no-passphrase"),
            2,
            "unknown algorithm",
        ),
    ],
)
def test_usage_errors_exit_2(
    tmp_path: Path,
    make_model: MakeModel,
    keypair: tuple[Path, Path],
    args: tuple[str, ...],
    code: int,
    message: str,
) -> None:
    model = make_model()
    subst = {
        "MODEL": str(model),
        "PUB": str(keypair[1]),
        "KEY": str(keypair[0]),
        "OUT": str(tmp_path / "o"),
    }
    result = cli(*(subst.get(a, a) for a in args))
    assert result.returncode == code, result.stderr
    import re

    assert re.search(message, result.stderr), result.stderr
    assert "Traceback" not in result.stderr


def test_rejections_exit_1(
    make_model: MakeModel, keypair: tuple[Path, Path], other_keypair: tuple[Path, Path]
) -> None:
    model = make_model()
    result = cli("verify", model, "--key", keypair[1])
    assert result.returncode == 1
    assert "no signature file" in result.stderr
    assert cli("sign", model, "--key", keypair[0], "-q").returncode == 0
    result = cli("verify", model, "--key", other_keypair[1])
    assert result.returncode == 1
    assert "not trusted" in result.stderr
    (model / "model.sig").write_text("{not json")
    result = cli("verify", model, "--key", keypair[1])
    assert result.returncode == 1
    assert "not valid JSON" in result.stderr


def test_inspect(make_model: MakeModel, keypair: tuple[Path, Path]) -> None:
    model = make_model()
    assert cli("sign", model, "--key", keypair[0], "-q").returncode == 0
    result = cli("inspect", model / "model.sig")
    assert result.returncode == 0, result.stderr
    assert "UNVERIFIED" in result.stdout
    assert keys.load_public_key(keypair[1]).key_id in result.stdout
    assert "[zip]" in result.stdout
    doc = json.loads(cli("inspect", model / "model.sig", "--json").stdout)
    assert doc["verified"] is False
    assert doc["model_name"] == "model"
    pt = next(f for f in doc["files"] if f["name"] == "model.pt")
    assert pt["archive"] == "zip"
    assert pt["members"]


def test_inspect_reference_bundle() -> None:
    sig = shared("oms-compat", "v1.1.0-elliptic-key", "model.sig")
    result = cli("inspect", sig, "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["signer"]["key_id"].startswith("e8450dec")
    assert [f["name"] for f in doc["files"]] == ["signme-1", "signme-2"]


def test_verify_with_policy(
    tmp_path: Path, make_model: MakeModel, keypair: tuple[Path, Path]
) -> None:
    model = make_model()
    assert cli("sign", model, "--key", keypair[0], "-q").returncode == 0
    policy = tmp_path / "policy.toml"
    policy.write_text(f'[trust]\nkeys = ["{keypair[1]}"]\n')
    assert cli("verify", model, "--policy", policy).returncode == 0
    policy.write_text(f'[trust]\nkeys = ["{keypair[1]}"]\nmode = "warn"\n')
    result = cli("verify", model, "--policy", policy)
    assert result.returncode == 2
    assert "unknown key" in result.stderr


def test_killed_signing_leaves_old_or_complete_bundle(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    """SIGKILL at several points of a sign: the bundle is the old one or a whole new one."""
    import signal
    import time

    model = tmp_path / "model"
    model.mkdir()
    with open(model / "big.bin", "wb") as f:
        f.truncate(256 * 1024 * 1024)  # sparse: cheap on disk, real bytes to hash
    (model / "config.json").write_text("{}")
    assert cli("sign", model, "--key", keypair[0], "-q").returncode == 0
    old = (model / "model.sig").read_bytes()
    (model / "config.json").write_text('{"v": 2}')  # a new signature would differ
    outcomes = []
    for delay in (0.05, 0.2, 0.4, 0.8):
        proc = subprocess.Popen(
            [sys.executable, "-m", "modelsign", "sign", str(model), "--key", str(keypair[0]), "-q"]
        )
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        current = (model / "model.sig").read_bytes()
        Bundle.from_bytes(current)  # complete, whichever it is
        result = cli("verify", model, "--key", keypair[1])
        outcomes.append("old" if current == old else "new")
        if current == old:  # intact, so it refuses the changed config.json
            assert result.returncode == 1, result.stderr
            assert "config.json" in result.stderr
        else:  # the new one, whole
            assert result.returncode == 0, result.stderr
    print("sign killed after (0.05, 0.2, 0.4, 0.8) s:", outcomes)  # shown with -s


def test_key_paths_import_neither_sigstore_nor_torch(
    make_model: MakeModel, keypair: tuple[Path, Path]
) -> None:
    model = make_model()
    code = (
        "import sys\n"
        "from modelsign._cli import app\n"
        "try:\n"
        f"    app(['sign', {str(model)!r}, '--key', {str(keypair[0])!r}, '-q'])\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "try:\n"
        f"    app(['verify', {str(model)!r}, '--key', {str(keypair[1])!r}])\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('sigstore', 'torch', 'pydantic')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_help_imports_no_heavy_package() -> None:
    """Start-up: --help is plain text; rich (help formatting), pydantic (typer
    0.29's parameter coercion), sigstore and torch stay unimported."""
    code = (
        "import sys\n"
        "from modelsign._cli import app\n"
        "try:\n"
        "    app(['--help'])\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'rich', 'pydantic', 'sigstore', 'torch'}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "Commands:" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_unsafe_ignore_path_is_a_usage_error(
    make_model: MakeModel, keypair: tuple[Path, Path]
) -> None:
    model = make_model()
    assert cli("sign", model, "--key", keypair[0], "-q").returncode == 0
    result = cli("verify", model, "--key", keypair[1], "--ignore-path", "../a.bin")
    assert result.returncode == 2
    assert "ignore path: unsafe path name '../a.bin'" in result.stderr


def test_help_imports_no_crypto_torch_or_sigstore() -> None:
    """`modelsign --help` stays fast: the package imports its parts lazily."""
    code = (
        "import sys\n"
        "from modelsign._cli import app\n"
        "try:\n"
        "    app(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('cryptography', 'torch', 'sigstore', 'numpy')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("command", ["sign", "verify"])
def test_help_shows_defaults_that_rich_markup_could_eat(command: str) -> None:
    result = cli(command, "--help", env={"COLUMNS": "200"})
    assert result.returncode == 0
    assert "MODEL/model.sig" in result.stdout
