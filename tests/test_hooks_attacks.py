"""Issue 10: attacks on the loader hook, written before the defences exist.

The attacker controls model files on disk (and the folders they sit in), but
neither the victim's code nor its policy. Each test turns enforcement on, does
what the victim does, and asserts the intended outcome:

* a payload (a pickle whose unpickling creates a marker file, through
  ``builtins.eval``, or Python that creates it on import) is refused with a
  :class:`~modelsign.errors.LoadRefusedError` AND never runs: the marker is
  checked even when the expected exception came ("ran, then refused" fails);
* unverified bytes of a format without code (safetensors, npy, TorchScript)
  are refused;
* signed models load, with equal data, and inter-process pickling keeps
  working.

Tests are grouped by the numbering of issue 10; ``test_oos_*`` are what the
threat model listed as out of scope, ``test_signed_*`` signed models that must
load, ``test_control_*`` inter-process pickling that must keep working,
``test_child_*`` enforcement carried into child processes, and ``test_extra_*``
attacks found while writing these, which the issue does not list.
"""

from __future__ import annotations

import bz2
import contextlib
import dbm
import gzip
import importlib
import io
import json
import lzma
import mmap
import multiprocessing
import os
import pickle
import queue
import re
import shelve
import shutil
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

# Bound before install(): the victim's module imported these names first.
from pickle import load as prebound_pickle_load
from typing import Any

import joblib
import numpy as np
import numpy.lib._npyio_impl
import numpy.lib.format
import pytest
import safetensors
import safetensors.numpy
import safetensors.torch
import torch
import torch.multiprocessing

import modelsign
from modelsign import hooks, keys
from modelsign.errors import ConfigError, LoadRefusedError
from modelsign.policy import Policy
from tests import attackkit
from tests.attackkit import Payload, payload_bytes, write_payload, write_torch_payload

VENV_BIN = Path(sys.executable).parent
ARRAY = np.arange(24, dtype=np.float32).reshape(4, 6)
TENSORS = {"w": torch.arange(12, dtype=torch.float32).reshape(3, 4), "b": torch.ones(2)}
DATA = {"layers": [8, 4, 2], "name": "tiny", "scale": 0.5}
HAS_FORKSERVER = "forkserver" in multiprocessing.get_all_start_methods()


# ------------------------------------------------------------------ fixtures


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No download, no inherited policy; enforcement and anything install()
    may have put in the environment for child processes removed afterwards."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    before = os.environ.pop("MODELSIGN_POLICY", None)
    stop_forkserver()
    yield
    hooks.uninstall()
    stop_forkserver()
    os.environ.pop("MODELSIGN_POLICY", None)
    if before is not None:
        os.environ["MODELSIGN_POLICY"] = before


def stop_forkserver() -> None:
    """multiprocessing keeps one fork server per process, started on first
    use with the state of that moment: each test starts its own."""
    if HAS_FORKSERVER:
        from multiprocessing import forkserver

        forkserver._forkserver._stop()  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def trusted_key(key_dir: Path) -> tuple[Path, Path]:
    """The victim's signer: (private key, public key)."""
    prefix = key_dir / "attacks-trusted"
    if not prefix.with_suffix(".key").exists():
        keys.write_keypair(keys.generate("ed25519"), prefix, None)
    return Path(f"{prefix}.key"), Path(f"{prefix}.pub")


@pytest.fixture(scope="session")
def attacker_key(key_dir: Path) -> tuple[Path, Path]:
    prefix = key_dir / "attacks-attacker"
    if not prefix.with_suffix(".key").exists():
        keys.write_keypair(keys.generate("ed25519"), prefix, None)
    return Path(f"{prefix}.key"), Path(f"{prefix}.pub")


@pytest.fixture
def policy(trusted_key: tuple[Path, Path]) -> Policy:
    return Policy.of([trusted_key[1]])


@pytest.fixture
def policy_file(tmp_path: Path, trusted_key: tuple[Path, Path]) -> Path:
    """The default policy, as a file (children can be given its path)."""
    path = tmp_path / "policy" / "policy.toml"
    path.parent.mkdir()
    path.write_text(f'[trust]\nkeys = ["{trusted_key[1]}"]\n')
    return path


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    """The file a payload creates: it must never exist."""
    return tmp_path / "PAYLOAD-RAN"


@pytest.fixture
def evil_pkl(tmp_path: Path, marker: Path) -> Path:
    """An unsigned pickle with a payload, in a folder of the attacker's."""
    return write_payload(tmp_path / "attacker" / "model.pkl", marker)


@contextlib.contextmanager
def refused(
    marker: Path | None, match: str | None = None, cls: type[BaseException] = LoadRefusedError
) -> Iterator[pytest.ExceptionInfo[BaseException]]:
    """Expect ``cls`` (matching ``match``); in every case, also when the
    expected refusal came, the payload must not have run."""
    try:
        with pytest.raises(cls, match=match) as info:
            yield info
    finally:
        if marker is not None:
            assert not marker.exists(), f"the payload ran: {marker} was written"


def sign(model: Path, key: tuple[Path, Path]) -> Path:
    modelsign.sign(model, key[0])
    return model


def same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# =========================================================================
# 1. Two threads inside `with modelsign.enforce(P):`: the first to leave
#    uninstalls the hooks while the second is still inside its block.


def test_1_thread_still_inside_enforce_stays_protected_when_another_thread_leaves(
    policy: Policy, evil_pkl: Path, marker: Path
) -> None:
    first_inside, second_inside, first_left = (threading.Event() for _ in range(3))
    outcome: dict[str, BaseException | None] = {}

    def first() -> None:
        with modelsign.enforce(policy):
            first_inside.set()
            second_inside.wait(10)
        first_left.set()

    def second() -> None:
        first_inside.wait(10)
        with modelsign.enforce(policy):
            second_inside.set()
            first_left.wait(10)
            try:
                with open(evil_pkl, "rb") as f:
                    pickle.load(f)
            except BaseException as e:
                outcome["error"] = e
            else:
                outcome["error"] = None

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not marker.exists(), f"the payload ran: {marker} was written"
    assert isinstance(outcome["error"], LoadRefusedError), outcome


# =========================================================================
# 2. Symlinks. A scoped policy and a link inside the scope to a file outside
#    it: the scope is checked against the link's target. Through file
#    objects, a link to another signed file loads that file (substitution).


@pytest.fixture
def scoped_policy(tmp_path: Path, trusted_key: tuple[Path, Path]) -> Policy:
    path = tmp_path / "policy.toml"
    (tmp_path / "models").mkdir(exist_ok=True)
    path.write_text(f'[trust]\nkeys = ["{trusted_key[1]}"]\n[enforce]\nscope = ["models"]\n')
    return Policy.load(path)


