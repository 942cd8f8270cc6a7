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
#include "cli/bench_dataset.h"
#include "cli/cli.h"
#include "cli/server_args.h"
#include "sglc.h"

static double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int sglc_cmd_bench_offline_throughput(int argc, char **argv) {
    sglc_server_args sa;
    sglc_log_set_level(SGLC_LOG_INFO);
    sglc_server_args_init(&sa, SGLC_SARGS_CMD_BENCH_OFFLINE, "info");
    sglc_engine_params *ep = &sa.ep;
    ep->decode_log_interval = 0;
    /* SGLang's flags; the gsp defaults are smaller than bench_serving's, for CPU runs */
    sglc_bench_dataset_params dp;
    sglc_bench_dataset_params_default(&dp);
    dp.gsp_num_groups = 4;
    dp.gsp_system_prompt_len = 1000;
    dp.gsp_output_len = 128;
    const char *result_file = NULL;
    int ignore_eos = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (strcmp(a, "--disable-ignore-eos") == 0) {
            ignore_eos = 0;
            continue;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            printf("usage: sglc bench_offline_throughput [options]\n"
                   "Benchmark arguments:\n%s"
                   "  --disable-ignore-eos              stop at eos (default: ignore it)\n"
                   "  --result-filename FILE            append the result as one JSON line\n",
                   sglc_bench_dataset_usage);
            sglc_server_args_usage(stdout, SGLC_SARGS_CMD_BENCH_OFFLINE);
            return 0;
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr,
                    "sglc bench_offline_throughput: unexpected argument '%s' (see --help)\n", a);
            return 2;
        }
        int r = sglc_server_args_parse(&sa, argc, argv, &i);
        if (r < 0) return 2;
        if (r > 0) continue;
        if (!sglc_bench_dataset_parse_arg(&dp, a, NULL) && strcmp(a, "--result-filename") != 0) {
            fprintf(stderr, "sglc bench_offline_throughput: unknown option '%s' (see --help)\n", a);
            return 2;
        }
        if (!(v = sglc_arg_value(argc, argv, &i))) return 2;
        int dr = sglc_bench_dataset_parse_arg(&dp, a, v);
        if (dr < 0) return 2;
        if (dr > 0) continue;
        result_file = v; /* --result-filename */
    }
    sglc_server_args_log_env();
    if (sglc_server_args_finish(&sa)) return 2;
    char default_path[4096];
    const char *model =
        sglc_model_path_or_default(sa.model_path, default_path, sizeof default_path);
    if (!model) return 1;
    ep->model_path = model;
    sglc_engine *e = NULL;
    char err[512];
    if (sglc_engine_open(&e, ep, err, sizeof err) != 0) {
        fprintf(stderr, "sglc: %s\n", err);
        return 1;
    }
    /* ids in [100, 40100) (clear of the special tokens), within the vocab of smaller models */
    sglc_model_info mi;
    sglc_engine_get_model_info(e, &mi);
    int32_t id_hi = mi.vocab_size < 40100 ? mi.vocab_size : 40100;
    sglc_bench_prompt *ps = NULL;
    int64_t num_prompts = 0;
    if (sglc_bench_dataset_make(&dp, 100, id_hi, &ps, &num_prompts) != 0) {
        sglc_engine_close(e);
        return 1;
    }
    sglc_request **reqs = calloc((size_t)num_prompts, sizeof *reqs);
    int64_t total_in = 0;
    for (int64_t i = 0; i < num_prompts; i++)
        total_in += ps[i].n;
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
                dp.name, (long long)num_prompts, ep->disable_overlap_schedule ? "true" : "false",
                ep->disable_radix_cache ? "true" : "false", ok, dur, (long long)total_in,
                (long long)total_out, (long long)cached, ok / dur, (double)total_in / dur,
                (double)total_out / dur, (double)(total_in + total_out) / dur);
            fclose(f);
        }
    }
    sglc_bench_dataset_free(ps, num_prompts);
    free(reqs);
    sglc_engine_close(e);
    return ok == num_prompts ? 0 : 1;
}
