/* Device pieces shared by the kernel files: the CPU's activation quantizers, the CPU-exact
 * integer row product, and the RoPE angle. Each is written once here so the fused kernels
 * (cuda_fused.cu) compute what the plain ones compute. */
#ifndef SGLC_BACKEND_CUDA_KERNELS_CUH
#define SGLC_BACKEND_CUDA_KERNELS_CUH

#include "backend/cuda/cuda_impl.h"
#include "backend/cuda/cuda_formats.cuh"
#include "backend/vexp_scalar.h"

/* tokens per grid row of the exact integer kernels */
#define CUDA_EXACT_NR 8
/* head sizes the fused q/k norm + RoPE + KV kernel stages in shared memory */
#define CUDA_ROPE_MAX_HD 512

/* programmatic dependent launch (cuda_launch): wait for the kernels ahead to finish and their
 * writes to be visible (a no-op in a kernel launched without it), and let the next kernel
 * start launching */
__device__ __forceinline__ void cuda_pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void cuda_pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;");
#endif
}
/* a hint: the 128-byte line at p into L2 */
__device__ __forceinline__ void cuda_prefetch_l2(const void *p) {
    asm volatile("prefetch.global.L2 [%0];" ::"l"(p));
}
/* the n bytes at p into L2, the lanes of `parts` warps (this one is `part`) taking its 128-byte
 * lines in turn. A decode kernel issues it for its weights before cuda_pdl_wait: the bytes it
 * will read do not depend on the kernel before it, so their trip from memory overlaps that
 * kernel's tail (programmatic dependent launch, cuda_launch). */
__device__ __forceinline__ void cuda_prefetch_span(const void *p, size_t n, int part, int parts) {
    const char *c = (const char *)p;
    const size_t first = (size_t)(uintptr_t)c & 127u; /* lines, not bytes, from p's line */
    for (size_t off = ((size_t)part * 32 + (threadIdx.x & 31)) * 128; off < n + first;
         off += (size_t)parts * 32 * 128)
        cuda_prefetch_l2(c - first + off);
}

/* one 8-value chunk c of the 16-bit loop (w: its weights, w2: the GLU row's): per row r of
 * x ([rows][k], rows <= NR), acc[r] += the chunk's 8-term fma chain; with g, x is first
 * multiplied by inv[r] and then by g (the rmsnorm prologue, as cuda_rmsnorm rounds it) */
template <int F, int NR, bool GLU>
__device__ __forceinline__ void
cuda_mv16_chunk(uint4 w, uint4 w2, int64_t c, const float *x, int64_t k, int rows, const float *g,
                const float *inv, float (&acc)[NR], float (&acc2)[NR]) {
    float gv[8];
    if (g) {
        const float4 *gp = (const float4 *)(g + c * 8);
        const float4 ga = gp[0], gb = gp[1];
        gv[0] = ga.x, gv[1] = ga.y, gv[2] = ga.z, gv[3] = ga.w;
        gv[4] = gb.x, gv[5] = gb.y, gv[6] = gb.z, gv[7] = gb.w;
    }
    const uint32_t ww[4] = {w.x, w.y, w.z, w.w};
    const uint32_t ww2[4] = {w2.x, w2.y, w2.z, w2.w};
#pragma unroll
    for (int r = 0; r < NR; r++) {
        if (r >= rows) break;
        const float4 *xp = (const float4 *)(x + (size_t)r * (size_t)k + (size_t)c * 8);
        const float4 a = xp[0], b = xp[1];
        float xv[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
        if (g) {
#pragma unroll
            for (int e = 0; e < 8; e++)
                xv[e] = __fmul_rn(__fmul_rn(xv[e], inv[r]), gv[e]);
        }
        float d = 0.0f, d2 = 0.0f;
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const uint16_t lo = (uint16_t)(ww[j] & 0xFFFF), hi = (uint16_t)(ww[j] >> 16);
            d = fmaf(F == FMT_F16 ? h2f(lo) : bf2f(lo), xv[2 * j], d);
            d = fmaf(F == FMT_F16 ? h2f(hi) : bf2f(hi), xv[2 * j + 1], d);
            if (GLU) {
                const uint16_t l2 = (uint16_t)(ww2[j] & 0xFFFF), h2 = (uint16_t)(ww2[j] >> 16);
                d2 = fmaf(F == FMT_F16 ? h2f(l2) : bf2f(l2), xv[2 * j], d2);
                d2 = fmaf(F == FMT_F16 ? h2f(h2) : bf2f(h2), xv[2 * j + 1], d2);
            }
        }
        acc[r] += d;
        if (GLU) acc2[r] += d2;
    }
}

