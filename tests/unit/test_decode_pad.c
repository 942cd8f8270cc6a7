/* Decode steps padded to a graph size (the model's pad_decode, used by GPU backends whose
 * decode_pad rounds a batch up to a captured CUDA graph's size) give the same greedy tokens and
 * logits as unpadded steps, and the padding never touches a real sequence's KV: run on the CPU
 * backend with a decode_pad hook added to a copy of its op table, 3 sequences padded to 8 for
 * 24 decode steps after their prompts, against the same run without the hook. Also checks that
 * placeholder tokens (token_src, read from the previous sample op's ids) give the same tokens
 * as tokens written by the host, and that the model refuses batch and sampling descriptions
 * whose indexes would leave backend memory. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/batch.h"
#include "model/model.h"
#include "test_util.h"

#define NSEQ 3
#define PROMPT 12
#define STEPS 24
#define STRIDE 64

static int32_t pad_to_8(sglc_backend *be, int32_t n) {
    (void)be;
    return (n + 7) / 8 * 8;
}

/* Runs the prompts then STEPS greedy decode steps; tokens [NSEQ][STEPS], and the logits of
 * every decode step's real rows into logits [STEPS][NSEQ][V]. placeholder: decode inputs are
 * taken from the sample op's ids in backend memory (token_src) instead of the host. */
