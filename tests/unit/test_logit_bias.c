/* logit_bias (issue 6): the sampler adds the bias before greedy and sampled draws; the engine
 * copies the map at submit, rejects ids outside the vocabulary, non-finite values and too many
 * entries, applies it on every step, and reports logprobs of the biased distribution. Also the
 * latency histograms the scheduler fills as requests finish. */
#include <math.h>
#include <stdint.h>
#include <unistd.h>

#include "engine/sampler.h"
#include "sglc.h"
#include "test_util.h"

static void test_sampler(void) {
    enum { V = 50 };
    float logits[V];
    for (int i = 0; i < V; i++)
        logits[i] = (float)(i % 7) * 0.5f; /* argmax: token 6 (first of the 3.0s) */
    sglc_sampler s;
    CHECK(sglc_sampler_init(&s, V) == 0);
    sglc_sampling_params greedy;
    sglc_sampling_params_default(&greedy);
    sglc_rng rng;
    sglc_rng_seed(&rng, 1);
    CHECK(sglc_sample(&s, logits, &greedy, &rng) == 6);

    /* -100 on the argmax: the next best (13, the second 3.0) wins */
    float l2[V];
    memcpy(l2, logits, sizeof l2);
    int32_t ids[] = {6};
    float neg[] = {-100.0f};
    sglc_apply_logit_bias(l2, V, ids, neg, 1);
    CHECK(l2[6] == logits[6] - 100.0f);
    CHECK(sglc_sample(&s, l2, &greedy, &rng) == 13);

    /* +100 on a low token: greedy and sampled draws both take it */
    memcpy(l2, logits, sizeof l2);
    int32_t low[] = {0};
    float pos[] = {100.0f};
    sglc_apply_logit_bias(l2, V, low, pos, 1);
    CHECK(sglc_sample(&s, l2, &greedy, &rng) == 0);
    sglc_sampling_params hot = greedy;
    hot.temperature = 1.0f;
    for (int k = 0; k < 50; k++)
        CHECK(sglc_sample(&s, l2, &hot, &rng) == 0);

    /* ids outside the vocabulary are skipped, repeated ids add up, other logits untouched */
    memcpy(l2, logits, sizeof l2);
    int32_t odd[] = {-1, V, 3, 3};
    float b[] = {5.0f, 5.0f, 1.5f, 2.0f};
    sglc_apply_logit_bias(l2, V, odd, b, 4);
    for (int i = 0; i < V; i++)
        CHECK(l2[i] == (i == 3 ? logits[3] + 3.5f : logits[i]));
    sglc_sampler_free(&s);
}

static sglc_engine *g_e;

/* Greedy ids for a fixed prompt under p; returns how many. */
static int32_t run(const sglc_request_params *p, int32_t *ids, float *lps, int32_t cap) {
    static const int32_t prompt[] = {1,    4093, 198, 1780, 314, 260, 3575, 282,
                                     4649, 47,   2,   198,  1,   520, 9531, 198};
    char err[512];
    sglc_request *r = NULL;
    int rc = sglc_engine_submit(g_e, prompt, (int32_t)(sizeof prompt / sizeof prompt[0]), p, NULL,
                                &r, err, sizeof err);
    CHECKF(rc == 0, "%s", err);
    if (rc != 0) return 0;
    sglc_output o;
    do
        sglc_request_wait(r, INT32_MAX, &o, -1);
    while (!o.finished);
    int32_t n = o.n_output < cap ? o.n_output : cap;
    memcpy(ids, o.output_ids, (size_t)n * sizeof(int32_t));
    if (lps && o.logprobs) memcpy(lps, o.logprobs, (size_t)n * sizeof(float));
    sglc_request_release(r);
    return n;
}

