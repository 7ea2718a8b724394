"""Hostile signature files: every named way to tamper with an OMS bundle is
refused with the precise error class, through the API and the CLI (exit 1, no
traceback); Hypothesis round trips and mutations; and the bundle fuzz target.

Each case starts from a benign model signed by the trusted key (``keypair``,
Ed25519 and ECDSA P-256) and applies one named mutation (python-tuf style
tables: ``{"case name": mutation}``). Cases marked "validly re-signed" are
signed again by the trusted key after the statement was changed (see
:func:`resign`), so that only the statement check under test can refuse them.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtensionOID, NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import modelsign
from modelsign import keys
from modelsign._digests import DIGEST_HEX_LENGTH, HASH_TYPES
from modelsign._enumerating import SINGLE_FILE_NAME, check_name, collision_key
from modelsign._hashing import MemberDigest
from modelsign.bundle import (
    MEDIA_TYPE,
    PAYLOAD_TYPE,
    Bundle,
    CertificateMaterial,
    Envelope,
    KeyMaterial,
    pae,
    pae_legacy,
)
from modelsign.errors import (
    BundleTooLargeError,
    Error,
    ExtraFileError,
    InvalidSignatureError,
    MalformedBundleError,
    MissingSignatureError,
    UntrustedSignerError,
)
from modelsign.manifest import Manifest, Resource, Serialization
from modelsign.policy import Policy
from modelsign.verifying import check_bundle
from tests.fuzz_bundle import (
    Obj,
    Raw,
    byte_mutations,
    encode,
    fuzz_inputs,
    fuzz_one,
    json_mutations,
    statement_mutations,
    to_pairs,
)

MakeModel = Callable[..., Path]
Statement = dict[str, Any]
#: A named case: tamper with the benign signed model in ``Ctx``.
Mutation = Callable[["Ctx"], object]

# --------------------------------------------------------------------------
# Helpers


def canonical(statement: object) -> bytes:
    """Statement bytes as modelsign writes them (sorted keys, no whitespace)."""
    return json.dumps(statement, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def root_digest(statement: Statement) -> str:
    """The subject digest OMS derives from the resources (SHA-256 of the digests)."""
    h = hashlib.sha256()
    for r in statement["predicate"]["resources"]:
        h.update(bytes.fromhex(r["digest"]))
    return h.hexdigest()


def resign(
    bundle_path: Path,
    private_key_path: Path,
    mutate_statement: Callable[[Statement], object],
    *,
    fix_root: bool = False,
) -> None:
    """Change the signed statement, then sign it again, validly, with the key.

    ``mutate_statement`` gets the decoded payload statement and changes it in
    place (returning None), returns a replacement JSON value, or returns
    ``bytes``: the new payload verbatim (for JSON that ``json.dumps`` does not
    write: duplicate keys, NaN, trailing data). Nothing else is recomputed
    unless asked: with ``fix_root`` the subject digest is recomputed from the
    resources. The envelope's ``pae(payload_type, payload)`` is signed with the
    trusted key and written with modelsign's own classes and ``to_bytes``.
    """
    bundle = Bundle.from_bytes(bundle_path.read_bytes())
    statement = json.loads(bundle.envelope.payload)
    result = mutate_statement(statement)
    if isinstance(result, bytes):
        payload = result
    else:
        if result is not None:
            statement = result
        if fix_root:
            statement["subject"][0]["digest"]["sha256"] = root_digest(statement)
        payload = canonical(statement)
    old = bundle.envelope
    signature = keys.load_private_key(private_key_path).sign(pae(old.payload_type, payload))
    envelope = Envelope(payload, old.payload_type, signature, old.keyid)
    bundle_path.write_bytes(Bundle(bundle.material, envelope, bundle.media_type).to_bytes())


def at(tree: Any, *path: str | int) -> Any:
    """The value at ``path`` in a pairs tree (see tests.fuzz_bundle.to_pairs)."""
    for step in path:
        tree = next(v for k, v in tree if k == step) if isinstance(tree, Obj) else tree[step]
    return tree


def set_key(obj: Obj, key: str, value: Any) -> None:
    for pair in obj:
        if pair[0] == key:
            pair[1] = value
            return
    obj.append([key, value])


def duplicate_first(obj: Obj, key: str, first_value: Any) -> None:
    """Insert ``key: first_value`` before the existing ``key`` of ``obj``.

    A parser where the last duplicate wins sees the original bundle, one where
    the first wins sees ``first_value``: strict parsing must refuse both."""
    index = next(i for i, (k, _) in enumerate(obj) if k == key)
    obj.insert(index, [key, first_value])


def nested(levels: int) -> Raw:
    return Raw("[" * levels + "]" * levels)


def file_digest(path: Path, algorithm: str) -> str:
    if algorithm == "blake2b":
        return hashlib.blake2b(path.read_bytes()).hexdigest()
    return hashlib.new(algorithm, path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class Ctx:
    """A benign model, signed by the trusted key, for one case to tamper with."""

    model: Path
    private: Path
    public: Path
    other_private: Path
    other_public: Path
    make_model: MakeModel

    @property
    def sig(self) -> Path:
        return self.model / "model.sig"

    def bundle(self) -> Bundle:
        return Bundle.from_bytes(self.sig.read_bytes())

    def write(self, bundle: Bundle) -> None:
        self.sig.write_bytes(bundle.to_bytes())

    def with_signature(self, signature: bytes) -> None:
        b = self.bundle()
        e = b.envelope
        self.write(Bundle(b.material, Envelope(e.payload, e.payload_type, signature, e.keyid)))

    def sign_trusted(self, data: bytes) -> bytes:
        return keys.load_private_key(self.private).sign(data)

    def edit(self, change: Callable[[Any], object]) -> None:
        """Edit the bundle JSON as a pairs tree (duplicate keys, raw tokens)."""
        tree = to_pairs(json.loads(self.sig.read_bytes()))
        change(tree)
        self.sig.write_text(encode(tree, indent=2) + "\n")

    def resign(self, mutate: Callable[[Statement], object], *, fix_root: bool = False) -> None:
        resign(self.sig, self.private, mutate, fix_root=fix_root)

    def key_id(self, public: Path) -> str:
        return keys.load_public_key(public).key_id


@pytest.fixture
def ctx(make_model: MakeModel, keypair: tuple[Path, Path], other_keypair: tuple[Path, Path]) -> Ctx:
    model = make_model()
    modelsign.sign(model, keypair[0])
    return Ctx(model, keypair[0], keypair[1], other_keypair[0], other_keypair[1], make_model)


@pytest.fixture
def ed25519_ctx(make_model: MakeModel, key_dir: Path, other_keypair: tuple[Path, Path]) -> Ctx:
    """As ``ctx`` with an Ed25519 key only: the CLI subset (the API covers both)."""
    prefix = key_dir / "cli-ed25519"
    private, public = Path(f"{prefix}.key"), Path(f"{prefix}.pub")
    if not private.exists():
        keys.write_keypair(keys.generate("ed25519"), prefix, None)
    model = make_model()
    modelsign.sign(model, private)
    return Ctx(model, private, public, other_keypair[0], other_keypair[1], make_model)


# --------------------------------------------------------------------------
# Mutations: the manifest and the signature.


def edited_payload_model_name(c: Ctx) -> None:
    b = c.bundle()
    st_ = json.loads(b.envelope.payload)
    st_["subject"][0]["name"] = "evil"
    c.write(Bundle(b.material, Envelope(canonical(st_), PAYLOAD_TYPE, b.envelope.signature)))


EVIL_PICKLE = b"cos\nsystem\n(S'id'\ntR."


def edited_payload_ignores_swapped_file(c: Ctx) -> None:
    """model.pt swapped; the statement edited to ignore it; the old signature kept."""
    b = c.bundle()
    st_ = json.loads(b.envelope.payload)
    resources = st_["predicate"]["resources"]
    resources[:] = [r for r in resources if r["name"] != "model.pt"]
    st_["predicate"]["serialization"]["ignore_paths"].append("model.pt")
    st_["subject"][0]["digest"]["sha256"] = root_digest(st_)
    c.write(Bundle(b.material, Envelope(canonical(st_), PAYLOAD_TYPE, b.envelope.signature)))
    (c.model / "model.pt").write_bytes(EVIL_PICKLE)


def edited_payload_whitespace(c: Ctx) -> None:
    b = c.bundle()
    same = json.dumps(json.loads(b.envelope.payload), indent=1).encode()
    c.write(Bundle(b.material, Envelope(same, PAYLOAD_TYPE, b.envelope.signature)))


def other_keys_signature_over_the_same_pae(c: Ctx) -> None:
    e = c.bundle().envelope
    c.with_signature(keys.load_private_key(c.other_private).sign(pae(e.payload_type, e.payload)))


def signature_moved_from_another_model(c: Ctx) -> None:
    other = c.make_model("other")
    (other / "config.json").write_text('{"layers": [8, 4, 3]}')
    modelsign.sign(other, c.private)
    mine, theirs = c.bundle(), Bundle.from_bytes((other / "model.sig").read_bytes())
    assert mine.envelope.payload != theirs.envelope.payload
    c.with_signature(theirs.envelope.signature)


def truncated_signature(c: Ctx) -> None:
    sig = c.bundle().envelope.signature
    c.with_signature(sig[: len(sig) // 2])


def signature_with_a_trailing_byte(c: Ctx) -> None:
    c.with_signature(c.bundle().envelope.signature + b"\x00")


def zero_signature(c: Ctx) -> None:
    c.with_signature(bytes(len(c.bundle().envelope.signature)))


def signature_over_raw_payload(c: Ctx) -> None:
    c.with_signature(c.sign_trusted(c.bundle().envelope.payload))


def signature_over_base64_payload(c: Ctx) -> None:
    c.with_signature(c.sign_trusted(base64.b64encode(c.bundle().envelope.payload)))


def signature_over_legacy_pae_with_hint(c: Ctx) -> None:
    # The pre-1.0 encoding is accepted only for embedded-key ECDSA bundles.
    c.with_signature(c.sign_trusted(pae_legacy(c.bundle().envelope.payload)))


def signature_over_pae_of_another_type(c: Ctx) -> None:
    c.with_signature(c.sign_trusted(pae("application/json", c.bundle().envelope.payload)))


def raw_bytes_of_trusted_key_with_other_signature(c: Ctx) -> None:
    e = c.bundle().envelope
    pem = keys.load_public_key(c.public).pem
    other_sig = keys.load_private_key(c.other_private).sign(pae(e.payload_type, e.payload))
    c.write(Bundle(KeyMaterial(raw_bytes=pem), Envelope(e.payload, e.payload_type, other_sig)))


def signed_by_untrusted_key(c: Ctx) -> None:
    modelsign.sign(c.model, c.other_private, force=True)


def raw_bytes_of_untrusted_key(c: Ctx) -> None:
    modelsign.sign(c.model, c.other_private, force=True)
    b = c.bundle()
    c.write(Bundle(KeyMaterial(raw_bytes=keys.load_public_key(c.other_public).pem), b.envelope))


def hint_of_unknown_key(c: Ctx) -> None:
    b = c.bundle()
    c.write(Bundle(KeyMaterial(hint="0" * 64), b.envelope))


def self_signed_leaf(
    extensions: Sequence[x509.ExtensionType] = (),
) -> tuple[bytes, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "attacker")])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    for ext in extensions:
        builder = builder.add_extension(ext, critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER), key


def leaf_with_duplicate_extensions() -> bytes:
    """Two extensions with one OID: DER-valid, refused only when the extensions
    are read (cryptography parses them lazily: x509.DuplicateExtension)."""
    a, b = x509.ObjectIdentifier("1.2.3.4"), x509.ObjectIdentifier("1.2.3.5")
    der, _ = self_signed_leaf(
        [x509.UnrecognizedExtension(a, b"\x05\x00"), x509.UnrecognizedExtension(b, b"\x05\x00")]
    )
    oid_b = b"\x06\x03\x2a\x03\x05"
    assert der.count(oid_b) == 1
    return der.replace(oid_b, b"\x06\x03\x2a\x03\x04")


def leaf_with_malformed_san() -> bytes:
    """A subjectAltName whose value is not a GeneralNames sequence (parsed lazily:
    ValueError on first access to the extensions)."""
    der, _ = self_signed_leaf(
        [x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, b"\x01\x02xx")]
    )
    return der


def leaf_with_invalid_version() -> bytes:
    """X.509 version field 0x22 (only v1-v3 exist): load_der raises
    x509.InvalidVersion, which is not a ValueError."""
    der, _ = self_signed_leaf()
    v3 = bytes.fromhex("a003020102")  # [0] EXPLICIT INTEGER 2
    assert der.count(v3) == 1
    return der.replace(v3, bytes.fromhex("a003020122"))


def certificate_chain_when_only_keys_are_trusted(c: Ctx) -> None:
    der, key = self_signed_leaf([x509.SubjectAlternativeName([x509.RFC822Name("a@evil.test")])])
    e = c.bundle().envelope
    sig = key.sign(pae(e.payload_type, e.payload), ec.ECDSA(hashes.SHA256()))
    c.write(Bundle(CertificateMaterial((der,)), Envelope(e.payload, e.payload_type, sig)))


def certificate_chain_leaf_malformed_san(c: Ctx) -> None:
    c.write(Bundle(CertificateMaterial((leaf_with_malformed_san(),)), c.bundle().envelope))


def certificate_chain_leaf_invalid_version(c: Ctx) -> None:
    c.write(Bundle(CertificateMaterial((leaf_with_invalid_version(),)), c.bundle().envelope))


def certificate_chain_leaf_duplicate_extensions(c: Ctx) -> None:
    c.write(Bundle(CertificateMaterial((leaf_with_duplicate_extensions(),)), c.bundle().envelope))


def certificate_chain_not_der(c: Ctx) -> None:
    c.write(Bundle(CertificateMaterial((b"\x30\x03\x02\x01\x01",)), c.bundle().envelope))


def sigstore_material(der: bytes) -> Callable[[Ctx], None]:
    def mutate(c: Ctx) -> None:
        def change(t: Any) -> None:
            raw = base64.b64encode(der).decode()
            vm = Obj([["certificate", Obj([["rawBytes", raw]])], ["tlogEntries", [Obj()]]])
            set_key(t, "verificationMaterial", vm)

        c.edit(change)

    return mutate


def drop_manifest_json(c: Ctx) -> None:
    # The attacker's own, unsigned statement next to the real bundle.
    payload = json.loads(c.bundle().envelope.payload)
    (c.model / "manifest.json").write_text(json.dumps(payload))


def delete_signature(c: Ctx) -> None:
    c.sig.unlink()


def empty_signature_file(c: Ctx) -> None:
    c.sig.write_bytes(b"")


def edit_signatures(value: Callable[[Ctx, Obj], Any]) -> Callable[[Ctx], None]:
    def mutate(c: Ctx) -> None:
        c.edit(lambda t: set_key(at(t, "dsseEnvelope"), "signatures", value(c, t)))

    return mutate


def other_key_signature_item(c: Ctx) -> Obj:
    e = c.bundle().envelope
    sig = keys.load_private_key(c.other_private).sign(pae(e.payload_type, e.payload))
    return Obj([["sig", base64.b64encode(sig).decode()]])


def edit_envelope(key: str, value: Any) -> Callable[[Ctx], None]:
    return lambda c: c.edit(lambda t: set_key(at(t, "dsseEnvelope"), key, value))


def edit_top(key: str, value: Any) -> Callable[[Ctx], None]:
    return lambda c: c.edit(lambda t: set_key(t, key, value))


def drop(*path: str) -> Callable[[Ctx], None]:
    def mutate(c: Ctx) -> None:
        def change(t: Any) -> None:
            parent = at(t, *path[:-1])
            parent[:] = [p for p in parent if p[0] != path[-1]]

        c.edit(change)

    return mutate


def edit_public_key(key: str, value: Any) -> Callable[[Ctx], None]:
    return lambda c: c.edit(
        lambda t: set_key(at(t, "verificationMaterial", "publicKey"), key, value)
    )


def edit_material(key: str, value: Any) -> Callable[[Ctx], None]:
    return lambda c: c.edit(lambda t: set_key(at(t, "verificationMaterial"), key, value))


# Validly re-signed statement mutations.


def rehash(
    c: Ctx, algorithm: str, resources: set[str] | None = None
) -> Callable[[Statement], None]:
    """Give resources the real ``algorithm`` digest of their file (all, or those named)."""

    def mutate(s: Statement) -> None:
        for r in s["predicate"]["resources"]:
            if resources is None or r["name"] in resources:
                r["algorithm"] = algorithm
                r["digest"] = file_digest(c.model / r["name"], algorithm)
        if resources is None:
            s["predicate"]["serialization"]["hash_type"] = algorithm

    return mutate


def resigned(
    mutate: Callable[[Statement], object], *, fix_root: bool = False
) -> Callable[[Ctx], None]:
    return lambda c: c.resign(mutate, fix_root=fix_root)


def resigned_with(
    make: Callable[[Ctx], Callable[[Statement], object]], *, fix_root: bool = False
) -> Callable[[Ctx], None]:
    return lambda c: c.resign(make(c), fix_root=fix_root)


def set_resource_digest(value: Callable[[str], str]) -> Callable[[Statement], None]:
    def mutate(s: Statement) -> None:
        r = s["predicate"]["resources"][0]
        r["digest"] = value(r["digest"])

    return mutate


def set_path(*path: str | int, value: Any) -> Callable[[Statement], None]:
    def mutate(s: Statement) -> None:
        target: Any = s
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value

    return mutate


def add_resource(name: str, copy_of: int = 0) -> Callable[[Statement], None]:
    def mutate(s: Statement) -> None:
        resources = s["predicate"]["resources"]
        resources.append({**resources[copy_of], "name": name})

    return mutate


def raw_statement(change: Callable[[Any], object]) -> Callable[[Statement], bytes]:
    """A payload mutation that writes JSON json.dumps cannot (see fuzz_bundle.encode)."""

    def mutate(s: Statement) -> bytes:
        tree = to_pairs(s)
        change(tree)
        return encode(tree).encode()

    return mutate


def annotate_first_resource(value: Any) -> Callable[[Statement], bytes]:
    return raw_statement(
        lambda t: set_key(at(t, "predicate", "resources", 0, "annotations"), "size", value)
    )


def duplicate_digest_in_resource(c: Ctx) -> None:
    """model.pt swapped; the first ``digest`` is the swapped file's, the last the
    signed one's: a parser where the first duplicate wins would accept it."""
    (c.model / "model.pt").write_bytes(EVIL_PICKLE)
    tampered = file_digest(c.model / "model.pt", "sha256")

    def change(t: Any) -> None:
        for r in at(t, "predicate", "resources"):
            if at(r, "name") == "model.pt":
                duplicate_first(r, "digest", tampered)

    c.resign(raw_statement(change))


