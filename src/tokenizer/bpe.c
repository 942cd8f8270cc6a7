/* Encoding: special-token partition, pre-tokenization, byte-level BPE.
 *
 * Follows llama.cpp's llama_vocab::impl::tokenize for BPE vocabs:
 * 1. tokenizer_st_partition: for each special token (control, user-defined, unknown; longest
 *    text first) every still-raw fragment is split at each occurrence, left to right. With
 *    parse_special == 0 control and unknown tokens are skipped, user-defined ones still match.
 * 2. Each raw fragment is pre-tokenized into words (pretokenize.c).
 * 3. Each word is merged with llama.cpp's priority-queue BPE: lowest merge rank first, ties to
 *    the leftmost pair; stale queue entries are recognised by a changed symbol length. Symbols
 *    carry token ids, so merge lookups are integer hash probes (a merge's parts must be vocab
 *    tokens, which open checks, so a symbol that is not a token can never merge again).
 * 4. A final symbol that is not a token falls back to the single-byte tokens of its
 *    byte-level text, as llama.cpp does (bytes that are not tokens are dropped).
 * O(n log n) per word; all memory is per call (sglc_tok_scratch).
 *
 * Tokenizers built from tokenizer.json (t->hf) follow HF `tokenizers` instead in step 1: all
 * added tokens are matched at once, leftmost first and longest among those starting there
 * (its Aho-Corasick LeftmostLongest), lstrip/rstrip tokens take the whitespace beside them, and
 * each raw fragment is Unicode-normalized (utf8proc) and, for ByteLevel(add_prefix_space),
 * given a leading space before pre-tokenization. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tokenizer/tokenizer_impl.h"

uint64_t sglc_tok_hash(const void *p, size_t n) {
    const unsigned char *s = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001b3ull;
    }
    return h ^ (h >> 29);
}

int32_t sglc_tok_lookup(const sglc_tokenizer *t, const char *s, size_t n) {
    uint64_t i = sglc_tok_hash(s, n) & t->text_map_mask;
    for (;;) {
        int32_t id = t->text_map[i];
        if (id < 0) return -1;
        size_t len;
        const char *txt = sglc_tok_text(t, id, &len);
        if (len == n && memcmp(txt, s, n) == 0) return id;
        i = (i + 1) & t->text_map_mask;
    }
}

int32_t sglc_tok_insert(sglc_tokenizer *t, int32_t id) {
    size_t n;
    const char *s = sglc_tok_text(t, id, &n);
    uint64_t i = sglc_tok_hash(s, n) & t->text_map_mask;
    for (;;) {
        int32_t other = t->text_map[i];
        if (other < 0) {
            t->text_map[i] = id;
            return -1;
        }
        size_t len;
        const char *txt = sglc_tok_text(t, other, &len);
        if (len == n && memcmp(txt, s, n) == 0) return other;
        i = (i + 1) & t->text_map_mask;
    }
}

static uint64_t merge_key(int32_t l, int32_t r) {
    return ((uint64_t)(uint32_t)l << 32) | (uint32_t)r;
}

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

void sglc_tok_merge_insert(sglc_tokenizer *t, int32_t left, int32_t right, int32_t rank,
                           int32_t merged) {
    uint64_t key = merge_key(left, right);
    uint64_t i = mix64(key) & t->merge_mask;
    while (t->merge_keys[i] != UINT64_MAX) {
        if (t->merge_keys[i] == key) return;
        i = (i + 1) & t->merge_mask;
    }
    t->merge_keys[i] = key;
    t->merge_rank[i] = rank;
    t->merge_result[i] = merged;
}

static int merge_find(const sglc_tokenizer *t, int32_t left, int32_t right, int32_t *rank,
                      int32_t *merged) {
    if (!t->merge_keys) return 0;
    uint64_t key = merge_key(left, right);
    uint64_t i = mix64(key) & t->merge_mask;
    for (;;) {
        uint64_t k = t->merge_keys[i];
        if (k == UINT64_MAX) return 0;
        if (k == key) {
            *rank = t->merge_rank[i];
            *merged = t->merge_result[i];
            return 1;
        }
        i = (i + 1) & t->merge_mask;
    }
}

void sglc_tok_scratch_free(sglc_tok_scratch *s) {
    free(s->real);
    free(s->clean);
    free(s->spans);
    free(s->spans_tmp);
    if (s->match_data) pcre2_match_data_free(s->match_data);
    free(s->syms);
    free(s->heap);
    free(s->enc);
    free(s->ivals);
    free(s->norm);
    free(s->out);
    memset(s, 0, sizeof *s);
}

static int grow_buf(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t n = *cap ? *cap : 64;
    while (n < need) {
        if (n > SIZE_MAX / 2 / elem) return -1;
        n *= 2;
    }
    void *q = realloc(*p, n * elem);
    if (!q) return -1;
    *p = q;
    *cap = n;
    return 0;
}

static int emit(sglc_tok_scratch *s, int32_t id) {
    if (grow_buf((void **)&s->out, &s->out_cap, s->out_len + 1, sizeof *s->out)) return -1;
    s->out[s->out_len++] = id;
    return 0;
}

/* Byte-level (GPT-2 bytes_to_unicode) text of bytes w[0..n) into s->enc; returns its length. */
static size_t byte_encode(const sglc_tokenizer *t, const unsigned char *w, size_t n,
                          sglc_tok_scratch *s, int *oom) {
    *oom = grow_buf((void **)&s->enc, &s->enc_cap, n * 2 + 1, 1);
    if (*oom) return 0;
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        m += sglc_utf8_encode(t->byte_to_cpt[w[i]], (unsigned char *)s->enc + m);
    return m;
}

