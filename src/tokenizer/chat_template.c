/* Jinja-subset renderer for chat templates. The template is lexed into one token stream (text,
 * {{ }}, {% %}), parsed by recursive descent into a small AST and evaluated over values that
 * live in a per-render arena, so every error path is a longjmp back to the entry point that
 * frees the arena. Supported: for (with loop.*), if/elif/else, set (names and namespace
 * attributes), {{ }} output, whitespace control, literals, and/or/not, comparisons, in, is
 * defined/none/string/true/false, + ~ concatenation, indexing and dict keys, slices, a few
 * filters and string methods, raise_exception, namespace() and strftime_now(). Nothing else of
 * Python is reachable. Every string carries a taint mask (request data vs template text) that
 * follows it through filters, methods, slicing and concatenation into the output, so the caller
 * can tokenize request data as plain text (sglc_chat_template_render_spans). */
#include "tokenizer/chat_template.h"

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CT_MAX_DEPTH 64
#define CT_MAX_ITERS 100000
#define CT_MAX_OUTPUT (4u << 20)
#define CT_MAX_TEMPLATE (1u << 20)

/* ---------- arena and errors ---------- */

typedef struct arena_block {
    struct arena_block *next;
    size_t used, cap;
    max_align_t data[];
} arena_block;

typedef struct {
    arena_block *blocks;
    jmp_buf jb;
    char *err;
    size_t errlen;
    char *out;
    unsigned char *out_m; /* per output byte: 1 = came from request data (taint) */
    size_t out_len, out_cap;
    long iters;
    int depth;
} ctx;

static void ct_fail(ctx *c, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));
static void ct_fail(ctx *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, c->errlen, fmt, ap);
    va_end(ap);
    longjmp(c->jb, 1);
}

static void *ct_alloc(ctx *c, size_t n) {
    n = (n + 15) & ~(size_t)15;
    arena_block *b = c->blocks;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        b = malloc(sizeof *b + cap);
        if (!b) ct_fail(c, "out of memory");
        b->cap = cap;
        b->used = 0;
        b->next = c->blocks;
        c->blocks = b;
    }
    void *p = (char *)b->data + b->used;
    b->used += n;
    return p;
}

/* ---------- values ---------- */

typedef enum {
    V_UNDEF = 0,
    V_NONE,
    V_BOOL,
    V_INT,
    V_STR,
    V_LIST,
    V_DICT,
    V_FUNC, /* a built-in callable: raise_exception, namespace, or a bound string method */
    V_TYPE_COUNT
} vtype;

typedef struct value value;
typedef struct {
    int n, cap;
    value **items;
    const char **keys; /* dicts only */
    int tainted_keys;  /* dict keys came from request data */
} coll;

struct value {
    vtype t;
    long long i;
    const char *s;
    size_t n;
    /* Taint (ROBUSTNESS.md §19): per byte of s, 1 when it came from request data (message
     * fields, chat_template_kwargs), through any filters, slicing and concatenation; NULL when
     * all of it is template text. Masks are never modified once made, so they are shared. */
    const unsigned char *m;
    coll *c;
    const char *fname; /* V_FUNC */
    value *self;       /* bound method receiver */
};

static value UNDEF_V = {.t = V_UNDEF};
static value NONE_V = {.t = V_NONE};

static value *mk(ctx *c, vtype t) {
    value *v = ct_alloc(c, sizeof *v);
    memset(v, 0, sizeof *v);
    v->t = t;
    return v;
}
static value *mk_str(ctx *c, const char *s, size_t n) {
    value *v = mk(c, V_STR);
    char *d = ct_alloc(c, n + 1);
    memcpy(d, s, n);
    d[n] = 0;
    v->s = d;
    v->n = n;
    return v;
}
/* a string whose bytes carry the taint mask m (may be NULL: template text) */
static value *mk_str_m(ctx *c, const char *s, size_t n, const unsigned char *m) {
    value *v = mk_str(c, s, n);
    v->m = m && n ? m : NULL;
    return v;
}
static const unsigned char *mask_all(ctx *c, size_t n) {
    unsigned char *m = ct_alloc(c, n ? n : 1);
    memset(m, 1, n);
    return m;
}
static int any_taint(const value *v) {
    if (v->t != V_STR || !v->m) return 0;
    for (size_t i = 0; i < v->n; i++)
        if (v->m[i]) return 1;
    return 0;
}
/* a global callable (self == NULL): strftime_now */
static value *mk_builtin(ctx *c, const char *name) {
    value *v = mk(c, V_FUNC);
    v->fname = name;
    return v;
}
static value *mk_int(ctx *c, long long i) {
    value *v = mk(c, V_INT);
    v->i = i;
    return v;
}
static value *mk_bool(ctx *c, int b) {
    value *v = mk(c, V_BOOL);
    v->i = b != 0;
    return v;
}
static value *mk_coll(ctx *c, vtype t) {
    value *v = mk(c, t);
    v->c = ct_alloc(c, sizeof *v->c);
    memset(v->c, 0, sizeof *v->c);
    return v;
}
static void coll_push(ctx *c, value *v, const char *key, value *item) {
    coll *k = v->c;
    if (k->n == k->cap) {
        int ncap = k->cap ? k->cap * 2 : 8;
        value **ni = ct_alloc(c, (size_t)ncap * sizeof *ni);
        const char **nk = ct_alloc(c, (size_t)ncap * sizeof *nk);
        if (k->n) {
            memcpy(ni, k->items, (size_t)k->n * sizeof *ni);
            memcpy(nk, k->keys, (size_t)k->n * sizeof *nk);
        }
        k->items = ni;
        k->keys = nk;
        k->cap = ncap;
    }
    k->items[k->n] = item;
    k->keys[k->n] = key;
    k->n++;
}
static value *dict_get(value *d, const char *key) {
    for (int i = 0; i < d->c->n; i++)
        if (strcmp(d->c->keys[i], key) == 0) return d->c->items[i];
    return NULL;
}
static void dict_set(ctx *c, value *d, const char *key, value *item) {
    for (int i = 0; i < d->c->n; i++)
        if (strcmp(d->c->keys[i], key) == 0) {
            d->c->items[i] = item;
            return;
        }
    size_t L = strlen(key);
    char *k = ct_alloc(c, L + 1);
    memcpy(k, key, L + 1);
    coll_push(c, d, k, item);
}

static value *from_json(ctx *c, const cJSON *j, int depth) {
    if (depth > CT_MAX_DEPTH) ct_fail(c, "input nested too deeply");
    if (!j || cJSON_IsNull(j)) return &NONE_V;
    if (cJSON_IsBool(j)) return mk_bool(c, cJSON_IsTrue(j));
    if (cJSON_IsNumber(j)) return mk_int(c, (long long)j->valuedouble);
    if (cJSON_IsString(j)) {
        size_t n = strlen(j->valuestring);
        return mk_str_m(c, j->valuestring, n, mask_all(c, n));
    }
    if (cJSON_IsArray(j)) {
        value *v = mk_coll(c, V_LIST);
        for (const cJSON *e = j->child; e; e = e->next)
            coll_push(c, v, NULL, from_json(c, e, depth + 1));
        return v;
    }
    if (cJSON_IsObject(j)) {
        value *v = mk_coll(c, V_DICT);
        v->c->tainted_keys = 1;
        for (const cJSON *e = j->child; e; e = e->next)
            dict_set(c, v, e->string ? e->string : "", from_json(c, e, depth + 1));
        return v;
    }
    return &UNDEF_V;
}

static int truthy(const value *v) {
    switch (v->t) {
    case V_BOOL:
    case V_INT: return v->i != 0;
    case V_STR: return v->n != 0;
    case V_LIST:
    case V_DICT: return v->c->n != 0;
    case V_FUNC: return 1;
    default: return 0;
    }
}

static const char *type_name(vtype t) {
    static const char *names[V_TYPE_COUNT] = {"undefined", "none", "bool", "int",
                                              "string",    "list", "dict", "function"};
    return names[t];
}

