/* Streaming detokenizer: token pieces are byte strings that may split a UTF-8 character
 * (byte-level BPE cuts emoji and CJK into several tokens), so each push emits only complete,
 * valid sequences and carries an unfinished tail (a valid prefix, at most 3 bytes) into the
 * next push. Ill-formed bytes become U+FFFD using the "maximal subpart" rule (Unicode §3.9,
 * WHATWG, Python's errors="replace"); because a tail is held back only while it can still
 * complete, the output is the same however the byte stream is cut into pushes. The state is
 * caller-owned and the tokenizer is only read, so no allocation happens per token. */
#include <string.h>

#include "base/utf8.h"
#include "tokenizer/tokenizer_impl.h"

void sglc_detok_stream_init(sglc_detok_stream *s) {
    s->n_pending = 0;
}

size_t sglc_detok_stream_cap(const sglc_tokenizer *t) {
    return 3 * (t->max_piece_len + 4) + 8;
}

static const unsigned char k_fffd[3] = {0xEF, 0xBF, 0xBD};

size_t sglc_detok_stream_push(sglc_detok_stream *s, const sglc_tokenizer *t, int32_t id,
                              int skip_special, char *out, size_t cap) {
    size_t pl = 0;
    const char *piece = sglc_tokenizer_token_bytes(t, id, &pl);
    if (!piece || (skip_special && (t->attr[id] & (SGLC_TOK_ATTR_CONTROL | SGLC_TOK_ATTR_UNKNOWN))))
        pl = 0;
    SGLC_ASSERT(s->n_pending <= 3);
    /* every input byte yields at most 3 output bytes */
    SGLC_ASSERT(cap >= 3 * (s->n_pending + pl));
    const unsigned char *p = (const unsigned char *)piece;
    size_t total = s->n_pending + pl, i = 0, m = 0;
    unsigned char *o = (unsigned char *)out;
    while (i < total) {
        unsigned char win[4];
        size_t avail = total - i < 4 ? total - i : 4;
        for (size_t k = 0; k < avail; k++) {
            size_t j = i + k;
            win[k] = j < s->n_pending ? s->pending[j] : p[j - s->n_pending];
        }
        int r = sglc_utf8_scan(win, avail);
        if (r > 0) {
            memcpy(o + m, win, (size_t)r);
            m += (size_t)r;
            i += (size_t)r;
        } else if (r == 0) {
            break; /* unfinished tail: keep it */
        } else {
            memcpy(o + m, k_fffd, 3);
            m += 3;
            i += (size_t)-r;
        }
    }
    unsigned char tail[4];
    size_t nt = total - i;
    for (size_t k = 0; k < nt; k++) {
        size_t j = i + k;
        tail[k] = j < s->n_pending ? s->pending[j] : p[j - s->n_pending];
    }
    memcpy(s->pending, tail, nt);
    s->n_pending = nt;
    return m;
}

size_t sglc_detok_stream_flush(sglc_detok_stream *s, char *out, size_t cap) {
    if (!s->n_pending) return 0;
    SGLC_ASSERT(cap >= 3);
    s->n_pending = 0;
    memcpy(out, k_fffd, 3);
    return 3;
}
