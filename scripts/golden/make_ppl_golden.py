#!/usr/bin/env python3
"""Perplexity golden from llama.cpp (via llama-cpp-python).

Tokenizes tests/golden/ppl_text.txt with llama.cpp (add_bos=False,
special=False), splits the ids into consecutive non-overlapping chunks of
CHUNK=512 tokens (the incomplete tail chunk is dropped), evaluates each chunk
from an empty KV cache with logits for every position, and computes in
float64, with a numerically stable log-softmax over the full vocabulary, the
NLL of token t+1 given tokens 0..t for t = 0..CHUNK-2 (all 511 predictions
inside the chunk).  Perplexity = exp(mean NLL over all chunks' predictions).

Output: tests/golden/ppl_smollm2.txt (format documented in its header and in
scripts/golden/README.md).

Usage (from the repo root):
    scripts/golden/setup_ref_venv.sh
    .venv-ref/bin/python scripts/golden/make_ppl_golden.py
"""
import argparse
import math
import os
import sys

import numpy as np
import llama_cpp
from llama_cpp import Llama

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEFAULT_MODEL = os.path.join(REPO, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
DEFAULT_TEXT = os.path.join(REPO, "tests", "golden", "ppl_text.txt")
DEFAULT_OUT = os.path.join(REPO, "tests", "golden", "ppl_smollm2.txt")
CHUNK = 512


def chunk_nll(logits: np.ndarray, ids) -> np.ndarray:
    """logits: [CHUNK, n_vocab] for positions 0..CHUNK-1; returns the NLL of
    ids[t+1] under position t's distribution, t = 0..CHUNK-2, in float64."""
    x = logits[:-1].astype(np.float64)
    m = x.max(axis=1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(x - m).sum(axis=1))
    tgt = np.asarray(ids[1:], dtype=np.int64)
    return lse - x[np.arange(len(tgt)), tgt]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--text", default=DEFAULT_TEXT)
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()

    llm = Llama(
        model_path=args.model,
        n_ctx=2048,
        n_threads=2,
        n_batch=CHUNK,
        logits_all=True,
        seed=0,
        verbose=False,
    )
    n_vocab = llm.n_vocab()

    with open(args.text, "rb") as f:
        text = f.read()
    ids = llm.tokenize(text, add_bos=False, special=False)
    n_tok = len(ids)
    if llm.detokenize(ids) != text:
        print("warning: detokenize(tokenize(text)) != text", file=sys.stderr)
    n_chunks = n_tok // CHUNK
    if n_chunks < 1:
        sys.exit("text too short: %d tokens" % n_tok)
    print("tokens %d, %d chunks of %d, dropping %d tail tokens"
          % (n_tok, n_chunks, CHUNK, n_tok - n_chunks * CHUNK), file=sys.stderr)

    chunk_means = []
    all_nll = []
    for c in range(n_chunks):
        cids = ids[c * CHUNK:(c + 1) * CHUNK]
        llm.reset()  # n_tokens = 0; eval() clears the KV cache from there
        llm.eval(cids)
        assert llm.n_tokens == CHUNK
        logits = np.array(llm.scores[:CHUNK, :n_vocab], dtype=np.float32)
        # last row must equal what llama.cpp itself holds for the last position
        last = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(n_vocab,))
        if not np.array_equal(logits[-1], last):
            sys.exit("scores[] and llama_get_logits_ith(-1) disagree")
        nll = chunk_nll(logits, cids)
        chunk_means.append(float(nll.mean()))
        all_nll.append(nll)
        print("chunk %d: mean nll %.6f ppl %.4f" % (c, nll.mean(), math.exp(nll.mean())),
              file=sys.stderr)

    all_nll = np.concatenate(all_nll)
    mean_nll = float(all_nll.mean())
    ppl = math.exp(mean_nll)
    print("ppl %.6f (mean nll %.6f over %d predictions)" % (ppl, mean_nll, all_nll.size),
          file=sys.stderr)

    with open(args.out, "w", encoding="utf-8") as f:
        f.write("# perplexity golden from llama.cpp via llama-cpp-python %s; model %s; text %s\n"
                % (llama_cpp.__version__, os.path.basename(args.model),
                   os.path.relpath(args.text, REPO)))
        f.write("# regenerate: .venv-ref/bin/python scripts/golden/make_ppl_golden.py\n")
        f.write("# tokenize add_bos=False special=False; chunks of %d consecutive ids, no overlap, "
                "%d tail ids dropped; each chunk from an empty KV cache; NLL of ids[t+1] at "
                "t=0..%d (%d per chunk), float64 log-softmax over full vocab; ppl = exp(mean NLL)\n"
                % (CHUNK, n_tok - n_chunks * CHUNK, CHUNK - 2, CHUNK - 1))
        f.write("# lines: tokens N (all ids of the text), chunk, chunks K, ppl, mean_nll, "
                "chunk_nll <i> <mean NLL of chunk i>, ids <all N ids, incl. the dropped tail>\n")
        f.write("tokens %d\n" % n_tok)
        f.write("chunk %d\n" % CHUNK)
        f.write("chunks %d\n" % n_chunks)
        f.write("ppl %.6f\n" % ppl)
        f.write("mean_nll %.6f\n" % mean_nll)
        for c, m in enumerate(chunk_means):
            f.write("chunk_nll %d %.6f\n" % (c, m))
        f.write("ids %s\n" % " ".join(map(str, ids)))
    print("wrote %s" % args.out, file=sys.stderr)


if __name__ == "__main__":
    main()
