/* The public engine API (include/sglc.h): opening the model and the KV pool, submitting
 * requests, waiting on their mailboxes, aborting, stats. Every function here may be called
 * from any thread; only the scheduler thread (scheduler.c) touches model state. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "engine/engine_impl.h"
#include "formats/gguf.h"
#include "quant/ggml_types.h"

sglc_grammar *sglc_engine_grammar_ref(const sglc_grammar *g); /* engine_grammar.c */

/* --max-running-requests when not given: 64 on the CPU devices (a batch there is bound by
 * its arithmetic); on a GPU, as SGLang sizes it, from the KV pool: one request per 1,024 pool
 * tokens, at least 64 and at most 512 (the largest measured, BENCHMARKS.md session 13: the
 * 8B-shaped offline run on the H200 at 512; with 64 it did not finish 1,000 requests in 100 s) */
static int32_t auto_max_running(const sglc_backend *be, int32_t pool) {
    if (strcmp(be->ops->name, "cuda") != 0) return 64;
    const int32_t n = pool / 1024;
    return n < 64 ? 64 : n > 512 ? 512 : n;
}

/* --chunked-prefill-size when not given: 2048 on the CPU devices; on a GPU, SGLang's choice by
 * device memory (server_args.py): 2048 below 35 GiB (A10, L40, 4090), 8192 below 160 GiB
 * (A100, H100, H200), 16384 above (B200, MI300). A larger chunk runs its products at a
 * larger, more efficient size (8B shape on the H200: 8,192-token prefill steps at 497 TFLOP/s,
 * BENCHMARKS.md session 14); the activations it needs are a few hundred MB there. */
static int32_t auto_chunked_prefill(sglc_backend *be) {
    size_t free_b = 0, total_b = 0;
    if (strcmp(be->ops->name, "cuda") != 0 || !be->ops->mem_info ||
        be->ops->mem_info(be, &free_b, &total_b) != 0 || total_b == 0)
        return 2048;
    const double gib = (double)total_b / (1024.0 * 1024.0 * 1024.0);
    return gib < 35 ? 2048 : gib < 160 ? 8192 : 16384;
}

void sglc_engine_params_default(sglc_engine_params *p) {
    memset(p, 0, sizeof *p);
    p->device = NULL;
    p->mem_fraction_static = 0.0;
    p->max_running_requests = 0; /* chosen at open (auto_max_running) */
    p->chunked_prefill_size = 0; /* chosen at open (auto_chunked_prefill) */
    p->max_prefill_tokens = 16384;
    p->schedule_policy = SGLC_SCHEDULE_FCFS;
    p->decode_log_interval = 40;
    /* off on the CPU devices: a long prefill chunk of a large model can take minutes there
     * (SGLang's 300 s default is for GPUs, where the GPU backend sets it) */
    p->watchdog_timeout_s = 0;
}

void sglc_request_params_default(sglc_request_params *p) {
    memset(p, 0, sizeof *p);
    p->temperature = 1.0f;
    p->top_k = -1;
    p->top_p = 1.0f;
    p->repetition_penalty = 1.0f;
    p->max_new_tokens = 128;
    p->skip_special_tokens = 1;
    p->logprob_start_len = -1;
}

static void say_info(const char *line) {
    sglc_log(SGLC_LOG_INFO, "%s", line);
}

/* Free memory of the engine's device (the backend's mem_info; 4 GiB when it cannot tell). */
static long long mem_available_bytes(sglc_backend *be) {
    size_t free_b = 0, total_b = 0;
    if (be->ops->mem_info && be->ops->mem_info(be, &free_b, &total_b) == 0 && free_b > 0)
        return (long long)free_b;
    return 4LL << 30;
}

/* The KV pool from --mem-fraction-static. On the CPU the fraction is of the RAM available
 * now (0.2 by default). On a GPU it is SGLang's: weights and KV pool together take that share
 * of the card (0.88 by default), so the pool is the free memory after the weights less the
 * (1 - fraction) of the card left to activations, graphs and other processes. */
static long long kv_pool_tokens(sglc_engine *e, long long per_token) {
    int gpu = strcmp(e->be->ops->name, "cuda") == 0;
    double frac = e->params.mem_fraction_static > 0 ? e->params.mem_fraction_static
                  : gpu                             ? 0.88
                                                    : 0.2;
    e->params.mem_fraction_static = frac; /* reported by /get_server_info */
    if (!gpu) return (long long)(frac * (double)mem_available_bytes(e->be)) / per_token;
    size_t free_b = 0, total_b = 0;
    if (!e->be->ops->mem_info || e->be->ops->mem_info(e->be, &free_b, &total_b) != 0) return 0;
    double rest = (double)free_b - (double)total_b * (1.0 - frac);
    return rest > 0 ? (long long)(rest / (double)per_token) : 0;
}

