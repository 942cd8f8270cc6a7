/* `sglc bench_serving`: SGLang's online serving benchmark, run against a live server over HTTP.
 * Backends: `sglang` (POST /generate, prompts sent as input_ids), `sglang-oai` (/v1/completions)
 * and `sglang-oai-chat` (/v1/chat/completions), the last two with prompts decoded to text by the
 * model's tokenizer. Requests arrive all at once (--request-rate inf) or as a Poisson process,
 * optionally capped at --max-concurrency in flight. Prints SGLang's "Serving Benchmark Result"
 * block and appends one JSON line of the same keys to --output-file.
 *
 * Threading: one thread. libcurl's multi interface drives every HTTP transfer; its write
 * callback splits the SSE stream into lines and timestamps each event as it arrives. Output token
 * counts come from the server (usage.completion_tokens / meta_info.completion_tokens); the local
 * tokenizer (--tokenizer, default the bundled model's) only makes prompt text and the
 * "retokenized" count. */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include "base/utf8.h"
#include "cli/args.h"
#include "cli/bench_dataset.h"
#include "cli/cli.h"
#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"

#define MAX_BODY_BYTES (256u << 20) /* one response (or one SSE line) */
#define ERR_LEN 256

typedef enum {
    BENCH_BACKEND_SGLANG = 0, /* native /generate */
    BENCH_BACKEND_OAI,        /* /v1/completions */
    BENCH_BACKEND_OAI_CHAT,   /* /v1/chat/completions */
    BENCH_BACKEND_COUNT
} bench_backend;

static const char *const backend_names[BENCH_BACKEND_COUNT] = {"sglang", "sglang-oai",
                                                               "sglang-oai-chat"};
static const char *const backend_paths[BENCH_BACKEND_COUNT] = {"/generate", "/v1/completions",
                                                               "/v1/chat/completions"};

typedef struct {
    bench_backend backend;
    int stream;
    char url[2048];            /* the endpoint */
    struct curl_slist *hdrs;   /* shared by every transfer */
    const sglc_tokenizer *tok; /* borrowed */
} bench_ctx;

/* One request: what it sends, and what came back. */
typedef struct {
    const bench_ctx *ctx; /* borrowed */
    char *body;           /* request JSON, owned */
    int32_t prompt_len, out_len;
    CURL *easy;
    char curl_err[CURL_ERROR_SIZE];
    char *buf; /* unparsed stream bytes (streaming) or the whole body */
    size_t len, cap;
    char *text; /* generated text */
    size_t text_len, text_cap;
    double t_start, t_last, ttft, latency;
    int got_first, have_usage, got_done;
    int64_t out_tokens, last_out_tokens;
    double *itl;
    size_t n_itl, cap_itl;
    int done, success;
    char err[ERR_LEN];
} bench_req;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}

static int append_bytes(char **p, size_t *len, size_t *cap, const char *s, size_t n) {
    if (*len + n + 1 > MAX_BODY_BYTES) return -1;
    if (grow((void **)p, cap, *len + n + 1, 1)) return -1;
    memcpy(*p + *len, s, n);
    *len += n;
    (*p)[*len] = 0;
    return 0;
}

static void req_fail(bench_req *r, const char *fmt, const char *what) {
    if (r->err[0]) return; /* keep the first cause */
    snprintf(r->err, sizeof r->err, fmt, what);
}

static int push_itl(bench_req *r, double v) {
    if (grow((void **)&r->itl, &r->cap_itl, r->n_itl + 1, sizeof(double))) return -1;
    r->itl[r->n_itl++] = v;
    return 0;
}

/* A chunk with new content arrived at ts; new_tokens > 1 spreads the gap over them, as SGLang
 * does for the native API whose events may carry several tokens. */
static int on_content(bench_req *r, double ts, int64_t new_tokens) {
    if (!r->got_first) {
        r->got_first = 1;
        r->ttft = ts - r->t_start;
    } else {
        if (new_tokens < 1) new_tokens = 1;
        double gap = (ts - r->t_last) / (double)new_tokens;
        for (int64_t k = 0; k < new_tokens; k++)
            if (push_itl(r, gap)) return -1;
    }
    r->t_last = ts;
    return 0;
}

static const char *json_str(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int json_int(const cJSON *o, const char *key, int64_t *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v)) return 0;
    *out = (int64_t)v->valuedouble;
    return 1;
}

static const cJSON *first_choice(const cJSON *j) {
    const cJSON *ch = cJSON_GetObjectItemCaseSensitive(j, "choices");
    return cJSON_IsArray(ch) ? ch->child : NULL;
}

/* The error message of an OpenAI-style {"error": {...}} or {"error": "..."} body, or NULL. */
static const char *error_message(const cJSON *j) {
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    if (cJSON_IsString(e)) return e->valuestring;
    if (cJSON_IsObject(e)) {
        const char *m = json_str(e, "message");
        return m ? m : "error";
    }
    return NULL;
}

