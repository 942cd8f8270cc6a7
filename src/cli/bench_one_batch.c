/* `sglc bench_one_batch`: SGLang's static-batch latency benchmark. It calls the model's prefill
 * and decode directly (no scheduler, no radix cache): one prefill of batch_size random prompts of
 * input_len tokens, then output_len - 1 greedy decode steps of the whole batch. Every value of
 * --batch-size x --input-len x --output-len is swept; each case runs a short warmup first. Prints
 * SGLang's lines and appends one JSON object per case to --result-filename. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/backend.h"
#include "base/log.h"
#include "cli/args.h"
#include "cli/cli.h"
#include "cli/server_args.h"
#include "engine/batch.h"
#include "model/model.h"

#define MAX_SWEEP 16

typedef struct {
    int64_t v[MAX_SWEEP];
    int n;
} int_list;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static uint64_t rng_next(uint64_t *s) {
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return *s >> 33;
}

/* SGLang takes each sweep flag with one or more values (`--batch-size 1 8 32`); a comma list is
 * accepted too. Consumes argv values until the next flag. */
static int parse_list(const char *flag, int argc, char **argv, int *i, int64_t hi, int_list *out) {
    out->n = 0;
    while (*i + 1 < argc && strncmp(argv[*i + 1], "--", 2) != 0) {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", argv[++*i]);
        for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
            if (out->n == MAX_SWEEP) {
                fprintf(stderr, "sglc: %s: at most %d values\n", flag, MAX_SWEEP);
                return -1;
            }
            if (sglc_arg_int(flag, tok, 1, hi, &out->v[out->n])) return -1;
            out->n++;
        }
    }
    if (out->n == 0) {
        fprintf(stderr, "sglc: %s needs a value\n", flag);
        return -1;
    }
    return 0;
}

typedef struct {
    sglc_model *model;
    sglc_model_state *st;
    int32_t bs, il, ol;
    int32_t *slots, *next;
    sglc_batch_builder bb;
    sglc_sample_row *greedy; /* [bs] */
} bench_case;

/* One step: n_tok tokens per sequence starting at position p0; next[] gets each sequence's
 * greedy token, sampled on the device as the server does (only the ids come back). */
static int step(bench_case *c, const int32_t *ids, int32_t n_tok, int32_t p0, sglc_err *err) {
    const int32_t per_seq = c->il + c->ol;
    sglc_bb_reset(&c->bb);
    for (int32_t s = 0; s < c->bs; s++) {
        /* each sequence owns a contiguous run of slots; its table row is written once */
        sglc_bb_add_seq(&c->bb, s, ids + (size_t)s * (size_t)n_tok, c->slots + (size_t)s * per_seq,
                        p0, n_tok, p0);
        sglc_bb_add_logits(&c->bb, c->bb.b.n_tokens - 1);
    }
    int rc = sglc_model_forward_launch(c->st, sglc_bb_batch(&c->bb), err);
    sglc_sample_desc d = {.n_rows = c->bs, .rows = c->greedy};
    const sglc_sample_result *res = NULL;
    if (!rc) rc = sglc_model_sample_launch(c->st, &d, err);
    if (!rc) rc = sglc_model_step_wait(c->st, &res, err);
    if (rc) return rc;
    memcpy(c->next, res->ids, (size_t)c->bs * sizeof *c->next);
    return SGLC_OK;
}

typedef struct {
    double prefill, median_decode, total;
} case_result;

static int run_once(bench_case *c, int32_t ol, int verbose, case_result *r, sglc_err *err) {
    uint64_t rng = 42;
    int32_t *ids = malloc((size_t)c->bs * (size_t)c->il * sizeof *ids);
    double *lat = malloc((size_t)(ol > 1 ? ol : 1) * sizeof *lat);
    if (!ids || !lat) {
        free(ids);
        free(lat);
        return sglc_err_set(err, SGLC_ERR_NOMEM, "out of memory");
    }
    /* SGLang's random prompts: ids uniform in [0, 10000) */
    int32_t hi = c->model->cfg.n_vocab < 10000 ? c->model->cfg.n_vocab : 10000;
    for (int64_t i = 0; i < (int64_t)c->bs * c->il; i++)
        ids[i] = (int32_t)(rng_next(&rng) % (uint64_t)hi);
    double t0 = now_s();
    int rc = step(c, ids, c->il, 0, err);
    r->prefill = now_s() - t0;
    r->total = r->prefill;
    if (verbose && !rc)
        printf("Prefill. latency: %.5f s, throughput: %9.2f token/s\n", r->prefill,
               (double)c->il * c->bs / r->prefill);
    int32_t n_dec = 0;
    for (int32_t i = 0; i < ol - 1 && !rc; i++) {
        memcpy(ids, c->next, (size_t)c->bs * sizeof *ids);
        t0 = now_s();
        rc = step(c, ids, 1, c->il + i, err);
        lat[n_dec] = now_s() - t0;
        r->total += lat[n_dec];
        if (verbose && !rc && i < 5)
            printf("Decode %d. Batch size: %d, latency: %.5f s, throughput: %9.2f token/s\n", i,
                   c->bs, lat[n_dec], c->bs / lat[n_dec]);
        n_dec++;
    }
    r->median_decode = 0;
    if (n_dec > 0) {
        qsort(lat, (size_t)n_dec, sizeof *lat, cmp_double);
        r->median_decode = n_dec % 2 ? lat[n_dec / 2] : 0.5 * (lat[n_dec / 2 - 1] + lat[n_dec / 2]);
    }
    free(ids);
    free(lat);
    return rc;
}

