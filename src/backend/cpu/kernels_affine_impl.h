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

typedef struct {
    sglc_cpu_affine_dot_fn dot; /* NULL: no kernel for these bits */
    /* 1: the kernel reads activations de-interleaved per 16 values (x0 x2 .. x14 x1 x3 .. x15),
     * the order of the low and high nibbles of 8 packed bytes; the matmul permutes each
     * activation row once into scratch */
    int split_pairs;
} sglc_cpu_affine_kernel;

/* Row kernel of an ISA for this many bits. */
sglc_cpu_affine_kernel sglc_cpu_affine_dot_avx2(int bits);

#endif
