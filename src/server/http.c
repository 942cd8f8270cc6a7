/* HTTP front end of `sglc serve` on libmicrohttpd (one thread per connection): the library glue.
 * It owns the responses (JSON, errors), reading the request body, the per-connection state and
 * its release, the route table (method, API key, load and drain checks) and sglc_server_run
 * (listen, load the engine, wait for a signal, drain). The handlers live in native.c, openai.c
 * and metrics.c; requests are validated by validate.c and prompt.c, submitted by generation.c
 * and streamed by sse.c. Every engine handle a connection made is released exactly once, in the
 * request-completed callback, which also aborts requests still running (client gone).
 * Connection threads never touch model state: only the engine API of sglc.h. */
#include "server/server_impl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/utf8.h"
#include "server/chat_page.h"

double sglc_srv_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---------- responses ---------- */

enum MHD_Result sglc_srv_send_text(struct MHD_Connection *conn, unsigned status, const char *ctype,
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

enum MHD_Result sglc_srv_send_json(struct MHD_Connection *conn, unsigned status, cJSON *j) {
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!s) return MHD_NO;
    enum MHD_Result r = sglc_srv_send_text(conn, status, "application/json", s, strlen(s), NULL);
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

enum MHD_Result sglc_srv_send_error(struct MHD_Connection *conn, unsigned status, const char *msg) {
    cJSON *root = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddStringToObject(e, "type", error_type(status));
    cJSON_AddNumberToObject(e, "code", status);
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!s) return MHD_NO;
    enum MHD_Result r = sglc_srv_send_text(conn, status, "application/json", s, strlen(s),
                                           status == 503 ? "1" : NULL);
    free(s);
    return r;
}

