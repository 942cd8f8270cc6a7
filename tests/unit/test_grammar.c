/* The grammar engine against independent references (tests/golden/grammar/, written by
 * scripts/golden/make_grammar_golden.py: jsonschema, Python re.fullmatch, hand-written
 * recognizers). Each string is fed whole, byte by byte and in token-like chunks (3 bytes,
 * and splits inside UTF-8 sequences); the verdict (every byte accepted and the state
 * accepting) must equal the reference, and the three feeds must agree. Every proper prefix of
 * an accepted string must be accepted byte by byte (the mask relies on it). The vocabulary
 * mask is checked against the matcher itself on a small synthetic vocabulary: a token is
 * allowed exactly when advancing a clone by its bytes succeeds, eos exactly when accepting,
 * and the mask cache returns the same mask. Bad schemas, regexes and grammars must fail with
 * a message naming the problem. */
#include <cjson/cJSON.h>
#include <stdint.h>

#include "engine/grammar/grammar.h"
#include "test_util.h"

static sglc_gscratch *g_sc;
static int g_cases, g_grammars;

/* 1 when all n bytes are accepted in chunks of at most `chunk` bytes and the end accepts. */
static int feed(const sglc_gram *g, const char *s, size_t n, size_t chunk, int *advance_failed) {
    sglc_gmatcher m;
    CHECK(sglc_gmatcher_init(&m, g, g_sc) == 0);
    int ok = 1;
    for (size_t i = 0; i < n && ok; i += chunk) {
        size_t k = n - i < chunk ? n - i : chunk;
        int rc = sglc_gmatcher_advance(&m, (const uint8_t *)s + i, k, g_sc);
        CHECK(rc == 0 || rc == -1);
        if (rc != 0) ok = 0;
    }
    if (advance_failed) *advance_failed = !ok;
    ok = ok && sglc_gmatcher_accepting(&m);
    sglc_gmatcher_free(&m);
    return ok;
}

static void run_case(const sglc_gram *g, const char *what, int idx, const char *s, int want) {
    size_t n = strlen(s);
    int whole = feed(g, s, n, n ? n : 1, NULL);
    int bytes = feed(g, s, n, 1, NULL);
    int chunks = feed(g, s, n, 3, NULL);
    CHECKF(whole == want, "%s #%d: '%s' gives %d, the reference says %d", what, idx, s, whole,
           want);
    CHECKF(bytes == whole && chunks == whole, "%s #%d: '%s' whole %d, bytes %d, chunks %d", what,
           idx, s, whole, bytes, chunks);
    if (want && whole) { /* every prefix advances (the mask walk depends on it) */
        for (size_t k = 0; k < n; k++) {
            int failed = 0;
            (void)feed(g, s, k, 1, &failed);
            CHECKF(!failed, "%s #%d: prefix %zu of '%s' refused", what, idx, k, s);
        }
    }
    g_cases++;
}

static void run_file(const char *name, const char *key, sglc_grammar_kind kind) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/golden/grammar/%s", test_source_dir(), name);
    char *buf = test_read_file(path, NULL);
    CHECKF(buf != NULL, "missing %s (run scripts/golden/make_grammar_golden.py)", path);
    if (!buf) return;
    cJSON *doc = cJSON_Parse(buf);
    free(buf);
    CHECK(cJSON_IsArray(doc));
    int gi = 0;
    const cJSON *entry;
    cJSON_ArrayForEach(entry, doc) {
        const cJSON *src = cJSON_GetObjectItemCaseSensitive(entry, key);
        char *text = cJSON_IsString(src) ? strdup(src->valuestring) : cJSON_PrintUnformatted(src);
        char err[512], what[64];
        snprintf(what, sizeof what, "%s[%d]", name, gi++);
        sglc_gram *g = NULL;
        int rc = sglc_gram_compile(kind, text, strlen(text), &g, err, sizeof err);
        CHECKF(rc == 0, "%s: %s does not compile: %s", what, text, err);
        if (rc == 0) {
            g_grammars++;
            const cJSON *cs = cJSON_GetObjectItemCaseSensitive(entry, "cases");
            int ci = 0;
            const cJSON *c;
            cJSON_ArrayForEach(c, cs) {
                run_case(g, what, ci++, cJSON_GetArrayItem(c, 0)->valuestring,
                         cJSON_IsTrue(cJSON_GetArrayItem(c, 1)));
            }
        }
        sglc_gram_free(g);
        free(text);
    }
    cJSON_Delete(doc);
}

