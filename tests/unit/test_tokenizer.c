/* Tokenizer tests against llama.cpp: every golden case from
 * scripts/golden/make_tokenizer_golden.py (llama-cpp-python over the SmolLM2 vocab, with its own
 * "smollm" pre-tokenizer and with llama-bpe, qwen2, gpt-2, default and starcoder swapped in)
 * must give the same ids, and decoding them must give llama.cpp's detokenization; the streaming
 * detokenizer fed token by token must reproduce the pieces and never emit invalid UTF-8;
 * malformed vocabs are refused with a message naming the problem; encoding is fast and not
 * quadratic. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "formats/gguf.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"
#include "utf8_oracle.h"

/* Independent strict UTF-8 check (Unicode Table 3-7). */
#include "tokenizer_golden.h"

/* Checks one golden file against tokenizer t. Decode must equal llama.cpp's detokenize (which
 * cleans up spaces for some pre-types); round trip and streaming are checked against the
 * plain concatenation of pieces, which is what decode gives for vocabs without clean-up. */
static void test_golden(const sglc_tokenizer *t, const char *file, size_t min_cases) {
    char path[4096];
    const char *env = getenv("SGLC_TOKENIZER_GOLDEN"); /* to check other vocabs by hand */
    if (env)
        snprintf(path, sizeof path, "%s", env);
    else
        snprintf(path, sizeof path, "%s/tests/golden/%s", test_source_dir(), file);
    golden_check_file(t, path, file, min_cases, "llama.cpp", 0);
}

/* Finds the token whose piece is exactly the single byte b (byte-level vocabs have all 256). */
static int32_t byte_token(const sglc_tokenizer *t, unsigned char b) {
    for (int32_t id = 0; id < sglc_tokenizer_vocab_size(t); id++) {
        size_t len;
        const char *p = sglc_tokenizer_token_bytes(t, id, &len);
        if (len == 1 && (unsigned char)p[0] == b) return id;
    }
    return -1;
}

static void test_stream_split_chars(const sglc_tokenizer *t) {
    /* multi-byte characters delivered one byte token at a time */
    const char *text = "a\xF0\x9F\x98\x80 b \xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x92\xBB "
                       "\xC3\xA9\xE4\xB8\xAD\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD!";
    size_t n = strlen(text);
    int32_t ids[128];
    for (size_t i = 0; i < n; i++) {
        ids[i] = byte_token(t, (unsigned char)text[i]);
        CHECK(ids[i] >= 0);
    }
    size_t sl;
    int bad;
    unsigned char *s = stream_decode(t, ids, n, 0, &sl, &bad);
    CHECK(!bad);
    CHECK(sl == n && memcmp(s, text, n) == 0);
    free(s);

    /* ill-formed input: each maximal ill-formed subpart becomes one U+FFFD, as Python's
     * bytes.decode("utf-8", "replace") gives: b"\xf0\x9fa\x80\xe2\x82" -> "\ufffda\ufffd\ufffd" */
    const unsigned char bad_bytes[] = {0xF0, 0x9F, 'a', 0x80, 0xE2, 0x82};
    int32_t bids[6];
    for (size_t i = 0; i < 6; i++) {
        bids[i] = byte_token(t, bad_bytes[i]);
        CHECK(bids[i] >= 0);
    }
    s = stream_decode(t, bids, 6, 0, &sl, &bad);
    const char *want = "\xEF\xBF\xBD"
                       "a\xEF\xBF\xBD\xEF\xBF\xBD";
    CHECK(!bad);
    CHECKF(sl == strlen(want) && memcmp(s, want, sl) == 0, "got %zu bytes", sl);
    free(s);
}

