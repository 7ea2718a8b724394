"""Distributed checkpoints (torch.distributed.checkpoint): ``.distcp`` files
sign and verify, the signing writer signs where ranks write, and the hook
loads a checkpoint from verified bytes on every rank.

Everything is real: torch archives, gloo process groups of 2 and 4 ranks on
127.0.0.1 (``tests/dcpkit.py``), keys and bundles, and the reference
implementation for ECDSA bundles.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.filesystem import SerializationFormat

import modelsign
from modelsign import hooks
from modelsign._digests import Fingerprint
from modelsign._enumerating import DEFAULT_IGNORES
from modelsign._hashing import FileDigest
from modelsign._refusals import SignerRevokedLoadError
from modelsign.errors import (
    FileDigestMismatchError,
    ForbiddenGlobalError,
    MissingSignatureError,
    UnsafeArchiveError,
    UnsafeLoadError,
    UnsafeModelError,
    UnsignedFileError,
    UsageError,
)
from modelsign.integrations.dcp import SigningFileSystemWriter
from modelsign.keys import generate, write_keypair
from modelsign.manifest import Manifest, Serialization
from modelsign.policy import Policy
from modelsign.signing import sign_manifest
from tests import dcpkit
from tests.conftest import require
from tests.zipkit import make_zip

model_signing_verifying = require("model_signing.verifying", "the reference verifies ECDSA bundles")

IGNORES = tuple(sorted((*DEFAULT_IGNORES, "model.sig")))


@pytest.fixture(scope="module")
def p256(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An ECDSA P-256 key pair: model_signing verifies its bundles too."""
    prefix = tmp_path_factory.mktemp("dcp-keys") / "p256"
    write_keypair(generate("ecdsa-p256"), prefix, None)
    return Path(f"{prefix}.key"), Path(f"{prefix}.pub")


@pytest.fixture(scope="module")
def policy(p256: tuple[Path, Path]) -> Path:
    path = p256[1].parent / "policy.toml"
    path.write_text(f'[trust]\nkeys = ["{p256[1]}"]\n')
    return path


def _archive(obj: object) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _payload(signature: Path) -> bytes:
    bundle = json.loads(signature.read_bytes())
    return base64.b64decode(bundle["dsseEnvelope"]["payload"])


def _reference_verify(model: Path, public: Path) -> None:
    model_signing_verifying.Config().use_elliptic_key_verifier(public_key=public).verify(
        model, model / "model.sig"
    )


def _cli(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelsign", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _metadata(folder: Path) -> Any:
    with open(folder / ".metadata", "rb") as f:
        return pickle.load(f)


def _sign_unchecked(folder: Path, key: Path) -> None:
    """A bundle for the folder's bytes as they are, without modelsign's
    archive checks: what a careless signer (or another tool) could write."""
    digests = {
        p.name: FileDigest(
            p.name, p.stat().st_size, Fingerprint(digest=hashlib.sha256(p.read_bytes()).hexdigest())
        )
        for p in sorted(folder.iterdir())
        if p.name != "model.sig"
    }
    manifest = Manifest.from_digests(folder.name, digests, Serialization(ignore_paths=IGNORES))
    sign_manifest(manifest, key, folder / "model.sig", force=True)


# --------------------------------------------------------------------------
# .distcp files: torch archives end to end


@pytest.fixture(scope="module")
def archives() -> list[bytes]:
    """Three torch archives, as DCP writes them for three tensors."""
    return [_archive(torch.arange(n, dtype=torch.float32)) for n in (3, 5, 7)]


def _distcp_model(tmp_path: Path, data: bytes, name: str = "__0_0.distcp") -> Path:
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / name).write_bytes(data)
    return folder


def test_a_distcp_file_of_several_archives_signs_and_lists_each_archives_members(
    tmp_path: Path, archives: list[bytes], p256: tuple[Path, Path]
) -> None:
    folder = _distcp_model(tmp_path, b"".join(archives))
    modelsign.sign(folder, p256[0])
    assert modelsign.verify(folder, [p256[1]]).files == ("__0_0.distcp",)
    (resource,) = modelsign.inspect_bundle(folder).manifest.resources
    starts = [0, len(archives[0]), len(archives[0]) + len(archives[1])]
    assert resource.archive == "zip"
    members = {m.name: m for m in resource.members}
    for start, n in zip(starts, (3, 5, 7), strict=True):
        tensor = members[f"@{start}/archive/data/0"]
        expected = torch.arange(n, dtype=torch.float32).numpy().tobytes()
        assert tensor.size == len(expected)
        assert tensor.digest == hashlib.sha256(expected).hexdigest()
    assert len(members) == sum(len(_torch_members(a)) for a in archives)


