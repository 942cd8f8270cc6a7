/* SGLang's native endpoints: /generate (text or input_ids, single or batch, sampling_params),
 * its result JSON (meta_info, logprobs), /get_server_info, /get_model_info, /get_load,
 * /tokenize, /detokenize, /abort_request and /health_generate. /health and /flush_cache are
 * answered by the router in http.c. Handlers validate with validate.c and prompt.c and submit
 * through generation.c. */
#include "server/server_impl.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* SGLang's [logprob, token id, token text or null] triple (return_text_in_logprobs) */
static cJSON *lp_triple(conn_ctx *c, float lp, int32_t id) {
    cJSON *x = cJSON_CreateArray();
    cJSON_AddItemToArray(x, isnan(lp) ? cJSON_CreateNull() : cJSON_CreateNumber(lp));
    cJSON_AddItemToArray(x, cJSON_CreateNumber(id));
    if (c->return_text_in_logprobs) {
        size_t L = 0;
        const char *t = sglc_engine_token_text(atomic_load(&c->srv->engine), id, &L);
        char *s = sglc_srv_utf8_sanitize(t ? t : "", t ? L : 0);
        cJSON_AddItemToArray(x, cJSON_CreateString(s ? s : ""));
        free(s);
    } else {
        cJSON_AddItemToArray(x, cJSON_CreateNull());
    }
    return x;
}

/* one position's top alternatives, or null (the first prompt token has no context) */
static cJSON *top_row(conn_ctx *c, const sglc_token_logprob *tl, int K, int none) {
    if (none) return cJSON_CreateNull();
    cJSON *row = cJSON_CreateArray();
    for (int k = 0; k < K; k++)
        cJSON_AddItemToArray(row, lp_triple(c, tl[k].logprob, tl[k].token));
    return row;
}

static void native_logprobs(conn_ctx *c, cJSON *meta, const sglc_output *o, int32_t prompt_n,
                            const int32_t *prompt) {
    int K = c->top_logprobs;
    cJSON *lps = cJSON_AddArrayToObject(meta, "output_token_logprobs");
    cJSON *tops = K > 0 ? cJSON_AddArrayToObject(meta, "output_top_logprobs") : NULL;
    for (int32_t t = 0; t < o->n_output; t++) {
        cJSON_AddItemToArray(lps, lp_triple(c, o->logprobs[t], o->output_ids[t]));
        if (tops)
            cJSON_AddItemToArray(tops, top_row(c, &o->top_logprobs[(size_t)t * (size_t)K], K, 0));
    }
    if (o->input_logprobs && prompt) {
        cJSON *in = cJSON_AddArrayToObject(meta, "input_token_logprobs");
        cJSON *itops = K > 0 ? cJSON_AddArrayToObject(meta, "input_top_logprobs") : NULL;
        for (int32_t i = 0; i < o->n_input_logprobs; i++) {
            int32_t pos = o->input_logprob_start + i;
            if (pos >= prompt_n) break;
            cJSON_AddItemToArray(in, lp_triple(c, o->input_logprobs[i], prompt[pos]));
            if (itops)
                cJSON_AddItemToArray(itops,
                                     top_row(c, &o->input_top_logprobs[(size_t)i * (size_t)K], K,
                                             isnan(o->input_logprobs[i])));
        }
    }
    if (o->token_ids_logprobs && c->n_lp_ids > 0) {
        cJSON *a = cJSON_AddArrayToObject(meta, "output_token_ids_logprobs");
        for (int32_t t = 0; t < o->n_output; t++) {
            cJSON *row = cJSON_CreateArray();
            for (int j = 0; j < c->n_lp_ids; j++)
                cJSON_AddItemToArray(
                    row, lp_triple(c, o->token_ids_logprobs[(size_t)t * (size_t)c->n_lp_ids + j],
                                   c->lp_ids[j]));
            cJSON_AddItemToArray(a, row);
        }
    }
}

/* Choice i's per-prompt arguments (stop strings); NULL when none were kept. */
static const item_args *args_of(const conn_ctx *c, int i) {
    if (!c->args || c->n_args < 1) return NULL;
    int p = c->n_per_prompt > 0 ? i / c->n_per_prompt : i;
    return &c->args[c->n_args == 1 || p >= c->n_args ? 0 : p];
}