/* ---------- output ---------- */

static void out_append(ctx *c, const char *s, size_t n, const unsigned char *m) {
    if (c->out_len + n > CT_MAX_OUTPUT)
        ct_fail(c, "chat template output exceeds %u bytes", CT_MAX_OUTPUT);
    if (c->out_len + n + 1 > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 4096;
        while (cap < c->out_len + n + 1)
            cap *= 2;
        char *o = realloc(c->out, cap);
        if (!o) ct_fail(c, "out of memory");
        c->out = o;
        unsigned char *om = realloc(c->out_m, cap);
        if (!om) ct_fail(c, "out of memory");
        c->out_m = om;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, s, n);
    if (m)
        memcpy(c->out_m + c->out_len, m, n);
    else
        memset(c->out_m + c->out_len, 0, n);
    c->out_len += n;
    c->out[c->out_len] = 0;
}

/* string form of a value, as Jinja's str() */
static value *to_str(ctx *c, value *v) {
    char buf[64];
    switch (v->t) {
    case V_STR: return v;
    case V_UNDEF: return mk_str(c, "", 0);
    case V_NONE: return mk_str(c, "None", 4);
    case V_BOOL: return v->i ? mk_str(c, "True", 4) : mk_str(c, "False", 5);
    case V_INT: {
        int n = snprintf(buf, sizeof buf, "%lld", v->i);
        return mk_str(c, buf, (size_t)n);
    }
    default: ct_fail(c, "cannot convert a %s to a string", type_name(v->t));
    }
}

/* ---------- lexer ---------- */

typedef enum {
    T_TEXT,
    T_VAR_BEGIN,
    T_VAR_END,
    T_BLOCK_BEGIN,
    T_BLOCK_END,
    T_NAME,
    T_STRING,
    T_INT,
    T_OP,
    T_EOF,
    T_KIND_COUNT
} tkind;

typedef struct {
    tkind k;
    const char *s; /* text, name, string contents (arena), op */
    size_t n;
    long long i;
} token;

typedef struct {
    token *v;
    int n, cap;
} tokvec;

static void tok_push(ctx *c, tokvec *tv, token t) {
    if (tv->n == tv->cap) {
        int ncap = tv->cap ? tv->cap * 2 : 256;
        token *nv = ct_alloc(c, (size_t)ncap * sizeof *nv);
        if (tv->n) memcpy(nv, tv->v, (size_t)tv->n * sizeof *nv);
        tv->v = nv;
        tv->cap = ncap;
    }
    tv->v[tv->n++] = t;
}

static int is_ws(char ch) {
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}
static int is_name0(char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_';
}
static int is_digit(char ch) {
    return ch >= '0' && ch <= '9';
}

/* Lexes the inside of a tag from p up to the closing delimiter; returns the position after it
 * and whether the tag ended with '-'. */
static const char *lex_tag(ctx *c, tokvec *tv, const char *p, char close, int *strip_after,
                           int *ended_block) {
    for (;;) {
        while (is_ws(*p))
            p++;
        if (!*p) ct_fail(c, "unterminated tag");
        if (p[0] == '-' && p[1] == close && p[2] == '}') {
            *strip_after = 1;
            return p + 3;
        }
        if (p[0] == close && p[1] == '}') {
            *strip_after = 0;
            (void)ended_block;
            return p + 2;
        }
        token t = {0};
        if (is_name0(*p)) {
            const char *s = p;
            while (is_name0(*p) || is_digit(*p))
                p++;
            t.k = T_NAME;
            t.s = s;
            t.n = (size_t)(p - s);
        } else if (is_digit(*p)) {
            long long v = 0;
            while (is_digit(*p)) {
                if (v > (LLONG_MAX - 9) / 10) ct_fail(c, "integer literal too large");
                v = v * 10 + (*p - '0');
                p++;
            }
            t.k = T_INT;
            t.i = v;
        } else if (*p == '\'' || *p == '"') {
            char q = *p++;
            size_t cap = 16, n = 0;
            char *buf = ct_alloc(c, cap);
            while (*p && *p != q) {
                char ch = *p++;
                if (ch == '\\' && *p) {
                    char e = *p++;
                    ch = e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e;
                }
                if (n + 2 > cap) {
                    char *nb = ct_alloc(c, cap * 2);
                    memcpy(nb, buf, n);
                    buf = nb;
                    cap *= 2;
                }
                buf[n++] = ch;
            }
            if (*p != q) ct_fail(c, "unterminated string literal");
            p++;
            buf[n] = 0;
            t.k = T_STRING;
            t.s = buf;
            t.n = n;
        } else {
            static const char *ops2[] = {"==", "!=", "<=", ">=", "//"};
            t.k = T_OP;
            t.s = p;
            t.n = 1;
            for (size_t k = 0; k < sizeof ops2 / sizeof *ops2; k++)
                if (p[0] == ops2[k][0] && p[1] == ops2[k][1]) t.n = 2;
            if (t.n == 1 && !strchr("+-*/%~()[]{},.:|=<>", *p))
                ct_fail(c, "unexpected character '%c' in a tag", *p);
            p += t.n;
        }
        tok_push(c, tv, t);
    }
}

static void lex(ctx *c, const char *src, tokvec *tv) {
    const char *p = src;
    int strip_next = 0, trim_newline = 0;
    while (*p) {
        const char *tag = p;
        while (*tag && !(tag[0] == '{' && (tag[1] == '{' || tag[1] == '%' || tag[1] == '#')))
            tag++;
        const char *ts = p, *te = tag;
        if (trim_newline) {
            if (ts < te && *ts == '\n')
                ts++;
            else if (ts + 1 < te && ts[0] == '\r' && ts[1] == '\n')
                ts += 2;
        }
        if (strip_next)
            while (ts < te && is_ws(*ts))
                ts++;
        int strip_before = *tag && tag[2] == '-';
        if (strip_before) {
            while (te > ts && is_ws(te[-1]))
                te--;
        } else if (*tag && (tag[1] == '%' || tag[1] == '#') && tag[2] != '+') {
            /* lstrip_blocks: spaces and tabs from the start of the line up to a block tag */
            const char *q = te;
            while (q > ts && (q[-1] == ' ' || q[-1] == '\t'))
                q--;
            if (q == src || q[-1] == '\n') te = q;
        }
        if (te > ts) tok_push(c, tv, (token){.k = T_TEXT, .s = ts, .n = (size_t)(te - ts)});
        if (!*tag) break;
        const char *q = tag + 2 + (strip_before || tag[2] == '+');
        strip_next = 0;
        trim_newline = 0;
        if (tag[1] == '#') {
            const char *e = strstr(q, "#}");
            if (!e) ct_fail(c, "unterminated comment");
            strip_next = e > q && e[-1] == '-';
            trim_newline = !strip_next;
            p = e + 2;
            continue;
        }
        int is_block = tag[1] == '%';
        tok_push(c, tv, (token){.k = is_block ? T_BLOCK_BEGIN : T_VAR_BEGIN});
        int sa = 0, eb = 0;
        p = lex_tag(c, tv, q, is_block ? '%' : '}', &sa, &eb);
        tok_push(c, tv, (token){.k = is_block ? T_BLOCK_END : T_VAR_END});
        strip_next = sa;
        trim_newline = is_block && !sa;
    }
    tok_push(c, tv, (token){.k = T_EOF});
}

/* ---------- AST ---------- */

typedef enum {
    N_TEXT,
    N_OUTPUT,
    N_IF,
    N_FOR,
    N_SET,
    N_LIT,
    N_NAME,
    N_LIST,
    N_DICT,
    N_ATTR,
    N_INDEX,
    N_SLICE,
    N_CALL,
    N_FILTER,
    N_TEST,
    N_UNARY,
    N_BINARY,
    N_COND,
    N_KIND_COUNT
} nkind;

