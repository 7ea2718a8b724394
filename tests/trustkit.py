"""Shared pieces of the release-trust tests: three signers with real keys,
real models, policies written as files, timestamps from a test-local TSA."""

from __future__ import annotations

import datetime
import shutil
import textwrap
from dataclasses import dataclass
from pathlib import Path

import modelsign
from modelsign import keys
from modelsign.policy import Policy
from tests.tsakit import TSA, dsse_signature, set_timestamps

NOW = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
DAY = datetime.timedelta(days=1)


def toml_time(at: datetime.datetime) -> str:
    """A TOML offset date-time (no quotes)."""
    return f"{at:%Y-%m-%dT%H:%M:%SZ}"


@dataclass(frozen=True)
class Signer:
    """A named signer: its private key file and public key file."""

    name: str
    private: Path
    public: Path

    @property
    def key_id(self) -> str:
        return keys.load_public_key(self.public).key_id


def make_signers(folder: Path, *names: str, algorithm: str = "ed25519") -> dict[str, Signer]:
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in names:
        private, public = keys.write_keypair(keys.generate(algorithm), folder / name, None)
        out[name] = Signer(name, private, public)
    return out


def make_model(root: Path, content: bytes = b"weights v1") -> Path:
    (root / "tokenizer").mkdir(parents=True)
    (root / "weights.bin").write_bytes(content * 100)
    (root / "config.json").write_text('{"layers": 2}')
    (root / "tokenizer" / "vocab.txt").write_text("a\nb\n")
    return root


def write_policy(folder: Path, body: str, name: str = "policy.toml") -> Policy:
    """Write a policy file (paths in it are relative to ``folder``) and load it."""
    path = folder / name
    path.write_text(textwrap.dedent(body))
    return Policy.load(path)


def key_table(signer: Signer, **terms: str) -> str:
    """A ``[[trust.keys]]`` table for ``signer`` (values are TOML literals)."""
    lines = ["[[trust.keys]]", f'path = "{signer.public}"', f'name = "{signer.name}"']
    lines += [f"{k} = {v}" for k, v in terms.items()]
    return "\n".join(lines) + "\n"


def stamp(bundle: Path, tsa: TSA, *gen_times: datetime.datetime) -> None:
    """Put RFC 3161 tokens over the bundle's DSSE signature into it."""
    message = dsse_signature(bundle)
    set_timestamps(bundle, [tsa.token(message, t, serial=i) for i, t in enumerate(gen_times)])


def copy_model(model: Path, dest: Path) -> Path:
    shutil.copytree(model, dest)
    return dest


def sign(model: Path, signer: Signer, **kwargs: object) -> Path:
    return modelsign.sign(model, signer.private, **kwargs).signature  # type: ignore[arg-type]
