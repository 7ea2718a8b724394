"""The provenance statement: an in-toto Statement v1 with the SLSA Provenance
v1 predicate, built from plain values and parsed strictly from untrusted bytes.

No I/O here: :mod:`modelsign.provenance` gathers the values (files, git, CI,
clock) and signs. The mapping of a training run onto the predicate is in
``docs/adr/0004-provenance.md``.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from modelsign import _json
from modelsign.errors import Error, MalformedBundleError
from modelsign.manifest import STATEMENT_TYPE

if TYPE_CHECKING:
    from modelsign._inspecting import ClaimedSigner
    from modelsign.signing import SignedBy

__all__ = [
    "BUILD_TYPE",
    "PREDICATE_TYPE",
    "Dependency",
    "Provenance",
    "Role",
    "parse_time",
    "rfc3339",
    "statement_payload",
]

PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
#: The build type of a training run recorded by modelsign (what
#: externalParameters and the dependencies' roles mean).
BUILD_TYPE = "https://modelsign.invalid/buildtypes/training/v1"

#: What a resolved dependency is to the model: its training ``code``, a
#: ``dataset``, its ``base_model``, a ``framework`` (python, torch, ...);
#: ``other`` for a descriptor without a modelsign role (written by another tool).
Role: TypeAlias = Literal["code", "dataset", "base_model", "framework", "other"]
_ROLES: tuple[Role, ...] = ("code", "dataset", "base_model", "framework", "other")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_DIGEST_VALUE = re.compile(r"^[0-9a-f]{8,128}$")


def rfc3339(when: datetime.datetime) -> str:
    """``when`` (timezone-aware) in UTC, RFC 3339 to the second: ``...Z``."""
    return when.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(
    value: object, where: str, error: type[Error] = MalformedBundleError
) -> datetime.datetime | None:
    """An RFC 3339 time with a time zone (None stays None); ``error`` names
    ``where`` otherwise."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise error(f"{where} must be an RFC 3339 time string, not {value!r}")
    try:
        when = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as e:
        raise error(f"{where} {value!r} is not an RFC 3339 time") from e
    if when.tzinfo is None:
        raise error(f"{where} {value!r} has no time zone: give one (Z, or +01:00)")
    return when


