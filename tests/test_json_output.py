"""Every command's --json output, validated against its JSON Schema in
manifests/cli/: real runs, real bundles, success and refusal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import referencing

import modelsign
from modelsign.keys import generate, write_keypair
from tests.conftest import flip_byte, shared

SCHEMAS = Path(__file__).resolve().parents[1] / "manifests" / "cli"
CLI = [sys.executable, "-m", "modelsign"]


def _registry() -> referencing.Registry:
    resources = []
    for path in SCHEMAS.glob("*.schema.json"):
        schema = json.loads(path.read_text())
        resource = referencing.Resource.from_contents(schema)
        resources += [(path.name, resource), (schema["$id"], resource)]
    return referencing.Registry().with_resources(resources)


def validate(document: Any, schema_name: str) -> None:
    schema = json.loads((SCHEMAS / schema_name).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema, registry=_registry())
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]


def _cli(*args: object, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *map(str, args)], capture_output=True, text=True, check=False, env=env
    )


def run_json(*args: object, env: dict[str, str] | None = None) -> tuple[int, Any]:
    result = _cli(*args, "--json", env=env)
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


@pytest.fixture
def model(tmp_path: Path, keypair: tuple[Path, Path]) -> Path:
    root = tmp_path / "model"
    (root / "sub").mkdir(parents=True)
    (root / "w.bin").write_bytes(b"w" * 3000)
    (root / "sub" / "c.json").write_text("{}")
    modelsign.sign(root, keypair[0])
    return root


def test_verify_json_success_and_every_refusal(
    tmp_path: Path, model: Path, keypair: tuple[Path, Path], other_keypair: tuple[Path, Path]
) -> None:
    code, doc = run_json("verify", model, "--key", keypair[1])
    assert code == 0
    validate(doc, "verify.schema.json")
    assert doc["signed_by"]["method"] == "key"
    code, doc = run_json("verify", model, "--key", other_keypair[1])
    assert (code, doc["error"]["type"]) == (1, "UntrustedSignerError")
    validate(doc, "verify.schema.json")
    flip_byte(model / "w.bin")
    (model / "extra").write_text("x")
    (model / "sub" / "c.json").unlink()
    code, doc = run_json("verify", model, "--key", keypair[1])
    assert (code, doc["error"]["type"]) == (1, "ModelMismatchError")
    assert {m["kind"] for m in doc["error"]["mismatches"]} == {"digest", "extra", "missing"}
    validate(doc, "verify.schema.json")
    code, doc = run_json("verify", model)
    assert code == 2
    validate(doc, "verify.schema.json")


def test_verify_json_of_a_shard_bundle(tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    model = tmp_path / "m"
    model.mkdir()
    (model / "big.bin").write_bytes(bytes(range(256)) * 100)
    (model / "small.bin").write_bytes(b"s" * 10)
    modelsign.sign(model, keypair[0], shard_size=64)
    code, doc = run_json("verify", model, "--key", keypair[1])
    assert code == 0
    validate(doc, "verify.schema.json")
    (model / "big.bin").write_bytes(bytes(256) * 100)
    (model / "small.bin").write_bytes(b"s" * 11)
    code, doc = run_json("verify", model, "--key", keypair[1])
    assert code == 1
    kinds = [m["kind"] for m in doc["error"]["mismatches"]]
    assert {"shards", "size", "digest"} <= set(kinds)
    validate(doc, "verify.schema.json")


@pytest.mark.parametrize(
    "vector",
    [
        ("oms-compat", "v1.1.0-elliptic-key", "model.sig"),
        ("oms-compat", "v1.1.0-certificate", "model.sig"),
        ("oms-compat", "v1.1.0-sigstore", "model.sig"),
        ("oms-compat", "v0.3.1-elliptic-key", "model.sig"),
    ],
    ids=lambda v: v[1],
)
def test_inspect_json_of_real_bundles(vector: tuple[str, ...]) -> None:
    code, doc = run_json("inspect", shared(*vector))
    assert code == 0
    validate(doc, "inspect.schema.json")


def test_inspect_json_of_modelsign_bundles_and_a_refusal(model: Path, tmp_path: Path) -> None:
    code, doc = run_json("inspect", model / "model.sig")
    assert code == 0
    validate(doc, "inspect.schema.json")
    bad = tmp_path / "bad.sig"
    bad.write_text("{}")
    code, doc = run_json("inspect", bad)
    assert code == 1
    validate(doc, "inspect.schema.json")


def test_status_json_off_and_on(tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MODELSIGN_POLICY"}
    code, doc = run_json("status", env=env)
    assert (code, doc["active"]) == (0, False)
    validate(doc, "status.schema.json")
    policy = tmp_path / "p.toml"
    policy.write_text(f'[trust]\nkeys = ["{keypair[1]}"]\n[enforce]\nallowed_globals = ["a.B"]\n')
    code, doc = run_json("status", env={**env, "MODELSIGN_POLICY": str(policy)})
    assert (code, doc["active"]) == (0, True)
    assert doc["policy"]["allowed_globals"] == ["a.B"]
    assert [a["kind"] for a in doc["policy"]["anchors"]] == ["key"]
    validate(doc, "status.schema.json")
    code, doc = run_json("status", env={**env, "MODELSIGN_POLICY": str(tmp_path / "nope.toml")})
    assert (code, doc["active"], doc["policy"]) == (0, False, None)
    assert "cannot be loaded" in doc["findings"][0]
    validate(doc, "status.schema.json")


def test_verify_json_of_several_models(
    tmp_path: Path, model: Path, keypair: tuple[Path, Path]
) -> None:
    second = tmp_path / "second"
    second.mkdir()
    (second / "a.bin").write_bytes(b"a")
    modelsign.sign(second, keypair[0])
    code, doc = run_json("verify", model, second, "--key", keypair[1])
    assert (code, doc["verified"], len(doc["models"])) == (0, True, 2)
    validate(doc, "verify.schema.json")
    flip_byte(second / "a.bin", 0)
    code, doc = run_json("verify", model, second, "--key", keypair[1])
    assert (code, doc["verified"]) == (1, False)
    assert [m["verified"] for m in doc["models"]] == [True, False]
    assert doc["models"][1]["model"] == str(second)
    validate(doc, "verify.schema.json")


def test_sign_and_keygen_json(tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    code, doc = run_json("keygen", "--output", f"{tmp_path}/keys/", "--no-passphrase")
    assert code == 0
    assert doc["private_key"] == str(tmp_path / "keys" / "modelsign.key")
    validate(doc, "keygen.schema.json")
    code, doc = run_json("keygen", "--output", f"{tmp_path}/keys/", "--no-passphrase")
    assert (code, doc["error"]["type"]) == (2, "OverwriteError")
    validate(doc, "keygen.schema.json")
    model = tmp_path / "m"
    model.mkdir()
    (model / "w.bin").write_bytes(b"w" * 10)
    code, doc = run_json("sign", model, "--key", keypair[0], "--shard-size", "4")
    assert (code, doc["serialization"], doc["files"]) == (0, "shards", 1)
    validate(doc, "sign.schema.json")
    code, doc = run_json("sign", model, "--key", keypair[0], "--shard-size", "0")
    assert code == 2
    assert doc["error"]["parameter"] is None  # the CLI's own check of --shard-size
    validate(doc, "sign.schema.json")


def test_status_shows_release_trust_and_provenance_rules(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    """An operator reading status sees what the policy will refuse: anchor
    names, windows and revocations, thresholds, pins, the rollback state and
    the provenance rules, in the text and in the JSON."""
    env = {k: v for k, v in os.environ.items() if k != "MODELSIGN_POLICY"}
    other_pub = tmp_path / "other.pub"
    write_keypair(generate(), tmp_path / "other", None)
    (tmp_path / "prod" / "bert").mkdir(parents=True)
    policy = tmp_path / "p.toml"
    policy.write_text(
        "[trust]\n"
        f'keys = [{{ path = "{keypair[1]}", name = "ci", not_after = 2099-01-01T00:00:00Z }},\n'
        f'        {{ path = "{other_pub}", name = "old", revoked = true }}]\n'
        '[[trust.threshold]]\nrequire = 2\nsigners = ["ci", "old"]\n'
        '[[trust.pin]]\npath = "prod/bert"\nname = "acme/bert"\n'
        '[rollback]\nstate = "state.json"\n'
        '[provenance]\nrequire = true\nbuilder_id = "https://ci.example/train"\n'
    )
    reset = _cli("state", "reset", "--policy", policy, env=env)
    assert reset.returncode == 0, reset.stderr
    code, doc = run_json("status", env={**env, "MODELSIGN_POLICY": str(policy)})
    assert (code, doc["active"]) == (0, True)
    validate(doc, "status.schema.json")
    p = doc["policy"]
    assert [(a["name"], a["not_after"], a["revoked"]) for a in p["anchors"]] == [
        ("ci", "2099-01-01T00:00:00Z", False),
        ("old", None, True),
    ]
    assert p["thresholds"] == [{"require": 2, "signers": ["ci", "old"], "scope": []}]
    assert p["pins"] == [{"path": str(tmp_path / "prod" / "bert"), "name": "acme/bert"}]
    assert p["rollback_state"] == str(tmp_path / "state.json")
    assert p["provenance"] == {
        "require": True,
        "builder_id": "https://ci.example/train",
        "lineage": False,
        "base_models": [],
    }
    text = _cli("status", env={**env, "MODELSIGN_POLICY": str(policy)}).stdout
    assert '"ci": until 2099-01-01T00:00:00Z' in text
    assert '"old": REVOKED' in text
    assert "threshold: 2 of ci, old" in text
    assert f"pin: {tmp_path / 'prod' / 'bert'} must be signed as acme/bert" in text
    assert f"rollback state: {tmp_path / 'state.json'}" in text
    assert "provenance: required, builder https://ci.example/train" in text
