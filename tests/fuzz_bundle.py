"""Fuzz target for bundle parsing: hostile bytes may only raise modelsign errors.

:func:`fuzz_one` is the target. It parses ``data`` as a signature file
(:meth:`Bundle.from_bytes`), parses its DSSE payload as an OMS statement
(:meth:`Manifest.from_payload`, without the signature check) and verifies it
(:func:`check_bundle`) against a fixed trusted key; it then wraps ``data`` as the
payload of a bundle *validly signed* by that key, so that the statement checks
behind the signature are reached too (a fuzzer cannot forge a signature).
Subclasses of :class:`modelsign.errors.Error` are the expected outcome of
hostile input and are swallowed; anything else (``KeyError``, ``ValueError``,
``RecursionError``, an ``AssertionError`` from the round-trip oracle, ...)
propagates: it is a bug.

Run briefly by pytest (``test_fuzz_bundle_parsing`` in
``tests/test_hostile_bundles.py``, which ``make test`` runs), and longer by hand::

    .venv/bin/python tests/fuzz_bundle.py --examples 100000          # Hypothesis
    .venv/bin/python tests/fuzz_bundle.py --engine atheris -- -max_total_time=600
    .venv/bin/python tests/fuzz_bundle.py --write-corpus corpus/     # seeds for libFuzzer

The module also provides the JSON machinery the hostile suite builds its
inputs with: :class:`Obj` (a JSON object that may hold duplicate keys),
:class:`Raw` (verbatim JSON text such as ``NaN``) and :func:`encode`, and the
Hypothesis strategies :func:`byte_mutations`, :func:`json_mutations`,
:func:`statement_mutations` and :func:`fuzz_inputs`.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelsign._hashing import MemberDigest
from modelsign.bundle import (
    PAYLOAD_TYPE,
    Bundle,
    CertificateMaterial,
    Envelope,
    KeyMaterial,
    pae,
)
from modelsign.errors import Error
from modelsign.keys import PrivateKey
from modelsign.manifest import Manifest, Resource, Serialization
from modelsign.policy import Policy
from modelsign.verifying import check_bundle

__all__ = [
    "FUZZ_KEY",
    "POLICY",
    "SEEDS",
    "Obj",
    "Raw",
    "byte_mutations",
    "encode",
    "from_pairs",
    "fuzz_inputs",
    "fuzz_one",
    "json_mutations",
    "sign_payload",
    "statement_mutations",
    "to_pairs",
]

# A fixed key, so that seeds, and the crashes found from them, reproduce.
FUZZ_KEY = PrivateKey(ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32))), "fuzz key")
POLICY = Policy((FUZZ_KEY.public_key(),), "fuzz policy")


# --------------------------------------------------------------------------
# JSON that Python's json module does not write: duplicate keys, raw tokens.


class Raw(str):
    """JSON text written verbatim by :func:`encode` (``NaN``, ``1e400``, ...)."""

    __slots__ = ()


class Obj(list):  # type: ignore[type-arg]
    """A JSON object as a list of ``[key, value]`` pairs: keys may repeat."""

    __slots__ = ()


def to_pairs(value: Any) -> Any:
    """``value`` with every dict turned into an :class:`Obj`, recursively."""
    if isinstance(value, dict):
        return Obj([k, to_pairs(v)] for k, v in value.items())
    if isinstance(value, list) and not isinstance(value, Obj):
        return [to_pairs(v) for v in value]
    return value


def from_pairs(value: Any) -> Any:
    """The inverse of :func:`to_pairs` (the last of duplicate keys wins)."""
    if isinstance(value, Obj):
        return {k: from_pairs(v) for k, v in value}
    if isinstance(value, list):
        return [from_pairs(v) for v in value]
    return value


def encode(value: Any, indent: int | None = None, _level: int = 0) -> str:
    """Serialize plain JSON values, :class:`Obj` and :class:`Raw`."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, dict):
        value = to_pairs(value)
    if isinstance(value, list):
        if isinstance(value, Obj):
            items = [f"{json.dumps(k)}: {encode(v, indent, _level + 1)}" for k, v in value]
            open_, close = "{", "}"
        else:
            items = [encode(v, indent, _level + 1) for v in value]
            open_, close = "[", "]"
        if not items:
            return open_ + close
        if indent is None:
            return open_ + ", ".join(items) + close
        inner = "\n" + " " * (indent * (_level + 1))
        return open_ + inner + ("," + inner).join(items) + "\n" + " " * (indent * _level) + close
    return json.dumps(value)


