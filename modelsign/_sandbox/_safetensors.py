"""The safetensors format, written by the sandboxed child and checked by the
parent, which never trusts the child's word for it.

A file is an 8-byte little-endian header length ``N``, ``N`` bytes of JSON
(``{"__metadata__": {str: str}, NAME: {"dtype", "shape", "data_offsets"}}``,
padded with spaces), then the tensors' bytes; ``data_offsets`` are relative
to the end of the header and must tile the data exactly. The parser is strict
JSON (:mod:`modelsign._json`): no duplicate names, no NaN, bounded integers.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from modelsign.errors import ConvertedOutputError, MalformedBundleError

#: safetensors dtype -> bytes per element (those torch writes as safetensors).
DTYPE_SIZES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}
#: What every converted file's ``__metadata__`` is, exactly.
METADATA = {"format": "pt"}
MAX_HEADER = 100 * 1024 * 1024  # the safetensors library's own limit
MAX_RANK = 64
_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class TensorRecord:
    """A tensor as the child reports it and the file must hold it."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    sha256: str

    @property
    def nbytes(self) -> int:
        """The size of the tensor's data."""
        count = 1
        for dim in self.shape:
            count *= dim
        return count * DTYPE_SIZES[self.dtype]

    def to_json(self) -> dict[str, object]:
        """The record for the report and for machine-read output."""
        return {
            "name": self.name,
            "dtype": self.dtype,
            "shape": list(self.shape),
            "sha256": self.sha256,
        }

    @classmethod
    def from_json(cls, value: object) -> TensorRecord:
        """A record the child sent; its shape is checked.

        Raises:
            ValueError: not a well-formed record.
        """
        if not isinstance(value, dict) or set(value) != {"name", "dtype", "shape", "sha256"}:
            raise ValueError(f"not a tensor record: {value!r:.200}")
        name, dtype, shape, digest = value["name"], value["dtype"], value["shape"], value["sha256"]
        if not isinstance(name, str) or not name or name == "__metadata__":
            raise ValueError(f"bad tensor name {name!r:.200}")
        if dtype not in DTYPE_SIZES:
            raise ValueError(f"tensor {name!r}: unknown dtype {dtype!r:.50}")
        if not _is_shape(shape):
            raise ValueError(f"tensor {name!r}: bad shape {shape!r:.200}")
        if not (isinstance(digest, str) and len(digest) == 64 and _is_hex(digest)):
            raise ValueError(f"tensor {name!r}: bad sha256 {digest!r:.100}")
        return cls(name, dtype, tuple(shape), digest)


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def _is_shape(shape: object) -> bool:
    return (
        isinstance(shape, list)
        and len(shape) <= MAX_RANK
        and all(type(d) is int and d >= 0 for d in shape)
    )


def header(entries: Sequence[tuple[str, str, Sequence[int], int, int]]) -> bytes:
    """The length prefix and header for ``(name, dtype, shape, begin, end)``
    entries, padded with spaces to a multiple of 8 bytes (as the safetensors
    library writes it, so that data is aligned)."""
    doc: dict[str, Any] = {"__metadata__": METADATA}
    for name, dtype, shape, begin, end in entries:
        doc[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [begin, end]}
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text


