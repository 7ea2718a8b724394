"""The loader hook on numpy, joblib, safetensors and transformers (local
directories and the Hugging Face cache layout), and around inter-process
pickling. Real keys, real files, real libraries; nothing is mocked and nothing
is downloaded."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import pickle
import queue
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import joblib
import joblib.numpy_pickle
import numpy as np
import pytest
import safetensors
import safetensors.torch
import torch
import torch.multiprocessing

import modelsign
from modelsign import hooks
from modelsign.errors import (
    FileDigestMismatchError,
    LoadRefusedError,
    UnsafeLoadError,
    UnsafeModelError,
    UnsignedFileError,
    UntrustedBundleError,
    VerificationError,
)
from modelsign.policy import Policy
from tests.conftest import flip_byte

ARRAY = np.arange(64 * 32, dtype=np.float64).reshape(64, 32)
TENSORS = {
    "weight": torch.arange(64 * 32, dtype=torch.float32).reshape(64, 32),
    "bias": torch.arange(32, dtype=torch.int64),
}
REPO = "models--org--tiny"
REVISION = "abc123"

Target = tuple[object, str]


@pytest.fixture(autouse=True)
def _offline_and_unhooked(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.delenv("MODELSIGN_POLICY", raising=False)
    yield
    hooks.uninstall()


def write_policy(path: Path, public_key: Path, mode: str = "enforce") -> Path:
    path.write_text(f'[trust]\nkeys = ["{public_key}"]\n\n[enforce]\nmode = "{mode}"\n')
    return path


@pytest.fixture
def policy(tmp_path: Path, keypair: tuple[Path, Path]) -> Policy:
    """Trusts ``keypair``; loaded from a file, so its source is that file's path."""
    return Policy.load(write_policy(tmp_path / "policy.toml", keypair[1]))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_refusal(
    error: BaseException, cls: type[LoadRefusedError], target: Path, policy: Policy
) -> None:
    """Exactly ``cls``, naming the file and the policy, and caught by existing
    ``except pickle.UnpicklingError`` handlers."""
    assert type(error) is cls, f"{type(error).__name__}: {error}"
    assert isinstance(error, VerificationError)
    assert isinstance(error, pickle.UnpicklingError)
    message = str(error)
    assert str(target) in message
    assert policy.source.endswith("policy.toml")
    assert f"(policy: {policy.source}, mode {policy.mode})" in message


@contextlib.contextmanager
def enforcing(policy: Policy, targets: tuple[Target, ...]) -> Iterator[None]:
    """``hooks.enforce(policy)``, checking that every target is wrapped inside
    the block and is the very same original object again after it."""
    originals = [getattr(obj, attr) for obj, attr in targets]
    with hooks.enforce(policy):
        for (obj, attr), original in zip(targets, originals, strict=True):
            current = getattr(obj, attr)
            assert current is not original, f"{obj}.{attr} is not patched"
            assert getattr(current, "__wrapped__", None) is original, f"{obj}.{attr}"
        yield
    for (obj, attr), original in zip(targets, originals, strict=True):
        assert getattr(obj, attr) is original, f"{obj}.{attr} is not restored"


# ---------------------------------------------------------------- loader cases


