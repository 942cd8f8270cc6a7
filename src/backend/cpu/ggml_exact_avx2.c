/* llama.cpp-identical CPU arithmetic: see ggml_exact.h for what is reproduced and why.
 * Every float operation below stands for one in ggml's AVX2 build, in the same order; a change
 * that is harmless elsewhere (reassociating a sum, fusing or splitting a multiply-add) breaks the
 * bit-for-bit agreement that tests/unit/test_model_golden.c checks. Compiled with
 * -mavx2 -mfma -mf16c (CMake: *_avx2.c) and -ffp-contract=off (C11 mode): FMAs happen only
 * where written. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "backend/cpu/ggml_exact.h"
#include "backend/cpu/vexp_avx2.h"
#include "quant/ggml_types.h"

typedef struct {
    uint16_t d, s; /* fp16 scale and fp16 of scale * sum(codes) */
    int8_t qs[32];
} gx_q8_1;
typedef struct {
    uint16_t d;
    int8_t qs[32];
} gx_q8_0;

static inline float h2f(uint16_t h) {
    return _cvtsh_ss(h);
}
static inline uint16_t f2h(float f) {
    return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
}

/* 8 lanes summed as ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)): ggml's hsum_float_8, tinyBLAS's hsum
 * and the group sum of ggml_vec_soft_max_f32 */
static inline float hsum8(__m256 x) {
    __m128 r = _mm_add_ps(_mm256_extractf128_ps(x, 1), _mm256_castps256_ps128(x));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

/* ---- activation quantization (quantize_row_q8_0 / q8_1, AVX2) ---- */
static void quant_block(const float *x, int8_t *qs, float *d_out, int32_t *sum_out) {
    __m256 v[4];
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 amax = _mm256_setzero_ps();
    for (int i = 0; i < 4; i++) {
        v[i] = _mm256_loadu_ps(x + 8 * i);
        amax = i == 0 ? _mm256_andnot_ps(sign, v[0])
                      : _mm256_max_ps(amax, _mm256_andnot_ps(sign, v[i]));
    }
    __m128 m4 = _mm_max_ps(_mm256_extractf128_ps(amax, 1), _mm256_castps256_ps128(amax));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float mx = _mm_cvtss_f32(m4);
    const float d = mx / 127.f;
    const float id = mx != 0.0f ? 127.f / mx : 0.0f;
    const __m256 mul = _mm256_set1_ps(id);
    int32_t q[32];
    for (int i = 0; i < 4; i++) {
        __m256 r = _mm256_round_ps(_mm256_mul_ps(v[i], mul), _MM_FROUND_TO_NEAREST_INT);
        _mm256_storeu_si256((__m256i *)(q + 8 * i), _mm256_cvtps_epi32(r));
    }
    int32_t sum = 0;
    for (int i = 0; i < 32; i++) {
        /* codes are within [-127, 127] (|x * 127/amax| <= 127 up to rounding): packs never
         * saturates them */
        qs[i] = (int8_t)q[i];
        sum += q[i];
    }
    *d_out = d;
    *sum_out = sum;
}

size_t sglc_gx_act_row_bytes(uint32_t wtype, int64_t k) {
    if (k % 32 != 0) return 0;
    if (wtype == SGLC_GGML_TYPE_Q4_1) return (size_t)(k / 32) * sizeof(gx_q8_1);
    if (wtype == SGLC_GGML_TYPE_Q8_0) return (size_t)(k / 32) * sizeof(gx_q8_0);
    return 0;
}

void sglc_gx_quantize_row(uint32_t wtype, const float *x, int64_t k, void *out) {
    for (int64_t b = 0; b < k / 32; b++) {
        float d;
        int32_t sum;
        if (wtype == SGLC_GGML_TYPE_Q4_1) {
            gx_q8_1 *y = (gx_q8_1 *)out + b;
            quant_block(x + 32 * b, y->qs, &d, &sum);
            y->d = f2h(d);
            y->s = f2h(d * (float)sum);
        } else {
            gx_q8_0 *y = (gx_q8_0 *)out + b;
            quant_block(x + 32 * b, y->qs, &d, &sum);
            y->d = f2h(d);
        }
    }
}

/* ---- dots (ggml_vec_dot_q4_1_q8_1, ggml_vec_dot_q8_0_q8_0, AVX2) ---- */
/* 8 lanes, lane j = sum of the products of elements 4j..4j+3 (exact integers) */
static inline __m256 lane_sums_u8_i8(__m256i ax, __m256i sy) {
    __m256i p16 = _mm256_maddubs_epi16(ax, sy);
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_set1_epi16(1), p16));
}

