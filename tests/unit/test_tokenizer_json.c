/* tokenizer.json tests against HF `tokenizers`: every golden case from
 * scripts/golden/make_tokenizer_json_golden.py (SmolLM2's vocab in tokenizer.json form, and the
 * genuine Qwen3 tokenizer.json with its NFC normalizer, Split regex and [a, b] merges) must give
 * HF's ids and decode; the streaming detokenizer never emits invalid UTF-8; the folder's
 * config gives bos/eos/chat template; one crafted malformed tokenizer.json per ROBUSTNESS.md §26
 * rule is refused with a message naming the problem. The fixtures are gzipped in tests/golden/
 * and unpacked into a temporary folder. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "formats/gguf.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_impl.h"
#include "utf8_oracle.h"

/* Independent strict UTF-8 check (Unicode Table 3-7). */
#include "tokenizer_golden.h"

/* Checks one golden file against tokenizer t: ids equal HF's, decode equals HF's decode with
 * and without special tokens; round trip and streaming are checked against the plain
 * concatenation of pieces. */
static void test_golden(const sglc_tokenizer *t, const char *file, size_t min_cases) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/golden/%s", test_source_dir(), file);
    golden_check_file(t, path, file, min_cases, "HF       ", 1);
}

static char g_tmp[64];

/* Unpacks tests/golden/<name>/ (tokenizer.json.gz + plain files) into g_tmp/<name>. */
static int unpack_fixture(const char *name, char *dir, size_t cap) {
    char cmd[8192];
    snprintf(dir, cap, "%s/%s", g_tmp, name);
    snprintf(cmd, sizeof cmd,
             "mkdir -p '%s' && cd '%s/tests/golden/%s' && for f in *; do case $f in *.gz) gzip -dc "
             "\"$f\" > '%s'/\"${f%%.gz}\" ;; *) cp \"$f\" '%s'/ ;; esac; done",
             dir, test_source_dir(), name, dir, dir);
    int rc = system(cmd);
    CHECKF(rc == 0, "unpacking %s failed", name);
    return rc;
}

static sglc_tokenizer *open_fixture(const char *name) {
    char dir[512];
    if (unpack_fixture(name, dir, sizeof dir)) return NULL;
    sglc_tokenizer *t = NULL;
    sglc_err err = {{0}};
    double t0 = now_ms();
    int rc = sglc_tokenizer_open_hf(&t, dir, &err);
    fprintf(stderr, "open_hf %s: %.1f ms\n", name, now_ms() - t0);
    CHECKF(rc == 0 && t, "open_hf %s: %s", name, err.msg);
    return t;
}

static int32_t id_of(const sglc_tokenizer *t, const char *text) {
    int32_t ids[4];
    int64_t n = sglc_tokenizer_encode(t, text, strlen(text), 1, 0, ids, 4);
    return n == 1 ? ids[0] : -1;
}

/* SmolLM2 as tokenizer.json must be the same tokenizer as the GGUF it came from, chat template
 * included (the GGUF is the independent source here). */
static void test_smollm2(void) {
    sglc_tokenizer *t = open_fixture("tokjson_smollm2");
    if (!t) return;
    CHECK(sglc_tokenizer_vocab_size(t) == 49152);
    CHECK(sglc_tokenizer_bos(t) == 1);
    CHECK(sglc_tokenizer_eos(t) == 2);
    CHECK(sglc_tokenizer_add_bos(t) == 0);
    CHECK(sglc_tokenizer_is_eog(t, 2));
    CHECK(!sglc_tokenizer_is_eog(t, 1));
    test_golden(t, "tokjson_smollm2.tsv", 1000);

    const char *model = test_default_model();
    sglc_gguf *g = NULL;
    sglc_err err = {{0}};
    if (model && sglc_gguf_open(&g, model, &err) == 0) {
        sglc_tokenizer *tg = NULL;
        CHECKF(sglc_tokenizer_open_gguf(&tg, g, &err) == 0, "open_gguf: %s", err.msg);
        if (tg) {
            const char *a = sglc_tokenizer_chat_template(t), *b = sglc_tokenizer_chat_template(tg);
            CHECK(a && b && strcmp(a, b) == 0);
            CHECK(b && strstr(b, "<|im_start|>") != NULL);
            /* same ids as the GGUF tokenizer on mixed text */
            const char *txt =
                "<|im_start|>user\nCaf\xC3\xA9 123456 \xF0\x9F\x91\x8D it's<|im_end|>";
            int32_t x[64], y[64];
            int64_t nx = sglc_tokenizer_encode(t, txt, strlen(txt), 1, 0, x, 64);
            int64_t ny = sglc_tokenizer_encode(tg, txt, strlen(txt), 1, 0, y, 64);
            CHECK(nx == ny && nx > 0 && memcmp(x, y, (size_t)nx * sizeof *x) == 0);
        }
        sglc_tokenizer_close(tg);
        sglc_gguf_close(g);
    }
    sglc_tokenizer_close(t);
}