cJSON *sglc_srv_native_result(conn_ctx *c, int i, const sglc_output *o) {
    cJSON *j = cJSON_CreateObject();
    if (!c->srv->p.skip_tokenizer_init) { /* --skip-tokenizer-init: token ids only, as SGLang */
        char *t = sglc_srv_utf8_sanitize(o->text, o->text_len);
        cJSON_AddStringToObject(j, "text", t ? t : "");
        free(t);
    }
    cJSON *ids = cJSON_AddArrayToObject(j, "output_ids");
    for (int32_t i = 0; i < o->n_output; i++)
        cJSON_AddItemToArray(ids, cJSON_CreateNumber(o->output_ids[i]));
    cJSON *m = cJSON_AddObjectToObject(j, "meta_info");
    if (c->batch) {
        char id[160];
        snprintf(id, sizeof id, "%s-%d", c->rid, i);
        cJSON_AddStringToObject(m, "id", id);
    } else {
        cJSON_AddStringToObject(m, "id", c->rid);
    }
    const item_args *a = args_of(c, i);
    if (o->finished) {
        cJSON *fr = cJSON_AddObjectToObject(m, "finish_reason");
        cJSON_AddStringToObject(fr, "type", sglc_srv_finish_str(o->finish_reason));
        if (o->finish_reason == SGLC_FINISH_LENGTH)
            cJSON_AddNumberToObject(fr, "length", o->n_output);
        else if (o->finish_reason == SGLC_FINISH_STOP) {
            if (a && o->matched_stop_string >= 0 && o->matched_stop_string < MAX_STOP)
                cJSON_AddStringToObject(fr, "matched", a->stops[o->matched_stop_string]);
            else if (o->matched_stop_token >= 0)
                cJSON_AddNumberToObject(fr, "matched", o->matched_stop_token);
            else
                cJSON_AddNullToObject(fr, "matched");
        } else if (o->finish_reason == SGLC_FINISH_ABORT) {
            cJSON_AddStringToObject(fr, "message", "aborted");
        }
    } else {
        cJSON_AddNullToObject(m, "finish_reason");
    }
    cJSON_AddNumberToObject(m, "prompt_tokens", o->prompt_tokens);
    cJSON_AddNumberToObject(m, "completion_tokens", o->n_output);
    cJSON_AddNumberToObject(m, "cached_tokens", o->cached_tokens);
    cJSON_AddNumberToObject(m, "e2e_latency", sglc_srv_now_s() - c->t0);
    if (c->return_logprob) {
        int p = c->n_per_prompt > 0 ? i / c->n_per_prompt : i;
        native_logprobs(c, m, o, c->prompt_ids && p < c->n_prompt_ids ? c->prompt_len[p] : 0,
                        c->prompt_ids && p < c->n_prompt_ids ? c->prompt_ids[p] : NULL);
    }
    return j;
}

