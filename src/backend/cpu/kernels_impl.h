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
} sglc_cpu_kernel_entry;

/* Upper bound on act_scale_floats per 32 values, for sizing scratch. */
#define SGLC_CPU_MAX_SCALE_FLOATS 2

/* Entry of a weight type in one ISA's table, or NULL when that ISA has no kernel for it. */
const sglc_cpu_kernel_entry *sglc_cpu_kernels_ref(uint32_t wtype);
const sglc_cpu_kernel_entry *sglc_cpu_kernels_avx2(uint32_t wtype);

#endif