static void test_qwen3(void) {
    sglc_tokenizer *t = open_fixture("tokjson_qwen3");
    if (!t) return;
    /* 151643 BPE tokens + 26 added tokens (tokenizer_config.json's added_tokens_decoder) */
    CHECK(sglc_tokenizer_vocab_size(t) == 151669);
    CHECK(sglc_tokenizer_bos(t) == -1); /* bos_token: null */
    CHECK(sglc_tokenizer_eos(t) == id_of(t, "<|im_end|>"));
    CHECK(sglc_tokenizer_eos(t) == 151645);
    CHECK(sglc_tokenizer_is_eog(t, 151645));
    CHECK(sglc_tokenizer_add_bos(t) == 0);
    const char *tmpl = sglc_tokenizer_chat_template(t);
    CHECK(tmpl && strncmp(tmpl, "{%- if tools %}", 15) == 0);
    CHECK(tmpl && strstr(tmpl, "<think>") != NULL);
    test_golden(t, "tokjson_qwen3.tsv", 1000);
    double t0 = now_ms();
    size_t reps = 300;
    const char *para = "Caf\xC3\xA9 na\xC3\xAFve \xE4\xB8\xAD\xE6\x96\x87 e\xCC\x81 2024 it's "
                       "fine; def f(x): return x**2\n";
    size_t pl = strlen(para);
    char *big = malloc(pl * reps);
    for (size_t i = 0; i < reps; i++)
        memcpy(big + i * pl, para, pl);
    int64_t n = sglc_tokenizer_encode(t, big, pl * reps, 1, 0, NULL, 0);
    double ms = now_ms() - t0;
    fprintf(stderr, "perf: qwen3 %lld tokens from %zu bytes in %.2f ms\n", (long long)n, pl * reps,
            ms);
    CHECKF(ms < 500, "took %.1f ms", ms);
    free(big);
    sglc_tokenizer_close(t);
}

/* --- malformed tokenizer.json, one per rule --- */

#define BASE_MODEL                                                                                 \
    "\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2, \"<s>\": 3, "       \
    "\"</s>\": 4}, \"merges\": [\"a b\"]}"
#define BASE_PRE "\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false}"
#define BASE_DEC "\"decoder\": {\"type\": \"ByteLevel\"}"
#define BASE_ADDED                                                                                 \
    "\"added_tokens\": [{\"id\": 3, \"content\": \"<s>\", \"special\": true}, {\"id\": 5, "        \
    "\"content\": \"<tool>\", \"special\": false}]"

static const char k_base[] = "{" BASE_MODEL ", " BASE_PRE ", " BASE_DEC ", " BASE_ADDED "}";
static const char k_cfg[] = "{\"bos_token\": \"<s>\", \"eos_token\": {\"content\": \"</s>\"}, "
                            "\"chat_template\": [{\"name\": \"tool_use\", \"template\": \"T\"}, "
                            "{\"name\": \"default\", \"template\": \"D\"}]}";

static int open_mem(sglc_tokenizer **t, const char *tok, const char *cfg, const char *gen,
                    sglc_err *err) {
    return sglc_tokenizer_open_hf_mem(t, tok, strlen(tok), cfg, cfg ? strlen(cfg) : 0, gen,
                                      gen ? strlen(gen) : 0, NULL, err);
}

static void expect_fail(const char *tok, const char *cfg, const char *gen, const char *needle,
                        const char *what) {
    sglc_tokenizer *t = NULL;
    sglc_err err = {{0}};
    int rc = open_mem(&t, tok, cfg, gen, &err);
    CHECKF(rc < 0 && t == NULL, "%s: accepted", what);
    CHECKF(strstr(err.msg, needle) != NULL, "%s: message '%s' lacks '%s'", what, err.msg, needle);
    if (rc < 0) fprintf(stderr, "  refused (%s): %s\n", what, err.msg);
    sglc_tokenizer_close(t);
}

