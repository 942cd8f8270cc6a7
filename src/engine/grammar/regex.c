/* Regex front end: the subset SGLang users write, over Unicode code points, with Python re
 * semantics under re.ASCII for the shorthand classes (\d = [0-9], \w = [A-Za-z0-9_],
 * \s = [ \t\n\r\f\v]); '.' is any code point but '\n'. Supported: literals (UTF-8), escapes,
 * classes with ranges and negation, '.', alternation, groups (...), (?:...), (?P<name>...),
 * quantifiers * + ? {n} {n,} {n,m} (a lazy '?' suffix is accepted: it changes which match
 * is found, not whether one exists), '^' at the start and '$' at the end of a top-level
 * alternative. The whole output must match (fullmatch). A '{' that does not start a
 * quantifier is a literal, as in Python. Refused with a message naming the position:
 * backreferences, lookaround, word boundaries, inline flags, possessive quantifiers. Parsing
 * recurses only into groups, at most SGLC_GRAM_MAX_NEST deep. */
#include <stdio.h>
#include <string.h>

#include "engine/grammar/grammar_impl.h"

typedef struct {
    gbuild *b;
    const unsigned char *s;
    size_t n, i;
    const char *what;
} rx;

static int rx_fail(rx *r, const char *msg) {
    return gb_fail(r->b, "%s: %s at position %zu", r->what, msg, r->i);
}

/* Decodes the code point at r->i (advancing); -1 on bad UTF-8. */
static int rx_cp(rx *r, uint32_t *cp) {
    const unsigned char *s = r->s + r->i;
    size_t left = r->n - r->i;
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        r->i++;
        return 0;
    }
    int len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
    if (len == 0 || c > 0xF4 || (size_t)len > left) return rx_fail(r, "invalid UTF-8");
    uint32_t v = c & (0x7Fu >> len);
    for (int k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80) return rx_fail(r, "invalid UTF-8");
        v = (v << 6) | (s[k] & 0x3Fu);
    }
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (v < min[len] || v > GRAM_MAX_CP || (v >= 0xD800 && v <= 0xDFFF))
        return rx_fail(r, "invalid UTF-8");
    *cp = v;
    r->i += (size_t)len;
    return 0;
}

static int hexval(unsigned c) {
    if (c >= '0' && c <= '9') return (int)(c - '0');
    if (c >= 'a' && c <= 'f') return (int)(c - 'a' + 10);
    if (c >= 'A' && c <= 'F') return (int)(c - 'A' + 10);
    return -1;
}

static int rx_hex(rx *r, int digits, uint32_t *cp) {
    uint32_t v = 0;
    for (int k = 0; k < digits; k++) {
        if (r->i >= r->n || hexval(r->s[r->i]) < 0) return rx_fail(r, "bad hex escape");
        v = v * 16 + (uint32_t)hexval(r->s[r->i++]);
    }
    if (v > GRAM_MAX_CP) return rx_fail(r, "code point beyond U+10FFFF");
    *cp = v;
    return 0;
}

/* Shorthand class letters: adds their ranges to the class under construction. */
static int add_shorthand(gbuild *b, unsigned c) {
    switch (c) {
    case 'd': return gb_cls_add(b, '0', '9');
    case 'w':
        return gb_cls_add(b, '0', '9') | gb_cls_add(b, 'A', 'Z') | gb_cls_add(b, 'a', 'z') |
               gb_cls_add(b, '_', '_');
    case 's': return gb_cls_add(b, '\t', '\r') | gb_cls_add(b, ' ', ' ');
    default: return -1;
    }
}

enum { ESC_CP = 0, ESC_CLASS = 1 };

/* Parses the escape after a backslash (r->i at the letter). Gives a code point, or for
 * \d \w \s (and upper-case negations) the shorthand letter in *cp with ESC_CLASS. */
