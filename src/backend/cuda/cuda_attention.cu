/* Causal attention over the paged KV cache (f32 or f16), every query token against positions
 * 0..pos of its own sequence through the slot table, with GQA (query head h reads kv head
 * h / (n_head / n_head_kv)).
 *
 * One block per (query token, head, split): the block walks its range of the context in tiles
 * of 128 keys (thread j scores key j of the tile from the query held in shared memory, then all
 * threads accumulate V for the dims they own) with an online softmax in f32. A step with few
 * (token, head) pairs (decode) splits each context into up to 32 ranges so the GPU fills, and a
 * second kernel combines the partial (max, sum, acc) triples, flash-decoding style.
 * With --enable-deterministic-inference (unsplit) an f16 cache follows the CPU backend's (and
 * ggml's non-flash) arithmetic: q rounded to f16 before q.k, and the normalized probabilities
 * rounded to f16 before weighting V, a second pass over the keys once the softmax's max and sum
 * are known. Measured on the H200 (test_backend_ops "cuda vs cpu"): the CPU's output to 0-7e-6
 * with the roundings. They cost decode speed (the default model at batch 1: 683 -> 294 tok/s,
 * unsplit and two passes), so long contexts keep the split online softmax in f32.
 *
 * An f16 cache with head_dim a multiple of 64 and a context of at most ATT_EXACT_KEYS (2048)
 * keys takes the CPU's own kernel, operation for operation (att_cpu_short below), when the
 * model has GGUF quantized weights: its scores and slots fit in shared memory, so the block
 * reads K and V once, and the result is the CPU's to the bit. Those models need it: their
 * activations are rounded to 8 bits before each product (Q8_1 / Q8_0), which turns a one-ulp
 * difference into a whole quantization step and then into a different token (the default Q4_1
 * model with the split f32 softmax: 23/50 golden prompts equal to the CPU's, logit differences
 * up to 1.3; the CPU itself at --tp-size 3, which only reorders sums: 25/50; the f32 HF folder,
 * which quantizes nothing, 50/50 on the split kernel). It is unsplit (one block per token and
 * head) and its output is a chain over the keys, so it is slower at batch 1 (BENCHMARKS.md);
 * float and MLX models keep the split kernel. SGLC_CUDA_EXACT_ATTN_KEYS=N sets the bound for
 * every model (0: the split kernel always; capped at 2048). The grid
 * depends only on the token count (fixed per padded decode size); each block reads its
 * context length on the device and exits early when its range is empty, so a graph replays
 * correctly while contexts grow. The tensor-core kernels (the default; SGLC_CUDA_ATTN_TC=0 off) are
 * in cuda_attention_tc.cu; what both files share is in cuda_attention.cuh. */
#include "backend/cuda/cuda_attention.cuh"

#define ATT_THREADS 128
#define ATT_MAX_HD 256
/* a split takes at least this many keys: the grid is fixed per step size (graphs), and each
 * block works out on the device how many of the n_splits its context really uses */
#define ATT_MIN_KEYS 64
/* the longest context whose scores and slots the CPU-exact kernel keeps in shared memory */
#define ATT_EXACT_KEYS CUDA_EXACT_ATTN_KEYS

__device__ __forceinline__ int att_eff_splits(int32_t ctx, int n_splits) {
    const int e = (ctx + ATT_MIN_KEYS - 1) / ATT_MIN_KEYS;
    return e < 1 ? 1 : e < n_splits ? e : n_splits;
}

__device__ float block_max(float v, float *sh) {
    v = warp_max(v);
    __syncthreads();
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
    __syncthreads();
    float r = -INFINITY;
    for (int i = 0; i < (int)(blockDim.x >> 5); i++)
        r = fmaxf(r, sh[i]);
    return r;
}

/* Deterministic mode over an f16 cache with head_dim a multiple of 64: the CPU's own kernel
 * (kernels_avx2.c sglc_avx2_attn_f16), operation for operation, so a token's attention is the
 * CPU's to the bit. Per key: q rounded to f16; 16 FMA chains over the head (lane l of two
 * 8-lane accumulators, dims l and 8 + l of every 16), then the lanes summed as the CPU sums
 * them: keys in a full group of 8 by its transpose-add, the last partial group by hsum_ps;
 * times the scale. Softmax: e = the CPU's vector exp (vexp_scalar.h) of score - max, summed in
 * 8 lanes (key s into lane s % 8, keys in order) and the lanes by hsum_ps, a float reciprocal,
 * probabilities e * inv rounded to f16; out accumulated key after key with one FMA per value.
 * Three passes over the keys (max, sum, output), one block per (token, head), unsplit. */
