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

#define INLINE_AFF static inline __attribute__((always_inline))

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

/* 4-bit codes x 16-bit activations: a 64-value chunk is 32 packed bytes, i.e. 16 words whose
 * four nibbles are codes 4i .. 4i+3; shifts and masks widen them to int16 in four vectors
 * (nibble m of every word: the activation order of k_perm64 in kernels_affine.c), four vpmaddwd
 * give 8 int32 partial sums (|q x| < 2^19, 64 of them < 2^25: no overflow), scaled once per
 * chunk by scale_g * xd_c into one of two f32 accumulators (even and odd chunks, so a single
 * token is not bound by the FMA latency chain). */
INLINE_AFF void q4_chunk_codes(const uint32_t *wc, __m256i c[4]) {
    const __m256i m = _mm256_set1_epi16(0x000F);
    const __m256i v = _mm256_loadu_si256((const __m256i *)wc);
    c[0] = _mm256_and_si256(v, m);
    c[1] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m);
    c[2] = _mm256_and_si256(_mm256_srli_epi16(v, 8), m);
    c[3] = _mm256_srli_epi16(v, 12);
}

INLINE_AFF __m256 q4_chunk_dot(const __m256i c[4], const int16_t *xq) {
    const __m256i *x = (const __m256i *)xq;
    const __m256i p01 = _mm256_add_epi32(_mm256_madd_epi16(c[0], _mm256_loadu_si256(x)),
                                         _mm256_madd_epi16(c[1], _mm256_loadu_si256(x + 1)));
    const __m256i p23 = _mm256_add_epi32(_mm256_madd_epi16(c[2], _mm256_loadu_si256(x + 2)),
                                         _mm256_madd_epi16(c[3], _mm256_loadu_si256(x + 3)));
    return _mm256_cvtepi32_ps(_mm256_add_epi32(p01, p23));
}

/* 8 consecutive scales or biases of a row as f32 */
INLINE_AFF __m256 param8(const void *row, uint32_t dtype, int64_t i) {
    if (dtype == SGLC_GGML_TYPE_F32) return _mm256_loadu_ps((const float *)row + i);
    const __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)row + i));
    if (dtype == SGLC_GGML_TYPE_BF16)
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    return _mm256_cvtph_ps(h);
}

/* Group 64 (a chunk is a group): per 8 chunks the scales and biases of the row convert in one
 * vector each, the per-token chunk factors scale_c * xd_c are stored once and broadcast from
 * memory, and the bias terms sum_c b_c * xs_c accumulate in a vector. Chunks past the last
 * multiple of 8 take the scalar parameters. */
static inline __attribute__((always_inline)) void
dot_q4_i16_g64(int64_t k, uint32_t dtype, const uint32_t *wrow, const void *srow, const void *brow,
               const int16_t *xq, const float *xd, const float *xs, size_t xs_stride, const int nr,
               float *s) {
    const int64_t nch = k / 64;
    __m256 acc[2][SGLC_CPU_DOT_MAX_ROWS], bacc[SGLC_CPU_DOT_MAX_ROWS];
    float bsum[SGLC_CPU_DOT_MAX_ROWS];
    __attribute__((aligned(32))) float f[SGLC_CPU_DOT_MAX_ROWS][8];
    for (int r = 0; r < nr; r++) {
        acc[0][r] = acc[1][r] = bacc[r] = _mm256_setzero_ps();
        bsum[r] = 0;
    }
    int64_t c0 = 0;
    for (; c0 + 8 <= nch; c0 += 8) {
        const __m256 vs = param8(srow, dtype, c0), vb = param8(brow, dtype, c0);
        for (int r = 0; r < nr; r++) {
            _mm256_store_ps(f[r], _mm256_mul_ps(vs, _mm256_loadu_ps(xd + (size_t)r * nch + c0)));
            bacc[r] =
                _mm256_fmadd_ps(vb, _mm256_loadu_ps(xs + (size_t)r * xs_stride + c0), bacc[r]);
        }
        for (int cc = 0; cc < 8; cc += 2) {
            const int64_t c = c0 + cc;
            __m256i q0[4], q1[4];
            q4_chunk_codes(wrow + c * 8, q0);
            q4_chunk_codes(wrow + c * 8 + 8, q1);
            for (int r = 0; r < nr; r++) {
                const int16_t *xr = xq + (size_t)r * (size_t)k + c * 64;
                acc[0][r] = _mm256_fmadd_ps(_mm256_broadcast_ss(&f[r][cc]), q4_chunk_dot(q0, xr),
                                            acc[0][r]);
                acc[1][r] = _mm256_fmadd_ps(_mm256_broadcast_ss(&f[r][cc + 1]),
                                            q4_chunk_dot(q1, xr + 64), acc[1][r]);
            }
        }
    }
    for (int64_t c = c0; c < nch; c++) {
        const float sc = param(srow, dtype, c), b = param(brow, dtype, c);
        __m256i q0[4];
        q4_chunk_codes(wrow + c * 8, q0);
        for (int r = 0; r < nr; r++) {
            acc[(c - c0) & 1][r] = _mm256_fmadd_ps(
                _mm256_set1_ps(sc * xd[(size_t)r * (size_t)nch + c]),
                q4_chunk_dot(q0, xq + (size_t)r * (size_t)k + c * 64), acc[(c - c0) & 1][r]);
            bsum[r] += b * xs[(size_t)r * xs_stride + (size_t)c];
        }
    }
    for (int r = 0; r < nr; r++)
        s[r] = hsum(_mm256_add_ps(acc[0][r], acc[1][r])) + (hsum(bacc[r]) + bsum[r]);
}

