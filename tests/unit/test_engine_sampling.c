/* Per-request behaviour of the engine that users rely on, on the default model: seeded sampling
 * reproducible (and identical with and without overlap scheduling), stop strings across token
 * boundaries, stop token ids, max / min new tokens, end-of-sequence handling, logprobs with
 * top-k alternatives, frequency penalty, n > 1 siblings sharing the prompt's KV, abort. */
#include <math.h>
#include <stdint.h>
#include <unistd.h>

#include "backend/backend.h"
#include "sglc.h"
#include "test_util.h"

/* ChatML prompt "What is the capital of France?" (ids from tests/golden/greedy_chat50.tsv). */
static const int32_t k_prompt[] = {1,    9690, 198,   2683, 359,  253,  5356, 5646,  11173, 3365,
                                   3511, 308,  34519, 28,   7018, 411,  407,  19712, 8182,  2,
                                   198,  1,    4093,  198,  1780, 314,  260,  3575,  282,   4649,
                                   47,   2,    198,   1,    520,  9531, 198};
#define NP ((int32_t)(sizeof k_prompt / sizeof k_prompt[0]))

typedef struct {
    int32_t ids[512];
    int32_t n;
    char text[8192];
    sglc_finish_reason why;
    int32_t stop_tok, stop_str, cached;
    float lp[512];
    sglc_token_logprob top[512][5];
} result;

static sglc_engine *g_e;

static void run(const sglc_request_params *p, result *res) {
    char err[512];
    sglc_request *r = NULL;
    memset(res, 0, sizeof *res);
    CHECKF(sglc_engine_submit(g_e, k_prompt, NP, p, NULL, &r, err, sizeof err) == 0, "%s", err);
    if (!r) return;
    sglc_output o;
    do
        sglc_request_wait(r, INT32_MAX, &o, -1);
    while (!o.finished);
    res->n = o.n_output;
    memcpy(res->ids, o.output_ids, sizeof(int32_t) * (size_t)o.n_output);
    snprintf(res->text, sizeof res->text, "%.*s", (int)o.text_len, o.text);
    res->why = o.finish_reason;
    res->stop_tok = o.matched_stop_token;
    res->stop_str = o.matched_stop_string;
    res->cached = o.cached_tokens;
    if (o.logprobs) {
        memcpy(res->lp, o.logprobs, sizeof(float) * (size_t)o.n_output);
        for (int32_t i = 0; i < o.n_output && p->top_logprobs_num == 5; i++)
            memcpy(res->top[i], o.top_logprobs + (size_t)i * 5, sizeof res->top[i]);
    }
    sglc_request_release(r);
}

static sglc_engine *open_engine(int overlap) {
    sglc_engine_params ep;
    sglc_engine_params_default(&ep);
    ep.device = test_device();
    /* seeded runs must repeat whatever the radix cache holds: on a GPU that needs the
     * batch-invariant kernels (no effect on the CPU, whose kernels always are) */
    ep.enable_deterministic_inference = 1;
    ep.model_path = test_default_model();
    ep.max_total_tokens = 8192;
    ep.disable_overlap_schedule = !overlap;
    ep.decode_log_interval = 0;
    sglc_engine *e = NULL;
    char err[512];
    CHECKF(sglc_engine_open(&e, &ep, err, sizeof err) == 0, "%s", err);
    return e;
}

