/* The device backend interface. The forward pass (model/) is written once as a sequence of
 * calls through this vtable; CPU implements it today, CUDA and Metal plug in behind the same
 * table. Pointers handed to ops (activations, KV cache, the device copy of the batch) are
 * backend memory from be->alloc: the model never dereferences them, so a GPU backend can hand
 * out device pointers. Ops never branch on values computed by earlier ops and never allocate,
 * so a decode step can be captured as a CUDA graph and replayed. */
#ifndef SGLC_BACKEND_BACKEND_H
#define SGLC_BACKEND_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "base/log.h"

/* A weight matrix or vector: n rows of k elements in a ggml format (row-major, a row is one
 * output feature). host is the mmap'd or loaded host copy; dev the backend's copy (on the
 * CPU backend the same pointer).
 * type SGLC_WTYPE_MLX_AFFINE (quant/mlx_affine.h) is an MLX affine-quantized matrix: host/dev
 * hold the packed codes [n][k * q_bits / 32] u32, q_scales/q_biases [n][k / q_group] in
 * q_dtype. The q_* fields are zero for every other type. */
typedef struct {
    uint32_t type; /* sglc_ggml_type, or SGLC_WTYPE_MLX_AFFINE */
    int64_t k;     /* elements per row (input features) */
    int64_t n;     /* rows (output features); 1 for vectors */
    const void *host;
    const void *dev;
    int32_t q_bits, q_group; /* MLX affine: bits per code, values per group */
    uint32_t q_dtype;        /* MLX affine: ggml type of scales and biases (F32, F16, BF16) */
    const void *q_scales, *q_biases;         /* host copies */
    const void *q_scales_dev, *q_biases_dev; /* the backend's copies */
    /* 1 when prepare_weight stored dev in a backend-private layout (CPU: Q4_1 packed 8 rows at
     * a time, cpu_kernels.h); host keeps the file's layout (embedding lookups read it). */
    int dev_packed;
    /* 1 when the model has this weight (optional biases and norms may be absent). Set by the
     * loaders; the forward pass asks this, never host, which a device backend may release once
     * the weight is uploaded. */
    int present;
    size_t host_bytes; /* bytes of host (the codes, for MLX affine), for dropping file pages */
} sglc_weight;

/* One step's work, flat so it can be copied to a device in one piece. Token i belongs to
 * sequence seq[i], sits at position pos[i] and writes its K/V into slot out_slot[i]. Sequence s
 * owns the KV slots slot_table[seq_slot_start[s] + p] for positions p; token i attends over
 * positions 0..pos[i] of its sequence (causal). Logits are computed only for the rows listed
 * in logit_rows. Builders fill it through engine/batch.h. */
typedef struct {
    int32_t n_tokens;
    int32_t n_seqs;
    int32_t n_logits;
    const int32_t *tokens;         /* [n_tokens] */
    const int32_t *pos;            /* [n_tokens] */
    const int32_t *seq;            /* [n_tokens] */
    const int32_t *out_slot;       /* [n_tokens] */
    const int32_t *seq_slot_start; /* [n_seqs] */
    const int32_t *slot_table;     /* slots of every sequence, concatenated */
    const int32_t *logit_rows;     /* [n_logits] */
    /* sizes a device backend plans with (the builders fill them; the CPU reads none):
     * n_tokens_padded >= n_tokens is the batch size a captured graph runs at (n_tokens here,
     * a GPU pads decode steps to its captured sizes); n_slot_table the entries of slot_table in
     * use; max_context the longest context any token attends over (max pos + 1), for sizing a
     * split-K attention */
    int32_t n_tokens_padded;
    int32_t n_slot_table;
    int32_t max_context;
    /* 1 when every sequence adds one token and wants its logits (a decode step): a GPU backend
     * may capture or replay a graph for n_tokens_padded */
    int32_t is_decode;
    /* Tokens still being sampled (the overlap scheduler launches step N+1 before step N's ids
     * reach the host): token_src[i] >= 0 makes embed read token i from prev_ids[token_src[i]],
     * the ids the previous sample op wrote in backend memory, instead of tokens[i]. NULL: none.
     * prev_ids is backend memory set by the model, not by the batch builder. */
    const int32_t *token_src; /* [n_tokens] */
    const int32_t *prev_ids;
    /* The slot table (SGLang's req_to_token) lives in backend memory and persists across
     * steps: slot_table is the model state's table, set by the model, and seq_slot_start[s]
     * the offset of sequence s's row in it. A step carries only the entries that changed
     * (slots of new tokens, a prefix matched in the radix cache), which set_batch applies
     * before any op runs: slot_table[slot_write_idx[i]] = slot_write_val[i], i < n_slot_writes. */
    int32_t n_slot_writes;
    const int32_t *slot_write_idx; /* [n_slot_writes] */
    const int32_t *slot_write_val; /* [n_slot_writes] */
} sglc_batch;

