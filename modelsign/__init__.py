"""modelsign: sign ML models, and refuse to load the ones that do not verify.

Sign, verify, and turn the loader hook on::

    import modelsign

    signer = modelsign.KeySigner.from_file("release.key", passphrase=b"...")
    modelsign.sign("models/bert", signer)                      # -> SignedModel
    key = modelsign.load_public_key("release.pub")
    modelsign.verify("models/bert", [key])                     # -> VerifiedModel, or raises
    with modelsign.enforce(modelsign.Policy.load("policy.toml")):
        torch.load("models/bert/pytorch_model.bin")            # verified before it unpickles

Signers: :class:`KeySigner`, :class:`CertificateSigner`, :class:`SigstoreSigner`.
Trust: a :class:`Policy`, or anchors (:class:`PublicKey`,
:class:`SigstoreIdentity`, :class:`CertificateAuthority`). Every error is a
:class:`Error`: :class:`VerificationError` ("do not trust this model") or
:class:`UsageError` ("you called me wrong"); the precise classes are in
:mod:`modelsign.errors`. Public modules: ``errors``, ``keys``, ``policy``,
``signing``, ``verifying``, ``hooks``, ``manifest``, ``bundle``,
``checkpoints``, ``provenance``.

Names are imported on first use, so that ``import modelsign`` (and
``modelsign --help``) stays fast.
"""

from __future__ import annotations

import importlib as _importlib
from typing import TYPE_CHECKING as _TYPE_CHECKING

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
    "Anchor": "modelsign.policy",
    "AnchorTerms": "modelsign.policy",
    "CertificateAuthority": "modelsign.policy",
    "Pin": "modelsign.policy",
    "Policy": "modelsign.policy",
    "SigstoreIdentity": "modelsign.policy",
    "Threshold": "modelsign.policy",
    "HashType": "modelsign.manifest",
    "Release": "modelsign.manifest",
    "CertificateSigner": "modelsign.signing",
    "KeySigner": "modelsign.signing",
    "Method": "modelsign.signing",
    "Progress": "modelsign.signing",
    "SignedBy": "modelsign.signing",
    "SignedModel": "modelsign.signing",
    "Signer": "modelsign.signing",
    "SigstoreSigner": "modelsign.signing",
    "sign": "modelsign.signing",
    "VerifiedModel": "modelsign.verifying",
    "verify": "modelsign.verifying",
    "BundleClaims": "modelsign._inspecting",
    "ClaimedSigner": "modelsign._inspecting",
    "inspect_bundle": "modelsign._inspecting",
    "enforce": "modelsign.hooks",
    "cosign": "modelsign._cosigning",
    "Dependency": "modelsign.provenance",
    "Provenance": "modelsign.provenance",
    "attest": "modelsign.provenance",
    "read_provenance": "modelsign.provenance",
    "verify_provenance": "modelsign.provenance",
}

#: The public modules, served as attributes too (``modelsign.hooks``).
_MODULES = frozenset(
    {
        "errors",
        "keys",
        "policy",
        "signing",
        "verifying",
        "hooks",
        "manifest",
        "bundle",
        "checkpoints",
        "provenance",
    }
)

__all__ = [
    "Anchor",
    "AnchorTerms",
    "BundleClaims",
    "CertificateAuthority",
    "CertificateSigner",
    "ClaimedSigner",
    "Dependency",
    "Error",
    "HashType",
    "KeySigner",
    "Method",
    "Pin",
    "Policy",
    "PrivateKey",
    "Progress",
    "Provenance",
    "PublicKey",
    "Release",
    "SignedBy",
    "SignedModel",
    "Signer",
    "SigstoreIdentity",
    "SigstoreSigner",
    "Threshold",
    "UsageError",
    "VerificationError",
    "VerifiedModel",
    "__version__",
    "attest",
    "cosign",
    "enforce",
    "generate",
    "inspect_bundle",
    "load_private_key",
    "load_public_key",
    "read_provenance",
    "sign",
    "verify",
    "verify_provenance",
]

if _TYPE_CHECKING:
    from modelsign._cosigning import cosign
    from modelsign._inspecting import BundleClaims, ClaimedSigner, inspect_bundle
    from modelsign.errors import Error, UsageError, VerificationError
    from modelsign.hooks import enforce
    from modelsign.keys import PrivateKey, PublicKey, generate, load_private_key, load_public_key
    from modelsign.manifest import HashType, Release
    from modelsign.policy import (
        Anchor,
        AnchorTerms,
        CertificateAuthority,
        Pin,
        Policy,
        SigstoreIdentity,
        Threshold,
    )
    from modelsign.provenance import (
        Dependency,
        Provenance,
        attest,
        read_provenance,
        verify_provenance,
    )
    from modelsign.signing import (
        CertificateSigner,
        KeySigner,
        Method,
        Progress,
        SignedBy,
        SignedModel,
        Signer,
        SigstoreSigner,
        sign,
    )
    from modelsign.verifying import VerifiedModel, verify


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is not None:
        value = getattr(_importlib.import_module(module), name)
    elif name in _MODULES:
        value = _importlib.import_module(f"modelsign.{name}")
    else:
        raise AttributeError(f"module 'modelsign' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*__all__, *_MODULES})
