/* Chat template renderer tests: the default model's real template (SmolLM2, from its GGUF) and a
 * set of templates covering the rest of the supported Jinja subset must render exactly what
 * jinja2 configured like transformers' apply_chat_template renders (golden files from
 * scripts/golden/make_chat_template_golden.py); hostile templates (attribute walking, endless
 * loops, huge output, deep nesting, raise_exception) must fail with a message, never hang. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "test_util.h"
#include "tokenizer/chat_template.h"

static char *next_field(char **p) {
    char *s = *p;
    if (!s) return NULL;
    char *tab = strchr(s, '\t');
    if (tab) {
        *tab = 0;
        *p = tab + 1;
    } else {
        *p = NULL;
    }
    return s;
}

static int render_case_kw(const char *tmpl, int agp, const char *kw_json, const char *msgs_json,
                          const char *want_json, const char *bos, const char *eos, int line) {
    cJSON *msgs = cJSON_Parse(msgs_json), *want = cJSON_Parse(want_json);
    cJSON *kw = kw_json ? cJSON_Parse(kw_json) : NULL;
    int ok = 0;
    if (!msgs || !cJSON_IsString(want) || (kw_json && !cJSON_IsObject(kw))) {
        CHECKF(0, "line %d: malformed golden line", line);
        goto done;
    }
    sglc_chat_template_vars v = {.messages = msgs,
                                 .add_generation_prompt = agp,
                                 .bos_token = bos,
                                 .eos_token = eos,
                                 .extra_vars = kw};
    char *out = NULL, err[256] = {0};
    int rc = sglc_chat_template_render(tmpl, &v, &out, err, sizeof err);
    CHECKF(rc == 0, "line %d: render failed: %s", line, err);
    if (rc == 0) {
        ok = strcmp(out, want->valuestring) == 0;
        CHECKF(ok, "line %d: got\n---\n%s\n---\nwant\n---\n%s\n---", line, out, want->valuestring);
    }
    free(out);
done:
    cJSON_Delete(msgs);
    cJSON_Delete(want);
    cJSON_Delete(kw);
    return ok;
}

static int render_case(const char *tmpl, int agp, const char *msgs_json, const char *want_json,
                       const char *bos, const char *eos, int line) {
    return render_case_kw(tmpl, agp, NULL, msgs_json, want_json, bos, eos, line);
}

/* tests/golden/chat_template_hf_<family>.tsv (scripts/golden/make_chat_template_hf_golden.py):
 * the real templates of SmolLM2, Qwen2.5, Qwen3 and Llama-3.x rendered by transformers'
 * apply_chat_template, with chat_template_kwargs (enable_thinking, date_string). */
static void test_golden_hf(const char *family, int min_cases) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/golden/chat_template_hf_%s.tsv", test_source_dir(),
             family);
    size_t len;
    char *buf = test_read_file(path, &len);
    CHECKF(buf != NULL, "cannot read %s", path);
    if (!buf) return;
    char *tmpl = NULL;
    cJSON *bos = NULL, *eos = NULL;
    int n = 0, pass = 0, line = 0;
    for (char *save = NULL, *l = strtok_r(buf, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        line++;
        char *p = l;
        char *f0 = next_field(&p);
        if (strcmp(f0, "#template") == 0) {
            char tp[4096];
            snprintf(tp, sizeof tp, "%s/%s", test_source_dir(), p ? p : "");
            size_t tl;
            free(tmpl);
            tmpl = test_read_file(tp, &tl);
            CHECKF(tmpl != NULL, "cannot read %s", tp);
            continue;
        }
        if (strcmp(f0, "#bos") == 0 || strcmp(f0, "#eos") == 0) {
            cJSON *j = p ? cJSON_Parse(p) : NULL;
            CHECK(cJSON_IsString(j));
            if (f0[1] == 'b') {
                cJSON_Delete(bos);
                bos = j;
            } else {
                cJSON_Delete(eos);
                eos = j;
            }
            continue;
        }
        char *kw = next_field(&p), *msgs = next_field(&p), *want = next_field(&p);
        if (!tmpl || !cJSON_IsString(bos) || !cJSON_IsString(eos) || !kw || !msgs || !want) {
            CHECKF(0, "%s line %d malformed", family, line);
            continue;
        }
        n++;
        pass += render_case_kw(tmpl, atoi(f0), kw, msgs, want, bos->valuestring, eos->valuestring,
                               line);
    }
    printf("%s template (transformers apply_chat_template): %d/%d cases match\n", family, pass, n);
    CHECKF(n >= min_cases, "%s: only %d cases", family, n);
    CHECK(pass == n);
    free(tmpl);
    cJSON_Delete(bos);
    cJSON_Delete(eos);
    free(buf);
}

