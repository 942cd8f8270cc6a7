/* The scheduler: one thread that alone owns the model state, the KV pool and the radix cache.
 *
 * Each iteration takes new requests from the submission queue, drops aborted ones, and builds
 * one step: a prefill batch when waiting requests can be admitted (radix prefix match, chunked
 * prefill under --chunked-prefill-size / --max-prefill-tokens, KV admission with eviction),
 * otherwise a decode batch of every running request (retracting one to recompute later when the
 * pool runs dry). A step is a flat batch description (backend.h, built by engine/batch.h: a
 * request's slots go into its row of the slot table the model state keeps, only the new ones
 * each step) plus, per logit row, the request that samples from it. Sampling is a backend op
 * (the sample op): the host describes each row (parameters, the draw from the request's
 * generator, bias and grammar-mask rows) and gets back only ids and requested logprobs.
 *
 * Overlap scheduling: a compute thread runs forward + sampling of step N while this thread
 * processes the results of step N-1 (detokenization, stop checks, mailboxes, KV release) and
 * builds step N+1. A decode input whose token is still being sampled is a placeholder
 * (token_src = row of the previous step) that the embed op reads from the ids the previous
 * sample op left in backend memory. Requests that finish at step N may ride along in step
 * N+1; that token is dropped.
 * With --disable-overlap-schedule the same functions run one after the other on this thread,
 * and both modes give identical tokens: sampling state (random generator, penalty counts) is
 * advanced only by the compute side, in step order. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/batch.h"
#include "engine/engine_impl.h"

struct step {
    sglc_batch_builder bb;  /* the batch description (engine/batch.h) */
    sglc_request **seq_req; /* per sequence */
    sglc_request **row_req; /* per logit row */
    int32_t *sampled;       /* per logit row */
    uint8_t *grammar_done;  /* per logit row: the token completed the request's grammar */
    float *row_logprob;
    sglc_token_logprob *row_top; /* [row][SGLC_SAMPLE_TOP_MAX] */
    uint8_t *row_prompt;         /* per logit row: a prompt position's logprob, not a sample */
    int32_t *row_pos;            /* prompt rows: the position whose next token is scored */
    float *row_ids_lp;           /* [row][SGLC_MAX_LOGPROB_TOKEN_IDS]: token_ids_logprob */
    sglc_request **mask_req;     /* per logit row: the request whose grammar masks it, or NULL */
    /* the sampling description handed to the sample op (compute side) */
    sglc_sample_row *srows;
    uint32_t *masks; /* [max_running][mask words] */
    int32_t *bias_ids, *lp_ids;
    float *bias;
    int32_t cap_bias, cap_lp_ids;
    int is_prefill;
    int32_t n_cached_new, n_new_seqs;
    int64_t number; /* steps are double-buffered: identity is the number, not the buffer */
    int ok;
};

#define S_TOKENS(s) ((s)->bb.b.n_tokens)
#define S_SEQS(s) ((s)->bb.b.n_seqs)
#define S_LOGITS(s) ((s)->bb.b.n_logits)

double sglc_engine_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void step_free(step *s) {
    if (!s) return;
    sglc_bb_free(&s->bb);
    free(s->seq_req), free(s->row_req), free(s->sampled), free(s->row_logprob);
    free(s->row_top), free(s->grammar_done), free(s->row_prompt), free(s->row_pos);
    free(s->row_ids_lp), free(s->mask_req), free(s->srows), free(s->masks), free(s->bias_ids);
    free(s->bias), free(s->lp_ids), free(s);
}

static step *step_new(sglc_engine *e) {
    step *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    size_t R = (size_t)e->max_running, words = ((size_t)e->model->cfg.n_vocab + 31) / 32;
    int ok = sglc_bb_init(&s->bb, e->max_step_tokens, e->max_running, e->max_running,
                          e->context_length) == 0;
    s->seq_req = malloc(R * sizeof(sglc_request *));
    s->row_req = malloc(R * sizeof(sglc_request *));
    s->sampled = malloc(R * sizeof(int32_t));
    s->row_logprob = malloc(R * sizeof(float));
    s->row_top = malloc(R * SGLC_SAMPLE_TOP_MAX * sizeof(sglc_token_logprob));
    s->grammar_done = malloc(R);
    s->row_prompt = calloc(R, 1);
    s->row_pos = malloc(R * sizeof(int32_t));
    s->row_ids_lp = malloc(R * SGLC_MAX_LOGPROB_TOKEN_IDS * sizeof(float));
    s->mask_req = malloc(R * sizeof(sglc_request *));
    s->srows = malloc(R * sizeof(sglc_sample_row));
    s->masks = malloc(R * words * sizeof(uint32_t));
    if (!ok || !s->seq_req || !s->row_req || !s->sampled || !s->row_logprob || !s->row_top ||
        !s->grammar_done || !s->row_prompt || !s->row_pos || !s->row_ids_lp || !s->mask_req ||
        !s->srows || !s->masks) {
        step_free(s);
        return NULL;
    }
    return s;
}

/* ------------------------------------------------------------------ compute side */

/* grows a step's list of bias entries (or token_ids_logprob ids) to hold `need` */
static int grow_list(int32_t **ids, float **vals, int32_t *cap, int32_t need) {
    if (need <= *cap) return 0;
    int32_t cap2 = *cap ? *cap : 256;
    while (cap2 < need)
        cap2 *= 2;
    int32_t *ni = realloc(*ids, (size_t)cap2 * sizeof **ids);
    if (!ni) return -1;
    *ids = ni;
    if (vals) {
        float *nv = realloc(*vals, (size_t)cap2 * sizeof **vals);
        if (!nv) return -1;
        *vals = nv;
    }
    *cap = cap2;
    return 0;
}

