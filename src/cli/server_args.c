/* SGLang's server arguments, one table for serve and the two benchmarks (see server_args.h).
 * Each row: the names SGLang accepts for the flag, its --help group, its value, the commands in
 * which it has an effect, and its help line. What a flag does is in apply() (its value) and in
 * no_effect() (why it does nothing in this command on this device, which is logged once). */
#include "cli/server_args.h"

#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "cli/args.h"
#include "model/model.h"

typedef enum {
    G_MODEL = 0,
    G_HTTP,
    G_QUANT,
    G_MEM,
    G_RUNTIME,
    G_LOG,
    G_API,
    G_PARALLEL,
    G_KERNEL,
    G_OPT,
    G_COUNT
} arg_group;

/* SGLang's section names in server_args.py / docs/advanced_features/server_arguments.md */
static const char *const k_group_names[G_COUNT] = {"Model and tokenizer",
                                                   "HTTP server",
                                                   "Quantization and data type",
                                                   "Memory and scheduling",
                                                   "Runtime options",
                                                   "Logging",
                                                   "API related",
                                                   "Data and tensor parallelism",
                                                   "Kernel backend",
                                                   "Optimization/debug options"};

typedef enum { K_FLAG = 0, K_VALUE, K_LIST, K_COUNT } arg_kind;

/* in which commands a flag acts */
enum {
    E_SERVE = 1 << SGLC_SARGS_CMD_SERVE,
    E_ONE = 1 << SGLC_SARGS_CMD_BENCH_ONE_BATCH,
    E_OFF = 1 << SGLC_SARGS_CMD_BENCH_OFFLINE,
    E_ENGINE = E_SERVE | E_OFF,
    E_ALL = E_SERVE | E_ONE | E_OFF
};

typedef enum {
    A_MODEL_PATH = 0,
    A_TOKENIZER_PATH,
    A_TOKENIZER_MODE,
    A_SKIP_TOKENIZER_INIT,
    A_LOAD_FORMAT,
    A_TRUST_REMOTE_CODE,
    A_CONTEXT_LENGTH,
    A_CHAT_TEMPLATE,
    A_HOST,
    A_PORT,
    A_MAX_BODY_BYTES,
    A_CONNECTION_TIMEOUT,
    A_DTYPE,
    A_KV_CACHE_DTYPE,
    A_QUANTIZATION,
    A_MEM_FRACTION_STATIC,
    A_MAX_TOTAL_TOKENS,
    A_MAX_RUNNING_REQUESTS,
    A_MAX_QUEUED_REQUESTS,
    A_CHUNKED_PREFILL_SIZE,
    A_MAX_PREFILL_TOKENS,
    A_SCHEDULE_POLICY,
    A_PAGE_SIZE,
    A_DEVICE,
    A_THREADS,
    A_RANDOM_SEED,
    A_WATCHDOG_TIMEOUT,
    A_STREAM_INTERVAL,
    A_LOG_LEVEL,
    A_LOG_LEVEL_HTTP,
    A_DECODE_LOG_INTERVAL,
    A_ENABLE_METRICS,
    A_API_KEY,
    A_SERVED_MODEL_NAME,
    A_REASONING_PARSER,
    A_TOOL_CALL_PARSER,
    A_TP_SIZE,
    A_BASE_GPU_ID,
    A_GPU_ID_STEP,
    A_DP_SIZE,
    A_NNODES,
    A_NODE_RANK,
    A_ATTENTION_BACKEND,
    A_SAMPLING_BACKEND,
    A_GRAMMAR_BACKEND,
    A_DISABLE_RADIX_CACHE,
    A_DISABLE_OVERLAP_SCHEDULE,
    A_DISABLE_CUDA_GRAPH,
    A_CUDA_GRAPH_MAX_BS,
    A_CUDA_GRAPH_BS,
    A_ENABLE_TORCH_COMPILE,
    A_ENABLE_DETERMINISTIC,
    A_DISABLE_CUSTOM_ALL_REDUCE,
    A_COUNT
} arg_id;

typedef struct {
    arg_id id;
    const char *names[4]; /* the first is the canonical one */
    arg_group group;
    arg_kind kind;
    unsigned acts; /* E_* */
    const char *metavar;
    const char *help;
} arg_spec;

