"""The loader hook: no model file reaches a deserializer unless it verifies.

    import modelsign.hooks
    modelsign.hooks.install("/etc/modelsign/policy.toml")   # or a Policy
    torch.load("model.pt")        # verified first, then loaded from the verified bytes
    modelsign.hooks.uninstall()   # the original functions, exactly

or ``with modelsign.enforce(policy): ...``. Covered: ``torch.load`` and
``torch.serialization.load``; ``pickle``/``_pickle`` ``load``, ``Unpickler``
(files from disk) and ``loads`` (opt-in, by digest); ``numpy.load``;
``joblib.load``; ``safetensors.safe_open`` and ``safetensors.torch.load_file``;
the names ``transformers.modeling_utils`` imported from them, and
``PreTrainedModel.from_pretrained`` (whole-directory verification);
``torch.distributed.checkpoint`` reads (``FileSystemReader``: ``.metadata``
and each ``.distcp`` file it reads, from verified bytes).

A module that is not imported yet is patched when it is imported, so
``install()`` itself imports neither torch nor anything else heavy.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from types import ModuleType
from typing import Any

from modelsign._guard import Guard
from modelsign.errors import ConfigError
from modelsign.hooks import _audit, _children, _code, _dcp, _formats, _loaders, _pickle
from modelsign.hooks._common import current_guard, set_guard
from modelsign.policy import Policy

__all__ = [
    "covered",
    "enforce",
    "install",
    "installed",
    "status",
    "uninstall",
    "watched_modules",
]

Patch = tuple[object, str, Any]


def _all(*makers: Callable[[ModuleType], list[Patch]]) -> Callable[[ModuleType], list[Patch]]:
    return lambda module: [p for make in makers for p in make(module)]


_transformers_loaders = _loaders.transformers_patches
_safetensors = _all(_loaders.safetensors_patches, _formats.safetensors_bytes_patches)

#: module name -> function returning the patches to apply to it.
_TARGETS: dict[str, Callable[[ModuleType], list[Patch]]] = {
    "pickle": _pickle.patches,
    "_pickle": _pickle.patches,
    "torch.serialization": _loaders.torch_patches,
    "torch": _loaders.torch_patches,
    "torch.jit._serialization": _formats.jit_patches,
    "torch.jit": _formats.jit_patches,
    "torch.export": _formats.export_patches,
    "torch._inductor": _formats.inductor_patches,
    "torch._inductor.package": _formats.inductor_patches,
    "torch._inductor.package.package": _formats.inductor_patches,
    "torch.hub": _code.hub_patches,
    "torch.package.package_importer": _code.package_patches,
    "torch.package": _code.package_patches,
    "numpy": _all(_loaders.numpy_patches, _formats.numpy_memmap_patches),
    "numpy.lib._npyio_impl": _all(_loaders.numpy_patches, _formats.numpy_npz_patches),
    "numpy.lib.format": _formats.numpy_format_patches,
    "joblib": _loaders.joblib_patches,
    "safetensors": _safetensors,
    "safetensors.torch": _safetensors,
    "safetensors.numpy": _safetensors,
    "torch.distributed.checkpoint.filesystem": _dcp.patches,
    "torch.distributed.checkpoint.state_dict_loader": _dcp.patches,
    "torch.distributed.checkpoint": _dcp.patches,
    "transformers.dynamic_module_utils": _code.transformers_patches,
    "transformers.generation.utils": _code.transformers_patches,
    **{
        f"transformers.{name}": _transformers_loaders
        for name in (
            "modeling_utils",
            "modeling_layers",
            "configuration_utils",
            "tokenization_utils_base",
            "processing_utils",
            "feature_extraction_utils",
            "image_processing_base",
            "video_processing_utils",
            "generation.configuration_utils",
            "models.auto.auto_factory",
            "models.auto.configuration_auto",
            "models.auto.tokenization_auto",
            "models.auto.processing_auto",
            "models.auto.feature_extraction_auto",
            "models.auto.image_processing_auto",
            "models.auto.video_processing_auto",
        )
    },
}

# DCP's object collectives may resolve its plan and metadata types.
_audit.LIMITED_CHANNELS[_dcp.COLLECTIVES] = _dcp.collective_global

_lock = threading.RLock()
#: (object, attribute, original value) of every patch in force, in order.
_originals: list[Patch] = []
_patched_modules: set[str] = set()


def _raw(obj: object, attr: str) -> Any:
    # For a class, keep the descriptor itself (a classmethod), not the bound method.
    if isinstance(obj, type) and attr in vars(obj):
        return vars(obj)[attr]
    return getattr(obj, attr)


def _patch_module(module: ModuleType) -> None:
    name = module.__name__
    with _lock:
        if name in _patched_modules or current_guard() is None:
            return
        for obj, attr, replacement in _TARGETS[name](module):
            current = _raw(obj, attr)
            if getattr(current, "__modelsign__", False):
                # Bound from a module patched earlier (torch.load is
                # torch.serialization.load; safetensors.torch.safe_open is
                # safetensors.safe_open): keep the one wrapper, but restore
                # this name too on uninstall.
                _originals.append((obj, attr, current.__wrapped__))
                continue
            _originals.append((obj, attr, current))
            replacement.__modelsign__ = True
            setattr(obj, attr, replacement)
            if isinstance(obj, ModuleType) and not isinstance(replacement, type):
                _replacements[id(current)] = (current, replacement)
        _patched_modules.add(name)


#: id(original) -> (original, wrapper) of every module-level function patched
#: now: a name that another module bound to the original before install()
#: (``from numpy.lib._npyio_impl import load``, ``from safetensors import
#: safe_open``) is rebound too. (A module imported later binds the wrapper: its
#: target is patched by then.) Not where the wrapper is a subclass (pickle's
#: Unpickler): code that names the class to call its methods would break, and
#: the audit layer covers unpicklers however they are reached.
_replacements: dict[int, tuple[Any, Any]] = {}


def _rebind(module: ModuleType | None) -> None:
    """Point ``module``'s names that hold a patched original to its wrapper."""
    name = getattr(module, "__name__", None)
    if not isinstance(name, str) or name == "modelsign" or name.startswith("modelsign."):
        return
    try:
        items = list(vars(module).items())
    except TypeError:
        return
    for attr, value in items:
        entry = _replacements.get(id(value))
        if entry is not None and entry[0] is value:
            _originals.append((module, attr, value))
            setattr(module, attr, entry[1])


