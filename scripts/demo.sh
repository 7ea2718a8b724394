#!/usr/bin/env bash
# The README's `make demo`: sign a small real PyTorch model, verify it, and show
# the refusal of a tampered copy. Everything happens in a throw-away folder.
set -euo pipefail
cd "$(dirname "$0")/.."
MS=.venv/bin/modelsign
PY=.venv/bin/python
work=$(mktemp -d "${TMPDIR:-/tmp}/modelsign-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

step "1. A throw-away Ed25519 key pair (private key encrypted, mode 0600)"
export MODELSIGN_PASSPHRASE="demo passphrase, not a secret"
run $MS keygen --output "$work/keys/demo"

step "2. A small real PyTorch model: torch.save of a state_dict, plus a config file"
mkdir -p "$work/model"
run $PY - "$work/model" <<'PYEOF'
import json, sys, torch
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
torch.save(net.state_dict(), f"{sys.argv[1]}/model.pt")
with open(f"{sys.argv[1]}/config.json", "w") as f:
    json.dump({"architecture": "mlp", "layers": [16, 8, 2]}, f)
print("wrote model.pt and config.json")
PYEOF

step "3. Sign it (writes model/model.sig, an OMS v1.0 bundle)"
run $MS sign "$work/model" --key "$work/keys/demo.key"

step "4. What the bundle claims (unverified view, for auditors)"
run $MS inspect "$work/model/model.sig"

step "5. Verify it with the trusted public key"
run $MS verify "$work/model" --key "$work/keys/demo.pub"

step "6. Verify through a trust policy file"
printf '[trust]\nkeys = ["keys/demo.pub"]\n' > "$work/policy.toml"
run cat "$work/policy.toml"
run $MS verify "$work/model" --policy "$work/policy.toml"

step "7. Load it through the loader hook: torch.load verifies before it unpickles"
cat > "$work/serve.py" <<'PYEOF'
import sys, torch
state = torch.load(sys.argv[1], weights_only=False)
print("loaded", ", ".join(f"{k}{tuple(v.shape)}" for k, v in state.items()))
PYEOF
run .venv/bin/modelsign run --policy "$work/policy.toml" -- $PY "$work/serve.py" "$work/model/model.pt"

step "8. Tamper with a copy: flip one byte inside model.pt's tensor data"
cp -r "$work/model" "$work/tampered"
$PY - "$work/tampered/model.pt" <<'PYEOF'
import sys
path = sys.argv[1]
data = bytearray(open(path, "rb").read())
pos = len(data) // 2
data[pos] ^= 0x01
open(path, "wb").write(bytes(data))
print(f"flipped the byte at offset {pos} of {path}")
PYEOF
set +e
run $MS verify "$work/tampered" --key "$work/keys/demo.pub"
code=$?
set -e
if [ "$code" -ne 1 ]; then
    echo "demo FAILED: the tampered model was not refused with exit code 1 (got $code)" >&2
    exit 1
fi
echo "refused as expected (exit code $code): the tampered model is not trusted"

step "9. The hook refuses to unpickle the tampered copy (MODELSIGN_POLICY activates it)"
set +e
MODELSIGN_POLICY="$work/policy.toml" $PY - "$work/tampered/model.pt" <<'PYEOF'
import pickle, sys, torch
try:
    torch.load(sys.argv[1], weights_only=False)
except pickle.UnpicklingError as e:  # modelsign's refusals are UnpicklingErrors too
    print(f"{type(e).__name__}: {e}")
    sys.exit(1)
PYEOF
code=$?
set -e
[ "$code" -eq 1 ] || { echo "demo FAILED: the hook loaded a tampered file (exit $code)" >&2; exit 1; }
echo "refused as expected: nothing was unpickled"

step "10. Under every loader, a layer that fails closed: unverified bytes cannot run code"
set +e
MODELSIGN_POLICY="$work/policy.toml" $PY - <<'PYEOF'
import os, pickle, sys
class Payload:
    def __reduce__(self):
        return (os.system, ("echo PAYLOAD RAN",))
print("plain data still crosses pickle.loads:", pickle.loads(pickle.dumps({"lr": 0.1, "steps": [1, 2]})))
try:
    pickle.loads(pickle.dumps(Payload()))  # bytes no bundle vouches for
except pickle.UnpicklingError as e:
    print(f"{type(e).__name__}: {e}")
    sys.exit(1)
PYEOF
code=$?
set -e
[ "$code" -eq 1 ] || { echo "demo FAILED: an unverified payload was unpickled (exit $code)" >&2; exit 1; }
echo "refused as expected: the payload's global was refused before it was resolved"

step "11. A different key is not trusted"
run $MS keygen --output "$work/keys/other" --no-passphrase >/dev/null
set +e
run $MS verify "$work/model" --key "$work/keys/other.pub"
code=$?
set -e
[ "$code" -eq 1 ] || { echo "demo FAILED: untrusted key accepted (exit $code)" >&2; exit 1; }
echo "refused as expected (exit code $code)"

step "12. Sign where the checkpoint is written: modelsign.checkpoints.save in a training loop"
run $PY - "$work/keys/demo.key" "$work/run" <<'PYEOF'
import os, sys, torch, modelsign
from modelsign import checkpoints
signer = modelsign.KeySigner.from_file(sys.argv[1], passphrase=os.environb[b"MODELSIGN_PASSPHRASE"])
net = torch.nn.Linear(4, 2)
for step in (1, 2):
    net.weight.data.add_(0.1)
    # step-N.pt never shows without step-N.pt.sig for exactly its bytes
    checkpoints.save(net.state_dict(), f"{sys.argv[2]}/step-{step}.pt", signer)
print("wrote", ", ".join(sorted(os.listdir(sys.argv[2]))))
PYEOF
run $MS verify "$work/run/step-2.pt" --key "$work/keys/demo.pub"

printf '\n\033[1mdemo complete\033[0m\n'
