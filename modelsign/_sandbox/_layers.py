"""What every sandbox layer reports, and how a missing one is told apart.

A *layer* is one kernel mechanism (``landlock``, ``seccomp``, ``netns``) or a
process setting (``no_new_privs``, ``rlimits``). The three kernel layers can be
missing on a kernel, a distribution or an installation: each then raises
:class:`Unavailable`, and the caller refuses to go on unless the user accepted
running without that layer (``--weaker-sandbox LAYER``). The process settings
exist on every Linux modelsign runs on; failing to set one is always fatal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

#: The layers a user may accept to run without (``--weaker-sandbox``), in the
#: order they are applied.
OPTIONAL_LAYERS = ("netns", "landlock", "seccomp")


class Unavailable(Exception):
    """A layer cannot be applied here (kernel, distribution or installation)."""

    def __init__(self, layer: str, reason: str) -> None:
        self.layer = layer
        self.reason = reason
        super().__init__(f"{layer}: {reason}")


@dataclass(frozen=True)
class LayerReport:
    """One layer, as applied (or, when accepted as weaker, not applied)."""

    name: str
    applied: bool
    detail: str

    def to_json(self) -> dict[str, object]:
        """The report for machine-read output."""
        return {"name": self.name, "applied": self.applied, "detail": self.detail}

    @classmethod
    def from_json(cls, value: object) -> LayerReport:
        """The report a child sent (its shape is checked, not trusted).

        Raises:
            ValueError: ``value`` is not a layer report.
        """
        if not isinstance(value, dict) or set(value) != {"name", "applied", "detail"}:
            raise ValueError(f"not a layer report: {value!r:.200}")
        name, applied, detail = value["name"], value["applied"], value["detail"]
        if not isinstance(name, str) or not isinstance(applied, bool):
            raise ValueError(f"not a layer report: {value!r:.200}")
        if not isinstance(detail, str):
            raise ValueError(f"not a layer report: {value!r:.200}")
        return cls(name, applied, detail)

    def describe(self) -> str:
        """One phrase: the layer and what it does, or why it is missing."""
        if self.applied:
            return f"{self.name} ({self.detail})"
        return f"{self.name} NOT APPLIED ({self.detail})"


def apply_layer(
    name: str,
    apply: Callable[[], LayerReport],
    weaker: Iterable[str],
    reports: list[LayerReport],
    missing: dict[str, Unavailable],
) -> None:
    """Apply one layer and append its report; a layer that is unavailable
    (now, or ``missing`` since its binding could not be imported) is reported
    as not applied if the caller accepted that in ``weaker``.

    Raises:
        Unavailable: the layer is unavailable and not accepted as weaker.
    """
    try:
        if name in missing:
            raise missing[name]
        reports.append(apply())
    except Unavailable as e:
        if e.layer not in weaker:
            raise
        reports.append(LayerReport(e.layer, False, e.reason))


def preload_bindings() -> dict[str, Unavailable]:
    """Import the Landlock and seccomp bindings while files can still be read
    and ``ldconfig`` run; layer -> why it is unavailable, for those that fail."""
    from modelsign._sandbox import _landlock, _seccomp  # noqa: PLC0415

    missing: dict[str, Unavailable] = {}
    for name, load in (("seccomp", _seccomp.binding), ("landlock", _landlock.binding)):
        try:
            load()
        except Unavailable as e:
            missing[name] = e
    return missing


def check_layer_names(names: Iterable[str]) -> None:
    """Refuse a name that is not one of :data:`OPTIONAL_LAYERS`.

    Raises:
        UsageError: an unknown name (``weaker``).
    """
    from modelsign.errors import UsageError  # noqa: PLC0415

    unknown = sorted(set(names) - set(OPTIONAL_LAYERS))
    if unknown:
        raise UsageError(
            f"{{param}}{', '.join(unknown)}: not a sandbox layer "
            f"(the layers are {', '.join(OPTIONAL_LAYERS)})",
            parameter="weaker",
        )
