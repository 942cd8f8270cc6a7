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

#endif
