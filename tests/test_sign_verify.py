"""Signing and verifying through the Python API, with real keys and files."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

import modelsign
from modelsign import keys
from modelsign.bundle import Bundle, KeyMaterial
from modelsign.errors import (
    ConfigError,
    DigestMismatchError,
    ExtraFileError,
    InvalidSignatureError,
    KeyLoadError,
    MalformedBundleError,
    MissingFileError,
    MissingSignatureError,
    ModelMismatchError,
    OverwriteError,
    UnsafeModelError,
    UntrustedSignerError,
    UsageError,
)
from modelsign.manifest import Manifest
from tests.conftest import flip_byte, write_torch_model

MakeModel = Callable[..., Path]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_round_trip_directory(make_model: MakeModel, keypair: tuple[Path, Path]) -> None:
    model = make_model()
    signed = modelsign.sign(model, keypair[0])
    assert signed.signature == model / "model.sig"
    result = modelsign.verify(model, [keypair[1]])
    assert result.files == ("config.json", "model.pt", "tokenizer/vocab.txt")
    assert result.signed_by.key_id == keys.load_public_key(keypair[1]).key_id
    assert result.model_name == "model"
    assert result.manifest.digests()["model.pt"] == sha256(model / "model.pt")


def test_round_trip_single_file(tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    model = tmp_path / "weights.pt"
    write_torch_model(model)
    signed = modelsign.sign(model, keypair[0])
    assert signed.signature == tmp_path / "weights.pt.sig"
    result = modelsign.verify(model, [keypair[1]])
    assert result.files == (".",)
    assert result.model_name == "weights.pt"
    assert result.manifest.resources[0].digest == sha256(model)


def test_resources_are_sorted_by_code_point(tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    model = tmp_path / "m"
    model.mkdir()
    for name in ["b", "a", "é", "z", "_", "Ab"]:
        (model / name).write_text(name)
    modelsign.sign(model, keypair[0])
    names = [r.name for r in modelsign.verify(model, [keypair[1]]).manifest.resources]
    assert names == sorted(names)
    assert names == ["Ab", "_", "a", "b", "z", "é"]


def test_signing_is_deterministic_with_ed25519(make_model: MakeModel, key_dir: Path) -> None:
    prefix = key_dir / "determinism"
    keys.write_keypair(keys.generate("ed25519"), prefix, None)
    model = make_model()
    first = modelsign.sign(model, f"{prefix}.key").signature.read_bytes()
    second = modelsign.sign(model, f"{prefix}.key").signature.read_bytes()
    assert first == second


def test_archive_members_are_listed(make_model: MakeModel, keypair: tuple[Path, Path]) -> None:
    model = make_model()
    manifest = modelsign.sign(model, keypair[0]).manifest
    pt = next(r for r in manifest.resources if r.name == "model.pt")
    assert pt.archive == "zip"
    assert pt.size == (model / "model.pt").stat().st_size
    names = [m.name for m in pt.members]
    assert any(n.endswith("data.pkl") for n in names)
    # The whole-file digest is the signed one; members are diagnostics.
    assert pt.digest == sha256(model / "model.pt")
    config = next(r for r in manifest.resources if r.name == "config.json")
    assert config.archive is None
    assert config.members == ()


def test_every_mismatch_is_reported_at_once(
    make_model: MakeModel, keypair: tuple[Path, Path]
) -> None:
    model = make_model()
    modelsign.sign(model, keypair[0])
    before = sha256(model / "model.pt")
    flip_byte(model / "model.pt")
    after = sha256(model / "model.pt")
    (model / "tokenizer" / "vocab.txt").unlink()
    (model / "extra.py").write_text("import os\n")
    with pytest.raises(ModelMismatchError) as info:
        modelsign.verify(model, [keypair[1]])
    err = info.value
    assert type(err) is ModelMismatchError  # several kinds: the common class
    assert [(m.kind, m.name) for m in err.mismatches] == [
        ("extra", "extra.py"),
        ("digest", "model.pt"),
        ("missing", "tokenizer/vocab.txt"),
    ]
    message = str(err)
    assert f"expected {before}, actual {after}" in message
    assert "extra.py" in message
    assert "tokenizer/vocab.txt" in message
    assert str(model) in message


def test_digest_mismatch_names_file_and_both_digests(
    make_model: MakeModel, keypair: tuple[Path, Path]
) -> None:
    model = make_model()
    modelsign.sign(model, keypair[0])
    expected = sha256(model / "config.json")
    (model / "config.json").write_text('{"layers": [8, 4, 3]}')
    actual = sha256(model / "config.json")
    with pytest.raises(
        DigestMismatchError,
        match=f"config.json: digest mismatch: expected {expected}, actual {actual}",
    ):
        modelsign.verify(model, [keypair[1]])


def test_missing_file(make_model: MakeModel, keypair: tuple[Path, Path]) -> None:
    model = make_model()
    modelsign.sign(model, keypair[0])
    digest = sha256(model / "config.json")
    (model / "config.json").unlink()
    with pytest.raises(
        MissingFileError, match=f"config.json: missing: signed with digest {digest}"
    ):
        modelsign.verify(model, [keypair[1]])


@pytest.mark.parametrize("extra", ["new.bin", ".hidden", "tokenizer/merges.txt"])
def test_extra_file(make_model: MakeModel, keypair: tuple[Path, Path], extra: str) -> None:
    model = make_model()
    modelsign.sign(model, keypair[0])
    (model / extra).write_text("surprise")
    with pytest.raises(ExtraFileError, match=f"{extra}: extra file"):
        modelsign.verify(model, [keypair[1]])


def test_extra_file_under_git_is_ignored_only_because_the_signer_recorded_it(
    make_model: MakeModel, keypair: tuple[Path, Path]
) -> None:
    model = make_model()
    signed = modelsign.sign(model, keypair[0])
    assert ".git" in signed.manifest.serialization.ignore_paths
    (model / ".git").mkdir()
    (model / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    modelsign.verify(model, [keypair[1]])


def test_renamed_file(make_model: MakeModel, keypair: tuple[Path, Path]) -> None:
    model = make_model()
    modelsign.sign(model, keypair[0])
    (model / "config.json").rename(model / "config2.json")
    with pytest.raises(ModelMismatchError) as info:
        modelsign.verify(model, [keypair[1]])
    assert {(m.kind, m.name) for m in info.value.mismatches} == {
        ("missing", "config.json"),
        ("extra", "config2.json"),
    }


def test_ignore_paths_are_recorded_and_honoured(
    make_model: MakeModel, keypair: tuple[Path, Path]
) -> None:
    model = make_model()
    (model / "notes.txt").write_text("unsigned notes")
    signed = modelsign.sign(model, keypair[0], ignore_paths=["notes.txt"])
    assert "notes.txt" in signed.manifest.serialization.ignore_paths
    assert "notes.txt" not in signed.manifest.digests()
    (model / "notes.txt").write_text("changed, still fine: the signer excluded it")
    modelsign.verify(model, [keypair[1]])


def test_verify_time_ignore_path_only_excuses_extra_files(
    make_model: MakeModel, keypair: tuple[Path, Path]
) -> None:
    model = make_model()
    modelsign.sign(model, keypair[0])
    (model / "local.log").write_text("log")
    modelsign.verify(model, [keypair[1]], ignore_paths=["local.log"])
    # Ignoring a signed file does not skip its check: it is then missing.
    with pytest.raises(MissingFileError, match="config.json"):
        modelsign.verify(model, [keypair[1]], ignore_paths=["config.json", "local.log"])


@pytest.mark.parametrize("hash_type", ["sha256", "blake2b", "blake3"])
def test_hash_types(make_model: MakeModel, keypair: tuple[Path, Path], hash_type: str) -> None:
    model = make_model()
    manifest = modelsign.sign(model, keypair[0], hash_type=hash_type).manifest
    assert {r.algorithm for r in manifest.resources} == {hash_type}
    modelsign.verify(model, [keypair[1]])
    flip_byte(model / "model.pt")
    with pytest.raises(DigestMismatchError, match="model.pt"):
        modelsign.verify(model, [keypair[1]])


def test_untrusted_key(
    make_model: MakeModel, keypair: tuple[Path, Path], other_keypair: tuple[Path, Path]
) -> None:
    model = make_model()
    modelsign.sign(model, keypair[0])
    signer = keys.load_public_key(keypair[1]).key_id
    trusted = keys.load_public_key(other_keypair[1]).key_id
    with pytest.raises(UntrustedSignerError, match=f"signed by key '{signer}'.*{trusted}"):
        modelsign.verify(model, [other_keypair[1]])


def test_trusted_key_id_with_another_keys_signature(
    make_model: MakeModel, keypair: tuple[Path, Path], other_keypair: tuple[Path, Path]
) -> None:
    model = make_model()
    modelsign.sign(model, other_keypair[0])
    sig = model / "model.sig"
    doc = json.loads(sig.read_bytes())
    trusted = keys.load_public_key(keypair[1]).key_id
    doc["verificationMaterial"]["publicKey"]["hint"] = trusted
    sig.write_text(json.dumps(doc))
    with pytest.raises(InvalidSignatureError, match=f"{sig}: invalid signature for key {trusted}"):
        modelsign.verify(model, [keypair[1]])


def test_edited_payload_with_old_signature(
    make_model: MakeModel, keypair: tuple[Path, Path]
) -> None:
    model = make_model()
    modelsign.sign(model, keypair[0])
    flip_byte(model / "model.pt")
    sig = model / "model.sig"
    doc = json.loads(sig.read_bytes())
    statement = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    for r in statement["predicate"]["resources"]:
        if r["name"] == "model.pt":
            r["digest"] = sha256(model / "model.pt")
    doc["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    sig.write_text(json.dumps(doc))
    with pytest.raises(InvalidSignatureError, match="invalid signature"):
        modelsign.verify(model, [keypair[1]])


def test_legacy_raw_bytes_material_is_accepted(
    make_model: MakeModel, keypair: tuple[Path, Path], other_keypair: tuple[Path, Path]
) -> None:
    model = make_model()
    modelsign.sign(model, keypair[0])
    sig = model / "model.sig"
    bundle = Bundle.from_bytes(sig.read_bytes())
    pem = keys.load_public_key(keypair[1]).pem
    legacy = Bundle(KeyMaterial(raw_bytes=pem), bundle.envelope)
    sig.write_bytes(legacy.to_bytes())
    assert (
        modelsign.verify(model, [keypair[1]]).signed_by.key_id
        == keys.load_public_key(keypair[1]).key_id
    )
    # The embedded key is only a selector: it does not make itself trusted.
    with pytest.raises(UntrustedSignerError):
        modelsign.verify(model, [other_keypair[1]])


def test_missing_signature_file(make_model: MakeModel, keypair: tuple[Path, Path]) -> None:
    model = make_model()
    with pytest.raises(MissingSignatureError, match="model.sig: no signature file"):
        modelsign.verify(model, [keypair[1]])


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "not valid JSON"),
        (b"{", "not valid JSON"),
        (b"[]", "must be a JSON object"),
        (b'{"mediaType": "x"}', "mediaType"),
    ],
)
def test_malformed_bundle(
    make_model: MakeModel, keypair: tuple[Path, Path], content: bytes, match: str
) -> None:
    model = make_model()
    (model / "model.sig").write_bytes(content)
    with pytest.raises(MalformedBundleError, match=match):
        modelsign.verify(model, [keypair[1]])


def test_trust_is_never_implicit(make_model: MakeModel, keypair: tuple[Path, Path]) -> None:
    model = make_model()
    modelsign.sign(model, keypair[0])
    with pytest.raises(ConfigError, match="no trusted key") as info:
        modelsign.verify(model, [])
    assert info.value.parameter == "trust"


@pytest.mark.parametrize("form", [str, Path])
def test_a_path_as_trust_is_refused_not_iterated(
    make_model: MakeModel, keypair: tuple[Path, Path], form: type
) -> None:
    """Issue 11: verify(m, keys="k.pub") iterated the string ("k: no key file")."""
    model = make_model()
    modelsign.sign(model, keypair[0])
    with pytest.raises(ConfigError, match=r"trust=.*is a path: pass Policy.load\(path\)"):
        modelsign.verify(model, form(keypair[1]))
    assert modelsign.verify(model, [form(keypair[1])]).files
    assert modelsign.verify(model, modelsign.load_public_key(keypair[1])).files


def test_policy_file(make_model: MakeModel, keypair: tuple[Path, Path], tmp_path: Path) -> None:
    model = make_model()
    modelsign.sign(model, keypair[0])
    shutil.copy(keypair[1], tmp_path / "release.pub")
    policy = tmp_path / "policy.toml"
    policy.write_text('[trust]\nkeys = ["release.pub"]\n')
    assert modelsign.verify(model, modelsign.Policy.load(str(policy))).files
    assert modelsign.verify(model, modelsign.Policy.load(policy)).files


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[trust]\nkeys = []\n", "no trusted key"),
        ("", "needs a \\[trust\\] table"),
        ('[trust]\nkeys = ["k.pub"]\nkey = "typo"\n', "unknown key.*'key'"),
        ('[trusted]\nkeys = ["k.pub"]\n', "unknown key.*'trusted'"),
        ('[trust]\nkeys = "k.pub"\n', "must be a list"),
        ("[trust\n", "not valid TOML"),
        ('[trust]\nkeys = ["nope.pub"]\n', "nope.pub"),
    ],
)
def test_bad_policy(tmp_path: Path, keypair: tuple[Path, Path], text: str, match: str) -> None:
    shutil.copy(keypair[1], tmp_path / "k.pub")
    policy = tmp_path / "policy.toml"
    policy.write_text(text)
    with pytest.raises(ConfigError, match=match):
        modelsign.Policy.load(policy)


def test_empty_model_is_refused(tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(UnsafeModelError, match="no files"):
        modelsign.sign(tmp_path / "empty", keypair[0])


def test_symlink_in_model_is_refused(make_model: MakeModel, keypair: tuple[Path, Path]) -> None:
    model = make_model()
    os.symlink(model / "config.json", model / "link.json")
    with pytest.raises(UnsafeModelError, match="link.json: symbolic link"):
        modelsign.sign(model, keypair[0])


def test_fifo_in_model_is_refused_without_blocking(
    make_model: MakeModel, keypair: tuple[Path, Path]
) -> None:
    model = make_model()
    os.mkfifo(model / "pipe")
    with pytest.raises(UnsafeModelError, match="pipe: not a regular file"):
        modelsign.sign(model, keypair[0])


def test_missing_model_is_a_usage_error(tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    with pytest.raises(UsageError, match="no such file"):
        modelsign.sign(tmp_path / "nope", keypair[0])


def test_signing_leaves_no_temporary_file(
    make_model: MakeModel, keypair: tuple[Path, Path]
) -> None:
    model = make_model()
    modelsign.sign(model, keypair[0])
    modelsign.sign(model, keypair[0])
    leftovers = [p.name for p in model.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_keypair_files(tmp_path: Path) -> None:
    key = keys.generate("ecdsa-p384")
    private, public = keys.write_keypair(key, tmp_path / "k", b"secret")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert b"ENCRYPTED PRIVATE KEY" in private.read_bytes()
    assert public.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    loaded = keys.load_private_key(private, b"secret")
    assert loaded.public_key() == keys.load_public_key(public)
    with pytest.raises(KeyLoadError, match="wrong passphrase"):
        keys.load_private_key(private, b"wrong")
    with pytest.raises(KeyLoadError, match="encrypted"):
        keys.load_private_key(private)
    with pytest.raises(OverwriteError, match="already exists"):
        keys.write_keypair(keys.generate(), tmp_path / "k", None)
    assert keys.load_public_key(public) == loaded.public_key()  # unchanged


def test_key_id_is_sha256_of_the_pem(tmp_path: Path) -> None:
    key = keys.generate("ecdsa-p256")
    _, public = keys.write_keypair(key, tmp_path / "k", None)
    assert keys.load_public_key(public).key_id == hashlib.sha256(public.read_bytes()).hexdigest()


def test_private_key_is_not_a_public_key(keypair: tuple[Path, Path]) -> None:
    with pytest.raises(KeyLoadError, match="not a PEM public key"):
        keys.load_public_key(keypair[0])


def test_manifest_payload_round_trip(make_model: MakeModel, keypair: tuple[Path, Path]) -> None:
    model = make_model()
    manifest = modelsign.sign(model, keypair[0]).manifest
    assert Manifest.from_payload(manifest.to_payload()) == manifest


def test_mismatching_archive_names_the_changed_member(
    make_model: MakeModel, keypair: tuple[Path, Path]
) -> None:
    import zipfile

    model = make_model()
    signed = modelsign.sign(model, keypair[0]).manifest
    pt = model / "model.pt"
    with zipfile.ZipFile(pt) as z:
        info = next(i for i in z.infolist() if i.filename.endswith("data/0"))
    # The data starts after the local header, whose extra field (torch pads
    # it for alignment) differs from the central directory's.
    header = pt.read_bytes()[info.header_offset : info.header_offset + 30]
    name_len, extra_len = (
        int.from_bytes(header[26:28], "little"),
        int.from_bytes(header[28:30], "little"),
    )
    start = info.header_offset + 30 + name_len + extra_len
    old_member = next(
        m.digest
        for r in signed.resources
        if r.name == "model.pt"
        for m in r.members
        if m.name == info.filename
    )
    flip_byte(pt, start)
    with pytest.raises(DigestMismatchError) as e:
        modelsign.verify(model, [keypair[1]])
    (mismatch,) = e.value.mismatches
    (member_line,) = mismatch.members
    assert member_line.startswith(f"member {info.filename!r}: expected {old_member}, actual ")
    assert member_line in str(e.value)


def test_stale_temporary_from_an_interrupted_signing_is_refused(
    make_model: MakeModel, keypair: tuple[Path, Path]
) -> None:
    model = make_model()
    stale = model / ".model.sig.3f9a01.tmp"
    stale.write_text('{"mediaType": "half a bund')
    with pytest.raises(UnsafeModelError, match="interrupted signing"):
        modelsign.sign(model, keypair[0])
    assert not (model / "model.sig").exists()
    stale.unlink()
    modelsign.sign(model, keypair[0])
    assert not [p.name for p in model.iterdir() if p.name.endswith(".tmp")]