@pytest.fixture
def scoped_link(tmp_path: Path, evil_pkl: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """models/m/model.pkl (inside the scope) -> attacker/model.pkl (outside);
    the working directory is tmp_path, as the victim's."""
    link = tmp_path / "models" / "m" / "model.pkl"
    link.parent.mkdir(parents=True)
    link.symlink_to(evil_pkl)
    monkeypatch.chdir(tmp_path)
    return link


def test_2_scoped_link_to_an_outside_payload_via_pickle_load_of_open_file(
    scoped_policy: Policy, scoped_link: Path, marker: Path
) -> None:
    with hooks.enforce(scoped_policy), refused(marker, r"model\.pkl|builtins|eval"):
        pickle.load(open("models/m/model.pkl", "rb"))  # noqa: SIM115 - the victim's own line


def test_2_scoped_link_to_an_outside_payload_via_unpickler_of_open_file(
    scoped_policy: Policy, scoped_link: Path, marker: Path
) -> None:
    with hooks.enforce(scoped_policy), open("models/m/model.pkl", "rb") as f:
        with refused(marker, r"model\.pkl|builtins|eval"):
            pickle.Unpickler(f).load()


def test_2_scoped_link_to_an_outside_payload_by_path_is_refused(
    scoped_policy: Policy, scoped_link: Path, marker: Path
) -> None:
    """Control: loads by path refuse the link (passes today)."""
    with hooks.enforce(scoped_policy), refused(marker, r"model\.pkl"):
        torch.load("models/m/model.pkl", weights_only=False)


@pytest.fixture
def substituted(tmp_path: Path, trusted_key: tuple[Path, Path]) -> Path:
    """models/m and models/n, both signed, each with model.pkl (pickle) and
    model.pt (torch.save); then m's two files are replaced by links to n's
    (signed by the same key, other content). Returns models/m."""
    m, n = tmp_path / "models" / "m", tmp_path / "models" / "n"
    for folder, which in ((m, "m"), (n, "n")):
        folder.mkdir(parents=True)
        (folder / "model.pkl").write_bytes(pickle.dumps({"which": which}))
        torch.save({"which": which}, folder / "model.pt")
        sign(folder, trusted_key)
    for name in ("model.pkl", "model.pt"):
        (m / name).unlink()
        (m / name).symlink_to(n / name)
    return m


def _pickle_load_file(folder: Path) -> Any:
    with open(folder / "model.pkl", "rb") as f:
        return pickle.load(f)


def _torch_load_file(folder: Path) -> Any:
    with open(folder / "model.pt", "rb") as f:
        return torch.load(f)


def _numpy_load_file(folder: Path) -> Any:
    with open(folder / "model.pkl", "rb") as f:
        return np.load(f, allow_pickle=True)


LOAD_FILE_OBJECT = [
    pytest.param(_pickle_load_file, id="pickle.load"),
    pytest.param(_torch_load_file, id="torch.load"),
    pytest.param(_numpy_load_file, id="numpy.load"),
]


@pytest.mark.parametrize("load", LOAD_FILE_OBJECT)
def test_2_link_to_another_signed_file_via_file_object_is_refused(
    policy: Policy, substituted: Path, load: Callable[[Path], Any]
) -> None:
    """The victim opens models/m/model.*; it must not get n's signed content."""
    with hooks.enforce(policy), refused(None, r"model\.p|symbolic link"):
        loaded = load(substituted)
        assert loaded != {"which": "n"}, "substituted: loaded models/n's signed content"


def test_2_link_to_another_signed_file_by_path_is_refused(
    policy: Policy, substituted: Path
) -> None:
    """Control: by path the link is refused (passes today)."""
    with hooks.enforce(policy), refused(None, r"model\.pt"):
        torch.load(substituted / "model.pt")


# =========================================================================
# 3. trust_remote_code on any Auto class other than the patched ones imports
#    the unsigned folder's Python without a check.


@pytest.fixture
def hf_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """transformers copies remote code into HF_MODULES_CACHE and imports it
    from there: a private one per test, removed from sys.path afterwards."""
    import transformers.dynamic_module_utils as dmu

    cache = tmp_path / "hf_modules"
    monkeypatch.setattr(dmu, "HF_MODULES_CACHE", str(cache))
    monkeypatch.setattr(sys, "path", list(sys.path))
    return cache


AUTO_KEYS = (
    "AutoConfig",
    "AutoModel",
    "AutoTokenizer",
    "AutoProcessor",
    "AutoFeatureExtractor",
    "AutoImageProcessor",
    "AutoVideoProcessor",
)


def write_remote_code_folder(folder: Path, marker: Path) -> Path:
    """A model folder whose every config file points its Auto class at
    evil.py, whose import creates ``marker``."""
    folder.mkdir(parents=True)
    (folder / "evil.py").write_text(
        attackkit.source_touching(marker) + "\n\nclass Evil:\n    pass\n"
    )
    auto_map: dict[str, Any] = {name: "evil.Evil" for name in AUTO_KEYS}
    auto_map["AutoTokenizer"] = ["evil.Evil", None]
    config = {"model_type": "evil-remote", "auto_map": auto_map}
    for name in ("config.json", "preprocessor_config.json", "video_preprocessor_config.json"):
        (folder / name).write_text(json.dumps(config))
    # A processor class of the library's own beside the auto_map: AutoProcessor
    # then imports the auto_map's module without loading the config first.
    (folder / "processor_config.json").write_text(
        json.dumps({**config, "processor_class": "BertTokenizer"})
    )
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"auto_map": {"AutoTokenizer": ["evil.Evil", None]}})
    )
    return folder


@pytest.mark.parametrize(
    "auto_class",
    [
        "AutoProcessor",
        "AutoFeatureExtractor",
        # AutoImageProcessor and AutoVideoProcessor need PIL / torchvision,
        # which the test environment does not install.
        # Controls: patched today, refused before any import.
        "AutoConfig",
        "AutoTokenizer",
        "AutoModel",
    ],
)
def test_3_trust_remote_code_imports_no_code_from_an_unsigned_folder(
    policy: Policy, tmp_path: Path, marker: Path, hf_modules: Path, auto_class: str
) -> None:
    import transformers

    folder = write_remote_code_folder(tmp_path / "remote", marker)
    cls = getattr(transformers, auto_class)
    with hooks.enforce(policy), refused(marker, "remote"):
        cls.from_pretrained(str(folder), trust_remote_code=True)


# =========================================================================
# 4. torch.export.load (.pt2), torch.package, torch.hub.


class Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = torch.nn.Linear(3, 2)
        self.register_buffer("buf", torch.ones(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x) + self.buf


EXAMPLE = torch.arange(3, dtype=torch.float32).reshape(1, 3)


def write_pt2(path: Path) -> torch.Tensor:
    """A tiny exported program; returns its output on EXAMPLE."""
    path.parent.mkdir(parents=True, exist_ok=True)
    module = Tiny()
    torch.export.save(torch.export.export(module, (EXAMPLE,)), path)
    with torch.no_grad():
        return module(EXAMPLE)


def craft_pt2(source: Path, dest: Path, marker: Path) -> Path:
    """``source`` with one more constant: an opaque object, which
    torch.export.load unpickles with ``pickle.loads``; it is the payload."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(dest, "w", zipfile.ZIP_STORED) as zout:
        prefix = zin.namelist()[0].split("/")[0]
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith("data/constants/model_constants_config.json"):
                config = json.loads(data)
                evil = {"path_name": "opaque_obj_0", "is_param": False, "use_pickle": True}
                config["config"] = {"evil": {**evil, "tensor_meta": None}, **config["config"]}
                data = json.dumps(config).encode()
            zout.writestr(info.filename, data)
        zout.writestr(f"{prefix}/data/constants/opaque_obj_0", payload_bytes(marker))
    return dest


def test_4_torch_export_load_of_a_crafted_pt2_runs_no_payload(
    policy: Policy, tmp_path: Path, marker: Path
) -> None:
    write_pt2(tmp_path / "build" / "good.pt2")
    (tmp_path / "attacker").mkdir()
    evil = craft_pt2(tmp_path / "build" / "good.pt2", tmp_path / "attacker" / "m.pt2", marker)
    with hooks.enforce(policy), refused(marker, r"m\.pt2|builtins|eval"):
        torch.export.load(evil)


def test_4_torch_export_load_of_a_tampered_signed_pt2_runs_no_payload(
    policy: Policy, tmp_path: Path, marker: Path, trusted_key: tuple[Path, Path]
) -> None:
    model = tmp_path / "models" / "exported"
    write_pt2(model / "m.pt2")
    sign(model, trusted_key)
    good = tmp_path / "good.pt2"
    shutil.copy(model / "m.pt2", good)
    craft_pt2(good, model / "m.pt2", marker)
    with hooks.enforce(policy), refused(marker, r"m\.pt2|builtins|eval"):
        torch.export.load(model / "m.pt2")


def write_torch_package(path: Path, marker: Path) -> Path:
    from torch.package import PackageExporter

    path.parent.mkdir(parents=True, exist_ok=True)
    with PackageExporter(path) as exporter:
        exporter.save_source_string("evil", attackkit.source_touching(marker))
        exporter.save_binary("res", "obj.pkl", payload_bytes(marker))
    return path


def test_4_torch_package_importer_imports_no_module_from_an_unsigned_package(
    policy: Policy, tmp_path: Path, marker: Path
) -> None:
    from torch.package import PackageImporter

    package = write_torch_package(tmp_path / "attacker" / "model.pt", marker)
    with hooks.enforce(policy), refused(marker, r"model\.pt"):
        PackageImporter(package).import_module("evil")


def test_4_torch_package_load_pickle_runs_no_payload(
    policy: Policy, tmp_path: Path, marker: Path
) -> None:
    from torch.package import PackageImporter

    package = write_torch_package(tmp_path / "attacker" / "model.pt", marker)
    with hooks.enforce(policy), refused(marker, r"model\.pt|builtins|eval"):
        PackageImporter(package).load_pickle("res", "obj.pkl")


def write_hub_folder(folder: Path, marker: Path | None) -> Path:
    folder.mkdir(parents=True)
    touch = attackkit.source_touching(marker) if marker is not None else ""
    (folder / "hubconf.py").write_text(
        f"dependencies = []\n{touch}\n\ndef tiny():\n    return {{'layers': [8, 4, 2]}}\n"
    )
    return folder


def test_4_torch_hub_load_local_runs_no_unsigned_hubconf(
    policy: Policy, tmp_path: Path, marker: Path
) -> None:
    folder = write_hub_folder(tmp_path / "attacker" / "hub", marker)
    with hooks.enforce(policy), refused(marker, "hub"):
        torch.hub.load(str(folder), "tiny", source="local")


# =========================================================================
# 5. multiprocessing children started with spawn or forkserver after
#    install() run without the hook (forkserver is the Linux default from
#    Python 3.14).

START_METHODS = [
    pytest.param("spawn", id="spawn"),
    pytest.param(
        "forkserver",
        id="forkserver",
        marks=pytest.mark.skipif(not HAS_FORKSERVER, reason="no forkserver on this platform"),
    ),
]


@pytest.mark.parametrize("method", START_METHODS)
def test_5_multiprocessing_child_refuses_an_unsigned_payload(
    policy_file: Path, evil_pkl: Path, marker: Path, method: str
) -> None:
    context = multiprocessing.get_context(method)
    hooks.install(policy_file)
    process = context.Process(target=attackkit.child_pickle_load, args=(str(evil_pkl),))
    process.start()
    process.join(120)
    if process.is_alive():
        process.kill()
        process.join(10)
    assert not marker.exists(), f"the payload ran in the {method} child: {marker} was written"
    assert process.exitcode == attackkit.EXIT_REFUSED, f"child exit code {process.exitcode}"


def test_5_fork_child_refuses_an_unsigned_payload(
    policy_file: Path, evil_pkl: Path, marker: Path
) -> None:
    """Control: a forked child inherits the patched functions (passes today)."""
    context = multiprocessing.get_context("fork")
    hooks.install(policy_file)
    process = context.Process(target=attackkit.child_pickle_load, args=(str(evil_pkl),))
    process.start()
    process.join(60)
    assert not marker.exists(), f"the payload ran in the fork child: {marker} was written"
    assert process.exitcode == attackkit.EXIT_REFUSED


@pytest.mark.skipif(not HAS_FORKSERVER, reason="no forkserver on this platform")
def test_extra_forkserver_started_before_install_refuses_an_unsigned_payload(
    policy_file: Path, evil_pkl: Path, marker: Path
) -> None:
    """Extra to 5: the fork server was started (by an earlier pool, a library
    at import) before install(); the children it forks later must be
    enforced all the same."""
    context = multiprocessing.get_context("forkserver")
    warm_up = context.Process(target=attackkit.square, args=(2,))
    warm_up.start()
    warm_up.join(120)
    assert warm_up.exitcode == 0
    hooks.install(policy_file)
    process = context.Process(target=attackkit.child_pickle_load, args=(str(evil_pkl),))
    process.start()
    process.join(120)
    assert not marker.exists(), f"the payload ran in the forkserver child: {marker} was written"
    assert process.exitcode == attackkit.EXIT_REFUSED, f"child exit code {process.exitcode}"


# =========================================================================
# 6. install() / enforce() without an argument read ./pyproject.toml: run
#    from a folder the attacker controls, the attacker's key becomes trusted.


@pytest.fixture
def attacker_folder(
    tmp_path: Path,
    attacker_key: tuple[Path, Path],
    marker: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    """The working directory: a pyproject.toml trusting the attacker's key,
    beside a payload the attacker signed."""
    folder = tmp_path / "checkout"
    (folder / "model").mkdir(parents=True)
    write_payload(folder / "model" / "model.pkl", marker)
    sign(folder / "model", attacker_key)
    (folder / "pyproject.toml").write_text(
        f'[project]\nname = "x"\n\n[tool.modelsign.trust]\nkeys = ["{attacker_key[1]}"]\n'
    )
    monkeypatch.chdir(folder)
    return folder


def test_6_install_without_argument_does_not_trust_the_working_directory(
    attacker_folder: Path, marker: Path
) -> None:
    with refused(marker, "MODELSIGN_POLICY", cls=ConfigError):
        hooks.install()
        # Reached only when install() took its policy from ./pyproject.toml.
        with open("model/model.pkl", "rb") as f:
            pickle.load(f)
    assert not hooks.installed()


def test_6_enforce_without_argument_does_not_trust_the_working_directory(
    attacker_folder: Path, marker: Path
) -> None:
    with refused(marker, "MODELSIGN_POLICY", cls=ConfigError):
        with modelsign.enforce(), open("model/model.pkl", "rb") as f:
            pickle.load(f)
    assert not hooks.installed()


# =========================================================================
# 7. pickle.load from a pipe is treated as IPC.


def compressed_through(path: Path) -> tuple[list[str], Path]:
    """The command that writes ``path``'s bytes to a pipe: zstdcat of a .zst
    copy, or cat when zstd is missing."""
    if shutil.which("zstd") and shutil.which("zstdcat"):
        out = path.with_name(path.name + ".zst")
        subprocess.run(["zstd", "-q", "-f", "-o", str(out), str(path)], check=True)
        return ["zstdcat"], out
    if shutil.which("cat") is None:
        pytest.skip("neither zstdcat nor cat is installed to make the pipe")
    return ["cat"], path


def test_7_pickle_load_from_a_decompressing_pipe_runs_no_payload(
    policy: Policy, evil_pkl: Path, marker: Path
) -> None:
    command, source = compressed_through(evil_pkl)
    with hooks.enforce(policy):
        with subprocess.Popen([*command, str(source)], stdout=subprocess.PIPE) as process:
            assert process.stdout is not None
            with refused(marker, r"builtins|eval|pipe"):
                pickle.load(process.stdout)


# =========================================================================
# 8. Unverified bytes without code.


@pytest.fixture
def unsigned_tokenizer(tmp_path: Path) -> Path:
    from transformers import BertTokenizerFast

    folder = tmp_path / "attacker" / "tokenizer"
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b"])}
    BertTokenizerFast(vocab=vocab).save_pretrained(folder)
    return folder


def test_8_bert_tokenizer_fast_from_an_unsigned_folder_is_refused(
    policy: Policy, unsigned_tokenizer: Path
) -> None:
    from transformers import BertTokenizerFast

    with hooks.enforce(policy), refused(None, "tokenizer"):
        BertTokenizerFast.from_pretrained(str(unsigned_tokenizer))


def test_8_safetensors_torch_load_of_unverified_bytes_is_refused(
    policy: Policy, tmp_path: Path
) -> None:
    path = tmp_path / "attacker" / "model.safetensors"
    path.parent.mkdir()
    safetensors.torch.save_file(TENSORS, path)
    with hooks.enforce(policy), refused(None):
        safetensors.torch.load(Path(path).read_bytes())


def test_8_numpy_open_memmap_of_an_unsigned_file_is_refused(policy: Policy, tmp_path: Path) -> None:
    path = tmp_path / "attacker" / "array.npy"
    path.parent.mkdir()
    np.save(path, ARRAY)
    with hooks.enforce(policy), refused(None, r"array\.npy"):
        numpy.lib.format.open_memmap(path, mode="r")


def test_8_torch_jit_load_of_an_unsigned_file_is_refused(policy: Policy, tmp_path: Path) -> None:
    path = tmp_path / "attacker" / "scripted.pt"
    path.parent.mkdir()
    torch.jit.save(torch.jit.script(Tiny()), path)
    with hooks.enforce(policy), refused(None, r"scripted\.pt"):
        torch.jit.load(path)


def test_8_prebound_numpy_npyio_impl_load_of_an_unsigned_file_is_refused(
    policy: Policy, tmp_path: Path
) -> None:
    """numpy.load is patched; the function it is bound from is not."""
    path = tmp_path / "attacker" / "array.npy"
    path.parent.mkdir()
    np.save(path, ARRAY)
    with hooks.enforce(policy), refused(None, r"array\.npy"):
        numpy.lib._npyio_impl.load(path)


def test_8_prebound_numpy_npyio_impl_load_runs_no_object_array_payload(
    policy: Policy, tmp_path: Path, marker: Path
) -> None:
    """The same with allow_pickle=True and an object array that is a payload."""
    path = tmp_path / "attacker" / "objects.npy"
    path.parent.mkdir()
    np.save(path, np.array([Payload(marker)], dtype=object), allow_pickle=True)
    with hooks.enforce(policy), refused(marker, r"objects\.npy|builtins|eval"):
        numpy.lib._npyio_impl.load(path, allow_pickle=True)


# =========================================================================
# 9. `modelsign run -- python -S prog.py` starts the program unprotected.

PROG = """\
import pathlib, pickle, sys
pathlib.Path(sys.argv[1]).touch()  # the program started
with open(sys.argv[2], "rb") as f:
    pickle.load(f)
"""


def run_is_refused(policy_file: Path, command: list[str], started: Path, marker: Path) -> None:
    """`modelsign run --policy P -- COMMAND` must refuse (exit 2) rather than
    start the program unprotected: neither the program nor its payload ran."""
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        [str(VENV_BIN / "modelsign"), "run", "--policy", str(policy_file), "--", *command],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert not marker.exists(), f"the payload ran: {marker} was written"
    assert not started.exists(), "the program was started without enforcement"
    assert result.returncode == 2, result


@pytest.mark.parametrize(
    "flags",
    [
        pytest.param(["-S"], id="-S"),
        pytest.param(["-I", "-S"], id="-I-S"),
        pytest.param(["-IS"], id="-IS"),
    ],
)
def test_9_modelsign_run_refuses_a_python_that_skips_site(
    policy_file: Path, tmp_path: Path, evil_pkl: Path, marker: Path, flags: list[str]
) -> None:
    prog = tmp_path / "prog.py"
    prog.write_text(PROG)
    started = tmp_path / "started"
    command = ["python", *flags, str(prog), str(started), str(evil_pkl)]
    run_is_refused(policy_file, command, started, marker)


# =========================================================================
# Out of scope in the threat model today, and running code all the same.


def test_oos_pickle_load_bound_before_install_runs_no_payload(
    policy: Policy, evil_pkl: Path, marker: Path
) -> None:
    with hooks.enforce(policy), open(evil_pkl, "rb") as f:
        with refused(marker, r"builtins|eval|model\.pkl"):
            prebound_pickle_load(f)


def test_oos_shelve_value_runs_no_payload(policy: Policy, tmp_path: Path, marker: Path) -> None:
    db = tmp_path / "attacker" / "models.db"
    db.parent.mkdir()
    with shelve.open(str(db)) as shelf:
        shelf["model"] = Payload(marker)
    with hooks.enforce(policy), shelve.open(str(db), "r") as shelf:
        with refused(marker, r"builtins|eval"):
            shelf["model"]


def test_oos_pickle_loads_of_bytes_read_from_a_file_runs_no_payload(
    policy: Policy, evil_pkl: Path, marker: Path
) -> None:
    with hooks.enforce(policy), refused(marker, r"builtins|eval"):
        pickle.loads(evil_pkl.read_bytes())


def test_oos_pickle_loads_of_a_dbm_value_runs_no_payload(
    policy: Policy, tmp_path: Path, marker: Path
) -> None:
    db = tmp_path / "attacker" / "models.dbm"
    db.parent.mkdir()
    with dbm.open(str(db), "c") as d:
        d["model"] = payload_bytes(marker)
    with hooks.enforce(policy), dbm.open(str(db), "r") as d:
        with refused(marker, r"builtins|eval"):
            pickle.loads(d["model"])


def test_oos_zip_member_stream_runs_no_payload(
    policy: Policy, tmp_path: Path, marker: Path
) -> None:
    archive = tmp_path / "attacker" / "models.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("model.pkl", payload_bytes(marker))
    with hooks.enforce(policy), zipfile.ZipFile(archive) as zf, zf.open("model.pkl") as f:
        with refused(marker, r"builtins|eval|model"):
            pickle.load(f)


def test_oos_tar_member_stream_runs_no_payload(
    policy: Policy, tmp_path: Path, evil_pkl: Path, marker: Path
) -> None:
    archive = tmp_path / "attacker" / "models.tar"
    with tarfile.open(archive, "w") as tf:
        tf.add(evil_pkl, arcname="model.pkl")
    with hooks.enforce(policy), tarfile.open(archive) as tf:
        f = tf.extractfile("model.pkl")
        assert f is not None
        with refused(marker, r"builtins|eval|model"):
            pickle.load(f)


def test_oos_stream_without_a_file_descriptor_runs_no_payload(
    policy: Policy, evil_pkl: Path, marker: Path
) -> None:
    stream = io.BufferedReader(attackkit.Unseekable(evil_pkl.read_bytes()))
    with hooks.enforce(policy), refused(marker, r"builtins|eval"):
        pickle.load(stream)


def test_oos_mmap_object_runs_no_payload(policy: Policy, evil_pkl: Path, marker: Path) -> None:
    with hooks.enforce(policy), open(evil_pkl, "rb") as f:
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            with refused(marker, r"builtins|eval|model\.pkl"):
                pickle.load(mapped)  # type: ignore[arg-type]


@contextlib.contextmanager
def reimported_pickle() -> Iterator[Any]:
    """A second, fresh pickle module (as a plugin loader or importlib trick
    gives), with the original put back afterwards."""
    saved = sys.modules.pop("pickle")
    try:
        yield importlib.import_module("pickle")
    finally:
        sys.modules["pickle"] = saved


@pytest.mark.parametrize(
    "how",
    [
        pytest.param(lambda p, f: p.load(f), id="load"),
        pytest.param(lambda p, f: p.Unpickler(f).load(), id="Unpickler"),
        pytest.param(lambda p, f: p._load(f), id="_load"),
        pytest.param(lambda p, f: p._Unpickler(f).load(), id="_Unpickler"),
    ],
)
def test_oos_reimported_pickle_runs_no_payload(
    policy: Policy, evil_pkl: Path, marker: Path, how: Callable[[Any, Any], Any]
) -> None:
    with hooks.enforce(policy), reimported_pickle() as fresh, open(evil_pkl, "rb") as f:
        with refused(marker, r"builtins|eval|model\.pkl"):
            how(fresh, f)


RELOAD_SCRIPT = """\
import importlib, sys
import torch, torch.serialization
from modelsign import hooks
from tests import attackkit
hooks.install(sys.argv[1])
importlib.reload(torch.serialization)
sys.exit(attackkit._classify(
    lambda: torch.serialization.load(sys.argv[2], weights_only=False)))
"""


def test_oos_reloaded_torch_serialization_runs_no_payload(
    policy_file: Path, tmp_path: Path, marker: Path
) -> None:
    """In a child interpreter: a reload cannot be undone in this one."""
    evil = write_torch_payload(tmp_path / "attacker" / "model.pt", marker)
    env = {k: v for k, v in os.environ.items() if k != "MODELSIGN_POLICY"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    result = attackkit.run_child_script(RELOAD_SCRIPT, str(policy_file), str(evil), env=env)
    assert not marker.exists(), f"the payload ran: {marker} was written\n{result.stderr}"
    assert result.returncode == attackkit.EXIT_REFUSED, result


# =========================================================================
# Signed models that must load (refused or broken today).


def test_signed_joblib_mmap_arrays_can_be_shared_with_workers(
    policy: Policy, tmp_path: Path, trusted_key: tuple[Path, Path]
) -> None:
    """joblib.load(mmap_mode="r") maps the hook's memfd, /proc/self/fd/N:
    joblib.Parallel hands that name to its workers, which reopen it."""
    model = tmp_path / "models" / "jl"
    model.mkdir(parents=True)
    joblib.dump({"w": ARRAY, "name": "tiny"}, model / "m.joblib")
    sign(model, trusted_key)
    with hooks.enforce(policy):
        data = joblib.load(model / "m.joblib", mmap_mode="r")
        sums = joblib.Parallel(n_jobs=2, backend="loky")(
            joblib.delayed(np.sum)(data["w"]) for _ in range(2)
        )
    assert sums == [ARRAY.sum()] * 2


def test_signed_joblib_mmap_array_never_resolves_to_another_file(
    policy: Policy, tmp_path: Path, trusted_key: tuple[Path, Path]
) -> None:
    """The memmap's filename is /proc/self/fd/N, closed after the load: the
    number goes to whatever the program opens next. Workers of a forking
    pool that reopen the name then map that other file, unverified, and
    compute on it without an error."""
    model = tmp_path / "models" / "jl"
    model.mkdir(parents=True)
    joblib.dump({"w": ARRAY}, model / "m.joblib")
    sign(model, trusted_key)
    other = tmp_path / "attacker" / "other.bin"
    other.parent.mkdir()
    other.write_bytes(b"\x00" * ARRAY.nbytes * 4)  # zeros: a sum of 0.0
    with hooks.enforce(policy):
        data = joblib.load(model / "m.joblib", mmap_mode="r")
    name = str(getattr(data["w"], "filename", ""))
    match = re.fullmatch(r"/proc/self/fd/(\d+)", name)
    fd = os.open(other, os.O_RDONLY)
    try:
        if match is not None:  # the program's next open() gets that number
            os.dup2(fd, int(match.group(1)))
        sums = joblib.Parallel(n_jobs=2, backend="multiprocessing")(
            joblib.delayed(np.sum)(data["w"]) for _ in range(2)
        )
    finally:
        if match is not None:
            os.close(int(match.group(1)))
        os.close(fd)
    assert sums == [ARRAY.sum()] * 2


def test_signed_gzip_pickle_loads(
    policy: Policy, tmp_path: Path, trusted_key: tuple[Path, Path]
) -> None:
    model = tmp_path / "models" / "gz"
    model.mkdir(parents=True)
    with gzip.open(model / "model.pkl.gz", "wb") as f:
        pickle.dump(DATA, f)
    sign(model, trusted_key)
    with hooks.enforce(policy), gzip.open(model / "model.pkl.gz", "rb") as f:
        assert pickle.load(f) == DATA


@pytest.mark.parametrize("opener", [bz2.open, lzma.open], ids=["bz2", "lzma"])
def test_extra_signed_bz2_or_lzma_pickle_loads(
    policy: Policy, tmp_path: Path, trusted_key: tuple[Path, Path], opener: Callable[..., Any]
) -> None:
    """Extra, as gzip: BZ2File and LZMAFile also expose the compressed file's
    descriptor, so the hook hands pickle the compressed bytes."""
    model = tmp_path / "models" / "compressed"
    model.mkdir(parents=True)
    with opener(model / "model.pkl.x", "wb") as f:
        pickle.dump(DATA, f)
    sign(model, trusted_key)
    with hooks.enforce(policy), opener(model / "model.pkl.x", "rb") as f:
        assert pickle.load(f) == DATA


def test_signed_pt2_loads_with_equal_output(
    policy: Policy, tmp_path: Path, trusted_key: tuple[Path, Path]
) -> None:
    model = tmp_path / "models" / "exported"
    expected = write_pt2(model / "m.pt2")
    sign(model, trusted_key)
    with hooks.enforce(policy):
        program = torch.export.load(model / "m.pt2")
    with torch.no_grad():
        assert torch.equal(program.module()(EXAMPLE), expected)


def test_signed_file_of_several_pickles_loads_each(
    policy: Policy, tmp_path: Path, trusted_key: tuple[Path, Path]
) -> None:
    model = tmp_path / "models" / "stream"
    model.mkdir(parents=True)
    items = [DATA, [1, 2, 3], {"x": 2.5}]
    with open(model / "records.pkl", "wb") as f:
        for item in items:
            pickle.dump(item, f)
    sign(model, trusted_key)
    with hooks.enforce(policy), open(model / "records.pkl", "rb") as f:
        assert [pickle.load(f) for _ in items] == items


# =========================================================================
# Controls: inter-process pickling under enforcement with the default policy.

ALL_START_METHODS = [pytest.param("fork", id="fork"), *START_METHODS]


@pytest.mark.parametrize("method", ALL_START_METHODS)
def test_control_multiprocessing_pool(policy_file: Path, method: str) -> None:
    context = multiprocessing.get_context(method)
    with hooks.enforce(policy_file), context.Pool(2) as pool:
        assert pool.map_async(attackkit.square, range(6)).get(timeout=120) == [
            0,
            1,
            4,
            9,
            16,
            25,
        ]
        sums = pool.map_async(attackkit.tensor_sum, [torch.arange(4), torch.ones(3)]).get(120)
    assert [int(s) for s in sums] == [6, 3]


@pytest.mark.parametrize("method", ALL_START_METHODS)
def test_control_process_pool_executor(policy_file: Path, method: str) -> None:
    context = multiprocessing.get_context(method)
    with hooks.enforce(policy_file):
        with ProcessPoolExecutor(2, mp_context=context) as executor:
            assert list(executor.map(attackkit.square, range(4), timeout=120)) == [0, 1, 4, 9]
            assert int(executor.submit(attackkit.tensor_sum, ARRAY).result(120)) == int(ARRAY.sum())


@pytest.mark.parametrize("method", ALL_START_METHODS)
def test_control_dataloader_with_two_workers(policy_file: Path, method: str) -> None:
    loader = torch.utils.data.DataLoader(
        attackkit.Squares(8),
        batch_size=4,
        num_workers=2,
        multiprocessing_context=method,
        timeout=120,
    )
    with hooks.enforce(policy_file):
        batches = list(loader)
    assert torch.equal(torch.cat([b[1] for b in batches]), torch.arange(8) ** 2)


def receive(outbox: Any, process: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return outbox.get(timeout=0.25)
        except queue.Empty:
            if process.exitcode is not None:
                pytest.fail(f"the child exited with {process.exitcode} before answering")
    pytest.fail(f"no answer from the child within {timeout} s")


@pytest.mark.parametrize("method", ALL_START_METHODS)
def test_control_torch_multiprocessing_queue_with_tensors(policy_file: Path, method: str) -> None:
    context = torch.multiprocessing.get_context(method)
    inbox, outbox, done = context.Queue(), context.Queue(), context.Event()
    sent = {"w": torch.arange(6.0), "b": torch.ones(2, 2)}
    with hooks.enforce(policy_file):
        process = context.Process(
            target=attackkit.double_tensors, args=(inbox, outbox, done), daemon=True
        )
        process.start()
        try:
            inbox.put(sent)
            received = receive(outbox, process, timeout=120)
        finally:
            done.set()
            process.join(30)
            if process.is_alive():
                process.kill()
                process.join(5)
    assert same_tensors(received, {k: v * 2 for k, v in sent.items()})


# =========================================================================
# install() carries into every child Python a process starts. (spawn and
# forkserver: test_5_multiprocessing_child_refuses_an_unsigned_payload.)


def test_child_subprocess_of_the_same_interpreter_refuses_an_unsigned_payload(
    policy_file: Path, evil_pkl: Path, marker: Path
) -> None:
    hooks.install(policy_file)
    result = attackkit.run_child_script(attackkit.CHILD_LOAD_SCRIPT, str(evil_pkl))
    assert not marker.exists(), f"the payload ran in the child: {marker} was written"
    assert result.returncode == 0, result
    assert result.stdout.startswith("REFUSED"), result


# =========================================================================
# Extra: found while writing these; not in issue 10.


def test_extra_scoped_link_to_an_outside_folder_via_pickle_load(
    scoped_policy: Policy, tmp_path: Path, evil_pkl: Path, marker: Path
) -> None:
    """As 2, with the link one level up: models/m -> attacker/ (a linked
    folder, as a shared model store mounted into the tree)."""
    (tmp_path / "models").mkdir(exist_ok=True)
    (tmp_path / "models" / "m").symlink_to(evil_pkl.parent)
    with hooks.enforce(scoped_policy), open(tmp_path / "models" / "m" / "model.pkl", "rb") as f:
        with refused(marker, r"model\.pkl|builtins|eval"):
            pickle.load(f)


def test_extra_payload_outside_the_scope_is_refused_by_the_fail_closed_layer(
    scoped_policy: Policy, evil_pkl: Path, marker: Path
) -> None:
    """A scope narrows which files must be signed; DESIGN §3.3's audit hook
    still refuses code globals for any unpickling of unverified bytes."""
    with hooks.enforce(scoped_policy), open(evil_pkl, "rb") as f:
        with refused(marker, r"builtins|eval"):
            pickle.load(f)


class PreboundUnpickler(pickle.Unpickler):
    """Defined at import, before install(): its base is the original class
    (as in libraries that subclass Unpickler to restrict or remap globals)."""


def test_extra_unpickler_subclass_defined_before_install_runs_no_payload(
    policy: Policy, evil_pkl: Path, marker: Path
) -> None:
    with hooks.enforce(policy), open(evil_pkl, "rb") as f:
        with refused(marker, r"builtins|eval|model\.pkl"):
            PreboundUnpickler(f).load()


def test_extra_safetensors_numpy_load_file_of_an_unsigned_file_is_refused(
    policy: Policy, tmp_path: Path
) -> None:
    """safetensors.numpy binds safe_open at its import (before install())."""
    path = tmp_path / "attacker" / "model.safetensors"
    path.parent.mkdir()
    safetensors.numpy.save_file({"a": ARRAY}, path)
    with hooks.enforce(policy), refused(None, r"model\.safetensors"):
        safetensors.numpy.load_file(path)


def test_extra_safetensors_rust_safe_open_of_an_unsigned_file_is_refused(
    policy: Policy, tmp_path: Path
) -> None:
    from safetensors import _safetensors_rust

    path = tmp_path / "attacker" / "model.safetensors"
    path.parent.mkdir()
    safetensors.torch.save_file(TENSORS, path)
    with hooks.enforce(policy), refused(None, r"model\.safetensors"):
        with _safetensors_rust.safe_open(str(path), framework="pt") as f:
            f.get_tensor("w")


@pytest.mark.parametrize(
    ("module", "name"),
    [("safetensors.numpy", "load"), ("safetensors", "deserialize")],
    ids=["safetensors.numpy.load", "safetensors.deserialize"],
)
def test_extra_safetensors_bytes_loaders_refuse_unverified_bytes(
    policy: Policy, tmp_path: Path, module: str, name: str
) -> None:
    """Looked up as the victim's code does, by name at call time (a reference
    a program holds outside any module, taken before install(), is beyond
    any Python-level patch: docs/threat-model.md)."""
    data = safetensors.numpy.save({"a": ARRAY})
    with hooks.enforce(policy), refused(None):
        getattr(importlib.import_module(module), name)(data)


def test_extra_config_class_from_pretrained_of_an_unsigned_folder_is_refused(
    policy: Policy, tmp_path: Path
) -> None:
    """As BertTokenizerFast in 8: only the Auto classes and PreTrainedModel
    verify the folder; BertConfig.from_pretrained reads config.json unchecked."""
    from transformers import BertConfig

    folder = tmp_path / "attacker" / "bert"
    BertConfig(
        vocab_size=10, hidden_size=8, num_hidden_layers=1, num_attention_heads=2
    ).save_pretrained(folder)
    with hooks.enforce(policy), refused(None, "bert"):
        BertConfig.from_pretrained(str(folder))


def test_extra_signed_npz_object_array_loads_lazily(
    policy: Policy, tmp_path: Path, trusted_key: tuple[Path, Path]
) -> None:
    """np.load of an .npz unpickles a member when it is accessed, after the
    hooked call returned: verified bytes all the same, and they must load
    (the fail-closed layer must know them for verified)."""
    from collections import OrderedDict

    model = tmp_path / "models" / "npz"
    model.mkdir(parents=True)
    objects = np.empty(2, dtype=object)
    objects[:] = [OrderedDict(a=1), OrderedDict(b=[2, 3])]
    np.savez(model / "arrays.npz", objects=objects, plain=ARRAY)
    sign(model, trusted_key)
    with hooks.enforce(policy), np.load(model / "arrays.npz", allow_pickle=True) as archive:
        assert archive["objects"].tolist() == objects.tolist()
        assert np.array_equal(archive["plain"], ARRAY)


def refusal_in(error: BaseException) -> LoadRefusedError | None:
    """The LoadRefusedError behind ``error``: itself, its causes, or (for
    torch.distributed.checkpoint's CheckpointException) a rank's failure."""
    seen: list[BaseException] = [error]
    while seen:
        e = seen.pop()
        if isinstance(e, LoadRefusedError):
            return e
        seen.extend(x for x in (e.__cause__, e.__context__) if x is not None)
        # CheckpointException.failures: rank -> (exception, traceback summary)
        seen.extend(f[0] for f in getattr(e, "failures", {}).values())
    return None


def test_extra_dcp_checkpoint_with_a_payload_metadata_runs_no_payload(
    policy: Policy, tmp_path: Path, marker: Path
) -> None:
    """torch.distributed.checkpoint (DESIGN §3.3 lists it) of an unsigned
    folder whose .metadata is a payload. Refused today by the pickle.load
    hook; torch wraps the refusal in its CheckpointException."""
    import torch.distributed.checkpoint as dcp

    folder = tmp_path / "attacker" / "dcp"
    dcp.save({"w": TENSORS["w"].clone()}, checkpoint_id=str(folder))
    (folder / ".metadata").write_bytes(payload_bytes(marker))
    with hooks.enforce(policy), refused(marker, cls=BaseException) as info:
        dcp.load({"w": torch.zeros(3, 4)}, checkpoint_id=str(folder))
    # torch folds each rank's error into its message: the refusal is named there.
    assert refusal_in(info.value) is not None or "refused to load" in str(info.value), info.value


def test_extra_signed_hub_folder_loads(
    policy: Policy, tmp_path: Path, trusted_key: tuple[Path, Path]
) -> None:
    """Control for 4: a signed hubconf.py folder still loads."""
    folder = write_hub_folder(tmp_path / "models" / "hub", None)
    sign(folder, trusted_key)
    with hooks.enforce(policy):
        assert torch.hub.load(str(folder), "tiny", source="local") == {"layers": [8, 4, 2]}


def test_extra_remote_code_of_another_cached_repo_named_by_a_signed_config(
    policy: Policy, tmp_path: Path, marker: Path, hf_modules: Path, trusted_key: tuple[Path, Path]
) -> None:
    """A signed folder whose config.json names its code in another repository
    ("org/code--configuration.EvilConfig", a common layout): transformers
    imports that file from the Hugging Face cache, which no bundle covers.
    The folder verifies; the code it pulls in must be verified too."""
    from transformers import AutoConfig

    cache = tmp_path / "hf_cache"
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / "models--org--code"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (snapshot / "configuration.py").write_text(
        attackkit.source_touching(marker)
        + "from transformers import PretrainedConfig\n\n\n"
        + "class EvilConfig(PretrainedConfig):\n    model_type = 'evil-remote'\n"
    )
    model = tmp_path / "models" / "m"
    model.mkdir(parents=True)
    (model / "config.json").write_text(
        json.dumps(
            {
                "model_type": "evil-remote",
                "auto_map": {"AutoConfig": "org/code--configuration.EvilConfig"},
            }
        )
    )
    sign(model, trusted_key)
    with hooks.enforce(policy), refused(marker, r"configuration\.py|org/code|hf_cache"):
        AutoConfig.from_pretrained(str(model), trust_remote_code=True, cache_dir=str(cache))


def test_extra_file_moved_out_of_the_scope_between_open_and_pickle_load(
    scoped_policy: Policy, tmp_path: Path, evil_pkl: Path, marker: Path
) -> None:
    """The pickle hook takes the scope from the descriptor's current path:
    an attacker who renames the file out of the scope after the victim opened
    it (and before the load) has it unpickled unchecked."""
    inside = tmp_path / "models" / "m" / "model.pkl"
    inside.parent.mkdir(parents=True)
    shutil.move(evil_pkl, inside)
    with hooks.enforce(scoped_policy), open(inside, "rb") as f:
        shutil.move(inside, tmp_path / "attacker" / "moved.pkl")  # the attacker, meanwhile
        with refused(marker, r"model\.pkl|moved\.pkl|builtins|eval"):
            pickle.load(f)


def test_extra_relative_policy_variable_is_not_reread_in_another_working_directory(
    tmp_path: Path,
    trusted_key: tuple[Path, Path],
    attacker_key: tuple[Path, Path],
    marker: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """MODELSIGN_POLICY=policy.toml (relative) read by the victim in its own
    folder; the program then changes into a folder the attacker controls
    (a dataset, a checkout) and starts a child Python, whose autoload reads
    ./policy.toml there: the attacker's."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "policy.toml").write_text(f'[trust]\nkeys = ["{trusted_key[1]}"]\n')
    attacker = tmp_path / "attacker-workdir"
    (attacker / "model").mkdir(parents=True)
    write_payload(attacker / "model" / "model.pkl", marker)
    sign(attacker / "model", attacker_key)
    (attacker / "policy.toml").write_text(f'[trust]\nkeys = ["{attacker_key[1]}"]\n')
    monkeypatch.chdir(victim)
    monkeypatch.setenv("MODELSIGN_POLICY", "policy.toml")
    hooks.install()
    monkeypatch.chdir(attacker)
    result = attackkit.run_child_script(attackkit.CHILD_LOAD_SCRIPT, "model/model.pkl")
    assert not marker.exists(), f"the payload ran in the child: {marker} was written\n{result}"
    # Refused in the child, or the child refused to start (fail closed): both keep it safe.
    assert (result.returncode == 0 and result.stdout.startswith("REFUSED")) or (
        result.returncode == 2
    ), result


@pytest.fixture
def python_without_modelsign(tmp_path: Path) -> Path:
    """A second Python environment, without modelsign (and its autoload)."""
    env = tmp_path / "other-venv"
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(env)], check=True, timeout=120)
    return env / "bin" / "python"