/* The dot of one weight row with nt <= 4 activation rows act + j * stride, each exactly as
 * ggml's single dot (nt independent FMA chains hide each other's latency; the weight block is
 * unpacked once). Always inlined with a constant nt, so the accumulators stay in registers. */
static inline __attribute__((always_inline)) void
dotn_q4_1(int nt, const uint8_t *w, const uint8_t *act, size_t stride, int64_t nb, float *out) {
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                     _mm256_setzero_ps()};
    float summs[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    const __m256i low = _mm256_set1_epi8(0xF);
    for (int64_t b = 0; b < nb; b++, w += 20) {
        uint16_t wd, wm;
        memcpy(&wd, w, 2);
        memcpy(&wm, w + 2, 2);
        const float d0 = h2f(wd), m = h2f(wm);
        __m128i t = _mm_loadu_si128((const __m128i *)(w + 4));
        __m256i qx = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), low);
#pragma GCC unroll 4
        for (int j = 0; j < nt; j++) {
            const gx_q8_1 *y = (const gx_q8_1 *)(act + (size_t)j * stride) + b;
            summs[j] = fmaf(m, h2f(y->s), summs[j]); /* gcc contracts ggml's summs += m * s */
            const __m256 d0d1 = _mm256_mul_ps(_mm256_set1_ps(d0), _mm256_set1_ps(h2f(y->d)));
            __m256i qy = _mm256_loadu_si256((const __m256i *)y->qs);
            acc[j] = _mm256_fmadd_ps(d0d1, lane_sums_u8_i8(qx, qy), acc[j]);
        }
    }
    for (int j = 0; j < nt; j++)
        out[j] = hsum8(acc[j]) + summs[j];
}

static inline __attribute__((always_inline)) void
dotn_q8_0(int nt, const uint8_t *w, const uint8_t *act, size_t stride, int64_t nb, float *out) {
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                     _mm256_setzero_ps()};
    for (int64_t b = 0; b < nb; b++, w += 34) {
        uint16_t wd;
        memcpy(&wd, w, 2);
        const float dw = h2f(wd);
        __m256i qx = _mm256_loadu_si256((const __m256i *)(w + 2));
        __m256i ax = _mm256_sign_epi8(qx, qx);
#pragma GCC unroll 4
        for (int j = 0; j < nt; j++) {
            const gx_q8_0 *y = (const gx_q8_0 *)(act + (size_t)j * stride) + b;
            const __m256 d = _mm256_set1_ps(dw * h2f(y->d));
            __m256i qy = _mm256_loadu_si256((const __m256i *)y->qs);
            acc[j] = _mm256_fmadd_ps(d, lane_sums_u8_i8(ax, _mm256_sign_epi8(qy, qx)), acc[j]);
        }
    }
    for (int j = 0; j < nt; j++)
        out[j] = hsum8(acc[j]);
}

void sglc_gx_dot4(uint32_t wtype, const void *w, const void *act, size_t act_stride, int64_t k,
                  float out[4]) {
    if (wtype == SGLC_GGML_TYPE_Q4_1)
        dotn_q4_1(4, w, act, act_stride, k / 32, out);
    else
        dotn_q8_0(4, w, act, act_stride, k / 32, out);
}