/* One JSON object from the server: a stream event, or the whole non-streamed answer. */
static int handle_json(bench_req *r, const cJSON *j, double ts) {
    const char *em = error_message(j);
    if (em) {
        req_fail(r, "server error: %s", em);
        return -1;
    }
    int64_t ct;
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive(j, "usage");
    if (cJSON_IsObject(usage) && json_int(usage, "completion_tokens", &ct)) {
        r->out_tokens = ct;
        r->have_usage = 1;
    }
    const char *piece = NULL;
    switch (r->ctx->backend) {
    case BENCH_BACKEND_SGLANG: {
        /* every event carries the whole text and token count so far */
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "meta_info");
        const char *t = json_str(j, "text");
        if (cJSON_IsObject(m) && json_int(m, "completion_tokens", &ct)) {
            r->out_tokens = ct;
            r->have_usage = 1;
        }
        if (!t) break;
        r->text_len = 0;
        if (append_bytes(&r->text, &r->text_len, &r->text_cap, t, strlen(t))) return -1;
        if (r->ctx->stream && t[0]) {
            int64_t fresh = r->out_tokens - r->last_out_tokens;
            if (r->got_first && fresh <= 0) break; /* nothing new (a finish-only event) */
            if (on_content(r, ts, fresh)) return -1;
            r->last_out_tokens = r->out_tokens;
        }
        return 0;
    }
    case BENCH_BACKEND_OAI: {
        const cJSON *c = first_choice(j);
        piece = c ? json_str(c, "text") : NULL;
        break;
    }
    case BENCH_BACKEND_OAI_CHAT: {
        const cJSON *c = first_choice(j);
        const cJSON *d =
            c ? cJSON_GetObjectItemCaseSensitive(c, r->ctx->stream ? "delta" : "message") : NULL;
        piece = d ? json_str(d, "content") : NULL;
        break;
    }
    case BENCH_BACKEND_COUNT: break;
    }
    if (piece && piece[0]) {
        if (append_bytes(&r->text, &r->text_len, &r->text_cap, piece, strlen(piece))) return -1;
        if (r->ctx->stream && on_content(r, ts, 1)) return -1;
    }
    return 0;
}

/* One line of the SSE stream. */
static int handle_line(bench_req *r, char *s, size_t n, double ts) {
    while (n && (s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    while (n && (*s == ' ' || *s == '\t')) {
        s++;
        n--;
    }
    if (n == 0 || s[0] == ':') return 0;               /* blank separator or SSE comment */
    if (n < 5 || memcmp(s, "data:", 5) != 0) return 0; /* event:, id:, retry: */
    s += 5;
    n -= 5;
    while (n && *s == ' ') {
        s++;
        n--;
    }
    r->latency = ts - r->t_start;
    if (n == 6 && memcmp(s, "[DONE]", 6) == 0) {
        r->got_done = 1;
        return 0;
    }
    cJSON *j = cJSON_ParseWithLength(s, n);
    if (!j) {
        req_fail(r, "%s", "malformed JSON in the event stream");
        return -1;
    }
    int rc = handle_json(r, j, ts);
    cJSON_Delete(j);
    return rc;
}

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *ud) {
    bench_req *r = ud;
    size_t n = size * nmemb;
    double ts = now_s();
    if (append_bytes(&r->buf, &r->len, &r->cap, ptr, n)) {
        req_fail(r, "%s", "response too large or out of memory");
        return 0;
    }
    long code = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
    if (code != 200 || !r->ctx->stream) return n; /* parsed whole when the transfer ends */
    size_t start = 0;
    for (size_t i = 0; i < r->len; i++) {
        if (r->buf[i] != '\n') continue;
        if (handle_line(r, r->buf + start, i - start, ts)) return 0;
        start = i + 1;
    }
    memmove(r->buf, r->buf + start, r->len - start);
    r->len -= start;
    r->buf[r->len] = 0;
    return n;
}

static int req_start(CURLM *multi, bench_req *r) {
    r->easy = curl_easy_init();
    if (!r->easy) return -1;
    CURL *e = r->easy;
    curl_easy_setopt(e, CURLOPT_URL, r->ctx->url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->ctx->hdrs);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(r->body));
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->curl_err);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_PROXY, ""); /* as SGLang's client: ignore *_proxy variables */
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    r->t_start = r->t_last = now_s();
    if (curl_multi_add_handle(multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        r->easy = NULL;
        return -1;
    }
    return 0;
}

/* The transfer ended: decide success, parse a non-streamed body, fix up the timings. */
static void req_finish(CURLM *multi, bench_req *r, CURLcode res) {
    double ts = now_s();
    long code = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
    if (res != CURLE_OK) {
        req_fail(r, "%s", r->curl_err[0] ? r->curl_err : curl_easy_strerror(res));
    } else if (code != 200) {
        char msg[ERR_LEN];
        cJSON *j = cJSON_ParseWithLength(r->buf ? r->buf : "", r->len);
        const char *em = j ? error_message(j) : NULL;
        snprintf(msg, sizeof msg, "HTTP %ld: %.180s", code,
                 em ? em : (r->buf ? r->buf : "(empty body)"));
        cJSON_Delete(j);
        req_fail(r, "%s", msg);
    } else if (!r->ctx->stream) {
        cJSON *j = cJSON_ParseWithLength(r->buf ? r->buf : "", r->len);
        if (!j)
            req_fail(r, "%s", "malformed JSON response");
        else
            handle_json(r, j, ts);
        cJSON_Delete(j);
        r->latency = ts - r->t_start;
        r->ttft = r->latency; /* without streaming the first token comes with the last */
    } else {
        if (r->len && !r->err[0]) handle_line(r, r->buf, r->len, ts); /* no final newline */
        if (!r->got_done) req_fail(r, "%s", "the event stream ended before data: [DONE]");
    }
    if (!r->err[0]) {
        r->success = 1;
        if (r->latency <= 0) r->latency = ts - r->t_start;
        if (!r->got_first) r->ttft = r->latency; /* no content at all (eos at once) */
        if (!r->have_usage) r->out_tokens = r->out_len;
    }
    curl_multi_remove_handle(multi, r->easy);
    curl_easy_cleanup(r->easy);
    r->easy = NULL;
    free(r->buf);
    r->buf = NULL;
    r->len = r->cap = 0;
    r->done = 1;
}

static double draw_exp(uint64_t *s, double rate) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    double u = (double)(*s >> 11) * (1.0 / 9007199254740992.0); /* [0, 1) */
    return -log1p(-u) / rate;
}

/* Runs reqs[0..n) to completion: request i arrives at the i-th point of a Poisson process of
 * the given rate (all at once when infinite) and starts when fewer than max_conc run
 * (max_conc <= 0: no cap). Returns the wall time, or < 0 when libcurl itself failed. */
