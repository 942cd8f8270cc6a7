/* Vocab loading and decoding: reads tokenizer.ggml.* from a GGUF (or plain arrays), validates
 * ROBUSTNESS.md §26, and builds the immutable sglc_tokenizer: token texts, attributes, the
 * text->id and merge hash maps, the byte-level tables, the special-token list and the decoded
 * piece of every token. Behaviour mirrors llama.cpp's llama_vocab::impl::load for "gpt2"
 * vocabs; where llama.cpp only warns on a broken vocab (bos/eos out of range, duplicate token
 * texts it asserts on, merges naming unknown tokens) we refuse the file with a message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_impl.h"

/* llama.cpp's end-of-generation texts (llama_vocab::impl::load): tokens with these texts are
 * EOG and get the control attribute. */
static const char *const k_eog_texts[] = {
    "<|eot_id|>", "<|im_end|>",      "<|end|>", "<end_of_turn>", "<|endoftext|>",
    "<|eom_id|>", "<|end_of_text|>", "<EOT>",   "_<EOT>",        "<end_of_utterance>",
};

void sglc_tokenizer_close(sglc_tokenizer *t) {
    if (!t) return;
    free(t->text_pool);
    free(t->text_off);
    free(t->piece_pool);
    free(t->piece_off);
    free(t->attr);
    free(t->eog);
    free(t->text_map);
    free(t->merge_keys);
    free(t->merge_rank);
    free(t->merge_result);
    free(t->specials);
    free(t->chat_template);
    sglc_pretok_close(t->pretok);
    free(t);
}

static uint64_t pow2_at_least(uint64_t n) {
    uint64_t c = 16;
    while (c < n)
        c *= 2;
    return c;
}

static void build_byte_tables(sglc_tokenizer *t) {
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int self = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        t->byte_to_cpt[b] = self ? (uint32_t)b : (uint32_t)(256 + n++);
    }
    for (int c = 0; c < 324; c++)
        t->cpt_to_byte[c] = -1;
    for (int b = 0; b < 256; b++)
        t->cpt_to_byte[t->byte_to_cpt[b]] = (int16_t)b;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* llama_decode_text: byte-level text back to bytes; a character outside the byte map is
 * spelled out as llama.cpp does. Writes into out (NULL = measure) and returns the length. */
static size_t decode_byte_level(const sglc_tokenizer *t, const char *txt, size_t n, char *out) {
    const unsigned char *s = (const unsigned char *)txt;
    size_t m = 0;
    for (size_t i = 0; i < n;) {
        size_t k;
        uint32_t cpt = sglc_utf8_decode_lenient(s + i, n - i, &k);
        i += k;
        if (cpt < 324 && t->cpt_to_byte[cpt] >= 0) {
            if (out) out[m] = (char)t->cpt_to_byte[cpt];
            m++;
            continue;
        }
        unsigned char u[4];
        size_t ul = sglc_utf8_encode(cpt, u);
        char tmp[16];
        const char *pre = "[UNK_BYTE_0x";
        size_t pl = strlen(pre);
        if (out) memcpy(out + m, pre, pl);
        m += pl;
        for (size_t j = 0; j < ul; j++) {
            snprintf(tmp, sizeof tmp, "%02x", u[j]);
            if (out) memcpy(out + m, tmp, 2);
            m += 2;
        }
        if (out) memcpy(out + m, txt, n);
        m += n;
        if (out) out[m] = ']';
        m++;
    }
    return m;
}

/* HF's ByteLevel decoder: a token all of whose characters are byte-level characters decodes
 * to those bytes, any other token to its own UTF-8 text. */
static size_t decode_byte_level_hf(const sglc_tokenizer *t, const char *txt, size_t n, char *out) {
    const unsigned char *s = (const unsigned char *)txt;
    size_t m = 0;
    for (size_t i = 0; i < n;) {
        size_t k;
        uint32_t cpt = sglc_utf8_decode_lenient(s + i, n - i, &k);
        i += k;
        if (cpt >= 324 || t->cpt_to_byte[cpt] < 0) {
            if (out) memcpy(out, txt, n);
            return n;
        }
        m++;
    }
    if (out) {
        m = 0;
        for (size_t i = 0; i < n;) {
            size_t k;
            uint32_t cpt = sglc_utf8_decode_lenient(s + i, n - i, &k);
            i += k;
            out[m++] = (char)t->cpt_to_byte[cpt];
        }
    }
    return m;
}

