/* Single-sequence session (see session.h): KV slots are the positions themselves. */
#include "engine/session.h"

#include <stdlib.h>
#include <string.h>

struct sglc_session {
    const sglc_model *m;
    sglc_model_state *st;
    int32_t n_ctx, chunk, n_past;
    int32_t *pos, *seq, *logit_rows, *slot_table;
    int32_t seq_start;
};

int sglc_session_open(sglc_session **out, const sglc_model *m, int32_t n_ctx, int32_t chunk,
                      sglc_err *err) {
    *out = NULL;
    if (n_ctx <= 0 || chunk <= 0)
        return sglc_err_set(err, SGLC_ERR_ARG, "session: bad context or chunk size");
    if (chunk > n_ctx) chunk = n_ctx;
    sglc_session *s = calloc(1, sizeof *s);
    if (!s) return sglc_err_set(err, SGLC_ERR_NOMEM, "out of memory");
    s->m = m;
    s->n_ctx = n_ctx;
    s->chunk = chunk;
    s->pos = malloc((size_t)chunk * sizeof(int32_t));
    s->seq = calloc((size_t)chunk, sizeof(int32_t));
    s->logit_rows = malloc((size_t)chunk * sizeof(int32_t));
    s->slot_table = malloc((size_t)n_ctx * sizeof(int32_t));
    int rc;
    if (!s->pos || !s->seq || !s->logit_rows || !s->slot_table) {
        rc = sglc_err_set(err, SGLC_ERR_NOMEM, "out of memory");
        goto cleanup;
    }
    for (int32_t i = 0; i < n_ctx; i++)
        s->slot_table[i] = i;
    rc = sglc_model_state_open(&s->st, m, chunk, chunk, n_ctx, err);
    if (rc != 0) goto cleanup;
    *out = s;
    return SGLC_OK;
cleanup:
    sglc_session_close(s);
    return rc;
}

void sglc_session_close(sglc_session *s) {
    if (!s) return;
    sglc_model_state_close(s->st);
    free(s->pos);
    free(s->seq);
    free(s->logit_rows);
    free(s->slot_table);
    free(s);
}

void sglc_session_reset(sglc_session *s) {
    s->n_past = 0;
}
int32_t sglc_session_n_past(const sglc_session *s) {
    return s->n_past;
}

int sglc_session_eval(sglc_session *s, const int32_t *ids, int32_t n, const float **last_logits,
                      float *all_logits, sglc_err *err) {
    if (n <= 0) return sglc_err_set(err, SGLC_ERR_ARG, "nothing to evaluate");
    if (n > s->n_ctx - s->n_past)
        return sglc_err_set(err, SGLC_ERR_RANGE,
                            "context full: %d tokens held + %d new exceeds the context of %d",
                            s->n_past, n, s->n_ctx);
    int32_t n_vocab = s->m->cfg.n_vocab;
    const float *logits = NULL;
    for (int32_t done = 0; done < n;) {
        int32_t c = n - done < s->chunk ? n - done : s->chunk;
        for (int32_t i = 0; i < c; i++) {
            s->pos[i] = s->n_past + i;
            s->logit_rows[i] = i;
        }
        int want_all = all_logits != NULL;
        int last_chunk = done + c == n;
        sglc_batch b = {
            .n_tokens = c,
            .n_seqs = 1,
            .n_logits = want_all ? c : (last_chunk ? 1 : 0),
            .tokens = ids + done,
            .pos = s->pos,
            .seq = s->seq,
            .out_slot = s->pos, /* slot == position for a single sequence */
            .seq_slot_start = &s->seq_start,
            .slot_table = s->slot_table,
            .logit_rows = want_all ? s->logit_rows : &s->logit_rows[c - 1],
            .n_tokens_padded = c,
            .n_slot_table = s->n_past + c,
            .max_context = s->n_past + c,
        };
        int rc = sglc_model_forward(s->st, &b, &logits, err);
        if (rc != 0) return rc;
        if (want_all)
            memcpy(all_logits + (size_t)done * (size_t)n_vocab, logits,
                   (size_t)c * (size_t)n_vocab * sizeof(float));
        s->n_past += c;
        done += c;
    }
    if (last_logits)
        *last_logits = all_logits ? all_logits + (size_t)(n - 1) * (size_t)n_vocab : logits;
    return SGLC_OK;
}