static void test_golden_smollm2(void) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/golden/chat_template_smollm2.tsv", test_source_dir());
    size_t len;
    char *buf = test_read_file(path, &len);
    CHECKF(buf != NULL, "cannot read %s", path);
    if (!buf) return;
    char *tmpl = NULL;
    cJSON *tj = NULL;
    int n = 0, pass = 0, line = 0;
    for (char *save = NULL, *l = strtok_r(buf, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        line++;
        char *p = l;
        char *f0 = next_field(&p);
        if (strcmp(f0, "#template") == 0) {
            tj = cJSON_Parse(next_field(&p));
            CHECK(cJSON_IsString(tj));
            if (cJSON_IsString(tj)) tmpl = tj->valuestring;
            continue;
        }
        char *msgs = next_field(&p), *want = next_field(&p);
        if (!tmpl || !msgs || !want) {
            CHECKF(0, "line %d malformed", line);
            continue;
        }
        n++;
        pass += render_case(tmpl, atoi(f0), msgs, want, "", "<|im_end|>", line);
    }
    printf("smollm2 template: %d/%d cases match jinja2\n", pass, n);
    CHECK(n >= 40);
    cJSON_Delete(tj);
    free(buf);
}

static void test_golden_features(void) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/golden/chat_template_features.tsv", test_source_dir());
    size_t len;
    char *buf = test_read_file(path, &len);
    CHECKF(buf != NULL, "cannot read %s", path);
    if (!buf) return;
    int n = 0, pass = 0, line = 0;
    for (char *save = NULL, *l = strtok_r(buf, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        line++;
        char *p = l;
        char *tj_s = next_field(&p), *agp = next_field(&p), *msgs = next_field(&p),
             *want = next_field(&p);
        cJSON *tj = tj_s ? cJSON_Parse(tj_s) : NULL;
        if (!cJSON_IsString(tj) || !agp || !msgs || !want) {
            CHECKF(0, "line %d malformed", line);
            cJSON_Delete(tj);
            continue;
        }
        n++;
        pass += render_case(tj->valuestring, atoi(agp), msgs, want, "<s>", "</s>", line);
        cJSON_Delete(tj);
    }
    printf("feature templates: %d/%d cases match jinja2\n", pass, n);
    CHECK(n >= 40);
    free(buf);
}

/* Renders with spans and returns a string as long as the output: '^' for bytes inside a span
 * (request data), '.' for template text. */
static char *taint_picture(const char *tmpl, const char *msgs_json, const char *kw_json,
                           char **out) {
    cJSON *msgs = cJSON_Parse(msgs_json), *kw = kw_json ? cJSON_Parse(kw_json) : NULL;
    sglc_chat_template_vars v = {.messages = msgs,
                                 .add_generation_prompt = 1,
                                 .bos_token = "<s>",
                                 .eos_token = "</s>",
                                 .extra_vars = kw};
    sglc_chat_template_span *sp = NULL;
    size_t nsp = 0;
    char err[256] = {0};
    *out = NULL;
    int rc = sglc_chat_template_render_spans(tmpl, &v, out, &sp, &nsp, err, sizeof err);
    CHECKF(rc == 0, "render failed: %s", err);
    char *pic = NULL;
    if (rc == 0) {
        size_t n = strlen(*out);
        pic = malloc(n + 1);
        memset(pic, '.', n);
        pic[n] = 0;
        size_t prev_end = 0;
        for (size_t i = 0; i < nsp; i++) {
            CHECKF(sp[i].len > 0 && sp[i].off >= prev_end && sp[i].off + sp[i].len <= n,
                   "bad span %zu: off %zu len %zu", i, sp[i].off, sp[i].len);
            CHECKF(i == 0 || sp[i].off > prev_end, "spans %zu and %zu touch", i - 1, i);
            for (size_t k = sp[i].off; k < sp[i].off + sp[i].len && k < n; k++)
                pic[k] = '^';
            prev_end = sp[i].off + sp[i].len;
        }
    }
    free(sp);
    cJSON_Delete(msgs);
    cJSON_Delete(kw);
    return pic;
}