/* token_to_piece(special = true) for a "gpt2" vocab. */
static size_t token_piece(const sglc_tokenizer *t, int32_t id, char *out) {
    size_t n;
    const char *txt = sglc_tok_text(t, id, &n);
    uint8_t a = t->attr[id];
    if (t->hf) {
        if (a & SGLC_TOK_ATTR_UNUSED) return 0;
        return decode_byte_level_hf(t, txt, n, out);
    }
    if (a & (SGLC_TOK_ATTR_UNKNOWN | SGLC_TOK_ATTR_CONTROL | SGLC_TOK_ATTR_USER_DEFINED)) {
        if (out) memcpy(out, txt, n);
        return n;
    }
    if (a & SGLC_TOK_ATTR_NORMAL) return decode_byte_level(t, txt, n, out);
    if (a & SGLC_TOK_ATTR_BYTE) {
        if (out) out[0] = (char)(hexval(txt[3]) * 16 + hexval(txt[4]));
        return 1;
    }
    return 0;
}

static uint8_t attr_of_type(int32_t type) {
    switch (type) {
    case SGLC_TOKEN_TYPE_NORMAL: return SGLC_TOK_ATTR_NORMAL;
    case SGLC_TOKEN_TYPE_UNKNOWN: return SGLC_TOK_ATTR_UNKNOWN;
    case SGLC_TOKEN_TYPE_CONTROL: return SGLC_TOK_ATTR_CONTROL;
    case SGLC_TOKEN_TYPE_USER_DEFINED: return SGLC_TOK_ATTR_USER_DEFINED;
    case SGLC_TOKEN_TYPE_UNUSED: return SGLC_TOK_ATTR_UNUSED;
    case SGLC_TOKEN_TYPE_BYTE: return SGLC_TOK_ATTR_BYTE;
    default: return 0; /* undefined: decodes to nothing, never matched as special */
    }
}

typedef struct {
    uint64_t len;
    int32_t id;
} special_key;

