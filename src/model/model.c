/* Model loading from GGUF: reads the architecture keys, checks them for contradictions, binds
 * every tensor the forward pass needs (zero-copy) and checks its shape and type against the
 * config, so that a bad or unsupported file fails here with a clear line, never later inside
 * a kernel. */
#include "model/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "model/tp.h"
#include "quant/ggml_types.h"
#include "quant/mlx_affine.h"

static const char *const k_arch_names[SGLC_ARCH_COUNT] = {"llama", "qwen2", "qwen3"};

const char *sglc_arch_name(sglc_arch arch) {
    return (unsigned)arch < SGLC_ARCH_COUNT ? k_arch_names[arch] : "?";
}

typedef struct {
    sglc_model *m;
    const char *path;
    sglc_err *err;
} loader;

/* Reads "<arch>.<suffix>" as u32 into out; required keys fail when absent. */
static int arch_u32(loader *L, const char *arch, const char *suffix, int required, int32_t *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    uint32_t v = 0;
    int rc = sglc_gguf_get_u32(L->m->gguf, key, &v, L->err);
    if (rc < 0) return rc;
    if (rc == 1) {
        if (required)
            return sglc_err_set(L->err, SGLC_ERR_FORMAT, "%s: missing metadata key %s", L->path,
                                key);
        return SGLC_OK;
    }
    if (v == 0 || v > (1u << 24))
        return sglc_err_set(L->err, SGLC_ERR_FORMAT, "%s: %s = %u is out of range", L->path, key,
                            v);
    *out = (int32_t)v;
    return SGLC_OK;
}

static int arch_f32(loader *L, const char *arch, const char *suffix, float *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    int rc = sglc_gguf_get_f32(L->m->gguf, key, out, L->err);
    if (rc < 0) return rc;
    if (rc == 0 && !(isfinite(*out) && *out > 0.0f))
        return sglc_err_set(L->err, SGLC_ERR_FORMAT, "%s: %s must be a positive number", L->path,
                            key);
    return SGLC_OK;
}

/* Binds tensor name to w, checking shape [n][k] (n == 1 for vectors) and the type. */
static int bind(loader *L, sglc_weight *w, const char *name, int64_t k, int64_t n, int required) {
    const sglc_gguf_tensor *t = sglc_gguf_find_tensor(L->m->gguf, name);
    memset(w, 0, sizeof *w);
    if (!t) {
        if (!required) return SGLC_OK;
        return sglc_err_set(L->err, SGLC_ERR_FORMAT, "%s: missing tensor %s", L->path, name);
    }
    int64_t tn = t->n_dims >= 2 ? t->ne[1] : 1;
    if (t->ne[0] != k || tn != n || t->ne[2] != 1 || t->ne[3] != 1)
        return sglc_err_set(L->err, SGLC_ERR_FORMAT,
                            "%s: tensor %s has shape [%lld, %lld], expected [%lld, %lld] from the "
                            "model config",
                            L->path, name, (long long)t->ne[0], (long long)tn, (long long)k,
                            (long long)n);
    const char *tname = sglc_ggml_type_name(t->type);
    if (!sglc_ggml_type_supported(t->type) || !L->m->be->ops->supports_weight(L->m->be, t->type))
        return sglc_err_set(L->err, SGLC_ERR_UNSUPPORTED,
                            "%s: tensor %s has weight type %s, which sglc does not support "
                            "(supported: F32 F16 BF16 Q4_0 Q4_1 Q8_0 Q4_K Q5_K Q6_K)",
                            L->path, name, tname ? tname : "unknown");
    if (n == 1 && t->type != SGLC_GGML_TYPE_F32)
        return sglc_err_set(L->err, SGLC_ERR_UNSUPPORTED, "%s: vector %s must be F32, is %s",
                            L->path, name, tname);
    w->type = t->type;
    w->k = k;
    w->n = n;
    w->host = t->data;
    w->present = 1;
    w->host_bytes = t->nbytes;
    L->m->weight_bytes += t->nbytes;
    return SGLC_OK;
}

