"""Formats that carry no Python code, but whose bytes must still be verified:
TorchScript (``torch.jit.load``), exported programs (``torch.export.load``,
``.pt2``), AOTInductor packages, numpy memory maps (``numpy.memmap``,
``numpy.lib.format.open_memmap``) and safetensors bytes in memory
(``safetensors.torch.load``, ``safetensors.numpy.load``, ``deserialize``).

The audit layer cannot see these (no unpickling, or not only): each entry
point verifies the file and hands the loader the verified bytes.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

from modelsign._guard import Guard, LoadSource
from modelsign.errors import UnsafeLoadError
from modelsign.hooks._common import active, is_path, lazy_load, trusted_load, verified_origin
from modelsign.hooks._loaders import (
    by_path_loader,
    safe_load_bytes,
    source_for,
    unverified,
    wrap_entry,
)

Patch = tuple[object, str, Any]


def _code_loader(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """For loaders of formats that carry code (TorchScript, exported
    programs), taking a path or a file object and reading it whole: they get a
    stream of the verified bytes, wherever the file lies (the scope does not
    apply to code), and bytes from an unverified load never pass as nested."""

    def make(orig: Callable[..., Any]) -> Callable[..., Any]:
        def body(guard: Guard, f: Any, *args: Any, **kwargs: Any) -> Any:
            source = source_for(guard, f, memfd=False, what=what, code=True)
            if source is None:  # refused in warn mode
                return unverified(what, orig, f, *args, **kwargs)
            with source, trusted_load(source), source.fileobj() as stream:
                return orig(stream, *args, **kwargs)

        return wrap_entry(orig, body, code=True)

    return make


jit_load = _code_loader("torch.jit.load")
export_load = _code_loader("torch.export.load")
aoti_load_package = by_path_loader("torch._inductor.aoti_load_package", code=True)


def jit_patches(module: Any) -> list[Patch]:
    return [(module, "load", jit_load(module.load))]


def export_patches(module: Any) -> list[Patch]:
    return [(module, "load", export_load(module.load))]


def inductor_patches(module: Any) -> list[Patch]:
    out: list[Patch] = []
    for name in ("aoti_load_package", "load_package"):
        if getattr(module, name, None) is not None:
            out.append((module, name, aoti_load_package(getattr(module, name))))
    return out


# ------------------------------------------------------------------ numpy maps

_READ_ONLY = ("r", "c", "readonly", "copyonwrite")
_CREATES = ("w+", "write")


def _map_mode(mode: Any) -> str:
    return str(mode) if mode is not None else "r+"


def _mapped_source(guard: Guard, filename: Any, mode: str, what: str) -> LoadSource | None:
    """The sealed memfd to map instead of ``filename``, or None to map the file
    as asked: creating it (``w+``) is not a load, and a file out of scope (or
    refused in warn mode) is not guarded. A writable map of a file is refused:
    the file could change under it after any check."""
    if mode in _CREATES or (is_path(filename) and not guard.in_scope(os.fsdecode(filename))):
        return None
    if mode not in _READ_ONLY:
        raise UnsafeLoadError(
            f"a writable memory map (mode {mode!r}) of a file cannot be verified: the file "
            "may change after any check; open it with mode 'r' or 'c'",
            target=_name(filename),
            policy=guard.policy.describe(),
        )
    source = source_for(guard, filename, memfd=True, what=what)
    if source is not None and source.fd is None:
        source.close()
        raise UnsafeLoadError(
            f"{what} maps a file, and verified mapping needs a Linux memfd",
            target=_name(filename),
            policy=guard.policy.describe(),
        )
    return source


def memmap_new(orig: Callable[..., Any]) -> Callable[..., Any]:
    """``numpy.memmap.__new__``: a read-only or copy-on-write map of a model
    file maps the sealed memfd of its verified bytes (see :func:`_mapped_source`)."""

    @functools.wraps(orig)
    def __new__(subtype: Any, filename: Any, *args: Any, **kwargs: Any) -> Any:
        guard = active(filename)
        mode = _map_mode(kwargs.get("mode", args[1] if len(args) > 1 else "r+"))
        origin = verified_origin(filename)
        source = None if guard is None else _mapped_source(guard, filename, mode, "numpy.memmap")
        if source is None and guard is not None and mode not in _CREATES:
            result = unverified("numpy.memmap", orig, subtype, filename, *args, **kwargs)
        elif source is None:
            result = orig(subtype, filename, *args, **kwargs)
        else:
            with source, trusted_load(source):
                result = orig(subtype, source.path, *args, **kwargs)
            origin = source.origin
        if origin is not None:
            # Name the verified file, not /proc/self/fd/N (closed after the load):
            # a process this map is sent to (joblib) reopens and verifies it.
            result.filename = origin
        return result

    return __new__


def open_memmap(orig: Callable[..., Any]) -> Callable[..., Any]:
    """``numpy.lib.format.open_memmap``: reads the header and maps the data
    of the verified bytes (its default mode, ``r+``, is refused in scope)."""

    def body(guard: Guard, filename: Any, *args: Any, **kwargs: Any) -> Any:
        mode = _map_mode(kwargs.get("mode", args[0] if args else "r+"))
        source = _mapped_source(guard, filename, mode, "numpy.lib.format.open_memmap")
        if source is None:
            return unverified("numpy.lib.format.open_memmap", orig, filename, *args, **kwargs)
        with source, trusted_load(source):
            return orig(source.path, *args, **kwargs)

    return wrap_entry(orig, body)


def _name(filename: Any) -> str:
    if is_path(filename):
        return os.path.abspath(os.fsdecode(filename))
    name = getattr(filename, "name", None)
    return os.path.abspath(os.fsdecode(name)) if isinstance(name, (str, bytes)) else repr(filename)


def numpy_memmap_patches(module: Any) -> list[Patch]:
    out: list[Patch] = []
    memmap = getattr(module, "memmap", None)
    if isinstance(memmap, type) and "__new__" in vars(memmap):
        raw = vars(memmap)["__new__"]
        func = raw.__func__ if isinstance(raw, staticmethod) else raw
        out.append((memmap, "__new__", staticmethod(memmap_new(func))))
    return out


def read_array(orig: Callable[..., Any]) -> Callable[..., Any]:
    """``numpy.lib.format.read_array(fp)``: reads an ``.npy`` (and its pickle,
    with ``allow_pickle``) from the verified bytes of ``fp``'s file."""

    def body(guard: Guard, fp: Any, *args: Any, **kwargs: Any) -> Any:
        source = source_for(guard, fp, memfd=False, what="numpy.lib.format.read_array")
        if source is None:
            return unverified("numpy.lib.format.read_array", orig, fp, *args, **kwargs)
        with source, trusted_load(source), source.fileobj() as stream:
            return orig(stream, *args, **kwargs)

    return wrap_entry(orig, body)


