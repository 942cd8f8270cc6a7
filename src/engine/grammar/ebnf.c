/* EBNF front end in the GBNF / SGLang form:
 *     root ::= "{" ws pair ("," ws pair)* "}"   # comment
 * Rules are `name ::= expression`; a rule ends where the next `name ::=` starts, so rules may
 * span lines. Expressions: "literals" and 'literals' with escapes (\n \t \r \\ \" \' \xHH
 * \uHHHH \UHHHHHHHH), [character classes] with ranges, negation and the same escapes, rule
 * names, ( ) groups, | alternation, postfix * + ? {m} {m,} {m,n}. Errors name line:column.
 * The start rule is `root`. Recursion is limited to group nesting (SGLC_GRAM_MAX_NEST). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/grammar/grammar_impl.h"

typedef struct {
    gbuild *b;
    const unsigned char *s;
    size_t n, i;
    size_t *first_use; /* per rule: offset of its first reference */
    size_t cap_use;
} eb;

static void line_col(const eb *p, size_t at, size_t *line, size_t *col) {
    *line = 1, *col = 1;
    for (size_t k = 0; k < at && k < p->n; k++) {
        if (p->s[k] == '\n')
            (*line)++, *col = 1;
        else
            (*col)++;
    }
}

static int eb_fail_at(eb *p, size_t at, const char *msg) {
    size_t l, c;
    line_col(p, at, &l, &c);
    return gb_fail(p->b, "ebnf: %s at line %zu column %zu", msg, l, c);
}

static int eb_fail(eb *p, const char *msg) {
    return eb_fail_at(p, p->i, msg);
}

static void skip_ws(eb *p) {
    while (p->i < p->n) {
        unsigned c = p->s[p->i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
            p->i++;
        else if (c == '#')
            while (p->i < p->n && p->s[p->i] != '\n')
                p->i++;
        else
            break;
    }
}

static int is_name_char(unsigned c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
}

static size_t name_len_at(const eb *p, size_t at) {
    size_t k = at;
    while (k < p->n && is_name_char(p->s[k]))
        k++;
    return k - at;
}

/* A rule definition starts at `at`: name, spaces, "::=". */
static int is_definition(const eb *p, size_t at) {
    size_t l = name_len_at(p, at);
    if (l == 0) return 0;
    size_t k = at + l;
    while (k < p->n && (p->s[k] == ' ' || p->s[k] == '\t'))
        k++;
    return k + 3 <= p->n && memcmp(p->s + k, "::=", 3) == 0;
}

static int hexval(unsigned c) {
    if (c >= '0' && c <= '9') return (int)(c - '0');
    if (c >= 'a' && c <= 'f') return (int)(c - 'a' + 10);
    if (c >= 'A' && c <= 'F') return (int)(c - 'A' + 10);
    return -1;
}

/* One (possibly escaped) code point of a literal or class at p->i. */
static int eb_char(eb *p, uint32_t *cp) {
    if (p->i >= p->n) return eb_fail(p, "unexpected end of grammar");
    unsigned c = p->s[p->i];
    if (c == '\\') {
        p->i++;
        if (p->i >= p->n) return eb_fail(p, "trailing backslash");
        unsigned e = p->s[p->i++];
        int digits = 0;
        switch (e) {
        case 'n': *cp = '\n'; return 0;
        case 't': *cp = '\t'; return 0;
        case 'r': *cp = '\r'; return 0;
        case 'f': *cp = '\f'; return 0;
        case 'v': *cp = '\v'; return 0;
        case '0': *cp = 0; return 0;
        case 'x': digits = 2; break;
        case 'u': digits = 4; break;
        case 'U': digits = 8; break;
        default:
            if (e >= 0x80) {
                p->i--;
                break;
            }
            *cp = e;
            return 0;
        }
        if (digits) {
            uint32_t v = 0;
            for (int k = 0; k < digits; k++) {
                if (p->i >= p->n || hexval(p->s[p->i]) < 0) return eb_fail(p, "bad hex escape");
                v = v * 16 + (uint32_t)hexval(p->s[p->i++]);
            }
            if (v > GRAM_MAX_CP || (v >= 0xD800 && v <= 0xDFFF))
                return eb_fail(p, "escape is not a Unicode scalar value");
            *cp = v;
            return 0;
        }
        c = p->s[p->i];
    }
    if (c < 0x80) {
        *cp = c;
        p->i++;
        return 0;
    }
    int len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
    if (len == 0 || c > 0xF4 || p->i + (size_t)len > p->n) return eb_fail(p, "invalid UTF-8");
    uint32_t v = c & (0x7Fu >> len);
    for (int k = 1; k < len; k++) {
        unsigned d = p->s[p->i + (size_t)k];
        if ((d & 0xC0) != 0x80) return eb_fail(p, "invalid UTF-8");
        v = (v << 6) | (d & 0x3Fu);
    }
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (v < min[len] || v > GRAM_MAX_CP || (v >= 0xD800 && v <= 0xDFFF))
        return eb_fail(p, "invalid UTF-8");
    *cp = v;
    p->i += (size_t)len;
    return 0;
}

static int32_t eb_ref(eb *p, size_t at, size_t len) {
    if (len > 256) return eb_fail_at(p, at, "rule name longer than 256 characters");
    int32_t r = gb_rule_find(p->b, (const char *)p->s + at, len);
    if (r >= 0) return r;
    r = gb_rule_new(p->b, (const char *)p->s + at, len);
    if (r < 0) return -1;
    if ((size_t)r >= p->cap_use) {
        size_t c = p->cap_use ? p->cap_use * 2 : 64;
        size_t *nu = realloc(p->first_use, c * sizeof *nu);
        if (!nu) return gb_fail(p->b, "out of memory");
        p->first_use = nu;
        p->cap_use = c;
    }
    p->first_use[r] = at;
    return r;
}

static int32_t eb_alt(eb *p, int depth);

static int32_t eb_number(eb *p) {
    size_t st = p->i;
    int32_t v = 0;
    while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') {
        if (p->i - st >= 9) return eb_fail(p, "number too large");
        v = v * 10 + (p->s[p->i++] - '0');
    }
    return p->i == st ? eb_fail(p, "expected a number") : v;
}

