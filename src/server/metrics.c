/* Prometheus /metrics in SGLang's names (sglang:*) with a model_name label: the engine's counters
 * and gauges and its latency histograms (engine stats and histogram API of sglc.h only). */
#include "server/server_impl.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
enum MHD_Result sglc_srv_handle_metrics(conn_ctx *c) {
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
        {"num_aborted_requests_total", "counter", "Number of requests aborted.",
         (double)st.requests_aborted},
        {"num_retracted_requests_total", "counter", "Total number of retracted requests.",
         (double)st.retractions},
        {"num_running_reqs", "gauge", "The number of running requests.", st.num_running},
        {"num_queue_reqs", "gauge", "The number of requests in the waiting queue.", st.num_queued},
        {"num_used_tokens", "gauge", "The number of used tokens.", (double)st.kv_used},
        {"max_total_num_tokens", "gauge", "Maximum total number of tokens in the KV cache pool.",
         (double)st.kv_pool_size},
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
    /* older SGLang's per-request figure, still read by dashboards and gateways */
    metric_histogram(&b, e, SGLC_HIST_TPOT, "sglang:time_per_output_token_seconds",
                     "Histogram of time per output token in seconds.", m);
    if (b.bad) {
        free(b.p);
        return sglc_srv_send_error(c->conn, 500, "out of memory");
    }
    enum MHD_Result r =
        sglc_srv_send_text(c->conn, 200, "text/plain; version=0.0.4", b.p ? b.p : "", b.len, NULL);
    free(b.p);
    return r;
}
