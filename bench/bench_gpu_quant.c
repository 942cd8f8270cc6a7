/* Times --quantization mlx_q4|mlx_q8 at load on an 8B-shaped bf16 model (issue 15: under 2 s on
 * one H200 for the 16 GB of Llama-3-8B): 32 layers of q 4096x4096, k/v 1024x4096, o 4096x4096,
 * gate/up 14336x4096, down 4096x14336, and untied embed/lm_head 128256x4096, filled with random
 * bf16 values on the host. The model goes through sglc_model_apply_quant_preset, the loader's
 * own call, so the two log lines are the ones `sglc serve --quantization` prints; on a backend
 * with quantize_affine (cuda) that is the device path, on cpu the host path. The last line is
 * JSON: source bytes, seconds, GB/s.
 *
 * The source is in malloc'd, already touched memory: a real load reads a file mapping, whose
 * first touch of each page costs a fault (and a disk read when the page cache is cold), which
 * this does not measure.
 *
 * Built by CMake (build/bench_gpu_quant). Usage:
 *   bench_gpu_quant [--device cuda|cpu] [--bits 4|8] [--layers N] [--threads N] [--check N]
 * --check N compares the first N matrices' device codes, scales and biases with the host's
 * sglc_mlx_affine_quantize, byte for byte (cuda only). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/backend.h"
#include "base/log.h"
#include "base/threadpool.h"
#include "model/model.h"
#include "quant/ggml_types.h"
#include "quant/mlx_affine.h"

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

typedef struct {
    uint16_t *w;
    size_t n;
    uint64_t seed;
} fill_job;

/* bf16 of a uniform value in [-0.05, 0.05), one xorshift stream per thread */
static void fill_task(void *ctx, int ith, int nth) {
    const fill_job *j = ctx;
    long lo, hi;
    sglc_split_range((long)((j->n + 4095) / 4096), ith, nth, &lo, &hi);
    size_t a = (size_t)lo * 4096, b = (size_t)hi * 4096;
    if (b > j->n) b = j->n;
    uint64_t s = j->seed ^ ((uint64_t)(ith + 1) * 0x9E3779B97F4A7C15ull);
    for (size_t i = a; i < b; i++) {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        float u = (float)((s * 0x2545F4914F6CDD1Dull) >> 40) / 16777216.0f;
        j->w[i] = sglc_f32_to_bf16((u - 0.5f) * 0.1f);
    }
}

static int make_matrix(sglc_model *m, sglc_weight *w, int64_t n, int64_t k, sglc_threadpool *tp,
                       uint64_t seed) {
    size_t count = (size_t)n * (size_t)k;
    uint16_t *p = malloc(count * 2);
    if (!p) return -1;
    fill_job j = {p, count, seed};
    sglc_threadpool_run(tp, fill_task, &j);
    memset(w, 0, sizeof *w);
    w->type = SGLC_GGML_TYPE_BF16;
    w->k = k;
    w->n = n;
    w->host = p;
    w->present = 1;
    w->host_bytes = count * 2;
    m->weight_bytes += count * 2;
    return 0;
}

static void say(const char *line) {
    printf("%s\n", line);
    fflush(stdout);
}

/* the device result of one matrix against the host quantization of its source */
static int check_matrix(sglc_backend *be, const sglc_weight *q, const uint16_t *src, int bits) {
    const int64_t n = q->n, k = q->k, words = sglc_mlx_affine_row_words(k, bits), ng = k / 64;
    const size_t cb = (size_t)(n * words) * 4, pb = (size_t)(n * ng) * 2;
    uint32_t *c = malloc(cb), *dc = malloc(cb);
    uint8_t *s = malloc(pb), *b = malloc(pb), *ds = malloc(pb), *db = malloc(pb);
    int same = -1;
    if (c && dc && s && b && ds && db) {
        sglc_mlx_affine_quantize(src, SGLC_GGML_TYPE_BF16, n, k, bits, 64, c, s, b);
        be->ops->download(be, dc, q->dev, cb);
        be->ops->download(be, ds, q->q_scales_dev, pb);
        be->ops->download(be, db, q->q_biases_dev, pb);
        be->ops->sync(be);
        same = memcmp(c, dc, cb) == 0 && memcmp(s, ds, pb) == 0 && memcmp(b, db, pb) == 0;
    }
    free(c), free(dc), free(s), free(b), free(ds), free(db);
    return same;
}

