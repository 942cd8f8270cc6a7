/* JSON Schema front end (parsed with cJSON) compiled to grammar rules.
 *
 * Supported: type (string, number, integer, boolean, null, object, array, and arrays of
 * types), properties, required, additionalProperties (false / true / a schema), enum, const,
 * items, minItems / maxItems, nested objects, local $ref ("#", "#/$defs/...",
 * "#/definitions/..." or any JSON pointer into the document; recursion allowed), anyOf / oneOf
 * (both as a union), allOf of one schema, string minLength / maxLength, pattern (the regex
 * front end; unanchored sides get ".*" so it means "contains", as JSON Schema's search does),
 * formats date, time, date-time, uuid, ipv4, email (others: any string), integer bounds
 * (minimum / maximum / exclusive*, exact digit-range grammars), number bounds only as a sign.
 * Other keywords are annotations or ignored (multipleOf, uniqueItems, min/maxProperties,
 * patternProperties, not, if/then/else).
 *
 * Choices (documented for users, as xgrammar's strict mode does):
 *  - Properties appear in declared order; non-required ones may be left out. Required names
 *    missing from properties follow them, with any value.
 *  - additionalProperties absent counts as false when the schema lists properties, and as true
 *    (any members) when it lists none (so {"type": "object"} is any object).
 *  - Whitespace is bounded: at most one optional space after '{', '[', ',' and ':' and before
 *    '}' and ']', none elsewhere (no newlines, nothing around the top-level value). This
 *    accepts compact JSON and Python's json.dumps default, and a small model cannot loop on
 *    whitespace.
 *  - With pattern or format, minLength / maxLength are ignored; pattern classes lose '"', '\\'
 *    and control characters (the output string stays unescaped).
 * Recursion: sub-schemas nest at most SGLC_GRAM_MAX_NEST deep; $ref targets are compiled from a
 * work list, once each, so recursive references do not recurse in C. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/grammar/grammar_impl.h"

typedef struct {
    char *ref;
    int32_t rule;
    const cJSON *target;
    int done;
} js_ref;

typedef struct {
    gbuild *b;
    cJSON *doc;
    js_ref *refs;
    int32_t n_refs, cap_refs;
    int32_t r_value, r_string, r_number, r_object, r_array; /* shared rules, -1 until made */
    char path[512];
} js;

static int js_fail(js *j, const char *fmt, const char *arg) {
    char msg[256];
    snprintf(msg, sizeof msg, fmt, arg ? arg : "");
    return gb_fail(j->b, "json_schema: %s: %s", j->path[0] ? j->path : "(root)", msg);
}

static size_t path_push(js *j, const char *seg) {
    size_t n = strlen(j->path);
    snprintf(j->path + n, sizeof j->path - n, "%s%s", n ? "." : "", seg);
    return n;
}

static void path_pop(js *j, size_t n) {
    j->path[n] = 0;
}

static int32_t lit(js *j, const char *s) {
    return gb_literal(j->b, s, strlen(s));
}

static int32_t ws(js *j) {
    return gb_repeat(j->b, gb_char(j->b, ' '), 0, 1);
}

static int32_t seq2(js *j, int32_t a, int32_t c) {
    int32_t s = gb_seq(j->b);
    gb_add(j->b, s, a);
    return gb_add(j->b, s, c);
}

static int32_t seq3(js *j, int32_t a, int32_t c, int32_t d) {
    int32_t s = seq2(j, a, c);
    return gb_add(j->b, s, d);
}

static int32_t rx(js *j, const char *re, int json_content) {
    int keep = j->b->json_restrict;
    j->b->json_restrict = json_content;
    int32_t n = sglc_gram_regex_node(j->b, re, strlen(re), "pattern");
    j->b->json_restrict = keep;
    return n;
}

/* A rule made once from a body node (shared by every use). */
static int32_t rule_of(js *j, const char *name, int32_t body) {
    int32_t r = gb_rule_new(j->b, name, strlen(name));
    if (r < 0 || body < 0) return -1;
    gb_rule_set(j->b, r, body);
    return r;
}

static int32_t json_string_char(js *j) {
    /* [^"\\\x00-\x1f] | \\ (["\\/bfnrt] | u[0-9a-fA-F]{4}) */
    return rx(j, "[^\"\\\\\\x00-\\x1f]|\\\\([\"\\\\/bfnrt]|u[0-9a-fA-F]{4})", 0);
}

static int32_t string_rule(js *j) {
    if (j->r_string < 0) {
        int32_t body = seq3(j, gb_char(j->b, '"'), gb_repeat(j->b, json_string_char(j), 0, -1),
                            gb_char(j->b, '"'));
        j->r_string = rule_of(j, "string", body);
    }
    return j->r_string;
}

/* Number literals are bounded: at most 19 integer digits (every int64), 17 fraction digits (a
 * double's precision) and a 3-digit exponent. JSON Schema puts no bound on them, but no JSON
 * parser keeps more, and a small model under an unbounded number grammar can write digits until
 * max_tokens (seen with SmolLM2-135M: "1000000000..."), which leaves an answer that never parses.
 */
