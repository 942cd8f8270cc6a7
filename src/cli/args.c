/* Strict numeric flag parsing and the model path's default (see args.h). */
#include "cli/args.h"

#include "base/log.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int sglc_arg_int(const char *flag, const char *s, int64_t lo, int64_t hi, int64_t *out) {
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno) {
        fprintf(stderr, "sglc: %s: '%s' is not an integer\n", flag, s);
        return -1;
    }
    if (v < lo || v > hi) {
        fprintf(stderr, "sglc: %s: %lld is out of range [%lld, %lld]\n", flag, v, (long long)lo,
                (long long)hi);
        return -1;
    }
    *out = v;
    return 0;
}

int sglc_arg_u64(const char *flag, const char *s, uint64_t *out) {
    char *end = NULL;
    errno = 0;
    if (*s == '-') {
        fprintf(stderr, "sglc: %s: '%s' must be a non-negative integer\n", flag, s);
        return -1;
    }
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *end || errno) {
        fprintf(stderr, "sglc: %s: '%s' is not a 64-bit unsigned integer\n", flag, s);
        return -1;
    }
    *out = v;
    return 0;
}

int sglc_arg_float(const char *flag, const char *s, double lo, double hi, double *out) {
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !isfinite(v)) {
        fprintf(stderr, "sglc: %s: '%s' is not a finite number\n", flag, s);
        return -1;
    }
    if (v < lo || v > hi) {
        fprintf(stderr, "sglc: %s: %g is out of range [%g, %g]\n", flag, v, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

const char *sglc_arg_value(int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        fprintf(stderr, "sglc: %s needs a value\n", argv[*i]);
        return NULL;
    }
    (*i)++;
    return argv[*i];
}

int sglc_arg_quantization(const char *flag, const char *s, const char **out) {
    if (strcmp(s, "mlx_q4") != 0 && strcmp(s, "mlx_q8") != 0) {
        fprintf(stderr, "sglc: %s: unknown method '%s' (mlx_q4, mlx_q8)\n", flag, s);
        return -1;
    }
    *out = s;
    return 0;
}

int sglc_arg_device(const char *flag, const char *s, const char **out) {
    /* cpu: the fast kernels; cpu-ggml: llama.cpp's arithmetic bit for bit (slower, for
     * checking outputs against llama.cpp); cuda: accepted here, and opening it says whether
     * this build has CUDA and a GPU is visible (backend.c). */
    if (strcmp(s, "cpu") != 0 && strcmp(s, "cpu-ggml") != 0 && strcmp(s, "cuda") != 0) {
        fprintf(stderr, "sglc: %s: unknown device '%s' (devices: cpu, cpu-ggml, cuda)\n", flag, s);
        return -1;
    }
    *out = s;
    return 0;
}

int sglc_arg_log_level(const char *flag, const char *s) {
    static const struct {
        const char *name;
        sglc_log_level level;
    } k_levels[] = {{"debug", SGLC_LOG_DEBUG},
                    {"info", SGLC_LOG_INFO},
                    {"warning", SGLC_LOG_WARN},
                    {"warn", SGLC_LOG_WARN},
                    {"error", SGLC_LOG_ERROR}};
    for (size_t i = 0; i < sizeof k_levels / sizeof k_levels[0]; i++)
        if (strcmp(s, k_levels[i].name) == 0) {
            sglc_log_set_level(k_levels[i].level);
            return 0;
        }
    fprintf(stderr, "sglc: %s: unknown level '%s'\n", flag, s);
    return -1;
}

#define DEFAULT_MODEL_FILE "SmolLM2-135M-Instruct.Q4_1.gguf"

static int file_exists(const char *p) {
    return access(p, R_OK) == 0;
}

int sglc_default_model_path(char *buf, size_t cap) {
    const char *env = getenv("SGLC_MODEL_DIR");
    if (env) {
        snprintf(buf, cap, "%s/%s", env, DEFAULT_MODEL_FILE);
        if (file_exists(buf)) return 0;
    }
    /* the binary lives in <repo>/build-dir/sglc; the model in <repo>/models */
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        for (int up = 0; up < 3; up++) {
            char *slash = strrchr(exe, '/');
            if (!slash) break;
            *slash = 0;
            snprintf(buf, cap, "%s/models/%s", exe, DEFAULT_MODEL_FILE);
            if (file_exists(buf)) return 0;
        }
    }
    snprintf(buf, cap, "models/%s", DEFAULT_MODEL_FILE);
    return file_exists(buf) ? 0 : -1;
}

/* A Hugging Face hub id ("Qwen/Qwen3-0.6B") that is not a local path is looked up where
 * huggingface_hub keeps downloads ($HF_HUB_CACHE, else $HF_HOME/hub, else
 * ~/.cache/huggingface/hub): models--ORG--NAME/snapshots/<refs/main>. sglc never downloads. */
static int looks_like_hub_id(const char *id) {
    const char *slash = strchr(id, '/');
    if (!slash || slash == id || !slash[1] || strchr(slash + 1, '/') || id[0] == '.' ||
        strlen(id) > 200)
        return 0;
    for (const char *p = id; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '-' || *p == '_' || *p == '.' || *p == '/'))
            return 0;
    return 1;
}

static int resolve_hub_id(const char *id, char *buf, size_t cap) {
    const char *slash = strchr(id, '/');
    char hub[2048];
    const char *env = getenv("HF_HUB_CACHE"), *home = getenv("HF_HOME");
    if (env && *env)
        snprintf(hub, sizeof hub, "%s", env);
    else if (home && *home)
        snprintf(hub, sizeof hub, "%s/hub", home);
    else
        snprintf(hub, sizeof hub, "%s/.cache/huggingface/hub",
                 getenv("HOME") ? getenv("HOME") : "");
    char repo[512], ref[128] = {0}, path[3072];
    snprintf(repo, sizeof repo, "models--%.*s--%s", (int)(slash - id), id, slash + 1);
    snprintf(path, sizeof path, "%s/%s/refs/main", hub, repo);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(ref, 1, sizeof ref - 1, f);
    fclose(f);
    while (n > 0 && (ref[n - 1] == '\n' || ref[n - 1] == '\r' || ref[n - 1] == ' '))
        ref[--n] = 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)ref[i])) return -1;
    if (n == 0) return -1;
    snprintf(buf, cap, "%s/%s/snapshots/%s", hub, repo, ref);
    return access(buf, R_OK) == 0 ? 0 : -1;
}

const char *sglc_model_path_or_default(const char *given, char *buf, size_t cap) {
    if (given) {
        if (access(given, F_OK) == 0 || !looks_like_hub_id(given)) return given;
        if (resolve_hub_id(given, buf, cap) != 0) {
            fprintf(stderr,
                    "sglc: %s: no such local path, and not in the Hugging Face cache "
                    "($HF_HUB_CACHE, $HF_HOME/hub or ~/.cache/huggingface/hub); sglc does not "
                    "download models: run `huggingface-cli download %s` first\n",
                    given, given);
            return NULL;
        }
        fprintf(stderr, "sglc: %s: using the Hugging Face cache copy %s\n", given, buf);
        return buf;
    }
    if (sglc_default_model_path(buf, cap) == 0) return buf;
    fprintf(stderr,
            "sglc: the default model is not installed (looked for %s); run "
            "scripts/fetch_model.sh or pass --model-path\n",
            buf);
    return NULL;
}
