"""The public API's surface: what `import modelsign` offers, errors that
survive pickling with their fields, signers and trust as objects."""

from __future__ import annotations

import concurrent.futures
import inspect
import multiprocessing
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

import modelsign
from modelsign import errors
from modelsign.errors import ConfigError, Error, KeyLoadError, Mismatch, UsageError
from modelsign.policy import CertificateAuthority, Policy, SigstoreIdentity
from modelsign.signing import CertificateSigner, KeySigner, SigstoreSigner

# ------------------------------------------------------------------ surface


def test_every_public_name_is_importable_from_modelsign() -> None:
    for name in modelsign.__all__:
        assert getattr(modelsign, name) is not None, name
    assert set(modelsign.__all__) == {*modelsign._LAZY, "__version__"}


def test_dir_lists_public_names_only() -> None:
    listed = dir(modelsign)
    assert "sign" in listed
    assert "hooks" in listed
    for internal in ("Any", "TYPE_CHECKING", "importlib", "_LAZY", "_autoload", "guard"):
        assert internal not in listed


def test_hasattr_on_a_private_module_imports_nothing() -> None:
    """Issue 11: hasattr(modelsign, "_autoload") imported _autoload, which
    (with no MODELSIGN_POLICY) ended the process with exit code 2."""
    code = (
        "import sys, modelsign\n"
        "assert not hasattr(modelsign, '_autoload')\n"
        "assert not hasattr(modelsign, 'cli')\n"
        "assert 'modelsign._autoload' not in sys.modules\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin"},  # no MODELSIGN_POLICY: importing _autoload exits 2
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


@pytest.mark.parametrize("function", [modelsign.sign, modelsign.verify, modelsign.cosign])
def test_public_functions_document_args_returns_raises(function: object) -> None:
    doc = inspect.getdoc(function) or ""
    for section in ("Args:", "Returns:", "Raises:"):
        assert section in doc, (function, section)


# ------------------------------------------------------------------ errors


def _all_error_classes() -> list[type[Error]]:
    return [
        getattr(errors, name)
        for name in errors.__all__
        if isinstance(getattr(errors, name), type) and issubclass(getattr(errors, name), Error)
    ]


def _example(cls: type[Error]) -> Error:
    if issubclass(cls, errors.LoadRefusedError):
        return cls(
            "no bundle lists it",
            target="/srv/m.pt",
            policy="p.toml, mode enforce",
            expected="a",
            actual="b",
        )
    if issubclass(cls, errors.ModelMismatchError):
        return cls(
            "/srv/model",
            (
                Mismatch("digest", "w.bin", expected="aa", actual="bb", shard=(0, 16)),
                Mismatch("size", "x.bin", expected_size=3, actual_size=4),
                Mismatch("extra", "y"),
            ),
        )
    if issubclass(cls, errors.PassphraseError):
        return cls("k.key: the key is encrypted ({param})", needed=True, parameter="passphrase")
    if issubclass(cls, UsageError):
        return cls("{param}3: too small", parameter="shard_size")
    return cls("something is wrong")


@pytest.mark.parametrize("cls", _all_error_classes(), ids=lambda c: c.__name__)
def test_every_error_pickles_with_its_fields(cls: type[Error]) -> None:
    error = _example(cls)
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is cls
    assert str(again) == str(error)
    assert vars(again) == vars(error)
    assert again.to_json() == error.to_json()


def _refuse_in_a_worker(path: str) -> None:
    from modelsign import hooks

    with hooks.enforce(Policy.of([path])):
        pickle.loads(pickle.dumps(Record()))


class Record:
    pass


def test_a_refusal_crosses_a_process_pool_intact(keypair: tuple[Path, Path]) -> None:
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        future = pool.submit(_refuse_in_a_worker, str(keypair[1]))
        with pytest.raises(errors.ForbiddenGlobalError) as info:
            future.result(timeout=60)
    assert info.value.actual == f"{__name__}.Record"
    assert "is not allowed" in str(info.value)


