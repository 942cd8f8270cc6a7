/* Streamed answers of both APIs as server-sent events: a libmicrohttpd content reader that
 * waits on the first unfinished choice's mailbox in short slices, polls the others, emits what
 * each produced since the last event (native results or OpenAI chunks), then the usage chunk
 * and [DONE]; it aborts the requests when the peer has gone. */
#include "server/server_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int pend_add(conn_ctx *c, const char *s, size_t n) {
    if (c->pend_len + n > c->pend_cap) {
        size_t cap = c->pend_cap ? c->pend_cap : 4096;
        while (cap < c->pend_len + n)
            cap *= 2;
        char *p = realloc(c->pend, cap);
        if (!p) return -1;
        c->pend = p;
        c->pend_cap = cap;
    }
    memcpy(c->pend + c->pend_len, s, n);
    c->pend_len += n;
    return 0;
}

static int pend_event(conn_ctx *c, cJSON *j) {
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!s) return -1;
    int rc = pend_add(c, "data: ", 6) || pend_add(c, s, strlen(s)) || pend_add(c, "\n\n", 2);
    free(s);
    return rc ? -1 : 0;
}

/* Emits what choice i produced since the last event. */
static int stream_choice(conn_ctx *c, int i, const sglc_output *o) {
    size_t from = c->sent_text[i] < o->text_len ? c->sent_text[i] : o->text_len;
    int32_t tfrom = c->seen[i];
    int new_tokens = o->n_output > tfrom, new_text = o->text_len > from;
    /* --stream-interval N: a chunk every N tokens (and the last one) */
    int interval = c->srv->p.stream_interval > 1 ? c->srv->p.stream_interval : 1;
    if (!o->finished && (c->api == API_NATIVE || c->first_sent[i]) &&
        o->n_output - tfrom < interval)
        return 0;
    c->completion_tokens[i] = o->n_output;
    c->cached[i] = o->cached_tokens;
    if (c->api == API_NATIVE) {
        if (new_tokens || new_text || o->finished) {
            cJSON *j = sglc_srv_native_result(c, i, o);
            if (c->batch) cJSON_AddNumberToObject(j, "index", i); /* as SGLang streams batches */
            if (pend_event(c, j)) return -1;
        }
    } else if (new_tokens || new_text || o->finished || !c->first_sent[i]) {
        cJSON *j = sglc_srv_openai_envelope(c, 1);
        cJSON *choices = cJSON_AddArrayToObject(j, "choices");
        cJSON *ch = cJSON_CreateObject();
        cJSON_AddNumberToObject(ch, "index", i);
        int has_calls = 0;
        if (c->api == API_CHAT) {
            cJSON *d = cJSON_AddObjectToObject(ch, "delta");
            if (!c->first_sent[i]) cJSON_AddStringToObject(d, "role", "assistant");
            if (!sglc_srv_chat_delta(c, i, o, d, &has_calls))
                cJSON_AddStringToObject(d, "content", "");
        } else {
            char *t = sglc_srv_utf8_sanitize(o->text + from, o->text_len - from);
            if (!c->first_sent[i]) t = sglc_srv_prepend_echo(c, i, t); /* first chunk */
            cJSON_AddStringToObject(ch, "text", t ? t : "");
            free(t);
        }
        /* with logprobs asked, every chunk carries a logprobs object (empty on the chunk that
         * only says it finished), so clients that index it per chunk never meet null */
        if (c->return_logprob)
            cJSON_AddItemToObject(ch, "logprobs",
                                  sglc_srv_openai_logprobs(c, i, o, tfrom, o->n_output, from));
        else
            cJSON_AddNullToObject(ch, "logprobs");
        sglc_srv_add_finish(c, ch, o, has_calls);
        cJSON_AddItemToArray(choices, ch);
        if (c->continuous_usage) cJSON_AddItemToObject(j, "usage", sglc_srv_usage_json(c));
        if (pend_event(c, j)) return -1;
        c->first_sent[i] = 1;
    }
    c->sent_text[i] = o->text_len > c->sent_text[i] ? o->text_len : c->sent_text[i];
    c->seen[i] = o->n_output;
    if (o->finished) c->fin[i] = 1;
    return 0;
}

ssize_t sglc_srv_stream_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    conn_ctx *c = cls;
    (void)pos;
    for (;;) {
        if (c->pend_pos < c->pend_len) {
            size_t n = c->pend_len - c->pend_pos;
            if (n > max) n = max;
            memcpy(buf, c->pend + c->pend_pos, n);
            c->pend_pos += n;
            if (c->pend_pos == c->pend_len) c->pend_pos = c->pend_len = 0;
            return (ssize_t)n;
        }
        if (c->stream_over) return MHD_CONTENT_READER_END_OF_STREAM;
        int all = 1;
        for (int i = 0; i < c->n; i++)
            all &= c->fin[i];
        if (all) {
            if (c->api != API_NATIVE && c->include_usage) {
                cJSON *j = sglc_srv_openai_envelope(c, 1);
                cJSON_AddArrayToObject(j, "choices");
                cJSON_AddItemToObject(j, "usage", sglc_srv_usage_json(c));
                if (pend_event(c, j)) return MHD_CONTENT_READER_END_WITH_ERROR;
            }
            if (pend_add(c, "data: [DONE]\n\n", 14)) return MHD_CONTENT_READER_END_WITH_ERROR;
            c->stream_over = 1;
            continue;
        }
        /* wait on the first unfinished choice, poll the others */
        int waited = 0;
        for (int i = 0; i < c->n; i++) {
            if (c->fin[i]) continue;
            sglc_output o;
            int tmo = waited ? 0 : WAIT_SLICE_MS;
            waited = 1;
            int interval = c->srv->p.stream_interval > 1 ? c->srv->p.stream_interval : 1;
            sglc_request_wait(c->reqs[i], c->seen[i] + interval - 1, &o, tmo);
            if (stream_choice(c, i, &o)) return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        if (c->pend_len == 0 && sglc_srv_peer_gone(c->conn)) {
            for (int i = 0; i < c->n; i++)
                sglc_request_abort(c->reqs[i]);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
}
