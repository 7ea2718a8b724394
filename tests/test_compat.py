"""Interoperability with bundles the reference tool wrote, and the OMS spec's vectors.

The data is read from ../shared/testdata (never copied here); each test skips
with a reason when that folder is absent.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import modelsign
from modelsign.bundle import Bundle
from modelsign.errors import DigestMismatchError, MalformedBundleError, UntrustedSignerError
from modelsign.manifest import Manifest
from tests.conftest import flip_byte, shared

# (folder, model path inside it, verify-time ignore paths)
ELLIPTIC = [
    ("v0.3.1-elliptic-key", "signme-1", ()),
    ("v1.0.0-elliptic-key", "signme-1", ()),
    ("v1.0.1-elliptic-key", ".", ("ignore-me",)),
    ("v1.1.0-elliptic-key", ".", ("ignore-me",)),
]


@pytest.mark.parametrize(("folder", "model", "ignore"), ELLIPTIC, ids=[e[0] for e in ELLIPTIC])
def test_reference_elliptic_key_bundles_verify(
    folder: str, model: str, ignore: tuple[str, ...]
) -> None:
    base = shared("oms-compat", folder)
    pub = shared("oms-compat", "keys", "signing-key-pub.pem")
    result = modelsign.verify(
        base / model, [pub], signature=base / "model.sig", ignore_paths=ignore
    )
    assert result.signed_by.method == "key"
    assert result.signed_by.algorithm == "ecdsa-p384"
    assert "signme-1" in result.files or result.files == (".",)


@pytest.mark.parametrize(("folder", "model", "ignore"), ELLIPTIC, ids=[e[0] for e in ELLIPTIC])
def test_reference_elliptic_key_bundles_reject_one_changed_byte(
    tmp_path: Path, folder: str, model: str, ignore: tuple[str, ...]
) -> None:
    copy = tmp_path / folder
    shutil.copytree(shared("oms-compat", folder), copy)
    pub = shared("oms-compat", "keys", "signing-key-pub.pem")
    flip_byte(copy / "signme-1", 0)
    with pytest.raises(DigestMismatchError, match="expected .*, actual"):
        modelsign.verify(copy / model, [pub], signature=copy / "model.sig", ignore_paths=ignore)


def test_reference_bundle_needs_the_reference_key(
    other_keypair: tuple[Path, Path],
) -> None:
    base = shared("oms-compat", "v1.1.0-elliptic-key")
    with pytest.raises(UntrustedSignerError, match="e8450dec4eb99dae"):
        modelsign.verify(base, [other_keypair[1]], ignore_paths=["ignore-me"])


def test_reference_certificate_bundle_is_not_trusted_by_a_key(keypair: tuple[Path, Path]) -> None:
    base = shared("oms-compat", "v1.1.0-certificate")
    with pytest.raises(UntrustedSignerError, match="no CA is trusted"):
        modelsign.verify(base, [keypair[1]], ignore_paths=["ignore-me"])


SPEC = "oms-spec", "test-vectors", "v1.0"


@pytest.mark.parametrize(
    "name",
    [
        "invalid/empty.bundle.json",
        "invalid/missing-envelope.bundle.json",
        "invalid/missing-tlog-entries.bundle.json",
        "invalid/missing-verification-material.bundle.json",
        "invalid-payload/wrong-predicate.bundle.json",
    ],
)
def test_spec_invalid_vectors_are_malformed(name: str) -> None:
    data = shared(*SPEC, name).read_bytes()

    def parse() -> None:
        bundle = Bundle.from_bytes(data, source=name)
        Manifest.from_payload(bundle.envelope.payload)

    with pytest.raises(MalformedBundleError):
        parse()


def test_every_spec_invalid_vector_is_covered() -> None:
    root = shared(*SPEC)
    found = {p.relative_to(root).as_posix() for p in root.glob("invalid*/*.json")}
    assert found == {
        "invalid/empty.bundle.json",
        "invalid/missing-envelope.bundle.json",
        "invalid/missing-tlog-entries.bundle.json",
        "invalid/missing-verification-material.bundle.json",
        "invalid-payload/wrong-predicate.bundle.json",
    }


@pytest.mark.parametrize(
    ("name", "method"),
    [
        ("valid/key.bundle.json", "key"),
        ("valid/certificate.bundle.json", "certificate"),
        ("valid/sigstore.bundle.json", "sigstore"),
    ],
)
def test_spec_valid_vectors_parse(name: str, method: str) -> None:
    bundle = Bundle.from_bytes(shared(*SPEC, name).read_bytes(), source=name)
    assert bundle.method == method
    manifest = Manifest.from_payload(bundle.envelope.payload)
    assert manifest.resources
