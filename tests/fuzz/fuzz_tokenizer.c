/* libFuzzer target for the tokenizer: arbitrary bytes (invalid UTF-8, NULs, special-token
 * markup) are encoded with the real model's vocab, loaded once from $SGLC_TEST_MODEL or
 * $SGLC_SOURCE_DIR/models/SmolLM2-135M-Instruct.Q4_1.gguf, with and without special-token
 * parsing. The ids are checked to be in range, decoded, and streamed token by token; every
 * streamed chunk must be valid UTF-8, and a valid-UTF-8 decode must equal the stream. The
 * first input byte also picks a cut of the bytes into single-byte tokens to stress the stream's
 * unfinished-tail handling. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"
#include "../unit/utf8_oracle.h"

static sglc_gguf *g_gguf;
static sglc_tokenizer *g_tok;
static int32_t g_byte_token[256];

static void init(void) {
    char path[4096];
    const char *env = getenv("SGLC_TEST_MODEL");
    if (env) {
        snprintf(path, sizeof path, "%s", env);
    } else {
        const char *dir = getenv("SGLC_SOURCE_DIR");
        snprintf(path, sizeof path, "%s/models/SmolLM2-135M-Instruct.Q4_1.gguf", dir ? dir : ".");
    }
    sglc_err err = {{0}};
    if (sglc_gguf_open(&g_gguf, path, &err) != 0 ||
        sglc_tokenizer_open_gguf(&g_tok, g_gguf, &err)) {
        fprintf(stderr, "fuzz_tokenizer: cannot load vocab from %s: %s\n", path, err.msg);
        abort();
    }
    for (int b = 0; b < 256; b++)
        g_byte_token[b] = -1;
    for (int32_t id = 0; id < sglc_tokenizer_vocab_size(g_tok); id++) {
        size_t len;
        const char *p = sglc_tokenizer_token_bytes(g_tok, id, &len);
        if (len == 1 && g_byte_token[(unsigned char)p[0]] < 0)
            g_byte_token[(unsigned char)p[0]] = id;
    }
}

/* Streams ids and returns the concatenated output (malloc'd); traps on an invalid chunk. */
static unsigned char *stream(const int32_t *ids, size_t n, int skip, size_t *out_len) {
    size_t cap = sglc_detok_stream_cap(g_tok);
    char *chunk = malloc(cap);
    unsigned char *all = malloc(n * cap + 8);
    size_t total = 0;
    sglc_detok_stream st;
    sglc_detok_stream_init(&st);
    for (size_t i = 0; i <= n; i++) {
        size_t m = i < n ? sglc_detok_stream_push(&st, g_tok, ids[i], skip, chunk, cap)
                         : sglc_detok_stream_flush(&st, chunk, cap);
        if (m > cap || !valid_utf8((unsigned char *)chunk, m)) __builtin_trap();
        memcpy(all + total, chunk, m);
        total += m;
    }
    free(chunk);
    *out_len = total;
    return all;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_tok) init();
    const char *text = (const char *)data;
    int32_t n_vocab = sglc_tokenizer_vocab_size(g_tok);
    for (int special = 0; special < 2; special++) {
        int64_t n = sglc_tokenizer_encode(g_tok, text, size, special, special, NULL, 0);
        if (n < 0) __builtin_trap();
        int32_t *ids = malloc(((size_t)n + 1) * sizeof *ids);
        if (sglc_tokenizer_encode(g_tok, text, size, special, special, ids, (size_t)n) != n)
            __builtin_trap();
        for (int64_t i = 0; i < n; i++) {
            if (ids[i] < 0 || ids[i] >= n_vocab) __builtin_trap();
        }
        size_t dl = sglc_tokenizer_decode(g_tok, ids, (size_t)n, 0, NULL, 0);
        char *dec = malloc(dl + 1);
        if (sglc_tokenizer_decode(g_tok, ids, (size_t)n, 0, dec, dl) != dl) __builtin_trap();
        size_t sl;
        unsigned char *s = stream(ids, (size_t)n, 0, &sl);
        if (valid_utf8((unsigned char *)dec, dl) && (sl != dl || memcmp(s, dec, dl) != 0))
            __builtin_trap();
        free(s);
        s = stream(ids, (size_t)n, 1, &sl);
        free(s);
        free(dec);
        free(ids);
    }
    /* the raw bytes as single-byte tokens: the stream must cope with any cut */
    int32_t *bids = malloc((size + 1) * sizeof *bids);
    size_t nb = 0;
    for (size_t i = 0; i < size; i++) {
        if (g_byte_token[data[i]] >= 0) bids[nb++] = g_byte_token[data[i]];
    }
    size_t sl;
    free(stream(bids, nb, 0, &sl));
    free(bids);
    return 0;
}
