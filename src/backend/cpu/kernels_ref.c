/* Plain C reference weight kernels: one per weight format, computing what ggml's scalar
 * ggml_vec_dot_* computes (integer sums per block, then scaled by the block scales; float
 * formats accumulate in double). They define the results the SIMD kernels are tested against
 * and serve CPUs without AVX2. */
#include <string.h>

#include "backend/cpu/kernels_impl.h"
#include "quant/ggml_blocks.h"
#include "quant/ggml_types.h"

#define FP16(h) sglc_fp16_to_f32(h)

static void quantize_f32(const float *x, void *y, int64_t k) {
    memcpy(y, x, (size_t)k * sizeof(float));
}

static void quantize_f16(const float *x, void *y, int64_t k) {
    uint16_t *h = y;
    for (int64_t i = 0; i < k; i++)
        h[i] = sglc_f32_to_fp16(x[i]);
}

static void quantize_bf16(const float *x, void *y, int64_t k) {
    uint16_t *h = y;
    for (int64_t i = 0; i < k; i++)
        h[i] = sglc_f32_to_bf16(x[i]);
}

static void dot_f32(int64_t k, float *s, const void *vw, const void *vx) {
    const float *w = vw, *x = vx;
    double sum = 0;
    for (int64_t i = 0; i < k; i++)
        sum += (double)(w[i] * x[i]);
    *s = (float)sum;
}

/* Products of two halves (or two bf16) are exact in f32. */
static void dot_f16(int64_t k, float *s, const void *vw, const void *vx) {
    const uint16_t *w = vw, *x = vx;
    double sum = 0;
    for (int64_t i = 0; i < k; i++)
        sum += (double)(FP16(w[i]) * FP16(x[i]));
    *s = (float)sum;
}

static void dot_bf16(int64_t k, float *s, const void *vw, const void *vx) {
    const uint16_t *w = vw, *x = vx;
    double sum = 0;
    for (int64_t i = 0; i < k; i++)
        sum += (double)(sglc_bf16_to_f32(w[i]) * sglc_bf16_to_f32(x[i]));
    *s = (float)sum;
}

static void dot_q4_0(int64_t k, float *s, const void *vw, const void *vx) {
    const sglc_block_q4_0 *x = vw;
    const sglc_block_q8_0 *y = vx;
    float sumf = 0;
    for (int64_t ib = 0; ib < k / 32; ib++) {
        int sumi0 = 0, sumi1 = 0;
        for (int j = 0; j < 16; j++) {
            const int v0 = (x[ib].qs[j] & 0x0F) - 8;
            const int v1 = (x[ib].qs[j] >> 4) - 8;
            sumi0 += v0 * y[ib].qs[j];
            sumi1 += v1 * y[ib].qs[j + 16];
        }
        sumf += (float)(sumi0 + sumi1) * FP16(x[ib].d) * FP16(y[ib].d);
    }
    *s = sumf;
}

static void dot_q4_1(int64_t k, float *s, const void *vw, const void *vx) {
    const sglc_block_q4_1 *x = vw;
    const sglc_block_q8_1 *y = vx;
    float sumf = 0;
    for (int64_t ib = 0; ib < k / 32; ib++) {
        int sumi0 = 0, sumi1 = 0;
        for (int j = 0; j < 16; j++) {
            sumi0 += (x[ib].qs[j] & 0x0F) * y[ib].qs[j];
            sumi1 += (x[ib].qs[j] >> 4) * y[ib].qs[j + 16];
        }
        sumf += (FP16(x[ib].d) * FP16(y[ib].d)) * (float)(sumi0 + sumi1) +
                FP16(x[ib].m) * FP16(y[ib].s);
    }
    *s = sumf;
}

static void dot_q8_0(int64_t k, float *s, const void *vw, const void *vx) {
    const sglc_block_q8_0 *x = vw;
    const sglc_block_q8_0 *y = vx;
    float sumf = 0;
    for (int64_t ib = 0; ib < k / 32; ib++) {
        int sumi = 0;
        for (int j = 0; j < 32; j++)
            sumi += x[ib].qs[j] * y[ib].qs[j];
        sumf += (float)sumi * (FP16(x[ib].d) * FP16(y[ib].d));
    }
    *s = sumf;
}

/* Q4_K and Q5_K: sum_j sc_j * dot_j scaled by d, minus the mins against the activation's
 * 16-value sums (bsums) scaled by dmin. */
static void dot_q4_K(int64_t k, float *s, const void *vw, const void *vx) {
    const sglc_block_q4_K *x = vw;
    const sglc_block_q8_K *y = vx;
    float sumf = 0;
    for (int64_t i = 0; i < k / SGLC_QK_K; i++) {
        const uint8_t *q4 = x[i].qs;
        const int8_t *q8 = y[i].qs;
        int sumi = 0, summ = 0;
        for (int j = 0; j < 8; j++) {
            uint8_t sc, m;
            sglc_get_scale_min_k4(j, x[i].scales, &sc, &m);
            const int shift = (j & 1) * 4;
            const uint8_t *q = q4 + (j / 2) * 32;
            int dot = 0;
            for (int l = 0; l < 32; l++)
                dot += ((q[l] >> shift) & 0xF) * q8[j * 32 + l];
            sumi += sc * dot;
            summ += m * (y[i].bsums[2 * j] + y[i].bsums[2 * j + 1]);
        }
        sumf += FP16(x[i].d) * y[i].d * (float)sumi - FP16(x[i].dmin) * y[i].d * (float)summ;
    }
    *s = sumf;
}

