/* AVX2 + FMA + F16C weight kernels (compiled with those flags; chosen at run time only when
 * the CPU has them). Each computes the same integer block sums as its reference in
 * kernels_ref.c and differs only in float summation order. The formats the default models use
 * (Q4_0, Q4_1, Q8_0, floats) have multi-row versions: one pass over a weight row feeds up to
 * SGLC_CPU_DOT_MAX_ROWS activation rows (Q4_1: 8, the default model's main format), and the
 * FMA latency chain is kept off a single-row matvec (two accumulators per row, or for Q4_1 one
 * accumulator updated once per 4 blocks). In a matmul the activation block
 * scales arrive pre-converted to f32 (xs), so the inner loop converts only the weights' f16
 * scales. The activation quantizers here are bit-identical to ggml's reference ones (roundf
 * emulated exactly). */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "backend/cpu/kernels_impl.h"
#include "backend/cpu/vexp_avx2.h"
#include "quant/ggml_blocks.h"
#include "quant/ggml_types.h"

#define INLINE static inline __attribute__((always_inline))

INLINE float h2f(uint16_t h) {
    return _cvtsh_ss(h);
}

INLINE float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

INLINE int hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

/* 16 bytes of nibbles -> 32 bytes: low nibbles (elements 0..15), then high (16..31). */
INLINE __m256i unpack_nibbles(const uint8_t *qs) {
    const __m128i t = _mm_loadu_si128((const __m128i *)qs);
    const __m256i b = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
    return _mm256_and_si256(b, _mm256_set1_epi8(0x0F));
}

/* Sum of u8 * i8 products, as 8 i32 lanes. */
INLINE __m256i dot_u8i8(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

/* ---- activation quantizers ---------------------------------------------------------------- */

/* roundf (half away from zero) of integral-range floats, exactly. */
INLINE __m256 round_away(__m256 v) {
    const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 sign = _mm256_and_ps(v, _mm256_set1_ps(-0.0f));
    const __m256 frac = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), _mm256_sub_ps(v, t));
    const __m256 up = _mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
    return _mm256_add_ps(t, _mm256_and_ps(up, _mm256_or_ps(_mm256_set1_ps(1.0f), sign)));
}

/* 32 floats -> 32 int8 (roundf(x * id)); returns the sum of the quants. */
INLINE int quantize_block32(const float *x, float id, int8_t *q) {
    const __m256 vid = _mm256_set1_ps(id);
    __m256i i[4];
    for (int j = 0; j < 4; j++)
        i[j] = _mm256_cvtps_epi32(round_away(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * j), vid)));
    __m256i sum = _mm256_add_epi32(_mm256_add_epi32(i[0], i[1]), _mm256_add_epi32(i[2], i[3]));
    __m256i p01 = _mm256_packs_epi32(i[0], i[1]); /* lanes: 0..3 4..7 | 8..11 12..15 mixed */
    __m256i p23 = _mm256_packs_epi32(i[2], i[3]);
    __m256i p = _mm256_packs_epi16(p01, p23);
    p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)q, p);
    return hsum_epi32(sum);
}

