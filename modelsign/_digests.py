"""How a file is hashed (:class:`HashScheme`) and what it hashes to (:class:`Fingerprint`).

One home for both, used by signing, verification and the loader hook alike:
a scheme is a hash type with, in OMS shard serialization, a shard size; a
fingerprint is a whole-file digest, or the digests of a file's shards. They
become strings only in messages (``str()``) and in the bundle (the manifest's
resources).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeAlias

from modelsign.errors import ConfigError

__all__ = [
    "DIGEST_HEX_LENGTH",
    "HASH_TYPES",
    "Fingerprint",
    "FingerprintHasher",
    "HashScheme",
    "HashType",
    "Hasher",
    "ShardDigest",
    "new_hasher",
    "shard_ranges",
]

#: The file hashes OMS allows (``serialization.hash_type``).
HashType: TypeAlias = Literal["sha256", "blake2b", "blake3"]
HASH_TYPES: tuple[HashType, ...] = ("sha256", "blake2b", "blake3")
DIGEST_HEX_LENGTH: dict[str, int] = {"sha256": 64, "blake2b": 128, "blake3": 64}


class Hasher(Protocol):
    """What hashlib's objects (and blake3's) offer."""

    def update(self, data: bytes | memoryview, /) -> Any: ...
    def hexdigest(self) -> str: ...


def new_hasher(hash_type: str) -> Callable[[], Hasher]:
    """A factory of fresh hashers of ``hash_type``.

    Raises:
        ConfigError: an unknown hash type, or blake3 without its package.
    """
    if hash_type == "sha256":
        return hashlib.sha256
    if hash_type == "blake2b":
        return hashlib.blake2b
    if hash_type == "blake3":
        try:
            import blake3  # noqa: PLC0415 - optional dependency
        except ImportError as e:
            raise ConfigError(
                "hash type blake3 needs the blake3 package: pip install 'modelsign[blake3]'"
            ) from e

        def factory() -> Hasher:
            h: Hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
            return h

        return factory
    raise ConfigError(f"unknown hash type {hash_type!r}; choose one of {', '.join(HASH_TYPES)}")


def shard_ranges(size: int, shard_size: int) -> list[tuple[int, int]]:
    """The OMS shards of a file of ``size`` bytes: ``[0, s), [s, 2s), ...``,
    the last one shorter; none for an empty file."""
    return [(start, min(start + shard_size, size)) for start in range(0, size, shard_size)]


@dataclass(frozen=True)
class ShardDigest:
    """The digest of the bytes ``[start, end)`` of a file."""

    start: int
    end: int
    digest: str


@dataclass(frozen=True)
class Fingerprint:
    """What one file hashes to: its ``digest``, or (shard serialization) the
    digests of its ``shards`` in file order (``()`` for an empty file).
    Exactly one of the two is set."""

    digest: str | None = None
    shards: tuple[ShardDigest, ...] | None = None

    def __post_init__(self) -> None:
        if (self.digest is None) == (self.shards is None):
            raise ValueError("a Fingerprint is a digest or shards, exactly one of them")

    @classmethod
    def of_shards(cls, shards: Sequence[ShardDigest]) -> Fingerprint:
        """The fingerprint of a file cut into ``shards`` (in any order)."""
        return cls(shards=tuple(sorted(shards, key=lambda s: s.start)))

    @property
    def sharded(self) -> bool:
        return self.shards is not None

    @property
    def size(self) -> int | None:
        """The file size a shard fingerprint stands for (``None`` for a digest)."""
        if self.shards is None:
            return None
        return self.shards[-1].end if self.shards else 0

    def __str__(self) -> str:
        if self.digest is not None:
            return self.digest
        return f"{len(self.shards or ())} shard(s) over {self.size} bytes"

    def differing_shards(self, actual: Fingerprint) -> list[tuple[ShardDigest, ShardDigest]] | None:
        """The (this, actual) shards whose digests differ, in order; ``None``
        when the two cut files of different sizes (different ranges) or are
        not both shard fingerprints."""
        if self.shards is None or actual.shards is None:
            return None
        if [(w.start, w.end) for w in self.shards] != [(g.start, g.end) for g in actual.shards]:
            return None
        return [
            (w, g) for w, g in zip(self.shards, actual.shards, strict=True) if w.digest != g.digest
        ]

    def difference(self, actual: Fingerprint) -> tuple[str, str, str]:
        """``(where, expected, actual)`` for a message: for shard fingerprints
        the first differing shard (``" at shard 0:1048576, and 2 more shard(s)"``)
        and its two digests, not two lists of thousands of shards; a size
        difference as two sizes; for digests, the two digests."""
        if self.digest is not None or actual.digest is not None:
            return "", str(self), str(actual)
        diff = self.differing_shards(actual)
        if not diff:
            return " (size)", f"{self.size} bytes", f"{actual.size} bytes"
        w, g = diff[0]
        more = f", and {len(diff) - 1} more shard(s)" if len(diff) > 1 else ""
        return f" at shard {w.start}:{w.end}{more}", w.digest, g.digest


class FingerprintHasher(Protocol):
    """Hashes a stream of a file's bytes, in order, into its fingerprint."""

    def update(self, data: bytes | memoryview, /) -> None: ...
    def fingerprint(self) -> Fingerprint: ...