static void test_small(void) {
    sglc_tokenizer *t = NULL;
    sglc_err err = {{0}};
    int rc = open_mem(&t, k_base, k_cfg, "{\"eos_token_id\": [4, 3]}", &err);
    CHECKF(rc == 0, "small tokenizer.json: %s", err.msg);
    if (!t) return;
    CHECK(sglc_tokenizer_vocab_size(t) == 6);
    CHECK(sglc_tokenizer_bos(t) == 3 && sglc_tokenizer_eos(t) == 4);
    CHECK(sglc_tokenizer_is_eog(t, 4) && sglc_tokenizer_is_eog(t, 3));
    CHECK(!sglc_tokenizer_is_eog(t, 2));
    CHECK(sglc_tokenizer_chat_template(t) && strcmp(sglc_tokenizer_chat_template(t), "D") == 0);
    int32_t ids[8];
    /* "ab" merges; the special <s> is text without parse_special, <tool> (not special) is not */
    CHECK(sglc_tokenizer_encode(t, "ab", 2, 1, 0, ids, 8) == 1 && ids[0] == 2);
    CHECK(sglc_tokenizer_encode(t, "a<s>b", 5, 1, 0, ids, 8) == 3 && ids[1] == 3);
    CHECK(sglc_tokenizer_encode(t, "a<tool>b", 8, 0, 0, ids, 8) == 3 && ids[1] == 5);
    CHECK(sglc_tokenizer_encode(t, "ab", 2, 1, 1, ids, 8) == 2 && ids[0] == 3);
    char out[16];
    int32_t seq[] = {3, 2, 5, 4};
    size_t n = sglc_tokenizer_decode(t, seq, 4, 1, out, sizeof out);
    /* </s> is a plain vocab token here, not a special added one, so it stays */
    CHECK(n == 12 && memcmp(out, "ab<tool></s>", 12) == 0);
    sglc_tokenizer_close(t);
}

