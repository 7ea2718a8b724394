"""Release trust, attack by attack (issue 14): each attack a test with real
keys, real bundles, real files and (for times) a real RFC 3161 TSA and a
fake Sigstore whose Rekor entries carry a real integrated time; each refusal
asserts its exact class and a message naming the bundle, the signer and both
values. The controls that must pass are at the end: 2-of-3 met by any two
signers, and rotation to a new key.
"""

from __future__ import annotations

import datetime
import shutil
import time
from pathlib import Path

import pytest

import modelsign
from modelsign.bundle import Bundle, KeyMaterial, SigstoreMaterial
from modelsign.errors import (
    ConfigError,
    EquivocationError,
    ModelSubstitutionError,
    OverwriteError,
    RollbackError,
    SignerExpiredError,
    SignerNotYetValidError,
    SignerRevokedError,
    ThresholdNotMetError,
    UntrustedSignerError,
    UnversionedModelError,
)
from modelsign.policy import Policy
from modelsign.signing import SigstoreSigner
from tests.fakesigstore import FakeSigstore
from tests.test_keyless import fake  # noqa: F401 - the fake Sigstore fixture
from tests.trustkit import (
    DAY,
    NOW,
    Signer,
    copy_model,
    key_table,
    make_model,
    make_signers,
    sign,
    stamp,
    toml_time,
    write_policy,
)
from tests.tsakit import TSA, make_tsa


@pytest.fixture(scope="module")
def tsa() -> TSA:
    return make_tsa("Release TSA")


@pytest.fixture(scope="module")
def rogue_tsa() -> TSA:
    return make_tsa("Rogue TSA")


@pytest.fixture
def signers(tmp_path: Path) -> dict[str, Signer]:
    return make_signers(tmp_path / "keys", "ci", "release", "security")


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return make_model(tmp_path / "models" / "bert")


def two_of_three(tmp_path: Path, signers: dict[str, Signer]) -> Policy:
    tables = "".join(key_table(s) for s in signers.values())
    return write_policy(
        tmp_path,
        tables
        + """
        [[trust.threshold]]
        require = 2
        signers = ["ci", "release", "security"]
        """,
    )


# --------------------------------------------------------------- thresholds


def test_attack_duplicate_signature_counted_twice(
    tmp_path: Path, model: Path, signers: dict[str, Signer]
) -> None:
    """One signer's bundle copied into model.sig.d/, and a second, fresh
    signature by the same key beside it: the signer counts once."""
    policy = two_of_three(tmp_path, signers)
    sign(model, signers["ci"])
    cosigs = model / "model.sig.d"
    cosigs.mkdir()
    shutil.copy(model / "model.sig", cosigs / "copy.sig")
    with pytest.raises(ThresholdNotMetError) as info:
        modelsign.verify(model, policy)
    message = str(info.value)
    assert f"{model / 'model.sig'}: not enough trusted signers" in message
    assert "rule 2 of ci, release, security: 1 counted (ci), 2 required" in message
    assert f"{cosigs / 'copy.sig'}: signer 'ci' is already counted ({model / 'model.sig'})" in (
        message
    )
    report = info.value.report
    assert report is not None
    assert [c["signer"] for c in report["counted"]] == ["ci"]  # type: ignore[index]
    # cosign refuses to add a second signature by the signer that signed it.
    with pytest.raises(OverwriteError, match=r"already signed it .*model\.sig\): a second"):
        modelsign.cosign(model, signers["ci"].private, policy)


def _legacy_bundle(signature: Path, signer: Signer) -> bytes:
    """The same signature re-dressed as a pre-1.1 model_signing bundle: the
    key embedded as ``rawBytes`` instead of named by ``hint``."""
    bundle = Bundle.from_bytes(signature.read_bytes())
    pem = signer.public.read_bytes()
    return Bundle(KeyMaterial(raw_bytes=pem), bundle.envelope).to_bytes()


