/* MLX affine matmul on the CPU: the plain C row kernel (every bit width), dispatch to the ISA
 * row kernels, and the threaded matmul. Like sglc_cpu_matmul it runs in two phases: the
 * per-group sums of each activation row go into scratch once, then output rows are split
 * over threads in 16-row units and each weight row is dotted with up to SGLC_CPU_DOT_MAX_ROWS
 * tokens per pass, so a weight row is read from memory once per call. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/kernels_affine_impl.h"
#include "backend/cpu/kernels_impl.h"
#include "base/log.h"
#include "quant/ggml_types.h"
#include "quant/mlx_affine.h"

#define AFF_ROW_UNIT 16
#define AFF_SERIAL_MACS 32768

/* Groups dotted in f32, group results accumulated in double. */
static void affine_dot_ref(int64_t k, int group, uint32_t dtype, const uint32_t *wrow,
                           const void *srow, const void *brow, const float *x, size_t x_stride,
                           const float *xs, size_t xs_stride, int nr, float *s, int bits) {
    const int64_t ng = k / group;
    for (int r = 0; r < nr; r++) {
        const float *xr = x + (size_t)r * x_stride;
        double acc = 0;
        for (int64_t g = 0; g < ng; g++) {
            float sc = sglc_mlx_affine_param(srow, dtype, g);
            float bi = sglc_mlx_affine_param(brow, dtype, g);
            float gd = 0;
            for (int j = 0; j < group; j++) {
                int64_t i = g * group + j;
                gd += (float)sglc_mlx_affine_code(wrow, i, bits) * xr[i];
            }
            acc += (double)sc * gd + (double)bi * xs[(size_t)r * xs_stride + (size_t)g];
        }
        s[r] = (float)acc;
    }
}

/* SGLC_AFFINE_F32=1 keeps activations in f32 (MLX's own arithmetic) instead of the 16-bit
 * kernels, for A/B comparisons of speed and agreement. Read once. */
static int getenv_f32_affine(void) {
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("SGLC_AFFINE_F32");
        v = e && e[0] == '1';
    }
    return v;
}

int sglc_cpu_affine_isa_has(int bits, sglc_cpu_isa isa) {
    switch (isa) {
    case SGLC_CPU_ISA_REF: return sglc_mlx_affine_valid(bits, 64);
    case SGLC_CPU_ISA_AVX2:
        return sglc_cpu_isa_available(SGLC_CPU_ISA_AVX2) &&
               sglc_cpu_affine_dot_avx2(bits).dot != NULL;
    default: return 0;
    }
}

/* Scratch: per-group activation sums [n_tok][k / group], then (64-byte aligned) either the
 * activations de-interleaved for kernels with split_pairs [n_tok][k] f32, or for 16-bit
 * kernels the quantized activations [n_tok][k] int16 followed by their steps [n_tok][k / 64]
 * f32 (k * 2 + k / 16 bytes per token, within the k * 4 reserved). */
static size_t perm_offset(int64_t k, int group, int64_t n_tok) {
    return ((size_t)(k / group) * sizeof(float) * (size_t)n_tok + 63) & ~(size_t)63;
}

size_t sglc_cpu_matmul_affine_scratch_bytes(int64_t k, int group, int64_t n_tok) {
    if (group <= 0 || k <= 0 || n_tok < 0) return 0;
    if (n_tok == 0) n_tok = 1;
    size_t per = ((size_t)(k / group) + (size_t)k) * sizeof(float) + 64;
    if (per > SIZE_MAX / 2 / (size_t)n_tok) return 0;
    return perm_offset(k, group, n_tok) + (size_t)k * sizeof(float) * (size_t)n_tok;
}

typedef struct {
    const sglc_cpu_affine_weight *w;
    sglc_cpu_affine_dot_fn fast; /* NULL: reference */
    int64_t n_out, k, n_tok, ng, words;
    const float *x;
    float *y;
    float *xs;
    float *xp; /* de-interleaved activations (split_pairs kernels), or NULL */
    sglc_cpu_affine_dot_i16_fn fast16; /* 16-bit-activation kernel, or NULL */
    int16_t *xq;                       /* [n_tok][k] permuted int16 activations (fast16) */
    float *xd;                         /* [n_tok][k / 64] their steps */
    size_t es;                         /* bytes per scale/bias */
} aff_ctx;

