"""A model's signed name and version (substitution and rollback checks).

The signer may record which model a statement is for, and which version of
it, in the statement's subject annotations (see ``docs/adr/0003``)::

    "subject": [{"name": "bert", "digest": {...},
                 "annotations": {"release": {"name": "acme/bert", "version": "1.2.0"}}}]

OMS verifiers ignore the subject's extra fields (``model_signing`` included),
and OMS tells verifiers not to rely on ``subject.name`` (``model_signing``
fills it with the folder's name), so the name lives apart from it.

A version is one or more dot-separated decimal numbers without leading zeros
(``3``, ``1.2.0``, ``2026.5.1``), compared number by number; trailing zero
components do not count (``1.2`` and ``1.2.0`` are the same version). No
letters: there is exactly one order, and nothing to argue about.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelsign.errors import MalformedBundleError, UsageError

__all__ = ["MAX_NAME_LENGTH", "Release", "parse_version"]

MAX_NAME_LENGTH = 256
_MAX_VERSION_LENGTH = 64
_DIGITS = frozenset("0123456789")


def parse_version(text: str) -> tuple[int, ...]:
    """The comparable form of a version (trailing zeros dropped).

    Raises:
        ValueError: not dot-separated decimal numbers without leading zeros.
    """
    parts = text.split(".")
    if len(text) > _MAX_VERSION_LENGTH or not all(
        p and set(p) <= _DIGITS and (p == "0" or p[0] != "0") for p in parts
    ):
        raise ValueError(
            f"version {text!r} is not dot-separated numbers without leading zeros "
            "(for example 3, 1.2.0 or 2026.5.1)"
        )
    numbers = [int(p) for p in parts]
    while len(numbers) > 1 and numbers[-1] == 0:
        numbers.pop()
    return tuple(numbers)


def _check_name(name: object) -> str | None:
    """Why ``name`` is not a model name, or None."""
    if not isinstance(name, str) or not name:
        return "the model name must be a non-empty string"
    if len(name) > MAX_NAME_LENGTH:
        return f"the model name is longer than {MAX_NAME_LENGTH} characters"
    if not name.isprintable() or name != name.strip():
        return f"the model name {name!r} has control characters or surrounding spaces"
    return None


@dataclass(frozen=True)
class Release:
    """Which model a statement is for (``name``) and which version of it."""

    name: str
    version: str | None = None

    def __post_init__(self) -> None:
        problem = _check_name(self.name)
        if problem is not None:
            raise UsageError(f"{{param}}{problem}", parameter="model_name")
        if self.version is not None:
            try:
                parse_version(self.version)
            except ValueError as e:
                raise UsageError(f"{{param}}{e}", parameter="model_version") from e

    @property
    def version_key(self) -> tuple[int, ...] | None:
        """The version in comparable form (None when no version is recorded)."""
        return None if self.version is None else parse_version(self.version)

    def describe(self) -> str:
        return self.name if self.version is None else f"{self.name} {self.version}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.version is not None:
            out["version"] = self.version
        return out

    @classmethod
    def from_json(cls, obj: object) -> Release:
        """Parse the signed record strictly (it is inside the signed payload,
        but written by whoever signed): ``MalformedBundleError`` otherwise."""
        if not isinstance(obj, dict) or not set(obj) <= {"name", "version"}:
            raise MalformedBundleError(
                "subject annotations.release must be an object with name and version only"
            )
        problem = _check_name(obj.get("name"))
        if problem is not None:
            raise MalformedBundleError(f"subject annotations.release: {problem}")
        version = obj.get("version")
        if version is not None:
            if not isinstance(version, str):
                raise MalformedBundleError("subject annotations.release: version must be a string")
            try:
                parse_version(version)
            except ValueError as e:
                raise MalformedBundleError(f"subject annotations.release: {e}") from e
        return cls(obj["name"], version)

    @classmethod
    def from_annotations(cls, annotations: object) -> Release | None:
        """The subject's ``annotations.release`` (in-toto allows annotations on
        a subject; other annotations are left to their owners)."""
        if annotations is None:
            return None
        if not isinstance(annotations, dict):
            raise MalformedBundleError("the subject's annotations must be an object")
        return cls.from_json(annotations["release"]) if "release" in annotations else None