static int cmp_special(const void *a, const void *b) {
    const special_key *x = a, *y = b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int sort_specials(sglc_tokenizer *t) {
    if (t->n_specials < 2) return 0;
    special_key *k = malloc((size_t)t->n_specials * sizeof *k);
    if (!k) return -1;
    for (int32_t i = 0; i < t->n_specials; i++) {
        int32_t id = t->specials[i];
        k[i] = (special_key){t->text_off[id + 1] - t->text_off[id], id};
    }
    qsort(k, (size_t)t->n_specials, sizeof *k, cmp_special);
    for (int32_t i = 0; i < t->n_specials; i++)
        t->specials[i] = k[i].id;
    free(k);
    return 0;
}

int sglc_tokenizer_open_vocab(sglc_tokenizer **out, const sglc_tokenizer_vocab_desc *v,
                              sglc_err *err) {
    return sglc_tokenizer_open_vocab_ext(out, v, NULL, err);
}

/* Looks up a merge's parts and result and inserts it; refuses parts that are not tokens. */
static int add_merge(sglc_tokenizer *t, int64_t i, const char *l, size_t ll, const char *r,
                     size_t rl, char **tmp, size_t *tmp_cap, int need_result, sglc_err *err) {
    int32_t li = sglc_tok_lookup(t, l, ll), ri = sglc_tok_lookup(t, r, rl);
    if (li < 0 || ri < 0) {
        const char *bad = li < 0 ? l : r;
        size_t bl = li < 0 ? ll : rl;
        return sglc_err_set(err, SGLC_ERR_FORMAT,
                            "merge %lld '%.*s %.*s' names '%.*s', not in the vocab", (long long)i,
                            (int)(ll > 32 ? 32 : ll), l, (int)(rl > 32 ? 32 : rl), r,
                            (int)(bl > 32 ? 32 : bl), bad);
    }
    if (ll + rl > *tmp_cap) {
        free(*tmp);
        *tmp_cap = (ll + rl) * 2;
        *tmp = malloc(*tmp_cap);
        if (!*tmp) return sglc_err_set(err, SGLC_ERR_NOMEM, "out of memory");
    }
    memcpy(*tmp, l, ll);
    memcpy(*tmp + ll, r, rl);
    int32_t merged = sglc_tok_lookup(t, *tmp, ll + rl);
    if (merged < 0 && need_result) {
        return sglc_err_set(err, SGLC_ERR_FORMAT,
                            "merge %lld '%.*s %.*s' makes '%.*s', which is not in the vocab",
                            (long long)i, (int)(ll > 32 ? 32 : ll), l, (int)(rl > 32 ? 32 : rl), r,
                            (int)(ll + rl > 64 ? 64 : ll + rl), *tmp);
    }
    sglc_tok_merge_insert(t, li, ri, (int32_t)i, merged);
    return SGLC_OK;
}

int sglc_tokenizer_open_vocab_ext(sglc_tokenizer **out, const sglc_tokenizer_vocab_desc *v,
                                  const sglc_tokenizer_hf_ext *ext, sglc_err *err) {
    *out = NULL;
    int rc = SGLC_ERR_NOMEM;
    char *tmp = NULL;
    sglc_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return sglc_err_set(err, SGLC_ERR_NOMEM, "out of memory");

    if (v->model && strcmp(v->model, "gpt2") != 0) {
        rc = sglc_err_set(err, SGLC_ERR_UNSUPPORTED,
                          "tokenizer.ggml.model '%s' is not supported (only byte-level BPE 'gpt2')",
                          v->model);
        goto cleanup;
    }
    if (ext) {
        rc = sglc_pretok_open_steps(&t->pretok, ext->steps, ext->n_steps, err);
        t->flags = ext->flags;
        t->hf = 1;
        t->norm = ext->norm;
        t->prefix_space = ext->prefix_space;
    } else {
        rc = sglc_pretok_open(&t->pretok, v->pre, v->regexes, v->n_regexes, &t->flags, err);
    }
    if (rc) goto cleanup;

    if (v->n_tokens <= 0 || v->n_tokens > INT32_MAX / 4 || !v->tokens) {
        rc = sglc_err_set(err, SGLC_ERR_FORMAT, "tokenizer.ggml.tokens: bad token count %lld",
                          (long long)v->n_tokens);
        goto cleanup;
    }
    if (v->token_types && v->n_token_types != v->n_tokens) {
        rc = sglc_err_set(err, SGLC_ERR_FORMAT,
                          "tokenizer.ggml.token_type has %lld entries for %lld tokens",
                          (long long)v->n_token_types, (long long)v->n_tokens);
        goto cleanup;
    }
    int32_t n = (int32_t)v->n_tokens;
    t->n_vocab = n;
    rc = SGLC_ERR_NOMEM;
    t->text_off = malloc(((size_t)n + 1) * sizeof *t->text_off);
    t->attr = calloc((size_t)n, 1);
    t->eog = calloc((size_t)n, 1);
    if (!t->text_off || !t->attr || !t->eog) goto cleanup;

    /* token texts; llama.cpp renames empty ones to "[EMPTY_<id>]" */
    uint64_t total = 0;
    for (int32_t i = 0; i < n; i++) {
        size_t len = v->token_lens ? v->token_lens[i] : strlen(v->tokens[i]);
        if (len > UINT32_MAX) {
            rc = sglc_err_set(err, SGLC_ERR_FORMAT, "token %d is %zu bytes long", i, len);
            goto cleanup;
        }
        total += len ? len : 24;
    }
    t->text_pool = malloc(total + 1);
    if (!t->text_pool) goto cleanup;
    uint64_t off = 0;
    for (int32_t i = 0; i < n; i++) {
        size_t len = v->token_lens ? v->token_lens[i] : strlen(v->tokens[i]);
        t->text_off[i] = off;
        if (len) {
            memcpy(t->text_pool + off, v->tokens[i], len);
            off += len;
        } else {
            off += (uint64_t)snprintf(t->text_pool + off, 24, "[EMPTY_%d]", i);
        }
    }
    t->text_off[n] = off;

    t->text_map_mask = pow2_at_least((uint64_t)n * 2) - 1;
    t->text_map = malloc((t->text_map_mask + 1) * sizeof *t->text_map);
    if (!t->text_map) goto cleanup;
    memset(t->text_map, 0xff, (t->text_map_mask + 1) * sizeof *t->text_map);
    for (int32_t i = 0; i < n; i++) {
        int32_t dup = sglc_tok_insert(t, i);
        if (dup >= 0) {
            size_t len;
            const char *s = sglc_tok_text(t, i, &len);
            rc = sglc_err_set(err, SGLC_ERR_FORMAT, "tokens %d and %d have the same text '%.*s'",
                              dup, i, (int)(len > 64 ? 64 : len), s);
            goto cleanup;
        }
    }

    for (int32_t i = 0; i < n; i++) {
        t->attr[i] = v->token_types ? attr_of_type(v->token_types[i]) : SGLC_TOK_ATTR_NORMAL;
        if (ext && ext->extra_attr)
            t->attr[i] |= ext->extra_attr[i] & (SGLC_TOK_ATTR_LSTRIP | SGLC_TOK_ATTR_RSTRIP);
        if (t->attr[i] & SGLC_TOK_ATTR_BYTE) {
            size_t len;
            const char *s = sglc_tok_text(t, i, &len);
            if (len != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>' || hexval(s[3]) < 0 ||
                hexval(s[4]) < 0) {
                rc = sglc_err_set(err, SGLC_ERR_FORMAT,
                                  "byte token %d has text '%.*s', expected <0xHH>", i,
                                  (int)(len > 32 ? 32 : len), s);
                goto cleanup;
            }
        }
    }
    for (size_t k = 0; k < sizeof k_eog_texts / sizeof k_eog_texts[0]; k++) {
        int32_t id = sglc_tok_lookup(t, k_eog_texts[k], strlen(k_eog_texts[k]));
        if (id >= 0) {
            t->eog[id] = 1;
            /* tokenizer.json says itself which tokens are special */
            if (!t->hf) t->attr[id] |= SGLC_TOK_ATTR_CONTROL;
        }
    }

    struct {
        const char *name;
        int64_t id;
        int32_t *dst;
        int required_in_range;
    } ids[] = {{"bos", v->bos, &t->bos, 1},
               {"eos", v->eos, &t->eos, 1},
               {"eot", v->eot, &t->eot, 0},
               {"eom", v->eom, &t->eom, 0}};
    for (size_t k = 0; k < sizeof ids / sizeof ids[0]; k++) {
        *ids[k].dst = -1;
        if (ids[k].id < 0) continue;
        if (ids[k].id >= n) {
            if (ids[k].required_in_range) {
                rc = sglc_err_set(
                    err, SGLC_ERR_FORMAT,
                    "tokenizer.ggml.%s_token_id = %lld is outside the vocab (%d tokens)",
                    ids[k].name, (long long)ids[k].id, n);
                goto cleanup;
            }
            SGLC_LOG_WARN("tokenizer: %s token id %lld out of range, ignored", ids[k].name,
                          (long long)ids[k].id);
            continue;
        }
        *ids[k].dst = (int32_t)ids[k].id;
        if (k > 0) t->eog[ids[k].id] = 1; /* eos, eot, eom end generation */
    }
    t->add_bos = v->add_bos >= 0 ? v->add_bos : t->flags.add_bos;
    for (size_t k = 0; ext && k < ext->n_eog_ids; k++) {
        if (ext->eog_ids[k] < 0 || ext->eog_ids[k] >= n) {
            rc = sglc_err_set(err, SGLC_ERR_FORMAT,
                              "eos_token_id %d is outside the vocab (%d tokens)", ext->eog_ids[k],
                              n);
            goto cleanup;
        }
        t->eog[ext->eog_ids[k]] = 1;
    }
    if (ext && ext->chat_template) {
        t->chat_template = strdup(ext->chat_template);
        if (!t->chat_template) goto cleanup;
    }

    /* merges: "left right", split at the first space after position 0 (llama.cpp) */
    if (v->n_merges < 0 || v->n_merges > INT32_MAX / 4 || (v->n_merges && !v->merges)) {
        rc = sglc_err_set(err, SGLC_ERR_FORMAT, "tokenizer.ggml.merges: bad count %lld",
                          (long long)v->n_merges);
        goto cleanup;
    }
    int64_t n_pairs = ext ? ext->n_merge_pairs : 0;
    if (n_pairs < 0 || n_pairs > INT32_MAX / 4) {
        rc = sglc_err_set(err, SGLC_ERR_FORMAT, "bad merge count %lld", (long long)n_pairs);
        goto cleanup;
    }
    if (n_pairs) {
        t->merge_mask = pow2_at_least((uint64_t)n_pairs * 2) - 1;
        size_t cap = t->merge_mask + 1;
        t->merge_keys = malloc(cap * sizeof *t->merge_keys);
        t->merge_rank = malloc(cap * sizeof *t->merge_rank);
        t->merge_result = malloc(cap * sizeof *t->merge_result);
        if (!t->merge_keys || !t->merge_rank || !t->merge_result) goto cleanup;
        memset(t->merge_keys, 0xff, cap * sizeof *t->merge_keys);
        size_t tmp_cap = 0;
        for (int64_t i = 0; i < n_pairs; i++) {
            rc = add_merge(t, i, ext->merge_left[i], ext->merge_left_len[i], ext->merge_right[i],
                           ext->merge_right_len[i], &tmp, &tmp_cap, 1, err);
            if (rc) goto cleanup;
        }
        rc = SGLC_ERR_NOMEM;
    } else if (v->n_merges) {
        t->merge_mask = pow2_at_least((uint64_t)v->n_merges * 2) - 1;
        size_t cap = t->merge_mask + 1;
        t->merge_keys = malloc(cap * sizeof *t->merge_keys);
        t->merge_rank = malloc(cap * sizeof *t->merge_rank);
        t->merge_result = malloc(cap * sizeof *t->merge_result);
        if (!t->merge_keys || !t->merge_rank || !t->merge_result) goto cleanup;
        memset(t->merge_keys, 0xff, cap * sizeof *t->merge_keys);
        size_t tmp_cap = 0;
        for (int64_t i = 0; i < v->n_merges; i++) {
            const char *m = v->merges[i];
            size_t len = v->merge_lens ? v->merge_lens[i] : strlen(m);
            const char *sp = len > 1 ? memchr(m + 1, ' ', len - 1) : NULL;
            if (!sp) {
                rc = sglc_err_set(err, SGLC_ERR_FORMAT,
                                  "merge %lld '%.*s' is not two tokens separated by a space",
                                  (long long)i, (int)(len > 64 ? 64 : len), m);
                goto cleanup;
            }
            size_t ll = (size_t)(sp - m), rl = len - ll - 1;
            int32_t l = sglc_tok_lookup(t, m, ll), r = sglc_tok_lookup(t, sp + 1, rl);
            if (l < 0 || r < 0) {
                rc = sglc_err_set(
                    err, SGLC_ERR_FORMAT, "merge %lld '%.*s' names '%.*s', not in the vocab",
                    (long long)i, (int)(len > 64 ? 64 : len), m,
                    (int)(l < 0 ? (ll > 32 ? 32 : ll) : (rl > 32 ? 32 : rl)), l < 0 ? m : sp + 1);
                goto cleanup;
            }
            if (len > tmp_cap) {
                free(tmp);
                tmp_cap = len * 2;
                tmp = malloc(tmp_cap);
                if (!tmp) goto cleanup;
            }
            memcpy(tmp, m, ll);
            memcpy(tmp + ll, sp + 1, rl);
            sglc_tok_merge_insert(t, l, r, (int32_t)i, sglc_tok_lookup(t, tmp, ll + rl));
        }
    }

    build_byte_tables(t);
    for (int b = 0; b < 256; b++) {
        unsigned char u[4];
        size_t ul = sglc_utf8_encode(t->byte_to_cpt[b], u);
        t->byte_token[b] = sglc_tok_lookup(t, (const char *)u, ul);
    }

    /* decoded pieces */
    t->piece_off = malloc(((size_t)n + 1) * sizeof *t->piece_off);
    if (!t->piece_off) goto cleanup;
    uint64_t ptotal = 0;
    for (int32_t i = 0; i < n; i++) {
        t->piece_off[i] = ptotal;
        size_t pl = token_piece(t, i, NULL);
        if (pl > t->max_piece_len) t->max_piece_len = pl;
        ptotal += pl;
    }
    t->piece_off[n] = ptotal;
    t->piece_pool = malloc(ptotal + 1);
    if (!t->piece_pool) goto cleanup;
    for (int32_t i = 0; i < n; i++)
        token_piece(t, i, t->piece_pool + t->piece_off[i]);

    /* special tokens, longest text first (llama.cpp sorts by length; ties by id here) */
    t->specials = malloc((size_t)n * sizeof *t->specials);
    if (!t->specials) goto cleanup;
    for (int32_t i = 0; i < n; i++) {
        if (t->attr[i] &
            (SGLC_TOK_ATTR_CONTROL | SGLC_TOK_ATTR_USER_DEFINED | SGLC_TOK_ATTR_UNKNOWN))
            t->specials[t->n_specials++] = i;
    }
    if (sort_specials(t)) goto cleanup;

    *out = t;
    t = NULL;
    rc = SGLC_OK;
cleanup:
    if (rc == SGLC_ERR_NOMEM && err && !err->msg[0]) sglc_err_set(err, rc, "out of memory");
    free(tmp);
    sglc_tokenizer_close(t);
    return rc;
}

/* Reads a string-array key into pointer/length arrays (borrowed from the map). */
static int read_str_array(const sglc_gguf *g, const char *key, const char ***strs, size_t **lens,
                          int64_t *count, int required, sglc_err *err) {
    *strs = NULL;
    *lens = NULL;
    *count = 0;
    int64_t kv = sglc_gguf_find_key(g, key);
    if (kv < 0) {
        if (required) return sglc_err_set(err, SGLC_ERR_FORMAT, "missing %s", key);
        return SGLC_OK;
    }
    sglc_gguf_type et;
    uint64_t n;
    const void *data;
    int rc = sglc_gguf_get_arr(g, key, &et, &n, &data, err);
    if (rc) return rc < 0 ? rc : sglc_err_set(err, SGLC_ERR_FORMAT, "missing %s", key);
    if (et != SGLC_GGUF_STRING)
        return sglc_err_set(err, SGLC_ERR_FORMAT, "%s is not an array of strings", key);
    if (n > INT32_MAX / 4)
        return sglc_err_set(err, SGLC_ERR_FORMAT, "%s: %llu entries", key, (unsigned long long)n);
    *strs = malloc((n ? n : 1) * sizeof **strs);
    *lens = malloc((n ? n : 1) * sizeof **lens);
    if (!*strs || !*lens) return sglc_err_set(err, SGLC_ERR_NOMEM, "out of memory");
    for (uint64_t i = 0; i < n; i++) {
        (*strs)[i] = sglc_gguf_get_arr_str(g, kv, i, &(*lens)[i]);
        if (!(*strs)[i])
            return sglc_err_set(err, SGLC_ERR_FORMAT, "%s[%llu] unreadable", key,
                                (unsigned long long)i);
    }
    *count = (int64_t)n;
    return SGLC_OK;
}

static int read_opt_id(const sglc_gguf *g, const char *key, int64_t *out, sglc_err *err) {
    *out = -1;
    int64_t v;
    int rc = sglc_gguf_get_i64(g, key, &v, err);
    if (rc < 0) return rc;
    if (rc == 0) {
        if (v < 0) return sglc_err_set(err, SGLC_ERR_FORMAT, "%s = %lld", key, (long long)v);
        *out = v;
    }
    return SGLC_OK;
}

static int read_opt_str(const sglc_gguf *g, const char *key, char *buf, size_t cap, sglc_err *err) {
    buf[0] = 0;
    const char *s;
    size_t len;
    int rc = sglc_gguf_get_str(g, key, &s, &len, err);
    if (rc < 0) return rc;
    if (rc == 0) {
        if (len >= cap || memchr(s, 0, len))
            return sglc_err_set(err, SGLC_ERR_FORMAT, "%s: bad value", key);
        memcpy(buf, s, len);
        buf[len] = 0;
    }
    return SGLC_OK;
}

int sglc_tokenizer_open_gguf(sglc_tokenizer **out, const sglc_gguf *g, sglc_err *err) {
    return sglc_tokenizer_open_gguf_pre(out, g, NULL, err);
}

int sglc_tokenizer_open_gguf_pre(sglc_tokenizer **out, const sglc_gguf *g, const char *pre_override,
                                 sglc_err *err) {
    *out = NULL;
    sglc_tokenizer_vocab_desc d;
    memset(&d, 0, sizeof d);
    char model[64], pre[64];
    const char **toks = NULL, **merges = NULL;
    size_t *tok_lens = NULL, *merge_lens = NULL;
    int rc;

    rc = read_opt_str(g, "tokenizer.ggml.model", model, sizeof model, err);
    if (rc) goto cleanup;
    if (!model[0]) {
        rc = sglc_err_set(err, SGLC_ERR_FORMAT, "missing tokenizer.ggml.model");
        goto cleanup;
    }
    rc = read_opt_str(g, "tokenizer.ggml.pre", pre, sizeof pre, err);
    if (rc) goto cleanup;
    if (!pre[0]) SGLC_LOG_WARN("tokenizer: missing tokenizer.ggml.pre, using 'default'");
    d.model = model;
    d.pre = pre_override ? pre_override : pre;
    if (strcmp(model, "gpt2") != 0) {
        rc = sglc_err_set(err, SGLC_ERR_UNSUPPORTED,
                          "tokenizer.ggml.model '%s' is not supported (only byte-level BPE 'gpt2')",
                          model);
        goto cleanup;
    }
    rc = read_str_array(g, "tokenizer.ggml.tokens", &toks, &tok_lens, &d.n_tokens, 1, err);
    if (rc) goto cleanup;
    d.tokens = toks;
    d.token_lens = tok_lens;
    rc = read_str_array(g, "tokenizer.ggml.merges", &merges, &merge_lens, &d.n_merges, 1, err);
    if (rc) goto cleanup;
    d.merges = merges;
    d.merge_lens = merge_lens;

    if (sglc_gguf_find_key(g, "tokenizer.ggml.token_type") >= 0) {
        sglc_gguf_type et;
        uint64_t n;
        const void *data;
        rc = sglc_gguf_get_arr(g, "tokenizer.ggml.token_type", &et, &n, &data, err);
        if (rc) goto cleanup;
        if (et != SGLC_GGUF_INT32) {
            rc = sglc_err_set(err, SGLC_ERR_FORMAT, "tokenizer.ggml.token_type is not int32");
            goto cleanup;
        }
        /* the map may be unaligned: copy */
        int32_t *types = malloc((n ? n : 1) * sizeof *types);
        if (!types) {
            rc = sglc_err_set(err, SGLC_ERR_NOMEM, "out of memory");
            goto cleanup;
        }
        memcpy(types, data, n * sizeof *types);
        d.token_types = types;
        d.n_token_types = (int64_t)n;
    }
    if ((rc = read_opt_id(g, "tokenizer.ggml.bos_token_id", &d.bos, err)) ||
        (rc = read_opt_id(g, "tokenizer.ggml.eos_token_id", &d.eos, err)) ||
        (rc = read_opt_id(g, "tokenizer.ggml.eot_token_id", &d.eot, err)) ||
        (rc = read_opt_id(g, "tokenizer.ggml.eom_token_id", &d.eom, err)))
        goto cleanup;
    int add_bos = -1;
    rc = sglc_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &add_bos, err);
    if (rc < 0) goto cleanup;
    d.add_bos = rc == 0 ? add_bos : -1;

    rc = sglc_tokenizer_open_vocab(out, &d, err);
    if (rc == 0) {
        const char *tmpl;
        size_t tl;
        int trc = sglc_gguf_get_str(g, "tokenizer.chat_template", &tmpl, &tl, err);
        if (trc < 0) {
            rc = trc;
        } else if (trc == 0 && !memchr(tmpl, 0, tl)) {
            (*out)->chat_template = strndup(tmpl, tl);
            if (!(*out)->chat_template) rc = sglc_err_set(err, SGLC_ERR_NOMEM, "out of memory");
        }
        if (rc) {
            sglc_tokenizer_close(*out);
            *out = NULL;
        }
    }
cleanup:
    free(toks);
    free(tok_lens);
    free(merges);
    free(merge_lens);
    free((void *)d.token_types);
    return rc;
}

