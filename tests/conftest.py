"""Shared fixtures: real keys, real models, the read-only shared test data;
and the suite's two modes.

**Strict mode** (where CI runs): ``../shared/testdata`` exists beside the
repository, every dependency of the ``test`` extra in ``pyproject.toml``
imports and every program in :data:`PROGRAMS` is installed (``.ci/run``
installs Chromium). Then nothing may be skipped: a skip fails its test, naming the reason
it gave. **User mode** (anywhere else, e.g. a fresh clone without
``../shared``): tests that need what is missing skip, and ``-ra`` lists why.
The header and the end of every run say which mode it used and why.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
from packaging.requirements import Requirement

from modelsign import keys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - tomli is a dependency below 3.11
    import tomli as tomllib

REPOSITORY = Path(__file__).resolve().parents[1]
SHARED = REPOSITORY.parent / "shared" / "testdata"


def shared(*parts: str) -> Path:
    """A path under ../shared/testdata, or skip when that folder is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(
            f"{path} is absent (a fresh clone has no ../shared/testdata)", allow_module_level=True
        )
    return path


#: Programs some tests run, besides Python packages: name -> what for (and
#: how to install it). A test that needs a missing one skips, except in
#: strict mode, which needs them all.
PROGRAMS = {
    "chromium": "the HTML audit report is checked in a real browser; "
    "apt-get install chromium (.ci/run does it)",
}


def require_program(name: str) -> str:
    """The path of a program of :data:`PROGRAMS`, or skip when it is not installed."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed ({PROGRAMS[name]})", allow_module_level=True)
    return path


def require(module: str, why: str) -> ModuleType:
    """Import a test dependency, or skip when it is not installed at all.

    Unlike ``pytest.importorskip(..., exc_type=ImportError)``, a dependency
    that is installed but fails to import (a broken install, a missing
    dependency of its own) fails the test with its real error instead of
    skipping it."""
    if importlib.util.find_spec(module.partition(".")[0]) is None:
        pytest.skip(
            f"{module} is not installed ({why}; pip install 'modelsign[test]')",
            allow_module_level=True,
        )
    return importlib.import_module(module)


# --------------------------------------------------------------------------
# Strict mode: where CI runs, a skip is a failure.


@dataclass(frozen=True)
class Mode:
    strict: bool
    why: str

    def describe(self) -> str:
        if self.strict:
            return f"strict (any skip fails the run): {self.why}"
        return f"user (skips allowed, listed with their reasons): {self.why}"


_MODE = pytest.StashKey[Mode]()

#: Imports each module named on the command line in a fresh interpreter (so that
#: the probe leaves this process as it was); prints {module: error} as JSON.
_PROBE = """
import importlib, json, sys
failed = {}
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except BaseException as e:
        failed[name] = f"{type(e).__name__}: {e}"
