/* The grammar builder shared by the three front ends and its lowering to rules.
 *
 * Front ends write an AST (sequence, alternation, repetition, classes of code points, rule
 * references). Lowering turns every rule body into alternatives of flat element runs:
 * an alternation nested in a sequence becomes a helper rule, and x{m,n} becomes m copies of x
 * followed by a right-recursive chain (x* is S ::= x S | "", x{0,k} is O_k ::= x O_{k-1} | ""),
 * so repetition costs O(n) rules and never deepens the matcher's stacks. Then the grammar is
 * checked: every rule defined, no left recursion (which would make the matcher's expansion loop),
 * and the size limits of grammar.h. Nothing here recurses without a bound: the lowering's
 * recursion follows sequence nesting, capped at LOWER_MAX_DEPTH. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "engine/grammar/grammar_impl.h"

#define LOWER_MAX_DEPTH 256

void gb_init(gbuild *b, char *err, size_t errlen) {
    memset(b, 0, sizeof *b);
    b->err = err;
    b->errlen = errlen;
    if (err && errlen) err[0] = 0;
    for (int i = 0; i < 128; i++)
        b->lit_cls[0][i] = b->lit_cls[1][i] = -1;
}

void gb_free(gbuild *b) {
    free(b->nodes);
    free(b->rlo);
    free(b->rhi);
    free(b->cls_off);
    free(b->cls_n);
    for (int32_t i = 0; i < b->n_rules; i++)
        free(b->rule_name[i]);
    free(b->rule_name);
    free(b->rule_body);
    free(b->tlo);
    free(b->thi);
    memset(b, 0, sizeof *b);
}

int gb_fail(gbuild *b, const char *fmt, ...) {
    if (!b->failed) {
        b->failed = 1;
        if (b->err && b->errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(b->err, b->errlen, fmt, ap);
            va_end(ap);
        }
    }
    return -1;
}

/* Grows *p (elements of size sz) to hold at least need; 0 or -1. */
static int grow(void **p, int32_t *cap, int32_t need, size_t sz) {
    if (need <= *cap) return 0;
    int32_t c = *cap ? *cap : 64;
    while (c < need) {
        if (c > INT32_MAX / 2) return -1;
        c *= 2;
    }
    void *np = realloc(*p, (size_t)c * sz);
    if (!np) return -1;
    *p = np;
    *cap = c;
    return 0;
}

int32_t gb_node(gbuild *b, int32_t kind, int32_t a, int32_t c) {
    if (b->failed) return -1;
    if (b->n_nodes >= 4 * SGLC_GRAM_MAX_CODE)
        return gb_fail(b, "grammar too large (more than %d nodes)", 4 * SGLC_GRAM_MAX_CODE);
    if (grow((void **)&b->nodes, &b->cap_nodes, b->n_nodes + 1, sizeof *b->nodes) != 0)
        return gb_fail(b, "out of memory");
    gnode *n = &b->nodes[b->n_nodes];
    *n = (gnode){kind, a, c, -1, -1, -1};
    return b->n_nodes++;
}

int32_t gb_add(gbuild *b, int32_t parent, int32_t child) {
    if (b->failed || parent < 0 || child < 0) return gb_fail(b, "internal: bad node");
    gnode *p = &b->nodes[parent];
    SGLC_ASSERT(b->nodes[child].next == -1);
    if (p->last < 0)
        p->first = child;
    else
        b->nodes[p->last].next = child;
    p->last = child;
    return parent;
}

int32_t gb_repeat(gbuild *b, int32_t child, int32_t min, int32_t max) {
    if (b->failed || child < 0) return -1;
    if (min < 0 || (max >= 0 && max < min))
        return gb_fail(b, "repetition {%d,%d}: the bounds are out of order", min, max);
    if (min > SGLC_GRAM_MAX_REPEAT || max > SGLC_GRAM_MAX_REPEAT)
        return gb_fail(b, "repetition bound %d exceeds the limit %d", max > min ? max : min,
                       SGLC_GRAM_MAX_REPEAT);
    int32_t n = gb_node(b, GN_REPEAT, min, max);
    return n < 0 ? -1 : gb_add(b, n, child);
}

void gb_cls_begin(gbuild *b) {
    b->tn = 0;
}

