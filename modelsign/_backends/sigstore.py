"""Sigstore keyless signing and verification, through sigstore-python.

Imported only when a Sigstore bundle or ``--sigstore`` is in play: the key
paths never import ``sigstore``. Verification always uses an explicit trusted
root file (the one embedded in the sigstore wheel for "production" and
"staging", or the policy's own), never the ``~/.cache`` one, and reports which.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import sigstore
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from sigstore import dsse
from sigstore.errors import Error as SigstoreError
from sigstore.errors import VerificationError as SigstoreVerificationError
from sigstore.models import Bundle as SigstoreBundle
from sigstore.models import ClientTrustConfig, TrustedRoot
from sigstore.oidc import IdentityToken, Issuer, detect_credential
from sigstore.sign import SigningContext
from sigstore.verify import Verifier
from sigstore.verify.policy import Identity

from modelsign.bundle import Envelope, pae
from modelsign.errors import (
    ConfigError,
    InvalidSignatureError,
    MalformedBundleError,
    UntrustedSignerError,
    UsageError,
)

_STORE = Path(sigstore.__file__).parent / "_store"
_ROOTS = {
    "production": _STORE / "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev" / "trusted_root.json",
    "staging": _STORE / "https%3A%2F%2Ftuf-repo-cdn.sigstage.dev" / "trusted_root.json",
}


def root_path(instance: str, trust_root: Path | None) -> Path:
    """The trusted root file for a policy entry: its own, else the wheel's."""
    if trust_root is not None:
        return trust_root
    if instance not in _ROOTS:
        raise ConfigError(f"unknown Sigstore instance {instance!r}: use production or staging")
    return _ROOTS[instance]


def _trusted_root(path: Path) -> Any:
    try:
        return TrustedRoot.from_file(str(path))
    except (OSError, ValueError, SigstoreError) as e:
        raise ConfigError(f"{path}: not a usable Sigstore trusted root: {e}") from e


def parse(bundle_bytes: bytes, source: str) -> Any:
    try:
        return SigstoreBundle.from_json(bundle_bytes)
    except (ValueError, SigstoreError) as e:
        raise MalformedBundleError(f"{source}: not a valid Sigstore bundle: {e}") from e


def verify_dsse(
    bundle_bytes: bytes,
    envelope: Envelope,
    leaf_key: Any,
    identity: str,
    issuer: str,
    root: Path,
    source: str,
) -> tuple[bytes, datetime.datetime, str]:
    """Verify the DSSE signature, then the certificate chain, log entry and
    times; return the payload, the earliest time sigstore-python verified
    for the signature (Rekor's integrated time, bound by the signed entry
    timestamp, or an RFC 3161 timestamp by a TSA of the trusted root) and
    where that time comes from. Failures are classified by what failed, never
    by a message: the DSSE signature is checked here first with the Fulcio
    leaf's key (``InvalidSignatureError``), then sigstore-python checks the
    rest against ``root`` (its ``VerificationError`` family, whatever the
    message: ``UntrustedSignerError``); material it cannot even read is a
    ``MalformedBundleError``.

    The caller has already checked that the certificate names ``identity``
    and ``issuer`` (both required: see :class:`~modelsign.policy.SigstoreIdentity`).
    """
    _check_dsse_signature(envelope, leaf_key, source)
    bundle = parse(bundle_bytes, source)
    verifier = Verifier(trusted_root=_trusted_root(root))
    try:
        _, payload = verifier.verify_dsse(bundle, Identity(identity=identity, issuer=issuer))
        # The times verify_dsse checked the certificate at, established again
        # (sigstore-python does not return them): every one is verified.
        times = verifier._establish_time(bundle)
    except SigstoreVerificationError as e:  # CertValidationError is one too
        raise UntrustedSignerError(
            f"{source}: does not verify under the trusted root {root}: {e}"
        ) from e
    except SigstoreError as e:
        raise UntrustedSignerError(f"{source}: Sigstore refused it: {e}") from e
    except (ValueError, TypeError, KeyError, IndexError) as e:  # pydantic, protobuf parsing
        raise MalformedBundleError(f"{source}: unreadable Sigstore material: {e}") from e
    if not times:  # verify_dsse needs one: this is a defence against a changed sigstore
        raise UntrustedSignerError(f"{source}: Sigstore established no verified time")
    earliest = min(times, key=lambda t: t.time)
    kind = (
        "Rekor integrated time"
        if earliest.source.name == "TRANSPARENCY_SERVICE"
        else "RFC 3161 timestamp by a TSA of the trusted root"
    )
    return bytes(payload), earliest.time.astimezone(datetime.timezone.utc), kind


def _check_dsse_signature(envelope: Envelope, leaf_key: Any, source: str) -> None:
    """The DSSE signature over the PAE, with the certificate's key, as
    sigstore-python checks it (ECDSA with SHA-256)."""
    if not isinstance(leaf_key, ec.EllipticCurvePublicKey):
        raise UntrustedSignerError(f"{source}: the Fulcio certificate's key is not ECDSA")
    try:
        leaf_key.verify(
            envelope.signature,
            pae(envelope.payload_type, envelope.payload),
            ec.ECDSA(hashes.SHA256()),
        )
    except InvalidSignature as e:
        raise InvalidSignatureError(
            f"{source}: invalid signature for the Sigstore certificate's key"
        ) from e


def identity_token(token: str | None, token_file: Path | None, oauth: bool, config: Any) -> Any:
    """The OIDC identity token: given, from a file, ambient (CI), or interactive."""
    raw = token
    if raw is None and token_file is not None:
        try:
            raw = token_file.read_text().strip()
        except OSError as e:
            raise UsageError(f"{token_file}: cannot read identity token: {e.strerror}") from e
    try:
        if raw is None:
            raw = detect_credential()
        if raw is None and oauth:
            return Issuer(config.signing_config.get_oidc_url()).identity_token()
        if raw is None:
            raise UsageError(
                "no identity token: give one ({param}), run in a CI job that provides one "
                "(e.g. GitHub Actions id-token: write), or use the browser flow",
                parameter="identity_token",
            )
        return IdentityToken(raw)
    except SigstoreError as e:
        raise UsageError(f"identity token: {e}") from e


def trust_config(path: Path | None, staging: bool) -> Any:
    """The signing configuration: a private instance's file, staging or production."""
    try:
        if path is not None:
            return ClientTrustConfig.from_json(path.read_text())
        return ClientTrustConfig.staging() if staging else ClientTrustConfig.production()
    except OSError as e:
        raise UsageError(f"Sigstore trust configuration: {e}") from e
    except (ValueError, SigstoreError) as e:
        raise UsageError(f"Sigstore trust configuration: {e}") from e


def sign_dsse(payload: bytes, token: Any, config: Any) -> bytes:
    """Sign the statement bytes keylessly; the Sigstore bundle's JSON bytes."""
    try:
        context = SigningContext.from_trust_config(config)
        with context.signer(token, cache=True) as signer:
            bundle = signer.sign_dsse(dsse.Statement(payload))
    except OSError as e:
        raise UsageError(f"Sigstore signing failed: {e}") from e
    except SigstoreError as e:
        raise UsageError(f"Sigstore signing failed: {e}") from e
    data: bytes = bundle.to_json().encode("utf-8")
    return data
