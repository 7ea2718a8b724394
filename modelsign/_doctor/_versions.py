"""Installed versions, read from distribution metadata, and version ranges,
compared with ``packaging`` (PEP 440), never by hand.

Nothing here imports the libraries it asks about: reading torch's version
from its metadata costs a file read, importing torch seconds.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version


@dataclass(frozen=True)
class Installed:
    """A distribution as this interpreter would import it (the first one on
    ``sys.path``): its normalized name, version and where its metadata is."""

    name: str
    version: str
    location: str | None

    def to_json(self) -> dict[str, str | None]:
        return {"name": self.name, "version": self.version, "location": self.location}


def installed(name: str) -> Installed | None:
    """The distribution ``name`` as installed for this interpreter, or None."""
    try:
        dist = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return None
    # dist.version is typed str, but a metadata folder without a Version field gives None.
    version: object = dist.version
    if not isinstance(version, str):
        return None
    return Installed(canonicalize_name(name), version, str(dist.locate_file("")))


def parse_version(text: str) -> Version | None:
    """``text`` as a PEP 440 version, or None when it is not one."""
    try:
        return Version(text)
    except InvalidVersion:
        return None


def parse_range(text: str) -> SpecifierSet:
    """A PEP 440 specifier set (``<2.6.0``, ``>=4.56,<5.3``); ValueError if not one."""
    try:
        return SpecifierSet(text)
    except InvalidSpecifier as e:
        raise ValueError(f"{text!r} is not a PEP 440 version range: {e}") from e


def in_range(version: Version, versions: SpecifierSet) -> bool:
    """Whether ``version`` is in ``versions``: pre-releases and local builds
    (``2.5.1+cpu``) count as the release they are."""
    return versions.contains(version, prereleases=True)


#: torch.load's default changed to weights_only=True in torch 2.6.0.
_WEIGHTS_ONLY_FALSE_BY_DEFAULT = SpecifierSet("<2.6.0")


def torch_defaults_to_weights_only(version: Version) -> bool:
    """Whether ``torch.load`` without ``weights_only`` restricts unpickling
    (torch 2.6.0 and later) rather than unpickles anything (before)."""
    return not in_range(version, _WEIGHTS_ONLY_FALSE_BY_DEFAULT)
