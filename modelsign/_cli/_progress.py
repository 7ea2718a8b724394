"""Progress on a terminal, and sizes on the command line."""

from __future__ import annotations

import contextlib
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from modelsign.errors import UsageError


class Reporter:
    """Progress (files and bytes) for a run that lasts: nothing is shown, and
    rich is not even imported, until hashing has taken :attr:`delay` seconds.
    Called from the hashing threads (see :class:`modelsign._hashing.Progress`)."""

    delay = 1.0

    def __init__(
        self, label: str, console: Any = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.label = label
        self._console = console
        self._clock = clock
        self._lock = threading.Lock()
        self._t0 = clock()
        self.files = self.files_total = self.bytes = self.bytes_total = 0
        self.bar: Any = None
        self._task: Any = None
        self._closed = False

    def start(self, files: int, nbytes: int) -> None:
        with self._lock:
            self.files_total, self.bytes_total = files, nbytes

    def advance(self, nbytes: int) -> None:
        with self._lock:
            self.bytes += nbytes
            self._tick()

    def file_done(self) -> None:
        with self._lock:
            self.files += 1
            self._tick()

    def _tick(self) -> None:
        if self._closed:  # a hashing thread still finishing after an error
            return
        if self.bar is None:
            if self._clock() - self._t0 < self.delay:
                return
            self._open()
        self.bar.update(self._task, completed=self.bytes, files=self.files)

    def _open(self) -> None:
        from rich.progress import (  # noqa: PLC0415 - only for a run that lasts
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn(f"{{task.fields[files]}}/{self.files_total} files"),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            transient=True,
            console=self._console or stderr_console(),
        )
        self._task = self.bar.add_task(self.label, total=self.bytes_total, files=self.files)
        self.bar.start()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self.bar is not None:
                self.bar.stop()


@contextlib.contextmanager
def progress(label: str, quiet: bool) -> Iterator[Reporter | None]:
    """Progress on a terminal for a run over a second; nothing otherwise."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    reporter = Reporter(label)
    try:
        yield reporter
    finally:
        reporter.close()


def stderr_console() -> Any:
    from rich.console import Console  # noqa: PLC0415

    return Console(stderr=True)


SIZE = re.compile(r"([0-9]{1,30})(?:([KMGT])(?:i?B)?|B)?", re.IGNORECASE)


def parse_size(text: str | None, flag: str = "--shard-size") -> int | None:
    """Bytes from ``1000000``, ``500M``/``500MiB`` or ``1G``/``1GiB`` (powers of 1024)."""
    if text is None:
        return None
    m = SIZE.fullmatch(text.strip())
    if m is None or int(m[1]) == 0:
        raise UsageError(f"{flag} {text!r}: give a positive size, such as 1000000 or 1G")
    unit: int = 1024 ** "_KMGT".index((m[2] or "_").upper())
    return int(m[1]) * unit


class CountReporter:
    """Progress over a known number of items (models, for ``audit``): a bar
    with the item being worked on, on a terminal; nothing otherwise."""

    def __init__(self, label: str, total: int, quiet: bool, console: Any = None) -> None:
        self.bar: Any = None
        if quiet or (console is None and not sys.stderr.isatty()):
            return
        from rich.progress import (  # noqa: PLC0415 - only on a terminal
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(
            TextColumn(label),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[item]}", markup=False),
            transient=True,
            console=console or stderr_console(),
        )
        self._task = self.bar.add_task(label, total=total, item="")
        self.bar.start()
        self._started = False

    def item(self, name: str) -> None:
        """The next item starts (the one before it is done)."""
        if self.bar is None:
            return
        self.bar.update(self._task, advance=1 if self._started else 0, item=name)
        self._started = True

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
