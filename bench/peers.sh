#!/usr/bin/env bash
# sglc vs llama.cpp vs mlx-lm on one machine, same model, same threads (issue 7, item 3).
# Makes (idempotently) the venvs, then runs bench/peers.py, which writes bench/results/peers.json
# (raw), peers.md (tables to paste into BENCHMARKS.md) and peers.png (chart).
#
#   bench/peers.sh                 # full run: --repeat 5, 2 threads (see --help for the rest)
#   bench/peers.sh --quick         # smoke run, small sizes, 1 repetition
#   bench/peers.sh --report-only   # redo peers.md / peers.png from peers.json
#
# Venvs (each is reused when it already has the right versions; override with LLAMA_PY / MLX_PY
# pointing at an existing interpreter, e.g. LLAMA_PY=/tmp/refvenv/bin/python):
#   llama.cpp: <repo>/.venv-ref via scripts/golden/setup_ref_venv.sh, i.e.
#              CMAKE_ARGS=-DGGML_NATIVE=ON pip install numpy llama-cpp-python==0.3.36
#              (compiles llama.cpp for this CPU; several minutes on 2 cores)
#   mlx-lm:    bench/.venv-mlx: pip install "mlx[cpu]==0.32.4" mlx-lm==0.32.2
#   chart:     bench/.venv:     pip install matplotlib numpy
# Needs build/sglc (Release) and models/ (scripts/fetch_model.sh and the MLX q4 folder).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
MLX_VERSION="${MLX_VERSION:-0.32.4}"
MLX_LM_VERSION="${MLX_LM_VERSION:-0.32.2}"

venv() { # dir, check (python code that fails when the venv is not ready), pip args...
  local dir="$1" check="$2"; shift 2
  if [ -x "$dir/bin/python" ] && "$dir/bin/python" -c "$check" >/dev/null 2>&1; then return; fi
  echo "peers.sh: setting up $dir" >&2
  [ -x "$dir/bin/python" ] || python3 -m venv "$dir"
  "$dir/bin/pip" install -q "$@"
  "$dir/bin/python" -c "$check"
}

case " $* " in *" --report-only "*|*" --check-dataset "*) skip_peers=1 ;; *) skip_peers=0 ;; esac

venv bench/.venv "import matplotlib, numpy" matplotlib numpy

if [ "$skip_peers" = 0 ]; then
  if [ -z "${LLAMA_PY:-}" ]; then
    scripts/golden/setup_ref_venv.sh >&2
    LLAMA_PY="$root/.venv-ref/bin/python"
  fi
  if [ -z "${MLX_PY:-}" ]; then
    venv bench/.venv-mlx \
      "import mlx.core as mx, mlx_lm; assert mx.__version__ == '$MLX_VERSION' and mlx_lm.__version__ == '$MLX_LM_VERSION'" \
      "mlx[cpu]==$MLX_VERSION" "mlx-lm==$MLX_LM_VERSION"
    MLX_PY="$root/bench/.venv-mlx/bin/python"
  fi
  export LLAMA_PY MLX_PY
fi
exec bench/.venv/bin/python bench/peers.py "$@"
