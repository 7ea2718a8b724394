"""OMS shard serialization (method "shards"): round trips through the API and
the CLI, refusals that name the shard, the colon rule, validly re-signed
hostile shard bundles, model_signing interoperability and the loader hook.

Real keys, real files, real crypto: nothing is mocked. Expected shard digests
are computed here with hashlib (and blake3), independently of modelsign.
Shard resources are named ``path:start:end`` (``.:start:end`` for a single-file
model, as model_signing names it); empty files have no shard and are listed in
``annotations.empty_files`` on the first resource.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import random
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import modelsign
import modelsign._guard
from modelsign import hooks, keys
from modelsign._digests import Fingerprint, HashScheme, ShardDigest, shard_ranges
from modelsign._enumerating import DEFAULT_IGNORES
from modelsign.errors import (
    DigestMismatchError,
    Error,
    ExtraFileError,
    FileDigestMismatchError,
    MalformedBundleError,
    MissingFileError,
    ModelMismatchError,
    UnsafeModelError,
    UnsignedFileError,
    UsageError,
)
from modelsign.manifest import Manifest, Serialization
from modelsign.policy import Policy
from modelsign.signing import MAX_SHARDS, default_signature_path
from tests.conftest import flip_byte, require
from tests.test_cli import cli
from tests.test_hostile_bundles import resign, root_digest

Statement = dict[str, Any]

#: The shard size of most tests: small, so that a few hundred bytes make many shards.
SHARD = 16

#: name -> size. A multi-shard file whose size is not a multiple of SHARD (and
#: whose starts reach three digits: "112" sorts before "16" as text), files of
#: exactly one and two shards, a small file, empty files, nested folders.
LAYOUT: dict[str, int] = {
    "big.bin": 12 * SHARD + 7,
    "one.bin": SHARD,
    "two.bin": 2 * SHARD,
    "small.txt": 5,
    "empty": 0,
    "sub/deeper/w.bin": 3 * SHARD - 1,
    "sub/empty2": 0,
}
EMPTY_FILES = ["empty", "sub/empty2"]


# --------------------------------------------------------------------------
# Helpers


def content(name: str, size: int, seed: int = 0) -> bytes:
    return random.Random(f"{seed}:{name}").randbytes(size)


def write_model(root: Path, layout: Mapping[str, int], seed: int = 0) -> dict[str, bytes]:
    """Write ``layout`` under ``root``; return name -> bytes."""
    files = {}
    for name, size in layout.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        files[name] = content(name, size, seed)
        path.write_bytes(files[name])
    return files


def digest(hash_type: str, data: bytes) -> str:
    if hash_type == "blake3":
        blake3 = require("blake3", "blake3 digests are checked against the blake3 package")
        return str(blake3.blake3(data).hexdigest())
    return hashlib.new(hash_type, data).hexdigest()


def expected_shards(
    files: Mapping[str, bytes], shard_size: int, hash_type: str = "sha256"
) -> list[tuple[str, str]]:
    """(``path:start:end``, digest) of every shard, by path then start."""
    out = []
    for name in sorted(files):
        data = files[name]
        for start in range(0, len(data), shard_size):
            end = min(start + shard_size, len(data))
            out.append((f"{name}:{start}:{end}", digest(hash_type, data[start:end])))
    return out


def fingerprint(data: bytes, shard_size: int) -> Fingerprint:
    """What the hook compares for a file: the sha256 of each of its shards."""
    return Fingerprint(
        shards=tuple(
            ShardDigest(
                s, min(s + shard_size, len(data)), digest("sha256", data[s : s + shard_size])
            )
            for s in range(0, len(data), shard_size)
        )
    )


def statement_of(signature: Path) -> Statement:
    bundle = json.loads(signature.read_bytes())
    statement: Statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    return statement


def payload_bytes(signature: Path) -> bytes:
    return base64.b64decode(json.loads(signature.read_bytes())["dsseEnvelope"]["payload"])


def sha256_of_digests(digests: list[str]) -> str:
    h = hashlib.sha256()
    for d in digests:
        h.update(bytes.fromhex(d))
    return h.hexdigest()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith((".sig", ".tmp")))


class Recorder:
    """A real :class:`modelsign._hashing.Progress`: counts what was hashed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started: list[tuple[int, int]] = []
        self.bytes = 0
        self.files = 0

    def start(self, files: int, nbytes: int) -> None:
        with self._lock:
            self.started.append((files, nbytes))

    def advance(self, nbytes: int) -> None:
        with self._lock:
            self.bytes += nbytes

    def file_done(self) -> None:
        with self._lock:
            self.files += 1


@dataclass(frozen=True)
class Signed:
    """A model signed in shard mode by the trusted key."""

    model: Path
    files: dict[str, bytes]
    private: Path
    public: Path
    shard_size: int

    @property
    def sig(self) -> Path:
        return default_signature_path(self.model)

    def verify(self, **kwargs: Any) -> modelsign.VerifiedModel:
        return modelsign.verify(self.model, [self.public], **kwargs)

    def resign(self, mutate: Callable[[Statement], object], *, fix_root: bool = True) -> None:
        resign(self.sig, self.private, mutate, fix_root=fix_root)

    def shard_digest(self, name: str, start: int, end: int) -> str:
        return digest("sha256", (self.model / name).read_bytes()[start:end])


