/* ggml type table, half-precision conversions and reference (de)quantization.
 *
 * Dequantization follows ggml's dequantize_row_* element for element, so a weight read here
 * equals the one llama.cpp reads. The activation quantizers (Q8_0, Q8_1, Q8_K) reproduce
 * ggml's reference rounding bit for bit; the CPU kernels depend on that to track llama.cpp.
 * The weight quantizers are simple per-block min/max fits for tests, not llama-quantize's
 * error-minimizing search. Everything here is plain portable C (no SIMD): it is the reference
 * the fast kernels are tested against. */
#include "quant/ggml_types.h"

#include <math.h>
#include <string.h>

#include "quant/ggml_blocks.h"

typedef struct {
    const char *name;
    uint32_t block_elems;
    uint32_t block_bytes;
} type_info;

static const type_info k_types[SGLC_GGML_TYPE_COUNT] = {
    [SGLC_GGML_TYPE_F32] = {"F32", 1, 4},       [SGLC_GGML_TYPE_F16] = {"F16", 1, 2},
    [SGLC_GGML_TYPE_Q4_0] = {"Q4_0", 32, 18},   [SGLC_GGML_TYPE_Q4_1] = {"Q4_1", 32, 20},
    [SGLC_GGML_TYPE_Q5_0] = {"Q5_0", 32, 22},   [SGLC_GGML_TYPE_Q5_1] = {"Q5_1", 32, 24},
    [SGLC_GGML_TYPE_Q8_0] = {"Q8_0", 32, 34},   [SGLC_GGML_TYPE_Q8_1] = {"Q8_1", 32, 36},
    [SGLC_GGML_TYPE_Q2_K] = {"Q2_K", 256, 84},  [SGLC_GGML_TYPE_Q3_K] = {"Q3_K", 256, 110},
    [SGLC_GGML_TYPE_Q4_K] = {"Q4_K", 256, 144}, [SGLC_GGML_TYPE_Q5_K] = {"Q5_K", 256, 176},
    [SGLC_GGML_TYPE_Q6_K] = {"Q6_K", 256, 210}, [SGLC_GGML_TYPE_Q8_K] = {"Q8_K", 256, 292},
    [SGLC_GGML_TYPE_BF16] = {"BF16", 1, 2},
};

const char *sglc_ggml_type_name(uint32_t type) {
    return type < SGLC_GGML_TYPE_COUNT ? k_types[type].name : NULL;
}

int sglc_ggml_type_supported(uint32_t type) {
    switch (type) {
    case SGLC_GGML_TYPE_F32:
    case SGLC_GGML_TYPE_F16:
    case SGLC_GGML_TYPE_BF16:
    case SGLC_GGML_TYPE_Q4_0:
    case SGLC_GGML_TYPE_Q4_1:
    case SGLC_GGML_TYPE_Q8_0:
    case SGLC_GGML_TYPE_Q4_K:
    case SGLC_GGML_TYPE_Q5_K:
    case SGLC_GGML_TYPE_Q6_K: return 1;
    default: return 0;
    }
}

size_t sglc_ggml_block_elems(uint32_t type) {
    return type < SGLC_GGML_TYPE_COUNT ? k_types[type].block_elems : 0;
}

size_t sglc_ggml_block_bytes(uint32_t type) {
    return type < SGLC_GGML_TYPE_COUNT ? k_types[type].block_bytes : 0;
}

size_t sglc_ggml_row_bytes(uint32_t type, int64_t n) {
    size_t be = sglc_ggml_block_elems(type);
    if (be == 0 || n < 0 || (uint64_t)n % be != 0) return 0;
    uint64_t nb = (uint64_t)n / be;
    if (nb > SIZE_MAX / k_types[type].block_bytes) return 0;
    return (size_t)nb * k_types[type].block_bytes;
}

