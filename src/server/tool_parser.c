/* Tool-call parsers: see tool_parser.h. */
#include "server/tool_parser.h"

#include <stdlib.h>
#include <string.h>

/* answers longer than this are not searched for calls (the engine caps outputs far below) */
#define MAX_ANSWER_BYTES (8u << 20)

static const char k_qwen_open[] = "<tool_call>", k_qwen_close[] = "</tool_call>";
static const char k_python_tag[] = "<|python_tag|>";

sglc_tool_parser_kind sglc_tool_parser_kind_from_name(const char *name) {
    if (!name) return SGLC_TOOL_PARSER_NONE;
    if (strcmp(name, "qwen25") == 0 || strcmp(name, "qwen") == 0) return SGLC_TOOL_PARSER_QWEN25;
    if (strcmp(name, "llama3") == 0) return SGLC_TOOL_PARSER_LLAMA3;
    return SGLC_TOOL_PARSER_NONE;
}

void sglc_tool_parse_result_free(sglc_tool_parse_result *r) {
    if (!r) return;
    cJSON_Delete(r->calls);
    memset(r, 0, sizeof *r);
}

static int is_ws(char c) {
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

static size_t rstrip(const char *t, size_t n) {
    while (n > 0 && is_ws(t[n - 1]))
        n--;
    return n;
}

static const char *find(const char *t, size_t from, size_t len, const char *tag) {
    size_t tl = strlen(tag);
    for (size_t i = from; i + tl <= len; i++)
        if (t[i] == tag[0] && memcmp(t + i, tag, tl) == 0) return t + i;
    return NULL;
}

/* longest suffix of t[0, len) that is a proper prefix of tag */
static size_t partial_suffix(const char *t, size_t len, const char *tag) {
    size_t tl = strlen(tag), max = len < tl - 1 ? len : tl - 1;
    for (size_t k = max; k > 0; k--)
        if (memcmp(t + len - k, tag, k) == 0) return k;
    return 0;
}

/* {"name": s, "arguments"|"parameters": object} -> {"name": s, "arguments": "<json>"}; NULL when
 * the object is not a call */
static cJSON *call_from_json(const cJSON *o) {
    if (!cJSON_IsObject(o)) return NULL;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name");
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(o, "arguments");
    if (!args) args = cJSON_GetObjectItemCaseSensitive(o, "parameters");
    if (!cJSON_IsString(name) || !name->valuestring[0] || !cJSON_IsObject(args)) return NULL;
    char *a = cJSON_PrintUnformatted(args);
    if (!a) return NULL;
    cJSON *c = cJSON_CreateObject();
    if (c && (!cJSON_AddStringToObject(c, "name", name->valuestring) ||
              !cJSON_AddStringToObject(c, "arguments", a))) {
        cJSON_Delete(c);
        c = NULL;
    }
    free(a);
    return c;
}

/* parses a JSON object at t[0, n) (whitespace around allowed) into a call */
static cJSON *parse_call(const char *t, size_t n) {
    char *buf = malloc(n + 1);
    if (!buf) return NULL;
    memcpy(buf, t, n);
    buf[n] = 0;
    cJSON *o = cJSON_ParseWithLength(buf, n);
    free(buf);
    cJSON *c = call_from_json(o);
    cJSON_Delete(o);
    return c;
}

static int add_call(sglc_tool_parse_result *out, cJSON *c) {
    if (!c) return -1;
    if (!out->calls && !(out->calls = cJSON_CreateArray())) {
        cJSON_Delete(c);
        return -2;
    }
    if (out->n_calls >= SGLC_TOOL_MAX_CALLS || !cJSON_AddItemToArray(out->calls, c)) {
        cJSON_Delete(c);
        return -1;
    }
    out->n_calls++;
    return 0;
}

/* a malformed call: everything is content */
static int all_content(size_t len, sglc_tool_parse_result *out) {
    cJSON_Delete(out->calls);
    memset(out, 0, sizeof *out);
    out->content_len = len;
    return 0;
}

static int parse_qwen(const char *t, size_t len, int final, sglc_tool_parse_result *out) {
    const char *first = find(t, 0, len, k_qwen_open);
    if (!first) {
        size_t keep = final ? len : len - partial_suffix(t, len, k_qwen_open);
        out->content_len = rstrip(t, keep);
        return 0;
    }
    out->in_calls = 1;
    out->content_len = rstrip(t, (size_t)(first - t));
    size_t pos = (size_t)(first - t);
    const size_t ol = sizeof k_qwen_open - 1, cl = sizeof k_qwen_close - 1;
    for (;;) {
        const char *open = find(t, pos, len, k_qwen_open);
        if (!open) {
            /* between calls only whitespace may stand */
            for (size_t i = pos; i < len; i++)
                if (!is_ws(t[i]) && (final || !partial_suffix(t + i, len - i, k_qwen_open)))
                    return final ? all_content(len, out) : 0;
            return 0;
        }
        for (const char *p = t + pos; p < open; p++)
            if (!is_ws(*p)) return all_content(len, out);
        size_t body = (size_t)(open - t) + ol;
        const char *close = find(t, body, len, k_qwen_close);
        if (!close) return final ? all_content(len, out) : 0;
        int rc = add_call(out, parse_call(t + body, (size_t)(close - t) - body));
        if (rc == -2) return -1;
        if (rc < 0) return all_content(len, out);
        pos = (size_t)(close - t) + cl;
    }
}

static int parse_llama3(const char *t, size_t len, int final, sglc_tool_parse_result *out) {
    size_t start = 0;
    const char *tag = find(t, 0, len, k_python_tag);
    size_t s0 = 0;
    while (s0 < len && is_ws(t[s0]))
        s0++;
    if (tag) {
        start = (size_t)(tag - t) + sizeof k_python_tag - 1;
        out->content_len = rstrip(t, (size_t)(tag - t));
    } else if (s0 < len && t[s0] == '{') {
        start = s0;
        out->content_len = 0;
    } else {
        out->content_len =
            final ? rstrip(t, len) : rstrip(t, len - partial_suffix(t, len, k_python_tag));
        return 0;
    }
    out->in_calls = 1;
    /* one or more JSON objects separated by ';' */
    size_t pos = start;
    for (;;) {
        while (pos < len && (is_ws(t[pos]) || t[pos] == ';'))
            pos++;
        if (pos >= len) return 0;
        if (t[pos] != '{') return final ? all_content(len, out) : 0;
        const char *end = NULL;
        char *buf = malloc(len - pos + 1);
        if (!buf) return -1;
        memcpy(buf, t + pos, len - pos);
        buf[len - pos] = 0;
        cJSON *o = cJSON_ParseWithLengthOpts(buf, len - pos, &end, 0);
        size_t used = o ? (size_t)(end - buf) : 0;
        free(buf);
        if (!o) return final ? all_content(len, out) : 0;
        int rc = add_call(out, call_from_json(o));
        cJSON_Delete(o);
        if (rc == -2) return -1;
        if (rc < 0) return all_content(len, out);
        pos += used;
    }
}

int sglc_tool_parse(sglc_tool_parser_kind kind, const char *text, size_t len, int final,
                    sglc_tool_parse_result *out) {
    memset(out, 0, sizeof *out);
    if (kind == SGLC_TOOL_PARSER_NONE || len > MAX_ANSWER_BYTES) {
        out->content_len = len;
        return 0;
    }
    return kind == SGLC_TOOL_PARSER_QWEN25 ? parse_qwen(text, len, final, out)
                                           : parse_llama3(text, len, final, out);
}

int sglc_tool_parse_forced(const char *text, size_t len, sglc_tool_parse_result *out) {
    memset(out, 0, sizeof *out);
    if (len > MAX_ANSWER_BYTES) return -1;
    cJSON *a = cJSON_ParseWithLength(text, len);
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) == 0) {
        cJSON_Delete(a);
        return -1;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, a) {
        if (add_call(out, call_from_json(it)) != 0) {
            cJSON_Delete(a);
            sglc_tool_parse_result_free(out);
            return -1;
        }
    }
    cJSON_Delete(a);
    out->in_calls = 1;
    return 0;
}