void sglc_engine_close(sglc_engine *e) {
    if (!e) return;
    if (e->sched_thread) {
        pthread_mutex_lock(&e->qmu);
        e->stopping = 1;
        pthread_cond_broadcast(&e->qcv);
        pthread_mutex_unlock(&e->qmu);
        pthread_join(e->sched_thread, NULL);
    }
    if (e->compute_thread) {
        pthread_mutex_lock(&e->cmu);
        e->compute_stop = 1;
        pthread_cond_broadcast(&e->ccv);
        pthread_mutex_unlock(&e->cmu);
        pthread_join(e->compute_thread, NULL);
    }
    if (e->watchdog_started) {
        pthread_mutex_lock(&e->wmu);
        e->watchdog_stop = 1;
        pthread_cond_broadcast(&e->wcv);
        pthread_mutex_unlock(&e->wmu);
        pthread_join(e->watchdog_thread, NULL);
    }
    /* requests submitted after the scheduler left */
    while (e->q_head) {
        sglc_request *r = e->q_head;
        e->q_head = r->next;
        pthread_mutex_lock(&r->mu);
        r->pub_finished = 1;
        r->finish_reason = SGLC_FINISH_ABORT;
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->mu);
        sglc_request_unref(r);
    }
    sglc_scheduler_free(e);
    free(e->table_free);
    free(e->pen_free);
    free(e->eog_ids);
    pthread_mutex_destroy(&e->pen_mu);
    sglc_engine_grammar_free(e);
    pthread_mutex_destroy(&e->gmu);
    sglc_sampler_free(&e->sampler);
    sglc_radix_close(e->radix);
    sglc_kv_pool_close(e->pool);
    sglc_model_state_close(e->st);
    sglc_tokenizer_close(e->tok);
    sglc_model_close(e->model);
    sglc_backend_close(e->be);
    pthread_mutex_destroy(&e->qmu);
    pthread_cond_destroy(&e->qcv);
    pthread_cond_destroy(&e->flush_cv);
    pthread_mutex_destroy(&e->cmu);
    pthread_cond_destroy(&e->ccv);
    pthread_mutex_destroy(&e->smu);
    pthread_mutex_destroy(&e->wmu);
    pthread_cond_destroy(&e->wcv);
    free(e);
}

/* The model's own tokenizer, or --tokenizer-path's: a GGUF file's vocabulary or a folder with
 * tokenizer.json (SGLang's --tokenizer-path). Its vocabulary must fit the model's. */
static int open_tokenizer(sglc_engine *e, const char *path, sglc_err *se) {
    if (!path || strcmp(path, e->model_path) == 0)
        return e->model->gguf ? sglc_tokenizer_open_gguf(&e->tok, e->model->gguf, se)
                              : sglc_tokenizer_open_hf(&e->tok, e->model_path, se);
    struct stat stb;
    if (stat(path, &stb) != 0)
        return sglc_err_set(se, SGLC_ERR_IO, "--tokenizer-path %s: %s", path, strerror(errno));
    if (S_ISDIR(stb.st_mode)) return sglc_tokenizer_open_hf(&e->tok, path, se);
    sglc_gguf *g = NULL;
    int rc = sglc_gguf_open(&g, path, se);
    if (rc == 0) rc = sglc_tokenizer_open_gguf(&e->tok, g, se);
    sglc_gguf_close(g);
    return rc;
}

/* --watchdog-timeout: the scheduler stamps the start of every forward step; a step that runs
 * past the timeout means a stuck device or kernel, from which nothing in the process recovers,
 * so the process ends as SGLang's watchdog ends it (a supervisor restarts it). */
