/* sglc public API: the serving engine. Kept narrow so that front ends (CLI, HTTP server) do not
 * depend on tensor or backend internals: they submit token ids with sampling parameters and
 * read results from a per-request mailbox. One scheduler thread inside the engine owns the
 * model, the KV pool and the radix cache; every function here is thread-safe. */
#ifndef SGLC_H
#define SGLC_H

#include <stddef.h>
#include <stdint.h>

#define SGLC_VERSION "0.1.0"

typedef struct sglc_engine sglc_engine;
typedef struct sglc_request sglc_request;
/* A compiled structured-output grammar (refcounted, immutable, shareable between requests). */
typedef struct sglc_grammar sglc_grammar;

typedef enum {
    SGLC_SCHEDULE_FCFS = 0, /* first come, first served */
    SGLC_SCHEDULE_LPM,      /* longest cached prefix first */
    SGLC_SCHEDULE_COUNT
} sglc_schedule_policy;

typedef struct {
    const char *model_path;     /* GGUF file, or a Hugging Face / MLX model folder */
    const char *tokenizer_path; /* NULL: the model's; else a tokenizer.json folder or a GGUF */
    const char *quantization;   /* NULL, "mlx_q4" or "mlx_q8": quantize at load (group 64) */
    const char *device;         /* "cpu", "cpu-ggml", "cuda"; NULL: cuda when a GPU is visible */
    int n_threads;              /* <= 0: all cores */
    /* --tp-size: tensor-parallel ranks (<= 1: one). CPU: ranks in one process sharing the
     * cores; CUDA: GPUs 0..N-1 with NCCL. Refused at open with one line when the model does
     * not split N ways or the device cannot (GPUs, NCCL). */
    int32_t tp_size;
    /* GPUs: rank r runs on GPU base_gpu_id + r * gpu_id_step (SGLang's --base-gpu-id and
     * --gpu-id-step; 0 and 1 when 0). The CPU devices ignore them. */
    int32_t base_gpu_id, gpu_id_step;
    /* CPU: share of available RAM for the KV pool (0.2). GPU: share of the card's memory for
     * weights and KV pool together, as SGLang (0.88). 0: the device's default. */
    double mem_fraction_static;
    int disable_cuda_graph;             /* GPU: decode without CUDA graphs */
    int32_t cuda_graph_max_bs;          /* GPU: largest padded decode batch captured (0: 160) */
    int enable_deterministic_inference; /* GPU: batch-invariant kernels (the CPU always is) */
    int64_t max_total_tokens;           /* KV pool size in tokens; > 0 overrides the fraction */
    int32_t max_running_requests;       /* 0: 64 on the CPU, from the KV pool on a GPU */
    int32_t chunked_prefill_size;       /* tokens per prefill step; -1 disables chunking; 0:
                                         * chosen at open (2048 on the CPU, by memory on a
                                         * GPU as SGLang does) */
    int32_t max_prefill_tokens;         /* tokens per prefill batch (16384) */
    int32_t context_length;             /* 0: the model's */
    sglc_schedule_policy schedule_policy;
    int disable_radix_cache;
    int disable_overlap_schedule;
    int32_t decode_log_interval; /* 40; 0 disables the log line */
    uint64_t random_seed;
    /* a step that runs longer marks the engine dead (SGLang's --watchdog-timeout, 300 s):
     * /health answers 503 and every request fails, instead of hanging */
    double watchdog_timeout_s;
} sglc_engine_params;

void sglc_engine_params_default(sglc_engine_params *p);
/* Loads the model and starts the scheduler. On failure returns < 0 and writes one line into
 * err. */
int sglc_engine_open(sglc_engine **out, const sglc_engine_params *p, char *err, size_t errlen);
/* Stops accepting work, aborts what runs, joins the scheduler and frees everything. */
void sglc_engine_close(sglc_engine *e);

typedef struct {
    float temperature;        /* 0 = greedy (1.0) */
    int32_t top_k;            /* -1 = off */
    float top_p;              /* (0, 1] */
    float min_p;              /* [0, 1] */
    float frequency_penalty;  /* [-2, 2] */
    float presence_penalty;   /* [-2, 2] */
    float repetition_penalty; /* > 0, 1 = off */
    int32_t max_new_tokens;   /* 128 */
    int32_t min_new_tokens;   /* 0 */
    int ignore_eos;
    int skip_special_tokens; /* 1 */
    int no_stop_trim;        /* keep the matched stop string in the text */
    int has_seed;
    uint64_t seed;
    const int32_t *stop_token_ids; /* copied at submit */
    int32_t n_stop_token_ids;
    const char *const *stop; /* stop strings, copied at submit */
    int32_t n_stop;
    int return_logprob;
    int32_t top_logprobs_num; /* alternatives per token, <= 20 */
    /* added to the logits of those ids before sampling (and before logprobs); finite values,
     * ids in the vocabulary, at most SGLC_MAX_LOGIT_BIAS entries; copied at submit */
    const int32_t *logit_bias_ids;
    const float *logit_bias;
    int32_t n_logit_bias;
    /* structured output: every output token keeps the text a prefix of a sentence of the
     * grammar; end of generation is allowed only when the text is complete, and the request
     * finishes (STOP, matched_stop_token = eos) once nothing more can follow. NULL = none; the
     * engine takes its own reference at submit. */
    const sglc_grammar *grammar;
    /* prompt logprobs (SGLang's logprob_start_len, with return_logprob): the logprob of every
     * prompt token from this position on given the tokens before it (-1: none). Those positions
     * are computed, not taken from the prefix cache. */
    int32_t logprob_start_len;
    /* SGLang's token_ids_logprob: at every output step, the logprobs of these ids (copied at
     * submit; at most SGLC_MAX_LOGPROB_TOKEN_IDS), with return_logprob */
    const int32_t *logprob_token_ids;
    int32_t n_logprob_token_ids;
} sglc_request_params;

