"""Red-team review of the loader hook: holes that remain after issue 10.

The attacker controls model files and folders on disk (their content, links,
and the timing of writes), but neither the victim's code nor its policy. Each
test does what a victim does under enforcement (enforce mode, a policy of one
trusted key, optionally a scope) and asserts the intended outcome: a
:class:`~modelsign.errors.LoadRefusedError` and no marker file written by the
attacker's code, or a signed model that loads. Every test here FAILS on the
code it was written against; the docstring of each names the flaw.

Payloads only ever create a marker file under the test's ``tmp_path``.
"""

from __future__ import annotations

import functools
import io
import json
import os
import pickle
import socket
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import torch
import torch.hub
import torch.storage

import modelsign
from modelsign import hooks, keys
from modelsign.errors import LoadRefusedError
from modelsign.policy import Policy
from tests import attackkit

# ------------------------------------------------------------------ fixtures


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    yield
    hooks.uninstall()


@pytest.fixture(scope="session")
def trusted_key(key_dir: Path) -> tuple[Path, Path]:
    """The victim's signer: (private key, public key)."""
    prefix = key_dir / "redteam-trusted"
    if not prefix.with_suffix(".key").exists():
        keys.write_keypair(keys.generate("ed25519"), prefix, None)
    return Path(f"{prefix}.key"), Path(f"{prefix}.pub")


@pytest.fixture
def policy(trusted_key: tuple[Path, Path]) -> Policy:
    return Policy.of([trusted_key[1]])


@pytest.fixture
def scoped_policy(tmp_path: Path, trusted_key: tuple[Path, Path]) -> Policy:
    """Signatures required under tmp_path/models only (the victim's model store)."""
    path = tmp_path / "policy.toml"
    (tmp_path / "models").mkdir(exist_ok=True)
    path.write_text(f'[trust]\nkeys = ["{trusted_key[1]}"]\n[enforce]\nscope = ["models"]\n')
    return Policy.load(path)


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    """The file the attacker's code creates: it must never exist."""
    return tmp_path / "PAYLOAD-RAN"


def assert_refused(marker: Path | None, outcome: BaseException | None) -> None:
    if marker is not None:
        assert not marker.exists(), f"the attacker's code ran: {marker} was written"
    assert isinstance(outcome, LoadRefusedError), f"expected a LoadRefusedError, got {outcome!r}"


def attempt(load: Any) -> BaseException | None:
    """Run ``load()``; the exception it raised, or None."""
    try:
        load()
    except Exception as e:
        return e
    return None


def sign(model: Path, key: tuple[Path, Path]) -> Path:
    modelsign.sign(model, key[0])
    return model


# ------------------------------------------------------------ TorchScript


class WritesAFileOnLoad(torch.nn.Module):
    """A TorchScript module whose ``__setstate__``, which ``torch.jit.load``
    runs while it loads the archive, writes ``content`` to ``path`` through a
    shared file mapping (``torch.from_file(shared=True)`` creates the file and
    writes through to it): an arbitrary file write, e.g. a ``.pth`` file in
    site-packages, i.e. Python code execution at the next start. Here the
    content is Python source and the path is the marker."""

    def __init__(self, path: str, content: list[int]) -> None:
        super().__init__()
        self.path = path
        self.content = content
        self.written = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    @torch.jit.export
    def __getstate__(self) -> tuple[str, list[int], bool, int]:
        return (self.path, self.content, self.training, self.written)

    @torch.jit.export
    def __setstate__(self, state: tuple[str, list[int], bool, int]) -> None:
        self.path = state[0]
        self.content = state[1]
        self.training = state[2]
        data = torch.tensor(self.content, dtype=torch.uint8)
        mapped = torch.from_file(self.path, shared=True, size=len(self.content), dtype=torch.uint8)
        mapped.copy_(data)
        self.written = int(mapped.sum())


def torchscript_payload(marker: Path) -> bytes:
    """A TorchScript archive that writes ``marker`` when it is loaded."""
    code = list(attackkit.source_touching(marker).encode())
    out = io.BytesIO()
    torch.jit.save(torch.jit.script(WritesAFileOnLoad(str(marker), code)), out)
    assert not marker.exists()
    return out.getvalue()