static const arg_spec k_args[] = {
    {A_MODEL_PATH,
     {"--model-path", "--model"},
     G_MODEL,
     K_VALUE,
     E_ALL,
     "PATH",
     "GGUF file or Hugging Face / MLX folder (default: the bundled SmolLM2-135M-Instruct)"},
    {A_TOKENIZER_PATH,
     {"--tokenizer-path"},
     G_MODEL,
     K_VALUE,
     E_ENGINE,
     "PATH",
     "tokenizer from a tokenizer.json folder or a GGUF file (the model's)"},
    {A_TOKENIZER_MODE,
     {"--tokenizer-mode"},
     G_MODEL,
     K_VALUE,
     0,
     "auto|slow",
     "accepted; sglc has one tokenizer implementation"},
    {A_SKIP_TOKENIZER_INIT,
     {"--skip-tokenizer-init"},
     G_MODEL,
     K_FLAG,
     E_SERVE,
     NULL,
     "requests must send input_ids; responses carry output_ids only"},
    {A_LOAD_FORMAT,
     {"--load-format"},
     G_MODEL,
     K_VALUE,
     0,
     "auto|safetensors|gguf",
     "accepted; the format is detected from the path"},
    {A_TRUST_REMOTE_CODE,
     {"--trust-remote-code"},
     G_MODEL,
     K_FLAG,
     0,
     NULL,
     "accepted; sglc never runs code from a model folder"},
    {A_CONTEXT_LENGTH,
     {"--context-length"},
     G_MODEL,
     K_VALUE,
     E_ENGINE,
     "N",
     "context length (default: the model's)"},
    {A_CHAT_TEMPLATE,
     {"--chat-template"},
     G_MODEL,
     K_VALUE,
     E_SERVE,
     "FILE",
     "Jinja chat template overriding the model's"},
    {A_HOST, {"--host"}, G_HTTP, K_VALUE, E_SERVE, "HOST", "address to listen on (127.0.0.1)"},
    {A_PORT, {"--port"}, G_HTTP, K_VALUE, E_SERVE, "PORT", "port (30000)"},
    {A_MAX_BODY_BYTES,
     {"--max-body-bytes"},
     G_HTTP,
     K_VALUE,
     E_SERVE,
     "N",
     "request body limit, 413 beyond it (8388608)"},
    {A_CONNECTION_TIMEOUT,
     {"--connection-timeout"},
     G_HTTP,
     K_VALUE,
     E_SERVE,
     "S",
     "close connections idle or stalled for S seconds (120)"},
    {A_DTYPE,
     {"--dtype"},
     G_QUANT,
     K_VALUE,
     0,
     "auto|float16|bfloat16|float32",
     "auto: weights keep their stored format, activations are float32"},
    {A_KV_CACHE_DTYPE,
     {"--kv-cache-dtype"},
     G_QUANT,
     K_VALUE,
     0,
     "auto|fp16|bf16",
     "auto: f16 KV cache (f32 for float32 checkpoints); fp8 is refused"},
    {A_QUANTIZATION,
     {"--quantization"},
     G_QUANT,
     K_VALUE,
     E_ALL,
     "mlx_q4|mlx_q8",
     "quantize F32/F16/BF16 weights at load (MLX affine, group 64)"},
    {A_MEM_FRACTION_STATIC,
     {"--mem-fraction-static"},
     G_MEM,
     K_VALUE,
     E_ENGINE,
     "F",
     "share of free memory for the KV pool (0.2)"},
    {A_MAX_TOTAL_TOKENS,
     {"--max-total-tokens"},
     G_MEM,
     K_VALUE,
     E_ENGINE,
     "N",
     "KV pool size in tokens (overrides the fraction)"},
    {A_MAX_RUNNING_REQUESTS,
     {"--max-running-requests"},
     G_MEM,
     K_VALUE,
     E_ENGINE,
     "N",
     "requests decoded together (64 on cpu; on cuda one per 1,024 KV pool tokens, 64-512)"},
    {A_MAX_QUEUED_REQUESTS,
     {"--max-queued-requests"},
     G_MEM,
     K_VALUE,
     E_SERVE,
     "N",
     "queue cap; beyond it 503 with Retry-After (none)"},
    {A_CHUNKED_PREFILL_SIZE,
     {"--chunked-prefill-size"},
     G_MEM,
     K_VALUE,
     E_ENGINE,
     "N",
     "prefill chunk in tokens, -1 disables (2048; 512 on cpu-ggml; GPU: 8192 on 35-160 GiB, as "
     "SGLang)"},
    {A_MAX_PREFILL_TOKENS,
     {"--max-prefill-tokens"},
     G_MEM,
     K_VALUE,
     E_ENGINE,
     "N",
     "tokens per prefill batch (16384)"},
    {A_SCHEDULE_POLICY,
     {"--schedule-policy"},
     G_MEM,
     K_VALUE,
     E_ENGINE,
     "fcfs|lpm",
     "scheduling policy (fcfs)"},
    {A_PAGE_SIZE,
     {"--page-size"},
     G_MEM,
     K_VALUE,
     0,
     "N",
     "accepted; the KV pool is token-granular (page size 1)"},
    {A_DEVICE,
     {"--device"},
     G_RUNTIME,
     K_VALUE,
     E_ALL,
     "cpu|cpu-ggml|cuda",
     "cpu-ggml: llama.cpp's CPU arithmetic bit for bit (slower; Q4_1/Q8_0 GGUF)"},
    {A_THREADS, {"--threads"}, G_RUNTIME, K_VALUE, E_ALL, "N", "CPU threads (all cores)"},
    {A_RANDOM_SEED,
     {"--random-seed"},
     G_RUNTIME,
     K_VALUE,
     E_ENGINE,
     "S",
     "seed for requests without one (0)"},
    {A_WATCHDOG_TIMEOUT,
     {"--watchdog-timeout"},
     G_RUNTIME,
     K_VALUE,
     E_ENGINE,
     "S",
     "a forward step running longer ends the process, as in SGLang (off on cpu)"},
    {A_STREAM_INTERVAL,
     {"--stream-interval"},
     G_RUNTIME,
     K_VALUE,
     E_SERVE,
     "N",
     "streamed responses send a chunk every N tokens (1)"},
    {A_LOG_LEVEL, {"--log-level"}, G_LOG, K_VALUE, E_ALL, "LEVEL", "debug|info|warning|error"},
    {A_LOG_LEVEL_HTTP,
     {"--log-level-http"},
     G_LOG,
     K_VALUE,
     0,
     "LEVEL",
     "accepted; the HTTP server logs at --log-level"},
    {A_DECODE_LOG_INTERVAL,
     {"--decode-log-interval"},
     G_LOG,
     K_VALUE,
     E_ENGINE,
     "N",
     "decode log line every N steps, 0 = off (40)"},
    {A_ENABLE_METRICS,
     {"--enable-metrics"},
     G_LOG,
     K_FLAG,
     0,
     NULL,
     "accepted; Prometheus metrics are always served at /metrics"},
    {A_API_KEY,
     {"--api-key"},
     G_API,
     K_VALUE,
     E_SERVE,
     "KEY",
     "require 'Authorization: Bearer KEY' (not on /health)"},
    {A_SERVED_MODEL_NAME,
     {"--served-model-name"},
     G_API,
     K_VALUE,
     E_SERVE,
     "NAME",
     "model name in the OpenAI API (the path)"},
    {A_REASONING_PARSER,
     {"--reasoning-parser"},
     G_API,
     K_VALUE,
     E_SERVE,
     "qwen3|deepseek-r1",
     "return <think>...</think> as reasoning_content"},
    {A_TOOL_CALL_PARSER,
     {"--tool-call-parser"},
     G_API,
     K_VALUE,
     E_SERVE,
     "qwen25|llama3",
     "parse tool calls into OpenAI tool_calls"},
    {A_TP_SIZE,
     {"--tp-size", "--tp", "--tensor-parallel-size"},
     G_PARALLEL,
     K_VALUE,
     E_ALL,
     "N",
     "tensor parallel size (1; larger needs the multi-GPU backend)"},
    {A_BASE_GPU_ID,
     {"--base-gpu-id"},
     G_PARALLEL,
     K_VALUE,
     E_ALL,
     "N",
     "first GPU used (0); rank r of --tp-size runs on N + r * --gpu-id-step"},
    {A_GPU_ID_STEP,
     {"--gpu-id-step"},
     G_PARALLEL,
     K_VALUE,
     E_ALL,
     "N",
     "GPU ordinal step between tensor-parallel ranks (1)"},
    {A_DP_SIZE,
     {"--dp-size", "--dp", "--data-parallel-size"},
     G_PARALLEL,
     K_VALUE,
     E_ALL,
     "N",
     "data parallel size (1; scale out with workers behind sglang-router)"},
    {A_NNODES, {"--nnodes"}, G_PARALLEL, K_VALUE, E_ALL, "N", "nodes (1)"},
    {A_NODE_RANK, {"--node-rank"}, G_PARALLEL, K_VALUE, E_ALL, "N", "node rank (0)"},
    {A_ATTENTION_BACKEND,
     {"--attention-backend"},
     G_KERNEL,
     K_VALUE,
     0,
     "NAME",
     "accepted; sglc uses its own attention kernels"},
    {A_SAMPLING_BACKEND,
     {"--sampling-backend"},
     G_KERNEL,
     K_VALUE,
     0,
     "flashinfer|pytorch",
     "accepted; sglc uses its own sampler"},
    {A_GRAMMAR_BACKEND,
     {"--grammar-backend"},
     G_KERNEL,
     K_VALUE,
     E_SERVE,
     "xgrammar|outlines|llguidance|none",
     "none refuses structured output; any other uses sglc's grammar engine"},
    {A_DISABLE_RADIX_CACHE,
     {"--disable-radix-cache"},
     G_OPT,
     K_FLAG,
     E_ENGINE,
     NULL,
     "no prefix reuse across requests"},
    {A_DISABLE_OVERLAP_SCHEDULE,
     {"--disable-overlap-schedule"},
     G_OPT,
     K_FLAG,
     E_ENGINE,
     NULL,
     "run the scheduler synchronously"},
    {A_DISABLE_CUDA_GRAPH,
     {"--disable-cuda-graph"},
     G_OPT,
     K_FLAG,
     0,
     NULL,
     "run decode steps without CUDA graphs (CUDA devices)"},
    {A_CUDA_GRAPH_MAX_BS,
     {"--cuda-graph-max-bs"},
     G_OPT,
     K_VALUE,
     0,
     "N",
     "largest batch captured as a CUDA graph (CUDA devices)"},
    {A_CUDA_GRAPH_BS,
     {"--cuda-graph-bs"},
     G_OPT,
     K_LIST,
     0,
     "N [N ...]",
     "batch sizes captured as CUDA graphs (CUDA devices)"},
    {A_ENABLE_TORCH_COMPILE,
     {"--enable-torch-compile"},
     G_OPT,
     K_FLAG,
     0,
     NULL,
     "accepted; sglc has no torch"},
    {A_ENABLE_DETERMINISTIC,
     {"--enable-deterministic-inference"},
     G_OPT,
     K_FLAG,
     E_ALL,
     NULL,
     "the same tokens for a request whatever runs beside it (GPU: batch-invariant kernels, "
     "slower prefill; the CPU always is)"},
    {A_DISABLE_CUSTOM_ALL_REDUCE,
     {"--disable-custom-all-reduce"},
     G_OPT,
     K_FLAG,
     0,
     NULL,
     "accepted; no all-reduce on one device"},
};

