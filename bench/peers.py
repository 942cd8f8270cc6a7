#!/usr/bin/env python3
"""sglc against its peers (issue 7, item 3): llama.cpp (llama-cpp-python) and mlx-lm, same model,
same thread count, same prompts, one machine, one run. Start it through bench/peers.sh, which
makes the venvs; this file only needs the Python standard library (matplotlib for the chart).

Workloads (full sizes; --quick shrinks them):
  pp512    prefill of 512 random tokens, batch 1 (tok/s)
  tg128    128 greedy single-token decodes after a 16-token prompt (tok/s = 128 / their time,
           llama-bench's definition; the median single-step rate is kept in the JSON too)
  offline  64 requests of 128 random tokens in, 128 out, EOS ignored (output tok/s), each engine
           batching them its own way (sglc: its scheduler; llama.cpp: N parallel sequences
           in one unified KV cache; mlx-lm: BatchGenerator); llama.cpp gets a sweep of slot
           counts (--llama-slots) and its best is reported; mlx-lm runs at its default
           completion batch of 32 (--mlx-batch), and only --mlx-offline-repeat times (default 1)
           since its x86 CPU kernels do about 5-6 token rows/s: tens of minutes a run
  gsp      shared prefix: 2 groups x 32 requests, 512-token system prompt, 32-token question,
           32 out (output tok/s); sglc through its radix cache, llama.cpp via
           llama_memory_seq_cp of a once-decoded prefix, mlx-lm via a once-computed prompt cache

sglc runs on the GGUF (the file llama.cpp reads) and, unless --no-sglc-mlx, on the MLX q4 folder
(the weights mlx-lm reads) too; the targets against mlx-lm are shown for both.

Prompts: the offline and gsp token ids are made here by the same generator as sglc's
bench_offline_throughput (the LCG of src/cli/bench_dataset.c, ids in [100, min(vocab, 40100)),
same --seed), so every engine gets the same ids; sglc makes them itself from the seed, and
--check-dataset compares fingerprints against a C build of that generator. pp/tg prompts for the
peers come from the same generator; sglc's bench_one_batch draws its own (only the length
matters for speed).

Every figure is the median over --repeat runs (default 5) with the min-max spread; each run is
its own process (a cold start plus one warmup, then the timed part), and runs are interleaved
across engines (the order rotates every repetition) so machine noise hits all alike. Peak RSS is
the process's ru_maxrss (os.wait4); cpu_util is CPU seconds / wall seconds of the timed part.

Outputs: bench/results/peers.json (raw runs + summary), peers.md (tables), peers.png (chart).
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# The issue's targets: sglc / peer, per workload.
TARGETS = {("tg", "llama.cpp"): 1.2, ("tg", "mlx-lm"): 1.5, ("pp", "llama.cpp"): 1.0,
           ("pp", "mlx-lm"): 1.5, ("offline", "llama.cpp"): 2.0, ("offline", "mlx-lm"): 2.0}

# ---------------------------------------------------------------------------- prompt sets
M64 = (1 << 64) - 1


class Lcg:
    """src/cli/bench_dataset.c's generator, bit for bit."""

    def __init__(self, seed):
        self.s = seed & M64

    def next(self):
        self.s = (self.s * 6364136223846793005 + 1442695040888963407) & M64
        return self.s >> 33

    def draw_len(self, length, ratio):
        lo = int(float(length) * ratio)
        lo = max(lo, 1)
        if lo >= length:
            return length
        return lo + self.next() % (length - lo + 1)

    def draw_id(self, lo, hi):
        return lo + self.next() % (hi - lo)


def make_random(seed, n, in_len, out_len, ratio, lo, hi):
    r = Lcg(seed)
    reqs = []
    for _ in range(n):
        k = r.draw_len(in_len, ratio)
        ids = [r.draw_id(lo, hi) for _ in range(k)]
        reqs.append({"prefix": None, "ids": ids, "out": r.draw_len(out_len, ratio)})
    return {"requests": reqs, "prefixes": []}


def make_gsp(seed, groups, per_group, sys_len, q_len, out_len, lo, hi):
    r = Lcg(seed)
    prefixes = [[r.draw_id(lo, hi) for _ in range(sys_len)] for _ in range(groups)]
    reqs = []
    for i in range(groups * per_group):
        reqs.append({"prefix": i // per_group, "ids": [r.draw_id(lo, hi) for _ in range(q_len)],
                     "out": out_len})
    return {"requests": reqs, "prefixes": prefixes}