#define MAX_INT_DIGITS 19
#define INT_BODY "(0|[1-9][0-9]{0,18})"
#define NUM_BODY INT_BODY "(\\.[0-9]{1,17})?([eE][+-]?[0-9]{1,3})?"

static int32_t number_rule(js *j) {
    if (j->r_number < 0) j->r_number = rule_of(j, "number", rx(j, "-?" NUM_BODY, 0));
    return j->r_number;
}

/* value, object and array of any content (mutually recursive rules). */
static int32_t value_rule(js *j) {
    if (j->r_value >= 0) return j->r_value;
    gbuild *b = j->b;
    j->r_value = gb_rule_new(b, "value", 5);
    j->r_object = gb_rule_new(b, "object", 6);
    j->r_array = gb_rule_new(b, "array", 5);
    if (j->r_value < 0 || j->r_object < 0 || j->r_array < 0) return -1;
    int32_t v = gb_alt(b);
    gb_add(b, v, gb_ref(b, j->r_object));
    gb_add(b, v, gb_ref(b, j->r_array));
    gb_add(b, v, gb_ref(b, string_rule(j)));
    gb_add(b, v, gb_ref(b, number_rule(j)));
    gb_add(b, v, lit(j, "true"));
    gb_add(b, v, lit(j, "false"));
    gb_add(b, v, lit(j, "null"));
    gb_rule_set(b, j->r_value, v);
    /* "{" ws (member ("," ws member)*)? ws "}" with member = string ":" ws value */
    int32_t member = gb_seq(b);
    gb_add(b, member, gb_ref(b, j->r_string));
    gb_add(b, member, gb_char(b, ':'));
    gb_add(b, member, ws(j));
    gb_add(b, member, gb_ref(b, j->r_value));
    int32_t mrule = rule_of(j, "member", member);
    int32_t more = gb_repeat(b, seq3(j, gb_char(b, ','), ws(j), gb_ref(b, mrule)), 0, -1);
    int32_t obj = gb_seq(b);
    gb_add(b, obj, gb_char(b, '{'));
    gb_add(b, obj, ws(j));
    gb_add(b, obj, gb_repeat(b, seq2(j, gb_ref(b, mrule), more), 0, 1));
    gb_add(b, obj, ws(j));
    gb_add(b, obj, gb_char(b, '}'));
    gb_rule_set(b, j->r_object, obj);
    int32_t items = gb_repeat(b, seq3(j, gb_char(b, ','), ws(j), gb_ref(b, j->r_value)), 0, -1);
    int32_t arr = gb_seq(b);
    gb_add(b, arr, gb_char(b, '['));
    gb_add(b, arr, ws(j));
    gb_add(b, arr, gb_repeat(b, seq2(j, gb_ref(b, j->r_value), items), 0, 1));
    gb_add(b, arr, ws(j));
    gb_add(b, arr, gb_char(b, ']'));
    gb_rule_set(b, j->r_array, arr);
    return b->failed ? -1 : j->r_value;
}

/* JSON text of a string (the key of a property) with the escapes JSON requires. */
static char *json_quote(const char *s) {
    size_t n = strlen(s);
    if (n > (SIZE_MAX - 3) / 6) return NULL;
    char *out = malloc(6 * n + 3), *o = out;
    if (!out) return NULL;
    *o++ = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            *o++ = '\\', *o++ = (char)*p;
        else if (*p < 0x20)
            o += sprintf(o, "\\u%04x", *p);
        else
            *o++ = (char)*p;
    }
    *o++ = '"';
    *o = 0;
    return out;
}

/* Exactly the JSON value v (enum / const), with the same optional spaces as any other value. */
static int32_t literal_json(js *j, const cJSON *v, int depth) {
    gbuild *b = j->b;
    if (cJSON_IsObject(v) || cJSON_IsArray(v)) {
        if (depth > SGLC_GRAM_MAX_NEST)
            return js_fail(j, "enum / const value nested too deeply%s", "");
        int obj = cJSON_IsObject(v);
        int32_t seq = gb_seq(b);
        gb_add(b, seq, gb_char(b, obj ? '{' : '['));
        gb_add(b, seq, ws(j));
        int first = 1;
        const cJSON *x;
        cJSON_ArrayForEach(x, v) {
            if (!first) {
                gb_add(b, seq, gb_char(b, ','));
                gb_add(b, seq, ws(j));
            }
            first = 0;
            if (obj) {
                char *key = json_quote(x->string);
                if (!key) return gb_fail(b, "out of memory");
                gb_add(b, seq, lit(j, key));
                free(key);
                gb_add(b, seq, gb_char(b, ':'));
                gb_add(b, seq, ws(j));
            }
            gb_add(b, seq, literal_json(j, x, depth + 1));
        }
        gb_add(b, seq, ws(j));
        gb_add(b, seq, gb_char(b, obj ? '}' : ']'));
        return b->failed ? -1 : seq;
    }
    char *t = cJSON_PrintUnformatted(v);
    if (!t) return gb_fail(j->b, "out of memory");
    int32_t n = gb_literal(j->b, t, strlen(t));
    cJSON_free(t);
    return n;
}