def _torch_members(data: bytes) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return z.namelist()


def _between(a: list[bytes]) -> bytes:
    return a[0] + b"\x00" * 5 + a[1]


def _pickle_between(a: list[bytes]) -> bytes:
    return a[0] + pickle.dumps({"x": 1}) + a[1]


def _before(a: list[bytes]) -> bytes:
    return b"junk" + a[0] + a[1]


def _after(a: list[bytes]) -> bytes:
    return a[0] + a[1] + b"junk"


def _truncated(a: list[bytes]) -> bytes:
    return (a[0] + a[1])[:-10]


def _no_end(a: list[bytes]) -> bytes:
    return a[0] + b"\x00" * 70_000


def _duplicate_names(a: list[bytes]) -> bytes:
    ambiguous = make_zip([("archive/data.pkl", b"first"), ("archive/data.pkl", b"second")])
    return a[0] + ambiguous + a[1]


def _not_torch(a: list[bytes]) -> bytes:
    return a[0] + make_zip([("weights.bin", b"\x00" * 16)])


CASES = {
    "bytes between two archives": (_between, r"5 bytes between the archive ending at offset {0}"),
    "a pickle between two archives": (_pickle_between, r"bytes between the archive ending at"),
    "bytes before the first archive": (_before, r"the 4 bytes before the archive at offset 4"),
    "bytes after the last archive": (_after, r"4 bytes after the last archive"),
    # The last complete archive ends at the first one's end.
    "a truncated last archive": (_truncated, r"bytes after the last archive \(offsets \[{0}, "),
    "no archive at the end": (_no_end, r"does not end with a zip end record"),
    "an ambiguous archive (duplicate names)": (
        _duplicate_names,
        r"the archive at offsets \[{0}, \d+\)\): duplicate member name 'archive/data\.pkl'",
    ),
    "an archive that torch.save did not write": (_not_torch, r"not a torch archive"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_distcp_file_with_bytes_outside_its_archives_or_an_ambiguous_archive_is_refused(
    tmp_path: Path, archives: list[bytes], p256: tuple[Path, Path], case: str
) -> None:
    build, pattern = CASES[case]
    folder = _distcp_model(tmp_path, build(archives))
    file = folder / "__0_0.distcp"
    with pytest.raises(UnsafeArchiveError) as refused:
        modelsign.sign(folder, p256[0])
    message = str(refused.value)
    assert message.startswith(str(file)), message
    assert re.search(pattern.format(len(archives[0])), message), message
    assert not (folder / "model.sig").exists()


def test_archives_end_to_end_are_refused_in_any_file_but_a_distcp(
    tmp_path: Path, archives: list[bytes], p256: tuple[Path, Path]
) -> None:
    folder = _distcp_model(tmp_path, archives[0] + archives[1], name="model.pt")
    with pytest.raises(UnsafeArchiveError, match="model.pt"):
        modelsign.sign(folder, p256[0])


def test_an_empty_distcp_file_is_no_archive(tmp_path: Path, p256: tuple[Path, Path]) -> None:
    """A rank with nothing to write leaves an empty file."""
    folder = _distcp_model(tmp_path, b"")
    modelsign.sign(folder, p256[0])
    assert modelsign.verify(folder, [p256[1]]).files == ("__0_0.distcp",)


# --------------------------------------------------------------------------
# The signing writer, in one process (no_dist)

#: ``b`` is 8 MB: hashed through a memory map of the page cache as it is written.
STATE = {"w": torch.arange(6.0), "b": torch.ones(2_000_000), "step": {"epoch": 2}}


def _zeros() -> dict[str, Any]:
    return {"w": torch.zeros(6), "b": torch.zeros(2_000_000), "step": {"epoch": 0}}


def test_the_writer_signs_the_bundle_that_modelsign_sign_writes(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    folder = tmp_path / "a" / "ckpt"
    writer = SigningFileSystemWriter(folder, keypair[0])
    dcp.save(STATE, storage_writer=writer, no_dist=True)
    assert writer.signed is not None
    assert writer.signed.signature == folder / "model.sig"
    assert sorted(os.listdir(folder)) == [".metadata", "__0_0.distcp", "model.sig"]
    assert modelsign.verify(folder, [keypair[1]]).files == (".metadata", "__0_0.distcp")
    copy = tmp_path / "b" / "ckpt"
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("model.sig"))
    modelsign.sign(copy, keypair[0])
    assert _payload(folder / "model.sig") == _payload(copy / "model.sig")
    if keypair[0].name.startswith("ecdsa"):
        _reference_verify(folder, keypair[1])


def test_several_writer_threads_of_a_rank_each_hash_their_file(
    tmp_path: Path, p256: tuple[Path, Path]
) -> None:
    folder = tmp_path / "ckpt"
    writer = SigningFileSystemWriter(folder, p256[0], thread_count=2)
    dcp.save(STATE, storage_writer=writer, no_dist=True)
    verified = modelsign.verify(folder, [p256[1]])
    assert verified.files == (".metadata", "__0_0.distcp", "__0_1.distcp")


def test_the_writer_refuses_to_sign_a_folder_holding_files_it_did_not_write(
    tmp_path: Path, p256: tuple[Path, Path]
) -> None:
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "notes.txt").write_text("left from before")
    with pytest.raises(CheckpointException) as failed:
        dcp.save(STATE, storage_writer=SigningFileSystemWriter(folder, p256[0]), no_dist=True)
    ((error, _),) = failed.value.failures.values()
    assert isinstance(error, UnsafeModelError)
    assert "notes.txt was not written by this save" in str(error)
    assert str(folder) in str(error)
    assert not (folder / "model.sig").exists()


def test_an_old_bundle_is_gone_before_a_new_save_writes(
    tmp_path: Path, p256: tuple[Path, Path]
) -> None:
    folder = tmp_path / "ckpt"
    dcp.save(STATE, storage_writer=SigningFileSystemWriter(folder, p256[0]), no_dist=True)
    assert (folder / "model.sig").is_file()

    class Failing(dcp.DefaultSavePlanner):
        def resolve_data(self, write_item: Any) -> Any:
            raise RuntimeError("the training job stops here")

    with pytest.raises(CheckpointException, match="the training job stops here"):
        dcp.save(
            STATE,
            storage_writer=SigningFileSystemWriter(folder, p256[0]),
            planner=Failing(),
            no_dist=True,
        )
    assert not (folder / "model.sig").exists()
    with pytest.raises(MissingSignatureError):
        modelsign.verify(folder, [p256[1]])


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"_extensions": [object()]}, "_extensions"),
        ({"serialization_format": SerializationFormat.SAFETENSORS}, "serialization_format"),
        ({"hash_type": "md5"}, None),
    ],
)
def test_the_writer_refuses_what_it_cannot_sign(
    tmp_path: Path, p256: tuple[Path, Path], kwargs: dict[str, Any], parameter: str | None
) -> None:
    with pytest.raises(UsageError) as refused:
        SigningFileSystemWriter(tmp_path / "ckpt", p256[0], **kwargs)
    assert refused.value.parameter == parameter or parameter is None