/* ---- sampling on the backend (the sample op) ----
 * One logit row's parameters. The pipeline, in SGLang's order, on the row's logits (which the
 * op overwrites): frequency/presence penalties from the penalty counts, the repetition penalty
 * over tokens seen in the prompt or output, the row's logit-bias entries (the engine also puts
 * -inf there for eos/stop ids under min_new_tokens), the grammar mask, then greedy or
 * temperature / top-k / top-p / min-p and one draw. The draw's uniform number comes from the
 * request's generator on the host, so every backend picks the same token for a seed; the
 * engine draws it only for rows that sample (temperature > 0 and top_k != 1). Logprobs are
 * log-softmax of the processed logits (before temperature), as SGLang reports them. */
#define SGLC_SAMPLE_TOP_MAX 20 /* top_logprobs_num at most */
#define SGLC_SAMPLE_IDS_MAX 64 /* token_ids_logprob entries per row at most */
typedef struct {
    float temperature; /* <= 0: greedy (argmax, the first on ties) */
    int32_t top_k;     /* <= 0: off */
    float top_p;       /* >= 1: off */
    float min_p;       /* <= 0: off */
    double uniform;    /* the draw in [0, 1) for rows that sample */
    float frequency_penalty, presence_penalty, repetition_penalty; /* 0, 0, 1: off */
    int32_t penalty_row;        /* row of the penalty tables, -1: no penalties */
    int32_t bias_start, n_bias; /* this row's entries of bias_ids / bias */
    int32_t mask_row;           /* row of masks (bit set: allowed), -1: unconstrained */
    int32_t forced;             /* >= 0: no sampling and no processing: this token is the id
                                   (a prompt row scoring its next prompt token) */
    int32_t want_logprob;       /* logprob of the id (and top / ids below) */
    int32_t top_logprobs;       /* 0..SGLC_SAMPLE_TOP_MAX most likely tokens */
    int32_t ids_start, n_ids;   /* token_ids_logprob: entries of lp_ids */
} sglc_sample_row;

/* A step's sampling work; host memory (the op copies what it needs to the device). */
typedef struct {
    int32_t n_rows;
    const sglc_sample_row *rows; /* [n_rows], row r samples logits row r */
    const int32_t *bias_ids;     /* all rows' logit-bias entries */
    const float *bias;
    const uint32_t *masks; /* [n_mask_rows][mask_words], mask_words = (n_vocab + 31) / 32 */
    int32_t n_mask_rows;
    const int32_t *lp_ids; /* all rows' token_ids_logprob entries */
    int32_t n_bias_total, n_lp_ids_total;
    int32_t any_logprob; /* some row wants logprobs (else only ids need to come back) */
} sglc_sample_desc;

/* Where the sample op writes, backend memory, [max rows] each; top_* and ids_lp are
 * [row][SGLC_SAMPLE_TOP_MAX] and [row][SGLC_SAMPLE_IDS_MAX]. */
