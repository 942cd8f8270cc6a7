#!/usr/bin/env bash
# On the GPU machine: what bounds batch-1 decode of the Llama-3.1-8B shape (issue 15). Writes the
# random bf16 folder if missing (scripts/make_random_models.py), then
#   1. bench_one_batch bs 1 (512 + 128), RUNS alternating runs of each variant in VARIANTS
#      (space-separated; a variant is NAME=VALUE settings joined by ':', e.g.
#      "SGLC_CUDA_MV16=0:SGLC_CUDA_ATTN_GQA=1", or "default"), medians printed;
#   2. ncu per-kernel time, DRAM bytes and achieved occupancy of every kernel of decode steps
#      (graphs off, so ncu sees each kernel; --clock-control none), summed by kernel and by
#      launch shape (grid size), for each variant in NCU_VARIANTS (default: the first);
#   3. ncu sections (speed of light, occupancy, stall reasons) of one layer's k_fmv kernels;
#   4. the same products through PyTorch (cuBLAS GEMV, bf16, CUDA graph of 50 replays): what a
#      vendor kernel reaches on each matrix shape, in the same run.
# Logs on stdout.   bash bench/gpu_profile_8b.sh [BUILD] [OUT_DIR]   (RUNS=3 by default; NCU=0
# stops after 1; TORCH=0 skips 4; BOB_ARGS adds bench_one_batch arguments to 1-3, e.g.
# BOB_ARGS="--quantization mlx_q4" profiles the MLX 4-bit products of the same folder)
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
b="${1:-$root/build-gpu}"
out="${2:-/tmp/rnd8}"
runs="${RUNS:-3}"
variants="${VARIANTS:-default}"
ncu_variants="${NCU_VARIANTS:-${variants%% *}}"
source "$root/bench/gpu_common.sh"
m="$out/Llama-3.1-8B-random-bf16"
random_8b "$out" bf16 || exit 1
read -ra xargs_ <<<"${BOB_ARGS:-}"
bob() {
  "$b/sglc" bench_one_batch --model-path "$m" --batch-size 1 --input-len 512 "${xargs_[@]}" \
    "$@" 2>&1
}

# 1. decode A/B
declare -A med=()
for i in $(seq 1 "$runs"); do
  for v in $variants; do
    l="$(venv "$v" bob --output-len 128 | grep -E 'Decode\.  median')"
    echo "bs1 $v run $i: $l"
    med[$v]+="$(echo "$l" | grep -oE 'latency: [0-9.]+' | grep -oE '[0-9.]+') "
  done
done
for v in $variants; do
  echo "bs1 $v median decode latency (s): $(echo "${med[$v]}" | tr ' ' '\n' | grep . |
    sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}')"
done

[[ ${NCU:-1} == 0 ]] && exit 0 # NCU=0: the A/B only
command -v ncu >/dev/null || { echo "no ncu on this machine"; exit 0; }
# 2. every kernel of decode steps
for v in $ncu_variants; do
  venv "$v" timeout 240 ncu --clock-control none --csv --launch-skip 3000 \
    --launch-count 400 --metrics \
    gpu__time_duration.sum,dram__bytes_read.sum,sm__warps_active.avg.pct_of_peak_sustained_active,launch__grid_size,launch__registers_per_thread \
    "$b/sglc" bench_one_batch --model-path "$m" --batch-size 1 --input-len 512 --output-len 64 \
    --disable-cuda-graph "${xargs_[@]}" >/tmp/ncu8b.csv 2>/tmp/ncu8b.err || tail -5 /tmp/ncu8b.err
  echo "== ncu, $v"
  python3 - <<'PY'
