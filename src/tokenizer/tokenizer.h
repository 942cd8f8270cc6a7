/* Tokenizer: byte-level BPE as stored in GGUF ("gpt2" model with its pre-tokenizer), special
 * tokens, bos/eos, encode and decode, and a streaming detokenizer that only ever emits complete
 * UTF-8 sequences. The same object is built from a Hugging Face folder's tokenizer.json
 * (tokenizer_json.c). Immutable after open, so any number of threads may encode/decode
 * concurrently. */
#ifndef SGLC_TOKENIZER_TOKENIZER_H
#define SGLC_TOKENIZER_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "base/log.h"
#include "formats/gguf.h"

typedef struct sglc_tokenizer sglc_tokenizer;

/* Builds the tokenizer from tokenizer.ggml.* metadata; validates ROBUSTNESS.md §26. */
int sglc_tokenizer_open_gguf(sglc_tokenizer **out, const sglc_gguf *g, sglc_err *err);
/* Same, with tokenizer.ggml.pre replaced by pre_override (NULL: keep the file's); lets tests
 * run every pre-tokenizer over one vocab. */
int sglc_tokenizer_open_gguf_pre(sglc_tokenizer **out, const sglc_gguf *g, const char *pre_override,
                                 sglc_err *err);

/* The vocab as plain arrays (borrowed for the duration of the call): what open_gguf reads from
 * tokenizer.ggml.*, and what tests use to build malformed vocabs without crafting files. */
typedef struct {
    const char *model; /* tokenizer.ggml.model; NULL = "gpt2" */
    const char *pre;   /* tokenizer.ggml.pre; NULL or "" = "default" */
    int64_t n_tokens;
    const char *const *tokens;  /* not necessarily NUL-terminated when token_lens is set */
    const size_t *token_lens;   /* NULL: tokens are NUL-terminated */
    const int32_t *token_types; /* NULL: all normal */
    int64_t n_token_types;
    int64_t n_merges;
    const char *const *merges;  /* "left right" */
    const size_t *merge_lens;   /* NULL: NUL-terminated */
    int64_t bos, eos, eot, eom; /* -1 when absent */
    int add_bos;                /* -1: the pre-tokenizer's default */
    const char *const *regexes; /* PCRE2 patterns replacing the pre-type's list */
    size_t n_regexes;
} sglc_tokenizer_vocab_desc;

int sglc_tokenizer_open_vocab(sglc_tokenizer **out, const sglc_tokenizer_vocab_desc *v,
                              sglc_err *err);
/* Builds the tokenizer from a Hugging Face model folder: dir/tokenizer.json (byte-level BPE with
 * ByteLevel/Split/Digits pre-tokenizers, NFC/NFD/NFKC/NFKD normalizers, added tokens),
 * dir/tokenizer_config.json (bos/eos, add_bos_token, chat_template; optional) and
 * dir/generation_config.json (eos_token_id: every id listed ends generation; optional).
 * Encodes like HF `tokenizers` (added tokens matched leftmost-longest on the raw text);
 * decode gives HF's decode without clean-up unless the config asks for it. Validates
 * ROBUSTNESS.md §26 and refuses what it does not support by name. */
int sglc_tokenizer_open_hf(sglc_tokenizer **out, const char *dir, sglc_err *err);
/* Writes the GGUF's tokenizer as a Hugging Face tokenizer folder in dir (created if missing):
 * tokenizer.json, tokenizer_config.json, special_tokens_map.json, generation_config.json, which
 * HF `tokenizers`/transformers load and which encode as sglc_tokenizer_open_gguf's tokenizer
 * does. pre_override as in open_gguf_pre (NULL: the file's). Built with cJSON (export_hf.c). */
int sglc_tokenizer_export_hf(const sglc_gguf *g, const char *pre_override, const char *dir,
                             sglc_err *err);
void sglc_tokenizer_close(sglc_tokenizer *t);

/* The chat template (Jinja source) from tokenizer.chat_template or tokenizer_config.json, owned
 * by the tokenizer; NULL when the model has none. */
const char *sglc_tokenizer_chat_template(const sglc_tokenizer *t);

int32_t sglc_tokenizer_vocab_size(const sglc_tokenizer *t);
int32_t sglc_tokenizer_bos(const sglc_tokenizer *t); /* -1 if none */
int32_t sglc_tokenizer_eos(const sglc_tokenizer *t); /* -1 if none */
int sglc_tokenizer_add_bos(const sglc_tokenizer *t); /* the model's default */
/* End-of-generation: eos, and tokens like <|im_end|>/<|endoftext|>/<|eot_id|> that llama.cpp
 * also treats as end of generation. */
int sglc_tokenizer_is_eog(const sglc_tokenizer *t, int32_t id);
/* Control, unknown or unused tokens (special markup such as <|im_start|>): never text. */
int sglc_tokenizer_is_control(const sglc_tokenizer *t, int32_t id);

/* Encodes len bytes of text. parse_special != 0: special/control token markup in the text
 * (e.g. "<|im_start|>") becomes the special token, as llama.cpp does for raw prompts; == 0:
 * it is tokenized as plain text. add_bos prepends bos when the vocab has one.
 * Writes at most cap ids to ids and returns the total number of ids the text needs (call
 * again with a bigger buffer if larger than cap), or a negative sglc_status. */
int64_t sglc_tokenizer_encode(const sglc_tokenizer *t, const char *text, size_t len,
                              int parse_special, int add_bos, int32_t *ids, size_t cap);

/* The bytes a token stands for (byte-level decoding applied; special tokens give their text).
 * Returns a pointer owned by the tokenizer, or NULL for an out-of-range id. */
const char *sglc_tokenizer_token_bytes(const sglc_tokenizer *t, int32_t id, size_t *len);

/* Decodes ids into out (at most cap bytes, not NUL-terminated); returns the total bytes
 * needed. skip_special != 0 drops control (and unknown) tokens. Like llama.cpp's detokenize,
 * pre-types with clean_up_tokenization_spaces (gpt-2, llama3, starcoder, default; not smollm
 * or qwen2) then drop the space in " ." " ," " ?" " !" " 's" " 'm" " 're" " 've" and " ' ". */
size_t sglc_tokenizer_decode(const sglc_tokenizer *t, const int32_t *ids, size_t n,
                             int skip_special, char *out, size_t cap);

/* Streaming detokenizer: push tokens one by one; each push appends to out only complete UTF-8
 * sequences of the token pieces (no space clean-up, as llama.cpp's per-token streaming) and
 * keeps an unfinished tail (at most 3 bytes) for the next push. A byte sequence
 * that can never become valid UTF-8 is emitted as U+FFFD, like llama.cpp / HF do. */
typedef struct {
    unsigned char pending[8];
    size_t n_pending;
} sglc_detok_stream;

void sglc_detok_stream_init(sglc_detok_stream *s);
/* Returns the number of bytes written to out; cap must be at least
 * sglc_detok_stream_cap(t) (ill-formed bytes expand to 3-byte U+FFFD). */
size_t sglc_detok_stream_cap(const sglc_tokenizer *t);
size_t sglc_detok_stream_push(sglc_detok_stream *s, const sglc_tokenizer *t, int32_t id,
                              int skip_special, char *out, size_t cap);
/* Flushes the tail at end of stream (invalid tail -> U+FFFD). */
size_t sglc_detok_stream_flush(sglc_detok_stream *s, char *out, size_t cap);

#endif
