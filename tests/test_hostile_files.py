"""Hostile inputs: tampered models and forged bundles, each refused with its exact error.

Naming scheme. The cases are module-level dicts, one per attack surface, in the
style of python-tuf's named bad-input data sets:

* ``CONTENT_ATTACKS``: the bytes of a signed file change;
* ``FILE_SET_ATTACKS``: files appear, disappear or are renamed;
* ``SPECIAL_FILE_ATTACKS``: a FIFO or a device takes a signed file's place;
* ``SYMLINK_ATTACKS``: symbolic links, even to identical bytes;
* ``FORGED_PATHS``: bundles whose resource names are unsafe, re-signed with the
  trusted key so that the signature is valid and only the path rules refuse them.

Each key names the attack in kebab case, what was done and where
(``one-flipped-byte-in-model.pt``), and is the pytest id, so a failure reads
``test_tampered_model_is_refused[ed25519-one-flipped-byte-in-model.pt]``. Each
value says how to tamper with a benign model, freshly built and signed by the
test (no binary blobs are checked in), and what must happen: the exact error
class (``type(e) is X``, never a base class), the files its message names, for
a model mismatch the exact ``(kind, name)`` list, and that nothing was executed
or written (the whole temporary tree, ``model.sig`` included, is unchanged by
verification, and a planted pickle never ran). Cases marked ``cli`` are also run
through ``python -m modelsign verify MODEL --key PUB --json``, first and under a
timeout: exit code 1, the same error type, the file named, no traceback. The one
multi-GiB case (a sparse file, under an address-space limit) has its own test.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import shutil
import stat
import struct
import subprocess
import sys
import unicodedata
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

import modelsign
import modelsign.signing
from modelsign import keys
from modelsign.bundle import PAYLOAD_TYPE, Bundle, Envelope, pae
from modelsign.errors import (
    DigestMismatchError,
    ExtraFileError,
    MalformedBundleError,
    MissingFileError,
    ModelMismatchError,
    UnsafeArchiveError,
    UnsafeModelError,
    VerificationError,
)
from modelsign.manifest import Manifest
from tests.conftest import flip_byte

MakeModel = Callable[..., Path]
KeyPair = tuple[Path, Path]

CLI_TIMEOUT = 20

#: Signed under its NFC name; the NFD spelling is another name on Linux.
CAFE_NFC = "caf\u00e9.txt"
CAFE_NFD = unicodedata.normalize("NFD", CAFE_NFC)
assert CAFE_NFC != CAFE_NFD

MARKER = "PWNED"  # created in the scratch folder if a planted pickle ever runs


# --------------------------------------------------------------------------
# The benign model and the small, generated formats inside it.


def write_gguf(path: Path, name: str) -> None:
    """A tiny GGUF-like file: magic, version 3, no tensors, one string metadata item."""

    def gguf_string(text: str) -> bytes:
        raw = text.encode()
        return struct.pack("<Q", len(raw)) + raw

    string_type = 8
    path.write_bytes(
        b"GGUF"
        + struct.pack("<IQQ", 3, 0, 1)
        + gguf_string("general.name")
        + struct.pack("<I", string_type)
        + gguf_string(name)
    )


def write_keras(path: Path, config: Mapping[str, object]) -> None:
    """A .keras archive as Keras 3 lays it out (deflated members)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("metadata.json", json.dumps({"keras_version": "3.0.0"}))
        z.writestr("config.json", json.dumps(config))
        z.writestr("model.weights.h5", b"\x89HDF\r\n\x1a\n" + bytes(64))


def write_safetensors(path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2, 2)}, str(path), metadata={"format": "pt"})


def build_benign(make_model: MakeModel) -> Path:
    """conftest's model (model.pt, config.json, tokenizer/vocab.txt) plus a
    safetensors, a GGUF, a Keras archive and a file with a non-ASCII NFC name."""
    model = make_model()
    write_safetensors(model / "weights.safetensors")
    write_gguf(model / "tiny.gguf", "benign")
    write_keras(model / "model.keras", {"class_name": "Sequential", "units": 4})
    (model / CAFE_NFC).write_text("café\n")
    return model


# --------------------------------------------------------------------------
# Tampering helpers: each takes the model and a scratch folder outside it.


