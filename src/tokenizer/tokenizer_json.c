/* Hugging Face tokenizer folders: tokenizer.json (+ tokenizer_config.json and
 * generation_config.json) turned into the same immutable sglc_tokenizer as a GGUF vocab.
 *
 * Supported, matching HF `tokenizers`: model BPE (vocab, merges as "a b" strings or [a, b]
 * pairs, ignore_merges, unk_token), pre_tokenizer ByteLevel / Split / Digits / Sequence of them
 * with ByteLevel last, normalizer none / NFC / NFD / NFKC / NFKD / Sequence of them, decoder
 * ByteLevel, added tokens (special ones become control tokens, skippable on decode; lstrip and
 * rstrip honoured). Everything else is refused by name with one line, never approximated:
 * WordPiece/Unigram/WordLevel models, SentencePiece-style BPE (byte_fallback without ByteLevel,
 * Metaspace, Replace/Prepend normalizers), single_word added tokens, BPE dropout.
 *
 * The JSON is parsed with cJSON into a tree that lives only during open; the vocab arrays
 * borrow its strings and sglc_tokenizer_open_vocab_ext copies what it keeps. ROBUSTNESS.md §26
 * checks: ids in range and unique, added tokens not colliding, merges naming vocab tokens (and
 * making one), bos/eos/unk in the vocab, regexes that compile. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_impl.h"

#define MAX_JSON_BYTES ((size_t)1 << 30)
#define MAX_STEPS 8
#define MAX_ID_GAPS 65536 /* ids missing from both vocab and added_tokens */

typedef struct {
    int32_t n_vocab;
    const char **texts; /* borrowed from the cJSON tree or placeholders */
    size_t *lens;
    int32_t *types;
    uint8_t *xattr;
    uint8_t *src; /* 0 = unset, 1 = model.vocab, 2 = added_tokens */
    char *placeholders;

    int64_t n_merges;
    const char **ml, **mr;
    size_t *mll, *mrl;

    sglc_pretok_step steps[MAX_STEPS];
    char *patterns[MAX_STEPS];
    size_t n_steps;
    int have_byte_level;
    int prefix_space;
    sglc_norm_form norm;
} hf_build;

static void build_free(hf_build *b) {
    free(b->texts);
    free(b->lens);
    free(b->types);
    free(b->xattr);
    free(b->src);
    free(b->placeholders);
    free(b->ml);
    free(b->mr);
    free(b->mll);
    free(b->mrl);
    for (size_t i = 0; i < b->n_steps; i++)
        free(b->patterns[i]);
}

static const char *type_of(const cJSON *o) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "type");
    return cJSON_IsString(t) ? t->valuestring : NULL;
}

/* Boolean field: absent or null gives dflt; anything but a boolean is an error (-1). */
static int get_bool(const cJSON *o, const char *key, int dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return dflt;
    if (!cJSON_IsBool(v)) return -1;
    return cJSON_IsTrue(v) ? 1 : 0;
}

/* A JSON number that is an integer in [0, max]. */
static int get_id(const cJSON *v, int64_t max, int64_t *out) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= 0) || d > (double)max || d != floor(d)) return -1;
    *out = (int64_t)d;
    return 0;
}

/* --- normalizer --- */

