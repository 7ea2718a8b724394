"""The hook's layers, each on its own: the audit layer's allowlist and trusted
channels, the policy options that widen it, process-wide enforcement, what
children inherit, names rebound, and streams the entry points understand."""

from __future__ import annotations

import bz2
import gzip
import json
import logging
import lzma
import multiprocessing
import os
import pickle
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import modelsign
from modelsign import hooks
from modelsign.errors import (
    ConfigError,
    FileDigestMismatchError,
    ForbiddenGlobalError,
    UnsignedFileError,
)
from modelsign.hooks import _audit
from modelsign.policy import Policy
from tests.conftest import flip_byte, require


@pytest.fixture
def policy(keypair: tuple[Path, Path]) -> Policy:
    return Policy.of([keypair[1]])


class Payload:
    """Unpickling this writes ``marker``: the stand-in for an attacker's code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


class Record:
    """A user class: not in the allowlist."""

    def __init__(self, x: int) -> None:
        self.x = x


# ------------------------------------------------------------------ allowlist


def test_the_allowlist_holds_what_torch_weights_only_allows() -> None:
    """Pinned against torch's own list (a private API: this test fails when it
    changes, and the allowlist is then reviewed)."""
    from torch import _weights_only_unpickler

    for name in _weights_only_unpickler._get_allowed_globals():
        module, _, attr = name.rpartition(".")
        assert _audit.allowed(module, attr), name


@pytest.mark.parametrize(
    "name",
    [
        "builtins.eval",
        "builtins.exec",
        "builtins.getattr",
        "builtins.open",
        "__builtin__.eval",
        "os.system",
        "posix.system",
        "subprocess.Popen",
        "torch.load",
        "torch._C._nn",
        "numpy.load",
        "torch.onnx",  # a lazy torch submodule: never imported by the check
        "collections.defaultdict",
        "functools.partial",
    ],
)
def test_the_allowlist_refuses_code(name: str) -> None:
    module, _, attr = name.rpartition(".")
    assert not _audit.allowed(module, attr)


def test_py2_builtins_and_torch_dtypes_are_allowed() -> None:
    assert _audit.allowed("__builtin__", "set")
    assert _audit.allowed("torch", "float16")
    assert _audit.allowed("torch", "bfloat16")
    assert not _audit.allowed("torch", "Generator")


def test_every_trusted_channel_exists_in_this_python() -> None:
    """The channels are named by module and function: a Python or torch that
    renames one would silently break IPC under enforcement (it fails closed)."""

    import torch.multiprocessing.queue  # noqa: F401

    codes = _audit._channel_codes()
    assert len(codes) == len(_audit.CHANNELS)
    import importlib.util

    for module in _audit.MAIN_CHANNELS:
        assert importlib.util.find_spec(module) is not None, module


# -------------------------------------------------------- unverified pickles


def test_plain_data_loads_and_code_is_refused_with_its_name(policy: Policy, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    data = {"a": [1, 2.5, (3, None)], "s": {1, 2}, "b": b"x", "t": torch.arange(3)}
    with hooks.enforce(policy):
        out = pickle.loads(pickle.dumps(data, protocol=2))
        assert (out["a"], out["s"], out["b"]) == (data["a"], data["s"], b"x")
        assert torch.equal(out["t"], data["t"])
        with pytest.raises(ForbiddenGlobalError) as refused:
            pickle.loads(pickle.dumps(Payload(marker)))
    assert not marker.exists()
    error = refused.value
    assert error.actual == "io.open"
    assert error.target.startswith("pickle.loads of ")
    assert "io.open is not allowed" in str(error)
    assert isinstance(error, pickle.UnpicklingError)


def test_allowed_globals_widen_the_allowlist(keypair: tuple[Path, Path], tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(
        f'[trust]\nkeys = ["{keypair[1]}"]\n[enforce]\nallowed_globals = ["{__name__}.Record"]\n'
    )
    policy = Policy.load(path)
    assert policy.allowed_globals == {f"{__name__}.Record"}
    with hooks.enforce(policy):
        assert pickle.loads(pickle.dumps(Record(4))).x == 4
        with pytest.raises(ForbiddenGlobalError, match="io.open"):
            pickle.loads(pickle.dumps(Payload(tmp_path / "ran")))


def test_unverified_pickles_allow_keeps_the_old_behaviour(
    keypair: tuple[Path, Path], tmp_path: Path
) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(f'[trust]\nkeys = ["{keypair[1]}"]\n[enforce]\nunverified_pickles = "allow"\n')
    with hooks.enforce(path):
        assert pickle.loads(pickle.dumps(Record(5))).x == 5


@pytest.mark.parametrize(
    ("enforce", "message"),
    [
        ('unverified_pickles = "sometimes"', "unverified_pickles"),
        ("unverified_pickles = true", "unverified_pickles"),
        ('allowed_globals = "os.system"', "allowed_globals must be a list"),
        ('allowed_globals = ["numpy.*"]', "not an exact module.name"),
        ('allowed_globals = ["Namespace"]', "not an exact module.name"),
        ('allowed_globals = ["a..b"]', "not an exact module.name"),
    ],
)
def test_bad_audit_options_are_refused(
    keypair: tuple[Path, Path], tmp_path: Path, enforce: str, message: str
) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(f'[trust]\nkeys = ["{keypair[1]}"]\n[enforce]\n{enforce}\n')
    with pytest.raises(ConfigError, match=message):
        Policy.load(path)


def test_warn_mode_logs_a_forbidden_global_once_and_loads(
    keypair: tuple[Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(f'[trust]\nkeys = ["{keypair[1]}"]\n[enforce]\nmode = "warn"\n')
    blob = pickle.dumps(Record(6))
    with hooks.enforce(path), caplog.at_level(logging.WARNING, logger="modelsign"):
        assert pickle.loads(blob).x == 6
        assert pickle.loads(blob).x == 6
    warnings = [r.getMessage() for r in caplog.records if "Record" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert f"{__name__}.Record is not allowed" in warnings[0]


def test_a_thread_does_not_inherit_a_verified_load(
    policy: Policy, tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    """Trust is per thread: while one thread deserializes verified bytes,
    another thread's unverified unpickling stays restricted."""
    model = tmp_path / "model"
    model.mkdir()
    seen: dict[str, object] = {}

    class LoadsInAThread:
        def __reduce__(self) -> tuple[object, tuple[()]]:
            return (_unpickle_in_a_thread, ())

    (model / "outer.pkl").write_bytes(pickle.dumps(LoadsInAThread()))
    modelsign.sign(model, keypair[0])
    with hooks.enforce(policy), open(model / "outer.pkl", "rb") as f:
        seen = pickle.load(f)
    assert seen == {"error": "ForbiddenGlobalError"}


