/* Sampling pipeline, in SGLang's order: temperature, then top-k, top-p and min-p filters on the
 * softmax, then one draw from the renormalized distribution. The random generator is
 * xoshiro256** seeded through splitmix64, so every 64-bit seed is valid and reproducible. */
#include "engine/sampler.h"

#include <math.h>
#include <stdlib.h>

void sglc_sampling_params_default(sglc_sampling_params *p) {
    p->temperature = 0.0f;
    p->top_k = -1;
    p->top_p = 1.0f;
    p->min_p = 0.0f;
    p->seed = 0;
}

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void sglc_rng_seed(sglc_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

uint64_t sglc_rng_next(sglc_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double sglc_rng_uniform(sglc_rng *r) {
    return (double)(sglc_rng_next(r) >> 11) * 0x1.0p-53;
}

int sglc_sampler_init(sglc_sampler *s, int32_t n_vocab) {
    s->n_vocab = n_vocab;
    s->idx = malloc((size_t)n_vocab * sizeof *s->idx);
    s->prob = malloc((size_t)n_vocab * sizeof *s->prob);
    if (!s->idx || !s->prob) {
        sglc_sampler_free(s);
        return -1;
    }
    return 0;
}

void sglc_sampler_free(sglc_sampler *s) {
    free(s->idx);
    free(s->prob);
    s->idx = NULL;
    s->prob = NULL;
}

int32_t sglc_argmax(const float *logits, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (logits[i] > logits[best]) best = i;
    return best;
}

void sglc_apply_logit_bias(float *logits, int32_t n_vocab, const int32_t *ids, const float *bias,
                           int32_t n) {
    for (int32_t i = 0; i < n; i++)
        if (ids[i] >= 0 && ids[i] < n_vocab) logits[ids[i]] += bias[i];
}

/* Orders token ids by probability descending (prob indexed by token id), ids ascending on ties. */
static int cmp_desc(const void *a, const void *b, void *vprob) {
    const float *prob = vprob;
    float pa = prob[*(const int32_t *)a], pb = prob[*(const int32_t *)b];
    if (pa > pb) return -1;
    if (pa < pb) return 1;
    return *(const int32_t *)a - *(const int32_t *)b;
}

int sglc_sample_draws(const sglc_sampling_params *p) {
    return p->temperature > 0.0f && p->top_k != 1;
}

int32_t sglc_sample(sglc_sampler *s, const float *logits, const sglc_sampling_params *p,
                    sglc_rng *rng) {
    if (!sglc_sample_draws(p)) return sglc_argmax(logits, s->n_vocab);
    return sglc_sample_u(s, logits, p, sglc_rng_uniform(rng));
}

int32_t sglc_sample_u(sglc_sampler *s, const float *logits, const sglc_sampling_params *p,
                      double u) {
    int32_t n = s->n_vocab;
    if (!sglc_sample_draws(p)) return sglc_argmax(logits, n);
    float mx = logits[sglc_argmax(logits, n)];
    double sum = 0.0;
    for (int32_t i = 0; i < n; i++) {
        s->prob[i] = expf((logits[i] - mx) / p->temperature);
        sum += s->prob[i];
    }
    for (int32_t i = 0; i < n; i++)
        s->prob[i] = (float)(s->prob[i] / sum);

    /* Candidates: min-p and top-k cut the set before sorting so the sort stays small. */
    float pmax = 1.0f / (float)sum; /* probability of the argmax */
    float floor_p = p->min_p > 0.0f ? p->min_p * pmax : 0.0f;
    int32_t m = 0;
    for (int32_t i = 0; i < n; i++)
        if (s->prob[i] >= floor_p && s->prob[i] > 0.0f) s->idx[m++] = i;
    /* Only top-k and top-p need the candidates in probability order; without them the draw
     * walks the candidates in id order (the same distribution), sparing a sort of up to the
     * whole vocabulary (a few ms) on every sampled token. */
    int cut_k = p->top_k > 0 && p->top_k < m;
    if (cut_k || p->top_p < 1.0f) qsort_r(s->idx, (size_t)m, sizeof *s->idx, cmp_desc, s->prob);
    if (cut_k) m = p->top_k;
    if (p->top_p < 1.0f) {
        double cum = 0.0;
        int32_t keep = 0;
        while (keep < m) {
            cum += s->prob[s->idx[keep]];
            keep++;
            if (cum >= p->top_p) break;
        }
        m = keep;
    }
    double total = 0.0;
    for (int32_t i = 0; i < m; i++)
        total += s->prob[s->idx[i]];
    double r = u * total, acc = 0.0;
    for (int32_t i = 0; i < m; i++) {
        acc += s->prob[s->idx[i]];
        if (r < acc) return s->idx[i];
    }
    return s->idx[m - 1];
}

/* log-softmax normalizer of logits[n] (the log of the sum of exp), in double as SGLang's
 * float32 log_softmax is close to */
static float log_normalizer(const float *logits, int32_t n) {
    float mx = logits[sglc_argmax(logits, n)];
    double z = 0.0;
    for (int32_t t = 0; t < n; t++)
        z += exp((double)(logits[t] - mx));
    return mx + (float)log(z);
}

/* the k most likely tokens of logits, descending (the first id on ties), as log-probabilities */
static void top_logprobs(const float *logits, int32_t n, float lz, int32_t k, int32_t *ids,
                         float *lps) {
    for (int32_t j = 0; j < k; j++) {
        ids[j] = -1;
        lps[j] = -INFINITY;
    }
    for (int32_t t = 0; t < n && k > 0; t++) {
        float lp = logits[t] - lz;
        if (lp <= lps[k - 1]) continue;
        int32_t j = k - 1;
        while (j > 0 && lps[j - 1] < lp) {
            ids[j] = ids[j - 1];
            lps[j] = lps[j - 1];
            j--;
        }
        ids[j] = t;
        lps[j] = lp;
    }
}

/* Penalties, bias and mask of one row, in place (backend.h's order). */
static void process_row(float *lg, int32_t V, const sglc_sample_row *p, const sglc_sample_desc *d,
                        const sglc_penalty_tables *pen) {
    if (p->penalty_row >= 0 && pen) {
        const int32_t *counts = pen->counts + (size_t)p->penalty_row * (size_t)V;
        const uint8_t *seen = pen->seen + (size_t)p->penalty_row * (size_t)V;
        if (p->frequency_penalty != 0.0f || p->presence_penalty != 0.0f)
            for (int32_t t = 0; t < V; t++)
                if (counts[t] > 0)
                    lg[t] -= p->frequency_penalty * (float)counts[t] + p->presence_penalty;
        if (p->repetition_penalty != 1.0f)
            for (int32_t t = 0; t < V; t++)
                if (counts[t] > 0 || seen[t])
                    lg[t] =
                        lg[t] > 0 ? lg[t] / p->repetition_penalty : lg[t] * p->repetition_penalty;
    }
    if (p->n_bias > 0)
        sglc_apply_logit_bias(lg, V, d->bias_ids + p->bias_start, d->bias + p->bias_start,
                              p->n_bias);
    if (p->mask_row >= 0) {
        const uint32_t *m = d->masks + (size_t)p->mask_row * (size_t)((V + 31) / 32);
        for (int32_t w = 0; w < (V + 31) / 32; w++) {
            if (m[w] == 0xFFFFFFFFu) continue;
            for (int32_t k = 0; k < 32 && w * 32 + k < V; k++)
                if (!((m[w] >> k) & 1u)) lg[w * 32 + k] = -INFINITY;
        }
    }
}

void sglc_sample_rows_ref(sglc_sampler *s, float *logits, int32_t n_vocab,
                          const sglc_sample_desc *d, const sglc_penalty_tables *pen,
                          const sglc_sample_out *out) {
    const int32_t V = n_vocab;
    for (int32_t r = 0; r < d->n_rows; r++) {
        const sglc_sample_row *p = &d->rows[r];
        float *lg = logits + (size_t)r * (size_t)V;
        int32_t tok = p->forced;
        if (tok < 0) {
            process_row(lg, V, p, d, pen);
            tok = sglc_sample_u(s, lg,
                                &(sglc_sampling_params){.temperature = p->temperature,
                                                        .top_k = p->top_k,
                                                        .top_p = p->top_p,
                                                        .min_p = p->min_p},
                                p->uniform);
            if (p->penalty_row >= 0 && pen)
                pen->counts[(size_t)p->penalty_row * (size_t)V + (size_t)tok]++;
        }
        out->ids[r] = tok;
        if (!p->want_logprob) continue;
        float lz = log_normalizer(lg, V);
        out->logprob[r] = lg[tok] - lz;
        top_logprobs(lg, V, lz, p->top_logprobs, out->top_ids + (size_t)r * SGLC_SAMPLE_TOP_MAX,
                     out->top_lp + (size_t)r * SGLC_SAMPLE_TOP_MAX);
        float *ids_lp = out->ids_lp + (size_t)r * SGLC_SAMPLE_IDS_MAX;
        for (int32_t j = 0; j < p->n_ids; j++)
            ids_lp[j] = lg[d->lp_ids[p->ids_start + j]] - lz;
    }
}
