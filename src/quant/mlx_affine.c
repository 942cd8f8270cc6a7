/* MLX affine quantize/dequantize, following mlx/backend/cpu/quantized.cpp step by step: group
 * min/max in f32, scale = max((max - min) / (2^bits - 1), 1e-7) signed toward the edge of larger
 * magnitude, the edge made exact (scale = edge / rint(edge / scale), bias = edge) unless it
 * rounds to code 0 (bias 0), codes rint((w - bias) / scale) clamped to [0, 2^bits - 1] with the
 * f32 scale, and only then scale and bias rounded to the dtype. Dequantization works in the
 * dtype as MLX's ops do: t = dtype(scale * q), w = dtype(t + bias). Every operation is a separate
 * statement so no compiler fuses a multiply-add MLX does not fuse. */
#include "quant/mlx_affine.h"

#include <math.h>
#include <string.h>

#include "base/log.h"
#include "quant/ggml_types.h"

int sglc_mlx_affine_valid(int bits, int group_size) {
    int bits_ok = bits == 2 || bits == 3 || bits == 4 || bits == 5 || bits == 6 || bits == 8;
    int gs_ok = group_size == 32 || group_size == 64 || group_size == 128;
    return bits_ok && gs_ok;
}

int64_t sglc_mlx_affine_row_words(int64_t k, int bits) {
    return k * bits / 32;
}

static float load_dtype(const void *p, uint32_t dtype, int64_t i) {
    switch (dtype) {
    case SGLC_GGML_TYPE_F32: return ((const float *)p)[i];
    case SGLC_GGML_TYPE_F16: return sglc_fp16_to_f32(((const uint16_t *)p)[i]);
    case SGLC_GGML_TYPE_BF16: return sglc_bf16_to_f32(((const uint16_t *)p)[i]);
    default: SGLC_ASSERT(!"mlx affine: dtype must be F32, F16 or BF16"); return 0;
    }
}

static void store_dtype(void *p, uint32_t dtype, int64_t i, float v) {
    switch (dtype) {
    case SGLC_GGML_TYPE_F32: ((float *)p)[i] = v; break;
    case SGLC_GGML_TYPE_F16: ((uint16_t *)p)[i] = sglc_f32_to_fp16(v); break;
    case SGLC_GGML_TYPE_BF16: ((uint16_t *)p)[i] = sglc_f32_to_bf16(v); break;
    default: SGLC_ASSERT(!"mlx affine: dtype must be F32, F16 or BF16");
    }
}

/* v rounded to dtype and back */
static float round_dtype(float v, uint32_t dtype) {
    switch (dtype) {
    case SGLC_GGML_TYPE_F16: return sglc_fp16_to_f32(sglc_f32_to_fp16(v));
    case SGLC_GGML_TYPE_BF16: return sglc_bf16_to_f32(sglc_f32_to_bf16(v));
    default: return v;
    }
}

float sglc_mlx_affine_param(const void *row, uint32_t dtype, int64_t i) {
    return load_dtype(row, dtype, i);
}

/* rintf in the default rounding mode without a libm call on baseline x86-64: adding and
 * subtracting 1.5 * 2^23 rounds |x| < 2^22 to an integer, ties to even, exactly as rintf. */
static inline float round_even(float x) {
    const float magic = 12582912.0f;
    if (!(fabsf(x) < 4194304.0f)) return rintf(x);
    volatile float t = x + magic; /* volatile: the sum must be rounded to float here */
    return t - magic;
}

