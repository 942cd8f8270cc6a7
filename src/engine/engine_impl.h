/* Private structures of the serving engine, shared by scheduler.c (the scheduler thread and
 * its step pipeline) and engine.c (the public API: submit, wait, abort, stats). */
#ifndef SGLC_ENGINE_IMPL_H
#define SGLC_ENGINE_IMPL_H

#include <pthread.h>
#include <stdatomic.h>

#include "backend/backend.h"
#include "base/threadpool.h"
#include "engine/grammar/grammar.h"
#include "engine/kv_pool.h"
#include "engine/radix_cache.h"
#include "engine/sampler.h"
#include "model/model.h"
#include "sglc.h"
#include "tokenizer/tokenizer.h"

typedef enum {
    REQ_WAITING = 0, /* in the waiting queue (new or retracted) */
    REQ_RUNNING,     /* admitted: prefill in progress or decoding */
    REQ_FINISHED,    /* result final; KV released once no step in flight uses it */
    REQ_STATE_COUNT
} req_state;

struct sglc_request {
    int64_t id;
    sglc_engine *engine;
    atomic_int refs;    /* client + scheduler */
    atomic_int aborted; /* set by any thread, read by the scheduler */
    /* immutable after submit */
    sglc_request_params params; /* stop arrays point to the copies below */
    int32_t *stop_ids;
    char **stop_strs;
    int32_t *bias_ids; /* logit_bias copies */
    float *bias_vals;
    size_t max_stop_len;
    int32_t n_prompt;
    sglc_request *leader; /* n > 1: wait for the leader's prompt to be cached */
    double t_submit;

    /* ---- scheduler thread ---- */
    req_state state;
    int32_t *tokens; /* prompt, then outputs; capacity n_prompt + max_new_tokens + 1 */
    int32_t n_tokens;
    int32_t *slots;   /* KV slot of each position (req_to_token) */
    int32_t n_fill;   /* tokens to prefill (prompt, plus outputs after a retraction) */
    int32_t n_sched;  /* positions whose KV is computed or being computed by launched steps */
    int32_t n_cached; /* leading positions whose slots belong to the radix tree */
    int32_t cached_reported; /* prefix hit reported to the user (first admission) */
    sglc_radix_node *last_node;
    int32_t n_out_sched;      /* output tokens that launched steps will produce */
    int32_t inflight;         /* launched steps not yet processed that include this request */
    int64_t last_sample_step; /* number of the step whose sample is this request's next input */
    int32_t last_sample_row;
    int32_t table_row;  /* row of the slot table while running, -1 otherwise */
    int32_t n_in_table; /* leading slots the table row holds (0: rewrite it next step) */
    int prefill_cached; /* prompt inserted into the radix tree after prefill */
    sglc_detok_stream detok;
    char *text; /* all decoded text */
    size_t text_len, text_cap;
    int released; /* KV given back */
    double t_first_token;
    double t_last_token; /* when the latest output token was accepted (inter-token latency) */

    /* ---- compute side (sampling state; touched only while sampling a step) ---- */
    sglc_rng rng;
    /* penalties: the request's row of the backend's penalty tables while running (-1: none),
     * and its output counts on the host while it waits after a retraction (NULL: none yet) */
    int32_t pen_row;
    int32_t *counts;
    int32_t n_sampled;
    sglc_grammar *grammar; /* own reference (immutable after submit), or NULL */
    sglc_gmatcher gm;      /* made at the first sample; advanced by each sampled token */
    int gm_state;          /* 0: not made, 1: live, -1: failed (no constraint any more) */

    /* ---- mailbox (mu) ---- */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* prompt logprobs and token_ids_logprob (written by the scheduler before the first token
     * is published, read by wait after it) */
    float *in_logprobs;          /* [n_prompt - logprob_start_len], NaN until computed */
    sglc_token_logprob *in_top;  /* [same][top_logprobs_num] */
    int32_t n_in_logprobs;       /* 0 when not asked */
    int32_t *lp_ids;             /* token_ids_logprob copy */
    float *out_ids_lp;           /* [max_new_tokens][n_logprob_token_ids] */
    int32_t *out_ids;            /* capacity max_new_tokens */
    float *out_logprobs;         /* capacity max_new_tokens, when return_logprob */
    sglc_token_logprob *out_top; /* [max_new_tokens][top_logprobs_num] */
    int32_t pub_n_output;
    size_t pub_text_len; /* visible prefix of text (copied for the client under mu) */
    char *pub_text;
    size_t pub_text_cap;
    int pub_finished;
    sglc_finish_reason finish_reason;
    int32_t matched_stop_token, matched_stop_string;
    int32_t pub_cached_tokens;
    double ttft_s, e2e_s;
    /* client-side copy of the text, returned by wait */
    char *client_text;
    size_t client_text_cap;

    sglc_request *next; /* intrusive list link (queue / waiting / running) */
};

typedef struct step step;

/* Accumulated latency observations of one kind; bounds come from metrics.c's tables. */
typedef struct {
    uint64_t counts[SGLC_HIST_MAX_BOUNDS + 1]; /* per bucket, not cumulative; last: > all */
    uint64_t count;
    double sum;
} sglc_hist_acc;