# --------------------------------------------------------------------------
# Seeds: real bundles, validly signed by FUZZ_KEY.


def sign_payload(
    payload: bytes,
    key: PrivateKey = FUZZ_KEY,
    *,
    payload_type: str = PAYLOAD_TYPE,
    raw_bytes: bool = False,
) -> bytes:
    """A key-method bundle whose signature over ``payload`` is valid for ``key``."""
    public = key.public_key()
    material = KeyMaterial(raw_bytes=public.pem) if raw_bytes else KeyMaterial(public.key_id)
    signature = key.sign(pae(payload_type, payload))
    return Bundle(material, Envelope(payload, payload_type, signature)).to_bytes()


def _seed_manifest(hash_type: str) -> Manifest:
    length = 128 if hash_type == "blake2b" else 64
    zip_members = (
        MemberDigest("data.pkl", 1234, "1" * length, "stored"),
        MemberDigest("data/0", 64, "2" * length, "deflated"),
    )
    resources = (
        Resource("config.json", hash_type, "a" * length, 27),
        Resource("model.pt", hash_type, "b" * length, 2048, "zip", zip_members),
        Resource("tokenizer/vocab.txt", hash_type, "c" * length, 6),
    )
    return Manifest("model", resources, Serialization(hash_type, ignore_paths=(".git",)))