int gb_cls_add(gbuild *b, uint32_t lo, uint32_t hi) {
    if (b->failed) return -1;
    if (lo > hi || hi > GRAM_MAX_CP) return gb_fail(b, "bad character range");
    if (b->tn >= 1 << 20) return gb_fail(b, "character class too large");
    if (grow((void **)&b->tlo, &b->tcap, b->tn + 1, sizeof *b->tlo) != 0) {
        return gb_fail(b, "out of memory");
    }
    /* thi shares tcap: grow it to the same capacity */
    uint32_t *nh = realloc(b->thi, (size_t)b->tcap * sizeof *nh);
    if (!nh) return gb_fail(b, "out of memory");
    b->thi = nh;
    b->tlo[b->tn] = lo;
    b->thi[b->tn] = hi;
    b->tn++;
    return 0;
}

static int cmp_range(const void *x, const void *y) {
    const uint32_t *a = x, *c = y;
    return a[0] < c[0] ? -1 : a[0] > c[0] ? 1 : (a[1] < c[1] ? -1 : a[1] > c[1]);
}

int32_t gb_cls_end(gbuild *b, int negate) {
    if (b->failed) return -1;
    int32_t n = b->tn;
    uint32_t *pr = malloc(((size_t)n + 8) * 2 * sizeof *pr);
    uint32_t *out = malloc(((size_t)n + 16) * 2 * sizeof *out);
    if (!pr || !out) {
        free(pr), free(out);
        return gb_fail(b, "out of memory");
    }
    for (int32_t i = 0; i < n; i++)
        pr[2 * i] = b->tlo[i], pr[2 * i + 1] = b->thi[i];
    qsort(pr, (size_t)n, 2 * sizeof *pr, cmp_range);
    int32_t m = 0;
    for (int32_t i = 0; i < n; i++) {
        if (m > 0 && pr[2 * i] <= out[2 * m - 1] + 1) {
            if (pr[2 * i + 1] > out[2 * m - 1]) out[2 * m - 1] = pr[2 * i + 1];
        } else {
            out[2 * m] = pr[2 * i], out[2 * m + 1] = pr[2 * i + 1];
            m++;
        }
    }
    /* complement, then remove the surrogates and (JSON string content) '"', '\\', controls */
    uint32_t cut[4][2] = {{0xD800, 0xDFFF}, {0, 0}, {0, 0}, {0, 0}};
    int ncut = 1;
    if (b->json_restrict) {
        cut[ncut][0] = 0, cut[ncut++][1] = 0x1F;
        cut[ncut][0] = '"', cut[ncut++][1] = '"';
        cut[ncut][0] = '\\', cut[ncut++][1] = '\\';
    }
    int32_t k = 0;
    if (negate) {
        uint32_t next = 0;
        for (int32_t i = 0; i < m; i++) {
            if (out[2 * i] > next) pr[2 * k] = next, pr[2 * k + 1] = out[2 * i] - 1, k++;
            next = out[2 * i + 1] + 1;
        }
        if (next <= GRAM_MAX_CP) pr[2 * k] = next, pr[2 * k + 1] = GRAM_MAX_CP, k++;
    } else {
        memcpy(pr, out, (size_t)m * 2 * sizeof *pr);
        k = m;
    }
    /* subtract each cut range; every cut splits at most one range in two */
    for (int c = 0; c < ncut; c++) {
        int32_t w = 0;
        uint32_t clo = cut[c][0], chi = cut[c][1];
        for (int32_t i = 0; i < k; i++) {
            uint32_t lo = pr[2 * i], hi = pr[2 * i + 1];
            if (hi < clo || lo > chi) {
                out[2 * w] = lo, out[2 * w + 1] = hi, w++;
                continue;
            }
            if (lo < clo) out[2 * w] = lo, out[2 * w + 1] = clo - 1, w++;
            if (hi > chi) out[2 * w] = chi + 1, out[2 * w + 1] = hi, w++;
        }
        memcpy(pr, out, (size_t)w * 2 * sizeof *pr);
        k = w;
    }
    free(out);
    if (grow((void **)&b->rlo, &b->cap_ranges, b->n_ranges + k, sizeof *b->rlo) != 0) {
        free(pr);
        return gb_fail(b, "out of memory");
    }
    uint32_t *nh = realloc(b->rhi, ((size_t)b->cap_ranges + 1) * sizeof *nh);
    int32_t cap = b->cap_cls;
    if (!nh || grow((void **)&b->cls_off, &cap, b->n_cls + 1, sizeof *b->cls_off) != 0) {
        if (nh) b->rhi = nh;
        free(pr);
        return gb_fail(b, "out of memory");
    }
    b->rhi = nh;
    int32_t *nn = realloc(b->cls_n, (size_t)cap * sizeof *nn);
    if (!nn) {
        free(pr);
        return gb_fail(b, "out of memory");
    }
    b->cls_n = nn;
    b->cap_cls = cap;
    if (b->n_ranges + k > SGLC_GRAM_MAX_CODE) {
        free(pr);
        return gb_fail(b, "grammar too large (character classes)");
    }
    for (int32_t i = 0; i < k; i++) {
        b->rlo[b->n_ranges + i] = pr[2 * i];
        b->rhi[b->n_ranges + i] = pr[2 * i + 1];
    }
    free(pr);
    b->cls_off[b->n_cls] = b->n_ranges;
    b->cls_n[b->n_cls] = k;
    b->n_ranges += k;
    return b->n_cls++;
}