/* r's row of the backend's penalty tables, taken and loaded at its first penalized sample
 * after admission (its counts survive a retraction on the host); -1 when out of memory. */
static int32_t penalty_row(sglc_engine *e, sglc_request *r) {
    if (r->pen_row >= 0) return r->pen_row;
    sglc_err err = {{0}};
    if (!e->pen_open) {
        if (sglc_model_penalty_open(e->st, 2 * e->max_running, &err) != 0) {
            sglc_log(SGLC_LOG_ERROR, "penalties off: %s", err.msg);
            return -1;
        }
        e->pen_open = 1;
    }
    pthread_mutex_lock(&e->pen_mu);
    int32_t row = e->n_pen_free > 0 ? e->pen_free[--e->n_pen_free] : -1;
    pthread_mutex_unlock(&e->pen_mu);
    SGLC_ASSERT(row >= 0); /* one row per request running or not yet reaped */
    if (sglc_model_penalty_load(e->st, row, r->counts, r->tokens, r->n_prompt, &err) != 0) {
        sglc_log(SGLC_LOG_ERROR, "request %lld: penalties off: %s", (long long)r->id, err.msg);
        pthread_mutex_lock(&e->pen_mu);
        e->pen_free[e->n_pen_free++] = row;
        pthread_mutex_unlock(&e->pen_mu);
        return -1;
    }
    r->pen_row = row;
    return row;
}

/* Gives r's penalty row back, keeping its counts on the host when it will run again. */
static void penalty_release(sglc_engine *e, sglc_request *r, int keep_counts) {
    if (r->pen_row < 0) return;
    if (keep_counts) {
        if (!r->counts) r->counts = calloc((size_t)e->model->cfg.n_vocab, sizeof(int32_t));
        sglc_err err = {{0}};
        if (r->counts) (void)sglc_model_penalty_save(e->st, r->pen_row, r->counts, &err);
    }
    pthread_mutex_lock(&e->pen_mu);
    e->pen_free[e->n_pen_free++] = r->pen_row;
    pthread_mutex_unlock(&e->pen_mu);
    r->pen_row = -1;
}

/* The sample op's row for a sampled logit row: SGLang's sampling parameters, the draw from the
 * request's generator (only when the row samples, so the sequence of draws is the same as
 * ever), penalties, the logit bias with eos/stop ids suppressed under min_new_tokens, the
 * grammar mask and the logprobs asked for. 0, or -1 when out of memory. */
static int sample_row_desc(sglc_engine *e, step *s, int32_t row, sglc_sample_desc *d) {
    sglc_request *r = s->row_req[row];
    const sglc_request_params *p = &r->params;
    int32_t V = e->model->cfg.n_vocab;
    sglc_sample_row *sr = &s->srows[row];
    *sr = (sglc_sample_row){.temperature = p->temperature,
                            .top_k = p->top_k,
                            .top_p = p->top_p,
                            .min_p = p->min_p,
                            .frequency_penalty = p->frequency_penalty,
                            .presence_penalty = p->presence_penalty,
                            .repetition_penalty = p->repetition_penalty,
                            .penalty_row = -1,
                            .mask_row = -1,
                            .forced = -1};
    sglc_sampling_params sp = {.temperature = p->temperature, .top_k = p->top_k};
    if (sglc_sample_draws(&sp)) sr->uniform = sglc_rng_uniform(&r->rng);
    if (p->frequency_penalty != 0.0f || p->presence_penalty != 0.0f ||
        p->repetition_penalty != 1.0f)
        sr->penalty_row = penalty_row(e, r);
    int suppress = r->n_sampled < p->min_new_tokens;
    int32_t nb = p->n_logit_bias + (suppress ? e->n_eog + p->n_stop_token_ids : 0);
    if (grow_list(&s->bias_ids, &s->bias, &s->cap_bias, d->n_bias_total + nb) != 0) return -1;
    sr->bias_start = d->n_bias_total;
    for (int32_t i = 0; i < p->n_logit_bias; i++) {
        s->bias_ids[d->n_bias_total] = p->logit_bias_ids[i];
        s->bias[d->n_bias_total++] = p->logit_bias[i];
    }
    if (suppress) {
        for (int32_t i = 0; i < e->n_eog; i++) {
            s->bias_ids[d->n_bias_total] = e->eog_ids[i];
            s->bias[d->n_bias_total++] = -INFINITY;
        }
        for (int32_t i = 0; i < p->n_stop_token_ids; i++) {
            s->bias_ids[d->n_bias_total] = r->stop_ids[i];
            s->bias[d->n_bias_total++] = -INFINITY;
        }
    }
    sr->n_bias = d->n_bias_total - sr->bias_start;
    if (r->grammar) {
        uint32_t *m = s->masks + (size_t)d->n_mask_rows * (size_t)((V + 31) / 32);
        int rc = sglc_engine_grammar_mask_bits(e, r, row, m, V);
        if (rc == 0) sr->mask_row = d->n_mask_rows++;
        if (rc == 1) sr->forced = sglc_tokenizer_eos(e->tok); /* nothing allowed: the end */
    }
    if (p->return_logprob) {
        sr->want_logprob = 1;
        sr->top_logprobs = p->top_logprobs_num;
        if (grow_list(&s->lp_ids, NULL, &s->cap_lp_ids, d->n_lp_ids_total + p->n_logprob_token_ids))
            return -1;
        sr->ids_start = d->n_lp_ids_total;
        sr->n_ids = p->n_logprob_token_ids;
        for (int32_t j = 0; j < p->n_logprob_token_ids; j++)
            s->lp_ids[d->n_lp_ids_total++] = p->logprob_token_ids[j];
        d->any_logprob = 1;
    }
    return 0;
}

