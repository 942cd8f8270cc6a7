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
if ! "$venv/bin/python" -c 'import pytest, openai, requests, playwright, jsonschema' 2>/dev/null; then
  "$venv/bin/pip" install -q pytest openai requests playwright jsonschema
fi
# tests/e2e/test_fleet.py: SGLang's router in front of sglc workers, and HF tokenizers to check
# the tokenizer `sglc export-tokenizer` writes for it
if ! "$venv/bin/python" -c 'import sglang_router, tokenizers' 2>/dev/null; then
  "$venv/bin/pip" install -q sglang-router==0.3.2 tokenizers
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
echo "== Bounded fuzz runs of every parser (libFuzzer + ASan/UBSan)" >&2
if ! command -v clang >/dev/null; then
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq clang >/dev/null
fi
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSGLC_FUZZ=ON \
  -DCMAKE_C_COMPILER=clang >/dev/null
fuzzers=(fuzz_grammar_schema fuzz_grammar_regex fuzz_grammar_ebnf fuzz_output_parsers fuzz_gguf
  fuzz_safetensors fuzz_tokenizer fuzz_tokenizer_json)
cmake --build build-fuzz --target "${fuzzers[@]}"
for t in "${fuzzers[@]}"; do
  # the grammar front ends get 20 s each, the older parsers (fuzzed at length before) 10 s
  secs=10
  [[ $t == fuzz_grammar_* || $t == fuzz_output_parsers ]] && secs=20
  seeds="tests/fuzz/corpus_${t#fuzz_}"
  corpus="build-fuzz/corpus-${t#fuzz_}"
  mkdir -p "$corpus"
  [[ -d $seeds ]] && cp -n "$seeds"/* "$corpus"/ 2>/dev/null || true
  (cd build-fuzz && SGLC_SOURCE_DIR="$root" "./$t" -max_total_time=$secs -timeout=10 -rss_limit_mb=2048 \
     "../$corpus" >"$t.log" 2>&1) || { tail -40 "build-fuzz/$t.log" >&2; exit 1; }
  echo "$t: $(grep -o 'Done [0-9]* runs' "build-fuzz/$t.log" | tail -1) in ${secs} s" >&2
done
echo "all tests passed" >&2