def test_attack_one_key_under_two_hints(
    tmp_path: Path, model: Path, signers: dict[str, Signer]
) -> None:
    """The same key named by ``hint`` in one bundle and embedded as
    ``rawBytes`` in another: one signer. And a policy that names one key
    twice, to make a 2-of-2 out of one key, is refused when loaded."""
    policy = two_of_three(tmp_path, signers)
    sign(model, signers["ci"])
    (model / "model.sig.d").mkdir()
    legacy = model / "model.sig.d" / "legacy.sig"
    legacy.write_bytes(_legacy_bundle(model / "model.sig", signers["ci"]))
    with pytest.raises(ThresholdNotMetError, match=r"legacy\.sig: signer 'ci' is already counted"):
        modelsign.verify(model, policy)

    copy = tmp_path / "keys" / "ci-again.pub"
    shutil.copy(signers["ci"].public, copy)
    with pytest.raises(ConfigError, match=rf"key {signers['ci'].key_id[:16]} is listed twice"):
        write_policy(
            tmp_path,
            f"""
            [[trust.keys]]
            path = "{signers["ci"].public}"
            name = "ci"
            [[trust.keys]]
            path = "{copy}"
            name = "ci-again"
            [[trust.threshold]]
            require = 2
            signers = ["ci", "ci-again"]
            """,
        )


def test_attack_two_bundles_over_different_statements(
    tmp_path: Path, model: Path, signers: dict[str, Signer]
) -> None:
    """The second signer signed another statement (another model's bytes,
    or the same files under another name): it does not count for this one."""
    policy = two_of_three(tmp_path, signers)
    sign(model, signers["ci"])
    other = make_model(tmp_path / "other", b"other weights")
    sign(other, signers["release"])
    (model / "model.sig.d").mkdir()
    shutil.copy(other / "model.sig", model / "model.sig.d" / "release.sig")
    ours = modelsign.inspect_bundle(model / "model.sig").manifest.root_digest
    theirs = modelsign.inspect_bundle(other / "model.sig").manifest.root_digest
    with pytest.raises(ThresholdNotMetError) as info:
        modelsign.verify(model, policy)
    message = str(info.value)
    assert f"{model / 'model.sig.d' / 'release.sig'}: signs another statement" in message
    assert f"root digest {theirs}, model.sig signs {ours}" in message

    # Same files, same root digest, but signed as another model name.
    renamed = copy_model(model, tmp_path / "renamed")
    shutil.rmtree(renamed / "model.sig.d")
    sign(renamed, signers["release"], model_name="acme/other", force=True)
    shutil.copy(renamed / "model.sig", model / "model.sig.d" / "release.sig")
    with pytest.raises(ThresholdNotMetError, match=rf"same root digest {ours}, but other"):
        modelsign.verify(model, policy)


# --------------------------------------------------------------- validity


def test_attack_expired_key(tmp_path: Path, model: Path, signers: dict[str, Signer]) -> None:
    until = NOW - DAY
    policy = write_policy(tmp_path, key_table(signers["ci"], not_after=toml_time(until)))
    sig = sign(model, signers["ci"])
    with pytest.raises(SignerExpiredError) as info:
        modelsign.verify(model, policy)
    message = str(info.value)
    assert message.startswith(f"{sig}: signed by 'ci', trusted until {toml_time(until)}")
    assert "the signature was made by 20" in message
    assert "(verification time)" in message
    assert isinstance(info.value, UntrustedSignerError)


def test_attack_not_yet_valid_key(tmp_path: Path, model: Path, signers: dict[str, Signer]) -> None:
    start = NOW + 30 * DAY
    policy = write_policy(tmp_path, key_table(signers["ci"], not_before=toml_time(start)))
    sig = sign(model, signers["ci"])
    with pytest.raises(SignerNotYetValidError) as info:
        modelsign.verify(model, policy)
    message = str(info.value)
    assert message.startswith(f"{sig}: signed by 'ci', trusted from {toml_time(start)}")
    assert "before that" in message


