/* The serving engine end to end on the default model:
 *  - batch invariance at temperature 0: 32 concurrent requests each get exactly the tokens they
 *    get when run alone (a plain single-sequence session is the reference), with and without
 *    the radix cache, with and without overlap scheduling, with chunked prefill on;
 *  - prefix caching: a repeated prompt reports cached tokens;
 *  - a small KV pool forces retraction and still gives identical tokens;
 *  - random aborts and releases at random points leave every KV slot free (or held by an
 *    evictable cache node) and no request running. */
#include <pthread.h>
#include <stdint.h>
#include <unistd.h>

#include "backend/backend.h"
#include "engine/sampler.h"
#include "engine/session.h"
#include "model/model.h"
#include "sglc.h"
#include "test_util.h"

#define MAX_PROMPTS 32
#define GEN 12

static int32_t g_prompts[MAX_PROMPTS][TEST_PROMPT_CAP];
static int g_plen[MAX_PROMPTS];
static int32_t g_ref[MAX_PROMPTS][GEN];
static int g_n_prompts;

/* Prompts: the chat prompts of the greedy golden file, cut to different lengths (all keep the
 * shared system prefix). */
static int load_prompts(int want) {
    int n = test_golden_prompts(g_prompts, g_plen, want);
    for (int i = 0; i < n; i++)
        g_plen[i] -= i % 5;
    return n;
}

static void reference_outputs(const char *model_path) {
    sglc_err err = {{0}};
    sglc_backend *be = NULL;
    sglc_model *m = NULL;
    sglc_session *s = NULL;
    CHECK(sglc_backend_open(&be, test_device(), NULL, &err) == 0);
    CHECKF(sglc_model_open_gguf(&m, model_path, be, &err) == 0, "%s", err.msg);
    CHECK(sglc_session_open(&s, m, 512, 512, &err) == 0);
    for (int i = 0; s && i < g_n_prompts; i++) {
        sglc_session_reset(s);
        const float *l = NULL;
        CHECK(sglc_session_eval(s, g_prompts[i], g_plen[i], &l, NULL, &err) == 0);
        for (int k = 0; k < GEN; k++) {
            g_ref[i][k] = sglc_argmax(l, m->cfg.n_vocab);
            if (k + 1 < GEN) CHECK(sglc_session_eval(s, &g_ref[i][k], 1, &l, NULL, &err) == 0);
        }
    }
    sglc_session_close(s);
    sglc_model_close(m);
    sglc_backend_close(be);
}

static sglc_engine *open_engine_policy(const char *model, int radix, int overlap, int chunk,
                                       int64_t pool, sglc_schedule_policy policy) {
    sglc_engine_params ep;
    sglc_engine_params_default(&ep);
    ep.device = test_device();
    ep.model_path = model;
    ep.disable_radix_cache = !radix;
    ep.disable_overlap_schedule = !overlap;
    ep.chunked_prefill_size = chunk;
    ep.max_total_tokens = pool;
    ep.max_running_requests = 32;
    ep.decode_log_interval = 0;
    ep.schedule_policy = policy;
    sglc_engine *e = NULL;
    char err[512];
    CHECKF(sglc_engine_open(&e, &ep, err, sizeof err) == 0, "%s", err);
    return e;
}

static sglc_engine *open_engine(const char *model, int radix, int overlap, int chunk,
                                int64_t pool) {
    return open_engine_policy(model, radix, overlap, chunk, pool, SGLC_SCHEDULE_FCFS);
}

static void greedy_params(sglc_request_params *rp) {
    sglc_request_params_default(rp);
    rp->temperature = 0.0f;
    rp->max_new_tokens = GEN;
    rp->ignore_eos = 1;
}

/* Runs every prompt concurrently; checks each equals the reference. Returns cached tokens. */
static long run_batch(sglc_engine *e, const char *what) {
    sglc_request *reqs[MAX_PROMPTS] = {0};
    sglc_request_params rp;
    greedy_params(&rp);
    char err[512];
    for (int i = 0; i < g_n_prompts; i++)
        CHECKF(sglc_engine_submit(e, g_prompts[i], g_plen[i], &rp, NULL, &reqs[i], err,
                                  sizeof err) == 0,
               "%s", err);
    int mismatched = 0;
    long cached = 0;
    for (int i = 0; i < g_n_prompts; i++) {
        if (!reqs[i]) continue;
        sglc_output out;
        do
            sglc_request_wait(reqs[i], INT32_MAX, &out, -1);
        while (!out.finished);
        CHECK(out.finish_reason == SGLC_FINISH_LENGTH && out.n_output == GEN);
        if (out.n_output != GEN || memcmp(out.output_ids, g_ref[i], sizeof g_ref[i]) != 0) {
            mismatched++;
            fprintf(stderr, "[%s] request %d differs from its solo run:", what, i);
            for (int k = 0; k < out.n_output; k++)
                fprintf(stderr, " %d/%d", out.output_ids[k], g_ref[i][k]);
            fputc('\n', stderr);
        }
        cached += out.cached_tokens;
        sglc_request_release(reqs[i]);
    }
    fprintf(stderr, "[%s] %d/%d requests identical to solo runs, %ld cached prompt tokens\n", what,
            g_n_prompts - mismatched, g_n_prompts, cached);
    CHECK(mismatched == 0);
    return cached;
}