static int load_config(loader *L) {
    sglc_model *m = L->m;
    sglc_model_config *c = &m->cfg;
    const char *arch_s = NULL;
    size_t arch_len = 0;
    int rc = sglc_gguf_get_str(m->gguf, "general.architecture", &arch_s, &arch_len, L->err);
    if (rc < 0) return rc;
    if (rc == 1)
        return sglc_err_set(L->err, SGLC_ERR_FORMAT, "%s: missing general.architecture", L->path);
    char arch[64];
    if (arch_len >= sizeof arch) arch_len = sizeof arch - 1;
    memcpy(arch, arch_s, arch_len);
    arch[arch_len] = 0;
    int found = 0;
    for (int a = 0; a < SGLC_ARCH_COUNT; a++)
        if (strcmp(arch, k_arch_names[a]) == 0) {
            c->arch = (sglc_arch)a;
            found = 1;
        }
    if (!found)
        return sglc_err_set(L->err, SGLC_ERR_UNSUPPORTED,
                            "%s: architecture '%s' is not supported (supported: llama, qwen2, "
                            "qwen3)",
                            L->path, arch);
    if ((rc = arch_u32(L, arch, "block_count", 1, &c->n_layer))) return rc;
    if ((rc = arch_u32(L, arch, "embedding_length", 1, &c->n_embd))) return rc;
    if ((rc = arch_u32(L, arch, "feed_forward_length", 1, &c->n_ff))) return rc;
    if ((rc = arch_u32(L, arch, "attention.head_count", 1, &c->n_head))) return rc;
    c->n_head_kv = c->n_head;
    if ((rc = arch_u32(L, arch, "attention.head_count_kv", 0, &c->n_head_kv))) return rc;
    c->n_ctx_train = 4096;
    if ((rc = arch_u32(L, arch, "context_length", 0, &c->n_ctx_train))) return rc;
    if (c->n_head_kv > c->n_head || c->n_head % c->n_head_kv != 0)
        return sglc_err_set(L->err, SGLC_ERR_FORMAT,
                            "%s: head_count %d is not a multiple of head_count_kv %d", L->path,
                            c->n_head, c->n_head_kv);
    c->head_dim = 0;
    if ((rc = arch_u32(L, arch, "attention.key_length", 0, &c->head_dim))) return rc;
    if (c->head_dim == 0) {
        if (c->n_embd % c->n_head != 0)
            return sglc_err_set(L->err, SGLC_ERR_FORMAT,
                                "%s: embedding_length %d is not divisible by head_count %d",
                                L->path, c->n_embd, c->n_head);
        c->head_dim = c->n_embd / c->n_head;
    }
    c->rot_dim = c->head_dim;
    if ((rc = arch_u32(L, arch, "rope.dimension_count", 0, &c->rot_dim))) return rc;
    if (c->rot_dim > c->head_dim || c->rot_dim % 2 != 0)
        return sglc_err_set(L->err, SGLC_ERR_FORMAT,
                            "%s: rope.dimension_count %d is odd or exceeds the head size %d",
                            L->path, c->rot_dim, c->head_dim);
    c->rope_theta = 10000.0f;
    if ((rc = arch_f32(L, arch, "rope.freq_base", &c->rope_theta))) return rc;
    c->rms_eps = 1e-5f;
    if ((rc = arch_f32(L, arch, "attention.layer_norm_rms_epsilon", &c->rms_eps))) return rc;
    /* llama GGUFs store q/k permuted for pairwise rotation; qwen keeps the HF (neox) layout */
    c->rope_mode = c->arch == SGLC_ARCH_LLAMA ? SGLC_ROPE_NORM : SGLC_ROPE_NEOX;
    c->kv_type = SGLC_GGML_TYPE_F16;
    const sglc_gguf_tensor *emb = sglc_gguf_find_tensor(m->gguf, "token_embd.weight");
    if (!emb || emb->n_dims != 2)
        return sglc_err_set(L->err, SGLC_ERR_FORMAT, "%s: missing 2-d tensor token_embd.weight",
                            L->path);
    if (emb->ne[1] <= 0 || emb->ne[1] > (1 << 24))
        return sglc_err_set(L->err, SGLC_ERR_FORMAT, "%s: vocabulary size %lld out of range",
                            L->path, (long long)emb->ne[1]);
    c->n_vocab = (int32_t)emb->ne[1];
    return SGLC_OK;
}

