"""Routing overhead of sglang-router in front of one sglc worker: the same requests, one at a time,
straight to the worker and through the router (both over a keep-alive connection with
TCP_NODELAY), alternating runs; prints each run's median latency and the median of the runs.
Usage: python scripts/fleet_overhead.py WORKER_URL ROUTER_URL [--runs 7] [--requests 30]"""
import argparse
import statistics
import time

import requests


def run(url, n, seed):
    s = requests.Session()
    lat = []
    for i in range(n):
        body = {"text": "Request %d of run %d: say something short." % (i, seed),
                "sampling_params": {"max_new_tokens": 4, "temperature": 0, "ignore_eos": True}}
        t0 = time.perf_counter()
        r = s.post(url + "/generate", json=body, timeout=60)
        lat.append((time.perf_counter() - t0) * 1e3)
        r.raise_for_status()
    return statistics.median(lat)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("worker")
    ap.add_argument("router")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--requests", type=int, default=30)
    a = ap.parse_args()
    out = {"direct": [], "router": []}
    for k in range(a.runs):
        out["direct"].append(run(a.worker, a.requests, k))
        out["router"].append(run(a.router, a.requests, k))
    for name, v in out.items():
        print("%s: median per run %s ms; median %.2f ms"
              % (name, [round(x, 2) for x in v], statistics.median(v)))
    print("routing overhead: %.2f ms per request (median of runs)"
          % (statistics.median(out["router"]) - statistics.median(out["direct"])))


if __name__ == "__main__":
    main()
