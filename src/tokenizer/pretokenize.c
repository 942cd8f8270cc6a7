/* Pre-tokenizers: llama.cpp's regex lists per tokenizer.ggml.pre value, run with PCRE2
 * (UTF + UCP, JIT when available). Semantics follow llama.cpp's unicode_regex_split: regexes
 * are applied in order, each one splitting every piece the previous produced, and the text
 * between matches is kept as a piece of its own. Each piece is matched as a separate subject,
 * so a lookahead never sees past a piece boundary (llama.cpp's custom splitters and std::regex
 * iterators behave the same way).
 *
 * Differences from plain PCRE2 that llama.cpp has and we reproduce:
 * - \s is llama.cpp's whitespace set (Unicode White_Space, which includes U+0085 NEL that
 *   PCRE2's \s does not), so the patterns below spell it out as WS.
 * - Text is first decoded with llama.cpp's lenient UTF-8 decoder (no overlong/surrogate
 *   checks, an invalid byte becomes U+FFFD) and re-encoded; surrogate code points survive that
 *   round trip in llama.cpp, so PCRE2 is shown U+E000 (also category C) in their place.
 * Character classes come from PCRE2's Unicode tables, llama.cpp uses its own; they differ only
 * for code points assigned after PCRE2's Unicode version.
 *
 * tokenizer.json pre-tokenizers (Split, Digits, ByteLevel's regex) run through the same
 * splitter, each step with HF's delimiter behaviour (isolated, removed, merged with the
 * previous or next piece, contiguous) and invert flag; HF's Oniguruma \s is the same
 * White_Space set, so their patterns get the WS spelling too. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_impl.h"

#define WS                                                                                         \
    "\\t\\n\\x{0B}\\f\\r "                                                                         \
    "\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"

#define RE_GPT2                                                                                    \
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" WS "\\p{L}\\p{N}]+|[" WS "]+(?![^" WS "])"

#define RE_LLAMA3_HEAD                                                                             \
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
#define RE_LLAMA3_TAIL                                                                             \
    "| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n]*|[" WS "]*[\\r\\n]+|[" WS "]+(?![^" WS "])|[" WS "]+"

static const char *const k_re_default[] = {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+",
                                           "[0-9][0-9][0-9]", NULL};
static const char *const k_re_gpt2[] = {RE_GPT2, NULL};
static const char *const k_re_starcoder[] = {"\\p{N}", RE_GPT2, NULL};
static const char *const k_re_llama3[] = {RE_LLAMA3_HEAD "\\p{N}{1,3}" RE_LLAMA3_TAIL, NULL};
static const char *const k_re_qwen2[] = {RE_LLAMA3_HEAD "\\p{N}" RE_LLAMA3_TAIL, NULL};

typedef struct {
    const char *name;
    const char *const *regexes;
    sglc_pretok_flags flags; /* clean_spaces, ignore_merges, add_bos */
} pretok_type;

/* Names and flags as llama_vocab::impl::load maps them; only families whose regexes are above. */
static const pretok_type k_pretok_types[] = {
    {"default", k_re_default, {1, 0, 0}},  {"gpt-2", k_re_gpt2, {1, 0, 0}},
    {"phi-2", k_re_gpt2, {1, 0, 0}},       {"mpt", k_re_gpt2, {1, 0, 0}},
    {"olmo", k_re_gpt2, {1, 0, 0}},        {"jais", k_re_gpt2, {1, 0, 0}},
    {"exaone4", k_re_gpt2, {1, 0, 0}},     {"starcoder", k_re_starcoder, {1, 0, 0}},
    {"refact", k_re_starcoder, {1, 0, 0}}, {"codeshell", k_re_starcoder, {1, 0, 0}},
    {"exaone", k_re_starcoder, {1, 0, 0}}, {"command-r", k_re_starcoder, {0, 0, 0}},
    {"smollm", k_re_starcoder, {0, 0, 0}}, {"llama3", k_re_llama3, {1, 1, 1}},
    {"llama-v3", k_re_llama3, {1, 1, 1}},  {"llama-bpe", k_re_llama3, {1, 1, 1}},
    {"falcon3", k_re_llama3, {1, 1, 1}},   {"pixtral", k_re_llama3, {1, 1, 1}},
    {"dbrx", k_re_llama3, {1, 0, 0}},      {"smaug-bpe", k_re_llama3, {1, 0, 0}},
    {"qwen2", k_re_qwen2, {0, 0, 0}},      {"deepseek-r1-qwen", k_re_qwen2, {0, 0, 0}},
    {"stablelm2", k_re_qwen2, {1, 0, 0}},
};

