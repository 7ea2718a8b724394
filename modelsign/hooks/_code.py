"""Code that a model folder or archive would make Python import.

No audit event stands between a folder and ``import``: these entry points are
where a folder's Python is about to run, so each one verifies first, and runs
only bytes it verified.

* ``torch.hub`` (``_load_local``, behind ``torch.hub.load`` of a local folder
  or a downloaded repository): the folder is copied into a private temporary
  folder, the copy is verified as a whole model (every file, no extra), and
  ``hubconf.py`` is imported from the copy, which nobody else can write.
* ``torch.package.PackageImporter``: the archive is verified, and the importer
  reads its modules from the verified bytes.
* transformers' remote code (``trust_remote_code=True``, any Auto class,
  ``custom_generate``): ``get_cached_module_file`` verifies the model folder
  before transformers copies its ``.py`` files into its module cache, then
  checks each copy against the signed digest; ``get_class_in_module`` imports
  only modules whose files were checked so, and checks them again just before.

Code is verified wherever it lies: the policy's scope narrows where model
files must be signed, not where unsigned code may run.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelsign._digests import Fingerprint, HashScheme
from modelsign._guard import Guard, LoadSource
from modelsign.errors import LoadRefusedError, UnsafeLoadError
from modelsign.hooks._common import checked, current_guard, is_path, refuse, trusted_load
from modelsign.hooks._loaders import local_directory

Patch = tuple[object, str, Any]


# ------------------------------------------------------------------- torch.hub

_copies: list[str] = []
_copies_lock = threading.Lock()


def _remove_copies() -> None:
    with _copies_lock:
        for folder in _copies:
            shutil.rmtree(folder, ignore_errors=True)
        _copies.clear()


atexit.register(_remove_copies)


def _verified_copy(guard: Guard, directory: str) -> str:
    """A private copy of ``directory`` that verifies as a whole model. The
    copy, not the folder, is what gets imported: it cannot change after the
    check. Kept until the process exits (its modules may import lazily)."""
    source = Path(directory)
    parent = tempfile.mkdtemp(prefix="modelsign-verified-")  # mode 0700
    with _copies_lock:
        _copies.append(parent)
    copy = Path(parent) / (source.resolve().name or "model")
    try:
        shutil.copytree(source, copy, symlinks=True)
    except OSError as e:
        raise UnsafeLoadError(
            f"cannot copy the folder to verify it: {e}",
            target=directory,
            policy=guard.policy.describe(),
        ) from e
    guard.verify_directory(copy, display=directory)
    return str(copy)


def hub_load_local(orig: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(orig)
    def _load_local(hubconf_dir: Any, model: Any, *args: Any, **kwargs: Any) -> Any:
        guard = current_guard()
        if guard is None:
            return orig(hubconf_dir, model, *args, **kwargs)
        try:
            copy = _verified_copy(guard, os.fspath(hubconf_dir))
        except LoadRefusedError as e:
            refuse(guard, e)
            return orig(hubconf_dir, model, *args, **kwargs)
        return orig(copy, model, *args, **kwargs)

    return _load_local


def hub_import_module(orig: Callable[..., Any]) -> Callable[..., Any]:
    """``torch.hub._import_module``, which ``list``, ``help`` and ``load``
    use to import a ``hubconf.py``: from a verified private copy of its
    folder (already one when it comes through ``_load_local``)."""

    @functools.wraps(orig)
    def _import_module(name: Any, path: Any) -> Any:
        guard = current_guard()
        folder = os.path.dirname(os.path.abspath(os.fspath(path)))
        with _copies_lock:
            ours = os.path.dirname(folder) in _copies
        if guard is None or ours:
            return orig(name, path)
        try:
            copy = _verified_copy(guard, folder)
        except LoadRefusedError as e:
            refuse(guard, e)
            return orig(name, path)
        sys.path.insert(0, copy)  # siblings import from the copy, before the folder
        try:
            return orig(name, os.path.join(copy, os.path.basename(os.fspath(path))))
        finally:
            with contextlib.suppress(ValueError):
                sys.path.remove(copy)

    return _import_module


def hub_patches(module: Any) -> list[Patch]:
    return [
        (module, "_load_local", hub_load_local(module._load_local)),
        (module, "_import_module", hub_import_module(module._import_module)),
    ]


# --------------------------------------------------------------- torch.package


def _verify_any(guard: Guard, f: Any, what: str) -> LoadSource | None:
    """Verify a path or a file object, in scope or not (it holds code)."""
    if is_path(f):
        return checked(guard, lambda: guard.open_path(os.fsdecode(f), what=what))
    return checked(guard, lambda: guard.open_file(f, what=what))


def package_importer_init(orig: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(orig)
    def __init__(self: Any, file_or_buffer: Any, *args: Any, **kwargs: Any) -> None:
        guard = current_guard()
        if guard is None:
            orig(self, file_or_buffer, *args, **kwargs)
            return
        if not is_path(file_or_buffer) and not hasattr(file_or_buffer, "read"):
            # A PyTorchFileReader (or anything else) reads bytes we cannot see.
            refuse(
                guard,
                UnsafeLoadError(
                    "torch.package can only be verified from a path or a file object, "
                    f"not {type(file_or_buffer).__name__}",
                    target=repr(file_or_buffer),
                    policy=guard.policy.describe(),
                ),
            )
            orig(self, file_or_buffer, *args, **kwargs)
            return
        source = _verify_any(guard, file_or_buffer, "torch.package")
        if source is None:  # warn mode
            orig(self, file_or_buffer, *args, **kwargs)
            return
        with source, trusted_load(source):
            # The importer keeps reading modules from this verified stream.
            orig(self, source.fileobj(), *args, **kwargs)

    return __init__


def package_patches(module: Any) -> list[Patch]:
    importer = module.PackageImporter
    return [(importer, "__init__", package_importer_init(importer.__init__))]


# ------------------------------------------------------ transformers remote code

#: Files in transformers' module cache whose bytes were checked against a
#: verified model folder: absolute path -> (hash scheme, signed fingerprint).
_checked_modules: dict[str, tuple[HashScheme, Fingerprint]] = {}
_checked_lock = threading.Lock()


def _fingerprint(path: Path, scheme: HashScheme) -> Fingerprint | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    h = scheme.hasher()
    h.update(data)
    return h.fingerprint()


def _text(fingerprint: Fingerprint | None) -> str | None:
    return None if fingerprint is None else str(fingerprint)


def _modules_cache() -> Path:
    from transformers import dynamic_module_utils  # noqa: PLC0415

    return Path(dynamic_module_utils.HF_MODULES_CACHE)  # type: ignore[attr-defined]


def get_cached_module_file(orig: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(orig)
    def wrapper(
        pretrained_model_name_or_path: Any, module_file: str, *args: Any, **kwargs: Any
    ) -> Any:
        guard = current_guard()
        if guard is None:
            return orig(pretrained_model_name_or_path, module_file, *args, **kwargs)
        name = os.fspath(pretrained_model_name_or_path)
        local = os.path.isdir(name)
        try:
            verified = guard.verify_directory(name) if local else None
        except LoadRefusedError as e:
            refuse(guard, e)
            return orig(pretrained_model_name_or_path, module_file, *args, **kwargs)
        result = orig(pretrained_model_name_or_path, module_file, *args, **kwargs)
        if verified is None:  # a Hub repository: check the snapshot it came from
            folder = local_directory(name, {"local_files_only": True, **kwargs})
            if folder is None:
                refuse(
                    guard,
                    UnsafeLoadError(
                        f"remote code {module_file!r} comes from a repository that is not in "
                        "the local cache, so its folder cannot be verified",
                        target=name,
                        policy=guard.policy.describe(),
                    ),
                )
                return result
            try:
                verified = guard.verify_directory(folder)
            except LoadRefusedError as e:
                refuse(guard, e)
                return result
        _check_copies(guard, verified.manifest, Path(_modules_cache(), result), module_file, name)
        return result

    return wrapper


def _check_copies(guard: Guard, manifest: Any, copied: Path, module_file: str, source: str) -> None:
    """Each ``.py`` transformers copied for ``module_file`` (the module and the
    files it imports relatively, in the copy's folder) must be the signed file
    of the same name in the verified folder."""
    from transformers.dynamic_module_utils import get_relative_import_files  # noqa: PLC0415

    scheme = manifest.serialization.scheme
    signed = manifest.file_fingerprints()
    base = copied.parent
    for _ in Path(module_file).parent.parts:
        base = base.parent
    files = [copied, *map(Path, get_relative_import_files(str(copied)))]
    for file in files:
        name = file.relative_to(base).as_posix() if file.is_relative_to(base) else file.name
        expected = signed.get(name)
        actual = _fingerprint(file, scheme)
        if expected is None or actual != expected:
            refuse(
                guard,
                UnsafeLoadError(
                    f"transformers' copy {file} of {name!r} is not the signed file "
                    f"(expected {scheme.hash_type}:{expected}, actual {scheme.hash_type}:{actual})",
                    target=source,
                    policy=guard.policy.describe(),
                    expected=_text(expected),
                    actual=_text(actual),
                ),
            )
            continue
        with _checked_lock:
            _checked_modules[str(file.resolve())] = (scheme, expected)


def get_class_in_module(orig: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(orig)
    def wrapper(class_name: str, module_path: Any, *args: Any, **kwargs: Any) -> Any:
        guard = current_guard()
        if guard is None:
            return orig(class_name, module_path, *args, **kwargs)
        from transformers.dynamic_module_utils import get_relative_import_files  # noqa: PLC0415

        module_file = _modules_cache() / module_path
        for file in [module_file, *map(Path, get_relative_import_files(str(module_file)))]:
            with _checked_lock:
                checked = _checked_modules.get(str(file.resolve()))
            actual = None if checked is None else _fingerprint(file, checked[0])
            if checked is None or actual != checked[1]:
                state = "unchecked" if checked is None else _text(actual)
                refuse(
                    guard,
                    UnsafeLoadError(
                        "remote code that no verified model folder provided is not imported "
                        f"(expected a checked copy, actual {state})",
                        target=str(file),
                        policy=guard.policy.describe(),
                        expected=None if checked is None else _text(checked[1]),
                        actual=_text(actual),
                    ),
                )
        return orig(class_name, module_path, *args, **kwargs)

    return wrapper


def transformers_patches(module: Any) -> list[Patch]:
    out: list[Patch] = []
    for name, wrap in (
        ("get_cached_module_file", get_cached_module_file),
        ("get_class_in_module", get_class_in_module),
    ):
        if getattr(module, name, None) is not None:
            out.append((module, name, wrap(getattr(module, name))))
    return out
