"""Building and patching zip and tar archives for the archive tests."""

from __future__ import annotations

import io
import struct
import tarfile
import warnings
import zipfile
from collections.abc import Iterable

# Offsets of fields inside the zip structures (APPNOTE.TXT 4.3.7, 4.3.12, 4.3.16).
LH_FLAGS, LH_METHOD, LH_CRC, LH_CSIZE, LH_USIZE = 6, 8, 14, 18, 22
CD_MADE_BY, CD_FLAGS, CD_METHOD, CD_CRC, CD_USIZE = 4, 8, 10, 16, 24
CD_EXTERNAL, CD_OFFSET = 38, 42
EOCD_ON_DISK, EOCD_TOTAL, EOCD_CD_SIZE, EOCD_CD_OFFSET = 8, 10, 12, 16

TarEntry = tarfile.TarInfo | tuple[str | tarfile.TarInfo, bytes]


def make_zip(members: Iterable[tuple[str, bytes]], compression: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names
        with zipfile.ZipFile(buf, "w", compression) as z:
            for name, data in members:
                z.writestr(name, data)
    return buf.getvalue()


def eocd(data: bytes | bytearray) -> int:
    return bytes(data).rindex(b"PK\x05\x06")


def central_entries(data: bytes | bytearray) -> list[int]:
    """Offsets of the central directory entries (test archives have no comments)."""
    end = eocd(data)
    (count,) = struct.unpack_from("<H", data, end + EOCD_TOTAL)
    (pos,) = struct.unpack_from("<L", data, end + EOCD_CD_OFFSET)
    offsets = []
    for _ in range(count):
        offsets.append(pos)
        n, e, c = struct.unpack_from("<3H", data, pos + 28)
        pos += 46 + n + e + c
    return offsets


def local_header(data: bytes | bytearray, index: int) -> int:
    offset: int = struct.unpack_from("<L", data, central_entries(data)[index] + CD_OFFSET)[0]
    return offset


def patch(data: bytes, offset: int, fmt: str, *values: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, *values)
    return bytes(out)


def rename(data: bytes, old: str, new: str, count: int = 2) -> bytes:
    """Rename a member in its local header (count=1) or in both places (count=2)."""
    assert len(old) == len(new)
    assert data.count(old.encode()) == 2, "the name must occur only in its two headers"
    return data.replace(old.encode(), new.encode(), count)


def make_tar(entries: Iterable[TarEntry], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                t.addfile(entry)
                continue
            head, data = entry
            info = head if isinstance(head, tarfile.TarInfo) else tarfile.TarInfo(head)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def tar_entry(name: str, kind: bytes, **fields: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    for key, value in fields.items():
        setattr(info, key, value)
    return info
