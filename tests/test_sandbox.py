"""The sandbox layers one by one (each in a fresh process, which it restricts
for good), a kernel without a layer (simulated with a seccomp filter that
makes its system call fail), and `modelsign run --sandbox`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest

import modelsign
from tests.conftest import connections, require, write_torch_model
from tests.test_json_output import validate

CLI = [sys.executable, "-m", "modelsign"]
ENV = {k: v for k, v in os.environ.items() if k != "MODELSIGN_POLICY"}

#: Runs SETUP (which restricts the process), then each probe; prints
#: {probe: "ok" or the errno name}.
PROBE = """
import ctypes, errno, json, os, socket, subprocess, sys, threading
from modelsign._sandbox import _landlock, _process, _seccomp
from modelsign._sandbox._process import Limits
args = json.loads(sys.argv[1])
import pyseccomp
libc = ctypes.CDLL(None, use_errno=True)
def nr(name):  # this architecture's number of a system call
    return pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name)
def raw(number, *values):
    result = libc.syscall(ctypes.c_long(number), *(ctypes.c_long(v) for v in values))
    if result == -1:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))
def spawn():
    if os.fork() == 0:
        os._exit(0)
    os.wait()
def thread():
    t = threading.Thread(target=lambda: None)
    t.start()
    t.join()
{setup}
results = {{}}
for name, code in args["probes"].items():
    try:
        exec(code)
        results[name] = "ok"
    except OSError as e:
        results[name] = errno.errorcode.get(e.errno, str(e.errno))
    except MemoryError:
        results[name] = "MemoryError"
