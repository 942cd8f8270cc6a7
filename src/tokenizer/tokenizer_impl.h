/* Private tokenizer internals shared by gguf_vocab.c (vocab build and validation, decode),
 * bpe.c (hash maps, special-token partition, merge loop), pretokenize.c (llama.cpp's regex
 * pre-tokenizers on PCRE2) and detok_stream.c. The sglc_tokenizer is immutable after open;
 * every encode call works in its own sglc_tok_scratch, so threads never share mutable state. */
#ifndef SGLC_TOKENIZER_TOKENIZER_IMPL_H
#define SGLC_TOKENIZER_TOKENIZER_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer/tokenizer.h"

/* llama.cpp's token attributes (llama_token_attr), derived from tokenizer.ggml.token_type. */
enum {
    SGLC_TOK_ATTR_UNKNOWN = 1 << 0,
    SGLC_TOK_ATTR_UNUSED = 1 << 1,
    SGLC_TOK_ATTR_NORMAL = 1 << 2,
    SGLC_TOK_ATTR_CONTROL = 1 << 3,
    SGLC_TOK_ATTR_USER_DEFINED = 1 << 4,
    SGLC_TOK_ATTR_BYTE = 1 << 5,
    SGLC_TOK_ATTR_LSTRIP = 1 << 6, /* added token eats the whitespace before it (HF lstrip) */
    SGLC_TOK_ATTR_RSTRIP = 1 << 7, /* ... and after it (HF rstrip) */
};

/* tokenizer.ggml.token_type values. */
typedef enum {
    SGLC_TOKEN_TYPE_UNDEFINED = 0,
    SGLC_TOKEN_TYPE_NORMAL = 1,
    SGLC_TOKEN_TYPE_UNKNOWN = 2,
    SGLC_TOKEN_TYPE_CONTROL = 3,
    SGLC_TOKEN_TYPE_USER_DEFINED = 4,
    SGLC_TOKEN_TYPE_UNUSED = 5,
    SGLC_TOKEN_TYPE_BYTE = 6,
    SGLC_TOKEN_TYPE_COUNT
} sglc_token_type;

/* Pre-tokenizer: the ordered regex list of one tokenizer.ggml.pre family, compiled with PCRE2. */
typedef struct sglc_pretok sglc_pretok;

typedef struct {
    int clean_spaces;  /* detokenize removes " ." " ," " 's" etc. (clean_up_tokenization_spaces) */
    int ignore_merges; /* a word that is itself a token skips BPE (llama3) */
    int add_bos;       /* default for tokenizer.ggml.add_bos_token */
} sglc_pretok_flags;

/* Unicode normalization applied to raw text before pre-tokenization (tokenizer.json). */
typedef enum {
    SGLC_NORM_NONE,
    SGLC_NORM_NFC,
    SGLC_NORM_NFD,
    SGLC_NORM_NFKC,
    SGLC_NORM_NFKD,
    SGLC_NORM_COUNT
} sglc_norm_form;

/* HF SplitDelimiterBehavior: what happens to a regex match inside a piece. */
typedef enum {
    SGLC_SPLIT_ISOLATED,
    SGLC_SPLIT_REMOVED,
    SGLC_SPLIT_MERGED_PREV,
    SGLC_SPLIT_MERGED_NEXT,
    SGLC_SPLIT_CONTIGUOUS,
    SGLC_SPLIT_BEHAVIOR_COUNT
} sglc_split_behavior;

/* One pre-tokenizer step from tokenizer.json (Split, Digits or ByteLevel's regex). */
typedef struct {
    const char *pattern; /* PCRE2 syntax, NUL-terminated; a literal string when literal != 0 */
    int literal;
    sglc_split_behavior behavior;
    int invert; /* the pattern matches the pieces, not the delimiters */
} sglc_pretok_step;

