/* RoPE (NORM and NEOX, optional freq_factors), the KV cache write (f32 or f16 cache) and the
 * two fused. One thread per rotated pair. The angle of pair i is built as the CPU builds it
 * (cpu_backend.c rope_table): theta = pos, multiplied i times by theta_scale in float, with
 * theta_scale computed on the host by the same powf, so both backends rotate by the same
 * float angle; the rotation itself uses round-to-nearest intrinsics (no fused multiply-add)
 * as the CPU's plain C does. */
#include "backend/cuda/cuda_kernels.cuh"

typedef cuda_rope_args rope_args;

__device__ __forceinline__ void rope_rotate(const rope_args &a, float *v, int i, float c, float s,
                                            float *out) {
    int i0, i1;
    cuda_rope_idx(a, i, i0, i1);
    float r0, r1;
    cuda_rope_rot(v[i0], v[i1], c, s, r0, r1);
    out[i0] = r0, out[i1] = r1;
}

/* q and k rotated in place: grid (tokens, heads of q then k), block over pairs */
__global__ void k_rope(rope_args a, const int32_t *pos, float *q, float *k, int nh_total) {
    const int t = blockIdx.x, h = blockIdx.y, half = a.rot_dim / 2;
    float *v = h < a.n_head ? q + ((size_t)t * a.n_head + h) * a.head_dim
                            : k + ((size_t)t * a.n_head_kv + (h - a.n_head)) * a.head_dim;
    const int32_t p = pos[t];
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
        float c, s;
        cuda_rope_pair(a, p, i, c, s);
        rope_rotate(a, v, i, c, s, v);
    }
}

/* k (rotated on the way when rotate) and v of every token into its cache slot: grid (tokens,
 * kv heads), block over the head's values */
__global__ void k_kv_store(rope_args a, const int32_t *pos, const int32_t *out_slot, const float *k,
                           const float *v, void *kc, void *vc, int f16, int rotate) {
    const int t = blockIdx.x, h = blockIdx.y, hd = a.head_dim, half = a.rot_dim / 2;
    const size_t kvd = (size_t)a.n_head_kv * hd;
    const float *ks = k + (size_t)t * kvd + (size_t)h * hd;
    const float *vs = v + (size_t)t * kvd + (size_t)h * hd;
    const size_t base = (size_t)out_slot[t] * kvd + (size_t)h * hd;
    for (int d = threadIdx.x; d < hd; d += blockDim.x)
        cuda_store_kv(vc, f16, base + d, vs[d]);
    if (!rotate) {
        for (int d = threadIdx.x; d < hd; d += blockDim.x)
            cuda_store_kv(kc, f16, base + d, ks[d]);
        return;
    }
    for (int d = a.rot_dim + threadIdx.x; d < hd; d += blockDim.x)
        cuda_store_kv(kc, f16, base + d, ks[d]);
    const int32_t p = pos[t];
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
        float c, s;
        cuda_rope_pair(a, p, i, c, s);
        int i0, i1;
        float r0, r1;
        cuda_rope_idx(a, i, i0, i1);
        cuda_rope_rot(ks[i0], ks[i1], c, s, r0, r1);
        cuda_store_kv(kc, f16, base + i0, r0);
        cuda_store_kv(kc, f16, base + i1, r1);
    }
}

cuda_rope_args cuda_rope_args_of(const sglc_attn_params *p) {
    rope_args a;
    a.n_head = p->n_head;
    a.n_head_kv = p->n_head_kv;
    a.head_dim = p->head_dim;
    a.rot_dim = p->rot_dim;
    a.mode = (int32_t)p->mode;
    /* the host's powf, as the CPU backend's table */
    a.theta_scale = powf(p->theta, -2.0f / (float)p->rot_dim);
    a.ff = p->freq_factors;
    a.cs = p->rope_cs;
    a.cs_len = p->rope_cs ? p->rope_cs_len : 0;
    return a;
}