/* ---- integer ranges ---- */

/* Numbers written with exactly n digits between lo and hi (digit strings, lo <= hi). */
static int32_t digits_range(js *j, const char *lo, const char *hi, int n) {
    gbuild *b = j->b;
    if (n == 0) return gb_seq(b);
    int all0 = 1, all9 = 1;
    for (int k = 1; k < n; k++)
        all0 &= lo[k] == '0', all9 &= hi[k] == '9';
    if (lo[0] == hi[0])
        return seq2(j, gb_char(b, (uint32_t)lo[0]), digits_range(j, lo + 1, hi + 1, n - 1));
    uint32_t d09[2] = {'0', '9'};
    if (all0 && all9) {
        uint32_t r[2] = {(uint32_t)lo[0], (uint32_t)hi[0]};
        return seq2(j, gb_ranges(b, r, 1, 0), gb_repeat(b, gb_ranges(b, d09, 1, 0), n - 1, n - 1));
    }
    char nines[24], zeros[24];
    memset(nines, '9', sizeof nines);
    memset(zeros, '0', sizeof zeros);
    int32_t alt = gb_alt(b);
    gb_add(b, alt, seq2(j, gb_char(b, (uint32_t)lo[0]), digits_range(j, lo + 1, nines, n - 1)));
    if (hi[0] - lo[0] > 1) {
        uint32_t r[2] = {(uint32_t)lo[0] + 1, (uint32_t)hi[0] - 1};
        gb_add(b, alt,
               seq2(j, gb_ranges(b, r, 1, 0), gb_repeat(b, gb_ranges(b, d09, 1, 0), n - 1, n - 1)));
    }
    gb_add(b, alt, seq2(j, gb_char(b, (uint32_t)hi[0]), digits_range(j, zeros, hi + 1, n - 1)));
    return alt;
}

static int ndigits(long long x) {
    int n = 1;
    while (x >= 10)
        x /= 10, n++;
    return n;
}

/* Non-negative integers in [a, c] (c < 0: unbounded), no leading zeros. */
static int32_t nonneg_range(js *j, long long a, long long c) {
    gbuild *b = j->b;
    int32_t alt = gb_alt(b);
    int la = ndigits(a), lc = c < 0 ? la : ndigits(c);
    long long p10 = 1;
    for (int k = 1; k < la; k++)
        p10 *= 10;
    for (int L = la; L <= lc; L++, p10 *= 10) {
        long long lo = L == la ? a : p10;
        long long hi = (c >= 0 && L == lc) ? c : p10 * 10 - 1;
        char ls[64], hs[64];
        if (L > 19) break; /* bounds are below 1e17 */
        snprintf(ls, sizeof ls, "%0*lld", L & 31, lo);
        snprintf(hs, sizeof hs, "%0*lld", L & 31, hi);
        gb_add(b, alt, digits_range(j, ls, hs, L));
    }
    if (c < 0) { /* every number with more digits than a */
        uint32_t d19[2] = {'1', '9'}, d09[2] = {'0', '9'};
        gb_add(b, alt,
               seq2(j, gb_ranges(b, d19, 1, 0),
                    gb_repeat(b, gb_ranges(b, d09, 1, 0), la, MAX_INT_DIGITS - 1)));
    }
    return alt;
}

#define BOUND_LIMIT 100000000000000000LL /* 1e17: digit ranges stay within int64 */

/* Reads a numeric bound; 1 when present and representable. */
static int get_bound(js *j, const cJSON *s, const char *key, double *v) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(s, key);
    if (!x) return 0;
    if (!cJSON_IsNumber(x)) {
        js_fail(j, "%s must be a number", key);
        return -1;
    }
    if (!isfinite(x->valuedouble) || fabs(x->valuedouble) > (double)BOUND_LIMIT) return 0;
    *v = x->valuedouble;
    return 1;
}

/* Lower / upper bounds of a schema (draft 4 boolean exclusives and draft 6+ numbers). */
static int bounds(js *j, const cJSON *s, int integer, int *has_lo, double *lo, int *has_hi,
                  double *hi, int *excl_lo, int *excl_hi) {
    double v;
    int k;
    *has_lo = *has_hi = *excl_lo = *excl_hi = 0;
    if ((k = get_bound(j, s, "minimum", &v)) < 0) return -1;
    if (k) *has_lo = 1, *lo = v;
    if ((k = get_bound(j, s, "maximum", &v)) < 0) return -1;
    if (k) *has_hi = 1, *hi = v;
    const cJSON *el = cJSON_GetObjectItemCaseSensitive(s, "exclusiveMinimum");
    const cJSON *eh = cJSON_GetObjectItemCaseSensitive(s, "exclusiveMaximum");
    if (cJSON_IsTrue(el) && *has_lo) *excl_lo = 1;
    if (cJSON_IsTrue(eh) && *has_hi) *excl_hi = 1;
    if (cJSON_IsNumber(el)) {
        if ((k = get_bound(j, s, "exclusiveMinimum", &v)) < 0) return -1;
        if (k && (!*has_lo || v >= *lo)) *has_lo = 1, *lo = v, *excl_lo = 1;
    }
    if (cJSON_IsNumber(eh)) {
        if ((k = get_bound(j, s, "exclusiveMaximum", &v)) < 0) return -1;
        if (k && (!*has_hi || v <= *hi)) *has_hi = 1, *hi = v, *excl_hi = 1;
    }
    (void)integer;
    return 0;
}

