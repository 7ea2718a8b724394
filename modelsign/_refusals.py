"""Load-time refusals for the release-trust checks.

Each class is both the refusal (a :class:`~modelsign.errors.LoadRefusedError`
naming the file and the policy, and a ``pickle.UnpicklingError``) and the
verification error that :func:`modelsign.verify` raises for the same reason,
so that ``except SignerRevokedError`` catches a refused ``torch.load`` too.
"""

from __future__ import annotations

from modelsign.errors import (
    EquivocationError,
    LoadRefusedError,
    ModelSubstitutionError,
    RollbackError,
    SignerExpiredError,
    SignerNotYetValidError,
    SignerRevokedError,
    ThresholdNotMetError,
    UntrustedBundleError,
    UnversionedModelError,
    VerificationError,
)

__all__ = [
    "EquivocationLoadError",
    "ModelSubstitutionLoadError",
    "RollbackLoadError",
    "SignerExpiredLoadError",
    "SignerNotYetValidLoadError",
    "SignerRevokedLoadError",
    "ThresholdNotMetLoadError",
    "UnversionedModelLoadError",
    "load_refusal_class",
]


class ThresholdNotMetLoadError(UntrustedBundleError, ThresholdNotMetError):
    """A hooked load refused: :class:`ThresholdNotMetError`."""


class SignerExpiredLoadError(UntrustedBundleError, SignerExpiredError):
    """A hooked load refused: :class:`SignerExpiredError`."""


class SignerNotYetValidLoadError(UntrustedBundleError, SignerNotYetValidError):
    """A hooked load refused: :class:`SignerNotYetValidError`."""


class SignerRevokedLoadError(UntrustedBundleError, SignerRevokedError):
    """A hooked load refused: :class:`SignerRevokedError`."""


class ModelSubstitutionLoadError(UntrustedBundleError, ModelSubstitutionError):
    """A hooked load refused: :class:`ModelSubstitutionError`."""


class RollbackLoadError(UntrustedBundleError, RollbackError):
    """A hooked load refused: :class:`RollbackError`."""


class EquivocationLoadError(UntrustedBundleError, EquivocationError):
    """A hooked load refused: :class:`EquivocationError`."""


class UnversionedModelLoadError(UntrustedBundleError, UnversionedModelError):
    """A hooked load refused: :class:`UnversionedModelError`."""


_LOAD_REFUSALS: tuple[tuple[type[VerificationError], type[LoadRefusedError]], ...] = (
    (ThresholdNotMetError, ThresholdNotMetLoadError),
    (SignerExpiredError, SignerExpiredLoadError),
    (SignerNotYetValidError, SignerNotYetValidLoadError),
    (SignerRevokedError, SignerRevokedLoadError),
    (ModelSubstitutionError, ModelSubstitutionLoadError),
    (RollbackError, RollbackLoadError),
    (EquivocationError, EquivocationLoadError),
    (UnversionedModelError, UnversionedModelLoadError),
)


def load_refusal_class(
    error: VerificationError, default: type[LoadRefusedError] = UntrustedBundleError
) -> type[LoadRefusedError]:
    """The load refusal for a bundle that failed with ``error``: the class
    that is also ``error``'s class (for the release-trust errors), else
    ``default``."""
    if isinstance(error, LoadRefusedError):
        return type(error)
    for base, refusal in _LOAD_REFUSALS:
        if isinstance(error, base):
            return refusal
    return default
