/* Micro-benchmark of the structured-output mask (not a test): the time per decode step that
 * grammar masking adds at batch 1 and batch 32 on the default model's vocabulary (49,152).
 *
 * A step for one request is what the sampling description adds: the mask of the request's
 * matcher state (computed by the vocabulary walk, or taken from the grammar's mask cache) as
 * the sample op's bitmask row, and advancing the matcher by the chosen token. The
 * requests replay a real output token by token (the default tokenizer's ids of a valid
 * document), batch 32 with each request a few tokens apart so their states differ.
 * "cold": the cache is off, every state is walked; "cached": the same replay again with the
 * cache warm (the steady state of repeated schemas and of long strings, whose states repeat).
 * Reports the median over steps of the per-step time, median of 5 runs.
 *
 * Build by hand against the library (after cmake --build build):
 *   gcc -O2 -std=c11 -D_GNU_SOURCE -Iinclude -Isrc bench/bench_grammar.c build/libsglc.a \
 *       -lpthread -lm $(pkg-config --libs libpcre2-8 libcjson libutf8proc libmicrohttpd) \
 *       -o build/bench_grammar
 *   build/bench_grammar [model.gguf] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/engine_impl.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n ? v[n / 2] : 0.0;
}

typedef struct {
    const char *name;
    sglc_grammar_kind kind;
    const char *src, *doc;
} bcase;

static const bcase k_cases[] = {
    {"json_schema", SGLC_GRAMMAR_JSON_SCHEMA,
     "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"age\":{\"type\":"
     "\"integer\",\"minimum\":0,\"maximum\":150},\"email\":{\"type\":\"string\",\"format\":"
     "\"email\"},\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}}},\"required\":["
     "\"name\",\"age\"]}",
     "{\"name\": \"Jane Doe, a software engineer from Lyon\", \"age\": 37, \"email\": "
     "\"jane.doe@example.com\", \"tags\": [\"c\", \"serving\", \"grammars\", \"json\"]}"},
    {"json_object", SGLC_GRAMMAR_JSON_OBJECT, "",
     "{\"weather\": {\"city\": \"Paris\", \"temperature\": 21.5, \"conditions\": [\"sunny\", "
     "\"light wind\"], \"humidity\": 0.45}, \"ok\": true, \"note\": null}"},
    {"regex", SGLC_GRAMMAR_REGEX,
     "[A-Z][a-z]+ [A-Z][a-z]+, [0-9]{3}-[0-9]{4}, [a-z.]+@[a-z]+\\.com",
     "Jane Doe, 555-1234, jane.doe@example.com"},
};

/* One replay: B requests, request b starting (7 b mod n) tokens into the document and wrapping
 * around (a fresh matcher at the start), n steps; per-step times go to steps[]. */
static int replay(sglc_engine *e, sglc_grammar *g, const int32_t *ids, int n, int B, int cached,
                  double *steps, float *logits) {
    int32_t V = e->model->cfg.n_vocab;
    sglc_request *rq = calloc((size_t)B, sizeof *rq);
    int *pos = calloc((size_t)B, sizeof *pos);
    if (!rq || !pos) return 0;
    for (int b = 0; b < B; b++) {
        rq[b].grammar = g;
        rq[b].id = b;
        int skip = (7 * b) % n; /* advance to the start offset untimed */
        for (int k = 0; k < skip; k++) {
            (void)sglc_engine_grammar_mask_bits(e, &rq[b], -1, (uint32_t *)logits, V);
            sglc_engine_grammar_accept(e, &rq[b], ids[k]);
        }
        pos[b] = skip;
    }
    if (!cached) sglc_engine_grammar_clear_cache(g);
    sglc_request **rows = calloc((size_t)B, sizeof *rows);
    for (int b = 0; b < B; b++)
        rows[b] = &rq[b];
    for (int step = 0; step < n; step++) {
        double t0 = now_s();
        for (int b = 0; b < B; b++)
            if (pos[b] == n) { /* wrap: a new request on the same grammar */
                sglc_gmatcher_free(&rq[b].gm);
                rq[b].gm_state = 0;
                pos[b] = 0;
            }
        /* as the scheduler does: every row's mask at once on the grammar pool, then each row's
         * mask taken and advanced (SGLC_GRAMMAR_SERIAL=1: one row after another, for A/B) */
        if (!getenv("SGLC_GRAMMAR_SERIAL")) sglc_engine_grammar_masks(e, rows, B);
        for (int b = 0; b < B; b++) {
            (void)sglc_engine_grammar_mask_bits(e, &rq[b], b,
                                                (uint32_t *)(logits + (size_t)b * (size_t)V), V);
            sglc_engine_grammar_accept(e, &rq[b], ids[pos[b]]);
            pos[b]++;
        }
        steps[step] = now_s() - t0;
        if (!cached) sglc_engine_grammar_clear_cache(g); /* cold: forget every mask */
    }
    for (int b = 0; b < B; b++)
        sglc_gmatcher_free(&rq[b].gm);
    free(rows);
    free(rq);
    free(pos);
    return n;
}

int main(int argc, char **argv) {
    sglc_engine_params ep;
    sglc_engine_params_default(&ep);
    ep.model_path = argc > 1 ? argv[1] : "models/SmolLM2-135M-Instruct.Q4_1.gguf";
    ep.max_total_tokens = 4096;
    ep.decode_log_interval = 0;
    ep.n_threads = 1;
    char err[512];
    sglc_engine *e = NULL;
    if (sglc_engine_open(&e, &ep, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    int32_t V = e->model->cfg.n_vocab;
    float *logits = malloc((size_t)V * 32 * sizeof *logits);
    if (!logits) return 1;
    for (size_t i = 0; i < (size_t)V * 32; i++)
        logits[i] = (float)(i % 97) * 0.01f;
    printf("vocab %d; ms per decode step: median over steps (mean in brackets), median of 5 "
           "runs\n",
           V);
    printf("%-12s %6s %16s %16s %16s %16s\n", "grammar", "tokens", "b1 cold", "b1 cached",
           "b32 cold", "b32 cached");
    for (size_t c = 0; c < sizeof k_cases / sizeof k_cases[0]; c++) {
        const bcase *k = &k_cases[c];
        sglc_grammar *g = NULL;
        if (sglc_engine_grammar_compile(e, k->kind, k->src, strlen(k->src), &g, err, sizeof err)) {
            fprintf(stderr, "%s: %s\n", k->name, err);
            return 1;
        }
        int32_t ids[512];
        int n = (int)sglc_engine_tokenize(e, k->doc, strlen(k->doc), 0, 0, ids, 512);
        double res[4], resm[4];
        int col = 0;
        for (int B = 1; B <= 32; B += 31)
            for (int cached = 0; cached < 2; cached++) {
                double runs[5], means[5];
                for (int r = 0; r < 5; r++) {
                    static double steps[1024];
                    if (cached) replay(e, g, ids, n, B, 1, steps, logits); /* warm it */
                    int ns = replay(e, g, ids, n, B, cached, steps, logits);
                    double sum = 0;
                    for (int k = 0; k < ns; k++)
                        sum += steps[k];
                    means[r] = ns ? sum / ns * 1e3 : 0;
                    runs[r] = median(steps, ns) * 1e3;
                }
                resm[col] = median(means, 5);
                res[col++] = median(runs, 5);
            }
        printf("%-12s %6d", k->name, n);
        for (int i = 0; i < 4; i++)
            printf(" %7.3f [%6.3f]", res[i], resm[i]);
        printf("\n");
        sglc_grammar_release(g);
    }
    free(logits);
    sglc_engine_close(e);
    return 0;
}