const char *sglc_tokenizer_chat_template(const sglc_tokenizer *t) {
    return t->chat_template;
}

int32_t sglc_tokenizer_vocab_size(const sglc_tokenizer *t) {
    return t->n_vocab;
}
int32_t sglc_tokenizer_bos(const sglc_tokenizer *t) {
    return t->bos;
}
int32_t sglc_tokenizer_eos(const sglc_tokenizer *t) {
    return t->eos;
}
int sglc_tokenizer_add_bos(const sglc_tokenizer *t) {
    return t->add_bos && t->bos >= 0;
}

int sglc_tokenizer_is_eog(const sglc_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_vocab && t->eog[id];
}

int sglc_tokenizer_is_control(const sglc_tokenizer *t, int32_t id) {
    if (id < 0 || id >= t->n_vocab) return 0;
    return (t->attr[id] & (SGLC_TOK_ATTR_CONTROL | SGLC_TOK_ATTR_UNKNOWN | SGLC_TOK_ATTR_UNUSED)) !=
           0;
}

const char *sglc_tokenizer_token_bytes(const sglc_tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->n_vocab) return NULL;
    *len = (size_t)(t->piece_off[id + 1] - t->piece_off[id]);
    return t->piece_pool + t->piece_off[id];
}

/* llama.cpp's clean_up_tokenization_spaces passes, in place; returns the new length. */
static size_t clean_spaces(char *text, size_t total) {
    size_t t1 = total, n = total ? 1 : 0;
    for (size_t i = 1; i < t1; i++) {
        char x = text[i];
        if (text[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) n--;
        text[n++] = x;
    }
    size_t t2 = n;
    n = t2 ? 1 : 0;
    for (size_t i = 1; i < t2; i++) {
        char x = text[i];
        if (x == '\'' && i + 1 < t2 && text[i - 1] == ' ' && text[i + 1] == ' ') {
            n--;
            text[++i] = '\0';
        }
        text[n++] = x;
    }
    size_t t3 = n;
    n = t3 ? 1 : 0;
    for (size_t i = 1; i < t3; i++) {
        char x = text[i];
        if (text[i - 1] == ' ' && x == '\'' && i + 1 < t3) {
            char x1 = text[i + 1];
            if (x1 == 's' || x1 == 'm') {
                n--;
            } else if (i + 2 < t3) {
                char x2 = text[i + 2];
                if ((x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e')) n--;
            }
        }
        text[n++] = x;
    }
    return n;
}

size_t sglc_tokenizer_decode(const sglc_tokenizer *t, const int32_t *ids, size_t n,
                             int skip_special, char *out, size_t cap) {
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab) continue;
        if (skip_special && (t->attr[ids[i]] & (SGLC_TOK_ATTR_CONTROL | SGLC_TOK_ATTR_UNKNOWN)))
            continue;
        total += (size_t)(t->piece_off[ids[i] + 1] - t->piece_off[ids[i]]);
    }
    int direct = !t->flags.clean_spaces && total <= cap;
    char *buf = direct ? out : malloc(total ? total : 1);
    if (!buf) return 0;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab) continue;
        if (skip_special && (t->attr[ids[i]] & (SGLC_TOK_ATTR_CONTROL | SGLC_TOK_ATTR_UNKNOWN)))
            continue;
        size_t pl = (size_t)(t->piece_off[ids[i] + 1] - t->piece_off[ids[i]]);
        if (pl) memcpy(buf + m, t->piece_pool + t->piece_off[ids[i]], pl);
        m += pl;
    }
    if (t->flags.clean_spaces) m = clean_spaces(buf, m);
    if (!direct) {
        if (out && cap) memcpy(out, buf, m < cap ? m : cap);
        free(buf);
    }
    return m;
}