static int heap_less(const sglc_bpe_bigram *a, const sglc_bpe_bigram *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static int heap_push(sglc_tok_scratch *s, sglc_bpe_bigram b) {
    if (grow_buf((void **)&s->heap, &s->heap_cap, s->heap_len + 1, sizeof *s->heap)) return -1;
    size_t i = s->heap_len++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!heap_less(&b, &s->heap[parent])) break;
        s->heap[i] = s->heap[parent];
        i = parent;
    }
    s->heap[i] = b;
    return 0;
}

static sglc_bpe_bigram heap_pop(sglc_tok_scratch *s) {
    sglc_bpe_bigram top = s->heap[0];
    sglc_bpe_bigram last = s->heap[--s->heap_len];
    size_t n = s->heap_len, i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && heap_less(&s->heap[c + 1], &s->heap[c])) c++;
        if (!heap_less(&s->heap[c], &last)) break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (n) s->heap[i] = last;
    return top;
}

static int add_bigram(const sglc_tokenizer *t, sglc_tok_scratch *s, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return 0;
    const sglc_bpe_symbol *L = &s->syms[l], *R = &s->syms[r];
    if (L->id < 0 || R->id < 0) return 0;
    int32_t rank, merged;
    if (!merge_find(t, L->id, R->id, &rank, &merged)) return 0;
    return heap_push(s, (sglc_bpe_bigram){rank, l, r, L->len, R->len, merged});
}

/* llama.cpp's fallback for a symbol that is not a token: the single-byte strings of its
 * byte-level text, each looked up as a token. */
static int emit_fallback(const sglc_tokenizer *t, sglc_tok_scratch *s, const unsigned char *w,
                         size_t n) {
    int oom;
    size_t m = byte_encode(t, w, n, s, &oom);
    if (oom) return -1;
    for (size_t i = 0; i < m; i++) {
        int32_t id = sglc_tok_lookup(t, s->enc + i, 1);
        if (id >= 0 && emit(s, id)) return -1;
    }
    return 0;
}

static int bpe_word(const sglc_tokenizer *t, sglc_tok_scratch *s, const unsigned char *w,
                    size_t n) {
    if (t->flags.ignore_merges) {
        int oom;
        size_t m = byte_encode(t, w, n, s, &oom);
        if (oom) return -1;
        int32_t id = sglc_tok_lookup(t, s->enc, m);
        if (id >= 0) return emit(s, id);
    }
    if (grow_buf((void **)&s->syms, &s->sym_cap, n, sizeof *s->syms)) return -1;
    for (size_t i = 0; i < n; i++) {
        s->syms[i] = (sglc_bpe_symbol){t->byte_token[w[i]], (uint32_t)i, 1, (int32_t)i - 1,
                                       i + 1 == n ? -1 : (int32_t)i + 1};
    }
    s->heap_len = 0;
    for (size_t i = 1; i < n; i++) {
        if (add_bigram(t, s, (int32_t)i - 1, (int32_t)i)) return -1;
    }
    while (s->heap_len) {
        sglc_bpe_bigram b = heap_pop(s);
        sglc_bpe_symbol *L = &s->syms[b.left], *R = &s->syms[b.right];
        if (L->len == 0 || R->len == 0 || L->len != b.left_len || R->len != b.right_len) continue;
        L->id = b.merged;
        L->len += R->len;
        R->len = 0;
        L->next = R->next;
        if (R->next >= 0) s->syms[R->next].prev = b.left;
        if (add_bigram(t, s, L->prev, b.left) || add_bigram(t, s, b.left, L->next)) return -1;
    }
    for (int32_t i = 0; i >= 0 && (size_t)i < n; i = s->syms[i].next) {
        const sglc_bpe_symbol *sym = &s->syms[i];
        if (sym->id >= 0) {
            if (emit(s, sym->id)) return -1;
        } else if (emit_fallback(t, s, w + sym->start, sym->len)) {
            return -1;
        }
    }
    return 0;
}

