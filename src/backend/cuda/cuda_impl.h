/* Private state of the CUDA backend, shared by its .cu files (one per op family). Everything
 * runs on one stream owned by the backend; ops are called from one host thread (the
 * scheduler), as on the CPU.
 *
 * Graph contract (begin_step / end_step, see cuda_backend.cu): a decode step is captured once
 * per (n_tokens, n_logits, n_tokens_padded) and replayed afterwards. During a replay every op
 * between begin_step and end_step is skipped (the graph already holds its kernels); each op
 * still folds its arguments (pointers, sizes, weight identities) into a signature, and end_step
 * checks that the signature equals the captured one, so a model that changes an op argument
 * between steps of the same size fails loudly instead of computing with stale pointers.
 * Kernels therefore take no launch parameter that depends on per-step host values other than
 * those sizes: per-step data (positions, slots, token ids) is read on the device from the
 * batch buffers, which live at fixed addresses (set_batch copies into them before the step). */
#ifndef SGLC_BACKEND_CUDA_IMPL_H
#define SGLC_BACKEND_CUDA_IMPL_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

extern "C" {
#include "backend/backend.h"
#include "base/threadpool.h"
#include "quant/ggml_types.h"
#include "quant/mlx_affine.h"
}

/* rows up to this go through our matrix-vector kernels; more through cuBLAS */
#define CUDA_MATVEC_MAX_ROWS 8
/* Float (F32/F16/BF16) weights take the matrix-vector kernels only up to this many rows
 * unless deterministic; more go to cuBLAS. Measured on the H200 (session 9, Qwen3-0.6B-shaped
 * bf16): a batch-8 decode step took 6.7-10 ms through the 8-row matrix-vector kernel and a
 * batch-32 step 3.4-3.7 ms through cuBLAS, which reads the weights once as well. Batches 2-4
 * were not measured: the next device run sweeps them (bench/gpu_decode_ab.sh). */
#define CUDA_FLOAT_MATVEC_MAX_ROWS 2
/* Q4_1 / Q8_0 products of up to this many tokens use the CPU-exact integer kernel
 * (cuda_matmul.cu); larger ones the tensor-core GEMM unless deterministic */
/* the longest f16 context the CPU-exact attention holds in shared memory */
#define CUDA_EXACT_ATTN_KEYS 2048
#define CUDA_EXACT_MAX_ROWS 512
#define CUDA_GRAPH_MAX_BS_DEFAULT 160
#define CUDA_MAX_GRAPHS 512
#define CUDA_MAX_PENDING_DL 64
/* the dequantized weight tile for quantized prefill: at most this many bf16 elements */
#define CUDA_WTILE_MAX_ELEMS (32ll << 20)
#define CUDA_DL_STAGE_BYTES (64u << 20)

typedef enum {
    CUDA_MODE_EAGER = 0, /* ops launch kernels */
    CUDA_MODE_CAPTURE,   /* ops launch kernels into the stream capture */
    CUDA_MODE_REPLAY,    /* ops only fold their signature; end_step launches the graph */
    CUDA_MODE_COUNT
} cuda_mode;

typedef struct {
    int32_t n_tokens, n_logits, n_padded;
    cudaGraphExec_t exec;
    uint64_t sig;
    int32_t n_ops;
    size_t dl_bytes; /* download staging the step used */
} cuda_graph_entry;

typedef struct {
    void *dst;
    size_t off, bytes;
} cuda_pending_dl;

/* one buffer of the per-step batch copies: host pinned staging and its device twin */
typedef struct {
    void *host[2]; /* double-buffered pinned staging */
    cudaEvent_t done[2];
    int which;
    void *dev;
    size_t cap;
} cuda_xfer;

/* MLX affine quantization at load (cuda_quant.cu): the float source goes from host memory
 * through pinned staging slots to device slots the quantizing kernel reads. Host threads fill
 * one pinned slot while the copy stream uploads another and the backend's stream quantizes a
 * third. Made at the first quantize_affine, given back at the next sync or at close. */
#define CUDA_QUANT_SLOTS 3
#define CUDA_QUANT_SLOT_BYTES (16u << 20)
typedef struct {
    void *pinned; /* host, cudaMallocHost */
    void *dev;
    cudaEvent_t copied;   /* the upload out of pinned is done (pinned may be refilled) */
    cudaEvent_t consumed; /* the kernel reading dev is done (dev may be overwritten) */
} cuda_quant_slot;

