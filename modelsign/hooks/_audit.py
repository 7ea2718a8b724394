"""The fail-closed layer: a process-wide audit hook on ``pickle.find_class``.

Entry-point patches fail open: a loader that is not patched (a name bound
before ``install()``, a re-imported module, ``shelve``, a zip member stream)
unpickles whatever it is given. Under them lies this layer. CPython raises the
audit event ``pickle.find_class`` whenever the C or the Python unpickler
resolves a global, whoever called it; a hook added with ``sys.addaudithook``
cannot be removed and survives ``importlib.reload``. While enforcement is on,
an unpickling may resolve any global only when it is marked as trusted:

* the deserialization of verified bytes (the entry-point layer sets
  :data:`modelsign.hooks._common.verified` around the original loader);
* inter-process traffic with the process's own children: the unpickler was
  called directly by one of :data:`CHANNELS` (multiprocessing connections and
  queues, the spawn/forkserver start-up, torch.multiprocessing queues).

Any other unpickling may resolve only the globals of :data:`ALLOWED` (plain
containers and numbers, and the tensor and array rebuild functions that
``torch.load(weights_only=True)`` allows) plus the policy's
``allowed_globals``; anything else raises :class:`ForbiddenGlobalError` before
the global is even imported. A missing mark therefore refuses: it never loads.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any

from modelsign.errors import ForbiddenGlobalError
from modelsign.hooks import _common

__all__ = ["ALLOWED", "CHANNELS", "allowed", "ensure_installed"]

_TORCH_TYPES = (
    "Bool",
    "Byte",
    "Char",
    "Double",
    "Float",
    "Half",
    "Int",
    "Long",
    "Short",
    "BFloat16",
)

#: Globals any unpickling may resolve, as ``module.name``: what
#: ``torch.load(weights_only=True)`` allows (torch 2.13), numpy's array and
#: scalar rebuilders, and plain containers. Each either builds a value from
#: its arguments or takes only arguments that were themselves unpickled (so
#: resolved through this same check). torch's dtypes, layouts, memory formats
#: and quantization schemes are allowed by type (see :func:`allowed`).
ALLOWED: frozenset[str] = frozenset(
    {
        # Containers and numbers; bytes of protocol 2 go through _codecs.encode.
        "builtins.set",
        "builtins.frozenset",
        "builtins.bytearray",
        "builtins.bytes",
        "builtins.complex",
        "builtins.slice",
        "builtins.range",
        "_codecs.encode",
        "collections.OrderedDict",
        "collections.Counter",
        # numpy arrays and scalars (numpy 1 and 2 module names).
        "numpy.ndarray",
        "numpy.dtype",
        "numpy.core.multiarray._reconstruct",
        "numpy.core.multiarray.scalar",
        "numpy.core.numeric._frombuffer",
        "numpy._core.multiarray._reconstruct",
        "numpy._core.multiarray.scalar",
        "numpy._core.numeric._frombuffer",
        # torch tensors, as torch's weights-only unpickler rebuilds them.
        "torch.Size",
        "torch.Tensor",
        "torch.device",
        "torch.nn.parameter.Parameter",
        "torch.serialization._get_layout",
        "torch.storage.TypedStorage",
        "torch.storage.UntypedStorage",
        # A tensor pickled with plain pickle: its storage is torch.load-ed from
        # bytes, and that nested unpickling goes through this check as well.
        "torch.storage._load_from_bytes",
        "torch._tensor._rebuild_from_type_v2",
        *(
            f"torch._utils.{name}"
            for name in (
                "_rebuild_device_tensor_from_cpu_tensor",
                "_rebuild_device_tensor_from_numpy",
                "_rebuild_meta_tensor_no_storage",
                "_rebuild_nested_tensor",
                "_rebuild_parameter",
                "_rebuild_parameter_with_state",
                "_rebuild_qtensor",
                "_rebuild_sparse_tensor",
                "_rebuild_tensor",
                "_rebuild_tensor_v2",
                "_rebuild_tensor_v3",
                "_rebuild_wrapper_subclass",
            )
        ),
        *(f"torch.{t}Storage" for t in _TORCH_TYPES),
        *(f"torch.{t}Storage" for t in ("ComplexDouble", "ComplexFloat")),
        *(f"torch.{t}Storage" for t in ("QInt32", "QInt8", "QUInt2x4", "QUInt4x2", "QUInt8")),
        *(f"torch.{t}Tensor" for t in _TORCH_TYPES),
        *(f"torch.cuda.{t}Storage" for t in _TORCH_TYPES),
        *(f"torch.cuda.{t}Storage" for t in ("ComplexDouble", "ComplexFloat")),
        *(f"torch.cuda.{t}Tensor" for t in _TORCH_TYPES),
        *(f"torch.sparse.{t}Tensor" for t in _TORCH_TYPES if t != "Bool"),
        *(f"torch.cuda.sparse.{t}Tensor" for t in _TORCH_TYPES if t != "Bool"),
    }
)

#: Python 2 module names that protocol 0-2 pickles use for builtins
#: (``fix_imports`` maps them). Only ``__builtin__``, which no Python 3
#: module is named: ``itertools``, ``socket`` and the like are real modules.
_PY2_ALIASES = {"__builtin__": "builtins"}

#: The stdlib and torch functions whose own unpickling is IPC with the
#: process's children or parent: (module, class or None, function).
CHANNELS: tuple[tuple[str, str | None, str], ...] = (
    ("multiprocessing.connection", "_ConnectionBase", "recv"),
    ("multiprocessing.queues", "Queue", "get"),
    ("multiprocessing.queues", "SimpleQueue", "get"),
    ("multiprocessing.spawn", None, "_main"),
    ("torch.multiprocessing.queue", "ConnectionWrapper", "recv"),
)

#: Channels trusted with more than the allowlist, but not with everything:
#: (module, class or None, function) of the unpickler's direct caller -> which
#: further ``(module, name)`` globals it may resolve. modelsign.hooks fills it
#: (torch.distributed's object collectives carry distributed checkpoint
#: plans: :mod:`modelsign.hooks._dcp`).
LIMITED_CHANNELS: dict[tuple[str, str | None, str], Callable[[str, str], bool]] = {}

#: Modules whose top-level code, run as ``python -m MODULE`` to start a child,
#: unpickles what the parent sends on a pipe: joblib's loky workers.
MAIN_CHANNELS = frozenset({"joblib.externals.loky.backend.popen_loky_posix"})


def allowed(module: str, name: str, extra: frozenset[str] = frozenset()) -> bool:
    """Whether an unverified unpickling may resolve ``module.name``."""
    module = _PY2_ALIASES.get(module, module)
    key = f"{module}.{name}"
    if key in ALLOWED or key in extra:
        return True
    if module == "torch":
        torch = sys.modules.get("torch")
        # Look in the module's namespace only: getattr could run torch's lazy
        # submodule import for an attacker-chosen name.
        value = vars(torch).get(name) if torch is not None else None
        kinds = tuple(
            k
            for k in (
                getattr(torch, a, None) for a in ("dtype", "layout", "memory_format", "qscheme")
            )
            if isinstance(k, type)
        )
        return value is not None and bool(kinds) and isinstance(value, kinds)
    return False


# ----------------------------------------------------------------- channels

Channel = tuple[str, str | None, str]

_channel_cache: dict[tuple[Channel, ...], tuple[tuple[int, ...], frozenset[CodeType]]] = {}


def _channel_codes(channels: tuple[Channel, ...] = CHANNELS) -> frozenset[CodeType]:
    """The code objects of ``channels`` in the modules imported now
    (recomputed when one of them is imported or reloaded)."""
    modules = [sys.modules.get(m) for m, _, _ in channels]
    key = tuple(id(m) for m in modules)
    cached = _channel_cache.get(channels)
    if cached is not None and cached[0] == key:
        return cached[1]
    codes = set()
    for module, (_, owner, function) in zip(modules, channels, strict=True):
        if module is None:
            continue
        namespace = getattr(module, owner, None) if owner else module
        func = vars(namespace).get(function) if namespace is not None else None
        code = getattr(func, "__code__", None)
        if isinstance(code, CodeType):
            codes.add(code)
    _channel_cache[channels] = (key, frozenset(codes))
    return frozenset(codes)


def _caller(frame: FrameType | None) -> FrameType | None:
    """The first frame that is not unpickling machinery (the pure-Python
    unpickler, modelsign's entry-point wrappers): who asked to unpickle."""
    pickle_file = getattr(sys.modules.get("pickle"), "__file__", None)
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename != pickle_file and filename not in _common.WRAPPER_FILES:
            return frame
        frame = frame.f_back
    return None


def _limited_channel(caller: FrameType | None, module: str, name: str) -> bool:
    """Whether the unpickler's direct caller is one of :data:`LIMITED_CHANNELS`
    that may resolve ``module.name``."""
    if caller is None:
        return False
    return any(
        caller.f_code in _channel_codes((channel,)) and allows(module, name)
        for channel, allows in LIMITED_CHANNELS.items()
    )


def _from_channel(module: str = "", name: str = "") -> bool:
    """Whether the unpickler was called directly by one of :data:`CHANNELS`
    (or by one of :data:`LIMITED_CHANNELS` that allows ``module.name``)."""
    codes = _channel_codes()
    # Frame 0 is this module's hook; 1 is who raised the event: the Python
    # unpickler's find_class, or (C unpickler) the caller of load()/loads().
    caller = _caller(sys._getframe(2))
    if _limited_channel(caller, module, name):
        return True
    if caller is None:
        return False
    if caller.f_code in codes:
        return True
    code = caller.f_code
    if code.co_name != "<module>":
        return False
    spec = caller.f_globals.get("__spec__")
    return (
        caller.f_globals.get("__name__") == "__main__"
        and getattr(spec, "name", None) in MAIN_CHANNELS
        and code.co_filename == getattr(spec, "origin", None)
    )


# ----------------------------------------------------------------- the hook


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if event != "pickle.find_class":
        return
    guard = _common.current_guard()
    if guard is None or _common.verified.get():
        return
    policy = guard.policy
    if policy.unverified_pickles == "allow":
        return
    module, name = (str(a) for a in args[:2])
    if allowed(module, name, policy.allowed_globals) or _from_channel(module, name):
        return
    what = _common.unverified_what.get() or "an unpickling of bytes no trusted bundle vouches for"
    refusal = ForbiddenGlobalError(
        f"the global {module}.{name} is not allowed when unpickling bytes that no "
        "trusted bundle vouches for (expected: a global from modelsign's allowlist "
        f"or the policy's allowed_globals; actual: {module}.{name})",
        target=what,
        policy=policy.describe(),
        expected="an allowed global",
        actual=f"{module}.{name}",
    )
    _common.refuse(guard, refusal)


_installed = False


def ensure_installed() -> None:
    """Add the audit hook, once per process. It cannot be removed; with
    enforcement off it returns at once."""
    global _installed  # noqa: PLW0603 - once per process, by design
    if not _installed:
        sys.addaudithook(_hook)
        _installed = True
