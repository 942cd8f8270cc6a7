/* Private to src/server/: the per-server and per-connection state every file of the HTTP front
 * end shares, the request limits, and the functions one file of it offers the others (all named
 * sglc_srv_*). Nothing outside src/server/ includes this; the public face is server/server.h.
 * Which file owns what:
 *   http.c        libmicrohttpd glue: responses, request body, connection lifetime, routing,
 *                 sglc_server_run (listen, load, drain)
 *   validate.c    field validators and the sampling parameters shared by both APIs
 *   prompt.c      prompts to token ids: tokenizing, id lists, batches, chat template rendering
 *   generation.c  submitting a request's choices to the engine and the non-streaming answer
 *   native.c      SGLang's native endpoints (/generate, /get_model_info, /tokenize, ...)
 *   openai.c      the OpenAI endpoints (/v1/completions, /v1/chat/completions, /v1/models)
 *   sse.c         streamed answers (server-sent events) of both APIs
 *   metrics.c     Prometheus /metrics
 *   structured.c  structured-output constraints (json_schema, regex, ebnf, response_format)
 *   chat_output.c the assistant message: reasoning_content, content, tool_calls
 *   score.c       /v1/score (label-token probabilities after query + item)
 *   reasoning.c, tool_parser.c: pure parsers of model output (own headers) */
#ifndef SGLC_SERVER_SERVER_IMPL_H
#define SGLC_SERVER_SERVER_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "server/server.h"
#include "sglc.h"
#include "server/reasoning.h"
#include "server/tool_parser.h"
#include "tokenizer/chat_template.h"

#define MAX_N 16
#define MAX_STOP 64
#define MAX_STOP_LEN 1024
#define MAX_STOP_IDS 256
#define MAX_TOP_LOGPROBS 20
#define MAX_BATCH 256           /* prompts in one /generate or /v1/completions request */
#define MAX_CHOICES 256         /* prompts x n */
#define ABSURD_BODY (64u << 20) /* beyond this, refuse without reading the body */
#define WAIT_SLICE_MS 100

typedef struct conn_ctx conn_ctx;

typedef struct {
    sglc_server_params p;
    _Atomic(sglc_engine *) engine;
    atomic_int draining;
    sglc_model_info info;
    char model_name[512];
    struct MHD_Daemon *daemon;
    pthread_mutex_t mu; /* inflight, active list */
    pthread_cond_t cv;
    int inflight;
    conn_ctx *active;
    atomic_llong next_rid;
    double t_start;
} server;

typedef enum { API_NATIVE = 0, API_COMPLETIONS, API_CHAT, API_KIND_COUNT } api_kind;

struct conn_ctx {
    server *srv;
    struct MHD_Connection *conn;
    char *body;
    size_t len, cap;
    int too_large, counted, registered;
    conn_ctx *next_active;
    /* generation */
    api_kind api;
    int stream, n, include_usage, return_logprob, top_logprobs;
    /* choice i answers prompt i / n_per_prompt; n = prompts x n_per_prompt (alloc_choices) */
    int n_per_prompt, batch; /* batch: the prompt was a list (results carry their index) */
    sglc_request **reqs;
    int32_t *seen;
    size_t *sent_text;
    int *fin, *first_sent;
    int32_t *completion_tokens, *cached;
    int32_t prompt_tokens, cached_tokens;
    /* per-prompt copies of stop lists, stop ids and logit bias (one when shared) */
    struct item_args *args;
    int n_args;
    sglc_grammar *grammar; /* the constraint being parsed (OpenAI: the request's), owned */
    int32_t *bias_ids;     /* logit_bias being parsed, [SGLC_MAX_LOGIT_BIAS] */
    float *bias_vals;
    char rid[128];
    char id[64];
    long long created;
    const char *stops[MAX_STOP];
    int32_t stop_ids[MAX_STOP_IDS];
    cJSON *stop_json; /* owns the strings stops[] points to */
    /* chat answers (chat_output.c): reasoning split and tool calls; per choice, what a stream
     * has sent of each */
    sglc_reasoning_kind reasoning;
    sglc_tool_parser_kind tool_parser;
    int tool_forced;      /* tool_choice required / named: the answer is a JSON array of calls */
    int continuous_usage; /* stream_options.continuous_usage_stats: usage in every chunk */
    char *req_model; /* the request's "model", echoed in responses (a copy: streams outlive body) */
    int return_text_in_logprobs; /* token text in the third slot of logprob triples */
    int32_t lp_ids[SGLC_MAX_LOGPROB_TOKEN_IDS]; /* token_ids_logprob */
    int n_lp_ids;
    int32_t **prompt_ids; /* the prompts' ids, kept for prompt logprobs (owned) */
    int32_t *prompt_len;
    int n_prompt_ids;
    int echo;          /* completions: the prompt's text comes first in each choice */
    char **echo_texts; /* [n_echo], one per prompt */
    int n_echo;
    size_t *sent_reasoning, *sent_content;
    int *sent_calls;
    /* streaming output */
    char *pend;
    size_t pend_len, pend_pos, pend_cap;
    int done_sent, stream_over;
    double t0;
};