class _Loader(importlib.abc.Loader):
    """Wraps a watched module's loader: patch right after it executes."""

    def __init__(self, inner: importlib.abc.Loader) -> None:
        self._inner = inner

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._inner.exec_module(module)
        _patch_module(module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _Watcher(importlib.abc.MetaPathFinder):
    """Patches watched modules when they are imported after install()."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in _TARGETS or fullname in _patched_modules:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _Loader(spec.loader)
                return spec
        return None


_watcher = _Watcher()


def _as_policy(policy: Policy | str | os.PathLike[str] | None) -> Policy:
    if policy is None:
        return Policy.from_environment()
    return policy if isinstance(policy, Policy) else Policy.load(policy)


#: enforce() blocks active now, in every thread.
_blocks = 0
#: Who turned enforcement on: "install" (stays on until uninstall()) or
#: "enforce" (off when the last enforce() block of any thread ends).
_owner: str | None = None


def install(policy: Policy | str | os.PathLike[str] | None = None) -> None:
    """Turn enforcement on for this process and the Python processes it starts.

    ``policy`` is a :class:`~modelsign.policy.Policy`, the path of a policy
    file, or None for the file ``MODELSIGN_POLICY`` names (never one found in
    the working directory). Installing again replaces the policy, except under
    active :func:`enforce` blocks, whose policy it cannot change.

    Args:
        policy: a :class:`~modelsign.policy.Policy`, a policy file, or None.

    Returns:
        None: the loaders are patched when this returns.

    Raises:
        ConfigError: no policy named, an unreadable or invalid policy, one
            with no trust anchor, or another policy under :func:`enforce`.
    """
    global _owner  # noqa: PLW0603 - one process-wide state, by design
    wanted = _as_policy(policy)
    with _lock:
        current = current_guard()
        if current is not None and current.policy == wanted:
            _owner = "install"
            return
        if _blocks:
            raise ConfigError(
                f"{_blocks} enforce() block(s) are active under "
                f"{current.policy.describe() if current else '?'}; install() cannot change "
                "their policy"
            )
        _activate(wanted)
        _owner = "install"


def _activate(policy: Policy) -> None:
    _audit.ensure_installed()
    fresh = current_guard() is None
    set_guard(Guard(policy))
    for name in _TARGETS:
        module = sys.modules.get(name)
        if module is not None:
            _patch_module(module)
    if fresh:  # names bound anywhere before install(): user modules too
        for module in list(sys.modules.values()):
            _rebind(module)
    if _watcher not in sys.meta_path:
        sys.meta_path.insert(0, _watcher)
    _children.export(policy)


def uninstall() -> None:
    """Turn enforcement off and restore the exact original functions.

    Returns:
        None: the original functions are back when this returns.

    Raises:
        ConfigError: while :func:`enforce` blocks are active (in any
            thread): it would lower their protection.
    """
    global _owner  # noqa: PLW0603 - one process-wide state, by design
    with _lock:
        if _blocks:
            raise ConfigError(
                f"{_blocks} enforce() block(s) are active; uninstall() would turn their "
                "protection off: leave them first"
            )
        _deactivate()
        _owner = None


def _deactivate() -> None:
    with contextlib.suppress(ValueError):
        sys.meta_path.remove(_watcher)
    for obj, attr, original in reversed(_originals):
        setattr(obj, attr, original)
    _originals.clear()
    _replacements.clear()
    _patched_modules.clear()
    set_guard(None)
    _children.restore()


def watched_modules() -> list[str]:
    """The modules whose loader entry points enforcement patches.

    Returns:
        Module names, patched now or when they are imported.
    """
    return sorted(_TARGETS)


def installed() -> bool:
    """Whether enforcement is on in this process.

    Returns:
        True between :func:`install` (or an :func:`enforce` block) and the end.
    """
    return current_guard() is not None


def covered() -> list[str]:
    """The loader entry points patched right now.

    Returns:
        Qualified names such as ``torch.load``, in the order they were patched.
    """
    with _lock:
        return [f"{getattr(obj, '__name__', obj)}.{attr}" for obj, attr, _ in _originals]


def status() -> dict[str, Any]:
    """Whether enforcement is on, under which policy, and which loaders it covers.

    Returns:
        A JSON-ready mapping (``manifests/cli/status.schema.json`` describes
        the fields ``modelsign status --json`` prints from it).
    """
    guard = current_guard()
    return {
        "active": guard is not None,
        "policy": None if guard is None else guard.policy.source,
        "mode": None if guard is None else guard.policy.mode,
        "covered": covered(),
        "pending": sorted(n for n in _TARGETS if n not in _patched_modules)
        if guard is not None
        else [],
        # The fail-closed layer under the patches (modelsign.hooks._audit).
        "audit": None
        if guard is None
        else {
            "unverified_pickles": guard.policy.unverified_pickles,
            "allowed_globals": sorted(guard.policy.allowed_globals),
        },
    }


@contextlib.contextmanager
def enforce(policy: Policy | str | os.PathLike[str] | None = None) -> Iterator[Policy]:
    """Enforcement on inside the ``with`` block.

    Enforcement is process-wide: a block that finds it on keeps it (and must
    ask for the same policy, or none); enforcement that a block turned on goes
    off when the last block of any thread ends, never while another thread is
    still inside one, and never if :func:`install` was called meanwhile.

    Args:
        policy: a :class:`~modelsign.policy.Policy`, a policy file, or None
            (the file ``MODELSIGN_POLICY`` names, or the active policy).

    Yields:
        The policy in force inside the block.

    Raises:
        ConfigError: as :func:`install`, or a block asking for another
            policy than the one in force.
    """
    global _blocks, _owner  # noqa: PLW0603 - one process-wide state, by design
    wanted = None if policy is None else _as_policy(policy)
    with _lock:
        current = current_guard()
        if current is not None:
            if wanted is not None and wanted != current.policy:
                raise ConfigError(
                    f"enforcement is already active under {current.policy.describe()}; "
                    "a nested enforce() cannot change the policy"
                )
        else:
            _activate(wanted if wanted is not None else _as_policy(None))
            _owner = "enforce"
        _blocks += 1
        guard = current_guard()
        assert guard is not None
    try:
        yield guard.policy
    finally:
        with _lock:
            _blocks -= 1
            if _blocks == 0 and _owner == "enforce":
                _deactivate()
                _owner = None
