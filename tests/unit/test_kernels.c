/* Weight formats and CPU kernels, checked against independent references:
 *  - half/bf16 conversions: exhaustive round trip and nearest-value rounding;
 *  - reference quantizers: dequantize(quantize(x)) within each format's step;
 *  - reference vec_dot: equals an f64 dot of the dequantized weights with the dequantized
 *    activations (1e-5), and the f32 activations within the activation rounding;
 *  - every SIMD ISA available here: vec_dot equals the reference vec_dot (1e-5), and its
 *    activation quantizer is bit-identical to the reference one;
 *  - sglc_cpu_matmul on 1, 2 and 3 threads equals per-row reference dots, with guard bytes
 *    after every output and scratch buffer and a NaN/Inf check;
 *  - where an ISA packs a type (Q4_1 at AVX2): the packed matmul equals the reference dots
 *    too, and each token's outputs are bit-identical alone and in a batch.
 * Shapes are awkward on purpose (n_out 1, 7, 33; n_tok 1, 3, 17; k several blocks). Weights
 * come both from quantizing random floats of varied ranges and from random block bytes with
 * sane scales (covers bit patterns a min/max fit never produces, e.g. Q8_0 -128). */
#include <math.h>
#include <stdint.h>

#include "backend/cpu/cpu_kernels.h"
#include "base/threadpool.h"
#include "base/log.h"
#include "quant/ggml_types.h"
#include "test_util.h"

#define KERNEL_TEST_SEED 0x9E3779B97F4A7C15ull
#include "kernel_test_util.h"

static int all_finite(const float *v, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i])) return 0;
    return 1;
}

/* ||a - b|| / ||b|| (0 when both are 0) */
static double norm_err(const float *a, const double *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += b[i] * b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static const uint32_t k_weight_types[] = {
    SGLC_GGML_TYPE_F32,  SGLC_GGML_TYPE_F16,  SGLC_GGML_TYPE_BF16,
    SGLC_GGML_TYPE_Q4_0, SGLC_GGML_TYPE_Q4_1, SGLC_GGML_TYPE_Q8_0,
    SGLC_GGML_TYPE_Q4_K, SGLC_GGML_TYPE_Q5_K, SGLC_GGML_TYPE_Q6_K,
};
#define N_WEIGHT_TYPES (sizeof k_weight_types / sizeof k_weight_types[0])

/* ---- half precision ----------------------------------------------------------------------- */

static void test_half(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = sglc_fp16_to_f32((uint16_t)h);
        uint16_t back = sglc_f32_to_fp16(f);
        if (isnan(f))
            bad += !((back & 0x7c00) == 0x7c00 && (back & 0x3ff) != 0);
        else
            bad += back != h;
        float b = sglc_bf16_to_f32((uint16_t)h);
        uint16_t bb = sglc_f32_to_bf16(b);
        if (isnan(b))
            bad += !isnan(sglc_bf16_to_f32(bb));
        else
            bad += bb != h;
    }
    CHECKF(bad == 0, "%d half/bf16 values do not round-trip", bad);
    /* known values */
    CHECK(sglc_fp16_to_f32(0x3c00) == 1.0f);
    CHECK(sglc_fp16_to_f32(0xc000) == -2.0f);
    CHECK(sglc_fp16_to_f32(0x7bff) == 65504.0f);
    CHECK(sglc_fp16_to_f32(0x0001) == 0x1p-24f);
    CHECK(sglc_f32_to_fp16(65519.0f) == 0x7bff);
    CHECK(sglc_f32_to_fp16(65520.0f) == 0x7c00); /* tie to even rounds up to inf */
    CHECK(sglc_f32_to_fp16(0x1p-25f) == 0x0000); /* tie to even: zero */
    CHECK(sglc_f32_to_fp16(0x1.8p-25f) == 0x0001);
    CHECK(sglc_f32_to_fp16(0x1.8p-24f) == 0x0002); /* 1.5 units: tie to even 2 */
    CHECK(sglc_f32_to_fp16(1.0f + 0x1p-11f) == 0x3c00);
    CHECK(sglc_f32_to_fp16(1.0f + 0x1.8p-11f) == 0x3c01);
    CHECK(sglc_f32_to_fp16(-0.0f) == 0x8000);
    CHECK(sglc_f32_to_bf16(1.0f + 0x1p-8f) == 0x3f80);
    CHECK(sglc_f32_to_bf16(1.0f + 0x1.8p-8f) == 0x3f81);
    /* random floats: the result is a nearest half, ties to even */
    int not_nearest = 0;
    for (int i = 0; i < 200000; i++) {
        uint32_t bits = (uint32_t)rng_u64();
        bits = (bits & 0x807fffffu) | ((uint32_t)(100 + rng_u64() % 45) << 23); /* 2^-27..2^17 */
        float f;
        memcpy(&f, &bits, 4);
        uint16_t h = sglc_f32_to_fp16(f);
        if ((h & 0x7fff) == 0x7c00) { /* overflow to inf: only from |f| >= 65520 */
            not_nearest += fabsf(f) < 65520.0f;
            continue;
        }
        not_nearest += fabsf(f) >= 65520.0f;
        double err = fabs((double)f - (double)sglc_fp16_to_f32(h));
        for (int dlt = -1; dlt <= 1; dlt += 2) {
            uint16_t nb = (uint16_t)(h + dlt);
            if ((nb & 0x7fff) >= 0x7c00 || ((nb ^ h) & 0x8000)) continue;
            double e2 = fabs((double)f - (double)sglc_fp16_to_f32(nb));
            if (e2 < err || (e2 == err && (h & 1))) not_nearest++;
        }
    }
    CHECKF(not_nearest == 0, "%d floats not rounded to the nearest half", not_nearest);
}

