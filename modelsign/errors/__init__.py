"""The exceptions modelsign raises.

Two branches under one base, :class:`Error`:

* :class:`VerificationError` — "do not trust this model": a digest mismatch, a
  missing or extra file, an invalid signature, an untrusted signer, a malformed
  bundle, an unsafe archive or an unsafe model tree. The CLI exits with 1.
* :class:`UsageError` — "you called me wrong": a bad flag, an unreadable key or
  policy, a file that would be overwritten. The CLI exits with 2.

Every message names the file it is about and, for digests, the expected and the
actual value. Foreign exceptions (``InvalidSignature``, JSON, TOML, OS errors)
are wrapped at the boundary with ``raise ... from e``.
"""

from __future__ import annotations

import pickle
import unicodedata
from dataclasses import dataclass
from typing import Literal

from modelsign.errors._base import (
    ConfigError,
    Error,
    KeyLoadError,
    NoTrustAnchorError,
    OverwriteError,
    PassphraseError,
    StateFileError,
    UsageError,
    VerificationError,
)
from modelsign.errors._sandbox import (
    ConvertedOutputError,
    ConvertError,
    NonTensorContentError,
    SandboxedLoadError,
    SandboxLimitError,
    SandboxTimeoutError,
    SandboxUnavailableError,
    WeightsOnlyRefusedError,
)

__all__ = [
    "BuilderMismatchError",
    "BundleTooLargeError",
    "ConfigError",
    "ConvertError",
    "ConvertedOutputError",
    "DigestMismatchError",
    "EquivocationError",
    "Error",
    "ExtraFileError",
    "FileDigestMismatchError",
    "ForbiddenGlobalError",
    "InvalidSignatureError",
    "KeyLoadError",
    "LineageError",
    "LoadRefusedError",
    "MalformedBundleError",
    "Mismatch",
    "MissingFileError",
    "MissingProvenanceError",
    "MissingSignatureError",
    "ModelMismatchError",
    "ModelSubstitutionError",
    "NoTrustAnchorError",
    "NonTensorContentError",
    "OverwriteError",
    "PassphraseError",
    "ProvenanceError",
    "ProvenanceMismatchError",
    "RollbackError",
    "SandboxLimitError",
    "SandboxTimeoutError",
    "SandboxUnavailableError",
    "SandboxedLoadError",
    "SignerExpiredError",
    "SignerNotYetValidError",
    "SignerRevokedError",
    "SignerValidityError",
    "StateFileError",
    "ThresholdNotMetError",
    "UnsafeArchiveError",
    "UnsafeLoadError",
    "UnsafeModelError",
    "UnsignedFileError",
    "UntrustedBundleError",
    "UntrustedSignerError",
    "UnversionedModelError",
    "UsageError",
    "VerificationError",
    "WeightsOnlyRefusedError",
]


class MalformedBundleError(VerificationError):
    """The signature file is not a well-formed OMS v1.0 bundle."""

    hint = "fetch the bundle again from where the model came from, or sign the model again"


class BundleTooLargeError(MalformedBundleError):
    """The signature file is larger than the configured limit (not decoded)."""

    hint = "this is not a bundle modelsign writes; fetch the right one, or sign the model again"


class InvalidSignatureError(VerificationError):
    """The DSSE signature does not verify with the trusted key."""

    hint = (
        "the bundle was altered or belongs to other bytes: fetch it again from where the "
        "model came from"
    )


class UntrustedSignerError(VerificationError):
    """The bundle was signed by a key or identity that is not trusted."""

    hint = (
        "if this signer should be trusted, add its key, identity or CA to the policy; "
        "otherwise get the model signed by a signer you trust"
    )


class SignerValidityError(UntrustedSignerError):
    """A trusted signer's anchor did not vouch for signatures at the time this
    one was made: outside its validity window, or revoked. The time comes
    only from trusted evidence (a verified timestamp, Rekor's integrated
    time), else it is the verification time."""


class SignerExpiredError(SignerValidityError):
    """The signature was made at or after the anchor's ``not_after``."""

    hint = (
        "the key or identity expired: get the model signed by its successor (rotation), or, "
        "if the signature is older, have it timestamped by a TSA the policy names"
    )


