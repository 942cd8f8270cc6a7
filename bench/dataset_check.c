/* Prints the FNV-1a fingerprint of a prompt set made by sglc's own generator
 * (src/cli/bench_dataset.c), for `bench/peers.py --check-dataset`, which compares it with the
 * harness's Python copy of the generator. Built by peers.py:
 *   gcc -Isrc -Iinclude bench/dataset_check.c src/cli/bench_dataset.c src/cli/args.c
 *       build/libsglc.a -lm -lpthread
 * Usage: dataset_check SEED random N IN OUT | dataset_check SEED gsp GROUPS PER SYS Q OUT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/bench_dataset.h"

int main(int argc, char **argv) {
    if (argc < 6) return 2;
    sglc_bench_dataset_params p;
    sglc_bench_dataset_params_default(&p);
    p.seed = strtoull(argv[1], NULL, 10);
    if (strcmp(argv[2], "random") == 0) {
        p.num_prompts = atoll(argv[3]);
        p.random_input_len = atoll(argv[4]);
        p.random_output_len = atoll(argv[5]);
        p.random_range_ratio = 1.0;
    } else {
        if (argc < 8) return 2;
        p.kind = SGLC_BENCH_DATASET_GENERATED_SHARED_PREFIX;
        p.gsp_num_groups = atoll(argv[3]);
        p.gsp_prompts_per_group = atoll(argv[4]);
        p.gsp_system_prompt_len = atoll(argv[5]);
        p.gsp_question_len = atoll(argv[6]);
        p.gsp_output_len = atoll(argv[7]);
    }
    sglc_bench_prompt *ps;
    int64_t n;
    /* bench_offline_throughput's id range for a vocab of at least 40100 */
    if (sglc_bench_dataset_make(&p, 100, 40100, &ps, &n)) return 1;
    unsigned long long h = 1469598103934665603ull;
#define MIX(v) h = (h ^ (unsigned)(v)) * 1099511628211ull
    for (int64_t i = 0; i < n; i++) {
        MIX(ps[i].n);
        MIX(ps[i].out_len);
        MIX(ps[i].prefix_len);
        for (int32_t j = 0; j < ps[i].n; j++) MIX(ps[i].ids[j]);
    }
    printf("%llu\n", h);
    sglc_bench_dataset_free(ps, n);
    return 0;
}