static int32_t eb_term(eb *p, int depth) {
    unsigned c = p->s[p->i];
    size_t at = p->i;
    if (c == '"' || c == '\'') {
        p->i++;
        int32_t seq = gb_seq(p->b);
        while (seq >= 0) {
            if (p->i >= p->n) return eb_fail_at(p, at, "unterminated literal");
            if (p->s[p->i] == c) {
                p->i++;
                break;
            }
            uint32_t cp;
            if (eb_char(p, &cp) != 0 || gb_add(p->b, seq, gb_char(p->b, cp)) < 0) return -1;
        }
        return seq;
    }
    if (c == '[') {
        p->i++;
        int neg = 0;
        if (p->i < p->n && p->s[p->i] == '^') neg = 1, p->i++;
        gb_cls_begin(p->b);
        for (;;) {
            if (p->i >= p->n) return eb_fail_at(p, at, "unterminated character class");
            if (p->s[p->i] == ']') {
                p->i++;
                break;
            }
            uint32_t lo, hi;
            if (eb_char(p, &lo) != 0) return -1;
            hi = lo;
            if (p->i + 1 < p->n && p->s[p->i] == '-' && p->s[p->i + 1] != ']') {
                p->i++;
                if (eb_char(p, &hi) != 0) return -1;
                if (hi < lo) return eb_fail(p, "character range end before start");
            }
            if (gb_cls_add(p->b, lo, hi) != 0) return -1;
        }
        return gb_class_node(p->b, gb_cls_end(p->b, neg));
    }
    if (c == '(') {
        if (depth + 1 >= SGLC_GRAM_MAX_NEST) return eb_fail(p, "groups nested too deeply");
        p->i++;
        int32_t e = eb_alt(p, depth + 1);
        if (e < 0) return -1;
        skip_ws(p);
        if (p->i >= p->n || p->s[p->i] != ')') return eb_fail_at(p, at, "missing ')'");
        p->i++;
        return e;
    }
    size_t l = name_len_at(p, p->i);
    if (l == 0) return eb_fail(p, "unexpected character");
    p->i += l;
    int32_t r = eb_ref(p, at, l);
    return r < 0 ? -1 : gb_ref(p->b, r);
}

