/* Model loading from Hugging Face folders: config.json (formats/hf_config.c) gives the
 * architecture, the safetensors files (formats/safetensors.c) the tensors. Every tensor the
 * forward pass needs is bound by its HF name and checked for shape and dtype against the
 * config. F32/F16/BF16 matrices map onto sglc_weight with no copy (an HF [out, in] tensor is
 * the row-major [n][k] layout the kernels read); the small vectors (norms, biases) the ops
 * read as F32 are converted into memory the model owns when the checkpoint stores them in
 * bf16/f16. HF keeps q/k in the "half split" rotary layout, so these models use NEOX rope.
 * MLX-quantized folders (mlx-community style: config.json "quantization" / "quantization_config"
 * {bits, group_size, mode "affine", per-module overrides}) store every quantized linear layer,
 * embeddings and lm_head included, as NAME.weight (U32 packed codes), NAME.scales and
 * NAME.biases; they bind zero-copy as SGLC_WTYPE_MLX_AFFINE weights after their shapes are
 * checked against the declared bits and group size.
 * Also here: sglc_model_open, which picks GGUF or HF from the path. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cJSON.h>

#include "formats/hf_config.h"
#include "model/model.h"
#include "quant/ggml_types.h"
#include "quant/mlx_affine.h"

typedef struct {
    sglc_model *m;
    const char *dir;
    sglc_err *err;
    size_t cap_owned;
    cJSON *quant;        /* owned: config.json's quantization object, or NULL */
    int q_bits, q_group; /* the quantization's defaults */
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

/* Element-aligned data of t: the mapped bytes, or a model-owned copy when misaligned. */
static int aligned_data(hf_loader *L, const sglc_st_tensor *t, const void **out) {
    size_t esize = sglc_st_dtype_size(t->dtype);
    *out = t->data;
    if (esize == 0 || (uintptr_t)t->data % esize == 0) return SGLC_OK;
    void *copy = NULL;
    if (posix_memalign(&copy, 64, t->nbytes ? t->nbytes : 64))
        return sglc_err_set(L->err, SGLC_ERR_NOMEM, "out of memory");
    memcpy(copy, t->data, t->nbytes);
    sglc_drop_mapped_pages(t->data, t->nbytes);
    int rc = own(L, copy);
    if (rc) return rc;
    *out = copy;
    return SGLC_OK;
}

/* Reads config.json's "quantization" (or "quantization_config") object, if any. */
static int load_quant_config(hf_loader *L) {
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/config.json", L->dir) >= sizeof path)
        return sglc_err_set(L->err, SGLC_ERR_ARG, "%s: path too long", L->dir);
    FILE *f = fopen(path, "rb");
    if (!f) return sglc_err_set(L->err, SGLC_ERR_IO, "%s: cannot open", path);
    char *buf = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0) n = ftell(f);
    if (n >= 0 && n < (64l << 20) && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1)))
        if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
            free(buf);
            buf = NULL;
        }
    fclose(f);
    if (!buf) return sglc_err_set(L->err, SGLC_ERR_IO, "%s: cannot read", path);
    buf[n] = 0;
    cJSON *root = cJSON_Parse(buf);
    free(buf);
    if (!root) return sglc_err_set(L->err, SGLC_ERR_FORMAT, "%s: not valid JSON", path);
    cJSON *q = cJSON_GetObjectItemCaseSensitive(root, "quantization");
    if (!q) q = cJSON_GetObjectItemCaseSensitive(root, "quantization_config");
    int rc = SGLC_OK;
    if (q && !cJSON_IsNull(q)) {
        cJSON *bits = cJSON_GetObjectItemCaseSensitive(q, "bits");
        cJSON *gs = cJSON_GetObjectItemCaseSensitive(q, "group_size");
        cJSON *mode = cJSON_GetObjectItemCaseSensitive(q, "mode");
        if (!cJSON_IsObject(q) || !cJSON_IsNumber(bits) || !cJSON_IsNumber(gs)) {
            rc = sglc_err_set(L->err, SGLC_ERR_FORMAT,
                              "%s: \"quantization\" needs numeric \"bits\" and \"group_size\"",
                              path);
        } else if (mode && (!cJSON_IsString(mode) || strcmp(mode->valuestring, "affine") != 0)) {
            rc = sglc_err_set(L->err, SGLC_ERR_UNSUPPORTED,
                              "%s: quantization mode %s is not supported (only MLX affine)", path,
                              cJSON_IsString(mode) ? mode->valuestring : "?");
        } else if (!sglc_mlx_affine_valid(bits->valueint, gs->valueint) ||
                   bits->valuedouble != (double)bits->valueint ||
                   gs->valuedouble != (double)gs->valueint) {
            rc = sglc_err_set(L->err, SGLC_ERR_UNSUPPORTED,
                              "%s: quantization bits=%g group_size=%g not supported (bits 2, 3, 4, "
                              "5, 6, 8; group_size 32, 64, 128)",
                              path, bits->valuedouble, gs->valuedouble);
        } else {
            L->q_bits = bits->valueint;
            L->q_group = gs->valueint;
            L->quant = cJSON_DetachItemViaPointer(root, q);
        }
    }
    cJSON_Delete(root);
    return rc;
}

