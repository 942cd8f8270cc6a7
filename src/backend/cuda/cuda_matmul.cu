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
 * captured in a graph.
 *
 * Q4_1 and Q8_0 weights (the default model's) go through a kernel that repeats the CPU
 * backend's integer products bit for bit (exact_path, below) for decode and prefills of up to
 * CUDA_EXACT_MAX_ROWS tokens. Other integer GGUF weights (Q4_0; Q4_K, Q5_K, Q6_K), and larger
 * Q4_1 / Q8_0 prefills, see their activations quantized the
 * way the CPU backend (and llama.cpp on CPU and CUDA) quantizes them: blocks of 32 to 8 bits
 * (d = amax / 127 kept as f16, q = roundf(x / d)) for the 32-value formats, blocks of 256
 * (Q8_K: d = max / -127 in f32, q = nearest) for the K quants. The products then use q * d in
 * place of x: the same dot products as the CPU's integer kernels up to the order of the float
 * sums. Without it the GPU computed a different (more exact) function, and greedy tokens of the
 * Q4_1 default model agreed with the CPU on 23 of 50 golden prompts (f32 weights: 50 of 50).
 * The quantized prefill then multiplies f16 (not bf16) tiles: q * d and the dequantized weights
 * keep 11 bits there. */
#include "backend/cuda/cuda_kernels.cuh"

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

/* ---- activation quantization (see the top) ---- */

/* 1 for the formats whose products take 8-bit activations in blocks of 32, 2 for 256 */
static int act_quant_of(int f) {
    return f == FMT_Q4_0 || f == FMT_Q4_1 || f == FMT_Q8_0   ? 1
           : f == FMT_Q4_K || f == FMT_Q5_K || f == FMT_Q6_K ? 2
                                                             : 0;
}

/* y = the activations of rows x [rows][k] quantized per block (mode 1: 32, Q8_0; mode 2: 256,
 * Q8_K) and dequantized, as f32 (to_half 0) or f16 (to_half 1, for the prefill GEMM); one
 * thread per block */
__global__ void k_act_quant(const float *x, void *y, int64_t n_blocks, int mode, int to_half) {
    const int64_t b = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (b >= n_blocks) return;
    const int bs = mode == 1 ? 32 : 256;
    const float *xb = x + b * bs;
    float d, id;
    if (mode == 1) {
        float amax = 0.0f;
        for (int i = 0; i < 32; i++)
            amax = fmaxf(amax, fabsf(xb[i]));
        d = amax / 127.0f;
        id = d != 0.0f ? 1.0f / d : 0.0f;
        d = __half2float(__float2half_rn(d));
    } else {
        float amax = 0.0f, mx = 0.0f;
        for (int i = 0; i < 256; i++) {
            const float ax = fabsf(xb[i]);
            if (ax > amax) amax = ax, mx = xb[i];
        }
        id = amax != 0.0f ? -127.0f / mx : 0.0f;
        d = amax != 0.0f ? 1.0f / id : 0.0f;
    }
    for (int i = 0; i < bs; i++) {
        float q = mode == 1 ? roundf(xb[i] * id) : fminf(rintf(id * xb[i]), 127.0f);
        const float v = q * d;
        if (to_half)
            ((__half *)y)[b * bs + i] = __float2half_rn(v);
        else
            ((float *)y)[b * bs + i] = v;
    }
}

/* ---- the matrix-vector kernel ---- */

template <int F, int NR, bool QA>
__global__ void __launch_bounds__(MV_WARPS * 32)
    k_matvec(const uint8_t *wd, const uint8_t *sc, const uint8_t *bi, uint32_t qdtype, int group,
             int64_t n, int64_t k, const float *x, int rows, const float *bias, float *y) {
    /* the generic path's x staging (cuda_stage_x32); none for 16-bit weights */
    __shared__ __align__(16) float s_x[F == FMT_BF16 || F == FMT_F16 ? 1 : MV_WARPS]
                                      [F == FMT_BF16 || F == FMT_F16 ? 4 : CUDA_XSTAGE_FLOATS];
    const int lane = threadIdx.x & 31;
    const int64_t o = (int64_t)blockIdx.x * MV_WARPS + (threadIdx.x >> 5);
    if (o >= n) return;
    const unit_src s = unit_src_of(wd, sc, bi, F, k, qdtype, group, o);
    float acc[NR];
#pragma unroll
    for (int r = 0; r < NR; r++)
        acc[r] = 0.0f;
    const int units = (int)(k / 32);
    if constexpr (F == FMT_BF16 || F == FMT_F16) { /* the coalesced chunks, as k_fmv */
        float unused[NR];
        cuda_mv16_rows<F, NR, false>((const uint4 *)s.row, (const uint4 *)s.row, x, k, rows, NULL,
                                     NULL, 0, 1, acc, unused);
    } else {
        for (int u0 = 0; u0 < units; u0 += 32) { /* 32 units at a time, x staged */
            const int u = u0 + lane;
            float v[32];
            if (u < units) load_unit<F, false>(s, u, v);
#pragma unroll
            for (int r = 0; r < NR; r++) {
                if (r >= rows) break;
                float xv[32];
                cuda_stage_x32(x + (size_t)r * (size_t)k, u0, k, NULL, 0.0f, s_x[threadIdx.x >> 5],
                               xv);
                if (u >= units) continue;
                /* a lane holds a whole 32-block of x: the 8-bit activation of the CPU (see top) */
                if (QA) cuda_fq8_32(xv);
                float d = 0.0f;
#pragma unroll
                for (int i = 0; i < 32; i++)
                    d = fmaf(v[i], xv[i], d);
                acc[r] += d;
            }
        }
    }
#pragma unroll
    for (int r = 0; r < NR; r++) {
        if (r >= rows) break;
        float t = warp_sum(acc[r]);
        if (lane == 0) y[(size_t)r * (size_t)n + (size_t)o] = bias ? t + bias[o] : t;
    }
}

/* ---- the CPU's integer products, exactly (Q4_1 and Q8_0) ----
 *
 * The CPU backend multiplies Q4_1 and Q8_0 weights in its packed 8-row kernels
 * (kernels_avx2.c gemm_q4_1x8_rows / gemm_q8_0x8_rows), whose arithmetic per (row, token) is
 * one chain over the blocks:
 *   acc = fma(f32(d_w) * d_y, (float)sum(q_w q_y), acc);  acc = fma(f32(m_w), s_y, acc)  (Q4_1)
 * with the activations quantized to Q8_1 (d_y = f16(amax / 127) widened, q_y = roundf(x / d),
 * s_y = f16(sum(q_y) * d) widened; Q8_0: d_y only). The integer sums are exact in any order, so
 * a GPU that keeps the chain's order computes the CPU's products bit for bit. Here a warp
 * takes an output row: its lanes compute 32 blocks' integer sums at a time (dp4a) for up to 8
 * tokens, and lane r then runs token r's chain over those blocks from shared memory. Tokens
 * beyond 8 are further grid rows (blockIdx.y), so a prefill of any size is one launch. This
 * replaces the float-dequantizing kernel for these two formats (the default model's): with
 * that one the GPU's greedy tokens matched the CPU's on 22 of 50 golden prompts. */

/* activations in Q8_1 form for the exact kernel: qs [rows][nb][32] int8, then the widened
 * d [rows][nb] and s [rows][nb] floats */
size_t cuda_exact_act_bytes(int64_t rows, int64_t k) {
    return (size_t)rows * (size_t)k + (size_t)rows * (size_t)(k / 32) * 8;
}

__global__ void k_act_q8_1(const float *x, int8_t *qs, float *dy, float *sy, int64_t n_blocks) {
    const int64_t b = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (b >= n_blocks) return;
    float v[32];
    for (int i = 0; i < 32; i++)
        v[i] = x[b * 32 + i];
    cuda_q8_1_block(v, qs + b * 32, dy + b, sy + b);
}

#define EX_NR CUDA_EXACT_NR

template <int F>
__global__ void __launch_bounds__(MV_WARPS * 32)
    k_exact(const uint8_t *wd, int64_t n, int nb, const int8_t *qs, const float *dy,
            const float *sy, int rows, const float *bias, float *y) {
    __shared__ float s_a[MV_WARPS][32][EX_NR], s_b[MV_WARPS][32][EX_NR], s_c[MV_WARPS][32][EX_NR];
    __shared__ float s_m[MV_WARPS][32];
    const int lane = threadIdx.x & 31, wp = threadIdx.x >> 5;
    const int64_t o = (int64_t)blockIdx.x * MV_WARPS + wp;
    if (o >= n) return; /* a whole warp leaves together */
    const int t0 = (int)blockIdx.y * EX_NR;
    const int nt = rows - t0 < EX_NR ? rows - t0 : EX_NR;
    const float acc =
        cuda_exact_row<F>(wd, o, nb, qs, dy, sy, t0, nt, s_a[wp], s_b[wp], s_c[wp], s_m[wp]);
    if (lane < nt)
        y[(size_t)(t0 + lane) * (size_t)n + (size_t)o] = bias ? __fadd_rn(acc, bias[o]) : acc;
}

/* the exact products (see above): 0, or -1 on a CUDA error */
static int exact_path(cuda_impl *im, const sglc_weight *w, int f, const float *x, int64_t rows,
                      const float *bv, float *y) {
    const int64_t nb = w->k / 32;
    if (cuda_scratch_grow(im, &im->actq, &im->actq_bytes, cuda_exact_act_bytes(rows, w->k)))
        return -1;
    int8_t *qs = (int8_t *)im->actq;
    float *dy = (float *)(qs + (size_t)rows * (size_t)w->k), *sy = dy + rows * nb;
    const int64_t nblk = rows * nb;
    k_act_q8_1<<<(unsigned)((nblk + 127) / 128), 128, 0, im->stream>>>(x, qs, dy, sy, nblk);
    if (CUDA_LAUNCHED(im, "activation quantization kernel")) return -1;
    /* grid y takes at most 65,535 groups of EX_NR tokens: larger steps (a deterministic
     * bench_one_batch prefill of 512 x 1,024 tokens) go in several launches */
    const int64_t per = (int64_t)65535 * EX_NR;
    for (int64_t r0 = 0; r0 < rows; r0 += per) {
        const int64_t nr = rows - r0 < per ? rows - r0 : per;
        const dim3 grid((unsigned)((w->n + MV_WARPS - 1) / MV_WARPS),
                        (unsigned)((nr + EX_NR - 1) / EX_NR));
        const int8_t *q0 = qs + (size_t)r0 * (size_t)w->k;
        const float *d0 = dy + r0 * nb, *s0 = sy + r0 * nb;
        float *y0 = y + (size_t)r0 * (size_t)w->n;
        if (f == FMT_Q4_1)
            k_exact<FMT_Q4_1><<<grid, MV_WARPS * 32, 0, im->stream>>>(
                (const uint8_t *)w->dev, w->n, (int)nb, q0, d0, s0, (int)nr, bv, y0);
        else
            k_exact<FMT_Q8_0><<<grid, MV_WARPS * 32, 0, im->stream>>>(
                (const uint8_t *)w->dev, w->n, (int)nb, q0, d0, s0, (int)nr, bv, y0);
        if (CUDA_LAUNCHED(im, "integer product kernel")) return -1;
    }
    return 0;
}

/* 1 when a product of this format and size goes through exact_path: Q4_1 and Q8_0 up to
 * CUDA_EXACT_MAX_ROWS tokens (decode and short prefills), any size when deterministic; larger
 * prefills take the dequantized tensor-core GEMM, which is faster there */
int cuda_exact_rows(const cuda_impl *im, int f, int64_t rows) {
    return (f == FMT_Q4_1 || f == FMT_Q8_0) && (rows <= CUDA_EXACT_MAX_ROWS || im->deterministic);
}

int cuda_matvec_rows(const cuda_impl *im, int f, int64_t rows) {
    if (im->deterministic) return 1;
    return rows <= (f <= FMT_BF16 ? CUDA_FLOAT_MATVEC_MAX_ROWS : CUDA_MATVEC_MAX_ROWS);
}

/* ---- the cuBLAS path ---- */

template <int F>
__global__ void k_dequant_tile(const uint8_t *wd, const uint8_t *sc, const uint8_t *bi,
                               uint32_t qdtype, int group, int64_t k, int64_t o0, int64_t n_rows,
                               __nv_bfloat16 *tile, int to_half) {
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
            if (to_half) {
                __half2 p = __floats2half2_rn(v[8 * q + 2 * j], v[8 * q + 2 * j + 1]);
                w[j] = *(uint32_t *)&p;
            } else {
                __nv_bfloat162 p = __floats2bfloat162_rn(v[8 * q + 2 * j], v[8 * q + 2 * j + 1]);
                w[j] = *(uint32_t *)&p;
            }
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
    const int aq = act_quant_of(f);
    /* f16 for F16 weights and for the quantized formats (their 8-bit activations and
     * dequantized weights keep 11 bits), bf16 for BF16 weights */
    const int bf16 = f != FMT_F16 && !aq;
    const size_t act = (size_t)rows * (size_t)w->k * 2;
    if (cuda_scratch_grow(im, &im->act16, &im->act16_bytes, act)) return;
    if (aq) {
        const int64_t nb = rows * w->k / (aq == 1 ? 32 : 256);
        k_act_quant<<<(unsigned)((nb + 127) / 128), 128, 0, im->stream>>>(x, im->act16, nb, aq, 1);
    } else {
        k_to_16<<<grid_for(im, rows * w->k), 256, 0, im->stream>>>(x, im->act16, rows * w->k, bf16);
    }
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
                (__nv_bfloat16 *)im->wtile, aq != 0);
        });
        if (CUDA_LAUNCHED(im, "dequantize tile kernel")) return;
        const cudaDataType_t tq = aq ? CUDA_R_16F : CUDA_R_16BF; /* MLX affine: bf16 */
        if (CUBLAS_CHECK(im, cublasGemmEx(im->cublas, CUBLAS_OP_T, CUBLAS_OP_N, (int)nr, m_rows, k,
                                          &one, im->wtile, tq, k, im->act16, tq, k, &zero, y + o0,
                                          CUDA_R_32F, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT)))
            return;
    }
}