/* The 16-bit (bf16 / f16) matrix-vector loop of k_matvec (cuda_matmul.cu) and of k_fmv's
 * first form (cuda_fused.cu; its streaming form k_fmv16 runs the same chunks in the same
 * order). Lane l of warp `part` of `parts` takes the 8-value chunks c = 32 (part + parts j) + l
 * of the row: every warp-wide load is one contiguous 512-byte span of weights and 1 KB of x
 * (and of the norm weights g). With a lane on 32 consecutive values, each warp load touched 32
 * lines 128 bytes apart and the kernels were L1-bound (75 % L1/TEX, 11 % DRAM, BENCHMARKS.md
 * session 10). Four chunks' weight loads (two of each row with GLU, which spilled at 64
 * registers with four) are issued before the first is used (cuda_mv16_chunk per chunk, in
 * order). GLU also takes the row wr2 into acc2 (gate and up rows of one warp). */
template <int F, int NR, bool GLU>
__device__ __forceinline__ void cuda_mv16_rows(const uint4 *wr, const uint4 *wr2, const float *x,
                                               int64_t k, int rows, const float *g,
                                               const float *inv, int part, int parts,
                                               float (&acc)[NR], float (&acc2)[NR]) {
    const int64_t chunks = k / 8, step = (int64_t)parts * 32;
    const uint4 z = make_uint4(0u, 0u, 0u, 0u);
    constexpr int U = GLU ? 2 : 4;
    for (int64_t c0 = (int64_t)part * 32 + (threadIdx.x & 31); c0 < chunks; c0 += U * step) {
        uint4 w[U], w2[U];
#pragma unroll
        for (int i = 0; i < U; i++) {
            const int64_t c = c0 + i * step;
            w[i] = c < chunks ? wr[c] : z;
            w2[i] = GLU && c < chunks ? wr2[c] : z;
        }
#pragma unroll
        for (int i = 0; i < U; i++) {
            const int64_t c = c0 + i * step;
            if (c >= chunks) break;
            cuda_mv16_chunk<F, NR, GLU>(w[i], w2[i], c, x, k, rows, g, inv, acc, acc2);
        }
    }
}

/* The activations of the lane-per-unit matrix-vector loops (quantized and MLX weights, whose
 * unit is a 32-value block): lane l of a warp takes unit u0 + l, values 32 (u0 + l) .. + 31 of
 * row xr. Read directly, each of a lane's eight 16-byte loads put the warp on 32 lines 128
 * bytes apart (L1-bound; see cuda_mv16_rows). Here the warp reads the 32 units' 4 KB as eight
 * coalesced 512-byte loads into its shared buffer buf (CUDA_XSTAGE_FLOATS, 16-byte aligned;
 * each unit padded to 36 floats, so neither the stores nor the lanes' reads conflict on a
 * bank), and each lane then reads its unit from there. With g the values are normalized on
 * the way, x * inv then * g (the rmsnorm prologue's rounding). The values are the same as a
 * direct read's, so the products do not change. All 32 lanes must call it (it syncs the warp);
 * a lane past the row's units gets values it must not use. */
