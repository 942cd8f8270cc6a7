/* `sglc quantize`: writes an MLX-format quantized copy of a Hugging Face model folder, the
 * layout mlx-community repos use and mlx_lm.load reads: every 2-D floating-point `*.weight`
 * whose input size is a multiple of the group size (linear layers, embeddings, lm_head) becomes
 * `.weight` (U32 packed codes), `.scales` and `.biases` (the tensor's own dtype), bit-exact with
 * mlx.core.quantize; other tensors are copied. config.json gains "quantization" and
 * "quantization_config" {group_size, bits, mode: affine}; tokenizer and generation files are
 * copied. Tensors stream one at a time, so memory holds one quantized tensor, not the model. */
#include <cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/log.h"
#include "cli/args.h"
#include "cli/cli.h"
#include "formats/safetensors.h"
#include "quant/ggml_types.h"
#include "quant/mlx_affine.h"

static void usage(FILE *f) {
    fprintf(f, "usage: sglc quantize --model-path IN --out DIR [--bits 4|8] [--group-size 64]\n"
               "  writes an MLX affine-quantized copy of the Hugging Face folder IN into DIR\n"
               "  (bits 2, 3, 4, 5, 6, 8; group size 32, 64, 128; defaults 4 and 64)\n");
}

static int float_dtype(sglc_st_dtype d, uint32_t *t) {
    switch (d) {
    case SGLC_ST_F32: *t = SGLC_GGML_TYPE_F32; return 1;
    case SGLC_ST_F16: *t = SGLC_GGML_TYPE_F16; return 1;
    case SGLC_ST_BF16: *t = SGLC_GGML_TYPE_BF16; return 1;
    default: return 0;
    }
}

static int to_quantize(const sglc_st_tensor *t, int group) {
    uint32_t d;
    size_t n = strlen(t->name);
    return t->n_dims == 2 && float_dtype(t->dtype, &d) && n > 7 &&
           strcmp(t->name + n - 7, ".weight") == 0 && t->shape[1] % group == 0 && t->shape[0] > 0;
}

/* appends to a growing string; 0 on success */
typedef struct {
    char *s;
    size_t len, cap;
} strbuf;

static int sb_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int sb_printf(strbuf *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) return -1;
        if (b->s && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return 0;
        }
        size_t cap = (b->cap ? b->cap * 2 : 4096) + (size_t)n;
        char *s = realloc(b->s, cap);
        if (!s) return -1;
        b->s = s;
        b->cap = cap;
    }
}

static int copy_file(const char *src_dir, const char *dst_dir, const char *name) {
    char a[4096], b[4096];
    snprintf(a, sizeof a, "%s/%s", src_dir, name);
    snprintf(b, sizeof b, "%s/%s", dst_dir, name);
    FILE *in = fopen(a, "rb");
    if (!in) return 0; /* optional file */
    FILE *out = fopen(b, "wb");
    int rc = out ? 0 : -1;
    char buf[65536];
    size_t n;
    while (out && (n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) rc = -1;
    fclose(in);
    if (out && fclose(out) != 0) rc = -1;
    if (rc) fprintf(stderr, "sglc quantize: cannot write %s\n", b);
    return rc;
}

static int write_config(const char *in, const char *out, int bits, int group) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", in);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "sglc quantize: %s: %s\n", path, strerror(errno));
        return -1;
    }
    char *text = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0) n = ftell(f);
    if (n >= 0 && n < (16l << 20) && fseek(f, 0, SEEK_SET) == 0 && (text = malloc((size_t)n + 1)))
        if (fread(text, 1, (size_t)n, f) != (size_t)n) {
            free(text);
            text = NULL;
        }
    fclose(f);
    if (!text) {
        fprintf(stderr, "sglc quantize: cannot read %s\n", path);
        return -1;
    }
    text[n] = 0;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(root)) {
        fprintf(stderr, "sglc quantize: %s is not a JSON object\n", path);
        cJSON_Delete(root);
        return -1;
    }
    for (int i = 0; i < 2; i++) {
        const char *key = i ? "quantization_config" : "quantization";
        cJSON_DeleteItemFromObjectCaseSensitive(root, key);
        cJSON *q = cJSON_AddObjectToObject(root, key);
        cJSON_AddNumberToObject(q, "group_size", group);
        cJSON_AddNumberToObject(q, "bits", bits);
        cJSON_AddStringToObject(q, "mode", "affine");
    }
    char *s = cJSON_Print(root);
    cJSON_Delete(root);
    snprintf(path, sizeof path, "%s/config.json", out);
    f = fopen(path, "wb");
    int rc = (s && f && fputs(s, f) >= 0) ? 0 : -1;
    if (f && fclose(f) != 0) rc = -1;
    free(s);
    if (rc) fprintf(stderr, "sglc quantize: cannot write %s\n", path);
    return rc;
}

