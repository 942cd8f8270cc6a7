/* CPU matmul kernels for MLX affine weights (bits 2..8, groups 32/64/128, scales in f32, f16
 * and bf16), on awkward shapes (n_out 1, 7, 33; n_tok 1, 3, 17):
 *  - the reference matmul equals an f64 dot of the affine values scale * q + bias (codes,
 *    scales and biases from the MLX quantizer, bit-exact with MLX in test_mlx_quant) with the
 *    activations, within 1e-5 normalized error;
 *  - every SIMD ISA available here equals the reference within 1e-5;
 *  - batch invariance: at each ISA and on 1 and 3 threads, a token's output row is
 *    bit-identical whether it is computed alone or among n_tok tokens (the serving engine
 *    relies on it for reproducible greedy output under continuous batching);
 *  - guard bytes after outputs and scratch stay intact, outputs are finite. */
#include <math.h>
#include <stdint.h>

#include "backend/cpu/cpu_kernels.h"
#include "base/log.h"
#include "base/threadpool.h"
#include "quant/ggml_types.h"
#include "quant/mlx_affine.h"
#include "test_util.h"

#define KERNEL_TEST_SEED 0x243F6A8885A308D3ull
#include "kernel_test_util.h"

static double norm_err(const float *a, const double *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += b[i] * b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static void store(void *p, uint32_t dtype, size_t i, float v) {
    if (dtype == SGLC_GGML_TYPE_F32)
        ((float *)p)[i] = v;
    else if (dtype == SGLC_GGML_TYPE_F16)
        ((uint16_t *)p)[i] = sglc_f32_to_fp16(v);
    else
        ((uint16_t *)p)[i] = sglc_f32_to_bf16(v);
}

static void run_matmul(sglc_threadpool *tp, sglc_cpu_isa isa, const sglc_cpu_affine_weight *w,
                       int64_t n_out, int64_t k, const float *x, int64_t n_tok, float *y) {
    size_t sb = sglc_cpu_matmul_affine_scratch_bytes(k, w->group, n_tok);
    SGLC_ASSERT(sb > 0);
    void *scratch = guarded_alloc(sb);
    sglc_cpu_matmul_affine(tp, isa, w, n_out, k, x, n_tok, y, scratch);
    CHECK(guard_intact(scratch, sb));
    free(scratch);
}

static void test_case(int bits, int group, uint32_t dtype, int64_t n_out, int64_t k, int64_t n_tok,
                      sglc_threadpool *pools[2]) {
    /* weights: random floats of a per-row range, quantized by the MLX quantizer */
    double *wf = malloc((size_t)(n_out * k) * sizeof(double));
    void *wd = malloc((size_t)(n_out * k) * 4);
    int64_t words = sglc_mlx_affine_row_words(k, bits), ng = k / group;
    uint32_t *wq = malloc((size_t)(n_out * words) * 4);
    void *sc = malloc((size_t)(n_out * ng) * 4), *bi = malloc((size_t)(n_out * ng) * 4);
    SGLC_ASSERT(wf && wd && wq && sc && bi);
    for (int64_t o = 0; o < n_out; o++) {
        float range = powf(10.0f, rng_uniform(-3, 1));
        float off = rng_uniform(-1, 1) * range;
        for (int64_t i = 0; i < k; i++)
            store(wd, dtype, (size_t)(o * k + i), off + rng_uniform(-range, range));
    }
    sglc_mlx_affine_quantize(wd, dtype, n_out, k, bits, group, wq, sc, bi);
    /* the affine values scale * q + bias in exact arithmetic (mlx.core.dequantize rounds them
     * to the dtype, which a matmul with f32 activations does not) */
    size_t es = dtype == SGLC_GGML_TYPE_F32 ? 4 : 2;
    for (int64_t o = 0; o < n_out; o++)
        for (int64_t i = 0; i < k; i++) {
            const void *srow = (char *)sc + (size_t)(o * ng) * es;
            const void *brow = (char *)bi + (size_t)(o * ng) * es;
            wf[o * k + i] = (double)sglc_mlx_affine_param(srow, dtype, i / group) *
                                sglc_mlx_affine_code(wq + o * words, i, bits) +
                            sglc_mlx_affine_param(brow, dtype, i / group);
        }
    sglc_cpu_affine_weight w = {wq, sc, bi, dtype, bits, group};

    float *x = malloc((size_t)(n_tok * k) * sizeof(float));
    SGLC_ASSERT(x);
    for (int64_t i = 0; i < n_tok * k; i++)
        x[i] = rng_uniform(-2, 2);
    double *ref = malloc((size_t)(n_tok * n_out) * sizeof(double));
    SGLC_ASSERT(ref);
    for (int64_t t = 0; t < n_tok; t++)
        for (int64_t o = 0; o < n_out; o++) {
            double s = 0;
            for (int64_t i = 0; i < k; i++)
                s += wf[o * k + i] * (double)x[t * k + i];
            ref[t * n_out + o] = s;
        }

    size_t yb = (size_t)(n_tok * n_out) * sizeof(float);
    float *y_ref = guarded_alloc(yb);
    run_matmul(pools[0], SGLC_CPU_ISA_REF, &w, n_out, k, x, n_tok, y_ref);
    double e = norm_err(y_ref, ref, (size_t)(n_tok * n_out));
    CHECKF(e < 1e-5, "ref bits=%d g=%d dtype=%u %lldx%lld tok=%lld: err %g", bits, group, dtype,
           (long long)n_out, (long long)k, (long long)n_tok, e);
    CHECK(guard_intact(y_ref, yb));

    for (int isa = 0; isa < SGLC_CPU_ISA_COUNT; isa++) {
        if (!sglc_cpu_isa_available((sglc_cpu_isa)isa)) continue;
        float *y_all[2];
        for (int p = 0; p < 2; p++) {
            y_all[p] = guarded_alloc(yb);
            run_matmul(pools[p], (sglc_cpu_isa)isa, &w, n_out, k, x, n_tok, y_all[p]);
            CHECK(guard_intact(y_all[p], yb));
            int finite = 1;
            for (int64_t i = 0; i < n_tok * n_out; i++)
                finite &= isfinite(y_all[p][i]) != 0;
            CHECK(finite);
        }
        double es2 = norm_err(y_all[0], ref, (size_t)(n_tok * n_out));
        if (isa == SGLC_CPU_ISA_AVX2 && bits == 4 && group % 64 == 0) {
            /* the 16-bit-activation kernel: against f64 over the activations it computes with
             * (x rounded to steps of max|x| / 32767 per 64 values) it must be f32-accurate, and
             * against the exact activations within that rounding (2^-15 of a chunk's max) */
            double *ref16 = malloc((size_t)(n_tok * n_out) * sizeof(double));
            double *x16 = malloc((size_t)(n_tok * k) * sizeof(double));
            SGLC_ASSERT(ref16 && x16);
            for (int64_t c = 0; c < n_tok * k; c += 64) {
                float amax = 0;
                for (int j = 0; j < 64; j++)
                    amax = fabsf(x[c + j]) > amax ? fabsf(x[c + j]) : amax;
                float d = amax / 32767.0f, inv = amax > 0 ? 32767.0f / amax : 0.0f;
                for (int j = 0; j < 64; j++)
                    x16[c + j] = (double)d * (double)lrintf(x[c + j] * inv);
            }
            /* scale * q meets the rounded activations; the bias meets the exact group sums */
            for (int64_t t = 0; t < n_tok; t++)
                for (int64_t o = 0; o < n_out; o++) {
                    const void *brow = (char *)bi + (size_t)(o * ng) * es;
                    double acc = 0;
                    for (int64_t i = 0; i < k; i++) {
                        double b = sglc_mlx_affine_param(brow, dtype, i / group);
                        acc += (wf[o * k + i] - b) * x16[t * k + i] + b * x[t * k + i];
                    }
                    ref16[t * n_out + o] = acc;
                }
            double e16 = norm_err(y_all[0], ref16, (size_t)(n_tok * n_out));
            CHECKF(e16 < 1e-5, "avx2 i16 bits=4 g=%d: err %g vs f64 of its activations", group,
                   e16);
            CHECKF(es2 < 1e-4, "avx2 i16 bits=4 g=%d: err %g vs f64", group, es2);
            free(ref16);
            free(x16);
        } else {
            CHECKF(es2 < 1e-5, "%s bits=%d g=%d: err %g vs f64",
                   sglc_cpu_isa_name((sglc_cpu_isa)isa), bits, group, es2);
        }
        CHECKF(memcmp(y_all[0], y_all[1], yb) == 0, "%s bits=%d g=%d: 1 vs 3 threads differ",
               sglc_cpu_isa_name((sglc_cpu_isa)isa), bits, group);
        /* each token alone */
        float *y1 = guarded_alloc((size_t)n_out * sizeof(float));
        int diff = 0;
        for (int64_t t = 0; t < n_tok; t++) {
            run_matmul(pools[1], (sglc_cpu_isa)isa, &w, n_out, k, x + t * k, 1, y1);
            diff += memcmp(y1, y_all[0] + t * n_out, (size_t)n_out * sizeof(float)) != 0;
        }
        CHECKF(diff == 0, "%s bits=%d g=%d n_tok=%lld: %d tokens differ from their solo run",
               sglc_cpu_isa_name((sglc_cpu_isa)isa), bits, group, (long long)n_tok, diff);
        free(y1);
        free(y_all[0]);
        free(y_all[1]);
    }
    free(y_ref);
    free(ref);
    free(x);
    free(wf);
    free(wd);
    free(wq);
    free(sc);
    free(bi);
}

int main(void) {
    sglc_threadpool *pools[2] = {NULL, NULL};
    CHECK(sglc_threadpool_open(&pools[0], 1) == 0);
    CHECK(sglc_threadpool_open(&pools[1], 3) == 0);
    static const int bits[] = {2, 3, 4, 5, 6, 8};
    static const int groups[] = {32, 64, 128};
    static const uint32_t dtypes[] = {SGLC_GGML_TYPE_F32, SGLC_GGML_TYPE_F16, SGLC_GGML_TYPE_BF16};
    static const int64_t n_outs[] = {1, 7, 33};
    static const int64_t n_toks[] = {1, 3, 17};
    int cases = 0;
    for (size_t b = 0; b < 6; b++)
        for (size_t g = 0; g < 3; g++)
            for (size_t d = 0; d < 3; d++) {
                int64_t k = groups[g] * (int64_t)(1 + (cases % 3)) * 2;
                test_case(bits[b], groups[g], dtypes[d], n_outs[cases % 3], k,
                          n_toks[(cases / 3) % 3], pools);
                cases++;
            }
    /* a large-ish decode shape and a prefill shape that spread over threads */
    test_case(4, 64, SGLC_GGML_TYPE_BF16, 1536, 576, 1, pools);
    test_case(4, 64, SGLC_GGML_TYPE_F16, 576, 1536, 9, pools);
    test_case(8, 64, SGLC_GGML_TYPE_BF16, 577, 576, 6, pools);
    /* 4-bit, group 64: 8-chunk vector steps plus scalar remainders, every parameter type */
    test_case(4, 64, SGLC_GGML_TYPE_F32, 33, 64 * 11, 5, pools);
    test_case(4, 64, SGLC_GGML_TYPE_F16, 7, 64 * 17, 2, pools);
    test_case(4, 128, SGLC_GGML_TYPE_BF16, 9, 128 * 9, 4, pools);
    printf("affine AVX2 kernels: q4 %s, q8 %s\n",
           sglc_cpu_affine_isa_has(4, SGLC_CPU_ISA_AVX2) ? "yes" : "no",
           sglc_cpu_affine_isa_has(8, SGLC_CPU_ISA_AVX2) ? "yes" : "no");
    sglc_threadpool_close(pools[0]);
    sglc_threadpool_close(pools[1]);
    printf("test_mlx_kernels: %d failures\n", g_test_failures);
    return g_test_failures ? 1 : 0;
}