@dataclass(frozen=True)
class HashScheme:
    """How each file is hashed: ``hash_type``, whole, or (OMS shard
    serialization) in shards of ``shard_size`` bytes."""

    hash_type: HashType = "sha256"
    shard_size: int | None = None

    def __post_init__(self) -> None:
        if self.hash_type not in HASH_TYPES:
            raise ConfigError(
                f"unknown hash type {self.hash_type!r}; choose one of {', '.join(HASH_TYPES)}"
            )
        if self.shard_size is not None and self.shard_size <= 0:
            raise ValueError(f"shard_size must be positive, not {self.shard_size}")

    @property
    def sharded(self) -> bool:
        return self.shard_size is not None

    def __str__(self) -> str:
        if self.shard_size is None:
            return self.hash_type
        return f"{self.hash_type} in shards of {self.shard_size} bytes"

    def sort_key(self) -> tuple[str, int]:
        """A total order (whole-file schemes first), for stable iteration."""
        return self.hash_type, self.shard_size or 0

    def hasher(self) -> FingerprintHasher:
        """A fresh hasher of one file's bytes under this scheme.

        Raises:
            ConfigError: blake3 without its package.
        """
        factory = new_hasher(self.hash_type)
        if self.shard_size is None:
            return _WholeHasher(factory())
        return _ShardedHasher(factory, self.shard_size)

    def could_match(self, fingerprint: Fingerprint, size: int) -> bool:
        """Whether a file of ``size`` bytes could hash to ``fingerprint``:
        a shard fingerprint says its file's size, a digest does not."""
        return fingerprint.size is None or fingerprint.size == size


class _WholeHasher:
    def __init__(self, hasher: Hasher) -> None:
        self._hasher = hasher

    def update(self, data: bytes | memoryview, /) -> None:
        self._hasher.update(data)

    def fingerprint(self) -> Fingerprint:
        return Fingerprint(digest=self._hasher.hexdigest())


class _ShardedHasher:
    """Hashes a stream as consecutive shards."""

    def __init__(self, factory: Callable[[], Hasher], shard_size: int) -> None:
        self._factory = factory
        self._size = shard_size
        self._done: list[ShardDigest] = []
        self._current: Hasher | None = None
        self._offset = 0
        self._start = 0

    def update(self, data: bytes | memoryview, /) -> None:
        view = memoryview(data).cast("B")
        while view:
            if self._current is None:
                self._current, self._start = self._factory(), self._offset
            room = self._start + self._size - self._offset
            part, view = view[:room], view[room:]
            self._current.update(part)
            self._offset += len(part)
            if self._offset - self._start == self._size:
                self._finish()

    def _finish(self) -> None:
        assert self._current is not None
        self._done.append(ShardDigest(self._start, self._offset, self._current.hexdigest()))
        self._current = None

    def fingerprint(self) -> Fingerprint:
        if self._current is not None:
            self._finish()
        return Fingerprint(shards=tuple(self._done))
