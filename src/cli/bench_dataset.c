/* Synthetic benchmark prompts (see bench_dataset.h). One 64-bit LCG drives every draw, in a fixed
 * order, so a seed names one prompt set on every machine. */
#include "cli/bench_dataset.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"

#define MAX_PROMPTS 1000000
#define MAX_LEN (1 << 20)

const char sglc_bench_dataset_usage[] =
    "  [--dataset-name random|generated-shared-prefix] [--num-prompts N] [--seed S]\n"
    "  [--random-input-len N] [--random-output-len N] [--random-range-ratio R]\n"
    "  [--gsp-num-groups N] [--gsp-prompts-per-group N] [--gsp-system-prompt-len N]\n"
    "  [--gsp-question-len N] [--gsp-output-len N]\n";

void sglc_bench_dataset_params_default(sglc_bench_dataset_params *p) {
    memset(p, 0, sizeof *p);
    p->kind = SGLC_BENCH_DATASET_RANDOM;
    p->name = "random";
    p->num_prompts = 1000;
    p->random_input_len = 1024;
    p->random_output_len = 1024;
    p->random_range_ratio = 0.0;
    p->gsp_num_groups = 64;
    p->gsp_prompts_per_group = 16;
    p->gsp_system_prompt_len = 2048;
    p->gsp_question_len = 128;
    p->gsp_output_len = 256;
    p->seed = 1;
}

int sglc_bench_dataset_parse_arg(sglc_bench_dataset_params *p, const char *a, const char *v) {
    int64_t n;
    if (!v) {
        static const char *const names[] = {
            "--dataset-name",     "--random-range-ratio",    "--seed",
            "--num-prompts",      "--random-input-len",      "--random-output-len",
            "--gsp-num-groups",   "--gsp-prompts-per-group", "--gsp-system-prompt-len",
            "--gsp-question-len", "--gsp-output-len"};
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            if (strcmp(a, names[i]) == 0) return 1;
        return 0;
    }
    if (strcmp(a, "--dataset-name") == 0) {
        if (strcmp(v, "random") == 0)
            p->kind = SGLC_BENCH_DATASET_RANDOM;
        else if (strcmp(v, "generated-shared-prefix") == 0)
            p->kind = SGLC_BENCH_DATASET_GENERATED_SHARED_PREFIX;
        else {
            fprintf(stderr,
                    "sglc: --dataset-name: '%s' is not supported (random, "
                    "generated-shared-prefix)\n",
                    v);
            return -1;
        }
        p->name = v;
        return 1;
    }
    if (strcmp(a, "--random-range-ratio") == 0)
        return sglc_arg_float(a, v, 0.0, 1.0, &p->random_range_ratio) ? -1 : 1;
    if (strcmp(a, "--seed") == 0) {
        if (sglc_arg_int(a, v, 0, INT64_MAX, &n)) return -1;
        p->seed = (uint64_t)n;
        return 1;
    }
    static const struct {
        const char *flag;
        size_t off;
        int64_t hi;
    } ints[] = {
        {"--num-prompts", offsetof(sglc_bench_dataset_params, num_prompts), MAX_PROMPTS},
        {"--random-input-len", offsetof(sglc_bench_dataset_params, random_input_len), MAX_LEN},
        {"--random-output-len", offsetof(sglc_bench_dataset_params, random_output_len), MAX_LEN},
        {"--gsp-num-groups", offsetof(sglc_bench_dataset_params, gsp_num_groups), 100000},
        {"--gsp-prompts-per-group", offsetof(sglc_bench_dataset_params, gsp_prompts_per_group),
         100000},
        {"--gsp-system-prompt-len", offsetof(sglc_bench_dataset_params, gsp_system_prompt_len),
         MAX_LEN},
        {"--gsp-question-len", offsetof(sglc_bench_dataset_params, gsp_question_len), MAX_LEN},
        {"--gsp-output-len", offsetof(sglc_bench_dataset_params, gsp_output_len), MAX_LEN},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        if (strcmp(a, ints[i].flag) != 0) continue;
        if (sglc_arg_int(a, v, 1, ints[i].hi, &n)) return -1;
        memcpy((char *)p + ints[i].off, &n, sizeof n);
        return 1;
    }
    return 0;
}