#define N_ARGS ((int)(sizeof k_args / sizeof k_args[0]))

static const char *const k_cmd_names[SGLC_SARGS_CMD_COUNT] = {"serve", "bench_one_batch",
                                                              "bench_offline_throughput"};

void sglc_server_args_init(sglc_server_args *sa, sglc_sargs_cmd cmd, const char *log_level) {
    memset(sa, 0, sizeof *sa);
    sa->cmd = cmd;
    sglc_engine_params_default(&sa->ep);
    sa->sp.host = "127.0.0.1";
    sa->sp.port = 30000;
    sa->sp.max_body_bytes = 8u << 20;
    sa->sp.stream_interval = 1;
    sa->log_level = log_level;
    sa->schedule_policy = "fcfs";
    sa->dtype = "auto";
    sa->kv_cache_dtype = "auto";
    sa->load_format = "auto";
    sa->tokenizer_mode = "auto";
    sa->tp_size = 1;
    sa->dp_size = 1;
    sa->stream_interval = 1;
    sa->page_size = 1;
    sa->watchdog_timeout = sa->ep.watchdog_timeout_s;
}

static int one_of(const char *flag, const char *v, const char *const *choices) {
    for (int i = 0; choices[i]; i++)
        if (strcmp(v, choices[i]) == 0) return 0;
    fprintf(stderr, "sglc: %s: '%s' is not supported (", flag, v);
    for (int i = 0; choices[i]; i++)
        fprintf(stderr, "%s%s", i ? ", " : "", choices[i]);
    fprintf(stderr, ")\n");
    return -1;
}

