#!/usr/bin/env python3
"""Bit-level fingerprints of llama.cpp's logits, for the cpu-ggml device.

Runs the first N prompts of tests/golden/prompts_chat50.txt exactly as
make_greedy_golden.py does (ChatML prompt evaluated in one batch, then greedy
decoding one token per step, n_batch=512, 2 threads, f16 KV cache, no flash
attention) and records, for every one of the 32 steps, the 64-bit FNV-1a hash
of the raw little-endian float32 logits llama.cpp returned.  Equal hashes mean
bit-identical logits over the whole vocabulary; tests/unit/test_model_golden.c
hashes the cpu-ggml device's logits the same way.

Output: tests/golden/logits_fnv_chat8.tsv
Usage (from the repo root):
    scripts/golden/setup_ref_venv.sh
    .venv-ref/bin/python scripts/golden/make_logits_digest_golden.py
"""
import argparse
import os
import sys

import numpy as np
import llama_cpp
from llama_cpp import Llama

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_greedy_golden import DEFAULT_MODEL, DEFAULT_PROMPTS, N_GEN, REPO, chatml, last_logits  # noqa: E402

DEFAULT_OUT = os.path.join(REPO, "tests", "golden", "logits_fnv_chat8.tsv")


def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--prompts", default=DEFAULT_PROMPTS)
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--n", type=int, default=8, help="number of prompts")
    args = ap.parse_args()

    llm = Llama(model_path=args.model, n_ctx=2048, n_threads=2, n_batch=512,
                logits_all=False, seed=0, verbose=False)
    with open(args.prompts, encoding="utf-8") as f:
        msgs = [ln.rstrip("\n") for ln in f if ln.strip()][: args.n]
    rows = []
    for idx, msg in enumerate(msgs):
        ptoks = llm.tokenize(chatml(msg).encode("utf-8"), add_bos=False, special=True)
        llm.reset()
        llm.eval(ptoks)
        gen, hashes = [], []
        for _ in range(N_GEN):
            logits = last_logits(llm)
            hashes.append(fnv1a64(logits.astype("<f4").tobytes()))
            tok = int(np.argmax(logits))
            gen.append(tok)
            llm.eval([tok])
        rows.append((idx, gen, hashes))
        print("[%d] %d prompt tokens" % (idx, len(ptoks)), file=sys.stderr)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write("# FNV-1a 64 of llama.cpp's float32 logits (little-endian bytes) at each greedy step; "
                "llama-cpp-python %s; model %s; regenerate: .venv-ref/bin/python "
                "scripts/golden/make_logits_digest_golden.py\n"
                % (llama_cpp.__version__, os.path.basename(args.model)))
        f.write("# columns (TAB-separated): prompt index in prompts_chat50.txt, %d greedy ids, "
                "%d hashes (16 hex digits)\n" % (N_GEN, N_GEN))
        for idx, gen, hashes in rows:
            f.write("%d\t%s\t%s\n" % (idx, " ".join(map(str, gen)),
                                      " ".join("%016x" % h for h in hashes)))
    print("wrote %s (%d rows)" % (args.out, len(rows)), file=sys.stderr)


if __name__ == "__main__":
    main()