class StorageGadget:
    """What ``pickle.dumps(tensor)`` holds for a tensor's storage:
    ``torch.storage._load_from_bytes(b)``, the one allowlisted global that
    loads more bytes (``torch.load(io.BytesIO(b), weights_only=False)``).
    Here ``b`` is a TorchScript archive, which that torch.load hands on to
    ``torch.jit.load``."""

    def __init__(self, archive: bytes) -> None:
        self.archive = archive

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        return (torch.storage._load_from_bytes, (self.archive,))


def _pickle_loads(path: Path) -> Any:
    return pickle.loads(path.read_bytes())


def _pickle_load_zip_member(path: Path) -> Any:
    archive = path.with_suffix(".zip")
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("model.pkl", path.read_bytes())
    with zipfile.ZipFile(archive) as zf, zf.open("model.pkl") as f:
        return pickle.load(f)


@pytest.mark.parametrize(
    "load",
    [
        pytest.param(_pickle_loads, id="pickle.loads"),
        pytest.param(_pickle_load_zip_member, id="pickle.load-zip-member"),
    ],
)
def test_allowlisted_storage_gadget_runs_torchscript_from_unverified_bytes(
    policy: Policy, tmp_path: Path, marker: Path, load: Any
) -> None:
    """CODE EXECUTION through the audit layer's allowlist.

    An unverified pickle (``pickle.loads`` of bytes read from anywhere, a zip
    member: what the threat model leaves to the allowlist, "code does not
    cross") may call ``torch.storage._load_from_bytes``. That runs
    ``torch.load(BytesIO(b), weights_only=False)``; for a TorchScript archive
    torch calls ``torch.jit.load`` on it. Both are nested in the unverified
    load and in memory, so ``_common.active()`` lets them through unchecked
    (``_inside`` is set by ``untrusted_load`` too), and TorchScript resolves
    no Python globals, so the audit hook sees nothing. The archive's
    ``__setstate__`` runs at load and writes an arbitrary file."""
    path = tmp_path / "attacker" / "model.pkl"
    path.parent.mkdir()
    path.write_bytes(pickle.dumps(StorageGadget(torchscript_payload(marker))))
    with hooks.enforce(policy):
        outcome = attempt(lambda: load(path))
    assert_refused(marker, outcome)


def _torchscript_archive(path: Path, marker: Path) -> Any:
    path.write_bytes(torchscript_payload(marker))
    return lambda: torch.jit.load(str(path))


AOTI_LIBRARY = """\
#include <stdio.h>
__attribute__((constructor)) static void ran(void) {
    FILE *f = fopen(MARKER, "w");
    if (f) fclose(f);
}
"""


