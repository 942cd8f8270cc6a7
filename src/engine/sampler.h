/* Token sampling from logits: greedy, temperature, top-k, top-p, min-p, with a seeded
 * per-request random generator so the same seed, prompt and parameters give the same output.
 * The engine (issue 5) adds penalties and logprobs on top of this; logit bias is applied here
 * (sglc_apply_logit_bias) so that greedy and sampled requests, and logprobs, all see it. */
#ifndef SGLC_ENGINE_SAMPLER_H
#define SGLC_ENGINE_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"

typedef struct {
    float temperature; /* 0 = greedy */
    int32_t top_k;     /* <= 0 or -1 = off */
    float top_p;       /* 1 = off */
    float min_p;       /* 0 = off */
    uint64_t seed;
} sglc_sampling_params;

void sglc_sampling_params_default(sglc_sampling_params *p);

typedef struct {
    uint64_t s[4];
} sglc_rng;

void sglc_rng_seed(sglc_rng *r, uint64_t seed);
uint64_t sglc_rng_next(sglc_rng *r);
double sglc_rng_uniform(sglc_rng *r); /* [0, 1) */

/* Scratch for one sampler: sized for the vocabulary once, reused for every token. */
typedef struct {
    int32_t n_vocab;
    int32_t *idx;
    float *prob;
} sglc_sampler;

int sglc_sampler_init(sglc_sampler *s, int32_t n_vocab);
void sglc_sampler_free(sglc_sampler *s);

/* Index of the largest logit (the first one on ties, as llama.cpp's greedy sampler). */
int32_t sglc_argmax(const float *logits, int32_t n);

/* Adds bias[i] to logits[ids[i]] (OpenAI / SGLang logit_bias); the engine calls it after the
 * penalties and before sampling or greedy, so logprobs reflect the bias as in SGLang. Ids
 * outside [0, n_vocab) are skipped (the engine rejects them at submit); a repeated id adds up. */
void sglc_apply_logit_bias(float *logits, int32_t n_vocab, const int32_t *ids, const float *bias,
                           int32_t n);

/* Draws the next token from logits[n_vocab] (not modified). */
int32_t sglc_sample(sglc_sampler *s, const float *logits, const sglc_sampling_params *p,
                    sglc_rng *rng);
/* 1 when sglc_sample draws a random number for p (temperature > 0 and top_k != 1): the engine
 * draws the sample op's uniform from the request's generator exactly then. */
int sglc_sample_draws(const sglc_sampling_params *p);
/* sglc_sample with the draw given: u in [0, 1) (what sglc_rng_uniform returned). */
int32_t sglc_sample_u(sglc_sampler *s, const float *logits, const sglc_sampling_params *p,
                      double u);

/* The sample op's reference (backend.h), over host memory: every row of d from logits
 * [d->n_rows][n_vocab] (overwritten by the processing), into out's host arrays; pen (NULL
 * when no row has penalties) is updated with the picked ids. The CPU backends run it as their
 * sample op; device backends are tested against it. s is sized for n_vocab. */
void sglc_sample_rows_ref(sglc_sampler *s, float *logits, int32_t n_vocab,
                          const sglc_sample_desc *d, const sglc_penalty_tables *pen,
                          const sglc_sample_out *out);

#endif
