#!/usr/bin/env python3
"""Greedy golden for prompts longer than llama.cpp's 512-token micro-batch.

Prompts are the first L ids of tests/golden/ppl_text.txt (tokenized by llama.cpp,
add_bos=False, special=False) for L in 513, 700 and 1100: llama.cpp evaluates
them as micro-batches of 512 (513 = 512 + a single token, 1100 = 512 + 512 + 76),
then decodes 16 greedy tokens one per step.  tests/e2e/test_device_ggml.py checks
that `sglc serve --device cpu-ggml` returns the same ids.

Output: tests/golden/greedy_long.tsv (columns as greedy_chat50.tsv).
Usage: .venv-ref/bin/python scripts/golden/make_greedy_long_golden.py
"""
import os
import sys

import llama_cpp
from llama_cpp import Llama

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_greedy_golden import DEFAULT_MODEL, REPO, greedy  # noqa: E402

LENGTHS = (513, 700, 1100)
N_GEN = 16


def main() -> None:
    llm = Llama(model_path=DEFAULT_MODEL, n_ctx=2048, n_threads=2, n_batch=512,
                logits_all=False, seed=0, verbose=False)
    with open(os.path.join(REPO, "tests", "golden", "ppl_text.txt"), "rb") as f:
        ids = llm.tokenize(f.read(), add_bos=False, special=False)
    rows = []
    for i, n in enumerate(LENGTHS):
        prompt = ids[:n]
        gen, margins = greedy(llm, prompt, N_GEN)
        rows.append((i, prompt, gen, margins))
        print("[%d] %d prompt tokens, min margin %.4f" % (i, n, min(margins)), file=sys.stderr)
    out = os.path.join(REPO, "tests", "golden", "greedy_long.tsv")
    with open(out, "w", encoding="utf-8") as f:
        f.write("# greedy golden from llama.cpp via llama-cpp-python %s (n_batch=n_ubatch=512); "
                "model %s; prompts: the first %s ids of ppl_text.txt; regenerate: "
                ".venv-ref/bin/python scripts/golden/make_greedy_long_golden.py\n"
                % (llama_cpp.__version__, os.path.basename(DEFAULT_MODEL),
                   "/".join(map(str, LENGTHS))))
        f.write("# columns (TAB-separated): index, prompt ids, %d greedy ids, %d top1-top2 "
                "logit margins (%%.4f)\n" % (N_GEN, N_GEN))
        for i, prompt, gen, margins in rows:
            f.write("%d\t%s\t%s\t%s\n" % (i, " ".join(map(str, prompt)), " ".join(map(str, gen)),
                                          " ".join("%.4f" % m for m in margins)))
    print("wrote %s" % out, file=sys.stderr)


if __name__ == "__main__":
    main()
