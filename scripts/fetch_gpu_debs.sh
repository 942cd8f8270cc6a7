#!/usr/bin/env bash
# Downloads (does not install) the .deb files of sglc's C dependencies -- PCRE2, cJSON,
# libmicrohttpd, utf8proc, libcurl: the -dev packages, their runtime libraries and everything
# they pull in that a minimal image may lack -- into .debs/, for a GPU machine that has nvcc
# and cmake but not these libraries and no network. scripts/test_gpu.sh unpacks them with
# dpkg -x into a private prefix. Run it here (a Debian/Ubuntu machine with apt), then carry
# .debs/ to the GPU machine.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/.debs"
mkdir -p "$out"
top=(libpcre2-dev libpcre2-8-0 libcjson-dev libcjson1 libmicrohttpd-dev libmicrohttpd12
  libutf8proc-dev libutf8proc2 libcurl4-openssl-dev libcurl4)
# the packages every image has (the C library, the compiler runtime, the package tools) stay out
skip='^(libc6|libc6-dev|libc-dev-bin|linux-libc-dev|libgcc-s1|libstdc\+\+6|gcc-[0-9]+-base|debconf|dpkg|perl-base|tar|install-info|libcrypt1|libcrypt-dev|rpcsvc-proto|libnsl-dev|libnsl2|libtirpc-dev|libtirpc3|libtirpc-common|base-files|libselinux1|zlib1g|libzstd1|liblzma5|libbz2-1.0|libpcre2-8-0-dbg)$'
mapfile -t pkgs < <(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
  --no-breaks --no-replaces --no-enhances "${top[@]}" | grep -v '^ ' | grep -v '^<' | sort -u |
  grep -Ev "$skip")
echo "fetch_gpu_debs: ${#pkgs[@]} packages into $out" >&2
cd "$out"
rm -f ./*.deb
apt-get download "${pkgs[@]}" >/dev/null
ls ./*.deb | wc -l | xargs echo "fetch_gpu_debs: downloaded" >&2
du -sh "$out" >&2
