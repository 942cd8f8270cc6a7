/* MLX-quantized HF folders (mlx-community layout) in the HF loader:
 *  - the tiny llama fixture quantized by our MLX quantizer (bit-exact with MLX, test_mlx_quant)
 *    into .weight/.scales/.biases with a config.json "quantization" block (q4 and q8, group 64;
 *    a per-module override; embeddings and lm_head quantized too) loads, and its logits equal
 *    those of the same fixture with f32 weights set to the affine values scale * q + bias
 *    (within 1e-4: only the kernels' summation order differs), so every tensor is bound to the
 *    right layer and read with the right bits, group and layout;
 *  - malformed folders are refused with one line naming the problem: scales of the wrong shape,
 *    packed weights whose shape says other bits than the config declares, missing biases,
 *    packed weights with no quantization in config.json, an unsupported mode;
 *  - `sglc quantize` writes the same tensors (and so the same logits) as this test's own
 *    MLX-layout writer;
 *  - the default model converted by `mlx_lm convert -q` (q4 and q8, group 64; folders made as
 *    scripts/golden/make_mlx_greedy_golden.py says, skipped when absent): sglc's greedy tokens
 *    equal mlx-lm's (tests/golden/greedy_mlx_q{4,8}.tsv) on the first 10 prompts (all 50 with
 *    SGLC_MLX_GREEDY_ALL=1), allowing a mismatch only at a near-tie of mlx-lm's logits. */
#include <math.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/backend.h"
#include "base/log.h"
#include "engine/sampler.h"
#include "engine/session.h"
#include "formats/safetensors.h"
#include "model/model.h"
#include "quant/ggml_types.h"
#include "quant/mlx_affine.h"
#include "test_util.h"

#define MAX_T 64
#define GEN_LEN 32

typedef struct {
    char name[128];
    const char *dtype;
    int64_t shape[2];
    int n_dims;
    void *data; /* owned */
    size_t nbytes;
} out_tensor;

typedef struct {
    out_tensor t[MAX_T];
    int n;
} out_file;