int32_t gb_class_node(gbuild *b, int32_t cls) {
    if (cls < 0) return -1;
    return gb_node(b, GN_CLASS, cls, 0);
}

int32_t gb_ranges(gbuild *b, const uint32_t *pairs, int n, int negate) {
    gb_cls_begin(b);
    for (int i = 0; i < n; i++)
        if (gb_cls_add(b, pairs[2 * i], pairs[2 * i + 1]) != 0) return -1;
    return gb_class_node(b, gb_cls_end(b, negate));
}

int32_t gb_char(gbuild *b, uint32_t cp) {
    if (b->failed) return -1;
    int j = b->json_restrict ? 1 : 0;
    if (cp < 128 && b->lit_cls[j][cp] >= 0) return gb_class_node(b, b->lit_cls[j][cp]);
    gb_cls_begin(b);
    if (gb_cls_add(b, cp, cp) != 0) return -1;
    int32_t c = gb_cls_end(b, 0);
    if (c >= 0 && cp < 128) b->lit_cls[j][cp] = c;
    return gb_class_node(b, c);
}

/* Decodes one code point of s[0..n) (n >= 1) strictly; returns its length or 0. */
static int utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    int len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
    if (len == 0 || c > 0xF4 || (size_t)len > n) return 0;
    uint32_t v = c & (0x7Fu >> len);
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3Fu);
    }
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (v < min[len] || v > GRAM_MAX_CP || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return len;
}

int32_t gb_literal(gbuild *b, const char *s, size_t n) {
    int32_t seq = gb_seq(b);
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n && seq >= 0;) {
        uint32_t cp;
        int l = utf8_decode(u + i, n - i, &cp);
        if (l == 0) return gb_fail(b, "invalid UTF-8 in literal at byte %zu", i);
        if (gb_add(b, seq, gb_char(b, cp)) < 0) return -1;
        i += (size_t)l;
    }
    return seq;
}

int32_t gb_rule_new(gbuild *b, const char *name, size_t name_len) {
    if (b->failed) return -1;
    if (b->n_rules >= SGLC_GRAM_MAX_RULES)
        return gb_fail(b, "grammar too large (more than %d rules)", SGLC_GRAM_MAX_RULES);
    int32_t cap = b->cap_rules;
    if (grow((void **)&b->rule_body, &cap, b->n_rules + 1, sizeof *b->rule_body) != 0)
        return gb_fail(b, "out of memory");
    char **nn = realloc(b->rule_name, (size_t)cap * sizeof *nn);
    if (!nn) return gb_fail(b, "out of memory");
    b->rule_name = nn;
    b->cap_rules = cap;
    if (name_len > 256) name_len = 256;
    char *nm = malloc(name_len + 1);
    if (!nm) return gb_fail(b, "out of memory");
    memcpy(nm, name, name_len);
    nm[name_len] = 0;
    b->rule_name[b->n_rules] = nm;
    b->rule_body[b->n_rules] = -1;
    return b->n_rules++;
}

int32_t gb_rule_find(const gbuild *b, const char *name, size_t name_len) {
    for (int32_t i = 0; i < b->n_rules; i++)
        if (strlen(b->rule_name[i]) == name_len && memcmp(b->rule_name[i], name, name_len) == 0)
            return i;
    return -1;
}