/* the matrix-vector path for up to CUDA_MATVEC_MAX_ROWS rows; 0, or -1 on a CUDA error */
static int matvec(cuda_impl *im, const sglc_weight *w, int f, const float *x, int64_t rows,
                  const float *bv, float *y) {

    const unsigned blocks = (unsigned)((w->n + MV_WARPS - 1) / MV_WARPS);
    const int nr = (int)rows;
    const int aq = act_quant_of(f);
    const float *xin = x;
    if (aq == 2) { /* Q8_K blocks span 8 lanes' units: quantized by a kernel first */
        const int64_t nb = rows * w->k / 256;
        if (cuda_scratch_grow(im, &im->actq, &im->actq_bytes, (size_t)(rows * w->k) * 4)) return -1;
        k_act_quant<<<(unsigned)((nb + 127) / 128), 128, 0, im->stream>>>(x, im->actq, nb, 2, 0);
        if (CUDA_LAUNCHED(im, "activation quantization kernel")) return -1;
        xin = (const float *)im->actq;
    }
    fmt_dispatch(f, [&](auto tag) {
        constexpr int F = decltype(tag)::value;
        constexpr bool QA = F == FMT_Q4_0 || F == FMT_Q4_1 || F == FMT_Q8_0;
        const uint8_t *wd = (const uint8_t *)w->dev, *sc = (const uint8_t *)w->q_scales_dev,
                      *bi = (const uint8_t *)w->q_biases_dev;
#define MV(NR)                                                                                     \
    k_matvec<F, NR, QA><<<blocks, MV_WARPS * 32, 0, im->stream>>>(                                 \
        wd, sc, bi, w->q_dtype, w->q_group, w->n, w->k, xin, nr, bv, y)
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
    return CUDA_LAUNCHED(im, "matrix-vector kernel") ? -1 : 0;
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
    if (w->k % 32 == 0 && cuda_exact_rows(im, f, rows)) {
        exact_path(im, w, f, x, rows, bv, y);
        return;
    }
    if (vec_ok && cuda_matvec_rows(im, f, rows)) {
        /* deterministic: 8 rows at a time through the same kernel, whose per-row arithmetic
         * does not depend on how many rows it runs */
        for (int64_t r0 = 0; r0 < rows; r0 += CUDA_MATVEC_MAX_ROWS) {
            const int64_t nr = rows - r0 < CUDA_MATVEC_MAX_ROWS ? rows - r0 : CUDA_MATVEC_MAX_ROWS;
            if (matvec(im, w, f, x + r0 * w->k, nr, bv, y + r0 * w->n)) return;
        }
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
                   const sglc_weight *const *bias, const float *x, int64_t rows, float *const *y) {
    for (int i = 0; i < n; i++)
        cuda_matmul(be, w[i], bias ? bias[i] : NULL, x, rows, y[i]);
}
