/* Lexer of the chat template renderer: the template source becomes one token stream of text,
 * {{ }} and {% %} tags with their names, strings, integers and operators, applying whitespace
 * control ('-') and HF's trim_blocks / lstrip_blocks. Calls only the arena of chat_template.c. */
#include "tokenizer/chat_template_impl.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void tok_push(ctx *c, tokvec *tv, token t) {
    if (tv->n == tv->cap) {
        int ncap = tv->cap ? tv->cap * 2 : 256;
        token *nv = sglc_ct_alloc(c, (size_t)ncap * sizeof *nv);
        if (tv->n) memcpy(nv, tv->v, (size_t)tv->n * sizeof *nv);
        tv->v = nv;
        tv->cap = ncap;
    }
    tv->v[tv->n++] = t;
}

int sglc_ct_is_ws(char ch) {
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
        while (sglc_ct_is_ws(*p))
            p++;
        if (!*p) sglc_ct_fail(c, "unterminated tag");
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
                if (v > (LLONG_MAX - 9) / 10) sglc_ct_fail(c, "integer literal too large");
                v = v * 10 + (*p - '0');
                p++;
            }
            t.k = T_INT;
            t.i = v;
        } else if (*p == '\'' || *p == '"') {
            char q = *p++;
            size_t cap = 16, n = 0;
            char *buf = sglc_ct_alloc(c, cap);
            while (*p && *p != q) {
                char ch = *p++;
                if (ch == '\\' && *p) {
                    char e = *p++;
                    ch = e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e;
                }
                if (n + 2 > cap) {
                    char *nb = sglc_ct_alloc(c, cap * 2);
                    memcpy(nb, buf, n);
                    buf = nb;
                    cap *= 2;
                }
                buf[n++] = ch;
            }
            if (*p != q) sglc_ct_fail(c, "unterminated string literal");
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
                sglc_ct_fail(c, "unexpected character '%c' in a tag", *p);
            p += t.n;
        }
        tok_push(c, tv, t);
    }
}

void sglc_ct_lex(ctx *c, const char *src, tokvec *tv) {
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
            while (ts < te && sglc_ct_is_ws(*ts))
                ts++;
        int strip_before = *tag && tag[2] == '-';
        if (strip_before) {
            while (te > ts && sglc_ct_is_ws(te[-1]))
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
            if (!e) sglc_ct_fail(c, "unterminated comment");
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