static int rx_escape(rx *r, int in_class, uint32_t *cp, int *kind) {
    if (r->i >= r->n) return rx_fail(r, "trailing backslash");
    unsigned c = r->s[r->i];
    *kind = ESC_CP;
    if (c >= 0x80) return rx_cp(r, cp);
    r->i++;
    switch (c) {
    case 'd':
    case 'w':
    case 's':
    case 'D':
    case 'W':
    case 'S': *kind = ESC_CLASS, *cp = c; return 0;
    case 'n': *cp = '\n'; return 0;
    case 't': *cp = '\t'; return 0;
    case 'r': *cp = '\r'; return 0;
    case 'f': *cp = '\f'; return 0;
    case 'v': *cp = '\v'; return 0;
    case 'a': *cp = 7; return 0;
    case '0': *cp = 0; return 0;
    case 'x': return rx_hex(r, 2, cp);
    case 'u': return rx_hex(r, 4, cp);
    case 'U': return rx_hex(r, 8, cp);
    case 'b':
        if (in_class) {
            *cp = 8;
            return 0;
        }
        r->i--;
        return rx_fail(r, "word boundary \\b is not supported");
    default: break;
    }
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '1' && c <= '9')) {
        r->i--;
        if (c >= '1' && c <= '9') return rx_fail(r, "backreferences are not supported");
        return rx_fail(r, "unsupported escape");
    }
    *cp = c;
    return 0;
}

/* Adds shorthand letter l (possibly upper case: negated) to the current class. A negated
 * shorthand inside a class needs its complement ranges. */
static int class_add_shorthand(rx *r, unsigned l) {
    gbuild *b = r->b;
    unsigned low = l | 0x20u;
    if (l == low) return add_shorthand(b, l) == 0 ? 0 : -1;
    /* complement of the ASCII set: fixed range lists */
    static const uint32_t nd[][2] = {{0, '0' - 1}, {'9' + 1, GRAM_MAX_CP}};
    static const uint32_t nw[][2] = {{0, '0' - 1},
                                     {'9' + 1, 'A' - 1},
                                     {'Z' + 1, '_' - 1},
                                     {'_' + 1, 'a' - 1},
                                     {'z' + 1, GRAM_MAX_CP}};
    static const uint32_t ns[][2] = {{0, '\t' - 1}, {'\r' + 1, ' ' - 1}, {' ' + 1, GRAM_MAX_CP}};
    const uint32_t(*t)[2] = low == 'd' ? nd : low == 'w' ? nw : ns;
    int cnt = low == 'd' ? 2 : low == 'w' ? 5 : 3;
    for (int k = 0; k < cnt; k++)
        if (gb_cls_add(b, t[k][0], t[k][1]) != 0) return -1;
    return 0;
}

static int32_t rx_class(rx *r) {
    /* at '[' */
    size_t start = r->i++;
    int neg = 0;
    if (r->i < r->n && r->s[r->i] == '^') neg = 1, r->i++;
    gb_cls_begin(r->b);
    int first = 1;
    for (;;) {
        if (r->i >= r->n) {
            r->i = start;
            return rx_fail(r, "unterminated character class");
        }
        unsigned c = r->s[r->i];
        if (c == ']' && !first) {
            r->i++;
            break;
        }
        first = 0;
        uint32_t lo;
        int kind = ESC_CP;
        if (c == '\\') {
            r->i++;
            if (rx_escape(r, 1, &lo, &kind) != 0) return -1;
            if (kind == ESC_CLASS) {
                if (class_add_shorthand(r, lo) != 0) return -1;
                continue;
            }
        } else if (rx_cp(r, &lo) != 0) {
            return -1;
        }
        uint32_t hi = lo;
        if (r->i + 1 < r->n && r->s[r->i] == '-' && r->s[r->i + 1] != ']') {
            r->i++;
            unsigned d = r->s[r->i];
            if (d == '\\') {
                r->i++;
                if (rx_escape(r, 1, &hi, &kind) != 0) return -1;
                if (kind == ESC_CLASS) return rx_fail(r, "bad character range");
            } else if (rx_cp(r, &hi) != 0) {
                return -1;
            }
            if (hi < lo) return rx_fail(r, "bad character range (end before start)");
        }
        if (gb_cls_add(r->b, lo, hi) != 0) return -1;
    }
    return gb_class_node(r->b, gb_cls_end(r->b, neg));
}