def fingerprint(ds):
    """FNV-1a over (n, out, prefix_len, ids) of each full prompt, as bench/dataset_check.c."""
    h = 1469598103934665603

    def mix(h, v):
        return ((h ^ (v & 0xFFFFFFFF)) * 1099511628211) & M64

    for q in ds["requests"]:
        pre = ds["prefixes"][q["prefix"]] if q["prefix"] is not None else []
        full = pre + q["ids"]
        for v in (len(full), q["out"], len(pre)):
            h = mix(h, v)
        for t in full:
            h = mix(h, t)
    return h


# ---------------------------------------------------------------------------- running
def run_proc(cmd, env, timeout, cwd=ROOT):
    """Runs cmd; returns (rc, stdout, stderr, wall_s, peak_rss_kb)."""
    with tempfile.TemporaryFile() as fo, tempfile.TemporaryFile() as fe:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=fo, stderr=fe, env=env, cwd=cwd)
        rc, rss = None, 0
        deadline = t0 + timeout
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                rc = os.waitstatus_to_exitcode(status)
                rss = ru.ru_maxrss
                p.returncode = rc
                break
            if time.perf_counter() > deadline:
                p.kill()
                _, status, ru = os.wait4(p.pid, 0)
                p.returncode = rc = -9
                rss = ru.ru_maxrss
                break
            time.sleep(0.05)
        wall = time.perf_counter() - t0
        fo.seek(0)
        fe.seek(0)
        return rc, fo.read().decode(errors="replace"), fe.read().decode(errors="replace"), wall, rss


class Harness:
    def __init__(self, a):
        self.a = a
        self.env = dict(os.environ)
        t = str(a.threads)
        for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            self.env[k] = t
        self.prefix = ["taskset", "-c", a.cpus] if a.cpus else []
        self.tmp = tempfile.mkdtemp(prefix="sglc-peers-")

    # ---- sglc
    def sglc(self, wl, extra=(), model=None):
        a = self.a
        out = os.path.join(self.tmp, "sglc.jsonl")
        if os.path.exists(out):
            os.remove(out)
        base = self.prefix + [a.sglc]
        common = ["--model-path", model or a.gguf, "--threads", str(a.threads), "--result-filename", out]
        if wl["kind"] == "pp":
            cmd = base + ["bench_one_batch", "--batch-size", "1", "--input-len", str(wl["n"]),
                          "--output-len", "1"] + common
        elif wl["kind"] == "tg":
            cmd = base + ["bench_one_batch", "--batch-size", "1", "--input-len",
                          str(wl["prompt_len"]), "--output-len", str(wl["n"] + 1)] + common
        elif wl["kind"] == "offline":
            cmd = base + ["bench_offline_throughput", "--dataset-name", "random", "--num-prompts",
                          str(wl["num"]), "--random-input-len", str(wl["in"]),
                          "--random-output-len", str(wl["out"]), "--random-range-ratio", "1.0",
                          "--seed", str(a.seed)] + common + list(extra)
        else:
            cmd = base + ["bench_offline_throughput", "--dataset-name", "generated-shared-prefix",
                          "--gsp-num-groups", str(wl["groups"]), "--gsp-prompts-per-group",
                          str(wl["per_group"]), "--gsp-system-prompt-len", str(wl["sys"]),
                          "--gsp-question-len", str(wl["q"]), "--gsp-output-len", str(wl["out"]),
                          "--seed", str(a.seed)] + common + list(extra)
        rc, so, se, wall, rss = run_proc(cmd, self.env, a.timeout)
        if rc != 0 or not os.path.exists(out):
            return {"error": f"rc={rc}: {se.strip()[-800:]}", "cmd": cmd}, wall, rss
        r = json.loads(open(out).read().strip().splitlines()[-1])
        if wl["kind"] == "pp":
            m = {"tok_s": r["prefill_throughput"], "seconds": r["prefill_latency"]}
        elif wl["kind"] == "tg":
            dec = r["total_latency"] - r["prefill_latency"]
            m = {"tok_s": wl["n"] / dec, "seconds": dec,
                 "median_step_tok_s": r["median_decode_throughput"]}
        else:
            m = {k: r[k] for k in ("duration", "total_input_tokens", "total_output_tokens",
                                   "output_throughput", "total_throughput", "cached_tokens")}
        m["raw"] = r
        m["cmd"] = " ".join(cmd)
        return m, wall, rss

    # ---- python peers
    def peer(self, engine, wl, slots=None):
        a = self.a
        job = {"workload": wl["kind"] if wl["kind"] in ("pp", "tg") else "offline",
               "threads": a.threads}
        if engine == "llama.cpp":
            py, script, job["model"] = a.llama_py, "peer_llamacpp.py", a.gguf
        else:
            py, script, job["model"] = a.mlx_py, "peer_mlx.py", a.mlx_model
        if wl["kind"] == "pp":
            job["prompt"] = wl["prompt"]
        elif wl["kind"] == "tg":
            job["prompt"], job["n_gen"] = wl["prompt"], wl["n"]
        else:
            job.update(wl["dataset"])
            job["slots"] = slots
        jf = os.path.join(self.tmp, "job.json")
        with open(jf, "w") as f:
            json.dump(job, f)
        cmd = self.prefix + [py, os.path.join(HERE, script), jf]
        rc, so, se, wall, rss = run_proc(cmd, self.env, a.timeout)
        lines = [l for l in so.strip().splitlines() if l.startswith("{")]
        if rc != 0 or not lines:
            return {"error": f"rc={rc}: {se.strip()[-800:]}", "cmd": cmd}, wall, rss
        m = json.loads(lines[-1])
        return m, wall, rss


