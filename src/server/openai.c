/* The OpenAI-compatible endpoints: /v1/completions (prompt strings, token ids or batches),
 * /v1/chat/completions (messages through the chat template) and /v1/models, and the OpenAI
 * result JSON (envelope, choices' finish reason, logprobs, usage) that generation.c and sse.c
 * fill in. Validation is validate.c's and prompt.c's. */
#include "server/server_impl.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static cJSON *token_str_json(sglc_engine *e, int32_t id) {
    size_t L = 0;
    const char *t = sglc_engine_token_text(e, id, &L);
    char *s = sglc_srv_utf8_sanitize(t ? t : "", t ? L : 0);
    cJSON *j = cJSON_CreateString(s ? s : "");
    free(s);
    return j;
}

static cJSON *token_bytes_json(sglc_engine *e, int32_t id) {
    size_t L = 0;
    const char *t = sglc_engine_token_text(e, id, &L);
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; t && i < L; i++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber((unsigned char)t[i]));
    return a;
}

/* OpenAI logprobs for output tokens [from, to) */
cJSON *sglc_srv_openai_logprobs(conn_ctx *c, const sglc_output *o, int32_t from, int32_t to,
                                size_t text_offset0) {
    sglc_engine *e = atomic_load(&c->srv->engine);
    int K = c->top_logprobs;
    if (c->api == API_CHAT) {
        cJSON *lp = cJSON_CreateObject(), *content = cJSON_AddArrayToObject(lp, "content");
        for (int32_t t = from; t < to; t++) {
            cJSON *item = cJSON_CreateObject();
            cJSON_AddItemToObject(item, "token", token_str_json(e, o->output_ids[t]));
            cJSON_AddNumberToObject(item, "logprob", o->logprobs[t]);
            cJSON_AddItemToObject(item, "bytes", token_bytes_json(e, o->output_ids[t]));
            cJSON *top = cJSON_AddArrayToObject(item, "top_logprobs");
            for (int k = 0; k < K; k++) {
                const sglc_token_logprob *tl = &o->top_logprobs[(size_t)t * (size_t)K + (size_t)k];
                cJSON *ti = cJSON_CreateObject();
                cJSON_AddItemToObject(ti, "token", token_str_json(e, tl->token));
                cJSON_AddNumberToObject(ti, "logprob", tl->logprob);
                cJSON_AddItemToObject(ti, "bytes", token_bytes_json(e, tl->token));
                cJSON_AddItemToArray(top, ti);
            }
            cJSON_AddItemToArray(content, item);
        }
        return lp;
    }
    cJSON *lp = cJSON_CreateObject();
    cJSON *toks = cJSON_AddArrayToObject(lp, "tokens");
    cJSON *tlp = cJSON_AddArrayToObject(lp, "token_logprobs");
    cJSON *top = cJSON_AddArrayToObject(lp, "top_logprobs");
    cJSON *off = cJSON_AddArrayToObject(lp, "text_offset");
    size_t pos = text_offset0;
    for (int32_t t = from; t < to; t++) {
        cJSON_AddItemToArray(toks, token_str_json(e, o->output_ids[t]));
        cJSON_AddItemToArray(tlp, cJSON_CreateNumber(o->logprobs[t]));
        cJSON *d = cJSON_CreateObject();
        for (int k = 0; k < K; k++) {
            const sglc_token_logprob *tl = &o->top_logprobs[(size_t)t * (size_t)K + (size_t)k];
            size_t L = 0;
            const char *ts = sglc_engine_token_text(e, tl->token, &L);
            char *sv = sglc_srv_utf8_sanitize(ts ? ts : "", ts ? L : 0);
            if (sv && !cJSON_GetObjectItemCaseSensitive(d, sv))
                cJSON_AddNumberToObject(d, sv, tl->logprob);
            free(sv);
        }
        cJSON_AddItemToArray(top, d);
        cJSON_AddItemToArray(off, cJSON_CreateNumber((double)pos));
        size_t L = 0;
        if (sglc_engine_token_text(e, o->output_ids[t], &L)) pos += L;
    }
    return lp;
}

cJSON *sglc_srv_usage_json(conn_ctx *c) {
    cJSON *u = cJSON_CreateObject();
    int32_t comp = 0;
    c->cached_tokens = 0;
    for (int i = 0; i < c->n; i++) {
        comp += c->completion_tokens[i];
        if (c->n_per_prompt < 1 || i % c->n_per_prompt == 0) c->cached_tokens += c->cached[i];
    }
    cJSON_AddNumberToObject(u, "prompt_tokens", c->prompt_tokens);
    cJSON_AddNumberToObject(u, "completion_tokens", comp);
    cJSON_AddNumberToObject(u, "total_tokens", c->prompt_tokens + comp);
    cJSON *d = cJSON_AddObjectToObject(u, "prompt_tokens_details");
    cJSON_AddNumberToObject(d, "cached_tokens", c->cached_tokens);
    return u;
}

