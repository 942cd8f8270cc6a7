/* `sglc bench_offline_throughput`: SGLang's offline throughput benchmark through the engine
 * (scheduler, radix cache, overlap), with its flags and result block. Datasets: `random` (random
 * token ids, lengths drawn in [len * range_ratio, len]) and `generated-shared-prefix` (groups of
 * prompts sharing a long system prompt, which shows the radix cache). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"

#include "cli/args.h"
#include "cli/cli.h"
#include "sglc.h"

typedef struct {
    int32_t *ids;
    int32_t n, out_len;
} bench_prompt;

static double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t lcg(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

static int32_t draw_len(uint64_t *s, int64_t len, double ratio) {
    int64_t lo = (int64_t)((double)len * ratio);
    if (lo < 1) lo = 1;
    if (lo >= len) return (int32_t)len;
    return (int32_t)(lo + (int64_t)(lcg(s) % (uint64_t)(len - lo + 1)));
}

int sglc_cmd_bench_offline_throughput(int argc, char **argv) {
    sglc_engine_params ep;
    sglc_engine_params_default(&ep);
    ep.decode_log_interval = 0;
    int64_t num_prompts = 1000, in_len = 1024, out_len = 1024, seed = 1, threads = 0;
    int64_t gsp_groups = 4, gsp_per_group = 16, gsp_sys = 1000, gsp_q = 128, gsp_out = 128;
    double ratio = 0.0;
    const char *dataset = "random", *result_file = NULL, *model = NULL;
    int ignore_eos = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int64_t n;
        double d;
        if (strcmp(a, "--disable-overlap-schedule") == 0) {
            ep.disable_overlap_schedule = 1;
            continue;
        } else if (strcmp(a, "--disable-radix-cache") == 0) {
            ep.disable_radix_cache = 1;
            continue;
        } else if (strcmp(a, "--disable-ignore-eos") == 0) {
            ignore_eos = 0;
            continue;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            printf(
                "usage: sglc bench_offline_throughput [--model-path P] [--num-prompts N]\n"
                "  [--dataset-name random|generated-shared-prefix] [--random-input-len N]\n"
                "  [--random-output-len N] [--random-range-ratio R] [--seed S]\n"
                "  [--gsp-num-groups N] [--gsp-prompts-per-group N] [--gsp-system-prompt-len N]\n"
                "  [--gsp-question-len N] [--gsp-output-len N] [--disable-overlap-schedule]\n"
                "  [--disable-radix-cache] [--disable-ignore-eos] [--max-running-requests N]\n"
                "  [--max-total-tokens N] [--chunked-prefill-size N] [--threads N]\n"
                "  [--result-filename FILE]\n");
            return 0;
        }
        if (!(v = sglc_arg_value(argc, argv, &i))) return 2;
        if (strcmp(a, "--model-path") == 0 || strcmp(a, "--model") == 0)
            model = v;
        else if (strcmp(a, "--dataset-name") == 0)
            dataset = v;
        else if (strcmp(a, "--result-filename") == 0)
            result_file = v;
        else if (strcmp(a, "--num-prompts") == 0) {
            if (sglc_arg_int(a, v, 1, 1000000, &num_prompts)) return 2;
        } else if (strcmp(a, "--random-input-len") == 0) {
            if (sglc_arg_int(a, v, 1, 1 << 20, &in_len)) return 2;
        } else if (strcmp(a, "--random-output-len") == 0) {
            if (sglc_arg_int(a, v, 1, 1 << 20, &out_len)) return 2;
        } else if (strcmp(a, "--random-range-ratio") == 0) {
            if (sglc_arg_float(a, v, 0.0, 1.0, &ratio)) return 2;
        } else if (strcmp(a, "--seed") == 0) {
            if (sglc_arg_int(a, v, 0, INT64_MAX, &seed)) return 2;
        } else if (strcmp(a, "--gsp-num-groups") == 0) {
            if (sglc_arg_int(a, v, 1, 100000, &gsp_groups)) return 2;
        } else if (strcmp(a, "--gsp-prompts-per-group") == 0) {
            if (sglc_arg_int(a, v, 1, 100000, &gsp_per_group)) return 2;
        } else if (strcmp(a, "--gsp-system-prompt-len") == 0) {
            if (sglc_arg_int(a, v, 1, 1 << 20, &gsp_sys)) return 2;
        } else if (strcmp(a, "--gsp-question-len") == 0) {
            if (sglc_arg_int(a, v, 1, 1 << 20, &gsp_q)) return 2;
        } else if (strcmp(a, "--gsp-output-len") == 0) {
            if (sglc_arg_int(a, v, 1, 1 << 20, &gsp_out)) return 2;
        } else if (strcmp(a, "--max-running-requests") == 0) {
            if (sglc_arg_int(a, v, 1, 4096, &n)) return 2;
            ep.max_running_requests = (int32_t)n;
        } else if (strcmp(a, "--max-total-tokens") == 0) {
            if (sglc_arg_int(a, v, 16, 1 << 30, &n)) return 2;
            ep.max_total_tokens = n;
        } else if (strcmp(a, "--chunked-prefill-size") == 0) {
            if (sglc_arg_int(a, v, -1, 1 << 20, &n) || n == 0) return 2;
            ep.chunked_prefill_size = (int32_t)n;
        } else if (strcmp(a, "--threads") == 0) {
            if (sglc_arg_int(a, v, 1, 1024, &threads)) return 2;
        } else if (strcmp(a, "--mem-fraction-static") == 0) {
            if (sglc_arg_float(a, v, 0.01, 0.99, &d)) return 2;
            ep.mem_fraction_static = d;
        } else {
            fprintf(stderr, "sglc bench_offline_throughput: unknown option '%s' (see --help)\n", a);
            return 2;
        }
    }
    int shared = strcmp(dataset, "generated-shared-prefix") == 0;
    if (!shared && strcmp(dataset, "random") != 0) {
        fprintf(stderr,
                "sglc: --dataset-name: '%s' is not supported (random, "
                "generated-shared-prefix)\n",
                dataset);
        return 2;
    }
    char default_path[4096];
    if (!model) {
        if (sglc_default_model_path(default_path, sizeof default_path) != 0) {
            fprintf(stderr,
                    "sglc: the default model is not installed; run scripts/fetch_model.sh\n");
            return 1;
        }
        model = default_path;
    }
    ep.model_path = model;
    ep.n_threads = (int)threads;
    sglc_log_set_level(SGLC_LOG_INFO);
    sglc_engine *e = NULL;
    char err[512];
    if (sglc_engine_open(&e, &ep, err, sizeof err) != 0) {
        fprintf(stderr, "sglc: %s\n", err);
        return 1;
    }
    if (shared) num_prompts = gsp_groups * gsp_per_group;
    bench_prompt *ps = calloc((size_t)num_prompts, sizeof *ps);
    sglc_request **reqs = calloc((size_t)num_prompts, sizeof *reqs);
    uint64_t rs = (uint64_t)seed;
    int32_t *sys = NULL;
    if (shared) {
        sys = malloc(sizeof(int32_t) * (size_t)(gsp_groups * gsp_sys));
        for (int64_t i = 0; i < gsp_groups * gsp_sys; i++)
            sys[i] = 100 + (int32_t)(lcg(&rs) % 40000);
    }
    int64_t total_in = 0;
    for (int64_t i = 0; i < num_prompts; i++) {
        bench_prompt *p = &ps[i];
        if (shared) {
            int64_t g = i / gsp_per_group;
            p->n = (int32_t)(gsp_sys + gsp_q);
            p->ids = malloc(sizeof(int32_t) * (size_t)p->n);
            memcpy(p->ids, sys + g * gsp_sys, sizeof(int32_t) * (size_t)gsp_sys);
            for (int64_t j = gsp_sys; j < p->n; j++)
                p->ids[j] = 100 + (int32_t)(lcg(&rs) % 40000);
            p->out_len = (int32_t)gsp_out;
        } else {
            p->n = draw_len(&rs, in_len, ratio);
            p->ids = malloc(sizeof(int32_t) * (size_t)p->n);
            for (int32_t j = 0; j < p->n; j++)
                p->ids[j] = 100 + (int32_t)(lcg(&rs) % 40000);
            p->out_len = draw_len(&rs, out_len, ratio);
        }
        total_in += p->n;
    }
    double t0 = bench_now();
    int ok = 0;
    for (int64_t i = 0; i < num_prompts; i++) {
        sglc_request_params rp;
        sglc_request_params_default(&rp);
        rp.temperature = 0.0f;
        rp.max_new_tokens = ps[i].out_len;
        rp.ignore_eos = ignore_eos;
        if (sglc_engine_submit(e, ps[i].ids, ps[i].n, &rp, NULL, &reqs[i], err, sizeof err) != 0)
            fprintf(stderr, "request %lld rejected: %s\n", (long long)i, err);
    }
    int64_t total_out = 0, cached = 0;
    for (int64_t i = 0; i < num_prompts; i++) {
        if (!reqs[i]) continue;
        sglc_output out;
        do
            sglc_request_wait(reqs[i], INT32_MAX, &out, -1);
        while (!out.finished);
        if (out.finish_reason != SGLC_FINISH_ABORT) ok++;
        total_out += out.n_output;
        cached += out.cached_tokens;
        sglc_request_release(reqs[i]);
    }
    double dur = bench_now() - t0;
    sglc_engine_stats st;
    sglc_engine_get_stats(e, &st);
    printf("\n====== Offline Throughput Benchmark Result =======\n");
    printf("%-40s %s\n", "Backend:", "sglc");
    printf("%-40s %d\n", "Successful requests:", ok);
    printf("%-40s %.2f\n", "Benchmark duration (s):", dur);
    printf("%-40s %lld\n", "Total input tokens:", (long long)total_in);
    printf("%-40s %lld\n", "Total generated tokens:", (long long)total_out);
    printf("%-40s %lld\n", "Cached input tokens:", (long long)cached);
    printf("%-40s %.2f\n", "Last generation throughput (tok/s):", st.last_gen_throughput);
    printf("%-40s %.2f\n", "Request throughput (req/s):", ok / dur);
    printf("%-40s %.2f\n", "Input token throughput (tok/s):", (double)total_in / dur);
    printf("%-40s %.2f\n", "Output token throughput (tok/s):", (double)total_out / dur);
    printf("%-40s %.2f\n", "Total token throughput (tok/s):", (double)(total_in + total_out) / dur);
    printf("==================================================\n");
    if (result_file) {
        FILE *f = fopen(result_file, "a");
        if (f) {
            fprintf(
                f,
                "{\"backend\": \"sglc\", \"dataset_name\": \"%s\", \"num_prompts\": %lld, "
                "\"disable_overlap_schedule\": %s, \"disable_radix_cache\": %s, "
                "\"successful_requests\": %d, \"duration\": %.4f, \"total_input_tokens\": %lld, "
                "\"total_output_tokens\": %lld, \"cached_tokens\": %lld, "
                "\"request_throughput\": %.4f, \"input_throughput\": %.4f, "
                "\"output_throughput\": %.4f, \"total_throughput\": %.4f}\n",
                dataset, (long long)num_prompts, ep.disable_overlap_schedule ? "true" : "false",
                ep.disable_radix_cache ? "true" : "false", ok, dur, (long long)total_in,
                (long long)total_out, (long long)cached, ok / dur, (double)total_in / dur,
                (double)total_out / dur, (double)(total_in + total_out) / dur);
            fclose(f);
        }
    }
    for (int64_t i = 0; i < num_prompts; i++)
        free(ps[i].ids);
    free(ps);
    free(reqs);
    free(sys);
    sglc_engine_close(e);
    return ok == num_prompts ? 0 : 1;
}
