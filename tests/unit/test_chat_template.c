/* Chat template renderer tests: the default model's real template (SmolLM2, from its GGUF) and a
 * set of templates covering the rest of the supported Jinja subset must render exactly what
 * jinja2 configured like transformers' apply_chat_template renders (golden files from
 * scripts/golden/make_chat_template_golden.py); hostile templates (attribute walking, endless
 * loops, huge output, deep nesting, raise_exception) must fail with a message, never hang. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static int render_case(const char *tmpl, int agp, const char *msgs_json, const char *want_json,
                       const char *bos, const char *eos, int line) {
    cJSON *msgs = cJSON_Parse(msgs_json), *want = cJSON_Parse(want_json);
    int ok = 0;
    if (!msgs || !cJSON_IsString(want)) {
        CHECKF(0, "line %d: malformed golden line", line);
        goto done;
    }
    sglc_chat_template_vars v = {
        .messages = msgs, .add_generation_prompt = agp, .bos_token = bos, .eos_token = eos};
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
    return ok;
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
    test_hostile();
    if (g_test_failures) {
        fprintf(stderr, "%d failures\n", g_test_failures);
        return 1;
    }
    printf("ok\n");
    return 0;
}
