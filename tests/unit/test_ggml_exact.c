/* The cpu-ggml kernels (backend/cpu/ggml_exact.h) against plain references. Bit-identity with
 * llama.cpp is asserted end to end by test_model_golden; here each kernel is checked for what
 * it computes, on random inputs and awkward sizes, so a wrong index or lane shows up as a wrong
 * value rather than as a drifted greedy token:
 *  - activation quantization: same scales and codes as the reference Q8_1 / Q8_0 quantizer
 *    (sglc_ggml_quantize_row; ggml's x86 path rounds half to even where the reference rounds
 *    half away from zero, so codes may differ by 1 at exact ties only);
 *  - Q4_1 and Q8_0 dots: the f64 dot of the dequantized weight and activation rows, to 1e-5
 *    of sum |w a| (float accumulation);
 *  - SwiGLU (ggml's vector expf, 1.45 ulp): x / (1 + e^-x) * g in double, to 2e-6 relative;
 *  - RoPE: the rotation in double, to 1e-6;
 *  - attention, both the batched (tinyBLAS) and single-token (vec_dot_f16) orders: an f64
 *    softmax(q k * scale) v over the same f16 cache, normalized error < 1e-3 (q and the
 *    probabilities are rounded to f16, as ggml does), for head sizes 64, 80 and 128 and
 *    contexts 1 to 300 over scattered slots. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/ggml_exact.h"
#include "quant/ggml_types.h"
#include "test_util.h"

static uint64_t g_s = 777;
static float rnd(float a) {
    g_s = g_s * 6364136223846793005ull + 1442695040888963407ull;
    return ((float)((g_s >> 40) & 0xffffff) / 16777216.0f * 2.0f - 1.0f) * a;
}

static void fill(float *x, int64_t n, float a) {
    for (int64_t i = 0; i < n; i++)
        x[i] = rnd(a) * (i % 97 == 0 ? 8.0f : 1.0f); /* a few outliers per row */
}

