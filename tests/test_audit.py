"""`modelsign audit`: a store of models built here, each audited to its exact
verdict and reason, whatever the others do; the walk's rules; the text and
JSON reports; lineage across the store."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

import modelsign
from modelsign import keys
from modelsign._audit import (
    AuditRecord,
    DependencyRow,
    ProvenanceSummary,
    Spool,
    audit,
    find_models,
    resolve_lineage,
)
from modelsign.manifest import Manifest, Resource, Serialization
from tests.conftest import flip_byte, write_torch_model
from tests.fuzz_bundle import sign_payload
from tests.test_json_output import validate

CLI = [sys.executable, "-m", "modelsign"]


def cli(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "audit", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )


def _folder(path: Path, seed: int = 0) -> Path:
    (path / "tokenizer").mkdir(parents=True)
    write_torch_model(path / "model.pt", seed)
    (path / "config.json").write_text(json.dumps({"seed": seed}))
    (path / "tokenizer" / "vocab.txt").write_text("a\nb\n")
    return path


def hf_snapshot(cache: Path, repo: str, revision: str, source: Path | None) -> Path:
    """``cache/models--ORG--NAME/snapshots/REV``: links into the repository's
    ``blobs/``, as huggingface_hub writes them; ``source``'s files (with its
    model.sig when it is signed)."""
    folder = cache / ("models--" + repo.replace("/", "--"))
    blobs, snapshot = folder / "blobs", folder / "snapshots" / revision
    blobs.mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True)
    (folder / "refs").mkdir(exist_ok=True)
    (folder / "refs" / "main").write_text(revision)
    assert source is not None
    for file in sorted(source.iterdir()):
        if file.is_file():
            digest = hashlib.sha256(file.read_bytes()).hexdigest()
            shutil.copyfile(file, blobs / digest)
            (snapshot / file.name).symlink_to(f"../../blobs/{digest}")
    return snapshot


class Store:
    """A dozen models, each with the verdict and error class an audit under
    ``trusted`` must give it."""

    def __init__(self, root: Path, trusted: Path, other: Path) -> None:
        self.root = root
        self.expected: dict[str, tuple[str, str | None]] = {}
        key, other_key = keys.load_private_key(trusted), keys.load_private_key(other)

        def signed(name: str, verdict: str, error: str | None, seed: int = 0) -> Path:
            model = _folder(root / name, seed)
            modelsign.sign(model, key)
            self.expected[str(model)] = (verdict, error)
            return model

        signed("good", "verified", None)
        signed("good-v2", "verified", None, seed=2)
        flip_byte(signed("tampered", "rejected", "DigestMismatchError") / "model.pt")
        extra = signed("extra-file", "rejected", "ExtraFileError")
        (extra / "backdoor.py").write_text("import os")
        missing = signed("missing-file", "rejected", "MissingFileError")
        (missing / "tokenizer" / "vocab.txt").unlink()
        untrusted = _folder(root / "untrusted")
        modelsign.sign(untrusted, other_key)
        self.expected[str(untrusted)] = ("rejected", "UntrustedSignerError")
        garbage = _folder(root / "garbage-bundle")
        (garbage / "model.sig").write_bytes(b'{"mediaType": 1}')
        self.expected[str(garbage)] = ("rejected", "MalformedBundleError")
        unsigned = _folder(root / "unsigned")
        self.expected[str(unsigned)] = ("unsigned", "MissingSignatureError")
        # Single files: signed, and a bundle whose file is gone.
        single = root / "files" / "classifier.pt"
        single.parent.mkdir()
        write_torch_model(single, 5)
        modelsign.sign(single, key, hash_type="blake2b")
        self.expected[str(single)] = ("verified", None)
        gone = root / "files" / "deleted.pt"
        write_torch_model(gone, 6)
        modelsign.sign(gone, key)
        gone.unlink()
        self.expected[str(gone)] = ("error", "UsageError")
        # A Hugging Face cache: a signed snapshot and an unsigned one.
        source = _folder(root.parent / "hf-source", seed=7)
        shutil.rmtree(source / "tokenizer")
        modelsign.sign(source, key)
        signed_snapshot = hf_snapshot(root / "hub", "org/tiny", "a1b2c3d4e5f6a7b8", source)
        self.expected[str(signed_snapshot)] = ("verified", None)
        (source / "model.sig").unlink()
        plain = hf_snapshot(root / "hub", "org/plain", "0123456789abcdef", source)
        self.expected[str(plain)] = ("unsigned", "MissingSignatureError")
        # A link to a signed model: reported, not followed.
        (root / "linked").symlink_to(root / "good")
        self.expected[str(root / "linked")] = ("rejected", "UnsafeModelError")


@pytest.fixture
def store(tmp_path: Path, keypair: tuple[Path, Path], other_keypair: tuple[Path, Path]) -> Store:
    return Store(tmp_path / "store", keypair[0], other_keypair[0])


def test_every_model_of_the_store_gets_its_exact_verdict(
    store: Store, keypair: tuple[Path, Path]
) -> None:
    policy = modelsign.Policy.of([keypair[1]])
    with Spool() as spool:
        report = audit(find_models([store.root]), policy, spool)
        files = list(spool.read())
    got = {r.path: (r.verdict, r.error_type) for r in report.records}
    assert got == store.expected
    assert len(report.records) == 13
    assert report.counts() == {"verified": 4, "rejected": 6, "unsigned": 2, "error": 1}
    assert not report.passed
    by_path = {r.path: (r, f) for r, f in zip(report.records, files, strict=True)}
    good, good_files = by_path[str(store.root / "good")]
    verified = modelsign.verify(store.root / "good", policy)
    assert (good.root_digest, good.claims_only) == (verified.root_digest, False)
    assert [f.name for f in good_files] == ["config.json", "model.pt", "tokenizer/vocab.txt"]
    assert good.signers[0].who == keys.load_public_key(keypair[1]).key_id
    assert good.signers[0].verified
    # A rejected model still shows what its bundle claims, marked as claims.
    tampered, tampered_files = by_path[str(store.root / "tampered")]
    assert tampered.claims_only
    assert (
        tampered.root_digest
        == modelsign.inspect_bundle(store.root / "tampered").manifest.root_digest
    )
    assert not tampered.signers[0].verified
    assert len(tampered_files) == 3
    assert tampered.reason is not None
    assert f"model {store.root / 'tampered'} does not match its signature" in tampered.reason
    assert "model.pt: digest mismatch: expected " in tampered.reason
    snapshot = next(r for r in report.records if r.kind == "hf-snapshot" and r.passed)
    assert (snapshot.version, snapshot.model_name) == ("a1b2c3d4e5f6a7b8", "hf-source")
    gone = store.root / "files" / "deleted.pt"
    deleted = by_path[str(gone)][0]
    assert deleted.reason == f"{gone}.sig: the model it signs, {gone}, is missing"
    assert deleted.claims_only  # who signed it and what, as claimed
    unsigned = by_path[str(store.root / "unsigned")][0]
    assert unsigned.reason == (
        f"{store.root / 'unsigned'}: no bundle covers 1 model file here (model.pt): "
        "no model.sig in the folder, no FILE.sig beside them"
    )


def test_cli_json_and_exit_code(store: Store, keypair: tuple[Path, Path]) -> None:
    result = cli(store.root, "--key", keypair[1], "--json")
    assert result.returncode == 1, result.stderr
    doc = json.loads(result.stdout)
    validate(doc, "audit.schema.json")
    assert {m["path"]: (m["verdict"], (m["error"] or {}).get("type")) for m in doc["models"]} == (
        store.expected
    )
    assert doc["summary"] == {"total": 13, "verified": 4, "rejected": 6, "unsigned": 2, "error": 1}
    assert "Traceback" not in result.stderr
    # Only the good models: exit 0; -q prints nothing.
    result = cli(store.root / "good", store.root / "files" / "classifier.pt", "--key", keypair[1])
    assert result.returncode == 0, result.stdout + result.stderr
    assert cli(store.root / "good", "--key", keypair[1], "-q").stdout == ""
    # -q with failures: nothing on standard output, the reasons on standard error.
    quiet = cli(store.root, "--key", keypair[1], "-q")
    assert (quiet.returncode, quiet.stdout) == (1, "")
    assert f"  rejected  {store.root / 'tampered'}  (DigestMismatchError)" in quiet.stderr
    assert "VERDICT" not in quiet.stderr


def test_cli_text_table_and_reasons(store: Store, keypair: tuple[Path, Path]) -> None:
    result = cli("store", "--key", keypair[1], cwd=store.root.parent)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "VERDICT", "MODEL", "VERSION", "ROOT", "DIGEST", "SIGNERS", "THRESHOLD", "PROVENANCE",
    ]  # fmt: skip
    rows = {line.split()[1]: line.split()[0] for line in lines[1:14]}
    assert len(rows) == len(store.expected)
    for path, (verdict, _) in store.expected.items():
        relative = os.path.relpath(path, store.root.parent)
        # A long path is cut at its start ("…snapshots/REV").
        (shown,) = [p for p in rows if p == relative or (p[0] == "…" and relative.endswith(p[1:]))]
        assert rows[shown] == verdict, relative
    out = result.stdout
    assert "* claimed by the bundle, not verified" in out
    assert "  rejected  store/untrusted  (UntrustedSignerError)" in out
    assert "which is not trusted (trusted key ids: " in out
    assert "    what to do: " in out
    assert out.rstrip().endswith("13 model(s): 4 verified, 6 rejected, 2 unsigned, 1 error")


def test_usage_errors_exit_2(tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "README.md").write_text("no model here")
    cases = [
        ((tmp_path / "absent", "--key", keypair[1]), "absent: no such file or folder"),
        ((empty, "--key", keypair[1]), f"no model found under {empty}"),
        ((empty,), "give --key"),
        ((empty, "--policy", tmp_path / "none.toml"), "none.toml"),
    ]
    for args, message in cases:
        result = cli(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr
        assert "Traceback" not in result.stderr
    result = cli(tmp_path / "absent", "--key", keypair[1], "--json")
    validate(json.loads(result.stdout), "audit.schema.json")


def test_walk_rules(tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    root = tmp_path / "store"
    model = _folder(root / "a")
    modelsign.sign(model, keypair[0])
    # Inside a signed folder nothing else is a model, not even a signed file.
    (model / "inner.pt").write_bytes(b"x")
    modelsign.sign(model / "inner.pt", keypair[0])
    (model / "model.sig.d").mkdir()
    # Provenance bundles, co-signature folders, .git: never models.
    loose = root / "b" / "w.safetensors"
    loose.parent.mkdir()
    loose.write_bytes(b"w")
    modelsign.sign(loose, keypair[0])
    (root / "b" / "w.safetensors.provenance.sig").write_text("{}")
    (root / "b" / "w.safetensors.sig.d").mkdir()
    (root / "b" / "notes.txt").write_text("not a model file")
    (root / ".git").mkdir()
    (root / ".git" / "objects.pack").write_bytes(b"x")
    (root / "datasets--org--data" / "snapshots" / "r1").mkdir(parents=True)
    (root / "datasets--org--data" / "snapshots" / "r1" / "d.bin").write_bytes(b"d")
    found = [(c.path, c.kind, c.unsigned) for c in find_models([root])]
    assert found == [(model, "folder", ()), (loose, "file", ())]
    # A path given twice, and a bundle given for its model, are one model.
    again = list(find_models([model, model / "model.sig", loose, Path(f"{loose}.sig")]))
    assert [(c.path, c.kind) for c in again] == [(model, "folder"), (loose, "file")]
    # A model file given alone, with no bundle: unsigned.
    (root / "b" / "x.pt").write_bytes(b"x")
    (only,) = find_models([root / "b" / "x.pt"])
    assert (only.path, only.kind, only.unsigned) == (root / "b", "unsigned", ("x.pt",))


def _record(
    path: str, digest: int, verdict: str = "verified", base: int | None = None
) -> AuditRecord:
    prov = None
    if base is not None:
        prov = ProvenanceSummary(
            "verified", base_model=DependencyRow("base", f"sha256:{base:064x}")
        )
    return AuditRecord(path, "folder", verdict, root_digest=f"{digest:064x}", provenance=prov)  # type: ignore[arg-type]


def test_lineage_rejects_fine_tunes_of_a_rejected_base_in_any_order() -> None:
    records = [
        _record("ft-of-ft", 3, base=2),  # listed before its base
        _record("fine-tune", 2, base=1),
        replace(
            _record("base", 1, "rejected"),
            error_type="DigestMismatchError",
            reason="model base does not match\n  w.bin",
        ),
        _record("sibling", 4, base=5),  # its base verified (a copy of it too)
        _record("other-base", 5),
        replace(_record("other-base-copy", 5, "rejected"), error_type="DigestMismatchError"),
        _record("external", 6, base=99),  # its base is not in this audit
    ]
    result = {r.path: (r.verdict, r.error_type) for r in resolve_lineage(records)}
    assert result == {
        "ft-of-ft": ("rejected", "LineageError"),
        "fine-tune": ("rejected", "LineageError"),
        "base": ("rejected", "DigestMismatchError"),
        "sibling": ("verified", None),
        "other-base": ("verified", None),
        "other-base-copy": ("rejected", "DigestMismatchError"),
        "external": ("verified", None),
    }
    fine_tune = next(r for r in records if r.path == "fine-tune")
    assert fine_tune.reason == (
        f"fine-tune: its base model base (sha256:{1:064x}) was rejected in this audit "
        "(DigestMismatchError: model base does not match)"
    )
    # Unverified provenance does not condemn (nor vouch for) anything.
    claimed = replace(
        _record("claimed", 7),
        provenance=ProvenanceSummary(
            "unverified", base_model=DependencyRow("b", f"sha256:{1:064x}")
        ),
    )
    assert resolve_lineage([claimed, records[2]])[0].verdict == "verified"


def test_hostile_names_in_bundles_are_shown_terminal_safe(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    model = tmp_path / "store" / "m"
    model.mkdir(parents=True)
    escape = "\x1b]0;owned\x07\x1b[2J"
    resources = (Resource(f"w{escape}.bin", "sha256", "a" * 64, 3),)
    manifest = Manifest(f"name{escape}", resources, Serialization())
    (model / "model.sig").write_bytes(
        sign_payload(manifest.to_payload(), keys.load_private_key(keypair[0]))
    )
    (model / f"x{escape}.pt").write_bytes(b"x")
    result = cli(tmp_path / "store", "--key", keypair[1])
    assert result.returncode == 1
    assert "\x1b" not in result.stdout
    assert "\x07" not in result.stdout
    assert "(ModelMismatchError)" in result.stdout
    doc = json.loads(cli(tmp_path / "store", "--key", keypair[1], "--json").stdout)
    validate(doc, "audit.schema.json")
    assert doc["models"][0]["model_name"] == f"name{escape}"


# Provenance (modelsign.provenance): reported for every model; required by a
# policy, it decides the verdict; lineage across the store.


class ProvenanceStore:
    """Models with signed provenance: a base trained on a dataset, its
    fine-tune, a base that was tampered after a fine-tune recorded it, that
    fine-tune, a model without provenance, one whose provenance is another
    model's, and one whose provenance an untrusted key signed."""

    def __init__(self, root: Path, key: keys.PrivateKey, other: keys.PrivateKey) -> None:
        from modelsign.provenance import attest

        self.root = root
        dataset = root.parent / "dataset"
        dataset.mkdir()
        (dataset / "train.jsonl").write_text('{"text": "a"}\n')

        def model(name: str, seed: int, **attested: object) -> Path:
            path = _folder(root / name, seed)
            modelsign.sign(path, key)
            if attested:
                signer = attested.pop("signer", key)
                attest(path, signer, environ={}, entry_point="train.py", **attested)  # type: ignore[arg-type]
            return path

        self.base = model("base", 1, datasets=[dataset], params={"lr": 0.001})
        self.fine_tune = model("fine-tune", 2, datasets=[dataset], base_model=self.base)
        self.bad_base = model("bad-base", 3, datasets=[dataset])
        self.bad_fine_tune = model("bad-fine-tune", 4, base_model=self.bad_base)
        flip_byte(self.bad_base / "model.pt")  # after the fine-tune recorded its digest
        self.bare = model("no-provenance", 5)
        self.mismatched = model("mismatched", 6)
        shutil.copyfile(
            self.base / "model.provenance.sig", self.mismatched / "model.provenance.sig"
        )
        self.untrusted = model("untrusted-provenance", 7, signer=other)


