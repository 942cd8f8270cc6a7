/* The OpenAI-compatible endpoints: /v1/completions (prompt strings, token ids or batches),
 * /v1/chat/completions (messages through the chat template) and /v1/models, and the OpenAI
 * result JSON (envelope, choices' finish reason, logprobs, usage) that generation.c and sse.c
 * fill in. Validation is validate.c's and prompt.c's. */
#include "server/server_impl.h"

#include <math.h>
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

/* completions' top_logprobs entry: {"token text": logprob} of K alternatives */
static cJSON *top_dict(sglc_engine *e, const sglc_token_logprob *tl, int K) {
    cJSON *d = cJSON_CreateObject();
    for (int k = 0; k < K; k++) {
        size_t L = 0;
        const char *ts = sglc_engine_token_text(e, tl[k].token, &L);
        char *sv = sglc_srv_utf8_sanitize(ts ? ts : "", ts ? L : 0);
        if (sv && !cJSON_GetObjectItemCaseSensitive(d, sv))
            cJSON_AddNumberToObject(d, sv, tl[k].logprob);
        free(sv);
    }
    return d;
}

/* OpenAI logprobs for output tokens [from, to) */
cJSON *sglc_srv_openai_logprobs(conn_ctx *c, int choice, const sglc_output *o, int32_t from,
                                int32_t to, size_t text_offset0) {
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
    /* echo with logprobs: the prompt's tokens come first, the first one without a logprob */
    int pi = c->n_per_prompt > 0 ? choice / c->n_per_prompt : choice;
    if (c->echo && from == 0 && o->input_logprobs && c->prompt_ids && pi < c->n_prompt_ids) {
        for (int32_t i = 0; i < o->n_input_logprobs && i < c->prompt_len[pi]; i++) {
            int32_t id = c->prompt_ids[pi][i];
            float v = o->input_logprobs[i];
            cJSON_AddItemToArray(toks, token_str_json(e, id));
            cJSON_AddItemToArray(tlp, isnan(v) ? cJSON_CreateNull() : cJSON_CreateNumber(v));
            if (isnan(v)) {
                cJSON_AddItemToArray(top, cJSON_CreateNull());
            } else {
                cJSON_AddItemToArray(top,
                                     top_dict(e, &o->input_top_logprobs[(size_t)i * (size_t)K], K));
            }
            cJSON_AddItemToArray(off, cJSON_CreateNumber((double)pos));
            size_t L = 0;
            if (sglc_engine_token_text(e, id, &L)) pos += L;
        }
    }
    for (int32_t t = from; t < to; t++) {
        cJSON_AddItemToArray(toks, token_str_json(e, o->output_ids[t]));
        cJSON_AddItemToArray(tlp, cJSON_CreateNumber(o->logprobs[t]));
        cJSON_AddItemToArray(top, top_dict(e, &o->top_logprobs[(size_t)t * (size_t)K], K));
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
    /* the request's model name, as SGLang answers (the served name when it gave none) */
    cJSON_AddStringToObject(j, "model", c->req_model ? c->req_model : c->srv->model_name);
    return j;
}

void sglc_srv_add_finish(conn_ctx *c, cJSON *choice, const sglc_output *o, int has_calls) {
    if (o && o->finished) {
        /* a stop that ends in tool calls is "tool_calls", as OpenAI and SGLang report it */
        cJSON_AddStringToObject(choice, "finish_reason",
                                has_calls && o->finish_reason == SGLC_FINISH_STOP
                                    ? "tool_calls"
                                    : sglc_srv_finish_str(o->finish_reason));
        /* matched_stop: the stop string, else the token id (SGLang's field) */
        if (o->finish_reason == SGLC_FINISH_STOP && o->matched_stop_string >= 0 &&
            o->matched_stop_string < MAX_STOP && c->stops[o->matched_stop_string])
            cJSON_AddStringToObject(choice, "matched_stop", c->stops[o->matched_stop_string]);
        else if (o->finish_reason == SGLC_FINISH_STOP && o->matched_stop_token >= 0)
            cJSON_AddNumberToObject(choice, "matched_stop", o->matched_stop_token);
        else
            cJSON_AddNullToObject(choice, "matched_stop");
    } else {
        cJSON_AddNullToObject(choice, "finish_reason");
    }
}

/* tools / tool_choice (chat): validates the tools, picks the parser (--tool-call-parser) for
 * "auto", or marks the answer forced for "required" / a named function. *tools is what the
 * template sees (NULL for tool_choice "none" or no tools). 0, or -1 with err. */
static int parse_tools(conn_ctx *c, const cJSON *body, const cJSON **tools, const char **forced,
                       char *err, size_t el) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(body, "tools");
    const cJSON *tc = cJSON_GetObjectItemCaseSensitive(body, "tool_choice");
    *tools = NULL;
    *forced = NULL;
    if (t && cJSON_IsNull(t)) t = NULL;
    if (tc && cJSON_IsNull(tc)) tc = NULL;
    if (t) {
        if (!cJSON_IsArray(t) || cJSON_GetArraySize(t) == 0 || cJSON_GetArraySize(t) > 128) {
            snprintf(err, el, "'tools' must be a list of 1 to 128 tools");
            return -1;
        }
        int i = 0;
        const cJSON *x;
        cJSON_ArrayForEach(x, t) {
            const cJSON *ty = cJSON_GetObjectItemCaseSensitive(x, "type");
            const cJSON *fn = cJSON_GetObjectItemCaseSensitive(x, "function");
            const cJSON *nm = cJSON_GetObjectItemCaseSensitive(fn, "name");
            const cJSON *pa = cJSON_GetObjectItemCaseSensitive(fn, "parameters");
            if (!cJSON_IsString(ty) || strcmp(ty->valuestring, "function") != 0 ||
                !cJSON_IsObject(fn) || !cJSON_IsString(nm) || !nm->valuestring[0] ||
                (pa && !cJSON_IsNull(pa) && !cJSON_IsObject(pa))) {
                snprintf(err, el,
                         "'tools'[%d] must be {\"type\": \"function\", \"function\": {\"name\": "
                         "string, \"parameters\": object}}",
                         i);
                return -1;
            }
            i++;
        }
    }
    const char *mode = t ? "auto" : "none";
    if (cJSON_IsString(tc)) {
        mode = tc->valuestring;
        if (strcmp(mode, "none") != 0 && strcmp(mode, "auto") != 0 &&
            strcmp(mode, "required") != 0) {
            snprintf(err, el,
                     "'tool_choice' must be \"none\", \"auto\", \"required\" or a "
                     "named function");
            return -1;
        }
    } else if (tc) {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(fn, "name");
        if (!cJSON_IsObject(tc) || !cJSON_IsString(nm)) {
            snprintf(err, el,
                     "'tool_choice' must be \"none\", \"auto\", \"required\" or "
                     "{\"type\": \"function\", \"function\": {\"name\": ...}}");
            return -1;
        }
        mode = "named";
        *forced = nm->valuestring;
    }
    if (!t) {
        if (strcmp(mode, "none") != 0) {
            snprintf(err, el, "'tool_choice' needs 'tools'");
            return -1;
        }
        return 0;
    }
    if (strcmp(mode, "none") == 0) return 0;
    if (*forced) {
        int found = 0;
        const cJSON *x;
        cJSON_ArrayForEach(x, t) {
            const cJSON *nm = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(x, "function"), "name");
            found |= strcmp(nm->valuestring, *forced) == 0;
        }
        if (!found) {
            snprintf(err, el, "'tool_choice' names '%.100s', which is not in 'tools'", *forced);
            return -1;
        }
    }
    *tools = t;
    c->tool_forced = strcmp(mode, "auto") != 0;
    if (!c->tool_forced)
        c->tool_parser = sglc_tool_parser_kind_from_name(c->srv->p.tool_call_parser);
    return 0;
}