int main(int argc, char **argv) {
    const char *device = "cuda";
    int bits = 4, n_layers = 32, n_threads = 0, n_check = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--device") == 0 && v)
            device = v, i++;
        else if (strcmp(a, "--bits") == 0 && v)
            bits = atoi(v), i++;
        else if (strcmp(a, "--layers") == 0 && v)
            n_layers = atoi(v), i++;
        else if (strcmp(a, "--threads") == 0 && v)
            n_threads = atoi(v), i++;
        else if (strcmp(a, "--check") == 0 && v)
            n_check = atoi(v), i++;
        else {
            fprintf(stderr, "usage: bench_gpu_quant [--device cuda|cpu] [--bits 4|8] [--layers N] "
                            "[--threads N] [--check N]\n");
            return 2;
        }
    }
    if ((bits != 4 && bits != 8) || n_layers < 0 || n_layers > 1024) {
        fprintf(stderr, "bench_gpu_quant: --bits 4 or 8, --layers 0..1024\n");
        return 2;
    }
    sglc_log_set_level(SGLC_LOG_INFO);
    sglc_err err = {{0}};
    sglc_backend *be = NULL;
    sglc_backend_params bp = {.n_threads = n_threads};
    if (sglc_backend_open(&be, device, &bp, &err) != 0) {
        fprintf(stderr, "bench_gpu_quant: %s\n", err.msg);
        return 1;
    }
    sglc_model *m = calloc(1, sizeof *m);
    sglc_threadpool *tp = NULL;
    /* the matrices in quantization order and their sources (the weights lose host on cuda) */
    const int n_mats = 2 + 7 * n_layers;
    sglc_weight **mats = calloc((size_t)n_mats, sizeof *mats);
    const void **srcs = calloc((size_t)n_mats, sizeof *srcs);
    int rc = 1;
    if (!m || !mats || !srcs || sglc_threadpool_open(&tp, 0) != 0) goto nomem;
    m->be = be;
    m->path = "synthetic 8B-shaped bf16";
    sglc_model_config *c = &m->cfg;
    c->arch = SGLC_ARCH_LLAMA;
    c->n_layer = n_layers;
    c->n_embd = 4096;
    c->n_ff = 14336;
    c->n_head = 32;
    c->n_head_kv = 8;
    c->head_dim = 128;
    c->n_vocab = 128256;
    m->layers = calloc((size_t)(n_layers > 0 ? n_layers : 1), sizeof *m->layers);
    if (!m->layers || !mats || !srcs) goto nomem;
    mats[0] = &m->tok_embd;
    mats[1] = &m->output;
    for (int l = 0; l < n_layers; l++) {
        sglc_layer_weights *L = &m->layers[l];
        sglc_weight *ws[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        memcpy(mats + 2 + 7 * l, ws, sizeof ws);
    }
    const double t0 = now_s();
    for (int i = 0; i < n_mats; i++) {
        /* [n][k]: embeddings, then q k v o gate up down */
        static const int64_t shapes[9][2] = {{128256, 4096}, {128256, 4096}, {4096, 4096},
                                             {1024, 4096},   {1024, 4096},   {4096, 4096},
                                             {14336, 4096},  {14336, 4096},  {4096, 14336}};
        const int sh = i < 2 ? i : 2 + (i - 2) % 7;
        if (make_matrix(m, mats[i], shapes[sh][0], shapes[sh][1], tp, (uint64_t)i + 1)) goto nomem;
        srcs[i] = mats[i]->host;
    }
    const size_t src_bytes = m->weight_bytes;
    printf("bench_gpu_quant: %d matrices, %.2f GB of bf16 made on the host in %.1f s\n", n_mats,
           (double)src_bytes / 1e9, now_s() - t0);
    fflush(stdout);

    const double q0 = now_s();
    rc = sglc_model_apply_quant_preset(m, bits == 4 ? "mlx_q4" : "mlx_q8", m->path, n_threads, say,
                                       &err);
    const double secs = now_s() - q0;
    if (rc) {
        fprintf(stderr, "bench_gpu_quant: %s\n", err.msg);
        goto cleanup;
    }
    printf("{\"device\": \"%s\", \"bits\": %d, \"matrices\": %d, \"source_gb\": %.3f, "
           "\"seconds\": %.3f, \"gb_per_s\": %.2f}\n",
           be->ops->name, bits, n_mats, (double)src_bytes / 1e9, secs,
           (double)src_bytes / 1e9 / secs);
    if (n_check > 0 && !be->ops->quantize_affine)
        printf("--check: the %s backend quantizes on the host; nothing to compare\n",
               be->ops->name);
    else if (n_check > 0) {
        int bad = 0, checked = 0;
        for (int i = 0; i < n_mats && i < n_check; i++) {
            int same = check_matrix(be, mats[i], srcs[i], bits);
            if (same < 0) {
                printf("--check: out of host memory at matrix %d\n", i);
                break;
            }
            checked++;
            if (!same) {
                bad++;
                printf("--check: matrix %d (%lld x %lld) differs from the host's quantization\n", i,
                       (long long)mats[i]->n, (long long)mats[i]->k);
            }
        }
        printf("--check: %d of %d matrices bit-identical to sglc_mlx_affine_quantize\n",
               checked - bad, checked);
        if (bad) rc = 1;
    }
    goto cleanup;
nomem:
    fprintf(stderr, "bench_gpu_quant: out of host memory making the matrices\n");
    rc = 1;
cleanup:
    for (int i = 0; srcs && i < n_mats; i++)
        free((void *)srcs[i]);
    free(srcs);
    free(mats);
    sglc_threadpool_close(tp);
    sglc_model_close(m);
    sglc_backend_close(be);
    return rc;
}
