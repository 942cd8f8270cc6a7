/* Golden-file helpers shared by the tokenizer tests (GGUF vocab vs llama.cpp, tokenizer.json
 * vs HF tokenizers): the case format written by scripts/golden/make_tokenizer*_golden.py, and
 * decode helpers used to check round trips and streaming. */
#ifndef SGLC_TEST_TOKENIZER_GOLDEN_H
#define SGLC_TEST_TOKENIZER_GOLDEN_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "test_util.h"
#include "tokenizer/tokenizer.h"

static size_t unhex(const char *h, size_t n, unsigned char *out) {
    size_t m = 0;
    for (size_t i = 0; i + 1 < n; i += 2) {
        unsigned v;
        sscanf(h + i, "%2x", &v);
        out[m++] = (unsigned char)v;
    }
    return m;
}

typedef struct {
    char mode;
    unsigned char *text;
    size_t text_len;
    int32_t *ids;
    size_t n_ids;
    unsigned char *detok; /* special=True */
    size_t detok_len;
    unsigned char *detok0; /* special=False */
    size_t detok0_len;
} golden_case;

static size_t load_golden(const char *path, golden_case **out) {
    size_t len;
    char *buf = test_read_file(path, &len);
    if (!buf) {
        fprintf(stderr, "cannot read %s\n", path);
        return 0;
    }
    size_t n = 0, cap = 0;
    golden_case *cases = NULL;
    char *save = NULL;
    for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#' || !line[0]) continue;
        char *f[5];
        char *p = line;
        int nf = 0;
        for (; nf < 5; nf++) {
            f[nf] = p;
            char *tab = strchr(p, '\t');
            if (!tab) {
                nf++;
                break;
            }
            *tab = 0;
            p = tab + 1;
        }
        if (nf != 5) {
            fprintf(stderr, "bad golden line\n");
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            cases = realloc(cases, cap * sizeof *cases);
        }
        golden_case *c = &cases[n++];
        memset(c, 0, sizeof *c);
        c->mode = f[0][0];
        size_t hl = strlen(f[1]);
        c->text = malloc(hl / 2 + 1);
        c->text_len = unhex(f[1], hl, c->text);
        size_t idcap = strlen(f[2]) / 2 + 1;
        c->ids = malloc(idcap * sizeof *c->ids);
        if (strcmp(f[2], "-") != 0) {
            char *q = f[2];
            while (*q) {
                char *e;
                long v = strtol(q, &e, 10);
                if (e == q) break;
                c->ids[c->n_ids++] = (int32_t)v;
                q = e;
            }
        }
        if (strcmp(f[3], "=") == 0) {
            c->detok = malloc(c->text_len + 1);
            memcpy(c->detok, c->text, c->text_len);
            c->detok_len = c->text_len;
        } else {
            c->detok = malloc(strlen(f[3]) / 2 + 1);
            c->detok_len = unhex(f[3], strlen(f[3]), c->detok);
        }
        if (strcmp(f[4], "=") == 0) {
            c->detok0 = malloc(c->detok_len + 1);
            memcpy(c->detok0, c->detok, c->detok_len);
            c->detok0_len = c->detok_len;
        } else {
            c->detok0 = malloc(strlen(f[4]) / 2 + 1);
            c->detok0_len = unhex(f[4], strlen(f[4]), c->detok0);
        }
    }
    free(buf);
    *out = cases;
    return n;
}

static void print_ids(const char *label, const int32_t *ids, size_t n) {
    fprintf(stderr, "    %s:", label);
    for (size_t i = 0; i < n && i < 40; i++)
        fprintf(stderr, " %d", ids[i]);
    if (n > 40) fprintf(stderr, " ... (%zu)", n);
    fputc('\n', stderr);
}

/* Streams ids through the detokenizer; checks each chunk is valid UTF-8; returns the bytes. */
static unsigned char *stream_decode(const sglc_tokenizer *t, const int32_t *ids, size_t n,
                                    int skip_special, size_t *out_len, int *bad_chunk) {
    size_t cap = sglc_detok_stream_cap(t);
    char *chunk = malloc(cap);
    size_t total_cap = 64, total = 0;
    unsigned char *all = malloc(total_cap);
    sglc_detok_stream st;
    sglc_detok_stream_init(&st);
    *bad_chunk = 0;
    for (size_t i = 0; i <= n; i++) {
        size_t m = i < n ? sglc_detok_stream_push(&st, t, ids[i], skip_special, chunk, cap)
                         : sglc_detok_stream_flush(&st, chunk, cap);
        if (!valid_utf8((const unsigned char *)chunk, m)) *bad_chunk = 1;
        while (total + m > total_cap)
            total_cap *= 2;
        all = realloc(all, total_cap);
        memcpy(all + total, chunk, m);
        total += m;
    }
    free(chunk);
    *out_len = total;
    return all;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Concatenated token pieces: what a streaming client sees (no clean-up of spaces). */
static char *raw_pieces(const sglc_tokenizer *t, const int32_t *ids, size_t n, int skip_special,
                        size_t *len) {
    size_t cap = 1;
    for (size_t i = 0; i < n; i++) {
        size_t l;
        sglc_tokenizer_token_bytes(t, ids[i], &l);
        cap += l;
    }
    char *out = malloc(cap);
    *len = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l;
        const char *p = sglc_tokenizer_token_bytes(t, ids[i], &l);
        /* skip_special drops exactly what decode drops: compare lengths with decode of one */
        if (skip_special && sglc_tokenizer_decode(t, &ids[i], 1, 1, NULL, 0) == 0) l = 0;
        memcpy(out + *len, p, l);
        *len += l;
    }
    return out;
}

#endif