# --------------------------------------------------------------------------
# The tables. Each is {"case name": mutation}; the expected class is exact.

INVALID_SIGNATURE: dict[str, Mutation] = {
    "edited payload (model name), old signature": edited_payload_model_name,
    "edited payload (a swapped file ignored), old signature": edited_payload_ignores_swapped_file,
    "same statement re-serialized with whitespace, old signature": edited_payload_whitespace,
    "trusted key id (hint) with another key's signature": other_keys_signature_over_the_same_pae,
    "trusted key embedded (rawBytes) with another key's signature": (
        raw_bytes_of_trusted_key_with_other_signature
    ),
    "signature moved from another model's payload": signature_moved_from_another_model,
    "truncated signature (half)": truncated_signature,
    "signature with a trailing byte": signature_with_a_trailing_byte,
    "all-zero signature": zero_signature,
    "signature over the raw payload instead of the PAE": signature_over_raw_payload,
    "signature over the base64 payload instead of the PAE": signature_over_base64_payload,
    "signature over the legacy pre-1.0 PAE, key id hint": signature_over_legacy_pae_with_hint,
    "signature over the PAE of another payloadType": signature_over_pae_of_another_type,
}

UNTRUSTED_SIGNER: dict[str, Mutation] = {
    "signed by an untrusted key": signed_by_untrusted_key,
    "signed by an untrusted key, embedded as rawBytes": raw_bytes_of_untrusted_key,
    "key id (hint) of no trusted key, trusted key's signature": hint_of_unknown_key,
    "certificate chain when only keys are trusted": certificate_chain_when_only_keys_are_trusted,
}