static int parse_normalizer(hf_build *b, const cJSON *n, int depth, sglc_err *err) {
    if (!n || cJSON_IsNull(n)) return SGLC_OK;
    const char *type = type_of(n);
    if (!type)
        return sglc_err_set(err, SGLC_ERR_FORMAT, "tokenizer.json: normalizer without a type");
    static const char *const forms[SGLC_NORM_COUNT] = {"", "NFC", "NFD", "NFKC", "NFKD"};
    for (int f = 1; f < SGLC_NORM_COUNT; f++) {
        if (strcmp(type, forms[f]) == 0) {
            /* in a sequence the last form decides composition; compatibility sticks */
            int compat = b->norm == SGLC_NORM_NFKC || b->norm == SGLC_NORM_NFKD ||
                         f == SGLC_NORM_NFKC || f == SGLC_NORM_NFKD;
            int compose = f == SGLC_NORM_NFC || f == SGLC_NORM_NFKC;
            b->norm = compat ? (compose ? SGLC_NORM_NFKC : SGLC_NORM_NFKD)
                             : (compose ? SGLC_NORM_NFC : SGLC_NORM_NFD);
            return SGLC_OK;
        }
    }
    if (strcmp(type, "Sequence") == 0 && depth < 8) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(n, "normalizers");
        if (!cJSON_IsArray(list))
            return sglc_err_set(err, SGLC_ERR_FORMAT,
                                "tokenizer.json: normalizer Sequence without a normalizers list");
        const cJSON *it;
        cJSON_ArrayForEach(it, list) {
            int rc = parse_normalizer(b, it, depth + 1, err);
            if (rc) return rc;
        }
        return SGLC_OK;
    }
    return sglc_err_set(err, SGLC_ERR_UNSUPPORTED,
                        "tokenizer.json: normalizer '%.64s' is not supported (supported: NFC, NFD, "
                        "NFKC, NFKD, Sequence)",
                        type);
}

/* --- pre-tokenizer --- */

static int add_step(hf_build *b, char *pattern, int literal, sglc_split_behavior behavior,
                    int invert, sglc_err *err) {
    if (!pattern) return sglc_err_set(err, SGLC_ERR_NOMEM, "out of memory");
    if (b->have_byte_level) {
        free(pattern);
        return sglc_err_set(err, SGLC_ERR_UNSUPPORTED,
                            "tokenizer.json: a pre-tokenizer after ByteLevel is not supported");
    }
    if (b->n_steps == MAX_STEPS) {
        free(pattern);
        return sglc_err_set(err, SGLC_ERR_UNSUPPORTED,
                            "tokenizer.json: more than %d pre-tokenizer steps", MAX_STEPS);
    }
    b->patterns[b->n_steps] = pattern;
    b->steps[b->n_steps++] = (sglc_pretok_step){pattern, literal, behavior, invert};
    return SGLC_OK;
}

