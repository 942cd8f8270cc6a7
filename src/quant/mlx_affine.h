/* MLX affine quantization: the format of mlx-community 2..8-bit checkpoints.
 *
 * A [rows][k] matrix is cut into groups of group_size (32, 64 or 128) consecutive values along
 * k. Each group keeps a scale and a bias in the model's float dtype (F32, F16 or BF16) and one
 * unsigned code of `bits` bits per value, w ~= scale * q + bias. Codes are packed as a
 * little-endian bit stream from the low bits up, so a row is k * bits / 32 uint32 words (for
 * 2/4/8 bits: 16/8/4 codes a word, first code in the lowest bits; for 3/5/6 bits the stream
 * crosses byte boundaries as MLX writes it).
 *
 * sglc_mlx_affine_quantize and _dequantize compute exactly what mlx.core.quantize and
 * mlx.core.dequantize compute on the CPU (mlx 0.32), bit for bit, including MLX's choice of
 * the group edge: the edge of larger magnitude is made exactly representable (scale = edge /
 * round(edge / scale)), and scales may be negative. Tests compare against fixtures made by
 * MLX itself (tests/golden/mlx_quant). */
#ifndef SGLC_QUANT_MLX_AFFINE_H
#define SGLC_QUANT_MLX_AFFINE_H

#include <stddef.h>
#include <stdint.h>

/* sglc_weight.type of an MLX affine matrix; outside the ggml type range so no ggml table
 * mistakes it for one of its own. The layout lives in sglc_weight's q_* fields. */
#define SGLC_WTYPE_MLX_AFFINE 1000u

/* 1 when bits (2, 3, 4, 5, 6, 8) and group_size (32, 64, 128) form a format MLX writes. */
int sglc_mlx_affine_valid(int bits, int group_size);
/* uint32 words of one packed row of k values (k a multiple of group_size). */
int64_t sglc_mlx_affine_row_words(int64_t k, int bits);

/* w: [rows][k] of dtype (SGLC_GGML_TYPE_F32, _F16 or _BF16); k % group_size == 0.
 * wq: [rows][row_words] words; scales, biases: [rows][k / group_size] of dtype. */
void sglc_mlx_affine_quantize(const void *w, uint32_t dtype, int64_t rows, int64_t k, int bits,
                              int group_size, uint32_t *wq, void *scales, void *biases);
/* out: [rows][k] of dtype, as mlx.core.dequantize returns it (computed in dtype: the product
 * scale * q is rounded to dtype before the bias is added). */
void sglc_mlx_affine_dequantize(const uint32_t *wq, const void *scales, const void *biases,
                                uint32_t dtype, int64_t rows, int64_t k, int bits, int group_size,
                                void *out);
/* One row dequantized to f32 (the dtype values of sglc_mlx_affine_dequantize, widened). */
void sglc_mlx_affine_dequantize_row_f32(const uint32_t *wq_row, const void *scales_row,
                                        const void *biases_row, uint32_t dtype, int64_t k, int bits,
                                        int group_size, float *out);

/* Code j of a packed row. */
static inline uint32_t sglc_mlx_affine_code(const uint32_t *row, int64_t j, int bits) {
    uint64_t bit = (uint64_t)j * (uint64_t)bits;
    uint64_t word = bit >> 5;
    unsigned sh = (unsigned)(bit & 31);
    uint64_t v = row[word] >> sh;
    if (sh + (unsigned)bits > 32) v |= (uint64_t)row[word + 1] << (32 - sh);
    return (uint32_t)v & ((1u << bits) - 1u);
}

/* Element i of a row of scales or biases in dtype, as f32. */
float sglc_mlx_affine_param(const void *row, uint32_t dtype, int64_t i);

#endif
