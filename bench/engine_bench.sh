#!/usr/bin/env bash
# Engine benchmarks for BENCHMARKS.md (issue 5): batched decode vs batch 1, overlap scheduling
# on/off, and a shared-prefix workload with and without the radix cache. Each configuration runs
# REPEAT times (default 3), interleaved so machine noise hits all alike; prints the median and
# the range of output (or total) token throughput and of duration.
# Usage: bench/engine_bench.sh [build-dir]    (GSP=0 skips the shared-prefix rows)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${1:-$root/build}/sglc"
repeat="${REPEAT:-3}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

run() { # name, args...
  local name="$1"; shift
  "$bin" bench_offline_throughput "$@" --result-filename "$tmp/$name.jsonl" >/dev/null 2>&1
}

decode=(--num-prompts 32 --random-input-len 16 --random-output-len 64 --random-range-ratio 1.0)
# The issue's shared-prefix workload: 64 requests behind one 1,000-token system prompt.
gsp=(--dataset-name generated-shared-prefix --gsp-num-groups 1 --gsp-prompts-per-group 64
     --gsp-system-prompt-len 1000 --gsp-question-len 16 --gsp-output-len 8)
for i in $(seq "$repeat"); do
  run batch1 "${decode[@]}" --max-running-requests 1
  run batch32 "${decode[@]}" --max-running-requests 32
  run batch32_sync "${decode[@]}" --max-running-requests 32 --disable-overlap-schedule
  [ "${GSP:-1}" = 0 ] && continue
  run gsp_radix "${gsp[@]}"
  # Without the cache every request prefills 1,016 tokens (about 2 minutes on 2 cores), so this
  # reference row runs NORADIX_REPEAT times (default 1) rather than REPEAT.
  if [ "$i" -le "${NORADIX_REPEAT:-1}" ]; then run gsp_noradix "${gsp[@]}" --disable-radix-cache; fi
done

python3 - "$tmp" <<'PY'
import json, statistics, sys, glob, os
d = sys.argv[1]
rows = {}
for f in sorted(glob.glob(d + "/*.jsonl")):
    rows[os.path.basename(f)[:-6]] = [json.loads(l) for l in open(f)]
def stat(name, key):
    v = [r[key] for r in rows[name]]
    return statistics.median(v), min(v), max(v)
print("| run | runs | output tok/s (median, min-max) | duration s (median, min-max) | cached tokens |")
print("|---|---|---|---|---|")
for name in [n for n in ["batch1", "batch32", "batch32_sync", "gsp_radix", "gsp_noradix"] if n in rows]:
    m, lo, hi = stat(name, "output_throughput")
    dm, dlo, dhi = stat(name, "duration")
    print(f"| {name} | {len(rows[name])} | {m:.1f} ({lo:.1f}-{hi:.1f}) | {dm:.2f} ({dlo:.2f}-{dhi:.2f}) | {rows[name][0]['cached_tokens']} |")
b1 = stat("batch1", "output_throughput")[0]; b32 = stat("batch32", "output_throughput")[0]
s32 = stat("batch32_sync", "output_throughput")[0]
print(f"\nbatch 32 / batch 1 decode throughput: {b32 / b1:.2f}x")
print(f"overlap on / off (batch 32): {b32 / s32:.3f}x")
if "gsp_radix" in rows and "gsp_noradix" in rows:
    gr = stat("gsp_radix", "duration")[0]; gn = stat("gsp_noradix", "duration")[0]
    print(f"shared prefix: duration without radix / with radix: {gn / gr:.2f}x")
PY