/* A prompt row scores the prompt's next token on the raw logits (no penalty, bias or
 * constraint applies to the prompt, as in SGLang). */
static void prompt_row_desc(step *s, int32_t row, sglc_sample_desc *d) {
    sglc_request *r = s->row_req[row];
    s->srows[row] = (sglc_sample_row){.forced = r->tokens[s->row_pos[row] + 1],
                                      .want_logprob = 1,
                                      .top_logprobs = r->params.top_logprobs_num,
                                      .penalty_row = -1,
                                      .mask_row = -1};
    d->any_logprob = 1;
}

/* Runs the forward pass, builds the sampling description while it runs (grammar masks on the
 * grammar pool, draws, bias lists), samples on the backend and takes back the ids and the
 * logprobs asked for. The chosen tokens advance the grammar matchers. */
static void run_step(sglc_engine *e, step *s) {
    sglc_err err = {{0}};
    atomic_store(&e->step_started_s, sglc_engine_now());
    s->ok = sglc_model_forward_launch(e->st, sglc_bb_batch(&s->bb), &err) == 0;
    int32_t n = S_LOGITS(s);
    if (s->ok) {
        /* the constrained rows' masks, all at once on the grammar pool (prompt rows have none) */
        int constrained = 0;
        for (int32_t row = 0; row < n; row++)
            constrained |= !s->row_prompt[row] && s->row_req[row]->grammar != NULL;
        if (constrained) {
            for (int32_t row = 0; row < n; row++)
                s->mask_req[row] = s->row_prompt[row] ? NULL : s->row_req[row];
            sglc_engine_grammar_masks(e, s->mask_req, n);
        }
        sglc_sample_desc d = {.n_rows = n, .rows = s->srows};
        for (int32_t row = 0; row < n && s->ok; row++) {
            if (s->row_prompt[row])
                prompt_row_desc(s, row, &d);
            else if (sample_row_desc(e, s, row, &d) != 0) {
                s->ok = 0;
                snprintf(err.msg, sizeof err.msg, "out of memory for the sampling description");
            }
        }
        d.bias_ids = s->bias_ids;
        d.bias = s->bias;
        d.masks = s->masks;
        d.lp_ids = s->lp_ids;
        const sglc_sample_result *res = NULL;
        if (s->ok)
            s->ok = sglc_model_sample_launch(e->st, &d, &err) == 0 &&
                    sglc_model_step_wait(e->st, &res, &err) == 0;
        for (int32_t row = 0; s->ok && row < n; row++) {
            sglc_request *r = s->row_req[row];
            int32_t tok = res->ids[row];
            s->sampled[row] = tok;
            if (s->srows[row].want_logprob) {
                s->row_logprob[row] = res->logprob[row];
                sglc_token_logprob *top = s->row_top + (size_t)row * SGLC_SAMPLE_TOP_MAX;
                for (int32_t j = 0; j < s->srows[row].top_logprobs; j++)
                    top[j] = (sglc_token_logprob){
                        res->top_ids[(size_t)row * SGLC_SAMPLE_TOP_MAX + (size_t)j],
                        res->top_lp[(size_t)row * SGLC_SAMPLE_TOP_MAX + (size_t)j]};
                memcpy(s->row_ids_lp + (size_t)row * SGLC_MAX_LOGPROB_TOKEN_IDS,
                       res->ids_lp + (size_t)row * SGLC_SAMPLE_IDS_MAX,
                       (size_t)s->srows[row].n_ids * sizeof(float));
            }
            if (s->row_prompt[row]) continue;
            s->grammar_done[row] = r->grammar ? (uint8_t)sglc_engine_grammar_accept(e, r, tok) : 0;
            r->n_sampled++;
        }
        pthread_mutex_lock(&e->smu);
        e->stats.device_to_host_bytes = (int64_t)e->be->bytes_to_host;
        e->stats.sampled_rows += n;
        pthread_mutex_unlock(&e->smu);
    }
    atomic_store(&e->step_started_s, 0.0);
    if (!s->ok) sglc_log(SGLC_LOG_ERROR, "forward failed: %s", err.msg);
}

void *sglc_compute_main(void *arg) {
    sglc_engine *e = arg;
    pthread_mutex_lock(&e->cmu);
    for (;;) {
        while (!e->launch && !e->compute_stop)
            pthread_cond_wait(&e->ccv, &e->cmu);
        if (e->compute_stop) break;
        step *s = e->launch;
        pthread_mutex_unlock(&e->cmu);
        run_step(e, s);
        pthread_mutex_lock(&e->cmu);
        e->launch = NULL;
        e->done_step = s;
        pthread_cond_broadcast(&e->ccv);
    }
    pthread_mutex_unlock(&e->cmu);
    return NULL;
}

/* ------------------------------------------------------------------ request bookkeeping */

/* Gives the request's KV back: cached into the radix tree (so later requests reuse it) or
 * freed. Positions [0, n_sched) hold computed KV once no launched step uses the request. */
static void release_kv(sglc_engine *e, sglc_request *r) {
    if (r->released) return;
    SGLC_ASSERT(r->inflight == 0);
    int32_t n = r->n_sched;
    if (e->radix) {
        if (n > 0) {
            int32_t shared = sglc_radix_insert(e->radix, r->tokens, r->slots, n);
            if (shared > r->n_cached)
                sglc_kv_pool_free(e->pool, r->slots + r->n_cached, shared - r->n_cached);
        }
        if (r->last_node) sglc_radix_unlock(e->radix, r->last_node);
    } else if (n > 0) {
        sglc_kv_pool_free(e->pool, r->slots, n);
    }
    r->last_node = NULL;
    r->n_sched = r->n_cached = 0;
    r->released = 1;
    if (r->table_row >= 0) {
        e->table_free[e->n_table_free++] = r->table_row;
        r->table_row = -1;
    }
}