/* ---- weights ------------------------------------------------------------------------------ */

/* n_out rows of k values: mode 0..3 pick value ranges; mode 4 fills raw block bytes. */
static void make_weights(uint32_t type, int64_t n_out, int64_t k, int mode, void *w, float *wf) {
    size_t rb = sglc_ggml_row_bytes(type, k);
    float *row = malloc((size_t)k * sizeof(float));
    for (int64_t o = 0; o < n_out; o++) {
        unsigned char *dst = (unsigned char *)w + (size_t)o * rb;
        if (mode == 4 && sglc_ggml_block_elems(type) > 1) {
            for (size_t b = 0; b < rb; b++)
                dst[b] = (unsigned char)rng_u64();
            size_t bb = sglc_ggml_block_bytes(type);
            for (size_t off = 0; off < rb; off += bb) {
                unsigned char *blk = dst + off;
                uint16_t d = sglc_f32_to_fp16(rng_uniform(-0.02f, 0.02f));
                uint16_t m = sglc_f32_to_fp16(rng_uniform(-0.5f, 0.5f));
                uint16_t dpos = sglc_f32_to_fp16(rng_uniform(0.0f, 0.01f));
                switch (type) {
                case SGLC_GGML_TYPE_Q4_1: memcpy(blk + 2, &m, 2); /* fall through */
                case SGLC_GGML_TYPE_Q4_0:
                case SGLC_GGML_TYPE_Q8_0: memcpy(blk, &d, 2); break;
                case SGLC_GGML_TYPE_Q4_K:
                case SGLC_GGML_TYPE_Q5_K:
                    memcpy(blk, &dpos, 2);
                    dpos = sglc_f32_to_fp16(rng_uniform(0.0f, 0.01f));
                    memcpy(blk + 2, &dpos, 2);
                    break;
                case SGLC_GGML_TYPE_Q6_K: memcpy(blk + 208, &d, 2); break;
                default: break;
                }
            }
        } else {
            float lo = -1, hi = 1;
            switch (mode % 4) {
            case 0: lo = -1.0f, hi = 1.0f; break;
            case 1: lo = -0.003f, hi = 0.002f; break;
            case 2: lo = 0.5f, hi = 40.0f; break; /* all positive: exercises Q4_1/K mins */
            case 3: lo = -200.0f, hi = 30.0f; break;
            }
            for (int64_t i = 0; i < k; i++)
                row[i] = rng_uniform(lo, hi);
            /* a few sub-blocks with very different scale */
            for (int64_t i = 0; i + 32 <= k; i += 96)
                for (int j = 0; j < 32; j++)
                    row[i + j] *= 0.01f;
            CHECK(sglc_ggml_quantize_row(type, row, dst, k) == 0);
        }
        sglc_ggml_dequantize_row(type, dst, wf + o * k, k);
    }
    free(row);
}

