"""Hooks for torch, numpy, joblib, safetensors and transformers.

Each wrapper verifies first, then calls the original loader on the verified
bytes (``io.BytesIO``) or on the sealed memfd (``/proc/self/fd/N``), with the
caller's other arguments unchanged: ``weights_only`` is never touched and a
failed load is never retried another way.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
from collections.abc import Callable
from typing import Any

from modelsign._digests import Fingerprint, HashScheme
from modelsign._guard import Guard, LoadSource, fileno_of
from modelsign.errors import LoadRefusedError, UnsafeLoadError
from modelsign.hooks._common import (
    active,
    checked,
    continuation,
    hand_back,
    is_path,
    note_lazy,
    refuse,
    trusted_load,
    untrusted_load,
)

Patch = tuple[object, str, Any]


def source_for(
    guard: Guard, f: Any, *, memfd: bool, what: str, code: bool = False
) -> LoadSource | None:
    """Verify a path or a file object; None means "load it unverified": out
    of the policy's scope, or refused in warn mode. A format that carries
    code (``code``) is verified wherever it lies: the scope does not apply."""
    if is_path(f):
        path = os.fsdecode(f)
        if not code and not guard.in_scope(path):
            return None
        return checked(guard, lambda: guard.open_path(path, memfd=memfd, what=what))
    fd = fileno_of(f)
    if not code and fd is not None and not guard.in_scope_file(f, fd):
        return None
    source = checked(guard, lambda: guard.open_file(f, memfd=memfd, what=what))
    if source is None:  # warn mode: give the loader the stream as it was
        with contextlib.suppress(OSError, ValueError, AttributeError):
            f.seek(0)
    return source


def unverified(what: str, orig: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a loader on bytes no bundle vouches for (out of scope, or warn
    mode): whatever it unpickles is restricted by the audit layer, even
    inside a verified load (no trust is lent to it)."""
    with untrusted_load(f"{what} of unverified bytes"):
        return orig(*args, **kwargs)


def wrap_entry(
    orig: Callable[..., Any], body: Callable[..., Any], *, code: bool = False
) -> Callable[..., Any]:
    """A wrapper that calls ``body(guard, ...)`` when the first argument must
    be checked (see :func:`~modelsign.hooks._common.active`), else ``orig``."""

    @functools.wraps(orig)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        first = args[0] if args else next(iter(kwargs.values()), None)
        guard = active(first, code=code)
        if guard is None:
            return orig(*args, **kwargs)
        return body(guard, *args, **kwargs)

    return wrapper


# ---------------------------------------------------------------------- torch


def torch_load(orig: Callable[..., Any]) -> Callable[..., Any]:
    def body(guard: Guard, f: Any, *args: Any, **kwargs: Any) -> Any:
        if is_path(f) and os.fsdecode(f).endswith(".safetensors"):
            # torch forwards these to safetensors.torch.load_file, which is
            # hooked itself and verifies the file.
            return orig(f, *args, **kwargs)
        mmap = kwargs.get("mmap")
        if mmap is None:  # torch's own default, torch.utils.serialization.config.load.mmap
            mmap = _torch_mmap_default()
        mmap = bool(mmap)
        # A TorchScript archive is loaded by torch.jit.load: code, checked
        # wherever it lies (torch dispatches it from here).
        source = source_for(guard, f, memfd=mmap, what="torch.load")
        if source is None:
            return unverified("torch.load", orig, f, *args, **kwargs)
        with source, trusted_load(source):
            if source.fd is not None:
                return orig(source.path, *args, **kwargs)
            if mmap:  # no memfd on this platform: load from memory instead
                kwargs = {**kwargs, "mmap": False}
            return orig(source.fileobj(), *args, **kwargs)

    return wrap_entry(orig, body)


def _torch_mmap_default() -> bool:
    try:
        from torch.utils.serialization import config  # noqa: PLC0415 - torch is loaded here

        return bool(config.load.mmap)
    except (ImportError, AttributeError):
        return False


def torch_patches(module: Any) -> list[Patch]:
    # For torch and torch.serialization alike. torch.load is bound from
    # torch.serialization.load, so the second patch usually finds our wrapper
    # already in place and only records the name for uninstall().
    return [(module, "load", torch_load(module.load))]


# --------------------------------------------------------------- numpy, joblib


_READ_ONLY_MAPS = (None, "r", "c")