def _unpickle_in_a_thread() -> dict[str, object]:
    import threading

    result: dict[str, object] = {}

    def run() -> None:
        try:
            pickle.loads(pickle.dumps(Record(1)))
            result["error"] = None
        except ForbiddenGlobalError as e:
            result["error"] = type(e).__name__

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return result


# -------------------------------------------------------------- process-wide


def test_uninstall_under_an_active_block_is_refused(policy: Policy) -> None:
    with hooks.enforce(policy):
        with pytest.raises(ConfigError, match="block"):
            hooks.uninstall()
        assert hooks.installed()
    assert not hooks.installed()


def test_install_cannot_change_the_policy_under_active_blocks(
    policy: Policy, other_keypair: tuple[Path, Path]
) -> None:
    other = Policy.of([other_keypair[1]])
    with hooks.enforce(policy):
        with pytest.raises(ConfigError, match="cannot change"):
            hooks.install(other)
        hooks.install(policy)  # the same policy: it now stays on after the block
    assert hooks.installed()


def test_blocks_in_two_threads_keep_enforcement_until_the_last_ends(
    policy: Policy, tmp_path: Path
) -> None:
    import threading

    marker = tmp_path / "ran"
    blob = pickle.dumps(Payload(marker))
    first_in, first_out = threading.Event(), threading.Event()
    outcome: dict[str, str] = {}

    def first() -> None:
        with hooks.enforce(policy):
            first_in.set()
            first_out.wait(10)

    def second() -> None:
        first_in.wait(10)
        with hooks.enforce(policy):
            first_out.set()
            thread.join(10)  # the first block has ended
            try:
                pickle.loads(blob)
                outcome["result"] = "loaded"
            except ForbiddenGlobalError:
                outcome["result"] = "refused"

    thread = threading.Thread(target=first)
    other = threading.Thread(target=second)
    thread.start()
    other.start()
    other.join(20)
    assert outcome == {"result": "refused"}
    assert not marker.exists()
    assert not hooks.installed()