static void *watchdog_main(void *arg) {
    sglc_engine *e = arg;
    const double limit = e->params.watchdog_timeout_s;
    pthread_mutex_lock(&e->wmu);
    while (!e->watchdog_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        double tick = limit / 4 < 1.0 ? limit / 4 : 1.0;
        long long ns = ts.tv_nsec + (long long)(tick * 1e9);
        ts.tv_sec += (time_t)(ns / 1000000000LL);
        ts.tv_nsec = (long)(ns % 1000000000LL);
        pthread_cond_timedwait(&e->wcv, &e->wmu, &ts);
        double t0 = atomic_load(&e->step_started_s);
        if (!e->watchdog_stop && t0 > 0 && sglc_engine_now() - t0 > limit) {
            sglc_log(SGLC_LOG_ERROR,
                     "watchdog: a forward step has run for %.1f s, past --watchdog-timeout %g; "
                     "the device or a kernel is stuck: ending the process",
                     sglc_engine_now() - t0, limit);
            abort();
        }
    }
    pthread_mutex_unlock(&e->wmu);
    return NULL;
}

void sglc_context_error(int32_t n_input, int32_t max_new, int32_t context, char *err,
                        size_t errlen) {
    /* SGLang's wording (tokenizer_manager._validate_input_length / serving_chat), which clients
     * match on */
    if (n_input >= context)
        snprintf(err, errlen,
                 "The input (%d tokens) is longer than the model's context length (%d tokens).",
                 n_input, context);
    else
        snprintf(err, errlen,
                 "Requested token count exceeds the model's maximum context length of %d tokens. "
                 "You requested a total of %lld tokens: %d tokens from the input messages and %d "
                 "tokens for the completion. Please reduce the number of tokens in the input "
                 "messages or the completion to fit within the limit.",
                 context, (long long)n_input + max_new, n_input, max_new);
}