void gb_rule_set(gbuild *b, int32_t rule, int32_t body) {
    if (rule >= 0 && rule < b->n_rules) b->rule_body[rule] = body;
}

/* ------------------------------------------------------------------ lowering */

/* Lowered alternatives accumulate in elems (each run is (rule, start, len) in alts). */
typedef struct {
    gbuild *b;
    sglc_gvec elems;
    sglc_gvec alts; /* triples rule, start, len */
    /* rules still to lower: pairs (rule id, AST node) */
    sglc_gvec todo;
    int32_t n_rules; /* AST rules plus helper rules */
} lowering;

int gvec_reserve(sglc_gvec *v, size_t n) {
    if (v->n + n <= v->cap) return 0;
    size_t c = v->cap ? v->cap : 64;
    while (c < v->n + n) {
        if (c > ((size_t)1 << 40)) return -1;
        c *= 2;
    }
    uint32_t *nw = realloc(v->w, c * sizeof *nw);
    if (!nw) return -1;
    v->w = nw;
    v->cap = c;
    return 0;
}

static int gvec_push(sglc_gvec *v, uint32_t x) {
    if (gvec_reserve(v, 1) != 0) return -1;
    v->w[v->n++] = x;
    return 0;
}

static int32_t lw_new_rule(lowering *L) {
    if (L->n_rules >= SGLC_GRAM_MAX_RULES)
        return gb_fail(L->b, "grammar too large (more than %d rules after expansion)",
                       SGLC_GRAM_MAX_RULES);
    return L->n_rules++;
}

/* Adds one finished alternative (elements e[0..n)) to rule r. */
static int lw_add_alt(lowering *L, int32_t r, const uint32_t *e, size_t n) {
    if (L->elems.n + n + 1 > (size_t)SGLC_GRAM_MAX_CODE)
        return gb_fail(L->b, "grammar too large (more than %d elements)", SGLC_GRAM_MAX_CODE);
    if (gvec_reserve(&L->elems, n) != 0 || gvec_reserve(&L->alts, 3) != 0)
        return gb_fail(L->b, "out of memory");
    L->alts.w[L->alts.n++] = (uint32_t)r;
    L->alts.w[L->alts.n++] = (uint32_t)L->elems.n;
    L->alts.w[L->alts.n++] = (uint32_t)n;
    if (n) memcpy(L->elems.w + L->elems.n, e, n * sizeof *e);
    L->elems.n += n;
    return 0;
}

static int32_t lw_defer(lowering *L, int32_t node) {
    int32_t r = lw_new_rule(L);
    if (r < 0) return -1;
    if (gvec_push(&L->todo, (uint32_t)r) != 0 || gvec_push(&L->todo, (uint32_t)node) != 0)
        return gb_fail(L->b, "out of memory");
    return r;
}

/* The single element that stands for node (a class, a reference, or a deferred helper). */
static int lw_element(lowering *L, int32_t node, uint32_t *el) {
    const gnode *n = &L->b->nodes[node];
    if (n->kind == GN_CLASS) {
        *el = GE_CLASS(n->a);
        return 0;
    }
    if (n->kind == GN_REF) {
        *el = GE_REF(n->a);
        return 0;
    }
    if (n->kind == GN_SEQ && n->first >= 0 && n->first == n->last)
        return lw_element(L, n->first, el); /* bounded: each step goes to a child */
    int32_t r = lw_defer(L, node);
    if (r < 0) return -1;
    *el = GE_REF(r);
    return 0;
}