@pytest.fixture(scope="module")
def ed_keypair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One Ed25519 key pair for the CLI tests (the API tests use both algorithms)."""
    prefix = tmp_path_factory.mktemp("shard-keys") / "ed25519"
    keys.write_keypair(keys.generate("ed25519"), prefix, None)
    return Path(f"{prefix}.key"), Path(f"{prefix}.pub")


@pytest.fixture
def signed(tmp_path: Path, keypair: tuple[Path, Path]) -> Signed:
    model = tmp_path / "model"
    files = write_model(model, LAYOUT)
    modelsign.sign(model, keypair[0], shard_size=SHARD)
    return Signed(model, files, keypair[0], keypair[1], SHARD)


def refused(
    expected: type[Error], call: Callable[[], object], lines: list[str], model: Path
) -> ModelMismatchError:
    """``call`` raises exactly ``expected`` listing exactly ``lines``, in order."""
    with pytest.raises(Error) as info:
        call()
    err = info.value
    assert type(err) is expected, err
    assert isinstance(err, ModelMismatchError)
    assert [m.describe() for m in err.mismatches] == lines
    message = str(err)
    assert f"model {model} does not match its signature" in message
    for line in lines:
        assert line in message
    return err


# --------------------------------------------------------------------------
# Building blocks: shard ranges, the streaming sharded hasher, Serialization.


@pytest.mark.parametrize(
    ("size", "ranges"),
    [
        (0, []),
        (1, [(0, 1)]),
        (16, [(0, 16)]),
        (17, [(0, 16), (16, 17)]),
        (32, [(0, 16), (16, 32)]),
        (39, [(0, 16), (16, 32), (32, 39)]),
    ],
)
def test_shard_ranges(size: int, ranges: list[tuple[int, int]]) -> None:
    assert shard_ranges(size, 16) == ranges


@pytest.mark.parametrize("hash_type", ["sha256", "blake2b", "blake3"])
@pytest.mark.parametrize("chunks", [[199], [1] * 199, [15, 1, 16, 17, 33, 100, 17], [64, 135]])
def test_scheme_hasher_matches_independent_shards(hash_type: str, chunks: list[int]) -> None:
    if hash_type == "blake3":
        require("blake3", "the blake3 scheme needs the blake3 package")
    data = content("stream", sum(chunks))
    h = HashScheme(hash_type, SHARD).hasher()
    offset = 0
    for n in chunks:
        h.update(memoryview(data)[offset : offset + n])
        offset += n
    want = [
        ShardDigest(s, e, digest(hash_type, data[s:e])) for s, e in shard_ranges(len(data), SHARD)
    ]
    got = h.fingerprint()
    assert got == Fingerprint(shards=tuple(want))
    assert (got.digest, got.size, got.sharded) == (None, len(data), True)


def test_schemes_and_fingerprints_are_typed_values() -> None:
    assert str(HashScheme("sha256")) == "sha256"
    assert str(HashScheme("blake2b", 1024)) == "blake2b in shards of 1024 bytes"
    assert HashScheme("sha256") != HashScheme("sha256", 16)
    whole = HashScheme("sha256").hasher().fingerprint()
    assert whole == Fingerprint(digest=hashlib.sha256().hexdigest())
    assert (whole.sharded, whole.size, str(whole)) == (False, None, hashlib.sha256().hexdigest())
    empty = HashScheme("sha256", 16).hasher().fingerprint()
    assert (empty, empty.size, str(empty)) == (Fingerprint(shards=()), 0, "0 shard(s) over 0 bytes")
    with pytest.raises(ValueError, match="exactly one"):
        Fingerprint()
    with pytest.raises(ValueError, match="exactly one"):
        Fingerprint(digest="00", shards=())
    with pytest.raises(ValueError, match="shard_size must be positive, not 0"):
        HashScheme("sha256", 0)
    with pytest.raises(Error, match="unknown hash type 'md5'"):
        HashScheme("md5")  # type: ignore[arg-type]
    a = Fingerprint(shards=(ShardDigest(0, 4, "aa"), ShardDigest(4, 6, "bb")))
    b = Fingerprint(shards=(ShardDigest(0, 4, "aa"), ShardDigest(4, 6, "cc")))
    c = Fingerprint(shards=(ShardDigest(0, 4, "aa"),))
    assert a.difference(b) == (" at shard 4:6", "bb", "cc")
    assert a.difference(c) == (" (size)", "6 bytes", "4 bytes")
    assert Fingerprint(digest="aa").difference(Fingerprint(digest="bb")) == ("", "aa", "bb")


def test_serialization_shard_size_goes_with_method_shards() -> None:
    ser = Serialization.sharded(SHARD, hash_type="blake2b")
    assert (ser.method, ser.shard_size, ser.scheme) == ("shards", SHARD, HashScheme("blake2b", 16))
    assert ser.to_json()["shard_size"] == SHARD
    assert "shard_size" not in Serialization().to_json()
    with pytest.raises(ValueError, match="shard_size goes with method 'shards'"):
        Serialization(method="shards")
    with pytest.raises(ValueError, match="shard_size goes with method 'shards'"):
        Serialization(shard_size=SHARD)
    with pytest.raises(ValueError, match="shard_size must be positive, not 0"):
        Serialization.sharded(0)


# --------------------------------------------------------------------------
# 1. Round trips


@pytest.mark.parametrize("hash_type", ["sha256", "blake2b", "blake3"])
def test_round_trip_api(tmp_path: Path, keypair: tuple[Path, Path], hash_type: str) -> None:
    model = tmp_path / "model"
    files = write_model(model, LAYOUT)
    want = expected_shards(files, SHARD, hash_type)
    signed = modelsign.sign(model, keypair[0], shard_size=SHARD, hash_type=hash_type)
    assert signed.signature == model / "model.sig"

    statement = statement_of(signed.signature)
    predicate = statement["predicate"]
    assert predicate["serialization"] == {
        "method": "shards",
        "hash_type": hash_type,
        "allow_symlinks": False,
        "ignore_paths": sorted([*DEFAULT_IGNORES, "model.sig", "model.sig.d"]),
        "shard_size": SHARD,
    }
    # An integer, as OMS v1.0 says (model_signing <= 1.1.1 writes 16.0).
    assert type(predicate["serialization"]["shard_size"]) is int
    assert b'"shard_size":16}' in payload_bytes(signed.signature)
    resources = predicate["resources"]
    assert [(r["name"], r["digest"]) for r in resources] == want
    assert {r["algorithm"] for r in resources} == {hash_type}
    # Sorted by path, then by start as a number (not as text).
    names = [r["name"] for r in resources]
    keyed = [(n.rsplit(":", 2)[0], int(n.rsplit(":", 2)[1])) for n in names]
    assert keyed == sorted(keyed)
    assert [n for n in names if n.startswith("big.bin:")][6:8] == [
        "big.bin:96:112",
        "big.bin:112:128",
    ]
    assert resources[0]["annotations"] == {"empty_files": EMPTY_FILES}
    assert all("annotations" not in r for r in resources[1:])
    (subject,) = statement["subject"]
    assert subject == {
        "name": "model",
        "digest": {"sha256": sha256_of_digests([d for _, d in want])},
    }

    result = modelsign.verify(model, [keypair[1]])
    assert result.files == tuple(sorted(LAYOUT))
    assert result.manifest.serialization.hash_type == hash_type
    assert result.root_digest == subject["digest"]["sha256"]
    assert result.manifest.serialization == Serialization.sharded(
        SHARD,
        hash_type=hash_type,
        ignore_paths=tuple(sorted([*DEFAULT_IGNORES, "model.sig", "model.sig.d"])),
    )
    assert result.manifest == signed.manifest
    assert Manifest.from_payload(signed.manifest.to_payload()) == signed.manifest


def test_file_fingerprints_of_a_shard_manifest(signed: Signed) -> None:
    manifest = signed.verify().manifest
    prints = manifest.file_fingerprints()
    assert sorted(prints) == sorted(LAYOUT)
    for name, data in signed.files.items():
        assert prints[name] == fingerprint(data, SHARD)


@pytest.mark.parametrize(
    ("size", "names"),
    [
        (2 * SHARD + 3, [".:0:16", ".:16:32", ".:32:35"]),
        (SHARD, [".:0:16"]),
        (1, [".:0:1"]),
    ],
)
def test_single_file_model(
    tmp_path: Path, keypair: tuple[Path, Path], size: int, names: list[str]
) -> None:
    model = tmp_path / "weights.bin"
    data = content("weights", size)
    model.write_bytes(data)
    signed = modelsign.sign(model, keypair[0], shard_size=SHARD)
    assert signed.signature == tmp_path / "weights.bin.sig"
    statement = statement_of(signed.signature)
    resources = statement["predicate"]["resources"]
    assert [r["name"] for r in resources] == names
    assert [r["digest"] for r in resources] == [d for _, d in expected_shards({".": data}, SHARD)]
    assert all("annotations" not in r for r in resources)
    assert statement["subject"][0]["name"] == "weights.bin"
    result = modelsign.verify(model, [keypair[1]])
    assert result.files == (".",)
    assert result.model_name == "weights.bin"


def test_single_file_model_changed_shard_is_named(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    model = tmp_path / "weights.bin"
    model.write_bytes(content("weights", 3 * SHARD))
    modelsign.sign(model, keypair[0], shard_size=SHARD)
    before = digest("sha256", model.read_bytes()[16:32])
    flip_byte(model, 20)
    after = digest("sha256", model.read_bytes()[16:32])
    refused(
        DigestMismatchError,
        lambda: modelsign.verify(model, [keypair[1]]),
        [f".:16:32: digest mismatch: expected {before}, actual {after}"],
        model,
    )


def test_single_file_bundle_naming_the_file_by_name_verifies(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    """A single-file bundle may name its file by its file name instead of '.'."""
    model = tmp_path / "weights.bin"
    model.write_bytes(content("weights", 2 * SHARD + 1))
    signed = modelsign.sign(model, keypair[0], shard_size=SHARD)

    def by_file_name(s: Statement) -> None:
        for r in s["predicate"]["resources"]:
            r["name"] = "weights.bin" + r["name"][1:]

    resign(signed.signature, keypair[0], by_file_name)
    result = modelsign.verify(model, [keypair[1]])
    assert result.files == ("weights.bin",)
    before = digest("sha256", model.read_bytes()[0:16])
    flip_byte(model, 0)
    after = digest("sha256", model.read_bytes()[0:16])
    refused(
        DigestMismatchError,
        lambda: modelsign.verify(model, [keypair[1]]),
        [f"weights.bin:0:16: digest mismatch: expected {before}, actual {after}"],
        model,
    )


def test_single_file_with_a_colon_in_its_name_signs_in_shard_mode(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    """The colon rule is about resource paths: a single file is named '.'."""
    model = tmp_path / "a:b.bin"
    model.write_bytes(content("ab", 40))
    modelsign.sign(model, keypair[0], shard_size=SHARD)
    names = [r["name"] for r in statement_of(tmp_path / "a:b.bin.sig")["predicate"]["resources"]]
    assert names == [".:0:16", ".:16:32", ".:32:40"]
    assert modelsign.verify(model, [keypair[1]]).files == (".",)


@pytest.mark.parametrize("single", [False, True], ids=["directory", "single file"])
def test_a_model_of_empty_files_only_is_refused_in_shard_mode(
    tmp_path: Path, keypair: tuple[Path, Path], single: bool
) -> None:
    if single:
        model = tmp_path / "e.bin"
        model.write_bytes(b"")
        folder, name = tmp_path, "e.bin"
    else:
        model = folder = tmp_path / "m"
        write_model(model, {"a": 0, "sub/b": 0})
        name = "m"
    with pytest.raises(Error) as info:
        modelsign.sign(model, keypair[0], shard_size=SHARD)
    assert type(info.value) is UnsafeModelError
    assert str(info.value) == (
        f"{name}: every file is empty; shard serialization would sign no resource "
        "(sign it with files serialization)"
    )
    assert leftovers(folder) == []


@pytest.mark.parametrize("bad", [0, -1, True])
def test_api_refuses_a_shard_size_that_is_not_positive(
    tmp_path: Path, keypair: tuple[Path, Path], bad: int
) -> None:
    model = tmp_path / "m"
    write_model(model, {"a": 3})
    with pytest.raises(Error) as info:
        modelsign.sign(model, keypair[0], shard_size=bad)
    assert type(info.value) is UsageError
    assert (
        str(info.value)
        == f"shard_size={bad!r}: the shard size must be a number of bytes from 1 to {2**63 - 1}"
    )
    assert info.value.parameter == "shard_size"
    assert leftovers(model) == []


def test_more_than_max_shards_is_refused_before_hashing(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    model = tmp_path / "m"
    write_model(model, {"w.bin": MAX_SHARDS, "e": 0})
    progress = Recorder()
    with pytest.raises(Error) as info:
        modelsign.sign(model, keypair[0], shard_size=1, progress=progress)
    assert type(info.value) is UsageError
    assert str(info.value) == (
        f"shard_size=1 cuts {model} into {MAX_SHARDS + 1} shards, more than {MAX_SHARDS}: "
        "choose a larger shard size"
    )
    assert progress.started == []
    assert leftovers(model) == []


@pytest.mark.parametrize("size_arg", ["1K", "1024", "1KiB"])
def test_round_trip_cli(tmp_path: Path, ed_keypair: tuple[Path, Path], size_arg: str) -> None:
    model = tmp_path / "model"
    files = write_model(model, {"big.bin": 2 * 1024 + 100, "one.bin": 1024, "e": 0, "sub/x": 10})
    result = cli("sign", model, "--key", ed_keypair[0], "--shard-size", size_arg)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"signed {model} (4 files) -> {model / 'model.sig'}\n")
    statement = statement_of(model / "model.sig")
    assert statement["predicate"]["serialization"]["shard_size"] == 1024
    assert [(r["name"], r["digest"]) for r in statement["predicate"]["resources"]] == (
        expected_shards(files, 1024)
    )
    assert [r["name"] for r in statement["predicate"]["resources"]] == [
        "big.bin:0:1024",
        "big.bin:1024:2048",
        "big.bin:2048:2148",
        "one.bin:0:1024",
        "sub/x:0:10",
    ]

    result = cli("verify", model, "--key", ed_keypair[1], "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["verified"] is True
    assert (doc["serialization"], doc["shard_size"], doc["hash_type"]) == ("shards", 1024, "sha256")
    assert doc["files"] == ["big.bin", "e", "one.bin", "sub/x"]
    result = cli("verify", model, "--key", ed_keypair[1])
    assert result.returncode == 0, result.stderr
    assert f"verified {model}: 4 files match the signature" in result.stdout
    # The API verifies what the CLI signed.
    assert modelsign.verify(model, [ed_keypair[1]]).files == (
        "big.bin",
        "e",
        "one.bin",
        "sub/x",
    )

    before = digest("sha256", files["big.bin"][1024:2048])
    flip_byte(model / "big.bin", 1500)
    after = digest("sha256", (model / "big.bin").read_bytes()[1024:2048])
    result = cli("verify", model, "--key", ed_keypair[1])
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"big.bin:1024:2048: digest mismatch: expected {before}, actual {after}" in result.stderr
    result = cli("verify", model, "--key", ed_keypair[1], "--json")
    assert result.returncode == 1
    doc = json.loads(result.stdout)
    assert doc["error"]["type"] == "DigestMismatchError"
    assert doc["error"]["mismatches"] == [
        {
            "kind": "digest",
            "name": "big.bin",
            "shard": {"start": 1024, "end": 2048},
            "expected": before,
            "actual": after,
        }
    ]


def test_api_signed_bundle_verifies_with_the_cli(
    tmp_path: Path, ed_keypair: tuple[Path, Path]
) -> None:
    model = tmp_path / "model"
    write_model(model, LAYOUT)
    modelsign.sign(model, ed_keypair[0], shard_size=SHARD, hash_type="blake2b")
    result = cli("verify", model, "--key", ed_keypair[1], "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert (doc["serialization"], doc["shard_size"], doc["hash_type"]) == (
        "shards",
        SHARD,
        "blake2b",
    )
    assert doc["files"] == sorted(LAYOUT)


# --------------------------------------------------------------------------
# 2. Refusals: every one names the shard or file, with expected and actual.


@pytest.mark.parametrize(
    ("shard", "offset"),
    [((0, 16), 0), ((48, 64), 53), ((112, 128), 127), ((192, 199), 198)],
    ids=["first shard", "a middle shard", "last byte of a full shard", "the short last shard"],
)
def test_one_changed_byte_names_only_its_shard(
    signed: Signed, shard: tuple[int, int], offset: int
) -> None:
    start, end = shard
    before = signed.shard_digest("big.bin", start, end)
    flip_byte(signed.model / "big.bin", offset)
    after = signed.shard_digest("big.bin", start, end)
    err = refused(
        DigestMismatchError,
        signed.verify,
        [f"big.bin:{start}:{end}: digest mismatch: expected {before}, actual {after}"],
        signed.model,
    )
    (m,) = err.mismatches
    assert (m.kind, m.name, m.shard, m.expected, m.actual) == (
        "digest",
        "big.bin",
        (start, end),
        before,
        after,
    )


def test_changes_in_two_files_and_two_shards_are_all_listed(signed: Signed) -> None:
    changes = [("big.bin", 0, 16, 1), ("big.bin", 80, 96, 90), ("sub/deeper/w.bin", 32, 47, 40)]
    before = {(n, s): signed.shard_digest(n, s, e) for n, s, e, _ in changes}
    for name, _, _, offset in changes:
        flip_byte(signed.model / name, offset)
    refused(
        DigestMismatchError,
        signed.verify,
        [
            f"{n}:{s}:{e}: digest mismatch: expected {before[n, s]}, "
            f"actual {signed.shard_digest(n, s, e)}"
            for n, s, e, _ in changes
        ],
        signed.model,
    )


def test_a_whole_file_replaced_at_the_same_size_lists_every_shard(signed: Signed) -> None:
    (signed.model / "two.bin").write_bytes(content("other", 2 * SHARD))
    err = refused(
        DigestMismatchError,
        signed.verify,
        [
            f"two.bin:{s}:{e}: digest mismatch: expected "
            f"{digest('sha256', signed.files['two.bin'][s:e])}, "
            f"actual {signed.shard_digest('two.bin', s, e)}"
            for s, e in [(0, 16), (16, 32)]
        ],
        signed.model,
    )
    assert len(err.mismatches) == 2


def _truncate(name: str, size: int) -> Callable[[Path], None]:
    def change(model: Path) -> None:
        with open(model / name, "r+b") as f:
            f.truncate(size)

    return change


def _append(name: str, data: bytes) -> Callable[[Path], None]:
    def change(model: Path) -> None:
        with open(model / name, "ab") as f:
            f.write(data)

    return change


def _unlink(name: str) -> Callable[[Path], None]:
    return lambda model: (model / name).unlink()


def _create(name: str, data: bytes = b"") -> Callable[[Path], None]:
    def change(model: Path) -> None:
        (model / name).parent.mkdir(parents=True, exist_ok=True)
        (model / name).write_bytes(data)

    return change


def _rename(old: str, new: str) -> Callable[[Path], None]:
    return lambda model: (model / old).rename(model / new)


def _size(name: str, expected: int, actual: int) -> str:
    return f"{name}: size mismatch: expected {expected} bytes, actual {actual} bytes"


def _missing(name: str, size: int) -> str:
    return f"{name}: missing: signed with size {size} bytes, not on disk"


def _extra(name: str) -> str:
    return f"{name}: extra file: on disk but not in the signed manifest"


#: name -> (change to the signed model, expected class, the exact mismatch lines).
FILE_CHANGES: dict[str, tuple[Callable[[Path], None], type[Error], list[str]]] = {
    "multi-shard file truncated by one byte": (
        _truncate("big.bin", 198),
        DigestMismatchError,
        [_size("big.bin", 199, 198)],
    ),
    "multi-shard file cut at a shard boundary": (
        _truncate("big.bin", 192),
        DigestMismatchError,
        [_size("big.bin", 199, 192)],
    ),
    "one byte appended": (
        _append("big.bin", b"\0"),
        DigestMismatchError,
        [_size("big.bin", 199, 200)],
    ),
    "one full shard appended to a two-shard file": (
        _append("two.bin", bytes(SHARD)),
        DigestMismatchError,
        [_size("two.bin", 32, 48)],
    ),
    "one-shard file emptied": (
        _truncate("one.bin", 0),
        DigestMismatchError,
        [_size("one.bin", 16, 0)],
    ),
    "empty file given content": (
        _create("empty", b"abc"),
        DigestMismatchError,
        [_size("empty", 0, 3)],
    ),
    "empty file removed": (_unlink("empty"), MissingFileError, [_missing("empty", 0)]),
    "nested empty file removed": (
        _unlink("sub/empty2"),
        MissingFileError,
        [_missing("sub/empty2", 0)],
    ),
    "empty file added": (_create("new"), ExtraFileError, [_extra("new")]),
    "empty file added in a new folder": (
        _create("sub/new/e"),
        ExtraFileError,
        [_extra("sub/new/e")],
    ),
    "non-empty file added": (
        _create("sub/x.py", b"import os\n"),
        ExtraFileError,
        [_extra("sub/x.py")],
    ),
    "small file removed": (_unlink("small.txt"), MissingFileError, [_missing("small.txt", 5)]),
    "multi-shard file removed": (_unlink("big.bin"), MissingFileError, [_missing("big.bin", 199)]),
    "empty file renamed": (
        _rename("empty", "empty.bak"),
        ModelMismatchError,
        [_missing("empty", 0), _extra("empty.bak")],
    ),
    "file renamed": (
        _rename("one.bin", "uno.bin"),
        ModelMismatchError,
        [_missing("one.bin", 16), _extra("uno.bin")],
    ),
}


@pytest.mark.parametrize("case", list(FILE_CHANGES))
def test_changed_model_is_refused(signed: Signed, case: str) -> None:
    change, expected, lines = FILE_CHANGES[case]
    signed.verify()  # the benign model verifies
    change(signed.model)
    # Mismatches are listed in name order; the expected lines are written so.
    refused(expected, signed.verify, lines, signed.model)


def test_a_size_mismatch_is_reported_without_reading_the_file(signed: Signed) -> None:
    _append("big.bin", b"x")(signed.model)
    progress = Recorder()
    refused(
        DigestMismatchError,
        lambda: signed.verify(progress=progress),
        [_size("big.bin", 199, 200)],
        signed.model,
    )
    others = {n: len(d) for n, d in signed.files.items() if n != "big.bin"}
    assert progress.started == [(len(others), sum(others.values()))]
    assert progress.bytes == sum(others.values())
    assert progress.files == len(others)


@pytest.mark.parametrize("single", [False, True], ids=["directory", "single file"])
def test_tiny_shard_size_against_a_large_file_is_a_size_mismatch_without_hashing(
    tmp_path: Path, keypair: tuple[Path, Path], single: bool
) -> None:
    """A bundle with shard_size 1 over a 3-byte file, the file swapped for 8 MiB:
    refused from the sizes alone, not after hashing 8 million shards."""
    if single:
        model = target = tmp_path / "t.bin"
        name = "."
    else:
        model = tmp_path / "m"
        model.mkdir()
        target = model / "t.bin"
        name = "t.bin"
    target.write_bytes(b"abc")
    modelsign.sign(model, keypair[0], shard_size=1)
    assert len(statement_of(default_signature_path(model))["predicate"]["resources"]) == 3
    target.write_bytes(bytes(8 * 1024 * 1024))
    progress = Recorder()
    refused(
        DigestMismatchError,
        lambda: modelsign.verify(model, [keypair[1]], progress=progress),
        [_size(name, 3, 8 * 1024 * 1024)],
        model,
    )
    assert progress.started == [(0, 0)]
    assert (progress.bytes, progress.files) == (0, 0)


def test_bundle_without_empty_files_annotation_reports_empty_files_as_extra(
    signed: Signed,
) -> None:
    """A model_signing-style shard bundle does not list empty files: they are
    unsigned, so modelsign reports them rather than accept them silently."""

    def strip(s: Statement) -> None:
        del s["predicate"]["resources"][0]["annotations"]

    signed.resign(strip)
    refused(ExtraFileError, signed.verify, [_extra("empty"), _extra("sub/empty2")], signed.model)


# --------------------------------------------------------------------------
# 3. The colon rule


@pytest.mark.parametrize("name", ["layer:0.bin", "sub/c:d.bin", "dir:x/w.bin", "ends:"])
def test_colon_in_a_path_is_refused_in_shard_mode_only(
    tmp_path: Path, keypair: tuple[Path, Path], name: str
) -> None:
    model = tmp_path / "m"
    write_model(model, {"ok.bin": 40, name: 20})
    progress = Recorder()
    with pytest.raises(Error) as info:
        modelsign.sign(model, keypair[0], shard_size=SHARD, progress=progress)
    assert type(info.value) is UnsafeModelError
    assert str(info.value) == (
        f"{name!r}: a file name with ':' cannot be named in shard serialization "
        "(resource names are path:start:end); sign it with files serialization"
    )
    assert progress.started == []  # refused before any byte is read
    assert leftovers(model) == []  # no bundle, no temporary file
    # Files serialization names it as it is.
    modelsign.sign(model, keypair[0])
    result = modelsign.verify(model, [keypair[1]])
    assert result.manifest.serialization.method == "files"
    assert name in result.files


@pytest.mark.parametrize("shard_size", [None, SHARD], ids=["files", "shards"])
def test_a_drive_letter_name_is_refused_in_both_modes(
    tmp_path: Path, keypair: tuple[Path, Path], shard_size: int | None
) -> None:
    """'a:b.bin' reads as a Windows drive prefix: refused whatever the mode."""
    model = tmp_path / "m"
    write_model(model, {"ok.bin": 40, "a:b.bin": 20})
    with pytest.raises(Error) as info:
        modelsign.sign(model, keypair[0], shard_size=shard_size)
    assert type(info.value) is UnsafeModelError
    assert str(info.value) == "unsafe path name 'a:b.bin': starts with a Windows drive letter"
    assert leftovers(model) == []


def test_colon_rule_through_the_cli(tmp_path: Path, ed_keypair: tuple[Path, Path]) -> None:
    model = tmp_path / "m"
    write_model(model, {"ok.bin": 40, "ab:c.bin": 20})
    result = cli("sign", model, "--key", ed_keypair[0], "--shard-size", "16", "-q")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert (
        "'ab:c.bin': a file name with ':' cannot be named in shard serialization" in result.stderr
    )
    assert leftovers(model) == []


# --------------------------------------------------------------------------
# 4. Hostile shard bundles, validly re-signed by the trusted key.
#
# The model: a.bin (11 bytes: a.bin:0:4, a.bin:4:8, a.bin:8:11), b.bin (4
# bytes: b.bin:0:4), and the empty files e and f, signed with shard_size 4.

HOSTILE_LAYOUT = {"a.bin": 11, "b.bin": 4, "e": 0, "f": 0}
HOSTILE_SHARDS = ["a.bin:0:4", "a.bin:4:8", "a.bin:8:11", "b.bin:0:4"]


def _resources(s: Statement) -> list[dict[str, Any]]:
    resources: list[dict[str, Any]] = s["predicate"]["resources"]
    return resources


def _find(s: Statement, name: str) -> dict[str, Any]:
    return next(r for r in _resources(s) if r["name"] == name)


def shard_size(value: object) -> Callable[[Statement], None]:
    return lambda s: s["predicate"]["serialization"].__setitem__("shard_size", value)


def rename(old: str, new: str) -> Callable[[Statement], None]:
    return lambda s: _find(s, old).__setitem__("name", new)


def drop(name: str) -> Callable[[Statement], None]:
    return lambda s: _resources(s).remove(_find(s, name))


def append(name: str, copy_of: str = "b.bin:0:4", **changes: Any) -> Callable[[Statement], None]:
    def mutate(s: Statement) -> None:
        item = {k: v for k, v in _find(s, copy_of).items() if k != "annotations"}
        _resources(s).append({**item, "name": name, **changes})

    return mutate


def empty_files(value: object, index: int = 0) -> Callable[[Statement], None]:
    def mutate(s: Statement) -> None:
        _resources(s)[index].setdefault("annotations", {})["empty_files"] = value

    return mutate


def move_empty_files(index: int) -> Callable[[Statement], None]:
    def mutate(s: Statement) -> None:
        _resources(s)[index]["annotations"] = _resources(s)[0].pop("annotations")

    return mutate


def algorithm(value: str, only: str | None = None) -> Callable[[Statement], None]:
    def mutate(s: Statement) -> None:
        for r in _resources(s):
            if only is None or r["name"] == only:
                r["algorithm"] = value

    return mutate


def single_file_with_empty_files(s: Statement) -> None:
    first = _find(s, "b.bin:0:4")
    s["predicate"]["resources"] = [
        {**first, "name": ".:0:4", "annotations": {"empty_files": ["e"]}}
    ]


def both(*mutations: Callable[[Statement], None]) -> Callable[[Statement], None]:
    def mutate(s: Statement) -> None:
        for m in mutations:
            m(s)

    return mutate


def _tile(name: str) -> str:
    path = name.rsplit(":", 2)[0]
    return re.escape(
        f"the shards of {path!r} do not tile the file in shards of 4 bytes (found {name})"
    )


def _offset(name: str, text: str) -> str:
    return re.escape(
        f"shard {name!r}: {text!r} is not a byte offset (decimal digits, no leading zero)"
    )


def _positive(value: object) -> str:
    return re.escape(f"serialization shard_size must be a positive integer, not {value!r}")


#: name -> (statement mutation, regex of the MalformedBundleError message).
HOSTILE: dict[str, tuple[Callable[[Statement], None], str]] = {
    # shard_size
    "shard_size 0": (shard_size(0), _positive(0)),
    "shard_size negative": (shard_size(-4), _positive(-4)),
    "shard_size true": (shard_size(True), _positive(True)),
    "shard_size false": (shard_size(False), _positive(False)),
    "shard_size a string": (shard_size("4"), _positive("4")),
    "shard_size null": (shard_size(None), _positive(None)),
    "shard_size a list": (shard_size([4]), _positive([4])),
    "shard_size float 1.5": (shard_size(1.5), _positive(1.5)),
    "shard_size float 4.5": (shard_size(4.5), _positive(4.5)),
    "shard_size float 1e300": (shard_size(1e300), _positive(1e300)),
    "shard_size float -4.0": (shard_size(-4.0), _positive(-4)),
    "shard_size missing": (
        lambda s: s["predicate"]["serialization"].__delitem__("shard_size"),
        _positive(None),
    ),
    "shard_size 8 over shards of 4": (
        shard_size(8),
        re.escape(
            "the shards of 'a.bin' do not tile the file in shards of 8 bytes (found a.bin:0:4)"
        ),
    ),
    "shard_size 2 over shards of 4": (
        shard_size(2),
        re.escape(
            "the shards of 'a.bin' do not tile the file in shards of 2 bytes (found a.bin:0:4)"
        ),
    ),
    # tiling
    "gap: a middle shard missing": (drop("a.bin:4:8"), _tile("a.bin:8:11")),
    "gap: the first shard missing": (drop("a.bin:0:4"), _tile("a.bin:4:8")),
    "overlap": (rename("a.bin:4:8", "a.bin:2:6"), _tile("a.bin:2:6")),
    "wrong start of the first shard": (rename("a.bin:0:4", "a.bin:1:4"), _tile("a.bin:1:4")),
    "a non-last shard shorter than shard_size": (
        rename("a.bin:0:4", "a.bin:0:3"),
        _tile("a.bin:0:3"),
    ),
    "last shard longer than shard_size": (rename("a.bin:8:11", "a.bin:8:13"), _tile("a.bin:8:13")),
    "only shard longer than shard_size": (rename("b.bin:0:4", "b.bin:0:5"), _tile("b.bin:0:5")),
    # a.bin:8:11 is short, and no longer the last shard
    "a shard past the end of a tiling": (append("a.bin:11:15"), _tile("a.bin:8:11")),
    "duplicate shard": (
        append("a.bin:4:8", copy_of="a.bin:4:8"),
        "a shard resource is listed twice",
    ),
    "duplicate shard with another digest": (
        append("a.bin:4:8", digest="0" * 64),
        "a shard resource is listed twice",
    ),
    # offsets
    "empty range a.bin:5:5": (
        rename("a.bin:4:8", "a.bin:5:5"),
        re.escape("shard 'a.bin:5:5': the range is empty or reversed"),
    ),
    "reversed range a.bin:8:4": (
        rename("a.bin:4:8", "a.bin:8:4"),
        re.escape("shard 'a.bin:8:4': the range is empty or reversed"),
    ),
    "leading zero in a start": (rename("a.bin:4:8", "a.bin:04:8"), _offset("a.bin:04:8", "04")),
    "leading zero in an end": (rename("a.bin:0:4", "a.bin:0:04"), _offset("a.bin:0:04", "04")),
    "zero written 00": (rename("a.bin:0:4", "a.bin:00:4"), _offset("a.bin:00:4", "00")),
    "plus sign": (rename("a.bin:4:8", "a.bin:+4:8"), _offset("a.bin:+4:8", "+4")),
    "minus zero": (rename("a.bin:0:4", "a.bin:-0:4"), _offset("a.bin:-0:4", "-0")),
    "hexadecimal offset": (rename("a.bin:4:8", "a.bin:0x4:8"), _offset("a.bin:0x4:8", "0x4")),
    "digit separator 1_1 (int() reads it)": (
        rename("a.bin:8:11", "a.bin:8:1_1"),
        _offset("a.bin:8:1_1", "1_1"),
    ),
    "Arabic-Indic digit (int() reads it)": (
        rename("a.bin:4:8", "a.bin:\u0664:8"),
        _offset("a.bin:\u0664:8", "\u0664"),
    ),
    "space before an offset": (rename("a.bin:4:8", "a.bin: 4:8"), _offset("a.bin: 4:8", " 4")),
    "offset of 20 digits": (
        rename("a.bin:8:11", "a.bin:8:" + "1" * 20),
        _offset("a.bin:8:" + "1" * 20, "1" * 20),
    ),
    "empty offset": (rename("a.bin:4:8", "a.bin::8"), _offset("a.bin::8", "")),
    "no offsets (a files-mode name)": (
        rename("b.bin:0:4", "b.bin"),
        re.escape("shard resource 'b.bin' is not path:start:end"),
    ),
    "one offset": (
        rename("b.bin:0:4", "b.bin:4"),
        re.escape("shard resource 'b.bin:4' is not path:start:end"),
    ),
    # paths
    "empty path": (rename("b.bin:0:4", ":0:4"), re.escape("unsafe path name '': is empty")),
    "path with ..": (rename("b.bin:0:4", "../b.bin:0:4"), re.escape("unsafe path name '../b.bin'")),
    "path with . component": (
        rename("b.bin:0:4", "./b.bin:0:4"),
        re.escape("unsafe path name './b.bin'"),
    ),
    "absolute path": (
        rename("b.bin:0:4", "/b.bin:0:4"),
        re.escape("unsafe path name '/b.bin': is an absolute path"),
    ),
    "path with a backslash": (
        rename("b.bin:0:4", "c\\b.bin:0:4"),
        re.escape("unsafe path name 'c\\\\b.bin': contains a backslash"),
    ),
    "path with a colon a:b:0:4": (
        rename("b.bin:0:4", "a:b:0:4"),
        re.escape("shard resource 'a:b:0:4': the path contains ':'"),
    ),
    "case-colliding paths A.bin and a.bin": (
        append("A.bin:0:4"),
        re.escape("resources 'a.bin' and 'A.bin' collide"),
    ),
    "paths colliding under NFC (NFD e-acute)": (
        both(append("\u00e9.bin:0:4"), append("e\u0301.bin:0:4")),
        "resources '\u00e9.bin' and 'e\u0301.bin' collide",
    ),
    "'.' resource together with other files": (
        append(".:0:4"),
        re.escape("resource '.' (a single-file model) must be the only resource"),
    ),
    "'.' resource together with empty files": (
        single_file_with_empty_files,
        re.escape("resource '.' (a single-file model) must be the only file"),
    ),
    # annotations.empty_files
    "empty_files a string": (
        empty_files("e"),
        "annotations.empty_files must be a list of file names",
    ),
    "empty_files an object": (
        empty_files({"e": True}),
        "annotations.empty_files must be a list of file names",
    ),
    "empty_files with a number": (
        empty_files(["e", 1]),
        "annotations.empty_files must be a list of file names",
    ),
    "empty_files with ..": (empty_files(["../e", "f"]), re.escape("unsafe path name '../e'")),
    "empty_files with an absolute path": (
        empty_files(["/e", "f"]),
        re.escape("unsafe path name '/e': is an absolute path"),
    ),
    "empty_files with '.'": (empty_files([".", "e", "f"]), re.escape("unsafe path name '.'")),
    "empty_files with a colon": (
        empty_files(["e", "f", "gg:0"]),
        re.escape("empty file 'gg:0': the path contains ':'"),
    ),
    "empty_files duplicated": (
        empty_files(["e", "e", "f"]),
        "annotations.empty_files lists a file twice",
    ),
    "empty_files on a non-first resource": (
        move_empty_files(2),
        "annotations.empty_files may only be on the first resource",
    ),
    "empty_files on the first and on the last resource": (
        empty_files(["g"], index=3),
        "annotations.empty_files may only be on the first resource",
    ),
    "empty_files naming a sharded file": (
        empty_files(["e", "f", "b.bin"]),
        re.escape("duplicate resource 'b.bin'"),
    ),
    "empty_files case-colliding with a sharded file": (
        empty_files(["B.BIN", "e", "f"]),
        re.escape("resources 'b.bin' and 'B.BIN' collide"),
    ),
    "empty_files case-colliding with each other": (
        empty_files(["E", "e", "f"]),
        re.escape("resources 'E' and 'e' collide"),
    ),
    # algorithm
    "algorithm sha256-sharded-8 with shard_size 4": (
        algorithm("sha256-sharded-8"),
        re.escape(
            "resource 'a.bin:0:4': algorithm 'sha256-sharded-8' differs from hash_type 'sha256'"
        ),
    ),
    "algorithm sha256-sharded-4.0": (
        algorithm("sha256-sharded-4.0"),
        re.escape("algorithm 'sha256-sharded-4.0' differs from hash_type 'sha256'"),
    ),
    "algorithm blake2b-sharded-4 under sha256 on one shard": (
        algorithm("blake2b-sharded-4", only="b.bin:0:4"),
        re.escape("resource 'b.bin:0:4': algorithm 'blake2b-sharded-4' differs"),
    ),
}

#: Shapes model_signing <= 1.1.1 writes: they verify.
BENIGN: dict[str, Callable[[Statement], None]] = {
    "shard_size as a float 4.0": shard_size(4.0),
    "algorithm sha256-sharded-4": algorithm("sha256-sharded-4"),
    "both, as model_signing 1.1.1 writes them": both(
        shard_size(4.0), algorithm("sha256-sharded-4")
    ),
}


@pytest.fixture
def hostile(tmp_path: Path, keypair: tuple[Path, Path]) -> Signed:
    model = tmp_path / "model"
    files = write_model(model, HOSTILE_LAYOUT)
    modelsign.sign(model, keypair[0], shard_size=4)
    resources = statement_of(model / "model.sig")["predicate"]["resources"]
    assert [r["name"] for r in resources] == HOSTILE_SHARDS
    assert resources[0]["annotations"] == {"empty_files": ["e", "f"]}
    return Signed(model, files, keypair[0], keypair[1], 4)


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_shard_bundle_is_refused(hostile: Signed, case: str) -> None:
    mutate, match = HOSTILE[case]
    hostile.verify()
    hostile.resign(mutate)
    with pytest.raises(Error, match=match) as info:
        hostile.verify()
    assert type(info.value) is MalformedBundleError, info.value
    assert str(hostile.sig) in str(info.value)


@pytest.mark.parametrize("case", list(BENIGN))
def test_model_signing_shapes_verify(hostile: Signed, case: str) -> None:
    before = hostile.verify()
    hostile.resign(BENIGN[case])
    after = hostile.verify()
    assert after.manifest.serialization.shard_size == 4
    assert type(after.manifest.serialization.shard_size) is int
    assert (after.files, after.root_digest) == (before.files, before.root_digest)


def test_hostile_shard_bundle_through_the_cli(
    tmp_path: Path, ed_keypair: tuple[Path, Path]
) -> None:
    model = tmp_path / "model"
    write_model(model, HOSTILE_LAYOUT)
    modelsign.sign(model, ed_keypair[0], shard_size=4)
    resign(model / "model.sig", ed_keypair[0], rename("a.bin:4:8", "a.bin:2:6"), fix_root=True)
    result = cli("verify", model, "--key", ed_keypair[1])
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("modelsign: rejected: "), result.stderr
    assert "do not tile the file in shards of 4 bytes (found a.bin:2:6)" in result.stderr


def test_tampered_shard_under_a_fixed_root_digest_is_a_digest_mismatch(hostile: Signed) -> None:
    """The re-signing helper itself: a shard digest changed in the statement
    (validly signed) makes that shard, and only it, mismatch."""
    hostile.resign(lambda s: _find(s, "a.bin:4:8").__setitem__("digest", "0" * 64))
    actual = hostile.shard_digest("a.bin", 4, 8)
    refused(
        DigestMismatchError,
        hostile.verify,
        [f"a.bin:4:8: digest mismatch: expected {'0' * 64}, actual {actual}"],
        hostile.model,
    )


def _swap_shards(s: Statement) -> None:
    resources = _resources(s)
    resources[1], resources[2] = resources[2], resources[1]


def test_root_digest_follows_the_resource_order(hostile: Signed) -> None:
    """Two shards swapped in the statement, the subject digest kept: refused."""
    subject = statement_of(hostile.sig)["subject"][0]["digest"]["sha256"]
    hostile.resign(_swap_shards, fix_root=False)
    assert root_digest(statement_of(hostile.sig)) != subject
    with pytest.raises(Error) as info:
        hostile.verify()
    assert type(info.value) is MalformedBundleError
    assert f"subject digest {subject} does not match the resources" in str(info.value)


# --------------------------------------------------------------------------
# 5. model_signing interoperability (skipped when it cannot be imported)


@dataclass(frozen=True)
class Reference:
    signing: Any
    verifying: Any
    hashing: Any


@pytest.fixture
def reference() -> Reference:
    require("model_signing", "the reference implementation is compared with")
    import model_signing.hashing
    import model_signing.signing
    import model_signing.verifying

    return Reference(model_signing.signing, model_signing.verifying, model_signing.hashing)


@pytest.fixture
def p256(tmp_path: Path) -> tuple[Path, Path]:
    private, public = keys.write_keypair(keys.generate("ecdsa-p256"), tmp_path / "p256", None)
    return Path(private), Path(public)


INTEROP_LAYOUT = {"model.bin": 3 * 64 + 10, "config.json": 30, "sub/vocab.txt": 64}


def reference_sign(ref: Reference, model: Path, private: Path, shard_size: int) -> Path:
    signature = default_signature_path(model)
    hashing = ref.hashing.Config().use_shard_serialization(shard_size=shard_size)
    ref.signing.Config().use_elliptic_key_signer(private_key=private).set_hashing_config(
        hashing
    ).sign(model, signature)
    return signature


def test_modelsign_verifies_model_signing_shard_bundle(
    reference: Reference, p256: tuple[Path, Path], tmp_path: Path
) -> None:
    model = tmp_path / "model"
    files = write_model(model, INTEROP_LAYOUT)
    signature = reference_sign(reference, model, p256[0], 64)
    statement = statement_of(signature)
    # What model_signing 1.1.1 writes, and modelsign reads for compatibility.
    assert statement["predicate"]["serialization"]["shard_size"] in (64, 64.0)
    resources = statement["predicate"]["resources"]
    assert {r["algorithm"] for r in resources} <= {"sha256", "sha256-sharded-64"}
    assert sorted((r["name"], r["digest"]) for r in resources) == sorted(expected_shards(files, 64))

    result = modelsign.verify(model, [p256[1]])
    ser = result.manifest.serialization
    assert (ser.method, ser.shard_size, type(ser.shard_size)) == ("shards", 64, int)
    assert result.files == ("config.json", "model.bin", "sub/vocab.txt")
    assert result.root_digest == statement["subject"][0]["digest"]["sha256"]

    before = digest("sha256", files["model.bin"][64:128])
    flip_byte(model / "model.bin", 100)
    after = digest("sha256", (model / "model.bin").read_bytes()[64:128])
    refused(
        DigestMismatchError,
        lambda: modelsign.verify(model, [p256[1]]),
        [f"model.bin:64:128: digest mismatch: expected {before}, actual {after}"],
        model,
    )


def test_modelsign_verifies_model_signing_single_file_shard_bundle(
    reference: Reference, p256: tuple[Path, Path], tmp_path: Path
) -> None:
    model = tmp_path / "w.bin"
    model.write_bytes(content("w", 150))
    signature = reference_sign(reference, model, p256[0], 64)
    names = [r["name"] for r in statement_of(signature)["predicate"]["resources"]]
    assert names == [".:0:64", ".:64:128", ".:128:150"]
    assert modelsign.verify(model, [p256[1]]).files == (".",)
    _truncate("w.bin", 149)(tmp_path)
    refused(
        DigestMismatchError,
        lambda: modelsign.verify(model, [p256[1]]),
        [_size(".", 150, 149)],
        model,
    )


def test_model_signing_leaves_empty_files_unsigned_and_modelsign_reports_them(
    reference: Reference, p256: tuple[Path, Path], tmp_path: Path
) -> None:
    model = tmp_path / "model"
    write_model(model, {**INTEROP_LAYOUT, "empty": 0})
    signature = reference_sign(reference, model, p256[0], 64)
    names = [r["name"] for r in statement_of(signature)["predicate"]["resources"]]
    assert not any(n.startswith("empty") for n in names)
    refused(
        ExtraFileError,
        lambda: modelsign.verify(model, [p256[1]]),
        [_extra("empty")],
        model,
    )


def test_model_signing_1_1_1_refuses_modelsign_conformant_shard_bundle(
    reference: Reference, p256: tuple[Path, Path], tmp_path: Path
) -> None:
    """A known incompatibility, pinned so that a change in model_signing shows:
    model_signing <= 1.1.1 hashes shards under the algorithm name
    'sha256-sharded-N' and compares it with the bundle's 'sha256' (OMS v1.0)."""
    model = tmp_path / "model"
    write_model(model, INTEROP_LAYOUT)
    modelsign.sign(model, p256[0], shard_size=64)
    verifier = reference.verifying.Config().use_elliptic_key_verifier(public_key=p256[1])
    with pytest.raises(ValueError, match=r"Hash mismatch for 'config\.json:0:30'") as info:
        verifier.verify(model, model / "model.sig")
    assert "algorithm='sha256-sharded-64'" in str(info.value)
    modelsign.verify(model, [p256[1]])  # while modelsign verifies it