def npz_getitem(orig: Callable[..., Any]) -> Callable[..., Any]:
    """``NpzFile.__getitem__``: a member is read (and, with ``allow_pickle``,
    unpickled) under the trust of the ``numpy.load`` that opened the archive."""

    @functools.wraps(orig)
    def __getitem__(self: Any, key: Any) -> Any:
        with lazy_load(self, f"numpy .npz member {key!r}"):
            return orig(self, key)

    return __getitem__


def numpy_npz_patches(module: Any) -> list[Patch]:
    npz = module.NpzFile
    return [(npz, "__getitem__", npz_getitem(vars(npz)["__getitem__"]))]


def numpy_format_patches(module: Any) -> list[Patch]:
    return [
        (module, "open_memmap", open_memmap(module.open_memmap)),
        (module, "read_array", read_array(module.read_array)),
    ]


# ----------------------------------------------------------- safetensors bytes


def safetensors_bytes_patches(module: Any) -> list[Patch]:
    """``load(bytes)`` and ``deserialize(bytes)`` of safetensors and its
    framework modules: the bytes must be a file of a verified model folder
    or listed in the policy's explicit bundles."""
    out: list[Patch] = []
    names = ("deserialize",) if module.__name__ == "safetensors" else ("load", "deserialize")
    for name in names:
        if callable(getattr(module, name, None)):
            out.append((module, name, safe_load_bytes(getattr(module, name))))
    return out
