/* The small ops: embed (every table format, token_src/prev_ids), rmsnorm, silu_mul, add and
 * gather_rows. Each computes what cpu_backend.c computes, with the same float operations
 * written as round-to-nearest intrinsics (no fused multiply-add), so embed and rmsnorm match
 * the CPU to the last bit except where the CPU sums in a different order. */
#include "backend/cuda/cuda_kernels.cuh"

#define NORM_THREADS 256

/* ---- embed ---- */

__device__ __forceinline__ int32_t token_of(const sglc_batch_dev &b, int t) {
    int32_t src = b.token_src[t];
    return src >= 0 ? b.prev_ids[src] : b.tokens[t];
}

template <int F>
__global__ void k_embed(const uint8_t *tab, const uint8_t *sc, const uint8_t *bi, int64_t n,
                        int64_t k, uint32_t qdtype, int group, sglc_batch_dev b, float *out) {
    const int t = blockIdx.x;
    const int32_t id = token_of(b, t);
    float *o = out + (size_t)t * (size_t)k;
    if (id < 0 || id >= n) { /* a broken invariant the model checks on the host: make it loud */
        for (int64_t i = threadIdx.x; i < k; i += blockDim.x)
            o[i] = __int_as_float(0x7fc00000);
        return;
    }
    unit_src s = unit_src_of(tab, sc, bi, F, k, qdtype, group, id);
    for (int u = threadIdx.x; u < (int)(k / 32); u += blockDim.x) {
        float v[32];
        load_unit<F, true>(s, u, v);
#pragma unroll
        for (int l = 0; l < 32; l++)
            o[u * 32 + l] = v[l];
    }
}

/* float tables whose rows are not whole units */
__global__ void k_embed_float(const uint8_t *tab, int fmt, int64_t n, int64_t k, sglc_batch_dev b,
                              float *out) {
    const int t = blockIdx.x;
    const int32_t id = token_of(b, t);
    float *o = out + (size_t)t * (size_t)k;
    for (int64_t i = threadIdx.x; i < k; i += blockDim.x) {
        if (id < 0 || id >= n) {
            o[i] = __int_as_float(0x7fc00000);
            continue;
        }
        size_t e = (size_t)id * (size_t)k + (size_t)i;
        o[i] = fmt == FMT_F32   ? ((const float *)tab)[e]
               : fmt == FMT_F16 ? h2f(((const uint16_t *)tab)[e])
                                : bf2f(((const uint16_t *)tab)[e]);
    }
}

void cuda_embed(sglc_backend *be, const sglc_weight *w, const sglc_batch *b, float *out) {
    cuda_impl *im = cuda_impl_of(be);
    if (CUDA_OP_BEGIN(im, CUDA_OP_EMBED, U64(w->dev), U64(b->tokens), U64(b->token_src),
                      U64(b->prev_ids), (uint64_t)b->n_tokens, U64(out)))
        return;
    if (b->n_tokens <= 0) return;
    const int fmt = fmt_of(w->type, w->q_bits);
    SGLC_ASSERT(fmt >= 0);
    sglc_batch_dev db = batch_dev_of(b);
    const uint8_t *tab = (const uint8_t *)w->dev;
    if (fmt <= FMT_BF16 && w->k % 32 != 0) {
        k_embed_float<<<b->n_tokens, 128, 0, im->stream>>>(tab, fmt, w->n, w->k, db, out);
    } else {
        fmt_dispatch(fmt, [&](auto tag) {
            constexpr int F = decltype(tag)::value;
            k_embed<F><<<b->n_tokens, 128, 0, im->stream>>>(tab, (const uint8_t *)w->q_scales_dev,
                                                            (const uint8_t *)w->q_biases_dev, w->n,
                                                            w->k, w->q_dtype, w->q_group, db, out);
        });
    }
    CUDA_LAUNCHED(im, "embed kernel");
}

/* ---- rmsnorm ---- */

