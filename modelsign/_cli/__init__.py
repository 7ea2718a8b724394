"""The ``modelsign`` command: the only code that prints or exits.

One module per command family; importing this package registers them all on
:data:`app`, in the order ``--help`` lists them.
"""

from __future__ import annotations

# isort: off
from modelsign._cli import _keys, _sign, _attest, _verify, _inspect  # noqa: F401 - registers
from modelsign._cli import _enforce, _doctor, _convert  # noqa: F401 - registers
from modelsign._cli import _trust  # noqa: F401 - registers
from modelsign._cli import _audit, _diff  # noqa: F401 - registers

# isort: on
from modelsign._cli._app import app, main

__all__ = ["app", "main"]
