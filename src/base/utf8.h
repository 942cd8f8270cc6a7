/* Strict UTF-8 scanning shared by every parser that takes text from outside (HTTP bodies,
 * safetensors headers) and by the streaming detokenizer: no overlong forms, no surrogates,
 * nothing past U+10FFFF. */
#ifndef SGLC_BASE_UTF8_H
#define SGLC_BASE_UTF8_H

#include <stddef.h>

/* Scan at s[0..len) (len >= 1): returns > 0 for a complete valid sequence of that length,
 * 0 when s is a valid but unfinished prefix (more bytes may complete it), and -m when the
 * first m bytes are a maximal ill-formed subpart (one U+FFFD each, as WHATWG/Python do). */
int sglc_utf8_scan(const unsigned char *s, size_t len);

/* 1 when s[0..len) is entirely well-formed UTF-8. */
int sglc_utf8_valid(const char *s, size_t len);

#endif