/* Appends the elements of node to out (one alternative being built). */
static int lw_seq(lowering *L, int32_t node, sglc_gvec *out, int depth) {
    if (depth > LOWER_MAX_DEPTH) return gb_fail(L->b, "grammar nested too deeply");
    const gnode *n = &L->b->nodes[node];
    uint32_t el;
    switch (n->kind) {
    case GN_EMPTY: return 0;
    case GN_CLASS:
    case GN_REF:
    case GN_ALT:
        if (n->kind == GN_ALT && n->first >= 0 && n->first == n->last)
            return lw_seq(L, n->first, out, depth + 1);
        if (lw_element(L, node, &el) != 0) return -1;
        return gvec_push(out, el) == 0 ? 0 : gb_fail(L->b, "out of memory");
    case GN_SEQ:
        for (int32_t c = n->first; c >= 0; c = L->b->nodes[c].next)
            if (lw_seq(L, c, out, depth + 1) != 0) return -1;
        return 0;
    case GN_REPEAT: {
        int32_t min = n->a, max = n->b;
        if (max == 0) return 0;
        if (lw_element(L, n->first, &el) != 0) return -1;
        for (int32_t i = 0; i < min; i++)
            if (gvec_push(out, el) != 0) return gb_fail(L->b, "out of memory");
        if (max < 0) { /* S ::= el S | "" */
            int32_t s = lw_new_rule(L);
            if (s < 0) return -1;
            uint32_t body[2] = {el, GE_REF(s)};
            if (lw_add_alt(L, s, body, 2) != 0 || lw_add_alt(L, s, NULL, 0) != 0) return -1;
            return gvec_push(out, GE_REF(s)) == 0 ? 0 : gb_fail(L->b, "out of memory");
        }
        int32_t prev = -1; /* O_1 ::= el | "" ; O_k ::= el O_{k-1} | "" */
        for (int32_t k = 1; k <= max - min; k++) {
            int32_t o = lw_new_rule(L);
            if (o < 0) return -1;
            uint32_t body[2] = {el, prev >= 0 ? GE_REF(prev) : 0};
            if (lw_add_alt(L, o, body, prev >= 0 ? 2 : 1) != 0 || lw_add_alt(L, o, NULL, 0) != 0)
                return -1;
            prev = o;
        }
        if (prev >= 0 && gvec_push(out, GE_REF(prev)) != 0) return gb_fail(L->b, "out of memory");
        return 0;
    }
    default: return gb_fail(L->b, "internal: bad node kind");
    }
}

/* Lowers one rule body: an alternation gives one alternative per child. */
static int lw_rule(lowering *L, int32_t r, int32_t node) {
    sglc_gvec buf = {0};
    int rc = 0;
    const gnode *n = &L->b->nodes[node];
    if (n->kind == GN_ALT) {
        for (int32_t c = n->first; c >= 0 && rc == 0; c = L->b->nodes[c].next) {
            buf.n = 0;
            rc = lw_seq(L, c, &buf, 0);
            if (rc == 0) rc = lw_add_alt(L, r, buf.w, buf.n);
        }
    } else {
        rc = lw_seq(L, node, &buf, 0);
        if (rc == 0) rc = lw_add_alt(L, r, buf.w, buf.n);
    }
    free(buf.w);
    return rc;
}

static int cmp_alt_rule(const void *x, const void *y) {
    const uint32_t *a = x, *c = y;
    if (a[0] != c[0]) return a[0] < c[0] ? -1 : 1;
    return a[1] < c[1] ? -1 : a[1] > c[1]; /* keep the order alternatives were written in */
}