/* ---- quantizer round trip ----------------------------------------------------------------- */

static void test_round_trip(void) {
    static const struct {
        uint32_t type;
        double rel_rms; /* bound on ||x - x'|| / ||x|| for uniform values */
    } cases[] = {
        {SGLC_GGML_TYPE_F32, 0},     {SGLC_GGML_TYPE_F16, 1e-3},  {SGLC_GGML_TYPE_BF16, 5e-3},
        {SGLC_GGML_TYPE_Q8_0, 1e-2}, {SGLC_GGML_TYPE_Q8_1, 1e-2}, {SGLC_GGML_TYPE_Q8_K, 1e-2},
        {SGLC_GGML_TYPE_Q4_0, 0.1},  {SGLC_GGML_TYPE_Q4_1, 0.08}, {SGLC_GGML_TYPE_Q4_K, 0.1},
        {SGLC_GGML_TYPE_Q5_K, 0.05}, {SGLC_GGML_TYPE_Q6_K, 0.03},
    };
    const int64_t k = 1024;
    float *x = malloc(k * sizeof(float)), *back = guarded_alloc(k * sizeof(float));
    void *q = guarded_alloc(sglc_ggml_row_bytes(SGLC_GGML_TYPE_F32, k));
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        uint32_t t = cases[c].type;
        size_t rb = sglc_ggml_row_bytes(t, k);
        for (int mode = 0; mode < 4; mode++) {
            float lo = mode == 0 ? -1.0f : mode == 1 ? 1e-3f : mode == 2 ? -300.0f : 2.0f;
            float hi = mode == 0 ? 1.0f : mode == 1 ? 2e-3f : mode == 2 ? 300.0f : 9.0f;
            for (int64_t i = 0; i < k; i++)
                x[i] = rng_uniform(lo, hi);
            memset(q, 0, rb);
            CHECK(sglc_ggml_quantize_row(t, x, q, k) == 0);
            sglc_ggml_dequantize_row(t, q, back, k);
            CHECK(guard_intact(q, sglc_ggml_row_bytes(SGLC_GGML_TYPE_F32, k)));
            CHECK(guard_intact(back, k * sizeof(float)));
            CHECK(all_finite(back, (size_t)k));
            double num = 0, den = 0, worst = 0;
            for (int64_t i = 0; i < k; i++) {
                num += ((double)x[i] - back[i]) * ((double)x[i] - back[i]);
                den += (double)x[i] * x[i];
            }
            double rel = sqrt(num / den);
            CHECKF(rel <= cases[c].rel_rms, "%s mode %d: round trip error %.3g > %.3g",
                   sglc_ggml_type_name(t), mode, rel, cases[c].rel_rms);
            /* 32-blocks: per element within half a step (Q4_0: one step, its top code 15
             * cannot reach +8 d), plus the f16 rounding of the block's scale and min. */
            if (t == SGLC_GGML_TYPE_Q8_0 || t == SGLC_GGML_TYPE_Q4_0 || t == SGLC_GGML_TYPE_Q4_1) {
                const unsigned char *blk = q;
                size_t bb = sglc_ggml_block_bytes(t);
                for (int64_t i = 0; i < k; i++) {
                    const unsigned char *b = blk + (size_t)(i / 32) * bb;
                    uint16_t dh, mh = 0;
                    memcpy(&dh, b, 2);
                    if (t == SGLC_GGML_TYPE_Q4_1) memcpy(&mh, b + 2, 2);
                    double d = fabs(sglc_fp16_to_f32(dh)), m = fabs(sglc_fp16_to_f32(mh));
                    double qmax = t == SGLC_GGML_TYPE_Q8_0 ? 127 : 16;
                    /* f16 rounding: relative 2^-11, absolute 2^-25 for subnormal scales */
                    double bound = (t == SGLC_GGML_TYPE_Q4_0 ? 1.0 : 0.5) * d * 1.001 +
                                   (qmax * d + m) * 0x1p-11 + (qmax + 1) * 0x1p-25;
                    double e = fabs((double)x[i] - back[i]);
                    if (e > bound && e - bound > worst) worst = e - bound;
                }
                CHECKF(worst == 0, "%s mode %d: element error exceeds step by %.3g",
                       sglc_ggml_type_name(t), mode, worst);
            }
        }
    }
    /* all-zero blocks stay zero and finite */
    for (int64_t i = 0; i < k; i++)
        x[i] = 0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        CHECK(sglc_ggml_quantize_row(cases[c].type, x, q, k) == 0);
        sglc_ggml_dequantize_row(cases[c].type, q, back, k);
        int nz = 0;
        for (int64_t i = 0; i < k; i++)
            nz += back[i] != 0;
        CHECKF(nz == 0, "%s: zeros do not round-trip", sglc_ggml_type_name(cases[c].type));
    }
    free(x);
    free(back);
    free(q);
}

