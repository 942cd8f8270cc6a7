/* Attention on tensor cores (f16 cache, head_dim 64 or 128).
 * A warp holds 16 query rows and walks the keys 16 at a time with mma.sync m16n8k16 (f16 in,
 * f32 out): S = Q K^T for the 16 x 16 block, an online softmax per row in f32 (scores in log2
 * units: scale * log2(e) is folded into q), then O += P V with P rounded to f16. A row is a
 * (token, query head) of one kv head's group. Decode (k_attn_tc_dec): one token per block, its
 * G heads as rows (G of 16 used), the block's 4 warps and the splits taking turns over the
 * context, merged as k_attn_gqa's (ag_finish). Prefill (k_attn_tc_pre): a warp's rows are
 * 16 / G consecutive tokens x G heads, each row masked to the keys at or before its position;
 * warps whose tokens belong to several sequences take them one sequence at a time. The
 * fragments need no shared memory: a dot product may take the head's dims in any order, so a
 * lane's K load is 16 consecutive bytes of a key row (dims 32s + 8c .. + 7 of lane c's group)
 * and q is packed in the same order; V is turned into the B operand with byte permutes
 * (prmt) of 16-byte row loads. Why: k_attn_gqa's score per key is a warp reduction (5
 * shuffles) per head, about 115 instructions per key and kv head against about 13 here, and
 * on the H200 it moved 1.2-1.6 TB/s of KV at batch 64-256 (8B shape, BENCHMARKS.md session 14).
 * The default since it passed test_backend_ops on the H200 (session 15: prefill of 64 x 1,024
 * tokens 2.1x faster, decode at 256 x 1,024 keys 1.5x; SGLC_CUDA_ATTN_TC=0 for the CUDA-core
 * kernels). scripts/tc_attn_emulate.py checks its fragment layout
 * and masks lane by lane (a decode warp and a prefill warp) against softmax attention. */
#include "backend/cuda/cuda_attention.cuh"

#define TC_WARPS 4
#define TC_MIN_KEYS 32 /* a split takes at least this many keys */
static_assert(TC_WARPS == AG_WARPS, "k_attn_tc_dec merges its warps through ag_finish");

__device__ __forceinline__ void tc_mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                       uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t tc_pack(float lo, float hi) {
    const __half2 h = __floats2half2_rn(lo, hi);
    return *(const uint32_t *)&h;
}

__device__ __forceinline__ float tc_exp2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

__device__ __forceinline__ uint32_t tc_word(const uint4 &w, int i) {
    return i == 0 ? w.x : i == 1 ? w.y : i == 2 ? w.z : w.w;
}

/* A warp's state: q as A fragments (qa[2s + h] for dims 32s .. 32s + 31, h the half a lane's
 * 8 dims it covers), the output accumulators (o[8 G64 + j]: dims 64 G64 + 16 c + j and + 8 for
 * lane c of a group), and per row (lo: row g, hi: row g + 8 of lane group g) the running max
 * (log2 units) and the lane's share of the sum. */
template <int HD> struct tc_state {
    uint32_t qa[HD / 16][4];
    float o[HD / 8][4];
    float m[2], l[2];
};

/* q of rows lo and hi (NULL: a padding row, zeros), times sc, into st.qa */
template <int HD>
__device__ __forceinline__ void tc_load_q(tc_state<HD> &st, const float *qlo, const float *qhi,
                                          float sc) {
    const int c = threadIdx.x & 3;
#pragma unroll
    for (int s = 0; s < HD / 32; s++) {
        float v[2][8];
#pragma unroll
        for (int r = 0; r < 2; r++) {
            const float *qr = r ? qhi : qlo;
            if (qr) {
                const float4 a = *(const float4 *)(qr + 32 * s + 8 * c),
                             b = *(const float4 *)(qr + 32 * s + 8 * c + 4);
                v[r][0] = a.x, v[r][1] = a.y, v[r][2] = a.z, v[r][3] = a.w;
                v[r][4] = b.x, v[r][5] = b.y, v[r][6] = b.z, v[r][7] = b.w;
            } else {
#pragma unroll
                for (int i = 0; i < 8; i++)
                    v[r][i] = 0.0f;
            }
        }
#pragma unroll
        for (int h = 0; h < 2; h++) {
            st.qa[2 * s + h][0] = tc_pack(v[0][4 * h] * sc, v[0][4 * h + 1] * sc);
            st.qa[2 * s + h][1] = tc_pack(v[1][4 * h] * sc, v[1][4 * h + 1] * sc);
            st.qa[2 * s + h][2] = tc_pack(v[0][4 * h + 2] * sc, v[0][4 * h + 3] * sc);
            st.qa[2 * s + h][3] = tc_pack(v[1][4 * h + 2] * sc, v[1][4 * h + 3] * sc);
        }
    }
#pragma unroll
    for (int j = 0; j < HD / 8; j++)
        st.o[j][0] = st.o[j][1] = st.o[j][2] = st.o[j][3] = 0.0f;
    st.m[0] = st.m[1] = -INFINITY;
    st.l[0] = st.l[1] = 0.0f;
}