static double run_all(bench_req *reqs, int64_t n, double rate, int64_t max_conc, uint64_t seed) {
    CURLM *multi = curl_multi_init();
    double *arrive = malloc(sizeof(double) * (size_t)n);
    double dur = -1.0;
    if (!multi || !arrive) goto cleanup;
    uint64_t rs = seed ^ 0x9e3779b97f4a7c15ull;
    arrive[0] = 0.0;
    for (int64_t i = 1; i < n; i++)
        arrive[i] = isinf(rate) ? 0.0 : arrive[i - 1] + draw_exp(&rs, rate);
    int64_t arrived = 0, started = 0, finished = 0;
    double t0 = now_s();
    while (finished < n) {
        double t = now_s() - t0;
        while (arrived < n && arrive[arrived] <= t)
            arrived++;
        while (started < arrived && (max_conc <= 0 || started - finished < max_conc)) {
            bench_req *r = &reqs[started++];
            if (req_start(multi, r) != 0) {
                req_fail(r, "%s", "could not start the transfer (out of memory?)");
                r->done = 1;
                finished++;
            }
        }
        int running = 0;
        if (curl_multi_perform(multi, &running) != CURLM_OK) goto cleanup;
        int ended = 0, left;
        CURLMsg *m;
        while ((m = curl_multi_info_read(multi, &left))) {
            if (m->msg != CURLMSG_DONE) continue;
            char *priv = NULL;
            CURLcode res = m->data.result;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
            req_finish(multi, (bench_req *)priv, res);
            finished++;
            ended = 1;
        }
        if (ended) continue; /* a slot opened: start the next before sleeping */
        int wait_ms = 1000;
        if (arrived < n && started == arrived) {
            double dt = arrive[arrived] - (now_s() - t0);
            wait_ms = dt <= 0 ? 0 : dt < 1.0 ? (int)ceil(dt * 1000.0) : 1000;
        }
        if (curl_multi_poll(multi, NULL, 0, wait_ms, NULL) != CURLM_OK) goto cleanup;
    }
    dur = now_s() - t0;
cleanup:
    for (int64_t i = 0; multi && i < n; i++) {
        if (!reqs[i].easy) continue; /* only after a libcurl failure */
        curl_multi_remove_handle(multi, reqs[i].easy);
        curl_easy_cleanup(reqs[i].easy);
        reqs[i].easy = NULL;
    }
    free(arrive);
    if (multi) curl_multi_cleanup(multi);
    return dur;
}

static void req_free(bench_req *r) {
    free(r->body);
    free(r->buf);
    free(r->text);
    free(r->itl);
}

/* ---------- statistics (numpy's mean, median, std, linear-interpolated percentile) ---------- */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct {
    double mean, median, std, p90, p95, p99, max;
} bench_stats;

static double percentile(const double *sorted, size_t n, double q) {
    double pos = q / 100.0 * (double)(n - 1);
    size_t lo = (size_t)pos;
    if (lo + 1 >= n) return sorted[n - 1];
    return sorted[lo] + (sorted[lo + 1] - sorted[lo]) * (pos - (double)lo);
}

/* Sorts v; all zeros when empty (as numpy over `xs or 0`). Values in seconds, stats in ms. */
static bench_stats stats_ms(double *v, size_t n) {
    bench_stats s = {0};
    if (n == 0) return s;
    qsort(v, n, sizeof *v, cmp_double);
    double sum = 0, sq = 0;
    for (size_t i = 0; i < n; i++)
        sum += v[i];
    s.mean = sum / (double)n;
    for (size_t i = 0; i < n; i++)
        sq += (v[i] - s.mean) * (v[i] - s.mean);
    s.std = sqrt(sq / (double)n) * 1000.0;
    s.mean *= 1000.0;
    s.median = percentile(v, n, 50) * 1000.0;
    s.p90 = percentile(v, n, 90) * 1000.0;
    s.p95 = percentile(v, n, 95) * 1000.0;
    s.p99 = percentile(v, n, 99) * 1000.0;
    s.max = v[n - 1] * 1000.0;
    return s;
}

/* ---------- prompts ---------- */

/* Decoded text of ids with ill-formed UTF-8 replaced by U+FFFD, as HF's decode gives (random
 * byte-level tokens rarely join into valid UTF-8, and a server rejects invalid JSON strings). */
static char *decode_text(const sglc_tokenizer *tok, const int32_t *ids, size_t n) {
    size_t need = sglc_tokenizer_decode(tok, ids, n, 1, NULL, 0);
    char *raw = malloc(need + 1), *out = malloc(need * 3 + 1);
    if (!raw || !out) goto fail;
    size_t got = sglc_tokenizer_decode(tok, ids, n, 1, raw, need);
    if (got < need) need = got;
    size_t o = 0;
    for (size_t i = 0; i < need;) {
        int k = sglc_utf8_scan((const unsigned char *)raw + i, need - i);
        if (k > 0) {
            memcpy(out + o, raw + i, (size_t)k);
            o += (size_t)k;
            i += (size_t)k;
        } else {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i += k < 0 ? (size_t)-k : need - i; /* 0: a truncated tail */
        }
    }
    out[o] = 0;
    free(raw);
    return out;
fail:
    free(raw);
    free(out);
    return NULL;
}

static int32_t count_tokens(const sglc_tokenizer *tok, const char *s, size_t n) {
    int64_t k = sglc_tokenizer_encode(tok, s, n, 0, 0, NULL, 0);
    return k < 0 ? 0 : (int32_t)k;
}

typedef struct {
    bench_backend backend;
    const char *model;
    int stream, ignore_eos;
    const cJSON *extra; /* --extra-request-body, merged at the top level */
} body_params;