# ------------------------------------------------------------------ children


def test_an_in_memory_policy_reaches_children_through_a_private_file(
    policy: Policy, tmp_path: Path
) -> None:
    assert "MODELSIGN_POLICY" not in os.environ
    with hooks.enforce(policy):
        path = Path(os.environ["MODELSIGN_POLICY"])
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        child = Policy.load(path)
        assert child.keys == policy.keys
        assert (child.mode, child.scope, child.unverified_pickles) == ("enforce", (), "refuse")
        marker = tmp_path / "ran"
        evil = tmp_path / "evil.pkl"
        evil.write_bytes(pickle.dumps(Payload(marker)))
        code = "import pickle, sys; pickle.load(open(sys.argv[1], 'rb'))"
        result = subprocess.run(
            [sys.executable, "-c", code, str(evil)], capture_output=True, text=True, check=False
        )
    assert result.returncode != 0
    assert "UnsignedFileError" in result.stderr
    assert not marker.exists()
    assert not path.exists()  # removed when enforcement ends
    assert "MODELSIGN_POLICY" not in os.environ


def test_policy_to_toml_round_trips(tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    source = tmp_path / "policy.toml"
    source.write_text(
        textwrap.dedent(
            f"""
            [trust]
            keys = ["{keypair[1]}"]
            [[trust.sigstore]]
            identity = "me@example.com"
            issuer = "https://issuer.example"
            [enforce]
            mode = "warn"
            scope = ["{tmp_path}"]
            discover = false
            pickle_loads = true
            unverified_pickles = "allow"
            allowed_globals = ["argparse.Namespace", "a.b.C"]
            """
        )
    )
    policy = Policy.load(source)
    key_file = tmp_path / "key.pub"
    key_file.write_bytes(policy.keys[0].pem)
    copy = tmp_path / "copy.toml"
    copy.write_text(policy.to_toml([key_file]))
    again = Policy.load(copy)
    for field in ("keys", "mode", "scope", "discover", "pickle_loads", "sigstore"):
        assert getattr(again, field) == getattr(policy, field), field
    assert again.unverified_pickles == "allow"
    assert again.allowed_globals == policy.allowed_globals


def _child_is_enforced(queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    queue.put(hooks.installed())


def test_a_forkserver_started_before_install_is_restarted(policy: Policy) -> None:
    context = multiprocessing.get_context("forkserver")
    queue = context.Queue()
    process = context.Process(target=_child_is_enforced, args=(queue,))
    process.start()  # starts the forkserver, unprotected
    assert queue.get(timeout=30) is False
    process.join(10)
    with hooks.enforce(policy):
        process = context.Process(target=_child_is_enforced, args=(queue,))
        process.start()
        assert queue.get(timeout=30) is True
        process.join(10)


def test_joblib_parallel_with_loky_works_under_enforcement(policy: Policy) -> None:
    joblib = require("joblib", "joblib's loky backend is what this tests")
    with hooks.enforce(policy):
        out = joblib.Parallel(n_jobs=2, backend="loky")(joblib.delayed(Record)(i) for i in range(4))
    assert [r.x for r in out] == [0, 1, 2, 3]


# ---------------------------------------------------------- names and streams


def test_names_bound_before_install_are_rebound_and_restored(
    policy: Policy, tmp_path: Path
) -> None:
    import numpy as np
    import numpy.lib._npyio_impl as impl

    module = type(sys)("bound_before_install")
    exec("from numpy.lib._npyio_impl import load", module.__dict__)
    sys.modules[module.__name__] = module
    original = module.load
    unsigned = tmp_path / "a.npy"
    np.save(unsigned, np.arange(3))
    try:
        with hooks.enforce(policy):
            assert module.load is not original
            assert impl.load is module.load
            with pytest.raises(UnsignedFileError, match="a.npy"):
                module.load(unsigned)
        assert module.load is original
        assert impl.load is original
    finally:
        del sys.modules[module.__name__]


@pytest.mark.parametrize(
    ("opener", "writer"),
    [(gzip.open, gzip.open), (bz2.open, bz2.open), (lzma.open, lzma.open)],
    ids=["gzip", "bz2", "lzma"],
)
def test_a_signed_compressed_pickle_loads_and_a_changed_one_is_refused(
    policy: Policy, tmp_path: Path, keypair: tuple[Path, Path], opener: object, writer: object
) -> None:
    model = tmp_path / "model"
    model.mkdir()
    path = model / "data.pkl.z"
    with writer(path, "wb") as f:  # type: ignore[operator]
        pickle.dump({"x": 1}, f)
        pickle.dump({"y": 2}, f)
    modelsign.sign(model, keypair[0])
    with hooks.enforce(policy):
        with opener(path, "rb") as f:  # type: ignore[operator]
            assert pickle.load(f) == {"x": 1}
            assert pickle.load(f) == {"y": 2}
        flip_byte(path, path.stat().st_size // 2)
        with opener(path, "rb") as f, pytest.raises(FileDigestMismatchError, match="data.pkl.z"):  # type: ignore[operator]
            pickle.load(f)


def test_several_pickles_in_one_signed_file(
    policy: Policy, tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    model = tmp_path / "model"
    model.mkdir()
    with open(model / "log.pkl", "wb") as f:
        for i in range(3):
            pickle.dump({"step": i}, f)
    modelsign.sign(model, keypair[0])
    with hooks.enforce(policy), open(model / "log.pkl", "rb") as f:
        assert [pickle.load(f) for _ in range(3)] == [{"step": i} for i in range(3)]
        with pytest.raises(EOFError):
            pickle.load(f)
        unpickler = pickle.Unpickler(open(model / "log.pkl", "rb"))  # noqa: SIM115
        assert [unpickler.load() for _ in range(3)] == [{"step": i} for i in range(3)]


def test_status_names_the_audit_layer(policy: Policy) -> None:
    with hooks.enforce(policy):
        state = hooks.status()
    assert state["audit"] == {"unverified_pickles": "refuse", "allowed_globals": []}
    json.dumps(state)


def test_npz_members_are_read_under_the_trust_of_their_load(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    """NpzFile unpickles a member when it is accessed, after numpy.load
    returned: a signed archive's members are trusted, an out-of-scope one's
    are restricted to the allowlist."""
    import numpy as np

    models, scratch = tmp_path / "models", tmp_path / "scratch"
    models.mkdir()
    scratch.mkdir()
    records = np.empty(1, dtype=object)
    records[0] = Record(7)
    for folder in (models, scratch):
        np.savez(folder / "a.npz", records=records, plain=np.arange(3))
    modelsign.sign(models, keypair[0])
    scoped = Policy((modelsign.load_public_key(keypair[1]),), source="scoped", scope=(str(models),))
    with hooks.enforce(scoped):
        with np.load(models / "a.npz", allow_pickle=True) as signed:
            assert signed["records"][0].x == 7
        with np.load(scratch / "a.npz", allow_pickle=True) as unsigned:
            assert list(unsigned["plain"]) == [0, 1, 2]
            with pytest.raises(ForbiddenGlobalError, match="Record"):
                unsigned["records"]
