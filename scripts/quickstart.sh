#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh) and serves the default model on http://127.0.0.1:30000
# (OpenAI-compatible /v1/* and SGLang's /generate). Extra arguments go to `sglc serve`
# (e.g. --host 0.0.0.0 --port 8000).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/scripts/setup.sh"
exec "$root/build/sglc" serve "$@"