typedef struct node node;
struct node {
    nkind k;
    const char *s; /* text, name, attribute, operator, filter/test name */
    size_t n;
    value *lit;
    node *a, *b, *d; /* operands / condition, body, else */
    node **kids;     /* body statements, list items, call args */
    int nkids;
    const char *var2; /* for: second loop variable (a, b in items) */
    int negate;
};

typedef struct {
    ctx *c;
    token *t;
    int pos, n;
    int depth;
} parser;

static token *peek(parser *p) {
    return &p->t[p->pos];
}
static int is_op(token *t, const char *op) {
    return t->k == T_OP && t->n == strlen(op) && memcmp(t->s, op, t->n) == 0;
}
static int is_kw(token *t, const char *kw) {
    return t->k == T_NAME && t->n == strlen(kw) && memcmp(t->s, kw, t->n) == 0;
}
static void expect_op(parser *p, const char *op) {
    if (!is_op(peek(p), op)) ct_fail(p->c, "expected '%s' in the chat template", op);
    p->pos++;
}
static const char *take_name(parser *p) {
    token *t = peek(p);
    if (t->k != T_NAME) ct_fail(p->c, "expected a name in the chat template");
    p->pos++;
    char *s = ct_alloc(p->c, t->n + 1);
    memcpy(s, t->s, t->n);
    s[t->n] = 0;
    return s;
}
static node *mk_node(parser *p, nkind k) {
    node *nd = ct_alloc(p->c, sizeof *nd);
    memset(nd, 0, sizeof *nd);
    nd->k = k;
    return nd;
}
static void push_kid(parser *p, node *parent, node *kid, int *cap) {
    if (parent->nkids == *cap) {
        int ncap = *cap ? *cap * 2 : 8;
        node **nk = ct_alloc(p->c, (size_t)ncap * sizeof *nk);
        if (parent->nkids) memcpy(nk, parent->kids, (size_t)parent->nkids * sizeof *nk);
        parent->kids = nk;
        *cap = ncap;
    }
    parent->kids[parent->nkids++] = kid;
}

static node *parse_expr(parser *p);

static void enter(parser *p) {
    if (++p->depth > CT_MAX_DEPTH) ct_fail(p->c, "chat template nested too deeply");
}

static node *parse_primary(parser *p) {
    token *t = peek(p);
    node *nd;
    if (t->k == T_STRING) {
        p->pos++;
        nd = mk_node(p, N_LIT);
        nd->lit = mk_str(p->c, t->s, t->n);
        /* adjacent string literals concatenate */
        while (peek(p)->k == T_STRING) {
            token *u = peek(p);
            value *s = mk_str(p->c, "", 0);
            char *buf = ct_alloc(p->c, nd->lit->n + u->n + 1);
            memcpy(buf, nd->lit->s, nd->lit->n);
            memcpy(buf + nd->lit->n, u->s, u->n);
            buf[nd->lit->n + u->n] = 0;
            s->s = buf;
            s->n = nd->lit->n + u->n;
            nd->lit = s;
            p->pos++;
        }
        return nd;
    }
    if (t->k == T_INT) {
        p->pos++;
        nd = mk_node(p, N_LIT);
        nd->lit = mk_int(p->c, t->i);
        return nd;
    }
    if (t->k == T_NAME) {
        if (is_kw(t, "true") || is_kw(t, "True") || is_kw(t, "false") || is_kw(t, "False")) {
            p->pos++;
            nd = mk_node(p, N_LIT);
            nd->lit = mk_bool(p->c, t->s[0] == 't' || t->s[0] == 'T');
            return nd;
        }
        if (is_kw(t, "none") || is_kw(t, "None")) {
            p->pos++;
            nd = mk_node(p, N_LIT);
            nd->lit = &NONE_V;
            return nd;
        }
        nd = mk_node(p, N_NAME);
        nd->s = take_name(p);
        return nd;
    }
    if (is_op(t, "(")) {
        p->pos++;
        nd = parse_expr(p);
        expect_op(p, ")");
        return nd;
    }
    if (is_op(t, "[")) {
        p->pos++;
        nd = mk_node(p, N_LIST);
        int cap = 0;
        while (!is_op(peek(p), "]")) {
            push_kid(p, nd, parse_expr(p), &cap);
            if (!is_op(peek(p), ",")) break;
            p->pos++;
        }
        expect_op(p, "]");
        return nd;
    }
    if (is_op(t, "{")) {
        p->pos++;
        nd = mk_node(p, N_DICT);
        int cap = 0;
        while (!is_op(peek(p), "}")) {
            push_kid(p, nd, parse_expr(p), &cap);
            expect_op(p, ":");
            push_kid(p, nd, parse_expr(p), &cap);
            if (!is_op(peek(p), ",")) break;
            p->pos++;
        }
        expect_op(p, "}");
        return nd;
    }
    ct_fail(p->c, "unexpected token in a chat template expression");
}

static void parse_args(parser *p, node *call) {
    int cap = 0;
    expect_op(p, "(");
    while (!is_op(peek(p), ")")) {
        /* keyword arguments (namespace(x=1)) become name/value pairs */
        if (peek(p)->k == T_NAME && is_op(&p->t[p->pos + 1], "=")) {
            node *kw = mk_node(p, N_LIT);
            const char *name = take_name(p);
            kw->lit = mk_str(p->c, name, strlen(name));
            kw->negate = 1; /* marks a keyword */
            p->pos++;
            push_kid(p, call, kw, &cap);
        }
        push_kid(p, call, parse_expr(p), &cap);
        if (!is_op(peek(p), ",")) break;
        p->pos++;
    }
    expect_op(p, ")");
}

static node *parse_postfix(parser *p) {
    enter(p);
    node *nd = parse_primary(p);
    for (;;) {
        token *t = peek(p);
        if (is_op(t, ".")) {
            p->pos++;
            node *a = mk_node(p, N_ATTR);
            a->a = nd;
            a->s = take_name(p);
            nd = a;
        } else if (is_op(t, "[")) {
            p->pos++;
            node *lo = NULL, *hi = NULL, *step = NULL;
            int slice = 0;
            if (!is_op(peek(p), ":")) lo = parse_expr(p);
            if (is_op(peek(p), ":")) {
                slice = 1;
                p->pos++;
                if (!is_op(peek(p), "]") && !is_op(peek(p), ":")) hi = parse_expr(p);
                if (is_op(peek(p), ":")) {
                    p->pos++;
                    if (!is_op(peek(p), "]")) step = parse_expr(p);
                }
            }
            expect_op(p, "]");
            node *x = mk_node(p, slice ? N_SLICE : N_INDEX);
            x->a = nd;
            x->b = lo;
            if (slice) {
                x->d = hi;
                int cap = 0;
                push_kid(p, x, step, &cap);
            }
            nd = x;
        } else if (is_op(t, "(")) {
            node *call = mk_node(p, N_CALL);
            call->a = nd;
            parse_args(p, call);
            nd = call;
        } else if (is_op(t, "|")) {
            p->pos++;
            node *f = mk_node(p, N_FILTER);
            f->a = nd;
            f->s = take_name(p);
            if (is_op(peek(p), "(")) parse_args(p, f);
            nd = f;
        } else {
            break;
        }
    }
    p->depth--;
    return nd;
}

static node *parse_unary(parser *p) {
    if (is_op(peek(p), "-")) {
        p->pos++;
        enter(p);
        node *u = mk_node(p, N_UNARY);
        u->s = "-";
        u->a = parse_unary(p);
        p->depth--;
        return u;
    }
    return parse_postfix(p);
}

static node *binary(parser *p, const char *op, node *a, node *b) {
    node *nd = mk_node(p, N_BINARY);
    nd->s = op;
    nd->a = a;
    nd->b = b;
    return nd;
}