INLINE float amax_block32(const float *x) {
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 m = _mm256_and_ps(_mm256_loadu_ps(x), abs_mask);
    for (int j = 1; j < 4; j++)
        m = _mm256_max_ps(m, _mm256_and_ps(_mm256_loadu_ps(x + 8 * j), abs_mask));
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static void quantize_q8_0(const float *x, void *vy, int64_t k) {
    sglc_block_q8_0 *y = vy;
    for (int64_t i = 0; i < k / 32; i++, x += 32) {
        const float d = amax_block32(x) / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
        quantize_block32(x, id, y[i].qs);
    }
}

static void quantize_q8_1(const float *x, void *vy, int64_t k) {
    sglc_block_q8_1 *y = vy;
    for (int64_t i = 0; i < k / 32; i++, x += 32) {
        const float d = amax_block32(x) / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
        int sum = quantize_block32(x, id, y[i].qs);
        y[i].s = _cvtss_sh((float)sum * d, _MM_FROUND_TO_NEAREST_INT);
    }
}

/* quantize_q8_1, then in every pair of blocks (A, B) the quants reordered to
 * A.qs = [yA 0..15 | yB 0..15], B.qs = [yA 16..31 | yB 16..31] (dot_q4_1_rows, mm). A last odd
 * block keeps ggml's layout; the d and s headers are untouched. */
static void quantize_q8_1_mm(const float *x, void *vy, int64_t k) {
    sglc_block_q8_1 *y = vy;
    quantize_q8_1(x, vy, k);
    for (int64_t i = 0; i + 2 <= k / 32; i += 2) {
        const __m128i a_hi = _mm_loadu_si128((const __m128i *)(y[i].qs + 16));
        const __m128i b_lo = _mm_loadu_si128((const __m128i *)y[i + 1].qs);
        _mm_storeu_si128((__m128i *)(y[i].qs + 16), b_lo);
        _mm_storeu_si128((__m128i *)y[i + 1].qs, a_hi);
    }
}

static void quantize_f16(const float *x, void *vy, int64_t k) {
    uint16_t *y = vy;
    int64_t i = 0;
    for (; i + 8 <= k; i += 8)
        _mm_storeu_si128((__m128i *)(y + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < k; i++)
        y[i] = _cvtss_sh(x[i], _MM_FROUND_TO_NEAREST_INT);
}

static void quantize_bf16(const float *x, void *vy, int64_t k) {
    uint16_t *y = vy;
    for (int64_t i = 0; i < k; i++)
        y[i] = sglc_f32_to_bf16(x[i]);
}

static void quantize_f32(const float *x, void *y, int64_t k) {
    memcpy(y, x, (size_t)k * sizeof(float));
}

/* ---- float formats ------------------------------------------------------------------------ */

INLINE __m256 load_bf16(const uint16_t *p) {
    __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

INLINE __m256 load_f16(const uint16_t *p) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

INLINE float scalar_f32(const void *p, int64_t i) {
    return ((const float *)p)[i];
}
INLINE float scalar_f16(const void *p, int64_t i) {
    return h2f(((const uint16_t *)p)[i]);
}
INLINE float scalar_bf16(const void *p, int64_t i) {
    return sglc_bf16_to_f32(((const uint16_t *)p)[i]);
}
INLINE __m256 vec_f32(const void *p, int64_t i) {
    return _mm256_loadu_ps((const float *)p + i);
}
INLINE __m256 vec_f16(const void *p, int64_t i) {
    return load_f16((const uint16_t *)p + i);
}
INLINE __m256 vec_bf16(const void *p, int64_t i) {
    return load_bf16((const uint16_t *)p + i);
}

#define DEFINE_FLOAT_DOT(T)                                                                        \
    INLINE void dot_##T##_rows(int64_t k, float *s, const void *w, const char *x, size_t stride,   \
                               const float *xs, size_t xs_stride, const int R, const int pre) {    \
        (void)xs, (void)xs_stride, (void)pre;                                                      \
        __m256 acc[SGLC_CPU_DOT_MAX_ROWS][2];                                                      \
        for (int r = 0; r < R; r++)                                                                \
            acc[r][0] = acc[r][1] = _mm256_setzero_ps();                                           \
        int64_t i = 0;                                                                             \
        for (; i + 16 <= k; i += 16) {                                                             \
            const __m256 w0 = vec_##T(w, i), w1 = vec_##T(w, i + 8);                               \
            for (int r = 0; r < R; r++) {                                                          \
                const void *xr = x + (size_t)r * stride;                                           \
                acc[r][0] = _mm256_fmadd_ps(w0, vec_##T(xr, i), acc[r][0]);                        \
                acc[r][1] = _mm256_fmadd_ps(w1, vec_##T(xr, i + 8), acc[r][1]);                    \
            }                                                                                      \
        }                                                                                          \
        for (int r = 0; r < R; r++) {                                                              \
            const void *xr = x + (size_t)r * stride;                                               \
            float sum = hsum_ps(_mm256_add_ps(acc[r][0], acc[r][1]));                              \
            for (int64_t j = i; j < k; j++)                                                        \
                sum += scalar_##T(w, j) * scalar_##T(xr, j);                                       \
            s[r] = sum;                                                                            \
        }                                                                                          \
    }

DEFINE_FLOAT_DOT(f32)
DEFINE_FLOAT_DOT(f16)
DEFINE_FLOAT_DOT(bf16)

/* ---- 32-block integer formats ------------------------------------------------------------- */

/* The block loops run over groups of 4 blocks: the f16 scales of the 4 blocks are converted
 * with one vcvtph2ps (per weight row and per activation row), and the two accumulators per row
 * alternate between blocks so consecutive FMAs do not wait on each other. The 4-bit formats
 * handle two blocks per register: lanes 0-127 hold block A, lanes 128-255 block B. */

/* Accumulator for block u: alternate between two, for any number of rows. The summation order
 * of a row must not depend on how many rows share the pass, or a request's tokens would change
 * with the batch it runs in (batch invariance: the engine guarantees a request gets the same
 * tokens alone or among others). */
#define A2(u) ((u)&1)

#define ROW(x, r, stride, T) ((const T *)((x) + (size_t)(r) * (stride)))

INLINE __m128 fp16x4(uint16_t a, uint16_t b, uint16_t c, uint16_t d) {
    return _mm_cvtph_ps(_mm_setr_epi16((short)a, (short)b, (short)c, (short)d, 0, 0, 0, 0));
}

/* Two 32-bit words (f16 pairs) at the start of 4 blocks -> 8 floats. */
INLINE __m256 fp16x2x4(const void *b0, const void *b1, const void *b2, const void *b3) {
    uint32_t u[4];
    memcpy(&u[0], b0, 4);
    memcpy(&u[1], b1, 4);
    memcpy(&u[2], b2, 4);
    memcpy(&u[3], b3, 4);
    return _mm256_cvtph_ps(_mm_setr_epi32((int)u[0], (int)u[1], (int)u[2], (int)u[3]));
}

/* The (d, m) words of 4 consecutive Q4_1 blocks (20 bytes apart) -> 8 floats: two 32-byte
 * loads and three shuffles instead of four scalar inserts. Reads bytes 0..71 of the 80. */
INLINE __m256 q4_1_dm4(const sglc_block_q4_1 *b) {
    const char *p = (const char *)b;
    const __m256i v0 = _mm256_loadu_si256((const __m256i *)p);        /* dm0 d0, dm1 d5 */
    const __m256i v1 = _mm256_loadu_si256((const __m256i *)(p + 40)); /* dm2 d0, dm3 d5 */
    const __m256i t =
        _mm256_blend_epi32(v0, _mm256_shuffle_epi32(v1, _MM_SHUFFLE(1, 0, 1, 0)), 0xCC);
    const __m256i g = _mm256_permutevar8x32_epi32(t, _mm256_setr_epi32(0, 5, 2, 7, 0, 0, 0, 0));
    return _mm256_cvtph_ps(_mm256_castsi256_si128(g));
}

/* 16 bytes at a (lanes 0-127) and b (lanes 128-255). */
INLINE __m256i load2x16(const void *a, const void *b) {
    return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)a)),
                                   _mm_loadu_si128((const __m128i *)b), 1);
}

/* [s[i] x 4 | s[j] x 4] */
INLINE __m256 spread2(__m256 s, int i, int j) {
    return _mm256_permutevar8x32_ps(s, _mm256_setr_epi32(i, i, i, i, j, j, j, j));
}