__device__ __forceinline__ float att_cpu_score(const float *qs, const __half *kp, int hd,
                                               bool full_group, float scale) {
    float a0[8], a1[8];
#pragma unroll
    for (int l = 0; l < 8; l++)
        a0[l] = 0.0f, a1[l] = 0.0f;
    for (int i = 0; i < hd; i += 16) {
        const uint4 w0 = *(const uint4 *)(kp + i), w1 = *(const uint4 *)(kp + i + 8);
        const __half *h0 = (const __half *)&w0, *h1 = (const __half *)&w1;
#pragma unroll
        for (int l = 0; l < 8; l++) {
            a0[l] = __fmaf_rn(qs[i + l], __half2float(h0[l]), a0[l]);
            a1[l] = __fmaf_rn(qs[i + 8 + l], __half2float(h1[l]), a1[l]);
        }
    }
    float a[8];
#pragma unroll
    for (int l = 0; l < 8; l++)
        a[l] = __fadd_rn(a0[l], a1[l]);
    const float v = full_group ? __fadd_rn(__fadd_rn(__fadd_rn(a[0], a[1]), __fadd_rn(a[2], a[3])),
                                           __fadd_rn(__fadd_rn(a[4], a[5]), __fadd_rn(a[6], a[7])))
                               : __fadd_rn(__fadd_rn(__fadd_rn(a[0], a[4]), __fadd_rn(a[2], a[6])),
                                           __fadd_rn(__fadd_rn(a[1], a[5]), __fadd_rn(a[3], a[7])));
    return __fmul_rn(v, scale);
}

/* The CPU-exact attention of one (token, head) over a context of at most ATT_EXACT_KEYS keys,
 * with qs (shared) holding q rounded to f16: the scores and slots go to shared memory (sc, sl),
 * so K and V are read once; then the max, the CPU's exp and 8-lane sum, the f16 probabilities
 * and the key-after-key output as in k_attn_cpu's three passes. */
__device__ void att_cpu_short(const float *qs, const __half *kc, const __half *vc,
                              const int32_t *slots, int32_t ctx, int hd, size_t kvd, int kvh,
                              float scale, float *o, float *sc, int32_t *sl, float *redf,
                              float *lanes) {
    const int tid = threadIdx.x;
    const int32_t full = ctx & ~7;
    float m = -INFINITY;
    for (int32_t s = tid; s < ctx; s += ATT_THREADS) {
        const int32_t slot = slots[s];
        sl[s] = slot;
        const float v =
            att_cpu_score(qs, kc + (size_t)slot * kvd + (size_t)kvh * hd, hd, s < full, scale);
        sc[s] = v;
        m = fmaxf(m, v);
    }
    m = block_max(m, redf); /* its barriers publish sc and sl */
    for (int32_t s = tid; s < ctx; s += ATT_THREADS)
        sc[s] = cuda_v_expf(__fsub_rn(sc[s], m));
    __syncthreads();
    if (tid < 8) { /* key s in lane s % 8, each lane's keys in order */
        float l = 0.0f;
        for (int32_t s = tid; s < ctx; s += 8)
            l = __fadd_rn(l, sc[s]);
        lanes[tid] = l;
    }
    __syncthreads();
    const float sum =
        __fadd_rn(__fadd_rn(__fadd_rn(lanes[0], lanes[4]), __fadd_rn(lanes[2], lanes[6])),
                  __fadd_rn(__fadd_rn(lanes[1], lanes[5]), __fadd_rn(lanes[3], lanes[7])));
    const float inv = __fdiv_rn(1.0f, sum);
    for (int32_t s = tid; s < ctx; s += ATT_THREADS)
        sc[s] = __half2float(__float2half_rn(__fmul_rn(sc[s], inv)));
    __syncthreads();
    const __half *vh = vc + (size_t)kvh * hd;
    /* the chain over the keys is serial per dim; its loads are not: 16 in flight at a time
     * (a block per (token, head) leaves most SMs idle at batch 1, so latency is the bound) */
    for (int d = tid; d < hd; d += ATT_THREADS) {
        float a = 0.0f;
        int32_t s = 0;
        for (; s + 16 <= ctx; s += 16) {
            __half v16[16];
#pragma unroll
            for (int j = 0; j < 16; j++)
                v16[j] = vh[(size_t)sl[s + j] * kvd + d];
#pragma unroll
            for (int j = 0; j < 16; j++)
                a = __fmaf_rn(sc[s + j], __half2float(v16[j]), a);
        }
        for (; s < ctx; s++)
            a = __fmaf_rn(sc[s], __half2float(vh[(size_t)sl[s] * kvd + d]), a);
        o[d] = a;
    }
}

