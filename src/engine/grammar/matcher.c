/* The pushdown matcher: a set of stacks over positions in the rule code (grammar.h).
 *
 * One code point advances every stack whose top class holds it, then each advanced stack is
 * expanded until its top is a class again: END pops, a reference pushes its continuation
 * (unless that is END: tail calls keep right recursion flat) and branches into each of the
 * rule's alternatives. Expansion runs on an explicit work list, not recursion; identical stacks
 * are merged through a small hash table, and the limits of grammar.h bound the work per code
 * point. Partial UTF-8 bytes change only the partial word: a byte is refused as soon as no
 * stack's top class holds a code point it could still become. */
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "engine/grammar/grammar_impl.h"

#define DEDUP_BITS 12 /* 4096 slots >= 2 * SGLC_GRAM_MAX_STACKS */

struct sglc_gscratch {
    sglc_gvec work;                   /* expansion work list: items [positions..., len] */
    sglc_gvec item;                   /* the item being expanded */
    sglc_gvec va, vb;                 /* ping-pong states of matcher advance */
    uint32_t dd_gen[1 << DEDUP_BITS]; /* dedup table: generation, offset of the stack */
    uint32_t dd_off[1 << DEDUP_BITS];
    uint32_t gen;
    /* mask walk (mask.c): states per byte depth in one arena */
    sglc_gvec arena;
    size_t *lvl_off, *lvl_n, *lvl_top;
    uint32_t *lvl_partial;
    size_t lvl_cap;
};

int sglc_gscratch_open(sglc_gscratch **out) {
    *out = calloc(1, sizeof **out);
    return *out ? 0 : SGLC_ERR_NOMEM;
}

void sglc_gscratch_close(sglc_gscratch *sc) {
    if (!sc) return;
    free(sc->work.w);
    free(sc->item.w);
    free(sc->va.w);
    free(sc->vb.w);
    free(sc->arena.w);
    free(sc->lvl_off);
    free(sc->lvl_n);
    free(sc->lvl_top);
    free(sc->lvl_partial);
    free(sc);
}

/* Mask-walk level buffers for depths 0..n (mask.c). */
int gram_scratch_levels(sglc_gscratch *sc, size_t n, sglc_gvec **arena, size_t **off, size_t **cnt,
                        size_t **top, uint32_t **partial) {
    if (n + 1 > sc->lvl_cap) {
        size_t c = n + 1;
        size_t *a = realloc(sc->lvl_off, c * sizeof *a);
        if (a) sc->lvl_off = a;
        size_t *b = realloc(sc->lvl_n, c * sizeof *b);
        if (b) sc->lvl_n = b;
        size_t *t = realloc(sc->lvl_top, c * sizeof *t);
        if (t) sc->lvl_top = t;
        uint32_t *p = realloc(sc->lvl_partial, c * sizeof *p);
        if (p) sc->lvl_partial = p;
        if (!a || !b || !t || !p) return SGLC_ERR_NOMEM;
        sc->lvl_cap = c;
    }
    *arena = &sc->arena;
    *off = sc->lvl_off;
    *cnt = sc->lvl_n;
    *top = sc->lvl_top;
    *partial = sc->lvl_partial;
    return 0;
}

static uint32_t hash_stack(const uint32_t *e, uint32_t len) {
    uint32_t h = 2166136261u ^ len;
    for (uint32_t i = 0; i < len; i++)
        h = (h ^ e[i]) * 16777619u;
    return h;
}

/* Adds stack e[0..len) to out unless present. 0, or -1 past a limit. */
static int emit(sglc_gscratch *sc, sglc_gvec *out, const uint32_t *e, uint32_t len) {
    uint32_t h = hash_stack(e, len);
    uint32_t mask = (1u << DEDUP_BITS) - 1;
    for (uint32_t k = h & mask;; k = (k + 1) & mask) {
        if (sc->dd_gen[k] != sc->gen) {
            if (out->w[0] >= SGLC_GRAM_MAX_STACKS) return -1;
            if (out->n + len + 1 > SGLC_GRAM_MAX_STATE_WORDS) return -1;
            sc->dd_gen[k] = sc->gen;
            sc->dd_off[k] = (uint32_t)out->n;
            out->w[out->n++] = len;
            if (len) memcpy(out->w + out->n, e, len * sizeof *e);
            out->n += len;
            out->w[0]++;
            return 0;
        }
        const uint32_t *s = out->w + sc->dd_off[k];
        if (s[0] == len && (len == 0 || memcmp(s + 1, e, len * sizeof *e) == 0)) return 0;
    }
}

