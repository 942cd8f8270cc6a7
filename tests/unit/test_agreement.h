/* Greedy agreement of two ways of running one model on the 50 golden chat prompts, shared by
 * the tests that compare a configuration against the CPU's (test_gpu_model: the CUDA device;
 * test_tp_model: tensor parallelism). The reference runs free (greedy); the other is
 * teacher-forced along the reference's tokens, as test_model_golden measures the CPU against
 * llama.cpp, so one flip does not derail the rest of a prompt. */
#ifndef SGLC_TEST_AGREEMENT_H
#define SGLC_TEST_AGREEMENT_H

#include <math.h>

#include "sglc.h"
#include "engine/sampler.h"
#include "engine/session.h"
#include "model/model.h"
#include "test_util.h"

#define AGREE_NP 50
#define AGREE_GEN 32

/* Greedy continuations of every prompt (free-running), or, with forced, the argmax at each step
 * along the forced tokens (teacher-forced); margins (top1 - top2) and the logits after each
 * prompt ([AGREE_NP][V], for the largest difference) when asked. Returns the vocabulary size,
 * or -1. */
static inline int test_greedy_all(const sglc_model_load_params *lp,
                                  int32_t (*prompt)[TEST_PROMPT_CAP], const int *plen,
                                  int32_t forced[AGREE_NP][AGREE_GEN],
                                  int32_t out[AGREE_NP][AGREE_GEN],
                                  float margin[AGREE_NP][AGREE_GEN], float *first_logits) {
    sglc_err err = {{0}};
    sglc_backend *be = NULL;
    sglc_model *m = NULL;
    sglc_session *s = NULL;
    if (sglc_model_load(&be, &m, lp, &err) != 0 || sglc_session_open(&s, m, 512, 512, &err)) {
        fprintf(stderr, "%s on %s (tp %d): %s\n", lp->path, lp->device, lp->tp_size, err.msg);
        sglc_model_close(m);
        sglc_backend_close(be);
        return -1;
    }
    int32_t V = m->cfg.n_vocab;
    if (first_logits && V > (1 << 18)) V = -1; /* larger than the caller's buffers */
    for (int i = 0; V > 0 && i < AGREE_NP; i++) {
        sglc_session_reset(s);
        const float *l = NULL;
        CHECK(sglc_session_eval(s, prompt[i], plen[i], &l, NULL, &err) == 0);
        if (l && first_logits) memcpy(first_logits + (size_t)i * V, l, (size_t)V * sizeof(float));
        for (int k = 0; k < AGREE_GEN && l; k++) {
            out[i][k] = sglc_argmax(l, V);
            if (margin) {
                float a = -INFINITY, b = -INFINITY;
                for (int32_t t = 0; t < V; t++)
                    if (l[t] > a)
                        b = a, a = l[t];
                    else if (l[t] > b)
                        b = l[t];
                margin[i][k] = a - b;
            }
            const int32_t next = forced ? forced[i][k] : out[i][k];
            if (k + 1 < AGREE_GEN) CHECK(sglc_session_eval(s, &next, 1, &l, NULL, &err) == 0);
        }
    }
    sglc_session_close(s);
    sglc_model_close(m);
    sglc_backend_close(be);
    return V;
}

typedef struct {
    int tokens, exact; /* tokens that agree (of AGREE_NP * AGREE_GEN), prompts all of whose agree */
    float worst_margin;    /* the reference's largest top-1 margin where they disagree */
    double max_logit_diff; /* the largest logit difference after the prompts */
} test_agreement_result;

/* The reference's greedy tokens against the other configuration's argmax along them: prints
 * every prompt's first disagreement with the reference's margin there and one summary line
 * (what names the pair); returns -1 when either could not run. */
