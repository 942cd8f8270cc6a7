/* libFuzzer target for the tokenizer.json reader: arbitrary bytes are parsed as tokenizer.json
 * (the config files left out). Whatever is accepted must then encode a fixed text with and
 * without special-token parsing, give ids in range, and decode and stream them without
 * emitting invalid UTF-8 from the stream. A rejected input must leave a message. A seed corpus:
 * the small tokenizer.json strings of tests/unit/test_tokenizer_json.c, or the fixtures under
 * tests/golden/tokjson_* unpacked. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_impl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char k_text[] = "<s>Hello, w\xC3\xB6rld 1234 -- e\xCC\x81 \xF0\x9F\x91\x8D<tool>"
                             "\xff ab  \n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sglc_tokenizer *t = NULL;
    sglc_err err = {{0}};
    int rc = sglc_tokenizer_open_hf_mem(&t, (const char *)data, size, NULL, 0, NULL, 0, NULL, &err);
    if (rc != 0) {
        if (t || !err.msg[0]) abort();
        return 0;
    }
    int32_t ids[256];
    for (int special = 0; special < 2; special++) {
        int64_t n = sglc_tokenizer_encode(t, k_text, sizeof k_text - 1, special, 1, ids, 256);
        if (n < 0) continue; /* e.g. a regex too hard for the match limit */
        size_t m = n < 256 ? (size_t)n : 256;
        for (size_t i = 0; i < m; i++) {
            if (ids[i] < 0 || ids[i] >= sglc_tokenizer_vocab_size(t)) abort();
        }
        size_t dl = sglc_tokenizer_decode(t, ids, m, special, NULL, 0);
        char *dec = malloc(dl + 1);
        if (dec && sglc_tokenizer_decode(t, ids, m, special, dec, dl) != dl) abort();
        free(dec);
        size_t cap = sglc_detok_stream_cap(t);
        char *chunk = malloc(cap);
        sglc_detok_stream st;
        sglc_detok_stream_init(&st);
        for (size_t i = 0; chunk && i <= m; i++) {
            size_t k = i < m ? sglc_detok_stream_push(&st, t, ids[i], special, chunk, cap)
                             : sglc_detok_stream_flush(&st, chunk, cap);
            for (size_t j = 0; j < k;) {
                int r = sglc_utf8_scan((const unsigned char *)chunk + j, k - j);
                if (r <= 0) abort();
                j += (size_t)r;
            }
        }
        free(chunk);
    }
    (void)sglc_tokenizer_chat_template(t);
    sglc_tokenizer_close(t);
    return 0;
}