template <bool F16, bool PAR>
__global__ void __launch_bounds__(ATT_THREADS)
    k_attn(const float *q, const void *kc, const void *vc, float *out, float *part,
           sglc_batch_dev b, int n_head, int n_kv, int hd, float scale, int n_splits,
           int exact_keys) {
    /* the CPU-exact kernel's scores and slots (f16 cache, default mode) */
    constexpr int XK = F16 && !PAR ? ATT_EXACT_KEYS : 1;
    __shared__ float qs[ATT_MAX_HD];
    __shared__ float ps[ATT_THREADS];
    __shared__ int32_t sl[ATT_THREADS];
    __shared__ float redf[32];
    __shared__ float xs[XK], lanes[8];
    __shared__ int32_t xl[XK];
    const int t = blockIdx.x, h = blockIdx.y, split = blockIdx.z, tid = threadIdx.x;
    cuda_pdl_wait();
    cuda_pdl_trigger();
    const int kvh = h / (n_head / n_kv);
    const size_t kvd = (size_t)n_kv * hd;
    const int32_t ctx = b.pos[t] + 1;
    const int32_t *slots = b.slot_table + b.seq_slot_start[b.seq[t]];
    const float *qr = q + ((size_t)t * n_head + h) * hd;
    if (F16 && !PAR && ctx <= exact_keys) { /* the CPU's arithmetic, in split 0 (see the top) */
        if (split != 0) return;
        for (int d = tid; d < hd; d += ATT_THREADS)
            qs[d] = __half2float(__float2half_rn(qr[d]));
        __syncthreads();
        att_cpu_short(qs, (const __half *)kc, (const __half *)vc, slots, ctx, hd, kvd, kvh, scale,
                      out + ((size_t)t * n_head + h) * hd, xs, xl, redf, lanes);
        return;
    }
    const int eff = n_splits > 1 ? att_eff_splits(ctx, n_splits) : 1;
    if (split >= eff) return; /* the combine reads only the splits the context uses */
    const int32_t chunk = (ctx + eff - 1) / eff;
    const int32_t s0 = split * chunk, s1 = min(ctx, s0 + chunk);
    constexpr int DPT = ATT_MAX_HD / ATT_THREADS; /* dims per thread */
    float acc[DPT];
#pragma unroll
    for (int i = 0; i < DPT; i++)
        acc[i] = 0.0f;
    float m = -INFINITY, l = 0.0f;
    for (int d = tid; d < hd; d += ATT_THREADS)
        qs[d] = F16 && PAR ? __half2float(__float2half_rn(qr[d])) : qr[d];
    __syncthreads();
    /* f16 cache: pass 0 finds the softmax's max and sum, pass 1 weights V by the probabilities
     * rounded to f16 (see the top); f32: one online pass */
    for (int pass = F16 && PAR ? 0 : 1; pass < 2; pass++)
        for (int32_t base = s0; base < s1; base += ATT_THREADS) {
            const int32_t s = base + tid;
            float sc = -INFINITY;
            if (s < s1) {
                const int32_t slot = slots[s];
                sl[tid] = slot;
                const size_t off = (size_t)slot * kvd + (size_t)kvh * hd;
                float d = 0.0f;
                if (F16) {
                    const uint4 *kp = (const uint4 *)((const __half *)kc + off);
                    for (int i = 0; i < hd / 8; i++) {
                        uint4 w = kp[i];
                        const __half2 *hp = (const __half2 *)&w;
#pragma unroll
                        for (int j = 0; j < 4; j++) {
                            float2 f = __half22float2(hp[j]);
                            d = fmaf(qs[8 * i + 2 * j], f.x, d);
                            d = fmaf(qs[8 * i + 2 * j + 1], f.y, d);
                        }
                    }
                } else {
                    const float4 *kp = (const float4 *)((const float *)kc + off);
                    for (int i = 0; i < hd / 4; i++) {
                        float4 w = kp[i];
                        d = fmaf(qs[4 * i], w.x, d);
                        d = fmaf(qs[4 * i + 1], w.y, d);
                        d = fmaf(qs[4 * i + 2], w.z, d);
                        d = fmaf(qs[4 * i + 3], w.w, d);
                    }
                }
                sc = d * scale;
            }
            float alpha = 1.0f;
            if (F16 && PAR && pass == 1) {
                /* m and l are final: the CPU's f16-rounded probability */
                ps[tid] = s < s1 ? __half2float(__float2half_rn(expf(sc - m) * (1.0f / l))) : 0.0f;
                __syncthreads(); /* publishes ps and sl */
            } else {
                const float mt = block_max(sc, redf);
                const float mn = fmaxf(m, mt);
                alpha = m == -INFINITY ? 0.0f : expf(m - mn);
                const float p = s < s1 ? expf(sc - mn) : 0.0f;
                ps[tid] = p;
                l = l * alpha + block_sum(p, redf); /* its barriers also publish ps and sl */
                m = mn;
                if (F16 && PAR) { /* pass 0: the max and the sum only */
                    __syncthreads();
                    continue;
                }
            }
            const int n_in = min(ATT_THREADS, s1 - base);
#pragma unroll
            for (int i = 0; i < DPT; i++) {
                const int d = tid + i * ATT_THREADS;
                if (d >= hd) break;
                float a = acc[i] * alpha;
                for (int j = 0; j < n_in; j++) {
                    const size_t off = (size_t)sl[j] * kvd + (size_t)kvh * hd + d;
                    const float vv =
                        F16 ? __half2float(((const __half *)vc)[off]) : ((const float *)vc)[off];
                    a = fmaf(ps[j], vv, a);
                }
                acc[i] = a;
            }
            __syncthreads(); /* ps and sl are rewritten by the next tile */
        }
    if (n_splits == 1) {
        float *o = out + ((size_t)t * n_head + h) * hd;
        /* f16: the probabilities were normalized already */
        const float inv = F16 && PAR ? 1.0f : l > 0.0f ? 1.0f / l : 0.0f;
#pragma unroll
        for (int i = 0; i < DPT; i++) {
            const int d = tid + i * ATT_THREADS;
            if (d < hd) o[d] = acc[i] * inv;
        }
        return;
    }
    float *pp = part + (((size_t)t * n_head + h) * n_splits + split) * (size_t)(hd + 2);
    if (tid == 0) {
        pp[0] = m;
        pp[1] = l;
    }
#pragma unroll
    for (int i = 0; i < DPT; i++) {
        const int d = tid + i * ATT_THREADS;
        if (d < hd) pp[2 + d] = acc[i];
    }
}