static inline int test_agreement(const sglc_model_load_params *ref,
                                 const sglc_model_load_params *other,
                                 int32_t (*prompt)[TEST_PROMPT_CAP], const int *plen,
                                 const char *what, test_agreement_result *res) {
    static int32_t a[AGREE_NP][AGREE_GEN], b[AGREE_NP][AGREE_GEN];
    static float margin[AGREE_NP][AGREE_GEN];
    memset(res, 0, sizeof *res);
    /* room for vocabularies of up to 2^18 */
    float *la = malloc((size_t)AGREE_NP << 20), *lb = malloc((size_t)AGREE_NP << 20);
    int V = -1;
    if (!la || !lb || (V = test_greedy_all(ref, prompt, plen, NULL, a, margin, la)) <= 0 ||
        test_greedy_all(other, prompt, plen, a, b, NULL, lb) <= 0) {
        free(la), free(lb);
        return -1;
    }
    for (int i = 0; i < AGREE_NP; i++) {
        int all = 1;
        for (int k = 0; k < AGREE_GEN; k++) {
            if (a[i][k] == b[i][k]) {
                res->tokens++;
                continue;
            }
            if (all)
                fprintf(stderr,
                        "%s prompt %d: first disagreement at token %d (%d vs %d), reference "
                        "margin %.4f\n",
                        what, i, k, a[i][k], b[i][k], margin[i][k]);
            all = 0;
            if (margin[i][k] > res->worst_margin) res->worst_margin = margin[i][k];
        }
        res->exact += all;
    }
    for (size_t j = 0; j < (size_t)AGREE_NP * (size_t)V; j++) {
        double d = fabs((double)la[j] - (double)lb[j]);
        if (d > res->max_logit_diff) res->max_logit_diff = d;
    }
    fprintf(stderr,
            "%s: %d/%d tokens agree (teacher-forced), %d/%d prompts exactly; largest reference "
            "margin at a disagreement %.4f; largest logit difference after the prompts %.6f\n",
            what, res->tokens, AGREE_NP * AGREE_GEN, res->exact, AGREE_NP, res->worst_margin,
            res->max_logit_diff);
    free(la), free(lb);
    return 0;
}

/* n (<= 64) concurrent greedy requests of gen tokens (eos ignored) on an engine opened with
 * ep: request i is the first len[i] ids of prompt[i]; with alone, each waits for the one before
 * (a batch of one). Output ids into out [n][gen]. 0, or -1 when the engine did not open. */
static inline int test_engine_greedy(const sglc_engine_params *ep,
                                     const int32_t (*prompt)[TEST_PROMPT_CAP], const int *len,
                                     int n, int gen, int alone, int32_t *out) {
    SGLC_ASSERT(n <= 64);
    sglc_engine *e = NULL;
    char err[512];
    if (sglc_engine_open(&e, ep, err, sizeof err) != 0) {
        CHECKF(0, "engine: %s", err);
        return -1;
    }
    sglc_request_params rp;
    sglc_request_params_default(&rp);
    rp.temperature = 0.0f;
    rp.max_new_tokens = gen;
    rp.ignore_eos = 1;
    sglc_request *rq[64] = {0};
    for (int i = 0; i < n; i++) {
        CHECKF(sglc_engine_submit(e, prompt[i], len[i], &rp, NULL, &rq[i], err, sizeof err) == 0,
               "%s", err);
        if (alone && rq[i]) {
            sglc_output o;
            do
                sglc_request_wait(rq[i], INT32_MAX, &o, -1);
            while (!o.finished);
        }
    }
    for (int i = 0; i < n; i++) {
        if (!rq[i]) continue;
        sglc_output o;
        do
            sglc_request_wait(rq[i], INT32_MAX, &o, -1);
        while (!o.finished);
        CHECK(o.n_output == gen);
        memcpy(out + (size_t)i * (size_t)gen, o.output_ids, sizeof(int32_t) * (size_t)gen);
        sglc_request_release(rq[i]);
    }
    sglc_engine_close(e);
    return 0;
}

#endif
