"""One private module per key algorithm, behind :class:`Backend`."""

from __future__ import annotations

from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes


class Backend(Protocol):
    """What :mod:`modelsign.keys` needs from an algorithm."""

    names: tuple[str, ...]

    def handles(self, key: PublicKeyTypes | PrivateKeyTypes) -> bool: ...
    def algorithm(self, key: PublicKeyTypes) -> str: ...
    def generate(self, name: str) -> PrivateKeyTypes: ...
    def sign(self, key: PrivateKeyTypes, data: bytes) -> bytes: ...
    def verify(self, key: PublicKeyTypes, signature: bytes, data: bytes) -> bool: ...


def all_backends() -> tuple[Backend, ...]:
    from modelsign._backends import ecdsa, ed25519  # noqa: PLC0415

    return (ed25519.BACKEND, ecdsa.BACKEND)
