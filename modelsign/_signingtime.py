"""When a signature was made, on trusted evidence only: RFC 3161 timestamps
verified against a TSA the policy names (for a certificate's or a key's
signature), else the verification time. Sigstore bundles get theirs from
sigstore-python (Rekor's integrated time, the trusted root's TSAs)."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from modelsign.bundle import Bundle

__all__ = ["CLOCK_SKEW", "signature_time"]

#: How far a trusted timestamp may be ahead of the verifier's clock.
CLOCK_SKEW = datetime.timedelta(minutes=5)


def signature_time(
    bundle: Bundle,
    tokens: Sequence[bytes],
    tsa: Path | None,
    roots: Sequence[Any],
    others: Sequence[Any],
    source: str,
    now: datetime.datetime,
    no_tsa: str = "no TSA trusted",
) -> tuple[datetime.datetime, str]:
    """When the bundle's signature was made, on trusted evidence: the earliest
    genTime of its RFC 3161 ``tokens``, every one verified against the TSA
    ``tsa`` (its ``roots``; ``others`` help build chains); ``now`` when no TSA
    is trusted (the tokens are ignored, ``no_tsa`` says why) or there is no
    token. Returns the time and where it comes from."""
    count = len(tokens)
    if tsa is None:
        ignored = f"; {count} timestamp(s) ignored: {no_tsa}" if count else ""
        return now, f"verification time{ignored}"
    if not count:
        return now, "verification time; the bundle has no timestamp"
    from modelsign._backends import timestamp  # noqa: PLC0415

    at = timestamp.trusted_time(
        tokens,
        bundle.envelope.signature,
        roots,
        others,
        source=source,
        tsa=str(tsa),
    )
    return at, f"earliest of {count} timestamp(s) by TSA {tsa}"