/* Q8_0 weights x Q8_0 activations: |w| * sign(y, w) keeps maddubs's u8 x i8 form. */
INLINE void dot_q8_0_rows(int64_t k, float *s, const void *vw, const char *x, size_t stride,
                          const float *xs, size_t xs_stride, const int R, const int pre) {
    const sglc_block_q8_0 *w = vw;
    const int64_t nb = k / 32;
    __m256 acc[2][SGLC_CPU_DOT_MAX_ROWS];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
        acc[0][r] = acc[1][r] = _mm256_setzero_ps();
    int64_t ib = 0;
    for (; ib + 4 <= nb; ib += 4) {
        const __m128 dw = fp16x4(w[ib].d, w[ib + 1].d, w[ib + 2].d, w[ib + 3].d);
        __m256i qw[4], aw[4];
#pragma GCC unroll 4
        for (int u = 0; u < 4; u++) {
            qw[u] = _mm256_loadu_si256((const __m256i *)w[ib + u].qs);
            aw[u] = _mm256_sign_epi8(qw[u], qw[u]);
        }
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const sglc_block_q8_0 *y = ROW(x, r, stride, sglc_block_q8_0) + ib;
            const __m128 dy = pre ? _mm_loadu_ps(xs + (size_t)r * xs_stride + ib)
                                  : fp16x4(y[0].d, y[1].d, y[2].d, y[3].d);
            const __m256 sc = _mm256_castps128_ps256(_mm_mul_ps(dw, dy));
#pragma GCC unroll 4
            for (int u = 0; u < 4; u++) {
                const __m256i qy = _mm256_loadu_si256((const __m256i *)y[u].qs);
                const __m256i p = dot_u8i8(aw[u], _mm256_sign_epi8(qy, qw[u]));
                const __m256 su = _mm256_permutevar8x32_ps(sc, _mm256_set1_epi32(u));
                acc[A2(u)][r] = _mm256_fmadd_ps(su, _mm256_cvtepi32_ps(p), acc[A2(u)][r]);
            }
        }
    }
    for (; ib < nb; ib++) {
        const __m256i qw = _mm256_loadu_si256((const __m256i *)w[ib].qs);
        const __m256i aw = _mm256_sign_epi8(qw, qw);
        const float dw = h2f(w[ib].d);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const sglc_block_q8_0 *y = ROW(x, r, stride, sglc_block_q8_0) + ib;
            const __m256i qy = _mm256_loadu_si256((const __m256i *)y->qs);
            const __m256i p = dot_u8i8(aw, _mm256_sign_epi8(qy, qw));
            const float dy = pre ? xs[(size_t)r * xs_stride + ib] : h2f(y->d);
            acc[0][r] = _mm256_fmadd_ps(_mm256_set1_ps(dw * dy), _mm256_cvtepi32_ps(p), acc[0][r]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
        s[r] = hsum_ps(_mm256_add_ps(acc[0][r], acc[1][r]));
}

/* Q4_0 weights x Q8_0 activations. A pair of blocks A, B: low nibbles [A 0..15 | B 0..15]
 * meet activations [yA 0..15 | yB 0..15], high nibbles meet [yA 16..31 | yB 16..31]. */
INLINE void dot_q4_0_rows(int64_t k, float *s, const void *vw, const char *x, size_t stride,
                          const float *xs, size_t xs_stride, const int R, const int pre) {
    const sglc_block_q4_0 *w = vw;
    const int64_t nb = k / 32;
    const __m256i m4 = _mm256_set1_epi8(0x0F), eight = _mm256_set1_epi8(8);
    __m256 acc[2][SGLC_CPU_DOT_MAX_ROWS];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
        acc[0][r] = acc[1][r] = _mm256_setzero_ps();
    int64_t ib = 0;
    for (; ib + 4 <= nb; ib += 4) {
        const __m128 dw = fp16x4(w[ib].d, w[ib + 1].d, w[ib + 2].d, w[ib + 3].d);
        __m256i lo[2], hi[2], alo[2], ahi[2];
#pragma GCC unroll 2
        for (int p = 0; p < 2; p++) {
            const __m256i v = load2x16(w[ib + 2 * p].qs, w[ib + 2 * p + 1].qs);
            lo[p] = _mm256_sub_epi8(_mm256_and_si256(v, m4), eight);
            hi[p] = _mm256_sub_epi8(_mm256_and_si256(_mm256_srli_epi16(v, 4), m4), eight);
            alo[p] = _mm256_sign_epi8(lo[p], lo[p]);
            ahi[p] = _mm256_sign_epi8(hi[p], hi[p]);
        }
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const sglc_block_q8_0 *y = ROW(x, r, stride, sglc_block_q8_0) + ib;
            const __m128 dy = pre ? _mm_loadu_ps(xs + (size_t)r * xs_stride + ib)
                                  : fp16x4(y[0].d, y[1].d, y[2].d, y[3].d);
            const __m256 sc = _mm256_castps128_ps256(_mm_mul_ps(dw, dy));
#pragma GCC unroll 2
            for (int p = 0; p < 2; p++) {
                const __m256i ylo = load2x16(y[2 * p].qs, y[2 * p + 1].qs);
                const __m256i yhi = load2x16(y[2 * p].qs + 16, y[2 * p + 1].qs + 16);
                const __m256i p16 =
                    _mm256_add_epi16(_mm256_maddubs_epi16(alo[p], _mm256_sign_epi8(ylo, lo[p])),
                                     _mm256_maddubs_epi16(ahi[p], _mm256_sign_epi8(yhi, hi[p])));
                const __m256i p32 = _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
                acc[A2(p)][r] = _mm256_fmadd_ps(spread2(sc, 2 * p, 2 * p + 1),
                                                _mm256_cvtepi32_ps(p32), acc[A2(p)][r]);
            }
        }
    }
    for (; ib < nb; ib++) {
        const __m256i qw = _mm256_sub_epi8(unpack_nibbles(w[ib].qs), eight);
        const __m256i aw = _mm256_sign_epi8(qw, qw);
        const float dw = h2f(w[ib].d);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const sglc_block_q8_0 *y = ROW(x, r, stride, sglc_block_q8_0) + ib;
            const __m256i qy = _mm256_loadu_si256((const __m256i *)y->qs);
            const __m256i p = dot_u8i8(aw, _mm256_sign_epi8(qy, qw));
            const float dy = pre ? xs[(size_t)r * xs_stride + ib] : h2f(y->d);
            acc[0][r] = _mm256_fmadd_ps(_mm256_set1_ps(dw * dy), _mm256_cvtepi32_ps(p), acc[0][r]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
        s[r] = hsum_ps(_mm256_add_ps(acc[0][r], acc[1][r]));
}

/* Q4_1 weights x Q8_1 activations: sum d_w d_y sum(q_w q_y) + m_w s_y. Blocks go in pairs
 * (A, B): the low nibbles of both, [A 0..15 | B 0..15], meet activations [yA 0..15 | yB 0..15]
 * and the high nibbles meet [yA 16..31 | yB 16..31]. In a matmul (mm) the activations were
 * quantized in that order (quantize_q8_1_mm) so each is one 32-byte load; the public vec_dot
 * reads ggml's layout and assembles them. The (d, m) words of 4 weight blocks and the f32
 * (d, s) of 4 activation blocks give, in one multiply, [d_w d_y, m_w s_y] for all 4 blocks.
 * Each token has one accumulator, updated once per 4 blocks from a sum built off the loop-
 * carried chain; the arithmetic of a token is the same for every R (batch invariance). */
/* Codes of the pair w[0], w[1]: low nibbles [A 0..15 | B 0..15], high [A 16..31 | B 16..31]. */
INLINE void q4_1_pair_codes(const sglc_block_q4_1 *w, __m256i *lo, __m256i *hi) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i v = load2x16(w[0].qs, w[1].qs);
    *lo = _mm256_and_si256(v, m4);
    *hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
}

/* Integer sums of the pair's codes with activation blocks y[0], y[1]: lanes 0-3 block A, 4-7 B
 * (activations in the matmul layout when mm, else ggml's). */
INLINE __m256 q4_1_pair_dot(__m256i lo, __m256i hi, const sglc_block_q8_1 *y, const int mm) {
    const __m256i ylo =
        mm ? _mm256_loadu_si256((const __m256i *)y[0].qs) : load2x16(y[0].qs, y[1].qs);
    const __m256i yhi =
        mm ? _mm256_loadu_si256((const __m256i *)y[1].qs) : load2x16(y[0].qs + 16, y[1].qs + 16);
    const __m256i p16 =
        _mm256_add_epi16(_mm256_maddubs_epi16(lo, ylo), _mm256_maddubs_epi16(hi, yhi));
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
}

INLINE void dot_q4_1_rows(int64_t k, float *s, const void *vw, const char *x, size_t stride,
                          const float *xs, size_t xs_stride, const int R, const int mm) {
    const sglc_block_q4_1 *w = vw;
    const int64_t nb = k / 32;
    const __m256 odd = _mm256_castsi256_ps(_mm256_setr_epi32(0, -1, 0, -1, 0, -1, 0, -1));
    __m256 acc[SGLC_CPU_DOT_MAX_ROWS_WIDE];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
        acc[r] = _mm256_setzero_ps();
    int64_t ib = 0;
    for (; ib + 4 <= nb; ib += 4) {
        const __m256 fw = q4_1_dm4(w + ib);
        __m256i lo[2], hi[2];
        q4_1_pair_codes(w + ib, &lo[0], &hi[0]);
        q4_1_pair_codes(w + ib + 2, &lo[1], &hi[1]);
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            const sglc_block_q8_1 *y = ROW(x, r, stride, sglc_block_q8_1) + ib;
            const __m256 fy = mm ? _mm256_loadu_ps(xs + (size_t)r * xs_stride + 2 * ib)
                                 : fp16x2x4(&y[0], &y[1], &y[2], &y[3]);
            const __m256 prod = _mm256_mul_ps(fw, fy);
            __m256 t = _mm256_and_ps(prod, odd);
#pragma GCC unroll 2
            for (int p = 0; p < 2; p++) {
                t = _mm256_fmadd_ps(spread2(prod, 4 * p, 4 * p + 2),
                                    q4_1_pair_dot(lo[p], hi[p], y + 2 * p, mm), t);
            }
            acc[r] = _mm256_add_ps(acc[r], t);
        }
    }
    for (; ib + 2 <= nb; ib += 2) {
        __m256i lo, hi;
        q4_1_pair_codes(w + ib, &lo, &hi);
        const __m256 fw =
            _mm256_zextps128_ps256(fp16x4(w[ib].d, w[ib].m, w[ib + 1].d, w[ib + 1].m));
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            const sglc_block_q8_1 *y = ROW(x, r, stride, sglc_block_q8_1) + ib;
            const __m256 fy =
                _mm256_zextps128_ps256(mm ? _mm_loadu_ps(xs + (size_t)r * xs_stride + 2 * ib)
                                          : fp16x4(y[0].d, y[0].s, y[1].d, y[1].s));
            const __m256 prod = _mm256_mul_ps(fw, fy);
            const __m256 t = _mm256_fmadd_ps(spread2(prod, 0, 2), q4_1_pair_dot(lo, hi, y, mm),
                                             _mm256_and_ps(prod, odd));
            acc[r] = _mm256_add_ps(acc[r], t);
        }
    }
    if (ib < nb) { /* a last odd block: ggml's layout in both modes */
        const __m256i qw = unpack_nibbles(w[ib].qs);
        const float dw = h2f(w[ib].d), mw = h2f(w[ib].m);
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            const sglc_block_q8_1 *y = ROW(x, r, stride, sglc_block_q8_1) + ib;
            const __m256i qy = _mm256_loadu_si256((const __m256i *)y->qs);
            const size_t o = (size_t)r * xs_stride + 2 * (size_t)ib;
            const float dy = mm ? xs[o] : h2f(y->d), sy = mm ? xs[o + 1] : h2f(y->s);
            const __m256 t =
                _mm256_fmadd_ps(_mm256_set1_ps(dw * dy), _mm256_cvtepi32_ps(dot_u8i8(qw, qy)),
                                _mm256_setr_ps(mw * sy, 0, 0, 0, 0, 0, 0, 0));
            acc[r] = _mm256_add_ps(acc[r], t);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
        s[r] = hsum_ps(acc[r]);
}

