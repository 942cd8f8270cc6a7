/* The sample op on the GPU: one block per logit row runs the pipeline of backend.h in
 * SGLang's order, as the engine runs it on the CPU (scheduler.c sample_row, sampler.c
 * sglc_sample): frequency/presence penalties from the counts, the repetition penalty over
 * tokens seen in the prompt or output, the logit-bias entries (in order, by one thread, so
 * repeated ids add up as on the CPU), the grammar mask; logprobs as log-softmax of those
 * logits; then greedy argmax (first on ties) or the draw.
 *
 * The draw without top-k / top-p walks the candidates (prob >= min-p floor, prob > 0) in id
 * order: a block-wide prefix sum in double finds the first id whose running sum exceeds
 * r = uniform * total. With top-k or top-p the walk is in probability-descending order, ties
 * by ascending id, which is never materialized: every cut is a threshold search over the
 * probabilities' float bits (positive floats order as their bits), 31 block-wide passes of
 * (count, sum) each, plus an id cutoff inside the tied group found by a counting scan. So the
 * op has no capacity limit and no scratch; probabilities are recomputed from the logits in each
 * pass (expf is cheap next to the bandwidth). The float operations that decide ids are the
 * CPU's (round-to-nearest intrinsics, sums in double); sums run in a different order, so an id
 * can differ from the CPU only when the draw lands within ~1e-15 of a boundary.
 *
 * The description is copied to the device per call (pinned staging); the op must run outside
 * begin_step / end_step (it is not part of a captured graph). */
#include "backend/cuda/cuda_impl.h"

#define SAMPLE_THREADS 512
#define KEY_INF 0x7f800000u

struct sample_ctx {
    const float *l;
    int V;
    float mx, temp;
    double sum; /* of the unnormalized exps */
    float floor_p;
};

/* probability of id i as the CPU computes it, 0 for non-candidates */
__device__ __forceinline__ float prob_of(const sample_ctx &c, int i) {
    const float e = expf(__fdiv_rn(__fsub_rn(c.l[i], c.mx), c.temp));
    const float p = (float)((double)e / c.sum);
    return p >= c.floor_p && p > 0.0f ? p : 0.0f;
}

__device__ __forceinline__ uint32_t key_of(float p) {
    return __float_as_uint(p); /* p >= 0: bits order as values; 0 for non-candidates */
}

struct cs_pair {
    int32_t n;
    double s;
};

/* count and sum of candidate probabilities whose key satisfies pred(key, id) */
template <class P>
__device__ cs_pair block_count_sum(const sample_ctx &c, P pred, int32_t *shi, double *shd) {
    int32_t n = 0;
    double s = 0.0;
    for (int i = threadIdx.x; i < c.V; i += blockDim.x) {
        const float p = prob_of(c, i);
        if (p > 0.0f && pred(key_of(p), i)) {
            n++;
            s += (double)p;
        }
    }
    cs_pair r;
    r.n = block_sum(n, shi);
    r.s = block_sum(s, shd);
    return r;
}

/* the nth (1-based) id, ascending, with pred(key, id); -1 when there are fewer */
template <class P>
__device__ int32_t block_nth_id(const sample_ctx &c, P pred, int32_t nth, int32_t *shi) {
    __shared__ int32_t found;
    const int chunk = (c.V + blockDim.x - 1) / blockDim.x;
    const int lo = threadIdx.x * chunk, hi = min(c.V, lo + chunk);
    int32_t n = 0;
    for (int i = lo; i < hi; i++) {
        const float p = prob_of(c, i);
        if (p > 0.0f && pred(key_of(p), i)) n++;
    }
    /* exclusive scan of the per-thread counts through shared memory */
    __shared__ int32_t cnt[SAMPLE_THREADS];
    if (threadIdx.x == 0) found = -1;
    cnt[threadIdx.x] = n;
    __syncthreads();
    if (threadIdx.x == 0) {
        int32_t run = 0;
        for (int t = 0; t < (int)blockDim.x; t++) {
            int32_t v = cnt[t];
            cnt[t] = run;
            run += v;
        }
    }
    __syncthreads();
    const int32_t before = cnt[threadIdx.x];
    if (before < nth && before + n >= nth) {
        int32_t k = before;
        for (int i = lo; i < hi; i++) {
            const float p = prob_of(c, i);
            if (p > 0.0f && pred(key_of(p), i) && ++k == nth) {
                found = i;
                break;
            }
        }
    }
    __syncthreads();
    (void)shi;
    return found;
}

