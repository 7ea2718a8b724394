"""The loader hook: torch and pickle entry points, malicious pickles, TOCTOU,
activation. Real keys, real files, real torch; nothing is mocked."""

from __future__ import annotations

import _pickle
import contextlib
import io
import os
import pickle
import shutil
import subprocess
import sys
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import modelsign
import modelsign._archive
import modelsign._guard
from modelsign import hooks
from modelsign.errors import (
    ConfigError,
    FileDigestMismatchError,
    LoadRefusedError,
    UnsafeLoadError,
    UnsignedFileError,
    UntrustedBundleError,
)
from modelsign.policy import Policy
from tests.conftest import flip_byte

STATE = {"w": torch.arange(12, dtype=torch.float32).reshape(3, 4), "b": torch.ones(2)}


@pytest.fixture
def policy(keypair: tuple[Path, Path]) -> Policy:
    return Policy.of([keypair[1]])


@pytest.fixture
def signed_pt(tmp_path: Path, keypair: tuple[Path, Path]) -> Path:
    """model/weights.pt, signed as a directory model."""
    model = tmp_path / "model"
    model.mkdir()
    torch.save(STATE, model / "weights.pt")
    (model / "config.json").write_text("{}")
    modelsign.sign(model, keypair[0])
    return model / "weights.pt"


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------- activation


def test_install_and_uninstall_restore_the_exact_originals(policy: Policy) -> None:
    names = [
        (torch, "load"),
        (torch.serialization, "load"),
        (pickle, "load"),
        (pickle, "loads"),
        (pickle, "Unpickler"),
        (pickle, "_Unpickler"),
        (_pickle, "load"),
        (_pickle, "Unpickler"),
        (np, "load"),
    ]
    before = [getattr(obj, attr) for obj, attr in names]
    hooks.install(policy)
    hooks.install(policy)  # twice is harmless
    for (obj, attr), orig in zip(names, before, strict=True):
        assert getattr(obj, attr) is not orig, f"{obj.__name__}.{attr} not patched"
    assert hooks.installed()
    hooks.uninstall()
    for (obj, attr), orig in zip(names, before, strict=True):
        assert getattr(obj, attr) is orig, f"{obj.__name__}.{attr} not restored"
    assert not hooks.installed()
    assert hooks.status() == {
        "active": False,
        "policy": None,
        "mode": None,
        "covered": [],
        "pending": [],
        "audit": None,
    }


def test_enforce_context_manager(policy: Policy, signed_pt: Path) -> None:
    orig = torch.load
    with modelsign.hooks.enforce(policy) as active:
        assert active is policy
        assert torch.load is not orig
        assert same(torch.load(signed_pt), STATE)
    assert torch.load is orig
    with modelsign.enforce(policy):
        assert torch.load is not orig


def test_policy_without_trust_anchor_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "policy.toml"
    p.write_text("[trust]\nkeys = []\n")
    with pytest.raises(ConfigError, match="no trust anchor"):
        hooks.install(p)
    assert not hooks.installed()


def test_policy_comes_from_the_environment_never_the_working_directory(
    tmp_path: Path,
    keypair: tuple[Path, Path],
    other_keypair: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 10, case 6: run from a folder the attacker controls, a
    ./pyproject.toml [tool.modelsign] naming the attacker's key must not
    become the policy of install() / enforce() without an argument."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MODELSIGN_POLICY", raising=False)
    (tmp_path / "pyproject.toml").write_text(
        f'[project]\nname = "x"\n\n[tool.modelsign.trust]\nkeys = ["{other_keypair[1]}"]\n'
    )
    with pytest.raises(ConfigError, match="never read from the working directory"):
        Policy.from_environment()
    with pytest.raises(ConfigError, match="MODELSIGN_POLICY"):
        hooks.install()
    with pytest.raises(ConfigError, match="MODELSIGN_POLICY"), hooks.enforce():
        pass
    assert not hooks.installed()
    # Named explicitly, a pyproject.toml still works.
    from_pyproject = Policy.load(tmp_path / "pyproject.toml")
    assert "[tool.modelsign]" in from_pyproject.source
    policy_file = tmp_path / "p.toml"
    policy_file.write_text(f'[trust]\nkeys = ["{keypair[1]}"]\n')
    monkeypatch.setenv("MODELSIGN_POLICY", str(policy_file))
    assert Policy.from_environment().source == str(policy_file)
    hooks.install()
    assert hooks.status()["policy"] == str(policy_file)