static node *parse_mul(parser *p) {
    node *a = parse_unary(p);
    for (;;) {
        token *t = peek(p);
        const char *op = is_op(t, "*")    ? "*"
                         : is_op(t, "//") ? "//"
                         : is_op(t, "/")  ? "/"
                         : is_op(t, "%")  ? "%"
                                          : NULL;
        if (!op) return a;
        p->pos++;
        a = binary(p, op, a, parse_unary(p));
    }
}
static node *parse_add(parser *p) {
    node *a = parse_mul(p);
    for (;;) {
        token *t = peek(p);
        const char *op = is_op(t, "+") ? "+" : is_op(t, "-") ? "-" : NULL;
        if (!op) return a;
        p->pos++;
        a = binary(p, op, a, parse_mul(p));
    }
}
static node *parse_concat(parser *p) {
    node *a = parse_add(p);
    while (is_op(peek(p), "~")) {
        p->pos++;
        a = binary(p, "~", a, parse_add(p));
    }
    return a;
}
static node *parse_compare(parser *p) {
    node *a = parse_concat(p);
    for (;;) {
        token *t = peek(p);
        static const char *ops[] = {"==", "!=", "<=", ">=", "<", ">"};
        const char *op = NULL;
        for (size_t k = 0; k < sizeof ops / sizeof *ops; k++)
            if (is_op(t, ops[k])) op = ops[k];
        if (op) {
            p->pos++;
            a = binary(p, op, a, parse_concat(p));
        } else if (is_kw(t, "in")) {
            p->pos++;
            a = binary(p, "in", a, parse_concat(p));
        } else if (is_kw(t, "not") && is_kw(&p->t[p->pos + 1], "in")) {
            p->pos += 2;
            a = binary(p, "not in", a, parse_concat(p));
        } else if (is_kw(t, "is")) {
            p->pos++;
            node *nd = mk_node(p, N_TEST);
            if (is_kw(peek(p), "not")) {
                nd->negate = 1;
                p->pos++;
            }
            nd->a = a;
            if (is_kw(peek(p), "none") || is_kw(peek(p), "None")) {
                p->pos++;
                nd->s = "none";
            } else {
                nd->s = take_name(p);
            }
            a = nd;
        } else {
            return a;
        }
    }
}
static node *parse_not(parser *p) {
    if (is_kw(peek(p), "not")) {
        p->pos++;
        enter(p);
        node *u = mk_node(p, N_UNARY);
        u->s = "not";
        u->a = parse_not(p);
        p->depth--;
        return u;
    }
    return parse_compare(p);
}
static node *parse_and(parser *p) {
    node *a = parse_not(p);
    while (is_kw(peek(p), "and")) {
        p->pos++;
        a = binary(p, "and", a, parse_not(p));
    }
    return a;
}
static node *parse_or(parser *p) {
    node *a = parse_and(p);
    while (is_kw(peek(p), "or")) {
        p->pos++;
        a = binary(p, "or", a, parse_and(p));
    }
    return a;
}
static node *parse_expr(parser *p) {
    enter(p);
    node *a = parse_or(p);
    if (is_kw(peek(p), "if")) {
        p->pos++;
        node *nd = mk_node(p, N_COND);
        nd->b = a;
        nd->a = parse_or(p);
        if (is_kw(peek(p), "else")) {
            p->pos++;
            nd->d = parse_expr(p);
        }
        a = nd;
    }
    p->depth--;
    return a;
}

static void expect_block_end(parser *p) {
    if (peek(p)->k != T_BLOCK_END) ct_fail(p->c, "expected '%%}' in the chat template");
    p->pos++;
}

/* Parses statements until a block tag whose keyword is one of stops (returned, not consumed
 * beyond the keyword) or EOF (stops == NULL). */
static node *parse_body(parser *p, const char *const *stops, const char **stopped) {
    enter(p);
    node *body = mk_node(p, N_LIST);
    int cap = 0;
    for (;;) {
        token *t = peek(p);
        if (t->k == T_EOF) {
            if (stops) ct_fail(p->c, "unexpected end of chat template (missing '%s')", stops[0]);
            break;
        }
        if (t->k == T_TEXT) {
            node *nd = mk_node(p, N_TEXT);
            nd->s = t->s;
            nd->n = t->n;
            p->pos++;
            push_kid(p, body, nd, &cap);
            continue;
        }
        if (t->k == T_VAR_BEGIN) {
            p->pos++;
            node *nd = mk_node(p, N_OUTPUT);
            nd->a = parse_expr(p);
            if (peek(p)->k != T_VAR_END) ct_fail(p->c, "expected '}}' in the chat template");
            p->pos++;
            push_kid(p, body, nd, &cap);
            continue;
        }
        if (t->k != T_BLOCK_BEGIN) ct_fail(p->c, "unexpected token in the chat template");
        token *kw = &p->t[p->pos + 1];
        if (stops)
            for (int i = 0; stops[i]; i++)
                if (is_kw(kw, stops[i])) {
                    p->pos += 2;
                    *stopped = stops[i];
                    p->depth--;
                    return body;
                }
        p->pos += 2;
        if (is_kw(kw, "if")) {
            node *nd = mk_node(p, N_IF), *cur = nd;
            cur->a = parse_expr(p);
            expect_block_end(p);
            static const char *if_stops[] = {"elif", "else", "endif", NULL};
            for (;;) {
                const char *st = NULL;
                cur->b = parse_body(p, if_stops, &st);
                if (strcmp(st, "elif") == 0) {
                    node *e = mk_node(p, N_IF);
                    e->a = parse_expr(p);
                    expect_block_end(p);
                    cur->d = e;
                    cur = e;
                } else if (strcmp(st, "else") == 0) {
                    expect_block_end(p);
                    static const char *else_stops[] = {"endif", NULL};
                    cur->d = parse_body(p, else_stops, &st);
                    expect_block_end(p);
                    break;
                } else {
                    expect_block_end(p);
                    break;
                }
            }
            push_kid(p, body, nd, &cap);
        } else if (is_kw(kw, "for")) {
            node *nd = mk_node(p, N_FOR);
            nd->s = take_name(p);
            if (is_op(peek(p), ",")) {
                p->pos++;
                nd->var2 = take_name(p);
            }
            if (!is_kw(peek(p), "in")) ct_fail(p->c, "expected 'in' in a for loop");
            p->pos++;
            nd->a = parse_or(p);
            if (is_kw(peek(p), "if")) ct_fail(p->c, "for ... if filters are not supported");
            expect_block_end(p);
            static const char *for_stops[] = {"endfor", "else", NULL};
            const char *st = NULL;
            nd->b = parse_body(p, for_stops, &st);
            expect_block_end(p);
            if (strcmp(st, "else") == 0) {
                static const char *end_stops[] = {"endfor", NULL};
                nd->d = parse_body(p, end_stops, &st);
                expect_block_end(p);
            }
            push_kid(p, body, nd, &cap);
        } else if (is_kw(kw, "set")) {
            node *nd = mk_node(p, N_SET);
            nd->s = take_name(p);
            if (is_op(peek(p), ".")) {
                p->pos++;
                nd->var2 = take_name(p);
            }
            expect_op(p, "=");
            nd->a = parse_expr(p);
            expect_block_end(p);
            push_kid(p, body, nd, &cap);
        } else {
            ct_fail(p->c, "unsupported statement '%.*s' in the chat template", (int)kw->n,
                    kw->s ? kw->s : "");
        }
    }
    p->depth--;
    return body;
}

/* ---------- evaluation ---------- */

typedef struct scope {
    struct scope *up;
    value *vars; /* dict */
} scope;

static value *lookup(scope *s, const char *name) {
    for (; s; s = s->up) {
        value *v = dict_get(s->vars, name);
        if (v) return v;
    }
    return &UNDEF_V;
}

static value *eval(ctx *c, scope *s, node *nd);

static int val_eq(const value *a, const value *b) {
    if ((a->t == V_INT || a->t == V_BOOL) && (b->t == V_INT || b->t == V_BOOL)) return a->i == b->i;
    if (a->t != b->t) return 0;
    switch (a->t) {
    case V_STR: return a->n == b->n && memcmp(a->s, b->s, a->n) == 0;
    case V_NONE:
    case V_UNDEF: return 1;
    case V_LIST:
        if (a->c->n != b->c->n) return 0;
        for (int i = 0; i < a->c->n; i++)
            if (!val_eq(a->c->items[i], b->c->items[i])) return 0;
        return 1;
    default: return a == b;
    }
}

