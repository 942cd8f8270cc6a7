/* A GGUF's tokenizer written as a Hugging Face tokenizer folder (`sglc export-tokenizer`), so
 * tools that only load tokenizer.json (sglang-router's cache-aware policy and /v1/tokenize,
 * transformers, HF `tokenizers`) tokenize exactly as sglc does when it serves the GGUF.
 *
 * What is written is derived from the tokenizer sglc itself builds from the file (same vocab
 * texts, same special-token set, same bos/add_bos and flags), plus the merges as stored:
 * - tokenizer.json: a BPE model (vocab, merges as [left, right] pairs, ignore_merges for the
 *   llama3 family), the pre-tokenizer as a Sequence of one Split (Isolated) per llama.cpp regex
 *   of the tokenizer.ggml.pre family followed by ByteLevel without its own regex (llama.cpp
 *   applies the regexes in order, each splitting the previous pieces, keeping the gaps: what
 *   HF's Sequence of isolated Splits does), ByteLevel decoder, a TemplateProcessing post-
 *   processor when the model adds bos, and the control/unknown tokens as special added tokens
 *   (user-defined ones as non-special added tokens: llama.cpp matches them even when special
 *   markup is not parsed, which is what HF does with non-special added tokens).
 * - tokenizer_config.json: bos/eos/unk/pad, add_bos_token, chat_template, model_max_length,
 *   clean_up_tokenization_spaces, added_tokens_decoder.
 * - special_tokens_map.json, generation_config.json (every end-of-generation id) and
 *   chat_template.jinja when the model has a template.
 * All JSON is built with cJSON; token texts that are not valid UTF-8 are refused (JSON cannot
 * carry them). Single-threaded; nothing is kept after the call. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/utf8.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_impl.h"

/* A token's text as a NUL-terminated string; NULL (err set) when JSON cannot carry it. */
static char *token_string(const sglc_tokenizer *t, int32_t id, sglc_err *err) {
    size_t len;
    const char *s = sglc_tok_text(t, id, &len);
    if (memchr(s, 0, len) || !sglc_utf8_valid(s, len)) {
        sglc_err_set(err, SGLC_ERR_UNSUPPORTED,
                     "token %d is not valid UTF-8 text: tokenizer.json cannot hold it", id);
        return NULL;
    }
    char *o = malloc(len + 1);
    if (!o) {
        sglc_err_set(err, SGLC_ERR_NOMEM, "out of memory");
        return NULL;
    }
    memcpy(o, s, len);
    o[len] = 0;
    return o;
}

/* Adds key: token text of id, or null when id < 0. */
static int add_token_field(cJSON *obj, const char *key, const sglc_tokenizer *t, int64_t id,
                           sglc_err *err) {
    if (id < 0) return cJSON_AddNullToObject(obj, key) ? SGLC_OK : SGLC_ERR_NOMEM;
    char *s = token_string(t, (int32_t)id, err);
    if (!s) return SGLC_ERR_FORMAT;
    cJSON *r = cJSON_AddStringToObject(obj, key, s);
    free(s);
    return r ? SGLC_OK : sglc_err_set(err, SGLC_ERR_NOMEM, "out of memory");
}