#define MAX_REGEXES 8

struct sglc_pretok {
    pcre2_code *re[MAX_REGEXES];
    uint8_t behavior[MAX_REGEXES]; /* sglc_split_behavior */
    uint8_t invert[MAX_REGEXES];
    size_t n_re;
};

/* A match (or the gap between matches) inside one piece, offsets relative to the piece. */
typedef struct {
    uint32_t a, b;
    uint8_t match;
} interval;

static const char k_re_bytelevel[] = RE_GPT2 "|[" WS "]+";

const char *sglc_pretok_bytelevel_regex(void) {
    return k_re_bytelevel;
}

char *sglc_pretok_translate_regex(const char *pat, size_t len) {
    static const char ws[] = WS;
    size_t wl = sizeof ws - 1;
    if (len > SIZE_MAX / (wl + 4) - 1) return NULL;
    char *out = malloc(len * (wl + 4) + 1);
    if (!out) return NULL;
    size_t m = 0;
    int in_class = 0;
    for (size_t i = 0; i < len; i++) {
        char c = pat[i];
        if (c == '\\' && i + 1 < len) {
            char e = pat[i + 1];
            if (e == 's' || (e == 'S' && !in_class)) {
                if (!in_class) out[m++] = '[';
                if (e == 'S') out[m++] = '^';
                memcpy(out + m, ws, wl);
                m += wl;
                if (!in_class) out[m++] = ']';
            } else {
                out[m++] = c;
                out[m++] = e;
            }
            i++;
            continue;
        }
        if (!in_class && c == '[') {
            in_class = 1;
            out[m++] = c;
            /* a ']' right after '[' or '[^' is a literal */
            if (i + 1 < len && pat[i + 1] == '^') out[m++] = pat[++i];
            if (i + 1 < len && pat[i + 1] == ']') out[m++] = pat[++i];
            continue;
        }
        if (in_class && c == '[' && i + 1 < len && pat[i + 1] == ':') {
            /* POSIX class [:name:] inside a class */
            const char *end = NULL;
            for (size_t k = i + 2; k + 1 < len; k++) {
                if (pat[k] == ':' && pat[k + 1] == ']') {
                    end = pat + k + 2;
                    break;
                }
            }
            if (end) {
                size_t n = (size_t)(end - (pat + i));
                memcpy(out + m, pat + i, n);
                m += n;
                i += n - 1;
                continue;
            }
        }
        if (in_class && c == ']') in_class = 0;
        out[m++] = c;
    }
    out[m] = 0;
    return out;
}

void sglc_pretok_close(sglc_pretok *p) {
    if (!p) return;
    for (size_t i = 0; i < p->n_re; i++)
        pcre2_code_free(p->re[i]);
    free(p);
}

static int add_regex(sglc_pretok *p, size_t i, const char *pat, int literal,
                     sglc_split_behavior behavior, int invert, sglc_err *err) {
    int code = 0;
    PCRE2_SIZE at = 0;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED,
                                   literal ? PCRE2_UTF | PCRE2_LITERAL : PCRE2_UTF | PCRE2_UCP,
                                   &code, &at, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        return sglc_err_set(err, SGLC_ERR_FORMAT,
                            "pre-tokenizer regex %zu '%.200s' does not compile at offset %zu: %s",
                            i, pat, (size_t)at, (const char *)msg);
    }
    /* JIT is an optimisation: without it pcre2_match interprets the same pattern. */
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    p->behavior[p->n_re] = (uint8_t)behavior;
    p->invert[p->n_re] = (uint8_t)(invert != 0);
    p->re[p->n_re++] = re;
    return SGLC_OK;
}