static int is_ascii(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] >= 0x80) return 0;
    }
    return 1;
}

static int encode_raw(const sglc_tokenizer *t, sglc_tok_scratch *s, const char *text, size_t len) {
    utf8proc_uint8_t *normed = NULL;
    if (t->norm != SGLC_NORM_NONE && !is_ascii(text, len) && len < (size_t)PTRDIFF_MAX / 8) {
        static const utf8proc_option_t opts[SGLC_NORM_COUNT] = {
            0,
            UTF8PROC_STABLE | UTF8PROC_COMPOSE,
            UTF8PROC_STABLE | UTF8PROC_DECOMPOSE,
            UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT,
            UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT,
        };
        utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)text, (utf8proc_ssize_t)len,
                                          &normed, opts[t->norm]);
        if (r == UTF8PROC_ERROR_NOMEM) return SGLC_ERR_NOMEM;
        /* invalid UTF-8 (HF never sees it) is pre-tokenized as given */
        if (r >= 0 && normed) {
            text = (const char *)normed;
            len = (size_t)r;
        }
    }
    if (t->prefix_space && (len == 0 || text[0] != ' ')) {
        if (grow_buf((void **)&s->norm, &s->norm_cap, len + 1, 1)) {
            free(normed);
            return SGLC_ERR_NOMEM;
        }
        s->norm[0] = ' ';
        if (len) memcpy(s->norm + 1, text, len);
        text = s->norm;
        len++;
    }
    int rc = sglc_pretok_split(t->pretok, text, len, s);
    free(normed);
    if (rc) return rc;
    for (size_t i = 0; i < s->n_spans; i++) {
        const sglc_tok_span sp = s->spans[i];
        if (bpe_word(t, s, s->real + sp.start, sp.end - sp.start)) return SGLC_ERR_NOMEM;
    }
    return SGLC_OK;
}

typedef struct {
    size_t off, len;
    int32_t id; /* -1: raw text */
} fragment;

