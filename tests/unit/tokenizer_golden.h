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
#include "utf8_oracle.h"

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

/* Checks the golden file at path (named file in the log) against tokenizer t: ids equal the
 * reference's (ref names it in mismatch lines), decode equals its decode with and without
 * special tokens, the pieces round-trip (see rt_detok) and the streaming detokenizer gives the
 * pieces and never invalid UTF-8. At least min_cases cases. */
static inline void golden_check_file(const sglc_tokenizer *t, const char *path, const char *file,
                                     size_t min_cases, const char *ref, int rt_detok) {
    golden_case *cases = NULL;
    size_t n = load_golden(path, &cases);
    CHECKF(n >= min_cases, "only %zu golden cases in %s", n, path);
    size_t id_mismatch = 0, dec_mismatch = 0, dec0_mismatch = 0, rt_fail = 0, stream_fail = 0,
           printed = 0, n_rt = 0;
    for (size_t i = 0; i < n; i++) {
        golden_case *c = &cases[i];
        int special = c->mode == 'S';
        int64_t need =
            sglc_tokenizer_encode(t, (const char *)c->text, c->text_len, special, 0, NULL, 0);
        CHECK(need >= 0);
        if (need < 0) continue;
        int32_t *ids = malloc(((size_t)need + 1) * sizeof *ids);
        int64_t got = sglc_tokenizer_encode(t, (const char *)c->text, c->text_len, special, 0, ids,
                                            (size_t)need);
        CHECK(got == need);
        if ((size_t)got != c->n_ids || memcmp(ids, c->ids, c->n_ids * sizeof *ids) != 0) {
            id_mismatch++;
            if (printed++ < 8) {
                fprintf(stderr, "  id mismatch, case %zu mode %c text '%.*s'\n", i, c->mode,
                        (int)(c->text_len > 120 ? 120 : c->text_len), (const char *)c->text);
                print_ids(ref, c->ids, c->n_ids);
                print_ids("sglc     ", ids, (size_t)got);
            }
        }
        /* decode the reference ids, so decode is tested even where encode differs */
        size_t dl = sglc_tokenizer_decode(t, c->ids, c->n_ids, 0, NULL, 0);
        char *dec = malloc(dl + 1);
        CHECK(sglc_tokenizer_decode(t, c->ids, c->n_ids, 0, dec, dl) == dl);
        if (dl != c->detok_len || memcmp(dec, c->detok, dl) != 0) dec_mismatch++;
        size_t dl0 = sglc_tokenizer_decode(t, c->ids, c->n_ids, 1, NULL, 0);
        char *dec0 = malloc(dl0 + 1);
        sglc_tokenizer_decode(t, c->ids, c->n_ids, 1, dec0, dl0);
        if (dl0 != c->detok0_len || memcmp(dec0, c->detok0, dl0) != 0) dec0_mismatch++;
        size_t rl, rl0;
        char *raw = raw_pieces(t, c->ids, c->n_ids, 0, &rl);
        char *raw0 = raw_pieces(t, c->ids, c->n_ids, 1, &rl0);
        /* round trip: the pieces of special=True cases of valid UTF-8 concatenate to the text
         * (rt_detok: to the reference's decode, the text itself unless normalized) */
        if (special && valid_utf8(c->text, c->text_len)) {
            n_rt++;
            const unsigned char *want = rt_detok ? (const unsigned char *)c->detok : c->text;
            const size_t want_len = rt_detok ? c->detok_len : c->text_len;
            if (rl != want_len || memcmp(raw, want, rl) != 0) {
                rt_fail++;
                fprintf(stderr, "  round trip differs for case %zu\n", i);
            }
        }
        /* streaming, both with and without special tokens */
        for (int skip = 0; skip < 2; skip++) {
            size_t sl;
            int bad;
            unsigned char *s = stream_decode(t, c->ids, c->n_ids, skip, &sl, &bad);
            const char *want = skip ? raw0 : raw;
            size_t wl = skip ? rl0 : rl;
            if (bad || (valid_utf8((const unsigned char *)want, wl) &&
                        (sl != wl || memcmp(s, want, wl) != 0))) {
                stream_fail++;
                fprintf(stderr, "  stream differs for case %zu (skip_special=%d, bad chunk %d)\n",
                        i, skip, bad);
            }
            free(s);
        }
        free(raw);
        free(raw0);
        free(dec);
        free(dec0);
        free(ids);
    }
    fprintf(stderr,
            "golden %s: %zu cases, ids differ in %zu, decode(special) differs in %zu, "
            "decode(skip special) differs in %zu, round trip fails %zu/%zu, stream fails %zu\n",
            file, n, id_mismatch, dec_mismatch, dec0_mismatch, rt_fail, n_rt, stream_fail);
    CHECK(id_mismatch == 0);
    CHECK(dec_mismatch == 0);
    CHECK(dec0_mismatch == 0);
    CHECK(rt_fail == 0);
    CHECK(stream_fail == 0);
    for (size_t i = 0; i < n; i++) {
        free(cases[i].text);
        free(cases[i].ids);
        free(cases[i].detok);
        free(cases[i].detok0);
    }
    free(cases);
}

#endif