size_t sglc_pretok_type_regexes(const char *pre, const char *const **regexes,
                                sglc_pretok_flags *flags) {
    if (!pre || !*pre) pre = "default";
    for (size_t i = 0; i < sizeof k_pretok_types / sizeof k_pretok_types[0]; i++) {
        if (strcmp(k_pretok_types[i].name, pre) != 0) continue;
        size_t n = 0;
        while (k_pretok_types[i].regexes[n])
            n++;
        *regexes = k_pretok_types[i].regexes;
        *flags = k_pretok_types[i].flags;
        return n;
    }
    return 0;
}

int sglc_pretok_open(sglc_pretok **out, const char *pre, const char *const *override,
                     size_t n_override, sglc_pretok_flags *flags, sglc_err *err) {
    *out = NULL;
    if (!pre || !*pre) pre = "default";
    const pretok_type *type = NULL;
    for (size_t i = 0; i < sizeof k_pretok_types / sizeof k_pretok_types[0]; i++) {
        if (strcmp(k_pretok_types[i].name, pre) == 0) type = &k_pretok_types[i];
    }
    if (!type && n_override == 0) {
        return sglc_err_set(err, SGLC_ERR_UNSUPPORTED,
                            "tokenizer.ggml.pre '%s' is not a supported pre-tokenizer", pre);
    }
    if (n_override > MAX_REGEXES) {
        return sglc_err_set(err, SGLC_ERR_UNSUPPORTED, "%zu pre-tokenizer regexes (at most %d)",
                            n_override, MAX_REGEXES);
    }
    sglc_pretok *p = calloc(1, sizeof *p);
    if (!p) return sglc_err_set(err, SGLC_ERR_NOMEM, "out of memory");
    *flags = type ? type->flags : (sglc_pretok_flags){1, 0, 0};
    const char *const *list = n_override ? override : type->regexes;
    size_t n = n_override;
    if (!n_override) {
        while (list[n])
            n++;
    }
    for (size_t i = 0; i < n; i++) {
        int rc = add_regex(p, i, list[i], 0, SGLC_SPLIT_ISOLATED, 0, err);
        if (rc) {
            sglc_pretok_close(p);
            return rc;
        }
    }
    *out = p;
    return SGLC_OK;
}

int sglc_pretok_open_steps(sglc_pretok **out, const sglc_pretok_step *steps, size_t n,
                           sglc_err *err) {
    *out = NULL;
    if (n > MAX_REGEXES)
        return sglc_err_set(err, SGLC_ERR_UNSUPPORTED, "%zu pre-tokenizer steps (at most %d)", n,
                            MAX_REGEXES);
    sglc_pretok *p = calloc(1, sizeof *p);
    if (!p) return sglc_err_set(err, SGLC_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        SGLC_ASSERT(steps[i].behavior < SGLC_SPLIT_BEHAVIOR_COUNT);
        int rc = add_regex(p, i, steps[i].pattern, steps[i].literal, steps[i].behavior,
                           steps[i].invert, err);
        if (rc) {
            sglc_pretok_close(p);
            return rc;
        }
    }
    *out = p;
    return SGLC_OK;
}

