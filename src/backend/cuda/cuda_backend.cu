/* The CUDA backend: backend.h's op table on one GPU and one stream. This file holds memory,
 * weights, the batch, downloads and CUDA graphs; the kernels live in one file per op family
 * (cuda_matmul.cu, cuda_norm.cu, cuda_rope.cu, cuda_attention.cu, cuda_sample.cu).
 *
 * Threading: one host thread (the scheduler) calls every entry point, as on the CPU.
 *
 * Memory: alloc is cudaMalloc; upload is an async copy on the stream, which for pageable host
 * memory returns only once the data is staged, so the caller may free the source at once.
 * download queues a device-to-pinned copy and remembers the destination; sync waits for the
 * stream and copies the staged bytes out, so the host data is valid when sync returns (as the
 * interface promises) and the copy itself can be captured in a graph.
 *
 * The batch (set_batch): the host arrays are copied into device buffers at fixed addresses,
 * sized at reserve for max_rows tokens (grown, and every graph dropped, if a later step is
 * larger). The returned sglc_batch is a HOST struct owned by the backend: its counts are the
 * host batch's and its array pointers are device pointers, so ops hand them to kernels and the
 * model can pass b->logit_rows to gather_rows. The slot table: when the host batch's
 * slot_table is device memory (the model state's persistent table) it is used in place;
 * when it is host memory it is copied. Either way the step's slot writes are then applied on
 * the device before any op runs. token_src is always a device array (all -1 when the host
 * batch has none) and prev_ids a device pointer (a dummy when NULL), so a decode graph sees
 * the same kernel arguments every step.
 *
 * Graphs: see cuda_impl.h for the contract; begin_step / end_step below. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda_impl.h"

extern "C" {
#include "backend/cuda/cuda_backend.h"
}

/* ---- errors ---- */

static void log_failure(cuda_impl *im, const char *what, const char *detail, const char *file,
                        int line) {
    im->failed = 1;
    if (im->n_logged < 8)
        sglc_log(SGLC_LOG_ERROR, "cuda: %s failed (%s) at %s:%d", what, detail, file, line);
    else if (im->n_logged == 8)
        sglc_log(SGLC_LOG_ERROR, "cuda: more failures follow; not logged");
    im->n_logged++;
}

int cuda_check_at(cuda_impl *im, cudaError_t e, const char *what, const char *file, int line) {
    if (e == cudaSuccess) return 0;
    char d[160];
    snprintf(d, sizeof d, "%s: %s", cudaGetErrorName(e), cudaGetErrorString(e));
    log_failure(im, what, d, file, line);
    return -1;
}

int cublas_check_at(cuda_impl *im, cublasStatus_t s, const char *what, const char *file, int line) {
    if (s == CUBLAS_STATUS_SUCCESS) return 0;
    char d[96];
    snprintf(d, sizeof d, "cuBLAS status %d", (int)s);
    log_failure(im, what, d, file, line);
    return -1;
}

/* ---- op signatures (graph replays) ---- */

static uint64_t fold(uint64_t h, uint64_t v) {
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h * 0x100000001b3ull;
}

int cuda_op_begin(cuda_impl *im, int op_id, const uint64_t *args, int n_args) {
    if (im->mode == CUDA_MODE_EAGER) return 0;
    uint64_t h = fold(im->sig, (uint64_t)op_id);
    for (int i = 0; i < n_args; i++)
        h = fold(h, args[i]);
    im->sig = h;
    im->n_ops++;
    return im->mode == CUDA_MODE_REPLAY;
}

int cuda_blocks_per_sm(cuda_impl *im, const void *fn, int threads, size_t smem) {
    for (int i = 0; i < im->n_occ; i++)
        if (im->occ[i].fn == fn && im->occ[i].smem == smem) return im->occ[i].blocks;
    /* past 48 KiB of dynamic shared memory a kernel needs the opt-in, per device (im) and
     * before both this query and its launch; never lowered (a larger size asked earlier stays) */
    cudaFuncAttributes fa;
    if (smem > 48 * 1024 && cudaFuncGetAttributes(&fa, fn) == cudaSuccess &&
        (size_t)fa.maxDynamicSharedSizeBytes < smem)
        (void)cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    int b = 0;
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&b, fn, threads, smem) != cudaSuccess) {
        (void)cudaGetLastError(); /* not the launch's error: one block per SM then */
        b = 1;
    }
    if (b < 1) b = 1;
    const int n = (int)(sizeof im->occ / sizeof im->occ[0]);
    if (im->n_occ < n) {
        im->occ[im->n_occ].fn = fn;
        im->occ[im->n_occ].smem = smem;
        im->occ[im->n_occ++].blocks = b;
    }
    return b;
}

int cuda_scratch_grow(cuda_impl *im, void **p, size_t *cap, size_t need) {
    if (need <= *cap) return 0;
    /* a step inside a graph never allocates: reserve sized this buffer too small */
    SGLC_ASSERT(im->mode == CUDA_MODE_EAGER);
    if (*p) CUDA_CHECK(im, cudaFree(*p));
    *p = NULL;
    *cap = 0;
    if (CUDA_CHECK(im, cudaMalloc(p, need))) return -1;
    *cap = need;
    return 0;
}

/* ---- transfers of per-step host arrays ---- */