MISSING_SIGNATURE: dict[str, Mutation] = {
    "missing signature file": delete_signature,
}

EXTRA_FILE: dict[str, Mutation] = {
    "unsigned manifest.json dropped beside the bundle": drop_manifest_json,
}

# Malformed bundles: the regex names the check that must refuse each one.
MALFORMED: dict[str, tuple[Mutation, str]] = {
    # signatures
    "empty signature file": (empty_signature_file, "not valid JSON"),
    "empty signatures list (an unsigned manifest)": (
        edit_signatures(lambda c, t: []),
        "exactly one signature, has 0",
    ),
    "two signatures (the same one twice)": (
        edit_signatures(lambda c, t: [*at(t, "dsseEnvelope", "signatures")] * 2),
        "exactly one signature, has 2",
    ),
    "two signatures (trusted and another key's)": (
        edit_signatures(
            lambda c, t: [*at(t, "dsseEnvelope", "signatures"), other_key_signature_item(c)]
        ),
        "exactly one signature, has 2",
    ),
    "signatures is an object": (
        edit_signatures(lambda c, t: at(t, "dsseEnvelope", "signatures", 0)),
        "exactly one signature, has no",
    ),
    "signature object without sig": (
        edit_signatures(lambda c, t: [Obj([["keyid", ""]])]),
        "DSSE signature must be a non-empty base64 string",
    ),
    "signature not base64": (
        edit_signatures(lambda c, t: [Obj([["sig", "not base64!"]])]),
        "DSSE signature is not valid base64",
    ),
    "signature with an unknown key": (
        edit_signatures(lambda c, t: [Obj([*at(t, "dsseEnvelope", "signatures", 0), ["x", 1]])]),
        "sig and keyid only",
    ),
    # the envelope
    "payloadType application/json": (
        edit_envelope("payloadType", "application/json"),
        "payloadType is 'application/json'",
    ),
    "payloadType in upper case": (
        edit_envelope("payloadType", PAYLOAD_TYPE.upper()),
        "payloadType",
    ),
    "payloadType with a trailing space": (
        edit_envelope("payloadType", PAYLOAD_TYPE + " "),
        "payloadType",
    ),
    "payloadType missing": (drop("dsseEnvelope", "payloadType"), "payloadType is None"),
    "payload not base64": (edit_envelope("payload", "e30=!"), "payload is not valid base64"),
    "payload missing": (drop("dsseEnvelope", "payload"), "payload must be a non-empty"),
    "unknown key in dsseEnvelope": (
        edit_envelope("payloadHash", "x"),
        r"dsseEnvelope has unknown keys \['payloadHash'\]",
    ),
    # the bundle
    "extra top-level bundle key": (edit_top("extra", 1), r"unknown keys \['extra'\]"),
    "messageSignature beside dsseEnvelope": (
        edit_top("messageSignature", Obj([["signature", "AA=="]])),
        r"unknown keys \['messageSignature'\]",
    ),
    "mediaType bundle v0.1": (
        edit_top("mediaType", "application/vnd.dev.sigstore.bundle+json;version=0.1"),
        "is not a Sigstore bundle v0.3",
    ),
    "mediaType bundle v0.2": (
        edit_top("mediaType", "application/vnd.dev.sigstore.bundle+json;version=0.2"),
        "is not a Sigstore bundle v0.3",
    ),
    "mediaType v0.3 with a trailing space": (
        edit_top("mediaType", MEDIA_TYPE + " "),
        "is not a Sigstore bundle v0.3",
    ),
    "mediaType application/json": (edit_top("mediaType", "application/json"), "mediaType"),
    "mediaType a number": (edit_top("mediaType", 3), "mediaType 3"),
    "mediaType a list": (edit_top("mediaType", [MEDIA_TYPE]), "mediaType"),
    "mediaType an object": (edit_top("mediaType", Obj([[MEDIA_TYPE, 1]])), "mediaType"),
    "mediaType missing": (drop("mediaType"), "mediaType None"),
    "no verificationMaterial": (drop("verificationMaterial"), "no verificationMaterial"),
    "no dsseEnvelope": (drop("dsseEnvelope"), "no dsseEnvelope"),
    # verification material
    "publicKey and x509CertificateChain together": (
        edit_material("x509CertificateChain", Obj([["certificates", []]])),
        "exactly one of",
    ),
    "transparency log entries in a key bundle": (
        edit_material("tlogEntries", [Obj()]),
        "no transparency log entries",
    ),
    "empty key id (hint)": (edit_public_key("hint", ""), "hint must be a non-empty string"),
    "key id (hint) a number": (edit_public_key("hint", 1), "hint must be a non-empty string"),
    "rawBytes not a PEM key": (
        lambda c: c.write(Bundle(KeyMaterial(raw_bytes=b"junk"), c.bundle().envelope)),
        "rawBytes is not a PEM key",
    ),
    "certificate chain that is not DER": (
        certificate_chain_not_der,
        "certificate chain: not a valid DER certificate",
    ),
    "certificate chain empty": (
        lambda c: c.edit(
            lambda t: set_key(
                t,
                "verificationMaterial",
                Obj([["x509CertificateChain", Obj([["certificates", []]])]]),
            )
        ),
        "non-empty list",
    ),
    "Sigstore certificate with a malformed subjectAltName": (
        sigstore_material(leaf_with_malformed_san()),
        "Fulcio certificate: cannot read the certificate's identity",
    ),
    # the statement, validly re-signed
    "unknown predicateType (validly re-signed)": (
        resigned(set_path("predicateType", value="https://model_signing/Digests/v0.1")),
        "predicateType 'https://model_signing/Digests/v0.1'",
    ),
    "statement _type v0.1 (validly re-signed)": (
        resigned(set_path("_type", value="https://in-toto.io/Statement/v0.1")),
        "statement _type",
    ),
    "md5 resources (validly re-signed)": (
        resigned_with(lambda c: rehash(c, "md5"), fix_root=True),
        "hash_type 'md5' is not allowed",
    ),
    "sha1 resources (validly re-signed)": (
        resigned_with(lambda c: rehash(c, "sha1"), fix_root=True),
        "hash_type 'sha1' is not allowed",
    ),
    "mixed hash algorithms: one blake2b resource (validly re-signed)": (
        resigned_with(lambda c: rehash(c, "blake2b", {"config.json"}), fix_root=True),
        "'config.json': algorithm 'blake2b' differs from hash_type 'sha256'",
    ),
    "mixed hash algorithms: one md5 resource (validly re-signed)": (
        resigned_with(lambda c: rehash(c, "md5", {"config.json"}), fix_root=True),
        "'config.json': algorithm 'md5' differs",
    ),
    "digest two hex digits short (validly re-signed)": (
        resigned(set_resource_digest(lambda d: d[:-2]), fix_root=True),
        "digest must be 64 lowercase hex digits",
    ),
    "digest two hex digits long (validly re-signed)": (
        resigned(set_resource_digest(lambda d: d + "00"), fix_root=True),
        "digest must be 64 lowercase hex digits",
    ),
    "blake2b-length digest under sha256 (validly re-signed)": (
        resigned(set_resource_digest(lambda d: d * 2), fix_root=True),
        "digest must be 64 lowercase hex digits",
    ),
    "digest in upper case (validly re-signed)": (
        resigned(set_resource_digest(str.upper), fix_root=True),
        "digest must be 64 lowercase hex digits",
    ),
    "wrong subject root digest (validly re-signed)": (
        resigned(set_path("subject", 0, "digest", "sha256", value="0" * 64)),
        "subject digest 0{64} does not match the resources",
    ),
    "two subjects (validly re-signed)": (
        resigned(lambda s: s["subject"].append(s["subject"][0])),
        "exactly one subject",
    ),
    "resource path with .. (validly re-signed)": (
        resigned(set_path("predicate", "resources", 0, "name", value="../config.json")),
        "unsafe path name",
    ),
    "absolute resource path (validly re-signed)": (
        resigned(set_path("predicate", "resources", 0, "name", value="/etc/passwd")),
        "absolute path",
    ),
    "duplicate resource (validly re-signed)": (
        resigned(add_resource("config.json"), fix_root=True),
        "duplicate resource 'config.json'",
    ),
    "resources colliding under case folding (validly re-signed)": (
        resigned(add_resource("CONFIG.json"), fix_root=True),
        "collide",
    ),
    "no resources (validly re-signed)": (
        resigned(set_path("predicate", "resources", value=[]), fix_root=True),
        "nothing was signed",
    ),
    "serialization method shards without shard_size (validly re-signed)": (
        resigned(set_path("predicate", "serialization", "method", value="shards")),
        "shard_size must be a positive integer, not None",
    ),
    "shard_size with method files (validly re-signed)": (
        resigned(set_path("predicate", "serialization", "shard_size", value=1024)),
        "shard_size is only allowed with method 'shards'",
    ),
    "unknown predicate key (validly re-signed)": (
        resigned(set_path("predicate", "extra", value=1)),
        "exactly resources and serialization",
    ),
    "ignore path with .. (validly re-signed)": (
        resigned(set_path("predicate", "serialization", "ignore_paths", value=["../x"])),
        "unsafe path name",
    ),
    "payload that is not JSON (validly signed)": (
        resigned(lambda s: b"not json"),
        "DSSE payload: not valid JSON",
    ),
    "payload that is a JSON array (validly signed)": (
        resigned(lambda s: [s]),
        "the statement must be a JSON object",
    ),
}

