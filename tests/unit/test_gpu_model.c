/* The CUDA device against the CPU on the default model (issue 14's acceptance), run by
 * scripts/test_gpu.sh on the GPU machine; elsewhere it says it was not run and passes (CI has
 * no GPU; the CPU side of everything here is tested by the other suites).
 *   1. Greedy 32-token continuations of the 50 golden chat prompts, GGUF and its HF folder:
 *      the GPU gives the CPU's tokens on at least 45 of 50 prompts; every divergence is printed
 *      with the CPU's top-1/top-2 logit margin at that step (a near-tie explains a flip).
 *   2. 32 concurrent greedy requests through the engine with CUDA graphs on and off, overlap on
 *      and off, radix on and off: identical tokens; and, with --enable-deterministic-inference,
 *      each request alone gives the tokens it gets among the 32 (batch invariance). Without the
 *      flag a GPU step's products take cuBLAS for many rows and the matrix-vector kernel for a
 *      few, whose sums round differently, as in SGLang: how many requests that changes is
 *      printed, not asserted.
 *   3. With 3 GPUs and NCCL: 1. again with --tp-size 3 on the GPUs (issue 17; not yet run). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sglc.h"
#include "test_agreement.h"

#define NP AGREE_NP

static int32_t g_prompt[NP][TEST_PROMPT_CAP];
static int g_plen[NP];

static int load_prompts(void) {
    return test_golden_prompts(g_prompt, g_plen, NP);
}

/* The CPU's greedy tokens against the GPU's argmax along them (teacher-forced, as
 * test_model_golden measures the CPU against llama.cpp): tokens that agree, prompts whose 32
 * tokens all agree, the CPU's largest top-1 margin where they disagree, and the largest logit
 * difference after the prompts. This 135M Q4_1 model rounds its activations to 8 bits before
 * every product, which turns a one-ulp difference into a different token (llama.cpp agrees
 * with itself on 23-25 of 50 prompts across batch sizes,
 * tests/golden/greedy_llamacpp_self_agreement.txt; the CPU at --tp-size 3, which only reorders
 * sums, on 25). On one GPU the kernels follow the CPU's arithmetic to the bit (the exact
 * Q4_1 / Q8_0 products, the CPU's attention for GGUF quantized models, its exp, RoPE table
 * and norm), so the 45 of 50 is asserted there; across GPU ranks the sums are
 * reordered and only the llama.cpp-like bounds hold. */
static void agreement(const char *path, const char *what, int det, int expect_exact, int tp) {
    sglc_model_load_params cpu = {.path = path, .device = "cpu"};
    sglc_model_load_params gpu = {
        .path = path, .device = "cuda", .deterministic = det, .tp_size = tp};
    if (tp > 1 && (sglc_backend_device_count("cuda") < tp || !sglc_comm_has_nccl())) {
        fprintf(stderr, "%s: cuda --tp-size %d not run (%d GPUs visible, NCCL %s)\n", what, tp,
                sglc_backend_device_count("cuda"), sglc_comm_has_nccl() ? "built" : "not built");
        return;
    }
    char name[128];
    snprintf(name, sizeof name, "%s%s: cuda tp=%d vs cpu", what, det ? " (deterministic)" : "", tp);
    test_agreement_result r;
    if (test_agreement(&cpu, &gpu, g_prompt, g_plen, name, &r) != 0) {
        CHECKF(0, "%s: could not run on both devices", what);
        return;
    }
    CHECKF(r.tokens >= 0.97 * NP * AGREE_GEN, "%s: only %d/%d tokens agree", what, r.tokens,
           NP * AGREE_GEN);
    CHECKF(r.exact >= expect_exact, "%s: only %d of 50 prompts agree exactly", what, r.exact);
    CHECKF(r.worst_margin < 0.5, "%s: a disagreement where the cpu's margin is %.4f (not a tie)",
           what, r.worst_margin);
}