static void test_malformed(void) {
    expect_fail(k_base, "{\"bos_token\": \"<nope>\"}", NULL,
                "bos_token '<nope>' is not in the vocab", "bos not in vocab");
    expect_fail(k_base, "{\"eos_token\": {\"content\": \"<end>\"}}", NULL,
                "eos_token '<end>' is not in the vocab", "eos not in vocab");
    expect_fail(k_base, NULL, "{\"eos_token_id\": [4, 99]}", "eos_token_id 99 is outside the vocab",
                "generation_config eos out of range");
    expect_fail("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, "
                "\"merges\": [\"a c\"]}, " BASE_PRE ", " BASE_DEC "}",
                NULL, NULL, "names 'c', not in the vocab", "merge naming a missing token");
    expect_fail("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ba\": 2}, "
                "\"merges\": [[\"a\", \"b\"]]}, " BASE_PRE ", " BASE_DEC "}",
                NULL, NULL, "makes 'ab', which is not in the vocab", "merge result not in vocab");
    expect_fail("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, "
                "\"merges\": [\"a b c\"]}, " BASE_PRE ", " BASE_DEC "}",
                NULL, NULL, "separated by one space", "merge with two spaces");
    expect_fail("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, "
                "\"merges\": [[\"a\"]]}, " BASE_PRE ", " BASE_DEC "}",
                NULL, NULL, "neither", "merge pair of one");
    expect_fail("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 1}, "
                "\"merges\": []}, " BASE_PRE ", " BASE_DEC "}",
                NULL, NULL, "vocab id 1 is given to both 'b' and 'ab'", "duplicate vocab id");
    expect_fail("{" BASE_MODEL ", " BASE_PRE ", " BASE_DEC ", \"added_tokens\": [{\"id\": 5, "
                "\"content\": \"<x>\", \"special\": true}, {\"id\": 5, \"content\": \"<y>\", "
                "\"special\": true}]}",
                NULL, NULL, "added token 5 '<y>' collides with added token '<x>'",
                "colliding added-token ids");
    expect_fail("{" BASE_MODEL ", " BASE_PRE ", " BASE_DEC ", \"added_tokens\": [{\"id\": 2, "
                "\"content\": \"<x>\", \"special\": true}]}",
                NULL, NULL, "collides with vocab token 'ab'", "added token over a vocab id");
    expect_fail("{" BASE_MODEL ", \"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": "
                "[{\"type\": \"Split\", \"pattern\": {\"Regex\": \"(unclosed\"}, \"behavior\": "
                "\"Isolated\"}, {\"type\": \"ByteLevel\", \"add_prefix_space\": false, "
                "\"use_regex\": false}]}, " BASE_DEC "}",
                NULL, NULL, "does not compile", "regex that does not compile");
    expect_fail("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}, " BASE_PRE
                ", " BASE_DEC "}",
                NULL, NULL, "model type 'WordPiece' is not supported", "WordPiece model");
    expect_fail("{" BASE_MODEL ", \"pre_tokenizer\": {\"type\": \"Whitespace\"}, " BASE_DEC "}",
                NULL, NULL, "pre_tokenizer 'Whitespace' is not supported",
                "Whitespace pre-tokenizer");
    expect_fail("{" BASE_MODEL ", \"normalizer\": {\"type\": \"Lowercase\"}, " BASE_PRE
                ", " BASE_DEC "}",
                NULL, NULL, "normalizer 'Lowercase' is not supported", "Lowercase normalizer");
    expect_fail("{" BASE_MODEL ", " BASE_PRE ", \"decoder\": {\"type\": \"WordPiece\"}}", NULL,
                NULL, "decoder 'WordPiece' is not supported", "WordPiece decoder");
    expect_fail("{\"model\": {\"type\": \"BPE\", \"byte_fallback\": true, \"vocab\": {\"a\": 0}, "
                "\"merges\": []}, \"pre_tokenizer\": null, " BASE_DEC "}",
                NULL, NULL, "SentencePiece style", "byte_fallback without ByteLevel");
    expect_fail("{\"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\", \"vocab\": {\"a\": 0}, "
                "\"merges\": []}, " BASE_PRE ", " BASE_DEC "}",
                NULL, NULL, "unk_token '<unk>' is not in the vocab", "unk not in vocab");
    expect_fail("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -1}, \"merges\": []}, " BASE_PRE
                ", " BASE_DEC "}",
                NULL, NULL, "bad id", "negative id");
    expect_fail("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 100000000}, "
                "\"merges\": []}, " BASE_PRE ", " BASE_DEC "}",
                NULL, NULL, "only 2 tokens are given", "sparse ids");
    expect_fail("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1.5}, "
                "\"merges\": []}, " BASE_PRE ", " BASE_DEC "}",
                NULL, NULL, "'b' has a bad id", "fractional id");
    expect_fail("{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}, " BASE_PRE
                ", " BASE_DEC "}",
                NULL, NULL, "empty vocab", "empty vocab");
    expect_fail("{\"model\": {", NULL, NULL, "not valid JSON", "truncated JSON");
    expect_fail("[1, 2]", NULL, NULL, "not a JSON object", "JSON array");
    expect_fail(k_base, "{\"chat_template\": 7}", NULL, "chat_template is neither",
                "chat_template of the wrong type");

    sglc_tokenizer *t = NULL;
    sglc_err err = {{0}};
    CHECK(sglc_tokenizer_open_hf(&t, "/nonexistent/sglc", &err) == SGLC_ERR_IO && !t);
    CHECKF(strstr(err.msg, "/nonexistent/sglc/tokenizer.json") != NULL, "message '%s'", err.msg);
}

/* Small trained vocabs for Split behaviours, invert, Digits runs, NFKC, add_prefix_space,
 * ignore_merges and lstrip/rstrip added tokens. */
static void test_variants(void) {
    for (int k = 0; k < 3; k++) {
        char name[32], file[48];
        snprintf(name, sizeof name, "tokjson_var%d", k);
        snprintf(file, sizeof file, "tokjson_var%d.tsv", k);
        sglc_tokenizer *t = open_fixture(name);
        if (t) test_golden(t, file, 500);
        sglc_tokenizer_close(t);
    }
}

int main(void) {
    snprintf(g_tmp, sizeof g_tmp, "/tmp/sglc_tokjson_XXXXXX");
    if (!mkdtemp(g_tmp)) {
        perror("mkdtemp");
        return 1;
    }
    test_small();
    test_malformed();
    test_smollm2();
    test_qwen3();
    test_variants();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_tmp);
    TEST_MAIN_END();
}
