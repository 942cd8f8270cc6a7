/* `sglc export-tokenizer` (sglc_tokenizer_export_hf): the default GGUF's vocab exported as a
 * Hugging Face folder under each pre-tokenizer family, read back with sglc's tokenizer.json
 * reader, must give llama.cpp's ids (the golden files of scripts/golden/make_tokenizer_golden.py)
 * for every valid-UTF-8 string in both special-token modes, keep bos/add_bos and the
 * end-of-generation set, and the folder must be complete. HF `tokenizers` reading the same files
 * is checked end to end in tests/e2e/test_fleet.py. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "formats/gguf.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"
#include "utf8_oracle.h"
/* the shared golden helpers include decode checks this test does not use */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "tokenizer_golden.h"
#pragma GCC diagnostic pop

static char g_tmp[64];

/* Ids of the exported tokenizer equal llama.cpp's for every golden string JSON can carry. */
static void check_golden(const sglc_tokenizer *t, const char *file, size_t min_cases) {
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/golden/%s", test_source_dir(), file);
    golden_case *cases = NULL;
    size_t n = load_golden(path, &cases), checked = 0, bad = 0;
    for (size_t i = 0; i < n; i++) {
        golden_case *c = &cases[i];
        if (valid_utf8(c->text, c->text_len)) {
            int32_t *ids = malloc((c->text_len * 4 + 8) * sizeof *ids);
            int64_t got = sglc_tokenizer_encode(t, (const char *)c->text, c->text_len,
                                                c->mode == 'S', 0, ids, c->text_len * 4 + 8);
            checked++;
            if (got != (int64_t)c->n_ids ||
                (got > 0 && memcmp(ids, c->ids, c->n_ids * sizeof *ids) != 0)) {
                if (bad++ < 3) {
                    fprintf(stderr, "  %s case %zu (%c) differs\n", file, i, c->mode);
                    print_ids("  want", c->ids, c->n_ids);
                    if (got >= 0) print_ids("  got ", ids, (size_t)got);
                }
            }
            free(ids);
        }
        free(c->text);
        free(c->ids);
        free(c->detok);
        free(c->detok0);
    }
    free(cases);
    CHECKF(checked >= min_cases, "only %zu checkable cases in %s", checked, file);
    CHECKF(bad == 0, "%zu/%zu strings of %s encode differently after export", bad, checked, file);
    fprintf(stderr, "export %s: %zu strings, %zu differ\n", file, checked, bad);
}

static void check_files(const char *dir) {
    static const char *const files[] = {"tokenizer.json", "tokenizer_config.json",
                                        "special_tokens_map.json", "generation_config.json"};
    for (size_t k = 0; k < sizeof files / sizeof files[0]; k++) {
        char p[256];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, files[k]);
        CHECKF(stat(p, &st) == 0 && st.st_size > 2, "%s missing or empty", p);
    }
}

static void export_one(const sglc_gguf *g, const char *pre, const char *golden) {
    char dir[128];
    snprintf(dir, sizeof dir, "%s/%s", g_tmp, pre ? pre : "file");
    sglc_err err = {{0}};
    int rc = sglc_tokenizer_export_hf(g, pre, dir, &err);
    CHECKF(rc == 0, "export (pre %s): %s", pre ? pre : "of the file", err.msg);
    if (rc) return;
    check_files(dir);
    sglc_tokenizer *src = NULL, *back = NULL;
    rc = sglc_tokenizer_open_gguf_pre(&src, g, pre, &err);
    CHECKF(rc == 0, "open gguf: %s", err.msg);
    rc = sglc_tokenizer_open_hf(&back, dir, &err);
    CHECKF(rc == 0, "open exported (pre %s): %s", pre ? pre : "of the file", err.msg);
    if (src && back) {
        CHECK(sglc_tokenizer_vocab_size(src) == sglc_tokenizer_vocab_size(back));
        CHECK(sglc_tokenizer_bos(src) == sglc_tokenizer_bos(back));
        CHECK(sglc_tokenizer_eos(src) == sglc_tokenizer_eos(back));
        CHECKF(sglc_tokenizer_add_bos(src) == sglc_tokenizer_add_bos(back), "add_bos (pre %s)",
               pre ? pre : "of the file");
        int eog_diff = 0;
        for (int32_t i = 0; i < sglc_tokenizer_vocab_size(src); i++)
            eog_diff += sglc_tokenizer_is_eog(src, i) != sglc_tokenizer_is_eog(back, i);
        CHECKF(eog_diff == 0, "%d end-of-generation ids differ", eog_diff);
        CHECK((sglc_tokenizer_chat_template(src) == NULL) ==
              (sglc_tokenizer_chat_template(back) == NULL));
        if (sglc_tokenizer_chat_template(src) && sglc_tokenizer_chat_template(back))
            CHECK(strcmp(sglc_tokenizer_chat_template(src), sglc_tokenizer_chat_template(back)) ==
                  0);
        check_golden(back, golden, 300);
    }
    sglc_tokenizer_close(src);
    sglc_tokenizer_close(back);
}

int main(void) {
    const char *model = test_default_model();
    if (!model) return 1;
    snprintf(g_tmp, sizeof g_tmp, "/tmp/sglc_tokexport_XXXXXX");
    if (!mkdtemp(g_tmp)) {
        perror("mkdtemp");
        return 1;
    }
    sglc_gguf *g = NULL;
    sglc_err err = {{0}};
    if (sglc_gguf_open(&g, model, &err) != 0) {
        fprintf(stderr, "gguf open failed: %s\n", err.msg);
        return 1;
    }
    export_one(g, NULL, "tokenizer_smollm2.tsv");
    static const char *const pres[] = {"llama-bpe", "qwen2", "gpt-2", "default", "starcoder"};
    for (size_t i = 0; i < sizeof pres / sizeof pres[0]; i++) {
        char file[128];
        snprintf(file, sizeof file, "tokenizer_smollm2_%s.tsv", pres[i]);
        export_one(g, pres[i], file);
    }
    /* an output path that cannot be created is an error, not a crash */
    char bad[160];
    snprintf(bad, sizeof bad, "%s/missing/parent/dir", g_tmp);
    CHECK(sglc_tokenizer_export_hf(g, NULL, bad, &err) == SGLC_ERR_IO);
    sglc_gguf_close(g);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_tmp);
    TEST_MAIN_END();
}