/* a value that sglc cannot honour: one line, and the run stops */
static int refuse(const char *flag, const char *v, const char *why) {
    fprintf(stderr, "sglc: %s %s: %s\n", flag, v, why);
    return -1;
}

static int apply(sglc_server_args *sa, const arg_spec *s, const char *a, const char *v) {
    int64_t n;
    double d;
    sglc_engine_params *ep = &sa->ep;
    sglc_server_params *sp = &sa->sp;
    switch (s->id) {
    case A_MODEL_PATH: sa->model_path = v; return 0;
    case A_TOKENIZER_PATH: ep->tokenizer_path = v; return 0;
    case A_TOKENIZER_MODE: {
        static const char *const c[] = {"auto", "slow", NULL};
        if (one_of(a, v, c)) return -1;
        sa->tokenizer_mode = v;
        return 0;
    }
    case A_SKIP_TOKENIZER_INIT: sa->skip_tokenizer_init = sp->skip_tokenizer_init = 1; return 0;
    case A_LOAD_FORMAT: {
        static const char *const c[] = {"auto", "safetensors", "gguf", NULL};
        if (one_of(a, v, c)) return -1;
        sa->load_format = v;
        return 0;
    }
    case A_TRUST_REMOTE_CODE: sa->trust_remote_code = 1; return 0;
    case A_CONTEXT_LENGTH:
        if (sglc_arg_int(a, v, 1, 1 << 24, &n)) return -1;
        ep->context_length = (int32_t)n;
        return 0;
    case A_CHAT_TEMPLATE: sa->chat_template_file = v; return 0;
    case A_HOST: sp->host = v; return 0;
    case A_PORT:
        if (sglc_arg_int(a, v, 1, 65535, &n)) return -1;
        sp->port = (int)n;
        return 0;
    case A_MAX_BODY_BYTES:
        if (sglc_arg_int(a, v, 1024, 1 << 30, &n)) return -1;
        sp->max_body_bytes = (size_t)n;
        return 0;
    case A_CONNECTION_TIMEOUT:
        if (sglc_arg_int(a, v, 1, 86400, &n)) return -1;
        sp->connection_timeout_s = (unsigned)n;
        return 0;
    case A_DTYPE: {
        static const char *const c[] = {"auto",  "half",    "float16", "bfloat16",
                                        "float", "float32", NULL};
        if (one_of(a, v, c)) return -1;
        sa->dtype = v;
        return 0;
    }
    case A_KV_CACHE_DTYPE: {
        static const char *const c[] = {"auto",     "fp16",     "float16",  "bf16",
                                        "bfloat16", "fp8_e5m2", "fp8_e4m3", NULL};
        if (one_of(a, v, c)) return -1;
        if (strncmp(v, "fp8", 3) == 0)
            return refuse(a, v, "an fp8 KV cache is not supported on the CPU devices (auto: f16)");
        sa->kv_cache_dtype = v;
        return 0;
    }
    case A_QUANTIZATION: return sglc_arg_quantization(a, v, &ep->quantization);
    case A_MEM_FRACTION_STATIC:
        if (sglc_arg_float(a, v, 0.01, 0.99, &d)) return -1;
        ep->mem_fraction_static = d;
        return 0;
    case A_MAX_TOTAL_TOKENS:
        if (sglc_arg_int(a, v, 16, 1 << 30, &n)) return -1;
        ep->max_total_tokens = n;
        return 0;
    case A_MAX_RUNNING_REQUESTS:
        if (sglc_arg_int(a, v, 1, 4096, &n)) return -1;
        ep->max_running_requests = (int32_t)n;
        return 0;
    case A_MAX_QUEUED_REQUESTS:
        if (sglc_arg_int(a, v, 1, 1 << 30, &n)) return -1;
        sp->max_queued_requests = (int32_t)n;
        return 0;
    case A_CHUNKED_PREFILL_SIZE:
        if (sglc_arg_int(a, v, -1, 1 << 20, &n)) return -1;
        if (n == 0) {
            fprintf(stderr, "sglc: %s must be -1 or positive\n", a);
            return -1;
        }
        ep->chunked_prefill_size = (int32_t)n;
        sa->chunk_given = 1;
        return 0;
    case A_MAX_PREFILL_TOKENS:
        if (sglc_arg_int(a, v, 1, 1 << 24, &n)) return -1;
        ep->max_prefill_tokens = (int32_t)n;
        return 0;
    case A_SCHEDULE_POLICY:
        if (strcmp(v, "fcfs") == 0)
            ep->schedule_policy = SGLC_SCHEDULE_FCFS;
        else if (strcmp(v, "lpm") == 0)
            ep->schedule_policy = SGLC_SCHEDULE_LPM;
        else {
            fprintf(stderr, "sglc: %s: '%s' is not supported (fcfs, lpm)\n", a, v);
            return -1;
        }
        sa->schedule_policy = v;
        return 0;
    case A_PAGE_SIZE:
        if (sglc_arg_int(a, v, 1, 1 << 20, &sa->page_size)) return -1;
        return 0;
    case A_DEVICE: return sglc_arg_device(a, v, &ep->device);
    case A_THREADS: return sglc_arg_int(a, v, 1, 1024, &sa->threads);
    case A_RANDOM_SEED: return sglc_arg_u64(a, v, &ep->random_seed);
    case A_WATCHDOG_TIMEOUT:
        if (sglc_arg_float(a, v, 0.001, 1e9, &d)) return -1;
        sa->watchdog_timeout = ep->watchdog_timeout_s = d;
        return 0;
    case A_STREAM_INTERVAL:
        if (sglc_arg_int(a, v, 1, 1 << 20, &n)) return -1;
        sa->stream_interval = n;
        sp->stream_interval = (int32_t)n;
        return 0;
    case A_LOG_LEVEL:
        if (sglc_arg_log_level(a, v)) return -1;
        sa->log_level = v;
        return 0;
    case A_LOG_LEVEL_HTTP: {
        static const char *const c[] = {"debug", "info", "warning", "warn", "error", NULL};
        return one_of(a, v, c);
    }
    case A_DECODE_LOG_INTERVAL:
        if (sglc_arg_int(a, v, 0, 1 << 30, &n)) return -1;
        ep->decode_log_interval = (int32_t)n;
        return 0;
    case A_ENABLE_METRICS: sa->enable_metrics = 1; return 0;
    case A_API_KEY: sp->api_key = v; return 0;
    case A_SERVED_MODEL_NAME: sp->served_model_name = v; return 0;
    case A_REASONING_PARSER: {
        static const char *const c[] = {"qwen3", "deepseek-r1", NULL};
        if (one_of(a, v, c)) return -1;
        sa->reasoning_parser = sp->reasoning_parser = v;
        return 0;
    }
    case A_TOOL_CALL_PARSER: {
        static const char *const c[] = {"qwen25", "qwen", "llama3", NULL};
        if (one_of(a, v, c)) return -1;
        sa->tool_call_parser = sp->tool_call_parser = v;
        return 0;
    }
    case A_TP_SIZE:
        if (sglc_arg_int(a, v, 1, 1024, &sa->tp_size)) return -1;
        /* more ranks than one host's GPUs: SGLang's multi-node tensor parallelism */
        if (sa->tp_size > SGLC_TP_MAX)
            return refuse(a, v,
                          "tensor parallelism spans the GPUs of one host in sglc (at most 8)");
        /* whether the model splits that many ways and the device can (GPUs, NCCL) is
         * checked when the model loads */
        ep->tp_size = (int32_t)sa->tp_size;
        return 0;
    case A_BASE_GPU_ID: {
        int64_t n = 0;
        if (sglc_arg_int(a, v, 0, 1023, &n)) return -1;
        ep->base_gpu_id = (int32_t)n;
        return 0;
    }
    case A_GPU_ID_STEP: {
        int64_t n = 0;
        if (sglc_arg_int(a, v, 1, 1024, &n)) return -1;
        ep->gpu_id_step = (int32_t)n;
        return 0;
    }
    case A_DP_SIZE:
        if (sglc_arg_int(a, v, 1, 1024, &sa->dp_size)) return -1;
        if (sa->dp_size > 1)
            return refuse(a, v,
                          "sglc serves one data-parallel replica per process; run several "
                          "sglc workers behind sglang-router instead (--dp-size 1)");
        return 0;
    case A_NNODES:
        if (sglc_arg_int(a, v, 1, 1024, &n)) return -1;
        if (n > 1) return refuse(a, v, "multi-node serving is not available in sglc (--nnodes 1)");
        return 0;
    case A_NODE_RANK:
        if (sglc_arg_int(a, v, 0, 1023, &n)) return -1;
        if (n > 0) return refuse(a, v, "multi-node serving is not available in sglc (rank 0)");
        return 0;
    case A_ATTENTION_BACKEND: {
        /* SGLang's choices (server_args.py ATTENTION_BACKEND_CHOICES, common ones) */
        static const char *const c[] = {"triton",     "torch_native",   "flashinfer",  "fa3",
                                        "fa4",        "flashmla",       "cutlass_mla", "trtllm_mha",
                                        "trtllm_mla", "aiter",          "wave",        "ascend",
                                        "intel_amx",  "flex_attention", NULL};
        if (one_of(a, v, c)) return -1;
        sa->attention_backend = v;
        return 0;
    }
    case A_SAMPLING_BACKEND: {
        static const char *const c[] = {"flashinfer", "pytorch", NULL};
        if (one_of(a, v, c)) return -1;
        sa->sampling_backend = v;
        return 0;
    }
    case A_GRAMMAR_BACKEND: {
        static const char *const c[] = {"xgrammar", "outlines", "llguidance", "none", NULL};
        if (one_of(a, v, c)) return -1;
        sa->grammar_backend = v;
        sp->disable_grammar = strcmp(v, "none") == 0;
        return 0;
    }
    case A_DISABLE_RADIX_CACHE: ep->disable_radix_cache = 1; return 0;
    case A_DISABLE_OVERLAP_SCHEDULE: ep->disable_overlap_schedule = 1; return 0;
    case A_DISABLE_CUDA_GRAPH: sa->disable_cuda_graph = ep->disable_cuda_graph = 1; return 0;
    case A_CUDA_GRAPH_MAX_BS:
        if (sglc_arg_int(a, v, 1, 4096, &sa->cuda_graph_max_bs)) return -1;
        ep->cuda_graph_max_bs = (int32_t)sa->cuda_graph_max_bs;
        return 0;
    case A_CUDA_GRAPH_BS: return 0; /* values checked by the list parser */
    case A_ENABLE_TORCH_COMPILE: sa->enable_torch_compile = 1; return 0;
    case A_ENABLE_DETERMINISTIC: ep->enable_deterministic_inference = 1; return 0;
    case A_DISABLE_CUSTOM_ALL_REDUCE: sa->disable_custom_all_reduce = 1; return 0;
    case A_COUNT: break;
    }
    SGLC_ASSERT(0);
    return -1;
}