typedef struct {
    int32_t *ids;
    float *logprob;
    int32_t *top_ids;
    float *top_lp;
    float *ids_lp;
} sglc_sample_out;

/* Penalty state in backend memory: counts [n_rows][n_vocab] int32 (the row's output tokens so
 * far; the sample op adds the id it picks), seen [n_rows][n_vocab] uint8 (1: in the prompt). */
typedef struct {
    int32_t *counts;
    uint8_t *seen;
    int32_t n_rows;
} sglc_penalty_tables;

typedef enum {
    SGLC_ROPE_NORM = 0, /* rotate adjacent pairs (x[2i], x[2i+1]): GGUF llama (permuted q/k) */
    SGLC_ROPE_NEOX = 1, /* rotate halves (x[i], x[i+d/2]): HF checkpoints, qwen */
    SGLC_ROPE_COUNT
} sglc_rope_mode;

typedef struct {
    int32_t n_head, n_head_kv, head_dim, rot_dim;
    float theta;
    float scale; /* attention scale, usually 1/sqrt(head_dim) */
    sglc_rope_mode mode;
    int32_t kv_slots; /* KV pool size, in tokens */
    /* KV cache element type: SGLC_GGML_TYPE_F32 or SGLC_GGML_TYPE_F16 (llama.cpp's default;
     * half the memory and bandwidth) */
    uint32_t kv_type;
    /* [rot_dim / 2] backend memory: pair i rotates at frequency theta^(-2i/rot_dim) /
     * freq_factors[i] (Llama-3 rope scaling, llama.cpp's rope_freqs); NULL: all 1 */
    const float *freq_factors;
    /* Optional (NULL: none) [rope_cs_len][rot_dim / 2][2] backend memory: the (cos, sin) of
     * every pair at positions below rope_cs_len, built on the host by sglc_rope_table, so a
     * backend whose own cos/sin round differently (a GPU's) rotates exactly as the CPU does. */
    const float *rope_cs;
    int32_t rope_cs_len;
} sglc_attn_params;

/* cos and sin of every rotated pair of p at position pos, as the CPU backend rotates (theta =
 * pos multiplied by base^(-2/rot_dim) once per pair in float, as ggml's rope cache; libm
 * cosf / sinf); ff_host: p's freq_factors in host memory, or NULL. */
void sglc_rope_table(int32_t pos, const sglc_attn_params *p, const float *ff_host, float *cs,
                     float *sn);

typedef struct sglc_backend sglc_backend;

