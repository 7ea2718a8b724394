"""Release trust beyond the named attacks: co-signing with every method, the
policy format (unknown keys and bad times refused, a written policy loads
back equal), the rollback state file (missing, corrupt, reset, pin, real
concurrent processes), the loader hook honouring every rule with the same
error classes and caching nothing across a policy reload, the command line
with its JSON Schemas, and model_signing still verifying the primary bundle.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import modelsign
from modelsign import _refusals, _rollback, hooks
from modelsign.errors import (
    ConfigError,
    EquivocationError,
    LoadRefusedError,
    ModelSubstitutionError,
    RollbackError,
    SignerRevokedError,
    StateFileError,
    ThresholdNotMetError,
    UsageError,
)
from modelsign.policy import Policy
from modelsign.signing import CertificateSigner, SigstoreSigner
from tests.conftest import require
from tests.fakesigstore import FakeSigstore
from tests.test_json_output import run_json, validate
from tests.test_keyless import fake  # noqa: F401 - the fake Sigstore fixture
from tests.trustkit import (
    DAY,
    NOW,
    Signer,
    key_table,
    make_model,
    make_signers,
    sign,
    toml_time,
    write_policy,
)
from tests.tsakit import issue

torch = require("torch", "the loader hook is tested with real torch.load calls")

CLI = [sys.executable, "-m", "modelsign"]


@pytest.fixture
def signers(tmp_path: Path) -> dict[str, Signer]:
    return make_signers(tmp_path / "keys", "ci", "release", "security")


@pytest.fixture
def model(tmp_path: Path) -> Path:
    root = make_model(tmp_path / "models" / "bert")
    torch.save({"w": torch.arange(4.0)}, root / "weights.pt")
    return root


def _two_of(tmp_path: Path, signers: dict[str, Signer], extra: str = "") -> Policy:
    return write_policy(
        tmp_path,
        "".join(key_table(s) for s in signers.values())
        + """
        [[trust.threshold]]
        require = 2
        signers = ["ci", "release", "security"]
        """
        + extra,
    )


# --------------------------------------------------------------- co-signing


def test_cosign_by_certificate_and_sigstore_counts_three_signers(
    tmp_path: Path,
    model: Path,
    signers: dict[str, Signer],
    fake: FakeSigstore,  # noqa: F811 - the fixture imported above
) -> None:
    """A key signs, a certificate co-signs, Sigstore co-signs: three bundles
    over one statement, three signers, whatever the method."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID

    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), modelsign.generate("ecdsa-p256")
    assert isinstance(leaf_key.key, ec.EllipticCurvePrivateKey)
    root = issue("Corp Root", ca_key, "Corp Root", ca_key, NOW - DAY, NOW + 30 * DAY)
    leaf = issue(
        "release bot",
        leaf_key.key,
        "Corp Root",
        ca_key,
        NOW - DAY,
        NOW + 30 * DAY,
        usage=ExtendedKeyUsageOID.CODE_SIGNING,
        email="bot@corp.example",
    )
    (tmp_path / "root.pem").write_bytes(root.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    policy = write_policy(
        tmp_path,
        key_table(signers["ci"])
        + f"""
        [[trust.certificate]]
        name = "bot"
        ca = "root.pem"
        identity = "bot@corp.example"
        [[trust.sigstore]]
        name = "alice"
        identity = "alice@example.com"
        issuer = "{fake.issuer}"
        trust_root = "{fake.trusted_root_path}"
        [[trust.threshold]]
        require = 3
        """,
    )
    sign(model, signers["ci"])
    modelsign.cosign(
        model, CertificateSigner.from_files(leaf_key, tmp_path / "leaf.pem"), [signers["ci"].public]
    )
    with pytest.raises(ThresholdNotMetError, match=r"rule 3 of any trusted signer: 2 counted"):
        modelsign.verify(model, policy)
    cosigned = modelsign.cosign(
        model,
        SigstoreSigner(
            identity_token=fake.token("alice@example.com"), trust_config=fake.trust_config_path
        ),
        policy,
    )
    assert cosigned.signature.parent == model / "model.sig.d"
    assert cosigned.signature.name.startswith("sigstore-")
    result = modelsign.verify(model, policy)
    assert result.signatures is not None
    assert [c.signer for c in result.signatures.counted] == ["ci", "bot", "alice"]
    assert [c.signed_by.method for c in result.signatures.counted] == [
        "key",
        "certificate",
        "sigstore",
    ]


def test_cosign_of_a_single_file_goes_beside_it(tmp_path: Path, signers: dict[str, Signer]) -> None:
    weights = tmp_path / "linear.pt"
    torch.save({"w": torch.ones(3)}, weights)
    sign(weights, signers["ci"])
    result = modelsign.cosign(weights, signers["release"].private, [signers["ci"].public])
    assert result.signature.parent == tmp_path / "linear.pt.sig.d"
    policy = _two_of(tmp_path, signers)
    assert len(modelsign.verify(weights, policy).signatures.counted) == 2  # type: ignore[union-attr]


def test_cosign_verifies_first_and_refuses_an_untrusted_or_changed_model(
    tmp_path: Path, model: Path, signers: dict[str, Signer]
) -> None:
    sign(model, signers["ci"])
    with pytest.raises(modelsign.VerificationError, match="not trusted"):
        modelsign.cosign(model, signers["release"].private, [signers["security"].public])
    (model / "config.json").write_text('{"layers": 3}')
    with pytest.raises(modelsign.errors.DigestMismatchError, match="config.json"):
        modelsign.cosign(model, signers["release"].private, [signers["ci"].public])
    assert not (model / "model.sig.d").exists()


def test_cosign_refuses_a_primary_that_does_not_exclude_its_folder(
    tmp_path: Path, model: Path, signers: dict[str, Signer]
) -> None:
    """A folder signed before co-signatures existed (or by model_signing)
    lists no model.sig.d among its ignored paths: model_signing would see the
    co-signatures as extra files, so cosign says so, unless forced."""
    require("model_signing", "a bundle model_signing wrote is what this is about")
    import model_signing.signing

    ecdsa = make_signers(tmp_path / "ec", "ci", algorithm="ecdsa-p256")["ci"]
    model_signing.signing.Config().use_elliptic_key_signer(private_key=ecdsa.private).sign(
        model, model / "model.sig"
    )
    with pytest.raises(UsageError, match=r"does not exclude 'model.sig.d'.*--force|force="):
        modelsign.cosign(model, signers["release"].private, [ecdsa.public])
    forced = modelsign.cosign(model, signers["release"].private, [ecdsa.public], force=True)
    assert forced.signature.is_file()


def test_model_signing_verifies_the_primary_of_a_cosigned_versioned_model(
    tmp_path: Path, model: Path
) -> None:
    require("model_signing", "the reference implementation must verify the primary bundle")
    import model_signing.verifying

    ecdsa = make_signers(tmp_path / "ec", "ci", "release", algorithm="ecdsa-p256")
    signed = modelsign.sign(
        model, ecdsa["ci"].private, model_name="acme/bert", model_version="1.2.0"
    )
    envelope = json.loads(signed.signature.read_text())["dsseEnvelope"]
    statement = json.loads(base64.b64decode(envelope["payload"]))
    assert statement["subject"][0]["name"] == "bert"  # model_signing's own use of it
    assert statement["subject"][0]["annotations"] == {
        "release": {"name": "acme/bert", "version": "1.2.0"}
    }
    assert "model.sig.d" in statement["predicate"]["serialization"]["ignore_paths"]
    modelsign.cosign(model, ecdsa["release"].private, [ecdsa["ci"].public])
    model_signing.verifying.Config().use_elliptic_key_verifier(
        public_key=ecdsa["ci"].public
    ).verify(model, model / "model.sig")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "model_signing",
            "verify",
            "key",
            str(model),
            "--signature",
            str(model / "model.sig"),
            "--public_key",
            str(ecdsa["ci"].public),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Verification succeeded" in proc.stdout


# --------------------------------------------------------------- the policy format


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (
            '[[trust.keys]]\npath = "K"\nexpires = 2027-01-01T00:00:00Z\n',
            "unknown key(s) 'expires'",
        ),
        ('[[trust.keys]]\npath = "K"\nnot_after = "2027-01-01"\n', "is a string: write a TOML"),
        (
            '[[trust.keys]]\npath = "K"\nnot_after = 2027-01-01\n',
            "not a date-time with a time zone",
        ),
        ('[[trust.keys]]\npath = "K"\nnot_after = 2027-01-01T00:00:00\n', "has no time zone"),
        ('[[trust.keys]]\npath = "K"\nrevoked = 2099-01-01T00:00:00Z\n', "in the future"),
        (
            '[[trust.keys]]\npath = "K"\nnot_before = 2027-01-01T00:00:00Z\n'
            "not_after = 2026-01-01T00:00:00Z\n",
            "is not before not_after",
        ),
        ('[[trust.keys]]\npath = "K"\nrevoked = "yes"\n', "is a string"),
        ('[trust]\nkeys = ["K"]\n[[trust.threshold]]\nrequire = 2\n', "names only 1"),
        (
            '[trust]\nkeys = ["K"]\n[[trust.threshold]]\nrequire = 1\nsigners = ["nobody"]\n',
            "no trust anchor is named 'nobody'",
        ),
        ('[trust]\nkeys = ["K"]\n[[trust.threshold]]\nrequire = 0\n', "at least 1"),
        ('[trust]\nkeys = ["K"]\n[[trust.threshold]]\nrequire = 1\nk = 2\n', "unknown key(s) 'k'"),
        ('[trust]\nkeys = ["K"]\n[[trust.pin]]\npath = "nowhere"\nname = "x"\n', "does not exist"),
        ('[trust]\nkeys = ["K"]\n[[trust.pin]]\npath = "."\nname = " x"\n', "surrounding spaces"),
        ('[trust]\nkeys = ["K"]\n[rollback]\nfile = "s.json"\n', "unknown key(s) 'file'"),
        ('[trust]\nkeys = ["K"]\n[rollback]\n', "needs state"),
        (
            '[[trust.keys]]\npath = "K"\nname = "a"\n[[trust.keys]]\npath = "K2"\nname = "a"\n',
            "two trust anchors are named 'a'",
        ),
        ('[[trust.keys]]\npath = "K"\ntsa = "K"\n', "not PEM certificates"),
    ],
)
def test_policy_rules_are_refused_when_they_cannot_mean_what_they_say(
    tmp_path: Path, signers: dict[str, Signer], body: str, error: str
) -> None:
    body = body.replace('"K"', f'"{signers["ci"].public}"').replace(
        '"K2"', f'"{signers["release"].public}"'
    )
    with pytest.raises(ConfigError) as info:
        write_policy(tmp_path, body)
    assert error in str(info.value)
    assert str(tmp_path / "policy.toml") in str(info.value)


