/* HTTP front end of `sglc serve` on libmicrohttpd (one thread per connection): parses and
 * validates JSON requests (cJSON), renders chat templates, tokenizes, submits to the engine and
 * waits on the request mailboxes. Streaming responses are produced by a content reader that
 * waits on the mailbox in short slices and checks whether the peer has gone; non-streaming ones
 * wait in the handler the same way. Every engine handle a connection made is released exactly
 * once, in the request-completed callback, which also aborts requests still running (client
 * gone). Connection threads never touch model state: only the engine API of sglc.h. */
#include "server/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "base/utf8.h"
#include "server/chat_page.h"
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
    int32_t *bias_ids; /* logit_bias being parsed, [SGLC_MAX_LOGIT_BIAS] */
    float *bias_vals;
    char rid[128];
    char id[64];
    long long created;
    const char *stops[MAX_STOP];
    int32_t stop_ids[MAX_STOP_IDS];
    cJSON *stop_json; /* owns the strings stops[] points to */
    /* streaming output */
    char *pend;
    size_t pend_len, pend_pos, pend_cap;
    int done_sent, stream_over;
    double t0;
};

/* What parse_sampling gathered for one prompt, detached from conn_ctx so that a list of
 * sampling_params keeps each item's stop strings (native results name the matched one). */
typedef struct item_args {
    cJSON *stop_json; /* owns the strings stops[] points to */
    const char *stops[MAX_STOP];
    int32_t stop_ids[MAX_STOP_IDS];
    int32_t *bias_ids;
    float *bias_vals;
} item_args;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---------- responses ---------- */

static enum MHD_Result send_text(struct MHD_Connection *conn, unsigned status, const char *ctype,
                                 const char *body, size_t len, const char *retry_after) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", ctype);
    if (retry_after) MHD_add_response_header(r, "Retry-After", retry_after);
    if (status == MHD_HTTP_UNAUTHORIZED) MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_json(struct MHD_Connection *conn, unsigned status, cJSON *j) {
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!s) return MHD_NO;
    enum MHD_Result r = send_text(conn, status, "application/json", s, strlen(s), NULL);
    free(s);
    return r;
}

static const char *error_type(unsigned status) {
    switch (status) {
    case 400: return "BadRequestError";
    case 401: return "AuthenticationError";
    case 404: return "NotFoundError";
    case 405: return "MethodNotAllowed";
    case 413: return "RequestTooLarge";
    case 503: return "ServiceUnavailable";
    default: return "InternalServerError";
    }
}

static enum MHD_Result send_error(struct MHD_Connection *conn, unsigned status, const char *msg) {
    cJSON *root = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddStringToObject(e, "type", error_type(status));
    cJSON_AddNumberToObject(e, "code", status);
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!s) return MHD_NO;
    enum MHD_Result r =
        send_text(conn, status, "application/json", s, strlen(s), status == 503 ? "1" : NULL);
    free(s);
    return r;
}

/* Text made valid UTF-8 (ill-formed bytes become U+FFFD), for token pieces in JSON. */
static char *utf8_sanitize(const char *s, size_t n) {
    char *o = malloc(n * 3 + 1);
    if (!o) return NULL;
    size_t j = 0, i = 0;
    const unsigned char *u = (const unsigned char *)s;
    while (i < n) {
        int r = sglc_utf8_scan(u + i, n - i);
        if (r > 0) {
            memcpy(o + j, s + i, (size_t)r);
            j += (size_t)r;
            i += (size_t)r;
        } else {
            memcpy(o + j, "\xEF\xBF\xBD", 3);
            j += 3;
            i++; /* one U+FFFD per ill-formed byte */
        }
    }
    o[j] = 0;
    return o;
}

/* ---------- request body and field validation ---------- */

static int peer_gone(struct MHD_Connection *conn) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return 0;
    char b;
    ssize_t r = recv(ci->connect_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (r == 0) return 1;
    if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return 1;
    return 0;
}

static cJSON *parse_body(conn_ctx *c, char *err, size_t el) {
    if (c->len == 0) {
        snprintf(err, el, "the request body is empty (expected a JSON object)");
        return NULL;
    }
    if (!sglc_utf8_valid(c->body, c->len)) {
        snprintf(err, el, "the request body is not valid UTF-8");
        return NULL;
    }
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(c->body, c->len, &end, 0);
    if (!j) {
        snprintf(err, el, "invalid JSON in the request body");
        return NULL;
    }
    while (end && end < c->body + c->len &&
           (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t'))
        end++;
    if (end && end < c->body + c->len && *end) {
        cJSON_Delete(j);
        snprintf(err, el, "trailing bytes after the JSON value in the request body");
        return NULL;
    }
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        snprintf(err, el, "the request body must be a JSON object");
        return NULL;
    }
    return j;
}

/* Each returns 1 when present and valid, 0 when absent (or null), -1 with err naming the field. */
static int opt_number(const cJSON *o, const char *key, double lo, double hi, double *out, char *err,
                      size_t el) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) {
        snprintf(err, el, "'%s' must be a finite number", key);
        return -1;
    }
    if (v->valuedouble < lo || v->valuedouble > hi) {
        snprintf(err, el, "'%s' = %g is out of range [%g, %g]", key, v->valuedouble, lo, hi);
        return -1;
    }
    *out = v->valuedouble;
    return 1;
}

static int opt_int(const cJSON *o, const char *key, double lo, double hi, int64_t *out, char *err,
                   size_t el) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) ||
        floor(v->valuedouble) != v->valuedouble) {
        snprintf(err, el, "'%s' must be an integer", key);
        return -1;
    }
    if (v->valuedouble < lo || v->valuedouble > hi) {
        snprintf(err, el, "'%s' = %.0f is out of range [%.0f, %.0f]", key, v->valuedouble, lo, hi);
        return -1;
    }
    *out = (int64_t)v->valuedouble;
    return 1;
}

static int opt_bool(const cJSON *o, const char *key, int *out, char *err, size_t el) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsBool(v)) {
        snprintf(err, el, "'%s' must be a boolean", key);
        return -1;
    }
    *out = cJSON_IsTrue(v);
    return 1;
}

#define TRY(x)                                                                                     \
    do {                                                                                           \
        if ((x) < 0) return -1;                                                                    \
    } while (0)

/* logit_bias: {"token id": bias} (OpenAI; SGLang's sampling_params use the same map). Keys are
 * decimal token ids in the vocabulary, values finite numbers in [-100, 100] (OpenAI's range,
 * applied to /generate too), at most SGLC_MAX_LOGIT_BIAS entries. */
static int parse_logit_bias(conn_ctx *c, const cJSON *o, sglc_request_params *rp, char *err,
                            size_t el) {
    const cJSON *lb = cJSON_GetObjectItemCaseSensitive(o, "logit_bias");
    if (!lb || cJSON_IsNull(lb)) return 0;
    if (!cJSON_IsObject(lb)) {
        snprintf(err, el, "'logit_bias' must be an object mapping token ids to biases");
        return -1;
    }
    if (!c->bias_ids) {
        c->bias_ids = malloc(SGLC_MAX_LOGIT_BIAS * sizeof(int32_t));
        c->bias_vals = malloc(SGLC_MAX_LOGIT_BIAS * sizeof(float));
        if (!c->bias_ids || !c->bias_vals) {
            snprintf(err, el, "out of memory");
            return -1;
        }
    }
    int n = 0;
    for (const cJSON *e = lb->child; e; e = e->next) {
        const char *k = e->string ? e->string : "";
        size_t kl = strlen(k);
        int digits = kl > 0 && kl <= 10;
        for (size_t i = 0; digits && i < kl; i++)
            digits = k[i] >= '0' && k[i] <= '9';
        if (!digits) {
            snprintf(err, el, "'logit_bias' key '%.40s' is not an integer token id", k);
            return -1;
        }
        long long id = strtoll(k, NULL, 10);
        if (id >= c->srv->info.vocab_size) {
            snprintf(err, el, "'logit_bias' key '%s' is outside the vocabulary [0, %d)", k,
                     c->srv->info.vocab_size);
            return -1;
        }
        if (!cJSON_IsNumber(e) || !isfinite(e->valuedouble) || e->valuedouble < -100.0 ||
            e->valuedouble > 100.0) {
            snprintf(err, el, "'logit_bias' value for token %s must be a number in [-100, 100]", k);
            return -1;
        }
        if (n == SGLC_MAX_LOGIT_BIAS) {
            snprintf(err, el, "'logit_bias' has more than %d entries", SGLC_MAX_LOGIT_BIAS);
            return -1;
        }
        c->bias_ids[n] = (int32_t)id;
        c->bias_vals[n] = (float)e->valuedouble;
        n++;
    }
    rp->logit_bias_ids = c->bias_ids;
    rp->logit_bias = c->bias_vals;
    rp->n_logit_bias = n;
    return 0;
}

