/* The fused decode ops (backend.h norm_matmul_n, matmul_add, qk_norm_rope_kv): a decode step
 * of a small model is bound by the gaps between its kernels, not by their bytes (a Qwen3-0.6B
 * step with 18 launches per layer ran at 14 % of the read-every-byte floor), so these fold
 * each layer's ops into a few launches:
 *   rmsnorm + q/k/v products            one matrix-vector launch over the concatenated rows,
 *                                       each block normalizing the activations it reads
 *   rmsnorm + gate/up + silu * up       one launch: a warp computes a gate row and its up
 *                                       row and writes silu(g) * u
 *   product + residual add              the product's epilogue adds into the residual
 *   q/k head norms + RoPE + KV write    one launch over the heads of q, k and v
 * Steps of more than CUDA_MATVEC_MAX_ROWS tokens (prefill), K-quant weights and
 * --enable-deterministic-inference run the op sequence instead (the CPU-parity kernels). The
 * fused arithmetic is the sequence's up to the order of the norm's sum of squares. */
#include "backend/cuda/cuda_kernels.cuh"

#define FMV_WARPS 4

enum { EPI_STORE = 0, EPI_GLU = 1, EPI_ADD = 2 };

/* up to three matrices of one format and k, their outputs concatenated */
struct mv_mats {
    const uint8_t *wd[3], *sc[3], *bi[3];
    const float *bias[3];
    float *y[3];
    int64_t n[3];
    int nmat;
};

/* 1/rms of each of the rows (< NR) of x, into inv, by the whole block (float4 loads; k a
 * multiple of 4); squares in float, summed in double, as cuda_rmsnorm (the order of the sum
 * differs). Ends with a barrier. */
template <int NR>
__device__ __forceinline__ void block_inv_rms(const float *x, int rows, int64_t k, float eps,
                                              float *inv, double (*red)[FMV_WARPS]) {
    const int lane = threadIdx.x & 31, wp = threadIdx.x >> 5;
    double ss[NR];
#pragma unroll
    for (int r = 0; r < NR; r++)
        ss[r] = 0.0;
    const int64_t k4 = k / 4;
#pragma unroll
    for (int r = 0; r < NR; r++) {
        if (r >= rows) break;
        const float4 *xr = (const float4 *)(x + (size_t)r * (size_t)k);
#pragma unroll 4
        for (int64_t i = threadIdx.x; i < k4; i += blockDim.x) {
            const float4 a = xr[i];
            ss[r] += (double)__fmul_rn(a.x, a.x) + (double)__fmul_rn(a.y, a.y) +
                     (double)__fmul_rn(a.z, a.z) + (double)__fmul_rn(a.w, a.w);
        }
        ss[r] = warp_sum(ss[r]);
        if (lane == 0) red[r][wp] = ss[r];
    }
    __syncthreads();
    if (threadIdx.x < NR && (int)threadIdx.x < rows) {
        double t = 0.0;
        for (int w = 0; w < FMV_WARPS; w++)
            t += red[threadIdx.x][w];
        inv[threadIdx.x] = cuda_rms_scale(t, k, eps);
    }
    __syncthreads();
}

/* the same for one row by one warp (k a multiple of 4) */
__device__ __forceinline__ float warp_inv_rms(const float *x, int64_t k, float eps) {
    const float4 *xr = (const float4 *)x;
    double ss = 0.0;
#pragma unroll 4
    for (int64_t i = threadIdx.x & 31; i < k / 4; i += 32) {
        const float4 a = xr[i];
        ss += (double)__fmul_rn(a.x, a.x) + (double)__fmul_rn(a.y, a.y) +
              (double)__fmul_rn(a.z, a.z) + (double)__fmul_rn(a.w, a.w);
    }
    return cuda_rms_scale(warp_sum(ss), k, eps);
}

#define silu_times cuda_silu_times

/* one output of the fused products: y[r][o] of matrix mi = a (+ bias) (EPI_ADD: added to y),
 * or EPI_GLU: y[0][r][o] = silu(a) * a2 (a the gate row's, a2 the up row's) */
template <int EPI, typename O> /* O: the caller's row index type (int or int64_t) */
__device__ __forceinline__ void fmv_store(const mv_mats &m, int mi, O o, int r, float a, float a2) {
    if (EPI == EPI_GLU) {
        m.y[0][(size_t)r * (size_t)m.n[0] + (size_t)o] = silu_times(a, a2);
        return;
    }
    float t = a;
    if (m.bias[mi]) t = __fadd_rn(t, m.bias[mi][o]);
    float *yp = m.y[mi] + (size_t)r * (size_t)m.n[mi] + (size_t)o;
    *yp = EPI == EPI_ADD ? __fadd_rn(*yp, t) : t;
}

/* the matrix-vector kernel of cuda_matmul.cu with a norm prologue (g != NULL) and an
 * epilogue: wpr warps (1, 2 or 4) per output row of the concatenation (EPI_GLU: per gate row,
 * with its up row), each lane taking 32-value units; with wpr > 1 the warps of a row split its
 * units and add their sums in a fixed order, so a small matrix still has enough loads in
 * flight to fill the GPU (one warp per row of a 1024-row matrix left it at 0.7 TB/s) */
/* 16-bit weights run 8 blocks (32 warps) per SM at 1 token (64 registers, no spills), 3
 * at 8 tokens; the generic path keeps its registers */
constexpr int fmv_min_blocks(int f, int nr) {
    return f == FMT_BF16 || f == FMT_F16 ? (nr <= 1 ? 8 : nr <= 2 ? 5 : nr <= 4 ? 4 : 3) : 1;
}

template <int F, int NR, bool QA, int EPI>
__global__ void __launch_bounds__(FMV_WARPS * 32, fmv_min_blocks(F, NR))
    k_fmv(mv_mats m, uint32_t qdtype, int group, int64_t k, const float *x, int rows,
          const float *g, float eps, int wpr) {
    __shared__ float s_inv[NR];
    __shared__ double s_red[NR][FMV_WARPS];
    __shared__ float s_part[FMV_WARPS][NR][2];
    /* the generic path's x staging (cuda_stage_x32); none for 16-bit weights */
    __shared__ __align__(16) float s_x[F == FMT_BF16 || F == FMT_F16 ? 1 : FMV_WARPS]
                                      [F == FMT_BF16 || F == FMT_F16 ? 4 : CUDA_XSTAGE_FLOATS];
    const int lane = threadIdx.x & 31, wp = threadIdx.x >> 5;
    const int sub = wp % wpr; /* this warp's share of the row */
    int64_t o = (int64_t)blockIdx.x * (FMV_WARPS / wpr) + wp / wpr;
    int mi = 0;
    while (EPI != EPI_GLU && mi < m.nmat - 1 && o >= m.n[mi])
        o -= m.n[mi++];
    const bool live = o < m.n[mi];
    if (live) { /* the weights first (cuda_prefetch_span): they do not wait for x */
        const size_t rb = fmt_row_bytes(F, k);
        cuda_prefetch_span(m.wd[mi] + (size_t)o * rb, rb, sub, wpr);
        if (EPI == EPI_GLU) cuda_prefetch_span(m.wd[1] + (size_t)o * rb, rb, sub, wpr);
    }
    cuda_pdl_wait();
    cuda_pdl_trigger();
    if (g) block_inv_rms<NR>(x, rows, k, eps, s_inv, s_red);
    float acc[NR], acc2[NR];
#pragma unroll
    for (int r = 0; r < NR; r++)
        acc[r] = 0.0f, acc2[r] = 0.0f;
    if (live) {
        const unit_src s = unit_src_of(m.wd[mi], m.sc[mi], m.bi[mi], F, k, qdtype, group, o);
        unit_src s2 = s;
        if (EPI == EPI_GLU) s2 = unit_src_of(m.wd[1], m.sc[1], m.bi[1], F, k, qdtype, group, o);
        const int units = (int)(k / 32);
        if constexpr (F == FMT_BF16 || F == FMT_F16) {
            /* the 8-value chunks of cuda_mv16_rows (coalesced; its loads fit 64 registers and
             * 32 warps per SM), this warp taking its share of the row's chunks */
            cuda_mv16_rows<F, NR, EPI == EPI_GLU>((const uint4 *)s.row, (const uint4 *)s2.row, x, k,
                                                  rows, g, s_inv, sub, wpr, acc, acc2);
        } else {
            /* the warp's 32 units at a time, x staged per row (cuda_stage_x32) */
            for (int u0 = sub * 32; u0 < units; u0 += 32 * wpr) {
                const int u = u0 + lane;
                const bool on = u < units;
                float v[32], v2[32];
                if (on) {
                    load_unit<F, false>(s, u, v);
                    if (EPI == EPI_GLU) load_unit<F, false>(s2, u, v2);
                }
#pragma unroll
                for (int r = 0; r < NR; r++) {
                    if (r >= rows) break;
                    float xv[32];
                    cuda_stage_x32(x + (size_t)r * (size_t)k, u0, k, g, g ? s_inv[r] : 0.0f,
                                   s_x[wp], xv);
                    if (!on) continue;
                    if (QA) cuda_fq8_32(xv);
                    float d = 0.0f, d2 = 0.0f;
#pragma unroll
                    for (int i = 0; i < 32; i++) {
                        d = fmaf(v[i], xv[i], d);
                        if (EPI == EPI_GLU) d2 = fmaf(v2[i], xv[i], d2);
                    }
                    acc[r] += d;
                    if (EPI == EPI_GLU) acc2[r] += d2;
                }
            }
        }
    }
#pragma unroll
    for (int r = 0; r < NR; r++) {
        acc[r] = warp_sum(acc[r]);
        if (EPI == EPI_GLU) acc2[r] = warp_sum(acc2[r]);
    }
    if (wpr > 1) { /* the row's warps add up in warp order */
        if (lane == 0)
#pragma unroll
            for (int r = 0; r < NR; r++)
                s_part[wp][r][0] = acc[r], s_part[wp][r][1] = acc2[r];
        __syncthreads();
        if (sub != 0) return;
#pragma unroll
        for (int r = 0; r < NR; r++)
            for (int w = 1; w < wpr; w++) {
                acc[r] += s_part[wp + w][r][0];
                acc2[r] += s_part[wp + w][r][1];
            }
    }
    if (!live || lane != 0) return;
#pragma unroll
    for (int r = 0; r < NR; r++) {
        if (r >= rows) break;
        fmv_store<EPI>(m, mi, o, r, acc[r], acc2[r]);
    }
}

