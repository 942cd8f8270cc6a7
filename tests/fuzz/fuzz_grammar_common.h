/* Shared body of the grammar fuzz targets: the input is a grammar source, optionally followed
 * by a NUL byte and a text. A source that compiles must give a working matcher: the text is fed
 * in 3-byte pieces, then a few steps take the first allowed token of the mask over a small
 * synthetic vocabulary (single bytes, UTF-8 pieces, an eos), and each chosen token must advance
 * the matcher, as the mask promised. A source that fails must leave a message. */
#ifndef SGLC_FUZZ_GRAMMAR_COMMON_H
#define SGLC_FUZZ_GRAMMAR_COMMON_H

#include <stdlib.h>
#include <string.h>

#include "engine/grammar/grammar.h"

static sglc_gvocab *fz_vocab;
static sglc_gscratch *fz_sc;

static void fz_init(void) {
    static const char *const extra[] = {"{\"", "\":", "\",", "\"}",      "true",     "null", "12",
                                        "ab",  "日",  "😀",   "\xf0\x9f", "\x98\x80", "α",    "\xce",
                                        " ",   ", ",  ": ",  "[{",       "}]"};
    enum { NB = 256, NX = sizeof extra / sizeof extra[0], V = NB + NX + 1 };
    static char single[NB];
    static const char *bytes[V];
    static size_t lens[V];
    static uint8_t kinds[V];
    for (int i = 0; i < NB; i++) {
        single[i] = (char)i;
        bytes[i] = &single[i];
        lens[i] = 1;
        kinds[i] = SGLC_GTOK_TEXT;
    }
    for (int i = 0; i < NX; i++) {
        bytes[NB + i] = extra[i];
        lens[NB + i] = strlen(extra[i]);
        kinds[NB + i] = SGLC_GTOK_TEXT;
    }
    bytes[V - 1] = "</s>", lens[V - 1] = 4, kinds[V - 1] = SGLC_GTOK_EOG;
    if (sglc_gvocab_open(&fz_vocab, V, bytes, lens, kinds) != 0) __builtin_trap();
    if (sglc_gscratch_open(&fz_sc) != 0) __builtin_trap();
}

static int fz_run(sglc_grammar_kind kind, const uint8_t *data, size_t size) {
    if (!fz_vocab) fz_init();
    const uint8_t *nul = memchr(data, 0, size);
    size_t src_len = nul ? (size_t)(nul - data) : size;
    const uint8_t *text = nul ? nul + 1 : NULL;
    size_t text_len = nul ? size - src_len - 1 : 0;
    char err[256] = "";
    sglc_gram *g = NULL;
    if (sglc_gram_compile(kind, (const char *)data, src_len, &g, err, sizeof err) != 0) {
        if (g || !err[0]) __builtin_trap();
        return 0;
    }
    sglc_gmatcher m;
    if (sglc_gmatcher_init(&m, g, fz_sc) != 0) __builtin_trap();
    for (size_t i = 0; i < text_len; i += 3) {
        size_t k = text_len - i < 3 ? text_len - i : 3;
        if (sglc_gmatcher_advance(&m, text + i, k, fz_sc) != 0) break;
    }
    size_t words = sglc_gvocab_mask_words(fz_vocab);
    uint32_t *bits = malloc(words * sizeof *bits);
    if (!bits) __builtin_trap();
    for (int step = 0; step < 6; step++) {
        int64_t n = sglc_gmask_compute(fz_vocab, &m, fz_sc, bits);
        if (n < 0) __builtin_trap();
        int32_t pick = -1;
        /* the step-th allowed text token (varies the path a little) */
        int32_t seen = 0;
        for (int32_t t = 0; t < sglc_gvocab_size(fz_vocab) - 1 && pick < 0; t++)
            if ((bits[t >> 5] >> (t & 31)) & 1u)
                if (seen++ == step % 3 || n <= 3) pick = t;
        int eos = (bits[(sglc_gvocab_size(fz_vocab) - 1) >> 5] >>
                   ((sglc_gvocab_size(fz_vocab) - 1) & 31)) &
                  1u;
        if (eos != sglc_gmatcher_accepting(&m)) __builtin_trap();
        if (pick < 0) break;
        uint8_t b[8];
        size_t bl;
        if (pick < 256) {
            b[0] = (uint8_t)pick;
            bl = 1;
        } else {
            break; /* multi-byte pieces: covered by the mask walk itself */
        }
        if (sglc_gmatcher_advance(&m, b, bl, fz_sc) != 0) __builtin_trap();
    }
    (void)sglc_gmatcher_terminated(&m);
    free(bits);
    sglc_gmatcher_free(&m);
    sglc_gram_free(g);
    return 0;
}

#endif
