/* The CPU backend: the op vtable of backend.h over host memory, with the weight kernels of
 * cpu_kernels.h and a thread pool over all cores. Ops are called from one thread (the
 * scheduler); each op splits its work over the pool. Scratch memory (quantized activations,
 * attention scores) is grown on first use to the largest step seen and then reused, so the
 * steady-state decode path does not allocate. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/ggml_exact.h"
#include "base/threadpool.h"
#include "engine/sampler.h"
#include "quant/ggml_types.h"
#include "quant/mlx_affine.h"

typedef struct {
    sglc_threadpool *tp;
    sglc_cpu_isa isa;
    void *mm_scratch;
    size_t mm_scratch_bytes;
    float *att_scratch; /* [n_threads][att_stride] */
    int64_t att_stride;
    void **packed; /* packed weight copies (prepare_weight), freed with the backend */
    size_t n_packed;
    sglc_sampler sampler; /* the sample op's scratch, sized for the vocabulary at reserve */
    int reserved; /* reserve() sized the scratch: ops only check it (a broken invariant aborts) */
    int pack;     /* pack weights at load (SGLC_CPU_PACK=0 turns it off, for A/B runs) */
} cpu_impl;

static cpu_impl *impl_of(sglc_backend *be) {
    return (cpu_impl *)be->impl;
}

static void *cpu_alloc(sglc_backend *be, size_t bytes) {
    (void)be;
    void *p = NULL;
    /* not zeroed: large buffers stay untouched (not resident) until a step writes them */
    if (posix_memalign(&p, 64, bytes ? bytes : 64)) return NULL;
    return p;
}
static void cpu_free(sglc_backend *be, void *p) {
    (void)be;
    free(p);
}
static void cpu_copy(sglc_backend *be, void *dst, const void *src, size_t bytes) {
    (void)be;
    memcpy(dst, src, bytes);
}
static void cpu_download(sglc_backend *be, void *dst, const void *src, size_t bytes) {
    be->bytes_to_host += bytes;
    memcpy(dst, src, bytes);
}
static void cpu_sync(sglc_backend *be) {
    (void)be;
}

/* Available and total RAM from /proc/meminfo (the page cache counts as available, as the
 * kernel reclaims it); -1 where there is none. */
static int cpu_mem_info(sglc_backend *be, size_t *free_bytes, size_t *total_bytes) {
    (void)be;
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return -1;
    char line[256];
    long long avail = -1, total = -1, v;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "MemAvailable: %lld kB", &v) == 1) avail = v;
        if (sscanf(line, "MemTotal: %lld kB", &v) == 1) total = v;
    }
    fclose(f);
    if (avail <= 0 || total <= 0) return -1;
    *free_bytes = (size_t)avail * 1024;
    *total_bytes = (size_t)total * 1024;
    return 0;
}

static int cpu_supports_weight(sglc_backend *be, uint32_t type) {
    (void)be;
    if (type == SGLC_WTYPE_MLX_AFFINE) return 1;
    return sglc_cpu_kernels_for(type, SGLC_CPU_ISA_REF) != NULL;
}

static int cpu_prepare_weight(sglc_backend *be, sglc_weight *w, sglc_err *err) {
    if (w->type == SGLC_WTYPE_MLX_AFFINE) {
        if (!sglc_mlx_affine_valid(w->q_bits, w->q_group) || w->k % w->q_group != 0 ||
            (w->q_dtype != SGLC_GGML_TYPE_F32 && w->q_dtype != SGLC_GGML_TYPE_F16 &&
             w->q_dtype != SGLC_GGML_TYPE_BF16) ||
            !w->host || !w->q_scales || !w->q_biases)
            return sglc_err_set(err, SGLC_ERR_UNSUPPORTED,
                                "cpu backend: MLX affine weight with bits=%d group_size=%d k=%lld "
                                "is not computable",
                                (int)w->q_bits, (int)w->q_group, (long long)w->k);
        w->dev = w->host;
        w->q_scales_dev = w->q_scales;
        w->q_biases_dev = w->q_biases;
        return SGLC_OK;
    }
    if (!cpu_supports_weight(be, w->type))
        return sglc_err_set(err, SGLC_ERR_UNSUPPORTED, "cpu backend: no kernel for weight type %s",
                            sglc_ggml_type_name(w->type) ? sglc_ggml_type_name(w->type) : "?");
    w->dev = w->host;
    w->dev_packed = 0;
    cpu_impl *im = impl_of(be);
    size_t pb = im->pack && w->n > 1 ? sglc_cpu_packed_bytes(im->isa, w->type, w->n, w->k) : 0;
    if (pb == 0) return SGLC_OK;
    /* Packed copy: the same bytes rearranged 8 rows at a time for the 8-row kernel. host is
     * left as it is (a loader that mmap'd it may drop its pages, see model.c). */
    void *p = NULL, **list = realloc(im->packed, (im->n_packed + 1) * sizeof *list);
    if (list) im->packed = list;
    if (!list || posix_memalign(&p, 64, pb) != 0)
        return sglc_err_set(err, SGLC_ERR_NOMEM,
                            "cpu backend: cannot allocate %zu MB for a "
                            "packed weight",
                            pb >> 20);
    im->packed[im->n_packed++] = p;
    sglc_cpu_pack(im->isa, w->type, w->host, w->n, w->k, p);
    w->dev = p;
    w->dev_packed = 1;
    return SGLC_OK;
}

