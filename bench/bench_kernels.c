/* Micro-benchmark of the CPU matvec/matmul (not a test). Reports weight bytes read per
 * second for Q4_1 and Q8_0 weights at the shapes of SmolLM2-135M (n_out x k: 576x1536 down
 * projection, 1536x576 gate/up, 49152x576 output), on 1 and 2 threads. "hot" repeats one
 * matrix (cache-resident when it fits); "cold" cycles through copies totalling >= 256 MB, as a
 * decode step does through its layers, so weights come from DRAM.
 *
 * Build by hand against the library:
 *   gcc -O2 -std=c11 -D_GNU_SOURCE -Isrc bench/bench_kernels.c build-k/libsglc.a \
 *       -lpthread -lm $(pkg-config --libs libpcre2-8) -o build-k/bench_kernels
 * Options: bench_kernels [n_tok] [isa] (defaults 1 and the best ISA). Rows "Q4_1p" are Q4_1 in
 * the packed layout the CPU backend uses (sglc_cpu_matmul_packed), "Q8_0p" the same for Q8_0. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/cpu/cpu_kernels.h"
#include "base/threadpool.h"
#include "quant/ggml_types.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t g_rng = 88172645463325252ull;
static float rnd(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (float)(g_rng >> 40) / (float)(1 << 24) * 2.0f - 1.0f;
}

/* Seconds per matmul: best of 5 rounds of >= 50 ms each. */
static double time_matmul(sglc_threadpool *tp, sglc_cpu_isa isa, uint32_t type, int packed, char *w,
                          size_t mat_bytes, int n_copies, int64_t n_out, int64_t k, const float *x,
                          int64_t n_tok, float *y, void *scratch) {
    double best = 1e30;
    int copy = 0;
    for (int round = 0; round < 5; round++) {
        int iters = 0;
        double t0 = now_s(), t1;
        do {
            if (packed)
                sglc_cpu_matmul_packed(tp, isa, type, w + (size_t)copy * mat_bytes, n_out, k, x,
                                       n_tok, y, scratch);
            else
                sglc_cpu_matmul(tp, isa, type, w + (size_t)copy * mat_bytes, n_out, k, x, n_tok, y,
                                scratch);
            copy = (copy + 1) % n_copies;
            iters++;
            t1 = now_s();
        } while (t1 - t0 < 0.05);
        double per = (t1 - t0) / iters;
        if (per < best) best = per;
    }
    return best;
}

int main(int argc, char **argv) {
    int64_t n_tok = argc > 1 ? atoi(argv[1]) : 1;
    sglc_cpu_isa isa = sglc_cpu_isa_best();
    if (argc > 2)
        for (int i = 0; i < SGLC_CPU_ISA_COUNT; i++)
            if (strcmp(argv[2], sglc_cpu_isa_name((sglc_cpu_isa)i)) == 0) isa = (sglc_cpu_isa)i;
    printf("isa %s, n_tok %ld\n", sglc_cpu_isa_name(isa), (long)n_tok);
    const uint32_t types[] = {SGLC_GGML_TYPE_Q4_1, SGLC_GGML_TYPE_Q4_1, SGLC_GGML_TYPE_Q8_0,
                              SGLC_GGML_TYPE_Q8_0};
    const int64_t shapes[][2] = {{576, 1536}, {1536, 576}, {49152, 576}};
    sglc_threadpool *pools[2];
    for (int p = 0; p < 2; p++)
        if (sglc_threadpool_open(&pools[p], p + 1) != 0) return 1;
    printf("%-5s %-10s %8s | %22s | %22s\n", "type", "n_out x k", "MB", "1 thread hot/cold GB/s",
           "2 threads hot/cold GB/s");
    for (size_t ti = 0; ti < 4; ti++)
        for (size_t si = 0; si < 3; si++) {
            uint32_t type = types[ti];
            int packed = ti % 2 == 1;
            if (packed && sglc_cpu_packed_bytes(isa, type, shapes[si][0], shapes[si][1]) == 0)
                continue;
            int64_t n_out = shapes[si][0], k = shapes[si][1];
            size_t rb = sglc_ggml_row_bytes(type, k), mat = rb * (size_t)n_out;
            int n_copies = (int)((256u << 20) / mat) + 1;
            char *w = malloc(mat * (size_t)n_copies);
            float *row = malloc(sizeof(float) * (size_t)k);
            for (int64_t o = 0; o < n_out; o++) {
                for (int64_t i = 0; i < k; i++)
                    row[i] = rnd();
                sglc_ggml_quantize_row(type, row, w + (size_t)o * rb, k);
            }
            if (packed) { /* same size as the ggml layout */
                char *p = malloc(mat);
                sglc_cpu_pack(isa, type, w, n_out, k, p);
                memcpy(w, p, mat);
                free(p);
            }
            for (int c = 1; c < n_copies; c++)
                memcpy(w + (size_t)c * mat, w, mat);
            float *x = malloc(sizeof(float) * (size_t)(k * n_tok));
            for (int64_t i = 0; i < k * n_tok; i++)
                x[i] = rnd();
            float *y = malloc(sizeof(float) * (size_t)(n_out * n_tok));
            void *scratch = malloc(sglc_cpu_matmul_scratch_bytes(type, k, n_tok) + 64);
            printf("%-5s %5ldx%-5ld %7.2f |",
                   packed ? (type == SGLC_GGML_TYPE_Q4_1 ? "Q4_1p" : "Q8_0p")
                          : sglc_ggml_type_name(type),
                   (long)n_out, (long)k, (double)mat / 1e6);
            for (int p = 0; p < 2; p++) {
                double hot = time_matmul(pools[p], isa, type, packed, w, mat, 1, n_out, k, x, n_tok,
                                         y, scratch);
                double cold = time_matmul(pools[p], isa, type, packed, w, mat, n_copies, n_out, k,
                                          x, n_tok, y, scratch);
                printf(" %6.1f / %6.1f (%5.0fus) |", (double)mat / hot / 1e9,
                       (double)mat / cold / 1e9, cold * 1e6);
            }
            printf("\n");
            fflush(stdout);
            free(w);
            free(row);
            free(x);
            free(y);
            free(scratch);
        }
    for (int p = 0; p < 2; p++)
        sglc_threadpool_close(pools[p]);
    return 0;
}