/* What tokenizer.json adds to sglc_tokenizer_vocab_desc (all borrowed for the call). */
typedef struct {
    const sglc_pretok_step *steps;
    size_t n_steps;
    sglc_pretok_flags flags;
    sglc_norm_form norm;
    int prefix_space; /* ByteLevel add_prefix_space: prepend ' ' to each raw fragment */
    /* merges as (left, right) texts, replacing desc->merges; the merged text must be a token */
    int64_t n_merge_pairs;
    const char *const *merge_left, *const *merge_right;
    const size_t *merge_left_len, *merge_right_len;
    const uint8_t *extra_attr; /* [n_tokens] SGLC_TOK_ATTR_LSTRIP/RSTRIP bits, or NULL */
    const int32_t *eog_ids;    /* more end-of-generation ids (generation_config.json) */
    size_t n_eog_ids;
    const char *chat_template; /* copied; NULL = none */
} sglc_tokenizer_hf_ext;

/* Byte span [start, end) of a pre-tokenized word inside sglc_tok_scratch.real. */
typedef struct {
    uint32_t start, end;
} sglc_tok_span;

typedef struct {
    int32_t id;     /* token id of the symbol's bytes, -1 when not a token */
    uint32_t start; /* byte offset in the word */
    uint32_t len;   /* 0 once merged into its left neighbour */
    int32_t prev, next;
} sglc_bpe_symbol;

typedef struct {
    int32_t rank;
    int32_t left, right;
    uint32_t left_len, right_len; /* lengths when queued: a changed length means stale */
    int32_t merged;
} sglc_bpe_bigram;

/* Per-call working memory: grown on demand, freed by sglc_tok_scratch_free. */
typedef struct {
    unsigned char *real;  /* fragment re-encoded the way llama.cpp does (lenient UTF-8) */
    unsigned char *clean; /* same bytes, surrogates replaced so PCRE2 sees valid UTF-8 */
    size_t text_cap;
    sglc_tok_span *spans, *spans_tmp;
    size_t span_cap, span_tmp_cap;
    size_t n_spans;
    void *match_data; /* pcre2_match_data_8 */
    sglc_bpe_symbol *syms;
    size_t sym_cap;
    sglc_bpe_bigram *heap;
    size_t heap_cap, heap_len;
    void *ivals; /* pretokenize.c: match / gap intervals of one piece */
    size_t ival_cap;
    char *norm; /* normalized / space-prefixed raw fragment (tokenizer.json) */
    size_t norm_cap;
    char *enc; /* byte-level (GPT-2 unicode) encoding of a word */
    size_t enc_cap;
    int32_t *out;
    size_t out_len, out_cap;
} sglc_tok_scratch;

struct sglc_tokenizer {
    int32_t n_vocab;
    char *text_pool;     /* token texts as stored in the vocab */
    uint64_t *text_off;  /* [n_vocab + 1] */
    char *piece_pool;    /* what each token decodes to (special tokens give their text) */
    uint64_t *piece_off; /* [n_vocab + 1] */
    uint8_t *attr;       /* SGLC_TOK_ATTR_* */
    uint8_t *eog;
    size_t max_piece_len;

    /* text -> id, open addressing, -1 = empty slot */
    int32_t *text_map;
    uint64_t text_map_mask;

    /* (left id, right id) -> rank and merged id */
    uint64_t *merge_keys; /* UINT64_MAX = empty */
    int32_t *merge_rank;
    int32_t *merge_result;
    uint64_t merge_mask;

    int32_t byte_token[256];   /* token of the byte-level character for each byte, or -1 */
    uint32_t byte_to_cpt[256]; /* GPT-2 bytes_to_unicode */
    int16_t cpt_to_byte[324];  /* inverse, -1 where none */

    int32_t *specials; /* control / user-defined / unknown ids, longest text first */
    int32_t n_specials;

    int32_t bos, eos, eot, eom;
    int add_bos;
    sglc_pretok_flags flags;
    sglc_pretok *pretok;

    /* tokenizer.json semantics (0 for GGUF): added tokens matched leftmost-longest with
     * lstrip/rstrip, normalization and prefix space before pre-tokenizing, and HF's
     * ByteLevel decoder (a token whose characters are not all byte-level decodes as its
     * UTF-8 text). */
    int hf;
    sglc_norm_form norm;
    int prefix_space;
    char *chat_template;
};

