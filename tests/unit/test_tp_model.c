/* Tensor parallelism on the CPU (issue 17): --tp-size N runs N CPU backends (ranks) in one
 * process over the Megatron split of model/tp.h, summed by the communicator.
 *   1. The CPU communicator: every rank gets the sum in rank order, to the bit; a group of
 *      mixed devices is refused.
 *   2. The tiny random checkpoints (tests/golden/tiny_*: 4 heads, 2 KV heads, f32) with tp 2
 *      (KV heads split) and tp 4 (KV heads replicated, one query head per rank): the logits of
 *      a prompt and of greedy steps after it equal tp 1's within f32 summation order.
 *   3. The default model (9 heads, 3 KV heads, ffn 1536, Q4_1) and its f32 HF folder with tp 3
 *      against tp 1 on the 50 golden prompts, teacher-forced (test_agreement.h); tp 2 is
 *      refused with one line (9 heads do not split 2 ways).
 *   4. The engine with tp 3: 8 concurrent greedy requests give the same tokens with the
 *      overlap scheduler on and off (its placeholder tokens read each rank's own sampled ids)
 *      and with the radix cache on and off. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sglc.h"
#include "test_agreement.h"

static int32_t g_prompt[AGREE_NP][TEST_PROMPT_CAP];
static int g_plen[AGREE_NP];

static void test_comm(void) {
    enum { R = 3, N = 1001 };
    sglc_backend *be[R] = {0};
    sglc_err err = {{0}};
    sglc_backend_params bp = {.n_threads = 1};
    for (int r = 0; r < R; r++)
        CHECK(sglc_backend_open(&be[r], "cpu", &bp, &err) == 0);
    float *buf[R], *want = malloc(sizeof(float) * N);
    uint64_t s = 88172645463325252ull;
    for (int r = 0; r < R; r++) {
        buf[r] = be[r]->ops->alloc(be[r], sizeof(float) * N);
        for (int i = 0; i < N; i++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            buf[r][i] = (float)((double)(s >> 11) / 9007199254740992.0 - 0.5) * 1e3f;
        }
    }
    for (int i = 0; i < N; i++)
        want[i] = (buf[0][i] + buf[1][i]) + buf[2][i];
    sglc_comm *c = NULL;
    CHECKF(sglc_comm_open(&c, be, R, &err) == 0, "%s", err.msg);
    if (c) {
        CHECK(sglc_comm_size(c) == R);
        sglc_comm_all_reduce_sum(c, buf, N);
        for (int r = 0; r < R; r++)
            CHECKF(memcmp(buf[r], want, sizeof(float) * N) == 0, "rank %d: not the rank-order sum",
                   r);
    }
    sglc_comm_close(c);
    /* ranks of two kinds cannot share a communicator */
    sglc_backend *mixed[2] = {be[0], NULL};
    CHECK(sglc_backend_open(&mixed[1], "cpu-ggml", &bp, &err) == 0);
    CHECK(sglc_comm_open(&c, mixed, 2, &err) != 0 && c == NULL);
    CHECKF(strstr(err.msg, "ranks on cpu and cpu-ggml") != NULL, "%s", err.msg);
    sglc_backend_close(mixed[1]);
    for (int r = 0; r < R; r++) {
        be[r]->ops->free(be[r], buf[r]);
        sglc_backend_close(be[r]);
    }
    free(want);
}

/* Logits of a 19-token prompt and of 8 greedy steps after it ([9][V] into out); -1 when the
 * model does not load. */