def same_dicts(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if a.keys() != b.keys():
        return False
    for key, value in a.items():
        other = b[key]
        if isinstance(value, torch.Tensor):
            ok = isinstance(other, torch.Tensor) and torch.equal(value, other)
        elif isinstance(value, np.ndarray):
            ok = isinstance(other, np.ndarray) and np.array_equal(value, other)
        else:
            ok = value == other
        if not ok:
            return False
    return True


def same_objects(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype == object and a.tolist() == b.tolist()


def write_npy(path: Path) -> np.ndarray:
    np.save(path, ARRAY)
    return ARRAY


def write_object_npy(path: Path) -> np.ndarray:
    arr = np.empty(3, dtype=object)
    arr[:] = [{"layers": [8, 4]}, [1, 2, 3], "x" * 4096]  # the string fills the middle
    np.save(path, arr, allow_pickle=True)
    return arr


def write_npz(path: Path) -> dict[str, Any]:
    np.savez(path, x=ARRAY, y=ARRAY * 2)
    return {"x": ARRAY, "y": ARRAY * 2}


def write_joblib(path: Path) -> dict[str, Any]:
    data = {"weights": ARRAY, "name": "tiny", "layers": [64, 32]}
    joblib.dump(data, path)
    return data


def write_safetensors(path: Path) -> dict[str, Any]:
    safetensors.torch.save_file(TENSORS, path)
    return dict(TENSORS)


def load_npy_mmap(path: Path) -> np.ndarray:
    arr = np.load(path, mmap_mode="r")
    assert isinstance(arr, np.memmap)
    return arr  # compared after the block: the mapping outlives the check


def load_npz(path: Path, **kwargs: Any) -> dict[str, Any]:
    with np.load(path, **kwargs) as archive:
        return {name: archive[name] for name in archive.files}


def load_joblib_mmap(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = joblib.load(path, mmap_mode="r")
    assert isinstance(data["weights"], np.memmap)
    return data


def load_safe_open(path: Path) -> dict[str, Any]:
    with safetensors.safe_open(path, framework="pt") as f:
        return {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118 - not a dict


def middle(size: int) -> int:
    return size // 2


def first_quarter(size: int) -> int:
    return size // 4  # inside x.npy, the first member of an .npz


@dataclass(frozen=True)
class Case:
    suffix: str
    write: Callable[[Path], Any]
    load: Callable[[Path], Any]
    equal: Callable[[Any, Any], bool]
    targets: tuple[Target, ...]
    #: Where a byte of the stored data (not of a header) lies, given the size.
    data_offset: Callable[[int], int] = middle


NUMPY: tuple[Target, ...] = ((np, "load"),)
JOBLIB: tuple[Target, ...] = ((joblib, "load"), (joblib.numpy_pickle, "load"))
SAFETENSORS: tuple[Target, ...] = (
    (safetensors, "safe_open"),
    (safetensors.torch, "safe_open"),
    (safetensors.torch, "load_file"),
)
TORCH: tuple[Target, ...] = ((torch, "load"), (torch.serialization, "load"))

CASES = {
    "numpy-npy": Case(".npy", write_npy, lambda p: np.load(p), np.array_equal, NUMPY),
    "numpy-npy-mmap": Case(".npy", write_npy, load_npy_mmap, np.array_equal, NUMPY),
    "numpy-object-allow_pickle": Case(
        ".npy", write_object_npy, lambda p: np.load(p, allow_pickle=True), same_objects, NUMPY
    ),
    "numpy-npz": Case(".npz", write_npz, load_npz, same_dicts, NUMPY, first_quarter),
    "numpy-npz-mmap": Case(
        ".npz", write_npz, lambda p: load_npz(p, mmap_mode="r"), same_dicts, NUMPY, first_quarter
    ),
    "joblib": Case(".joblib", write_joblib, lambda p: joblib.load(p), same_dicts, JOBLIB),
    "joblib-mmap": Case(".joblib", write_joblib, load_joblib_mmap, same_dicts, JOBLIB),
    "joblib.numpy_pickle.load": Case(
        ".joblib", write_joblib, lambda p: joblib.numpy_pickle.load(p), same_dicts, JOBLIB
    ),
    "safetensors.torch.load_file": Case(
        ".safetensors",
        write_safetensors,
        lambda p: safetensors.torch.load_file(p),
        same_dicts,
        SAFETENSORS,
    ),
    "safetensors.safe_open": Case(
        ".safetensors", write_safetensors, load_safe_open, same_dicts, SAFETENSORS
    ),
    # torch.load forwards a .safetensors path to safetensors.torch.load_file.
    "torch.load-safetensors": Case(
        ".safetensors", write_safetensors, lambda p: torch.load(p), same_dicts, TORCH + SAFETENSORS
    ),
}


@pytest.fixture(params=list(CASES))
def case(request: pytest.FixtureRequest) -> Case:
    return CASES[str(request.param)]


def write_model(root: Path, case: Case) -> tuple[Path, Any]:
    """root/weights<suffix> (unsigned) beside a config.json: its path and content."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text('{"layers": [64, 32]}')
    path = root / f"weights{case.suffix}"
    expected = case.write(path)
    assert path.is_file()
    return path, expected


@pytest.mark.parametrize("layout", ["FILE.sig", "model.sig"])
def test_signed_file_loads_with_identical_content(
    tmp_path: Path, keypair: tuple[Path, Path], policy: Policy, case: Case, layout: str
) -> None:
    model = tmp_path / "model"
    if layout == "FILE.sig":
        path, expected = write_model(model, case)
        modelsign.sign(path, keypair[0])
        assert path.with_name(path.name + ".sig").is_file()
    else:  # the nearest model.sig in a folder above the file vouches for it
        path, expected = write_model(model / "weights", case)
        modelsign.sign(model, keypair[0])
        assert (model / "model.sig").is_file()
    with enforcing(policy, case.targets):
        loaded = case.load(path)
    assert case.equal(loaded, expected)


def test_tampered_copy_is_refused_with_both_digests(
    tmp_path: Path, keypair: tuple[Path, Path], policy: Policy, case: Case
) -> None:
    path, expected = write_model(tmp_path / "model", case)
    modelsign.sign(tmp_path / "model", keypair[0])
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path / "model", copy)
    tampered = copy / path.name
    flip_byte(tampered, case.data_offset(tampered.stat().st_size))
    signed, changed = sha256(path), sha256(tampered)
    assert signed != changed
    with enforcing(policy, case.targets), pytest.raises(FileDigestMismatchError) as info:
        case.load(tampered)
    error = info.value
    assert_refusal(error, FileDigestMismatchError, tampered, policy)
    assert (error.expected, error.actual) == (signed, changed)
    assert f"expected sha256:{signed}" in str(error)
    assert f"actual sha256:{changed}" in str(error)
    assert str(copy / "model.sig") in str(error)
    with enforcing(policy, case.targets):  # the signed original still loads
        assert case.equal(case.load(path), expected)


def test_unsigned_file_is_refused(tmp_path: Path, policy: Policy, case: Case) -> None:
    path, _ = write_model(tmp_path / "model", case)
    with enforcing(policy, case.targets), pytest.raises(UnsignedFileError) as info:
        case.load(path)
    assert_refusal(info.value, UnsignedFileError, path, policy)
    # Nothing could vouch for it, so it is refused without being read at all
    # (an unsigned multi-GB file costs nothing to refuse).
    assert info.value.actual is None
    assert "not read" in str(info.value)
    assert info.value.expected is None


def test_file_signed_by_an_untrusted_key_is_refused(
    tmp_path: Path, policy: Policy, other_keypair: tuple[Path, Path], case: Case
) -> None:
    path, _ = write_model(tmp_path / "model", case)
    signature = modelsign.sign(path, other_keypair[0]).signature
    with enforcing(policy, case.targets), pytest.raises(UntrustedBundleError) as info:
        case.load(path)
    assert_refusal(info.value, UntrustedBundleError, path, policy)
    assert str(signature) in str(info.value)
    assert isinstance(info.value.__cause__, VerificationError)


def test_joblib_numpy_pickle_load_is_the_patched_joblib_load(policy: Policy) -> None:
    assert joblib.numpy_pickle.load is joblib.load
    with enforcing(policy, JOBLIB):
        assert joblib.numpy_pickle.load is joblib.load


def test_refusal_is_caught_by_an_existing_unpickling_error_handler(
    tmp_path: Path, policy: Policy
) -> None:
    path, _ = write_model(tmp_path / "model", CASES["joblib"])
    with hooks.enforce(policy):
        try:
            joblib.load(path)
        except pickle.UnpicklingError as e:
            caught: BaseException = e
        else:
            pytest.fail("the unsigned joblib file loaded")
    assert isinstance(caught, UnsignedFileError)


# ---------------------------------------------------------------- transformers


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """A tiny BertModel saved with save_pretrained (offline), imported outside
    any enforce block."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        import huggingface_hub.constants

        mp.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        import transformers.modeling_utils
        from transformers import BertConfig, BertModel

        torch.manual_seed(0)
        config = BertConfig(
            vocab_size=50,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
        )
        model = BertModel(config)
        source = tmp_path_factory.mktemp("bert") / "tiny-bert"
        model.save_pretrained(source)
        assert sorted(p.name for p in source.iterdir()) == ["config.json", "model.safetensors"]
        yield SimpleNamespace(
            cls=BertModel,
            modeling_utils=transformers.modeling_utils,
            source=source,
            state=model.state_dict(),
        )


def same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def signed_copy(source: Path, dest: Path, key: Path) -> Path:
    shutil.copytree(source, dest)
    modelsign.sign(dest, key)
    return dest


def test_from_pretrained_loads_a_signed_directory(
    tmp_path: Path, keypair: tuple[Path, Path], policy: Policy, tiny_bert: SimpleNamespace
) -> None:
    model_dir = signed_copy(tiny_bert.source, tmp_path / "bert", keypair[0])
    modeling_utils = tiny_bert.modeling_utils
    pretrained = modeling_utils.PreTrainedModel
    original_safe_open = modeling_utils.safe_open
    original_from_pretrained = vars(pretrained)["from_pretrained"]
    with hooks.enforce(policy):
        assert modeling_utils.safe_open is not original_safe_open
        assert modeling_utils.safe_open.__wrapped__ is original_safe_open
        assert vars(pretrained)["from_pretrained"] is not original_from_pretrained
        loaded = tiny_bert.cls.from_pretrained(model_dir)
    assert modeling_utils.safe_open is original_safe_open
    assert vars(pretrained)["from_pretrained"] is original_from_pretrained
    assert same_state(loaded.state_dict(), tiny_bert.state)


def test_transformers_safe_open_verifies_the_file(
    tmp_path: Path, keypair: tuple[Path, Path], policy: Policy, tiny_bert: SimpleNamespace
) -> None:
    model_dir = signed_copy(tiny_bert.source, tmp_path / "bert", keypair[0])
    weights = model_dir / "model.safetensors"
    with hooks.enforce(policy):
        with tiny_bert.modeling_utils.safe_open(weights, framework="pt") as f:
            embeddings = f.get_tensor("embeddings.word_embeddings.weight")
        assert torch.equal(embeddings, tiny_bert.state["embeddings.word_embeddings.weight"])
        flip_byte(weights)
        with pytest.raises(FileDigestMismatchError) as info:
            tiny_bert.modeling_utils.safe_open(weights, framework="pt")
    assert_refusal(info.value, FileDigestMismatchError, weights, policy)


def change_config(model_dir: Path) -> None:
    config = json.loads((model_dir / "config.json").read_text())
    config["injected"] = True
    (model_dir / "config.json").write_text(json.dumps(config))


def add_code(model_dir: Path) -> None:
    (model_dir / "evil.py").write_text("import os\nos.system('id')\n")


def tamper_weights(model_dir: Path) -> None:
    flip_byte(model_dir / "model.safetensors")


@pytest.mark.parametrize(
    ("change", "named", "cls"),
    [
        pytest.param(change_config, "config.json", FileDigestMismatchError, id="config-changed"),
        pytest.param(add_code, "evil.py", UnsignedFileError, id="extra-file"),
        pytest.param(
            tamper_weights, "model.safetensors", FileDigestMismatchError, id="weights-tampered"
        ),
    ],
)
@pytest.mark.parametrize("as_str", [False, True], ids=["Path", "str"])
def test_from_pretrained_refuses_a_changed_directory(
    tmp_path: Path,
    keypair: tuple[Path, Path],
    policy: Policy,
    tiny_bert: SimpleNamespace,
    change: Callable[[Path], None],
    named: str,
    cls: type[LoadRefusedError],
    as_str: bool,
) -> None:
    model_dir = signed_copy(tiny_bert.source, tmp_path / "bert", keypair[0])
    change(model_dir)
    with hooks.enforce(policy), pytest.raises(LoadRefusedError) as info:
        tiny_bert.cls.from_pretrained(str(model_dir) if as_str else model_dir)
    error = info.value
    assert type(error) is cls
    assert isinstance(error, pickle.UnpicklingError)
    assert str(model_dir) in str(error)
    assert named in str(error)
    assert policy.source in str(error)


def test_from_pretrained_with_subfolder_verifies_the_subfolder(
    tmp_path: Path, keypair: tuple[Path, Path], policy: Policy, tiny_bert: SimpleNamespace
) -> None:
    root = tmp_path / "pipeline"
    signed_copy(tiny_bert.source, root / "encoder", keypair[0])
    (root / "README.md").write_text("a pipeline with one signed component\n")
    with hooks.enforce(policy):
        loaded = tiny_bert.cls.from_pretrained(root, subfolder="encoder")
    assert same_state(loaded.state_dict(), tiny_bert.state)


# ------------------------------------------------------- Hugging Face cache


def hf_snapshot(tmp_path: Path, source: Path, key: Path) -> Path:
    """hub/models--org--tiny/{blobs,refs,snapshots/abc123} as huggingface_hub
    lays it out: snapshot files are relative symlinks ../../blobs/<sha256>.
    modelsign.sign refuses the symlinks, so a real copy with the same file
    names is signed and its model.sig copied into the snapshot."""
    repo = tmp_path / "hub" / REPO
    blobs, snapshot = repo / "blobs", repo / "snapshots" / REVISION
    blobs.mkdir(parents=True)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)
    for file in sorted(source.iterdir()):
        digest = sha256(file)
        shutil.copyfile(file, blobs / digest)
        (snapshot / file.name).symlink_to(f"../../blobs/{digest}")
    real = signed_copy(source, tmp_path / "signing" / REVISION, key)
    shutil.copyfile(real / "model.sig", snapshot / "model.sig")
    return snapshot


def test_hf_cache_snapshot_loads(
    tmp_path: Path, keypair: tuple[Path, Path], policy: Policy, tiny_bert: SimpleNamespace
) -> None:
    snapshot = hf_snapshot(tmp_path, tiny_bert.source, keypair[0])
    for name in ("config.json", "model.safetensors"):
        link = snapshot / name
        assert link.is_symlink()
        assert os.readlink(link) == f"../../blobs/{sha256(tiny_bert.source / name)}"
    elsewhere = tmp_path / "snapshot.sig"
    with pytest.raises(UnsafeModelError, match="symbolic link"):  # why the copy is signed
        modelsign.sign(snapshot, keypair[0], signature=elsewhere)
    assert not elsewhere.exists()
    with hooks.enforce(policy):
        by_path = tiny_bert.cls.from_pretrained(snapshot)
        by_repo_id = tiny_bert.cls.from_pretrained("org/tiny", cache_dir=tmp_path / "hub")
        tensors = safetensors.torch.load_file(snapshot / "model.safetensors")
    assert same_state(by_path.state_dict(), tiny_bert.state)
    assert same_state(by_repo_id.state_dict(), tiny_bert.state)
    assert torch.equal(
        tensors["embeddings.word_embeddings.weight"],
        tiny_bert.state["embeddings.word_embeddings.weight"],
    )


@pytest.mark.parametrize("relative", [False, True], ids=["absolute-link", "relative-link"])
def test_hf_cache_link_outside_blobs_is_refused(
    tmp_path: Path,
    keypair: tuple[Path, Path],
    policy: Policy,
    tiny_bert: SimpleNamespace,
    relative: bool,
) -> None:
    snapshot = hf_snapshot(tmp_path, tiny_bert.source, keypair[0])
    link = snapshot / "model.safetensors"
    outside = tmp_path / "outside.safetensors"
    shutil.copyfile(tiny_bert.source / "model.safetensors", outside)
    assert sha256(outside) == sha256(link)  # same bytes: only the link is wrong
    link.unlink()
    link.symlink_to(os.path.relpath(outside, snapshot) if relative else outside)
    with hooks.enforce(policy):
        with pytest.raises(LoadRefusedError) as directory:
            tiny_bert.cls.from_pretrained(snapshot)
        with pytest.raises(UnsafeLoadError) as single:
            safetensors.torch.load_file(link)
    assert isinstance(directory.value, pickle.UnpicklingError)
    assert "symbolic link" in str(directory.value)
    assert str(link) in str(directory.value)
    assert_refusal(single.value, UnsafeLoadError, link, policy)
    assert "symbolic link" in str(single.value)


def test_hf_cache_tampered_blob_is_refused(
    tmp_path: Path, keypair: tuple[Path, Path], policy: Policy, tiny_bert: SimpleNamespace
) -> None:
    snapshot = hf_snapshot(tmp_path, tiny_bert.source, keypair[0])
    link = snapshot / "model.safetensors"
    flip_byte(link.resolve())
    with hooks.enforce(policy):
        with pytest.raises(LoadRefusedError) as by_path:
            tiny_bert.cls.from_pretrained(snapshot)
        with pytest.raises(LoadRefusedError) as by_repo_id:
            tiny_bert.cls.from_pretrained("org/tiny", cache_dir=tmp_path / "hub")
        with pytest.raises(FileDigestMismatchError) as single:
            safetensors.torch.load_file(link)
    for error in (by_path.value, by_repo_id.value):
        assert isinstance(error, pickle.UnpicklingError)
        assert "model.safetensors" in str(error)
        assert str(snapshot) in str(error)
    assert_refusal(single.value, FileDigestMismatchError, link, policy)
    assert single.value.actual == sha256(link)


# ------------------------------------------------------------ other processes


@pytest.fixture
def ipc_policy_file(tmp_path: Path, other_keypair: tuple[Path, Path]) -> Path:
    """One key is enough here: these tests load no model file."""
    return write_policy(tmp_path / "policy.toml", other_keypair[1])


def test_pickle_round_trip_of_a_tensor_under_enforcement(policy: Policy) -> None:
    tensor = torch.arange(5)
    data = pickle.dumps(tensor)
    with hooks.enforce(policy):
        assert torch.equal(pickle.loads(data), tensor)
        assert torch.equal(pickle.load(io.BytesIO(data)), tensor)  # in memory: IPC


def echo_tensor(inbox: Any, outbox: Any, done: Any) -> None:
    """Child process: send back the tensor received, and whether enforcement is on."""
    from modelsign import hooks as child_hooks

    tensor = inbox.get(timeout=30)
    outbox.put((child_hooks.installed(), tensor))
    done.wait(30)  # keep the shared storage alive until the parent has it


def receive(outbox: Any, process: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return outbox.get(timeout=0.25)
        except queue.Empty:
            if process.exitcode is not None:
                pytest.fail(f"the child process exited with {process.exitcode} before answering")
    pytest.fail(f"no answer from the child process within {timeout} s")


@pytest.mark.parametrize("method", ["spawn", "forkserver", "fork"])
def test_tensor_round_trip_through_a_child_process(ipc_policy_file: Path, method: str) -> None:
    """Every child is enforced: fork inherits the hooks; spawn and forkserver
    children get MODELSIGN_POLICY from enforce(), and modelsign-autoload.pth
    turns enforcement on in them. The tensor crosses the queues both ways."""
    context = torch.multiprocessing.get_context(method)
    inbox, outbox, done = context.Queue(), context.Queue(), context.Event()
    sent = torch.arange(5)
    with hooks.enforce(ipc_policy_file):
        process = context.Process(target=echo_tensor, args=(inbox, outbox, done), daemon=True)
        process.start()
        try:
            inbox.put(sent)
            child_was_enforced, received = receive(outbox, process, timeout=20)
        finally:
            done.set()
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join(5)
        assert torch.equal(received, sent)
        assert torch.equal(pickle.loads(pickle.dumps(received)), sent)
    assert child_was_enforced is True
    assert process.exitcode == 0


def test_modules_imported_inside_the_block_get_their_originals_back(
    ipc_policy_file: Path,
) -> None:
    code = (
        "import sys\n"
        "import modelsign.hooks as hooks\n"
        "assert 'safetensors' not in sys.modules and 'torch' not in sys.modules\n"
        "with hooks.enforce(sys.argv[1]):\n"
        "    import safetensors.torch\n"
        "import safetensors, torch\n"
        "print(safetensors.torch.safe_open is safetensors.safe_open,"
        " torch.load is torch.serialization.load)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "MODELSIGN_POLICY"}
    result = subprocess.run(
        [sys.executable, "-c", code, str(ipc_policy_file)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True"]  # as without modelsign


# ------------------------------------------------------------------ warn mode


@pytest.fixture
def warn_policy(tmp_path: Path, keypair: tuple[Path, Path]) -> Policy:
    policy = Policy.load(write_policy(tmp_path / "policy.toml", keypair[1], mode="warn"))
    assert policy.mode == "warn"
    return policy


def modelsign_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "modelsign" and r.levelno == logging.WARNING
    ]


@pytest.mark.parametrize("mmap_mode", [None, "r"])
def test_warn_mode_loads_a_tampered_numpy_file_and_logs_it(
    tmp_path: Path,
    keypair: tuple[Path, Path],
    warn_policy: Policy,
    caplog: pytest.LogCaptureFixture,
    mmap_mode: str | None,
) -> None:
    path, _ = write_model(tmp_path / "model", CASES["numpy-npy"])
    modelsign.sign(path, keypair[0])
    flip_byte(path)
    on_disk = np.load(path)
    assert not np.array_equal(on_disk, ARRAY)  # the flipped byte is in the data
    with caplog.at_level(logging.WARNING, logger="modelsign"):
        with enforcing(warn_policy, NUMPY):
            loaded = np.load(path, mmap_mode=mmap_mode)
    assert np.array_equal(loaded, on_disk)
    messages = modelsign_warnings(caplog)
    assert len(messages) == 1, messages
    assert "warn mode" in messages[0]
    assert str(path) in messages[0]
    assert "digest mismatch" in messages[0]
    assert warn_policy.source in messages[0]


def test_warn_mode_from_pretrained_loads_tampered_weights_and_logs_them(
    tmp_path: Path,
    keypair: tuple[Path, Path],
    warn_policy: Policy,
    tiny_bert: SimpleNamespace,
    caplog: pytest.LogCaptureFixture,
) -> None:
    model_dir = signed_copy(tiny_bert.source, tmp_path / "bert", keypair[0])
    tamper_weights(model_dir)
    with caplog.at_level(logging.WARNING, logger="modelsign"), hooks.enforce(warn_policy):
        loaded = tiny_bert.cls.from_pretrained(model_dir)
    assert not same_state(loaded.state_dict(), tiny_bert.state)
    messages = modelsign_warnings(caplog)
    assert any(str(model_dir) in m and "model.safetensors" in m for m in messages), messages
    assert any(str(model_dir / "model.safetensors") in m for m in messages), messages


def test_bytes_transformers_reads_itself_must_be_verified(
    tmp_path: Path, keypair: tuple[Path, Path], policy: Policy, tiny_bert: SimpleNamespace
) -> None:
    """With disable_mmap, transformers opens the file itself and hands the bytes
    to safetensors.torch.load: those bytes are checked too."""
    model_dir = signed_copy(tiny_bert.source, tmp_path / "bert", keypair[0])
    weights = model_dir / "model.safetensors"
    reference = tiny_bert.cls.from_pretrained(model_dir).state_dict()
    with hooks.enforce(policy):
        # Inside from_pretrained, the verified directory's digests vouch for them.
        model = tiny_bert.cls.from_pretrained(model_dir, disable_mmap=True)
        assert all(torch.equal(v, reference[k]) for k, v in model.state_dict().items())
        # Outside it, only the policy's explicit bundles could: refused.
        with pytest.raises(UnsignedFileError, match="safetensors bytes"):
            tiny_bert.modeling_utils._safe_load_bytes(weights.read_bytes())