# Strict JSON through the whole verifier (tests/test_json.py has the unit cases).
HOSTILE_JSON: dict[str, tuple[Mutation, str]] = {
    "duplicate key at top level (mediaType)": (
        lambda c: c.edit(lambda t: duplicate_first(t, "mediaType", "application/json")),
        "duplicate JSON key 'mediaType'",
    ),
    "duplicate key in verificationMaterial (hint: untrusted, then trusted)": (
        lambda c: c.edit(
            lambda t: duplicate_first(
                at(t, "verificationMaterial", "publicKey"), "hint", c.key_id(c.other_public)
            )
        ),
        "duplicate JSON key 'hint'",
    ),
    "duplicate key in verificationMaterial (publicKey)": (
        lambda c: c.edit(
            lambda t: duplicate_first(
                at(t, "verificationMaterial"),
                "publicKey",
                Obj([["hint", c.key_id(c.other_public)]]),
            )
        ),
        "duplicate JSON key 'publicKey'",
    ),
    "duplicate key in dsseEnvelope (payload: another, then the signed one)": (
        lambda c: c.edit(
            lambda t: duplicate_first(
                at(t, "dsseEnvelope"), "payload", base64.b64encode(b'{"_type": 1}').decode()
            )
        ),
        "duplicate JSON key 'payload'",
    ),
    "duplicate key in the DSSE signature (sig: junk, then valid)": (
        lambda c: c.edit(
            lambda t: duplicate_first(at(t, "dsseEnvelope", "signatures", 0), "sig", "AAAA")
        ),
        "duplicate JSON key 'sig'",
    ),
    "duplicate predicateType inside the payload (validly re-signed)": (
        resigned(
            raw_statement(lambda t: duplicate_first(t, "predicateType", "https://evil.test/v1"))
        ),
        "DSSE payload: duplicate JSON key 'predicateType'",
    ),
    "duplicate resource digest inside the payload (validly re-signed)": (
        duplicate_digest_in_resource,
        "DSSE payload: duplicate JSON key 'digest'",
    ),
    "NaN in the bundle": (edit_material("tlogEntries", Raw("NaN")), "JSON constant NaN"),
    "Infinity in the bundle": (edit_material("tlogEntries", Raw("Infinity")), "Infinity"),
    "-Infinity in the bundle": (edit_material("tlogEntries", Raw("-Infinity")), "-Infinity"),
    "NaN inside the payload (validly re-signed)": (
        resigned(annotate_first_resource(Raw("NaN"))),
        "DSSE payload: JSON constant NaN",
    ),
    "float overflowing to Infinity (1e400) inside the payload (validly re-signed)": (
        resigned(annotate_first_resource(Raw("1e400"))),
        "DSSE payload",
    ),
    "integer of 33 digits in the bundle": (
        edit_material("tlogEntries", Raw("9" * 33)),
        "integer of 33 digits is too long",
    ),
    "negative integer of 33 digits in the bundle": (
        edit_material("tlogEntries", Raw("-" + "9" * 33)),
        "integer of 34 digits is too long",
    ),
    "integer of 33 digits inside the payload (validly re-signed)": (
        resigned(annotate_first_resource(Raw("1" + "0" * 32))),
        "DSSE payload: JSON integer of 33 digits",
    ),
    "nesting deeper than 64 in the bundle": (
        edit_material("tlogEntries", nested(63)),
        "nesting deeper than 64",
    ),
    "nesting deeper than 64 inside the payload (validly re-signed)": (
        resigned(annotate_first_resource(nested(60))),
        "DSSE payload: JSON nesting deeper than 64",
    ),
    "nesting 100000 deep (recursion)": (
        edit_material("tlogEntries", nested(100_000)),
        "not valid JSON",
    ),
    "trailing garbage after the bundle": (
        lambda c: c.sig.write_bytes(c.sig.read_bytes() + b"x"),
        "not valid JSON: Extra data",
    ),
    "a second bundle after the bundle": (
        lambda c: c.sig.write_bytes(c.sig.read_bytes() * 2),
        "not valid JSON: Extra data",
    ),
    "NUL byte after the bundle": (
        lambda c: c.sig.write_bytes(c.sig.read_bytes() + b"\x00"),
        "not valid JSON",
    ),
    "trailing garbage inside the payload (validly re-signed)": (
        resigned(lambda s: canonical(s) + b" x"),
        "DSSE payload: not valid JSON: Extra data",
    ),
    "UTF-8 byte order mark": (
        lambda c: c.sig.write_bytes(b"\xef\xbb\xbf" + c.sig.read_bytes()),
        "not valid JSON",
    ),
    "UTF-16 bundle": (
        lambda c: c.sig.write_bytes(c.sig.read_text().encode("utf-16")),
        "not valid JSON",
    ),
    "invalid UTF-8 in a string": (
        lambda c: c.sig.write_bytes(c.sig.read_bytes().replace(b'"hint": "', b'"hint": "\xff', 1)),
        "not valid JSON",
    ),
    "lone surrogate (CESU-8) in a string": (
        lambda c: c.sig.write_bytes(
            c.sig.read_bytes().replace(b'"hint": "', b'"hint": "\xed\xa0\x80', 1)
        ),
        "not valid JSON",
    ),
}

