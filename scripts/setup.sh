#!/usr/bin/env bash
# One-stop set-up on a fresh Debian/Ubuntu machine: system packages, the default model and a
# Release build in build/. Safe to run again: each step is skipped when already done.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

# chromium: the headless browser that tests/e2e/test_chat_page.py drives through Playwright
pkgs=(build-essential cmake ninja-build pkg-config libpcre2-dev libcjson-dev libmicrohttpd-dev libutf8proc-dev libcurl4-openssl-dev python3 python3-venv ca-certificates chromium)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}" >&2
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

bash scripts/fetch_model.sh

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build