static int32_t integer_schema(js *j, const cJSON *s) {
    int has_lo, has_hi, xl, xh;
    double dlo = 0, dhi = 0;
    if (bounds(j, s, 1, &has_lo, &dlo, &has_hi, &dhi, &xl, &xh) != 0) return -1;
    if (!has_lo && !has_hi) return rx(j, "-?" INT_BODY, 0);
    long long lo = 0, hi = 0;
    if (has_lo) lo = xl ? (long long)floor(dlo) + 1 : (long long)ceil(dlo);
    if (has_hi) hi = xh ? (long long)ceil(dhi) - 1 : (long long)floor(dhi);
    if (has_lo && has_hi && lo > hi) return js_fail(j, "minimum is greater than maximum%s", "");
    gbuild *b = j->b;
    int32_t alt = gb_alt(b);
    if (!has_hi || hi >= 0)
        gb_add(b, alt, nonneg_range(j, has_lo && lo > 0 ? lo : 0, has_hi ? hi : -1));
    if (!has_lo || lo < 0) {
        long long mlo = has_hi && hi < -1 ? -hi : 1, mhi = has_lo ? -lo : -1;
        gb_add(b, alt, seq2(j, gb_char(b, '-'), nonneg_range(j, mlo, mhi)));
    }
    return alt;
}

static int32_t number_schema(js *j, const cJSON *s) {
    int has_lo, has_hi, xl, xh;
    double lo = 0, hi = 0;
    if (bounds(j, s, 0, &has_lo, &lo, &has_hi, &hi, &xl, &xh) != 0) return -1;
    if (has_lo && has_hi && (lo > hi || (lo == hi && (xl || xh))))
        return js_fail(j, "minimum is greater than maximum%s", "");
    /* only the sign is expressible */
    if (has_lo && lo >= 0) return rx(j, NUM_BODY, 0);
    if (has_hi && (hi < 0 || (hi == 0 && xh))) return rx(j, "-" NUM_BODY, 0);
    return gb_ref(j->b, number_rule(j));
}

/* A non-negative integer keyword, at most SGLC_GRAM_MAX_REPEAT; *v untouched when absent. */
static int get_count(js *j, const cJSON *s, const char *key, int32_t *v) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(s, key);
    if (!x) return 0;
    if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble != floor(x->valuedouble))
        return js_fail(j, "%s must be a non-negative integer", key);
    if (x->valuedouble > SGLC_GRAM_MAX_REPEAT)
        return js_fail(j, "%s above 1000 is not supported", key);
    *v = (int32_t)x->valuedouble;
    return 0;
}

static const char *const k_formats[][2] = {
    {"date", "[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"},
    {"time",
     "([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]+)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"},
    {"date-time", "[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt]([01][0-9]|2[0-3]):[0-5]"
                  "[0-9]:[0-5][0-9](\\.[0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"},
    {"uuid", "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"},
    {"ipv4", "((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]"
             "[0-9]|[1-9]?[0-9])"},
    {"email", "[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\\.[A-Za-z0-9-]+)*\\.[A-Za-z]{2,}"},
};

static int32_t string_schema(js *j, const cJSON *s) {
    gbuild *b = j->b;
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(s, "pattern");
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(s, "format");
    int32_t body = -1;
    if (pat) {
        if (!cJSON_IsString(pat)) return js_fail(j, "pattern must be a string%s", "");
        const char *p = pat->valuestring;
        size_t n = strlen(p);
        int anchored_start = n > 0 && p[0] == '^';
        size_t bs = 0;
        while (bs + 1 < n && p[n - 2 - bs] == '\\')
            bs++;
        int anchored_end = n > 0 && p[n - 1] == '$' && bs % 2 == 0;
        int keep = b->json_restrict;
        b->json_restrict = 1;
        int32_t core = sglc_gram_regex_node(b, p, n, "pattern");
        b->json_restrict = keep;
        if (core < 0) {
            /* prefix the field path to the regex error */
            char msg[256];
            snprintf(msg, sizeof msg, "%s", b->err ? b->err : "");
            b->failed = 0;
            return js_fail(j, "%s", msg);
        }
        body = gb_seq(b);
        if (!anchored_start) gb_add(b, body, rx(j, ".*", 1));
        gb_add(b, body, core);
        if (!anchored_end) gb_add(b, body, rx(j, ".*", 1));
    } else if (fmt && cJSON_IsString(fmt)) {
        for (size_t k = 0; k < sizeof k_formats / sizeof k_formats[0]; k++)
            if (strcmp(fmt->valuestring, k_formats[k][0]) == 0) body = rx(j, k_formats[k][1], 1);
    }
    if (body < 0 && !b->failed) {
        int32_t mn = 0, mx = -1;
        if (get_count(j, s, "minLength", &mn) != 0 || get_count(j, s, "maxLength", &mx) != 0)
            return -1;
        if (mx >= 0 && mx < mn) return js_fail(j, "maxLength is less than minLength%s", "");
        if (mn == 0 && mx < 0) return gb_ref(b, string_rule(j));
        body = gb_repeat(b, json_string_char(j), mn, mx);
    }
    return seq3(j, gb_char(b, '"'), body, gb_char(b, '"'));
}