class SignerNotYetValidError(SignerValidityError):
    """The signature was made before the anchor's ``not_before``."""

    hint = "the policy does not trust this signer yet: check not_before, or the signer's clock"


class SignerRevokedError(SignerValidityError):
    """The anchor is revoked: for every signature, or for those not proven
    (by a trusted timestamp) to be older than the revocation time."""

    hint = (
        "the signer's key or identity was revoked: get the model signed again by a signer "
        "the policy trusts"
    )


class ThresholdNotMetError(VerificationError):
    """Fewer distinct trusted signers vouch for the statement than a policy
    rule requires. ``report`` (also in :meth:`to_json` as ``signatures``)
    lists which bundles counted, for whom, and why the others did not."""

    hint = (
        "add the missing signatures with modelsign cosign (each signer once), or check why "
        "the listed bundles did not count"
    )
    report: dict[str, object] | None = None

    def __init__(self, message: str, *, report: dict[str, object] | None = None) -> None:
        self.report = report
        super().__init__(message)

    def to_json(self) -> dict[str, object]:
        out = super().to_json()
        if self.report is not None:
            out["signatures"] = self.report
        return out


class ModelSubstitutionError(VerificationError):
    """A validly signed bundle is for another model than the policy pins for
    this path (or records no model name where a pin needs one)."""

    hint = (
        "the files at this path are another model than the policy expects: restore the "
        "right model, or correct the pin ([[trust.pin]]) if the change is intended"
    )


class RollbackError(VerificationError):
    """The model's signed version is older than the highest version of that
    model this policy's state file has seen verify."""

    hint = (
        "a newer version of this model has been verified here: install it; to go back on "
        "purpose, modelsign state pin MODEL --policy POLICY"
    )


class EquivocationError(VerificationError):
    """The model's signed version was seen before with another root digest:
    two different models were signed under the same name and version."""

    hint = (
        "someone signed two different models as the same version: find out which one is "
        "genuine; to accept this one on purpose, modelsign state pin MODEL --policy POLICY"
    )


class UnversionedModelError(VerificationError):
    """The policy keeps rollback state, and the bundle records no model name
    and version to check it with."""

    hint = (
        "sign the model with a name and version (modelsign sign --model-name N "
        "--model-version V), or keep it out of a policy with a rollback state"
    )


class UnsafeArchiveError(VerificationError):
    """An archive is structurally ambiguous (readers would disagree on it)."""

    hint = "write the archive again with the library that made it (torch.save, zipfile, ...)"


class UnsafeModelError(VerificationError):
    """The model tree holds something modelsign refuses to hash or load:
    a symlink, a FIFO, a device, an invalid path name, or nothing at all."""


#: What kind of difference a :class:`Mismatch` is:
#:
#: * ``digest``: the file (or, with ``shard``, one shard of it) has another digest;
#: * ``size``: shard mode: the file has another size than signed (not read);
#: * ``shards``: shard mode: more shards differ than are listed one by one;
#: * ``missing``: a signed file is not on disk;
#: * ``extra``: a file on disk is not in the signed manifest.
MismatchKind = Literal["digest", "size", "shards", "missing", "extra"]