def test_usage_errors_name_the_python_parameter_and_render_for_flags() -> None:
    error = UsageError("{param}3: too small", parameter="shard_size")
    assert str(error) == "shard_size=3: too small"
    assert error.render("--shard-size ") == "--shard-size 3: too small"


# -------------------------------------------------------- signers and trust


def test_sign_takes_a_signer_object_or_a_key(tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    model = tmp_path / "m"
    model.mkdir()
    (model / "w.bin").write_bytes(b"w")
    key = modelsign.load_private_key(keypair[0])
    for signer in (KeySigner(key), KeySigner.from_file(keypair[0]), key, keypair[0]):
        result = modelsign.sign(model, signer)
        assert result.signed_by.method == "key"
        assert result.signed_by.key_id == key.public_key().key_id
    assert repr(result).startswith(f"SignedModel({str(model / 'model.sig')!r}, key ")
    assert ", 1 file, root " in repr(result)
    assert "manifest" not in repr(result)
    with pytest.raises(UsageError, match="signer= takes a KeySigner") as info:
        modelsign.sign(model, 42)  # type: ignore[arg-type]
    assert info.value.parameter == "signer"


def test_an_encrypted_key_file_says_which_argument_takes_the_passphrase(tmp_path: Path) -> None:
    key = modelsign.generate()
    from modelsign.keys import write_keypair

    private, _ = write_keypair(key, tmp_path / "k", b"pw")
    with pytest.raises(KeyLoadError, match="give its passphrase with passphrase=") as info:
        modelsign.sign(tmp_path, private)
    assert info.value.render("--passphrase-file").endswith("with --passphrase-file")
    assert KeySigner.from_file(private, b"pw").key.public_key() == key.public_key()


def test_verify_takes_a_policy_or_anchors(tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    model = tmp_path / "m"
    model.mkdir()
    (model / "w.bin").write_bytes(b"w")
    modelsign.sign(model, keypair[0])
    public = modelsign.load_public_key(keypair[1])
    for trust in (public, [public], [keypair[1]], Policy.of([public])):
        result = modelsign.verify(model, trust)  # type: ignore[arg-type]
        assert result.signed_by.key_id == public.key_id
    assert result.to_json()["signed_by"] == {
        "method": "key",
        "key_id": public.key_id,
        "algorithm": public.algorithm,
    }
    with pytest.raises(ConfigError, match="holds a int, which is not a trust anchor"):
        modelsign.verify(model, [1])  # type: ignore[list-item]


def test_signer_and_anchor_objects_validate_themselves(pki_files: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match="both an identity and an issuer"):
        SigstoreIdentity("me@example.com", "")
    with pytest.raises(UsageError, match="Sigstore instance 'nowhere'"):
        SigstoreSigner(instance="nowhere")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="needs an identity to pin"):
        CertificateAuthority(pki_files["root"], "")
    with pytest.raises(UsageError, match="needs a certificate chain"):
        CertificateSigner(modelsign.generate(), ())


@pytest.fixture
def pki_files(tmp_path: Path) -> dict[str, Path]:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "root")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    root = tmp_path / "root.pem"
    root.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return {"root": root}


def test_policy_refuses_a_dotted_top_level_key(tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    """Issue 11: a top-level "trust.sigstore" = 5 was accepted silently."""
    path = tmp_path / "p.toml"
    path.write_text(f'"trust.sigstore" = 5\n[trust]\nkeys = ["{keypair[1]}"]\n')
    with pytest.raises(ConfigError, match="unknown key.*'trust.sigstore'"):
        Policy.load(path)


def test_the_docstring_reference_check_catches_a_broken_reference() -> None:
    """make docs runs scripts/check_docrefs.py: it must be able to fail."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "check_docrefs", Path(__file__).resolve().parents[1] / "scripts" / "check_docrefs.py"
    )
    assert spec is not None
    assert spec.loader is not None
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    assert check.resolves("modelsign.errors.Error", errors, None)
    assert check.resolves("Error", errors, None)
    assert check.resolves("render", errors, UsageError)
    assert not check.resolves("modelsign.errors.NoSuchError", errors, None)
    assert not check.resolves("NoSuchError", errors, None)