/* ---- vec_dot and matmul ------------------------------------------------------------------- */

/* Dotting with rounded activations x' instead of x moves the result by at most
 * sum |w_i| |x_i - x'_i|; relative to sum |w_i x_i| that is the activations' relative
 * rounding: 2^-12 for F16, 2^-9 for BF16, about 1/254 on average for 8-bit block-scaled
 * uniform values. The bounds below leave room for that, normalized over all outputs. */
static double act_rounding_bound(uint32_t act_type) {
    switch (act_type) {
    case SGLC_GGML_TYPE_F32: return 1e-5;
    case SGLC_GGML_TYPE_F16: return 1e-3;  /* 11-bit significand */
    case SGLC_GGML_TYPE_BF16: return 1e-2; /* 8-bit significand */
    default: return 1e-2;                  /* 8-bit quants per 32 or 256 values */
    }
}

/* f64 dot of dequantized weights with the dequantized activation row. Q8_1 carries the
 * block sum s rounded to f16, which ggml (and so the kernel) uses for the min term: the
 * reference uses it too, i.e. sum (w - m) y + m s per block. */
static double dot_f64_deq(uint32_t wtype, const float *wf, const void *wq, const float *xf,
                          const void *xq, uint32_t act_type, int64_t k) {
    double sum = 0;
    if (wtype == SGLC_GGML_TYPE_Q4_1 && act_type == SGLC_GGML_TYPE_Q8_1) {
        const unsigned char *wb = wq, *xb = xq;
        for (int64_t b = 0; b < k / 32; b++) {
            uint16_t mh, sh, dwh;
            memcpy(&dwh, wb + b * 20, 2);
            memcpy(&mh, wb + b * 20 + 2, 2);
            memcpy(&sh, xb + b * 36 + 2, 2);
            const double dw = sglc_fp16_to_f32(dwh), m = sglc_fp16_to_f32(mh);
            for (int j = 0; j < 16; j++) {
                unsigned char q = wb[b * 20 + 4 + j];
                sum += dw * (q & 15) * xf[b * 32 + j] + dw * (q >> 4) * xf[b * 32 + j + 16];
            }
            sum += m * sglc_fp16_to_f32(sh);
        }
        return sum;
    }
    for (int64_t i = 0; i < k; i++)
        sum += (double)wf[i] * (double)xf[i];
    return sum;
}

typedef struct {
    int64_t n_out, k, n_tok;
} shape;