def workloads(a, vocab):
    lo, hi = 100, min(vocab, 40100)
    q = a.quick
    pp_n = 64 if q else 512
    tg_n = 16 if q else 128
    tgp = 16
    off = dict(num=8, inp=16, out=16) if q else dict(num=64, inp=128, out=128)
    gsp = dict(groups=2, per_group=4, sys=64, q=8, out=8) if q else \
        dict(groups=2, per_group=32, sys=512, q=32, out=32)
    # peers' pp/tg prompts: the same generator, another seed
    r = Lcg(a.seed + 1000)
    wls = {
        "pp": {"kind": "pp", "label": f"pp{pp_n}", "n": pp_n,
               "prompt": [r.draw_id(lo, hi) for _ in range(pp_n)], "unit": "tok/s"},
        "tg": {"kind": "tg", "label": f"tg{tg_n}", "n": tg_n, "prompt_len": tgp,
               "prompt": [r.draw_id(lo, hi) for _ in range(tgp)], "unit": "tok/s"},
        "offline": {"kind": "offline", "num": off["num"], "in": off["inp"], "out": off["out"],
                    "label": f"offline {off['num']}x({off['inp']} in, {off['out']} out)",
                    "dataset": make_random(a.seed, off["num"], off["inp"], off["out"], 1.0, lo, hi),
                    "unit": "output tok/s"},
        "gsp": {"kind": "gsp", **gsp,
                "label": (f"shared prefix {gsp['groups']}x{gsp['per_group']} "
                          f"(sys {gsp['sys']}, q {gsp['q']}, out {gsp['out']})"),
                "dataset": make_gsp(a.seed, gsp["groups"], gsp["per_group"], gsp["sys"],
                                    gsp["q"], gsp["out"], lo, hi),
                "unit": "output tok/s"},
    }
    for k in ("offline", "gsp"):
        wls[k]["fingerprint"] = fingerprint(wls[k]["dataset"])
    return {k: v for k, v in wls.items() if k in a.workloads}


def configs(a, wl):
    """(config name, engine, how to run) for one workload."""
    out = []
    if "sglc" in a.engines:
        out.append(("sglc", "sglc", ("sglc", (), None)))
        if wl["kind"] in ("offline", "gsp"):
            out.append(("sglc --disable-overlap-schedule", "sglc (no overlap)",
                        ("sglc", ("--disable-overlap-schedule",), None)))
        if not a.no_sglc_mlx:
            out.append(("sglc on the MLX q4 folder", "sglc (mlx q4)", ("sglc", (), a.mlx_model)))
    for eng, sweep in (("llama.cpp", a.llama_slots), ("mlx-lm", a.mlx_batch)):
        if eng not in a.engines:
            continue
        if wl["kind"] in ("pp", "tg"):
            out.append((eng, eng, ("peer", eng, None)))
        else:
            for s in sweep:
                out.append((f"{eng} slots={s}", eng, ("peer", eng, s)))
    return out


# ---------------------------------------------------------------------------- report
def metric_of(wl_kind):
    return "tok_s" if wl_kind in ("pp", "tg") else "output_throughput"


