/* Jinja-subset renderer for chat templates. The template is lexed into one token stream (text,
 * {{ }}, {% %}), parsed by recursive descent into a small AST and evaluated over values that
 * live in a per-render arena, so every error path is a longjmp back to the entry point that
 * frees the arena. Supported: for (with loop.*), if/elif/else, set (names and namespace
 * attributes), {{ }} output, whitespace control, literals, and/or/not, comparisons, in, is
 * defined/none/string/true/false, + ~ concatenation, indexing and dict keys, slices, a few
 * filters and string methods, raise_exception, namespace() and strftime_now(). Nothing else of
 * Python is reachable. Every string carries a taint mask (request data vs template text) that
 * follows it through filters, methods, slicing and concatenation into the output, so the caller
 * can tokenize request data as plain text (sglc_chat_template_render_spans).
 * This file holds the entry points, the arena and the error jump; the stages are in
 * chat_template_lex.c, _parse.c, _eval.c and _value.c (see chat_template_impl.h). */
#include "tokenizer/chat_template_impl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sglc_ct_fail(ctx *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, c->errlen, fmt, ap);
    va_end(ap);
    longjmp(c->jb, 1);
}

void *sglc_ct_alloc(ctx *c, size_t n) {
    n = (n + 15) & ~(size_t)15;
    arena_block *b = c->blocks;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        b = malloc(sizeof *b + cap);
        if (!b) sglc_ct_fail(c, "out of memory");
        b->cap = cap;
        b->used = 0;
        b->next = c->blocks;
        c->blocks = b;
    }
    void *p = (char *)b->data + b->used;
    b->used += n;
    return p;
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
        if (!tmpl) sglc_ct_fail(&c, "the model has no chat template");
        if (strlen(tmpl) > CT_MAX_TEMPLATE) sglc_ct_fail(&c, "the chat template is too large");
        tokvec tv = {0};
        sglc_ct_lex(&c, tmpl, &tv);
        parser p = {.c = &c, .t = tv.v, .n = tv.n};
        node *body = sglc_ct_parse_body(&p, NULL, NULL);
        scope global = {.up = NULL, .vars = sglc_ct_mk_coll(&c, V_DICT)};
        /* as transformers renders: tools and documents are None unless given */
        sglc_ct_dict_set(&c, global.vars, "tools", &sglc_ct_none_v);
        sglc_ct_dict_set(&c, global.vars, "documents", &sglc_ct_none_v);
        sglc_ct_dict_set(&c, global.vars, "strftime_now", sglc_ct_mk_builtin(&c, "strftime_now"));
        if (vars->extra_vars && cJSON_IsObject(vars->extra_vars))
            for (const cJSON *e = vars->extra_vars->child; e; e = e->next)
                if (e->string)
                    sglc_ct_dict_set(&c, global.vars, e->string, sglc_ct_from_json(&c, e, 0));
        sglc_ct_dict_set(&c, global.vars, "messages", sglc_ct_from_json(&c, vars->messages, 0));
        sglc_ct_dict_set(&c, global.vars, "add_generation_prompt",
                         sglc_ct_mk_bool(&c, vars->add_generation_prompt));
        const char *bos = vars->bos_token ? vars->bos_token : "";
        const char *eos = vars->eos_token ? vars->eos_token : "";
        sglc_ct_dict_set(&c, global.vars, "bos_token", sglc_ct_mk_str(&c, bos, strlen(bos)));
        sglc_ct_dict_set(&c, global.vars, "eos_token", sglc_ct_mk_str(&c, eos, strlen(eos)));
        sglc_ct_out_append(&c, "", 0, NULL);
        sglc_ct_exec_body(&c, &global, body);
        if (spans && n_spans) {
            size_t n = 0;
            for (size_t i = 0; i < c.out_len; i++)
                n += c.out_m[i] && (i == 0 || !c.out_m[i - 1]);
            sglc_chat_template_span *sp = malloc((n ? n : 1) * sizeof *sp);
            if (!sp) sglc_ct_fail(&c, "out of memory");
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
