/* A sandboxed renderer for the Jinja subset that chat templates use (HF semantics:
 * trim_blocks and lstrip_blocks on). A template is untrusted input (ROBUSTNESS.md §28-30):
 * no object model is exposed (only dict keys, list items and a few string methods), and
 * loop iterations, nesting depth and output size are capped. */
#ifndef SGLC_TOKENIZER_CHAT_TEMPLATE_H
#define SGLC_TOKENIZER_CHAT_TEMPLATE_H

#include <stddef.h>

#include <cjson/cJSON.h>

typedef struct {
    const cJSON *messages; /* array of objects (borrowed) */
    int add_generation_prompt;
    const char *bos_token; /* "" when none */
    const char *eos_token;
    const cJSON *extra_vars; /* object of extra variables (chat_template_kwargs), may be NULL */
} sglc_chat_template_vars;

/* Renders tmpl; returns 0 and a malloc'd NUL-terminated string in *out (free it), or < 0 with
 * one line in err (syntax error, raise_exception message, limits). */
int sglc_chat_template_render(const char *tmpl, const sglc_chat_template_vars *vars, char **out,
                              char *err, size_t errlen);

/* A byte range of the rendered prompt. */
typedef struct {
    size_t off, len;
} sglc_chat_template_span;

/* As sglc_chat_template_render, and also returns in *spans (malloc'd, free it; sorted,
 * non-overlapping, *n_spans of them, NULL/0 when none) the byte ranges of *out that came from
 * request data (message fields and extra_vars), followed through filters, methods, slicing and
 * concatenation. They must be tokenized as plain text (ROBUSTNESS.md §19); the rest is template
 * text (and bos/eos), whose special-token markup is meant. Besides messages, add_generation_prompt,
 * bos_token, eos_token and extra_vars the template sees tools = documents = none (as in
 * transformers, unless extra_vars sets them) and strftime_now(format) (local time). */
int sglc_chat_template_render_spans(const char *tmpl, const sglc_chat_template_vars *vars,
                                    char **out, sglc_chat_template_span **spans, size_t *n_spans,
                                    char *err, size_t errlen);

#endif