def summarize(res):
    """Per (workload, config): median/min/max of the main metric; per (workload, engine): the best
    config by median."""
    summ = {}
    for run in res["runs"]:
        if "error" in run["metrics"]:
            continue
        key = (run["workload"], run["config"])
        s = summ.setdefault(key, {"workload": run["workload"], "config": run["config"],
                                  "engine": run["engine"], "values": [], "total": [], "rss": [],
                                  "cpu": [], "median_step": []})
        m = run["metrics"]
        s["values"].append(m[metric_of(res["workloads"][run["workload"]]["kind"])])
        if "total_throughput" in m:
            s["total"].append(m["total_throughput"])
        if "median_step_tok_s" in m:
            s["median_step"].append(m["median_step_tok_s"])
        if "cpu_util" in m:
            s["cpu"].append(m["cpu_util"])
        s["rss"].append(run["peak_rss_kb"])
    rows = []
    for s in summ.values():
        v = s["values"]
        s.update(n=len(v), median=statistics.median(v), min=min(v), max=max(v),
                 total_median=statistics.median(s["total"]) if s["total"] else None,
                 median_step_median=statistics.median(s["median_step"]) if s["median_step"] else None,
                 cpu_median=statistics.median(s["cpu"]) if s["cpu"] else None,
                 rss_mb=statistics.median(s["rss"]) / 1024.0)
        rows.append(s)
    best = {}
    for s in rows:
        k = (s["workload"], s["engine"])
        if k not in best or s["median"] > best[k]["median"]:
            best[k] = s
    return rows, best


def fmt(s, repeat=None):
    if s is None:
        return "—"
    if s["n"] == 1:
        return f"{s['median']:.1f} (1 run)"
    t = f"{s['median']:.1f} ({s['min']:.1f}–{s['max']:.1f})"
    return t + (f" ({s['n']} runs)" if repeat and s["n"] != repeat else "")


ENGINE_ORDER = ["sglc", "sglc (no overlap)", "sglc (mlx q4)", "llama.cpp", "mlx-lm"]