#define ATTN_SIG CUDA_ATTN_SIG

static int pair_threads(const sglc_attn_params *p) {
    int half = p->rot_dim / 2;
    return half >= 128 ? 128 : half < 32 ? 32 : (half + 31) / 32 * 32;
}

void cuda_rope(sglc_backend *be, const sglc_batch *b, float *q, float *k,
               const sglc_attn_params *p) {
    cuda_impl *im = cuda_impl_of(be);
    if (CUDA_OP_BEGIN(im, CUDA_OP_ROPE, U64(b->pos), (uint64_t)b->n_tokens, U64(q), U64(k),
                      ATTN_SIG(p)))
        return;
    if (b->n_tokens <= 0) return;
    SGLC_ASSERT(p->rot_dim <= p->head_dim && p->rot_dim % 2 == 0);
    dim3 grid((unsigned)b->n_tokens, (unsigned)(p->n_head + p->n_head_kv));
    k_rope<<<grid, pair_threads(p), 0, im->stream>>>(cuda_rope_args_of(p), b->pos, q, k,
                                                     p->n_head + p->n_head_kv);
    CUDA_LAUNCHED(im, "rope kernel");
}

static void kv_store_run(cuda_impl *im, const sglc_batch *b, const float *k, const float *v,
                         void *kc, void *vc, const sglc_attn_params *p, int rotate) {
    SGLC_ASSERT(p->kv_type == SGLC_GGML_TYPE_F16 || p->kv_type == SGLC_GGML_TYPE_F32);
    dim3 grid((unsigned)b->n_tokens, (unsigned)p->n_head_kv);
    int threads = p->head_dim >= 128 ? 128 : (p->head_dim + 31) / 32 * 32;
    k_kv_store<<<grid, threads, 0, im->stream>>>(cuda_rope_args_of(p), b->pos, b->out_slot, k, v,
                                                 kc, vc, p->kv_type == SGLC_GGML_TYPE_F16, rotate);
    CUDA_LAUNCHED(im, "kv_store kernel");
}

void cuda_kv_store(sglc_backend *be, const sglc_batch *b, const float *k, const float *v,
                   void *k_cache, void *v_cache, const sglc_attn_params *p) {
    cuda_impl *im = cuda_impl_of(be);
    if (CUDA_OP_BEGIN(im, CUDA_OP_KV_STORE, U64(b->out_slot), (uint64_t)b->n_tokens, U64(k), U64(v),
                      U64(k_cache), U64(v_cache), ATTN_SIG(p)))
        return;
    if (b->n_tokens <= 0) return;
    kv_store_run(im, b, k, v, k_cache, v_cache, p, 0);
}

void cuda_rope_kv_store(sglc_backend *be, const sglc_batch *b, float *q, const float *k,
                        const float *v, void *k_cache, void *v_cache, const sglc_attn_params *p) {
    cuda_impl *im = cuda_impl_of(be);
    if (CUDA_OP_BEGIN(im, CUDA_OP_ROPE_KV, U64(b->pos), U64(b->out_slot), (uint64_t)b->n_tokens,
                      U64(q), U64(k), U64(v), U64(k_cache), U64(v_cache), ATTN_SIG(p)))
        return;
    if (b->n_tokens <= 0) return;
    SGLC_ASSERT(p->rot_dim <= p->head_dim && p->rot_dim % 2 == 0);
    /* q's heads only (k's rotation goes straight to the cache) */
    dim3 grid((unsigned)b->n_tokens, (unsigned)p->n_head);
    k_rope<<<grid, pair_threads(p), 0, im->stream>>>(cuda_rope_args_of(p), b->pos, q, NULL,
                                                     p->n_head);
    if (CUDA_LAUNCHED(im, "rope kernel")) return;
    kv_store_run(im, b, k, v, k_cache, v_cache, p, 1);
}