def test_the_writer_refuses_saving_without_a_coordinator(
    tmp_path: Path, p256: tuple[Path, Path]
) -> None:
    writer = SigningFileSystemWriter(tmp_path / "ckpt", p256[0])
    with pytest.raises(UsageError, match="use_collectives=False"):
        dcp.save(STATE, storage_writer=writer, no_dist=True, use_collectives=False)
    with pytest.raises(UsageError, match="cannot be sent to another"):
        pickle.dumps(writer)


# --------------------------------------------------------------------------
# The hook, in one process (no_dist)


def _plain_checkpoint(folder: Path) -> Path:
    dcp.save(STATE, storage_writer=dcp.FileSystemWriter(folder), no_dist=True)
    return folder


class _Payload:
    """Unpickling it creates a file: proof that a pickle ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (Path.touch, (self.marker,))


def test_an_unsigned_or_tampered_metadata_is_refused_before_it_is_unpickled(
    tmp_path: Path, p256: tuple[Path, Path]
) -> None:
    marker = tmp_path / "payload-ran"
    unsigned = _plain_checkpoint(tmp_path / "unsigned")
    (unsigned / ".metadata").write_bytes(pickle.dumps(_Payload(marker)))
    signed = tmp_path / "signed"
    dcp.save(STATE, storage_writer=SigningFileSystemWriter(signed, p256[0]), no_dist=True)
    (signed / ".metadata").write_bytes(pickle.dumps(_Payload(marker)))
    with hooks.enforce(Policy.of([p256[1]])):
        with pytest.raises(UnsignedFileError, match=f"refused to load {unsigned}/.metadata: "):
            dcp.load(_zeros(), checkpoint_id=unsigned, no_dist=True)
        with pytest.raises(
            FileDigestMismatchError, match=f"refused to load {signed}/.metadata: digest mismatch"
        ):
            dcp.load(_zeros(), checkpoint_id=signed, no_dist=True)
        # A reader given directly is checked the same way.
        reader = dcp.FileSystemReader(signed)
        with pytest.raises(FileDigestMismatchError, match=f"{signed}/.metadata"):
            dcp.load(_zeros(), storage_reader=reader, no_dist=True)
    assert not marker.exists()


def test_a_signed_checkpoint_loads_unchanged_under_enforcement(
    tmp_path: Path, p256: tuple[Path, Path]
) -> None:
    folder = tmp_path / "ckpt"
    dcp.save(STATE, storage_writer=SigningFileSystemWriter(folder, p256[0]), no_dist=True)
    target = _zeros()
    with hooks.enforce(Policy.of([p256[1]])):
        dcp.load(target, checkpoint_id=folder, no_dist=True)
        flipped = folder / "__0_0.distcp"
        data = bytearray(flipped.read_bytes())
        data[len(data) - 1_000_000] ^= 1  # in the large tensor
        flipped.write_bytes(bytes(data))
        with pytest.raises(FileDigestMismatchError, match=f"refused to load {flipped}: digest"):
            dcp.load(_zeros(), checkpoint_id=folder, no_dist=True)
    assert torch.equal(target["w"], STATE["w"])
    assert torch.equal(target["b"], STATE["b"])
    assert target["step"] == STATE["step"]


def test_a_signed_distcp_with_bytes_between_its_archives_is_refused_at_load(
    tmp_path: Path, p256: tuple[Path, Path]
) -> None:
    """A bundle that vouches for such a file (not one modelsign signs) does
    not make it loadable: the hook checks the archives too."""
    folder = _plain_checkpoint(tmp_path / "ckpt")
    distcp = folder / "__0_0.distcp"
    data = distcp.read_bytes()
    end = data.index(b"PK\x05\x06") + 22  # the end of the first archive
    distcp.write_bytes(data[:end] + b"\x00" * 3 + data[end:])
    _sign_unchecked(folder, p256[0])
    with (
        hooks.enforce(Policy.of([p256[1]])),
        pytest.raises(UnsafeLoadError, match=rf"refused to load {distcp}: .*3 bytes between"),
    ):
        dcp.load(_zeros(), checkpoint_id=folder, no_dist=True)


def test_metadata_pointing_outside_the_archives_is_refused(
    tmp_path: Path, p256: tuple[Path, Path]
) -> None:
    """torch.load reads the range .metadata names: it must be one of the
    archives that were checked, not a part of one or two of them."""
    folder = _plain_checkpoint(tmp_path / "ckpt")
    metadata = _metadata(folder)
    infos = sorted(metadata.storage_data.values(), key=lambda i: i.offset)
    first, second = infos[0], infos[1]
    first.length += second.length  # two archives as one
    with open(folder / ".metadata", "wb") as f:
        pickle.dump(metadata, f)
    modelsign.sign(folder, p256[0])
    distcp = folder / first.relative_path
    with (
        hooks.enforce(Policy.of([p256[1]])),
        pytest.raises(
            UnsafeLoadError,
            match=rf"refused to load {distcp}: .* the bytes \[{first.offset}, "
            rf"{first.offset + first.length}\), which are not one of the archives",
        ),
    ):
        dcp.load(_zeros(), checkpoint_id=folder, no_dist=True)


def test_a_reader_that_is_not_an_entry_point_is_refused(
    tmp_path: Path, p256: tuple[Path, Path]
) -> None:
    """fsspec's reader opens files its own way: its tensor reads are bytes no
    bundle lists, even for a signed checkpoint (fail closed)."""
    from torch.distributed.checkpoint._fsspec_filesystem import FsspecReader

    folder = tmp_path / "ckpt"
    dcp.save(STATE, storage_writer=SigningFileSystemWriter(folder, p256[0]), no_dist=True)
    reader = FsspecReader(f"file://{folder}")
    with (
        hooks.enforce(Policy.of([p256[1]])),
        pytest.raises(UnsignedFileError, match="_ReaderView"),
    ):
        dcp.load(_zeros(), storage_reader=reader, no_dist=True)


def test_dcp_collectives_may_carry_plans_and_nothing_more(p256: tuple[Path, Path]) -> None:
    """What torch.distributed's object collectives unpickle (their own
    function): DCP's plans and the failures of other ranks pass, code does
    not, and the same plan through plain pickle.loads is still refused."""
    from torch.distributed.checkpoint.metadata import MetadataIndex
    from torch.distributed.checkpoint.planner import LoadItemType, LoadPlan, ReadItem
    from torch.distributed.distributed_c10d import _object_to_tensor, _tensor_to_object

    item = ReadItem(
        LoadItemType.TENSOR, MetadataIndex("w"), torch.Size([0]), MetadataIndex("w"),
        torch.Size([0]), torch.Size([6]),
    )  # fmt: skip
    plan = LoadPlan([item])
    failure = (UnsignedFileError("x", target="t", policy="p"), None)
    # A release-trust refusal on another rank is a class of its own module.
    revoked = (SignerRevokedLoadError("m.pt: revoked", target="m.pt", policy="p"), None)
    evil = _Payload(Path("/nonexistent/modelsign-payload"))
    with hooks.enforce(Policy.of([p256[1]])):
        for value in (plan, failure, revoked):
            tensor, size = _object_to_tensor(value, torch.device("cpu"), None)
            back = _tensor_to_object(tensor, size, None)
            assert type(back) is type(value)
            if isinstance(value, tuple):
                assert type(back[0]) is type(value[0])
                assert str(back[0]) == str(value[0])
        tensor, size = _object_to_tensor(evil, torch.device("cpu"), None)
        with pytest.raises(ForbiddenGlobalError, match="pathlib.Path.touch|pathlib.Path"):
            _tensor_to_object(tensor, size, None)
        with pytest.raises(ForbiddenGlobalError, match="torch.distributed.checkpoint.planner"):
            pickle.loads(pickle.dumps(plan))


# --------------------------------------------------------------------------
# Real process groups


def _ok(results: list[list[dict[str, Any]]], step: int, workdir: Path) -> None:
    for rank, records in enumerate(results):
        assert len(records) > step, f"rank {rank} stopped early\n{dcpkit.logs(workdir)}"
        assert records[step]["ok"], f"rank {rank}: {records[step]}\n{dcpkit.logs(workdir)}"


def _refused(
    results: list[list[dict[str, Any]]], step: int, kind: str, file: Path, workdir: Path
) -> None:
    """Every rank's step failed with ``kind``, naming ``file``."""
    for rank, records in enumerate(results):
        record = records[step]
        assert not record["ok"], f"rank {rank} loaded it\n{dcpkit.logs(workdir)}"
        error = record["error"]
        assert error["type"] == kind, f"rank {rank}: {error}"
        assert f"refused to load {file}: " in error["message"], error["message"]


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))


