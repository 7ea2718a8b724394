"""Sign PyTorch Lightning checkpoints as they are written.

``pip install 'modelsign[lightning]'``. One line of configuration::

    import lightning.pytorch as pl
    from modelsign.integrations.lightning import SigningCheckpointIO

    trainer = pl.Trainer(plugins=[SigningCheckpointIO("release.key")])
    # or, writing in a background thread:
    from lightning.pytorch.plugins.io import AsyncCheckpointIO
    trainer = pl.Trainer(plugins=[AsyncCheckpointIO(SigningCheckpointIO("release.key"))])

Every checkpoint Lightning writes through its checkpoint plugin
(``ModelCheckpoint``, ``trainer.save_checkpoint``) is written as
:func:`modelsign.checkpoints.save` writes it: ``torch.save`` to a hidden
folder beside the final path, signed there, then renamed into place, the
bundle (``NAME.ckpt.sig``) first, then the file. ``NAME.ckpt`` is never there
without a bundle for exactly its bytes; a crash while writing leaves no new
file and no new bundle under the final names (only a hidden
``.NAME.ckpt.*.tmp`` folder beside them, which nothing loads). When Lightning
removes a checkpoint (``save_top_k`` rotation, ``last.ckpt`` replaced), the
file goes first, then its bundle: the file is never without its bundle there
either.

With ``AsyncCheckpointIO`` the write, the signing and the renames run in its
background thread, after Lightning's ``save_checkpoint`` has returned, and
``trainer.fit`` returns once every write is done. A removal (on the main
thread) never interleaves with a save (a lock orders them): the file and its
bundle appear together and go together. When saves fall behind training
(each takes longer than the steps between them), Lightning may remove a
checkpoint whose save is still queued; that save then writes it, signed,
after the removal, and it stays (Lightning issue #14035, whatever the
``CheckpointIO``). Lightning writes checkpoints on global rank 0 only, so the
file signed is whole.

Not covered: checkpoints that do not go through the plugin's
``save_checkpoint`` (FSDP and DeepSpeed sharded checkpoints, which every rank
writes into a folder of its own; ``ModelCheckpoint(save_last="link")``, a
symbolic link: use ``save_last=True``), and remote paths (``s3://...``):
refused with a :class:`~modelsign.errors.UsageError`. ``Callback.on_save_checkpoint``
runs before the file exists, so a callback cannot do this. The plugin holds
a private key, which does not pickle: use ``strategy="ddp"`` (one process
launched per rank) rather than ``"ddp_spawn"``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
from pathlib import Path
from typing import Any, NoReturn

from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO

from modelsign import checkpoints
from modelsign.errors import UsageError
from modelsign.integrations._signing import Signing
from modelsign.keys import PrivateKey
from modelsign.manifest import HashType
from modelsign.signing import Signer

__all__ = ["SigningCheckpointIO"]

log = logging.getLogger("modelsign")


class SigningCheckpointIO(TorchCheckpointIO):
    """Lightning's ``TorchCheckpointIO``, writing each checkpoint with its
    bundle (``PATH.sig``) and removing both (see the module's note).
    Loading is ``TorchCheckpointIO``'s: with enforcement on
    (:func:`modelsign.hooks.enforce`), ``torch.load`` verifies the file
    against its bundle first.

    Args:
        signer: as :func:`modelsign.sign` takes it. A key file is read now.
        hash_type: as :func:`modelsign.sign` takes it.
        shard_size: as :func:`modelsign.sign` takes it.

    Raises:
        UsageError: an unreadable key, an unknown or unavailable hash type.
    """

    def __init__(
        self,
        signer: Signer | PrivateKey | str | os.PathLike[str],
        *,
        hash_type: HashType = "sha256",
        shard_size: int | None = None,
    ) -> None:
        super().__init__()
        self.signing = Signing.of(signer, hash_type, shard_size)
        self._lock = threading.Lock()

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None
    ) -> None:
        """``torch.save(checkpoint, path)``, signed; ``path`` and ``path.sig``
        appear bundle first.

        Args:
            checkpoint: what Lightning saves.
            path: the checkpoint's final path (local).
            storage_options: not supported, as by ``TorchCheckpointIO``.

        Raises:
            TypeError: ``storage_options`` given.
            UsageError: a remote path; as :func:`modelsign.sign` raises it.
        """
        if storage_options is not None:
            raise TypeError(
                f"`Trainer.save_checkpoint(..., storage_options=...)` is not supported by "
                f"{type(self).__name__}"
            )
        final = _local(path)
        with self._lock:
            result = checkpoints.save(
                checkpoint,
                final,
                self.signing.signer,
                hash_type=self.signing.hash_type,
                shard_size=self.signing.shard_size,
            )
        log.info("modelsign: signed %s (%s)", final, result.signed_by.describe())

    def remove_checkpoint(self, path: _PATH) -> None:
        """Remove the checkpoint file (a folder, as ``TorchCheckpointIO``
        does, with what is in it), then its bundle.

        Args:
            path: the checkpoint's path.

        Raises:
            UsageError: a remote path.
        """
        final = _local(path)
        with self._lock:
            if final.is_dir() and not final.is_symlink():
                shutil.rmtree(final)
            for victim in (final, final.with_name(final.name + ".sig")):
                with contextlib.suppress(FileNotFoundError):
                    victim.unlink()

    def __getstate__(self) -> NoReturn:
        raise TypeError(
            f"{type(self).__name__} holds a private key, which does not pickle: with Lightning, "
            'use strategy="ddp" (a process launched per rank) rather than "ddp_spawn"'
        )


def _local(path: _PATH) -> Path:
    text = os.fspath(path)
    protocol, separator, rest = text.partition("://")
    if not separator:
        return Path(text)
    if protocol in ("file", "local"):
        return Path(rest)
    raise UsageError(
        f"{text}: SigningCheckpointIO writes local files only; write checkpoints locally and "
        "upload them with their bundles",
        parameter="path",
    )