# Hostile certificates: whatever their content, they are refused as malformed
# (or untrusted), never with a foreign exception (exit code 3).
HOSTILE_CERTIFICATES: dict[str, Mutation] = {
    "certificate chain whose leaf has a malformed subjectAltName": (
        certificate_chain_leaf_malformed_san
    ),
    "certificate chain whose leaf has two extensions with one OID": (
        certificate_chain_leaf_duplicate_extensions
    ),
    "Sigstore certificate with two extensions with one OID": sigstore_material(
        leaf_with_duplicate_extensions()
    ),
    "certificate chain whose leaf has X.509 version field 34": (
        certificate_chain_leaf_invalid_version
    ),
    "Sigstore certificate with X.509 version field 34": sigstore_material(
        leaf_with_invalid_version()
    ),
}


def _params(table: dict[str, Any], expected: type[Error]) -> list[Any]:
    out = []
    for name, value in table.items():
        mutate, match = value if isinstance(value, tuple) else (value, None)
        out.append(pytest.param(expected, mutate, match, id=name))
    return out


CASES = [
    *_params(INVALID_SIGNATURE, InvalidSignatureError),
    *_params(UNTRUSTED_SIGNER, UntrustedSignerError),
    *_params(MISSING_SIGNATURE, MissingSignatureError),
    *_params(EXTRA_FILE, ExtraFileError),
    *_params(MALFORMED, MalformedBundleError),
    *_params(HOSTILE_JSON, MalformedBundleError),
    *_params(HOSTILE_CERTIFICATES, MalformedBundleError),
]