static void dot_q4_1(int64_t k, float *s, const void *w, const void *x) {
    dot_q4_1_rows(k, s, w, x, 0, NULL, 0, 1, 0);
}

/* Matmul rows: activations from quantize_q8_1_mm, f32 scales in xs (always given: the entry
 * declares 2 scale floats). */
static void dot_q4_1_n(int64_t k, float *s, const void *w, const void *x, size_t stride,
                       const float *xs, size_t xss, int n) {
    switch (n) {
    case 1: dot_q4_1_rows(k, s, w, x, stride, xs, xss, 1, 1); break;
    case 2: dot_q4_1_rows(k, s, w, x, stride, xs, xss, 2, 1); break;
    case 3: dot_q4_1_rows(k, s, w, x, stride, xs, xss, 3, 1); break;
    case 4: dot_q4_1_rows(k, s, w, x, stride, xs, xss, 4, 1); break;
    case 5: dot_q4_1_rows(k, s, w, x, stride, xs, xss, 5, 1); break;
    case 6: dot_q4_1_rows(k, s, w, x, stride, xs, xss, 6, 1); break;
    case 7: dot_q4_1_rows(k, s, w, x, stride, xs, xss, 7, 1); break;
    default: dot_q4_1_rows(k, s, w, x, stride, xs, xss, 8, 1); break;
    }
}

/* ---- K formats (256-blocks, Q8_K activations) --------------------------------------------- */

/* Unpacks the 6-bit scales and mins of a Q4_K/Q5_K block into 8 + 8 bytes. */
INLINE void unpack_k_scales(const uint8_t *scales, uint8_t sc[8], uint8_t mn[8]) {
    for (int j = 0; j < 8; j++)
        sglc_get_scale_min_k4(j, scales, &sc[j], &mn[j]);
}

