"""Sign checkpoints where training frameworks write them.

- :mod:`modelsign.integrations.transformers` (``pip install
  'modelsign[transformers]'``): :class:`~modelsign.integrations.transformers.SigningTrainer`
  signs every ``checkpoint-N`` folder before the Trainer pushes it or calls
  any callback, and every model it saves;
  :class:`~modelsign.integrations.transformers.SigningCallback` signs the
  checkpoints of an unmodified ``Trainer``.
- :mod:`modelsign.integrations.lightning` (``pip install
  'modelsign[lightning]'``): :class:`~modelsign.integrations.lightning.SigningCheckpointIO`
  writes each checkpoint file and its bundle so that the file never appears
  without it, and removes both when Lightning removes the checkpoint.
- :mod:`modelsign.integrations.dcp` (torch only):
  :class:`~modelsign.integrations.dcp.SigningFileSystemWriter` is the
  ``FileSystemWriter`` of ``torch.distributed.checkpoint`` whose ranks hash
  what they write; the coordinator signs the folder after ``.metadata``.

Each takes a signer as :func:`modelsign.sign` does. Importing this package
imports no framework; each module imports its own.
"""