/* Llama-3 rope scaling: llama.cpp's converter stores the divisor of each rotary frequency as
 * rope_freqs.weight [rot_dim / 2] (F32) instead of metadata keys; without it the model would run
 * with unscaled frequencies, wrong past the original context. */
static int load_rope_freqs(loader *L) {
    sglc_model *m = L->m;
    const sglc_gguf_tensor *t = sglc_gguf_find_tensor(m->gguf, "rope_freqs.weight");
    if (!t) return SGLC_OK;
    int64_t n = m->cfg.rot_dim / 2;
    if (t->type != SGLC_GGML_TYPE_F32 || t->n_dims != 1 || t->ne[0] != n)
        return sglc_err_set(L->err, SGLC_ERR_FORMAT,
                            "%s: rope_freqs.weight must be F32 [%lld] (rope.dimension_count / 2)",
                            L->path, (long long)n);
    size_t bytes = (size_t)n * sizeof(float);
    float *host = malloc(bytes);
    if (!host) return sglc_err_set(L->err, SGLC_ERR_NOMEM, "out of memory");
    memcpy(host, t->data, bytes); /* the file's data section is aligned, but copy to be sure */
    for (int64_t i = 0; i < n; i++)
        if (!(isfinite(host[i]) && host[i] > 0.0f)) {
            free(host);
            return sglc_err_set(L->err, SGLC_ERR_FORMAT,
                                "%s: rope_freqs.weight[%lld] must be a positive number", L->path,
                                (long long)i);
        }
    m->rope_freqs = m->be->ops->alloc(m->be, bytes);
    if (m->rope_freqs) m->be->ops->upload(m->be, m->rope_freqs, host, bytes);
    free(host);
    if (!m->rope_freqs) return sglc_err_set(L->err, SGLC_ERR_NOMEM, "out of backend memory");
    return SGLC_OK;
}

static int load_weights(loader *L) {
    sglc_model *m = L->m;
    const sglc_model_config *c = &m->cfg;
    int64_t d = c->n_embd, qd = (int64_t)c->n_head * c->head_dim,
            kvd = (int64_t)c->n_head_kv * c->head_dim;
    int rc;
    if ((rc = bind(L, &m->tok_embd, "token_embd.weight", d, c->n_vocab, 1))) return rc;
    if ((rc = bind(L, &m->out_norm, "output_norm.weight", d, 1, 1))) return rc;
    if ((rc = bind(L, &m->output, "output.weight", d, c->n_vocab, 0))) return rc;
    if (!m->output.present) {
        m->output = m->tok_embd;
        m->cfg.tied_embeddings = 1;
    }
    if ((rc = load_rope_freqs(L))) return rc;
    m->layers = calloc((size_t)c->n_layer, sizeof *m->layers);
    if (!m->layers) return sglc_err_set(L->err, SGLC_ERR_NOMEM, "out of memory");
    for (int32_t l = 0; l < c->n_layer; l++) {
        sglc_progress("Loading weights", l + 1, c->n_layer);
        sglc_layer_weights *w = &m->layers[l];
        char name[96];
#define BIND(field, suffix, k, n, req)                                                             \
    do {                                                                                           \
        snprintf(name, sizeof name, "blk.%d.%s", (int)l, suffix);                                  \
        if ((rc = bind(L, &w->field, name, k, n, req))) return rc;                                 \
    } while (0)
        BIND(attn_norm, "attn_norm.weight", d, 1, 1);
        BIND(wq, "attn_q.weight", d, qd, 1);
        BIND(wk, "attn_k.weight", d, kvd, 1);
        BIND(wv, "attn_v.weight", d, kvd, 1);
        BIND(wo, "attn_output.weight", qd, d, 1);
        int qwen2 = c->arch == SGLC_ARCH_QWEN2, qwen3 = c->arch == SGLC_ARCH_QWEN3;
        BIND(bq, "attn_q.bias", qd, 1, qwen2);
        BIND(bk, "attn_k.bias", kvd, 1, qwen2);
        BIND(bv, "attn_v.bias", kvd, 1, qwen2);
        BIND(q_norm, "attn_q_norm.weight", c->head_dim, 1, qwen3);
        BIND(k_norm, "attn_k_norm.weight", c->head_dim, 1, qwen3);
        BIND(ffn_norm, "ffn_norm.weight", d, 1, 1);
        BIND(w_gate, "ffn_gate.weight", d, c->n_ff, 1);
        BIND(w_up, "ffn_up.weight", d, c->n_ff, 1);
        BIND(w_down, "ffn_down.weight", c->n_ff, d, 1);
#undef BIND
    }
    return SGLC_OK;
}