__global__ void __launch_bounds__(ATT_THREADS)
    k_attn_cpu(const float *q, const __half *kc, const __half *vc, float *out, sglc_batch_dev b,
               int n_head, int n_kv, int hd, float scale) {
    __shared__ float qs[ATT_MAX_HD];
    __shared__ float ps[ATT_THREADS];
    __shared__ int32_t sl[ATT_THREADS];
    __shared__ float redf[32];
    __shared__ float lanes[8];
    __shared__ float inv_sh;
    __shared__ float xs[ATT_EXACT_KEYS];
    __shared__ int32_t xl[ATT_EXACT_KEYS];
    const int t = blockIdx.x, h = blockIdx.y, tid = threadIdx.x;
    cuda_pdl_wait();
    cuda_pdl_trigger();
    const int kvh = h / (n_head / n_kv);
    const size_t kvd = (size_t)n_kv * hd;
    const int32_t ctx = b.pos[t] + 1, full = ctx & ~7;
    const int32_t *slots = b.slot_table + b.seq_slot_start[b.seq[t]];
    const float *qr = q + ((size_t)t * n_head + h) * hd;
    for (int d = tid; d < hd; d += ATT_THREADS)
        qs[d] = __half2float(__float2half_rn(qr[d]));
    __syncthreads();
    if (ctx <= ATT_EXACT_KEYS) { /* the same arithmetic with K and V read once */
        att_cpu_short(qs, kc, vc, slots, ctx, hd, kvd, kvh, scale,
                      out + ((size_t)t * n_head + h) * hd, xs, xl, redf, lanes);
        return;
    }
    /* pass 0: the maximum score (exact in any order) */
    float m = -INFINITY;
    for (int32_t base = 0; base < ctx; base += ATT_THREADS) {
        const int32_t s = base + tid;
        float sc = -INFINITY;
        if (s < ctx)
            sc = att_cpu_score(qs, kc + (size_t)slots[s] * kvd + (size_t)kvh * hd, hd, s < full,
                               scale);
        m = fmaxf(m, block_max(sc, redf));
    }
    /* pass 1: the sum in the CPU's 8 lanes; tiles are a multiple of 8 keys, so key s stays in
     * lane s % 8 and each lane adds its keys in order */
    float lane_sum = 0.0f;
    for (int32_t base = 0; base < ctx; base += ATT_THREADS) {
        const int32_t s = base + tid;
        float e = 0.0f;
        if (s < ctx)
            e = cuda_v_expf(
                __fsub_rn(att_cpu_score(qs, kc + (size_t)slots[s] * kvd + (size_t)kvh * hd, hd,
                                        s < full, scale),
                          m));
        ps[tid] = e;
        __syncthreads();
        if (tid < 8)
            for (int i = tid; i < ATT_THREADS && base + i < ctx; i += 8)
                lane_sum = __fadd_rn(lane_sum, ps[i]);
        __syncthreads();
    }
    if (tid < 8) lanes[tid] = lane_sum;
    __syncthreads();
    if (tid == 0) {
        const float sum =
            __fadd_rn(__fadd_rn(__fadd_rn(lanes[0], lanes[4]), __fadd_rn(lanes[2], lanes[6])),
                      __fadd_rn(__fadd_rn(lanes[1], lanes[5]), __fadd_rn(lanes[3], lanes[7])));
        inv_sh = __fdiv_rn(1.0f, sum);
    }
    __syncthreads();
    const float inv = inv_sh;
    /* pass 2: f16 probabilities, out accumulated key after key */
    constexpr int DPT = ATT_MAX_HD / ATT_THREADS;
    float acc[DPT];
#pragma unroll
    for (int i = 0; i < DPT; i++)
        acc[i] = 0.0f;
    for (int32_t base = 0; base < ctx; base += ATT_THREADS) {
        const int32_t s = base + tid;
        float pr = 0.0f;
        if (s < ctx) {
            const int32_t slot = slots[s];
            sl[tid] = slot;
            const float e = cuda_v_expf(__fsub_rn(
                att_cpu_score(qs, kc + (size_t)slot * kvd + (size_t)kvh * hd, hd, s < full, scale),
                m));
            pr = __half2float(__float2half_rn(__fmul_rn(e, inv)));
        }
        ps[tid] = pr;
        __syncthreads();
        const int n_in = min(ATT_THREADS, ctx - base);
#pragma unroll
        for (int i = 0; i < DPT; i++) {
            const int d = tid + i * ATT_THREADS;
            if (d >= hd) break;
            float a = acc[i];
            for (int j = 0; j < n_in; j++)
                a = __fmaf_rn(ps[j], __half2float(vc[(size_t)sl[j] * kvd + (size_t)kvh * hd + d]),
                              a);
            acc[i] = a;
        }
        __syncthreads();
    }
    float *o = out + ((size_t)t * n_head + h) * hd;
#pragma unroll
    for (int i = 0; i < DPT; i++) {
        const int d = tid + i * ATT_THREADS;
        if (d < hd) o[d] = acc[i];
    }
}