/* sum_j mn[j] * (bsums[2j] + bsums[2j+1]) */
INLINE int k_mins_dot(const uint8_t mn[8], const int16_t *bsums) {
    __m128i m8;
    uint64_t m64;
    memcpy(&m64, mn, 8);
    m8 = _mm_cvtsi64_si128((long long)m64);
    const __m256i m16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8));
    const __m256i b = _mm256_loadu_si256((const __m256i *)bsums);
    return hsum_epi32(_mm256_madd_epi16(b, m16));
}

static void dot_q4_K(int64_t k, float *s, const void *vw, const void *vx) {
    const sglc_block_q4_K *w = vw;
    const sglc_block_q8_K *y = vx;
    __m256 acc = _mm256_setzero_ps();
    float summ = 0;
    for (int64_t i = 0; i < k / SGLC_QK_K; i++) {
        uint8_t sc[8], mn[8];
        unpack_k_scales(w[i].scales, sc, mn);
        __m256i sumi = _mm256_setzero_si256();
        for (int c = 0; c < 4; c++) {
            const __m256i q4 = _mm256_loadu_si256((const __m256i *)(w[i].qs + 32 * c));
            const __m256i lo = _mm256_and_si256(q4, _mm256_set1_epi8(0x0F));
            const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q4, 4), _mm256_set1_epi8(0x0F));
            const __m256i y0 = _mm256_loadu_si256((const __m256i *)(y[i].qs + 64 * c));
            const __m256i y1 = _mm256_loadu_si256((const __m256i *)(y[i].qs + 64 * c + 32));
            const __m256i p0 =
                _mm256_madd_epi16(_mm256_maddubs_epi16(lo, y0), _mm256_set1_epi16(sc[2 * c]));
            const __m256i p1 =
                _mm256_madd_epi16(_mm256_maddubs_epi16(hi, y1), _mm256_set1_epi16(sc[2 * c + 1]));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p0, p1));
        }
        const float dy = y[i].d;
        acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(w[i].d) * dy), _mm256_cvtepi32_ps(sumi), acc);
        summ += h2f(w[i].dmin) * dy * (float)k_mins_dot(mn, y[i].bsums);
    }
    *s = hsum_ps(acc) - summ;
}

static void dot_q5_K(int64_t k, float *s, const void *vw, const void *vx) {
    const sglc_block_q5_K *w = vw;
    const sglc_block_q8_K *y = vx;
    __m256 acc = _mm256_setzero_ps();
    float summ = 0;
    const __m256i m4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
    for (int64_t i = 0; i < k / SGLC_QK_K; i++) {
        uint8_t sc[8], mn[8];
        unpack_k_scales(w[i].scales, sc, mn);
        const __m256i qh = _mm256_loadu_si256((const __m256i *)w[i].qh);
        __m256i sumi = _mm256_setzero_si256();
        for (int c = 0; c < 4; c++) {
            const __m256i q4 = _mm256_loadu_si256((const __m256i *)(w[i].qs + 32 * c));
            const __m128i sh0 = _mm_cvtsi32_si128(2 * c), sh1 = _mm_cvtsi32_si128(2 * c + 1);
            const __m256i h0 =
                _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(qh, sh0), one), 4);
            const __m256i h1 =
                _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(qh, sh1), one), 4);
            const __m256i lo = _mm256_or_si256(_mm256_and_si256(q4, m4), h0);
            const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q4, 4), m4), h1);
            const __m256i y0 = _mm256_loadu_si256((const __m256i *)(y[i].qs + 64 * c));
            const __m256i y1 = _mm256_loadu_si256((const __m256i *)(y[i].qs + 64 * c + 32));
            const __m256i p0 =
                _mm256_madd_epi16(_mm256_maddubs_epi16(lo, y0), _mm256_set1_epi16(sc[2 * c]));
            const __m256i p1 =
                _mm256_madd_epi16(_mm256_maddubs_epi16(hi, y1), _mm256_set1_epi16(sc[2 * c + 1]));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p0, p1));
        }
        const float dy = y[i].d;
        acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(w[i].d) * dy), _mm256_cvtepi32_ps(sumi), acc);
        summ += h2f(w[i].dmin) * dy * (float)k_mins_dot(mn, y[i].bsums);
    }
    *s = hsum_ps(acc) - summ;
}

/* Q6_K: q in 0..63 against y, minus 32 * sum(y) per 16-value sub-block (from bsums). */
static void dot_q6_K(int64_t k, float *s, const void *vw, const void *vx) {
    const sglc_block_q6_K *w = vw;
    const sglc_block_q8_K *y = vx;
    __m256 acc = _mm256_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(3);
    for (int64_t i = 0; i < k / SGLC_QK_K; i++) {
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)w[i].scales));
        const __m256i bs = _mm256_loadu_si256((const __m256i *)y[i].bsums);
        __m256i sumi = _mm256_slli_epi32(_mm256_madd_epi16(bs, sc16), 5);
        sumi = _mm256_sub_epi32(_mm256_setzero_si256(), sumi);
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = w[i].ql + 64 * h;
            const __m256i l0 = _mm256_loadu_si256((const __m256i *)ql);
            const __m256i l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
            const __m256i hb = _mm256_loadu_si256((const __m256i *)(w[i].qh + 32 * h));
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4),
                                   _mm256_slli_epi16(_mm256_and_si256(hb, m2), 4));
            q[1] = _mm256_or_si256(
                _mm256_and_si256(l1, m4),
                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2), m2), 4));
            q[2] = _mm256_or_si256(
                _mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 4), m2), 4));
            q[3] = _mm256_or_si256(
                _mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 6), m2), 4));
            for (int j = 0; j < 4; j++) {
                const int sb = 8 * h + 2 * j; /* sub-blocks sb (first 16 values), sb + 1 */
                const __m256i yv =
                    _mm256_loadu_si256((const __m256i *)(y[i].qs + 128 * h + 32 * j));
                const __m256i scv = _mm256_set_m128i(_mm_set1_epi16(w[i].scales[sb + 1]),
                                                     _mm_set1_epi16(w[i].scales[sb]));
                sumi =
                    _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(q[j], yv), scv));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(w[i].d) * y[i].d), _mm256_cvtepi32_ps(sumi), acc);
    }
    *s = hsum_ps(acc);
}

/* ---- entries ------------------------------------------------------------------------------ */

