/* Minimal test helpers shared by the unit tests: checks that count failures instead of
 * aborting, so one run reports every broken case; paths to the repo and the default model. */
#ifndef SGLC_TEST_UTIL_H
#define SGLC_TEST_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_test_failures;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "CHECK failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__);              \
            g_test_failures++;                                                                     \
        }                                                                                          \
    } while (0)

#define CHECKF(cond, ...)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "CHECK failed: %s (%s:%d): ", #cond, __FILE__, __LINE__);              \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            g_test_failures++;                                                                     \
        }                                                                                          \
    } while (0)

static inline const char *test_source_dir(void) {
    const char *d = getenv("SGLC_SOURCE_DIR");
    return d ? d : ".";
}

/* The device the model tests run on: SGLC_TEST_DEVICE (scripts/test_gpu.sh sets cuda), else
 * cpu. */
static inline const char *test_device(void) {
    const char *d = getenv("SGLC_TEST_DEVICE");
    return d && *d ? d : "cpu";
}

/* Path of the default model, or NULL (with a message) when it has not been fetched. */
static inline const char *test_default_model(void) {
    static char path[4096];
    const char *env = getenv("SGLC_TEST_MODEL");
    if (env) return env;
    snprintf(path, sizeof path, "%s/models/SmolLM2-135M-Instruct.Q4_1.gguf", test_source_dir());
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "default model missing at %s: run scripts/fetch_model.sh\n", path);
        return NULL;
    }
    fclose(f);
    return path;
}

/* Reads a whole file into a NUL-terminated malloc'd buffer. */
static inline char *test_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        fclose(f);
        return NULL;
    }
    buf[n] = 0;
    fclose(f);
    if (len) *len = (size_t)n;
    return buf;
}

#define TEST_MAIN_END()                                                                            \
    do {                                                                                           \
        if (g_test_failures) {                                                                     \
            fprintf(stderr, "%d check(s) failed\n", g_test_failures);                              \
            return 1;                                                                              \
        }                                                                                          \
        fprintf(stderr, "all checks passed\n");                                                    \
        return 0;                                                                                  \
    } while (0)

/* The prompt ids of the greedy golden file (tests/golden/greedy_chat50.tsv, its second column):
 * up to max prompts of up to TEST_PROMPT_CAP ids into ids, their lengths into len. Returns how
 * many were read (0 when the file is missing). */
#define TEST_PROMPT_CAP 256
static inline int test_golden_prompts(int32_t (*ids)[TEST_PROMPT_CAP], int *len, int max) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/golden/greedy_chat50.tsv", test_source_dir());
    char *buf = test_read_file(path, NULL);
    if (!buf) return 0;
    int n = 0;
    for (char *line = buf; line && *line && n < max;) {
        char *eol = strchr(line, '\n');
        char *p = *line != '#' ? strchr(line, '\t') : NULL;
        if (p) {
            p++;
            int k = 0;
            while (*p && *p != '\t' && k < TEST_PROMPT_CAP) {
                char *e;
                long v = strtol(p, &e, 10);
                if (e == p) break;
                ids[n][k++] = (int32_t)v;
                p = e;
            }
            len[n++] = k;
        }
        line = eol ? eol + 1 : NULL;
    }
    free(buf);
    return n;
}

#endif