/* ---- decode attention over an f16 cache by kv head (the default for float and MLX models) ----
 * One block of AG_WARPS warps per (token, kv head, split of the context) serves all GM >= G
 * query heads of the group, so K and V are read once per group, not once per query head. A lane
 * owns DPL consecutive dims (DPL = head_dim / 32): each key's K and V row is one coalesced
 * 2 * head_dim-byte warp load, and four keys' rows are loaded before their first use. The score
 * is the warp's sum of the lanes' partial dots; each warp keeps an online softmax (max, sum,
 * accumulator) per head over its keys, the block merges its warps', and the last block of a
 * (token, kv head) to finish (a counter in attn_done, reset by that block) merges the splits, so
 * no second launch is needed. f32 arithmetic, q not rounded: the split kernel's (2e-4 from the
 * CPU's f16 path, test_backend_ops). It replaced k_attn's split path for these models, which
 * scored a key per thread (uncoalesced 2 * head_dim-byte rows), read V one 2-byte value per
 * thread and key, and launched a combine kernel: 12 + 5 us per layer at 512 keys on the H200. */
#define AG_MIN_KEYS 32 /* a split takes at least this many keys */

template <int DPL> __device__ __forceinline__ void ag_load(const __half *p, float (&f)[DPL]) {
    if constexpr (DPL == 2) {
        const float2 a = __half22float2(*(const __half2 *)p);
        f[0] = a.x, f[1] = a.y;
    } else if constexpr (DPL == 4) {
        const uint2 w = *(const uint2 *)p;
        const float2 a = __half22float2(*(const __half2 *)&w.x),
                     b = __half22float2(*(const __half2 *)&w.y);
        f[0] = a.x, f[1] = a.y, f[2] = b.x, f[3] = b.y;
    } else {
        const uint4 w = *(const uint4 *)p;
        const uint32_t u[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const float2 a = __half22float2(*(const __half2 *)&u[i]);
            f[2 * i] = a.x, f[2 * i + 1] = a.y;
        }
    }
}

