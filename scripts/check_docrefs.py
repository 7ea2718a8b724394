"""Fail when a docstring of modelsign's public API refers to nothing.

pdoc renders ``:class:`Name``` and friends as links when it can resolve them
and as plain code when it cannot, silently; `make docs` runs this after pdoc
so that a reference broken by a rename fails the build (and CI).

Usage: python scripts/check_docrefs.py   (exit 1 with the list of broken references)
       python scripts/check_docrefs.py --modules   (pdoc's module specs)
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import sys
from collections.abc import Iterator
from types import ModuleType

import modelsign

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|data|attr|exc|obj):`~?\.?([^`<>\s]+)`")


def _lookup(dotted: str) -> bool:
    """Whether ``dotted`` names an importable module or an attribute of one."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def resolves(target: str, module: ModuleType, owner: type | None) -> bool:
    candidates = [target, f"{module.__name__}.{target}", f"modelsign.{target}"]
    if owner is not None:
        candidates.append(f"{owner.__module__}.{owner.__qualname__}.{target}")
        # An instance attribute: set by __init__ from a parameter of that name.
        init = vars(owner).get("__init__")
        if init is not None and target in inspect.signature(init).parameters:
            return True
    return any(_lookup(c) for c in candidates)


def documented(module: ModuleType) -> Iterator[tuple[str, str, type | None]]:
    """(where, docstring, owning class) of the module and its public names."""
    yield module.__name__, module.__doc__ or "", None
    names = getattr(module, "__all__", None) or [n for n in vars(module) if not n.startswith("_")]
    for name in names:
        obj = getattr(module, name, None)
        if obj is None or inspect.ismodule(obj):  # a submodule is checked on its own
            continue
        if getattr(obj, "__module__", module.__name__) != module.__name__:
            continue
        owner = obj if inspect.isclass(obj) else None
        yield f"{module.__name__}.{name}", inspect.getdoc(obj) or "", owner
        if inspect.isclass(obj):
            for attr, member in vars(obj).items():
                if attr.startswith("_") and attr != "__init__":
                    continue
                doc = inspect.getdoc(member.fget if isinstance(member, property) else member)
                if doc and doc != inspect.getdoc(obj):
                    yield f"{module.__name__}.{name}.{attr}", doc, obj


def public_modules() -> list[ModuleType]:
    """modelsign, its public modules, and the public modules of those that
    are packages (``modelsign.integrations.transformers``)."""
    modules = [modelsign]
    for name in sorted(modelsign._MODULES):
        module = importlib.import_module(f"modelsign.{name}")
        modules.append(module)
        for sub in pkgutil.iter_modules(getattr(module, "__path__", [])):
            if not sub.name.startswith("_"):
                modules.append(importlib.import_module(f"{module.__name__}.{sub.name}"))
    return modules


def main() -> int:
    modules = public_modules()
    if sys.argv[1:] == ["--modules"]:
        # pdoc's module specs for the API reference (make docs): each public
        # module (pdoc adds a package's submodules), less private submodules.
        names = {m.__name__ for m in modules}
        specs = [n for n in sorted(names) if n.rpartition(".")[0] not in names - {"modelsign"}]
        for module in modules:
            for sub in pkgutil.iter_modules(getattr(module, "__path__", [])):
                if sub.name.startswith("_") and module is not modelsign:
                    specs.append(f"!{module.__name__}.{sub.name}")
        print(" ".join(specs))
        return 0
    broken = []
    for module in modules:
        for where, doc, owner in documented(module):
            for target in ROLE.findall(doc):
                if not resolves(target, module, owner):
                    broken.append(f"{where}: {target!r}")
    for line in broken:
        print(f"broken docstring reference: {line}", file=sys.stderr)
    print(f"checked the docstrings of {len(modules)} public modules: {len(broken)} broken")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