static int write_json(const char *dir, const char *name, const cJSON *j, int pretty,
                      sglc_err *err) {
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
        return sglc_err_set(err, SGLC_ERR_ARG, "output path too long");
    char *s = pretty ? cJSON_Print(j) : cJSON_PrintUnformatted(j);
    if (!s) return sglc_err_set(err, SGLC_ERR_NOMEM, "out of memory");
    FILE *f = fopen(path, "wb");
    if (!f) {
        free(s);
        return sglc_err_set(err, SGLC_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    }
    size_t n = strlen(s);
    int ok = fwrite(s, 1, n, f) == n && fputc('\n', f) != EOF;
    ok = fclose(f) == 0 && ok;
    free(s);
    return ok ? SGLC_OK : sglc_err_set(err, SGLC_ERR_IO, "cannot write %s", path);
}

/* chat_template.jinja: where sglang-router and recent transformers look for the template */
static int write_text(const char *dir, const char *name, const char *text, sglc_err *err) {
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
        return sglc_err_set(err, SGLC_ERR_ARG, "output path too long");
    FILE *f = fopen(path, "wb");
    if (!f) return sglc_err_set(err, SGLC_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    size_t n = strlen(text);
    int ok = fwrite(text, 1, n, f) == n;
    ok = fclose(f) == 0 && ok;
    return ok ? SGLC_OK : sglc_err_set(err, SGLC_ERR_IO, "cannot write %s", path);
}

static int read_opt_id(const sglc_gguf *g, const char *key, int32_t n_vocab, int64_t *out,
                       sglc_err *err) {
    *out = -1;
    int64_t v;
    int rc = sglc_gguf_get_i64(g, key, &v, err);
    if (rc < 0) return rc;
    if (rc == 0) {
        if (v < 0 || v >= n_vocab)
            return sglc_err_set(err, SGLC_ERR_FORMAT, "%s = %lld is outside the vocab (%d)", key,
                                (long long)v, n_vocab);
        *out = v;
    }
    return SGLC_OK;
}

/* The "model" object: vocab and merges (pairs split at the first space after position 0, as
 * sglc and llama.cpp read them). */
static cJSON *bpe_model(const sglc_gguf *g, const sglc_tokenizer *t, int64_t unk, int ignore_merges,
                        sglc_err *err) {
    cJSON *m = cJSON_CreateObject();
    if (!m) goto nomem;
    cJSON_AddStringToObject(m, "type", "BPE");
    cJSON_AddNullToObject(m, "dropout");
    if (add_token_field(m, "unk_token", t, unk, err)) goto fail;
    cJSON_AddNullToObject(m, "continuing_subword_prefix");
    cJSON_AddNullToObject(m, "end_of_word_suffix");
    cJSON_AddFalseToObject(m, "fuse_unk");
    cJSON_AddFalseToObject(m, "byte_fallback");
    cJSON_AddBoolToObject(m, "ignore_merges", ignore_merges);
    cJSON *vocab = cJSON_AddObjectToObject(m, "vocab");
    if (!vocab) goto nomem;
    for (int32_t i = 0; i < t->n_vocab; i++) {
        char *s = token_string(t, i, err);
        if (!s) goto fail;
        cJSON *v = cJSON_CreateNumber(i);
        if (!v) {
            free(s);
            goto nomem;
        }
        cJSON_AddItemToObject(vocab, s, v);
        free(s);
    }
    cJSON *merges = cJSON_AddArrayToObject(m, "merges");
    if (!merges) goto nomem;
    int64_t kv = sglc_gguf_find_key(g, "tokenizer.ggml.merges");
    sglc_gguf_type et;
    uint64_t n = 0;
    const void *data;
    if (kv >= 0) {
        int rc = sglc_gguf_get_arr(g, "tokenizer.ggml.merges", &et, &n, &data, err);
        if (rc) goto fail;
        if (et != SGLC_GGUF_STRING) {
            sglc_err_set(err, SGLC_ERR_FORMAT, "tokenizer.ggml.merges is not an array of strings");
            goto fail;
        }
    }
    for (uint64_t i = 0; i < n; i++) {
        size_t len;
        const char *s = sglc_gguf_get_arr_str(g, kv, i, &len);
        const char *sp = s && len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
        if (!sp || memchr(s, 0, len) || !sglc_utf8_valid(s, len)) {
            sglc_err_set(err, SGLC_ERR_FORMAT, "merge %llu is not two UTF-8 tokens",
                         (unsigned long long)i);
            goto fail;
        }
        size_t ll = (size_t)(sp - s), rl = len - ll - 1;
        char *left = strndup(s, ll), *right = strndup(sp + 1, rl);
        cJSON *pair = cJSON_CreateArray();
        cJSON *a = left ? cJSON_CreateString(left) : NULL,
              *b = right ? cJSON_CreateString(right) : NULL;
        free(left);
        free(right);
        if (!pair || !a || !b) {
            cJSON_Delete(pair);
            cJSON_Delete(a);
            cJSON_Delete(b);
            goto nomem;
        }
        cJSON_AddItemToArray(pair, a);
        cJSON_AddItemToArray(pair, b);
        cJSON_AddItemToArray(merges, pair);
    }
    return m;
nomem:
    sglc_err_set(err, SGLC_ERR_NOMEM, "out of memory");
fail:
    cJSON_Delete(m);
    return NULL;
}

static cJSON *pre_tokenizer(const char *const *re, size_t n_re) {
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "type", "Sequence");
    cJSON *list = cJSON_AddArrayToObject(p, "pretokenizers");
    for (size_t i = 0; i < n_re; i++) {
        cJSON *s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "type", "Split");
        cJSON *pat = cJSON_AddObjectToObject(s, "pattern");
        cJSON_AddStringToObject(pat, "Regex", re[i]);
        cJSON_AddStringToObject(s, "behavior", "Isolated");
        cJSON_AddFalseToObject(s, "invert");
        cJSON_AddItemToArray(list, s);
    }
    cJSON *bl = cJSON_CreateObject();
    cJSON_AddStringToObject(bl, "type", "ByteLevel");
    cJSON_AddFalseToObject(bl, "add_prefix_space");
    cJSON_AddTrueToObject(bl, "trim_offsets");
    cJSON_AddFalseToObject(bl, "use_regex");
    cJSON_AddItemToArray(list, bl);
    return p;
}