def check_file(fd: int, shown: str, expected: Sequence[TensorRecord]) -> int:
    """Check the safetensors file open on ``fd`` against what the child
    reported: header, names, dtypes, shapes, and each tensor's SHA-256.

    Args:
        fd: the file, open for reading (its position is not used).
        shown: the file's name for messages.
        expected: the child's report.

    Returns:
        The file's size in bytes.

    Raises:
        ConvertedOutputError: any difference, naming the tensor, the
            expected and the actual value.
    """
    from modelsign import _json  # noqa: PLC0415

    size = os.fstat(fd).st_size
    prefix = os.pread(fd, 8, 0)
    if len(prefix) != 8:
        raise ConvertedOutputError(f"{shown}: {size} bytes, shorter than a safetensors header")
    (length,) = struct.unpack("<Q", prefix)
    if length > min(MAX_HEADER, size - 8):
        raise ConvertedOutputError(
            f"{shown}: header length {length} is over the limit "
            f"(expected at most {min(MAX_HEADER, size - 8)} bytes)"
        )
    raw = os.pread(fd, length, 8)
    try:
        doc = _json.loads(raw.rstrip(b" "), f"{shown} header", max_bytes=MAX_HEADER)
    except MalformedBundleError as e:
        raise ConvertedOutputError(str(e)) from e
    if not isinstance(doc, dict):
        raise ConvertedOutputError(f"{shown}: the header is not a JSON object")
    metadata = doc.pop("__metadata__", None)
    if metadata != METADATA:
        raise ConvertedOutputError(
            f"{shown}: __metadata__: expected {METADATA}, actual {metadata!r:.500}"
        )
    data_start = 8 + length
    records = _header_records(doc, shown, size - data_start)
    _compare(records, expected, shown)
    by_name = {r.name: r for r in expected}
    for begin, end, name, _dtype, _shape in sorted(records.values()):
        digest = _range_digest(fd, data_start + begin, end - begin)
        if digest != by_name[name].sha256:
            raise ConvertedOutputError(
                f"{shown}: tensor {name!r}: sha256 mismatch: expected (reported by the sandboxed "
                f"loader) {by_name[name].sha256}, actual {digest}"
            )
    return size


def _header_records(doc: dict[str, Any], shown: str, data_size: int) -> dict[str, Any]:
    """name -> (begin, end, name, dtype, shape) after the structural checks."""
    records: dict[str, Any] = {}
    spans = []
    for name, entry in doc.items():
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise ConvertedOutputError(f"{shown}: tensor {name!r}: malformed entry {entry!r:.200}")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in DTYPE_SIZES or not _is_shape(shape):
            raise ConvertedOutputError(
                f"{shown}: tensor {name!r}: bad dtype or shape {dtype!r:.50} {shape!r:.200}"
            )
        if not (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(type(o) is int for o in offsets)
            and 0 <= offsets[0] <= offsets[1] <= data_size
        ):
            raise ConvertedOutputError(
                f"{shown}: tensor {name!r}: data_offsets {offsets!r:.100} outside the "
                f"{data_size} bytes of data"
            )
        record = TensorRecord(name, dtype, tuple(shape), "0" * 64)
        if offsets[1] - offsets[0] != record.nbytes:
            raise ConvertedOutputError(
                f"{shown}: tensor {name!r}: expected {record.nbytes} bytes for {dtype} "
                f"{list(shape)}, actual {offsets[1] - offsets[0]}"
            )
        records[name] = (offsets[0], offsets[1], name, dtype, tuple(shape))
        spans.append((offsets[0], offsets[1], name))
    position = 0
    for begin, end, name in sorted(spans):
        if begin != position:
            raise ConvertedOutputError(
                f"{shown}: tensor {name!r}: data starts at {begin}, expected {position} "
                "(tensors must tile the data, without gaps or overlaps)"
            )
        position = end
    if position != data_size:
        raise ConvertedOutputError(
            f"{shown}: the tensors cover {position} bytes of data, actual {data_size}"
        )
    return records


def _compare(records: dict[str, Any], expected: Sequence[TensorRecord], shown: str) -> None:
    reported = {r.name: r for r in expected}
    missing = sorted(set(reported) - set(records))
    extra = sorted(set(records) - set(reported))
    if missing or extra:
        raise ConvertedOutputError(
            f"{shown}: tensor names differ from the sandboxed loader's report: "
            f"reported but not in the file {missing[:20]}, in the file but not reported "
            f"{extra[:20]}"
        )
    for name, (_b, _e, _n, dtype, shape) in records.items():
        want = reported[name]
        if (dtype, shape) != (want.dtype, want.shape):
            raise ConvertedOutputError(
                f"{shown}: tensor {name!r}: expected {want.dtype} {list(want.shape)} "
                f"(reported by the sandboxed loader), actual {dtype} {list(shape)}"
            )


def _range_digest(fd: int, offset: int, length: int) -> str:
    digest = hashlib.sha256()
    while length > 0:
        chunk = os.pread(fd, min(_CHUNK, length), offset)
        if not chunk:
            break
        digest.update(chunk)
        offset += len(chunk)
        length -= len(chunk)
    return digest.hexdigest()
