"""Sandboxes for code modelsign cannot trust: a child process that loads an
untrusted checkpoint (``modelsign convert``), and a program started by
``modelsign run --sandbox``.

Layers (docs/adr/0006-sandbox.md says which does what, and what happens on a
kernel without it):

* ``rlimits`` and ``no_new_privs`` (:mod:`._process`), on every Linux;
* ``netns``: new user and network namespaces (:mod:`._process`);
* ``landlock``: files, TCP, abstract Unix sockets, signals (:mod:`._landlock`);
* ``seccomp``: system calls (:mod:`._seccomp`).

The converter's child is :mod:`._child`; the parent's side is :mod:`._spawn`;
what they say to each other is :mod:`._protocol`; the safetensors format,
written by one and checked by the other, is :mod:`._safetensors`.
"""

from __future__ import annotations

from modelsign._sandbox._exec import restrict_for_run
from modelsign._sandbox._layers import OPTIONAL_LAYERS, LayerReport, check_layer_names
from modelsign._sandbox._process import Limits
from modelsign._sandbox._protocol import ChildConfig
from modelsign._sandbox._protocol import decode as decode_report
from modelsign._sandbox._safetensors import TensorRecord, check_file
from modelsign._sandbox._spawn import run_child

__all__ = [
    "OPTIONAL_LAYERS",
    "ChildConfig",
    "LayerReport",
    "Limits",
    "TensorRecord",
    "check_file",
    "check_layer_names",
    "decode_report",
    "restrict_for_run",
    "run_child",
]