static int32_t rx_alt(rx *r, int depth);

/* Reads a decimal number of at most 9 digits at r->i; -1 if none. */
static int32_t rx_num(rx *r) {
    size_t st = r->i;
    int32_t v = 0;
    while (r->i < r->n && r->s[r->i] >= '0' && r->s[r->i] <= '9') {
        if (r->i - st >= 9) return -2;
        v = v * 10 + (r->s[r->i++] - '0');
    }
    return r->i == st ? -1 : v;
}

/* At '{': a quantifier {n} {n,} {n,m} (returns 1 and the bounds), or 0 (a literal '{'). */
static int rx_braces(rx *r, int32_t *min, int32_t *max) {
    size_t st = r->i;
    r->i++;
    int32_t a = rx_num(r), c = -1;
    if (a == -2) {
        r->i = st;
        return rx_fail(r, "repetition bound too large");
    }
    if (r->i < r->n && r->s[r->i] == ',') {
        r->i++;
        c = rx_num(r);
        if (c == -2) {
            r->i = st;
            return rx_fail(r, "repetition bound too large");
        }
        if (a < 0) a = 0; /* {,m} is {0,m} in Python */
        if (c < 0) c = -1;
    } else {
        if (a < 0) {
            r->i = st;
            return 0;
        }
        c = a;
    }
    if (r->i >= r->n || r->s[r->i] != '}' || (a < 0)) {
        r->i = st;
        return 0;
    }
    r->i++;
    if (c >= 0 && c < a) {
        r->i = st;
        return rx_fail(r, "min repeat greater than max repeat");
    }
    if (a > SGLC_GRAM_MAX_REPEAT || c > SGLC_GRAM_MAX_REPEAT) {
        r->i = st;
        return gb_fail(r->b, "%s: repetition bound above %d at position %zu", r->what,
                       SGLC_GRAM_MAX_REPEAT, st);
    }
    *min = a;
    *max = c;
    return 1;
}

