"""What a training run depended on, resolved to digests: its code (git),
datasets, base model and frameworks; and the checked manifest of a signed
model (whose root digest a provenance is about). For
:func:`modelsign.provenance.attest`.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable
from pathlib import Path

from modelsign import _buildenv
from modelsign._enumerating import DEFAULT_IGNORES, PROVENANCE_FILE, enumerate_model
from modelsign._hashing import Progress, hash_files
from modelsign._slsa import Dependency
from modelsign.errors import MissingSignatureError, UsageError
from modelsign.manifest import Manifest, Serialization
from modelsign.policy import Anchor, Policy, ProvenanceRules
from modelsign.signing import default_signature_path, display_name
from modelsign.verifying import compare, read_bundle, verify

__all__ = [
    "Trust",
    "base_model_dependency",
    "code_dependency",
    "dataset_dependency",
    "framework_dependencies",
    "hash_oms",
    "model_manifest",
]

#: What ``trust=`` takes, as in :func:`~modelsign.verify`.
Trust = Policy | Anchor | Iterable[Anchor | str | os.PathLike[str]]
_PINNED = re.compile(r"^(?P<uri>.+)@sha256:(?P<hex>[0-9a-f]{64})$")


def model_manifest(
    path: Path,
    signature: Path,
    trust: Trust | None,
    progress: Progress | None,
    workers: int | None,
    *,
    required: bool,
) -> Manifest | None:
    """The manifest of the signed model at ``path``, its files checked:
    verified under ``trust``, or hashed as its bundle says and compared with
    it. None when it has no bundle and one is not ``required``."""
    if trust is not None and os.path.isfile(signature):
        policy = dataclasses.replace(Policy.of(trust), provenance=ProvenanceRules())
        return verify(
            path, policy, signature=signature, progress=progress, workers=workers
        ).manifest
    try:
        claimed = Manifest.from_payload(read_bundle(signature).envelope.payload)
    except MissingSignatureError as e:
        if not required:
            return None
        raise UsageError(
            f"{path}: the model is not signed ({signature} is missing): sign it first "
            "(modelsign sign), then attest it"
        ) from e
    fresh = hash_oms(path, claimed.serialization, signature, progress, workers)
    actual = dict(fresh.file_fingerprints())
    signed = claimed.file_fingerprints()
    if "." in actual and len(signed) == 1 and "." not in signed:  # a file named by its name
        actual = {next(iter(signed)): actual["."]}
    compare(claimed, actual, actual, str(path))
    return claimed


def hash_oms(
    path: Path,
    serialization: Serialization,
    signature: Path | None,
    progress: Progress | None,
    workers: int | None,
) -> Manifest:
    """The OMS manifest of ``path`` hashed with ``serialization`` (no archive
    members: only the digests are wanted)."""
    ignores = (*serialization.ignore_paths, PROVENANCE_FILE) if path.is_dir() else ()
    tree = enumerate_model(
        path,
        ignore_paths=ignores,
        signature=signature,
        allow_symlinks=serialization.allow_symlinks,
    )
    digests = hash_files(
        tree.files,
        serialization.hash_type,
        display=lambda f: display_name(tree, f),
        workers=workers,
        progress=progress,
        shard_size=serialization.shard_size,
    )
    return Manifest.from_digests(tree.name, digests, serialization)


def code_dependency(
    code: str | os.PathLike[str] | None, ci: _buildenv.CiRun | None
) -> Dependency | None:
    checkout = _buildenv.git_checkout(Path(code) if code is not None else Path.cwd())
    if checkout is None and code is not None:
        raise UsageError(
            f"{{param}}{os.fspath(code)}: not in a git checkout with a commit", parameter="code"
        )
    if checkout is None and ci is not None:
        checkout = ci.code
    if checkout is None:
        return None
    ref = f"@{checkout.ref}" if checkout.ref else ""
    return Dependency(
        "code",
        uri=f"git+{checkout.url}{ref}",
        digest={"gitCommit": checkout.commit},
        dirty=checkout.dirty,
    )


def _pinned(spec: str, role: str) -> Dependency | None:
    """``URI@sha256:HEX``: something not on this machine, with its digest."""
    match = _PINNED.match(spec)
    if match is None:
        return None
    if role == "dataset":
        return Dependency("dataset", uri=match["uri"], digest={"sha256": match["hex"]})
    return Dependency(
        "base_model", uri=match["uri"], digest={"sha256": match["hex"]}, digest_of="oms-root"
    )


def _local(spec: str | os.PathLike[str], parameter: str) -> Path:
    path = Path(spec)
    if not os.path.lexists(path):
        raise UsageError(
            f"{{param}}{os.fspath(spec)}: no such file or folder (for data that is not here, "
            "give URI@sha256:HEX)",
            parameter=parameter,
        )
    return path


def dataset_dependency(
    spec: str | os.PathLike[str] | Dependency, progress: Progress | None, workers: int | None
) -> Dependency:
    if isinstance(spec, Dependency):
        return dataclasses.replace(spec, role="dataset")
    pinned = _pinned(spec, "dataset") if isinstance(spec, str) else None
    if pinned is not None:
        return pinned
    path = _local(spec, "datasets")
    defaults = Serialization(ignore_paths=DEFAULT_IGNORES)
    manifest = hash_oms(path, defaults, default_signature_path(path), progress, workers)
    single = not path.is_dir()
    return Dependency(
        "dataset",
        uri=path.absolute().as_uri(),
        name=manifest.model_name,
        # A file: the SHA-256 of its bytes (as sha256sum says); a folder: its OMS root digest.
        digest={"sha256": manifest.resources[0].digest if single else manifest.root_digest},
        digest_of="file" if single else "oms-root",
    )


def base_model_dependency(
    spec: str | os.PathLike[str] | Dependency,
    trust: Trust | None,
    progress: Progress | None,
    workers: int | None,
) -> Dependency:
    if isinstance(spec, Dependency):
        return dataclasses.replace(spec, role="base_model")
    pinned = _pinned(spec, "base_model") if isinstance(spec, str) else None
    if pinned is not None:
        return pinned
    path = _local(spec, "base_model")
    signature = default_signature_path(path)
    manifest = model_manifest(path, signature, trust, progress, workers, required=False)
    if manifest is None:  # no bundle: its root digest as sign would compute it
        defaults = Serialization(ignore_paths=DEFAULT_IGNORES if path.is_dir() else ())
        manifest = hash_oms(path, defaults, signature, progress, workers)
    return Dependency(
        "base_model",
        uri=path.absolute().as_uri(),
        name=manifest.model_name,
        digest={"sha256": manifest.root_digest},
        digest_of="oms-root",
        signed=os.path.isfile(signature),
    )


def framework_dependencies() -> list[Dependency]:
    out = []
    for name, version in _buildenv.framework_versions().items():
        uri = f"pkg:generic/python@{version}" if name == "python" else f"pkg:pypi/{name}@{version}"
        out.append(Dependency("framework", uri=uri, name=name))
    return out