def _aoti_package(path: Path, marker: Path) -> Any:
    """A .pt2 AOTInductor package whose model library is the attacker's: its
    constructor runs when the loader dlopen()s it (before any symbol lookup)."""
    import shutil
    import subprocess

    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler to build the package's shared library")
    source = path.with_suffix(".c")
    source.write_text(AOTI_LIBRARY)
    library = path.with_suffix(".so")
    subprocess.run(
        [compiler, "-shared", "-fPIC", f'-DMARKER="{marker}"', "-o", str(library), str(source)],
        check=True,
    )
    model = "package/data/aotinductor/model/"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("package/archive_format", "pt2")
        zf.writestr("package/archive_version", "0")
        zf.writestr(model + "model.so", library.read_bytes())
        zf.writestr(model + "model_metadata.json", json.dumps({"AOTI_DEVICE_KEY": "cpu"}))
    import torch._inductor

    return lambda: torch._inductor.aoti_load_package(str(path))


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(_torchscript_archive, id="torch.jit.load"),
        pytest.param(_aoti_package, id="torch._inductor.aoti_load_package"),
    ],
)
def test_code_bearing_formats_outside_the_scope_run_their_code(
    scoped_policy: Policy,
    tmp_path: Path,
    marker: Path,
    monkeypatch: pytest.MonkeyPatch,
    make: Any,
) -> None:
    """CODE EXECUTION with a scoped policy.

    A TorchScript archive carries code that runs at load (``__setstate__``,
    with file-writing ops), an AOTInductor package a shared library that is
    dlopen()ed. Pickles outside the scope stay under the audit layer, and
    hubconf, remote code and torch.package are "verified wherever they lie"
    (``_code._verify_any``), but ``torch.jit.load`` and ``aoti_load_package``
    of a path outside the scope are handed to the original loader unchecked
    (``_formats._stream_loader`` / ``_loaders.by_path_loader`` ->
    ``_loaders._source`` returns None out of scope), and no other layer can
    see what they run."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "attacker" / "model.pt2"
    path.parent.mkdir()
    load = make(path, marker)
    with hooks.enforce(scoped_policy):
        outcome = attempt(load)
    assert_refused(marker, outcome)


# ------------------------------------------------------------------ torch.hub


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda: torch.hub.list("owner/repo:main"), id="torch.hub.list"),
        pytest.param(lambda: torch.hub.help("owner/repo:main", "model"), id="torch.hub.help"),
    ],
)
def test_torch_hub_list_and_help_import_an_unsigned_cached_hubconf(
    policy: Policy, tmp_path: Path, marker: Path, monkeypatch: pytest.MonkeyPatch, call: Any
) -> None:
    """CODE EXECUTION: ``torch.hub.list`` and ``torch.hub.help`` import
    ``hubconf.py`` of a repository in the hub cache directly
    (``torch.hub._import_module``); only ``_load_local`` (behind
    ``torch.hub.load``) is patched (``_code.hub_patches``). A folder in the
    hub cache (``<hub>/owner_repo_main``) is used without a download and is
    trusted by torch because it exists, so no prompt stops it either."""
    hub = tmp_path / "torch_home" / "hub"
    repo = hub / "owner_repo_main"
    repo.mkdir(parents=True)
    (repo / "hubconf.py").write_text(
        attackkit.source_touching(marker) + "def model():\n    '''doc'''\n"
    )
    monkeypatch.setattr(torch.hub, "_hub_dir", str(hub))
    with hooks.enforce(policy):
        outcome = attempt(call)
    assert_refused(marker, outcome)


# ------------------------------------------------- trust of a verified load


class LoadsAnotherFile:
    """A signed object that loads a file by path while it is unpickled (as
    lazy sub-models do; tests/test_hooks_bypasses.py uses the same)."""

    def __init__(self, path: str, loader: str) -> None:
        self.path = path
        self.loader = loader

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        if self.loader == "torch.load":
            return (functools.partial(torch.load, weights_only=False), (self.path,))
        return (joblib.load, (self.path,))


@pytest.mark.parametrize("loader", ["torch.load", "joblib.load"])
def test_a_verified_load_lends_its_trust_to_a_nested_load_outside_the_scope(
    scoped_policy: Policy,
    trusted_key: tuple[Path, Path],
    tmp_path: Path,
    marker: Path,
    monkeypatch: pytest.MonkeyPatch,
    loader: str,
) -> None:
    """CODE EXECUTION with a scoped policy.

    A signed pickle in the scope loads, while it is unpickled, a file outside
    the scope (the attacker's). Out of scope, ``_loaders._source`` returns
    None and the wrapper calls the original loader as is, without
    ``untrusted_load``: the ``verified`` context variable of the enclosing
    verified load is still True, so the audit layer lets the attacker's pickle
    resolve ``builtins.eval``. (pickle.load's own wrapper does reset it: an
    out-of-scope ``pickle.load`` here is refused; torch.load and joblib.load,
    whose unpickler is bound before install(), are not.)"""
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "attacker" / "lazy.bin"
    if loader == "torch.load":
        attackkit.write_torch_payload(evil, marker)
    else:
        attackkit.write_payload(evil, marker)
    model = tmp_path / "models" / "m"
    model.mkdir(parents=True)
    (model / "outer.pkl").write_bytes(pickle.dumps(LoadsAnotherFile(str(evil), loader)))
    sign(model, trusted_key)

    def victim() -> Any:
        with open(model / "outer.pkl", "rb") as f:
            return pickle.load(f)

    with hooks.enforce(scoped_policy):
        outcome = attempt(victim)
    assert_refused(marker, outcome)


# ------------------------------------------------------------- transformers

BERT_CONFIG = {
    "model_type": "bert",
    "hidden_size": 32,
    "num_attention_heads": 2,
    "num_hidden_layers": 1,
    "intermediate_size": 16,
    "vocab_size": 50,
}
FEATURE_EXTRACTOR = {"feature_extractor_type": "Wav2Vec2FeatureExtractor", "sampling_rate": 16000}


def _auto_config(path: Path) -> Any:
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(str(path / "config.json"))


def _bert_config(path: Path) -> Any:
    from transformers import BertConfig

    return BertConfig.from_pretrained(str(path / "config.json"))


def _auto_feature_extractor(path: Path) -> Any:
    from transformers import AutoFeatureExtractor

    return AutoFeatureExtractor.from_pretrained(str(path / "preprocessor_config.json"))


@pytest.mark.parametrize(
    "load",
    [
        pytest.param(_auto_config, id="AutoConfig"),
        pytest.param(_bert_config, id="BertConfig"),
        pytest.param(_auto_feature_extractor, id="AutoFeatureExtractor"),
    ],
)
def test_from_pretrained_of_a_file_path_reads_a_tampered_file_unverified(
    policy: Policy, trusted_key: tuple[Path, Path], tmp_path: Path, load: Any
) -> None:
    """UNVERIFIED DATA: ``from_pretrained`` accepts the path of a JSON file
    (configurations, feature extractors, image processors). The wrapper only
    verifies a folder (``_loaders._local_directory`` returns None for a file:
    not a directory, and ``snapshot_download`` of it fails), and transformers
    then reads the file by path: a tampered file of a signed model loads."""
    model = tmp_path / "models" / "bert"
    model.mkdir(parents=True)
    (model / "config.json").write_text(json.dumps(BERT_CONFIG))
    (model / "preprocessor_config.json").write_text(json.dumps(FEATURE_EXTRACTOR))
    sign(model, trusted_key)
    # The attacker edits both files of the signed model.
    (model / "config.json").write_text(json.dumps({**BERT_CONFIG, "num_hidden_layers": 7}))
    (model / "preprocessor_config.json").write_text(
        json.dumps({**FEATURE_EXTRACTOR, "sampling_rate": 8000})
    )
    with hooks.enforce(policy):
        outcome = attempt(lambda: load(model))
    assert_refused(None, outcome)


def test_from_pretrained_of_a_subfolder_of_a_model_signed_as_a_whole_is_refused(
    policy: Policy, trusted_key: tuple[Path, Path], tmp_path: Path
) -> None:
    """BROKEN LEGIT LOAD: a repository with components in subfolders (a
    pipeline, a diffusers-style repo) signed as a whole, with one model.sig at
    its top, cannot be loaded with ``from_pretrained(root, subfolder=...)``:
    the wrapper verifies ``root/subfolder`` as a model of its own
    (``_loaders.from_pretrained`` -> ``Guard.verify_directory``), which needs a
    model.sig inside it, although the per-file checks find the model.sig
    above (``Guard._discover``) and ``modelsign verify root`` passes."""
    from transformers import BertConfig, BertModel

    root = tmp_path / "models" / "pipeline"
    config = BertConfig(**{k: v for k, v in BERT_CONFIG.items() if k != "model_type"})
    BertModel(config).save_pretrained(root / "text_encoder")
    (root / "README.md").write_text("a pipeline signed as a whole\n")
    sign(root, trusted_key)
    assert modelsign.verify(root, [trusted_key[1]]) is not None
    with hooks.enforce(policy):
        loaded = BertModel.from_pretrained(root, subfolder="text_encoder")
    assert loaded.config.num_hidden_layers == 1


# ----------------------------------------------------------- scope and files


def _torch_load_file_object(path: Path) -> Any:
    with open(path / "weights.pt", "rb") as f:
        return torch.load(f)


def _numpy_load_path(path: Path) -> Any:
    return np.load(path / "array.npy")


def _numpy_load_file_object(path: Path) -> Any:
    with open(path / "array.npy", "rb") as f:
        return np.load(f)


def _joblib_load_file_object(path: Path) -> Any:
    with open(path / "data.joblib", "rb") as f:
        return joblib.load(f)


@pytest.mark.parametrize(
    "load",
    [
        pytest.param(_torch_load_file_object, id="torch.load-file-object"),
        pytest.param(_numpy_load_path, id="numpy.load-path"),
        pytest.param(_numpy_load_file_object, id="numpy.load-file-object"),
        pytest.param(_joblib_load_file_object, id="joblib.load-file-object"),
    ],
)
def test_plain_data_outside_the_scope_is_refused(
    scoped_policy: Policy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, load: Any
) -> None:
    """BROKEN LEGIT LOAD with a scoped policy: the scope says which files must
    be signed, and ``torch.load(path)``, ``joblib.load(path)``, ``pickle.load(f)``
    of a file outside it load. But a file object outside the scope is
    verified anyway (``_loaders._source`` checks the scope only for paths;
    ``Guard.open_file`` never), and ``numpy.load`` even of a *path* outside the
    scope is refused: numpy opens it and hands the open file to
    ``numpy.lib.format.read_array``, whose wrapper verifies it unscoped."""
    monkeypatch.chdir(tmp_path)
    cache = tmp_path / "cache"
    cache.mkdir()
    torch.save({"w": torch.ones(2)}, cache / "weights.pt")
    np.save(cache / "array.npy", np.arange(3))
    joblib.dump({"x": 1}, cache / "data.joblib")
    with hooks.enforce(scoped_policy):
        outcome = attempt(lambda: load(cache))
    assert outcome is None, f"a file outside the scope was refused: {outcome!r}"


def test_signed_file_of_several_npy_arrays_loads_each(
    policy: Policy, trusted_key: tuple[Path, Path], tmp_path: Path
) -> None:
    """BROKEN LEGIT LOAD: numpy's documented way to keep several arrays in one
    file (``np.save(f, a); np.save(f, b)``, then ``np.load(f)`` twice). The
    first load moves the file to its end (``Guard.open_file`` ->
    ``f.seek(source.size)``), so the second is refused as "not at position
    0"; pickle has a continuation for this (``_pickle._kept``), numpy none."""
    model = tmp_path / "models" / "m"
    model.mkdir(parents=True)
    with open(model / "arrays.npy", "wb") as f:
        np.save(f, np.arange(3))
        np.save(f, np.arange(5))
    sign(model, trusted_key)
    with hooks.enforce(policy), open(model / "arrays.npy", "rb") as f:
        first = np.load(f)
        second = np.load(f)
    assert first.tolist() == [0, 1, 2]
    assert second.tolist() == [0, 1, 2, 3, 4]


# ------------------------------------------------------------------ crashes


@pytest.mark.parametrize(
    "load",
    [
        pytest.param(lambda p: torch.load(p), id="torch.load"),
        pytest.param(lambda p: np.load(p), id="numpy.load"),
        pytest.param(lambda p: joblib.load(p), id="joblib.load"),
    ],
)
def test_a_socket_in_place_of_a_signed_file_is_a_load_refusal(
    policy: Policy, trusted_key: tuple[Path, Path], tmp_path: Path, load: Any
) -> None:
    """CRASH: the attacker replaces a signed file by a UNIX socket.
    ``Guard.open_path`` opens it (``os.open`` fails with ENXIO) and re-raises
    the OSError unless the path is a link, so the victim gets a bare OSError
    instead of a LoadRefusedError (a FIFO is refused as "not a regular file";
    the threat model promises a typed error for sockets too)."""
    model = tmp_path / "m"
    model.mkdir()
    torch.save({"w": torch.ones(2)}, model / "model.pt")
    sign(model, trusted_key)
    (model / "model.pt").unlink()
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(model / "model.pt"))
        with hooks.enforce(policy):
            outcome = attempt(lambda: load(model / "model.pt"))
    assert_refused(None, outcome)


