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
echo "== Bounded fuzz run of the grammar front ends (libFuzzer, ~20 s each)" >&2
if ! command -v clang >/dev/null; then
  sudo -n true 2>/dev/null && SUDO=sudo || SUDO=
  $SUDO apt-get install -y clang >/dev/null
fi
# The whole library under SGLC_FUZZ (as scripts for the other parsers do); where this clang
# cannot build it (clang 14 refuses __builtin_cpu_supports("f16c") in cpu_kernels.c), the
# grammar targets are built from the grammar sources alone, which is all they use.
fuzz_bin=build-fuzz
if ! { cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSGLC_FUZZ=ON \
         -DCMAKE_C_COMPILER=clang >/dev/null &&
       cmake --build build-fuzz --target fuzz_grammar_schema fuzz_grammar_regex \
         fuzz_grammar_ebnf >/dev/null 2>&1; }; then
  fuzz_bin=build-fuzz/grammar
  mkdir -p "$fuzz_bin"
  for t in schema regex ebnf; do
    clang -std=c11 -D_GNU_SOURCE -O1 -g -fsanitize=fuzzer,address,undefined \
      -fno-sanitize-recover=all -Iinclude -Isrc -isystem /usr/include/cjson \
      "tests/fuzz/fuzz_grammar_$t.c" src/engine/grammar/*.c src/base/log.c -lcjson -lm -lpthread \
      -o "$fuzz_bin/fuzz_grammar_$t"
  done
fi
for t in schema regex ebnf; do
  corpus="build-fuzz/corpus-grammar-$t"
  mkdir -p "$corpus"
  cp -n tests/fuzz/corpus_grammar_$t/* "$corpus"/ 2>/dev/null || true
  (cd build-fuzz && "../$fuzz_bin/fuzz_grammar_$t" -max_total_time=20 -timeout=10 \
     -rss_limit_mb=2048 "../$corpus" "../tests/fuzz/corpus_grammar_$t" -runs=100000000 \
     >"fuzz-grammar-$t.log" 2>&1) || { tail -40 "build-fuzz/fuzz-grammar-$t.log" >&2; exit 1; }
done
echo "all tests passed" >&2
