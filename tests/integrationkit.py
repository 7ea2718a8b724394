"""What the integration tests share: saves that fail or crash midway, for
real (a file-size limit, ``RLIMIT_FSIZE``, cuts the write of a checkpoint
short, as a full disk does, or kills the process there, ``SIGXFSZ``, as a
crash does); and the README's examples, run as written."""

from __future__ import annotations

import resource
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from modelsign import keys
from tests.conftest import REPOSITORY

#: Bytes a file may have once the limit is on: more than a bundle or a
#: config, less than the tests' checkpoints.
FILE_SIZE_LIMIT = 8192


def limit_file_size(*, kill: bool = False) -> Callable[[], None]:
    """From now on, a write past :data:`FILE_SIZE_LIMIT` bytes of a file fails
    with ``EFBIG`` (Python ignores ``SIGXFSZ``) or, with ``kill``, kills the
    process. Returns what lifts the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    if kill:
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, hard))
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def run_until_killed(code: str, *args: str | Path) -> None:
    """Run ``code`` in a fresh interpreter (``tests`` importable, ``args`` in
    ``sys.argv[1:]``) and check that the file-size limit killed it."""
    result = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == -signal.SIGXFSZ, result.stderr


def run_readme_example(heading: str) -> None:
    """Run the first Python block of the README section ``heading`` in the
    current folder, after what its first line says to run: ``modelsign keygen
    --output keys/release --no-passphrase``."""
    section = (REPOSITORY / "README.md").read_text().split(f"\n## {heading}\n", 1)[1]
    code = section.split("```python\n", 1)[1].split("\n```", 1)[0]
    assert code.startswith("# modelsign keygen --output keys/release --no-passphrase\n")
    keys.write_keypair(keys.generate("ed25519"), Path("keys/release"), None)
    exec(compile(code, f"README.md, {heading}", "exec"), {"__name__": "readme_example"})
