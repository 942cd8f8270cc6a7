#!/usr/bin/env bash
# On the GPU machine: where the time of large-batch steps goes for the Llama-3.1-8B shape
# (issue 15's offline target). Writes the random bf16 folder if missing, then bench_one_batch
# over CASES (batch:prompt pairs; output 8), alternating the VARIANTS (as in
# gpu_profile_8b.sh: NAME=VALUE settings joined by ':', or "default") RUNS times. The decode
# latency at prompt 1,024 less the latency at 128 is the attention of ~900 more keys per
# sequence (the products are the same); prefill latency is one step of bs x il tokens.
# OFFLINE=1 adds, per variant and run, bench_offline_throughput on 1,000 random 1,024 / 1,024
# requests (issue 15's offline figure; about 90 s each at session 13's speed).
#   bash bench/gpu_batch_8b.sh [BUILD] [OUT_DIR]
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
b="${1:-$root/build-gpu}"
out="${2:-/tmp/rnd8}"
runs="${RUNS:-1}"
variants="${VARIANTS:-default}"
source "$root/bench/gpu_common.sh"
m="$out/Llama-3.1-8B-random-bf16"
random_8b "$out" bf16 || exit 1
for i in $(seq 1 "$runs"); do
  for v in $variants; do
    for c in ${CASES:-64:128 64:1024 256:128 256:1024}; do
      bs="${c%%:*}" il="${c##*:}"
      l="$(venv "$v" "$b/sglc" bench_one_batch --model-path "$m" --batch-size "$bs" \
        --input-len "$il" --output-len 8 2>&1 | grep -E '^Prefill\. latency|Decode\.  median|fail' |
        tail -3 | tr '\n' ' ')"
      echo "batch $v run $i bs $bs il $il: $l"
    done
    if [[ ${OFFLINE:-0} == 1 ]]; then
      l="$(venv "$v" "$b/sglc" bench_offline_throughput --model-path "$m" --num-prompts 1000 \
        --dataset-name random --random-input-len 1024 --random-output-len 1024 2>&1 |
        grep -E 'Benchmark duration|Output token throughput|Total token throughput|fail' |
        tr -s ' ' | tr '\n' ' ')"
      echo "offline $v run $i: $l"
    fi
  done
done