/* ---- the streaming form for 16-bit weights ----
 *
 * k_fmv above gives each block a few rows and ends: at the 8B shape a warp's whole life was 4-8
 * rounds of loads, each waiting out the memory's latency with nothing else in flight, plus
 * the block's own norm (its sum of squares over all of x, then two barriers) repeated by every
 * one of the thousands of blocks; the last partial wave of blocks left SMs idle. Here a grid
 * that fits on the GPU at once (blocks per SM from the occupancy calculator) loops over the
 * rows: a block takes row groups it = blockIdx.x, + gridDim.x, ..., each warp a row share
 * (sub of wpr, as k_fmv), so the norm is computed once per block and, with g, x * inv * g is
 * staged once in shared memory when it fits. Each warp streams its rows' chunks in rounds of
 * U per lane (U / 2 of each row with GLU), the next round's loads issued before the current
 * round is used, across row ends too, so loads stay in flight while a row's sums are reduced
 * and stored (80 registers, 6 blocks per SM at one token). A form that kept the rounds in a
 * cp.async ring in shared memory (5 rounds in flight without registers) was slower: the ring
 * left room for 3 blocks per SM, and 12 warps could not hide the rest (8B decode 7.57 ms
 * against 5.07, BENCHMARKS.md session 13). The chunks and their fma chains are k_fmv's
 * (cuda_mv16_chunk, same order); wpr is chosen so the row groups fill whole waves of the
 * grid. */
#define FMV16_STAGE_MAX_BYTES (32 * 1024)
#define FMV16_U 4 /* chunks a lane per round */

/* where float4 L of a row of x sits in k_fmvq's staging (B-bit codes: F4 = 32 / B float4s a
 * 16-byte chunk c): the chunk's float4s rotated by c (4 bits: c % 8; 8 bits: c / 2 % 4), so
 * the 8 lanes of a quarter warp, reading float4 j of 8 consecutive chunks, hit 8 different
 * bank groups (unrotated, a 128- or 64-byte stride puts them on one or two) */
template <int B> __device__ __forceinline__ int64_t fmvq_swz(int64_t L) {
    constexpr int F4 = 32 / B;
    const int64_t c = L / F4;
    return c * F4 + ((L % F4) ^ ((c / (8 / F4)) & (F4 - 1)));
}

/* xs [rows][k] = x * inv * g (x itself without g), the rounding of the per-chunk form, by the
 * whole block in float4s, four loads of x and of g issued before the first is used (a scalar
 * loop waited out one L2 trip per value: 16 us of the 8B q/k/v kernel's 33); SWZ_B > 0: at
 * fmvq_swz<SWZ_B>'s places (k a multiple of 32); ends with a barrier */
template <int SWZ_B = 0>
__device__ __forceinline__ void fmv16_stage_x(const float *x, int rows, int64_t k, const float *g,
                                              const float *inv, float *xs) {
    const int64_t k4 = k / 4;
    for (int r = 0; r < rows; r++) {
        const float4 *xr = (const float4 *)(x + (size_t)r * (size_t)k);
        float4 *dst = (float4 *)(xs + (size_t)r * (size_t)k);
        for (int64_t i0 = threadIdx.x; i0 < k4; i0 += 4 * (int64_t)blockDim.x) {
            float4 a[4], w[4];
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const int64_t i = i0 + (int64_t)j * blockDim.x;
                if (i < k4) a[j] = xr[i], w[j] = g ? ((const float4 *)g)[i] : a[j];
            }
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const int64_t i = i0 + (int64_t)j * blockDim.x;
                if (i >= k4) break;
                if (g) {
                    a[j].x = __fmul_rn(__fmul_rn(a[j].x, inv[r]), w[j].x);
                    a[j].y = __fmul_rn(__fmul_rn(a[j].y, inv[r]), w[j].y);
                    a[j].z = __fmul_rn(__fmul_rn(a[j].z, inv[r]), w[j].z);
                    a[j].w = __fmul_rn(__fmul_rn(a[j].w, inv[r]), w[j].w);
                }
                dst[SWZ_B ? fmvq_swz < SWZ_B ? SWZ_B : 4 > (i) : i] = a[j];
            }
        }
    }
    __syncthreads();
}

/* where a warp of k_fmv16 is in its stream: row group it, round jg of the row */
struct fmv16_cur {
    int it, o; /* o: the row in matrix mi (32 bits: fewer registers) */
    int mi, jg;
    bool live; /* it < items and the row exists */
    const uint4 *w1, *w2;
};

/* the fixed part of a k_fmv16 warp's stream */
template <bool GLU> struct fmv16_stream {
    int chunks, step, c_first, items;
    int G, per_block, wp, wpr;
    __device__ fmv16_cur at(const mv_mats &m, int it) const {
        fmv16_cur c;
        c.it = it;
        c.jg = 0;
        c.o = it * per_block + wp / wpr;
        c.mi = 0;
        while (!GLU && c.mi < m.nmat - 1 && c.o >= m.n[c.mi])
            c.o -= (int)m.n[c.mi++];
        c.live = it < items && c.o < m.n[c.mi];
        const size_t o = c.live ? (size_t)c.o : 0;
        c.w1 = (const uint4 *)m.wd[c.mi] + o * (size_t)chunks;
        c.w2 = GLU ? (const uint4 *)m.wd[1] + o * (size_t)chunks : c.w1;
        return c;
    }
    __device__ void next(const mv_mats &m, fmv16_cur &c, int stride) const {
        if (++c.jg == G) c = at(m, c.it + stride);
    }
    __device__ int chunk(const fmv16_cur &c, int i) const {
        return c_first + (c.jg * u + i) * step;
    }
    int u; /* chunks a lane per round */
    /* this warp's stream over rows of chunks 16-byte chunks, u a lane per round, wpr warps a
     * row, items row groups */
    static __device__ fmv16_stream of(int chunks, int u, int wpr, int64_t items) {
        fmv16_stream S;
        const int lane = threadIdx.x & 31, wp = threadIdx.x >> 5;
        S.chunks = chunks;
        S.u = u;
        S.step = wpr * 32;
        S.c_first = (wp % wpr) * 32 + lane;
        S.items = (int)items;
        S.G = (S.chunks + u * S.step - 1) / (u * S.step);
        S.per_block = FMV_WARPS / wpr;
        S.wp = wp;
        S.wpr = wpr;
        return S;
    }
};

/* a row's end: the lanes' sums reduced, the row's shares added in warp order (s_part
 * alternates between row groups: par), the epilogue stored, the sums reset */
template <int NR, int EPI>
__device__ __forceinline__ void fmv16_finish(const mv_mats &m, const fmv16_cur &c, int rows,
                                             int wpr, float (&acc)[NR], float (&acc2)[NR],
                                             float (*s_part)[FMV_WARPS][NR][2], int &par) {
    const int lane = threadIdx.x & 31, wp = threadIdx.x >> 5, sub = wp % wpr;
#pragma unroll
    for (int r = 0; r < NR; r++) {
        acc[r] = warp_sum(acc[r]);
        if (EPI == EPI_GLU) acc2[r] = warp_sum(acc2[r]);
    }
    bool mine = c.live && lane == 0;
    if (wpr > 1) {
        if (lane == 0)
#pragma unroll
            for (int r = 0; r < NR; r++)
                s_part[par][wp][r][0] = acc[r], s_part[par][wp][r][1] = acc2[r];
        __syncthreads();
        if (sub == 0)
#pragma unroll
            for (int r = 0; r < NR; r++)
                for (int q = 1; q < wpr; q++) {
                    acc[r] += s_part[par][wp + q][r][0];
                    acc2[r] += s_part[par][wp + q][r][1];
                }
        mine = mine && sub == 0;
        par ^= 1;
    }
    if (mine) {
#pragma unroll
        for (int r = 0; r < NR; r++) {
            if (r >= rows) break;
            fmv_store<EPI>(m, c.mi, c.o, r, acc[r], acc2[r]);
        }
    }
#pragma unroll
    for (int r = 0; r < NR; r++)
        acc[r] = 0.0f, acc2[r] = 0.0f;
}