@dataclass(frozen=True)
class Dependency:
    """One resolved dependency of a training run (a SLSA ResourceDescriptor).

    ``digest`` maps algorithm to lowercase hex: ``sha256`` for a dataset, a
    base model or a file (for a folder, and for a model, the OMS root digest:
    ``digest_of`` says which), ``gitCommit`` for code."""

    role: Role
    uri: str | None = None
    name: str | None = None
    digest: Mapping[str, str] = field(default_factory=dict)
    #: Code: tracked files differed from the commit when the model was built.
    dirty: bool | None = None
    #: What ``digest["sha256"]`` is over: ``file`` (its bytes) or ``oms-root``
    #: (the OMS root digest of a folder or a model, as a model.sig signs it).
    digest_of: Literal["file", "oms-root"] | None = None
    #: Base model: whether it had a bundle of its own when it was recorded.
    signed: bool | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "digest", MappingProxyType(dict(sorted(self.digest.items()))))
        if self.role not in _ROLES:
            raise ValueError(f"role {self.role!r} is not one of {_ROLES}")
        if self.uri is None and not self.digest and self.role != "other":
            raise ValueError("a dependency needs a uri or a digest")

    @property
    def sha256(self) -> str | None:
        """``digest["sha256"]``, if any."""
        return self.digest.get("sha256")

    @property
    def git_commit(self) -> str | None:
        """``digest["gitCommit"]``, if any."""
        return self.digest.get("gitCommit")

    @property
    def version(self) -> str | None:
        """A framework's version (from its ``pkg:`` URI)."""
        if self.uri is None or not self.uri.startswith("pkg:") or "@" not in self.uri:
            return None
        return self.uri.rpartition("@")[2]

    def describe(self) -> str:
        """One line of prose."""
        what = self.name or self.uri or "?"
        if self.git_commit is not None:
            dirty = " (dirty: uncommitted changes)" if self.dirty else ""
            return f"{self.uri} commit {self.git_commit}{dirty}"
        if self.sha256 is not None:
            return f"{what} sha256:{self.sha256}" + (
                f" ({self.uri})" if self.uri and self.uri != what else ""
            )
        return what if self.version is None else f"{self.name} {self.version}"

    def to_json(self) -> dict[str, object]:
        """The fields that are set, for machine-read output."""
        out: dict[str, object] = {"role": self.role}
        for key in ("name", "uri", "dirty", "digest_of", "signed"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        out["digest"] = dict(self.digest)
        return out

    def to_descriptor(self) -> dict[str, Any]:
        """The SLSA ResourceDescriptor (modelsign's fields under ``annotations``)."""
        out: dict[str, Any] = {}
        if self.uri is not None:
            out["uri"] = self.uri
        if self.name is not None:
            out["name"] = self.name
        if self.digest:
            out["digest"] = dict(self.digest)
        notes: dict[str, Any] = {"role": self.role}
        for key in ("dirty", "digest_of", "signed"):
            value = getattr(self, key)
            if value is not None:
                notes[key] = value
        out["annotations"] = notes
        return out

    @classmethod
    def from_descriptor(cls, obj: object, where: str) -> Dependency:
        """Parse a ResourceDescriptor; fields modelsign does not use are ignored."""
        if not isinstance(obj, dict):
            raise MalformedBundleError(f"{where} must be an object")
        uri, name = obj.get("uri"), obj.get("name")
        for key, value in (("uri", uri), ("name", name)):
            if value is not None and not isinstance(value, str):
                raise MalformedBundleError(f"{where}.{key} must be a string")
        digest = obj.get("digest", {})
        if not isinstance(digest, dict) or not all(
            isinstance(v, str) and _DIGEST_VALUE.match(v) for v in digest.values()
        ):
            raise MalformedBundleError(f"{where}.digest must map algorithms to lowercase hex")
        notes = obj.get("annotations", {})
        if not isinstance(notes, dict):
            raise MalformedBundleError(f"{where}.annotations must be an object")
        role = notes.get("role", "other")
        if role not in _ROLES:
            role = "other"
        dirty, signed = notes.get("dirty"), notes.get("signed")
        digest_of = notes.get("digest_of")
        if any(v is not None and not isinstance(v, bool) for v in (dirty, signed)) or (
            digest_of not in (None, "file", "oms-root")
        ):
            raise MalformedBundleError(f"{where}.annotations: dirty/signed/digest_of malformed")
        if "sha256" in digest and not _HEX64.match(digest["sha256"]):
            raise MalformedBundleError(f"{where}.digest.sha256 is not 64 hex digits")
        if uri is None and not digest and "content" not in obj:
            raise MalformedBundleError(f"{where} has no uri, digest or content")
        if uri is None and not digest:  # inline content only: not one of modelsign's
            role = "other"
        return cls(role, uri, name, digest, dirty, digest_of, signed)


@dataclass(frozen=True)
class Provenance:
    """A model's signed provenance: how it was built, from what.

    From :func:`~modelsign.provenance.verify_provenance` (``signed_by`` set:
    the signature verified under the policy and the subject is the model's
    root digest) or :func:`~modelsign.provenance.read_provenance` (claims
    only: ``signed_by`` is None, nothing is verified)."""

    #: The provenance bundle file.
    path: Path
    #: The statement's subject: the model's name and OMS root digest (hex).
    subject_name: str
    subject_digest: str
    #: ``runDetails.builder.id``: who ran the training.
    builder_id: str
    build_type: str
    invocation_id: str | None = None
    started: datetime.datetime | None = None
    finished: datetime.datetime | None = None
    entry_point: str | None = None
    #: The hyperparameters given by the caller (JSON values).
    parameters: Mapping[str, Any] = field(default_factory=dict)
    #: ``internalParameters``: what the builder set (e.g. ``ci``).
    internal_parameters: Mapping[str, Any] = field(default_factory=dict)
    dependencies: tuple[Dependency, ...] = ()
    #: Who the bundle says signed it (unverified claim).
    signer: ClaimedSigner | None = None
    #: Who signed it, as verification established; None when not verified.
    signed_by: SignedBy | None = None

    @property
    def verified(self) -> bool:
        """Whether the signature was verified (``signed_by`` is set)."""
        return self.signed_by is not None

    def _role(self, role: Role) -> tuple[Dependency, ...]:
        return tuple(d for d in self.dependencies if d.role == role)

    @property
    def code(self) -> Dependency | None:
        """The training code (repository URL and git commit), if recorded."""
        return next(iter(self._role("code")), None)

    @property
    def datasets(self) -> tuple[Dependency, ...]:
        """The datasets, in the order recorded."""
        return self._role("dataset")

    @property
    def base_model(self) -> Dependency | None:
        """The base model (fine-tuned from), if any."""
        return next(iter(self._role("base_model")), None)

    @property
    def frameworks(self) -> dict[str, str]:
        """Name to version: python, torch, transformers, ..."""
        return {d.name: d.version for d in self._role("framework") if d.name and d.version}

    def to_json(self) -> dict[str, object]:
        """For machine-read output (``attest --json``, ``verify --json``)."""

        def when(t: datetime.datetime | None) -> str | None:
            return None if t is None else rfc3339(t)

        code, base = self.code, self.base_model
        return {
            "provenance": str(self.path),
            "verified": self.verified,
            "subject": {"name": self.subject_name, "root_digest": self.subject_digest},
            "builder_id": self.builder_id,
            "build_type": self.build_type,
            "invocation_id": self.invocation_id,
            "started": when(self.started),
            "finished": when(self.finished),
            "entry_point": self.entry_point,
            "parameters": dict(self.parameters),
            "code": None if code is None else code.to_json(),
            "datasets": [d.to_json() for d in self.datasets],
            "base_model": None if base is None else base.to_json(),
            "frameworks": self.frameworks,
            "other_dependencies": [d.to_json() for d in self._role("other")],
            "signer": None if self.signer is None else self.signer.to_json(),
            "signed_by": None if self.signed_by is None else self.signed_by.to_json(),
        }

    @classmethod
    def from_payload(
        cls,
        payload: bytes,
        path: Path,
        *,
        signer: ClaimedSigner | None = None,
        signed_by: SignedBy | None = None,
    ) -> Provenance:
        """Parse a DSSE payload: an in-toto Statement v1 with exactly one
        subject (a sha256 digest) and the SLSA Provenance v1 predicate.
        Fields modelsign does not use are ignored, as in-toto asks.

        Raises:
            MalformedBundleError: not strict JSON, or not such a statement
                (the message names ``path``).
        """
        try:
            return cls._from_statement(
                _json.loads(payload, "DSSE payload"), path, signer, signed_by
            )
        except MalformedBundleError as e:
            raise MalformedBundleError(f"{path}: {e}") from e

    @classmethod
    def _from_statement(
        cls,
        st: object,
        path: Path,
        signer: ClaimedSigner | None,
        signed_by: SignedBy | None,
    ) -> Provenance:
        st = _object(st, "the statement")
        if st.get("_type") != STATEMENT_TYPE:
            raise MalformedBundleError(
                f"statement _type {st.get('_type')!r} is not {STATEMENT_TYPE!r}"
            )
        if st.get("predicateType") != PREDICATE_TYPE:
            raise MalformedBundleError(
                f"predicateType {st.get('predicateType')!r} is not {PREDICATE_TYPE!r} "
                "(not a SLSA provenance)"
            )
        subjects = st.get("subject")
        if not isinstance(subjects, list) or len(subjects) != 1:
            raise MalformedBundleError("the provenance must have exactly one subject (the model)")
        subject = _object(subjects[0], "the subject")
        name, digest = subject.get("name"), _object(subject.get("digest"), "subject.digest")
        if not isinstance(name, str) or not name:
            raise MalformedBundleError("the subject needs a name")
        sha = digest.get("sha256")
        if not isinstance(sha, str) or not _HEX64.match(sha):
            raise MalformedBundleError(
                "the subject needs a sha256 digest of 64 lowercase hex digits"
            )
        predicate = _object(st.get("predicate"), "the predicate")
        build = _object(predicate.get("buildDefinition"), "predicate.buildDefinition")
        run = _object(predicate.get("runDetails"), "predicate.runDetails")
        build_type = build.get("buildType")
        if not isinstance(build_type, str) or not build_type:
            raise MalformedBundleError("buildDefinition.buildType must be a non-empty string")
        external = _object(build.get("externalParameters"), "buildDefinition.externalParameters")
        internal = _object(build.get("internalParameters", {}), "internalParameters")
        deps = build.get("resolvedDependencies", [])
        if not isinstance(deps, list):
            raise MalformedBundleError("buildDefinition.resolvedDependencies must be a list")
        builder = _object(run.get("builder"), "runDetails.builder")
        builder_id = builder.get("id")
        if not isinstance(builder_id, str) or not builder_id:
            raise MalformedBundleError("runDetails.builder.id must be a non-empty string")
        meta = _object(run.get("metadata", {}), "runDetails.metadata")
        invocation = meta.get("invocationId")
        entry = external.get("entryPoint")
        params = external.get("parameters", {})
        if invocation is not None and not isinstance(invocation, str):
            raise MalformedBundleError("runDetails.metadata.invocationId must be a string")
        if entry is not None and not isinstance(entry, str):
            raise MalformedBundleError("externalParameters.entryPoint must be a string")
        return cls(
            path=path,
            subject_name=name,
            subject_digest=sha,
            builder_id=builder_id,
            build_type=build_type,
            invocation_id=invocation,
            started=parse_time(meta.get("startedOn"), "runDetails.metadata.startedOn"),
            finished=parse_time(meta.get("finishedOn"), "runDetails.metadata.finishedOn"),
            entry_point=entry,
            parameters=_object(params, "externalParameters.parameters"),
            internal_parameters=internal,
            dependencies=tuple(
                Dependency.from_descriptor(d, f"resolvedDependencies[{i}]")
                for i, d in enumerate(deps)
            ),
            signer=signer,
            signed_by=signed_by,
        )


def _object(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedBundleError(f"{where} must be an object")
    return value


def statement_payload(
    *,
    subject_name: str,
    subject_digest: str,
    builder_id: str,
    dependencies: Sequence[Dependency],
    entry_point: str | None,
    parameters: Mapping[str, Any],
    internal_parameters: Mapping[str, Any],
    invocation_id: str | None,
    started: datetime.datetime | None,
    finished: datetime.datetime | None,
) -> bytes:
    """The canonical bytes of the provenance statement (sorted keys, no
    insignificant space: the same run gives the same bytes)."""
    external: dict[str, Any] = {}
    if entry_point is not None:
        external["entryPoint"] = entry_point
    if parameters:
        external["parameters"] = dict(parameters)
    build: dict[str, Any] = {
        "buildType": BUILD_TYPE,
        "externalParameters": external,
        "resolvedDependencies": [d.to_descriptor() for d in dependencies],
    }
    if internal_parameters:
        build["internalParameters"] = dict(internal_parameters)
    metadata: dict[str, str] = {}
    if invocation_id is not None:
        metadata["invocationId"] = invocation_id
    if started is not None:
        metadata["startedOn"] = rfc3339(started)
    if finished is not None:
        metadata["finishedOn"] = rfc3339(finished)
    run: dict[str, Any] = {"builder": {"id": builder_id}}
    if metadata:
        run["metadata"] = metadata
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": subject_name, "digest": {"sha256": subject_digest}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {"buildDefinition": build, "runDetails": run},
    }
    return json.dumps(
        statement, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")