static void list_remove(sglc_request **arr, int32_t *n, sglc_request *r) {
    for (int32_t i = 0; i < *n; i++)
        if (arr[i] == r) {
            memmove(arr + i, arr + i + 1, (size_t)(*n - i - 1) * sizeof *arr);
            (*n)--;
            return;
        }
}

static int grow_text(sglc_request *r, size_t extra);

static void finish(sglc_engine *e, sglc_request *r, sglc_finish_reason why) {
    if (r->state == REQ_FINISHED) return;
    r->state = REQ_FINISHED;
    size_t w = 0;
    if (grow_text(r, 16) == 0)
        w = sglc_detok_stream_flush(&r->detok, r->text + r->text_len, r->text_cap - r->text_len);
    if (r->matched_stop_string < 0) r->text_len += w;
    /* counters first, then the result: a client that reads /metrics right after its response
     * must find the request counted */
    double e2e = sglc_engine_now() - r->t_submit;
    pthread_mutex_lock(&e->smu);
    e->stats.requests_finished++;
    e->stats.generation_tokens_total += r->pub_n_output; /* written by this thread only */
    if (why == SGLC_FINISH_ABORT) e->stats.requests_aborted++;
    sglc_engine_observe_locked(e, SGLC_HIST_E2E, e2e, 1);
    if (r->pub_n_output > 1)
        sglc_engine_observe_locked(e, SGLC_HIST_TPOT, (e2e - r->ttft_s) / (r->pub_n_output - 1), 1);
    pthread_mutex_unlock(&e->smu);
    pthread_mutex_lock(&r->mu);
    if (r->pub_text_cap < r->text_len + 1) {
        char *nt = realloc(r->pub_text, r->text_len + 1);
        if (nt) {
            r->pub_text = nt;
            r->pub_text_cap = r->text_len + 1;
        }
    }
    if (r->pub_text_cap >= r->text_len + 1) {
        if (r->text_len) memcpy(r->pub_text, r->text, r->text_len);
        r->pub_text_len = r->text_len;
    }
    r->finish_reason = why;
    r->pub_finished = 1;
    r->e2e_s = e2e;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    list_remove(e->running, &e->n_running, r);
    list_remove(e->waiting, &e->n_waiting, r); /* also holds chunked prefills in progress */
}

/* Releases a finished request once no launched step uses it, and drops the scheduler's
 * reference (which may free it: callers must not touch r afterwards). */
static void reap(sglc_engine *e, sglc_request *r) {
    if (r->state != REQ_FINISHED || r->inflight != 0 || r->released) return;
    release_kv(e, r);
    penalty_release(e, r, 0);
    if (r->leader) {
        sglc_request_unref(r->leader);
        r->leader = NULL;
    }
    sglc_request_unref(r);
}

/* Length of the longest suffix of text that is a proper prefix of some stop string: text
 * that may still turn into a stop match is held back from the client. */
static size_t stop_holdback(const sglc_request *r) {
    size_t best = 0;
    for (int32_t i = 0; i < r->params.n_stop; i++) {
        size_t L = strlen(r->stop_strs[i]);
        for (size_t k = L - 1; k > best; k--)
            if (k <= r->text_len && memcmp(r->text + r->text_len - k, r->stop_strs[i], k) == 0) {
                best = k;
                break;
            }
    }
    return best;
}

static int grow_text(sglc_request *r, size_t extra) {
    if (r->text_len + extra <= r->text_cap) return 0;
    size_t cap = r->text_cap ? r->text_cap : 256;
    while (cap < r->text_len + extra)
        cap *= 2;
    char *nt = realloc(r->text, cap);
    if (!nt) return -1;
    r->text = nt;
    r->text_cap = cap;
    return 0;
}

