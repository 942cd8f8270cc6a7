"""mlx-lm worker for bench/peers.py (run with the mlx / mlx-lm venv's python).

Usage: python peer_mlx.py JOB.json  -> prints one JSON line (the result) on stdout.

Workloads (job["workload"]):
  pp       mlx_lm.generate_step's prefill, step by step: the prompt but its last token through the
           model into an empty KV cache (only the cache is evaluated, so no lm_head for those
           rows), then the last token with its logits and argmax; timed to mx.eval of the token
  tg       mlx_lm.generate.generate_step (mlx-lm's own decode loop, with its async_eval
           pipelining) after job["prompt"]: the time from the first to the (n_gen+1)-th token
  offline  mlx_lm.generate.BatchGenerator (the continuous-batching engine behind
           mlx_lm.batch_generate and mlx_lm.server), greedy, no stop tokens (EOS ignored),
           completion_batch_size = job["slots"]. Shared-prefix sets: each group's system prompt
           is run once into a KV cache (make_prompt_cache) and handed to BatchGenerator.insert as
           the prompt cache of every request of its group, whose prompt is then the question only
           (the way mlx_lm.server reuses its prompt cache).

Threads: MLX's CPU backend has no thread-count setting (no MLX_* / OMP variable); on Linux
(mlx[cpu]) a stream's kernels run one after another on that stream's one worker thread, and
GEMMs go to the bundled reference BLAS, so it computes on one core, while the Python thread can
build the next step's graph on the other (cpu_util up to ~1.7 in tg). cpu_util in the result
(CPU seconds / wall seconds of the timed part) shows what it used.
"""
import json
import resource
import statistics
import sys
import time

import mlx.core as mx
import mlx_lm
from mlx_lm.generate import BatchGenerator, generate_step
from mlx_lm.models.cache import make_prompt_cache


def _cpu(ru0, ru1, wall):
    return ((ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)) / wall


def load(job):
    model, _tok = mlx_lm.load(job["model"])
    return model


def run_pp(job):
    model = load(job)
    ids = mx.array(job["prompt"])[None]
    step = job.get("prefill_step_size", 2048)

    def once():
        cache = make_prompt_cache(model)
        n = ids.shape[1] - 1
        for s in range(0, n, step):
            model(ids[:, s:min(s + step, n)], cache=cache)
            mx.eval([c.state for c in cache])
        logits = model(ids[:, n:], cache=cache)
        y = mx.argmax(logits[:, -1, :], axis=-1)
        mx.eval(y)

    for _ in range(job.get("warmup", 1)):
        once()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    once()
    dt = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    n = len(job["prompt"])
    return {"tokens": n, "seconds": dt, "tok_s": n / dt, "cpu_util": _cpu(ru0, ru1, dt)}


def run_tg(job):
    model = load(job)
    prompt = mx.array(job["prompt"])
    n_gen = job["n_gen"]

    def once(n):
        stamps = []
        gen = generate_step(prompt, model, max_tokens=n + 1)
        for _tok, _lp in gen:
            stamps.append(time.perf_counter())
        mx.synchronize()
        return stamps

    once(min(8, n_gen))  # warmup
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    stamps = once(n_gen)
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    steps = [b - a for a, b in zip(stamps, stamps[1:])]
    dt = stamps[-1] - stamps[0]
    return {"tokens": len(steps), "seconds": dt, "tok_s": len(steps) / dt,
            "median_step_tok_s": 1.0 / statistics.median(steps),
            "cpu_util": _cpu(ru0, ru1, dt)}


def run_offline(job):
    model = load(job)
    reqs = job["requests"]
    prefixes = job.get("prefixes") or []
    slots = job["slots"]

    def make_gen():
        return BatchGenerator(model, stop_tokens=None, completion_batch_size=slots,
                              prefill_batch_size=min(job.get("prefill_batch_size", 8), slots),
                              prefill_step_size=job.get("prefill_step_size", 2048))

    # warmup: a couple of short requests
    g = make_gen()
    g.insert([reqs[0]["ids"][:8]] * 2, [2, 2])
    while g.next_generated():
        pass
    g.close()

    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    caches = []
    for ids in prefixes:
        c = make_prompt_cache(model)
        model(mx.array(ids)[None], cache=c)
        mx.eval([x.state for x in c])
        caches.append(c)
    g = make_gen()
    g.insert([r["ids"] for r in reqs], [r["out"] for r in reqs],
             caches=[caches[r["prefix"]] for r in reqs] if prefixes else None)
    n_out = 0
    while responses := g.next_generated():
        n_out += len(responses)
    g.close()
    dt = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    n_in = sum(len(r["ids"]) + (len(prefixes[r["prefix"]]) if r["prefix"] is not None else 0)
               for r in reqs)
    return {"duration": dt, "total_input_tokens": n_in, "total_output_tokens": n_out,
            "output_throughput": n_out / dt, "total_throughput": (n_in + n_out) / dt,
            "slots": slots, "cpu_util": _cpu(ru0, ru1, dt)}


def main():
    job = json.load(open(sys.argv[1]))
    fn = {"pp": run_pp, "tg": run_tg, "offline": run_offline}[job["workload"]]
    res = fn(job)
    res["engine_version"] = f"mlx {mx.__version__}, mlx-lm {mlx_lm.__version__}"
    res["mlx_device"] = str(mx.default_device())
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
