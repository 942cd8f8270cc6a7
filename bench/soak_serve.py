#!/usr/bin/env python3
"""Memory soak of `sglc serve` (issue 14's acceptance: the device memory after 1,000 mixed
requests with aborts equals the memory after the first ones, and nothing is left running).

Starts the server on MODEL, warms it with 32 requests, reads the server's device memory
(nvidia-smi's used_memory of the process on a GPU, VmRSS on the CPU, where the KV pool becomes
resident as it is first written, so the last half is compared with the first), then sends N requests
(default 1000) from 32 threads: chat and completion, streaming and not, prompts of different
lengths, greedy and sampled, some with logprobs or a JSON schema; every fifth stream is hung up
mid-answer (an abort). Afterwards it waits for /get_server_info to show nothing running or
queued, reads the memory again and prints both, the KV pool's free tokens, and PASS or FAIL
(memory grew by more than --slack-mb, a request failed other than the hung-up ones, or a request
is still running).

Usage: bench/soak_serve.py --binary build/sglc --model MODEL [--requests 1000]
       [--slack-mb 64] [-- extra sglc serve flags]
Needs: requests (pip). Exit status 0 on PASS.
"""
import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time

import requests


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def device_mb(pid, on_gpu):
    if on_gpu:
        try:
            out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory",
                                  "--format=csv,noheader,nounits"], capture_output=True,
                                 text=True, timeout=30).stdout
        except (OSError, subprocess.TimeoutExpired):
            return None
        for line in out.splitlines():
            parts = [x.strip() for x in line.split(",")]
            if len(parts) == 2 and parts[0] == str(pid):
                return float(parts[1])
        return None
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return None


def one(url, i, rng, errors, lock):
    kind = i % 5
    words = " ".join(rng.choice(["alpha", "beta", "gamma", "delta", "the", "of"])
                     for _ in range(rng.randint(1, 200)))
    body = {"max_tokens": rng.randint(1, 48), "temperature": rng.choice([0, 0.7]),
            "seed": i}
    try:
        if kind == 4:  # a stream hung up after its first bytes: an abort
            s = socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=60)
            b = json.dumps(dict(body, prompt=words, stream=True, max_tokens=400,
                                ignore_eos=True))
            s.sendall(("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: "
                       "application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(b), b)).encode())
            s.recv(64)
            s.close()
            return
        if kind == 0:
            r = requests.post(url + "/v1/chat/completions", json=dict(
                body, model="default", messages=[{"role": "user", "content": words}]),
                timeout=300)
        elif kind == 1:
            r = requests.post(url + "/v1/completions", json=dict(
                body, prompt=words, logprobs=3), timeout=300)
        elif kind == 2:
            r = requests.post(url + "/generate", json={"text": words, "stream": True,
                                                       "sampling_params": {
                                                           "max_new_tokens": body["max_tokens"],
                                                           "temperature": body["temperature"]}},
                              timeout=300, stream=True)
            for _ in r.iter_lines():
                pass
        else:
            r = requests.post(url + "/v1/chat/completions", json=dict(
                body, model="default", messages=[{"role": "user", "content": words}],
                response_format={"type": "json_schema", "json_schema": {
                    "name": "x", "schema": {"type": "object",
                                            "properties": {"n": {"type": "integer"}}}}}),
                timeout=300)
        if r.status_code != 200:
            with lock:
                errors.append("%d: HTTP %d %s" % (i, r.status_code, r.text[:200]))
    except Exception as e:  # noqa: BLE001
        with lock:
            errors.append("%d: %r" % (i, e))


def drive(url, ids, errors):
    lock = threading.Lock()
    todo = list(ids)
    tl = threading.Lock()

    def worker(seed):
        rng = random.Random(seed)
        while True:
            with tl:
                if not todo:
                    return
                i = todo.pop()
            one(url, i, rng, errors, lock)

    ths = [threading.Thread(target=worker, args=(k,)) for k in range(32)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="build/sglc")
    ap.add_argument("--model", required=True)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--slack-mb", type=float, default=64.0)
    ap.add_argument("extra", nargs="*")
    a = ap.parse_args()
    port = free_port()
    url = "http://127.0.0.1:%d" % port
    log = tempfile.TemporaryFile("w+")
    proc = subprocess.Popen([a.binary, "serve", "--model-path", a.model, "--port", str(port),
                             "--max-total-tokens", "32768", "--decode-log-interval", "0",
                             *a.extra], stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(600):
            if proc.poll() is not None:
                log.seek(0)
                sys.exit("server exited: " + log.read())
            try:
                if requests.get(url + "/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.2)
        on_gpu = requests.get(url + "/get_server_info", timeout=10).json().get("device") == "cuda"
        errors = []
        drive(url, range(32), errors)
        time.sleep(1.0)
        before = device_mb(proc.pid, on_gpu)
        t0 = time.time()
        half = 32 + a.requests // 2
        drive(url, range(32, half), errors)
        mid = device_mb(proc.pid, on_gpu)
        drive(url, range(half, 32 + a.requests), errors)
        st = {}
        for _ in range(300):
            st = requests.get(url + "/get_server_info", timeout=30).json()["internal_states"][0]
            if st.get("num_running_reqs", 0) == 0 and st.get("num_queue_reqs", 0) == 0:
                break
            time.sleep(0.2)
        after = device_mb(proc.pid, on_gpu)
        # a GPU's memory is all allocated at start: it must not move from the first requests on.
        # The CPU's KV pool becomes resident as its pages are first written, so there the
        # second half of the run is compared with the first (steady state).
        ref = before if on_gpu else mid
        grew = (after or 0) - (ref or 0)
        # every KV slot is free or held only by the radix cache (evictable), none by a request
        # (kv_used_tokens counts the slots requests hold, the cache's apart)
        held = st.get("kv_used_tokens", -1)
        ok = (not errors and ref is not None and after is not None and grew <= a.slack_mb and
              st.get("num_running_reqs", 1) == 0 and held == 0)
        print("soak: %d requests (every fifth hung up) in %.1f s on %s; %s memory %.1f MB after "
              "the first 32, %.1f MB at half, %.1f MB after all (%+.1f MB against the %s); "
              "running %s, queued %s; KV slots held by requests %d of %s (%s cached); "
              "%d errors: %s"
              % (a.requests, time.time() - t0, "cuda" if on_gpu else "cpu",
                 "device" if on_gpu else "resident", before or -1, mid or -1, after or -1, grew,
                 "first 32" if on_gpu else "half", st.get("num_running_reqs"),
                 st.get("num_queue_reqs"), held, st.get("kv_pool_size"),
                 st.get("kv_cached_evictable_tokens"), len(errors), "PASS" if ok else "FAIL"))
        for e in errors[:5]:
            print("  " + e)
        return 0 if ok else 1
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    sys.exit(main())