/* Appends one sampled token to a running request and applies the stop rules. */
static void accept_token(sglc_engine *e, step *s, int32_t row) {
    sglc_request *r = s->row_req[row];
    if (r->state != REQ_RUNNING) return; /* finished while this step ran: drop */
    const sglc_request_params *p = &r->params;
    int32_t tok = s->sampled[row];
    int32_t k = r->pub_n_output;
    r->tokens[r->n_tokens++] = tok;
    r->out_ids[k] = tok;
    if (p->return_logprob) {
        if (p->n_logprob_token_ids > 0)
            memcpy(r->out_ids_lp + (size_t)k * (size_t)p->n_logprob_token_ids,
                   s->row_ids_lp + (size_t)row * SGLC_MAX_LOGPROB_TOKEN_IDS,
                   (size_t)p->n_logprob_token_ids * sizeof(float));
        r->out_logprobs[k] = s->row_logprob[row];
        memcpy(r->out_top + (size_t)k * (size_t)p->top_logprobs_num,
               s->row_top + (size_t)row * SGLC_SAMPLE_TOP_MAX,
               (size_t)p->top_logprobs_num * sizeof(sglc_token_logprob));
    }
    int is_stop_tok = 0;
    if (k + 1 > p->min_new_tokens) {
        if (!p->ignore_eos && sglc_tokenizer_is_eog(e->tok, tok)) is_stop_tok = 1;
        for (int32_t i = 0; i < p->n_stop_token_ids; i++)
            if (r->stop_ids[i] == tok) is_stop_tok = 1;
    }
    size_t old_len = r->text_len;
    if (!is_stop_tok) {
        size_t cap = sglc_detok_stream_cap(e->tok);
        if (grow_text(r, cap + 8) == 0)
            r->text_len += sglc_detok_stream_push(&r->detok, e->tok, tok, p->skip_special_tokens,
                                                  r->text + r->text_len, cap);
    }
    int32_t matched_str = -1;
    size_t cut = r->text_len;
    if (!is_stop_tok && k + 1 > p->min_new_tokens) {
        for (int32_t i = 0; i < p->n_stop; i++) {
            size_t L = strlen(r->stop_strs[i]);
            size_t from = old_len >= L ? old_len - L + 1 : 0;
            if (r->text_len < L) continue;
            for (size_t at = from; at + L <= r->text_len; at++)
                if (memcmp(r->text + at, r->stop_strs[i], L) == 0) {
                    if (matched_str < 0 || at < cut) {
                        matched_str = i;
                        cut = at;
                    }
                    break;
                }
        }
    }
    double now = sglc_engine_now();
    pthread_mutex_lock(&e->smu);
    if (k == 0)
        sglc_engine_observe_locked(e, SGLC_HIST_TTFT, now - r->t_submit, 1);
    else
        sglc_engine_observe_locked(e, SGLC_HIST_INTER_TOKEN, now - r->t_last_token, 1);
    pthread_mutex_unlock(&e->smu);
    r->t_last_token = now;
    pthread_mutex_lock(&r->mu);
    if (k == 0) r->ttft_s = now - r->t_submit;
    r->pub_n_output = k + 1;
    size_t visible = r->text_len;
    if (matched_str >= 0) {
        r->matched_stop_string = matched_str;
        visible = p->no_stop_trim ? cut + strlen(r->stop_strs[matched_str]) : cut;
        r->text_len = visible;
    } else if (!is_stop_tok) {
        visible = r->text_len - stop_holdback(r);
    }
    if (is_stop_tok) r->matched_stop_token = tok;
    /* the grammar is complete: finish as if eos followed (SGLang's matched eos) */
    int grammar_done = s->grammar_done[row] && !is_stop_tok && matched_str < 0;
    if (grammar_done) {
        r->matched_stop_token = sglc_tokenizer_eos(e->tok);
        visible = r->text_len;
    }
    if (r->pub_text_cap < visible + 1) {
        size_t cap = r->pub_text_cap ? r->pub_text_cap : 256;
        while (cap < visible + 1)
            cap *= 2;
        char *nt = realloc(r->pub_text, cap);
        if (nt) {
            r->pub_text = nt;
            r->pub_text_cap = cap;
        }
    }
    if (r->pub_text_cap >= visible + 1) {
        if (visible) memcpy(r->pub_text, r->text, visible);
        r->pub_text_len = visible;
    }
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    if (is_stop_tok || matched_str >= 0 || grammar_done)
        finish(e, r, SGLC_FINISH_STOP);
    else if (k + 1 >= p->max_new_tokens)
        finish(e, r, SGLC_FINISH_LENGTH);
}

/* After a request's prompt is fully computed, its KV goes into the radix tree at once (as
 * SGLang's cache_unfinished_req does) so n > 1 siblings and concurrent requests with the same
 * prefix share it. */
static void cache_prefill(sglc_engine *e, sglc_request *r) {
    if (!e->radix || r->prefill_cached || r->state != REQ_RUNNING) return;
    int32_t n = r->n_fill;
    int32_t shared = sglc_radix_insert(e->radix, r->tokens, r->slots, n);
    if (shared > r->n_cached)
        sglc_kv_pool_free(e->pool, r->slots + r->n_cached, shared - r->n_cached);
    sglc_radix_node *node = NULL;
    int32_t m = sglc_radix_match_prefix(e->radix, r->tokens, n, r->slots, &node);
    SGLC_ASSERT(m == n);
    sglc_radix_lock(e->radix, node);
    if (r->last_node) sglc_radix_unlock(e->radix, r->last_node);
    r->last_node = node;
    r->n_cached = n;
    r->prefill_cached = 1;
    r->n_in_table = 0; /* the shared prefix's slots replaced the request's own: rewrite the row */
}

/* Index into r's prompt logprobs of the token after position p, or -1 when not asked for. */
static int32_t prompt_lp_index(const sglc_request *r, int32_t p) {
    if (!r->in_logprobs) return -1;
    int32_t i = p + 1 - r->params.logprob_start_len;
    return p + 1 < r->n_prompt && i >= 0 && i < r->n_in_logprobs ? i : -1;
}

static void store_prompt_logprob(sglc_request *r, const step *s, int32_t row) {
    int32_t i = prompt_lp_index(r, s->row_pos[row]), k = r->params.top_logprobs_num;
    if (i < 0) return;
    r->in_logprobs[i] = s->row_logprob[row];
    memcpy(r->in_top + (size_t)i * (size_t)k, s->row_top + (size_t)row * SGLC_SAMPLE_TOP_MAX,
           (size_t)k * sizeof(sglc_token_logprob));
}

static void process_results(sglc_engine *e, step *s) {
    for (int32_t q = 0; q < S_SEQS(s); q++) {
        sglc_request *r = s->seq_req[q];
        r->inflight--;
    }
    if (s->ok) {
        /* prompt logprobs first: a request's first token publishes them to its client */
        for (int32_t row = 0; row < S_LOGITS(s); row++)
            if (s->row_prompt[row]) store_prompt_logprob(s->row_req[row], s, row);
        for (int32_t row = 0; row < S_LOGITS(s); row++) {
            sglc_request *r = s->row_req[row];
            if (s->row_prompt[row]) continue;
            if (s->is_prefill && r->state == REQ_RUNNING) cache_prefill(e, r);
            accept_token(e, s, row);
        }
    }
    for (int32_t q = 0; q < S_SEQS(s); q++) {
        sglc_request *r = s->seq_req[q];
        if (!s->ok && r->state != REQ_FINISHED) finish(e, r, SGLC_FINISH_ABORT);
        reap(e, r);
    }
    pthread_mutex_lock(&e->smu);
    e->stats.num_running = e->n_running;
    e->stats.num_queued = e->n_waiting + e->q_len;
    e->stats.kv_used = e->pool_size - sglc_kv_pool_available(e->pool) -
                       (e->radix ? sglc_radix_evictable_size(e->radix) : 0);
    e->stats.kv_cached_evictable = e->radix ? sglc_radix_evictable_size(e->radix) : 0;
    e->stats.token_usage = (double)e->stats.kv_used / (double)e->pool_size;
    pthread_mutex_unlock(&e->smu);
}

