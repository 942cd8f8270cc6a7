/* End-to-end model checks against llama.cpp on the default model (golden files made by
 * scripts/golden/make_greedy_golden.py and make_ppl_golden.py with llama-cpp-python):
 *  - greedy generation: the first 32 tokens equal llama.cpp's on at least 45 of 50
 *    chat-formatted prompts (prompt ids come from the golden file, so this isolates the model);
 *  - perplexity over tests/golden/ppl_text.txt within 1 % of llama.cpp's. */
#include <math.h>
#include <stdint.h>

#include "backend/backend.h"
#include "engine/sampler.h"
#include "engine/session.h"
#include "model/model.h"
#include "test_util.h"

#define GEN_LEN 32

/* Parses space-separated integers from s (up to end) into out; returns the count. */
static int parse_ints(const char *s, const char *end, int32_t *out, int cap) {
    int n = 0;
    while (s < end && n < cap) {
        char *e;
        long v = strtol(s, &e, 10);
        if (e == s) {
            s++;
            continue;
        }
        out[n++] = (int32_t)v;
        s = e;
    }
    return n;
}

static void test_greedy(const sglc_model *m) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/golden/greedy_chat50.tsv", test_source_dir());
    char *buf = test_read_file(path, NULL);
    CHECKF(buf != NULL, "missing %s", path);
    if (!buf) return;
    sglc_err err = {{0}};
    sglc_session *s = NULL;
    CHECK(sglc_session_open(&s, m, 2048, 512, &err) == 0);
    if (!s) {
        free(buf);
        return;
    }
    int cases = 0, exact = 0, total_tok = 0, match_tok = 0;
    int32_t prompt[2048], want[GEN_LEN];
    for (char *line = buf; line && *line;
         line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (*line == '#' || *line == '\n') continue;
        char *f[4] = {line, NULL, NULL, NULL};
        char *eol = strchr(line, '\n');
        if (!eol) eol = line + strlen(line);
        for (int k = 1; k < 4; k++) {
            char *tab = memchr(f[k - 1], '\t', (size_t)(eol - f[k - 1]));
            if (!tab) break;
            f[k] = tab + 1;
        }
        if (!f[3]) continue;
        int np = parse_ints(f[1], f[2] - 1, prompt, 2048);
        int ng = parse_ints(f[2], f[3] - 1, want, GEN_LEN);
        CHECK(ng == GEN_LEN && np > 0);
        if (ng != GEN_LEN || np <= 0) continue;
        double margins[GEN_LEN];
        char *p = f[3];
        for (int k = 0; k < GEN_LEN; k++)
            margins[k] = strtod(p, &p);
        sglc_session_reset(s);
        const float *logits = NULL;
        int first_diff = -1;
        if (sglc_session_eval(s, prompt, np, &logits, NULL, &err) != 0) {
            CHECKF(0, "%s", err.msg);
            break;
        }
        for (int k = 0; k < GEN_LEN; k++) {
            int32_t tok = sglc_argmax(logits, m->cfg.n_vocab);
            total_tok++;
            if (tok == want[k])
                match_tok++;
            else if (first_diff < 0)
                first_diff = k;
            /* keep following llama.cpp's tokens so one near-tie does not derail the rest */
            if (k + 1 < GEN_LEN && sglc_session_eval(s, &want[k], 1, &logits, NULL, &err) != 0) {
                CHECKF(0, "%s", err.msg);
                break;
            }
        }
        cases++;
        if (first_diff < 0)
            exact++;
        else
            fprintf(stderr,
                    "greedy case %d: first difference at token %d (llama.cpp top-1 margin "
                    "there %.4f)\n",
                    cases - 1, first_diff, margins[first_diff]);
    }
    fprintf(stderr, "greedy: %d/%d prompts match llama.cpp for all %d tokens; %d/%d tokens agree\n",
            exact, cases, GEN_LEN, match_tok, total_tok);
    CHECK(cases == 50);
    CHECKF(exact >= 45, "only %d of %d prompts match", exact, cases);
    sglc_session_close(s);
    free(buf);
}

static void test_perplexity(const sglc_model *m) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/golden/ppl_smollm2.txt", test_source_dir());
    char *buf = test_read_file(path, NULL);
    CHECKF(buf != NULL, "missing %s", path);
    if (!buf) return;
    double ref_ppl = 0;
    long chunk = 0, n_ids = 0;
    int32_t *ids = NULL;
    for (char *line = buf; line && *line;
         line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (strncmp(line, "ppl ", 4) == 0)
            ref_ppl = strtod(line + 4, NULL);
        else if (strncmp(line, "chunk ", 6) == 0)
            chunk = strtol(line + 6, NULL, 10);
        else if (strncmp(line, "ids ", 4) == 0) {
            char *eol = strchr(line, '\n');
            if (!eol) eol = line + strlen(line);
            ids = malloc(sizeof(int32_t) * (size_t)(eol - line));
            n_ids = parse_ints(line + 4, eol, ids, (int)(eol - line));
        }
    }
    CHECK(ref_ppl > 1.0 && chunk > 1 && n_ids >= 2000);
    if (!(ref_ppl > 1.0 && chunk > 1 && n_ids >= 2000)) {
        free(ids);
        free(buf);
        return;
    }
    sglc_err err = {{0}};
    sglc_session *s = NULL;
    CHECK(sglc_session_open(&s, m, (int32_t)chunk, (int32_t)chunk, &err) == 0);
    int32_t V = m->cfg.n_vocab;
    float *all = malloc(sizeof(float) * (size_t)chunk * (size_t)V);
    double nll = 0.0;
    long count = 0;
    for (long c0 = 0; s && all && c0 + chunk <= n_ids; c0 += chunk) {
        sglc_session_reset(s);
        if (sglc_session_eval(s, ids + c0, (int32_t)chunk, NULL, all, &err) != 0) {
            CHECKF(0, "%s", err.msg);
            break;
        }
        for (long t = 0; t + 1 < chunk; t++) {
            const float *l = all + t * V;
            double mx = l[0];
            for (int32_t i = 1; i < V; i++)
                mx = l[i] > mx ? l[i] : mx;
            double z = 0.0;
            for (int32_t i = 0; i < V; i++)
                z += exp((double)l[i] - mx);
            nll += -((double)l[ids[c0 + t + 1]] - mx - log(z));
            count++;
        }
    }
    double ppl = exp(nll / (double)count);
    double rel = fabs(ppl - ref_ppl) / ref_ppl;
    fprintf(stderr,
            "perplexity: sglc %.4f, llama.cpp %.4f (relative difference %.3f%%) over %ld "
            "predictions\n",
            ppl, ref_ppl, rel * 100.0, count);
    CHECK(rel < 0.01);
    free(all);
    sglc_session_close(s);
    free(ids);
    free(buf);
}

int main(void) {
    const char *path = test_default_model();
    CHECK(path != NULL);
    if (!path) TEST_MAIN_END();
    sglc_err err = {{0}};
    sglc_backend *be = NULL;
    sglc_model *m = NULL;
    CHECK(sglc_backend_open(&be, "cpu", NULL, &err) == 0);
    CHECKF(sglc_model_open_gguf(&m, path, be, &err) == 0, "%s", err.msg);
    if (m) {
        test_greedy(m);
        test_perplexity(m);
    }
    sglc_model_close(m);
    sglc_backend_close(be);
    TEST_MAIN_END();
}
