#!/bin/sh
# Create (idempotently) <repo>/.venv-ref with the reference implementation used
# to produce tests/golden/*: llama.cpp through llama-cpp-python (built from
# source by pip; takes a while on few cores) plus numpy.
# Usage: scripts/golden/setup_ref_venv.sh   (override version: LLAMA_CPP_PY_VERSION=x.y.z)
set -eu
VERSION="${LLAMA_CPP_PY_VERSION:-0.3.36}"
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
VENV="$REPO/.venv-ref"
PY="$VENV/bin/python"

if [ ! -x "$PY" ]; then
    python3 -m venv "$VENV"
fi

have="$("$PY" -c 'import llama_cpp, numpy; print(llama_cpp.__version__)' 2>/dev/null || true)"
if [ "$have" = "$VERSION" ]; then
    echo "$VENV: llama-cpp-python $have already installed"
    exit 0
fi

"$VENV/bin/pip" install --upgrade pip >/dev/null
# GGML_NATIVE=ON: build llama.cpp for this CPU (as the committed goldens were).
CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=ON}" \
    "$VENV/bin/pip" install numpy "llama-cpp-python==$VERSION"
"$PY" -c 'import llama_cpp; print("llama-cpp-python", llama_cpp.__version__)'
