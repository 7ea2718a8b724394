"""Regenerate the golden bundles (run once; the tests only read them).

    .venv/bin/python manifests/golden/make_golden.py

Writes manifests/golden/model/ (three small files, one a real torch .pt) and,
for each algorithm, a bundle and the public key that verifies it. The private
keys are thrown away: nobody can sign with them again, which is the point.
Regenerating changes every file; only do it for a deliberate format change.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import torch

from modelsign import keys, sign

HERE = Path(__file__).resolve().parent


def main() -> None:
    model = HERE / "model"
    if model.exists():
        shutil.rmtree(model)
    (model / "tokenizer").mkdir(parents=True)
    torch.manual_seed(1234)
    torch.save(torch.nn.Linear(3, 2).state_dict(), model / "weights.pt")
    (model / "config.json").write_text(json.dumps({"in": 3, "out": 2}) + "\n")
    (model / "tokenizer" / "vocab.txt").write_text("hello\nworld\n")
    for algorithm in ("ed25519", "ecdsa-p256"):
        key = keys.generate(algorithm)
        pub = HERE / f"{algorithm}.pub"
        pub.write_bytes(key.public_key().pem)
        sign(model, key, signature=HERE / f"{algorithm}.sig")
    print("golden bundles written to", HERE, file=sys.stderr)


if __name__ == "__main__":
    main()
