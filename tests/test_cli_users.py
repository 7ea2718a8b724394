"""The command line as new users meet it (issue 12): each bug they hit has a
regression test here, through the real CLI and the Python API alike."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import modelsign
from modelsign.errors import ConfigError, OverwriteError, UnsafeModelError, UsageError
from modelsign.policy import Policy

CLI = [sys.executable, "-m", "modelsign"]


def cli(*args: object, env: dict[str, str] | None = None, stdin: str | None = None) -> Any:
    base = {k: v for k, v in os.environ.items() if k not in ("MODELSIGN_POLICY",)}
    return subprocess.run(
        [*CLI, *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        env={**base, **(env or {})},
        input=stdin,
        timeout=120,
    )


@pytest.fixture
def model(tmp_path: Path) -> Path:
    root = tmp_path / "model"
    root.mkdir()
    (root / "weights.bin").write_bytes(b"\x00\x01" * 100)
    (root / "config.json").write_text("{}")
    return root


# 1. A folder where a file is expected: a usage error naming it, never a crash.


@pytest.mark.parametrize(
    "args",
    [
        ("sign", "MODEL", "--key", "DIR"),
        ("verify", "MODEL", "--key", "DIR"),
        ("verify", "MODEL", "--policy", "DIR"),
        ("verify", "MODEL", "--key", "PUB", "--signature", "DIR"),
        ("run", "--policy", "DIR", "--", "true"),
    ],
    ids=lambda a: " ".join(a),
)
def test_a_folder_where_a_file_is_expected_is_a_usage_error(
    tmp_path: Path, model: Path, keypair: tuple[Path, Path], args: tuple[str, ...]
) -> None:
    folder = tmp_path / "a-folder"
    folder.mkdir()
    modelsign.sign(model, keypair[0])
    subst = {"MODEL": model, "DIR": folder, "PUB": keypair[1]}
    result = cli(*(subst.get(a, a) for a in args))
    assert result.returncode == 2, result.stderr
    assert f"{folder}: is a folder" in result.stderr
    assert "internal error" not in result.stderr


def test_a_folder_as_a_key_or_policy_from_python(tmp_path: Path, model: Path) -> None:
    with pytest.raises(UsageError, match="is a folder, not a key file"):
        modelsign.sign(model, tmp_path)
    with pytest.raises(ConfigError, match="is a folder, not a policy file"):
        Policy.load(tmp_path)


def test_inspect_of_a_model_folder_inspects_its_bundle(
    model: Path, keypair: tuple[Path, Path]
) -> None:
    modelsign.sign(model, keypair[0])
    result = cli("inspect", model)
    assert result.returncode == 0, result.stderr
    assert f"bundle:      {model / 'model.sig'}" in result.stdout
    assert modelsign.inspect_bundle(model).signature == model / "model.sig"


# 2. A model path that does not exist is a usage error; one without a bundle, a rejection.


def test_a_mistyped_model_path_is_a_usage_error(
    tmp_path: Path, model: Path, keypair: tuple[Path, Path]
) -> None:
    missing = tmp_path / "nope"
    result = cli("verify", missing, "--key", keypair[1])
    assert result.returncode == 2, result.stderr
    assert f"{missing}: no such file or folder" in result.stderr
    with pytest.raises(UsageError, match="no such file or folder"):
        modelsign.verify(missing, [keypair[1]])
    unsigned = cli("verify", model, "--key", keypair[1])
    assert unsigned.returncode == 1
    assert "no signature file" in unsigned.stderr


# 3. A scope that names no folder is an error when the policy loads.


def test_a_scope_that_does_not_exist_is_refused_when_the_policy_loads(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (tmp_path / "srv").mkdir()
    policy = etc / "policy.toml"
    policy.write_text(f'[trust]\nkeys = ["{keypair[1]}"]\n[enforce]\nscope = ["srv"]\n')
    with pytest.raises(ConfigError, match=r"scope '.*/etc/srv' is not a folder"):
        Policy.load(policy)
    result = cli("run", "--policy", policy, "--", sys.executable, "-c", "pass")
    assert result.returncode == 2
    assert "is not a folder" in result.stderr
    policy.write_text(f'[trust]\nkeys = ["{keypair[1]}"]\n[enforce]\nscope = ["../srv"]\n')
    assert Policy.load(policy).scope == (str(tmp_path / "srv"),)


# 6. sign refuses to replace another signer's bundle unless forced.


def test_sign_refuses_to_replace_another_signers_bundle(
    model: Path, keypair: tuple[Path, Path], other_keypair: tuple[Path, Path]
) -> None:
    modelsign.sign(model, keypair[0])
    first = modelsign.sign(model, keypair[0])  # the same signer: re-signing is fine
    before = first.signature.read_bytes()
    theirs = first.signed_by.key_id
    with pytest.raises(OverwriteError, match=f"already holds a signature by key {theirs}"):
        modelsign.sign(model, other_keypair[0])
    assert first.signature.read_bytes() == before
    result = cli("sign", model, "--key", other_keypair[0], "-q")
    assert result.returncode == 2
    assert f"by key {theirs}" in result.stderr
    assert "--force" in result.stderr
    assert first.signature.read_bytes() == before
    result = cli("sign", model, "--key", other_keypair[0], "-q", "--force")
    assert result.returncode == 0, result.stderr
    assert modelsign.verify(model, [other_keypair[1]]).files


def test_sign_refuses_to_replace_an_unreadable_bundle(
    model: Path, keypair: tuple[Path, Path]
) -> None:
    (model / "model.sig").write_text("not a bundle")
    with pytest.raises(OverwriteError, match="a bundle that cannot be read"):
        modelsign.sign(model, keypair[0])
    assert modelsign.sign(model, keypair[0], force=True).signature.exists()


# 8. A symlink in a model folder is refused with what to do.


def test_a_symlink_in_a_model_says_which_path_to_ignore(
    model: Path, keypair: tuple[Path, Path]
) -> None:
    (model / "checkpoint-30").mkdir()
    (model / "checkpoint-30" / "w.bin").write_bytes(b"w")
    (model / "latest").symlink_to("checkpoint-30")
    with pytest.raises(UnsafeModelError, match=r"--ignore-path latest"):
        modelsign.sign(model, keypair[0])
    result = cli("sign", model, "--key", keypair[0], "-q")
    assert result.returncode == 1
    assert "--ignore-path latest" in result.stderr
    assert modelsign.sign(model, keypair[0], ignore_paths=["latest"]).signature.exists()
    assert json.loads(cli("verify", model, "--key", keypair[1], "--json").stdout)["verified"]


# 7. The passphrase: ambient MODELSIGN_PASSPHRASE, an explicit file, a prompt.


def test_an_ambient_passphrase_does_not_stop_an_unencrypted_key(
    model: Path, tmp_path: Path
) -> None:
    assert cli("keygen", "--output", tmp_path / "plain", "--no-passphrase").returncode == 0
    result = cli(
        "sign", model, "--key", tmp_path / "plain.key", "-q", env={"MODELSIGN_PASSPHRASE": "x"}
    )
    assert result.returncode == 0, result.stderr
    explicit = tmp_path / "pw"
    explicit.write_text("x\n")
    result = cli(
        "sign", model, "--key", tmp_path / "plain.key", "--passphrase-file", explicit, "--force"
    )
    assert result.returncode == 2
    assert "not encrypted but a passphrase was given with --passphrase-file" in result.stderr


def test_an_encrypted_key_is_prompted_for_on_a_terminal(model: Path, tmp_path: Path) -> None:
    import pty
    import select

    made = cli("keygen", "--output", tmp_path / "enc", env={"MODELSIGN_PASSPHRASE": "s3cret"})
    assert made.returncode == 0, made.stderr
    env = {k: v for k, v in os.environ.items() if k not in ("MODELSIGN_PASSPHRASE",)}
    pid, fd = pty.fork()
    if pid == 0:  # the child: modelsign on a terminal
        os.execvpe(
            sys.executable, [*CLI, "sign", str(model), "--key", str(tmp_path / "enc.key")], env
        )
    seen = b""
    while b"passphrase for" not in seen:
        ready, _, _ = select.select([fd], [], [], 60)
        assert ready, seen
        seen += os.read(fd, 1024)
    os.write(fd, b"s3cret\n")
    after = b""
    while True:
        ready, _, _ = select.select([fd], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(fd, 1024)
        except OSError:
            break
        if not chunk:
            break
        after += chunk
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, (seen + after).decode(errors="replace")
    assert b"s3cret" not in seen + after  # never echoed
    assert b"signed" in after
    assert (model / "model.sig").exists()


# 5. keygen --output DIR/ writes a key inside the folder.


@pytest.mark.parametrize("form", ["trailing slash", "existing folder"])
def test_keygen_into_a_folder(tmp_path: Path, form: str) -> None:
    keys = tmp_path / "keys"
    if form == "existing folder":
        keys.mkdir()
    target = f"{keys}/" if form == "trailing slash" else str(keys)
    result = cli("keygen", "--output", target, "--no-passphrase")
    assert result.returncode == 0, result.stderr
    assert (keys / "modelsign.key").exists()
    assert (keys / "modelsign.pub").exists()
    assert not (tmp_path / "keys.key").exists()


# 9. The CLI verifies a Hugging Face cache snapshot, with the hook's strict rule.


def _snapshot(tmp_path: Path, keypair: tuple[Path, Path]) -> Path:
    import hashlib
    import shutil

    source = tmp_path / "source"
    source.mkdir()
    (source / "config.json").write_text('{"a": 1}')
    (source / "model.safetensors").write_bytes(b"weights" * 10)
    modelsign.sign(source, keypair[0])
    repo = tmp_path / "hub" / "models--org--tiny"
    blobs, snapshot = repo / "blobs", repo / "snapshots" / "rev1"
    blobs.mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "model.sig"):
        digest = hashlib.sha256((source / name).read_bytes()).hexdigest()
        shutil.copyfile(source / name, blobs / digest)
        (snapshot / name).symlink_to(f"../../blobs/{digest}")
    return snapshot


def test_verify_a_hugging_face_cache_snapshot(tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    snapshot = _snapshot(tmp_path, keypair)
    result = cli("verify", snapshot, "--key", keypair[1])
    assert result.returncode == 0, result.stderr
    assert "2 files match" in result.stdout
    # The strict rule: a link out of the repository's own blobs/ is refused.
    outside = tmp_path / "outside.json"
    outside.write_text('{"a": 1}')
    (snapshot / "config.json").unlink()
    (snapshot / "config.json").symlink_to(outside)
    result = cli("verify", snapshot, "--key", keypair[1])
    assert result.returncode == 1
    assert "symbolic link" in result.stderr


# Conventions: several models, --quiet, -h, --version, what to do next.


def test_verify_several_models_reports_each(
    tmp_path: Path, model: Path, keypair: tuple[Path, Path]
) -> None:
    modelsign.sign(model, keypair[0])
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.bin").write_bytes(b"a")
    result = cli("verify", model, other, "--key", keypair[1])
    assert result.returncode == 1
    assert f"verified {model}: 2 files match" in result.stdout
    assert f"{other / 'model.sig'}: no signature file" in result.stderr
    assert "what to do: sign the model" in result.stderr
    modelsign.sign(other, keypair[0])
    assert cli("verify", model, other, "--key", keypair[1]).returncode == 0
    assert cli("verify", model, tmp_path / "nope", "--key", keypair[1]).returncode == 2
    both = cli("verify", model, other, "--key", keypair[1], "--signature", model / "model.sig")
    assert both.returncode == 2
    assert "single MODEL" in both.stderr


def test_quiet_prints_nothing_on_success(
    tmp_path: Path, model: Path, keypair: tuple[Path, Path]
) -> None:
    for args in (
        ("keygen", "--output", tmp_path / "k", "--no-passphrase", "-q"),
        ("sign", model, "--key", keypair[0], "-q"),
        ("verify", model, "--key", keypair[1], "-q"),
    ):
        result = cli(*args)
        assert result.returncode == 0, result.stderr
        assert (result.stdout, result.stderr) == ("", "")
    (model / "config.json").write_text('{"x": 1}')
    refused = cli("verify", model, "--key", keypair[1], "-q")
    assert refused.returncode == 1
    assert "config.json: digest mismatch" in refused.stderr
    assert "what to do: restore the files" in refused.stderr


def test_help_and_version() -> None:
    short, long = cli("-h"), cli("--help")
    assert short.returncode == long.returncode == 0
    assert short.stdout == long.stdout
    assert "verify" in short.stdout
    assert cli("verify", "-h").stdout.startswith("Usage: ")
    version = cli("--version")
    assert (version.returncode, version.stdout.strip()) == (0, f"modelsign {modelsign.__version__}")


# Warn mode logs once per file, with fields a log pipeline reads.


def test_warn_mode_logs_structured_fields_once_per_file(
    tmp_path: Path, model: Path, keypair: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    import numpy as np

    from modelsign import hooks

    np.save(model / "a.npy", np.arange(3))
    modelsign.sign(model, keypair[0])
    (model / "a.npy").write_bytes((model / "a.npy").read_bytes()[:-1] + b"\x09")
    policy = tmp_path / "warn.toml"
    policy.write_text(f'[trust]\nkeys = ["{keypair[1]}"]\n[enforce]\nmode = "warn"\n')
    try:
        with hooks.enforce(policy), caplog.at_level(logging.WARNING, logger="modelsign"):
            np.load(model / "a.npy", mmap_mode="r")
            np.load(model / "a.npy")
    finally:
        hooks.uninstall()
    records = [r for r in caplog.records if hasattr(r, "modelsign")]
    assert len(records) == 1
    fields = records[0].modelsign
    assert fields["file"] == str(model / "a.npy")
    assert fields["reason"] == "FileDigestMismatchError"
    assert fields["expected"] != fields["actual"]
    assert fields["policy"].endswith("mode warn")


# status: anchors, scope, and a broken policy as a finding.


def test_status_reports_a_broken_policy_as_a_finding(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[trust]\nkeys = []\n")
    result = cli("status", env={"MODELSIGN_POLICY": str(broken)})
    assert result.returncode == 0, result.stderr
    assert "enforcement: off" in result.stdout
    assert "FINDING: MODELSIGN_POLICY=" in result.stdout
    assert "no trust anchor" in result.stdout