enum MHD_Result sglc_srv_handle_generate(conn_ctx *c, cJSON *body) {
    server *s = c->srv;
    sglc_engine *e = atomic_load(&s->engine);
    char err[1024];
    prompt_list pl = {0};
    sglc_request_params *rps = NULL;
    unsigned status = 400;
    c->api = API_NATIVE;
    c->n_per_prompt = 1;
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(body, "text");
    const cJSON *input_ids = cJSON_GetObjectItemCaseSensitive(body, "input_ids");
    if (text && cJSON_IsNull(text)) text = NULL;
    if (input_ids && cJSON_IsNull(input_ids)) input_ids = NULL;
    const cJSON *rid = cJSON_GetObjectItemCaseSensitive(body, "rid");
    if (rid && !cJSON_IsNull(rid) && !cJSON_IsString(rid)) {
        snprintf(err, sizeof err, "'rid' must be a string");
        goto fail;
    }
    if (!!text == !!input_ids) {
        snprintf(err, sizeof err, "give exactly one of 'text' and 'input_ids'");
        goto fail;
    }
    if (sglc_srv_refuse_unsupported(body, err, sizeof err)) goto fail;
    if (text && s->p.skip_tokenizer_init) {
        snprintf(err, sizeof err,
                 "'text' needs the tokenizer, which this server skips (--skip-tokenizer-init): "
                 "send 'input_ids'");
        goto fail;
    }
    if (text) {
        /* a string, or a batch: a list of strings (SGLang answers with a list of results) */
        int n = 1;
        if (cJSON_IsArray(text)) {
            if ((n = sglc_srv_batch_len(text, "text", err, sizeof err)) < 0) goto fail;
            c->batch = 1;
        } else if (!cJSON_IsString(text)) {
            snprintf(err, sizeof err, "'text' must be a string or a list of strings");
            goto fail;
        }
        if (sglc_srv_prompts_alloc(&pl, n, err, sizeof err)) goto fail;
        const cJSON *t = c->batch ? text->child : text;
        for (int k = 0; k < n; k++, t = t->next) {
            if (!cJSON_IsString(t)) {
                snprintf(err, sizeof err, "'text'[%d] must be a string", k);
                goto fail;
            }
            if (!t->valuestring[0]) {
                if (c->batch)
                    snprintf(err, sizeof err, "'text'[%d] is empty", k);
                else
                    snprintf(err, sizeof err, "'text' is empty");
                goto fail;
            }
            if (sglc_srv_tokenize_alloc(e, t->valuestring, strlen(t->valuestring), s->info.add_bos,
                                        &pl.ids[k], &pl.len[k], err, sizeof err))
                goto fail;
        }
    } else {
        /* a list of token ids, or a batch: a list of such lists */
        if (!cJSON_IsArray(input_ids)) {
            snprintf(err, sizeof err, "'input_ids' must be a list of token ids");
            goto fail;
        }
        int n = 1;
        if (input_ids->child && cJSON_IsArray(input_ids->child)) {
            if ((n = sglc_srv_batch_len(input_ids, "input_ids", err, sizeof err)) < 0) goto fail;
            c->batch = 1;
        }
        if (sglc_srv_prompts_alloc(&pl, n, err, sizeof err)) goto fail;
        const cJSON *t = c->batch ? input_ids->child : input_ids;
        for (int k = 0; k < n; k++, t = t->next) {
            char field[48];
            if (c->batch)
                snprintf(field, sizeof field, "input_ids[%d]", k);
            else
                snprintf(field, sizeof field, "input_ids");
            if (!cJSON_IsArray(t)) {
                snprintf(err, sizeof err, "'%s' must be a list of token ids", field);
                goto fail;
            }
            if (sglc_srv_ids_from_json(t, field, s->info.vocab_size, &pl.ids[k], &pl.len[k], err,
                                       sizeof err))
                goto fail;
            if (pl.len[k] == 0) {
                snprintf(err, sizeof err, "'%s' is empty", field);
                goto fail;
            }
        }
    }
    /* sampling_params: one object for every prompt, or (batch) a list of one per prompt */
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(body, "sampling_params");
    if (sp && cJSON_IsNull(sp)) sp = NULL;
    int n_rps = 1;
    if (sp && cJSON_IsArray(sp)) {
        if (!c->batch) {
            snprintf(err, sizeof err, "'sampling_params' must be an object for a single prompt");
            goto fail;
        }
        if (cJSON_GetArraySize(sp) != pl.n) {
            snprintf(err, sizeof err, "'sampling_params' has %d entries for %d prompts",
                     cJSON_GetArraySize(sp), pl.n);
            goto fail;
        }
        n_rps = pl.n;
    } else if (sp && !cJSON_IsObject(sp)) {
        snprintf(err, sizeof err, "'sampling_params' must be an object");
        goto fail;
    }
    int b;
    int64_t k;
    if (sglc_srv_opt_bool(body, "stream", &b, err, sizeof err) < 0) goto fail;
    c->stream = sglc_srv_opt_bool(body, "stream", &b, err, sizeof err) > 0 && b;
    if (sglc_srv_opt_bool(body, "return_logprob", &b, err, sizeof err) < 0) goto fail;
    c->return_logprob = sglc_srv_opt_bool(body, "return_logprob", &b, err, sizeof err) > 0 && b;
    int r = sglc_srv_opt_int(body, "top_logprobs_num", 0, MAX_TOP_LOGPROBS, &k, err, sizeof err);
    if (r < 0) goto fail;
    c->top_logprobs = r > 0 ? (int)k : 0;
    if (!c->return_logprob) c->top_logprobs = 0;
    /* prompt logprobs from logprob_start_len (-1: output only, SGLang's default) */
    int64_t lp_start = -1;
    if (sglc_srv_opt_int(body, "logprob_start_len", -1, 1 << 30, &lp_start, err, sizeof err) < 0 ||
        sglc_srv_opt_bool(body, "return_text_in_logprobs", &c->return_text_in_logprobs, err,
                          sizeof err) < 0 ||
        sglc_srv_parse_token_ids_logprob(
            c, cJSON_GetObjectItemCaseSensitive(body, "token_ids_logprob"), err, sizeof err) < 0)
        goto fail;
    rps = calloc((size_t)n_rps, sizeof *rps);
    c->args = calloc((size_t)n_rps, sizeof *c->args);
    if (!rps || !c->args) {
        snprintf(err, sizeof err, "out of memory");
        status = 500;
        goto fail;
    }
    c->n_args = n_rps;
    for (int i = 0; i < n_rps; i++) {
        const cJSON *item = n_rps > 1 ? cJSON_GetArrayItem(sp, i) : sp;
        sglc_request_params *rp = &rps[i];
        sglc_request_params_default(rp);
        if (item && !cJSON_IsNull(item)) {
            char ierr[900];
            int has_max = 0;
            if (!cJSON_IsObject(item)) {
                snprintf(err, sizeof err, "'sampling_params'[%d] must be an object", i);
                goto fail;
            }
            if (sglc_srv_refuse_unsupported(item, ierr, sizeof ierr) ||
                sglc_srv_parse_sampling(c, item, "max_new_tokens", NULL, "min_new_tokens",
                                        "sampling_seed", 128, rp, &has_max, ierr, sizeof ierr) ||
                sglc_srv_opt_int(item, "n", 1, 1, &k, ierr, sizeof ierr) < 0) {
                if (strstr(ierr, "'n'"))
                    snprintf(ierr, sizeof ierr,
                             "'n' must be 1 for /generate (use /v1/completions)");
                if (n_rps > 1)
                    snprintf(err, sizeof err, "'sampling_params'[%d]: %s", i, ierr);
                else
                    snprintf(err, sizeof err, "%s", ierr);
                goto fail;
            }
        }
        rp->return_logprob = c->return_logprob;
        rp->top_logprobs_num = c->return_logprob ? c->top_logprobs : 0;
        rp->logprob_start_len = c->return_logprob ? (int32_t)lp_start : -1;
        rp->logprob_token_ids = c->lp_ids;
        rp->n_logprob_token_ids = c->return_logprob ? c->n_lp_ids : 0;
        if (sglc_srv_detach_args(c, &c->args[i], rp)) {
            snprintf(err, sizeof err, "out of memory");
            status = 500;
            goto fail;
        }
    }
    sglc_srv_make_ids(c, "", body);
    status = sglc_srv_submit_all(c, pl.n, pl.ids, pl.len, rps, n_rps, err, sizeof err);
    if (status != 0) goto fail;
    if (c->return_logprob && lp_start >= 0) sglc_srv_keep_prompts(c, &pl); /* for their ids */
    sglc_srv_prompts_free(&pl);
    free(rps);
    return sglc_srv_finish_generation(c);
fail:
    sglc_srv_prompts_free(&pl);
    free(rps);
    return sglc_srv_send_error(c->conn, status ? status : 400, err);
}