/* Quantization of module `base` (a tensor name less ".weight"): 0 and *bits, *group set when the
 * config quantizes it, 1 when the config keeps it in float, or an error. */
static int module_quant(hf_loader *L, const char *base, int *bits, int *group) {
    *bits = L->q_bits;
    *group = L->q_group;
    cJSON *o = cJSON_GetObjectItemCaseSensitive(L->quant, base);
    if (!o) return 0;
    if (cJSON_IsFalse(o)) return 1;
    if (cJSON_IsTrue(o)) return 0;
    cJSON *b = cJSON_GetObjectItemCaseSensitive(o, "bits");
    cJSON *g = cJSON_GetObjectItemCaseSensitive(o, "group_size");
    if (!cJSON_IsObject(o) || (b && !cJSON_IsNumber(b)) || (g && !cJSON_IsNumber(g)))
        return sglc_err_set(L->err, SGLC_ERR_FORMAT,
                            "%s: config.json quantization override for %s is not an object with "
                            "numeric bits/group_size",
                            L->dir, base);
    if (b) *bits = b->valueint;
    if (g) *group = g->valueint;
    if (!sglc_mlx_affine_valid(*bits, *group))
        return sglc_err_set(L->err, SGLC_ERR_UNSUPPORTED,
                            "%s: quantization override for %s: bits=%d group_size=%d not supported",
                            L->dir, base, *bits, *group);
    return 0;
}

static int bind_shape_err(hf_loader *L, const char *name, const sglc_st_tensor *t,
                          const char *expect) {
    char got[96];
    int off = 0;
    for (int32_t i = 0; i < t->n_dims && off < (int)sizeof got - 24; i++)
        off += snprintf(got + off, sizeof got - (size_t)off, "%s%lld", i ? ", " : "",
                        (long long)t->shape[i]);
    return sglc_err_set(L->err, SGLC_ERR_FORMAT, "%s: tensor %s has shape [%s], expected %s",
                        L->dir, name, got, expect);
}

