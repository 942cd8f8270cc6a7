#!/usr/bin/env bash
# On the GPU machine: batch-1 (and batch-8) decode of a model with bench_one_batch, paired
# A/B runs of the engine's CUDA switches, medians of RUNS alternating runs, plus an ncu
# per-kernel breakdown of one decode step (graphs off so ncu sees each kernel).
#   bash bench/gpu_decode_ab.sh MODEL [BUILD]     (RUNS=5 by default; logs on stdout)
set -uo pipefail
m="$1"
b="${2:-build-gpu}"
runs="${RUNS:-5}"
one() { # label env... -- args
  "$@" 2>&1 | grep -E "Decode\.  median" | sed "s|^|$label |"
}
# decode attention by kv head (k_attn_gqa, the default for f16 caches of float and MLX models)
# against the per-head split kernel and its combine launch (SGLC_CUDA_ATTN_GQA=0), alternating
for i in $(seq 1 "$runs"); do
  for v in 1 0; do
    label="bs1 gqa_attn=$v run $i:" one env SGLC_CUDA_ATTN_GQA=$v "$b/sglc" bench_one_batch \
      --model-path "$m" --batch-size 1 --input-len 512 --output-len 128
  done
done
# the CPU-exact f16 attention (contexts <= 2048 keys, cuda_attention.cu; the default for GGUF
# quantized models) against the split online softmax (SGLC_CUDA_EXACT_ATTN_KEYS=0),
# alternating, on QMODEL (default MODEL)
for i in $(seq 1 "$runs"); do
  for v in 2048 0; do
    label="bs1 exact_attn_keys=$v run $i:" one env SGLC_CUDA_EXACT_ATTN_KEYS=$v "$b/sglc" \
      bench_one_batch --model-path "${QMODEL:-$m}" --batch-size 1 --input-len 512 --output-len 128
  done
done
for bs in 2 4 8 16 32; do
  label="bs$bs pdl=1:" one "$b/sglc" bench_one_batch --model-path "$m" --batch-size $bs \
    --input-len 512 --output-len 128
done
# offline throughput, SGLang's output lines (the issue's 1,000 x 1,024/1,024 run is for the 8B
# shape; this is the quick one on this model)
"$b/sglc" bench_offline_throughput --model-path "$m" --num-prompts 256 --random-input-len 512 \
  --random-output-len 256 --random-range-ratio 0.5 2>&1 | grep -E "throughput|Benchmark|Successful|tok/s" |
  sed 's/^/offline: /'
label="bs1 no graphs:" one "$b/sglc" bench_one_batch --model-path "$m" --batch-size 1 \
  --input-len 512 --output-len 128 --disable-cuda-graph
label="bs1 deterministic:" one "$b/sglc" bench_one_batch --model-path "$m" --batch-size 1 \
  --input-len 512 --output-len 128 --enable-deterministic-inference
if command -v ncu >/dev/null; then
  timeout 200 ncu --clock-control none --metrics gpu__time_duration.sum --csv --launch-skip 3000 \
    --launch-count 600 "$b/sglc" bench_one_batch --model-path "$m" --batch-size 1 \
    --input-len 512 --output-len 64 --disable-cuda-graph >/tmp/ncu.csv 2>/tmp/ncu.err
  python3 - <<'PY'
import csv, collections
agg = collections.defaultdict(lambda: [0, 0.0])
h = None
for r in csv.reader(open('/tmp/ncu.csv')):
    if 'Kernel Name' in r:
        h = r
        continue
    if h and len(r) == len(h):
        d = dict(zip(h, r))
        if d.get('Metric Name') != 'gpu__time_duration.sum':
            continue
        v = float(d['Metric Value'].replace(',', ''))
        v *= {'nsecond': 1e-3, 'usecond': 1.0, 'msecond': 1e3}.get(d.get('Metric Unit', ''), 1e-3)
        n = d['Kernel Name'][:70]
        agg[n][0] += 1
        agg[n][1] += v
tot = sum(v[1] for v in agg.values())
print('ncu: %d kernels, %.1f us in kernels' % (sum(v[0] for v in agg.values()), tot))
for n, (c, t) in sorted(agg.items(), key=lambda x: -x[1][1]):
    print('ncu: %5d %9.1f us  %6.2f us each  %s' % (c, t, t / c, n))
PY
fi
# what bounds the matrix-vector kernels: speed of light, occupancy, stall reasons, one decode
# step's worth (graphs off)
if command -v ncu >/dev/null && [[ -n ${NCU_SECTIONS:-} ]]; then
  timeout 150 ncu --clock-control none --section SpeedOfLight --section Occupancy \
    --section WarpStateStats --section LaunchStats --section MemoryWorkloadAnalysis \
    -k regex:'k_fmv|k_attn' --launch-skip 400 --launch-count 8 "$b/sglc" bench_one_batch \
    --model-path "$m" --batch-size 1 --input-len 512 --output-len 16 --disable-cuda-graph 2>&1 |
    grep -vE '^==PROF==' | head -400
fi