static int32_t schema_node(js *j, const cJSON *s, int depth);

static int32_t sub_schema(js *j, const cJSON *s, const char *seg, int depth) {
    size_t n = path_push(j, seg);
    int32_t r = schema_node(j, s, depth + 1);
    path_pop(j, n);
    return r;
}

/* JSON string contents (between the quotes) that spell none of the v[0..n) (which share their
 * first d bytes): at this depth the string may end (unless a name does), continue with a
 * name's next byte into the names that have it, or continue with any other character and then
 * anything. Names are plain printable ASCII (checked by the caller), so bytes are characters. */
#define KEY_NAME_MAX 128
static int32_t key_not_names(js *j, const char **v, int n, size_t d) {
    gbuild *b = j->b;
    int32_t alt = gb_alt(b);
    int terminal = 0;
    char next[96];
    int n_next = 0;
    for (int i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i][d];
        if (!c) {
            terminal = 1;
            continue;
        }
        if (!memchr(next, c, (size_t)n_next)) next[n_next++] = (char)c;
    }
    if (!terminal) gb_add(b, alt, gb_empty(b));
    const char **sub = malloc((size_t)n * sizeof *sub);
    if (!sub) return gb_fail(b, "out of memory"), -1;
    for (int k = 0; k < n_next && !b->failed; k++) {
        int m = 0;
        for (int i = 0; i < n; i++)
            if (v[i][d] == next[k]) sub[m++] = v[i];
        gb_add(b, alt, seq2(j, gb_char(b, next[k]), key_not_names(j, sub, m, d + 1)));
    }
    free(sub);
    /* a character no name has here (an escape counts as one), then any contents */
    char cls[16 + 4 * 96] = "[^\"\\\\\\x00-\\x1f";
    size_t L = strlen(cls);
    for (int k = 0; k < n_next; k++)
        L += (size_t)snprintf(cls + L, sizeof cls - L, "\\x%02x", (unsigned char)next[k]);
    snprintf(cls + L, sizeof cls - L, "]");
    int32_t other = gb_alt(b);
    gb_add(b, other, rx(j, cls, 0));
    gb_add(b, other, rx(j, "\\\\([\"\\\\/bfnrt]|u[0-9a-fA-F]{4})", 0));
    gb_add(b, alt, seq2(j, other, gb_repeat(b, json_string_char(j), 0, -1)));
    return b->failed ? -1 : alt;
}

/* The key of an additional member: any string but a declared property's name (JSON Schema
 * applies additionalProperties to the other keys only; without this a model could write a
 * declared key with the additional schema's value). Names that are not plain printable ASCII
 * (or very long) keep the plain string rule: an escaped spelling of a name is not excluded
 * either. */
static int32_t extra_key(js *j, const char **names, int n) {
    int plain = n > 0;
    for (int i = 0; i < n && plain; i++) {
        size_t len = strlen(names[i]);
        plain = len <= KEY_NAME_MAX;
        for (size_t k = 0; k < len && plain; k++)
            plain = names[i][k] >= 0x20 && names[i][k] < 0x7f && names[i][k] != '"' &&
                    names[i][k] != '\\';
    }
    if (!plain) return gb_ref(j->b, string_rule(j));
    int32_t body = key_not_names(j, names, n, 0);
    if (body < 0) return -1;
    return seq3(j, gb_char(j->b, '"'), body, gb_char(j->b, '"'));
}