/* cpu-ggml: matrices only in the two types whose llama.cpp arithmetic it reproduces, read in the
 * file's layout; vectors (norm weights, biases) as they are */
static int ggml_prepare_weight(sglc_backend *be, sglc_weight *w, sglc_err *err) {
    if (w->type == SGLC_WTYPE_MLX_AFFINE)
        return sglc_err_set(err, SGLC_ERR_UNSUPPORTED,
                            "device cpu-ggml reproduces llama.cpp's GGUF arithmetic; MLX affine "
                            "weights need --device cpu");
    if (!cpu_supports_weight(be, w->type))
        return sglc_err_set(err, SGLC_ERR_UNSUPPORTED, "cpu backend: no kernel for weight type %s",
                            sglc_ggml_type_name(w->type) ? sglc_ggml_type_name(w->type) : "?");
    if (w->n > 1 && sglc_gx_act_row_bytes(w->type, w->k) == 0)
        return sglc_err_set(err, SGLC_ERR_UNSUPPORTED,
                            "device cpu-ggml reproduces llama.cpp for Q4_1 and Q8_0 weights "
                            "only; this model has a %s weight (%lld x %lld): use --device cpu",
                            sglc_ggml_type_name(w->type) ? sglc_ggml_type_name(w->type) : "?",
                            (long long)w->n, (long long)w->k);
    w->dev = w->host;
    w->dev_packed = 0;
    return SGLC_OK;
}

/* The batch stays in host memory; the slot writes go into the table (the model state's, from
 * cpu_alloc: writable). */
static const sglc_batch *cpu_set_batch(sglc_backend *be, const sglc_batch *b) {
    (void)be;
    int32_t *table = (int32_t *)b->slot_table;
    for (int32_t i = 0; i < b->n_slot_writes; i++)
        table[b->slot_write_idx[i]] = b->slot_write_val[i];
    return b;
}

/* the token embed looks up: the batch's, or the previous sample op's id (overlap) */
static int32_t batch_token(const sglc_batch *b, long t) {
    return b->token_src && b->token_src[t] >= 0 ? b->prev_ids[b->token_src[t]] : b->tokens[t];
}

/* ---- embed ---- */
typedef struct {
    const sglc_weight *table;
    const sglc_batch *b;
    float *out;
} embed_ctx;

static void embed_task(void *vctx, int ith, int nth) {
    embed_ctx *c = vctx;
    long lo, hi;
    sglc_split_range(c->b->n_tokens, ith, nth, &lo, &hi);
    const sglc_weight *w = c->table;
    if (w->type == SGLC_WTYPE_MLX_AFFINE) {
        const int64_t words = sglc_mlx_affine_row_words(w->k, w->q_bits), ng = w->k / w->q_group;
        const size_t es = w->q_dtype == SGLC_GGML_TYPE_F32 ? 4 : 2;
        for (long t = lo; t < hi; t++) {
            int32_t id = batch_token(c->b, t);
            SGLC_ASSERT(id >= 0 && id < w->n);
            sglc_mlx_affine_dequantize_row_f32(
                (const uint32_t *)w->dev + (size_t)id * (size_t)words,
                (const char *)w->q_scales_dev + (size_t)id * (size_t)ng * es,
                (const char *)w->q_biases_dev + (size_t)id * (size_t)ng * es, w->q_dtype, w->k,
                w->q_bits, w->q_group, c->out + t * w->k);
        }
        return;
    }
    size_t row_bytes = sglc_ggml_row_bytes(c->table->type, c->table->k);
    /* a packed table (tied embeddings of a packed type) is looked up in the file's layout */
    const char *base = c->table->dev_packed ? c->table->host : c->table->dev;
    for (long t = lo; t < hi; t++) {
        int32_t id = batch_token(c->b, t);
        SGLC_ASSERT(id >= 0 && id < c->table->n);
        const char *row = base + (size_t)id * row_bytes;
        sglc_ggml_dequantize_row(c->table->type, row, c->out + t * c->table->k, c->table->k);
    }
}

static void cpu_embed(sglc_backend *be, const sglc_weight *table, const sglc_batch *b, float *out) {
    embed_ctx c = {table, b, out};
    sglc_threadpool_run(impl_of(be)->tp, embed_task, &c);
}

/* ---- rmsnorm ---- */
typedef struct {
    const float *x;
    const float *w;
    float *y;
    int64_t rows, dim;
    float eps;
} rmsnorm_ctx;

static void rmsnorm_rows(const rmsnorm_ctx *c, long lo, long hi) {
    for (long r = lo; r < hi; r++) {
        const float *x = c->x + r * c->dim;
        float *y = c->y + r * c->dim;
        /* squares in float, summed in double, mean rounded to float: as ggml computes it */
        double ss = 0.0;
        for (int64_t i = 0; i < c->dim; i++)
            ss += (double)(x[i] * x[i]);
        const float mean = (float)(ss / (double)c->dim);
        float scale = 1.0f / sqrtf(mean + c->eps);
        for (int64_t i = 0; i < c->dim; i++)
            y[i] = (x[i] * scale) * c->w[i];
    }
}

static void rmsnorm_task(void *vctx, int ith, int nth) {
    rmsnorm_ctx *c = vctx;
    long lo, hi;
    sglc_split_range((long)c->rows, ith, nth, &lo, &hi);
    rmsnorm_rows(c, lo, hi);
}