/* The request JSON asking for out_len tokens: the native API takes the prompt's ids, the OpenAI
 * ones its decoded text. */
static char *make_body(const body_params *bp, const char *text, const int32_t *ids, int32_t n,
                       int32_t out_len) {
    cJSON *j = cJSON_CreateObject();
    if (!j) return NULL;
    if (bp->backend == BENCH_BACKEND_SGLANG) {
        cJSON_AddItemToObject(j, "input_ids", cJSON_CreateIntArray(ids, n));
        cJSON *sp = cJSON_AddObjectToObject(j, "sampling_params");
        cJSON_AddNumberToObject(sp, "temperature", 0.0);
        cJSON_AddNumberToObject(sp, "max_new_tokens", out_len);
        cJSON_AddBoolToObject(sp, "ignore_eos", bp->ignore_eos);
        cJSON_AddBoolToObject(j, "stream", bp->stream);
    } else {
        cJSON_AddStringToObject(j, "model", bp->model);
        if (bp->backend == BENCH_BACKEND_OAI_CHAT) {
            cJSON *msgs = cJSON_AddArrayToObject(j, "messages");
            cJSON *m = cJSON_CreateObject();
            cJSON_AddStringToObject(m, "role", "user");
            cJSON_AddStringToObject(m, "content", text);
            cJSON_AddItemToArray(msgs, m);
        } else {
            cJSON_AddStringToObject(j, "prompt", text);
        }
        cJSON_AddNumberToObject(j, "temperature", 0.0);
        cJSON_AddNumberToObject(j, "max_tokens", out_len);
        cJSON_AddBoolToObject(j, "stream", bp->stream);
        cJSON_AddBoolToObject(j, "ignore_eos", bp->ignore_eos);
        if (bp->stream) {
            /* so the token count comes from the server, not from counting chunks */
            cJSON *so = cJSON_AddObjectToObject(j, "stream_options");
            cJSON_AddTrueToObject(so, "include_usage");
        }
    }
    for (const cJSON *x = bp->extra ? bp->extra->child : NULL; x; x = x->next) {
        cJSON *dup = cJSON_Duplicate(x, 1);
        if (!dup) continue;
        if (cJSON_GetObjectItemCaseSensitive(j, x->string))
            cJSON_ReplaceItemInObjectCaseSensitive(j, x->string, dup);
        else
            cJSON_AddItemToObject(j, x->string, dup);
    }
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

/* ---------- tokenizer and server probe ---------- */

static int open_tokenizer(const char *path, sglc_gguf **g, sglc_tokenizer **tok) {
    sglc_err err = {{0}};
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "sglc bench_serving: tokenizer '%s' not found (pass --tokenizer PATH)\n",
                path);
        return -1;
    }
    int rc;
    if (S_ISDIR(st.st_mode))
        rc = sglc_tokenizer_open_hf(tok, path, &err);
    else
        rc = sglc_gguf_open(g, path, &err) != 0 ? -1 : sglc_tokenizer_open_gguf(tok, *g, &err);
    if (rc != 0) {
        fprintf(stderr, "sglc bench_serving: %s\n", err.msg[0] ? err.msg : path);
        return -1;
    }
    return 0;
}

/* GETs base/v1/models: checks that the server answers and takes the key, and with need_model
 * names the first model it serves. Returns 0, or -1 after one line on stderr. */
static int probe_server(const char *base, struct curl_slist *hdrs, int need_model, char *model,
                        size_t cap) {
    char url[2100], cerr[CURL_ERROR_SIZE] = "";
    snprintf(url, sizeof url, "%s/v1/models", base);
    char *body = NULL;
    size_t len = 0;
    CURL *e = curl_easy_init();
    if (!e) return -1;
    int rc = -1;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    curl_easy_setopt(e, CURLOPT_TIMEOUT, 60L);
    FILE *mem = open_memstream(&body, &len);
    if (!mem) goto cleanup;
    curl_easy_setopt(e, CURLOPT_WRITEDATA, mem);
    CURLcode res = curl_easy_perform(e);
    fclose(mem);
    if (res != CURLE_OK) {
        fprintf(stderr, "sglc bench_serving: cannot reach the server at %s: %s\n", base,
                cerr[0] ? cerr : curl_easy_strerror(res));
        goto cleanup;
    }
    long code = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    if (code == 401 || code == 403) {
        fprintf(stderr,
                "sglc bench_serving: the server at %s refused the API key (HTTP %ld); pass "
                "--api-key or set OPENAI_API_KEY\n",
                base, code);
        goto cleanup;
    }
    if (need_model) {
        cJSON *j = code == 200 ? cJSON_ParseWithLength(body ? body : "", len) : NULL;
        const cJSON *d = j ? cJSON_GetObjectItemCaseSensitive(j, "data") : NULL;
        const char *id = cJSON_IsArray(d) && d->child ? json_str(d->child, "id") : NULL;
        if (id) snprintf(model, cap, "%s", id);
        cJSON_Delete(j);
        if (!id) {
            fprintf(stderr,
                    "sglc bench_serving: %s gave no model name (HTTP %ld); pass --model NAME\n",
                    url, code);
            goto cleanup;
        }
    }
    rc = 0;
cleanup:
    free(body);
    curl_easy_cleanup(e);
    return rc;
}

static void post_flush_cache(const char *base, struct curl_slist *hdrs) {
    char url[2100];
    snprintf(url, sizeof url, "%s/flush_cache", base);
    CURL *e = curl_easy_init();
    if (!e) return;
    FILE *devnull = fopen("/dev/null", "w");
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, 60L);
    if (devnull) curl_easy_setopt(e, CURLOPT_WRITEDATA, devnull);
    curl_easy_perform(e);
    if (devnull) fclose(devnull);
    curl_easy_cleanup(e);
}

/* ---------- the command ---------- */