static void test_matmul_kernels(void) {
    static const int64_t ks[] = {32, 64, 96, 576, 1536};
    static const uint32_t types[] = {SGLC_GGML_TYPE_Q4_1, SGLC_GGML_TYPE_Q8_0};
    for (size_t ti = 0; ti < 2; ti++)
        for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
            uint32_t wt = types[ti],
                     at = wt == SGLC_GGML_TYPE_Q4_1 ? SGLC_GGML_TYPE_Q8_1 : SGLC_GGML_TYPE_Q8_0;
            int64_t k = ks[ki];
            size_t ab = sglc_gx_act_row_bytes(wt, k);
            CHECK(ab == sglc_ggml_row_bytes(at, k));
            float *x = malloc(sizeof(float) * (size_t)k), *w = malloc(sizeof(float) * (size_t)k);
            float *xd = malloc(sizeof(float) * (size_t)k), *wd = malloc(sizeof(float) * (size_t)k);
            uint8_t *act = malloc(ab), *ref = malloc(ab);
            uint8_t *wq = malloc(sglc_ggml_row_bytes(wt, k));
            for (int rep = 0; rep < 20; rep++) {
                fill(x, k, rep % 3 == 0 ? 30.0f : 1.0f);
                if (rep == 1) memset(x, 0, sizeof(float) * 32); /* an all-zero block */
                fill(w, k, 0.05f);
                sglc_gx_quantize_row(wt, x, k, act);
                CHECK(sglc_ggml_quantize_row(at, x, ref, k) == 0);
                /* same block layout: scale(s) then 32 codes */
                size_t bb = sglc_ggml_block_bytes(at), hdr = bb - 32;
                int diffs = 0;
                for (int64_t b = 0; b < k / 32; b++) {
                    CHECK(memcmp(act + b * bb, ref + b * bb, 2) == 0); /* d */
                    for (size_t j = hdr; j < bb; j++) {
                        int d = (int8_t)act[b * bb + j] - (int8_t)ref[b * bb + j];
                        CHECK(d >= -1 && d <= 1);
                        diffs += d != 0;
                    }
                }
                CHECKF(diffs <= 1, "%d codes differ from the reference quantizer", diffs);
                CHECK(sglc_ggml_quantize_row(wt, w, wq, k) == 0);
                sglc_ggml_dequantize_row(wt, wq, wd, k);
                sglc_ggml_dequantize_row(at, act, xd, k);
                double exact = 0, mag = 0;
                for (int64_t i = 0; i < k; i++) {
                    exact += (double)wd[i] * (double)xd[i];
                    mag += fabs((double)wd[i] * (double)xd[i]);
                }
                float got = sglc_gx_dot(wt, wq, act, k);
                /* Q4_1's m * s term uses s = fp16(d * sum(codes)): one f16 rounding of the
                 * block's sum on top of float accumulation */
                double tol = (wt == SGLC_GGML_TYPE_Q4_1 ? 2e-3 : 1e-5) * (mag + 1e-30);
                if (wt == SGLC_GGML_TYPE_Q4_1) {
                    /* the same dot with s taken from the stored fp16 value is exact up to float
                     * accumulation: compare against that too, tightly */
                    double e2 = 0, m2 = 0;
                    for (int64_t b = 0; b < k / 32; b++) {
                        const uint8_t *wb = wq + b * 20, *xb = act + b * bb;
                        uint16_t wdh, wmh, xdh, xsh;
                        memcpy(&wdh, wb, 2);
                        memcpy(&wmh, wb + 2, 2);
                        memcpy(&xdh, xb, 2);
                        memcpy(&xsh, xb + 2, 2);
                        int32_t isum = 0;
                        for (int j = 0; j < 32; j++) {
                            int q = j < 16 ? (wb[4 + j] & 15) : (wb[4 + j - 16] >> 4);
                            isum += q * (int8_t)xb[4 + j];
                        }
                        double t1 = (double)sglc_fp16_to_f32(wdh) * sglc_fp16_to_f32(xdh) * isum;
                        double t2 = (double)sglc_fp16_to_f32(wmh) * sglc_fp16_to_f32(xsh);
                        e2 += t1 + t2;
                        m2 += fabs(t1) + fabs(t2);
                    }
                    CHECKF(fabs((double)got - e2) <= 1e-5 * (m2 + 1e-30), "Q4_1 k=%lld: %g vs %g",
                           (long long)k, got, e2);
                }
                CHECKF(fabs((double)got - exact) <= tol, "%s k=%lld: %g vs %g",
                       sglc_ggml_type_name(wt), (long long)k, got, exact);
            }
            free(x);
            free(w);
            free(xd);
            free(wd);
            free(act);
            free(ref);
            free(wq);
        }
}

static void test_swiglu_rope(void) {
    static const int64_t ns[] = {1, 7, 8, 1000, 1003};
    for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
        int64_t n = ns[ni];
        float g[1003], u[1003], o[1003];
        fill(g, n, 12.0f);
        fill(u, n, 2.0f);
        if (n > 4) g[3] = -95.0f; /* deep in the tail of exp: the kernel's slow path */
        sglc_gx_swiglu(g, u, o, n);
        for (int64_t i = 0; i < n; i++) {
            double want = (double)g[i] / (1.0 + exp(-(double)g[i])) * (double)u[i];
            CHECKF(fabs((double)o[i] - want) <= 2e-6 * fabs(want) + 1e-30,
                   "swiglu n=%lld [%lld]: %g vs %g", (long long)n, (long long)i, o[i], want);
        }
    }
    for (int neox = 0; neox < 2; neox++) {
        float v[64], v0[64], cs[32], sn[32];
        fill(v, 64, 3.0f);
        memcpy(v0, v, sizeof v);
        for (int i = 0; i < 32; i++) {
            double a = 17.0 * pow(10000.0, -2.0 * i / 64.0);
            cs[i] = (float)cos(a);
            sn[i] = (float)sin(a);
        }
        sglc_gx_rope(v, cs, sn, 64, neox);
        for (int i = 0; i < 32; i++) {
            int i0 = neox ? i : 2 * i, i1 = neox ? i + 32 : 2 * i + 1;
            double r0 = (double)v0[i0] * cs[i] - (double)v0[i1] * sn[i];
            double r1 = (double)v0[i0] * sn[i] + (double)v0[i1] * cs[i];
            CHECK(fabs(v[i0] - r0) <= 1e-6 * (fabs(v0[i0]) + fabs(v0[i1])));
            CHECK(fabs(v[i1] - r1) <= 1e-6 * (fabs(v0[i0]) + fabs(v0[i1])));
        }
    }
}