static int parse_pretok(hf_build *b, const cJSON *p, int depth, sglc_err *err) {
    if (!p || cJSON_IsNull(p)) return SGLC_OK;
    const char *type = type_of(p);
    if (!type)
        return sglc_err_set(err, SGLC_ERR_FORMAT, "tokenizer.json: pre_tokenizer without a type");
    if (strcmp(type, "Sequence") == 0 && depth < 8) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers");
        if (!cJSON_IsArray(list))
            return sglc_err_set(
                err, SGLC_ERR_FORMAT,
                "tokenizer.json: pre_tokenizer Sequence without a pretokenizers list");
        const cJSON *it;
        cJSON_ArrayForEach(it, list) {
            int rc = parse_pretok(b, it, depth + 1, err);
            if (rc) return rc;
        }
        return SGLC_OK;
    }
    if (strcmp(type, "ByteLevel") == 0) {
        int aps = get_bool(p, "add_prefix_space", 1), re = get_bool(p, "use_regex", 1);
        if (aps < 0 || re < 0)
            return sglc_err_set(err, SGLC_ERR_FORMAT,
                                "tokenizer.json: ByteLevel add_prefix_space/use_regex not boolean");
        if (b->have_byte_level)
            return sglc_err_set(err, SGLC_ERR_UNSUPPORTED,
                                "tokenizer.json: two ByteLevel pre-tokenizers are not supported");
        if (aps && b->n_steps)
            return sglc_err_set(err, SGLC_ERR_UNSUPPORTED,
                                "tokenizer.json: ByteLevel add_prefix_space after another "
                                "pre-tokenizer is not supported");
        if (re) {
            int rc =
                add_step(b, strdup(sglc_pretok_bytelevel_regex()), 0, SGLC_SPLIT_ISOLATED, 0, err);
            if (rc) return rc;
        }
        b->have_byte_level = 1;
        b->prefix_space = aps;
        return SGLC_OK;
    }
    if (strcmp(type, "Digits") == 0) {
        int ind = get_bool(p, "individual_digits", 0);
        if (ind < 0)
            return sglc_err_set(err, SGLC_ERR_FORMAT,
                                "tokenizer.json: Digits individual_digits not boolean");
        /* Rust's char::is_numeric is the N category; a run of them is one contiguous piece */
        return add_step(b, strdup(ind ? "\\p{N}" : "\\p{N}+"), 0, SGLC_SPLIT_ISOLATED, 0, err);
    }
    if (strcmp(type, "Split") == 0) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
        const cJSON *re = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
        const cJSON *lit = cJSON_GetObjectItemCaseSensitive(pat, "String");
        if (!cJSON_IsString(re) && !cJSON_IsString(lit))
            return sglc_err_set(err, SGLC_ERR_FORMAT,
                                "tokenizer.json: Split pattern is neither {\"Regex\": ...} nor "
                                "{\"String\": ...}");
        const cJSON *beh = cJSON_GetObjectItemCaseSensitive(p, "behavior");
        static const char *const names[SGLC_SPLIT_BEHAVIOR_COUNT] = {
            "Isolated", "Removed", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
        int behavior = -1;
        for (int k = 0; k < SGLC_SPLIT_BEHAVIOR_COUNT && cJSON_IsString(beh); k++) {
            if (strcmp(beh->valuestring, names[k]) == 0) behavior = k;
        }
        if (behavior < 0)
            return sglc_err_set(err, SGLC_ERR_FORMAT,
                                "tokenizer.json: Split behavior '%.64s' unknown",
                                cJSON_IsString(beh) ? beh->valuestring : "(missing)");
        int invert = get_bool(p, "invert", 0);
        if (invert < 0)
            return sglc_err_set(err, SGLC_ERR_FORMAT, "tokenizer.json: Split invert not boolean");
        char *pattern = cJSON_IsString(re)
                            ? sglc_pretok_translate_regex(re->valuestring, strlen(re->valuestring))
                            : strdup(lit->valuestring);
        return add_step(b, pattern, !cJSON_IsString(re), (sglc_split_behavior)behavior, invert,
                        err);
    }
    return sglc_err_set(err, SGLC_ERR_UNSUPPORTED,
                        "tokenizer.json: pre_tokenizer '%.64s' is not supported (supported: "
                        "ByteLevel, Split, Digits, Sequence)",
                        type);
}

static int check_decoder(const cJSON *d, int depth, sglc_err *err) {
    if (!d || cJSON_IsNull(d))
        return sglc_err_set(err, SGLC_ERR_UNSUPPORTED,
                            "tokenizer.json: no decoder (a ByteLevel decoder is required)");
    const char *type = type_of(d);
    if (type && strcmp(type, "ByteLevel") == 0) return SGLC_OK;
    if (type && strcmp(type, "Sequence") == 0 && depth < 8) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(d, "decoders"), *it;
        if (cJSON_GetArraySize(list) != 1)
            return sglc_err_set(err, SGLC_ERR_UNSUPPORTED,
                                "tokenizer.json: decoder Sequence other than [ByteLevel] is not "
                                "supported");
        cJSON_ArrayForEach(it, list) return check_decoder(it, depth + 1, err);
    }
    return sglc_err_set(err, SGLC_ERR_UNSUPPORTED,
                        "tokenizer.json: decoder '%.64s' is not supported (only ByteLevel)",
                        type ? type : "(no type)");
}

/* --- vocab, added tokens, merges --- */

