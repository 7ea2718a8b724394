"""Hostile inputs, end to end: through ``modelsign.sign``, ``modelsign.verify``,
the command line and the loader hook.

A named suite in the python-tuf style: every hostile input is a builder in a
module-level dict, generated at run time from benign files (a real torch
checkpoint, real numpy and joblib files); no binary blob is checked in. Each
case asserts the exact error class and that nothing ran (a pickle payload that
would create a marker directory) and nothing was written.

``tests/test_archive.py`` unit-tests ``archive.inspect`` on malformed archives;
this file checks what the user sees: the refusal at signing, at verification
of a bundle made by a tool that does no archive checks, and at load time; the
hook's TOCTOU guarantee for every loader family; atomic writes under SIGKILL;
and bounded memory for hostile sizes.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import os
import pickle
import random
import re
import signal
import stat
import subprocess
import sys
import tarfile
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import torch

import modelsign
import modelsign._archive
import modelsign._guard
import modelsign._hashing
from modelsign import keys
from modelsign._digests import Fingerprint
from modelsign._enumerating import DEFAULT_IGNORES, enumerate_model
from modelsign._hashing import FileDigest
from modelsign.bundle import PAYLOAD_TYPE, Bundle, Envelope, KeyMaterial, pae
from modelsign.errors import (
    ExtraFileError,
    UnsafeArchiveError,
    UnsafeLoadError,
    UnsignedFileError,
)
from modelsign.manifest import Manifest, Serialization
from modelsign.policy import Policy
from tests.zipkit import (
    CD_OFFSET,
    EOCD_ON_DISK,
    LH_CSIZE,
    LH_USIZE,
    central_entries,
    eocd,
    local_header,
    make_tar,
    make_zip,
    patch,
    rename,
    tar_entry,
)

MB = 1024 * 1024
GiB = 1024 * MB
SEED = 20261125
STATE = {"w": torch.arange(12, dtype=torch.float32).reshape(3, 4), "b": torch.ones(2)}
ARRAY = np.arange(6, dtype=np.float64)


# --------------------------------------------------------------------------
# Fixtures and helpers.


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One Ed25519 key pair (private, public): the suite is about inputs, not algorithms."""
    prefix = tmp_path_factory.mktemp("signer") / "release"
    keys.write_keypair(keys.generate("ed25519"), prefix, None)
    return Path(f"{prefix}.key"), Path(f"{prefix}.pub")


class Mkdir:
    """Unpickling this creates a directory: the proof that a payload ran."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[str]]:
        return (os.mkdir, (self.path,))


def evil_pickle(marker: Path) -> bytes:
    return pickle.dumps({"w": Mkdir(marker)}, protocol=2)


def evil_pt(marker: Path) -> bytes:
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(1), "x": Mkdir(marker)}, buf)
    return buf.getvalue()


def object_array(marker: Path) -> np.ndarray[Any, Any]:
    arr = np.empty(1, dtype=object)
    arr[0] = Mkdir(marker)
    return arr


def same_state(a: Any, b: dict[str, torch.Tensor] = STATE) -> bool:
    return isinstance(a, dict) and a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in b)


def cli(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelsign", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


def python(code: str, *args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


def listing(root: Path) -> list[str]:
    """Every entry under ``root`` (dotfiles included): to prove nothing was written."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


@contextlib.contextmanager
def raises_exactly(cls: type[BaseException], match: str) -> Iterator[None]:
    """pytest.raises, but the class must be ``cls`` itself, not a subclass."""
    with pytest.raises(cls, match=match) as info:
        yield
    assert type(info.value) is cls, f"{type(info.value).__name__}: {info.value}"


def sign_as_another_tool(model: Path, key: Path) -> Path:
    """Sign ``model`` as a tool without archive checks would (the reference tool):
    the same OMS bundle with correct whole-file digests, built from modelsign's
    own classes, without ``build_manifest`` (which inspects archives)."""
    signature = model / "model.sig"
    tree = enumerate_model(model, ignore_paths=DEFAULT_IGNORES, signature=signature)
    digests = {
        f.name: FileDigest(
            f.name, f.size, Fingerprint(hashlib.sha256(f.path.read_bytes()).hexdigest())
        )
        for f in tree.files
    }
    serialization = Serialization("sha256", ignore_paths=tuple(sorted(tree.ignore_paths)))
    payload = Manifest.from_digests(tree.name, digests, serialization).to_payload()
    private = modelsign.load_private_key(key)
    envelope = Envelope(payload, PAYLOAD_TYPE, private.sign(pae(PAYLOAD_TYPE, payload)), keyid="")
    signature.write_bytes(
        Bundle(KeyMaterial(hint=private.public_key().key_id), envelope).to_bytes()
    )
    return signature


# --------------------------------------------------------------------------
# Building blocks of hostile archives: a benign torch checkpoint, re-zipped,
# then patched at known offsets (APPNOTE.TXT 4.3.7, 4.3.12, 4.3.16).


@functools.lru_cache(maxsize=1)
def benign_pt() -> bytes:
    buf = io.BytesIO()
    torch.save(STATE, buf)
    return buf.getvalue()


def pt_members() -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(io.BytesIO(benign_pt())) as z:
        return [(i.filename, z.read(i)) for i in z.infolist()]


def data_pkl(members: list[tuple[str, bytes]]) -> str:
    return next(name for name, _ in members if name.endswith("/data.pkl"))


def benign_tar_entries() -> list[tarfile.TarInfo | tuple[str | tarfile.TarInfo, bytes]]:
    return [("weights.pt", benign_pt()), ("config.json", b"{}")]


