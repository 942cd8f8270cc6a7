/* Private structures of the grammar engine: the AST builder the front ends (regex.c, ebnf.c,
 * json_schema.c) write into, the lowering to rules (build.c), and the compiled grammar the
 * matcher (matcher.c) and the mask (mask.c) read. */
#ifndef SGLC_ENGINE_GRAMMAR_GRAMMAR_IMPL_H
#define SGLC_ENGINE_GRAMMAR_GRAMMAR_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "engine/grammar/grammar.h"

#define GRAM_MAX_CP 0x10FFFFu

typedef enum {
    GN_EMPTY = 0,
    GN_CLASS,  /* a = class id */
    GN_REF,    /* a = rule id */
    GN_SEQ,    /* children */
    GN_ALT,    /* children */
    GN_REPEAT, /* one child; a = min, b = max (-1: unbounded) */
    GN_KIND_COUNT
} gnode_kind;

typedef struct {
    int32_t kind, a, b;
    int32_t first, last, next; /* children list / sibling link (-1: none) */
} gnode;

/* AST plus class pool plus rules. Every function returns -1 (or a negative id) after setting
 * the first error; later calls keep failing, so front ends check once in a while. */
typedef struct {
    gnode *nodes;
    int32_t n_nodes, cap_nodes;
    uint32_t *rlo, *rhi; /* class ranges, sorted and disjoint per class */
    int32_t n_ranges, cap_ranges;
    int32_t *cls_off, *cls_n;
    int32_t n_cls, cap_cls;
    int32_t lit_cls[2][128]; /* single ASCII character classes (plain / json-restricted) */
    int32_t *rule_body;
    char **rule_name;
    int32_t n_rules, cap_rules;
    /* the class under construction */
    uint32_t *tlo, *thi;
    int32_t tn, tcap;
    /* classes exclude '"', '\\' and control characters (JSON string pattern content) */
    int json_restrict;
    char *err;
    size_t errlen;
    int failed;
} gbuild;

void gb_init(gbuild *b, char *err, size_t errlen);
void gb_free(gbuild *b);
/* Sets the error (printf-style) unless one is set; returns -1. */
int gb_fail(gbuild *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

int32_t gb_node(gbuild *b, int32_t kind, int32_t a, int32_t c);
int32_t gb_add(gbuild *b, int32_t parent, int32_t child); /* returns parent */
static inline int32_t gb_seq(gbuild *b) {
    return gb_node(b, GN_SEQ, 0, 0);
}
static inline int32_t gb_alt(gbuild *b) {
    return gb_node(b, GN_ALT, 0, 0);
}
static inline int32_t gb_empty(gbuild *b) {
    return gb_node(b, GN_EMPTY, 0, 0);
}
static inline int32_t gb_ref(gbuild *b, int32_t rule) {
    return gb_node(b, GN_REF, rule, 0);
}
int32_t gb_repeat(gbuild *b, int32_t child, int32_t min, int32_t max);
/* A node matching exactly the UTF-8 text s[0..n) (validated). */
int32_t gb_literal(gbuild *b, const char *s, size_t n);
int32_t gb_char(gbuild *b, uint32_t cp);

/* Class construction: begin, add ranges, end (normalize, optionally complement). */
void gb_cls_begin(gbuild *b);
int gb_cls_add(gbuild *b, uint32_t lo, uint32_t hi);
int32_t gb_cls_end(gbuild *b, int negate); /* class id, or -1 */
int32_t gb_class_node(gbuild *b, int32_t cls);
/* A node for a class given as ranges (pairs lo, hi; n pairs). */
int32_t gb_ranges(gbuild *b, const uint32_t *pairs, int n, int negate);

/* Rules: created with a name (copied), bodies set later (recursion needs the id first). */
int32_t gb_rule_new(gbuild *b, const char *name, size_t name_len);
int32_t gb_rule_find(const gbuild *b, const char *name, size_t name_len);
void gb_rule_set(gbuild *b, int32_t rule, int32_t body);

/* Lowers the AST (root rule given) and validates it (undefined bodies, left recursion,
 * limits); returns 0 and the grammar, or -1 with the error set. */
int gb_finish(gbuild *b, int32_t root, sglc_gram **out);

/* Front ends: fill b and return the root rule id, or -1 with the error set. */
int32_t sglc_gram_parse_regex(gbuild *b, const char *src, size_t len, const char *what);
int32_t sglc_gram_parse_ebnf(gbuild *b, const char *src, size_t len);
int32_t sglc_gram_parse_json_schema(gbuild *b, const char *src, size_t len, int any_object);
/* The regex as an AST node (for JSON Schema `pattern`), without making it a rule. */
int32_t sglc_gram_regex_node(gbuild *b, const char *src, size_t len, const char *what);

/* ---- compiled grammar ---- */

#define GE_END 0u
#define GE_KIND(e) ((e)&3u)
#define GE_INDEX(e) ((e) >> 2)
#define GE_CLASS_K 1u
#define GE_REF_K 2u
#define GE_CLASS(i) (((uint32_t)(i) << 2) | GE_CLASS_K)
#define GE_REF(i) (((uint32_t)(i) << 2) | GE_REF_K)

struct sglc_gram {
    uint32_t *code; /* alternatives, each a run of elements ending in GE_END */
    int32_t n_code;
    int32_t n_rules;
    int32_t *alt_off; /* [n_rules + 1]: rule r's alternatives are alt_pos[alt_off[r] ..) */
    int32_t *alt_pos; /* start position in code of each alternative */
    int32_t n_cls;
    int32_t *cls_off, *cls_n;
    uint32_t *rlo, *rhi;
    uint32_t (*ascii)[4]; /* per class: bitmap of the ASCII code points it holds */
    int32_t root;
};

static inline int gram_cls_has(const sglc_gram *g, int32_t c, uint32_t cp) {
    if (cp < 128) return (int)((g->ascii[c][cp >> 5] >> (cp & 31)) & 1u);
    int32_t lo = g->cls_off[c], hi = lo + g->cls_n[c] - 1;
    while (lo <= hi) {
        int32_t mid = (lo + hi) / 2;
        if (cp < g->rlo[mid])
            hi = mid - 1;
        else if (cp > g->rhi[mid])
            lo = mid + 1;
        else
            return 1;
    }
    return 0;
}

/* Some code point of [lo, hi] is in class c. */
int gram_cls_intersects(const sglc_gram *g, int32_t c, uint32_t lo, uint32_t hi);

/* Advances the stack set in[0..) (state words) by one complete code point into out (cleared
 * first; out must not alias in). Returns 0, -1 when nothing accepts cp or a limit is hit, or
 * SGLC_ERR_NOMEM. */
int gram_step_cp(const sglc_gram *g, const uint32_t *in, uint32_t cp, sglc_gscratch *sc,
                 sglc_gvec *out);
/* Byte b against partial state *partial with stacks st: 1 = b completes code point *cp, 0 = b
 * extends a still feasible partial code point (*partial updated), -1 = refused. */
int gram_step_byte(const sglc_gram *g, const uint32_t *st, uint32_t *partial, uint8_t b,
                   uint32_t *cp);
int gram_state_accepting(const uint32_t *st);
/* Reserves room for n more words. */
int gvec_reserve(sglc_gvec *v, size_t n);

#endif
