/* AVX2 + FMA + F16C weight kernels (compiled with those flags; chosen at run time only when
 * the CPU has them). Each computes the same integer block sums as its reference in
 * kernels_ref.c and differs only in float summation order. The formats the default models use
 * (Q4_0, Q4_1, Q8_0, floats) have multi-row versions: one pass over a weight row feeds up to
 * SGLC_CPU_DOT_MAX_ROWS activation rows, and the block loop keeps two accumulators per row so
 * the FMA latency chain does not bound a single-row matvec. The activation quantizers here are
 * bit-identical to ggml's reference ones (roundf emulated exactly). */
#include <immintrin.h>
#include <string.h>

#include "backend/cpu/kernels_impl.h"
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
                               const int R) {                                                      \
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

/* Q8_0 weights x Q8_0 activations: |w| * sign(y, w) keeps maddubs's u8 x i8 form. */
INLINE void dot_q8_0_rows(int64_t k, float *s, const void *vw, const char *x, size_t stride,
                          const int R) {
    const sglc_block_q8_0 *w = vw;
    const int64_t nb = k / 32;
    __m256 acc[SGLC_CPU_DOT_MAX_ROWS][2];
    for (int r = 0; r < R; r++)
        acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    int64_t ib = 0;
    for (; ib + 2 <= nb; ib += 2) {
        for (int u = 0; u < 2; u++) {
            const __m256i qw = _mm256_loadu_si256((const __m256i *)w[ib + u].qs);
            const __m256i aw = _mm256_sign_epi8(qw, qw);
            const float dw = h2f(w[ib + u].d);
            for (int r = 0; r < R; r++) {
                const sglc_block_q8_0 *y = (const sglc_block_q8_0 *)(x + (size_t)r * stride);
                const __m256i qy = _mm256_loadu_si256((const __m256i *)y[ib + u].qs);
                const __m256i p = dot_u8i8(aw, _mm256_sign_epi8(qy, qw));
                acc[r][u] = _mm256_fmadd_ps(_mm256_set1_ps(dw * h2f(y[ib + u].d)),
                                            _mm256_cvtepi32_ps(p), acc[r][u]);
            }
        }
    }
    for (; ib < nb; ib++) {
        const __m256i qw = _mm256_loadu_si256((const __m256i *)w[ib].qs);
        const __m256i aw = _mm256_sign_epi8(qw, qw);
        const float dw = h2f(w[ib].d);
        for (int r = 0; r < R; r++) {
            const sglc_block_q8_0 *y = (const sglc_block_q8_0 *)(x + (size_t)r * stride);
            const __m256i qy = _mm256_loadu_si256((const __m256i *)y[ib].qs);
            const __m256i p = dot_u8i8(aw, _mm256_sign_epi8(qy, qw));
            acc[r][0] = _mm256_fmadd_ps(_mm256_set1_ps(dw * h2f(y[ib].d)), _mm256_cvtepi32_ps(p),
                                        acc[r][0]);
        }
    }
    for (int r = 0; r < R; r++)
        s[r] = hsum_ps(_mm256_add_ps(acc[r][0], acc[r][1]));
}

/* Q4_0 weights x Q8_0 activations. */
INLINE void dot_q4_0_rows(int64_t k, float *s, const void *vw, const char *x, size_t stride,
                          const int R) {
    const sglc_block_q4_0 *w = vw;
    const int64_t nb = k / 32;
    __m256 acc[SGLC_CPU_DOT_MAX_ROWS][2];
    for (int r = 0; r < R; r++)
        acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    for (int64_t ib = 0; ib < nb; ib++) {
        const int u = (int)(ib & 1);
        const __m256i qw = _mm256_sub_epi8(unpack_nibbles(w[ib].qs), _mm256_set1_epi8(8));
        const __m256i aw = _mm256_sign_epi8(qw, qw);
        const float dw = h2f(w[ib].d);
        for (int r = 0; r < R; r++) {
            const sglc_block_q8_0 *y = (const sglc_block_q8_0 *)(x + (size_t)r * stride);
            const __m256i qy = _mm256_loadu_si256((const __m256i *)y[ib].qs);
            const __m256i p = dot_u8i8(aw, _mm256_sign_epi8(qy, qw));
            acc[r][u] = _mm256_fmadd_ps(_mm256_set1_ps(dw * h2f(y[ib].d)), _mm256_cvtepi32_ps(p),
                                        acc[r][u]);
        }
    }
    for (int r = 0; r < R; r++)
        s[r] = hsum_ps(_mm256_add_ps(acc[r][0], acc[r][1]));
}

/* Q4_1 weights x Q8_1 activations: sum d_w d_y sum(q_w q_y) + m_w s_y. The (d, m) pair of a
 * weight block and the (d, s) pair of an activation block are converted together, so one
 * multiply gives both d_w d_y and m_w s_y. */
INLINE void dot_q4_1_rows(int64_t k, float *s, const void *vw, const char *x, size_t stride,
                          const int R) {
    const sglc_block_q4_1 *w = vw;
    const int64_t nb = k / 32;
    __m256 acc[SGLC_CPU_DOT_MAX_ROWS][2];
    __m128 accm[SGLC_CPU_DOT_MAX_ROWS];
    for (int r = 0; r < R; r++) {
        acc[r][0] = acc[r][1] = _mm256_setzero_ps();
        accm[r] = _mm_setzero_ps();
    }
    for (int64_t ib = 0; ib < nb; ib++) {
        const int u = (int)(ib & 1);
        const __m256i qw = unpack_nibbles(w[ib].qs);
        uint32_t dmw;
        memcpy(&dmw, &w[ib], 4);
        const __m128 fw = _mm_cvtph_ps(_mm_cvtsi32_si128((int)dmw));
        for (int r = 0; r < R; r++) {
            const sglc_block_q8_1 *y = (const sglc_block_q8_1 *)(x + (size_t)r * stride);
            uint32_t dsy;
            memcpy(&dsy, &y[ib], 4);
            const __m128 prod = _mm_mul_ps(fw, _mm_cvtph_ps(_mm_cvtsi32_si128((int)dsy)));
            const __m256i qy = _mm256_loadu_si256((const __m256i *)y[ib].qs);
            const __m256i p = dot_u8i8(qw, qy);
            acc[r][u] =
                _mm256_fmadd_ps(_mm256_broadcastss_ps(prod), _mm256_cvtepi32_ps(p), acc[r][u]);
            accm[r] = _mm_add_ps(accm[r], prod);
        }
    }
    for (int r = 0; r < R; r++) {
        float m[4];
        _mm_storeu_ps(m, accm[r]);
        s[r] = hsum_ps(_mm256_add_ps(acc[r][0], acc[r][1])) + m[1];
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
        name##_rows(k, s, w, x, 0, 1);                                                             \
    }                                                                                              \
    static void name##_n(int64_t k, float *s, const void *w, const void *x, size_t stride,         \
                         int n) {                                                                  \
        switch (n) {                                                                               \
        case 1: name##_rows(k, s, w, x, stride, 1); break;                                         \
        case 2: name##_rows(k, s, w, x, stride, 2); break;                                         \
        case 3: name##_rows(k, s, w, x, stride, 3); break;                                         \
        default: name##_rows(k, s, w, x, stride, 4); break;                                        \
        }                                                                                          \
    }

DEFINE_ENTRY_FNS(dot_f32)
DEFINE_ENTRY_FNS(dot_f16)
DEFINE_ENTRY_FNS(dot_bf16)
DEFINE_ENTRY_FNS(dot_q8_0)
DEFINE_ENTRY_FNS(dot_q4_0)
DEFINE_ENTRY_FNS(dot_q4_1)

#define DEFINE_LOOP_N(name)                                                                        \
    static void name##_n(int64_t k, float *s, const void *w, const void *x, size_t stride,         \
                         int n) {                                                                  \
        for (int r = 0; r < n; r++)                                                                \
            name(k, s + r, w, (const char *)x + (size_t)r * stride);                               \
    }

