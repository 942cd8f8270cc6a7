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
echo "== ASan+UBSan build and tests" >&2
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSGLC_SANITIZE=ON >/dev/null
cmake --build build-asan
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  SGLC_SANITIZER_BUILD=1 ctest --test-dir build-asan --output-on-failure -j "$jobs"
echo "all tests passed" >&2
