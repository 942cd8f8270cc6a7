/* Structured output in the engine: compiled grammars (sglc_grammar, refcounted, shared by
 * every request that uses them) and the compute-side hooks of the sampling description (a
 * request's mask as the sample op's bitmask row, the matcher advanced by the chosen token).
 *
 * Threading: compile runs on any thread (HTTP threads); the first compile builds the engine's
 * vocabulary index under gmu, and it is immutable afterwards. Masks and matcher steps run on
 * the compute side only (the compute thread, or the scheduler thread without overlap), which
 * owns e->gscratch and e->gmask; a grammar's mask cache is shared by the requests that use the
 * grammar and locked by its own mutex.
 *
 * Semantics (as SGLang with xgrammar): the mask is applied after penalties and logit bias and
 * before sampling, so greedy, sampled requests and logprobs all see it (logprobs are
 * normalized over the allowed tokens). End-of-generation tokens are allowed exactly when the
 * text so far is complete; control tokens never. When the grammar is complete and nothing
 * may follow, the request finishes with STOP. A state with no allowed token at all (a
 * grammar whose next character no token spells) allows eos, so the request ends rather than
 * sampling from nothing. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine_impl.h"

#define MASK_CACHE_SETS 256 /* 2 ways: at most 512 masks (3 MB at a 49k vocabulary) */

struct sglc_grammar {
    atomic_int refs;
    sglc_gram *gram;
    const sglc_gvocab *vocab; /* borrowed from the engine */
    pthread_mutex_t mu;       /* guards cache */
    sglc_gmask_cache *cache;
};

static int ensure_vocab(sglc_engine *e, char *err, size_t errlen) {
    int rc = 0;
    pthread_mutex_lock(&e->gmu);
    if (!e->gvocab) {
        int32_t n = sglc_tokenizer_vocab_size(e->tok);
        const char **bytes = malloc((size_t)n * sizeof *bytes);
        size_t *lens = malloc((size_t)n * sizeof *lens);
        uint8_t *kinds = malloc((size_t)n);
        if (!bytes || !lens || !kinds) {
            rc = SGLC_ERR_NOMEM;
        } else {
            for (int32_t t = 0; t < n; t++) {
                bytes[t] = sglc_tokenizer_token_bytes(e->tok, t, &lens[t]);
                kinds[t] = sglc_tokenizer_is_eog(e->tok, t)       ? SGLC_GTOK_EOG
                           : sglc_tokenizer_is_control(e->tok, t) ? SGLC_GTOK_NEVER
                                                                  : SGLC_GTOK_TEXT;
            }
            rc = sglc_gvocab_open(&e->gvocab, n, bytes, lens, kinds);
        }
        free(bytes);
        free(lens);
        free(kinds);
        if (rc != 0) snprintf(err, errlen, "out of memory for the grammar vocabulary");
    }
    pthread_mutex_unlock(&e->gmu);
    return rc;
}

sglc_grammar *sglc_grammar_retain(const sglc_grammar *cg) {
    sglc_grammar *g = (sglc_grammar *)cg; /* the count is the one mutable field */
    if (g) atomic_fetch_add(&g->refs, 1);
    return g;
}

/* A new reference to the cached grammar of this source, or NULL. */
static sglc_grammar *gcache_get(sglc_engine *e, sglc_grammar_kind kind, const char *src,
                                size_t len) {
    sglc_grammar *g = NULL;
    pthread_mutex_lock(&e->gmu);
    for (int i = 0; i < SGLC_GRAMMAR_CACHE_ENTRIES; i++)
        if (e->gcache[i].g && e->gcache[i].kind == (int)kind && e->gcache[i].len == len &&
            (len == 0 || memcmp(e->gcache[i].src, src, len) == 0)) {
            e->gcache[i].last_use = ++e->gcache_clock;
            g = sglc_grammar_retain(e->gcache[i].g);
            break;
        }
    pthread_mutex_unlock(&e->gmu);
    return g;
}

/* Keeps a reference to g under its source, evicting the least recently used entry. */
static void gcache_put(sglc_engine *e, sglc_grammar_kind kind, const char *src, size_t len,
                       sglc_grammar *g) {
    if (len > (64u << 10)) return; /* huge grammars are not worth pinning */
    char *copy = malloc(len + 1);
    if (!copy) return;
    if (len) memcpy(copy, src, len);
    copy[len] = 0;
    pthread_mutex_lock(&e->gmu);
    int victim = 0;
    for (int i = 0; i < SGLC_GRAMMAR_CACHE_ENTRIES; i++) {
        if (!e->gcache[i].g) {
            victim = i;
            break;
        }
        if (e->gcache[i].last_use < e->gcache[victim].last_use) victim = i;
    }
    sglc_grammar *old = e->gcache[victim].g;
    free(e->gcache[victim].src);
    e->gcache[victim].g = sglc_grammar_retain(g);
    e->gcache[victim].kind = (int)kind;
    e->gcache[victim].src = copy;
    e->gcache[victim].len = len;
    e->gcache[victim].last_use = ++e->gcache_clock;
    pthread_mutex_unlock(&e->gmu);
    sglc_grammar_release(old);
}