static int tiny_logits(const char *dir, int tp, float *out, int32_t *V) {
    sglc_model_load_params lp = {.path = dir, .device = "cpu", .tp_size = tp};
    sglc_err err = {{0}};
    sglc_backend *be = NULL;
    sglc_model *m = NULL;
    sglc_session *s = NULL;
    if (sglc_model_load(&be, &m, &lp, &err) != 0 || sglc_session_open(&s, m, 64, 64, &err)) {
        CHECKF(0, "%s tp %d: %s", dir, tp, err.msg);
        sglc_model_close(m);
        sglc_backend_close(be);
        return -1;
    }
    *V = m->cfg.n_vocab;
    int32_t prompt[19];
    for (int i = 0; i < 19; i++)
        prompt[i] = (int32_t)((i * 37 + 11) % *V);
    const float *l = NULL;
    CHECK(sglc_session_eval(s, prompt, 19, &l, NULL, &err) == 0);
    for (int k = 0; k < 9 && l; k++) {
        memcpy(out + (size_t)k * (size_t)*V, l, sizeof(float) * (size_t)*V);
        int32_t next = sglc_argmax(l, *V);
        if (k < 8) CHECK(sglc_session_eval(s, &next, 1, &l, NULL, &err) == 0);
    }
    sglc_session_close(s);
    sglc_model_close(m);
    sglc_backend_close(be);
    return 0;
}

static void test_tiny(void) {
    static const char *const models[] = {"tiny_llama", "tiny_qwen2", "tiny_qwen3"};
    float *ref = malloc(sizeof(float) * 9 * 4096), *got = malloc(sizeof(float) * 9 * 4096);
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/tests/golden/%s", test_source_dir(), models[i]);
        int32_t V = 0, V2 = 0;
        if (tiny_logits(dir, 1, ref, &V) != 0 || V > 4096) continue;
        for (int tp = 2; tp <= 4; tp += 2) {
            if (tiny_logits(dir, tp, got, &V2) != 0 || V2 != V) continue;
            double maxd = 0, maxv = 0;
            for (size_t j = 0; j < (size_t)9 * (size_t)V; j++) {
                maxd = fmax(maxd, fabs((double)ref[j] - got[j]));
                maxv = fmax(maxv, fabs((double)ref[j]));
            }
            fprintf(stderr,
                    "%s tp=%d: largest logit difference from tp=1 %.3g (logits up to %.3g)\n",
                    models[i], tp, maxd, maxv);
            CHECKF(maxd <= 1e-4 * (1 + maxv), "%s tp=%d: logits %.3g from tp=1", models[i], tp,
                   maxd);
        }
    }
    free(ref), free(got);
}

static void test_refusals(const char *gguf) {
    sglc_model_load_params lp = {.path = gguf, .device = "cpu", .tp_size = 2};
    sglc_err err = {{0}};
    sglc_backend *be = NULL;
    sglc_model *m = NULL;
    CHECK(sglc_model_load(&be, &m, &lp, &err) != 0 && !be && !m);
    CHECKF(strstr(err.msg, "--tp-size 2: the model's 9 attention heads do not split 2 ways"), "%s",
           err.msg);
    lp.tp_size = 9;
    CHECK(sglc_model_load(&be, &m, &lp, &err) != 0 && !be && !m);
    CHECKF(strstr(err.msg, "at most 8 ranks"), "%s", err.msg);
}

/* tp=3 against tp=1 on the golden prompts. The two differ only in the order of float sums (the
 * row-parallel partials are added rank by rank), so the f32 folder agrees to float rounding. On
 * the Q4_1 GGUF an ulp before an 8-bit activation quantization flips a code and moves the
 * logits by 0.1-0.4 (BENCHMARKS.md), so tp=3 flips near-ties as llama.cpp does against itself
 * when only its batch size or KV type changes (23-25 of 50 prompts, 1557-1562 of 1600 tokens,
 * tests/golden/greedy_llamacpp_self_agreement.txt); measured: 25 of 50 prompts, 1564 tokens,
 * every disagreement at a tp=1 margin of at most 0.53 (above test_gpu_model's 0.5, below the
 * 0.80 the GPU showed), which max_margin bounds. */
