#!/usr/bin/env bash
# A fleet of `sglc serve` workers behind SGLang's own router (sglang-router, cache-aware policy).
#
#   scripts/fleet.sh start N [options] [-- worker flags...]
#   scripts/fleet.sh stop   [--run-dir D]
#   scripts/fleet.sh status [--run-dir D]
#   scripts/fleet.sh restart I [--run-dir D]   (worker I again, same command line)
#
# start: N local workers on ports P, P+1, ... (each pinned with taskset to its own cores when the
# machine has at least N cores, all sharing the cores otherwise; the output says which), the
# model's tokenizer exported for the router (sglc export-tokenizer, so a GGUF's cache-aware
# routing and /v1/tokenize work), then sglang-router in front of the workers and of any
# --worker-urls (workers on other machines, started there with `fleet.sh start 1 --no-router
# --host 0.0.0.0`). sglang-router is installed into a venv by pip when missing (idempotent).
# Options:
#   --base-port P          first worker port (default 30001)
#   --router-port R        router port (default 30000)
#   --router-metrics-port M  the router's own Prometheus port (default 29000)
#   --host H               address the local workers bind (default 127.0.0.1)
#   --router-host H        address the router binds (default 127.0.0.1)
#   --worker-urls URL...   more workers (other machines), up to the next option or --
#   --policy NAME          router policy (default cache_aware)
#   --no-router            start only the workers
#   --run-dir D            pid files, logs and the exported tokenizer (default: .fleet)
#   --router-arg ARG       one more argument for the router (repeatable)
# After --, flags for every worker (e.g. --model-path X --max-running-requests 32).
# Environment: SGLC_BINARY (default build/sglc), SGLC_ROUTER_VENV (default .venv-router),
# SGLC_ROUTER_VERSION (default 0.3.2), FLEET_READY_TIMEOUT (seconds, default 180).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${SGLC_BINARY:-$root/build/sglc}"
venv="${SGLC_ROUTER_VENV:-$root/.venv-router}"
router_version="${SGLC_ROUTER_VERSION:-0.3.2}"
ready_timeout="${FLEET_READY_TIMEOUT:-180}"

die() {
  echo "fleet: $*" >&2
  exit 1
}

# GET url succeeds (2xx) within 5 s
http_ok() {
  if command -v curl >/dev/null; then
    curl -fsS -m 5 -o /dev/null "$1" 2>/dev/null
  else
    python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)' \
      "$1" >/dev/null 2>&1
  fi
}

alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

ensure_router() {
  if [[ -x $venv/bin/python ]] && "$venv/bin/python" -c 'import sglang_router' 2>/dev/null; then
    return 0
  fi
  echo "fleet: installing sglang-router==$router_version into $venv" >&2
  [[ -x $venv/bin/python ]] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q "sglang-router==$router_version" ||
    die "pip could not install sglang-router==$router_version"
}