def test_attack_revoked_key(tmp_path: Path, model: Path, signers: dict[str, Signer]) -> None:
    policy = write_policy(
        tmp_path, key_table(signers["ci"], revoked="true") + key_table(signers["release"])
    )
    sig = sign(model, signers["ci"])
    with pytest.raises(SignerRevokedError, match=rf"^{sig}: signed by 'ci', which the policy "):
        modelsign.verify(model, policy)
    # A revoked key refuses every signature, timestamped or not.
    sign(model, signers["release"], force=True)
    assert modelsign.verify(model, policy).signed_by.key_id == signers["release"].key_id


def test_attack_revoked_after_signing_with_a_trusted_timestamp_passes(
    tmp_path: Path, model: Path, signers: dict[str, Signer], tsa: TSA
) -> None:
    """Notation's rule: a signature a trusted timestamp proves older than the
    revocation stays valid."""
    revoked = NOW - DAY
    tsa_root = tsa.write_root(tmp_path / "tsa.pem")
    policy = write_policy(
        tmp_path,
        key_table(signers["ci"], revoked=toml_time(revoked), tsa=f'"{tsa_root}"'),
    )
    sig = sign(model, signers["ci"])
    stamp(sig, tsa, NOW - 2 * DAY)
    result = modelsign.verify(model, policy)
    assert result.signatures is not None
    (counted,) = result.signatures.counted
    assert counted.signed_at == NOW - 2 * DAY
    assert counted.time_source == f"earliest of 1 timestamp(s) by TSA {tsa_root}"

    # Timestamped after the revocation: refused, naming both times.
    stamp(sig, tsa, NOW - DAY / 2)
    with pytest.raises(SignerRevokedError) as info:
        modelsign.verify(model, policy)
    assert f"revoked at {toml_time(revoked)}" in str(info.value)
    assert f"made by {toml_time(NOW - DAY / 2)} (earliest of 1 timestamp(s)" in str(info.value)


def test_attack_revoked_after_signing_without_a_timestamp_is_refused(
    tmp_path: Path, model: Path, signers: dict[str, Signer], tsa: TSA
) -> None:
    revoked = NOW - DAY
    tsa_root = tsa.write_root(tmp_path / "tsa.pem")
    policy = write_policy(
        tmp_path,
        key_table(signers["ci"], revoked=toml_time(revoked), tsa=f'"{tsa_root}"'),
    )
    sig = sign(model, signers["ci"])
    with pytest.raises(SignerRevokedError) as info:
        modelsign.verify(model, policy)
    message = str(info.value)
    assert message.startswith(f"{sig}: signed by 'ci', revoked at {toml_time(revoked)}")
    assert "(verification time; the bundle has no timestamp)" in message
    assert "no trusted timestamp proves it older" in message


def test_attack_timestamp_from_a_tsa_the_policy_does_not_name(
    tmp_path: Path, model: Path, signers: dict[str, Signer], tsa: TSA, rogue_tsa: TSA
) -> None:
    """A timestamp claiming the signature predates the revocation, by a TSA
    the policy does not name: never evidence."""
    revoked = NOW - DAY
    sig = sign(model, signers["ci"])
    stamp(sig, rogue_tsa, NOW - 30 * DAY)
    # The key's TSA is another one: the token does not verify, the bundle is refused.
    named = write_policy(
        tmp_path,
        key_table(
            signers["ci"],
            revoked=toml_time(revoked),
            tsa=f'"{tsa.write_root(tmp_path / "tsa.pem")}"',
        ),
    )
    with pytest.raises(
        UntrustedSignerError, match=r"does not chain to the TSA roots in .*tsa\.pem"
    ):
        modelsign.verify(model, named)
    # No TSA named for the key: the token is ignored, the time is now: revoked.
    unnamed = write_policy(
        tmp_path, key_table(signers["ci"], revoked=toml_time(revoked)), name="unnamed.toml"
    )
    with pytest.raises(SignerRevokedError) as info:
        modelsign.verify(model, unnamed)
    assert "1 timestamp(s) ignored: no TSA named for this key" in str(info.value)