/* Unicode White_Space (Rust's char::is_whitespace, which HF's lstrip/rstrip use). */
static int is_white_space(uint32_t c) {
    return (c >= 9 && c <= 13) || c == 32 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

static int push_fragment(fragment **v, size_t *cap, size_t *n, fragment f) {
    if (grow_buf((void **)v, cap, *n + 1, sizeof **v)) return -1;
    (*v)[(*n)++] = f;
    return 0;
}

/* HF AddedVocabulary::find_matches: leftmost match, longest among those starting there
 * (t->specials is longest first), no overlaps; lstrip/rstrip widen the match over whitespace
 * without crossing the previous match. hit[k] caches the next occurrence of special k. */
static int partition_hf(const sglc_tokenizer *t, const char *text, size_t len, int parse_special,
                        fragment **frags, size_t *n_frags, size_t *frag_cap) {
    size_t *hit = malloc(((size_t)t->n_specials + 1) * sizeof *hit);
    if (!hit) return -1;
    for (int32_t k = 0; k < t->n_specials; k++)
        hit[k] = 0; /* below any pos > 0; searched on first use */
    size_t pos = 0;
    int first = 1;
    while (pos < len) {
        int32_t best = -1;
        size_t best_at = SIZE_MAX;
        for (int32_t k = 0; k < t->n_specials; k++) {
            int32_t sid = t->specials[k];
            if (!parse_special && (t->attr[sid] & (SGLC_TOK_ATTR_CONTROL | SGLC_TOK_ATTR_UNKNOWN)))
                continue;
            if (hit[k] == SIZE_MAX) continue;
            if (first || hit[k] < pos) {
                size_t slen;
                const char *stxt = sglc_tok_text(t, sid, &slen);
                const char *h = memmem(text + pos, len - pos, stxt, slen);
                hit[k] = h ? (size_t)(h - text) : SIZE_MAX;
            }
            if (hit[k] < best_at) {
                best_at = hit[k];
                best = k;
            }
        }
        first = 0;
        if (best < 0) break;
        int32_t sid = t->specials[best];
        size_t slen;
        sglc_tok_text(t, sid, &slen);
        size_t start = best_at, end = best_at + slen;
        if (t->attr[sid] & SGLC_TOK_ATTR_LSTRIP) {
            while (start > pos) {
                size_t b = start - 1, k;
                while (b > pos && ((unsigned char)text[b] & 0xC0) == 0x80)
                    b--;
                uint32_t c =
                    sglc_utf8_decode_lenient((const unsigned char *)text + b, start - b, &k);
                if (b + k != start || !is_white_space(c)) break;
                start = b;
            }
        }
        if (t->attr[sid] & SGLC_TOK_ATTR_RSTRIP) {
            while (end < len) {
                size_t k;
                uint32_t c =
                    sglc_utf8_decode_lenient((const unsigned char *)text + end, len - end, &k);
                if (!is_white_space(c)) break;
                end += k;
            }
        }
        if ((start > pos &&
             push_fragment(frags, frag_cap, n_frags, (fragment){pos, start - pos, -1})) ||
            push_fragment(frags, frag_cap, n_frags, (fragment){start, end - start, sid})) {
            free(hit);
            return -1;
        }
        pos = end;
    }
    free(hit);
    if (pos < len && push_fragment(frags, frag_cap, n_frags, (fragment){pos, len - pos, -1}))
        return -1;
    return 0;
}

int64_t sglc_tokenizer_encode(const sglc_tokenizer *t, const char *text, size_t len,
                              int parse_special, int add_bos, int32_t *ids, size_t cap) {
    if (!t || (!text && len)) return SGLC_ERR_ARG;
    sglc_tok_scratch s = {0};
    fragment *frags = NULL, *next = NULL;
    size_t n_frags = 0, frag_cap = 0, next_cap = 0;
    int64_t ret = SGLC_ERR_NOMEM;

    if (add_bos && t->bos >= 0 && emit(&s, t->bos)) goto cleanup;
    if (t->hf) {
        if (partition_hf(t, text, len, parse_special, &frags, &n_frags, &frag_cap)) goto cleanup;
    } else if (len) {
        if (grow_buf((void **)&frags, &frag_cap, 1, sizeof *frags)) goto cleanup;
        frags[n_frags++] = (fragment){0, len, -1};
    }
    for (int32_t k = 0; k < t->n_specials && n_frags && !t->hf; k++) {
        int32_t sid = t->specials[k];
        if (!parse_special && (t->attr[sid] & (SGLC_TOK_ATTR_CONTROL | SGLC_TOK_ATTR_UNKNOWN)))
            continue;
        size_t slen;
        const char *stxt = sglc_tok_text(t, sid, &slen);
        size_t n_next = 0;
        int found = 0;
        for (size_t f = 0; f < n_frags; f++) {
            fragment fr = frags[f];
            if (fr.id >= 0) {
                if (grow_buf((void **)&next, &next_cap, n_next + 1, sizeof *next)) goto cleanup;
                next[n_next++] = fr;
                continue;
            }
            size_t pos = fr.off, end = fr.off + fr.len;
            while (pos < end) {
                const char *hit = memmem(text + pos, end - pos, stxt, slen);
                if (!hit) break;
                size_t at = (size_t)(hit - text);
                found = 1;
                if (grow_buf((void **)&next, &next_cap, n_next + 2, sizeof *next)) goto cleanup;
                if (at > pos) next[n_next++] = (fragment){pos, at - pos, -1};
                next[n_next++] = (fragment){at, slen, sid};
                pos = at + slen;
            }
            if (pos < end) {
                if (grow_buf((void **)&next, &next_cap, n_next + 1, sizeof *next)) goto cleanup;
                next[n_next++] = (fragment){pos, end - pos, -1};
            }
        }
        if (found) {
            fragment *tf = frags;
            frags = next;
            next = tf;
            size_t tc = frag_cap;
            frag_cap = next_cap;
            next_cap = tc;
            n_frags = n_next;
        }
    }
    for (size_t f = 0; f < n_frags; f++) {
        if (frags[f].id >= 0) {
            if (emit(&s, frags[f].id)) goto cleanup;
        } else {
            int rc = encode_raw(t, &s, text + frags[f].off, frags[f].len);
            if (rc) {
                ret = rc;
                goto cleanup;
            }
        }
    }
    if (ids && cap && s.out_len)
        memcpy(ids, s.out, (s.out_len < cap ? s.out_len : cap) * sizeof *ids);
    ret = (int64_t)s.out_len;
cleanup:
    free(frags);
    free(next);
    sglc_tok_scratch_free(&s);
    return ret;
}