/* The 16 keys kb .. kb + 15 of one sequence (slots: its slot table; keys past kend read key
 * kend's row and are masked) for rows whose last key is lim[0] (lo) and lim[1] (hi); -1 masks a
 * row out. sl: lane i (mod 16) holds the slot of key kb + i. kb is a multiple of 16 apart from
 * any other block of the walk. */
template <int HD>
__device__ __forceinline__ void tc_keys(tc_state<HD> &st, const __half *kb_ptr,
                                        const __half *vb_ptr, size_t kvd, int32_t sl, int32_t kb,
                                        int32_t lim_lo, int32_t lim_hi) {
    const int lane = threadIdx.x & 31, g = lane >> 2, c = lane & 3;
    const unsigned full = 0xffffffffu;
    /* K rows of keys kb + g and kb + 8 + g; V rows of keys kb + 2c, + 1, + 8, + 9 */
    const int32_t sk0 = __shfl_sync(full, sl, g), sk1 = __shfl_sync(full, sl, 8 + g);
    const int32_t sv0 = __shfl_sync(full, sl, 2 * c), sv1 = __shfl_sync(full, sl, 2 * c + 1),
                  sv2 = __shfl_sync(full, sl, 2 * c + 8), sv3 = __shfl_sync(full, sl, 2 * c + 9);
    uint4 kw[2][HD / 32], vw[4][HD / 64];
#pragma unroll
    for (int s = 0; s < HD / 32; s++) {
        kw[0][s] = *(const uint4 *)(kb_ptr + (size_t)sk0 * kvd + 32 * s + 8 * c);
        kw[1][s] = *(const uint4 *)(kb_ptr + (size_t)sk1 * kvd + 32 * s + 8 * c);
    }
#pragma unroll
    for (int d = 0; d < HD / 64; d++) {
        vw[0][d] = *(const uint4 *)(vb_ptr + (size_t)sv0 * kvd + 64 * d + 8 * g);
        vw[1][d] = *(const uint4 *)(vb_ptr + (size_t)sv1 * kvd + 64 * d + 8 * g);
        vw[2][d] = *(const uint4 *)(vb_ptr + (size_t)sv2 * kvd + 64 * d + 8 * g);
        vw[3][d] = *(const uint4 *)(vb_ptr + (size_t)sv3 * kvd + 64 * d + 8 * g);
    }
    /* S: sv[n][0, 1] row lo, keys kb + 8n + 2c, + 1; sv[n][2, 3] row hi */
    float sc[2][4];
#pragma unroll
    for (int n = 0; n < 2; n++) {
        sc[n][0] = sc[n][1] = sc[n][2] = sc[n][3] = 0.0f;
#pragma unroll
        for (int s = 0; s < HD / 32; s++) {
            tc_mma(sc[n], st.qa[2 * s], kw[n][s].x, kw[n][s].y);
            tc_mma(sc[n], st.qa[2 * s + 1], kw[n][s].z, kw[n][s].w);
        }
    }
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int n = 0; n < 2; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int32_t key = kb + 8 * n + 2 * c + (e & 1);
            if (key > (e < 2 ? lim_lo : lim_hi)) sc[n][e] = -INFINITY;
            mx[e >> 1] = fmaxf(mx[e >> 1], sc[n][e]);
        }
    float al[2], mu[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(full, mx[r], 1));
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(full, mx[r], 2));
        const float mn = fmaxf(st.m[r], mx[r]);
        mu[r] = mn == -INFINITY ? 0.0f : mn; /* no key of the row yet: p = 0, no NaN */
        al[r] = tc_exp2(st.m[r] - mu[r]);
        st.m[r] = mn;
    }
    float p[2][4];
