"""The errors of ``modelsign convert`` and its sandbox. Public as
:mod:`modelsign.errors`."""

from __future__ import annotations

from modelsign.errors._base import UsageError, VerificationError

__all__ = [
    "ConvertError",
    "ConvertedOutputError",
    "NonTensorContentError",
    "SandboxLimitError",
    "SandboxTimeoutError",
    "SandboxUnavailableError",
    "SandboxedLoadError",
    "WeightsOnlyRefusedError",
]


# --------------------------------------------------------------------------
# Untrusted checkpoints opened in a sandbox (``modelsign convert``).


class SandboxUnavailableError(UsageError):
    """A sandbox layer modelsign requires cannot be applied on this system
    (``layer``: ``landlock``, ``seccomp`` or ``netns``). Nothing was loaded."""

    hint = (
        "use a kernel and installation that have the layer (docs/adr/0006-sandbox.md says "
        "what each needs), or accept a weaker sandbox without it with --weaker-sandbox LAYER"
    )

    def __init__(
        self, message: str, *, layer: str | None = None, parameter: str | None = None
    ) -> None:
        self.layer = layer
        super().__init__(message, parameter=parameter)

    def to_json(self) -> dict[str, object]:
        return {**super().to_json(), "layer": self.layer}


class ConvertError(VerificationError):
    """An untrusted checkpoint was not converted: what it holds, or what it did
    inside the sandbox, is refused. Nothing was written where the output goes."""


class NonTensorContentError(ConvertError):
    """The checkpoint holds values that are not tensors (optimizer state
    objects, custom classes, numbers, strings); ``found`` lists each one as
    ``path (type)``, its path into the checkpoint."""

    hint = (
        "check that these values may be lost, then convert with --drop-non-tensors "
        "(drop_non_tensors=True) to write the tensors only"
    )

    def __init__(self, message: str, *, found: tuple[str, ...] = ()) -> None:
        self.found = found
        super().__init__(message)

    def to_json(self) -> dict[str, object]:
        return {**super().to_json(), "found": list(self.found)}


class SandboxedLoadError(ConvertError):
    """Loading the checkpoint failed inside the sandbox: the loader raised
    (the checkpoint's own code, or torch refusing it), or the sandboxed process
    died. The message quotes the error the sandboxed process reported."""


class WeightsOnlyRefusedError(SandboxedLoadError):
    """torch's weights-only unpickler refused the checkpoint: it names a
    global (a custom class, a function) beyond tensors and plain containers."""

    hint = (
        "if the checkpoint comes from where you expect and needs its classes, convert it "
        "with --allow-pickle (allow_pickle=True): it is then unpickled in full, running its "
        "code, inside the sandbox"
    )


class SandboxLimitError(SandboxedLoadError):
    """The sandboxed process hit a resource limit (memory, CPU time, output
    size) and was stopped."""

    hint = (
        "if the checkpoint is that large, raise the limit (--memory-limit, --cpu-limit, "
        "--max-output-size); a small checkpoint that needs this much is hostile"
    )


class SandboxTimeoutError(SandboxLimitError):
    """The sandboxed process did not finish within the wall-clock timeout and
    was killed."""

    hint = (
        "if the checkpoint is large, raise --timeout; a small checkpoint that takes "
        "this long is hostile"
    )


class ConvertedOutputError(ConvertError):
    """The safetensors file the sandboxed process wrote is not what it
    reported (header, names, dtypes, shapes, or a tensor's digest), or not a
    well-formed safetensors file. It is deleted, never moved into place."""
