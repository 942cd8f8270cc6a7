#!/usr/bin/env bash
# On the GPU machine: the Llama-3.1-8B shape (issue 15), random weights. Writes the bf16 folder
# and its MLX 4-bit quantization (scripts/make_random_models.py), measures the read-every-byte
# floor of both in the same run (bench/gpu_floor.cu), batch-1 decode of both (bench_one_batch,
# 512 + 128, RUNS alternating runs), and the on-the-fly --quantization mlx_q4 of the bf16 folder
# (its load log: time and memory cut). VARIANTS (NAME=VALUE settings joined by ':', or
# "default", space-separated) run the batch-1 decode of both models under each, alternating,
# e.g. VARIANTS="default SGLC_CUDA_MVQ=1:SGLC_CUDA_ATTN_TC=1". Logs on stdout.
#   bash bench/gpu_8b.sh [BUILD] [OUT_DIR]       (RUNS=3 by default; ~40 GB of disk)
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
b="${1:-$root/build-gpu}"
out="${2:-/tmp/rnd8}"
runs="${RUNS:-3}"
variants="${VARIANTS:-default}"
source "$root/bench/gpu_common.sh"
# M4_FLY=1: the 4-bit model is the bf16 folder with --quantization mlx_q4 (the same weights
# and kernels as the written MLX folder, without the 90 s of writing it)
if [[ ${M4_FLY:-0} == 1 ]]; then
  random_8b "$out" bf16 || exit 1
else
  random_8b "$out" bf16,mlx4 || exit 1
fi
echo "models: $(ls "$out" | tr '\n' ' ')"
bash "$root/bench/build_gpu_floor.sh" >/dev/null 2>&1 || exit 1
for dt in bf16 q4; do
  "$root/build/gpu_floor" --shape llama-3.1-8b --dtype $dt --copy-bytes 1073741824 --iters 10 |
    grep -E "weights:|read once|launch gap"
done
bf="$out/Llama-3.1-8B-random-bf16"
m4="$out/Llama-3.1-8B-random-mlx4"
m4args=(--model-path "$m4")
[[ ${M4_FLY:-0} == 1 ]] && m4args=(--model-path "$bf" --quantization mlx_q4)
for i in $(seq 1 "$runs"); do
  for m in bf16 mlx4; do
    args=(--model-path "$bf")
    [[ $m == mlx4 ]] && args=("${m4args[@]}")
    for v in $variants; do
      echo "bs1 $m $v run $i: $(venv "$v" "$b/sglc" bench_one_batch "${args[@]}" \
        --batch-size 1 --input-len 512 --output-len 128 2>&1 | grep -E 'Decode\.  median')"
    done
  done
done
for bs in 8 32; do
  echo "bs$bs bf16: $("$b/sglc" bench_one_batch --model-path "$bf" --batch-size $bs \
    --input-len 512 --output-len 128 2>&1 | grep -E 'Decode\.  median')"
done
echo "-- on-the-fly --quantization mlx_q4 of the bf16 folder (load log)"
"$b/sglc" bench_one_batch --model-path "$bf" --quantization mlx_q4 --batch-size 1 \
  --input-len 512 --output-len 128 2>&1 | grep -iE "quantiz|Decode\.  median" | head -5