static value *concat(ctx *c, value *a, value *b) {
    value *sa = to_str(c, a), *sb = to_str(c, b);
    if (sa->n + sb->n > CT_MAX_OUTPUT) ct_fail(c, "string exceeds the size limit");
    value *v = mk(c, V_STR);
    char *buf = ct_alloc(c, sa->n + sb->n + 1);
    memcpy(buf, sa->s, sa->n);
    memcpy(buf + sa->n, sb->s, sb->n);
    buf[sa->n + sb->n] = 0;
    v->s = buf;
    v->n = sa->n + sb->n;
    if ((sa->m || sb->m) && v->n) {
        unsigned char *m = ct_alloc(c, v->n);
        if (sa->m)
            memcpy(m, sa->m, sa->n);
        else
            memset(m, 0, sa->n);
        if (sb->m)
            memcpy(m + sa->n, sb->m, sb->n);
        else
            memset(m + sa->n, 0, sb->n);
        v->m = m;
    }
    return v;
}

static value *get_item(ctx *c, value *o, value *key) {
    if (o->t == V_DICT) {
        if (key->t != V_STR) return &UNDEF_V;
        value *v = dict_get(o, key->s);
        return v ? v : &UNDEF_V;
    }
    if ((o->t == V_LIST || o->t == V_STR) && key->t == V_INT) {
        long long n = o->t == V_LIST ? o->c->n : (long long)o->n, i = key->i;
        if (i < 0) i += n;
        if (i < 0 || i >= n) return &UNDEF_V;
        return o->t == V_LIST ? o->c->items[i] : mk_str_m(c, o->s + i, 1, o->m ? o->m + i : NULL);
    }
    if (o->t == V_UNDEF) ct_fail(c, "indexing an undefined value");
    return &UNDEF_V;
}

static const char *const STR_METHODS[] = {"strip",      "lstrip", "rstrip",  "startswith",
                                          "endswith",   "upper",  "lower",   "split",
                                          "capitalize", "title",  "replace", NULL};

static value *get_attr(ctx *c, value *o, const char *name) {
    /* ROBUSTNESS.md §28: no walking into an object model */
    if (name[0] == '_') ct_fail(c, "attribute '%s' is not accessible in a chat template", name);
    if (o->t == V_DICT) {
        value *v = dict_get(o, name);
        if (v) return v;
        if (strcmp(name, "items") == 0 || strcmp(name, "keys") == 0 ||
            strcmp(name, "values") == 0 || strcmp(name, "get") == 0) {
            value *f = mk(c, V_FUNC);
            f->fname = name;
            f->self = o;
            return f;
        }
        return &UNDEF_V;
    }
    if (o->t == V_STR)
        for (int i = 0; STR_METHODS[i]; i++)
            if (strcmp(STR_METHODS[i], name) == 0) {
                value *f = mk(c, V_FUNC);
                f->fname = STR_METHODS[i];
                f->self = o;
                return f;
            }
    if (o->t == V_UNDEF) ct_fail(c, "attribute '%s' of an undefined value", name);
    return &UNDEF_V;
}

static int is_strip_char(char ch, value *chars) {
    if (!chars || chars->t != V_STR) return is_ws(ch);
    return memchr(chars->s, ch, chars->n) != NULL;
}

static value *call_method(ctx *c, value *f, value **args, int nargs) {
    value *o = f->self;
    const char *m = f->fname;
    if (o->t == V_DICT) {
        if (strcmp(m, "get") == 0) {
            if (nargs < 1 || args[0]->t != V_STR) ct_fail(c, "get() needs a key");
            value *v = dict_get(o, args[0]->s);
            return v ? v : nargs > 1 ? args[1] : &NONE_V;
        }
        value *l = mk_coll(c, V_LIST);
        for (int i = 0; i < o->c->n; i++) {
            size_t kl = strlen(o->c->keys[i]);
            value *k = mk_str_m(c, o->c->keys[i], kl, o->c->tainted_keys ? mask_all(c, kl) : NULL);
            if (strcmp(m, "keys") == 0) {
                coll_push(c, l, NULL, k);
            } else if (strcmp(m, "values") == 0) {
                coll_push(c, l, NULL, o->c->items[i]);
            } else {
                value *pair = mk_coll(c, V_LIST);
                coll_push(c, pair, NULL, k);
                coll_push(c, pair, NULL, o->c->items[i]);
                coll_push(c, l, NULL, pair);
            }
        }
        return l;
    }
    const char *s = o->s;
    size_t n = o->n;
    if (strcmp(m, "strip") == 0 || strcmp(m, "lstrip") == 0 || strcmp(m, "rstrip") == 0) {
        value *chars = nargs > 0 ? args[0] : NULL;
        size_t b = 0, e = n;
        if (m[0] != 'r')
            while (b < e && is_strip_char(s[b], chars))
                b++;
        if (m[0] != 'l')
            while (e > b && is_strip_char(s[e - 1], chars))
                e--;
        return mk_str_m(c, s + b, e - b, o->m ? o->m + b : NULL);
    }
    if (strcmp(m, "startswith") == 0 || strcmp(m, "endswith") == 0) {
        if (nargs != 1 || args[0]->t != V_STR) ct_fail(c, "%s() needs a string", m);
        size_t k = args[0]->n;
        if (k > n) return mk_bool(c, 0);
        return mk_bool(c, memcmp(m[0] == 's' ? s : s + n - k, args[0]->s, k) == 0);
    }
    if (strcmp(m, "upper") == 0 || strcmp(m, "lower") == 0 || strcmp(m, "capitalize") == 0 ||
        strcmp(m, "title") == 0) {
        value *r = mk_str_m(c, s, n, o->m);
        char *d = (char *)r->s;
        int start = 1;
        for (size_t i = 0; i < n; i++) {
            int up = m[0] == 'u' || ((m[0] == 'c' && i == 0) || (m[0] == 't' && start));
            if (up && d[i] >= 'a' && d[i] <= 'z') d[i] = (char)(d[i] - 32);
            if (!up && d[i] >= 'A' && d[i] <= 'Z') d[i] = (char)(d[i] + 32);
            start = !((d[i] >= 'a' && d[i] <= 'z') || (d[i] >= 'A' && d[i] <= 'Z'));
        }
        return r;
    }
    if (strcmp(m, "split") == 0) {
        value *l = mk_coll(c, V_LIST);
        if (nargs < 1 || args[0]->t != V_STR || args[0]->n == 0) {
            size_t i = 0;
            while (i < n) {
                while (i < n && is_ws(s[i]))
                    i++;
                size_t b = i;
                while (i < n && !is_ws(s[i]))
                    i++;
                if (i > b) coll_push(c, l, NULL, mk_str_m(c, s + b, i - b, o->m ? o->m + b : NULL));
            }
            return l;
        }
        const char *sep = args[0]->s;
        size_t k = args[0]->n, b = 0;
        for (size_t i = 0; i + k <= n;) {
            if (++c->iters > CT_MAX_ITERS) ct_fail(c, "chat template loop limit exceeded");
            if (memcmp(s + i, sep, k) == 0) {
                coll_push(c, l, NULL, mk_str_m(c, s + b, i - b, o->m ? o->m + b : NULL));
                i += k;
                b = i;
            } else {
                i++;
            }
        }
        coll_push(c, l, NULL, mk_str_m(c, s + b, n - b, o->m ? o->m + b : NULL));
        return l;
    }
    if (strcmp(m, "replace") == 0) {
        if (nargs != 2 || args[0]->t != V_STR || args[1]->t != V_STR || args[0]->n == 0)
            ct_fail(c, "replace() needs two strings");
        value *r = mk_str(c, "", 0);
        size_t i = 0, b = 0, k = args[0]->n;
        while (i + k <= n) {
            if (memcmp(s + i, args[0]->s, k) == 0) {
                r = concat(c, r, mk_str_m(c, s + b, i - b, o->m ? o->m + b : NULL));
                r = concat(c, r, args[1]);
                i += k;
                b = i;
            } else {
                i++;
            }
        }
        return concat(c, r, mk_str_m(c, s + b, n - b, o->m ? o->m + b : NULL));
    }
    ct_fail(c, "unsupported method '%s'", m);
}

