/* Structured-output grammar engine: JSON Schema, regex and EBNF front ends compiled to one
 * representation, a per-request matcher, and the vocabulary mask.
 *
 * Representation: every front end builds a small AST (grammar_impl.h) that is lowered to rules
 * over classes of Unicode code points. A rule is a list of alternatives, each a sequence of
 * elements (a class, or a reference to a rule) ending in END. Repetition becomes right-recursive
 * helper rules, so the matcher's stacks do not grow with repetition.
 *
 * Matching: a pushdown recognizer that keeps the set of all live stacks (as llama.cpp's GBNF
 * matcher does, written here from the idea, not the code). A stack holds positions in the rule
 * code; its top is always a class to match next; an empty stack means the root is complete.
 * Tokens are bytes: a code point split across tokens waits in a partial UTF-8 state, and each
 * partial byte is checked against the range of code points it can still become. Left recursion
 * is refused at compile time, so expansion terminates; the number of stacks, their depth, the
 * state size and the expansion work per byte are capped (a path that exceeds them is refused).
 *
 * Mask: the vocabulary is sorted by bytes once (sglc_gvocab); a mask walks tokens in that order
 * keeping one matcher state per byte depth, so a shared prefix is matched once and a refused
 * prefix skips every token that starts with it. Masks are cached per matcher state by the
 * caller (sglc_gmask_cache, bounded, keyed by the exact state words).
 *
 * Threading: a compiled sglc_gram and an sglc_gvocab are immutable and may be shared; a matcher
 * and a scratch belong to one thread at a time; the mask cache is not locked (callers lock). */
#ifndef SGLC_ENGINE_GRAMMAR_GRAMMAR_H
#define SGLC_ENGINE_GRAMMAR_GRAMMAR_H

#include <stddef.h>
#include <stdint.h>

#include "sglc.h"

/* Limits against hostile input (each exceeded one is a compile error naming it). */
#define SGLC_GRAM_MAX_SOURCE (1u << 20) /* bytes of schema / regex / grammar text */
#define SGLC_GRAM_MAX_RULES 10000       /* rules after lowering (helper rules included) */
#define SGLC_GRAM_MAX_CODE (1 << 20)    /* elements after lowering */
#define SGLC_GRAM_MAX_NEST 64           /* nesting of groups / sub-schemas */
#define SGLC_GRAM_MAX_REPEAT 1000       /* bound of {m,n}, minLength/maxLength, min/maxItems */
/* Limits of a matcher state (a path that exceeds them is refused at match time). */
#define SGLC_GRAM_MAX_STACKS 1024
#define SGLC_GRAM_MAX_DEPTH 2048
#define SGLC_GRAM_MAX_STATE_WORDS 65536
#define SGLC_GRAM_MAX_EXPAND 20000 /* stack expansions per code point */

typedef struct sglc_gram sglc_gram;

/* Compiles src (not NUL-terminated) of the given kind. Returns 0, or < 0 with one line in err
 * naming the problem (position or field). */
int sglc_gram_compile(sglc_grammar_kind kind, const char *src, size_t len, sglc_gram **out,
                      char *err, size_t errlen);
void sglc_gram_free(sglc_gram *g);
int32_t sglc_gram_n_rules(const sglc_gram *g);

/* A growable vector of 32-bit words. */
typedef struct {
    uint32_t *w;
    size_t n, cap;
} sglc_gvec;

/* Scratch buffers for matching and masking; reused, grown on demand, one thread at a time. */
typedef struct sglc_gscratch sglc_gscratch;
int sglc_gscratch_open(sglc_gscratch **out);
void sglc_gscratch_close(sglc_gscratch *sc);

/* A matcher state: the stack set ([n_stacks] then per stack [len, positions bottom..top]) and
 * a partial UTF-8 code point. Cloning is a copy of those words. */
typedef struct {
    const sglc_gram *g; /* borrowed */
    sglc_gvec st;
    uint32_t partial; /* 0, or need (bits 0-1), length (bits 2-4), value (bits 8-28) */
} sglc_gmatcher;

/* Returns 0, or SGLC_ERR_NOMEM. */
int sglc_gmatcher_init(sglc_gmatcher *m, const sglc_gram *g, sglc_gscratch *sc);
int sglc_gmatcher_clone(sglc_gmatcher *dst, const sglc_gmatcher *src);
void sglc_gmatcher_free(sglc_gmatcher *m);
/* Feeds bytes; 0 when all were accepted, -1 when some byte is refused (the state is then left
 * as it was before the call), SGLC_ERR_NOMEM on allocation failure. */
int sglc_gmatcher_advance(sglc_gmatcher *m, const uint8_t *bytes, size_t n, sglc_gscratch *sc);
/* The input so far is a complete sentence (end of sequence allowed). */
int sglc_gmatcher_accepting(const sglc_gmatcher *m);
/* Accepting and nothing more may follow. */
int sglc_gmatcher_terminated(const sglc_gmatcher *m);

/* The vocabulary as the mask sees it. */
typedef enum {
    SGLC_GTOK_TEXT = 0, /* matched by its bytes */
    SGLC_GTOK_EOG,      /* end of generation: allowed exactly in accepting states */
    SGLC_GTOK_NEVER,    /* control / special / empty tokens: never allowed */
    SGLC_GTOK_COUNT
} sglc_gtok_kind;

typedef struct sglc_gvocab sglc_gvocab;
/* bytes[i] / lens[i]: the bytes of token i (copied); kinds[i]: its sglc_gtok_kind. */
int sglc_gvocab_open(sglc_gvocab **out, int32_t n_vocab, const char *const *bytes,
                     const size_t *lens, const uint8_t *kinds);
void sglc_gvocab_close(sglc_gvocab *v);
int32_t sglc_gvocab_size(const sglc_gvocab *v);
size_t sglc_gvocab_mask_words(const sglc_gvocab *v); /* uint32 words of a mask */

/* Computes the mask of m's state into bits (sglc_gvocab_mask_words words; bit t = token t
 * allowed). Returns the number of allowed tokens, or SGLC_ERR_NOMEM. */
int64_t sglc_gmask_compute(const sglc_gvocab *v, const sglc_gmatcher *m, sglc_gscratch *sc,
                           uint32_t *bits);

/* A bounded cache of masks keyed by the exact matcher state (direct-mapped, 2 ways). */
typedef struct sglc_gmask_cache sglc_gmask_cache;
int sglc_gmask_cache_open(sglc_gmask_cache **out, size_t n_sets, size_t mask_words);
void sglc_gmask_cache_close(sglc_gmask_cache *c);
/* The cached mask of m's state, or NULL. The pointer is valid until the next put. */
const uint32_t *sglc_gmask_cache_get(sglc_gmask_cache *c, const sglc_gmatcher *m);
/* Stores bits for m's state (evicting the older entry of its set); 0 or SGLC_ERR_NOMEM. */
int sglc_gmask_cache_put(sglc_gmask_cache *c, const sglc_gmatcher *m, const uint32_t *bits);

#endif