# --------------------------------------------------------------------------
# 6. The loader hook with shard bundles


def _torch() -> Any:
    return require("torch", "torch writes the real checkpoints")


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    torch = _torch()
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture
def shard_checkpoint(tmp_path: Path, keypair: tuple[Path, Path]) -> tuple[Path, dict[str, Any]]:
    """model/weights.pt (a torch checkpoint) and config.json, signed with
    256-byte shards."""
    torch = _torch()
    state = {"w": torch.arange(300, dtype=torch.float32), "b": torch.ones(3)}
    model = tmp_path / "model"
    model.mkdir()
    torch.save(state, model / "weights.pt")
    (model / "config.json").write_text("{}")
    (model / "empty").write_bytes(b"")
    modelsign.sign(model, keypair[0], shard_size=256)
    assert (model / "weights.pt").stat().st_size > 4 * 256
    return model / "weights.pt", state


@pytest.mark.parametrize("mmap", [False, True])
def test_hook_loads_a_shard_signed_checkpoint(
    keypair: tuple[Path, Path], shard_checkpoint: tuple[Path, dict[str, Any]], mmap: bool
) -> None:
    torch = _torch()
    path, state = shard_checkpoint
    with hooks.enforce(Policy.of([keypair[1]])):
        assert _same(torch.load(path, mmap=mmap), state)
        with open(path, "rb") as f:
            assert _same(torch.load(f, mmap=mmap), state)