static cJSON *stats_json(server *s) {
    sglc_engine_stats st;
    sglc_engine_get_stats(atomic_load(&s->engine), &st);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "num_running_reqs", st.num_running);
    cJSON_AddNumberToObject(j, "num_queue_reqs", st.num_queued);
    cJSON_AddNumberToObject(j, "kv_pool_size", (double)st.kv_pool_size);
    cJSON_AddNumberToObject(j, "kv_used_tokens", (double)st.kv_used);
    cJSON_AddNumberToObject(j, "kv_cached_evictable_tokens", (double)st.kv_cached_evictable);
    cJSON_AddNumberToObject(j, "token_usage", st.token_usage);
    cJSON_AddNumberToObject(j, "last_gen_throughput", st.last_gen_throughput);
    cJSON_AddNumberToObject(j, "prompt_tokens_total", (double)st.prompt_tokens_total);
    cJSON_AddNumberToObject(j, "generation_tokens_total", (double)st.generation_tokens_total);
    cJSON_AddNumberToObject(j, "cached_tokens_total", (double)st.cached_tokens_total);
    cJSON_AddNumberToObject(j, "requests_finished", (double)st.requests_finished);
    pthread_mutex_lock(&s->mu);
    cJSON_AddNumberToObject(j, "http_inflight_requests", s->inflight);
    pthread_mutex_unlock(&s->mu);
    return j;
}

