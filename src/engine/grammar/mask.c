/* The vocabulary mask of a matcher state, and a bounded cache of masks.
 *
 * The vocabulary's text tokens are sorted by their bytes once, with the length of the prefix
 * each shares with the one before (lcp). A mask walks them in that order holding the matcher
 * state after each byte depth of the current token in one arena: a token starts from the state
 * at its shared prefix, so every distinct prefix is matched once (a walk of the byte trie
 * without building it), and once byte d of a token is refused every following token that
 * shares bytes 0..d is refused by comparing two integers. Partial UTF-8 bytes share the stack
 * words of their parent depth, so only complete code points cost a matcher step. */
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "engine/grammar/grammar_impl.h"

#define MAX_TOKEN_BYTES 1024 /* longer tokens are never allowed */

struct sglc_gvocab {
    int32_t n_vocab;
    size_t words;
    int32_t n_text;
    int32_t *order; /* text token ids sorted by bytes */
    uint16_t *lcp;  /* shared prefix with the previous token in order */
    uint16_t *len;  /* byte length, per sorted index */
    size_t *off;    /* into pool, per sorted index */
    uint8_t *pool;
    int32_t *eog;
    int32_t n_eog;
    int32_t max_len;
};

int gram_scratch_levels(sglc_gscratch *sc, size_t n, sglc_gvec **arena, size_t **off, size_t **cnt,
                        size_t **top, uint32_t **partial);

typedef struct {
    const char *const *bytes;
    const size_t *lens;
} sort_ctx;

static int cmp_tok(const void *x, const void *y, void *vctx) {
    const sort_ctx *c = vctx;
    int32_t a = *(const int32_t *)x, b = *(const int32_t *)y;
    size_t la = c->lens[a], lb = c->lens[b];
    int r = memcmp(c->bytes[a], c->bytes[b], la < lb ? la : lb);
    if (r) return r;
    if (la != lb) return la < lb ? -1 : 1;
    return a < b ? -1 : a > b;
}

void sglc_gvocab_close(sglc_gvocab *v) {
    if (!v) return;
    free(v->order);
    free(v->lcp);
    free(v->len);
    free(v->off);
    free(v->pool);
    free(v->eog);
    free(v);
}

int sglc_gvocab_open(sglc_gvocab **out, int32_t n, const char *const *bytes, const size_t *lens,
                     const uint8_t *kinds) {
    *out = NULL;
    if (n <= 0) return SGLC_ERR_ARG;
    sglc_gvocab *v = calloc(1, sizeof *v);
    if (!v) return SGLC_ERR_NOMEM;
    v->n_vocab = n;
    v->words = ((size_t)n + 31) / 32;
    v->order = malloc((size_t)n * sizeof *v->order);
    v->lcp = malloc((size_t)n * sizeof *v->lcp);
    v->len = malloc((size_t)n * sizeof *v->len);
    v->off = malloc((size_t)n * sizeof *v->off);
    v->eog = malloc((size_t)n * sizeof *v->eog);
    if (!v->order || !v->lcp || !v->len || !v->off || !v->eog) goto nomem;
    size_t total = 0;
    for (int32_t t = 0; t < n; t++) {
        if (kinds[t] == SGLC_GTOK_EOG) v->eog[v->n_eog++] = t;
        if (kinds[t] != SGLC_GTOK_TEXT || lens[t] == 0 || lens[t] > MAX_TOKEN_BYTES || !bytes[t])
            continue;
        v->order[v->n_text++] = t;
        total += lens[t];
    }
    sort_ctx ctx = {bytes, lens};
    qsort_r(v->order, (size_t)v->n_text, sizeof *v->order, cmp_tok, &ctx);
    v->pool = malloc(total + 1);
    if (!v->pool) goto nomem;
    size_t at = 0;
    for (int32_t i = 0; i < v->n_text; i++) {
        int32_t t = v->order[i];
        v->len[i] = (uint16_t)lens[t];
        v->off[i] = at;
        memcpy(v->pool + at, bytes[t], lens[t]);
        at += lens[t];
        if ((int32_t)lens[t] > v->max_len) v->max_len = (int32_t)lens[t];
        uint16_t l = 0;
        if (i > 0) {
            const uint8_t *p = v->pool + v->off[i - 1], *q = v->pool + v->off[i];
            uint16_t m = v->len[i - 1] < v->len[i] ? v->len[i - 1] : v->len[i];
            while (l < m && p[l] == q[l])
                l++;
        }
        v->lcp[i] = l;
    }
    *out = v;
    return 0;
nomem:
    sglc_gvocab_close(v);
    return SGLC_ERR_NOMEM;
}

int32_t sglc_gvocab_size(const sglc_gvocab *v) {
    return v->n_vocab;
}

size_t sglc_gvocab_mask_words(const sglc_gvocab *v) {
    return v->words;
}