static void cpu_rmsnorm(sglc_backend *be, const float *x, const sglc_weight *w, float *y,
                        int64_t rows, int64_t dim, float eps) {
    SGLC_ASSERT(w->type == SGLC_GGML_TYPE_F32 && w->k == dim);
    rmsnorm_ctx c = {x, w->dev, y, rows, dim, eps};
    if (rows < 4) {
        rmsnorm_rows(&c, 0, (long)rows); /* a pool wake costs more than one short row */
        return;
    }
    sglc_threadpool_run(impl_of(be)->tp, rmsnorm_task, &c);
}

/* ---- matmul ---- */
/* Matmul scratch grows to the largest step seen, then is reused. */
static void grow_mm_scratch(cpu_impl *im, size_t need) {
    if (need <= im->mm_scratch_bytes) return;
    /* after reserve() the model's steps never get here; ops called directly (unit tests of one
     * op) grow it on first use */
    SGLC_ASSERT(!im->reserved);
    free(im->mm_scratch);
    im->mm_scratch = NULL;
    SGLC_ASSERT(posix_memalign(&im->mm_scratch, 64, need) == 0);
    im->mm_scratch_bytes = need;
}
static void add_bias(const sglc_weight *bias, int64_t n, int64_t rows, float *y) {
    SGLC_ASSERT(bias->type == SGLC_GGML_TYPE_F32 && bias->k == n);
    const float *bv = bias->dev;
    for (int64_t t = 0; t < rows; t++)
        for (int64_t o = 0; o < n; o++)
            y[t * n + o] += bv[o];
}

/* llama.cpp-identical matmul: activations quantized per token as ggml does, then one ggml dot
 * per (token, output row); threads split the output rows (each result is independent of the
 * split). */
typedef struct {
    const sglc_weight *w;
    const uint8_t *act;
    size_t act_row, w_row;
    int64_t rows;
    float *y;
} gx_mm_ctx;

static void gx_mm_task(void *vctx, int ith, int nth) {
    gx_mm_ctx *c = vctx;
    long lo, hi;
    sglc_split_range((long)c->w->n, ith, nth, &lo, &hi);
    const uint8_t *wd = c->w->dev;
    /* a tile of 16 weight rows stays in L1 while every token passes over it */
    for (long o0 = lo; o0 < hi; o0 += 16) {
        long o1 = o0 + 16 < hi ? o0 + 16 : hi;
        int64_t t = 0;
        float r[4];
        for (; t + 4 <= c->rows; t += 4) /* 4 tokens of a row */
            for (long o = o0; o < o1; o++) {
                sglc_gx_dot4(c->w->type, wd + (size_t)o * c->w_row, c->act + (size_t)t * c->act_row,
                             c->act_row, c->w->k, r);
                for (int jj = 0; jj < 4; jj++)
                    c->y[(t + jj) * c->w->n + o] = r[jj];
            }
        for (; t < c->rows; t++)
            for (long o = o0; o < o1; o++)
                c->y[t * c->w->n + o] = sglc_gx_dot(c->w->type, wd + (size_t)o * c->w_row,
                                                    c->act + (size_t)t * c->act_row, c->w->k);
    }
}

static void gx_matmul(cpu_impl *im, const sglc_weight *w, const float *x, int64_t rows, float *y) {
    size_t ar = sglc_gx_act_row_bytes(w->type, w->k);
    SGLC_ASSERT(ar > 0);
    grow_mm_scratch(im, ar * (size_t)rows);
    for (int64_t t = 0; t < rows; t++)
        sglc_gx_quantize_row(w->type, x + t * w->k, w->k,
                             (uint8_t *)im->mm_scratch + ar * (size_t)t);
    gx_mm_ctx c = {w, im->mm_scratch, ar, (size_t)sglc_ggml_row_bytes(w->type, w->k), rows, y};
    sglc_threadpool_run(im->tp, gx_mm_task, &c);
}

/* cpu-ggml: llama.cpp's activation quantization and dot order (no matmul_n: the model runs
 * q/k/v and gate/up as separate products, as llama.cpp does) */
static void ggml_matmul(sglc_backend *be, const sglc_weight *w, const sglc_weight *bias,
                        const float *x, int64_t rows, float *y) {
    gx_matmul(impl_of(be), w, x, rows, y);
    if (bias) add_bias(bias, w->n, rows, y);
}

static void cpu_matmul(sglc_backend *be, const sglc_weight *w, const sglc_weight *bias,
                       const float *x, int64_t rows, float *y) {
    cpu_impl *im = impl_of(be);
    const int affine = w->type == SGLC_WTYPE_MLX_AFFINE;
    size_t need = affine ? sglc_cpu_matmul_affine_scratch_bytes(w->k, w->q_group, rows)
                         : sglc_cpu_matmul_scratch_bytes(w->type, w->k, rows);
    grow_mm_scratch(im, need);
    if (affine) {
        sglc_cpu_affine_weight aw = {w->dev,     w->q_scales_dev, w->q_biases_dev,
                                     w->q_dtype, w->q_bits,       w->q_group};
        sglc_cpu_matmul_affine(im->tp, im->isa, &aw, w->n, w->k, x, rows, y, im->mm_scratch);
    } else if (w->dev_packed) {
        sglc_cpu_matmul_packed(im->tp, im->isa, w->type, w->dev, w->n, w->k, x, rows, y,
                               im->mm_scratch);
    } else {
        sglc_cpu_matmul(im->tp, im->isa, w->type, w->dev, w->n, w->k, x, rows, y, im->mm_scratch);
    }
    if (bias) add_bias(bias, w->n, rows, y);
}

