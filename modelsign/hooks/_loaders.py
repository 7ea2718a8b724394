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

from modelsign.errors import LoadRefusedError, UnsafeLoadError
from modelsign.guard import Guard, LoadSource
from modelsign.hashing import fingerprint_size, new_scheme_hasher
from modelsign.hooks._common import active, checked, is_path, note_lazy, refuse, trusted_load

Patch = tuple[object, str, Any]


def _source(guard: Guard, f: Any, *, memfd: bool, what: str) -> LoadSource | None:
    """Verify a path or a file object; None means "load unchecked" (out of
    scope, or a refusal in warn mode)."""
    if is_path(f):
        path = os.fsdecode(f)
        if not guard.in_scope(path):
            return None
        return checked(guard, lambda: guard.open_path(path, memfd=memfd, what=what))
    source = checked(guard, lambda: guard.open_file(f, memfd=memfd, what=what))
    if source is None:  # warn mode: give the loader the stream as it was
        with contextlib.suppress(OSError, ValueError, AttributeError):
            f.seek(0)
    return source


def _wrap(orig: Callable[..., Any], body: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(orig)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        guard = active(args[0] if args else next(iter(kwargs.values()), None))
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
        source = _source(guard, f, memfd=mmap, what="torch.load")
        if source is None:
            return orig(f, *args, **kwargs)
        with source, trusted_load(source):
            if source.fd is not None:
                return orig(source.path, *args, **kwargs)
            if mmap:  # no memfd on this platform: load from memory instead
                kwargs = {**kwargs, "mmap": False}
            return orig(source.fileobj(), *args, **kwargs)

    return _wrap(orig, body)


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


def mmap_mode_loader(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """For loaders called as ``load(file, mmap_mode=None, ...)``: numpy.load,
    joblib.load. A memory-mapped load reads the sealed memfd by path."""

    def make(orig: Callable[..., Any]) -> Callable[..., Any]:
        def body(guard: Guard, *args: Any, **kwargs: Any) -> Any:
            if args:
                file, args = args[0], args[1:]
            else:  # numpy.load(file=...), joblib.load(filename=...)
                file = kwargs.pop("file", None) if "file" in kwargs else kwargs.pop("filename")
            mmap_mode = kwargs.get("mmap_mode", args[0] if args else None)
            source = _source(guard, file, memfd=mmap_mode is not None, what=what)
            if source is None:
                return note_lazy(orig(file, *args, **kwargs), verified=False)
            with source, trusted_load(source):
                target = source.path if source.fd is not None else source.fileobj()
                # An .npz reads (and unpickles) its members when they are accessed.
                return note_lazy(orig(target, *args, **kwargs), verified=True)

        return _wrap(orig, body)

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


def by_path_loader(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """For loaders that only take a path (safetensors): they get the sealed
    memfd's path. The handle safe_open returns opens (and maps) the memfd while
    it is created, so our own descriptor can be closed after the call."""

    def make(orig: Callable[..., Any]) -> Callable[..., Any]:
        def body(guard: Guard, filename: Any, *args: Any, **kwargs: Any) -> Any:
            source = _source(guard, filename, memfd=True, what=what)
            if source is None:
                return orig(filename, *args, **kwargs)
            with source, trusted_load(source):
                if source.fd is None:
                    raise UnsafeLoadError(
                        f"{what} reads by path, and verified loading needs a Linux memfd",
                        target=os.fsdecode(filename),
                        policy=guard.policy.describe(),
                    )
                return orig(source.path, *args, **kwargs)

        return _wrap(orig, body)

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
        if guard is not None:
            directory = _local_directory(pretrained_model_name_or_path, kwargs)
            if (
                directory is not None
                and guard.in_scope(directory)
                and os.path.realpath(directory) not in folders
            ):
                # Nested calls (AutoModel -> config -> model class) verify
                # the folder once, at the outermost entry.
                try:
                    verified = guard.verify_directory(directory)
                    digests = (
                        verified.manifest.serialization.scheme,
                        frozenset(verified.manifest.file_fingerprints().values()),
                    )
                    folders = folders | {os.path.realpath(directory)}
                except LoadRefusedError as e:
                    refuse(guard, e)
        # The files it then loads are verified again, one by one, as they are
        # read; bytes it reads itself (disable_mmap) must be among the digests
        # just verified. The directory check leaves no gap before the loads.
        token = _directory_digests.set(digests)
        folders_token = _verified_folders.set(folders)
        try:
            return orig(cls, pretrained_model_name_or_path, *args, **kwargs)
        finally:
            _verified_folders.reset(folders_token)
            _directory_digests.reset(token)

    return wrapper


#: The folders (real paths) verified by the from_pretrained calls in progress.
_verified_folders: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar(
    "modelsign_verified_folders", default=frozenset()
)


#: (hash scheme, file digests) of the directory a from_pretrained call verified, for
#: the bytes transformers reads without a hooked loader.
_directory_digests: contextvars.ContextVar[tuple[str, frozenset[str]] | None] = (
    contextvars.ContextVar("modelsign_directory_digests", default=None)
)


def _in_verified_directory(data: bytes) -> bool:
    verified = _directory_digests.get()
    if verified is None:
        return False
    scheme, digests = verified
    if "/shards/" in scheme and not any(fingerprint_size(d) == len(data) for d in digests):
        return False  # no verified file has this size: not hashed in (maybe tiny) shards
    h = new_scheme_hasher(scheme)()
    h.update(data)
    return h.hexdigest() in digests


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

    return _wrap(orig, body)


def _local_directory(name: Any, kwargs: dict[str, Any]) -> str | None:
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
