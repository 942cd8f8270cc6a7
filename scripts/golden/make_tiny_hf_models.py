#!/usr/bin/env python3
"""Tiny random-weight Hugging Face checkpoints and their golden logits.

For each architecture sglc loads from HF folders this builds a tiny model with transformers
(fixed torch seed), saves it with save_pretrained(safe_serialization=True) and writes the full
float32 logits of every position of three fixed prompts, computed by transformers itself (eager
attention, float32), to logits.txt. tests/unit/test_hf_model.c loads each folder with
sglc_model_open and compares.

  tests/golden/tiny_llama/     LlamaForCausalLM, Llama-3 rope scaling ("llama3"), untied lm_head
  tests/golden/tiny_qwen2/     Qwen2ForCausalLM, q/k/v bias, tied embeddings
  tests/golden/tiny_qwen3/     Qwen3ForCausalLM, per-head q_norm/k_norm, head_dim (24) != hidden/heads
  tests/golden/tiny_llama_bf16/ the tiny_llama weights saved in bfloat16 (norms too); its logits
                               are transformers' float32 forward of the bf16-rounded weights

Sizes: hidden 64, 2 layers, 4 heads, 2 kv heads, intermediate 64, vocab 128, so each folder stays
under 300 KB (vocab 128 rather than 256 for that reason).

logits.txt format: '#' comment lines, then for each prompt a line "prompt N id1 ... idN" followed
by N lines of vocab_size floats (%.9g: exact float32), one line per position.

Environment (any venv with these works; the fixtures were made with torch 2.x, transformers 5.x):
    python3 -m venv /tmp/hfvenv
    /tmp/hfvenv/bin/pip install torch --index-url https://download.pytorch.org/whl/cpu
    /tmp/hfvenv/bin/pip install transformers safetensors numpy
    /tmp/hfvenv/bin/python scripts/golden/make_tiny_hf_models.py
"""
import json
import os
import shutil

import numpy as np
import torch
import transformers

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(REPO, "tests", "golden")

VOCAB = 128
COMMON = dict(
    vocab_size=VOCAB,
    hidden_size=64,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=256,
    rms_norm_eps=1e-6,
    bos_token_id=1,
    eos_token_id=2,
    hidden_act="silu",
)


def prompts():
    g = np.random.default_rng(1234)
    return [[int(x) for x in g.integers(0, VOCAB, size=n)] for n in (1, 7, 23)]


def configs():
    llama = transformers.LlamaConfig(
        **COMMON,
        tie_word_embeddings=False,
        attention_bias=False,
        rope_theta=10000.0,
        # original context 32 puts the 8 rotary pairs of head_dim 16 into all three bands
        # (high, medium, low frequency), so a wrong factor shows in the logits
        rope_scaling={
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 32,
        },
    )
    qwen2 = transformers.Qwen2Config(**COMMON, tie_word_embeddings=True, rope_theta=1000000.0,
                                     use_sliding_window=False)
    qwen3 = transformers.Qwen3Config(**dict(COMMON, eos_token_id=[2, 3]), head_dim=24,
                                     tie_word_embeddings=True, rope_theta=1000000.0,
                                     attention_bias=False, use_sliding_window=False)
    return {
        "llama": (llama, transformers.LlamaForCausalLM),
        "qwen2": (qwen2, transformers.Qwen2ForCausalLM),
        "qwen3": (qwen3, transformers.Qwen3ForCausalLM),
    }


def randomize(model, seed):
    """Random weights of a scale that keeps activations O(1); norms away from 1 so a missing
    norm weight shows; biases nonzero so a missing bias shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.5 * torch.rand(p.shape, generator=g) - 0.25)
            elif name.endswith(".bias"):
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            else:
                fan_in = p.shape[-1]
                p.copy_(torch.randn(p.shape, generator=g) / fan_in**0.5)


def write_logits(model, path, header):
    model.eval()
    with open(path, "w") as f:
        f.write("# " + header + "\n")
        f.write("# made by scripts/golden/make_tiny_hf_models.py: transformers %s, torch %s, "
                "float32, eager attention\n" % (transformers.__version__, torch.__version__))
        for ids in prompts():
            with torch.no_grad():
                out = model(torch.tensor([ids]), use_cache=False).logits[0].float().numpy()
            f.write("prompt %d %s\n" % (len(ids), " ".join(str(i) for i in ids)))
            for row in out:
                f.write(" ".join("%.9g" % v for v in row) + "\n")


def save(model, d):
    if os.path.isdir(d):
        shutil.rmtree(d)
    model.save_pretrained(d, safe_serialization=True)
    size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
    print("%s: %d bytes in %s" % (d, size, sorted(os.listdir(d))))
    assert os.path.getsize(os.path.join(d, "model.safetensors")) < 300 * 1024


def to_legacy_config(d, model, cls):
    """transformers 5 writes rope_parameters and dtype; hub checkpoints (Llama 3.x among them)
    carry the older rope_theta, rope_scaling and torch_dtype keys. Rewrite tiny_llama's config
    in that older form so both spellings are covered, and check transformers reads it back to
    the same logits."""
    p = os.path.join(d, "config.json")
    with open(p) as f:
        c = json.load(f)
    rp = c.pop("rope_parameters")
    c["rope_theta"] = rp.pop("rope_theta")
    c["rope_scaling"] = rp
    c["torch_dtype"] = c.pop("dtype")
    with open(p, "w") as f:
        json.dump(c, f, indent=2, sort_keys=True)
    back = cls.from_pretrained(d, attn_implementation="eager", dtype=torch.float32)
    ids = torch.tensor([prompts()[2]])
    with torch.no_grad():
        a = model(ids, use_cache=False).logits
        b = back(ids, use_cache=False).logits
    assert torch.equal(a, b), "legacy config does not reload to the same model"


def main():
    torch.manual_seed(0)
    for i, (arch, (cfg, cls)) in enumerate(configs().items()):
        model = cls._from_config(cfg, attn_implementation="eager", dtype=torch.float32)
        randomize(model, 100 + i)
        d = os.path.join(OUT, "tiny_" + arch)
        save(model, d)
        if arch == "llama":
            to_legacy_config(d, model, cls)
        write_logits(model, os.path.join(d, "logits.txt"), "tiny_%s float32 logits" % arch)
        if arch == "llama":
            # reference: a float32 model holding the bf16-rounded weights (not bf.to(float32):
            # .to(bfloat16) would also round the rotary inv_freq buffer, which a fresh load
            # recomputes in float32)
            ref = cls._from_config(cfg, attn_implementation="eager", dtype=torch.float32)
            ref.load_state_dict({k: v.to(torch.bfloat16).to(torch.float32)
                                 for k, v in model.state_dict().items()})
            bf = cls._from_config(cfg, attn_implementation="eager", dtype=torch.float32)
            bf.load_state_dict(ref.state_dict())
            bf = bf.to(torch.bfloat16)
            d = os.path.join(OUT, "tiny_llama_bf16")
            save(bf, d)
            to_legacy_config(d, ref, cls)
            write_logits(ref, os.path.join(d, "logits.txt"),
                         "tiny_llama_bf16: float32 forward of the bfloat16-rounded weights")
    for arch in ("llama", "qwen2", "qwen3", "llama_bf16"):
        with open(os.path.join(OUT, "tiny_" + arch, "config.json")) as f:
            print(arch, json.dumps(json.load(f), sort_keys=True)[:2000])


if __name__ == "__main__":
    main()