typedef struct {
    int active; /* some of the below exists */
    size_t cap; /* bytes of each slot; 0 while the slots are not made */
    int next;   /* slot of the next chunk */
    cuda_quant_slot slot[CUDA_QUANT_SLOTS];
    cudaStream_t copy;
    sglc_threadpool *tp; /* host threads copying the source into pinned slots */
} cuda_quant_stage;

typedef struct {
    int device;
    int n_sm;
    int n_host_threads; /* sglc_backend_params.n_threads (<= 0: one per core, capped) */
    cudaStream_t stream;
    cublasHandle_t cublas;
    void *cublas_ws;
    size_t cublas_ws_bytes;
    int failed;   /* a CUDA call failed: logged once with its place */
    int n_logged; /* error lines written (capped) */

    /* op scratch, sized by reserve (or grown on first use by a unit test outside steps) */
    void *act16; /* activations converted to bf16/f16 for cuBLAS */
    size_t act16_bytes;
    void *wtile; /* quantized weights dequantized to bf16 / f16 for the prefill GEMM */
    size_t wtile_bytes;
    void *actq; /* decode activations of K-quant products, quantized to Q8_K and widened */
    size_t actq_bytes;
    float *attn_part; /* split attention partials */
    size_t attn_part_floats;
    int *attn_done; /* per (token, kv head): splits finished (k_attn_gqa), back to 0 after */
    int attn_gqa;   /* k_attn_gqa for f16 caches (SGLC_CUDA_ATTN_GQA=0: k_attn, for A/B) */
    int attn_tc;    /* tensor-core attention for f16 caches (default; SGLC_CUDA_ATTN_TC=0 off) */
    int mv16;       /* k_fmv16 for 16-bit decode products (SGLC_CUDA_MV16=0: k_fmv, A/B) */
    int mvq;        /* k_fmvq for MLX 4/8-bit decode products (default; SGLC_CUDA_MVQ=0 off) */
    int mv_early; /* k_fmv16's first weights before the PDL wait (default; SGLC_CUDA_MV_EARLY=0 off)
                   */
    int mvr; /* k_fmvr (four rows a warp) for them where x fits (default; SGLC_CUDA_MVR=0 off) */
    /* blocks per SM of (kernel, dynamic shared memory) pairs asked so far (cuda_blocks_per_sm);
     * per backend, so the threads of tensor-parallel ranks do not share it */
    struct {
        const void *fn;
        size_t smem;
        int blocks;
    } occ[32];
    int n_occ;
    int reserved;
    int64_t max_rows;

    /* the batch: arrays copied per step into fixed device buffers */
    cuda_xfer bx;
    int32_t cap_tokens, cap_seqs, cap_logits, cap_writes, cap_table;
    int32_t *d_one;  /* a device int (-1), for absent optional arrays */
    int32_t *no_src; /* host: -1 per token, the token_src of a batch without one */
    int32_t no_src_cap;
    sglc_batch dbatch;

    /* the sample op's description copies */
    cuda_xfer sx;

    /* downloads land in pinned staging; sync copies them to their destinations */
    uint8_t *dl_stage;
    size_t dl_used;
    cuda_pending_dl pending[CUDA_MAX_PENDING_DL];
    int n_pending;
    cudaEvent_t step_done;

    /* graphs */
    int graphs_enabled, graph_max_bs;
    /* --enable-deterministic-inference (or SGLC_DETERMINISTIC=1): every product through the
     * matrix-vector kernel 8 rows at a time and attention unsplit, so a row's result never
     * depends on the rest of its step */
    int deterministic;
    /* f16 contexts up to this many keys take the CPU-exact attention (cuda_attention.cu):
     * SGLC_CUDA_EXACT_ATTN_KEYS (capped at CUDA_EXACT_ATTN_KEYS), or -1: CUDA_EXACT_ATTN_KEYS
     * when quant_acts, else 0 */
    int exact_attn_keys;
    int quant_acts; /* a GGUF quantized weight was prepared (cu_prepare_weight) */
    int pdl;        /* programmatic dependent launch for the decode kernels (cuda_launch) */
    cuda_mode mode;
    cuda_graph_entry graphs[CUDA_MAX_GRAPHS];
    int n_graphs;
    int cur; /* entry being captured or replayed */
    uint64_t sig;
    int32_t n_ops;
    int64_t n_replays, n_captures; /* for tests and logs */

    /* device allocations made by prepare_weight and quantize_affine, freed at release_weight
     * or close */
    void **wallocs;
    size_t n_wallocs, cap_wallocs;

    cuda_quant_stage qs;
} cuda_impl;