/* header entry for one output tensor */
static int sb_tensor(strbuf *h, int *first, const char *name, const char *suffix, const char *dtype,
                     int64_t d0, int64_t d1, int n_dims, size_t *off, size_t bytes) {
    int rc = sb_printf(h, "%s\"%s%s\":{\"dtype\":\"%s\",\"shape\":[%lld", *first ? "" : ",", name,
                       suffix, dtype, (long long)d0);
    if (!rc && n_dims == 2) rc = sb_printf(h, ",%lld", (long long)d1);
    if (!rc) rc = sb_printf(h, "],\"data_offsets\":[%zu,%zu]}", *off, *off + bytes);
    *off += bytes;
    *first = 0;
    return rc;
}

static const char *st_name(sglc_st_dtype d) {
    return sglc_st_dtype_name(d);
}

int sglc_cmd_quantize(int argc, char **argv) {
    const char *in = NULL, *out = NULL;
    int64_t bits = 4, group = 64;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (!(v = sglc_arg_value(argc, argv, &i))) return 2;
        if (strcmp(a, "--model-path") == 0 || strcmp(a, "--model") == 0)
            in = v;
        else if (strcmp(a, "--out") == 0)
            out = v;
        else if (strcmp(a, "--bits") == 0) {
            if (sglc_arg_int(a, v, 2, 8, &bits)) return 2;
        } else if (strcmp(a, "--group-size") == 0) {
            if (sglc_arg_int(a, v, 32, 128, &group)) return 2;
        } else {
            fprintf(stderr, "sglc quantize: unknown option '%s' (see --help)\n", a);
            return 2;
        }
    }
    if (!in || !out) {
        fprintf(stderr, "sglc quantize: --model-path and --out are required\n");
        return 2;
    }
    if (!sglc_mlx_affine_valid((int)bits, (int)group)) {
        fprintf(stderr,
                "sglc quantize: bits=%d group_size=%d not supported (bits 2, 3, 4, 5, 6, "
                "8; group size 32, 64, 128)\n",
                (int)bits, (int)group);
        return 2;
    }
    sglc_err err = {{0}};
    sglc_safetensors *st = NULL;
    if (sglc_safetensors_open(&st, in, &err) != 0) {
        fprintf(stderr, "sglc: %s\n", err.msg);
        return 1;
    }
    int ret = 1;
    strbuf h = {0};
    FILE *f = NULL;
    char path[4096];
    if (mkdir(out, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "sglc quantize: cannot create %s: %s\n", out, strerror(errno));
        goto cleanup;
    }
    /* header: every output tensor's name, dtype, shape and offsets */
    int first = 1;
    size_t off = 0;
    int64_t nt = sglc_safetensors_n_tensors(st);
    if (sb_printf(&h, "{\"__metadata__\":{\"format\":\"mlx\"}")) goto nomem;
    first = 0;
    for (int64_t i = 0; i < nt; i++) {
        const sglc_st_tensor *t = sglc_safetensors_tensor_at(st, i);
        if (to_quantize(t, (int)group)) {
            size_t nlen = strlen(t->name) - 7;
            char base[512];
            snprintf(base, sizeof base, "%.*s", (int)nlen, t->name);
            int64_t n = t->shape[0], k = t->shape[1];
            int64_t words = sglc_mlx_affine_row_words(k, (int)bits), ng = k / group;
            size_t es = sglc_st_dtype_size(t->dtype);
            if (sb_tensor(&h, &first, base, ".weight", "U32", n, words, 2, &off,
                          (size_t)(n * words) * 4) ||
                sb_tensor(&h, &first, base, ".scales", st_name(t->dtype), n, ng, 2, &off,
                          (size_t)(n * ng) * es) ||
                sb_tensor(&h, &first, base, ".biases", st_name(t->dtype), n, ng, 2, &off,
                          (size_t)(n * ng) * es))
                goto nomem;
        } else {
            if (t->n_dims > 2) {
                fprintf(stderr, "sglc quantize: %s: tensors of %d dims are not supported\n",
                        t->name, (int)t->n_dims);
                goto cleanup;
            }
            if (sb_tensor(&h, &first, t->name, "", st_name(t->dtype), t->shape[0],
                          t->n_dims == 2 ? t->shape[1] : 0, t->n_dims, &off, t->nbytes))
                goto nomem;
        }
    }
    if (sb_printf(&h, "}")) goto nomem;
    while (h.len % 8)
        if (sb_printf(&h, " ")) goto nomem;

    snprintf(path, sizeof path, "%s/model.safetensors", out);
    f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "sglc quantize: cannot create %s: %s\n", path, strerror(errno));
        goto cleanup;
    }
    uint64_t hl = h.len;
    int io_ok = fwrite(&hl, 8, 1, f) == 1 && fwrite(h.s, 1, h.len, f) == h.len;
    size_t q_in = 0, q_out = 0;
    for (int64_t i = 0; io_ok && i < nt; i++) {
        const sglc_st_tensor *t = sglc_safetensors_tensor_at(st, i);
        if (!to_quantize(t, (int)group)) {
            io_ok = fwrite(t->data, 1, t->nbytes, f) == t->nbytes;
            continue;
        }
        uint32_t dtype = SGLC_GGML_TYPE_F32;
        float_dtype(t->dtype, &dtype);
        int64_t n = t->shape[0], k = t->shape[1];
        int64_t words = sglc_mlx_affine_row_words(k, (int)bits), ng = k / group;
        size_t es = sglc_st_dtype_size(t->dtype);
        void *src = malloc(t->nbytes); /* the mapping is not element-aligned in general */
        uint32_t *q = malloc((size_t)(n * words) * 4);
        void *sc = malloc((size_t)(n * ng) * es), *bi = malloc((size_t)(n * ng) * es);
        if (!src || !q || !sc || !bi) {
            free(src);
            free(q);
            free(sc);
            free(bi);
            goto nomem;
        }
        memcpy(src, t->data, t->nbytes);
        sglc_mlx_affine_quantize(src, dtype, n, k, (int)bits, (int)group, q, sc, bi);
        io_ok = fwrite(q, 4, (size_t)(n * words), f) == (size_t)(n * words) &&
                fwrite(sc, es, (size_t)(n * ng), f) == (size_t)(n * ng) &&
                fwrite(bi, es, (size_t)(n * ng), f) == (size_t)(n * ng);
        q_in += t->nbytes;
        q_out += (size_t)(n * words) * 4 + 2 * (size_t)(n * ng) * es;
        free(src);
        free(q);
        free(sc);
        free(bi);
    }
    if (fclose(f) != 0) io_ok = 0;
    f = NULL;
    if (!io_ok) {
        fprintf(stderr, "sglc quantize: error writing %s\n", path);
        goto cleanup;
    }
    if (write_config(in, out, (int)bits, (int)group)) goto cleanup;
    static const char *const k_copy[] = {"tokenizer.json",
                                         "tokenizer_config.json",
                                         "special_tokens_map.json",
                                         "generation_config.json",
                                         "chat_template.jinja",
                                         "vocab.json",
                                         "merges.txt"};
    for (size_t i = 0; i < sizeof k_copy / sizeof k_copy[0]; i++)
        if (copy_file(in, out, k_copy[i])) goto cleanup;
    fprintf(stderr, "quantized %s -> %s: bits=%d group_size=%d, matrices %.2f GB -> %.2f GB\n", in,
            out, (int)bits, (int)group, (double)q_in / 1e9, (double)q_out / 1e9);
    ret = 0;
    goto cleanup;
nomem:
    fprintf(stderr, "sglc quantize: out of memory\n");
cleanup:
    if (f) fclose(f);
    free(h.s);
    sglc_safetensors_close(st);
    return ret;
}
