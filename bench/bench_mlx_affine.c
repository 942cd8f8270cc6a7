/* MLX affine q4/q8 (group 64, bf16 scales) vs GGUF Q4_1 CPU matmul, one thread, thread CPU time
 * per call (robust on a shared machine). Build:
 *   gcc -O2 -std=c11 -D_GNU_SOURCE -Isrc bench/bench_mlx_affine.c build/libsglc.a -lpthread -lm \
 *       $(pkg-config --libs libpcre2-8 libcjson libutf8proc)
 * Usage: bench_mlx_affine [n_tok] [reps] [n_out] [k] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/cpu/cpu_kernels.h"
#include "base/threadpool.h"
#include "quant/ggml_types.h"
#include "quant/mlx_affine.h"

static double cpu_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static sglc_cpu_affine_weight make_affine(const float *w, int64_t n, int64_t k, int bits) {
    int64_t ng = k / 64;
    uint32_t *q = malloc((size_t)(n * sglc_mlx_affine_row_words(k, bits)) * 4);
    uint16_t *s = malloc((size_t)(n * ng) * 2), *b = malloc((size_t)(n * ng) * 2);
    uint16_t *w16 = malloc((size_t)(n * k) * 2);
    for (int64_t i = 0; i < n * k; i++)
        w16[i] = sglc_f32_to_bf16(w[i]);
    sglc_mlx_affine_quantize(w16, SGLC_GGML_TYPE_BF16, n, k, bits, 64, q, s, b);
    free(w16);
    return (sglc_cpu_affine_weight){q, s, b, SGLC_GGML_TYPE_BF16, bits, 64};
}

int main(int argc, char **argv) {
    int ntok = argc > 1 ? atoi(argv[1]) : 1, reps = argc > 2 ? atoi(argv[2]) : 1000;
    int64_t n = argc > 3 ? atoll(argv[3]) : 1536, k = argc > 4 ? atoll(argv[4]) : 576;
    float *w = malloc((size_t)(n * k) * 4), *x = malloc((size_t)(ntok * k) * 4);
    float *y = malloc((size_t)(ntok * n) * 4);
    for (int64_t i = 0; i < n * k; i++)
        w[i] = (float)((uint64_t)i * 2654435761u % 1000) / 1000.f - 0.5f;
    for (int64_t i = 0; i < ntok * k; i++)
        x[i] = (float)(i % 7) - 3;
    size_t rb = sglc_ggml_row_bytes(SGLC_GGML_TYPE_Q4_1, k);
    unsigned char *q41 = malloc(rb * (size_t)n);
    for (int64_t r = 0; r < n; r++) /* Q4_1 blocks: d, m, then 16 bytes of nibbles */
        for (int64_t b = 0; b < k / 32; b++) {
            unsigned char *blk = q41 + (size_t)r * rb + (size_t)b * 20;
            uint16_t d = sglc_f32_to_fp16(0.066f), m = sglc_f32_to_fp16(-0.5f);
            memcpy(blk, &d, 2);
            memcpy(blk + 2, &m, 2);
            for (int j = 0; j < 16; j++)
                blk[4 + j] = (unsigned char)((r * 31 + b * 7 + j * 13) & 0xff);
        }
    sglc_cpu_affine_weight a4 = make_affine(w, n, k, 4), a8 = make_affine(w, n, k, 8);
    void *s1 = malloc(sglc_cpu_matmul_scratch_bytes(SGLC_GGML_TYPE_Q4_1, k, ntok) + 64);
    void *s2 = malloc(sglc_cpu_matmul_affine_scratch_bytes(k, 64, ntok) + 64);
    sglc_threadpool *tp;
    sglc_threadpool_open(&tp, 1);
    sglc_cpu_isa isa = sglc_cpu_isa_best();
    for (int round = 0; round < 3; round++) {
        double t0 = cpu_s();
        for (int i = 0; i < reps; i++)
            sglc_cpu_matmul(tp, isa, SGLC_GGML_TYPE_Q4_1, q41, n, k, x, ntok, y, s1);
        double t1 = cpu_s();
        for (int i = 0; i < reps; i++)
            sglc_cpu_matmul_affine(tp, isa, &a4, n, k, x, ntok, y, s2);
        double t2 = cpu_s();
        for (int i = 0; i < reps; i++)
            sglc_cpu_matmul_affine(tp, isa, &a8, n, k, x, ntok, y, s2);
        double t3 = cpu_s();
        printf("%s n_tok=%d %lldx%lld: Q4_1 %.1f us, mlx q4 %.1f us, mlx q8 %.1f us per call\n",
               sglc_cpu_isa_name(isa), ntok, (long long)n, (long long)k, (t1 - t0) / reps * 1e6,
               (t2 - t1) / reps * 1e6, (t3 - t2) / reps * 1e6);
    }
    sglc_threadpool_close(tp);
    return 0;
}