@pytest.mark.parametrize(("expected", "mutate", "match"), CASES)
def test_hostile_bundle_is_refused(
    ctx: Ctx, expected: type[Error], mutate: Callable[[Ctx], None], match: str | None
) -> None:
    modelsign.verify(ctx.model, [ctx.public])  # the benign model verifies
    mutate(ctx)
    with pytest.raises(Error, match=match) as info:
        modelsign.verify(ctx.model, [ctx.public])
    assert type(info.value) is expected, info.value


# A representative subset through the CLI: exit 1, a message, no traceback.
CLI_CASES = [
    "edited payload (model name), old signature",
    "signature moved from another model's payload",
    "signature over the raw payload instead of the PAE",
    "signed by an untrusted key",
    "missing signature file",
    "unsigned manifest.json dropped beside the bundle",
    "empty signature file",
    "empty signatures list (an unsigned manifest)",
    "two signatures (the same one twice)",
    "payloadType application/json",
    "mediaType a list",
    "md5 resources (validly re-signed)",
    "wrong subject root digest (validly re-signed)",
    "duplicate key in verificationMaterial (hint: untrusted, then trusted)",
    "duplicate predicateType inside the payload (validly re-signed)",
    "NaN in the bundle",
    "integer of 33 digits in the bundle",
    "nesting 100000 deep (recursion)",
    "trailing garbage after the bundle",
    "UTF-16 bundle",
    *HOSTILE_CERTIFICATES,
]
_BY_ID = {p.id: p for p in CASES}


