"""The rules for path names, one set for files of a model, names in a
bundle and members of an archive.

A safe name is a relative POSIX path: non-empty, valid UTF-8, ``/``
separators, no leading ``/``, no empty, ``.`` or ``..`` component, no NUL or
backslash, no Windows drive prefix or reserved device name. Two names that
differ only by case or Unicode normalization would be one file on macOS or
Windows (and one member for torch's case-insensitive zip reader): they
collide.
"""

from __future__ import annotations

import unicodedata

from modelsign.errors import Error, MalformedBundleError

__all__ = ["check_name", "collision_key", "name_problem"]

_WINDOWS_DEVICES = frozenset(
    ["CON", "PRN", "AUX", "NUL"]
    + [f"COM{i}" for i in range(1, 10)]
    + [f"LPT{i}" for i in range(1, 10)]
)


def name_problem(name: str) -> str | None:
    """What makes ``name`` unsafe (a phrase that follows the name), or None."""
    if not name:
        return "is empty"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8"
    if "\x00" in name:
        return "contains a NUL character"
    if "\\" in name:
        return "contains a backslash (a path separator on Windows)"
    if name.startswith("/"):
        return "is an absolute path"
    if len(name) >= 2 and name[1] == ":" and name[0].isascii() and name[0].isalpha():
        return "starts with a Windows drive letter"
    for part in name.split("/"):
        if part == "..":
            return "has a '..' component"
        if part in ("", "."):
            return "has an empty or '.' component (not in canonical form)"
        if part.split(".")[0].upper() in _WINDOWS_DEVICES:
            return f"has a Windows device name {part!r}"
    return None


def check_name(name: str, error: type[Error] = MalformedBundleError) -> None:
    """Raise ``error`` unless ``name`` is a safe relative POSIX path."""
    problem = name_problem(name)
    if problem:
        raise error(f"unsafe path name {name!r}: {problem}")


def collision_key(name: str) -> str:
    """Names equal under this key collide (case folding and NFC, both ways)."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", name).casefold())