#define DEFINE_ENTRY_FNS(name)                                                                     \
    static void name(int64_t k, float *s, const void *w, const void *x) {                          \
        name##_rows(k, s, w, x, 0, NULL, 0, 1, 0);                                                 \
    }                                                                                              \
    static void name##_n(int64_t k, float *s, const void *w, const void *x, size_t stride,         \
                         const float *xs, size_t xss, int n) {                                     \
        if (xs) {                                                                                  \
            switch (n) {                                                                           \
            case 1: name##_rows(k, s, w, x, stride, xs, xss, 1, 1); break;                         \
            case 2: name##_rows(k, s, w, x, stride, xs, xss, 2, 1); break;                         \
            case 3: name##_rows(k, s, w, x, stride, xs, xss, 3, 1); break;                         \
            default: name##_rows(k, s, w, x, stride, xs, xss, 4, 1); break;                        \
            }                                                                                      \
        } else {                                                                                   \
            switch (n) {                                                                           \
            case 1: name##_rows(k, s, w, x, stride, NULL, 0, 1, 0); break;                         \
            case 2: name##_rows(k, s, w, x, stride, NULL, 0, 2, 0); break;                         \
            case 3: name##_rows(k, s, w, x, stride, NULL, 0, 3, 0); break;                         \
            default: name##_rows(k, s, w, x, stride, NULL, 0, 4, 0); break;                        \
            }                                                                                      \
        }                                                                                          \
    }

DEFINE_ENTRY_FNS(dot_f32)
DEFINE_ENTRY_FNS(dot_f16)
DEFINE_ENTRY_FNS(dot_bf16)
DEFINE_ENTRY_FNS(dot_q8_0)
DEFINE_ENTRY_FNS(dot_q4_0)

#define DEFINE_LOOP_N(name)                                                                        \
    static void name##_n(int64_t k, float *s, const void *w, const void *x, size_t stride,         \
                         const float *xs, size_t xss, int n) {                                     \
        (void)xs, (void)xss;                                                                       \
        for (int r = 0; r < n; r++)                                                                \
            name(k, s + r, w, (const char *)x + (size_t)r * stride);                               \
    }

DEFINE_LOOP_N(dot_q4_K)
DEFINE_LOOP_N(dot_q5_K)
DEFINE_LOOP_N(dot_q6_K)

/* ---- packed layouts (kernels_impl.h) ------------------------------------------------------ */

/* The packed kernel entry: n_tok (1..SGLC_CPU_PACK_TOKENS) as a compile-time constant. */
#define DEFINE_PACKED_GEMM(name)                                                                   \
    static void name(int64_t k, const void *wp, const char *xq, size_t xq_stride, const float *xs, \
                     size_t xs_stride, int n_tok, float *y, size_t y_stride) {                     \
        switch (n_tok) {                                                                           \
        case 1: name##_rows(k, wp, xq, xq_stride, xs, xs_stride, y, y_stride, 1); break;           \
        case 2: name##_rows(k, wp, xq, xq_stride, xs, xs_stride, y, y_stride, 2); break;           \
        case 3: name##_rows(k, wp, xq, xq_stride, xs, xs_stride, y, y_stride, 3); break;           \
        default: name##_rows(k, wp, xq, xq_stride, xs, xs_stride, y, y_stride, 4); break;          \
        }                                                                                          \
    }

/* Q4_1x8 weights x Q8_1 activations (ggml's layout, f32 scales in xs): 8 rows per pass, rows in
 * the lanes. Per block, chunk c's codes (4 of each row, low and high nibbles) meet the token's
 * 4 activation bytes at 4c (low) and 16 + 4c (high), broadcast to all rows; the 8 u8 x i8
 * products per lane pair add up in 16 bits (at most 16 x 15 x 127 = 30480, no saturation),
 * one madd gives each row's block sum. Then per row lane: acc = fma(d_w d_y, sum, acc);
 * acc = fma(m_w, s_y, acc), block after block, the same for every n_tok. */
INLINE void gemm_q4_1x8_rows(int64_t k, const void *wp, const char *xq, size_t xq_stride,
                             const float *xs, size_t xs_stride, float *y, size_t y_stride,
                             const int T) {
    const sglc_block_q4_1x8 *w = wp;
    const int64_t nb = k / 32;
    const __m256i m4 = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
    __m256 acc[SGLC_CPU_PACK_TOKENS];
#pragma GCC unroll 4
    for (int t = 0; t < T; t++)
        acc[t] = _mm256_setzero_ps();
    for (int64_t ib = 0; ib < nb; ib++) {
        const sglc_block_q4_1x8 *b = w + ib;
        __m256i s16[SGLC_CPU_PACK_TOKENS];
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            const __m256i v = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * c));
            const __m256i lo = _mm256_and_si256(v, m4);
            const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) {
                const sglc_block_q8_1 *yb = ROW(xq, t, xq_stride, sglc_block_q8_1) + ib;
                int32_t a, h;
                memcpy(&a, yb->qs + 4 * c, 4);
                memcpy(&h, yb->qs + 16 + 4 * c, 4);
                const __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(lo, _mm256_set1_epi32(a)),
                                                   _mm256_maddubs_epi16(hi, _mm256_set1_epi32(h)));
                s16[t] = c == 0 ? p : _mm256_add_epi16(s16[t], p);
                /* keeps the sums in registers chunk by chunk: left free, gcc computes all
                 * 32 products first and spills them */
                __asm__("" : "+x"(s16[t]));
            }
        }
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)b->d));
        const __m256 mw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)b->m));
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) {
            const float *f = xs + (size_t)t * xs_stride + 2 * (size_t)ib;
            const __m256 sum = _mm256_cvtepi32_ps(_mm256_madd_epi16(s16[t], ones));
            acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_broadcast_ss(f)), sum, acc[t]);
            acc[t] = _mm256_fmadd_ps(mw, _mm256_broadcast_ss(f + 1), acc[t]);
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < T; t++)
        _mm256_storeu_ps(y + (size_t)t * y_stride, acc[t]);
}

DEFINE_PACKED_GEMM(gemm_q4_1x8)

/* Q8_0x8 weights x Q8_0 activations (f32 scales in xs), the same scheme: per chunk of 4 values
 * of each row, |w| (u8) meets the token's 4 bytes with w's sign moved onto them, so each u8 x i8
 * product is w y; a pair is at most 2 x 128 x 127 = 32512, so each chunk goes to 32 bits at once.
 * Per row lane: acc = fma(d_w d_y, sum, acc), block after block, the same for every n_tok. */