def write_md(res, path):
    rows, best = summarize(res)
    wls = res["workloads"]
    meta = res["meta"]
    engines = [e for e in ENGINE_ORDER if any(k[1] == e for k in best)]
    L = []
    L.append(f"# sglc vs peers ({'QUICK smoke run: sizes shrunk, not comparable' if meta['quick'] else 'full run'})")
    L.append("")
    L.append(f"{meta['date']}; {meta['cpu']}, {meta['nproc']} cores; threads {meta['threads']}"
             f"{' (taskset ' + meta['cpus'] + ')' if meta['cpus'] else ''}; "
             f"{meta['repeat']} runs per figure, median (min–max); `{meta['command']}`.")
    L.append(f"Models: `{meta['gguf']}` (sglc, llama.cpp), `{meta['mlx_model']}` (mlx-lm; "
             f"\"sglc (mlx q4)\" is sglc on it). Versions: "
             + ", ".join(meta.get("versions", {}).values()) + f"; sglc {meta.get('sglc_git', '?')}.")
    la0, la1 = meta.get("loadavg_start"), meta.get("loadavg_end")
    if la0 and la1:
        # the benchmark's own threads keep the load near the thread count; more than that means
        # something else competed for the cores
        busy = max(la0[0], la1[0]) > (meta["threads"] or 1) + 1.0
        L.append(f"Load average (1 min, including the benchmark's own threads) at start "
                 f"{la0[0]:.1f}, at end {la1[0]:.1f}"
                 + (" — **the machine was busy: these numbers are noise** (llama.cpp's spinning "
                    "thread barriers collapse when its threads are preempted)." if busy else "."))
    L.append("")
    hdr = "| workload | " + " | ".join(engines) + " |"
    L.append(hdr)
    L.append("|---" * (len(engines) + 1) + "|")
    for wk, wl in wls.items():
        cells = []
        for e in engines:
            s = best.get((wk, e))
            c = fmt(s, meta["repeat"])
            if s is not None and wl["kind"] in ("offline", "gsp") and e in ("llama.cpp", "mlx-lm"):
                c += f" [{s['config'].split(' ', 1)[1]}]"
            cells.append(c)
        L.append(f"| {wl['label']} ({wl['unit']}) | " + " | ".join(cells) + " |")
    L.append("")
    L.append("Peers' offline / shared-prefix cells are their best slot count (in brackets); "
             "all counts are in the detail table below.")
    L.append("")
    L.append("## sglc / peer against the issue's targets")
    L.append("")
    L.append("| workload | pair | sglc | peer | sglc / peer | target | met |")
    L.append("|---|---|---|---|---|---|---|")
    for wk, wl in wls.items():
        for peer, mine in (("llama.cpp", "sglc"), ("mlx-lm", "sglc"), ("mlx-lm", "sglc (mlx q4)")):
            sg, p = best.get((wk, mine)), best.get((wk, peer))
            if sg is None or p is None:
                continue
            ratio = sg["median"] / p["median"]
            t = TARGETS.get((wl["kind"], peer))
            met = "—" if t is None else ("yes" if ratio >= t else "**no**")
            if meta["quick"] and t is not None:
                met = "(quick sizes)"
            L.append(f"| {wl['label']} | {mine} / {peer} | {sg['median']:.1f} | {p['median']:.1f} | "
                     f"{ratio:.2f}x | {'≥ %.1fx' % t if t else '(none)'} | {met} |")
    L.append("")
    for wk, wl in wls.items():
        on, off = best.get((wk, "sglc")), best.get((wk, "sglc (no overlap)"))
        if on and off:
            L.append(f"- Overlap schedule, {wl['label']}: on {on['median']:.1f} / off "
                     f"{off['median']:.1f} {wl['unit']} = {on['median'] / off['median']:.3f}x.")
    L.append("")
    L.append("## Every configuration")
    L.append("")
    L.append("| workload | config | runs | main figure, median (min–max) | total tok/s (median) "
             "| median single step tok/s | cpu util | peak RSS MB |")
    L.append("|---|---|---|---|---|---|---|---|")
    order = {e: i for i, e in enumerate(ENGINE_ORDER)}
    for s in sorted(rows, key=lambda s: (list(wls).index(s["workload"]), order.get(s["engine"], 9),
                                         s["config"])):
        wl = wls[s["workload"]]
        L.append(f"| {wl['label']} | {s['config']} | {s['n']} | {fmt(s)} {wl['unit']} | "
                 f"{'%.1f' % s['total_median'] if s['total_median'] else '—'} | "
                 f"{'%.1f' % s['median_step_median'] if s['median_step_median'] else '—'} | "
                 f"{'%.2f' % s['cpu_median'] if s['cpu_median'] is not None else '—'} | "
                 f"{s['rss_mb']:.0f} |")
    errs = [r for r in res["runs"] if "error" in r["metrics"]]
    if errs:
        L.append("")
        L.append(f"{len(errs)} run(s) failed: " + "; ".join(
            f"{r['workload']}/{r['config']}: {r['metrics']['error'][:200]}" for r in errs[:5]))
    L.append("")
    L.append("How each engine runs (see bench/peers.py, peer_llamacpp.py, peer_mlx.py): sglc "
             "through `bench_one_batch` (pp, tg) and `bench_offline_throughput` (offline, gsp); "
             "llama.cpp through llama-cpp-python's low-level API (llama_decode of one batch for pp, "
             "single-token decodes for tg, continuous batching of N parallel sequences in one "
             "unified KV cache for offline, with the shared prefix decoded once and "
             "llama_memory_seq_cp'd); mlx-lm through generate_step's prefill (pp), `generate_step` (tg) "
             "and `BatchGenerator` (offline; prefix via a shared prompt cache). tg = tokens / time "
             "of all decode steps (llama-bench); cpu util = CPU s / wall s of the timed part "
             "(peers only); peak RSS includes the Python interpreter for the peers. MLX's CPU "
             "backend has no thread setting and computes on one thread (its Python thread "
             "builds graphs on the other). Same prompt token ids for every engine in offline / "
             "shared prefix (sglc's generator, same seed); pp/tg ids differ for sglc.")
    with open(path, "w") as f:
        f.write("\n".join(L) + "\n")


