"""`modelsign convert`: untrusted pickle checkpoints to safetensors, in a
sandbox. Real torch, real kernel layers (Landlock, seccomp, namespaces), real
malicious pickles; every effect is checked from this (the parent) process."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from modelsign._convert import convert
from modelsign._sandbox import TensorRecord, check_file
from modelsign.errors import (
    ConvertedOutputError,
    ConvertError,
    NonTensorContentError,
    OverwriteError,
    SandboxedLoadError,
    SandboxLimitError,
    SandboxTimeoutError,
    UnsafeModelError,
    UsageError,
    WeightsOnlyRefusedError,
)
from tests.conftest import connections, require
from tests.test_json_output import validate

torch = require("torch", "the converter loads checkpoints with torch")
safetensors_torch = require("safetensors.torch", "the converted file is read back with it")

CLI = [sys.executable, "-m", "modelsign"]


class Exec:
    """A pickle payload: unpickling runs ``code``."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (self.code,))


def malicious(path: Path, code: str) -> Path:
    torch.save({"weight": torch.ones(2), "payload": Exec(code)}, path)
    return path


def leftovers(folder: Path) -> list[str]:
    """Temporary files or folders a conversion left beside its output."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture
def out(tmp_path: Path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder the sandboxed loader must not touch."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "precious.txt").write_text("keep me")
    os.chmod(folder / "precious.txt", 0o600)
    return folder


def state() -> dict[str, Any]:
    torch.manual_seed(0)
    base = torch.randn(6, 4)
    return {
        "layer.weight": base,
        "layer.weight_t": base.t(),  # not contiguous
        "layer.view": base[1:3],  # shares storage with layer.weight
        "half": torch.randn(5).half(),
        "bf16": torch.randn(3, 2).to(torch.bfloat16),
        "f64": torch.randn(2).double(),
        "i64": torch.arange(7),
        "i8": torch.tensor([-3, 4], dtype=torch.int8),
        "u8": torch.tensor([0, 255], dtype=torch.uint8),
        "mask": torch.tensor([True, False, True]),
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 3),
        "fp8": torch.tensor([0.5, -2.0]).to(torch.float8_e4m3fn),
    }


def same_tensors(expected: dict[str, Any], path: Path) -> None:
    loaded = safetensors_torch.load_file(str(path))
    assert sorted(loaded) == sorted(expected)
    for name, tensor in expected.items():
        assert loaded[name].dtype == tensor.dtype, name
        assert loaded[name].shape == tensor.shape, name
        as_bytes = [t.contiguous().reshape(-1).view(torch.uint8) for t in (loaded[name], tensor)]
        assert torch.equal(*as_bytes), name


# ------------------------------------------------------------------ benign


@pytest.mark.parametrize(
    ("name", "legacy"), [("model.pt", False), ("model.pth", True), ("pytorch_model.bin", False)]
)
def test_a_benign_checkpoint_converts_to_identical_tensors(
    tmp_path: Path, out: Path, name: str, legacy: bool
) -> None:
    expected = state()
    if legacy:  # torch's legacy format cannot hold float8 (a torch limitation)
        del expected["fp8"]
    source = tmp_path / name
    torch.save(expected, source, _use_new_zipfile_serialization=not legacy)
    result = convert(source, out / "model.safetensors")
    same_tensors(expected, out / "model.safetensors")
    assert result.weights_only is True
    assert {t.name for t in result.tensors} == set(expected)
    applied = {layer.name: layer.applied for layer in result.layers}
    assert applied == dict.fromkeys(
        ["rlimits", "netns", "no_new_privs", "landlock", "seccomp"], True
    )
    assert oct(os.stat(out / "model.safetensors").st_mode & 0o777) == "0o644"
    assert leftovers(out) == []


def test_nested_containers_flatten_to_dotted_names(tmp_path: Path, out: Path) -> None:
    a, b = torch.ones(2), torch.zeros(3)
    torch.save({"model": {"enc": [a, (b,)]}, "ema": {0: a}}, tmp_path / "c.pt")
    convert(tmp_path / "c.pt", out / "c.safetensors")
    same_tensors({"model.enc.0": a, "model.enc.1.0": b, "ema.0": a}, out / "c.safetensors")


def test_a_hugging_face_folder_converts_single_and_sharded(tmp_path: Path, out: Path) -> None:
    expected = state()
    single = tmp_path / "single"
    single.mkdir()
    torch.save(expected, single / "pytorch_model.bin")
    convert(single, out / "single.safetensors")
    same_tensors(expected, out / "single.safetensors")

    sharded = tmp_path / "sharded"
    sharded.mkdir()
    names = sorted(expected)
    halves = {
        "pytorch_model-00001-of-00002.bin": names[:5],
        "pytorch_model-00002-of-00002.bin": names[5:],
    }
    weight_map = {}
    for shard, keys in halves.items():
        torch.save({k: expected[k] for k in keys}, sharded / shard)
        weight_map.update(dict.fromkeys(keys, shard))
    (sharded / "pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": weight_map}))
    convert(sharded, out / "sharded.safetensors")
    same_tensors(expected, out / "sharded.safetensors")


def test_a_shard_index_that_lies_or_escapes_its_folder_is_refused(
    tmp_path: Path, out: Path
) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    torch.save({"a": torch.ones(1)}, folder / "s1.bin")
    index = folder / "pytorch_model.bin.index.json"
    index.write_text(json.dumps({"weight_map": {"a": "s1.bin", "b": "s1.bin"}}))
    with pytest.raises(ConvertError) as info:
        convert(folder, out / "m.safetensors")
    assert type(info.value) is ConvertError
    assert str(index) in str(info.value)
    assert "listed but not found ['b'], found but not listed []" in str(info.value)

    index.write_text(json.dumps({"weight_map": {"a": "../outside.bin"}}))
    with pytest.raises(UnsafeModelError, match=r"shard '\.\./outside\.bin' is not a file name"):
        convert(folder, out / "m.safetensors")

    (folder / "s2.bin").symlink_to(folder / "s1.bin")
    index.write_text(json.dumps({"weight_map": {"a": "s2.bin"}}))
    with pytest.raises(UnsafeModelError, match=r"s2\.bin: is a symlink"):
        convert(folder, out / "m.safetensors")
    assert not (out / "m.safetensors").exists()
    assert leftovers(out) == []


def test_an_existing_output_is_kept_unless_forced(tmp_path: Path, out: Path) -> None:
    torch.save({"a": torch.ones(2)}, tmp_path / "a.pt")
    target = out / "a.safetensors"
    target.write_bytes(b"old")
    with pytest.raises(OverwriteError, match=r"a\.safetensors: already exists"):
        convert(tmp_path / "a.pt", target)
    assert target.read_bytes() == b"old"
    convert(tmp_path / "a.pt", target, overwrite=True)
    same_tensors({"a": torch.ones(2)}, target)
    with pytest.raises(
        UsageError, match=r"destination=.*a\.bin: the output must be a \.safetensors"
    ):
        convert(tmp_path / "a.pt", out / "a.bin")
    with pytest.raises(UsageError, match=r"weaker=bogus: not a sandbox layer"):
        convert(tmp_path / "a.pt", out / "b.safetensors", weaker=["bogus"])


# ------------------------------------------------- weights_only and content


def test_weights_only_refuses_a_custom_class_with_a_clear_error(tmp_path: Path, out: Path) -> None:
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    torch.save(net, tmp_path / "whole.pt")  # the module object, not its state_dict
    with pytest.raises(WeightsOnlyRefusedError) as info:
        convert(tmp_path / "whole.pt", out / "whole.safetensors")
    message = str(info.value)
    assert str(tmp_path / "whole.pt") in message
    assert "expected tensors and plain containers only" in message
    assert "Unsupported global: GLOBAL torch.nn.modules.linear.Linear" in message
    assert "--allow-pickle" in info.value.diagnostics()
    assert not (out / "whole.safetensors").exists()
    assert leftovers(out) == []
    # Unpickled in full inside the sandbox, the module gives its state_dict.
    result = convert(tmp_path / "whole.pt", out / "whole.safetensors", allow_pickle=True)
    assert result.weights_only is False
    same_tensors(dict(net.state_dict()), out / "whole.safetensors")


def test_non_tensor_content_is_refused_with_its_paths_unless_dropped(
    tmp_path: Path, out: Path
) -> None:
    torch.manual_seed(0)
    net = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    net(torch.ones(1, 2)).sum().backward()
    optimizer.step()
    checkpoint = {
        "model": net.state_dict(),
        "optimizer": optimizer.state_dict(),
        "epoch": 3,
        "args": argparse.Namespace(lr=0.1),
    }
    torch.save(checkpoint, tmp_path / "train.ckpt")
    # weights_only: the Namespace is a custom class, refused by torch.
    with pytest.raises(WeightsOnlyRefusedError, match=r"GLOBAL argparse\.Namespace"):
        convert(tmp_path / "train.ckpt", out / "t.safetensors")
    with pytest.raises(NonTensorContentError) as info:
        convert(tmp_path / "train.ckpt", out / "t.safetensors", allow_pickle=True)
    found = info.value.found
    assert "epoch (builtins.int)" in found
    assert "args (argparse.Namespace)" in found
    assert "optimizer.param_groups.0.lr (builtins.float)" in found
    assert "optimizer.param_groups.0.params.0 (builtins.int)" in found
    assert str(tmp_path / "train.ckpt") in str(info.value)
    assert "epoch (builtins.int)" in str(info.value)
    assert "--drop-non-tensors" in info.value.diagnostics()
    assert not (out / "t.safetensors").exists()

    result = convert(
        tmp_path / "train.ckpt", out / "t.safetensors", allow_pickle=True, drop_non_tensors=True
    )
    assert set(result.dropped) == set(found)
    assert result.dropped_count == len(found)
    names = {t.name for t in result.tensors}
    assert {"model.weight", "model.bias", "optimizer.state.0.momentum_buffer"} <= names
    loaded = safetensors_torch.load_file(str(out / "t.safetensors"))
    assert torch.equal(loaded["model.weight"], net.weight.detach())


# ------------------------------------------- malicious pickles (--allow-pickle)


def assert_denied(info: pytest.ExceptionInfo[Any], source: Path, *parts: str) -> None:
    message = str(info.value)
    assert type(info.value) is SandboxedLoadError, message
    assert message.startswith(f"{source}: loading failed inside the sandbox: "), message
    for part in parts:
        assert part in message, (part, message)


def test_a_pickle_that_writes_outside_its_folder_fails_with_no_effect(
    tmp_path: Path, out: Path, outside: Path
) -> None:
    target = outside / "pwned"
    source = malicious(tmp_path / "w.pt", f"open({str(target)!r}, 'w').write('pwned')")
    with pytest.raises(SandboxedLoadError) as info:
        convert(source, out / "w.safetensors", allow_pickle=True)
    assert_denied(info, source, "PermissionError", str(target), "(the sandbox denied it)")
    assert not target.exists()
    assert sorted(p.name for p in outside.iterdir()) == ["precious.txt"]
    assert list(out.iterdir()) == []


def test_a_pickle_that_changes_a_file_mode_outside_fails_with_no_effect(
    tmp_path: Path, out: Path, outside: Path
) -> None:
    precious = outside / "precious.txt"
    source = malicious(tmp_path / "m.pt", f"import os; os.chmod({str(precious)!r}, 0o666)")
    with pytest.raises(SandboxedLoadError) as info:
        convert(source, out / "m.safetensors", allow_pickle=True)
    assert_denied(info, source, "PermissionError", "Operation not permitted")
    assert oct(precious.stat().st_mode & 0o777) == "0o600"


def test_a_pickle_that_opens_a_socket_fails_with_no_effect(
    tmp_path: Path, out: Path, listener: socket.socket
) -> None:
    port = listener.getsockname()[1]
    code = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=5).send(b'x')"
    source = malicious(tmp_path / "s.pt", code)
    with pytest.raises(SandboxedLoadError) as info:
        convert(source, out / "s.safetensors", allow_pickle=True)
    assert_denied(info, source, "PermissionError", "Operation not permitted")
    assert connections(listener) == 0


@pytest.mark.parametrize(
    "code",
    [
        "import subprocess; subprocess.run(['/bin/sh', '-c', 'echo pwned > {target}'])",
        "import os; os.execv('/bin/sh', ['sh', '-c', 'echo pwned > {target}'])",
        "import os; os.fork()",
        "import os; assert os.system('echo pwned > {target}') == 0, 'the shell did not run'",
    ],
    ids=["subprocess", "execv", "fork", "system"],
)
def test_a_pickle_that_forks_a_shell_fails_with_no_effect(
    tmp_path: Path, out: Path, outside: Path, code: str
) -> None:
    target = outside / "pwned"
    source = malicious(tmp_path / "sh.pt", code.format(target=target))
    with pytest.raises(SandboxedLoadError) as info:
        convert(source, out / "sh.safetensors", allow_pickle=True)
    if "system" in code:  # the C library reports a failed spawn as status 127
        assert_denied(info, source, "AssertionError: the shell did not run")
    else:
        assert_denied(info, source, "PermissionError", "Operation not permitted")
    assert not target.exists()


def test_a_pickle_that_reads_ssh_keys_fails_and_leaks_nothing(tmp_path: Path, out: Path) -> None:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    secret = "-----BEGIN OPENSSH PRIVATE KEY----- s3cr3t-key-material"
    key = home / ".ssh" / "id_ed25519"
    key.write_text(secret)
    code = (
        f"import os; data = open({str(key)!r}).read(); "
        "open(os.path.join(os.environ['HOME'], 'leak'), 'w').write(data); raise SystemExit(data)"
    )
    source = malicious(tmp_path / "k.pt", code)
    env = {**os.environ, "HOME": str(home)}
    env.pop("MODELSIGN_POLICY", None)
    result = subprocess.run(
        [
            *CLI,
            "convert",
            str(source),
            "--to",
            str(out / "k.safetensors"),
            "--allow-pickle",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    doc = json.loads(result.stdout)
    validate(doc, "convert.schema.json")
    assert doc["error"]["type"] == "SandboxedLoadError"
    assert "PermissionError" in doc["error"]["message"]
    assert str(key) in doc["error"]["message"]
    assert "s3cr3t" not in result.stdout + result.stderr
    assert list(out.iterdir()) == []
    assert sorted(p.name for p in home.rglob("*")) == [".ssh", "id_ed25519"]


def test_a_pickle_that_exhausts_memory_is_stopped_at_its_limit(tmp_path: Path, out: Path) -> None:
    source = malicious(tmp_path / "mem.pt", "hog = [bytearray(2**28) for _ in range(10**4)]")
    with pytest.raises(SandboxLimitError) as info:
        convert(source, out / "mem.safetensors", allow_pickle=True, memory_limit=2 * 1024**3)
    message = str(info.value)
    assert type(info.value) is SandboxLimitError
    assert message.startswith(f"{source}: out of memory inside the sandbox (limit: ")
    assert f"{2 * 1024**3} bytes of address space): MemoryError" in message
    assert list(out.iterdir()) == []


def sandboxed_processes(marker: str) -> list[int]:
    """Live processes whose command line mentions ``marker``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def test_a_checkpoint_that_hangs_is_killed_at_the_timeout(tmp_path: Path, out: Path) -> None:
    source = malicious(tmp_path / "hang.pt", "import time; time.sleep(3600)")
    with pytest.raises(SandboxTimeoutError) as info:
        convert(source, out / "hang.safetensors", allow_pickle=True, timeout=5)
    assert str(info.value) == (
        f"{source}: the sandboxed loader was still running after the timeout of 5 s and was killed"
    )
    assert sandboxed_processes(str(out)) == []
    assert list(out.iterdir()) == []