def test_two_ranks_save_signed_checkpoints_that_load_on_every_rank(
    tmp_path: Path, p256: tuple[Path, Path], policy: Path
) -> None:
    key = str(p256[0])
    signed, async_signed, plain = tmp_path / "signed", tmp_path / "async", tmp_path / "plain"
    workdir = tmp_path / "save"
    results = dcpkit.run(
        2,
        [
            {"step": "save", "path": str(signed), "key": key},
            {"step": "save", "path": str(async_signed), "key": key, "async": True},
            {"step": "save", "path": str(plain), "key": None},
        ],
        workdir,
    )
    for step in range(3):
        _ok(results, step, workdir)
    assert [r[1]["signed_when_done"] for r in results] == [True, True]
    for folder in (signed, async_signed):
        verified = modelsign.verify(folder, [p256[1]])
        assert verified.files == (".metadata", "__0_0.distcp", "__1_0.distcp")
        _reference_verify(folder, p256[1])
        copy = tmp_path / "copy" / folder.name
        shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("model.sig"))
        modelsign.sign(copy, p256[0])
        assert _payload(folder / "model.sig") == _payload(copy / "model.sig")
    # Every rank wrote several torch archives into its file: what
    # `modelsign sign DIR` refused before (a zip64 locator "at offset 1479").
    for resource in modelsign.inspect_bundle(signed).manifest.resources:
        if resource.name.endswith(".distcp"):
            assert len({m.name.split("/")[0] for m in resource.members}) >= 3
    unsigned = tmp_path / "unsigned"
    shutil.copytree(plain, unsigned)
    signed_by_cli = _cli("sign", plain, "--key", p256[0])
    assert signed_by_cli.returncode == 0, signed_by_cli.stderr
    tampered_metadata, tampered_distcp = tmp_path / "t-meta", tmp_path / "t-distcp"
    shutil.copytree(signed, tampered_metadata)
    shutil.copytree(signed, tampered_distcp)
    _flip(tampered_metadata / ".metadata")
    _flip(tampered_distcp / "__1_0.distcp")

    workdir = tmp_path / "load"
    results = dcpkit.run(
        2,
        [
            {"step": "load", "path": str(signed), "policy": str(policy)},
            {"step": "load", "path": str(async_signed), "policy": str(policy)},
            {"step": "load", "path": str(plain), "policy": str(policy)},
            {"step": "load", "path": str(tampered_metadata), "policy": str(policy)},
            {"step": "load", "path": str(tampered_distcp), "policy": str(policy)},
            {"step": "load", "path": str(unsigned), "policy": str(policy)},
        ],
        workdir,
    )
    for step in range(3):
        _ok(results, step, workdir)
        assert [r[step]["equal"] for r in results] == [True, True]
    _refused(results, 3, "FileDigestMismatchError", tampered_metadata / ".metadata", workdir)
    _refused(results, 4, "FileDigestMismatchError", tampered_distcp / "__1_0.distcp", workdir)
    _refused(results, 5, "UnsignedFileError", unsigned / ".metadata", workdir)