static inline cuda_impl *cuda_impl_of(sglc_backend *be) {
    return (cuda_impl *)be->impl;
}

/* Checks a CUDA / cuBLAS status; on failure logs one line naming the call and its place (the
 * first few failures only) and marks the backend failed. Returns 0 on success. */
int cuda_check_at(cuda_impl *im, cudaError_t e, const char *what, const char *file, int line);
int cublas_check_at(cuda_impl *im, cublasStatus_t s, const char *what, const char *file, int line);
#define CUDA_CHECK(im, call) cuda_check_at((im), (call), #call, __FILE__, __LINE__)
#define CUBLAS_CHECK(im, call) cublas_check_at((im), (call), #call, __FILE__, __LINE__)
/* after a kernel launch */
#define CUDA_LAUNCHED(im, name) cuda_check_at((im), cudaGetLastError(), name, __FILE__, __LINE__)

/* Folds an op's identity and arguments into the step signature. Returns 1 when the op must
 * not launch anything (a replay), 0 when it runs (eager or capture). */
int cuda_op_begin(cuda_impl *im, int op_id, const uint64_t *args, int n_args);
#define CUDA_OP_BEGIN(im, op_id, ...)                                                              \
    ([&]() {                                                                                       \
        const uint64_t a_[] = {__VA_ARGS__};                                                       \
        return cuda_op_begin((im), (op_id), a_, (int)(sizeof a_ / sizeof a_[0]));                  \
    }())
#define U64(x) ((uint64_t)(uintptr_t)(x))

/* Launches kernel k on the backend's stream, with programmatic dependent launch when im->pdl:
 * k may then start before the kernel ahead of it has finished, so every kernel launched this
 * way calls cuda_pdl_wait() (cuda_kernels.cuh) before it reads what earlier kernels wrote,
 * and in every block before it exits. */
template <typename... KArgs, typename... Args>
static inline cudaError_t cuda_launch_smem(const cuda_impl *im, void (*k)(KArgs...), dim3 grid,
                                           dim3 block, size_t smem, Args... args) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = im->stream;
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = at;
    cfg.numAttrs = im->pdl ? 1 : 0;
    return cudaLaunchKernelEx(&cfg, k, ((KArgs)args)...);
}
template <typename... KArgs, typename... Args>
static inline cudaError_t cuda_launch(const cuda_impl *im, void (*k)(KArgs...), dim3 grid,
                                      dim3 block, Args... args) {
    return cuda_launch_smem(im, k, grid, block, 0, args...);
}

/* Blocks of kernel fn (threads per block, smem bytes of dynamic shared memory) one SM holds:
 * the occupancy calculator, asked once per pair (im->occ); at least 1. Past 48 KiB it first
 * lets fn take smem bytes on im's device (the opt-in a launch of that size needs). */
int cuda_blocks_per_sm(cuda_impl *im, const void *fn, int threads, size_t smem);

/* Grows a device scratch buffer when it is too small. Only outside a capture (a capture or a
 * replay with a buffer that is too small is a broken reserve: asserted). */
int cuda_scratch_grow(cuda_impl *im, void **p, size_t *cap, size_t need);

enum {
    CUDA_OP_EMBED = 1,
    CUDA_OP_RMSNORM,
    CUDA_OP_MATMUL,
    CUDA_OP_ROPE,
    CUDA_OP_KV_STORE,
    CUDA_OP_ROPE_KV,
    CUDA_OP_ATTENTION,
    CUDA_OP_SILU_MUL,
    CUDA_OP_ADD,
    CUDA_OP_GATHER,
    CUDA_OP_DOWNLOAD,
    CUDA_OP_NORM_MATMUL,
    CUDA_OP_MATMUL_ADD,
    CUDA_OP_QK_NORM_ROPE_KV,
    CUDA_OP_COUNT
};

/* Kernels get the batch by value: the backend's copy, whose array pointers are device
 * pointers (set_batch). */
typedef sglc_batch sglc_batch_dev;
static inline sglc_batch_dev batch_dev_of(const sglc_batch *b) {
    return *b;
}

template <class T> __device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* the sum over the block, returned to every thread; sh holds 32 values */
template <class T> __device__ T block_sum(T v, T *sh) {
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    v = warp_sum(v);
    __syncthreads(); /* sh may still be read from an earlier call */
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    T r = 0;
    for (int i = 0; i < nw; i++)
        r += sh[i];
    return r;
}