/* Text made valid UTF-8 (ill-formed bytes become U+FFFD), for token pieces in JSON. */
char *sglc_srv_utf8_sanitize(const char *s, size_t n) {
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

/* ---------- request body ---------- */

int sglc_srv_peer_gone(struct MHD_Connection *conn) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return 0;
    char b;
    ssize_t r = recv(ci->connect_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (r == 0) return 1;
    if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return 1;
    return 0;
}

/* 1 when a JSON string of body holds the escape \u0000 (the backslash not itself escaped):
 * cJSON ends its strings at NUL, so such a string would arrive cut short, silently. */
static int has_nul_escape(const char *body, size_t len) {
    for (size_t i = 0; i + 6 <= len; i++) {
        if (body[i] != '\\' || memcmp(body + i + 1, "u0000", 5) != 0) continue;
        size_t bs = 1;
        while (bs <= i && body[i - bs] == '\\')
            bs++;
        if (bs % 2 == 1) return 1; /* an odd run of backslashes: this one starts an escape */
    }
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
    if (has_nul_escape(c->body, c->len)) {
        snprintf(err, el,
                 "a string in the request holds U+0000 (\\u0000), which sglc cannot carry in "
                 "text; remove it, or send token ids (input_ids)");
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

/* ---------- active requests (for /abort_request) ---------- */

void sglc_srv_register_active(server *s, conn_ctx *c) {
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
    free(c->sent_reasoning);
    free(c->sent_content);
    free(c->sent_calls);
    free(c->req_model);
    for (int i = 0; c->prompt_ids && i < c->n_prompt_ids; i++)
        free(c->prompt_ids[i]);
    free(c->prompt_ids);
    free(c->prompt_len);
    for (int i = 0; c->echo_texts && i < c->n_echo; i++)
        free(c->echo_texts[i]);
    free(c->echo_texts);
    for (int i = 0; i < c->n_args; i++) {
        cJSON_Delete(c->args[i].stop_json);
        sglc_grammar_release(c->args[i].grammar);
        free(c->args[i].bias_ids);
        free(c->args[i].bias_vals);
    }
    free(c->args);
    free(c->bias_ids);
    free(c->bias_vals);
    cJSON_Delete(c->stop_json);
    sglc_grammar_release(c->grammar);
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
    R_EMBEDDINGS,
    R_MODEL_INFO_NEW,
    R_SERVER_INFO_NEW,
    R_SCORE,
    R_GET_LOAD,
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
    [R_EMBEDDINGS] = {"/v1/embeddings", "POST"},
    /* SGLang's current names of /get_model_info and /get_server_info */
    [R_MODEL_INFO_NEW] = {"/model_info", "GET"},
    [R_SERVER_INFO_NEW] = {"/server_info", "GET"},
    [R_SCORE] = {"/v1/score", "POST"},
    [R_GET_LOAD] = {"/get_load", "GET"}, /* what sglang-router's load monitor polls */
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
        return sglc_srv_send_error(c->conn, 405, "/ accepts GET only");
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
    const char *model_id = NULL; /* GET /v1/models/{id} */
    if (rid < 0 && strncmp(url, "/v1/models/", 11) == 0 && url[11]) {
        rid = R_MODELS;
        model_id = url + 11;
    }
    if (rid < 0) {
        char msg[300];
        snprintf(msg, sizeof msg, "no route %.200s", url);
        return sglc_srv_send_error(c->conn, 404, msg);
    }
    int is_get = strcmp(method, "GET") == 0, is_post = strcmp(method, "POST") == 0;
    const char *want = ROUTES[rid].method;
    if (!((strcmp(want, "ANY") == 0 && (is_get || is_post)) ||
          (strcmp(want, "GET") == 0 && is_get) || (strcmp(want, "POST") == 0 && is_post))) {
        char msg[300];
        snprintf(msg, sizeof msg, "%s does not accept %.20s", ROUTES[rid].path, method);
        return sglc_srv_send_error(c->conn, 405, msg);
    }
    if (rid != R_HEALTH && s->p.api_key && s->p.api_key[0]) {
        const char *auth = MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND, "Authorization");
        const char *key = auth && strncmp(auth, "Bearer ", 7) == 0 ? auth + 7 : "";
        if (!key_matches(key, s->p.api_key))
            return sglc_srv_send_error(c->conn, 401, "missing or wrong API key");
    }
    if (!atomic_load(&s->engine)) return sglc_srv_send_error(c->conn, 503, "the model is loading");
    if (rid == R_HEALTH) {
        if (atomic_load(&s->draining)) return sglc_srv_send_error(c->conn, 503, "shutting down");
        return sglc_srv_send_text(c->conn, 200, "text/plain", "", 0, NULL);
    }
    if (c->too_large) {
        char msg[128];
        snprintf(msg, sizeof msg, "Payload Too Large: the request body exceeds %zu bytes",
                 s->p.max_body_bytes);
        return sglc_srv_send_error(c->conn, 413, msg);
    }
    switch (rid) {
    case R_MODELS: return sglc_srv_handle_models(c, model_id);
    case R_MODEL_INFO:
    case R_MODEL_INFO_NEW: return sglc_srv_handle_model_info(c);
    case R_SERVER_INFO:
    case R_SERVER_INFO_NEW: return sglc_srv_handle_server_info(c);
    case R_EMBEDDINGS: {
        char msg[700];
        snprintf(msg, sizeof msg,
                 "the model %.500s is a generative model (%s), not an embedding model: "
                 "/v1/embeddings needs an embedding model",
                 s->model_name, s->info.arch ? s->info.arch : "?");
        return sglc_srv_send_error(c->conn, 400, msg);
    }
    case R_METRICS: return sglc_srv_handle_metrics(c);
    case R_GET_LOAD: return sglc_srv_handle_get_load(c);
    case R_FLUSH:
        if (sglc_engine_flush_cache(atomic_load(&s->engine)) != 0)
            return sglc_srv_send_error(c->conn, 400,
                                       "cannot flush the cache while requests are running");
        return sglc_srv_send_text(c->conn, 200, "text/plain", "Cache flushed.\n", 15, NULL);
    default: break;
    }
    int gen = rid == R_GENERATE || rid == R_COMPLETIONS || rid == R_CHAT ||
              rid == R_HEALTH_GENERATE || rid == R_SCORE;
    if (gen) {
        if (atomic_load(&s->draining))
            return sglc_srv_send_error(c->conn, 503, "the server is shutting down");
        pthread_mutex_lock(&s->mu);
        s->inflight++;
        c->counted = 1;
        pthread_mutex_unlock(&s->mu);
    }
    if (rid == R_HEALTH_GENERATE) return sglc_srv_handle_health_generate(c);
    char err[512];
    cJSON *body = parse_body(c, err, sizeof err);
    if (!body) return sglc_srv_send_error(c->conn, 400, err);
    enum MHD_Result r;
    switch (rid) {
    case R_GENERATE: r = sglc_srv_handle_generate(c, body); break;
    case R_COMPLETIONS: r = sglc_srv_handle_openai(c, body, API_COMPLETIONS); break;
    case R_CHAT: r = sglc_srv_handle_openai(c, body, API_CHAT); break;
    case R_TOKENIZE: r = sglc_srv_handle_tokenize(c, body); break;
    case R_DETOKENIZE: r = sglc_srv_handle_detokenize(c, body); break;
    case R_ABORT: r = sglc_srv_handle_abort(c, body); break;
    case R_SCORE: r = sglc_srv_handle_score(c, body); break;
    default: r = sglc_srv_send_error(c->conn, 404, "no route");
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
                snprintf(msg, sizeof msg, "Payload Too Large: the request body exceeds %zu bytes",
                         s->p.max_body_bytes);
                return sglc_srv_send_error(conn, 413, msg);
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
    s->t_start = sglc_srv_now_s();
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
    double t0 = sglc_srv_now_s();
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
            (long long)s->info.kv_pool_size, s->info.chat_template ? "yes" : "no",
            sglc_srv_now_s() - t0);
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
