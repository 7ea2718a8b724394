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
``PreTrainedModel.from_pretrained`` (whole-directory verification).

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

from modelsign.errors import ConfigError
from modelsign.guard import Guard
from modelsign.hooks import _loaders, _pickle
from modelsign.hooks._common import current_guard, set_guard
from modelsign.policy import Policy

__all__ = ["covered", "enforce", "install", "installed", "status", "uninstall"]

Patch = tuple[object, str, Any]

#: module name -> function returning the patches to apply to it.
_TARGETS: dict[str, Callable[[ModuleType], list[Patch]]] = {
    "pickle": _pickle.patches,
    "_pickle": _pickle.patches,
    "torch.serialization": _loaders.torch_patches,
    "torch": _loaders.torch_patches,
    "numpy": _loaders.numpy_patches,
    "joblib": _loaders.joblib_patches,
    "safetensors": _loaders.safetensors_patches,
    "safetensors.torch": _loaders.safetensors_patches,
    "transformers.modeling_utils": _loaders.transformers_patches,
    "transformers.modeling_layers": _loaders.transformers_patches,
    "transformers.models.auto.auto_factory": _loaders.transformers_patches,
    "transformers.models.auto.configuration_auto": _loaders.transformers_patches,
    "transformers.models.auto.tokenization_auto": _loaders.transformers_patches,
}

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
        _patched_modules.add(name)


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


def install(policy: Policy | str | os.PathLike[str] | None = None) -> None:
    """Turn enforcement on for this process.

    ``policy`` is a :class:`~modelsign.policy.Policy`, the path of a policy
    file, or None for ``MODELSIGN_POLICY`` / ``[tool.modelsign]``. Installing
    again only replaces the policy. Raises :class:`~modelsign.errors.ConfigError`
    when the policy has no trust anchor.
    """
    guard = Guard(_as_policy(policy))
    with _lock:
        set_guard(guard)
        for name in _TARGETS:
            module = sys.modules.get(name)
            if module is not None:
                _patch_module(module)
        if _watcher not in sys.meta_path:
            sys.meta_path.insert(0, _watcher)


def uninstall() -> None:
    """Turn enforcement off and restore the exact original functions."""
    with _lock:
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(_watcher)
        for obj, attr, original in reversed(_originals):
            setattr(obj, attr, original)
        _originals.clear()
        _patched_modules.clear()
        set_guard(None)


def installed() -> bool:
    return current_guard() is not None


def covered() -> list[str]:
    """The loader entry points patched right now."""
    with _lock:
        return [f"{getattr(obj, '__name__', obj)}.{attr}" for obj, attr, _ in _originals]


def status() -> dict[str, Any]:
    """Whether enforcement is on, under which policy, and which loaders it covers."""
    guard = current_guard()
    return {
        "active": guard is not None,
        "policy": None if guard is None else guard.policy.source,
        "mode": None if guard is None else guard.policy.mode,
        "covered": covered(),
        "pending": sorted(n for n in _TARGETS if n not in _patched_modules)
        if guard is not None
        else [],
    }


@contextlib.contextmanager
def enforce(policy: Policy | str | os.PathLike[str] | None = None) -> Iterator[Policy]:
    """Enforcement on inside the ``with`` block; the previous state after it."""
    previous = current_guard()
    if previous is not None:
        # The guard is process-wide: a block must not swap, widen or weaken
        # the policy other threads are loading under.
        requested = _as_policy(policy) if policy is not None else previous.policy
        if requested != previous.policy:
            raise ConfigError(
                f"enforcement is already active under {previous.policy.describe()}; "
                "a nested enforce() cannot change the policy"
            )
        yield previous.policy
        return
    install(policy)
    guard = current_guard()
    assert guard is not None
    try:
        yield guard.policy
    finally:
        if current_guard() is guard:  # not if someone re-installed meanwhile
            uninstall()
