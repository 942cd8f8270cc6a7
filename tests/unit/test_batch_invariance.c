/* Batch invariance of the CPU weight kernels: a token's matmul result must be bit-identical
 * whether it is multiplied alone or together with other tokens (the engine promises a request
 * the same tokens alone or in any batch). Checked for every weight type and ISA. */
#include <stdint.h>

#include "backend/cpu/cpu_kernels.h"
#include "base/threadpool.h"
#include "quant/ggml_types.h"
#include "test_util.h"

int main(void) {
    sglc_threadpool *tp = NULL;
    CHECK(sglc_threadpool_open(&tp, 2) == 0);
    const uint32_t types[] = {SGLC_GGML_TYPE_F32,  SGLC_GGML_TYPE_F16,  SGLC_GGML_TYPE_BF16,
                              SGLC_GGML_TYPE_Q4_0, SGLC_GGML_TYPE_Q4_1, SGLC_GGML_TYPE_Q8_0,
                              SGLC_GGML_TYPE_Q4_K, SGLC_GGML_TYPE_Q5_K, SGLC_GGML_TYPE_Q6_K};
    const int64_t k = 1536, n = 37;
    enum { MAXT = 9 };
    float *wf = malloc(sizeof(float) * (size_t)(k * n));
    float *x = malloc(sizeof(float) * (size_t)(k * MAXT));
    uint64_t s = 7;
    for (int64_t i = 0; i < k * n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        wf[i] = (float)((s >> 40) & 0xffff) / 65536.0f - 0.5f;
    }
    for (int64_t i = 0; i < k * MAXT; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((s >> 40) & 0xffff) / 16384.0f - 2.0f;
    }
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        uint32_t t = types[ti];
        size_t rb = sglc_ggml_row_bytes(t, k);
        char *w = malloc(rb * (size_t)n);
        for (int64_t r = 0; r < n; r++)
            sglc_ggml_quantize_row(t, wf + r * k, w + r * rb, k);
        for (int isa = 0; isa < SGLC_CPU_ISA_COUNT; isa++) {
            if (!sglc_cpu_isa_available((sglc_cpu_isa)isa)) continue;
            void *scr = malloc(sglc_cpu_matmul_scratch_bytes(t, k, MAXT));
            float solo[MAXT][64], batch[MAXT * 64];
            for (int tok = 0; tok < MAXT; tok++)
                sglc_cpu_matmul(tp, (sglc_cpu_isa)isa, t, w, n, k, x + tok * k, 1, solo[tok], scr);
            int bad = 0;
            for (int nt = 1; nt <= MAXT; nt++) {
                sglc_cpu_matmul(tp, (sglc_cpu_isa)isa, t, w, n, k, x, nt, batch, scr);
                for (int tok = 0; tok < nt; tok++)
                    bad += memcmp(solo[tok], batch + tok * n, sizeof(float) * (size_t)n) != 0;
            }
            CHECKF(bad == 0, "%s on %s: %d token results depend on the batch",
                   sglc_ggml_type_name(t), sglc_cpu_isa_name((sglc_cpu_isa)isa), bad);
            /* the packed layout the backend computes from, where this ISA has one */
            size_t pb = sglc_cpu_packed_bytes((sglc_cpu_isa)isa, t, n, k);
            if (pb > 0) {
                char *wp = malloc(pb);
                sglc_cpu_pack((sglc_cpu_isa)isa, t, w, n, k, wp);
                for (int tok = 0; tok < MAXT; tok++)
                    sglc_cpu_matmul_packed(tp, (sglc_cpu_isa)isa, t, wp, n, k, x + tok * k, 1,
                                           solo[tok], scr);
                bad = 0;
                for (int nt = 1; nt <= MAXT; nt++) {
                    sglc_cpu_matmul_packed(tp, (sglc_cpu_isa)isa, t, wp, n, k, x, nt, batch, scr);
                    for (int tok = 0; tok < nt; tok++)
                        bad += memcmp(solo[tok], batch + tok * n, sizeof(float) * (size_t)n) != 0;
                }
                CHECKF(bad == 0, "packed %s on %s: %d token results depend on the batch",
                       sglc_ggml_type_name(t), sglc_cpu_isa_name((sglc_cpu_isa)isa), bad);
                free(wp);
            }
            free(scr);
        }
        free(w);
    }
    free(wf);
    free(x);
    sglc_threadpool_close(tp);
    TEST_MAIN_END();
}
