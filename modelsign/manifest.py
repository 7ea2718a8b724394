"""Stage 3: the manifest, and the OMS v1.0 in-toto statement that carries it.

A :class:`Manifest` is an immutable value: the model's name, one
:class:`Resource` per file and the :class:`Serialization` settings used to
produce it. :meth:`Manifest.to_payload` gives the exact statement bytes that are
signed (canonical JSON: sorted keys, no whitespace, so signing twice gives the
same bytes); :meth:`Manifest.from_payload` parses and checks untrusted bytes
and raises :class:`~modelsign.errors.MalformedBundleError` on anything that is
not a valid OMS v1.0 statement.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, cast

from modelsign import _json
from modelsign._digests import (
    DIGEST_HEX_LENGTH,
    HASH_TYPES,
    Fingerprint,
    HashScheme,
    HashType,
    ShardDigest,
)
from modelsign._enumerating import SINGLE_FILE_NAME
from modelsign._hashing import FileDigest, MemberDigest
from modelsign._paths import check_name, collision_key
from modelsign._release import Release
from modelsign.errors import MalformedBundleError, UnsafeModelError

__all__ = [
    "PREDICATE_TYPE",
    "STATEMENT_TYPE",
    "HashType",
    "Manifest",
    "Release",
    "Resource",
    "Serialization",
]

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"

_SERIALIZATION_KEYS = frozenset(
    {"method", "hash_type", "allow_symlinks", "ignore_paths", "shard_size"}
)


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise MalformedBundleError(message)


def _is_hex(value: object, length: int) -> bool:
    return (
        isinstance(value, str)
        and len(value) == length
        and all(c in "0123456789abcdef" for c in value)
    )


@dataclass(frozen=True)
class Serialization:
    """How the files were enumerated and hashed (the predicate's ``serialization``)."""

    hash_type: HashType = "sha256"
    method: str = "files"
    allow_symlinks: bool = False
    ignore_paths: tuple[str, ...] = ()
    #: Bytes per shard, with method ``shards`` only.
    shard_size: int | None = None

    def __post_init__(self) -> None:
        if (self.method == "shards") != (self.shard_size is not None):
            raise ValueError("shard_size goes with method 'shards', and only with it")
        if self.shard_size is not None and self.shard_size <= 0:
            raise ValueError(f"shard_size must be positive, not {self.shard_size}")

    @classmethod
    def sharded(cls, shard_size: int, **kwargs: Any) -> Serialization:
        """The OMS ``shards`` serialization.

        Args:
            shard_size: bytes per shard.
            **kwargs: the other fields (``hash_type``, ``ignore_paths``, …).

        Returns:
            The serialization.

        Raises:
            ValueError: a shard size that is not positive.
        """
        return cls(method="shards", shard_size=shard_size, **kwargs)

    @property
    def scheme(self) -> HashScheme:
        """How one file is hashed."""
        return HashScheme(self.hash_type, self.shard_size)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "method": self.method,
            "hash_type": self.hash_type,
            "allow_symlinks": self.allow_symlinks,
            "ignore_paths": list(self.ignore_paths),
        }
        if self.shard_size is not None:
            out["shard_size"] = self.shard_size
        return out

    @classmethod
    def from_json(cls, obj: object) -> Serialization:
        """Parse a statement's ``predicate.serialization``, strictly.

        Args:
            obj: the parsed JSON value.

        Returns:
            The serialization.

        Raises:
            MalformedBundleError: anything OMS v1.0 does not allow.
        """
        _require(isinstance(obj, dict), "predicate.serialization must be an object")
        assert isinstance(obj, dict)
        unknown = set(obj) - _SERIALIZATION_KEYS
        _require(not unknown, f"predicate.serialization has unknown keys {sorted(unknown)}")
        method = obj.get("method")
        _require(method in ("files", "shards"), f"serialization method {method!r} is not OMS v1.0")
        shard_size = obj.get("shard_size")
        if method == "shards":
            if isinstance(shard_size, float) and shard_size.is_integer() and shard_size < 2**53:
                # model_signing <= 1.1.1 writes the size as a float (1048576.0).
                shard_size = int(shard_size)
            _require(
                isinstance(shard_size, int) and not isinstance(shard_size, bool) and shard_size > 0,
                f"serialization shard_size must be a positive integer, not {shard_size!r}",
            )
        else:
            _require("shard_size" not in obj, "shard_size is only allowed with method 'shards'")
        hash_type = obj.get("hash_type")
        _require(hash_type in HASH_TYPES, f"serialization hash_type {hash_type!r} is not allowed")
        allow_symlinks = obj.get("allow_symlinks")
        _require(isinstance(allow_symlinks, bool), "serialization allow_symlinks must be a boolean")
        ignore = obj.get("ignore_paths", [])
        _require(
            isinstance(ignore, list) and all(isinstance(p, str) for p in ignore),
            "serialization ignore_paths must be a list of strings",
        )
        for path in ignore:
            check_name(path)
        assert isinstance(allow_symlinks, bool)
        assert isinstance(method, str)
        assert shard_size is None or isinstance(shard_size, int)
        return cls(cast(HashType, hash_type), method, allow_symlinks, tuple(ignore), shard_size)


