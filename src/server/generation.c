/* Submitting a validated request to the engine and answering it: one engine request per choice
 * (prompts x n, siblings sharing their leader's prompt KV), the queue cap, request ids, and the
 * wait for a non-streaming answer in short slices that notice a client gone; a streaming answer
 * is handed to sse.c. Result JSON comes from native.c and openai.c. */
#include "server/server_impl.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

char *sglc_srv_prepend_echo(const conn_ctx *c, int i, char *t) {
    if (!c->echo || !c->echo_texts || !t) return t;
    int p = c->n_per_prompt > 0 ? i / c->n_per_prompt : i;
    const char *echo = p < c->n_echo && c->echo_texts[p] ? c->echo_texts[p] : "";
    size_t el = strlen(echo), tl = strlen(t);
    char *full = malloc(el + tl + 1);
    if (full) {
        memcpy(full, echo, el);
        memcpy(full + el, t, tl + 1);
    }
    free(t);
    return full;
}

const char *sglc_srv_finish_str(sglc_finish_reason f) {
    switch (f) {
    case SGLC_FINISH_LENGTH: return "length";
    case SGLC_FINISH_STOP: return "stop";
    case SGLC_FINISH_ABORT: return "abort";
    default: return NULL;
    }
}

/* Per-choice state for n choices; 0, or -1 when out of memory. */
static int alloc_choices(conn_ctx *c, int n) {
    size_t k = (size_t)(n > 0 ? n : 1);
    c->reqs = calloc(k, sizeof *c->reqs);
    c->seen = calloc(k, sizeof *c->seen);
    c->sent_text = calloc(k, sizeof *c->sent_text);
    c->fin = calloc(k, sizeof *c->fin);
    c->first_sent = calloc(k, sizeof *c->first_sent);
    c->completion_tokens = calloc(k, sizeof *c->completion_tokens);
    c->cached = calloc(k, sizeof *c->cached);
    if (!c->reqs || !c->seen || !c->sent_text || !c->fin || !c->first_sent ||
        !c->completion_tokens || !c->cached)
        return -1; /* ctx_free frees what was made */
    c->n = n;
    return 0;
}

enum MHD_Result sglc_srv_finish_generation(conn_ctx *c) {
    server *s = c->srv;
    if (c->stream) {
        struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384,
                                                                   sglc_srv_stream_reader, c, NULL);
        if (!r) return MHD_NO;
        MHD_add_response_header(r, "Content-Type", "text/event-stream");
        MHD_add_response_header(r, "Cache-Control", "no-cache");
        enum MHD_Result ret = MHD_queue_response(c->conn, MHD_HTTP_OK, r);
        MHD_destroy_response(r);
        return ret;
    }
    cJSON *choices = cJSON_CreateArray(), *native = NULL;
    for (int i = 0; i < c->n; i++) {
        sglc_output o;
        for (;;) {
            sglc_request_wait(c->reqs[i], c->seen[i], &o, WAIT_SLICE_MS);
            c->seen[i] = o.n_output;
            if (o.finished) break;
            if (sglc_srv_peer_gone(c->conn)) {
                for (int k = 0; k < c->n; k++)
                    sglc_request_abort(c->reqs[k]);
                cJSON_Delete(choices);
                return MHD_NO;
            }
        }
        c->completion_tokens[i] = o.n_output;
        c->cached[i] = o.cached_tokens;
        if (c->api == API_NATIVE) {
            if (!c->batch) {
                native = sglc_srv_native_result(c, i, &o);
                break;
            }
            if (!native) native = cJSON_CreateArray();
            cJSON_AddItemToArray(native, sglc_srv_native_result(c, i, &o));
            continue;
        }
        cJSON *ch = cJSON_CreateObject();
        cJSON_AddNumberToObject(ch, "index", i);
        int has_calls = 0;
        if (c->api == API_CHAT) {
            cJSON_AddItemToObject(ch, "message", sglc_srv_chat_message(c, i, &o, &has_calls));
        } else {
            char *t = sglc_srv_prepend_echo(c, i, sglc_srv_utf8_sanitize(o.text, o.text_len));
            cJSON_AddStringToObject(ch, "text", t ? t : "");
            free(t);
        }
        if (c->return_logprob)
            cJSON_AddItemToObject(ch, "logprobs",
                                  sglc_srv_openai_logprobs(c, i, &o, 0, o.n_output, 0));
        else
            cJSON_AddNullToObject(ch, "logprobs");
        sglc_srv_add_finish(c, ch, &o, has_calls);
        cJSON_AddItemToArray(choices, ch);
    }
    (void)s;
    if (native) {
        cJSON_Delete(choices);
        return sglc_srv_send_json(c->conn, MHD_HTTP_OK, native);
    }
    cJSON *j = sglc_srv_openai_envelope(c, 0);
    cJSON_AddItemToObject(j, "choices", choices);
    cJSON_AddItemToObject(j, "usage", sglc_srv_usage_json(c));
    return sglc_srv_send_json(c->conn, MHD_HTTP_OK, j);
}

