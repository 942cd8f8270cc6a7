/* Reasoning and tool-call parsers of model output (src/server/reasoning.c, tool_parser.c): the
 * split of complete answers in SGLang's formats (Qwen3 / DeepSeek-R1 <think> blocks, Qwen2.5
 * <tool_call> blocks, Llama-3 JSON calls), and for streaming that the split of every prefix is a
 * prefix of the final split, so streamed deltas add up to the complete response. */
#include <string.h>

#include "server/reasoning.h"
#include "server/tool_parser.h"
#include "test_util.h"

static int range_eq(const char *t, size_t off, size_t len, const char *want) {
    return strlen(want) == len && memcmp(t + off, want, len) == 0;
}

static void check_reasoning(sglc_reasoning_kind k, const char *text, const char *want_r,
                            const char *want_c) {
    size_t n = strlen(text);
    sglc_reasoning_split f;
    sglc_reasoning_split_text(k, text, n, 1, &f);
    CHECKF(range_eq(text, f.reasoning_off, f.reasoning_len, want_r), "reasoning of [%s]: [%.*s]",
           text, (int)f.reasoning_len, text + f.reasoning_off);
    CHECKF(range_eq(text, f.content_off, f.content_len, want_c), "content of [%s]: [%.*s]", text,
           (int)f.content_len, text + f.content_off);
    /* every streamed prefix: ranges are prefixes of the final ones */
    for (size_t p = 0; p <= n; p++) {
        sglc_reasoning_split s;
        sglc_reasoning_split_text(k, text, p, 0, &s);
        CHECKF(s.reasoning_len == 0 ||
                   (s.reasoning_off == f.reasoning_off && s.reasoning_len <= f.reasoning_len),
               "prefix %zu of [%s]: reasoning %zu+%zu vs final %zu+%zu", p, text, s.reasoning_off,
               s.reasoning_len, f.reasoning_off, f.reasoning_len);
        CHECKF(s.content_len == 0 ||
                   (s.content_off == f.content_off && s.content_len <= f.content_len),
               "prefix %zu of [%s]: content %zu+%zu vs final %zu+%zu", p, text, s.content_off,
               s.content_len, f.content_off, f.content_len);
    }
}

static void test_reasoning(void) {
    const sglc_reasoning_kind Q = SGLC_REASONING_QWEN3, R = SGLC_REASONING_DEEPSEEK_R1;
    check_reasoning(Q, "<think>\nLet me add.\n</think>\n\nThe answer is 4.", "Let me add.",
                    "The answer is 4.");
    check_reasoning(Q, "The answer is 4.", "", "The answer is 4.");
    check_reasoning(Q, "<think>\n\n</think>\n\nno thoughts", "", "no thoughts");
    check_reasoning(Q, "<think>unfinished thought", "unfinished thought", "");
    check_reasoning(Q, "  <think>x</think>y", "x", "y");
    check_reasoning(Q, "a <think>not at start</think> b", "", "a <think>not at start</think> b");
    check_reasoning(Q, "<think>a </thin b</think>c", "a </thin b", "c");
    check_reasoning(Q, "<think>héllo 日本</think>\n答え", "héllo 日本", "答え");
    check_reasoning(R, "I reason first.\n</think>\n\nAnswer.", "I reason first.", "Answer.");
    check_reasoning(R, "<think>\nwith tag</think>ok", "with tag", "ok");
    check_reasoning(R, "no end tag at all", "no end tag at all", "");
    check_reasoning(SGLC_REASONING_NONE, "<think>x</think>y", "", "<think>x</think>y");
    /* streaming holds back a partial tag */
    sglc_reasoning_split s;
    sglc_reasoning_split_text(Q, "<think>abc</th", 14, 0, &s);
    CHECK(s.reasoning_len == 3 && !s.reasoning_closed);
    sglc_reasoning_split_text(Q, "<thi", 4, 0, &s);
    CHECK(s.reasoning_len == 0 && s.content_len == 0);
    CHECK(sglc_reasoning_kind_from_name("qwen3") == Q &&
          sglc_reasoning_kind_from_name("deepseek-r1") == R &&
          sglc_reasoning_kind_from_name("x") == SGLC_REASONING_NONE);
}

/* calls as "name|arguments;name|arguments" */
static void calls_str(const sglc_tool_parse_result *r, char *buf, size_t cap) {
    buf[0] = 0;
    size_t n = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, r->calls) {
        n += (size_t)snprintf(buf + n, cap - n, "%s%s|%s", n ? ";" : "",
                              cJSON_GetObjectItem(c, "name")->valuestring,
                              cJSON_GetObjectItem(c, "arguments")->valuestring);
        if (n >= cap) break;
    }
}