template <int DPL, int GM>
__global__ void __launch_bounds__(AG_WARPS * 32)
    k_attn_gqa(const float *q, const __half *kc, const __half *vc, float *out, float *part,
               int *done, sglc_batch_dev b, int n_head, int n_kv, float scale, int n_splits) {
    constexpr int HD = 32 * DPL;
    __shared__ float s_m[AG_WARPS][GM], s_l[AG_WARPS][GM];
    __shared__ float s_acc[AG_WARPS][GM][HD];
    const int t = blockIdx.x, kvh = blockIdx.y, split = blockIdx.z;
    const int lane = threadIdx.x & 31, wp = threadIdx.x >> 5, G = n_head / n_kv;
    cuda_pdl_wait();
    cuda_pdl_trigger();
    const int32_t ctx = b.pos[t] + 1;
    const int e0 = (ctx + AG_MIN_KEYS - 1) / AG_MIN_KEYS;
    const int eff = n_splits > 1 ? (e0 < n_splits ? e0 : n_splits) : 1;
    if (split >= eff) return;
    const int32_t chunk = (ctx + eff - 1) / eff;
    const int32_t s0 = split * chunk, s1 = min(ctx, s0 + chunk);
    const int32_t *slots = b.slot_table + b.seq_slot_start[b.seq[t]];
    const size_t kvd = (size_t)n_kv * HD;
    const int d0 = lane * DPL;
    float qv[GM][DPL], acc[GM][DPL], m[GM], l[GM];
#pragma unroll
    for (int g = 0; g < GM; g++) {
        const float *qr = q + ((size_t)t * n_head + (size_t)kvh * G + g) * HD + d0;
#pragma unroll
        for (int i = 0; i < DPL; i++)
            qv[g][i] = g < G ? qr[i] : 0.0f, acc[g][i] = 0.0f;
        m[g] = -INFINITY, l[g] = 0.0f;
    }
    const __half *kb = kc + (size_t)kvh * HD + d0, *vb = vc + (size_t)kvh * HD + d0;
    /* the slots of a round of 4 keys are loaded a round ahead: a K/V load waits on its slot */
    int32_t sl[4];
#pragma unroll
    for (int j = 0; j < 4; j++)
        sl[j] = s0 + wp * 4 + j < s1 ? slots[s0 + wp * 4 + j] : -1;
    for (int32_t s = s0 + wp * 4; s < s1; s += AG_WARPS * 4) {
        float kf[4][DPL], vf[4][DPL];
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const size_t off = (size_t)(sl[j] >= 0 ? sl[j] : sl[0]) * kvd;
            ag_load<DPL>(kb + off, kf[j]);
            ag_load<DPL>(vb + off, vf[j]);
        }
        int32_t sn[4];
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const int32_t x = s + AG_WARPS * 4 + j;
            sn[j] = x < s1 ? slots[x] : -1;
        }
#pragma unroll
        for (int g = 0; g < GM; g++) {
            if (g >= G) break;
            float sc[4];
#pragma unroll
            for (int j = 0; j < 4; j++) {
                float d = 0.0f;
#pragma unroll
                for (int i = 0; i < DPL; i++)
                    d = fmaf(qv[g][i], kf[j][i], d);
                d = warp_sum(d) * scale;
                sc[j] = sl[j] >= 0 ? d : -INFINITY;
            }
            const float mn = fmaxf(fmaxf(m[g], fmaxf(sc[0], sc[1])), fmaxf(sc[2], sc[3]));
            const float alpha = m[g] == -INFINITY ? 0.0f : expf(m[g] - mn);
            float p[4];
#pragma unroll
            for (int j = 0; j < 4; j++)
                p[j] = sl[j] >= 0 ? expf(sc[j] - mn) : 0.0f;
            l[g] = l[g] * alpha + ((p[0] + p[1]) + (p[2] + p[3]));
#pragma unroll
            for (int i = 0; i < DPL; i++) {
                float a = acc[g][i] * alpha;
#pragma unroll
                for (int j = 0; j < 4; j++)
                    a = fmaf(p[j], vf[j][i], a);
                acc[g][i] = a;
            }
            m[g] = mn;
        }
#pragma unroll
        for (int j = 0; j < 4; j++)
            sl[j] = sn[j];
    }
    /* the block's warps merged, per head and dim */
#pragma unroll
    for (int g = 0; g < GM; g++) {
#pragma unroll
        for (int i = 0; i < DPL; i++)
            s_acc[wp][g][d0 + i] = acc[g][i];
        if (lane == 0) s_m[wp][g] = m[g], s_l[wp][g] = l[g];
    }
    ag_finish<HD, GM>(s_m, s_l, s_acc, out, part, done, t, kvh, split, eff, G, n_head, n_kv,
                      n_splits);
}

