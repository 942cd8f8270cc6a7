/* Strict numeric flag parsing (see args.h). */
#include "cli/args.h"

#include "base/log.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
     * checking outputs against llama.cpp). GPU backends register here when built. */
    if (strcmp(s, "cpu") != 0 && strcmp(s, "cpu-ggml") != 0) {
        fprintf(stderr, "sglc: %s: unknown device '%s' (this build has: cpu, cpu-ggml)\n", flag, s);
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
