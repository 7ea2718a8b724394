"""Sign checkpoints where they are written.

A checkpoint never appears under its final name without a bundle for exactly
its bytes: it is written and signed under a temporary name in the same
folder, then renamed into place, bundle first::

    from modelsign import checkpoints
    checkpoints.save(model.state_dict(), "ckpt/model.pt", signer)  # torch.save, signed
    with checkpoints.signed_folder("export/bert", signer) as folder:
        model.save_pretrained(folder)        # any library writing a folder
    # export/bert appears whole, with export/bert/model.sig

The order of the renames: a single file's bundle (``NAME.sig``) takes its
place first, then the file. Between the two, a file that was already there
is read against the new bundle and refused (fail closed); the new file is
never there without its bundle. A folder is signed inside (``model.sig``) and
renamed as a whole: it appears complete, or not at all. A process killed at
any point leaves the old checkpoint (with its bundle) or the new one (with
its), and possibly a hidden ``.NAME.*.tmp`` folder beside them to remove.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from modelsign._atomic import sync_folder
from modelsign.keys import PrivateKey
from modelsign.manifest import HashType
from modelsign.signing import SignedModel, Signer, sign

__all__ = ["publish_file", "publish_folder", "save", "signed_folder"]


def save(
    obj: object,
    path: str | os.PathLike[str],
    signer: Signer | PrivateKey | str | os.PathLike[str],
    *,
    hash_type: HashType = "sha256",
    shard_size: int | None = None,
    **torch_save_kwargs: Any,
) -> SignedModel:
    """``torch.save(obj, path)``, signed: ``path`` and ``path.sig`` appear
    together (see the module's note on the order).

    Args:
        obj: what to save.
        path: the checkpoint's final path.
        signer: as :func:`modelsign.sign` takes it.
        hash_type: as :func:`modelsign.sign` takes it.
        shard_size: as :func:`modelsign.sign` takes it.
        torch_save_kwargs: passed to ``torch.save`` (``pickle_protocol``, ...).

    Returns:
        What was signed, with the final paths.

    Raises:
        UsageError: as :func:`modelsign.sign` raises it.
    """
    import torch  # noqa: PLC0415 - only for this function

    final = Path(path)
    with _staging(final) as staging:
        written = staging / final.name
        torch.save(obj, written, **torch_save_kwargs)
        result = sign(written, signer, hash_type=hash_type, shard_size=shard_size)
        signature = publish_file(written, result.signature, final)
    return SignedModel(signature, result.manifest, result.signed_by)


@contextlib.contextmanager
def signed_folder(
    path: str | os.PathLike[str],
    signer: Signer | PrivateKey | str | os.PathLike[str],
    *,
    hash_type: HashType = "sha256",
    shard_size: int | None = None,
    ignore_paths: tuple[str, ...] = (),
) -> Iterator[Path]:
    """A temporary folder to write a model into (``save_pretrained``, or any
    library); when the ``with`` block ends without an error, the folder is
    signed (``model.sig`` inside) and renamed to ``path``, replacing a folder
    there. On an error nothing appears and the temporary folder is removed.

    Args:
        path: the model folder's final path.
        signer: as for :func:`modelsign.sign`.
        hash_type: as for :func:`modelsign.sign`.
        shard_size: as for :func:`modelsign.sign`.
        ignore_paths: as for :func:`modelsign.sign`.

    Yields:
        The folder to write into (beside ``path``, on the same file system).

    Raises:
        Error: what :func:`modelsign.sign` raises; the folder is not published.
        OSError: the folder cannot be created or renamed.
    """
    final = Path(path)
    with _staging(final) as staging:
        work = staging / final.name
        work.mkdir()
        yield work
        sign(work, signer, hash_type=hash_type, shard_size=shard_size, ignore_paths=ignore_paths)
        publish_folder(work, final)


@contextlib.contextmanager
def _staging(final: Path) -> Iterator[Path]:
    """A hidden folder beside ``final`` (same file system: renames are atomic),
    removed on the way out whatever happened."""
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def publish_file(written: Path, signature: Path, final: Path) -> Path:
    """Move a signed file and its bundle into place: the bundle first, so
    the final name never shows without a bundle for exactly its bytes.

    Args:
        written: the signed file, on the same file system as ``final``.
        signature: its bundle.
        final: the file's final path (its bundle goes to ``final.sig``).

    Returns:
        The bundle's final path.

    Raises:
        OSError: a rename fails (nothing is half-moved but the bundle, whose
            file does not match what may be at ``final``).
    """
    final_signature = final.with_name(final.name + ".sig")
    os.replace(signature, final_signature)
    os.replace(written, final)
    sync_folder(final.parent)
    return final_signature


def publish_folder(work: Path, final: Path) -> None:
    """Move a signed folder to ``final``, replacing a folder there: at no
    moment is a partial folder under the final name.

    Args:
        work: the signed folder, on the same file system as ``final``.
        final: its final path.

    Returns:
        None: the folder is at ``final`` when this returns.

    Raises:
        OSError: a rename fails.
    """
    if os.path.lexists(final):
        old = work.parent / f"{final.name}.old"
        os.rename(final, old)  # the final name is briefly absent, never partial
        os.rename(work, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(work, final)
    sync_folder(final.parent)