/* --reasoning-parser, unless the request says separate_reasoning: false */
static int parse_reasoning(conn_ctx *c, const cJSON *body, char *err, size_t el) {
    int sep = 1;
    if (sglc_srv_opt_bool(body, "separate_reasoning", &sep, err, el) < 0) return -1;
    c->reasoning =
        sep ? sglc_reasoning_kind_from_name(c->srv->p.reasoning_parser) : SGLC_REASONING_NONE;
    return 0;
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
    if (model && cJSON_IsString(model) && !(c->req_model = strdup(model->valuestring))) {
        snprintf(err, sizeof err, "out of memory");
        status = 500;
        goto fail;
    }
    if (sglc_srv_refuse_unsupported(body, err, sizeof err)) goto fail;
    if (s->p.skip_tokenizer_init) {
        snprintf(err, sizeof err,
                 "%s needs the tokenizer, which this server skips (--skip-tokenizer-init): use "
                 "/generate with 'input_ids'",
                 api == API_CHAT ? "/v1/chat/completions" : "/v1/completions");
        goto fail;
    }
    const cJSON *tools = NULL;
    const char *forced_fn = NULL;
    if (api == API_CHAT) {
        int cont = 0;
        if (sglc_srv_opt_bool(body, "continue_final_message", &cont, err, sizeof err) < 0 ||
            parse_tools(c, body, &tools, &forced_fn, err, sizeof err) < 0 ||
            parse_reasoning(c, body, err, sizeof err) < 0)
            goto fail;
        sglc_chat_template_span *spans = NULL;
        size_t n_spans = 0;
        int trc = sglc_srv_render_chat(s, body, tools, cont, &prompt, &spans, &n_spans, err,
                                       sizeof err) ||
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
        c->echo = r && b;
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
                                "seed", def_max, &rp, &has_max, err, sizeof err) ||
        sglc_srv_parse_response_format(c, body, &c->grammar, err, sizeof err) < 0)
        goto fail;
    if (c->tool_forced) {
        /* tool_choice "required" / a named function: the answer is held to the calls' schema */
        if (c->grammar) {
            snprintf(err, sizeof err,
                     "'tool_choice' %s conflicts with 'response_format' / 'json_schema' / "
                     "'regex' / 'ebnf'",
                     forced_fn ? "naming a function" : "\"required\"");
            goto fail;
        }
        cJSON *sch = sglc_tool_choice_schema(tools, forced_fn);
        char *src = sch ? cJSON_PrintUnformatted(sch) : NULL;
        cJSON_Delete(sch);
        char gerr[600];
        int grc = src ? sglc_engine_grammar_compile(e, SGLC_GRAMMAR_JSON_SCHEMA, src, strlen(src),
                                                    &c->grammar, gerr, sizeof gerr)
                      : -1;
        free(src);
        if (grc != 0) {
            snprintf(err, sizeof err,
                     "'tools': the function parameters are not a schema sglc can "
                     "enforce: %s",
                     src ? gerr : "out of memory");
            goto fail;
        }
    }
    rp.grammar = c->grammar;
    if ((int64_t)n_ids + rp.max_new_tokens > ctx) {
        sglc_context_error(n_ids, rp.max_new_tokens, ctx, err, sizeof err);
        goto fail;
    }
    for (int q = 1; q < pl.n; q++)
        if ((int64_t)pl.len[q] + rp.max_new_tokens > ctx) {
            char cerr[600];
            sglc_context_error(pl.len[q], rp.max_new_tokens, ctx, cerr, sizeof cerr);
            snprintf(err, sizeof err, "'prompt'[%d]: %s", q, cerr);
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
        if (sglc_srv_opt_bool(so, "continuous_usage_stats", &b, err, sizeof err) < 0) goto fail;
        c->continuous_usage =
            sglc_srv_opt_bool(so, "continuous_usage_stats", &b, err, sizeof err) > 0 && b;
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
    if (c->echo) {
        /* OpenAI's echo + logprobs scores the prompt too: prompt logprobs from position 0 */
        if (c->return_logprob) rp.logprob_start_len = 0;
        /* the prompt text, as the tokens decode (what OpenAI echoes) */
        int np = pl.n > 0 ? pl.n : 1;
        c->echo_texts = calloc((size_t)np, sizeof *c->echo_texts);
        c->n_echo = np;
        for (int q = 0; c->echo_texts && q < np; q++) {
            const int32_t *pid = pl.n > 0 ? pl.ids[q] : ids;
            int32_t plen = pl.n > 0 ? pl.len[q] : n_ids;
            size_t need = sglc_engine_detokenize(e, pid, (size_t)plen, 1, NULL, 0);
            if (!(c->echo_texts[q] = malloc(need + 1))) break;
            sglc_engine_detokenize(e, pid, (size_t)plen, 1, c->echo_texts[q], need);
            c->echo_texts[q][need] = 0;
        }
        for (int q = 0; q < np; q++)
            if (!c->echo_texts || !c->echo_texts[q]) {
                snprintf(err, sizeof err, "out of memory");
                status = 500;
                goto fail;
            }
    }
    if (api == API_CHAT && sglc_srv_chat_alloc(c, c->n_per_prompt)) {
        snprintf(err, sizeof err, "out of memory");
        status = 500;
        goto fail;
    }
    sglc_srv_make_ids(c, api == API_CHAT ? "chatcmpl-" : "cmpl-", NULL);
    if (pl.n > 0)
        status = sglc_srv_submit_all(c, pl.n, pl.ids, pl.len, &rp, 1, err, sizeof err);
    else
        status = sglc_srv_submit_all(c, 1, &ids, &n_ids, &rp, 1, err, sizeof err);
    if (status != 0) goto fail;
    if (rp.logprob_start_len >= 0) { /* echo's logprobs name the prompt's tokens */
        if (pl.n == 0 && sglc_srv_prompts_alloc(&pl, 1, err, sizeof err) == 0) {
            pl.ids[0] = ids;
            pl.len[0] = n_ids;
            ids = NULL;
        }
        if (pl.n > 0) sglc_srv_keep_prompts(c, &pl);
    }
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

enum MHD_Result sglc_srv_handle_models(conn_ctx *c, const char *id) {
    server *s = c->srv;
    if (id && strcmp(id, s->model_name) != 0) {
        char msg[700];
        snprintf(msg, sizeof msg, "The model '%.300s' does not exist (this server serves '%.300s')",
                 id, s->model_name);
        return sglc_srv_send_error(c->conn, 404, msg);
    }
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", s->model_name);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)(long long)time(NULL));
    cJSON_AddStringToObject(m, "owned_by", "sglc");
    cJSON_AddStringToObject(m, "root", s->info.model_path);
    cJSON_AddNumberToObject(m, "max_model_len", s->info.context_length);
    if (id) return sglc_srv_send_json(c->conn, MHD_HTTP_OK, m);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "object", "list");
    cJSON *d = cJSON_AddArrayToObject(j, "data");
    cJSON_AddItemToArray(d, m);
    return sglc_srv_send_json(c->conn, MHD_HTTP_OK, j);
}