static int parse_vocab(hf_build *b, const cJSON *model, const cJSON *added, sglc_err *err) {
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab"), *it;
    if (!cJSON_IsObject(vocab))
        return sglc_err_set(err, SGLC_ERR_FORMAT, "tokenizer.json: model.vocab is not an object");
    if (added && !cJSON_IsArray(added))
        return sglc_err_set(err, SGLC_ERR_FORMAT, "tokenizer.json: added_tokens is not a list");
    const int64_t max_id = INT32_MAX / 4 - 1;
    int64_t max = -1, n_entries = 0, id;
    cJSON_ArrayForEach(it, vocab) {
        if (get_id(it, max_id, &id))
            return sglc_err_set(err, SGLC_ERR_FORMAT,
                                "tokenizer.json: vocab token '%.64s' has a bad id",
                                it->string ? it->string : "");
        if (id > max) max = id;
        n_entries++;
    }
    cJSON_ArrayForEach(it, added) {
        if (get_id(cJSON_GetObjectItemCaseSensitive(it, "id"), max_id, &id))
            return sglc_err_set(err, SGLC_ERR_FORMAT, "tokenizer.json: added token with a bad id");
        if (id > max) max = id;
        n_entries++;
    }
    if (max < 0) return sglc_err_set(err, SGLC_ERR_FORMAT, "tokenizer.json: empty vocab");
    if (max + 1 > n_entries + MAX_ID_GAPS)
        return sglc_err_set(
            err, SGLC_ERR_FORMAT,
            "tokenizer.json: token ids go up to %lld but only %lld tokens are given",
            (long long)max, (long long)n_entries);
    int32_t n = (int32_t)(max + 1);
    b->n_vocab = n;
    b->texts = calloc((size_t)n, sizeof *b->texts);
    b->lens = calloc((size_t)n, sizeof *b->lens);
    b->types = calloc((size_t)n, sizeof *b->types);
    b->xattr = calloc((size_t)n, 1);
    b->src = calloc((size_t)n, 1);
    if (!b->texts || !b->lens || !b->types || !b->xattr || !b->src)
        return sglc_err_set(err, SGLC_ERR_NOMEM, "out of memory");

    cJSON_ArrayForEach(it, vocab) {
        get_id(it, max_id, &id);
        if (b->src[id])
            return sglc_err_set(
                err, SGLC_ERR_FORMAT,
                "tokenizer.json: vocab id %lld is given to both '%.64s' and '%.64s'", (long long)id,
                b->texts[id], it->string);
        b->texts[id] = it->string;
        b->lens[id] = strlen(it->string);
        b->types[id] = SGLC_TOKEN_TYPE_NORMAL;
        b->src[id] = 1;
    }
    cJSON_ArrayForEach(it, added) {
        get_id(cJSON_GetObjectItemCaseSensitive(it, "id"), max_id, &id);
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(it, "content");
        if (!cJSON_IsString(content) || !content->valuestring[0])
            return sglc_err_set(err, SGLC_ERR_FORMAT,
                                "tokenizer.json: added token %lld has no content", (long long)id);
        const char *c = content->valuestring;
        int special = get_bool(it, "special", 0), lstrip = get_bool(it, "lstrip", 0),
            rstrip = get_bool(it, "rstrip", 0), single = get_bool(it, "single_word", 0);
        if (special < 0 || lstrip < 0 || rstrip < 0 || single < 0)
            return sglc_err_set(err, SGLC_ERR_FORMAT,
                                "tokenizer.json: added token %lld '%.64s' has a non-boolean flag",
                                (long long)id, c);
        if (single)
            return sglc_err_set(err, SGLC_ERR_UNSUPPORTED,
                                "tokenizer.json: added token %lld '%.64s' is single_word, which is "
                                "not supported",
                                (long long)id, c);
        if (b->src[id] && strcmp(b->texts[id], c) != 0)
            return sglc_err_set(err, SGLC_ERR_FORMAT,
                                "tokenizer.json: added token %lld '%.64s' collides with %s token "
                                "'%.64s' of the same id",
                                (long long)id, c, b->src[id] == 1 ? "vocab" : "added",
                                b->texts[id]);
        b->texts[id] = c;
        b->lens[id] = strlen(c);
        b->types[id] = special ? SGLC_TOKEN_TYPE_CONTROL : SGLC_TOKEN_TYPE_USER_DEFINED;
        b->xattr[id] =
            (uint8_t)((lstrip ? SGLC_TOK_ATTR_LSTRIP : 0) | (rstrip ? SGLC_TOK_ATTR_RSTRIP : 0));
        b->src[id] = 2;
    }
    /* ids nobody names get texts no input can produce (0xFF never occurs in UTF-8) */
    int64_t gaps = 0;
    for (int32_t i = 0; i < n; i++)
        gaps += !b->src[i];
    if (gaps) {
        b->placeholders = malloc((size_t)gaps * 24);
        if (!b->placeholders) return sglc_err_set(err, SGLC_ERR_NOMEM, "out of memory");
        char *p = b->placeholders;
        for (int32_t i = 0; i < n; i++) {
            if (b->src[i]) continue;
            int len = snprintf(p, 24, "\xff<unused_%d>", i);
            b->texts[i] = p;
            b->lens[i] = (size_t)len;
            b->types[i] = SGLC_TOKEN_TYPE_UNUSED;
            p += len + 1;
        }
    }
    return SGLC_OK;
}