def test_a_policy_with_every_rule_writes_itself_back_equal(
    tmp_path: Path,
    signers: dict[str, Signer],
    model: Path,
    fake: FakeSigstore,  # noqa: F811
) -> None:
    """Child processes get the parent's policy through Policy.to_toml: every
    rule must survive the trip."""
    from tests.tsakit import make_tsa

    tsa_root = make_tsa().write_root(tmp_path / "tsa.pem")
    policy = write_policy(
        tmp_path,
        key_table(signers["ci"], not_before=toml_time(NOW - DAY), tsa=f'"{tsa_root}"')
        + key_table(signers["release"], revoked=toml_time(NOW - DAY))
        + key_table(signers["security"], revoked="true", not_after=toml_time(NOW + DAY))
        + f"""
        [[trust.sigstore]]
        name = "alice"
        identity = "alice@example.com"
        issuer = "{fake.issuer}"
        trust_root = "{fake.trusted_root_path}"
        not_after = {toml_time(NOW + 9 * DAY)}
        [[trust.threshold]]
        require = 2
        signers = ["ci", "alice"]
        scope = ["models"]
        [[trust.pin]]
        path = "models/bert"
        name = "acme/bert"
        [rollback]
        state = "state.json"
        """,
    )
    written = tmp_path / "written"
    written.mkdir()
    files = [written / f"k{i}.pub" for i in range(len(policy.keys))]
    for key, path in zip(policy.keys, files, strict=True):
        path.write_bytes(key.pem)
    (written / "policy.toml").write_text(policy.to_toml(files))
    again = Policy.load(written / "policy.toml")
    assert again.anchor_terms == policy.anchor_terms
    assert again.thresholds == policy.thresholds
    assert again.pins == policy.pins
    assert again.state == policy.state
    assert again.keys == policy.keys