int64_t sglc_gmask_compute(const sglc_gvocab *v, const sglc_gmatcher *m, sglc_gscratch *sc,
                           uint32_t *bits) {
    memset(bits, 0, v->words * sizeof *bits);
    const sglc_gram *g = m->g;
    sglc_gvec *arena;
    size_t *off, *cnt, *top;
    uint32_t *part;
    if (gram_scratch_levels(sc, (size_t)v->max_len + 1, &arena, &off, &cnt, &top, &part) != 0)
        return SGLC_ERR_NOMEM;
    arena->n = 0;
    if (gvec_reserve(arena, m->st.n + SGLC_GRAM_MAX_STATE_WORDS + 1) != 0) return SGLC_ERR_NOMEM;
    memcpy(arena->w, m->st.w, m->st.n * sizeof *arena->w);
    off[0] = 0;
    cnt[0] = m->st.n;
    top[0] = m->st.n;
    part[0] = m->partial;
    int64_t allowed = 0;
    int32_t ok = 0; /* bytes of the previous token whose states are valid */
    for (int32_t i = 0; i < v->n_text; i++) {
        int32_t L = v->lcp[i], len = v->len[i];
        if (L > ok) continue; /* shares a refused prefix */
        const uint8_t *bytes = v->pool + v->off[i];
        int32_t d = L;
        for (; d < len; d++) {
            uint32_t p = part[d], cp;
            int r = gram_step_byte(g, arena->w + off[d], &p, bytes[d], &cp);
            if (r < 0) break;
            if (r == 0) {
                off[d + 1] = off[d];
                cnt[d + 1] = cnt[d];
                top[d + 1] = top[d];
                part[d + 1] = p;
                continue;
            }
            if (arena->cap < top[d] + SGLC_GRAM_MAX_STATE_WORDS + 1) {
                size_t keep = arena->n;
                arena->n = top[d];
                if (gvec_reserve(arena, SGLC_GRAM_MAX_STATE_WORDS + 1) != 0) return SGLC_ERR_NOMEM;
                arena->n = keep;
            }
            sglc_gvec view = {arena->w + top[d], 0, SGLC_GRAM_MAX_STATE_WORDS + 1};
            int rc = gram_step_cp(g, arena->w + off[d], cp, sc, &view);
            SGLC_ASSERT(view.w == arena->w + top[d]); /* the view never reallocates */
            if (rc == SGLC_ERR_NOMEM) return rc;
            if (rc != 0) break;
            off[d + 1] = top[d];
            cnt[d + 1] = view.n;
            top[d + 1] = top[d] + view.n;
            part[d + 1] = 0;
        }
        ok = d;
        if (d == len) {
            int32_t t = v->order[i];
            bits[t >> 5] |= 1u << (t & 31);
            allowed++;
        }
    }
    if (sglc_gmatcher_accepting(m))
        for (int32_t i = 0; i < v->n_eog; i++) {
            int32_t t = v->eog[i];
            bits[t >> 5] |= 1u << (t & 31);
            allowed++;
        }
    return allowed;
}

/* ------------------------------------------------------------------ cache */

typedef struct {
    uint64_t hash;
    uint64_t stamp; /* 0: empty */
    uint32_t *key;  /* partial, then the state words */
    size_t key_n;
    uint32_t *bits;
} cache_entry;

struct sglc_gmask_cache {
    size_t n_sets, words;
    uint64_t clock;
    cache_entry *e; /* [n_sets][2] */
};

int sglc_gmask_cache_open(sglc_gmask_cache **out, size_t n_sets, size_t words) {
    *out = NULL;
    size_t s = 1;
    while (s < n_sets && s < ((size_t)1 << 20))
        s *= 2;
    sglc_gmask_cache *c = calloc(1, sizeof *c);
    if (!c) return SGLC_ERR_NOMEM;
    c->e = calloc(s * 2, sizeof *c->e);
    if (!c->e) {
        free(c);
        return SGLC_ERR_NOMEM;
    }
    c->n_sets = s;
    c->words = words;
    *out = c;
    return 0;
}

void sglc_gmask_cache_close(sglc_gmask_cache *c) {
    if (!c) return;
    for (size_t i = 0; i < 2 * c->n_sets; i++) {
        free(c->e[i].key);
        free(c->e[i].bits);
    }
    free(c->e);
    free(c);
}

static uint64_t state_hash(const sglc_gmatcher *m) {
    uint64_t h = 1469598103934665603ull ^ m->partial;
    for (size_t i = 0; i < m->st.n; i++)
        h = (h ^ m->st.w[i]) * 1099511628211ull;
    return h;
}

static int entry_matches(const cache_entry *e, uint64_t h, const sglc_gmatcher *m) {
    return e->stamp && e->hash == h && e->key_n == m->st.n + 1 && e->key[0] == m->partial &&
           memcmp(e->key + 1, m->st.w, m->st.n * sizeof *m->st.w) == 0;
}

const uint32_t *sglc_gmask_cache_get(sglc_gmask_cache *c, const sglc_gmatcher *m) {
    uint64_t h = state_hash(m);
    cache_entry *set = c->e + 2 * (h & (c->n_sets - 1));
    for (int w = 0; w < 2; w++)
        if (entry_matches(&set[w], h, m)) {
            set[w].stamp = ++c->clock;
            return set[w].bits;
        }
    return NULL;
}

int sglc_gmask_cache_put(sglc_gmask_cache *c, const sglc_gmatcher *m, const uint32_t *bits) {
    uint64_t h = state_hash(m);
    cache_entry *set = c->e + 2 * (h & (c->n_sets - 1));
    cache_entry *e = set[0].stamp <= set[1].stamp ? &set[0] : &set[1];
    if (entry_matches(&set[0], h, m)) e = &set[0];
    if (entry_matches(&set[1], h, m)) e = &set[1];
    size_t kn = m->st.n + 1;
    if (!e->bits) {
        e->bits = malloc(c->words * sizeof *e->bits);
        if (!e->bits) return SGLC_ERR_NOMEM;
    }
    if (e->key_n < kn || !e->key) {
        uint32_t *k = realloc(e->key, kn * sizeof *k);
        if (!k) return SGLC_ERR_NOMEM;
        e->key = k;
    }
    e->key[0] = m->partial;
    memcpy(e->key + 1, m->st.w, m->st.n * sizeof *m->st.w);
    e->key_n = kn;
    e->hash = h;
    memcpy(e->bits, bits, c->words * sizeof *bits);
    e->stamp = ++c->clock;
    return 0;
}