@dataclass(frozen=True)
class Resource:
    """One signed file: name, digest and (modelsign's annotations) size and
    archive members."""

    name: str
    algorithm: str
    digest: str
    size: int | None = None
    archive: str | None = None
    members: tuple[MemberDigest, ...] = ()
    #: Shard mode: the model's empty files, which have no shard (on the first
    #: resource only). Signed, so removing an empty file fails verification.
    empty_files: tuple[str, ...] = ()

    @property
    def shard(self) -> tuple[str, int, int]:
        """A shard resource's ``(path, start, end)``, from ``path:start:end``."""
        path, start, end = self.name.rsplit(":", 2)
        return path, int(start), int(end)

    @classmethod
    def from_file_digest(cls, d: FileDigest, algorithm: str) -> Resource:
        """The resource of a file hashed whole.

        Args:
            d: the file's digest (with its archive members).
            algorithm: the hash type.

        Returns:
            The resource, with modelsign's size and member annotations.

        Raises:
            ValueError: a file hashed in shards.
        """
        if d.fingerprint.digest is None:
            raise ValueError(f"{d.name}: hashed in shards, not whole")
        return cls(d.name, algorithm, d.fingerprint.digest, d.size, d.archive, d.members)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "algorithm": self.algorithm,
            "digest": self.digest,
        }
        annotations: dict[str, Any] = {}
        if self.size is not None:
            annotations["size"] = self.size
        if self.archive is not None:
            annotations["archive"] = self.archive
            annotations["members"] = [
                {"name": m.name, "size": m.size, "digest": m.digest, "compression": m.compression}
                for m in self.members
            ]
        if self.empty_files:
            annotations["empty_files"] = list(self.empty_files)
        if annotations:
            out["annotations"] = annotations
        return out

    @classmethod
    def from_json(cls, obj: object, hash_type: str, shard_size: int | None = None) -> Resource:
        """Parse one of a statement's ``predicate.resources``, strictly.

        Args:
            obj: the parsed JSON value.
            hash_type: the serialization's hash type.
            shard_size: the serialization's shard size, in shard mode.

        Returns:
            The resource.

        Raises:
            MalformedBundleError: a bad name, algorithm, digest or annotation.
        """
        _require(isinstance(obj, dict), "each resource must be an object")
        assert isinstance(obj, dict)
        name = obj.get("name")
        _require(isinstance(name, str), f"resource name must be a string, not {name!r}")
        assert isinstance(name, str)
        if shard_size is not None:
            _check_shard_name(name)
        elif name != SINGLE_FILE_NAME:
            check_name(name)
        algorithm = obj.get("algorithm")
        _require(
            algorithm == hash_type
            # model_signing <= 1.1.1 names a shard's algorithm this way.
            or (shard_size is not None and algorithm == f"{hash_type}-sharded-{shard_size}"),
            f"resource {name!r}: algorithm {algorithm!r} differs from hash_type {hash_type!r}",
        )
        digest = obj.get("digest")
        length = DIGEST_HEX_LENGTH[hash_type]
        _require(
            _is_hex(digest, length),
            f"resource {name!r}: digest must be {length} lowercase hex digits, got {digest!r}",
        )
        assert isinstance(digest, str)
        ann = obj.get("annotations")
        # Archive members describe whole files: a shard has none.
        size, kind, members = cls._annotations(None if shard_size else ann, name, length)
        empty: tuple[str, ...] = ()
        if shard_size is not None and isinstance(ann, dict) and "empty_files" in ann:
            empty = _empty_files(ann["empty_files"])
        return cls(name, hash_type, digest, size, kind, members, empty)

    @staticmethod
    def _annotations(
        ann: object, name: str, length: int
    ) -> tuple[int | None, str | None, tuple[MemberDigest, ...]]:
        # Annotations are unsigned-by-OMS diagnostics, but they are inside the
        # signed payload, so they are parsed strictly all the same.
        if not isinstance(ann, dict):
            return None, None, ()
        size = ann.get("size")
        if not (isinstance(size, int) and not isinstance(size, bool) and size >= 0):
            size = None
        kind = ann.get("archive")
        if kind not in ("zip", "tar"):
            return size, None, ()
        members = []
        raw = ann.get("members")
        if isinstance(raw, list):
            for m in raw:
                if (
                    isinstance(m, dict)
                    and isinstance(m.get("name"), str)
                    and isinstance(m.get("size"), int)
                    and _is_hex(m.get("digest"), length)
                    and isinstance(m.get("compression"), str)
                ):
                    members.append(
                        MemberDigest(m["name"], m["size"], m["digest"], m["compression"])
                    )
        return size, kind, tuple(members)