#pragma unroll
    for (int n = 0; n < 2; n++)
#pragma unroll
        for (int e = 0; e < 4; e++)
            p[n][e] = tc_exp2(sc[n][e] - mu[e >> 1]);
    st.l[0] = st.l[0] * al[0] + ((p[0][0] + p[0][1]) + (p[1][0] + p[1][1]));
    st.l[1] = st.l[1] * al[1] + ((p[0][2] + p[0][3]) + (p[1][2] + p[1][3]));
    /* P as the A fragment: its k index is the key kb + k (S's layout, two n tiles) */
    const uint32_t pa[4] = {tc_pack(p[0][0], p[0][1]), tc_pack(p[0][2], p[0][3]),
                            tc_pack(p[1][0], p[1][1]), tc_pack(p[1][2], p[1][3])};
#pragma unroll
    for (int d = 0; d < HD / 64; d++)
#pragma unroll
        for (int j = 0; j < 8; j++) {
            const unsigned sel = j & 1 ? 0x7632u : 0x5410u;
            const uint32_t b0 =
                __byte_perm(tc_word(vw[0][d], j >> 1), tc_word(vw[1][d], j >> 1), sel);
            const uint32_t b1 =
                __byte_perm(tc_word(vw[2][d], j >> 1), tc_word(vw[3][d], j >> 1), sel);
            float(&oo)[4] = st.o[8 * d + j];
            oo[0] *= al[0], oo[1] *= al[0], oo[2] *= al[1], oo[3] *= al[1];
            tc_mma(oo, pa, b0, b1);
        }
}

/* the slot of key kb + lane % 16 (keys past kend: kend's) */
__device__ __forceinline__ int32_t tc_slot(const int32_t *slots, int32_t kb, int32_t kend) {
    const int32_t k = kb + (int32_t)(threadIdx.x & 15);
    return slots[k < kend ? k : kend];
}

/* the row sums of the lanes of a group added (every lane of the group gets them) */
template <int HD> __device__ __forceinline__ void tc_row_sums(tc_state<HD> &st) {
#pragma unroll
    for (int r = 0; r < 2; r++) {
        st.l[r] += __shfl_xor_sync(0xffffffffu, st.l[r], 1);
        st.l[r] += __shfl_xor_sync(0xffffffffu, st.l[r], 2);
    }
}

