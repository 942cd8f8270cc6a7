/* `sglc generate`: one prompt through the serving engine (include/sglc.h, the same scheduler
 * and sampler as `serve`), text streamed to stdout as it is decoded, a summary line (prompt
 * tokens, generated tokens, prefill and decode speed) on stderr. Special-token markup
 * in the raw prompt becomes the special token, as llama.cpp and HF tokenizers do for raw
 * prompts, so a chat-formatted prompt can be given as text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "cli/args.h"
#include "cli/cli.h"
#include "engine/sampler.h"
#include "sglc.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void usage(FILE *f) {
    fprintf(
        f, "usage: sglc generate [options]\n"
           "  --model-path, --model PATH  GGUF model (default: the bundled SmolLM2-135M-Instruct)\n"
           "  --prompt TEXT               prompt text (special-token markup is honoured)\n"
           "  --max-new-tokens N          tokens to generate (default 128)\n"
           "  --temperature T             0 = greedy (default 0)\n"
           "  --top-k K                   -1 = off (default -1)\n"
           "  --top-p P                   (0, 1], 1 = off (default 1)\n"
           "  --min-p P                   [0, 1], 0 = off (default 0)\n"
           "  --frequency-penalty F       [-2, 2] (default 0)\n"
           "  --presence-penalty F        [-2, 2] (default 0)\n"
           "  --repetition-penalty F      > 0, 1 = off (default 1)\n"
           "  --seed S                    random seed, any 64-bit value (default 0)\n"
           "  --ignore-eos                keep generating past end-of-sequence tokens\n"
           "  --context-length N          KV context (default: 8192 tokens or the model's)\n"
           "  --threads N                 CPU threads (default: all cores)\n"
           "  --device cpu|cpu-ggml|cuda  cpu-ggml: llama.cpp's CPU arithmetic bit for bit "
           "(slower; Q4_1/Q8_0 GGUF)\n"
           "  --quantization mlx_q4|mlx_q8  quantize F32/F16/BF16 weights at load (MLX affine, "
           "group 64)\n"
           "  --tp-size N                 tensor parallelism over N ranks of the device (CPU: the "
           "cores split; CUDA: N GPUs with NCCL)\n"
           "  --base-gpu-id N             first GPU (default 0); rank r on N + r * --gpu-id-step\n"
           "  --gpu-id-step N             GPU step between ranks (default 1)\n"
           "  --log-level LEVEL           debug|info|warning|error (default warning)\n");
}

int sglc_cmd_generate(int argc, char **argv) {
    const char *model_path = NULL, *prompt = NULL, *device = NULL;
    int64_t max_new = 128, threads = 0, ctx_len = 0, tp_size = 1, base_gpu = 0, gpu_step = 1;
    int ignore_eos = 0;
    double freq_pen = 0, pres_pen = 0, rep_pen = 1;
    int log_level_given = 0;
    const char *quant_preset = NULL;
    sglc_sampling_params sp;
    sglc_sampling_params_default(&sp);
    sglc_log_set_level(SGLC_LOG_WARN);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        double d;
        int64_t n;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--ignore-eos") == 0) {
            ignore_eos = 1;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "sglc generate: unexpected argument '%s' (see --help)\n", a);
            return 2;
        }
        if (!(v = sglc_arg_value(argc, argv, &i))) return 2;
        if (strcmp(a, "--model-path") == 0 || strcmp(a, "--model") == 0) {
            model_path = v;
        } else if (strcmp(a, "--prompt") == 0) {
            prompt = v;
        } else if (strcmp(a, "--max-new-tokens") == 0) {
            if (sglc_arg_int(a, v, 1, 1 << 30, &max_new)) return 2;
        } else if (strcmp(a, "--temperature") == 0) {
            if (sglc_arg_float(a, v, 0.0, 100.0, &d)) return 2;
            sp.temperature = (float)d;
        } else if (strcmp(a, "--top-k") == 0) {
            if (sglc_arg_int(a, v, -1, 1 << 30, &n)) return 2;
            sp.top_k = (int32_t)n;
        } else if (strcmp(a, "--top-p") == 0) {
            if (sglc_arg_float(a, v, 0.0, 1.0, &d)) return 2;
            if (d <= 0.0) {
                fprintf(stderr, "sglc: --top-p must be in (0, 1]\n");
                return 2;
            }
            sp.top_p = (float)d;
        } else if (strcmp(a, "--frequency-penalty") == 0) {
            if (sglc_arg_float(a, v, -2.0, 2.0, &freq_pen)) return 2;
        } else if (strcmp(a, "--presence-penalty") == 0) {
            if (sglc_arg_float(a, v, -2.0, 2.0, &pres_pen)) return 2;
        } else if (strcmp(a, "--repetition-penalty") == 0) {
            if (sglc_arg_float(a, v, 0.01, 100.0, &rep_pen)) return 2;
        } else if (strcmp(a, "--min-p") == 0) {
            if (sglc_arg_float(a, v, 0.0, 1.0, &d)) return 2;
            sp.min_p = (float)d;
        } else if (strcmp(a, "--seed") == 0) {
            if (sglc_arg_u64(a, v, &sp.seed)) return 2;
        } else if (strcmp(a, "--device") == 0) {
            if (sglc_arg_device(a, v, &device)) return 2;
        } else if (strcmp(a, "--threads") == 0) {
            if (sglc_arg_int(a, v, 1, 1024, &threads)) return 2;
        } else if (strcmp(a, "--tp-size") == 0 || strcmp(a, "--tp") == 0) {
            if (sglc_arg_int(a, v, 1, 8, &tp_size)) return 2;
        } else if (strcmp(a, "--base-gpu-id") == 0) {
            if (sglc_arg_int(a, v, 0, 1023, &base_gpu)) return 2;
        } else if (strcmp(a, "--gpu-id-step") == 0) {
            if (sglc_arg_int(a, v, 1, 1024, &gpu_step)) return 2;
        } else if (strcmp(a, "--quantization") == 0) {
            if (sglc_arg_quantization(a, v, &quant_preset)) return 2;
        } else if (strcmp(a, "--context-length") == 0) {
            if (sglc_arg_int(a, v, 1, 1 << 24, &ctx_len)) return 2;
        } else if (strcmp(a, "--log-level") == 0) {
            if (sglc_arg_log_level(a, v)) return 2;
            log_level_given = 1;
        } else {
            fprintf(stderr, "sglc generate: unknown option '%s' (see --help)\n", a);
            return 2;
        }
    }
    if (!prompt) {
        fprintf(stderr, "sglc generate: --prompt is required\n");
        return 2;
    }
    if (!*prompt) {
        fprintf(stderr, "sglc generate: the prompt is empty\n");
        return 2;
    }
    char default_path[4096];
    if (!(model_path = sglc_model_path_or_default(model_path, default_path, sizeof default_path)))
        return 1;

    /* the serving engine with one request: the same scheduler, sampler (penalties included) and
     * stop handling as `sglc serve`, through include/sglc.h */
    sglc_engine_params ep;
    sglc_engine_params_default(&ep);
    ep.model_path = model_path;
    ep.device = device;
    ep.quantization = quant_preset;
    ep.n_threads = (int)threads;
    ep.tp_size = (int32_t)tp_size;
    ep.base_gpu_id = (int32_t)base_gpu;
    ep.gpu_id_step = (int32_t)gpu_step;
    ep.max_running_requests = 1;
    ep.decode_log_interval = 0;
    /* the KV pool holds the context: --context-length, or 8192 tokens (capped by the model's
     * own context inside the engine), instead of a share of RAM */
    ep.context_length = (int32_t)ctx_len;
    ep.max_total_tokens = ctx_len ? (ctx_len > 16 ? ctx_len : 16) : 8192;
    /* cpu-ggml: llama.cpp's 512-token prefill micro-batches, as `serve` does */
    if (device && strcmp(device, "cpu-ggml") == 0) ep.chunked_prefill_size = 512;
    int ret = 1;
    sglc_engine *e = NULL;
    sglc_request *req = NULL;
    int32_t *ids = NULL;
    char err[1024];
    double t0 = now_s();
    /* --quantization says what it did (SGLang's two lines) unless a log level was chosen */
    if (quant_preset && !log_level_given) sglc_log_set_level(SGLC_LOG_INFO);
    int rc_open = sglc_engine_open(&e, &ep, err, sizeof err);
    if (quant_preset && !log_level_given) sglc_log_set_level(SGLC_LOG_WARN);
    if (rc_open != 0) {
        fprintf(stderr, "sglc: %s\n", err);
        return 1;
    }
    sglc_model_info mi;
    sglc_engine_get_model_info(e, &mi);
    SGLC_LOG_INFO("loaded %s (%s, %d layers, %.1f MB of weights) in %.2f s", model_path, mi.arch,
                  mi.n_layer, (double)mi.weight_bytes / 1e6, now_s() - t0);
    size_t plen = strlen(prompt);
    int64_t need = sglc_engine_tokenize(e, prompt, plen, 1, mi.add_bos, NULL, 0);
    if (need < 0) {
        fprintf(stderr, "sglc: cannot tokenize the prompt\n");
        goto cleanup;
    }
    if (need == 0) {
        fprintf(stderr, "sglc generate: the prompt has no tokens\n");
        goto cleanup;
    }
    if (!(ids = malloc((size_t)need * sizeof *ids))) goto cleanup;
    sglc_engine_tokenize(e, prompt, plen, 1, mi.add_bos, ids, (size_t)need);
    sglc_request_params rp;
    sglc_request_params_default(&rp);
    rp.temperature = sp.temperature;
    rp.top_k = sp.top_k;
    rp.top_p = sp.top_p;
    rp.min_p = sp.min_p;
    rp.frequency_penalty = (float)freq_pen;
    rp.presence_penalty = (float)pres_pen;
    rp.repetition_penalty = (float)rep_pen;
    rp.has_seed = 1;
    rp.seed = sp.seed;
    rp.ignore_eos = ignore_eos;
    rp.max_new_tokens = (int32_t)max_new;
    if (sglc_engine_submit(e, ids, (int32_t)need, &rp, NULL, &req, err, sizeof err) != 0) {
        fprintf(stderr, "sglc generate: %s\n", err);
        goto cleanup;
    }
    sglc_output o;
    size_t printed = 0;
    int32_t seen = 0;
    do {
        sglc_request_wait(req, seen, &o, -1);
        seen = o.n_output;
        if (o.text_len > printed) {
            fwrite(o.text + printed, 1, o.text_len - printed, stdout);
            fflush(stdout);
            printed = o.text_len;
        }
    } while (!o.finished);
    fputc('\n', stdout);
    fflush(stdout);
    if (o.finish_reason == SGLC_FINISH_ABORT) {
        fprintf(stderr, "sglc generate: the request was aborted (see the log above)\n");
        goto cleanup;
    }
    /* prefill: submit to the first token; decode counts the steps after it */
    int64_t steps = o.n_output > 0 ? o.n_output - 1 : 0;
    double dec = o.e2e_s - o.ttft_s;
    fprintf(stderr,
            "prompt tokens: %lld, generated tokens: %d, prefill: %.1f tok/s (%.1f ms), "
            "decode: %.1f tok/s (%.2f ms/token)\n",
            (long long)need, o.n_output, o.ttft_s > 0 ? (double)need / o.ttft_s : 0.0,
            o.ttft_s * 1e3, steps > 0 && dec > 0 ? (double)steps / dec : 0.0,
            steps > 0 ? dec * 1e3 / (double)steps : 0.0);
    ret = 0;
cleanup:
    sglc_request_release(req);
    free(ids);
    sglc_engine_close(e);
    return ret;
}