_DECIMAL = frozenset("0123456789")


def _offset(text: str, name: str) -> int:
    _require(
        bool(text) and set(text) <= _DECIMAL and (text == "0" or text[0] != "0") and len(text) < 20,
        f"shard {name!r}: {text!r} is not a byte offset (decimal digits, no leading zero)",
    )
    return int(text)


def check_shard_path(path: str) -> None:
    """The colon rule: OMS shard names are ``path:start:end`` and readers
    (model_signing among them) split them at every colon, so a path with a
    colon cannot be named in shard mode. The error says which file."""
    if ":" in path:
        raise UnsafeModelError(
            f"{path!r}: a file name with ':' cannot be named in shard serialization "
            "(resource names are path:start:end); sign it with files serialization"
        )


def _check_shard_name(name: str) -> None:
    parts = name.rsplit(":", 2)
    _require(len(parts) == 3, f"shard resource {name!r} is not path:start:end")
    path, start, end = parts
    _require(":" not in path, f"shard resource {name!r}: the path contains ':'")
    if path != SINGLE_FILE_NAME:
        check_name(path)
    _require(
        _offset(start, name) < _offset(end, name),
        f"shard {name!r}: the range is empty or reversed",
    )


def _empty_files(raw: object) -> tuple[str, ...]:
    _require(
        isinstance(raw, list) and all(isinstance(n, str) for n in raw),
        "annotations.empty_files must be a list of file names",
    )
    assert isinstance(raw, list)
    for n in raw:
        check_name(n)
        _require(":" not in n, f"empty file {n!r}: the path contains ':'")
    return tuple(raw)


def _check_shards(resources: tuple[Resource, ...], shard_size: int) -> None:
    """Each file's shards must tile it: ``[0, s), [s, 2s), ...``, every one
    full but the last, none repeated; empty files are listed once, on the
    first resource, and have no shard."""
    by_path: dict[str, list[tuple[int, int]]] = {}
    for r in resources:
        path, start, end = r.shard
        by_path.setdefault(path, []).append((start, end))
    for path, ranges in by_path.items():
        ranges.sort()
        for i, (start, end) in enumerate(ranges):
            last = i == len(ranges) - 1
            _require(
                start == i * shard_size
                and (end - start == shard_size or (last and end - start < shard_size)),
                f"the shards of {path!r} do not tile the file in shards of {shard_size} bytes "
                f"(found {path}:{start}:{end})",
            )
    empty = [n for r in resources for n in r.empty_files]
    _require(
        all(not r.empty_files for r in resources[1:]),
        "annotations.empty_files may only be on the first resource",
    )
    _require(len(set(empty)) == len(empty), "annotations.empty_files lists a file twice")
    _require(
        SINGLE_FILE_NAME not in by_path or not empty,
        "resource '.' (a single-file model) must be the only file",
    )
    _check_collisions([*by_path, *empty])


