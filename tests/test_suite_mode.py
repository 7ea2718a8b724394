"""The suite's own rules (tests/conftest.py): strict mode turns a skip into a
failure where CI runs; ``require`` skips a missing test dependency and fails
on a broken one."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests import conftest
from tests.conftest import REPOSITORY, require


def test_every_test_extra_resolves_to_a_module_to_import() -> None:
    import importlib.metadata

    modules = importlib.metadata.packages_distributions()
    names = {
        r.name: conftest.import_names(r.name.lower(), modules)
        for r in conftest.extra_requirements()
    }
    assert names["pyopenssl"] == ["OpenSSL"]  # not named like its distribution
    assert names["model-signing"] == ["model_signing"]
    assert names["pytest"] == ["pytest"]  # not also py, nor _pytest


def test_user_mode_without_shared_testdata(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(conftest, "SHARED", tmp_path / "shared" / "testdata")
    mode = conftest.suite_mode()
    assert not mode.strict
    assert f"{tmp_path}/shared/testdata is absent" in mode.describe()


def _broken_package(tmp_path: Path, name: str) -> Path:
    package = tmp_path / "broken" / name
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('raise ImportError("a broken install")\n')
    return package.parent


def test_user_mode_when_a_test_extra_does_not_import(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    if not conftest.SHARED.is_dir():
        monkeypatch.setattr(conftest, "SHARED", tmp_path)
    monkeypatch.setattr(conftest, "extra_requirements", lambda: [Requirement("pyopenssl>=24")])
    monkeypatch.setenv("PYTHONPATH", str(_broken_package(tmp_path, "OpenSSL")))
    mode = conftest.suite_mode()
    assert not mode.strict
    assert "pyopenssl does not import (OpenSSL: ImportError: a broken install)" in mode.why


def test_user_mode_when_a_program_is_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    if not conftest.SHARED.is_dir():
        monkeypatch.setattr(conftest, "SHARED", tmp_path)
    monkeypatch.setattr(conftest, "PROGRAMS", {"modelsign-no-such-program": "a browser test"})
    monkeypatch.setattr(conftest, "extra_requirements", lambda: [Requirement("pytest>=8")])
    mode = conftest.suite_mode()
    assert not mode.strict
    assert mode.why == "modelsign-no-such-program is not installed (a browser test)"
    with pytest.raises(pytest.skip.Exception, match="modelsign-no-such-program is not installed"):
        conftest.require_program("modelsign-no-such-program")


def test_require_skips_a_missing_module() -> None:
    with pytest.raises(pytest.skip.Exception, match="not installed .*no reason"):
        require("modelsign_no_such_module", "no reason")


def test_require_fails_on_a_broken_module(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.syspath_prepend(str(_broken_package(tmp_path, "modelsign_broken_dependency")))
    with pytest.raises(ImportError, match="a broken install"):
        require("modelsign_broken_dependency", "a test needs it")


def test_a_skip_fails_the_run_exactly_in_strict_mode(tmp_path: Path) -> None:
    """An inner pytest run with this suite's hooks: a skip in a test, in a
    fixture, by a marker and of a whole module. In strict mode each is a
    failure naming its reason; otherwise each is a skip. An xfail stays one."""
    (tmp_path / "conftest.py").write_text(
        "from tests.conftest import (pytest_configure, pytest_make_collect_report,\n"
        "    pytest_report_header, pytest_runtest_makereport, pytest_terminal_summary)\n"
    )
    (tmp_path / "test_inner.py").write_text(
        textwrap.dedent(
            """
            import pytest

            @pytest.fixture
            def gone():
                pytest.skip("reason in a fixture")

            def test_call():
                pytest.skip("reason in a test")

            def test_fixture(gone):
                pass

            @pytest.mark.skipif(True, reason="reason in a marker")
            def test_marker():
                pass

            @pytest.mark.xfail(reason="expected", strict=True)
            def test_xfail():
                assert False

            def test_passes():
                pass
            """
        )
    )
    (tmp_path / "test_module.py").write_text(
        'import pytest\npytest.skip("reason of a module", allow_module_level=True)\n'
    )
    result = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-ra"),
            *("--continue-on-collection-errors", str(tmp_path)),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
        timeout=300,
    )
    out = result.stdout
    strict = conftest.suite_mode().strict  # as the inner run decides it
    assert f"modelsign test mode: {'strict' if strict else 'user'}" in out
    reasons = (
        "reason in a test",
        "reason in a fixture",
        "reason in a marker",
        "reason of a module",
    )
    if strict:
        assert result.returncode == 1, out
        for reason in reasons:
            assert f"skipped: {reason}" in out, out
        assert "1 failed, 1 passed, 1 xfailed, 3 errors" in out, out
    else:
        assert result.returncode == 0, out
        for reason in reasons:
            assert reason in out, out
        assert "1 passed, 4 skipped, 1 xfailed" in out, out
