/* Parser of the chat template renderer: recursive descent from the token stream to the AST
 * (statements: text, output, if/elif/else, for, set; expressions by precedence, filters, tests,
 * calls, slices), with a nesting-depth cap. Literals become values (chat_template_value.c). */
#include "tokenizer/chat_template_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    if (!is_op(peek(p), op)) sglc_ct_fail(p->c, "expected '%s' in the chat template", op);
    p->pos++;
}
static const char *take_name(parser *p) {
    token *t = peek(p);
    if (t->k != T_NAME) sglc_ct_fail(p->c, "expected a name in the chat template");
    p->pos++;
    char *s = sglc_ct_alloc(p->c, t->n + 1);
    memcpy(s, t->s, t->n);
    s[t->n] = 0;
    return s;
}
static node *mk_node(parser *p, nkind k) {
    node *nd = sglc_ct_alloc(p->c, sizeof *nd);
    memset(nd, 0, sizeof *nd);
    nd->k = k;
    return nd;
}
static void push_kid(parser *p, node *parent, node *kid, int *cap) {
    if (parent->nkids == *cap) {
        int ncap = *cap ? *cap * 2 : 8;
        node **nk = sglc_ct_alloc(p->c, (size_t)ncap * sizeof *nk);
        if (parent->nkids) memcpy(nk, parent->kids, (size_t)parent->nkids * sizeof *nk);
        parent->kids = nk;
        *cap = ncap;
    }
    parent->kids[parent->nkids++] = kid;
}

static node *parse_expr(parser *p);

static void enter(parser *p) {
    if (++p->depth > CT_MAX_DEPTH) sglc_ct_fail(p->c, "chat template nested too deeply");
}

static node *parse_primary(parser *p) {
    token *t = peek(p);
    node *nd;
    if (t->k == T_STRING) {
        p->pos++;
        nd = mk_node(p, N_LIT);
        nd->lit = sglc_ct_mk_str(p->c, t->s, t->n);
        /* adjacent string literals concatenate */
        while (peek(p)->k == T_STRING) {
            token *u = peek(p);
            value *s = sglc_ct_mk_str(p->c, "", 0);
            char *buf = sglc_ct_alloc(p->c, nd->lit->n + u->n + 1);
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
        nd->lit = sglc_ct_mk_int(p->c, t->i);
        return nd;
    }
    if (t->k == T_NAME) {
        if (is_kw(t, "true") || is_kw(t, "True") || is_kw(t, "false") || is_kw(t, "False")) {
            p->pos++;
            nd = mk_node(p, N_LIT);
            nd->lit = sglc_ct_mk_bool(p->c, t->s[0] == 't' || t->s[0] == 'T');
            return nd;
        }
        if (is_kw(t, "none") || is_kw(t, "None")) {
            p->pos++;
            nd = mk_node(p, N_LIT);
            nd->lit = &sglc_ct_none_v;
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
    sglc_ct_fail(p->c, "unexpected token in a chat template expression");
}

static void parse_args(parser *p, node *call) {
    int cap = 0;
    expect_op(p, "(");
    while (!is_op(peek(p), ")")) {
        /* keyword arguments (namespace(x=1)) become name/value pairs */
        if (peek(p)->k == T_NAME && is_op(&p->t[p->pos + 1], "=")) {
            node *kw = mk_node(p, N_LIT);
            const char *name = take_name(p);
            kw->lit = sglc_ct_mk_str(p->c, name, strlen(name));
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
    if (peek(p)->k != T_BLOCK_END) sglc_ct_fail(p->c, "expected '%%}' in the chat template");
    p->pos++;
}

/* Parses statements until a block tag whose keyword is one of stops (returned, not consumed
 * beyond the keyword) or EOF (stops == NULL). */
node *sglc_ct_parse_body(parser *p, const char *const *stops, const char **stopped) {
    enter(p);
    node *body = mk_node(p, N_LIST);
    int cap = 0;
    for (;;) {
        token *t = peek(p);
        if (t->k == T_EOF) {
            if (stops)
                sglc_ct_fail(p->c, "unexpected end of chat template (missing '%s')", stops[0]);
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
            if (peek(p)->k != T_VAR_END) sglc_ct_fail(p->c, "expected '}}' in the chat template");
            p->pos++;
            push_kid(p, body, nd, &cap);
            continue;
        }
        if (t->k != T_BLOCK_BEGIN) sglc_ct_fail(p->c, "unexpected token in the chat template");
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
                cur->b = sglc_ct_parse_body(p, if_stops, &st);
                if (strcmp(st, "elif") == 0) {
                    node *e = mk_node(p, N_IF);
                    e->a = parse_expr(p);
                    expect_block_end(p);
                    cur->d = e;
                    cur = e;
                } else if (strcmp(st, "else") == 0) {
                    expect_block_end(p);
                    static const char *else_stops[] = {"endif", NULL};
                    cur->d = sglc_ct_parse_body(p, else_stops, &st);
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
            if (!is_kw(peek(p), "in")) sglc_ct_fail(p->c, "expected 'in' in a for loop");
            p->pos++;
            nd->a = parse_or(p);
            if (is_kw(peek(p), "if")) sglc_ct_fail(p->c, "for ... if filters are not supported");
            expect_block_end(p);
            static const char *for_stops[] = {"endfor", "else", NULL};
            const char *st = NULL;
            nd->b = sglc_ct_parse_body(p, for_stops, &st);
            expect_block_end(p);
            if (strcmp(st, "else") == 0) {
                static const char *end_stops[] = {"endfor", NULL};
                nd->d = sglc_ct_parse_body(p, end_stops, &st);
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
            sglc_ct_fail(p->c, "unsupported statement '%.*s' in the chat template", (int)kw->n,
                         kw->s ? kw->s : "");
        }
    }
    p->depth--;
    return body;
}