/* launches k_attn_gqa when it serves this shape (1), else 0 */
static int attn_gqa(cuda_impl *im, const sglc_batch_dev &db, int64_t T, const float *q,
                    const void *kc, const void *vc, float *out, const sglc_attn_params *p,
                    int splits) {
    const int G = p->n_head / p->n_head_kv, hd = p->head_dim;
    const int dpl = hd == 64 ? 2 : hd == 128 ? 4 : hd == 256 ? 8 : 0;
    const int gm = G <= 1 ? 1 : G <= 2 ? 2 : G <= 4 ? 4 : G <= 8 ? 8 : 0;
    if (!dpl || !gm || dpl * gm > 32) return 0; /* more would spill: the per-head kernel */
    /* splits: the per-head count (cuda_attention_splits); splitting for the kv-head blocks
     * (4 n_sm / (T n_kv) splits of 16 keys or more) measured slower: 18.5 against 15.7 us a
     * layer at 640 keys (8B shape), 857 against 881 tok/s (0.6B; BENCHMARKS.md session 13) */
    const dim3 grid((unsigned)T, (unsigned)p->n_head_kv, (unsigned)splits);
    const int code = dpl * 10 + gm; /* the instances below; D * GM <= 32 */
#define AG(D, GM)                                                                                  \
    case D * 10 + GM:                                                                              \
        cuda_launch(im, k_attn_gqa<D, GM>, grid, dim3(AG_WARPS * 32), q, (const __half *)kc,       \
                    (const __half *)vc, out, im->attn_part, im->attn_done, db, (int)p->n_head,     \
                    (int)p->n_head_kv, p->scale, splits);                                          \
        break
    switch (code) {
        AG(2, 1);
        AG(2, 2);
        AG(2, 4);
        AG(2, 8);
        AG(4, 1);
        AG(4, 2);
        AG(4, 4);
        AG(4, 8);
        AG(8, 1);
        AG(8, 2);
        AG(8, 4);
    default: SGLC_ASSERT(!"k_attn_gqa instance");
    }
#undef AG
    return 1;
}

/* out = the partials of the splits the context used, each rescaled to the common max: warp 0
 * turns the (max, sum) pairs into one weight per split, then every dim is one pass */
__global__ void k_attn_combine(const float *part, float *out, sglc_batch_dev b, int n_head, int hd,
                               int n_splits, int exact_keys) {
    __shared__ float wt[ATT_MAX_SPLITS];
    cuda_pdl_wait();
    cuda_pdl_trigger();
    const int t = blockIdx.x, h = blockIdx.y;
    if (b.pos[t] + 1 <= exact_keys) return; /* written by the CPU-exact kernel */
    const int eff = att_eff_splits(b.pos[t] + 1, n_splits);
    const float *pp = part + ((size_t)t * n_head + h) * n_splits * (size_t)(hd + 2);
    if (threadIdx.x < 32) {
        const float w = att_split_weight(pp, eff, (size_t)(hd + 2));
        if ((int)threadIdx.x < eff) wt[threadIdx.x] = w;
    }
    __syncthreads();
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float a = 0.0f;
        for (int s = 0; s < eff; s++)
            a = fmaf(pp[(size_t)s * (hd + 2) + 2 + d], wt[s], a);
        out[((size_t)t * n_head + h) * hd + d] = a;
    }
}

int cuda_attention_splits(const cuda_impl *im, int64_t T, int32_t n_head) {
    /* deterministic: one order of the context for every token whatever the step's size */
    if (im->deterministic) return 1;
    const int64_t pairs = T * n_head, target = 4 * (int64_t)im->n_sm;
    if (pairs >= target) return 1;
    int64_t s = (target + pairs - 1) / pairs;
    return (int)(s > ATT_MAX_SPLITS ? ATT_MAX_SPLITS : s);
}

/* splits * pairs < 2 * target whenever splits > 1 (cuda_attention_splits) */
size_t cuda_attention_part_floats(const cuda_impl *im) {
    return (size_t)8 * (size_t)im->n_sm * (ATT_MAX_HD + 2);
}

/* attn_done: (token, kv head) pairs of a split step < T * n_head < 4 * n_sm */
size_t cuda_attention_done_ints(const cuda_impl *im) {
    return (size_t)4 * (size_t)im->n_sm;
}

