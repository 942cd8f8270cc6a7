#!/bin/sh
# Builds bench/gpu_floor.cu into build/gpu_floor with nvcc, for Hopper (sm_90 machine code plus
# compute_90 PTX, which newer GPUs JIT). Needs nvcc, not a GPU: it compiles on a machine without
# one. Run the result on the GPU machine (see the comment at the top of gpu_floor.cu).
# Usage: bench/build_gpu_floor.sh [extra nvcc flags]
set -eu
REPO="$(cd "$(dirname "$0")/.." && pwd)"
NVCC="${NVCC:-nvcc}"
command -v "$NVCC" >/dev/null || { echo "build_gpu_floor.sh: $NVCC not found" >&2; exit 1; }
mkdir -p "$REPO/build"
"$NVCC" -O3 -std=c++17 -lineinfo -Xcompiler -Wall,-Wextra -Werror all-warnings \
    -gencode=arch=compute_90,code=sm_90 -gencode=arch=compute_90,code=compute_90 \
    "$@" -o "$REPO/build/gpu_floor" "$REPO/bench/gpu_floor.cu"
echo "built $REPO/build/gpu_floor" >&2
