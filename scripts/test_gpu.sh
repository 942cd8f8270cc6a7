#!/usr/bin/env bash
# On the GPU machine: builds Release with the CUDA backend and runs the tests, each stage's log
# in $OUT (default /tmp/out), a short summary printed last even when a stage fails.
#   - C dependencies missing on the machine come from .debs/ (scripts/fetch_gpu_debs.sh, run
#     where apt works), unpacked with dpkg -x into /tmp/sglc-deps, .pc prefixes rewritten;
#   - stages: deps, gpu (nvidia-smi), configure, build, ops (test_backend_ops: every op of
#     cpu, cpu-ggml and cuda against float64 references), graph (test_cuda_graph), ctest (the
#     whole suite; tests that need models/ fail when the model was not carried), bench.
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
    [[ -f $OUT/ctest.log ]] && grep -E "tests passed|tests failed|\(Failed\)|\(Timeout\)" \
      "$OUT/ctest.log" | head -30 | sed 's/^/  ctest: /'
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
stage deps unpack_deps && [[ -d $deps/usr ]] && use_deps
stage gpu bash -c 'nvidia-smi; nvcc --version; cmake --version | head -1'
stage configure cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSGLC_CUDA=ON || exit 1
stage build cmake --build "$build" -j "$jobs" || exit 1
stage ops "$build/test_backend_ops"
stage graph "$build/test_cuda_graph"
[[ -e models/SmolLM2-135M-Instruct.Q4_1.gguf ]] ||
  echo "note: models/ not present: ctest's model tests will fail (not a CUDA failure)" >&2
stage ctest ctest --test-dir "$build" --output-on-failure -j "$jobs" --timeout 900
if [[ -x $build/bench_cuda_ops ]]; then stage bench "$build/bench_cuda_ops"; fi
exit 0