/* the largest key v in [1, KEY_INF) with ok(v) true, given ok(1) true and ok monotone
 * (true up to some key, false after) */
template <class OK> __device__ uint32_t search_key(OK ok) {
    uint32_t lo = 1, hi = KEY_INF;
    while (hi - lo > 1) {
        const uint32_t mid = lo + (hi - lo) / 2;
        if (ok(mid))
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

struct arg_pair {
    float v;
    int32_t id;
};

/* (value desc, id asc) maximum among ids with value strictly after (pv, pid) in that order;
 * NaN never wins */
__device__ arg_pair block_argmax_after(const float *vals, float lz, int V, float pv, int32_t pid,
                                       arg_pair *sh) {
    arg_pair b = {-INFINITY, INT32_MAX};
    auto take = [&](float x, int i) {
        const float v = lz == 0.0f ? x : __fsub_rn(x, lz);
        if (!(v < pv || (v == pv && i > pid))) return;
        if (v > b.v || (v == b.v && i < b.id) || (b.id == INT32_MAX && v == -INFINITY)) b = {v, i};
    };
    /* float4 loads, four in flight per thread: one block walks a 150k vocabulary in a few us
     * (element by element it was latency-bound, about 60 us); the result does not depend on
     * the order (ties go to the smaller id) */
    int i0 = 0;
    if (((uintptr_t)vals & 15) == 0) {
        const float4 *v4 = (const float4 *)vals;
        const int n4 = V / 4;
#pragma unroll 4
        for (int j = threadIdx.x; j < n4; j += blockDim.x) {
            const float4 a = v4[j];
            take(a.x, 4 * j), take(a.y, 4 * j + 1), take(a.z, 4 * j + 2), take(a.w, 4 * j + 3);
        }
        i0 = n4 * 4;
    }
    for (int i = i0 + threadIdx.x; i < V; i += blockDim.x)
        take(vals[i], i);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        arg_pair q = {__shfl_xor_sync(0xffffffffu, b.v, o), __shfl_xor_sync(0xffffffffu, b.id, o)};
        if (q.v > b.v || (q.v == b.v && q.id < b.id)) b = q;
    }
    __syncthreads();
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = b;
    __syncthreads();
    arg_pair r = sh[0];
    for (int i = 1; i < (int)(blockDim.x >> 5); i++)
        if (sh[i].v > r.v || (sh[i].v == r.v && sh[i].id < r.id)) r = sh[i];
    return r;
}

struct sample_dev {
    const sglc_sample_row *rows;
    const int32_t *bias_ids;
    const float *bias;
    const uint32_t *masks;
    const int32_t *lp_ids;
    int32_t mask_words;
    int32_t *counts;
    const uint8_t *seen;
    int32_t pen_rows;
    sglc_sample_out out;
};

__global__ void __launch_bounds__(SAMPLE_THREADS) k_sample(float *logits, int32_t V, sample_dev d) {
    __shared__ int32_t shi[32];
    __shared__ double shd[32];
    __shared__ arg_pair sha[32];
    __shared__ int32_t picked;
    const int r = blockIdx.x, tid = threadIdx.x;
    const sglc_sample_row row = d.rows[r];
    float *l = logits + (size_t)r * (size_t)V;

    if (row.forced < 0) {
        const int pr =
            d.counts && row.penalty_row >= 0 && row.penalty_row < d.pen_rows ? row.penalty_row : -1;
        if (pr >= 0) {
            const int32_t *cn = d.counts + (size_t)pr * (size_t)V;
            const uint8_t *sn = d.seen ? d.seen + (size_t)pr * (size_t)V : NULL;
            const float fp = row.frequency_penalty, pp = row.presence_penalty,
                        rp = row.repetition_penalty;
            for (int i = tid; i < V; i += blockDim.x) {
                float v = l[i];
                const int32_t c = cn[i];
                if ((fp != 0.0f || pp != 0.0f) && c > 0)
                    v = __fsub_rn(v, __fadd_rn(__fmul_rn(fp, (float)c), pp));
                if (rp != 1.0f && (c > 0 || (sn && sn[i])))
                    v = v > 0.0f ? __fdiv_rn(v, rp) : __fmul_rn(v, rp);
                l[i] = v;
            }
        }
        __syncthreads();
        if (tid == 0)
            for (int i = 0; i < row.n_bias; i++) {
                const int32_t id = d.bias_ids[row.bias_start + i];
                if (id >= 0 && id < V) l[id] = __fadd_rn(l[id], d.bias[row.bias_start + i]);
            }
        __syncthreads();
        if (row.mask_row >= 0) {
            const uint32_t *mk = d.masks + (size_t)row.mask_row * (size_t)d.mask_words;
            for (int i = tid; i < V; i += blockDim.x)
                if (!((mk[i >> 5] >> (i & 31)) & 1u)) l[i] = -INFINITY;
        }
        __syncthreads();
    }

    /* the maximum (first on ties) of the processed logits */
    const arg_pair best = block_argmax_after(l, 0.0f, V, INFINITY, -1, sha);
    const float mx = best.v;
    int32_t id;
    const int greedy = row.temperature <= 0.0f || row.top_k == 1;
    if (row.forced >= 0) {
        id = row.forced;
    } else if (greedy) {
        id = best.id == INT32_MAX ? 0 : best.id;
    } else {
        sample_ctx c;
        c.l = l;
        c.V = V;
        c.mx = mx;
        c.temp = row.temperature;
        c.floor_p = 0.0f;
        double s = 0.0;
        for (int i = tid; i < V; i += blockDim.x)
            s += (double)expf(__fdiv_rn(__fsub_rn(l[i], mx), c.temp));
        c.sum = block_sum(s, shd);
        const float pmax = __fdiv_rn(1.0f, (float)c.sum);
        c.floor_p = row.min_p > 0.0f ? __fmul_rn(row.min_p, pmax) : 0.0f;
        auto all = [](uint32_t, int) { return true; };
        const cs_pair cand = block_count_sum(c, all, shi, shd);
        const int32_t m = cand.n;
        const int cut_k = row.top_k > 0 && row.top_k < m;
        const int sorted = cut_k || row.top_p < 1.0f;
        if (!sorted) {
            /* id order: the first id whose running sum exceeds r */
            const double rr = row.uniform * cand.s;
            const int chunk = (V + blockDim.x - 1) / blockDim.x;
            const int lo = tid * chunk, hi = min(V, lo + chunk);
            double my = 0.0;
            int32_t last = -1;
            for (int i = lo; i < hi; i++) {
                const float p = prob_of(c, i);
                if (p > 0.0f) {
                    my += (double)p;
                    last = i;
                }
            }
            __shared__ double base[SAMPLE_THREADS];
            __shared__ int32_t lasts[SAMPLE_THREADS];
            base[tid] = my;
            lasts[tid] = last;
            if (tid == 0) picked = INT32_MAX;
            __syncthreads();
            if (tid == 0) {
                double run = 0.0;
                int32_t fallback = -1;
                for (int t = 0; t < (int)blockDim.x; t++) {
                    const double v = base[t];
                    base[t] = run;
                    run += v;
                    if (lasts[t] >= 0) fallback = lasts[t];
                }
                lasts[0] = fallback; /* the last candidate overall */
            }
            __syncthreads();
            const double b0 = base[tid];
            if (rr < b0 + my && (tid == 0 || rr >= b0)) {
                double acc = b0;
                for (int i = lo; i < hi; i++) {
                    const float p = prob_of(c, i);
                    if (p <= 0.0f) continue;
                    acc += (double)p;
                    if (rr < acc) {
                        atomicMin(&picked, i);
                        break;
                    }
                }
            }
            __syncthreads();
            id = picked != INT32_MAX ? picked : lasts[0];
        } else {
            /* top-k: the K-th key and the id cutoff inside its tied group */
            const int32_t K = cut_k ? row.top_k : m;
            uint32_t vk = 0;
            int32_t idk = INT32_MAX;
            if (cut_k) {
                vk = search_key([&](uint32_t v) {
                    auto ge = [v](uint32_t k, int) { return k >= v; };
                    return block_count_sum(c, ge, shi, shd).n >= K;
                });
                auto gt = [vk](uint32_t k, int) { return k > vk; };
                const int32_t above = block_count_sum(c, gt, shi, shd).n;
                auto eq = [vk](uint32_t k, int) { return k == vk; };
                idk = block_nth_id(c, eq, K - above, shi);
            }
            auto kept_k = [vk, idk](uint32_t k, int i) { return k > vk || (k == vk && i <= idk); };
            /* top-p over the kept set in sorted order: the shortest prefix reaching top_p */
            uint32_t vp = 0;
            int32_t idp = INT32_MAX;
            if (row.top_p < 1.0f) {
                const double tp = (double)row.top_p;
                const cs_pair tot = block_count_sum(c, kept_k, shi, shd);
                if (tot.s >= tp || row.top_p <= 0.0f) {
                    vp = search_key([&](uint32_t v) {
                        auto ge = [v, kept_k](uint32_t k, int i) { return k >= v && kept_k(k, i); };
                        const cs_pair q = block_count_sum(c, ge, shi, shd);
                        return q.n > 0 && (q.s >= tp || tp <= 0.0);
                    });
                    auto gt = [vp, kept_k](uint32_t k, int i) { return k > vp && kept_k(k, i); };
                    const double G = block_count_sum(c, gt, shi, shd).s;
                    auto eq = [vp, kept_k](uint32_t k, int i) { return k == vp && kept_k(k, i); };
                    const int32_t n_eq = block_count_sum(c, eq, shi, shd).n;
                    const double u = (double)__uint_as_float(vp);
                    int32_t j = 1; /* items of the tied group kept */
                    while (j < n_eq && G + (double)j * u < tp)
                        j++;
                    idp = block_nth_id(c, eq, j, shi);
                }
            }
            auto kept = [kept_k, vp, idp](uint32_t k, int i) {
                return kept_k(k, i) && (k > vp || (k == vp && i <= idp));
            };
            const cs_pair tot = block_count_sum(c, kept, shi, shd);
            const double rr = row.uniform * tot.s;
            /* the walk: the group whose cumulative sum first exceeds r, then the item in it */
            auto F_gt_r = [&](uint32_t v) {
                auto ge = [v, kept](uint32_t k, int i) { return k >= v && kept(k, i); };
                return block_count_sum(c, ge, shi, shd).s > rr;
            };
            if (!F_gt_r(1)) {
                /* r at or past the total (rounding): the last item in sorted order */
                const uint32_t vmin = search_key([&](uint32_t v) {
                    auto lt = [v, kept](uint32_t k, int i) { return k < v && kept(k, i); };
                    return block_count_sum(c, lt, shi, shd).n == 0;
                });
                auto eq = [vmin, kept](uint32_t k, int i) { return k == vmin && kept(k, i); };
                const int32_t n_eq = block_count_sum(c, eq, shi, shd).n;
                id = block_nth_id(c, eq, n_eq, shi);
            } else {
                const uint32_t vu = search_key(F_gt_r);
                auto gt = [vu, kept](uint32_t k, int i) { return k > vu && kept(k, i); };
                const double G = block_count_sum(c, gt, shi, shd).s;
                auto eq = [vu, kept](uint32_t k, int i) { return k == vu && kept(k, i); };
                const int32_t n_eq = block_count_sum(c, eq, shi, shd).n;
                const double u = (double)__uint_as_float(vu);
                int32_t j = 1;
                while (j < n_eq && !(rr < G + (double)j * u))
                    j++;
                id = block_nth_id(c, eq, j, shi);
            }
            if (id < 0) id = best.id == INT32_MAX ? 0 : best.id;
        }
    }

    if (tid == 0) {
        d.out.ids[r] = id;
        if (row.forced < 0 && d.counts && row.penalty_row >= 0 && row.penalty_row < d.pen_rows)
            d.counts[(size_t)row.penalty_row * (size_t)V + (size_t)id]++;
    }
    if (!row.want_logprob) return;
    /* log-softmax of the processed logits (before temperature), as scheduler.c row_logprobs */
    double z = 0.0;
    for (int i = tid; i < V; i += blockDim.x)
        z += exp((double)__fsub_rn(l[i], mx));
    z = block_sum(z, shd);
    const float lz = __fadd_rn(mx, (float)log(z));
    if (tid == 0) d.out.logprob[r] = __fsub_rn(l[id], lz);
    int32_t *tid_out = d.out.top_ids + (size_t)r * SGLC_SAMPLE_TOP_MAX;
    float *tlp_out = d.out.top_lp + (size_t)r * SGLC_SAMPLE_TOP_MAX;
    float pv = INFINITY;
    int32_t pid = -1;
    const int n_top = min(row.top_logprobs, SGLC_SAMPLE_TOP_MAX);
    for (int j = 0; j < n_top; j++) {
        /* ordered by logprob (l - lz rounded), ties by id, as the CPU's insertion */
        const arg_pair a = block_argmax_after(l, lz, V, pv, pid, sha);
        if (tid == 0) {
            const int none = a.id == INT32_MAX || a.v == -INFINITY; /* as the CPU's list */
            tid_out[j] = none ? -1 : a.id;
            tlp_out[j] = none ? -INFINITY : a.v;
        }
        pv = a.v;
        pid = a.id;
    }
    if (tid < row.n_ids && tid < SGLC_SAMPLE_IDS_MAX) {
        const int32_t q = d.lp_ids[row.ids_start + tid];
        d.out.ids_lp[(size_t)r * SGLC_SAMPLE_IDS_MAX + tid] =
            q >= 0 && q < V ? __fsub_rn(l[q], lz) : -INFINITY;
    }
}

void cuda_sample(sglc_backend *be, float *logits, int32_t n_vocab, const sglc_sample_desc *d,
                 const sglc_penalty_tables *pen, const sglc_sample_out *out) {
    cuda_impl *im = cuda_impl_of(be);
    /* not part of a captured step (see the file comment) */
    SGLC_ASSERT(im->mode == CUDA_MODE_EAGER);
    if (d->n_rows <= 0) return;
    const int32_t mask_words = (n_vocab + 31) / 32;
    const size_t rows_b = (size_t)d->n_rows * sizeof(sglc_sample_row);
    const size_t bias_b = (size_t)d->n_bias_total * 4, lp_b = (size_t)d->n_lp_ids_total * 4;
    const size_t mask_b = d->masks ? (size_t)d->n_mask_rows * (size_t)mask_words * 4 : 0;
    size_t off = 0;
    const size_t o_rows = off;
    off += (rows_b + 255) & ~(size_t)255;
    const size_t o_bid = off;
    off += (bias_b + 255) & ~(size_t)255;
    const size_t o_bias = off;
    off += (bias_b + 255) & ~(size_t)255;
    const size_t o_lp = off;
    off += (lp_b + 255) & ~(size_t)255;
    const size_t o_mask = off;
    off += (mask_b + 255) & ~(size_t)255;
    size_t cap = im->sx.cap;
    while (cap < off)
        cap = cap ? 2 * cap : (size_t)1 << 20;
    const cuda_xfer_part parts[] = {
        {d->rows, o_rows, rows_b},
        {d->bias_ids, o_bid, d->bias_ids ? bias_b : 0},
        {d->bias, o_bias, d->bias ? bias_b : 0},
        {d->lp_ids, o_lp, d->lp_ids ? lp_b : 0},
        {d->masks, o_mask, mask_b},
    };
    if (cuda_xfer_send(im, &im->sx, cap, parts, (int)(sizeof parts / sizeof parts[0]))) return;
    const uint8_t *base = (const uint8_t *)im->sx.dev;
    sample_dev sd;
    sd.rows = (const sglc_sample_row *)(base + o_rows);
    sd.bias_ids = (const int32_t *)(base + o_bid);
    sd.bias = (const float *)(base + o_bias);
    sd.lp_ids = (const int32_t *)(base + o_lp);
    sd.masks = (const uint32_t *)(base + o_mask);
    sd.mask_words = mask_words;
    sd.counts = pen ? pen->counts : NULL;
    sd.seen = pen ? pen->seen : NULL;
    sd.pen_rows = pen ? pen->n_rows : 0;
    sd.out = *out;
    k_sample<<<(unsigned)d->n_rows, SAMPLE_THREADS, 0, im->stream>>>(logits, n_vocab, sd);
    CUDA_LAUNCHED(im, "sample kernel");
}
