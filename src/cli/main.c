/* sglc command-line entry: dispatches to one subcommand per file. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "sglc.h"

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

static void usage(FILE *f) {
    fprintf(f,
            "sglc %s: an LLM serving engine in C\n"
            "usage: sglc <command> [options]\n"
            "commands:\n"
            "  serve      the HTTP server, SGLang and OpenAI APIs (alias launch_server; --help)\n"
            "  generate   generate text from a prompt (sglc generate --help)\n"
            "  quantize   write an MLX-quantized copy of a Hugging Face folder (--help)\n"
            "  bench_one_batch  static-batch prefill/decode latency, no scheduler (--help)\n"
            "  bench_offline_throughput  offline throughput through the engine (--help)\n"
            "  bench_serving  online serving benchmark against a running server (--help)\n"
            "  version    print the version\n",
            SGLC_VERSION);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "serve") == 0 || strcmp(cmd, "launch_server") == 0)
        return sglc_cmd_serve(argc - 1, argv + 1);
    if (strcmp(cmd, "generate") == 0) return sglc_cmd_generate(argc - 1, argv + 1);
    if (strcmp(cmd, "quantize") == 0) return sglc_cmd_quantize(argc - 1, argv + 1);
    if (strcmp(cmd, "bench_offline_throughput") == 0)
        return sglc_cmd_bench_offline_throughput(argc - 1, argv + 1);
    if (strcmp(cmd, "bench_one_batch") == 0) return sglc_cmd_bench_one_batch(argc - 1, argv + 1);
    if (strcmp(cmd, "bench_serving") == 0) return sglc_cmd_bench_serving(argc - 1, argv + 1);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("sglc %s\n", SGLC_VERSION);
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "sglc: unknown command '%s' (try: sglc --help)\n", cmd);
    return 2;
}
