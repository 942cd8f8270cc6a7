/* Structured output through the engine on the default model: requests constrained by JSON
 * schemas, json_object and regexes run concurrently (greedy and seeded sampling, n > 1
 * siblings sharing the prompt's KV), with the overlap scheduler on and off. Each output is
 * checked by an independent reader: cJSON must parse it and find the required keys with the
 * right types and bounds; regex outputs must fullmatch the POSIX (regcomp) form of the pattern.
 * Greedy outputs must be identical with and without overlap scheduling. Every output is also
 * written to $SGLC_GRAMMAR_OUTPUTS (when set) for the end-to-end check with jsonschema. */
#include <cjson/cJSON.h>
#include <math.h>
#include <regex.h>
#include <stdint.h>
#include <unistd.h>

#include "sglc.h"
#include "test_util.h"

typedef struct {
    sglc_grammar_kind kind;
    const char *src;
    const char *posix; /* regex: the same language as a POSIX ERE (anchored here) */
    const char *prompt;
    int must_stop; /* the grammar is bounded: the request must finish with STOP */
} gcase;

static const gcase k_cases[] = {
    {SGLC_GRAMMAR_JSON_SCHEMA,
     "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":16},"
     "\"age\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":120},\"city\":{\"enum\":[\"Paris\","
     "\"Rome\",\"Oslo\"]}},\"required\":[\"name\",\"age\",\"city\"]}",
     NULL, "Describe a person as JSON with name, age and city.", 1},
    {SGLC_GRAMMAR_JSON_SCHEMA,
     "{\"type\":\"array\",\"items\":{\"type\":\"integer\",\"minimum\":-5,\"maximum\":99},"
     "\"minItems\":2,\"maxItems\":4}",
     NULL, "List a few small numbers as a JSON array.", 1},
    {SGLC_GRAMMAR_JSON_SCHEMA,
     "{\"$defs\":{\"item\":{\"type\":\"object\",\"properties\":{\"ok\":{\"type\":\"boolean\"},"
     "\"tag\":{\"type\":\"string\",\"pattern\":\"^[a-z]{1,8}$\"}},\"required\":[\"ok\",\"tag\"]}},"
     "\"type\":\"object\",\"properties\":{\"items\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/"
     "$defs/item\"},\"maxItems\":3}},\"required\":[\"items\"]}",
     NULL, "Give a JSON object with a list of tagged items.", 1},
    {SGLC_GRAMMAR_JSON_OBJECT, "", NULL, "Write a JSON object about the weather.", 0},
    {SGLC_GRAMMAR_REGEX, "[0-9]{3}-[0-9]{4}", "^[0-9]{3}-[0-9]{4}$", "Give a phone number.", 1},
    {SGLC_GRAMMAR_REGEX, "(yes|no|maybe)", "^(yes|no|maybe)$", "Is the sky blue?", 1},
    {SGLC_GRAMMAR_REGEX, "[a-z]{2,10}@[a-z]{2,8}\\.(com|org)",
     "^[a-z]{2,10}@[a-z]{2,8}[.](com|org)$", "Write an email address.", 1},
    {SGLC_GRAMMAR_REGEX, "\\d{1,3}(\\.\\d{1,2})? (kg|lb)", "^[0-9]{1,3}([.][0-9]{1,2})? (kg|lb)$",
     "How heavy is a cat?", 1},
    {SGLC_GRAMMAR_EBNF, "root ::= \"The answer is \" num \".\"\nnum ::= [1-9] [0-9]{0,2}",
     "^The answer is [1-9][0-9]{0,2}[.]$", "What is 6 times 7?", 1},
};
#define N_CASES ((int)(sizeof k_cases / sizeof k_cases[0]))
#define N_SIB 3 /* n > 1: a leader and two siblings, sampled */

static sglc_engine *g_e;
static FILE *g_out;

static int make_prompt(const char *user, int32_t *ids, int cap) {
    char text[1024];
    snprintf(text, sizeof text,
             "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by "
             "Hugging Face<|im_end|>\n<|im_start|>user\n%s<|im_end|>\n<|im_start|>assistant\n",
             user);
    int64_t n = sglc_engine_tokenize(g_e, text, strlen(text), 1, 0, ids, (size_t)cap);
    return n > 0 && n <= cap ? (int)n : -1;
}

static int32_t model_eos(void) {
    sglc_model_info mi;
    sglc_engine_get_model_info(g_e, &mi);
    return mi.eos_id;
}

static int json_has(const cJSON *o, const char *key, int type_mask) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return v && (v->type & type_mask);
}