static int32_t rx_seq(rx *r, int depth) {
    int32_t seq = gb_seq(r->b);
    int at_start = 1;
    while (seq >= 0 && r->i < r->n) {
        unsigned c = r->s[r->i];
        if (c == '|' || c == ')') break;
        int32_t atom = -1;
        size_t atom_pos = r->i;
        if (c == '^') {
            if (depth != 0 || !at_start) return rx_fail(r, "'^' is only supported at the start");
            r->i++;
            continue;
        }
        if (c == '$') {
            r->i++;
            if (depth != 0 || (r->i < r->n && r->s[r->i] != '|')) {
                r->i--;
                return rx_fail(r, "'$' is only supported at the end");
            }
            continue;
        }
        at_start = 0;
        if (c == '*' || c == '+' || c == '?') return rx_fail(r, "nothing to repeat");
        if (c == '(') {
            if (depth + 1 >= SGLC_GRAM_MAX_NEST) return rx_fail(r, "groups nested too deeply");
            r->i++;
            if (r->i < r->n && r->s[r->i] == '?') {
                if (r->i + 1 < r->n && r->s[r->i + 1] == ':') {
                    r->i += 2;
                } else if (r->i + 2 < r->n && (r->s[r->i + 1] == 'P' || r->s[r->i + 1] == '<') &&
                           (r->s[r->i + 1] == '<' || r->s[r->i + 2] == '<') &&
                           !(r->s[r->i + 1] == '<' &&
                             (r->s[r->i + 2] == '=' || r->s[r->i + 2] == '!'))) {
                    r->i += r->s[r->i + 1] == 'P' ? 3 : 2;
                    size_t nst = r->i;
                    while (r->i < r->n && r->s[r->i] != '>')
                        r->i++;
                    if (r->i >= r->n || r->i == nst) return rx_fail(r, "bad group name");
                    r->i++;
                } else {
                    return rx_fail(r, "unsupported group (lookaround or inline flags)");
                }
            }
            atom = rx_alt(r, depth + 1);
            if (atom < 0) return -1;
            if (r->i >= r->n || r->s[r->i] != ')') {
                r->i = atom_pos;
                return rx_fail(r, "missing ')'");
            }
            r->i++;
        } else if (c == ')') {
            break;
        } else if (c == '[') {
            atom = rx_class(r);
        } else if (c == '.') {
            r->i++;
            static const uint32_t nl[2] = {'\n', '\n'};
            atom = gb_ranges(r->b, nl, 1, 1);
        } else if (c == '\\') {
            r->i++;
            uint32_t cp;
            int kind;
            if (rx_escape(r, 0, &cp, &kind) != 0) return -1;
            if (kind == ESC_CLASS) {
                unsigned low = (unsigned)cp | 0x20u;
                gb_cls_begin(r->b);
                if (add_shorthand(r->b, low) != 0) return -1;
                atom = gb_class_node(r->b, gb_cls_end(r->b, cp != low));
            } else {
                atom = gb_char(r->b, cp);
            }
        } else {
            uint32_t cp;
            if (rx_cp(r, &cp) != 0) return -1;
            atom = gb_char(r->b, cp);
        }
        if (atom < 0) return -1;
        /* quantifiers */
        int quantified = 0;
        while (r->i < r->n) {
            unsigned q = r->s[r->i];
            int32_t mn = 0, mx = 0;
            if (q == '*')
                mn = 0, mx = -1, r->i++;
            else if (q == '+')
                mn = 1, mx = -1, r->i++;
            else if (q == '?')
                mn = 0, mx = 1, r->i++;
            else if (q == '{') {
                int k = rx_braces(r, &mn, &mx);
                if (k < 0) return -1;
                if (k == 0) break;
            } else
                break;
            if (quantified) {
                r->i--;
                return rx_fail(r, "multiple repeat");
            }
            quantified = 1;
            atom = gb_repeat(r->b, atom, mn, mx);
            if (atom < 0) return -1;
            if (r->i < r->n && r->s[r->i] == '?') r->i++; /* lazy: same language */
            if (r->i < r->n && r->s[r->i] == '+')
                return rx_fail(r, "possessive quantifiers are not supported");
        }
        if (gb_add(r->b, seq, atom) < 0) return -1;
    }
    return seq;
}

static int32_t rx_alt(rx *r, int depth) {
    int32_t first = rx_seq(r, depth);
    if (first < 0) return -1;
    if (r->i >= r->n || r->s[r->i] != '|') return first;
    int32_t alt = gb_alt(r->b);
    if (gb_add(r->b, alt, first) < 0) return -1;
    while (r->i < r->n && r->s[r->i] == '|') {
        r->i++;
        int32_t s = rx_seq(r, depth);
        if (s < 0 || gb_add(r->b, alt, s) < 0) return -1;
    }
    return alt;
}

int32_t sglc_gram_regex_node(gbuild *b, const char *src, size_t len, const char *what) {
    rx r = {b, (const unsigned char *)src, len, 0, what};
    int32_t node = rx_alt(&r, 0);
    if (node < 0) return -1;
    if (r.i < r.n) return rx_fail(&r, "unbalanced ')'");
    return node;
}

int32_t sglc_gram_parse_regex(gbuild *b, const char *src, size_t len, const char *what) {
    int32_t root = gb_rule_new(b, "root", 4);
    int32_t node = sglc_gram_regex_node(b, src, len, what);
    if (root < 0 || node < 0) return -1;
    gb_rule_set(b, root, node);
    return root;
}