float sglc_gx_dot(uint32_t wtype, const void *w, const void *act, int64_t k) {
    float r;
    if (wtype == SGLC_GGML_TYPE_Q4_1)
        dotn_q4_1(1, w, act, 0, k / 32, &r);
    else
        dotn_q8_0(1, w, act, 0, k / 32, &r);
    return r;
}

/* ---- rope (rotate_pairs as gcc -O3 -march=native compiles it) ---- */
void sglc_gx_rope(float *v, const float *cs, const float *sn, int32_t rot_dim, int neox) {
    for (int32_t i = 0; i < rot_dim / 2; i++) {
        int32_t i0 = neox ? i : 2 * i, i1 = neox ? i + rot_dim / 2 : 2 * i + 1;
        float x0 = v[i0], x1 = v[i1];
        v[i0] = fmaf(x0, cs[i], -(x1 * sn[i]));
        v[i1] = fmaf(x0, sn[i], x1 * cs[i]);
    }
}

void sglc_gx_swiglu(const float *gate, const float *up, float *out, int64_t n) {
    int64_t i = 0;
    for (; i + 7 < n; i += 8) {
        __m256 x = _mm256_loadu_ps(gate + i);
        __m256 e = sglc_v_expf(_mm256_sub_ps(_mm256_setzero_ps(), x));
        __m256 s = _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1), e));
        _mm256_storeu_ps(out + i, _mm256_mul_ps(s, _mm256_loadu_ps(up + i)));
    }
    for (; i < n; i++)
        out[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

/* ---- attention ---- */
/* ggml_vec_dot_f16 over n values (4 accumulators of 8 lanes per 32, tail in double). */
static float dot_f16_vec(const uint16_t *x, const uint16_t *y, int32_t n) {
    int32_t np = n & ~31;
    __m256 s[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                   _mm256_setzero_ps()};
    for (int32_t i = 0; i < np; i += 32)
        for (int j = 0; j < 4; j++) {
            __m256 ax = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i + 8 * j)));
            __m256 ay = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(y + i + 8 * j)));
            s[j] = _mm256_fmadd_ps(ax, ay, s[j]);
        }
    s[0] = _mm256_add_ps(s[0], s[2]);
    s[1] = _mm256_add_ps(s[1], s[3]);
    s[0] = _mm256_add_ps(s[0], s[1]);
    __m128 t0 = _mm_add_ps(_mm256_castps256_ps128(s[0]), _mm256_extractf128_ps(s[0], 1));
    __m128 t1 = _mm_hadd_ps(t0, t0);
    double sum = (double)_mm_cvtss_f32(_mm_hadd_ps(t1, t1));
    for (int32_t i = np; i < n; i++)
        sum += (double)(h2f(x[i]) * h2f(y[i]));
    return (float)sum;
}

/* tinyBLAS<8, __m256, ...> for one output: one 8-lane FMA chain over n (n % 8 == 0) */
static float dot_f16_tb(const uint16_t *a, const uint16_t *b, int32_t n) {
    __m256 c = _mm256_setzero_ps();
    for (int32_t l = 0; l < n; l += 8)
        c = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + l))),
                            _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b + l))), c);
    return hsum8(c);
}

size_t sglc_gx_attn_scratch_floats(int32_t n_ctx, int32_t hd) {
    size_t n_pad = (size_t)((n_ctx + 31) & ~31);
    return n_pad + (n_pad + 1) / 2 + 8 + 32 * (size_t)hd;
}

