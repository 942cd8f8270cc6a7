/* Tensor-parallel weight shards (model/tp.h) on the CPU backend, for every weight format:
 *   - column-parallel: the N ranks' outputs, concatenated, equal the full product (each output
 *     row is computed from the same bytes by the same kernel, so to the last bit up to the
 *     8-row packing of the CPU kernels);
 *   - row-parallel: the ranks' products over their slices of the input add up to the full
 *     product (the all-reduce), within the float rounding of a different summation order;
 *   - vectors split along their elements; splits that would cut a block or group, or do not
 *     divide, are refused with one line.
 * N = 2 and 4, as --tp-size would use. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "model/tp.h"
#include "quant/ggml_types.h"
#include "quant/mlx_affine.h"
#include "test_util.h"

static uint64_t g_s = 88172645463325252ull;
static float rnd(void) {
    g_s ^= g_s << 13;
    g_s ^= g_s >> 7;
    g_s ^= g_s << 17;
    return (float)((double)(g_s >> 11) / 9007199254740992.0) * 2.0f - 1.0f;
}

typedef struct {
    uint32_t type;
    int bits;
    const char *name;
} fmt;

/* a random n x k weight of the format (host memory in *data, *sc, *bi) */
static sglc_weight make_weight(const fmt *f, int64_t n, int64_t k, void **data, void **sc,
                               void **bi) {
    float *wf = malloc(sizeof(float) * (size_t)(n * k));
    for (int64_t i = 0; i < n * k; i++)
        wf[i] = rnd() * 0.5f;
    sglc_weight w = {.type = f->type, .k = k, .n = n, .present = 1};
    *sc = *bi = NULL;
    if (f->type == SGLC_WTYPE_MLX_AFFINE) {
        int64_t words = sglc_mlx_affine_row_words(k, f->bits), groups = k / 64;
        uint16_t *wb = malloc((size_t)(n * k) * 2);
        for (int64_t i = 0; i < n * k; i++)
            wb[i] = sglc_f32_to_bf16(wf[i]);
        *data = calloc((size_t)(n * words), 4);
        *sc = calloc((size_t)(n * groups), 2);
        *bi = calloc((size_t)(n * groups), 2);
        sglc_mlx_affine_quantize(wb, SGLC_GGML_TYPE_BF16, n, k, f->bits, 64, *data, *sc, *bi);
        free(wb);
        w.q_bits = f->bits;
        w.q_group = 64;
        w.q_dtype = SGLC_GGML_TYPE_BF16;
        w.q_scales = *sc;
        w.q_biases = *bi;
    } else {
        size_t rb = sglc_ggml_row_bytes(f->type, k);
        *data = calloc((size_t)n, rb);
        for (int64_t r = 0; r < n; r++)
            SGLC_ASSERT(sglc_ggml_quantize_row(f->type, wf + r * k, (char *)*data + r * rb, k) ==
                        0);
    }
    w.host = *data;
    free(wf);
    return w;
}

/* y = W x on the CPU backend (x: rows x k with stride ld floats) */
static void product(sglc_backend *be, const sglc_weight *w0, const float *x, int64_t ld,
                    int64_t rows, float *y) {
    sglc_weight w = *w0;
    sglc_err err = {{0}};
    CHECKF(be->ops->prepare_weight(be, &w, &err) == 0, "%s", err.msg);
    float *xc = malloc(sizeof(float) * (size_t)(rows * w.k));
    for (int64_t t = 0; t < rows; t++)
        memcpy(xc + t * w.k, x + t * ld, sizeof(float) * (size_t)w.k);
    be->ops->matmul(be, &w, NULL, xc, rows, y);
    be->ops->sync(be);
    free(xc);
}

