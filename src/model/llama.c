/* The forward pass of llama-family decoders (llama, qwen2, qwen3), written once as a sequence
 * of backend ops. One call processes one step: any mix of prefill chunks and decode tokens
 * from several sequences (the batch description says which token goes where). There is no
 * host decision between ops, so a GPU backend can capture the step as a graph. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "quant/ggml_types.h"

struct sglc_model_state {
    const sglc_model *m; /* borrowed */
    sglc_backend *be;    /* borrowed */
    int32_t max_tokens, max_logits, kv_slots;
    /* activations in backend memory, [max_tokens][dim] */
    float *x, *xb, *xb2, *q, *k, *v, *att, *hb, *hb2;
    float *xl;                 /* [max_logits][n_embd] rows gathered for the output head */
    float *logits_dev;         /* [max_logits][n_vocab] */
    float *logits_host;        /* host copy handed to the caller */
    void **k_cache, **v_cache; /* per layer [kv_slots][n_head_kv * head_dim] of cfg.kv_type */
    size_t kv_bytes;
    int fused_rope; /* the custom RoPE + KV write kernel (opt-in, for A/B tests) */
};

void sglc_model_state_close(sglc_model_state *st) {
    if (!st) return;
    sglc_backend *be = st->be;
    float **bufs[] = {&st->x,   &st->xb, &st->xb2, &st->q,  &st->k,         &st->v,
                      &st->att, &st->hb, &st->hb2, &st->xl, &st->logits_dev};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        be->ops->free(be, *bufs[i]);
    if (st->k_cache)
        for (int32_t l = 0; l < st->m->cfg.n_layer; l++) {
            be->ops->free(be, st->k_cache[l]);
            be->ops->free(be, st->v_cache[l]);
        }
    free(st->k_cache);
    free(st->v_cache);
    free(st->logits_host);
    free(st);
}

size_t sglc_model_state_kv_bytes(const sglc_model_state *st) {
    return st->kv_bytes;
}

int sglc_custom_rope_requested(void) {
    static const char *const vars[] = {"SGLANG_MLX_USE_CUSTOM_ROPE", "SGLC_CUSTOM_ROPE"};
    for (size_t i = 0; i < 2; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v && strcmp(v, "0") != 0 && strcmp(v, "false") != 0) return 1;
    }
    return 0;
}

static int reserve_scratch(sglc_model_state *st, sglc_err *err);

static int alloc_f32(sglc_backend *be, float **p, int64_t a, int64_t b, sglc_err *err) {
    size_t n;
    if (a <= 0 || b <= 0 || __builtin_mul_overflow((size_t)a, (size_t)b, &n) ||
        __builtin_mul_overflow(n, sizeof(float), &n))
        return sglc_err_set(err, SGLC_ERR_RANGE, "buffer size overflow");
    *p = be->ops->alloc(be, n);
    if (!*p)
        return sglc_err_set(err, SGLC_ERR_NOMEM, "cannot allocate %zu MB of %s memory", n >> 20,
                            be->ops->name);
    return SGLC_OK;
}