void sglc_gx_attn(const float *q, const uint16_t *k_rows, const uint16_t *v_rows, size_t kvd,
                  const int32_t *slots, int32_t n_ctx, int32_t hd, float scale, int batched,
                  float *scratch, float *out) {
    /* llama.cpp's cache view is n_kv = pad(n_ctx, 256) cells; the cells past n_ctx are masked
     * (-inf score, probability 0, adding exact zeros). What their count changes is only where
     * the groups of 8 / 32 end, so padding to a multiple of 32 gives the same sums. */
    const int32_t n_pad = (n_ctx + 31) & ~31;
    /* tinyBLAS takes a batched product when its inner size is a multiple of 8 and its row
     * count a multiple of 4; otherwise ggml falls back to ggml_vec_dot_f16 */
    const int tb_qk = batched && hd % 8 == 0;
    const int tb_pv = batched && hd % 4 == 0;
    uint16_t qh[512];
    for (int32_t d = 0; d < hd; d++)
        qh[d] = f2h(q[d]);
    float *sc = scratch; /* [n_pad] scores, then probabilities */
    float mx = -INFINITY;
    for (int32_t p = 0; p < n_ctx; p++) {
        const uint16_t *kr = k_rows + (size_t)slots[p] * kvd;
        float s = tb_qk ? dot_f16_tb(kr, qh, hd) : dot_f16_vec(kr, qh, hd);
        s *= scale;
        sc[p] = s;
        if (s > mx) mx = s;
    }
    for (int32_t p = n_ctx; p < n_pad; p++)
        sc[p] = -INFINITY;
    double sum = 0.0;
    for (int32_t p = 0; p < n_pad; p += 8) {
        __m256 e = sglc_v_expf(_mm256_sub_ps(_mm256_loadu_ps(sc + p), _mm256_set1_ps(mx)));
        _mm256_storeu_ps(sc + p, e);
        sum += (double)hsum8(e);
    }
    const float inv = (float)(1.0 / sum);
    /* probabilities rounded to f16 (the second matmul's src1), zero past n_ctx */
    uint16_t *ph = (uint16_t *)(scratch + n_pad);
    for (int32_t p = 0; p < n_pad; p++)
        ph[p] = f2h(sc[p] * inv);
    /* out[d] = sum_p v[p][d] ph[p] with the terms of lane (p mod 8) or (p mod 32) in one FMA
     * chain; vectorized across d, each accumulator seeing its terms in ggml's order */
    const int lanes = tb_pv ? 8 : 32;
    float *acc = scratch + n_pad + (n_pad + 1) / 2 + 8; /* [lanes][hd] */
    memset(acc, 0, sizeof(float) * (size_t)lanes * (size_t)hd);
    for (int32_t p = 0; p < n_ctx; p++) {
        const uint16_t *vr = v_rows + (size_t)slots[p] * kvd;
        float *a = acc + (size_t)(p % lanes) * (size_t)hd;
        const float w = h2f(ph[p]);
        int32_t d = 0;
        for (; d + 7 < hd; d += 8) {
            __m256 vv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(vr + d)));
            _mm256_storeu_ps(a + d, _mm256_fmadd_ps(vv, _mm256_set1_ps(w), _mm256_loadu_ps(a + d)));
        }
        for (; d < hd; d++)
            a[d] = fmaf(h2f(vr[d]), w, a[d]);
    }
    for (int32_t d = 0; d < hd; d++) {
        float l[8];
        if (tb_pv) {
            for (int i = 0; i < 8; i++)
                l[i] = acc[(size_t)i * (size_t)hd + (size_t)d];
            out[d] = ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]));
        } else {
            /* ggml_vec_dot_f16's reduction: (s0 + s2) + (s1 + s3) per lane, then lanes
             * (c0 + c4) + (c1 + c5) and (c2 + c6) + (c3 + c7) by two hadds */
            for (int i = 0; i < 8; i++) {
                const float *a = acc + (size_t)i * (size_t)hd + (size_t)d;
                size_t st = 8 * (size_t)hd;
                l[i] = (a[0] + a[2 * st]) + (a[st] + a[3 * st]);
            }
            float t0 = l[0] + l[4], t1 = l[1] + l[5], t2 = l[2] + l[6], t3 = l[3] + l[7];
            out[d] = (float)(double)((t0 + t1) + (t2 + t3));
        }
    }
}