/* Position in a permuted 64-value chunk of value j: the 32 packed bytes are 16 words whose
 * nibble m holds value 4i + m; the kernel widens nibble m of all words into one vector, so value
 * 4i + m goes to 16m + i. */
static const uint8_t k_perm64[64] = {
#define P(j) (uint8_t)(((j)&3) * 16 + ((j) >> 2))
    P(0),  P(1),  P(2),  P(3),  P(4),  P(5),  P(6),  P(7),  P(8),  P(9),  P(10), P(11), P(12),
    P(13), P(14), P(15), P(16), P(17), P(18), P(19), P(20), P(21), P(22), P(23), P(24), P(25),
    P(26), P(27), P(28), P(29), P(30), P(31), P(32), P(33), P(34), P(35), P(36), P(37), P(38),
    P(39), P(40), P(41), P(42), P(43), P(44), P(45), P(46), P(47), P(48), P(49), P(50), P(51),
    P(52), P(53), P(54), P(55), P(56), P(57), P(58), P(59), P(60), P(61), P(62), P(63),
#undef P
};

/* lrintf for |v| <= 2^22 under the default rounding mode (nearest, ties to even), inline: adding
 * 1.5 * 2^23 leaves the rounded integer in the low mantissa bits (lrintf is a libm call, and
 * one per activation value cost about a tenth of a decode step) */
static inline int32_t round_even(float v) {
    float t = v + 12582912.0f;
    int32_t bits;
    memcpy(&bits, &t, sizeof bits);
    return bits - 0x4B400000;
}

static void xsum_task(void *vctx, int ith, int nth) {
    aff_ctx *c = vctx;
    long lo, hi;
    sglc_split_range((long)c->n_tok, ith, nth, &lo, &hi);
    for (long t = lo; t < hi; t++)
        for (int64_t g = 0; g < c->ng; g++) {
            const float *xg = c->x + t * c->k + g * c->w->group;
            float sum = 0;
            for (int j = 0; j < c->w->group; j++)
                sum += xg[j];
            c->xs[t * c->ng + g] = sum;
        }
    if (c->xq) {
        for (long t = lo; t < hi; t++)
            for (int64_t ch = 0; ch < c->k / 64; ch++) {
                const float *x = c->x + t * c->k + ch * 64;
                int16_t *q = c->xq + t * c->k + ch * 64;
                float amax = 0;
                for (int j = 0; j < 64; j++)
                    amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
                const float d = amax / 32767.0f, inv = amax > 0 ? 32767.0f / amax : 0.0f;
                c->xd[t * (c->k / 64) + ch] = d;
                for (int j = 0; j < 64; j++) {
                    float v = x[j] * inv;
                    v = v > 32767.0f ? 32767.0f : v < -32767.0f ? -32767.0f : v;
                    q[k_perm64[j]] = (int16_t)round_even(v);
                }
            }
        return;
    }
    if (!c->xp) return;
    for (long t = lo; t < hi; t++) {
        const float *x = c->x + t * c->k;
        float *xp = c->xp + t * c->k;
        for (int64_t i = 0; i < c->k; i += 16)
            for (int j = 0; j < 8; j++) {
                xp[i + j] = x[i + 2 * j];
                xp[i + 8 + j] = x[i + 2 * j + 1];
            }
    }
}