/* a streaming kernel's first row (rb bytes of codes a row; the up row too with GLU) into L2
 * while the kernel ahead ends */
template <bool GLU>
__device__ __forceinline__ void fmv_prefetch_first(const mv_mats &m, const fmv16_cur &c, size_t rb,
                                                   int wpr) {
    if (!c.live) return;
    const int sub = (threadIdx.x >> 5) % wpr;
    cuda_prefetch_span(m.wd[c.mi] + (size_t)c.o * rb, rb, sub, wpr);
    if (GLU) cuda_prefetch_span(m.wd[1] + (size_t)c.o * rb, rb, sub, wpr);
}

/* the norm's 1/rms per row (g != NULL) and x * inv * g staged when stage (SWZ_B as
 * fmv16_stage_x); xs and gs: where a chunk then reads x and the norm's weights */
template <int NR, int SWZ_B>
__device__ __forceinline__ void fmv_norm_stage(const float *x, int rows, int64_t k, const float *g,
                                               float eps, int stage, float *s_inv,
                                               double (*s_red)[FMV_WARPS], float *s_xs,
                                               const float *&xs, const float *&gs) {
    if (g) block_inv_rms<NR>(x, rows, k, eps, s_inv, s_red);
    xs = x, gs = g;
    if (stage) {
        fmv16_stage_x<SWZ_B>(x, rows, k, g, s_inv, s_xs);
        xs = s_xs;
        gs = NULL;
    }
}

/* blocks per SM the streaming kernel is built for: 6 at one token (80 registers; 7, at 72,
 * measured slower: 8B decode 5.23 against 5.08 ms, BENCHMARKS.md session 13) */
constexpr int fmv16_min_blocks(int nr) {
    return nr > 1 ? 4 : 6;
}

template <int F, int NR, int EPI>
__global__ void __launch_bounds__(FMV_WARPS * 32, fmv16_min_blocks(NR))
    k_fmv16(mv_mats m, int64_t k, const float *x, int rows, const float *g, float eps, int wpr,
            int64_t items, int stage) {
    extern __shared__ __align__(16) float s_xs[]; /* [rows][k] when stage */
    __shared__ float s_inv[NR];
    __shared__ double s_red[NR][FMV_WARPS];
    __shared__ float s_part[2][FMV_WARPS][NR][2];
    constexpr bool GLU = EPI == EPI_GLU;
    constexpr int U = GLU ? FMV16_U / 2 : FMV16_U;
    const fmv16_stream<GLU> S = fmv16_stream<GLU>::of((int)(k / 8), U, wpr, items);
    const uint4 z = make_uint4(0u, 0u, 0u, 0u);
    fmv16_cur cur = S.at(m, (int)blockIdx.x);
    uint4 w[U], w2[U];
    auto load = [&](const fmv16_cur &c, uint4(&a)[U], uint4(&a2)[U]) {
#pragma unroll
        for (int i = 0; i < U; i++) {
            const int ch = S.chunk(c, i);
            const bool on = c.live && ch < S.chunks;
            a[i] = on ? __ldcs(c.w1 + ch) : z;
            a2[i] = GLU && on ? __ldcs(c.w2 + ch) : z;
        }
    };
    /* stage bit 1 (the default; SGLC_CUDA_MV_EARLY=0 for A/B): the first round into registers
     * before cuda_pdl_wait, not only into L2 (the weights are constants, as k_fmvr's); 8B bf16
     * decode 6.285 -> 5.945 ms on an H100 (session 15) */
    const bool early = (stage & 2) != 0;
    stage &= 1;
    if (early)
        load(cur, w, w2);
    else
        fmv_prefetch_first<GLU>(m, cur, (size_t)k * 2, wpr);
    cuda_pdl_wait();
    cuda_pdl_trigger();
    if (!early) load(cur, w, w2);
    const float *xs, *gs;
    fmv_norm_stage<NR, 0>(x, rows, k, g, eps, stage, s_inv, s_red, s_xs, xs, gs);
    float acc[NR], acc2[NR];
#pragma unroll
    for (int r = 0; r < NR; r++)
        acc[r] = 0.0f, acc2[r] = 0.0f;
    int par = 0;
    while (cur.it < S.items) {
        fmv16_cur nxt = cur;
        S.next(m, nxt, (int)gridDim.x);
        uint4 wn[U], wn2[U];
        load(nxt, wn, wn2); /* in flight while this round is used */
#pragma unroll
        for (int i = 0; i < U; i++) {
            const int ch = S.chunk(cur, i);
            if (ch >= S.chunks) break;
            cuda_mv16_chunk<F, NR, GLU>(w[i], w2[i], ch, xs, k, rows, gs, s_inv, acc, acc2);
        }
        if (cur.jg == S.G - 1) fmv16_finish<NR, EPI>(m, cur, rows, wpr, acc, acc2, s_part, par);
#pragma unroll
        for (int i = 0; i < U; i++)
            w[i] = wn[i], w2[i] = wn2[i];
        cur = nxt;
    }
}

/* ---- the streaming form for MLX affine 4- and 8-bit weights ----
 * k_fmv16's stream (one wave of blocks looping over row groups, rounds of U chunks a lane
 * loaded a round ahead, the norm once per block and x * inv * g staged) with a chunk of 16
 * bytes of codes (32 values at 4 bits, 16 at 8), part of one group, whose scale and bias are
 * loaded with it, raw, and converted when used. k_fmv took these weights a unit per lane, as
 * here, but every warp re-staged x for every row (cuda_stage_x32), so x's traffic was four
 * times the weights'; the 8B shape decoded at 7.50 ms in 4 bits, slower than bf16's 6.81 then
 * (session 11), against a target of 2.5x faster than bf16. The staged x is rotated per chunk
 * (fmvq_swz): a lane reads consecutive floats. A lane's values, their order and the fma chains
 * are k_fmv's at 4 bits: per chunk v = fma(scale, code, bias), d = fma(v, x, d) over its
 * values, acc += d (at 8 bits, k_fmv's 32-value unit is two chunks here). The default since
 * it passed test_backend_ops on the H200 (session 15; 8B 4-bit decode 7.44 -> 6.87 ms);
 * SGLC_CUDA_MVQ=0 takes k_fmv. */
#define FMVQ_U 4 /* chunks a lane per round */

/* an MLX scale or bias as stored (f32 bits, or f16 / bf16 in the low half), and its value */
__device__ __forceinline__ uint32_t mlx_param_raw(const uint8_t *row, uint32_t dtype, int g) {
    return dtype == 0 ? __ldcs((const unsigned int *)row + g)
                      : (uint32_t)__ldcs((const unsigned short *)row + g);
}
__device__ __forceinline__ float mlx_param_val(uint32_t raw, uint32_t dtype) {
    return dtype == 0   ? __uint_as_float(raw)
           : dtype == 1 ? h2f((uint16_t)raw)
                        : bf2f((uint16_t)raw);
}

/* one chunk (values V ch .. V ch + V - 1, V = 128 / B) of a row (and of its up row, GLU)
 * against the rows of x: from the staging (staged) or from x, normalized here when g != NULL */
template <int B, int NR, bool GLU>
__device__ __forceinline__ void fmvq_chunk(const uint4 &w, const uint4 &w2, float s1, float b1,
                                           float s2, float b2, int ch, const float *xs, bool staged,
                                           int64_t k, int rows, const float *g, const float *inv,
                                           float (&acc)[NR], float (&acc2)[NR]) {
    float d[NR], d2[NR];
#pragma unroll
    for (int r = 0; r < NR; r++)
        d[r] = 0.0f, d2[r] = 0.0f;
    constexpr int F4 = 32 / B; /* float4s of x a chunk */
    const uint32_t wd[4] = {w.x, w.y, w.z, w.w}, wd2[4] = {w2.x, w2.y, w2.z, w2.w};
#pragma unroll
    for (int j = 0; j < F4; j++) {
        float xv[NR][4];
#pragma unroll
        for (int r = 0; r < NR; r++) {
            if (r >= rows) break;
            const float4 *xr = (const float4 *)(xs + (size_t)r * (size_t)k);
            float4 a = staged ? xr[fmvq_swz<B>((int64_t)F4 * ch + j)] : xr[F4 * ch + j];
            if (!staged && g) {
                const float4 gg = ((const float4 *)g)[F4 * ch + j];
                a.x = __fmul_rn(__fmul_rn(a.x, inv[r]), gg.x);
                a.y = __fmul_rn(__fmul_rn(a.y, inv[r]), gg.y);
                a.z = __fmul_rn(__fmul_rn(a.z, inv[r]), gg.z);
                a.w = __fmul_rn(__fmul_rn(a.w, inv[r]), gg.w);
            }
            xv[r][0] = a.x, xv[r][1] = a.y, xv[r][2] = a.z, xv[r][3] = a.w;
        }
        /* values 4j .. 4j + 3: codes from bit 4jB of the chunk (4 bits: nibbles 4 (j & 1) ..
         * of word j / 2; 8 bits: the bytes of word j) */
        constexpr uint32_t mask = (1u << B) - 1u;
        const int bit = 4 * j * B;
        const uint32_t q = wd[bit >> 5] >> (bit & 31), q2 = wd2[bit >> 5] >> (bit & 31);
#pragma unroll
        for (int t = 0; t < 4; t++) {
            const float v = fmaf(s1, (float)((q >> (B * t)) & mask), b1);
            const float v2 = GLU ? fmaf(s2, (float)((q2 >> (B * t)) & mask), b2) : 0.0f;
#pragma unroll
            for (int r = 0; r < NR; r++) {
                if (r >= rows) break;
                d[r] = fmaf(v, xv[r][t], d[r]);
                if (GLU) d2[r] = fmaf(v2, xv[r][t], d2[r]);
            }
        }
    }
#pragma unroll
    for (int r = 0; r < NR; r++)
        acc[r] += d[r], acc2[r] += d2[r];
}