int sglc_engine_grammar_compile(sglc_engine *e, sglc_grammar_kind kind, const char *src, size_t len,
                                sglc_grammar **out, char *err, size_t errlen) {
    *out = NULL;
    if ((int)kind < 0 || kind >= SGLC_GRAMMAR_COUNT) {
        snprintf(err, errlen, "unknown grammar kind %d", (int)kind);
        return SGLC_ERR_ARG;
    }
    if (kind == SGLC_GRAMMAR_JSON_OBJECT) len = 0; /* src is ignored */
    if ((*out = gcache_get(e, kind, src, len)) != NULL) return 0;
    int rc = ensure_vocab(e, err, errlen);
    if (rc != 0) return rc;
    sglc_gram *gram = NULL;
    if ((rc = sglc_gram_compile(kind, src, len, &gram, err, errlen)) != 0) return rc;
    sglc_grammar *g = calloc(1, sizeof *g);
    if (!g ||
        sglc_gmask_cache_open(&g->cache, MASK_CACHE_SETS, sglc_gvocab_mask_words(e->gvocab)) != 0) {
        free(g);
        sglc_gram_free(gram);
        snprintf(err, errlen, "out of memory");
        return SGLC_ERR_NOMEM;
    }
    atomic_init(&g->refs, 1);
    g->gram = gram;
    g->vocab = e->gvocab;
    pthread_mutex_init(&g->mu, NULL);
    gcache_put(e, kind, src, len, g);
    *out = g;
    return 0;
}