/* ------------------------------------------------------------------ batch building */

static int ensure_slots(sglc_engine *e, int32_t n) {
    int32_t avail = sglc_kv_pool_available(e->pool);
    if (avail < n && e->radix) sglc_radix_evict(e->radix, n - avail);
    return sglc_kv_pool_available(e->pool) >= n;
}

static int add_running(sglc_engine *e, sglc_request *r) {
    if (e->n_running == e->cap_running) return -1; /* cap is max_running: checked by callers */
    e->running[e->n_running++] = r;
    return 0;
}

/* Appends sequence r's tokens [from, from + n) to the step; its table row gets the slots it
 * does not hold yet. */
static void step_add_seq(sglc_engine *e, step *s, sglc_request *r, int32_t from, int32_t n,
                         int want_logits, int placeholder) {
    if (r->table_row < 0) {
        SGLC_ASSERT(e->n_table_free > 0); /* a row per request running or not yet reaped */
        r->table_row = e->table_free[--e->n_table_free];
        r->n_in_table = 0;
    }
    if (r->n_in_table > from) r->n_in_table = from; /* positions past from are new slots */
    int32_t q =
        sglc_bb_add_seq(&s->bb, r->table_row, r->tokens + from, r->slots, from, n, r->n_in_table);
    r->n_in_table = from + n;
    s->seq_req[q] = r;
    if (placeholder) sglc_bb_placeholder(&s->bb, S_TOKENS(s) - 1, r->last_sample_row);
    r->n_sched = from + n;
    r->inflight++;
    if (want_logits) {
        int32_t row = sglc_bb_add_logits(&s->bb, S_TOKENS(s) - 1);
        s->row_req[row] = r;
        s->row_prompt[row] = 0;
        r->last_sample_step = s->number;
        r->last_sample_row = row;
        r->n_out_sched++;
    }
}

/* Prefix match for a waiting request (first admission after submit or retraction). */
static void match_waiting(sglc_engine *e, sglc_request *r) {
    if (r->last_node || !e->radix) return;
    sglc_radix_node *node = NULL;
    int32_t m = sglc_radix_match_prefix(e->radix, r->tokens, r->n_fill, r->slots, &node);
    if (m >= r->n_fill) m = r->n_fill - 1; /* the last token is recomputed for its logits */
    /* prompt logprobs from logprob_start_len need the logits at the positions before it */
    if (r->in_logprobs) {
        int32_t need = r->params.logprob_start_len > 0 ? r->params.logprob_start_len - 1 : 0;
        if (m > need) m = need;
    }
    if (m < 0) m = 0;
    sglc_radix_lock(e->radix, node);
    r->last_node = node;
    r->n_cached = m;
    r->n_sched = m;
}

static void unmatch_waiting(sglc_engine *e, sglc_request *r) {
    if (!r->last_node) return;
    sglc_radix_unlock(e->radix, r->last_node);
    r->last_node = NULL;
    r->n_cached = r->n_sched = 0;
}

/* Logit rows the prompt positions [from, from + n) of r need for prompt logprobs. */
static int32_t prompt_rows(const sglc_request *r, int32_t from, int32_t n) {
    int32_t k = 0;
    for (int32_t p = from; r->in_logprobs && p < from + n; p++) {
        int32_t i = prompt_lp_index(r, p);
        k += i >= 0 && isnan(r->in_logprobs[i]);
    }
    return k;
}

static int cmp_lpm(const void *a, const void *b) {
    const sglc_request *x = *(sglc_request *const *)a, *y = *(sglc_request *const *)b;
    if (x->n_cached != y->n_cached) return x->n_cached > y->n_cached ? -1 : 1;
    return x->id < y->id ? -1 : (x->id > y->id);
}