def test_extra_modelsign_run_refuses_a_script_whose_interpreter_lacks_modelsign(
    policy_file: Path, tmp_path: Path, evil_pkl: Path, marker: Path, python_without_modelsign: Path
) -> None:
    """As 9: `modelsign run -- ./tool` where tool is a console script of
    another environment (its #! line names a Python without modelsign)."""
    tool = tmp_path / "tool"
    tool.write_text(f"#!{python_without_modelsign}\n{PROG}")
    tool.chmod(0o755)
    started = tmp_path / "started"
    run_is_refused(policy_file, [str(tool), str(started), str(evil_pkl)], started, marker)


def test_extra_modelsign_run_refuses_python_S_started_through_env(
    policy_file: Path, tmp_path: Path, evil_pkl: Path, marker: Path
) -> None:
    """As 9, with the interpreter named after env (as in `#!/usr/bin/env`)."""
    prog = tmp_path / "prog.py"
    prog.write_text(PROG)
    started = tmp_path / "started"
    command = ["env", "python", "-S", str(prog), str(started), str(evil_pkl)]
    run_is_refused(policy_file, command, started, marker)


def test_extra_numpy_format_read_array_of_an_unsigned_file_is_refused(
    policy: Policy, tmp_path: Path
) -> None:
    """numpy.lib.format.read_array reads an .npy from a file object."""
    path = tmp_path / "attacker" / "array.npy"
    path.parent.mkdir()
    np.save(path, ARRAY)
    with hooks.enforce(policy), open(path, "rb") as f, refused(None, r"array\.npy"):
        numpy.lib.format.read_array(f)


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(attackkit.ExecPayload, id="builtins.exec"),
        pytest.param(attackkit.MethodCallerPayload, id="operator.methodcaller+pathlib"),
        pytest.param(attackkit.NestedPicklePayload, id="pickle.loads-nested"),
        pytest.param(attackkit.NestedTorchPayload, id="torch.storage._load_from_bytes"),
    ],
)
def test_extra_payload_gadgets_from_unverified_bytes_run_no_code(
    policy: Policy, tmp_path: Path, marker: Path, payload: type[Payload]
) -> None:
    """Other globals than builtins.eval for the fail-closed allowlist:
    torch.storage._load_from_bytes is what every pickle.dumps(tensor) holds
    (so it must stay loadable), and it torch.loads, weights_only=False, bytes
    that come from the same unverified pickle."""
    path = tmp_path / "attacker" / "model.pkl"
    path.parent.mkdir()
    path.write_bytes(pickle.dumps(payload(marker)))
    with hooks.enforce(policy), refused(marker):
        pickle.loads(path.read_bytes())