static const arg_spec *find(const char *a) {
    for (int k = 0; k < N_ARGS; k++)
        for (int j = 0; j < 4 && k_args[k].names[j]; j++)
            if (strcmp(a, k_args[k].names[j]) == 0) return &k_args[k];
    return NULL;
}

int sglc_server_args_parse(sglc_server_args *sa, int argc, char **argv, int *i) {
    const char *a = argv[*i];
    /* --flag=value, as argparse accepts */
    char name[64];
    const char *inline_v = NULL, *eq = strchr(a, '=');
    if (eq && strncmp(a, "--", 2) == 0 && (size_t)(eq - a) < sizeof name) {
        memcpy(name, a, (size_t)(eq - a));
        name[eq - a] = 0;
        inline_v = eq + 1;
        a = name;
    }
    const arg_spec *s = find(a);
    if (!s) return 0;
    if (sa->n_given < SGLC_SARGS_MAX_GIVEN) sa->given[sa->n_given++] = (int)(s - k_args);
    if (s->kind == K_FLAG) {
        if (inline_v) {
            fprintf(stderr, "sglc: %s takes no value\n", a);
            return -1;
        }
        return apply(sa, s, a, NULL) ? -1 : 1;
    }
    if (s->kind == K_LIST) {
        /* argparse nargs='+': values until the next flag */
        int nv = 0;
        int64_t n;
        if (inline_v) {
            if (sglc_arg_int(a, inline_v, 1, 4096, &n)) return -1;
            nv = 1;
        }
        while (*i + 1 < argc && strncmp(argv[*i + 1], "--", 2) != 0) {
            if (sglc_arg_int(a, argv[*i + 1], 1, 4096, &n)) return -1;
            (*i)++;
            nv++;
        }
        if (nv == 0) {
            fprintf(stderr, "sglc: %s needs at least one value\n", a);
            return -1;
        }
        return 1;
    }
    const char *v = inline_v;
    if (!v && !(v = sglc_arg_value(argc, argv, i))) return -1;
    return apply(sa, s, a, v) ? -1 : 1;
}