print(json.dumps(failed))
"""


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def extra_requirements(extra: str = "test") -> list[Requirement]:
    """An extra of pyproject.toml, for this interpreter (markers applied); an
    entry naming modelsign's own extras (``modelsign[transformers]``) stands
    for their requirements."""
    project = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["optional-dependencies"][extra]]
    out: list[Requirement] = []
    for r in reqs:
        if r.marker is not None and not r.marker.evaluate({"extra": extra}):
            continue
        if _normalize(r.name) == _normalize(project["name"]):
            for nested in sorted(r.extras):
                out += extra_requirements(nested)
        else:
            out.append(r)
    return out


def import_names(distribution: str, modules: dict[str, list[str]]) -> list[str]:
    """The top-level modules to import for ``distribution``: the one named
    like it if there is one (``model-signing``: ``model_signing``), else all
    its public ones (``pyopenssl``: ``OpenSSL``)."""
    own = sorted(m for m, dists in modules.items() if distribution in map(_normalize, dists))
    public = [m for m in own if not m.startswith("_")]
    named = distribution.replace("-", "_")
    return [m for m in public if m.lower() == named] or public


def suite_mode() -> Mode:
    """Strict exactly when ../shared/testdata exists, every test extra imports
    and every program of :data:`PROGRAMS` is installed."""
    if not SHARED.is_dir():
        return Mode(False, f"{SHARED} is absent")
    modules = importlib.metadata.packages_distributions()
    probe: dict[str, str] = {}
    missing = [
        f"{name} is not installed ({why})"
        for name, why in PROGRAMS.items()
        if not shutil.which(name)
    ]
    for req in extra_requirements():
        names = import_names(_normalize(req.name), modules)
        if not names:
            missing.append(f"{req.name} is not installed")
        for name in names:
            probe[name] = req.name
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, *probe],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        missing.append(f"the import probe failed: {result.stderr.strip()}")
    else:
        failed: dict[str, str] = json.loads(result.stdout)
        missing += [f"{probe[m]} does not import ({m}: {e})" for m, e in failed.items()]
    if missing:
        return Mode(False, "; ".join(missing))
    return Mode(
        True,
        f"{SHARED} is present, all {len(probe)} test-extra imports work and "
        f"{', '.join(PROGRAMS)} {'is' if len(PROGRAMS) == 1 else 'are'} installed",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_MODE] = suite_mode()


def pytest_report_header(config: pytest.Config) -> str:
    return f"modelsign test mode: {config.stash[_MODE].describe()}"


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    terminalreporter.write_sep("-", f"modelsign test mode: {config.stash[_MODE].describe()}")


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple):  # (path, line, "Skipped: reason")
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _fail_skip(config: pytest.Config, report: pytest.TestReport | pytest.CollectReport) -> None:
    if not report.skipped or hasattr(report, "wasxfail") or not config.stash[_MODE].strict:
        return
    report.outcome = "failed"
    report.longrepr = (
        f"skipped: {_skip_reason(report)}\n"
        f"A skip fails the run in strict mode ({config.stash[_MODE].why})."
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    _fail_skip(item.config, report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    report = yield
    _fail_skip(collector.config, report)
    return report


@pytest.fixture(autouse=True)
def _policy_environment_left_as_found() -> Iterator[None]:
    """Enforcement sets MODELSIGN_POLICY for child processes; a test must
    leave it as it found it, or later tests' children would enforce."""
    before = os.environ.get("MODELSIGN_POLICY")
    yield
    assert os.environ.get("MODELSIGN_POLICY") == before, "MODELSIGN_POLICY leaked out of a test"


@pytest.fixture(autouse=True)
def _no_leftover_hook(_policy_environment_left_as_found: None) -> Iterator[None]:
    """Enforcement a test turned on (and did not turn off) ends with it,
    before the environment is checked."""
    yield
    hooks = sys.modules.get("modelsign.hooks")
    if hooks is not None:
        hooks.uninstall()


@pytest.fixture(scope="session")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keys")


@pytest.fixture(scope="session", params=["ed25519", "ecdsa-p256"])
def keypair(request: pytest.FixtureRequest, key_dir: Path) -> tuple[Path, Path]:
    """(private key path, public key path), unencrypted, per algorithm."""
    prefix = key_dir / str(request.param)
    if not prefix.with_suffix(".key").exists():
        keys.write_keypair(keys.generate(str(request.param)), prefix, None)
    return Path(f"{prefix}.key"), Path(f"{prefix}.pub")


@pytest.fixture(scope="session")
def other_keypair(key_dir: Path) -> tuple[Path, Path]:
    prefix = key_dir / "other"
    keys.write_keypair(keys.generate("ed25519"), prefix, None)
    return Path(f"{prefix}.key"), Path(f"{prefix}.pub")


def write_torch_model(path: Path, seed: int = 0) -> None:
    import torch

    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    torch.save(net.state_dict(), path)


@pytest.fixture
def make_model(tmp_path: Path) -> Callable[..., Path]:
    """A model directory: model.pt (a real torch state_dict), config.json and a
    nested tokenizer file."""

    def make(name: str = "model") -> Path:
        root = tmp_path / name
        (root / "tokenizer").mkdir(parents=True)
        write_torch_model(root / "model.pt")
        (root / "config.json").write_text(json.dumps({"layers": [8, 4, 2]}))
        (root / "tokenizer" / "vocab.txt").write_text("a\nb\nc\n")
        return root

    return make


def flip_byte(path: Path, offset: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    pos = len(data) // 2 if offset is None else offset
    data[pos] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP server on the loopback (a sandboxed process must not reach it);
    :func:`connections` counts what reached it."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        server.setblocking(False)
        yield server


def connections(server: socket.socket) -> int:
    """Accept (and close) every pending connection of ``server``; how many."""
    count = 0
    while True:
        try:
            connection, _ = server.accept()
        except BlockingIOError:
            return count
        connection.close()
        count += 1