int sglc_engine_open(sglc_engine **out, const sglc_engine_params *pin, char *err, size_t errlen) {
    *out = NULL;
    sglc_engine *e = calloc(1, sizeof *e);
    if (!e) {
        snprintf(err, errlen, "out of memory");
        return SGLC_ERR_NOMEM;
    }
    e->params = *pin;
    sglc_engine_params *p = &e->params;
    pthread_mutex_init(&e->qmu, NULL);
    pthread_cond_init(&e->qcv, NULL);
    pthread_cond_init(&e->flush_cv, NULL);
    pthread_mutex_init(&e->cmu, NULL);
    pthread_cond_init(&e->ccv, NULL);
    pthread_mutex_init(&e->smu, NULL);
    pthread_mutex_init(&e->wmu, NULL);
    pthread_cond_init(&e->wcv, NULL);
    pthread_mutex_init(&e->gmu, NULL);
    pthread_mutex_init(&e->pen_mu, NULL);
    sglc_err se = {{0}};
    int rc = SGLC_ERR_ARG;
    if (!p->model_path) {
        snprintf(err, errlen, "no model path");
        goto fail;
    }
    snprintf(e->model_path, sizeof e->model_path, "%s", p->model_path);
    p->model_path = e->model_path;
    if (p->tokenizer_path && strcmp(p->tokenizer_path, p->model_path) != 0) {
        snprintf(e->tokenizer_path, sizeof e->tokenizer_path, "%s", p->tokenizer_path);
        p->tokenizer_path = e->tokenizer_path;
    } else {
        p->tokenizer_path = NULL;
    }
    /* keep no pointer into the caller's memory past open */
    int qbits = sglc_quant_preset_bits(p->quantization);
    if (qbits < 0) {
        snprintf(err, errlen, "--quantization: unknown method '%s' (mlx_q4, mlx_q8)",
                 p->quantization);
        goto fail;
    }
    p->quantization = qbits == 4 ? "mlx_q4" : qbits == 8 ? "mlx_q8" : NULL;
    if (p->max_running_requests < 0 || p->max_running_requests > 4096) {
        snprintf(err, errlen, "--max-running-requests must be in [1, 4096]");
        goto fail;
    }
    if (p->chunked_prefill_size < -1 || p->max_prefill_tokens <= 0) {
        snprintf(err, errlen,
                 "--chunked-prefill-size must be -1 or positive and "
                 "--max-prefill-tokens positive");
        goto fail;
    }
    if (!(p->mem_fraction_static >= 0.0 && p->mem_fraction_static < 1.0)) {
        snprintf(err, errlen, "--mem-fraction-static must be in (0, 1)");
        goto fail;
    }
    sglc_model_load_params lp = {.path = e->model_path,
                                 .device = p->device,
                                 .quantization = p->quantization,
                                 .n_threads = p->n_threads,
                                 .disable_cuda_graph = p->disable_cuda_graph,
                                 .cuda_graph_max_bs = p->cuda_graph_max_bs,
                                 .deterministic = p->enable_deterministic_inference,
                                 .tp_size = p->tp_size,
                                 .base_gpu_id = p->base_gpu_id,
                                 .gpu_id_step = p->gpu_id_step,
                                 .say = say_info};
    if ((rc = sglc_model_load(&e->be, &e->model, &lp, &se)) != 0 ||
        (rc = open_tokenizer(e, p->tokenizer_path, &se)) != 0) {
        snprintf(err, errlen, "%s", se.msg);
        goto fail;
    }
    if (sglc_tokenizer_vocab_size(e->tok) > e->model->cfg.n_vocab) {
        snprintf(err, errlen, "%s: tokenizer has %d tokens but the model only %d", e->model_path,
                 sglc_tokenizer_vocab_size(e->tok), e->model->cfg.n_vocab);
        rc = SGLC_ERR_FORMAT;
        goto fail;
    }
    const sglc_model_config *c = &e->model->cfg;
    e->context_length = p->context_length > 0 ? p->context_length : c->n_ctx_train;
    if (e->context_length > c->n_ctx_train)
        sglc_log(SGLC_LOG_WARN, "context length %d exceeds the model's trained %d",
                 e->context_length, c->n_ctx_train);
    /* K and V per layer, in the cache's element type (f16 by default). Tensor parallel: a GPU
     * holds its rank's KV heads; CPU ranks share one memory, so all of theirs count */
    long long kv_heads = c->n_head_kv;
    if (e->model->tp_size > 1)
        kv_heads = (long long)e->model->tp_n_head_kv *
                   (strcmp(e->be->ops->name, "cuda") == 0 ? 1 : e->model->tp_size);
    long long per_token =
        2LL * c->n_layer * kv_heads * c->head_dim * (c->kv_type == SGLC_GGML_TYPE_F16 ? 2LL : 4LL);
    long long pool = p->max_total_tokens > 0 ? p->max_total_tokens : kv_pool_tokens(e, per_token);
    if (pool > (1LL << 22)) pool = 1LL << 22;
    if (pool < 16) {
        snprintf(err, errlen,
                 "KV pool of %lld tokens is too small (raise --max-total-tokens or "
                 "--mem-fraction-static)",
                 pool);
        rc = SGLC_ERR_ARG;
        goto fail;
    }
    e->pool_size = (int32_t)pool;
    e->max_running = p->max_running_requests > 0 ? p->max_running_requests
                                                 : auto_max_running(e->be, e->pool_size);
    if (p->chunked_prefill_size == 0) p->chunked_prefill_size = auto_chunked_prefill(e->be);
    int32_t chunk = p->chunked_prefill_size > 0 ? p->chunked_prefill_size : p->max_prefill_tokens;
    if (chunk > p->max_prefill_tokens) chunk = p->max_prefill_tokens;
    e->max_step_tokens = chunk > e->max_running ? chunk : e->max_running;
    sglc_model_state_limits lim = {.max_tokens = e->max_step_tokens,
                                   .max_logits = e->max_running,
                                   .kv_slots = e->pool_size,
                                   /* a finished request keeps its row until the step in flight
                                    * that still carries it is processed, while a new one takes
                                    * its place: twice the running requests at most */
                                   .table_rows = 2 * e->max_running,
                                   .table_stride = e->context_length};
    if ((rc = sglc_model_state_open(&e->st, e->model, &lim, &se)) != 0) {
        snprintf(err, errlen, "%s", se.msg);
        goto fail;
    }
    if (sglc_kv_pool_open(&e->pool, e->pool_size) != 0 ||
        (!p->disable_radix_cache && sglc_radix_open(&e->radix, e->pool) != 0) ||
        sglc_sampler_init(&e->sampler, c->n_vocab) != 0 || sglc_gscratch_open(&e->gscratch) != 0 ||
        !(e->gmask = calloc(((size_t)c->n_vocab + 31) / 32, sizeof *e->gmask))) {
        snprintf(err, errlen, "out of memory");
        rc = SGLC_ERR_NOMEM;
        goto fail;
    }
    e->table_free = malloc(2 * (size_t)e->max_running * sizeof(int32_t));
    e->pen_free = malloc(2 * (size_t)e->max_running * sizeof(int32_t));
    e->eog_ids = malloc((size_t)c->n_vocab * sizeof(int32_t));
    if (!e->table_free || !e->pen_free || !e->eog_ids) {
        snprintf(err, errlen, "out of memory");
        rc = SGLC_ERR_NOMEM;
        goto fail;
    }
    /* rows of the slot and penalty tables: see table_rows above */
    for (int32_t i = 0; i < 2 * e->max_running; i++)
        e->table_free[i] = e->pen_free[i] = 2 * e->max_running - 1 - i;
    e->n_table_free = e->n_pen_free = 2 * e->max_running;
    for (int32_t t = 0; t < c->n_vocab; t++)
        if (sglc_tokenizer_is_eog(e->tok, t)) e->eog_ids[e->n_eog++] = t;
    if ((rc = sglc_scheduler_init(e, err, errlen)) != 0) goto fail;
    e->stats.kv_pool_size = e->pool_size;
    sglc_log(SGLC_LOG_INFO,
             "KV pool: %d tokens (%.1f MB), max running requests %d, context length %d, "
             "chunked prefill %d, radix cache %s, overlap schedule %s",
             e->pool_size, (double)sglc_model_state_kv_bytes(e->st) / 1e6, e->max_running,
             e->context_length, p->chunked_prefill_size, e->radix ? "on" : "off",
             p->disable_overlap_schedule ? "off" : "on");
    if (!p->disable_overlap_schedule &&
        pthread_create(&e->compute_thread, NULL, sglc_compute_main, e) != 0) {
        snprintf(err, errlen, "cannot start the compute thread");
        rc = SGLC_ERR_NOMEM;
        goto fail;
    }
    if (p->watchdog_timeout_s > 0) {
        if (pthread_create(&e->watchdog_thread, NULL, watchdog_main, e) != 0) {
            snprintf(err, errlen, "cannot start the watchdog thread");
            rc = SGLC_ERR_NOMEM;
            goto fail;
        }
        e->watchdog_started = 1;
    }
    if (pthread_create(&e->sched_thread, NULL, sglc_scheduler_main, e) != 0) {
        snprintf(err, errlen, "cannot start the scheduler thread");
        rc = SGLC_ERR_NOMEM;
        goto fail;
    }
    *out = e;
    return SGLC_OK;
fail:
    sglc_engine_close(e);
    return rc < 0 ? rc : SGLC_ERR_ARG;
}