/* Submits n_per_prompt choices for each prompt (siblings share their leader's prompt KV); rps
 * holds one parameter set per prompt, or one shared (n_rps == 1). 0 or an HTTP status. */
unsigned sglc_srv_submit_all(conn_ctx *c, int n_prompts, int32_t *const *ids, const int32_t *n_ids,
                             const sglc_request_params *rps, int n_rps, char *err, size_t el) {
    server *s = c->srv;
    sglc_engine *e = atomic_load(&s->engine);
    if (c->n_per_prompt < 1) c->n_per_prompt = 1;
    if ((int64_t)n_prompts * c->n_per_prompt > MAX_CHOICES) {
        snprintf(err, el, "%d prompts x n = %d is %d choices; the limit is %d", n_prompts,
                 c->n_per_prompt, n_prompts * c->n_per_prompt, MAX_CHOICES);
        return 400;
    }
    if (alloc_choices(c, n_prompts * c->n_per_prompt)) {
        snprintf(err, el, "out of memory");
        return 500;
    }
    if (s->p.max_queued_requests > 0) {
        sglc_engine_stats st;
        sglc_engine_get_stats(e, &st);
        /* a batch is admitted whole or not at all */
        if (st.num_queued >= s->p.max_queued_requests ||
            (c->batch && st.num_queued + c->n > s->p.max_queued_requests)) {
            snprintf(err, el, "too many queued requests (%d); retry later", st.num_queued);
            return 503;
        }
    }
    c->prompt_tokens = 0;
    for (int p = 0; p < n_prompts; p++) {
        c->prompt_tokens += n_ids[p];
        for (int j = 0; j < c->n_per_prompt; j++) {
            int i = p * c->n_per_prompt + j;
            char serr[512];
            if (sglc_engine_submit(e, ids[p], n_ids[p], &rps[n_rps > 1 ? p : 0],
                                   j ? c->reqs[i - j] : NULL, &c->reqs[i], serr,
                                   sizeof serr) != 0) {
                if (c->batch)
                    snprintf(err, el, "prompt %d: %s", p, serr);
                else
                    snprintf(err, el, "%s", serr);
                return strstr(serr, "shutting down") ? 503 : 400;
            }
        }
    }
    sglc_srv_register_active(s, c);
    return 0;
}

void sglc_srv_make_ids(conn_ctx *c, const char *prefix, const cJSON *body) {
    long long k = atomic_fetch_add(&c->srv->next_rid, 1);
    const cJSON *rid = body ? cJSON_GetObjectItemCaseSensitive(body, "rid") : NULL;
    if (cJSON_IsString(rid) && rid->valuestring[0])
        snprintf(c->rid, sizeof c->rid, "%s", rid->valuestring);
    else
        snprintf(c->rid, sizeof c->rid, "%016llx%08llx",
                 (unsigned long long)time(NULL) * 2654435761ull, k);
    snprintf(c->id, sizeof c->id, "%s%.40s", prefix, c->rid);
    c->created = (long long)time(NULL);
    c->t0 = sglc_srv_now_s();
}