def mmap_mode_loader(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """For loaders called as ``load(file, mmap_mode=None, ...)``: numpy.load,
    joblib.load. A memory-mapped load reads the sealed memfd by path; a file
    object reads a stream of the verified bytes, and a next load from where
    that one ended (several arrays in one file) goes on in them."""

    def make(orig: Callable[..., Any]) -> Callable[..., Any]:
        def body(guard: Guard, *args: Any, **kwargs: Any) -> Any:
            if args:
                file, args = args[0], args[1:]
            else:  # numpy.load(file=...), joblib.load(filename=...)
                file = kwargs.pop("file", None) if "file" in kwargs else kwargs.pop("filename")
            mmap_mode = kwargs.get("mmap_mode", args[0] if args else None)
            if mmap_mode not in _READ_ONLY_MAPS and (
                not is_path(file) or guard.in_scope(os.fsdecode(file))
            ):
                raise UnsafeLoadError(
                    f"a writable memory map (mmap_mode {mmap_mode!r}) of a file cannot be "
                    "verified: the file may change after any check; use 'r' or 'c'",
                    target=os.fsdecode(file) if is_path(file) else repr(file),
                    policy=guard.policy.describe(),
                )
            kept = None if is_path(file) else continuation(guard, file)
            if kept is not None:
                try:
                    with trusted_load():
                        return note_lazy(orig(kept, *args, **kwargs), verified=True)
                finally:
                    hand_back(kept, file, keep=guard)
            source = source_for(guard, file, memfd=mmap_mode is not None, what=what)
            if source is None:
                return note_lazy(unverified(what, orig, file, *args, **kwargs), verified=False)
            with source, trusted_load(source):
                if is_path(file):
                    target = source.path if source.fd is not None else source.fileobj()
                    # An .npz reads (and unpickles) its members when they are accessed.
                    return note_lazy(orig(target, *args, **kwargs), verified=True)
                stream = source.fileobj()
                try:
                    return note_lazy(orig(stream, *args, **kwargs), verified=True)
                finally:
                    hand_back(stream, file, keep=guard)

        return wrap_entry(orig, body)

    return make


numpy_load = mmap_mode_loader("numpy.load")
joblib_load = mmap_mode_loader("joblib.load")


def numpy_patches(module: Any) -> list[Patch]:
    return [(module, "load", numpy_load(module.load))]


def joblib_patches(module: Any) -> list[Patch]:
    # joblib.load is joblib.numpy_pickle.load, and joblib keeps its own
    # reference to pickle's unpickler: patch the function where it lives.
    out: list[Patch] = [(module, "load", joblib_load(module.load))]
    numpy_pickle = getattr(module, "numpy_pickle", None)
    if numpy_pickle is not None and getattr(numpy_pickle, "load", None) is not None:
        out.append((numpy_pickle, "load", out[0][2]))
    return out


# ------------------------------------------------------------------ safetensors


def by_path_loader(
    what: str, *, code: bool = False
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """For loaders that only take a path (safetensors, AOTInductor packages):
    they get the sealed memfd's path. The handle safe_open returns opens (and
    maps) the memfd while it is created, so our own descriptor can be closed
    after the call. ``code``: the format carries code (see :func:`source_for`)."""

    def make(orig: Callable[..., Any]) -> Callable[..., Any]:
        def body(guard: Guard, filename: Any, *args: Any, **kwargs: Any) -> Any:
            source = source_for(guard, filename, memfd=True, what=what, code=code)
            if source is None:
                return unverified(what, orig, filename, *args, **kwargs)
            with source, trusted_load(source):
                if source.fd is None:
                    raise UnsafeLoadError(
                        f"{what} reads by path, and verified loading needs a Linux memfd",
                        target=os.fsdecode(filename),
                        policy=guard.policy.describe(),
                    )
                return orig(source.path, *args, **kwargs)

        return wrap_entry(orig, body, code=code)

    return make


safetensors_load_file = by_path_loader("safetensors.torch.load_file")
safe_open = by_path_loader("safetensors.safe_open")


def safetensors_patches(module: Any) -> list[Patch]:
    out: list[Patch] = []
    if getattr(module, "safe_open", None) is not None:
        out.append((module, "safe_open", safe_open(module.safe_open)))
    if module.__name__ == "safetensors.torch":
        out.append((module, "load_file", safetensors_load_file(module.load_file)))
    return out


# ---------------------------------------------------------------- transformers


def from_pretrained(orig: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(orig)
    def wrapper(cls: Any, pretrained_model_name_or_path: Any, *args: Any, **kwargs: Any) -> Any:
        guard = active(pretrained_model_name_or_path)
        digests = _directory_digests.get()  # an outer from_pretrained's, if any
        folders = _verified_folders.get()
        snapshot, directory = False, None
        if guard is not None and _is_file(pretrained_model_name_or_path):
            # from_pretrained("model/config.json"): that one file, then read by path.
            path = os.fsdecode(pretrained_model_name_or_path)
            source = source_for(guard, path, memfd=False, what="from_pretrained")
            if source is not None:
                source.close()
        elif guard is not None:
            directory = local_directory(pretrained_model_name_or_path, kwargs)
            # A Hub repository's cache snapshot holds the files downloaded so
            # far: absent signed files are tolerated, and checked again, with
            # whatever this call downloads, before its result is returned.
            snapshot = directory is not None and not _is_dir(pretrained_model_name_or_path)
            if (
                directory is not None
                and guard.in_scope(directory)
                and os.path.realpath(directory) not in folders
            ):
                # Nested calls (AutoModel -> config -> model class) verify
                # the folder once, at the outermost entry.
                try:
                    verified = guard.verify_directory(directory, missing_ok=snapshot)
                    digests = (
                        verified.manifest.serialization.scheme,
                        frozenset(verified.manifest.file_fingerprints().values()),
                    )
                    folders = folders | {os.path.realpath(directory)}
                except LoadRefusedError as e:
                    refuse(guard, e)
                    snapshot = False
            else:
                snapshot = False
        # The files it then loads are verified again, one by one, as they are
        # read; bytes it reads itself (disable_mmap) must be among the digests
        # just verified. The directory check leaves no gap before the loads.
        token = _directory_digests.set(digests)
        folders_token = _verified_folders.set(folders)
        try:
            result = orig(cls, pretrained_model_name_or_path, *args, **kwargs)
        finally:
            _verified_folders.reset(folders_token)
            _directory_digests.reset(token)
        if guard is not None and snapshot and directory is not None:
            try:  # what this call downloaded must be signed too
                guard.verify_directory(directory, missing_ok=True)
            except LoadRefusedError as e:
                refuse(guard, e)  # raises in enforce mode: the result is not returned
        return result

    return wrapper


def _is_file(name: Any) -> bool:
    return is_path(name) and os.path.isfile(os.fsdecode(name))


def _is_dir(name: Any) -> bool:
    return is_path(name) and os.path.isdir(os.fsdecode(name))


#: The folders (real paths) verified by the from_pretrained calls in progress.
_verified_folders: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar(
    "modelsign_verified_folders", default=frozenset()
)


#: (hash scheme, file digests) of the directory a from_pretrained call verified, for
#: the bytes transformers reads without a hooked loader.
_directory_digests: contextvars.ContextVar[tuple[HashScheme, frozenset[Fingerprint]] | None] = (
    contextvars.ContextVar("modelsign_directory_digests", default=None)
)


def _in_verified_directory(data: bytes) -> bool:
    verified = _directory_digests.get()
    if verified is None:
        return False
    scheme, digests = verified
    if not any(scheme.could_match(d, len(data)) for d in digests):
        return False  # no verified file has this size: not hashed in (maybe tiny) shards
    h = scheme.hasher()
    h.update(data)
    return h.fingerprint() in digests


def safe_load_bytes(orig: Callable[..., Any]) -> Callable[..., Any]:
    """``safetensors.torch.load(bytes)`` as transformers calls it on bytes it
    read itself: the bytes must be a file of the verified directory (or listed
    in the policy's explicit bundles)."""

    def body(guard: Guard, data: bytes, *args: Any, **kwargs: Any) -> Any:
        if (
            not _in_verified_directory(data)
            and checked(guard, lambda: guard.open_memory(data, what="safetensors bytes")) is None
        ):
            return orig(data, *args, **kwargs)  # refused in warn mode: load as unhooked
        with trusted_load():
            return orig(data, *args, **kwargs)

    return wrap_entry(orig, body)


def local_directory(name: Any, kwargs: dict[str, Any]) -> str | None:
    if not is_path(name):
        return None
    path = os.fsdecode(name)
    subfolder = kwargs.get("subfolder") or ""
    if os.path.isdir(path):
        return os.path.join(path, subfolder) if subfolder else path
    try:  # a Hugging Face repo id already in the local cache
        from huggingface_hub import snapshot_download  # noqa: PLC0415

        local: str = snapshot_download(
            path,
            revision=kwargs.get("revision"),
            cache_dir=kwargs.get("cache_dir"),
            local_files_only=True,
        )
    except Exception:  # noqa: BLE001 - not cached: per-file checks still apply
        return None
    return os.path.join(local, subfolder) if subfolder else local


#: The transformers classes whose from_pretrained verifies the whole folder.
FROM_PRETRAINED_CLASSES = (
    "PreTrainedModel",
    "PretrainedConfig",
    "PreTrainedTokenizerBase",
    "ProcessorMixin",
    "FeatureExtractionMixin",
    "ImageProcessingMixin",
    "BaseVideoProcessor",
    "GenerationConfig",
    "_BaseAutoModelClass",
    "AutoConfig",
    "AutoTokenizer",
    "AutoProcessor",
    "AutoFeatureExtractor",
    "AutoImageProcessor",
    "AutoVideoProcessor",
)


def transformers_patches(module: Any) -> list[Patch]:
    out: list[Patch] = []
    for name in ("safe_open",):
        if getattr(module, name, None) is not None:
            out.append((module, name, safe_open(getattr(module, name))))
    for name in ("safe_load_file", "load_file"):
        if getattr(module, name, None) is not None:
            out.append((module, name, safetensors_load_file(getattr(module, name))))
    if getattr(module, "_safe_load_bytes", None) is not None:
        out.append((module, "_safe_load_bytes", safe_load_bytes(module._safe_load_bytes)))
    # Every class that reads a model folder: models, configurations,
    # tokenizers, processors, feature extractors, image and video processors,
    # generation configs, and the Auto* classes, which resolve (and, with
    # trust_remote_code, import) the folder's Python before the class they
    # pick runs. Subclasses inherit these.
    for name in FROM_PRETRAINED_CLASSES:
        cls = getattr(module, name, None)
        if cls is not None and isinstance(vars(cls).get("from_pretrained"), classmethod):
            func = vars(cls)["from_pretrained"].__func__
            out.append((cls, "from_pretrained", classmethod(from_pretrained(func))))
    return out
