"""Trust policy: what a deployment trusts, in one TOML file.

First form (later versions add sections; unknown keys are refused)::

    [trust]
    keys = ["release.pub", "/etc/modelsign/ci.pub"]  # relative to this file

A policy with no trust anchor is a configuration error, never "trust all".
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelsign._files import read_small
from modelsign.errors import ConfigError, KeyLoadError
from modelsign.keys import PublicKey, load_public_key

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = ["Policy"]

MAX_POLICY_BYTES = 1024 * 1024

# Every key a policy may hold, by table; anything else is a typo or a feature
# this version does not have, and both must be refused rather than ignored.
_SCHEMA: Mapping[str, frozenset[str]] = {"trust": frozenset({"keys"})}


def _check_keys(table: Mapping[str, Any], allowed: Iterable[str], where: str, source: str) -> None:
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {', '.join(map(repr, unknown))} in {where}")


@dataclass(frozen=True)
class Policy:
    """A parsed, validated trust policy."""

    keys: tuple[PublicKey, ...]
    source: str = "<memory>"

    def __post_init__(self) -> None:
        if not self.keys:
            raise ConfigError(f"{self.source}: the policy names no trusted key (no trust anchor)")

    @classmethod
    def from_keys(
        cls, keys: Iterable[PublicKey | str | os.PathLike[str]], source: str = "--key"
    ) -> Policy:
        loaded = tuple(k if isinstance(k, PublicKey) else load_public_key(k) for k in keys)
        return cls(tuple(dict.fromkeys(loaded)), source)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Policy:
        p = Path(path)
        data = read_small(p, MAX_POLICY_BYTES, "policy", ConfigError)
        return cls.from_toml(data, base_dir=p.parent, source=str(p))

    @classmethod
    def from_toml(cls, data: bytes, *, base_dir: Path, source: str = "<policy>") -> Policy:
        try:
            doc = tomllib.loads(data.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"{source}: not valid TOML: {e}") from e
        return cls.from_mapping(doc, base_dir=base_dir, source=source)

    @classmethod
    def from_mapping(cls, doc: Mapping[str, Any], *, base_dir: Path, source: str) -> Policy:
        _check_keys(doc, _SCHEMA, "the policy", source)
        trust = doc.get("trust")
        if not isinstance(trust, dict):
            raise ConfigError(f"{source}: the policy needs a [trust] table")
        _check_keys(trust, _SCHEMA["trust"], "[trust]", source)
        raw_keys = trust.get("keys", [])
        if not isinstance(raw_keys, list) or not all(isinstance(k, str) for k in raw_keys):
            raise ConfigError(f"{source}: [trust] keys must be a list of file paths")
        keys = []
        for entry in raw_keys:
            path = Path(entry) if os.path.isabs(entry) else base_dir / entry
            try:
                keys.append(load_public_key(path))
            except KeyLoadError as e:
                raise ConfigError(f"{source}: [trust] keys: {e}") from e
        return cls(tuple(dict.fromkeys(keys)), source)