static int parse_merges(hf_build *b, const cJSON *model, sglc_err *err) {
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges"), *it;
    if (!merges || cJSON_IsNull(merges)) return SGLC_OK;
    if (!cJSON_IsArray(merges))
        return sglc_err_set(err, SGLC_ERR_FORMAT, "tokenizer.json: model.merges is not a list");
    int64_t n = cJSON_GetArraySize(merges);
    if (n == 0) return SGLC_OK;
    b->ml = malloc((size_t)n * sizeof *b->ml);
    b->mr = malloc((size_t)n * sizeof *b->mr);
    b->mll = malloc((size_t)n * sizeof *b->mll);
    b->mrl = malloc((size_t)n * sizeof *b->mrl);
    if (!b->ml || !b->mr || !b->mll || !b->mrl)
        return sglc_err_set(err, SGLC_ERR_NOMEM, "out of memory");
    int64_t i = 0;
    cJSON_ArrayForEach(it, merges) {
        if (cJSON_IsString(it)) {
            /* HF splits on ' ' and wants exactly two parts */
            const char *s = it->valuestring, *sp = strchr(s, ' ');
            if (!sp || strchr(sp + 1, ' '))
                return sglc_err_set(
                    err, SGLC_ERR_FORMAT,
                    "tokenizer.json: merge %lld '%.64s' is not two tokens separated "
                    "by one space",
                    (long long)i, s);
            b->ml[i] = s;
            b->mll[i] = (size_t)(sp - s);
            b->mr[i] = sp + 1;
            b->mrl[i] = strlen(sp + 1);
        } else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2 &&
                   cJSON_IsString(cJSON_GetArrayItem(it, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(it, 1))) {
            b->ml[i] = cJSON_GetArrayItem(it, 0)->valuestring;
            b->mr[i] = cJSON_GetArrayItem(it, 1)->valuestring;
            b->mll[i] = strlen(b->ml[i]);
            b->mrl[i] = strlen(b->mr[i]);
        } else {
            return sglc_err_set(err, SGLC_ERR_FORMAT,
                                "tokenizer.json: merge %lld is neither \"a b\" nor [\"a\", \"b\"]",
                                (long long)i);
        }
        i++;
    }
    b->n_merges = i;
    return SGLC_OK;
}

/* Linear search: used a handful of times per open. */
static int32_t find_text(const hf_build *b, const char *s) {
    size_t n = strlen(s);
    for (int32_t i = 0; i < b->n_vocab; i++) {
        if (b->lens[i] == n && memcmp(b->texts[i], s, n) == 0) return i;
    }
    return -1;
}

/* bos_token / eos_token: a string, an AddedToken object {content: ...}, or null. */
static const char *token_string(const cJSON *v) {
    if (cJSON_IsString(v)) return v->valuestring;
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(v, "content");
    return cJSON_IsString(c) ? c->valuestring : NULL;
}

/* Does a TemplateProcessing post-processor put `bos` first (the HF way to add bos)? */
static int post_adds_bos(const cJSON *pp, const char *bos, int depth) {
    const char *type = type_of(pp);
    if (!type || !bos || depth > 8) return 0;
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(pp, "processors")) {
            if (post_adds_bos(it, bos, depth + 1)) return 1;
        }
        return 0;
    }
    if (strcmp(type, "TemplateProcessing") != 0) return 0;
    const cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(pp, "single"), 0);
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(first, "SpecialToken");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(st, "id");
    return cJSON_IsString(id) && strcmp(id->valuestring, bos) == 0;
}