static step *build_prefill(sglc_engine *e, step *s) {
    if (e->n_waiting == 0) return NULL;
    int32_t budget = e->params.max_prefill_tokens;
    if (e->params.chunked_prefill_size > 0 && e->params.chunked_prefill_size < budget)
        budget = e->params.chunked_prefill_size;
    if (budget > e->max_step_tokens) budget = e->max_step_tokens;
    if (e->params.schedule_policy == SGLC_SCHEDULE_LPM && e->radix && e->n_waiting < 128) {
        for (int32_t i = 0; i < e->n_waiting; i++)
            match_waiting(e, e->waiting[i]);
        qsort(e->waiting, (size_t)e->n_waiting, sizeof *e->waiting, cmp_lpm);
    }
    int32_t used = 0;
    for (int32_t i = 0; i < e->n_waiting && used < budget;) {
        sglc_request *r = e->waiting[i];
        int in_progress = r->state == REQ_RUNNING; /* chunked prefill continuing */
        if (!in_progress && e->n_running >= e->max_running) break;
        if (S_SEQS(s) >= e->max_running) break;
        if (r->leader && r->leader->state != REQ_FINISHED && !r->leader->prefill_cached &&
            e->radix) {
            i++; /* wait for the leader's prompt to be cached */
            continue;
        }
        if (r->leader) {
            sglc_request_unref(r->leader);
            r->leader = NULL;
        }
        if (!in_progress) match_waiting(e, r);
        int32_t from = r->n_sched, rest = r->n_fill - from;
        int32_t take = rest < budget - used ? rest : budget - used;
        /* prompt logprobs take a logit row per position: the chunk is what the rows allow */
        while (take > 0 && prompt_rows(r, from, take) + (from + take == r->n_fill) >
                               e->max_running - S_LOGITS(s))
            take = take > 8 ? take / 2 : take - 1;
        if (take <= 0) break;
        if (!ensure_slots(e, take)) {
            if (!in_progress) unmatch_waiting(e, r);
            break;
        }
        SGLC_ASSERT(sglc_kv_pool_alloc(e->pool, take, r->slots + from) == 0);
        if (!in_progress) {
            r->state = REQ_RUNNING;
            add_running(e, r);
            s->n_new_seqs++;
            s->n_cached_new += r->n_cached;
            if (r->pub_n_output == 0 && r->cached_reported == 0) {
                r->cached_reported = 1;
                pthread_mutex_lock(&r->mu);
                r->pub_cached_tokens = r->n_cached;
                pthread_mutex_unlock(&r->mu);
                pthread_mutex_lock(&e->smu);
                e->stats.cached_tokens_total += r->n_cached;
                e->stats.prompt_tokens_total += r->n_prompt;
                pthread_mutex_unlock(&e->smu);
            }
        }
        int done = from + take == r->n_fill;
        step_add_seq(e, s, r, from, take, done, 0);
        if (r->in_logprobs)
            for (int32_t p = from; p < from + take; p++) {
                if (prompt_lp_index(r, p) < 0 || !isnan(r->in_logprobs[prompt_lp_index(r, p)]))
                    continue;
                int32_t row = sglc_bb_add_logits(&s->bb, S_TOKENS(s) - take + (p - from));
                s->row_req[row] = r;
                s->row_prompt[row] = 1;
                s->row_pos[row] = p;
            }
        used += take;
        if (done) {
            memmove(e->waiting + i, e->waiting + i + 1,
                    (size_t)(e->n_waiting - i - 1) * sizeof *e->waiting);
            e->n_waiting--;
        } else {
            i++;
        }
    }
    if (S_TOKENS(s) == 0) return NULL;
    s->is_prefill = 1;
    return s;
}

/* Takes a running request out to recompute later: its KV goes to the cache or is freed. */
static void retract(sglc_engine *e, sglc_request *r) {
    release_kv(e, r);
    penalty_release(e, r, 1); /* the pipeline is drained: the compute side is idle */
    r->released = 0;
    r->prefill_cached = 0;
    r->n_fill = r->n_tokens;
    r->state = REQ_WAITING;
    list_remove(e->running, &e->n_running, r);
    memmove(e->waiting + 1, e->waiting, (size_t)e->n_waiting * sizeof *e->waiting);
    e->waiting[0] = r;
    e->n_waiting++;
    pthread_mutex_lock(&e->smu);
    e->stats.retractions++;
    pthread_mutex_unlock(&e->smu);
    sglc_log(SGLC_LOG_WARN, "KV cache full: retracted request %lld to recompute later",
             (long long)r->id);
}

/* A running request takes part in the next decode step once its prefill is scheduled and
 * until its last output token is. */
static int decodable(const sglc_request *r) {
    return r->n_sched >= r->n_fill && r->n_out_sched < r->params.max_new_tokens;
}

/* Returns NULL when decode needs KV that only a drained pipeline can give: retraction must not
 * touch a request a launched step still uses, so the caller first processes the step in
 * flight and builds again. */
static step *build_decode(sglc_engine *e, step *s, const step *inflight) {
    int32_t n = 0;
    for (int32_t i = 0; i < e->n_running; i++)
        n += decodable(e->running[i]);
    if (n == 0) return NULL;
    if (!ensure_slots(e, n)) {
        if (inflight) return NULL;
        /* retract the requests with the least work done until the rest fit */
        while (!ensure_slots(e, n) && e->n_running > 1) {
            sglc_request *victim = NULL;
            for (int32_t i = 0; i < e->n_running; i++) {
                sglc_request *r = e->running[i];
                if (r->n_sched < r->n_fill || r->inflight) continue;
                if (!victim || r->n_tokens < victim->n_tokens) victim = r;
            }
            if (!victim) break;
            retract(e, victim);
            n--;
        }
        if (!ensure_slots(e, n)) return NULL;
    }
    for (int32_t i = 0; i < e->n_running; i++) {
        sglc_request *r = e->running[i];
        if (!decodable(r)) continue;
        int32_t p = r->n_sched;
        SGLC_ASSERT(sglc_kv_pool_alloc(e->pool, 1, r->slots + p) == 0);
        int placeholder = inflight && r->last_sample_step == inflight->number;
        step_add_seq(e, s, r, p, 1, 1, placeholder);
    }
    s->is_prefill = 0;
    return s;
}

static void log_step(sglc_engine *e, const step *s) {
    int32_t used = e->pool_size - sglc_kv_pool_available(e->pool) -
                   (e->radix ? sglc_radix_evictable_size(e->radix) : 0);
    double usage = (double)used / (double)e->pool_size;
    if (s->is_prefill) {
        sglc_log(SGLC_LOG_INFO,
                 "Prefill batch. #new-seq: %d, #new-token: %d, #cached-token: %d, token usage: "
                 "%.2f, #running-req: %d, #queue-req: %d",
                 s->n_new_seqs, S_TOKENS(s), s->n_cached_new, usage, e->n_running, e->n_waiting);
        return;
    }
    e->decode_steps++;
    e->log_tokens += S_TOKENS(s);
    int32_t every = e->params.decode_log_interval;
    if (every <= 0 || e->decode_steps % every != 0) return;
    double now = sglc_engine_now();
    double tput = e->log_t0 > 0 ? (double)e->log_tokens / (now - e->log_t0) : 0.0;
    e->log_t0 = now;
    e->log_tokens = 0;
    pthread_mutex_lock(&e->smu);
    e->stats.last_gen_throughput = tput;
    pthread_mutex_unlock(&e->smu);
    const int graph = e->be->ops->decode_graph && e->be->ops->decode_graph(e->be, e->n_running);
    sglc_log(SGLC_LOG_INFO,
             "Decode batch. #running-req: %d, #token: %d, token usage: %.2f, cuda graph: %s, "
             "gen throughput (token/s): %.2f, #queue-req: %d",
             e->n_running, used, usage, graph ? "True" : "False", tput, e->n_waiting);
}

