/* Structured output requests, as SGLang takes them: the native sampling parameters
 * `json_schema` (a JSON Schema as a string, or as an object), `regex` and `ebnf`, the same names
 * at the top level of the OpenAI endpoints (SGLang's extra parameters), and OpenAI's
 * `response_format` ({"type": "text" | "json_object" | "json_schema", "json_schema": {"name",
 * "schema", "strict"}}). At most one constraint per request. The grammar is compiled by the
 * engine (sglc_engine_grammar_compile, which keeps recent grammars by source); a bad schema,
 * regex or grammar is a 400 naming it. */
#include "server/server_impl.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_GRAMMAR_SOURCE (1u << 20) /* the grammar engine refuses more anyway */

static int compile(conn_ctx *c, sglc_grammar_kind kind, const char *src, size_t len,
                   const char *field, sglc_grammar **out, char *err, size_t el) {
    if (c->srv->p.disable_grammar) {
        snprintf(err, el,
                 "'%s': structured output is disabled on this server (--grammar-backend "
                 "none)",
                 field);
        return -1;
    }
    if (len > MAX_GRAMMAR_SOURCE) {
        snprintf(err, el, "'%s' is larger than %u bytes", field, MAX_GRAMMAR_SOURCE);
        return -1;
    }
    char gerr[600];
    if (sglc_engine_grammar_compile(atomic_load(&c->srv->engine), kind, src, len, out, gerr,
                                    sizeof gerr) != 0) {
        snprintf(err, el, "'%s': %s", field, gerr);
        return -1;
    }
    return 0;
}

/* a schema given as an object is compiled from its compact text */
static int compile_schema(conn_ctx *c, const cJSON *v, const char *field, sglc_grammar **out,
                          char *err, size_t el) {
    if (cJSON_IsString(v))
        return compile(c, SGLC_GRAMMAR_JSON_SCHEMA, v->valuestring, strlen(v->valuestring), field,
                       out, err, el);
    if (!cJSON_IsObject(v) && !cJSON_IsBool(v)) {
        snprintf(err, el, "'%s' must be a JSON Schema (an object, or its text)", field);
        return -1;
    }
    char *s = cJSON_PrintUnformatted(v);
    if (!s) {
        snprintf(err, el, "out of memory");
        return -1;
    }
    int rc = compile(c, SGLC_GRAMMAR_JSON_SCHEMA, s, strlen(s), field, out, err, el);
    free(s);
    return rc;
}

int sglc_srv_parse_constraint(conn_ctx *c, const cJSON *o, sglc_grammar **out, char *err,
                              size_t el) {
    static const char *const keys[] = {"json_schema", "regex", "ebnf"};
    const cJSON *found = NULL;
    int which = -1;
    for (int i = 0; i < 3; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, keys[i]);
        if (!v || cJSON_IsNull(v)) continue;
        if (found) {
            snprintf(err, el,
                     "give at most one of 'json_schema', 'regex' and 'ebnf' (got '%s' "
                     "and '%s')",
                     keys[which], keys[i]);
            return -1;
        }
        found = v;
        which = i;
    }
    if (!found) return 0;
    if (*out) {
        snprintf(err, el, "'%s' conflicts with the request's other constraint", keys[which]);
        return -1;
    }
    if (which == 0) return compile_schema(c, found, "json_schema", out, err, el) ? -1 : 1;
    if (!cJSON_IsString(found)) {
        snprintf(err, el, "'%s' must be a string", keys[which]);
        return -1;
    }
    if (!found->valuestring[0]) {
        snprintf(err, el, "'%s' is empty", keys[which]);
        return -1;
    }
    return compile(c, which == 1 ? SGLC_GRAMMAR_REGEX : SGLC_GRAMMAR_EBNF, found->valuestring,
                   strlen(found->valuestring), keys[which], out, err, el)
               ? -1
               : 1;
}

int sglc_srv_parse_response_format(conn_ctx *c, const cJSON *body, sglc_grammar **out, char *err,
                                   size_t el) {
    const cJSON *rf = cJSON_GetObjectItemCaseSensitive(body, "response_format");
    if (!rf || cJSON_IsNull(rf)) return 0;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(rf, "type");
    if (!cJSON_IsObject(rf) || !cJSON_IsString(type)) {
        snprintf(err, el, "'response_format' must be an object with a string 'type'");
        return -1;
    }
    const char *t = type->valuestring;
    if (strcmp(t, "text") == 0) return 0;
    if (*out) {
        snprintf(err, el, "'response_format' conflicts with 'json_schema', 'regex' or 'ebnf'");
        return -1;
    }
    if (strcmp(t, "json_object") == 0)
        return compile(c, SGLC_GRAMMAR_JSON_OBJECT, "", 0, "response_format", out, err, el) ? -1
                                                                                            : 1;
    if (strcmp(t, "json_schema") != 0) {
        snprintf(err, el,
                 "'response_format'.type '%.40s' is not supported (text, json_object, "
                 "json_schema)",
                 t);
        return -1;
    }
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(rf, "json_schema");
    if (!cJSON_IsObject(js)) {
        snprintf(err, el, "'response_format'.json_schema must be an object with a 'schema'");
        return -1;
    }
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(js, "name");
    if (name && !cJSON_IsNull(name) && !cJSON_IsString(name)) {
        snprintf(err, el, "'response_format'.json_schema.name must be a string");
        return -1;
    }
    const cJSON *strict = cJSON_GetObjectItemCaseSensitive(js, "strict");
    if (strict && !cJSON_IsNull(strict) && !cJSON_IsBool(strict)) {
        snprintf(err, el, "'response_format'.json_schema.strict must be a boolean");
        return -1;
    }
    /* strict or not, the output is held to the schema: sglc always decodes under it */
    const cJSON *schema = cJSON_GetObjectItemCaseSensitive(js, "schema");
    if (!schema || cJSON_IsNull(schema)) {
        /* OpenAI allows a schema-less json_schema format: any JSON object */
        return compile(c, SGLC_GRAMMAR_JSON_OBJECT, "", 0, "response_format", out, err, el) ? -1
                                                                                            : 1;
    }
    return compile_schema(c, schema, "response_format.json_schema.schema", out, err, el) ? -1 : 1;
}
