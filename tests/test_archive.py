"""modelsign._archive: zip/tar detection, member listing, and refusal of ambiguous archives.

Every hostile archive is built here from a benign one, either written by zipfile /
tarfile and then patched at known header offsets, or written by hand with struct.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import pickle
import re
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelsign._archive import Layout, Member, inspect, member_digest
from modelsign.errors import UnsafeArchiveError
from tests.zipkit import (
    CD_CRC,
    CD_EXTERNAL,
    CD_FLAGS,
    CD_MADE_BY,
    CD_METHOD,
    CD_OFFSET,
    CD_USIZE,
    EOCD_CD_OFFSET,
    EOCD_CD_SIZE,
    EOCD_ON_DISK,
    LH_CRC,
    LH_CSIZE,
    LH_FLAGS,
    LH_METHOD,
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

NAME = "model.bin"
MB = 1024 * 1024


# --------------------------------------------------------------------------
# Helpers.


def check(tmp_path: Path, data: bytes) -> Layout | None:
    """inspect() on a real file holding ``data``."""
    path = tmp_path / NAME
    path.write_bytes(data)
    with path.open("rb") as f:
        return inspect(f, len(data), NAME)


def digests(tmp_path: Path, data: bytes, max_bytes: int = 64 * MB) -> dict[str, str]:
    """sha256 of every member of the archive in ``data``, via member_digest."""
    path = tmp_path / NAME
    path.write_bytes(data)
    with path.open("rb") as f:
        layout = inspect(f, len(data), NAME)
        assert layout is not None
        return {
            m.name: member_digest(f, layout, m, hashlib.sha256, NAME, max_bytes)
            for m in layout.members
        }


def refused(name: str) -> str:
    """A match pattern: the message names the file and the member (with repr)."""
    return f"{re.escape(NAME)}.*{re.escape(repr(name))}"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def shift(data: bytes, prefix: bytes) -> bytes:
    """``prefix + data`` with every offset rewritten, as a careful polyglot author would."""
    out = bytearray(data)
    for entry in central_entries(data):
        (offset,) = struct.unpack_from("<L", out, entry + CD_OFFSET)
        struct.pack_into("<L", out, entry + CD_OFFSET, offset + len(prefix))
    end = eocd(out)
    (offset,) = struct.unpack_from("<L", out, end + EOCD_CD_OFFSET)
    struct.pack_into("<L", out, end + EOCD_CD_OFFSET, offset + len(prefix))
    return prefix + bytes(out)


def zip64_by_hand(members: list[tuple[bytes, bytes]]) -> bytes:
    """A zip whose sizes and offsets all live in zip64 extra fields and a zip64 end record."""
    out = bytearray()
    central = bytearray()
    for name, data in members:
        offset, crc = len(out), zlib.crc32(data)
        extra = struct.pack("<HHQQ", 1, 16, len(data), len(data))
        out += struct.pack(
            "<4s5H3L2H", b"PK\x03\x04", 45, 0, 0, 0, 0, crc, 2**32 - 1, 2**32 - 1, len(name), 20
        )
        out += name + extra + data
        extra = struct.pack("<HHQQQ", 1, 24, len(data), len(data), offset)
        central += struct.pack(
            "<4s6H3L5H2L",
            b"PK\x01\x02",
            45,
            45,
            0,
            0,
            0,
            0,
            crc,
            2**32 - 1,
            2**32 - 1,
            len(name),
            len(extra),
            0,
            0,
            0,
            0,
            2**32 - 1,
        )
        central += name + extra
    cd_offset = len(out)
    out += central
    record = len(out)
    n = len(members)
    out += struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, n, n, len(central), cd_offset)
    out += struct.pack("<4sLQL", b"PK\x06\x07", 0, record, 1)
    out += struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 2**32 - 1, 2**32 - 1, 0)
    return bytes(out)


BENIGN = [("a.bin", b"alpha" * 10), ("b.bin", b"bravo" * 10)]


# --------------------------------------------------------------------------
# Real model files.


def test_torch_file_is_a_zip_whose_stored_ranges_hash_to_member_digest(tmp_path: Path) -> None:
    import torch

    path = tmp_path / "model.pt"
    torch.save({"w": torch.arange(10)}, path)
    data = path.read_bytes()
    with path.open("rb") as f:
        layout = inspect(f, len(data), NAME)
        assert layout is not None
        assert layout.kind == "zip"
        names = [m.name for m in layout.members]
        for suffix in ("data.pkl", "data/0", "version"):
            assert any(n.endswith(suffix) for n in names), (suffix, names)
        with zipfile.ZipFile(path) as z:
            assert names == z.namelist()
            for m in layout.members:
                assert m.compression == "stored"
                assert m.data_range is not None
                start, end = m.data_range
                content = data[start:end]
                assert content == z.read(m.name)
                assert len(content) == m.size
                assert member_digest(f, layout, m, hashlib.sha256, NAME, MB) == sha(content)


def test_numpy_savez_compressed_members_digest_to_their_content(tmp_path: Path) -> None:
    import numpy as np

    path = tmp_path / "arrays.npz"
    np.savez_compressed(path, a=np.arange(1000), b=np.zeros((50, 50)))
    data = path.read_bytes()
    with zipfile.ZipFile(path) as z:
        expected = {name: sha(z.read(name)) for name in z.namelist()}
    layout = check(tmp_path, data)
    assert layout is not None
    assert [(m.name, m.compression, m.data_range) for m in layout.members] == [
        ("a.npy", "deflate", None),
        ("b.npy", "deflate", None),
    ]
    assert digests(tmp_path, data) == expected


@pytest.mark.parametrize(
    "compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA]
)
def test_every_supported_compression_digests_to_the_content(
    tmp_path: Path, compression: int
) -> None:
    content = bytes(range(256)) * 500
    data = make_zip([("m/weights.bin", content), ("m/empty", b"")], compression)
    assert digests(tmp_path, data) == {"m/weights.bin": sha(content), "m/empty": sha(b"")}


def test_zipfile_force_zip64_member(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        with z.open("big.bin", "w", force_zip64=True) as w:
            w.write(b"x" * 1000)
        z.writestr("small.bin", b"y")
    data = buf.getvalue()
    assert data.count(b"\x01\x00\x10\x00") >= 1  # a zip64 extra block in the local header
    assert digests(tmp_path, data) == {"big.bin": sha(b"x" * 1000), "small.bin": sha(b"y")}


def test_zip64_extra_fields_and_end_record(tmp_path: Path) -> None:
    data = zip64_by_hand([(b"a.bin", b"A" * 100), (b"b.bin", b"B" * 7)])
    with zipfile.ZipFile(io.BytesIO(data)) as z:  # the builder writes what zipfile reads
        assert z.read("b.bin") == b"B" * 7
    layout = check(tmp_path, data)
    assert layout is not None
    assert [(m.name, m.size) for m in layout.members] == [("a.bin", 100), ("b.bin", 7)]
    assert digests(tmp_path, data) == {"a.bin": sha(b"A" * 100), "b.bin": sha(b"B" * 7)}


def test_data_descriptors_from_a_streamed_zip(tmp_path: Path) -> None:
    class Unseekable:
        """A pipe-like sink: zipfile then writes data descriptors after each member."""

        def __init__(self) -> None:
            self.data = bytearray()

        def write(self, b: bytes) -> int:
            self.data += b
            return len(b)

        def tell(self) -> int:
            raise OSError("not seekable")

        def flush(self) -> None:
            pass

        def close(self) -> None:
            pass

    sink = Unseekable()
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("a.bin", b"a" * 3000)
        z.writestr("b.bin", b"b")
    data = bytes(sink.data)
    assert b"PK\x07\x08" in data
    assert digests(tmp_path, data) == {"a.bin": sha(b"a" * 3000), "b.bin": sha(b"b")}


def test_directory_entries_are_not_members(tmp_path: Path) -> None:
    layout = check(tmp_path, make_zip([("d/", b""), ("d/x", b"1")]))
    assert layout is not None
    assert [m.name for m in layout.members] == ["d/x"]


def test_member_digest_works_for_a_member_built_by_the_caller(tmp_path: Path) -> None:
    data = make_zip([("a.bin", b"a" * 100)], zipfile.ZIP_DEFLATED)
    path = tmp_path / NAME
    path.write_bytes(data)
    with path.open("rb") as f:
        layout = inspect(f, len(data), NAME)
        assert layout is not None
        copy = Member("a.bin", 100, None, "deflate")
        assert member_digest(f, layout, copy, hashlib.sha256, NAME, MB) == sha(b"a" * 100)
        ghost = Member("ghost.bin", 100, None, "deflate")
        with pytest.raises(UnsafeArchiveError, match=refused("ghost.bin")):
            member_digest(f, layout, ghost, hashlib.sha256, NAME, MB)


# --------------------------------------------------------------------------
# Not archives.


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(pickle.dumps({"w": list(range(100))}), id="pickle"),
        pytest.param(b"hello world\n" * 1000, id="text"),
        pytest.param(struct.pack("<Q", 2) + b"{}" + b"\0" * 5000, id="safetensors-like"),
        pytest.param(b"\x93NUMPY\x01\x00" + b"\0" * 600, id="npy"),
        # A stray end-record signature inside tensor data is not a zip.
        pytest.param(b"\x01" * 5000 + b"PK\x05\x06" + b"\x07" * 100, id="stray-eocd"),
    ],
)
def test_non_archives_are_none(tmp_path: Path, data: bytes) -> None:
    assert check(tmp_path, data) is None


# --------------------------------------------------------------------------
# Hostile zips: names.


@pytest.mark.parametrize(
    "new",
    [
        pytest.param("../evil", id="dotdot"),
        pytest.param("/abs", id="absolute"),
        pytest.param("C:evil", id="drive-letter"),
        pytest.param("a\\evil", id="backslash"),
        pytest.param("a\0evil", id="nul"),
        pytest.param("a/./b", id="dot-component"),
        pytest.param("a//b", id="empty-component"),
        pytest.param("a/../b", id="inner-dotdot"),
    ],
)
def test_unsafe_zip_names(tmp_path: Path, new: str) -> None:
    old = "b" * len(new)  # written by zipfile, then renamed in place
    data = rename(make_zip([("a.bin", b"1"), (old, b"2")]), old, new)
    with pytest.raises(UnsafeArchiveError, match=refused(new)):
        check(tmp_path, data)


def test_duplicate_names(tmp_path: Path) -> None:
    data = make_zip([("data.pkl", b"first"), ("data.pkl", b"second")])
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert z.read("data.pkl") == b"second"  # zipfile takes the last copy
    with pytest.raises(UnsafeArchiveError, match=rf"{NAME}: duplicate member name 'data\.pkl'"):
        check(tmp_path, data)


def test_case_insensitive_collision(tmp_path: Path) -> None:
    data = make_zip([("data.pkl", b"1"), ("DATA.pkl", b"2")])
    with pytest.raises(UnsafeArchiveError, match=refused("DATA.pkl")):
        check(tmp_path, data)


def test_file_used_as_directory(tmp_path: Path) -> None:
    data = make_zip([("data", b"1"), ("data/0", b"2")])
    with pytest.raises(UnsafeArchiveError, match=refused("data/0")):
        check(tmp_path, data)


def test_invalid_utf8_name(tmp_path: Path) -> None:
    data = make_zip([("\u00e9t\u00e9", b"1")])  # non-ASCII: zipfile sets the UTF-8 flag
    data = data.replace("\u00e9t\u00e9".encode(), b"\xff\xfet\xc3\xa9")
    with pytest.raises(UnsafeArchiveError, match=rf"{NAME}: .*is flagged as UTF-8 but is not"):
        check(tmp_path, data)


# --------------------------------------------------------------------------
# Hostile zips: local headers disagreeing with the central directory.


def test_local_header_name_differs(tmp_path: Path) -> None:
    data = rename(make_zip(BENIGN), "b.bin", "x.bin", count=1)  # local header only
    with zipfile.ZipFile(io.BytesIO(data)) as z, pytest.raises(zipfile.BadZipFile):
        z.read("b.bin")
    with pytest.raises(UnsafeArchiveError, match=refused("b.bin") + ".*'x.bin'"):
        check(tmp_path, data)


@pytest.mark.parametrize("field", [LH_CSIZE, LH_USIZE])
def test_local_header_size_differs(tmp_path: Path, field: int) -> None:
    data = make_zip(BENIGN)
    data = patch(data, local_header(data, 1) + field, "<L", 51)
    with pytest.raises(UnsafeArchiveError, match=refused("b.bin") + ".*size is 51.*says 50"):
        check(tmp_path, data)


def test_local_header_method_differs(tmp_path: Path) -> None:
    data = make_zip(BENIGN)
    data = patch(data, local_header(data, 0) + LH_METHOD, "<H", 8)
    with pytest.raises(UnsafeArchiveError, match=refused("a.bin") + ".*method is 8"):
        check(tmp_path, data)


def test_local_header_crc_differs(tmp_path: Path) -> None:
    data = make_zip(BENIGN)
    data = patch(data, local_header(data, 0) + LH_CRC, "<L", 1234)
    with pytest.raises(UnsafeArchiveError, match=refused("a.bin") + ".*CRC-32 is 1234"):
        check(tmp_path, data)


def test_local_header_offset_outside_the_file(tmp_path: Path) -> None:
    data = make_zip(BENIGN)
    data = patch(data, central_entries(data)[1] + CD_OFFSET, "<L", 10**6)
    with pytest.raises(UnsafeArchiveError, match=refused("b.bin") + ".*outside the file"):
        check(tmp_path, data)


def test_no_local_header_where_the_directory_points(tmp_path: Path) -> None:
    data = make_zip(BENIGN)
    data = patch(data, central_entries(data)[1] + CD_OFFSET, "<L", 40)
    with pytest.raises(UnsafeArchiveError, match=refused("b.bin")):
        check(tmp_path, data)


# --------------------------------------------------------------------------
# Hostile zips: the end record and the layout of the file.


@pytest.mark.parametrize(("on_disk", "total"), [(3, 3), (2, 3), (3, 2), (1, 1)])
def test_end_record_entry_count_mismatch(tmp_path: Path, on_disk: int, total: int) -> None:
    data = make_zip(BENIGN)
    data = patch(data, eocd(data) + EOCD_ON_DISK, "<HH", on_disk, total)
    with pytest.raises(UnsafeArchiveError, match=rf"{NAME}.*\b{max(on_disk, total)}\b.*holds 2"):
        check(tmp_path, data)


def test_too_many_entries(tmp_path: Path) -> None:
    data = zip64_by_hand([(b"a.bin", b"A")])
    # Patch the zip64 end record's counts, 56 + 20 + 22 bytes from the end.
    data = patch(data, len(data) - 98 + 24, "<QQ", 1_000_001, 1_000_001)
    with pytest.raises(UnsafeArchiveError, match="1000001 entries, more than the limit"):
        check(tmp_path, data)


def test_central_directory_offset_wrong(tmp_path: Path) -> None:
    data = make_zip(BENIGN)
    (offset,) = struct.unpack_from("<L", data, eocd(data) + EOCD_CD_OFFSET)
    data = patch(data, eocd(data) + EOCD_CD_OFFSET, "<L", offset + 1)
    with pytest.raises(UnsafeArchiveError, match=refused("a.bin") + ".*but it is at offset"):
        check(tmp_path, data)


def test_central_directory_size_past_the_file(tmp_path: Path) -> None:
    data = make_zip(BENIGN)
    data = patch(data, eocd(data) + EOCD_CD_SIZE, "<L", 10**6)
    with pytest.raises(UnsafeArchiveError, match=rf"{NAME}.*central directory"):
        check(tmp_path, data)


def test_end_record_comment_longer_than_the_file(tmp_path: Path) -> None:
    data = make_zip(BENIGN)
    data = patch(data, eocd(data) + 20, "<H", 100)
    with pytest.raises(UnsafeArchiveError, match=rf"{NAME}: truncated zip.*100-byte comment"):
        check(tmp_path, data)


def test_an_archive_comment_is_fine(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.bin", b"1")
        z.comment = b"made by a test"
    layout = check(tmp_path, buf.getvalue())
    assert layout is not None
    assert [m.name for m in layout.members] == ["a.bin"]


def test_trailing_bytes_after_the_end_record(tmp_path: Path) -> None:
    with pytest.raises(UnsafeArchiveError, match=rf"{NAME}: 5 bytes of trailing data"):
        check(tmp_path, make_zip(BENIGN) + b"extra")


def test_pickle_prepended_to_a_zip(tmp_path: Path) -> None:
    data = pickle.dumps({"payload": 1}) + make_zip(BENIGN)
    with zipfile.ZipFile(io.BytesIO(data)) as z:  # zipfile happily opens the polyglot
        assert z.namelist() == ["a.bin", "b.bin"]
    with pytest.raises(UnsafeArchiveError, match=refused("a.bin") + ".*bytes precede"):
        check(tmp_path, data)


def test_pickle_prepended_with_offsets_rewritten(tmp_path: Path) -> None:
    prefix = pickle.dumps({"payload": 1})
    data = shift(make_zip(BENIGN), prefix)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert z.read("a.bin") == b"alpha" * 10
    with pytest.raises(UnsafeArchiveError, match=refused("a.bin") + f".*{len(prefix)}, expected 0"):
        check(tmp_path, data)


def test_two_entries_share_one_local_header(tmp_path: Path) -> None:
    data = make_zip([("a.bin", b"12345"), ("b.bin", b"12345")])
    data = patch(data, central_entries(data)[1] + CD_OFFSET, "<L", 0)
    with pytest.raises(UnsafeArchiveError, match=r"members 'a\.bin' and 'b\.bin' overlap"):
        check(tmp_path, data)


def test_member_hidden_inside_another_members_data(tmp_path: Path) -> None:
    # b's complete local header and data, stored as the content of a: two names
    # for overlapping bytes (the construction of overlapping zip bombs).
    inner = make_zip([("b.bin", b"payload")])
    inner = inner[: local_header(inner, 0) + 30 + 5 + 7]
    data = make_zip([("a.bin", inner), ("b.bin", b"payload")])
    data = patch(data, central_entries(data)[1] + CD_OFFSET, "<L", 30 + 5)
    with pytest.raises(UnsafeArchiveError, match=r"members 'a\.bin' and 'b\.bin' overlap"):
        check(tmp_path, data)


def test_unaccounted_bytes_between_members(tmp_path: Path) -> None:
    data = make_zip(BENIGN)
    start = local_header(data, 1)
    data = data[:start] + b"HIDDEN" + data[start:]
    (offset,) = struct.unpack_from("<L", data, eocd(data) + EOCD_CD_OFFSET)
    data = patch(data, eocd(data) + EOCD_CD_OFFSET, "<L", offset + 6)
    data = patch(data, central_entries(data)[1] + CD_OFFSET, "<L", start + 6)
    with pytest.raises(
        UnsafeArchiveError, match=rf"{NAME}: 6 unaccounted bytes after member 'a\.bin'"
    ):
        check(tmp_path, data)


def test_encrypted_member(tmp_path: Path) -> None:
    data = make_zip(BENIGN)
    data = patch(data, central_entries(data)[1] + CD_FLAGS, "<H", 1)
    data = patch(data, local_header(data, 1) + LH_FLAGS, "<H", 1)
    with pytest.raises(UnsafeArchiveError, match=refused("b.bin") + ".*encrypted"):
        check(tmp_path, data)


def test_unsupported_compression_method(tmp_path: Path) -> None:
    data = make_zip(BENIGN)
    data = patch(data, central_entries(data)[0] + CD_METHOD, "<H", 93)  # zstd
    with pytest.raises(UnsafeArchiveError, match=refused("a.bin") + ".*method 93"):
        check(tmp_path, data)


def test_unix_symlink_entry(tmp_path: Path) -> None:
    data = make_zip(BENIGN)
    entry = central_entries(data)[0]
    data = patch(data, entry + CD_MADE_BY, "<H", 3 << 8 | 20)
    data = patch(data, entry + CD_EXTERNAL, "<L", 0o120777 << 16)
    with pytest.raises(UnsafeArchiveError, match=refused("a.bin") + ".*symlink"):
        check(tmp_path, data)


def test_truncated_zip_is_refused_not_ignored(tmp_path: Path) -> None:
    # Decision: a file starting with PK\x03\x04 is a zip to torch.load and
    # numpy.load, so one without an end record is refused rather than passed
    # on as "not an archive".
    data = make_zip([("a.bin", bytes(1000)), ("b.bin", bytes(1000))])
    with pytest.raises(UnsafeArchiveError, match=rf"{NAME}: starts with a zip signature"):
        check(tmp_path, data[: len(data) // 2])


def test_zip_missing_its_last_bytes(tmp_path: Path) -> None:
    data = make_zip(BENIGN)
    with pytest.raises(UnsafeArchiveError, match=NAME):
        check(tmp_path, data[:-3])


# --------------------------------------------------------------------------
# Inflating: zip bombs, lying sizes, CRC.


def test_zip_bomb_refused_by_max_bytes(tmp_path: Path) -> None:
    data = make_zip([("zeros.bin", bytes(10 * MB))], zipfile.ZIP_DEFLATED)
    assert len(data) < 100_000
    with pytest.raises(UnsafeArchiveError, match=refused("zeros.bin") + ".*more than the limit"):
        digests(tmp_path, data, max_bytes=MB)


def test_member_inflating_past_its_declared_size(tmp_path: Path) -> None:
    data = make_zip([("zeros.bin", bytes(10 * MB))], zipfile.ZIP_DEFLATED)
    data = patch(data, central_entries(data)[0] + CD_USIZE, "<L", 1000)
    data = patch(data, local_header(data, 0) + LH_USIZE, "<L", 1000)
    layout = check(tmp_path, data)
    assert layout is not None
    assert layout.members[0].size == 1000
    with pytest.raises(UnsafeArchiveError, match=refused("zeros.bin") + ".*more than its declared"):
        digests(tmp_path, data)


def test_member_inflating_short_of_its_declared_size(tmp_path: Path) -> None:
    data = make_zip([("a.bin", bytes(1000))], zipfile.ZIP_DEFLATED)
    data = patch(data, central_entries(data)[0] + CD_USIZE, "<L", 2000)
    data = patch(data, local_header(data, 0) + LH_USIZE, "<L", 2000)
    with pytest.raises(UnsafeArchiveError, match=refused("a.bin") + ".*inflates to 1000 bytes"):
        digests(tmp_path, data)


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_crc_mismatch(tmp_path: Path, compression: int) -> None:
    data = make_zip([("a.bin", b"x" * 100)], compression)
    data = patch(data, central_entries(data)[0] + CD_CRC, "<L", 7)
    data = patch(data, local_header(data, 0) + LH_CRC, "<L", 7)
    with pytest.raises(UnsafeArchiveError, match=refused("a.bin") + ".*CRC-32"):
        digests(tmp_path, data)


def test_corrupt_deflate_stream(tmp_path: Path) -> None:
    data = make_zip([("a.bin", bytes(range(256)) * 40)], zipfile.ZIP_DEFLATED)
    start = local_header(data, 0) + 30 + 5
    data = data[:start] + b"\xff" * 8 + data[start + 8 :]
    with pytest.raises(UnsafeArchiveError, match=refused("a.bin")):
        digests(tmp_path, data)


# --------------------------------------------------------------------------
# Tar.


def test_tar_regular_files_are_listed_with_their_data(tmp_path: Path) -> None:
    data = make_tar(
        [
            tar_entry("model", tarfile.DIRTYPE),
            ("./model/weights.bin", b"w" * 1000),
            ("model/config.json", b"{}"),
        ]
    )
    layout = check(tmp_path, data)
    assert layout is not None
    assert layout.kind == "tar"
    assert [(m.name, m.size, m.compression) for m in layout.members] == [
        ("model/weights.bin", 1000, "stored"),
        ("model/config.json", 2, "stored"),
    ]
    for member, content in zip(layout.members, [b"w" * 1000, b"{}"], strict=True):
        assert member.data_range is not None
        assert data[member.data_range[0] : member.data_range[1]] == content
    assert digests(tmp_path, data) == {
        "model/weights.bin": sha(b"w" * 1000),
        "model/config.json": sha(b"{}"),
    }


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_tar_formats(tmp_path: Path, fmt: int) -> None:
    layout = check(tmp_path, make_tar([("a.bin", b"1")], fmt))
    assert layout is not None
    assert [m.name for m in layout.members] == ["a.bin"]


@pytest.mark.parametrize(
    ("entries", "name"),
    [
        pytest.param([("a.bin", b"1"), ("a.bin", b"2")], "a.bin", id="duplicate"),
        pytest.param([("a.bin", b"1"), ("./a.bin", b"2")], "a.bin", id="duplicate-dot-slash"),
        pytest.param([("a.bin", b"1"), ("A.BIN", b"2")], "A.BIN", id="case-collision"),
        pytest.param([("../evil", b"1")], "../evil", id="dotdot"),
        pytest.param([("/abs", b"1")], "/abs", id="absolute"),
        pytest.param([("a\\b", b"1")], "a\\b", id="backslash"),
        pytest.param([("C:x", b"1")], "C:x", id="drive-letter"),
        pytest.param([tar_entry("link", tarfile.SYMTYPE, linkname="/etc/passwd")], "link"),
        pytest.param([("a", b"1"), tar_entry("hard", tarfile.LNKTYPE, linkname="a")], "hard"),
        pytest.param([tar_entry("fifo", tarfile.FIFOTYPE)], "fifo"),
        pytest.param([tar_entry("chr", tarfile.CHRTYPE, devmajor=1, devminor=3)], "chr"),
        pytest.param([tar_entry("blk", tarfile.BLKTYPE, devmajor=8)], "blk"),
        pytest.param([tar_entry("cont", tarfile.CONTTYPE)], "cont"),
        pytest.param([tar_entry("vol", b"V")], "vol", id="volume-label"),
    ],
)
def test_unsafe_tar_members(
    tmp_path: Path, entries: list[tarfile.TarInfo | tuple[str, bytes]], name: str
) -> None:
    with pytest.raises(UnsafeArchiveError, match=refused(name)):
        check(tmp_path, make_tar(entries))


def test_tar_directory_with_data(tmp_path: Path) -> None:
    info = tar_entry("d", tarfile.DIRTYPE, size=512)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        t.addfile(info, io.BytesIO(bytes(512)))
    with pytest.raises(UnsafeArchiveError, match=refused("d") + ".*512 bytes of data"):
        check(tmp_path, buf.getvalue())


def test_tar_regular_file_with_a_directory_name(tmp_path: Path) -> None:
    with pytest.raises(UnsafeArchiveError, match=refused("a/") + ".*trailing"):
        check(tmp_path, make_tar([tar_entry("a/", tarfile.REGTYPE)]))


def test_tar_file_used_as_directory(tmp_path: Path) -> None:
    with pytest.raises(UnsafeArchiveError, match=refused("a/b")):
        check(tmp_path, make_tar([("a", b"1"), ("a/b", b"2")]))


def test_tar_oversized_extension_header(tmp_path: Path) -> None:
    info = tarfile.TarInfo("a.bin")
    info.pax_headers = {"comment": "x" * (2 * MB)}
    with pytest.raises(UnsafeArchiveError, match=rf"{NAME}: a tar extension header declares"):
        check(tmp_path, make_tar([info]))


def test_tar_holding_a_zip_is_a_tar(tmp_path: Path) -> None:
    # The zip's end record lies in the tar's last 64 KiB, and zipfile would open
    # the tar as that zip; the ustar magic at offset 257 decides.
    inner = make_zip(BENIGN)
    data = make_tar([("model.pt", inner)])
    assert zipfile.is_zipfile(io.BytesIO(data))
    layout = check(tmp_path, data)
    assert layout is not None
    assert layout.kind == "tar"
    assert [m.name for m in layout.members] == ["model.pt"]


def test_tar_sparse_member(tmp_path: Path) -> None:
    data = make_tar([tar_entry("sparse", tarfile.GNUTYPE_SPARSE)], tarfile.GNU_FORMAT)
    with pytest.raises(UnsafeArchiveError, match=refused("sparse") + ".*sparse"):
        check(tmp_path, data)


def test_tar_pax_path_override(tmp_path: Path) -> None:
    info = tarfile.TarInfo("innocent.bin")
    info.pax_headers = {"path": "evil.bin"}
    data = make_tar([info])
    with pytest.raises(UnsafeArchiveError, match=refused("evil.bin") + ".*PAX.*'path'"):
        check(tmp_path, data)


def test_tar_pax_long_name(tmp_path: Path) -> None:
    name = "d/" + "x" * 120
    with pytest.raises(UnsafeArchiveError, match=refused(name) + ".*PAX"):
        check(tmp_path, make_tar([(name, b"1")]))


def test_tar_gnu_long_name(tmp_path: Path) -> None:
    name = "d/" + "x" * 120
    with pytest.raises(UnsafeArchiveError, match=refused(name) + ".*GNU long name"):
        check(tmp_path, make_tar([(name, b"1")], tarfile.GNU_FORMAT))


def test_tar_pax_size_override(tmp_path: Path) -> None:
    info = tarfile.TarInfo("a.bin")
    info.size = 4
    info.pax_headers = {"size": "0"}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        t.addfile(info, io.BytesIO(b"abcd"))
    with pytest.raises(UnsafeArchiveError, match=refused("a.bin") + ".*size 4.*0"):
        check(tmp_path, buf.getvalue())


def test_truncated_tar(tmp_path: Path) -> None:
    data = make_tar([("a.bin", b"1" * 5000), ("b.bin", b"2" * 5000)])
    with pytest.raises(UnsafeArchiveError, match=NAME):
        check(tmp_path, data[: len(data) // 2])


def test_tar_cut_after_a_member(tmp_path: Path) -> None:
    data = make_tar([("a.bin", b"1" * 512)])
    with pytest.raises(UnsafeArchiveError, match=rf"{NAME}: truncated tar.*'a.bin'"):
        check(tmp_path, data[: 512 * 2])


def test_tar_data_after_the_end_marker(tmp_path: Path) -> None:
    hidden = make_tar([("hidden.bin", b"secret")])
    data = make_tar([("a.bin", b"1")]) + hidden
    with tarfile.open(fileobj=io.BytesIO(data), ignore_zeros=True) as t:
        assert t.getnames() == ["a.bin", "hidden.bin"]  # what `tar --ignore-zeros` sees
    with pytest.raises(UnsafeArchiveError, match=refused("a.bin") + ".*hidden data"):
        check(tmp_path, data)


def test_tar_bad_checksum(tmp_path: Path) -> None:
    data = bytearray(make_tar([("a.bin", b"1")]))
    data[0] ^= 1
    with pytest.raises(UnsafeArchiveError, match=NAME):
        check(tmp_path, bytes(data))


# --------------------------------------------------------------------------
# Members that some zip readers read and others refuse (found by the
# cross-checking fuzzers below): modelsign refuses them.

CD_VERSION_NEEDED, LH_VERSION_NEEDED = 6, 4
PATCHED_DATA = 1 << 5  # general purpose flag bit 5: "compressed patched data"


@pytest.mark.parametrize("where", ["central directory", "local header", "both headers"])
def test_member_flagged_as_compressed_patched_data_is_refused(tmp_path: Path, where: str) -> None:
    data = make_zip([(NAME, b"x" * 50)])
    if where != "local header":
        data = patch(data, central_entries(data)[0] + CD_FLAGS, "<H", PATCHED_DATA)
    if where != "central directory":
        data = patch(data, local_header(data, 0) + LH_FLAGS, "<H", PATCHED_DATA)
    with pytest.raises(UnsafeArchiveError, match="flag"):
        digests(tmp_path, data)


def test_member_needing_a_newer_zip_version_than_zipfile_reads_is_refused(
    tmp_path: Path,
) -> None:
    data = make_zip([(NAME, b"x" * 50)])
    data = patch(data, central_entries(data)[0] + CD_VERSION_NEEDED, "<H", 64)
    data = patch(data, local_header(data, 0) + LH_VERSION_NEEDED, "<H", 64)
    with pytest.raises(NotImplementedError, match=r"zip file version 6\.4"):
        stdlib_listing("zip", data)
    with pytest.raises(UnsafeArchiveError, match="version"):
        digests(tmp_path, data)


# --------------------------------------------------------------------------
# Fuzzing: any byte mutation yields a layout or UnsafeArchiveError, nothing
# else; and what modelsign accepts, zipfile or tarfile read identically.


FUZZ_ZIP = make_zip([("a/data.pkl", b"p" * 40), ("a/data/0", bytes(range(200)))])
FUZZ_ZIP_DEFLATED = make_zip([("x.npy", bytes(300)), ("y.npy", b"abc" * 50)], zipfile.ZIP_DEFLATED)
FUZZ_TAR = make_tar([tar_entry("d", tarfile.DIRTYPE), ("d/a.bin", b"a" * 600), ("b", b"b")])


def mutations(base: bytes) -> st.SearchStrategy[bytes]:
    def apply(edits: list[tuple[int, int]], cut: int | None) -> bytes:
        out = bytearray(base)
        for pos, value in edits:
            out[pos % len(out)] = value
        return bytes(out[:cut]) if cut is not None else bytes(out)

    edits = st.lists(st.tuples(st.integers(0, len(base) - 1), st.integers(0, 255)), max_size=6)
    return st.builds(apply, edits, st.none() | st.integers(0, len(base)))


Listing = list[tuple[str, int, str]]


def stdlib_listing(kind: str, data: bytes) -> Listing:
    """(name, size, sha256) of every file member, as zipfile or tarfile read it."""
    if kind == "zip":
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return [
                (i.filename, i.file_size, hashlib.sha256(z.read(i)).hexdigest())
                for i in z.infolist()
                if not i.is_dir()
            ]
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as t:
        listing = []
        for info in t.getmembers():
            if info.isreg():
                member = t.extractfile(info)
                assert member is not None
                listing.append((info.name, info.size, hashlib.sha256(member.read()).hexdigest()))
        return listing


def exercise(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / NAME
    path.write_bytes(data)
    with path.open("rb") as f:
        try:
            layout = inspect(f, len(data), NAME)
            if layout is None:
                listing = None
            else:
                listing = [
                    (m.name, m.size, member_digest(f, layout, m, hashlib.sha256, NAME, MB))
                    for m in layout.members
                ]
        except UnsafeArchiveError:
            return
    if layout is None:  # not an archive to modelsign: no members to zipfile or tarfile
        for kind in ("zip", "tar"):
            with contextlib.suppress(zipfile.BadZipFile, tarfile.TarError, EOFError, ValueError):
                assert not stdlib_listing(kind, data), f"a {kind} archive to the standard library"
        return
    assert listing == stdlib_listing(layout.kind, data)


FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(data=mutations(FUZZ_ZIP))
def test_fuzz_stored_zip(tmp_path: Path, data: bytes) -> None:
    exercise(tmp_path, data)


@FUZZ
@given(data=mutations(FUZZ_ZIP_DEFLATED))
def test_fuzz_deflated_zip(tmp_path: Path, data: bytes) -> None:
    exercise(tmp_path, data)


@FUZZ
@given(data=mutations(FUZZ_TAR))
def test_fuzz_tar(tmp_path: Path, data: bytes) -> None:
    exercise(tmp_path, data)
