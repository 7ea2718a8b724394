"""modelsign's bundles validate against the OMS v1.0 JSON Schemas.

The schemas are the shared test data of the workspace (``../shared`` beside the
repository); they are read from there, never copied into the project, and this
module is skipped in a clone that does not have them.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require, shared

SCHEMA_FILES = (
    "bundle.schema.json",
    "envelope.schema.json",
    "statement.schema.json",
    "predicate.schema.json",
)
SCHEMA_DIR = shared("oms-spec", "schemas", "v1.0")

jsonschema = require("jsonschema", "jsonschema validates the bundles")
referencing = require("referencing", "referencing resolves the schemas' $refs")
torch = require("torch", "torch writes the real checkpoints")

from jsonschema.exceptions import ValidationError  # noqa: E402

import modelsign  # noqa: E402
from modelsign.bundle import Bundle  # noqa: E402
from modelsign.keys import generate, write_keypair  # noqa: E402

Validate = Callable[[Any], None]


def _load_schemas() -> dict[str, dict[str, Any]]:
    schemas: dict[str, dict[str, Any]] = {}
    for name in SCHEMA_FILES:
        schema = json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema", name
        schemas[name] = schema
    return schemas


@pytest.fixture(scope="module")
def validators() -> dict[str, Validate]:
    """One Draft 2020-12 validator per schema file, resolving ``$ref`` by ``$id``
    through a registry of all four schemas (never over the network)."""
    schemas = _load_schemas()
    registry = referencing.Registry().with_resources(
        (schema["$id"], referencing.Resource.from_contents(schema)) for schema in schemas.values()
    )
    out: dict[str, Validate] = {}
    for name, schema in schemas.items():
        jsonschema.Draft202012Validator.check_schema(schema)
        validator = jsonschema.Draft202012Validator(schema, registry=registry)
        out[name.removesuffix(".schema.json")] = validator.validate
    return out


@dataclass(frozen=True)
class Signed:
    model: Path
    signature: Path
    raw: bytes

    @property
    def bundle(self) -> dict[str, Any]:
        bundle: dict[str, Any] = json.loads(self.raw)
        return bundle

    @property
    def statement(self) -> dict[str, Any]:
        payload = base64.b64decode(self.bundle["dsseEnvelope"]["payload"], validate=True)
        statement: dict[str, Any] = json.loads(payload)
        return statement


def _save_linear(path: Path) -> None:
    torch.manual_seed(0)
    torch.save(torch.nn.Linear(4, 2).state_dict(), path)


@pytest.fixture(
    params=[
        ("ed25519", "directory"),
        ("ed25519", "single-file"),
        ("ecdsa-p256", "directory"),
        ("ecdsa-p256", "single-file"),
    ],
    ids="-".join,
)
def signed(request: pytest.FixtureRequest, tmp_path: Path) -> Signed:
    algorithm, shape = request.param
    private, _ = write_keypair(generate(algorithm), str(tmp_path / "k"), None)
    if shape == "directory":
        model = tmp_path / "model"
        model.mkdir()
        _save_linear(model / "model.pt")
        (model / "config.json").write_text('{"in_features": 4}', encoding="utf-8")
        (model / "tokenizer").mkdir()
        (model / "tokenizer" / "vocab.txt").write_text("hello\nworld\n", encoding="utf-8")
    else:
        model = tmp_path / "linear.pt"
        _save_linear(model)
    signature = modelsign.sign(model, private).signature
    return Signed(model, signature, signature.read_bytes())


def _weights_resource(statement: dict[str, Any]) -> dict[str, Any]:
    resources = statement["predicate"]["resources"]
    (resource,) = [r for r in resources if r["name"] in ("model.pt", ".")]
    assert isinstance(resource, dict)
    return resource


def test_bundle_validates(signed: Signed, validators: dict[str, Validate]) -> None:
    validators["bundle"](signed.bundle)


def test_envelope_validates(signed: Signed, validators: dict[str, Validate]) -> None:
    validators["envelope"](signed.bundle["dsseEnvelope"])


def test_statement_validates(signed: Signed, validators: dict[str, Validate]) -> None:
    statement = signed.statement
    # The torch checkpoint is a zip: its resource carries modelsign's
    # annotations listing the archive members, which the schema must allow.
    annotations = _weights_resource(statement)["annotations"]
    assert annotations["archive"] == "zip"
    assert annotations["members"], "a torch checkpoint has members"
    assert any(m["name"].endswith("data.pkl") for m in annotations["members"])
    validators["statement"](statement)
    validators["predicate"](statement["predicate"])


def test_single_file_resource_is_named_dot(signed: Signed) -> None:
    names = [r["name"] for r in signed.statement["predicate"]["resources"]]
    if signed.model.is_file():
        assert names == ["."]
    else:
        assert names == ["config.json", "model.pt", "tokenizer/vocab.txt"]


def test_bundle_round_trips_byte_for_byte(signed: Signed) -> None:
    assert Bundle.from_bytes(signed.raw).to_bytes() == signed.raw


# --------------------------------------------------------------------------
# Negative controls: the validators really reject what the schemas forbid.


def _without_hash_type(statement: dict[str, Any]) -> dict[str, Any]:
    broken = copy.deepcopy(statement)
    del broken["predicate"]["serialization"]["hash_type"]
    return broken


def test_statement_without_hash_type_is_rejected(
    signed: Signed, validators: dict[str, Validate]
) -> None:
    broken = _without_hash_type(signed.statement)
    with pytest.raises(ValidationError, match="'hash_type' is a required property"):
        validators["statement"](broken)
    with pytest.raises(ValidationError, match="'hash_type' is a required property"):
        validators["predicate"](broken["predicate"])


def test_bundle_with_unknown_key_is_rejected(
    signed: Signed, validators: dict[str, Validate]
) -> None:
    bundle = signed.bundle
    bundle["unsigned"] = "extra"
    with pytest.raises(ValidationError, match="Additional properties are not allowed"):
        validators["bundle"](bundle)


def test_bundle_with_wrong_payload_type_is_rejected(
    signed: Signed, validators: dict[str, Validate]
) -> None:
    """The bundle schema reaches the envelope schema through its ``$ref``."""
    bundle = signed.bundle
    bundle["dsseEnvelope"]["payloadType"] = "application/json"
    with pytest.raises(ValidationError, match=r"application/vnd\.in-toto\+json"):
        validators["bundle"](bundle)


def test_statement_with_extra_predicate_key_is_rejected(
    signed: Signed, validators: dict[str, Validate]
) -> None:
    """The statement schema reaches the predicate schema through its ``$ref``."""
    statement = signed.statement
    statement["predicate"]["annotations"] = {}
    with pytest.raises(ValidationError, match="Additional properties are not allowed"):
        validators["statement"](statement)
