"""A fake Sigstore instance for offline tests: a Fulcio CA, a CT log and a Rekor v1 log.

The real sigstore-python client signs against it and the real verifier accepts what it
signed, with no network beyond 127.0.0.1::

    with fake_sigstore(tmp_path) as fake:
        config = ClientTrustConfig.from_json(fake.trust_config_path.read_text())
        ctx = SigningContext.from_trust_config(config)
        with ctx.signer(IdentityToken(fake.token("alice@example.com"))) as signer:
            bundle = signer.sign_dsse(Statement(payload))
    Verifier(trusted_root=TrustedRoot.from_file(str(fake.trusted_root_path))).verify_dsse(
        bundle, Identity(identity="alice@example.com", issuer=fake.issuer)
    )

What it implements, each just far enough for sigstore-python 4.5.1:

* Fulcio, ``POST /api/v2/signingCert``: checks the bearer token (an HS256 JWT minted by
  :meth:`FakeSigstore.token`) and the CSR's proof of possession, then issues a 10 minute
  leaf for the CSR's key with the identity as SAN (email, else URI), the OIDC issuer in
  1.3.6.1.4.1.57264.1.1 (raw) and 1.3.6.1.4.1.57264.1.8 (DER UTF8String), EKU
  codeSigning and one embedded SCT (precertificate entry, RFC 6962) from the CT log key.
  ``GET /api/v2/trustBundle`` returns the CA.
* Rekor v1, ``POST /api/v1/log/entries`` for ``dsse`` and ``hashedrekord`` 0.0.1: checks
  the signatures, stores the canonical (RFC 8785) body as a leaf of an RFC 6962 Merkle
  tree, and answers with the signed entry timestamp (SET) and an inclusion proof whose
  checkpoint is a signed note. ``GET /api/v1/log`` and ``GET /api/v1/log/entries/<uuid>``
  are there too.
* The trust material: ``trusted_root.json`` (trustroot v0.1 media type) and a
  ``ClientTrustConfig`` whose signing config (v0.2) points at both servers.

There is no TSA: Rekor v1's integrated time, bound by the SET, is the verified time.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import secrets
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt
import rfc8785
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

if TYPE_CHECKING:
    from sigstore.models import ClientTrustConfig

DEFAULT_ISSUER = "https://oidc.fake.invalid"
"""The OIDC issuer of tokens from :meth:`FakeSigstore.token` unless told otherwise."""

CERT_LIFETIME = timedelta(minutes=10)
"""Validity of a leaf certificate, as Fulcio's."""

_AUDIENCE = "sigstore"
_OID_ISSUER = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
_OID_ISSUER_V2 = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
_OID_SCT_LIST = ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")
_LOG_NAME = "fakesigstore.local"
_TREE_ID = 4242
_DSSE_TYPES = ("dsse", "0.0.1")
_HASHEDREKORD_TYPES = ("hashedrekord", "0.0.1")

Route = Callable[[str, str, dict[str, str], bytes], tuple[int, Any]]


