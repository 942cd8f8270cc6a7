/* Private interface between the CPU kernel dispatcher (cpu_kernels.c) and the per-ISA kernel
 * files. Besides the public pair (quantize_act, vec_dot) each entry has vec_dot_n, which dots
 * one weight row with up to SGLC_CPU_DOT_MAX_ROWS activation rows in one pass over the weight
 * row: batched matmuls read each weight row from memory once and reuse it across tokens. */
#ifndef SGLC_BACKEND_CPU_KERNELS_IMPL_H
#define SGLC_BACKEND_CPU_KERNELS_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "backend/cpu/cpu_kernels.h"

#define SGLC_CPU_DOT_MAX_ROWS 4
/* Most activation rows any vec_dot_n takes (an entry's max_rows, at most this). */
#define SGLC_CPU_DOT_MAX_ROWS_WIDE 8

/* s[r] = dot(w, xq + r * xq_stride) for r < n_rows (1 <= n_rows <= SGLC_CPU_DOT_MAX_ROWS).
 * xs, when not NULL, holds the activation block scales already converted to f32, xs_stride
 * floats per row: per block d (Q8_0) or d, s (Q8_1), see act_scale_floats. Converting them
 * once per matmul instead of once per weight row takes f16 conversions off the inner loop. */
typedef void (*sglc_cpu_vec_dot_n_fn)(int64_t k, float *s, const void *w, const void *xq,
                                      size_t xq_stride, const float *xs, size_t xs_stride,
                                      int n_rows);

typedef struct {
    sglc_cpu_type_kernels pub; /* first member: the public view points here */
    sglc_cpu_vec_dot_n_fn vec_dot_n;
    int act_scale_floats; /* f32 scales per activation block vec_dot_n can use (0: none) */
    int max_rows;         /* most rows one vec_dot_n call takes: SGLC_CPU_DOT_MAX_ROWS or more */
    /* Matmul-only activation quantizer: the same blocks (and the same d, s headers) as
     * pub.quantize_act with the quants laid out for vec_dot_n, which then reads only this
     * layout. NULL: vec_dot_n reads pub.quantize_act's. */
    void (*quantize_mm)(const float *x, void *y, int64_t k);
    /* Kernel over the packed layout (see below), or NULL when the type has none at this ISA. */
    struct sglc_cpu_packed_kernel_s const *packed;
} sglc_cpu_kernel_entry;

/* Packed layouts: weights rearranged once at load so one pass computes SGLC_CPU_PACK_ROWS
 * output rows for up to SGLC_CPU_PACK_TOKENS tokens, with the rows in the vector lanes (no
 * horizontal sums, each activation value broadcast once for 8 rows). Rows are packed in groups
 * of 8 (the last one padded with zero rows); a group is stored block after block.
 *
 * Q4_1 -> "Q4_1x8": per group and 32-block, the 8 rows' d and m (f16), then 4 chunks of 32
 * bytes; chunk c holds bytes 4c..4c+3 of each row's qs in row order, so in byte 4r + i the low
 * nibble is row r's element 4c + i and the high nibble its element 16 + 4c + i. Same size as
 * Q4_1 (8 x 20 bytes). */
#define SGLC_CPU_PACK_ROWS 8
#define SGLC_CPU_PACK_TOKENS 4

typedef struct {
    uint16_t d[SGLC_CPU_PACK_ROWS], m[SGLC_CPU_PACK_ROWS];
    uint8_t qs[4 * 4 * SGLC_CPU_PACK_ROWS];
} sglc_block_q4_1x8;

/* y[t * y_stride + r] = dot(row r of the group, activation row t) for r < 8, t < n_tok (1 to
 * SGLC_CPU_PACK_TOKENS). wp: the group's first block; xq, xs, their strides: as vec_dot_n.
 * Every (row, token) value is computed by the same operations whatever n_tok is (batch
 * invariance). */
typedef void (*sglc_cpu_gemm_packed_fn)(int64_t k, const void *wp, const char *xq, size_t xq_stride,
                                        const float *xs, size_t xs_stride, int n_tok, float *y,
                                        size_t y_stride);

typedef struct sglc_cpu_packed_kernel_s {
    size_t block_bytes; /* bytes of a packed block (8 rows x 32 elements) */
    void (*pack)(const void *w, int64_t n_out, int64_t k, void *out); /* whole matrix */
    sglc_cpu_gemm_packed_fn gemm;
} sglc_cpu_packed_kernel;

/* Q8_0 -> "Q8_0x8": per group and 32-block, the 8 rows' d (f16), then 8 chunks of 32 bytes;
 * chunk c holds bytes 4c..4c+3 of each row's qs in row order. Same size as Q8_0 (8 x 34). */
typedef struct {
    uint16_t d[SGLC_CPU_PACK_ROWS];
    int8_t qs[8 * 4 * SGLC_CPU_PACK_ROWS];
} sglc_block_q8_0x8;

/* Q4_1 -> Q4_1x8 and Q8_0 -> Q8_0x8 (plain C, any ISA). */
void sglc_cpu_pack_q4_1x8(const void *w, int64_t n_out, int64_t k, void *out);
void sglc_cpu_pack_q8_0x8(const void *w, int64_t n_out, int64_t k, void *out);

/* Upper bound on act_scale_floats per 32 values, for sizing scratch. */
#define SGLC_CPU_MAX_SCALE_FLOATS 2

/* Entry of a weight type in one ISA's table, or NULL when that ISA has no kernel for it. */
const sglc_cpu_kernel_entry *sglc_cpu_kernels_ref(uint32_t wtype);
const sglc_cpu_kernel_entry *sglc_cpu_kernels_avx2(uint32_t wtype);

#endif
