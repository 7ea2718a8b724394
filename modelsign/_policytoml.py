"""The TOML reading every part of a policy shares: strict keys, paths
relative to the policy file, non-empty strings."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from modelsign.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = ["check_global", "check_keys", "parse_toml", "paths", "resolve_path", "string"]


def check_keys(table: Mapping[str, Any], allowed: Iterable[str], where: str, source: str) -> None:
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {', '.join(map(repr, unknown))} in {where}")


def check_global(name: str, source: str) -> None:
    """An ``allowed_globals`` entry: an exact ``module.name`` (no wildcard: a
    module's every name would include its loaders and ``eval``-likes)."""
    module, _, attr = name.rpartition(".")
    parts = [*module.split("."), *attr.split(".")] if module else []
    if not parts or not all(p.isidentifier() for p in parts):
        raise ConfigError(
            f"{source}: [enforce] allowed_globals entry {name!r} is not an exact "
            "module.name (for example 'argparse.Namespace'; no wildcards)"
        )


def parse_toml(data: bytes, source: str) -> dict[str, Any]:
    try:
        doc: dict[str, Any] = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{source}: not valid TOML: {e}") from e
    return doc


def paths(table: Mapping[str, Any], key: str, where: str, source: str) -> list[str]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{source}: {where} {key} must be a list of file paths")
    return value


def string(
    table: Mapping[str, Any], key: str, where: str, source: str, default: str | None = None
) -> str:
    value = table.get(key, default)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{source}: {where} needs a non-empty string {key!r}")
    return value


def resolve_path(entry: str, base_dir: Path) -> Path:
    return Path(entry) if os.path.isabs(entry) else base_dir / entry