static void test_type_shape(uint32_t wtype, shape sh, int mode, sglc_threadpool *pools[3]) {
    const char *tn = sglc_ggml_type_name(wtype);
    const int64_t n_out = sh.n_out, k = sh.k, n_tok = sh.n_tok;
    const sglc_cpu_type_kernels *ref = sglc_cpu_kernels_for(wtype, SGLC_CPU_ISA_REF);
    CHECKF(ref != NULL, "%s: no reference kernel", tn);
    if (!ref) return;
    const uint32_t at = ref->act_type;
    const size_t wrb = sglc_ggml_row_bytes(wtype, k), xrb = sglc_ggml_row_bytes(at, k);
    char *w = guarded_alloc(wrb * (size_t)n_out);
    float *wf = malloc(sizeof(float) * (size_t)(n_out * k));
    make_weights(wtype, n_out, k, mode, w, wf);
    float *x = malloc(sizeof(float) * (size_t)(n_tok * k));
    float *xf = malloc(sizeof(float) * (size_t)(n_tok * k));
    char *xq = guarded_alloc(xrb * (size_t)n_tok);
    char *xq2 = guarded_alloc(xrb * (size_t)n_tok);
    for (int64_t t = 0; t < n_tok; t++) {
        float scale = t % 3 == 0 ? 1.0f : t % 3 == 1 ? 0.01f : 30.0f;
        for (int64_t i = 0; i < k; i++)
            x[t * k + i] = rng_uniform(-scale, scale);
        ref->quantize_act(x + t * k, xq + (size_t)t * xrb, k);
        sglc_ggml_dequantize_row(at, xq + (size_t)t * xrb, xf + t * k, k);
    }
    CHECK(guard_intact(xq, xrb * (size_t)n_tok));

    /* reference dots vs f64 */
    const size_t ny = (size_t)(n_out * n_tok);
    float *yref = guarded_alloc(sizeof(float) * ny);
    double *y64q = malloc(sizeof(double) * ny), *y64f = malloc(sizeof(double) * ny);
    double *yabs = malloc(sizeof(double) * ny);
    for (int64_t t = 0; t < n_tok; t++)
        for (int64_t o = 0; o < n_out; o++) {
            ref->vec_dot(k, &yref[t * n_out + o], w + (size_t)o * wrb, xq + (size_t)t * xrb);
            y64q[t * n_out + o] = dot_f64_deq(wtype, wf + o * k, w + (size_t)o * wrb, xf + t * k,
                                              xq + (size_t)t * xrb, at, k);
            y64f[t * n_out + o] = dot_f64_deq(wtype, wf + o * k, w + (size_t)o * wrb, x + t * k,
                                              NULL, SGLC_GGML_TYPE_F32, k);
            double a = 0;
            for (int64_t i = 0; i < k; i++)
                a += fabs((double)wf[o * k + i] * x[t * k + i]);
            yabs[t * n_out + o] = a;
        }
    CHECK(all_finite(yref, ny) && guard_intact(yref, sizeof(float) * ny));
    double e = norm_err(yref, y64q, ny);
    CHECKF(e < 1e-5, "%s n_out=%ld k=%ld n_tok=%ld mode %d: ref vs f64 %.3g", tn, (long)n_out,
           (long)k, (long)n_tok, mode, e);
    double num = 0, den = 0;
    for (size_t i = 0; i < ny; i++) {
        num += (yref[i] - y64f[i]) * (yref[i] - y64f[i]);
        den += yabs[i] * yabs[i];
    }
    e = den > 0 ? sqrt(num / den) : sqrt(num);
    CHECKF(e < act_rounding_bound(at), "%s k=%ld mode %d: ref vs f32 activations %.3g > %.3g", tn,
           (long)k, mode, e, act_rounding_bound(at));

    double *yref64 = malloc(sizeof(double) * ny);
    for (size_t i = 0; i < ny; i++)
        yref64[i] = yref[i];
    float *y = guarded_alloc(sizeof(float) * ny);
    for (int isa = 0; isa < SGLC_CPU_ISA_COUNT; isa++) {
        if (!sglc_cpu_isa_available((sglc_cpu_isa)isa)) continue;
        const char *in = sglc_cpu_isa_name((sglc_cpu_isa)isa);
        const sglc_cpu_type_kernels *kk = sglc_cpu_kernels_for(wtype, (sglc_cpu_isa)isa);
        if (kk) {
            CHECKF(kk->act_type == at, "%s/%s: activation type differs from reference", tn, in);
            /* quantizer bit-identical to the reference one */
            for (int64_t t = 0; t < n_tok; t++)
                kk->quantize_act(x + t * k, xq2 + (size_t)t * xrb, k);
            CHECKF(memcmp(xq, xq2, xrb * (size_t)n_tok) == 0,
                   "%s/%s: activation quantizer differs from reference", tn, in);
            CHECK(guard_intact(xq2, xrb * (size_t)n_tok));
            for (int64_t t = 0; t < n_tok; t++)
                for (int64_t o = 0; o < n_out; o++)
                    kk->vec_dot(k, &y[t * n_out + o], w + (size_t)o * wrb, xq + (size_t)t * xrb);
            e = norm_err(y, yref64, ny);
            CHECKF(e < 1e-5 && all_finite(y, ny),
                   "%s/%s n_out=%ld k=%ld mode %d: vec_dot vs ref %.3g", tn, in, (long)n_out,
                   (long)k, mode, e);
        }
        /* matmul on 1, 2, 3 threads */
        size_t sb = sglc_cpu_matmul_scratch_bytes(wtype, k, n_tok);
        CHECK(sb >= xrb * (size_t)n_tok);
        char *scratch = guarded_alloc(sb);
        for (int p = 0; p < 3; p++) {
            for (size_t i = 0; i < ny; i++)
                y[i] = NAN;
            sglc_cpu_matmul(pools[p], (sglc_cpu_isa)isa, wtype, w, n_out, k, x, n_tok, y, scratch);
            CHECK(guard_intact(y, sizeof(float) * ny) && guard_intact(scratch, sb));
            e = norm_err(y, yref64, ny);
            CHECKF(e < 1e-5 && all_finite(y, ny),
                   "%s/%s matmul %d threads n_out=%ld k=%ld n_tok=%ld mode %d: err %.3g", tn, in,
                   p + 1, (long)n_out, (long)k, (long)n_tok, mode, e);
            if (isa == SGLC_CPU_ISA_REF)
                CHECKF(memcmp(y, yref, sizeof(float) * ny) == 0,
                       "%s ref matmul not identical to ref vec_dot", tn);
        }
        /* the packed layout, where this ISA has one: same results within the reference's
         * rounding, on 1-3 threads, and every token's row bit-identical to that token alone
         * (batch invariance); n_out 1, 7, 33, 300 leave the last 8-row group padded */
        size_t pb = sglc_cpu_packed_bytes((sglc_cpu_isa)isa, wtype, n_out, k);
        if (pb > 0) {
            char *wp = guarded_alloc(pb);
            sglc_cpu_pack((sglc_cpu_isa)isa, wtype, w, n_out, k, wp);
            CHECK(guard_intact(wp, pb));
            float *y1 = guarded_alloc(sizeof(float) * (size_t)n_out);
            for (int p = 0; p < 3; p++) {
                for (size_t i = 0; i < ny; i++)
                    y[i] = NAN;
                sglc_cpu_matmul_packed(pools[p], (sglc_cpu_isa)isa, wtype, wp, n_out, k, x, n_tok,
                                       y, scratch);
                CHECK(guard_intact(y, sizeof(float) * ny) && guard_intact(scratch, sb));
                e = norm_err(y, yref64, ny);
                CHECKF(e < 1e-5 && all_finite(y, ny),
                       "%s/%s packed matmul %d threads n_out=%ld k=%ld n_tok=%ld mode %d: err %.3g",
                       tn, in, p + 1, (long)n_out, (long)k, (long)n_tok, mode, e);
            }
            for (int64_t t = 0; t < n_tok; t++) {
                sglc_cpu_matmul_packed(pools[1], (sglc_cpu_isa)isa, wtype, wp, n_out, k, x + t * k,
                                       1, y1, scratch);
                CHECKF(memcmp(y1, y + t * n_out, sizeof(float) * (size_t)n_out) == 0,
                       "%s/%s packed: token %ld alone differs from it in a batch of %ld", tn, in,
                       (long)t, (long)n_tok);
            }
            CHECK(guard_intact(y1, sizeof(float) * (size_t)n_out));
            free(y1);
            free(wp);
        }
        free(scratch);
    }
    free(w);
    free(wf);
    free(x);
    free(xf);
    free(xq);
    free(xq2);
    free(yref);
    free(y64q);
    free(y64f);
    free(yabs);
    free(yref64);
    free(y);
}