void sglc_grammar_release(sglc_grammar *g) {
    if (!g || atomic_fetch_sub(&g->refs, 1) != 1) return;
    sglc_gmask_cache_close(g->cache);
    sglc_gram_free(g->gram);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

/* The engine's reference for a submitted request (sglc_engine_submit). */
sglc_grammar *sglc_engine_grammar_ref(const sglc_grammar *cg);
sglc_grammar *sglc_engine_grammar_ref(const sglc_grammar *cg) {
    return sglc_grammar_retain(cg);
}

void sglc_engine_grammar_clear_cache(sglc_grammar *g) {
    pthread_mutex_lock(&g->mu);
    size_t words = sglc_gvocab_mask_words(g->vocab);
    sglc_gmask_cache *fresh = NULL;
    if (sglc_gmask_cache_open(&fresh, MASK_CACHE_SETS, words) == 0) {
        sglc_gmask_cache_close(g->cache);
        g->cache = fresh;
    }
    pthread_mutex_unlock(&g->mu);
}

void sglc_engine_grammar_free(sglc_engine *e) {
    /* the cached grammars point at the vocabulary: they go first */
    for (int i = 0; i < SGLC_GRAMMAR_CACHE_ENTRIES; i++) {
        sglc_grammar_release(e->gcache[i].g);
        free(e->gcache[i].src);
        e->gcache[i].g = NULL;
        e->gcache[i].src = NULL;
    }
    sglc_gvocab_close(e->gvocab);
    sglc_gscratch_close(e->gscratch);
    free(e->gmask);
    sglc_threadpool_close(e->gpool);
    for (int i = 0; i < SGLC_GRAMMAR_WORKERS; i++)
        sglc_gscratch_close(e->gscratch_w[i]);
    free(e->gmask_rows);
    free(e->gmask_ready);
    e->gpool = NULL;
    e->gmask_rows = NULL;
    e->gmask_ready = NULL;
    e->gvocab = NULL;
    e->gscratch = NULL;
    e->gmask = NULL;
}

/* The matcher of r, made at its first sample; 0 when r has a live one. */
static int ensure_matcher(sglc_engine *e, sglc_request *r) {
    if (!r->grammar || r->gm_state < 0) return -1;
    if (!e->gscratch || !e->gmask) {
        r->gm_state = -1;
        return -1;
    }
    if (r->gm_state == 0) {
        if (sglc_gmatcher_init(&r->gm, r->grammar->gram, e->gscratch) != 0) {
            sglc_log(SGLC_LOG_ERROR, "request %lld: out of memory for its grammar matcher",
                     (long long)r->id);
            r->gm_state = -1;
            return -1;
        }
        r->gm_state = 1;
    }
    return 0;
}

/* r's mask for its matcher's state into out: from the grammar's cache, or computed with sc and
 * put there. 0, or -1 when out of memory. */
static int mask_of(sglc_request *r, sglc_gscratch *sc, uint32_t *out) {
    sglc_grammar *g = r->grammar;
    size_t words = sglc_gvocab_mask_words(g->vocab);
    pthread_mutex_lock(&g->mu);
    const uint32_t *hit = sglc_gmask_cache_get(g->cache, &r->gm);
    if (hit) memcpy(out, hit, words * sizeof *hit);
    pthread_mutex_unlock(&g->mu);
    if (hit) return 0;
    if (sglc_gmask_compute(g->vocab, &r->gm, sc, out) < 0) return -1;
    pthread_mutex_lock(&g->mu);
    (void)sglc_gmask_cache_put(g->cache, &r->gm, out); /* a miss next time is fine */
    pthread_mutex_unlock(&g->mu);
    return 0;
}

typedef struct {
    sglc_engine *e;
    sglc_request *const *reqs;
    int32_t n;
    size_t words;
} masks_ctx;

static void masks_task(void *vctx, int ith, int nth) {
    masks_ctx *c = vctx;
    for (int32_t row = ith; row < c->n; row += nth) {
        sglc_request *r = c->reqs[row];
        if (!c->e->gmask_ready[row]) continue; /* marked by the caller: constrained and live */
        if (mask_of(r, c->e->gscratch_w[ith], c->e->gmask_rows + (size_t)row * c->words) != 0)
            c->e->gmask_ready[row] = 0; /* out of memory: masked alone below */
    }
}

void sglc_engine_grammar_masks(sglc_engine *e, sglc_request *const *reqs, int32_t n) {
    if (!e->gvocab) return; /* nothing ever compiled */
    size_t words = sglc_gvocab_mask_words(e->gvocab);
    if (!e->gmask_rows) {
        int nth = (int)sysconf(_SC_NPROCESSORS_ONLN);
        if (nth > SGLC_GRAMMAR_WORKERS) nth = SGLC_GRAMMAR_WORKERS;
        if (nth < 1) nth = 1;
        e->gmask_rows = malloc((size_t)e->max_running * words * sizeof(uint32_t));
        e->gmask_ready = calloc((size_t)e->max_running, 1);
        int ok = e->gmask_rows && e->gmask_ready && sglc_threadpool_open(&e->gpool, nth) == 0;
        for (int i = 0; ok && i < nth; i++)
            ok = sglc_gscratch_open(&e->gscratch_w[i]) == 0;
        if (!ok) return; /* sglc_engine_grammar_mask_bits computes each row alone */
    }
    int any = 0;
    for (int32_t row = 0; row < n; row++) {
        e->gmask_ready[row] = reqs[row] && ensure_matcher(e, reqs[row]) == 0;
        any |= e->gmask_ready[row];
    }
    if (!any) return;
    masks_ctx c = {e, reqs, n, words};
    sglc_threadpool_run(e->gpool, masks_task, &c);
}

int sglc_engine_grammar_mask_bits(sglc_engine *e, sglc_request *r, int32_t row, uint32_t *out,
                                  int32_t n_vocab) {
    if (ensure_matcher(e, r) != 0) return -1;
    sglc_grammar *g = r->grammar;
    size_t words = sglc_gvocab_mask_words(g->vocab);
    const uint32_t *mask;
    if (e->gmask_ready && row >= 0 && e->gmask_ready[row]) {
        mask = e->gmask_rows + (size_t)row * words;
        e->gmask_ready[row] = 0;
    } else {
        if (mask_of(r, e->gscratch, e->gmask) != 0) {
            sglc_log(SGLC_LOG_ERROR, "request %lld: out of memory computing its grammar mask",
                     (long long)r->id);
            r->gm_state = -1;
            return -1;
        }
        mask = e->gmask;
    }
    /* the model's rows past the tokenizer's vocabulary are never allowed */
    int32_t tv = sglc_gvocab_size(g->vocab);
    if (tv > n_vocab) tv = n_vocab;
    size_t out_words = ((size_t)n_vocab + 31) / 32;
    uint32_t any = 0;
    for (size_t w = 0; w < out_words; w++) {
        int32_t base = (int32_t)w * 32;
        uint32_t m = w < words ? mask[w] : 0;
        if (base + 32 > tv) m &= base >= tv ? 0u : (uint32_t)((1ull << (tv - base)) - 1u);
        out[w] = m;
        any |= m;
    }
    return any ? 0 : 1;
}

int sglc_engine_grammar_accept(sglc_engine *e, sglc_request *r, int32_t tok) {
    if (!r->grammar || r->gm_state <= 0) return 0;
    if (sglc_tokenizer_is_eog(e->tok, tok)) return 0;
    size_t len = 0;
    const char *bytes = sglc_tokenizer_token_bytes(e->tok, tok, &len);
    int rc = bytes ? sglc_gmatcher_advance(&r->gm, (const uint8_t *)bytes, len, e->gscratch) : -1;
    if (rc != 0) {
        /* the mask allowed tok, so only out of memory gets here: end the request rather than
         * go on unconstrained */
        r->gm_state = -1;
        return 1;
    }
    return sglc_gmatcher_terminated(&r->gm);
}