print(json.dumps(results))
"""


def probe(setup: str, probes: dict[str, str], **values: Any) -> dict[str, str]:
    script = PROBE.format(setup=textwrap.dedent(setup))
    result = subprocess.run(
        [sys.executable, "-c", script, json.dumps({"probes": probes, **values})],
        capture_output=True,
        text=True,
        env=ENV,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def _landlock_abi() -> int:
    from modelsign._sandbox._landlock import abi_version

    return abi_version()


@pytest.fixture
def landlock_abi() -> int:
    abi = _landlock_abi()
    if abi < 3:
        pytest.skip(f"this kernel's Landlock ABI is {abi}: modelsign's landlock layer needs 3")
    return abi


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for name in ("granted", "output", "other"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "f").write_text(name)
    return tmp_path


# ------------------------------------------------------------- each layer


def test_landlock_grants_only_what_it_lists(
    tree: Path, landlock_abi: int, listener: socket.socket
) -> None:
    port = listener.getsockname()[1]
    abstract = f"\0modelsign-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX) as unix_server:
        unix_server.bind(abstract)
        unix_server.listen(1)
        results = probe(
            """
            grants = [_landlock.Grant(args["tree"] + "/granted", "read"),
                      _landlock.Grant(args["tree"] + "/output", "output"),
                      _landlock.Grant("/usr", "read")]
            report = _landlock.restrict(grants, deny_tcp=True,
                                        scopes=("ABSTRACT_UNIX_SOCKET", "SIGNAL"))
            assert report.applied and report.detail.startswith("ABI "), report
            t = args["tree"]
            """,
            {
                "read granted": "open(t + '/granted/f').read()",
                "list granted": "os.listdir(t + '/granted')",
                "read other": "open(t + '/other/f').read()",
                "list other": "os.listdir(t + '/other')",
                "write granted": "open(t + '/granted/f', 'a')",
                "truncate granted": "os.truncate(t + '/granted/f', 0)",
                "create in output": "open(t + '/output/new', 'w').write('x')",
                "create in other": "open(t + '/other/new', 'w')",
                "symlink in output": "os.symlink('/etc/passwd', t + '/output/link')",
                "folder in output": "os.mkdir(t + '/output/sub')",
                "link granted into output": "os.link(t + '/granted/f', t + '/output/g')",
                "unlink other": "os.unlink(t + '/other/f')",
                "execute": "subprocess.run(['/usr/bin/true'])",
                "tcp": f"socket.create_connection(('127.0.0.1', {port}), timeout=5)",
                "abstract unix": f"socket.socket(socket.AF_UNIX).connect({abstract!r})",
                "signal parent": "os.kill(os.getppid(), 0)",
                "signal self": "os.kill(os.getpid(), 0)",
            },
            tree=str(tree),
        )
    assert results.pop("read granted") == results.pop("list granted") == "ok"
    assert results.pop("create in output") == results.pop("signal self") == "ok"
    assert results.pop("link granted into output") == "EXDEV"  # no REFER right
    expected = {
        "read other": "EACCES",
        "list other": "EACCES",
        "write granted": "EACCES",
        "truncate granted": "EACCES",
        "create in other": "EACCES",
        "symlink in output": "EACCES",
        "folder in output": "EACCES",
        "unlink other": "EACCES",
        "execute": "EACCES",
        "tcp": "EACCES" if landlock_abi >= 4 else "ok",
        "abstract unix": "EPERM" if landlock_abi >= 6 else "ok",
        "signal parent": "EPERM" if landlock_abi >= 6 else "ok",
    }
    assert results == expected
    assert (tree / "granted" / "f").read_text() == "granted"
    assert (tree / "other" / "f").read_text() == "other"
    assert (tree / "output" / "new").read_text() == "x"
    assert connections(listener) == 0


def test_seccomp_convert_profile_denies_processes_sockets_and_metadata(tree: Path) -> None:
    results = probe(
        """
        assert _seccomp.load("convert").applied
        f = args["tree"] + "/other/f"
        """,
        {
            "thread": "thread()",
            "signal self": "os.kill(os.getpid(), 0)",
            "fork": "spawn()",
            "execv": "os.execv('/usr/bin/true', ['true'])",
            "socket": "socket.socket()",
            "unix socket": "socket.socket(socket.AF_UNIX)",
            "chmod": "os.chmod(f, 0o777)",
            "chown": "os.chown(f, 0, 0)",
            "fchmodat2 by number": "raw(452, -100, id(f) * 0, 0o777, 0)",
            "signal parent": "os.kill(os.getppid(), 0)",
            "signal parent, high bits": "raw(nr('kill'), (1 << 32) | os.getppid(), 0)",
            "unshare": "raw(nr('unshare'), 0x40000000)",
            "ptrace": "raw(nr('ptrace'), 16, os.getppid(), 0, 0)",
            "TIOCSTI, high bits": "raw(nr('ioctl'), 0, (1 << 32) | 0x5412, 0)",
            "a system call newer than the list": "raw(470, 0, 0, 0)",
        },
        tree=str(tree),
    )
    assert results.pop("thread") == results.pop("signal self") == "ok"
    assert results.pop("a system call newer than the list") == "ENOSYS"
    assert set(results.values()) == {"EPERM"}, results
    assert oct((tree / "other" / "f").stat().st_mode & 0o777) == "0o644"


def test_seccomp_run_profile_lets_a_server_work(tree: Path) -> None:
    results = probe(
        """
        assert _seccomp.load("run").applied
        f = args["tree"] + "/other/f"
        """,
        {
            "fork": "spawn()",
            "program": "assert subprocess.run(['/usr/bin/true']).returncode == 0",
            "socket": "socket.socket().close()",
            "chmod": "os.chmod(f, 0o777)",
            "ptrace": "raw(nr('ptrace'), 16, os.getppid(), 0, 0)",
            "mount": "raw(nr('mount'), 0, 0, 0, 0, 0)",
        },
        tree=str(tree),
    )
    assert results == {
        "fork": "ok",
        "program": "ok",
        "socket": "ok",
        "chmod": "EPERM",
        "ptrace": "EPERM",
        "mount": "EPERM",
    }


def test_a_network_namespace_reaches_no_address(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    connect = f"socket.create_connection(('127.0.0.1', {port}), timeout=5)"
    unmapped = probe(
        "assert _process.new_network_namespace(map_ids=False).applied",
        {"connect": connect, "uid": "assert os.getuid() == 65534, os.getuid()"},
    )
    assert unmapped == {"connect": "ENETUNREACH", "uid": "ok"}
    mapped = probe(
        "assert _process.new_network_namespace(map_ids=True).applied",
        {"connect": connect, "uid": f"assert os.getuid() == {os.getuid()}"},
    )
    assert mapped == {"connect": "ENETUNREACH", "uid": "ok"}
    assert connections(listener) == 0


def test_resource_limits_and_no_new_privs(tree: Path) -> None:
    results = probe(
        """
        _process.set_limits(Limits(memory=2 * 1024**3, cpu_seconds=60, file_size=1000))
        _process.no_new_privs()
        """,
        {
            "small file": "open(args['tree'] + '/output/small', 'wb', 0).write(bytes(1000))",
            "large file": "f = open(args['tree'] + '/output/large', 'wb', 0)\n"
            "f.write(bytes(1000))\nf.write(b'x')",
            "memory": "bytearray(3 * 1024**3)",
            "no_new_privs": "assert 'NoNewPrivs:\\t1' in open('/proc/self/status').read()",
        },
        tree=str(tree),
    )
    assert results == {
        "small file": "ok",
        "large file": "EFBIG",
        "memory": "MemoryError",
        "no_new_privs": "ok",
    }


def test_a_layer_refuses_a_second_thread() -> None:
    results = probe(
        """
        import time
        from modelsign._sandbox._layers import Unavailable
        threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
        def namespace():
            try:
                _process.new_network_namespace(map_ids=False)
            except Unavailable as e:
                assert e.reason == "the process has 2 threads; it must have one", e.reason
                raise OSError(errno.EBUSY, e.reason) from None
        """,
        {"netns with two threads": "namespace()"},
    )
    assert results == {"netns with two threads": "EBUSY"}


# --------------------------------------------------- a kernel without a layer

#: Runs the modelsign CLI under a seccomp filter that makes one layer's
#: system calls fail as they do on a kernel (or a system) without it.
WITHOUT = """
import errno, os, sys
import pyseccomp as sc
rules = sc.SyscallFilter(sc.ALLOW)
layer = sys.argv[1]
if layer == "netns":  # user namespaces disabled
    rules.add_rule(sc.ERRNO(errno.EPERM), "unshare")