static void xfer_free(cuda_impl *im, cuda_xfer *x) {
    for (int i = 0; i < 2; i++) {
        if (x->host[i]) CUDA_CHECK(im, cudaFreeHost(x->host[i]));
        if (x->done[i]) CUDA_CHECK(im, cudaEventDestroy(x->done[i]));
        x->host[i] = NULL;
        x->done[i] = NULL;
    }
    if (x->dev) CUDA_CHECK(im, cudaFree(x->dev));
    x->dev = NULL;
    x->cap = 0;
}

static int xfer_reserve(cuda_impl *im, cuda_xfer *x, size_t cap) {
    if (cap <= x->cap) return 0;
    SGLC_ASSERT(im->mode == CUDA_MODE_EAGER);
    CUDA_CHECK(im, cudaStreamSynchronize(im->stream));
    xfer_free(im, x);
    for (int i = 0; i < 2; i++)
        if (CUDA_CHECK(im, cudaMallocHost(&x->host[i], cap)) ||
            CUDA_CHECK(im, cudaEventCreateWithFlags(&x->done[i], cudaEventDisableTiming)))
            return -1;
    if (CUDA_CHECK(im, cudaMalloc(&x->dev, cap))) return -1;
    x->cap = cap;
    return 0;
}

int cuda_xfer_send(cuda_impl *im, cuda_xfer *x, size_t cap_bytes, const cuda_xfer_part *parts,
                   int n) {
    if (xfer_reserve(im, x, cap_bytes)) return -1;
    x->which ^= 1;
    uint8_t *h = (uint8_t *)x->host[x->which];
    /* the staging half written two sends ago may still be waiting for its copy */
    if (CUDA_CHECK(im, cudaEventSynchronize(x->done[x->which]))) return -1;
    for (int i = 0; i < n; i++) {
        if (!parts[i].bytes) continue;
        SGLC_ASSERT(parts[i].off + parts[i].bytes <= x->cap);
        memcpy(h + parts[i].off, parts[i].src, parts[i].bytes);
        if (CUDA_CHECK(im, cudaMemcpyAsync((uint8_t *)x->dev + parts[i].off, h + parts[i].off,
                                           parts[i].bytes, cudaMemcpyHostToDevice, im->stream)))
            return -1;
    }
    return CUDA_CHECK(im, cudaEventRecord(x->done[x->which], im->stream));
}

/* ---- memory ---- */

static void *cu_alloc(sglc_backend *be, size_t bytes) {
    cuda_impl *im = cuda_impl_of(be);
    SGLC_ASSERT(im->mode == CUDA_MODE_EAGER);
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 256);
    if (e != cudaSuccess) {
        (void)cudaGetLastError(); /* out of memory is the caller's to report, not sticky */
        return NULL;
    }
    return p;
}

static void cu_free(sglc_backend *be, void *p) {
    cuda_impl *im = cuda_impl_of(be);
    if (p) CUDA_CHECK(im, cudaFree(p));
}

static void cu_upload(sglc_backend *be, void *dst, const void *src, size_t bytes) {
    cuda_impl *im = cuda_impl_of(be);
    /* not an op of a step: a captured step never uploads */
    SGLC_ASSERT(im->mode == CUDA_MODE_EAGER);
    CUDA_CHECK(im, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, im->stream));
}

/* copies the staged downloads out (the stream has finished them) */
static void flush_downloads(cuda_impl *im) {
    for (int i = 0; i < im->n_pending; i++)
        memcpy(im->pending[i].dst, im->dl_stage + im->pending[i].off, im->pending[i].bytes);
    im->n_pending = 0;
    im->dl_used = 0;
}

static void cu_sync(sglc_backend *be) {
    cuda_impl *im = cuda_impl_of(be);
    SGLC_ASSERT(im->mode == CUDA_MODE_EAGER);
    CUDA_CHECK(im, cudaStreamSynchronize(im->stream));
    flush_downloads(im);
    /* quantize_affine's staging goes back once its caller has synced (backend.h) */
    if (im->qs.active) cuda_quant_release(im);
}

