/* The forward pass of llama-family decoders (llama, qwen2, qwen3), written once as a sequence
 * of backend ops. One call processes one step: any mix of prefill chunks and decode tokens
 * from several sequences (the batch description says which token goes where). There is no
 * host decision between ops, so a GPU backend can capture the step as a graph.
 *
 * Tensor parallelism (model.h, tp.h): a group's state holds one rank state per rank, each
 * with its own activations, KV cache (of the rank's heads), slot table and sample outputs on
 * its own backend. One batch description drives every rank: each phase of a layer runs rank
 * after rank from this thread (the ops of a GPU rank are queued, so the GPUs overlap), and
 * the partial outputs of the row-parallel o and down products are summed by the communicator
 * before the residual add. The output head and the sample op are replicated: every rank
 * samples the same ids from the same logits (the all-reduce gives every rank the same bits),
 * so a placeholder token of the overlap scheduler reads its id on its own rank; only rank 0's
 * results come back to the host. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "quant/ggml_types.h"

struct sglc_model_state {
    const sglc_model *m; /* borrowed */
    sglc_backend *be;    /* borrowed */
    int32_t max_tokens, max_logits, kv_slots, table_rows, table_stride;
    /* activations in backend memory, [max_tokens][dim] */
    float *x, *xb, *xb2, *q, *k, *v, *att, *hb, *hb2;
    float *xl;                 /* [max_logits][n_embd] rows gathered for the output head */
    float *logits_dev;         /* [max_logits][n_vocab] */
    float *logits_host;        /* host copy for sglc_model_forward's callers, made on first use */
    void **k_cache, **v_cache; /* per layer [kv_slots][n_head_kv * head_dim] of cfg.kv_type */
    size_t kv_bytes;
    int32_t *slot_table; /* backend memory [table_rows][table_stride]: req_to_token */
    /* the sample op's outputs in backend memory and their host copies */
    sglc_sample_out out_dev;
    int32_t *ids_host, *top_ids_host;
    float *logprob_host, *top_lp_host, *ids_lp_host;
    sglc_sample_result result;
    sglc_penalty_tables pen; /* backend memory; n_rows 0 until sglc_model_penalty_open */
    int32_t last_logits;     /* logit rows of the last forward */
    /* a decode step padded to the backend's graph size (decode_pad): copies of the batch
     * arrays, [max_tokens] each; padding writes the spare KV slot kv_slots */
    int32_t *pad_tokens, *pad_pos, *pad_seq, *pad_slot, *pad_src, *pad_rows;
    int fused_rope; /* the custom RoPE + KV write kernel (opt-in, for A/B tests) */
    float *rope_cs; /* backend memory: the host's RoPE (cos, sin) table (wants_rope_table) */
    int32_t rope_cs_len;
    /* tensor parallelism: rank[r] is rank r's state (rank[0] == this state), n_ranks 1 when
     * the model is whole; the others are owned by rank 0 */
    int32_t n_ranks;
    struct sglc_model_state *rank[SGLC_TP_MAX];
};

/* heads, KV heads and feed-forward rows this rank computes */
static int32_t rank_heads(const sglc_model *m) {
    return m->tp_size > 1 ? m->tp_n_head : m->cfg.n_head;
}
static int32_t rank_heads_kv(const sglc_model *m) {
    return m->tp_size > 1 ? m->tp_n_head_kv : m->cfg.n_head_kv;
}
static int32_t rank_ff(const sglc_model *m) {
    return m->tp_size > 1 ? m->tp_n_ff : m->cfg.n_ff;
}

static void use_rank(sglc_backend *be) {
    if (be->ops->activate) be->ops->activate(be);
}

void sglc_model_state_close(sglc_model_state *st) {
    if (!st) return;
    for (int32_t r = st->n_ranks - 1; r >= 1; r--)
        sglc_model_state_close(st->rank[r]);
    sglc_backend *be = st->be;
    use_rank(be);
    void *bufs[] = {st->x,
                    st->xb,
                    st->xb2,
                    st->q,
                    st->k,
                    st->v,
                    st->att,
                    st->hb,
                    st->hb2,
                    st->xl,
                    st->logits_dev,
                    st->slot_table,
                    st->out_dev.ids,
                    st->out_dev.logprob,
                    st->out_dev.top_ids,
                    st->out_dev.top_lp,
                    st->out_dev.ids_lp,
                    st->pen.counts,
                    st->pen.seen,
                    st->rope_cs};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) be->ops->free(be, bufs[i]);
    if (st->k_cache)
        for (int32_t l = 0; l < st->m->cfg.n_layer; l++) {
            be->ops->free(be, st->k_cache[l]);
            be->ops->free(be, st->v_cache[l]);
        }
    free(st->k_cache);
    free(st->v_cache);
    free(st->logits_host);
    free(st->ids_host), free(st->top_ids_host), free(st->logprob_host), free(st->top_lp_host);
    free(st->ids_lp_host);
    free(st->pad_tokens), free(st->pad_pos), free(st->pad_seq), free(st->pad_slot);
    free(st->pad_src), free(st->pad_rows);
    free(st);
}