static void dot_q5_K(int64_t k, float *s, const void *vw, const void *vx) {
    const sglc_block_q5_K *x = vw;
    const sglc_block_q8_K *y = vx;
    float sumf = 0;
    for (int64_t i = 0; i < k / SGLC_QK_K; i++) {
        const int8_t *q8 = y[i].qs;
        int sumi = 0, summ = 0;
        for (int j = 0; j < 8; j++) {
            uint8_t sc, m;
            sglc_get_scale_min_k4(j, x[i].scales, &sc, &m);
            const int shift = (j & 1) * 4;
            const uint8_t *ql = x[i].qs + (j / 2) * 32;
            int dot = 0;
            for (int l = 0; l < 32; l++) {
                int q = ((ql[l] >> shift) & 0xF) | (((x[i].qh[l] >> j) & 1) << 4);
                dot += q * q8[j * 32 + l];
            }
            sumi += sc * dot;
            summ += m * (y[i].bsums[2 * j] + y[i].bsums[2 * j + 1]);
        }
        sumf += FP16(x[i].d) * y[i].d * (float)sumi - FP16(x[i].dmin) * y[i].d * (float)summ;
    }
    *s = sumf;
}

static void dot_q6_K(int64_t k, float *s, const void *vw, const void *vx) {
    const sglc_block_q6_K *x = vw;
    const sglc_block_q8_K *y = vx;
    float sumf = 0;
    for (int64_t i = 0; i < k / SGLC_QK_K; i++) {
        int8_t q[SGLC_QK_K];
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = x[i].ql + 64 * h, *qh = x[i].qh + 32 * h;
            int8_t *qo = q + 128 * h;
            for (int l = 0; l < 32; l++) {
                qo[l + 0] = (int8_t)(((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
                qo[l + 32] = (int8_t)(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
                qo[l + 64] = (int8_t)(((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
                qo[l + 96] = (int8_t)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
            }
        }
        int sumi = 0;
        for (int j = 0; j < 16; j++) {
            int dot = 0;
            for (int l = 0; l < 16; l++)
                dot += q[16 * j + l] * y[i].qs[16 * j + l];
            sumi += x[i].scales[j] * dot;
        }
        sumf += FP16(x[i].d) * y[i].d * (float)sumi;
    }
    *s = sumf;
}

#define DEFINE_DOT_N(name)                                                                         \
    static void name##_n(int64_t k, float *s, const void *w, const void *xq, size_t stride,        \
                         const float *xs, size_t xs_stride, int n) {                               \
        (void)xs, (void)xs_stride;                                                                 \
        for (int r = 0; r < n; r++)                                                                \
            name(k, s + r, w, (const char *)xq + (size_t)r * stride);                              \
    }

DEFINE_DOT_N(dot_f32)
DEFINE_DOT_N(dot_f16)
DEFINE_DOT_N(dot_bf16)
DEFINE_DOT_N(dot_q4_0)
DEFINE_DOT_N(dot_q4_1)
DEFINE_DOT_N(dot_q8_0)
DEFINE_DOT_N(dot_q4_K)
DEFINE_DOT_N(dot_q5_K)
DEFINE_DOT_N(dot_q6_K)

#define ENTRY(act, quant, dot)                                                                     \
    { {act, quant, dot}, dot##_n, 0, SGLC_CPU_DOT_MAX_ROWS, NULL, NULL }

static const sglc_cpu_kernel_entry k_f32 = ENTRY(SGLC_GGML_TYPE_F32, quantize_f32, dot_f32);
static const sglc_cpu_kernel_entry k_f16 = ENTRY(SGLC_GGML_TYPE_F16, quantize_f16, dot_f16);
static const sglc_cpu_kernel_entry k_bf16 = ENTRY(SGLC_GGML_TYPE_BF16, quantize_bf16, dot_bf16);
static const sglc_cpu_kernel_entry k_q4_0 =
    ENTRY(SGLC_GGML_TYPE_Q8_0, sglc_quantize_row_q8_0_ref, dot_q4_0);
static const sglc_cpu_kernel_entry k_q4_1 =
    ENTRY(SGLC_GGML_TYPE_Q8_1, sglc_quantize_row_q8_1_ref, dot_q4_1);
static const sglc_cpu_kernel_entry k_q8_0 =
    ENTRY(SGLC_GGML_TYPE_Q8_0, sglc_quantize_row_q8_0_ref, dot_q8_0);
static const sglc_cpu_kernel_entry k_q4_K =
    ENTRY(SGLC_GGML_TYPE_Q8_K, sglc_quantize_row_q8_K_ref, dot_q4_K);
static const sglc_cpu_kernel_entry k_q5_K =
    ENTRY(SGLC_GGML_TYPE_Q8_K, sglc_quantize_row_q8_K_ref, dot_q5_K);
static const sglc_cpu_kernel_entry k_q6_K =
    ENTRY(SGLC_GGML_TYPE_Q8_K, sglc_quantize_row_q8_K_ref, dot_q6_K);

const sglc_cpu_kernel_entry *sglc_cpu_kernels_ref(uint32_t wtype) {
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