static void agreement(const char *path, const char *what, int min_exact, double max_diff,
                      double max_margin) {
    sglc_model_load_params one = {.path = path, .device = "cpu"};
    sglc_model_load_params three = {.path = path, .device = "cpu", .tp_size = 3};
    test_agreement_result r;
    char name[128];
    snprintf(name, sizeof name, "%s: tp=3 vs tp=1 (cpu)", what);
    if (test_agreement(&one, &three, g_prompt, g_plen, name, &r) != 0) {
        CHECKF(0, "%s: tp=3 or tp=1 did not run", what);
        return;
    }
    CHECKF(r.worst_margin < max_margin,
           "%s: a disagreement where tp=1's margin is %.4f (not a near-tie)", what, r.worst_margin);
    CHECKF(r.tokens >= 0.97 * AGREE_NP * AGREE_GEN, "%s: only %d/%d tokens agree", what, r.tokens,
           AGREE_NP * AGREE_GEN);
    CHECKF(r.exact >= min_exact, "%s: only %d of 50 prompts agree exactly", what, r.exact);
    CHECKF(r.max_logit_diff <= max_diff, "%s: logits %.4g from tp=1", what, r.max_logit_diff);
}

/* 8 concurrent greedy requests on an engine with tp 3 */
static int run_engine(const char *path, int overlap, int radix, int32_t out[8][12]) {
    sglc_engine_params ep;
    sglc_engine_params_default(&ep);
    ep.model_path = path;
    ep.device = "cpu";
    ep.tp_size = 3;
    ep.disable_overlap_schedule = !overlap;
    ep.disable_radix_cache = !radix;
    ep.max_total_tokens = 8192;
    ep.max_running_requests = 8;
    ep.decode_log_interval = 0;
    int len[8];
    for (int i = 0; i < 8; i++)
        len[i] = g_plen[i] - i;
    return test_engine_greedy(&ep, (const int32_t(*)[TEST_PROMPT_CAP])g_prompt, len, 8, 12, 0,
                              &out[0][0]);
}

static void test_engine(const char *gguf) {
    static int32_t ref[8][12], got[8][12];
    if (run_engine(gguf, 1, 1, ref) != 0) return;
    static const struct {
        int overlap, radix;
        const char *name;
    } cfgs[] = {{0, 1, "overlap off"}, {1, 0, "radix off"}};
    for (size_t c = 0; c < sizeof cfgs / sizeof cfgs[0]; c++) {
        if (run_engine(gguf, cfgs[c].overlap, cfgs[c].radix, got) != 0) continue;
        int diff = 0;
        for (int i = 0; i < 8; i++)
            diff += memcmp(ref[i], got[i], sizeof ref[i]) != 0;
        fprintf(stderr, "engine tp=3, 8 concurrent requests vs %s: %d of 8 differ\n", cfgs[c].name,
                diff);
        CHECKF(diff == 0, "tp=3: %s changed the tokens of %d requests", cfgs[c].name, diff);
    }
}

int main(void) {
    test_comm();
    test_tiny();
    const char *gguf = test_default_model();
    CHECK(test_golden_prompts(g_prompt, g_plen, AGREE_NP) == AGREE_NP);
    if (!gguf) return 1;
    test_refusals(gguf);
    test_engine(gguf);
    char hf[4096];
    snprintf(hf, sizeof hf, "%s/models/SmolLM2-135M-Instruct-hf", test_source_dir());
    if (getenv("SGLC_SANITIZER_BUILD")) {
        /* the agreement runs (4 x 50 prompts, about 4 minutes on 2 cores in Release) check
         * arithmetic, which the Release build of this test checks; under ASan the memory of
         * the split, the engine and the refusals above is what is checked */
        printf("agreement runs: in the Release build only (SGLC_SANITIZER_BUILD)\n");
    } else {
        agreement(gguf, "gguf Q4_1", 20, 4.0, 0.75);
        agreement(hf, "hf folder f32", 48, 1e-3, 0.05);
    }
    TEST_MAIN_END();
}