#define SGLC_GRAMMAR_CACHE_ENTRIES 32
#define SGLC_GRAMMAR_WORKERS 8

struct sglc_engine {
    sglc_engine_params params;
    char model_path[4096];
    char tokenizer_path[4096]; /* --tokenizer-path, "" when the model's own */
    sglc_backend *be;
    sglc_model *model;
    sglc_tokenizer *tok;
    sglc_model_state *st;
    sglc_kv_pool *pool;
    sglc_radix_cache *radix;
    sglc_sampler sampler;
    int32_t context_length, pool_size, max_step_tokens, max_running;

    /* submission queue */
    pthread_mutex_t qmu;
    pthread_cond_t qcv;
    sglc_request *q_head, *q_tail;
    int32_t q_len;
    int stopping;
    int flush_requested, flush_result;
    pthread_cond_t flush_cv;
    int64_t next_id;

    /* scheduler thread state */
    pthread_t sched_thread;
    sglc_request **waiting;
    int32_t n_waiting, cap_waiting;
    sglc_request **running;
    int32_t n_running, cap_running;
    step *steps[2];
    int next_step;
    int32_t *table_free; /* free rows of the slot table (a stack), scheduler thread only */
    int32_t n_table_free;
    /* free rows of the penalty tables: taken on the compute side, given back at reap */
    pthread_mutex_t pen_mu;
    int32_t *pen_free;
    int32_t n_pen_free;
    int pen_open;     /* the tables exist (made at the first penalized request) */
    int32_t *eog_ids; /* end-of-generation tokens (suppressed under min_new_tokens) */
    int32_t n_eog;
    int64_t step_counter;
    int64_t decode_steps;
    double log_t0;
    int64_t log_tokens;

    /* compute thread (overlap mode) */
    pthread_t compute_thread;
    pthread_mutex_t cmu;
    pthread_cond_t ccv;
    step *launch;    /* step handed to the compute thread */
    step *done_step; /* step the compute thread finished */
    step *prev_for_launch;
    int compute_stop;

    /* structured output: the vocabulary as the grammar mask sees it (built by the first
     * compile under gmu, immutable after), and compute-side scratch and mask buffers */
    pthread_mutex_t gmu;
    sglc_gvocab *gvocab;
    sglc_gscratch *gscratch;
    uint32_t *gmask;
    /* per-step masks (sglc_engine_grammar_masks): [max_running][words], which rows hold one,
     * and a scratch per worker of the grammar pool */
    uint32_t *gmask_rows;
    uint8_t *gmask_ready;
    sglc_gscratch *gscratch_w[SGLC_GRAMMAR_WORKERS];
    sglc_threadpool *gpool;
    /* compiled grammars by source (under gmu): a client that sends the same schema on every
     * request gets one grammar, and its mask cache stays warm across requests */
    struct {
        sglc_grammar *g; /* one reference held here */
        int kind;
        char *src;
        size_t len;
        uint64_t last_use;
    } gcache[SGLC_GRAMMAR_CACHE_ENTRIES];
    uint64_t gcache_clock;

    /* stats (smu) */
    pthread_mutex_t smu;
    sglc_engine_stats stats;
    sglc_hist_acc hist[SGLC_HIST_COUNT];

    /* watchdog (--watchdog-timeout): start of the running forward step, 0 when none */
    _Atomic double step_started_s;
    pthread_t watchdog_thread;
    int watchdog_started, watchdog_stop;
    pthread_mutex_t wmu;
    pthread_cond_t wcv;
};

double sglc_engine_now(void);
void *sglc_scheduler_main(void *arg);
void *sglc_compute_main(void *arg);
int sglc_scheduler_init(sglc_engine *e, char *err, size_t errlen);
void sglc_scheduler_free(sglc_engine *e);
void sglc_request_unref(sglc_request *r);
/* Structured output on the compute side (engine_grammar.c): the tokens r's grammar allows
 * next, as a bitmask of the model's n_vocab (bit set: allowed; the sample op's mask row), from
 * the row's precomputed mask (sglc_engine_grammar_masks) or computed here. 0: written; 1: the
 * grammar allows nothing (the request should end); -1: no constraint (out of memory). */
int sglc_engine_grammar_mask_bits(sglc_engine *e, sglc_request *r, int32_t row, uint32_t *out,
                                  int32_t n_vocab);
/* Computes the masks of every constrained row of a step at once, on a small thread pool (one
 * scratch per worker), before the rows are sampled; sglc_engine_grammar_mask_bits then hands out
 * the row's precomputed mask. reqs[row] for n rows (NULL or unconstrained rows are skipped). */
void sglc_engine_grammar_masks(sglc_engine *e, sglc_request *const *reqs, int32_t n);
int sglc_engine_grammar_accept(sglc_engine *e, sglc_request *r, int32_t tok);
void sglc_engine_grammar_free(sglc_engine *e);
/* Drops every cached mask of g (benchmarks measure cold masks with it). */
void sglc_engine_grammar_clear_cache(sglc_grammar *g);

/* Records n observations of value v seconds (metrics.c); the caller holds smu. */
void sglc_engine_observe_locked(sglc_engine *e, sglc_hist_kind kind, double v, uint64_t n);

#endif