/* gsh: log2(group / 32) (groups of 32, 64 or 128) */
template <int B, int NR, int EPI>
__global__ void __launch_bounds__(FMV_WARPS * 32, 4)
    k_fmvq(mv_mats m, uint32_t qdtype, int gsh, int64_t k, const float *x, int rows, const float *g,
           float eps, int wpr, int64_t items, int stage) {
    extern __shared__ __align__(16) float s_xs[]; /* [rows][k], rotated (fmvq_swz), when stage */
    __shared__ float s_inv[NR];
    __shared__ double s_red[NR][FMV_WARPS];
    __shared__ float s_part[2][FMV_WARPS][NR][2];
    constexpr bool GLU = EPI == EPI_GLU;
    constexpr int U = GLU ? FMVQ_U / 2 : FMVQ_U;
    constexpr int CSH = B == 4 ? 0 : 1; /* the group of chunk c: c >> (CSH + gsh) */
    const fmv16_stream<GLU> S = fmv16_stream<GLU>::of((int)(k * B / 128), U, wpr, items);
    const size_t prow = (size_t)(k >> (5 + gsh)) * (qdtype == 0 ? 4 : 2); /* a row's params */
    const uint4 z = make_uint4(0u, 0u, 0u, 0u);
    fmv16_cur cur = S.at(m, (int)blockIdx.x);
    uint4 w[U], w2[U];
    uint32_t ps[U], pb[U], ps2[U], pb2[U];
    auto load = [&](const fmv16_cur &c, uint4(&a)[U], uint4(&a2)[U], uint32_t(&sa)[U],
                    uint32_t(&ba)[U], uint32_t(&sa2)[U], uint32_t(&ba2)[U]) {
        const size_t po = (size_t)(c.live ? c.o : 0) * prow;
        const uint8_t *sr = m.sc[c.mi] + po, *br = m.bi[c.mi] + po;
        const uint8_t *sr2 = GLU ? m.sc[1] + po : sr, *br2 = GLU ? m.bi[1] + po : br;
#pragma unroll
        for (int i = 0; i < U; i++) {
            const int ch = S.chunk(c, i);
            const bool on = c.live && ch < S.chunks;
            a[i] = on ? __ldcs(c.w1 + ch) : z;
            a2[i] = GLU && on ? __ldcs(c.w2 + ch) : z;
            sa[i] = on ? mlx_param_raw(sr, qdtype, ch >> (CSH + gsh)) : 0u;
            ba[i] = on ? mlx_param_raw(br, qdtype, ch >> (CSH + gsh)) : 0u;
            sa2[i] = GLU && on ? mlx_param_raw(sr2, qdtype, ch >> (CSH + gsh)) : 0u;
            ba2[i] = GLU && on ? mlx_param_raw(br2, qdtype, ch >> (CSH + gsh)) : 0u;
        }
    };
    fmv_prefetch_first<GLU>(m, cur, (size_t)k * B / 8, wpr);
    cuda_pdl_wait();
    cuda_pdl_trigger();
    load(cur, w, w2, ps, pb, ps2, pb2);
    const float *xs, *gs;
    fmv_norm_stage<NR, B>(x, rows, k, g, eps, stage, s_inv, s_red, s_xs, xs, gs);
    float acc[NR], acc2[NR];
#pragma unroll
    for (int r = 0; r < NR; r++)
        acc[r] = 0.0f, acc2[r] = 0.0f;
    int par = 0;
    while (cur.it < S.items) {
        fmv16_cur nxt = cur;
        S.next(m, nxt, (int)gridDim.x);
        uint4 wn[U], wn2[U];
        uint32_t psn[U], pbn[U], psn2[U], pbn2[U];
        load(nxt, wn, wn2, psn, pbn, psn2, pbn2); /* in flight while this round is used */
#pragma unroll
        for (int i = 0; i < U; i++) {
            const int ch = S.chunk(cur, i);
            if (ch >= S.chunks) break;
            fmvq_chunk<B, NR, GLU>(w[i], w2[i], mlx_param_val(ps[i], qdtype),
                                   mlx_param_val(pb[i], qdtype),
                                   GLU ? mlx_param_val(ps2[i], qdtype) : 0.0f,
                                   GLU ? mlx_param_val(pb2[i], qdtype) : 0.0f, ch, xs, stage != 0,
                                   k, rows, gs, s_inv, acc, acc2);
        }
        if (cur.jg == S.G - 1) fmv16_finish<NR, EPI>(m, cur, rows, wpr, acc, acc2, s_part, par);
#pragma unroll
        for (int i = 0; i < U; i++) {
            w[i] = wn[i], w2[i] = wn2[i];
            ps[i] = psn[i], pb[i] = pbn[i], ps2[i] = psn2[i], pb2[i] = pbn2[i];
        }
        cur = nxt;
    }
}

/* ---- MLX affine 4/8-bit products at one or two tokens, four weight rows a warp ----
 * k_fmvq reads x once per weight row: a 16-byte chunk of 4-bit codes (32 values) takes 128
 * bytes of x from shared memory, 8 bytes of x per byte of weights, and at the 4-bit stream's
 * 4.5 TB/s that is more than shared memory gives (about 33 TB/s on the H200). Its values also
 * go through integer-to-float conversions (16 a clock per SM, half of what the stream needs)
 * and v = scale * code + bias before the dot. Here a warp takes FMVR_W weight rows at once
 * (four rows of one matrix, or two gate rows and their up rows with GLU) at the same chunk
 * positions, so each x value loaded serves four rows; a code becomes a float with a byte
 * permute into the mantissa of 2^23 and one exact subtraction; and a chunk's dot is taken
 * on the codes, scale * sum(code * x) + bias * sum(x), with sum(x) of each chunk computed
 * once per block when x is staged. A lane's round is one chunk of each of its rows (U = 1:
 * the next round's loads in flight, 16 bytes a row), lanes on consecutive chunks, so a warp's
 * load of one row is 512 contiguous bytes. x (normalized when g) is always staged, rotated
 * as k_fmvq's (fmvq_swz) so that the lanes' float4 reads hit distinct banks; launches whose
 * staging exceeds FMVR_STAGE_MAX_BYTES take k_fmvq. Its sums are rounded in another order than
 * the plain matmul op's (cuda_matmul.cu), so fused and op sequence differ by about 2e-7
 * (test_backend_ops allows 1e-5). The default since session 15 (H100: 8B 4-bit decode 6.955 ->
 * 4.295 ms, BENCHMARKS.md); SGLC_CUDA_MVR=0 takes k_fmvq. The weights' first round is loaded
 * before cuda_pdl_wait: they are constants, not the kernel ahead's output (written at load,
 * which ends with a stream synchronize: cuda_quant_release, the uploads). */
#define FMVR_W 4 /* weight rows a warp works on at once */
#define FMVR_STAGE_MAX_BYTES (64 * 1024)

/* code t (0..3) of the bytes of v (each byte < 256) as a float, exactly */
__device__ __forceinline__ float fmvr_byte(uint32_t v, int t) {
    return __uint_as_float(__byte_perm(v, 0x4B000000u, 0x7650u + (uint32_t)t)) - 8388608.0f;
}

template <int W, int NR> __device__ __forceinline__ void fmvr_zero(float (&a)[W][NR]) {
#pragma unroll
    for (int i = 0; i < W; i++)
#pragma unroll
        for (int r = 0; r < NR; r++)
            a[i][r] = 0.0f;
}

/* where a warp is: item it (a group of output rows) at round j, rows o .. of matrix mi */
struct fmvr_cur {
    int it, j, mi, o;
    bool live;
};

