#!/usr/bin/env bash
# On the GPU machine: builds Release with the CUDA backend and runs every GPU test and
# benchmark, each stage's log in $OUT (default /tmp/out), a short summary printed last even
# when a stage fails. Re-run by any session with one device call, e.g.
#   run: bash scripts/test_gpu.sh            (carry .debs and .whl)
# Stages (SGLC_GPU_STAGES, space-separated; default all, in this order):
#   deps      C dependencies missing on the machine from .debs/ (scripts/fetch_gpu_debs.sh),
#             unpacked with dpkg -x into /tmp/sglc-deps (.pc prefixes rewritten); Python
#             packages missing there from .whl/ (scripts/fetch_gpu_wheels.sh) into /tmp/site
#   gpu       nvidia-smi, nvcc, cmake versions
#   build     configure + build Release with -DSGLC_CUDA=ON
#   ops       test_backend_ops: every op of cpu, cpu-ggml and cuda against float64 references
#   graph     test_cuda_graph: a decode op sequence with and without CUDA graphs, bit-identical
#   model     the default model (models/, or assembled from parts under $SGLC_MODEL_PARTS with
#             its sha256 checked) and its HF folder (scripts/convert_gguf_to_hf.py)
#   gpumodel  the model tests on the GPU (SGLC_TEST_DEVICE=cuda): engine, sampling, grammar,
#             logit bias, HF/MLX goldens; test_gpu_model (greedy agreement with the CPU,
#             graphs/overlap/radix on/off, batch invariance)
#   fallback  the gpumodel stage again with the kernels that the defaults replaced
#             (SGLC_CUDA_ATTN_TC=0 SGLC_CUDA_MVQ=0 SGLC_CUDA_MV_EARLY=0: CUDA-core attention,
#             MLX 4/8-bit k_fmv, k_fmv16's late first loads),
#             which the shapes the defaults do not take still run
#   e2e       the server suite (tests/e2e) against `sglc serve` on the default device (cuda)
#   floor     bench/gpu_floor.cu: copy bandwidth, read-every-byte and per-matrix graph floors
#   random    random-weight Qwen3-0.6B-shaped models (bf16, Q8_0, Q4_0, MLX 4-bit) and
#             bench_one_batch on them, graphs on and off; SGLC_GPU_SHAPES adds shapes
#   soak      bench/soak_serve.py: 1,000 mixed requests with aborts against `sglc serve` on the
#             default model; device memory after them equals memory after the first 32
#   rope      the seed's custom RoPE (SGLANG_MLX_USE_CUSTOM_ROPE=1) A/B: same greedy text,
#             decode speed with and without (random Qwen3-0.6B-shaped bf16, from `random`)
#   ctest     the whole ctest suite on this machine
# The default model (98 MB) does not fit one call's 64 MiB beside .debs and .whl (30 MB) and the
# tree (12 MB): carry it in parts over back-to-back calls to one warm machine (it goes back 30 s
# after a call), each call copying its part to a folder outside the tree, e.g. with
# .git/info/exclude listing /mpa/ /mpb/ /mpc/ and
#   f=models/SmolLM2-135M-Instruct.Q4_1.gguf; mkdir -p mpa mpb mpc
#   head -c 22000000 $f >mpa/part0; tail -c +22000001 $f | head -c 45000000 >mpb/part1
#   tail -c +67000001 $f >mpc/part2
# call 1 carries .debs .whl mpa, call 2 mpb, call 3 mpc, each starting with
# `mkdir -p /root/mparts; cp mp?/part* /root/mparts/`, the last one running
# SGLC_MODEL_PARTS=/root/mparts SGLC_GPU_STAGES="deps model gpumodel fallback e2e".
# Peers (issue 15), separately: bench/peer_llamacpp_gpu.sh build / run GGUF... (carry .lcpp from
# scripts/fetch_llamacpp_src.sh); bench/gpu_decode_ab.sh MODEL for the decode A/B and profile.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
OUT="${OUT:-/tmp/out}"
mkdir -p "$OUT"
deps=/tmp/sglc-deps
build="${SGLC_GPU_BUILD:-build-gpu}"
jobs="$(nproc 2>/dev/null || echo 4)"
declare -a names=() results=()

