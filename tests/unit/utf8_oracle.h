/* An independent UTF-8 well-formedness check for tests and fuzz targets: written apart from
 * the library's scanner (src/base/utf8.c) so that it can catch that scanner's mistakes. */
#ifndef SGLC_TEST_UTF8_ORACLE_H
#define SGLC_TEST_UTF8_ORACLE_H

#include <stddef.h>

static inline int valid_utf8(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned char b = s[i];
        size_t need;
        unsigned char lo = 0x80, hi = 0xBF;
        if (b < 0x80) {
            i++;
            continue;
        } else if (b >= 0xC2 && b <= 0xDF) {
            need = 1;
        } else if (b == 0xE0) {
            need = 2, lo = 0xA0;
        } else if (b == 0xED) {
            need = 2, hi = 0x9F;
        } else if (b >= 0xE1 && b <= 0xEF) {
            need = 2;
        } else if (b == 0xF0) {
            need = 3, lo = 0x90;
        } else if (b == 0xF4) {
            need = 3, hi = 0x8F;
        } else if (b >= 0xF1 && b <= 0xF3) {
            need = 3;
        } else {
            return 0;
        }
        for (size_t k = 1; k <= need; k++) {
            if (i + k >= n) return 0;
            unsigned char c = s[i + k];
            if (c < lo || c > hi) return 0;
            lo = 0x80, hi = 0xBF;
        }
        i += need + 1;
    }
    return 1;
}

#endif