/* ------------------------------------------------------------------ mask vs matcher */

static const char *const k_vocab_extra[] = {
    "{\"",  "\":", "\",",      "\"}",      "true", "false",    "null", "name",  " \"",
    ": ",   ", ",  "123",      "-1",       "0.",   "e+",       "ab",   "abc",   "日",
    "本語", "😀",   "\xf0\x9f", "\x98\x80", "\xe6", "\x97\xa5", "  ",   "}}",    "]]",
    "[{",   "\n",  "α",        "\xce",     "\xb1", "yes",      "no",   "maybe", "-",
    "kg",   " kg", "é",        "\xc3",     "\xa9", "\xff",     "",
};

static void check_masks(void) {
    /* vocabulary: the 256 single bytes, some pieces, an eos and a control token */
    enum { NB = 256, NX = sizeof k_vocab_extra / sizeof k_vocab_extra[0] };
    int32_t V = NB + NX + 2;
    const char *bytes[NB + NX + 2];
    size_t lens[NB + NX + 2];
    uint8_t kinds[NB + NX + 2];
    static char single[NB];
    for (int i = 0; i < NB; i++) {
        single[i] = (char)i;
        bytes[i] = &single[i];
        lens[i] = 1;
        kinds[i] = SGLC_GTOK_TEXT;
    }
    for (int i = 0; i < NX; i++) {
        bytes[NB + i] = k_vocab_extra[i];
        lens[NB + i] = strlen(k_vocab_extra[i]);
        kinds[NB + i] = SGLC_GTOK_TEXT;
    }
    bytes[V - 2] = "</s>", lens[V - 2] = 4, kinds[V - 2] = SGLC_GTOK_EOG;
    bytes[V - 1] = "<|im_start|>", lens[V - 1] = 12, kinds[V - 1] = SGLC_GTOK_NEVER;
    sglc_gvocab *v = NULL;
    CHECK(sglc_gvocab_open(&v, V, bytes, lens, kinds) == 0);
    if (!v) return;
    sglc_gmask_cache *cache = NULL;
    CHECK(sglc_gmask_cache_open(&cache, 4, sglc_gvocab_mask_words(v)) == 0);
    struct {
        sglc_grammar_kind kind;
        const char *src, *text;
    } k[] = {
        {SGLC_GRAMMAR_JSON_SCHEMA,
         "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"n\":{\"type\":"
         "\"integer\",\"minimum\":-5,\"maximum\":200}},\"required\":[\"name\"]}",
         "{\"name\": \"日本語😀\", \"n\": 123}"},
        {SGLC_GRAMMAR_JSON_OBJECT, "", "{\"a\":[1,{\"b\":null}],\"c\":\"αé\"}"},
        {SGLC_GRAMMAR_REGEX, "(yes|no|maybe) [0-9]+ ?kg", "maybe 12 kg"},
        {SGLC_GRAMMAR_REGEX, "[α-ω]+😀?", "αβ😀"},
        {SGLC_GRAMMAR_EBNF, "root ::= \"ab\" [c-e]* (\"\\n\" | \"é\")", "abcdeé"},
    };
    size_t words = sglc_gvocab_mask_words(v);
    uint32_t *bits = calloc(words, sizeof *bits);
    for (size_t gi = 0; gi < sizeof k / sizeof k[0] && bits; gi++) {
        char err[256];
        sglc_gram *g = NULL;
        CHECKF(sglc_gram_compile(k[gi].kind, k[gi].src, strlen(k[gi].src), &g, err, sizeof err) ==
                   0,
               "%s", err);
        if (!g) continue;
        sglc_gmatcher m;
        CHECK(sglc_gmatcher_init(&m, g, g_sc) == 0);
        const char *t = k[gi].text;
        size_t n = strlen(t);
        for (size_t pos = 0; pos <= n; pos++) {
            int64_t allowed = sglc_gmask_compute(v, &m, g_sc, bits);
            int64_t count = 0;
            for (int32_t tok = 0; tok < V; tok++) {
                int bit = (int)((bits[tok >> 5] >> (tok & 31)) & 1u);
                count += bit;
                int want;
                if (kinds[tok] == SGLC_GTOK_EOG)
                    want = sglc_gmatcher_accepting(&m);
                else if (kinds[tok] == SGLC_GTOK_NEVER || lens[tok] == 0)
                    want = 0;
                else {
                    sglc_gmatcher c;
                    CHECK(sglc_gmatcher_clone(&c, &m) == 0);
                    want = sglc_gmatcher_advance(&c, (const uint8_t *)bytes[tok], lens[tok],
                                                 g_sc) == 0;
                    sglc_gmatcher_free(&c);
                }
                CHECKF(bit == want, "grammar %zu at byte %zu: token %d mask %d, matcher %d", gi,
                       pos, tok, bit, want);
            }
            CHECK(count == allowed);
            CHECK(sglc_gmask_cache_put(cache, &m, bits) == 0);
            const uint32_t *hit = sglc_gmask_cache_get(cache, &m);
            CHECK(hit && memcmp(hit, bits, words * sizeof *bits) == 0);
            if (pos < n) CHECK(sglc_gmatcher_advance(&m, (const uint8_t *)t + pos, 1, g_sc) == 0);
        }
        CHECKF(sglc_gmatcher_accepting(&m), "grammar %zu does not accept '%s'", gi, t);
        sglc_gmatcher_free(&m);
        sglc_gram_free(g);
    }
    free(bits);
    sglc_gmask_cache_close(cache);
    sglc_gvocab_close(v);
}

