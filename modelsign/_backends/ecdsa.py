"""ECDSA keys on NIST P-256, P-384 and P-521, as OMS requires.

The digest follows the curve (SHA-256, SHA-384, SHA-512) and signatures are
DER-encoded, exactly as model_signing writes and reads them.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

_CURVES: dict[str, tuple[type[ec.EllipticCurve], type[hashes.HashAlgorithm]]] = {
    "ecdsa-p256": (ec.SECP256R1, hashes.SHA256),
    "ecdsa-p384": (ec.SECP384R1, hashes.SHA384),
    "ecdsa-p521": (ec.SECP521R1, hashes.SHA512),
}
_BY_CURVE: dict[str, tuple[str, type[hashes.HashAlgorithm]]] = {
    "secp256r1": ("ecdsa-p256", hashes.SHA256),
    "secp384r1": ("ecdsa-p384", hashes.SHA384),
    "secp521r1": ("ecdsa-p521", hashes.SHA512),
}


class _Ecdsa:
    names: tuple[str, ...] = tuple(_CURVES)

    def handles(self, key: PublicKeyTypes | PrivateKeyTypes) -> bool:
        return (
            isinstance(key, (ec.EllipticCurvePublicKey, ec.EllipticCurvePrivateKey))
            and key.curve.name in _BY_CURVE
        )

    def algorithm(self, key: PublicKeyTypes) -> str:
        assert isinstance(key, ec.EllipticCurvePublicKey)
        return _BY_CURVE[key.curve.name][0]

    def _digest(self, key: ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) -> ec.ECDSA:
        return ec.ECDSA(_BY_CURVE[key.curve.name][1]())

    def generate(self, name: str) -> PrivateKeyTypes:
        return ec.generate_private_key(_CURVES[name][0]())

    def sign(self, key: PrivateKeyTypes, data: bytes) -> bytes:
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key.sign(data, self._digest(key))

    def verify(self, key: PublicKeyTypes, signature: bytes, data: bytes) -> bool:
        assert isinstance(key, ec.EllipticCurvePublicKey)
        try:
            key.verify(signature, data, self._digest(key))
        except InvalidSignature:
            return False
        return True


BACKEND = _Ecdsa()