# --------------------------------------------------------------- the state file


def _versioned(tmp_path: Path, name: str, signer: Signer, version: str, content: bytes) -> Path:
    root = make_model(tmp_path / name, content)
    sign(root, signer, model_name="acme/bert", model_version=version)
    return root


def _state_policy(tmp_path: Path, signers: dict[str, Signer], *, reset: bool = True) -> Policy:
    policy = write_policy(
        tmp_path, key_table(signers["ci"]) + '[rollback]\nstate = "state/state.json"\n'
    )
    assert policy.state is not None
    policy.state.parent.mkdir(exist_ok=True)
    if reset:
        _rollback.reset(policy.state)
    return policy


def test_a_missing_or_corrupt_state_file_is_an_error_never_a_reset(
    tmp_path: Path, signers: dict[str, Signer]
) -> None:
    policy = _state_policy(tmp_path, signers, reset=False)
    state = policy.state
    assert state is not None
    v1 = _versioned(tmp_path, "v1", signers["ci"], "1", b"one")
    with pytest.raises(StateFileError, match=rf"{state}: no rollback state file"):
        modelsign.verify(v1, policy)
    for corrupt in (
        b"",
        b"{",
        b'{"format": "modelsign-state/1"}',
        b'{"format": "x", "models": {}}',
        b'{"format": "modelsign-state/1", "models": {"a": {"version": "01", "root_digest": "00"}}}',
    ):
        state.write_bytes(corrupt)
        with pytest.raises(StateFileError, match=rf"{state}: .*(corrupt|not valid JSON)"):
            modelsign.verify(v1, policy)
        assert state.read_bytes() == corrupt  # left as found
    assert _rollback.reset(state) == []
    modelsign.verify(v1, policy)
    assert _rollback.read(state)["acme/bert"].version == "1"


