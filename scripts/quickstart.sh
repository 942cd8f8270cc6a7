#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh) and runs the main job on the default model.
# Extra arguments are passed to `sglc generate`.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/scripts/setup.sh"
if [[ $# -eq 0 ]]; then
  set -- --prompt $'<|im_start|>user\nWhat is the capital of France? Answer in one sentence.<|im_end|>\n<|im_start|>assistant\n' --max-new-tokens 64
fi
exec "$root/build/sglc" generate "$@"