template <bool GLU> struct fmvr_stream {
    int chunks, rounds, items, stride;
    /* output rows an item holds: FMVR_W, or FMVR_W / 2 gate rows (and their up rows) */
    static constexpr int RO = GLU ? FMVR_W / 2 : FMVR_W;
    __device__ fmvr_cur at(const mv_mats &m, int it) const {
        fmvr_cur c;
        c.it = it;
        c.j = 0;
        c.mi = 0;
        int g = it;
        while (!GLU && c.mi < m.nmat - 1 && g >= (int)((m.n[c.mi] + RO - 1) / RO))
            g -= (int)((m.n[c.mi++] + RO - 1) / RO);
        c.o = g * RO;
        c.live = it < items;
        return c;
    }
    __device__ void next(const mv_mats &m, fmvr_cur &c) const {
        if (++c.j == rounds) c = at(m, c.it + stride);
    }
    /* weight row w of the item: its matrix and row */
    __device__ int mat(const fmvr_cur &c, int w) const { return GLU ? (w < RO ? 0 : 1) : c.mi; }
    __device__ int row(const fmvr_cur &c, int w) const { return c.o + (GLU ? w % RO : w); }
};

/* x [rows][k] (times inv * g when g) staged at fmvq_swz<B>'s places, and the sum of each
 * 16-byte chunk's values (128 / B of them) into sums [rows][k * B / 128]; by the whole block
 * (blockDim a multiple of 32), each lane on 8 consecutive values; ends with a barrier */
template <int B>
__device__ __forceinline__ void fmvr_stage(const float *x, int rows, int64_t k, const float *g,
                                           const float *inv, float *xs, float *sums) {
    constexpr int L8 = 128 / B / 8; /* lanes (8 values each) a chunk */
    const int64_t n8 = k / 8;
    const int lane = threadIdx.x & 31;
    for (int r = 0; r < rows; r++) {
        const float4 *xr = (const float4 *)(x + (size_t)r * (size_t)k);
        float4 *dst = (float4 *)(xs + (size_t)r * (size_t)k);
        for (int64_t b0 = threadIdx.x - lane; b0 < n8; b0 += blockDim.x) {
            const int64_t i = b0 + lane;
            float4 a[2] = {make_float4(0.f, 0.f, 0.f, 0.f), make_float4(0.f, 0.f, 0.f, 0.f)};
            if (i < n8) {
                a[0] = xr[2 * i], a[1] = xr[2 * i + 1];
                if (g) {
                    const float4 g0 = ((const float4 *)g)[2 * i],
                                 g1 = ((const float4 *)g)[2 * i + 1];
                    const float gg[8] = {g0.x, g0.y, g0.z, g0.w, g1.x, g1.y, g1.z, g1.w};
                    float *v = (float *)a;
#pragma unroll
                    for (int t = 0; t < 8; t++)
                        v[t] = __fmul_rn(__fmul_rn(v[t], inv[r]), gg[t]);
                }
                dst[fmvq_swz<B>(2 * i)] = a[0];
                dst[fmvq_swz<B>(2 * i + 1)] = a[1];
            }
            float s =
                ((a[0].x + a[0].y) + (a[0].z + a[0].w)) + ((a[1].x + a[1].y) + (a[1].z + a[1].w));
#pragma unroll
            for (int o = 1; o < L8; o *= 2)
                s += __shfl_xor_sync(0xffffffffu, s, o);
            if (i < n8 && (i % L8) == 0) sums[(size_t)r * (size_t)(n8 / L8) + (size_t)(i / L8)] = s;
        }
    }
    __syncthreads();
}

template <int B, int NR, int EPI>
__global__ void __launch_bounds__(FMV_WARPS * 32, 5)
    k_fmvr(mv_mats m, uint32_t qdtype, int gsh, int64_t k, const float *x, int rows, const float *g,
           float eps, int64_t items) {
    extern __shared__ __align__(16) float s_xs[]; /* [rows][k] rotated, then [rows][chunks] sums */
    __shared__ float s_inv[NR];
    __shared__ double s_red[NR][FMV_WARPS];
    constexpr bool GLU = EPI == EPI_GLU;
    constexpr int W = FMVR_W, F4 = 32 / B; /* float4s of x a chunk */
    constexpr int CSH = B == 4 ? 0 : 1;    /* the group of chunk c: c >> (CSH + gsh) */
    const int lane = threadIdx.x & 31, wp = threadIdx.x >> 5;
    fmvr_stream<GLU> S;
    S.chunks = (int)(k * B / 128);
    S.rounds = (S.chunks + 31) / 32;
    S.items = (int)items;
    S.stride = (int)gridDim.x * FMV_WARPS;
    const size_t prow = (size_t)(k >> (5 + gsh)) * (qdtype == 0 ? 4 : 2); /* a row's params */
    const uint4 z = make_uint4(0u, 0u, 0u, 0u);
    fmvr_cur cur = S.at(m, (int)blockIdx.x + (int)gridDim.x * wp);
    uint4 w[W];
    uint32_t ps[W], pb[W];
    auto load = [&](const fmvr_cur &c, uint4(&a)[W], uint32_t(&sa)[W], uint32_t(&ba)[W]) {
        const int ch = c.j * 32 + lane;
#pragma unroll
        for (int i = 0; i < W; i++) {
            const int mt = S.mat(c, i), rw = S.row(c, i);
            const bool on = c.live && ch < S.chunks && rw < m.n[mt];
            const size_t r = on ? (size_t)rw : 0;
            a[i] = on ? __ldcs((const uint4 *)m.wd[mt] + r * (size_t)S.chunks + ch) : z;
            sa[i] = on ? mlx_param_raw(m.sc[mt] + r * prow, qdtype, ch >> (CSH + gsh)) : 0u;
            ba[i] = on ? mlx_param_raw(m.bi[mt] + r * prow, qdtype, ch >> (CSH + gsh)) : 0u;
        }
    };
    load(cur, w, ps, pb); /* constants: in flight while the kernel ahead ends */
    cuda_pdl_wait();
    cuda_pdl_trigger();
    if (g) block_inv_rms<NR>(x, rows, k, eps, s_inv, s_red);
    float *sums = s_xs + (size_t)rows * (size_t)k;
    fmvr_stage<B>(x, rows, k, g, s_inv, s_xs, sums);
    float acc[W][NR];
    fmvr_zero(acc);
    while (cur.it < S.items) {
        fmvr_cur nxt = cur;
        S.next(m, nxt);
        uint4 wn[W];
        uint32_t psn[W], pbn[W];
        load(nxt, wn, psn, pbn); /* in flight while this round is used */
        const int ch = cur.j * 32 + lane;
        if (ch < S.chunks) {
            float d[W][NR];
            fmvr_zero(d);
#pragma unroll
            for (int q = 0; q < 4; q++) { /* the chunk's 32-bit words */
                /* word q holds values V q .. V q + V - 1 (V = 32 / B), value t at bit B t */
                float xv[NR][32 / B];
#pragma unroll
                for (int r = 0; r < NR; r++) {
                    if (r >= rows) break;
                    const float4 *xr = (const float4 *)(s_xs + (size_t)r * (size_t)k);
#pragma unroll
                    for (int h = 0; h < 32 / B / 4; h++) {
                        const float4 a = xr[fmvq_swz<B>((int64_t)F4 * ch + q * (32 / B / 4) + h)];
                        xv[r][4 * h] = a.x, xv[r][4 * h + 1] = a.y;
                        xv[r][4 * h + 2] = a.z, xv[r][4 * h + 3] = a.w;
                    }
                }
#pragma unroll
                for (int i = 0; i < W; i++) {
                    const uint32_t wq = q == 0   ? w[i].x
                                        : q == 1 ? w[i].y
                                        : q == 2 ? w[i].z
                                                 : w[i].w;
                    if (B == 4) {
                        /* bytes of lo: values 0, 2, 4, 6 of the word; of hi: 1, 3, 5, 7 */
                        const uint32_t lo = wq & 0x0F0F0F0Fu, hi = (wq >> 4) & 0x0F0F0F0Fu;
#pragma unroll
                        for (int t = 0; t < 4; t++) {
                            const float c0 = fmvr_byte(lo, t), c1 = fmvr_byte(hi, t);
#pragma unroll
                            for (int r = 0; r < NR; r++) {
                                if (r >= rows) break;
                                d[i][r] = fmaf(c0, xv[r][2 * t], d[i][r]);
                                d[i][r] = fmaf(c1, xv[r][2 * t + 1], d[i][r]);
                            }
                        }
                    } else {
#pragma unroll
                        for (int t = 0; t < 4; t++) {
                            const float c0 = fmvr_byte(wq, t);
#pragma unroll
                            for (int r = 0; r < NR; r++) {
                                if (r >= rows) break;
                                d[i][r] = fmaf(c0, xv[r][t], d[i][r]);
                            }
                        }
                    }
                }
            }
#pragma unroll
            for (int r = 0; r < NR; r++) {
                if (r >= rows) break;
                const float sx = sums[(size_t)r * (size_t)S.chunks + (size_t)ch];
#pragma unroll
                for (int i = 0; i < W; i++)
                    acc[i][r] = fmaf(mlx_param_val(pb[i], qdtype), sx,
                                     fmaf(mlx_param_val(ps[i], qdtype), d[i][r], acc[i][r]));
            }
        }
        if (cur.j == S.rounds - 1) { /* the item's end: sums reduced, the epilogue stored */
#pragma unroll
            for (int i = 0; i < W; i++)
#pragma unroll
                for (int r = 0; r < NR; r++)
                    acc[i][r] = warp_sum(acc[i][r]);
            if (cur.live && lane == 0) {
#pragma unroll
                for (int i = 0; i < (GLU ? W / 2 : W); i++) {
                    const int mt = S.mat(cur, i), rw = S.row(cur, i);
                    if (rw >= m.n[mt]) break;
#pragma unroll
                    for (int r = 0; r < NR; r++) {
                        if (r >= rows) break;
                        fmv_store<EPI>(m, mt, rw, r, acc[i][r], GLU ? acc[i + W / 2][r] : 0.0f);
                    }
                }
            }
            fmvr_zero(acc);
        }
#pragma unroll
        for (int i = 0; i < W; i++)
            w[i] = wn[i], ps[i] = psn[i], pb[i] = pbn[i];
        cur = nxt;
    }
}