/* Pushes a work item: base[0..n) plus, when extra != UINT32_MAX, one more position. */
static int push_work(sglc_gscratch *sc, const uint32_t *base, uint32_t n, uint32_t extra) {
    uint32_t len = n + (extra != UINT32_MAX);
    if (len > SGLC_GRAM_MAX_DEPTH) return 1; /* too deep: this path is refused */
    if (gvec_reserve(&sc->work, (size_t)len + 1) != 0) return SGLC_ERR_NOMEM;
    uint32_t *w = sc->work.w + sc->work.n;
    if (n) memcpy(w, base, n * sizeof *base);
    if (extra != UINT32_MAX) w[n] = extra;
    w[len] = len;
    sc->work.n += (size_t)len + 1;
    return 0;
}

/* Expands the work list into out (whose w[0] counts stacks). 0, -1 past a limit, NOMEM. */
static int expand(const sglc_gram *g, sglc_gscratch *sc, sglc_gvec *out) {
    int budget = SGLC_GRAM_MAX_EXPAND;
    while (sc->work.n > 0) {
        uint32_t len = sc->work.w[sc->work.n - 1];
        sc->work.n -= (size_t)len + 1;
        if (gvec_reserve(&sc->item, (size_t)len + 1) != 0) return SGLC_ERR_NOMEM;
        uint32_t *E = sc->item.w;
        memcpy(E, sc->work.w + sc->work.n, len * sizeof *E);
        for (;;) {
            if (len == 0) {
                if (emit(sc, out, E, 0) != 0) return -1;
                break;
            }
            uint32_t top = E[len - 1], e = g->code[top];
            if (e == GE_END) {
                len--;
                continue;
            }
            if (GE_KIND(e) == GE_CLASS_K) {
                if (emit(sc, out, E, len) != 0) return -1;
                break;
            }
            if (--budget < 0) return -1;
            uint32_t r = GE_INDEX(e), cont = top + 1;
            int tail = g->code[cont] == GE_END;
            if (!tail) E[len - 1] = cont;
            uint32_t base = tail ? len - 1 : len;
            /* reverse order so the first alternative is expanded (and emitted) first */
            for (int32_t a = g->alt_off[r + 1] - 1; a >= g->alt_off[r]; a--) {
                int rc = push_work(sc, E, base, (uint32_t)g->alt_pos[a]);
                if (rc < 0) return rc;
                E = sc->item.w; /* unchanged: push_work grows work, not item */
            }
            break;
        }
    }
    return 0;
}

static int begin_out(sglc_gscratch *sc, sglc_gvec *out) {
    if (gvec_reserve(out, 1) != 0) return SGLC_ERR_NOMEM;
    out->n = 1;
    out->w[0] = 0;
    sc->work.n = 0;
    if (++sc->gen == 0) { /* wrapped: clear the table once every 2^32 steps */
        memset(sc->dd_gen, 0, sizeof sc->dd_gen);
        sc->gen = 1;
    }
    return 0;
}

/* Makes sure out can take any state without reallocating (mask.c passes arena views). */
static int reserve_state(sglc_gvec *out) {
    if (out->cap >= SGLC_GRAM_MAX_STATE_WORDS + 1) return 0;
    out->n = 0;
    return gvec_reserve(out, SGLC_GRAM_MAX_STATE_WORDS + 1) == 0 ? 0 : SGLC_ERR_NOMEM;
}

int gram_step_cp(const sglc_gram *g, const uint32_t *in, uint32_t cp, sglc_gscratch *sc,
                 sglc_gvec *out) {
    if (reserve_state(out) != 0 || begin_out(sc, out) != 0) return SGLC_ERR_NOMEM;
    uint32_t ns = in[0];
    const uint32_t *p = in + 1;
    for (uint32_t i = 0; i < ns; i++) {
        uint32_t len = p[0];
        if (len > 0) {
            uint32_t top = p[len];
            if (gram_cls_has(g, (int32_t)GE_INDEX(g->code[top]), cp)) {
                int rc = push_work(sc, p + 1, len - 1, top + 1);
                if (rc < 0) return rc;
            }
        }
        p += len + 1;
    }
    int rc = expand(g, sc, out);
    if (rc != 0) return rc;
    return out->w[0] > 0 ? 0 : -1;
}

int gram_state_accepting(const uint32_t *st) {
    uint32_t ns = st[0];
    const uint32_t *p = st + 1;
    for (uint32_t i = 0; i < ns; i++) {
        if (p[0] == 0) return 1;
        p += p[0] + 1;
    }
    return 0;
}