typedef struct {
    const char *name;
    /* 1: the model gives this backend sglc_attn_params.rope_cs (a GPU backend) */
    int wants_rope_table;
    /* Frees the backend (sglc_backend_close calls it; be is never NULL). */
    void (*close)(sglc_backend *be);
    /* Memory the backend's allocations draw on: free and total bytes (CPU: available and total
     * RAM; a GPU: cudaMemGetInfo), which --mem-fraction-static sizes the KV pool from. 0, or < 0
     * when unknown. */
    int (*mem_info)(sglc_backend *be, size_t *free_bytes, size_t *total_bytes);
    /* Optional (NULL: nothing): called by the model around each step's ops, where a GPU backend
     * captures or replays a graph per padded batch size. No-ops on the CPU. */
    void (*begin_step)(sglc_backend *be, const sglc_batch *b);
    void (*end_step)(sglc_backend *be);
    /* Optional (NULL: never padded): the batch size a decode step of n tokens runs at (the
     * padded size of a captured graph, >= n; n when it runs without one). The model pads the
     * step with tokens that write a spare KV slot and whose logits nobody samples. */
    int32_t (*decode_pad)(sglc_backend *be, int32_t n_tokens);
    /* Optional (NULL: never): 1 when a decode step of n tokens replays a captured graph (the
     * decode log's "cuda graph: True") */
    int (*decode_graph)(sglc_backend *be, int32_t n_tokens);
    /* Optional (NULL: nothing): makes the backend current for the calling thread before its
     * calls. Tensor parallelism drives several backends (ranks) from one host thread, and the
     * model calls this at each switch of rank: a GPU backend sets its device there. */
    void (*activate)(sglc_backend *be);
    /* Memory. */
    void *(*alloc)(sglc_backend *be, size_t bytes); /* uninitialized; NULL on failure */
    void (*free)(sglc_backend *be, void *p);
    /* upload: src may be reused or freed on return. download is queued behind the ops before
     * it, like an op: dst holds the data once sync returns (a device backend copies it there
     * from pinned staging at sync), so a step's results come back without a round trip. */
    void (*upload)(sglc_backend *be, void *dst, const void *src, size_t bytes);
    void (*download)(sglc_backend *be, void *dst, const void *src, size_t bytes);
    void (*sync)(sglc_backend *be);
    /* 1 when the backend can compute matmuls with weights of this ggml type. */
    int (*supports_weight)(sglc_backend *be, uint32_t type);
    /* Makes w->dev usable (CPU: w->dev = w->host; GPU: upload / repack). The loaders call it
     * once per weight after any quantization at load (sglc_model_load), so a float matrix that
     * is quantized is never uploaded; a weight that already has dev (made by quantize_affine)
     * is not passed to it again. */
    int (*prepare_weight)(sglc_backend *be, sglc_weight *w, sglc_err *err);
    /* Optional (NULL: the host quantizes with sglc_mlx_affine_quantize and prepare_weight
     * uploads the result): MLX affine quantization on the device, for --quantization at load.
     * src is a host float matrix: type F32, F16 or BF16, n >= 1 rows of k values row-major at
     * src->host, k % group_size == 0, (bits, group_size) valid for sglc_mlx_affine_valid. It
     * is only read, and the caller may release src->host once the op returns. On success *out
     * is src turned into a PREPARED SGLC_WTYPE_MLX_AFFINE weight: dev, q_scales_dev and
     * q_biases_dev are backend memory holding the codes, scales and biases, bit for bit what
     * sglc_mlx_affine_quantize computes from src->host (scales and biases in src's dtype; only
     * the payload of a NaN scale or bias, which Inf/NaN inputs produce, may differ); host,
     * q_scales and q_biases are NULL and host_bytes 0, since no host copy exists. The loaders
     * do not prepare it again; release_weight frees it. The work may still run on the device
     * when the op returns (ops queued later see its result); the backend keeps staging buffers
     * from one call to the next and gives them back at the next sync, so a loader quantizes
     * every matrix and then calls sync once. */
    int (*quantize_affine)(sglc_backend *be, const sglc_weight *src, int bits, int group_size,
                           sglc_weight *out, sglc_err *err);
    /* Optional (NULL: nothing to reserve): sizes every scratch buffer the ops will use, once,
     * for steps of up to max_rows tokens over these weights and this attention shape, so that no
     * op allocates (a step can then be captured as a graph). Called by sglc_model_state_open. */
    int (*reserve)(sglc_backend *be, const sglc_weight *const *weights, size_t n_weights,
                   int64_t max_rows, const sglc_attn_params *attn, sglc_err *err);
    /* Optional (NULL: nothing to free): gives back what prepare_weight or quantize_affine made
     * for w, for a weight replaced after preparing (sglc_model_quantize_mlx on a prepared
     * model). */
    void (*release_weight)(sglc_backend *be, sglc_weight *w);
    /* Prepares the batch description for the step (copies it to the device when needed) and
     * returns the pointer ops get. */
    const sglc_batch *(*set_batch)(sglc_backend *be, const sglc_batch *host_batch);

    /* Ops. x, y: [n_tokens][dim] row-major f32. */
    void (*embed)(sglc_backend *be, const sglc_weight *table, const sglc_batch *b, float *out);
    void (*rmsnorm)(sglc_backend *be, const float *x, const sglc_weight *w, float *y, int64_t rows,
                    int64_t dim, float eps);
    /* y[t] = W x[t] (+ bias when bias != NULL) */
    void (*matmul)(sglc_backend *be, const sglc_weight *w, const sglc_weight *bias, const float *x,
                   int64_t rows, float *y);
    /* n matmuls over the same x (q/k/v, gate/up): y[i] = W[i] x (+ bias[i] when not NULL) for
     * i < n <= 3, results identical to n matmul calls (a backend may quantize x once and run
     * them as one job). */
    void (*matmul_n)(sglc_backend *be, int n, const sglc_weight *const *w,
                     const sglc_weight *const *bias, const float *x, int64_t rows, float *const *y);
    /* rotates q [T][n_head*hd] and k [T][n_head_kv*hd] in place at positions b->pos */
    void (*rope)(sglc_backend *be, const sglc_batch *b, float *q, float *k,
                 const sglc_attn_params *p);
    /* writes k, v of each token into the cache at b->out_slot */
    void (*kv_store)(sglc_backend *be, const sglc_batch *b, const float *k, const float *v,
                     void *k_cache, void *v_cache, const sglc_attn_params *p);
    /* optional: rope then kv_store as one op (the seed's custom RoPE kernel, opt-in with
     * SGLANG_MLX_USE_CUSTOM_ROPE=1 or SGLC_CUSTOM_ROPE=1); q rotated in place, k rotated into the
     * cache only, results identical to rope + kv_store. NULL: the model calls the two. */
    void (*rope_kv_store)(sglc_backend *be, const sglc_batch *b, float *q, const float *k,
                          const float *v, void *k_cache, void *v_cache, const sglc_attn_params *p);
    /* out[T][n_head*hd] = softmax(q k^T * scale) v over each token's causal context */
    void (*attention)(sglc_backend *be, const sglc_batch *b, const float *q, const void *k_cache,
                      const void *v_cache, float *out, const sglc_attn_params *p);
    /* out = silu(gate) * up, elementwise over n values */
    void (*silu_mul)(sglc_backend *be, const float *gate, const float *up, float *out, int64_t n);
    /* x += y */
    void (*add)(sglc_backend *be, float *x, const float *y, int64_t n);
    /* Optional fused ops (NULL: the model calls the ops each one stands for). Each computes
     * what its sequence of ops computes, within float rounding; a backend may run it as that
     * sequence (large steps, --enable-deterministic-inference, a format it cannot fuse), and
     * the scratch arguments are where the sequence's intermediates go then. They exist so a
     * GPU decode step is a few launches per layer instead of eighteen.
     * norm_matmul_n: xn = rmsnorm(x, norm, eps) ([rows][k], scratch), then y[i] = W[i] xn
     * (+ bias[i]) for i < n <= 3; glu (n == 2, no bias, equal shapes): y[0] = silu(W[0] xn) *
     * (W[1] xn), y[1] scratch. */
    void (*norm_matmul_n)(sglc_backend *be, const float *x, const sglc_weight *norm, float eps,
                          float *xn, int n, const sglc_weight *const *w,
                          const sglc_weight *const *bias, int64_t rows, float *const *y, int glu);
    /* y += W x (+ bias): matmul then add; tmp [rows][W->n] scratch */
    void (*matmul_add)(sglc_backend *be, const sglc_weight *w, const sglc_weight *bias,
                       const float *x, int64_t rows, float *y, float *tmp);
    /* per-head rmsnorm of q and k (q_norm / k_norm; NULL: none), then rope and kv_store: q
     * rotated in place, k and v written to the cache (k itself is scratch afterwards) */
    void (*qk_norm_rope_kv)(sglc_backend *be, const sglc_batch *b, float *q, float *k,
                            const float *v, const sglc_weight *q_norm, const sglc_weight *k_norm,
                            float eps, void *k_cache, void *v_cache, const sglc_attn_params *p);
    /* dst[r] = src[rows[r]] for r < n_rows, rows of dim floats (gather logit rows) */
    void (*gather_rows)(sglc_backend *be, const float *src, const int32_t *rows, int32_t n_rows,
                        int64_t dim, float *dst);
    /* Samples every row of d from logits [d->n_rows][n_vocab] (overwritten), writing ids and,
     * for rows that ask, logprobs into out; updates pen->counts for rows with penalties.
     * Asynchronous like every op; the caller downloads what it needs from out. */
    void (*sample)(sglc_backend *be, float *logits, int32_t n_vocab, const sglc_sample_desc *d,
                   const sglc_penalty_tables *pen, const sglc_sample_out *out);
} sglc_backend_ops;