size_t sglc_model_state_kv_bytes(const sglc_model_state *st) {
    size_t n = st->kv_bytes;
    for (int32_t r = 1; r < st->n_ranks; r++)
        n += st->rank[r]->kv_bytes;
    return n;
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

static int alloc_bytes(sglc_backend *be, void **p, int64_t a, int64_t b, size_t es, sglc_err *err) {
    size_t n;
    if (a <= 0 || b <= 0 || __builtin_mul_overflow((size_t)a, (size_t)b, &n) ||
        __builtin_mul_overflow(n, es, &n))
        return sglc_err_set(err, SGLC_ERR_RANGE, "buffer size overflow");
    *p = be->ops->alloc(be, n);
    if (!*p)
        return sglc_err_set(err, SGLC_ERR_NOMEM, "cannot allocate %zu MB of %s memory", n >> 20,
                            be->ops->name);
    return SGLC_OK;
}

/* The RoPE table of a backend that asks for one (backend.h rope_cs): the CPU's cos and sin
 * (sglc_rope_table) for the positions a sequence can reach, up to the model's trained context
 * and the KV pool, at most 256k; later positions the backend rotates itself. */
static int rope_table_open(sglc_model_state *st, sglc_err *err) {
    const sglc_model_config *c = &st->m->cfg;
    const int32_t half = c->rot_dim / 2;
    if (half <= 0) return SGLC_OK;
    int64_t len = c->n_ctx_train > 0 ? c->n_ctx_train : 8192;
    if (len > (int64_t)st->kv_slots + 1) len = (int64_t)st->kv_slots + 1;
    if (len > (1 << 18)) len = 1 << 18;
    sglc_attn_params p = {.rot_dim = c->rot_dim, .theta = c->rope_theta};
    float *ff = NULL, *tab = malloc((size_t)len * (size_t)half * 2 * sizeof(float));
    float *cs = malloc((size_t)half * sizeof(float)), *sn = malloc((size_t)half * sizeof(float));
    int rc = SGLC_OK;
    if (!tab || !cs || !sn) {
        rc = sglc_err_set(err, SGLC_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (st->m->rope_freqs) { /* the factors live in backend memory */
        if (!(ff = malloc((size_t)half * sizeof(float)))) {
            rc = sglc_err_set(err, SGLC_ERR_NOMEM, "out of memory");
            goto done;
        }
        st->be->ops->download(st->be, ff, st->m->rope_freqs, (size_t)half * sizeof(float));
        st->be->ops->sync(st->be);
    }
    for (int64_t pos = 0; pos < len; pos++) {
        sglc_rope_table((int32_t)pos, &p, ff, cs, sn);
        for (int32_t i = 0; i < half; i++) {
            tab[((size_t)pos * (size_t)half + (size_t)i) * 2] = cs[i];
            tab[((size_t)pos * (size_t)half + (size_t)i) * 2 + 1] = sn[i];
        }
    }
    if ((rc = alloc_f32(st->be, &st->rope_cs, len, 2 * (int64_t)half, err)) != 0) goto done;
    st->be->ops->upload(st->be, st->rope_cs, tab, (size_t)len * (size_t)half * 2 * sizeof(float));
    st->rope_cs_len = (int32_t)len;
done:
    free(ff), free(tab), free(cs), free(sn);
    return rc;
}
static int state_open_rank(sglc_model_state **out, const sglc_model *m,
                           const sglc_model_state_limits *lim, sglc_err *err);

int sglc_model_state_open(sglc_model_state **out, const sglc_model *m,
                          const sglc_model_state_limits *lim, sglc_err *err) {
    int rc = state_open_rank(out, m, lim, err);
    if (rc || !m->tp) return rc;
    sglc_model_state *st = *out;
    for (int32_t r = 1; r < m->tp->n && rc == SGLC_OK; r++)
        if ((rc = state_open_rank(&st->rank[r], m->tp->rank[r], lim, err)) == 0) st->n_ranks++;
    if (rc) {
        sglc_model_state_close(st);
        *out = NULL;
    }
    return rc;
}

static int state_open_rank(sglc_model_state **out, const sglc_model *m,
                           const sglc_model_state_limits *lim, sglc_err *err) {
    *out = NULL;
    int32_t max_tokens = lim->max_tokens, max_logits = lim->max_logits, kv_slots = lim->kv_slots;
    if (max_tokens <= 0 || max_logits <= 0 || max_logits > max_tokens || kv_slots <= 0 ||
        lim->table_rows <= 0 || lim->table_stride <= 0)
        return sglc_err_set(err, SGLC_ERR_ARG, "bad model state limits");
    if (!m->be->ops->sample)
        return sglc_err_set(err, SGLC_ERR_UNSUPPORTED, "device %s has no sample op",
                            m->be->ops->name);
    sglc_model_state *st = calloc(1, sizeof *st);
    if (!st) return sglc_err_set(err, SGLC_ERR_NOMEM, "out of memory");
    st->m = m;
    st->be = m->be;
    st->n_ranks = 1;
    st->rank[0] = st;
    use_rank(st->be);
    st->max_tokens = max_tokens;
    st->max_logits = max_logits;
    st->kv_slots = kv_slots;
    st->table_rows = lim->table_rows;
    st->table_stride = lim->table_stride;
    const sglc_model_config *c = &m->cfg;
    int64_t d = c->n_embd, qd = (int64_t)rank_heads(m) * c->head_dim,
            kvd = (int64_t)rank_heads_kv(m) * c->head_dim, T = max_tokens, ff = rank_ff(m);
    int rc;
    if ((rc = alloc_f32(st->be, &st->x, T, d, err)) ||
        (rc = alloc_f32(st->be, &st->xb, T, d, err)) ||
        (rc = alloc_f32(st->be, &st->xb2, T, d > qd ? d : qd, err)) ||
        (rc = alloc_f32(st->be, &st->q, T, qd, err)) ||
        (rc = alloc_f32(st->be, &st->k, T, kvd, err)) ||
        (rc = alloc_f32(st->be, &st->v, T, kvd, err)) ||
        (rc = alloc_f32(st->be, &st->att, T, qd, err)) ||
        (rc = alloc_f32(st->be, &st->hb, T, ff, err)) ||
        (rc = alloc_f32(st->be, &st->hb2, T, ff, err)) ||
        (rc = alloc_f32(st->be, &st->xl, max_logits, d, err)) ||
        (rc = alloc_f32(st->be, &st->logits_dev, max_logits, c->n_vocab, err)) ||
        (rc = alloc_bytes(st->be, (void **)&st->slot_table, lim->table_rows, lim->table_stride,
                          sizeof(int32_t), err)) ||
        (rc =
             alloc_bytes(st->be, (void **)&st->out_dev.ids, max_logits, 1, sizeof(int32_t), err)) ||
        (rc = alloc_bytes(st->be, (void **)&st->out_dev.logprob, max_logits, 1, sizeof(float),
                          err)) ||
        (rc = alloc_bytes(st->be, (void **)&st->out_dev.top_ids, max_logits, SGLC_SAMPLE_TOP_MAX,
                          sizeof(int32_t), err)) ||
        (rc = alloc_bytes(st->be, (void **)&st->out_dev.top_lp, max_logits, SGLC_SAMPLE_TOP_MAX,
                          sizeof(float), err)) ||
        (rc = alloc_bytes(st->be, (void **)&st->out_dev.ids_lp, max_logits, SGLC_SAMPLE_IDS_MAX,
                          sizeof(float), err)))
        goto cleanup;
    size_t R = (size_t)max_logits;
    st->ids_host = malloc(R * sizeof(int32_t));
    st->logprob_host = malloc(R * sizeof(float));
    st->top_ids_host = malloc(R * SGLC_SAMPLE_TOP_MAX * sizeof(int32_t));
    st->top_lp_host = malloc(R * SGLC_SAMPLE_TOP_MAX * sizeof(float));
    st->ids_lp_host = malloc(R * SGLC_SAMPLE_IDS_MAX * sizeof(float));
    st->k_cache = calloc((size_t)c->n_layer, sizeof(void *));
    st->v_cache = calloc((size_t)c->n_layer, sizeof(void *));
    if (!st->ids_host || !st->logprob_host || !st->top_ids_host || !st->top_lp_host ||
        !st->ids_lp_host || !st->k_cache || !st->v_cache) {
        rc = sglc_err_set(err, SGLC_ERR_NOMEM, "out of memory");
        goto cleanup;
    }
    for (int32_t l = 0; l < c->n_layer; l++) {
        /* an f16 cache is allocated as half as many f32 (kvd is even for every real model) */
        int64_t cols = c->kv_type == SGLC_GGML_TYPE_F16 ? (kvd + 1) / 2 : kvd;
        /* one spare slot past the pool: padding tokens of a graph-sized decode step write it */
        if ((rc = alloc_f32(st->be, (float **)&st->k_cache[l], kv_slots + 1, cols, err)) ||
            (rc = alloc_f32(st->be, (float **)&st->v_cache[l], kv_slots + 1, cols, err)))
            goto cleanup;
    }
    st->result = (sglc_sample_result){.ids = st->ids_host,
                                      .logprob = st->logprob_host,
                                      .top_ids = st->top_ids_host,
                                      .top_lp = st->top_lp_host,
                                      .ids_lp = st->ids_lp_host};
    st->fused_rope = sglc_custom_rope_requested() && st->be->ops->rope_kv_store != NULL;
    if (st->be->ops->wants_rope_table && (rc = rope_table_open(st, err)) != 0) goto cleanup;
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
    sglc_attn_params ap = {.n_head = rank_heads(m),
                           .n_head_kv = rank_heads_kv(m),
                           .head_dim = c->head_dim,
                           .rot_dim = c->rot_dim,
                           .kv_slots = st->kv_slots + 1, /* the pool and the spare slot */
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
    return rc ? rc : sglc_model_logits(st, logits, err);
}

int sglc_model_logits(sglc_model_state *st, const float **logits, sglc_err *err) {
    size_t V = (size_t)st->m->cfg.n_vocab;
    if (!st->logits_host) {
        st->logits_host = malloc((size_t)st->max_logits * V * sizeof(float));
        if (!st->logits_host) return sglc_err_set(err, SGLC_ERR_NOMEM, "out of memory");
    }
    use_rank(st->be);
    if (st->last_logits > 0)
        st->be->ops->download(st->be, st->logits_host, st->logits_dev,
                              (size_t)st->last_logits * V * sizeof(float));
    st->be->ops->sync(st->be);
    *logits = st->logits_host;
    return SGLC_OK;
}

/* A bad index in a sampling description would read or write outside backend memory: refuse it. */
static int check_sample_desc(const sglc_model_state *st, const sglc_sample_desc *d, sglc_err *err) {
    int32_t V = st->m->cfg.n_vocab;
    if (d->n_rows != st->last_logits)
        return sglc_err_set(err, SGLC_ERR_ARG, "%d sampling rows for %d logit rows", d->n_rows,
                            st->last_logits);
    for (int32_t r = 0; r < d->n_rows; r++) {
        const sglc_sample_row *p = &d->rows[r];
        int bad = p->forced >= V || p->penalty_row >= st->pen.n_rows ||
                  p->mask_row >= d->n_mask_rows || p->n_bias < 0 || p->bias_start < 0 ||
                  p->bias_start > d->n_bias_total - p->n_bias || p->n_ids < 0 ||
                  p->n_ids > SGLC_SAMPLE_IDS_MAX || p->ids_start < 0 ||
                  p->ids_start > d->n_lp_ids_total - p->n_ids || p->top_logprobs < 0 ||
                  p->top_logprobs > SGLC_SAMPLE_TOP_MAX ||
                  (p->forced < 0 && p->temperature > 0 && !(p->uniform >= 0 && p->uniform < 1));
        for (int32_t j = 0; !bad && j < p->n_ids; j++)
            bad = d->lp_ids[p->ids_start + j] < 0 || d->lp_ids[p->ids_start + j] >= V;
        if (bad) return sglc_err_set(err, SGLC_ERR_ARG, "bad sampling parameters for row %d", r);
    }
    return SGLC_OK;
}

int sglc_model_sample_launch(sglc_model_state *st, const sglc_sample_desc *d, sglc_err *err) {
    int rc = check_sample_desc(st, d, err);
    if (rc) return rc;
    sglc_backend *be = st->be;
    st->result.n_rows = d->n_rows;
    st->result.has_logprobs = d->any_logprob;
    if (d->n_rows == 0) return SGLC_OK;
    /* every rank samples (its ids feed its own placeholder tokens); rank 0's come back */
    for (int32_t r = st->n_ranks - 1; r >= 0; r--) {
        sglc_model_state *rst = st->rank[r];
        use_rank(rst->be);
        rst->be->ops->sample(rst->be, rst->logits_dev, st->m->cfg.n_vocab, d,
                             rst->pen.n_rows ? &rst->pen : NULL, &rst->out_dev);
    }
    size_t R = (size_t)d->n_rows;
    /* only the ids, and the logprob arrays when a row asked for them, come back */
    be->ops->download(be, st->ids_host, st->out_dev.ids, R * sizeof(int32_t));
    if (d->any_logprob) {
        be->ops->download(be, st->logprob_host, st->out_dev.logprob, R * sizeof(float));
        be->ops->download(be, st->top_ids_host, st->out_dev.top_ids,
                          R * SGLC_SAMPLE_TOP_MAX * sizeof(int32_t));
        be->ops->download(be, st->top_lp_host, st->out_dev.top_lp,
                          R * SGLC_SAMPLE_TOP_MAX * sizeof(float));
        be->ops->download(be, st->ids_lp_host, st->out_dev.ids_lp,
                          R * SGLC_SAMPLE_IDS_MAX * sizeof(float));
    }
    return SGLC_OK;
}

int sglc_model_step_wait(sglc_model_state *st, const sglc_sample_result **res, sglc_err *err) {
    (void)err;
    for (int32_t r = st->n_ranks - 1; r >= 0; r--) {
        use_rank(st->rank[r]->be);
        st->rank[r]->be->ops->sync(st->rank[r]->be);
    }
    *res = &st->result;
    return SGLC_OK;
}

static int penalty_open_rank(sglc_model_state *st, int32_t n_rows, sglc_err *err);
static int penalty_load_rank(sglc_model_state *st, int32_t row, const int32_t *counts,
                             const int32_t *seen_ids, int32_t n_seen, sglc_err *err);

/* penalty tables: every rank keeps its own (its sample op updates them) */
int sglc_model_penalty_open(sglc_model_state *st, int32_t n_rows, sglc_err *err) {
    int rc = SGLC_OK;
    for (int32_t r = 0; r < st->n_ranks && rc == SGLC_OK; r++)
        rc = penalty_open_rank(st->rank[r], n_rows, err);
    return rc;
}

int sglc_model_penalty_load(sglc_model_state *st, int32_t row, const int32_t *counts,
                            const int32_t *seen_ids, int32_t n_seen, sglc_err *err) {
    int rc = SGLC_OK;
    for (int32_t r = 0; r < st->n_ranks && rc == SGLC_OK; r++)
        rc = penalty_load_rank(st->rank[r], row, counts, seen_ids, n_seen, err);
    return rc;
}

static int penalty_open_rank(sglc_model_state *st, int32_t n_rows, sglc_err *err) {
    use_rank(st->be);
    if (st->pen.n_rows >= n_rows) return SGLC_OK;
    if (st->pen.n_rows > 0) return sglc_err_set(err, SGLC_ERR_ARG, "penalty tables already sized");
    int rc;
    int32_t V = st->m->cfg.n_vocab;
    if ((rc = alloc_bytes(st->be, (void **)&st->pen.counts, n_rows, V, sizeof(int32_t), err)) ||
        (rc = alloc_bytes(st->be, (void **)&st->pen.seen, n_rows, V, 1, err))) {
        if (st->pen.counts) st->be->ops->free(st->be, st->pen.counts);
        st->pen.counts = NULL;
        return rc;
    }
    st->pen.n_rows = n_rows;
    return SGLC_OK;
}

static int penalty_load_rank(sglc_model_state *st, int32_t row, const int32_t *counts,
                             const int32_t *seen_ids, int32_t n_seen, sglc_err *err) {
    use_rank(st->be);
    if (row < 0 || row >= st->pen.n_rows)
        return sglc_err_set(err, SGLC_ERR_ARG, "penalty row %d outside the tables", row);
    size_t V = (size_t)st->m->cfg.n_vocab;
    int32_t *c = counts ? NULL : calloc(V, sizeof(int32_t));
    uint8_t *seen = calloc(V, 1);
    if ((!counts && !c) || !seen) {
        free(c), free(seen);
        return sglc_err_set(err, SGLC_ERR_NOMEM, "out of memory");
    }
    for (int32_t i = 0; i < n_seen; i++)
        if (seen_ids[i] >= 0 && (size_t)seen_ids[i] < V) seen[seen_ids[i]] = 1;
    st->be->ops->upload(st->be, st->pen.counts + (size_t)row * V, counts ? counts : c,
                        V * sizeof(int32_t));
    st->be->ops->upload(st->be, st->pen.seen + (size_t)row * V, seen, V);
    st->be->ops->sync(st->be); /* the host buffers go now */
    free(c), free(seen);
    return SGLC_OK;
}

int sglc_model_penalty_save(sglc_model_state *st, int32_t row, int32_t *counts, sglc_err *err) {
    if (row < 0 || row >= st->pen.n_rows)
        return sglc_err_set(err, SGLC_ERR_ARG, "penalty row %d outside the tables", row);
    size_t V = (size_t)st->m->cfg.n_vocab;
    use_rank(st->be);
    st->be->ops->download(st->be, counts, st->pen.counts + (size_t)row * V, V * sizeof(int32_t));
    st->be->ops->sync(st->be);
    return SGLC_OK;
}

int32_t sglc_model_state_table_stride(const sglc_model_state *st) {
    return st->table_stride;
}

/* Every index of the batch against the state's limits: a bad one would read or write outside
 * backend memory. */
static int check_batch(const sglc_model_state *st, const sglc_batch *hb, sglc_err *err) {
    const sglc_model_config *c = &st->m->cfg;
    int64_t table = (int64_t)st->table_rows * st->table_stride;
    if (hb->n_tokens <= 0 || hb->n_tokens > st->max_tokens || hb->n_logits < 0 ||
        hb->n_logits > st->max_logits || hb->n_seqs <= 0 || hb->n_seqs > st->table_rows ||
        hb->n_slot_writes < 0)
        return sglc_err_set(err, SGLC_ERR_ARG,
                            "step of %d tokens / %d logit rows / %d sequences exceeds limits",
                            hb->n_tokens, hb->n_logits, hb->n_seqs);
    for (int32_t t = 0; t < hb->n_tokens; t++) {
        int placeholder = hb->token_src && hb->token_src[t] >= 0;
        if (placeholder && hb->token_src[t] >= st->last_logits)
            return sglc_err_set(err, SGLC_ERR_ARG, "token %d takes sampled row %d of %d", t,
                                hb->token_src[t], st->last_logits);
        if (!placeholder && (hb->tokens[t] < 0 || hb->tokens[t] >= c->n_vocab))
            return sglc_err_set(err, SGLC_ERR_ARG, "token id %d outside the vocabulary",
                                hb->tokens[t]);
        if (hb->out_slot[t] < 0 || hb->out_slot[t] >= st->kv_slots)
            return sglc_err_set(err, SGLC_ERR_ARG, "KV slot %d outside the pool", hb->out_slot[t]);
        if (hb->seq[t] < 0 || hb->seq[t] >= hb->n_seqs || hb->pos[t] < 0 ||
            hb->pos[t] >= st->table_stride)
            return sglc_err_set(err, SGLC_ERR_ARG, "token %d: bad sequence or position", t);
    }
    for (int32_t s = 0; s < hb->n_seqs; s++)
        if (hb->seq_slot_start[s] < 0 || hb->seq_slot_start[s] % st->table_stride != 0 ||
            hb->seq_slot_start[s] >= table)
            return sglc_err_set(err, SGLC_ERR_ARG, "sequence %d: slot row outside the table", s);
    for (int32_t i = 0; i < hb->n_slot_writes; i++)
        if (hb->slot_write_idx[i] < 0 || hb->slot_write_idx[i] >= table ||
            hb->slot_write_val[i] < 0 || hb->slot_write_val[i] >= st->kv_slots)
            return sglc_err_set(err, SGLC_ERR_ARG, "slot write %d outside the table or pool", i);
    for (int32_t r = 0; r < hb->n_logits; r++)
        if (hb->logit_rows[r] < 0 || hb->logit_rows[r] >= hb->n_tokens)
            return sglc_err_set(err, SGLC_ERR_ARG, "logit row %d outside the step", r);
    return SGLC_OK;
}

/* Pads a decode step to the backend's graph size: every op then runs at that size (a graph
 * captured once replays), the padding tokens (token 0 at position 0 of the first sequence)
 * write the spare KV slot, and their logit rows are computed but never sampled. */
static int pad_decode(sglc_model_state *st, sglc_batch *b, sglc_err *err) {
    int32_t n = b->n_tokens, P = st->be->ops->decode_pad(st->be, n);
    if (P <= n || P > st->max_tokens || P > st->max_logits) return SGLC_OK;
    if (!st->pad_tokens) {
        size_t T = (size_t)st->max_tokens * sizeof(int32_t);
        st->pad_tokens = malloc(T), st->pad_pos = malloc(T), st->pad_seq = malloc(T);
        st->pad_slot = malloc(T), st->pad_src = malloc(T), st->pad_rows = malloc(T);
        if (!st->pad_tokens || !st->pad_pos || !st->pad_seq || !st->pad_slot || !st->pad_src ||
            !st->pad_rows)
            return sglc_err_set(err, SGLC_ERR_NOMEM, "out of memory");
    }
    size_t bytes = (size_t)n * sizeof(int32_t);
    memcpy(st->pad_tokens, b->tokens, bytes);
    memcpy(st->pad_pos, b->pos, bytes);
    memcpy(st->pad_seq, b->seq, bytes);
    memcpy(st->pad_slot, b->out_slot, bytes);
    memcpy(st->pad_rows, b->logit_rows, (size_t)b->n_logits * sizeof(int32_t));
    for (int32_t t = 0; t < n; t++)
        st->pad_src[t] = b->token_src ? b->token_src[t] : -1;
    for (int32_t t = n; t < P; t++) {
        st->pad_tokens[t] = 0;
        st->pad_pos[t] = 0;
        st->pad_seq[t] = 0;
        st->pad_slot[t] = st->kv_slots;
        st->pad_src[t] = -1;
    }
    for (int32_t r = b->n_logits; r < P; r++)
        st->pad_rows[r] = r;
    b->tokens = st->pad_tokens, b->pos = st->pad_pos, b->seq = st->pad_seq;
    b->out_slot = st->pad_slot, b->token_src = st->pad_src, b->logit_rows = st->pad_rows;
    b->n_tokens = b->n_tokens_padded = b->n_logits = P;
    return SGLC_OK;
}

/* rmsnorm then n products over the normed x (glu: then silu(y[0]) * y[1] into y[0]), fused
 * when the backend can (norm_matmul_n) */
static void norm_matmul(sglc_backend *be, const float *x, const sglc_weight *norm, float eps,
                        float *xn, int n, const sglc_weight *const *w,
                        const sglc_weight *const *bias, int64_t T, float *const *y, int glu) {
    const sglc_backend_ops *op = be->ops;
    if (op->norm_matmul_n) {
        op->norm_matmul_n(be, x, norm, eps, xn, n, w, bias, T, y, glu);
        return;
    }
    op->rmsnorm(be, x, norm, xn, T, norm->k, eps);
    matmul_n(be, n, w, bias, xn, T, y);
    if (glu) op->silu_mul(be, y[0], y[1], y[0], T * w[0]->n);
}

/* y += W x (+ bias), fused when the backend can (matmul_add) */
static void matmul_add(sglc_backend *be, const sglc_weight *w, const sglc_weight *bias,
                       const float *x, int64_t T, float *y, float *tmp) {
    const sglc_backend_ops *op = be->ops;
    if (op->matmul_add) {
        op->matmul_add(be, w, bias, x, T, y, tmp);
        return;
    }
    op->matmul(be, w, bias, x, T, tmp);
    op->add(be, y, tmp, T * w->n);
}

/* One rank's share of a step: its batch (its own slot table and sample outputs), the batch
 * pointer its ops get, and its attention shape. */
typedef struct {
    sglc_model_state *st;
    sglc_batch hb;
    const sglc_batch *b;
    sglc_attn_params ap;
} rank_step;

/* Attention of layer l up to the o product: added to the residual (one rank), or the rank's
 * partial sum into xb2 (tensor parallel: the all-reduce adds the ranks' parts) */
static void attention_block(rank_step *rs, int32_t l, int partial) {
    sglc_model_state *st = rs->st;
    const sglc_model *m = st->m;
    const sglc_model_config *c = &m->cfg;
    sglc_backend *be = st->be;
    const sglc_backend_ops *op = be->ops;
    const sglc_batch *b = rs->b;
    const sglc_attn_params *ap = &rs->ap;
    const int64_t T = rs->hb.n_tokens;
    const float eps = c->rms_eps;
    const sglc_layer_weights *w = &m->layers[l];
    const sglc_weight *qkv[3] = {&w->wq, &w->wk, &w->wv};
    const sglc_weight *qkv_b[3] = {w->bq.present ? &w->bq : NULL, w->bk.present ? &w->bk : NULL,
                                   w->bv.present ? &w->bv : NULL};
    float *const qkv_y[3] = {st->q, st->k, st->v};
    norm_matmul(be, st->x, &w->attn_norm, eps, st->xb, 3, qkv, qkv_b, T, qkv_y, 0);
    const sglc_weight *qn = w->q_norm.present ? &w->q_norm : NULL;
    const sglc_weight *kn = w->q_norm.present ? &w->k_norm : NULL;
    if (!st->fused_rope && op->qk_norm_rope_kv) {
        op->qk_norm_rope_kv(be, b, st->q, st->k, st->v, qn, kn, eps, st->k_cache[l], st->v_cache[l],
                            ap);
    } else {
        if (qn) {
            op->rmsnorm(be, st->q, qn, st->q, T * ap->n_head, c->head_dim, eps);
            op->rmsnorm(be, st->k, kn, st->k, T * ap->n_head_kv, c->head_dim, eps);
        }
        if (st->fused_rope) {
            op->rope_kv_store(be, b, st->q, st->k, st->v, st->k_cache[l], st->v_cache[l], ap);
        } else {
            op->rope(be, b, st->q, st->k, ap);
            op->kv_store(be, b, st->k, st->v, st->k_cache[l], st->v_cache[l], ap);
        }
    }
    op->attention(be, b, st->q, st->k_cache[l], st->v_cache[l], st->att, ap);
    const sglc_weight *bo = w->bo.present ? &w->bo : NULL;
    if (partial)
        op->matmul(be, &w->wo, bo, st->att, T, st->xb2);
    else
        matmul_add(be, &w->wo, bo, st->att, T, st->x, st->xb2);
}

/* The feed-forward block of layer l, ending like attention_block */
static void ffn_block(rank_step *rs, int32_t l, int partial) {
    sglc_model_state *st = rs->st;
    const sglc_layer_weights *w = &st->m->layers[l];
    sglc_backend *be = st->be;
    const int64_t T = rs->hb.n_tokens;
    const sglc_weight *gu[2] = {&w->w_gate, &w->w_up};
    float *const gu_y[2] = {st->hb, st->hb2};
    norm_matmul(be, st->x, &w->ffn_norm, st->m->cfg.rms_eps, st->xb, 2, gu, NULL, T, gu_y, 1);
    if (partial)
        be->ops->matmul(be, &w->w_down, NULL, st->hb, T, st->xb2);
    else
        matmul_add(be, &w->w_down, NULL, st->hb, T, st->x, st->xb2);
}

/* Tensor parallel: xb2 of every rank becomes the sum of the ranks' partials, which each rank
 * adds to its residual (the same bits on every rank) */
static void reduce_residual(rank_step *rs, int32_t n_ranks, sglc_comm *comm, int64_t n) {
    float *bufs[SGLC_TP_MAX] = {0};
    for (int32_t r = 0; r < n_ranks; r++)
        bufs[r] = rs[r].st->xb2;
    sglc_comm_all_reduce_sum(comm, bufs, n);
    for (int32_t r = 0; r < n_ranks; r++) {
        sglc_model_state *st = rs[r].st;
        use_rank(st->be);
        st->be->ops->add(st->be, st->x, st->xb2, n);
    }
}

int sglc_model_forward_launch(sglc_model_state *st, const sglc_batch *in, sglc_err *err) {
    const sglc_model *m = st->m;
    const sglc_model_config *c = &m->cfg;
    int rc = check_batch(st, in, err);
    if (rc) return rc;
    sglc_batch hbc = *in;
    if (hbc.n_tokens_padded < hbc.n_tokens) hbc.n_tokens_padded = hbc.n_tokens;
    for (int32_t r = 0; r < st->n_ranks; r++)
        st->rank[r]->last_logits = hbc.n_logits;
    if (hbc.is_decode && st->be->ops->decode_pad && (rc = pad_decode(st, &hbc, err)) != 0)
        return rc;
    const int32_t R = st->n_ranks;
    const int partial = R > 1;
    sglc_comm *comm = m->tp ? m->tp->comm : NULL;
    rank_step rs[SGLC_TP_MAX];
    for (int32_t r = 0; r < R; r++) {
        sglc_model_state *rst = st->rank[r];
        const sglc_model *rm = rst->m;
        sglc_backend *be = rst->be;
        use_rank(be);
        rs[r].st = rst;
        rs[r].hb = hbc;
        rs[r].hb.slot_table = rst->slot_table;
        rs[r].hb.prev_ids = rst->out_dev.ids;
        rs[r].b = be->ops->set_batch(be, &rs[r].hb);
        rs[r].ap = (sglc_attn_params){
            .n_head = rank_heads(rm),
            .n_head_kv = rank_heads_kv(rm),
            .head_dim = c->head_dim,
            .rot_dim = c->rot_dim,
            .theta = c->rope_theta,
            .scale = 1.0f / sqrtf((float)c->head_dim),
            .mode = c->rope_mode,
            .kv_slots = rst->kv_slots + 1, /* the pool and the spare slot */
            .kv_type = c->kv_type,
            .freq_factors = rm->rope_freqs,
            .rope_cs = rst->rope_cs,
            .rope_cs_len = rst->rope_cs_len,
        };
        if (be->ops->begin_step) be->ops->begin_step(be, rs[r].b);
        be->ops->embed(be, &rm->tok_embd, rs[r].b, rst->x);
    }
    const int64_t T = hbc.n_tokens, d = c->n_embd;
    for (int32_t l = 0; l < c->n_layer; l++) {
        for (int32_t r = 0; r < R; r++) {
            use_rank(rs[r].st->be);
            attention_block(&rs[r], l, partial);
        }
        if (partial) reduce_residual(rs, R, comm, T * d);
        for (int32_t r = 0; r < R; r++) {
            use_rank(rs[r].st->be);
            ffn_block(&rs[r], l, partial);
        }
        if (partial) reduce_residual(rs, R, comm, T * d);
    }
    for (int32_t r = 0; r < R; r++) {
        sglc_model_state *rst = rs[r].st;
        sglc_backend *be = rst->be;
        use_rank(be);
        if (hbc.n_logits > 0) {
            be->ops->gather_rows(be, rst->x, rs[r].b->logit_rows, hbc.n_logits, d, rst->xl);
            const sglc_weight *ow[1] = {&rst->m->output};
            float *const oy[1] = {rst->logits_dev};
            norm_matmul(be, rst->xl, &rst->m->out_norm, c->rms_eps, rst->xl, 1, ow, NULL,
                        hbc.n_logits, oy, 0);
        }
        if (be->ops->end_step) be->ops->end_step(be);
    }
    return SGLC_OK;
}