#define CUDA_XSTAGE_FLOATS (32 * 36)
__device__ __forceinline__ void cuda_stage_x32(const float *xr, int u0, int64_t k, const float *g,
                                               float inv, float *buf, float (&xv)[32]) {
    const int lane = threadIdx.x & 31;
    const int64_t n4 = k / 4, base = (int64_t)u0 * 8;
    __syncwarp(); /* the buffer's last readers are done */
#pragma unroll
    for (int j = 0; j < 8; j++) {
        const int f = lane + 32 * j;
        if (base + f >= n4) break;
        float4 a = ((const float4 *)xr)[base + f];
        if (g) {
            const float4 w = ((const float4 *)g)[base + f];
            a.x = __fmul_rn(__fmul_rn(a.x, inv), w.x);
            a.y = __fmul_rn(__fmul_rn(a.y, inv), w.y);
            a.z = __fmul_rn(__fmul_rn(a.z, inv), w.z);
            a.w = __fmul_rn(__fmul_rn(a.w, inv), w.w);
        }
        *(float4 *)(buf + (f >> 3) * 36 + (f & 7) * 4) = a;
    }
    __syncwarp();
#pragma unroll
    for (int i = 0; i < 8; i++) {
        const float4 a = *(const float4 *)(buf + lane * 36 + 4 * i);
        xv[4 * i] = a.x, xv[4 * i + 1] = a.y, xv[4 * i + 2] = a.z, xv[4 * i + 3] = a.w;
    }
}

/* e^x as the CPU backend computes it on AVX2 machines (backend/vexp_scalar.h, the scalar form
 * of ggml's vectorized expf): CUDA's expf differs from it in the last bits, and through the
 * 8-bit activations of a Q4_1 down projection those bits moved the default model's greedy
 * tokens off the CPU's */
__device__ __forceinline__ float cuda_v_expf(float x) {
    return sglc_vexp_scalar(x);
}

/* silu(g) * u as the CPU's SwiGLU (ggml_exact_avx2.c sglc_gx_swiglu) */
__device__ __forceinline__ float cuda_silu_times(float g, float u) {
    const float e = cuda_v_expf(__fsub_rn(0.0f, g));
    return __fmul_rn(__fdiv_rn(g, __fadd_rn(1.0f, e)), u);
}

/* a block of 32 as the CPU's Q8_0 quantizer leaves it, dequantized: q * f16(d) (the CPU's
 * kernels widen the f16 scale back to f32) */
__device__ __forceinline__ void cuda_fq8_32(float *v) {
    float amax = 0.0f;
#pragma unroll
    for (int i = 0; i < 32; i++)
        amax = fmaxf(amax, fabsf(v[i]));
    const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    const float dh = __half2float(__float2half_rn(d));
#pragma unroll
    for (int i = 0; i < 32; i++)
        v[i] = roundf(v[i] * id) * dh;
}

/* the CPU's Q8_1 block (kernels_avx2.c quantize_q8_1) of 32 values: codes roundf(x / d) with
 * d = amax / 127, and the widened f16 d and f16(sum(codes) * d) */
__device__ __forceinline__ void cuda_q8_1_block(const float *v, int8_t *qs, float *dy, float *sy) {
    float amax = 0.0f;
    for (int i = 0; i < 32; i++)
        amax = fmaxf(amax, fabsf(v[i]));
    const float d = __fdiv_rn(amax, 127.0f);
    const float id = d != 0.0f ? __fdiv_rn(1.0f, d) : 0.0f;
    int sum = 0;
    uint32_t words[8];
    for (int w = 0; w < 8; w++) {
        uint32_t pk = 0;
        for (int i = 0; i < 4; i++) {
            const int q = (int)roundf(__fmul_rn(v[4 * w + i], id));
            sum += q;
            pk |= (uint32_t)(uint8_t)(int8_t)q << (8 * i);
        }
        words[w] = pk;
    }
    uint4 *dst = (uint4 *)qs;
    dst[0] = make_uint4(words[0], words[1], words[2], words[3]);
    dst[1] = make_uint4(words[4], words[5], words[6], words[7]);
    *dy = __half2float(__float2half_rn(d));
    *sy = __half2float(__float2half_rn(__fmul_rn((float)sum, d)));
}