static void usage(FILE *f) {
    fprintf(
        f,
        "usage: sglc bench_serving [options]   (SGLang's bench_serving, against a running "
        "server)\n"
        "  --backend sglang|sglang-native|sglang-oai|sglang-oai-chat   API (sglang: "
        "/generate)\n"
        "  --base-url URL | --host H (127.0.0.1) --port P (30000)\n"
        "  --model NAME        model name for the OpenAI APIs (default: the first of "
        "/v1/models)\n"
        "  --tokenizer PATH    GGUF file or HF folder (default: --model if a path, else the\n"
        "                      bundled SmolLM2-135M-Instruct)\n"
        "  --api-key KEY       (default: $OPENAI_API_KEY)\n"
        "%s"
        "  --request-rate R    requests/s, Poisson arrivals (default inf: all at once)\n"
        "  --max-concurrency N at most N requests in flight\n"
        "  --warmup-requests N (1)  --flush-cache  --disable-stream  --disable-ignore-eos\n"
        "  --extra-request-body JSON   merged into every request\n"
        "  --output-file FILE  JSONL, appended (default: <backend>_<MMDD>_<n>_<in>_<out>.jsonl)\n"
        "  --output-details    add per-request lengths, TTFTs, ITLs, texts and errors\n",
        sglc_bench_dataset_usage);
}

static void print_line_s(const char *k, const char *v) {
    printf("%-40s %-10s\n", k, v);
}
static void print_line_i(const char *k, int64_t v) {
    printf("%-40s %-10lld\n", k, (long long)v);
}
static void print_line_f(const char *k, double v) {
    printf("%-40s %-10.2f\n", k, v);
}
static void print_rule(const char *title, char fill) {
    /* Python's "{:c^50}".format(title): extra padding goes to the right */
    int n = (int)strlen(title), pad = 50 - n, left = pad > 0 ? pad / 2 : 0;
    int right = pad > 0 ? pad - left : 0;
    for (int i = 0; i < left; i++)
        putchar(fill);
    fputs(title, stdout);
    for (int i = 0; i < right; i++)
        putchar(fill);
    putchar('\n');
}

/* mean_<name>_ms, median_, std_, p99_ (and p90_, or p95_ and max_) into the result line. */
static void add_stats(cJSON *res, const char *name, const bench_stats *s, int p90, int p95_max) {
    const struct {
        const char *label;
        double v;
        int on;
    } f[] = {{"mean", s->mean, 1},    {"median", s->median, 1}, {"std", s->std, 1},
             {"p90", s->p90, p90},    {"p95", s->p95, p95_max}, {"p99", s->p99, 1},
             {"max", s->max, p95_max}};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        char key[64];
        if (!f[i].on) continue;
        snprintf(key, sizeof key, "%s_%s_ms", f[i].label, name);
        cJSON_AddNumberToObject(res, key, f[i].v);
    }
}

/* Python's str(float): "inf", "16.0", "2.5". */
static void rate_str(double rate, char *buf, size_t cap) {
    if (isinf(rate))
        snprintf(buf, cap, "inf");
    else if (rate == floor(rate) && rate < 1e15)
        snprintf(buf, cap, "%.1f", rate);
    else
        snprintf(buf, cap, "%.17g", rate);
}

