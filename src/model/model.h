/* A loaded model: immutable config, a table of weights (zero-copy views into the mmap'd file),
 * and the per-step run state (activations and KV cache) in backend memory. The forward pass
 * (llama.c) is written once against backend.h and serves llama, qwen2 and qwen3. */
#ifndef SGLC_MODEL_MODEL_H
#define SGLC_MODEL_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "base/log.h"
#include "formats/gguf.h"
#include "formats/safetensors.h"

typedef enum {
    SGLC_ARCH_LLAMA = 0,
    SGLC_ARCH_QWEN2, /* q/k/v bias */
    SGLC_ARCH_QWEN3, /* per-head q_norm/k_norm */
    SGLC_ARCH_COUNT
} sglc_arch;

typedef struct {
    sglc_arch arch;
    int32_t n_layer, n_embd, n_ff, n_head, n_head_kv, head_dim, rot_dim, n_vocab, n_ctx_train;
    float rope_theta, rms_eps;
    sglc_rope_mode rope_mode;
    int tied_embeddings;
    /* KV cache element type (F16 for GGUF models, as llama.cpp; the checkpoint's dtype for
     * HF folders, so f32 checkpoints keep f32 attention) */
    uint32_t kv_type;
} sglc_model_config;

typedef struct {
    sglc_weight attn_norm, wq, wk, wv, wo;
    sglc_weight bq, bk, bv;     /* qwen2; type F32, n == 1 (absent: host == NULL) */
    sglc_weight bo;             /* HF llama/qwen3 with attention_bias; absent: host == NULL */
    sglc_weight q_norm, k_norm; /* qwen3; [head_dim] */
    sglc_weight ffn_norm, w_gate, w_up, w_down;
} sglc_layer_weights;

typedef struct {
    sglc_model_config cfg;
    sglc_weight tok_embd; /* [n_vocab][n_embd] */
    sglc_weight out_norm; /* [n_embd] */
    sglc_weight output;   /* [n_vocab][n_embd]; the same tensor as tok_embd when tied */
    sglc_layer_weights *layers;
    size_t weight_bytes;  /* bytes of all weights as stored */
    sglc_backend *be;     /* borrowed */
    sglc_gguf *gguf;      /* owned: the GGUF mapping the weights point into, or NULL */
    sglc_safetensors *st; /* owned: the safetensors maps the weights point into, or NULL */
    float *rope_freqs;    /* backend memory [rot_dim / 2] (Llama-3 rope scaling); NULL: none */
    void **host_owned;    /* host copies made at load (F32 versions of bf16/f16 norms, ...) */
    size_t n_host_owned;  /* entries in host_owned */
    const char *path;     /* borrowed from the caller for messages */
    int prepared;         /* every weight went through the backend's prepare_weight */
    /* Tensor parallelism (issue 17, the Megatron split of model/tp.h): the layer weights are
     * rank tp_rank's shards of tp_size; tp_n_head, tp_n_head_kv and tp_n_ff are the query
     * heads, KV heads and feed-forward rows this rank computes (when n_head_kv < tp_size, each
     * KV head is replicated on tp_size / n_head_kv ranks). Embedding, output norm and output
     * head are replicated on every rank (vocabulary-parallel is a later step). tp_size 1: the
     * whole model, tp NULL. Rank 0 of a group owns the group (tp): the other ranks' models and
     * backends and the communicator; the front ends see only rank 0. */
    int32_t tp_size, tp_rank, tp_n_head, tp_n_head_kv, tp_n_ff;
    struct sglc_model_tp *tp;
} sglc_model;

#define SGLC_TP_MAX 8 /* ranks of a tensor-parallel group: the GPUs of one host */
typedef struct sglc_model_tp {
    int32_t n;
    sglc_model *rank[SGLC_TP_MAX]; /* rank[0] is the model holding this; the others owned */
    sglc_backend *be[SGLC_TP_MAX]; /* be[0] is the caller's; the others owned */
    sglc_comm *comm;               /* owned */
} sglc_model_tp;

/* Loads a GGUF model onto backend be (borrowed; must outlive the model). Validates the
 * architecture keys against the tensors; refuses unknown architectures and weight types the
 * backend cannot compute, with one line naming the file and the problem. */
int sglc_model_open_gguf(sglc_model **out, const char *path, sglc_backend *be, sglc_err *err);
/* Loads a Hugging Face model folder (config.json + *.safetensors; LlamaForCausalLM,
 * Qwen2ForCausalLM, Qwen3ForCausalLM) with F32/F16/BF16 weights, zero-copy. */