static void cu_download(sglc_backend *be, void *dst, const void *src, size_t bytes) {
    cuda_impl *im = cuda_impl_of(be);
    be->bytes_to_host += bytes;
    size_t off = (im->dl_used + 255) & ~(size_t)255;
    int staged = bytes <= CUDA_DL_STAGE_BYTES && off + bytes <= CUDA_DL_STAGE_BYTES &&
                 im->n_pending < CUDA_MAX_PENDING_DL;
    if (!staged && im->mode == CUDA_MODE_EAGER) {
        if (im->n_pending) { /* make room: finish what is staged, then retry */
            cu_sync(be);
            off = 0;
            staged = bytes <= CUDA_DL_STAGE_BYTES;
        }
        if (!staged) { /* larger than the staging: a plain synchronous copy */
            CUDA_CHECK(im, cudaStreamSynchronize(im->stream));
            CUDA_CHECK(im, cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
            return;
        }
    }
    /* inside a graph a download must fit the staging (a decode step brings back ids and
     * logits of a few rows) */
    SGLC_ASSERT(staged);
    im->pending[im->n_pending++] = {dst, off, bytes};
    im->dl_used = off + bytes;
    if (CUDA_OP_BEGIN(im, CUDA_OP_DOWNLOAD, U64(src), (uint64_t)bytes, (uint64_t)off)) return;
    CUDA_CHECK(im,
               cudaMemcpyAsync(im->dl_stage + off, src, bytes, cudaMemcpyDeviceToHost, im->stream));
}

static int cu_mem_info(sglc_backend *be, size_t *free_bytes, size_t *total_bytes) {
    cuda_impl *im = cuda_impl_of(be);
    size_t f = 0, t = 0;
    if (CUDA_CHECK(im, cudaMemGetInfo(&f, &t))) return -1;
    *free_bytes = f;
    *total_bytes = t;
    return 0;
}

/* ---- weights ---- */

static int cu_supports_weight(sglc_backend *be, uint32_t type) {
    (void)be;
    return cuda_matmul_supports(type);
}

int cuda_track_walloc(cuda_impl *im, void *p) {
    if (im->n_wallocs == im->cap_wallocs) {
        size_t cap = im->cap_wallocs ? 2 * im->cap_wallocs : 64;
        void **n = (void **)realloc(im->wallocs, cap * sizeof *n);
        if (!n) return -1;
        im->wallocs = n;
        im->cap_wallocs = cap;
    }
    im->wallocs[im->n_wallocs++] = p;
    return 0;
}

void cuda_untrack_free(cuda_impl *im, const void *p) {
    if (!p) return;
    for (size_t i = 0; i < im->n_wallocs; i++)
        if (im->wallocs[i] == p) {
            CUDA_CHECK(im, cudaFree(im->wallocs[i]));
            im->wallocs[i] = im->wallocs[--im->n_wallocs];
            return;
        }
}

/* device copy of bytes of host data (synchronous: prepare_weight runs at load) */
static int upload_weight_part(cuda_impl *im, const void *host, size_t bytes, const void **dev,
                              sglc_err *err) {
    void *p = NULL;
    if (cudaMalloc(&p, bytes ? bytes : 256) != cudaSuccess) {
        (void)cudaGetLastError();
        return sglc_err_set(err, SGLC_ERR_NOMEM,
                            "cuda: cannot allocate %zu MB of GPU memory for a weight", bytes >> 20);
    }
    if (CUDA_CHECK(im, cudaMemcpy(p, host, bytes, cudaMemcpyHostToDevice)) ||
        cuda_track_walloc(im, p) != 0) {
        cudaFree(p);
        return sglc_err_set(err, SGLC_ERR_NOMEM, "cuda: cannot upload a weight of %zu bytes",
                            bytes);
    }
    *dev = p;
    return SGLC_OK;
}

static int cu_prepare_weight(sglc_backend *be, sglc_weight *w, sglc_err *err) {
    cuda_impl *im = cuda_impl_of(be);
    if (!cuda_matmul_supports(w->type))
        return sglc_err_set(err, SGLC_ERR_UNSUPPORTED, "cuda backend: no kernel for weight type %s",
                            sglc_ggml_type_name(w->type) ? sglc_ggml_type_name(w->type) : "?");
    if (!w->host) return sglc_err_set(err, SGLC_ERR_ARG, "cuda backend: weight without host data");
    size_t bytes;
    int rc;
    if (w->type == SGLC_WTYPE_MLX_AFFINE) {
        if (!sglc_mlx_affine_valid(w->q_bits, w->q_group) || w->k % w->q_group != 0 ||
            (w->q_dtype != SGLC_GGML_TYPE_F32 && w->q_dtype != SGLC_GGML_TYPE_F16 &&
             w->q_dtype != SGLC_GGML_TYPE_BF16) ||
            !w->q_scales || !w->q_biases)
            return sglc_err_set(err, SGLC_ERR_UNSUPPORTED,
                                "cuda backend: MLX affine weight with bits=%d group_size=%d k=%lld "
                                "is not computable",
                                (int)w->q_bits, (int)w->q_group, (long long)w->k);
        size_t words = (size_t)sglc_mlx_affine_row_words(w->k, w->q_bits);
        size_t es = w->q_dtype == SGLC_GGML_TYPE_F32 ? 4 : 2;
        size_t groups = (size_t)(w->k / w->q_group);
        if (__builtin_mul_overflow(words * 4, (size_t)w->n, &bytes))
            return sglc_err_set(err, SGLC_ERR_RANGE, "cuda backend: weight size overflow");
        if ((rc = upload_weight_part(im, w->host, bytes, &w->dev, err)) ||
            (rc = upload_weight_part(im, w->q_scales, groups * es * (size_t)w->n, &w->q_scales_dev,
                                     err)) ||
            (rc = upload_weight_part(im, w->q_biases, groups * es * (size_t)w->n, &w->q_biases_dev,
                                     err)))
            return rc;
        w->dev_packed = 0;
        return SGLC_OK;
    }
    /* a GGUF quantized product rounds its activations to 8 bits (on the CPU, and on this
     * backend's exact paths): the model's attention follows the CPU's bits (cuda_attention.cu) */
    if (w->type != SGLC_GGML_TYPE_F32 && w->type != SGLC_GGML_TYPE_F16 &&
        w->type != SGLC_GGML_TYPE_BF16)
        im->quant_acts = 1;
    size_t rb = sglc_ggml_row_bytes(w->type, w->k);
    if (rb == 0 || __builtin_mul_overflow(rb, (size_t)w->n, &bytes))
        return sglc_err_set(err, SGLC_ERR_RANGE, "cuda backend: bad weight size %lld x %lld",
                            (long long)w->n, (long long)w->k);
    /* the file's layout is kept: the matrix-vector kernels read it directly (embed too) */
    if ((rc = upload_weight_part(im, w->host, bytes, &w->dev, err))) return rc;
    w->dev_packed = 0;
    return SGLC_OK;
}

static void cu_release_weight(sglc_backend *be, sglc_weight *w) {
    cuda_impl *im = cuda_impl_of(be);
    cuda_untrack_free(im, w->dev);
    cuda_untrack_free(im, w->q_scales_dev);
    cuda_untrack_free(im, w->q_biases_dev);
    w->dev = NULL;
    w->q_scales_dev = NULL;
    w->q_biases_dev = NULL;
}

/* ---- the batch ---- */

static void drop_graphs(cuda_impl *im) {
    for (int i = 0; i < im->n_graphs; i++)
        CUDA_CHECK(im, cudaGraphExecDestroy(im->graphs[i].exec));
    im->n_graphs = 0;
}

/* byte offsets of the batch arrays in the transfer buffer, from the capacities */
typedef struct {
    size_t tokens, pos, seq, out_slot, token_src, seq_slot_start, logit_rows, widx, wval, table,
        total;
} batch_layout;

static batch_layout layout_of(const cuda_impl *im) {
    batch_layout L;
    size_t o = 0, t = (size_t)im->cap_tokens * 4;
#define PLACE(f, n)                                                                                \
    L.f = o;                                                                                       \
    o += ((n) + 255) & ~(size_t)255;
    PLACE(tokens, t)
    PLACE(pos, t)
    PLACE(seq, t)
    PLACE(out_slot, t)
    PLACE(token_src, t)
    PLACE(seq_slot_start, (size_t)im->cap_seqs * 4)
    PLACE(logit_rows, (size_t)im->cap_logits * 4)
    PLACE(widx, (size_t)im->cap_writes * 4)
    PLACE(wval, (size_t)im->cap_writes * 4)
    PLACE(table, (size_t)im->cap_table * 4)
#undef PLACE
    L.total = o;
    return L;
}

static int32_t grow_cap(int32_t cap, int32_t need) {
    if (need <= cap) return cap;
    int64_t c = cap > 0 ? cap : 64;
    while (c < need)
        c *= 2;
    return (int32_t)(c > INT32_MAX ? INT32_MAX : c);
}

__global__ void k_slot_writes(int32_t *table, const int32_t *idx, const int32_t *val, int32_t n) {
    int32_t i = (int32_t)(blockIdx.x * blockDim.x + threadIdx.x);
    if (i < n) table[idx[i]] = val[i];
}

static int is_device_ptr(const void *p) {
    if (!p) return 0;
    cudaPointerAttributes a;
    if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return a.type == cudaMemoryTypeDevice || a.type == cudaMemoryTypeManaged;
}

/* 1 when the environment variable name is set to v (the A/B switches) */
static int env_is(const char *name, const char *v) {
    const char *e = getenv(name);
    return e && strcmp(e, v) == 0;
}

static const sglc_batch *cu_set_batch(sglc_backend *be, const sglc_batch *hb) {
    cuda_impl *im = cuda_impl_of(be);
    SGLC_ASSERT(im->mode == CUDA_MODE_EAGER);
    const int32_t T = hb->n_tokens;
    const int table_on_device = is_device_ptr(hb->slot_table);
    /* entries of a host slot table in use: n_slot_table, or what the tokens reach */
    int32_t n_table = 0;
    if (!table_on_device && hb->slot_table) {
        n_table = hb->n_slot_table;
        for (int32_t t = 0; t < T && hb->seq && hb->seq_slot_start && hb->pos; t++) {
            int32_t e = hb->seq_slot_start[hb->seq[t]] + hb->pos[t] + 1;
            if (e > n_table) n_table = e;
        }
        for (int32_t i = 0; i < hb->n_slot_writes; i++)
            if (hb->slot_write_idx[i] + 1 > n_table) n_table = hb->slot_write_idx[i] + 1;
    }
    int32_t ct = grow_cap(im->cap_tokens, T), cs = grow_cap(im->cap_seqs, hb->n_seqs),
            cl = grow_cap(im->cap_logits, hb->n_logits),
            cw = grow_cap(im->cap_writes, hb->n_slot_writes), cb = grow_cap(im->cap_table, n_table);
    if (ct != im->cap_tokens || cs != im->cap_seqs || cl != im->cap_logits || cb != im->cap_table ||
        cw != im->cap_writes || !im->bx.dev) {
        /* new addresses: graphs captured over the old ones are dropped */
        drop_graphs(im);
        im->cap_tokens = ct, im->cap_seqs = cs, im->cap_logits = cl, im->cap_writes = cw,
        im->cap_table = cb;
    }
    batch_layout L = layout_of(im);
    /* token_src is always an array (all -1 without one) so graphs see one argument list */
    const int32_t *tsrc = hb->token_src;
    if (!tsrc && T > 0) {
        if (im->no_src_cap < T) {
            int32_t *n = (int32_t *)realloc(im->no_src, (size_t)ct * sizeof *n);
            SGLC_ASSERT(n != NULL);
            im->no_src = n;
            for (int32_t i = 0; i < ct; i++)
                n[i] = -1;
            im->no_src_cap = ct;
        }
        tsrc = im->no_src;
    }
    cuda_xfer_part parts[] = {
        {hb->tokens, L.tokens, hb->tokens ? (size_t)T * 4 : 0},
        {hb->pos, L.pos, hb->pos ? (size_t)T * 4 : 0},
        {hb->seq, L.seq, hb->seq ? (size_t)T * 4 : 0},
        {hb->out_slot, L.out_slot, hb->out_slot ? (size_t)T * 4 : 0},
        {tsrc, L.token_src, (size_t)T * 4},
        {hb->seq_slot_start, L.seq_slot_start, hb->seq_slot_start ? (size_t)hb->n_seqs * 4 : 0},
        {hb->logit_rows, L.logit_rows, hb->logit_rows ? (size_t)hb->n_logits * 4 : 0},
        {hb->slot_write_idx, L.widx, hb->slot_write_idx ? (size_t)hb->n_slot_writes * 4 : 0},
        {hb->slot_write_val, L.wval, hb->slot_write_val ? (size_t)hb->n_slot_writes * 4 : 0},
        {hb->slot_table, L.table, table_on_device ? 0 : (size_t)n_table * 4},
    };
    cuda_xfer_send(im, &im->bx, L.total, parts, (int)(sizeof parts / sizeof parts[0]));
    uint8_t *d = (uint8_t *)im->bx.dev;
    sglc_batch *b = &im->dbatch;
    *b = *hb;
    b->tokens = (const int32_t *)(d + L.tokens);
    b->pos = (const int32_t *)(d + L.pos);
    b->seq = (const int32_t *)(d + L.seq);
    b->out_slot = (const int32_t *)(d + L.out_slot);
    b->token_src = (const int32_t *)(d + L.token_src);
    b->prev_ids = hb->prev_ids ? hb->prev_ids : im->d_one;
    b->seq_slot_start = (const int32_t *)(d + L.seq_slot_start);
    b->logit_rows = (const int32_t *)(d + L.logit_rows);
    b->slot_write_idx = (const int32_t *)(d + L.widx);
    b->slot_write_val = (const int32_t *)(d + L.wval);
    int32_t *table = table_on_device ? (int32_t *)hb->slot_table : (int32_t *)(d + L.table);
    b->slot_table = table;
    if (hb->n_slot_writes > 0) {
        if (!table_on_device)
            for (int32_t i = 0; i < hb->n_slot_writes; i++)
                SGLC_ASSERT(hb->slot_write_idx[i] >= 0 && hb->slot_write_idx[i] < im->cap_table);
        k_slot_writes<<<(hb->n_slot_writes + 255) / 256, 256, 0, im->stream>>>(
            table, b->slot_write_idx, b->slot_write_val, hb->n_slot_writes);
        CUDA_LAUNCHED(im, "slot writes kernel");
    }
    return b;
}

/* ---- graphs ---- */

static void cu_begin_step(sglc_backend *be, const sglc_batch *b) {
    cuda_impl *im = cuda_impl_of(be);
    SGLC_ASSERT(im->mode == CUDA_MODE_EAGER);
    /* downloads of an earlier step not yet synced: finish them first, since this step's
     * staging offsets start again at 0 (the graph's copies land there) */
    if (im->n_pending) cu_sync(be);
    if (!im->graphs_enabled || !b->is_decode || !im->reserved || im->failed ||
        b->n_tokens_padded > im->graph_max_bs || b->n_tokens <= 0)
        return;
    im->sig = 0x243f6a8885a308d3ull;
    im->n_ops = 0;
    im->dl_used = 0;
    for (int i = 0; i < im->n_graphs; i++) {
        cuda_graph_entry *g = &im->graphs[i];
        if (g->n_tokens == b->n_tokens && g->n_logits == b->n_logits &&
            g->n_padded == b->n_tokens_padded) {
            im->cur = i;
            im->mode = CUDA_MODE_REPLAY;
            return;
        }
    }
    if (im->n_graphs == CUDA_MAX_GRAPHS) return;
    if (CUDA_CHECK(im, cudaStreamBeginCapture(im->stream, cudaStreamCaptureModeThreadLocal)))
        return;
    im->cur = im->n_graphs;
    cuda_graph_entry *g = &im->graphs[im->cur];
    memset(g, 0, sizeof *g);
    g->n_tokens = b->n_tokens;
    g->n_logits = b->n_logits;
    g->n_padded = b->n_tokens_padded;
    im->mode = CUDA_MODE_CAPTURE;
}

static void cu_end_step(sglc_backend *be) {
    cuda_impl *im = cuda_impl_of(be);
    cuda_mode mode = im->mode;
    im->mode = CUDA_MODE_EAGER;
    if (mode == CUDA_MODE_EAGER) return;
    cuda_graph_entry *g = &im->graphs[im->cur];
    if (mode == CUDA_MODE_CAPTURE) {
        cudaGraph_t graph = NULL;
        int bad = CUDA_CHECK(im, cudaStreamEndCapture(im->stream, &graph));
        if (!bad) bad = CUDA_CHECK(im, cudaGraphInstantiate(&g->exec, graph, 0));
        if (graph) CUDA_CHECK(im, cudaGraphDestroy(graph));
        if (bad) {
            /* the step's kernels were recorded, not run: its outputs are lost; later steps run
             * without graphs */
            sglc_log(SGLC_LOG_ERROR,
                     "cuda: capturing a decode graph of %d tokens failed; graphs are off from "
                     "now on (this step's outputs are invalid)",
                     g->n_tokens);
            im->graphs_enabled = 0;
            return;
        }
        g->sig = im->sig;
        g->n_ops = im->n_ops;
        g->dl_bytes = im->dl_used;
        im->n_graphs++;
        im->n_captures++;
    } else {
        if (im->sig != g->sig || im->n_ops != g->n_ops) {
            sglc_log(SGLC_LOG_ERROR,
                     "cuda: a decode step of %d tokens called %d ops with arguments that differ "
                     "from the graph captured for this size (%d ops): the model broke the graph "
                     "contract (every op argument fixed per padded size)",
                     g->n_tokens, im->n_ops, g->n_ops);
            SGLC_ASSERT(!"graph replay with different op arguments");
        }
        im->n_replays++;
    }
    CUDA_CHECK(im, cudaGraphLaunch(g->exec, im->stream));
}

/* The padded size a decode step of n tokens runs at: SGLang's capture sizes 1, 2, 4, 8 and
 * then every multiple of 8 up to --cuda-graph-max-bs, so at most max_bs / 8 + 4 graphs are
 * captured; larger steps (or graphs off) run unpadded, without a graph. */
static int32_t graph_size(const cuda_impl *im, int32_t n) { /* 0: no graph for n */
    if (!im->graphs_enabled || n <= 0 || n > im->graph_max_bs) return 0;
    int32_t p = n <= 2 ? n : n <= 4 ? 4 : (n + 7) / 8 * 8;
    return p > im->graph_max_bs ? 0 : p;
}
static int32_t cu_decode_pad(sglc_backend *be, int32_t n) {
    const int32_t p = graph_size(cuda_impl_of(be), n);
    return p ? p : n;
}
static int cu_decode_graph(sglc_backend *be, int32_t n) {
    return graph_size(cuda_impl_of(be), n) > 0;
}

/* ---- reserve ---- */

static int cu_reserve(sglc_backend *be, const sglc_weight *const *ws, size_t n, int64_t max_rows,
                      const sglc_attn_params *attn, sglc_err *err) {
    cuda_impl *im = cuda_impl_of(be);
    size_t act = 0, tile = 0, actq = 0;
    for (size_t i = 0; i < n; i++) {
        if (!ws[i]->present || ws[i]->n <= 1) continue;
        size_t a = 0, t = 0;
        cuda_matmul_scratch(ws[i], max_rows, &a, &t);
        if (a > act) act = a;
        if (t > tile) tile = t;
        /* K-quant decode products quantize their activations into actq (cuda_matmul.cu) */
        uint32_t ty = ws[i]->type;
        if (ty == SGLC_GGML_TYPE_Q4_K || ty == SGLC_GGML_TYPE_Q5_K || ty == SGLC_GGML_TYPE_Q6_K) {
            size_t q = (size_t)(max_rows < CUDA_MATVEC_MAX_ROWS ? max_rows : CUDA_MATVEC_MAX_ROWS) *
                       (size_t)ws[i]->k * 4;
            if (q > actq) actq = q;
        }
        /* Q4_1 / Q8_0 products quantize theirs to Q8_1 form for the exact kernel */
        if (ty == SGLC_GGML_TYPE_Q4_1 || ty == SGLC_GGML_TYPE_Q8_0) {
            const int64_t er = im->deterministic || max_rows < CUDA_EXACT_MAX_ROWS
                                   ? max_rows
                                   : CUDA_EXACT_MAX_ROWS;
            size_t q = cuda_exact_act_bytes(er, ws[i]->k);
            if (q > actq) actq = q;
        }
    }
    im->reserved = 0;
    if (cuda_scratch_grow(im, &im->act16, &im->act16_bytes, act) ||
        cuda_scratch_grow(im, &im->wtile, &im->wtile_bytes, tile) ||
        cuda_scratch_grow(im, &im->actq, &im->actq_bytes, actq))
        return sglc_err_set(err, SGLC_ERR_NOMEM, "cuda: cannot allocate %zu MB of matmul scratch",
                            (act + tile) >> 20);
    (void)attn; /* the split attention partials are sized at open from the SM count */
    /* the batch buffers for max_rows tokens, so steps up to that size keep their addresses */
    im->max_rows = max_rows;
    int32_t mr = (int32_t)(max_rows > INT32_MAX / 8 ? INT32_MAX / 8 : max_rows);
    im->cap_tokens = grow_cap(im->cap_tokens, mr);
    im->cap_seqs = grow_cap(im->cap_seqs, mr);
    im->cap_logits = grow_cap(im->cap_logits, mr);
    im->cap_writes = grow_cap(im->cap_writes, mr);
    if (attn) im->cap_table = grow_cap(im->cap_table, attn->kv_slots);
    batch_layout L = layout_of(im);
    drop_graphs(im);
    if (xfer_reserve(im, &im->bx, L.total))
        return sglc_err_set(err, SGLC_ERR_NOMEM, "cuda: cannot allocate the batch buffers");
    im->reserved = !im->failed;
    if (im->failed)
        return sglc_err_set(err, SGLC_ERR_NOMEM, "cuda: reserve failed (see the log line above)");
    return SGLC_OK;
}

/* ---- open / close ---- */

static void cu_close(sglc_backend *be);

/* several backends on one host thread (tensor parallelism): each call sequence of a rank
 * starts here, so that its allocations, copies and kernels go to its GPU */
static void cu_activate(sglc_backend *be) {
    cuda_impl *im = cuda_impl_of(be);
    CUDA_CHECK(im, cudaSetDevice(im->device));
}

static sglc_backend_ops make_ops(void) {
    sglc_backend_ops o;
    memset(&o, 0, sizeof o);
    o.name = "cuda";
    o.wants_rope_table = 1;
    o.close = cu_close;
    o.mem_info = cu_mem_info;
    o.activate = cu_activate;
    o.begin_step = cu_begin_step;
    o.decode_pad = cu_decode_pad;
    o.decode_graph = cu_decode_graph;
    o.end_step = cu_end_step;
    o.alloc = cu_alloc;
    o.free = cu_free;
    o.upload = cu_upload;
    o.download = cu_download;
    o.sync = cu_sync;
    o.supports_weight = cu_supports_weight;
    o.prepare_weight = cu_prepare_weight;
    o.reserve = cu_reserve;
    o.release_weight = cu_release_weight;
    o.quantize_affine = cuda_quantize_affine;
    o.set_batch = cu_set_batch;
    o.embed = cuda_embed;
    o.rmsnorm = cuda_rmsnorm;
    o.matmul = cuda_matmul;
    o.matmul_n = cuda_matmul_n;
    o.rope = cuda_rope;
    o.kv_store = cuda_kv_store;
    o.rope_kv_store = cuda_rope_kv_store;
    o.attention = cuda_attention;
    o.silu_mul = cuda_silu_mul;
    o.add = cuda_add;
    o.gather_rows = cuda_gather_rows;
    o.norm_matmul_n = cuda_norm_matmul_n;
    o.matmul_add = cuda_matmul_add;
    o.qk_norm_rope_kv = cuda_qk_norm_rope_kv;
    o.sample = cuda_sample;
    return o;
}

static const sglc_backend_ops g_cuda_ops = make_ops();

extern "C" int sglc_cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return n;
}

