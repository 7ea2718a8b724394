"""Strict JSON: inputs two parsers could read differently are refused."""

from __future__ import annotations

import pytest

from modelsign import _json
from modelsign.errors import BundleTooLargeError, MalformedBundleError

HOSTILE_JSON = {
    "duplicate key at top level": (b'{"a": 1, "a": 2}', "duplicate JSON key 'a'"),
    "duplicate key nested": (b'{"x": [{"k": 1, "k": 1}]}', "duplicate JSON key 'k'"),
    "NaN": (b'{"a": NaN}', "NaN"),
    "Infinity": (b'{"a": -Infinity}', "Infinity"),
    "integer over 32 digits": (b'{"a": ' + b"9" * 33 + b"}", "too long"),
    "nesting over 64 levels": (b"[" * 65 + b"]" * 65, "deeper than 64"),
    "very deep nesting": (b"[" * 100_000 + b"]" * 100_000, "JSON"),
    "trailing garbage": (b'{"a": 1} x', "not valid JSON"),
    "not UTF-8": (b'{"a": "\xff"}', "not valid JSON"),
    "empty": (b"", "not valid JSON"),
}


@pytest.mark.parametrize("case", list(HOSTILE_JSON))
def test_hostile_json_is_refused(case: str) -> None:
    data, match = HOSTILE_JSON[case]
    with pytest.raises(MalformedBundleError, match=match):
        _json.loads(data, "test.sig")


def test_limits_are_inclusive() -> None:
    assert _json.loads(b"[" * 64 + b"]" * 64, "ok") is not None
    assert _json.loads(b'{"a": ' + b"9" * 32 + b"}", "ok") == {"a": int("9" * 32)}


def test_size_limit_is_checked_before_decoding() -> None:
    with pytest.raises(BundleTooLargeError, match="test.sig: 11 bytes is over the limit of 10"):
        _json.loads(b"not json!!!", "test.sig", max_bytes=10)