@pytest.mark.parametrize(
    ("expected", "mutate", "match"),
    [_BY_ID[name] for name in CLI_CASES],
)
def test_hostile_bundle_cli_exits_1(
    ed25519_ctx: Ctx, expected: type[Error], mutate: Callable[[Ctx], None], match: str | None
) -> None:
    ctx = ed25519_ctx
    mutate(ctx)
    result = subprocess.run(
        [sys.executable, "-m", "modelsign", "verify", str(ctx.model), "--key", str(ctx.public)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.startswith("modelsign: rejected: "), result.stderr


# Benign edits: the same statement, the same signature: must still verify.
BENIGN: dict[str, Mutation] = {
    "bundle re-serialized without whitespace": lambda c: c.sig.write_text(
        json.dumps(json.loads(c.sig.read_bytes()), separators=(",", ":"))
    ),
    "bundle keys in reverse order, tabs and CRLF": lambda c: c.sig.write_text(
        json.dumps(
            json.loads(c.sig.read_bytes(), object_pairs_hook=lambda p: dict(reversed(p))),
            indent="\t",
        ).replace("\n", "\r\n")
        + "\r\n"
    ),
    "JSON string escapes in payloadType and mediaType": lambda c: c.sig.write_bytes(
        c.sig.read_bytes()
        .replace(b'"application/vnd.in-toto+json"', b'"application\\/vnd.in\\u002dtoto+json"')
        .replace(b'"application/vnd.dev.sigstore', b'"\\u0061pplication/vnd.dev.sigstore')
    ),
    "alternative mediaType spelling of v0.3": edit_top(
        "mediaType", "application/vnd.dev.sigstore.bundle+json;version=0.3"
    ),
    "no tlogEntries": drop("verificationMaterial", "tlogEntries"),
    "DSSE keyid set": lambda c: c.edit(
        lambda t: set_key(at(t, "dsseEnvelope", "signatures", 0), "keyid", "anything")
    ),
    "re-signed unchanged (the resign helper itself)": resigned(lambda s: None),
    "integer of 32 digits inside the payload (validly re-signed)": resigned(
        annotate_first_resource(Raw("9" * 32))
    ),
    "payload nested exactly 64 deep (validly re-signed)": resigned(
        # statement 1, predicate 2, resources 3, resource 4, annotations 5, + 59
        annotate_first_resource(nested(59))
    ),
}


@pytest.mark.parametrize("case", list(BENIGN))
def test_benign_edit_still_verifies(ctx: Ctx, case: str) -> None:
    before = modelsign.verify(ctx.model, [ctx.public])
    BENIGN[case](ctx)
    after = modelsign.verify(ctx.model, [ctx.public])
    assert after.root_digest == before.root_digest
    assert after.files == before.files


def test_untrusted_key_id_is_not_echoed_raw(ctx: Ctx) -> None:
    """The key id comes from an unverified bundle: control characters in it
    must not reach the terminal (they can erase the line and print 'OK')."""
    ctx.write(Bundle(KeyMaterial(hint="\x1b[2K\r\x1b[32mverified\x1b[0m"), ctx.bundle().envelope))
    with pytest.raises(UntrustedSignerError) as info:
        modelsign.verify(ctx.model, [ctx.public])
    assert "\x1b" not in info.value.diagnostics()
    assert "\r" not in info.value.diagnostics()


# --------------------------------------------------------------------------
# Size limit: checked on the file size, before anything is decoded.


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(None, id="valid bundle"),
        pytest.param(b"{" + b"x" * 2047, id="2 KB of invalid JSON"),
        pytest.param(b"\xff" * 2048, id="2 KB of invalid UTF-8"),
        pytest.param(b"[" * 2048, id="2 KB of nesting"),
    ],
)
def test_bundle_over_the_limit_is_refused_before_decoding(ctx: Ctx, content: bytes | None) -> None:
    if content is not None:
        ctx.sig.write_bytes(content)
    size = ctx.sig.stat().st_size
    assert size > 1000
    with pytest.raises(BundleTooLargeError, match=f"{size} bytes, over the limit of 1000") as info:
        modelsign.verify(ctx.model, [ctx.public], max_bundle_bytes=1000)
    assert type(info.value) is BundleTooLargeError
    with pytest.raises(BundleTooLargeError):
        Bundle.from_bytes(ctx.sig.read_bytes(), max_bytes=1000)


def test_bundle_size_limit_is_inclusive(ctx: Ctx) -> None:
    size = ctx.sig.stat().st_size
    modelsign.verify(ctx.model, [ctx.public], max_bundle_bytes=size)
    with pytest.raises(BundleTooLargeError):
        modelsign.verify(ctx.model, [ctx.public], max_bundle_bytes=size - 1)


# --------------------------------------------------------------------------
# "A threshold never counts the same key twice": modelsign has no thresholds,
# but a key given twice (the same file, a copy, a re-wrapped PEM) is one key.


def test_same_key_twice_is_one_trusted_key(
    ctx: Ctx, tmp_path: Path, other_keypair: tuple[Path, Path]
) -> None:
    p = ctx.public
    copy = tmp_path / "copy" / "same.pub"
    copy.parent.mkdir()
    shutil.copyfile(p, copy)
    crlf = tmp_path / "crlf.pub"
    crlf.write_bytes(p.read_bytes().replace(b"\n", b"\r\n") + b"\r\n")
    assert len(Policy.of([p, p]).keys) == 1
    assert len(Policy.of([p, copy]).keys) == 1
    assert len(Policy.of([p, copy, crlf]).keys) == 1
    assert len(Policy.of([p, copy, other_keypair[1]]).keys) == 2
    policy_file = tmp_path / "policy.toml"
    policy_file.write_text(f'[trust]\nkeys = ["{p}", "{copy}", "{crlf}"]\n')
    assert len(Policy.load(policy_file).keys) == 1
    assert modelsign.verify(ctx.model, [p, copy, crlf]).signed_by.key_id == ctx.key_id(p)


# --------------------------------------------------------------------------
# Property: manifests and bundles round-trip exactly.


def _safe(name: str) -> bool:
    try:
        check_name(name)
    except Error:
        return False
    return True


_component = st.text("abcdefghijklmnopqrstuvwxyzABCXYZ0123456789_-.", min_size=1, max_size=10)
_names = st.lists(_component, min_size=1, max_size=3).map("/".join).filter(_safe)


def _hex(hash_type: str) -> st.SearchStrategy[str]:
    n = DIGEST_HEX_LENGTH[hash_type] // 2
    return st.binary(min_size=n, max_size=n).map(bytes.hex)


@st.composite
def manifests(draw: st.DrawFn) -> Manifest:
    hash_type = draw(st.sampled_from(HASH_TYPES))
    names = draw(
        st.just([SINGLE_FILE_NAME])
        | st.lists(_names, min_size=1, max_size=6, unique_by=collision_key)
    )
    resources = []
    for name in names:
        archive = draw(st.none() | st.sampled_from(("zip", "tar")))
        members: tuple[MemberDigest, ...] = ()
        if archive is not None:
            members = tuple(
                draw(
                    st.lists(
                        st.builds(
                            MemberDigest,
                            name=st.text(max_size=12),
                            size=st.integers(0, 2**63),
                            digest=_hex(hash_type),
                            compression=st.sampled_from(("stored", "deflated", "")),
                        ),
                        max_size=3,
                    )
                )
            )
        size = draw(st.none() | st.integers(0, 2**63))
        resources.append(Resource(name, hash_type, draw(_hex(hash_type)), size, archive, members))
    serialization = Serialization(
        hash_type,
        allow_symlinks=draw(st.booleans()),
        ignore_paths=tuple(draw(st.lists(_names, max_size=3))),
    )
    return Manifest(draw(st.text(min_size=1, max_size=20)), tuple(resources), serialization)


