/* Matmuls y[t] = W x[t] (+ bias) on the GPU, for every weight format of the CPU backend.
 *
 * Decode (rows <= CUDA_MATVEC_MAX_ROWS): our matrix-vector kernel, one warp per output row,
 * each lane taking 32-value units of the row (cuda_formats.cuh: a few 16-byte or 2/4-byte
 * loads per unit, whole blocks, the file's layout) and dotting them with up to 8 activation
 * rows in f32; a weight byte is read once per call. Memory bound, as decode is.
 * Prefill (more rows): cuBLAS. F32 weights through SGEMM in full f32; F16/BF16 weights with the
 * activations converted to the weight's type in a staging buffer (f32 accumulate); quantized
 * weights are dequantized to a bf16 tile of output rows at a time (at most CUDA_WTILE_MAX_ELEMS)
 * and multiplied as BF16. Every buffer is reserved beforehand (reserve), so both paths can be
 * captured in a graph. */
#include "backend/cuda/cuda_impl.h"
#include "backend/cuda/cuda_formats.cuh"

#define MV_WARPS 4

int cuda_matmul_supports(uint32_t type) {
    return type == SGLC_WTYPE_MLX_AFFINE || fmt_of(type, 0) >= 0;
}

static int fmt_of_w(const sglc_weight *w) {
    return fmt_of(w->type, w->q_bits);
}

static int is_quant(int f) {
    return f >= FMT_Q4_0;
}

void cuda_matmul_scratch(const sglc_weight *w, int64_t rows, size_t *act, size_t *tile) {
    int f = fmt_of_w(w);
    *act = 0;
    *tile = 0;
    if (f < 0 || f == FMT_F32) return;
    *act = (size_t)rows * (size_t)w->k * 2;
    if (is_quant(f)) {
        int64_t e = w->n * w->k;
        if (e > CUDA_WTILE_MAX_ELEMS) e = CUDA_WTILE_MAX_ELEMS;
        if (e < w->k) e = w->k;
        *tile = (size_t)e * 2;
    }
}

/* ---- the matrix-vector kernel ---- */

template <int F, int NR>
__global__ void __launch_bounds__(MV_WARPS * 32)
    k_matvec(const uint8_t *wd, const uint8_t *sc, const uint8_t *bi, uint32_t qdtype, int group,
             int64_t n, int64_t k, const float *x, int rows, const float *bias, float *y) {
    const int lane = threadIdx.x & 31;
    const int64_t o = (int64_t)blockIdx.x * MV_WARPS + (threadIdx.x >> 5);
    if (o >= n) return;
    const unit_src s = unit_src_of(wd, sc, bi, F, k, qdtype, group, o);
    float acc[NR];
#pragma unroll
    for (int r = 0; r < NR; r++)
        acc[r] = 0.0f;
    const int units = (int)(k / 32);
    for (int u = lane; u < units; u += 32) {
        float v[32];
        load_unit<F, false>(s, u, v);
#pragma unroll
        for (int r = 0; r < NR; r++) {
            if (r >= rows) break;
            const float4 *xp = (const float4 *)(x + (size_t)r * (size_t)k + (size_t)u * 32);
            float d = 0.0f;
#pragma unroll
            for (int i = 0; i < 8; i++) {
                float4 a = xp[i];
                d = fmaf(v[4 * i], a.x, d);
                d = fmaf(v[4 * i + 1], a.y, d);
                d = fmaf(v[4 * i + 2], a.z, d);
                d = fmaf(v[4 * i + 3], a.w, d);
            }
            acc[r] += d;
        }
    }
#pragma unroll
    for (int r = 0; r < NR; r++) {
        if (r >= rows) break;
        float t = warp_sum(acc[r]);
        if (lane == 0) y[(size_t)r * (size_t)n + (size_t)o] = bias ? t + bias[o] : t;
    }
}

/* ---- the cuBLAS path ---- */

template <int F>
__global__ void k_dequant_tile(const uint8_t *wd, const uint8_t *sc, const uint8_t *bi,
                               uint32_t qdtype, int group, int64_t k, int64_t o0, int64_t n_rows,
                               __nv_bfloat16 *tile) {
    const int64_t units = k / 32;
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n_rows * units) return;
    const int64_t r = i / units;
    const int u = (int)(i % units);
    const unit_src s = unit_src_of(wd, sc, bi, F, k, qdtype, group, o0 + r);
    float v[32];
    load_unit<F, false>(s, u, v);
    uint4 *dst = (uint4 *)(tile + (size_t)r * (size_t)k + (size_t)u * 32);
#pragma unroll
    for (int q = 0; q < 4; q++) {
        uint32_t w[4];
#pragma unroll
        for (int j = 0; j < 4; j++) {
            __nv_bfloat162 p = __floats2bfloat162_rn(v[8 * q + 2 * j], v[8 * q + 2 * j + 1]);
            w[j] = *(uint32_t *)&p;
        }
        dst[q] = make_uint4(w[0], w[1], w[2], w[3]);
    }
}

__global__ void k_to_16(const float *x, void *out, int64_t n, int bf16) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        if (bf16)
            ((__nv_bfloat16 *)out)[i] = __float2bfloat16_rn(x[i]);
        else
            ((__half *)out)[i] = __float2half_rn(x[i]);
    }
}

__global__ void k_add_bias(float *y, const float *bias, int64_t n, int64_t rows) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n * rows;
         i += (int64_t)gridDim.x * blockDim.x)
        y[i] += bias[i % n];
}

static unsigned grid_for(const cuda_impl *im, int64_t n) {
    int64_t b = (n + 255) / 256, cap = (int64_t)im->n_sm * 16;
    return (unsigned)(b < 1 ? 1 : b > cap ? cap : b);
}

