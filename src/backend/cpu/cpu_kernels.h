/* CPU weight kernels: for each weight format, how activations are quantized and how one
 * weight row is dotted with them. Every format has a plain C reference (ISA_REF) and SIMD
 * versions chosen at run time; tests compare each SIMD version against the reference.
 * Integer formats follow ggml's scheme (activations quantized per 32- or 256-block to 8 bits),
 * which keeps results within the rounding llama.cpp itself produces. */
#ifndef SGLC_BACKEND_CPU_KERNELS_H
#define SGLC_BACKEND_CPU_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "base/threadpool.h"

typedef enum {
    SGLC_CPU_ISA_REF = 0,
    SGLC_CPU_ISA_AVX2,   /* AVX2 + FMA + F16C */
    SGLC_CPU_ISA_AVX512, /* AVX-512 F/BW/VL (+VNNI where present) */
    SGLC_CPU_ISA_COUNT
} sglc_cpu_isa;

/* Best ISA this CPU supports (env SGLC_CPU_ISA=ref|avx2|avx512 lowers it for A/B tests). */
sglc_cpu_isa sglc_cpu_isa_best(void);
int sglc_cpu_isa_available(sglc_cpu_isa isa);
const char *sglc_cpu_isa_name(sglc_cpu_isa isa);

typedef struct {
    uint32_t
        act_type; /* ggml type activations are converted to (F32, F16, BF16, Q8_0, Q8_1, Q8_K) */
    /* x: k floats -> xq: sglc_ggml_row_bytes(act_type, k) bytes */
    void (*quantize_act)(const float *x, void *xq, int64_t k);
    /* *s = dot(weight row w of k elements, activation row xq) */
    void (*vec_dot)(int64_t k, float *s, const void *w, const void *xq);
} sglc_cpu_type_kernels;

/* Kernels for a weight type at an ISA, or NULL when the type is unsupported or the ISA has
 * no version of it (callers then use a lower ISA). */
const sglc_cpu_type_kernels *sglc_cpu_kernels_for(uint32_t wtype, sglc_cpu_isa isa);

/* y[t][o] = sum_i W[o][i] * x[t][i] for t < n_tok, o < n_out, i < k.
 * W: n_out rows of weight type wtype (row stride sglc_ggml_row_bytes(wtype, k)).
 * scratch: at least sglc_cpu_matmul_scratch_bytes(wtype, k, n_tok) bytes.
 * Work is split over the pool's threads by output rows. */
size_t sglc_cpu_matmul_scratch_bytes(uint32_t wtype, int64_t k, int64_t n_tok);
void sglc_cpu_matmul(sglc_threadpool *tp, sglc_cpu_isa isa, uint32_t wtype, const void *w,
                     int64_t n_out, int64_t k, const float *x, int64_t n_tok, float *y,
                     void *scratch);

/* Packed weights: a layout rearranged once at load for a faster kernel (8 output rows per pass,
 * kernels_impl.h), where the type has one at isa (today Q4_1 at AVX2). sglc_cpu_packed_bytes is
 * the packed size of an n_out x k matrix, 0 when there is no packed layout;
 * sglc_cpu_pack fills out (that many bytes) from the ggml layout; sglc_cpu_matmul_packed is
 * sglc_cpu_matmul over it (same scratch size) and, like it, batch-invariant. */
size_t sglc_cpu_packed_bytes(sglc_cpu_isa isa, uint32_t wtype, int64_t n_out, int64_t k);
void sglc_cpu_pack(sglc_cpu_isa isa, uint32_t wtype, const void *w, int64_t n_out, int64_t k,
                   void *out);
void sglc_cpu_matmul_packed(sglc_threadpool *tp, sglc_cpu_isa isa, uint32_t wtype, const void *wp,
                            int64_t n_out, int64_t k, const float *x, int64_t n_tok, float *y,
                            void *scratch);

/* Several weights of one type over the same input in one job (q/k/v, gate/up): y[i] = W[i] x
 * for i < n, with W[i] n_out[i] rows, packed (sglc_cpu_pack) or not; x is quantized once and
 * the rows of all of them are split over the threads together. Results are those of n
 * separate calls. scratch as for sglc_cpu_matmul. */
#define SGLC_CPU_MM_MAX_PARTS 3
void sglc_cpu_matmul_multi(sglc_threadpool *tp, sglc_cpu_isa isa, uint32_t wtype, int packed, int n,
                           const void *const *w, const int64_t *n_out, int64_t k, const float *x,
                           int64_t n_tok, float *const *y, void *scratch);

/* MLX affine weights (quant/mlx_affine.h): per group of `group` inputs a scale and a bias in
 * dtype, codes of `bits` bits. Activations stay f32: y = sum_g s_g * (q_g . x_g) + b_g * sum(x_g),
 * the per-group activation sums computed once per matmul into scratch. Every token's result is
 * computed by the same instruction sequence whatever the number of tokens in the call, so the
 * output is batch-invariant. Bits 4 and 8 have AVX2 kernels; 2, 3, 5, 6 use the reference. */
typedef struct {
    const uint32_t *wq; /* [n_out][k * bits / 32], borrowed */
    const void *scales; /* [n_out][k / group] of dtype, borrowed */
    const void *biases; /* [n_out][k / group] of dtype, borrowed */
    uint32_t dtype;     /* SGLC_GGML_TYPE_F32, _F16 or _BF16 */
    int bits, group;
} sglc_cpu_affine_weight;

size_t sglc_cpu_matmul_affine_scratch_bytes(int64_t k, int group, int64_t n_tok);
void sglc_cpu_matmul_affine(sglc_threadpool *tp, sglc_cpu_isa isa, const sglc_cpu_affine_weight *w,
                            int64_t n_out, int64_t k, const float *x, int64_t n_tok, float *y,
                            void *scratch);
/* 1 when isa has its own kernel for affine weights of this many bits (tests). */
int sglc_cpu_affine_isa_has(int bits, sglc_cpu_isa isa);

/* Attention over an f16 KV cache (AVX2 + F16C; callers check the ISA): dot of an f32 vector
 * with f16 values, and o += w * v for f16 v. n is any length (a scalar tail finishes it). */
float sglc_avx2_dot_f32_f16(const float *a, const uint16_t *b, int32_t n);
void sglc_avx2_axpy_f16(float *o, float w, const uint16_t *v, int32_t n);
/* The same over an f32 cache. */
float sglc_avx2_dot_f32_f32(const float *a, const float *b, int32_t n);
void sglc_avx2_axpy_f32(float *o, float w, const float *v, int32_t n);
/* f32 -> f16 of n values (round to nearest even, as sglc_f32_to_fp16). */
void sglc_avx2_f32_to_f16_row(uint16_t *dst, const float *src, int32_t n);
/* One (token, head) of causal attention over an f16 cache with the generic path's arithmetic:
 * kc, vc point at the head's values in slot 0, stride values between slots; positions are the
 * slots slots[0 .. n_ctx); sc: n_ctx floats of scratch; hd <= 512. */
void sglc_avx2_attn_f16(const float *q, const uint16_t *kc, const uint16_t *vc, size_t stride,
                        const int32_t *slots, int32_t n_ctx, int32_t hd, float scale, float *sc,
                        float *out);

#endif
