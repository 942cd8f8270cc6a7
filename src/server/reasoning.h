/* Reasoning parsers (SGLang's --reasoning-parser): split a model's output into the text between
 * <think> and </think> (OpenAI-style `reasoning_content`) and the answer (`content`).
 *
 * The split is a pure function of the whole output so far, so a streamed response is built from
 * the same function as a complete one: each chunk sends what the split gained since the last
 * chunk. While streaming, bytes that may still turn out to be part of a tag (a trailing "</thi")
 * and whitespace that may end the reasoning are held back; the final split releases or drops
 * them. Pure, no allocation, no engine access: any thread. */
#ifndef SGLC_SERVER_REASONING_H
#define SGLC_SERVER_REASONING_H

#include <stddef.h>

typedef enum {
    SGLC_REASONING_NONE = 0,
    SGLC_REASONING_QWEN3,       /* reasoning only when the output opens with <think> */
    SGLC_REASONING_DEEPSEEK_R1, /* the template opened <think>: the output starts inside it */
    SGLC_REASONING_COUNT
} sglc_reasoning_kind;

/* "qwen3", "deepseek-r1"; SGLC_REASONING_NONE for NULL or anything else. */
sglc_reasoning_kind sglc_reasoning_kind_from_name(const char *name);

typedef struct {
    size_t reasoning_off, reasoning_len; /* byte range of text: reasoning_content */
    size_t content_off, content_len;     /* byte range of text: content */
    int reasoning_closed;                /* </think> seen */
} sglc_reasoning_split;

/* Splits text[0, len). final: the output is complete (nothing is held back; an unclosed
 * reasoning block is all reasoning). Leading and trailing whitespace of the reasoning and leading
 * whitespace of the content are not part of either range. Ranges only grow as text grows. */
void sglc_reasoning_split_text(sglc_reasoning_kind kind, const char *text, size_t len, int final,
                               sglc_reasoning_split *out);

#endif