def _check_collisions(names: list[str]) -> None:
    seen: dict[str, str] = {}
    for n in names:
        key = collision_key(n)
        _require(
            key not in seen,
            f"resources {seen.get(key)!r} and {n!r} collide"
            if seen.get(key) != n
            else f"duplicate resource {n!r}",
        )
        seen[key] = n


@dataclass(frozen=True)
class Manifest:
    """What a signature says about a model."""

    model_name: str
    resources: tuple[Resource, ...]
    serialization: Serialization = field(default_factory=Serialization)
    #: The signed model name and version (``subject[0].annotations.release``),
    #: when the signer recorded them.
    release: Release | None = None

    @classmethod
    def from_digests(
        cls, model_name: str, digests: Mapping[str, FileDigest], serialization: Serialization
    ) -> Manifest:
        """The manifest of hashed files.

        Args:
            model_name: the statement's subject name.
            digests: each file's digest, by name.
            serialization: how they were hashed.

        Returns:
            The manifest, resources sorted by name in Unicode code point
            order (in shard mode: by file name, then offset).

        Raises:
            UnsafeModelError: in shard mode, a model of empty files only.
            ValueError: a file hashed otherwise than ``serialization`` says.
        """
        if serialization.shard_size is not None:
            return cls._sharded(model_name, digests, serialization)
        resources = tuple(
            Resource.from_file_digest(digests[name], serialization.hash_type)
            for name in sorted(digests)
        )
        return cls(model_name, resources, serialization)

    @classmethod
    def _sharded(
        cls, model_name: str, digests: Mapping[str, FileDigest], serialization: Serialization
    ) -> Manifest:
        resources: list[Resource] = []
        empty = []
        for name in sorted(digests):
            check_shard_path(name)
            shards = digests[name].fingerprint.shards
            if shards is None:
                raise ValueError(f"{name}: hashed without shards")
            if not shards:
                empty.append(name)
            resources.extend(
                Resource(f"{name}:{s.start}:{s.end}", serialization.hash_type, s.digest)
                for s in shards
            )
        if not resources:
            raise UnsafeModelError(
                f"{model_name}: every file is empty; shard serialization would sign no "
                "resource (sign it with files serialization)"
            )
        if empty:
            resources[0] = replace(resources[0], empty_files=tuple(empty))
        return cls(model_name, tuple(resources), serialization)

    @property
    def root_digest(self) -> str:
        """SHA-256 over the raw bytes of every resource digest, in order."""
        h = hashlib.sha256()
        for r in self.resources:
            h.update(bytes.fromhex(r.digest))
        return h.hexdigest()

    def digests(self) -> dict[str, str]:
        """Each resource's digest, by resource name (a shard's is ``path:start:end``)."""
        return {r.name: r.digest for r in self.resources}

    def file_fingerprints(self) -> Mapping[str, Fingerprint]:
        """What each signed file must hash to, by file name: its digest, or in
        shard mode its shards (none for an empty file). Computed once per
        manifest (a bundle may list a million shards), read-only."""
        return MappingProxyType(self._fingerprints)

    @functools.cached_property
    def _fingerprints(self) -> dict[str, Fingerprint]:
        if self.serialization.shard_size is None:
            return {r.name: Fingerprint(digest=r.digest) for r in self.resources}
        shards: dict[str, list[ShardDigest]] = {}
        for r in self.resources:
            path, start, end = r.shard
            shards.setdefault(path, []).append(ShardDigest(start, end, r.digest))
        found = {p: Fingerprint.of_shards(s) for p, s in shards.items()}
        for name in self.resources[0].empty_files if self.resources else ():
            found[name] = Fingerprint(shards=())
        return found

    def to_statement(self) -> dict[str, Any]:
        subject: dict[str, Any] = {"name": self.model_name, "digest": {"sha256": self.root_digest}}
        if self.release is not None:
            subject["annotations"] = {"release": self.release.to_json()}
        return {
            "_type": STATEMENT_TYPE,
            "subject": [subject],
            "predicateType": PREDICATE_TYPE,
            "predicate": {
                "resources": [r.to_json() for r in self.resources],
                "serialization": self.serialization.to_json(),
            },
        }

    def to_payload(self) -> bytes:
        """The canonical statement bytes: sorted keys, no insignificant space."""
        return json.dumps(
            self.to_statement(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode("utf-8")

    @classmethod
    def from_payload(cls, payload: bytes) -> Manifest:
        """Parse a DSSE payload: an in-toto statement with the OMS predicate.

        Args:
            payload: the envelope's payload bytes.

        Returns:
            The manifest.

        Raises:
            MalformedBundleError: not strict JSON, or not an OMS v1.0 statement.
        """
        return cls.from_statement(_json.loads(payload, "DSSE payload"))

    @classmethod
    def from_statement(cls, st: object) -> Manifest:
        """Parse an in-toto statement with the OMS predicate, strictly.

        Args:
            st: the parsed JSON value.

        Returns:
            The manifest, its subject digest checked against its resources.

        Raises:
            MalformedBundleError: anything OMS v1.0 does not allow.
        """
        _require(isinstance(st, dict), "the statement must be a JSON object")
        assert isinstance(st, dict)
        _require(
            st.get("_type") == STATEMENT_TYPE,
            f"statement _type {st.get('_type')!r} is not {STATEMENT_TYPE!r}",
        )
        _require(
            st.get("predicateType") == PREDICATE_TYPE,
            f"predicateType {st.get('predicateType')!r} is not {PREDICATE_TYPE!r}",
        )
        subjects = st.get("subject")
        _require(
            isinstance(subjects, list) and len(subjects) == 1,
            "the statement must have exactly one subject",
        )
        assert isinstance(subjects, list)
        subject = subjects[0]
        _require(isinstance(subject, dict), "the subject must be an object")
        name = subject.get("name")
        _require(isinstance(name, str) and bool(name), "the subject needs a name")
        digest = subject.get("digest")
        _require(
            isinstance(digest, dict) and _is_hex(digest.get("sha256"), 64),
            "the subject needs a sha256 digest of 64 lowercase hex digits",
        )
        release = Release.from_annotations(subject.get("annotations"))
        predicate = st.get("predicate")
        _require(isinstance(predicate, dict), "the predicate must be an object")
        assert isinstance(predicate, dict)
        _require(
            set(predicate) == {"resources", "serialization"},
            f"the predicate must have exactly resources and serialization, has {sorted(predicate)}",
        )
        serialization = Serialization.from_json(predicate["serialization"])
        raw_resources = predicate["resources"]
        _require(isinstance(raw_resources, list), "predicate.resources must be a list")
        shard_size = serialization.shard_size
        sharded = shard_size is not None
        resources = tuple(
            Resource.from_json(r, serialization.hash_type, shard_size) for r in raw_resources
        )
        _require(bool(resources), "predicate.resources is empty: nothing was signed")
        names = [r.shard[0] if sharded else r.name for r in resources]
        _require(
            SINGLE_FILE_NAME not in names or len(set(names)) == 1,
            "resource '.' (a single-file model) must be the only resource",
        )
        if serialization.shard_size is not None:
            _require(
                len(set(r.name for r in resources)) == len(resources),
                "a shard resource is listed twice",
            )
            _check_shards(resources, serialization.shard_size)
        else:
            _check_collisions(names)
        assert isinstance(name, str)
        manifest = cls(name, resources, serialization, release)
        assert isinstance(digest, dict)
        _require(
            manifest.root_digest == digest["sha256"],
            f"subject digest {digest['sha256']} does not match the resources, "
            f"which hash to {manifest.root_digest}",
        )
        return manifest
