"""Strict JSON decoding for untrusted input (bundles, statements).

Python's ``json`` accepts things an attacker can use to make two parsers see
two different documents: duplicate keys (the last one wins here, the first in
other parsers), ``NaN``/``Infinity``, unbounded integers and nesting. Every one
of those is refused here, before anything reads the values.
"""

from __future__ import annotations

import json
import math
from typing import Any

from modelsign.errors import BundleTooLargeError, MalformedBundleError

MAX_DEPTH = 64
MAX_INT_DIGITS = 32
DEFAULT_MAX_BYTES = 64 * 1024 * 1024


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise MalformedBundleError(f"duplicate JSON key {key!r}")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise MalformedBundleError(f"JSON constant {name} is not allowed")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value) or math.isnan(value):
        raise MalformedBundleError(f"JSON number {text} is not finite")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise MalformedBundleError(f"JSON integer of {len(text)} digits is too long")
    return int(text)


def _depth(value: Any, limit: int) -> None:
    # Iterative, so that the check itself cannot overflow the stack.
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                raise MalformedBundleError(f"JSON nesting deeper than {limit} levels")
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)


def loads(data: bytes, what: str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Any:
    """Decode ``data`` as strict JSON; ``what`` names the source in errors."""
    if len(data) > max_bytes:
        raise BundleTooLargeError(f"{what}: {len(data)} bytes is over the limit of {max_bytes}")
    try:
        text = data.decode("utf-8")
        value = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constant,
            parse_int=_bounded_int,
            parse_float=_finite_float,
        )
    except MalformedBundleError as e:
        raise MalformedBundleError(f"{what}: {e}") from e
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError
        raise MalformedBundleError(f"{what}: not valid JSON: {e}") from e
    try:
        _depth(value, MAX_DEPTH)
    except MalformedBundleError as e:
        raise MalformedBundleError(f"{what}: {e}") from e
    return value