summary() {
  {
    echo "== test_gpu.sh summary (logs in $OUT)"
    for i in "${!names[@]}"; do printf '  %-10s %s\n' "${names[$i]}" "${results[$i]}"; done
    if [[ -f $OUT/ops.log ]]; then
      grep -E "op cases checked|not tested|CHECK failed|backend ops: ok|failures" "$OUT/ops.log" |
        head -40 | sed 's/^/  ops: /'
    fi
    [[ -f $OUT/graph.log ]] && grep -E "test_cuda_graph|CHECK failed" "$OUT/graph.log" |
      head -10 | sed 's/^/  graph: /'
    for f in ctest gpumodel fallback; do
      [[ -f $OUT/$f.log ]] && grep -E "tests passed|tests failed|\(Failed\)|\(Timeout\)" \
        "$OUT/$f.log" | head -30 | sed "s/^/  $f: /"
    done
    for f in gpumodel fallback; do
      [[ -f $OUT/$f.log ]] && grep -E "agrees with the cpu|differ|disagreement at" \
        "$OUT/$f.log" | head -20 | sed "s/^/  $f: /"
    done
    [[ -f $OUT/e2e.log ]] && grep -E "passed|failed|^FAILED|^ERROR" "$OUT/e2e.log" | tail -15 |
      sed 's/^/  e2e: /'
    [[ -f $OUT/floor.log ]] && grep -E '^\{' "$OUT/floor.log" | sed 's/^/  floor: /'
    [[ -f $OUT/random.log ]] && grep -E "^== |Decode\.  median|Prefill\. latency" \
      "$OUT/random.log" | sed 's/^/  random: /'
    [[ -f $OUT/soak.log ]] && grep -E "^soak:" "$OUT/soak.log" | sed 's/^/  soak: /'
    [[ -f $OUT/rope.log ]] && grep -E "^== |Decode" "$OUT/rope.log" | sed 's/^/  rope: /'
  } | tee "$OUT/summary.txt"
}
trap summary EXIT

# stage NAME CMD...: runs CMD with its output in $OUT/NAME.log, records ok / FAILED (rc)
stage() {
  local name="$1"
  shift
  echo "== $name: $*" >&2
  local t0=$SECONDS rc=0
  "$@" >"$OUT/$name.log" 2>&1 || rc=$?
  names+=("$name")
  if [[ $rc -eq 0 ]]; then
    results+=("ok ($((SECONDS - t0)) s)")
  else
    results+=("FAILED (rc $rc, $((SECONDS - t0)) s; tail of $OUT/$name.log below)")
    tail -25 "$OUT/$name.log" | sed "s/^/  [$name] /" >&2
  fi
  return $rc
}