int sglc_model_open_hf(sglc_model **out, const char *dir, sglc_backend *be, sglc_err *err);
/* Picks the loader: GGUF for a .gguf file (or a file starting with the GGUF magic), HF for a
 * folder holding config.json; anything else is refused with one line saying why. */
int sglc_model_open(sglc_model **out, const char *path, sglc_backend *be, sglc_err *err);
/* The same three without the backend's prepare_weight pass (weights bound to host memory only),
 * for quantizing before anything is uploaded; sglc_model_prepare finishes them. */
int sglc_model_open_unprepared(sglc_model **out, const char *path, sglc_backend *be, sglc_err *err);
int sglc_model_open_gguf_unprepared(sglc_model **out, const char *path, sglc_backend *be,
                                    sglc_err *err);
int sglc_model_open_hf_unprepared(sglc_model **out, const char *dir, sglc_backend *be,
                                  sglc_err *err);
/* Runs prepare_weight on every weight once (the tied output shares the embedding's). */
int sglc_model_prepare(sglc_model *m, sglc_err *err);

/* The one loader of the front ends (engine, generate, bench_one_batch): opens the device's
 * backend (device NULL: sglc_backend_default_name(), said through say), the model unprepared,
 * applies the --quantization preset (SGLang's log lines through say), then prepares the weights. On
 * failure nothing is left open. */
typedef struct {
    const char *path;
    const char *device;       /* "cpu" (NULL), "cpu-ggml", ... */
    const char *quantization; /* NULL, "mlx_q4", "mlx_q8" */
    int n_threads;            /* <= 0: all cores */
    int disable_cuda_graph;   /* GPU backends: no decode graphs */
    int cuda_graph_max_bs;    /* GPU backends: largest captured decode batch (0: default) */
    int deterministic;        /* GPU backends: batch-invariant kernels */
    /* --tp-size: ranks of tensor parallelism (<= 1: one). N backends of the device (CPU:
     * n_threads split between them; CUDA: GPUs 0..N-1, with NCCL, no decode graphs yet). */
    int tp_size;
    /* GPU backends: rank r on GPU base_gpu_id + r * gpu_id_step (step 0: 1) */
    int base_gpu_id, gpu_id_step;
    void (*say)(const char *line);
} sglc_model_load_params;
int sglc_model_load(sglc_backend **be, sglc_model **m, const sglc_model_load_params *p,
                    sglc_err *err);
void sglc_model_close(sglc_model *m);
/* Rank r (0 <= r < m->tp_size) of m's group; m itself for tp_size 1. */
static inline sglc_model *sglc_model_rank(sglc_model *m, int32_t r) {
    return m->tp ? m->tp->rank[r] : m;
}
/* 1 when p (a weight's host data) lies in m's file mapping, not in a host copy made at load:
 * only then may its pages be dropped (sglc_drop_mapped_pages) once the backend has its copy. */
int sglc_model_host_is_mapped(const sglc_model *m, const void *p);
/* Gives the page cache back the whole pages of [p, p + bytes) in a read-only file mapping once
 * their content has been copied or converted (nothing is lost: a later read faults them back in),
 * so the resident set does not hold both the copy and its source. */
void sglc_drop_mapped_pages(const void *p, size_t bytes);

typedef struct {
    double seconds;
    size_t bytes_before, bytes_after; /* weight bytes (model->weight_bytes) */
    int n_quantized;                  /* matrices quantized; 0: the model was already quantized */
} sglc_model_quant_stats;
/* Quantizes every F32/F16/BF16 matrix of m (linear layers, embeddings, lm_head) to MLX affine
 * (bits, group_size) in place, on n_threads threads (0: all cores). A model that is already
 * quantized is left as it is (stats->n_quantized == 0). */
int sglc_model_quantize_mlx(sglc_model *m, int bits, int group_size, int n_threads,
                            sglc_model_quant_stats *stats, sglc_err *err);
/* --quantization presets: "mlx_q4" -> 4, "mlx_q8" -> 8, NULL -> 0, anything else -> -1. */
int sglc_quant_preset_bits(const char *preset);
/* Applies a --quantization preset (NULL: nothing) at group size 64, passing SGLang's two log
 * lines ("Quantizing model on-the-fly: ...", "Quantization complete in ...") or the "ignored"
 * line for an already quantized model to say(). */
int sglc_model_apply_quant_preset(sglc_model *m, const char *preset, const char *model_path,
                                  int n_threads, void (*say)(const char *line), sglc_err *err);