int sglc_model_state_open(sglc_model_state **out, const sglc_model *m, int32_t max_tokens,
                          int32_t max_logits, int32_t kv_slots, sglc_err *err) {
    *out = NULL;
    if (max_tokens <= 0 || max_logits <= 0 || max_logits > max_tokens || kv_slots <= 0)
        return sglc_err_set(err, SGLC_ERR_ARG, "bad model state limits");
    sglc_model_state *st = calloc(1, sizeof *st);
    if (!st) return sglc_err_set(err, SGLC_ERR_NOMEM, "out of memory");
    st->m = m;
    st->be = m->be;
    st->max_tokens = max_tokens;
    st->max_logits = max_logits;
    st->kv_slots = kv_slots;
    const sglc_model_config *c = &m->cfg;
    int64_t d = c->n_embd, qd = (int64_t)c->n_head * c->head_dim,
            kvd = (int64_t)c->n_head_kv * c->head_dim, T = max_tokens;
    int rc;
    if ((rc = alloc_f32(st->be, &st->x, T, d, err)) ||
        (rc = alloc_f32(st->be, &st->xb, T, d, err)) ||
        (rc = alloc_f32(st->be, &st->xb2, T, d > qd ? d : qd, err)) ||
        (rc = alloc_f32(st->be, &st->q, T, qd, err)) ||
        (rc = alloc_f32(st->be, &st->k, T, kvd, err)) ||
        (rc = alloc_f32(st->be, &st->v, T, kvd, err)) ||
        (rc = alloc_f32(st->be, &st->att, T, qd, err)) ||
        (rc = alloc_f32(st->be, &st->hb, T, c->n_ff, err)) ||
        (rc = alloc_f32(st->be, &st->hb2, T, c->n_ff, err)) ||
        (rc = alloc_f32(st->be, &st->xl, max_logits, d, err)) ||
        (rc = alloc_f32(st->be, &st->logits_dev, max_logits, c->n_vocab, err)))
        goto cleanup;
    st->logits_host = malloc((size_t)max_logits * (size_t)c->n_vocab * sizeof(float));
    st->k_cache = calloc((size_t)c->n_layer, sizeof(void *));
    st->v_cache = calloc((size_t)c->n_layer, sizeof(void *));
    if (!st->logits_host || !st->k_cache || !st->v_cache) {
        rc = sglc_err_set(err, SGLC_ERR_NOMEM, "out of memory");
        goto cleanup;
    }
    for (int32_t l = 0; l < c->n_layer; l++) {
        /* an f16 cache is allocated as half as many f32 (kvd is even for every real model) */
        int64_t cols = c->kv_type == SGLC_GGML_TYPE_F16 ? (kvd + 1) / 2 : kvd;
        if ((rc = alloc_f32(st->be, (float **)&st->k_cache[l], kv_slots, cols, err)) ||
            (rc = alloc_f32(st->be, (float **)&st->v_cache[l], kv_slots, cols, err)))
            goto cleanup;
    }
    st->fused_rope = sglc_custom_rope_requested() && st->be->ops->rope_kv_store != NULL;
    if (st->be->ops->reserve && (rc = reserve_scratch(st, err)) != 0) goto cleanup;
    st->kv_bytes = 2 * (size_t)c->n_layer * (size_t)kv_slots * (size_t)kvd *
                   (c->kv_type == SGLC_GGML_TYPE_F16 ? 2 : 4);
    *out = st;
    return SGLC_OK;
cleanup:
    sglc_model_state_close(st);
    return rc;
}

/* Sizes the backend's op scratch for the largest step over every matrix of the model, so the
 * forward pass never allocates. */
static int reserve_scratch(sglc_model_state *st, sglc_err *err) {
    const sglc_model *m = st->m;
    const sglc_model_config *c = &m->cfg;
    size_t n = 0, cap = 2 + 7 * (size_t)c->n_layer;
    const sglc_weight **ws = malloc(cap * sizeof *ws);
    if (!ws) return sglc_err_set(err, SGLC_ERR_NOMEM, "out of memory");
    ws[n++] = &m->output;
    ws[n++] = &m->tok_embd;
    for (int32_t l = 0; l < c->n_layer; l++) {
        const sglc_layer_weights *w = &m->layers[l];
        const sglc_weight *lw[7] = {&w->wq,     &w->wk,   &w->wv,    &w->wo,
                                    &w->w_gate, &w->w_up, &w->w_down};
        for (int i = 0; i < 7; i++)
            ws[n++] = lw[i];
    }
    sglc_attn_params ap = {.n_head = c->n_head,
                           .n_head_kv = c->n_head_kv,
                           .head_dim = c->head_dim,
                           .rot_dim = c->rot_dim,
                           .kv_slots = st->kv_slots,
                           .kv_type = c->kv_type};
    int rc = st->be->ops->reserve(st->be, ws, n, st->max_tokens, &ap, err);
    free(ws);
    return rc;
}

/* Matmuls sharing an input: one backend op where the backend has it. */
static void matmul_n(sglc_backend *be, int n, const sglc_weight *const *w,
                     const sglc_weight *const *bias, const float *x, int64_t rows,
                     float *const *y) {
    if (be->ops->matmul_n) {
        be->ops->matmul_n(be, n, w, bias, x, rows, y);
        return;
    }
    for (int i = 0; i < n; i++)
        be->ops->matmul(be, w[i], bias ? bias[i] : NULL, x, rows, y[i]);
}

int sglc_model_forward(sglc_model_state *st, const sglc_batch *b, const float **logits,
                       sglc_err *err) {
    int rc = sglc_model_forward_launch(st, b, err);
    return rc ? rc : sglc_model_forward_wait(st, logits, err);
}

int sglc_model_forward_wait(sglc_model_state *st, const float **logits, sglc_err *err) {
    (void)err;
    st->be->ops->sync(st->be);
    *logits = st->logits_host;
    return SGLC_OK;
}