/* ------------------------------------------------------------------ errors */

static void expect_error(sglc_grammar_kind kind, const char *src, const char *needle) {
    char err[512] = "";
    sglc_gram *g = NULL;
    int rc = sglc_gram_compile(kind, src, strlen(src), &g, err, sizeof err);
    CHECKF(rc < 0 && g == NULL, "'%s' compiled but should not", src);
    CHECKF(strstr(err, needle) != NULL, "'%s': error '%s' does not mention '%s'", src, err, needle);
    sglc_gram_free(g);
}

static void check_errors(void) {
    /* JSON Schema: the field path or position is named */
    expect_error(SGLC_GRAMMAR_JSON_SCHEMA, "{\"type\":\"object\"", "invalid JSON");
    expect_error(SGLC_GRAMMAR_JSON_SCHEMA, "{} x", "trailing characters");
    expect_error(SGLC_GRAMMAR_JSON_SCHEMA, "{\"type\":\"strin\"}", "unknown type 'strin'");
    expect_error(SGLC_GRAMMAR_JSON_SCHEMA,
                 "{\"properties\":{\"a\":{\"type\":\"string\",\"minLength\":-1}}}",
                 "properties.a: minLength");
    expect_error(SGLC_GRAMMAR_JSON_SCHEMA, "{\"type\":\"array\",\"maxItems\":5000}", "maxItems");
    expect_error(SGLC_GRAMMAR_JSON_SCHEMA, "{\"$ref\":\"#/$defs/missing\"}", "does not resolve");
    expect_error(SGLC_GRAMMAR_JSON_SCHEMA, "{\"$ref\":\"http://x/y.json\"}", "only local $ref");
    expect_error(SGLC_GRAMMAR_JSON_SCHEMA,
                 "{\"properties\":{\"p\":{\"type\":\"string\",\"pattern\":\"(a\"}}}",
                 "properties.p: pattern: missing ')'");
    expect_error(SGLC_GRAMMAR_JSON_SCHEMA, "{\"type\":\"integer\",\"minimum\":5,\"maximum\":1}",
                 "minimum is greater than maximum");
    expect_error(SGLC_GRAMMAR_JSON_SCHEMA, "false", "matches nothing");
    expect_error(SGLC_GRAMMAR_JSON_SCHEMA, "{\"enum\":[]}", "enum");
    expect_error(SGLC_GRAMMAR_JSON_SCHEMA, "{\"allOf\":[{},{}]}", "allOf");
    {
        /* nesting past the limit: 70 levels of items */
        char deep[2048] = "";
        for (int i = 0; i < 70; i++)
            strcat(deep, "{\"items\":");
        strcat(deep, "{}");
        for (int i = 0; i < 70; i++)
            strcat(deep, "}");
        expect_error(SGLC_GRAMMAR_JSON_SCHEMA, deep, "nested more than 64");
    }
    /* regex: the position is named */
    expect_error(SGLC_GRAMMAR_REGEX, "(ab", "missing ')' at position 0");
    expect_error(SGLC_GRAMMAR_REGEX, "ab)", "unbalanced ')' at position 2");
    expect_error(SGLC_GRAMMAR_REGEX, "[a-", "unterminated character class");
    expect_error(SGLC_GRAMMAR_REGEX, "[z-a]", "end before start");
    expect_error(SGLC_GRAMMAR_REGEX, "*a", "nothing to repeat at position 0");
    expect_error(SGLC_GRAMMAR_REGEX, "a**", "multiple repeat");
    expect_error(SGLC_GRAMMAR_REGEX, "a{2,1}", "min repeat greater than max");
    expect_error(SGLC_GRAMMAR_REGEX, "a{1001}", "above 1000");
    expect_error(SGLC_GRAMMAR_REGEX, "(a)\\1", "backreferences");
    expect_error(SGLC_GRAMMAR_REGEX, "(?=a)", "lookaround");
    expect_error(SGLC_GRAMMAR_REGEX, "a\\bb", "word boundary");
    expect_error(SGLC_GRAMMAR_REGEX, "a^b", "'^'");
    expect_error(SGLC_GRAMMAR_REGEX, "a$b", "'$'");
    expect_error(SGLC_GRAMMAR_REGEX, "\xff", "invalid UTF-8");
    {
        /* nested repetition stays linear in the pattern: no expansion blow-up */
        char err[256];
        sglc_gram *g = NULL;
        const char *nest = "((((a{1000}){1000}){1000}){1000})";
        CHECK(sglc_gram_compile(SGLC_GRAMMAR_REGEX, nest, strlen(nest), &g, err, sizeof err) == 0);
        CHECK(g && sglc_gram_n_rules(g) < 20);
        sglc_gram_free(g);
        /* more rules than the limit */
        size_t cap = 20 * 10002;
        char *many = malloc(cap), *p = many;
        if (many) {
            p += sprintf(p, "root ::= r0\n");
            for (int i = 0; i < 10001; i++)
                p += sprintf(p, "r%d ::= \"a\"\n", i);
            expect_error(SGLC_GRAMMAR_EBNF, many, "more than 10000 rules");
            free(many);
        }
    }
    {
        char deep[256] = "";
        for (int i = 0; i < 70; i++)
            strcat(deep, "(");
        expect_error(SGLC_GRAMMAR_REGEX, deep, "nested too deeply");
    }
    /* EBNF: line and column are named */
    expect_error(SGLC_GRAMMAR_EBNF, "root ::= \"a\" undefined_rule", "'undefined_rule'");
    expect_error(SGLC_GRAMMAR_EBNF, "root ::= \"a\" x\n", "line 1 column 14");
    expect_error(SGLC_GRAMMAR_EBNF, "item ::= \"a\"", "no 'root' rule");
    expect_error(SGLC_GRAMMAR_EBNF, "root ::= \"a\"\nroot ::= \"b\"", "defined twice at line 2");
    expect_error(SGLC_GRAMMAR_EBNF, "root ::= (\"a\"", "missing ')'");
    expect_error(SGLC_GRAMMAR_EBNF, "root ::= \"abc", "unterminated literal");
    expect_error(SGLC_GRAMMAR_EBNF, "root ::= [abc", "unterminated character class");
    expect_error(SGLC_GRAMMAR_EBNF, "root ::= root \"a\" | \"b\"", "left-recursive");
    expect_error(SGLC_GRAMMAR_EBNF, "root ::= a\na ::= \"x\"? root", "left-recursive");
    expect_error(SGLC_GRAMMAR_EBNF, "root ::= \"a\"{3,2}", "n < m");
    expect_error(SGLC_GRAMMAR_EBNF, "root ::= \"a\"{5000}", "above 1000");
    expect_error(SGLC_GRAMMAR_EBNF, "root ::= \"a\" )", "unbalanced ')'");
    expect_error(SGLC_GRAMMAR_EBNF, "just text", "expected a rule definition");
}

