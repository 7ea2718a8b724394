"""Turn enforcement on at interpreter start (imported by modelsign-autoload.pth).

The .pth line imports this module only when ``MODELSIGN_POLICY`` is set, so a
Python process that did not ask for enforcement pays nothing. When it is set
but enforcement cannot start (unreadable policy, no trust anchor), the process
stops with exit code 2 rather than run unprotected: fail closed.
"""

from __future__ import annotations

import os
import sys


def _is_the_modelsign_command() -> bool:
    """The ``modelsign`` command deserializes no model (``run`` starts the
    program in a new process, which enforces): it does not enforce itself, so
    that ``modelsign status`` can report a policy that cannot be loaded."""
    argv = getattr(sys, "orig_argv", None) or []
    script = os.path.basename(sys.argv[0]) if sys.argv else ""
    return script == "modelsign" or argv[1:3] == ["-m", "modelsign"]


def _activate() -> None:
    if _is_the_modelsign_command():
        return
    try:
        from modelsign import hooks  # noqa: PLC0415

        hooks.install()
    except Exception as e:  # noqa: BLE001 - any failure must stop the process
        sys.stderr.write(
            f"modelsign: MODELSIGN_POLICY={os.environ.get('MODELSIGN_POLICY')!r} asks for "
            f"enforcement, which cannot start: {e}\n"
        )
        sys.stderr.flush()
        os._exit(2)


_activate()
