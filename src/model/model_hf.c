/* Model loading from Hugging Face folders: config.json (formats/hf_config.c) gives the
 * architecture, the safetensors files (formats/safetensors.c) the tensors. Every tensor the
 * forward pass needs is bound by its HF name and checked for shape and dtype against the
 * config. F32/F16/BF16 matrices map onto sglc_weight with no copy (an HF [out, in] tensor is
 * the row-major [n][k] layout the kernels read); the small vectors (norms, biases) the ops
 * read as F32 are converted into memory the model owns when the checkpoint stores them in
 * bf16/f16. HF keeps q/k in the "half split" rotary layout, so these models use NEOX rope.
 * Also here: sglc_model_open, which picks GGUF or HF from the path. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "formats/hf_config.h"
#include "model/model.h"
#include "quant/ggml_types.h"

typedef struct {
    sglc_model *m;
    const char *dir;
    sglc_err *err;
    size_t cap_owned;
} hf_loader;

/* Takes ownership of p (freed at sglc_model_close). */
static int own(hf_loader *L, void *p) {
    sglc_model *m = L->m;
    if (m->n_host_owned == L->cap_owned) {
        size_t cap = L->cap_owned ? 2 * L->cap_owned : 64;
        void **a = realloc(m->host_owned, cap * sizeof *a);
        if (!a) {
            free(p);
            return sglc_err_set(L->err, SGLC_ERR_NOMEM, "out of memory");
        }
        m->host_owned = a;
        L->cap_owned = cap;
    }
    m->host_owned[m->n_host_owned++] = p;
    return SGLC_OK;
}

static int ggml_type_of(sglc_st_dtype t, uint32_t *out) {
    switch (t) {
    case SGLC_ST_F32: *out = SGLC_GGML_TYPE_F32; return 1;
    case SGLC_ST_F16: *out = SGLC_GGML_TYPE_F16; return 1;
    case SGLC_ST_BF16: *out = SGLC_GGML_TYPE_BF16; return 1;
    default: return 0;
    }
}

/* Binds HF tensor name to w: a matrix [n][k] (HF shape [n, k]) when n > 1... is_vec selects a
 * 1-d tensor of k elements, which the ops read as F32. */
static int bind(hf_loader *L, sglc_weight *w, const char *name, int64_t k, int64_t n, int is_vec,
                int required) {
    sglc_model *m = L->m;
    memset(w, 0, sizeof *w);
    const sglc_st_tensor *t = sglc_safetensors_find(m->st, name);
    if (!t) {
        if (!required) return SGLC_OK;
        return sglc_err_set(L->err, SGLC_ERR_FORMAT, "%s: missing tensor %s", L->dir, name);
    }
    int shape_ok = is_vec ? (t->n_dims == 1 && t->shape[0] == k)
                          : (t->n_dims == 2 && t->shape[0] == n && t->shape[1] == k);
    if (!shape_ok) {
        char got[96];
        int off = 0;
        for (int32_t i = 0; i < t->n_dims && off < (int)sizeof got - 24; i++)
            off += snprintf(got + off, sizeof got - (size_t)off, "%s%lld", i ? ", " : "",
                            (long long)t->shape[i]);
        if (is_vec)
            return sglc_err_set(L->err, SGLC_ERR_FORMAT,
                                "%s: tensor %s has shape [%s], expected [%lld] from config.json",
                                L->dir, name, got, (long long)k);
        return sglc_err_set(L->err, SGLC_ERR_FORMAT,
                            "%s: tensor %s has shape [%s], expected [%lld, %lld] from config.json",
                            L->dir, name, got, (long long)n, (long long)k);
    }
    uint32_t type;
    if (!ggml_type_of(t->dtype, &type))
        return sglc_err_set(L->err, SGLC_ERR_UNSUPPORTED,
                            "%s: tensor %s has dtype %s (supported: F32 F16 BF16)", L->dir, name,
                            sglc_st_dtype_name(t->dtype));
    size_t esize = sglc_st_dtype_size(t->dtype);
    const void *data = t->data;
    if (is_vec && type != SGLC_GGML_TYPE_F32) {
        /* the ops read vectors as F32: widen this small one into model-owned memory */
        float *v = malloc((size_t)k * sizeof(float));
        if (!v) return sglc_err_set(L->err, SGLC_ERR_NOMEM, "out of memory");
        sglc_ggml_dequantize_row(type, data, v, k);
        int rc = own(L, v);
        if (rc) return rc;
        data = v;
        type = SGLC_GGML_TYPE_F32;
    } else if ((uintptr_t)data % esize != 0) {
        /* safetensors only aligns the data section to the header's length; kernels need
         * element alignment, so copy the rare misaligned tensor */
        void *copy = NULL;
        if (posix_memalign(&copy, 64, t->nbytes ? t->nbytes : 64))
            return sglc_err_set(L->err, SGLC_ERR_NOMEM, "out of memory");
        memcpy(copy, data, t->nbytes);
        int rc = own(L, copy);
        if (rc) return rc;
        data = copy;
    }
    if (!is_vec && !m->be->ops->supports_weight(m->be, type))
        return sglc_err_set(L->err, SGLC_ERR_UNSUPPORTED,
                            "%s: tensor %s: the %s backend cannot compute with %s weights", L->dir,
                            name, m->be->ops->name, sglc_st_dtype_name(t->dtype));
    w->type = type;
    w->k = k;
    w->n = is_vec ? 1 : n;
    w->host = data;
    int rc = m->be->ops->prepare_weight(m->be, w, L->err);
    if (rc) return rc;
    m->weight_bytes += t->nbytes;
    return SGLC_OK;
}

