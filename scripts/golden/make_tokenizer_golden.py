#!/usr/bin/env python3
# Rerun: source /tmp/refvenv/bin/activate (pip install llama-cpp-python gguf) && python3 scripts/golden/make_tokenizer_golden.py [model.gguf]
"""Golden tokenizer cases from llama.cpp (through llama-cpp-python), the independent reference
for tests/unit/test_tokenizer.c.

Generates a deterministic set of test strings (fixed seed), tokenizes each with
llama_cpp.Llama(vocab_only=True).tokenize(text, add_bos=False, special=...) and records
llama.cpp's detokenization of the ids with special tokens rendered and with them dropped.

Output (tests/golden/tokenizer_smollm2.tsv), one case per line, tab separated:
    mode   S = special=True (markup like <|im_start|> becomes the special token),
           P = special=False (markup is plain text)
    text   hex of the UTF-8 (sometimes deliberately invalid) input bytes
    ids    space-separated token ids ("-" when there are none)
    detok  hex of llama.cpp's detokenize(ids, special=True), "=" when equal to text
    detok0 hex of detokenize(ids, special=False), "=" when equal to detok
Lines starting with '#' are comments.

It also writes tests/golden/tokenizer_smollm2_<pre>.tsv for other tokenizer.ggml.pre values
(a subset of the strings, special=True): the same vocab is copied into a tensor-less GGUF whose
pre key is replaced, so llama.cpp runs that pre-tokenizer (and its clean_spaces/ignore_merges
flags) over the SmolLM2 vocab; the C test does the same through sglc_tokenizer_open_gguf_pre.
"""
import ctypes
import random
import sys

import llama_cpp

MODEL = sys.argv[1] if len(sys.argv) > 1 else "models/SmolLM2-135M-Instruct.Q4_1.gguf"
OUT = "tests/golden/tokenizer_smollm2.tsv"
OTHER_PRES = ["llama-bpe", "qwen2", "gpt-2", "default", "starcoder"]

rng = random.Random(20240611)

PROSE = [
    "The quick brown fox jumps over the lazy dog.",
    "It was the best of times, it was the worst of times, it was the age of wisdom.",
    "In 1969, Apollo 11 landed on the Moon; Neil Armstrong stepped out at 02:56 UTC.",
    "Hello, world! How are you doing today? I'm fine, thanks.",
    "She said: \"Don't worry -- we'll be there by 10:30 a.m.\"",
    "Machine learning models are trained on large datasets (often terabytes in size).",
    "E-mail me at someone@example.com or visit https://example.org/path?q=1&r=2#frag.",
    "Prices rose 3.5% in Q2 2023, up from 2.1% -- the highest since 1998.",
    "To be, or not to be, that is the question:",
    "Whether 'tis nobler in the mind to suffer the slings and arrows of outrageous fortune.",
    "A man, a plan, a canal: Panama!",
    "Supercalifragilisticexpialidocious is a very long word.",
    "THE END. ALL CAPS TEXT IS SHOUTING, ISN'T IT?",
    "camelCaseIdentifier snake_case_identifier kebab-case-identifier PascalCase",
    "Mr. O'Neil's dog's bone -- the dogs' bones; rock 'n' roll.",
]

CODE = [
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "#include <stdio.h>\n\nint main(void) {\n\tprintf(\"hello %d\\n\", 42);\n\treturn 0;\n}\n",
    "fn main() {\n    let v: Vec<u32> = (0..10).map(|x| x * x).collect();\n    println!(\"{:?}\", v);\n}\n",
    "const add = (a, b) => a + b;\nconsole.log(`sum=${add(1, 2)}`);\n",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC LIMIT 10;",
    "<html>\n  <body>\n    <div class=\"x\">&nbsp;&lt;tag&gt;</div>\n  </body>\n</html>\n",
    "package main\n\nimport \"fmt\"\n\nfunc main() {\n\tfmt.Println(\"hi\")\n}\n",
    "for i in $(seq 1 10); do echo \"$i\"; done | grep -v 5 > /dev/null 2>&1",
    "{\"key\": [1, 2.5, -3e10, true, null], \"nested\": {\"a\": \"b\"}}",
    "    x = [i**2 for i in range(100) if i % 3 == 0]  # comment\n",
    "public static void main(String[] args) { System.out.println(args.length); }",
    "a += b; c -= d; e *= f; g /= h; i %= j; k <<= 1; l >>= 2; m &&= n; o ||= p;",
    "x=>{return x!==null&&x!==undefined?x:0}",
    "\\begin{equation} E = mc^2 \\end{equation}",
    "matrix[i][j] = (a[i] * b[j]) % MOD; // ???!!!...",
]