cmd_start() {
  local n="${1:-}"
  [[ $n =~ ^[0-9]+$ ]] || die "usage: fleet.sh start N [options] [-- worker flags...]"
  shift
  local base_port=30001 router_port=30000 metrics_port=29000 host=127.0.0.1
  local router_host=127.0.0.1 policy=cache_aware no_router=0
  local -a remote=() router_args=() wflags=()
  while (($#)); do
    case "$1" in
      --base-port) base_port="$2"; shift 2 ;;
      --router-port) router_port="$2"; shift 2 ;;
      --router-metrics-port) metrics_port="$2"; shift 2 ;;
      --host) host="$2"; shift 2 ;;
      --router-host) router_host="$2"; shift 2 ;;
      --policy) policy="$2"; shift 2 ;;
      --no-router) no_router=1; shift ;;
      --run-dir) run_dir="$2"; shift 2 ;;
      --router-arg) router_args+=("$2"); shift 2 ;;
      --worker-urls)
        shift
        while (($#)) && [[ $1 != --* ]]; do remote+=("$1"); shift; done ;;
      --) shift; wflags=("$@"); break ;;
      *) die "unknown option '$1' (see the top of scripts/fleet.sh)" ;;
    esac
  done
  for v in "$base_port" "$router_port" "$metrics_port"; do
    [[ $v =~ ^[0-9]+$ ]] && ((v > 0 && v < 65536)) || die "bad port '$v'"
  done
  ((n + ${#remote[@]} > 0)) || die "no workers: give N > 0 or --worker-urls"
  [[ -x $bin ]] || die "$bin not found: build first (cmake --build build) or set SGLC_BINARY"
  mkdir -p "$run_dir"
  for f in "$run_dir"/*.pid; do
    [[ -e $f ]] || continue
    alive "$f" && die "a fleet is already running from $run_dir (fleet.sh stop first)"
    rm -f "$f"
  done
  rm -f "$run_dir"/worker-*.url

  # the model the workers serve, for the router's tokenizer
  local model="" i
  for ((i = 0; i < ${#wflags[@]}; i++)); do
    if [[ ${wflags[i]} == --model-path || ${wflags[i]} == --model ]] && ((i + 1 < ${#wflags[@]})); then
      model="${wflags[i + 1]}"
    fi
  done

  # cores: each worker its own share when there are at least N, else all share them
  local ncpu per=0
  ncpu="$(nproc)"
  if ((n > 0 && ncpu >= n)) && command -v taskset >/dev/null; then
    per=$((ncpu / n))
    echo "fleet: $n workers on $ncpu cores: each pinned to its own $per core(s)"
  elif ((n > 0)); then
    echo "fleet: $n workers on $ncpu cores: not enough cores to pin, all workers share them"
  fi
  local has_threads=0
  for f in "${wflags[@]}"; do [[ $f == --threads ]] && has_threads=1; done

  local -a urls=()
  for ((i = 0; i < n; i++)); do
    local port=$((base_port + i)) url
    url="http://$host:$port"
    [[ $host == 0.0.0.0 ]] && url="http://127.0.0.1:$port"
    local -a pin=() extra=()
    if ((per > 0)); then
      pin=(taskset -c "$((i * per))-$((i * per + per - 1))")
      ((has_threads)) || extra=(--threads "$per")
    fi
    printf '%q ' "${pin[@]}" "$bin" serve --host "$host" --port "$port" "${extra[@]}" \
      "${wflags[@]}" >"$run_dir/worker-$i.cmd"
    echo "$url" >"$run_dir/worker-$i.url"
    launch_worker "$i"
    urls+=("$url")
    echo "fleet: worker $i: $url (pid $(cat "$run_dir/worker-$i.pid"), log $run_dir/worker-$i.log)"
  done
  local deadline=$((SECONDS + ready_timeout))
  for ((i = 0; i < n; i++)); do
    until http_ok "${urls[i]}/health"; do
      alive "$run_dir/worker-$i.pid" || die "worker $i exited: $(tail -3 "$run_dir/worker-$i.log")"
      ((SECONDS < deadline)) || die "worker $i not ready after $ready_timeout s"
      sleep 0.3
    done
  done
  ((no_router)) && { echo "fleet: $n workers ready (no router)"; return 0; }

  ensure_router
  local -a tok=()
  if ((n > 0)); then
    local -a margs=()
    [[ -n $model ]] && margs=(--model-path "$model")
    "$bin" export-tokenizer "${margs[@]}" --out "$run_dir/tokenizer" >"$run_dir/export.log" 2>&1 ||
      die "export-tokenizer failed: $(tail -3 "$run_dir/export.log")"
    tok=(--tokenizer-path "$run_dir/tokenizer")
  fi
  urls+=("${remote[@]}")
  # health checks every 2 s and a short circuit breaker: a dead worker leaves the rotation in
  # seconds, not the router's default minute
  "$venv/bin/python" -m sglang_router.launch_router --host "$router_host" --port "$router_port" \
    --worker-urls "${urls[@]}" --policy "$policy" "${tok[@]}" \
    --prometheus-host 127.0.0.1 --prometheus-port "$metrics_port" \
    --health-check-interval-secs 2 --health-failure-threshold 2 --health-success-threshold 1 \
    --cb-failure-threshold 3 --cb-timeout-duration-secs 5 --worker-startup-timeout-secs 60 \
    "${router_args[@]}" >"$run_dir/router.log" 2>&1 &
  echo $! >"$run_dir/router.pid"
  local rurl="http://$router_host:$router_port"
  [[ $router_host == 0.0.0.0 ]] && rurl="http://127.0.0.1:$router_port"
  echo "$rurl" >"$run_dir/router.url"
  # ready when the router lists every worker as healthy
  until [[ "$(healthy_count "$rurl")" -ge ${#urls[@]} ]]; do
    alive "$run_dir/router.pid" || die "the router exited: $(tail -5 "$run_dir/router.log")"
    ((SECONDS < deadline)) || die "router: workers not healthy after $ready_timeout s"
    sleep 0.3
  done
  echo "fleet: router $rurl ($policy, ${#urls[@]} workers, pid $(cat "$run_dir/router.pid"), log $run_dir/router.log)"
}

# starts worker i from its saved command line (appending to its log)
launch_worker() {
  local -a cmd
  eval "cmd=($(cat "$run_dir/worker-$1.cmd"))"
  "${cmd[@]}" >>"$run_dir/worker-$1.log" 2>&1 &
  echo $! >"$run_dir/worker-$1.pid"
}

# restart I: worker I again with the same command line (after a crash or a kill); the router's
# health check puts it back into rotation
cmd_restart() {
  local i="$1"
  [[ -f $run_dir/worker-$i.cmd ]] || die "no worker $i in $run_dir"
  alive "$run_dir/worker-$i.pid" && die "worker $i is running (pid $(cat "$run_dir/worker-$i.pid"))"
  launch_worker "$i"
  local url deadline=$((SECONDS + ready_timeout))
  url="$(cat "$run_dir/worker-$i.url")"
  until http_ok "$url/health"; do
    alive "$run_dir/worker-$i.pid" || die "worker $i exited: $(tail -3 "$run_dir/worker-$i.log")"
    ((SECONDS < deadline)) || die "worker $i not ready after $ready_timeout s"
    sleep 0.3
  done
  echo "fleet: worker $i: $url restarted (pid $(cat "$run_dir/worker-$i.pid"))"
}

# number of healthy workers the router lists (GET /workers), 0 when it does not answer
healthy_count() {
  python3 - "$1/workers" <<'PY' 2>/dev/null || echo 0
import json, sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
    ws = json.load(r).get("workers", [])
print(sum(1 for w in ws if w.get("is_healthy")))
PY
}

cmd_stop() {
  local f any=0
  # router first, so nothing is routed to a worker that is going away
  for f in "$run_dir/router.pid" "$run_dir"/worker-*.pid; do
    [[ -e $f ]] || continue
    if alive "$f"; then
      kill -TERM "$(cat "$f")" 2>/dev/null || true
      any=1
    fi
  done
  # workers drain in-flight requests on SIGTERM; wait for them, then force what is left
  local deadline=$((SECONDS + 70))
  for f in "$run_dir/router.pid" "$run_dir"/worker-*.pid; do
    [[ -e $f ]] || continue
    while alive "$f" && ((SECONDS < deadline)); do sleep 0.2; done
    alive "$f" && kill -KILL "$(cat "$f")" 2>/dev/null || true
    rm -f "$f"
  done
  ((any)) && echo "fleet: stopped" || echo "fleet: nothing running in $run_dir"
}

cmd_status() {
  local f up=0 total=0
  for f in "$run_dir"/worker-*.pid; do
    [[ -e $f ]] || continue
    local i="${f##*/worker-}" url state
    i="${i%.pid}"
    url="$(cat "$run_dir/worker-$i.url" 2>/dev/null || echo "?")"
    total=$((total + 1))
    if alive "$f" && http_ok "$url/health"; then
      state="healthy"
      up=$((up + 1))
    elif alive "$f"; then state="running, not healthy"; else state="stopped"; fi
    echo "worker $i: $url pid $(cat "$f"): $state"
  done
  if [[ -e $run_dir/router.pid ]]; then
    local rurl
    rurl="$(cat "$run_dir/router.url" 2>/dev/null || echo "?")"
    if alive "$run_dir/router.pid"; then
      echo "router: $rurl pid $(cat "$run_dir/router.pid"): running, $(healthy_count "$rurl") healthy workers"
    else
      echo "router: $rurl: stopped"
    fi
  fi
  ((total)) || [[ -e $run_dir/router.pid ]] || { echo "fleet: nothing started from $run_dir"; return 3; }
  ((up == total))
}

run_dir="$root/.fleet"
cmd="${1:-}"
(($#)) && shift
case "$cmd" in
  start) cmd_start "$@" ;;
  stop | status | restart)
    idx=""
    if [[ $cmd == restart ]]; then
      [[ ${1:-} =~ ^[0-9]+$ ]] || die "usage: fleet.sh restart I [--run-dir D]"
      idx="$1"
      shift
    fi
    while (($#)); do
      case "$1" in
        --run-dir) run_dir="$2"; shift 2 ;;
        *) die "unknown option '$1'" ;;
      esac
    done
    if [[ $cmd == restart ]]; then cmd_restart "$idx"; else "cmd_$cmd"; fi ;;
  *) die "usage: fleet.sh start N [options] [-- worker flags...] | stop | status | restart I [--run-dir D]" ;;
esac
