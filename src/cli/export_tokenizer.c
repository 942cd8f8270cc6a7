/* `sglc export-tokenizer --model-path X --out DIR`: the model's tokenizer as a Hugging Face
 * tokenizer folder, for tools that cannot read GGUF (sglang-router's --tokenizer-path,
 * transformers). A GGUF is converted by sglc_tokenizer_export_hf; a Hugging Face folder's
 * tokenizer files are copied as they are. The written folder is then loaded back with sglc's own
 * tokenizer.json reader and must encode a set of probe strings exactly as the source tokenizer
 * does, or the command fails. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/log.h"
#include "cli/args.h"
#include "cli/cli.h"
#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"

static void usage(FILE *f) {
    fprintf(f, "usage: sglc export-tokenizer [--model-path PATH] --out DIR\n"
               "Writes the model's tokenizer as a Hugging Face tokenizer folder (tokenizer.json,\n"
               "tokenizer_config.json, special_tokens_map.json, generation_config.json) that HF\n"
               "tokenizers/transformers load and that encodes exactly as sglc does; for a GGUF\n"
               "file it is built from the vocab and merges, for a Hugging Face folder its files\n"
               "are copied. Give DIR to sglang-router as --tokenizer-path.\n"
               "  --model-path, --model PATH  GGUF file or HF folder (default: the bundled model)\n"
               "  --out DIR                   output folder (created if missing)\n");
}

/* Text that exercises the pre-tokenizer, merges, special tokens and Unicode. */
static const char *const k_probes[] = {
    "Hello, world! How are you?",
    "  two leading spaces, a\ttab and\n\nnewlines\r\n",
    "numbers 1234567 and 3.14159, 2024-06-01",
    "don't you'll I'm we've they're she'd",
    "Unicode: caf\xc3\xa9 na\xc3\xafve \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e "
    "\xf0\x9f\x99\x82 \xce\xa9\xce\xbc\xce\xad\xce\xb3\xce\xb1",
    "<|im_start|>user\nhi there<|im_end|>\n<|im_start|>assistant\n",
    "def f(x):\n    return x**2  # square\n",
    "<|endoftext|>plain text after a special token",
};

/* Returns the number of probes (both special-token modes) that encode differently. */
static int probe(const sglc_tokenizer *a, const sglc_tokenizer *b) {
    int bad = 0;
    int32_t ia[512], ib[512];
    for (size_t k = 0; k < sizeof k_probes / sizeof k_probes[0]; k++)
        for (int special = 0; special < 2; special++) {
            size_t len = strlen(k_probes[k]);
            int64_t na = sglc_tokenizer_encode(a, k_probes[k], len, special, 0, ia, 512);
            int64_t nb = sglc_tokenizer_encode(b, k_probes[k], len, special, 0, ib, 512);
            if (na < 0 || na != nb || na > 512 ||
                memcmp(ia, ib, (size_t)na * sizeof(int32_t)) != 0) {
                fprintf(stderr, "sglc export-tokenizer: probe %zu (parse_special=%d) differs\n", k,
                        special);
                bad++;
            }
        }
    return bad;
}

static int copy_file(const char *from_dir, const char *to_dir, const char *name, int required) {
    char src[4096], dst[4096];
    if ((size_t)snprintf(src, sizeof src, "%s/%s", from_dir, name) >= sizeof src ||
        (size_t)snprintf(dst, sizeof dst, "%s/%s", to_dir, name) >= sizeof dst) {
        fprintf(stderr, "sglc export-tokenizer: path too long\n");
        return -1;
    }
    FILE *in = fopen(src, "rb");
    if (!in) {
        if (!required && errno == ENOENT) return 0;
        fprintf(stderr, "sglc export-tokenizer: cannot read %s: %s\n", src, strerror(errno));
        return -1;
    }
    FILE *out = fopen(dst, "wb");
    if (!out) {
        fprintf(stderr, "sglc export-tokenizer: cannot write %s: %s\n", dst, strerror(errno));
        fclose(in);
        return -1;
    }
    char buf[1 << 16];
    size_t n;
    int ok = 1;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) ok = 0;
    if (ferror(in)) ok = 0;
    fclose(in);
    if (fclose(out) != 0) ok = 0;
    if (!ok) fprintf(stderr, "sglc export-tokenizer: copying %s failed\n", src);
    return ok ? 0 : -1;
}

int sglc_cmd_export_tokenizer(int argc, char **argv) {
    const char *model_arg = NULL, *out = NULL;
    char model_buf[4096];
    sglc_log_set_level(SGLC_LOG_WARN);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "sglc export-tokenizer: unexpected argument '%s' (see --help)\n", a);
            return 2;
        }
        if (!(v = sglc_arg_value(argc, argv, &i))) return 2;
        if (strcmp(a, "--model-path") == 0 || strcmp(a, "--model") == 0)
            model_arg = v;
        else if (strcmp(a, "--out") == 0)
            out = v;
        else {
            fprintf(stderr, "sglc export-tokenizer: unknown option '%s' (see --help)\n", a);
            return 2;
        }
    }
    if (!out || !out[0]) {
        fprintf(stderr, "sglc export-tokenizer: --out DIR is required\n");
        return 2;
    }
    const char *model = sglc_model_path_or_default(model_arg, model_buf, sizeof model_buf);
    if (!model) return 1;
    struct stat st;
    if (stat(model, &st) != 0) {
        fprintf(stderr, "sglc export-tokenizer: %s: %s\n", model, strerror(errno));
        return 1;
    }
    if (S_ISDIR(st.st_mode)) {
        if (mkdir(out, 0755) != 0 && errno != EEXIST) {
            fprintf(stderr, "sglc export-tokenizer: cannot create %s: %s\n", out, strerror(errno));
            return 1;
        }
        static const char *const files[] = {"tokenizer.json", "tokenizer_config.json",
                                            "special_tokens_map.json", "generation_config.json",
                                            "chat_template.jinja"};
        for (size_t k = 0; k < sizeof files / sizeof files[0]; k++)
            if (copy_file(model, out, files[k], k == 0)) return 1;
        printf("sglc: copied the tokenizer of %s to %s\n", model, out);
        return 0;
    }

    sglc_err err = {{0}};
    sglc_gguf *g = NULL;
    sglc_tokenizer *src = NULL, *back = NULL;
    int rc = 1;
    if (sglc_gguf_open(&g, model, &err) != 0 || sglc_tokenizer_open_gguf(&src, g, &err) != 0 ||
        sglc_tokenizer_export_hf(g, NULL, out, &err) != 0) {
        fprintf(stderr, "sglc export-tokenizer: %s: %s\n", model, err.msg);
        goto done;
    }
    if (sglc_tokenizer_open_hf(&back, out, &err) != 0) {
        fprintf(stderr, "sglc export-tokenizer: the written %s does not load back: %s\n", out,
                err.msg);
        goto done;
    }
    if (probe(src, back) != 0) {
        fprintf(stderr, "sglc export-tokenizer: %s encodes differently from %s\n", out, model);
        goto done;
    }
    printf("sglc: wrote the tokenizer of %s (%d tokens) to %s; sglang-router: --tokenizer-path "
           "%s\n",
           model, sglc_tokenizer_vocab_size(src), out, out);
    rc = 0;
done:
    sglc_tokenizer_close(back);
    sglc_tokenizer_close(src);
    sglc_gguf_close(g);
    return rc;
}