enum MHD_Result sglc_srv_handle_server_info(conn_ctx *c) {
    server *s = c->srv;
    cJSON *j = s->p.server_args ? cJSON_Duplicate(s->p.server_args, 1) : cJSON_CreateObject();
    cJSON *is = cJSON_AddArrayToObject(j, "internal_states");
    cJSON_AddItemToArray(is, stats_json(s));
    cJSON_AddStringToObject(j, "version", SGLC_VERSION);
    cJSON_AddNumberToObject(j, "uptime_s", sglc_srv_now_s() - s->t_start);
    /* what SGLang's scheduler reports next to the server args, which clients (sglang.bench_*,
     * sglang-router) read */
    cJSON_AddNumberToObject(j, "max_total_num_tokens", (double)s->info.kv_pool_size);
    cJSON_AddNumberToObject(j, "max_req_input_len", s->info.context_length - 1);
    cJSON_AddNumberToObject(j, "max_running_requests_effective", s->info.max_running_requests);
    /* SGLang reports the size it chose when none was given */
    cJSON *cp = cJSON_GetObjectItemCaseSensitive(j, "chunked_prefill_size");
    if (!cp || cJSON_IsNull(cp)) {
        cJSON_DeleteItemFromObjectCaseSensitive(j, "chunked_prefill_size");
        cJSON_AddNumberToObject(j, "chunked_prefill_size", s->info.chunked_prefill_size);
    }
    cJSON *tp = cJSON_GetObjectItemCaseSensitive(j, "tp_size");
    if (!tp) cJSON_AddNumberToObject(j, "tp_size", 1);
    /* SGLang's values for a single unified (not prefill/decode split) server: sglang-router
     * labels the worker with them */
    if (!cJSON_GetObjectItemCaseSensitive(j, "load_balance_method"))
        cJSON_AddStringToObject(j, "load_balance_method", "round_robin");
    if (!cJSON_GetObjectItemCaseSensitive(j, "disaggregation_mode"))
        cJSON_AddStringToObject(j, "disaggregation_mode", "null");
    return sglc_srv_send_json(c->conn, MHD_HTTP_OK, j);
}

/* SGLang's /get_load: one entry per data-parallel rank (sglc has one). sglang-router's load
 * monitor sums num_tokens over the entries (power_of_two policy). */
enum MHD_Result sglc_srv_handle_get_load(conn_ctx *c) {
    sglc_engine_stats st;
    sglc_engine_get_stats(atomic_load(&c->srv->engine), &st);
    cJSON *a = cJSON_CreateArray(), *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "dp_rank", 0);
    cJSON_AddNumberToObject(j, "num_reqs", st.num_running + st.num_queued);
    cJSON_AddNumberToObject(j, "num_waiting_reqs", st.num_queued);
    cJSON_AddNumberToObject(j, "num_tokens", (double)st.kv_used);
    cJSON_AddItemToArray(a, j);
    return sglc_srv_send_json(c->conn, MHD_HTTP_OK, a);
}

enum MHD_Result sglc_srv_handle_model_info(conn_ctx *c) {
    server *s = c->srv;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "model_path", s->info.model_path);
    cJSON_AddStringToObject(j, "tokenizer_path",
                            s->info.tokenizer_path ? s->info.tokenizer_path : s->info.model_path);
    cJSON_AddStringToObject(j, "served_model_name", s->model_name);
    cJSON_AddBoolToObject(j, "is_generation", 1);
    cJSON_AddNullToObject(j, "preferred_sampling_params");
    cJSON_AddStringToObject(j, "model_type", s->info.arch);
    cJSON_AddNumberToObject(j, "context_length", s->info.context_length);
    cJSON_AddNumberToObject(j, "vocab_size", s->info.vocab_size);
    cJSON_AddNumberToObject(j, "num_hidden_layers", s->info.n_layer);
    cJSON_AddNumberToObject(j, "hidden_size", s->info.n_embd);
    cJSON_AddBoolToObject(j, "has_chat_template", s->info.chat_template != NULL);
    return sglc_srv_send_json(c->conn, MHD_HTTP_OK, j);
}