/* Independent checks of one output. */
static void check_output(int c, const char *text, size_t len, sglc_finish_reason why) {
    const gcase *k = &k_cases[c];
    char *t = malloc(len + 1);
    if (!t) return;
    memcpy(t, text, len);
    t[len] = 0;
    if (g_out) fprintf(g_out, "%d\t%d\t%s\n", c, why == SGLC_FINISH_STOP, t);
    if (k->must_stop) CHECKF(why == SGLC_FINISH_STOP, "case %d did not finish: '%s'", c, t);
    if (why != SGLC_FINISH_STOP) {
        free(t);
        return;
    }
    if (k->kind == SGLC_GRAMMAR_JSON_SCHEMA || k->kind == SGLC_GRAMMAR_JSON_OBJECT) {
        cJSON *j = cJSON_Parse(t);
        CHECKF(j != NULL, "case %d: output is not JSON: '%s'", c, t);
        if (j && c == 0) {
            CHECKF(cJSON_IsObject(j) && json_has(j, "name", cJSON_String) &&
                       json_has(j, "age", cJSON_Number) && json_has(j, "city", cJSON_String),
                   "case 0: '%s'", t);
            const cJSON *age = cJSON_GetObjectItemCaseSensitive(j, "age");
            const cJSON *city = cJSON_GetObjectItemCaseSensitive(j, "city");
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(j, "name");
            if (age && cJSON_IsNumber(age))
                CHECKF(age->valuedouble >= 0 && age->valuedouble <= 120 &&
                           age->valuedouble == floor(age->valuedouble),
                       "case 0 age: '%s'", t);
            if (city && cJSON_IsString(city))
                CHECKF(!strcmp(city->valuestring, "Paris") || !strcmp(city->valuestring, "Rome") ||
                           !strcmp(city->valuestring, "Oslo"),
                       "case 0 city: '%s'", t);
            if (name && cJSON_IsString(name))
                CHECKF(strlen(name->valuestring) <= 16 * 4, "case 0 name: '%s'", t);
        } else if (j && c == 1) {
            int n = cJSON_GetArraySize(j);
            CHECKF(cJSON_IsArray(j) && n >= 2 && n <= 4, "case 1: '%s'", t);
            const cJSON *x;
            cJSON_ArrayForEach(x, j) {
                CHECKF(cJSON_IsNumber(x) && x->valuedouble >= -5 && x->valuedouble <= 99 &&
                           x->valuedouble == floor(x->valuedouble),
                       "case 1 item: '%s'", t);
            }
        } else if (j && c == 2) {
            const cJSON *items = cJSON_GetObjectItemCaseSensitive(j, "items");
            CHECKF(cJSON_IsArray(items) && cJSON_GetArraySize(items) <= 3, "case 2: '%s'", t);
            const cJSON *x;
            cJSON_ArrayForEach(x, items) {
                CHECKF(json_has(x, "ok", cJSON_True | cJSON_False) &&
                           json_has(x, "tag", cJSON_String),
                       "case 2 item: '%s'", t);
            }
        } else if (j) {
            CHECKF(cJSON_IsObject(j), "case %d: not an object: '%s'", c, t);
        }
        cJSON_Delete(j);
    } else {
        regex_t re;
        CHECK(regcomp(&re, k->posix, REG_EXTENDED | REG_NOSUB) == 0);
        CHECKF(regexec(&re, t, 0, NULL, 0) == 0, "case %d: '%s' does not match %s", c, t, k->posix);
        regfree(&re);
    }
    free(t);
}

typedef struct {
    int32_t ids[160];
    int32_t n;
    char text[2048];
    size_t len;
    sglc_finish_reason why;
    int32_t stop_tok;
} outcome;

