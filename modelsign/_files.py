"""Reading small files that come from users or attackers: keys, policies, bundles."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from modelsign.errors import Error


def read_small(
    path: Path,
    limit: int,
    what: str,
    error: type[Error],
    *,
    missing: type[Error] | None = None,
    too_large: type[Error] | None = None,
) -> bytes:
    """Read at most ``limit`` bytes of the regular file ``path``.

    The size is checked before reading, a FIFO or device is refused without
    blocking on it (``O_NONBLOCK``), and every failure is raised as ``error``
    (or ``missing`` / ``too_large`` when given) with a message naming the file.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError as e:
        raise (missing or error)(f"{path}: no {what} file") from e
    except OSError as e:
        raise error(f"{path}: cannot read {what}: {e.strerror}") from e
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        if stat.S_ISDIR(st.st_mode):
            raise error(f"{path}: is a folder, not a {what} file")
        raise error(f"{path}: the {what} is not a regular file")
    with os.fdopen(fd, "rb") as f:
        if st.st_size > limit:
            raise (too_large or error)(
                f"{path}: the {what} is {st.st_size} bytes, over the limit of {limit}"
            )
        data = f.read(limit + 1)
    if len(data) > limit:  # the file grew while we read it
        raise (too_large or error)(f"{path}: the {what} is over the limit of {limit} bytes")
    return data