static void request_free(sglc_request *r) {
    if (r->stop_strs)
        for (int32_t i = 0; i < r->params.n_stop; i++)
            free(r->stop_strs[i]);
    free(r->stop_strs);
    free(r->stop_ids);
    free(r->bias_ids);
    free(r->bias_vals);
    free(r->tokens);
    free(r->slots);
    free(r->text);
    free(r->counts);
    free(r->out_ids);
    free(r->out_logprobs);
    free(r->out_top);
    free(r->in_logprobs);
    free(r->in_top);
    free(r->lp_ids);
    free(r->out_ids_lp);
    free(r->pub_text);
    free(r->client_text);
    sglc_gmatcher_free(&r->gm);
    sglc_grammar_release(r->grammar);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}

void sglc_request_unref(sglc_request *r) {
    if (r && atomic_fetch_sub(&r->refs, 1) == 1) request_free(r);
}

int sglc_engine_submit(sglc_engine *e, const int32_t *ids, int32_t n, const sglc_request_params *p,
                       sglc_request *leader, sglc_request **out, char *err, size_t errlen) {
    *out = NULL;
    int32_t V = e->model->cfg.n_vocab;
    if (n <= 0) {
        snprintf(err, errlen, "the prompt is empty");
        return SGLC_ERR_ARG;
    }
    for (int32_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V) {
            snprintf(err, errlen, "input_ids[%d] = %d is outside the vocabulary [0, %d)", i, ids[i],
                     V);
            return SGLC_ERR_ARG;
        }
    if (p->max_new_tokens <= 0) {
        snprintf(err, errlen, "max_new_tokens must be positive");
        return SGLC_ERR_ARG;
    }
    if (p->n_logprob_token_ids < 0 || p->n_logprob_token_ids > SGLC_MAX_LOGPROB_TOKEN_IDS ||
        (p->n_logprob_token_ids > 0 && !p->logprob_token_ids)) {
        snprintf(err, errlen, "token_ids_logprob: at most %d ids", SGLC_MAX_LOGPROB_TOKEN_IDS);
        return SGLC_ERR_ARG;
    }
    for (int32_t i = 0; i < p->n_logprob_token_ids; i++)
        if (p->logprob_token_ids[i] < 0 || p->logprob_token_ids[i] >= V) {
            snprintf(err, errlen,
                     "token_ids_logprob: token id %d is outside the vocabulary [0, %d)",
                     p->logprob_token_ids[i], V);
            return SGLC_ERR_ARG;
        }
    if ((int64_t)n + p->max_new_tokens > e->context_length) {
        sglc_context_error(n, p->max_new_tokens, e->context_length, err, errlen);
        return SGLC_ERR_RANGE;
    }
    if ((int64_t)n + p->max_new_tokens > e->pool_size) {
        snprintf(err, errlen,
                 "the prompt (%d tokens) plus max_new_tokens (%d) can never fit the KV pool of %d "
                 "tokens",
                 n, p->max_new_tokens, e->pool_size);
        return SGLC_ERR_RANGE;
    }
    if (p->top_logprobs_num < 0 || p->top_logprobs_num > 20) {
        snprintf(err, errlen, "top_logprobs_num must be in [0, 20]");
        return SGLC_ERR_ARG;
    }
    for (int32_t i = 0; i < p->n_stop_token_ids; i++)
        if (p->stop_token_ids[i] < 0 || p->stop_token_ids[i] >= V) {
            snprintf(err, errlen, "stop_token_ids[%d] is outside the vocabulary", i);
            return SGLC_ERR_ARG;
        }
    for (int32_t i = 0; i < p->n_stop; i++)
        if (!p->stop[i] || !p->stop[i][0]) {
            snprintf(err, errlen, "stop[%d] is empty", i);
            return SGLC_ERR_ARG;
        }
    if (p->n_logit_bias < 0 || p->n_logit_bias > SGLC_MAX_LOGIT_BIAS ||
        (p->n_logit_bias > 0 && (!p->logit_bias_ids || !p->logit_bias))) {
        snprintf(err, errlen, "logit_bias must have at most %d entries", SGLC_MAX_LOGIT_BIAS);
        return SGLC_ERR_ARG;
    }
    for (int32_t i = 0; i < p->n_logit_bias; i++) {
        if (p->logit_bias_ids[i] < 0 || p->logit_bias_ids[i] >= V) {
            snprintf(err, errlen, "logit_bias: token id %d is outside the vocabulary [0, %d)",
                     p->logit_bias_ids[i], V);
            return SGLC_ERR_ARG;
        }
        if (!isfinite(p->logit_bias[i])) {
            snprintf(err, errlen, "logit_bias[%d]: the bias must be a finite number",
                     p->logit_bias_ids[i]);
            return SGLC_ERR_ARG;
        }
    }
    sglc_request *r = calloc(1, sizeof *r);
    if (!r) goto nomem;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    atomic_init(&r->refs, 2);
    atomic_init(&r->aborted, 0);
    r->engine = e;
    r->params = *p;
    r->n_prompt = n;
    r->matched_stop_token = r->matched_stop_string = -1;
    size_t cap = (size_t)n + (size_t)p->max_new_tokens + 1;
    r->tokens = malloc(cap * sizeof(int32_t));
    r->slots = malloc(cap * sizeof(int32_t));
    r->out_ids = malloc((size_t)p->max_new_tokens * sizeof(int32_t));
    if (!r->tokens || !r->slots || !r->out_ids) goto nomem_r;
    if (p->return_logprob) {
        r->out_logprobs = malloc((size_t)p->max_new_tokens * sizeof(float));
        r->out_top = malloc((size_t)p->max_new_tokens * (size_t)(p->top_logprobs_num + 1) *
                            sizeof(sglc_token_logprob));
        if (!r->out_logprobs || !r->out_top) goto nomem_r;
        if (p->logprob_start_len >= 0 && p->logprob_start_len < n) {
            r->n_in_logprobs = n - p->logprob_start_len;
            r->in_logprobs = malloc((size_t)r->n_in_logprobs * sizeof(float));
            r->in_top = calloc((size_t)r->n_in_logprobs * (size_t)(p->top_logprobs_num + 1),
                               sizeof(sglc_token_logprob));
            if (!r->in_logprobs || !r->in_top) goto nomem_r;
            for (int32_t i = 0; i < r->n_in_logprobs; i++)
                r->in_logprobs[i] = NAN;
        }
        if (p->n_logprob_token_ids > 0) {
            r->lp_ids = malloc((size_t)p->n_logprob_token_ids * sizeof(int32_t));
            r->out_ids_lp =
                malloc((size_t)p->max_new_tokens * (size_t)p->n_logprob_token_ids * sizeof(float));
            if (!r->lp_ids || !r->out_ids_lp) goto nomem_r;
            memcpy(r->lp_ids, p->logprob_token_ids,
                   (size_t)p->n_logprob_token_ids * sizeof(int32_t));
        }
    }
    r->params.logprob_token_ids = r->lp_ids;
    if (!r->lp_ids) r->params.n_logprob_token_ids = 0;
    if (!r->in_logprobs) r->params.logprob_start_len = -1;
    if (p->n_stop_token_ids > 0) {
        r->stop_ids = malloc((size_t)p->n_stop_token_ids * sizeof(int32_t));
        if (!r->stop_ids) goto nomem_r;
        memcpy(r->stop_ids, p->stop_token_ids, (size_t)p->n_stop_token_ids * sizeof(int32_t));
    }
    r->params.stop_token_ids = r->stop_ids;
    if (p->n_logit_bias > 0) {
        r->bias_ids = malloc((size_t)p->n_logit_bias * sizeof(int32_t));
        r->bias_vals = malloc((size_t)p->n_logit_bias * sizeof(float));
        if (!r->bias_ids || !r->bias_vals) goto nomem_r;
        memcpy(r->bias_ids, p->logit_bias_ids, (size_t)p->n_logit_bias * sizeof(int32_t));
        memcpy(r->bias_vals, p->logit_bias, (size_t)p->n_logit_bias * sizeof(float));
    }
    r->params.logit_bias_ids = r->bias_ids;
    r->params.logit_bias = r->bias_vals;
    if (p->n_stop > 0) {
        r->stop_strs = calloc((size_t)p->n_stop, sizeof(char *));
        if (!r->stop_strs) goto nomem_r;
        for (int32_t i = 0; i < p->n_stop; i++) {
            r->stop_strs[i] = strdup(p->stop[i]);
            if (!r->stop_strs[i]) goto nomem_r;
            size_t L = strlen(p->stop[i]);
            if (L > r->max_stop_len) r->max_stop_len = L;
        }
    }
    r->params.stop = (const char *const *)r->stop_strs;
    if (p->grammar) r->grammar = sglc_engine_grammar_ref(p->grammar);
    r->params.grammar = r->grammar;
    memcpy(r->tokens, ids, (size_t)n * sizeof(int32_t));
    r->n_tokens = r->n_fill = n;
    sglc_detok_stream_init(&r->detok);
    r->t_submit = sglc_engine_now();
    if (leader) {
        atomic_fetch_add(&leader->refs, 1);
        r->leader = leader;
    }
    pthread_mutex_lock(&e->qmu);
    if (e->stopping) {
        pthread_mutex_unlock(&e->qmu);
        if (leader) sglc_request_unref(leader);
        r->leader = NULL;
        request_free(r);
        snprintf(err, errlen, "the engine is shutting down");
        return SGLC_ERR_UNSUPPORTED;
    }
    r->id = e->next_id++;
    r->table_row = -1;
    r->pen_row = -1;
    sglc_rng_seed(&r->rng, p->has_seed ? p->seed : e->params.random_seed + (uint64_t)r->id * 7919u);
    if (e->q_tail)
        e->q_tail->next = r;
    else
        e->q_head = r;
    e->q_tail = r;
    e->q_len++;
    pthread_cond_broadcast(&e->qcv);
    pthread_mutex_unlock(&e->qmu);
    *out = r;
    return SGLC_OK;
nomem_r:
    request_free(r);
nomem:
    snprintf(err, errlen, "out of memory");
    return SGLC_ERR_NOMEM;
}