def _seed_certificate() -> bytes:
    """A self-signed certificate for FUZZ_KEY with a SAN (deterministic: Ed25519)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fuzz signer")])
    start = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(FUZZ_KEY.public_key().key)  # type: ignore[arg-type]
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name("fuzz@example.com")]), False)
        .sign(FUZZ_KEY.key, None)  # type: ignore[arg-type]
    )
    return cert.public_bytes(serialization.Encoding.DER)


SEED_PAYLOAD = _seed_manifest("sha256").to_payload()

#: Real bundles to mutate: two key-method bundles (key id; embedded PEM key and
#: blake2b) and a certificate-method one (its leaf's extensions are parsed lazily
#: by cryptography, which is where the certificate path's known bug is).
SEEDS: tuple[bytes, ...] = (
    sign_payload(SEED_PAYLOAD),
    sign_payload(_seed_manifest("blake2b").to_payload(), raw_bytes=True),
    Bundle(
        CertificateMaterial((_seed_certificate(),)),
        Envelope(SEED_PAYLOAD, PAYLOAD_TYPE, FUZZ_KEY.sign(pae(PAYLOAD_TYPE, SEED_PAYLOAD))),
    ).to_bytes(),
)


# --------------------------------------------------------------------------
# The target.


def _parse(data: bytes) -> None:
    try:
        bundle = Bundle.from_bytes(data, source="fuzz")
    except Error:
        return
    # Oracle: what parses is written back in modelsign's layout, and that
    # layout parses to the same bundle.
    again = Bundle.from_bytes(bundle.to_bytes(), source="fuzz (re-serialized)")
    assert again == bundle, (again, bundle)
    with contextlib.suppress(Error):
        Manifest.from_payload(bundle.envelope.payload)
    with contextlib.suppress(Error):
        check_bundle(bundle, POLICY, source="fuzz")


def fuzz_one(data: bytes) -> None:
    """Parse hostile ``data``; raise only if modelsign fails with a foreign error."""
    _parse(data)
    _parse(sign_payload(data))


# --------------------------------------------------------------------------
# Hypothesis strategies.

_INTERESTING_RAW = (
    "NaN",
    "Infinity",
    "-Infinity",
    "1e400",
    "-0",
    "1.0",
    "9" * 33,
    "-" + "9" * 33,
    "[" * 70 + "]" * 70,
    '"\\ud800"',
    '"\\u0000"',
)
_INTERESTING_STRINGS = (
    "",
    PAYLOAD_TYPE,
    "application/json",
    "application/vnd.dev.sigstore.bundle.v0.3+json",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "https://in-toto.io/Statement/v1",
    "https://in-toto.io/Statement/v0.1",
    "https://model_signing/signature/v1.0",
    "https://model_signing/Digests/v0.1",
    "sha256",
    "blake2b",
    "blake3",
    "md5",
    "sha1",
    "files",
    "shards",
    ".",
    "..",
    "../etc/passwd",
    "/abs",
    "a\\b",
    "NUL",
    "a" * 64,
    "A" * 64,
    FUZZ_KEY.public_key().key_id,
    base64.b64encode(b"\x00" * 64).decode(),
    "====",
    "not base64!",
)
_KEYS = st.sampled_from(
    (
        "mediaType",
        "verificationMaterial",
        "dsseEnvelope",
        "publicKey",
        "hint",
        "rawBytes",
        "tlogEntries",
        "x509CertificateChain",
        "certificates",
        "certificate",
        "payload",
        "payloadType",
        "signatures",
        "sig",
        "keyid",
        "_type",
        "subject",
        "name",
        "digest",
        "predicateType",
        "predicate",
        "resources",
        "serialization",
        "algorithm",
        "annotations",
        "size",
        "archive",
        "members",
        "method",
        "hash_type",
        "allow_symlinks",
        "ignore_paths",
        "shard_size",
    )
) | st.text(max_size=8)


def json_values() -> st.SearchStrategy[Any]:
    """Any JSON value, with a bias towards what a bundle or statement holds,
    plus tokens that strict parsing must refuse."""
    scalars = (
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=12)
        | st.sampled_from(_INTERESTING_STRINGS)
        | st.sampled_from(_INTERESTING_RAW).map(Raw)
    )
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=3)
            | st.lists(st.tuples(_KEYS, children).map(list), max_size=3).map(Obj)
        ),
        max_leaves=6,
    )


def _paths(value: Any, prefix: tuple[int, ...] = ()) -> list[tuple[int, ...]]:
    """Every position in a pairs tree, as indices (an Obj's index is its pair)."""
    out = [prefix]
    if isinstance(value, Obj):
        for i, (_, child) in enumerate(value):
            out.extend(_paths(child, (*prefix, i)))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            out.extend(_paths(child, (*prefix, i)))
    return out


def _get(tree: Any, path: tuple[int, ...]) -> Any:
    for i in path:
        tree = tree[i][1] if isinstance(tree, Obj) else tree[i]
    return tree


@st.composite
def _mutate_tree(draw: st.DrawFn, tree: Any) -> Any:
    """Apply 1-3 JSON-level mutations to a pairs tree (in place) and return it."""
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(tree)))
        op = draw(st.sampled_from(("replace", "drop", "duplicate", "rename", "insert")))
        if not path:
            if op == "replace":
                tree = draw(json_values())
            continue
        parent, index = _get(tree, path[:-1]), path[-1]
        if op == "replace":
            new = draw(json_values())
            if isinstance(parent, Obj):
                parent[index][1] = new
            else:
                parent[index] = new
        elif op == "drop":
            del parent[index]
        elif op == "duplicate" and isinstance(parent, Obj):
            key, value = parent[index]
            twin = value if draw(st.booleans()) else draw(json_values())
            parent.insert(index + draw(st.integers(0, 1)), [key, twin])
        elif op == "rename" and isinstance(parent, Obj):
            parent[index][0] = draw(_KEYS)
        elif op == "insert":
            target = _get(tree, path)
            if isinstance(target, Obj):
                target.insert(draw(st.integers(0, len(target))), [draw(_KEYS), draw(json_values())])
            elif isinstance(target, list):
                target.insert(draw(st.integers(0, len(target))), draw(json_values()))
    return tree