/* --- gguf_vocab.c --- */
/* open_vocab with tokenizer.json's additions; ext == NULL is open_vocab. */
int sglc_tokenizer_open_vocab_ext(sglc_tokenizer **out, const sglc_tokenizer_vocab_desc *v,
                                  const sglc_tokenizer_hf_ext *ext, sglc_err *err);

/* --- tokenizer_json.c --- */
/* open_hf from memory: tokenizer.json is required, the others may be NULL; template_file is
 * chat_template.jinja's text, used when the config has no chat_template. For the fuzzer and
 * tests. */
int sglc_tokenizer_open_hf_mem(sglc_tokenizer **out, const char *tok_json, size_t tok_len,
                               const char *config_json, size_t config_len, const char *gen_json,
                               size_t gen_len, const char *template_file, sglc_err *err);

/* --- bpe.c --- */
uint64_t sglc_tok_hash(const void *p, size_t n);
int32_t sglc_tok_lookup(const sglc_tokenizer *t, const char *s, size_t n);
/* Inserts id (its text must already be in text_pool); returns the id already holding the same
 * text, or -1 when it was inserted. */
int32_t sglc_tok_insert(sglc_tokenizer *t, int32_t id);
/* Adds a merge unless the pair is already present (llama.cpp keeps the first rank). */
void sglc_tok_merge_insert(sglc_tokenizer *t, int32_t left, int32_t right, int32_t rank,
                           int32_t merged);
void sglc_tok_scratch_free(sglc_tok_scratch *s);

static inline const char *sglc_tok_text(const sglc_tokenizer *t, int32_t id, size_t *len) {
    *len = (size_t)(t->text_off[id + 1] - t->text_off[id]);
    return t->text_pool + t->text_off[id];
}

/* --- pretokenize.c --- */
/* The regex list (static, llama.cpp's patterns in PCRE2 syntax) and flags of one
 * tokenizer.ggml.pre family (NULL or "" = "default"); returns the number of regexes, 0 for an
 * unknown name. The tokenizer.json exporter writes these as Split steps. */
size_t sglc_pretok_type_regexes(const char *pre, const char *const **regexes,
                                sglc_pretok_flags *flags);
/* Looks up tokenizer.ggml.pre (NULL/"" = "default") and compiles its regexes, or the given
 * override list (PCRE2 syntax) when n_override > 0. */
int sglc_pretok_open(sglc_pretok **out, const char *pre, const char *const *override,
                     size_t n_override, sglc_pretok_flags *flags, sglc_err *err);
/* Compiles tokenizer.json pre-tokenizer steps (PCRE2, UTF + UCP). */
int sglc_pretok_open_steps(sglc_pretok **out, const sglc_pretok_step *steps, size_t n,
                           sglc_err *err);
/* Rewrites an HF (Oniguruma) pattern for PCRE2: \s / \S become the Unicode White_Space set
 * that Oniguruma uses (PCRE2's \s lacks U+0085). Returns a malloc'd string or NULL. */
char *sglc_pretok_translate_regex(const char *pat, size_t len);
/* GPT-2's regex as HF ByteLevel(use_regex) spells it, with the same whitespace set. */
const char *sglc_pretok_bytelevel_regex(void);
void sglc_pretok_close(sglc_pretok *p);
/* Re-encodes text like llama.cpp's unicode_cpts_from_utf8 (invalid bytes -> U+FFFD) into
 * s->real and splits it into words (s->spans, s->n_spans). Returns 0 or a negative status. */
int sglc_pretok_split(const sglc_pretok *p, const char *text, size_t len, sglc_tok_scratch *s);

/* Lenient UTF-8 decode exactly as llama.cpp's unicode_cpt_from_utf8: returns the code point
 * and its byte length in *n, or 0xFFFD with *n = 1 for a byte that starts no sequence. */
uint32_t sglc_utf8_decode_lenient(const unsigned char *s, size_t len, size_t *n);
size_t sglc_utf8_encode(uint32_t cpt, unsigned char *out);

#include "base/utf8.h" /* sglc_utf8_scan */

#endif