def test_control_plain_data_pickles_from_unverified_sources_still_load(
    policy: Policy, tmp_path: Path
) -> None:
    """What the fail-closed layer must let through: plain data and tensors
    from memory, a pipe, a zip member."""
    tensor = torch.arange(5)
    with hooks.enforce(policy):
        assert pickle.loads(pickle.dumps({"a": [1, 2.0], "b": (None, True, "x")})) == {
            "a": [1, 2.0],
            "b": (None, True, "x"),
        }
        assert torch.equal(pickle.loads(pickle.dumps(tensor)), tensor)
        source = tmp_path / "plain.pkl"
        source.write_bytes(pickle.dumps(DATA))
        with subprocess.Popen(["cat", str(source)], stdout=subprocess.PIPE) as process:
            assert process.stdout is not None
            assert pickle.load(process.stdout) == DATA
        archive = tmp_path / "plain.zip"
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr("plain.pkl", pickle.dumps(DATA))
        with zipfile.ZipFile(archive) as zf, zf.open("plain.pkl") as f:
            assert pickle.load(f) == DATA


REMOTE_CODE = """\
from transformers import FeatureExtractionMixin, PretrainedConfig


class TinyConfig(PretrainedConfig):
    model_type = "tiny-remote"


class TinyFeatureExtractor(FeatureExtractionMixin):
    pass
"""