/* decode: block (token, kv head, split); rows 0 .. G - 1 of each warp are the group's heads */
template <int HD, int GM>
__global__ void __launch_bounds__(TC_WARPS * 32, 2)
    k_attn_tc_dec(const float *q, const __half *kc, const __half *vc, float *out, float *part,
                  int *done, sglc_batch_dev b, int n_head, int n_kv, float sc_log2, int n_splits) {
    __shared__ float s_m[TC_WARPS][GM], s_l[TC_WARPS][GM];
    __shared__ float s_acc[TC_WARPS][GM][HD];
    const int t = blockIdx.x, kvh = blockIdx.y, split = blockIdx.z;
    const int lane = threadIdx.x & 31, wp = threadIdx.x >> 5, g = lane >> 2, c = lane & 3;
    const int G = n_head / n_kv;
    cuda_pdl_wait();
    cuda_pdl_trigger();
    const int32_t ctx = b.pos[t] + 1;
    const int e0 = (ctx + TC_MIN_KEYS - 1) / TC_MIN_KEYS;
    const int eff = n_splits > 1 ? (e0 < n_splits ? e0 : n_splits) : 1;
    if (split >= eff) return;
    const int32_t chunk = (ctx + eff - 1) / eff;
    const int32_t s0 = split * chunk, s1 = min(ctx, s0 + chunk), kend = s1 - 1;
    const int32_t *slots = b.slot_table + b.seq_slot_start[b.seq[t]];
    const size_t kvd = (size_t)n_kv * HD;
    const float *qh = q + ((size_t)t * n_head + (size_t)kvh * G) * HD;
    tc_state<HD> st;
    tc_load_q<HD>(st, g < G ? qh + (size_t)g * HD : nullptr,
                  GM > 8 && g + 8 < G ? qh + (size_t)(g + 8) * HD : nullptr, sc_log2);
    const __half *kb_ptr = kc + (size_t)kvh * HD, *vb_ptr = vc + (size_t)kvh * HD;
    int32_t kb = s0 + 16 * wp;
    int32_t sl = kb < s1 ? tc_slot(slots, kb, kend) : 0;
    for (; kb < s1; kb += 16 * TC_WARPS) {
        const int32_t cur = sl;
        const int32_t nb = kb + 16 * TC_WARPS;
        if (nb < s1) sl = tc_slot(slots, nb, kend); /* a round ahead */
        tc_keys<HD>(st, kb_ptr, vb_ptr, kvd, cur, kb, kend, kend);
    }
    tc_row_sums<HD>(st);
    /* this warp's (max, sum, accumulators) of rows < G; the accumulator of dim
     * 64 d + 16 c + j (+ 8) is o[8 d + j][0] ([1]) for row lo, [2] ([3]) for hi */
    constexpr float LN2 = 0.6931471805599453f;
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int row = g + 8 * r;
        if (row >= G || row >= GM) continue;
        if (c == 0) s_m[wp][row] = st.m[r] * LN2, s_l[wp][row] = st.l[r];
#pragma unroll
        for (int d = 0; d < HD / 64; d++)
#pragma unroll
            for (int j = 0; j < 8; j++) {
                s_acc[wp][row][64 * d + 16 * c + j] = st.o[8 * d + j][2 * r];
                s_acc[wp][row][64 * d + 16 * c + 8 + j] = st.o[8 * d + j][2 * r + 1];
            }
    }
    ag_finish<HD, GM>(s_m, s_l, s_acc, out, part, done, t, kvh, split, eff, G, n_head, n_kv,
                      n_splits);
}

/* prefill (any step): block (4 warps x 16 / G tokens, kv head); a warp's row r is token
 * t0 + r / G, head r % G of the group */
