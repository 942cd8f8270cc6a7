/* Private block layouts of the ggml quantized formats, shared by the reference code in
 * quant/ and the CPU kernels. Layouts and sizes are those of ggml (checked by static
 * asserts): half-precision fields are raw IEEE binary16 bits. */
#ifndef SGLC_QUANT_GGML_BLOCKS_H
#define SGLC_QUANT_GGML_BLOCKS_H

#include <stdint.h>

#define SGLC_QK4_0 32
#define SGLC_QK4_1 32
#define SGLC_QK8_0 32
#define SGLC_QK8_1 32
#define SGLC_QK_K 256
#define SGLC_K_SCALE_SIZE 12

typedef struct {
    uint16_t d;     /* scale */
    uint8_t qs[16]; /* byte j: element j (low nibble), element j + 16 (high nibble) */
} sglc_block_q4_0;  /* x = (q - 8) * d */

typedef struct {
    uint16_t d, m; /* scale, min */
    uint8_t qs[16];
} sglc_block_q4_1; /* x = q * d + m */

typedef struct {
    uint16_t d;
    int8_t qs[32];
} sglc_block_q8_0; /* x = q * d */

typedef struct {
    uint16_t d; /* scale */
    uint16_t s; /* d * sum(qs) */
    int8_t qs[32];
} sglc_block_q8_1;

typedef struct {
    uint16_t d, dmin;                  /* super-block scale for scales, for mins */
    uint8_t scales[SGLC_K_SCALE_SIZE]; /* 8 six-bit scales and 8 six-bit mins, packed */
    uint8_t qs[128];                   /* 4-bit quants, 64-value chunks: low nibbles then high */
} sglc_block_q4_K;                     /* x = d * sc * q - dmin * m */

typedef struct {
    uint16_t d, dmin;
    uint8_t scales[SGLC_K_SCALE_SIZE];
    uint8_t qh[32]; /* fifth bit: chunk c low half bit 2c, high half 2c+1 */
    uint8_t qs[128];
} sglc_block_q5_K;

typedef struct {
    uint8_t ql[128];   /* low 4 bits */
    uint8_t qh[64];    /* high 2 bits */
    int8_t scales[16]; /* one per 16 values */
    uint16_t d;
} sglc_block_q6_K; /* x = d * scales[j] * (q - 32) */

typedef struct {
    float d;
    int8_t qs[256];
    int16_t bsums[16]; /* sums of qs per 16 values */
} sglc_block_q8_K;

_Static_assert(sizeof(sglc_block_q4_0) == 18, "q4_0 size");
_Static_assert(sizeof(sglc_block_q4_1) == 20, "q4_1 size");
_Static_assert(sizeof(sglc_block_q8_0) == 34, "q8_0 size");
_Static_assert(sizeof(sglc_block_q8_1) == 36, "q8_1 size");
_Static_assert(sizeof(sglc_block_q4_K) == 144, "q4_K size");
_Static_assert(sizeof(sglc_block_q5_K) == 176, "q5_K size");
_Static_assert(sizeof(sglc_block_q6_K) == 210, "q6_K size");
_Static_assert(sizeof(sglc_block_q8_K) == 292, "q8_K size");

/* Unpacks scale and min j (0..7) of a Q4_K/Q5_K block (ggml get_scale_min_k4). */
static inline void sglc_get_scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
    }
}

/* ggml's reference activation quantizers (bit-exact): n a multiple of the block size. */
void sglc_quantize_row_q8_0_ref(const float *x, void *y, int64_t n);
void sglc_quantize_row_q8_1_ref(const float *x, void *y, int64_t n);
void sglc_quantize_row_q8_K_ref(const float *x, void *y, int64_t n);

#endif