static void test_kernels(void) {
    sglc_threadpool *pools[3] = {NULL, NULL, NULL};
    for (int p = 0; p < 3; p++)
        CHECK(sglc_threadpool_open(&pools[p], p + 1) == 0);
    for (size_t ti = 0; ti < N_WEIGHT_TYPES; ti++) {
        uint32_t t = k_weight_types[ti];
        int64_t be = (int64_t)sglc_ggml_block_elems(t);
        int64_t ks[4];
        if (be == 1) {
            ks[0] = 7, ks[1] = 33, ks[2] = 576, ks[3] = 1000;
        } else if (be == 32) {
            ks[0] = 32, ks[1] = 96, ks[2] = 576, ks[3] = 1536;
        } else {
            ks[0] = 256, ks[1] = 768, ks[2] = 1536, ks[3] = 2304;
        }
        const int64_t n_outs[] = {1, 7, 33};
        const int64_t n_toks[] = {1, 3, 17};
        int iter = 0;
        for (int a = 0; a < 4; a++)
            for (int b = 0; b < 3; b++)
                for (int c = 0; c < 3; c++, iter++) {
                    shape sh = {n_outs[b], ks[a], n_toks[c]};
                    test_type_shape(t, sh, iter % 5, pools);
                }
        /* one larger matmul: many row units, all modes of token grouping */
        shape big = {300, ks[2], 9};
        test_type_shape(t, big, 0, pools);
        test_type_shape(t, big, 4, pools);
    }
    for (int p = 0; p < 3; p++)
        sglc_threadpool_close(pools[p]);
}