@pytest.mark.parametrize("compression", ["gzip", "lzma"])
def test_a_signed_compressed_pickle_truncated_after_its_check_still_loads(
    policy: Policy,
    trusted_key: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    compression: str,
) -> None:
    """CRASH under a race: ``pickle.load(gzip.open(signed))`` unpickles the
    verified bytes, then ``_pickle._hand_back`` seeks the caller's
    decompressing reader, which decompresses the file ON DISK again up to
    that point. Truncated by the attacker after the check, it raises
    EOFError (not suppressed there: only OSError/ValueError/AttributeError)
    and the verified object is lost. Deterministic: ``os.pread`` is wrapped so
    that the attacker truncates the file right after the guard has read it."""
    import gzip
    import lzma

    opener = gzip.open if compression == "gzip" else lzma.open
    model = tmp_path / "models" / "m"
    model.mkdir(parents=True)
    path = model / "model.pkl.z"
    with opener(path, "wb") as f:
        pickle.dump({"w": list(range(2000))}, f)
    sign(model, trusted_key)
    original = path.read_bytes()
    real_pread = os.pread

    def pread(fd: int, n: int, offset: int) -> bytes:
        data = real_pread(fd, n, offset)
        if not data and path.read_bytes() == original:  # the guard is done reading
            path.write_bytes(original[:40])
        return data

    monkeypatch.setattr(os, "pread", pread)
    with hooks.enforce(policy), opener(path, "rb") as f:
        outcome = attempt(lambda: pickle.load(f))
    assert outcome is None, f"the verified load failed: {outcome!r}"