int sglc_cmd_bench_serving(int argc, char **argv) {
    sglc_bench_dataset_params dp;
    sglc_bench_dataset_params_default(&dp);
    dp.shuffle = 1;
    bench_backend backend = BENCH_BACKEND_SGLANG;
    const char *host = "127.0.0.1", *base_url = NULL, *model_arg = NULL, *tok_path = NULL;
    const char *api_key = getenv("OPENAI_API_KEY"), *out_file = NULL, *extra_s = NULL;
    int64_t port = 30000, max_conc = 0, warmup = 1;
    double rate = INFINITY;
    int stream = 1, ignore_eos = 1, details = 0, flush = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--disable-stream") == 0) {
            stream = 0;
            continue;
        } else if (strcmp(a, "--disable-ignore-eos") == 0) {
            ignore_eos = 0;
            continue;
        } else if (strcmp(a, "--output-details") == 0) {
            details = 1;
            continue;
        } else if (strcmp(a, "--flush-cache") == 0) {
            flush = 1;
            continue;
        } else if (strcmp(a, "--disable-tqdm") == 0) {
            continue; /* no progress bar to disable */
        }
        if (!(v = sglc_arg_value(argc, argv, &i))) return 2;
        int dr = sglc_bench_dataset_parse_arg(&dp, a, v);
        if (dr < 0) return 2;
        if (dr > 0) continue;
        if (strcmp(a, "--backend") == 0) {
            if (strcmp(v, "sglang") == 0 || strcmp(v, "sglang-native") == 0)
                backend = BENCH_BACKEND_SGLANG;
            else if (strcmp(v, "sglang-oai") == 0)
                backend = BENCH_BACKEND_OAI;
            else if (strcmp(v, "sglang-oai-chat") == 0)
                backend = BENCH_BACKEND_OAI_CHAT;
            else {
                fprintf(stderr,
                        "sglc: --backend: '%s' is not supported (sglang, sglang-native, "
                        "sglang-oai, sglang-oai-chat)\n",
                        v);
                return 2;
            }
        } else if (strcmp(a, "--host") == 0) {
            host = v;
        } else if (strcmp(a, "--port") == 0) {
            if (sglc_arg_int(a, v, 1, 65535, &port)) return 2;
        } else if (strcmp(a, "--base-url") == 0) {
            base_url = v;
        } else if (strcmp(a, "--model") == 0 || strcmp(a, "--model-path") == 0) {
            model_arg = v;
        } else if (strcmp(a, "--tokenizer") == 0) {
            tok_path = v;
        } else if (strcmp(a, "--api-key") == 0) {
            api_key = v;
        } else if (strcmp(a, "--output-file") == 0) {
            out_file = v;
        } else if (strcmp(a, "--extra-request-body") == 0) {
            extra_s = v;
        } else if (strcmp(a, "--request-rate") == 0) {
            if (strcmp(v, "inf") == 0 || strcmp(v, "Infinity") == 0)
                rate = INFINITY;
            else if (sglc_arg_float(a, v, 1e-6, 1e9, &rate))
                return 2;
        } else if (strcmp(a, "--max-concurrency") == 0) {
            if (sglc_arg_int(a, v, 1, 1000000, &max_conc)) return 2;
        } else if (strcmp(a, "--warmup-requests") == 0) {
            if (sglc_arg_int(a, v, 0, 1000, &warmup)) return 2;
        } else {
            fprintf(stderr, "sglc bench_serving: unknown option '%s' (see --help)\n", a);
            return 2;
        }
    }
    cJSON *extra = NULL;
    if (extra_s) {
        extra = cJSON_Parse(extra_s);
        if (!cJSON_IsObject(extra)) {
            fprintf(stderr, "sglc: --extra-request-body: not a JSON object\n");
            cJSON_Delete(extra);
            return 2;
        }
    }

    int ret = 1;
    bench_ctx ctx = {.backend = backend, .stream = stream};
    char base[2048], model[512] = "", default_tok[4096], hdr[4200];
    sglc_gguf *gguf = NULL;
    sglc_tokenizer *tok = NULL;
    sglc_bench_prompt *ps = NULL;
    int64_t n = 0;
    bench_req *reqs = NULL, *wreqs = NULL;
    double *buf = NULL;
    int curl_up = 0;

    if (base_url)
        snprintf(base, sizeof base, "%s", base_url);
    else
        snprintf(base, sizeof base, "http://%s:%lld", host, (long long)port);
    for (size_t l = strlen(base); l > 0 && base[l - 1] == '/'; l--)
        base[l - 1] = 0;
    snprintf(ctx.url, sizeof ctx.url, "%s%s", base, backend_paths[backend]);

    /* the tokenizer: --tokenizer, else --model when it is a path, else the default model */
    struct stat st;
    if (!tok_path && model_arg && stat(model_arg, &st) == 0) tok_path = model_arg;
    if (!tok_path) {
        if (sglc_default_model_path(default_tok, sizeof default_tok) != 0) {
            fprintf(stderr, "sglc bench_serving: no tokenizer: pass --tokenizer PATH (or run "
                            "scripts/fetch_model.sh for the default model)\n");
            goto cleanup;
        }
        tok_path = default_tok;
    }
    if (open_tokenizer(tok_path, &gguf, &tok) != 0) goto cleanup;
    ctx.tok = tok;

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "sglc bench_serving: libcurl failed to initialise\n");
        goto cleanup;
    }
    curl_up = 1;
    ctx.hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    ctx.hdrs = curl_slist_append(ctx.hdrs, "Expect:"); /* no 100-continue round trip */
    if (api_key && api_key[0]) {
        snprintf(hdr, sizeof hdr, "Authorization: Bearer %s", api_key);
        ctx.hdrs = curl_slist_append(ctx.hdrs, hdr);
    }
    if (!ctx.hdrs) goto cleanup;
    /* a model name from the command line is used as is (it may be a path, as in SGLang) */
    if (model_arg) snprintf(model, sizeof model, "%s", model_arg);
    if (probe_server(base, ctx.hdrs, !model_arg && backend != BENCH_BACKEND_SGLANG, model,
                     sizeof model) != 0)
        goto cleanup;

    /* prompts: ids in [100, 40100), clear of the special tokens, within the vocab */
    int32_t vocab = sglc_tokenizer_vocab_size(tok);
    if (sglc_bench_dataset_make(&dp, 100, vocab < 40100 ? vocab : 40100, &ps, &n) != 0)
        goto cleanup;
    reqs = calloc((size_t)n, sizeof *reqs);
    if (!reqs) goto cleanup;
    body_params bp = {backend, model, stream, ignore_eos, extra};
    int64_t sum_in = 0, sum_out = 0;
    for (int64_t i = 0; i < n; i++) {
        bench_req *r = &reqs[i];
        r->ctx = &ctx;
        r->out_len = ps[i].out_len;
        char *text = NULL;
        if (backend == BENCH_BACKEND_SGLANG) {
            r->prompt_len = ps[i].n;
        } else if (ps[i].prefix_len > 0) {
            /* SGLang's shared-prefix prompt: system prompt, blank line, question */
            char *sys = decode_text(tok, ps[i].ids, (size_t)ps[i].prefix_len);
            char *q = decode_text(tok, ps[i].ids + ps[i].prefix_len,
                                  (size_t)(ps[i].n - ps[i].prefix_len));
            size_t ls = sys ? strlen(sys) : 0, lq = q ? strlen(q) : 0;
            text = sys && q ? malloc(ls + lq + 3) : NULL;
            if (text) {
                memcpy(text, sys, ls);
                memcpy(text + ls, "\n\n", 2);
                memcpy(text + ls + 2, q, lq + 1);
            }
            free(sys);
            free(q);
        } else {
            text = decode_text(tok, ps[i].ids, (size_t)ps[i].n);
        }
        if (backend != BENCH_BACKEND_SGLANG) {
            if (!text) goto oom;
            r->prompt_len = count_tokens(tok, text, strlen(text));
        }
        r->body = make_body(&bp, text, ps[i].ids, ps[i].n, r->out_len);
        free(text);
        if (!r->body) goto oom;
        sum_in += r->prompt_len;
        sum_out += r->out_len;
    }
    printf("#Input tokens: %lld\n#Output tokens: %lld\n", (long long)sum_in, (long long)sum_out);

    /* more sockets than the default 1024 may be open at once */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 65535 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max < 65535 ? rl.rlim_max : 65535;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    if (warmup > 0) {
        printf("Starting warmup with %lld sequences...\n", (long long)warmup);
        fflush(stdout);
        wreqs = calloc((size_t)warmup, sizeof *wreqs);
        if (!wreqs) goto oom;
        int32_t wl = ps[0].out_len < 32 ? ps[0].out_len : 32;
        char *wtext =
            backend == BENCH_BACKEND_SGLANG ? NULL : decode_text(tok, ps[0].ids, (size_t)ps[0].n);
        for (int64_t i = 0; i < warmup; i++) {
            wreqs[i].ctx = &ctx;
            wreqs[i].out_len = wl;
            wreqs[i].body = make_body(&bp, wtext, ps[0].ids, ps[0].n, wl);
            if (!wreqs[i].body) {
                free(wtext);
                goto oom;
            }
        }
        free(wtext);
        if (run_all(wreqs, warmup, INFINITY, 0, dp.seed) < 0) goto curl_failed;
        int any = 0;
        for (int64_t i = 0; i < warmup; i++)
            any |= wreqs[i].success;
        if (!any) {
            fprintf(stderr, "sglc bench_serving: warmup failed: %s\n", wreqs[0].err);
            goto cleanup;
        }
        printf("Warmup completed with %lld sequences. Starting main benchmark run...\n",
               (long long)warmup);
    }
    if (flush) post_flush_cache(base, ctx.hdrs);
    fflush(stdout);

    double dur = run_all(reqs, n, rate, max_conc, dp.seed);
    if (dur < 0) goto curl_failed;
    if (dur <= 0) dur = 1e-9;

    /* metrics, as SGLang's calculate_metrics */
    int64_t completed = 0, total_in = 0, total_out = 0, total_retok = 0, n_itl = 0;
    for (int64_t i = 0; i < n; i++)
        n_itl += (int64_t)reqs[i].n_itl;
    buf = malloc(sizeof(double) * (size_t)(n_itl > n ? n_itl : n));
    if (!buf) goto oom;
    size_t k = 0;
    double sum_e2e = 0;
    for (int64_t i = 0; i < n; i++) {
        bench_req *r = &reqs[i];
        if (!r->success) continue;
        completed++;
        total_in += r->prompt_len;
        total_out += r->out_tokens;
        total_retok += count_tokens(tok, r->text ? r->text : "", r->text_len);
        sum_e2e += r->latency;
    }
    k = 0;
    for (int64_t i = 0; i < n; i++)
        if (reqs[i].success) buf[k++] = reqs[i].latency;
    bench_stats e2e = stats_ms(buf, k);
    k = 0;
    for (int64_t i = 0; i < n; i++)
        if (reqs[i].success) buf[k++] = reqs[i].ttft;
    bench_stats ttft = stats_ms(buf, k);
    k = 0;
    for (int64_t i = 0; i < n; i++)
        if (reqs[i].success && reqs[i].out_tokens > 1)
            buf[k++] = (reqs[i].latency - reqs[i].ttft) / (double)(reqs[i].out_tokens - 1);
    bench_stats tpot = stats_ms(buf, k);
    k = 0;
    for (int64_t i = 0; i < n; i++)
        for (size_t j = 0; reqs[i].success && j < reqs[i].n_itl; j++)
            buf[k++] = reqs[i].itl[j];
    bench_stats itl = stats_ms(buf, k);
    double concurrency = sum_e2e / dur;

    char rs[64], mc[32];
    rate_str(rate, rs, sizeof rs);
    if (max_conc > 0)
        snprintf(mc, sizeof mc, "%lld", (long long)max_conc);
    else
        snprintf(mc, sizeof mc, "not set");
    printf("\n");
    print_rule(" Serving Benchmark Result ", '=');
    print_line_s("Backend:", backend_names[backend]);
    print_line_s("Traffic request rate:", rs);
    print_line_s("Max request concurrency:", mc);
    print_line_i("Successful requests:", completed);
    print_line_f("Benchmark duration (s):", dur);
    print_line_i("Total input tokens:", total_in);
    print_line_i("Total generated tokens:", total_out);
    print_line_i("Total generated tokens (retokenized):", total_retok);
    print_line_f("Request throughput (req/s):", (double)completed / dur);
    print_line_f("Input token throughput (tok/s):", (double)total_in / dur);
    print_line_f("Output token throughput (tok/s):", (double)total_out / dur);
    print_line_f("Total token throughput (tok/s):", (double)(total_in + total_out) / dur);
    print_line_f("Concurrency:", concurrency);
    print_rule("End-to-End Latency", '-');
    print_line_f("Mean E2E Latency (ms):", e2e.mean);
    print_line_f("Median E2E Latency (ms):", e2e.median);
    print_line_f("P90 E2E Latency (ms):", e2e.p90);
    print_line_f("P99 E2E Latency (ms):", e2e.p99);
    print_rule("Time to First Token", '-');
    print_line_f("Mean TTFT (ms):", ttft.mean);
    print_line_f("Median TTFT (ms):", ttft.median);
    print_line_f("P99 TTFT (ms):", ttft.p99);
    print_rule("Time per Output Token (excl. 1st token)", '-');
    print_line_f("Mean TPOT (ms):", tpot.mean);
    print_line_f("Median TPOT (ms):", tpot.median);
    print_line_f("P99 TPOT (ms):", tpot.p99);
    print_rule("Inter-Token Latency", '-');
    print_line_f("Mean ITL (ms):", itl.mean);
    print_line_f("Median ITL (ms):", itl.median);
    print_line_f("P95 ITL (ms):", itl.p95);
    print_line_f("P99 ITL (ms):", itl.p99);
    print_line_f("Max ITL (ms):", itl.max);
    print_rule("", '=');
    fflush(stdout);

    /* one JSON line with SGLang's keys (request_rate inf is written as Python does: Infinity) */
    cJSON *res = cJSON_CreateObject();
    if (!res) goto oom;
    cJSON_AddStringToObject(res, "backend", backend_names[backend]);
    cJSON_AddStringToObject(res, "dataset_name", dp.name);
    if (isinf(rate))
        cJSON_AddRawToObject(res, "request_rate", "Infinity");
    else
        cJSON_AddNumberToObject(res, "request_rate", rate);
    if (max_conc > 0)
        cJSON_AddNumberToObject(res, "max_concurrency", (double)max_conc);
    else
        cJSON_AddNullToObject(res, "max_concurrency");
    cJSON_AddNullToObject(res, "sharegpt_output_len");
    cJSON_AddNumberToObject(res, "random_input_len", (double)dp.random_input_len);
    cJSON_AddNumberToObject(res, "random_output_len", (double)dp.random_output_len);
    cJSON_AddNumberToObject(res, "random_range_ratio", dp.random_range_ratio);
    cJSON_AddNumberToObject(res, "num_prompts", (double)n);
    cJSON_AddNumberToObject(res, "duration", dur);
    cJSON_AddNumberToObject(res, "completed", (double)completed);
    cJSON_AddNumberToObject(res, "total_input_tokens", (double)total_in);
    cJSON_AddNumberToObject(res, "total_output_tokens", (double)total_out);
    cJSON_AddNumberToObject(res, "total_output_tokens_retokenized", (double)total_retok);
    cJSON_AddNumberToObject(res, "request_throughput", (double)completed / dur);
    cJSON_AddNumberToObject(res, "input_throughput", (double)total_in / dur);
    cJSON_AddNumberToObject(res, "output_throughput", (double)total_out / dur);
    cJSON_AddNumberToObject(res, "total_throughput", (double)(total_in + total_out) / dur);
    add_stats(res, "e2e_latency", &e2e, 1, 0);
    add_stats(res, "ttft", &ttft, 0, 0);
    add_stats(res, "tpot", &tpot, 0, 0);
    add_stats(res, "itl", &itl, 0, 1);
    cJSON_AddNumberToObject(res, "concurrency", concurrency);
    cJSON_AddNullToObject(res, "accept_length");
    if (details) {
        cJSON *il = cJSON_AddArrayToObject(res, "input_lens");
        cJSON *ol = cJSON_AddArrayToObject(res, "output_lens");
        cJSON *tf = cJSON_AddArrayToObject(res, "ttfts");
        cJSON *it = cJSON_AddArrayToObject(res, "itls");
        cJSON *gt = cJSON_AddArrayToObject(res, "generated_texts");
        cJSON *er = cJSON_AddArrayToObject(res, "errors");
        for (int64_t i = 0; i < n; i++) {
            bench_req *r = &reqs[i];
            cJSON_AddItemToArray(il, cJSON_CreateNumber(r->prompt_len));
            cJSON_AddItemToArray(ol, cJSON_CreateNumber(r->success ? (double)r->out_tokens : 0));
            cJSON_AddItemToArray(tf, cJSON_CreateNumber(r->success ? r->ttft : 0));
            cJSON_AddItemToArray(it, r->n_itl ? cJSON_CreateDoubleArray(r->itl, (int)r->n_itl)
                                              : cJSON_CreateArray());
            cJSON_AddItemToArray(gt, cJSON_CreateString(r->text ? r->text : ""));
            cJSON_AddItemToArray(er, cJSON_CreateString(r->err));
        }
    }
    char *line = cJSON_PrintUnformatted(res);
    cJSON_Delete(res);
    char default_out[512];
    if (!out_file) {
        char day[8];
        time_t tt = time(NULL);
        struct tm tmv;
        strftime(day, sizeof day, "%m%d", localtime_r(&tt, &tmv));
        if (dp.kind == SGLC_BENCH_DATASET_RANDOM)
            snprintf(default_out, sizeof default_out, "%s_%s_%lld_%lld_%lld.jsonl",
                     backend_names[backend], day, (long long)n, (long long)dp.random_input_len,
                     (long long)dp.random_output_len);
        else /* SGLang's name for every other dataset */
            snprintf(default_out, sizeof default_out, "%s_%s_%lld_sharegpt.jsonl",
                     backend_names[backend], day, (long long)n);
        out_file = default_out;
    }
    FILE *f = line ? fopen(out_file, "a") : NULL;
    if (!f || fprintf(f, "%s\n", line) < 0) {
        fprintf(stderr, "sglc bench_serving: cannot append to %s\n", out_file);
        if (f) fclose(f);
        free(line);
        goto cleanup;
    }
    fclose(f);
    free(line);

    if (completed < n) {
        const char *first = "";
        for (int64_t i = 0; i < n && !first[0]; i++)
            if (!reqs[i].success) first = reqs[i].err;
        fprintf(stderr, "sglc bench_serving: %lld of %lld requests failed; first error: %s\n",
                (long long)(n - completed), (long long)n, first);
        goto cleanup;
    }
    ret = 0;
    goto cleanup;
oom:
    fprintf(stderr, "sglc bench_serving: out of memory\n");
    goto cleanup;
curl_failed:
    fprintf(stderr, "sglc bench_serving: libcurl's multi interface failed\n");
cleanup:
    for (int64_t i = 0; reqs && i < n; i++)
        req_free(&reqs[i]);
    for (int64_t i = 0; wreqs && i < warmup; i++)
        req_free(&wreqs[i]);
    free(reqs);
    free(wreqs);
    free(buf);
    sglc_bench_dataset_free(ps, n);
    cJSON_Delete(extra);
    curl_slist_free_all(ctx.hdrs);
    if (curl_up) curl_global_cleanup();
    sglc_tokenizer_close(tok);
    sglc_gguf_close(gguf);
    return ret;
}