static void aff_dot_task(void *vctx, int ith, int nth) {
    aff_ctx *c = vctx;
    const sglc_cpu_affine_weight *w = c->w;
    long units = (long)((c->n_out + AFF_ROW_UNIT - 1) / AFF_ROW_UNIT), ulo, uhi;
    sglc_split_range(units, ith, nth, &ulo, &uhi);
    int64_t lo = ulo * AFF_ROW_UNIT, hi = uhi * AFF_ROW_UNIT;
    if (hi > c->n_out) hi = c->n_out;
    float s[SGLC_CPU_DOT_MAX_ROWS];
    for (int64_t o0 = lo; o0 < hi; o0 += AFF_ROW_UNIT) {
        int64_t o1 = o0 + AFF_ROW_UNIT < hi ? o0 + AFF_ROW_UNIT : hi;
        for (int64_t t0 = 0; t0 < c->n_tok; t0 += SGLC_CPU_DOT_MAX_ROWS) {
            int nr = (int)(c->n_tok - t0 < SGLC_CPU_DOT_MAX_ROWS ? c->n_tok - t0
                                                                 : SGLC_CPU_DOT_MAX_ROWS);
            const float *x = (c->xp ? c->xp : c->x) + t0 * c->k;
            const float *xs = c->xs + t0 * c->ng;
            if (c->fast16) {
                c->fast16(c->k, w->group, w->dtype, w->wq + o0 * c->words, (size_t)c->words,
                          (const char *)w->scales + (size_t)(o0 * c->ng) * c->es,
                          (const char *)w->biases + (size_t)(o0 * c->ng) * c->es,
                          (size_t)c->ng * c->es, o1 - o0, c->xq + t0 * c->k,
                          c->xd + t0 * (c->k / 64), xs, (size_t)c->ng, nr,
                          c->y + t0 * c->n_out + o0, (size_t)c->n_out);
                continue;
            }
            for (int64_t o = o0; o < o1; o++) {
                const uint32_t *wrow = w->wq + o * c->words;
                const char *srow = (const char *)w->scales + (size_t)(o * c->ng) * c->es;
                const char *brow = (const char *)w->biases + (size_t)(o * c->ng) * c->es;
                if (c->fast)
                    c->fast(c->k, w->group, w->dtype, wrow, srow, brow, x, (size_t)c->k, xs,
                            (size_t)c->ng, nr, s);
                else
                    affine_dot_ref(c->k, w->group, w->dtype, wrow, srow, brow, x, (size_t)c->k, xs,
                                   (size_t)c->ng, nr, s, w->bits);
                for (int r = 0; r < nr; r++)
                    c->y[(t0 + r) * c->n_out + o] = s[r];
            }
        }
    }
}

void sglc_cpu_matmul_affine(sglc_threadpool *tp, sglc_cpu_isa isa, const sglc_cpu_affine_weight *w,
                            int64_t n_out, int64_t k, const float *x, int64_t n_tok, float *y,
                            void *scratch) {
    SGLC_ASSERT(sglc_mlx_affine_valid(w->bits, w->group) && k % w->group == 0);
    SGLC_ASSERT(n_out >= 0 && n_tok >= 0);
    if (n_out == 0 || n_tok == 0) return;
    SGLC_ASSERT(scratch != NULL);
    sglc_cpu_affine_kernel kern = {NULL, NULL, 0};
    if (isa >= SGLC_CPU_ISA_AVX2 && sglc_cpu_isa_available(SGLC_CPU_ISA_AVX2))
        kern = sglc_cpu_affine_dot_avx2(w->bits);
    aff_ctx c = {
        .w = w,
        .fast = kern.dot,
        .xp = kern.dot && kern.split_pairs
                  ? (float *)((char *)scratch + perm_offset(k, w->group, n_tok))
                  : NULL,
        .n_out = n_out,
        .k = k,
        .n_tok = n_tok,
        .ng = k / w->group,
        .words = sglc_mlx_affine_row_words(k, w->bits),
        .x = x,
        .y = y,
        .xs = scratch,
        .es = w->dtype == SGLC_GGML_TYPE_F32 ? 4 : 2,
    };
    if (kern.dot_i16 && w->group % 64 == 0 && getenv_f32_affine() == 0) {
        c.fast16 = kern.dot_i16;
        c.xp = NULL;
        c.xq = (int16_t *)((char *)scratch + perm_offset(k, w->group, n_tok));
        c.xd = (float *)(c.xq + (size_t)n_tok * (size_t)k);
    }
    int serial = (double)n_out * (double)k * (double)n_tok < AFF_SERIAL_MACS;
    if (serial || n_tok <= 4)
        xsum_task(&c, 0, 1);
    else
        sglc_threadpool_run(tp, xsum_task, &c);
    if (serial)
        aff_dot_task(&c, 0, 1);
    else
        sglc_threadpool_run(tp, aff_dot_task, &c);
}
