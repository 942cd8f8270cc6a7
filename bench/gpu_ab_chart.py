#!/usr/bin/env python3
"""Chart of a bench/gpu_8b.sh log (issue 15): batch-1 decode ms of each model (bf16, mlx4) under
each variant, the median of the log's runs, beside the read-every-byte floors measured in the
same run (bench/gpu_floor.cu: one kernel, and a kernel per matrix under a CUDA graph), with the
ratio to the one-kernel floor on each bar.

  python3 bench/gpu_ab_chart.py LOG --title "8B, one H100" --label VARIANT=NAME ... --out F.png

Needs matplotlib (pip install matplotlib)."""
import argparse
import re
import statistics
import sys

RUN = re.compile(r"^bs1 (\S+) (\S+) run \d+: Decode\.  median latency: ([0-9.]+) s")
WEIGHTS = re.compile(r"^weights: \S+ (\S+), ")
FLOOR = re.compile(r"^read once, (one kernel|a kernel per matrix, CUDA graph) +([0-9.]+) us")


def parse(path):
    runs, floors, dtype = {}, {}, None
    for line in open(path):
        m = WEIGHTS.match(line)
        if m:
            dtype = {"q4": "mlx4"}.get(m.group(1), m.group(1))
            continue
        m = FLOOR.match(line)
        if m and dtype:
            floors.setdefault(dtype, {})[m.group(1)] = float(m.group(2)) / 1e3
            continue
        m = RUN.match(line)
        if m:
            model = m.group(1).rsplit("-", 1)[-1]  # Llama-3.1-8B-random-bf16: bf16
            runs.setdefault(model, {}).setdefault(m.group(2), []).append(
                float(m.group(3)) * 1e3)
    return runs, floors


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("log")
    ap.add_argument("--title", default="batch-1 decode")
    ap.add_argument("--label", action="append", default=[],
                    help="VARIANT=NAME: the legend's name of a variant")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    runs, floors = parse(a.log)
    if not runs:
        sys.exit("gpu_ab_chart: no 'bs1 MODEL VARIANT run N' lines in %s" % a.log)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    models = list(runs)
    variants = []
    for m in models:
        for v in runs[m]:
            if v not in variants:
                variants.append(v)
    names = {}  # a variant holds '=' itself: the longest variant that prefixes the label
    for l in a.label:
        v = max((v for v in variants if l.startswith(v + "=")), key=len, default=None)
        if v is None:
            sys.exit("gpu_ab_chart: --label %s names no variant of the log" % l)
        names[v] = l[len(v) + 1:]
    fig, ax = plt.subplots(figsize=(2.2 + 2.4 * len(models), 4.2))
    w = 0.8 / len(variants)
    for j, v in enumerate(variants):
        xs, ys = [], []
        for i, m in enumerate(models):
            if v in runs[m]:
                xs.append(i + (j - (len(variants) - 1) / 2) * w)
                ys.append(statistics.median(runs[m][v]))
        bars = ax.bar(xs, ys, w * 0.95, label=names.get(v, v))
        for x, y, m in zip(xs, ys, [m for m in models if v in runs[m]]):
            f = floors.get(m, {}).get("one kernel")
            txt = "%.2f ms" % y + ("\n%.0f %%" % (100 * f / y) if f else "")
            ax.text(x, y, txt, ha="center", va="bottom", fontsize=8)
    for i, m in enumerate(models):
        for kind, style in (("one kernel", "-"), ("a kernel per matrix, CUDA graph", ":")):
            f = floors.get(m, {}).get(kind)
            if f:
                ax.hlines(f, i - 0.45, i + 0.45, colors="k", linestyles=style, linewidth=1)
    ax.plot([], [], "k-", linewidth=1, label="floor: read every byte, one kernel")
    ax.plot([], [], "k:", linewidth=1, label="floor: a kernel per matrix, graph")
    ax.set_xticks(range(len(models)))
    ax.set_xticklabels(models)
    ax.set_ylabel("ms per decode step (median), lower is better")
    ax.set_title(a.title)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_ylim(0, max(max(statistics.median(r) for r in d.values()) for d in runs.values()) * 1.3)
    fig.tight_layout()
    fig.savefig(a.out, dpi=120)
    print("wrote %s" % a.out)


if __name__ == "__main__":
    main()