class TouchOnLoad:
    """A pickle that creates ``MARKER`` when it is loaded: code execution."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[[Path], None], tuple[Path]]:
        return (Path.touch, (self.marker,))


def rewrite_zip(path: Path, replace: Callable[[str, bytes], bytes]) -> None:
    """Rebuild a zip with the same members in the same order, contents via ``replace``."""
    source = zipfile.ZipFile(io.BytesIO(path.read_bytes()))
    with zipfile.ZipFile(path, "w") as out:
        for info in source.infolist():
            data = replace(info.filename, source.read(info))
            out.writestr(info, data, compress_type=info.compress_type)


def plant_pickle(model: Path, scratch: Path) -> None:
    payload = pickle.dumps(TouchOnLoad(scratch / MARKER))

    def swap(name: str, data: bytes) -> bytes:
        return payload if name.endswith("/data.pkl") else data

    rewrite_zip(model / "model.pt", swap)


def edit_keras_config(model: Path, scratch: Path) -> None:
    def swap(name: str, data: bytes) -> bytes:
        return data.replace(b'"units": 4', b'"units": 5') if name == "config.json" else data

    rewrite_zip(model / "model.keras", swap)


def edit_safetensors_header(model: Path, scratch: Path) -> None:
    path = model / "weights.safetensors"
    data = path.read_bytes()
    (length,) = struct.unpack_from("<Q", data)
    header = data[8 : 8 + length]
    assert header.count(b'"F32"') == 1
    path.write_bytes(data[:8] + header.replace(b'"F32"', b'"I32"') + data[8 + length :])


def edit_gguf_name(model: Path, scratch: Path) -> None:
    path = model / "tiny.gguf"
    data = path.read_bytes()
    assert data.count(b"benign") == 1
    path.write_bytes(data.replace(b"benign", b"hostil"))


def truncate(name: str, keep: float) -> Callable[[Path, Path], None]:
    def attack(model: Path, scratch: Path) -> None:
        path = model / name
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * keep)])

    return attack


def append(name: str, extra: bytes) -> Callable[[Path, Path], None]:
    def attack(model: Path, scratch: Path) -> None:
        with open(model / name, "ab") as f:
            f.write(extra)

    return attack


def swap_contents(a: str, b: str) -> Callable[[Path, Path], None]:
    def attack(model: Path, scratch: Path) -> None:
        da, db = (model / a).read_bytes(), (model / b).read_bytes()
        (model / a).write_bytes(db)
        (model / b).write_bytes(da)

    return attack


def add_file(name: str, data: bytes = b"not signed\n") -> Callable[[Path, Path], None]:
    def attack(model: Path, scratch: Path) -> None:
        (model / name).parent.mkdir(parents=True, exist_ok=True)
        (model / name).write_bytes(data)

    return attack


def remove(name: str) -> Callable[[Path, Path], None]:
    return lambda model, scratch: (model / name).unlink()


def rename(old: str, new: str) -> Callable[[Path, Path], None]:
    return lambda model, scratch: os.rename(model / old, model / new)


def remove_everything(model: Path, scratch: Path) -> None:
    for entry in model.iterdir():
        if entry.name == "model.sig":
            continue
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def fifo_instead_of(name: str) -> Callable[[Path, Path], None]:
    def attack(model: Path, scratch: Path) -> None:
        (model / name).unlink()
        os.mkfifo(model / name)

    return attack


def zero_device_instead_of(name: str) -> Callable[[Path, Path], None]:
    def attack(model: Path, scratch: Path) -> None:
        (model / name).unlink()
        try:  # the same device as /dev/zero: endless bytes if it were ever read
            os.mknod(model / name, stat.S_IFCHR | 0o600, os.makedev(1, 5))
        except PermissionError:
            pytest.skip("creating a character device needs CAP_MKNOD")

    return attack


def link_instead_of(name: str, target: Callable[[Path, Path], str]) -> Callable[[Path, Path], None]:
    def attack(model: Path, scratch: Path) -> None:
        where = target(model, scratch)
        (model / name).unlink()
        os.symlink(where, model / name)

    return attack


def identical_copy_outside(model: Path, scratch: Path) -> str:
    copy = scratch / "config.json"
    shutil.copyfile(model / "config.json", copy)
    assert copy.read_bytes() == (model / "config.json").read_bytes()
    return str(copy)


def tokenizer_dir_linked_to_copy(model: Path, scratch: Path) -> None:
    copy = scratch / "tokenizer"
    shutil.copytree(model / "tokenizer", copy)
    shutil.rmtree(model / "tokenizer")
    os.symlink(copy, model / "tokenizer", target_is_directory=True)


def link_cycle(model: Path, scratch: Path) -> None:
    os.symlink("loop_b", model / "loop_a")
    os.symlink("loop_a", model / "loop_b")


# --------------------------------------------------------------------------
# The cases.


@dataclass(frozen=True)
class Attack:
    """One tampering of a signed benign model and the refusal it must meet."""

    tamper: Callable[[Path, Path], None]
    error: type[VerificationError]
    #: Files (relative to the model) the message must name.
    names: tuple[str, ...]
    #: For a ModelMismatchError: exactly these (kind, name) pairs, in order.
    mismatches: tuple[tuple[str, str], ...] = ()
    #: For a digest mismatch in an archive: exactly these members are named.
    members: tuple[str, ...] = ()
    #: Also run the command line (first, so a hang is caught by its timeout).
    cli: bool = False
    #: Sign as if DEFAULT_IGNORES were empty: .git and .github are not recorded.
    unrecorded_git: bool = False


CONTENT_ATTACKS: dict[str, Attack] = {
    "one-flipped-byte-in-model.pt": Attack(
        lambda model, scratch: flip_byte(model / "model.pt"),
        DigestMismatchError,
        ("model.pt",),
        (("digest", "model.pt"),),
        cli=True,
    ),
    "truncated-config.json": Attack(
        truncate("config.json", 0.5),
        DigestMismatchError,
        ("config.json",),
        (("digest", "config.json"),),
    ),
    "truncated-model.pt-loses-its-zip-end-record": Attack(
        truncate("model.pt", 0.5), UnsafeArchiveError, ("model.pt",)
    ),
    "bytes-appended-after-the-zip-end-record-of-model.pt": Attack(
        append("model.pt", b"PK\x05\x06 hidden second payload"),
        UnsafeArchiveError,
        ("model.pt",),
        cli=True,
    ),
    "model.pt-member-data.pkl-swapped-for-code-running-pickle": Attack(
        plant_pickle,
        DigestMismatchError,
        ("model.pt",),
        (("digest", "model.pt"),),
        members=("model/data.pkl",),
        cli=True,
    ),
    "contents-of-config.json-and-vocab.txt-swapped": Attack(
        swap_contents("config.json", "tokenizer/vocab.txt"),
        DigestMismatchError,
        ("config.json", "tokenizer/vocab.txt"),
        (("digest", "config.json"), ("digest", "tokenizer/vocab.txt")),
    ),
    "safetensors-header-dtype-edited": Attack(
        edit_safetensors_header,
        DigestMismatchError,
        ("weights.safetensors",),
        (("digest", "weights.safetensors"),),
    ),
    "gguf-metadata-string-edited": Attack(
        edit_gguf_name,
        DigestMismatchError,
        ("tiny.gguf",),
        (("digest", "tiny.gguf"),),
    ),
    "keras-config.json-member-edited": Attack(
        edit_keras_config,
        DigestMismatchError,
        ("model.keras",),
        (("digest", "model.keras"),),
        members=("config.json",),
    ),
}

FILE_SET_ATTACKS: dict[str, Attack] = {
    "extra-file": Attack(
        add_file("extra.bin"), ExtraFileError, ("extra.bin",), (("extra", "extra.bin"),), cli=True
    ),
    "extra-dotfile": Attack(
        add_file(".hidden"), ExtraFileError, (".hidden",), (("extra", ".hidden"),)
    ),
    "extra-.git-config-not-ignored-by-the-signer": Attack(
        add_file(".git/config", b"[core]\n\tfsmonitor = ./pwn.sh\n"),
        ExtraFileError,
        (".git/config",),
        (("extra", ".git/config"),),
        unrecorded_git=True,
    ),
    "extra-.github-workflow-not-ignored-by-the-signer": Attack(
        add_file(".github/workflows/release.yml", b"on: push\n"),
        ExtraFileError,
        (".github/workflows/release.yml",),
        (("extra", ".github/workflows/release.yml"),),
        unrecorded_git=True,
    ),
    "removed-tokenizer-vocab.txt": Attack(
        remove("tokenizer/vocab.txt"),
        MissingFileError,
        ("tokenizer/vocab.txt",),
        (("missing", "tokenizer/vocab.txt"),),
        cli=True,
    ),
    "renamed-config.json": Attack(
        rename("config.json", "config.json.bak"),
        ModelMismatchError,
        ("config.json", "config.json.bak"),
        (("missing", "config.json"), ("extra", "config.json.bak")),
    ),
    "name-on-disk-nfd-where-the-bundle-has-nfc": Attack(
        rename(CAFE_NFC, CAFE_NFD),
        ModelMismatchError,
        (CAFE_NFC, CAFE_NFD),
        # Sorted by code point: the NFD name ("cafe" + U+0301) sorts first.
        (("extra", CAFE_NFD), ("missing", CAFE_NFC)),
        cli=True,
    ),
    "every-file-removed": Attack(remove_everything, UnsafeModelError, ()),
}

SPECIAL_FILE_ATTACKS: dict[str, Attack] = {
    "fifo-instead-of-config.json": Attack(
        fifo_instead_of("config.json"), UnsafeModelError, ("config.json",), cli=True
    ),
    "zero-character-device-instead-of-config.json": Attack(
        zero_device_instead_of("config.json"), UnsafeModelError, ("config.json",), cli=True
    ),
    "symlink-to-dev-zero-instead-of-config.json": Attack(
        link_instead_of("config.json", lambda model, scratch: "/dev/zero"),
        UnsafeModelError,
        ("config.json",),
        cli=True,
    ),
}

SYMLINK_ATTACKS: dict[str, Attack] = {
    "config.json-linked-to-an-identical-copy-outside": Attack(
        link_instead_of("config.json", identical_copy_outside),
        UnsafeModelError,
        ("config.json",),
        cli=True,
    ),
    "config.json-linked-to-another-file-inside": Attack(
        link_instead_of("config.json", lambda model, scratch: "tokenizer/vocab.txt"),
        UnsafeModelError,
        ("config.json",),
    ),
    "tokenizer-dir-linked-to-an-identical-copy-outside": Attack(
        tokenizer_dir_linked_to_copy, UnsafeModelError, ("tokenizer",)
    ),
    # "loop_" names loop_a or loop_b, whichever the walk meets first.
    "link-cycle-loop_a-loop_b": Attack(link_cycle, UnsafeModelError, ("loop_",), cli=True),
}

ALL_ATTACKS: dict[str, Attack] = {
    **CONTENT_ATTACKS,
    **FILE_SET_ATTACKS,
    **SPECIAL_FILE_ATTACKS,
    **SYMLINK_ATTACKS,
}


@dataclass(frozen=True)
class ForgedPaths:
    """Rename resources in a validly re-signed bundle; the message must quote these."""

    rename: Mapping[str, str]
    quoted: tuple[str, ...]
    cli: bool = False


def unsafe(name: str, cli: bool = False) -> ForgedPaths:
    return ForgedPaths({"config.json": name}, (repr(name),), cli)


FORGED_PATHS: dict[str, ForgedPaths] = {
    "parent-traversal-../x": unsafe("../x", cli=True),
    "absolute-/abs": unsafe("/abs"),
    "backslash-a\\b": unsafe("a\\b"),
    "nul-byte-a\\x00b": unsafe("a\x00b"),
    "drive-prefix-C:/x": unsafe("C:/x"),
    "windows-device-CON": unsafe("CON"),
    "windows-device-nul.txt": unsafe("nul.txt"),
    "dot-component-./a": unsafe("./a"),
    "empty-component-a//b": unsafe("a//b"),
    "trailing-slash-a/": unsafe("a/"),
    "lone-surrogate-\\ud800": unsafe("\ud800", cli=True),
    "duplicate-resource": ForgedPaths({"config.json": "model.pt"}, ("'model.pt'",)),
    "case-fold-collision-A.bin-a.bin": ForgedPaths(
        {"config.json": "A.bin", "model.pt": "a.bin"}, ("'A.bin'", "'a.bin'")
    ),
    "nfc-nfd-collision-e-acute": ForgedPaths(
        {"config.json": "\u00e9", "model.pt": "e\u0301"}, ("'\u00e9'", "'e\u0301'")
    ),
}


# --------------------------------------------------------------------------
# Helpers shared by the tests.


def snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every entry below ``root`` (links not followed): type, size, mtime."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            out[os.path.relpath(path, root)] = (stat.S_IFMT(st.st_mode), st.st_size, st.st_mtime_ns)
    return out


def cli_verify(model: Path, public: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelsign", "verify", str(model), "--key", str(public), "--json"],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )


def assert_cli_rejects(
    model: Path, public: Path, error: type[VerificationError], needles: tuple[str, ...]
) -> None:
    result = cli_verify(model, public)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("modelsign: rejected: "), result.stderr
    for needle in needles:
        assert needle in result.stderr, (needle, result.stderr)
    assert json.loads(result.stdout)["error"]["type"] == error.__name__


def names_in_message(message: str, model: Path, names: tuple[str, ...]) -> None:
    assert str(model) in message, message
    for name in names:
        # A name that is not NFC is also shown escaped, so look-alikes differ.
        shown = name if unicodedata.is_normalized("NFC", name) else f"{name} {name!a}"
        assert str(model / name) in message or f"\n  {shown}: " in message, (name, message)


def sign(model: Path, private: Path, monkeypatch: pytest.MonkeyPatch, git: bool = True) -> Path:
    with monkeypatch.context() as patch:
        if not git:
            patch.setattr(modelsign.signing, "DEFAULT_IGNORES", ())
        signature = modelsign.sign(model, private).signature
    recorded = Bundle.from_bytes(signature.read_bytes()).envelope.payload
    ignored = Manifest.from_payload(recorded).serialization.ignore_paths
    assert (".git" in ignored) is git
    assert (".github" in ignored) is git
    return signature


def forge(signature: Path, private: Path, rename: Mapping[str, str]) -> None:
    """Re-sign ``signature`` with ``private`` after renaming resources: a valid
    signature over a statement whose only defect is its resource names."""
    bundle = Bundle.from_bytes(signature.read_bytes())
    statement = json.loads(bundle.envelope.payload)
    resources = statement["predicate"]["resources"]
    for resource in resources:
        resource["name"] = rename.get(resource["name"], resource["name"])
    root = hashlib.sha256(b"".join(bytes.fromhex(r["digest"]) for r in resources))
    statement["subject"][0]["digest"]["sha256"] = root.hexdigest()
    # ensure_ascii: a lone surrogate survives as the escape \ud800.
    payload = json.dumps(statement, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    body = payload.encode("ascii")
    key = keys.load_private_key(private)
    envelope = Envelope(body, PAYLOAD_TYPE, key.sign(pae(PAYLOAD_TYPE, body)), keyid="")
    signature.write_bytes(Bundle(bundle.material, envelope).to_bytes())


# --------------------------------------------------------------------------
# The tests.


@pytest.mark.parametrize("case", list(ALL_ATTACKS.values()), ids=list(ALL_ATTACKS))
def test_tampered_model_is_refused(
    case: Attack,
    make_model: MakeModel,
    keypair: KeyPair,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = build_benign(make_model)
    signature = sign(model, keypair[0], monkeypatch, git=not case.unrecorded_git)
    signed = Manifest.from_payload(Bundle.from_bytes(signature.read_bytes()).envelope.payload)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    case.tamper(model, scratch)

    signed_bytes = signature.read_bytes()
    before = snapshot(tmp_path)
    if case.cli:  # first: a model that blocks or never ends fails by the timeout
        needles = tuple(str(model / n) if case.error is UnsafeModelError else n for n in case.names)
        assert_cli_rejects(model, keypair[1], case.error, needles)
    with pytest.raises(VerificationError) as caught:
        modelsign.verify(model, [keypair[1]])
    error = caught.value
    assert type(error) is case.error, error

    names_in_message(str(error), model, case.names)
    if isinstance(error, ModelMismatchError):
        assert [(m.kind, m.name) for m in error.mismatches] == list(case.mismatches)
        for m in error.mismatches:
            if m.kind in ("digest", "missing"):
                assert m.expected == signed.digests()[m.name]
            if m.kind == "digest":
                assert m.actual == hashlib.sha256((model / m.name).read_bytes()).hexdigest()
        if case.members:
            (changed,) = error.mismatches
            assert [line.split("'")[1] for line in changed.members] == list(case.members)
    assert signature.read_bytes() == signed_bytes
    assert snapshot(tmp_path) == before
    assert not (scratch / MARKER).exists()


def test_planted_pickle_would_run_if_loaded(tmp_path: Path) -> None:
    """The control for "nothing was executed": the planted pickle does run when loaded."""
    pickle.loads(pickle.dumps(TouchOnLoad(tmp_path / MARKER)))
    assert (tmp_path / MARKER).exists()


@pytest.mark.parametrize("case", list(FORGED_PATHS.values()), ids=list(FORGED_PATHS))
def test_forged_bundle_path_is_refused(
    case: ForgedPaths,
    make_model: MakeModel,
    keypair: KeyPair,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = build_benign(make_model)
    signature = sign(model, keypair[0], monkeypatch)
    forge(signature, keypair[0], case.rename)
    forged = signature.read_bytes()
    before = snapshot(tmp_path)
    if case.cli:
        assert_cli_rejects(model, keypair[1], MalformedBundleError, (str(signature),))
    with pytest.raises(MalformedBundleError) as caught:
        modelsign.verify(model, [keypair[1]])
    assert type(caught.value) is MalformedBundleError
    message = str(caught.value)
    assert message.startswith(f"{signature}: "), message
    for quoted in case.quoted:
        assert quoted in message, (quoted, message)
    assert signature.read_bytes() == forged
    assert snapshot(tmp_path) == before


def test_forger_control_valid_names_verify(
    make_model: MakeModel, keypair: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The forger makes valid signatures: a safe rename, mirrored on disk, verifies.
    So the refusals above come from the path rules, not from the signature."""
    model = build_benign(make_model)
    signature = sign(model, keypair[0], monkeypatch)
    forge(signature, keypair[0], {"config.json": "renamed/config.json"})
    (model / "renamed").mkdir()
    os.rename(model / "config.json", model / "renamed" / "config.json")
    result = modelsign.verify(model, [keypair[1]])
    assert "renamed/config.json" in result.files