/* The limits hold at match time: a deeply nested value is refused past the stack depth. */
static void check_limits(void) {
    char err[256];
    sglc_gram *g = NULL;
    CHECK(sglc_gram_compile(SGLC_GRAMMAR_JSON_OBJECT, "", 0, &g, err, sizeof err) == 0);
    if (!g) return;
    sglc_gmatcher m;
    CHECK(sglc_gmatcher_init(&m, g, g_sc) == 0);
    CHECK(sglc_gmatcher_advance(&m, (const uint8_t *)"{\"a\":", 5, g_sc) == 0);
    int refused = 0;
    for (int i = 0; i < 5000 && !refused; i++)
        refused = sglc_gmatcher_advance(&m, (const uint8_t *)"[", 1, g_sc) != 0;
    CHECK(refused);
    sglc_gmatcher_free(&m);
    sglc_gram_free(g);
    /* an ambiguous grammar stays bounded: many identical stacks merge */
    const char *amb = "root ::= (\"a\" | \"a\" | \"a\")*";
    CHECK(sglc_gram_compile(SGLC_GRAMMAR_EBNF, amb, strlen(amb), &g, err, sizeof err) == 0);
    if (!g) return;
    CHECK(sglc_gmatcher_init(&m, g, g_sc) == 0);
    for (int i = 0; i < 200; i++)
        CHECK(sglc_gmatcher_advance(&m, (const uint8_t *)"a", 1, g_sc) == 0);
    CHECK(sglc_gmatcher_accepting(&m));
    CHECK(m.st.w[0] < 8);
    sglc_gmatcher_free(&m);
    sglc_gram_free(g);
}

int main(void) {
    CHECK(sglc_gscratch_open(&g_sc) == 0);
    run_file("json_schema.json", "schema", SGLC_GRAMMAR_JSON_SCHEMA);
    int schema_cases = g_cases, schemas = g_grammars;
    run_file("regex.json", "regex", SGLC_GRAMMAR_REGEX);
    int regex_cases = g_cases - schema_cases, regexes = g_grammars - schemas;
    run_file("ebnf.json", "ebnf", SGLC_GRAMMAR_EBNF);
    fprintf(stderr, "%d schemas / %d instances, %d regexes / %d strings, %d ebnf / %d strings\n",
            schemas, schema_cases, regexes, regex_cases, g_grammars - schemas - regexes,
            g_cases - schema_cases - regex_cases);
    CHECK(schemas >= 50 && regexes >= 30);
    check_masks();
    check_errors();
    check_limits();
    sglc_gscratch_close(g_sc);
    TEST_MAIN_END();
}