enum { SLOTS = 512, KVH = 2 };

static void test_attention(void) {
    static const int hds[] = {64, 80, 128};
    static const int ctxs[] = {1, 7, 40, 300};
    for (size_t hi = 0; hi < 3; hi++)
        for (size_t ci = 0; ci < 4; ci++) {
            int hd = hds[hi], n_ctx = ctxs[ci];
            size_t kvd = (size_t)KVH * (size_t)hd;
            uint16_t *kc = malloc(sizeof(uint16_t) * SLOTS * kvd);
            uint16_t *vc = malloc(sizeof(uint16_t) * SLOTS * kvd);
            for (size_t i = 0; i < SLOTS * kvd; i++) {
                kc[i] = sglc_f32_to_fp16(rnd(2.0f));
                vc[i] = sglc_f32_to_fp16(rnd(1.0f));
            }
            int32_t slots[300];
            for (int p = 0; p < n_ctx; p++)
                slots[p] = (p * 37 + 11) % SLOTS;
            float q[128], out[2][128];
            fill(q, hd, 1.5f);
            float scale = 1.0f / sqrtf((float)hd);
            float *scr = malloc(sizeof(float) * sglc_gx_attn_scratch_floats(n_ctx, hd));
            const uint16_t *kh = kc + hd, *vh = vc + hd; /* kv head 1 */
            for (int batched = 0; batched < 2; batched++)
                sglc_gx_attn(q, kh, vh, kvd, slots, n_ctx, hd, scale, batched, scr, out[batched]);
            double sc[300], mx = -INFINITY, z = 0;
            for (int p = 0; p < n_ctx; p++) {
                double s = 0;
                for (int d = 0; d < hd; d++)
                    s += (double)q[d] * sglc_fp16_to_f32(kh[(size_t)slots[p] * kvd + d]);
                sc[p] = s * scale;
                mx = sc[p] > mx ? sc[p] : mx;
            }
            for (int p = 0; p < n_ctx; p++)
                z += (sc[p] = exp(sc[p] - mx));
            for (int batched = 0; batched < 2; batched++) {
                double num = 0, den = 0;
                for (int d = 0; d < hd; d++) {
                    double want = 0;
                    for (int p = 0; p < n_ctx; p++)
                        want += sc[p] / z * sglc_fp16_to_f32(vh[(size_t)slots[p] * kvd + d]);
                    num += (out[batched][d] - want) * (out[batched][d] - want);
                    den += want * want;
                }
                CHECKF(sqrt(num / (den + 1e-30)) < 1e-3, "attention hd=%d ctx=%d batched=%d: %g",
                       hd, n_ctx, batched, sqrt(num / (den + 1e-30)));
            }
            free(scr);
            free(kc);
            free(vc);
        }
}

int main(void) {
    if (!sglc_cpu_isa_available(SGLC_CPU_ISA_AVX2)) {
        fprintf(stderr, "SKIP: the cpu-ggml kernels need AVX2/FMA/F16C\n");
        TEST_MAIN_END();
    }
    test_matmul_kernels();
    test_swiglu_rope();
    test_attention();
    TEST_MAIN_END();
}