/* Refuses left recursion: a rule reachable from itself without consuming a character. */
static int check_left_recursion(gbuild *b, const sglc_gram *g, int32_t n_ast_rules) {
    int32_t R = g->n_rules;
    uint8_t *nullable = calloc((size_t)R, 1);
    uint8_t *color = calloc((size_t)R, 1);
    int32_t *stack = malloc((size_t)R * 2 * sizeof *stack);
    int rc = 0;
    if (!nullable || !color || !stack) {
        rc = gb_fail(b, "out of memory");
        goto cleanup;
    }
    for (int changed = 1; changed;) { /* fixpoint: at most R rounds */
        changed = 0;
        for (int32_t r = 0; r < R; r++) {
            if (nullable[r]) continue;
            for (int32_t a = g->alt_off[r]; a < g->alt_off[r + 1] && !nullable[r]; a++) {
                int ok = 1;
                for (int32_t p = g->alt_pos[a]; g->code[p] != GE_END && ok; p++)
                    ok = GE_KIND(g->code[p]) == GE_REF_K && nullable[GE_INDEX(g->code[p])];
                if (ok) nullable[r] = 1, changed = 1;
            }
        }
    }
    /* iterative DFS over "may start with" edges; stack holds (rule, next alt-position cursor) */
    for (int32_t s = 0; s < R; s++) {
        if (color[s]) continue;
        int32_t sp = 0;
        stack[sp++] = s;
        stack[sp++] = -1;
        color[s] = 1;
        while (sp > 0) {
            int32_t r = stack[sp - 2], cur = stack[sp - 1];
            /* the next left edge of r from cursor cur (a code position that is an
             * alternative's start or follows only nullable elements) */
            int32_t next_rule = -1, next_cur = -1;
            int32_t q = cur < 0 ? g->alt_pos[g->alt_off[r]] : cur;
            int32_t endp = r + 1 < R ? g->alt_pos[g->alt_off[r + 1]] : g->n_code;
            while (q < endp) {
                uint32_t e = g->code[q];
                if (e == GE_END) {
                    q++;
                    continue;
                }
                if (GE_KIND(e) == GE_REF_K) {
                    next_rule = (int32_t)GE_INDEX(e);
                    next_cur = q + 1;
                    if (!nullable[next_rule])
                        while (g->code[next_cur - 1] != GE_END)
                            next_cur++;
                    break;
                }
                while (g->code[q] != GE_END) /* a class: the rest of the alternative is not left */
                    q++;
                q++;
            }
            if (next_rule < 0) {
                color[r] = 2;
                sp -= 2;
                continue;
            }
            stack[sp - 1] = next_cur;
            if (color[next_rule] == 1) {
                const char *nm = next_rule < n_ast_rules ? b->rule_name[next_rule] : "(helper)";
                rc = gb_fail(b,
                             "rule '%s' is left-recursive (it can reach itself without "
                             "consuming input)",
                             nm);
                goto cleanup;
            }
            if (color[next_rule] == 0) {
                color[next_rule] = 1;
                stack[sp++] = next_rule;
                stack[sp++] = -1;
            }
        }
    }
cleanup:
    free(nullable);
    free(color);
    free(stack);
    return rc;
}

void sglc_gram_free(sglc_gram *g) {
    if (!g) return;
    free(g->code);
    free(g->alt_off);
    free(g->alt_pos);
    free(g->cls_off);
    free(g->cls_n);
    free(g->rlo);
    free(g->rhi);
    free(g->ascii);
    free(g);
}

int32_t sglc_gram_n_rules(const sglc_gram *g) {
    return g->n_rules;
}

int gram_cls_intersects(const sglc_gram *g, int32_t c, uint32_t lo, uint32_t hi) {
    int32_t a = g->cls_off[c], z = a + g->cls_n[c] - 1;
    /* first range whose hi >= lo */
    while (a <= z) {
        int32_t mid = (a + z) / 2;
        if (g->rhi[mid] < lo)
            a = mid + 1;
        else
            z = mid - 1;
    }
    return a < g->cls_off[c] + g->cls_n[c] && g->rlo[a] <= hi;
}