_materials = (
    st.builds(KeyMaterial, hint=st.text(min_size=1, max_size=64))
    | st.builds(KeyMaterial, raw_bytes=st.binary(min_size=1, max_size=200))
    | st.builds(KeyMaterial, st.text(min_size=1), st.binary(min_size=1))
    | st.lists(st.binary(min_size=1, max_size=100), min_size=1, max_size=3).map(
        lambda chain: CertificateMaterial(tuple(chain))
    )
)


@settings(max_examples=200, deadline=None)
@given(manifest=manifests(), material=_materials, data=st.data())
def test_manifest_and_bundle_round_trip(
    manifest: Manifest, material: Any, data: st.DataObject
) -> None:
    payload = manifest.to_payload()
    assert Manifest.from_payload(payload) == manifest
    assert Manifest.from_payload(payload).to_payload() == payload
    envelope = Envelope(
        payload,
        PAYLOAD_TYPE,
        data.draw(st.binary(min_size=1, max_size=140)),
        data.draw(st.none() | st.text(max_size=20)),
    )
    media_type = data.draw(
        st.sampled_from((MEDIA_TYPE, "application/vnd.dev.sigstore.bundle+json;version=0.3"))
    )
    bundle = Bundle(material, envelope, media_type)
    written = bundle.to_bytes()
    assert Bundle.from_bytes(written) == bundle
    assert Bundle.from_bytes(written).to_bytes() == written


# --------------------------------------------------------------------------
# Property: a mutated signed bundle gives a modelsign error, or verifies to
# the very statement that was signed.


@dataclass(frozen=True)
class Signed:
    data: bytes
    manifest: Manifest
    policy: Policy
    private: keys.PrivateKey


@pytest.fixture(scope="module")
def signed(keypair: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Signed:
    model = tmp_path_factory.mktemp("signed") / "model"
    (model / "sub").mkdir(parents=True)
    (model / "weights.bin").write_bytes(bytes(range(256)) * 4)
    (model / "sub" / "config.json").write_text('{"a": 1}')
    result = modelsign.sign(model, keypair[0])
    return Signed(
        result.signature.read_bytes(),
        result.manifest,
        Policy.of([keypair[1]]),
        keys.load_private_key(keypair[0]),
    )


def _check(data: bytes, policy: Policy) -> Manifest | None:
    """The statement a bundle verifies to, or None for a modelsign error.
    Anything else propagates and fails the test."""
    try:
        bundle = Bundle.from_bytes(data)
        manifest, _ = check_bundle(bundle, policy)
    except Error:
        return None
    return manifest


_MUTATION_SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@_MUTATION_SETTINGS
@given(data=st.data())
def test_byte_mutations_raise_only_modelsign_errors(signed: Signed, data: st.DataObject) -> None:
    mutated = data.draw(byte_mutations(signed.data))
    verified = _check(mutated, signed.policy)
    assert verified is None or verified == signed.manifest


@_MUTATION_SETTINGS
@given(data=st.data())
def test_json_mutations_raise_only_modelsign_errors(signed: Signed, data: st.DataObject) -> None:
    mutated = data.draw(json_mutations(signed.data))
    verified = _check(mutated, signed.policy)
    assert verified is None or verified == signed.manifest


@_MUTATION_SETTINGS
@given(data=st.data())
def test_resigned_statement_mutations_raise_only_modelsign_errors(
    signed: Signed, data: st.DataObject
) -> None:
    mutated = data.draw(statement_mutations(signed.data, signed.private))
    verified = _check(mutated, signed.policy)
    if verified is not None:
        # Only a validly signed statement verifies, and it is what was signed:
        # both checked without modelsign's parsers.
        _same_statement(verified, _independently_verified_statement(mutated, signed.private))


def _independently_verified_statement(data: bytes, key: keys.PrivateKey) -> Any:
    """The statement of a bundle whose DSSE signature verifies with ``key``'s
    public key, checked with cryptography and parsed with json alone."""
    envelope = json.loads(data)["dsseEnvelope"]
    payload = base64.b64decode(envelope["payload"], validate=True)
    (signature,) = envelope["signatures"]
    kind = envelope["payloadType"].encode()
    message = b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)
    public = key.key.public_key()
    sig = base64.b64decode(signature["sig"], validate=True)
    if isinstance(public, ec.EllipticCurvePublicKey):
        digest = {256: hashes.SHA256(), 384: hashes.SHA384(), 521: hashes.SHA512()}
        public.verify(sig, message, ec.ECDSA(digest[public.curve.key_size]))
    else:
        assert isinstance(public, ed25519.Ed25519PublicKey)
        public.verify(sig, message)  # InvalidSignature fails the test
    return json.loads(payload)


def _same_statement(manifest: Manifest, statement: Any) -> None:
    """What modelsign verified is what the signed JSON says."""
    (subject,) = statement["subject"]
    assert (subject["name"], subject["digest"]["sha256"]) == (
        manifest.model_name,
        manifest.root_digest,
    )
    resources = statement["predicate"]["resources"]
    assert [(r["name"], r["algorithm"], r["digest"]) for r in resources] == [
        (r.name, r.algorithm, r.digest) for r in manifest.resources
    ]
    got = statement["predicate"]["serialization"]
    want = manifest.serialization
    assert got["method"] == want.method
    assert got["hash_type"] == want.hash_type
    assert got["allow_symlinks"] is want.allow_symlinks
    assert got.get("ignore_paths", []) == list(want.ignore_paths)  # optional in OMS
    assert got.get("shard_size") == want.shard_size  # model_signing writes 1048576.0


@_MUTATION_SETTINGS
@given(
    indent=st.none() | st.integers(0, 4) | st.sampled_from(("\t", " \r\n")),
    separators=st.sampled_from(((",", ":"), (", ", ": "), (" ,", " : "), (",\n", ":\t"))),
    sort_keys=st.booleans(),
    around=st.tuples(*[st.text(" \t\r\n", max_size=3)] * 2),
)
def test_whitespace_and_key_order_keep_the_bundle_valid(
    signed: Signed,
    indent: int | str | None,
    separators: tuple[str, str],
    sort_keys: bool,
    around: tuple[str, str],
) -> None:
    text = json.dumps(
        json.loads(signed.data), indent=indent, separators=separators, sort_keys=sort_keys
    )
    assert _check((around[0] + text + around[1]).encode(), signed.policy) == signed.manifest


# --------------------------------------------------------------------------
# The fuzz target (tests/fuzz_bundle.py), briefly; run that file for longer.


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(fuzz_inputs())
def test_fuzz_bundle_parsing(data: bytes) -> None:
    fuzz_one(data)