/* What sglc_srv_parse_sampling gathered for one prompt, detached from conn_ctx so that a list of
 * sampling_params keeps each item's stop strings (native results name the matched one). */
typedef struct item_args {
    cJSON *stop_json; /* owns the strings stops[] points to */
    const char *stops[MAX_STOP];
    int32_t stop_ids[MAX_STOP_IDS];
    int32_t *bias_ids;
    float *bias_vals;
    sglc_grammar *grammar; /* owned */
} item_args;

/* Prompts of one request: one, or a batch (the JSON field was a list). */
typedef struct {
    int n;
    int32_t **ids;
    int32_t *len;
} prompt_list;

/* http.c */
double sglc_srv_now_s(void);
enum MHD_Result sglc_srv_send_text(struct MHD_Connection *conn, unsigned status, const char *ctype,
                                   const char *body, size_t len, const char *retry_after);
enum MHD_Result sglc_srv_send_json(struct MHD_Connection *conn, unsigned status,
                                   cJSON *j); /* takes j */
enum MHD_Result sglc_srv_send_error(struct MHD_Connection *conn, unsigned status, const char *msg);
char *sglc_srv_utf8_sanitize(const char *s, size_t n); /* malloc'd; NULL when out of memory */
int sglc_srv_peer_gone(struct MHD_Connection *conn);
void sglc_srv_register_active(server *s,
                              conn_ctx *c); /* for /abort_request; ctx_free unregisters */

/* validate.c: each returns 1 when present and valid, 0 when absent (or null), -1 with err */
int sglc_srv_opt_int(const cJSON *o, const char *key, double lo, double hi, int64_t *out, char *err,
                     size_t el);
int sglc_srv_opt_bool(const cJSON *o, const char *key, int *out, char *err, size_t el);
int sglc_srv_parse_sampling(conn_ctx *c, const cJSON *o, const char *max_key, const char *max_key2,
                            const char *min_key, const char *seed_key, int32_t default_max,
                            sglc_request_params *rp, int *has_max, char *err, size_t el);
int sglc_srv_detach_args(conn_ctx *c, item_args *a, sglc_request_params *rp);
/* -1 with err naming the first request field sglc does not implement (given and not false) */
int sglc_srv_refuse_unsupported(const cJSON *o, char *err, size_t el);
/* a token_ids_logprob list (a: the field's value, NULL when absent) into c->lp_ids: 1, 0 when
 * absent, -1 with err */
int sglc_srv_parse_token_ids_logprob(conn_ctx *c, const cJSON *a, char *err, size_t el);

/* score.c */
enum MHD_Result sglc_srv_handle_score(conn_ctx *c, cJSON *body);

/* structured.c: json_schema / regex / ebnf in o (sampling_params, or an OpenAI body), and
 * OpenAI's response_format. Each returns 1 with *out compiled (owned by the caller), 0 when
 * absent, -1 with err (400). */
int sglc_srv_parse_constraint(conn_ctx *c, const cJSON *o, sglc_grammar **out, char *err,
                              size_t el);
int sglc_srv_parse_response_format(conn_ctx *c, const cJSON *body, sglc_grammar **out, char *err,
                                   size_t el);

/* chat_output.c: the assistant message of a finished chat choice (content, reasoning_content,
 * tool_calls), and a stream's delta for choice i (what the split gained since the last one);
 * both set *has_calls when the answer holds tool calls (finish_reason "tool_calls"). */