static double rel_diff(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

int main(void) {
    sglc_backend *be = NULL;
    sglc_err err = {{0}};
    sglc_backend_params bp = {.n_threads = 2};
    CHECK(sglc_backend_open(&be, "cpu", &bp, &err) == 0);
    if (!be) return 1;
    const fmt fmts[] = {
        {SGLC_GGML_TYPE_F32, 0, "F32"},     {SGLC_GGML_TYPE_F16, 0, "F16"},
        {SGLC_GGML_TYPE_BF16, 0, "BF16"},   {SGLC_GGML_TYPE_Q4_0, 0, "Q4_0"},
        {SGLC_GGML_TYPE_Q4_1, 0, "Q4_1"},   {SGLC_GGML_TYPE_Q8_0, 0, "Q8_0"},
        {SGLC_GGML_TYPE_Q4_K, 0, "Q4_K"},   {SGLC_GGML_TYPE_Q6_K, 0, "Q6_K"},
        {SGLC_WTYPE_MLX_AFFINE, 4, "mlx4"}, {SGLC_WTYPE_MLX_AFFINE, 8, "mlx8"},
    };
    const int64_t n = 64, k = 1024, rows = 3;
    int cases = 0;
    float *x = malloc(sizeof(float) * (size_t)(rows * k));
    for (int64_t i = 0; i < rows * k; i++)
        x[i] = rnd();
    for (size_t fi = 0; fi < sizeof fmts / sizeof fmts[0]; fi++) {
        void *data, *sc, *bi;
        sglc_weight w = make_weight(&fmts[fi], n, k, &data, &sc, &bi);
        float *full = malloc(sizeof(float) * (size_t)(rows * n));
        product(be, &w, x, k, rows, full);
        for (int N = 2; N <= 4; N += 2) {
            /* column-parallel: concatenate the ranks' output rows */
            float *cat = malloc(sizeof(float) * (size_t)(rows * n));
            float *part = malloc(sizeof(float) * (size_t)(rows * n));
            for (int r = 0; r < N; r++) {
                sglc_weight s;
                void *owned = NULL;
                CHECKF(sglc_weight_shard(&w, SGLC_TP_COLUMN, r, N, &s, &owned, &err) == 0, "%s",
                       err.msg);
                CHECK(owned == NULL && s.n == n / N && s.k == k);
                product(be, &s, x, k, rows, part);
                for (int64_t t = 0; t < rows; t++)
                    memcpy(cat + t * n + r * (n / N), part + t * (n / N),
                           sizeof(float) * (size_t)(n / N));
            }
            double dc = rel_diff(cat, full, (size_t)(rows * n));
            CHECKF(dc <= 1e-6, "%s column split %d: %.3g from the full product", fmts[fi].name, N,
                   dc);
            /* row-parallel: the ranks' products over their input slices add up */
            float *sum = calloc((size_t)(rows * n), sizeof(float));
            for (int r = 0; r < N; r++) {
                sglc_weight s;
                void *owned = NULL;
                CHECKF(sglc_weight_shard(&w, SGLC_TP_ROW, r, N, &s, &owned, &err) == 0, "%s",
                       err.msg);
                CHECK(owned != NULL && s.n == n && s.k == k / N);
                product(be, &s, x + r * (k / N), k, rows, part);
                for (int64_t i = 0; i < rows * n; i++)
                    sum[i] += part[i];
                free(owned);
            }
            double dr = rel_diff(sum, full, (size_t)(rows * n));
            CHECKF(dr <= 1e-5, "%s row split %d: %.3g from the full product", fmts[fi].name, N, dr);
            fprintf(stderr, "%-5s tp=%d: column %.2g, row %.2g (normalized, vs the full product)\n",
                    fmts[fi].name, N, dc, dr);
            cases += 2;
            free(cat), free(part), free(sum);
        }
        /* a row split that would cut a block (K quants: 256) or group (MLX: 64) is refused */
        if (fmts[fi].type == SGLC_GGML_TYPE_Q4_K || fmts[fi].type == SGLC_WTYPE_MLX_AFFINE) {
            sglc_weight s;
            void *owned = NULL;
            sglc_err e2 = {{0}};
            int ways = fmts[fi].type == SGLC_GGML_TYPE_Q4_K ? 8 : 32; /* 128 or 32 inputs */
            CHECK(sglc_weight_shard(&w, SGLC_TP_ROW, 0, ways, &s, &owned, &e2) != 0 && !owned);
            CHECK(strstr(e2.msg, "whole blocks") != NULL);
        }
        free(full), free(data), free(sc), free(bi);
    }
    /* vectors split along their elements; a split that does not divide is refused */
    {
        float v[12];
        for (int i = 0; i < 12; i++)
            v[i] = (float)i;
        sglc_weight bias = {.type = SGLC_GGML_TYPE_F32, .k = 12, .n = 1, .host = v, .present = 1};
        sglc_weight s;
        void *owned = NULL;
        CHECK(sglc_weight_shard(&bias, SGLC_TP_COLUMN, 2, 3, &s, &owned, &err) == 0 && !owned);
        CHECK(s.k == 4 && ((const float *)s.host)[0] == 8.0f);
        CHECK(sglc_weight_shard(&bias, SGLC_TP_COLUMN, 0, 5, &s, &owned, &err) != 0);
        CHECK(strstr(err.msg, "does not split 5 ways") != NULL);
    }
    fprintf(stderr, "tp shards: %d cases over %zu formats\n", cases, sizeof fmts / sizeof fmts[0]);
    free(x);
    sglc_backend_close(be);
    return g_test_failures ? 1 : 0;
}
