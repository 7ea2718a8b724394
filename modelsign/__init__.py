"""modelsign: sign ML models, and refuse to load the ones that do not verify.

Public API::

    modelsign.sign(model, key, ...)       -> SignedModel     (writes an OMS v1.0 bundle)
    modelsign.verify(model, keys=[...])   -> VerifiedModel   (raises on rejection)
    with modelsign.enforce(policy): ...    loader hooks on (see modelsign.hooks)

Errors live in :mod:`modelsign.errors`; every one subclasses
:class:`modelsign.errors.Error`.
"""

from __future__ import annotations

import contextlib
import os

from modelsign.errors import Error, UsageError, VerificationError
from modelsign.keys import PrivateKey, PublicKey, generate, load_private_key, load_public_key
from modelsign.policy import Policy
from modelsign.signing import SignedModel, sign
from modelsign.verifying import VerifiedModel, verify

__version__ = "0.1.0"


def enforce(
    policy: Policy | str | os.PathLike[str] | None = None,
) -> contextlib.AbstractContextManager[Policy]:
    """``with modelsign.enforce(policy):`` loader hooks on inside the block.

    See :func:`modelsign.hooks.enforce`.
    """
    from modelsign.hooks import enforce as _enforce  # noqa: PLC0415 - keep import light

    return _enforce(policy)


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
    "enforce",
    "generate",
    "load_private_key",
    "load_public_key",
    "sign",
    "verify",
]
