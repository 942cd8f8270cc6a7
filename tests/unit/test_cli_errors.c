/* Bad input to `sglc generate`: missing, truncated and corrupted model files, an unknown tensor
 * type, and bad arguments must each give exactly one clear line on stderr and a non-zero exit,
 * never a crash (in the sanitizer build the binary under test is the sanitized one). */
#include <fcntl.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_util.h"

static const char *g_bin;
static char g_dir[256];

/* Runs sglc with args; returns the exit status (or 128+signal) and stderr in err_out. */
static int run_sglc(char *const args[], char *err_out, size_t cap) {
    char errpath[512];
    snprintf(errpath, sizeof errpath, "%s/stderr.txt", g_dir);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int nul = open("/dev/null", O_WRONLY);
        dup2(fd, 2);
        dup2(nul, 1);
        execv(g_bin, args);
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    size_t n = 0;
    char *e = test_read_file(errpath, &n);
    snprintf(err_out, cap, "%s", e ? e : "");
    free(e);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int count_lines(const char *s) {
    int n = 0;
    for (const char *p = s; *p; p++)
        if (*p == '\n') n++;
    return n;
}

/* Expects a non-zero, non-crash exit and one stderr line containing want. */
static void expect_error(const char *what, char *const args[], const char *want) {
    char err[8192];
    int rc = run_sglc(args, err, sizeof err);
    fprintf(stderr, "[%s] exit %d: %s", what, rc, err);
    CHECKF(rc != 0 && rc < 128, "%s: exit status %d", what, rc);
    CHECKF(count_lines(err) == 1, "%s: expected one line on stderr, got %d", what,
           count_lines(err));
    CHECKF(strstr(err, want) != NULL, "%s: message lacks '%s'", what, want);
}

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    CHECK(fwrite(data, 1, n, f) == n);
    fclose(f);
}

static void model_case(const char *what, const char *file, const char *want) {
    char *args[] = {(char *)g_bin,      "generate", "--model-path",
                    (char *)file,       "--prompt", "hi",
                    "--max-new-tokens", "2",        NULL};
    expect_error(what, args, want);
}

int main(void) {
    g_bin = getenv("SGLC_BINARY");
    CHECKF(g_bin != NULL, "SGLC_BINARY not set (run through ctest)");
    const char *model = test_default_model();
    CHECK(model != NULL);
    if (!g_bin || !model) TEST_MAIN_END();
    snprintf(g_dir, sizeof g_dir, "/tmp/sglc-cli-XXXXXX");
    CHECK(mkdtemp(g_dir) != NULL);

    size_t len = 0;
    char *data = test_read_file(model, &len);
    CHECK(data != NULL && len > 1000000);
    if (!data) TEST_MAIN_END();
    char path[512];

    model_case("missing file", "/nonexistent/model.gguf", "model.gguf");
    snprintf(path, sizeof path, "%s/empty.gguf", g_dir);
    write_file(path, data, 0);
    model_case("empty file", path, "empty.gguf");
    snprintf(path, sizeof path, "%s/trunc-header.gguf", g_dir);
    write_file(path, data, 5000);
    model_case("truncated header", path, "trunc-header.gguf");
    snprintf(path, sizeof path, "%s/trunc-data.gguf", g_dir);
    write_file(path, data, len / 2);
    model_case("truncated data", path, "trunc-data.gguf");
    snprintf(path, sizeof path, "%s/magic.gguf", g_dir);
    memcpy(data, "GGUX", 4);
    write_file(path, data, len);
    memcpy(data, "GGUF", 4);
    model_case("bad magic", path, "magic.gguf");

    /* patch the type of token_embd.weight to an id ggml does not define */
    const char *name = "token_embd.weight";
    char *hit = memmem(data, 4 << 20, name, strlen(name));
    CHECK(hit != NULL);
    if (hit) {
        char *p = hit + strlen(name);
        uint32_t nd;
        memcpy(&nd, p, 4);
        p += 4 + 8 * nd;
        uint32_t old, bad = 99;
        memcpy(&old, p, 4);
        memcpy(p, &bad, 4);
        snprintf(path, sizeof path, "%s/badtype.gguf", g_dir);
        write_file(path, data, len);
        memcpy(p, &old, 4);
        model_case("unknown tensor type", path, "badtype.gguf");
    }
    /* a corrupted key length near 2^64 must be refused before any allocation */
    {
        uint64_t huge = UINT64_MAX - 3;
        memcpy(data + 24, &huge, 8); /* first KV key length */
        snprintf(path, sizeof path, "%s/keylen.gguf", g_dir);
        write_file(path, data, len);
        model_case("absurd key length", path, "keylen.gguf");
    }
    free(data);

    char *a1[] = {(char *)g_bin, "generate", "--prompt", "hi", "--max-new-tokens", "abc", NULL};
    expect_error("non-numeric max-new-tokens", a1, "--max-new-tokens");
    char *a2[] = {(char *)g_bin, "generate", "--prompt", "hi", "--temperature", "nan", NULL};
    expect_error("nan temperature", a2, "--temperature");
    char *a3[] = {(char *)g_bin, "generate", "--prompt", "hi", "--top-p", "0", NULL};
    expect_error("top-p zero", a3, "--top-p");
    char *a4[] = {(char *)g_bin, "generate", "--prompt", "hi", "--bogus", "1", NULL};
    expect_error("unknown option", a4, "--bogus");
    char *a5[] = {(char *)g_bin, "generate", "--prompt", NULL};
    expect_error("missing value", a5, "--prompt");
    char *a6[] = {(char *)g_bin, "generate", "--prompt", "", NULL};
    expect_error("empty prompt", a6, "empty");
    char *a7[] = {(char *)g_bin, "generate", "--prompt", "hi", "--seed", "-1", NULL};
    expect_error("negative seed", a7, "--seed");
    char *a8[] = {(char *)g_bin, "generate", "--prompt", "hi", "--max-new-tokens", "9000", NULL};
    expect_error("context overflow", a8, "context length");
    char *a9[] = {(char *)g_bin, "frobnicate", NULL};
    expect_error("unknown command", a9, "frobnicate");
    char *a10[] = {(char *)g_bin, "generate", "--prompt", "hi", "--device", "tpu", NULL};
    expect_error("unknown device", a10, "unknown device 'tpu'");
    /* cpu-ggml reproduces llama.cpp for Q4_1 / Q8_0 weights only: an f32 checkpoint is refused
     * at load, naming the weight type and the way out */
    char tiny[4096];
    snprintf(tiny, sizeof tiny, "%s/tests/golden/tiny_llama", test_source_dir());
    char *a11[] = {(char *)g_bin, "generate",     "--prompt", "hi", "--device",
                   "cpu-ggml",    "--model-path", tiny,       NULL};
    expect_error("cpu-ggml on f32 weights", a11, "--device cpu");

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    CHECK(system(cmd) == 0);
    TEST_MAIN_END();
}
