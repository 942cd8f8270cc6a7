/* AVX2 row kernels for MLX affine weights of 4 and 8 bits. Codes of a group are widened to f32
 * eight at a time (4-bit: 8 bytes zero-extended, then their low and high nibbles, which pairs
 * them with activations the matmul de-interleaved; 8-bit: two words zero-extended) and
 * multiplied into two accumulators per token (even and odd code octets); the group's sum is
 * scaled into a per-token vector accumulator, the bias term sum_g b_g * sum(x_g) kept in a
 * scalar. Every token runs the same sequence whatever nr is. */
#include <immintrin.h>
#include <string.h>

#include "backend/cpu/kernels_affine_impl.h"
#include "backend/cpu/kernels_impl.h"
#include "quant/ggml_types.h"

static inline float param(const void *row, uint32_t dtype, int64_t i) {
    if (dtype == SGLC_GGML_TYPE_F32) return ((const float *)row)[i];
    uint16_t h = ((const uint16_t *)row)[i];
    if (dtype == SGLC_GGML_TYPE_BF16) {
        /* inline: a call per group costs as much as the group's arithmetic */
        uint32_t u = (uint32_t)h << 16;
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    return _cvtsh_ss(h);
}

static inline float hsum(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

/* codes 8*o .. 8*o+7 of a group starting at word pointer wg, as f32 */
static inline __m256 codes8(const uint32_t *wg, int64_t o, const int bits) {
    if (bits == 4) {
        /* octet o: the low (even o) or high (odd o) nibbles of bytes 8 * (o / 2) .. + 7 */
        __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(wg + (o & ~1))));
        if (o & 1) return _mm256_cvtepi32_ps(_mm256_srli_epi32(v, 4));
        return _mm256_cvtepi32_ps(_mm256_and_si256(v, _mm256_set1_epi32(15)));
    }
    __m128i b = _mm_loadl_epi64((const __m128i *)(wg + 2 * o));
    return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(b));
}

static inline __attribute__((always_inline)) void
dot_body(int64_t k, int group, uint32_t dtype, const uint32_t *wrow, const void *srow,
         const void *brow, const float *x, size_t x_stride, const float *xs, size_t xs_stride,
         int nr, float *s, const int bits) {
    const int64_t ng = k / group;
    const int64_t octets = group / 8;
    const int64_t gwords = group * bits / 32;
    __m256 acc[SGLC_CPU_DOT_MAX_ROWS];
    float bsum[SGLC_CPU_DOT_MAX_ROWS];
    for (int r = 0; r < nr; r++) {
        acc[r] = _mm256_setzero_ps();
        bsum[r] = 0;
    }
    for (int64_t g = 0; g < ng; g++) {
        const uint32_t *wg = wrow + g * gwords;
        const float *xg = x + g * group;
        __m256 d0[SGLC_CPU_DOT_MAX_ROWS], d1[SGLC_CPU_DOT_MAX_ROWS];
        for (int r = 0; r < nr; r++) {
            d0[r] = _mm256_setzero_ps();
            d1[r] = _mm256_setzero_ps();
        }
        for (int64_t o = 0; o < octets; o += 2) {
            __m256 q0 = codes8(wg, o, bits), q1 = codes8(wg, o + 1, bits);
            for (int r = 0; r < nr; r++) {
                const float *xr = xg + (size_t)r * x_stride + o * 8;
                d0[r] = _mm256_fmadd_ps(q0, _mm256_loadu_ps(xr), d0[r]);
                d1[r] = _mm256_fmadd_ps(q1, _mm256_loadu_ps(xr + 8), d1[r]);
            }
        }
        const __m256 vs = _mm256_set1_ps(param(srow, dtype, g));
        const float b = param(brow, dtype, g);
        for (int r = 0; r < nr; r++) {
            acc[r] = _mm256_fmadd_ps(vs, _mm256_add_ps(d0[r], d1[r]), acc[r]);
            bsum[r] += b * xs[(size_t)r * xs_stride + (size_t)g];
        }
    }
    for (int r = 0; r < nr; r++)
        s[r] = hsum(acc[r]) + bsum[r];
}

static void dot_q4(int64_t k, int group, uint32_t dtype, const uint32_t *wrow, const void *srow,
                   const void *brow, const float *x, size_t x_stride, const float *xs,
                   size_t xs_stride, int nr, float *s) {
    /* nr as a constant keeps the accumulators in registers; more than 2 tokens would spill them,
     * so 3 and 4 run as passes of 2 and 1 (each token's arithmetic is the same either way) */
    switch (nr) {
    case 1: dot_body(k, group, dtype, wrow, srow, brow, x, x_stride, xs, xs_stride, 1, s, 4); break;
    case 2: dot_body(k, group, dtype, wrow, srow, brow, x, x_stride, xs, xs_stride, 2, s, 4); break;
    case 3:
        dot_body(k, group, dtype, wrow, srow, brow, x, x_stride, xs, xs_stride, 2, s, 4);
        dot_body(k, group, dtype, wrow, srow, brow, x + 2 * x_stride, x_stride, xs + 2 * xs_stride,
                 xs_stride, 1, s + 2, 4);
        break;
    default:
        dot_body(k, group, dtype, wrow, srow, brow, x, x_stride, xs, xs_stride, 2, s, 4);
        dot_body(k, group, dtype, wrow, srow, brow, x + 2 * x_stride, x_stride, xs + 2 * xs_stride,
                 xs_stride, 2, s + 2, 4);
    }
}