void cuda_attention(sglc_backend *be, const sglc_batch *b, const float *q, const void *k_cache,
                    const void *v_cache, float *out, const sglc_attn_params *p) {
    cuda_impl *im = cuda_impl_of(be);
    union {
        float f;
        uint32_t u;
    } sc = {p->scale};
    if (CUDA_OP_BEGIN(im, CUDA_OP_ATTENTION, U64(b->pos), U64(b->seq), U64(b->seq_slot_start),
                      U64(b->slot_table), (uint64_t)b->n_tokens, U64(q), U64(k_cache), U64(v_cache),
                      U64(out), (uint64_t)p->n_head, (uint64_t)p->n_head_kv, (uint64_t)p->head_dim,
                      (uint64_t)p->kv_type, (uint64_t)sc.u))
        return;
    if (b->n_tokens <= 0) return;
    SGLC_ASSERT(p->head_dim <= ATT_MAX_HD && p->head_dim % 8 == 0);
    SGLC_ASSERT(p->n_head_kv > 0 && p->n_head % p->n_head_kv == 0);
    SGLC_ASSERT(p->kv_type == SGLC_GGML_TYPE_F16 || p->kv_type == SGLC_GGML_TYPE_F32);
    /* split unless deterministic (the f16 roundings of the CPU need the unsplit two passes,
     * see the top); an f16 cache was once always unsplit here, which made decode attention
     * 57 us per layer at a 512-token context on the H200 (16 blocks for the whole GPU) */
    const int splits = cuda_attention_splits(im, b->n_tokens, p->n_head);
    SGLC_ASSERT(splits == 1 || (size_t)splits * (size_t)b->n_tokens * (size_t)p->n_head *
                                       (size_t)(p->head_dim + 2) <=
                                   im->attn_part_floats);
    /* tokens on x: y and z take at most 65,535 (a bench_one_batch prefill of 64 x 1,024
     * tokens failed with tokens on z) */
    dim3 grid((unsigned)b->n_tokens, (unsigned)p->n_head, (unsigned)splits);
    sglc_batch_dev db = batch_dev_of(b);
    /* contexts up to this many keys take the CPU-exact kernel (f16, head_dim % 64 == 0) */
    const int xk = im->exact_attn_keys >= 0 ? im->exact_attn_keys
                   : im->quant_acts         ? ATT_EXACT_KEYS
                                            : 0;
    const int exact =
        p->kv_type == SGLC_GGML_TYPE_F16 && p->head_dim % 64 == 0 && !im->deterministic ? xk : 0;
    /* the CPU's f16 roundings in deterministic mode only (unsplit there: see the top) */
#define ATTN(F16, PAR)                                                                             \
    cuda_launch(im, k_attn<F16, PAR>, grid, dim3(ATT_THREADS), q, k_cache, v_cache, out,           \
                im->attn_part, db, (int)p->n_head, (int)p->n_head_kv, (int)p->head_dim, p->scale,  \
                splits, exact)
    const int f16_fast = p->kv_type == SGLC_GGML_TYPE_F16 && !im->deterministic && !exact;
    if (f16_fast && im->attn_tc && cuda_attn_tc(im, b, db, q, k_cache, v_cache, out, p, splits)) {
        CUDA_LAUNCHED(im, "attention kernel");
        return;
    }
    if (f16_fast && im->attn_gqa &&
        attn_gqa(im, db, b->n_tokens, q, k_cache, v_cache, out, p, splits)) {
        CUDA_LAUNCHED(im, "attention kernel");
        return;
    }
    if (p->kv_type == SGLC_GGML_TYPE_F16 && im->deterministic && p->head_dim % 64 == 0)
        cuda_launch(im, k_attn_cpu, grid, dim3(ATT_THREADS), q, (const __half *)k_cache,
                    (const __half *)v_cache, out, db, (int)p->n_head, (int)p->n_head_kv,
                    (int)p->head_dim, p->scale);
    else if (p->kv_type == SGLC_GGML_TYPE_F16 && im->deterministic)
        ATTN(true, true);
    else if (p->kv_type == SGLC_GGML_TYPE_F16)
        ATTN(true, false);
    else
        ATTN(false, false);
#undef ATTN
    if (CUDA_LAUNCHED(im, "attention kernel") || splits == 1) return;
    dim3 cg((unsigned)b->n_tokens, (unsigned)p->n_head);
    cuda_launch(im, k_attn_combine, cg, dim3(p->head_dim >= 128 ? 128 : 64),
                (const float *)im->attn_part, out, db, (int)p->n_head, (int)p->head_dim, splits,
                exact);
    CUDA_LAUNCHED(im, "attention combine kernel");
}