void sglc_drop_mapped_pages(const void *p, size_t bytes) {
    long ps = sysconf(_SC_PAGESIZE);
    if (ps <= 0) return;
    uintptr_t a = ((uintptr_t)p + (uintptr_t)ps - 1) & ~((uintptr_t)ps - 1);
    uintptr_t e = ((uintptr_t)p + bytes) & ~((uintptr_t)ps - 1);
    if (e > a) (void)madvise((void *)a, e - a, MADV_DONTNEED);
}

static int prepare_one(sglc_model *m, sglc_weight *w, sglc_err *err) {
    /* a weight with dev is on the backend already (quantize_affine made it there) */
    if (!w->present || w->dev) return SGLC_OK;
    int rc = m->be->ops->prepare_weight(m->be, w, err);
    if (rc != 0) return rc;
    /* The backend computes from its packed copy: the file's pages of the tensor leave our
     * resident set (a read of host, e.g. an embedding row, faults them back from the file). */
    if (w->dev_packed && w->host_bytes && sglc_model_host_is_mapped(m, w->host))
        sglc_drop_mapped_pages(w->host, w->host_bytes);
    return SGLC_OK;
}

int sglc_model_prepare(sglc_model *m, sglc_err *err) {
    if (m->prepared) return SGLC_OK;
    /* tied: one tensor, so the same host data and (after quantize_affine, which leaves host
     * NULL) the same device data */
    int tied = m->output.host == m->tok_embd.host && m->output.dev == m->tok_embd.dev, rc;
    if ((rc = prepare_one(m, &m->tok_embd, err)) || (rc = prepare_one(m, &m->out_norm, err)) ||
        (!tied && (rc = prepare_one(m, &m->output, err))))
        return rc;
    if (tied) m->output = m->tok_embd;
    for (int32_t l = 0; l < m->cfg.n_layer; l++) {
        sglc_layer_weights *L = &m->layers[l];
        sglc_weight *ws[] = {&L->attn_norm, &L->wq,       &L->wk,     &L->wv,   &L->wo,
                             &L->bq,        &L->bk,       &L->bv,     &L->bo,   &L->q_norm,
                             &L->k_norm,    &L->ffn_norm, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++)
            if ((rc = prepare_one(m, ws[i], err))) return rc;
    }
    m->prepared = 1;
    return SGLC_OK;
}

int sglc_model_host_is_mapped(const sglc_model *m, const void *p) {
    if (!m->gguf && !m->st) return 0;
    for (size_t i = 0; i < m->n_host_owned; i++)
        if (m->host_owned[i] == p) return 0;
    return 1;
}

static void say_nothing(const char *line) {
    (void)line;
}

static void use_rank(sglc_backend *be) {
    if (be->ops->activate) be->ops->activate(be);
}

/* The heads, KV heads and feed-forward rows of one rank, or a line saying why the model does
 * not split tp ways. KV heads: tp <= n_head_kv splits them; a larger tp that is a multiple of
 * n_head_kv replicates each on tp / n_head_kv ranks (vLLM's and SGLang's rule), so that the
 * query heads of a rank still share one KV head. */