template <int HD>
__global__ void __launch_bounds__(TC_WARPS * 32, 2)
    k_attn_tc_pre(const float *q, const __half *kc, const __half *vc, float *out, sglc_batch_dev b,
                  int n_head, int n_kv, float sc_log2) {
    const int lane = threadIdx.x & 31, wp = threadIdx.x >> 5, g = lane >> 2, c = lane & 3;
    const int G = n_head / n_kv, tpw = 16 / G, kvh = blockIdx.y;
    const int T = b.n_tokens;
    cuda_pdl_wait();
    cuda_pdl_trigger();
    const int t0 = ((int)blockIdx.x * TC_WARPS + wp) * tpw;
    if (t0 >= T) return;
    const int nt = min(tpw, T - t0);
    int tok[2], head[2];
    const float *qr[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int row = g + 8 * r;
        tok[r] = row / G < nt ? t0 + row / G : -1;
        head[r] = kvh * G + row % G;
        qr[r] = tok[r] >= 0 ? q + ((size_t)tok[r] * n_head + head[r]) * HD : nullptr;
    }
    tc_state<HD> st;
    tc_load_q<HD>(st, qr[0], qr[1], sc_log2);
    const size_t kvd = (size_t)n_kv * HD;
    const __half *kb_ptr = kc + (size_t)kvh * HD, *vb_ptr = vc + (size_t)kvh * HD;
    const int32_t seq_lo = tok[0] >= 0 ? b.seq[tok[0]] : -1,
                  seq_hi = tok[1] >= 0 ? b.seq[tok[1]] : -1;
    const int32_t pos_lo = tok[0] >= 0 ? b.pos[tok[0]] : -1,
                  pos_hi = tok[1] >= 0 ? b.pos[tok[1]] : -1;
    /* one pass per sequence among the warp's tokens (one, unless a sequence ends inside) */
    for (int i = 0; i < nt; i++) {
        const int32_t S = b.seq[t0 + i];
        bool seen = false;
        int32_t kend = -1;
        for (int j = 0; j < nt; j++) {
            if (b.seq[t0 + j] != S) continue;
            seen |= j < i;
            kend = max(kend, b.pos[t0 + j]);
        }
        if (seen) continue; /* taken with its first token */
        const int32_t *slots = b.slot_table + b.seq_slot_start[S];
        const int32_t lim_lo = seq_lo == S ? pos_lo : -1, lim_hi = seq_hi == S ? pos_hi : -1;
        int32_t sl = tc_slot(slots, 0, kend);
        for (int32_t kb = 0; kb <= kend; kb += 16) {
            const int32_t cur = sl;
            if (kb + 16 <= kend) sl = tc_slot(slots, kb + 16, kend);
            tc_keys<HD>(st, kb_ptr, vb_ptr, kvd, cur, kb, lim_lo, lim_hi);
        }
    }
    tc_row_sums<HD>(st);
#pragma unroll
    for (int r = 0; r < 2; r++) {
        if (tok[r] < 0) continue;
        float *o = out + ((size_t)tok[r] * n_head + head[r]) * HD;
        const float inv = st.l[r] > 0.0f ? 1.0f / st.l[r] : 0.0f;
#pragma unroll
        for (int d = 0; d < HD / 64; d++)
#pragma unroll
            for (int j = 0; j < 8; j++) {
                o[64 * d + 16 * c + j] = st.o[8 * d + j][2 * r] * inv;
                o[64 * d + 16 * c + 8 + j] = st.o[8 * d + j][2 * r + 1] * inv;
            }
    }
}

int cuda_attn_tc(cuda_impl *im, const sglc_batch *b, const sglc_batch_dev &db, const float *q,
                 const void *kc, const void *vc, float *out, const sglc_attn_params *p,
                 int splits) {
    const int G = p->n_head / p->n_head_kv, hd = p->head_dim;
    if ((hd != 64 && hd != 128) || G > 16) return 0;
    const float sc = p->scale * 1.4426950408889634f; /* log2(e): the kernels use exp2 */
    const __half *k = (const __half *)kc, *v = (const __half *)vc;
    if (!b->is_decode && b->n_tokens != b->n_seqs) {
        const int tpb = TC_WARPS * (16 / G);
        const dim3 grid((unsigned)((b->n_tokens + tpb - 1) / tpb), (unsigned)p->n_head_kv);
        if (hd == 64)
            cuda_launch(im, k_attn_tc_pre<64>, grid, dim3(TC_WARPS * 32), q, k, v, out, db,
                        (int)p->n_head, (int)p->n_head_kv, sc);
        else
            cuda_launch(im, k_attn_tc_pre<128>, grid, dim3(TC_WARPS * 32), q, k, v, out, db,
                        (int)p->n_head, (int)p->n_head_kv, sc);
        return 1;
    }
    const int gm = G <= 1 ? 1 : G <= 2 ? 2 : G <= 4 ? 4 : G <= 8 ? 8 : 16;
    const dim3 grid((unsigned)b->n_tokens, (unsigned)p->n_head_kv, (unsigned)splits);
#define TCD(D, GM)                                                                                 \
    case D * 100 + GM:                                                                             \
        cuda_launch(im, k_attn_tc_dec<D, GM>, grid, dim3(TC_WARPS * 32), q, k, v, out,             \
                    im->attn_part, im->attn_done, db, (int)p->n_head, (int)p->n_head_kv, sc,       \
                    splits);                                                                       \
        break
    switch (hd * 100 + gm) {
        TCD(64, 1);
        TCD(64, 2);
        TCD(64, 4);
        TCD(64, 8);
        TCD(64, 16);
        TCD(128, 1);
        TCD(128, 2);
        TCD(128, 4);
        TCD(128, 8);
        TCD(128, 16);
    default: SGLC_ASSERT(!"k_attn_tc_dec instance");
    }
#undef TCD
    return 1;
}