def test_a_checkpoint_that_spins_is_stopped_at_its_cpu_limit(tmp_path: Path, out: Path) -> None:
    source = malicious(tmp_path / "spin.pt", "while True: pass")
    with pytest.raises(SandboxLimitError) as info:
        convert(source, out / "spin.safetensors", allow_pickle=True, cpu_limit=2, timeout=300)
    assert type(info.value) is SandboxLimitError
    assert str(info.value) == (
        f"{source}: the sandboxed loader used its CPU time limit of 2 s and was killed (SIGXCPU)"
    )


def test_a_pickle_cannot_signal_the_process_that_started_it(tmp_path: Path, out: Path) -> None:
    source = malicious(tmp_path / "kill.pt", "import os, signal; os.kill(os.getppid(), 9)")
    env = {k: v for k, v in os.environ.items() if k != "MODELSIGN_POLICY"}
    result = subprocess.run(
        [*CLI, "convert", str(source), "--to", str(out / "k.safetensors"), "--allow-pickle"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 1, result.stderr  # not -9: the parent lived
    assert "loading failed inside the sandbox: PermissionError" in result.stderr


def test_a_symlink_planted_in_the_output_folder_is_refused(
    tmp_path: Path, out: Path, outside: Path
) -> None:
    code = (
        "import json, os, sys; c = json.loads(sys.argv[1]); "
        f"os.symlink({str(outside / 'precious.txt')!r}, "
        "os.path.join(c['output_dir'], c['output_name']))"
    )
    source = malicious(tmp_path / "ln.pt", code)
    with pytest.raises(SandboxedLoadError) as info:
        convert(source, out / "ln.safetensors", allow_pickle=True)
    assert_denied(info, source, "PermissionError")
    assert (outside / "precious.txt").read_text() == "keep me"


FORGE = """
import json, os, sys
from modelsign._sandbox._safetensors import header
c = json.loads(sys.argv[1])
with open(os.path.join(c['output_dir'], c['output_name']), 'wb') as f:
    f.write(header([('w', 'F32', [2], 0, 8)]) + bytes(8))
record = {{'name': 'w', 'dtype': 'F32', 'shape': [2], 'sha256': {digest!r}}}
os.write(c['report_fd'], (json.dumps({{'event': 'done', 'tensors': [record],
         'dropped': [], 'count': 0}}) + '\\n').encode())
os._exit(0)
"""


def test_a_report_that_lies_about_the_output_is_refused(tmp_path: Path, out: Path) -> None:
    actual = hashlib.sha256(bytes(8)).hexdigest()
    source = malicious(tmp_path / "lie.pt", FORGE.format(digest="ab" * 32))
    with pytest.raises(ConvertedOutputError) as info:
        convert(source, out / "lie.safetensors", allow_pickle=True)
    claimed = "ab" * 32
    assert (
        f"tensor 'w': sha256 mismatch: expected (reported by the sandboxed loader) {claimed}, "
        f"actual {actual}"
    ) in str(info.value)
    assert list(out.iterdir()) == []
    # The same forgery with the true digest is a well-formed file of tensors:
    # all a compromised loader can do is choose the values.
    source = malicious(tmp_path / "true.pt", FORGE.format(digest=actual))
    convert(source, out / "true.safetensors", allow_pickle=True)
    same_tensors({"w": torch.zeros(2)}, out / "true.safetensors")


# ------------------------------------------------ the parent's output check


def write(path: Path, header: Any, data: bytes = b"", raw: bytes | None = None) -> Path:
    text = raw if raw is not None else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)
    return path


def record(
    name: str, data: bytes, dtype: str = "U8", shape: tuple[int, ...] | None = None
) -> TensorRecord:
    return TensorRecord(name, dtype, shape or (len(data),), hashlib.sha256(data).hexdigest())


META = {"__metadata__": {"format": "pt"}}


@pytest.mark.parametrize(
    ("header", "data", "raw", "expected", "message"),
    [
        (None, b"", b"", [], "header: not valid JSON"),
        (None, b"", b"{}", [], "__metadata__: expected {'format': 'pt'}, actual None"),
        (
            None,
            b"",
            b'{"__metadata__": {"format": "pt"}, "a": 1, "a": 2}',
            [],
            "duplicate JSON key 'a'",
        ),
        ({"__metadata__": {"format": "pt", "x": "y"}}, b"", None, [], "__metadata__: expected"),
        (
            {**META, "a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}},
            b"ab",
            None,
            [record("a", b"ab"), record("b", b"")],
            "reported but not in the file ['b'], in the file but not reported []",
        ),
        (
            {**META, "a": {"dtype": "U8", "shape": [3], "data_offsets": [0, 2]}},
            b"ab",
            None,
            [record("a", b"ab")],
            "tensor 'a': expected 3 bytes for U8 [3], actual 2",
        ),
        (
            {
                **META,
                "a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]},
                "b": {"dtype": "U8", "shape": [2], "data_offsets": [1, 3]},
            },
            b"abc",
            None,
            [record("a", b"ab"), record("b", b"bc")],
            "tensor 'b': data starts at 1, expected 2",
        ),
        (
            {**META, "a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}},
            b"abX",
            None,
            [record("a", b"ab")],
            "the tensors cover 2 bytes of data, actual 3",
        ),
        (
            {**META, "a": {"dtype": "I16", "shape": [1], "data_offsets": [0, 2]}},
            b"ab",
            None,
            [record("a", b"ab")],
            "tensor 'a': expected U8 [2] (reported by the sandboxed loader), actual I16 [1]",
        ),
        (
            {**META, "a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}},
            b"ab",
            None,
            [record("a", b"ac")],
            "tensor 'a': sha256 mismatch",
        ),
        (
            {**META, "a": {"dtype": "C128", "shape": [1], "data_offsets": [0, 16]}},
            bytes(16),
            None,
            [],
            "tensor 'a': bad dtype or shape 'C128'",
        ),
    ],
    ids=[
        "empty header",
        "no metadata",
        "duplicate names",
        "extra metadata",
        "a reported tensor missing",
        "size not of the shape",
        "overlapping tensors",
        "trailing bytes",
        "dtype differs",
        "digest differs",
        "unknown dtype",
    ],
)
def test_the_parent_refuses_an_output_unlike_the_report(
    tmp_path: Path,
    header: Any,
    data: bytes,
    raw: bytes | None,
    expected: list[TensorRecord],
    message: str,
) -> None:
    path = write(tmp_path / "o.safetensors", header, data, raw)
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(ConvertedOutputError) as info:
            check_file(fd, str(path), expected)
    finally:
        os.close(fd)
    assert str(info.value).startswith(f"{path}"), str(info.value)
    assert message in str(info.value)


def test_the_parent_refuses_a_file_too_short_for_its_header(tmp_path: Path) -> None:
    short = tmp_path / "short.safetensors"
    short.write_bytes(b"\x10\0\0")
    long = tmp_path / "long.safetensors"
    long.write_bytes(struct.pack("<Q", 2**40) + b"{}")
    for path, message in (
        (short, "short.safetensors: 3 bytes, shorter than a safetensors header"),
        (
            long,
            f"long.safetensors: header length {2**40} is over the limit (expected at most 2 bytes)",
        ),
    ):
        fd = os.open(path, os.O_RDONLY)
        try:
            with pytest.raises(ConvertedOutputError) as info:
                check_file(fd, str(path), [])
        finally:
            os.close(fd)
        assert str(info.value) == f"{tmp_path}/{message}"


# ---------------------------------------------------------------- the CLI


def test_cli_converts_signs_and_prints_json(
    tmp_path: Path, out: Path, keypair: tuple[Path, Path]
) -> None:
    expected = {"w": torch.arange(6).reshape(2, 3)}
    torch.save(expected, tmp_path / "m.pt")
    target = out / "m.safetensors"
    env = {k: v for k, v in os.environ.items() if k != "MODELSIGN_POLICY"}
    result = subprocess.run(
        [
            *CLI,
            "convert",
            str(tmp_path / "m.pt"),
            "--to",
            str(target),
            "--sign",
            "--key",
            str(keypair[0]),
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    validate(doc, "convert.schema.json")
    assert doc["signature"] == f"{target}.sig"
    assert doc["tensors"] == [
        {
            "name": "w",
            "dtype": "I64",
            "shape": [2, 3],
            "sha256": hashlib.sha256(expected["w"].numpy().tobytes()).hexdigest(),
        }
    ]
    verified = subprocess.run(
        [*CLI, "verify", str(target), "--key", str(keypair[1]), "-q"], env=env, check=False
    )
    assert verified.returncode == 0
    same_tensors(expected, target)

    text = subprocess.run(
        [*CLI, "convert", str(tmp_path / "m.pt"), "--to", str(target), "--force"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines() == [
        f"converted {tmp_path / 'm.pt'} -> {target} (1 tensor, {target.stat().st_size} bytes), "
        "loaded with weights_only=True",
        "sandbox: rlimits, netns, no_new_privs, landlock, seccomp",
    ]
    quiet = subprocess.run(
        [*CLI, "convert", str(tmp_path / "m.pt"), "--to", str(target), "--force", "-q"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")


def test_cli_refusals_exit_1_and_usage_errors_exit_2(
    tmp_path: Path, out: Path, keypair: tuple[Path, Path]
) -> None:
    torch.save(torch.nn.Linear(1, 1), tmp_path / "whole.pt")
    env = {k: v for k, v in os.environ.items() if k != "MODELSIGN_POLICY"}

    def run(*args: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLI, "convert", *map(str, args)], capture_output=True, text=True, env=env, check=False
        )

    refused = run(tmp_path / "whole.pt", "--to", out / "w.safetensors", "--json")
    assert refused.returncode == 1
    doc = json.loads(refused.stdout)
    validate(doc, "convert.schema.json")
    assert doc["error"]["type"] == "WeightsOnlyRefusedError"
    assert "what to do:" in refused.stderr
    assert "--allow-pickle" in refused.stderr
    assert "Traceback" not in refused.stderr

    usage = run(tmp_path / "whole.pt", "--to", out / "w.safetensors", "--key", keypair[0])
    assert usage.returncode == 2
    assert "signer options (--key, --certificate, --sigstore) need --sign" in usage.stderr
    size = run(tmp_path / "whole.pt", "--to", out / "w.safetensors", "--memory-limit", "lots")
    assert size.returncode == 2
    assert "--memory-limit 'lots': give a positive size" in size.stderr
    layer = run(tmp_path / "whole.pt", "--to", out / "w.safetensors", "--weaker-sandbox", "x")
    assert layer.returncode == 2
    assert (
        "--weaker-sandbox x: not a sandbox layer (the layers are netns, landlock, seccomp)"
        in layer.stderr
    )
    missing = run(tmp_path / "nothing.pt", "--to", out / "w.safetensors")
    assert missing.returncode == 2
    assert f"{tmp_path / 'nothing.pt'}: no such file" in missing.stderr
    assert list(out.iterdir()) == []