static int tp_split_sizes(sglc_model *m, int32_t tp, sglc_err *err) {
    const sglc_model_config *c = &m->cfg;
    if (c->n_head % tp != 0)
        return sglc_err_set(err, SGLC_ERR_ARG,
                            "--tp-size %d: the model's %d attention heads do not split %d ways", tp,
                            c->n_head, tp);
    if (c->n_head_kv >= tp ? c->n_head_kv % tp != 0 : tp % c->n_head_kv != 0)
        return sglc_err_set(err, SGLC_ERR_ARG,
                            "--tp-size %d: the model's %d KV heads neither split %d ways nor "
                            "replicate evenly over %d ranks",
                            tp, c->n_head_kv, tp, tp);
    if (c->n_ff % tp != 0)
        return sglc_err_set(err, SGLC_ERR_ARG,
                            "--tp-size %d: the model's feed-forward size %d does not split %d ways",
                            tp, c->n_ff, tp);
    m->tp_size = tp;
    m->tp_n_head = c->n_head / tp;
    m->tp_n_head_kv = c->n_head_kv >= tp ? c->n_head_kv / tp : 1;
    m->tp_n_ff = c->n_ff / tp;
    return SGLC_OK;
}

static int add_owned(sglc_model *m, void *p, sglc_err *err) {
    if (!p) return SGLC_OK;
    void **a = realloc(m->host_owned, (m->n_host_owned + 1) * sizeof *a);
    if (!a) {
        free(p);
        return sglc_err_set(err, SGLC_ERR_NOMEM, "out of memory");
    }
    m->host_owned = a;
    m->host_owned[m->n_host_owned++] = p;
    return SGLC_OK;
}

/* dst = rank's shard of src (absent weights stay absent); a row shard's copy joins m's host
 * copies. ranks / rank: the split (KV weights split over min(tp, n_head_kv) ranks). */
static int shard_into(sglc_model *m, const sglc_weight *src, sglc_tp_split split, int rank,
                      int ranks, sglc_weight *dst, sglc_err *err) {
    if (!src->present) {
        memset(dst, 0, sizeof *dst);
        return SGLC_OK;
    }
    void *owned = NULL;
    int rc = sglc_weight_shard(src, split, rank, ranks, dst, &owned, err);
    if (rc) return rc;
    return add_owned(m, owned, err);
}

/* bytes of a weight's data (and MLX scales and biases); 0 when absent */
static size_t weight_data_bytes(const sglc_weight *w) {
    if (!w->present || w->n <= 0 || w->k <= 0) return 0;
    if (w->type == SGLC_WTYPE_MLX_AFFINE) {
        const size_t es = w->q_dtype == SGLC_GGML_TYPE_F32 ? 4 : 2;
        return (size_t)w->n * ((size_t)sglc_mlx_affine_row_words(w->k, w->q_bits) * 4 +
                               2 * (size_t)(w->k / w->q_group) * es);
    }
    return (size_t)w->n * sglc_ggml_row_bytes(w->type, w->k);
}

/* the bytes of a layer's split matrices and their biases */
static size_t layer_bytes(const sglc_layer_weights *w) {
    const sglc_weight *ws[] = {&w->wq, &w->bq, &w->wk,     &w->bk,   &w->wv,    &w->bv,
                               &w->wo, &w->bo, &w->w_gate, &w->w_up, &w->w_down};
    size_t b = 0;
    for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++)
        b += weight_data_bytes(ws[i]);
    return b;
}

/* Rank r's model from the whole one (src, unprepared, on rank 0's backend): the layer weights
 * become the rank's shards; the rest is shared (views of src's host data, which rank 0 keeps:
 * it takes over src's file mappings and host copies, so rank 0 must be closed last). */
