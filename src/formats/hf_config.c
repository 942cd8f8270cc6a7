/* config.json / generation_config.json parsing and validation (see hf_config.h). Every field is
 * read through one typed getter that checks JSON type, integrality and range, so a message
 * always names the file and the field. The files are small; they are read whole (capped at
 * SGLC_HF_CONFIG_MAX_BYTES) and parsed with cJSON. */
#include "formats/hf_config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SGLC_HF_CONFIG_MAX_BYTES (4u << 20)

static const char *const k_arch_class[SGLC_HF_ARCH_COUNT] = {"LlamaForCausalLM", "Qwen2ForCausalLM",
                                                             "Qwen3ForCausalLM"};
static const char *const k_arch_model_type[SGLC_HF_ARCH_COUNT] = {"llama", "qwen2", "qwen3"};

const char *sglc_hf_arch_name(sglc_hf_arch arch) {
    return (unsigned)arch < SGLC_HF_ARCH_COUNT ? k_arch_class[arch] : "?";
}

typedef struct {
    const char *path;
    sglc_err *err;
} ctx;

/* A present field: not absent and not JSON null (HF writes null for "use the default"). */
static const cJSON *field(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

static int get_int(ctx *C, const cJSON *obj, const char *key, int required, int64_t dflt,
                   int64_t lo, int64_t hi, int32_t *out) {
    const cJSON *v = field(obj, key);
    if (!v) {
        if (required)
            return sglc_err_set(C->err, SGLC_ERR_FORMAT, "%s: missing field '%s'", C->path, key);
        *out = (int32_t)dflt;
        return SGLC_OK;
    }
    double d = v->valuedouble;
    if (!cJSON_IsNumber(v) || !isfinite(d) || d != floor(d))
        return sglc_err_set(C->err, SGLC_ERR_FORMAT, "%s: field '%s' must be an integer", C->path,
                            key);
    if (d < (double)lo || d > (double)hi)
        return sglc_err_set(C->err, SGLC_ERR_FORMAT,
                            "%s: field '%s' = %.17g is out of range [%lld, %lld]", C->path, key, d,
                            (long long)lo, (long long)hi);
    *out = (int32_t)d;
    return SGLC_OK;
}

/* A number in (lo, hi] (lo exclusive, so sizes and scales are positive). */
static int get_float(ctx *C, const cJSON *obj, const char *key, int required, double dflt,
                     double lo, double hi, float *out) {
    const cJSON *v = field(obj, key);
    if (!v) {
        if (required)
            return sglc_err_set(C->err, SGLC_ERR_FORMAT, "%s: missing field '%s'", C->path, key);
        *out = (float)dflt;
        return SGLC_OK;
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return sglc_err_set(C->err, SGLC_ERR_FORMAT, "%s: field '%s' must be a number", C->path,
                            key);
    if (!(v->valuedouble > lo && v->valuedouble <= hi))
        return sglc_err_set(C->err, SGLC_ERR_FORMAT,
                            "%s: field '%s' = %.17g is out of range (%g, %g]", C->path, key,
                            v->valuedouble, lo, hi);
    *out = (float)v->valuedouble;
    return SGLC_OK;
}

static int get_bool(ctx *C, const cJSON *obj, const char *key, int dflt, int *out) {
    const cJSON *v = field(obj, key);
    if (!v) {
        *out = dflt;
        return SGLC_OK;
    }
    if (!cJSON_IsBool(v))
        return sglc_err_set(C->err, SGLC_ERR_FORMAT, "%s: field '%s' must be true or false",
                            C->path, key);
    *out = cJSON_IsTrue(v);
    return SGLC_OK;
}

/* *out = the string or NULL when absent. */
static int get_str(ctx *C, const cJSON *obj, const char *key, const char **out) {
    const cJSON *v = field(obj, key);
    *out = NULL;
    if (!v) return SGLC_OK;
    if (!cJSON_IsString(v))
        return sglc_err_set(C->err, SGLC_ERR_FORMAT, "%s: field '%s' must be a string", C->path,
                            key);
    *out = v->valuestring;
    return SGLC_OK;
}

static int parse_arch(ctx *C, const cJSON *root, sglc_hf_arch *arch) {
    const cJSON *archs = field(root, "architectures");
    const char *name = NULL;
    if (archs) {
        if (!cJSON_IsArray(archs) || cJSON_GetArraySize(archs) < 1 ||
            !cJSON_IsString(cJSON_GetArrayItem(archs, 0)))
            return sglc_err_set(C->err, SGLC_ERR_FORMAT,
                                "%s: field 'architectures' must be a non-empty list of strings",
                                C->path);
        if (cJSON_GetArraySize(archs) > 1)
            return sglc_err_set(C->err, SGLC_ERR_UNSUPPORTED,
                                "%s: %d architectures listed; sglc runs exactly one", C->path,
                                cJSON_GetArraySize(archs));
        name = cJSON_GetArrayItem(archs, 0)->valuestring;
        for (int a = 0; a < SGLC_HF_ARCH_COUNT; a++)
            if (strcmp(name, k_arch_class[a]) == 0) {
                *arch = (sglc_hf_arch)a;
                return SGLC_OK;
            }
    } else {
        /* configs written without 'architectures' still name the family in model_type */
        int rc = get_str(C, root, "model_type", &name);
        if (rc) return rc;
        if (!name)
            return sglc_err_set(C->err, SGLC_ERR_FORMAT,
                                "%s: missing field 'architectures' (and 'model_type')", C->path);
        for (int a = 0; a < SGLC_HF_ARCH_COUNT; a++)
            if (strcmp(name, k_arch_model_type[a]) == 0) {
                *arch = (sglc_hf_arch)a;
                return SGLC_OK;
            }
    }
    return sglc_err_set(C->err, SGLC_ERR_UNSUPPORTED,
                        "%s: architecture '%.64s' is not supported (supported: LlamaForCausalLM, "
                        "Qwen2ForCausalLM, Qwen3ForCausalLM)",
                        C->path, name);
}

/* rope_scaling (older configs) or rope_parameters (transformers 5): an object whose rope_type
 * (or legacy 'type') picks the scheme. */
static int parse_rope_scaling(ctx *C, const cJSON *rs, const char *key, sglc_hf_config *c) {
    if (!cJSON_IsObject(rs))
        return sglc_err_set(C->err, SGLC_ERR_FORMAT, "%s: field '%s' must be an object", C->path,
                            key);
    const char *type = NULL;
    int rc = get_str(C, rs, "rope_type", &type);
    if (rc) return rc;
    if (!type && (rc = get_str(C, rs, "type", &type))) return rc;
    if (!type || strcmp(type, "default") == 0) {
        c->rope_scaling.type = SGLC_HF_ROPE_SCALING_NONE;
        return SGLC_OK;
    }
    if (strcmp(type, "llama3") != 0)
        return sglc_err_set(C->err, SGLC_ERR_UNSUPPORTED,
                            "%s: rope scaling type '%.64s' is not supported (supported: default, "
                            "llama3)",
                            C->path, type);
    c->rope_scaling.type = SGLC_HF_ROPE_SCALING_LLAMA3;
    if ((rc = get_float(C, rs, "factor", 1, 0, 0.0, 1e6, &c->rope_scaling.factor)) ||
        (rc = get_float(C, rs, "low_freq_factor", 1, 0, 0.0, 1e6,
                        &c->rope_scaling.low_freq_factor)) ||
        (rc = get_float(C, rs, "high_freq_factor", 1, 0, 0.0, 1e6,
                        &c->rope_scaling.high_freq_factor)) ||
        (rc = get_int(C, rs, "original_max_position_embeddings", 1, 0, 1, 1 << 28,
                      &c->rope_scaling.original_max_position_embeddings)))
        return rc;
    if (!(c->rope_scaling.high_freq_factor > c->rope_scaling.low_freq_factor))
        return sglc_err_set(C->err, SGLC_ERR_FORMAT,
                            "%s: %s.high_freq_factor %g must exceed low_freq_factor %g", C->path,
                            key, c->rope_scaling.high_freq_factor, c->rope_scaling.low_freq_factor);
    return SGLC_OK;
}

static int parse_special_ids(ctx *C, const cJSON *root, sglc_hf_config *c) {
    int rc;
    if (field(root, "bos_token_id") &&
        (rc = get_int(C, root, "bos_token_id", 1, -1, 0, c->vocab_size - 1, &c->bos_token_id)))
        return rc;
    const cJSON *eos = field(root, "eos_token_id");
    if (!eos) return SGLC_OK;
    if (cJSON_IsNumber(eos)) {
        c->n_eos = 1;
        return get_int(C, root, "eos_token_id", 1, -1, 0, c->vocab_size - 1, &c->eos_token_ids[0]);
    }
    if (!cJSON_IsArray(eos) || cJSON_GetArraySize(eos) > SGLC_HF_MAX_EOS)
        return sglc_err_set(C->err, SGLC_ERR_FORMAT,
                            "%s: field 'eos_token_id' must be an integer or a list of at most %d",
                            C->path, SGLC_HF_MAX_EOS);
    c->n_eos = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, eos) {
        double d = it->valuedouble;
        if (!cJSON_IsNumber(it) || d != floor(d) || d < 0 || d >= c->vocab_size)
            return sglc_err_set(C->err, SGLC_ERR_FORMAT,
                                "%s: 'eos_token_id' entries must be token ids below the "
                                "vocabulary size %d",
                                C->path, c->vocab_size);
        c->eos_token_ids[c->n_eos++] = (int32_t)d;
    }
    return SGLC_OK;
}

static int parse_root(ctx *C, const cJSON *root, sglc_hf_config *c) {
    int rc;
    memset(c, 0, sizeof *c);
    c->bos_token_id = -1;
    if ((rc = parse_arch(C, root, &c->arch))) return rc;
    const cJSON *o = root;
    if ((rc = get_int(C, o, "hidden_size", 1, 0, 1, 1 << 16, &c->hidden_size)) ||
        (rc = get_int(C, o, "intermediate_size", 1, 0, 1, 1 << 20, &c->intermediate_size)) ||
        (rc = get_int(C, o, "num_hidden_layers", 1, 0, 1, 1 << 10, &c->num_hidden_layers)) ||
        (rc = get_int(C, o, "num_attention_heads", 1, 0, 1, 1 << 10, &c->num_attention_heads)) ||
        (rc = get_int(C, o, "num_key_value_heads", 0, c->num_attention_heads, 1, 1 << 10,
                      &c->num_key_value_heads)) ||
        (rc = get_int(C, o, "vocab_size", 1, 0, 1, 1 << 24, &c->vocab_size)) ||
        (rc = get_int(C, o, "max_position_embeddings", 0, 2048, 1, 1 << 28,
                      &c->max_position_embeddings)) ||
        (rc = get_float(C, o, "rms_norm_eps", 0, 1e-6, 0.0, 1.0, &c->rms_norm_eps)) ||
        (rc = get_float(C, o, "rope_theta", 0, 10000.0, 0.0, 1e12, &c->rope_theta)) ||
        (rc = get_bool(C, o, "tie_word_embeddings", 0, &c->tie_word_embeddings)) ||
        (rc = get_bool(C, o, "attention_bias", 0, &c->attention_bias)))
        return rc;
    if (c->num_attention_heads % c->num_key_value_heads != 0)
        return sglc_err_set(C->err, SGLC_ERR_FORMAT,
                            "%s: num_attention_heads %d is not a multiple of "
                            "num_key_value_heads %d",
                            C->path, c->num_attention_heads, c->num_key_value_heads);
    if (field(o, "head_dim")) {
        if ((rc = get_int(C, o, "head_dim", 1, 0, 1, 1 << 12, &c->head_dim))) return rc;
    } else {
        if (c->hidden_size % c->num_attention_heads != 0)
            return sglc_err_set(C->err, SGLC_ERR_FORMAT,
                                "%s: hidden_size %d is not divisible by num_attention_heads %d "
                                "(and no head_dim is given)",
                                C->path, c->hidden_size, c->num_attention_heads);
        c->head_dim = c->hidden_size / c->num_attention_heads;
    }
    if (c->head_dim % 2 != 0)
        return sglc_err_set(C->err, SGLC_ERR_FORMAT,
                            "%s: head_dim %d is odd; rotary embedding needs pairs", C->path,
                            c->head_dim);
    /* transformers ignores attention_bias for Qwen2: q/k/v always carry one, o never */
    if (c->arch == SGLC_HF_ARCH_QWEN2) c->attention_bias = 1;

    const char *s = NULL;
    if ((rc = get_str(C, o, "hidden_act", &s))) return rc;
    if (s && strcmp(s, "silu") != 0)
        return sglc_err_set(C->err, SGLC_ERR_UNSUPPORTED,
                            "%s: hidden_act '%.32s' is not supported (supported: silu)", C->path,
                            s);
    int flag = 0;
    if ((rc = get_bool(C, o, "mlp_bias", 0, &flag))) return rc;
    if (flag)
        return sglc_err_set(C->err, SGLC_ERR_UNSUPPORTED, "%s: mlp_bias is not supported", C->path);
    if ((rc = get_bool(C, o, "use_sliding_window", 0, &flag))) return rc;
    if (flag)
        return sglc_err_set(C->err, SGLC_ERR_UNSUPPORTED,
                            "%s: sliding-window attention (use_sliding_window) is not supported",
                            C->path);
    const cJSON *lt = field(o, "layer_types"), *it;
    if (lt) {
        if (!cJSON_IsArray(lt))
            return sglc_err_set(C->err, SGLC_ERR_FORMAT, "%s: field 'layer_types' must be a list",
                                C->path);
        cJSON_ArrayForEach(it, lt) {
            if (!cJSON_IsString(it) || strcmp(it->valuestring, "full_attention") != 0)
                return sglc_err_set(C->err, SGLC_ERR_UNSUPPORTED,
                                    "%s: layer_types other than 'full_attention' are not "
                                    "supported",
                                    C->path);
        }
    }
    float prf = 1.0f;
    if ((rc = get_float(C, o, "partial_rotary_factor", 0, 1.0, 0.0, 1.0, &prf))) return rc;
    if (prf != 1.0f)
        return sglc_err_set(C->err, SGLC_ERR_UNSUPPORTED,
                            "%s: partial_rotary_factor %g is not supported", C->path, prf);

    const cJSON *rs = field(o, "rope_scaling");
    if (rs && (rc = parse_rope_scaling(C, rs, "rope_scaling", c))) return rc;
    const cJSON *rp = field(o, "rope_parameters");
    if (rp) {
        if ((rc = parse_rope_scaling(C, rp, "rope_parameters", c))) return rc;
        if ((rc = get_float(C, rp, "rope_theta", 0, c->rope_theta, 0.0, 1e12, &c->rope_theta)))
            return rc;
    }

    if ((rc = get_str(C, o, "torch_dtype", &s))) return rc;
    if (!s && (rc = get_str(C, o, "dtype", &s))) return rc;
    if (s) snprintf(c->torch_dtype, sizeof c->torch_dtype, "%s", s);
    return parse_special_ids(C, o, c);
}

/* Reads path whole; *out is NULL with rc 0 when missing and optional. */
static int read_small_file(const char *path, int required, char **out, size_t *len, sglc_err *err) {
    *out = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (!required && errno == ENOENT) return SGLC_OK;
        return sglc_err_set(err, SGLC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    int rc = SGLC_OK;
    char *buf = malloc(SGLC_HF_CONFIG_MAX_BYTES + 1);
    if (!buf) {
        rc = sglc_err_set(err, SGLC_ERR_NOMEM, "out of memory");
        goto cleanup;
    }
    size_t n = fread(buf, 1, SGLC_HF_CONFIG_MAX_BYTES + 1, f);
    if (ferror(f)) {
        rc = sglc_err_set(err, SGLC_ERR_IO, "%s: read error", path);
        goto cleanup;
    }
    if (n > SGLC_HF_CONFIG_MAX_BYTES) {
        rc = sglc_err_set(err, SGLC_ERR_FORMAT, "%s: larger than %u bytes", path,
                          SGLC_HF_CONFIG_MAX_BYTES);
        goto cleanup;
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    buf = NULL;
cleanup:
    free(buf);
    fclose(f);
    return rc;
}

static int parse_json(const char *json, size_t len, const char *path, cJSON **root, sglc_err *err) {
    const char *end = NULL;
    *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (!*root) {
        size_t at = end && end >= json ? (size_t)(end - json) : 0;
        return sglc_err_set(err, SGLC_ERR_FORMAT, "%s: not valid JSON (near byte %zu)", path, at);
    }
    if (!cJSON_IsObject(*root)) {
        cJSON_Delete(*root);
        *root = NULL;
        return sglc_err_set(err, SGLC_ERR_FORMAT, "%s: not a JSON object", path);
    }
    return SGLC_OK;
}

int sglc_hf_config_parse(sglc_hf_config *out, const char *json, size_t len, const char *path,
                         sglc_err *err) {
    cJSON *root = NULL;
    int rc = parse_json(json, len, path, &root, err);
    if (rc) return rc;
    ctx C = {path, err};
    rc = parse_root(&C, root, out);
    cJSON_Delete(root);
    return rc;
}

int sglc_hf_config_load(sglc_hf_config *out, const char *dir, sglc_err *err) {
    char path[4096];
    char *buf = NULL;
    size_t len = 0;
    cJSON *root = NULL;
    int rc;
    if ((size_t)snprintf(path, sizeof path, "%s/generation_config.json", dir) >= sizeof path)
        return sglc_err_set(err, SGLC_ERR_ARG, "model folder path too long");
    snprintf(path, sizeof path, "%s/config.json", dir);
    if ((rc = read_small_file(path, 1, &buf, &len, err))) goto cleanup;
    if ((rc = sglc_hf_config_parse(out, buf, len, path, err))) goto cleanup;
    free(buf);
    buf = NULL;
    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    if ((rc = read_small_file(path, 0, &buf, &len, err)) || !buf) goto cleanup;
    if ((rc = parse_json(buf, len, path, &root, err))) goto cleanup;
    ctx C = {path, err};
    rc = parse_special_ids(&C, root, out);
cleanup:
    cJSON_Delete(root);
    free(buf);
    return rc;
}

void sglc_hf_rope_freq_factors(const sglc_hf_config *c, int32_t rot_dim, float *out) {
    int32_t half = rot_dim / 2;
    for (int32_t i = 0; i < half; i++)
        out[i] = 1.0f;
    if (c->rope_scaling.type != SGLC_HF_ROPE_SCALING_LLAMA3) return;
    /* the same float32 arithmetic as transformers' _compute_llama3_parameters */
    const float factor = c->rope_scaling.factor, lo = c->rope_scaling.low_freq_factor,
                hi = c->rope_scaling.high_freq_factor;
    const float old_ctx = (float)c->rope_scaling.original_max_position_embeddings;
    const float lo_wavelen = old_ctx / lo, hi_wavelen = old_ctx / hi;
    const float pi = 3.14159265358979323846f;
    for (int32_t i = 0; i < half; i++) {
        float inv_freq = 1.0f / powf(c->rope_theta, (float)(2 * i) / (float)rot_dim);
        float wavelen = 2.0f * pi / inv_freq;
        if (wavelen < hi_wavelen) continue; /* high frequency: unchanged */
        if (wavelen > lo_wavelen) {
            out[i] = factor;
            continue;
        }
        float smooth = (old_ctx / wavelen - lo) / (hi - lo);
        out[i] = 1.0f / ((1.0f - smooth) / factor + smooth);
    }
}