# --------------------------------------------------------------------------
# The named hostile archives. Each builder takes the marker path its payload
# would create and returns the file's bytes.


def zip_duplicate_member(marker: Path) -> bytes:
    base = pt_members()
    # torch reads the first of two equal names, zipfile the last.
    return make_zip([(data_pkl(base), evil_pickle(marker)), *base])


def zip_case_variant_member(marker: Path) -> bytes:
    base = pt_members()
    return make_zip([*base, (data_pkl(base).upper(), evil_pickle(marker))])


def zip_nul_member_name(marker: Path) -> bytes:
    data = make_zip([*pt_members(), ("zz/ev1l_pkl", evil_pickle(marker))])
    return rename(data, "zz/ev1l_pkl", "zz/ev1l\x00pkl")


def zip_traversal_member(marker: Path) -> bytes:
    data = make_zip([*pt_members(), ("zz/evil", evil_pickle(marker))])
    return rename(data, "zz/evil", "../evil")


def zip_local_name_mismatch(marker: Path) -> bytes:
    data = make_zip([*pt_members(), ("zz/data.pkl", evil_pickle(marker))])
    # Streaming readers take the local header's name, random-access readers the
    # central directory's.
    return rename(data, "zz/data.pkl", "zz/data.pkm", 1)


def zip_local_size_mismatch(marker: Path) -> bytes:
    base = pt_members()
    index = [name for name, _ in base].index(data_pkl(base))
    data = make_zip(base)
    size = len(base[index][1])
    # The local header claims one byte more than the central directory.
    start = local_header(data, index)
    return patch(data, start + LH_CSIZE, "<LL", size + 1, size + 1)


def zip_end_record_count_mismatch(marker: Path) -> bytes:
    base = pt_members()
    data = make_zip([*base, ("zz/hidden.pkl", evil_pickle(marker))])
    # The end record counts one entry less: the last one is hidden from readers
    # that trust the count.
    return patch(data, eocd(data) + EOCD_ON_DISK, "<HH", len(base), len(base))


def zip_overlapping_entries(marker: Path) -> bytes:
    base = pt_members()
    index = [name for name, _ in base].index(data_pkl(base))
    data = make_zip([*base, ("zz/evil.pkl", evil_pickle(marker))])
    # The last entry points at data.pkl's local header: two names, one set of bytes.
    return patch(data, central_entries(data)[-1] + CD_OFFSET, "<L", local_header(data, index))


def pickle_before_zip(marker: Path) -> bytes:
    # torch.load reads a pickle (it does not start with PK), zipfile a zip.
    return pickle.dumps({"w": Mkdir(marker)}) + make_zip(pt_members())


def tar_truncated_huge_member(marker: Path) -> bytes:
    # The tar analogue of a bomb: a member declaring 8 GiB - 1 bytes (the ustar
    # maximum), followed by a few KB and an end marker.
    info = tarfile.TarInfo("weights.pt")
    info.size = 8 * GiB - 1
    head = info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict")
    body = evil_pt(marker)
    body += bytes(-len(body) % tarfile.BLOCKSIZE)
    return head + body + bytes(2 * tarfile.BLOCKSIZE)


def tar_symlink_member(marker: Path) -> bytes:
    link = tar_entry("tokenizer.json", tarfile.SYMTYPE, linkname="/etc/passwd")
    return make_tar([*benign_tar_entries(), link])


def tar_hardlink_member(marker: Path) -> bytes:
    link = tar_entry("weights2.pt", tarfile.LNKTYPE, linkname="weights.pt")
    return make_tar([*benign_tar_entries(), link])


def tar_device_member(marker: Path) -> bytes:
    device = tar_entry("mem", tarfile.CHRTYPE, devmajor=1, devminor=1)
    return make_tar([*benign_tar_entries(), device])


def tar_pax_path_override(marker: Path) -> bytes:
    info = tarfile.TarInfo("innocent.bin")  # what a reader without PAX support sees
    info.pax_headers = {"path": "weights.pt"}
    return make_tar([("config.json", b"{}"), (info, evil_pt(marker))])


def tar_duplicate_members(marker: Path) -> bytes:
    return make_tar([*benign_tar_entries(), ("weights.pt", evil_pt(marker))])


@dataclass(frozen=True)
class HostileArchive:
    filename: str
    build: Callable[[Path], bytes]
    refusal: str
    """A regex the UnsafeArchiveError message matches (after the file name)."""


HOSTILE_ZIPS: dict[str, HostileArchive] = {
    "zip-duplicate-member": HostileArchive(
        "weights.pt", zip_duplicate_member, r"duplicate member name '[^']*/data\.pkl'"
    ),
    "zip-case-variant-member": HostileArchive(
        "weights.pt", zip_case_variant_member, r"DATA\.PKL' collide case-insensitively"
    ),
    "zip-nul-member-name": HostileArchive(
        "weights.pt", zip_nul_member_name, r"'zz/ev1l\\x00pkl' contains a NUL character"
    ),
    "zip-traversal-member": HostileArchive(
        "weights.pt", zip_traversal_member, r"'\.\./evil' has a '\.\.' component"
    ),
    "zip-local-header-name-mismatch": HostileArchive(
        "weights.pt",
        zip_local_name_mismatch,
        r"'zz/data\.pkl': local header name is 'zz/data\.pkm'",
    ),
    "zip-local-header-size-mismatch": HostileArchive(
        "weights.pt",
        zip_local_size_mismatch,
        r"data\.pkl': local header compressed size is \d+, central directory says \d+",
    ),
    "zip-end-record-count-mismatch": HostileArchive(
        "weights.pt",
        zip_end_record_count_mismatch,
        r"end record declares \d+ entries \(\d+ on this disk\), but the central directory holds",
    ),
    "zip-overlapping-entries": HostileArchive(
        "weights.pt", zip_overlapping_entries, r"data\.pkl' and 'zz/evil\.pkl' overlap"
    ),
    "pickle-before-zip": HostileArchive(
        "weights.pt", pickle_before_zip, r"bytes precede the zip data \(a polyglot"
    ),
}

