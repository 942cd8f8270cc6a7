/* MLX affine quantization against MLX itself: for every fixture case in tests/golden/mlx_quant
 * (made by scripts/golden/make_mlx_quant_golden.py with mlx.core.quantize / dequantize on f32,
 * f16 and bf16 inputs, bits 2..8, group sizes 32/64/128), our packed words, scales and biases
 * are byte-identical to MLX's, our dequantization of MLX's packed data is byte-identical to
 * mlx.core.dequantize's, and the f32 row dequantizer (the embedding path) agrees with it. */
#include <stdint.h>

#include "base/log.h"
#include "quant/ggml_types.h"
#include "quant/mlx_affine.h"
#include "test_util.h"

static uint32_t dtype_of(const char *name) {
    if (strcmp(name, "f32") == 0) return SGLC_GGML_TYPE_F32;
    if (strcmp(name, "f16") == 0) return SGLC_GGML_TYPE_F16;
    if (strcmp(name, "bf16") == 0) return SGLC_GGML_TYPE_BF16;
    return UINT32_MAX;
}

/* index of the first differing element of size es, or -1 */
static long first_diff(const void *a, const void *b, size_t n, size_t es) {
    for (size_t i = 0; i < n; i++)
        if (memcmp((const char *)a + i * es, (const char *)b + i * es, es) != 0) return (long)i;
    return -1;
}

static void run_case(const char *name, uint32_t dtype, int bits, int gs, int64_t rows, int64_t k) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/golden/mlx_quant/%s.bin", test_source_dir(), name);
    size_t len = 0;
    char *buf = test_read_file(path, &len);
    CHECKF(buf != NULL, "%s missing", path);
    if (!buf) return;
    const size_t es = dtype == SGLC_GGML_TYPE_F32 ? 4 : 2;
    const size_t n = (size_t)(rows * k), nw = (size_t)(rows * sglc_mlx_affine_row_words(k, bits));
    const size_t ng = (size_t)(rows * (k / gs));
    const size_t want = n * es + nw * 4 + 2 * ng * es + n * es;
    CHECKF(len == want, "%s: %zu bytes, expected %zu", name, len, want);
    if (len != want) {
        free(buf);
        return;
    }
    const char *w = buf, *wq = w + n * es, *sc = wq + nw * 4, *bi = sc + ng * es,
               *deq = bi + ng * es;

    uint32_t *q = calloc(nw, 4);
    char *s = calloc(ng, es), *b = calloc(ng, es), *d = calloc(n, es);
    float *row = calloc((size_t)k, sizeof(float));
    SGLC_ASSERT(q && s && b && d && row);
    sglc_mlx_affine_quantize(w, dtype, rows, k, bits, gs, q, s, b);
    long i;
    i = first_diff(q, wq, nw, 4);
    CHECKF(i < 0, "%s: packed word %ld differs", name, i);
    i = first_diff(s, sc, ng, es);
    CHECKF(i < 0, "%s: scale %ld differs", name, i);
    i = first_diff(b, bi, ng, es);
    CHECKF(i < 0, "%s: bias %ld differs", name, i);

    /* dequantize MLX's own packed data */
    uint32_t *wq_al = malloc(nw * 4);
    SGLC_ASSERT(wq_al);
    memcpy(wq_al, wq, nw * 4);
    sglc_mlx_affine_dequantize(wq_al, sc, bi, dtype, rows, k, bits, gs, d);
    i = first_diff(d, deq, n, es);
    CHECKF(i < 0, "%s: dequantized value %ld differs", name, i);

    int row_bad = 0;
    const int64_t words = sglc_mlx_affine_row_words(k, bits);
    for (int64_t r = 0; r < rows; r++) {
        sglc_mlx_affine_dequantize_row_f32(wq_al + r * words, sc + (size_t)(r * (k / gs)) * es,
                                           bi + (size_t)(r * (k / gs)) * es, dtype, k, bits, gs,
                                           row);
        for (int64_t j = 0; j < k; j++) {
            const char *e = deq + (size_t)(r * k + j) * es;
            uint16_t h;
            float ref;
            if (es == 4)
                memcpy(&ref, e, 4);
            else {
                memcpy(&h, e, 2);
                ref = dtype == SGLC_GGML_TYPE_F16 ? sglc_fp16_to_f32(h) : sglc_bf16_to_f32(h);
            }
            if (memcmp(&ref, &row[j], 4) != 0) row_bad++;
        }
    }
    CHECKF(row_bad == 0, "%s: %d f32 row values differ", name, row_bad);
    free(wq_al);
    free(q);
    free(s);
    free(b);
    free(d);
    free(row);
    free(buf);
}

int main(void) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/golden/mlx_quant/cases.tsv", test_source_dir());
    FILE *f = fopen(path, "r");
    CHECKF(f != NULL, "%s missing", path);
    if (!f) return 1;
    char line[512];
    int cases = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#') continue;
        char name[128], dt[16];
        int bits, gs;
        long rows, k;
        if (sscanf(line, "%127s %15s %d %d %ld %ld", name, dt, &bits, &gs, &rows, &k) != 6)
            continue;
        uint32_t dtype = dtype_of(dt);
        CHECKF(dtype != UINT32_MAX && sglc_mlx_affine_valid(bits, gs), "bad case line %s", line);
        if (dtype == UINT32_MAX || !sglc_mlx_affine_valid(bits, gs)) continue;
        run_case(name, dtype, bits, gs, rows, k);
        cases++;
    }
    fclose(f);
    CHECK(cases == 54);
    CHECK(!sglc_mlx_affine_valid(7, 64) && !sglc_mlx_affine_valid(4, 16));
    printf("test_mlx_quant: %d cases, %d failures\n", cases, g_test_failures);
    return g_test_failures ? 1 : 0;
}
