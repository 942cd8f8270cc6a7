#!/usr/bin/env bash
# Peak resident memory of `sglc serve` (issue 4: serving a quantized model; issue 7: model file +
# KV pool + 64 MB). Starts the server on MODEL with the given extra flags and a fixed KV pool,
# sends 16 concurrent completions of 64 tokens, then reads VmHWM (peak RSS) from /proc and prints
# it next to the model's file size and the KV pool size the server logged.
# Usage: [POOL=8192] [MAXTOK=64] bench/rss_serve.sh build-dir MODEL [sglc serve flags...]
# With a small POOL and a large MAXTOK (e.g. POOL=2048 MAXTOK=128) the 16 requests overfill the
# KV pool, so every slot is touched and the peak includes the whole pool.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${1}/sglc"; model="$2"; shift 2
port=$((31000 + RANDOM % 1000))
log="$(mktemp)"
"$bin" serve --model-path "$model" --port "$port" --max-total-tokens "${POOL:-8192}" "$@" >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 600); do
  curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
  kill -0 $pid 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.2
done
for i in $(seq 16); do
  curl -sf "http://127.0.0.1:$port/v1/completions" -H 'Content-Type: application/json' \
    -d "{\"prompt\": \"Once upon a time, number $i,\", \"max_tokens\": ${MAXTOK:-64}, \"ignore_eos\": true}" \
    >/dev/null &
done
wait $(jobs -p | grep -v "^$pid$") 2>/dev/null || true
hwm_kb=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
rss_kb=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
kill -TERM $pid; wait $pid || true
if [ -d "$model" ]; then
  mbytes=$(cat "$model"/*.safetensors | wc -c)
else
  mbytes=$(stat -c %s "$model")
fi
kv_mb=$(sed -n 's/.*KV pool: [0-9]* tokens (\([0-9.]*\) MB).*/\1/p' "$log" | head -1)
grep -E "Quantiz|ignored" "$log" | sed 's/^/  /' || true
awk -v h="$hwm_kb" -v r="$rss_kb" -v m="$mbytes" -v kv="$kv_mb" 'BEGIN {
  printf "model files %.1f MB, KV pool %.1f MB, peak RSS %.1f MB (now %.1f MB), peak - model - KV = %.1f MB\n",
         m / 1e6, kv, h * 1024 / 1e6, r * 1024 / 1e6, h * 1024 / 1e6 - m / 1e6 - kv }'