/* the ops, one family per file */
void cuda_embed(sglc_backend *be, const sglc_weight *table, const sglc_batch *b, float *out);
void cuda_rmsnorm(sglc_backend *be, const float *x, const sglc_weight *w, float *y, int64_t rows,
                  int64_t dim, float eps);
void cuda_silu_mul(sglc_backend *be, const float *gate, const float *up, float *out, int64_t n);
void cuda_add(sglc_backend *be, float *x, const float *y, int64_t n);
void cuda_gather_rows(sglc_backend *be, const float *src, const int32_t *rows, int32_t n_rows,
                      int64_t dim, float *dst);
void cuda_matmul(sglc_backend *be, const sglc_weight *w, const sglc_weight *bias, const float *x,
                 int64_t rows, float *y);
void cuda_matmul_n(sglc_backend *be, int n, const sglc_weight *const *w,
                   const sglc_weight *const *bias, const float *x, int64_t rows, float *const *y);
int cuda_matmul_supports(uint32_t type);
/* scratch bytes the matmul of w needs at rows: bf16 activations and the dequantized tile */
size_t cuda_exact_act_bytes(int64_t rows, int64_t k);
int cuda_exact_rows(const cuda_impl *im, int f, int64_t rows);
/* 1 when a product of format f at rows goes through the matrix-vector kernels */
int cuda_matvec_rows(const cuda_impl *im, int f, int64_t rows);
void cuda_matmul_scratch(const sglc_weight *w, int64_t rows, size_t *act_bytes, size_t *tile_bytes);
void cuda_rope(sglc_backend *be, const sglc_batch *b, float *q, float *k,
               const sglc_attn_params *p);
void cuda_kv_store(sglc_backend *be, const sglc_batch *b, const float *k, const float *v,
                   void *k_cache, void *v_cache, const sglc_attn_params *p);
void cuda_rope_kv_store(sglc_backend *be, const sglc_batch *b, float *q, const float *k,
                        const float *v, void *k_cache, void *v_cache, const sglc_attn_params *p);
void cuda_attention(sglc_backend *be, const sglc_batch *b, const float *q, const void *k_cache,
                    const void *v_cache, float *out, const sglc_attn_params *p);
/* split count of decode attention for a step of T tokens (a function of T only) */
int cuda_attention_splits(const cuda_impl *im, int64_t T, int32_t n_head);
size_t cuda_attention_part_floats(const cuda_impl *im);
size_t cuda_attention_done_ints(const cuda_impl *im);
/* the fused ops (cuda_fused.cu) */
void cuda_norm_matmul_n(sglc_backend *be, const float *x, const sglc_weight *norm, float eps,
                        float *xn, int n, const sglc_weight *const *w,
                        const sglc_weight *const *bias, int64_t rows, float *const *y, int glu);
void cuda_matmul_add(sglc_backend *be, const sglc_weight *w, const sglc_weight *bias,
                     const float *x, int64_t rows, float *y, float *tmp);
void cuda_qk_norm_rope_kv(sglc_backend *be, const sglc_batch *b, float *q, float *k, const float *v,
                          const sglc_weight *q_norm, const sglc_weight *k_norm, float eps,
                          void *k_cache, void *v_cache, const sglc_attn_params *p);
void cuda_sample(sglc_backend *be, float *logits, int32_t n_vocab, const sglc_sample_desc *d,
                 const sglc_penalty_tables *pen, const sglc_sample_out *out);

/* Weight memory: records a device allocation of a weight (freed at close unless
 * cuda_untrack_free gives it back first); 0, or -1 when the table cannot grow. */
int cuda_track_walloc(cuda_impl *im, void *p);
void cuda_untrack_free(cuda_impl *im, const void *p);

/* The quantize_affine op (backend.h) and the release of its staging: waits for every stream
 * that used it first. A no-op when nothing is held. */
int cuda_quantize_affine(sglc_backend *be, const sglc_weight *src, int bits, int group_size,
                         sglc_weight *out, sglc_err *err);
void cuda_quant_release(cuda_impl *im);

/* Copies n host arrays into the transfer buffer (pinned staging, then one async copy each) at
 * the given byte offsets of its device buffer, growing it to cap_bytes first when needed.
 * Returns 0, or -1 after logging. */
typedef struct {
    const void *src;
    size_t off, bytes;
} cuda_xfer_part;
int cuda_xfer_send(cuda_impl *im, cuda_xfer *x, size_t cap_bytes, const cuda_xfer_part *parts,
                   int n);

#endif