int sglc_request_wait(sglc_request *r, int32_t seen, sglc_output *out, int timeout_ms) {
    pthread_mutex_lock(&r->mu);
    int rc = 0;
    if (timeout_ms < 0) {
        while (r->pub_n_output <= seen && !r->pub_finished)
            pthread_cond_wait(&r->cv, &r->mu);
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += timeout_ms / 1000;
        ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        while (r->pub_n_output <= seen && !r->pub_finished)
            if (pthread_cond_timedwait(&r->cv, &r->mu, &ts) != 0) {
                rc = 1;
                break;
            }
    }
    if (r->client_text_cap < r->pub_text_len + 1) {
        char *nt = realloc(r->client_text, r->pub_text_len + 1);
        if (nt) {
            r->client_text = nt;
            r->client_text_cap = r->pub_text_len + 1;
        }
    }
    size_t tl = r->client_text_cap > r->pub_text_len ? r->pub_text_len : 0;
    if (r->client_text) {
        if (tl) memcpy(r->client_text, r->pub_text, tl);
        r->client_text[tl] = 0;
    }
    memset(out, 0, sizeof *out);
    out->output_ids = r->out_ids;
    out->n_output = r->pub_n_output;
    out->text = r->client_text ? r->client_text : "";
    out->text_len = tl;
    out->logprobs = r->out_logprobs;
    out->top_logprobs = r->out_top;
    if (r->in_logprobs && (r->pub_n_output > 0 || r->pub_finished)) {
        out->input_logprobs = r->in_logprobs;
        out->input_top_logprobs = r->in_top;
        out->n_input_logprobs = r->n_in_logprobs;
        out->input_logprob_start = r->params.logprob_start_len;
    }
    out->token_ids_logprobs = r->out_ids_lp;
    out->finished = r->pub_finished;
    out->finish_reason = r->finish_reason;
    out->matched_stop_token = r->matched_stop_token;
    out->matched_stop_string = r->matched_stop_string;
    out->prompt_tokens = r->n_prompt;
    out->cached_tokens = r->pub_cached_tokens;
    out->ttft_s = r->ttft_s;
    out->e2e_s = r->e2e_s;
    pthread_mutex_unlock(&r->mu);
    return rc;
}