/* ---- the exact integer products (cuda_matmul.cu) with the same prologue and epilogues ---- */

/* one thread per 32-block of row blockIdx.x: the CPU's Q8_1 activation of x (normalized by g
 * first when g != NULL); qs/dy/sy as cuda_exact_act_bytes lays them out */
__global__ void k_fact_q8_1(const float *x, const float *g, float eps, int64_t k, int8_t *qs,
                            float *dy, float *sy) {
    __shared__ float s_inv[1];
    const int r = blockIdx.x;
    cuda_pdl_wait();
    cuda_pdl_trigger();
    if (g) {
        if (threadIdx.x < 32) {
            const float iv = warp_inv_rms(x + (size_t)r * (size_t)k, k, eps);
            if (threadIdx.x == 0) s_inv[0] = iv;
        }
        __syncthreads();
    }
    const int64_t nb = k / 32;
    for (int64_t b = threadIdx.x; b < nb; b += blockDim.x) {
        float v[32];
        const float *xb = x + (size_t)r * (size_t)k + (size_t)b * 32;
#pragma unroll
        for (int i = 0; i < 32; i++)
            v[i] = g ? __fmul_rn(__fmul_rn(xb[i], s_inv[0]), g[b * 32 + i]) : xb[i];
        cuda_q8_1_block(v, qs + ((size_t)r * nb + b) * 32, dy + (size_t)r * nb + b,
                        sy + (size_t)r * nb + b);
    }
}

/* the exact kernel over concatenated matrices; EPI_GLU: gate row then up row per warp */
template <int F, int EPI>
__global__ void __launch_bounds__(FMV_WARPS * 32)
    k_fexact(mv_mats m, int nb, const int8_t *qs, const float *dy, const float *sy, int rows) {
    __shared__ float s_a[FMV_WARPS][32][CUDA_EXACT_NR], s_b[FMV_WARPS][32][CUDA_EXACT_NR];
    __shared__ float s_c[FMV_WARPS][32][CUDA_EXACT_NR], s_m[FMV_WARPS][32];
    const int lane = threadIdx.x & 31, wp = threadIdx.x >> 5;
    int64_t o = (int64_t)blockIdx.x * FMV_WARPS + wp;
    int mi = 0;
    while (EPI != EPI_GLU && mi < m.nmat - 1 && o >= m.n[mi])
        o -= m.n[mi++];
    const bool live = o < m.n[mi];
    if (live) { /* the weights before the wait (cuda_prefetch_span) */
        const size_t rb = fmt_row_bytes(F, (int64_t)nb * 32);
        cuda_prefetch_span(m.wd[mi] + (size_t)o * rb, rb, 0, 1);
        if (EPI == EPI_GLU) cuda_prefetch_span(m.wd[1] + (size_t)o * rb, rb, 0, 1);
    }
    cuda_pdl_wait(); /* every block waits: a later kernel's wait must cover this one's inputs */
    cuda_pdl_trigger();
    if (!live) return;
    const int t0 = (int)blockIdx.y * CUDA_EXACT_NR;
    const int nt = rows - t0 < CUDA_EXACT_NR ? rows - t0 : CUDA_EXACT_NR;
    float acc[2];
    for (int pass = 0; pass < (EPI == EPI_GLU ? 2 : 1); pass++) {
        const int wm = EPI == EPI_GLU ? pass : mi;
        acc[pass] = cuda_exact_row<F>(m.wd[wm], o, nb, qs, dy, sy, t0, nt, s_a[wp], s_b[wp],
                                      s_c[wp], s_m[wp]);
    }
    if (lane >= nt) return;
    const size_t yi = (size_t)(t0 + lane) * (size_t)m.n[mi] + (size_t)o;
    if (EPI == EPI_GLU) {
        m.y[0][yi] = silu_times(acc[0], acc[1]);
        return;
    }
    float t = m.bias[mi] ? __fadd_rn(acc[0], m.bias[mi][o]) : acc[0];
    m.y[mi][yi] = EPI == EPI_ADD ? __fadd_rn(m.y[mi][yi], t) : t;
}

/* ---- dispatch ---- */

static int same_shape(int n, const sglc_weight *const *w) {
    for (int i = 1; i < n; i++)
        if (w[i]->type != w[0]->type || w[i]->k != w[0]->k || w[i]->q_bits != w[0]->q_bits ||
            w[i]->q_group != w[0]->q_group || w[i]->q_dtype != w[0]->q_dtype)
            return 0;
    return 1;
}

/* how a product of these weights at rows runs fused: 1 matrix-vector, 2 exact, 0 not */
static int fused_kind(const cuda_impl *im, int n, const sglc_weight *const *w, const float *x,
                      int64_t rows) {
    if (im->deterministic || rows <= 0 || !same_shape(n, w) || w[0]->k % 32 != 0) return 0;
    const int f = fmt_of(w[0]->type, w[0]->q_bits);
    if (f < 0) return 0;
    if (cuda_exact_rows(im, f, rows)) return 2;
    if (!cuda_matvec_rows(im, f, rows) || f == FMT_Q4_K || f == FMT_Q5_K || f == FMT_Q6_K) return 0;
    return ((uintptr_t)x & 15) == 0 ? 1 : 0;
}

static mv_mats mats_of(int n, const sglc_weight *const *w, const sglc_weight *const *bias,
                       float *const *y) {
    mv_mats m = {};
    m.nmat = n;
    for (int i = 0; i < n; i++) {
        m.wd[i] = (const uint8_t *)w[i]->dev;
        m.sc[i] = (const uint8_t *)w[i]->q_scales_dev;
        m.bi[i] = (const uint8_t *)w[i]->q_biases_dev;
        m.bias[i] = bias && bias[i] ? (const float *)bias[i]->dev : NULL;
        m.y[i] = y[i];
        m.n[i] = w[i]->n;
    }
    return m;
}

/* a streaming kernel's shape (k_fmv16, k_fmvq): the row share wpr (1, 2, 4) whose row groups
 * fill the grid's waves best (fewer shares on a tie: fewer barriers), the row groups (items)
 * and a grid of at most one wave; chunks: 16-byte chunks per row */
struct fmv_shape {
    int wpr;
    int64_t items;
    unsigned blocks;
};
static fmv_shape fmv_stream_shape(cuda_impl *im, const void *kern, size_t smem, int64_t out_rows,
                                  int64_t chunks) {
    const int64_t slots = (int64_t)im->n_sm * cuda_blocks_per_sm(im, kern, FMV_WARPS * 32, smem);
    int best = 1;
    double best_eff = -1.0;
    for (int wpr = 1; wpr <= FMV_WARPS; wpr *= 2) {
        if (wpr > 1 && chunks < (int64_t)wpr * 32) break; /* a share of under a chunk a lane */
        const int64_t items = (out_rows * wpr + FMV_WARPS - 1) / FMV_WARPS;
        const int64_t waves = (items + slots - 1) / slots;
        const double eff = (double)items / (double)(waves * slots);
        if (eff > best_eff + 0.02) best = wpr, best_eff = eff;
    }
    fmv_shape sh;
    sh.wpr = best;
    sh.items = (out_rows * best + FMV_WARPS - 1) / FMV_WARPS;
    sh.blocks = (unsigned)(sh.items < slots ? sh.items : slots);
    return sh;
}

/* x * inv * g staged in shared memory when the block's copy fits (bytes, else 0) */
static size_t fmv_stage_bytes(int64_t rows, int64_t k, const float *g) {
    const size_t xs_bytes = (size_t)rows * (size_t)k * 4;
    return g && xs_bytes <= FMV16_STAGE_MAX_BYTES ? xs_bytes : 0;
}

template <int F, int NR, int EPI>
static void launch_fmv16_as(cuda_impl *im, const mv_mats &m, const sglc_weight *w0, const float *x,
                            int64_t rows, const float *g, float eps, int64_t out_rows) {
    const int64_t k = w0->k;
    const size_t smem = fmv_stage_bytes(rows, k, g);
    const fmv_shape sh =
        fmv_stream_shape(im, (const void *)k_fmv16<F, NR, EPI>, smem, out_rows, k / 8);
    cuda_launch_smem(im, k_fmv16<F, NR, EPI>, dim3(sh.blocks), dim3(FMV_WARPS * 32), smem, m, k, x,
                     (int)rows, g, eps, sh.wpr, sh.items,
                     (int)(smem != 0) | (im->mv_early ? 2 : 0));
}