static void check_tools(sglc_tool_parser_kind k, const char *text, const char *want_content,
                        const char *want_calls) {
    size_t n = strlen(text);
    sglc_tool_parse_result f;
    CHECK(sglc_tool_parse(k, text, n, 1, &f) == 0);
    char got[2048];
    calls_str(&f, got, sizeof got);
    CHECKF(range_eq(text, 0, f.content_len, want_content), "content of [%s]: [%.*s]", text,
           (int)f.content_len, text);
    CHECKF(strcmp(got, want_calls) == 0, "calls of [%s]: [%s], want [%s]", text, got, want_calls);
    /* streaming: content and the list of complete calls only grow, towards the final ones (a
     * malformed answer may keep content back until the end) */
    for (size_t p = 0; p <= n; p++) {
        sglc_tool_parse_result s;
        CHECK(sglc_tool_parse(k, text, p, 0, &s) == 0);
        CHECKF(s.content_len <= f.content_len || f.n_calls == 0, "prefix %zu of [%s]", p, text);
        CHECKF(s.n_calls <= f.n_calls || f.n_calls == 0, "prefix %zu of [%s]: %d calls", p, text,
               s.n_calls);
        if (f.n_calls > 0 && s.n_calls > 0) {
            char part[2048];
            calls_str(&s, part, sizeof part);
            CHECKF(strncmp(part, got, strlen(part)) == 0, "prefix %zu: [%s] vs [%s]", p, part, got);
        }
        sglc_tool_parse_result_free(&s);
    }
    sglc_tool_parse_result_free(&f);
}

static void test_tools(void) {
    const sglc_tool_parser_kind Q = SGLC_TOOL_PARSER_QWEN25, L = SGLC_TOOL_PARSER_LLAMA3;
    check_tools(Q,
                "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n"
                "</tool_call>",
                "", "get_weather|{\"city\":\"Paris\"}");
    check_tools(Q,
                "Let me check.\n<tool_call>\n{\"name\": \"a\", \"arguments\": {}}\n</tool_call>\n"
                "<tool_call>\n{\"name\": \"b\", \"arguments\": {\"x\": [1, 2]}}\n</tool_call>",
                "Let me check.", "a|{};b|{\"x\":[1,2]}");
    check_tools(Q, "Just an answer.", "Just an answer.", "");
    check_tools(Q, "<tool_call>\n{\"name\": \"a\", \"arguments\": {\"x\": 1}\n</tool_call>",
                "<tool_call>\n{\"name\": \"a\", \"arguments\": {\"x\": 1}\n</tool_call>", "");
    check_tools(Q, "<tool_call>{\"arguments\": {}}</tool_call>",
                "<tool_call>{\"arguments\": {}}</tool_call>", "");
    check_tools(Q, "<tool_call>\n{\"name\": \"a\", \"arguments\": {}}",
                "<tool_call>\n{\"name\": \"a\", \"arguments\": {}}", "");
    check_tools(L, "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}", "",
                "get_weather|{\"city\":\"Paris\"}");
    check_tools(L,
                "<|python_tag|>{\"name\": \"a\", \"parameters\": {}}; {\"name\": \"b\", "
                "\"parameters\": {\"q\": \"é\"}}",
                "", "a|{};b|{\"q\":\"é\"}");
    check_tools(L, "Sure: <|python_tag|>{\"name\": \"a\", \"parameters\": {}}", "Sure:", "a|{}");
    check_tools(L, "Plain text answer.", "Plain text answer.", "");
    check_tools(L, "{\"not\": \"a call\"}", "{\"not\": \"a call\"}", "");

    /* forced (tool_choice required / named): a JSON array of calls */
    sglc_tool_parse_result r;
    const char *fa = "[{\"name\": \"a\", \"parameters\": {\"x\": 1}}, {\"name\": \"b\", "
                     "\"parameters\": {}}]";
    CHECK(sglc_tool_parse_forced(fa, strlen(fa), &r) == 0 && r.n_calls == 2);
    char got[256];
    calls_str(&r, got, sizeof got);
    CHECK(strcmp(got, "a|{\"x\":1};b|{}") == 0);
    sglc_tool_parse_result_free(&r);
    CHECK(sglc_tool_parse_forced("[{\"name\": \"a\"", 14, &r) < 0 && r.n_calls == 0);
    CHECK(sglc_tool_parse_forced("[]", 2, &r) < 0);

    cJSON *tools = cJSON_Parse(
        "[{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"parameters\": "
        "{\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}}, "
        "\"required\": [\"city\"]}}}, {\"type\": \"function\", \"function\": {\"name\": "
        "\"now\"}}]");
    cJSON *sch = sglc_tool_choice_schema(tools, NULL);
    CHECK(sch &&
          cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetObjectItem(sch, "items"), "anyOf")) == 2);
    cJSON_Delete(sch);
    sch = sglc_tool_choice_schema(tools, "now");
    CHECK(sch && cJSON_GetObjectItem(sch, "maxItems") &&
          cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetObjectItem(sch, "items"), "anyOf")) == 1);
    cJSON_Delete(sch);
    CHECK(sglc_tool_choice_schema(tools, "missing") == NULL);
    cJSON_Delete(tools);
}

int main(void) {
    test_reasoning();
    test_tools();
    if (g_test_failures) {
        fprintf(stderr, "%d failures\n", g_test_failures);
        return 1;
    }
    printf("output parsers: ok\n");
    return 0;
}