static void test_tables(void) {
    CHECK(strcmp(sglc_ggml_type_name(SGLC_GGML_TYPE_Q4_1), "Q4_1") == 0);
    CHECK(sglc_ggml_type_name(4) == NULL && sglc_ggml_type_name(1000) == NULL);
    CHECK(sglc_ggml_type_supported(SGLC_GGML_TYPE_Q6_K));
    CHECK(!sglc_ggml_type_supported(SGLC_GGML_TYPE_Q2_K) && !sglc_ggml_type_supported(99));
    CHECK(sglc_ggml_row_bytes(SGLC_GGML_TYPE_Q4_1, 576) == 18 * 20);
    CHECK(sglc_ggml_row_bytes(SGLC_GGML_TYPE_Q6_K, 512) == 2 * 210);
    CHECK(sglc_ggml_row_bytes(SGLC_GGML_TYPE_Q8_0, 33) == 0);
    CHECK(sglc_ggml_row_bytes(SGLC_GGML_TYPE_F16, 33) == 66);
    CHECK(sglc_ggml_row_bytes(SGLC_GGML_TYPE_Q8_0, INT64_MAX - 31) == 0 ||
          sglc_ggml_row_bytes(SGLC_GGML_TYPE_Q8_0, INT64_MAX - 31) > 0); /* no crash */
    CHECK(sglc_ggml_row_bytes(SGLC_GGML_TYPE_F32, INT64_MAX) == 0);      /* overflow detected */
    for (size_t ti = 0; ti < N_WEIGHT_TYPES; ti++)
        CHECK(sglc_cpu_kernels_for(k_weight_types[ti], SGLC_CPU_ISA_REF) != NULL);
    CHECK(sglc_cpu_kernels_for(SGLC_GGML_TYPE_Q2_K, SGLC_CPU_ISA_REF) == NULL);
    sglc_cpu_isa best = sglc_cpu_isa_best();
    CHECK(sglc_cpu_isa_available(best));
    fprintf(stderr, "best CPU ISA: %s\n", sglc_cpu_isa_name(best));
}

int main(void) {
    test_tables();
    test_half();
    test_round_trip();
    test_kernels();
    TEST_MAIN_END();
}