INLINE void gemm_q8_0x8_rows(int64_t k, const void *wp, const char *xq, size_t xq_stride,
                             const float *xs, size_t xs_stride, float *y, size_t y_stride,
                             const int T) {
    const sglc_block_q8_0x8 *w = wp;
    const int64_t nb = k / 32;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[SGLC_CPU_PACK_TOKENS];
#pragma GCC unroll 4
    for (int t = 0; t < T; t++)
        acc[t] = _mm256_setzero_ps();
    for (int64_t ib = 0; ib < nb; ib++) {
        const sglc_block_q8_0x8 *b = w + ib;
        __m256i s32[SGLC_CPU_PACK_TOKENS];
#pragma GCC unroll 8
        for (int c = 0; c < 8; c++) {
            const __m256i v = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * c));
            const __m256i av = _mm256_sign_epi8(v, v);
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) {
                const sglc_block_q8_0 *yb = ROW(xq, t, xq_stride, sglc_block_q8_0) + ib;
                int32_t a;
                memcpy(&a, yb->qs + 4 * c, 4);
                const __m256i p = _mm256_madd_epi16(
                    _mm256_maddubs_epi16(av, _mm256_sign_epi8(_mm256_set1_epi32(a), v)), ones);
                s32[t] = c == 0 ? p : _mm256_add_epi32(s32[t], p);
                __asm__("" : "+x"(s32[t])); /* as in gemm_q4_1x8_rows */
            }
        }
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)b->d));
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) {
            const __m256 dy = _mm256_broadcast_ss(xs + (size_t)t * xs_stride + (size_t)ib);
            acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(dw, dy), _mm256_cvtepi32_ps(s32[t]), acc[t]);
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < T; t++)
        _mm256_storeu_ps(y + (size_t)t * y_stride, acc[t]);
}

DEFINE_PACKED_GEMM(gemm_q8_0x8)

static const sglc_cpu_packed_kernel k_q8_0x8 = {sizeof(sglc_block_q8_0x8), sglc_cpu_pack_q8_0x8,
                                                gemm_q8_0x8};

static const sglc_cpu_packed_kernel k_q4_1x8 = {sizeof(sglc_block_q4_1x8), sglc_cpu_pack_q4_1x8,
                                                gemm_q4_1x8};

#define ENTRY(act, quant, dot, nsc)                                                                \
    { {act, quant, dot}, dot##_n, nsc, SGLC_CPU_DOT_MAX_ROWS, NULL, NULL }

static const sglc_cpu_kernel_entry k_f32 = ENTRY(SGLC_GGML_TYPE_F32, quantize_f32, dot_f32, 0);
static const sglc_cpu_kernel_entry k_f16 = ENTRY(SGLC_GGML_TYPE_F16, quantize_f16, dot_f16, 0);
static const sglc_cpu_kernel_entry k_q4_0 = ENTRY(SGLC_GGML_TYPE_Q8_0, quantize_q8_0, dot_q4_0, 1);
/* Q4_1 takes 8 tokens per pass over a weight row (one accumulator per token fits them in
 * registers) and its own activation layout in matmuls. */
static const sglc_cpu_kernel_entry k_q4_1 = {
    {SGLC_GGML_TYPE_Q8_1, quantize_q8_1, dot_q4_1}, dot_q4_1_n, 2, 8, quantize_q8_1_mm, &k_q4_1x8};
static const sglc_cpu_kernel_entry k_q8_0 = {{SGLC_GGML_TYPE_Q8_0, quantize_q8_0, dot_q8_0},
                                             dot_q8_0_n,
                                             1,
                                             SGLC_CPU_DOT_MAX_ROWS,
                                             NULL,
                                             &k_q8_0x8};
static const sglc_cpu_kernel_entry k_bf16 = ENTRY(SGLC_GGML_TYPE_BF16, quantize_bf16, dot_bf16, 0);
/* Q8_K activations use the reference quantizer (one scale per 256 values, rarely hot). */
static const sglc_cpu_kernel_entry k_q4_K =
    ENTRY(SGLC_GGML_TYPE_Q8_K, sglc_quantize_row_q8_K_ref, dot_q4_K, 0);
static const sglc_cpu_kernel_entry k_q5_K =
    ENTRY(SGLC_GGML_TYPE_Q8_K, sglc_quantize_row_q8_K_ref, dot_q5_K, 0);
static const sglc_cpu_kernel_entry k_q6_K =
    ENTRY(SGLC_GGML_TYPE_Q8_K, sglc_quantize_row_q8_K_ref, dot_q6_K, 0);

const sglc_cpu_kernel_entry *sglc_cpu_kernels_avx2(uint32_t wtype) {
    switch (wtype) {
    case SGLC_GGML_TYPE_F32: return &k_f32;
    case SGLC_GGML_TYPE_F16: return &k_f16;
    case SGLC_GGML_TYPE_BF16: return &k_bf16;
    case SGLC_GGML_TYPE_Q4_0: return &k_q4_0;
    case SGLC_GGML_TYPE_Q4_1: return &k_q4_1;
    case SGLC_GGML_TYPE_Q8_0: return &k_q8_0;
    case SGLC_GGML_TYPE_Q4_K: return &k_q4_K;
    case SGLC_GGML_TYPE_Q5_K: return &k_q5_K;
    case SGLC_GGML_TYPE_Q6_K: return &k_q6_K;
    default: return NULL;
    }
}

/* ---- attention helpers over an f16 cache ---------------------------------------------------- */

float sglc_avx2_dot_f32_f16(const float *a, const uint16_t *b, int32_t n) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int32_t i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i),
                               _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b + i))), acc0);
        acc1 =
            _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8),
                            _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b + i + 8))), acc1);
    }
    float s = hsum_ps(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++)
        s += a[i] * _cvtsh_ss(b[i]);
    return s;
}

void sglc_avx2_axpy_f16(float *o, float w, const uint16_t *v, int32_t n) {
    const __m256 vw = _mm256_set1_ps(w);
    int32_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(
            o + i, _mm256_fmadd_ps(vw, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(v + i))),
                                   _mm256_loadu_ps(o + i)));
    for (; i < n; i++)
        o[i] += w * _cvtsh_ss(v[i]);
}

float sglc_avx2_dot_f32_f32(const float *a, const float *b, int32_t n) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int32_t i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
    }
    float s = hsum_ps(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++)
        s += a[i] * b[i];
    return s;
}