/* Binds an MLX affine matrix: name (.weight, U32), its .scales and .biases. */
static int bind_affine(hf_loader *L, sglc_weight *w, const char *name, const sglc_st_tensor *t,
                       int64_t k, int64_t n) {
    sglc_model *m = L->m;
    char base[256], sname[272], bname[272], expect[128];
    size_t len = strlen(name);
    if (len < 7 || len - 7 >= sizeof base || strcmp(name + len - 7, ".weight") != 0)
        return sglc_err_set(L->err, SGLC_ERR_FORMAT, "%s: packed tensor %s is not a .weight",
                            L->dir, name);
    memcpy(base, name, len - 7);
    base[len - 7] = 0;
    int bits, group;
    int rc = module_quant(L, base, &bits, &group);
    if (rc < 0) return rc;
    if (rc == 1)
        return sglc_err_set(L->err, SGLC_ERR_FORMAT,
                            "%s: tensor %s is packed (U32) but config.json keeps %s unquantized",
                            L->dir, name, base);
    if (k % group != 0)
        return sglc_err_set(L->err, SGLC_ERR_FORMAT,
                            "%s: %s: input size %lld is not a multiple of group_size %d", L->dir,
                            name, (long long)k, group);
    int64_t words = sglc_mlx_affine_row_words(k, bits), ng = k / group;
    if (t->n_dims != 2 || t->shape[0] != n || t->shape[1] != words) {
        snprintf(expect, sizeof expect, "[%lld, %lld] (bits=%d from config.json)", (long long)n,
                 (long long)words, bits);
        return bind_shape_err(L, name, t, expect);
    }
    snprintf(sname, sizeof sname, "%s.scales", base);
    snprintf(bname, sizeof bname, "%s.biases", base);
    const sglc_st_tensor *ts = sglc_safetensors_find(m->st, sname);
    const sglc_st_tensor *tb = sglc_safetensors_find(m->st, bname);
    if (!ts || !tb)
        return sglc_err_set(L->err, SGLC_ERR_FORMAT,
                            "%s: quantized %s has no %s (MLX affine needs .scales and .biases)",
                            L->dir, name, ts ? bname : sname);
    snprintf(expect, sizeof expect, "[%lld, %lld] (group_size=%d from config.json)", (long long)n,
             (long long)ng, group);
    if (ts->n_dims != 2 || ts->shape[0] != n || ts->shape[1] != ng)
        return bind_shape_err(L, sname, ts, expect);
    if (tb->n_dims != 2 || tb->shape[0] != n || tb->shape[1] != ng)
        return bind_shape_err(L, bname, tb, expect);
    uint32_t dtype, dtype_b;
    if (!ggml_type_of(ts->dtype, &dtype) || !ggml_type_of(tb->dtype, &dtype_b) || dtype != dtype_b)
        return sglc_err_set(L->err, SGLC_ERR_FORMAT,
                            "%s: %s and %s must share one dtype of F32, F16, BF16 (have %s, %s)",
                            L->dir, sname, bname, sglc_st_dtype_name(ts->dtype),
                            sglc_st_dtype_name(tb->dtype));
    const void *wd, *sd, *bd;
    if ((rc = aligned_data(L, t, &wd)) || (rc = aligned_data(L, ts, &sd)) ||
        (rc = aligned_data(L, tb, &bd)))
        return rc;
    if (!m->be->ops->supports_weight(m->be, SGLC_WTYPE_MLX_AFFINE))
        return sglc_err_set(L->err, SGLC_ERR_UNSUPPORTED,
                            "%s: tensor %s: the %s backend cannot compute with MLX affine weights",
                            L->dir, name, m->be->ops->name);
    w->type = SGLC_WTYPE_MLX_AFFINE;
    w->k = k;
    w->n = n;
    w->host = wd;
    w->present = 1;
    w->q_bits = bits;
    w->q_group = group;
    w->q_dtype = dtype;
    w->q_scales = sd;
    w->q_biases = bd;
    w->host_bytes = t->nbytes;
    m->weight_bytes += t->nbytes + ts->nbytes + tb->nbytes;
    return SGLC_OK;
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
    if (t->dtype == SGLC_ST_U32 && !is_vec) {
        if (!L->quant)
            return sglc_err_set(L->err, SGLC_ERR_FORMAT,
                                "%s: tensor %s is packed (U32) but config.json declares no "
                                "quantization",
                                L->dir, name);
        return bind_affine(L, w, name, t, k, n);
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
        sglc_drop_mapped_pages(data, t->nbytes);
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
    w->present = 1;
    w->host_bytes = t->nbytes;
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
        sglc_progress("Loading weights", l + 1, c->n_layer);
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
    int rc = sglc_model_open_hf_unprepared(out, dir, be, err);
    if (rc == 0 && (rc = sglc_model_prepare(*out, err)) != 0) {
        sglc_model_close(*out);
        *out = NULL;
    }
    return rc;
}

int sglc_model_open_hf_unprepared(sglc_model **out, const char *dir, sglc_backend *be,
                                  sglc_err *err) {
    *out = NULL;
    sglc_hf_config h;
    int rc = sglc_hf_config_load(&h, dir, err);
    if (rc) return rc;
    sglc_model *m = calloc(1, sizeof *m);
    if (!m) return sglc_err_set(err, SGLC_ERR_NOMEM, "out of memory");
    m->be = be;
    m->path = dir;
    hf_loader L = {m, dir, err, 0, NULL, 0, 0};
    config_from_hf(&m->cfg, &h);
    if ((rc = load_quant_config(&L))) goto cleanup;
    if ((rc = sglc_safetensors_open(&m->st, dir, err))) goto cleanup;
    if ((rc = load_weights(&L, &h))) goto cleanup;
    if ((rc = load_rope_freqs(&L, &h))) goto cleanup;
    {
        /* KV cache in the model's float type, as SGLang's kv_cache_dtype "auto": an F32
         * checkpoint keeps an f32 cache (exact comparisons with transformers), F16/BF16 ones
         * and MLX folders with half-precision scales get an f16 cache (half the memory and
         * attention bandwidth; f16 carries more mantissa than the bf16 MLX computes in) */
        const sglc_weight *w0 = &m->layers[0].wq;
        uint32_t ft = w0->type == SGLC_WTYPE_MLX_AFFINE ? w0->q_dtype : w0->type;
        m->cfg.kv_type = ft == SGLC_GGML_TYPE_F32 ? SGLC_GGML_TYPE_F32 : SGLC_GGML_TYPE_F16;
    }
    cJSON_Delete(L.quant);
    *out = m;
    return SGLC_OK;
cleanup:
    cJSON_Delete(L.quant);
    sglc_model_close(m);
    return rc;
}

static int has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

int sglc_model_open(sglc_model **out, const char *path, sglc_backend *be, sglc_err *err) {
    int rc = sglc_model_open_unprepared(out, path, be, err);
    if (rc == 0 && (rc = sglc_model_prepare(*out, err)) != 0) {
        sglc_model_close(*out);
        *out = NULL;
    }
    return rc;
}

int sglc_model_open_unprepared(sglc_model **out, const char *path, sglc_backend *be,
                               sglc_err *err) {
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
        return sglc_model_open_hf_unprepared(out, path, be, err);
    }
    if (!S_ISREG(sb.st_mode))
        return sglc_err_set(err, SGLC_ERR_IO, "%s: not a regular file or folder", path);
    char magic[4] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return sglc_err_set(err, SGLC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t got = fread(magic, 1, sizeof magic, f);
    fclose(f);
    if (has_suffix(path, ".gguf") || (got == 4 && memcmp(magic, "GGUF", 4) == 0))
        return sglc_model_open_gguf_unprepared(out, path, be, err);
    return sglc_err_set(err, SGLC_ERR_FORMAT,
                        "%s: neither a GGUF file nor a Hugging Face model folder (pass a .gguf "
                        "file or the folder holding config.json)",
                        path);
}