# ------------------------------------------------- large files (sealed memfd)

#: Over modelsign._guard.MEMFD_THRESHOLD (32 MiB): verified into a sealed memfd,
#: and the loader is given its path, /proc/self/fd/N.
LARGE = 33 * 1024 * 1024


def _numpy_load_large_npy(model: Path) -> Any:
    np.save(model / "large.npy", np.zeros(LARGE // 8 + 1))
    return lambda: np.load(model / "large.npy")


def _torch_load_large_legacy_checkpoint(model: Path) -> Any:
    state = {"w": torch.zeros(LARGE // 4 + 1)}
    torch.save(state, model / "large.pt", _use_new_zipfile_serialization=False)
    return lambda: torch.load(model / "large.pt", weights_only=False)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(_numpy_load_large_npy, id="numpy.load-npy"),
        pytest.param(_torch_load_large_legacy_checkpoint, id="torch.load-legacy-format"),
    ],
)
def test_a_large_signed_file_loads(
    policy: Policy, trusted_key: tuple[Path, Path], tmp_path: Path, make: Any
) -> None:
    """BROKEN LEGIT LOAD: a signed file of 32 MiB or more is handed to the
    loader as the path of its sealed memfd. ``numpy.load`` opens that path and
    passes the open file to ``numpy.lib.format.read_array`` (every .npy);
    torch's legacy (non-zip) format passes it to ``pickle.load``. Both are
    hooked, and ``_common.active()`` exempts a verified memfd only as a *path*
    (``_is_verified_memfd``), not as a file object opened from it, so
    ``Guard.open_file`` judges the file by its name, ``/proc/self/fd/N``, and
    refuses it as "a symbolic link"."""
    model = tmp_path / "models" / "m"
    model.mkdir(parents=True)
    load = make(model)
    sign(model, trusted_key)
    with hooks.enforce(policy):
        outcome = attempt(load)
    assert outcome is None, f"the signed file was refused: {outcome!r}"


JOBLIB_CHILD = """\
import sys, joblib
try:
    joblib.load(sys.argv[1])
except Exception as e:
    print(type(e).__name__, e)
    sys.exit(1)
"""


def test_a_large_signed_joblib_file_loads_when_enforcement_starts_first(
    trusted_key: tuple[Path, Path], tmp_path: Path
) -> None:
    """BROKEN LEGIT LOAD: as above, for ``joblib.load`` of any signed file of
    32 MiB or more, when joblib is imported after enforcement is on (as under
    ``modelsign run`` or ``MODELSIGN_POLICY``): joblib's unpickler then derives
    from modelsign's ``pickle._Unpickler`` wrapper, which refuses the open
    memfd by its name."""
    model = tmp_path / "models" / "m"
    model.mkdir(parents=True)
    joblib.dump({"a": np.zeros(LARGE // 8 + 1)}, model / "large.joblib")
    sign(model, trusted_key)
    policy_file = tmp_path / "policy.toml"
    policy_file.write_text(f'[trust]\nkeys = ["{trusted_key[1]}"]\n')
    env = {**os.environ, "MODELSIGN_POLICY": str(policy_file)}
    result = attackkit.run_child_script(JOBLIB_CHILD, str(model / "large.joblib"), env=env)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "load",
    [
        pytest.param(lambda p: np.load(p / "a.npy", mmap_mode="r+"), id="numpy.load"),
        pytest.param(lambda p: joblib.load(p / "a.joblib", mmap_mode="r+"), id="joblib.load"),
    ],
)
def test_a_writable_map_of_a_signed_file_is_a_load_refusal(
    policy: Policy, trusted_key: tuple[Path, Path], tmp_path: Path, load: Any
) -> None:
    """CRASH: a writable map is refused by design (``numpy.memmap`` and
    ``open_memmap`` raise UnsafeLoadError), but through ``numpy.load`` or
    ``joblib.load`` with ``mmap_mode="r+"`` the loader is handed the sealed
    memfd and fails mapping it for writing: a bare PermissionError."""
    model = tmp_path / "models" / "m"
    model.mkdir(parents=True)
    np.save(model / "a.npy", np.arange(4.0))
    joblib.dump({"a": np.arange(4.0)}, model / "a.joblib")
    sign(model, trusted_key)
    with hooks.enforce(policy):
        outcome = attempt(lambda: load(model))
    assert_refused(None, outcome)


def test_from_pretrained_of_a_partially_downloaded_cache_snapshot_loads(
    policy: Policy, trusted_key: tuple[Path, Path], tmp_path: Path
) -> None:
    """BROKEN LEGIT LOAD: a Hugging Face repository signed as a whole (its
    model.sig lists every file: both weight formats, the README) is never
    fully in the local cache: ``from_pretrained`` downloads only the files it
    reads (config.json, model.safetensors), plus model.sig fetched for the
    check. The wrapper verifies the snapshot as a whole model
    (``Guard.verify_directory`` -> ``verify``: no file missing), so the load is
    refused for files it would never read, although each file it does read
    is verified on its own."""
    import hashlib
    import shutil

    from transformers import BertConfig, BertModel

    source = tmp_path / "signing" / "abc123"
    config = BertConfig(**{k: v for k, v in BERT_CONFIG.items() if k != "model_type"})
    BertModel(config).save_pretrained(source)
    torch.save(BertModel(config).state_dict(), source / "pytorch_model.bin")
    (source / "README.md").write_text("a tiny model\n")
    sign(source, trusted_key)
    repo = tmp_path / "hub" / "models--org--tiny"
    blobs, snapshot = repo / "blobs", repo / "snapshots" / "abc123"
    blobs.mkdir(parents=True)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    for name in ("config.json", "model.safetensors", "model.sig"):  # what was downloaded
        digest = hashlib.sha256((source / name).read_bytes()).hexdigest()
        shutil.copyfile(source / name, blobs / digest)
        (snapshot / name).symlink_to(f"../../blobs/{digest}")
    with hooks.enforce(policy):
        loaded = BertModel.from_pretrained("org/tiny", cache_dir=tmp_path / "hub")
    assert loaded.config.num_hidden_layers == 1


def test_a_file_downloaded_into_a_partial_snapshot_during_the_load_is_checked(
    policy: Policy, trusted_key: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The counterpart of the partial snapshot: a signed file absent at the
    start and written into the snapshot while from_pretrained runs (as a
    download would) is verified before the result is returned; tampered, the
    load is refused."""
    import hashlib
    import shutil

    from transformers import BertConfig, BertModel
    from transformers.utils import hub

    source = tmp_path / "signing" / "abc123"
    config = BertConfig(**{k: v for k, v in BERT_CONFIG.items() if k != "model_type"})
    BertModel(config).save_pretrained(source)
    (source / "README.md").write_text("a tiny model\n")
    sign(source, trusted_key)
    repo = tmp_path / "hub" / "models--org--tiny"
    blobs, snapshot = repo / "blobs", repo / "snapshots" / "abc123"
    blobs.mkdir(parents=True)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    for name in ("config.json", "model.safetensors", "model.sig"):
        digest = hashlib.sha256((source / name).read_bytes()).hexdigest()
        shutil.copyfile(source / name, blobs / digest)
        (snapshot / name).symlink_to(f"../../blobs/{digest}")
    real = hub.cached_files

    def downloads_a_tampered_readme(*args: Any, **kwargs: Any) -> Any:
        readme = blobs / "tampered"
        if not readme.exists():
            readme.write_text("not what was signed\n")
            (snapshot / "README.md").symlink_to("../../blobs/tampered")
        return real(*args, **kwargs)

    monkeypatch.setattr(hub, "cached_files", downloads_a_tampered_readme)
    with hooks.enforce(policy), pytest.raises(LoadRefusedError, match="README.md"):
        BertModel.from_pretrained("org/tiny", cache_dir=tmp_path / "hub")