static int tp_make_rank(sglc_model *src, int32_t r, int32_t tp, sglc_backend *be, sglc_model **out,
                        sglc_err *err) {
    *out = NULL;
    sglc_model *m = calloc(1, sizeof *m);
    if (!m) return sglc_err_set(err, SGLC_ERR_NOMEM, "out of memory");
    *m = *src;
    m->be = be;
    m->layers = NULL;
    m->gguf = NULL;
    m->st = NULL;
    m->host_owned = NULL;
    m->n_host_owned = 0;
    m->rope_freqs = NULL;
    m->tp = NULL;
    m->tp_rank = r;
    int rc = SGLC_OK;
    const sglc_model_config *c = &src->cfg;
    if (src->rope_freqs && r > 0) {
        /* src's copy is rank 0's backend memory (rank 0 takes it over): bring it to this rank
         * through the host */
        size_t bytes = (size_t)(c->rot_dim / 2) * sizeof(float);
        float *host = malloc(bytes);
        if (!host) {
            rc = sglc_err_set(err, SGLC_ERR_NOMEM, "out of memory");
            goto cleanup;
        }
        use_rank(src->be);
        src->be->ops->download(src->be, host, src->rope_freqs, bytes);
        src->be->ops->sync(src->be);
        use_rank(be);
        m->rope_freqs = be->ops->alloc(be, bytes);
        if (m->rope_freqs) be->ops->upload(be, m->rope_freqs, host, bytes);
        free(host);
        if (!m->rope_freqs) {
            rc = sglc_err_set(err, SGLC_ERR_NOMEM, "out of %s memory", be->ops->name);
            goto cleanup;
        }
    }
    m->layers = calloc((size_t)c->n_layer, sizeof *m->layers);
    if (!m->layers) {
        rc = sglc_err_set(err, SGLC_ERR_NOMEM, "out of memory");
        goto cleanup;
    }
    const int kv_ranks = c->n_head_kv < tp ? c->n_head_kv : tp;
    const int kv_rank = (int)((int64_t)r * kv_ranks / tp);
    for (int32_t l = 0; l < c->n_layer && rc == SGLC_OK; l++) {
        const sglc_layer_weights *s = &src->layers[l];
        sglc_layer_weights *w = &m->layers[l];
        w->attn_norm = s->attn_norm;
        w->ffn_norm = s->ffn_norm;
        w->q_norm = s->q_norm; /* per head, the same for every head */
        w->k_norm = s->k_norm;
        /* o's bias is added once, by rank 0, before the all-reduce */
        if (r == 0) w->bo = s->bo;
        if ((rc = shard_into(m, &s->wq, SGLC_TP_COLUMN, r, tp, &w->wq, err)) ||
            (rc = shard_into(m, &s->bq, SGLC_TP_COLUMN, r, tp, &w->bq, err)) ||
            (rc = shard_into(m, &s->wk, SGLC_TP_COLUMN, kv_rank, kv_ranks, &w->wk, err)) ||
            (rc = shard_into(m, &s->bk, SGLC_TP_COLUMN, kv_rank, kv_ranks, &w->bk, err)) ||
            (rc = shard_into(m, &s->wv, SGLC_TP_COLUMN, kv_rank, kv_ranks, &w->wv, err)) ||
            (rc = shard_into(m, &s->bv, SGLC_TP_COLUMN, kv_rank, kv_ranks, &w->bv, err)) ||
            (rc = shard_into(m, &s->wo, SGLC_TP_ROW, r, tp, &w->wo, err)) ||
            (rc = shard_into(m, &s->w_gate, SGLC_TP_COLUMN, r, tp, &w->w_gate, err)) ||
            (rc = shard_into(m, &s->w_up, SGLC_TP_COLUMN, r, tp, &w->w_up, err)) ||
            (rc = shard_into(m, &s->w_down, SGLC_TP_ROW, r, tp, &w->w_down, err)))
            break;
    }
    if (rc == SGLC_OK) {
        /* the rank holds its shards of the layer matrices and all of the rest */
        for (int32_t l = 0; l < c->n_layer; l++)
            m->weight_bytes =
                m->weight_bytes - layer_bytes(&src->layers[l]) + layer_bytes(&m->layers[l]);
        *out = m;
        return SGLC_OK;
    }
cleanup:
    sglc_model_close(m);
    return rc;
}

/* --tp-size N > 1: N backends of the device, the model opened once (host data on rank 0's
 * backend), split into N rank models, each quantized (--quantization) and prepared on its own
 * backend, and a communicator over the N. */
