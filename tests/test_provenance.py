"""Signed provenance (issue 15): attest, then verify, with real keys, real
files and real git repositories; every refusal pinned to its class and its
message (the file, both values)."""

from __future__ import annotations

import base64
import dataclasses
import datetime
import hashlib
import importlib.metadata
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

import modelsign
from modelsign import hooks, keys
from modelsign.bundle import PAYLOAD_TYPE, Bundle, Envelope, KeyMaterial, pae
from modelsign.errors import (
    BuilderMismatchError,
    ConfigError,
    DigestMismatchError,
    InvalidSignatureError,
    LineageError,
    LoadRefusedError,
    MalformedBundleError,
    MissingProvenanceError,
    OverwriteError,
    ProvenanceMismatchError,
    UntrustedSignerError,
    UsageError,
)
from modelsign.policy import CertificateAuthority, Policy, ProvenanceRules
from modelsign.provenance import (
    PREDICATE_TYPE,
    attest,
    default_provenance_path,
    read_provenance,
    verify_provenance,
)
from modelsign.signing import CertificateSigner
from tests.conftest import flip_byte
from tests.test_json_output import validate
from tests.test_x509_sigstore import pki  # noqa: F401 - the fixture

CLI = [sys.executable, "-m", "modelsign"]
NOW = datetime.datetime(2026, 5, 1, 12, 0, tzinfo=datetime.timezone.utc)
#: No CI variables: tests that want them pass their own.
NO_CI: dict[str, str] = {}


@pytest.fixture(scope="module")
def key() -> keys.PrivateKey:
    return keys.generate("ecdsa-p256")  # P-256: model_signing verifies it too


