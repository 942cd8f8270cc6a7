"""llama.cpp worker for bench/peers.py (run with the llama-cpp-python venv's python).

Usage: python peer_llamacpp.py JOB.json  -> prints one JSON line (the result) on stdout.

Only the low-level ctypes API of llama-cpp-python is used (llama_batch_init / llama_decode /
llama_get_logits_ith / llama_memory_seq_*), i.e. llama.cpp's own C code paths as in its
`llama-bench`, `batched` and `parallel` examples; Python only fills batches and takes an argmax.

Workloads (job["workload"]):
  pp       one llama_decode of len(prompt) tokens in one batch from an empty cache (llama-bench
           pp: n_batch = n_ubatch = prompt length, logits of the last token only)
  tg       prefill job["prompt"], then job["n_gen"] single-token decodes, greedy (llama-bench tg)
  offline  continuous batching over job["slots"] parallel sequences in one unified KV cache
           (the `parallel` example / llama-server scheme): every step decodes one token for each
           generating slot plus prompt tokens of newly admitted requests, up to n_batch tokens;
           a finished slot takes the next request. Shared-prefix sets: each group's system prompt
           is decoded once into its own sequence and llama_memory_seq_cp'd into a slot's sequence
           (cells are shared, not copied, in the unified cache) before the question is decoded.
"""
import ctypes
import json
import resource
import statistics
import sys
import time
from collections import deque

import numpy as np
import llama_cpp as L


def _quiet_logs():
    @L.llama_log_callback
    def _cb(level, text, user_data):  # noqa: ARG001
        pass

    L.llama_log_set(_cb, ctypes.c_void_p(0))
    return _cb  # keep a reference


class Ctx:
    def __init__(self, model_path, threads, n_ctx, n_batch, n_ubatch, n_seq_max):
        L.llama_backend_init()
        mp = L.llama_model_default_params()
        mp.n_gpu_layers = 0
        self.model = L.llama_model_load_from_file(model_path.encode(), mp)
        if not self.model:
            raise SystemExit("llama.cpp: cannot load " + model_path)
        cp = L.llama_context_default_params()
        cp.n_ctx = n_ctx
        cp.n_batch = n_batch
        cp.n_ubatch = n_ubatch
        cp.n_seq_max = n_seq_max
        cp.n_threads = threads
        cp.n_threads_batch = threads
        cp.kv_unified = True
        cp.no_perf = True
        self.ctx = L.llama_init_from_model(self.model, cp)
        if not self.ctx:
            raise SystemExit("llama.cpp: cannot create a context")
        self.mem = L.llama_get_memory(self.ctx)
        self.n_vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(self.model))
        self.n_batch = n_batch
        self.batch = L.llama_batch_init(n_batch, 0, 1)
        self.flash_attn_type = cp.flash_attn_type

    def clear(self):
        L.llama_memory_clear(self.mem, True)

    def fill(self, items):
        """items: list of (token, pos, seq_id, want_logits)."""
        b = self.batch
        for i, (tok, pos, seq, out) in enumerate(items):
            b.token[i] = tok
            b.pos[i] = pos
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = seq
            b.logits[i] = 1 if out else 0
        b.n_tokens = len(items)

    def decode(self):
        rc = L.llama_decode(self.ctx, self.batch)
        if rc != 0:
            raise SystemExit(f"llama_decode returned {rc}")

    def argmax(self, i):
        p = L.llama_get_logits_ith(self.ctx, i)
        return int(np.ctypeslib.as_array(p, shape=(self.n_vocab,)).argmax())


def run_pp(job):
    ids = job["prompt"]
    n = len(ids)
    c = Ctx(job["model"], job["threads"], n_ctx=n + 64, n_batch=n, n_ubatch=n, n_seq_max=1)
    items = [(t, p, 0, p == n - 1) for p, t in enumerate(ids)]
    for _ in range(job.get("warmup", 1)):  # llama-bench also runs one warmup pass
        c.clear()
        c.fill(items)
        c.decode()
        c.argmax(n - 1)
    c.clear()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    c.fill(items)
    c.decode()
    c.argmax(n - 1)
    dt = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    return {"tokens": n, "seconds": dt, "tok_s": n / dt, "cpu_util": _cpu(ru0, ru1, dt),
            "flash_attn_type": c.flash_attn_type}


