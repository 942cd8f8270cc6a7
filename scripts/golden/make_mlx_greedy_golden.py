#!/usr/bin/env python3
"""Greedy-decoding golden outputs from mlx-lm for MLX-quantized folders of the default model.

For each row of tests/golden/greedy_chat50.tsv this takes the same prompt token ids (the
chat-templated prompts of prompts_chat50.txt), runs mlx-lm's own forward pass of the folder
(made by `mlx_lm convert -q --q-bits B --q-group-size 64` from models/SmolLM2-135M-Instruct-hf)
and records 32 greedy tokens (no stop at EOS) and each step's top1 - top2 logit margin, the
same columns as greedy_chat50.tsv. This is what `mlx_lm.generate` with the default (greedy)
sampler produces, without the EOS stop.

Usage (repo root, mlx venv from `pip install "mlx[cpu]" mlx-lm`):
  python -m mlx_lm convert --hf-path models/SmolLM2-135M-Instruct-hf \\
      --mlx-path models/SmolLM2-135M-Instruct-mlx-q4 -q --q-bits 4 --q-group-size 64
  /tmp/mlxvenv/bin/python scripts/golden/make_mlx_greedy_golden.py 4 [N_PROMPTS]
"""
import os
import sys

import mlx.core as mx
import mlx_lm
from mlx_lm import load
from mlx_lm.models.cache import make_prompt_cache

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
N_GEN = 32


def main():
    bits = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    limit = int(sys.argv[2]) if len(sys.argv) > 2 else 50  # prompts to run (rows flush as written)
    model_dir = os.path.join(REPO, "models", f"SmolLM2-135M-Instruct-mlx-q{bits}")
    model, _ = load(model_dir)
    rows = []
    with open(os.path.join(REPO, "tests", "golden", "greedy_chat50.tsv")) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            cols = line.rstrip("\n").split("\t")
            rows.append((cols[0], [int(t) for t in cols[1].split()]))
    rows = rows[:limit]
    out = os.path.join(REPO, "tests", "golden", f"greedy_mlx_q{bits}.tsv")
    with open(out, "w") as f:
        f.write(f"# greedy golden from mlx-lm {mlx_lm.__version__} / mlx {mx.__version__} (CPU); "
                f"model: mlx_lm convert -q --q-bits {bits} --q-group-size 64 of "
                "SmolLM2-135M-Instruct-hf; regenerate: scripts/golden/make_mlx_greedy_golden.py\n")
        f.write("# columns (TAB-separated): index, prompt ids, 32 greedy ids (no stop at eos), "
                "32 top1-top2 logit margins (%.4f)\n")
        for idx, ids in rows:
            cache = make_prompt_cache(model)
            logits = model(mx.array(ids)[None], cache=cache)[0, -1].astype(mx.float32)
            gen, margins = [], []
            for _ in range(N_GEN):
                top2 = mx.topk(logits, 2)
                mx.eval(top2, logits)
                tok = int(mx.argmax(logits).item())
                t2 = sorted(top2.tolist(), reverse=True)
                gen.append(tok)
                margins.append(t2[0] - t2[1])
                logits = model(mx.array([[tok]]), cache=cache)[0, -1].astype(mx.float32)
            f.write("\t".join([idx, " ".join(map(str, ids)), " ".join(map(str, gen)),
                               " ".join("%.4f" % m for m in margins)]) + "\n")
            f.flush()
    print("wrote", out)


if __name__ == "__main__":
    main()
