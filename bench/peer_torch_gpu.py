"""PyTorch / transformers peer on the GPU machine (issue 15): batch-1 decode of an HF folder,
the same workload as `sglc bench_one_batch --batch-size 1 --input-len 512 --output-len 128`.

  python3 bench/peer_torch_gpu.py MODEL_DIR [--runs 5] [--dtype bfloat16] [--static]

Eager: model.generate with the default dynamic cache, greedy, min/max_new_tokens = 128 so
every run decodes exactly 128 tokens; decode time = total - the time of a 1-token generate
from the same prompt (the prefill). --static adds the static KV cache with torch.compile
(mode "reduce-overhead", i.e. CUDA graphs), transformers' documented fast path; its first
runs compile and are not counted. Prints one JSON line per mode with the median of the runs.
Random prompt ids (fixed seed) as bench_one_batch uses.
"""
import argparse
import json
import statistics
import time

import torch
from transformers import AutoModelForCausalLM


def timed_generate(model, ids, n_new, **kw):
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n_new,
                   min_new_tokens=n_new, do_sample=False, pad_token_id=0, **kw)
    torch.cuda.synchronize()
    return time.perf_counter() - t0


def run_mode(model, ids, args, label, **kw):
    warm = 3 if kw else 1
    for _ in range(warm):
        timed_generate(model, ids, args.output_len, **kw)
    pre, tot = [], []
    for _ in range(args.runs):
        pre.append(timed_generate(model, ids, 1, **kw))
        tot.append(timed_generate(model, ids, args.output_len, **kw))
    p, t = statistics.median(pre), statistics.median(tot)
    dec = (t - p) / (args.output_len - 1)
    print(json.dumps({"peer": "transformers", "mode": label, "model": args.model,
                      "input_len": args.input_len, "output_len": args.output_len,
                      "runs": args.runs, "prefill_s": round(p, 5),
                      "decode_ms_per_token": round(dec * 1e3, 4),
                      "decode_tok_s": round(1.0 / dec, 1),
                      "torch": torch.__version__}), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--input-len", type=int, default=512)
    ap.add_argument("--output-len", type=int, default=128)
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--static", action="store_true")
    args = ap.parse_args()
    dtype = getattr(torch, args.dtype)
    model = AutoModelForCausalLM.from_pretrained(args.model, torch_dtype=dtype).cuda().eval()
    g = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size
    ids = torch.randint(0, vocab, (1, args.input_len), generator=g).cuda()
    with torch.inference_mode():
        run_mode(model, ids, args, "eager")
        if args.static:
            model.forward = torch.compile(model.forward, mode="reduce-overhead", fullgraph=True)
            run_mode(model, ids, args, "static+compile", cache_implementation="static")


if __name__ == "__main__":
    main()