static void cpu_matmul_n(sglc_backend *be, int n, const sglc_weight *const *w,
                         const sglc_weight *const *bias, const float *x, int64_t rows,
                         float *const *y) {
    cpu_impl *im = impl_of(be);
    /* one job when the weights share type, input size and layout (the usual q/k/v, gate/up) */
    int same = n >= 1 && n <= SGLC_CPU_MM_MAX_PARTS && w[0]->type != SGLC_WTYPE_MLX_AFFINE;
    for (int i = 1; same && i < n; i++)
        same =
            w[i]->type == w[0]->type && w[i]->k == w[0]->k && w[i]->dev_packed == w[0]->dev_packed;
    if (!same) {
        for (int i = 0; i < n; i++)
            cpu_matmul(be, w[i], bias ? bias[i] : NULL, x, rows, y[i]);
        return;
    }
    size_t need = sglc_cpu_matmul_scratch_bytes(w[0]->type, w[0]->k, rows);
    grow_mm_scratch(im, need);
    const void *wd[SGLC_CPU_MM_MAX_PARTS];
    int64_t n_out[SGLC_CPU_MM_MAX_PARTS];
    for (int i = 0; i < n; i++) {
        wd[i] = w[i]->dev;
        n_out[i] = w[i]->n;
    }
    sglc_cpu_matmul_multi(im->tp, im->isa, w[0]->type, w[0]->dev_packed, n, wd, n_out, w[0]->k, x,
                          rows, y, im->mm_scratch);
    for (int i = 0; i < n; i++)
        if (bias && bias[i]) add_bias(bias[i], w[i]->n, rows, y[i]);
}

/* ---- rope ---- */
typedef struct {
    const sglc_batch *b;
    float *q, *k;
    const sglc_attn_params *p;
    int exact;
} rope_ctx;

static void rope_vec(float *v, const float *cs, const float *sn, const sglc_attn_params *p) {
    int32_t rd = p->rot_dim;
    for (int32_t i = 0; i < rd / 2; i++) {
        int32_t i0 = p->mode == SGLC_ROPE_NORM ? 2 * i : i;
        int32_t i1 = p->mode == SGLC_ROPE_NORM ? 2 * i + 1 : i + rd / 2;
        float x0 = v[i0], x1 = v[i1];
        v[i0] = x0 * cs[i] - x1 * sn[i];
        v[i1] = x0 * sn[i] + x1 * cs[i];
    }
}

/* Rotates one token's q heads (q: [n_head][hd]) and k heads (k: [n_head_kv][hd]) in place. */
static void rope_token(const sglc_attn_params *p, int32_t pos, float *q, float *k, int exact) {
    float cs[256], sn[256];
    SGLC_ASSERT(p->rot_dim <= 512);
    sglc_rope_table(pos, p, p->freq_factors, cs, sn); /* host memory on the CPU */
    for (long h = 0; h < p->n_head + p->n_head_kv; h++) {
        float *v = h < p->n_head ? q + h * p->head_dim : k + (h - p->n_head) * p->head_dim;
        if (exact)
            sglc_gx_rope(v, cs, sn, p->rot_dim, p->mode == SGLC_ROPE_NEOX);
        else
            rope_vec(v, cs, sn, p);
    }
}

static void rope_task(void *vctx, int ith, int nth) {
    rope_ctx *c = vctx;
    const sglc_attn_params *p = c->p;
    long lo, hi;
    sglc_split_range((long)c->b->n_tokens, ith, nth, &lo, &hi);
    for (long t = lo; t < hi; t++)
        rope_token(p, c->b->pos[t], c->q + t * p->n_head * p->head_dim,
                   c->k + t * p->n_head_kv * p->head_dim, c->exact);
}

static void rope_run(sglc_backend *be, const sglc_batch *b, float *q, float *k,
                     const sglc_attn_params *p, int exact) {
    rope_ctx c = {b, q, k, p, exact};
    if (b->n_tokens < 2) { /* one token: cheaper than a pool wake */
        rope_task(&c, 0, 1);
        return;
    }
    sglc_threadpool_run(impl_of(be)->tp, rope_task, &c);
}

static void cpu_rope(sglc_backend *be, const sglc_batch *b, float *q, float *k,
                     const sglc_attn_params *p) {
    rope_run(be, b, q, k, p, 0);
}

/* cpu-ggml: the rotation as gcc compiles ggml's (sglc_gx_rope) */
static void ggml_rope(sglc_backend *be, const sglc_batch *b, float *q, float *k,
                      const sglc_attn_params *p) {
    rope_run(be, b, q, k, p, 1);
}

/* ---- kv store ---- */
/* f16 -> f32 through a table (exact; what ggml does on x86 without F16C in scalar paths) */
static float g_f16_table[1 << 16];
static pthread_once_t g_f16_once = PTHREAD_ONCE_INIT;
static void f16_table_init(void) {
    for (uint32_t i = 0; i < (1u << 16); i++)
        g_f16_table[i] = sglc_fp16_to_f32((uint16_t)i);
}