static void gemm_path(cuda_impl *im, const sglc_weight *w, int f, const float *x, int64_t rows,
                      float *y) {
    const int m_rows = (int)rows, n = (int)w->n, k = (int)w->k;
    const float one = 1.0f, zero = 0.0f;
    if (f == FMT_F32) {
        CUBLAS_CHECK(im, cublasSgemm(im->cublas, CUBLAS_OP_T, CUBLAS_OP_N, n, m_rows, k, &one,
                                     (const float *)w->dev, k, x, k, &zero, y, n));
        return;
    }
    const int bf16 = f != FMT_F16;
    const size_t act = (size_t)rows * (size_t)w->k * 2;
    if (cuda_scratch_grow(im, &im->act16, &im->act16_bytes, act)) return;
    k_to_16<<<grid_for(im, rows * w->k), 256, 0, im->stream>>>(x, im->act16, rows * w->k, bf16);
    if (CUDA_LAUNCHED(im, "activation conversion kernel")) return;
    const cudaDataType_t t16 = bf16 ? CUDA_R_16BF : CUDA_R_16F;
    if (!is_quant(f)) {
        CUBLAS_CHECK(im, cublasGemmEx(im->cublas, CUBLAS_OP_T, CUBLAS_OP_N, n, m_rows, k, &one,
                                      w->dev, t16, k, im->act16, t16, k, &zero, y, CUDA_R_32F, n,
                                      CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
        return;
    }
    size_t tile_need = 0, act_need = 0;
    cuda_matmul_scratch(w, rows, &act_need, &tile_need);
    if (cuda_scratch_grow(im, &im->wtile, &im->wtile_bytes, tile_need)) return;
    const int64_t per = (int64_t)(im->wtile_bytes / 2) / w->k; /* output rows per tile */
    for (int64_t o0 = 0; o0 < w->n; o0 += per) {
        const int64_t nr = w->n - o0 < per ? w->n - o0 : per;
        const int64_t threads = nr * (w->k / 32);
        fmt_dispatch(f, [&](auto tag) {
            constexpr int F = decltype(tag)::value;
            k_dequant_tile<F><<<(unsigned)((threads + 255) / 256), 256, 0, im->stream>>>(
                (const uint8_t *)w->dev, (const uint8_t *)w->q_scales_dev,
                (const uint8_t *)w->q_biases_dev, w->q_dtype, w->q_group, w->k, o0, nr,
                (__nv_bfloat16 *)im->wtile);
        });
        if (CUDA_LAUNCHED(im, "dequantize tile kernel")) return;
        if (CUBLAS_CHECK(im, cublasGemmEx(im->cublas, CUBLAS_OP_T, CUBLAS_OP_N, (int)nr, m_rows,
                                          k, &one, im->wtile, CUDA_R_16BF, k, im->act16,
                                          CUDA_R_16BF, k, &zero, y + o0, CUDA_R_32F, n,
                                          CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT)))
            return;
    }
}

void cuda_matmul(sglc_backend *be, const sglc_weight *w, const sglc_weight *bias, const float *x,
                 int64_t rows, float *y) {
    cuda_impl *im = cuda_impl_of(be);
    if (CUDA_OP_BEGIN(im, CUDA_OP_MATMUL, U64(w->dev), U64(bias ? bias->dev : NULL), U64(x),
                      (uint64_t)rows, U64(y)))
        return;
    if (rows <= 0) return;
    const int f = fmt_of_w(w);
    SGLC_ASSERT(f >= 0 && w->dev);
    SGLC_ASSERT(w->n <= INT32_MAX && w->k <= INT32_MAX && rows <= INT32_MAX);
    const float *bv = NULL;
    if (bias) {
        SGLC_ASSERT(bias->type == SGLC_GGML_TYPE_F32 && bias->k == w->n);
        bv = (const float *)bias->dev;
    }
    const int vec_ok = w->k % 32 == 0 && ((uintptr_t)x & 15) == 0;
    if (rows <= CUDA_MATVEC_MAX_ROWS && vec_ok) {
        const unsigned blocks = (unsigned)((w->n + MV_WARPS - 1) / MV_WARPS);
        const int nr = (int)rows;
        fmt_dispatch(f, [&](auto tag) {
            constexpr int F = decltype(tag)::value;
            const uint8_t *wd = (const uint8_t *)w->dev, *sc = (const uint8_t *)w->q_scales_dev,
                          *bi = (const uint8_t *)w->q_biases_dev;
#define MV(NR)                                                                                     \
    k_matvec<F, NR><<<blocks, MV_WARPS * 32, 0, im->stream>>>(wd, sc, bi, w->q_dtype, w->q_group,  \
                                                              w->n, w->k, x, nr, bv, y)
            if (nr == 1)
                MV(1);
            else if (nr == 2)
                MV(2);
            else if (nr <= 4)
                MV(4);
            else
                MV(8);
#undef MV
        });
        CUDA_LAUNCHED(im, "matrix-vector kernel");
        return;
    }
    gemm_path(im, w, f, x, rows, y);
    if (bv) {
        k_add_bias<<<grid_for(im, w->n * rows), 256, 0, im->stream>>>(y, bv, w->n, rows);
        CUDA_LAUNCHED(im, "bias kernel");
    }
}

/* TODO(issue 14): one launch for q/k/v and gate/up (a grid over the concatenated outputs, the
 * activations converted once for the cuBLAS path); for now n separate products, which give
 * the identical results the interface requires. */
void cuda_matmul_n(sglc_backend *be, int n, const sglc_weight *const *w,
                   const sglc_weight *const *bias, const float *x, int64_t rows,
                   float *const *y) {
    for (int i = 0; i < n; i++)
        cuda_matmul(be, w[i], bias ? bias[i] : NULL, x, rows, y[i]);
}
