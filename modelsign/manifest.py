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

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modelsign import _json
from modelsign.enumerating import SINGLE_FILE_NAME, check_name, collision_key
from modelsign.errors import MalformedBundleError
from modelsign.hashing import DIGEST_HEX_LENGTH, HASH_TYPES, FileDigest, MemberDigest

__all__ = [
    "PREDICATE_TYPE",
    "STATEMENT_TYPE",
    "Manifest",
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

    hash_type: str = "sha256"
    method: str = "files"
    allow_symlinks: bool = False
    ignore_paths: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "hash_type": self.hash_type,
            "allow_symlinks": self.allow_symlinks,
            "ignore_paths": list(self.ignore_paths),
        }

    @classmethod
    def from_json(cls, obj: object) -> Serialization:
        _require(isinstance(obj, dict), "predicate.serialization must be an object")
        assert isinstance(obj, dict)
        unknown = set(obj) - _SERIALIZATION_KEYS
        _require(not unknown, f"predicate.serialization has unknown keys {sorted(unknown)}")
        method = obj.get("method")
        _require(method in ("files", "shards"), f"serialization method {method!r} is not OMS v1.0")
        _require(
            method == "files",
            "serialization method 'shards' is not supported by this version of modelsign",
        )
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
        assert isinstance(hash_type, str)
        assert isinstance(allow_symlinks, bool)
        return cls(hash_type, "files", allow_symlinks, tuple(ignore))


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

    @classmethod
    def from_file_digest(cls, d: FileDigest, algorithm: str) -> Resource:
        return cls(d.name, algorithm, d.digest, d.size, d.archive, d.members)

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
        if annotations:
            out["annotations"] = annotations
        return out

    @classmethod
    def from_json(cls, obj: object, hash_type: str) -> Resource:
        _require(isinstance(obj, dict), "each resource must be an object")
        assert isinstance(obj, dict)
        name = obj.get("name")
        _require(isinstance(name, str), f"resource name must be a string, not {name!r}")
        assert isinstance(name, str)
        if name != SINGLE_FILE_NAME:
            check_name(name)
        algorithm = obj.get("algorithm")
        _require(
            algorithm == hash_type,
            f"resource {name!r}: algorithm {algorithm!r} differs from hash_type {hash_type!r}",
        )
        digest = obj.get("digest")
        length = DIGEST_HEX_LENGTH[hash_type]
        _require(
            _is_hex(digest, length),
            f"resource {name!r}: digest must be {length} lowercase hex digits, got {digest!r}",
        )
        assert isinstance(digest, str)
        size, kind, members = cls._annotations(obj.get("annotations"), name, length)
        return cls(name, hash_type, digest, size, kind, members)

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


@dataclass(frozen=True)
class Manifest:
    """What a signature says about a model."""

    model_name: str
    resources: tuple[Resource, ...]
    serialization: Serialization = field(default_factory=Serialization)

    @classmethod
    def from_digests(
        cls, model_name: str, digests: Mapping[str, FileDigest], serialization: Serialization
    ) -> Manifest:
        """Resources sorted by name in Unicode code point order."""
        resources = tuple(
            Resource.from_file_digest(digests[name], serialization.hash_type)
            for name in sorted(digests)
        )
        return cls(model_name, resources, serialization)

    @property
    def root_digest(self) -> str:
        """SHA-256 over the raw bytes of every resource digest, in order."""
        h = hashlib.sha256()
        for r in self.resources:
            h.update(bytes.fromhex(r.digest))
        return h.hexdigest()

    def digests(self) -> dict[str, str]:
        return {r.name: r.digest for r in self.resources}

    def to_statement(self) -> dict[str, Any]:
        return {
            "_type": STATEMENT_TYPE,
            "subject": [{"name": self.model_name, "digest": {"sha256": self.root_digest}}],
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
        return cls.from_statement(_json.loads(payload, "DSSE payload"))

    @classmethod
    def from_statement(cls, st: object) -> Manifest:
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
        resources = tuple(Resource.from_json(r, serialization.hash_type) for r in raw_resources)
        _require(bool(resources), "predicate.resources is empty: nothing was signed")
        names = [r.name for r in resources]
        _require(
            SINGLE_FILE_NAME not in names or len(names) == 1,
            "resource '.' (a single-file model) must be the only resource",
        )
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
        assert isinstance(name, str)
        manifest = cls(name, resources, serialization)
        assert isinstance(digest, dict)
        _require(
            manifest.root_digest == digest["sha256"],
            f"subject digest {digest['sha256']} does not match the resources, "
            f"which hash to {manifest.root_digest}",
        )
        return manifest