/* one token's K and V rows into the cache slot (f16 or f32 as the cache is) */
static void kv_store_row(int isa, const float *ks, const float *vs, void *k_cache, void *v_cache,
                         int32_t slot, size_t kvd, const sglc_attn_params *p) {
    if (p->kv_type == SGLC_GGML_TYPE_F16) {
        uint16_t *kd = (uint16_t *)k_cache + (size_t)slot * kvd;
        uint16_t *vd = (uint16_t *)v_cache + (size_t)slot * kvd;
        if (isa >= SGLC_CPU_ISA_AVX2) {
            sglc_avx2_f32_to_f16_row(kd, ks, (int32_t)kvd);
            sglc_avx2_f32_to_f16_row(vd, vs, (int32_t)kvd);
            return;
        }
        for (size_t i = 0; i < kvd; i++) {
            kd[i] = sglc_f32_to_fp16(ks[i]);
            vd[i] = sglc_f32_to_fp16(vs[i]);
        }
    } else {
        memcpy((float *)k_cache + (size_t)slot * kvd, ks, kvd * sizeof(float));
        memcpy((float *)v_cache + (size_t)slot * kvd, vs, kvd * sizeof(float));
    }
}

static void cpu_kv_store(sglc_backend *be, const sglc_batch *b, const float *k, const float *v,
                         void *k_cache, void *v_cache, const sglc_attn_params *p) {
    size_t kvd = (size_t)p->n_head_kv * (size_t)p->head_dim;
    for (int32_t t = 0; t < b->n_tokens; t++) {
        int32_t slot = b->out_slot[t];
        SGLC_ASSERT(slot >= 0 && slot < p->kv_slots);
        kv_store_row(impl_of(be)->isa, k + (size_t)t * kvd, v + (size_t)t * kvd, k_cache, v_cache,
                     slot, kvd, p);
    }
}

/* The seed's custom RoPE (SGLANG_MLX_USE_CUSTOM_ROPE=1): rope and kv_store fused into one pass
 * per token, so each token's rotated K goes from registers/L1 to the cache without being written
 * back to the activation buffer and read again, and one pool dispatch replaces two. Same
 * arithmetic as the separate ops (same table, same rotation, same f16 rounding): identical
 * results. k is left unrotated (nothing reads it after the cache write). */
typedef struct {
    const sglc_batch *b;
    float *q;
    const float *k, *v;
    void *kc, *vc;
    const sglc_attn_params *p;
    int exact, isa;
} rope_kv_ctx;

static void rope_kv_task(void *vctx, int ith, int nth) {
    rope_kv_ctx *c = vctx;
    const sglc_attn_params *p = c->p;
    long lo, hi;
    sglc_split_range((long)c->b->n_tokens, ith, nth, &lo, &hi);
    const size_t kvd = (size_t)p->n_head_kv * (size_t)p->head_dim;
    SGLC_ASSERT(kvd <= 8192);
    float krow[8192];
    for (long t = lo; t < hi; t++) {
        memcpy(krow, c->k + (size_t)t * kvd, kvd * sizeof(float));
        rope_token(p, c->b->pos[t], c->q + t * p->n_head * p->head_dim, krow, c->exact);
        int32_t slot = c->b->out_slot[t];
        SGLC_ASSERT(slot >= 0 && slot < p->kv_slots);
        kv_store_row(c->isa, krow, c->v + (size_t)t * kvd, c->kc, c->vc, slot, kvd, p);
    }
}

static void rope_kv_run(sglc_backend *be, const sglc_batch *b, float *q, const float *k,
                        const float *v, void *k_cache, void *v_cache, const sglc_attn_params *p,
                        int exact) {
    rope_kv_ctx c = {b, q, k, v, k_cache, v_cache, p, exact, impl_of(be)->isa};
    if (b->n_tokens < 2) {
        rope_kv_task(&c, 0, 1);
        return;
    }
    sglc_threadpool_run(impl_of(be)->tp, rope_kv_task, &c);
}

static void cpu_rope_kv_store(sglc_backend *be, const sglc_batch *b, float *q, const float *k,
                              const float *v, void *k_cache, void *v_cache,
                              const sglc_attn_params *p) {
    rope_kv_run(be, b, q, k, v, k_cache, v_cache, p, 0);
}

static void ggml_rope_kv_store(sglc_backend *be, const sglc_batch *b, float *q, const float *k,
                               const float *v, void *k_cache, void *v_cache,
                               const sglc_attn_params *p) {
    rope_kv_run(be, b, q, k, v, k_cache, v_cache, p, 1);
}

/* ---- attention ---- */
typedef struct {
    const sglc_batch *b;
    const float *q;
    const void *kc, *vc;
    float *out;
    const sglc_attn_params *p;
    float *scratch;
    int64_t stride;
    int avx2;  /* F16C/FMA helpers for the f16 cache */
    int exact; /* llama.cpp-identical order (ggml_exact.h) */
} attn_ctx;