static void check_idle(sglc_engine *e, const char *what) {
    sglc_engine_stats st;
    for (int i = 0; i < 200; i++) { /* the scheduler publishes stats after a step */
        sglc_engine_get_stats(e, &st);
        if (st.num_running == 0 && st.kv_used == 0) break;
        usleep(10000);
    }
    CHECKF(st.num_running == 0 && st.kv_used == 0, "[%s] running %d, kv used %lld", what,
           st.num_running, (long long)st.kv_used);
    CHECK(sglc_engine_flush_cache(e) == 0);
}

static void test_random_aborts(const char *model) {
    sglc_engine *e = open_engine(model, 1, 1, 64, 4096);
    if (!e) return;
    uint64_t rng = 12345;
    char err[512];
    enum { NMAX = 120 };
    const int N = getenv("SGLC_SANITIZER_BUILD") ? 40 : NMAX; /* ASan is ~5x slower */
    sglc_request *reqs[NMAX] = {0};
    for (int i = 0; i < N; i++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        sglc_request_params rp;
        greedy_params(&rp);
        rp.max_new_tokens = 1 + (int)((rng >> 33) % 24);
        int p = (int)((rng >> 20) % (uint64_t)g_n_prompts);
        CHECK(sglc_engine_submit(e, g_prompts[p], g_plen[p] - (int)((rng >> 40) % 8), &rp, NULL,
                                 &reqs[i], err, sizeof err) == 0);
        if ((rng >> 50) % 4 == 0 && i > 0) { /* abort an earlier one at a random moment */
            int j = (int)((rng >> 8) % (uint64_t)i);
            if (reqs[j]) {
                sglc_request_release(reqs[j]);
                reqs[j] = NULL;
            }
        }
        if (i % 10 == 0) usleep((useconds_t)((rng >> 45) % 20000));
    }
    int finished = 0;
    for (int i = 0; i < N; i++) {
        if (!reqs[i]) continue;
        sglc_output out;
        do
            sglc_request_wait(reqs[i], INT32_MAX, &out, -1);
        while (!out.finished);
        finished++;
        sglc_request_release(reqs[i]);
    }
    fprintf(stderr, "[random aborts] %d of %d requests ran to the end\n", finished, N);
    check_idle(e, "random aborts");
    sglc_engine_close(e);
}

int main(void) {
    const char *model = test_default_model();
    CHECK(model != NULL);
    if (!model) TEST_MAIN_END();
    int sanitizer = getenv("SGLC_SANITIZER_BUILD") != NULL;
    const char *np = getenv("SGLC_TEST_ENGINE_PROMPTS"); /* for debugging a smaller run */
    g_n_prompts = load_prompts(np ? atoi(np) : sanitizer ? 6 : MAX_PROMPTS);
    CHECK(g_n_prompts >= 1);
    reference_outputs(model);
    struct {
        int radix, overlap;
        const char *name;
    } cfgs[] = {{1, 1, "radix+overlap"},
                {1, 0, "radix, no overlap"},
                {0, 1, "no radix, overlap"},
                {0, 0, "no radix, no overlap"}};
    for (int c = 0; c < 4; c++) {
        /* chunked prefill of 64 tokens splits every prompt */
        sglc_engine *e = open_engine(model, cfgs[c].radix, cfgs[c].overlap, 64, 16384);
        if (!e) continue;
        long cached1 = run_batch(e, cfgs[c].name);
        long cached2 = run_batch(e, cfgs[c].name);
        if (cfgs[c].radix) {
            CHECKF(cached2 > cached1, "second round should hit the cache (%ld vs %ld)", cached2,
                   cached1);
        } else {
            CHECK(cached1 == 0 && cached2 == 0);
        }
        check_idle(e, cfgs[c].name);
        sglc_engine_close(e);
    }
    /* a pool too small for all requests at once: queueing and retraction; longest-prefix-match
     * scheduling */
    {
        sglc_engine *e = open_engine_policy(model, 1, 1, 64, 1200, SGLC_SCHEDULE_LPM);
        if (e) {
            run_batch(e, "small pool");
            sglc_engine_stats st;
            sglc_engine_get_stats(e, &st);
            fprintf(stderr, "[small pool] %lld retractions\n", (long long)st.retractions);
            check_idle(e, "small pool");
            sglc_engine_close(e);
        }
    }
    test_random_aborts(model);
    TEST_MAIN_END();
}