static void add(out_file *f, const char *name, const char *dtype, int n_dims, int64_t d0,
                int64_t d1, const void *data, size_t nbytes) {
    SGLC_ASSERT(f->n < MAX_T);
    out_tensor *t = &f->t[f->n++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->dtype = dtype;
    t->n_dims = n_dims;
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->data = malloc(nbytes ? nbytes : 1);
    SGLC_ASSERT(t->data);
    memcpy(t->data, data, nbytes);
    t->nbytes = nbytes;
}

static void write_safetensors(const char *path, out_file *f) {
    char *hdr = malloc(65536);
    SGLC_ASSERT(hdr);
    size_t off = 0, pos = 0;
    pos += (size_t)snprintf(hdr + pos, 65536 - pos, "{");
    for (int i = 0; i < f->n; i++) {
        out_tensor *t = &f->t[i];
        char shape[64];
        if (t->n_dims == 1)
            snprintf(shape, sizeof shape, "[%lld]", (long long)t->shape[0]);
        else
            snprintf(shape, sizeof shape, "[%lld,%lld]", (long long)t->shape[0],
                     (long long)t->shape[1]);
        pos +=
            (size_t)snprintf(hdr + pos, 65536 - pos,
                             "%s\"%s\":{\"dtype\":\"%s\",\"shape\":%s,\"data_offsets\":[%zu,%zu]}",
                             i ? "," : "", t->name, t->dtype, shape, off, off + t->nbytes);
        off += t->nbytes;
    }
    pos += (size_t)snprintf(hdr + pos, 65536 - pos, "}");
    while (pos % 8)
        hdr[pos++] = ' ';
    FILE *fp = fopen(path, "wb");
    SGLC_ASSERT(fp);
    uint64_t n = pos;
    fwrite(&n, 8, 1, fp);
    fwrite(hdr, 1, pos, fp);
    for (int i = 0; i < f->n; i++) {
        fwrite(f->t[i].data, 1, f->t[i].nbytes, fp);
        free(f->t[i].data);
    }
    fclose(fp);
    free(hdr);
    f->n = 0;
}

enum {
    MAKE_DEQUANT = 1,      /* f32 weights holding the affine values, no quantization block */
    MAKE_BAD_SCALES = 2,   /* layer 0 q_proj scales with twice the groups */
    MAKE_MISSING_BIAS = 4, /* layer 1 down_proj without .biases */
    MAKE_NO_QCONFIG = 8,   /* packed tensors, config without "quantization" */
    MAKE_OVERRIDE = 16,    /* layer 0 down_proj at 8 bits, declared as a per-module override */
    MAKE_BAD_MODE = 32,    /* "mode": "mxfp4" */
};

/* Writes dir from tests/golden/tiny_llama: every matrix quantized with `bits` (config declares
 * decl_bits), group 64. */
static void make_folder(const char *dir, int bits, int decl_bits, int flags) {
    char src[2048], path[4200];
    snprintf(src, sizeof src, "%s/tests/golden/tiny_llama", test_source_dir());
    mkdir(dir, 0755);
    sglc_err err = {{0}};
    sglc_safetensors *st = NULL;
    SGLC_ASSERT(sglc_safetensors_open(&st, src, &err) == 0);
    out_file *of = calloc(1, sizeof *of);
    SGLC_ASSERT(of);
    const int group = 64;
    for (int64_t i = 0; i < sglc_safetensors_n_tensors(st); i++) {
        const sglc_st_tensor *t = sglc_safetensors_tensor_at(st, i);
        SGLC_ASSERT(t->dtype == SGLC_ST_F32);
        if (t->n_dims != 2) {
            add(of, t->name, "F32", t->n_dims, t->shape[0], t->shape[1], t->data, t->nbytes);
            continue;
        }
        int64_t n = t->shape[0], k = t->shape[1];
        int b = bits;
        int is_down0 = strcmp(t->name, "model.layers.0.mlp.down_proj.weight") == 0;
        if ((flags & MAKE_OVERRIDE) && is_down0) b = 8;
        int64_t words = sglc_mlx_affine_row_words(k, b), ng = k / group;
        float *w = malloc(t->nbytes);
        uint32_t *q = malloc((size_t)(n * words) * 4);
        float *sc = malloc((size_t)(n * ng) * 8), *bi = malloc((size_t)(n * ng) * 4);
        SGLC_ASSERT(w && q && sc && bi);
        memcpy(w, t->data, t->nbytes);
        sglc_mlx_affine_quantize(w, SGLC_GGML_TYPE_F32, n, k, b, group, q, sc, bi);
        char base[128], name[160];
        snprintf(base, sizeof base, "%.*s", (int)(strlen(t->name) - 7), t->name);
        if (flags & MAKE_DEQUANT) {
            for (int64_t r = 0; r < n; r++)
                for (int64_t j = 0; j < k; j++)
                    w[r * k + j] =
                        sc[r * ng + j / group] * (float)sglc_mlx_affine_code(q + r * words, j, b) +
                        bi[r * ng + j / group];
            add(of, t->name, "F32", 2, n, k, w, t->nbytes);
        } else {
            add(of, t->name, "U32", 2, n, words, q, (size_t)(n * words) * 4);
            int bad = (flags & MAKE_BAD_SCALES) &&
                      strcmp(t->name, "model.layers.0.self_attn.q_proj.weight") == 0;
            snprintf(name, sizeof name, "%s.scales", base);
            if (bad) {
                memcpy(sc + n * ng, sc, (size_t)(n * ng) * 4);
                add(of, name, "F32", 2, n, 2 * ng, sc, (size_t)(n * ng) * 8);
            } else {
                add(of, name, "F32", 2, n, ng, sc, (size_t)(n * ng) * 4);
            }
            snprintf(name, sizeof name, "%s.biases", base);
            if (!((flags & MAKE_MISSING_BIAS) &&
                  strcmp(t->name, "model.layers.1.mlp.down_proj.weight") == 0))
                add(of, name, "F32", 2, n, ng, bi, (size_t)(n * ng) * 4);
        }
        free(w);
        free(q);
        free(sc);
        free(bi);
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    write_safetensors(path, of);
    free(of);
    sglc_safetensors_close(st);

    snprintf(path, sizeof path, "%s/config.json", src);
    size_t len;
    char *cfg = test_read_file(path, &len);
    SGLC_ASSERT(cfg);
    char *end = strrchr(cfg, '}');
    SGLC_ASSERT(end);
    *end = 0;
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *fp = fopen(path, "w");
    SGLC_ASSERT(fp);
    fputs(cfg, fp);
    if (!(flags & (MAKE_DEQUANT | MAKE_NO_QCONFIG))) {
        fprintf(fp, ",\n  \"quantization\": {\"group_size\": %d, \"bits\": %d, \"mode\": \"%s\"",
                group, decl_bits, (flags & MAKE_BAD_MODE) ? "mxfp4" : "affine");
        if (flags & MAKE_OVERRIDE)
            fprintf(fp, ", \"model.layers.0.mlp.down_proj\": {\"group_size\": 64, \"bits\": 8}");
        fprintf(fp, "}");
    }
    fprintf(fp, "\n}\n");
    fclose(fp);
    free(cfg);
}

static void rm_folder(const char *dir) {
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/config.json", dir);
    unlink(path);
    rmdir(dir);
}

static double rel_err(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return sqrt(num / (den > 0 ? den : 1));
}

static float *eval_logits(sglc_backend *be, const char *dir, const int32_t *ids, int n) {
    sglc_err err = {{0}};
    sglc_model *m = NULL;
    CHECKF(sglc_model_open(&m, dir, be, &err) == 0, "%s: %s", dir, err.msg);
    if (!m) return NULL;
    sglc_session *s = NULL;
    float *all = malloc(sizeof(float) * (size_t)n * (size_t)m->cfg.n_vocab);
    CHECK(sglc_session_open(&s, m, 64, 8, &err) == 0);
    if (s) CHECKF(sglc_session_eval(s, ids, n, NULL, all, &err) == 0, "%s", err.msg);
    sglc_session_close(s);
    sglc_model_close(m);
    return all;
}

static void test_tiny_roundtrip(sglc_backend *be, const char *tmp) {
    static const int32_t ids[] = {1, 17, 99, 3, 64, 127, 5, 42, 8, 77, 31};
    const int n = (int)(sizeof ids / sizeof ids[0]);
    char qdir[1024], ddir[1024];
    for (int variant = 0; variant < 3; variant++) {
        int bits = variant == 1 ? 8 : 4, flags = variant == 2 ? MAKE_OVERRIDE : 0;
        snprintf(qdir, sizeof qdir, "%s/q", tmp);
        snprintf(ddir, sizeof ddir, "%s/d", tmp);
        make_folder(qdir, bits, bits, flags);
        make_folder(ddir, bits, bits, flags | MAKE_DEQUANT);
        float *lq = eval_logits(be, qdir, ids, n), *ld = eval_logits(be, ddir, ids, n);
        if (lq && ld) {
            double e = rel_err(lq, ld, (size_t)n * 128);
            fprintf(stderr, "tiny llama q%d%s: logits vs f32 affine values: rel error %.3g\n", bits,
                    flags ? " (+q8 override)" : "", e);
            /* q4 on AVX2 rounds activations to 16 bits per 64 values (2^-15 of the chunk's
             * max, compounding over the layers: ~2e-4 here); q8 and the f32 path stay < 1e-5 */
            CHECKF(e < (bits == 4 ? 1e-3 : 1e-4), "q%d: relative error %.3g", bits, e);
        }
        free(lq);
        free(ld);
        rm_folder(qdir);
        rm_folder(ddir);
    }
}

/* `sglc quantize` on the tiny fixture writes the tensors our quantizer (bit-exact with MLX)
 * gives, and the folder loads with the same logits as the folder this test writes itself. */
static void test_cli_quantize(sglc_backend *be, const char *tmp) {
    const char *bin = getenv("SGLC_BINARY");
    if (!bin) {
        fprintf(stderr, "skipping sglc quantize check: SGLC_BINARY not set\n");
        return;
    }
    char out[1024], ref[1024], cmd[4096];
    snprintf(out, sizeof out, "%s/cliq", tmp);
    snprintf(ref, sizeof ref, "%s/refq", tmp);
    snprintf(cmd, sizeof cmd,
             "'%s' quantize --model-path '%s/tests/golden/tiny_llama' --bits 4 --group-size 64 "
             "--out '%s' 2>/dev/null",
             bin, test_source_dir(), out);
    CHECKF(system(cmd) == 0, "%s failed", cmd);
    make_folder(ref, 4, 4, 0);
    sglc_err err = {{0}};
    sglc_safetensors *a = NULL, *b = NULL;
    CHECKF(sglc_safetensors_open(&a, out, &err) == 0, "%s", err.msg);
    CHECKF(sglc_safetensors_open(&b, ref, &err) == 0, "%s", err.msg);
    if (a && b) {
        CHECK(sglc_safetensors_n_tensors(a) == sglc_safetensors_n_tensors(b));
        int bad = 0;
        for (int64_t i = 0; i < sglc_safetensors_n_tensors(b); i++) {
            const sglc_st_tensor *tb = sglc_safetensors_tensor_at(b, i);
            const sglc_st_tensor *ta = sglc_safetensors_find(a, tb->name);
            if (!ta || ta->dtype != tb->dtype || ta->nbytes != tb->nbytes ||
                memcmp(ta->data, tb->data, tb->nbytes) != 0) {
                fprintf(stderr, "sglc quantize: tensor %s differs\n", tb->name);
                bad++;
            }
        }
        CHECK(bad == 0);
    }
    sglc_safetensors_close(a);
    sglc_safetensors_close(b);
    static const int32_t ids[] = {1, 17, 99, 3, 64};
    float *la = eval_logits(be, out, ids, 5), *lb = eval_logits(be, ref, ids, 5);
    CHECK(la && lb && memcmp(la, lb, sizeof(float) * 5 * 128) == 0);
    free(la);
    free(lb);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", out, ref);
    CHECK(system(cmd) == 0);
}

static void expect_refusal(sglc_backend *be, const char *tmp, int bits, int decl_bits, int flags,
                           const char *needle) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/bad", tmp);
    make_folder(dir, bits, decl_bits, flags);
    sglc_err err = {{0}};
    sglc_model *m = NULL;
    int rc = sglc_model_open(&m, dir, be, &err);
    CHECKF(rc != 0, "malformed folder (flags %d) loaded", flags);
    CHECKF(strstr(err.msg, needle) != NULL && strchr(err.msg, '\n') == NULL,
           "message '%s' lacks '%s'", err.msg, needle);
    fprintf(stderr, "refused as expected: %s\n", err.msg);
    sglc_model_close(m);
    rm_folder(dir);
}

static int parse_ints(const char *s, const char *end, int32_t *out, int cap) {
    int n = 0;
    while (s < end && n < cap) {
        char *e;
        long v = strtol(s, &e, 10);
        if (e == s) {
            s++;
            continue;
        }
        out[n++] = (int32_t)v;
        s = e;
    }
    return n;
}

/* Greedy agreement with mlx-lm on the converted default model. */
static void test_default_greedy(sglc_backend *be, int bits) {
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/models/SmolLM2-135M-Instruct-mlx-q%d", test_source_dir(), bits);
    snprintf(path, sizeof path, "%s/config.json", dir);
    struct stat sb;
    if (stat(path, &sb) != 0) {
        fprintf(stderr,
                "skipping q%d greedy check: %s missing (see "
                "scripts/golden/make_mlx_greedy_golden.py)\n",
                bits, dir);
        return;
    }
    snprintf(path, sizeof path, "%s/tests/golden/greedy_mlx_q%d.tsv", test_source_dir(), bits);
    size_t len;
    char *text = test_read_file(path, &len);
    CHECKF(text != NULL, "%s missing", path);
    if (!text) return;
    sglc_err err = {{0}};
    sglc_model *m = NULL;
    CHECKF(sglc_model_open(&m, dir, be, &err) == 0, "%s", err.msg);
    sglc_session *s = NULL;
    if (m) CHECK(sglc_session_open(&s, m, 256, 64, &err) == 0);
    /* the sanitizer build (~10x slower) checks 3 prompts */
    int limit = getenv("SGLC_MLX_GREEDY_ALL") ? 50 : getenv("SGLC_SANITIZER_BUILD") ? 3 : 10;
    int rows = 0, exact = 0;
    int V = m ? m->cfg.n_vocab : 0;
    float *all = malloc(sizeof(float) * 256 * (size_t)(V ? V : 1));
    for (char *line = text; s && line && *line && rows < limit;) {
        char *nl = strchr(line, '\n');
        char *end = nl ? nl : line + strlen(line);
        if (*line != '#') {
            char *c1 = strchr(line, '\t'), *c2 = c1 ? strchr(c1 + 1, '\t') : NULL;
            char *c3 = c2 ? strchr(c2 + 1, '\t') : NULL;
            int32_t prompt[200], path_ids[GEN_LEN], seq[256];
            float margins[GEN_LEN];
            int np = c2 ? parse_ints(c1 + 1, c2, prompt, 200) : 0;
            int ng = c3 ? parse_ints(c2 + 1, c3, path_ids, GEN_LEN) : 0;
            int nm = 0;
            for (char *p = c3 ? c3 + 1 : end; p < end && nm < GEN_LEN;) {
                char *e;
                float v = strtof(p, &e);
                if (e == p) break;
                margins[nm++] = v;
                p = e;
            }
            CHECK(np > 0 && ng == GEN_LEN && nm == GEN_LEN && np + GEN_LEN < 256);
            if (np > 0 && ng == GEN_LEN && nm == GEN_LEN && np + GEN_LEN < 256) {
                /* one prefill of prompt + mlx's path gives our greedy choice at every step */
                memcpy(seq, prompt, sizeof(int32_t) * (size_t)np);
                memcpy(seq + np, path_ids, sizeof(int32_t) * (GEN_LEN - 1));
                sglc_session_reset(s);
                int rc = sglc_session_eval(s, seq, np + GEN_LEN - 1, NULL, all, &err);
                CHECKF(rc == 0, "%s", err.msg);
                int d = GEN_LEN;
                for (int k = 0; rc == 0 && k < GEN_LEN; k++)
                    if (sglc_argmax(all + (size_t)(np - 1 + k) * (size_t)V, V) != path_ids[k]) {
                        d = k;
                        break;
                    }
                if (d == GEN_LEN)
                    exact++;
                else
                    fprintf(stderr,
                            "q%d prompt %d: first differs from mlx-lm at token %d (mlx "
                            "margin there %.4f)\n",
                            bits, rows, d, margins[d]);
                CHECKF(d == GEN_LEN || margins[d] < 0.05f,
                       "q%d prompt %d: differs from mlx-lm at token %d, mlx margin %.4f", bits,
                       rows, d, margins[d]);
            }
            rows++;
        }
        line = nl ? nl + 1 : NULL;
    }
    fprintf(stderr, "default model q%d: %d/%d prompts equal mlx-lm's 32 greedy tokens\n", bits,
            exact, rows);
    CHECK(rows == limit);
    free(all);
    free(text);
    sglc_session_close(s);
    sglc_model_close(m);
}

int main(void) {
    sglc_err err = {{0}};
    sglc_backend *be = NULL;
    CHECK(sglc_backend_open(&be, test_device(), NULL, &err) == 0);
    if (!be) return 1;
    char tmp[] = "/tmp/sglc_mlx_model_XXXXXX";
    SGLC_ASSERT(mkdtemp(tmp) != NULL);
    test_tiny_roundtrip(be, tmp);
    expect_refusal(be, tmp, 4, 4, MAKE_BAD_SCALES, "q_proj.scales has shape [64, 2]");
    expect_refusal(be, tmp, 4, 8, 0, "bits=8 from config.json");
    expect_refusal(be, tmp, 4, 4, MAKE_MISSING_BIAS, "no model.layers.1.mlp.down_proj.biases");
    expect_refusal(be, tmp, 4, 4, MAKE_NO_QCONFIG, "declares no quantization");
    expect_refusal(be, tmp, 4, 4, MAKE_BAD_MODE, "mode mxfp4 is not supported");
    test_cli_quantize(be, tmp);
    rmdir(tmp);
    test_default_greedy(be, 4);
    test_default_greedy(be, 8);
    sglc_backend_close(be);
    printf("test_mlx_model: %d failures\n", g_test_failures);
    return g_test_failures ? 1 : 0;
}
