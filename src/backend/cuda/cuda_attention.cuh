/* What the attention kernels share (cuda_attention.cu, cuda_attention_tc.cu): the split
 * bound, the warp count of the decode kernels by kv head, and their common end (ag_finish),
 * which merges a block's warps and the splits of a (token, kv head). */
#ifndef SGLC_BACKEND_CUDA_ATTENTION_CUH
#define SGLC_BACKEND_CUDA_ATTENTION_CUH

#include "backend/cuda/cuda_kernels.cuh"

#define ATT_MAX_SPLITS 32
#define AG_WARPS 4 /* warps of a decode block by kv head */

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* by lane s < eff of a warp: the weight of split s among the eff partials (max, sum, acc)
 * at pp, stride floats apart, e^(m_s - M) / sum l_s e^(m_s - M); read past L1, since another
 * block of the same kernel may have written them (k_attn_gqa) */
__device__ __forceinline__ float att_split_weight(const float *pp, int eff, size_t stride) {
    const int s = threadIdx.x & 31;
    const float ms = s < eff ? __ldcg(pp + (size_t)s * stride) : -INFINITY;
    const float ls = s < eff ? __ldcg(pp + (size_t)s * stride + 1) : 0.0f;
    const float M = warp_max(ms);
    const float e = ms != -INFINITY ? expf(ms - M) : 0.0f;
    const float L = warp_sum(ls * e);
    return L > 0.0f ? e / L : 0.0f;
}

/* The end of a decode attention block by kv head (k_attn_gqa, k_attn_tc_dec), once each of
 * its AG_WARPS warps has put its (max, sum, accumulator) per head in s_m, s_l, s_acc (max in
 * natural-log units): the warps merged per head and dim; one split writes out, else its partial,
 * and the last split of this (token, kv head) to finish (a counter in done, reset by that block)
 * merges them all, so no second launch is needed. */
template <int HD, int GM>
__device__ void ag_finish(float (*s_m)[GM], float (*s_l)[GM], float (*s_acc)[GM][HD], float *out,
                          float *part, int *done, int t, int kvh, int split, int eff, int G,
                          int n_head, int n_kv, int n_splits) {
    __shared__ float s_w[GM][ATT_MAX_SPLITS];
    __shared__ int s_last;
    const int lane = threadIdx.x & 31, wp = threadIdx.x >> 5;
    __syncthreads();
    for (int x = threadIdx.x; x < G * HD; x += AG_WARPS * 32) {
        const int g = x / HD, d = x % HD;
        float M = -INFINITY;
        for (int w = 0; w < AG_WARPS; w++)
            M = fmaxf(M, s_m[w][g]);
        float L = 0.0f, A = 0.0f;
        for (int w = 0; w < AG_WARPS; w++) {
            const float e = s_m[w][g] == -INFINITY ? 0.0f : expf(s_m[w][g] - M);
            L = fmaf(s_l[w][g], e, L);
            A = fmaf(s_acc[w][g][d], e, A);
        }
        const size_t h = (size_t)t * n_head + (size_t)kvh * G + g;
        if (eff == 1) {
            out[h * HD + d] = L > 0.0f ? A / L : 0.0f;
            continue;
        }
        float *pp = part + (h * n_splits + split) * (size_t)(HD + 2);
        if (d == 0) pp[0] = M, pp[1] = L;
        pp[2 + d] = A;
    }
    if (eff == 1) return;
    /* the last split of this (token, kv head) to finish merges them all */
    __threadfence();
    __syncthreads();
    int *cnt = done + (size_t)t * n_kv + kvh;
    if (threadIdx.x == 0) s_last = atomicAdd(cnt, 1) == eff - 1;
    __syncthreads();
    if (!s_last) return;
    __threadfence();
    for (int g = wp; g < G; g += AG_WARPS) { /* a warp per head: a weight per split */
        const float *pp =
            part + (((size_t)t * n_head + (size_t)kvh * G + g) * n_splits) * (size_t)(HD + 2);
        const float w = att_split_weight(pp, eff, (size_t)(HD + 2));
        if (lane < eff) s_w[g][lane] = w;
    }
    __syncthreads();
    for (int x = threadIdx.x; x < G * HD; x += AG_WARPS * 32) {
        const int g = x / HD, d = x % HD;
        const size_t h = (size_t)t * n_head + (size_t)kvh * G + g;
        const float *pp = part + h * n_splits * (size_t)(HD + 2) + 2 + d;
        float a = 0.0f;
        for (int sp = 0; sp < eff; sp++)
            a = fmaf(__ldcg(pp + (size_t)sp * (HD + 2)), s_w[g][sp], a);
        out[h * HD + d] = a;
    }
    if (threadIdx.x == 0) *cnt = 0; /* ready for the next step (or graph replay) */
}

/* the tensor-core kernels (cuda_attention_tc.cu): launched when they serve this shape (1),
 * else 0 */
int cuda_attn_tc(cuda_impl *im, const sglc_batch *b, const sglc_batch_dev &db, const float *q,
                 const void *kc, const void *vc, float *out, const sglc_attn_params *p, int splits);

#endif
