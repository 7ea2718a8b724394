"""The ``[provenance]`` table of a policy: what a model's signed provenance must show."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelsign._policytoml import check_keys, paths, resolve_path
from modelsign.errors import ConfigError

__all__ = ["ProvenanceRules", "parse_provenance_rules"]


_PROVENANCE_KEYS = frozenset({"require", "builder_id", "lineage", "base_models"})


@dataclass(frozen=True)
class ProvenanceRules:
    """What verification requires of a model's signed provenance.

    With ``require``, a model verifies only with a provenance bundle signed
    by a signer the policy trusts, whose subject is the model's root digest;
    ``builder_id`` then pins the builder it names; ``lineage`` requires the
    base model it names to verify under the policy too, found among
    ``base_models`` (models, or folders holding models), else at the
    location the provenance records. ``builder_id`` and ``lineage`` without
    ``require`` are refused: they would check a provenance nobody requires.
    """

    require: bool = False
    builder_id: str | None = None
    lineage: bool = False
    base_models: tuple[Path, ...] = ()

    def __post_init__(self) -> None:
        if not self.require and (self.builder_id is not None or self.lineage or self.base_models):
            raise ConfigError(
                "[provenance] builder_id, lineage and base_models check a provenance: set "
                "require = true with them",
                parameter="trust",
            )
        if self.builder_id is not None and not self.builder_id:
            raise ConfigError("[provenance] builder_id must not be empty", parameter="trust")

    def to_json(self) -> dict[str, Any]:
        return {
            "require": self.require,
            "builder_id": self.builder_id,
            "lineage": self.lineage,
            "base_models": [str(p) for p in self.base_models],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProvenanceRules:
        return cls(
            data["require"],
            data["builder_id"],
            data["lineage"],
            tuple(map(Path, data["base_models"])),
        )

    def strengthened(
        self,
        *,
        builder_id: str | None = None,
        lineage: bool = False,
        base_models: Iterable[str | os.PathLike[str]] = (),
    ) -> ProvenanceRules:
        """These rules, requiring provenance, and with ``builder_id`` (in
        place of this one), ``lineage`` and more ``base_models``."""
        return ProvenanceRules(
            require=True,
            builder_id=builder_id or self.builder_id,
            lineage=lineage or self.lineage,
            base_models=(*self.base_models, *(Path(p) for p in base_models)),
        )

    def describe(self) -> str:
        """One line of prose (``modelsign status``)."""
        if not self.require:
            return "not required"
        parts = ["required"]
        if self.builder_id is not None:
            parts.append(f"builder {self.builder_id}")
        if self.lineage:
            parts.append("base model must verify")
        return ", ".join(parts)

    def to_toml(self) -> list[str]:
        """The ``[provenance]`` table (no lines when nothing is required)."""
        if not self.require:
            return []
        lines = ["[provenance]", "require = true", f"lineage = {str(self.lineage).lower()}"]
        if self.builder_id is not None:
            lines.append(f"builder_id = {json.dumps(self.builder_id, ensure_ascii=False)}")
        paths = ", ".join(
            json.dumps(str(p.absolute()), ensure_ascii=False) for p in self.base_models
        )
        lines.append(f"base_models = [{paths}]")
        return lines


def parse_provenance_rules(table: object, base_dir: Path, source: str) -> ProvenanceRules:
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: [provenance] must be a table")
    check_keys(table, _PROVENANCE_KEYS, "[provenance]", source)
    flags = {}
    for flag in ("require", "lineage"):
        value = table.get(flag, False)
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: [provenance] {flag} must be true or false")
        flags[flag] = value
    builder = table.get("builder_id")
    if builder is not None and (not isinstance(builder, str) or not builder):
        raise ConfigError(f"{source}: [provenance] builder_id must be a non-empty string")
    bases = tuple(
        resolve_path(p, base_dir) for p in paths(table, "base_models", "[provenance]", source)
    )
    try:
        return ProvenanceRules(flags["require"], builder, flags["lineage"], bases)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from e
