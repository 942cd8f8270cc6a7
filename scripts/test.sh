#!/usr/bin/env bash
# Sets everything up and runs every test: the Release build and the ASan+UBSan build each run
# the whole ctest suite. Safe to run again.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
# the default model as a Hugging Face folder (f32 safetensors + tokenizer.json), for the HF-vs-GGUF
# comparison in test_hf_model; idempotent
bash scripts/make_default_hf.sh
jobs="$(nproc)"
echo "== Release tests" >&2
ctest --test-dir build --output-on-failure -j "$jobs"
# end-to-end tests of `sglc serve` with the official openai client (idempotent venv)
venv="$root/.venv-test"
if [[ ! -x "$venv/bin/python" ]]; then
  python3 -m venv "$venv"
fi
# playwright drives Debian's /usr/bin/chromium (scripts/setup.sh): no `playwright install`
if ! "$venv/bin/python" -c 'import pytest, openai, requests, playwright' 2>/dev/null; then
  "$venv/bin/pip" install -q pytest openai requests playwright
fi
echo "== Release end-to-end server tests" >&2
SGLC_BINARY=build/sglc "$venv/bin/pytest" -q -p no:cacheprovider tests/e2e
echo "== ASan+UBSan build and tests" >&2
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSGLC_SANITIZE=ON >/dev/null
cmake --build build-asan
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  SGLC_SANITIZER_BUILD=1 ctest --test-dir build-asan --output-on-failure -j "$jobs"
echo "== ASan+UBSan end-to-end server tests (reduced set)" >&2
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  SGLC_E2E_QUICK=1 SGLC_BINARY=build-asan/sglc "$venv/bin/pytest" -q -p no:cacheprovider tests/e2e
echo "all tests passed" >&2