/* Why a given flag does nothing here, or NULL when it acts. */
static const char *no_effect(const sglc_server_args *sa, const arg_spec *s, char *buf, size_t cap) {
    const char *dev = sa->ep.device ? sa->ep.device : sglc_backend_default_name();
    int cuda = strcmp(dev, "cuda") == 0;
    switch (s->id) {
    case A_DISABLE_CUDA_GRAPH:
    case A_CUDA_GRAPH_MAX_BS:
        if (cuda) return NULL;
        snprintf(buf, cap, "no CUDA graphs on device %s", dev);
        return buf;
    case A_CUDA_GRAPH_BS:
        /* captured sizes follow SGLang's default list up to --cuda-graph-max-bs */
        snprintf(buf, cap,
                 cuda ? "no effect on device cuda (decode graphs are captured for SGLang's "
                        "default sizes up to --cuda-graph-max-bs)"
                      : "no CUDA graphs on device %s",
                 dev);
        return buf;
    case A_ATTENTION_BACKEND:
    case A_SAMPLING_BACKEND:
        snprintf(buf, cap, "no effect on device %s (sglc's own kernels)", dev);
        return buf;
    case A_ENABLE_TORCH_COMPILE: return "no effect (sglc has no torch)";
    case A_ENABLE_DETERMINISTIC:
        if (cuda) return NULL;
        snprintf(buf, cap, "no effect on device %s (its kernels are always batch-invariant)", dev);
        return buf;
    case A_DISABLE_CUSTOM_ALL_REDUCE: return "no effect (one device, no all-reduce)";
    case A_TRUST_REMOTE_CODE: return "no effect (sglc never runs code from a model folder)";
    case A_ENABLE_METRICS: return "no effect (Prometheus metrics are always served at /metrics)";
    case A_LOG_LEVEL_HTTP: return "no effect (the HTTP server logs at --log-level)";
    case A_TOKENIZER_MODE: return "no effect (sglc has one tokenizer implementation)";
    case A_LOAD_FORMAT: return "no effect (the format is detected from the path)";
    case A_PAGE_SIZE:
        if (sa->page_size == 1) return NULL;
        return "no effect (the KV pool is token-granular: page size 1)";
    case A_DTYPE:
        if (strcmp(sa->dtype, "auto") == 0) return NULL;
        snprintf(buf, cap,
                 "no effect on device %s (weights keep their stored format, activations are "
                 "float32)",
                 dev);
        return buf;
    case A_KV_CACHE_DTYPE:
        if (strcmp(sa->kv_cache_dtype, "auto") == 0) return NULL;
        snprintf(buf, cap, "no effect on device %s (the KV cache is f16, f32 for float32 models)",
                 dev);
        return buf;
    case A_GRAMMAR_BACKEND:
        if (sa->cmd == SGLC_SARGS_CMD_SERVE && strcmp(sa->grammar_backend, "none") != 0)
            return "sglc's own grammar engine serves structured output";
        break;
    default: break;
    }
    if (!(s->acts & (1u << sa->cmd))) {
        snprintf(buf, cap, "no effect in %s%s", k_cmd_names[sa->cmd],
                 sa->cmd == SGLC_SARGS_CMD_BENCH_ONE_BATCH
                     ? " (it calls prefill and decode directly, no scheduler or server)"
                     : " (no HTTP server)");
        return buf;
    }
    return NULL;
}

