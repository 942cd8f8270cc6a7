/* Private to the chat template renderer (chat_template*.c): the limits, the per-render context
 * (arena, error jump, output with its taint mask), the values, tokens and AST nodes the stages
 * pass along, and the functions one stage offers the others (named sglc_ct_*). The stages:
 *   chat_template.c        the public entry points, the arena and the error jump
 *   chat_template_value.c  values (constructors, dicts, JSON input, truthiness) and the output
 *   chat_template_lex.c    template source -> one token stream (text, {{ }}, {% %})
 *   chat_template_parse.c  tokens -> AST, by recursive descent
 *   chat_template_eval.c   AST -> output: expressions, filters, string methods, statements
 * Only tokenizer/chat_template.h is public. */
#ifndef SGLC_TOKENIZER_CHAT_TEMPLATE_IMPL_H
#define SGLC_TOKENIZER_CHAT_TEMPLATE_IMPL_H

#include <setjmp.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "tokenizer/chat_template.h"

#define CT_MAX_DEPTH 64
#define CT_MAX_ITERS 100000
#define CT_MAX_OUTPUT (4u << 20)
#define CT_MAX_TEMPLATE (1u << 20)

/* ---------- arena and errors (chat_template.c) ---------- */

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

/* Writes the message to err and longjmps back to the entry point, which frees the arena. */
void sglc_ct_fail(ctx *c, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));
void *sglc_ct_alloc(ctx *c, size_t n); /* from the render's arena; never NULL */

/* ---------- values and output (chat_template_value.c) ---------- */

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

extern value sglc_ct_undef_v;
extern value sglc_ct_none_v;

value *sglc_ct_mk(ctx *c, vtype t);
value *sglc_ct_mk_str(ctx *c, const char *s, size_t n);
value *sglc_ct_mk_str_m(ctx *c, const char *s, size_t n, const unsigned char *m);
const unsigned char *sglc_ct_mask_all(ctx *c, size_t n);
int sglc_ct_any_taint(const value *v);
value *sglc_ct_mk_builtin(ctx *c, const char *name);
value *sglc_ct_mk_int(ctx *c, long long i);
value *sglc_ct_mk_bool(ctx *c, int b);
value *sglc_ct_mk_coll(ctx *c, vtype t);
void sglc_ct_coll_push(ctx *c, value *v, const char *key, value *item);
value *sglc_ct_dict_get(value *d, const char *key);
void sglc_ct_dict_set(ctx *c, value *d, const char *key, value *item);
value *sglc_ct_from_json(ctx *c, const cJSON *j, int depth);
int sglc_ct_truthy(const value *v);
const char *sglc_ct_type_name(vtype t);
void sglc_ct_out_append(ctx *c, const char *s, size_t n, const unsigned char *m);
value *sglc_ct_to_str(ctx *c, value *v);

/* ---------- lexer (chat_template_lex.c) ---------- */

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

int sglc_ct_is_ws(char ch);
void sglc_ct_lex(ctx *c, const char *src, tokvec *tv);

/* ---------- parser (chat_template_parse.c) ---------- */

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

/* Statements up to one of the stop keywords (NULL: to the end), which *stopped names. */
node *sglc_ct_parse_body(parser *p, const char *const *stops, const char **stopped);

/* ---------- evaluation (chat_template_eval.c) ---------- */

typedef struct scope {
    struct scope *up;
    value *vars; /* dict */
} scope;

void sglc_ct_exec_body(ctx *c, scope *s, node *body);

#endif