cJSON *sglc_tool_choice_schema(const cJSON *tools, const char *only) {
    cJSON *items = cJSON_CreateArray(), *schema = cJSON_CreateObject();
    if (!items || !schema) goto fail;
    const cJSON *tool;
    cJSON_ArrayForEach(tool, tools) {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(tool, "function");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(fn, "name");
        if (!cJSON_IsString(name)) continue;
        if (only && strcmp(only, name->valuestring) != 0) continue;
        const cJSON *params = cJSON_GetObjectItemCaseSensitive(fn, "parameters");
        cJSON *item = cJSON_CreateObject(), *props = cJSON_CreateObject(),
              *nm = cJSON_CreateObject(), *req = cJSON_CreateArray();
        if (!item || !props || !nm || !req) {
            cJSON_Delete(item);
            cJSON_Delete(props);
            cJSON_Delete(nm);
            cJSON_Delete(req);
            goto fail;
        }
        cJSON_AddItemToArray(items, item);
        cJSON_AddStringToObject(item, "type", "object");
        cJSON_AddItemToObject(item, "properties", props);
        cJSON_AddStringToObject(nm, "const", name->valuestring);
        cJSON_AddItemToObject(props, "name", nm);
        cJSON *p = cJSON_IsObject(params) ? cJSON_Duplicate(params, 1) : cJSON_CreateObject();
        if (!p) goto fail;
        if (!cJSON_IsObject(params)) cJSON_AddStringToObject(p, "type", "object");
        cJSON_AddItemToObject(props, "parameters", p);
        cJSON_AddItemToArray(req, cJSON_CreateString("name"));
        cJSON_AddItemToArray(req, cJSON_CreateString("parameters"));
        cJSON_AddItemToObject(item, "required", req);
    }
    if (cJSON_GetArraySize(items) == 0) goto fail;
    cJSON_AddStringToObject(schema, "type", "array");
    cJSON *it = cJSON_CreateObject();
    if (!it) goto fail;
    cJSON_AddItemToObject(it, "anyOf", items);
    items = NULL;
    cJSON_AddItemToObject(schema, "items", it);
    cJSON_AddNumberToObject(schema, "minItems", 1);
    if (only) cJSON_AddNumberToObject(schema, "maxItems", 1);
    return schema;
fail:
    cJSON_Delete(items);
    cJSON_Delete(schema);
    return NULL;
}