elif layer == "landlock":  # a kernel built without Landlock
    rules.add_rule(sc.ERRNO(errno.ENOSYS), "landlock_create_ruleset")
else:  # a kernel without seccomp filters
    rules.add_rule(sc.ERRNO(errno.ENOSYS), "seccomp")
    rules.add_rule(sc.ERRNO(errno.EINVAL), "prctl", sc.Arg(0, sc.EQ, 22))
rules.load()
os.execv(sys.executable, [sys.executable, "-m", "modelsign", *sys.argv[2:]])
"""

REASONS = {
    "netns": "unshare(CLONE_NEWUSER | CLONE_NEWNET) failed: Operation not permitted",
    "landlock": "the kernel has no Landlock",
    "seccomp": "the filter cannot be loaded",
}


def without(layer: str, *args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT, layer, *map(str, args)],
        capture_output=True,
        text=True,
        env=ENV,
        check=False,
    )


@pytest.mark.parametrize("layer", ["netns", "landlock", "seccomp"])
def test_a_missing_layer_is_refused_unless_accepted(tmp_path: Path, layer: str) -> None:
    require("torch", "the converter loads checkpoints with torch")
    write_torch_model(tmp_path / "m.pt")
    target = tmp_path / "m.safetensors"
    refused = without(layer, "convert", tmp_path / "m.pt", "--to", target, "--json")
    assert refused.returncode == 2, refused.stderr
    doc = json.loads(refused.stdout)
    validate(doc, "convert.schema.json")
    assert doc["error"]["type"] == "SandboxUnavailableError"
    assert doc["error"]["layer"] == layer
    assert doc["error"]["message"].startswith(f"the {layer} sandbox layer is unavailable: ")
    assert REASONS[layer] in doc["error"]["message"]
    assert "--weaker-sandbox LAYER" in refused.stderr
    assert not target.exists()

    accepted = without(
        layer, "convert", tmp_path / "m.pt", "--to", target, "--weaker-sandbox", layer, "--json"
    )
    assert accepted.returncode == 0, accepted.stderr
    doc = json.loads(accepted.stdout)
    validate(doc, "convert.schema.json")
    layers = {entry["name"]: entry for entry in doc["sandbox"]["layers"]}
    assert layers[layer]["applied"] is False
    assert REASONS[layer] in layers[layer]["detail"]
    others = {name for name, entry in layers.items() if entry["applied"]}
    assert others == {"rlimits", "netns", "no_new_privs", "landlock", "seccomp"} - {layer}
    assert target.exists()


# --------------------------------------------------------- run --sandbox

SERVE = """
import json, os, socket, sys, torch
model, policy, scratch, port = sys.argv[1:5]
results = {"loaded": sorted(torch.load(os.path.join(model, "model.pt")))}
def attempt(name, action):
    try:
        action()
        results[name] = "ok"
    except OSError as e:
        results[name] = type(e).__name__