@pytest.mark.parametrize("mmap", [False, True])
def test_hook_refuses_a_changed_byte_in_a_shard_signed_checkpoint(
    keypair: tuple[Path, Path], shard_checkpoint: tuple[Path, dict[str, Any]], mmap: bool
) -> None:
    torch = _torch()
    path, _ = shard_checkpoint
    original = path.read_bytes()
    flip_byte(path, 600)
    with hooks.enforce(Policy.of([keypair[1]])), pytest.raises(Error) as info:
        torch.load(path, mmap=mmap)
    err = info.value
    assert type(err) is FileDigestMismatchError
    # The message names the differing shard and its two digests, not two
    # fingerprints of every shard.
    assert err.expected == digest("sha256", original[512:768])
    assert err.actual == digest("sha256", path.read_bytes()[512:768])
    message = str(err)
    assert message.startswith(
        f"refused to load {path}: digest mismatch against {path.parent / 'model.sig'}"
    )
    assert "(entry 'weights.pt' at shard 512:768)" in message
    assert f"expected sha256:{err.expected}, actual sha256:{err.actual}" in message


def test_hook_checks_bytesio_against_an_explicit_shard_bundle(
    keypair: tuple[Path, Path], shard_checkpoint: tuple[Path, dict[str, Any]]
) -> None:
    torch = _torch()
    path, state = shard_checkpoint
    data = path.read_bytes()
    listed = Policy(
        (modelsign.load_public_key(keypair[1]),),
        source="explicit",
        bundles=(path.parent / "model.sig",),
    )
    with hooks.enforce(listed):
        assert _same(torch.load(io.BytesIO(data)), state)
        with pytest.raises(Error) as info:
            torch.load(io.BytesIO(data + b"\0"))
    assert type(info.value) is UnsignedFileError
    assert "BytesIO" in str(info.value)