@dataclass(frozen=True)
class Mismatch:
    """One difference between the signed manifest and the files on disk."""

    kind: MismatchKind
    #: The file's name in the manifest.
    name: str
    #: The signed and the actual digest (hex), of the file or of ``shard``.
    expected: str | None = None
    actual: str | None = None
    #: Shard mode: the signed and the actual size of the file, in bytes.
    expected_size: int | None = None
    actual_size: int | None = None
    #: Shard mode: the (start, end) byte range whose digest differs.
    shard: tuple[int, int] | None = None
    #: Kind ``shards``: how many shards were signed, how many differ.
    shards: int | None = None
    differing: int | None = None
    #: For an archive with a digest mismatch: which members differ (diagnostics).
    members: tuple[str, ...] = ()

    def describe(self) -> str:
        """One line (plus a line per differing archive member) of prose."""
        name = self.name
        if not unicodedata.is_normalized("NFC", name) or not name.isprintable():
            name = f"{name} {name!a}"  # tell look-alike names apart
        if self.shard is not None:
            name = f"{name}:{self.shard[0]}:{self.shard[1]}"
        if self.kind == "digest":
            text = f"{name}: digest mismatch: expected {self.expected}, actual {self.actual}"
            return "".join([text, *(f"\n    {m}" for m in self.members)])
        if self.kind == "size":
            return (
                f"{name}: size mismatch: expected {self.expected_size} bytes, "
                f"actual {self.actual_size} bytes"
            )
        if self.kind == "shards":
            return (
                f"{name}: shards mismatch: expected {self.shards} shards as signed, "
                f"actual {self.differing} of them differ (the first listed above)"
            )
        if self.kind == "missing":
            signed = (
                f"size {self.expected_size} bytes"
                if self.expected is None
                else f"digest {self.expected}"
            )
            return f"{name}: missing: signed with {signed}, not on disk"
        return f"{name}: extra file: on disk but not in the signed manifest"

    def to_json(self) -> dict[str, object]:
        """The fields that are set, for machine-read output."""
        out: dict[str, object] = {"kind": self.kind, "name": self.name}
        for field in ("expected", "actual", "expected_size", "actual_size", "shards", "differing"):
            value = getattr(self, field)
            if value is not None:
                out[field] = value
        if self.shard is not None:
            out["shard"] = {"start": self.shard[0], "end": self.shard[1]}
        if self.members:
            out["members"] = list(self.members)
        return out


class ModelMismatchError(VerificationError):
    """The files on disk differ from the signed manifest.

    Raised as :class:`DigestMismatchError`, :class:`MissingFileError` or
    :class:`ExtraFileError` when every difference is of that one kind, and as
    this class itself when the differences are of several kinds. Every instance
    lists all differences in :attr:`mismatches`, in name order.
    """

    hint = (
        "restore the files from where the model came from (download it again); if the "
        "change is intended, sign the model again"
    )

    def __init__(self, model: str, mismatches: tuple[Mismatch, ...]) -> None:
        self.model = model
        self.mismatches = mismatches
        lines = "\n".join(f"  {m.describe()}" for m in mismatches)
        count = len(mismatches)
        noun = "difference" if count == 1 else "differences"
        super().__init__(f"model {model} does not match its signature ({count} {noun}):\n{lines}")

    def to_json(self) -> dict[str, object]:
        return {
            "type": type(self).__name__,
            "message": str(self),
            "model": self.model,
            "mismatches": [m.to_json() for m in self.mismatches],
        }

    @classmethod
    def for_mismatches(cls, model: str, mismatches: tuple[Mismatch, ...]) -> ModelMismatchError:
        """The error of the most precise class for a set of differences.

        Args:
            model: the model, as the caller named it.
            mismatches: every difference found.

        Returns:
            ``DigestMismatchError``, ``MissingFileError``, … when every
            mismatch is of one kind; else a ``ModelMismatchError``.

        Raises:
            KeyError: a mismatch of an unknown kind (a bug).
        """
        classes = {_BY_KIND[m.kind] for m in mismatches}
        if len(classes) == 1:
            (precise,) = classes
            return precise(model, mismatches)
        return ModelMismatchError(model, mismatches)


class DigestMismatchError(ModelMismatchError):
    """One or more files have a digest other than the signed one."""


class MissingFileError(ModelMismatchError):
    """One or more signed files are not on disk."""


class ExtraFileError(ModelMismatchError):
    """One or more files on disk are not in the signed manifest."""


_BY_KIND: dict[str, type[ModelMismatchError]] = {
    "digest": DigestMismatchError,
    "size": DigestMismatchError,
    "shards": DigestMismatchError,
    "missing": MissingFileError,
    "extra": ExtraFileError,
}


class MissingSignatureError(MalformedBundleError):
    """There is no signature file where one was expected: the model is unsigned."""

    hint = "sign the model (modelsign sign) or fetch its bundle (model.sig) with it"


# --------------------------------------------------------------------------
# Load-time refusals (the loader hook). They also subclass
# pickle.UnpicklingError, so that `except pickle.UnpicklingError` clauses in
# existing loading code keep catching a refused load.