static int load_tp(sglc_backend **be, sglc_model **m, const sglc_model_load_params *p,
                   const char *device, sglc_err *err) {
    const int32_t tp = p->tp_size;
    if (tp > SGLC_TP_MAX)
        return sglc_err_set(err, SGLC_ERR_ARG, "--tp-size %d: at most %d ranks (one host)", tp,
                            SGLC_TP_MAX);
    int count = sglc_backend_device_count(device);
    const int step = p->gpu_id_step > 0 ? p->gpu_id_step : 1;
    const int last = p->base_gpu_id + (tp - 1) * step;
    if (count >= 0 && count <= last)
        return sglc_err_set(err, SGLC_ERR_UNSUPPORTED,
                            "--tp-size %d on %s: GPUs %d..%d (--base-gpu-id %d, --gpu-id-step %d) "
                            "needed, %d visible",
                            tp, device, p->base_gpu_id, last, p->base_gpu_id, step, count);
    if (count >= 0 && !sglc_comm_has_nccl())
        return sglc_err_set(err, SGLC_ERR_UNSUPPORTED,
                            "--tp-size %d on %s: this build has no NCCL (configure with "
                            "-DSGLC_NCCL=ON where NCCL is installed)",
                            tp, device);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int threads = p->n_threads > 0 ? p->n_threads : (int)(cores > 0 ? cores : 1);
    /* CPU ranks run one after another on the caller's thread: the cores are split so that no
     * two ranks' pools spin on one core */
    const int per_rank = threads / tp > 0 ? threads / tp : 1;
    sglc_backend *bes[SGLC_TP_MAX] = {0};
    sglc_model *src = NULL, *ranks[SGLC_TP_MAX] = {0};
    sglc_model_tp *g = NULL;
    int rc = SGLC_OK;
    for (int32_t r = 0; r < tp && rc == SGLC_OK; r++) {
        sglc_backend_params bp = {.n_threads = per_rank,
                                  /* CUDA graphs around NCCL calls: not yet (issue 17) */
                                  .disable_cuda_graph = 1,
                                  .cuda_graph_max_bs = p->cuda_graph_max_bs,
                                  .device_index = p->base_gpu_id + r * step,
                                  .deterministic = p->deterministic};
        rc = sglc_backend_open(&bes[r], device, &bp, err);
    }
    if (rc) goto cleanup;
    use_rank(bes[0]); /* the whole model's rope_freqs land on rank 0 */
    if ((rc = sglc_model_open_unprepared(&src, p->path, bes[0], err)) != 0 ||
        (rc = tp_split_sizes(src, tp, err)) != 0)
        goto cleanup;
    for (int32_t r = 0; r < tp && rc == SGLC_OK; r++)
        rc = tp_make_rank(src, r, tp, bes[r], &ranks[r], err);
    if (rc) goto cleanup;
    /* rank 0 takes over what the shards point into */
    ranks[0]->gguf = src->gguf, ranks[0]->st = src->st, ranks[0]->rope_freqs = src->rope_freqs;
    src->gguf = NULL, src->st = NULL, src->rope_freqs = NULL;
    for (size_t i = 0; i < src->n_host_owned && rc == SGLC_OK; i++) {
        rc = add_owned(ranks[0], src->host_owned[i], err);
        src->host_owned[i] = NULL;
    }
    if (rc) goto cleanup;
    /* one "Quantization complete" line for the group: every rank's shards, summed */
    sglc_model_quant_stats qsum = {0};
    for (int32_t r = 0; r < tp && rc == SGLC_OK; r++) {
        use_rank(bes[r]);
        sglc_model_quant_stats qs;
        if ((rc = sglc_model_apply_quant_preset_stats(ranks[r], p->quantization, p->path, per_rank,
                                                      r == 0 && p->say ? p->say : say_nothing, &qs,
                                                      err)) == 0)
            rc = sglc_model_prepare(ranks[r], err);
        qsum.seconds += qs.seconds;
        qsum.bytes_before += qs.bytes_before;
        qsum.bytes_after += qs.bytes_after;
        qsum.n_quantized += qs.n_quantized;
    }
    if (rc == SGLC_OK && qsum.n_quantized > 0 && p->say) sglc_model_say_quant_done(&qsum, p->say);
    if (rc) goto cleanup;
    g = calloc(1, sizeof *g);
    if (!g) {
        rc = sglc_err_set(err, SGLC_ERR_NOMEM, "out of memory");
        goto cleanup;
    }
    if ((rc = sglc_comm_open(&g->comm, bes, tp, err)) != 0) goto cleanup;
    g->n = tp;
    for (int32_t r = 0; r < tp; r++)
        g->rank[r] = ranks[r], g->be[r] = bes[r];
    ranks[0]->tp = g;
    sglc_model_close(src);
    *be = bes[0];
    *m = ranks[0];
    if (p->say) {
        char line[160];
        snprintf(line, sizeof line,
                 "tensor parallel: %d ranks on %s, %d heads / %d KV heads / %d ffn rows each", tp,
                 device, ranks[0]->tp_n_head, ranks[0]->tp_n_head_kv, ranks[0]->tp_n_ff);
        p->say(line);
    }
    return SGLC_OK;
cleanup:
    if (g) sglc_comm_close(g->comm);
    free(g);
    for (int32_t r = tp - 1; r >= 0; r--) {
        if (bes[r]) use_rank(bes[r]);
        sglc_model_close(ranks[r]);
    }
    sglc_model_close(src);
    for (int32_t r = tp - 1; r >= 0; r--)
        sglc_backend_close(bes[r]);
    return rc;
}