static float dot_f32(const float *a, const float *b, int32_t n) {
    float s = 0.0f;
    for (int32_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static float dot_f32_f16(const float *a, const uint16_t *b, int32_t n) {
    float s = 0.0f;
    for (int32_t i = 0; i < n; i++)
        s += a[i] * g_f16_table[b[i]];
    return s;
}

/* Causal attention of one (token, head). With an f16 cache the arithmetic follows ggml's
 * non-flash path, so results track llama.cpp: q is rounded to f16 before q.k, the softmax
 * runs in f32, and the probabilities are rounded to f16 before weighting V. */
static void attn_one(const attn_ctx *c, long t, long h, float *sc) {
    const sglc_attn_params *p = c->p;
    const sglc_batch *b = c->b;
    int32_t hd = p->head_dim, group = p->n_head / p->n_head_kv;
    size_t kvd = (size_t)p->n_head_kv * (size_t)hd;
    long kvh = h / group;
    int f16 = p->kv_type == SGLC_GGML_TYPE_F16;
    const float *q = c->q + (t * p->n_head + h) * hd;
    float qh[512];
    SGLC_ASSERT(hd <= 512);
    if (f16 && c->exact) {
        sglc_gx_attn(q, (const uint16_t *)c->kc + (size_t)kvh * (size_t)hd,
                     (const uint16_t *)c->vc + (size_t)kvh * (size_t)hd, kvd,
                     b->slot_table + b->seq_slot_start[b->seq[t]], b->pos[t] + 1, hd, p->scale,
                     b->n_tokens > 1, sc, c->out + (t * p->n_head + h) * hd);
        return;
    }
    if (f16 && c->avx2) {
        sglc_avx2_attn_f16(q, (const uint16_t *)c->kc + (size_t)kvh * (size_t)hd,
                           (const uint16_t *)c->vc + (size_t)kvh * (size_t)hd, kvd,
                           b->slot_table + b->seq_slot_start[b->seq[t]], b->pos[t] + 1, hd,
                           p->scale, sc, c->out + (t * p->n_head + h) * hd);
        return;
    }
    if (f16)
        for (int32_t d = 0; d < hd; d++)
            qh[d] = g_f16_table[sglc_f32_to_fp16(q[d])];
    const int32_t *slots = b->slot_table + b->seq_slot_start[b->seq[t]];
    int32_t n_ctx = b->pos[t] + 1;
    float mx = -INFINITY;
    for (int32_t s = 0; s < n_ctx; s++) {
        size_t off = (size_t)slots[s] * kvd + (size_t)kvh * (size_t)hd;
        float v;
        if (f16)
            v = c->avx2 ? sglc_avx2_dot_f32_f16(qh, (const uint16_t *)c->kc + off, hd)
                        : dot_f32_f16(qh, (const uint16_t *)c->kc + off, hd);
        else
            v = c->avx2 ? sglc_avx2_dot_f32_f32(q, (const float *)c->kc + off, hd)
                        : dot_f32(q, (const float *)c->kc + off, hd);
        v *= p->scale;
        sc[s] = v;
        if (v > mx) mx = v;
    }
    float sum = 0.0f;
    for (int32_t s = 0; s < n_ctx; s++) {
        sc[s] = expf(sc[s] - mx);
        sum += sc[s];
    }
    float inv = 1.0f / sum;
    float *o = c->out + (t * p->n_head + h) * hd;
    memset(o, 0, (size_t)hd * sizeof(float));
    for (int32_t s = 0; s < n_ctx; s++) {
        size_t off = (size_t)slots[s] * kvd + (size_t)kvh * (size_t)hd;
        if (f16) {
            float w = g_f16_table[sglc_f32_to_fp16(sc[s] * inv)];
            const uint16_t *vv = (const uint16_t *)c->vc + off;
            if (c->avx2) {
                sglc_avx2_axpy_f16(o, w, vv, hd);
                continue;
            }
            for (int32_t d = 0; d < hd; d++)
                o[d] += w * g_f16_table[vv[d]];
        } else {
            float w = sc[s] * inv;
            const float *vv = (const float *)c->vc + off;
            if (c->avx2) {
                sglc_avx2_axpy_f32(o, w, vv, hd);
                continue;
            }
            for (int32_t d = 0; d < hd; d++)
                o[d] += w * vv[d];
        }
    }
}

static void attn_task(void *vctx, int ith, int nth) {
    attn_ctx *c = vctx;
    const sglc_attn_params *p = c->p;
    float *sc = c->scratch + (int64_t)ith * c->stride;
    long lo, hi;
    sglc_split_range((long)c->b->n_tokens * p->n_head, ith, nth, &lo, &hi);
    for (long j = lo; j < hi; j++)
        attn_one(c, j / p->n_head, j % p->n_head, sc);
}

static int64_t att_stride_for(int exact, const sglc_attn_params *p) {
    return exact ? (int64_t)sglc_gx_attn_scratch_floats(p->kv_slots, p->head_dim) : p->kv_slots;
}

static void grow_att_scratch(cpu_impl *im, int64_t stride) {
    int nth = sglc_threadpool_size(im->tp);
    free(im->att_scratch);
    im->att_scratch = NULL;
    SGLC_ASSERT(posix_memalign((void **)&im->att_scratch, 64,
                               (size_t)nth * (size_t)stride * sizeof(float)) == 0);
    im->att_stride = stride;
}

static void attention_run(sglc_backend *be, const sglc_batch *b, const float *q,
                          const void *k_cache, const void *v_cache, float *out,
                          const sglc_attn_params *p, int exact) {
    cpu_impl *im = impl_of(be);
    pthread_once(&g_f16_once, f16_table_init);
    int64_t stride = att_stride_for(exact, p);
    if (im->att_stride < stride) {
        SGLC_ASSERT(!im->reserved);
        grow_att_scratch(im, stride);
    }
    attn_ctx c = {b,
                  q,
                  k_cache,
                  v_cache,
                  out,
                  p,
                  im->att_scratch,
                  im->att_stride,
                  im->isa >= SGLC_CPU_ISA_AVX2,
                  exact};
    sglc_threadpool_run(im->tp, attn_task, &c);
}

static void cpu_attention(sglc_backend *be, const sglc_batch *b, const float *q,
                          const void *k_cache, const void *v_cache, float *out,
                          const sglc_attn_params *p) {
    attention_run(be, b, q, k_cache, v_cache, out, p, 0);
}

/* cpu-ggml: ggml's non-flash attention order for the f16 cache (sglc_gx_attn) */
static void ggml_attention(sglc_backend *be, const sglc_batch *b, const float *q,
                           const void *k_cache, const void *v_cache, float *out,
                           const sglc_attn_params *p) {
    attention_run(be, b, q, k_cache, v_cache, out, p, 1);
}

/* ---- elementwise ---- */
typedef struct {
    const float *a, *b;
    float *out;
    int64_t n;
    int op; /* 0 silu_mul (plain C), 1 add, 2 silu_mul as ggml (AVX2, ggml_exact.h) */
} elt_ctx;

static void elt_task(void *vctx, int ith, int nth) {
    elt_ctx *c = vctx;
    long lo, hi;
    sglc_split_range((long)c->n, ith, nth, &lo, &hi);
    if (c->op == 2) {
        /* whole groups of 8 per thread, so the vector / scalar split matches one pass */
        lo &= ~7L;
        hi = hi == (long)c->n ? hi : hi & ~7L;
        sglc_gx_swiglu(c->a + lo, c->b + lo, c->out + lo, hi - lo);
    } else if (c->op == 0) {
        for (long i = lo; i < hi; i++) {
            float g = c->a[i];
            c->out[i] = g / (1.0f + expf(-g)) * c->b[i];
        }
    } else {
        for (long i = lo; i < hi; i++)
            c->out[i] = c->a[i] + c->b[i];
    }
}

static void run_elt(sglc_backend *be, elt_ctx *c) {
    if (c->n < 4096) {
        elt_task(c, 0, 1);
        return;
    }
    sglc_threadpool_run(impl_of(be)->tp, elt_task, c);
}

static void cpu_silu_mul(sglc_backend *be, const float *gate, const float *up, float *out,
                         int64_t n) {
    /* with AVX2 both devices use ggml's vectorized SwiGLU (the cpu-ggml device needs it bit for
     * bit; for the default device it is ~10x cheaper than a libm expf per element) */
    elt_ctx c = {gate, up, out, n, impl_of(be)->isa >= SGLC_CPU_ISA_AVX2 ? 2 : 0};
    run_elt(be, &c);
}

static void cpu_add(sglc_backend *be, float *x, const float *y, int64_t n) {
    elt_ctx c = {x, y, x, n, 1};
    run_elt(be, &c);
}

static void cpu_gather_rows(sglc_backend *be, const float *src, const int32_t *rows, int32_t n_rows,
                            int64_t dim, float *dst) {
    (void)be;
    for (int32_t r = 0; r < n_rows; r++)
        memmove(dst + (int64_t)r * dim, src + (int64_t)rows[r] * dim, (size_t)dim * sizeof(float));
}

/* The sample op: the reference pipeline (engine/sampler.c) row by row; ids and logprobs land in
 * host memory, so nothing is downloaded. */
static void cpu_sample(sglc_backend *be, float *logits, int32_t n_vocab, const sglc_sample_desc *d,
                       const sglc_penalty_tables *pen, const sglc_sample_out *out) {
    cpu_impl *im = impl_of(be);
    if (im->sampler.n_vocab < n_vocab) {
        /* sized at reserve() for the model's vocabulary; ops called directly grow it here */
        SGLC_ASSERT(!im->reserved);
        sglc_sampler_free(&im->sampler);
        SGLC_ASSERT(sglc_sampler_init(&im->sampler, n_vocab) == 0);
    }
    sglc_sampler sz = im->sampler;
    sz.n_vocab = n_vocab;
    sglc_sample_rows_ref(&sz, logits, n_vocab, d, pen, out);
}

/* The largest matmul scratch any of the weights needs at max_rows (matmul and matmul_n use the
 * same per-type formula), and the attention scratch of the pool. */
static int reserve_run(sglc_backend *be, const sglc_weight *const *ws, size_t n, int64_t max_rows,
                       const sglc_attn_params *attn, int exact) {
    cpu_impl *im = impl_of(be);
    size_t need = 0;
    for (size_t i = 0; i < n; i++) {
        const sglc_weight *w = ws[i];
        if (!w->present || w->n <= 1) continue;
        size_t b = exact ? sglc_gx_act_row_bytes(w->type, w->k) * (size_t)max_rows
                   : w->type == SGLC_WTYPE_MLX_AFFINE
                       ? sglc_cpu_matmul_affine_scratch_bytes(w->k, w->q_group, max_rows)
                       : sglc_cpu_matmul_scratch_bytes(w->type, w->k, max_rows);
        if (b > need) need = b;
    }
    im->reserved = 0;
    grow_mm_scratch(im, need);
    /* the sample op's scratch: the largest matrix row count covers the vocabulary (the output
     * head is among the weights) */
    int64_t vocab = 0;
    for (size_t i = 0; i < n; i++)
        if (ws[i]->present && ws[i]->n > vocab) vocab = ws[i]->n;
    if (vocab > im->sampler.n_vocab) {
        sglc_sampler_free(&im->sampler);
        if (sglc_sampler_init(&im->sampler, (int32_t)vocab) != 0) im->sampler.n_vocab = 0;
    }
    if (attn) {
        int64_t stride = att_stride_for(exact, attn);
        if (im->att_stride < stride) grow_att_scratch(im, stride);
    }
    pthread_once(&g_f16_once, f16_table_init);
    im->reserved = 1;
    return SGLC_OK;
}

static int cpu_reserve(sglc_backend *be, const sglc_weight *const *ws, size_t n, int64_t max_rows,
                       const sglc_attn_params *attn, sglc_err *err) {
    (void)err;
    return reserve_run(be, ws, n, max_rows, attn, 0);
}

static int ggml_reserve(sglc_backend *be, const sglc_weight *const *ws, size_t n, int64_t max_rows,
                        const sglc_attn_params *attn, sglc_err *err) {
    (void)err;
    return reserve_run(be, ws, n, max_rows, attn, 1);
}

void sglc_backend_cpu_close(sglc_backend *be);

/* Two op tables over the same memory and threads: "cpu" (the fast kernels) and "cpu-ggml"
 * (llama.cpp's operation order and rounding, bit for bit: ggml_exact.h). They share the ops
 * whose arithmetic is the same (embed, rmsnorm, kv_store, silu_mul, add, gather_rows); the
 * others have a ggml_ twin. cpu-ggml has no matmul_n: the model then runs q/k/v and gate/up as
 * separate products, as llama.cpp does. */
/* the ops both tables share */
#define CPU_SHARED_OPS                                                                             \
    .close = sglc_backend_cpu_close, .mem_info = cpu_mem_info, .alloc = cpu_alloc,                 \
    .free = cpu_free, .upload = cpu_copy, .download = cpu_download, .sync = cpu_sync,              \
    .supports_weight = cpu_supports_weight, .set_batch = cpu_set_batch, .embed = cpu_embed,        \
    .rmsnorm = cpu_rmsnorm, .kv_store = cpu_kv_store, .silu_mul = cpu_silu_mul, .add = cpu_add,    \
    .gather_rows = cpu_gather_rows, .sample = cpu_sample

static const sglc_backend_ops cpu_ops = {
    .name = "cpu",
    CPU_SHARED_OPS,
    .prepare_weight = cpu_prepare_weight,
    .reserve = cpu_reserve,
    .matmul = cpu_matmul,
    .matmul_n = cpu_matmul_n,
    .rope = cpu_rope,
    .rope_kv_store = cpu_rope_kv_store,
    .attention = cpu_attention,
};

static const sglc_backend_ops cpu_ggml_ops = {
    .name = "cpu-ggml",
    CPU_SHARED_OPS,
    .prepare_weight = ggml_prepare_weight,
    .reserve = ggml_reserve,
    .matmul = ggml_matmul,
    .matmul_n = NULL,
    .rope = ggml_rope,
    .rope_kv_store = ggml_rope_kv_store,
    .attention = ggml_attention,
};

int sglc_backend_cpu_open(sglc_backend **out, const sglc_backend_params *params, int exact,
                          sglc_err *err);

int sglc_backend_cpu_open(sglc_backend **out, const sglc_backend_params *params, int exact,
                          sglc_err *err) {
    *out = NULL;
    if (exact && !sglc_cpu_isa_available(SGLC_CPU_ISA_AVX2))
        return sglc_err_set(err, SGLC_ERR_UNSUPPORTED,
                            "device cpu-ggml reproduces llama.cpp's AVX2 arithmetic and needs a "
                            "CPU with AVX2, FMA and F16C");
    sglc_backend *be = calloc(1, sizeof *be);
    cpu_impl *im = calloc(1, sizeof *im);
    if (!be || !im) {
        free(be);
        free(im);
        return sglc_err_set(err, SGLC_ERR_NOMEM, "cpu backend: out of memory");
    }
    int rc = sglc_threadpool_open(&im->tp, params ? params->n_threads : 0);
    if (rc != 0) {
        free(be);
        free(im);
        return sglc_err_set(err, SGLC_ERR_NOMEM, "cpu backend: cannot start threads");
    }
    im->isa = sglc_cpu_isa_best();
    const char *pack = getenv("SGLC_CPU_PACK");
    im->pack = !(pack && strcmp(pack, "0") == 0);
    be->ops = exact ? &cpu_ggml_ops : &cpu_ops;
    be->impl = im;
    *out = be;
    return SGLC_OK;
}

void sglc_backend_cpu_close(sglc_backend *be) {
    if (!be) return;
    cpu_impl *im = impl_of(be);
    sglc_threadpool_close(im->tp);
    free(im->mm_scratch);
    free(im->att_scratch);
    sglc_sampler_free(&im->sampler);
    for (size_t i = 0; i < im->n_packed; i++)
        free(im->packed[i]);
    free(im->packed);
    free(im);
    free(be);
}