static value *tojson(ctx *c, value *v, int depth) {
    if (depth > CT_MAX_DEPTH) ct_fail(c, "value nested too deeply");
    switch (v->t) {
    case V_NONE:
    case V_UNDEF: return mk_str(c, "null", 4);
    case V_BOOL: return mk_str(c, v->i ? "true" : "false", v->i ? 4 : 5);
    case V_INT: return to_str(c, v);
    case V_STR: {
        cJSON *j = cJSON_CreateString(v->s);
        char *p = j ? cJSON_PrintUnformatted(j) : NULL;
        cJSON_Delete(j);
        if (!p) ct_fail(c, "out of memory");
        size_t pl = strlen(p);
        value *r = mk_str_m(c, p, pl, any_taint(v) ? mask_all(c, pl) : NULL);
        free(p);
        return r;
    }
    case V_LIST:
    case V_DICT: {
        int is_list = v->t == V_LIST;
        value *r = mk_str(c, is_list ? "[" : "{", 1);
        for (int i = 0; i < v->c->n; i++) {
            if (i) r = concat(c, r, mk_str(c, ", ", 2));
            if (!is_list) {
                size_t kl = strlen(v->c->keys[i]);
                value *k =
                    mk_str_m(c, v->c->keys[i], kl, v->c->tainted_keys ? mask_all(c, kl) : NULL);
                r = concat(c, r, tojson(c, k, depth + 1));
                r = concat(c, r, mk_str(c, ": ", 2));
            }
            r = concat(c, r, tojson(c, v->c->items[i], depth + 1));
        }
        return concat(c, r, mk_str(c, is_list ? "]" : "}", 1));
    }
    default: ct_fail(c, "cannot serialize a %s", type_name(v->t));
    }
}

static value *apply_filter(ctx *c, scope *s, node *nd) {
    value *v = eval(c, s, nd->a);
    const char *f = nd->s;
    if (strcmp(f, "trim") == 0) {
        value fn = {.t = V_FUNC, .fname = "strip", .self = to_str(c, v)};
        return call_method(c, &fn, NULL, 0);
    }
    if (strcmp(f, "upper") == 0 || strcmp(f, "lower") == 0 || strcmp(f, "capitalize") == 0 ||
        strcmp(f, "title") == 0) {
        value fn = {.t = V_FUNC, .fname = f, .self = to_str(c, v)};
        return call_method(c, &fn, NULL, 0);
    }
    if (strcmp(f, "length") == 0 || strcmp(f, "count") == 0) {
        if (v->t == V_STR) { /* code points, as Python's len() */
            long long n = 0;
            for (size_t i = 0; i < v->n; i++)
                n += ((unsigned char)v->s[i] & 0xC0) != 0x80;
            return mk_int(c, n);
        }
        if (v->t == V_LIST || v->t == V_DICT) return mk_int(c, v->c->n);
        ct_fail(c, "length of a %s", type_name(v->t));
    }
    if (strcmp(f, "string") == 0) return to_str(c, v);
    if (strcmp(f, "tojson") == 0) return tojson(c, v, 0);
    if (strcmp(f, "default") == 0 || strcmp(f, "d") == 0) {
        if (v->t != V_UNDEF) return v;
        return nd->nkids > 0 ? eval(c, s, nd->kids[0]) : mk_str(c, "", 0);
    }
    if (strcmp(f, "first") == 0 || strcmp(f, "last") == 0) {
        if (v->t != V_LIST) ct_fail(c, "%s of a %s", f, type_name(v->t));
        if (v->c->n == 0) return &UNDEF_V;
        return v->c->items[f[0] == 'f' ? 0 : v->c->n - 1];
    }
    if (strcmp(f, "join") == 0) {
        if (v->t != V_LIST) ct_fail(c, "join of a %s", type_name(v->t));
        value *sep = nd->nkids > 0 ? to_str(c, eval(c, s, nd->kids[0])) : mk_str(c, "", 0);
        value *r = mk_str(c, "", 0);
        for (int i = 0; i < v->c->n; i++) {
            if (i) r = concat(c, r, sep);
            r = concat(c, r, v->c->items[i]);
        }
        return r;
    }
    ct_fail(c, "unsupported filter '%s'", f);
}

static value *eval_call(ctx *c, scope *s, node *nd) {
    value *args[16];
    const char *kws[16];
    int nargs = 0;
    for (int i = 0; i < nd->nkids; i++) {
        node *k = nd->kids[i];
        const char *kw = NULL;
        if (k->k == N_LIT && k->negate) {
            kw = k->lit->s;
            k = nd->kids[++i];
        }
        if (nargs == 16) ct_fail(c, "too many call arguments");
        kws[nargs] = kw;
        args[nargs++] = eval(c, s, k);
    }
    if (nd->a->k == N_NAME && strcmp(nd->a->s, "raise_exception") == 0 &&
        lookup(s, "raise_exception")->t == V_UNDEF) {
        value *m = nargs > 0 ? to_str(c, args[0]) : mk_str(c, "error", 5);
        ct_fail(c, "%s", m->s);
    }
    if (nd->a->k == N_NAME && strcmp(nd->a->s, "namespace") == 0) {
        value *d = mk_coll(c, V_DICT);
        for (int i = 0; i < nargs; i++)
            if (kws[i]) dict_set(c, d, kws[i], args[i]);
        return d;
    }
    if (nd->a->k == N_NAME && strcmp(nd->a->s, "range") == 0) {
        long long lo = 0, hi = 0;
        if (nargs == 1 && args[0]->t == V_INT)
            hi = args[0]->i;
        else if (nargs == 2 && args[0]->t == V_INT && args[1]->t == V_INT)
            lo = args[0]->i, hi = args[1]->i;
        else
            ct_fail(c, "range() needs integers");
        if (hi - lo > CT_MAX_ITERS) ct_fail(c, "range() too large");
        value *l = mk_coll(c, V_LIST);
        for (long long i = lo; i < hi; i++)
            coll_push(c, l, NULL, mk_int(c, i));
        return l;
    }
    value *f = eval(c, s, nd->a);
    if (f->t != V_FUNC) ct_fail(c, "calling a %s", type_name(f->t));
    if (!f->self && strcmp(f->fname, "strftime_now") == 0) {
        /* transformers: datetime.now().strftime(format), local time */
        if (nargs != 1 || args[0]->t != V_STR || args[0]->n > 64 ||
            memchr(args[0]->s, 0, args[0]->n))
            ct_fail(c, "strftime_now() needs a short format string");
        char buf[256];
        time_t now = time(NULL);
        struct tm tmv;
        size_t k = localtime_r(&now, &tmv) ? strftime(buf, sizeof buf, args[0]->s, &tmv) : 0;
        return mk_str(c, buf, k);
    }
    if (!f->self) ct_fail(c, "unsupported function '%s'", f->fname);
    return call_method(c, f, args, nargs);
}