__global__ void k_rmsnorm(const float *x, const float *w, float *y, int64_t dim, float eps) {
    __shared__ double sh[32];
    const float *xr = x + (size_t)blockIdx.x * (size_t)dim;
    float *yr = y + (size_t)blockIdx.x * (size_t)dim;
    double ss = 0.0;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x)
        ss += (double)__fmul_rn(xr[i], xr[i]);
    /* as the CPU: squares in float, summed in double, the mean rounded to float */
    const float scale = cuda_rms_scale(block_sum(ss, sh), dim, eps);
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x)
        yr[i] = __fmul_rn(__fmul_rn(xr[i], scale), w[i]);
}

void cuda_rmsnorm(sglc_backend *be, const float *x, const sglc_weight *w, float *y, int64_t rows,
                  int64_t dim, float eps) {
    cuda_impl *im = cuda_impl_of(be);
    SGLC_ASSERT(w->type == SGLC_GGML_TYPE_F32 && w->k == dim);
    union {
        float f;
        uint32_t u;
    } e = {eps};
    if (CUDA_OP_BEGIN(im, CUDA_OP_RMSNORM, U64(x), U64(w->dev), U64(y), (uint64_t)rows,
                      (uint64_t)dim, (uint64_t)e.u))
        return;
    if (rows <= 0) return;
    int threads = dim >= NORM_THREADS ? NORM_THREADS : (int)((dim + 31) / 32 * 32);
    k_rmsnorm<<<(unsigned)rows, threads, 0, im->stream>>>(x, (const float *)w->dev, y, dim, eps);
    CUDA_LAUNCHED(im, "rmsnorm kernel");
}

/* ---- elementwise ---- */

__global__ void k_silu_mul(const float *g, const float *u, float *o, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        o[i] = cuda_silu_times(g[i], u[i]);
    }
}

__global__ void k_add(float *x, const float *y, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        x[i] = __fadd_rn(x[i], y[i]);
}

static unsigned elt_blocks(const cuda_impl *im, int64_t n) {
    int64_t b = (n + 255) / 256, cap = (int64_t)im->n_sm * 16;
    return (unsigned)(b < 1 ? 1 : b > cap ? cap : b);
}

void cuda_silu_mul(sglc_backend *be, const float *gate, const float *up, float *out, int64_t n) {
    cuda_impl *im = cuda_impl_of(be);
    if (CUDA_OP_BEGIN(im, CUDA_OP_SILU_MUL, U64(gate), U64(up), U64(out), (uint64_t)n)) return;
    if (n <= 0) return;
    k_silu_mul<<<elt_blocks(im, n), 256, 0, im->stream>>>(gate, up, out, n);
    CUDA_LAUNCHED(im, "silu_mul kernel");
}

void cuda_add(sglc_backend *be, float *x, const float *y, int64_t n) {
    cuda_impl *im = cuda_impl_of(be);
    if (CUDA_OP_BEGIN(im, CUDA_OP_ADD, U64(x), U64(y), (uint64_t)n)) return;
    if (n <= 0) return;
    k_add<<<elt_blocks(im, n), 256, 0, im->stream>>>(x, y, n);
    CUDA_LAUNCHED(im, "add kernel");
}

/* ---- gather_rows ---- */

__global__ void k_gather(const float *src, const int32_t *rows, int64_t dim, float *dst) {
    cuda_pdl_wait();
    const float *s = src + (size_t)rows[blockIdx.x] * (size_t)dim;
    float *d = dst + (size_t)blockIdx.x * (size_t)dim;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x)
        d[i] = s[i];
}

void cuda_gather_rows(sglc_backend *be, const float *src, const int32_t *rows, int32_t n_rows,
                      int64_t dim, float *dst) {
    cuda_impl *im = cuda_impl_of(be);
    if (CUDA_OP_BEGIN(im, CUDA_OP_GATHER, U64(src), U64(rows), (uint64_t)n_rows, (uint64_t)dim,
                      U64(dst)))
        return;
    if (n_rows <= 0) return;
    cuda_launch(im, k_gather, dim3((unsigned)n_rows), dim3(256), src, rows, dim, dst);
    CUDA_LAUNCHED(im, "gather_rows kernel");
}
