/* The assistant side of chat completions: the answer text split into `reasoning_content` (the
 * --reasoning-parser's <think> block, unless the request says separate_reasoning: false),
 * `content`, and `tool_calls` (the --tool-call-parser's format, or the JSON array of calls that
 * tool_choice "required" / a named function constrains the answer to). Both the complete message
 * and a stream's deltas come from the same pure splits (reasoning.c, tool_parser.c) of the whole
 * text so far, so the deltas of a stream add up to the complete message. */
#include "server/server_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sglc_srv_chat_alloc(conn_ctx *c, int n) {
    size_t k = (size_t)(n > 0 ? n : 1);
    c->sent_reasoning = calloc(k, sizeof *c->sent_reasoning);
    c->sent_content = calloc(k, sizeof *c->sent_content);
    c->sent_calls = calloc(k, sizeof *c->sent_calls);
    return c->sent_reasoning && c->sent_content && c->sent_calls ? 0 : -1;
}

typedef struct {
    const char *text;
    size_t r_off, r_len; /* reasoning */
    size_t c_off, c_len; /* content */
    sglc_tool_parse_result tools;
} chat_split;

static void split(conn_ctx *c, const sglc_output *o, int final, chat_split *s) {
    memset(s, 0, sizeof *s);
    s->text = o->text;
    sglc_reasoning_split rs;
    sglc_reasoning_split_text(c->reasoning, o->text, o->text_len, final, &rs);
    s->r_off = rs.reasoning_off;
    s->r_len = rs.reasoning_len;
    const char *ans = o->text + rs.content_off;
    s->c_off = rs.content_off;
    s->c_len = rs.content_len;
    if (c->tool_forced) {
        /* the whole answer is the constrained array; nothing is content until it parses */
        if (final && sglc_tool_parse_forced(ans, rs.content_len, &s->tools) == 0)
            s->c_len = 0;
        else if (!final)
            s->c_len = 0;
        return;
    }
    if (c->tool_parser != SGLC_TOOL_PARSER_NONE &&
        sglc_tool_parse(c->tool_parser, ans, rs.content_len, final, &s->tools) == 0)
        s->c_len = s->tools.content_len;
}

static cJSON *sanitized(const char *t, size_t n) {
    char *s = sglc_srv_utf8_sanitize(t, n);
    cJSON *j = cJSON_CreateString(s ? s : "");
    free(s);
    return j;
}

/* OpenAI tool call k of choice i: {"id", "type": "function", "function": {"name", "arguments"}} */
static cJSON *tool_call_json(conn_ctx *c, int i, int k, const cJSON *call, int with_index) {
    cJSON *tc = cJSON_CreateObject();
    if (with_index) cJSON_AddNumberToObject(tc, "index", k);
    char id[96];
    snprintf(id, sizeof id, "call_%.40s_%d_%d", c->rid, i, k);
    cJSON_AddStringToObject(tc, "id", id);
    cJSON_AddStringToObject(tc, "type", "function");
    cJSON *fn = cJSON_AddObjectToObject(tc, "function");
    cJSON_AddStringToObject(fn, "name", cJSON_GetObjectItem(call, "name")->valuestring);
    cJSON_AddStringToObject(fn, "arguments", cJSON_GetObjectItem(call, "arguments")->valuestring);
    return tc;
}

cJSON *sglc_srv_chat_message(conn_ctx *c, int i, const sglc_output *o, int *has_calls) {
    chat_split s;
    split(c, o, 1, &s);
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "assistant");
    *has_calls = s.tools.n_calls > 0;
    if (*has_calls && s.c_len == 0)
        cJSON_AddNullToObject(m, "content");
    else
        cJSON_AddItemToObject(m, "content", sanitized(o->text + s.c_off, s.c_len));
    if (c->reasoning != SGLC_REASONING_NONE) {
        if (s.r_len)
            cJSON_AddItemToObject(m, "reasoning_content", sanitized(o->text + s.r_off, s.r_len));
        else
            cJSON_AddNullToObject(m, "reasoning_content");
    }
    if (*has_calls) {
        cJSON *arr = cJSON_AddArrayToObject(m, "tool_calls");
        int k = 0;
        const cJSON *call;
        cJSON_ArrayForEach(call, s.tools.calls)
            cJSON_AddItemToArray(arr, tool_call_json(c, i, k++, call, 0));
    }
    sglc_tool_parse_result_free(&s.tools);
    return m;
}

/* delta[key] = what a field gained past *sent (then *sent = len); 1 when it gained */
static int emit_more(cJSON *delta, const char *key, const char *t, size_t len, size_t *sent) {
    if (len <= *sent) return 0;
    cJSON_AddItemToObject(delta, key, sanitized(t + *sent, len - *sent));
    *sent = len;
    return 1;
}

int sglc_srv_chat_delta(conn_ctx *c, int i, const sglc_output *o, cJSON *delta, int *has_calls) {
    chat_split s;
    split(c, o, o->finished, &s);
    int any =
        emit_more(delta, "reasoning_content", o->text + s.r_off, s.r_len, &c->sent_reasoning[i]);
    any |= emit_more(delta, "content", o->text + s.c_off, s.c_len, &c->sent_content[i]);
    if (s.tools.n_calls > c->sent_calls[i]) {
        cJSON *arr = cJSON_AddArrayToObject(delta, "tool_calls");
        int k = 0;
        const cJSON *call;
        cJSON_ArrayForEach(call, s.tools.calls) {
            if (k >= c->sent_calls[i]) cJSON_AddItemToArray(arr, tool_call_json(c, i, k, call, 1));
            k++;
        }
        c->sent_calls[i] = s.tools.n_calls;
        any = 1;
    }
    *has_calls = c->sent_calls[i] > 0;
    sglc_tool_parse_result_free(&s.tools);
    return any;
}