static int run(sglc_model *m, int placeholder, int32_t *tokens, float *logits) {
    sglc_err err = {{0}};
    sglc_model_state *st = NULL;
    sglc_model_state_limits lim = {.max_tokens = NSEQ * PROMPT,
                                   .max_logits = 8,
                                   .kv_slots = NSEQ * STRIDE,
                                   .table_rows = NSEQ,
                                   .table_stride = STRIDE};
    if (sglc_model_state_open(&st, m, &lim, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    sglc_batch_builder bb;
    CHECK(sglc_bb_init(&bb, NSEQ * PROMPT, NSEQ, 8, STRIDE) == 0);
    int32_t slots[NSEQ][STRIDE], prompt[NSEQ][PROMPT], next[NSEQ];
    for (int s = 0; s < NSEQ; s++) {
        for (int p = 0; p < STRIDE; p++)
            slots[s][p] = s * STRIDE + p;
        for (int p = 0; p < PROMPT; p++)
            prompt[s][p] = 1 + (int32_t)((s * 7919 + p * 104729) % 20000);
    }
    sglc_sample_row greedy[NSEQ];
    for (int s = 0; s < NSEQ; s++)
        greedy[s] = (sglc_sample_row){.top_p = 1.0f,
                                      .repetition_penalty = 1.0f,
                                      .penalty_row = -1,
                                      .mask_row = -1,
                                      .forced = -1};
    sglc_sample_desc d = {.n_rows = NSEQ, .rows = greedy};
    const sglc_sample_result *res = NULL;
    int rc = 0;
    for (int step = -1; step < STEPS && rc == 0; step++) {
        sglc_bb_reset(&bb);
        for (int s = 0; s < NSEQ; s++) {
            if (step < 0) {
                sglc_bb_add_seq(&bb, s, prompt[s], slots[s], 0, PROMPT, 0);
            } else {
                sglc_bb_add_seq(&bb, s, &next[s], slots[s], PROMPT + step, 1, PROMPT + step);
                if (placeholder) sglc_bb_placeholder(&bb, bb.b.n_tokens - 1, s);
            }
            sglc_bb_add_logits(&bb, bb.b.n_tokens - 1);
        }
        rc = sglc_model_forward_launch(st, sglc_bb_batch(&bb), &err);
        if (rc == 0 && step >= 0) {
            const float *lg = NULL;
            rc = sglc_model_logits(st, &lg, &err);
            if (rc == 0)
                memcpy(logits + (size_t)step * NSEQ * (size_t)m->cfg.n_vocab, lg,
                       (size_t)NSEQ * (size_t)m->cfg.n_vocab * sizeof(float));
        }
        if (rc == 0) rc = sglc_model_sample_launch(st, &d, &err);
        if (rc == 0) rc = sglc_model_step_wait(st, &res, &err);
        for (int s = 0; rc == 0 && s < NSEQ; s++) {
            next[s] = res->ids[s];
            if (step >= 0) tokens[s * STEPS + step] = next[s];
        }
    }
    if (rc) fprintf(stderr, "step failed: %s\n", err.msg);
    sglc_bb_free(&bb);
    sglc_model_state_close(st);
    return rc;
}

/* Indexes from a caller are never followed: each bad one is refused with an error (no crash,
 * no write outside backend memory; the ASan build runs this). */
static void refuses_bad_indexes(sglc_model *m) {
    sglc_err err = {{0}};
    sglc_model_state *st = NULL;
    sglc_model_state_limits lim = {
        .max_tokens = 8, .max_logits = 4, .kv_slots = 64, .table_rows = 2, .table_stride = 32};
    CHECK(sglc_model_state_open(&st, m, &lim, &err) == 0);
    if (!st) return;
    sglc_batch_builder bb;
    CHECK(sglc_bb_init(&bb, 8, 2, 4, 32) == 0);
    int32_t slots[32], toks[4] = {1, 2, 3, 4};
    for (int i = 0; i < 32; i++)
        slots[i] = i;
    for (int c = 0; c < 7; c++) {
        sglc_bb_reset(&bb);
        sglc_bb_add_seq(&bb, 0, toks, slots, 0, 4, 0);
        sglc_bb_add_logits(&bb, 3);
        sglc_batch b = *sglc_bb_batch(&bb);
        int32_t bad[4] = {0, 0, 0, 0};
        switch (c) {
        case 0: bb.write_idx[1] = 2 * 32; break;                /* a slot write past the table */
        case 1: bb.write_val[0] = 64; break;                    /* a slot past the pool */
        case 2: bb.out_slot[2] = -1; break;                     /* a KV slot before the pool */
        case 3: bb.token_src[1] = 0; break;                     /* a placeholder with no sample */
        case 4: bb.seq_slot_start[0] = 7; break;                /* a row not on a row boundary */
        case 5: bad[0] = m->cfg.n_vocab, b.tokens = bad; break; /* a token past the vocabulary */
        case 6: bb.logit_rows[0] = 4; break;                    /* a logit row past the step */
        }
        CHECKF(sglc_model_forward_launch(st, &b, &err) != 0, "bad batch case %d accepted", c);
    }
    /* a good step, then sampling descriptions with bad indexes */
    sglc_bb_reset(&bb);
    sglc_bb_add_seq(&bb, 0, toks, slots, 0, 4, 0);
    sglc_bb_add_logits(&bb, 3);
    CHECK(sglc_model_forward_launch(st, sglc_bb_batch(&bb), &err) == 0);
    for (int c = 0; c < 4; c++) {
        sglc_sample_row row = {.top_p = 1.0f,
                               .repetition_penalty = 1.0f,
                               .penalty_row = -1,
                               .mask_row = -1,
                               .forced = -1};
        sglc_sample_desc d = {.n_rows = 1, .rows = &row};
        switch (c) {
        case 0: row.penalty_row = 0; break;         /* no penalty tables */
        case 1: row.mask_row = 0; break;            /* no mask rows */
        case 2: row.forced = m->cfg.n_vocab; break; /* a forced id past the vocabulary */
        case 3: row.n_bias = 1; break;              /* bias entries that are not there */
        }
        CHECKF(sglc_model_sample_launch(st, &d, &err) != 0, "bad sampling case %d accepted", c);
    }
    sglc_bb_free(&bb);
    sglc_model_state_close(st);
}

int main(void) {
    const char *path = test_default_model();
    if (!path) {
        CHECK(0);
        return 1;
    }
    sglc_backend *be = NULL;
    sglc_model *m = NULL;
    sglc_err err = {{0}};
    sglc_model_load_params lp = {.path = path, .device = "cpu", .n_threads = 2};
    if (sglc_model_load(&be, &m, &lp, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    size_t V = (size_t)m->cfg.n_vocab, n = (size_t)STEPS * NSEQ * V;
    int32_t t_plain[NSEQ * STEPS], t_pad[NSEQ * STEPS], t_ph[NSEQ * STEPS];
    float *l_plain = malloc(n * sizeof(float)), *l_pad = malloc(n * sizeof(float));
    CHECK(l_plain && l_pad);
    CHECK(run(m, 0, t_plain, l_plain) == 0);
    CHECK(run(m, 1, t_ph, l_pad) == 0);
    CHECK(memcmp(t_plain, t_ph, sizeof t_plain) == 0);
    /* the same backend with a decode_pad hook: every decode step runs at 8 tokens */
    sglc_backend_ops padded = *be->ops;
    padded.decode_pad = pad_to_8;
    const sglc_backend_ops *orig = be->ops;
    be->ops = &padded;
    CHECK(run(m, 1, t_pad, l_pad) == 0);
    be->ops = orig;
    CHECKF(memcmp(t_plain, t_pad, sizeof t_plain) == 0, "padded decode changed greedy tokens");
    double max_d = 0;
    for (size_t i = 0; i < n; i++) {
        double dd = fabs((double)l_plain[i] - (double)l_pad[i]);
        if (dd > max_d) max_d = dd;
    }
    /* the CPU kernels compute every row alone: padding rows cannot change a real row */
    CHECKF(max_d == 0.0, "padded decode moved a logit by %g", max_d);
    fprintf(stderr, "padded decode (3 -> 8 tokens, %d steps): tokens equal, max logit diff %g\n",
            STEPS, max_d);
    free(l_plain);
    free(l_pad);
    refuses_bad_indexes(m);
    sglc_model_close(m);
    sglc_backend_close(be);
    return g_test_failures ? 1 : 0;
}