/* 32 concurrent greedy requests (prompts of different lengths) on one engine configuration. */
static int run_engine(const char *path, int graphs, int overlap, int radix, int alone, int det,
                      int32_t out[32][16]) {
    sglc_engine_params ep;
    sglc_engine_params_default(&ep);
    ep.model_path = path;
    ep.device = "cuda";
    ep.enable_deterministic_inference = det;
    ep.disable_cuda_graph = !graphs;
    ep.disable_overlap_schedule = !overlap;
    ep.disable_radix_cache = !radix;
    ep.max_total_tokens = 65536;
    ep.max_running_requests = 32;
    ep.decode_log_interval = 0;
    int len[32];
    for (int i = 0; i < 32; i++)
        len[i] = g_plen[i] - (i % 7);
    return test_engine_greedy(&ep, (const int32_t(*)[TEST_PROMPT_CAP])g_prompt, len, 32, 16, alone,
                              &out[0][0]);
}

int main(void) {
    if (strcmp(sglc_backend_default_name(), "cuda") != 0) {
        fprintf(stderr, "test_gpu_model: not run here (no CUDA GPU visible, or a build without "
                        "CUDA); scripts/test_gpu.sh runs it on the GPU machine\n");
        return 0;
    }
    CHECK(load_prompts() == NP);
    const char *gguf = test_default_model();
    char hf[4096];
    snprintf(hf, sizeof hf, "%s/models/SmolLM2-135M-Instruct-hf", test_source_dir());
    agreement(gguf, "gguf", 0, 45, 1);
    agreement(gguf, "gguf", 1, 45, 1);
    agreement(hf, "hf folder", 0, 45, 1); /* f32 weights: no activation rounding on either side */
    /* tensor parallelism over 3 GPUs (NCCL), the default model's split (test_tp_model has the
     * CPU's): the same bounds, with the ranks' summation order on top */
    agreement(gguf, "gguf", 0, 18, 3);
    agreement(hf, "hf folder", 0, 45, 3);
    static int32_t ref[32][16], got[32][16];
    static const struct {
        int graphs, overlap, radix;
        const char *name;
    } cfgs[] = {{0, 1, 1, "cuda graphs off"}, {1, 0, 1, "overlap off"}, {1, 1, 0, "radix off"}};
    if (run_engine(gguf, 1, 1, 1, 0, 0, ref) == 0) {
        for (size_t c = 0; c < sizeof cfgs / sizeof cfgs[0]; c++) {
            if (run_engine(gguf, cfgs[c].graphs, cfgs[c].overlap, cfgs[c].radix, 0, 0, got) != 0)
                continue;
            int diff = 0;
            for (int i = 0; i < 32; i++)
                diff += memcmp(ref[i], got[i], sizeof ref[i]) != 0;
            fprintf(stderr, "32 concurrent requests vs %s: %d of 32 differ\n", cfgs[c].name, diff);
            CHECKF(diff == 0, "%s changed the tokens of %d requests", cfgs[c].name, diff);
        }
        if (run_engine(gguf, 1, 1, 1, 1, 0, got) == 0) {
            int diff = 0;
            for (int i = 0; i < 32; i++)
                diff += memcmp(ref[i], got[i], sizeof ref[i]) != 0;
            fprintf(stderr,
                    "default kernels: %d of 32 requests differ alone vs batched (not asserted)\n",
                    diff);
        }
    }
    static int32_t det_batch[32][16], det_alone[32][16];
    if (run_engine(gguf, 1, 1, 1, 0, 1, det_batch) == 0 &&
        run_engine(gguf, 1, 1, 1, 1, 1, det_alone) == 0) {
        int diff = 0;
        for (int i = 0; i < 32; i++)
            diff += memcmp(det_batch[i], det_alone[i], sizeof det_batch[i]) != 0;
        fprintf(stderr, "deterministic inference: %d of 32 requests differ alone vs batched\n",
                diff);
        CHECKF(diff == 0, "deterministic inference: %d requests change alone", diff);
    }
    return g_test_failures ? 1 : 0;
}