static int32_t object_schema(js *j, const cJSON *s, int depth) {
    gbuild *b = j->b;
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(s, "properties");
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(s, "required");
    const cJSON *addl = cJSON_GetObjectItemCaseSensitive(s, "additionalProperties");
    if (props && !cJSON_IsObject(props)) return js_fail(j, "properties must be an object%s", "");
    if (req && !cJSON_IsArray(req)) return js_fail(j, "required must be an array%s", "");
    const cJSON *x;
    cJSON_ArrayForEach(x, req) {
        if (!cJSON_IsString(x)) return js_fail(j, "required must list strings%s", "");
    }
    int n_props = props ? cJSON_GetArraySize(props) : 0;
    int n_req = req ? cJSON_GetArraySize(req) : 0;
    if (n_props > SGLC_GRAM_MAX_RULES / 4 || n_req > SGLC_GRAM_MAX_RULES / 4)
        return js_fail(j, "too many properties%s", "");
    /* the member list: declared properties, then required names they lack */
    int cap = n_props + n_req;
    const char **names = calloc((size_t)cap + 1, sizeof *names);
    const cJSON **schemas = calloc((size_t)cap + 1, sizeof *schemas);
    int *required = calloc((size_t)cap + 1, sizeof *required);
    int32_t *F = NULL, *S = NULL;
    int32_t result = -1;
    if (!names || !schemas || !required) {
        gb_fail(b, "out of memory");
        goto cleanup;
    }
    int n = 0;
    const cJSON *p;
    cJSON_ArrayForEach(p, props) {
        for (int k = 0; k < n; k++)
            if (strcmp(names[k], p->string) == 0) {
                js_fail(j, "property '%s' is listed twice", p->string);
                goto cleanup;
            }
        names[n] = p->string;
        schemas[n] = p;
        n++;
    }
    cJSON_ArrayForEach(x, req) {
        int found = 0;
        for (int k = 0; k < n && !found; k++)
            if (strcmp(names[k], x->valuestring) == 0) required[k] = 1, found = 1;
        if (!found) {
            names[n] = x->valuestring;
            schemas[n] = NULL; /* any value */
            required[n] = 1;
            n++;
        }
    }
    int additional = props ? 0 : 1;
    const cJSON *addl_schema = NULL;
    if (addl) {
        if (cJSON_IsBool(addl))
            additional = cJSON_IsTrue(addl);
        else if (cJSON_IsObject(addl))
            additional = 1, addl_schema = addl;
        else {
            js_fail(j, "additionalProperties must be a boolean or a schema%s", "");
            goto cleanup;
        }
    }
    F = malloc(((size_t)n + 1) * sizeof *F);
    S = malloc(((size_t)n + 1) * sizeof *S);
    if (!F || !S) {
        gb_fail(b, "out of memory");
        goto cleanup;
    }
    for (int i = 0; i <= n; i++) {
        F[i] = gb_rule_new(b, "obj-first", 9);
        S[i] = gb_rule_new(b, "obj-rest", 8);
        if (F[i] < 0 || S[i] < 0) goto cleanup;
    }
    /* tail: extra members */
    if (additional) {
        int32_t val = addl_schema ? sub_schema(j, addl_schema, "additionalProperties", depth)
                                  : gb_ref(b, value_rule(j));
        if (val < 0) goto cleanup;
        int32_t key = extra_key(j, names, n);
        if (key < 0) goto cleanup;
        int32_t xm = gb_seq(b);
        gb_add(b, xm, key);
        gb_add(b, xm, gb_char(b, ':'));
        gb_add(b, xm, ws(j));
        gb_add(b, xm, val);
        int32_t xr = rule_of(j, "extra-member", xm);
        gb_rule_set(b, S[n], gb_repeat(b, seq3(j, gb_char(b, ','), ws(j), gb_ref(b, xr)), 0, -1));
        gb_rule_set(b, F[n], gb_repeat(b, seq2(j, gb_ref(b, xr), gb_ref(b, S[n])), 0, 1));
    } else {
        gb_rule_set(b, S[n], gb_empty(b));
        gb_rule_set(b, F[n], gb_empty(b));
    }
    for (int i = n - 1; i >= 0 && !b->failed; i--) {
        char *key = json_quote(names[i]);
        if (!key) {
            gb_fail(b, "out of memory");
            goto cleanup;
        }
        int32_t val;
        if (schemas[i]) {
            size_t pn = path_push(j, "properties");
            val = sub_schema(j, schemas[i], names[i], depth);
            path_pop(j, pn);
        } else {
            val = gb_ref(b, value_rule(j));
        }
        int32_t mem = gb_seq(b);
        gb_add(b, mem, lit(j, key));
        free(key);
        gb_add(b, mem, gb_char(b, ':'));
        gb_add(b, mem, ws(j));
        gb_add(b, mem, val);
        int32_t P = rule_of(j, names[i], mem);
        if (P < 0) goto cleanup;
        int32_t comma_p = gb_seq(b);
        gb_add(b, comma_p, gb_char(b, ','));
        gb_add(b, comma_p, ws(j));
        gb_add(b, comma_p, gb_ref(b, P));
        if (required[i]) {
            gb_rule_set(b, S[i], seq2(j, comma_p, gb_ref(b, S[i + 1])));
            gb_rule_set(b, F[i], seq2(j, gb_ref(b, P), gb_ref(b, S[i + 1])));
        } else {
            gb_rule_set(b, S[i], seq2(j, gb_repeat(b, comma_p, 0, 1), gb_ref(b, S[i + 1])));
            int32_t alt = gb_alt(b);
            gb_add(b, alt, seq2(j, gb_ref(b, P), gb_ref(b, S[i + 1])));
            gb_add(b, alt, gb_ref(b, F[i + 1]));
            gb_rule_set(b, F[i], alt);
        }
    }
    if (b->failed) goto cleanup;
    result = gb_seq(b);
    gb_add(b, result, gb_char(b, '{'));
    gb_add(b, result, ws(j));
    gb_add(b, result, gb_ref(b, F[0]));
    gb_add(b, result, ws(j));
    gb_add(b, result, gb_char(b, '}'));
cleanup:
    free(names);
    free(schemas);
    free(required);
    free(F);
    free(S);
    return b->failed ? -1 : result;
}

