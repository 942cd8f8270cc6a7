/* Reasoning parsers: see reasoning.h. The tags are SGLang's Qwen3Detector / DeepSeekR1Detector
 * ones; qwen3 also accepts a reasoning block that the chat template opened (Qwen3 templates with
 * enable_thinking put "<think>\n" in the prompt only in their -Thinking variants, so the plain
 * qwen3 parser looks for the tag in the output). */
#include "server/reasoning.h"

#include <string.h>

static const char k_open[] = "<think>", k_close[] = "</think>";
#define OPEN_LEN (sizeof k_open - 1)
#define CLOSE_LEN (sizeof k_close - 1)

sglc_reasoning_kind sglc_reasoning_kind_from_name(const char *name) {
    if (!name) return SGLC_REASONING_NONE;
    if (strcmp(name, "qwen3") == 0) return SGLC_REASONING_QWEN3;
    if (strcmp(name, "deepseek-r1") == 0) return SGLC_REASONING_DEEPSEEK_R1;
    return SGLC_REASONING_NONE;
}

static int is_ws(char c) {
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

static size_t skip_ws(const char *t, size_t i, size_t len) {
    while (i < len && is_ws(t[i]))
        i++;
    return i;
}

/* Length of the longest suffix of t[from, len) that is a proper prefix of tag. */
static size_t partial_tag_suffix(const char *t, size_t from, size_t len, const char *tag,
                                 size_t tag_len) {
    size_t max = len - from < tag_len - 1 ? len - from : tag_len - 1;
    for (size_t k = max; k > 0; k--)
        if (memcmp(t + len - k, tag, k) == 0) return k;
    return 0;
}

static const char *find(const char *t, size_t from, size_t len, const char *tag, size_t tag_len) {
    if (len < tag_len) return NULL;
    for (size_t i = from; i + tag_len <= len; i++)
        if (t[i] == tag[0] && memcmp(t + i, tag, tag_len) == 0) return t + i;
    return NULL;
}

void sglc_reasoning_split_text(sglc_reasoning_kind kind, const char *text, size_t len, int final,
                               sglc_reasoning_split *out) {
    memset(out, 0, sizeof *out);
    if (kind == SGLC_REASONING_NONE) {
        out->content_len = len;
        return;
    }
    size_t start = skip_ws(text, 0, len);
    size_t rs; /* where the reasoning starts */
    if (len - start >= OPEN_LEN && memcmp(text + start, k_open, OPEN_LEN) == 0) {
        rs = start + OPEN_LEN;
    } else if (!final && len - start < OPEN_LEN && memcmp(text + start, k_open, len - start) == 0) {
        return; /* maybe the opening tag: hold everything */
    } else if (kind == SGLC_REASONING_DEEPSEEK_R1) {
        rs = 0;
    } else {
        out->content_len = len; /* qwen3 without <think>: all answer */
        return;
    }
    size_t r0 = skip_ws(text, rs, len);
    const char *close = find(text, rs, len, k_close, CLOSE_LEN);
    size_t r_end;
    if (close) {
        r_end = (size_t)(close - text);
        out->reasoning_closed = 1;
        size_t c0 = skip_ws(text, r_end + CLOSE_LEN, len);
        out->content_off = c0;
        out->content_len = len - c0;
    } else {
        r_end = final ? len : len - partial_tag_suffix(text, rs, len, k_close, CLOSE_LEN);
    }
    /* trailing whitespace of the reasoning: dropped when it ends, held back while it may not */
    while (r_end > r0 && is_ws(text[r_end - 1]))
        r_end--;
    if (r_end > r0) {
        out->reasoning_off = r0;
        out->reasoning_len = r_end - r0;
    } else {
        out->reasoning_off = r0 < len ? r0 : len;
    }
}