@pytest.mark.parametrize("auto_class", ["AutoConfig", "AutoFeatureExtractor"])
def test_control_signed_remote_code_folder_loads(
    policy: Policy,
    tmp_path: Path,
    hf_modules: Path,
    trusted_key: tuple[Path, Path],
    auto_class: str,
) -> None:
    """Control for 3: trust_remote_code on a signed folder keeps working."""
    import transformers

    folder = tmp_path / "models" / "tiny-remote"
    folder.mkdir(parents=True)
    (folder / "tiny.py").write_text(REMOTE_CODE)
    auto_map = {
        "AutoConfig": "tiny.TinyConfig",
        "AutoFeatureExtractor": "tiny.TinyFeatureExtractor",
    }
    (folder / "config.json").write_text(
        json.dumps({"model_type": "tiny-remote", "auto_map": auto_map, "answer": 42})
    )
    (folder / "preprocessor_config.json").write_text(
        json.dumps({"auto_map": auto_map, "answer": 42})
    )
    sign(folder, trusted_key)
    with hooks.enforce(policy):
        loaded = getattr(transformers, auto_class).from_pretrained(
            str(folder), trust_remote_code=True
        )
    assert type(loaded).__name__ in ("TinyConfig", "TinyFeatureExtractor")
    assert loaded.answer == 42