static int parse_json(cJSON **out, const char *what, const char *s, size_t len, sglc_err *err) {
    *out = NULL;
    if (!s) return SGLC_OK;
    *out = cJSON_ParseWithLength(s, len);
    if (!*out) {
        const char *at = cJSON_GetErrorPtr();
        size_t off = at && at >= s && at <= s + len ? (size_t)(at - s) : 0;
        return sglc_err_set(err, SGLC_ERR_FORMAT, "%s: not valid JSON (near byte %zu)", what, off);
    }
    if (!cJSON_IsObject(*out))
        return sglc_err_set(err, SGLC_ERR_FORMAT, "%s: not a JSON object", what);
    return SGLC_OK;
}

int sglc_tokenizer_open_hf_mem(sglc_tokenizer **out, const char *tok_json, size_t tok_len,
                               const char *config_json, size_t config_len, const char *gen_json,
                               size_t gen_len, const char *template_file, sglc_err *err) {
    *out = NULL;
    hf_build b;
    memset(&b, 0, sizeof b);
    cJSON *root = NULL, *cfg = NULL, *gen = NULL;
    int32_t *eog = NULL;
    size_t n_eog = 0;
    int rc;
    if ((rc = parse_json(&root, "tokenizer.json", tok_json, tok_len, err)) ||
        (rc = parse_json(&cfg, "tokenizer_config.json", config_json, config_len, err)) ||
        (rc = parse_json(&gen, "generation_config.json", gen_json, gen_len, err)))
        goto cleanup;
    if (!root) {
        rc = sglc_err_set(err, SGLC_ERR_ARG, "no tokenizer.json");
        goto cleanup;
    }

    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model)) {
        rc = sglc_err_set(err, SGLC_ERR_FORMAT, "tokenizer.json: no model object");
        goto cleanup;
    }
    const char *mtype = type_of(model);
    if (mtype ? strcmp(mtype, "BPE") != 0 : !cJSON_GetObjectItemCaseSensitive(model, "merges")) {
        rc = sglc_err_set(err, SGLC_ERR_UNSUPPORTED,
                          "tokenizer.json: model type '%.64s' is not supported (only BPE)",
                          mtype ? mtype : "(untyped, no merges)");
        goto cleanup;
    }
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (dropout && !cJSON_IsNull(dropout) &&
        !(cJSON_IsNumber(dropout) && dropout->valuedouble == 0)) {
        rc =
            sglc_err_set(err, SGLC_ERR_UNSUPPORTED, "tokenizer.json: BPE dropout is not supported");
        goto cleanup;
    }
    static const char *const affixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (size_t k = 0; k < 2; k++) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(model, affixes[k]);
        if (a && !cJSON_IsNull(a) && !(cJSON_IsString(a) && !a->valuestring[0])) {
            rc = sglc_err_set(err, SGLC_ERR_UNSUPPORTED, "tokenizer.json: BPE %s is not supported",
                              affixes[k]);
            goto cleanup;
        }
    }
    int ignore_merges = get_bool(model, "ignore_merges", 0);
    int byte_fallback = get_bool(model, "byte_fallback", 0);
    if (ignore_merges < 0 || byte_fallback < 0) {
        rc = sglc_err_set(err, SGLC_ERR_FORMAT,
                          "tokenizer.json: ignore_merges/byte_fallback not boolean");
        goto cleanup;
    }

    if ((rc = parse_normalizer(&b, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), 0, err)) ||
        (rc = parse_pretok(&b, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), 0, err)))
        goto cleanup;
    if (!b.have_byte_level) {
        rc = sglc_err_set(err, SGLC_ERR_UNSUPPORTED,
                          byte_fallback ? "tokenizer.json: byte_fallback BPE without a ByteLevel "
                                          "pre-tokenizer (SentencePiece style) is not supported"
                                        : "tokenizer.json: no ByteLevel pre-tokenizer (only "
                                          "byte-level BPE is supported)");
        goto cleanup;
    }
    if ((rc = check_decoder(cJSON_GetObjectItemCaseSensitive(root, "decoder"), 0, err)) ||
        (rc =
             parse_vocab(&b, model, cJSON_GetObjectItemCaseSensitive(root, "added_tokens"), err)) ||
        (rc = parse_merges(&b, model, err)))
        goto cleanup;

    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    if (cJSON_IsString(unk) && find_text(&b, unk->valuestring) < 0) {
        rc =
            sglc_err_set(err, SGLC_ERR_FORMAT,
                         "tokenizer.json: unk_token '%.64s' is not in the vocab", unk->valuestring);
        goto cleanup;
    }

    /* tokenizer_config.json */
    sglc_tokenizer_vocab_desc d;
    memset(&d, 0, sizeof d);
    d.bos = d.eos = d.eot = d.eom = -1;
    d.add_bos = 0;
    d.n_tokens = b.n_vocab;
    d.tokens = b.texts;
    d.token_lens = b.lens;
    d.token_types = b.types;
    d.n_token_types = b.n_vocab;
    const char *bos_text = NULL;
    const char *chat_template = NULL;
    int clean = 0;
    if (cfg) {
        static const char *const keys[] = {"bos_token", "eos_token"};
        int64_t *dst[] = {&d.bos, &d.eos};
        for (size_t k = 0; k < 2; k++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, keys[k]);
            if (!v || cJSON_IsNull(v)) continue;
            const char *s = token_string(v);
            if (!s) {
                rc = sglc_err_set(err, SGLC_ERR_FORMAT, "tokenizer_config.json: %s is not a token",
                                  keys[k]);
                goto cleanup;
            }
            int32_t id = find_text(&b, s);
            if (id < 0) {
                rc = sglc_err_set(err, SGLC_ERR_FORMAT,
                                  "tokenizer_config.json: %s '%.64s' is not in the vocab", keys[k],
                                  s);
                goto cleanup;
            }
            *dst[k] = id;
            if (k == 0) bos_text = s;
        }
        int ab = get_bool(cfg, "add_bos_token", -2);
        clean = get_bool(cfg, "clean_up_tokenization_spaces", 0);
        if (ab == -1 || clean < 0) {
            rc = sglc_err_set(err, SGLC_ERR_FORMAT,
                              "tokenizer_config.json: add_bos_token / "
                              "clean_up_tokenization_spaces not boolean");
            goto cleanup;
        }
        d.add_bos = ab >= 0
                        ? ab
                        : post_adds_bos(cJSON_GetObjectItemCaseSensitive(root, "post_processor"),
                                        bos_text, 0);
        const cJSON *ct = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template");
        if (cJSON_IsString(ct)) {
            chat_template = ct->valuestring;
        } else if (cJSON_IsArray(ct)) {
            const cJSON *it;
            cJSON_ArrayForEach(it, ct) {
                const cJSON *name = cJSON_GetObjectItemCaseSensitive(it, "name");
                const cJSON *tmpl = cJSON_GetObjectItemCaseSensitive(it, "template");
                if (cJSON_IsString(name) && cJSON_IsString(tmpl) &&
                    strcmp(name->valuestring, "default") == 0)
                    chat_template = tmpl->valuestring;
            }
        } else if (ct && !cJSON_IsNull(ct)) {
            rc =
                sglc_err_set(err, SGLC_ERR_FORMAT,
                             "tokenizer_config.json: chat_template is neither a string nor a list");
            goto cleanup;
        }
    }
    if (!chat_template) chat_template = template_file;

    /* generation_config.json: eos_token_id, an id or a list of ids, all end generation */
    const cJSON *geos = gen ? cJSON_GetObjectItemCaseSensitive(gen, "eos_token_id") : NULL;
    if (geos && !cJSON_IsNull(geos)) {
        int list = cJSON_IsArray(geos);
        size_t n = list ? (size_t)cJSON_GetArraySize(geos) : 1;
        eog = malloc((n ? n : 1) * sizeof *eog);
        if (!eog) {
            rc = sglc_err_set(err, SGLC_ERR_NOMEM, "out of memory");
            goto cleanup;
        }
        const cJSON *it = list ? geos->child : geos;
        for (size_t k = 0; k < n; k++, it = it->next) {
            int64_t id;
            if (get_id(it, INT32_MAX, &id)) {
                rc = sglc_err_set(
                    err, SGLC_ERR_FORMAT,
                    "generation_config.json: eos_token_id is not an id or a list of ids");
                goto cleanup;
            }
            eog[n_eog++] = (int32_t)id;
        }
        if (d.eos < 0 && n_eog && eog[0] < b.n_vocab) d.eos = eog[0];
    }

    sglc_tokenizer_hf_ext ext;
    memset(&ext, 0, sizeof ext);
    ext.steps = b.steps;
    ext.n_steps = b.n_steps;
    ext.flags = (sglc_pretok_flags){clean, ignore_merges, d.add_bos};
    ext.norm = b.norm;
    ext.prefix_space = b.prefix_space;
    ext.n_merge_pairs = b.n_merges;
    ext.merge_left = b.ml;
    ext.merge_right = b.mr;
    ext.merge_left_len = b.mll;
    ext.merge_right_len = b.mrl;
    ext.extra_attr = b.xattr;
    ext.eog_ids = eog;
    ext.n_eog_ids = n_eog;
    ext.chat_template = chat_template;
    rc = sglc_tokenizer_open_vocab_ext(out, &d, &ext, err);