int sglc_model_load(sglc_backend **be, sglc_model **m, const sglc_model_load_params *p,
                    sglc_err *err) {
    *be = NULL;
    *m = NULL;
    sglc_backend_params bp = {.n_threads = p->n_threads,
                              .disable_cuda_graph = p->disable_cuda_graph,
                              .cuda_graph_max_bs = p->cuda_graph_max_bs,
                              .device_index = p->base_gpu_id,
                              .deterministic = p->deterministic};
    const char *device = p->device;
    if (!device) {
        device = sglc_backend_default_name();
        char line[128];
        snprintf(line, sizeof line, "device: %s (%s)", device,
                 strcmp(device, "cuda") == 0 ? "a CUDA GPU is visible"
                                             : "no CUDA GPU visible; --device cuda to require one");
        if (p->say) p->say(line);
    }
    if (p->tp_size > 1) return load_tp(be, m, p, device, err);
    int rc;
    if ((rc = sglc_backend_open(be, device, &bp, err)) != 0 ||
        (rc = sglc_model_open_unprepared(m, p->path, *be, err)) != 0 ||
        (rc = sglc_model_apply_quant_preset(*m, p->quantization, p->path, p->n_threads, p->say,
                                            err)) != 0 ||
        (rc = sglc_model_prepare(*m, err)) != 0) {
        sglc_model_close(*m);
        sglc_backend_close(*be);
        *m = NULL;
        *be = NULL;
    }
    return rc;
}

int sglc_model_open_gguf(sglc_model **out, const char *path, sglc_backend *be, sglc_err *err) {
    int rc = sglc_model_open_gguf_unprepared(out, path, be, err);
    if (rc == 0 && (rc = sglc_model_prepare(*out, err)) != 0) {
        sglc_model_close(*out);
        *out = NULL;
    }
    return rc;
}

int sglc_model_open_gguf_unprepared(sglc_model **out, const char *path, sglc_backend *be,
                                    sglc_err *err) {
    *out = NULL;
    sglc_model *m = calloc(1, sizeof *m);
    if (!m) return sglc_err_set(err, SGLC_ERR_NOMEM, "out of memory");
    m->be = be;
    m->path = path;
    loader L = {m, path, err};
    int rc = sglc_gguf_open(&m->gguf, path, err);
    if (rc != 0) goto cleanup;
    if ((rc = load_config(&L)) != 0) goto cleanup;
    if ((rc = load_weights(&L)) != 0) goto cleanup;
    *out = m;
    return SGLC_OK;
cleanup:
    sglc_model_close(m);
    return rc;
}

void sglc_model_close(sglc_model *m) {
    if (!m) return;
    if (m->tp) {
        /* the other ranks point into rank 0's host data: they go first */
        sglc_model_tp *g = m->tp;
        sglc_comm_close(g->comm);
        for (int32_t r = g->n - 1; r >= 1; r--) {
            use_rank(g->be[r]);
            sglc_model_close(g->rank[r]);
            sglc_backend_close(g->be[r]);
        }
        use_rank(m->be);
        free(g);
    }
    free(m->layers);
    if (m->rope_freqs) m->be->ops->free(m->be, m->rope_freqs);
    for (size_t i = 0; i < m->n_host_owned; i++)
        free(m->host_owned[i]);
    free(m->host_owned);
    sglc_gguf_close(m->gguf);
    sglc_safetensors_close(m->st);
    free(m);
}
