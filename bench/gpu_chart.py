#!/usr/bin/env python3
"""Chart of a GPU session's batch-1 decode figures (issue 15), from the device logs of
bench/gpu_profile_8b.sh, into one PNG:
  left:  Llama-3.1-8B-shaped bf16 decode ms per variant (median of the log's runs), with the
         read-every-byte floor (--floor-ms, measured by bench/gpu_floor.cu) as a line;
  right: per decode step, the microseconds of the fused matrix-vector kernels by kind (q/k/v and
         output head, gate/up, o and down) from each ncu table given, against cuBLAS GEMV on
         the same shapes (the log's "cublas gemv" lines, 32 layers + the head).

  python3 bench/gpu_chart.py --ab AB.log --ncu NAME=PROF.log ... --floor-ms 3.235 --out F.png

Needs matplotlib (pip install matplotlib)."""
import argparse
import re
import statistics
import sys

RUN = re.compile(r"^bs1 (\S+) run \d+: Decode\.  median latency: ([0-9.]+) s")
NCU = re.compile(r"^ncu: +(\d+) +([0-9.]+) +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+ +\d+ +\d+ +(.+)$")
CUBLAS = re.compile(r"^cublas gemv (\S+) +\d+ x +\d+: +([0-9.]+) us")
KIND = re.compile(r"k_fmv(?:16)?<\d+, \d+, (?:\d+, )?(\d)(?:, \d+)?>")
KINDS = {0: "q/k/v + head", 1: "gate/up", 2: "o + down"}


def decode_ms(path):
    runs = {}
    for line in open(path):
        m = RUN.match(line)
        if m:
            runs.setdefault(m.group(1), []).append(float(m.group(2)) * 1e3)
    return {v: statistics.median(t) for v, t in runs.items()}


def kernels_per_step(path, layers):
    """us per decode step of the fused matrix-vector kernels by kind (the first ncu table; its
    steps counted by the gate/up launches, one per layer)"""
    out = {k: 0.0 for k in KINDS.values()}
    glu = 0
    seen = False
    for line in open(path):
        if line.startswith("== ncu") and seen:
            break
        m = NCU.match(line)
        if not m:
            continue
        seen = True
        k = KIND.search(m.group(3))
        if k:
            out[KINDS[int(k.group(1))]] += float(m.group(2))
            glu += int(m.group(1)) if int(k.group(1)) == 1 else 0
    steps = glu / layers if glu else 1.0
    return {k: v / steps for k, v in out.items()}


def cublas_per_step(path, layers):
    t = {}
    for line in open(path):
        m = CUBLAS.match(line)
        if m:
            t[m.group(1)] = float(m.group(2))
    if not t:
        return None
    return {"q/k/v + head": layers * t["q/k/v"] + t["lm_head"], "gate/up": layers * t["gate/up"],
            "o + down": layers * (t["o"] + t["down"])}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--ab", required=True, help="a gpu_profile_8b.sh log with the A/B runs")
    p.add_argument("--label", action="append", default=[], help="VARIANT@shown name")
    p.add_argument("--ncu", action="append", default=[], help="NAME=LOG with an ncu table")
    p.add_argument("--layers", type=int, default=32)
    p.add_argument("--floor-ms", type=float)
    p.add_argument("--title", default="Llama-3.1-8B-shaped bf16, batch 1, one H200")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("gpu_chart.py: needs matplotlib (pip install matplotlib)")
    labels = dict(x.split("@", 1) for x in a.label)
    ms = decode_ms(a.ab)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.4))
    names = list(ms)
    ax1.bar(range(len(names)), [ms[n] for n in names], color="#1f77b4")
    for i, n in enumerate(names):
        ax1.text(i, ms[n], f"{ms[n]:.2f}", ha="center", va="bottom", fontsize=8)
    ax1.set_xticks(range(len(names)))
    ax1.set_xticklabels([labels.get(n, n).replace(" ", "\n") for n in names], fontsize=8)
    ax1.set_ylabel("ms per decode token (median)")
    if a.floor_ms:
        ax1.axhline(a.floor_ms, color="k", ls="--", lw=1)
        ax1.text(len(names) - 0.5, a.floor_ms, f"read-every-byte floor {a.floor_ms} ms",
                 ha="right", va="bottom", fontsize=8)
    ax1.set_title("decode, 512 + 128", fontsize=9)
    series = [(n.split("=", 1)[0], kernels_per_step(n.split("=", 1)[1], a.layers)) for n in a.ncu]
    for n in a.ncu:
        cb = cublas_per_step(n.split("=", 1)[1], a.layers)
        if cb:
            series.append(("cuBLAS GEMV", cb))
            break
    kinds = list(KINDS.values())
    w = 0.8 / max(1, len(series))
    for j, (name, vals) in enumerate(series):
        xs = [i + (j - (len(series) - 1) / 2) * w for i in range(len(kinds))]
        ax2.bar(xs, [vals[k] for k in kinds], width=w, label=name)
    ax2.set_xticks(range(len(kinds)))
    ax2.set_xticklabels(kinds, fontsize=8)
    ax2.set_ylabel("us per decode step (ncu, graphs off)")
    ax2.set_title("matrix-vector kernels by kind", fontsize=9)
    ax2.legend(fontsize=8)
    fig.suptitle(a.title, fontsize=10)
    fig.tight_layout()
    fig.savefig(a.out, dpi=110)
    print("wrote", a.out)


if __name__ == "__main__":
    main()