static value *eval(ctx *c, scope *s, node *nd) {
    if (++c->depth > CT_MAX_DEPTH * 4) ct_fail(c, "chat template recursion limit exceeded");
    value *r = &UNDEF_V;
    switch (nd->k) {
    case N_LIT: r = nd->lit; break;
    case N_NAME: r = lookup(s, nd->s); break;
    case N_LIST:
        r = mk_coll(c, V_LIST);
        for (int i = 0; i < nd->nkids; i++)
            coll_push(c, r, NULL, eval(c, s, nd->kids[i]));
        break;
    case N_DICT:
        r = mk_coll(c, V_DICT);
        for (int i = 0; i + 1 < nd->nkids; i += 2) {
            value *k = eval(c, s, nd->kids[i]);
            if (k->t != V_STR) ct_fail(c, "dict keys must be strings");
            dict_set(c, r, k->s, eval(c, s, nd->kids[i + 1]));
        }
        break;
    case N_ATTR: r = get_attr(c, eval(c, s, nd->a), nd->s); break;
    case N_INDEX: r = get_item(c, eval(c, s, nd->a), eval(c, s, nd->b)); break;
    case N_SLICE: {
        value *o = eval(c, s, nd->a);
        long long len = o->t == V_LIST ? o->c->n : o->t == V_STR ? (long long)o->n : -1;
        if (len < 0) ct_fail(c, "slicing a %s", type_name(o->t));
        value *lo = nd->b ? eval(c, s, nd->b) : NULL, *hi = nd->d ? eval(c, s, nd->d) : NULL;
        value *st = nd->kids[0] ? eval(c, s, nd->kids[0]) : NULL;
        if ((lo && lo->t != V_INT) || (hi && hi->t != V_INT) || (st && st->t != V_INT))
            ct_fail(c, "slice bounds must be integers");
        long long step = st ? st->i : 1;
        if (step != 1 && step != -1) ct_fail(c, "only slice steps 1 and -1 are supported");
        long long a, b;
        if (step == 1) {
            a = lo ? lo->i : 0;
            b = hi ? hi->i : len;
            if (a < 0) a += len;
            if (b < 0) b += len;
            if (a < 0) a = 0;
            if (b > len) b = len;
        } else {
            a = lo ? lo->i : len - 1;
            b = hi ? hi->i : -len - 1;
            if (a < 0) a += len;
            if (b < 0) b += len;
            if (a >= len) a = len - 1;
        }
        if (o->t == V_STR) {
            if (step == 1) {
                r = mk_str_m(c, o->s + (a < b ? a : 0), a < b ? (size_t)(b - a) : 0,
                             o->m && a < b ? o->m + a : NULL);
            } else {
                r = mk_str(c, "", 0);
                for (long long i = a; i > b && i >= 0; i--)
                    r = concat(c, r, mk_str_m(c, o->s + i, 1, o->m ? o->m + i : NULL));
            }
        } else {
            r = mk_coll(c, V_LIST);
            if (step == 1)
                for (long long i = a; i < b; i++)
                    coll_push(c, r, NULL, o->c->items[i]);
            else
                for (long long i = a; i > b && i >= 0; i--)
                    coll_push(c, r, NULL, o->c->items[i]);
        }
        break;
    }
    case N_CALL: r = eval_call(c, s, nd); break;
    case N_FILTER: r = apply_filter(c, s, nd); break;
    case N_TEST: {
        value *v = eval(c, s, nd->a);
        int res;
        if (strcmp(nd->s, "defined") == 0)
            res = v->t != V_UNDEF;
        else if (strcmp(nd->s, "undefined") == 0)
            res = v->t == V_UNDEF;
        else if (strcmp(nd->s, "none") == 0)
            res = v->t == V_NONE;
        else if (strcmp(nd->s, "string") == 0)
            res = v->t == V_STR;
        else if (strcmp(nd->s, "mapping") == 0)
            res = v->t == V_DICT;
        else if (strcmp(nd->s, "iterable") == 0 || strcmp(nd->s, "sequence") == 0)
            res = v->t == V_LIST || v->t == V_STR || v->t == V_DICT;
        else if (strcmp(nd->s, "number") == 0 || strcmp(nd->s, "integer") == 0)
            res = v->t == V_INT;
        else if (strcmp(nd->s, "boolean") == 0)
            res = v->t == V_BOOL;
        else if (strcmp(nd->s, "true") == 0 || strcmp(nd->s, "false") == 0)
            res = v->t == V_BOOL && v->i == (nd->s[0] == 't'); /* Jinja: `is` True/False */
        else
            ct_fail(c, "unsupported test '%s'", nd->s);
        r = mk_bool(c, nd->negate ? !res : res);
        break;
    }
    case N_UNARY: {
        value *v = eval(c, s, nd->a);
        if (nd->s[0] == 'n') {
            r = mk_bool(c, !truthy(v));
        } else {
            if (v->t != V_INT) ct_fail(c, "negating a %s", type_name(v->t));
            r = mk_int(c, -v->i);
        }
        break;
    }
    case N_BINARY: {
        const char *op = nd->s;
        if (strcmp(op, "and") == 0) {
            value *a = eval(c, s, nd->a);
            r = truthy(a) ? eval(c, s, nd->b) : a;
            break;
        }
        if (strcmp(op, "or") == 0) {
            value *a = eval(c, s, nd->a);
            r = truthy(a) ? a : eval(c, s, nd->b);
            break;
        }
        value *a = eval(c, s, nd->a), *b = eval(c, s, nd->b);
        if (strcmp(op, "~") == 0) {
            r = concat(c, a, b);
        } else if (strcmp(op, "==") == 0) {
            r = mk_bool(c, val_eq(a, b));
        } else if (strcmp(op, "!=") == 0) {
            r = mk_bool(c, !val_eq(a, b));
        } else if (strcmp(op, "in") == 0 || strcmp(op, "not in") == 0) {
            int found = 0;
            if (b->t == V_STR && a->t == V_STR)
                found = a->n == 0 || (a->n <= b->n && memmem(b->s, b->n, a->s, a->n) != NULL);
            else if (b->t == V_LIST)
                for (int i = 0; i < b->c->n && !found; i++)
                    found = val_eq(a, b->c->items[i]);
            else if (b->t == V_DICT && a->t == V_STR)
                found = dict_get(b, a->s) != NULL;
            else if (b->t != V_UNDEF && b->t != V_NONE)
                ct_fail(c, "'in' on a %s", type_name(b->t));
            r = mk_bool(c, op[0] == 'i' ? found : !found);
        } else if (strcmp(op, "+") == 0 && a->t == V_STR && b->t == V_STR) {
            r = concat(c, a, b);
        } else if (strcmp(op, "+") == 0 && a->t == V_LIST && b->t == V_LIST) {
            r = mk_coll(c, V_LIST);
            for (int i = 0; i < a->c->n; i++)
                coll_push(c, r, NULL, a->c->items[i]);
            for (int i = 0; i < b->c->n; i++)
                coll_push(c, r, NULL, b->c->items[i]);
        } else if ((a->t == V_INT || a->t == V_BOOL) && (b->t == V_INT || b->t == V_BOOL)) {
            long long x = a->i, y = b->i, z = 0;
            if (strcmp(op, "<") == 0) {
                r = mk_bool(c, x < y);
                break;
            } else if (strcmp(op, ">") == 0) {
                r = mk_bool(c, x > y);
                break;
            } else if (strcmp(op, "<=") == 0) {
                r = mk_bool(c, x <= y);
                break;
            } else if (strcmp(op, ">=") == 0) {
                r = mk_bool(c, x >= y);
                break;
            }
            if (strcmp(op, "+") == 0 && !__builtin_add_overflow(x, y, &z)) {
            } else if (strcmp(op, "-") == 0 && !__builtin_sub_overflow(x, y, &z)) {
            } else if (strcmp(op, "*") == 0 && !__builtin_mul_overflow(x, y, &z)) {
            } else if ((op[0] == '/' || op[0] == '%') && y != 0 && !(x == LLONG_MIN && y == -1)) {
                /* Python floors; "/" yields a float in Python, approximated by floor here */
                z = op[0] == '%' ? x % y : x / y;
                if (op[0] == '%' && z != 0 && ((z < 0) != (y < 0))) z += y;
                if (op[0] == '/' && (x % y != 0) && ((x < 0) != (y < 0))) z--;
            } else {
                ct_fail(c, "arithmetic error ('%s')", op);
            }
            r = mk_int(c, z);
        } else if (a->t == V_STR && b->t == V_STR && (op[0] == '<' || op[0] == '>')) {
            size_t m = a->n < b->n ? a->n : b->n;
            int cmp = memcmp(a->s, b->s, m);
            if (cmp == 0) cmp = a->n < b->n ? -1 : a->n > b->n;
            int res = strcmp(op, "<") == 0    ? cmp < 0
                      : strcmp(op, ">") == 0  ? cmp > 0
                      : strcmp(op, "<=") == 0 ? cmp <= 0
                                              : cmp >= 0;
            r = mk_bool(c, res);
        } else {
            ct_fail(c, "unsupported operand types for '%s': %s and %s", op, type_name(a->t),
                    type_name(b->t));
        }
        break;
    }
    case N_COND:
        if (truthy(eval(c, s, nd->a)))
            r = eval(c, s, nd->b);
        else
            r = nd->d ? eval(c, s, nd->d) : &UNDEF_V;
        break;
    default: ct_fail(c, "bad expression node");
    }
    c->depth--;
    return r;
}