static void dot_q8(int64_t k, int group, uint32_t dtype, const uint32_t *wrow, const void *srow,
                   const void *brow, const float *x, size_t x_stride, const float *xs,
                   size_t xs_stride, int nr, float *s) {
    /* see dot_q4 */
    switch (nr) {
    case 1: dot_body(k, group, dtype, wrow, srow, brow, x, x_stride, xs, xs_stride, 1, s, 8); break;
    case 2: dot_body(k, group, dtype, wrow, srow, brow, x, x_stride, xs, xs_stride, 2, s, 8); break;
    case 3:
        dot_body(k, group, dtype, wrow, srow, brow, x, x_stride, xs, xs_stride, 2, s, 8);
        dot_body(k, group, dtype, wrow, srow, brow, x + 2 * x_stride, x_stride, xs + 2 * xs_stride,
                 xs_stride, 1, s + 2, 8);
        break;
    default:
        dot_body(k, group, dtype, wrow, srow, brow, x, x_stride, xs, xs_stride, 2, s, 8);
        dot_body(k, group, dtype, wrow, srow, brow, x + 2 * x_stride, x_stride, xs + 2 * xs_stride,
                 xs_stride, 2, s + 2, 8);
    }
}

/* 4-bit codes x 16-bit activations: a 64-value chunk is 32 packed bytes; its low and high
 * nibbles widen to int16 with in-lane unpacks (the activation order of
 * k_perm64 in kernels_affine.c), four vpmaddwd give 8 int32 partial sums (|q x| < 2^19, 64 of them
 * < 2^25: no overflow), scaled once per chunk by scale_g * xd_c into an f32 accumulator. */
static inline __attribute__((always_inline)) void
dot_q4_i16_body(int64_t k, int group, uint32_t dtype, const uint32_t *wrow, const void *srow,
                const void *brow, const int16_t *xq, const float *xd, const float *xs,
                size_t xs_stride, const int nr, float *s) {
    const int64_t ng = k / group, cpg = group / 64, nch = k / 64;
    const __m256i m4 = _mm256_set1_epi8(0x0F), z = _mm256_setzero_si256();
    __m256 acc[SGLC_CPU_DOT_MAX_ROWS];
    float bsum[SGLC_CPU_DOT_MAX_ROWS];
    for (int r = 0; r < nr; r++) {
        acc[r] = _mm256_setzero_ps();
        bsum[r] = 0;
    }
    for (int64_t g = 0; g < ng; g++) {
        const float sc = param(srow, dtype, g), b = param(brow, dtype, g);
        for (int64_t c = g * cpg; c < (g + 1) * cpg; c++) {
            const __m256i v = _mm256_loadu_si256((const __m256i *)(wrow + c * 8));
            const __m256i lo = _mm256_and_si256(v, m4);
            const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
            const __m256i e0 = _mm256_unpacklo_epi8(lo, z), e1 = _mm256_unpackhi_epi8(lo, z);
            const __m256i o0 = _mm256_unpacklo_epi8(hi, z), o1 = _mm256_unpackhi_epi8(hi, z);
            for (int r = 0; r < nr; r++) {
                const __m256i *xr = (const __m256i *)(xq + (size_t)r * (size_t)k + c * 64);
                const __m256i p01 =
                    _mm256_add_epi32(_mm256_madd_epi16(e0, _mm256_loadu_si256(xr)),
                                     _mm256_madd_epi16(e1, _mm256_loadu_si256(xr + 1)));
                const __m256i p23 =
                    _mm256_add_epi32(_mm256_madd_epi16(o0, _mm256_loadu_si256(xr + 2)),
                                     _mm256_madd_epi16(o1, _mm256_loadu_si256(xr + 3)));
                acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(sc * xd[(size_t)r * (size_t)nch + c]),
                                         _mm256_cvtepi32_ps(_mm256_add_epi32(p01, p23)), acc[r]);
            }
        }
        for (int r = 0; r < nr; r++)
            bsum[r] += b * xs[(size_t)r * xs_stride + (size_t)g];
    }
    for (int r = 0; r < nr; r++)
        s[r] = hsum(acc[r]) + bsum[r];
}

static void dot_q4_i16(int64_t k, int group, uint32_t dtype, const uint32_t *wrow, const void *srow,
                       const void *brow, const int16_t *xq, const float *xd, const float *xs,
                       size_t xs_stride, int nr, float *s) {
    switch (nr) {
    case 1: dot_q4_i16_body(k, group, dtype, wrow, srow, brow, xq, xd, xs, xs_stride, 1, s); break;
    case 2: dot_q4_i16_body(k, group, dtype, wrow, srow, brow, xq, xd, xs, xs_stride, 2, s); break;
    case 3: dot_q4_i16_body(k, group, dtype, wrow, srow, brow, xq, xd, xs, xs_stride, 3, s); break;
    default: dot_q4_i16_body(k, group, dtype, wrow, srow, brow, xq, xd, xs, xs_stride, 4, s);
    }
}

sglc_cpu_affine_kernel sglc_cpu_affine_dot_avx2(int bits) {
    sglc_cpu_affine_kernel k = {NULL, NULL, 0};
    if (bits == 4) k = (sglc_cpu_affine_kernel){dot_q4, dot_q4_i16, 1};
    if (bits == 8) k = (sglc_cpu_affine_kernel){dot_q8, NULL, 0};
    return k;
}
