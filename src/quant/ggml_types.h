/* Weight formats of GGUF files: the ggml type ids, their block geometry and the reference
 * (plain C) conversion of a row to f32. Fast kernels live in backend/cpu and are tested against
 * these references. Block layouts follow the GGUF specification (REFERENCE.md). */
#ifndef SGLC_QUANT_GGML_TYPES_H
#define SGLC_QUANT_GGML_TYPES_H

#include <stddef.h>
#include <stdint.h>

/* Values are the on-disk ggml type ids. */
typedef enum {
    SGLC_GGML_TYPE_F32 = 0,
    SGLC_GGML_TYPE_F16 = 1,
    SGLC_GGML_TYPE_Q4_0 = 2,
    SGLC_GGML_TYPE_Q4_1 = 3,
    SGLC_GGML_TYPE_Q5_0 = 6,
    SGLC_GGML_TYPE_Q5_1 = 7,
    SGLC_GGML_TYPE_Q8_0 = 8,
    SGLC_GGML_TYPE_Q8_1 = 9,
    SGLC_GGML_TYPE_Q2_K = 10,
    SGLC_GGML_TYPE_Q3_K = 11,
    SGLC_GGML_TYPE_Q4_K = 12,
    SGLC_GGML_TYPE_Q5_K = 13,
    SGLC_GGML_TYPE_Q6_K = 14,
    SGLC_GGML_TYPE_Q8_K = 15,
    SGLC_GGML_TYPE_BF16 = 30,
    SGLC_GGML_TYPE_COUNT = 40
} sglc_ggml_type;

/* Name of a ggml type id ("Q4_1"), or NULL when the id is not a known ggml type. */
const char *sglc_ggml_type_name(uint32_t type);

/* 1 when sglc can load and compute with weights of this type
 * (F32, F16, BF16, Q4_0, Q4_1, Q8_0, Q4_K, Q5_K, Q6_K). */
int sglc_ggml_type_supported(uint32_t type);

/* Elements per block (1 for float types) and bytes per block; 0 for unknown types. */
size_t sglc_ggml_block_elems(uint32_t type);
size_t sglc_ggml_block_bytes(uint32_t type);

/* Bytes of a row of n elements; 0 if n is not a multiple of the block size or the type is
 * unknown. Callers check overflow of n * rows themselves. */
size_t sglc_ggml_row_bytes(uint32_t type, int64_t n);

/* Reference dequantization of one row of n elements (n a multiple of the block size). */
void sglc_ggml_dequantize_row(uint32_t type, const void *src, float *dst, int64_t n);

/* Reference quantization of one row of n floats (n a multiple of the block size). The
 * activation formats (Q8_0, Q8_1, Q8_K) round exactly as ggml's reference quantizers; the
 * weight formats (Q4_0, Q4_1, Q4_K, Q5_K, Q6_K) use simple min/max fits (round trip within
 * the format's step, enough for tests). F32/F16/BF16 convert. Returns 0, or -1 when the type
 * has no quantizer. */
int sglc_ggml_quantize_row(uint32_t type, const float *src, void *dst, int64_t n);

/* Half-precision helpers (exact conversions, round-to-nearest-even on the way down). */
float sglc_fp16_to_f32(uint16_t h);
uint16_t sglc_f32_to_fp16(float f);
float sglc_bf16_to_f32(uint16_t h);
uint16_t sglc_f32_to_bf16(float f);

#endif