cleanup:
    free(eog);
    build_free(&b);
    cJSON_Delete(root);
    cJSON_Delete(cfg);
    cJSON_Delete(gen);
    return rc;
}

/* Reads dir/name; returns 0 with the bytes, 1 when an optional file is absent, or < 0. */
static int read_file(const char *dir, const char *name, char **out, size_t *len, int required,
                     sglc_err *err) {
    *out = NULL;
    *len = 0;
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
        return sglc_err_set(err, SGLC_ERR_ARG, "path too long: %s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (!required && errno == ENOENT) return 1;
        return sglc_err_set(err, SGLC_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    }
    int rc = SGLC_OK;
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0) size = ftell(f);
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) {
        rc = sglc_err_set(err, SGLC_ERR_IO, "cannot read %s", path);
    } else if ((unsigned long)size > MAX_JSON_BYTES) {
        rc = sglc_err_set(err, SGLC_ERR_FORMAT, "%s is %ld bytes (at most %zu)", path, size,
                          MAX_JSON_BYTES);
    } else if (!(*out = malloc((size_t)size + 1))) {
        rc = sglc_err_set(err, SGLC_ERR_NOMEM, "out of memory");
    } else if (fread(*out, 1, (size_t)size, f) != (size_t)size) {
        rc = sglc_err_set(err, SGLC_ERR_IO, "cannot read %s", path);
    } else {
        (*out)[size] = 0;
        *len = (size_t)size;
    }
    fclose(f);
    if (rc) {
        free(*out);
        *out = NULL;
    }
    return rc;
}

int sglc_tokenizer_open_hf(sglc_tokenizer **out, const char *dir, sglc_err *err) {
    *out = NULL;
    char *tok = NULL, *cfg = NULL, *gen = NULL, *tmpl = NULL;
    size_t tl, cl, gl, ml;
    int rc = read_file(dir, "tokenizer.json", &tok, &tl, 1, err);
    if (rc) goto cleanup;
    if ((rc = read_file(dir, "tokenizer_config.json", &cfg, &cl, 0, err)) < 0 ||
        (rc = read_file(dir, "generation_config.json", &gen, &gl, 0, err)) < 0 ||
        (rc = read_file(dir, "chat_template.jinja", &tmpl, &ml, 0, err)) < 0)
        goto cleanup;
    if (tmpl && memchr(tmpl, 0, ml)) {
        free(tmpl);
        tmpl = NULL;
    }
    rc = sglc_tokenizer_open_hf_mem(out, tok, tl, cfg, cl, gen, gl, tmpl, err);
cleanup:
    free(tok);
    free(cfg);
    free(gen);
    free(tmpl);
    return rc;
}