static cJSON *post_processor(const char *bos_text, int32_t bos) {
    cJSON *p = cJSON_CreateObject();
    if (!bos_text) { /* what HF writes for byte-level BPE without a template */
        cJSON_AddStringToObject(p, "type", "ByteLevel");
        cJSON_AddTrueToObject(p, "add_prefix_space");
        cJSON_AddFalseToObject(p, "trim_offsets");
        cJSON_AddTrueToObject(p, "use_regex");
        return p;
    }
    cJSON_AddStringToObject(p, "type", "TemplateProcessing");
    for (int pair = 0; pair < 2; pair++) {
        cJSON *tmpl = cJSON_AddArrayToObject(p, pair ? "pair" : "single");
        for (int k = 0; k < (pair ? 2 : 1); k++) {
            cJSON *st = cJSON_CreateObject(), *sti = cJSON_AddObjectToObject(st, "SpecialToken");
            cJSON_AddStringToObject(sti, "id", bos_text);
            cJSON_AddNumberToObject(sti, "type_id", k);
            cJSON_AddItemToArray(tmpl, st);
            cJSON *sq = cJSON_CreateObject(), *sqi = cJSON_AddObjectToObject(sq, "Sequence");
            cJSON_AddStringToObject(sqi, "id", k ? "B" : "A");
            cJSON_AddNumberToObject(sqi, "type_id", k);
            cJSON_AddItemToArray(tmpl, sq);
        }
    }
    cJSON *sp = cJSON_AddObjectToObject(p, "special_tokens");
    cJSON *e = cJSON_AddObjectToObject(sp, bos_text);
    cJSON_AddStringToObject(e, "id", bos_text);
    cJSON_AddItemToObject(e, "ids", cJSON_CreateIntArray(&bos, 1));
    cJSON_AddItemToObject(e, "tokens", cJSON_CreateStringArray(&bos_text, 1));
    return p;
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* One added-token entry as HF writes it (in added_tokens and added_tokens_decoder). */
static cJSON *added_token(const char *text, int32_t id, int special, int with_id) {
    cJSON *a = cJSON_CreateObject();
    if (with_id) cJSON_AddNumberToObject(a, "id", id);
    cJSON_AddStringToObject(a, "content", text);
    cJSON_AddFalseToObject(a, "single_word");
    cJSON_AddFalseToObject(a, "lstrip");
    cJSON_AddFalseToObject(a, "rstrip");
    cJSON_AddFalseToObject(a, "normalized");
    cJSON_AddBoolToObject(a, "special", special);
    return a;
}

int sglc_tokenizer_export_hf(const sglc_gguf *g, const char *pre_override, const char *dir,
                             sglc_err *err) {
    sglc_tokenizer *t = NULL;
    cJSON *tj = NULL, *cfg = NULL, *stm = NULL, *gen = NULL;
    int32_t *ids = NULL;
    char *bos_text = NULL;
    int rc = sglc_tokenizer_open_gguf_pre(&t, g, pre_override, err);
    if (rc) return rc;

    char pre[64] = "default";
    if (pre_override) {
        snprintf(pre, sizeof pre, "%s", pre_override);
    } else {
        const char *s;
        size_t len;
        rc = sglc_gguf_get_str(g, "tokenizer.ggml.pre", &s, &len, err);
        if (rc < 0) goto cleanup;
        if (rc == 0 && len > 0 && len < sizeof pre) {
            memcpy(pre, s, len);
            pre[len] = 0;
        }
    }
    const char *const *re = NULL;
    sglc_pretok_flags flags;
    size_t n_re = sglc_pretok_type_regexes(pre, &re, &flags);
    if (n_re == 0) { /* open_gguf accepted it, so this is a table mismatch */
        rc = sglc_err_set(err, SGLC_ERR_UNSUPPORTED, "pre-tokenizer '%s' has no regex list", pre);
        goto cleanup;
    }
    int64_t unk, pad, ctx = 0;
    if ((rc = read_opt_id(g, "tokenizer.ggml.unknown_token_id", t->n_vocab, &unk, err)) ||
        (rc = read_opt_id(g, "tokenizer.ggml.padding_token_id", t->n_vocab, &pad, err)))
        goto cleanup;
    {
        const char *arch;
        size_t al;
        char key[128];
        if (sglc_gguf_get_str(g, "general.architecture", &arch, &al, err) == 0 && al < 64) {
            snprintf(key, sizeof key, "%.*s.context_length", (int)al, arch);
            if (sglc_gguf_get_i64(g, key, &ctx, err) != 0 || ctx < 0) ctx = 0;
        }
    }
    int32_t bos = t->bos, eos = t->eos;
    int add_bos = sglc_tokenizer_add_bos(t);
    if (add_bos && !(bos_text = token_string(t, bos, err))) {
        rc = SGLC_ERR_FORMAT;
        goto cleanup;
    }
    rc = SGLC_ERR_NOMEM;

    /* tokenizer.json */
    tj = cJSON_CreateObject();
    if (!tj) goto nomem;
    cJSON_AddStringToObject(tj, "version", "1.0");
    cJSON_AddNullToObject(tj, "truncation");
    cJSON_AddNullToObject(tj, "padding");
    cJSON *added = cJSON_AddArrayToObject(tj, "added_tokens");
    ids = malloc(((size_t)t->n_specials + 1) * sizeof *ids);
    if (!ids || !added) goto nomem;
    memcpy(ids, t->specials, (size_t)t->n_specials * sizeof *ids);
    qsort(ids, (size_t)t->n_specials, sizeof *ids, cmp_i32);
    cfg = cJSON_CreateObject();
    if (!cfg) goto nomem;
    cJSON_AddBoolToObject(cfg, "add_bos_token", add_bos);
    cJSON_AddFalseToObject(cfg, "add_eos_token");
    cJSON_AddFalseToObject(cfg, "add_prefix_space");
    cJSON *decoder_map = cJSON_AddObjectToObject(cfg, "added_tokens_decoder");
    if (!decoder_map) goto nomem;
    for (int32_t k = 0; k < t->n_specials; k++) {
        int32_t id = ids[k];
        int special = (t->attr[id] & (SGLC_TOK_ATTR_CONTROL | SGLC_TOK_ATTR_UNKNOWN)) != 0;
        char *s = token_string(t, id, err);
        if (!s) {
            rc = SGLC_ERR_FORMAT;
            goto cleanup;
        }
        char key[16];
        snprintf(key, sizeof key, "%d", id);
        cJSON_AddItemToArray(added, added_token(s, id, special, 1));
        cJSON_AddItemToObject(decoder_map, key, added_token(s, id, special, 0));
        free(s);
    }
    cJSON_AddNullToObject(tj, "normalizer");
    cJSON_AddItemToObject(tj, "pre_tokenizer", pre_tokenizer(re, n_re));
    cJSON_AddItemToObject(tj, "post_processor", post_processor(bos_text, bos));
    cJSON *dec = cJSON_AddObjectToObject(tj, "decoder");
    if (!dec) goto nomem;
    cJSON_AddStringToObject(dec, "type", "ByteLevel");
    cJSON_AddTrueToObject(dec, "add_prefix_space");
    cJSON_AddTrueToObject(dec, "trim_offsets");
    cJSON_AddTrueToObject(dec, "use_regex");
    cJSON *model = bpe_model(g, t, unk, flags.ignore_merges, err);
    if (!model) {
        rc = SGLC_ERR_FORMAT;
        goto cleanup;
    }
    cJSON_AddItemToObject(tj, "model", model);

    /* tokenizer_config.json and special_tokens_map.json */
    stm = cJSON_CreateObject();
    gen = cJSON_CreateObject();
    if (!stm || !gen) goto nomem;
    struct {
        const char *key;
        int64_t id;
    } named[] = {{"bos_token", bos}, {"eos_token", eos}, {"unk_token", unk}, {"pad_token", pad}};
    for (size_t k = 0; k < sizeof named / sizeof named[0]; k++) {
        if ((rc = add_token_field(cfg, named[k].key, t, named[k].id, err))) goto cleanup;
        if (named[k].id >= 0 && (rc = add_token_field(stm, named[k].key, t, named[k].id, err)))
            goto cleanup;
    }
    rc = SGLC_ERR_NOMEM;
    cJSON_AddBoolToObject(cfg, "clean_up_tokenization_spaces", flags.clean_spaces);
    if (t->chat_template) cJSON_AddStringToObject(cfg, "chat_template", t->chat_template);
    if (ctx > 0) cJSON_AddNumberToObject(cfg, "model_max_length", (double)ctx);
    cJSON_AddStringToObject(cfg, "tokenizer_class", "PreTrainedTokenizerFast");

    /* generation_config.json: sglc's end-of-generation set, which it also reads back */
    if (bos >= 0) cJSON_AddNumberToObject(gen, "bos_token_id", bos);
    cJSON *eog = cJSON_AddArrayToObject(gen, "eos_token_id");
    if (!eog) goto nomem;
    for (int32_t i = 0; i < t->n_vocab; i++)
        if (t->eog[i]) cJSON_AddItemToArray(eog, cJSON_CreateNumber(i));

    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        rc = sglc_err_set(err, SGLC_ERR_IO, "cannot create %s: %s", dir, strerror(errno));
        goto cleanup;
    }
    if ((rc = write_json(dir, "tokenizer.json", tj, 0, err)) ||
        (rc = write_json(dir, "tokenizer_config.json", cfg, 1, err)) ||
        (rc = write_json(dir, "special_tokens_map.json", stm, 1, err)) ||
        (rc = write_json(dir, "generation_config.json", gen, 1, err)))
        goto cleanup;
    if (t->chat_template && (rc = write_text(dir, "chat_template.jinja", t->chat_template, err)))
        goto cleanup;
    rc = SGLC_OK;
    goto cleanup;
nomem:
    rc = sglc_err_set(err, SGLC_ERR_NOMEM, "out of memory");
cleanup:
    cJSON_Delete(tj);
    cJSON_Delete(cfg);
    cJSON_Delete(stm);
    cJSON_Delete(gen);
    free(ids);
    free(bos_text);
    sglc_tokenizer_close(t);
    return rc;
}