@pytest.fixture
def provenance_store(
    tmp_path: Path, keypair: tuple[Path, Path], other_keypair: tuple[Path, Path]
) -> ProvenanceStore:
    key, other = keys.load_private_key(keypair[0]), keys.load_private_key(other_keypair[0])
    return ProvenanceStore(tmp_path / "store", key, other)


def _audited(store: Path, policy: modelsign.Policy) -> dict[str, AuditRecord]:
    with Spool() as spool:
        report = audit(find_models([store]), policy, spool)
    return {Path(r.path).name: r for r in report.records}


def test_provenance_reported_and_lineage_across_the_store(
    provenance_store: ProvenanceStore, keypair: tuple[Path, Path]
) -> None:
    s = provenance_store
    records = _audited(s.root, modelsign.Policy.of([keypair[1]]))
    got = {
        name: (r.verdict, r.error_type, r.provenance.status if r.provenance else None)
        for name, r in records.items()
    }
    assert got == {
        "base": ("verified", None, "verified"),
        "fine-tune": ("verified", None, "verified"),
        "bad-base": ("rejected", "DigestMismatchError", "unverified"),
        "bad-fine-tune": ("rejected", "LineageError", "verified"),
        "no-provenance": ("verified", None, "missing"),
        "mismatched": ("verified", None, "invalid"),
        "untrusted-provenance": ("verified", None, "unverified"),
    }
    base, fine_tune = records["base"], records["fine-tune"]
    assert base.provenance is not None
    assert fine_tune.provenance is not None
    assert fine_tune.provenance.base_model is not None
    assert fine_tune.provenance.base_model.digest == f"sha256:{base.root_digest}"
    assert [d.name for d in base.provenance.datasets] == ["dataset"]
    assert base.provenance.entry_point == "train.py"
    assert base.provenance.parameters == '{"lr": 0.001}'
    assert any(f.startswith("torch ") for f in base.provenance.frameworks)
    assert base.provenance.signer is not None
    assert base.provenance.signer.verified
    bad = records["bad-fine-tune"]
    assert bad.reason == (
        f"{s.bad_fine_tune}: its base model {s.bad_base} (sha256:"
        f"{records['bad-base'].root_digest}) was rejected in this audit (DigestMismatchError: "
        f"model {s.bad_base} does not match its signature (1 difference))"
    )
    mismatched = records["mismatched"]
    assert mismatched.provenance is not None
    assert mismatched.provenance.error is not None
    assert mismatched.provenance.error.startswith("ProvenanceMismatchError: ")
    assert mismatched.warnings == (f"the provenance is invalid: {mismatched.provenance.error}",)
    untrusted = records["untrusted-provenance"].provenance
    assert untrusted is not None
    assert untrusted.error is not None
    assert untrusted.error.startswith("UntrustedSignerError: ")