HOSTILE_TARS: dict[str, HostileArchive] = {
    "tar-truncated-huge-member": HostileArchive(
        "weights.tar",
        tar_truncated_huge_member,
        r"truncated tar: member 'weights\.pt' declares 8589934591 bytes",
    ),
    "tar-symlink-member": HostileArchive(
        "weights.tar", tar_symlink_member, r"'tokenizer\.json' is a symbolic link"
    ),
    "tar-hardlink-member": HostileArchive(
        "weights.tar", tar_hardlink_member, r"'weights2\.pt' is a hard link"
    ),
    "tar-device-member": HostileArchive(
        "weights.tar", tar_device_member, r"'mem' is a character device"
    ),
    "tar-pax-path-override": HostileArchive(
        "weights.tar", tar_pax_path_override, r"'weights\.pt' has its name overridden by PAX"
    ),
    "tar-duplicate-members": HostileArchive(
        "weights.tar", tar_duplicate_members, r"duplicate member name 'weights\.pt'"
    ),
}

HOSTILE_ARCHIVES: dict[str, HostileArchive] = {**HOSTILE_ZIPS, **HOSTILE_TARS}


@dataclass(frozen=True)
class Planted:
    model: Path
    file: Path
    marker: Path
    case: HostileArchive

    def refusal(self) -> str:
        return f"{re.escape(str(self.file))}: .*{self.case.refusal}"


def plant(tmp_path: Path, name: str) -> Planted:
    """A model directory holding config.json and the hostile archive ``name``."""
    case = HOSTILE_ARCHIVES[name]
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    marker = tmp_path / "PWNED"
    file = model / case.filename
    file.write_bytes(case.build(marker))
    return Planted(model, file, marker, case)


# --------------------------------------------------------------------------
# 1. Hostile archives through sign, verify, the CLI and the hook.


def test_the_builders_start_from_benign_files_that_sign_verify_and_load(
    tmp_path: Path, signer: tuple[Path, Path]
) -> None:
    """Control: the same pipeline, on the benign re-zipped checkpoint and tar,
    signs, verifies (both bundle kinds) and loads."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.pt").write_bytes(make_zip(pt_members()))
    (model / "weights.tar").write_bytes(make_tar(benign_tar_entries()))
    (model / "config.json").write_text("{}")
    modelsign.sign(model, signer[0])
    modelsign.verify(model, [signer[1]])
    assert cli("verify", model, "--key", signer[1]).returncode == 0
    sign_as_another_tool(model, signer[0])
    modelsign.verify(model, [signer[1]])
    with modelsign.enforce(Policy.of([signer[1]])):
        assert same_state(torch.load(model / "weights.pt"))


@pytest.mark.parametrize("name", HOSTILE_ARCHIVES)
def test_sign_refuses_hostile_archive(tmp_path: Path, signer: tuple[Path, Path], name: str) -> None:
    planted = plant(tmp_path, name)
    before = listing(planted.model)
    with raises_exactly(UnsafeArchiveError, planted.refusal()):
        modelsign.sign(planted.model, signer[0])
    assert listing(planted.model) == before  # no model.sig, no temporary file
    assert not planted.marker.exists()


@pytest.mark.parametrize("name", HOSTILE_ARCHIVES)
def test_cli_sign_refuses_hostile_archive(
    tmp_path: Path, signer: tuple[Path, Path], name: str
) -> None:
    planted = plant(tmp_path, name)
    before = listing(planted.model)
    result = cli("sign", planted.model, "--key", signer[0], "-q")
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("modelsign: rejected: ")
    assert re.search(planted.refusal(), result.stderr), result.stderr
    assert "Traceback" not in result.stderr
    assert listing(planted.model) == before
    assert not planted.marker.exists()


@pytest.mark.parametrize("name", HOSTILE_ARCHIVES)
def test_hostile_archive_signed_by_another_tool_is_refused_at_verification_and_load(
    tmp_path: Path, signer: tuple[Path, Path], name: str
) -> None:
    """The bundle's digests are right (a tool without archive checks signed the
    file with a trusted key): the archive check alone must refuse it."""
    planted = plant(tmp_path, name)
    sign_as_another_tool(planted.model, signer[0])
    before = listing(planted.model)

    with raises_exactly(UnsafeArchiveError, planted.refusal()):
        modelsign.verify(planted.model, [signer[1]])

    result = cli("verify", planted.model, "--key", signer[1], "--json")
    assert result.returncode == 1, result.stderr
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "UnsafeArchiveError"
    assert re.search(planted.refusal(), error["message"]), error["message"]

    with modelsign.enforce(Policy.of([signer[1]])):
        with raises_exactly(UnsafeLoadError, re.escape(str(planted.file))):
            torch.load(planted.file, weights_only=False)
    assert listing(planted.model) == before
    assert not planted.marker.exists(), "the payload ran"


# ---------------------------------------------------------------- zip bombs


def write_npz_bomb(path: Path, *, declared: int | None = None) -> None:
    """An .npz whose deflated ``zeros.npy`` inflates to 200 MB (about 200 KB on
    disk), written in pieces. ``declared`` makes both headers lie about the size."""
    count = 25 * MB  # float64: 200 MiB of zeros
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z, z.open("zeros.npy", "w") as w:
        header = {"descr": "<f8", "fortran_order": False, "shape": (count,)}
        np.lib.format.write_array_header_1_0(w, header)
        chunk = bytes(MB)
        for _ in range(count * 8 // MB):
            w.write(chunk)
    if declared is not None:
        data = path.read_bytes()
        data = patch(data, central_entries(data)[0] + 24, "<L", declared)
        data = patch(data, local_header(data, 0) + LH_USIZE, "<L", declared)
        path.write_bytes(data)


@dataclass(frozen=True)
class ZipBomb:
    build: Callable[[Path], None]
    refusal_at_10mb: str
    refusal_by_default: str | None
    """None: within the default limit (64 GiB) the member is legitimate and signs."""


ZIP_BOMBS: dict[str, ZipBomb] = {
    "npz-200MB-deflated-member": ZipBomb(
        write_npz_bomb,
        r"member 'zeros\.npy' declares 209715328 bytes, more than the limit of 10485760",
        None,
    ),
    "npz-200MB-member-declaring-1000-bytes": ZipBomb(
        functools.partial(write_npz_bomb, declared=1000),
        r"member 'zeros\.npy' inflates to more than its declared size of 1000 bytes",
        r"member 'zeros\.npy' inflates to more than its declared size of 1000 bytes",
    ),
}

# Runs the CLI under an address-space limit, optionally with a lower member
# limit, and reports how much the peak RSS grew while it ran.
LIMITED_CLI = """
import resource, sys
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
import modelsign._cli, modelsign._archive, modelsign.signing, modelsign.verifying
if sys.argv[2] != "default":
    modelsign._archive.MAX_MEMBER_BYTES = int(sys.argv[2])
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
sys.argv = ["modelsign", *sys.argv[3:]]
try:
    modelsign._cli.main()
    code = 0