unpack_deps() {
  if pkg-config --exists libpcre2-8 libcjson libmicrohttpd libutf8proc libcurl 2>/dev/null; then
    echo "the system has every C dependency"
    return 0
  fi
  ls .debs/*.deb >/dev/null 2>&1 || {
    echo "C dependencies missing and no .debs/ (run scripts/fetch_gpu_debs.sh and carry .debs)"
    return 1
  }
  rm -rf "$deps"
  mkdir -p "$deps"
  for f in .debs/*.deb; do dpkg -x "$f" "$deps" || return 1; done
  # Debian's .pc files say prefix=/usr: point them at the private prefix
  find "$deps" -name '*.pc' -exec sed -i -e "s|=/usr|=$deps/usr|g" {} +
  echo "unpacked $(ls .debs/*.deb | wc -l) packages into $deps"
}

use_deps() {
  local lib="$deps/usr/lib/x86_64-linux-gnu"
  export PKG_CONFIG_PATH="$lib/pkgconfig:$deps/usr/share/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
  export CPATH="$deps/usr/include:$deps/usr/include/x86_64-linux-gnu${CPATH:+:$CPATH}"
  export LIBRARY_PATH="$lib${LIBRARY_PATH:+:$LIBRARY_PATH}"
  export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
}

[[ -d /usr/local/cuda/bin ]] && export PATH="/usr/local/cuda/bin:$PATH"
unpack_wheels() {
  ls .whl/*.whl >/dev/null 2>&1 || { echo "no .whl/: Python packages as on the image"; return 0; }
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && echo "installed $(ls .whl/*.whl | wc -l) wheels into /tmp/site"
}

gguf=models/SmolLM2-135M-Instruct.Q4_1.gguf
hf=models/SmolLM2-135M-Instruct-hf
get_model() {
  mkdir -p models
  if [[ ! -s $gguf && -n ${SGLC_MODEL_PARTS:-} ]]; then
    cat "$SGLC_MODEL_PARTS"/part* > "$gguf.tmp" && mv "$gguf.tmp" "$gguf"
  fi
  [[ -s $gguf ]] || { echo "no $gguf (carry it in parts: SGLC_MODEL_PARTS)"; return 1; }
  (cd models && sha256sum -c ../scripts/default_model.sha256) || return 1
  [[ -f $hf/config.json ]] || python3 scripts/convert_gguf_to_hf.py --gguf "$gguf" --out "$hf"
}

gpu_model_tests() {
  # the suites written for the CPU expect a request's tokens not to depend on its batch, which
  # a GPU gives with --enable-deterministic-inference (SGLC_DETERMINISTIC=1 for the sessions
  # they open directly); test_gpu_model checks both modes itself
  SGLC_DETERMINISTIC=1 SGLC_TEST_DEVICE=cuda ctest --test-dir "$build" --output-on-failure \
    --timeout 900 -R 'test_(engine|engine_sampling|engine_grammar|logit_bias|hf_model|mlx_model)$'
  local rc=$?
  # run directly, so that its agreement figures are in the log when it passes
  "$build/test_gpu_model" || rc=1
  return $rc
}

e2e() {
  python3 -c 'import pytest, openai, requests, jsonschema' || return 1
  # not here: the chat page (a browser), the fleet (sglang-router from PyPI) and the random
  # models test (a venv): CPU-side features the CI machine runs
  # the server suite asserts the CPU's guarantee that a request's tokens do not depend on what
  # runs beside it or on the radix cache: on the GPU that is --enable-deterministic-inference
  # (SGLC_DETERMINISTIC=1 sets it for every server the suite starts)
  SGLC_DETERMINISTIC=1 SGLC_BINARY="$build/sglc" python3 -m pytest -q -p no:cacheprovider tests/e2e \
    --ignore=tests/e2e/test_chat_page.py --ignore=tests/e2e/test_fleet.py \
    --ignore=tests/e2e/test_random_models.py
}

floor() {
  bash bench/build_gpu_floor.sh || return 1
  for shape in qwen3-0.6b llama-3.2-1b llama-3.1-8b; do
    for dt in bf16 q8 q4; do build/gpu_floor --shape $shape --dtype $dt || return 1; done
  done
}

random_models() {
  local out=/tmp/rnd shapes="qwen3-0.6b ${SGLC_GPU_SHAPES:-}"
  for shape in $shapes; do
    python3 scripts/make_random_models.py --shape "$shape" --out $out \
      --formats bf16,q8_0,q4_0,mlx4 --sglc "$build/sglc" || return 1
  done
  # the same greedy continuation on the CPU and the GPU (random weights: near-ties are common,
  # so this is a smoke check; test_gpu_model is the agreement test)
  for m in $out/Qwen3-0.6B-random-bf16 $out/Qwen3-0.6B-random.Q8_0.gguf; do
    for dev in cpu cuda; do
      echo "== generate $dev $m: $("$build/sglc" generate --model-path "$m" --device $dev \
        --prompt "The capital of France is" --max-new-tokens 16 --temperature 0 2>&1 | tail -3)"
    done
  done
  for shape in $shapes; do
    for m in $(ls -d $out/* | grep -i -- "$shape" | grep -v '\.tmp$'); do
      for g in "" "--disable-cuda-graph"; do
        echo "== $m $g"
        "$build/sglc" bench_one_batch --model-path "$m" --batch-size 1 --input-len 512 \
          --output-len 128 $g || return 1
      done
    done
  done
}

fallback() {
  SGLC_CUDA_ATTN_TC=0 SGLC_CUDA_MVQ=0 SGLC_CUDA_MV_EARLY=0 gpu_model_tests
}

soak() {
  python3 bench/soak_serve.py --binary "$build/sglc" --model "$gguf" --requests 1000
}

rope_ab() {
  local m=/tmp/rnd/Qwen3-0.6B-random-bf16
  [[ -d $m ]] || { echo "no $m (run the random stage first)"; return 1; }
  for v in 0 1; do
    echo "== generate SGLANG_MLX_USE_CUSTOM_ROPE=$v: $(SGLANG_MLX_USE_CUSTOM_ROPE=$v \
      "$build/sglc" generate --model-path $m --prompt "The capital of France is" \
      --max-new-tokens 32 --temperature 0 2>&1 | tail -2)"
  done
  for i in 1 2 3; do
    for v in 0 1; do
      echo "== bench SGLANG_MLX_USE_CUSTOM_ROPE=$v run $i"
      SGLANG_MLX_USE_CUSTOM_ROPE=$v "$build/sglc" bench_one_batch --model-path $m \
        --batch-size 1 --input-len 512 --output-len 128 2>&1 | grep -E "Decode\.  median" || return 1
    done
  done
}

want() { [[ " ${SGLC_GPU_STAGES:-deps gpu build ops graph model gpumodel fallback e2e floor random soak rope} " == *" $1 "* ]]; }
if want deps; then
  stage deps unpack_deps && [[ -d $deps/usr ]] && use_deps
  stage wheels unpack_wheels && [[ -d /tmp/site ]] && export PYTHONPATH=/tmp/site
fi
[[ -d $deps/usr ]] && use_deps
[[ -d /tmp/site ]] && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
want gpu && stage gpu bash -c 'nvidia-smi; nvcc --version; cmake --version | head -1'
if want build; then
  stage configure cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSGLC_CUDA=ON ||
    exit 1
  stage build cmake --build "$build" -j "$jobs" || exit 1
fi
want ops && stage ops "$build/test_backend_ops"
want graph && stage graph "$build/test_cuda_graph"
want model && stage model get_model
want gpumodel && stage gpumodel gpu_model_tests
want fallback && stage fallback fallback
want e2e && stage e2e e2e
want floor && stage floor floor
want random && stage random random_models
want soak && stage soak soak
want rope && stage rope rope_ab
want ctest && stage ctest ctest --test-dir "$build" --output-on-failure -j "$jobs" --timeout 900
exit 0