void sglc_request_abort(sglc_request *r) {
    atomic_store(&r->aborted, 1);
    sglc_engine *e = r->engine;
    pthread_mutex_lock(&e->qmu);
    pthread_cond_broadcast(&e->qcv);
    pthread_mutex_unlock(&e->qmu);
}

void sglc_request_release(sglc_request *r) {
    if (!r) return;
    sglc_request_abort(r);
    sglc_request_unref(r);
}

int64_t sglc_request_id(const sglc_request *r) {
    return r->id;
}

void sglc_engine_get_stats(sglc_engine *e, sglc_engine_stats *s) {
    pthread_mutex_lock(&e->smu);
    *s = e->stats;
    pthread_mutex_unlock(&e->smu);
}

int sglc_engine_flush_cache(sglc_engine *e) {
    pthread_mutex_lock(&e->qmu);
    e->flush_requested = 1;
    pthread_cond_broadcast(&e->qcv);
    while (e->flush_requested && !e->stopping)
        pthread_cond_wait(&e->flush_cv, &e->qmu);
    int rc = e->flush_result;
    pthread_mutex_unlock(&e->qmu);
    return rc;
}

void sglc_engine_get_model_info(sglc_engine *e, sglc_model_info *o) {
    const sglc_model_config *c = &e->model->cfg;
    memset(o, 0, sizeof *o);
    o->model_path = e->model_path;
    o->tokenizer_path = e->tokenizer_path[0] ? e->tokenizer_path : NULL;
    o->arch = sglc_arch_name(c->arch);
    o->chat_template = sglc_tokenizer_chat_template(e->tok);
    o->n_layer = c->n_layer;
    o->n_embd = c->n_embd;
    o->n_head = c->n_head;
    o->n_head_kv = c->n_head_kv;
    o->vocab_size = c->n_vocab;
    o->context_length = e->context_length;
    o->context_length_train = c->n_ctx_train;
    o->kv_pool_size = e->pool_size;
    o->weight_bytes = e->model->weight_bytes;
    o->bos_id = sglc_tokenizer_bos(e->tok);
    o->eos_id = sglc_tokenizer_eos(e->tok);
    o->add_bos = sglc_tokenizer_add_bos(e->tok);
    o->max_running_requests = e->max_running;
    o->chunked_prefill_size = e->params.chunked_prefill_size;
}

int64_t sglc_engine_tokenize(sglc_engine *e, const char *text, size_t len, int parse_special,
                             int add_bos, int32_t *ids, size_t cap) {
    return sglc_tokenizer_encode(e->tok, text, len, parse_special, add_bos, ids, cap);
}

size_t sglc_engine_detokenize(sglc_engine *e, const int32_t *ids, size_t n, int skip_special,
                              char *out, size_t cap) {
    int32_t V = sglc_tokenizer_vocab_size(e->tok);
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V) return 0;
    return sglc_tokenizer_decode(e->tok, ids, n, skip_special, out, cap);
}

const char *sglc_engine_token_text(sglc_engine *e, int32_t id, size_t *len) {
    return sglc_tokenizer_token_bytes(e->tok, id, len);
}

int sglc_engine_is_eog(sglc_engine *e, int32_t id) {
    return sglc_tokenizer_is_eog(e->tok, id);
}