int gram_step_byte(const sglc_gram *g, const uint32_t *st, uint32_t *partial, uint8_t b,
                   uint32_t *cp) {
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    uint32_t need = *partial & 3u, len = (*partial >> 2) & 7u, val = *partial >> 8;
    if (need == 0) {
        if (b < 0x80) {
            *cp = b;
            return 1;
        }
        if (b >= 0xC2 && b <= 0xDF)
            need = 1, len = 2, val = b & 0x1Fu;
        else if (b >= 0xE0 && b <= 0xEF)
            need = 2, len = 3, val = b & 0x0Fu;
        else if (b >= 0xF0 && b <= 0xF4)
            need = 3, len = 4, val = b & 0x07u;
        else
            return -1;
    } else {
        if ((b & 0xC0) != 0x80) return -1;
        val = (val << 6) | (b & 0x3Fu);
        need--;
        if (need == 0) {
            if (val < min_cp[len] || val > GRAM_MAX_CP || (val >= 0xD800 && val <= 0xDFFF))
                return -1;
            *cp = val;
            *partial = 0;
            return 1;
        }
    }
    uint32_t lo = val << (6 * need), hi = lo | ((1u << (6 * need)) - 1);
    if (hi < min_cp[len]) return -1;
    if (lo < min_cp[len]) lo = min_cp[len];
    if (hi > GRAM_MAX_CP) hi = GRAM_MAX_CP;
    if (lo > hi) return -1;
    uint32_t ns = st[0];
    const uint32_t *p = st + 1;
    int feasible = 0;
    for (uint32_t i = 0; i < ns && !feasible; i++) {
        uint32_t l = p[0];
        if (l > 0) feasible = gram_cls_intersects(g, (int32_t)GE_INDEX(g->code[p[l]]), lo, hi);
        p += l + 1;
    }
    if (!feasible) return -1;
    *partial = need | (len << 2) | (val << 8);
    return 0;
}

int sglc_gmatcher_init(sglc_gmatcher *m, const sglc_gram *g, sglc_gscratch *sc) {
    memset(m, 0, sizeof *m);
    m->g = g;
    if (reserve_state(&sc->va) != 0 || begin_out(sc, &sc->va) != 0) return SGLC_ERR_NOMEM;
    for (int32_t a = g->alt_off[g->root + 1] - 1; a >= g->alt_off[g->root]; a--)
        if (push_work(sc, NULL, 0, (uint32_t)g->alt_pos[a]) < 0) return SGLC_ERR_NOMEM;
    int rc = expand(g, sc, &sc->va);
    if (rc == SGLC_ERR_NOMEM) return rc;
    if (rc != 0) sc->va.w[0] = 0, sc->va.n = 1; /* past a limit at once: a dead matcher */
    if (gvec_reserve(&m->st, sc->va.n) != 0) return SGLC_ERR_NOMEM;
    memcpy(m->st.w, sc->va.w, sc->va.n * sizeof *m->st.w);
    m->st.n = sc->va.n;
    return 0;
}

int sglc_gmatcher_clone(sglc_gmatcher *dst, const sglc_gmatcher *src) {
    memset(dst, 0, sizeof *dst);
    dst->g = src->g;
    dst->partial = src->partial;
    if (gvec_reserve(&dst->st, src->st.n) != 0) return SGLC_ERR_NOMEM;
    memcpy(dst->st.w, src->st.w, src->st.n * sizeof *dst->st.w);
    dst->st.n = src->st.n;
    return 0;
}

void sglc_gmatcher_free(sglc_gmatcher *m) {
    if (!m) return;
    free(m->st.w);
    memset(m, 0, sizeof *m);
}

int sglc_gmatcher_advance(sglc_gmatcher *m, const uint8_t *bytes, size_t n, sglc_gscratch *sc) {
    const uint32_t *cur = m->st.w;
    sglc_gvec *cur_vec = NULL;
    uint32_t partial = m->partial;
    for (size_t i = 0; i < n; i++) {
        uint32_t cp;
        int r = gram_step_byte(m->g, cur, &partial, bytes[i], &cp);
        if (r < 0) return -1;
        if (r == 0) continue;
        sglc_gvec *next = cur_vec == &sc->va ? &sc->vb : &sc->va;
        int rc = gram_step_cp(m->g, cur, cp, sc, next);
        if (rc != 0) return rc == SGLC_ERR_NOMEM ? rc : -1;
        cur_vec = next;
        cur = next->w;
    }
    if (cur_vec) {
        if (gvec_reserve(&m->st, cur_vec->n > m->st.n ? cur_vec->n - m->st.n : 0) != 0)
            return SGLC_ERR_NOMEM;
        memcpy(m->st.w, cur_vec->w, cur_vec->n * sizeof *m->st.w);
        m->st.n = cur_vec->n;
    }
    m->partial = partial;
    return 0;
}

int sglc_gmatcher_accepting(const sglc_gmatcher *m) {
    return m->partial == 0 && gram_state_accepting(m->st.w);
}

int sglc_gmatcher_terminated(const sglc_gmatcher *m) {
    return m->partial == 0 && m->st.w[0] == 1 && m->st.w[1] == 0;
}
