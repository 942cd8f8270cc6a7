/* llama.cpp-identical CPU arithmetic ("cpu-ggml" device).
 *
 * The default CPU kernels compute the same functions as llama.cpp but in their own operation
 * order (8-row packed weights, fused attention), so logits agree to ~1e-6 relative, not bit for
 * bit, and greedy decoding of a small quantized model drifts apart at near-ties (llama.cpp
 * itself drifts by as much when only its prompt batching changes:
 * tests/golden/greedy_llamacpp_self_agreement.txt). These kernels instead repeat the operation
 * order and rounding of ggml's x86 AVX2 CPU backend (the build llama-cpp-python makes with
 * GGML_NATIVE on an AVX2/FMA/F16C machine, without flash attention), so that the same GGUF
 * gives the same logits, bit for bit:
 *   - Q4_1 weights: activations quantized to Q8_1 blocks (scale amax/127, codes round(x*127/amax)
 *     to nearest even, fp16 d and fp16 d*sum(codes)); one dot per (row, token): per 32-block,
 *     8 integer lane sums of 4 products, lane-wise FMA with d_w*d_a, a scalar FMA chain of
 *     m_w*s_a, then an 8-lane horizontal sum plus that chain.
 *   - Q8_0 weights (the tied output of the default model): Q8_0 activations, the same lane FMA
 *     and horizontal sum, without the m term.
 *   - Attention over an f16 cache: q rounded to f16; q.k and p.v in the order of ggml's
 *     tinyBLAS (8 lanes, one FMA chain each) when the step has 2 or more tokens and of
 *     ggml_vec_dot_f16 (4 x 8 lanes) for a single token, over the cache length padded to 256 as
 *     llama.cpp pads it; softmax with ggml's vectorized expf, a double sum of 8-lane groups and
 *     a float reciprocal; probabilities rounded to f16.
 *   - RoPE with the rotation fused as gcc compiles ggml (fma(x0, cos, -x1 sin)), SwiGLU with the
 *     vectorized expf, RMSNorm as ggml (already the default path).
 * Needs AVX2 + FMA + F16C. Weight types: Q4_1 and Q8_0 (ggml's batched tinyBLAS path for Q8_0
 * sums each output in the same order as its single-token dot, so one kernel serves both). */
#ifndef SGLC_GGML_EXACT_H
#define SGLC_GGML_EXACT_H

#include <stddef.h>
#include <stdint.h>

/* Activations of one row quantized for a weight type: Q8_1 blocks for Q4_1 weights, Q8_0 for
 * Q8_0 weights. Returns the bytes per row of k values (k a multiple of 32), 0 for other types. */
size_t sglc_gx_act_row_bytes(uint32_t wtype, int64_t k);
void sglc_gx_quantize_row(uint32_t wtype, const float *x, int64_t k, void *out);
/* dot of weight row w (file layout) with one quantized activation row */
float sglc_gx_dot(uint32_t wtype, const void *w, const void *act, int64_t k);
/* out[j] = the same dot of weight row w with activation row act + j * act_stride, j < 4
 * (identical results to 4 calls, fewer loads) */
void sglc_gx_dot4(uint32_t wtype, const void *w, const void *act, size_t act_stride, int64_t k,
                  float out[4]);

/* In place RoPE of one head vector: pairs (i0, i1) = (2i, 2i+1) (neox 0: GGUF llama) or
 * (i, i + rot/2) (neox 1), cs/sn the ggml rope cache of the position. */
void sglc_gx_rope(float *v, const float *cs, const float *sn, int32_t rot_dim, int neox);

/* out = silu(gate) * up, vectorized 8 at a time from index 0 as ggml_vec_swiglu_f32. */
void sglc_gx_swiglu(const float *gate, const float *up, float *out, int64_t n);

/* One (token, head) of causal attention over an f16 cache. k_rows / v_rows: the head's first
 * element in the cache, slot rows kvd elements apart; slots[p] the slot of position p < n_ctx.
 * batched: the step has 2 or more tokens (tinyBLAS order). scratch: sglc_gx_attn_scratch_floats. */
size_t sglc_gx_attn_scratch_floats(int32_t n_ctx, int32_t hd);
void sglc_gx_attn(const float *q, const uint16_t *k_rows, const uint16_t *v_rows, size_t kvd,
                  const int32_t *slots, int32_t n_ctx, int32_t hd, float scale, int batched,
                  float *scratch, float *out);

#endif