/* ---- half precision ---------------------------------------------------------------------- */

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float f32_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float sglc_fp16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t e = (h >> 10) & 0x1f, m = h & 0x3ff;
    if (e == 0x1f) return f32_from_bits(sign | 0x7f800000u | (m << 13));
    if (e == 0) {
        /* zero or subnormal: m * 2^-24 is exact in f32 */
        float v = (float)m * 0x1p-24f;
        return sign ? -v : v;
    }
    return f32_from_bits(sign | ((e + 112) << 23) | (m << 13));
}

uint16_t sglc_f32_to_fp16(float f) {
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    x &= 0x7fffffffu;
    if (x > 0x7f800000u) return (uint16_t)(sign | 0x7e00 | ((x >> 13) & 0x3ff)); /* NaN */
    if (x >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* rounds to >= 65520: inf */
    if (x >= 0x38800000u) {                                 /* normal half */
        uint32_t h = (((x >> 23) - 112) << 10) | ((x >> 13) & 0x3ff);
        uint32_t rem = x & 0x1fff;
        if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++; /* carry into exponent is right */
        return (uint16_t)(sign | h);
    }
    if (x <= 0x33000000u) return sign; /* <= 2^-25 rounds (to even) to zero */
    uint32_t mant = (x & 0x7fffff) | 0x800000;
    uint32_t shift = 126 - (x >> 23); /* 14..24 */
    uint32_t h = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

float sglc_bf16_to_f32(uint16_t h) {
    return f32_from_bits((uint32_t)h << 16);
}

uint16_t sglc_f32_to_bf16(float f) {
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 64); /* quiet NaN */
    return (uint16_t)((x + (0x7fff + ((x >> 16) & 1))) >> 16);
}

#define FP16(h) sglc_fp16_to_f32(h)

/* ---- dequantization ---------------------------------------------------------------------- */

static void dequant_q4_0(const sglc_block_q4_0 *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = FP16(x[i].d);
        for (int j = 0; j < 16; j++) {
            y[i * 32 + j] = (float)((x[i].qs[j] & 0x0F) - 8) * d;
            y[i * 32 + j + 16] = (float)((x[i].qs[j] >> 4) - 8) * d;
        }
    }
}

static void dequant_q4_1(const sglc_block_q4_1 *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = FP16(x[i].d), m = FP16(x[i].m);
        for (int j = 0; j < 16; j++) {
            y[i * 32 + j] = (float)(x[i].qs[j] & 0x0F) * d + m;
            y[i * 32 + j + 16] = (float)(x[i].qs[j] >> 4) * d + m;
        }
    }
}

static void dequant_q8_0(const sglc_block_q8_0 *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = FP16(x[i].d);
        for (int j = 0; j < 32; j++)
            y[i * 32 + j] = (float)x[i].qs[j] * d;
    }
}

static void dequant_q8_1(const sglc_block_q8_1 *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = FP16(x[i].d);
        for (int j = 0; j < 32; j++)
            y[i * 32 + j] = (float)x[i].qs[j] * d;
    }
}

static void dequant_q4_K(const sglc_block_q4_K *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *q = x[i].qs;
        const float d = FP16(x[i].d), min = FP16(x[i].dmin);
        int is = 0;
        uint8_t sc, m;
        for (int j = 0; j < SGLC_QK_K; j += 64) {
            sglc_get_scale_min_k4(is + 0, x[i].scales, &sc, &m);
            const float d1 = d * sc, m1 = min * m;
            sglc_get_scale_min_k4(is + 1, x[i].scales, &sc, &m);
            const float d2 = d * sc, m2 = min * m;
            for (int l = 0; l < 32; ++l)
                *y++ = d1 * (float)(q[l] & 0xF) - m1;
            for (int l = 0; l < 32; ++l)
                *y++ = d2 * (float)(q[l] >> 4) - m2;
            q += 32;
            is += 2;
        }
    }
}