except SystemExit as e:
    code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
with open("/proc/self/io") as io:
    read = next(int(line.split()[1]) for line in io if line.startswith("rchar:"))
sys.stderr.write(f"\\nRSS_GROWTH_KB={grown}\\nREAD_BYTES={read}\\n")
sys.exit(code)
"""


def bytes_read(stderr: str) -> int:
    """What the LIMITED_CLI process read through read() calls (its rchar)."""
    found = re.search(r"READ_BYTES=(\d+)", stderr)
    assert found, stderr
    return int(found.group(1))


def rss_growth_mb(stderr: str) -> float:
    found = re.search(r"RSS_GROWTH_KB=(\d+)", stderr)
    assert found, stderr
    return int(found.group(1)) / 1024


@pytest.mark.parametrize("member_limit", ["10MB", "default"])
@pytest.mark.parametrize("name", ZIP_BOMBS)
def test_zip_bomb_signing_is_refused_or_bounded(
    tmp_path: Path, signer: tuple[Path, Path], name: str, member_limit: str
) -> None:
    """Signing inflates members to hash them: in pieces, never past the
    declared size nor past MAX_MEMBER_BYTES. Under a 1.5 GiB address-space
    limit, peak memory grows by far less than the 200 MB of zeros."""
    bomb = ZIP_BOMBS[name]
    model = tmp_path / "model"
    model.mkdir()
    bomb.build(model / "arrays.npz")
    limit = str(10 * MB) if member_limit == "10MB" else "default"
    expected = bomb.refusal_at_10mb if member_limit == "10MB" else bomb.refusal_by_default
    before = listing(model)
    result = python(LIMITED_CLI, 3 * GiB // 2, limit, "sign", model, "--key", signer[0], "-q")
    if expected is None:
        assert result.returncode == 0, result.stderr
        assert (model / "model.sig").exists()
    else:
        assert result.returncode == 1, result.stderr
        assert result.stderr.startswith("modelsign: rejected: ")
        assert re.search(expected, result.stderr), result.stderr
        assert listing(model) == before
    grown = rss_growth_mb(result.stderr)
    print(f"{name}, member limit {member_limit}: peak RSS grew {grown:.1f} MB")  # with -s
    assert grown < 100


@pytest.mark.parametrize("name", ZIP_BOMBS)
def test_zip_bomb_sign_api_refuses_with_a_lower_member_limit(
    tmp_path: Path, signer: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setattr(modelsign._archive, "MAX_MEMBER_BYTES", 10 * MB)
    model = tmp_path / "model"
    model.mkdir()
    ZIP_BOMBS[name].build(model / "arrays.npz")
    before = listing(model)
    with raises_exactly(UnsafeArchiveError, ZIP_BOMBS[name].refusal_at_10mb):
        modelsign.sign(model, signer[0])
    assert listing(model) == before


@pytest.mark.parametrize("name", ZIP_BOMBS)
def test_zip_bomb_signed_by_another_tool_is_refused_at_verification(
    tmp_path: Path, signer: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setattr(modelsign._archive, "MAX_MEMBER_BYTES", 10 * MB)
    model = tmp_path / "model"
    model.mkdir()
    ZIP_BOMBS[name].build(model / "arrays.npz")
    sign_as_another_tool(model, signer[0])
    with raises_exactly(UnsafeArchiveError, ZIP_BOMBS[name].refusal_at_10mb):
        modelsign.verify(model, [signer[1]])


@pytest.mark.parametrize("name", ZIP_BOMBS)
def test_zip_bomb_signed_by_another_tool_is_refused_by_the_hook(
    tmp_path: Path, signer: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setattr(modelsign._archive, "MAX_MEMBER_BYTES", 10 * MB)
    model = tmp_path / "model"
    model.mkdir()
    ZIP_BOMBS[name].build(model / "arrays.npz")
    sign_as_another_tool(model, signer[0])
    with modelsign.enforce(Policy.of([signer[1]])):
        with raises_exactly(UnsafeLoadError, "zeros.npy"):
            with np.load(model / "arrays.npz") as z:
                z.files  # noqa: B018 - listing only: the 200 MB member is never inflated


# --------------------------------------------------------------------------
# 2. Load time: a file swapped between verification and load; bytes in no bundle.


def load_npz(path: Path) -> dict[str, Any]:
    with np.load(path, allow_pickle=True) as z:
        return {k: z[k] for k in z.files}


def load_pickle(path: Path) -> Any:
    with open(path, "rb") as f:
        return pickle.load(f)


@dataclass(frozen=True)
class Loader:
    filename: str
    write_signed: Callable[[Path], Any]
    write_evil: Callable[[Path, Path], Any]
    load: Callable[[Path], Any]
    is_signed: Callable[[Any], bool]
    memfd: bool = False
    """Loaded through a sealed memfd: Guard._hash_bytes is not on this path."""
    control: bool = True
    """Whether loading the evil file unhooked runs its payload."""


LOADERS: dict[str, Loader] = {
    "torch.load": Loader(
        "weights.pt",
        lambda p: torch.save(STATE, p),
        lambda p, m: p.write_bytes(evil_pt(m)),
        lambda p: torch.load(p, weights_only=False),
        same_state,
    ),
    "torch.load(mmap=True)": Loader(
        "weights.pt",
        lambda p: torch.save(STATE, p),
        lambda p, m: p.write_bytes(evil_pt(m)),
        lambda p: torch.load(p, weights_only=False, mmap=True),
        same_state,
        memfd=True,
    ),
    "numpy.load(.npz)": Loader(
        "arrays.npz",
        lambda p: np.savez(p, a=ARRAY),
        lambda p, m: np.savez(p, a=object_array(m)),
        load_npz,
        lambda o: list(o) == ["a"] and np.array_equal(o["a"], ARRAY),
    ),
    "numpy.load(.npy)": Loader(
        "array.npy",
        lambda p: np.save(p, ARRAY),
        lambda p, m: np.save(p, object_array(m), allow_pickle=True),
        lambda p: np.load(p, allow_pickle=True),
        lambda o: o.dtype == ARRAY.dtype and np.array_equal(o, ARRAY),
    ),
    "numpy.load(.npy, mmap_mode='r')": Loader(
        "array.npy",
        lambda p: np.save(p, ARRAY),
        lambda p, m: np.save(p, object_array(m), allow_pickle=True),
        lambda p: np.array(np.load(p, mmap_mode="r")),
        lambda o: o.dtype == ARRAY.dtype and np.array_equal(o, ARRAY),
        memfd=True,
        control=False,  # numpy refuses to memory-map object arrays
    ),
    "joblib.load": Loader(
        "model.joblib",
        lambda p: joblib.dump({"w": ARRAY}, p),
        lambda p, m: joblib.dump({"x": Mkdir(m)}, p),
        lambda p: joblib.load(p),  # looked up at call time, after install()
        lambda o: list(o) == ["w"] and np.array_equal(o["w"], ARRAY),
    ),
    "pickle.load": Loader(
        "state.pkl",
        lambda p: p.write_bytes(pickle.dumps({"w": [1, 2, 3]})),
        lambda p, m: p.write_bytes(evil_pickle(m)),
        load_pickle,
        lambda o: o == {"w": [1, 2, 3]},
    ),
}

#: Where the file is swapped: right after the guard hashed the bytes it read
#: (Guard._hash_bytes, for files read into memory), or after the archive check
#: (archive.inspect, the last step before the loader runs, on every path).
SWAP_POINTS: dict[str, tuple[Any, str]] = {
    "after-archive-check": (modelsign._archive, "inspect"),
    "after-hashing": (modelsign._guard, "_hash_bytes"),
}

SWAP_CASES = [
    pytest.param(loader, point, how, id=f"{loader}-{point}-{how}")
    for loader, spec in LOADERS.items()
    for point in SWAP_POINTS
    if not (spec.memfd and point == "after-hashing")
    for how in ("in-place", "rename")
]


@pytest.mark.parametrize(("loader", "point", "how"), SWAP_CASES)
def test_file_swapped_between_verification_and_load_loads_the_signed_object(
    tmp_path: Path,
    signer: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    loader: str,
    point: str,
    how: str,
) -> None:
    spec = LOADERS[loader]
    marker = tmp_path / "PWNED"
    model = tmp_path / "model"
    model.mkdir()
    path = model / spec.filename
    spec.write_signed(path)
    modelsign.sign(model, signer[0])
    staging = tmp_path / "evil"
    staging.mkdir()
    spec.write_evil(staging / spec.filename, marker)
    evil = (staging / spec.filename).read_bytes()

    owner, attr = SWAP_POINTS[point]
    real = getattr(owner, attr)
    swapped: list[bool] = []

    def then_swap(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        if not swapped:
            if how == "in-place":
                path.write_bytes(evil)  # same inode, the guard's fd sees it
            else:
                os.replace(staging / spec.filename, path)
            swapped.append(True)
        return result

    monkeypatch.setattr(owner, attr, then_swap)
    with modelsign.enforce(Policy.of([signer[1]])):
        loaded = spec.load(path)
    monkeypatch.undo()
    assert swapped, f"{point} was never reached"
    assert path.read_bytes() == evil
    assert spec.is_signed(loaded), loaded
    assert not marker.exists(), "the swapped-in payload ran"
    if spec.control:  # unhooked, the same call does run what is on disk now
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with contextlib.suppress(Exception):
                spec.load(path)
        assert marker.exists(), "control: the swapped-in file should run its payload"


def signed_model(tmp_path: Path, signer: tuple[Path, Path]) -> Path:
    model = tmp_path / "model"
    model.mkdir()
    (model / "state.pkl").write_bytes(pickle.dumps({"w": [1, 2, 3]}))
    torch.save(STATE, model / "weights.pt")
    modelsign.sign(model, signer[0])
    return model


def with_file(path: Path, load: Callable[[Any], Any]) -> Callable[[], Any]:
    def call() -> Any:
        with open(path, "rb") as f:
            return load(f)

    return call


Unsigned = Callable[[Path, Path, tuple[Path, Path]], tuple[Policy, str, Callable[[], Any]]]
"""(tmp_path, marker, signer) -> (policy, what the refusal names, the load)."""


def loose_pkl(tmp: Path, marker: Path, signer: tuple[Path, Path]) -> Any:
    path = tmp / "loose" / "evil.pkl"
    path.parent.mkdir()
    path.write_bytes(evil_pickle(marker))
    return Policy.of([signer[1]]), str(path), with_file(path, lambda f: pickle.load(f))


def pkl_added_to_signed_model(tmp: Path, marker: Path, signer: tuple[Path, Path]) -> Any:
    path = signed_model(tmp, signer) / "extra.pkl"
    path.write_bytes(evil_pickle(marker))
    return Policy.of([signer[1]]), str(path), with_file(path, lambda f: pickle.load(f))


def pkl_unpickler_added_to_signed_model(tmp: Path, marker: Path, signer: tuple[Path, Path]) -> Any:
    path = signed_model(tmp, signer) / "extra.pkl"
    path.write_bytes(evil_pickle(marker))
    load = with_file(path, lambda f: pickle.Unpickler(f).load())
    return Policy.of([signer[1]]), str(path), load


def bytesio_unsigned_pt(tmp: Path, marker: Path, signer: tuple[Path, Path]) -> Any:
    data = evil_pt(marker)
    load = lambda: torch.load(io.BytesIO(data), weights_only=False)  # noqa: E731
    return Policy.of([signer[1]]), "BytesIO", load


def bytesio_legacy_pickle(tmp: Path, marker: Path, signer: tuple[Path, Path]) -> Any:
    data = evil_pickle(marker)  # torch.load falls back to a plain pickle
    load = lambda: torch.load(io.BytesIO(data), weights_only=False)  # noqa: E731
    return Policy.of([signer[1]]), "BytesIO", load


def bytesio_not_in_the_explicit_bundle(tmp: Path, marker: Path, signer: tuple[Path, Path]) -> Any:
    model = signed_model(tmp, signer)
    policy = Policy(
        (modelsign.load_public_key(signer[1]),), "explicit", bundles=(model / "model.sig",)
    )
    data = evil_pt(marker)
    return policy, "BytesIO", lambda: torch.load(io.BytesIO(data), weights_only=False)


UNSIGNED_LOADS: dict[str, Unsigned] = {
    "pickle.load(loose .pkl)": loose_pkl,
    "pickle.load(.pkl added to a signed model)": pkl_added_to_signed_model,
    "pickle.Unpickler(.pkl added to a signed model)": pkl_unpickler_added_to_signed_model,
    "torch.load(BytesIO of an unsigned .pt)": bytesio_unsigned_pt,
    "torch.load(BytesIO of a plain pickle)": bytesio_legacy_pickle,
    "torch.load(BytesIO not in the policy's explicit bundle)": bytesio_not_in_the_explicit_bundle,
}


@pytest.mark.parametrize("name", UNSIGNED_LOADS)
def test_bytes_in_no_bundle_are_refused_before_unpickling(
    tmp_path: Path, signer: tuple[Path, Path], name: str
) -> None:
    marker = tmp_path / "PWNED"
    policy, target, load = UNSIGNED_LOADS[name](tmp_path, marker, signer)
    with modelsign.enforce(policy):
        with raises_exactly(UnsignedFileError, re.escape(target) + ".*no bundle signed by"):
            load()
    assert not marker.exists(), "the unsigned payload ran"
    with warnings.catch_warnings():  # control: unhooked, the payload runs
        warnings.simplefilter("ignore")
        with contextlib.suppress(Exception):
            load()
    assert marker.exists()


# --------------------------------------------------------------------------
# 3. Atomic writes under SIGKILL.

# Runs the CLI with a SIGKILL injected at one step of writing the NTH temporary
# file (tempfile.mkstemp call): right after it is created, with half its bytes
# on disk (truncated at fsync), before the rename/link that publishes it, or
# right after (before the temporary name is unlinked).
KILL_AT = """
import os, signal, sys, tempfile
point, nth = sys.argv[1], int(sys.argv[2])
sys.argv = ["modelsign", *sys.argv[3:]]
temps, created = {}, [0]
real_mkstemp, real_fsync, real_replace, real_link = (
    tempfile.mkstemp, os.fsync, os.replace, os.link)
