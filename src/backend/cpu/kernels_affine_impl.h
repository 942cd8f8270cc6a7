/* Private interface between the MLX affine matmul (kernels_affine.c) and its per-ISA row
 * kernels. A row kernel dots one packed weight row with nr (1..SGLC_CPU_DOT_MAX_ROWS) f32
 * activation rows; each row's arithmetic must not depend on nr (batch invariance). */
#ifndef SGLC_BACKEND_CPU_KERNELS_AFFINE_IMPL_H
#define SGLC_BACKEND_CPU_KERNELS_AFFINE_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "backend/cpu/cpu_kernels.h"

/* s[r] = dot(row, x + r * x_stride) for r < nr. srow/brow: the row's scales and biases;
 * xs + r * xs_stride: the activation row's per-group sums. */
typedef void (*sglc_cpu_affine_dot_fn)(int64_t k, int group, uint32_t dtype, const uint32_t *wrow,
                                       const void *srow, const void *brow, const float *x,
                                       size_t x_stride, const float *xs, size_t xs_stride, int nr,
                                       float *s);

/* The 16-bit-activation form (4-bit codes, groups a multiple of 64): each activation row is
 * quantized per 64 values to int16 (xd: the chunk's step, max|x| / 32767) and permuted into the
 * order of k_perm64 in kernels_affine.c, so that codes widened with shifts and masks meet their
 * activations. It dots n_rows consecutive weight rows (row o: w + o * w_row_words, its scales
 * and biases sb_row_bytes apart) with nr tokens, one call per tile so that the per-row work is
 * not a call: y[r * y_stride + o] = sum_g scale_g sum_c xd_c (q . xq)_c + bias_g xs_g. */
typedef void (*sglc_cpu_affine_dot_i16_fn)(int64_t k, int group, uint32_t dtype, const uint32_t *w,
                                           size_t w_row_words, const void *scales,
                                           const void *biases, size_t sb_row_bytes, int64_t n_rows,
                                           const int16_t *xq, const float *xd, const float *xs,
                                           size_t xs_stride, int nr, float *y, size_t y_stride);

typedef struct {
    sglc_cpu_affine_dot_fn dot;         /* NULL: no kernel for these bits */
    sglc_cpu_affine_dot_i16_fn dot_i16; /* NULL: none; used when the group is a multiple of 64 */
    /* 1: the kernel reads activations de-interleaved per 16 values (x0 x2 .. x14 x1 x3 .. x15),
     * the order of the low and high nibbles of 8 packed bytes; the matmul permutes each
     * activation row once into scratch */
    int split_pairs;
} sglc_cpu_affine_kernel;

/* Row kernel of an ISA for this many bits. */
sglc_cpu_affine_kernel sglc_cpu_affine_dot_avx2(int bits);

#endif