static void dequant_q5_K(const sglc_block_q5_K *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *ql = x[i].qs, *qh = x[i].qh;
        const float d = FP16(x[i].d), min = FP16(x[i].dmin);
        int is = 0;
        uint8_t sc, m;
        uint8_t u1 = 1, u2 = 2;
        for (int j = 0; j < SGLC_QK_K; j += 64) {
            sglc_get_scale_min_k4(is + 0, x[i].scales, &sc, &m);
            const float d1 = d * sc, m1 = min * m;
            sglc_get_scale_min_k4(is + 1, x[i].scales, &sc, &m);
            const float d2 = d * sc, m2 = min * m;
            for (int l = 0; l < 32; ++l)
                *y++ = d1 * (float)((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; ++l)
                *y++ = d2 * (float)((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
            ql += 32;
            is += 2;
            u1 = (uint8_t)(u1 << 2);
            u2 = (uint8_t)(u2 << 2);
        }
    }
}

static void dequant_q6_K(const sglc_block_q6_K *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = FP16(x[i].d);
        const uint8_t *ql = x[i].ql, *qh = x[i].qh;
        const int8_t *sc = x[i].scales;
        for (int n = 0; n < SGLC_QK_K; n += 128) {
            for (int l = 0; l < 32; ++l) {
                int is = l / 16;
                const int q1 = ((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int q3 = ((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l + 0] = d * (float)sc[is + 0] * (float)q1;
                y[l + 32] = d * (float)sc[is + 2] * (float)q2;
                y[l + 64] = d * (float)sc[is + 4] * (float)q3;
                y[l + 96] = d * (float)sc[is + 6] * (float)q4;
            }
            y += 128;
            ql += 64;
            qh += 32;
            sc += 8;
        }
    }
}

static void dequant_q8_K(const sglc_block_q8_K *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++)
        for (int j = 0; j < SGLC_QK_K; j++)
            y[i * SGLC_QK_K + j] = x[i].d * (float)x[i].qs[j];
}

void sglc_ggml_dequantize_row(uint32_t type, const void *src, float *dst, int64_t n) {
    size_t be = sglc_ggml_block_elems(type);
    if (be == 0 || n <= 0) return;
    int64_t nb = n / (int64_t)be;
    switch (type) {
    case SGLC_GGML_TYPE_F32: memcpy(dst, src, (size_t)n * sizeof(float)); break;
    case SGLC_GGML_TYPE_F16: {
        const uint16_t *h = src;
        for (int64_t i = 0; i < n; i++)
            dst[i] = sglc_fp16_to_f32(h[i]);
        break;
    }
    case SGLC_GGML_TYPE_BF16: {
        const uint16_t *h = src;
        for (int64_t i = 0; i < n; i++)
            dst[i] = sglc_bf16_to_f32(h[i]);
        break;
    }
    case SGLC_GGML_TYPE_Q4_0: dequant_q4_0(src, dst, nb); break;
    case SGLC_GGML_TYPE_Q4_1: dequant_q4_1(src, dst, nb); break;
    case SGLC_GGML_TYPE_Q8_0: dequant_q8_0(src, dst, nb); break;
    case SGLC_GGML_TYPE_Q8_1: dequant_q8_1(src, dst, nb); break;
    case SGLC_GGML_TYPE_Q4_K: dequant_q4_K(src, dst, nb); break;
    case SGLC_GGML_TYPE_Q5_K: dequant_q5_K(src, dst, nb); break;
    case SGLC_GGML_TYPE_Q6_K: dequant_q6_K(src, dst, nb); break;
    case SGLC_GGML_TYPE_Q8_K: dequant_q8_K(src, dst, nb); break;
    default: break;
    }
}

/* ---- activation quantizers (ggml reference rounding) ----------------------------------------
 * roundf of x * (1 / d). Measured against llama.cpp's greedy outputs this agrees better
 * (26/50 exact prompts, 1562/1600 tokens) than ggml's x86 SIMD variant (127 / amax, round half
 * to even: 19/50, 1554/1600); single-quantum activation flips are visible in this model. */

void sglc_quantize_row_q8_0_ref(const float *x, void *vy, int64_t n) {
    sglc_block_q8_0 *y = vy;
    for (int64_t i = 0; i < n / SGLC_QK8_0; i++) {
        float amax = 0.0f;
        for (int j = 0; j < SGLC_QK8_0; j++)
            amax = fmaxf(amax, fabsf(x[i * SGLC_QK8_0 + j]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = sglc_f32_to_fp16(d);
        for (int j = 0; j < SGLC_QK8_0; j++)
            y[i].qs[j] = (int8_t)roundf(x[i * SGLC_QK8_0 + j] * id);
    }
}

void sglc_quantize_row_q8_1_ref(const float *x, void *vy, int64_t n) {
    sglc_block_q8_1 *y = vy;
    for (int64_t i = 0; i < n / SGLC_QK8_1; i++) {
        float amax = 0.0f;
        for (int j = 0; j < SGLC_QK8_1; j++)
            amax = fmaxf(amax, fabsf(x[i * SGLC_QK8_1 + j]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = sglc_f32_to_fp16(d);
        int sum = 0;
        for (int j = 0; j < SGLC_QK8_1; j++) {
            y[i].qs[j] = (int8_t)roundf(x[i * SGLC_QK8_1 + j] * id);
            sum += y[i].qs[j];
        }
        y[i].s = sglc_f32_to_fp16((float)sum * d);
    }
}

/* ggml's nearest_int: round half to even through the 1.5 * 2^23 trick (|fval| < 2^22). */
static int nearest_int(float fval) {
    float val = fval + 12582912.f;
    int32_t i;
    memcpy(&i, &val, sizeof(int32_t));
    return (i & 0x007fffff) - 0x00400000;
}

void sglc_quantize_row_q8_K_ref(const float *x, void *vy, int64_t n) {
    sglc_block_q8_K *y = vy;
    for (int64_t i = 0; i < n / SGLC_QK_K; i++, x += SGLC_QK_K) {
        float max = 0, amax = 0;
        for (int j = 0; j < SGLC_QK_K; ++j) {
            float ax = fabsf(x[j]);
            if (ax > amax) {
                amax = ax;
                max = x[j];
            }
        }
        if (amax == 0.0f) {
            y[i].d = 0;
            memset(y[i].qs, 0, SGLC_QK_K);
            memset(y[i].bsums, 0, sizeof y[i].bsums);
            continue;
        }
        const float iscale = -127.f / max;
        for (int j = 0; j < SGLC_QK_K; ++j) {
            int v = nearest_int(iscale * x[j]);
            y[i].qs[j] = (int8_t)(v < 127 ? v : 127);
        }
        for (int j = 0; j < SGLC_QK_K / 16; ++j) {
            int sum = 0;
            for (int ii = 0; ii < 16; ++ii)
                sum += y[i].qs[j * 16 + ii];
            y[i].bsums[j] = (int16_t)sum;
        }
        y[i].d = 1 / iscale;
    }
}

/* ---- simple weight quantizers (tests) ----------------------------------------------------- */

static int clampi(int v, int lo, int hi) {
    return v < lo ? lo : v > hi ? hi : v;
}

static void quantize_q4_0(const float *x, sglc_block_q4_0 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += 32) {
        /* ggml: the value of largest magnitude maps to -8 */
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < 32; j++)
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        const float d = max / -8.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = sglc_f32_to_fp16(d);
        for (int j = 0; j < 16; j++) {
            int q0 = clampi((int)(x[j] * id + 8.5f), 0, 15);
            int q1 = clampi((int)(x[j + 16] * id + 8.5f), 0, 15);
            y[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

static void quantize_q4_1(const float *x, sglc_block_q4_1 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += 32) {
        float mn = x[0], mx = x[0];
        for (int j = 1; j < 32; j++) {
            mn = fminf(mn, x[j]);
            mx = fmaxf(mx, x[j]);
        }
        const float d = (mx - mn) / 15.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = sglc_f32_to_fp16(d);
        y[i].m = sglc_f32_to_fp16(mn);
        for (int j = 0; j < 16; j++) {
            int q0 = clampi((int)((x[j] - mn) * id + 0.5f), 0, 15);
            int q1 = clampi((int)((x[j + 16] - mn) * id + 0.5f), 0, 15);
            y[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

/* Q4_K / Q5_K: per 32-value sub-block x ~ scale * q - min with min >= 0, scales and mins
 * quantized to 6 bits against per-super-block d and dmin; nmax is 15 or 31. The quants are
 * written to L[256] for the caller to pack. */
static void fit_k_scales(const float *x, int nmax, uint8_t scales[12], uint16_t *pd,
                         uint16_t *pdmin, uint8_t *L) {
    float sc[8], mins[8], max_sc = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        const float *xs = x + 32 * j;
        float mn = 0.0f, mx = 0.0f; /* include 0: min stays <= 0 so the stored min is >= 0 */
        for (int l = 0; l < 32; l++) {
            mn = fminf(mn, xs[l]);
            mx = fmaxf(mx, xs[l]);
        }
        sc[j] = (mx - mn) / (float)nmax;
        mins[j] = -mn;
        max_sc = fmaxf(max_sc, sc[j]);
        max_min = fmaxf(max_min, mins[j]);
    }
    const float d = max_sc / 63.0f, dmin = max_min / 63.0f;
    *pd = sglc_f32_to_fp16(d);
    *pdmin = sglc_f32_to_fp16(dmin);
    const float dq = sglc_fp16_to_f32(*pd), dminq = sglc_fp16_to_f32(*pdmin);
    memset(scales, 0, 12);
    for (int j = 0; j < 8; j++) {
        int ls = dq > 0 ? clampi((int)lroundf(sc[j] / dq), 0, 63) : 0;
        int lm = dminq > 0 ? clampi((int)lroundf(mins[j] / dminq), 0, 63) : 0;
        if (j < 4) {
            scales[j] |= (uint8_t)ls;
            scales[j + 4] |= (uint8_t)lm;
        } else {
            scales[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
            scales[j - 4] |= (uint8_t)((ls >> 4) << 6);
            scales[j - 0] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    for (int j = 0; j < 8; j++) {
        uint8_t ls, lm;
        sglc_get_scale_min_k4(j, scales, &ls, &lm);
        const float s = dq * ls, m = dminq * lm;
        for (int l = 0; l < 32; l++) {
            int q = s > 0 ? (int)lroundf((x[32 * j + l] + m) / s) : 0;
            L[32 * j + l] = (uint8_t)clampi(q, 0, nmax);
        }
    }
}

static void quantize_q4_K(const float *x, sglc_block_q4_K *y, int64_t nb) {
    uint8_t L[SGLC_QK_K];
    for (int64_t i = 0; i < nb; i++, x += SGLC_QK_K) {
        fit_k_scales(x, 15, y[i].scales, &y[i].d, &y[i].dmin, L);
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++)
                y[i].qs[c * 32 + l] = (uint8_t)(L[c * 64 + l] | (L[c * 64 + 32 + l] << 4));
    }
}

static void quantize_q5_K(const float *x, sglc_block_q5_K *y, int64_t nb) {
    uint8_t L[SGLC_QK_K];
    for (int64_t i = 0; i < nb; i++, x += SGLC_QK_K) {
        fit_k_scales(x, 31, y[i].scales, &y[i].d, &y[i].dmin, L);
        memset(y[i].qh, 0, sizeof y[i].qh);
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++) {
                int lo = L[c * 64 + l], hi = L[c * 64 + 32 + l];
                y[i].qs[c * 32 + l] = (uint8_t)((lo & 0xF) | ((hi & 0xF) << 4));
                y[i].qh[l] |= (uint8_t)(((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1)));
            }
    }
}

static void quantize_q6_K(const float *x, sglc_block_q6_K *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += SGLC_QK_K) {
        float sc[16], amax_sc = 0;
        for (int j = 0; j < 16; j++) {
            float amax = 0;
            for (int l = 0; l < 16; l++)
                amax = fmaxf(amax, fabsf(x[16 * j + l]));
            sc[j] = amax / 31.0f;
            amax_sc = fmaxf(amax_sc, sc[j]);
        }
        const float d = amax_sc / 127.0f;
        y[i].d = sglc_f32_to_fp16(d);
        const float dq = sglc_fp16_to_f32(y[i].d);
        uint8_t L[SGLC_QK_K];
        for (int j = 0; j < 16; j++) {
            int ls = dq > 0 ? clampi((int)lroundf(sc[j] / dq), -128, 127) : 0;
            y[i].scales[j] = (int8_t)ls;
            const float s = dq * (float)ls;
            for (int l = 0; l < 16; l++) {
                int q = s > 0 ? (int)lroundf(x[16 * j + l] / s) : 0;
                L[16 * j + l] = (uint8_t)(clampi(q, -32, 31) + 32);
            }
        }
        for (int h = 0; h < 2; h++) {
            uint8_t *ql = y[i].ql + 64 * h, *qh = y[i].qh + 32 * h;
            const uint8_t *Lh = L + 128 * h;
            for (int l = 0; l < 32; l++) {
                int q1 = Lh[l], q2 = Lh[l + 32], q3 = Lh[l + 64], q4 = Lh[l + 96];
                ql[l] = (uint8_t)((q1 & 0xF) | ((q3 & 0xF) << 4));
                ql[l + 32] = (uint8_t)((q2 & 0xF) | ((q4 & 0xF) << 4));
                qh[l] =
                    (uint8_t)((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
            }
        }
    }
}

int sglc_ggml_quantize_row(uint32_t type, const float *src, void *dst, int64_t n) {
    size_t be = sglc_ggml_block_elems(type);
    if (be == 0 || n < 0 || n % (int64_t)be != 0) return -1;
    int64_t nb = n / (int64_t)be;
    switch (type) {
    case SGLC_GGML_TYPE_F32: memcpy(dst, src, (size_t)n * sizeof(float)); return 0;
    case SGLC_GGML_TYPE_F16: {
        uint16_t *h = dst;
        for (int64_t i = 0; i < n; i++)
            h[i] = sglc_f32_to_fp16(src[i]);
        return 0;
    }
    case SGLC_GGML_TYPE_BF16: {
        uint16_t *h = dst;
        for (int64_t i = 0; i < n; i++)
            h[i] = sglc_f32_to_bf16(src[i]);
        return 0;
    }
    case SGLC_GGML_TYPE_Q4_0: quantize_q4_0(src, dst, nb); return 0;
    case SGLC_GGML_TYPE_Q4_1: quantize_q4_1(src, dst, nb); return 0;
    case SGLC_GGML_TYPE_Q8_0: sglc_quantize_row_q8_0_ref(src, dst, n); return 0;
    case SGLC_GGML_TYPE_Q8_1: sglc_quantize_row_q8_1_ref(src, dst, n); return 0;
    case SGLC_GGML_TYPE_Q8_K: sglc_quantize_row_q8_K_ref(src, dst, n); return 0;
    case SGLC_GGML_TYPE_Q4_K: quantize_q4_K(src, dst, nb); return 0;
    case SGLC_GGML_TYPE_Q5_K: quantize_q5_K(src, dst, nb); return 0;
    case SGLC_GGML_TYPE_Q6_K: quantize_q6_K(src, dst, nb); return 0;
    default: return -1;
    }
}