/* Sampling parameters under the given names; the others are shared by both APIs. */
static int parse_sampling(conn_ctx *c, const cJSON *o, const char *max_key, const char *max_key2,
                          const char *min_key, const char *seed_key, int32_t default_max,
                          sglc_request_params *rp, int *has_max, char *err, size_t el) {
    double d;
    int64_t i;
    int b, r;
    *has_max = 0;
    rp->max_new_tokens = default_max;
    TRY(r = opt_int(o, max_key, 1, 2147483647.0 - 1, &i, err, el));
    if (r) rp->max_new_tokens = (int32_t)i, *has_max = 1;
    if (max_key2) {
        TRY(r = opt_int(o, max_key2, 1, 2147483647.0 - 1, &i, err, el));
        if (r) rp->max_new_tokens = (int32_t)i, *has_max = 1;
    }
    TRY(r = opt_int(o, min_key, 0, 2147483647.0 - 1, &i, err, el));
    if (r) rp->min_new_tokens = (int32_t)i;
    if (*has_max && rp->min_new_tokens > rp->max_new_tokens) {
        snprintf(err, el, "'%s' (%d) must not exceed '%s' (%d)", min_key, rp->min_new_tokens,
                 max_key, rp->max_new_tokens);
        return -1;
    }
    TRY(r = opt_number(o, "temperature", 0.0, 100.0, &d, err, el));
    if (r) rp->temperature = (float)d;
    TRY(r = opt_number(o, "top_p", 0.0, 1.0, &d, err, el));
    if (r) {
        if (d <= 0.0) {
            snprintf(err, el, "'top_p' must be in (0, 1]");
            return -1;
        }
        rp->top_p = (float)d;
    }
    TRY(r = opt_int(o, "top_k", -1, 1 << 30, &i, err, el));
    if (r) {
        if (i == 0) {
            snprintf(err, el, "'top_k' must be -1 (off) or at least 1");
            return -1;
        }
        rp->top_k = (int32_t)i;
    }
    TRY(r = opt_number(o, "min_p", 0.0, 1.0, &d, err, el));
    if (r) rp->min_p = (float)d;
    TRY(r = opt_number(o, "frequency_penalty", -2.0, 2.0, &d, err, el));
    if (r) rp->frequency_penalty = (float)d;
    TRY(r = opt_number(o, "presence_penalty", -2.0, 2.0, &d, err, el));
    if (r) rp->presence_penalty = (float)d;
    TRY(r = opt_number(o, "repetition_penalty", 0.0, 100.0, &d, err, el));
    if (r) {
        if (d <= 0.0) {
            snprintf(err, el, "'repetition_penalty' must be positive");
            return -1;
        }
        rp->repetition_penalty = (float)d;
    }
    TRY(r = opt_bool(o, "ignore_eos", &b, err, el));
    if (r) rp->ignore_eos = b;
    TRY(r = opt_bool(o, "skip_special_tokens", &b, err, el));
    if (r) rp->skip_special_tokens = b;
    TRY(r = opt_bool(o, "no_stop_trim", &b, err, el));
    if (r) rp->no_stop_trim = b;
    const cJSON *sv = cJSON_GetObjectItemCaseSensitive(o, seed_key);
    if (sv && !cJSON_IsNull(sv)) {
        if (!cJSON_IsNumber(sv) || !isfinite(sv->valuedouble) ||
            floor(sv->valuedouble) != sv->valuedouble || sv->valuedouble < -9223372036854775808.0 ||
            sv->valuedouble > 18446744073709551616.0) {
            snprintf(err, el, "'%s' must be an integer in [-2^63, 2^64)", seed_key);
            return -1;
        }
        /* JSON numbers arrive as doubles: seeds beyond 2^53 are taken at double precision
         * (deterministically), and 2^64 - 1 rounds up to 2^64, which maps to UINT64_MAX */
        rp->has_seed = 1;
        rp->seed = sv->valuedouble < 0                         ? (uint64_t)(int64_t)sv->valuedouble
                   : sv->valuedouble >= 18446744073709551615.0 ? UINT64_MAX
                                                               : (uint64_t)sv->valuedouble;
    }
    /* stop: a string or a list of strings */
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(o, "stop");
    if (st && !cJSON_IsNull(st)) {
        c->stop_json = cJSON_Duplicate(st, 1);
        if (!c->stop_json) {
            snprintf(err, el, "out of memory");
            return -1;
        }
        int n = 0;
        if (cJSON_IsString(c->stop_json)) {
            c->stops[n++] = c->stop_json->valuestring;
        } else if (cJSON_IsArray(c->stop_json)) {
            for (cJSON *e = c->stop_json->child; e; e = e->next) {
                if (!cJSON_IsString(e)) {
                    snprintf(err, el, "'stop' must be a string or a list of strings");
                    return -1;
                }
                if (n == MAX_STOP) {
                    snprintf(err, el, "'stop' has more than %d entries", MAX_STOP);
                    return -1;
                }
                c->stops[n++] = e->valuestring;
            }
        } else {
            snprintf(err, el, "'stop' must be a string or a list of strings");
            return -1;
        }
        for (int k = 0; k < n; k++) {
            size_t L = strlen(c->stops[k]);
            if (L == 0 || L > MAX_STOP_LEN) {
                snprintf(err, el, "'stop' strings must be 1 to %d bytes long", MAX_STOP_LEN);
                return -1;
            }
        }
        rp->stop = c->stops;
        rp->n_stop = n;
    }
    const cJSON *sti = cJSON_GetObjectItemCaseSensitive(o, "stop_token_ids");
    if (sti && !cJSON_IsNull(sti)) {
        if (!cJSON_IsArray(sti)) {
            snprintf(err, el, "'stop_token_ids' must be a list of token ids");
            return -1;
        }
        int n = 0;
        for (const cJSON *e = sti->child; e; e = e->next) {
            if (!cJSON_IsNumber(e) || floor(e->valuedouble) != e->valuedouble ||
                e->valuedouble < 0 || e->valuedouble >= c->srv->info.vocab_size) {
                snprintf(err, el, "'stop_token_ids' entries must be token ids in [0, %d)",
                         c->srv->info.vocab_size);
                return -1;
            }
            if (n == MAX_STOP_IDS) {
                snprintf(err, el, "'stop_token_ids' has more than %d entries", MAX_STOP_IDS);
                return -1;
            }
            c->stop_ids[n++] = (int32_t)e->valuedouble;
        }
        rp->stop_token_ids = c->stop_ids;
        rp->n_stop_token_ids = n;
    }
    TRY(parse_logit_bias(c, o, rp, err, el));
    return 0;
}

/* ---------- prompts ---------- */

static int tokenize_alloc(sglc_engine *e, const char *text, size_t len, int add_bos, int32_t **ids,
                          int32_t *n, char *err, size_t el) {
    int64_t need = sglc_engine_tokenize(e, text, len, 1, add_bos, NULL, 0);
    if (need < 0 || need > (1 << 24)) {
        snprintf(err, el, "cannot tokenize the prompt");
        return -1;
    }
    *ids = malloc(((size_t)need + 1) * sizeof(int32_t));
    if (!*ids) {
        snprintf(err, el, "out of memory");
        return -1;
    }
    sglc_engine_tokenize(e, text, len, 1, add_bos, *ids, (size_t)need);
    *n = (int32_t)need;
    return 0;
}

static int ids_from_json(const cJSON *a, const char *field, int32_t vocab, int32_t **ids,
                         int32_t *n, char *err, size_t el) {
    int cnt = cJSON_GetArraySize(a);
    *ids = malloc(((size_t)cnt + 1) * sizeof(int32_t));
    if (!*ids) {
        snprintf(err, el, "out of memory");
        return -1;
    }
    int k = 0;
    for (const cJSON *e = a->child; e; e = e->next, k++) {
        if (!cJSON_IsNumber(e) || floor(e->valuedouble) != e->valuedouble) {
            snprintf(err, el, "'%s' must be a list of integer token ids", field);
            return -1;
        }
        if (e->valuedouble < 0 || e->valuedouble >= vocab) {
            snprintf(err, el, "'%s'[%d] = %.0f is outside the vocabulary [0, %d)", field, k,
                     e->valuedouble, vocab);
            return -1;
        }
        (*ids)[k] = (int32_t)e->valuedouble;
    }
    *n = k;
    return 0;
}

