/* `sglc serve` (alias `launch_server`): SGLang's launch_server flags, parsed strictly, then the
 * HTTP server of src/server/ runs until SIGTERM/SIGINT. The parsed flags also travel to
 * /get_server_info as JSON, under SGLang's names. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/log.h"
#include "cli/args.h"
#include "cli/cli.h"
#include "server/server.h"
#include "sglc.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: sglc serve [options]   (alias: sglc launch_server)\n"
            "  --model-path, --model PATH    GGUF file or Hugging Face / MLX folder (default: the\n"
            "                                bundled SmolLM2-135M-Instruct)\n"
            "  --host HOST                   address to listen on (default 127.0.0.1)\n"
            "  --port PORT                   port (default 30000)\n"
            "  --served-model-name NAME      model name in the OpenAI API (default: the path)\n"
            "  --api-key KEY                 require 'Authorization: Bearer KEY' (not on /health)\n"
            "  --mem-fraction-static F       share of free memory for the KV pool (default 0.2)\n"
            "  --max-total-tokens N          KV pool size in tokens (overrides the fraction)\n"
            "  --max-running-requests N      requests decoded together (default 64)\n"
            "  --max-queued-requests N       queue cap; beyond it 503 with Retry-After (default: "
            "none)\n"
            "  --chunked-prefill-size N      prefill chunk in tokens, -1 disables (default 2048)\n"
            "  --max-prefill-tokens N        tokens per prefill batch (default 16384)\n"
            "  --context-length N            context length (default: the model's)\n"
            "  --schedule-policy fcfs|lpm    scheduling policy (default fcfs)\n"
            "  --disable-radix-cache         no prefix reuse across requests\n"
            "  --disable-overlap-schedule    run the scheduler synchronously\n"
            "  --decode-log-interval N       decode log line every N steps, 0 = off (default 40)\n"
            "  --random-seed S               seed for requests without one (default 0)\n"
            "  --max-body-bytes N            request body limit (default 8388608)\n"
            "  --connection-timeout S        close connections idle or stalled for S seconds "
            "(default 120)\n"
            "  --threads N                   CPU threads (default: all cores)\n"
            "  --device cpu|cpu-ggml         cpu-ggml: llama.cpp's CPU arithmetic bit for bit "
            "(slower; Q4_1/Q8_0 GGUF)\n"
            "  --quantization mlx_q4|mlx_q8  quantize F32/F16/BF16 weights at load (MLX affine, "
            "group 64)\n"
            "  --log-level LEVEL             debug|info|warning|error (default info)\n");
}

int sglc_cmd_serve(int argc, char **argv) {
    sglc_engine_params ep;
    sglc_engine_params_default(&ep);
    sglc_server_params sp = {
        .host = "127.0.0.1", .port = 30000, .max_body_bytes = 8u << 20, .max_queued_requests = 0};
    const char *model = NULL, *log_level = "info", *policy = "fcfs", *chat_template_file = NULL;
    int64_t threads = 0;
    int chunk_given = 0;
    sglc_log_set_level(SGLC_LOG_INFO);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int64_t n;
        double d;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--disable-radix-cache") == 0) {
            ep.disable_radix_cache = 1;
            continue;
        } else if (strcmp(a, "--disable-overlap-schedule") == 0) {
            ep.disable_overlap_schedule = 1;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "sglc serve: unexpected argument '%s' (see --help)\n", a);
            return 2;
        }
        static const char *const known[] = {"--model-path",
                                            "--model",
                                            "--host",
                                            "--port",
                                            "--served-model-name",
                                            "--api-key",
                                            "--mem-fraction-static",
                                            "--max-total-tokens",
                                            "--max-running-requests",
                                            "--max-queued-requests",
                                            "--chunked-prefill-size",
                                            "--max-prefill-tokens",
                                            "--context-length",
                                            "--schedule-policy",
                                            "--decode-log-interval",
                                            "--random-seed",
                                            "--max-body-bytes",
                                            "--threads",
                                            "--device",
                                            "--log-level",
                                            "--chat-template",
                                            "--quantization",
                                            "--connection-timeout",
                                            NULL};
        int ok = 0;
        for (int k = 0; known[k]; k++)
            ok |= strcmp(a, known[k]) == 0;
        if (!ok) {
            fprintf(stderr, "sglc serve: unknown option '%s' (see --help)\n", a);
            return 2;
        }
        if (!(v = sglc_arg_value(argc, argv, &i))) return 2;
        if (strcmp(a, "--model-path") == 0 || strcmp(a, "--model") == 0) {
            model = v;
        } else if (strcmp(a, "--host") == 0) {
            sp.host = v;
        } else if (strcmp(a, "--port") == 0) {
            if (sglc_arg_int(a, v, 1, 65535, &n)) return 2;
            sp.port = (int)n;
        } else if (strcmp(a, "--served-model-name") == 0) {
            sp.served_model_name = v;
        } else if (strcmp(a, "--api-key") == 0) {
            sp.api_key = v;
        } else if (strcmp(a, "--chat-template") == 0) {
            chat_template_file = v;
        } else if (strcmp(a, "--quantization") == 0) {
            if (sglc_arg_quantization(a, v, &ep.quantization)) return 2;
        } else if (strcmp(a, "--device") == 0) {
            if (sglc_arg_device(a, v, &ep.device)) return 2;
        } else if (strcmp(a, "--connection-timeout") == 0) {
            if (sglc_arg_int(a, v, 1, 86400, &n)) return 2;
            sp.connection_timeout_s = (unsigned)n;
        } else if (strcmp(a, "--mem-fraction-static") == 0) {
            if (sglc_arg_float(a, v, 0.01, 0.99, &d)) return 2;
            ep.mem_fraction_static = d;
        } else if (strcmp(a, "--max-total-tokens") == 0) {
            if (sglc_arg_int(a, v, 16, 1 << 30, &n)) return 2;
            ep.max_total_tokens = n;
        } else if (strcmp(a, "--max-running-requests") == 0) {
            if (sglc_arg_int(a, v, 1, 4096, &n)) return 2;
            ep.max_running_requests = (int32_t)n;
        } else if (strcmp(a, "--max-queued-requests") == 0) {
            if (sglc_arg_int(a, v, 1, 1 << 30, &n)) return 2;
            sp.max_queued_requests = (int32_t)n;
        } else if (strcmp(a, "--chunked-prefill-size") == 0) {
            if (sglc_arg_int(a, v, -1, 1 << 20, &n)) return 2;
            if (n == 0) {
                fprintf(stderr, "sglc: --chunked-prefill-size must be -1 or positive\n");
                return 2;
            }
            ep.chunked_prefill_size = (int32_t)n;
            chunk_given = 1;
        } else if (strcmp(a, "--max-prefill-tokens") == 0) {
            if (sglc_arg_int(a, v, 1, 1 << 24, &n)) return 2;
            ep.max_prefill_tokens = (int32_t)n;
        } else if (strcmp(a, "--context-length") == 0) {
            if (sglc_arg_int(a, v, 1, 1 << 24, &n)) return 2;
            ep.context_length = (int32_t)n;
        } else if (strcmp(a, "--schedule-policy") == 0) {
            if (strcmp(v, "fcfs") == 0)
                ep.schedule_policy = SGLC_SCHEDULE_FCFS;
            else if (strcmp(v, "lpm") == 0)
                ep.schedule_policy = SGLC_SCHEDULE_LPM;
            else {
                fprintf(stderr, "sglc: --schedule-policy: '%s' is not supported (fcfs, lpm)\n", v);
                return 2;
            }
            policy = v;
        } else if (strcmp(a, "--decode-log-interval") == 0) {
            if (sglc_arg_int(a, v, 0, 1 << 30, &n)) return 2;
            ep.decode_log_interval = (int32_t)n;
        } else if (strcmp(a, "--random-seed") == 0) {
            if (sglc_arg_u64(a, v, &ep.random_seed)) return 2;
        } else if (strcmp(a, "--max-body-bytes") == 0) {
            if (sglc_arg_int(a, v, 1024, 1 << 30, &n)) return 2;
            sp.max_body_bytes = (size_t)n;
        } else if (strcmp(a, "--threads") == 0) {
            if (sglc_arg_int(a, v, 1, 1024, &threads)) return 2;
        } else if (strcmp(a, "--log-level") == 0) {
            if (sglc_arg_log_level(a, v)) return 2;
            log_level = v;
        }
    }
    /* cpu-ggml: prefill in llama.cpp's 512-token micro-batches unless told otherwise, so a long
     * prompt splits where llama.cpp splits it (a 1-token remainder takes its single-token
     * attention order) */
    if (strcmp(ep.device, "cpu-ggml") == 0 && !chunk_given) ep.chunked_prefill_size = 512;
    char default_path[4096];
    if (!(model = sglc_model_path_or_default(model, default_path, sizeof default_path))) return 1;
    ep.model_path = model;
    ep.n_threads = (int)threads;

    char *chat_template = NULL;
    if (chat_template_file) {
        FILE *f = fopen(chat_template_file, "rb");
        long n = -1;
        if (f && fseek(f, 0, SEEK_END) == 0) n = ftell(f);
        if (n < 0 || n > (1 << 20)) {
            fprintf(stderr, "sglc: --chat-template %s: %s\n", chat_template_file,
                    f ? "not readable or larger than 1 MB" : "cannot open");
            if (f) fclose(f);
            return 2;
        }
        rewind(f);
        chat_template = calloc(1, (size_t)n + 1);
        if (!chat_template || fread(chat_template, 1, (size_t)n, f) != (size_t)n) {
            fprintf(stderr, "sglc: --chat-template %s: read error\n", chat_template_file);
            free(chat_template);
            fclose(f);
            return 2;
        }
        fclose(f);
        sp.chat_template = chat_template;
    }
    cJSON *args = cJSON_CreateObject();
    cJSON_AddStringToObject(args, "model_path", model);
    cJSON_AddStringToObject(args, "tokenizer_path", model);
    cJSON_AddStringToObject(args, "host", sp.host);
    cJSON_AddNumberToObject(args, "port", sp.port);
    if (sp.served_model_name)
        cJSON_AddStringToObject(args, "served_model_name", sp.served_model_name);
    else
        cJSON_AddStringToObject(args, "served_model_name", model);
    cJSON_AddBoolToObject(args, "api_key_set", sp.api_key != NULL);
    cJSON_AddNumberToObject(args, "mem_fraction_static", ep.mem_fraction_static);
    if (ep.max_total_tokens > 0)
        cJSON_AddNumberToObject(args, "max_total_tokens", (double)ep.max_total_tokens);
    else
        cJSON_AddNullToObject(args, "max_total_tokens");
    cJSON_AddNumberToObject(args, "max_running_requests", ep.max_running_requests);
    if (sp.max_queued_requests > 0)
        cJSON_AddNumberToObject(args, "max_queued_requests", sp.max_queued_requests);
    else
        cJSON_AddNullToObject(args, "max_queued_requests");
    cJSON_AddNumberToObject(args, "chunked_prefill_size", ep.chunked_prefill_size);
    cJSON_AddNumberToObject(args, "max_prefill_tokens", ep.max_prefill_tokens);
    if (ep.context_length > 0)
        cJSON_AddNumberToObject(args, "context_length", ep.context_length);
    else
        cJSON_AddNullToObject(args, "context_length");
    cJSON_AddStringToObject(args, "schedule_policy", policy);
    if (ep.quantization)
        cJSON_AddStringToObject(args, "quantization", ep.quantization);
    else
        cJSON_AddNullToObject(args, "quantization");
    cJSON_AddBoolToObject(args, "disable_radix_cache", ep.disable_radix_cache);
    cJSON_AddBoolToObject(args, "disable_overlap_schedule", ep.disable_overlap_schedule);
    cJSON_AddNumberToObject(args, "decode_log_interval", ep.decode_log_interval);
    cJSON_AddNumberToObject(args, "random_seed", (double)ep.random_seed);
    cJSON_AddNumberToObject(args, "max_body_bytes", (double)sp.max_body_bytes);
    cJSON_AddNumberToObject(args, "connection_timeout",
                            sp.connection_timeout_s ? sp.connection_timeout_s : 120);
    cJSON_AddNumberToObject(args, "threads", (double)threads);
    cJSON_AddStringToObject(args, "log_level", log_level);
    if (chat_template_file)
        cJSON_AddStringToObject(args, "chat_template", chat_template_file);
    else
        cJSON_AddNullToObject(args, "chat_template");
    cJSON_AddStringToObject(args, "device", ep.device ? ep.device : "cpu");
    sp.server_args = args;

    char err[1024] = {0};
    int rc = sglc_server_run(&sp, &ep, err, sizeof err);
    free(chat_template);
    if (rc != 0) {
        fprintf(stderr, "sglc serve: %s\n", err);
        return 1;
    }
    return 0;
}
