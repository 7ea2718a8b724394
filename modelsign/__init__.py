"""modelsign: sign ML models, and refuse to load the ones that do not verify.

Public API::

    modelsign.sign(model, key, ...)       -> SignedModel     (writes an OMS v1.0 bundle)
    modelsign.verify(model, keys=[...])   -> VerifiedModel   (raises on rejection)
    with modelsign.enforce(policy): ...    loader hooks on (see modelsign.hooks)

Errors live in :mod:`modelsign.errors`; every one subclasses
:class:`modelsign.errors.Error`. Names are imported on first use, so that
``import modelsign`` (and ``modelsign --help``) stays fast.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> module that defines it
_LAZY = {
    "Error": "modelsign.errors",
    "UsageError": "modelsign.errors",
    "VerificationError": "modelsign.errors",
    "PrivateKey": "modelsign.keys",
    "PublicKey": "modelsign.keys",
    "generate": "modelsign.keys",
    "load_private_key": "modelsign.keys",
    "load_public_key": "modelsign.keys",
    "Policy": "modelsign.policy",
    "SignedModel": "modelsign.signing",
    "sign": "modelsign.signing",
    "VerifiedModel": "modelsign.verifying",
    "verify": "modelsign.verifying",
    "enforce": "modelsign.hooks",
}

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

if TYPE_CHECKING:
    from modelsign.errors import Error, UsageError, VerificationError
    from modelsign.hooks import enforce
    from modelsign.keys import PrivateKey, PublicKey, generate, load_private_key, load_public_key
    from modelsign.policy import Policy
    from modelsign.signing import SignedModel, sign
    from modelsign.verifying import VerifiedModel, verify


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
    elif importlib.util.find_spec(f"modelsign.{name}") is not None:
        value = importlib.import_module(f"modelsign.{name}")  # modelsign.hooks and the like
    else:
        raise AttributeError(f"module 'modelsign' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