/* log2(group / 32) of an MLX weight (groups of 32, 64 or 128) */
static int mlx_gsh(const sglc_weight *w) {
    return w->q_group == 32 ? 0 : w->q_group == 64 ? 1 : 2;
}

template <int B, int NR, int EPI>
static void launch_fmvq_as(cuda_impl *im, const mv_mats &m, const sglc_weight *w0, const float *x,
                           int64_t rows, const float *g, float eps, int64_t out_rows) {
    const int64_t k = w0->k;
    const int gsh = mlx_gsh(w0);
    const size_t smem = fmv_stage_bytes(rows, k, g);
    const fmv_shape sh =
        fmv_stream_shape(im, (const void *)k_fmvq<B, NR, EPI>, smem, out_rows, k * B / 128);
    cuda_launch_smem(im, k_fmvq<B, NR, EPI>, dim3(sh.blocks), dim3(FMV_WARPS * 32), smem, m,
                     w0->q_dtype, gsh, k, x, (int)rows, g, eps, sh.wpr, sh.items, (int)(smem != 0));
}

/* k_fmvr's dynamic shared memory: x staged and its chunk sums */
static size_t fmvr_smem(int64_t rows, int64_t k, int bits) {
    return (size_t)rows * (size_t)k * 4 + (size_t)rows * (size_t)(k * bits / 128) * 4;
}

template <int B, int NR, int EPI>
static void launch_fmvr_as(cuda_impl *im, const mv_mats &m, const sglc_weight *w0, const float *x,
                           int64_t rows, const float *g, float eps) {
    const int64_t k = w0->k;
    const size_t smem = fmvr_smem(rows, k, B);
    const void *kern = (const void *)k_fmvr<B, NR, EPI>;
    constexpr int RO = fmvr_stream<EPI == EPI_GLU>::RO;
    int64_t items = 0;
    for (int i = 0; i < (EPI == EPI_GLU ? 1 : m.nmat); i++)
        items += (m.n[i] + RO - 1) / RO;
    const int64_t slots = (int64_t)im->n_sm * cuda_blocks_per_sm(im, kern, FMV_WARPS * 32, smem);
    int64_t blocks = (items + FMV_WARPS - 1) / FMV_WARPS;
    if (blocks > slots) blocks = slots;
    if (blocks < 1) blocks = 1;
    cuda_launch_smem(im, k_fmvr<B, NR, EPI>, dim3((unsigned)blocks), dim3(FMV_WARPS * 32), smem, m,
                     w0->q_dtype, mlx_gsh(w0), k, x, (int)rows, g, eps, items);
}

/* Calls fn(fmt_tag<E>{}) with E the compile-time epilogue (fmt_tag carries any int) */
template <class Fn> static inline void epi_dispatch(int epi, Fn &&fn) {
    if (epi == EPI_GLU)
        fn(fmt_tag<EPI_GLU>{});
    else if (epi == EPI_ADD)
        fn(fmt_tag<EPI_ADD>{});
    else
        fn(fmt_tag<EPI_STORE>{});
}

template <int F>
static void launch_fmv16(cuda_impl *im, int epi, const mv_mats &m, const sglc_weight *w0,
                         const float *x, int64_t rows, const float *g, float eps,
                         int64_t out_rows) {
    SGLC_ASSERT(rows >= 1 && rows <= 2);
    epi_dispatch(epi, [&](auto e) {
        constexpr int E = decltype(e)::value;
        if (rows == 1)
            launch_fmv16_as<F, 1, E>(im, m, w0, x, rows, g, eps, out_rows);
        else
            launch_fmv16_as<F, 2, E>(im, m, w0, x, rows, g, eps, out_rows);
    });
}

static void launch_fmv(cuda_impl *im, int epi, const mv_mats &m, const sglc_weight *w0,
                       const float *x, int64_t rows, const float *g, float eps) {
    const int f = fmt_of(w0->type, w0->q_bits);
    int64_t out_rows = epi == EPI_GLU ? m.n[0] : 0;
    if (epi != EPI_GLU)
        for (int i = 0; i < m.nmat; i++)
            out_rows += m.n[i];
    if ((f == FMT_BF16 || f == FMT_F16) && im->mv16 && rows <= 2) {
        if (f == FMT_BF16)
            launch_fmv16<FMT_BF16>(im, epi, m, w0, x, rows, g, eps, out_rows);
        else
            launch_fmv16<FMT_F16>(im, epi, m, w0, x, rows, g, eps, out_rows);
        CUDA_LAUNCHED(im, "fused matrix-vector kernel");
        return;
    }
    if ((f == FMT_MLX4 || f == FMT_MLX8) && im->mvq && rows <= 2 &&
        (w0->q_group == 32 || w0->q_group == 64 || w0->q_group == 128)) {
        const bool r4 =
            im->mvr && fmvr_smem(rows, w0->k, f == FMT_MLX4 ? 4 : 8) <= FMVR_STAGE_MAX_BYTES;
        /* the bits and token count as template arguments, then k_fmvr or k_fmvq */
        auto go = [&](auto bits, auto nr) {
            constexpr int B = decltype(bits)::value, NR = decltype(nr)::value;
            epi_dispatch(epi, [&](auto e) {
                constexpr int E = decltype(e)::value;
                if (r4)
                    launch_fmvr_as<B, NR, E>(im, m, w0, x, rows, g, eps);
                else
                    launch_fmvq_as<B, NR, E>(im, m, w0, x, rows, g, eps, out_rows);
            });
        };
        if (f == FMT_MLX4 && rows == 1)
            go(fmt_tag<4>{}, fmt_tag<1>{});
        else if (f == FMT_MLX4)
            go(fmt_tag<4>{}, fmt_tag<2>{});
        else if (rows == 1)
            go(fmt_tag<8>{}, fmt_tag<1>{});
        else
            go(fmt_tag<8>{}, fmt_tag<2>{});
        CUDA_LAUNCHED(im, "fused matrix-vector kernel");
        return;
    }
    /* warps per row: enough warps to fill the GPU (about 32 per SM), at most 4 */
    const int64_t want = (int64_t)im->n_sm * 32;
    const int units = (int)(w0->k / 32);
    int wpr = 1;
    while (wpr < FMV_WARPS && out_rows * wpr < want && units >= 48 * wpr)
        wpr *= 2;
    const int per_block = FMV_WARPS / wpr;
    const unsigned blocks = (unsigned)((out_rows + per_block - 1) / per_block);
    const int nr = (int)rows;
    fmt_dispatch(f, [&](auto tag) {
        constexpr int F = decltype(tag)::value;
        if constexpr (F == FMT_Q4_K || F == FMT_Q5_K || F == FMT_Q6_K || F == FMT_Q4_1 ||
                      F == FMT_Q8_0) {
            SGLC_ASSERT(!"format not fused by k_fmv");
        } else {
            constexpr bool QA = F == FMT_Q4_0;
            epi_dispatch(epi, [&](auto e) {
                constexpr int E = decltype(e)::value;
#define FMV(NR)                                                                                    \
    cuda_launch(im, k_fmv<F, NR, QA, E>, dim3(blocks), dim3(FMV_WARPS * 32), m, w0->q_dtype,       \
                w0->q_group, w0->k, x, nr, g, eps, wpr)
                if (nr == 1)
                    FMV(1);
                else if (nr == 2)
                    FMV(2);
                else if (nr <= 4)
                    FMV(4);
                else
                    FMV(8);
#undef FMV
            });
        }
    });
    CUDA_LAUNCHED(im, "fused matrix-vector kernel");
}

static void launch_fexact(cuda_impl *im, int epi, const mv_mats &m, const sglc_weight *w0,
                          const float *x, int64_t rows, const float *g, float eps) {
    const int64_t k = w0->k, nb = k / 32;
    if (cuda_scratch_grow(im, &im->actq, &im->actq_bytes, cuda_exact_act_bytes(rows, k))) return;
    int8_t *qs = (int8_t *)im->actq;
    float *dy = (float *)(qs + (size_t)rows * (size_t)k), *sy = dy + rows * nb;
    cuda_launch(im, k_fact_q8_1, dim3((unsigned)rows), dim3(128), x, g, eps, k, qs, dy, sy);
    if (CUDA_LAUNCHED(im, "activation quantization kernel")) return;
    int64_t out_rows = epi == EPI_GLU ? m.n[0] : 0;
    if (epi != EPI_GLU)
        for (int i = 0; i < m.nmat; i++)
            out_rows += m.n[i];
    const dim3 grid((unsigned)((out_rows + FMV_WARPS - 1) / FMV_WARPS),
                    (unsigned)((rows + CUDA_EXACT_NR - 1) / CUDA_EXACT_NR));
    const int f = fmt_of(w0->type, w0->q_bits);
    epi_dispatch(epi, [&](auto e) {
        constexpr int E = decltype(e)::value;
        if (f == FMT_Q4_1)
            cuda_launch(im, k_fexact<FMT_Q4_1, E>, grid, dim3(FMV_WARPS * 32), m, (int)nb,
                        (const int8_t *)qs, (const float *)dy, (const float *)sy, (int)rows);
        else
            cuda_launch(im, k_fexact<FMT_Q8_0, E>, grid, dim3(FMV_WARPS * 32), m, (int)nb,
                        (const int8_t *)qs, (const float *)dy, (const float *)sy, (int)rows);
    });
    CUDA_LAUNCHED(im, "fused integer product kernel");
}