DEFINE_LOOP_N(dot_q4_K)
DEFINE_LOOP_N(dot_q5_K)
DEFINE_LOOP_N(dot_q6_K)

#define ENTRY(act, quant, dot)                                                                     \
    { {act, quant, dot}, dot##_n }

static const sglc_cpu_kernel_entry k_f32 = ENTRY(SGLC_GGML_TYPE_F32, quantize_f32, dot_f32);
static const sglc_cpu_kernel_entry k_f16 = ENTRY(SGLC_GGML_TYPE_F16, quantize_f16, dot_f16);
static const sglc_cpu_kernel_entry k_q4_0 = ENTRY(SGLC_GGML_TYPE_Q8_0, quantize_q8_0, dot_q4_0);
static const sglc_cpu_kernel_entry k_q4_1 = ENTRY(SGLC_GGML_TYPE_Q8_1, quantize_q8_1, dot_q4_1);
static const sglc_cpu_kernel_entry k_q8_0 = ENTRY(SGLC_GGML_TYPE_Q8_0, quantize_q8_0, dot_q8_0);
static const sglc_cpu_kernel_entry k_bf16 = ENTRY(SGLC_GGML_TYPE_BF16, quantize_bf16, dot_bf16);
/* Q8_K activations use the reference quantizer (one scale per 256 values, rarely hot). */
static const sglc_cpu_kernel_entry k_q4_K =
    ENTRY(SGLC_GGML_TYPE_Q8_K, sglc_quantize_row_q8_K_ref, dot_q4_K);
static const sglc_cpu_kernel_entry k_q5_K =
    ENTRY(SGLC_GGML_TYPE_Q8_K, sglc_quantize_row_q8_K_ref, dot_q5_K);
static const sglc_cpu_kernel_entry k_q6_K =
    ENTRY(SGLC_GGML_TYPE_Q8_K, sglc_quantize_row_q8_K_ref, dot_q6_K);

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