uint32_t sglc_utf8_decode_lenient(const unsigned char *s, size_t len, size_t *n) {
    unsigned char b = s[0];
    if (!(b & 0x80)) {
        *n = 1;
        return b;
    }
    *n = 1;
    if (!(b & 0x40)) return 0xFFFD;
    size_t need;
    uint32_t cpt;
    if (!(b & 0x20)) {
        need = 2;
        cpt = b & 0x1Fu;
    } else if (!(b & 0x10)) {
        need = 3;
        cpt = b & 0x0Fu;
    } else if (!(b & 0x08)) {
        need = 4;
        cpt = b & 0x07u;
    } else {
        return 0xFFFD;
    }
    if (need > len) return 0xFFFD;
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0xFFFD;
        cpt = (cpt << 6) | (s[i] & 0x3Fu);
    }
    /* llama.cpp throws (and aborts tokenization) when it re-encodes a code point past
     * U+10FFFF; we treat the lead byte as invalid instead. */
    if (cpt > 0x10FFFF) return 0xFFFD;
    *n = need;
    return cpt;
}

size_t sglc_utf8_encode(uint32_t cpt, unsigned char *out) {
    if (cpt <= 0x7F) {
        out[0] = (unsigned char)cpt;
        return 1;
    }
    if (cpt <= 0x7FF) {
        out[0] = (unsigned char)(0xC0 | (cpt >> 6));
        out[1] = (unsigned char)(0x80 | (cpt & 0x3F));
        return 2;
    }
    if (cpt <= 0xFFFF) {
        out[0] = (unsigned char)(0xE0 | (cpt >> 12));
        out[1] = (unsigned char)(0x80 | ((cpt >> 6) & 0x3F));
        out[2] = (unsigned char)(0x80 | (cpt & 0x3F));
        return 3;
    }
    out[0] = (unsigned char)(0xF0 | (cpt >> 18));
    out[1] = (unsigned char)(0x80 | ((cpt >> 12) & 0x3F));
    out[2] = (unsigned char)(0x80 | ((cpt >> 6) & 0x3F));
    out[3] = (unsigned char)(0x80 | (cpt & 0x3F));
    return 4;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t n = *cap ? *cap : 64;
    while (n < need) {
        if (n > SIZE_MAX / 2 / elem) return -1;
        n *= 2;
    }
    void *q = realloc(*p, n * elem);
    if (!q) return -1;
    *p = q;
    *cap = n;
    return 0;
}

static int push_span(sglc_tok_span **v, size_t *cap, size_t *n, uint32_t a, uint32_t b) {
    if (grow((void **)v, cap, *n + 1, sizeof **v)) return -1;
    (*v)[(*n)++] = (sglc_tok_span){a, b};
    return 0;
}

static size_t utf8_char_len(unsigned char b) {
    if (b < 0x80) return 1;
    if (b < 0xE0) return 2;
    if (b < 0xF0) return 3;
    return 4;
}

/* HF NormalizedString::split: turns one piece's intervals into pieces by delimiter behaviour. */
static int emit_intervals(sglc_tok_scratch *s, size_t *n_out, uint32_t base, const interval *iv,
                          size_t n, uint8_t behavior, uint8_t invert) {
    int prev_match = 0;
    size_t first = *n_out; /* pieces of this interval list start here */
    for (size_t i = 0; i < n; i++) {
        int m = iv[i].match ^ invert;
        uint32_t a = base + iv[i].a, b = base + iv[i].b;
        int extend = 0;
        switch (behavior) {
        case SGLC_SPLIT_REMOVED:
            if (m) continue;
            break;
        case SGLC_SPLIT_MERGED_PREV: extend = m && !prev_match && *n_out > first; break;
        case SGLC_SPLIT_CONTIGUOUS: extend = m == prev_match && *n_out > first; break;
        case SGLC_SPLIT_MERGED_NEXT:
            /* a match directly followed by a non-match joins it */
            if (m && i + 1 < n && !(iv[i + 1].match ^ invert)) {
                b = base + iv[i + 1].b;
                i++;
                m = 0;
            }
            break;
        default: break;
        }
        prev_match = m;
        if (extend) {
            s->spans_tmp[*n_out - 1].end = b;
        } else if (push_span(&s->spans_tmp, &s->span_tmp_cap, n_out, a, b)) {
            return -1;
        }
    }
    return 0;
}

