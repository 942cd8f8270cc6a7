/* e^x for one float with the operations of the CPU backend's vectorized exp (cpu/vexp_avx2.h
 * sglc_v_expf, ggml's ggml_v_expf), in a form both C and CUDA compile: the GPU's SiLU uses it
 * so the two backends round alike, and test_vexp_scalar checks it against the AVX2 version.
 * Every step is one IEEE operation (fmaf, or a lone multiply / subtract that no compiler can
 * contract), so the value is the vector lane's bit for bit. */
#ifndef SGLC_BACKEND_VEXP_SCALAR_H
#define SGLC_BACKEND_VEXP_SCALAR_H

#include <math.h>
#include <stdint.h>

#ifdef __CUDACC__
#define SGLC_HD __host__ __device__
#else
#define SGLC_HD
#endif

typedef union {
    float f;
    uint32_t u;
} sglc_fbits;

static inline SGLC_HD float sglc_vexp_scalar(float x) {
    sglc_fbits zb, kb, s1b, s2b, one;
    const float r = 0x1.8p23f;
    const float z = fmaf(x, 0x1.715476p+0f, r);
    const float n = z - r;
    const float b = fmaf(-n, 0x1.7f7d1cp-20f, fmaf(-n, 0x1.62e4p-1f, x));
    zb.f = z;
    one.f = 1.0f;
    const uint32_t e = zb.u << 23;
    kb.u = e + one.u;
    const float k = kb.f;
    const float an = fabsf(n);
    const float u = b * b;
    const float j = fmaf(
        fmaf(fmaf(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u, fmaf(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)),
        u, 0x1.ffffecp-1f * b);
    if (!(an > 126.0f)) return fmaf(j, k, k);
    /* |n| > 126: scale in two steps (overflow, subnormals); |n| > 192: 0 or inf directly */
    const uint32_t g = n <= 0.0f ? 0x82000000u : 0u;
    s1b.u = g + 0x7f000000u;
    s2b.u = e - g;
    if (an > 192.0f) return s1b.f * s1b.f;
    return fmaf(s2b.f, j, s2b.f) * s1b.f;
}

#endif
