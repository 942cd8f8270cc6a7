/* backend/vexp_scalar.h (the GPU's SiLU exp) against the CPU's AVX2 sglc_v_expf, bit for bit,
 * over a sweep of float bit patterns and the edges (overflow, subnormal and flush ranges). */
#pragma GCC target("avx2,fma")
#include <immintrin.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "backend/cpu/vexp_avx2.h"
#include "backend/vexp_scalar.h"
#include "test_util.h"

static uint32_t bits_of(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static long check(float x) {
    float v[8], o[8];
    for (int i = 0; i < 8; i++)
        v[i] = x;
    _mm256_storeu_ps(o, sglc_v_expf(_mm256_loadu_ps(v)));
    const float s = sglc_vexp_scalar(x);
    if (bits_of(s) == bits_of(o[0])) return 0;
    printf("x=%a: avx2 %a, scalar %a\n", (double)x, (double)o[0], (double)s);
    return 1;
}

int main(void) {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
        printf("test_vexp_scalar: no AVX2/FMA on this CPU, nothing to compare against\n");
        return 0;
    }
    long bad = 0, n = 0;
    for (uint64_t u = 0; u <= 0xffffffffull; u += 65521) {
        float x;
        uint32_t b = (uint32_t)u;
        memcpy(&x, &b, 4);
        if (isnan(x)) continue;
        bad += check(x);
        n++;
    }
    /* the range SiLU and softmax use, densely, and the branch edges */
    for (float x = -110.0f; x <= 90.0f; x += 0.00137f, n++)
        bad += check(x);
    const float edges[] = {0.0f,
                           -0.0f,
                           87.3f,
                           88.38f,
                           88.73f,
                           89.0f,
                           -87.3f,
                           -103.9f,
                           -104.0f,
                           -126.5f,
                           -133.0f,
                           -150.0f,
                           200.0f,
                           -200.0f,
                           INFINITY,
                           -INFINITY,
                           1e-30f,
                           -1e-30f,
                           126.0f * 0.6931472f};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++, n++)
        bad += check(edges[i]);
    printf("test_vexp_scalar: %ld of %ld inputs differ from the AVX2 exp\n", bad, n);
    CHECKF(bad == 0, "%ld inputs differ", bad);
    return g_test_failures ? 1 : 0;
}
