/* Single-sequence session (see session.h): KV slots are the positions themselves. */
#include "engine/session.h"

#include <stdlib.h>
#include <string.h>

#include "engine/batch.h"

struct sglc_session {
    const sglc_model *m;
    sglc_model_state *st;
    int32_t n_ctx, chunk, n_past;
    int32_t *slots; /* slot == position for a single sequence */
    sglc_batch_builder bb;
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
    s->slots = malloc((size_t)n_ctx * sizeof(int32_t));
    int rc;
    if (!s->slots || sglc_bb_init(&s->bb, chunk, 1, chunk, n_ctx) != 0) {
        rc = sglc_err_set(err, SGLC_ERR_NOMEM, "out of memory");
        goto cleanup;
    }
    for (int32_t i = 0; i < n_ctx; i++)
        s->slots[i] = i;
    sglc_model_state_limits lim = {.max_tokens = chunk,
                                   .max_logits = chunk,
                                   .kv_slots = n_ctx,
                                   .table_rows = 1,
                                   .table_stride = n_ctx};
    rc = sglc_model_state_open(&s->st, m, &lim, err);
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
    free(s->slots);
    sglc_bb_free(&s->bb);
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
        int want_all = all_logits != NULL;
        int last_chunk = done + c == n;
        sglc_bb_reset(&s->bb);
        /* the table row holds the positions before n_past already */
        sglc_bb_add_seq(&s->bb, 0, ids + done, s->slots, s->n_past, c, s->n_past);
        for (int32_t i = want_all ? 0 : c - 1; i < c && (want_all || last_chunk); i++)
            sglc_bb_add_logits(&s->bb, i);
        int rc = sglc_model_forward(s->st, sglc_bb_batch(&s->bb), &logits, err);
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