def test_default_ignores_are_recorded_and_excuse_git(
    make_model: MakeModel, keypair: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control for the unrecorded .git cases: a signer that recorded .git excuses it."""
    model = build_benign(make_model)
    sign(model, keypair[0], monkeypatch, git=True)
    add_file(".git/config")(model, model)
    add_file(".github/workflows/release.yml")(model, model)
    modelsign.verify(model, [keypair[1]])


def test_signing_an_empty_directory_is_refused(tmp_path: Path, keypair: KeyPair) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UnsafeModelError) as caught:
        modelsign.sign(empty, keypair[0])
    assert type(caught.value) is UnsafeModelError
    assert str(empty) in str(caught.value)
    assert list(empty.iterdir()) == []
    result = subprocess.run(
        [sys.executable, "-m", "modelsign", "sign", str(empty), "--key", str(keypair[0])],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert str(empty) in result.stderr
    assert list(empty.iterdir()) == []


_SPARSE_SCRIPT = """
import resource, runpy, sys
resource.setrlimit(resource.RLIMIT_AS, (2 * 1024**3, 2 * 1024**3))
sys.argv = ["modelsign", "verify", sys.argv[1], "--key", sys.argv[2], "--json"]
runpy.run_module("modelsign", run_name="__main__")
"""


def test_sparse_4gib_file_instead_of_config_json(
    make_model: MakeModel, other_keypair: KeyPair, tmp_path: Path
) -> None:
    """4 GiB of zeros (sparse: no disk used) replaces a signed file. Verification
    streams it under a 2 GiB address-space limit and reports a digest mismatch."""
    model = make_model()
    modelsign.sign(model, other_keypair[0])
    signed_bytes = (model / "model.sig").read_bytes()
    (model / "config.json").unlink()
    with open(model / "config.json", "wb") as f:
        f.truncate(4 * 1024**3)
    before = snapshot(tmp_path)
    result = subprocess.run(
        [sys.executable, "-c", _SPARSE_SCRIPT, str(model), str(other_keypair[1])],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "config.json: digest mismatch" in result.stderr
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "DigestMismatchError"
    assert [(m["kind"], m["name"]) for m in error["mismatches"]] == [("digest", "config.json")]
    assert (model / "model.sig").read_bytes() == signed_bytes
    assert snapshot(tmp_path) == before