struct sglc_backend {
    const sglc_backend_ops *ops;
    void *impl;
    /* bytes download moved from backend memory to the host, counted by every backend (the
     * engine's tests assert a decode step brings back only ids and requested logprobs) */
    uint64_t bytes_to_host;
};

typedef struct {
    int n_threads; /* CPU: <= 0 means all cores */
    /* GPU backends: --disable-cuda-graph; decode graphs for padded batch sizes up to
     * cuda_graph_max_bs (<= 0: the backend's default) */
    int disable_cuda_graph;
    int cuda_graph_max_bs;
    int device_index; /* GPU ordinal (--base-gpu-id) */
    /* GPU backends: --enable-deterministic-inference: a row's result never depends on the other
     * rows of its step (batch-invariant products and attention; slower prefill). The CPU
     * backends always are. */
    int deterministic;
} sglc_backend_params;

/* ---- the communicator of tensor parallelism (issue 17) ----
 * n backends of one kind (ranks, in rank order) that sum float buffers across each other. CPU
 * ranks (several "cpu" or "cpu-ggml" backends of one process) sum host buffers in rank order,
 * so the result is deterministic and every rank gets the same bits. CUDA ranks (one process,
 * one GPU each) use NCCL (ncclCommInitAll; ncclAllReduce on each backend's stream, grouped),
 * when the build has it (CMake SGLC_NCCL); NCCL_NVLS_ENABLE is set to 0 before init, since
 * NVLink multicast stays off on the machines sglc runs on. Capturing the NCCL calls in a CUDA
 * graph is not done yet: tensor-parallel CUDA runs without decode graphs. */