void sglc_mlx_affine_quantize(const void *w, uint32_t dtype, int64_t rows, int64_t k, int bits,
                              int group_size, uint32_t *wq, void *scales, void *biases) {
    SGLC_ASSERT(sglc_mlx_affine_valid(bits, group_size) && k % group_size == 0);
    const float n_bins = (float)((1 << bits) - 1);
    const float eps = 1e-7f;
    const int64_t words = sglc_mlx_affine_row_words(k, bits);
    const int64_t groups = k / group_size;
    for (int64_t r = 0; r < rows; r++) {
        uint32_t *qrow = wq + r * words;
        memset(qrow, 0, (size_t)words * sizeof(uint32_t));
        for (int64_t g = 0; g < groups; g++) {
            const int64_t base = r * k + g * group_size;
            float w_min = INFINITY, w_max = -INFINITY;
            float v32[128];
            for (int j = 0; j < group_size; j++) {
                float v = load_dtype(w, dtype, base + j);
                v32[j] = v;
                /* std::max / std::min argument order: NaN inputs propagate as MLX's do */
                w_max = w_max < v ? v : w_max;
                w_min = v < w_min ? v : w_min;
            }
            int mask = fabsf(w_min) > fabsf(w_max);
            float range = w_max - w_min;
            float scale = range / n_bins;
            scale = scale < eps ? eps : scale;
            scale = mask ? scale : -scale;
            float edge = mask ? w_min : w_max;
            float q0 = rintf(edge / scale);
            float bias = 0.0f;
            if (q0 != 0.0f) {
                scale = edge / q0;
                bias = edge;
            }
            for (int j = 0; j < group_size; j++) {
                float d = v32[j] - bias;
                float q = round_even(d / scale);
                q = q < 0.0f ? 0.0f : q;
                q = q > n_bins ? n_bins : q;
                uint64_t code = (uint64_t)q;
                uint64_t bit = (uint64_t)(g * group_size + j) * (uint64_t)bits;
                uint64_t word = bit >> 5;
                unsigned sh = (unsigned)(bit & 31);
                qrow[word] |= (uint32_t)(code << sh);
                if (sh + (unsigned)bits > 32) qrow[word + 1] |= (uint32_t)(code >> (32 - sh));
            }
            store_dtype(scales, dtype, r * groups + g, scale);
            store_dtype(biases, dtype, r * groups + g, bias);
        }
    }
}

void sglc_mlx_affine_dequantize_row_f32(const uint32_t *wq_row, const void *scales_row,
                                        const void *biases_row, uint32_t dtype, int64_t k, int bits,
                                        int group_size, float *out) {
    for (int64_t g = 0; g < k / group_size; g++) {
        const float s = load_dtype(scales_row, dtype, g);
        const float b = load_dtype(biases_row, dtype, g);
        for (int j = 0; j < group_size; j++) {
            const int64_t i = g * group_size + j;
            float t = s * (float)sglc_mlx_affine_code(wq_row, i, bits);
            t = round_dtype(t, dtype);
            float v = t + b;
            out[i] = round_dtype(v, dtype);
        }
    }
}

void sglc_mlx_affine_dequantize(const uint32_t *wq, const void *scales, const void *biases,
                                uint32_t dtype, int64_t rows, int64_t k, int bits, int group_size,
                                void *out) {
    SGLC_ASSERT(sglc_mlx_affine_valid(bits, group_size) && k % group_size == 0);
    const int64_t words = sglc_mlx_affine_row_words(k, bits);
    const int64_t groups = k / group_size;
    const size_t es = dtype == SGLC_GGML_TYPE_F32 ? 4 : 2;
    float tmp[128];
    for (int64_t r = 0; r < rows; r++)
        for (int64_t g = 0; g < groups; g++) {
            /* one group at a time through a small f32 buffer */
            const char *srow = (const char *)scales + (size_t)(r * groups + g) * es;
            const char *brow = (const char *)biases + (size_t)(r * groups + g) * es;
            const float s = load_dtype(srow, dtype, 0), b = load_dtype(brow, dtype, 0);
            for (int j = 0; j < group_size; j++) {
                float t = s * (float)sglc_mlx_affine_code(wq + r * words, g * group_size + j, bits);
                t = round_dtype(t, dtype);
                tmp[j] = t + b;
            }
            for (int j = 0; j < group_size; j++)
                store_dtype(out, dtype, r * k + g * group_size + j, tmp[j]);
        }
}