def test_attack_revoked_sigstore_identity_rekor_time_decides(
    tmp_path: Path,
    model: Path,
    fake: FakeSigstore,  # noqa: F811 - the fixture imported above
) -> None:
    """A Sigstore bundle's time is Rekor's integrated time (bound by the
    signed entry timestamp): signed before the revocation, it passes; a
    bundle signed after it is refused."""
    signed = modelsign.sign(
        model,
        SigstoreSigner(
            identity_token=fake.token("alice@example.com"), trust_config=fake.trust_config_path
        ),
    )
    material = Bundle.from_bytes(signed.signature.read_bytes()).material
    assert isinstance(material, SigstoreMaterial)
    _, integrated = material.log_entry()
    assert integrated is not None
    time.sleep(max(0.0, integrated + 1.2 - time.time()))  # revoke strictly after it, in the past
    revoked = datetime.datetime.fromtimestamp(integrated + 1, datetime.timezone.utc)
    policy = write_policy(
        tmp_path,
        f"""
        [[trust.sigstore]]
        name = "alice"
        identity = "alice@example.com"
        issuer = "{fake.issuer}"
        trust_root = "{fake.trusted_root_path}"
        revoked = {toml_time(revoked)}
        """,
    )
    result = modelsign.verify(model, policy)
    assert result.signatures is not None
    assert result.signatures.counted[0].time_source == "Rekor integrated time"
    # Signed again now, after the revocation: refused on Rekor's word.
    modelsign.sign(
        model,
        SigstoreSigner(
            identity_token=fake.token("alice@example.com"), trust_config=fake.trust_config_path
        ),
    )
    with pytest.raises(
        SignerRevokedError, match=r"made by .* \(Rekor integrated time\), not before"
    ):
        modelsign.verify(model, policy)


# --------------------------------------------------------------- substitution and rollback


def test_attack_substitution_by_another_model_signed_by_the_same_key(
    tmp_path: Path, signers: dict[str, Signer]
) -> None:
    """Another model, validly signed by the same trusted key, put where the
    policy expects acme/bert."""
    bert = make_model(tmp_path / "models" / "bert")
    sign(bert, signers["ci"], model_name="acme/bert", model_version="1.0")
    policy = write_policy(
        tmp_path,
        key_table(signers["ci"])
        + """
        [[trust.pin]]
        path = "models/bert"
        name = "acme/bert"
        """,
    )
    assert modelsign.verify(bert, policy).release == modelsign.Release("acme/bert", "1.0")
    shutil.rmtree(bert)
    gpt = make_model(bert, b"gpt weights")
    sign(gpt, signers["ci"], model_name="acme/gpt", model_version="3.0")
    with pytest.raises(ModelSubstitutionError) as info:
        modelsign.verify(bert, policy)
    message = str(info.value)
    assert message.startswith(f"{bert / 'model.sig'}: signed for model 'acme/gpt'")
    assert "expected 'acme/bert', actual 'acme/gpt'" in message
    # A bundle that records no name at all is refused there too.
    sign(gpt, signers["ci"], force=True)
    with pytest.raises(ModelSubstitutionError, match="signed for no model name"):
        modelsign.verify(bert, policy)


def _state_policy(tmp_path: Path, signers: dict[str, Signer]) -> Policy:
    policy = write_policy(
        tmp_path,
        key_table(signers["ci"])
        + """
        [rollback]
        state = "state.json"
        """,
    )
    assert policy.state is not None
    from modelsign import _rollback

    _rollback.reset(policy.state)
    return policy


