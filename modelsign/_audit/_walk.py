"""Find the models below the paths an audit is given.

A store is walked depth-first, in name order, without following symbolic
links and without opening any file: only names and ``lstat`` results decide.

* a folder with ``model.sig`` is a folder model (the walk does not go into it);
* a Hugging Face cache snapshot (``models--ORG--NAME/snapshots/REV``) is a
  model, signed or not (``verify`` follows its links into its own ``blobs/``);
  in a cache repository only ``snapshots/`` is walked;
* a file ``F`` with ``F.sig`` beside it is a single-file model; a ``F.sig``
  without ``F`` is reported (its model is missing);
* the model files (by suffix: ``.pt``, ``.safetensors``, ``.bin``, ...) of a
  folder that no bundle covers make one ``unsigned`` entry for that folder;
* a symbolic link that looks like a model (a folder, a model file, a
  bundle) is reported, not followed;
* a folder that cannot be read is reported.

Provenance bundles (``*.provenance.sig``), co-signature folders
(``*.sig.d``), ``.git`` and cache bookkeeping (``.locks``, ``.no_exist``,
``blobs``, ``refs``) are never models.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from modelsign._audit._records import Kind
from modelsign._enumerating import hf_blobs_dir

__all__ = ["MODEL_SUFFIXES", "Candidate", "find_models", "hf_repository"]

#: File name suffixes of model weights and pickles: such a file that no
#: bundle covers is reported as unsigned.
MODEL_SUFFIXES = frozenset(
    {
        ".pt",
        ".pth",
        ".pt2",
        ".pte",
        ".bin",
        ".safetensors",
        ".ckpt",
        ".onnx",
        ".gguf",
        ".ggml",
        ".pkl",
        ".pickle",
        ".joblib",
        ".npy",
        ".npz",
        ".h5",
        ".hdf5",
        ".keras",
        ".pb",
        ".tflite",
        ".msgpack",
        ".mlmodel",
        ".nemo",
        ".mar",
    }
)
_SKIPPED_FOLDERS = frozenset({".git", ".locks", ".no_exist"})
_PROVENANCE = ".provenance.sig"
_SIG = ".sig"


@dataclass(frozen=True)
class Candidate:
    """Something the audit will judge."""

    path: Path
    kind: Kind
    #: The bundle to verify against (default: the model's own).
    signature: Path | None = None
    #: ``unsigned``: the model files (relative to ``path``) no bundle covers.
    unsigned: tuple[str, ...] = ()
    #: A cache snapshot: its repository (``org/name``) and revision.
    repository: str | None = None
    revision: str | None = None
    #: Why the walk could not look further (an unreadable folder).
    problem: str | None = None


def hf_repository(snapshot: Path) -> str | None:
    """``org/name`` for ``.../models--org--name/snapshots/REV``."""
    repo = snapshot.parent.parent.name
    kind, _, rest = repo.partition("--")
    return rest.replace("--", "/") if kind in ("models", "datasets") and rest else None


def _is_model_file(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in MODEL_SUFFIXES


def _snapshot(path: Path) -> Candidate:
    return Candidate(path, "hf-snapshot", repository=hf_repository(path), revision=path.name)


def find_models(paths: Iterable[Path]) -> Iterator[Candidate]:
    """The models below ``paths``, lazily, each once, in walk order.

    A path given is followed if it is a link (the user named it); nothing
    found below it is.

    Args:
        paths: folders to walk, model folders, model files or bundles.

    Returns:
        An iterator of candidates.

    Raises:
        OSError: never; an unreadable folder is a candidate with a problem.
    """
    seen: set[tuple[object, ...]] = set()
    for path in paths:
        for candidate in _below(Path(path)):
            key = (_identity(candidate.path), candidate.kind, candidate.unsigned)
            if key in seen:
                continue
            seen.add(key)
            yield candidate


def _identity(path: Path) -> tuple[int, int] | str:
    try:
        st = os.lstat(path)
    except OSError:
        return os.path.abspath(path)
    return st.st_dev, st.st_ino


def _below(root: Path) -> Iterator[Candidate]:
    if not root.is_dir():
        yield _file_argument(root)
        return
    stack = [root]
    while stack:
        folder = stack.pop()
        if hf_blobs_dir(folder) is not None:
            yield _snapshot(folder)
            continue
        if os.path.lexists(folder / "model.sig"):
            yield Candidate(folder, "folder")
            continue
        found, folders = _scan(folder)
        yield from found
        stack.extend(reversed(folders))


def _file_argument(path: Path) -> Candidate:
    """A file named on the command line: a model with its bundle, a bundle
    or a provenance bundle (its model beside it), or a file no bundle covers."""
    name = path.name
    if os.path.lexists(path.with_name(name + _SIG)):
        return Candidate(path, "file")
    for suffix in (_PROVENANCE, _SIG):
        if name.endswith(suffix):
            stem = name[: -len(suffix)]
            if stem == "model":  # MODEL/model.sig: the folder's bundle
                return Candidate(path.parent, "folder")
            return Candidate(path.with_name(stem), "file", path.with_name(stem + _SIG))
    return Candidate(path.parent, "unsigned", unsigned=(name,))


def _scan(folder: Path) -> tuple[list[Candidate], list[Path]]:
    """The models among a folder's files, and the subfolders to walk."""
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as e:
        return [Candidate(folder, "folder", problem=f"{folder}: cannot read: {e.strerror}")], []
    names = {e.name for e in entries}
    snapshots = folder / "snapshots"
    if folder.name.startswith(("models--", "datasets--", "spaces--")) and snapshots.is_dir():
        # A cache repository: only a model repository's snapshots are models.
        if not folder.name.startswith("models--"):
            return [], []
        try:
            revisions = sorted(snapshots.iterdir())
        except OSError as e:
            return [
                Candidate(snapshots, "folder", problem=f"{snapshots}: cannot read: {e.strerror}")
            ], []
        return [], [p for p in revisions if p.is_dir() and not p.is_symlink()]
    found: list[Candidate] = []
    folders: list[Path] = []
    unsigned: list[str] = []
    for entry in entries:
        path = Path(entry.path)
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue  # gone since it was listed
        name = entry.name
        if stat.S_ISLNK(st.st_mode):
            if _is_model_file(name) or path.is_dir():  # a linked bundle is read as usual
                found.append(Candidate(path, "link"))
        elif stat.S_ISDIR(st.st_mode):
            if name not in _SKIPPED_FOLDERS and not name.endswith(".sig.d"):
                folders.append(path)
        elif not stat.S_ISREG(st.st_mode):
            continue
        elif name.endswith(_PROVENANCE):
            continue  # goes with its model
        elif name.endswith(_SIG):
            if name[: -len(_SIG)] not in names:  # its model file is missing
                found.append(Candidate(path.with_name(name[: -len(_SIG)]), "file", path))
        elif name + _SIG in names:
            found.append(Candidate(path, "file"))
        elif _is_model_file(name):
            unsigned.append(name)
    if unsigned:
        found.append(Candidate(folder, "unsigned", unsigned=tuple(unsigned)))
    return found, folders