extern "C" void sglc_cuda_graph_stats(sglc_backend *be, int64_t *captures, int64_t *replays) {
    cuda_impl *im = cuda_impl_of(be);
    *captures = im->n_captures;
    *replays = im->n_replays;
}

static void cu_close(sglc_backend *be) {
    cuda_impl *im = cuda_impl_of(be);
    if (im) {
        CUDA_CHECK(im, cudaSetDevice(im->device));
        if (im->stream) CUDA_CHECK(im, cudaStreamSynchronize(im->stream));
        cuda_quant_release(im);
        drop_graphs(im);
        for (size_t i = 0; i < im->n_wallocs; i++)
            CUDA_CHECK(im, cudaFree(im->wallocs[i]));
        free(im->wallocs);
        free(im->no_src);
        xfer_free(im, &im->bx);
        xfer_free(im, &im->sx);
        void *bufs[] = {im->act16,     im->wtile,     im->actq, im->attn_part,
                        im->attn_done, im->cublas_ws, im->d_one};
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
            if (bufs[i]) CUDA_CHECK(im, cudaFree(bufs[i]));
        if (im->dl_stage) CUDA_CHECK(im, cudaFreeHost(im->dl_stage));
        if (im->step_done) CUDA_CHECK(im, cudaEventDestroy(im->step_done));
        if (im->cublas) CUBLAS_CHECK(im, cublasDestroy(im->cublas));
        if (im->stream) CUDA_CHECK(im, cudaStreamDestroy(im->stream));
        free(im);
    }
    free(be);
}