/* Other group sizes (128, ...): scalar parameters per chunk. */
static inline __attribute__((always_inline)) void
dot_q4_i16_body(int64_t k, int group, uint32_t dtype, const uint32_t *wrow, const void *srow,
                const void *brow, const int16_t *xq, const float *xd, const float *xs,
                size_t xs_stride, const int nr, float *s) {
    if (group == 64) {
        dot_q4_i16_g64(k, dtype, wrow, srow, brow, xq, xd, xs, xs_stride, nr, s);
        return;
    }
    const int64_t ng = k / group, cpg = group / 64, nch = k / 64;
    __m256 acc[2][SGLC_CPU_DOT_MAX_ROWS];
    float bsum[SGLC_CPU_DOT_MAX_ROWS];
    for (int r = 0; r < nr; r++) {
        acc[0][r] = acc[1][r] = _mm256_setzero_ps();
        bsum[r] = 0;
    }
    for (int64_t g = 0; g < ng; g++) {
        const float b = param(brow, dtype, g);
        for (int r = 0; r < nr; r++)
            bsum[r] += b * xs[(size_t)r * xs_stride + (size_t)g];
    }
    for (int64_t c = 0; c < nch; c++) {
        const float sc = param(srow, dtype, c / cpg);
        __m256i q0[4];
        q4_chunk_codes(wrow + c * 8, q0);
        for (int r = 0; r < nr; r++)
            acc[c & 1][r] = _mm256_fmadd_ps(_mm256_set1_ps(sc * xd[(size_t)r * (size_t)nch + c]),
                                            q4_chunk_dot(q0, xq + (size_t)r * (size_t)k + c * 64),
                                            acc[c & 1][r]);
    }
    for (int r = 0; r < nr; r++)
        s[r] = hsum(_mm256_add_ps(acc[0][r], acc[1][r])) + bsum[r];
}

INLINE_AFF void dot_q4_i16_rows(int64_t k, int group, uint32_t dtype, const uint32_t *w,
                                size_t w_row_words, const char *scales, const char *biases,
                                size_t sbb, int64_t n_rows, const int16_t *xq, const float *xd,
                                const float *xs, size_t xs_stride, const int nr, float *y,
                                size_t y_stride) {
    float s[SGLC_CPU_DOT_MAX_ROWS];
    for (int64_t o = 0; o < n_rows; o++) {
        dot_q4_i16_body(k, group, dtype, w + (size_t)o * w_row_words, scales + (size_t)o * sbb,
                        biases + (size_t)o * sbb, xq, xd, xs, xs_stride, nr, s);
        for (int r = 0; r < nr; r++)
            y[(size_t)r * y_stride + (size_t)o] = s[r];
    }
}

static void dot_q4_i16(int64_t k, int group, uint32_t dtype, const uint32_t *w, size_t w_row_words,
                       const void *scales, const void *biases, size_t sbb, int64_t n_rows,
                       const int16_t *xq, const float *xd, const float *xs, size_t xs_stride,
                       int nr, float *y, size_t y_stride) {
#define DOT_Q4_I16_ROWS(NR)                                                                        \
    dot_q4_i16_rows(k, group, dtype, w, w_row_words, scales, biases, sbb, n_rows, xq, xd, xs,      \
                    xs_stride, NR, y, y_stride)
    switch (nr) {
    case 1: DOT_Q4_I16_ROWS(1); break;
    case 2: DOT_Q4_I16_ROWS(2); break;
    case 3: DOT_Q4_I16_ROWS(3); break;
    default: DOT_Q4_I16_ROWS(4);
    }
#undef DOT_Q4_I16_ROWS
}

sglc_cpu_affine_kernel sglc_cpu_affine_dot_avx2(int bits) {
    sglc_cpu_affine_kernel k = {NULL, NULL, 0};
    if (bits == 4) k = (sglc_cpu_affine_kernel){dot_q4, dot_q4_i16, 1};
    if (bits == 8) k = (sglc_cpu_affine_kernel){dot_q8, NULL, 0};
    return k;
}
