/* Weight formats on the device: every kernel that reads a weight (the matrix-vector kernels,
 * the dequantizing tile kernel, embed) sees a row as units of 32 consecutive values and asks
 * load_unit<F> for unit u. 32 divides every block of the quantized formats (Q4_0/Q4_1/Q8_0
 * blocks, an eighth of a K-quant super-block, MLX groups of 32/64/128 with 32 * bits a whole
 * number of words), so a unit never straddles a block and each one is a few aligned loads.
 * Layouts are the file's (quant/ggml_blocks.h, quant/mlx_affine.h); the arithmetic follows
 * the reference dequantizers in quant/ggml_types.c with round-to-nearest intrinsics, so an
 * embedding lookup is bit-identical to the CPU's. */
#ifndef SGLC_BACKEND_CUDA_FORMATS_CUH
#define SGLC_BACKEND_CUDA_FORMATS_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

enum {
    FMT_F32 = 0,
    FMT_F16,
    FMT_BF16,
    FMT_Q4_0,
    FMT_Q4_1,
    FMT_Q8_0,
    FMT_Q4_K,
    FMT_Q5_K,
    FMT_Q6_K,
    FMT_MLX2,
    FMT_MLX3,
    FMT_MLX4,
    FMT_MLX5,
    FMT_MLX6,
    FMT_MLX8,
    FMT_COUNT
};

/* a row of a weight and, for MLX affine, its scales and biases rows */
struct unit_src {
    const uint8_t *row;
    const uint8_t *srow, *brow;
    uint32_t qdtype; /* ggml type of the scales and biases */
    int group;
};

__device__ __forceinline__ float h2f(uint16_t h) {
    return __half2float(__ushort_as_half(h));
}
__device__ __forceinline__ float bf2f(uint16_t h) {
    return __uint_as_float((uint32_t)h << 16);
}
__device__ __forceinline__ uint16_t ld16(const uint8_t *p) {
    return *(const uint16_t *)p;
}
/* a scale or bias of an MLX group in its dtype (0 F32, 1 F16, 30 BF16) */
__device__ __forceinline__ float mlx_param(const uint8_t *row, uint32_t dtype, int g) {
    if (dtype == 0) return ((const float *)row)[g];
    uint16_t h = ((const uint16_t *)row)[g];
    return dtype == 1 ? h2f(h) : bf2f(h);
}
__device__ __forceinline__ float round_to(float v, uint32_t dtype) {
    if (dtype == 1) return __half2float(__float2half_rn(v));
    if (dtype == 30) return __bfloat162float(__float2bfloat16_rn(v));
    return v;
}

