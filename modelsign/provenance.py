"""Signed provenance: how a model was built, and from what.

:func:`attest` writes a signed in-toto Statement v1 with the SLSA Provenance
v1 predicate (``https://slsa.dev/provenance/v1``) whose subject is the model's
OMS root digest, the digest its ``model.sig`` signs, as a Sigstore bundle
beside it: ``MODEL/model.provenance.sig`` for a folder, ``FILE.provenance.sig``
for a single file (in general, ``X.sig`` has ``X.provenance.sig``). It records
the training code (repository and git commit, dirty or not), the datasets and
the base model with their digests, the builder, the start and end times, the
entry point, the hyperparameters and the framework versions::

    signer = modelsign.KeySigner.from_file("ci.key")
    modelsign.sign("out/bert-ft", signer)
    modelsign.provenance.attest(
        "out/bert-ft", signer,
        datasets=["data/train"], base_model="models/bert",
        params={"lr": 3e-5, "epochs": 3}, entry_point="train.py",
    )
    prov = modelsign.provenance.verify_provenance("out/bert-ft", policy)
    print(prov.builder_id, prov.code.git_commit, [d.sha256 for d in prov.datasets])

:func:`verify_provenance` verifies the model (:func:`~modelsign.verify`), then
its provenance: signed by a signer the policy trusts (any method), over this
model's root digest; optionally by the builder the policy names, and with a
base model that verifies under the policy too (lineage). A policy with
``[provenance] require = true`` has :func:`~modelsign.verify` and the loader
hook check it for every model. :func:`read_provenance` reads the claims
without verifying anything. See ``docs/adr/0004-provenance.md``.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import urllib.parse
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from modelsign import _buildenv, _dependencies
from modelsign._atomic import write_atomic
from modelsign._dependencies import Trust
from modelsign._hashing import Progress
from modelsign._inspecting import claimed_signer
from modelsign._slsa import BUILD_TYPE, PREDICATE_TYPE, Dependency, Provenance, statement_payload
from modelsign.errors import (
    BuilderMismatchError,
    LineageError,
    MissingProvenanceError,
    MissingSignatureError,
    ProvenanceMismatchError,
    UsageError,
    VerificationError,
)
from modelsign.manifest import Manifest
from modelsign.policy import Policy, ProvenanceRules
from modelsign.signing import (
    SignedModel,
    Signer,
    SigstoreSigner,
    as_signer,
    default_signature_path,
    describe_signer,
    keyless_session,
    refuse_replacing,
    sign_payload,
)
from modelsign.verifying import VerifiedModel, check_signature, read_bundle, verify

__all__ = [
    "BUILD_TYPE",
    "PREDICATE_TYPE",
    "Dependency",
    "Provenance",
    "attest",
    "check_model_provenance",
    "check_provenance",
    "check_subject",
    "default_provenance_path",
    "provenance_beside",
    "read_provenance",
    "verify_provenance",
]

_SUFFIX = ".provenance.sig"


def provenance_beside(signature: Path) -> Path:
    """The provenance bundle that goes with the model bundle ``signature``:
    ``X.sig`` has ``X.provenance.sig`` (``model.sig``: ``model.provenance.sig``).

    Args:
        signature: a model's bundle path.

    Returns:
        The provenance bundle's path, in the same folder.

    Raises:
        ValueError: never (a name without ``.sig`` gets the suffix appended).
    """
    stem = signature.name[: -len(".sig")] if signature.name.endswith(".sig") else signature.name
    return signature.with_name(stem + _SUFFIX)


def default_provenance_path(model: str | os.PathLike[str]) -> Path:
    """Where a model's provenance is by default.

    Args:
        model: a model folder or single file.

    Returns:
        ``MODEL/model.provenance.sig`` for a folder, ``FILE.provenance.sig``
        beside a single file.

    Raises:
        OSError: never (a missing path is taken as a file).
    """
    return provenance_beside(default_signature_path(Path(model)))


# ---------------------------------------------------------------------- attest


def attest(
    model: str | os.PathLike[str],
    signer: Signer | str | os.PathLike[str],
    *,
    datasets: Iterable[str | os.PathLike[str] | Dependency] = (),
    base_model: str | os.PathLike[str] | Dependency | None = None,
    params: Mapping[str, Any] | None = None,
    entry_point: str | None = None,
    builder_id: str | None = None,
    started: datetime.datetime | None = None,
    finished: datetime.datetime | None = None,
    code: str | os.PathLike[str] | None = None,
    subject: SignedModel | VerifiedModel | None = None,
    trust: Trust | None = None,
    signature: str | os.PathLike[str] | None = None,
    provenance: str | os.PathLike[str] | None = None,
    force: bool = False,
    environ: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    workers: int | None = None,
) -> Provenance:
    """Write the signed provenance of a signed model.

    Args:
        model: the model folder or file; it must be signed (its bundle gives
            the hash settings of its root digest).
        signer: as for :func:`~modelsign.sign` (any method).
        datasets: local files or folders (hashed: a file's SHA-256, a
            folder's OMS root digest), ``URI@sha256:HEX`` for data that is
            not here, or :class:`Dependency` values.
        base_model: the model fine-tuned from: a local model (its OMS root
            digest, as its own bundle signs it when it has one),
            ``URI@sha256:HEX``, or a :class:`Dependency`.
        params: the hyperparameters (JSON values).
        entry_point: what was run (``train.py``, a module, a command).
        builder_id: who built it (default: from the CI variables, else
            ``urn:modelsign:local:HOSTNAME``).
        started: when training started (timezone-aware; default: not recorded).
        finished: when it finished (default: now).
        code: a folder in the training code's git checkout (default: the
            current folder if it is in one, else the CI variables).
        subject: the model as :func:`~modelsign.sign` or
            :func:`~modelsign.verify` just established it: its root digest
            is used as it is, without hashing the model again.
        trust: verify the model's bundle (and a local base model's) under
            this trust; without it, the files are hashed as the bundle says
            and must match it, but its signer is not checked.
        signature: the model's bundle (default ``model.sig`` / ``FILE.sig``).
        provenance: where to write (default: :func:`provenance_beside` the
            model's bundle).
        force: replace a provenance bundle by another signer.
        environ: the environment to read CI variables from (default
            ``os.environ``).
        progress: told about files and bytes as they are hashed.
        workers: hashing threads (default: one per core).

    Returns:
        The provenance written, with who signed it (``signed_by``).

    Raises:
        UsageError: bad arguments (``parameter`` names which), an unsigned
            model, a ``code`` folder outside any git checkout;
            ``OverwriteError`` for another signer's provenance without ``force``.
        VerificationError: the model (or a local base model) does not match
            its bundle, or does not verify under ``trust``.
    """
    model_path = Path(model)
    sig = as_signer(signer)
    keyless = keyless_session(sig) if isinstance(sig, SigstoreSigner) else None
    if not os.path.lexists(model_path):
        raise UsageError(f"{model_path}: no such file or folder")
    sig_path = Path(signature) if signature is not None else default_signature_path(model_path)
    out = Path(provenance) if provenance is not None else provenance_beside(sig_path)
    if not force and os.path.lexists(out):
        refuse_replacing(out, describe_signer(sig, keyless))
    parameters = _json_values(params or {})
    when = _times(started, finished)
    env = os.environ if environ is None else environ
    ci = _buildenv.ci_run(env)
    manifest = (
        subject.manifest
        if subject is not None
        else _dependencies.model_manifest(
            model_path, sig_path, trust, progress, workers, required=True
        )
    )
    assert manifest is not None  # required=True raises instead
    deps = [d for d in (_dependencies.code_dependency(code, ci),) if d is not None]
    deps += [_dependencies.dataset_dependency(d, progress, workers) for d in datasets]
    if base_model is not None:
        deps.append(_dependencies.base_model_dependency(base_model, trust, progress, workers))
    deps += _dependencies.framework_dependencies()
    payload = statement_payload(
        subject_name=manifest.model_name,
        subject_digest=manifest.root_digest,
        builder_id=builder_id or (ci.builder_id if ci else _buildenv.local_builder_id()),
        dependencies=deps,
        entry_point=entry_point,
        parameters=parameters,
        internal_parameters={"ci": {"system": ci.system, **ci.details}} if ci else {},
        invocation_id=ci.invocation_id if ci else None,
        started=when[0],
        finished=when[1],
    )
    data, signed_by = sign_payload(payload, sig, keyless)
    write_atomic(out, data)
    return Provenance.from_payload(payload, out, signed_by=signed_by)


def _json_values(params: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(params, Mapping) or not all(isinstance(k, str) for k in params):
        raise UsageError("{param}must map names to JSON values", parameter="params")
    try:  # the values as JSON gives them back (a tuple becomes a list)
        value: dict[str, Any] = json.loads(json.dumps(dict(params), allow_nan=False))
    except (TypeError, ValueError) as e:
        raise UsageError(f"{{param}}not JSON values: {e}", parameter="params") from e
    return value


def _times(
    started: datetime.datetime | None, finished: datetime.datetime | None
) -> tuple[datetime.datetime | None, datetime.datetime]:
    end = finished or datetime.datetime.now(datetime.timezone.utc)
    for name, value in (("started", started), ("finished", end)):
        if value is not None and (
            not isinstance(value, datetime.datetime) or value.utcoffset() is None
        ):
            raise UsageError(f"{{param}}{value!r}: give a timezone-aware datetime", parameter=name)
    if started is not None and started > end:
        raise UsageError(
            f"{{param}}{started.isoformat()} is after finished ({end.isoformat()})",
            parameter="started",
        )
    return started, end


# ---------------------------------------------------------------------- read and verify


def read_provenance(path: str | os.PathLike[str]) -> Provenance:
    """What a provenance bundle claims, **without verifying it**.

    Args:
        path: a provenance bundle (``*.provenance.sig``), or a model folder
            or file (its :func:`default_provenance_path`).

    Returns:
        The claims; ``signed_by`` is None (``signer`` is who the bundle
        says signed it).

    Raises:
        MissingProvenanceError: there is no provenance bundle.
        MalformedBundleError: not a provenance bundle modelsign can read.
    """
    p = Path(path)
    bundle_path = p if p.name.endswith(_SUFFIX) else default_provenance_path(p)
    bundle = _read(bundle_path, None)
    return Provenance.from_payload(
        bundle.envelope.payload, bundle_path, signer=claimed_signer(bundle, str(bundle_path))
    )


def _read(path: Path, model: str | None) -> Any:
    try:
        return read_bundle(path)
    except MissingSignatureError as e:
        of = f" of {model}" if model is not None else ""
        raise MissingProvenanceError(
            f"{path}: no provenance bundle{of} (provenance is required)", provenance=str(path)
        ) from e


def verify_provenance(
    model: str | os.PathLike[str],
    trust: Trust,
    *,
    verified: VerifiedModel | None = None,
    signature: str | os.PathLike[str] | None = None,
    provenance: str | os.PathLike[str] | None = None,
    builder_id: str | None = None,
    lineage: bool | None = None,
    base_models: Iterable[str | os.PathLike[str]] = (),
    now: datetime.datetime | None = None,
) -> Provenance:
    """Verify a model and its provenance.

    Args:
        model: the model folder or file.
        trust: as for :func:`~modelsign.verify`; its ``[provenance]`` rules
            apply, strengthened by the arguments below.
        verified: the model as :func:`~modelsign.verify` just verified it
            (it is not verified again).
        signature: the model's bundle (default ``model.sig`` / ``FILE.sig``).
        provenance: the provenance bundle (default: beside the model's bundle).
        builder_id: the builder the provenance must name.
        lineage: the base model must verify under ``trust`` too.
        base_models: where to find base models (models, or folders of models).
        now: when certificates must be valid (default: now).

    Returns:
        The verified provenance (``signed_by`` set).

    Raises:
        VerificationError: the model does not verify; or its provenance is
            missing (``MissingProvenanceError``), badly signed or by an
            untrusted signer, about another model (``ProvenanceMismatchError``),
            by another builder (``BuilderMismatchError``), or its base model
            fails (``LineageError``).
        UsageError: bad arguments.
    """
    policy = Policy.of(trust)
    rules = policy.provenance.strengthened(
        builder_id=builder_id, lineage=bool(lineage), base_models=base_models
    )
    policy = dataclasses.replace(policy, provenance=rules)
    if verified is None:
        verified = verify(
            model,
            dataclasses.replace(policy, provenance=ProvenanceRules()),
            signature=signature,
            now=now,
        )
    return check_model_provenance(
        verified, policy, provenance=None if provenance is None else Path(provenance), now=now
    )


def check_model_provenance(
    verified: VerifiedModel,
    policy: Policy,
    *,
    provenance: Path | None = None,
    now: datetime.datetime | None = None,
) -> Provenance:
    """Check the provenance of a model that verified, by ``policy``'s
    ``[provenance]`` rules (used by :func:`~modelsign.verify` when they
    require it, and by the loader hook).

    Args:
        verified: the verified model.
        policy: trust and rules.
        provenance: the provenance bundle (default: beside the model's bundle).
        now: when certificates must be valid (default: now).

    Returns:
        The verified provenance.

    Raises:
        VerificationError: as :func:`verify_provenance`.
    """
    return check_provenance(
        verified.signature,
        verified.root_digest,
        str(verified.model),
        policy,
        provenance=provenance,
        now=now,
    )


def check_provenance(
    signature: Path,
    root_digest: str,
    model: str,
    policy: Policy,
    *,
    provenance: Path | None = None,
    now: datetime.datetime | None = None,
    verified_bases: set[str] | None = None,
) -> Provenance:
    """Check the provenance of the model whose bundle ``signature`` verified
    with root digest ``root_digest``, by ``policy``'s ``[provenance]`` rules.

    Args:
        signature: the model's bundle (the provenance is beside it).
        root_digest: the model's verified root digest.
        model: how to name the model in messages.
        policy: trust and rules.
        provenance: the provenance bundle (default: beside ``signature``).
        now: when certificates must be valid (default: now).
        verified_bases: root digests of base models already verified in
            this process (the loader hook's memory); added to.

    Returns:
        The verified provenance.

    Raises:
        VerificationError: as :func:`verify_provenance`.
    """
    path = provenance or provenance_beside(signature)
    bundle = _read(path, model)
    payload, signed_by = check_signature(bundle, policy, source=str(path), now=now)
    prov = Provenance.from_payload(
        payload, path, signer=claimed_signer(bundle, str(path)), signed_by=signed_by
    )
    check_subject(prov, root_digest, model)
    rules = policy.provenance
    if rules.builder_id is not None and prov.builder_id != rules.builder_id:
        raise BuilderMismatchError(
            f"{path}: built by {prov.builder_id!r}, not by {rules.builder_id!r} as the "
            "policy requires",
            provenance=str(path),
            expected=rules.builder_id,
            actual=prov.builder_id,
        )
    if rules.lineage:
        _check_lineage(prov, policy, now, verified_bases)
    return prov


def check_subject(prov: Provenance, root_digest: str, model: str) -> None:
    """The provenance must be about the model whose root digest is ``root_digest``.

    Raises:
        ProvenanceMismatchError: its subject is another digest.
    """
    if prov.subject_digest != root_digest:
        raise ProvenanceMismatchError(
            f"{prov.path}: provenance of model {prov.subject_name!r} with root digest "
            f"sha256:{prov.subject_digest}, not of {model}, whose root digest is "
            f"sha256:{root_digest}",
            provenance=str(prov.path),
            expected=root_digest,
            actual=prov.subject_digest,
        )


def _check_lineage(
    prov: Provenance,
    policy: Policy,
    now: datetime.datetime | None,
    verified_bases: set[str] | None,
) -> None:
    """The base model (if the provenance names one) must verify under the
    policy's trust and have the recorded root digest. One level: the base
    model's own provenance is not required (a foundation model has none)."""
    base = prov.base_model
    if base is None:
        return  # trained from scratch: there is no lineage to check
    recorded = base.sha256
    if recorded is None:
        raise LineageError(
            f"{prov.path}: the base model {base.describe()} has no sha256 digest to check",
            provenance=str(prov.path),
        )
    if verified_bases is not None and recorded in verified_bases:
        return
    plain = dataclasses.replace(policy, provenance=ProvenanceRules())
    failures: list[str] = []
    candidates = _candidates(policy.provenance.base_models, base)
    for candidate in candidates:
        try:  # the bundle's claim first: a store holds many models
            claimed = Manifest.from_payload(
                read_bundle(default_signature_path(candidate)).envelope.payload
            ).root_digest
        except VerificationError as e:
            failures.append(f"{candidate}: {e}")
            continue
        if claimed != recorded:
            failures.append(f"{candidate} is another model (root digest sha256:{claimed})")
            continue
        try:
            verify(candidate, plain, now=now)
        except VerificationError as e:
            failures.append(f"{candidate}: {e}")
            continue
        if verified_bases is not None:
            verified_bases.add(recorded)
        return  # verified, so its files hash to the claimed, recorded, root digest
    if not candidates:
        reason = "not found: give its location (base_models) and no local path is recorded"
    else:
        reason = "; ".join(failures)
    raise LineageError(
        f"{prov.path}: the base model {base.name or base.uri} (root digest sha256:{recorded}) "
        f"does not verify under the policy: {reason}",
        provenance=str(prov.path),
        expected=recorded,
    )


def _candidates(search: tuple[Path, ...], base: Dependency) -> list[Path]:
    """Where the base model may be: each of ``search`` that is a model, the
    models directly inside each that is a folder of models, then the local
    path the provenance recorded."""
    found: list[Path] = []
    for place in search:
        if default_signature_path(place).is_file():
            found.append(place)
        elif place.is_dir():
            found += sorted(
                child
                for child in place.iterdir()
                if not child.name.endswith(".sig") and default_signature_path(child).is_file()
            )
    if base.uri is not None and base.uri.startswith("file://"):
        local = Path(urllib.parse.unquote(urllib.parse.urlsplit(base.uri).path))
        if default_signature_path(local).is_file() and local not in found:
            found.append(local)
    return found
