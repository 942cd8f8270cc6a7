#!/usr/bin/env python3
"""Convert a llama-architecture GGUF (default: models/SmolLM2-135M-Instruct.Q4_1.gguf) into a
Hugging Face model folder (default: models/SmolLM2-135M-Instruct-hf/), for the HF-format tests.

What it writes:
  model.safetensors       every tensor dequantized (gguf.quants.dequantize) and stored as float32:
                          the Q4_1/Q8_0 values are exactly representable in float32, so the folder
                          computes the same function as the GGUF, with no extra rounding (bf16
                          would round the dequantized values again; the cost is ~540 MB)
                          attn_q/attn_k are un-permuted: llama.cpp's converter reorders their rows
                          so that adjacent pairs rotate (rope "norm"); HF keeps the half-split
                          layout that neox-style rope expects
  config.json             LlamaForCausalLM from the llama.* metadata; tie_word_embeddings true when
                          the GGUF has no output.weight
  generation_config.json  bos/eos
  tokenizer.json          byte-level BPE built with the `tokenizers` library from the GGUF vocab and
                          merges; pre-tokenizer = llama.cpp's "smollm" (starcoder) split regexes,
                          i.e. Digits(individual) + ByteLevel(GPT-2 regex); control and
                          user-defined tokens become added special tokens
  tokenizer_config.json   chat_template, bos/eos/unk/pad, add_bos_token false

Checks (always): the tokenizer's ids equal llama.cpp's for every string of
tests/golden/tokenizer_smollm2.tsv (both special-token modes). With --verify (needs torch and
transformers): transformers loads the folder, its tokenizer agrees too, and greedy decoding of a
chat prompt ("What is the capital of France?") is printed and must mention Paris.

The conversion is idempotent: with the folder complete and newer than the GGUF it does nothing
(--force redoes it). Needs numpy, gguf, safetensors, tokenizers (no torch); see
scripts/make_default_hf.sh.
"""
import argparse
import json
import os
import sys

import numpy as np

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
DEFAULT_GGUF = os.path.join(REPO, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
DEFAULT_OUT = os.path.join(REPO, "models", "SmolLM2-135M-Instruct-hf")
FILES = ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
         "tokenizer_config.json"]

# llama.cpp's "smollm" pre-tokenizer (llama-vocab.cpp, the starcoder family): digits one by one,
# then the GPT-2 split; ByteLevel(use_regex=True) applies exactly that GPT-2 regex.
PRE_TOKENIZERS = ("smollm", "starcoder", "refact", "codeshell")

TOKEN_TYPE_CONTROL = 3
TOKEN_TYPE_USER_DEFINED = 4


def field(reader, key, default=None):
    f = reader.fields.get(key)
    return f.contents() if f is not None else default


def unpermute(w, n_head):
    """Inverse of llama.cpp's LlamaModel.permute (rows of each head interleaved pairwise)."""
    rows = w.shape[0]
    return (w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape))


def hf_name(name):
    if name == "token_embd.weight":
        return "model.embed_tokens.weight"
    if name == "output_norm.weight":
        return "model.norm.weight"
    if name == "output.weight":
        return "lm_head.weight"
    parts = name.split(".")
    if parts[0] != "blk":
        raise SystemExit("unexpected tensor %s" % name)
    sub = {
        "attn_norm": "input_layernorm",
        "attn_q": "self_attn.q_proj",
        "attn_k": "self_attn.k_proj",
        "attn_v": "self_attn.v_proj",
        "attn_output": "self_attn.o_proj",
        "ffn_norm": "post_attention_layernorm",
        "ffn_gate": "mlp.gate_proj",
        "ffn_up": "mlp.up_proj",
        "ffn_down": "mlp.down_proj",
    }[parts[2]]
    return "model.layers.%s.%s.%s" % (parts[1], sub, parts[3])