__device__ __forceinline__ void get_scale_min_k4(int j, const uint8_t *q, int &d, int &m) {
    if (j < 4) {
        d = q[j] & 63;
        m = q[j + 4] & 63;
    } else {
        d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/* values per block and bytes per block of a format (MLX: a unit's words * 4) */
__host__ __device__ constexpr int fmt_block_elems(int f) {
    return f == FMT_F32 || f == FMT_F16 || f == FMT_BF16     ? 1
           : f == FMT_Q4_0 || f == FMT_Q4_1 || f == FMT_Q8_0 ? 32
           : f == FMT_Q4_K || f == FMT_Q5_K || f == FMT_Q6_K ? 256
                                                             : 32;
}
__host__ __device__ constexpr int fmt_mlx_bits(int f) {
    return f == FMT_MLX2   ? 2
           : f == FMT_MLX3 ? 3
           : f == FMT_MLX4 ? 4
           : f == FMT_MLX5 ? 5
           : f == FMT_MLX6 ? 6
           : f == FMT_MLX8 ? 8
                           : 0;
}

/* v[0..31] = values 32u .. 32u+31 of the row. EXACT rounds an MLX value to its dtype as
 * mlx.core.dequantize does (embed); the matmuls use the unrounded s * q + b. */
template <int F, bool EXACT>
__device__ __forceinline__ void load_unit(const unit_src &s, int u, float (&v)[32]) {
    if constexpr (F == FMT_F32) {
        const float4 *p = (const float4 *)(s.row + (size_t)u * 128);
#pragma unroll
        for (int i = 0; i < 8; i++) {
            float4 a = p[i];
            v[4 * i] = a.x, v[4 * i + 1] = a.y, v[4 * i + 2] = a.z, v[4 * i + 3] = a.w;
        }
    } else if constexpr (F == FMT_F16 || F == FMT_BF16) {
        const uint4 *p = (const uint4 *)(s.row + (size_t)u * 64);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            uint4 a = p[i];
            uint32_t w[4] = {a.x, a.y, a.z, a.w};
#pragma unroll
            for (int j = 0; j < 4; j++) {
                uint16_t lo = (uint16_t)(w[j] & 0xFFFF), hi = (uint16_t)(w[j] >> 16);
                v[8 * i + 2 * j] = F == FMT_F16 ? h2f(lo) : bf2f(lo);
                v[8 * i + 2 * j + 1] = F == FMT_F16 ? h2f(hi) : bf2f(hi);
            }
        }
    } else if constexpr (F == FMT_Q4_0) {
        const uint8_t *b = s.row + (size_t)u * 18;
        const float d = h2f(ld16(b));
#pragma unroll
        for (int j = 0; j < 8; j++) {
            uint16_t q = ld16(b + 2 + 2 * j);
            int q0 = q & 0xFF, q1 = q >> 8;
            v[2 * j] = __fmul_rn((float)((q0 & 0xF) - 8), d);
            v[2 * j + 1] = __fmul_rn((float)((q1 & 0xF) - 8), d);
            v[2 * j + 16] = __fmul_rn((float)((q0 >> 4) - 8), d);
            v[2 * j + 17] = __fmul_rn((float)((q1 >> 4) - 8), d);
        }
    } else if constexpr (F == FMT_Q4_1) {
        const uint8_t *b = s.row + (size_t)u * 20;
        const float d = h2f(ld16(b)), m = h2f(ld16(b + 2));
#pragma unroll
        for (int j = 0; j < 4; j++) {
            uint32_t q = *(const uint32_t *)(b + 4 + 4 * j);
#pragma unroll
            for (int i = 0; i < 4; i++) {
                int qb = (q >> (8 * i)) & 0xFF;
                v[4 * j + i] = __fadd_rn(__fmul_rn((float)(qb & 0xF), d), m);
                v[4 * j + i + 16] = __fadd_rn(__fmul_rn((float)(qb >> 4), d), m);
            }
        }
    } else if constexpr (F == FMT_Q8_0) {
        const uint8_t *b = s.row + (size_t)u * 34;
        const float d = h2f(ld16(b));
#pragma unroll
        for (int j = 0; j < 16; j++) {
            uint16_t q = ld16(b + 2 + 2 * j);
            v[2 * j] = __fmul_rn((float)(int8_t)(q & 0xFF), d);
            v[2 * j + 1] = __fmul_rn((float)(int8_t)(q >> 8), d);
        }
    } else if constexpr (F == FMT_Q4_K || F == FMT_Q5_K) {
        const int sb = u >> 3, j = u & 7;
        const uint8_t *b = s.row + (size_t)sb * (F == FMT_Q4_K ? 144 : 176);
        const float d = h2f(ld16(b)), dmin = h2f(ld16(b + 2));
        int sc, m;
        get_scale_min_k4(j, b + 4, sc, m);
        const float d1 = __fmul_rn(d, (float)sc), m1 = __fmul_rn(dmin, (float)m);
        const uint8_t *qs = b + (F == FMT_Q4_K ? 16 : 48) + (j >> 1) * 32;
        const int shift = (j & 1) * 4;
        uint4 q4[2] = {((const uint4 *)qs)[0], ((const uint4 *)qs)[1]};
        const uint8_t *q = (const uint8_t *)q4;
        uint4 h4[2];
        if constexpr (F == FMT_Q5_K) {
            h4[0] = ((const uint4 *)(b + 16))[0];
            h4[1] = ((const uint4 *)(b + 16))[1];
        }
#pragma unroll
        for (int l = 0; l < 32; l++) {
            int qv = (q[l] >> shift) & 0xF;
            if constexpr (F == FMT_Q5_K) qv += ((((const uint8_t *)h4)[l] >> j) & 1) << 4;
            v[l] = __fsub_rn(__fmul_rn(d1, (float)qv), m1);
        }
    } else if constexpr (F == FMT_Q6_K) {
        const int sb = u >> 3, j = u & 7, h = j >> 2, qq = j & 3;
        const uint8_t *b = s.row + (size_t)sb * 210;
        const float d = h2f(ld16(b + 208));
        const uint8_t *ql = b + h * 64 + (qq & 1) * 32, *qh = b + 128 + h * 32;
        const int8_t *sc = (const int8_t *)(b + 192) + h * 8 + qq * 2;
        const float d0 = __fmul_rn(d, (float)sc[0]), d1 = __fmul_rn(d, (float)sc[1]);
#pragma unroll
        for (int l2 = 0; l2 < 16; l2++) {
            uint16_t lo = ld16(ql + 2 * l2), hi = ld16(qh + 2 * l2);
#pragma unroll
            for (int e = 0; e < 2; e++) {
                int l = 2 * l2 + e;
                int lb = (lo >> (8 * e)) & 0xFF, hb = (hi >> (8 * e)) & 0xFF;
                int q = ((qq >= 2 ? lb >> 4 : lb & 0xF) | (((hb >> (2 * qq)) & 3) << 4)) - 32;
                v[l] = __fmul_rn(l < 16 ? d0 : d1, (float)q);
            }
        }
    } else {
        constexpr int B = fmt_mlx_bits(F);
        const uint32_t *w = (const uint32_t *)s.row + (size_t)u * B;
        uint32_t wd[B];
        if constexpr (B == 4) {
            uint4 a = *(const uint4 *)w;
            wd[0] = a.x, wd[1] = a.y, wd[2] = a.z, wd[3] = a.w;
        } else if constexpr (B == 8) {
            uint4 a = ((const uint4 *)w)[0], c = ((const uint4 *)w)[1];
            wd[0] = a.x, wd[1] = a.y, wd[2] = a.z, wd[3] = a.w;
            wd[4] = c.x, wd[5] = c.y, wd[6] = c.z, wd[7] = c.w;
        } else {
#pragma unroll
            for (int i = 0; i < B; i++)
                wd[i] = w[i];
        }
        const int g = (u * 32) / s.group;
        const float sc = mlx_param(s.srow, s.qdtype, g), bi = mlx_param(s.brow, s.qdtype, g);
#pragma unroll
        for (int l = 0; l < 32; l++) {
            constexpr uint32_t mask = (1u << B) - 1u;
            const int bit = l * B, wi = bit >> 5, sh = bit & 31;
            uint32_t c = wd[wi] >> sh;
            if (sh + B > 32) c |= wd[wi + 1] << (32 - sh);
            c &= mask;
            if constexpr (EXACT) {
                float t = round_to(__fmul_rn(sc, (float)c), s.qdtype);
                v[l] = round_to(__fadd_rn(t, bi), s.qdtype);
            } else {
                v[l] = fmaf(sc, (float)c, bi);
            }
        }
    }
}

/* bytes of one row of k values in a format (MLX: the packed codes only) */
__host__ __device__ inline size_t fmt_row_bytes(int f, int64_t k) {
    switch (f) {
    case FMT_F32: return (size_t)k * 4;
    case FMT_F16:
    case FMT_BF16: return (size_t)k * 2;
    case FMT_Q4_0: return (size_t)(k / 32) * 18;
    case FMT_Q4_1: return (size_t)(k / 32) * 20;
    case FMT_Q8_0: return (size_t)(k / 32) * 34;
    case FMT_Q4_K: return (size_t)(k / 256) * 144;
    case FMT_Q5_K: return (size_t)(k / 256) * 176;
    case FMT_Q6_K: return (size_t)(k / 256) * 210;
    default: return (size_t)(k / 32) * (size_t)fmt_mlx_bits(f) * 4;
    }
}

/* the device format of a weight, or -1 */
static inline int fmt_of(uint32_t type, int bits) {
    switch (type) {
    case SGLC_GGML_TYPE_F32: return FMT_F32;
    case SGLC_GGML_TYPE_F16: return FMT_F16;
    case SGLC_GGML_TYPE_BF16: return FMT_BF16;
    case SGLC_GGML_TYPE_Q4_0: return FMT_Q4_0;
    case SGLC_GGML_TYPE_Q4_1: return FMT_Q4_1;
    case SGLC_GGML_TYPE_Q8_0: return FMT_Q8_0;
    case SGLC_GGML_TYPE_Q4_K: return FMT_Q4_K;
    case SGLC_GGML_TYPE_Q5_K: return FMT_Q5_K;
    case SGLC_GGML_TYPE_Q6_K: return FMT_Q6_K;
    case SGLC_WTYPE_MLX_AFFINE:
        switch (bits) {
        case 2: return FMT_MLX2;
        case 3: return FMT_MLX3;
        case 4: return FMT_MLX4;
        case 5: return FMT_MLX5;
        case 6: return FMT_MLX6;
        case 8: return FMT_MLX8;
        default: return -1;
        }
    default: return -1;
    }
}

/* unit_src of row r of w (device pointers) */
static inline __host__ __device__ unit_src unit_src_of(const uint8_t *dev, const uint8_t *sdev,
                                                       const uint8_t *bdev, int fmt, int64_t k,
                                                       uint32_t qdtype, int group, int64_t r) {
    unit_src s;
    s.row = dev + (size_t)r * fmt_row_bytes(fmt, k);
    s.srow = sdev;
    s.brow = bdev;
    s.qdtype = qdtype;
    s.group = group;
    if (sdev) {
        size_t es = qdtype == 0 ? 4 : 2;
        size_t off = (size_t)r * (size_t)(k / group) * es;
        s.srow = sdev + off;
        s.brow = bdev + off;
    }
    return s;
}

/* Calls fn(fmt_tag<F>{}) with F the compile-time format: fn is a generic lambda that reads
 * F as decltype(tag)::value. */
template <int F> struct fmt_tag { static constexpr int value = F; };
template <class Fn> static inline void fmt_dispatch(int f, Fn &&fn) {
    switch (f) {
    case FMT_F32: fn(fmt_tag<FMT_F32>{}); break;
    case FMT_F16: fn(fmt_tag<FMT_F16>{}); break;
    case FMT_BF16: fn(fmt_tag<FMT_BF16>{}); break;
    case FMT_Q4_0: fn(fmt_tag<FMT_Q4_0>{}); break;
    case FMT_Q4_1: fn(fmt_tag<FMT_Q4_1>{}); break;
    case FMT_Q8_0: fn(fmt_tag<FMT_Q8_0>{}); break;
    case FMT_Q4_K: fn(fmt_tag<FMT_Q4_K>{}); break;
    case FMT_Q5_K: fn(fmt_tag<FMT_Q5_K>{}); break;
    case FMT_Q6_K: fn(fmt_tag<FMT_Q6_K>{}); break;
    case FMT_MLX2: fn(fmt_tag<FMT_MLX2>{}); break;
    case FMT_MLX3: fn(fmt_tag<FMT_MLX3>{}); break;
    case FMT_MLX4: fn(fmt_tag<FMT_MLX4>{}); break;
    case FMT_MLX5: fn(fmt_tag<FMT_MLX5>{}); break;
    case FMT_MLX6: fn(fmt_tag<FMT_MLX6>{}); break;
    case FMT_MLX8: fn(fmt_tag<FMT_MLX8>{}); break;
    default: break;
    }
}

#endif
