"""What the parent tells the sandboxed child, and what the child reports back.

The parent passes a :class:`ChildConfig` as one JSON argument; the child
inherits the input files as open descriptors (it needs no right to open them)
and writes its report on a pipe: one JSON object per line, at most
:data:`MAX_REPORT` bytes in all.

The first line (``{"event": "sandboxed", "layers": [...]}`` or
``{"event": "unavailable", ...}``) is written before the child reads a byte
of the checkpoint, so it is the child's own word. Every later line may come
from the checkpoint's code: the parent reads only the last, as a claim to
check (the tensors it reports are compared with the file it wrote), never as
a fact.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from modelsign._sandbox._process import Limits

MAX_REPORT = 64 * 1024 * 1024
#: How many non-tensor values a report lists one by one (the rest are counted).
MAX_LISTED = 1000
#: How much of an error message a report carries.
MAX_MESSAGE = 4000


@dataclass(frozen=True)
class ChildConfig:
    """What the converting child does, inside which limits."""

    #: (name for messages, inherited descriptor) of each file to load, in order.
    inputs: tuple[tuple[str, int], ...]
    #: The folder the child may write, and the file name it writes there.
    output_dir: str
    output_name: str
    #: The descriptor of the report pipe's writing end.
    report_fd: int
    weights_only: bool
    drop_non_tensors: bool
    limits: Limits
    #: Layers the user accepted to run without, if the system lacks them.
    weaker: tuple[str, ...]
    #: The user's home folder: never made readable, even as an ancestor.
    home: str | None

    def to_argument(self) -> str:
        """The configuration as the child's command-line argument."""
        return json.dumps(
            {
                "inputs": [[name, fd] for name, fd in self.inputs],
                "output_dir": self.output_dir,
                "output_name": self.output_name,
                "report_fd": self.report_fd,
                "weights_only": self.weights_only,
                "drop_non_tensors": self.drop_non_tensors,
                "limits": self.limits.to_json(),
                "weaker": list(self.weaker),
                "home": self.home,
            }
        )

    @classmethod
    def from_argument(cls, text: str) -> ChildConfig:
        """The configuration the parent wrote (trusted: it is the parent's)."""
        doc = json.loads(text)
        return cls(
            inputs=tuple((str(name), int(fd)) for name, fd in doc["inputs"]),
            output_dir=doc["output_dir"],
            output_name=doc["output_name"],
            report_fd=int(doc["report_fd"]),
            weights_only=bool(doc["weights_only"]),
            drop_non_tensors=bool(doc["drop_non_tensors"]),
            limits=Limits(**doc["limits"]),
            weaker=tuple(doc["weaker"]),
            home=doc["home"],
        )


def encode(event: dict[str, Any]) -> bytes:
    """One report line."""
    return json.dumps(event, ensure_ascii=True, separators=(",", ":")).encode("ascii") + b"\n"


def decode(data: bytes) -> list[dict[str, Any]]:
    """The report's lines, each a strict JSON object with an ``event``.

    Raises:
        ValueError: a line that is not one (the message says which and why).
    """
    from modelsign import _json  # noqa: PLC0415
    from modelsign.errors import MalformedBundleError  # noqa: PLC0415

    events = []
    for number, line in enumerate(data.splitlines(), 1):
        try:
            event = _json.loads(line, f"report line {number}", max_bytes=MAX_REPORT)
        except MalformedBundleError as e:
            raise ValueError(str(e)) from e
        if not isinstance(event, dict) or not isinstance(event.get("event"), str):
            raise ValueError(f"report line {number} is not an event: {line[:200]!r}")
        events.append(event)
    return events