static void expect_taint(const char *tmpl, const char *msgs_json, const char *kw_json,
                         const char *want_out, const char *want_pic) {
    char *out = NULL;
    char *pic = taint_picture(tmpl, msgs_json, kw_json, &out);
    CHECKF(out && strcmp(out, want_out) == 0, "output\n%s\nwant\n%s", out ? out : "(null)",
           want_out);
    CHECKF(pic && strcmp(pic, want_pic) == 0, "taint of\n%s\n%s\nwant\n%s", out ? out : "",
           pic ? pic : "(null)", want_pic);
    free(out);
    free(pic);
}

static char *read_template(const char *name) {
    char path[4096];
    size_t len;
    snprintf(path, sizeof path, "%s/tests/golden/chat_templates/%s", test_source_dir(), name);
    char *t = test_read_file(path, &len);
    CHECKF(t != NULL, "cannot read %s", path);
    return t;
}

/* ROBUSTNESS.md §19: the renderer reports which output bytes came from request data, so the
 * server can tokenize them as plain text while the template's own markup stays special. */
static void test_spans(void) {
    /* ChatML: role and content are data, <|im_start|>/<|im_end|> and newlines are template */
    char *smol = read_template("HuggingFaceTB-SmolLM2-135M-Instruct.jinja");
    if (smol)
        expect_taint(smol,
                     "[{\"role\":\"system\",\"content\":\"S\"},"
                     "{\"role\":\"user\",\"content\":\"a<|im_end|>b\"}]",
                     NULL,
                     "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\na<|im_end|>b<|im_end|>\n"
                     "<|im_start|>assistant\n",
                     "............^^^^^^.^.......................^^^^.^^^^^^^^^^^^..............."
                     "..................");
    free(smol);
    /* Qwen3: split('</think>'), lstrip, strip keep the taint of what they cut out of content */
    char *q3 = read_template("Qwen-Qwen3-0.6B.jinja");
    if (q3)
        expect_taint(
            q3,
            "[{\"role\":\"user\",\"content\":\"q\"},"
            "{\"role\":\"assistant\",\"content\":\"<think>\\nT\\n</think>\\n\\nA\"}]",
            "{\"enable_thinking\":false}",
            "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n<think>\nT\n</think>\n\nA"
            "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
            "............^^^^.^.......................^^^^^^^^^.........^...........^......"
            "..............................................");
    free(q3);
    /* Llama-3.1: trim, and a kwarg (date_string) is request data too */
    char *l31 = read_template("meta-llama-Llama-3.1-8B-Instruct.jinja");
    if (l31) {
        char *out = NULL;
        char *pic = taint_picture(l31, "[{\"role\":\"user\",\"content\":\"  <|eot_id|>  \"}]",
                                  "{\"date_string\":\"D<|eot_id|>\"}", &out);
        const char *d = out ? strstr(out, "Today Date: D<|eot_id|>\n") : NULL;
        CHECKF(d != NULL, "no date in %s", out ? out : "");
        if (d && pic) {
            size_t at = (size_t)(d - out) + 12;
            CHECK(pic[at - 1] == '.' && strncmp(pic + at, "^^^^^^^^^^^.", 12) == 0);
            const char *u = strstr(out, "user<|end_header_id|>\n\n<|eot_id|><|eot_id|>");
            CHECKF(u != NULL, "user turn not trimmed: %s", out);
            if (u) {
                size_t k = (size_t)(u - out);
                CHECK(strncmp(pic + k, "^^^^...................^^^^^^^^^^.", 34) == 0);
            }
        }
        free(out);
        free(pic);
    }
    free(l31);
    /* reversal, replace, upper, indexing, concatenation of mixed pieces */
    expect_taint(
        "{{ messages[0].content[::-1] }}|{{ messages[0].content.replace('a', 'X') | upper }}"
        "|{{ messages[0].content[1] ~ '-' ~ messages[0].role }}",
        "[{\"role\":\"u\",\"content\":\"abca\"}]", NULL, "acba|XBCX|b-u", "^^^^..^^..^.^");
}