static void test_basics(const sglc_tokenizer *t) {
    CHECK(sglc_tokenizer_vocab_size(t) == 49152);
    CHECK(sglc_tokenizer_bos(t) == 1);
    CHECK(sglc_tokenizer_eos(t) == 2);
    CHECK(sglc_tokenizer_add_bos(t) == 0);
    CHECK(sglc_tokenizer_is_eog(t, 2));  /* <|im_end|> = eos */
    CHECK(sglc_tokenizer_is_eog(t, 0));  /* <|endoftext|> */
    CHECK(!sglc_tokenizer_is_eog(t, 1)); /* <|im_start|> */
    CHECK(!sglc_tokenizer_is_eog(t, 100));
    CHECK(!sglc_tokenizer_is_eog(t, -1));
    CHECK(sglc_tokenizer_token_bytes(t, 49152, &(size_t){0}) == NULL);
    /* add_bos prepends bos; a short buffer still reports the full count */
    int32_t ids[4];
    int64_t n = sglc_tokenizer_encode(t, "hello world", 11, 1, 1, ids, 1);
    int64_t n0 = sglc_tokenizer_encode(t, "hello world", 11, 1, 0, NULL, 0);
    CHECK(n == n0 + 1);
    CHECK(ids[0] == 1);
    CHECK(sglc_tokenizer_encode(t, "", 0, 1, 0, ids, 4) == 0);
}

static void test_performance(const sglc_tokenizer *t) {
    const char *para = "The quick brown fox jumps over the lazy dog; it's 2024 and prices rose "
                       "3.5% -- café, naïve, 中文, emoji 👍🏽!\n\tdef f(x): return x**2\n";
    size_t pl = strlen(para), reps = 400;
    char *big = malloc(pl * reps + 1);
    for (size_t i = 0; i < reps; i++)
        memcpy(big + i * pl, para, pl);
    size_t len = pl * reps;
    double t0 = now_ms();
    int64_t n = sglc_tokenizer_encode(t, big, len, 1, 0, NULL, 0);
    double ms = now_ms() - t0;
    fprintf(stderr, "perf: %lld tokens from %zu bytes in %.2f ms\n", (long long)n, len, ms);
    CHECK(n > 10000);
    CHECKF(ms < 500, "encoding %lld tokens took %.1f ms", (long long)n, ms);

    /* one long word: the merge loop must not be quadratic */
    size_t wl = 200000;
    char *word = malloc(wl);
    for (size_t i = 0; i < wl; i++)
        word[i] = "abcdefghij"[(i * 7 + i / 13) % 10];
    t0 = now_ms();
    n = sglc_tokenizer_encode(t, word, wl, 1, 0, NULL, 0);
    ms = now_ms() - t0;
    fprintf(stderr, "perf: one %zu-byte word -> %lld tokens in %.2f ms\n", wl, (long long)n, ms);
    CHECK(n > 0);
    CHECKF(ms < 3000, "long word took %.1f ms", ms);
    free(word);
    free(big);
}

/* --- malformed vocabs through the array constructor --- */

static const char *k_tokens[] = {"<|endoftext|>", "a", "b", "ab", "<0x41>", "<|im_end|>"};
static const int32_t k_types[] = {3, 1, 1, 1, 6, 3};
static const char *k_merges[] = {"a b"};

static sglc_tokenizer_vocab_desc base_desc(void) {
    sglc_tokenizer_vocab_desc d;
    memset(&d, 0, sizeof d);
    d.model = "gpt2";
    d.pre = "smollm";
    d.n_tokens = 6;
    d.tokens = k_tokens;
    d.token_types = k_types;
    d.n_token_types = 6;
    d.n_merges = 1;
    d.merges = k_merges;
    d.bos = 0;
    d.eos = 5;
    d.eot = d.eom = -1;
    d.add_bos = -1;
    return d;
}

static void expect_fail(const sglc_tokenizer_vocab_desc *d, const char *needle, const char *what) {
    sglc_tokenizer *t = NULL;
    sglc_err err = {{0}};
    int rc = sglc_tokenizer_open_vocab(&t, d, &err);
    CHECKF(rc < 0 && t == NULL, "%s: accepted", what);
    CHECKF(strstr(err.msg, needle) != NULL, "%s: message '%s' lacks '%s'", what, err.msg, needle);
    sglc_tokenizer_close(t);
}