static int32_t array_schema(js *j, const cJSON *s, int depth) {
    gbuild *b = j->b;
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(s, "items");
    if (cJSON_GetObjectItemCaseSensitive(s, "prefixItems") || cJSON_IsArray(items))
        return js_fail(j, "tuple arrays (prefixItems / items as a list) are not supported%s", "");
    int32_t mn = 0, mx = -1;
    if (get_count(j, s, "minItems", &mn) != 0 || get_count(j, s, "maxItems", &mx) != 0) return -1;
    if (mx >= 0 && mx < mn) return js_fail(j, "maxItems is less than minItems%s", "");
    int32_t item = items ? sub_schema(j, items, "items", depth) : gb_ref(b, value_rule(j));
    if (item < 0) return -1;
    int32_t arr = gb_seq(b);
    gb_add(b, arr, gb_char(b, '['));
    gb_add(b, arr, ws(j));
    if (mx != 0) {
        int32_t ir = rule_of(j, "item", item);
        int32_t more = gb_repeat(b, seq3(j, gb_char(b, ','), ws(j), gb_ref(b, ir)),
                                 mn > 0 ? mn - 1 : 0, mx < 0 ? -1 : mx - 1);
        int32_t list = seq2(j, gb_ref(b, ir), more);
        gb_add(b, arr, mn == 0 ? gb_repeat(b, list, 0, 1) : list);
    }
    gb_add(b, arr, ws(j));
    gb_add(b, arr, gb_char(b, ']'));
    return arr;
}

/* Resolves a local JSON pointer ("#/a/b~1c/0"). */
static const cJSON *resolve_pointer(js *j, const char *ref) {
    if (ref[0] != '#') return NULL;
    const cJSON *cur = j->doc;
    const char *p = ref + 1;
    while (*p == '/' && cur) {
        p++;
        char seg[256];
        size_t n = 0;
        while (*p && *p != '/') {
            char c = *p++;
            if (c == '~' && (*p == '0' || *p == '1')) c = *p++ == '0' ? '~' : '/';
            if (n + 1 >= sizeof seg) return NULL;
            seg[n++] = c;
        }
        seg[n] = 0;
        if (cJSON_IsArray(cur)) {
            char *end;
            long k = strtol(seg, &end, 10);
            cur = *end || n == 0 ? NULL : cJSON_GetArrayItem(cur, (int)k);
        } else {
            cur = cJSON_GetObjectItemCaseSensitive(cur, seg);
        }
    }
    return *p ? NULL : cur;
}

static int32_t ref_node(js *j, const char *ref) {
    for (int32_t i = 0; i < j->n_refs; i++)
        if (strcmp(j->refs[i].ref, ref) == 0) return gb_ref(j->b, j->refs[i].rule);
    if (ref[0] != '#') return js_fail(j, "only local $ref (\"#...\") is supported, not '%s'", ref);
    const cJSON *t = resolve_pointer(j, ref);
    if (!t) return js_fail(j, "$ref '%s' does not resolve", ref);
    if (j->n_refs == j->cap_refs) {
        int32_t c = j->cap_refs ? j->cap_refs * 2 : 16;
        js_ref *nr = realloc(j->refs, (size_t)c * sizeof *nr);
        if (!nr) return gb_fail(j->b, "out of memory");
        j->refs = nr;
        j->cap_refs = c;
    }
    char *copy = strdup(ref);
    int32_t r = gb_rule_new(j->b, ref, strlen(ref));
    if (!copy || r < 0) {
        free(copy);
        return gb_fail(j->b, "out of memory");
    }
    j->refs[j->n_refs++] = (js_ref){copy, r, t, 0};
    return gb_ref(j->b, r);
}

static int32_t typed(js *j, const cJSON *s, const char *type, int depth) {
    gbuild *b = j->b;
    if (strcmp(type, "string") == 0) return string_schema(j, s);
    if (strcmp(type, "integer") == 0) return integer_schema(j, s);
    if (strcmp(type, "number") == 0) return number_schema(j, s);
    if (strcmp(type, "boolean") == 0) {
        int32_t a = gb_alt(b);
        gb_add(b, a, lit(j, "true"));
        return gb_add(b, a, lit(j, "false"));
    }
    if (strcmp(type, "null") == 0) return lit(j, "null");
    if (strcmp(type, "object") == 0) return object_schema(j, s, depth);
    if (strcmp(type, "array") == 0) return array_schema(j, s, depth);
    return js_fail(j, "unknown type '%s'", type);
}

