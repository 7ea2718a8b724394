"""Ed25519 keys (modelsign's addition; the reference tool cannot verify them)."""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes


class _Ed25519:
    names: tuple[str, ...] = ("ed25519",)

    def handles(self, key: PublicKeyTypes | PrivateKeyTypes) -> bool:
        return isinstance(key, (ed25519.Ed25519PublicKey, ed25519.Ed25519PrivateKey))

    def algorithm(self, key: PublicKeyTypes) -> str:
        return "ed25519"

    def generate(self, name: str) -> PrivateKeyTypes:
        return ed25519.Ed25519PrivateKey.generate()

    def sign(self, key: PrivateKeyTypes, data: bytes) -> bytes:
        assert isinstance(key, ed25519.Ed25519PrivateKey)
        return key.sign(data)

    def verify(self, key: PublicKeyTypes, signature: bytes, data: bytes) -> bool:
        assert isinstance(key, ed25519.Ed25519PublicKey)
        try:
            key.verify(signature, data)
        except InvalidSignature:
            return False
        return True


BACKEND = _Ed25519()
