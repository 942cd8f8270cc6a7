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

int32_t sglc_sample(sglc_sampler *s, const float *logits, const sglc_sampling_params *p,
                    sglc_rng *rng) {
    int32_t n = s->n_vocab;
    if (p->temperature <= 0.0f || p->top_k == 1) return sglc_argmax(logits, n);
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
    double r = sglc_rng_uniform(rng) * total, acc = 0.0;
    for (int32_t i = 0; i < m; i++) {
        acc += s->prob[s->idx[i]];
        if (r < acc) return s->idx[i];
    }
    return s->idx[m - 1];
}