weights = os.path.join(model, "model.pt")
attempt("append to the weights", lambda: open(weights, "ab").write(b"x"))
attempt("truncate the weights", lambda: os.truncate(weights, 0))
attempt("replace the weights", lambda: os.replace(os.path.join(model, "config.json"), weights))
attempt("delete the signature", lambda: os.unlink(os.path.join(model, "model.sig")))
attempt("add a file", lambda: open(os.path.join(model, "extra.py"), "w"))
attempt("chmod the weights", lambda: os.chmod(weights, 0o666))
attempt("link the weights out", lambda: os.link(weights, os.path.join(scratch, "w")))
attempt("edit the policy", lambda: open(policy, "a").write("# x"))
attempt("write scratch", lambda: open(os.path.join(scratch, "cache"), "w").write("x"))
attempt("connect", lambda: socket.create_connection(("127.0.0.1", int(port)), timeout=5))
print(json.dumps(results))
"""


@pytest.fixture
def served(tmp_path: Path, keypair: tuple[Path, Path]) -> dict[str, Path]:
    require("torch", "the served program loads a model with torch")
    model = tmp_path / "model"
    model.mkdir()
    write_torch_model(model / "model.pt")
    (model / "config.json").write_text("{}")
    modelsign.sign(model, keypair[0])
    policy = tmp_path / "policy.toml"
    policy.write_text(f'[trust]\nkeys = ["{keypair[1]}"]\n[enforce]\nscope = ["{model}"]\n')
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (tmp_path / "serve.py").write_text(SERVE)
    return {"model": model, "policy": policy, "scratch": scratch, "serve": tmp_path / "serve.py"}


def serve(served: dict[str, Path], port: int, *options: str) -> subprocess.CompletedProcess[str]:
    program = [sys.executable, str(served["serve"]), str(served["model"]), str(served["policy"])]
    return subprocess.run(
        [
            *CLI,
            "run",
            "--policy",
            str(served["policy"]),
            *options,
            "--",
            *program,
            str(served["scratch"]),
            str(port),
        ],
        capture_output=True,
        text=True,
        env=ENV,
        check=False,
    )


def test_a_served_model_cannot_modify_its_files_or_the_policy(
    served: dict[str, Path], keypair: tuple[Path, Path], listener: socket.socket, landlock_abi: int
) -> None:
    before = {p: p.read_bytes() for p in [*served["model"].iterdir(), served["policy"]]}
    port = listener.getsockname()[1]
    result = serve(served, port, "--sandbox", "--writable", str(served["scratch"]))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "loaded": ["0.bias", "0.weight", "2.bias", "2.weight"],  # enforcement still on
        "append to the weights": "PermissionError",
        "truncate the weights": "PermissionError",
        "replace the weights": "PermissionError",
        "delete the signature": "PermissionError",
        "add a file": "PermissionError",
        "chmod the weights": "PermissionError",
        "link the weights out": "OSError",  # EXDEV: Landlock refuses to reparent it
        "edit the policy": "PermissionError",
        "write scratch": "ok",
        "connect": "ok",  # the network stays unless --no-network
    }
    assert {p: p.read_bytes() for p in before} == before
    assert oct((served["model"] / "model.pt").stat().st_mode & 0o777) == "0o644"
    modelsign.verify(served["model"], [modelsign.load_public_key(keypair[1])])
    assert connections(listener) == 1

    offline = serve(served, port, "--sandbox", "--writable", str(served["scratch"]), "--no-network")
    assert offline.returncode == 0, offline.stderr
    assert json.loads(offline.stdout)["connect"] == "PermissionError"
    assert connections(listener) == 0

    unrestricted = serve(served, port)  # the control: without --sandbox all of it works
    assert unrestricted.returncode == 0, unrestricted.stderr
    assert json.loads(unrestricted.stdout)["edit the policy"] == "ok"


def test_run_refuses_writable_folders_over_the_models_or_the_policy(
    served: dict[str, Path],
) -> None:
    for folder in (served["model"], served["model"].parent, served["policy"].parent):
        result = serve(served, 1, "--sandbox", "--writable", str(folder))
        assert result.returncode == 2
        assert f"--writable {os.path.realpath(folder)} overlaps " in result.stderr
        assert "which must stay read-only under the sandbox" in result.stderr
    lone = serve(served, 1, "--writable", str(served["scratch"]))
    assert lone.returncode == 2
    assert "--writable, --no-network and --weaker-sandbox need --sandbox" in lone.stderr
    assert not (served["scratch"] / "cache").exists()


def test_run_refuses_a_missing_layer_unless_accepted(served: dict[str, Path]) -> None:
    base = ["run", "--policy", served["policy"], "--sandbox"]
    program = ["--", sys.executable, "-c", "print('started')"]
    refused = without("landlock", *base, *program)
    assert refused.returncode == 2
    assert "the landlock sandbox layer is unavailable: the kernel has no Landlock" in refused.stderr
    assert "the program was not started" in refused.stderr
    assert "started" not in refused.stdout
    accepted = without("landlock", *base, "--weaker-sandbox", "landlock", *program)
    assert accepted.returncode == 0, accepted.stderr
    assert accepted.stdout.strip() == "started"