import csv, collections
rows = collections.OrderedDict()
h = None
for r in csv.reader(open('/tmp/ncu8b.csv')):
    if 'Kernel Name' in r:
        h = r
        continue
    if not h or len(r) != len(h):
        continue
    d = dict(zip(h, r))
    key = d['ID']
    e = rows.setdefault(key, {'name': d['Kernel Name'].split('(')[0][:60]})
    v = float(d['Metric Value'].replace(',', '') or 0)
    u = d.get('Metric Unit', '')
    if d['Metric Name'] == 'gpu__time_duration.sum':
        v *= {'nsecond': 1e-3, 'usecond': 1.0, 'msecond': 1e3}.get(u, 1e-3)
        e['us'] = v
    elif d['Metric Name'] == 'dram__bytes_read.sum':
        v *= {'byte': 1, 'Kbyte': 1e3, 'Mbyte': 1e6, 'Gbyte': 1e9}.get(u, 1)
        e['bytes'] = v
    elif d['Metric Name'].startswith('sm__warps_active'):
        e['occ'] = v
    elif d['Metric Name'] == 'launch__grid_size':
        e['grid'] = int(v)
    elif d['Metric Name'] == 'launch__registers_per_thread':
        e['regs'] = int(v)
agg = collections.OrderedDict()
for e in rows.values():
    k = (e['name'], e.get('grid', 0), e.get('regs', 0))
    a = agg.setdefault(k, [0, 0.0, 0.0, 0.0])
    a[0] += 1
    a[1] += e.get('us', 0)
    a[2] += e.get('bytes', 0)
    a[3] += e.get('occ', 0)
tot = sum(a[1] for a in agg.values())
byt = sum(a[2] for a in agg.values())
print('ncu: %d kernels, %.1f us, %.2f GB read from DRAM (%.2f TB/s over kernel time)' %
      (len(rows), tot, byt / 1e9, byt / tot / 1e6 if tot else 0))
print('ncu:  count   total us  each us   MB each  TB/s  occ%  regs   grid  kernel')
for (n, g, rg), (c, t, by, oc) in sorted(agg.items(), key=lambda x: -x[1][1])[:25]:
    print('ncu: %6d %10.1f %8.2f %9.2f %5.2f %5.1f %5d %6d  %s' %
          (c, t, t / c, by / c / 1e6, by / t / 1e6 if t else 0, oc / c, rg, g, n))
PY
done

# 3. one layer's fused matrix-vector kernels in detail (the first of NCU_VARIANTS)
v="${ncu_variants%% *}"
venv "$v" timeout 200 ncu --clock-control none --section SpeedOfLight --section Occupancy \
  --section WarpStateStats --section LaunchStats --section MemoryWorkloadAnalysis \
  -k regex:'k_fmv' --launch-skip 130 --launch-count 4 "$b/sglc" bench_one_batch \
  --model-path "$m" --batch-size 1 --input-len 512 --output-len 8 --disable-cuda-graph \
  "${xargs_[@]}" 2>&1 |
  grep -vE '^==PROF==|^ +-+ *$' | head -320

# 4. cuBLAS GEMV on the same shapes
[[ ${TORCH:-1} == 0 ]] && exit 0
python3 - <<'PY'
import torch
torch.manual_seed(0)
shapes = [('q/k/v', 6144, 4096), ('o', 4096, 4096), ('gate/up', 28672, 4096),
          ('down', 4096, 14336), ('lm_head', 128256, 4096)]
for name, n, k in shapes:
    w = torch.randn(n, k, device='cuda', dtype=torch.bfloat16) * 0.01
    x = torch.randn(1, k, device='cuda', dtype=torch.bfloat16)
    y = torch.empty(1, n, device='cuda', dtype=torch.bfloat16)
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        for _ in range(3):
            torch.matmul(x, w.t(), out=y)
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    reps = 50
    with torch.cuda.graph(g):
        for _ in range(reps):
            torch.matmul(x, w.t(), out=y)
    ts = []
    for _ in range(5):
        a, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record(); g.replay(); e.record(); torch.cuda.synchronize()
        ts.append(a.elapsed_time(e) / reps)
    t = sorted(ts)[2]
    print('cublas gemv %-8s %6d x %5d: %7.2f us, %.2f TB/s' % (name, n, k, t * 1e3,
          n * k * 2 / (t * 1e-3) / 1e12))
PY