def test_hook_vouches_for_an_empty_file_listed_in_empty_files(
    keypair: tuple[Path, Path], shard_checkpoint: tuple[Path, dict[str, Any]]
) -> None:
    path, _ = shard_checkpoint
    empty = path.parent / "empty"
    guard = modelsign._guard.Guard(Policy.of([keypair[1]]))
    with guard.open_path(empty) as source:
        assert source.data == b""
    empty.write_bytes(b"abc")
    with pytest.raises(Error) as info:
        guard.open_path(empty)
    # Signed empty, now 3 bytes: a size mismatch, found without reading it.
    assert type(info.value) is FileDigestMismatchError
    assert info.value.expected == "0 bytes"
    assert info.value.actual == "3 bytes"
    assert "size mismatch" in str(info.value)
    assert str(empty) in str(info.value)


def test_hook_large_shard_signed_checkpoint_goes_through_a_sealed_memfd(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    """33 MiB: over MEMFD_THRESHOLD, so the hook copies the file into a sealed
    memfd and hashes the shards from there."""
    torch = _torch()
    mib = 1024 * 1024
    state = {"w": torch.arange(33 * mib // 4, dtype=torch.float32)}
    model = tmp_path / "model"
    model.mkdir()
    path = model / "big.pt"
    torch.save(state, path)
    assert path.stat().st_size >= modelsign._guard.MEMFD_THRESHOLD
    modelsign.sign(model, keypair[0], shard_size=mib)
    policy = Policy.of([keypair[1]])

    guard = modelsign._guard.Guard(policy)
    with guard.open_path(path) as source:
        assert source.fd is not None
        assert source.data is None
        assert _same(torch.load(source.path, weights_only=True), state)
    with hooks.enforce(policy):
        assert _same(torch.load(path, mmap=True), state)
        assert _same(torch.load(path), state)

    flip_byte(path, 20 * mib + 123)
    with hooks.enforce(policy), pytest.raises(Error) as info:
        torch.load(path, mmap=True)
    err = info.value
    assert type(err) is FileDigestMismatchError
    assert str(path) in str(err)
    assert f"at shard {20 * mib}:{21 * mib})" in str(err)
    assert err.expected is not None
    assert err.actual is not None
    assert err.expected != err.actual


@pytest.mark.parametrize(
    "size",
    [
        pytest.param(
            256,
            id="several shards",
        ),
        pytest.param(1 << 20, id="one shard"),
    ],
)
def test_hook_single_file_shard_bundle_beside_the_file(
    tmp_path: Path, keypair: tuple[Path, Path], size: int
) -> None:
    torch = _torch()
    state = {"w": torch.arange(300, dtype=torch.float32)}
    path = tmp_path / "ckpt.pt"
    torch.save(state, path)
    modelsign.sign(path, keypair[0], shard_size=size)
    assert modelsign.verify(path, [keypair[1]]).files == (".",)
    with hooks.enforce(Policy.of([keypair[1]])):
        assert _same(torch.load(path), state)
        flip_byte(path, 600)
        with pytest.raises(Error) as info:
            torch.load(path)
    assert type(info.value) is FileDigestMismatchError
    assert "ckpt.pt.sig" in str(info.value)


def test_hook_tiny_shard_size_against_a_larger_file_is_refused_by_size(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    model = tmp_path / "m"
    model.mkdir()
    target = model / "t.bin"
    target.write_bytes(b"abc")
    modelsign.sign(model, keypair[0], shard_size=1)
    target.write_bytes(bytes(256 * 1024))
    guard = modelsign._guard.Guard(Policy.of([keypair[1]]))
    with pytest.raises(Error) as info:
        guard.open_path(target)
    assert type(info.value) is FileDigestMismatchError
    message = str(info.value)
    assert str(target) in message
    assert "3 bytes" in message
    assert str(256 * 1024) in message
    assert len(message) < 4096, f"a message of {len(message)} characters"


# --------------------------------------------------------------------------
# Limits of the signed JSON


def test_a_shard_size_the_verifier_cannot_read_is_refused_when_signing(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    model = tmp_path / "m"
    write_model(model, {"a": 3})
    with pytest.raises(Error) as info:
        modelsign.sign(model, keypair[0], shard_size=10**40)
    assert type(info.value) is UsageError
    assert str(10**40) in str(info.value)
    assert leftovers(model) == []


def test_a_large_shard_size_signs_and_verifies(tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    model = tmp_path / "m"
    files = write_model(model, {"a": 3, "b": 0})
    largest = modelsign.signing.MAX_SHARD_SIZE
    modelsign.sign(model, keypair[0], shard_size=largest)
    result = modelsign.verify(model, [keypair[1]])
    assert result.manifest.serialization.shard_size == largest
    assert [(r.name, r.digest) for r in result.manifest.resources] == expected_shards(
        files, largest
    )


# --------------------------------------------------------------------------
# Regressions from the review of the shard code


def test_a_file_replaced_between_its_shards_is_refused(
    tmp_path: Path, keypair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each shard opens the file; a file unlinked and re-created between two
    shards (the new one may reuse the inode number) must not verify as a mix
    of both. The swap happens when the second shard task asks for the file's
    display name, i.e. after the first shard was hashed and closed."""
    model = tmp_path / "m"
    model.mkdir()
    w = model / "w.bin"
    first, second = content("a", SHARD), content("b", SHARD)
    w.write_bytes(first + second)
    modelsign.sign(model, keypair[0], shard_size=SHARD)
    import modelsign.verifying as verifying_module

    calls = {"n": 0}
    original = verifying_module.display_name

    def swap_after_first_shard(tree: Any, f: Any) -> str:
        calls["n"] += 1
        if calls["n"] == 2:
            w.unlink()
            w.write_bytes(bytes(SHARD) + second)  # same size, other first shard
        return original(tree, f)

    monkeypatch.setattr(verifying_module, "display_name", swap_after_first_shard)
    with pytest.raises(UnsafeModelError) as info:
        modelsign.verify(model, [keypair[1]], workers=1)
    assert calls["n"] >= 2
    assert str(w) in str(info.value)
    assert "while being hashed" in str(info.value)


def test_short_reads_of_a_small_file_are_read_to_the_end(
    tmp_path: Path, keypair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read may return less than asked (FUSE, network file systems): the
    small-file path must read to the end, or an unread tail would be unsigned."""
    import os as real_os

    import modelsign._hashing as hashing_module

    class ShortReads(io.FileIO):
        def read(self, n: int | None = -1) -> bytes:
            return super().read(min(n, 4096) if n is not None and n > 0 else 4096)

    class OsWithShortReads:
        def __getattr__(self, name: str) -> Any:
            return getattr(real_os, name)

        @staticmethod
        def fdopen(fd: int, mode: str = "rb", buffering: int = -1) -> io.FileIO:
            assert (mode, buffering) == ("rb", 0)
            return ShortReads(fd, "rb", closefd=True)

    model = tmp_path / "weights.bin"
    model.write_bytes(content("w", 100_000))
    monkeypatch.setattr(hashing_module, "os", OsWithShortReads())
    modelsign.sign(model, keypair[0])
    flip_byte(model, 90_000)  # in the tail, far past the first short read
    with pytest.raises(DigestMismatchError) as info:
        modelsign.verify(model, [keypair[1]])
    assert "digest mismatch" in str(info.value)


def test_member_annotations_on_a_shard_are_ignored(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    """Archive members describe whole files; a (validly signed) shard that
    carries some must not break the mismatch report (it raised KeyError)."""
    model = tmp_path / "m"
    model.mkdir()
    (model / "w.bin").write_bytes(b"A" * 40)
    signed_ = modelsign.sign(model, keypair[0], shard_size=16)

    def add_members(st: Statement) -> None:
        r = st["predicate"]["resources"][0]
        r.setdefault("annotations", {})["archive"] = "zip"
        r["annotations"]["members"] = [
            {"name": "x", "size": 1, "digest": "0" * 64, "compression": "stored"}
        ]

    resign(signed_.signature, keypair[0], add_members)
    modelsign.verify(model, [keypair[1]])
    (model / "w.bin").write_bytes(b"B" + b"A" * 39)
    with pytest.raises(DigestMismatchError) as info:
        modelsign.verify(model, [keypair[1]])
    assert [(m.name, m.shard) for m in info.value.mismatches] == [("w.bin", (0, 16))]
    result = cli("verify", model, "--key", keypair[1], "-q")
    assert result.returncode == 1, result.stderr


def test_a_rewritten_file_lists_ten_shards_and_counts_the_rest(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    model = tmp_path / "m"
    model.mkdir()
    w = model / "w.bin"
    w.write_bytes(content("w", 30 * 16))
    modelsign.sign(model, keypair[0], shard_size=16)
    w.write_bytes(content("other", 30 * 16))
    with pytest.raises(DigestMismatchError) as info:
        modelsign.verify(model, [keypair[1]])
    listed = [(m.kind, m.name, m.shard) for m in info.value.mismatches]
    assert listed == [
        *(("digest", "w.bin", (16 * i, 16 * i + 16)) for i in range(10)),
        ("shards", "w.bin", None),
    ]
    summary = info.value.mismatches[-1]
    assert (summary.shards, summary.differing) == (30, 30)
    assert (
        "w.bin: shards mismatch: expected 30 shards as signed, actual 30 of them differ "
        "(the first listed above)" in str(info.value)
    )


def test_in_memory_bytes_are_not_hashed_in_the_shards_of_a_bundle_of_other_sizes(
    tmp_path: Path, keypair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An explicit bundle with shard_size 1 over a 1-byte file must not make
    every in-memory load hash its bytes one shard per byte."""
    model = tmp_path / "m"
    model.mkdir()
    (model / "one.bin").write_bytes(b"x")
    modelsign.sign(model, keypair[0], shard_size=1)
    listed = Policy(
        (modelsign.load_public_key(keypair[1]),),
        source="explicit",
        bundles=(model / "model.sig",),
    )
    schemes: list[HashScheme] = []
    original = HashScheme.hasher

    def recording(self: HashScheme) -> Any:
        schemes.append(self)
        return original(self)

    monkeypatch.setattr(HashScheme, "hasher", recording)
    guard = modelsign._guard.Guard(listed)
    with pytest.raises(UnsignedFileError):
        guard.open_memory(bytes(64 * 1024))
    assert HashScheme("sha256", 1) not in schemes
    with guard.open_memory(b"x") as source:  # the signed bytes still pass
        assert source.data == b"x"
    assert HashScheme("sha256", 1) in schemes


@pytest.mark.parametrize("bad", [1024.0, 1.5, "1M", None.__class__])
def test_sign_refuses_a_shard_size_that_is_not_an_int(
    tmp_path: Path, keypair: tuple[Path, Path], bad: Any
) -> None:
    model = tmp_path / "m"
    write_model(model, {"a": 3})
    with pytest.raises(UsageError, match="the shard size must be a number of bytes"):
        modelsign.sign(model, keypair[0], shard_size=bad)
    assert leftovers(model) == []


def test_cli_refuses_a_shard_size_of_many_digits(
    tmp_path: Path, ed_keypair: tuple[Path, Path]
) -> None:
    model = tmp_path / "m"
    write_model(model, {"a": 3})
    result = cli("sign", model, "--key", ed_keypair[0], "--shard-size", "9" * 5000, "-q")
    assert result.returncode == 2, result.stderr
    assert "--shard-size" in result.stderr
    assert "Traceback" not in result.stderr