static int32_t schema_node(js *j, const cJSON *s, int depth) {
    gbuild *b = j->b;
    if (b->failed) return -1;
    if (depth > SGLC_GRAM_MAX_NEST) return js_fail(j, "schema nested more than 64 levels%s", "");
    if (cJSON_IsTrue(s)) return gb_ref(b, value_rule(j));
    if (cJSON_IsFalse(s)) return js_fail(j, "the schema false matches nothing%s", "");
    if (!cJSON_IsObject(s)) return js_fail(j, "a schema must be an object or a boolean%s", "");
    const cJSON *x;
    if ((x = cJSON_GetObjectItemCaseSensitive(s, "$ref"))) {
        if (!cJSON_IsString(x)) return js_fail(j, "$ref must be a string%s", "");
        return ref_node(j, x->valuestring);
    }
    if ((x = cJSON_GetObjectItemCaseSensitive(s, "const"))) return literal_json(j, x, 0);
    if ((x = cJSON_GetObjectItemCaseSensitive(s, "enum"))) {
        if (!cJSON_IsArray(x) || cJSON_GetArraySize(x) == 0)
            return js_fail(j, "enum must be a non-empty array%s", "");
        int32_t a = gb_alt(b);
        const cJSON *v;
        cJSON_ArrayForEach(v, x) gb_add(b, a, literal_json(j, v, 0));
        return b->failed ? -1 : a;
    }
    const char *comb = NULL;
    if ((x = cJSON_GetObjectItemCaseSensitive(s, "anyOf")))
        comb = "anyOf";
    else if ((x = cJSON_GetObjectItemCaseSensitive(s, "oneOf")))
        comb = "oneOf";
    else if ((x = cJSON_GetObjectItemCaseSensitive(s, "allOf"))) {
        if (!cJSON_IsArray(x) || cJSON_GetArraySize(x) != 1)
            return js_fail(j, "allOf is supported with exactly one schema%s", "");
        return sub_schema(j, cJSON_GetArrayItem(x, 0), "allOf[0]", depth);
    }
    if (comb) {
        if (!cJSON_IsArray(x) || cJSON_GetArraySize(x) == 0)
            return js_fail(j, "%s must be a non-empty array", comb);
        int32_t a = gb_alt(b);
        int k = 0;
        const cJSON *v;
        cJSON_ArrayForEach(v, x) {
            char seg[32];
            snprintf(seg, sizeof seg, "%s[%d]", comb, k++);
            gb_add(b, a, sub_schema(j, v, seg, depth));
        }
        return b->failed ? -1 : a;
    }
    x = cJSON_GetObjectItemCaseSensitive(s, "type");
    if (!x) {
        if (cJSON_GetObjectItemCaseSensitive(s, "properties") ||
            cJSON_GetObjectItemCaseSensitive(s, "required") ||
            cJSON_GetObjectItemCaseSensitive(s, "additionalProperties"))
            return object_schema(j, s, depth);
        if (cJSON_GetObjectItemCaseSensitive(s, "items")) return array_schema(j, s, depth);
        return gb_ref(b, value_rule(j));
    }
    if (cJSON_IsString(x)) return typed(j, s, x->valuestring, depth);
    if (cJSON_IsArray(x) && cJSON_GetArraySize(x) > 0) {
        int32_t a = gb_alt(b);
        const cJSON *t;
        cJSON_ArrayForEach(t, x) {
            if (!cJSON_IsString(t)) return js_fail(j, "type must list strings%s", "");
            gb_add(b, a, typed(j, s, t->valuestring, depth));
        }
        return b->failed ? -1 : a;
    }
    return js_fail(j, "type must be a string or a non-empty array of strings%s", "");
}

int32_t sglc_gram_parse_json_schema(gbuild *b, const char *src, size_t len, int any_object) {
    js j = {.b = b, .r_value = -1, .r_string = -1, .r_number = -1, .r_object = -1, .r_array = -1};
    int32_t root = gb_rule_new(b, "root", 4);
    if (root < 0) return -1;
    if (any_object) {
        if (value_rule(&j) < 0) return -1;
        gb_rule_set(b, root, gb_ref(b, j.r_object));
        return root;
    }
    const char *end = NULL;
    j.doc = cJSON_ParseWithLengthOpts(src, len, &end, 0);
    if (!j.doc) {
        size_t at = end && end >= src ? (size_t)(end - src) : 0;
        return gb_fail(b, "json_schema: invalid JSON near byte %zu", at);
    }
    for (const char *p = end; p < src + len; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            cJSON_Delete(j.doc);
            return gb_fail(b, "json_schema: trailing characters after the schema at byte %zu",
                           (size_t)(p - src));
        }
    int32_t node = schema_node(&j, j.doc, 0);
    gb_rule_set(b, root, node);
    /* $ref targets, each once (new ones may be added while compiling) */
    for (int32_t i = 0; i < j.n_refs && !b->failed; i++) {
        snprintf(j.path, sizeof j.path, "%s", j.refs[i].ref);
        int32_t body = schema_node(&j, j.refs[i].target, 0);
        gb_rule_set(b, j.refs[i].rule, body);
    }
    for (int32_t i = 0; i < j.n_refs; i++)
        free(j.refs[i].ref);
    free(j.refs);
    cJSON_Delete(j.doc);
    return b->failed ? -1 : root;
}
