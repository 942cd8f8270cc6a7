#!/usr/bin/env python3
"""Greedy-decoding golden outputs from llama.cpp (via llama-cpp-python).

For each user message in tests/golden/prompts_chat50.txt this builds the
ChatML prompt exactly as the model's chat template renders it for a single
user turn (the template injects a default system message when none is given)
plus the generation prompt, tokenizes it with llama.cpp (add_bos=False,
special=True), then runs greedy decoding for exactly N_GEN=32 tokens using
llama.cpp's own forward pass.  Decoding does NOT stop at EOS, so every row
always holds 32 generated ids.  For every step it also records the margin
between the largest and second-largest logit, so a consumer can tell genuine
near-ties from real mismatches.

Output: tests/golden/greedy_chat50.tsv (format documented in its header and
in scripts/golden/README.md).

Usage (from the repo root):
    scripts/golden/setup_ref_venv.sh
    .venv-ref/bin/python scripts/golden/make_greedy_golden.py
"""
import argparse
import ctypes
import os
import sys

import numpy as np
import llama_cpp
from llama_cpp import Llama

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEFAULT_MODEL = os.path.join(REPO, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
DEFAULT_PROMPTS = os.path.join(REPO, "tests", "golden", "prompts_chat50.txt")
DEFAULT_OUT = os.path.join(REPO, "tests", "golden", "greedy_chat50.tsv")
N_GEN = 32
EOS_ID = 2

SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def chatml(msg: str) -> str:
    return (
        "<|im_start|>system\n" + SYSTEM + "<|im_end|>\n"
        "<|im_start|>user\n" + msg + "<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def check_template(llm: Llama, msg: str) -> None:
    """Render the GGUF's own chat template with jinja2 and make sure the
    hand-written ChatML string above is byte-identical."""
    tmpl = llm.metadata.get("tokenizer.chat_template")
    if not tmpl:
        print("warning: model has no chat template; skipping check", file=sys.stderr)
        return
    import jinja2

    rendered = jinja2.Environment().from_string(tmpl).render(
        messages=[{"role": "user", "content": msg}], add_generation_prompt=True
    )
    if rendered != chatml(msg):
        sys.exit("chat template mismatch:\n%r\n%r" % (rendered, chatml(msg)))


def last_logits(llm: Llama) -> np.ndarray:
    """Logits of the last evaluated position, read straight from llama.cpp."""
    n_vocab = llm.n_vocab()
    ptr = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
    a = np.ctypeslib.as_array(ptr, shape=(n_vocab,)).astype(np.float32, copy=True)
    # Cross-check: with logits_all=False only the last position of a batch
    # produces output, so the first row of llama_get_logits() must be it too.
    b = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(n_vocab,))
    if not np.array_equal(a, b):
        sys.exit("logits of last position are ambiguous (ith(-1) != get_logits()[0])")
    return a


def top2(logits: np.ndarray):
    # argmax returns the lowest index among equal maxima (tie-break rule).
    i1 = int(np.argmax(logits))
    l1 = float(logits[i1])
    rest = logits.copy()
    rest[i1] = -np.inf
    l2 = float(rest.max())
    return i1, l1 - l2


def greedy(llm: Llama, ptoks, n_gen: int):
    """From an empty cache: the prompt in one eval (llama.cpp splits it into n_batch
    micro-batches), then n_gen greedy tokens one eval each. Returns (ids, top1-top2 margins)."""
    llm.reset()
    llm.eval(ptoks)
    gen, margins = [], []
    for _ in range(n_gen):
        tok, margin = top2(last_logits(llm))
        gen.append(tok)
        margins.append(margin)
        llm.eval([tok])
    return gen, margins


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--prompts", default=DEFAULT_PROMPTS)
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--show", type=int, default=4, help="print decoded text of the first N results")
    args = ap.parse_args()

    llm = Llama(
        model_path=args.model,
        n_ctx=2048,
        n_threads=2,
        n_batch=512,
        logits_all=False,
        seed=0,
        verbose=False,
    )

    with open(args.prompts, encoding="utf-8") as f:
        msgs = [ln.rstrip("\n") for ln in f if ln.strip()]
    check_template(llm, msgs[0])

    rows = []
    for idx, msg in enumerate(msgs):
        prompt = chatml(msg)
        ptoks = llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        gen, margins = greedy(llm, ptoks, N_GEN)
        rows.append((idx, ptoks, gen, margins))
        eos_at = gen.index(EOS_ID) if EOS_ID in gen else -1
        print(
            "[%2d] prompt %3d tok, eos at %3s, min margin %.4f"
            % (idx, len(ptoks), eos_at if eos_at >= 0 else "-", min(margins)),
            file=sys.stderr,
        )
        if idx < args.show:
            upto = gen[: eos_at + 1] if eos_at >= 0 else gen
            text = llm.detokenize(upto, special=True).decode("utf-8", "replace")
            print("     user: %s\n     asst: %r" % (msg, text), file=sys.stderr)

    with open(args.out, "w", encoding="utf-8") as f:
        f.write(
            "# greedy golden from llama.cpp via llama-cpp-python %s; model %s; "
            "regenerate: .venv-ref/bin/python scripts/golden/make_greedy_golden.py\n"
            % (llama_cpp.__version__, os.path.basename(args.model))
        )
        f.write(
            "# columns (TAB-separated): index, prompt ids, %d greedy ids (no stop at eos=%d), "
            "%d top1-top2 logit margins (%%.4f)\n" % (N_GEN, EOS_ID, N_GEN)
        )
        for idx, ptoks, gen, margins in rows:
            f.write(
                "%d\t%s\t%s\t%s\n"
                % (
                    idx,
                    " ".join(map(str, ptoks)),
                    " ".join(map(str, gen)),
                    " ".join("%.4f" % m for m in margins),
                )
            )
    print("wrote %s (%d rows)" % (args.out, len(rows)), file=sys.stderr)


if __name__ == "__main__":
    main()