typedef struct sglc_comm sglc_comm;
/* Refused with one line when the backends differ in kind, n < 1, or the kind has no
 * communicator in this build. ranks are borrowed and must outlive the communicator. */
int sglc_comm_open(sglc_comm **out, sglc_backend *const *ranks, int n, sglc_err *err);
void sglc_comm_close(sglc_comm *c);
int sglc_comm_size(const sglc_comm *c);
/* bufs[r]: n floats of rank r's backend memory. Queued like an op on every rank: afterwards
 * (in each rank's op order) every bufs[r] holds the sum over the ranks. */
void sglc_comm_all_reduce_sum(sglc_comm *c, float *const *bufs, int64_t n);
/* 1 when this build can make a communicator over CUDA ranks (NCCL). */
int sglc_comm_has_nccl(void);

/* Backends by name: "cpu" (always), "cpu-ggml", "cuda" (when built with CUDA and a GPU is
 * visible: otherwise one line saying which is missing). */
int sglc_backend_open(sglc_backend **out, const char *name, const sglc_backend_params *params,
                      sglc_err *err);
void sglc_backend_close(sglc_backend *be);
/* Devices of that kind this process sees ("cuda": GPUs), or -1 for a host backend, whose
 * instances share the CPU and are not counted. */
int sglc_backend_device_count(const char *name);
/* The device a run gets when none is named: "cuda" when this build has CUDA and a GPU is
 * visible, else "cpu". */
const char *sglc_backend_default_name(void);

#endif
