"""The CLI's progress reporter and the parsing of ``--shard-size``.

The reporter shows nothing, and does not even import rich, until hashing has
lasted :attr:`modelsign._cli._progress.Reporter.delay` seconds; it then shows files and
bytes. The clock is injected and the console writes to a StringIO, so no test
waits or depends on timing.
"""

from __future__ import annotations

import io
import random
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

import modelsign
from modelsign import keys
from modelsign._cli._progress import Reporter, parse_size, progress
from modelsign.errors import Error, UsageError
from tests.test_cli import cli


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def screen() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=120, color_system=None), out


def test_nothing_is_shown_before_the_delay(screen: tuple[Console, io.StringIO]) -> None:
    console, out = screen
    clock = Clock()
    reporter = Reporter("signing", console=console, clock=clock)
    reporter.start(3, 300)
    reporter.advance(100)
    reporter.file_done()
    clock.now += reporter.delay / 2
    reporter.advance(50)
    reporter.file_done()
    assert reporter.bar is None
    assert (reporter.files, reporter.files_total) == (2, 3)
    assert (reporter.bytes, reporter.bytes_total) == (150, 300)
    reporter.close()  # closing a reporter that never showed anything
    assert out.getvalue() == ""


@pytest.mark.parametrize("first", ["advance", "file_done"])
def test_the_bar_opens_once_the_delay_has_passed(
    screen: tuple[Console, io.StringIO], first: str
) -> None:
    console, out = screen
    clock = Clock()
    reporter = Reporter("verifying", console=console, clock=clock)
    reporter.start(3, 300)
    reporter.advance(100)
    assert reporter.bar is None
    clock.now += reporter.delay + 0.5
    try:
        if first == "advance":
            reporter.advance(100)
        else:
            reporter.file_done()
        assert reporter.bar is not None
        assert reporter.bar.live.is_started
        reporter.bar.refresh()
        done = 0 if first == "advance" else 1
        nbytes = 200 if first == "advance" else 100
        assert f"{done}/3 files" in out.getvalue()
        assert f"{nbytes}/300 bytes" in out.getvalue()
        assert "verifying" in out.getvalue()

        reporter.file_done()
        reporter.advance(100)
        reporter.bar.refresh()
        assert f"{done + 1}/3 files" in out.getvalue()
        (task,) = reporter.bar.tasks
        assert task.description == "verifying"
        assert (task.completed, task.total) == (nbytes + 100, 300)
        assert task.fields["files"] == done + 1
    finally:
        reporter.close()
    assert not reporter.bar.live.is_started


def test_rich_is_imported_only_when_the_bar_opens() -> None:
    code = (
        "import io, sys\n"
        "from modelsign._cli._progress import Reporter\n"
        "now = [0.0]\n"
        "r = Reporter('signing', clock=lambda: now[0])\n"
        "r.start(2, 10)\n"
        "r.advance(5)\n"
        "r.file_done()\n"
        "print(r.bar is None, sorted(m for m in sys.modules if m.split('.')[0] == 'rich'))\n"
        "from rich.console import Console\n"
        "r._console = Console(file=io.StringIO(), force_terminal=True)\n"
        "now[0] = r.delay + 1\n"
        "r.advance(5)\n"
        "r.close()\n"
        "print(r.bar is not None, 'rich.progress' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["True []", "True True"]


def _model(root: Path) -> int:
    """A model with multi-shard, one-shard and empty files; its size in bytes."""
    layout = {"big.bin": 200, "one.bin": 16, "e": 0, "sub/w.bin": 47, "sub/e2": 0}
    for name, size in layout.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(random.Random(name).randbytes(size))
    return sum(layout.values())


@pytest.mark.parametrize("shard_size", [None, 16], ids=["files", "shards"])
def test_every_file_is_counted_once_when_signing_and_verifying(
    tmp_path: Path,
    keypair: tuple[Path, Path],
    screen: tuple[Console, io.StringIO],
    shard_size: int | None,
) -> None:
    """In shard mode a file is done when its last shard is (an empty file,
    which has no shard, once too)."""
    console, out = screen
    model = tmp_path / "m"
    total = _model(model)
    for run in ("sign", "verify"):
        clock = Clock()
        reporter = Reporter(run, console=console, clock=clock)
        clock.now += reporter.delay  # the bar opens at the first report
        try:
            if run == "sign":
                modelsign.sign(model, keypair[0], shard_size=shard_size, progress=reporter)
            else:
                modelsign.verify(model, [keypair[1]], progress=reporter)
            assert (reporter.files, reporter.files_total) == (5, 5)
            assert (reporter.bytes, reporter.bytes_total) == (total, total)
            assert reporter.bar is not None
            reporter.bar.refresh()
            assert "5/5 files" in out.getvalue()
        finally:
            reporter.close()


def test_no_reporter_when_quiet_or_not_on_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    with progress("signing", quiet=True) as reporter:
        assert reporter is None
    assert not sys.stderr.isatty()  # pytest captures it
    with progress("signing", quiet=False) as reporter:
        assert reporter is None


# --------------------------------------------------------------------------
# --shard-size


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1000000", 1_000_000),
        ("1M", 1024**2),
        ("1MiB", 1024**2),
        ("1mb", 1024**2),
        ("500M", 500 * 1024**2),
        ("1G", 1024**3),
        ("1GiB", 1024**3),
        ("2k", 2048),
        ("1T", 1024**4),
        ("4096B", 4096),
        (" 1M ", 1024**2),
        ("1", 1),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_parse_size_none_is_no_shards() -> None:
    assert parse_size(None) is None


@pytest.mark.parametrize(
    "text", ["0", "0M", "-1", "1.5G", "abc", "", "M", "1 M", "1Q", "0x10", "1e6", "1MB2", "+1"]
)
def test_parse_size_refuses(text: str) -> None:
    with pytest.raises(Error) as info:
        parse_size(text)
    assert type(info.value) is UsageError
    assert str(info.value) == (
        f"--shard-size {text!r}: give a positive size, such as 1000000 or 1G"
    )


@pytest.mark.parametrize("text", ["0", "1.5G", "abc"])
def test_cli_bad_shard_size_exits_2(tmp_path: Path, text: str) -> None:
    private, _ = keys.write_keypair(keys.generate("ed25519"), tmp_path / "k", None)
    model = tmp_path / "m"
    _model(model)
    result = cli("sign", model, "--key", private, "--shard-size", text)
    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        f"modelsign: error: --shard-size {text!r}: give a positive size, such as 1000000 or 1G\n"
    )
    assert not (model / "model.sig").exists()


def test_calls_after_close_open_no_bar(screen: tuple[Console, io.StringIO]) -> None:
    """A hashing thread may still report after an error closed the reporter:
    it must not start a live display that nobody stops."""
    console, out = screen
    clock = Clock()
    reporter = Reporter("verifying", console=console, clock=clock)
    reporter.start(2, 200)
    reporter.close()
    clock.now += reporter.delay + 1
    reporter.advance(100)
    reporter.file_done()
    assert reporter.bar is None
    assert out.getvalue() == ""