cJSON *sglc_srv_openai_envelope(conn_ctx *c, int chunk) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "id", c->id);
    cJSON_AddStringToObject(j, "object",
                            c->api == API_CHAT
                                ? (chunk ? "chat.completion.chunk" : "chat.completion")
                                : "text_completion");
    cJSON_AddNumberToObject(j, "created", (double)c->created);
    cJSON_AddStringToObject(j, "model", c->srv->model_name);
    return j;
}

void sglc_srv_add_finish(cJSON *choice, const sglc_output *o) {
    if (o && o->finished) {
        cJSON_AddStringToObject(choice, "finish_reason", sglc_srv_finish_str(o->finish_reason));
        if (o->finish_reason == SGLC_FINISH_STOP && o->matched_stop_token >= 0)
            cJSON_AddNumberToObject(choice, "matched_stop", o->matched_stop_token);
    } else {
        cJSON_AddNullToObject(choice, "finish_reason");
    }
}

enum MHD_Result sglc_srv_handle_openai(conn_ctx *c, cJSON *body, api_kind api) {
    server *s = c->srv;
    sglc_engine *e = atomic_load(&s->engine);
    char err[1024];
    int32_t *ids = NULL, n_ids = 0;
    prompt_list pl = {0}; /* /v1/completions with a list of prompts */
    char *prompt = NULL;
    unsigned status = 400;
    sglc_request_params rp;
    sglc_request_params_default(&rp);
    c->api = api;
    int64_t k;
    int b, r;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(body, "model");
    if (model && !cJSON_IsNull(model) && !cJSON_IsString(model)) {
        snprintf(err, sizeof err, "'model' must be a string");
        goto fail;
    }
    if ((r = sglc_srv_opt_int(body, "n", 1, MAX_N, &k, err, sizeof err)) < 0) goto fail;
    c->n_per_prompt = r ? (int)k : 1;
    if (api == API_CHAT) {
        sglc_chat_template_span *spans = NULL;
        size_t n_spans = 0;
        int trc = sglc_srv_render_chat(s, body, &prompt, &spans, &n_spans, err, sizeof err) ||
                  sglc_srv_tokenize_chat(e, prompt, spans, n_spans, &ids, &n_ids, err, sizeof err);
        free(spans);
        if (trc) goto fail;
    } else {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(body, "prompt");
        if (cJSON_IsArray(p) && p->child && cJSON_IsString(p->child) && !p->child->next)
            p = p->child;
        if (cJSON_IsString(p)) {
            if (!p->valuestring[0]) {
                snprintf(err, sizeof err, "'prompt' is empty");
                goto fail;
            }
            if (sglc_srv_tokenize_alloc(e, p->valuestring, strlen(p->valuestring), s->info.add_bos,
                                        &ids, &n_ids, err, sizeof err))
                goto fail;
        } else if (cJSON_IsArray(p) && (!p->child || cJSON_IsNumber(p->child))) {
            if (sglc_srv_ids_from_json(p, "prompt", s->info.vocab_size, &ids, &n_ids, err,
                                       sizeof err))
                goto fail;
        } else if (cJSON_IsArray(p) && (cJSON_IsString(p->child) || cJSON_IsArray(p->child))) {
            /* a batch: choices come back with index = prompt * n + j, as OpenAI numbers them */
            int n = sglc_srv_batch_len(p, "prompt", err, sizeof err);
            if (n < 0 || sglc_srv_prompts_alloc(&pl, n, err, sizeof err)) goto fail;
            c->batch = 1;
            const cJSON *t = p->child;
            for (int q = 0; q < n; q++, t = t->next) {
                char field[48];
                snprintf(field, sizeof field, "prompt[%d]", q);
                if (cJSON_IsString(t) && t->valuestring[0]) {
                    if (sglc_srv_tokenize_alloc(e, t->valuestring, strlen(t->valuestring),
                                                s->info.add_bos, &pl.ids[q], &pl.len[q], err,
                                                sizeof err))
                        goto fail;
                } else if (cJSON_IsArray(t)) {
                    if (sglc_srv_ids_from_json(t, field, s->info.vocab_size, &pl.ids[q], &pl.len[q],
                                               err, sizeof err))
                        goto fail;
                } else if (!cJSON_IsString(t)) {
                    snprintf(err, sizeof err,
                             "'prompt'[%d] must be a string or a list of token ids", q);
                    goto fail;
                }
                if (pl.len[q] == 0) {
                    snprintf(err, sizeof err, "'prompt'[%d] is empty", q);
                    goto fail;
                }
            }
            n_ids = pl.len[0];
        } else {
            snprintf(err, sizeof err, "'prompt' must be a string or a list of token ids");
            goto fail;
        }
        if ((r = sglc_srv_opt_bool(body, "echo", &b, err, sizeof err)) < 0) goto fail;
        if (r && b) {
            snprintf(err, sizeof err, "'echo' is not supported");
            goto fail;
        }
    }
    if (n_ids == 0) {
        snprintf(err, sizeof err, "the prompt is empty");
        goto fail;
    }
    int32_t ctx = s->info.context_length;
    int32_t def_max = api == API_CHAT ? ctx - n_ids : 16;
    if (def_max < 1) def_max = 1;
    int has_max = 0;
    if (sglc_srv_parse_sampling(c, body, "max_tokens",
                                api == API_CHAT ? "max_completion_tokens" : NULL, "min_tokens",
                                "seed", def_max, &rp, &has_max, err, sizeof err))
        goto fail;
    if ((int64_t)n_ids + rp.max_new_tokens > ctx) {
        snprintf(err, sizeof err,
                 "the prompt (%d tokens) plus max_tokens (%d) exceeds the context length (%d)",
                 n_ids, rp.max_new_tokens, ctx);
        goto fail;
    }
    for (int q = 1; q < pl.n; q++)
        if ((int64_t)pl.len[q] + rp.max_new_tokens > ctx) {
            snprintf(err, sizeof err,
                     "'prompt'[%d] (%d tokens) plus max_tokens (%d) exceeds the context length "
                     "(%d)",
                     q, pl.len[q], rp.max_new_tokens, ctx);
            goto fail;
        }
    if ((r = sglc_srv_opt_bool(body, "stream", &b, err, sizeof err)) < 0) goto fail;
    c->stream = r && b;
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(body, "stream_options");
    if (so && !cJSON_IsNull(so)) {
        if (!cJSON_IsObject(so)) {
            snprintf(err, sizeof err, "'stream_options' must be an object");
            goto fail;
        }
        if (sglc_srv_opt_bool(so, "include_usage", &b, err, sizeof err) < 0) goto fail;
        c->include_usage = sglc_srv_opt_bool(so, "include_usage", &b, err, sizeof err) > 0 && b;
    }
    if (api == API_CHAT) {
        if ((r = sglc_srv_opt_bool(body, "logprobs", &b, err, sizeof err)) < 0) goto fail;
        c->return_logprob = r && b;
        if ((r = sglc_srv_opt_int(body, "top_logprobs", 0, MAX_TOP_LOGPROBS, &k, err, sizeof err)) <
            0)
            goto fail;
        c->top_logprobs = r ? (int)k : 0;
        if (c->top_logprobs && !c->return_logprob) {
            snprintf(err, sizeof err, "'top_logprobs' needs 'logprobs': true");
            goto fail;
        }
    } else {
        if ((r = sglc_srv_opt_int(body, "logprobs", 0, MAX_TOP_LOGPROBS, &k, err, sizeof err)) < 0)
            goto fail;
        c->return_logprob = r > 0;
        c->top_logprobs = r ? (int)k : 0;
    }
    rp.return_logprob = c->return_logprob;
    rp.top_logprobs_num = c->top_logprobs;
    sglc_srv_make_ids(c, api == API_CHAT ? "chatcmpl-" : "cmpl-", NULL);
    if (pl.n > 0)
        status = sglc_srv_submit_all(c, pl.n, pl.ids, pl.len, &rp, 1, err, sizeof err);
    else
        status = sglc_srv_submit_all(c, 1, &ids, &n_ids, &rp, 1, err, sizeof err);
    if (status != 0) goto fail;
    free(ids);
    sglc_srv_prompts_free(&pl);
    free(prompt);
    return sglc_srv_finish_generation(c);
fail:
    free(ids);
    sglc_srv_prompts_free(&pl);
    free(prompt);
    return sglc_srv_send_error(c->conn, status ? status : 400, err);
}

enum MHD_Result sglc_srv_handle_models(conn_ctx *c) {
    server *s = c->srv;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "object", "list");
    cJSON *d = cJSON_AddArrayToObject(j, "data");
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", s->model_name);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)(long long)time(NULL));
    cJSON_AddStringToObject(m, "owned_by", "sglc");
    cJSON_AddStringToObject(m, "root", s->info.model_path);
    cJSON_AddNumberToObject(m, "max_model_len", s->info.context_length);
    cJSON_AddItemToArray(d, m);
    return sglc_srv_send_json(c->conn, MHD_HTTP_OK, j);
}
