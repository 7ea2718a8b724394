"""Sign Hugging Face ``transformers.Trainer`` checkpoints and saved models.

``pip install 'modelsign[transformers]'``. One line of configuration::

    from modelsign.integrations.transformers import SigningCallback, SigningTrainer

    # Every checkpoint-N folder signed before it is pushed or any callback
    # sees it; every model saved (save_model, push_to_hub) signed:
    trainer = SigningTrainer(model=model, args=args, train_dataset=data, signer="release.key")

    # Or keep your Trainer class and sign its checkpoints after the fact:
    trainer = Trainer(model=model, args=args, train_dataset=data,
                      callbacks=[SigningCallback("release.key")])

**In place, after every process has written.** The Trainer writes each
``checkpoint-N`` folder itself, from every process (each writes its RNG
state). modelsign signs the folder in place (``checkpoint-N/model.sig``,
covering every file in it) on the process that saves (``args.should_save``:
the main process, or each node's with ``save_on_each_node``) once every
process has reached a barrier (accelerate's ``wait_for_everyone``), and every
process waits for the bundle before going on. Until it is there, the folder
has no bundle and a loader under enforcement refuses it (fails closed: a
:class:`~modelsign.errors.LoadRefusedError` saying so). A save that crashes leaves a
folder with no bundle, refused the same way: nothing vouches for a partial
checkpoint. Because of the barrier, ``save_model`` and ``push_to_hub`` of a
:class:`SigningTrainer` must be called on every process (as the Trainer's own
examples do, and as sharded models require anyway); called on one process
only, they wait for the others forever.

**The order within a save** (transformers 5.25's ``Trainer._save_checkpoint``):
write the model, optimizer, scheduler, RNG states and ``trainer_state.json``;
with ``push_to_hub``, push (copy the model files into ``output_dir`` and start
uploading it, and with ``hub_strategy`` ``checkpoint`` or ``all_checkpoints``
the checkpoint folder too, in the background); delete the oldest checkpoints
beyond ``save_total_limit``; then call each callback's ``on_save``. So:

- :class:`SigningCallback` signs in ``on_save``, after the push and the
  rotation. A pushed checkpoint folder is already uploading, and its copy on
  the Hub may lack the bundle (then a loader under enforcement refuses it);
  callbacks before it in the list (reporting integrations that upload
  checkpoints as artifacts) see the folder unsigned.
- :class:`SigningTrainer` signs right after the last file is written: before
  the push, the rotation and every callback. The checkpoint folder reaches the
  Hub with its bundle.
- Rotation deletes whole ``checkpoint-N`` folders; the bundle is inside the
  folder and goes with it: no orphan bundle is left behind.

**What is not signed.** The copies of the model files that a checkpoint push
writes into ``output_dir``, the root of the Hub repository: the Trainer writes
and uploads them within one step, with nothing in between. With the default
``hub_strategy="every_save"`` that root is all that is pushed during
training, and a loader under enforcement refuses it (no bundle for those
files, or an earlier one that no longer matches). Push with
``hub_strategy="checkpoint"`` (``last-checkpoint/``, signed) or
``"all_checkpoints"`` (every ``checkpoint-N/``, signed), or ``"end"``: the
root pushed by ``push_to_hub`` is signed (``model.sig`` over the model, its
card and the training arguments; ``checkpoint-*`` folders left out, as the
upload leaves them out). Ray Tune trial checkpoints (a folder Ray owns) are
not signed. The checkpoints of a hyperparameter-search trial
(``output_dir/run-*/checkpoint-N``) are signed by :class:`SigningTrainer`;
:class:`SigningCallback` cannot tell where they are and raises.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from accelerate import PartialState
from transformers import Trainer, TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from modelsign.errors import UsageError
from modelsign.integrations._signing import Signing
from modelsign.keys import PrivateKey
from modelsign.manifest import HashType
from modelsign.signing import Signer

__all__ = ["SigningCallback", "SigningTrainer"]

log = logging.getLogger("modelsign")


class SigningCallback(TrainerCallback):
    """A ``TrainerCallback`` that signs each ``checkpoint-N`` folder in its
    ``on_save``: after the Trainer has pushed it and rotated older ones (see
    the module's note). It cannot see ``trainer.save_model``: sign the final
    model with :class:`SigningTrainer`, or :func:`modelsign.sign` it.

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
        self.signing = Signing.of(signer, hash_type, shard_size)

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        """Sign ``output_dir/checkpoint-<global_step>``, as the Trainer names it.

        Raises:
            UsageError: the folder is not there (a hyperparameter-search
                trial writes under ``output_dir/run-*``).
        """
        folder = _output_dir(args) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        _sign_when_written(folder, args, self.signing, must_exist=True)


class SigningTrainer(Trainer):
    """A ``transformers.Trainer`` that signs what it saves: each
    ``checkpoint-N`` folder as soon as it is written (before the push, the
    rotation and every callback), the folder of each ``save_model(dir)``
    before the push that ``push_to_hub=True`` makes of it, and ``output_dir``
    in ``push_to_hub`` once the model card is written, just before the upload.

    A mixin too: ``class MyTrainer(SigningTrainer, SFTTrainer)`` signs what
    ``SFTTrainer`` saves. Takes the Trainer's arguments, and:

    Args:
        signer: as :func:`modelsign.sign` takes it (keyword only). A key file
            is read now.
        hash_type: as :func:`modelsign.sign` takes it.
        shard_size: as :func:`modelsign.sign` takes it.

    Raises:
        UsageError: an unreadable key, an unknown or unavailable hash type.

    A folder that holds ``checkpoint-*`` folders (``output_dir``, when
    ``save_model()`` writes the final model there) is signed without them:
    each has its own bundle. It relies on three private methods of
    transformers 5.25's ``Trainer`` (``_save_checkpoint``,
    ``_push_from_checkpoint``, ``_get_output_dir``); modelsign's tests fail
    when they change.
    """

    def __init__(
        self,
        *args: Any,
        signer: Signer | PrivateKey | str | os.PathLike[str],
        hash_type: HashType = "sha256",
        shard_size: int | None = None,
        **kwargs: Any,
    ) -> None:
        self.signing = Signing.of(signer, hash_type, shard_size)
        self._modelsign_checkpoint: Path | None = None  # written, not yet signed
        self._modelsign_pushing = False
        super().__init__(*args, **kwargs)

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        run_dir = self._get_output_dir(trial=trial)
        folder = Path(run_dir) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        self._modelsign_checkpoint = folder
        super()._save_checkpoint(model, trial)
        if self._modelsign_checkpoint is not None:  # not pushed: sign before the callbacks
            self._modelsign_checkpoint = None
            _sign_when_written(folder, self.args, self.signing)

    def _push_from_checkpoint(self, checkpoint_folder: str) -> None:
        # Every process comes here (the Trainer returns early on all but one).
        self._modelsign_checkpoint = None
        _sign_when_written(Path(checkpoint_folder), self.args, self.signing)
        super()._push_from_checkpoint(checkpoint_folder)

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """Save the model as ``Trainer.save_model`` does, then sign its folder
        (``model.sig`` inside; ``checkpoint-*`` folders left out), then, with
        ``push_to_hub``, push.

        Args:
            output_dir: where to save (default ``args.output_dir``).
            _internal_call: the Trainer's own calls, while writing a
                checkpoint (signed when complete) or pushing.

        Raises:
            UsageError: as :func:`modelsign.sign` raises it.
        """
        super().save_model(output_dir, _internal_call=True)  # push only once signed
        if self._modelsign_pushing:
            PartialState().wait_for_everyone()  # signed with its model card, below
        elif not _internal_call:
            folder = Path(output_dir) if output_dir is not None else _output_dir(self.args)
            _sign_when_written(folder, self.args, self.signing)
            if self.args.push_to_hub:
                self.push_to_hub(commit_message="Model save", revision=self.args.hub_revision)

    def push_to_hub(self, *args: Any, **kwargs: Any) -> Any:
        """``Trainer.push_to_hub``, with ``output_dir`` signed (model card
        included, ``checkpoint-*`` folders left out) before it is uploaded.

        Returns:
            What ``Trainer.push_to_hub`` returns.

        Raises:
            UsageError: as :func:`modelsign.sign` raises it.
        """
        self._modelsign_pushing = True
        try:
            return super().push_to_hub(*args, **kwargs)
        finally:
            self._modelsign_pushing = False

    def create_model_card(self, *args: Any, **kwargs: Any) -> None:
        """``Trainer.create_model_card``; in ``push_to_hub``, which writes
        it last, the folder is then signed. Only the main process gets here.

        Raises:
            UsageError: as :func:`modelsign.sign` raises it.
        """
        super().create_model_card(*args, **kwargs)
        if self._modelsign_pushing:
            _sign_folder(_output_dir(self.args), self.signing)


def _output_dir(args: TrainingArguments) -> Path:
    assert args.output_dir is not None  # TrainingArguments.__post_init__ sets it
    return Path(args.output_dir)


def _sign_when_written(
    folder: Path, args: TrainingArguments, signing: Signing, *, must_exist: bool = False
) -> None:
    """Once every process has written (a barrier), sign ``folder`` on the
    process that saves; every process waits for it, even when it fails."""
    state = PartialState()
    state.wait_for_everyone()
    try:
        if not args.should_save:
            return
        if must_exist and not folder.is_dir():
            raise UsageError(
                f"{folder}: no such checkpoint folder; SigningCallback looks for checkpoints "
                "where the Trainer writes them outside a hyperparameter search "
                "(output_dir/checkpoint-N): use SigningTrainer, which knows the trial's folder"
            )
        _sign_folder(folder, signing)
    finally:
        state.wait_for_everyone()


def _sign_folder(folder: Path, signing: Signing) -> None:
    """Sign ``folder`` in place, without its ``checkpoint-*`` folders."""
    inside = folder.glob(f"{PREFIX_CHECKPOINT_DIR}-*")
    checkpoints = tuple(sorted(p.name for p in inside if p.is_dir() and not p.is_symlink()))
    result = signing.folder(folder, checkpoints)
    log.info("modelsign: signed %s (%s)", folder, result.signed_by.describe())