def write_png(res, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no chart (bench/peers.sh installs it)", file=sys.stderr)
        return False
    rows, best = summarize(res)
    wls = res["workloads"]
    engines = [e for e in ENGINE_ORDER if any(k[1] == e for k in best)]
    colors = {"sglc": "#1f77b4", "sglc (no overlap)": "#aec7e8", "sglc (mlx q4)": "#9467bd",
              "llama.cpp": "#ff7f0e",
              "mlx-lm": "#2ca02c"}
    fig, axes = plt.subplots(1, len(wls), figsize=(4.2 * len(wls), 4.2), squeeze=False)
    for ax, (wk, wl) in zip(axes[0], wls.items()):
        names, vals, lo, hi, cols = [], [], [], [], []
        for e in engines:
            s = best.get((wk, e))
            if s is None:
                continue
            names.append(e.replace(" (", "\n("))
            vals.append(s["median"])
            lo.append(s["median"] - s["min"])
            hi.append(s["max"] - s["median"])
            cols.append(colors.get(e, "grey"))
        x = range(len(names))
        ax.bar(x, vals, yerr=[lo, hi], color=cols, capsize=4)
        for i, v in enumerate(vals):
            ax.text(i, v, f"{v:.0f}" if v >= 10 else f"{v:.1f}", ha="center", va="bottom",
                    fontsize=8)
        ax.set_xticks(list(x))
        ax.set_xticklabels(names, fontsize=8)
        ax.set_title(wl["label"], fontsize=9)
        ax.set_ylabel(wl["unit"])
    meta = res["meta"]
    fig.suptitle(f"sglc vs llama.cpp vs mlx-lm — SmolLM2-135M, {meta['threads']} threads, "
                 f"median of {meta['repeat']} (bars: min–max){' — QUICK' if meta['quick'] else ''}",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return True


# ---------------------------------------------------------------------------- main
def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=None, help="runs per figure (default 5; 1 with --quick)")
    p.add_argument("--quick", action="store_true", help="smoke run: small sizes")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cpus", default=None, help="taskset CPU list for every engine, e.g. 0-1")
    p.add_argument("--sglc", default=os.path.join(ROOT, "build", "sglc"))
    p.add_argument("--gguf", default=os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    p.add_argument("--mlx-model", default=os.path.join(ROOT, "models", "SmolLM2-135M-Instruct-mlx-q4"))
    p.add_argument("--llama-py", default=os.environ.get("LLAMA_PY", os.path.join(HERE, ".venv-llama", "bin", "python")))
    p.add_argument("--mlx-py", default=os.environ.get("MLX_PY", os.path.join(HERE, ".venv-mlx", "bin", "python")))
    p.add_argument("--engines", default="sglc,llama.cpp,mlx-lm")
    p.add_argument("--workloads", default="pp,tg,offline,gsp")
    p.add_argument("--llama-slots", default=None, help="parallel sequences to try (default 8,16,32,64)")
    p.add_argument("--mlx-batch", default=None,
                   help="BatchGenerator completion_batch_size to try (default 32, mlx-lm's own; "
                        "its CPU backend costs the same per token row at any batch size)")
    p.add_argument("--mlx-offline-repeat", type=int, default=1,
                   help="runs of mlx-lm's offline / shared-prefix figures (default 1: about "
                        "5-6 token rows/s on x86 CPU, i.e. tens of minutes a run)")
    p.add_argument("--no-sglc-mlx", action="store_true",
                   help="skip sglc on the MLX q4 folder (the same weights as mlx-lm)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--timeout", type=float, default=5400, help="seconds per run")
    p.add_argument("--out", default=os.path.join(HERE, "results"))
    p.add_argument("--report-only", action="store_true", help="rewrite peers.md/png from peers.json")
    p.add_argument("--check-dataset", action="store_true",
                   help="compare the prompt sets with sglc's generator (needs gcc) and exit")
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    jpath, mpath, ppath = (os.path.join(a.out, "peers." + e) for e in ("json", "md", "png"))
    if a.report_only:
        res = json.load(open(jpath))
        write_md(res, mpath)
        write_png(res, ppath)
        print(open(mpath).read())
        return 0
    if a.repeat is None:
        a.repeat = 1 if a.quick else 5
    a.engines = [e.strip() for e in a.engines.split(",") if e.strip()]
    a.workloads = [w.strip() for w in a.workloads.split(",") if w.strip()]
    a.llama_slots = [int(x) for x in (a.llama_slots or ("4,8" if a.quick else "8,16,32,64")).split(",")]
    a.mlx_batch = [int(x) for x in (a.mlx_batch or ("8" if a.quick else "32")).split(",")]
    vocab = json.load(open(os.path.join(a.mlx_model, "config.json"))).get("vocab_size", 49152)
    wls = workloads(a, vocab)
    if a.check_dataset:
        return check_dataset(a, wls)

    h = Harness(a)
    cpu = platform.processor() or ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    meta = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "cpu": cpu,
            "nproc": os.cpu_count(), "threads": a.threads, "cpus": a.cpus, "repeat": a.repeat,
            "quick": a.quick, "gguf": os.path.relpath(a.gguf, ROOT),
            "mlx_model": os.path.relpath(a.mlx_model, ROOT), "seed": a.seed,
            "command": " ".join(["bench/peers.sh"] + sys.argv[1:]),
            "llama_slots": a.llama_slots, "mlx_batch": a.mlx_batch,
            "mlx_offline_repeat": a.mlx_offline_repeat, "versions": {},
            "loadavg_start": os.getloadavg()}
    try:
        meta["sglc_git"] = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"],
                                          capture_output=True, text=True).stdout.strip()
    except OSError:
        pass
    res = {"meta": meta, "workloads": {k: {kk: vv for kk, vv in v.items()
                                           if kk not in ("dataset", "prompt")}
                                       for k, v in wls.items()}, "runs": []}
    plan = []
    for rep in range(a.repeat):
        for wk, wl in wls.items():
            cs = configs(a, wl)
            k = rep % len(cs)
            for c in cs[k:] + cs[:k]:
                if c[1] == "mlx-lm" and wl["kind"] in ("offline", "gsp") \
                        and rep >= a.mlx_offline_repeat:
                    continue
                plan.append((rep, wk, c))
    print(f"{len(plan)} runs; results in {a.out}", flush=True)
    t_start = time.time()
    for i, (rep, wk, (cname, engine, how)) in enumerate(plan):
        wl = wls[wk]
        if how[0] == "sglc":
            m, wall, rss = h.sglc(wl, how[1], how[2])
        else:
            m, wall, rss = h.peer(how[1], wl, how[2])
        if "engine_version" in m:
            meta["versions"][engine] = m["engine_version"]
        res["runs"].append({"rep": rep, "workload": wk, "config": cname, "engine": engine,
                            "metrics": m, "wall_s": wall, "peak_rss_kb": rss})
        main_v = m.get(metric_of(wl["kind"]))
        el = time.time() - t_start
        print(f"[{i + 1}/{len(plan)} {el:6.0f}s] rep {rep} {wl['label']:<40} {cname:<32} "
              + (f"{main_v:9.2f} {wl['unit']}" if main_v is not None else "FAILED " + m["error"][:300])
              + f"  (process {wall:.1f}s, {rss / 1024:.0f} MB)", flush=True)
        meta["loadavg_end"] = os.getloadavg()
        meta["elapsed_s"] = time.time() - t_start
        with open(jpath, "w") as f:
            json.dump(res, f, indent=1)
    write_md(res, mpath)
    write_png(res, ppath)
    shutil.rmtree(h.tmp, ignore_errors=True)
    print(open(mpath).read())
    print(f"wrote {jpath}, {mpath}, {ppath}")
    return 0