int sglc_server_args_finish(sglc_server_args *sa) {
    /* cpu-ggml: prefill in llama.cpp's 512-token micro-batches unless told otherwise, so a long
     * prompt splits where llama.cpp splits it (a 1-token remainder takes its single-token
     * attention order) */
    if (sa->ep.device && strcmp(sa->ep.device, "cpu-ggml") == 0 && !sa->chunk_given)
        sa->ep.chunked_prefill_size = 512;
    sa->ep.n_threads = (int)sa->threads;
    for (int g = 0; g < sa->n_given; g++) {
        int dup = 0;
        for (int h = 0; h < g; h++)
            dup |= sa->given[h] == sa->given[g];
        if (dup) continue;
        const arg_spec *s = &k_args[sa->given[g]];
        char buf[256];
        const char *why = no_effect(sa, s, buf, sizeof buf);
        if (why) sglc_log(SGLC_LOG_WARN, "%s: %s", s->names[0], why);
    }
    return 0;
}

void sglc_server_args_usage(FILE *f, sglc_sargs_cmd cmd) {
    for (int g = 0; g < G_COUNT; g++) {
        int any = 0;
        for (int k = 0; k < N_ARGS; k++) {
            const arg_spec *s = &k_args[k];
            if (s->group != (arg_group)g) continue;
            if (!any) fprintf(f, "\n%s:\n", k_group_names[g]);
            any = 1;
            char left[96];
            int n = snprintf(left, sizeof left, "  %s", s->names[0]);
            for (int j = 1; j < 4 && s->names[j]; j++)
                n += snprintf(left + n, sizeof left - (size_t)n, ", %s", s->names[j]);
            if (s->metavar) snprintf(left + n, sizeof left - (size_t)n, " %s", s->metavar);
            const char *note = (s->acts & (1u << cmd)) || !s->acts ? "" : " [no effect here]";
            /* help on its own line when the flag column or the line would overflow 100 */
            if (strlen(left) > 34 || 36 + strlen(s->help) + strlen(note) > 100)
                fprintf(f, "%s\n      %s%s\n", left, s->help, note);
            else
                fprintf(f, "%-36s%s%s\n", left, s->help, note);
        }
    }
}

static void add_str_or_null(cJSON *o, const char *k, const char *v) {
    if (v)
        cJSON_AddStringToObject(o, k, v);
    else
        cJSON_AddNullToObject(o, k);
}