int gb_finish(gbuild *b, int32_t root, sglc_gram **out) {
    *out = NULL;
    if (b->failed) return -1;
    for (int32_t r = 0; r < b->n_rules; r++)
        if (b->rule_body[r] < 0) return gb_fail(b, "rule '%s' is not defined", b->rule_name[r]);
    lowering L = {.b = b, .n_rules = b->n_rules};
    sglc_gram *g = calloc(1, sizeof *g);
    int rc = -1;
    if (!g) {
        gb_fail(b, "out of memory");
        goto cleanup;
    }
    for (int32_t r = 0; r < b->n_rules; r++)
        if (lw_rule(&L, r, b->rule_body[r]) != 0) goto cleanup;
    while (L.todo.n > 0) {
        L.todo.n -= 2;
        if (lw_rule(&L, (int32_t)L.todo.w[L.todo.n], (int32_t)L.todo.w[L.todo.n + 1]) != 0)
            goto cleanup;
    }
    size_t n_alts = L.alts.n / 3;
    qsort(L.alts.w, n_alts, 3 * sizeof *L.alts.w, cmp_alt_rule);
    g->n_rules = L.n_rules;
    g->n_code = (int32_t)(L.elems.n + n_alts);
    g->code = malloc((size_t)g->n_code * sizeof *g->code + 1);
    g->alt_off = calloc((size_t)g->n_rules + 1, sizeof *g->alt_off);
    g->alt_pos = malloc((n_alts + 1) * sizeof *g->alt_pos);
    g->n_cls = b->n_cls;
    g->cls_off = malloc(((size_t)b->n_cls + 1) * sizeof *g->cls_off);
    g->cls_n = malloc(((size_t)b->n_cls + 1) * sizeof *g->cls_n);
    g->rlo = malloc(((size_t)b->n_ranges + 1) * sizeof *g->rlo);
    g->rhi = malloc(((size_t)b->n_ranges + 1) * sizeof *g->rhi);
    g->ascii = calloc((size_t)b->n_cls + 1, sizeof *g->ascii);
    if (!g->code || !g->alt_off || !g->alt_pos || !g->cls_off || !g->cls_n || !g->rlo || !g->rhi ||
        !g->ascii) {
        gb_fail(b, "out of memory");
        goto cleanup;
    }
    int32_t pos = 0;
    for (size_t a = 0; a < n_alts; a++) {
        uint32_t r = L.alts.w[3 * a], st = L.alts.w[3 * a + 1], n = L.alts.w[3 * a + 2];
        g->alt_off[r + 1]++;
        g->alt_pos[a] = pos;
        if (n) memcpy(g->code + pos, L.elems.w + st, n * sizeof *g->code);
        pos += (int32_t)n;
        g->code[pos++] = GE_END;
    }
    for (int32_t r = 0; r < g->n_rules; r++)
        g->alt_off[r + 1] += g->alt_off[r];
    if (b->n_cls) {
        memcpy(g->cls_off, b->cls_off, (size_t)b->n_cls * sizeof *g->cls_off);
        memcpy(g->cls_n, b->cls_n, (size_t)b->n_cls * sizeof *g->cls_n);
    }
    if (b->n_ranges) {
        memcpy(g->rlo, b->rlo, (size_t)b->n_ranges * sizeof *g->rlo);
        memcpy(g->rhi, b->rhi, (size_t)b->n_ranges * sizeof *g->rhi);
    }
    for (int32_t c = 0; c < g->n_cls; c++)
        for (int32_t i = g->cls_off[c]; i < g->cls_off[c] + g->cls_n[c]; i++)
            for (uint32_t cp = g->rlo[i]; cp <= g->rhi[i] && cp < 128; cp++)
                g->ascii[c][cp >> 5] |= 1u << (cp & 31);
    g->root = root;
    if (root < 0 || root >= g->n_rules) {
        gb_fail(b, "internal: no root rule");
        goto cleanup;
    }
    for (int32_t r = 0; r < g->n_rules; r++)
        if (g->alt_off[r] == g->alt_off[r + 1]) {
            gb_fail(b, "internal: rule without alternatives");
            goto cleanup;
        }
    if (check_left_recursion(b, g, b->n_rules) != 0) goto cleanup;
    *out = g;
    g = NULL;
    rc = 0;
cleanup:
    sglc_gram_free(g);
    free(L.elems.w);
    free(L.alts.w);
    free(L.todo.w);
    return rc;
}

int sglc_gram_compile(sglc_grammar_kind kind, const char *src, size_t len, sglc_gram **out,
                      char *err, size_t errlen) {
    *out = NULL;
    gbuild b;
    gb_init(&b, err, errlen);
    int32_t root = -1;
    if (len > SGLC_GRAM_MAX_SOURCE) {
        gb_fail(&b, "grammar source of %zu bytes exceeds the limit of %u", len,
                SGLC_GRAM_MAX_SOURCE);
    } else if (!src && len) {
        gb_fail(&b, "no grammar source");
    } else {
        switch (kind) {
        case SGLC_GRAMMAR_JSON_SCHEMA: root = sglc_gram_parse_json_schema(&b, src, len, 0); break;
        case SGLC_GRAMMAR_JSON_OBJECT: root = sglc_gram_parse_json_schema(&b, NULL, 0, 1); break;
        case SGLC_GRAMMAR_REGEX: root = sglc_gram_parse_regex(&b, src, len, "regex"); break;
        case SGLC_GRAMMAR_EBNF: root = sglc_gram_parse_ebnf(&b, src, len); break;
        default: gb_fail(&b, "unknown grammar kind %d", (int)kind); break;
        }
    }
    int rc = root >= 0 ? gb_finish(&b, root, out) : -1;
    gb_free(&b);
    return rc == 0 ? 0 : SGLC_ERR_ARG;
}
