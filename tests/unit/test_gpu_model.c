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
 *      printed, not asserted. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/sampler.h"
#include "engine/session.h"
#include "model/model.h"
#include "sglc.h"
#include "test_util.h"

#define NP 50
#define GEN 32

static int32_t g_prompt[NP][256];
static int g_plen[NP];

static int load_prompts(void) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/golden/greedy_chat50.tsv", test_source_dir());
    char *buf = test_read_file(path, NULL);
    if (!buf) return 0;
    int n = 0;
    for (char *line = buf; line && *line && n < NP;) {
        char *eol = strchr(line, '\n');
        char *p = *line != '#' ? strchr(line, '\t') : NULL;
        if (p) {
            p++;
            int k = 0;
            while (*p && *p != '\t' && k < 256) {
                char *e;
                long v = strtol(p, &e, 10);
                if (e == p) break;
                g_prompt[n][k++] = (int32_t)v;
                p = e;
            }
            g_plen[n++] = k;
        }
        line = eol ? eol + 1 : NULL;
    }
    free(buf);
    return n;
}

/* Greedy continuations of every prompt on a device; margins (top1 - top2) when asked. */
static int greedy_all(const char *path, const char *device, int32_t out[NP][GEN],
                      float margin[NP][GEN]) {
    sglc_err err = {{0}};
    sglc_backend *be = NULL;
    sglc_model *m = NULL;
    sglc_session *s = NULL;
    sglc_model_load_params lp = {.path = path, .device = device};
    if (sglc_model_load(&be, &m, &lp, &err) != 0 || sglc_session_open(&s, m, 512, 512, &err)) {
        fprintf(stderr, "%s on %s: %s\n", path, device, err.msg);
        sglc_model_close(m);
        sglc_backend_close(be);
        return -1;
    }
    int32_t V = m->cfg.n_vocab;
    for (int i = 0; i < NP; i++) {
        sglc_session_reset(s);
        const float *l = NULL;
        CHECK(sglc_session_eval(s, g_prompt[i], g_plen[i], &l, NULL, &err) == 0);
        for (int k = 0; k < GEN && l; k++) {
            out[i][k] = sglc_argmax(l, V);
            if (margin) {
                float a = -INFINITY, b = -INFINITY;
                for (int32_t t = 0; t < V; t++)
                    if (l[t] > a)
                        b = a, a = l[t];
                    else if (l[t] > b)
                        b = l[t];
                margin[i][k] = a - b;
            }
            if (k + 1 < GEN) CHECK(sglc_session_eval(s, &out[i][k], 1, &l, NULL, &err) == 0);
        }
    }
    sglc_session_close(s);
    sglc_model_close(m);
    sglc_backend_close(be);
    return 0;
}

static void agreement(const char *path, const char *what) {
    static int32_t cpu[NP][GEN], gpu[NP][GEN];
    static float margin[NP][GEN];
    if (greedy_all(path, "cpu", cpu, margin) != 0 || greedy_all(path, "cuda", gpu, NULL) != 0) {
        CHECKF(0, "%s: could not run on both devices", what);
        return;
    }
    int same = 0;
    for (int i = 0; i < NP; i++) {
        int k = 0;
        while (k < GEN && cpu[i][k] == gpu[i][k])
            k++;
        if (k == GEN) {
            same++;
            continue;
        }
        fprintf(stderr,
                "%s prompt %d: first divergence at token %d (cpu %d, cuda %d), cpu margin %.4f\n",
                what, i, k, cpu[i][k], gpu[i][k], margin[i][k]);
    }
    fprintf(stderr, "%s: cuda gives the cpu's 32 greedy tokens on %d of %d prompts\n", what, same,
            NP);
    CHECKF(same >= 45, "%s: only %d of 50 prompts agree", what, same);
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
    sglc_engine *e = NULL;
    char err[512];
    if (sglc_engine_open(&e, &ep, err, sizeof err) != 0) {
        CHECKF(0, "engine: %s", err);
        return -1;
    }
    sglc_request_params rp;
    sglc_request_params_default(&rp);
    rp.temperature = 0.0f;
    rp.max_new_tokens = 16;
    rp.ignore_eos = 1;
    sglc_request *rq[32] = {0};
    for (int i = 0; i < 32; i++) {
        int n = g_plen[i] - (i % 7);
        CHECKF(sglc_engine_submit(e, g_prompt[i], n, &rp, NULL, &rq[i], err, sizeof err) == 0, "%s",
               err);
        if (alone && rq[i]) { /* one at a time: batch of one */
            sglc_output o;
            do
                sglc_request_wait(rq[i], INT32_MAX, &o, -1);
            while (!o.finished);
        }
    }
    for (int i = 0; i < 32; i++) {
        if (!rq[i]) continue;
        sglc_output o;
        do
            sglc_request_wait(rq[i], INT32_MAX, &o, -1);
        while (!o.finished);
        CHECK(o.n_output == 16);
        memcpy(out[i], o.output_ids, sizeof(int32_t) * 16);
        sglc_request_release(rq[i]);
    }
    sglc_engine_close(e);
    return 0;
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
    agreement(gguf, "gguf");
    agreement(hf, "hf folder");
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