int main(void) {
    if (!test_default_model()) {
        CHECK(0);
        TEST_MAIN_END();
    }
    g_e = open_engine(1);
    if (!g_e) TEST_MAIN_END();
    static result a, b, c;
    sglc_request_params p;

    /* seeded sampling: same seed -> same tokens, other seed -> other tokens */
    sglc_request_params_default(&p);
    p.temperature = 1.0f;
    p.max_new_tokens = 32;
    p.ignore_eos = 1;
    p.has_seed = 1;
    p.seed = 42;
    run(&p, &a);
    run(&p, &b);
    CHECK(a.n == 32 && b.n == 32 && memcmp(a.ids, b.ids, sizeof(int32_t) * 32) == 0);
    p.seed = 43;
    run(&p, &c);
    CHECK(memcmp(a.ids, c.ids, sizeof(int32_t) * 32) != 0);
    CHECK(a.why == SGLC_FINISH_LENGTH);
    /* the synchronous scheduler gives the same sampled tokens as the overlapped one */
    {
        sglc_engine *e2 = open_engine(0);
        sglc_engine *keep = g_e;
        g_e = e2;
        p.seed = 42;
        run(&p, &c);
        CHECK(memcmp(a.ids, c.ids, sizeof(int32_t) * 32) == 0);
        g_e = keep;
        sglc_engine_close(e2);
    }

    /* greedy reference */
    sglc_request_params_default(&p);
    p.temperature = 0.0f;
    p.max_new_tokens = 40;
    p.ignore_eos = 1;
    run(&p, &a);
    CHECK(a.n == 40 && a.why == SGLC_FINISH_LENGTH);
    fprintf(stderr, "greedy text: %s\n", a.text);

    /* stop string: a piece of the greedy text that starts after the first few characters,
     * long enough to span tokens */
    size_t tl = strlen(a.text);
    CHECK(tl > 24);
    if (tl > 24) {
        char stop[16];
        memcpy(stop, a.text + 12, 7);
        stop[7] = 0;
        const char *stops[] = {stop};
        p.stop = stops;
        p.n_stop = 1;
        run(&p, &b);
        const char *at = strstr(a.text, stop);
        CHECK(b.why == SGLC_FINISH_STOP && b.stop_str == 0);
        CHECKF(at && strlen(b.text) == (size_t)(at - a.text) &&
                   strncmp(b.text, a.text, strlen(b.text)) == 0,
               "stop '%s': got '%s'", stop, b.text);
        p.no_stop_trim = 1;
        run(&p, &b);
        CHECK(at && strlen(b.text) == (size_t)(at - a.text) + strlen(stop));
        p.no_stop_trim = 0;
        p.stop = NULL;
        p.n_stop = 0;
    }

    /* stop token id: stops at its first occurrence */
    {
        int32_t x = a.ids[5];
        int first = 0;
        while (a.ids[first] != x)
            first++;
        p.stop_token_ids = &x;
        p.n_stop_token_ids = 1;
        run(&p, &b);
        CHECK(b.why == SGLC_FINISH_STOP && b.stop_tok == x && b.n == first + 1);
        p.stop_token_ids = NULL;
        p.n_stop_token_ids = 0;
    }

    /* max_new_tokens */
    p.max_new_tokens = 7;
    run(&p, &b);
    CHECK(b.n == 7 && b.why == SGLC_FINISH_LENGTH &&
          memcmp(a.ids, b.ids, 7 * sizeof(int32_t)) == 0);

    /* eos ends the answer unless ignored; min_new_tokens suppresses it. Where the model's own
     * greedy answer ends moves with any change of arithmetic, so a +100 logit bias makes eos
     * (id 2) the greedy choice at every step. */
    {
        p.ignore_eos = 0;
        p.max_new_tokens = 200;
        const int32_t eos_id = 2;
        const float eos_bias = 100.0f;
        p.logit_bias_ids = &eos_id;
        p.logit_bias = &eos_bias;
        p.n_logit_bias = 1;
        run(&p, &b);
        CHECKF(b.why == SGLC_FINISH_STOP && b.stop_tok == 2 && b.n == 1, "eos: %d tokens", b.n);
        p.min_new_tokens = 6;
        run(&p, &c);
        /* suppressed for 6 tokens, then the bias makes it the 7th */
        CHECKF(c.n == 7 && c.why == SGLC_FINISH_STOP && c.stop_tok == 2, "min_new_tokens: %d", c.n);
        for (int i = 0; i < 6 && i < c.n; i++)
            CHECK(c.ids[i] != 2);
        p.ignore_eos = 1;
        run(&p, &c);
        CHECK(c.n == 200 && c.why == SGLC_FINISH_LENGTH);
        p.min_new_tokens = 0;
        p.logit_bias_ids = NULL;
        p.logit_bias = NULL;
        p.n_logit_bias = 0;
    }

    /* logprobs: greedy token is the top alternative; values are log-probabilities */
    p.max_new_tokens = 8;
    p.return_logprob = 1;
    p.top_logprobs_num = 5;
    run(&p, &b);
    for (int i = 0; i < b.n; i++) {
        CHECK(b.top[i][0].token == b.ids[i] && fabsf(b.top[i][0].logprob - b.lp[i]) < 1e-6f);
        double mass = 0;
        for (int j = 0; j < 5; j++) {
            CHECK(b.top[i][j].logprob <= 0.0f);
            if (j) CHECK(b.top[i][j].logprob <= b.top[i][j - 1].logprob);
            mass += exp(b.top[i][j].logprob);
        }
        CHECK(mass <= 1.0 + 1e-5);
    }
    p.return_logprob = 0;
    p.top_logprobs_num = 0;

    /* frequency penalty lowers repetition of the most repeated token */
    p.max_new_tokens = 64;
    run(&p, &a);
    p.frequency_penalty = 2.0f;
    run(&p, &b);
    p.frequency_penalty = 0.0f;
    /* repeated tokens = tokens minus distinct tokens */
    int rep_a = 0, rep_b = 0;
    for (int i = 0; i < a.n; i++) {
        int seen = 0;
        for (int j = 0; j < i; j++)
            seen |= a.ids[j] == a.ids[i];
        rep_a += seen;
    }
    for (int i = 0; i < b.n; i++) {
        int seen = 0;
        for (int j = 0; j < i; j++)
            seen |= b.ids[j] == b.ids[i];
        rep_b += seen;
    }
    CHECKF(rep_b < rep_a, "frequency penalty: %d repeated tokens vs %d without", rep_b, rep_a);
    fprintf(stderr, "frequency penalty 2.0: %d repeated tokens of 64 (without: %d)\n", rep_b,
            rep_a);

    /* n > 1: siblings share the leader's prompt KV and, greedy, produce the same tokens */
    {
        char err[512];
        p.max_new_tokens = 8;
        sglc_request *rs[4] = {0};
        CHECK(sglc_engine_submit(g_e, k_prompt, NP, &p, NULL, &rs[0], err, sizeof err) == 0);
        for (int i = 1; i < 4; i++)
            CHECK(sglc_engine_submit(g_e, k_prompt, NP, &p, rs[0], &rs[i], err, sizeof err) == 0);
        int32_t first[8];
        for (int i = 0; i < 4; i++) {
            sglc_output o;
            do
                sglc_request_wait(rs[i], INT32_MAX, &o, -1);
            while (!o.finished);
            if (i == 0)
                memcpy(first, o.output_ids, sizeof first);
            else {
                CHECK(memcmp(first, o.output_ids, sizeof first) == 0);
                CHECKF(o.cached_tokens >= NP - 1, "sibling %d cached %d of %d", i, o.cached_tokens,
                       NP);
            }
            sglc_request_release(rs[i]);
        }
    }

    /* abort mid-generation */
    {
        char err[512];
        sglc_request *r = NULL;
        p.max_new_tokens = 2000;
        CHECK(sglc_engine_submit(g_e, k_prompt, NP, &p, NULL, &r, err, sizeof err) == 0);
        sglc_output o;
        sglc_request_wait(r, 2, &o, -1);
        sglc_request_abort(r);
        do
            sglc_request_wait(r, INT32_MAX, &o, -1);
        while (!o.finished);
        CHECK(o.finish_reason == SGLC_FINISH_ABORT && o.n_output < 2000);
        sglc_request_release(r);
        sglc_engine_stats st;
        for (int i = 0; i < 200; i++) {
            sglc_engine_get_stats(g_e, &st);
            if (st.num_running == 0 && st.kv_used == 0) break;
            usleep(10000);
        }
        CHECK(st.num_running == 0 && st.kv_used == 0);
    }
    /* issue 19: sampling runs on the backend; per sampled row only the id (4 bytes) comes back,
     * penalties included (their counts stay in backend memory), plus the logprob arrays when a
     * request asks for logprobs */
    {
        const int64_t lp_bytes =
            4 + 4 + SGLC_SAMPLE_TOP_MAX * 8 + SGLC_SAMPLE_IDS_MAX * 4; /* per row, logprobs on */
        for (int mode = 0; mode < 3; mode++) {
            sglc_request_params q;
            sglc_request_params_default(&q);
            q.temperature = 0.7f;
            q.has_seed = 1;
            q.seed = 7;
            q.max_new_tokens = 24;
            q.ignore_eos = 1;
            if (mode == 1) q.frequency_penalty = 1.5f, q.repetition_penalty = 1.2f;
            if (mode == 2) q.return_logprob = 1, q.top_logprobs_num = 5;
            sglc_engine_stats s0, s1;
            sglc_engine_get_stats(g_e, &s0);
            run(&q, &a);
            sglc_engine_get_stats(g_e, &s1);
            int64_t bytes = s1.device_to_host_bytes - s0.device_to_host_bytes;
            int64_t rows = s1.sampled_rows - s0.sampled_rows;
            int64_t want = rows * (mode == 2 ? lp_bytes : 4);
            CHECKF(a.n == 24 && rows >= 24 && bytes == want,
                   "mode %d: %lld bytes to the host for %lld sampled rows (want %lld)", mode,
                   (long long)bytes, (long long)rows, (long long)want);
            fprintf(stderr, "device-to-host bytes per sampled row, mode %d: %.1f\n", mode,
                    rows ? (double)bytes / (double)rows : 0.0);
        }
    }
    /* requests that can never fit are refused up front, naming the numbers */
    {
        char err[512] = {0};
        sglc_request *r = NULL;
        p.max_new_tokens = 9000;
        CHECK(sglc_engine_submit(g_e, k_prompt, NP, &p, NULL, &r, err, sizeof err) != 0 && !r);
        CHECK(strstr(err, "9000") != NULL);
    }
    sglc_engine_close(g_e);
    TEST_MAIN_END();
}