void sglc_avx2_axpy_f32(float *o, float w, const float *v, int32_t n) {
    const __m256 vw = _mm256_set1_ps(w);
    int32_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(o + i,
                         _mm256_fmadd_ps(vw, _mm256_loadu_ps(v + i), _mm256_loadu_ps(o + i)));
    for (; i < n; i++)
        o[i] += w * v[i];
}

/* f32 -> f16 (round to nearest even, as sglc_f32_to_fp16) for n values. */
void sglc_avx2_f32_to_f16_row(uint16_t *dst, const float *src, int32_t n) {
    int32_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++)
        dst[i] = _cvtss_sh(src[i], _MM_FROUND_TO_NEAREST_INT);
}

/* Values rounded through f16 (F16C, round to nearest even), in place. */
INLINE void round_f16_inplace(float *x, int32_t n) {
    int32_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i, _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_loadu_ps(x + i),
                                                                _MM_FROUND_TO_NEAREST_INT)));
    for (; i < n; i++)
        x[i] = _cvtsh_ss(_cvtss_sh(x[i], _MM_FROUND_TO_NEAREST_INT));
}

/* Causal attention of one (token, head) over an f16 cache, with the arithmetic of the generic
 * path in cpu_backend.c (ggml's non-flash order: q rounded to f16, q.k in f32 with two
 * accumulators per 16 values, softmax in f32 with libm expf, probabilities rounded to f16,
 * out accumulated position after position with one FMA per value) and none of its per-position
 * calls: the output stays in registers, 64 dimensions at a time. */
void sglc_avx2_attn_f16(const float *q, const uint16_t *kc, const uint16_t *vc, size_t stride,
                        const int32_t *slots, int32_t n_ctx, int32_t hd, float scale, float *sc,
                        float *out) {
    float qh[512];
    if (hd > 512) hd = 512; /* callers assert hd <= 512 */
    memcpy(qh, q, sizeof(float) * (size_t)hd);
    round_f16_inplace(qh, hd);
    float mx = -INFINITY;
    int32_t s_done = 0;
    if (hd % 16 == 0) {
        /* 8 positions at a time: 8 dot products reduced into one vector by a transpose-add
         * (no horizontal sum per score) */
        __m256 vmx = _mm256_set1_ps(-INFINITY);
        for (; s_done + 8 <= n_ctx; s_done += 8) {
            __m256 a[8];
            for (int j = 0; j < 8; j++) {
                const uint16_t *k = kc + (size_t)slots[s_done + j] * stride;
                __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
                for (int32_t i = 0; i < hd; i += 16) {
                    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(qh + i), load_f16(k + i), acc0);
                    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(qh + i + 8), load_f16(k + i + 8), acc1);
                }
                a[j] = _mm256_add_ps(acc0, acc1);
            }
            __m256 u0 = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
            __m256 u1 = _mm256_hadd_ps(_mm256_hadd_ps(a[4], a[5]), _mm256_hadd_ps(a[6], a[7]));
            __m256 v = _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20),
                                     _mm256_permute2f128_ps(u0, u1, 0x31));
            v = _mm256_mul_ps(v, _mm256_set1_ps(scale));
            _mm256_storeu_ps(sc + s_done, v);
            vmx = _mm256_max_ps(vmx, v);
        }
        float m8[8];
        _mm256_storeu_ps(m8, vmx);
        for (int j = 0; j < 8; j++)
            mx = m8[j] > mx ? m8[j] : mx;
    }
    for (int32_t s = s_done; s < n_ctx; s++) {
        const uint16_t *k = kc + (size_t)slots[s] * stride;
        __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
        int32_t i = 0;
        for (; i + 16 <= hd; i += 16) {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(qh + i), load_f16(k + i), acc0);
            acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(qh + i + 8), load_f16(k + i + 8), acc1);
        }
        float v = hsum_ps(_mm256_add_ps(acc0, acc1));
        for (; i < hd; i++)
            v += qh[i] * _cvtsh_ss(k[i]);
        v *= scale;
        sc[s] = v;
        if (v > mx) mx = v;
    }
    /* exp 8 at a time (ggml's vector expf); scores past n_ctx in the last group are -inf -> 0 */
    __m256 vsum = _mm256_setzero_ps();
    int32_t s0 = 0;
    for (; s0 + 8 <= n_ctx; s0 += 8) {
        __m256 e = sglc_v_expf(_mm256_sub_ps(_mm256_loadu_ps(sc + s0), _mm256_set1_ps(mx)));
        _mm256_storeu_ps(sc + s0, e);
        vsum = _mm256_add_ps(vsum, e);
    }
    if (s0 < n_ctx) {
        float t[8];
        for (int j = 0; j < 8; j++)
            t[j] = s0 + j < n_ctx ? sc[s0 + j] - mx : -INFINITY;
        __m256 e = sglc_v_expf(_mm256_loadu_ps(t));
        _mm256_storeu_ps(t, e);
        for (int j = 0; s0 + j < n_ctx; j++)
            sc[s0 + j] = t[j];
        vsum = _mm256_add_ps(vsum, e);
    }
    const float inv = 1.0f / hsum_ps(vsum);
    int32_t s8 = 0;
    for (; s8 + 8 <= n_ctx; s8 += 8)
        _mm256_storeu_ps(sc + s8, _mm256_mul_ps(_mm256_loadu_ps(sc + s8), _mm256_set1_ps(inv)));
    for (; s8 < n_ctx; s8++)
        sc[s8] *= inv;
    round_f16_inplace(sc, n_ctx);
    int32_t d0 = 0;
    for (; d0 + 64 <= hd; d0 += 64) {
        __m256 o[8];
        for (int j = 0; j < 8; j++)
            o[j] = _mm256_setzero_ps();
        for (int32_t s = 0; s < n_ctx; s++) {
            const uint16_t *v = vc + (size_t)slots[s] * stride + d0;
            const __m256 w = _mm256_broadcast_ss(sc + s);
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++)
                o[j] = _mm256_fmadd_ps(w, load_f16(v + 8 * j), o[j]);
        }
        for (int j = 0; j < 8; j++)
            _mm256_storeu_ps(out + d0 + 8 * j, o[j]);
    }
    if (d0 < hd) { /* dimensions past the last full 64 */
        memset(out + d0, 0, sizeof(float) * (size_t)(hd - d0));
        for (int32_t s = 0; s < n_ctx; s++)
            sglc_avx2_axpy_f16(out + d0, sc[s], vc + (size_t)slots[s] * stride + d0, hd - d0);
    }
}
