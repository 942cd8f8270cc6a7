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
} sglc_cpu_kernel_entry;

/* Upper bound on act_scale_floats per 32 values, for sizing scratch. */
#define SGLC_CPU_MAX_SCALE_FLOATS 2

/* Entry of a weight type in one ISA's table, or NULL when that ISA has no kernel for it. */
const sglc_cpu_kernel_entry *sglc_cpu_kernels_ref(uint32_t wtype);
const sglc_cpu_kernel_entry *sglc_cpu_kernels_avx2(uint32_t wtype);

#endif