def convert_weights(reader, out_dir):
    import gguf
    from safetensors.numpy import save_file

    arch = field(reader, "general.architecture")
    if arch != "llama":
        raise SystemExit("only llama GGUFs are supported, got %r" % arch)
    n_head = int(field(reader, "llama.attention.head_count"))
    n_head_kv = int(field(reader, "llama.attention.head_count_kv", n_head))
    tensors = {}
    for t in reader.tensors:
        w = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        # GGUF dims are fastest-first; numpy (and HF) shapes slowest-first
        w = w.reshape([int(x) for x in reversed(t.shape)]) if len(t.shape) > 1 else w.reshape(-1)
        if t.name.endswith("attn_q.weight"):
            w = unpermute(w, n_head)
        elif t.name.endswith("attn_k.weight"):
            w = unpermute(w, n_head_kv)
        tensors[hf_name(t.name)] = np.ascontiguousarray(w)
    save_file(tensors, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
    return "lm_head.weight" not in tensors, tensors["model.embed_tokens.weight"].shape[0]


def write_config(reader, out_dir, tied, n_vocab):
    n_embd = int(field(reader, "llama.embedding_length"))
    n_head = int(field(reader, "llama.attention.head_count"))
    head_dim = int(field(reader, "llama.rope.dimension_count", n_embd // n_head))
    eps = float(field(reader, "llama.attention.layer_norm_rms_epsilon", 1e-5))
    bos = int(field(reader, "tokenizer.ggml.bos_token_id", 1))
    eos = int(field(reader, "tokenizer.ggml.eos_token_id", 2))
    cfg = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": n_embd,
        "intermediate_size": int(field(reader, "llama.feed_forward_length")),
        "num_hidden_layers": int(field(reader, "llama.block_count")),
        "num_attention_heads": n_head,
        "num_key_value_heads": int(field(reader, "llama.attention.head_count_kv", n_head)),
        "head_dim": head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": int(field(reader, "llama.context_length", 2048)),
        # the GGUF stores 1e-5 as float32; write the decimal the model was trained with
        "rms_norm_eps": float("%.6g" % eps),
        "rope_theta": float(field(reader, "llama.rope.freq_base", 10000.0)),
        "rope_scaling": None,
        "attention_bias": False,
        "mlp_bias": False,
        "tie_word_embeddings": bool(tied),
        "vocab_size": int(n_vocab),
        "bos_token_id": bos,
        "eos_token_id": eos,
        "pad_token_id": int(field(reader, "tokenizer.ggml.padding_token_id", eos)),
        "torch_dtype": "float32",
    }
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    with open(os.path.join(out_dir, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": bos, "eos_token_id": eos,
                   "pad_token_id": cfg["pad_token_id"]}, f, indent=2)


def build_tokenizer(reader):
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

    if field(reader, "tokenizer.ggml.model") != "gpt2":
        raise SystemExit("only byte-level BPE (tokenizer.ggml.model = gpt2) vocabularies")
    pre = field(reader, "tokenizer.ggml.pre", "default")
    if pre not in PRE_TOKENIZERS:
        raise SystemExit("pre-tokenizer %r: only %s are mapped" % (pre, ", ".join(PRE_TOKENIZERS)))
    tokens = field(reader, "tokenizer.ggml.tokens")
    types = field(reader, "tokenizer.ggml.token_type")
    merges = [tuple(m.split(" ", 1)) for m in field(reader, "tokenizer.ggml.merges")]
    vocab = {t: i for i, t in enumerate(tokens)}
    if len(vocab) != len(tokens):
        raise SystemExit("duplicate tokens in the GGUF vocab")
    unk = field(reader, "tokenizer.ggml.unknown_token_id")
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False,
                               unk_token=tokens[unk] if unk is not None else None))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    tok.post_processor = processors.ByteLevel(add_prefix_space=True, trim_offsets=False,
                                              use_regex=True)
    special = [i for i, ty in enumerate(types) if ty in (TOKEN_TYPE_CONTROL, TOKEN_TYPE_USER_DEFINED)]
    tok.add_special_tokens([AddedToken(tokens[i], special=True, normalized=False)
                            for i in special])
    for i in special:
        assert tok.token_to_id(tokens[i]) == i, tokens[i]
    return tok, tokens, special