#define fbits cuda_fbits

void cuda_norm_matmul_n(sglc_backend *be, const float *x, const sglc_weight *norm, float eps,
                        float *xn, int n, const sglc_weight *const *w,
                        const sglc_weight *const *bias, int64_t rows, float *const *y, int glu) {
    cuda_impl *im = cuda_impl_of(be);
    SGLC_ASSERT(n >= 1 && n <= 3 && (!glu || n == 2));
    SGLC_ASSERT(!norm || (norm->type == SGLC_GGML_TYPE_F32 && norm->k == w[0]->k));
    int kind = fused_kind(im, n, w, x, rows);
    if (glu && (w[0]->n != w[1]->n || (bias && (bias[0] || bias[1])))) kind = 0;
    if (!kind) { /* the op sequence */
        const float *xin = x;
        if (norm) {
            cuda_rmsnorm(be, x, norm, xn, rows, w[0]->k, eps);
            xin = xn;
        }
        cuda_matmul_n(be, n, w, bias, xin, rows, y);
        if (glu) cuda_silu_mul(be, y[0], y[1], y[0], rows * w[0]->n);
        return;
    }
    if (CUDA_OP_BEGIN(im, CUDA_OP_NORM_MATMUL, U64(x), U64(norm ? norm->dev : NULL), fbits(eps),
                      (uint64_t)n, U64(w[0]->dev), U64(n > 1 ? w[1]->dev : NULL),
                      U64(n > 2 ? w[2]->dev : NULL), U64(y[0]), U64(n > 1 ? y[1] : NULL),
                      U64(n > 2 ? y[2] : NULL), (uint64_t)rows, (uint64_t)glu))
        return;
    const mv_mats m = mats_of(n, w, bias, y);
    const float *g = norm ? (const float *)norm->dev : NULL;
    const int epi = glu ? EPI_GLU : EPI_STORE;
    if (kind == 2)
        launch_fexact(im, epi, m, w[0], x, rows, g, eps);
    else
        launch_fmv(im, epi, m, w[0], x, rows, g, eps);
}

void cuda_matmul_add(sglc_backend *be, const sglc_weight *w, const sglc_weight *bias,
                     const float *x, int64_t rows, float *y, float *tmp) {
    cuda_impl *im = cuda_impl_of(be);
    const int kind = fused_kind(im, 1, &w, x, rows);
    if (!kind) {
        cuda_matmul(be, w, bias, x, rows, tmp);
        cuda_add(be, y, tmp, rows * w->n);
        return;
    }
    if (CUDA_OP_BEGIN(im, CUDA_OP_MATMUL_ADD, U64(w->dev), U64(bias ? bias->dev : NULL), U64(x),
                      (uint64_t)rows, U64(y)))
        return;
    const sglc_weight *ws[1] = {w};
    const sglc_weight *bs[1] = {bias};
    float *const ys[1] = {y};
    const mv_mats m = mats_of(1, ws, bs, ys);
    if (kind == 2)
        launch_fexact(im, EPI_ADD, m, w, x, rows, NULL, 0.0f);
    else
        launch_fmv(im, EPI_ADD, m, w, x, rows, NULL, 0.0f);
}

/* ---- q/k head norms + RoPE + KV write ---- */

/* grid (tokens, n_head + 2 n_head_kv): q heads rotated in place, k heads rotated into the
 * cache, v heads copied into it; a block per head vector, staged in shared memory */
__global__ void k_qk_norm_rope_kv(cuda_rope_args a, const int32_t *pos, const int32_t *out_slot,
                                  float *q, const float *k, const float *v, const float *qn,
                                  const float *kn, float eps, void *kc, void *vc, int f16) {
    __shared__ float s_v[CUDA_ROPE_MAX_HD];
    __shared__ double s_red[32];
    const int t = blockIdx.x, h = blockIdx.y, hd = a.head_dim, half = a.rot_dim / 2;
    const size_t kvd = (size_t)a.n_head_kv * hd;
    cuda_pdl_wait();
    cuda_pdl_trigger();
    if (h >= a.n_head + a.n_head_kv) { /* a v head */
        const int hv = h - a.n_head - a.n_head_kv;
        const float *vs = v + (size_t)t * kvd + (size_t)hv * hd;
        const size_t base = (size_t)out_slot[t] * kvd + (size_t)hv * hd;
        for (int d = threadIdx.x; d < hd; d += blockDim.x)
            cuda_store_kv(vc, f16, base + d, vs[d]);
        return;
    }
    const int is_q = h < a.n_head, hh = is_q ? h : h - a.n_head;
    const float *src = is_q ? q + ((size_t)t * a.n_head + hh) * hd : k + (size_t)t * kvd + hh * hd;
    const float *nw = is_q ? qn : kn;
    for (int d = threadIdx.x; d < hd; d += blockDim.x)
        s_v[d] = src[d];
    if (nw) {
        double ss = 0.0;
        for (int d = threadIdx.x; d < hd; d += blockDim.x)
            ss += (double)__fmul_rn(s_v[d], s_v[d]);
        const float scale = cuda_rms_scale(block_sum(ss, s_red), hd, eps);
        for (int d = threadIdx.x; d < hd; d += blockDim.x)
            s_v[d] = __fmul_rn(__fmul_rn(s_v[d], scale), nw[d]);
    }
    __syncthreads();
    const int32_t p = pos[t];
    const size_t base = (size_t)out_slot[t] * kvd + (size_t)hh * hd;
    float *qd = is_q ? q + ((size_t)t * a.n_head + hh) * hd : NULL;
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
        float c, s;
        cuda_rope_pair(a, p, i, c, s);
        int i0, i1;
        float r0, r1;
        cuda_rope_idx(a, i, i0, i1);
        cuda_rope_rot(s_v[i0], s_v[i1], c, s, r0, r1);
        if (is_q) {
            qd[i0] = r0, qd[i1] = r1;
        } else {
            cuda_store_kv(kc, f16, base + i0, r0);
            cuda_store_kv(kc, f16, base + i1, r1);
        }
    }
    for (int d = a.rot_dim + threadIdx.x; d < hd; d += blockDim.x) {
        if (is_q)
            qd[d] = s_v[d];
        else
            cuda_store_kv(kc, f16, base + d, s_v[d]);
    }
}

void cuda_qk_norm_rope_kv(sglc_backend *be, const sglc_batch *b, float *q, float *k, const float *v,
                          const sglc_weight *q_norm, const sglc_weight *k_norm, float eps,
                          void *k_cache, void *v_cache, const sglc_attn_params *p) {
    cuda_impl *im = cuda_impl_of(be);
    SGLC_ASSERT(!q_norm == !k_norm);
    if (im->deterministic || p->head_dim > CUDA_ROPE_MAX_HD) { /* the op sequence */
        if (q_norm) {
            cuda_rmsnorm(be, q, q_norm, q, b->n_tokens * p->n_head, p->head_dim, eps);
            cuda_rmsnorm(be, k, k_norm, k, b->n_tokens * p->n_head_kv, p->head_dim, eps);
        }
        cuda_rope(be, b, q, k, p);
        cuda_kv_store(be, b, k, v, k_cache, v_cache, p);
        return;
    }
    if (CUDA_OP_BEGIN(im, CUDA_OP_QK_NORM_ROPE_KV, U64(b->pos), U64(b->out_slot),
                      (uint64_t)b->n_tokens, U64(q), U64(k), U64(v),
                      U64(q_norm ? q_norm->dev : NULL), U64(k_norm ? k_norm->dev : NULL),
                      fbits(eps), U64(k_cache), U64(v_cache), CUDA_ATTN_SIG(p)))
        return;
    if (b->n_tokens <= 0) return;
    SGLC_ASSERT(p->rot_dim <= p->head_dim && p->rot_dim % 2 == 0);
    SGLC_ASSERT(p->kv_type == SGLC_GGML_TYPE_F16 || p->kv_type == SGLC_GGML_TYPE_F32);
    dim3 grid((unsigned)b->n_tokens, (unsigned)(p->n_head + 2 * p->n_head_kv));
    const int threads = p->head_dim >= 128 ? 128 : (p->head_dim + 31) / 32 * 32;
    cuda_launch(im, k_qk_norm_rope_kv, grid, dim3(threads), cuda_rope_args_of(p),
                (const int32_t *)b->pos, (const int32_t *)b->out_slot, q, (const float *)k,
                (const float *)v, q_norm ? (const float *)q_norm->dev : NULL,
                k_norm ? (const float *)k_norm->dev : NULL, eps, k_cache, v_cache,
                (int)(p->kv_type == SGLC_GGML_TYPE_F16));
    CUDA_LAUNCHED(im, "qk_norm_rope_kv kernel");
}