#define SGLC_MAX_LOGPROB_TOKEN_IDS 64

#define SGLC_MAX_LOGIT_BIAS 1024

void sglc_request_params_default(sglc_request_params *p);
/* The message for a prompt of n_input tokens with max_new more that do not fit context (SGLang's
 * wording: "The input (N tokens) is longer than the model's context length (C tokens)." or
 * "Requested token count exceeds the model's maximum context length of C tokens. ..."). */
void sglc_context_error(int32_t n_input, int32_t max_new, int32_t context, char *err,
                        size_t errlen);

typedef enum {
    SGLC_FINISH_NONE = 0,
    SGLC_FINISH_LENGTH, /* max_new_tokens reached */
    SGLC_FINISH_STOP,   /* eos, a stop token id or a stop string */
    SGLC_FINISH_ABORT,
    SGLC_FINISH_COUNT
} sglc_finish_reason;

typedef struct {
    int32_t token;
    float logprob;
} sglc_token_logprob;

/* What a request produced so far. Pointers stay valid until the next call on the request. */
typedef struct {
    const int32_t *output_ids; /* all output tokens so far */
    int32_t n_output;
    const char *text; /* all text so far (stop strings trimmed, held-back partial matches) */
    size_t text_len;
    const float *logprobs;                  /* [n_output] when return_logprob */
    const sglc_token_logprob *top_logprobs; /* [n_output][top_logprobs_num] */
    int finished;
    sglc_finish_reason finish_reason;
    int32_t matched_stop_token;  /* -1 when none */
    int32_t matched_stop_string; /* index into stop, -1 when none */
    int32_t prompt_tokens, cached_tokens;
    double ttft_s, e2e_s;
    /* prompt logprobs (logprob_start_len >= 0), complete once n_output > 0 or finished:
     * input_logprobs[i] is the logprob of prompt token input_logprob_start + i (NaN for the
     * first prompt token, which has no context); input_top_logprobs [n][top_logprobs_num] */
    const float *input_logprobs;
    const sglc_token_logprob *input_top_logprobs;
    int32_t n_input_logprobs, input_logprob_start;
    const float *token_ids_logprobs; /* [n_output][n_logprob_token_ids] */
} sglc_output;

/* Submits a request over prompt ids. Returns 0 and a handle (release it with
 * sglc_request_release), or < 0 with one line in err (e.g. prompt + max_new_tokens beyond the
 * context, bad ids, engine stopping). Siblings of n > 1 are submitted with group_leader set to
 * the first request, so they share its prompt's KV cache. */
int sglc_engine_submit(sglc_engine *e, const int32_t *ids, int32_t n, const sglc_request_params *p,
                       sglc_request *group_leader, sglc_request **out, char *err, size_t errlen);
/* Waits until the request has more output than *seen tokens or is finished (timeout_ms < 0:
 * forever); fills out. Returns 0, or 1 on timeout. */
int sglc_request_wait(sglc_request *r, int32_t seen, sglc_output *out, int timeout_ms);
/* Asks the scheduler to stop the request; idempotent, any state. */
void sglc_request_abort(sglc_request *r);
/* Drops the caller's reference (aborting the request if it still runs). */
void sglc_request_release(sglc_request *r);
int64_t sglc_request_id(const sglc_request *r);

typedef struct {
    int32_t num_running, num_queued;
    int64_t kv_pool_size, kv_used, kv_cached_evictable;
    double token_usage;
    double last_gen_throughput;
    int64_t prompt_tokens_total, generation_tokens_total, cached_tokens_total;
    int64_t requests_finished;
    int64_t retractions;      /* running requests taken out to recompute when the KV pool ran dry */
    int64_t requests_aborted; /* of requests_finished: aborted (client gone, abort_request) */
    /* bytes the device backend moved to the host, and logit rows sampled on it: a step brings
     * back only the ids (4 bytes a row) and the logprobs a request asked for */
    int64_t device_to_host_bytes, sampled_rows;
} sglc_engine_stats;

