"""`modelsign diff`: what changed between two releases, from their bundles'
claims (or, with trust, after verifying both): files, digests, archive
members, settings, signer; exit 0 identical, 1 different, 2 bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import modelsign
from modelsign import keys
from modelsign._diff import Change, diff_releases, open_release
from modelsign.errors import (
    DigestMismatchError,
    MalformedBundleError,
    MissingSignatureError,
    UntrustedSignerError,
    UsageError,
)
from modelsign.manifest import Manifest, Resource, Serialization
from tests.conftest import write_torch_model
from tests.fuzz_bundle import sign_payload
from tests.test_json_output import validate

CLI = [sys.executable, "-m", "modelsign"]


def cli(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "diff", *map(str, args)], capture_output=True, text=True, check=False, timeout=120
    )


@pytest.fixture
def releases(tmp_path: Path, keypair: tuple[Path, Path]) -> tuple[Path, Path]:
    """v1 and v2 of a model: v2 changes model.pt's tensors (archive members),
    adds notes.txt, removes tokenizer/vocab.txt, keeps config.json."""
    v1 = tmp_path / "v1"
    (v1 / "tokenizer").mkdir(parents=True)
    write_torch_model(v1 / "model.pt", seed=1)
    (v1 / "config.json").write_text('{"layers": 2}')
    (v1 / "tokenizer" / "vocab.txt").write_text("a\nb\n")
    modelsign.sign(v1, keypair[0])
    v2 = tmp_path / "v2"
    shutil.copytree(v1, v2)
    (v2 / "model.sig").unlink()
    write_torch_model(v2 / "model.pt", seed=2)
    (v2 / "notes.txt").write_text("release notes")
    (v2 / "tokenizer" / "vocab.txt").unlink()
    (v2 / "tokenizer").rmdir()
    modelsign.sign(v2, keypair[0])
    return v1, v2


def _digest(model: Path, name: str) -> str:
    manifest = modelsign.inspect_bundle(model).manifest
    return "sha256:" + manifest.digests()[name]


def _resource(model: Path, name: str) -> Resource:
    (found,) = [r for r in modelsign.inspect_bundle(model).manifest.resources if r.name == name]
    return found


def test_two_releases_every_kind_of_change(releases: tuple[Path, Path]) -> None:
    v1, v2 = releases
    result = cli(v1, v2, "--json")
    assert result.returncode == 1, result.stderr
    doc = json.loads(result.stdout)
    validate(doc, "diff.schema.json")
    assert (doc["identical"], doc["verified"]) == (False, False)
    files = doc["files"]
    assert [f["name"] for f in files["added"]] == ["notes.txt"]
    assert files["added"][0]["digest"] == _digest(v2, "notes.txt")
    assert [f["name"] for f in files["removed"]] == ["tokenizer/vocab.txt"]
    assert files["removed"][0]["digest"] == _digest(v1, "tokenizer/vocab.txt")
    assert files["unchanged"] == 1  # config.json
    (changed,) = files["changed"]
    assert changed["name"] == "model.pt"
    assert changed["old"]["digest"] == _digest(v1, "model.pt")
    assert changed["new"]["digest"] == _digest(v2, "model.pt")
    # The tensors changed, so did their storage members; the members' old and
    # new digests are the bundles' member annotations.
    old_members = {
        m.name: m.digest for m in modelsign.inspect_bundle(v1).manifest.resources[1].members
    }
    new_members = {
        m.name: m.digest for m in modelsign.inspect_bundle(v2).manifest.resources[1].members
    }
    differ = sorted(n for n in old_members if old_members[n] != new_members.get(n))
    assert differ
    assert {m["name"] for m in changed["members"]} == set(differ)
    assert all(
        (m["kind"], m["old"], m["new"])
        == ("changed", old_members[m["name"]], new_members[m["name"]])
        for m in changed["members"]
    )
    fields = {c["field"]: (c["old"], c["new"]) for c in doc["changes"]}
    assert fields["model_name"] == ("v1", "v2")
    assert fields["root_digest"] == (doc["old"]["root_digest"], doc["new"]["root_digest"])
    assert "signer" not in fields  # the same key signed both


def test_text_output_names_each_change_with_both_digests(releases: tuple[Path, Path]) -> None:
    v1, v2 = releases
    result = cli(v1, v2)
    assert result.returncode == 1
    out = result.stdout
    assert "claims, UNVERIFIED" in out
    assert "1 added, 1 removed, 1 changed, 1 unchanged" in out
    assert f"  + notes.txt  {_digest(v2, 'notes.txt')}" in out
    assert f"  - tokenizer/vocab.txt  {_digest(v1, 'tokenizer/vocab.txt')}" in out
    assert f"      old {_digest(v1, 'model.pt')}" in out
    assert f"      new {_digest(v2, 'model.pt')}" in out
    assert "      member " in out
    assert cli(v1, v2, "-q").stdout == ""


def test_identical_releases_exit_0(releases: tuple[Path, Path]) -> None:
    v1, _ = releases
    result = cli(v1, v1 / "model.sig")
    assert result.returncode == 0, result.stderr
    assert "identical: 3 file(s)" in result.stdout
    doc = json.loads(cli(v1, v1, "--json").stdout)
    validate(doc, "diff.schema.json")
    assert doc["identical"]
    assert doc["changes"] == []


def test_signer_change(
    releases: tuple[Path, Path], keypair: tuple[Path, Path], other_keypair: tuple[Path, Path]
) -> None:
    v1, _ = releases
    copy = v1.parent / "resigned" / "v1"  # the same subject name
    shutil.copytree(v1, copy)
    (copy / "model.sig").unlink()
    modelsign.sign(copy, other_keypair[0])
    result = diff_releases(open_release(v1 / "model.sig"), open_release(copy / "model.sig"))
    assert not result.identical
    assert [c.field for c in result.changes] == ["signer"]
    old_id = keys.load_public_key(keypair[1]).key_id
    new_id = keys.load_public_key(other_keypair[1]).key_id
    assert (result.changes[0].old, result.changes[0].new) == (f"key {old_id}", f"key {new_id}")
    assert result.unchanged == 3
    assert not (result.added)
    assert not (result.removed)
    assert not (result.changed)


def test_single_files_with_their_bundles(tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    write_torch_model(a, seed=1)
    write_torch_model(b, seed=2)
    modelsign.sign(a, keypair[0])
    modelsign.sign(b, keypair[0])
    result = diff_releases(open_release(a), open_release(b))
    (changed,) = result.changed
    assert changed.name == "."
    assert changed.old.digest != changed.new.digest
    assert {c.field for c in result.changes} == {"model_name", "root_digest"}
    assert diff_releases(open_release(a), open_release(Path(f"{a}.sig"))).identical


def test_shard_bundles_count_differing_shards_and_other_settings_are_uncomparable(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    def release(name: str, data: bytes, **options: object) -> Path:
        model = tmp_path / name
        model.mkdir()
        (model / "big.bin").write_bytes(data)
        (model / "c.json").write_text("{}")
        modelsign.sign(model, keypair[0], **options)  # type: ignore[arg-type]
        return model

    data = bytes(range(256)) * 40  # 10240 bytes: 10 shards of 1024
    changed = bytearray(data)
    changed[5000] ^= 1
    changed[9000] ^= 1
    a = release("a", data, shard_size=1024)
    b = release("b", bytes(changed), shard_size=1024)
    result = diff_releases(open_release(a), open_release(b))
    (file,) = result.changed
    assert (file.name, file.differing_shards, file.old.shards, file.old.size) == (
        "big.bin",
        2,
        10,
        10240,
    )
    c = release("c", data, shard_size=2048)
    d = release("d", data, hash_type="blake2b")
    for other, field in ((c, "shard_size"), (d, "hash_type")):
        result = diff_releases(open_release(a), open_release(other))
        assert result.uncomparable == ("big.bin", "c.json")
        assert field in {ch.field for ch in result.changes}
        assert not result.identical


def test_with_trust_both_sides_are_verified_first(
    releases: tuple[Path, Path], keypair: tuple[Path, Path], other_keypair: tuple[Path, Path]
) -> None:
    v1, v2 = releases
    trust = modelsign.Policy.of([keypair[1]])
    result = diff_releases(open_release(v1, trust), open_release(v2, trust))
    assert result.verified
    assert result.old.signer.verified
    result = cli(v1, v2, "--key", keypair[1], "--json")
    assert result.returncode == 1
    doc = json.loads(result.stdout)
    validate(doc, "diff.schema.json")
    assert doc["verified"] is True
    # A tampered file: the model side does not verify (its files are hashed).
    data = bytearray((v2 / "notes.txt").read_bytes())
    data[0] ^= 1
    (v2 / "notes.txt").write_bytes(bytes(data))
    with pytest.raises(DigestMismatchError, match="notes.txt: digest mismatch"):
        open_release(v2, trust)
    result = cli(v1, v2, "--key", keypair[1], "--json")
    assert result.returncode == 1
    doc = json.loads(result.stdout)
    validate(doc, "diff.schema.json")
    assert doc["error"]["type"] == "DigestMismatchError"
    assert "rejected: model" in result.stderr
    assert "Traceback" not in result.stderr
    # A bare bundle is verified by its signature only: the changed file is not read.
    assert open_release(v2 / "model.sig", trust).verified
    # An untrusted signer.
    other = modelsign.Policy.of([other_keypair[1]])
    with pytest.raises(UntrustedSignerError, match=f"{v1 / 'model.sig'}: signed by key"):
        open_release(v1 / "model.sig", other)
    result = cli(v1, v1, "--key", other_keypair[1])
    assert result.returncode == 1
    assert "rejected:" in result.stderr
    assert "not trusted" in result.stderr


def test_bad_input_exits_2_without_a_traceback(tmp_path: Path, releases: tuple[Path, Path]) -> None:
    v1, _ = releases
    unsigned = tmp_path / "unsigned"
    unsigned.mkdir()
    (unsigned / "w.bin").write_bytes(b"w")
    garbage = tmp_path / "garbage.sig"
    garbage.write_bytes(b"\x00\xff{not json")
    cases = {
        tmp_path / "absent": (UsageError, "absent: no such file or folder"),
        unsigned: (MissingSignatureError, f"{unsigned / 'model.sig'}: no signature file"),
        garbage: (MalformedBundleError, f"{garbage}: not valid JSON"),
    }
    for path, (error, message) in cases.items():
        with pytest.raises(error, match=message):
            open_release(path)
        result = cli(v1, path)
        assert result.returncode == 2, (path, result.stderr)
        assert message in result.stderr
        assert "Traceback" not in result.stderr
        result = cli(v1, path, "--json")
        doc = json.loads(result.stdout)
        validate(doc, "diff.schema.json")
        assert doc["error"]["type"] == error.__name__


def _hostile_bundle(path: Path, names: list[str], members: list[str]) -> Path:
    from modelsign._hashing import MemberDigest

    resources = tuple(
        Resource(
            name,
            "sha256",
            f"{i:064x}",
            10,
            "zip" if i == 0 else None,
            tuple(MemberDigest(m, 1, f"{j + i:064x}", "stored") for j, m in enumerate(members))
            if i == 0
            else (),
        )
        for i, name in enumerate(names)
    )
    manifest = Manifest("\x1b]0;pwned\x07<script>", resources, Serialization())
    path.write_bytes(sign_payload(manifest.to_payload()))
    return path


def test_hostile_names_from_bundles_cannot_drive_the_terminal(tmp_path: Path) -> None:
    escape = "\x1b[2J\x1b[31mred"
    old = _hostile_bundle(tmp_path / "old.sig", [f"a{escape}.bin", "b.bin"], [f"m{escape}"])
    new = _hostile_bundle(tmp_path / "new.sig", ["b.bin", f"c\r{escape}.bin"], ["n\x07"])
    result = cli(old, new)
    assert result.returncode == 1, result.stderr
    assert "\x1b" not in result.stdout
    assert "\x07" not in result.stdout
    assert "\r" not in result.stdout
    assert repr(f"c\r{escape}.bin") in result.stdout
    doc = json.loads(cli(old, new, "--json").stdout)
    validate(doc, "diff.schema.json")
    assert doc["files"]["added"][0]["name"] == f"c\r{escape}.bin"  # JSON escapes it


def test_a_bundle_named_like_a_model_file_is_read_as_a_bundle(
    releases: tuple[Path, Path],
) -> None:
    v1, _ = releases
    copy = v1.parent / "plain-bundle.json"
    shutil.copyfile(v1 / "model.sig", copy)
    assert diff_releases(open_release(v1), open_release(copy)).identical


def test_provenance_changes(
    releases: tuple[Path, Path], keypair: tuple[Path, Path], tmp_path: Path
) -> None:
    from modelsign.provenance import attest

    v1, v2 = releases
    data1, data2 = tmp_path / "data1", tmp_path / "data2"
    for data in (data1, data2):
        data.mkdir()
        (data / "train.jsonl").write_text(data.name)
    attest(v1, keypair[0], datasets=[data1], params={"lr": 1}, entry_point="train.py", environ={})
    attest(
        v2, keypair[0], datasets=[data2], base_model=v1, params={"lr": 2}, entry_point="train.py",
        environ={},
    )  # fmt: skip
    result = cli(v1, v2, "--key", keypair[1], "--json")
    assert result.returncode == 1, result.stderr
    doc = json.loads(result.stdout)
    validate(doc, "diff.schema.json")
    changes = {c["field"]: (c["old"], c["new"]) for c in doc["changes"]}
    root1 = doc["old"]["root_digest"]
    digest = {
        data: "sha256:" + (modelsign.provenance.read_provenance(model).datasets[0].sha256 or "")
        for data, model in ((data1, v1), (data2, v2))
    }
    assert changes["provenance.datasets"] == (f"data1 {digest[data1]}", f"data2 {digest[data2]}")
    assert changes["provenance.base_model"] == ("none", f"v1 sha256:{root1}")
    assert changes["provenance.parameters"] == ('{"lr": 1}', '{"lr": 2}')
    assert "provenance.builder" not in changes  # the same machine built both
    assert doc["old"]["provenance"]["status"] == doc["new"]["provenance"]["status"] == "verified"
    text = cli(v1, v2).stdout
    assert f"provenance.base_model: none -> v1 sha256:{root1}" in text
    # Present on one side only.
    (v1 / "model.provenance.sig").unlink()
    result = diff_releases(open_release(v1), open_release(v2))
    assert [c for c in result.changes if c.field.startswith("provenance")] == [
        Change("provenance", "missing", "unverified")
    ]
    # Another model's provenance is told apart even unverified.
    shutil.copyfile(v2 / "model.provenance.sig", v1 / "model.provenance.sig")
    assert open_release(v1).provenance.status == "invalid"


def test_release_version_and_co_signer_changes(
    tmp_path: Path, keypair: tuple[Path, Path], other_keypair: tuple[Path, Path]
) -> None:
    key, other = keys.load_private_key(keypair[0]), keys.load_private_key(other_keypair[0])
    v1, v2 = tmp_path / "a" / "bert", tmp_path / "b" / "bert"
    for model, version in ((v1, "1.2.0"), (v2, "1.3.0")):
        model.mkdir(parents=True)
        (model / "w.bin").write_bytes(b"weights")
        modelsign.sign(model, key, model_name="acme/bert", model_version=version)
    modelsign.cosign(v2, other, modelsign.Policy.of([keypair[1], other_keypair[1]]))
    result = cli(v1, v2, "--json")
    assert result.returncode == 1, result.stderr
    doc = json.loads(result.stdout)
    validate(doc, "diff.schema.json")
    changes = {c["field"]: (c["old"], c["new"]) for c in doc["changes"]}
    other_id = keys.load_public_key(other_keypair[1]).key_id
    assert changes == {
        "release.version": ("1.2.0", "1.3.0"),
        "cosigners": ("none", f"key {other_id}"),
    }
    assert doc["new"]["release"] == {"name": "acme/bert", "version": "1.3.0"}
    assert [c["who"] for c in doc["new"]["cosigners"]] == [other_id]
    assert doc["files"]["unchanged"] == 1