def check_dataset(a, wls):
    """Builds bench/dataset_check.c against src/cli/bench_dataset.c and compares fingerprints."""
    exe = os.path.join(tempfile.mkdtemp(prefix="sglc-dscheck-"), "dscheck")
    src = [os.path.join(HERE, "dataset_check.c"), os.path.join(ROOT, "src/cli/bench_dataset.c"),
           os.path.join(ROOT, "src/cli/args.c")]
    lib = os.path.join(os.path.dirname(a.sglc), "libsglc.a")
    r = subprocess.run(["gcc", "-O1", "-I" + os.path.join(ROOT, "src"), "-I" + os.path.join(ROOT, "include")]
                       + src + [lib, "-lm", "-lpthread", "-o", exe], capture_output=True, text=True)
    if r.returncode:
        print(r.stderr)
        return 1
    ok = True
    for wk in ("offline", "gsp"):
        if wk not in wls:
            continue
        wl = wls[wk]
        if wk == "offline":
            args = ["random", wl["num"], wl["in"], wl["out"]]
        else:
            args = ["gsp", wl["groups"], wl["per_group"], wl["sys"], wl["q"], wl["out"]]
        got = subprocess.run([exe, str(a.seed)] + [str(x) for x in args], capture_output=True,
                             text=True).stdout.strip()
        want = str(wl["fingerprint"])
        print(f"{wk}: sglc generator {got}, harness {want}: {'same' if got == want else 'DIFFERENT'}")
        ok &= got == want
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