/* The same, but the "Quantization complete" line is left to the caller: stats gets the
 * figures (zeros when nothing was quantized), which sglc_model_say_quant_done says. */
int sglc_model_apply_quant_preset_stats(sglc_model *m, const char *preset, const char *model_path,
                                        int n_threads, void (*say)(const char *line),
                                        sglc_model_quant_stats *stats, sglc_err *err);
void sglc_model_say_quant_done(const sglc_model_quant_stats *qs, void (*say)(const char *line));
/* 1 when the model's matrices are stored quantized (MLX affine or a ggml integer type). */
int sglc_model_is_quantized(const sglc_model *m);
const char *sglc_arch_name(sglc_arch arch);

/* Activations, KV cache, the slot table and the sample op's outputs for steps of up to
 * max_tokens tokens and max_logits logit rows over a KV pool of kv_slots token slots, with
 * table_rows sequences of up to table_stride positions in the slot table. All buffers are
 * allocated here, once. */
typedef struct sglc_model_state sglc_model_state;
typedef struct {
    int32_t max_tokens, max_logits, kv_slots;
    int32_t table_rows, table_stride;
} sglc_model_state_limits;
/* SGLANG_MLX_USE_CUSTOM_ROPE (the seed's variable) or SGLC_CUSTOM_ROPE is set to something
 * other than 0/false: model states use the backend's fused RoPE + KV write op when it has one. */
int sglc_custom_rope_requested(void);
int sglc_model_state_open(sglc_model_state **out, const sglc_model *m,
                          const sglc_model_state_limits *lim, sglc_err *err);
void sglc_model_state_close(sglc_model_state *st);
size_t sglc_model_state_kv_bytes(const sglc_model_state *st);
int32_t sglc_model_state_table_stride(const sglc_model_state *st);

/* A step, in three calls that queue work on the backend and one that waits:
 *   sglc_model_forward_launch(b)   the forward pass; logits stay in backend memory
 *   sglc_model_sample_launch(d)    the sample op over those logits, and the download of the
 *                                  ids (and logprobs when a row asks): all that comes back
 *   sglc_model_step_wait(&res)     blocks until the step is done; res valid until the next
 *                                  sample launch
 * On an asynchronous device the host prepares the sampling description (grammar masks, bias
 * lists, draws) while the forward runs; on the CPU every launch computes at once. b must
 * respect the state's limits (checked: a bad index is refused, never followed). The slot table
 * persists in the state: b carries only its changed entries (backend.h). A placeholder token
 * (b->token_src) reads the ids of the last sample launch. */
int sglc_model_forward_launch(sglc_model_state *st, const sglc_batch *b, sglc_err *err);
int sglc_model_sample_launch(sglc_model_state *st, const sglc_sample_desc *d, sglc_err *err);
typedef struct {
    int32_t n_rows;
    int has_logprobs;
    const int32_t *ids;     /* [n_rows] */
    const float *logprob;   /* [n_rows] (has_logprobs) */
    const int32_t *top_ids; /* [n_rows][SGLC_SAMPLE_TOP_MAX] */
    const float *top_lp;
    const float *ids_lp; /* [n_rows][SGLC_SAMPLE_IDS_MAX] */
} sglc_sample_result;
int sglc_model_step_wait(sglc_model_state *st, const sglc_sample_result **res, sglc_err *err);
/* For goldens, perplexity and benchmarks: the logits of the last forward's logit rows
 * ([n_logits][n_vocab], host memory owned by the state, valid until the next call), downloaded
 * and synchronized. sglc_model_forward is forward_launch + sglc_model_logits. */
int sglc_model_logits(sglc_model_state *st, const float **logits, sglc_err *err);
int sglc_model_forward(sglc_model_state *st, const sglc_batch *b, const float **logits,
                       sglc_err *err);

/* Penalty tables (frequency / presence / repetition) in backend memory: n_rows rows, made once
 * (the engine sizes them for its running requests at the first penalized request). load sets a
 * row's output counts (NULL: zeros) and the tokens seen in the prompt; save copies its counts
 * out (a request leaving the running set keeps them on the host). */
int sglc_model_penalty_open(sglc_model_state *st, int32_t n_rows, sglc_err *err);
int sglc_model_penalty_load(sglc_model_state *st, int32_t row, const int32_t *counts,
                            const int32_t *seen_ids, int32_t n_seen, sglc_err *err);
int sglc_model_penalty_save(sglc_model_state *st, int32_t row, int32_t *counts, sglc_err *err);

#endif
