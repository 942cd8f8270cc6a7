#!/bin/sh
# Make (idempotently) models/SmolLM2-135M-Instruct-hf/: the default GGUF converted to a Hugging
# Face folder (float32 safetensors, config.json, tokenizer.json) by scripts/convert_gguf_to_hf.py,
# used by tests/unit/test_hf_model.c. Creates <repo>/.venv-convert with numpy, gguf, safetensors
# and tokenizers (no torch: the conversion needs none). Fetches the GGUF first when missing.
# Usage: scripts/make_default_hf.sh [--force]
set -eu
REPO="$(cd "$(dirname "$0")/.." && pwd)"
VENV="$REPO/.venv-convert"
PY="$VENV/bin/python"
GGUF="$REPO/models/SmolLM2-135M-Instruct.Q4_1.gguf"

[ -f "$GGUF" ] || "$REPO/scripts/fetch_model.sh"
if [ ! -x "$PY" ]; then
    python3 -m venv "$VENV"
fi
if ! "$PY" -c 'import numpy, gguf, safetensors, tokenizers' 2>/dev/null; then
    "$VENV/bin/pip" install --quiet numpy gguf safetensors tokenizers
fi
exec "$PY" "$REPO/scripts/convert_gguf_to_hf.py" --gguf "$GGUF" \
    --out "$REPO/models/SmolLM2-135M-Instruct-hf" "$@"