/* messages -> normalized [{role, content}] + extra keys kept; renders the model's template.
 * *spans (malloc'd) are the prompt's byte ranges that came from the request (tokenize_chat). */
static int render_chat(server *s, const cJSON *body, char **prompt, sglc_chat_template_span **spans,
                       size_t *n_spans, char *err, size_t el) {
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(body, "messages");
    if (!cJSON_IsArray(msgs)) {
        snprintf(err, el, "'messages' must be a list of messages");
        return -1;
    }
    if (!msgs->child) {
        snprintf(err, el, "'messages' must not be empty");
        return -1;
    }
    cJSON *norm = cJSON_CreateArray();
    int idx = 0, rc = -1;
    for (const cJSON *m = msgs->child; m; m = m->next, idx++) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (!cJSON_IsObject(m) || !cJSON_IsString(role)) {
            snprintf(err, el, "'messages'[%d] must be an object with a string 'role'", idx);
            goto done;
        }
        cJSON *nm = cJSON_Duplicate(m, 1);
        cJSON_AddItemToArray(norm, nm);
        if (cJSON_IsArray(content)) {
            /* text parts are joined; other parts are not supported by a text model */
            size_t cap = 1, len = 0;
            for (const cJSON *p = content->child; p; p = p->next) {
                const cJSON *t = cJSON_GetObjectItemCaseSensitive(p, "text");
                const cJSON *ty = cJSON_GetObjectItemCaseSensitive(p, "type");
                if (!cJSON_IsString(ty) || strcmp(ty->valuestring, "text") != 0 ||
                    !cJSON_IsString(t)) {
                    snprintf(err, el, "'messages'[%d].content: only text parts are supported", idx);
                    goto done;
                }
                cap += strlen(t->valuestring);
            }
            char *joined = malloc(cap);
            if (!joined) goto done;
            for (const cJSON *p = content->child; p; p = p->next) {
                const char *t = cJSON_GetObjectItemCaseSensitive(p, "text")->valuestring;
                size_t L = strlen(t);
                memcpy(joined + len, t, L);
                len += L;
            }
            joined[len] = 0;
            cJSON_ReplaceItemInObjectCaseSensitive(nm, "content", cJSON_CreateString(joined));
            free(joined);
        } else if (!content || cJSON_IsNull(content)) {
            if (content)
                cJSON_ReplaceItemInObjectCaseSensitive(nm, "content", cJSON_CreateString(""));
            else
                cJSON_AddStringToObject(nm, "content", "");
        } else if (!cJSON_IsString(content)) {
            snprintf(err, el, "'messages'[%d].content must be a string or a list of text parts",
                     idx);
            goto done;
        }
    }
    const cJSON *kw = cJSON_GetObjectItemCaseSensitive(body, "chat_template_kwargs");
    if (kw && !cJSON_IsNull(kw) && !cJSON_IsObject(kw)) {
        snprintf(err, el, "'chat_template_kwargs' must be an object");
        goto done;
    }
    int agp = 1;
    const cJSON *agpj = cJSON_GetObjectItemCaseSensitive(body, "add_generation_prompt");
    if (agpj && !cJSON_IsNull(agpj)) {
        if (!cJSON_IsBool(agpj)) {
            snprintf(err, el, "'add_generation_prompt' must be a boolean");
            goto done;
        }
        agp = cJSON_IsTrue(agpj);
    }
    sglc_engine *e = atomic_load(&s->engine);
    size_t bl = 0, elen = 0;
    const char *bos = s->info.bos_id >= 0 ? sglc_engine_token_text(e, s->info.bos_id, &bl) : NULL;
    const char *eos = s->info.eos_id >= 0 ? sglc_engine_token_text(e, s->info.eos_id, &elen) : NULL;
    char bos_s[256] = "", eos_s[256] = "";
    if (bos) snprintf(bos_s, sizeof bos_s, "%.*s", (int)bl, bos);
    if (eos) snprintf(eos_s, sizeof eos_s, "%.*s", (int)elen, eos);
    sglc_chat_template_vars v = {.messages = norm,
                                 .add_generation_prompt = agp,
                                 .bos_token = bos_s,
                                 .eos_token = eos_s,
                                 .extra_vars = cJSON_IsObject(kw) ? kw : NULL};
    char terr[400];
    if (sglc_chat_template_render_spans(s->info.chat_template, &v, prompt, spans, n_spans, terr,
                                        sizeof terr) != 0) {
        snprintf(err, el, "chat template: %s", terr);
        goto done;
    }
    rc = 0;
done:
    cJSON_Delete(norm);
    return rc;
}

/* Whether text from the request holds special-token markup that parse_special would turn into
 * special tokens (its ids differ with and without special parsing). */
static int has_special_markup(sglc_engine *e, const char *text, size_t len) {
    int64_t n1 = sglc_engine_tokenize(e, text, len, 1, 0, NULL, 0);
    int64_t n0 = sglc_engine_tokenize(e, text, len, 0, 0, NULL, 0);
    if (n1 != n0 || n1 <= 0) return n1 != n0;
    int32_t *a = malloc(2 * (size_t)n1 * sizeof *a);
    if (!a) return 1; /* conservative: keep it plain */
    sglc_engine_tokenize(e, text, len, 1, 0, a, (size_t)n1);
    sglc_engine_tokenize(e, text, len, 0, 0, a + n1, (size_t)n1);
    int diff = memcmp(a, a + n1, (size_t)n1 * sizeof *a) != 0;
    free(a);
    return diff;
}

/* Tokenizes a rendered chat prompt (ROBUSTNESS.md §19): special-token markup written by the
 * template becomes special tokens, markup inside request data (spans) stays plain text. Spans
 * without markup are tokenized together with the template text around them, so such prompts
 * get exactly the ids of tokenizing the whole prompt (as transformers does); a span with markup
 * is cut out and encoded with parse_special off. */
static int tokenize_chat(sglc_engine *e, const char *prompt, const sglc_chat_template_span *spans,
                         size_t n_spans, int32_t **ids, int32_t *n, char *err, size_t el) {
    size_t len = strlen(prompt), start = 0, cap = 0;
    int32_t *out = NULL;
    int64_t total = 0;
    for (size_t i = 0; i <= n_spans; i++) {
        size_t cut = i < n_spans ? spans[i].off : len, clen = i < n_spans ? spans[i].len : 0;
        if (i < n_spans && (cut < start || cut + clen > len)) continue;
        if (i < n_spans && !has_special_markup(e, prompt + cut, clen)) continue;
        /* template text (with unprotected spans) in [start, cut), then the span, plain */
        for (int part = 0; part < 2; part++) {
            const char *t = part ? prompt + cut : prompt + start;
            size_t tl = part ? clen : cut - start;
            if (!tl) continue;
            int64_t need = sglc_engine_tokenize(e, t, tl, !part, 0, NULL, 0);
            if (need < 0 || total + need > (1 << 24)) {
                free(out);
                snprintf(err, el, "cannot tokenize the prompt");
                return -1;
            }
            if ((size_t)(total + need) + 1 > cap) {
                size_t ncap = (size_t)(total + need) * 2 + 16;
                int32_t *o = realloc(out, ncap * sizeof *o);
                if (!o) {
                    free(out);
                    snprintf(err, el, "out of memory");
                    return -1;
                }
                out = o;
                cap = ncap;
            }
            sglc_engine_tokenize(e, t, tl, !part, 0, out + total, (size_t)need);
            total += need;
        }
        start = cut + clen;
    }
    if (!out && !(out = malloc(sizeof *out))) {
        snprintf(err, el, "out of memory");
        return -1;
    }
    *ids = out;
    *n = (int32_t)total;
    return 0;
}

/* ---------- active requests (for /abort_request) ---------- */

static void register_active(server *s, conn_ctx *c) {
    pthread_mutex_lock(&s->mu);
    c->next_active = s->active;
    s->active = c;
    c->registered = 1;
    pthread_mutex_unlock(&s->mu);
}