static void config_from_hf(sglc_model_config *c, const sglc_hf_config *h) {
    static const sglc_arch k_arch[SGLC_HF_ARCH_COUNT] = {SGLC_ARCH_LLAMA, SGLC_ARCH_QWEN2,
                                                         SGLC_ARCH_QWEN3};
    memset(c, 0, sizeof *c);
    c->arch = k_arch[h->arch];
    c->n_layer = h->num_hidden_layers;
    c->n_embd = h->hidden_size;
    c->n_ff = h->intermediate_size;
    c->n_head = h->num_attention_heads;
    c->n_head_kv = h->num_key_value_heads;
    c->head_dim = h->head_dim;
    c->rot_dim = h->head_dim;
    c->n_vocab = h->vocab_size;
    c->n_ctx_train = h->max_position_embeddings;
    c->rope_theta = h->rope_theta;
    c->rms_eps = h->rms_norm_eps;
    c->rope_mode = SGLC_ROPE_NEOX;
    c->tied_embeddings = h->tie_word_embeddings;
}

static int load_weights(hf_loader *L, const sglc_hf_config *h) {
    sglc_model *m = L->m;
    const sglc_model_config *c = &m->cfg;
    int64_t d = c->n_embd, qd = (int64_t)c->n_head * c->head_dim,
            kvd = (int64_t)c->n_head_kv * c->head_dim;
    int rc;
    if ((rc = bind(L, &m->tok_embd, "model.embed_tokens.weight", d, c->n_vocab, 0, 1))) return rc;
    if ((rc = bind(L, &m->out_norm, "model.norm.weight", d, 1, 1, 1))) return rc;
    if (c->tied_embeddings) {
        m->output = m->tok_embd; /* transformers ties lm_head even when the file also has it */
    } else if ((rc = bind(L, &m->output, "lm_head.weight", d, c->n_vocab, 0, 1))) {
        return rc;
    }
    m->layers = calloc((size_t)c->n_layer, sizeof *m->layers);
    if (!m->layers) return sglc_err_set(L->err, SGLC_ERR_NOMEM, "out of memory");
    int qkv_bias = h->attention_bias;
    int o_bias = h->attention_bias && h->arch != SGLC_HF_ARCH_QWEN2;
    int qk_norm = h->arch == SGLC_HF_ARCH_QWEN3;
    for (int32_t l = 0; l < c->n_layer; l++) {
        sglc_layer_weights *w = &m->layers[l];
        char name[128];
#define BIND(field, suffix, k, n, vec, req)                                                        \
    do {                                                                                           \
        snprintf(name, sizeof name, "model.layers.%d.%s", (int)l, suffix);                         \
        if ((req) && (rc = bind(L, &w->field, name, k, n, vec, 1))) return rc;                     \
    } while (0)
        BIND(attn_norm, "input_layernorm.weight", d, 1, 1, 1);
        BIND(wq, "self_attn.q_proj.weight", d, qd, 0, 1);
        BIND(wk, "self_attn.k_proj.weight", d, kvd, 0, 1);
        BIND(wv, "self_attn.v_proj.weight", d, kvd, 0, 1);
        BIND(wo, "self_attn.o_proj.weight", qd, d, 0, 1);
        BIND(bq, "self_attn.q_proj.bias", qd, 1, 1, qkv_bias);
        BIND(bk, "self_attn.k_proj.bias", kvd, 1, 1, qkv_bias);
        BIND(bv, "self_attn.v_proj.bias", kvd, 1, 1, qkv_bias);
        BIND(bo, "self_attn.o_proj.bias", d, 1, 1, o_bias);
        BIND(q_norm, "self_attn.q_norm.weight", c->head_dim, 1, 1, qk_norm);
        BIND(k_norm, "self_attn.k_norm.weight", c->head_dim, 1, 1, qk_norm);
        BIND(ffn_norm, "post_attention_layernorm.weight", d, 1, 1, 1);
        BIND(w_gate, "mlp.gate_proj.weight", d, c->n_ff, 0, 1);
        BIND(w_up, "mlp.up_proj.weight", d, c->n_ff, 0, 1);
        BIND(w_down, "mlp.down_proj.weight", c->n_ff, d, 0, 1);
#undef BIND
    }
    return SGLC_OK;
}