def die():
    os.kill(os.getpid(), signal.SIGKILL)
def mkstemp(*args, **kwargs):
    fd, path = real_mkstemp(*args, **kwargs)
    created[0] += 1
    if created[0] == nth:
        temps[fd] = path
        if point == "after-create":
            die()
    return fd, path
def fsync(fd):
    if fd in temps and point == "half-written":
        os.ftruncate(fd, os.fstat(fd).st_size // 2)
        die()
    return real_fsync(fd)
def publishing(real):
    def call(src, dst, *args, **kwargs):
        ours = os.fspath(src) in temps.values()
        if ours and point == "before-publish":
            die()
        result = real(src, dst, *args, **kwargs)
        if ours and point == "after-publish":
            die()
        return result
    return call
tempfile.mkstemp, os.fsync = mkstemp, fsync
os.replace, os.link = publishing(real_replace), publishing(real_link)
from modelsign._cli import main
main()
"""
KILL_POINTS = ["after-create", "half-written", "before-publish", "after-publish"]
TEMPORARY = re.compile(r"^\.(?P<target>.+)\.[A-Za-z0-9_]+\.tmp$")


def temporaries(directory: Path) -> dict[str, str]:
    """Leftover temporary files in ``directory``: name -> the file they were for."""
    return {
        p.name: found.group("target")
        for p in directory.iterdir()
        if (found := TEMPORARY.match(p.name))
    }


def assert_complete_bundle(data: bytes, source: Path) -> None:
    Bundle.from_bytes(data, source=str(source))  # raises on half a bundle


def sparse_model(root: Path, size: int) -> Path:
    root.mkdir()
    with open(root / "weights.bin", "wb") as f:
        f.truncate(size)  # sparse: no disk, real bytes to hash
    (root / "config.json").write_text("{}")
    return root


def check_interrupted_sign(model: Path, old: bytes, signer: tuple[Path, Path]) -> str:
    """After a killed sign: model.sig is the old bundle (blake2b) or a complete
    new one (sha256, as the killed command signs), and it verifies either way.
    A temporary left inside the model is an extra file to verify and is refused
    by sign (naming it) until removed."""
    signature = model / "model.sig"
    current = signature.read_bytes()
    assert_complete_bundle(current, signature)
    signed = Manifest.from_payload(Bundle.from_bytes(current).envelope.payload)
    expected = "blake2b" if current == old else "sha256"
    assert signed.serialization.hash_type == expected, "neither the old bundle nor the new one"
    leftovers = temporaries(model)
    assert set(leftovers.values()) <= {"model.sig"}, leftovers
    for name in leftovers:
        result = cli("verify", model, "--key", signer[1], "--json")
        assert result.returncode == 1, result.stderr
        error = json.loads(result.stdout)["error"]
        assert error["type"] == "ExtraFileError"
        assert [m["name"] for m in error["mismatches"]] == [name]
        result = cli("sign", model, "--key", signer[0], "-q")
        assert result.returncode == 1
        assert f"{name}: a temporary file left by an interrupted signing" in result.stderr
        assert signature.read_bytes() == current
        (model / name).unlink()
    result = cli("verify", model, "--key", signer[1])
    assert result.returncode == 0, result.stderr  # the old bundle and the new one alike
    outcome = "old" if current == old else "new"
    return outcome + (f" + leftover {sorted(leftovers)}" if leftovers else "")


def test_sign_killed_at_random_points_leaves_old_or_complete_bundle(
    tmp_path: Path, signer: tuple[Path, Path]
) -> None:
    model = sparse_model(tmp_path / "model", 300 * MB)
    signature = model / "model.sig"
    assert cli("sign", model, "--key", signer[0], "-q").returncode == 0  # warms the caches
    start = time.monotonic()  # one signing as it will be killed
    assert cli("sign", model, "--key", signer[0], "-q").returncode == 0
    elapsed = time.monotonic() - start
    # The old bundle hashes with blake2b, so a new (sha256) one always differs.
    assert cli("sign", model, "--key", signer[0], "--hash", "blake2b", "-q").returncode == 0
    old = signature.read_bytes()
    rng = random.Random(SEED)
    delays = sorted(rng.uniform(0, elapsed) for _ in range(8))
    outcomes = []
    for delay in delays:
        proc = subprocess.Popen(
            [sys.executable, "-m", "modelsign", "sign", str(model), "--key", str(signer[0]), "-q"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        outcome = check_interrupted_sign(model, old, signer)
        outcomes.append((round(delay, 3), proc.returncode, outcome))
        signature.write_bytes(old)  # the same starting point for every kill
    print("sign: (delay s, exit code, outcome):", *outcomes, sep="\n  ")  # shown with -s
    assert any(code == -signal.SIGKILL for _, code, _ in outcomes), outcomes


@pytest.mark.parametrize("point", KILL_POINTS)
def test_sign_killed_at_each_step_of_the_bundle_write(
    tmp_path: Path, signer: tuple[Path, Path], point: str
) -> None:
    model = sparse_model(tmp_path / "model", MB)
    assert cli("sign", model, "--key", signer[0], "--hash", "blake2b", "-q").returncode == 0
    old = (model / "model.sig").read_bytes()
    result = python(KILL_AT, point, 1, "sign", model, "--key", signer[0], "-q")
    assert result.returncode == -signal.SIGKILL, result.stderr
    outcome = check_interrupted_sign(model, old, signer)
    print(f"sign killed {point}: {outcome}")  # shown with -s
    assert outcome.startswith("new" if point == "after-publish" else "old"), outcome
    assert cli("sign", model, "--key", signer[0], "-q").returncode == 0


def check_interrupted_keygen(directory: Path) -> str:
    """After a killed keygen: no key, or a complete private key (and then a
    complete matching public key, or none and a re-run refuses). Never a
    partial PEM; a leftover temporary holding key bytes is mode 0600."""
    key, pub = directory / "k.key", directory / "k.pub"
    leftovers = temporaries(directory)
    assert set(leftovers.values()) <= {"k.key", "k.pub"}, leftovers
    for name, target in leftovers.items():
        mode = stat.S_IMODE(os.stat(directory / name).st_mode)
        if target == "k.key":
            assert mode == 0o600, f"{name}: a copy of the private key with mode {mode:o}"
    assert not (pub.exists() and not key.exists())
    if not key.exists():
        outcome = "nothing"
        again = cli("keygen", "--output", directory / "k", "--no-passphrase")
        assert again.returncode == 0, again.stderr  # a re-run starts over
    else:
        private = modelsign.load_private_key(key)  # complete: parses
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        if pub.exists():
            assert modelsign.load_public_key(pub) == private.public_key()
            outcome = "both"
        else:
            again = cli("keygen", "--output", directory / "k", "--no-passphrase")
            assert again.returncode == 2
            assert f"{key}: already exists" in again.stderr
            outcome = "k.key only (re-run refused)"
    return outcome + (f" + leftover {sorted(leftovers)}" if leftovers else "")


def test_keygen_killed_at_random_points_leaves_no_partial_key(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    outcomes = []
    for i, delay in enumerate(sorted(rng.uniform(0, 0.3) for _ in range(8))):
        directory = tmp_path / f"run{i}"
        command = ["keygen", "--output", str(directory / "k"), "--no-passphrase"]
        proc = subprocess.Popen(
            [sys.executable, "-m", "modelsign", *command],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        directory.mkdir(exist_ok=True)
        outcomes.append((round(delay, 3), proc.returncode, check_interrupted_keygen(directory)))
    print("keygen: (delay s, exit code, outcome):", *outcomes, sep="\n  ")  # shown with -s
    assert any(code == -signal.SIGKILL for _, code, _ in outcomes), outcomes


@pytest.mark.parametrize("point", KILL_POINTS)
@pytest.mark.parametrize("nth", [1, 2], ids=["writing-k.key", "writing-k.pub"])
def test_keygen_killed_at_each_step_of_each_file(tmp_path: Path, nth: int, point: str) -> None:
    directory = tmp_path / "keys"
    result = python(KILL_AT, point, nth, "keygen", "--output", directory / "k", "--no-passphrase")
    assert result.returncode == -signal.SIGKILL, result.stderr
    leftovers = temporaries(directory)
    outcome = check_interrupted_keygen(directory)
    print(f"keygen killed {point} of {['k.key', 'k.pub'][nth - 1]}: {outcome}")  # with -s
    if nth == 1 and point != "after-publish":
        assert outcome.startswith("nothing"), outcome
    elif nth == 1 or point != "after-publish":
        assert outcome.startswith("k.key only (re-run refused)"), outcome
    else:
        assert outcome.startswith("both"), outcome
    for name, target in leftovers.items():
        if target == "k.key" and point in ("before-publish", "after-publish"):
            # Observed: a complete copy of the private key stays under the
            # hidden temporary name (mode 0600, checked above).
            assert modelsign.load_private_key(directory / name)


# --------------------------------------------------------------------------
# 4. Memory bounded: a huge extra file is never read.


def test_sparse_8gib_extra_npz_is_an_extra_file_and_never_read(
    tmp_path: Path, signer: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tmp_path / "model"
    model.mkdir()
    torch.save(STATE, model / "weights.pt")
    (model / "config.json").write_text("{}")
    modelsign.sign(model, signer[0])
    huge = model / "extra.npz"  # not a zip at all: 8 GiB of zeros, sparse
    with open(huge, "wb") as f:
        f.truncate(8 * GiB)

    opened: list[str] = []
    real_open = modelsign._hashing._open_regular

    def spy(path: Path, display: str) -> Any:
        opened.append(str(path))
        return real_open(path, display)

    monkeypatch.setattr(modelsign._hashing, "_open_regular", spy)
    with raises_exactly(ExtraFileError, r"extra\.npz: extra file"):
        modelsign.verify(model, [signer[1]])
    assert str(huge) not in opened
    assert sorted(opened) == [str(model / "config.json"), str(model / "weights.pt")]
    monkeypatch.undo()

    result = python(LIMITED_CLI, GiB, "default", "verify", model, "--key", signer[1], "--json")
    assert result.returncode == 1, result.stderr
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "ExtraFileError"
    assert error["mismatches"] == [{"kind": "extra", "name": "extra.npz"}]
    assert bytes_read(result.stderr) < 256 * MB  # the 8 GiB file was never read


def test_hook_refuses_an_unsigned_huge_file_without_copying_it(
    tmp_path: Path, signer: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    modelsign.sign(model, signer[0])
    huge = model / "extra.npz"
    with open(huge, "wb") as f:
        f.truncate(256 * MB)  # stands for 8 GiB: the copy is what is measured
    copied: list[int] = []
    real = modelsign._guard.Guard._capture_fd

    def spy(self: Any, fd: int, size: int, *args: Any, **kwargs: Any) -> Any:
        digests, source = real(self, fd, size, *args, **kwargs)
        copied.append(source.size)
        return digests, source

    monkeypatch.setattr(modelsign._guard.Guard, "_capture_fd", spy)
    with modelsign.enforce(Policy.of([signer[1]])):
        with raises_exactly(UnsignedFileError, re.escape(str(huge))):
            np.load(huge)
    assert sum(copied) < MB, f"copied {copied} bytes of a file no bundle lists"
