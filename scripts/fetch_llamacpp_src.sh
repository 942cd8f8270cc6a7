#!/usr/bin/env bash
# Fetches llama.cpp's source from PyPI (the llama-cpp-python sdist vendors it), keeps what a
# CUDA build of llama-bench and llama-server needs, and packs it into .lcpp/llama.cpp.tar.xz
# (under 64 MiB, so the device tool can carry it; .lcpp is not tracked). The device machine
# reaches no registry: bench/peer_llamacpp_gpu.sh builds and runs it there.
#   bash scripts/fetch_llamacpp_src.sh [VERSION]      (default: the version pinned below)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
ver="${1:-0.3.36}"
out="$root/.lcpp"
if [[ -s $out/llama.cpp.tar.xz && -f $out/VERSION && $(cat "$out/VERSION") == "$ver" ]]; then
  echo "$out/llama.cpp.tar.xz is llama-cpp-python $ver already"
  exit 0
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
py=python3
[[ -x $root/.venv-test/bin/python ]] && py="$root/.venv-test/bin/python"
"$py" -m pip download -q --no-deps --no-binary :all: "llama-cpp-python==$ver" -d "$tmp"
tar xzf "$tmp"/llama_cpp_python-*.tar.gz -C "$tmp"
src="$(ls -d "$tmp"/llama_cpp_python-*/vendor/llama.cpp)"
# what neither the CUDA build nor the two tools read
rm -rf "$src"/{docs,models,media,gguf-py,conversion,pocs,skills,benches,tests,examples,ci}
for b in "$src"/ggml/src/ggml-*/; do
  case "$(basename "$b")" in ggml-cpu | ggml-cuda | ggml-blas) ;; *) rm -rf "$b" ;; esac
done
mkdir -p "$out"
tar -C "$(dirname "$src")" -cJf "$out/llama.cpp.tar.xz" llama.cpp
echo "$ver" >"$out/VERSION"
echo "packed $(du -h "$out/llama.cpp.tar.xz" | cut -f1) into $out/llama.cpp.tar.xz (llama-cpp-python $ver)"