static void exec_body(ctx *c, scope *s, node *body);

static void exec_stmt(ctx *c, scope *s, node *nd) {
    switch (nd->k) {
    case N_TEXT: out_append(c, nd->s, nd->n, NULL); break;
    case N_OUTPUT: {
        value *v = eval(c, s, nd->a);
        if (v->t == V_LIST || v->t == V_DICT) v = tojson(c, v, 0);
        v = to_str(c, v);
        out_append(c, v->s, v->n, v->m);
        break;
    }
    case N_IF:
        for (node *cur = nd; cur;) {
            if (cur->k != N_IF) {
                exec_body(c, s, cur);
                break;
            }
            if (truthy(eval(c, s, cur->a))) {
                exec_body(c, s, cur->b);
                break;
            }
            cur = cur->d;
        }
        break;
    case N_FOR: {
        value *seq = eval(c, s, nd->a);
        if (seq->t == V_DICT) {
            value fn = {.t = V_FUNC, .fname = nd->var2 ? "items" : "keys", .self = seq};
            seq = call_method(c, &fn, NULL, 0);
        }
        if (seq->t == V_UNDEF || seq->t == V_NONE) seq = mk_coll(c, V_LIST);
        if (seq->t != V_LIST) ct_fail(c, "cannot loop over a %s", type_name(seq->t));
        int n = seq->c->n;
        if (n == 0) {
            if (nd->d) exec_body(c, s, nd->d);
            break;
        }
        /* the body's `set`s stay in the loop scope, as in Jinja */
        scope inner = {.up = s, .vars = mk_coll(c, V_DICT)};
        for (int i = 0; i < n; i++) {
            if (++c->iters > CT_MAX_ITERS) ct_fail(c, "chat template loop limit exceeded");
            inner.vars = mk_coll(c, V_DICT);
            value *item = seq->c->items[i];
            if (nd->var2) {
                if (item->t != V_LIST || item->c->n != 2) ct_fail(c, "cannot unpack a loop item");
                dict_set(c, inner.vars, nd->s, item->c->items[0]);
                dict_set(c, inner.vars, nd->var2, item->c->items[1]);
            } else {
                dict_set(c, inner.vars, nd->s, item);
            }
            value *loop = mk_coll(c, V_DICT);
            dict_set(c, loop, "index0", mk_int(c, i));
            dict_set(c, loop, "index", mk_int(c, i + 1));
            dict_set(c, loop, "revindex0", mk_int(c, n - 1 - i));
            dict_set(c, loop, "revindex", mk_int(c, n - i));
            dict_set(c, loop, "first", mk_bool(c, i == 0));
            dict_set(c, loop, "last", mk_bool(c, i == n - 1));
            dict_set(c, loop, "length", mk_int(c, n));
            dict_set(c, loop, "previtem", i > 0 ? seq->c->items[i - 1] : &UNDEF_V);
            dict_set(c, loop, "nextitem", i + 1 < n ? seq->c->items[i + 1] : &UNDEF_V);
            dict_set(c, inner.vars, "loop", loop);
            exec_body(c, &inner, nd->b);
        }
        break;
    }
    case N_SET: {
        value *v = eval(c, s, nd->a);
        if (nd->var2) {
            value *ns = lookup(s, nd->s);
            if (ns->t != V_DICT) ct_fail(c, "'%s' is not a namespace", nd->s);
            dict_set(c, ns, nd->var2, v);
        } else {
            dict_set(c, s->vars, nd->s, v);
        }
        break;
    }
    default: ct_fail(c, "bad statement node");
    }
}

static void exec_body(ctx *c, scope *s, node *body) {
    if (++c->depth > CT_MAX_DEPTH * 4) ct_fail(c, "chat template recursion limit exceeded");
    for (int i = 0; i < body->nkids; i++)
        exec_stmt(c, s, body->kids[i]);
    c->depth--;
}

int sglc_chat_template_render_spans(const char *tmpl, const sglc_chat_template_vars *vars,
                                    char **out, sglc_chat_template_span **spans, size_t *n_spans,
                                    char *err, size_t errlen) {
    *out = NULL;
    if (spans) *spans = NULL;
    if (n_spans) *n_spans = 0;
    ctx c;
    memset(&c, 0, sizeof c);
    c.err = err;
    c.errlen = errlen;
    volatile int rc = -1;
    if (setjmp(c.jb) == 0) {
        if (!tmpl) ct_fail(&c, "the model has no chat template");
        if (strlen(tmpl) > CT_MAX_TEMPLATE) ct_fail(&c, "the chat template is too large");
        tokvec tv = {0};
        lex(&c, tmpl, &tv);
        parser p = {.c = &c, .t = tv.v, .n = tv.n};
        node *body = parse_body(&p, NULL, NULL);
        scope global = {.up = NULL, .vars = mk_coll(&c, V_DICT)};
        /* as transformers renders: tools and documents are None unless given */
        dict_set(&c, global.vars, "tools", &NONE_V);
        dict_set(&c, global.vars, "documents", &NONE_V);
        dict_set(&c, global.vars, "strftime_now", mk_builtin(&c, "strftime_now"));
        if (vars->extra_vars && cJSON_IsObject(vars->extra_vars))
            for (const cJSON *e = vars->extra_vars->child; e; e = e->next)
                if (e->string) dict_set(&c, global.vars, e->string, from_json(&c, e, 0));
        dict_set(&c, global.vars, "messages", from_json(&c, vars->messages, 0));
        dict_set(&c, global.vars, "add_generation_prompt",
                 mk_bool(&c, vars->add_generation_prompt));
        const char *bos = vars->bos_token ? vars->bos_token : "";
        const char *eos = vars->eos_token ? vars->eos_token : "";
        dict_set(&c, global.vars, "bos_token", mk_str(&c, bos, strlen(bos)));
        dict_set(&c, global.vars, "eos_token", mk_str(&c, eos, strlen(eos)));
        out_append(&c, "", 0, NULL);
        exec_body(&c, &global, body);
        if (spans && n_spans) {
            size_t n = 0;
            for (size_t i = 0; i < c.out_len; i++)
                n += c.out_m[i] && (i == 0 || !c.out_m[i - 1]);
            sglc_chat_template_span *sp = malloc((n ? n : 1) * sizeof *sp);
            if (!sp) ct_fail(&c, "out of memory");
            n = 0;
            for (size_t i = 0; i < c.out_len; i++) {
                if (!c.out_m[i]) continue;
                if (i == 0 || !c.out_m[i - 1]) sp[n++] = (sglc_chat_template_span){i, 0};
                sp[n - 1].len++;
            }
            *spans = sp;
            *n_spans = n;
        }
        *out = c.out;
        c.out = NULL;
        rc = 0;
    }
    free(c.out);
    free(c.out_m);
    while (c.blocks) {
        arena_block *b = c.blocks;
        c.blocks = b->next;
        free(b);
    }
    return rc;
}

int sglc_chat_template_render(const char *tmpl, const sglc_chat_template_vars *vars, char **out,
                              char *err, size_t errlen) {
    return sglc_chat_template_render_spans(tmpl, vars, out, NULL, NULL, err, errlen);
}