def test_four_ranks_save_and_load_and_a_tampered_file_is_refused_on_every_rank(
    tmp_path: Path, p256: tuple[Path, Path], policy: Path
) -> None:
    key = str(p256[0])
    first, second = tmp_path / "step-1", tmp_path / "step-2"
    workdir = tmp_path / "run"
    results = dcpkit.run(
        4,
        [
            {"step": "save", "path": str(first), "key": key},
            {"step": "load", "path": str(first), "policy": str(policy)},
            {"step": "save", "path": str(second), "key": key, "async": True},
            {"step": "flip", "file": str(second / "__2_0.distcp")},
            {"step": "load", "path": str(second), "policy": str(policy)},
        ],
        workdir,
    )
    for step in range(4):
        _ok(results, step, workdir)
    assert [r[1]["equal"] for r in results] == [True] * 4
    assert [r[2]["signed_when_done"] for r in results] == [True] * 4
    _refused(results, 4, "FileDigestMismatchError", second / "__2_0.distcp", workdir)
    assert modelsign.verify(first, [p256[1]]).files == (
        ".metadata",
        *(f"__{r}_0.distcp" for r in range(4)),
    )
    _reference_verify(first, p256[1])
    with pytest.raises(modelsign.VerificationError, match="__2_0.distcp"):
        modelsign.verify(second, [p256[1]])


def test_a_rank_that_dies_during_the_save_leaves_no_bundle(
    tmp_path: Path, p256: tuple[Path, Path]
) -> None:
    """The folder held a signed checkpoint; a new save into it dies halfway:
    no bundle vouches for what is there now."""
    key = str(p256[0])
    folder = tmp_path / "ckpt"
    workdir = tmp_path / "run"
    results = dcpkit.run(
        2,
        [
            {"step": "save", "path": str(folder), "key": key},
            {"step": "save", "path": str(folder), "key": key, "crash_rank": 1},
        ],
        workdir,
    )
    _ok(results, 0, workdir)
    assert len(results[1]) == 1, "rank 1 was to die in its second save"
    assert not results[0][1]["ok"], dcpkit.logs(workdir)
    assert not (folder / "model.sig").exists()
    with pytest.raises(MissingSignatureError):
        modelsign.verify(folder, [p256[1]])