void sglc_engine_get_stats(sglc_engine *e, sglc_engine_stats *s);

/* Latency histograms (SGLang's bucket bounds), observed by the scheduler as requests produce
 * tokens and finish: time to first token (one per request that produced a token), inter-token
 * latency (one per output token after the first), end-to-end latency (one per finished
 * request, aborted ones included, so its count equals requests_finished) and time per output
 * token (one per finished request with at least two output tokens: (e2e - ttft) / (n - 1), the
 * per-request figure older SGLang exported as sglang:time_per_output_token_seconds). */
typedef enum {
    SGLC_HIST_TTFT = 0,
    SGLC_HIST_INTER_TOKEN,
    SGLC_HIST_E2E,
    SGLC_HIST_TPOT,
    SGLC_HIST_COUNT
} sglc_hist_kind;

#define SGLC_HIST_MAX_BOUNDS 24

typedef struct {
    int32_t n_bounds;
    double bounds[SGLC_HIST_MAX_BOUNDS];           /* upper bounds (le), ascending */
    uint64_t cumulative[SGLC_HIST_MAX_BOUNDS + 1]; /* observations <= bounds[i]; last: all */
    uint64_t count;
    double sum; /* seconds */
} sglc_histogram;

/* A consistent snapshot of one histogram (taken under the stats lock, like get_stats). */
void sglc_engine_get_histogram(sglc_engine *e, sglc_hist_kind kind, sglc_histogram *out);
/* Drops every cached prefix when nothing runs; returns 0, or -1 when requests are running. */
int sglc_engine_flush_cache(sglc_engine *e);

/* Structured output (SGLang's json_schema / regex / ebnf sampling parameters, OpenAI
 * response_format json_object / json_schema). */
typedef enum {
    SGLC_GRAMMAR_JSON_SCHEMA = 0, /* a JSON Schema document */
    SGLC_GRAMMAR_JSON_OBJECT,     /* any JSON object (src ignored) */
    SGLC_GRAMMAR_REGEX,           /* the whole output fullmatches the regex */
    SGLC_GRAMMAR_EBNF,            /* GBNF / SGLang EBNF with a root rule */
    SGLC_GRAMMAR_COUNT
} sglc_grammar_kind;

/* Compiles a grammar for this engine's vocabulary. Thread-safe (HTTP threads call it while
 * requests run). Returns 0 and a handle with one reference, or < 0 with one line in err naming
 * the problem (a client error: HTTP 400). Release every grammar before closing the engine. */
int sglc_engine_grammar_compile(sglc_engine *e, sglc_grammar_kind kind, const char *src, size_t len,
                                sglc_grammar **out, char *err, size_t errlen);
/* Drops one reference; NULL is fine. */
void sglc_grammar_release(sglc_grammar *g);
/* Takes one more reference and returns g (NULL is fine). The engine keeps the last compiled
 * grammars by source, so compiling the same source again returns the same grammar (its mask
 * cache warm) without compiling. */
sglc_grammar *sglc_grammar_retain(const sglc_grammar *g);

/* Model facts and tokenizer access for front ends. The engine's tokenizer is immutable, so these
 * may be called from any thread while requests run. */
typedef struct {
    const char *model_path;     /* borrowed from the engine */
    const char *tokenizer_path; /* borrowed; NULL when the model's own */
    const char *arch;           /* "llama", "qwen2", ... */
    const char *chat_template;  /* Jinja source from the model; NULL when none */
    int32_t n_layer, n_embd, n_head, n_head_kv, vocab_size;
    int32_t context_length;       /* the engine's (--context-length or the model's) */
    int32_t context_length_train; /* the model's */
    int64_t kv_pool_size;         /* tokens */
    size_t weight_bytes;
    int32_t bos_id, eos_id; /* -1 when none */
    int add_bos;            /* the model prepends bos to raw prompts */
    int32_t max_running_requests;
    int32_t chunked_prefill_size; /* the engine's, -1 when off */
} sglc_model_info;

void sglc_engine_get_model_info(sglc_engine *e, sglc_model_info *out);
/* Encodes text (parse_special: special-token markup becomes the token); writes at most cap ids
 * and returns how many the text needs, or < 0. */
int64_t sglc_engine_tokenize(sglc_engine *e, const char *text, size_t len, int parse_special,
                             int add_bos, int32_t *ids, size_t cap);
/* Decodes ids into out (at most cap bytes, no NUL); returns the bytes needed (0 when an id is
 * outside the vocabulary: check ids first). */
size_t sglc_engine_detokenize(sglc_engine *e, const int32_t *ids, size_t n, int skip_special,
                              char *out, size_t cap);
/* The bytes of one token (may be a partial UTF-8 sequence); NULL for a bad id. */
const char *sglc_engine_token_text(sglc_engine *e, int32_t id, size_t *len);
/* End-of-generation token (eos, <|im_end|>, ...). */
int sglc_engine_is_eog(sglc_engine *e, int32_t id);

#endif