UNICODE = [
    "café naïve résumé façade coöperate Ångström señor",
    "Ελληνικά: Καλημέρα κόσμε, τι κάνεις;",
    "Русский текст: Привет, мир! Как дела? Ёжик.",
    "中文：你好，世界！今天天气很好。",
    "日本語：こんにちは世界。カタカナとひらがな、漢字。",
    "한국어: 안녕하세요 세계! 반갑습니다.",
    "العربية: مرحبا بالعالم! كيف حالك؟",
    "עברית: שלום עולם",
    "हिन्दी: नमस्ते दुनिया",
    "ไทย: สวัสดีชาวโลก",
    "Tiếng Việt: Xin chào thế giới, tôi là người Việt Nam.",
    "emoji: 😀😃😄 👍🏽 👩‍💻 👨‍👩‍👧‍👦 🏳️‍🌈 ❤️ 🇺🇸🇯🇵",
    "math: ∀x∈ℝ, ∃y: x² + y² ≥ 0 ∑∫∂√∞ ≠ ≈ ±",
    "combining: e\u0301 a\u0300 o\u0308 n\u0303 (decomposed accents)",
    "full-width: ＡＢＣ１２３！？ and ideographic space:\u3000end",
    "nbsp:\u00a0here, nel:\u0085there, thin\u2009space, zwsp\u200bjoin, line\u2028sep",
    "numbers: ١٢٣ ४५६ ½ ¾ ⅓ Ⅻ ⑤ ²³",
    "currency: $100 €200 £300 ¥400 ₹500 ₿0.01",
    "quotes: “smart” ‘single’ «guillemets» „German“",
    "box: ┌─┐│ │└─┘ arrows: ← ↑ → ↓ ⇒",
]

EMOJI = ["😀", "👍", "👍🏻", "👍🏿", "👩‍💻", "👨‍👩‍👧", "🏳️‍🌈", "🇩🇪", "❤️", "🤖", "🦀", "🧑🏾‍🚀", "✨", "🔥", "🫠"]
WORDS = ("the of and to in is you that it he was for on are as with his they I at be this have "
         "from or one had by word but not what all were we when your can said there use an each "
         "which she do how their if will up other about out many then them these so some her "
         "would make like him into time has look two more write go see number no way could people "
         "my than first water been call who oil its now find long down day did get come made may part").split()
SPECIAL = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<repo_name>", "<file_sep>", "<filename>",
           "<gh_stars>", "<issue_start>", "<jupyter_code>", "<empty_output>"]
PARTIAL = ["<|im_sta", "<|im_end", "|im_end|>", "<|", "|>", "<|im_start|", "<im_start>", "<|IM_START|>",
           "<|endoftext", "<<|im_end|>>", "<|im_start|><|im_end|>", "<repo_name", "<|im_start |>"]