int sglc_pretok_split(const sglc_pretok *p, const char *text, size_t len, sglc_tok_scratch *s) {
    s->n_spans = 0;
    if (len > UINT32_MAX / 4) return SGLC_ERR_RANGE;
    if (grow((void **)&s->real, &s->text_cap, len * 3 + 4, 1)) return SGLC_ERR_NOMEM;
    {
        /* keep clean the same size as real */
        void *q = realloc(s->clean, s->text_cap);
        if (!q) return SGLC_ERR_NOMEM;
        s->clean = q;
    }
    const unsigned char *in = (const unsigned char *)text;
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        size_t k;
        uint32_t cpt = sglc_utf8_decode_lenient(in + i, len - i, &k);
        i += k;
        size_t m = sglc_utf8_encode(cpt, s->real + n);
        if (cpt >= 0xD800 && cpt <= 0xDFFF) {
            s->clean[n] = 0xEE; /* U+E000 */
            s->clean[n + 1] = 0x80;
            s->clean[n + 2] = 0x80;
        } else {
            memcpy(s->clean + n, s->real + n, m);
        }
        n += m;
    }
    if (n == 0) return SGLC_OK;
    if (!s->match_data) {
        s->match_data = pcre2_match_data_create(4, NULL);
        if (!s->match_data) return SGLC_ERR_NOMEM;
    }
    pcre2_match_data *md = s->match_data;
    if (push_span(&s->spans, &s->span_cap, &s->n_spans, 0, (uint32_t)n)) return SGLC_ERR_NOMEM;

    for (size_t r = 0; r < p->n_re; r++) {
        size_t n_out = 0;
        for (size_t pi = 0; pi < s->n_spans; pi++) {
            uint32_t a = s->spans[pi].start, b = s->spans[pi].end;
            PCRE2_SPTR subj = (PCRE2_SPTR)(s->clean + a);
            size_t slen = b - a, pos = 0, last = 0, n_iv = 0;
            interval *iv = s->ivals;
            /* matches and the gaps between them, in order */
            while (pos < slen) {
                int rc = pcre2_match(p->re[r], subj, slen, pos, PCRE2_NO_UTF_CHECK, md, NULL);
                if (rc == PCRE2_ERROR_NOMATCH) break;
                if (rc < 0) return SGLC_ERR_RANGE; /* match limit / JIT stack: input too hard */
                PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
                size_t ms = ov[0], me = ov[1];
                if (me == ms) { /* empty match: std::regex_iterator steps one character */
                    pos = ms + utf8_char_len(subj[ms]);
                    continue;
                }
                if (grow(&s->ivals, &s->ival_cap, n_iv + 2, sizeof *iv)) return SGLC_ERR_NOMEM;
                iv = s->ivals;
                if (ms > last) iv[n_iv++] = (interval){(uint32_t)last, (uint32_t)ms, 0};
                iv[n_iv++] = (interval){(uint32_t)ms, (uint32_t)me, 1};
                last = pos = me;
            }
            if (last < slen) {
                if (grow(&s->ivals, &s->ival_cap, n_iv + 1, sizeof *iv)) return SGLC_ERR_NOMEM;
                iv = s->ivals;
                iv[n_iv++] = (interval){(uint32_t)last, (uint32_t)slen, 0};
            }
            if (emit_intervals(s, &n_out, a, iv, n_iv, p->behavior[r], p->invert[r]))
                return SGLC_ERR_NOMEM;
        }
        sglc_tok_span *tv = s->spans;
        s->spans = s->spans_tmp;
        s->spans_tmp = tv;
        size_t tc = s->span_cap;
        s->span_cap = s->span_tmp_cap;
        s->span_tmp_cap = tc;
        s->n_spans = n_out;
    }
    return SGLC_OK;
}