def test_pin_accepts_an_older_version_on_purpose_and_reset_forgets(
    tmp_path: Path, signers: dict[str, Signer]
) -> None:
    policy = _state_policy(tmp_path, signers)
    state = policy.state
    assert state is not None
    v1 = _versioned(tmp_path, "v1", signers["ci"], "1", b"one")
    v2 = _versioned(tmp_path, "v2", signers["ci"], "2", b"two")
    modelsign.verify(v2, policy)
    with pytest.raises(RollbackError):
        modelsign.verify(v1, policy)
    code, doc = run_json("state", "pin", v1, "--policy", tmp_path / "policy.toml")
    assert code == 0, doc
    validate(doc, "state.schema.json")
    assert doc["pinned"]["version"] == "1"
    assert doc["previous"]["version"] == "2"
    modelsign.verify(v1, policy)
    with pytest.raises(RollbackError):  # pinned at 1: 2 is newer and passes; 1 again too
        modelsign.verify(_versioned(tmp_path, "v0", signers["ci"], "0.9", b"zero"), policy)
    code, doc = run_json("state", "reset", "--policy", tmp_path / "policy.toml", "acme/bert")
    assert code == 0
    validate(doc, "state.schema.json")
    assert doc == {"state": str(state), "models": {}, "forgotten": ["acme/bert"]}
    code, doc = run_json("state", "show", "--policy", tmp_path / "policy.toml")
    validate(doc, "state.schema.json")
    code, doc = run_json("state", "reset", "--policy", tmp_path / "policy.toml", "nobody")
    assert code == 2
    validate(doc, "state.schema.json")
    assert "no model named 'nobody'" in doc["error"]["message"]