/* Output row o of a Q4_1 / Q8_0 matrix (nb blocks per row) for tokens t0 .. t0 + nt - 1
 * (nt <= CUDA_EXACT_NR), with the CPU's packed kernels' arithmetic (cuda_matmul.cu): the
 * warp's lanes compute 32 blocks' integer sums at a time and lane r runs token r's chain
 * acc = fma(d_w d_y, sum, acc) (+ fma(m_w, s_y, acc) for Q4_1) over them. Called by the whole
 * warp; lane r < nt gets token r's result. s_*: this warp's shared scratch. */
template <int F>
__device__ __forceinline__ float
cuda_exact_row(const uint8_t *wd, int64_t o, int nb, const int8_t *qs, const float *dy,
               const float *sy, int t0, int nt, float (*s_a)[CUDA_EXACT_NR],
               float (*s_b)[CUDA_EXACT_NR], float (*s_c)[CUDA_EXACT_NR], float *s_m) {
    const int lane = threadIdx.x & 31;
    constexpr int BB = F == FMT_Q4_1 ? 20 : 34;
    const uint8_t *row = wd + (size_t)o * (size_t)nb * BB;
    float acc = 0.0f;
    for (int c0 = 0; c0 < nb; c0 += 32) {
        const int j = c0 + lane;
        const int cnt = nb - c0 < 32 ? nb - c0 : 32;
        if (j < nb) {
            const uint8_t *b = row + (size_t)j * BB;
            int wq[8]; /* the block's 32 codes as int8 words, in value order */
            float dw, mw = 0.0f;
            if constexpr (F == FMT_Q4_1) {
                const uint32_t *p = (const uint32_t *)b; /* 20-byte blocks: 4-byte aligned */
                const uint32_t dm = p[0];
                dw = h2f((uint16_t)(dm & 0xFFFF));
                mw = h2f((uint16_t)(dm >> 16));
#pragma unroll
                for (int i = 0; i < 4; i++) {
                    const uint32_t q = p[1 + i];
                    wq[i] = (int)(q & 0x0F0F0F0Fu);
                    wq[4 + i] = (int)((q >> 4) & 0x0F0F0F0Fu);
                }
            } else { /* Q8_0: 34-byte blocks, 2-byte aligned */
                const uint16_t *p = (const uint16_t *)b;
                dw = h2f(p[0]);
#pragma unroll
                for (int i = 0; i < 8; i++)
                    wq[i] = (int)((uint32_t)p[1 + 2 * i] | ((uint32_t)p[2 + 2 * i] << 16));
            }
            s_m[lane] = mw;
            for (int r = 0; r < nt; r++) {
                const size_t ab = (size_t)(t0 + r) * (size_t)nb + (size_t)j;
                const int4 *ap = (const int4 *)(qs + ab * 32);
                const int4 a0 = ap[0], a1 = ap[1];
                int is = 0;
                is = __dp4a(wq[0], a0.x, is);
                is = __dp4a(wq[1], a0.y, is);
                is = __dp4a(wq[2], a0.z, is);
                is = __dp4a(wq[3], a0.w, is);
                is = __dp4a(wq[4], a1.x, is);
                is = __dp4a(wq[5], a1.y, is);
                is = __dp4a(wq[6], a1.z, is);
                is = __dp4a(wq[7], a1.w, is);
                s_a[lane][r] = __fmul_rn(dw, dy[ab]);
                s_b[lane][r] = (float)is;
                if constexpr (F == FMT_Q4_1) s_c[lane][r] = sy[ab];
            }
        }
        __syncwarp();
        if (lane < nt) {
            for (int i = 0; i < cnt; i++) {
                acc = __fmaf_rn(s_a[i][lane], s_b[i][lane], acc);
                if constexpr (F == FMT_Q4_1) acc = __fmaf_rn(s_m[i], s_c[i][lane], acc);
            }
        }
        __syncwarp();
    }
    return acc;
}