cJSON *sglc_server_args_to_json(const sglc_server_args *sa) {
    const sglc_engine_params *ep = &sa->ep;
    const sglc_server_params *sp = &sa->sp;
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "model_path", ep->model_path ? ep->model_path : "");
    cJSON_AddStringToObject(o, "tokenizer_path",
                            ep->tokenizer_path ? ep->tokenizer_path
                                               : (ep->model_path ? ep->model_path : ""));
    cJSON_AddStringToObject(o, "tokenizer_mode", sa->tokenizer_mode);
    cJSON_AddBoolToObject(o, "skip_tokenizer_init", sa->skip_tokenizer_init);
    cJSON_AddStringToObject(o, "load_format", sa->load_format);
    cJSON_AddBoolToObject(o, "trust_remote_code", sa->trust_remote_code);
    cJSON_AddStringToObject(o, "dtype", sa->dtype);
    cJSON_AddStringToObject(o, "kv_cache_dtype", sa->kv_cache_dtype);
    cJSON_AddStringToObject(o, "host", sp->host);
    cJSON_AddNumberToObject(o, "port", sp->port);
    add_str_or_null(o, "served_model_name",
                    sp->served_model_name ? sp->served_model_name : ep->model_path);
    cJSON_AddBoolToObject(o, "api_key_set", sp->api_key != NULL);
    cJSON_AddNumberToObject(o, "mem_fraction_static", ep->mem_fraction_static);
    if (ep->max_total_tokens > 0)
        cJSON_AddNumberToObject(o, "max_total_tokens", (double)ep->max_total_tokens);
    else
        cJSON_AddNullToObject(o, "max_total_tokens");
    if (ep->max_running_requests > 0) /* null: chosen at load (max_running_requests_effective) */
        cJSON_AddNumberToObject(o, "max_running_requests", ep->max_running_requests);
    else
        cJSON_AddNullToObject(o, "max_running_requests");
    if (sp->max_queued_requests > 0)
        cJSON_AddNumberToObject(o, "max_queued_requests", sp->max_queued_requests);
    else
        cJSON_AddNullToObject(o, "max_queued_requests");
    if (ep->chunked_prefill_size != 0) /* 0: chosen at load; /get_server_info says which */
        cJSON_AddNumberToObject(o, "chunked_prefill_size", ep->chunked_prefill_size);
    else
        cJSON_AddNullToObject(o, "chunked_prefill_size");
    cJSON_AddNumberToObject(o, "max_prefill_tokens", ep->max_prefill_tokens);
    if (ep->context_length > 0)
        cJSON_AddNumberToObject(o, "context_length", ep->context_length);
    else
        cJSON_AddNullToObject(o, "context_length");
    cJSON_AddStringToObject(o, "schedule_policy", sa->schedule_policy);
    cJSON_AddNumberToObject(o, "page_size", (double)sa->page_size);
    add_str_or_null(o, "quantization", ep->quantization);
    cJSON_AddBoolToObject(o, "disable_radix_cache", ep->disable_radix_cache);
    cJSON_AddBoolToObject(o, "disable_overlap_schedule", ep->disable_overlap_schedule);
    cJSON_AddBoolToObject(o, "disable_cuda_graph", sa->disable_cuda_graph);
    if (sa->cuda_graph_max_bs > 0)
        cJSON_AddNumberToObject(o, "cuda_graph_max_bs", (double)sa->cuda_graph_max_bs);
    else
        cJSON_AddNullToObject(o, "cuda_graph_max_bs");
    cJSON_AddBoolToObject(o, "enable_torch_compile", sa->enable_torch_compile);
    cJSON_AddBoolToObject(o, "enable_deterministic_inference",
                          sa->ep.enable_deterministic_inference);
    cJSON_AddNumberToObject(o, "tp_size", (double)sa->tp_size);
    cJSON_AddNumberToObject(o, "base_gpu_id", ep->base_gpu_id);
    cJSON_AddNumberToObject(o, "gpu_id_step", ep->gpu_id_step > 0 ? ep->gpu_id_step : 1);
    cJSON_AddNumberToObject(o, "dp_size", (double)sa->dp_size);
    cJSON_AddNumberToObject(o, "stream_interval", (double)sa->stream_interval);
    cJSON_AddNumberToObject(o, "watchdog_timeout", sa->watchdog_timeout);
    cJSON_AddNumberToObject(o, "decode_log_interval", ep->decode_log_interval);
    cJSON_AddNumberToObject(o, "random_seed", (double)ep->random_seed);
    cJSON_AddNumberToObject(o, "max_body_bytes", (double)sp->max_body_bytes);
    cJSON_AddNumberToObject(o, "connection_timeout",
                            sp->connection_timeout_s ? sp->connection_timeout_s : 120);
    cJSON_AddNumberToObject(o, "threads", (double)sa->threads);
    cJSON_AddStringToObject(o, "log_level", sa->log_level);
    cJSON_AddBoolToObject(o, "enable_metrics", 1);
    add_str_or_null(o, "chat_template", sa->chat_template_file);
    add_str_or_null(o, "attention_backend", sa->attention_backend);
    add_str_or_null(o, "sampling_backend", sa->sampling_backend);
    add_str_or_null(o, "grammar_backend", sa->grammar_backend ? sa->grammar_backend : "sglc");
    add_str_or_null(o, "reasoning_parser", sa->reasoning_parser);
    add_str_or_null(o, "tool_call_parser", sa->tool_call_parser);
    cJSON_AddStringToObject(o, "device", ep->device ? ep->device : sglc_backend_default_name());
    return o;
}

void sglc_server_args_log_env(void) {
    const char *mlx = getenv("SGLANG_USE_MLX");
    if (mlx && *mlx && strcmp(mlx, "0") != 0)
        sglc_log(SGLC_LOG_INFO,
                 "SGLANG_USE_MLX=%s: sglc's own runtime serves (the MLX-style path it "
                 "implements; no Python, no torch.mps)",
                 mlx);
    if (sglc_custom_rope_requested())
        sglc_log(SGLC_LOG_INFO, "custom RoPE on (SGLANG_MLX_USE_CUSTOM_ROPE / SGLC_CUSTOM_ROPE): "
                                "RoPE and the KV-cache write run as one fused kernel");
}