_VERIFY_SCRIPT = textwrap.dedent(
    """
    import sys, time, os
    from pathlib import Path
    import modelsign
    go, policy, model = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    while not go.exists():
        time.sleep(0.005)
    try:
        modelsign.verify(model, modelsign.Policy.load(policy))
        print("ok")
    except modelsign.VerificationError as e:
        print(type(e).__name__)
    """
)


def _start(go: Path, policy: Path, model: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _VERIFY_SCRIPT, str(go), str(policy), str(model)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _outcomes(procs: list[subprocess.Popen[str]]) -> list[str]:
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
        outs.append(out.strip())
    return outs


def test_concurrent_processes_record_the_highest_version_and_one_equivocation_wins(
    tmp_path: Path, signers: dict[str, Signer]
) -> None:
    """Real processes, released together: the state ends at the highest
    version, intact; of several different models signed as one version,
    exactly one is accepted and every other is refused as equivocation."""
    policy = _state_policy(tmp_path, signers)
    state = policy.state
    assert state is not None
    versions = [
        _versioned(tmp_path, f"v{i}", signers["ci"], f"1.{i}", f"v{i}".encode()) for i in range(6)
    ]
    go = tmp_path / "go"
    procs = [_start(go, tmp_path / "policy.toml", m) for m in versions]
    time.sleep(1.0)  # let them start and wait
    go.touch()
    outcomes = _outcomes(procs)
    assert set(outcomes) <= {"ok", "RollbackError"}, outcomes
    assert outcomes[-1] == "ok"  # the highest is never refused
    entry = _rollback.read(state)["acme/bert"]
    assert entry.version == "1.5"
    assert (
        entry.root_digest
        == modelsign.inspect_bundle(versions[-1] / "model.sig").manifest.root_digest
    )

    _rollback.reset(state)
    rivals = [
        _versioned(tmp_path, f"rival{i}", signers["ci"], "7.0", f"rival {i}".encode())
        for i in range(5)
    ]
    go.unlink()
    procs = [_start(go, tmp_path / "policy.toml", m) for m in rivals]
    time.sleep(1.0)
    go.touch()
    outcomes = _outcomes(procs)
    assert sorted(outcomes) == ["EquivocationError"] * 4 + ["ok"], outcomes
    winner = rivals[outcomes.index("ok")]
    recorded = _rollback.read(state)["acme/bert"].root_digest
    assert recorded == modelsign.inspect_bundle(winner / "model.sig").manifest.root_digest


def test_a_verification_waits_for_the_state_lock(
    tmp_path: Path, signers: dict[str, Signer]
) -> None:
    """While another process holds the state's lock, a verification does
    not read or write the state: it waits, then completes."""
    import fcntl

    policy = _state_policy(tmp_path, signers)
    assert policy.state is not None
    v1 = _versioned(tmp_path, "v1", signers["ci"], "1", b"one")
    go = tmp_path / "go"
    go.touch()
    with open(_rollback.lock_path(policy.state), "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        proc = _start(go, tmp_path / "policy.toml", v1)
        time.sleep(3.0)
        assert proc.poll() is None, proc.communicate()  # still waiting for the lock
        assert "acme/bert" not in _rollback.read(policy.state)
        fcntl.flock(lock, fcntl.LOCK_UN)
    assert _outcomes([proc]) == ["ok"]
    assert _rollback.read(policy.state)["acme/bert"].version == "1"


# --------------------------------------------------------------- the loader hook


def _load(path: Path) -> object:
    return torch.load(path, weights_only=True)


def test_hook_refuses_each_rule_with_the_same_error_class(
    tmp_path: Path, model: Path, signers: dict[str, Signer]
) -> None:
    """Thresholds, revocation, pins and rollback state, at torch.load time:
    each refusal is the verification error class (and a LoadRefusedError)."""
    weights = model / "weights.pt"
    sign(model, signers["ci"], model_name="acme/bert", model_version="2.0")
    threshold = _two_of(tmp_path, signers)
    with modelsign.enforce(threshold):
        with pytest.raises(ThresholdNotMetError) as info:
            _load(weights)
    assert isinstance(info.value, LoadRefusedError)
    assert f"refused to load {weights}" in str(info.value)
    assert "1 counted (ci), 2 required" in str(info.value)
    assert info.value.to_json()["signatures"]["counted"][0]["signer"] == "ci"  # type: ignore[index]
    modelsign.cosign(model, signers["security"].private, threshold)
    with modelsign.enforce(threshold):
        assert _load(weights)["w"].tolist() == [0.0, 1.0, 2.0, 3.0]  # type: ignore[index]

    revoked = write_policy(tmp_path, key_table(signers["ci"], revoked="true"), name="revoked.toml")
    with modelsign.enforce(revoked), pytest.raises(SignerRevokedError) as refused:
        _load(weights)
    assert isinstance(refused.value, LoadRefusedError)

    pinned = write_policy(
        tmp_path,
        key_table(signers["ci"]) + '[[trust.pin]]\npath = "models"\nname = "acme/gpt"\n',
        name="pinned.toml",
    )
    with modelsign.enforce(pinned), pytest.raises(ModelSubstitutionError) as substituted:
        _load(weights)
    assert "expected 'acme/gpt', actual 'acme/bert'" in str(substituted.value)

    state = _state_policy(tmp_path, signers)
    assert state.state is not None
    _rollback.pin(state.state, modelsign.Release("acme/bert", "3.0"), "0" * 64, "test")
    with modelsign.enforce(state), pytest.raises(RollbackError) as rolled_back:
        _load(weights)
    assert isinstance(rolled_back.value, LoadRefusedError)
    _rollback.pin(state.state, modelsign.Release("acme/bert", "2.0"), "0" * 64, "test")
    with modelsign.enforce(state), pytest.raises(EquivocationError):
        _load(weights)
    _rollback.reset(state.state)
    with modelsign.enforce(state):
        _load(weights)
    assert _rollback.read(state.state)["acme/bert"].version == "2.0"  # the load recorded it


def test_hook_caches_nothing_a_revocation_must_override(
    tmp_path: Path, model: Path, signers: dict[str, Signer]
) -> None:
    """A load passes; the policy file is edited to revoke the signer and
    installed again: the next load in the same process is refused."""
    weights = model / "weights.pt"
    sign(model, signers["ci"])
    path = tmp_path / "policy.toml"
    path.write_text(key_table(signers["ci"]))
    hooks.install(path)
    try:
        _load(weights)
        _load(weights)  # twice: whatever could be cached now is
        path.write_text(key_table(signers["ci"], revoked=toml_time(NOW - DAY)))
        hooks.install(path)
        with pytest.raises(SignerRevokedError, match="revoked at"):
            _load(weights)
    finally:
        hooks.uninstall()


# --------------------------------------------------------------- the command line


def test_cli_cosign_and_verify_report_which_signers_counted(
    tmp_path: Path, model: Path, signers: dict[str, Signer]
) -> None:
    policy = tmp_path / "policy.toml"
    _two_of(tmp_path, signers)
    code, doc = run_json(
        "sign",
        model,
        "--key",
        signers["ci"].private,
        "--model-name",
        "acme/bert",
        "--model-version",
        "1.0",
    )
    assert code == 0
    validate(doc, "sign.schema.json")
    assert doc["release"] == {"name": "acme/bert", "version": "1.0"}
    code, doc = run_json("verify", model, "--policy", policy)
    assert code == 1
    validate(doc, "verify.schema.json")
    assert doc["error"]["type"] == "ThresholdNotMetError"
    assert doc["error"]["signatures"]["rules"] == [
        {"rule": "2 of ci, release, security", "require": 2, "counted": ["ci"], "met": False}
    ]
    code, doc = run_json("cosign", model, "--key", signers["release"].private, "--policy", policy)
    assert code == 0, doc
    validate(doc, "cosign.schema.json")
    assert doc["signed_by"]["key_id"] == signers["release"].key_id
    code, doc = run_json(
        "cosign", model, "--key", signers["ci"].private, "--trust-key", signers["ci"].public
    )
    assert code == 2
    validate(doc, "cosign.schema.json")
    assert "a second signature by the same signer counts once" in doc["error"]["message"]
    code, doc = run_json("verify", model, "--policy", policy)
    assert code == 0
    validate(doc, "verify.schema.json")
    assert [c["signer"] for c in doc["signatures"]["counted"]] == ["ci", "release"]
    assert doc["release"] == {"name": "acme/bert", "version": "1.0"}
    text = subprocess.run(
        [*CLI, "verify", str(model), "--policy", str(policy)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert text.returncode == 0, text.stderr
    assert "model: acme/bert 1.0" in text.stdout
    assert "counted: release (key " in text.stdout
    assert "rule 2 of ci, release, security: 2 counted (ci, release)" in text.stdout


def test_cli_state_needs_a_policy_with_a_state(tmp_path: Path, signers: dict[str, Signer]) -> None:
    write_policy(tmp_path, key_table(signers["ci"]))
    code, doc = run_json("state", "show", "--policy", tmp_path / "policy.toml")
    assert code == 2
    validate(doc, "state.schema.json")
    assert "keeps no rollback state" in doc["error"]["message"]
    assert os.environ.get("MODELSIGN_POLICY") is None
    assert not list(tmp_path.glob("*.lock"))


def test_doctor_flags_a_rollback_state_others_can_write(
    tmp_path: Path, signers: dict[str, Signer]
) -> None:
    """Whoever can rewrite the state file can let an older version back in."""
    from tests.test_doctor import doctor

    policy = _state_policy(tmp_path, signers)
    assert policy.state is not None
    path = str(tmp_path / "policy.toml")
    result, report = doctor("--policy", path, MODELSIGN_POLICY=path)
    assert not [f for f in report["findings"] if f["code"] == "policy-file-writable"]
    policy.state.chmod(0o666)
    result, report = doctor("--policy", path, MODELSIGN_POLICY=path)
    writable = [f for f in report["findings"] if f["code"] == "policy-file-writable"]
    assert [f["subject"] for f in writable] == [str(policy.state)]
    assert result.returncode == 1


@pytest.mark.parametrize("name", [n for n in _refusals.__all__ if n[0].isupper()])
def test_each_load_refusal_twin_is_both_classes_and_pickles(name: str) -> None:
    cls = getattr(_refusals, name)
    base = getattr(modelsign.errors, name.replace("LoadError", "Error"))
    error = cls("the bundle cannot vouch for it", target="/m/w.pt", policy="p.toml, mode enforce")
    assert isinstance(error, LoadRefusedError)
    assert isinstance(error, base)
    assert _refusals.load_refusal_class(base("x")) is cls
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is cls
    assert vars(again) == vars(error)
    assert again.to_json() == error.to_json()
