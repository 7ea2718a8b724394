"""Stage 1: find the files that make up a model.

A model is a directory (every regular file below it, minus the ignored paths)
or a single regular file. Nothing is followed or opened here: entries are
``lstat``-ed, so a FIFO or device is refused without blocking, and a symlink is
refused unless the signature says symlinks were allowed.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from modelsign._paths import check_name, collision_key
from modelsign.errors import UnsafeModelError, UsageError

__all__ = [
    "DEFAULT_IGNORES",
    "PROVENANCE_FILE",
    "SINGLE_FILE_NAME",
    "ModelFile",
    "ModelTree",
    "enumerate_model",
]

#: The signed provenance of a folder model, ``MODEL/model.provenance.sig``
#: (modelsign.provenance; docs/adr/0004-provenance.md).
PROVENANCE_FILE = "model.provenance.sig"

#: Top-level paths a directory model never signs; recorded in the bundle.
DEFAULT_IGNORES: tuple[str, ...] = (
    ".git",
    ".gitattributes",
    ".github",
    ".gitignore",
    PROVENANCE_FILE,
)

#: The resource name of a single-file model, as model_signing writes it.
SINGLE_FILE_NAME = "."


@dataclass(frozen=True)
class ModelFile:
    """One regular file of a model: its resource name and where it is."""

    name: str
    path: Path
    size: int


@dataclass(frozen=True)
class ModelTree:
    """The files of a model, sorted by name in Unicode code point order."""

    root: Path
    name: str
    single_file: bool
    files: tuple[ModelFile, ...]
    ignore_paths: tuple[str, ...]


def _model_name(path: Path) -> str:
    name = path.name
    if not name or name == "..":
        name = path.resolve().name
    return name


def hf_blobs_dir(root: Path) -> Path | None:
    """The ``blobs/`` folder of a Hugging Face cache snapshot, if ``root`` is one.

    A snapshot is ``.../models--ORG--NAME/snapshots/REVISION/`` and its files are
    symlinks into ``.../models--ORG--NAME/blobs/``: exactly that layout is
    accepted, nothing wider.
    """
    snapshots = root.parent
    repo = snapshots.parent
    if snapshots.name != "snapshots" or not repo.name.startswith(("models--", "datasets--")):
        return None
    blobs = repo / "blobs"
    return blobs if blobs.is_dir() and not blobs.is_symlink() else None


def symlink_target(link: Path, blobs: Path | None) -> Path | None:
    """The resolved target of ``link`` when it may be followed under the
    Hugging Face cache rule (a regular file directly inside ``blobs``)."""
    if blobs is None:
        return None
    target = Path(os.path.realpath(link))
    if target.parent != Path(os.path.realpath(blobs)):
        return None
    try:
        st = os.lstat(target)
    except OSError:
        return None
    return target if stat.S_ISREG(st.st_mode) else None


def enumerate_model(
    model: Path,
    *,
    ignore_paths: Iterable[str] = (),
    signature: Path | None = None,
    allow_symlinks: bool = False,
    hf_cache: bool = False,
) -> ModelTree:
    """List the files of ``model``.

    ``ignore_paths`` are exact relative paths (a directory ignores its subtree).
    ``signature``, when inside a directory model, is ignored too, with its
    co-signatures folder (``SIGNATURE.d``). With
    ``hf_cache``, the symlinks of a Hugging Face cache snapshot into its own
    ``blobs/`` folder are followed (and nothing else). Raises
    :class:`UnsafeModelError` for an unsafe or empty tree, and
    :class:`UsageError` when ``model`` does not exist.
    """
    ignores = tuple(dict.fromkeys(ignore_paths))
    for path in ignores:
        try:
            check_name(path, UsageError)
        except UsageError as e:
            raise UsageError(f"ignore path: {e}") from e
    try:
        st = os.lstat(model)
    except FileNotFoundError as e:
        raise UsageError(f"{model}: no such file or directory") from e
    if stat.S_ISLNK(st.st_mode) and not allow_symlinks:
        raise UnsafeModelError(f"{model}: is a symbolic link; sign or verify its target")
    if stat.S_ISLNK(st.st_mode):
        st = os.stat(model)
    name = _model_name(model)
    if stat.S_ISREG(st.st_mode):
        return ModelTree(
            root=model,
            name=name,
            single_file=True,
            files=(ModelFile(SINGLE_FILE_NAME, model, st.st_size),),
            ignore_paths=(),
        )
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeModelError(f"{model}: not a regular file or directory")

    if signature is not None:
        rel = _relative_inside(signature, model)
        # The bundle, and the folder of its co-signatures (``model.sig.d``).
        for own in () if rel is None else (rel, f"{rel}.d"):
            if own not in ignores:
                ignores = (*ignores, own)
    files: list[ModelFile] = []
    blobs = hf_blobs_dir(model) if hf_cache else None
    _walk(model, "", frozenset(ignores), allow_symlinks, blobs, files)
    if not files:
        raise UnsafeModelError(f"{model}: the model has no files (an empty model is refused)")
    files.sort(key=lambda f: f.name)
    seen: dict[str, str] = {}
    for f in files:
        key = collision_key(f.name)
        if key in seen:
            raise UnsafeModelError(
                f"{model}: file names {seen[key]!r} and {f.name!r} collide "
                "under case folding or Unicode normalization"
            )
        seen[key] = f.name
    return ModelTree(model, name, False, tuple(files), ignores)


def _relative_inside(path: Path, root: Path) -> str | None:
    try:
        rel = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    except ValueError:
        return None
    if rel == "." or rel.startswith(".."):
        return None
    return Path(rel).as_posix()


def _walk(
    directory: Path,
    prefix: str,
    ignores: frozenset[str],
    allow_symlinks: bool,
    blobs: Path | None,
    out: list[ModelFile],
) -> None:
    # Iterative depth-first walk; entries are lstat-ed, never opened.
    stack: list[tuple[Path, str, frozenset[tuple[int, int]]]] = [(directory, prefix, frozenset())]
    while stack:
        current, rel_prefix, ancestors = stack.pop()
        dst = os.stat(current)
        here = (dst.st_dev, dst.st_ino)
        if here in ancestors:
            raise UnsafeModelError(f"{current}: directory cycle")
        ancestors = ancestors | {here}
        with os.scandir(current) as entries:
            for entry in entries:
                rel = f"{rel_prefix}{entry.name}"
                if rel in ignores:
                    continue
                check_name(rel, UnsafeModelError)
                path = Path(entry.path)
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISLNK(st.st_mode):
                    blob = symlink_target(path, blobs)
                    if blob is None and not allow_symlinks:
                        raise UnsafeModelError(
                            f"{path}: symbolic link in the model (target {os.readlink(path)!r}); "
                            f"to leave it out, ignore the path {rel!r} (--ignore-path {rel}, "
                            "or ignore_paths=[...] from Python)"
                        )
                    # Hash the target itself: the file is opened without
                    # following links, so a link swapped in later is refused.
                    path = blob or Path(os.path.realpath(path))
                    try:
                        st = os.lstat(path)
                    except OSError as e:
                        raise UnsafeModelError(f"{path}: broken symbolic link: {e}") from e
                if stat.S_ISDIR(st.st_mode):
                    stack.append((path, f"{rel}/", ancestors))
                elif stat.S_ISREG(st.st_mode):
                    out.append(ModelFile(rel, path, st.st_size))
                else:
                    raise UnsafeModelError(
                        f"{path}: not a regular file ({stat.filemode(st.st_mode)}); "
                        "FIFOs, sockets and devices are refused"
                    )