def write_tokenizer(reader, out_dir):
    tok, tokens, special = build_tokenizer(reader)
    tok.save(os.path.join(out_dir, "tokenizer.json"))
    bos = int(field(reader, "tokenizer.ggml.bos_token_id", 1))
    eos = int(field(reader, "tokenizer.ggml.eos_token_id", 2))
    unk = field(reader, "tokenizer.ggml.unknown_token_id")
    pad = field(reader, "tokenizer.ggml.padding_token_id", eos)
    tc = {
        "add_bos_token": bool(field(reader, "tokenizer.ggml.add_bos_token", False)),
        "add_eos_token": False,
        "add_prefix_space": False,
        "bos_token": tokens[bos],
        "eos_token": tokens[eos],
        "pad_token": tokens[int(pad)],
        "unk_token": tokens[int(unk)] if unk is not None else None,
        "additional_special_tokens": [tokens[i] for i in special
                                      if i not in (bos, eos, unk, pad)],
        "chat_template": field(reader, "tokenizer.chat_template"),
        "clean_up_tokenization_spaces": False,
        "model_max_length": int(field(reader, "llama.context_length", 2048)),
        "tokenizer_class": "GPT2Tokenizer",
        "added_tokens_decoder": {
            str(i): {"content": tokens[i], "lstrip": False, "normalized": False,
                     "rstrip": False, "single_word": False, "special": True}
            for i in special
        },
    }
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump(tc, f, indent=2, ensure_ascii=False)


def check_tokenizer_against_llama_cpp(out_dir, golden):
    """Every string of the llama.cpp tokenizer golden must tokenize to the same ids."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(os.path.join(out_dir, "tokenizer.json"))
    n = bad = skipped = 0
    with open(golden) as f:
        for line in f:
            if line.startswith("#"):
                continue
            cols = line.rstrip("\n").split("\t")
            mode, ids = cols[0], cols[2]
            try:
                text = bytes.fromhex(cols[1]).decode("utf-8")
            except UnicodeDecodeError:
                skipped += 1  # invalid UTF-8 cannot reach HF tokenizers (they take str)
                continue
            want = [] if ids == "-" else [int(x) for x in ids.split()]
            # S: markup becomes special tokens; P: special-token text is plain text
            tok.encode_special_tokens = mode != "S"
            got = tok.encode(text, add_special_tokens=False).ids
            n += 1
            if got != want:
                bad += 1
                if bad <= 5:
                    print("tokenizer mismatch (%s) %r:\n  hf  %s\n  gguf %s" % (mode, text[:80],
                                                                             got[:20], want[:20]))
    print("tokenizer.json vs llama.cpp: %d/%d strings tokenize identically (%d invalid UTF-8 "
          "strings skipped)" % (n - bad, n, skipped))
    return bad == 0


def verify_with_transformers(out_dir):
    import torch
    import transformers

    tok = transformers.AutoTokenizer.from_pretrained(out_dir)
    model = transformers.AutoModelForCausalLM.from_pretrained(out_dir, dtype=torch.float32)
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    ids = tok(text, add_special_tokens=False, return_tensors="pt").input_ids
    print("chat prompt ids:", ids[0].tolist())
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=24, do_sample=False)
    reply = tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
    print("transformers greedy reply: %r" % reply)
    if "Paris" not in reply:
        raise SystemExit("converted model's reply does not mention Paris: conversion is broken")


def up_to_date(gguf_path, out_dir):
    paths = [os.path.join(out_dir, f) for f in FILES]
    if not all(os.path.exists(p) for p in paths):
        return False
    return min(os.path.getmtime(p) for p in paths) >= os.path.getmtime(gguf_path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gguf", default=DEFAULT_GGUF)
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--force", action="store_true", help="convert even when up to date")
    ap.add_argument("--verify", action="store_true",
                    help="also load with transformers (needs torch) and generate")
    args = ap.parse_args()
    golden = os.path.join(REPO, "tests", "golden", "tokenizer_smollm2.tsv")
    if not args.force and up_to_date(args.gguf, args.out):
        print("%s is up to date" % args.out)
    else:
        import gguf

        reader = gguf.GGUFReader(args.gguf)
        tmp = args.out + ".tmp"
        os.makedirs(tmp, exist_ok=True)
        tied, n_vocab = convert_weights(reader, tmp)
        write_config(reader, tmp, tied, n_vocab)
        write_tokenizer(reader, tmp)
        if os.path.isdir(args.out):
            for f in os.listdir(args.out):
                os.remove(os.path.join(args.out, f))
            os.rmdir(args.out)
        os.rename(tmp, args.out)  # a half-written folder never looks complete
        print("wrote %s" % args.out)
    ok = True
    if os.path.exists(golden) and os.path.basename(args.gguf).startswith("SmolLM2"):
        ok = check_tokenizer_against_llama_cpp(args.out, golden)
    if args.verify:
        verify_with_transformers(args.out)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