class LoadRefusedError(VerificationError, pickle.UnpicklingError):
    """A hooked loader refused to deserialize a file or buffer."""

    def __init__(
        self,
        message: str,
        *,
        target: str,
        policy: str,
        expected: str | None = None,
        actual: str | None = None,
    ) -> None:
        self.target = target
        self.policy = policy
        self.expected = expected
        self.actual = actual
        super().__init__(f"refused to load {target}: {message} (policy: {policy})")

    def to_json(self) -> dict[str, object]:
        return {
            **super().to_json(),
            "target": self.target,
            "policy": self.policy,
            "expected": self.expected,
            "actual": self.actual,
        }


class UnsignedFileError(LoadRefusedError):
    """No bundle signed by a trusted key lists these bytes."""

    hint = "sign the model the file belongs to, or list its bundle in the policy ([trust] bundles)"


class FileDigestMismatchError(LoadRefusedError):
    """A trusted bundle lists the file, with another digest: it was changed."""

    hint = (
        "the file changed since it was signed: restore it (download it again), or sign "
        "the model again if the change is intended"
    )


class UntrustedBundleError(LoadRefusedError):
    """The bundle that would vouch for the file is malformed, badly signed or
    signed by an untrusted key (the underlying error is ``__cause__``)."""


class ForbiddenGlobalError(LoadRefusedError):
    """An unpickling of bytes no trusted bundle vouches for tried to resolve a
    global outside the safe allowlist (the audit-hook layer: it sees every
    unpickler, however it was reached). ``expected`` describes what is allowed,
    ``actual`` names the global."""

    hint = (
        "if this data should be trusted, sign the file it comes from; or allow this one "
        "global in the policy ([enforce] allowed_globals)"
    )


class UnsafeLoadError(LoadRefusedError):
    """The load itself is unsafe: a file object not at position 0, a special
    file, a symlink the bundle does not allow, an ambiguous archive."""


# --------------------------------------------------------------------------
# Signed provenance (modelsign.provenance): "do not trust this model" too.


class ProvenanceError(VerificationError):
    """The model's signed provenance is required and does not hold.

    ``provenance`` names the provenance bundle; ``expected`` and ``actual``
    are the two values that differ, where there are two."""

    def __init__(
        self,
        message: str,
        *,
        provenance: str | None = None,
        expected: str | None = None,
        actual: str | None = None,
    ) -> None:
        self.provenance = provenance
        self.expected = expected
        self.actual = actual
        super().__init__(message)

    def to_json(self) -> dict[str, object]:
        return {
            **super().to_json(),
            "provenance": self.provenance,
            "expected": self.expected,
            "actual": self.actual,
        }


class MissingProvenanceError(ProvenanceError):
    """Provenance is required, and the model has no provenance bundle."""

    hint = (
        "attest the model (modelsign attest) where it is built, or fetch its "
        "provenance bundle (model.provenance.sig) with it"
    )


class ProvenanceMismatchError(ProvenanceError):
    """The provenance is about another model: its subject digest is not this
    model's root digest (``expected``: the model's, ``actual``: the subject's)."""

    hint = (
        "this provenance belongs to other bytes: fetch the model's own provenance, or "
        "attest the model again if it was rebuilt"
    )


class BuilderMismatchError(ProvenanceError):
    """The provenance names another builder than the policy requires
    (``expected``: the policy's, ``actual``: the provenance's)."""

    hint = "build the model on the builder the policy names, or change the policy's builder_id"


class LineageError(ProvenanceError):
    """The base model the provenance names cannot be found, does not verify
    under the policy, or is not the one recorded (``expected``: the recorded
    root digest, ``actual``: the one found, if any)."""

    hint = (
        "give the base model's location (base_models=, --base-model, or [provenance] "
        "base_models in the policy), and make sure it is signed by a signer the policy trusts"
    )


# The classes of the private modules are this module's: their names in
# messages, pickles and the API reference are modelsign.errors.NAME.
for _cls in (
    ConfigError,
    ConvertError,
    ConvertedOutputError,
    Error,
    KeyLoadError,
    NoTrustAnchorError,
    NonTensorContentError,
    OverwriteError,
    PassphraseError,
    SandboxLimitError,
    SandboxTimeoutError,
    SandboxUnavailableError,
    SandboxedLoadError,
    StateFileError,
    UsageError,
    VerificationError,
    WeightsOnlyRefusedError,
):
    _cls.__module__ = __name__
del _cls