def test_a_policy_that_requires_provenance_decides_the_verdicts(
    provenance_store: ProvenanceStore, keypair: tuple[Path, Path], tmp_path: Path
) -> None:
    s = provenance_store
    policy = tmp_path / "policy.toml"
    policy.write_text(
        f'[trust]\nkeys = ["{keypair[1]}"]\n[provenance]\nrequire = true\nlineage = true\n'
    )
    result = cli(s.root, "--policy", policy, "--json")
    assert result.returncode == 1, result.stderr
    doc = json.loads(result.stdout)
    validate(doc, "audit.schema.json")
    got = {
        Path(m["path"]).name: (m["verdict"], (m["error"] or {}).get("type")) for m in doc["models"]
    }
    assert got == {
        "base": ("verified", None),
        "fine-tune": ("verified", None),  # its base verifies (lineage, by verify)
        "bad-base": ("rejected", "DigestMismatchError"),
        "bad-fine-tune": ("rejected", "LineageError"),  # by verify's lineage rule now
        "no-provenance": ("rejected", "MissingProvenanceError"),
        "mismatched": ("rejected", "ProvenanceMismatchError"),
        "untrusted-provenance": ("rejected", "UntrustedSignerError"),
    }
    by_name = {Path(m["path"]).name: m for m in doc["models"]}
    assert by_name["mismatched"]["provenance"]["status"] == "invalid"
    assert by_name["no-provenance"]["provenance"]["status"] == "missing"
    assert by_name["base"]["provenance"]["builder"].startswith("urn:modelsign:local:")