@pytest.fixture(scope="module")
def other_key() -> keys.PrivateKey:
    return keys.generate("ed25519")


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A real git repository with one commit (the training code)."""
    code = tmp_path / "code"
    code.mkdir()
    git(code, "init", "-q", "-b", "main")
    (code / "train.py").write_text("print('training')\n")
    git(code, "add", "train.py")
    git(code, "commit", "-qm", "train")
    git(code, "remote", "add", "origin", "https://github.com/example/trainer.git")
    return code


def make_model(root: Path, seed: int = 0) -> Path:
    root.mkdir(parents=True)
    torch.save({"w": torch.arange(6.0) + seed}, root / "weights.pt")
    (root / "config.json").write_text(json.dumps({"seed": seed}))
    return root


@pytest.fixture
def signed(tmp_path: Path, key: keys.PrivateKey) -> Path:
    model = make_model(tmp_path / "model")
    modelsign.sign(model, key)
    return model


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    (data / "train").mkdir(parents=True)
    (data / "train" / "part-0.jsonl").write_text('{"x": 1}\n')
    (data / "README.md").write_text("data\n")
    return data


def payload_of(bundle_path: Path) -> dict[str, Any]:
    """The signed statement, read with json and base64 only."""
    bundle = json.loads(bundle_path.read_bytes())
    envelope = bundle["dsseEnvelope"]
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    statement: dict[str, Any] = json.loads(base64.b64decode(envelope["payload"]))
    return statement


def resign(prov: Path, key: keys.PrivateKey, change: Any) -> None:
    """Change the statement and sign it again with ``key`` (a trusted signer
    that signs something wrong)."""
    statement = payload_of(prov)
    change(statement)
    payload = json.dumps(statement).encode()
    bundle = Bundle(
        KeyMaterial(hint=key.public_key().key_id),
        Envelope(payload, PAYLOAD_TYPE, key.sign(pae(PAYLOAD_TYPE, payload)), keyid=""),
    )
    prov.write_bytes(bundle.to_bytes())


def run(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, check=False)


# ---------------------------------------------------------------------- attest


def test_attest_records_the_run_and_verifies(
    signed: Path, key: keys.PrivateKey, repo: Path, dataset: Path, tmp_path: Path
) -> None:
    single = tmp_path / "labels.csv"
    single.write_text("a,b\n1,2\n")
    written = attest(
        signed,
        key,
        datasets=[dataset, single, "hf://datasets/org/extra@sha256:" + "ab" * 32],
        params={"lr": 3e-5, "epochs": 3, "optimizer": "adamw"},
        entry_point="train.py",
        started=NOW - datetime.timedelta(hours=2),
        finished=NOW,
        code=repo,
        environ=NO_CI,
    )
    assert written.path == signed / "model.provenance.sig"
    assert written.signed_by is not None
    assert written.signed_by.key_id == key.public_key().key_id

    # The statement, read without modelsign: in-toto v1, SLSA v1, about
    # the digest model.sig signs.
    statement = payload_of(written.path)
    oms = payload_of(signed / "model.sig")
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == PREDICATE_TYPE == "https://slsa.dev/provenance/v1"
    assert statement["subject"] == oms["subject"]
    build = statement["predicate"]["buildDefinition"]
    assert build["externalParameters"] == {
        "entryPoint": "train.py",
        "parameters": {"lr": 3e-5, "epochs": 3, "optimizer": "adamw"},
    }
    meta = statement["predicate"]["runDetails"]["metadata"]
    assert meta == {"startedOn": "2026-05-01T10:00:00Z", "finishedOn": "2026-05-01T12:00:00Z"}

    prov = verify_provenance(signed, [key.public_key()])
    assert prov.verified
    assert prov.subject_digest == modelsign.verify(signed, [key.public_key()]).root_digest
    assert prov.code is not None
    assert prov.code.git_commit == git(repo, "rev-parse", "HEAD")
    assert prov.code.uri == "git+https://github.com/example/trainer.git@refs/heads/main"
    assert prov.code.dirty is False
    folder, file, remote = prov.datasets
    # A folder's digest computed the OMS way: what signing it would sign.
    assert folder.sha256 == modelsign.sign(dataset, key).manifest.root_digest
    assert folder.digest_of == "oms-root"
    assert file.sha256 == hashlib.sha256(single.read_bytes()).hexdigest()
    assert file.digest_of == "file"
    assert remote.uri == "hf://datasets/org/extra"
    assert remote.sha256 == "ab" * 32
    assert prov.frameworks["torch"] == importlib.metadata.version("torch")
    assert prov.frameworks["python"] == ".".join(map(str, sys.version_info[:3]))
    assert prov.builder_id.startswith("urn:modelsign:local:")
    assert prov.started == NOW - datetime.timedelta(hours=2)
    assert prov.finished == NOW


def test_a_dirty_tree_is_recorded_as_such(signed: Path, key: keys.PrivateKey, repo: Path) -> None:
    (repo / "untracked.txt").write_text("not part of the code")
    clean = attest(signed, key, code=repo, environ=NO_CI)
    assert clean.code is not None
    assert clean.code.dirty is False
    (repo / "train.py").write_text("print('changed')\n")
    dirty = attest(signed, key, code=repo, environ=NO_CI)
    assert dirty.code is not None
    assert dirty.code.dirty is True
    assert payload_of(dirty.path)["predicate"]["buildDefinition"]["resolvedDependencies"][0][
        "annotations"
    ] == {"role": "code", "dirty": True}
    git(repo, "add", "train.py")  # staged but not committed: still dirty
    assert attest(signed, key, code=repo, environ=NO_CI).code.dirty is True  # type: ignore[union-attr]


def test_credentials_in_the_remote_url_are_never_recorded(
    signed: Path, key: keys.PrivateKey, repo: Path
) -> None:
    git(
        repo, "remote", "set-url", "origin", "https://gitlab-ci-token:s3cr3t@gitlab.example/g/p.git"
    )
    prov = attest(signed, key, code=repo, environ=NO_CI)
    assert prov.code is not None
    assert prov.code.uri == "git+https://gitlab.example/g/p.git@refs/heads/main"
    assert b"s3cr3t" not in base64.b64decode(
        json.loads(prov.path.read_bytes())["dsseEnvelope"]["payload"]
    )


def test_a_code_folder_outside_git_is_a_usage_error(
    signed: Path, key: keys.PrivateKey, tmp_path: Path
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(UsageError, match=r"code=.*plain: not in a git checkout") as info:
        attest(signed, key, code=plain, environ=NO_CI)
    assert info.value.parameter == "code"


def test_github_actions_and_gitlab_ci_variables(
    signed: Path, key: keys.PrivateKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # not a git checkout: the code comes from the CI variables
    sha = "1" * 40
    github = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_REPOSITORY": "org/repo",
        "GITHUB_WORKFLOW_REF": "org/repo/.github/workflows/train.yml@refs/heads/main",
        "GITHUB_RUN_ID": "42",
        "GITHUB_RUN_ATTEMPT": "2",
        "GITHUB_SHA": sha,
        "GITHUB_REF": "refs/heads/main",
        "GITHUB_EVENT_NAME": "push",
    }
    prov = attest(signed, key, environ=github)
    assert (
        prov.builder_id == "https://github.com/org/repo/.github/workflows/train.yml@refs/heads/main"
    )
    assert prov.invocation_id == "https://github.com/org/repo/actions/runs/42/attempts/2"
    assert prov.code is not None
    assert prov.code.git_commit == sha
    assert prov.code.uri == "git+https://github.com/org/repo@refs/heads/main"
    assert prov.internal_parameters == {"ci": {"system": "github-actions", "event_name": "push"}}
    gitlab = {
        "GITLAB_CI": "true",
        "CI_PROJECT_URL": "https://gitlab.com/g/p",
        "CI_CONFIG_PATH": ".gitlab-ci.yml",
        "CI_COMMIT_TAG": "v1",
        "CI_COMMIT_SHA": sha,
        "CI_JOB_URL": "https://gitlab.com/g/p/-/jobs/7",
    }
    prov = attest(signed, key, environ=gitlab, builder_id=None)
    assert prov.builder_id == "https://gitlab.com/g/p//.gitlab-ci.yml@refs/tags/v1"
    assert prov.invocation_id == "https://gitlab.com/g/p/-/jobs/7"
    # The caller's builder id wins over the environment's.
    assert attest(signed, key, environ=gitlab, builder_id="urn:x").builder_id == "urn:x"


def test_attest_needs_a_signed_model_that_matches_its_bundle(
    tmp_path: Path, signed: Path, key: keys.PrivateKey
) -> None:
    unsigned = make_model(tmp_path / "unsigned")
    with pytest.raises(UsageError, match=r"unsigned: the model is not signed .*model.sig"):
        attest(unsigned, key, environ=NO_CI)
    (signed / "config.json").write_text('{"seed": 99}')
    with pytest.raises(DigestMismatchError, match="config.json: digest mismatch: expected"):
        attest(signed, key, environ=NO_CI)
    assert not default_provenance_path(signed).exists()


def test_attest_refuses_to_replace_another_signers_provenance(
    signed: Path, key: keys.PrivateKey, other_key: keys.PrivateKey
) -> None:
    attest(signed, key, environ=NO_CI)
    with pytest.raises(
        OverwriteError, match=f"already holds a signature by key {key.public_key().key_id}"
    ):
        attest(signed, other_key, environ=NO_CI)
    assert attest(signed, other_key, environ=NO_CI, force=True).signed_by.key_id == (  # type: ignore[union-attr]
        other_key.public_key().key_id
    )


def test_attest_refuses_bad_parameters_and_times(signed: Path, key: keys.PrivateKey) -> None:
    with pytest.raises(UsageError, match="params=not JSON values") as info:
        attest(signed, key, params={"f": float("nan")}, environ=NO_CI)
    assert info.value.parameter == "params"
    with pytest.raises(UsageError, match="timezone-aware") as info:
        attest(signed, key, started=datetime.datetime(2026, 1, 1), environ=NO_CI)
    assert info.value.parameter == "started"
    with pytest.raises(UsageError, match="is after finished"):
        attest(signed, key, started=NOW, finished=NOW - datetime.timedelta(1), environ=NO_CI)


def test_a_single_file_model(tmp_path: Path, key: keys.PrivateKey) -> None:
    model = tmp_path / "m.pt"
    torch.save({"w": torch.zeros(2)}, model)
    modelsign.sign(model, key)
    prov = attest(model, key, environ=NO_CI)
    assert prov.path == tmp_path / "m.pt.provenance.sig"
    assert verify_provenance(model, [key.public_key()]).subject_digest == prov.subject_digest


def test_model_signing_still_verifies_model_sig(
    signed: Path, key: keys.PrivateKey, tmp_path: Path
) -> None:
    from tests.conftest import require

    require("model_signing", "the reference implementation verifies model.sig")
    import model_signing.verifying

    attest(signed, key, environ=NO_CI)
    assert (
        "model.provenance.sig"
        in payload_of(signed / "model.sig")["predicate"]["serialization"]["ignore_paths"]
    )
    public = tmp_path / "k.pub"
    public.write_bytes(key.public_key().pem)
    model_signing.verifying.Config().use_elliptic_key_verifier(public_key=public).verify(
        signed, signed / "model.sig"
    )
    modelsign.verify(signed, [key.public_key()])  # the provenance is no extra file


# ---------------------------------------------------------------------- refusals


def test_missing_provenance_is_refused_when_required(signed: Path, key: keys.PrivateKey) -> None:
    modelsign.verify(signed, [key.public_key()])  # not required: fine
    with pytest.raises(MissingProvenanceError) as info:
        verify_provenance(signed, [key.public_key()])
    assert str(signed / "model.provenance.sig") in str(info.value)
    assert info.value.provenance == str(signed / "model.provenance.sig")


def test_tampered_predicate_or_subject_is_an_invalid_signature(
    signed: Path, key: keys.PrivateKey
) -> None:
    prov = attest(signed, key, builder_id="urn:good", environ=NO_CI).path
    original = prov.read_bytes()
    for change in (
        lambda st: st["predicate"]["runDetails"]["builder"].update(id="urn:evil"),
        lambda st: st["subject"][0]["digest"].update(sha256="0" * 64),
    ):
        bundle = json.loads(original)
        statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
        change(statement)
        bundle["dsseEnvelope"]["payload"] = base64.b64encode(
            json.dumps(statement).encode()
        ).decode()
        prov.write_text(json.dumps(bundle))
        with pytest.raises(InvalidSignatureError, match=f"{prov}: invalid signature for key"):
            verify_provenance(signed, [key.public_key()])


def test_a_trusted_signer_over_another_digest_is_a_mismatch(
    signed: Path, key: keys.PrivateKey
) -> None:
    prov = attest(signed, key, environ=NO_CI).path
    root = modelsign.verify(signed, [key.public_key()]).root_digest
    resign(prov, key, lambda st: st["subject"][0]["digest"].update(sha256="f" * 64))
    with pytest.raises(ProvenanceMismatchError) as info:
        verify_provenance(signed, [key.public_key()])
    message = str(info.value)
    assert str(prov) in message
    assert "f" * 64 in message
    assert root in message
    assert (info.value.expected, info.value.actual) == (root, "f" * 64)


def test_provenance_of_another_model_is_refused(
    tmp_path: Path, signed: Path, key: keys.PrivateKey
) -> None:
    other = make_model(tmp_path / "other", seed=1)
    modelsign.sign(other, key)
    theirs = attest(other, key, environ=NO_CI)
    shutil.copy(theirs.path, default_provenance_path(signed))
    ours = modelsign.verify(signed, [key.public_key()]).root_digest
    with pytest.raises(ProvenanceMismatchError) as info:
        verify_provenance(signed, [key.public_key()])
    assert f"provenance of model 'other' with root digest sha256:{theirs.subject_digest}" in str(
        info.value
    )
    assert f"not of {signed}, whose root digest is sha256:{ours}" in str(info.value)


def test_a_changed_model_fails_before_its_provenance(signed: Path, key: keys.PrivateKey) -> None:
    attest(signed, key, environ=NO_CI)
    flip_byte(signed / "config.json")
    with pytest.raises(DigestMismatchError):
        verify_provenance(signed, [key.public_key()])


def test_untrusted_provenance_signer(
    signed: Path, key: keys.PrivateKey, other_key: keys.PrivateKey
) -> None:
    attest(signed, other_key, environ=NO_CI)
    with pytest.raises(UntrustedSignerError, match=r"model.provenance.sig: signed by key '"):
        verify_provenance(signed, [key.public_key()])
    # Trusted for the provenance, any method: both keys trusted.
    verify_provenance(signed, [key.public_key(), other_key.public_key()])


def test_not_a_provenance_statement_is_malformed(signed: Path, key: keys.PrivateKey) -> None:
    prov = default_provenance_path(signed)
    shutil.copy(signed / "model.sig", prov)  # a model bundle where the provenance goes
    with pytest.raises(MalformedBundleError, match="is not 'https://slsa.dev/provenance/v1'"):
        verify_provenance(signed, [key.public_key()])
    with pytest.raises(MalformedBundleError, match="not a SLSA provenance"):
        read_provenance(signed)


def test_builder_identity_must_match(tmp_path: Path, signed: Path, key: keys.PrivateKey) -> None:
    attest(signed, key, builder_id="urn:builder:ci", environ=NO_CI)
    trusted = [key.public_key()]
    assert (
        verify_provenance(signed, trusted, builder_id="urn:builder:ci").builder_id
        == "urn:builder:ci"
    )
    with pytest.raises(BuilderMismatchError) as info:
        verify_provenance(signed, trusted, builder_id="urn:builder:release")
    assert "built by 'urn:builder:ci', not by 'urn:builder:release'" in str(info.value)
    assert str(default_provenance_path(signed)) in str(info.value)
    # The same rule from a policy file, through verify() itself.
    policy = tmp_path / "policy.toml"
    (tmp_path / "k.pub").write_bytes(key.public_key().pem)
    policy.write_text(
        '[trust]\nkeys = ["k.pub"]\n'
        '[provenance]\nrequire = true\nbuilder_id = "urn:builder:release"\n'
    )
    with pytest.raises(BuilderMismatchError):
        modelsign.verify(signed, Policy.load(policy))


# ---------------------------------------------------------------------- lineage


@pytest.fixture
def fine_tune(tmp_path: Path, key: keys.PrivateKey) -> tuple[Path, Path]:
    """A base model signed by the trusted key, and a fine-tune of it attested."""
    base = make_model(tmp_path / "store" / "base", seed=7)
    modelsign.sign(base, key)
    tuned = make_model(tmp_path / "store" / "tuned", seed=8)
    modelsign.sign(tuned, key)
    prov = attest(tuned, key, base_model=base, trust=[key.public_key()], environ=NO_CI)
    assert prov.base_model is not None
    assert prov.base_model.signed is True
    assert prov.base_model.sha256 == modelsign.verify(base, [key.public_key()]).root_digest
    return base, tuned


def test_lineage_passes_when_the_base_model_verifies(
    fine_tune: tuple[Path, Path], key: keys.PrivateKey, tmp_path: Path
) -> None:
    _base, tuned = fine_tune
    trusted = [key.public_key()]
    verify_provenance(tuned, trusted, lineage=True)  # at the path recorded
    moved = tmp_path / "elsewhere"
    shutil.move(tmp_path / "store", moved)
    tuned = moved / "tuned"
    with pytest.raises(LineageError, match="not found"):
        verify_provenance(tuned, trusted, lineage=True)
    # Found in a folder of models, by its root digest.
    prov = verify_provenance(tuned, trusted, lineage=True, base_models=[moved])
    assert prov.base_model is not None
    assert prov.base_model.name == "base"


def test_lineage_fails_for_an_untrusted_or_changed_base_model(
    fine_tune: tuple[Path, Path], key: keys.PrivateKey, other_key: keys.PrivateKey
) -> None:
    base, tuned = fine_tune
    both = Policy.from_anchors([key.public_key(), other_key.public_key()], source="test")
    modelsign.sign(base, other_key, force=True)  # same files, now signed by another key
    with pytest.raises(LineageError) as info:
        verify_provenance(tuned, [key.public_key()], lineage=True)
    assert "does not verify under the policy" in str(info.value)
    assert "which is not trusted" in str(info.value)
    verify_provenance(tuned, both, lineage=True)  # trusted: it verifies
    flip_byte(base / "config.json")
    with pytest.raises(LineageError, match="config.json: digest mismatch"):
        verify_provenance(tuned, both, lineage=True)
    modelsign.sign(base, other_key, force=True)  # a re-signed, changed base: another model
    with pytest.raises(LineageError, match="is another model") as info:
        verify_provenance(tuned, both, lineage=True)
    assert info.value.expected is not None
    assert info.value.expected in str(info.value)


def test_a_model_trained_from_scratch_passes_lineage(signed: Path, key: keys.PrivateKey) -> None:
    attest(signed, key, environ=NO_CI)
    assert verify_provenance(signed, [key.public_key()], lineage=True).base_model is None


# ---------------------------------------------------------------------- policy


def test_provenance_policy_table_is_strict(tmp_path: Path, key: keys.PrivateKey) -> None:
    (tmp_path / "k.pub").write_bytes(key.public_key().pem)
    cases = {
        "[provenance]\nrequire = true\nbuilder = 'x'\n": "unknown key(s) 'builder' in [provenance]",
        "[provenance]\nbuilder_id = 'x'\n": "set require = true with them",
        "[provenance]\nrequire = 'yes'\n": "require must be true or false",
        "[provenance]\nrequire = true\nbuilder_id = ''\n": "builder_id must be a non-empty string",
        "provenance = 1\n": "[provenance] must be a table",
    }
    for text, message in cases.items():
        (tmp_path / "p.toml").write_text(text + '\n[trust]\nkeys = ["k.pub"]\n')
        with pytest.raises(ConfigError) as info:
            Policy.load(tmp_path / "p.toml")
        assert message in str(info.value), text


def test_policy_rules_reach_child_processes(tmp_path: Path, key: keys.PrivateKey) -> None:
    rules = ProvenanceRules(True, "urn:b", True, (tmp_path,))
    policy = dataclasses.replace(
        Policy.from_anchors([key.public_key()], source="t"), provenance=rules
    )
    (tmp_path / "k.pub").write_bytes(key.public_key().pem)
    (tmp_path / "child.toml").write_text(policy.to_toml([tmp_path / "k.pub"]))
    assert Policy.load(tmp_path / "child.toml").provenance == rules


def test_loader_hook_requires_provenance(
    signed: Path, key: keys.PrivateKey, tmp_path: Path
) -> None:
    base = Policy.from_anchors([key.public_key()], source="t")
    policy = dataclasses.replace(base, provenance=ProvenanceRules(require=True))
    with hooks.enforce(policy):
        with pytest.raises(LoadRefusedError, match="no provenance bundle"):
            torch.load(signed / "weights.pt", weights_only=True)
    attest(signed, key, builder_id="urn:b", environ=NO_CI)
    with hooks.enforce(policy):
        assert torch.load(signed / "weights.pt", weights_only=True)["w"].shape == (6,)
    strict = dataclasses.replace(base, provenance=ProvenanceRules(require=True, builder_id="urn:c"))
    with hooks.enforce(strict):
        with pytest.raises(LoadRefusedError, match="built by 'urn:b', not by 'urn:c'"):
            torch.load(signed / "weights.pt", weights_only=True)


def test_a_folder_verified_for_from_pretrained_needs_its_provenance(
    fine_tune: tuple[Path, Path], key: keys.PrivateKey
) -> None:
    from modelsign._guard import Guard

    base, tuned = fine_tune
    rules = ProvenanceRules(require=True, lineage=True)
    policy = dataclasses.replace(
        Policy.from_anchors([key.public_key()], source="t"), provenance=rules
    )
    guard = Guard(policy)
    assert guard.verify_directory(tuned).root_digest == read_provenance(tuned).subject_digest
    verified_base = modelsign.verify(base, [key.public_key()]).root_digest
    assert guard._verified_bases == {verified_base}  # the lineage is not checked again
    default_provenance_path(tuned).unlink()
    with pytest.raises(LoadRefusedError, match="no provenance bundle"):
        guard.verify_directory(tuned)


# ---------------------------------------------------------------------- other methods


def test_certificate_signed_provenance(
    tmp_path: Path,
    pki: dict[str, Path],  # noqa: F811 - the fixture imported above
    key: keys.PrivateKey,
) -> None:
    model = make_model(tmp_path / "m")
    modelsign.sign(model, key)
    signer = CertificateSigner.from_files(pki["key"], pki["leaf"], [pki["chain"]])
    attest(model, signer, environ=NO_CI)
    ca = CertificateAuthority(pki["root"], "release@corp.example")
    prov = verify_provenance(model, [key.public_key(), ca])
    assert prov.signed_by is not None
    assert prov.signed_by.method == "certificate"
    assert prov.signed_by.identity == "release@corp.example"
    with pytest.raises(UntrustedSignerError):
        verify_provenance(model, [key.public_key(), CertificateAuthority(pki["root"], "x@corp")])


def test_keyless_signed_provenance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: keys.PrivateKey
) -> None:
    from tests.fakesigstore import fake_sigstore

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    model = make_model(tmp_path / "m")
    modelsign.sign(model, key)
    with fake_sigstore(tmp_path / "fake") as fake:
        signer = modelsign.SigstoreSigner(
            identity_token=fake.token("ci@example.com"), trust_config=fake.trust_config_path
        )
        attest(model, signer, environ=NO_CI)
        trust = modelsign.SigstoreIdentity(
            "ci@example.com", fake.issuer, trust_root=fake.trusted_root_path
        )
        prov = verify_provenance(model, [key.public_key(), trust])
    assert prov.signed_by is not None
    assert prov.signed_by.method == "sigstore"
    assert prov.signed_by.identity == "ci@example.com"


# ---------------------------------------------------------------------- the command line


def test_cli_attest_and_verify(
    signed: Path, key: keys.PrivateKey, repo: Path, dataset: Path, tmp_path: Path
) -> None:
    private, public = keys.write_keypair(key, tmp_path / "keys" / "k", None)
    inputs = tmp_path / "inputs.json"
    inputs.write_text(json.dumps({"datasets": ["data"], "parameters": {"lr": 0.1, "seed": 1}}))
    result = run(
        "attest", signed, "--key", private, "--inputs", inputs, "--param", "seed=2",
        "--param", "name=bert", "--entry-point", "train.py", "--code", repo,
        "--builder-id", "urn:builder:ci", "--started", "2026-05-01T10:00:00Z", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    validate(document, "attest.schema.json")
    assert document["parameters"] == {"lr": 0.1, "seed": 2, "name": "bert"}
    assert document["datasets"][0]["uri"] == dataset.absolute().as_uri()

    result = run("verify", signed, "--key", public, "--require-provenance", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    validate(document, "verify.schema.json")
    assert document["provenance"]["builder_id"] == "urn:builder:ci"
    assert document["provenance"]["code"]["digest"]["gitCommit"] == git(repo, "rev-parse", "HEAD")

    text = run("verify", signed, "--key", public, "--builder-id", "urn:builder:ci")
    assert text.returncode == 0
    assert "provenance: verified" in text.stdout
    refused = run("verify", signed, "--key", public, "--builder-id", "urn:other", "--json")
    assert refused.returncode == 1
    document = json.loads(refused.stdout)
    validate(document, "verify.schema.json")
    assert document["error"]["type"] == "BuilderMismatchError"
    assert document["error"]["provenance"] == str(default_provenance_path(signed))

    default_provenance_path(signed).unlink()
    missing = run("verify", signed, "--key", public, "--require-provenance")
    assert missing.returncode == 1
    assert "no provenance bundle" in missing.stderr
    assert "what to do: attest the model" in missing.stderr


def test_cli_attest_refusals(signed: Path, key: keys.PrivateKey, tmp_path: Path) -> None:
    private, _ = keys.write_keypair(key, tmp_path / "keys" / "k", None)
    bad = run("attest", signed, "--key", private, "--param", "novalue", "--json")
    assert bad.returncode == 2
    assert "give NAME=VALUE" in bad.stderr
    validate(json.loads(bad.stdout), "attest.schema.json")
    naive = run("attest", signed, "--key", private, "--started", "2026-01-01T00:00:00")
    assert naive.returncode == 2
    assert "has no time zone" in naive.stderr
    inputs = tmp_path / "i.json"
    inputs.write_text('{"dataset": []}')
    unknown = run("attest", signed, "--key", private, "--inputs", inputs)
    assert unknown.returncode == 2
    assert "unknown key(s) 'dataset'" in unknown.stderr
    missing = run("attest", signed, "--key", private, "--dataset", tmp_path / "nope")
    assert missing.returncode == 2
    assert "--dataset" in missing.stderr
    assert "nope" in missing.stderr
    assert not default_provenance_path(signed).exists()
