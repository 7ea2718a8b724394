"""Keys: load, generate and identify them.

The key id is the OMS ``hint``: the lowercase hex SHA-256 of the key's PEM
SubjectPublicKeyInfo text as ``cryptography`` writes it. It is computed from
the re-serialized key, so whitespace in a user's PEM file does not change it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

from modelsign._atomic import write_atomic
from modelsign._backends import Backend, all_backends
from modelsign._files import read_small
from modelsign.errors import ConfigError, KeyLoadError, OverwriteError, PassphraseError

__all__ = [
    "ALGORITHMS",
    "PrivateKey",
    "PublicKey",
    "generate",
    "load_private_key",
    "load_public_key",
]

ALGORITHMS: tuple[str, ...] = ("ed25519", "ecdsa-p256", "ecdsa-p384", "ecdsa-p521")
MAX_KEY_FILE_BYTES = 1024 * 1024


def _backend_for(key: PublicKeyTypes | PrivateKeyTypes, source: str) -> Backend:
    for backend in all_backends():
        if backend.handles(key):
            return backend
    raise KeyLoadError(
        f"{source}: unsupported key type {type(key).__name__}; "
        f"modelsign supports {', '.join(ALGORITHMS)}"
    )


@dataclass(frozen=True, eq=False)
class PublicKey:
    """A public key that signatures are checked against."""

    key: PublicKeyTypes
    source: str = "<memory>"

    @property
    def pem(self) -> bytes:
        return self.key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def key_id(self) -> str:
        return hashlib.sha256(self.pem).hexdigest()

    @property
    def algorithm(self) -> str:
        return _backend_for(self.key, self.source).algorithm(self.key)

    def verify(self, signature: bytes, data: bytes) -> bool:
        """True when ``signature`` is valid over ``data``. Internal: the public
        API raises (:func:`modelsign.verify`)."""
        return _backend_for(self.key, self.source).verify(self.key, signature, data)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicKey) and self.key_id == other.key_id

    def __hash__(self) -> int:
        return hash(self.key_id)

    @classmethod
    def from_pem(cls, data: bytes, source: str = "<memory>") -> PublicKey:
        """A public key from PEM SubjectPublicKeyInfo bytes.

        Args:
            data: the PEM text.
            source: where it came from, for messages.

        Returns:
            The key, of an algorithm modelsign signs with.

        Raises:
            KeyLoadError: not a PEM public key, or of an unsupported algorithm.
        """
        try:
            key = serialization.load_pem_public_key(data)
        except (ValueError, TypeError) as e:
            raise KeyLoadError(f"{source}: not a PEM public key: {e}") from e
        _backend_for(key, source)
        return cls(key, source)


@dataclass(frozen=True, eq=False)
class PrivateKey:
    """A private signing key."""

    key: PrivateKeyTypes
    source: str = "<memory>"

    def public_key(self) -> PublicKey:
        return PublicKey(self.key.public_key(), self.source)

    def sign(self, data: bytes) -> bytes:
        return _backend_for(self.key, self.source).sign(self.key, data)

    def to_pem(self, passphrase: bytes | None) -> bytes:
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase)
            if passphrase
            else serialization.NoEncryption()
        )
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )


def _read(path: Path) -> bytes:
    return read_small(path, MAX_KEY_FILE_BYTES, "key", KeyLoadError)


def load_public_key(path: str | os.PathLike[str]) -> PublicKey:
    """Load a PEM SubjectPublicKeyInfo key (a private key file is refused).

    Args:
        path: the ``.pub`` file.

    Returns:
        The key.

    Raises:
        KeyLoadError: no such file, not a regular file, too large, not a
            public key (a private key is refused), or an unsupported algorithm.
    """
    p = Path(path)
    return PublicKey.from_pem(_read(p), str(p))


def load_private_key(path: str | os.PathLike[str], passphrase: bytes | None = None) -> PrivateKey:
    """Load a PKCS#8 (or traditional) PEM private key, decrypting it if needed.

    Args:
        path: the ``.key`` file.
        passphrase: its passphrase, when it is encrypted.

    Returns:
        The key.

    Raises:
        PassphraseError: an encrypted key without ``passphrase``, or a
            passphrase for a key that is not encrypted (``needed`` says which).
        KeyLoadError: no such file, a wrong passphrase, not a private key, or
            an unsupported algorithm.
    """
    p = Path(path)
    data = _read(p)
    try:
        key = serialization.load_pem_private_key(data, password=passphrase or None)
    except TypeError as e:
        if passphrase:
            raise PassphraseError(
                f"{p}: the key is not encrypted but a passphrase was given with {{param}}",
                needed=False,
                parameter="passphrase",
            ) from e
        raise PassphraseError(
            f"{p}: the key is encrypted; give its passphrase with {{param}}",
            needed=True,
            parameter="passphrase",
        ) from e
    except ValueError as e:
        raise KeyLoadError(
            f"{p}: cannot load private key (wrong passphrase or not a key): {e}"
        ) from e
    _backend_for(key, str(p))
    return PrivateKey(key, str(p))


def generate(algorithm: str = "ed25519") -> PrivateKey:
    """A fresh private key.

    Args:
        algorithm: one of :data:`ALGORITHMS` (``ed25519``, ``ecdsa-p256``, …).

    Returns:
        The new key, in memory (see :func:`write_keypair`).

    Raises:
        ConfigError: an unknown algorithm.
    """
    for backend in all_backends():
        if algorithm in backend.names:
            return PrivateKey(backend.generate(algorithm))
    raise ConfigError(f"unknown algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}")


def write_keypair(
    key: PrivateKey, prefix: str | os.PathLike[str], passphrase: bytes | None
) -> tuple[Path, Path]:
    """Write ``PREFIX.key`` (PKCS#8 PEM, mode 0600) and ``PREFIX.pub`` (SPKI PEM).

    Creates the parent folder (mode 0700) if needed. Never overwrites: if
    either file exists, nothing is written.
    """
    base = os.fspath(prefix)
    private_path, public_path = Path(base + ".key"), Path(base + ".pub")
    private_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    for p in (private_path, public_path):
        if os.path.lexists(p):
            raise OverwriteError(f"{p}: already exists; modelsign never overwrites it")
    write_atomic(private_path, key.to_pem(passphrase), mode=0o600, overwrite=False)
    try:
        write_atomic(public_path, key.public_key().pem, mode=0o644, overwrite=False)
    except Exception:
        os.unlink(private_path)
        raise
    return private_path, public_path