static uint64_t lcg(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

static int32_t draw_len(uint64_t *s, int64_t len, double ratio) {
    int64_t lo = (int64_t)((double)len * ratio);
    if (lo < 1) lo = 1;
    if (lo >= len) return (int32_t)len;
    return (int32_t)(lo + (int64_t)(lcg(s) % (uint64_t)(len - lo + 1)));
}

static int32_t draw_id(uint64_t *s, int32_t lo, int32_t hi) {
    return lo + (int32_t)(lcg(s) % (uint64_t)(hi - lo));
}

void sglc_bench_dataset_free(sglc_bench_prompt *ps, int64_t n) {
    if (!ps) return;
    for (int64_t i = 0; i < n; i++)
        free(ps[i].ids);
    free(ps);
}

int sglc_bench_dataset_make(const sglc_bench_dataset_params *p, int32_t id_lo, int32_t id_hi,
                            sglc_bench_prompt **out, int64_t *n_out) {
    *out = NULL;
    *n_out = 0;
    if (id_lo < 0 || id_hi <= id_lo) {
        fprintf(stderr, "sglc: no token ids to draw prompts from ([%d, %d))\n", id_lo, id_hi);
        return -1;
    }
    int shared = p->kind == SGLC_BENCH_DATASET_GENERATED_SHARED_PREFIX;
    /* both factors are capped by the flag parser, so the product fits */
    int64_t n = shared ? p->gsp_num_groups * p->gsp_prompts_per_group : p->num_prompts;
    if (n < 1 || n > MAX_PROMPTS) {
        fprintf(stderr, "sglc: %lld prompts: between 1 and %d are supported\n", (long long)n,
                MAX_PROMPTS);
        return -1;
    }
    sglc_bench_prompt *ps = calloc((size_t)n, sizeof *ps);
    int32_t *sys = NULL;
    uint64_t rs = p->seed;
    int rc = -1;
    if (!ps) goto cleanup;
    if (shared) {
        sys = malloc(sizeof(int32_t) * (size_t)(p->gsp_num_groups * p->gsp_system_prompt_len));
        if (!sys) goto cleanup;
        for (int64_t i = 0; i < p->gsp_num_groups * p->gsp_system_prompt_len; i++)
            sys[i] = draw_id(&rs, id_lo, id_hi);
    }
    for (int64_t i = 0; i < n; i++) {
        sglc_bench_prompt *q = &ps[i];
        if (shared) {
            int64_t g = i / p->gsp_prompts_per_group, ns = p->gsp_system_prompt_len;
            q->n = (int32_t)(ns + p->gsp_question_len);
            q->prefix_len = (int32_t)ns;
            q->ids = malloc(sizeof(int32_t) * (size_t)q->n);
            if (!q->ids) goto cleanup;
            memcpy(q->ids, sys + g * ns, sizeof(int32_t) * (size_t)ns);
            for (int64_t j = ns; j < q->n; j++)
                q->ids[j] = draw_id(&rs, id_lo, id_hi);
            q->out_len = (int32_t)p->gsp_output_len;
        } else {
            q->n = draw_len(&rs, p->random_input_len, p->random_range_ratio);
            q->ids = malloc(sizeof(int32_t) * (size_t)q->n);
            if (!q->ids) goto cleanup;
            for (int32_t j = 0; j < q->n; j++)
                q->ids[j] = draw_id(&rs, id_lo, id_hi);
            q->out_len = draw_len(&rs, p->random_output_len, p->random_range_ratio);
        }
    }
    if (shared && p->shuffle) {
        for (int64_t i = n - 1; i > 0; i--) {
            int64_t j = (int64_t)(lcg(&rs) % (uint64_t)(i + 1));
            sglc_bench_prompt t = ps[i];
            ps[i] = ps[j];
            ps[j] = t;
        }
    }
    *out = ps;
    *n_out = n;
    ps = NULL;
    rc = 0;
cleanup:
    if (rc) fprintf(stderr, "sglc: out of memory making %lld prompts\n", (long long)n);
    sglc_bench_dataset_free(ps, n);
    free(sys);
    return rc;
}