def test_a_bug_on_one_model_does_not_end_the_audit(
    tmp_path: Path, keypair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelsign._audit import _auditing

    first, second = _folder(tmp_path / "s" / "a"), _folder(tmp_path / "s" / "b", 1)
    for model in (first, second):
        modelsign.sign(model, keypair[0])
    real = _auditing.verify

    def broken(model: Path, *args: object, **kwargs: object) -> object:
        if Path(model) == first:
            raise RuntimeError("boom")
        return real(model, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_auditing, "verify", broken)
    monkeypatch.delenv("MODELSIGN_DEBUG", raising=False)
    with Spool() as spool:
        report = audit(find_models([tmp_path / "s"]), modelsign.Policy.of([keypair[1]]), spool)
    (a, b) = report.records
    assert (a.verdict, a.error_type, b.verdict) == ("error", "InternalError", "verified")
    assert a.reason == (
        f"{first}: internal error: RuntimeError: boom (a bug: please report it; "
        "MODELSIGN_DEBUG=1 raises it)"
    )
    monkeypatch.setenv("MODELSIGN_DEBUG", "1")
    with Spool() as spool, pytest.raises(RuntimeError, match="boom"):
        audit(find_models([tmp_path / "s"]), modelsign.Policy.of([keypair[1]]), spool)


# Release trust (issue 14): co-signatures, thresholds, the signed version.


def test_thresholds_co_signatures_and_versions_to_exact_verdicts(tmp_path: Path) -> None:
    a, b, c = (keys.generate("ed25519") for _ in range(3))
    for name, key in (("a", a), ("b", b), ("c", c)):
        keys.write_keypair(key, tmp_path / name, None)
    policy = tmp_path / "policy.toml"
    policy.write_text(
        '[[trust.keys]]\npath = "a.pub"\nname = "alice"\n'
        '[[trust.keys]]\npath = "b.pub"\nname = "bob"\n'
        "[[trust.threshold]]\nrequire = 2\n"
    )
    trust = modelsign.Policy.of([tmp_path / "a.pub", tmp_path / "b.pub"])
    store = tmp_path / "store"
    both = _folder(store / "two-signers")
    modelsign.sign(both, a, model_name="acme/bert", model_version="1.2.0")
    modelsign.cosign(both, b, trust)
    one = _folder(store / "one-signer", 1)
    modelsign.sign(one, a, model_name="acme/bert", model_version="1.3.0")
    stranger = _folder(store / "cosigned-by-a-stranger", 2)
    modelsign.sign(stranger, a)
    modelsign.cosign(stranger, c, modelsign.Policy.of([tmp_path / "a.pub", tmp_path / "c.pub"]))
    result = cli(store, "--policy", policy, "--json")
    assert result.returncode == 1, result.stderr
    doc = json.loads(result.stdout)
    validate(doc, "audit.schema.json")
    models = {Path(m["path"]).name: m for m in doc["models"]}
    got = {n: (m["verdict"], (m["error"] or {}).get("type")) for n, m in models.items()}
    assert got == {
        "two-signers": ("verified", None),
        "one-signer": ("rejected", "ThresholdNotMetError"),
        "cosigned-by-a-stranger": ("rejected", "ThresholdNotMetError"),
    }
    two = models["two-signers"]
    assert (two["model_name"], two["version"]) == ("acme/bert", "1.2.0")
    threshold = two["threshold"]
    assert (threshold["required"], threshold["counted"], threshold["met"]) == (2, 2, True)
    assert threshold["rule"].endswith(": 2 of 2")
    assert [(s["who"], s["bundle"], s["counted"]) for s in two["signers"]] == [
        (a.public_key().key_id, "model.sig", True),
        (b.public_key().key_id, f"model.sig.d/key-{b.public_key().key_id[:16]}.sig", True),
    ]
    assert all(s["verified"] for s in two["signers"])
    lone = models["one-signer"]
    assert (lone["version"], lone["claims_only"]) == ("1.3.0", True)
    assert (lone["threshold"]["counted"], lone["threshold"]["required"]) == (1, 2)
    assert lone["threshold"]["met"] is False
    odd = models["cosigned-by-a-stranger"]
    (counted, refused) = odd["signers"]
    assert (counted["who"], counted["counted"]) == (a.public_key().key_id, True)
    assert (refused["who"], refused["counted"], refused["verified"]) == (
        c.public_key().key_id,
        False,
        False,
    )
    assert refused["note"].startswith("UntrustedSignerError: ")
    text = cli(store, "--policy", policy).stdout
    assert "1 of 2 NOT met" in text
    assert "2 of 2 met" in text
