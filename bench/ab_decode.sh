#!/usr/bin/env bash
# Paired A/B of decode speed with `sglc bench_one_batch`: runs the configurations in turn,
# PAIRS times (default 8), so machine noise hits all alike, and prints per configuration the
# median of the per-run median decode throughput, plus the median of the per-pair ratios to the
# first configuration (robust on a shared machine; see BENCHMARKS.md).
# Usage: bench/ab_decode.sh "NAME=SGLC_BINARY ARGS..." "NAME=SGLC_BINARY ARGS..." ...
#   e.g. bench/ab_decode.sh "q4_1=build/sglc --model-path models/X.gguf" \
#                           "mlx_q4=build/sglc --model-path models/X-mlx-q4"
# Env: PAIRS, BS (batch size, default 1), IN (input len, 128), OUT (output len, 128).
set -euo pipefail
pairs="${PAIRS:-8}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
names=()
for cfg in "$@"; do names+=("${cfg%%=*}"); done
for i in $(seq "$pairs"); do
  for cfg in "$@"; do
    name="${cfg%%=*}"
    read -r bin args <<< "${cfg#*=}"
    # shellcheck disable=SC2086
    "$bin" bench_one_batch $args --batch-size "${BS:-1}" --input-len "${IN:-128}" \
      --output-len "${OUT:-128}" 2>&1 | awk '/^Decode\.  *median/ {print $NF == "token/s" ? $(NF-1) : $NF}' \
      >> "$tmp/$name"
  done
done
python3 - "$tmp" "${names[@]}" <<'PY'
import statistics, sys
d, names = sys.argv[1], sys.argv[2:]
v = {n: [float(x) for x in open(f"{d}/{n}")] for n in names}
base = names[0]
for n in names:
    r = [a / b for a, b in zip(v[n], v[base])]
    print(f"{n}: median {statistics.median(v[n]):.1f} tok/s (min {min(v[n]):.1f}, max {max(v[n]):.1f}, "
          f"{len(v[n])} runs); paired ratio to {base}: median {statistics.median(r):.3f} "
          f"(min {min(r):.3f}, max {max(r):.3f})")
PY
