"""modelsign: sign ML models, and refuse to load the ones that do not verify.

Public API::

    modelsign.sign(model, key, ...)       -> SignedModel     (writes an OMS v1.0 bundle)
    modelsign.verify(model, keys=[...])   -> VerifiedModel   (raises on rejection)

Errors live in :mod:`modelsign.errors`; every one subclasses
:class:`modelsign.errors.Error`.
"""

from __future__ import annotations

from modelsign.errors import Error, UsageError, VerificationError
from modelsign.keys import PrivateKey, PublicKey, generate, load_private_key, load_public_key
from modelsign.policy import Policy
from modelsign.signing import SignedModel, sign
from modelsign.verifying import VerifiedModel, verify

__version__ = "0.1.0"

__all__ = [
    "Error",
    "Policy",
    "PrivateKey",
    "PublicKey",
    "SignedModel",
    "UsageError",
    "VerificationError",
    "VerifiedModel",
    "__version__",
    "generate",
    "load_private_key",
    "load_public_key",
    "sign",
    "verify",
]