/* the RMSNorm scale of a row from its sum of squares (squares in float, summed in double):
 * the mean rounded to float, then 1 / sqrt(mean + eps) as the CPU computes it */
__device__ __forceinline__ float cuda_rms_scale(double ss, int64_t dim, float eps) {
    const float mean = (float)(ss / (double)dim);
    return __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(mean, eps)));
}

/* ---- RoPE (cuda_rope.cu) ---- */

struct cuda_rope_args {
    int32_t n_head, n_head_kv, head_dim, rot_dim, mode;
    float theta_scale;
    const float *ff;
    const float *cs; /* sglc_attn_params.rope_cs: the host's (cos, sin) per position and pair */
    int32_t cs_len;
};

/* the angle of pair i at pos as the CPU builds it: theta = pos multiplied i times by
 * theta_scale in float (then / freq_factors[i]) */
__device__ __forceinline__ void cuda_rope_pair(const cuda_rope_args &a, int32_t pos, int i,
                                               float &c, float &s) {
    if (a.cs && pos >= 0 && pos < a.cs_len) { /* the CPU's values (sglc_rope_table) */
        const float2 t = ((const float2 *)a.cs)[(size_t)pos * (size_t)(a.rot_dim / 2) + i];
        c = t.x;
        s = t.y;
        return;
    }
    float theta = (float)pos;
    for (int j = 0; j < i; j++)
        theta = __fmul_rn(theta, a.theta_scale);
    float angle = a.ff ? __fdiv_rn(theta, a.ff[i]) : theta;
    /* in double, then rounded: the correctly rounded value, which glibc's cosf / sinf (the
     * CPU's) return; CUDA's cosf / sinf are off by an ulp at times, and that ulp, through the
     * 8-bit activations of a Q4_1 model, moved its greedy tokens away from the CPU's */
    c = (float)cos((double)angle);
    s = (float)sin((double)angle);
}

__device__ __forceinline__ void cuda_store_kv(void *cache, int f16, size_t e, float v) {
    if (f16)
        ((__half *)cache)[e] = __float2half_rn(v);
    else
        ((float *)cache)[e] = v;
}

/* pair i's two indices in a head (NORM: 2i, 2i+1; NEOX: i, i + rot/2) and (x0, x1) rotated
 * by (c, s) with round-to-nearest products, as the CPU's plain C */
__device__ __forceinline__ void cuda_rope_idx(const cuda_rope_args &a, int i, int &i0, int &i1) {
    i0 = a.mode == SGLC_ROPE_NORM ? 2 * i : i;
    i1 = a.mode == SGLC_ROPE_NORM ? 2 * i + 1 : i + a.rot_dim / 2;
}
__device__ __forceinline__ void cuda_rope_rot(float x0, float x1, float c, float s, float &r0,
                                              float &r1) {
    r0 = __fsub_rn(__fmul_rn(x0, c), __fmul_rn(x1, s));
    r1 = __fadd_rn(__fmul_rn(x0, s), __fmul_rn(x1, c));
}

cuda_rope_args cuda_rope_args_of(const sglc_attn_params *p);

/* the attention parameters folded into an op's graph signature */
static inline uint64_t cuda_fbits(float f) {
    union {
        float f;
        uint32_t u;
    } c = {f};
    return c.u;
}
#define CUDA_ATTN_SIG(p)                                                                           \
    (uint64_t)(p)->n_head, (uint64_t)(p)->n_head_kv, (uint64_t)(p)->head_dim,                      \
        (uint64_t)(p)->rot_dim, cuda_fbits((p)->theta), (uint64_t)(p)->mode,                       \
        (uint64_t)(p)->kv_slots, (uint64_t)(p)->kv_type, U64((p)->freq_factors),                   \
        U64((p)->rope_cs), (uint64_t)(p)->rope_cs_len

#endif