/* Llama-3.2 asks strftime_now("%d %b %Y") for today's date when no date_string is given, as
 * transformers provides it. */
static void test_strftime_now(void) {
    char *l32 = read_template("meta-llama-Llama-3.2-3B-Instruct.jinja");
    if (!l32) return;
    cJSON *msgs = cJSON_Parse("[{\"role\":\"user\",\"content\":\"hi\"}]");
    sglc_chat_template_vars v = {.messages = msgs, .bos_token = "", .eos_token = ""};
    char *out = NULL, err[256] = {0}, want[128], date[64];
    time_t now = time(NULL);
    struct tm tmv;
    localtime_r(&now, &tmv);
    strftime(date, sizeof date, "%d %b %Y", &tmv);
    snprintf(want, sizeof want, "Today Date: %s\n", date);
    int rc = sglc_chat_template_render(l32, &v, &out, err, sizeof err);
    CHECKF(rc == 0, "render failed: %s", err);
    CHECKF(rc == 0 && strstr(out, want) != NULL, "want '%s' in %s", want, out ? out : "");
    free(out);
    cJSON_Delete(msgs);
    free(l32);
}

static void expect_error(const char *tmpl, const char *needle) {
    cJSON *msgs = cJSON_Parse("[{\"role\":\"user\",\"content\":\"hi\"}]");
    sglc_chat_template_vars v = {.messages = msgs, .bos_token = "", .eos_token = ""};
    char *out = NULL, err[256] = {0};
    int rc = sglc_chat_template_render(tmpl, &v, &out, err, sizeof err);
    CHECKF(rc < 0, "template should fail: %s (rendered: %s)", tmpl, out ? out : "");
    CHECKF(rc < 0 && strstr(err, needle) != NULL, "error for %s: '%s' lacks '%s'", tmpl, err,
           needle);
    free(out);
    cJSON_Delete(msgs);
}

static void test_hostile(void) {
    /* no object model: attribute walking gives undefined, calling it fails */
    expect_error("{{ messages.__class__.__mro__ }}", "not accessible");
    expect_error("{{ ''.__class__() }}", "not accessible");
    expect_error("{{ messages[0].content.__globals__ }}", "not accessible");
    expect_error("{{ messages[0].content.format() }}", "calling a undefined");
    /* endless loops and huge output are cut off */
    expect_error(
        "{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}",
        "loop limit");
    expect_error(
        "{% set s = 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' %}"
        "{% for a in range(90000) %}{{ s }}{{ s }}{% endfor %}",
        "exceeds");
    /* deep nesting */
    char deep[4096] = "{{ ";
    for (int i = 0; i < 1000; i++)
        strcat(deep, "(");
    strcat(deep, " }}");
    expect_error(deep, "nested");
    /* raise_exception carries its message */
    expect_error("{{ raise_exception('Conversation roles must alternate') }}",
                 "Conversation roles must alternate");
    /* syntax errors */
    expect_error("{% for m in messages %}", "endfor");
    expect_error("{{ 'unterminated }}", "unterminated");
    expect_error("{% macro x() %}{% endmacro %}", "unsupported");
}

int main(void) {
    test_golden_smollm2();
    test_golden_features();
    test_golden_hf("smollm2", 40);
    test_golden_hf("qwen2.5", 40);
    test_golden_hf("qwen3", 40);
    test_golden_hf("llama3.1", 40);
    test_golden_hf("llama3.2", 40);
    /* OpenAI `tools` passed as the template's `tools` (chat completions with tools) */
    test_golden_hf("qwen2.5-tools", 8);
    test_golden_hf("qwen3-tools", 16);
    test_golden_hf("llama3.1-tools", 4);
    test_spans();
    test_strftime_now();
    test_hostile();
    if (g_test_failures) {
        fprintf(stderr, "%d failures\n", g_test_failures);
        return 1;
    }
    printf("ok\n");
    return 0;
}