def run_tg(job):
    ids = job["prompt"]
    n_gen = job["n_gen"]
    n = len(ids)
    c = Ctx(job["model"], job["threads"], n_ctx=n + n_gen + 64, n_batch=max(n, 32),
            n_ubatch=max(n, 32), n_seq_max=1)

    def once(n_steps):
        c.clear()
        c.fill([(t, p, 0, p == n - 1) for p, t in enumerate(ids)])
        c.decode()
        tok = c.argmax(n - 1)
        steps = []
        for k in range(n_steps):
            t0 = time.perf_counter()
            c.fill([(tok, n + k, 0, True)])
            c.decode()
            tok = c.argmax(0)
            steps.append(time.perf_counter() - t0)
        return steps

    once(min(8, n_gen))  # warmup
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    steps = once(n_gen)
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    dt = sum(steps)
    return {"tokens": n_gen, "seconds": dt, "tok_s": n_gen / dt,
            "median_step_tok_s": 1.0 / statistics.median(steps),
            "cpu_util": _cpu(ru0, ru1, wall)}


def run_offline(job):
    reqs = job["requests"]  # [{"prefix": group or None, "ids": [...], "out": n}]
    prefixes = job.get("prefixes") or []
    slots = job["slots"]
    n_batch = job.get("n_batch", 2048)
    G = len(prefixes)
    longest = max(len(r["ids"]) + r["out"] + (len(prefixes[r["prefix"]]) if r["prefix"] is not None else 0)
                  for r in reqs)
    per_seq = max(len(r["ids"]) + r["out"] for r in reqs)
    n_ctx = sum(len(p) for p in prefixes) + slots * per_seq + 256
    n_ctx = max(n_ctx, longest + 256)
    c = Ctx(job["model"], job["threads"], n_ctx=n_ctx, n_batch=n_batch, n_ubatch=min(512, n_batch),
            n_seq_max=G + slots)

    # warmup: one short decode through every path, then an empty cache
    c.fill([(reqs[0]["ids"][0], 0, G, True)])
    c.decode()
    c.argmax(0)
    c.clear()

    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    # shared prefixes: decoded once each, in sequence g
    for g, ids in enumerate(prefixes):
        for s in range(0, len(ids), n_batch):
            chunk = ids[s:s + n_batch]
            c.fill([(t, s + j, g, False) for j, t in enumerate(chunk)])
            c.decode()
    queue = deque(range(len(reqs)))
    # slot state: [req index, pending prompt tokens, next pos, n generated, last token]
    state = [None] * slots
    n_out_total = 0
    steps = 0
    max_batch = 0
    done = 0
    while done < len(reqs):
        for k in range(slots):
            if state[k] is None and queue:
                ri = queue.popleft()
                r = reqs[ri]
                seq = G + k
                L.llama_memory_seq_rm(c.mem, seq, -1, -1)
                pos = 0
                if r["prefix"] is not None:
                    L.llama_memory_seq_cp(c.mem, r["prefix"], seq, -1, -1)
                    pos = len(prefixes[r["prefix"]])
                state[k] = [ri, list(r["ids"]), pos, 0, None]
        items, owners = [], []
        for k in range(slots):  # one token for every generating slot
            s = state[k]
            if s is not None and not s[1]:
                items.append((s[4], s[2], G + k, True))
                owners.append(k)
                s[2] += 1
        for k in range(slots):  # then prompt tokens, as many as fit
            s = state[k]
            if s is None or not s[1] or len(items) >= n_batch:
                continue
            take = min(len(s[1]), n_batch - len(items))
            for j in range(take):
                last = j == take - 1 and take == len(s[1])
                items.append((s[1][j], s[2] + j, G + k, last))
                if last:
                    owners.append(k)
            s[1] = s[1][take:]
            s[2] += take
        c.fill(items)
        c.decode()
        steps += 1
        max_batch = max(max_batch, len(items))
        out_i = [i for i, it in enumerate(items) if it[3]]
        for i, k in zip(out_i, owners):
            s = state[k]
            tok = c.argmax(i)
            s[3] += 1
            s[4] = tok
            n_out_total += 1
            if s[3] >= reqs[s[0]]["out"]:
                L.llama_memory_seq_rm(c.mem, G + k, -1, -1)
                state[k] = None
                done += 1
    dt = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    n_in = sum(len(r["ids"]) + (len(prefixes[r["prefix"]]) if r["prefix"] is not None else 0)
               for r in reqs)
    return {"duration": dt, "total_input_tokens": n_in, "total_output_tokens": n_out_total,
            "output_throughput": n_out_total / dt, "total_throughput": (n_in + n_out_total) / dt,
            "steps": steps, "max_batch_tokens": max_batch, "slots": slots, "n_ctx": n_ctx,
            "cpu_util": _cpu(ru0, ru1, dt)}


def _cpu(ru0, ru1, wall):
    return ((ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)) / wall


def main():
    job = json.load(open(sys.argv[1]))
    _keep = _quiet_logs()  # noqa: F841
    fn = {"pp": run_pp, "tg": run_tg, "offline": run_offline}[job["workload"]]
    res = fn(job)
    res["engine_version"] = "llama-cpp-python " + L.__version__
    res["system_info"] = L.llama_print_system_info().decode().strip()
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