static step *build_step(sglc_engine *e, const step *inflight) {
    step *s = e->steps[e->next_step];
    s->number = ++e->step_counter;
    sglc_bb_reset(&s->bb);
    s->n_cached_new = s->n_new_seqs = 0;
    s->ok = 0;
    step *out = build_prefill(e, s);
    if (!out) out = build_decode(e, s, inflight);
    if (out) {
        e->next_step ^= 1;
        log_step(e, out);
    }
    return out;
}

/* ------------------------------------------------------------------ the loop */

/* Moves submitted requests into the waiting list; handles aborts and cache flushes.
 * Blocks when there is nothing at all to do. Returns 0 to stop. */
static int intake(sglc_engine *e, int busy) {
    pthread_mutex_lock(&e->qmu);
    while (!e->stopping && !e->q_head && !busy && e->n_waiting == 0 && e->n_running == 0 &&
           !e->flush_requested)
        pthread_cond_wait(&e->qcv, &e->qmu);
    int stopping = e->stopping;
    while (e->q_head) {
        sglc_request *r = e->q_head;
        e->q_head = r->next;
        if (!e->q_head) e->q_tail = NULL;
        e->q_len--;
        r->next = NULL;
        if (e->n_waiting == e->cap_waiting) {
            int32_t cap = e->cap_waiting ? e->cap_waiting * 2 : 64;
            sglc_request **nw = realloc(e->waiting, (size_t)cap * sizeof *nw);
            SGLC_ASSERT(nw != NULL);
            e->waiting = nw;
            e->cap_waiting = cap;
        }
        e->waiting[e->n_waiting++] = r;
    }
    if (e->flush_requested) {
        int ok = e->n_running == 0 && !busy;
        if (ok && e->radix) ok = sglc_radix_reset(e->radix) == 0;
        e->flush_result = ok ? 0 : -1;
        e->flush_requested = 0;
        pthread_cond_broadcast(&e->flush_cv);
    }
    pthread_mutex_unlock(&e->qmu);
    /* aborts (and everything, when stopping) */
    for (int32_t i = e->n_waiting - 1; i >= 0; i--) {
        sglc_request *r = e->waiting[i];
        if ((stopping || atomic_load(&r->aborted)) && r->state != REQ_RUNNING) {
            finish(e, r, SGLC_FINISH_ABORT);
            reap(e, r);
        }
    }
    for (int32_t i = e->n_running - 1; i >= 0; i--) {
        sglc_request *r = e->running[i];
        if (stopping || atomic_load(&r->aborted)) {
            finish(e, r, SGLC_FINISH_ABORT);
            reap(e, r);
        }
    }
    return !stopping;
}

static void launch(sglc_engine *e, step *s) {
    pthread_mutex_lock(&e->cmu);
    e->launch = s;
    e->done_step = NULL;
    pthread_cond_broadcast(&e->ccv);
    pthread_mutex_unlock(&e->cmu);
}

static step *wait_done(sglc_engine *e) {
    pthread_mutex_lock(&e->cmu);
    while (!e->done_step)
        pthread_cond_wait(&e->ccv, &e->cmu);
    step *s = e->done_step;
    e->done_step = NULL;
    pthread_mutex_unlock(&e->cmu);
    return s;
}

void *sglc_scheduler_main(void *arg) {
    sglc_engine *e = arg;
    int overlap = !e->params.disable_overlap_schedule;
    step *inflight = NULL;
    e->log_t0 = sglc_engine_now();
    for (;;) {
        int running = intake(e, inflight != NULL);
        if (!running && !inflight) break;
        step *s = running ? build_step(e, inflight) : NULL;
        if (!overlap) {
            if (s) {
                run_step(e, s);
                process_results(e, s);
            }
            continue;
        }
        if (inflight) {
            step *done = wait_done(e);
            SGLC_ASSERT(done == inflight);
            if (s) launch(e, s);
            process_results(e, done);
            inflight = s;
        } else if (s) {
            launch(e, s);
            inflight = s;
        }
    }
    /* stopping: everything was aborted by intake; release what remains */
    while (e->n_running > 0) {
        sglc_request *r = e->running[e->n_running - 1];
        finish(e, r, SGLC_FINISH_ABORT);
        reap(e, r);
    }
    while (e->n_waiting > 0) {
        sglc_request *r = e->waiting[e->n_waiting - 1];
        finish(e, r, SGLC_FINISH_ABORT);
        reap(e, r);
    }
    return NULL;
}

int sglc_scheduler_init(sglc_engine *e, char *err, size_t errlen) {
    e->running = calloc((size_t)e->max_running, sizeof *e->running);
    e->cap_running = e->max_running;
    e->steps[0] = step_new(e);
    e->steps[1] = step_new(e);
    if (!e->running || !e->steps[0] || !e->steps[1]) {
        snprintf(err, errlen, "out of memory for the scheduler");
        return -1;
    }
    return 0;
}

void sglc_scheduler_free(sglc_engine *e) {
    free(e->running);
    free(e->waiting);
    step_free(e->steps[0]);
    step_free(e->steps[1]);
}