static int run_case(sglc_model *m, int32_t bs, int32_t il, int32_t ol, const char *run_name,
                    FILE *jsonl, sglc_err *err) {
    bench_case c = {.model = m, .bs = bs, .il = il, .ol = ol};
    const int32_t per_seq = il + ol;
    const int64_t slots = (int64_t)bs * per_seq, max_tok = (int64_t)bs * il;
    if (per_seq > m->cfg.n_ctx_train)
        sglc_log(SGLC_LOG_WARN, "input_len + output_len = %d exceeds the model's context %d",
                 per_seq, m->cfg.n_ctx_train);
    if (slots > (1 << 24) || max_tok > (1 << 22))
        return sglc_err_set(err, SGLC_ERR_ARG,
                            "batch_size %d x (input_len %d + output_len %d) is too large", bs, il,
                            ol);
    sglc_model_state_limits lim = {.max_tokens = (int32_t)max_tok,
                                   .max_logits = bs,
                                   .kv_slots = (int32_t)slots,
                                   .table_rows = bs,
                                   .table_stride = per_seq};
    int rc = sglc_model_state_open(&c.st, m, &lim, err);
    if (rc) return rc;
    c.slots = malloc((size_t)slots * sizeof(int32_t));
    c.next = malloc((size_t)bs * sizeof(int32_t));
    c.greedy = calloc((size_t)bs, sizeof *c.greedy);
    if (!c.slots || !c.next || !c.greedy ||
        sglc_bb_init(&c.bb, (int32_t)max_tok, bs, bs, per_seq) != 0) {
        rc = sglc_err_set(err, SGLC_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int64_t i = 0; i < slots; i++)
        c.slots[i] = (int32_t)i;
    for (int32_t s = 0; s < bs; s++)
        c.greedy[s] = (sglc_sample_row){.top_p = 1.0f,
                                        .repetition_penalty = 1.0f,
                                        .penalty_row = -1,
                                        .mask_row = -1,
                                        .forced = -1};
    case_result r;
    /* warmup: SGLang warms up with a short decode */
    if ((rc = run_once(&c, ol < 8 ? ol : 8, 0, &r, err)) != 0) goto done;
    printf("Benchmark ...\n");
    if ((rc = run_once(&c, ol, 1, &r, err)) != 0) goto done;
    if (ol > 1)
        printf("Decode.  median latency: %.5f s, median throughput: %9.2f token/s\n",
               r.median_decode, bs / r.median_decode);
    printf("Total. latency: %6.3f s, throughput: %9.2f token/s\n", r.total,
           (double)(il + ol) * bs / r.total);
    if (jsonl) {
        fprintf(jsonl,
                "{\"run_name\": \"%s\", \"batch_size\": %d, \"input_len\": %d, "
                "\"output_len\": %d, \"prefill_latency\": %.6f, \"prefill_throughput\": %.4f, "
                "\"median_decode_latency\": %.6f, \"median_decode_throughput\": %.4f, "
                "\"total_latency\": %.6f, \"overall_throughput\": %.4f}\n",
                run_name, bs, il, ol, r.prefill, (double)il * bs / r.prefill, r.median_decode,
                r.median_decode > 0 ? bs / r.median_decode : 0.0, r.total,
                (double)(il + ol) * bs / r.total);
        fflush(jsonl);
    }
done:
    free(c.slots);
    free(c.next);
    free(c.greedy);
    sglc_bb_free(&c.bb);
    sglc_model_state_close(c.st);
    return rc;
}

static void say_stdout(const char *line) {
    printf("%s\n", line);
}

static void usage(FILE *f) {
    fprintf(f, "usage: sglc bench_one_batch [options]\n"
               "Benchmark arguments:\n"
               "  --batch-size N [N ...]              batch sizes to sweep (default 1)\n"
               "  --input-len N [N ...]               prompt lengths (default 1024)\n"
               "  --output-len N [N ...]              generated tokens (default 16)\n"
               "  --run-name NAME                     name in the result file (default before)\n"
               "  --result-filename FILE              append one JSON line per case\n");
    sglc_server_args_usage(f, SGLC_SARGS_CMD_BENCH_ONE_BATCH);
}

int sglc_cmd_bench_one_batch(int argc, char **argv) {
    int_list bsz = {{1}, 1}, ilen = {{1024}, 1}, olen = {{16}, 1};
    const char *run_name = "before", *result_file = NULL;
    sglc_server_args sa;
    sglc_log_set_level(SGLC_LOG_WARN);
    sglc_server_args_init(&sa, SGLC_SARGS_CMD_BENCH_ONE_BATCH, "warning");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--batch-size") == 0) {
            if (parse_list(a, argc, argv, &i, 4096, &bsz)) return 2;
            continue;
        } else if (strcmp(a, "--input-len") == 0) {
            if (parse_list(a, argc, argv, &i, 1 << 20, &ilen)) return 2;
            continue;
        } else if (strcmp(a, "--output-len") == 0) {
            if (parse_list(a, argc, argv, &i, 1 << 20, &olen)) return 2;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "sglc bench_one_batch: unexpected argument '%s' (see --help)\n", a);
            return 2;
        }
        int r = sglc_server_args_parse(&sa, argc, argv, &i);
        if (r < 0) return 2;
        if (r > 0) continue;
        if (strcmp(a, "--run-name") != 0 && strcmp(a, "--result-filename") != 0) {
            fprintf(stderr, "sglc bench_one_batch: unknown option '%s' (see --help)\n", a);
            return 2;
        }
        if (!(v = sglc_arg_value(argc, argv, &i))) return 2;
        if (strcmp(a, "--run-name") == 0) {
            run_name = v;
            for (const char *p = v; *p; p++)
                if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20) {
                    fprintf(stderr, "sglc: --run-name: quotes, backslashes and control "
                                    "characters are not allowed\n");
                    return 2;
                }
        } else {
            result_file = v;
        }
    }
    sglc_server_args_log_env();
    if (sglc_server_args_finish(&sa)) return 2;
    const char *model_path = sa.model_path, *quant = sa.ep.quantization, *device = sa.ep.device;
    int64_t threads = sa.threads;
    char default_path[4096];
    if (!(model_path = sglc_model_path_or_default(model_path, default_path, sizeof default_path)))
        return 1;
    FILE *jsonl = NULL;
    if (result_file && !(jsonl = fopen(result_file, "a"))) {
        fprintf(stderr, "sglc: --result-filename %s: cannot open for appending\n", result_file);
        return 1;
    }
    sglc_err err = {{0}};
    sglc_backend *be = NULL;
    sglc_model *model = NULL;
    int ret = 1;
    sglc_model_load_params lp = {.path = model_path,
                                 .device = device,
                                 .quantization = quant,
                                 .n_threads = (int)threads,
                                 .disable_cuda_graph = sa.ep.disable_cuda_graph,
                                 .cuda_graph_max_bs = sa.ep.cuda_graph_max_bs,
                                 .deterministic = sa.ep.enable_deterministic_inference,
                                 .tp_size = (int)sa.tp_size,
                                 .base_gpu_id = sa.ep.base_gpu_id,
                                 .gpu_id_step = sa.ep.gpu_id_step,
                                 .say = say_stdout};
    if (sglc_model_load(&be, &model, &lp, &err) != 0) {
        fprintf(stderr, "sglc: %s\n", err.msg);
        goto cleanup;
    }
    for (int a = 0; a < bsz.n; a++)
        for (int b = 0; b < ilen.n; b++)
            for (int c = 0; c < olen.n; c++) {
                printf("Run: batch_size=%lld, input_len=%lld, output_len=%lld\n",
                       (long long)bsz.v[a], (long long)ilen.v[b], (long long)olen.v[c]);
                if (run_case(model, (int32_t)bsz.v[a], (int32_t)ilen.v[b], (int32_t)olen.v[c],
                             run_name, jsonl, &err) != 0) {
                    fprintf(stderr, "sglc: %s\n", err.msg);
                    goto cleanup;
                }
            }
    ret = 0;
cleanup:
    if (jsonl) fclose(jsonl);
    sglc_model_close(model);
    sglc_backend_close(be);
    return ret;
}
