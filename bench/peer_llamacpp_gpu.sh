#!/usr/bin/env bash
# On the GPU machine: llama.cpp's CUDA build against sglc on the same GGUF files, side by side
# in one run (issue 15's peer figures). Carry .lcpp (scripts/fetch_llamacpp_src.sh packs
# llama.cpp's source from the llama-cpp-python sdist on PyPI) with the usual .debs.
#   bash bench/peer_llamacpp_gpu.sh build              build llama-bench, llama-batched-bench
#                                                      and llama-server for sm_90 (~5-8 min on
#                                                      16 cores; kept in /tmp/llama.cpp while
#                                                      the machine stays warm)
#   RUNS=5 bash bench/peer_llamacpp_gpu.sh run GGUF... tg128 / pp512 with llama-bench (-r RUNS)
#                                                      and sglc bench_one_batch (RUNS runs),
#                                                      then batched decode at 1..64 parallel
#                                                      sequences (llama-batched-bench) against
#                                                      sglc bench_one_batch at those batch sizes
# Output on stdout; copy it under bench/results/gpu_h200/. sglc from $SGLC_BUILD (build-gpu).
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
lc=/tmp/llama.cpp
sg="${SGLC_BUILD:-$root/build-gpu}/sglc"
runs="${RUNS:-5}"
[[ -d /usr/local/cuda/bin ]] && export PATH="/usr/local/cuda/bin:$PATH"
case "${1:-}" in
build)
  [[ -s $root/.lcpp/llama.cpp.tar.xz ]] || {
    echo "no .lcpp/llama.cpp.tar.xz (run scripts/fetch_llamacpp_src.sh here and carry .lcpp)"
    exit 1
  }
  rm -rf "$lc" && mkdir -p /tmp && tar xJf "$root/.lcpp/llama.cpp.tar.xz" -C /tmp || exit 1
  cmake -S "$lc" -B "$lc/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES=90 -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF >/dev/null || exit 1
  time cmake --build "$lc/build" -j "$(nproc)" --target llama-bench llama-batched-bench \
    llama-server 2>&1 | tail -3
  ls -la "$lc/build/bin/" | grep -E "llama-(bench|batched-bench|server)$"
  ;;
run)
  shift
  [[ -x $lc/build/bin/llama-bench ]] || { echo "build llama.cpp first (build)"; exit 1; }
  for g in "$@"; do
    echo "== $g"
    echo "-- llama.cpp llama-bench (CUDA, all layers on the GPU, flash attention on and off)"
    "$lc/build/bin/llama-bench" -m "$g" -ngl 99 -p 512 -n 128 -r "$runs" -fa 0,1 -o md 2>&1 |
      grep -E "^\|"
    echo "-- sglc bench_one_batch, $runs runs (batch 1, input 512, output 128)"
    for i in $(seq 1 "$runs"); do
      "$sg" bench_one_batch --model-path "$g" --batch-size 1 --input-len 512 --output-len 128 \
        2>&1 | grep -E "Prefill\. latency|Decode\.  median"
    done
    echo "-- llama.cpp llama-batched-bench (prompt 128, generate 128 per sequence)"
    "$lc/build/bin/llama-batched-bench" -m "$g" -ngl 99 -fa on -c 32768 -b 2048 -ub 512 \
      -npp 128 -ntg 128 -npl 1,8,32,64 2>&1 | grep -E "^\|"
    echo "-- sglc bench_one_batch at the same batch sizes (input 128, output 128)"
    for bs in 1 8 32 64; do
      echo "bs $bs: $("$sg" bench_one_batch --model-path "$g" --batch-size $bs --input-len 128 \
        --output-len 128 2>&1 | grep -E "Decode\.  median|Total\. latency" | tr '\n' ' ')"
    done
  done
  ;;
*)
  sed -n 2,15p "$0"
  exit 2
  ;;
esac