/* Submits every case greedy and sampled (and the siblings of case 0 and 4) at once. */
static void run_all(outcome greedy[N_CASES]) {
    sglc_grammar *gr[N_CASES] = {0};
    sglc_request *req[N_CASES * 2 + 2 * N_SIB] = {0};
    int which[N_CASES * 2 + 2 * N_SIB];
    int nreq = 0;
    char err[512];
    for (int c = 0; c < N_CASES; c++) {
        const gcase *k = &k_cases[c];
        CHECKF(sglc_engine_grammar_compile(g_e, k->kind, k->src, strlen(k->src), &gr[c], err,
                                           sizeof err) == 0,
               "case %d: %s", c, err);
    }
    for (int c = 0; c < N_CASES; c++) {
        if (!gr[c]) continue;
        int32_t ids[256];
        int n = make_prompt(k_cases[c].prompt, ids, 256);
        CHECK(n > 0);
        if (n <= 0) continue;
        for (int mode = 0; mode < 2; mode++) {
            sglc_request_params p;
            sglc_request_params_default(&p);
            p.max_new_tokens = 160;
            p.grammar = gr[c];
            p.temperature = mode == 0 ? 0.0f : 0.8f;
            p.has_seed = mode;
            p.seed = 1234 + (uint64_t)c;
            int sibs = mode == 1 && (c == 0 || c == 4) ? N_SIB : 1;
            sglc_request *leader = NULL;
            for (int k = 0; k < sibs; k++) {
                p.seed = 1234 + (uint64_t)c * 10 + (uint64_t)k;
                sglc_request *r = NULL;
                CHECKF(sglc_engine_submit(g_e, ids, n, &p, leader, &r, err, sizeof err) == 0, "%s",
                       err);
                if (!r) continue;
                if (!leader) leader = r;
                which[nreq] = mode == 0 ? c : -1 - c;
                req[nreq++] = r;
            }
        }
    }
    /* the engine holds its own references: dropping ours now must be safe */
    for (int c = 0; c < N_CASES; c++)
        sglc_grammar_release(gr[c]);
    for (int i = 0; i < nreq; i++) {
        sglc_output o;
        do
            sglc_request_wait(req[i], INT32_MAX, &o, -1);
        while (!o.finished);
        int c = which[i] >= 0 ? which[i] : -1 - which[i];
        check_output(c, o.text, o.text_len, o.finish_reason);
        if (o.finish_reason == SGLC_FINISH_STOP && o.n_output > 0 &&
            !sglc_engine_is_eog(g_e, o.output_ids[o.n_output - 1]))
            CHECKF(o.matched_stop_token == model_eos(),
                   "case %d: a grammar stop reports eos as the matched token", c);
        if (which[i] >= 0) {
            outcome *g = &greedy[c];
            g->n = o.n_output < 160 ? o.n_output : 160;
            memcpy(g->ids, o.output_ids, (size_t)g->n * sizeof(int32_t));
            g->len = o.text_len < sizeof g->text ? o.text_len : sizeof g->text - 1;
            memcpy(g->text, o.text, g->len);
            g->text[g->len] = 0;
            g->why = o.finish_reason;
        }
        sglc_request_release(req[i]);
    }
}

static sglc_engine *open_engine(int overlap, int radix) {
    sglc_engine_params ep;
    sglc_engine_params_default(&ep);
    ep.device = test_device();
    ep.model_path = test_default_model();
    ep.max_total_tokens = 16384;
    ep.decode_log_interval = 0;
    ep.disable_overlap_schedule = !overlap;
    ep.disable_radix_cache = !radix;
    char err[512];
    sglc_engine *e = NULL;
    CHECKF(sglc_engine_open(&e, &ep, err, sizeof err) == 0, "%s", err);
    return e;
}

static void check_compile_errors(void) {
    char err[512];
    sglc_grammar *g = NULL;
    CHECK(sglc_engine_grammar_compile(g_e, SGLC_GRAMMAR_JSON_SCHEMA, "{\"type\":", 8, &g, err,
                                      sizeof err) < 0 &&
          g == NULL && strstr(err, "invalid JSON"));
    CHECK(sglc_engine_grammar_compile(g_e, SGLC_GRAMMAR_REGEX, "(ab", 3, &g, err, sizeof err) < 0 &&
          strstr(err, "position"));
    CHECK(sglc_engine_grammar_compile(g_e, SGLC_GRAMMAR_EBNF, "root ::= x", 10, &g, err,
                                      sizeof err) < 0 &&
          strstr(err, "'x'"));
    CHECK(sglc_engine_grammar_compile(g_e, SGLC_GRAMMAR_COUNT, "", 0, &g, err, sizeof err) < 0);
}

int main(void) {
    const char *model = test_default_model();
    if (!model) return 77;
    const char *outp = getenv("SGLC_GRAMMAR_OUTPUTS");
    if (outp) g_out = fopen(outp, "w");
    static outcome greedy[2][N_CASES];
    for (int overlap = 1; overlap >= 0; overlap--) {
        g_e = open_engine(overlap, overlap);
        if (!g_e) return 1;
        if (overlap) check_compile_errors();
        run_all(greedy[overlap]);
        sglc_engine_stats st;
        for (int k = 0; k < 200; k++) { /* the stats follow the last step shortly */
            sglc_engine_get_stats(g_e, &st);
            if (st.num_running == 0) break;
            usleep(10000);
        }
        CHECK(st.num_running == 0);
        sglc_engine_close(g_e);
    }
    for (int c = 0; c < N_CASES; c++) {
        CHECKF(greedy[0][c].n == greedy[1][c].n &&
                   memcmp(greedy[0][c].ids, greedy[1][c].ids,
                          (size_t)greedy[0][c].n * sizeof(int32_t)) == 0,
               "case %d: greedy differs with and without overlap: '%s' vs '%s'", c,
               greedy[0][c].text, greedy[1][c].text);
        fprintf(stderr, "case %d greedy: %s\n", c, greedy[1][c].text);
    }
    if (g_out) fclose(g_out);
    TEST_MAIN_END();
}
