"""How well does llama.cpp agree with itself? Re-runs the greedy golden protocol of
make_greedy_golden.py (teacher-forced on the golden continuation) with llama.cpp configured
differently only in arithmetic order or precision, and counts the prompts whose 32 greedy tokens
equal tests/golden/greedy_chat50.tsv. This bounds the exact agreement any other implementation
can be expected to reach (see tests/unit/test_model_golden.c).

Run: .venv-ref/bin/python scripts/golden/make_llamacpp_self_agreement.py
     > tests/golden/greedy_llamacpp_self_agreement.txt
"""
import os

import llama_cpp
import numpy as np
from llama_cpp import Llama

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
GOLDEN = os.path.join(ROOT, "tests", "golden", "greedy_chat50.tsv")


def main():
    cases = []
    for line in open(GOLDEN):
        if line.startswith("#"):
            continue
        f = line.rstrip("\n").split("\t")
        cases.append(([int(x) for x in f[1].split()], [int(x) for x in f[2].split()]))
    variants = {
        "prompt fed token by token (n_batch=1)": dict(n_batch=1, n_ubatch=1),
        "f32 KV cache instead of f16": dict(type_k=llama_cpp.GGML_TYPE_F32,
                                            type_v=llama_cpp.GGML_TYPE_F32),
        "1 thread instead of 2": dict(n_threads=1),
    }
    print(f"# llama.cpp self-agreement, llama-cpp-python {llama_cpp.__version__}; "
          f"golden: greedy_chat50.tsv (n_batch=512, 2 threads, f16 KV)")
    print("# variant\texact prompts (of 50)\tagreeing tokens (of 1600)")
    for name, kw in variants.items():
        args = dict(model_path=MODEL, n_ctx=2048, n_threads=2, n_batch=512, verbose=False)
        args.update(kw)
        llm = Llama(**args)
        exact = agree = 0
        for ids, want in cases:
            llm.reset()
            llm.eval(ids)
            got = []
            for k in range(32):
                logits = np.ctypeslib.as_array(
                    llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1), shape=(llm.n_vocab(),))
                got.append(int(np.argmax(logits)))
                llm.eval([want[k]])
            agree += sum(a == b for a, b in zip(got, want))
            exact += got == want
        print(f"{name}\t{exact}\t{agree}", flush=True)


if __name__ == "__main__":
    main()