def test_attack_rollback_to_an_older_version(tmp_path: Path, signers: dict[str, Signer]) -> None:
    policy = _state_policy(tmp_path, signers)
    v1 = make_model(tmp_path / "v1", b"version 1")
    sign(v1, signers["ci"], model_name="acme/bert", model_version="1.9")
    v2 = make_model(tmp_path / "v2", b"version 2")
    sign(v2, signers["ci"], model_name="acme/bert", model_version="1.10")
    modelsign.verify(v1, policy)
    modelsign.verify(v2, policy)  # 1.10 > 1.9: numbers, not text
    with pytest.raises(RollbackError) as info:
        modelsign.verify(v1, policy)
    message = str(info.value)
    assert message.startswith(f"{v1 / 'model.sig'}: model 'acme/bert' version 1.9 is older")
    assert "expected version 1.10 or newer, actual 1.9" in message
    assert str(policy.state) in message
    # The state kept the newest; a model without a version cannot be checked.
    modelsign.verify(v2, policy)
    unversioned = make_model(tmp_path / "unversioned", b"version ?")
    sign(unversioned, signers["ci"], model_name="acme/bert")
    with pytest.raises(UnversionedModelError, match="actual model 'acme/bert' without a version"):
        modelsign.verify(unversioned, policy)


def test_attack_equivocation(tmp_path: Path, signers: dict[str, Signer]) -> None:
    """Two different models signed as the same name and version."""
    policy = _state_policy(tmp_path, signers)
    genuine = make_model(tmp_path / "genuine", b"the real 2.0")
    sign(genuine, signers["ci"], model_name="acme/bert", model_version="2.0")
    other = make_model(tmp_path / "other", b"another 2.0")
    sign(other, signers["ci"], model_name="acme/bert", model_version="2.0.0")  # same version
    first = modelsign.verify(genuine, policy).manifest.root_digest
    second = modelsign.inspect_bundle(other / "model.sig").manifest.root_digest
    with pytest.raises(EquivocationError) as info:
        modelsign.verify(other, policy)
    message = str(info.value)
    assert f"version 2.0.0 has root digest {second}" in message
    assert f"expected {first}, actual {second}" in message


# --------------------------------------------------------------- controls


@pytest.mark.parametrize(
    ("first", "second"), [("ci", "release"), ("ci", "security"), ("release", "security")]
)
def test_control_two_of_three_met_by_any_two_signers(
    tmp_path: Path, model: Path, signers: dict[str, Signer], first: str, second: str
) -> None:
    policy = two_of_three(tmp_path, signers)
    sign(model, signers[first])
    with pytest.raises(ThresholdNotMetError, match=rf"1 counted \({first}\), 2 required"):
        modelsign.verify(model, policy)
    cosigned = modelsign.cosign(model, signers[second].private, policy)
    assert cosigned.signature == model / "model.sig.d" / f"key-{signers[second].key_id[:16]}.sig"
    result = modelsign.verify(model, policy)
    assert result.signatures is not None
    assert [c.signer for c in result.signatures.counted] == [first, second]
    assert result.signatures.rules[0].met
    assert result.signatures.not_counted == ()


def test_control_rotation_to_a_new_key(
    tmp_path: Path, model: Path, signers: dict[str, Signer], tsa: TSA
) -> None:
    """The old key is retired (revoked at a time) and a new one named in the
    rule's place: models signed by the new key verify, new signatures by the
    old key do not, and an old release timestamped before the rotation still
    does."""
    rotated = NOW - DAY
    tsa_root = tsa.write_root(tmp_path / "tsa.pem")
    new = make_signers(tmp_path / "keys", "ci-2026")["ci-2026"]
    policy = write_policy(
        tmp_path,
        key_table(signers["ci"], revoked=toml_time(rotated), tsa=f'"{tsa_root}"')
        + key_table(new)
        + """
        [[trust.threshold]]
        require = 1
        signers = ["ci", "ci-2026"]
        """,
    )
    old_release = copy_model(model, tmp_path / "old-release")
    stamp(sign(old_release, signers["ci"]), tsa, NOW - 10 * DAY)
    assert modelsign.verify(old_release, policy).signed_by.key_id == signers["ci"].key_id
    sign(model, signers["ci"])
    with pytest.raises(SignerRevokedError, match="signed by 'ci', revoked at"):
        modelsign.verify(model, policy)
    sign(model, new, force=True)
    assert modelsign.verify(model, policy).signed_by.key_id == new.key_id