static int32_t eb_seq(eb *p, int depth) {
    int32_t seq = gb_seq(p->b);
    while (seq >= 0) {
        skip_ws(p);
        if (p->i >= p->n) break;
        unsigned c = p->s[p->i];
        if (c == '|' || c == ')') break;
        if (is_definition(p, p->i)) {
            if (depth > 0) return eb_fail(p, "rule definition inside a group (missing ')'?)");
            break;
        }
        int32_t t = eb_term(p, depth);
        if (t < 0) return -1;
        /* postfix operators (no space before them, as GBNF) */
        while (p->i < p->n) {
            unsigned q = p->s[p->i];
            int32_t mn = 0, mx = 0;
            if (q == '*')
                mn = 0, mx = -1, p->i++;
            else if (q == '+')
                mn = 1, mx = -1, p->i++;
            else if (q == '?')
                mn = 0, mx = 1, p->i++;
            else if (q == '{') {
                size_t at = p->i++;
                skip_ws(p);
                mn = eb_number(p);
                if (mn < 0) return -1;
                skip_ws(p);
                mx = mn;
                if (p->i < p->n && p->s[p->i] == ',') {
                    p->i++;
                    skip_ws(p);
                    mx = -1;
                    if (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') {
                        mx = eb_number(p);
                        if (mx < 0) return -1;
                    }
                    skip_ws(p);
                }
                if (p->i >= p->n || p->s[p->i] != '}') return eb_fail(p, "expected '}'");
                p->i++;
                if (mx >= 0 && mx < mn) return eb_fail_at(p, at, "repetition {m,n} with n < m");
                if (mn > SGLC_GRAM_MAX_REPEAT || mx > SGLC_GRAM_MAX_REPEAT)
                    return eb_fail_at(p, at, "repetition bound above 1000");
            } else
                break;
            t = gb_repeat(p->b, t, mn, mx);
            if (t < 0) return -1;
        }
        if (gb_add(p->b, seq, t) < 0) return -1;
    }
    return seq;
}

static int32_t eb_alt(eb *p, int depth) {
    int32_t first = eb_seq(p, depth);
    if (first < 0) return -1;
    skip_ws(p);
    if (p->i >= p->n || p->s[p->i] != '|') return first;
    int32_t alt = gb_alt(p->b);
    if (gb_add(p->b, alt, first) < 0) return -1;
    while (p->i < p->n && p->s[p->i] == '|') {
        p->i++;
        int32_t s = eb_seq(p, depth);
        if (s < 0 || gb_add(p->b, alt, s) < 0) return -1;
        skip_ws(p);
    }
    return alt;
}

int32_t sglc_gram_parse_ebnf(gbuild *b, const char *src, size_t len) {
    eb p = {b, (const unsigned char *)src, len, 0, NULL, 0};
    int32_t root = -1;
    for (;;) {
        skip_ws(&p);
        if (p.i >= p.n || b->failed) break;
        size_t at = p.i, l = name_len_at(&p, p.i);
        if (!is_definition(&p, p.i)) {
            eb_fail(&p, "expected a rule definition 'name ::= ...'");
            break;
        }
        int32_t r = eb_ref(&p, at, l);
        if (r < 0) break;
        if (b->rule_body[r] >= 0) {
            eb_fail_at(&p, at, "rule defined twice");
            break;
        }
        p.i += l;
        skip_ws(&p);
        p.i += 3; /* ::= */
        int32_t body = eb_alt(&p, 0);
        if (body < 0) break;
        skip_ws(&p);
        if (p.i < p.n && !is_definition(&p, p.i)) {
            eb_fail(&p, p.s[p.i] == ')' ? "unbalanced ')'" : "unexpected character");
            break;
        }
        gb_rule_set(b, r, body);
    }
    if (!b->failed) {
        for (int32_t r = 0; r < b->n_rules; r++)
            if (b->rule_body[r] < 0) {
                char msg[320];
                snprintf(msg, sizeof msg, "rule '%s' is used but not defined", b->rule_name[r]);
                eb_fail_at(&p, p.first_use[r], msg);
                break;
            }
    }
    if (!b->failed) {
        root = gb_rule_find(b, "root", 4);
        if (root < 0) gb_fail(b, "ebnf: no 'root' rule");
    }
    free(p.first_use);
    return b->failed ? -1 : root;
}