cJSON *sglc_srv_chat_message(conn_ctx *c, int i, const sglc_output *o, int *has_calls);
int sglc_srv_chat_delta(conn_ctx *c, int i, const sglc_output *o, cJSON *delta, int *has_calls);
int sglc_srv_chat_alloc(conn_ctx *c, int n);

/* prompt.c */
int sglc_srv_tokenize_alloc(sglc_engine *e, const char *text, size_t len, int add_bos,
                            int32_t **ids, int32_t *n, char *err, size_t el);
int sglc_srv_ids_from_json(const cJSON *a, const char *field, int32_t vocab, int32_t **ids,
                           int32_t *n, char *err, size_t el);
/* tools: the array the template sees as `tools` (NULL: none); continue_final: the prompt ends
 * inside the final (assistant) message instead of opening a new turn */
int sglc_srv_render_chat(server *s, const cJSON *body, const cJSON *tools, int continue_final,
                         char **prompt, sglc_chat_template_span **spans, size_t *n_spans, char *err,
                         size_t el);
int sglc_srv_tokenize_chat(sglc_engine *e, const char *prompt, const sglc_chat_template_span *spans,
                           size_t n_spans, int32_t **ids, int32_t *n, char *err, size_t el);
void sglc_srv_prompts_free(prompt_list *pl);
/* moves pl's prompts into c (prompt logprobs name their tokens); pl is left empty */
void sglc_srv_keep_prompts(conn_ctx *c, prompt_list *pl);
int sglc_srv_prompts_alloc(prompt_list *pl, int n, char *err, size_t el);
int sglc_srv_batch_len(const cJSON *a, const char *field, char *err, size_t el);

/* generation.c */
const char *sglc_srv_finish_str(sglc_finish_reason f);
/* completions with echo: t (malloc'd, taken) with choice i's prompt text before it; t itself
 * without echo; NULL when out of memory */
char *sglc_srv_prepend_echo(const conn_ctx *c, int i, char *t);
enum MHD_Result sglc_srv_finish_generation(conn_ctx *c);
unsigned sglc_srv_submit_all(conn_ctx *c, int n_prompts, int32_t *const *ids, const int32_t *n_ids,
                             const sglc_request_params *rps, int n_rps, char *err, size_t el);
void sglc_srv_make_ids(conn_ctx *c, const char *prefix, const cJSON *body);

/* native.c */
cJSON *sglc_srv_native_result(conn_ctx *c, int i, const sglc_output *o);
enum MHD_Result sglc_srv_handle_generate(conn_ctx *c, cJSON *body);
enum MHD_Result sglc_srv_handle_server_info(conn_ctx *c);
enum MHD_Result sglc_srv_handle_get_load(conn_ctx *c);
enum MHD_Result sglc_srv_handle_model_info(conn_ctx *c);
enum MHD_Result sglc_srv_handle_tokenize(conn_ctx *c, cJSON *body);
enum MHD_Result sglc_srv_handle_detokenize(conn_ctx *c, cJSON *body);
enum MHD_Result sglc_srv_handle_abort(conn_ctx *c, cJSON *body);
enum MHD_Result sglc_srv_handle_health_generate(conn_ctx *c);

/* openai.c */
cJSON *sglc_srv_openai_logprobs(conn_ctx *c, int choice, const sglc_output *o, int32_t from,
                                int32_t to, size_t text_offset0);
cJSON *sglc_srv_usage_json(conn_ctx *c);
cJSON *sglc_srv_openai_envelope(conn_ctx *c, int chunk);
void sglc_srv_add_finish(conn_ctx *c, cJSON *choice, const sglc_output *o, int has_calls);
enum MHD_Result sglc_srv_handle_openai(conn_ctx *c, cJSON *body, api_kind api);
enum MHD_Result sglc_srv_handle_models(conn_ctx *c, const char *id); /* id: /v1/models/{id} */

/* sse.c: the content reader of a streamed answer (MHD_create_response_from_callback) */
ssize_t sglc_srv_stream_reader(void *cls, uint64_t pos, char *buf, size_t max);

/* metrics.c */
enum MHD_Result sglc_srv_handle_metrics(conn_ctx *c);

#endif