enum MHD_Result sglc_srv_handle_tokenize(conn_ctx *c, cJSON *body) {
    server *s = c->srv;
    char err[512];
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(body, "prompt");
    if (!p) p = cJSON_GetObjectItemCaseSensitive(body, "text");
    if (!cJSON_IsString(p)) return sglc_srv_send_error(c->conn, 400, "'prompt' must be a string");
    int add = 1, b;
    int r = sglc_srv_opt_bool(body, "add_special_tokens", &b, err, sizeof err);
    if (r < 0) return sglc_srv_send_error(c->conn, 400, err);
    if (r) add = b;
    int32_t *ids = NULL, n = 0;
    if (sglc_srv_tokenize_alloc(atomic_load(&s->engine), p->valuestring, strlen(p->valuestring),
                                add && s->info.add_bos, &ids, &n, err, sizeof err)) {
        free(ids);
        return sglc_srv_send_error(c->conn, 400, err);
    }
    cJSON *j = cJSON_CreateObject(), *t = cJSON_AddArrayToObject(j, "tokens");
    for (int32_t i = 0; i < n; i++)
        cJSON_AddItemToArray(t, cJSON_CreateNumber(ids[i]));
    cJSON_AddNumberToObject(j, "count", n);
    cJSON_AddNumberToObject(j, "max_model_len", s->info.context_length);
    free(ids);
    return sglc_srv_send_json(c->conn, MHD_HTTP_OK, j);
}

enum MHD_Result sglc_srv_handle_detokenize(conn_ctx *c, cJSON *body) {
    server *s = c->srv;
    char err[512];
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(body, "tokens");
    if (!cJSON_IsArray(t))
        return sglc_srv_send_error(c->conn, 400, "'tokens' must be a list of token ids");
    int32_t *ids = NULL, n = 0;
    if (sglc_srv_ids_from_json(t, "tokens", s->info.vocab_size, &ids, &n, err, sizeof err)) {
        free(ids);
        return sglc_srv_send_error(c->conn, 400, err);
    }
    int skip = 0, b;
    if (sglc_srv_opt_bool(body, "skip_special_tokens", &b, err, sizeof err) > 0) skip = b;
    sglc_engine *e = atomic_load(&s->engine);
    size_t need = sglc_engine_detokenize(e, ids, (size_t)n, skip, NULL, 0);
    char *out = malloc(need + 1);
    if (!out) {
        free(ids);
        return sglc_srv_send_error(c->conn, 500, "out of memory");
    }
    sglc_engine_detokenize(e, ids, (size_t)n, skip, out, need);
    char *clean = sglc_srv_utf8_sanitize(out, need);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "text", clean ? clean : "");
    free(clean);
    free(out);
    free(ids);
    return sglc_srv_send_json(c->conn, MHD_HTTP_OK, j);
}

enum MHD_Result sglc_srv_handle_abort(conn_ctx *c, cJSON *body) {
    server *s = c->srv;
    const cJSON *rid = cJSON_GetObjectItemCaseSensitive(body, "rid");
    int all = 0, b;
    char err[256];
    if (sglc_srv_opt_bool(body, "abort_all", &b, err, sizeof err) > 0) all = b;
    if (!all && !cJSON_IsString(rid))
        return sglc_srv_send_error(c->conn, 400,
                                   "'rid' must be a string (or set 'abort_all': true)");
    int found = 0;
    pthread_mutex_lock(&s->mu);
    for (conn_ctx *a = s->active; a; a = a->next_active)
        if (all || strcmp(a->rid, rid->valuestring) == 0) {
            for (int i = 0; i < a->n; i++)
                if (a->reqs[i]) sglc_request_abort(a->reqs[i]);
            found++;
        }
    pthread_mutex_unlock(&s->mu);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "aborted", found);
    return sglc_srv_send_json(c->conn, MHD_HTTP_OK, j);
}

enum MHD_Result sglc_srv_handle_health_generate(conn_ctx *c) {
    server *s = c->srv;
    sglc_request_params rp;
    sglc_request_params_default(&rp);
    rp.max_new_tokens = 1;
    rp.temperature = 0;
    int32_t id = s->info.bos_id >= 0 ? s->info.bos_id : 0;
    c->n_per_prompt = 1;
    sglc_srv_make_ids(c, "health-", NULL);
    char err[512];
    int32_t *idp = &id, one = 1;
    unsigned st = sglc_srv_submit_all(c, 1, &idp, &one, &rp, 1, err, sizeof err);
    if (st) return sglc_srv_send_error(c->conn, 503, err);
    sglc_output o;
    double until = sglc_srv_now_s() + 20.0;
    do
        sglc_request_wait(c->reqs[0], 0, &o, WAIT_SLICE_MS);
    while (!o.finished && sglc_srv_now_s() < until);
    if (!o.finished) return sglc_srv_send_error(c->conn, 503, "generation did not finish in 20 s");
    return sglc_srv_send_text(c->conn, 200, "text/plain", "", 0, NULL);
}
