"""The base of every modelsign error: :class:`Error`, the usage errors
(exit code 2) and :class:`VerificationError` (exit code 1). Public as
:mod:`modelsign.errors`."""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "Error",
    "KeyLoadError",
    "NoTrustAnchorError",
    "OverwriteError",
    "PassphraseError",
    "StateFileError",
    "UsageError",
    "VerificationError",
]


def _restore(cls: type[Error], args: tuple[object, ...]) -> Error:
    """Rebuild an error without calling ``__init__`` (pickling: the fields
    come back as the instance's state)."""
    error = cls.__new__(cls)
    error.args = args
    return error


class Error(Exception):
    """Base class of every error modelsign raises on purpose.

    Every error pickles with its fields (so that a refusal in a
    ``ProcessPoolExecutor`` worker or another process reaches the parent
    intact)."""

    exit_code: int = 1
    #: What to do next, for a person reading the refusal (see :meth:`diagnostics`).
    hint: str | None = None

    def diagnostics(self) -> str:
        """The message, possibly over several lines, and what to do next."""
        return str(self) if self.hint is None else f"{self}\n  what to do: {self.hint}"

    def __reduce__(self) -> tuple[object, ...]:
        return (_restore, (type(self), self.args), dict(vars(self)))

    def to_json(self) -> dict[str, object]:
        """The error for machine-read output (``--json``)."""
        return {"type": type(self).__name__, "message": str(self)}


# --------------------------------------------------------------------------
# "You called me wrong": exit code 2.


class UsageError(Error):
    """The caller's input or configuration is wrong; the model was not judged.

    ``parameter`` names the argument of the Python API the error is about
    (``signer``, ``trust``, ``shard_size``, ...). The message says it as
    ``parameter=``; :meth:`render` says it otherwise (the command line names
    its own flags)."""

    exit_code = 2

    def __init__(self, message: str, *, parameter: str | None = None) -> None:
        self.parameter = parameter
        self.template = message
        super().__init__(self.render(f"{parameter}=" if parameter else ""))

    def render(self, name: str) -> str:
        """The message, with ``name`` where the parameter is mentioned."""
        return self.template.replace("{param}", name)

    def to_json(self) -> dict[str, object]:
        return {**super().to_json(), "parameter": self.parameter}


class ConfigError(UsageError):
    """A policy file, flag combination or option value is invalid."""


class NoTrustAnchorError(ConfigError):
    """A policy names no trusted key, Sigstore identity or CA: trust is never
    implicit, so it is refused rather than read as "trust all"."""


class KeyLoadError(UsageError):
    """A key file cannot be read or parsed, or holds an unsupported key."""


class PassphraseError(KeyLoadError):
    """A key needs a passphrase that was not given (``needed``), or was given
    one it does not need (an unencrypted key)."""

    def __init__(self, message: str, *, needed: bool, parameter: str | None = None) -> None:
        self.needed = needed
        super().__init__(message, parameter=parameter)


class OverwriteError(UsageError):
    """An output file already exists and modelsign never overwrites it."""


class StateFileError(ConfigError):
    """The policy's rollback state file is missing, unreadable, corrupt or
    locked for too long. Never reset silently: ``modelsign state reset``
    (or ``pin``) writes it on purpose."""

    hint = (
        "create or repair it on purpose: modelsign state reset --policy POLICY (forgets every "
        "model), or modelsign state pin MODEL --policy POLICY"
    )


# --------------------------------------------------------------------------
# "Do not trust this model": exit code 1.


class VerificationError(Error):
    """The model, its archive members or its signature must not be trusted."""

    exit_code = 1