def test_install_does_not_import_torch(tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    policy_file = tmp_path / "p.toml"
    policy_file.write_text(f'[trust]\nkeys = ["{keypair[1]}"]\n')
    code = (
        "import sys, modelsign.hooks as h\n"
        f"h.install({str(policy_file)!r})\n"
        "assert 'torch' not in sys.modules, 'install imported torch'\n"
        "import torch, torch.serialization\n"
        "assert hasattr(torch.load, '__wrapped__'), 'torch.load not patched'\n"
        "assert torch.serialization.load is torch.load\n"
        "print('ok')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "MODELSIGN_POLICY"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_autoload_pth_enforces_from_the_first_line(
    tmp_path: Path, signed_pt: Path, keypair: tuple[Path, Path]
) -> None:
    policy_file = tmp_path / "p.toml"
    policy_file.write_text(f'[trust]\nkeys = ["{keypair[1]}"]\n')
    other = tmp_path / "other.pt"
    torch.save(STATE, other)
    script = tmp_path / "serve.py"
    script.write_text("import sys, torch\nprint(sorted(torch.load(sys.argv[1]).keys()))\n")
    env = {**os.environ, "MODELSIGN_POLICY": str(policy_file)}
    ok = subprocess.run(
        [sys.executable, str(script), str(signed_pt)], capture_output=True, text=True, env=env
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "['b', 'w']"
    refused = subprocess.run(
        [sys.executable, str(script), str(other)], capture_output=True, text=True, env=env
    )
    assert refused.returncode != 0
    assert "UnsignedFileError" in refused.stderr
    assert str(other) in refused.stderr


def test_autoload_fails_closed_on_a_bad_policy(tmp_path: Path) -> None:
    env = {**os.environ, "MODELSIGN_POLICY": str(tmp_path / "missing.toml")}
    result = subprocess.run(
        [sys.executable, "-c", "print('unprotected')"], capture_output=True, text=True, env=env
    )
    assert result.returncode == 2
    assert "unprotected" not in result.stdout
    assert "missing.toml" in result.stderr


def test_cli_run_and_status(tmp_path: Path, signed_pt: Path, keypair: tuple[Path, Path]) -> None:
    policy_file = tmp_path / "p.toml"
    policy_file.write_text(f'[trust]\nkeys = ["{keypair[1]}"]\n')
    env = {k: v for k, v in os.environ.items() if k != "MODELSIGN_POLICY"}
    ms = [sys.executable, "-m", "modelsign"]
    code = "import sys, torch; torch.load(sys.argv[1]); print('loaded')"
    program = [*ms, "run", "--policy", str(policy_file), "--", sys.executable, "-c", code]
    ok = subprocess.run([*program, str(signed_pt)], capture_output=True, text=True, env=env)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "loaded"
    flip_byte(signed_pt)
    bad = subprocess.run([*program, str(signed_pt)], capture_output=True, text=True, env=env)
    assert bad.returncode == 1
    assert "FileDigestMismatchError" in bad.stderr
    status = subprocess.run([*ms, "status", "--json"], capture_output=True, text=True, env=env)
    assert status.returncode == 0
    import json

    doc = json.loads(status.stdout)
    assert doc["active"] is False
    on = subprocess.run(
        [*ms, "status"],
        capture_output=True,
        text=True,
        env={**env, "MODELSIGN_POLICY": str(policy_file)},
    )
    assert "enforcement: ACTIVE" in on.stdout
    assert "pickle" in on.stdout
    assert "unverified unpickling: refuse (globals beyond the allowlist: none)" in on.stdout
    key_id = modelsign.load_public_key(keypair[1]).key_id
    assert f"key {key_id}" in on.stdout
    assert "scope: every file" in on.stdout


# ------------------------------------------------------------- torch.load


@pytest.mark.parametrize("weights_only", [True, False])
@pytest.mark.parametrize("mmap", [False, True])
@pytest.mark.parametrize("form", ["str", "pathlike", "file"])
def test_torch_load_signed(
    policy: Policy, signed_pt: Path, weights_only: bool, mmap: bool, form: str
) -> None:
    with hooks.enforce(policy):
        if form == "file":
            with open(signed_pt, "rb") as f:
                loaded = torch.load(f, weights_only=weights_only, mmap=mmap)
        else:
            arg: Any = str(signed_pt) if form == "str" else signed_pt
            loaded = torch.serialization.load(arg, weights_only=weights_only, mmap=mmap)
    assert same(loaded, STATE)


@pytest.mark.parametrize("mmap", [False, True])
def test_torch_load_tampered(policy: Policy, signed_pt: Path, mmap: bool) -> None:
    flip_byte(signed_pt)
    with hooks.enforce(policy), pytest.raises(FileDigestMismatchError) as e:
        torch.load(signed_pt, mmap=mmap)
    message = str(e.value)
    assert str(signed_pt) in message
    assert f"expected sha256:{e.value.expected}, actual sha256:{e.value.actual}" in message
    assert e.value.expected != e.value.actual
    assert "policy: trust= (1 key), mode enforce" in message
    assert isinstance(e.value, pickle.UnpicklingError)


def test_torch_load_unsigned(policy: Policy, tmp_path: Path) -> None:
    path = tmp_path / "loose.pt"
    torch.save(STATE, path)
    with hooks.enforce(policy), pytest.raises(UnsignedFileError, match="no bundle signed by"):
        torch.load(path)


def test_torch_load_untrusted_signer(signed_pt: Path, other_keypair: tuple[Path, Path]) -> None:
    with hooks.enforce(Policy.of([other_keypair[1]])):
        with pytest.raises(UntrustedBundleError, match="not trusted") as e:
            torch.load(signed_pt)
    assert str(signed_pt.parent / "model.sig") in str(e.value)


def test_single_file_bundle_beside_the_file(
    policy: Policy, tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    path = tmp_path / "ckpt.pt"
    torch.save(STATE, path)
    modelsign.sign(path, keypair[0])
    assert (tmp_path / "ckpt.pt.sig").exists()
    with hooks.enforce(policy):
        assert same(torch.load(path), STATE)
        flip_byte(path)
        with pytest.raises(FileDigestMismatchError, match="ckpt.pt.sig"):
            torch.load(path)


def test_extra_file_in_a_signed_directory_is_unsigned(policy: Policy, signed_pt: Path) -> None:
    extra = signed_pt.parent / "extra.pt"
    torch.save(STATE, extra)
    with hooks.enforce(policy), pytest.raises(UnsignedFileError, match="extra.pt"):
        torch.load(extra)


def test_file_object_not_at_position_zero(policy: Policy, signed_pt: Path) -> None:
    with hooks.enforce(policy), open(signed_pt, "rb") as f:
        f.read(10)
        with pytest.raises(UnsafeLoadError, match="at position 10, not 0"):
            torch.load(f)


def test_file_object_name_is_not_trusted(policy: Policy, signed_pt: Path, tmp_path: Path) -> None:
    evil = tmp_path / "evil.pt"
    torch.save({"w": torch.zeros(1)}, evil)

    class Liar(io.BufferedReader):
        """A file object whose name claims to be the signed file."""

        name = str(signed_pt)  # type: ignore[assignment]

    with hooks.enforce(policy), Liar(io.FileIO(evil, "rb")) as f:
        assert f.name == str(signed_pt)
        with pytest.raises(
            UnsafeLoadError, match=r"evil\.pt: the file object's name .*weights\.pt"
        ):
            torch.load(f)


def test_bytesio_is_checked_against_explicit_bundles(
    tmp_path: Path, signed_pt: Path, keypair: tuple[Path, Path]
) -> None:
    data = signed_pt.read_bytes()
    with hooks.enforce(Policy.of([keypair[1]])):
        with pytest.raises(UnsignedFileError, match="BytesIO"):
            torch.load(io.BytesIO(data))
    listed = Policy(
        (modelsign.load_public_key(keypair[1]),),
        source="explicit",
        bundles=(signed_pt.parent / "model.sig",),
    )
    with hooks.enforce(listed):
        assert same(torch.load(io.BytesIO(data)), STATE)
        with pytest.raises(UnsignedFileError):
            torch.load(io.BytesIO(data + b"\0"))


def test_weights_only_is_kept_and_never_retried(
    policy: Policy, tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    model = tmp_path / "m"
    model.mkdir()
    torch.save({"w": torch.ones(1), "opt": OptimizerState(steps=2)}, model / "ckpt.pt")
    modelsign.sign(model, keypair[0])
    with hooks.enforce(policy):
        # A verified file that needs full unpickling fails under weights_only=True
        # with torch's own error, and is not retried with weights_only=False.
        with pytest.raises(pickle.UnpicklingError, match="Weights only load failed") as e:
            torch.load(model / "ckpt.pt", weights_only=True)
        assert not isinstance(e.value, LoadRefusedError)
        assert torch.load(model / "ckpt.pt", weights_only=False)["opt"].steps == 2


class OptimizerState:
    """A class torch's weights_only unpickler does not allow."""

    def __init__(self, steps: int) -> None:
        self.steps = steps


def test_nested_tensor_unpickling_keeps_working(policy: Policy) -> None:
    tensor = torch.arange(7)
    with hooks.enforce(policy):
        assert torch.equal(pickle.loads(pickle.dumps(tensor)), tensor)
        assert torch.equal(_pickle.loads(pickle.dumps(tensor)), tensor)


def test_pickle_loads_opt_in_checks_digests(tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    model = tmp_path / "m"
    model.mkdir()
    blob = pickle.dumps({"config": [1, 2, 3]})
    (model / "state.pkl").write_bytes(blob)
    modelsign.sign(model, keypair[0])
    opt_in = Policy(
        (modelsign.load_public_key(keypair[1]),),
        source="opt-in",
        bundles=(model / "model.sig",),
        pickle_loads=True,
    )
    with hooks.enforce(opt_in):
        assert pickle.loads(blob) == {"config": [1, 2, 3]}
        with pytest.raises(UnsignedFileError):
            pickle.loads(pickle.dumps({"config": [1, 2, 4]}))
    with hooks.enforce(Policy.of([keypair[1]])):  # default: not guarded (IPC)
        assert pickle.loads(pickle.dumps({"x": 1})) == {"x": 1}


# ---------------------------------------------------------------- TOCTOU


@pytest.mark.parametrize("mmap", [False, True])
def test_file_rewritten_after_verification_loads_the_signed_bytes(
    policy: Policy, signed_pt: Path, monkeypatch: pytest.MonkeyPatch, mmap: bool
) -> None:
    """Swap the file on disk between the check and the load: the loader still
    gets the bytes that were verified."""
    evil = {"w": torch.full((3, 4), 666.0), "b": torch.zeros(2)}
    evil_bytes = io.BytesIO()
    torch.save(evil, evil_bytes)
    real_inspect = modelsign._archive.inspect
    swapped = []

    def inspect_then_swap(f: Any, size: int, name: str) -> Any:
        result = real_inspect(f, size, name)
        if not swapped:
            signed_pt.write_bytes(evil_bytes.getvalue())  # in place: same inode
            swapped.append(True)
        return result

    monkeypatch.setattr(modelsign._archive, "inspect", inspect_then_swap)
    with hooks.enforce(policy):
        loaded = torch.load(signed_pt, mmap=mmap)
    assert swapped
    assert same(loaded, STATE)
    assert same(torch.load(signed_pt), evil)  # unhooked now: the file did change


def test_large_file_goes_through_a_sealed_memfd(
    policy: Policy, tmp_path: Path, keypair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(modelsign._guard, "MEMFD_THRESHOLD", 1)
    model = tmp_path / "m"
    model.mkdir()
    torch.save(STATE, model / "w.pt")
    modelsign.sign(model, keypair[0])
    guard = modelsign._guard.Guard(policy)
    with guard.open_path(model / "w.pt") as source:
        assert source.fd is not None
        import fcntl

        seals = fcntl.fcntl(source.fd, fcntl.F_GET_SEALS)
        wanted = fcntl.F_SEAL_WRITE | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_SEAL
        assert seals & wanted == wanted
        with pytest.raises(OSError):
            os.write(source.fd, b"x")
        assert same(torch.load(source.path), STATE)


# ------------------------------------------------------- malicious pickles


class Payload:
    """Unpickling this creates a marker directory: proof that code ran."""

    marker = ""

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[str]]:
        return (os.mkdir, (self.marker,))


def _payload(marker: Path) -> Payload:
    p = Payload()
    p.marker = str(marker)
    return p


def _write_malicious(form: str, path: Path, marker: Path) -> None:
    obj = {"w": torch.ones(1), "x": _payload(marker)}
    if form == "pt":
        torch.save(obj, path)
    elif form == "pkl":
        path.write_bytes(pickle.dumps(obj))
    elif form == "npy":
        arr = np.empty(1, dtype=object)
        arr[0] = _payload(marker)
        np.save(path, arr, allow_pickle=True)
    elif form == "joblib":
        import joblib

        joblib.dump(obj, path)
    assert not marker.exists()


def _entry_points(form: str) -> dict[str, Callable[[Path], Any]]:
    def file_call(fn: Callable[[Any], Any]) -> Callable[[Path], Any]:
        def call(p: Path) -> Any:
            with open(p, "rb") as f:
                return fn(f)

        return call

    if form == "pt":
        return {
            "torch.load(path)": lambda p: torch.load(p, weights_only=False),
            "torch.load(file)": file_call(lambda f: torch.load(f, weights_only=False)),
            "torch.serialization.load": lambda p: torch.serialization.load(p, weights_only=False),
            "torch.load(mmap)": lambda p: torch.load(p, weights_only=False, mmap=True),
        }
    if form == "pkl":
        return {
            # Looked up at call time: a reference taken before install() would
            # be the unpatched function (so install early: modelsign run, .pth).
            "pickle.load": file_call(lambda f: pickle.load(f)),
            "pickle.Unpickler": file_call(lambda f: pickle.Unpickler(f).load()),
            "pickle._Unpickler": file_call(lambda f: pickle._Unpickler(f).load()),
            "_pickle.load": file_call(lambda f: _pickle.load(f)),
            "_pickle.Unpickler": file_call(lambda f: _pickle.Unpickler(f).load()),
            "torch.load(legacy pickle)": lambda p: torch.load(p, weights_only=False),
        }
    if form == "npy":
        return {"numpy.load": lambda p: np.load(p, allow_pickle=True)[0]}
    import joblib

    return {"joblib.load": lambda p: joblib.load(p)}


def _signed_then_swapped(tmp_path: Path, form: str, keypair: tuple[Path, Path]) -> Path:
    model = tmp_path / "model"
    model.mkdir()
    path = model / f"weights.{form}"
    path.write_bytes(b"benign placeholder")
    modelsign.sign(model, keypair[0])
    return path


SCENARIOS = ["unsigned", "untrusted-signer", "swapped-after-signing"]
FORMS = ["pt", "pkl", "npy", "joblib"]
CASES = [
    (form, scenario, entry)
    for form in FORMS
    for scenario in SCENARIOS
    for entry in _entry_points(form)
]


@pytest.mark.parametrize(("form", "scenario", "entry"), CASES)
def test_malicious_pickle_never_runs(
    tmp_path: Path,
    keypair: tuple[Path, Path],
    other_keypair: tuple[Path, Path],
    form: str,
    scenario: str,
    entry: str,
) -> None:
    marker = tmp_path / "PWNED"
    if scenario == "unsigned":
        path = tmp_path / f"weights.{form}"
    elif scenario == "untrusted-signer":
        model = tmp_path / "model"
        model.mkdir()
        path = model / f"weights.{form}"
        _write_malicious(form, path, marker)
        modelsign.sign(model, other_keypair[0])
    else:
        path = _signed_then_swapped(tmp_path, form, keypair)
    _write_malicious(form, path, marker)
    load = _entry_points(form)[entry]
    with hooks.enforce(Policy.of([keypair[1]])), pytest.raises(LoadRefusedError) as e:
        load(path)
    assert isinstance(e.value, pickle.UnpicklingError)
    assert str(path) in str(e.value)
    assert not marker.exists(), "the malicious pickle ran"
    # Control: without the hook the same call does run the payload.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with contextlib.suppress(Exception):
            load(path)
    assert marker.exists(), "control failed: the payload should run unhooked"


def _zip_with_members(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
            for name, data in members:
                z.writestr(name, data)
    return buf.getvalue()


@pytest.mark.parametrize("variant", ["duplicate", "case-variant"])
def test_ambiguous_pt_signed_by_another_tool_never_runs(
    tmp_path: Path, keypair: tuple[Path, Path], variant: str
) -> None:
    """A .pt with two data.pkl members (one benign, one malicious) signed with a
    trusted key by a tool that does not check archives (the reference tool):
    the digest matches, the hook still refuses the ambiguous archive."""
    marker = tmp_path / "PWNED"
    good = io.BytesIO()
    torch.save({"w": torch.ones(1)}, good)
    with zipfile.ZipFile(good) as z:
        members = [(i.filename, z.read(i)) for i in z.infolist()]
    pkl_name = next(n for n, _ in members if n.endswith("data.pkl"))
    evil_pkl = pickle.dumps({"w": _payload(marker)}, protocol=2)
    second = pkl_name if variant == "duplicate" else pkl_name.upper()
    data = _zip_with_members([*members, (second, evil_pkl)])
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.pt").write_bytes(data)
    # Sign as another tool would: the same bundle format, no archive checks.
    from modelsign import signing

    original = signing.build_manifest

    def no_archive_checks(tree: Any, hash_type: str, **kw: Any) -> Any:
        import hashlib

        from modelsign._digests import Fingerprint
        from modelsign._hashing import FileDigest
        from modelsign.manifest import Manifest, Serialization

        digests = {
            f.name: FileDigest(
                f.name, f.size, Fingerprint(hashlib.sha256(f.path.read_bytes()).hexdigest())
            )
            for f in tree.files
        }
        return Manifest.from_digests(tree.name, digests, Serialization(hash_type))

    signing.build_manifest = no_archive_checks  # type: ignore[assignment]
    try:
        modelsign.sign(model, keypair[0])
    finally:
        signing.build_manifest = original  # type: ignore[assignment]
    with hooks.enforce(Policy.of([keypair[1]])):
        with pytest.raises(UnsafeLoadError, match="data.pkl"):
            torch.load(model / "weights.pt", weights_only=False)
    assert not marker.exists()


def test_refused_load_is_caught_by_existing_unpickling_handlers(
    policy: Policy, tmp_path: Path
) -> None:
    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps([1]))
    with hooks.enforce(policy), open(path, "rb") as f:
        try:
            pickle.load(f)
        except pickle.UnpicklingError as e:
            assert isinstance(e, UnsignedFileError)
        else:
            pytest.fail("the unsigned pickle loaded")


def test_warn_mode_logs_and_loads(
    tmp_path: Path, signed_pt: Path, keypair: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    flip_byte(signed_pt, signed_pt.stat().st_size - 30)  # in the zip's end record
    policy_file = tmp_path / "warn.toml"
    policy_file.write_text(f'[trust]\nkeys = ["{keypair[1]}"]\n[enforce]\nmode = "warn"\n')
    with hooks.enforce(policy_file), caplog.at_level("WARNING", logger="modelsign"):
        try:
            torch.load(signed_pt)
        except Exception as e:  # the flipped byte may break the zip itself
            assert not isinstance(e, LoadRefusedError)
    assert any(str(signed_pt) in r.getMessage() for r in caplog.records)


def test_scope_limits_what_is_guarded(tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    guarded = tmp_path / "models"
    guarded.mkdir()
    outside = tmp_path / "scratch.pt"
    inside = guarded / "x.pt"
    torch.save(STATE, outside)
    shutil.copy(outside, inside)
    scoped = Policy(
        (modelsign.load_public_key(keypair[1]),), source="scoped", scope=(str(guarded),)
    )
    with hooks.enforce(scoped):
        assert same(torch.load(outside), STATE)
        with pytest.raises(UnsignedFileError):
            torch.load(inside)


def test_pickle_from_a_pipe_is_ipc_and_never_blocks(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    """multiprocessing unpickles from pipes; checking would mean reading to EOF."""
    opt_in = Policy((modelsign.load_public_key(keypair[1]),), source="opt-in", pickle_loads=True)
    r, w = os.pipe()
    os.write(w, pickle.dumps({"a": 1}) + pickle.dumps({"b": 2}))  # writer stays open
    try:
        with hooks.enforce(opt_in), os.fdopen(r, "rb") as f:
            assert pickle.load(f) == {"a": 1}
            assert pickle.load(f) == {"b": 2}
    finally:
        os.close(w)