static void test_malformed(void) {
    sglc_tokenizer_vocab_desc d = base_desc();
    sglc_tokenizer *t = NULL;
    sglc_err err = {{0}};
    CHECKF(sglc_tokenizer_open_vocab(&t, &d, &err) == 0, "small vocab: %s", err.msg);
    if (t) {
        int32_t ids[4];
        CHECK(sglc_tokenizer_encode(t, "ab", 2, 1, 0, ids, 4) == 1 && ids[0] == 3);
        CHECK(sglc_tokenizer_is_eog(t, 5));
        sglc_tokenizer_close(t);
    }
    sglc_tokenizer_close(NULL);

    d = base_desc();
    d.bos = 6;
    expect_fail(&d, "bos_token_id", "bos out of range");
    d = base_desc();
    d.eos = 1000;
    expect_fail(&d, "eos_token_id", "eos out of range");

    const char *bad_merge[] = {"a c"};
    d = base_desc();
    d.merges = bad_merge;
    expect_fail(&d, "not in the vocab", "merge naming a missing token");
    const char *no_space[] = {"ab"};
    d = base_desc();
    d.merges = no_space;
    expect_fail(&d, "separated by a space", "merge without a space");

    const char *neg_byte[] = {"<|endoftext|>", "a", "b", "ab", "<0x-1>", "<|im_end|>"};
    d = base_desc();
    d.tokens = neg_byte;
    expect_fail(&d, "<0x-1>", "byte token <0x-1>");
    const char *zz_byte[] = {"<|endoftext|>", "a", "b", "ab", "<0xZZ>", "<|im_end|>"};
    d = base_desc();
    d.tokens = zz_byte;
    expect_fail(&d, "<0xZZ>", "byte token <0xZZ>");

    d = base_desc();
    d.n_token_types = 5;
    expect_fail(&d, "token_type has 5 entries for 6 tokens", "type array length mismatch");

    const char *dup[] = {"<|endoftext|>", "a", "b", "a", "<0x41>", "<|im_end|>"};
    d = base_desc();
    d.tokens = dup;
    d.n_merges = 0;
    expect_fail(&d, "same text", "duplicate token text");

    const char *bad_re[] = {"(unclosed"};
    d = base_desc();
    d.regexes = bad_re;
    d.n_regexes = 1;
    expect_fail(&d, "does not compile", "regex that does not compile");

    d = base_desc();
    d.pre = "no-such-pre";
    expect_fail(&d, "'no-such-pre'", "unknown pre-tokenizer");
    d = base_desc();
    d.model = "llama";
    expect_fail(&d, "'llama'", "unsupported tokenizer model");
    d = base_desc();
    d.n_tokens = 0;
    expect_fail(&d, "token count", "empty vocab");
}

int main(void) {
    test_malformed();
    const char *model = test_default_model();
    if (!model) return 1;
    sglc_gguf *g = NULL;
    sglc_err err = {{0}};
    if (sglc_gguf_open(&g, model, &err) != 0) {
        fprintf(stderr, "gguf open failed: %s\n", err.msg);
        return 1;
    }
    sglc_tokenizer *t = NULL;
    double t0 = now_ms();
    int rc = sglc_tokenizer_open_gguf(&t, g, &err);
    fprintf(stderr, "tokenizer open: %.1f ms\n", now_ms() - t0);
    CHECKF(rc == 0, "open_gguf: %s", err.msg);
    if (t) {
        test_basics(t);
        test_golden(t, "tokenizer_smollm2.tsv", 600);
        test_stream_split_chars(t);
        test_performance(t);
    }
    sglc_tokenizer_close(t);
    /* the other pre-tokenizers over the same vocab, as the golden script runs llama.cpp */
    static const char *const pres[] = {"llama-bpe", "qwen2", "gpt-2", "default", "starcoder"};
    for (size_t i = 0; i < sizeof pres / sizeof pres[0] && !getenv("SGLC_TOKENIZER_GOLDEN"); i++) {
        char file[128];
        snprintf(file, sizeof file, "tokenizer_smollm2_%s.tsv", pres[i]);
        t = NULL;
        rc = sglc_tokenizer_open_gguf_pre(&t, g, pres[i], &err);
        CHECKF(rc == 0, "open with pre %s: %s", pres[i], err.msg);
        if (t) test_golden(t, file, 300);
        sglc_tokenizer_close(t);
    }
    sglc_gguf_close(g);
    TEST_MAIN_END();
}