static int load_rope_freqs(hf_loader *L, const sglc_hf_config *h) {
    sglc_model *m = L->m;
    if (h->rope_scaling.type == SGLC_HF_ROPE_SCALING_NONE) return SGLC_OK;
    size_t bytes = (size_t)(m->cfg.rot_dim / 2) * sizeof(float);
    float *host = malloc(bytes);
    if (!host) return sglc_err_set(L->err, SGLC_ERR_NOMEM, "out of memory");
    sglc_hf_rope_freq_factors(h, m->cfg.rot_dim, host);
    m->rope_freqs = m->be->ops->alloc(m->be, bytes);
    if (m->rope_freqs) m->be->ops->upload(m->be, m->rope_freqs, host, bytes);
    free(host);
    if (!m->rope_freqs) return sglc_err_set(L->err, SGLC_ERR_NOMEM, "out of backend memory");
    return SGLC_OK;
}

int sglc_model_open_hf(sglc_model **out, const char *dir, sglc_backend *be, sglc_err *err) {
    *out = NULL;
    sglc_hf_config h;
    int rc = sglc_hf_config_load(&h, dir, err);
    if (rc) return rc;
    sglc_model *m = calloc(1, sizeof *m);
    if (!m) return sglc_err_set(err, SGLC_ERR_NOMEM, "out of memory");
    m->be = be;
    m->path = dir;
    hf_loader L = {m, dir, err, 0};
    config_from_hf(&m->cfg, &h);
    if ((rc = sglc_safetensors_open(&m->st, dir, err))) goto cleanup;
    if ((rc = load_weights(&L, &h))) goto cleanup;
    if ((rc = load_rope_freqs(&L, &h))) goto cleanup;
    *out = m;
    return SGLC_OK;
cleanup:
    sglc_model_close(m);
    return rc;
}

static int has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

int sglc_model_open(sglc_model **out, const char *path, sglc_backend *be, sglc_err *err) {
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0)
        return sglc_err_set(err, SGLC_ERR_IO, "%s: %s", path, strerror(errno));
    if (S_ISDIR(sb.st_mode)) {
        char cfg[4096];
        if ((size_t)snprintf(cfg, sizeof cfg, "%s/config.json", path) >= sizeof cfg)
            return sglc_err_set(err, SGLC_ERR_ARG, "%s: path too long", path);
        if (stat(cfg, &sb) != 0)
            return sglc_err_set(err, SGLC_ERR_IO,
                                "%s: folder has no config.json (sglc loads a .gguf file or a "
                                "Hugging Face folder with config.json and *.safetensors)",
                                path);
        return sglc_model_open_hf(out, path, be, err);
    }
    if (!S_ISREG(sb.st_mode))
        return sglc_err_set(err, SGLC_ERR_IO, "%s: not a regular file or folder", path);
    char magic[4] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return sglc_err_set(err, SGLC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t got = fread(magic, 1, sizeof magic, f);
    fclose(f);
    if (has_suffix(path, ".gguf") || (got == 4 && memcmp(magic, "GGUF", 4) == 0))
        return sglc_model_open_gguf(out, path, be, err);
    return sglc_err_set(err, SGLC_ERR_FORMAT,
                        "%s: neither a GGUF file nor a Hugging Face model folder (pass a .gguf "
                        "file or the folder holding config.json)",
                        path);
}