static void test_engine(void) {
    sglc_request_params p;
    sglc_request_params_default(&p);
    p.temperature = 0.0f;
    p.max_new_tokens = 6;
    p.ignore_eos = 1;
    int32_t base[8], out[8];
    float lps[8];
    int32_t n = run(&p, base, NULL, 8);
    CHECK(n == 6);

    /* -100 on the greedy first token: something else comes first */
    int32_t ban_ids[] = {base[0]};
    float ban[] = {-100.0f};
    p.logit_bias_ids = ban_ids;
    p.logit_bias = ban;
    p.n_logit_bias = 1;
    CHECK(run(&p, out, NULL, 8) == 6 && out[0] != base[0]);

    /* +100 on a token: every step takes it, and its logprob is about 0 */
    int32_t force_ids[] = {base[0] == 1000 ? 1001 : 1000};
    float force[] = {100.0f};
    p.logit_bias_ids = force_ids;
    p.logit_bias = force;
    p.return_logprob = 1;
    CHECK(run(&p, out, lps, 8) == 6);
    for (int i = 0; i < 6; i++) {
        CHECK(out[i] == force_ids[0]);
        CHECK(lps[i] > -0.01f && lps[i] <= 0.0f);
    }
    p.return_logprob = 0;

    /* the engine keeps its own copy: changing the caller's array after submit has no effect */
    {
        static const int32_t pr[] = {1, 4093, 198};
        int32_t mut_ids[] = {force_ids[0]};
        float mut[] = {100.0f};
        p.logit_bias_ids = mut_ids;
        p.logit_bias = mut;
        char err[256];
        sglc_request *r = NULL;
        CHECK(sglc_engine_submit(g_e, pr, 3, &p, NULL, &r, err, sizeof err) == 0);
        mut_ids[0] = 0;
        mut[0] = -100.0f;
        sglc_output o;
        do
            sglc_request_wait(r, INT32_MAX, &o, -1);
        while (r && !o.finished);
        for (int32_t i = 0; r && i < o.n_output; i++)
            CHECK(o.output_ids[i] == force_ids[0]);
        sglc_request_release(r);
    }

    /* rejected at submit: id outside the vocabulary, non-finite bias, too many entries */
    sglc_model_info mi;
    sglc_engine_get_model_info(g_e, &mi);
    char err[256];
    sglc_request *r = NULL;
    int32_t bad_id[] = {mi.vocab_size};
    float one[] = {1.0f};
    p.logit_bias_ids = bad_id;
    p.logit_bias = one;
    p.n_logit_bias = 1;
    CHECK(sglc_engine_submit(g_e, base, 2, &p, NULL, &r, err, sizeof err) != 0 && !r);
    CHECK(strstr(err, "logit_bias") != NULL);
    int32_t ok_id[] = {5};
    float nan_bias[] = {NAN};
    p.logit_bias_ids = ok_id;
    p.logit_bias = nan_bias;
    CHECK(sglc_engine_submit(g_e, base, 2, &p, NULL, &r, err, sizeof err) != 0 && !r);
    float inf_bias[] = {INFINITY};
    p.logit_bias = inf_bias;
    CHECK(sglc_engine_submit(g_e, base, 2, &p, NULL, &r, err, sizeof err) != 0 && !r);
    p.logit_bias = one;
    p.n_logit_bias = SGLC_MAX_LOGIT_BIAS + 1;
    CHECK(sglc_engine_submit(g_e, base, 2, &p, NULL, &r, err, sizeof err) != 0 && !r);
    p.n_logit_bias = -1;
    CHECK(sglc_engine_submit(g_e, base, 2, &p, NULL, &r, err, sizeof err) != 0 && !r);
}

/* Every finished request is in the end-to-end histogram; buckets are cumulative. */
static void test_histograms(void) {
    /* a client sees its request finished a moment before the scheduler counts it */
    sglc_engine_stats st;
    sglc_histogram e2e;
    for (int tries = 0; tries < 200; tries++) {
        sglc_engine_get_stats(g_e, &st);
        sglc_engine_get_histogram(g_e, SGLC_HIST_E2E, &e2e);
        if (st.num_running == 0 && st.num_queued == 0 &&
            e2e.count == (uint64_t)st.requests_finished)
            break;
        usleep(10000);
    }
    for (int k = 0; k < SGLC_HIST_COUNT; k++) {
        sglc_histogram h;
        sglc_engine_get_histogram(g_e, (sglc_hist_kind)k, &h);
        CHECK(h.n_bounds > 10 && h.n_bounds <= SGLC_HIST_MAX_BOUNDS);
        for (int32_t i = 1; i < h.n_bounds; i++)
            CHECK(h.bounds[i] > h.bounds[i - 1]);
        for (int32_t i = 1; i <= h.n_bounds; i++)
            CHECK(h.cumulative[i] >= h.cumulative[i - 1]);
        CHECK(h.cumulative[h.n_bounds] == h.count);
        CHECK(h.sum >= 0.0 && h.count > 0);
        if (k == SGLC_HIST_E2E) CHECK(h.count == (uint64_t)st.requests_finished);
        if (k == SGLC_HIST_TTFT || k == SGLC_HIST_TPOT)
            CHECK(h.count <= (uint64_t)st.requests_finished);
    }
}

int main(void) {
    test_sampler();
    if (!test_default_model()) {
        CHECK(0);
        TEST_MAIN_END();
    }
    sglc_engine_params ep;
    sglc_engine_params_default(&ep);
    ep.device = test_device();
    ep.model_path = test_default_model();
    ep.max_total_tokens = 4096;
    ep.decode_log_interval = 0;
    char err[512];
    CHECKF(sglc_engine_open(&g_e, &ep, err, sizeof err) == 0, "%s", err);
    if (!g_e) TEST_MAIN_END();
    test_engine();
    test_histograms();
    sglc_engine_close(g_e);
    TEST_MAIN_END();
}