@st.composite
def byte_mutations(draw: st.DrawFn, seed: bytes) -> bytes:
    """``seed`` with 1-4 byte-level edits: flip a bit, insert, delete, truncate."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(("flip", "insert", "delete", "truncate")))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            chunk = draw(st.binary(min_size=1, max_size=8) | st.sampled_from(_BYTE_TOKENS))
            data[pos:pos] = chunk
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 16))]
        elif op == "truncate":
            del data[pos:]
    return bytes(data)


_BYTE_TOKENS = (b'"', b",", b"{", b"}", b"[", b"]", b":", b"\\", b"\x00", b"\xff", b"\xef\xbb\xbf")


@st.composite
def json_mutations(draw: st.DrawFn, seed: bytes) -> bytes:
    """``seed`` (a JSON bundle) with JSON-level mutations: a value replaced by
    another type, a key dropped, duplicated or renamed, a member inserted."""
    tree = draw(_mutate_tree(to_pairs(json.loads(seed))))
    return encode(tree, indent=draw(st.sampled_from((None, 0, 2)))).encode("utf-8")


@st.composite
def statement_mutations(draw: st.DrawFn, seed: bytes, key: PrivateKey | None = FUZZ_KEY) -> bytes:
    """``seed`` with JSON-level mutations of the in-toto statement inside its
    payload; then, unless ``key`` is None or Hypothesis says no, validly
    re-signed by ``key`` so that only the statement checks can refuse it."""
    bundle = Bundle.from_bytes(seed)
    statement = draw(_mutate_tree(to_pairs(json.loads(bundle.envelope.payload))))
    payload = encode(statement).encode("utf-8")
    if key is not None and draw(st.booleans()):
        return sign_payload(payload, key)
    doc = json.loads(seed)
    doc["dsseEnvelope"]["payload"] = base64.b64encode(payload).decode("ascii")
    return json.dumps(doc, indent=2).encode("utf-8")


def fuzz_inputs(
    seeds: Sequence[bytes] = SEEDS, key: PrivateKey | None = FUZZ_KEY
) -> st.SearchStrategy[bytes]:
    """Raw bytes, or real bundles mutated at the byte, JSON and statement level."""
    seed = st.sampled_from(tuple(seeds))
    return (
        st.binary(max_size=512)
        | seed
        | seed.flatmap(byte_mutations)
        | seed.flatmap(json_mutations)
        | seed.flatmap(lambda s: statement_mutations(s, key))
        | json_values().map(lambda v: encode(v).encode("utf-8"))
    )


# --------------------------------------------------------------------------
# Manual runs.


def run_hypothesis(examples: int, target: Callable[[bytes], None]) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(fuzz_inputs())
    def fuzz(data: bytes) -> None:
        target(data)

    fuzz()


def write_corpus(directory: Path, seeds: Sequence[bytes]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(seeds):
        (directory / f"seed-{i}.sig").write_bytes(seed)
        (directory / f"payload-{i}.json").write_bytes(Bundle.from_bytes(seed).envelope.payload)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=20_000, help="Hypothesis examples")
    parser.add_argument(
        "--engine",
        choices=("auto", "hypothesis", "atheris"),
        default="auto",
        help="auto: atheris when it is importable, else Hypothesis",
    )
    parser.add_argument("--write-corpus", type=Path, help="write the seed files there and exit")
    args, rest = parser.parse_known_args(argv)
    if args.write_corpus:
        write_corpus(args.write_corpus, SEEDS)
        return 0
    target = fuzz_one
    engine = args.engine
    if engine == "auto":
        try:
            import atheris
        except ImportError:
            engine = "hypothesis"
        else:
            engine = "atheris"
    if engine == "atheris":
        import atheris

        if hasattr(atheris, "instrument_all"):
            atheris.instrument_all()
        atheris.Setup([sys.argv[0], *[a for a in rest if a != "--"]], target)
        atheris.Fuzz()
        return 0
    run_hypothesis(args.examples, target)
    print(f"fuzz_bundle: {args.examples} examples, no foreign exception")
    return 0


if __name__ == "__main__":
    sys.exit(main())
