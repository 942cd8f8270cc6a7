/* `sglc generate`: one prompt, tokens streamed to stdout as they are decoded, a summary line
 * (prompt tokens, generated tokens, prefill and decode speed) on stderr. Special-token markup
 * in the raw prompt becomes the special token, as llama.cpp and HF tokenizers do for raw
 * prompts, so a chat-formatted prompt can be given as text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/backend.h"
#include "cli/args.h"
#include "cli/cli.h"
#include "engine/sampler.h"
#include "engine/session.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void say_stderr(const char *line) {
    fprintf(stderr, "%s\n", line);
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
           "  --seed S                    random seed, any 64-bit value (default 0)\n"
           "  --ignore-eos                keep generating past end-of-sequence tokens\n"
           "  --context-length N          KV context (default: prompt + max-new-tokens)\n"
           "  --threads N                 CPU threads (default: all cores)\n"
           "  --device cpu|cpu-ggml       cpu-ggml: llama.cpp's CPU arithmetic bit for bit "
           "(slower; Q4_1/Q8_0 GGUF)\n"
           "  --quantization mlx_q4|mlx_q8  quantize F32/F16/BF16 weights at load (MLX affine, "
           "group 64)\n"
           "  --log-level LEVEL           debug|info|warning|error (default warning)\n");
}

int sglc_cmd_generate(int argc, char **argv) {
    const char *model_path = NULL, *prompt = NULL, *device = "cpu";
    int64_t max_new = 128, threads = 0, ctx_len = 0;
    int ignore_eos = 0;
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
        } else if (strcmp(a, "--min-p") == 0) {
            if (sglc_arg_float(a, v, 0.0, 1.0, &d)) return 2;
            sp.min_p = (float)d;
        } else if (strcmp(a, "--seed") == 0) {
            if (sglc_arg_u64(a, v, &sp.seed)) return 2;
        } else if (strcmp(a, "--device") == 0) {
            if (sglc_arg_device(a, v, &device)) return 2;
        } else if (strcmp(a, "--threads") == 0) {
            if (sglc_arg_int(a, v, 1, 1024, &threads)) return 2;
        } else if (strcmp(a, "--quantization") == 0) {
            if (sglc_arg_quantization(a, v, &quant_preset)) return 2;
        } else if (strcmp(a, "--context-length") == 0) {
            if (sglc_arg_int(a, v, 1, 1 << 24, &ctx_len)) return 2;
        } else if (strcmp(a, "--log-level") == 0) {
            if (sglc_arg_log_level(a, v)) return 2;
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

    int ret = 1;
    sglc_err err = {{0}};
    sglc_backend *be = NULL;
    sglc_model *model = NULL;
    sglc_tokenizer *tok = NULL;
    sglc_session *sess = NULL;
    sglc_sampler sampler = {0};
    int32_t *ids = NULL;
    char *piece = NULL;
    double t0 = now_s();
    sglc_model_load_params lp = {.path = model_path,
                                 .device = device,
                                 .quantization = quant_preset,
                                 .n_threads = (int)threads,
                                 .say = say_stderr};
    if (sglc_model_load(&be, &model, &lp, &err) != 0 ||
        (model->gguf ? sglc_tokenizer_open_gguf(&tok, model->gguf, &err)
                     : sglc_tokenizer_open_hf(&tok, model_path, &err)) != 0) {
        fprintf(stderr, "sglc: %s\n", err.msg);
        goto cleanup;
    }
    if (sglc_tokenizer_vocab_size(tok) > model->cfg.n_vocab) {
        fprintf(stderr, "sglc: %s: tokenizer has %d tokens but the model only %d\n", model_path,
                sglc_tokenizer_vocab_size(tok), model->cfg.n_vocab);
        goto cleanup;
    }
    size_t plen = strlen(prompt);
    int64_t need =
        sglc_tokenizer_encode(tok, prompt, plen, 1, sglc_tokenizer_add_bos(tok), NULL, 0);
    if (need < 0) {
        fprintf(stderr, "sglc: cannot tokenize the prompt\n");
        goto cleanup;
    }
    if (need == 0) {
        fprintf(stderr, "sglc generate: the prompt has no tokens\n");
        goto cleanup;
    }
    ids = malloc((size_t)need * sizeof *ids);
    if (!ids) goto cleanup;
    sglc_tokenizer_encode(tok, prompt, plen, 1, sglc_tokenizer_add_bos(tok), ids, (size_t)need);
    int64_t n_ctx = ctx_len ? ctx_len : need + max_new;
    if (need + max_new > n_ctx || n_ctx > model->cfg.n_ctx_train) {
        fprintf(stderr,
                "sglc generate: prompt (%lld tokens) + max-new-tokens (%lld) exceeds the context "
                "length (%lld; the model's is %d)\n",
                (long long)need, (long long)max_new,
                (long long)(n_ctx < model->cfg.n_ctx_train ? n_ctx : model->cfg.n_ctx_train),
                model->cfg.n_ctx_train);
        goto cleanup;
    }
    if (sglc_session_open(&sess, model, (int32_t)n_ctx, 512, &err) != 0) {
        fprintf(stderr, "sglc: %s\n", err.msg);
        goto cleanup;
    }
    if (sglc_sampler_init(&sampler, model->cfg.n_vocab) != 0) goto cleanup;
    SGLC_LOG_INFO("loaded %s (%s, %d layers, %.1f MB of weights) in %.2f s", model_path,
                  sglc_arch_name(model->cfg.arch), model->cfg.n_layer,
                  (double)model->weight_bytes / 1e6, now_s() - t0);
    sglc_rng rng;
    sglc_rng_seed(&rng, sp.seed);
    sglc_detok_stream ds;
    sglc_detok_stream_init(&ds);
    size_t piece_cap = sglc_detok_stream_cap(tok);
    piece = malloc(piece_cap);
    if (!piece) goto cleanup;

    const float *logits = NULL;
    double tp0 = now_s();
    if (sglc_session_eval(sess, ids, (int32_t)need, &logits, NULL, &err) != 0) {
        fprintf(stderr, "sglc: %s\n", err.msg);
        goto cleanup;
    }
    double tp1 = now_s();
    int64_t generated = 0;
    double td0 = tp1;
    for (; generated < max_new; generated++) {
        int32_t next = sglc_sample(&sampler, logits, &sp, &rng);
        if (!ignore_eos && sglc_tokenizer_is_eog(tok, next)) break;
        size_t w = sglc_detok_stream_push(&ds, tok, next, 1, piece, piece_cap);
        fwrite(piece, 1, w, stdout);
        fflush(stdout);
        if (generated + 1 == max_new) {
            generated++;
            break;
        }
        if (sglc_session_eval(sess, &next, 1, &logits, NULL, &err) != 0) {
            fprintf(stderr, "sglc: %s\n", err.msg);
            goto cleanup;
        }
    }
    size_t w = sglc_detok_stream_flush(&ds, piece, piece_cap);
    fwrite(piece, 1, w, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    double td1 = now_s();
    /* decode speed counts the forward steps after the first sampled token */
    int64_t steps = generated > 0 ? generated - 1 : 0;
    fprintf(stderr,
            "prompt tokens: %lld, generated tokens: %lld, prefill: %.1f tok/s (%.1f ms), "
            "decode: %.1f tok/s (%.2f ms/token)\n",
            (long long)need, (long long)generated, (double)need / (tp1 - tp0), (tp1 - tp0) * 1e3,
            steps > 0 ? (double)steps / (td1 - td0) : 0.0,
            steps > 0 ? (td1 - td0) * 1e3 / (double)steps : 0.0);
    ret = 0;
cleanup:
    free(piece);
    free(ids);
    sglc_sampler_free(&sampler);
    sglc_session_close(sess);
    sglc_tokenizer_close(tok);
    sglc_model_close(model);
    sglc_backend_close(be);
    return ret;
}