extern "C" int sglc_backend_cuda_open(sglc_backend **out, const sglc_backend_params *p,
                                      sglc_err *err) {
    *out = NULL;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        (void)cudaGetLastError();
        return sglc_err_set(err, SGLC_ERR_UNSUPPORTED,
                            "--device cuda: no CUDA GPU visible (cudaGetDeviceCount: %s)",
                            e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
    }
    int dev = p ? p->device_index : 0;
    if (dev < 0 || dev >= n)
        return sglc_err_set(err, SGLC_ERR_ARG,
                            "--device cuda: GPU %d requested (--base-gpu-id), %d visible (0..%d)",
                            dev, n, n - 1);
    sglc_backend *be = (sglc_backend *)calloc(1, sizeof *be);
    cuda_impl *im = (cuda_impl *)calloc(1, sizeof *im);
    if (!be || !im) {
        free(be);
        free(im);
        return sglc_err_set(err, SGLC_ERR_NOMEM, "cuda backend: out of memory");
    }
    be->ops = &g_cuda_ops;
    be->impl = im;
    im->device = dev;
    im->n_host_threads = p ? p->n_threads : 0;
    im->mode = CUDA_MODE_EAGER;
    im->graphs_enabled = !(p && p->disable_cuda_graph);
    im->graph_max_bs =
        p && p->cuda_graph_max_bs > 0 ? p->cuda_graph_max_bs : CUDA_GRAPH_MAX_BS_DEFAULT;
    im->deterministic = p && p->deterministic;
    const char *de = getenv("SGLC_DETERMINISTIC");
    if (de && *de && strcmp(de, "0") != 0) im->deterministic = 1;
    im->exact_attn_keys = -1; /* auto: CUDA_EXACT_ATTN_KEYS once a GGUF quantized weight loads */
    const char *xe = getenv("SGLC_CUDA_EXACT_ATTN_KEYS");
    if (xe && *xe) {
        const long v = strtol(xe, NULL, 10);
        im->exact_attn_keys = v < 0 ? 0 : v > CUDA_EXACT_ATTN_KEYS ? CUDA_EXACT_ATTN_KEYS : (int)v;
    }
    const char *ge = getenv("SGLC_CUDA_GRAPHS");
    if (ge && strcmp(ge, "0") == 0) im->graphs_enabled = 0;
    cudaDeviceProp prop;
    int32_t minus_one = -1;
    im->cublas_ws_bytes = 32u << 20;
    if (CUDA_CHECK(im, cudaSetDevice(dev)) || CUDA_CHECK(im, cudaGetDeviceProperties(&prop, dev)) ||
        CUDA_CHECK(im, cudaStreamCreateWithFlags(&im->stream, cudaStreamNonBlocking)) ||
        CUDA_CHECK(im, cudaEventCreateWithFlags(&im->step_done, cudaEventDisableTiming)) ||
        CUDA_CHECK(im, cudaMallocHost((void **)&im->dl_stage, CUDA_DL_STAGE_BYTES)) ||
        CUDA_CHECK(im, cudaMalloc((void **)&im->d_one, 256)) ||
        CUDA_CHECK(im, cudaMemcpy(im->d_one, &minus_one, 4, cudaMemcpyHostToDevice)) ||
        CUDA_CHECK(im, cudaMalloc(&im->cublas_ws, im->cublas_ws_bytes)) ||
        CUBLAS_CHECK(im, cublasCreate(&im->cublas)) ||
        CUBLAS_CHECK(im, cublasSetStream(im->cublas, im->stream)) ||
        CUBLAS_CHECK(im, cublasSetWorkspace(im->cublas, im->cublas_ws, im->cublas_ws_bytes)))
        goto fail;
    im->n_sm = prop.multiProcessorCount;
    /* programmatic dependent launch (sm_90): the decode kernels start while their
     * predecessor drains and wait on the device for its results; SGLC_CUDA_PDL=0 turns it
     * off (A/B) */
    im->pdl = prop.major >= 9;
    if (env_is("SGLC_CUDA_PDL", "0")) im->pdl = 0;
    im->attn_gqa = !env_is("SGLC_CUDA_ATTN_GQA", "0");
    /* the tensor-core attention (cuda_attention_tc.cu k_attn_tc_*), the default since session
     * 15's H200 run (prefill 2.1x, decode at 256 x 1,024 keys 1.5x the CUDA-core kernels);
     * SGLC_CUDA_ATTN_TC=0 takes k_attn_gqa / k_attn (A/B) */
    im->attn_tc = !env_is("SGLC_CUDA_ATTN_TC", "0");
    /* the 16-bit decode products: k_fmv16 (cuda_fused.cu), or k_fmv with SGLC_CUDA_MV16=0
     * (A/B) */
    im->mv16 = !env_is("SGLC_CUDA_MV16", "0");
    /* the MLX 4/8-bit streaming kernel (cuda_fused.cu k_fmvq), the default since session 15's
     * H200 run (8B 4-bit decode 7.44 -> 6.87 ms); SGLC_CUDA_MVQ=0 takes k_fmv (A/B) */
    im->mvq = !env_is("SGLC_CUDA_MVQ", "0");
    /* k_fmvr (cuda_fused.cu): four MLX weight rows a warp, codes dotted before scaling; the
     * default since it passed test_backend_ops on an H100 (session 15: 8B 4-bit decode 6.955
     * -> 4.295 ms); SGLC_CUDA_MVR=0 takes k_fmvq (A/B) */
    im->mvr = im->mvq && !env_is("SGLC_CUDA_MVR", "0");
    /* k_fmv16 loading its first round before the PDL wait: the default since the same run
     * (8B bf16 decode 6.285 -> 5.945 ms on the H100); SGLC_CUDA_MV_EARLY=0 (A/B) */
    im->mv_early = !env_is("SGLC_CUDA_MV_EARLY", "0");
    im->attn_part_floats = cuda_attention_part_floats(im);
    if (CUDA_CHECK(im, cudaMalloc((void **)&im->attn_part, im->attn_part_floats * 4))) goto fail;
    if (CUDA_CHECK(im, cudaMalloc((void **)&im->attn_done, cuda_attention_done_ints(im) * 4)) ||
        CUDA_CHECK(im,
                   cudaMemsetAsync(im->attn_done, 0, cuda_attention_done_ints(im) * 4, im->stream)))
        goto fail;
    sglc_log(SGLC_LOG_INFO, "cuda: %s (sm_%d%d, %d SMs, %.1f GiB), graphs %s (max bs %d)%s%s",
             prop.name, prop.major, prop.minor, prop.multiProcessorCount,
             (double)prop.totalGlobalMem / (1024.0 * 1024.0 * 1024.0),
             im->graphs_enabled ? "on" : "off", im->graph_max_bs, im->pdl ? ", PDL" : "",
             im->deterministic ? ", deterministic inference (batch-invariant kernels)" : "");
    *out = be;
    return SGLC_OK;
fail:
    cu_close(be);
    return sglc_err_set(err, SGLC_ERR_UNSUPPORTED,
                        "--device cuda: cannot initialize GPU %d (see the log line above)", dev);
}