def cases():
    out = []
    add = out.append
    for s in PROSE + CODE + UNICODE:
        add(s)
    # whitespace runs
    for ws in [" ", "  ", "   ", "\t", "\n", "\r\n", "\n\n", " \n", "\n ", "\t\t", " \t ", "\u00a0", "\u3000"]:
        for k in (1, 2, 3, 5, 8):
            add(ws * k)
            add("a" + ws * k + "b")
            add(ws * k + "lead")
            add("trail" + ws * k)
    for _ in range(40):
        s = "".join(rng.choice([" ", "\t", "\n", "\r", "x", "yy", ".", "1"]) for _ in range(rng.randint(1, 24)))
        add(s)
    # numbers of many lengths
    for n in range(1, 25):
        add("".join(str(rng.randint(0, 9)) for _ in range(n)))
        add("x" + str(rng.randint(0, 10 ** n)) + " and " + str(rng.randint(0, 10 ** n)) + ".")
    for s in ["3.14159", "-42", "1,000,000", "1e-9", "0x1F", "2024-06-11", "12:34:56", "v1.2.3", "10%", "#1"]:
        add(s)
        add("value " + s)
    # contractions
    for w in ["it's", "don't", "we're", "I've", "I'm", "you'll", "he'd", "IT'S", "DON'T", "WE'RE", "I'M",
              "YOU'LL", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'x", "''", "' s", "rock'n'roll"]:
        add(w)
        add("Well, " + w + " fine")
    # punctuation runs
    for p in ["...", "!!!", "?!", "---", "***", "###", "@@", "$$$", "%%", "^^", "&&", "||", "~~", "``", ";;",
              "::", "//", "\\\\", "<<>>", "[]{}()", ".,;:!?", "-->", "<!--", "=>", "!=", "===", "?.", "??"]:
        add(p)
        add("word" + p + "word")
        add(" " + p + " ")
    # emoji variations
    for e in EMOJI:
        add(e)
        add("hi " + e + " there")
        add(e * 3)
    # special-token markup and partial markup
    for sp in SPECIAL:
        add(sp)
        add("a" + sp + "b")
        add(" " + sp + " ")
        add(sp + sp)
    for pm in PARTIAL:
        add(pm)
        add("text " + pm + " more")
    add("<|im_start|>user\nhi<|im_end|>")
    add("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n")
    add("<|im_start|>assistant\nThe answer is 4.<|im_end|><|endoftext|>")
    add("<|im_start|><|im_start|>user<|im_end|><|im_end|>")
    # random mixtures
    pools = [WORDS, [e for e in EMOJI], SPECIAL, PARTIAL, ["é", "ß", "Ж", "λ", "中", "あ", "한", "ع", "١", "½"],
             [" ", "  ", "\n", "\t", "\r\n"], ["'s", "'t", "'re", "'S", "'ll"], list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"),
             [str(rng.randint(0, 99999)) for _ in range(20)]]
    for _ in range(220):
        parts = []
        for _ in range(rng.randint(1, 14)):
            pool = rng.choice(pools)
            parts.append(rng.choice(pool))
            if rng.random() < 0.5:
                parts.append(" ")
        add("".join(parts))
    # random code points from several blocks
    blocks = [(0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x3FF), (0x400, 0x4FF), (0x590, 0x6FF), (0x900, 0x97F),
              (0x3040, 0x30FF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0x1F300, 0x1F64F), (0x2000, 0x206F)]
    for _ in range(60):
        lo, hi = rng.choice(blocks)
        add("".join(chr(rng.randint(lo, hi)) for _ in range(rng.randint(1, 12))))
    # a few long inputs
    add(" ".join(rng.choice(WORDS) for _ in range(600)))
    add("\n".join(CODE) * 3)
    add("".join(UNICODE))
    return out


# deliberately invalid UTF-8 (llama.cpp turns each bad byte into U+FFFD before pre-tokenizing)
RAW = [b"\xff", b"abc\x80def", b"\xc3", b"\xc3(", b"\xe2\x82", b"\xf0\x9f\x98", b"ok\xed\xa0\x80ok",
       b"\xc0\xaf", b"\xf8\x88\x80\x80\x80", b"\xe0\x80\x80", b"a\xfe\xfeb", b"\x00", b"nul\x00byte"]


def detokenize(llm, ids, special):
    """llama.cpp's llama_detokenize (remove_special=False); Llama.detokenize would go through
    token_to_piece with a 32-byte buffer."""
    n = len(ids)
    arr = (llama_cpp.llama_token * max(n, 1))(*ids)
    cap = 64 + 64 * n
    buf = (ctypes.c_char * cap)()
    got = llama_cpp.llama_detokenize(llm._model.vocab, arr, n, buf, cap, False, special)
    assert 0 <= got <= cap, got
    return bytes(buf[:got])


def copy_with_pre(src, pre, dst):
    """Tensor-less copy of src's metadata with tokenizer.ggml.pre replaced."""
    from gguf import GGUFReader, GGUFValueType, GGUFWriter
    r = GGUFReader(src)
    arch = bytes(r.fields["general.architecture"].parts[-1]).decode()
    w = GGUFWriter(dst, arch)
    for k, f in r.fields.items():
        if k.startswith("GGUF.") or k == "general.architecture":
            continue
        t = f.types[0]
        if k == "tokenizer.ggml.pre":
            w.add_string(k, pre)
        elif t == GGUFValueType.ARRAY and f.types[1] == GGUFValueType.STRING:
            w.add_array(k, [bytes(f.parts[i]) for i in f.data])
        elif t == GGUFValueType.ARRAY:
            w.add_key_value(k, [f.parts[i][0].item() for i in f.data], t, sub_type=f.types[1])
        elif t == GGUFValueType.STRING:
            w.add_key_value(k, bytes(f.parts[-1]).decode("utf-8", "replace"), t)
        else:
            w.add_key_value(k, f.parts[-1][0].item(), t)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_golden(model, out, texts, modes_for):
    llm = llama_cpp.Llama(model_path=model, vocab_only=True, verbose=False)
    rows = []
    for i, t in enumerate(texts):
        for mode in modes_for(i, t):
            ids = llm.tokenize(t, add_bos=False, special=(mode == "S"))
            d1 = detokenize(llm, ids, True)
            d0 = detokenize(llm, ids, False)
            rows.append("\t".join([
                mode, t.hex(), " ".join(map(str, ids)) if ids else "-",
                "=" if d1 == t else d1.hex(), "=" if d0 == d1 else d0.hex()]))
    with open(out, "w") as f:
        f.write("# tokenizer golden: llama.cpp via llama-cpp-python %s, vocab %s\n"
                % (llama_cpp.__version__, MODEL.split("/")[-1]))
        f.write("# generated by scripts/golden/make_tokenizer_golden.py; columns: mode hex ids detok detok0\n")
        for r in rows:
            f.write(r + "\n")
    print("wrote %d cases to %s" % (len(rows), out))


def main():
    import os
    import tempfile
    texts = [s.encode("utf-8") for s in cases()] + RAW
    seen = set()
    uniq = []
    for t in texts:
        if t not in seen:
            seen.add(t)
            uniq.append(t)
    write_golden(MODEL, OUT, uniq, lambda i, t: ["S", "P"] if i % 3 == 0 or b"<" in t else ["S"])
    sub = [t for i, t in enumerate(uniq) if i % 3 == 1 or b"<" in t or len(t) > 1000]
    with tempfile.TemporaryDirectory() as tmp:
        for pre in OTHER_PRES:
            path = os.path.join(tmp, "vocab.gguf")
            copy_with_pre(MODEL, pre, path)
            write_golden(path, OUT.replace(".tsv", "_%s.tsv" % pre), sub, lambda i, t: ["S"])


if __name__ == "__main__":
    main()
