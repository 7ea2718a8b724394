"""What the integrations share: a signer resolved once, with its options."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from modelsign._digests import new_hasher
from modelsign.keys import PrivateKey
from modelsign.manifest import HashType
from modelsign.signing import SignedModel, Signer, as_signer, sign


@dataclass(frozen=True)
class Signing:
    """How an integration signs: the signer and the hashing options."""

    signer: Signer
    hash_type: HashType = "sha256"
    shard_size: int | None = None

    @classmethod
    def of(
        cls,
        signer: Signer | PrivateKey | str | os.PathLike[str],
        hash_type: HashType,
        shard_size: int | None,
    ) -> Signing:
        """A key file is read and a hash type checked now, when training
        starts, rather than at the first checkpoint."""
        new_hasher(hash_type)
        return cls(as_signer(signer), hash_type, shard_size)

    def folder(self, folder: Path, ignore_paths: tuple[str, ...] = ()) -> SignedModel:
        """Sign a folder in place (``model.sig`` inside). A bundle already
        there is replaced whoever signed it: the folder was just rewritten,
        so it no longer describes it."""
        return sign(
            folder,
            self.signer,
            hash_type=self.hash_type,
            shard_size=self.shard_size,
            ignore_paths=ignore_paths,
            force=True,
        )