static void unregister_active(server *s, conn_ctx *c) {
    pthread_mutex_lock(&s->mu);
    if (c->registered) {
        for (conn_ctx **pp = &s->active; *pp; pp = &(*pp)->next_active)
            if (*pp == c) {
                *pp = c->next_active;
                break;
            }
        c->registered = 0;
    }
    pthread_mutex_unlock(&s->mu);
}

static void ctx_free(conn_ctx *c) {
    server *s = c->srv;
    unregister_active(s, c);
    for (int i = 0; c->reqs && i < c->n; i++)
        if (c->reqs[i]) {
            sglc_request_release(c->reqs[i]);
            c->reqs[i] = NULL;
        }
    free(c->reqs);
    free(c->seen);
    free(c->sent_text);
    free(c->fin);
    free(c->first_sent);
    free(c->completion_tokens);
    free(c->cached);
    for (int i = 0; i < c->n_args; i++) {
        cJSON_Delete(c->args[i].stop_json);
        free(c->args[i].bias_ids);
        free(c->args[i].bias_vals);
    }
    free(c->args);
    free(c->bias_ids);
    free(c->bias_vals);
    cJSON_Delete(c->stop_json);
    free(c->body);
    free(c->pend);
    if (c->counted) {
        pthread_mutex_lock(&s->mu);
        s->inflight--;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
    }
    free(c);
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

/* Moves what parse_sampling left in c (stop strings, stop ids, logit bias) into a, and points
 * rp at a's copies, so the next item can be parsed; 0, or -1 when out of memory. */
static int detach_args(conn_ctx *c, item_args *a, sglc_request_params *rp) {
    a->stop_json = c->stop_json;
    c->stop_json = NULL;
    memcpy(a->stops, c->stops, sizeof a->stops);
    if (rp->n_stop > 0) rp->stop = a->stops;
    memcpy(a->stop_ids, c->stop_ids, sizeof a->stop_ids);
    if (rp->n_stop_token_ids > 0) rp->stop_token_ids = a->stop_ids;
    if (rp->n_logit_bias > 0) {
        a->bias_ids = malloc((size_t)rp->n_logit_bias * sizeof(int32_t));
        a->bias_vals = malloc((size_t)rp->n_logit_bias * sizeof(float));
        if (!a->bias_ids || !a->bias_vals) return -1;
        memcpy(a->bias_ids, rp->logit_bias_ids, (size_t)rp->n_logit_bias * sizeof(int32_t));
        memcpy(a->bias_vals, rp->logit_bias, (size_t)rp->n_logit_bias * sizeof(float));
        rp->logit_bias_ids = a->bias_ids;
        rp->logit_bias = a->bias_vals;
    }
    return 0;
}

/* Prompts of one request: one, or a batch (the JSON field was a list). */
typedef struct {
    int n;
    int32_t **ids;
    int32_t *len;
} prompt_list;

static void prompts_free(prompt_list *pl) {
    for (int i = 0; pl->ids && i < pl->n; i++)
        free(pl->ids[i]);
    free(pl->ids);
    free(pl->len);
    memset(pl, 0, sizeof *pl);
}

/* Room for n prompts; 0, or -1 with err. */
static int prompts_alloc(prompt_list *pl, int n, char *err, size_t el) {
    pl->ids = calloc((size_t)n, sizeof *pl->ids);
    pl->len = calloc((size_t)n, sizeof *pl->len);
    pl->n = n;
    if (!pl->ids || !pl->len) {
        snprintf(err, el, "out of memory");
        return -1;
    }
    return 0;
}

/* A batch field (a list of prompts): its length, checked against MAX_BATCH; -1 with err. */
static int batch_len(const cJSON *a, const char *field, char *err, size_t el) {
    int n = cJSON_GetArraySize(a);
    if (n < 1) {
        snprintf(err, el, "'%s' is an empty list", field);
        return -1;
    }
    if (n > MAX_BATCH) {
        snprintf(err, el, "'%s' has %d prompts; the limit is %d", field, n, MAX_BATCH);
        return -1;
    }
    return n;
}

/* ---------- result JSON ---------- */

static const char *finish_str(sglc_finish_reason f) {
    switch (f) {
    case SGLC_FINISH_LENGTH: return "length";
    case SGLC_FINISH_STOP: return "stop";
    case SGLC_FINISH_ABORT: return "abort";
    default: return NULL;
    }
}

static cJSON *token_str_json(sglc_engine *e, int32_t id) {
    size_t L = 0;
    const char *t = sglc_engine_token_text(e, id, &L);
    char *s = utf8_sanitize(t ? t : "", t ? L : 0);
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
static cJSON *openai_logprobs(conn_ctx *c, const sglc_output *o, int32_t from, int32_t to,
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
            char *sv = utf8_sanitize(ts ? ts : "", ts ? L : 0);
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

static void native_logprobs(conn_ctx *c, cJSON *meta, const sglc_output *o) {
    int K = c->top_logprobs;
    cJSON *lps = cJSON_AddArrayToObject(meta, "output_token_logprobs");
    cJSON *tops = K > 0 ? cJSON_AddArrayToObject(meta, "output_top_logprobs") : NULL;
    for (int32_t t = 0; t < o->n_output; t++) {
        cJSON *tr = cJSON_CreateArray();
        cJSON_AddItemToArray(tr, cJSON_CreateNumber(o->logprobs[t]));
        cJSON_AddItemToArray(tr, cJSON_CreateNumber(o->output_ids[t]));
        cJSON_AddItemToArray(tr, cJSON_CreateNull());
        cJSON_AddItemToArray(lps, tr);
        if (!tops) continue;
        cJSON *row = cJSON_CreateArray();
        for (int k = 0; k < K; k++) {
            const sglc_token_logprob *tl = &o->top_logprobs[(size_t)t * (size_t)K + (size_t)k];
            cJSON *x = cJSON_CreateArray();
            cJSON_AddItemToArray(x, cJSON_CreateNumber(tl->logprob));
            cJSON_AddItemToArray(x, cJSON_CreateNumber(tl->token));
            cJSON_AddItemToArray(x, cJSON_CreateNull());
            cJSON_AddItemToArray(row, x);
        }
        cJSON_AddItemToArray(tops, row);
    }
}

/* Choice i's per-prompt arguments (stop strings); NULL when none were kept. */
static const item_args *args_of(const conn_ctx *c, int i) {
    if (!c->args || c->n_args < 1) return NULL;
    int p = c->n_per_prompt > 0 ? i / c->n_per_prompt : i;
    return &c->args[c->n_args == 1 || p >= c->n_args ? 0 : p];
}

static cJSON *native_result(conn_ctx *c, int i, const sglc_output *o) {
    cJSON *j = cJSON_CreateObject();
    char *t = utf8_sanitize(o->text, o->text_len);
    cJSON_AddStringToObject(j, "text", t ? t : "");
    free(t);
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
        cJSON_AddStringToObject(fr, "type", finish_str(o->finish_reason));
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
    cJSON_AddNumberToObject(m, "e2e_latency", now_s() - c->t0);
    if (c->return_logprob) native_logprobs(c, m, o);
    return j;
}

static cJSON *usage_json(conn_ctx *c) {
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

static cJSON *openai_envelope(conn_ctx *c, int chunk) {
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

static void add_finish(cJSON *choice, const sglc_output *o) {
    if (o && o->finished) {
        cJSON_AddStringToObject(choice, "finish_reason", finish_str(o->finish_reason));
        if (o->finish_reason == SGLC_FINISH_STOP && o->matched_stop_token >= 0)
            cJSON_AddNumberToObject(choice, "matched_stop", o->matched_stop_token);
    } else {
        cJSON_AddNullToObject(choice, "finish_reason");
    }
}

/* ---------- streaming ---------- */

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
    c->completion_tokens[i] = o->n_output;
    c->cached[i] = o->cached_tokens;
    if (c->api == API_NATIVE) {
        if (new_tokens || new_text || o->finished) {
            cJSON *j = native_result(c, i, o);
            if (c->batch) cJSON_AddNumberToObject(j, "index", i); /* as SGLang streams batches */
            if (pend_event(c, j)) return -1;
        }
    } else if (new_tokens || new_text || o->finished || !c->first_sent[i]) {
        cJSON *j = openai_envelope(c, 1);
        cJSON *choices = cJSON_AddArrayToObject(j, "choices");
        cJSON *ch = cJSON_CreateObject();
        cJSON_AddNumberToObject(ch, "index", i);
        char *t = utf8_sanitize(o->text + from, o->text_len - from);
        if (c->api == API_CHAT) {
            cJSON *d = cJSON_AddObjectToObject(ch, "delta");
            if (!c->first_sent[i]) cJSON_AddStringToObject(d, "role", "assistant");
            cJSON_AddStringToObject(d, "content", t ? t : "");
        } else {
            cJSON_AddStringToObject(ch, "text", t ? t : "");
        }
        free(t);
        if (c->return_logprob && o->n_output > tfrom)
            cJSON_AddItemToObject(ch, "logprobs", openai_logprobs(c, o, tfrom, o->n_output, from));
        else
            cJSON_AddNullToObject(ch, "logprobs");
        add_finish(ch, o);
        cJSON_AddItemToArray(choices, ch);
        if (pend_event(c, j)) return -1;
        c->first_sent[i] = 1;
    }
    c->sent_text[i] = o->text_len > c->sent_text[i] ? o->text_len : c->sent_text[i];
    c->seen[i] = o->n_output;
    if (o->finished) c->fin[i] = 1;
    return 0;
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max) {
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
                cJSON *j = openai_envelope(c, 1);
                cJSON_AddArrayToObject(j, "choices");
                cJSON_AddItemToObject(j, "usage", usage_json(c));
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
            sglc_request_wait(c->reqs[i], c->seen[i], &o, tmo);
            if (stream_choice(c, i, &o)) return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        if (c->pend_len == 0 && peer_gone(c->conn)) {
            for (int i = 0; i < c->n; i++)
                sglc_request_abort(c->reqs[i]);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
}

/* ---------- generation ---------- */

static enum MHD_Result finish_generation(conn_ctx *c) {
    server *s = c->srv;
    if (c->stream) {
        struct MHD_Response *r =
            MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_reader, c, NULL);
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
            if (peer_gone(c->conn)) {
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
                native = native_result(c, i, &o);
                break;
            }
            if (!native) native = cJSON_CreateArray();
            cJSON_AddItemToArray(native, native_result(c, i, &o));
            continue;
        }
        cJSON *ch = cJSON_CreateObject();
        cJSON_AddNumberToObject(ch, "index", i);
        char *t = utf8_sanitize(o.text, o.text_len);
        if (c->api == API_CHAT) {
            cJSON *m = cJSON_AddObjectToObject(ch, "message");
            cJSON_AddStringToObject(m, "role", "assistant");
            cJSON_AddStringToObject(m, "content", t ? t : "");
        } else {
            cJSON_AddStringToObject(ch, "text", t ? t : "");
        }
        free(t);
        if (c->return_logprob)
            cJSON_AddItemToObject(ch, "logprobs", openai_logprobs(c, &o, 0, o.n_output, 0));
        else
            cJSON_AddNullToObject(ch, "logprobs");
        add_finish(ch, &o);
        cJSON_AddItemToArray(choices, ch);
    }
    (void)s;
    if (native) {
        cJSON_Delete(choices);
        return send_json(c->conn, MHD_HTTP_OK, native);
    }
    cJSON *j = openai_envelope(c, 0);
    cJSON_AddItemToObject(j, "choices", choices);
    cJSON_AddItemToObject(j, "usage", usage_json(c));
    return send_json(c->conn, MHD_HTTP_OK, j);
}

/* Submits n_per_prompt choices for each prompt (siblings share their leader's prompt KV); rps
 * holds one parameter set per prompt, or one shared (n_rps == 1). 0 or an HTTP status. */
static unsigned submit_all(conn_ctx *c, int n_prompts, int32_t *const *ids, const int32_t *n_ids,
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
    register_active(s, c);
    return 0;
}

static void make_ids(conn_ctx *c, const char *prefix, const cJSON *body) {
    long long k = atomic_fetch_add(&c->srv->next_rid, 1);
    const cJSON *rid = body ? cJSON_GetObjectItemCaseSensitive(body, "rid") : NULL;
    if (cJSON_IsString(rid) && rid->valuestring[0])
        snprintf(c->rid, sizeof c->rid, "%s", rid->valuestring);
    else
        snprintf(c->rid, sizeof c->rid, "%016llx%08llx",
                 (unsigned long long)time(NULL) * 2654435761ull, k);
    snprintf(c->id, sizeof c->id, "%s%.40s", prefix, c->rid);
    c->created = (long long)time(NULL);
    c->t0 = now_s();
}

static enum MHD_Result handle_generate(conn_ctx *c, cJSON *body) {
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
    if (text) {
        /* a string, or a batch: a list of strings (SGLang answers with a list of results) */
        int n = 1;
        if (cJSON_IsArray(text)) {
            if ((n = batch_len(text, "text", err, sizeof err)) < 0) goto fail;
            c->batch = 1;
        } else if (!cJSON_IsString(text)) {
            snprintf(err, sizeof err, "'text' must be a string or a list of strings");
            goto fail;
        }
        if (prompts_alloc(&pl, n, err, sizeof err)) goto fail;
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
            if (tokenize_alloc(e, t->valuestring, strlen(t->valuestring), s->info.add_bos,
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
            if ((n = batch_len(input_ids, "input_ids", err, sizeof err)) < 0) goto fail;
            c->batch = 1;
        }
        if (prompts_alloc(&pl, n, err, sizeof err)) goto fail;
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
            if (ids_from_json(t, field, s->info.vocab_size, &pl.ids[k], &pl.len[k], err,
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
    if (opt_bool(body, "stream", &b, err, sizeof err) < 0) goto fail;
    c->stream = opt_bool(body, "stream", &b, err, sizeof err) > 0 && b;
    if (opt_bool(body, "return_logprob", &b, err, sizeof err) < 0) goto fail;
    c->return_logprob = opt_bool(body, "return_logprob", &b, err, sizeof err) > 0 && b;
    int r = opt_int(body, "top_logprobs_num", 0, MAX_TOP_LOGPROBS, &k, err, sizeof err);
    if (r < 0) goto fail;
    c->top_logprobs = r > 0 ? (int)k : 0;
    if (!c->return_logprob) c->top_logprobs = 0;
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
            if (parse_sampling(c, item, "max_new_tokens", NULL, "min_new_tokens", "sampling_seed",
                               128, rp, &has_max, ierr, sizeof ierr) ||
                opt_int(item, "n", 1, 1, &k, ierr, sizeof ierr) < 0) {
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
        if (detach_args(c, &c->args[i], rp)) {
            snprintf(err, sizeof err, "out of memory");
            status = 500;
            goto fail;
        }
    }
    make_ids(c, "", body);
    status = submit_all(c, pl.n, pl.ids, pl.len, rps, n_rps, err, sizeof err);
    if (status != 0) goto fail;
    prompts_free(&pl);
    free(rps);
    return finish_generation(c);
fail:
    prompts_free(&pl);
    free(rps);
    return send_error(c->conn, status ? status : 400, err);
}

static enum MHD_Result handle_openai(conn_ctx *c, cJSON *body, api_kind api) {
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
    if ((r = opt_int(body, "n", 1, MAX_N, &k, err, sizeof err)) < 0) goto fail;
    c->n_per_prompt = r ? (int)k : 1;
    if (api == API_CHAT) {
        sglc_chat_template_span *spans = NULL;
        size_t n_spans = 0;
        int trc = render_chat(s, body, &prompt, &spans, &n_spans, err, sizeof err) ||
                  tokenize_chat(e, prompt, spans, n_spans, &ids, &n_ids, err, sizeof err);
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
            if (tokenize_alloc(e, p->valuestring, strlen(p->valuestring), s->info.add_bos, &ids,
                               &n_ids, err, sizeof err))
                goto fail;
        } else if (cJSON_IsArray(p) && (!p->child || cJSON_IsNumber(p->child))) {
            if (ids_from_json(p, "prompt", s->info.vocab_size, &ids, &n_ids, err, sizeof err))
                goto fail;
        } else if (cJSON_IsArray(p) && (cJSON_IsString(p->child) || cJSON_IsArray(p->child))) {
            /* a batch: choices come back with index = prompt * n + j, as OpenAI numbers them */
            int n = batch_len(p, "prompt", err, sizeof err);
            if (n < 0 || prompts_alloc(&pl, n, err, sizeof err)) goto fail;
            c->batch = 1;
            const cJSON *t = p->child;
            for (int q = 0; q < n; q++, t = t->next) {
                char field[48];
                snprintf(field, sizeof field, "prompt[%d]", q);
                if (cJSON_IsString(t) && t->valuestring[0]) {
                    if (tokenize_alloc(e, t->valuestring, strlen(t->valuestring), s->info.add_bos,
                                       &pl.ids[q], &pl.len[q], err, sizeof err))
                        goto fail;
                } else if (cJSON_IsArray(t)) {
                    if (ids_from_json(t, field, s->info.vocab_size, &pl.ids[q], &pl.len[q], err,
                                      sizeof err))
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
        if ((r = opt_bool(body, "echo", &b, err, sizeof err)) < 0) goto fail;
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
    if (parse_sampling(c, body, "max_tokens", api == API_CHAT ? "max_completion_tokens" : NULL,
                       "min_tokens", "seed", def_max, &rp, &has_max, err, sizeof err))
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
    if ((r = opt_bool(body, "stream", &b, err, sizeof err)) < 0) goto fail;
    c->stream = r && b;
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(body, "stream_options");
    if (so && !cJSON_IsNull(so)) {
        if (!cJSON_IsObject(so)) {
            snprintf(err, sizeof err, "'stream_options' must be an object");
            goto fail;
        }
        if (opt_bool(so, "include_usage", &b, err, sizeof err) < 0) goto fail;
        c->include_usage = opt_bool(so, "include_usage", &b, err, sizeof err) > 0 && b;
    }
    if (api == API_CHAT) {
        if ((r = opt_bool(body, "logprobs", &b, err, sizeof err)) < 0) goto fail;
        c->return_logprob = r && b;
        if ((r = opt_int(body, "top_logprobs", 0, MAX_TOP_LOGPROBS, &k, err, sizeof err)) < 0)
            goto fail;
        c->top_logprobs = r ? (int)k : 0;
        if (c->top_logprobs && !c->return_logprob) {
            snprintf(err, sizeof err, "'top_logprobs' needs 'logprobs': true");
            goto fail;
        }
    } else {
        if ((r = opt_int(body, "logprobs", 0, MAX_TOP_LOGPROBS, &k, err, sizeof err)) < 0)
            goto fail;
        c->return_logprob = r > 0;
        c->top_logprobs = r ? (int)k : 0;
    }
    rp.return_logprob = c->return_logprob;
    rp.top_logprobs_num = c->top_logprobs;
    make_ids(c, api == API_CHAT ? "chatcmpl-" : "cmpl-", NULL);
    if (pl.n > 0)
        status = submit_all(c, pl.n, pl.ids, pl.len, &rp, 1, err, sizeof err);
    else
        status = submit_all(c, 1, &ids, &n_ids, &rp, 1, err, sizeof err);
    if (status != 0) goto fail;
    free(ids);
    prompts_free(&pl);
    free(prompt);
    return finish_generation(c);
fail:
    free(ids);
    prompts_free(&pl);
    free(prompt);
    return send_error(c->conn, status ? status : 400, err);
}

/* ---------- operational endpoints ---------- */

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

static enum MHD_Result handle_server_info(conn_ctx *c) {
    server *s = c->srv;
    cJSON *j = s->p.server_args ? cJSON_Duplicate(s->p.server_args, 1) : cJSON_CreateObject();
    cJSON *is = cJSON_AddArrayToObject(j, "internal_states");
    cJSON_AddItemToArray(is, stats_json(s));
    cJSON_AddStringToObject(j, "version", SGLC_VERSION);
    cJSON_AddNumberToObject(j, "uptime_s", now_s() - s->t_start);
    return send_json(c->conn, MHD_HTTP_OK, j);
}

static enum MHD_Result handle_model_info(conn_ctx *c) {
    server *s = c->srv;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "model_path", s->info.model_path);
    cJSON_AddStringToObject(j, "tokenizer_path", s->info.model_path);
    cJSON_AddStringToObject(j, "served_model_name", s->model_name);
    cJSON_AddBoolToObject(j, "is_generation", 1);
    cJSON_AddNullToObject(j, "preferred_sampling_params");
    cJSON_AddStringToObject(j, "model_type", s->info.arch);
    cJSON_AddNumberToObject(j, "context_length", s->info.context_length);
    cJSON_AddNumberToObject(j, "vocab_size", s->info.vocab_size);
    cJSON_AddNumberToObject(j, "num_hidden_layers", s->info.n_layer);
    cJSON_AddNumberToObject(j, "hidden_size", s->info.n_embd);
    cJSON_AddBoolToObject(j, "has_chat_template", s->info.chat_template != NULL);
    return send_json(c->conn, MHD_HTTP_OK, j);
}

static enum MHD_Result handle_models(conn_ctx *c) {
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
    return send_json(c->conn, MHD_HTTP_OK, j);
}

static enum MHD_Result handle_tokenize(conn_ctx *c, cJSON *body) {
    server *s = c->srv;
    char err[512];
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(body, "prompt");
    if (!p) p = cJSON_GetObjectItemCaseSensitive(body, "text");
    if (!cJSON_IsString(p)) return send_error(c->conn, 400, "'prompt' must be a string");
    int add = 1, b;
    int r = opt_bool(body, "add_special_tokens", &b, err, sizeof err);
    if (r < 0) return send_error(c->conn, 400, err);
    if (r) add = b;
    int32_t *ids = NULL, n = 0;
    if (tokenize_alloc(atomic_load(&s->engine), p->valuestring, strlen(p->valuestring),
                       add && s->info.add_bos, &ids, &n, err, sizeof err)) {
        free(ids);
        return send_error(c->conn, 400, err);
    }
    cJSON *j = cJSON_CreateObject(), *t = cJSON_AddArrayToObject(j, "tokens");
    for (int32_t i = 0; i < n; i++)
        cJSON_AddItemToArray(t, cJSON_CreateNumber(ids[i]));
    cJSON_AddNumberToObject(j, "count", n);
    cJSON_AddNumberToObject(j, "max_model_len", s->info.context_length);
    free(ids);
    return send_json(c->conn, MHD_HTTP_OK, j);
}

static enum MHD_Result handle_detokenize(conn_ctx *c, cJSON *body) {
    server *s = c->srv;
    char err[512];
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(body, "tokens");
    if (!cJSON_IsArray(t)) return send_error(c->conn, 400, "'tokens' must be a list of token ids");
    int32_t *ids = NULL, n = 0;
    if (ids_from_json(t, "tokens", s->info.vocab_size, &ids, &n, err, sizeof err)) {
        free(ids);
        return send_error(c->conn, 400, err);
    }
    int skip = 0, b;
    if (opt_bool(body, "skip_special_tokens", &b, err, sizeof err) > 0) skip = b;
    sglc_engine *e = atomic_load(&s->engine);
    size_t need = sglc_engine_detokenize(e, ids, (size_t)n, skip, NULL, 0);
    char *out = malloc(need + 1);
    if (!out) {
        free(ids);
        return send_error(c->conn, 500, "out of memory");
    }
    sglc_engine_detokenize(e, ids, (size_t)n, skip, out, need);
    char *clean = utf8_sanitize(out, need);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "text", clean ? clean : "");
    free(clean);
    free(out);
    free(ids);
    return send_json(c->conn, MHD_HTTP_OK, j);
}

static enum MHD_Result handle_abort(conn_ctx *c, cJSON *body) {
    server *s = c->srv;
    const cJSON *rid = cJSON_GetObjectItemCaseSensitive(body, "rid");
    int all = 0, b;
    char err[256];
    if (opt_bool(body, "abort_all", &b, err, sizeof err) > 0) all = b;
    if (!all && !cJSON_IsString(rid))
        return send_error(c->conn, 400, "'rid' must be a string (or set 'abort_all': true)");
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
    return send_json(c->conn, MHD_HTTP_OK, j);
}

/* Appends printf output to a growing buffer; on failure the buffer is marked bad (len = -1). */
typedef struct {
    char *p;
    size_t len, cap;
    int bad;
} text_buf;

static void tb_printf(text_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tb_printf(text_buf *b, const char *fmt, ...) {
    if (b->bad) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->bad = 1;
            return;
        }
        if (b->p && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap : 8192;
        while (cap <= b->len + (size_t)n)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->bad = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
}

/* Prometheus label value: backslash, double quote and newline escaped. */
static void label_escape(const char *in, char *out, size_t cap) {
    size_t w = 0;
    for (; *in && w + 3 < cap; in++) {
        if (*in == '\\' || *in == '"') out[w++] = '\\';
        if (*in == '\n') {
            out[w++] = '\\';
            out[w++] = 'n';
            continue;
        }
        out[w++] = *in;
    }
    out[w] = 0;
}

/* Bucket bounds written the way prometheus_client writes them ("1.0", "0.25", "+Inf"). */
static void fmt_le(double v, char *out, size_t cap) {
    char shortest[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(shortest, sizeof shortest, "%.*g", prec, v);
        if (strtod(shortest, NULL) == v) break;
    }
    snprintf(out, cap, "%s%s", shortest, strpbrk(shortest, ".eE") ? "" : ".0");
}

static void metric_histogram(text_buf *b, sglc_engine *e, sglc_hist_kind kind, const char *name,
                             const char *help, const char *model) {
    sglc_histogram h;
    sglc_engine_get_histogram(e, kind, &h);
    tb_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    tb_printf(b, "%s_sum{model_name=\"%s\"} %.9g\n", name, model, h.sum);
    for (int32_t i = 0; i < h.n_bounds; i++) {
        char le[48];
        fmt_le(h.bounds[i], le, sizeof le);
        tb_printf(b, "%s_bucket{le=\"%s\",model_name=\"%s\"} %llu\n", name, le, model,
                  (unsigned long long)h.cumulative[i]);
    }
    tb_printf(b, "%s_bucket{le=\"+Inf\",model_name=\"%s\"} %llu\n", name, model,
              (unsigned long long)h.cumulative[h.n_bounds]);
    tb_printf(b, "%s_count{model_name=\"%s\"} %llu\n", name, model, (unsigned long long)h.count);
}

/* SGLang's metric names and model_name label (python/sglang/srt/metrics/collector.py). */
static enum MHD_Result handle_metrics(conn_ctx *c) {
    server *s = c->srv;
    sglc_engine *e = atomic_load(&s->engine);
    sglc_engine_stats st;
    sglc_engine_get_stats(e, &st);
    double hit = st.prompt_tokens_total > 0
                     ? (double)st.cached_tokens_total / (double)st.prompt_tokens_total
                     : 0.0;
    char m[1100];
    label_escape(s->model_name, m, sizeof m);
    text_buf b = {0};
    struct {
        const char *name, *type, *help;
        double v;
    } scalars[] = {
        {"prompt_tokens_total", "counter", "Number of prefill tokens processed.",
         (double)st.prompt_tokens_total},
        {"generation_tokens_total", "counter", "Number of generation tokens processed.",
         (double)st.generation_tokens_total},
        {"cached_tokens_total", "counter", "Number of cached prompt tokens.",
         (double)st.cached_tokens_total},
        {"num_requests_total", "counter", "Number of requests processed.",
         (double)st.requests_finished},
        {"num_running_reqs", "gauge", "The number of running requests.", st.num_running},
        {"num_queue_reqs", "gauge", "The number of requests in the waiting queue.", st.num_queued},
        {"token_usage", "gauge", "The token usage.", st.token_usage},
        {"cache_hit_rate", "gauge", "The prefix cache hit rate.", hit},
        {"gen_throughput", "gauge", "The generation throughput (token/s).", st.last_gen_throughput},
    };
    for (size_t i = 0; i < sizeof scalars / sizeof scalars[0]; i++)
        tb_printf(&b,
                  "# HELP sglang:%s %s\n# TYPE sglang:%s %s\nsglang:%s{model_name=\"%s\"} %.17g\n",
                  scalars[i].name, scalars[i].help, scalars[i].name, scalars[i].type,
                  scalars[i].name, m, scalars[i].v);
    metric_histogram(&b, e, SGLC_HIST_TTFT, "sglang:time_to_first_token_seconds",
                     "Histogram of time to first token in seconds.", m);
    metric_histogram(&b, e, SGLC_HIST_INTER_TOKEN, "sglang:inter_token_latency_seconds",
                     "Histogram of inter-token latency in seconds.", m);
    metric_histogram(&b, e, SGLC_HIST_E2E, "sglang:e2e_request_latency_seconds",
                     "Histogram of End-to-end request latency in seconds", m);
    if (b.bad) {
        free(b.p);
        return send_error(c->conn, 500, "out of memory");
    }
    enum MHD_Result r =
        send_text(c->conn, 200, "text/plain; version=0.0.4", b.p ? b.p : "", b.len, NULL);
    free(b.p);
    return r;
}

static enum MHD_Result handle_health_generate(conn_ctx *c) {
    server *s = c->srv;
    sglc_request_params rp;
    sglc_request_params_default(&rp);
    rp.max_new_tokens = 1;
    rp.temperature = 0;
    int32_t id = s->info.bos_id >= 0 ? s->info.bos_id : 0;
    c->n_per_prompt = 1;
    make_ids(c, "health-", NULL);
    char err[512];
    int32_t *idp = &id, one = 1;
    unsigned st = submit_all(c, 1, &idp, &one, &rp, 1, err, sizeof err);
    if (st) return send_error(c->conn, 503, err);
    sglc_output o;
    double until = now_s() + 20.0;
    do
        sglc_request_wait(c->reqs[0], 0, &o, WAIT_SLICE_MS);
    while (!o.finished && now_s() < until);
    if (!o.finished) return send_error(c->conn, 503, "generation did not finish in 20 s");
    return send_text(c->conn, 200, "text/plain", "", 0, NULL);
}

/* ---------- routing ---------- */

typedef enum {
    R_HEALTH = 0,
    R_HEALTH_GENERATE,
    R_GENERATE,
    R_COMPLETIONS,
    R_CHAT,
    R_MODELS,
    R_MODEL_INFO,
    R_SERVER_INFO,
    R_FLUSH,
    R_TOKENIZE,
    R_DETOKENIZE,
    R_ABORT,
    R_METRICS,
    R_ROUTE_COUNT
} route_id;

static const struct {
    const char *path;
    const char *method; /* "GET", "POST" or "ANY" (GET and POST) */
} ROUTES[R_ROUTE_COUNT] = {
    [R_HEALTH] = {"/health", "ANY"},
    [R_HEALTH_GENERATE] = {"/health_generate", "ANY"},
    [R_GENERATE] = {"/generate", "POST"},
    [R_COMPLETIONS] = {"/v1/completions", "POST"},
    [R_CHAT] = {"/v1/chat/completions", "POST"},
    [R_MODELS] = {"/v1/models", "GET"},
    [R_MODEL_INFO] = {"/get_model_info", "GET"},
    [R_SERVER_INFO] = {"/get_server_info", "GET"},
    [R_FLUSH] = {"/flush_cache", "ANY"},
    [R_TOKENIZE] = {"/tokenize", "POST"},
    [R_DETOKENIZE] = {"/detokenize", "POST"},
    [R_ABORT] = {"/abort_request", "POST"},
    [R_METRICS] = {"/metrics", "GET"},
};

static int key_matches(const char *given, const char *want) {
    size_t lg = strlen(given), lw = strlen(want);
    /* constant time in the key's content whatever the lengths */
    unsigned diff = (unsigned)(lg ^ lw);
    size_t n = lg > lw ? lg : lw;
    for (size_t i = 0; i < n; i++) {
        unsigned char a = lg ? (unsigned char)given[i % lg] : 0;
        unsigned char b = lw ? (unsigned char)want[i % lw] : 0;
        diff |= (unsigned)(a ^ b);
    }
    return diff == 0 && lw > 0;
}

/* The chat page is public (it holds no data; its API calls carry the key) and is served even
 * while the model loads. Its CSP lets it reach this server only, so a page that some model text
 * managed to inject into could not load or send anything elsewhere. */
static enum MHD_Result send_chat_page(conn_ctx *c, const char *method) {
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return send_error(c->conn, 405, "/ accepts GET only");
    struct MHD_Response *r = MHD_create_response_from_buffer(
        sglc_chat_page_len, (void *)sglc_chat_page, MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "text/html; charset=utf-8");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Content-Security-Policy",
                            "default-src 'none'; script-src 'unsafe-inline'; "
                            "style-src 'unsafe-inline'; connect-src 'self'; base-uri 'none'; "
                            "form-action 'none'; frame-ancestors 'none'");
    enum MHD_Result ret = MHD_queue_response(c->conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result route(conn_ctx *c, const char *url, const char *method) {
    server *s = c->srv;
    int rid = -1;
    if (strcmp(url, "/") == 0 || strcmp(url, "/index.html") == 0) return send_chat_page(c, method);
    for (int i = 0; i < R_ROUTE_COUNT; i++)
        if (strcmp(url, ROUTES[i].path) == 0) rid = i;
    if (rid < 0) {
        char msg[300];
        snprintf(msg, sizeof msg, "no route %.200s", url);
        return send_error(c->conn, 404, msg);
    }
    int is_get = strcmp(method, "GET") == 0, is_post = strcmp(method, "POST") == 0;
    const char *want = ROUTES[rid].method;
    if (!((strcmp(want, "ANY") == 0 && (is_get || is_post)) ||
          (strcmp(want, "GET") == 0 && is_get) || (strcmp(want, "POST") == 0 && is_post))) {
        char msg[300];
        snprintf(msg, sizeof msg, "%s does not accept %.20s", ROUTES[rid].path, method);
        return send_error(c->conn, 405, msg);
    }
    if (rid != R_HEALTH && s->p.api_key && s->p.api_key[0]) {
        const char *auth = MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND, "Authorization");
        const char *key = auth && strncmp(auth, "Bearer ", 7) == 0 ? auth + 7 : "";
        if (!key_matches(key, s->p.api_key))
            return send_error(c->conn, 401, "missing or wrong API key");
    }
    if (!atomic_load(&s->engine)) return send_error(c->conn, 503, "the model is loading");
    if (rid == R_HEALTH) {
        if (atomic_load(&s->draining)) return send_error(c->conn, 503, "shutting down");
        return send_text(c->conn, 200, "text/plain", "", 0, NULL);
    }
    if (c->too_large) {
        char msg[128];
        snprintf(msg, sizeof msg, "the request body exceeds %zu bytes", s->p.max_body_bytes);
        return send_error(c->conn, 413, msg);
    }
    switch (rid) {
    case R_MODELS: return handle_models(c);
    case R_MODEL_INFO: return handle_model_info(c);
    case R_SERVER_INFO: return handle_server_info(c);
    case R_METRICS: return handle_metrics(c);
    case R_FLUSH:
        if (sglc_engine_flush_cache(atomic_load(&s->engine)) != 0)
            return send_error(c->conn, 400, "cannot flush the cache while requests are running");
        return send_text(c->conn, 200, "text/plain", "Cache flushed.\n", 15, NULL);
    default: break;
    }
    int gen =
        rid == R_GENERATE || rid == R_COMPLETIONS || rid == R_CHAT || rid == R_HEALTH_GENERATE;
    if (gen) {
        if (atomic_load(&s->draining))
            return send_error(c->conn, 503, "the server is shutting down");
        pthread_mutex_lock(&s->mu);
        s->inflight++;
        c->counted = 1;
        pthread_mutex_unlock(&s->mu);
    }
    if (rid == R_HEALTH_GENERATE) return handle_health_generate(c);
    char err[512];
    cJSON *body = parse_body(c, err, sizeof err);
    if (!body) return send_error(c->conn, 400, err);
    enum MHD_Result r;
    switch (rid) {
    case R_GENERATE: r = handle_generate(c, body); break;
    case R_COMPLETIONS: r = handle_openai(c, body, API_COMPLETIONS); break;
    case R_CHAT: r = handle_openai(c, body, API_CHAT); break;
    case R_TOKENIZE: r = handle_tokenize(c, body); break;
    case R_DETOKENIZE: r = handle_detokenize(c, body); break;
    case R_ABORT: r = handle_abort(c, body); break;
    default: r = send_error(c->conn, 404, "no route");
    }
    cJSON_Delete(body);
    return r;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls) {
    server *s = cls;
    (void)version;
    conn_ctx *c = *con_cls;
    if (!c) {
        c = calloc(1, sizeof *c);
        if (!c) return MHD_NO;
        c->srv = s;
        c->conn = conn;
        *con_cls = c;
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cl) {
            char *end = NULL;
            errno = 0;
            unsigned long long v = strtoull(cl, &end, 10);
            if (errno || !end || *end || v > s->p.max_body_bytes) c->too_large = 1;
            /* an absurd length is refused before reading anything */
            if (errno || !end || *end || v > ABSURD_BODY) {
                char msg[128];
                snprintf(msg, sizeof msg, "the request body exceeds %zu bytes",
                         s->p.max_body_bytes);
                return send_error(conn, 413, msg);
            }
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (c->too_large) return MHD_YES;
        if (c->len + n > s->p.max_body_bytes) {
            c->too_large = 1;
            free(c->body);
            c->body = NULL;
            c->len = c->cap = 0;
            return MHD_YES;
        }
        if (c->len + n + 1 > c->cap) {
            size_t cap = c->cap ? c->cap : 4096;
            while (cap < c->len + n + 1)
                cap *= 2;
            char *b = realloc(c->body, cap);
            if (!b) return MHD_NO;
            c->body = b;
            c->cap = cap;
        }
        memcpy(c->body + c->len, upload_data, n);
        c->len += n;
        c->body[c->len] = 0;
        return MHD_YES;
    }
    return route(c, url, method);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    (void)cls;
    (void)conn;
    (void)toe;
    conn_ctx *c = *con_cls;
    if (!c) return;
    *con_cls = NULL;
    ctx_free(c);
}

/* ---------- lifecycle ---------- */

int sglc_server_run(const sglc_server_params *sp, const sglc_engine_params *ep, char *err,
                    size_t errlen) {
    server *s = calloc(1, sizeof *s);
    if (!s) {
        cJSON_Delete(sp->server_args);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->p = *sp;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->t_start = now_s();
    int rc = -1;
    sglc_engine *e = NULL;

    /* the connection threads inherit this mask: only the main thread takes the signals */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char port[16];
    snprintf(port, sizeof port, "%d", sp->port);
    int gai = getaddrinfo(sp->host, port, &hints, &ai);
    if (gai != 0 || !ai) {
        snprintf(err, errlen, "--host %s: %s", sp->host, gai_strerror(gai));
        goto done;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_ERROR_LOG | MHD_USE_ITC;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    s->daemon = MHD_start_daemon(
        flags, (uint16_t)sp->port, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_CONNECTION_TIMEOUT,
        sp->connection_timeout_s ? sp->connection_timeout_s : 120u, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)1024, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(256 * 1024), MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!s->daemon) {
        snprintf(err, errlen, "cannot listen on %s:%d (%s)", sp->host, sp->port,
                 errno ? strerror(errno) : "libmicrohttpd failed");
        goto done;
    }
    fprintf(stderr, "sglc: listening on http://%s:%d (loading the model)\n", sp->host, sp->port);
    double t0 = now_s();
    if (sglc_engine_open(&e, ep, err, errlen) != 0) goto done;
    sglc_engine_get_model_info(e, &s->info);
    if (sp->chat_template) s->info.chat_template = sp->chat_template;
    snprintf(s->model_name, sizeof s->model_name, "%s",
             sp->served_model_name && sp->served_model_name[0] ? sp->served_model_name
                                                               : s->info.model_path);
    atomic_store(&s->engine, e);
    fprintf(stderr,
            "sglc: model %s: %s, %d layers, hidden %d, vocab %d, %.1f MB of weights, context %d, "
            "KV pool %lld tokens, chat template %s; loaded in %.2f s\n",
            s->model_name, s->info.arch, s->info.n_layer, s->info.n_embd, s->info.vocab_size,
            (double)s->info.weight_bytes / 1e6, s->info.context_length,
            (long long)s->info.kv_pool_size, s->info.chat_template ? "yes" : "no", now_s() - t0);
    fprintf(stderr, "sglc: the server is ready on http://%s:%d\n", sp->host, sp->port);
    fflush(stderr);

    int sig = 0;
    sigwait(&set, &sig);
    fprintf(stderr, "sglc: %s received: draining\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    atomic_store(&s->draining, 1);
    MHD_socket lsock = MHD_quiesce_daemon(s->daemon);
    if (lsock != MHD_INVALID_SOCKET) close(lsock);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 60;
    pthread_mutex_lock(&s->mu);
    while (s->inflight > 0)
        if (pthread_cond_timedwait(&s->cv, &s->mu, &until) != 0) break;
    int left = s->inflight;
    pthread_mutex_unlock(&s->mu);
    if (left) fprintf(stderr, "sglc: %d requests still running after 60 s; stopping\n", left);
    rc = 0;
done:
    if (s->daemon) MHD_stop_daemon(s->daemon);
    atomic_store(&s->engine, NULL);
    sglc_engine_close(e);
    cJSON_Delete(s->p.server_args);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
    if (rc == 0) fprintf(stderr, "sglc: stopped\n");
    return rc;
}