int sglc_model_forward_launch(sglc_model_state *st, const sglc_batch *hb, sglc_err *err) {
    const sglc_model *m = st->m;
    const sglc_model_config *c = &m->cfg;
    sglc_backend *be = st->be;
    const sglc_backend_ops *op = be->ops;
    if (hb->n_tokens <= 0 || hb->n_tokens > st->max_tokens || hb->n_logits < 0 ||
        hb->n_logits > st->max_logits)
        return sglc_err_set(err, SGLC_ERR_ARG, "step of %d tokens / %d logit rows exceeds limits",
                            hb->n_tokens, hb->n_logits);
    for (int32_t t = 0; t < hb->n_tokens; t++) {
        if (hb->tokens[t] < 0 || hb->tokens[t] >= c->n_vocab)
            return sglc_err_set(err, SGLC_ERR_ARG, "token id %d outside the vocabulary",
                                hb->tokens[t]);
        if (hb->out_slot[t] < 0 || hb->out_slot[t] >= st->kv_slots)
            return sglc_err_set(err, SGLC_ERR_ARG, "KV slot %d outside the pool", hb->out_slot[t]);
    }
    const sglc_batch *b = op->set_batch(be, hb);
    int64_t T = hb->n_tokens, d = c->n_embd, qd = (int64_t)c->n_head * c->head_dim,
            kvd = (int64_t)c->n_head_kv * c->head_dim;
    sglc_attn_params ap = {
        .n_head = c->n_head,
        .n_head_kv = c->n_head_kv,
        .head_dim = c->head_dim,
        .rot_dim = c->rot_dim,
        .theta = c->rope_theta,
        .scale = 1.0f / sqrtf((float)c->head_dim),
        .mode = c->rope_mode,
        .kv_slots = st->kv_slots,
        .kv_type = c->kv_type,
        .freq_factors = m->rope_freqs,
    };

    if (op->begin_step) op->begin_step(be, b);
    op->embed(be, &m->tok_embd, b, st->x);
    for (int32_t l = 0; l < c->n_layer; l++) {
        const sglc_layer_weights *w = &m->layers[l];
        op->rmsnorm(be, st->x, &w->attn_norm, st->xb, T, d, c->rms_eps);
        const sglc_weight *qkv[3] = {&w->wq, &w->wk, &w->wv};
        const sglc_weight *qkv_b[3] = {w->bq.present ? &w->bq : NULL, w->bk.present ? &w->bk : NULL,
                                       w->bv.present ? &w->bv : NULL};
        float *const qkv_y[3] = {st->q, st->k, st->v};
        matmul_n(be, 3, qkv, qkv_b, st->xb, T, qkv_y);
        if (w->q_norm.present) {
            op->rmsnorm(be, st->q, &w->q_norm, st->q, T * c->n_head, c->head_dim, c->rms_eps);
            op->rmsnorm(be, st->k, &w->k_norm, st->k, T * c->n_head_kv, c->head_dim, c->rms_eps);
        }
        if (st->fused_rope) {
            op->rope_kv_store(be, b, st->q, st->k, st->v, st->k_cache[l], st->v_cache[l], &ap);
        } else {
            op->rope(be, b, st->q, st->k, &ap);
            op->kv_store(be, b, st->k, st->v, st->k_cache[l], st->v_cache[l], &ap);
        }
        op->attention(be, b, st->q, st->k_cache[l], st->v_cache[l], st->att, &ap);
        op->matmul(be, &w->wo, w->bo.present ? &w->bo : NULL, st->att, T, st->xb2);
        op->add(be, st->x, st->xb2, T * d);
        op->rmsnorm(be, st->x, &w->ffn_norm, st->xb, T, d, c->rms_eps);
        const sglc_weight *gu[2] = {&w->w_gate, &w->w_up};
        float *const gu_y[2] = {st->hb, st->hb2};
        matmul_n(be, 2, gu, NULL, st->xb, T, gu_y);
        op->silu_mul(be, st->hb, st->hb2, st->hb, T * c->n_ff);
        op->matmul(be, &w->w_down, NULL, st->hb, T, st->xb2);
        op->add(be, st->x, st->xb2, T * d);
    }
    (void)qd;
    (void)kvd;
    if (hb->n_logits > 0) {
        op->gather_rows(be, st->x, b->logit_rows, hb->n_logits, d, st->xl);
        op->rmsnorm(be, st->xl, &m->out_norm, st->xl, hb->n_logits, d, c->rms_eps);
        op->matmul(be, &m->output, NULL, st->xl, hb->n_logits, st->logits_dev);
        op->download(be, st->logits_host, st->logits_dev,
                     (size_t)hb->n_logits * (size_t)c->n_vocab * sizeof(float));
    }
    if (op->end_step) op->end_step(be);
    return SGLC_OK;
}