class HTTPError(Exception):
    """An error a fake service answers with: HTTP ``status`` and a JSON message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# --- small encoders ---------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _der_utf8string(text: str) -> bytes:
    raw = text.encode()
    return b"\x0c" + _der_length(len(raw)) + raw


def _der_octet_string(raw: bytes) -> bytes:
    return b"\x04" + _der_length(len(raw)) + raw


def _spki(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _key_id(key: ec.EllipticCurvePublicKey) -> bytes:
    """RFC 6962 key ID: SHA-256 of the DER SubjectPublicKeyInfo (also Sigstore's log ID)."""
    return hashlib.sha256(_spki(key)).digest()


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


# --- RFC 6962 Merkle tree ---------------------------------------------------------------


def _leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _tree_hash(leaves: list[bytes]) -> bytes:
    """MTH over leaf hashes."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return _node_hash(_tree_hash(leaves[:k]), _tree_hash(leaves[k:]))


def _audit_path(index: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 6962 PATH(index, leaves), ordered from the leaf up."""
    if len(leaves) <= 1:
        return []
    k = _split(len(leaves))
    if index < k:
        return [*_audit_path(index, leaves[:k]), _tree_hash(leaves[k:])]
    return [*_audit_path(index - k, leaves[k:]), _tree_hash(leaves[:k])]


# --- the services -----------------------------------------------------------------------


class _Authority:
    """Keys and state behind the fake Fulcio, CT log and Rekor."""

    def __init__(self, issuer: str, seed_entries: int) -> None:
        self.issuer = issuer
        self.jwt_secret = secrets.token_bytes(32)
        self.not_before = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=1)

        self.ca_key = ec.generate_private_key(ec.SECP384R1())
        self.ct_key = ec.generate_private_key(ec.SECP256R1())
        self.rekor_key = ec.generate_private_key(ec.SECP256R1())
        self.ct_log_id = _key_id(self.ct_key.public_key())
        self.rekor_log_id = _key_id(self.rekor_key.public_key())
        self.ca_cert = self._make_ca()

        self._lock = threading.Lock()
        self._leaves: list[bytes] = []
        self._entries: dict[str, tuple[int, bytes, int, str]] = {}
        # A few unrelated leaves first, so that inclusion proofs are not trivially empty.
        for n in range(seed_entries):
            self._leaves.append(_leaf_hash(b"fakesigstore seed %d" % n))

    # Fulcio ------------------------------------------------------------------------------

    def _make_ca(self) -> x509.Certificate:
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fakesigstore"),
                x509.NameAttribute(NameOID.COMMON_NAME, "fakesigstore-root"),
            ]
        )
        ski = x509.SubjectKeyIdentifier.from_public_key(self.ca_key.public_key())
        return (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.not_before)
            .not_valid_after(self.not_before + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                critical=False,
            )
            .sign(self.ca_key, hashes.SHA384())
        )

    def _claims(self, headers: dict[str, str]) -> dict[str, Any]:
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            raise HTTPError(401, "missing bearer token")
        try:
            claims: dict[str, Any] = jwt.decode(
                auth.removeprefix("Bearer "),
                self.jwt_secret,
                algorithms=["HS256"],
                audience=_AUDIENCE,
                options={"require": ["iss", "sub", "aud", "iat", "exp"]},
                leeway=5,
            )
        except jwt.PyJWTError as exc:
            raise HTTPError(401, f"invalid identity token: {exc}") from exc
        return claims

    def _sct_list(self, tbs_precert: bytes) -> bytes:
        """A TLS-encoded SignedCertificateTimestampList with one precert SCT."""
        # Whole seconds: sigstore rebuilds the timestamp from a float, which can be
        # off by one millisecond otherwise.
        timestamp_ms = int(time.time()) * 1000
        issuer_key_hash = _key_id(self.ca_key.public_key())
        signed = (
            struct.pack("!BBQH", 0, 0, timestamp_ms, 1)  # v1, certificate_timestamp, precert
            + issuer_key_hash
            + len(tbs_precert).to_bytes(3, "big")
            + tbs_precert
            + struct.pack("!H", 0)  # no extensions
        )
        signature = self.ct_key.sign(signed, ec.ECDSA(hashes.SHA256()))
        sct = (
            b"\x00"
            + self.ct_log_id
            + struct.pack("!QH", timestamp_ms, 0)
            + bytes([4, 3])  # sha256, ecdsa
            + struct.pack("!H", len(signature))
            + signature
        )
        body = struct.pack("!H", len(sct)) + sct
        return struct.pack("!H", len(body)) + body

    def issue(
        self, csr: x509.CertificateSigningRequest, claims: dict[str, Any]
    ) -> x509.Certificate:
        """Issue a leaf for the CSR's key and the token's identity, with an embedded SCT."""
        identity = str(claims.get("email") or claims["sub"])
        san: x509.GeneralName
        if "@" in identity and "://" not in identity:
            san = x509.RFC822Name(identity)
        else:
            san = x509.UniformResourceIdentifier(identity)
        issuer = str(claims["iss"])
        public_key = csr.public_key()
        now = datetime.now(timezone.utc).replace(microsecond=0)
        ca_ski = self.ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.ca_cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + CERT_LIFETIME)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski.value),
                critical=False,
            )
            # An empty subject makes the SAN critical (RFC 5280 4.2.1.6).
            .add_extension(x509.SubjectAlternativeName([san]), critical=True)
            .add_extension(x509.UnrecognizedExtension(_OID_ISSUER, issuer.encode()), False)
            .add_extension(
                x509.UnrecognizedExtension(_OID_ISSUER_V2, _der_utf8string(issuer)), False
            )
        )
        # The SCT covers the TBSCertificate without the SCT list extension: that is the
        # TBS of the same certificate built without it (ECDSA randomness is only in the
        # outer signature).
        precert = builder.sign(self.ca_key, hashes.SHA384())
        sct_ext = x509.UnrecognizedExtension(
            _OID_SCT_LIST, _der_octet_string(self._sct_list(precert.tbs_certificate_bytes))
        )
        cert = builder.add_extension(sct_ext, critical=False).sign(self.ca_key, hashes.SHA384())
        if cert.tbs_precertificate_bytes != precert.tbs_certificate_bytes:
            raise HTTPError(500, "precertificate TBS mismatch")
        return cert

    def fulcio_route(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Any]:
        """Answer one request to the fake Fulcio."""
        chain = {"certificates": [_pem(self.ca_cert)]}
        if method == "GET" and path == "/api/v2/trustBundle":
            return 200, {"chains": [chain]}
        if method != "POST" or path != "/api/v2/signingCert":
            raise HTTPError(404, f"no such endpoint: {method} {path}")
        claims = self._claims(headers)
        try:
            request = json.loads(body)
            csr = x509.load_pem_x509_csr(base64.b64decode(request["certificateSigningRequest"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise HTTPError(400, f"bad certificate request: {exc}") from exc
        if not csr.is_signature_valid:
            raise HTTPError(400, "CSR signature (proof of possession) is invalid")
        cert = self.issue(csr, claims)
        chain = {"certificates": [_pem(cert), _pem(self.ca_cert)]}
        return 201, {"signedCertificateEmbeddedSct": {"chain": chain}}

    # Rekor -------------------------------------------------------------------------------

    def _dsse_body(self, spec: dict[str, Any]) -> dict[str, Any]:
        content = spec["proposedContent"]
        envelope = json.loads(content["envelope"])
        payload = base64.b64decode(envelope["payload"])
        pae = _pae(envelope["payloadType"], payload)
        signatures = []
        for signature in envelope["signatures"]:
            raw_sig = base64.b64decode(signature["sig"])
            for verifier in content["verifiers"]:
                if self._signature_ok(verifier, raw_sig, pae):
                    signatures.append({"signature": signature["sig"], "verifier": verifier})
                    break
            else:
                raise HTTPError(400, "DSSE signature does not verify with any verifier")
        envelope_hash = hashlib.sha256(rfc8785.dumps(envelope)).hexdigest()
        return {
            "apiVersion": _DSSE_TYPES[1],
            "kind": _DSSE_TYPES[0],
            "spec": {
                "envelopeHash": {"algorithm": "sha256", "value": envelope_hash},
                "payloadHash": {
                    "algorithm": "sha256",
                    "value": hashlib.sha256(payload).hexdigest(),
                },
                "signatures": sorted(signatures, key=lambda s: s["signature"]),
            },
        }

    def _hashedrekord_body(self, spec: dict[str, Any]) -> dict[str, Any]:
        digest = spec["data"]["hash"]
        if digest["algorithm"] != "sha256":
            raise HTTPError(400, "only sha256 hashedrekord entries are supported")
        signature = spec["signature"]
        verifier = signature["publicKey"]["content"]
        raw_sig = base64.b64decode(signature["content"])
        if not self._signature_ok(verifier, raw_sig, bytes.fromhex(digest["value"]), True):
            raise HTTPError(400, "hashedrekord signature does not verify")
        return {"apiVersion": _HASHEDREKORD_TYPES[1], "kind": _HASHEDREKORD_TYPES[0], "spec": spec}

    @staticmethod
    def _signature_ok(
        verifier: str, signature: bytes, data: bytes, prehashed: bool = False
    ) -> bool:
        cert = x509.load_pem_x509_certificate(base64.b64decode(verifier))
        key = cert.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise HTTPError(400, "only ECDSA verifiers are supported")
        algorithm: Any = hashes.SHA256()
        if prehashed:
            algorithm = Prehashed(hashes.SHA256())
        try:
            key.verify(signature, data, ec.ECDSA(algorithm))
        except InvalidSignature:
            return False
        return True

    def _sign(self, data: bytes) -> bytes:
        return self.rekor_key.sign(data, ec.ECDSA(hashes.SHA256()))

    def _checkpoint(self, size: int, root: bytes) -> str:
        note = f"{_LOG_NAME} - {_TREE_ID}\n{size}\n{_b64(root)}\n"
        signature = _b64(self.rekor_log_id[:4] + self._sign(note.encode()))
        return f"{note}\n\u2014 {_LOG_NAME} {signature}\n"

    def _entry_json(self, uuid: str) -> dict[str, Any]:
        """The v1 ``{uuid: LogEntry}`` answer, proven against the current tree."""
        index, body, integrated_time, set_b64 = self._entries[uuid]
        leaves = list(self._leaves)
        root = _tree_hash(leaves)
        return {
            uuid: {
                "body": _b64(body),
                "integratedTime": integrated_time,
                "logID": self.rekor_log_id.hex(),
                "logIndex": index,
                "verification": {
                    "inclusionProof": {
                        "checkpoint": self._checkpoint(len(leaves), root),
                        "hashes": [h.hex() for h in _audit_path(index, leaves)],
                        "logIndex": index,
                        "rootHash": root.hex(),
                        "treeSize": len(leaves),
                    },
                    "signedEntryTimestamp": set_b64,
                },
            }
        }

    def append(self, proposed: dict[str, Any]) -> dict[str, Any]:
        """Check a proposed entry, integrate it and return it as Rekor v1 does."""
        kind = (proposed.get("kind"), proposed.get("apiVersion"))
        try:
            if kind == _DSSE_TYPES:
                entry = self._dsse_body(proposed["spec"])
            elif kind == _HASHEDREKORD_TYPES:
                entry = self._hashedrekord_body(proposed["spec"])
            else:
                raise HTTPError(400, f"unsupported entry type {kind}")
        except (KeyError, TypeError, ValueError) as exc:
            raise HTTPError(400, f"malformed entry: {exc!r}") from exc
        body = rfc8785.dumps(entry)
        leaf = _leaf_hash(body)
        uuid = leaf.hex()
        with self._lock:
            if uuid in self._entries:
                raise HTTPError(409, "an equivalent entry already exists in the log")
            index = len(self._leaves)
            self._leaves.append(leaf)
            integrated_time = int(time.time())
            promise: dict[str, str | int] = {
                "body": _b64(body),
                "integratedTime": integrated_time,
                "logID": self.rekor_log_id.hex(),
                "logIndex": index,
            }
            set_b64 = _b64(self._sign(rfc8785.dumps(promise)))
            self._entries[uuid] = (index, body, integrated_time, set_b64)
            return self._entry_json(uuid)

    @property
    def log_size(self) -> int:
        """Leaves in the Merkle tree, seed leaves included."""
        with self._lock:
            return len(self._leaves)

    def rekor_route(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Any]:
        """Answer one request to the fake Rekor."""
        del headers
        if method == "POST" and path == "/api/v1/log/entries":
            try:
                proposed = json.loads(body)
            except ValueError as exc:
                raise HTTPError(400, f"bad JSON: {exc}") from exc
            return 201, self.append(proposed)
        if method == "GET" and path == "/api/v1/log":
            with self._lock:
                size, root = len(self._leaves), _tree_hash(self._leaves)
            return 200, {
                "rootHash": root.hex(),
                "treeSize": size,
                "signedTreeHead": self._checkpoint(size, root),
                "treeID": str(_TREE_ID),
            }
        prefix = "/api/v1/log/entries/"
        if method == "GET" and path.startswith(prefix):
            with self._lock:
                if path[len(prefix) :] in self._entries:
                    return 200, self._entry_json(path[len(prefix) :])
            raise HTTPError(404, "no such entry")
        raise HTTPError(404, f"no such endpoint: {method} {path}")

    # Tokens and trust material -----------------------------------------------------------

    def token(self, identity: str, issuer: str, ttl: int) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": issuer,
            "aud": _AUDIENCE,
            "sub": identity,
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
        }
        if "@" in identity and "://" not in identity:
            claims["email"] = identity
            claims["email_verified"] = True
        return jwt.encode(claims, self.jwt_secret, algorithm="HS256")

    def trusted_root(self, fulcio_url: str, rekor_url: str) -> dict[str, Any]:
        """The trustroot v1 ``TrustedRoot`` naming the CA, the Rekor key and the CT key."""
        valid_for = {"start": _rfc3339(self.not_before)}

        def log(url: str, key: ec.EllipticCurvePrivateKey, log_id: bytes) -> dict[str, Any]:
            return {
                "baseUrl": url,
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": _b64(_spki(key.public_key())),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": valid_for,
                },
                "logId": {"keyId": _b64(log_id)},
            }

        return {
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [log(rekor_url, self.rekor_key, self.rekor_log_id)],
            "certificateAuthorities": [
                {
                    "subject": {"organization": "fakesigstore", "commonName": "fakesigstore-root"},
                    "uri": fulcio_url,
                    "certChain": {
                        "certificates": [
                            {
                                "rawBytes": _b64(
                                    self.ca_cert.public_bytes(serialization.Encoding.DER)
                                )
                            }
                        ]
                    },
                    "validFor": valid_for,
                }
            ],
            "ctlogs": [log(f"{fulcio_url}/ct", self.ct_key, self.ct_log_id)],
            "timestampAuthorities": [],
        }

    def signing_config(self, fulcio_url: str, rekor_url: str) -> dict[str, Any]:
        """A v0.2 ``SigningConfig`` pointing at the fake services."""

        def service(url: str) -> dict[str, Any]:
            return {
                "url": url,
                "majorApiVersion": 1,
                "operator": "fakesigstore",
                "validFor": {"start": _rfc3339(self.not_before)},
            }

        return {
            "mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
            "caUrls": [service(fulcio_url)],
            "oidcUrls": [service(self.issuer)],
            "rekorTlogUrls": [service(rekor_url)],
            "tsaUrls": [],
            "rekorTlogConfig": {"selector": "ANY"},
            "tsaConfig": {"selector": "ANY"},
        }


# --- HTTP plumbing ----------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, route: Route) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.route = route

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self._answer("GET")

    def do_POST(self) -> None:
        self._answer("POST")

    def _answer(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        path = self.path.split("?", 1)[0]
        try:
            status, answer = self.server.route(method, path, headers, body)
        except HTTPError as exc:
            status, answer = exc.status, {"code": exc.status, "message": str(exc)}
        except Exception as exc:
            status, answer = 500, {"code": 500, "message": f"fakesigstore bug: {exc!r}"}
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: pytest shows failures, not access logs."""


@contextlib.contextmanager
def _serving(route: Route) -> Iterator[_Server]:
    server = _Server(route)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# --- public API -------------------------------------------------------------------------


@dataclass
class FakeSigstore:
    """A running fake Sigstore instance; see :func:`fake_sigstore`."""

    trusted_root_path: Path
    """``trusted_root.json``: for ``TrustedRoot.from_file`` when verifying."""
    trust_config_path: Path
    """``trust_config.json``: a ``ClientTrustConfig`` for ``SigningContext``."""
    issuer: str
    """The default OIDC issuer of :meth:`token`, e.g. ``https://oidc.fake.invalid``."""
    fulcio_url: str
    """Base URL of the fake Fulcio on 127.0.0.1."""
    rekor_url: str
    """Base URL of the fake Rekor on 127.0.0.1."""
    _authority: _Authority = field(repr=False)

    def token(
        self, identity: str = "alice@example.com", issuer: str | None = None, *, ttl: int = 600
    ) -> str:
        """A raw OIDC identity token (JWT) the fake Fulcio accepts.

        ``identity`` is the ``sub`` claim, and the ``email`` claim too when it looks like an
        email address; the certificate then carries it as an email SAN, else as a URI SAN.
        ``issuer`` defaults to :attr:`issuer`; any issuer is accepted by the fake CA and
        ends up in the certificate. ``ttl`` is the lifetime in seconds (negative: expired).
        """
        return self._authority.token(identity, issuer or self.issuer, ttl)

    def trust_config(self) -> ClientTrustConfig:
        """The trust config as a ``sigstore.models.ClientTrustConfig``."""
        from sigstore.models import ClientTrustConfig

        return ClientTrustConfig.from_json(self.trust_config_path.read_text())

    @property
    def ca_certificate(self) -> x509.Certificate:
        """The fake Fulcio's (root) CA certificate."""
        return self._authority.ca_cert

    @property
    def log_size(self) -> int:
        """How many leaves the fake Rekor's tree holds (a few seed leaves included)."""
        return self._authority.log_size


@contextlib.contextmanager
def fake_sigstore(
    folder: Path, *, issuer: str = DEFAULT_ISSUER, seed_entries: int = 3
) -> Iterator[FakeSigstore]:
    """Start a fake Fulcio and Rekor on 127.0.0.1, write their trust material, yield.

    ``folder`` receives ``trusted_root.json`` and ``trust_config.json`` (created if
    missing). Keys are fresh each time. Both servers stop on exit; bundles signed
    meanwhile still verify offline against ``trusted_root.json``. ``seed_entries``
    unrelated leaves start the log so inclusion proofs have some hashes.
    """
    folder.mkdir(parents=True, exist_ok=True)
    authority = _Authority(issuer, seed_entries)
    with _serving(authority.fulcio_route) as fulcio, _serving(authority.rekor_route) as rekor:
        trusted_root = authority.trusted_root(fulcio.url, rekor.url)
        trusted_root_path = folder / "trusted_root.json"
        trusted_root_path.write_text(json.dumps(trusted_root, indent=1) + "\n")
        trust_config = {
            "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
            "trustedRoot": trusted_root,
            "signingConfig": authority.signing_config(fulcio.url, rekor.url),
        }
        trust_config_path = folder / "trust_config.json"
        trust_config_path.write_text(json.dumps(trust_config, indent=1) + "\n")
        yield FakeSigstore(
            trusted_root_path=trusted_root_path,
            trust_config_path=trust_config_path,
            issuer=issuer,
            fulcio_url=fulcio.url,
            rekor_url=rekor.url,
            _authority=authority,
        )
