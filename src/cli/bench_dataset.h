/* Synthetic prompt sets shared by the benchmarks (bench_offline_throughput, bench_serving), with
 * SGLang's flag names. `random`: prompts of random token ids, input and output lengths drawn in
 * [len * range_ratio, len]. `generated-shared-prefix`: groups of prompts that share a long random
 * system prompt, each followed by its own random question. Both are token ids; a front end that
 * needs text decodes them. Deterministic for a given seed. */
#ifndef SGLC_CLI_BENCH_DATASET_H
#define SGLC_CLI_BENCH_DATASET_H

#include <stdint.h>

typedef enum {
    SGLC_BENCH_DATASET_RANDOM = 0,
    SGLC_BENCH_DATASET_GENERATED_SHARED_PREFIX,
    SGLC_BENCH_DATASET_COUNT
} sglc_bench_dataset_kind;

typedef struct {
    sglc_bench_dataset_kind kind;
    const char *name;    /* as given to --dataset-name */
    int64_t num_prompts; /* random only; gsp makes groups * prompts_per_group */
    int64_t random_input_len, random_output_len;
    double random_range_ratio;
    int64_t gsp_num_groups, gsp_prompts_per_group, gsp_system_prompt_len, gsp_question_len,
        gsp_output_len;
    uint64_t seed;
    int shuffle; /* gsp: shuffle the prompts across groups, as SGLang's bench_serving does */
} sglc_bench_dataset_params;

typedef struct {
    int32_t *ids; /* [n] owned; for gsp the first prefix_len are the group's system prompt */
    int32_t n;
    int32_t prefix_len; /* 0 for random */
    int32_t out_len;
} sglc_bench_prompt;

/* SGLang's defaults: 1000 random prompts of 1024 in / 1024 out, range ratio 0, seed 1;
 * gsp 64 groups x 16 prompts, system prompt 2048, question 128, output 256. */
void sglc_bench_dataset_params_default(sglc_bench_dataset_params *p);

/* Takes a dataset flag (--dataset-name, --num-prompts, --random-*, --gsp-*, --seed) with its
 * value. Returns 1 when consumed, 0 when a is not a dataset flag, -1 (message on stderr) for a
 * bad value. With v NULL only says whether a is a dataset flag (1) or not (0). */
int sglc_bench_dataset_parse_arg(sglc_bench_dataset_params *p, const char *a, const char *v);

/* The flags as usage text, one indented block. */
extern const char sglc_bench_dataset_usage[];

/* Makes the prompts, token ids drawn in [id_lo, id_hi) (kept clear of the special tokens at the
 * bottom of the vocab). Returns 0 and *out / *n_out (free with sglc_bench_dataset_free), or -1
 * when out of memory. */
int sglc_bench_dataset_make(const sglc_bench_dataset_params *p, int32_t id_lo, int32_t id_hi,
                            sglc_bench_prompt **out, int64_t *n_out);
void sglc_bench_dataset_free(sglc_bench_prompt *ps, int64_t n);

#endif
